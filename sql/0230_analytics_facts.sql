-- 0230_analytics_facts.sql
-- What: the tables behind the chat analytics (docs/analytics.md). An episode (a session from its
--       opening or reopening to its closing) is summed up once, when it closes, by the trigger of
--       triggers/90_analytics.sql; inserting a message writes nothing here.
--         gre_relay.analytics_episodes       one row per episode: where it starts and ends (time
--                                            and seq), its assignee, first player message, first
--                                            GRE reply, message counts, the GREs who replied. A row
--                                            with closed_at null is an episode opened by a
--                                            reopening and not closed yet (first episodes get
--                                            their row at closing).
--         gre_relay.analytics_replies        one row per answered player message of a closed
--                                            episode: the reply time sample.
--         gre_relay.analytics_message_counts messages of closed episodes per 15-minute bucket,
--                                            sender and GRE.
--       Staff read them under row level security (select only); nobody but the owner writes.
-- Touches: creates the three tables, their indexes, policies and grants.
-- Idempotent: yes (if not exists; drop policy if exists, then create; revoke, then grant).

create table if not exists gre_relay.analytics_episodes (
  session_id       uuid not null references public.gre_chat_sessions (id) on delete cascade,
  episode          integer not null check (episode >= 1),
  player_id        bigint not null,
  opened_at        timestamptz not null,
  start_seq        bigint not null,
  closed_at        timestamptz,
  end_seq          bigint,
  assigned_gre_id  text,
  first_player_seq bigint,
  first_player_at  timestamptz,
  first_reply_seq  bigint,
  first_reply_at   timestamptz,
  first_reply_gre  text,
  player_messages  integer not null default 0,
  gre_messages     integer not null default 0,
  repliers         text[] not null default '{}',
  primary key (session_id, episode)
);

-- The period filter of every report.
create index if not exists analytics_episodes_opened
  on gre_relay.analytics_episodes (opened_at);
-- At most one open (reopened) episode per session; the live part of a report joins on it.
create unique index if not exists analytics_episodes_open
  on gre_relay.analytics_episodes (session_id) where closed_at is null;

create table if not exists gre_relay.analytics_replies (
  session_id  uuid not null references public.gre_chat_sessions (id) on delete cascade,
  player_seq  bigint not null,
  player_at   timestamptz not null,
  reply_seq   bigint not null,
  reply_at    timestamptz not null,
  gre_id      text,
  seconds     double precision not null check (seconds >= 0),
  primary key (session_id, player_seq)
);

-- The period filter, covering what the report reads (an index-only scan).
create index if not exists analytics_replies_player_at
  on gre_relay.analytics_replies (player_at) include (seconds, gre_id);

create table if not exists gre_relay.analytics_message_counts (
  bucket    timestamptz not null,
  sender    text not null check (sender in ('player', 'gre')),
  gre_id    text not null default '',
  messages  bigint not null check (messages >= 0),
  primary key (bucket, sender, gre_id)
);

alter table gre_relay.analytics_episodes       enable row level security;
alter table gre_relay.analytics_replies        enable row level security;
alter table gre_relay.analytics_message_counts enable row level security;

revoke all on table gre_relay.analytics_episodes, gre_relay.analytics_replies,
                    gre_relay.analytics_message_counts
  from public, anon, authenticated, service_role;
-- Staff read them through public.gre_chat_analytics() (invoker rights); the policies below
-- show a player nothing. service_role bypasses row level security, as on Supabase.
grant select on table gre_relay.analytics_episodes, gre_relay.analytics_replies,
                      gre_relay.analytics_message_counts
  to authenticated, service_role;

drop policy if exists "staff read analytics episodes" on gre_relay.analytics_episodes;
create policy "staff read analytics episodes" on gre_relay.analytics_episodes
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff read analytics replies" on gre_relay.analytics_replies;
create policy "staff read analytics replies" on gre_relay.analytics_replies
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff read analytics message counts" on gre_relay.analytics_message_counts;
create policy "staff read analytics message counts" on gre_relay.analytics_message_counts
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
