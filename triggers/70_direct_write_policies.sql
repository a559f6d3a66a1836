-- 70_direct_write_policies.sql
-- What: the row level security policies that changed with the direct-write rules (CONTRACT v2,
--       section 1), replacing their first versions of sql/0060, and EXECUTE on the functions of
--       schema gre_relay:
--         players mark read only the other side's messages of their own sessions (their own
--         messages are not theirs to mark; the trigger of triggers/10 refuses any other status);
--         gre_online_status is read by staff only (an anonymous sign-in is `authenticated` too,
--         and players learn whether staff are online from the relay's gre_presence frame);
--         no function of gre_relay is executable by PUBLIC or anon; authenticated and
--         service_role may execute the invoker-rights ones (they run with the caller's own
--         rights: policies and triggers call them as the caller) and, of the security definer
--         ones, only the two that act on the caller's own JWT (triggers/05) and
--         desk_transfer (triggers/80_desk_transfer.sql), which checks the caller's JWT.
--         on plain PostgreSQL, auth.jwt() and auth.uid() (which sql/0001 created because they
--         were missing) likewise lose EXECUTE for PUBLIC and anon; on Supabase they belong to
--         Supabase and are left alone.
--       Applied after every other file, so it covers every function they create.
-- Touches: policies on gre_chat_messages and gre_online_status; EXECUTE on gre_relay functions
--          and on the auth functions the applying role owns.
-- Idempotent: yes (drop policy if exists, then create; revoke, then grant).

drop policy if exists "players update their own messages" on public.gre_chat_messages;
drop policy if exists "players mark the other side's messages read" on public.gre_chat_messages;
create policy "players mark the other side's messages read" on public.gre_chat_messages
  for update to authenticated
  using (player_id = (select gre_relay.jwt_player_id()) and sender <> 'player')
  with check (player_id = (select gre_relay.jwt_player_id()) and sender <> 'player' and status = 'read');

drop policy if exists "signed-in users read staff presence" on public.gre_online_status;
drop policy if exists "staff read staff presence" on public.gre_online_status;
create policy "staff read staff presence" on public.gre_online_status
  for select to authenticated
  using ((select gre_relay.jwt_is_staff()));

do $$
declare
  f record;
begin
  for f in
    select p.oid::pg_catalog.regprocedure::text as sig,
           not p.prosecdef
             or p.oid in ('gre_relay.caller_may_chat()'::pg_catalog.regprocedure,
                          'gre_relay.take_direct_write()'::pg_catalog.regprocedure)
             -- triggers/80_desk_transfer.sql: checks its caller's JWT itself.
             or p.proname = 'desk_transfer' as callable
      from pg_catalog.pg_proc p
     where p.pronamespace = 'gre_relay'::pg_catalog.regnamespace
       and p.prokind = 'f'
  loop
    execute pg_catalog.format('revoke all on function %s from public, anon', f.sig);
    if f.callable then
      execute pg_catalog.format('grant execute on function %s to authenticated, service_role', f.sig);
    else
      execute pg_catalog.format('revoke all on function %s from authenticated, service_role', f.sig);
    end if;
  end loop;
end
$$;

-- The auth helpers sql/0001 created (only where they were missing, so only when the role
-- applying these files owns them): policies call them as authenticated.
do $$
declare
  f record;
begin
  for f in
    select p.oid::pg_catalog.regprocedure::text as sig
      from pg_catalog.pg_proc p
     where p.pronamespace = 'auth'::pg_catalog.regnamespace
       and p.proname in ('jwt', 'uid')
       and pg_catalog.pg_get_userbyid(p.proowner) = current_user
  loop
    execute pg_catalog.format('revoke all on function %s from public, anon', f.sig);
    execute pg_catalog.format('grant execute on function %s to authenticated, service_role', f.sig);
  end loop;
end
$$;
