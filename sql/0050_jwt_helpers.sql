-- 0050_jwt_helpers.sql
-- What: two helpers that read the caller's Supabase JWT, used by the row level security policies.
--       Authorization data comes only from app_metadata, which users cannot edit themselves.
-- Touches: functions gre_relay.jwt_player_id(), gre_relay.jwt_is_staff().
-- Idempotent: yes (create or replace).

-- The caller's player id from app_metadata.player_id (a number or a string of digits), else null.
create or replace function gre_relay.jwt_player_id() returns bigint
  language sql stable
  set search_path = ''
  as $$
    select case
      when (auth.jwt() -> 'app_metadata' ->> 'player_id') ~ '^[0-9]{1,18}$'
        then (auth.jwt() -> 'app_metadata' ->> 'player_id')::bigint
    end
  $$;

-- True when the caller is GRE staff (app_metadata.role = 'gre_staff').
create or replace function gre_relay.jwt_is_staff() returns boolean
  language sql stable
  set search_path = ''
  as $$
    select coalesce(auth.jwt() -> 'app_metadata' ->> 'role' = 'gre_staff', false)
  $$;

grant usage on schema gre_relay to anon, authenticated, service_role;
grant execute on function gre_relay.jwt_player_id() to authenticated, service_role;
grant execute on function gre_relay.jwt_is_staff() to authenticated, service_role;
