-- 0210_desk.sql
-- What: the tables of the GRE desk (issue 13; docs/database.md, "The GRE desk"):
--   1. public.gre_desk_settings: one row (singleton) staff may edit: automatic assignment on/off,
--      the default capacity (open sessions per GRE), the two auto-reply texts, the weekly opening
--      hours (jsonb) and their IANA time zone. Its row lock is also the desk's lock: every
--      assignment decision takes it first (triggers/80_desk_assignment.sql);
--   2. public.gre_desk_agents: per-GRE settings staff may edit (capacity, display name);
--   3. public.gre_canned_responses: saved replies with a short code, shared by the desk
--      (soft-deleted, so that the deletion reaches every console as a committed row);
--   4. public.gre_chat_internal_notes: staff-only notes on a thread, and the record of each
--      transfer (who, from, to, the optional note). Never in gre_chat_messages;
--   5. gre_relay.desk_agent_state, gre_relay.desk_queue, gre_relay.desk_auto_replies: what the
--      database keeps for itself (round-robin order, who returned a session to the queue, the
--      auto-reply guard: one row per session, so a reply is written exactly once per period);
--   6. gre_chat_messages.system_kind (which system line: auto_reply, after_hours, transfer),
--      only on system messages;
--   7. indexes for the assignment queries and the auto-reply's period; privileges (revoke first, then grant the minimum, as
--      sql/0100 does: anon nothing, nobody but the owner truncates, players nothing at all).
-- Touches: the tables above; column gre_chat_messages.system_kind and its check; indexes on
--          gre_chat_sessions; grants on the new tables.
-- Idempotent: yes (if not exists, catalog checks before adding constraints, revoke then grant).

-- 1. Desk settings ---------------------------------------------------------------------------
create table if not exists public.gre_desk_settings (
  singleton         boolean primary key default true check (singleton),
  auto_assign       boolean not null default true,
  default_capacity  integer not null default 5 check (default_capacity between 1 and 100),
  -- null or empty: no auto-reply of that kind.
  unavailable_text  text default 'Thanks for your message. All our GREs are busy right now: one of us will be with you as soon as possible.'
                    check (unavailable_text is null or char_length(unavailable_text) <= 1000),
  after_hours_text  text default 'Thanks for your message. The GRE desk is closed right now: we will answer as soon as we open again.'
                    check (after_hours_text is null or char_length(after_hours_text) <= 1000),
  -- [{"day": 0-6 (0 = Sunday), "opens": "HH:MM", "closes": "HH:MM" or "24:00"}, ...];
  -- empty: always open. Checked by trigger (triggers/80_desk_tables.sql).
  hours             jsonb not null default '[]'::jsonb,
  time_zone         text not null default 'UTC' check (char_length(time_zone) <= 64),
  updated_at        timestamptz not null default now(),
  updated_by        text check (updated_by is null or char_length(updated_by) <= 100)
);

insert into public.gre_desk_settings (singleton) values (true) on conflict do nothing;

comment on table public.gre_desk_settings is
  'The GRE desk: automatic assignment, capacity, auto-reply texts, opening hours. One row; staff edit it. Its row lock serializes assignment decisions.';

-- 2. Per-GRE settings -------------------------------------------------------------------------
create table if not exists public.gre_desk_agents (
  gre_id        text primary key check (char_length(gre_id) between 1 and 100),
  -- null: the desk's default_capacity.
  capacity      integer check (capacity is null or capacity between 0 and 100),
  display_name  text check (display_name is null or char_length(display_name) <= 100),
  updated_at    timestamptz not null default now(),
  updated_by    text check (updated_by is null or char_length(updated_by) <= 100)
);

comment on table public.gre_desk_agents is
  'Per-GRE desk settings (capacity: open sessions assigned at most; null = the desk default). Staff edit it.';

