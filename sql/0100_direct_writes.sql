-- 0100_direct_writes.sql
-- What: the data and privileges behind "writes straight through Supabase" (CONTRACT v2, section 1):
--   1. gre_relay.settings: one row holding what every relay and every direct writer must agree on:
--      chat.enabled_by_default and the per-player write rate (websocket.frames_per_second /
--      frames_burst). The relay upserts it at every start; the triggers read it.
--   2. gre_relay.direct_write_buckets: a token bucket per player for messages a player writes
--      straight through the API (the relay paces its own writes itself and never touches it).
--   3. length limits on names and notification text, and last_seq >= 0, added NOT VALID so rows
--      that already break them do not block the migration (new and updated rows are checked);
--   4. privileges: revoke everything first, then grant the minimum, so the result is the same on
--      plain PostgreSQL and on a Supabase project whose default privileges gave anon,
--      authenticated and service_role every privilege on new tables. anon gets nothing; nobody
--      but the owner may truncate; players and staff may write only the columns a writer may
--      choose (the rest are the database's: see triggers/05, 10 and 30).
-- Touches: tables gre_relay.settings, gre_relay.direct_write_buckets; constraints and grants on
--          gre_chat_sessions, gre_chat_messages, gre_online_status, push_notifications; usage on
--          schema gre_relay; default privileges of functions in schema gre_relay.
-- Idempotent: yes (if not exists, catalog checks before adding constraints, revoke then grant).

-- 1. Settings ---------------------------------------------------------------------------------
create table if not exists gre_relay.settings (
  singleton                   boolean primary key default true check (singleton),  -- exactly one row
  chat_enabled_by_default     boolean not null default true,
  player_messages_per_second  double precision not null default 10 check (player_messages_per_second > 0),
  player_messages_burst       double precision not null default 30 check (player_messages_burst >= 1),
  player_rows_per_statement   integer not null default 10 check (player_rows_per_statement >= 1),
  updated_at                  timestamptz not null default now(),
  updated_by                  text
);

insert into gre_relay.settings (singleton) values (true) on conflict do nothing;

comment on table gre_relay.settings is
  'Rules shared by every relay and every direct writer. The relay writes chat_enabled_by_default and the two rate columns at each start (from chat.enabled_by_default, websocket.frames_per_second, websocket.frames_burst); player_rows_per_statement is the DBA''s.';

-- 2. Token buckets of direct player writes ------------------------------------------------------
create table if not exists gre_relay.direct_write_buckets (
  player_id       bigint primary key,
  tokens          double precision not null,
  refilled_at     timestamptz not null,
  -- The statement that wrote last (backend pid and statement start), and how many rows it has
  -- written so far: the per-statement row cap.
  statement_pid   integer,
  statement_at    timestamptz,
  statement_rows  integer not null default 0
);

comment on table gre_relay.direct_write_buckets is
  'One token bucket per player, for messages written straight through the API (not through the relay).';

alter table gre_relay.settings enable row level security;
alter table gre_relay.direct_write_buckets enable row level security;

-- 3. Bounds, NOT VALID: old rows are not rechecked, new and updated rows are -----------------------
do $$
declare
  c record;
begin
  for c in
    select * from (values
      ('public.gre_chat_messages', 'gre_chat_messages_sender_name_length',
       'check (sender_name is null or char_length(sender_name) <= 100)'),
      ('public.gre_chat_messages', 'gre_chat_messages_sender_id_length',
       'check (sender_id is null or char_length(sender_id) <= 100)'),
      ('public.gre_chat_sessions', 'gre_chat_sessions_assigned_gre_id_length',
       'check (assigned_gre_id is null or char_length(assigned_gre_id) <= 100)'),
      ('public.gre_chat_sessions', 'gre_chat_sessions_last_seq_check',
       'check (last_seq >= 0)'),
      ('public.gre_online_status', 'gre_online_status_gre_id_length',
       'check (char_length(gre_id) <= 100)'),
      ('public.push_notifications', 'push_notifications_title_length',
       'check (char_length(title) <= 200)'),
      ('public.push_notifications', 'push_notifications_message_length',
       'check (char_length(message) <= 1000)')
    ) as t(tbl, name, def)
  loop
    if not exists (select 1 from pg_catalog.pg_constraint
                    where conrelid = c.tbl::regclass and conname = c.name) then
      execute pg_catalog.format('alter table %s add constraint %I %s not valid', c.tbl, c.name, c.def);
    end if;
  end loop;
end
$$;

-- 4. Privileges -------------------------------------------------------------------------------
-- Revoke first: Supabase's default privileges granted all of these (truncate, references,
-- trigger, delete included) to anon, authenticated and service_role when the tables were made.
revoke all on table public.gre_chat_sessions, public.gre_chat_messages,
                    public.gre_online_status, public.push_notifications
  from public, anon, authenticated, service_role;

-- The service key may read and write everything (it bypasses RLS), but not truncate: a
-- truncate fires no row trigger, so it would bypass every rule here and announce nothing.
grant select, insert, update, delete on table public.gre_chat_sessions, public.gre_chat_messages,
                                              public.gre_online_status, public.push_notifications
  to service_role;

-- authenticated: what RLS then narrows to the caller's own rows (sql/0060, triggers/70).
-- Column lists leave out what the database owns: ids, timestamps, numbering, a message's status
-- at insert. Writing one of those is refused with "permission denied".
grant select on table public.gre_chat_sessions, public.gre_chat_messages,
                      public.gre_online_status, public.push_notifications
  to authenticated;
grant insert (player_id, status, assigned_gre_id) on table public.gre_chat_sessions to authenticated;
grant update (status, assigned_gre_id) on table public.gre_chat_sessions to authenticated;
grant insert (session_id, player_id, sender, sender_id, sender_name, message, client_message_id)
  on table public.gre_chat_messages to authenticated;
grant update (status) on table public.gre_chat_messages to authenticated;
grant insert (gre_id, status) on table public.gre_online_status to authenticated;
grant update (status) on table public.gre_online_status to authenticated;
grant update (read_at) on table public.push_notifications to authenticated;

-- The relay's private tables: nobody but the owner.
revoke all on all tables in schema gre_relay from public, anon, authenticated, service_role;

-- anon needs nothing in gre_relay (no policy applies to it).
revoke usage on schema gre_relay from public, anon;

-- Functions made later in gre_relay by the role applying these files: no EXECUTE for PUBLIC
-- (PostgreSQL's default), but for authenticated and service_role, which policies and
-- invoker-rights triggers run as. triggers/70 settles the functions that exist.
alter default privileges in schema gre_relay revoke execute on functions from public;
alter default privileges in schema gre_relay grant execute on functions to authenticated, service_role;
