-- 0001_supabase_compat.sql
-- What: the few Supabase objects the other files rely on, created ONLY where they are missing, so
--       the same files run on a real Supabase project and on plain PostgreSQL:
--         roles anon, authenticated, service_role; schema auth; functions auth.jwt(), auth.uid().
--       On Supabase all of these exist already and this file changes nothing.
-- Touches: roles, schema auth.
-- Idempotent: yes.

do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    -- As on Supabase: the service key bypasses row level security.
    create role service_role nologin noinherit bypassrls;
  end if;
end
$$;

-- On Supabase the auth schema belongs to supabase_auth_admin: touch it only where it is missing.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_namespace where nspname = 'auth') then
    create schema auth;
    grant usage on schema auth to anon, authenticated, service_role;
  end if;
end
$$;

-- The API roles reach the chat tables through schema public (Supabase grants this already).
grant usage on schema public to anon, authenticated, service_role;

-- Supabase's definitions: PostgREST puts the verified JWT claims in the setting request.jwt.claims.
do $$
begin
  if pg_catalog.to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
      as $f$
        select coalesce(
          nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
          nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
        )::jsonb
      $f$;
  end if;
  if pg_catalog.to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
      as $f$
        select nullif(
          coalesce(
            pg_catalog.current_setting('request.jwt.claim.sub', true),
            (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
          ),
          ''
        )::uuid
      $f$;
  end if;
end
$$;
