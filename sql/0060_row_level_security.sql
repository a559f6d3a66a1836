-- 0060_row_level_security.sql
-- What: row level security on the four chat tables, one policy per operation and role.
--       Players (authenticated, app_metadata.player_id) see and write only their own rows;
--       GRE staff (authenticated, app_metadata.role = 'gre_staff') see and manage everything.
--       service_role bypasses RLS (role attribute), as on Supabase; anon gets nothing.
--       Calls are wrapped in (select ...) so they are evaluated once per statement, not per row.
-- Touches: grants and policies on gre_chat_sessions, gre_chat_messages, gre_online_status,
--          push_notifications.
-- Idempotent: yes (drop policy if exists, then create).

alter table public.gre_chat_sessions  enable row level security;
alter table public.gre_chat_messages  enable row level security;
alter table public.gre_online_status  enable row level security;
alter table public.push_notifications enable row level security;

grant select, insert on public.gre_chat_sessions to authenticated;
-- Through the API a session's status and assignee may change; its player and message counter
-- may not (the counter is the resume cursor's source of truth).
revoke update on public.gre_chat_sessions from authenticated;
grant update (status, assigned_gre_id) on public.gre_chat_sessions to authenticated;
grant select, insert on public.gre_chat_messages to authenticated;
-- Only a message's status may change through the API (delivered / read): its text, sender and
-- number are history. Column privileges enforce it for players and staff alike.
revoke update on public.gre_chat_messages from authenticated;
grant update (status) on public.gre_chat_messages to authenticated;
grant select, insert, update on public.gre_online_status  to authenticated;
grant select, update         on public.push_notifications to authenticated;
grant all on public.gre_chat_sessions, public.gre_chat_messages,
             public.gre_online_status, public.push_notifications to service_role;

-- gre_chat_sessions ---------------------------------------------------------------------------
drop policy if exists "players read their own sessions" on public.gre_chat_sessions;
create policy "players read their own sessions" on public.gre_chat_sessions
  for select to authenticated
  using (player_id = (select gre_relay.jwt_player_id()));

drop policy if exists "staff read all sessions" on public.gre_chat_sessions;
create policy "staff read all sessions" on public.gre_chat_sessions
  for select to authenticated
  using ((select gre_relay.jwt_is_staff()));

drop policy if exists "players open their own session" on public.gre_chat_sessions;
create policy "players open their own session" on public.gre_chat_sessions
  for insert to authenticated
  with check (player_id = (select gre_relay.jwt_player_id()) and status = 'waiting');

drop policy if exists "staff open sessions" on public.gre_chat_sessions;
create policy "staff open sessions" on public.gre_chat_sessions
  for insert to authenticated
  with check ((select gre_relay.jwt_is_staff()));

drop policy if exists "staff update sessions" on public.gre_chat_sessions;
create policy "staff update sessions" on public.gre_chat_sessions
  for update to authenticated
  using ((select gre_relay.jwt_is_staff()))
  with check ((select gre_relay.jwt_is_staff()));

-- gre_chat_messages ---------------------------------------------------------------------------
drop policy if exists "players read their own messages" on public.gre_chat_messages;
create policy "players read their own messages" on public.gre_chat_messages
  for select to authenticated
  using (player_id = (select gre_relay.jwt_player_id()));

drop policy if exists "staff read all messages" on public.gre_chat_messages;
create policy "staff read all messages" on public.gre_chat_messages
  for select to authenticated
  using ((select gre_relay.jwt_is_staff()));

-- A player writes only as itself, only into its own session that is still open.
drop policy if exists "players write into their own session" on public.gre_chat_messages;
create policy "players write into their own session" on public.gre_chat_messages
  for insert to authenticated
  with check (
    sender = 'player'
    and (sender_id is null or sender_id = (select gre_relay.jwt_player_id())::text)
    and exists (
      select 1 from public.gre_chat_sessions s
      where s.id = session_id
        and s.player_id = (select gre_relay.jwt_player_id())
        and s.status <> 'closed'
    )
  );

drop policy if exists "staff write messages" on public.gre_chat_messages;
create policy "staff write messages" on public.gre_chat_messages
  for insert to authenticated
  with check (
    (select gre_relay.jwt_is_staff())
    and sender in ('gre', 'system')
    and (sender_id is null or sender_id = (select auth.jwt() ->> 'sub'))
  );

-- Players mark GRE messages read; staff mark player messages read (status only: see the grants).
drop policy if exists "players update their own messages" on public.gre_chat_messages;
create policy "players update their own messages" on public.gre_chat_messages
  for update to authenticated
  using (player_id = (select gre_relay.jwt_player_id()))
  with check (player_id = (select gre_relay.jwt_player_id()));

drop policy if exists "staff update messages" on public.gre_chat_messages;
create policy "staff update messages" on public.gre_chat_messages
  for update to authenticated
  using ((select gre_relay.jwt_is_staff()))
  with check ((select gre_relay.jwt_is_staff()));

-- gre_online_status ---------------------------------------------------------------------------
drop policy if exists "signed-in users read staff presence" on public.gre_online_status;
create policy "signed-in users read staff presence" on public.gre_online_status
  for select to authenticated
  using (true);

drop policy if exists "staff insert their own presence" on public.gre_online_status;
create policy "staff insert their own presence" on public.gre_online_status
  for insert to authenticated
  with check ((select gre_relay.jwt_is_staff()) and gre_id = (select auth.jwt() ->> 'sub'));

drop policy if exists "staff update their own presence" on public.gre_online_status;
create policy "staff update their own presence" on public.gre_online_status
  for update to authenticated
  using ((select gre_relay.jwt_is_staff()) and gre_id = (select auth.jwt() ->> 'sub'))
  with check ((select gre_relay.jwt_is_staff()) and gre_id = (select auth.jwt() ->> 'sub'));

-- push_notifications --------------------------------------------------------------------------
drop policy if exists "players read their own notifications" on public.push_notifications;
create policy "players read their own notifications" on public.push_notifications
  for select to authenticated
  using (player_id = (select gre_relay.jwt_player_id()));

drop policy if exists "players mark their own notifications read" on public.push_notifications;
create policy "players mark their own notifications read" on public.push_notifications
  for update to authenticated
  using (player_id = (select gre_relay.jwt_player_id()))
  with check (player_id = (select gre_relay.jwt_player_id()));

drop policy if exists "staff read notifications" on public.push_notifications;
create policy "staff read notifications" on public.push_notifications
  for select to authenticated
  using ((select gre_relay.jwt_is_staff()));