-- 3. Canned responses -------------------------------------------------------------------------
create table if not exists public.gre_canned_responses (
  id          uuid primary key default gen_random_uuid(),
  short_code  text not null check (short_code ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
  title       text check (title is null or char_length(title) <= 100),
  body        text not null check (char_length(body) between 1 and 4000 and body ~ '[^[:space:]]'),
  created_by  text check (created_by is null or char_length(created_by) <= 100),
  updated_by  text check (updated_by is null or char_length(updated_by) <= 100),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  deleted_at  timestamptz
);

-- A short code names one live response; a deleted one frees its code.
create unique index if not exists gre_canned_responses_short_code
  on public.gre_canned_responses (short_code) where deleted_at is null;

comment on table public.gre_canned_responses is
  'Saved replies of the GRE desk (/code in the console). Placeholders {gre_name}, {player_id} are expanded by the client that inserts them. deleted_at set = deleted.';

-- 4. Internal notes ---------------------------------------------------------------------------
create table if not exists public.gre_chat_internal_notes (
  id           uuid primary key default gen_random_uuid(),
  session_id   uuid not null references public.gre_chat_sessions (id) on delete cascade,
  kind         text not null default 'note' check (kind in ('note', 'transfer')),
  author_id    text check (author_id is null or char_length(author_id) <= 100),
  author_name  text check (author_name is null or char_length(author_name) <= 100),
  -- A note's text; a transfer's optional note.
  note         text check (note is null or (char_length(note) between 1 and 4000 and note ~ '[^[:space:]]')),
  from_gre_id  text check (from_gre_id is null or char_length(from_gre_id) <= 100),
  to_gre_id    text check (to_gre_id is null or char_length(to_gre_id) <= 100),
  created_at   timestamptz not null default now(),
  constraint gre_chat_internal_notes_note_has_text check (kind <> 'note' or note is not null)
);

create index if not exists gre_chat_internal_notes_session
  on public.gre_chat_internal_notes (session_id, created_at);

comment on table public.gre_chat_internal_notes is
  'Staff-only notes on a GRE chat thread, and the record of each transfer. Players never see them (RLS, relay).';

-- 5. The database's own desk state ------------------------------------------------------------
create table if not exists gre_relay.desk_agent_state (
  gre_id            text primary key,
  -- Round robin among equally loaded GREs: the one assigned least recently goes first.
  last_assigned_at  timestamptz not null
);

create table if not exists gre_relay.desk_queue (
  session_id   uuid primary key references public.gre_chat_sessions (id) on delete cascade,
  -- The GRE who handed it back to the queue: automatic assignment gives it to someone else.
  returned_by  text,
  returned_at  timestamptz not null default now()
);

create table if not exists gre_relay.desk_auto_replies (
  session_id  uuid primary key references public.gre_chat_sessions (id) on delete cascade,
  -- Which auto-reply and for which period it was written (triggers/80_desk_auto_reply.sql).
  period      text not null,
  replied_at  timestamptz not null default now()
);

alter table gre_relay.desk_agent_state enable row level security;
alter table gre_relay.desk_queue enable row level security;
alter table gre_relay.desk_auto_replies enable row level security;

-- 6. Which system line a message is ------------------------------------------------------------
alter table public.gre_chat_messages add column if not exists system_kind text;

do $$
begin
  if not exists (select 1 from pg_catalog.pg_constraint
                  where conrelid = 'public.gre_chat_messages'::regclass
                    and conname = 'gre_chat_messages_system_kind_check') then
    alter table public.gre_chat_messages
      add constraint gre_chat_messages_system_kind_check
      check (system_kind is null
             or (sender = 'system' and system_kind in ('auto_reply', 'after_hours', 'transfer')))
      not valid;
  end if;
end
$$;

-- 7. Indexes for assignment -------------------------------------------------------------------
-- The queue, oldest first.
create index if not exists gre_chat_sessions_unassigned_waiting
  on public.gre_chat_sessions (created_at, id)
  where status = 'waiting' and assigned_gre_id is null;

-- A session's last GRE message, for the auto-reply's period (triggers/80_desk_auto_reply.sql):
-- one index probe however long the player has been writing unanswered. Partial, so player and
-- system messages do not maintain it.
create index if not exists gre_chat_messages_gre_replies
  on public.gre_chat_messages (session_id, seq)
  where sender = 'gre';

-- Each GRE's load: open sessions assigned to it.
create index if not exists gre_chat_sessions_assigned_open
  on public.gre_chat_sessions (assigned_gre_id)
  where status <> 'closed';

-- 8. Privileges -------------------------------------------------------------------------------
alter table public.gre_desk_settings enable row level security;
alter table public.gre_desk_agents enable row level security;
alter table public.gre_canned_responses enable row level security;
alter table public.gre_chat_internal_notes enable row level security;

-- Revoke first: Supabase's default privileges give new tables to anon and authenticated.
revoke all on table public.gre_desk_settings, public.gre_desk_agents,
                    public.gre_canned_responses, public.gre_chat_internal_notes
  from public, anon, authenticated, service_role;

-- The service key: everything but truncate (a truncate fires no row trigger).
grant select, insert, update, delete on table public.gre_desk_settings, public.gre_desk_agents,
                                              public.gre_canned_responses, public.gre_chat_internal_notes
  to service_role;

-- authenticated: what the staff policies (triggers/80_desk_tables.sql) then allow; players get
-- no policy, so no row. Columns the database owns (ids, timestamps, who) are left out.
grant select on table public.gre_desk_settings, public.gre_desk_agents,
                      public.gre_canned_responses, public.gre_chat_internal_notes
  to authenticated;
grant update (auto_assign, default_capacity, unavailable_text, after_hours_text, hours, time_zone)
  on table public.gre_desk_settings to authenticated;
grant insert (gre_id, capacity, display_name) on table public.gre_desk_agents to authenticated;
grant update (capacity, display_name) on table public.gre_desk_agents to authenticated;
grant insert (short_code, title, body) on table public.gre_canned_responses to authenticated;
grant update (short_code, title, body, deleted_at) on table public.gre_canned_responses to authenticated;
grant insert (session_id, author_id, author_name, note) on table public.gre_chat_internal_notes
  to authenticated;
revoke all on table gre_relay.desk_agent_state, gre_relay.desk_queue, gre_relay.desk_auto_replies
  from public, anon, authenticated, service_role;
