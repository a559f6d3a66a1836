-- 0010_chat_sessions.sql
-- What: one row per conversation between one player and the GRE team.
-- Touches: table public.gre_chat_sessions and its indexes.
-- Idempotent: yes.
--
-- Beyond the pinned columns: last_seq, the number of the session's last message. The message
-- trigger (triggers/10_message_before_insert.sql) increments it while holding this row's lock, so
-- within one session message numbers are handed out in commit order. That is what makes the cursor
-- exact: "every message with seq > N" never skips a row that committed late. See docs/database.md.

create table if not exists public.gre_chat_sessions (
  id               uuid primary key default gen_random_uuid(),
  player_id        bigint not null,
  status           text not null default 'waiting',
  assigned_gre_id  text,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  closed_at        timestamptz,
  last_seq         bigint not null default 0,
  constraint gre_chat_sessions_status_check check (status in ('waiting', 'active', 'closed'))
);

-- Adopting a gre_chat_sessions table that predates gre-relay (the original system's): add what
-- gre-relay needs. Constraints are added NOT VALID, so old rows are not rechecked but new ones are.
alter table public.gre_chat_sessions add column if not exists last_seq bigint not null default 0;

do $$
begin
  if not exists (select 1 from pg_catalog.pg_constraint
                  where conrelid = 'public.gre_chat_sessions'::regclass
                    and conname = 'gre_chat_sessions_status_check') then
    alter table public.gre_chat_sessions
      add constraint gre_chat_sessions_status_check check (status in ('waiting', 'active', 'closed')) not valid;
  end if;
end
$$;

comment on table public.gre_chat_sessions is
  'GRE chat: one conversation between a player and the GRE team. waiting = player spoke, no GRE reply yet; active = a GRE replied; closed.';
comment on column public.gre_chat_sessions.last_seq is
  'Number of the last message of this session (maintained by trigger; cursor for resuming).';

-- At most one session per player is not closed.
create unique index if not exists gre_chat_sessions_one_open_per_player
  on public.gre_chat_sessions (player_id)
  where status <> 'closed';

-- A player's history, newest session first (REST /messages/:playerId).
create index if not exists gre_chat_sessions_player_created
  on public.gre_chat_sessions (player_id, created_at desc);

-- The staff console lists sessions by status.
create index if not exists gre_chat_sessions_status_updated
  on public.gre_chat_sessions (status, updated_at desc);
