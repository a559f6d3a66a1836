-- 0080_chat_access.sql
-- What: who may chat when the relay runs with chat.enabled_by_default = false
--       (GRE_CHAT__ENABLED_BY_DEFAULT=false). A player may chat when chat is enabled by default,
--       or enabled for everyone here, or enabled for that player here.
--         POST /api/gre-chat/enable-all-players    sets all_players_enabled (covers players who never chatted)
--         POST /api/gre-chat/enable-player/:id     adds a row to chat_enabled_players
--       DBAs may do the same with SQL:
--         update gre_relay.chat_access set all_players_enabled = true;
--         insert into gre_relay.chat_enabled_players (player_id) values (29) on conflict do nothing;
-- Touches: tables gre_relay.chat_access (one row), gre_relay.chat_enabled_players;
--          function gre_relay.chat_enabled(bigint).
-- Idempotent: yes.

create table if not exists gre_relay.chat_access (
  singleton            boolean primary key default true check (singleton),  -- exactly one row
  all_players_enabled  boolean not null default false,
  updated_at           timestamptz not null default now(),
  updated_by           text
);

insert into gre_relay.chat_access (singleton) values (true) on conflict do nothing;

create table if not exists gre_relay.chat_enabled_players (
  player_id   bigint primary key,
  enabled_at  timestamptz not null default now(),
  enabled_by  text
);

comment on table gre_relay.chat_access is
  'Chat access switch for every player (used when chat is not enabled by default).';
comment on table gre_relay.chat_enabled_players is
  'Players for whom GRE staff enabled chat (used when chat is not enabled by default).';

-- Relay-only tables: no API role reads them directly.
alter table gre_relay.chat_access enable row level security;
alter table gre_relay.chat_enabled_players enable row level security;

-- Whether chat was enabled for this player, by the switch or individually.
create or replace function gre_relay.chat_enabled(p_player_id bigint) returns boolean
  language sql stable
  set search_path = ''
  as $$
    select coalesce((select a.all_players_enabled from gre_relay.chat_access a where a.singleton), false)
        or exists (select 1 from gre_relay.chat_enabled_players e where e.player_id = p_player_id)
  $$;
