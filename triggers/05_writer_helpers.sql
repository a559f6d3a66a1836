-- 05_writer_helpers.sql
-- What: the helpers the write rules of triggers/10 and 30 call (docs/database.md, "What the
--       database guarantees to direct writers"):
--         gre_relay.player_may_chat(player_id)  the chat gate (CONTRACT section 5) in SQL, from the
--                                               setting the relay stored in gre_relay.settings;
--         gre_relay.caller_may_chat()           the same for the caller's own JWT (a player opening
--                                               a session through the API);
--         gre_relay.take_direct_write()         one token of the caller's bucket and one row of its
--                                               statement's cap, for a message a player writes
--                                               straight through the API.
--       The two caller_ / take_ functions are security definer because they read or write the
--       relay's private tables for a caller who may not; they take no argument and act only on
--       the caller's own player id (from app_metadata), so calling them directly can only spend
--       the caller's own budget.
-- Touches: functions gre_relay.player_may_chat(bigint), gre_relay.caller_may_chat(),
--          gre_relay.take_direct_write(); reads gre_relay.settings, gre_relay.chat_access,
--          gre_relay.chat_enabled_players; writes gre_relay.direct_write_buckets.
-- Idempotent: yes (create or replace).

-- Whether this player may write a message now: chat is enabled by default (the relay's setting,
-- stored at its start), or enabled for everyone, or for this player. No settings row means the
-- relay's default, enabled.
create or replace function gre_relay.player_may_chat(p_player_id bigint) returns boolean
  language sql stable
  set search_path = ''
  as $$
    select coalesce((select s.chat_enabled_by_default from gre_relay.settings s where s.singleton), true)
        or gre_relay.chat_enabled(p_player_id)
  $$;

create or replace function gre_relay.caller_may_chat() returns boolean
  language sql stable
  security definer
  set search_path = ''
  as $$
    select coalesce(gre_relay.player_may_chat(gre_relay.jwt_player_id()), false)
  $$;

-- Spends one token of the calling player's bucket (refilled at player_messages_per_second up to
-- player_messages_burst, the relay's websocket.frames_per_second / frames_burst) and counts one
-- row against player_rows_per_statement. Raises PT413 past the row cap and PT429 when the bucket
-- is empty; PostgREST answers those with HTTP 413 and 429. A refused statement rolls back, so it
-- spends nothing, and stores nothing.
create or replace function gre_relay.take_direct_write() returns void
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_player  bigint := gre_relay.jwt_player_id();
  v_now     timestamptz := pg_catalog.clock_timestamp();
  v_rate    double precision := 10;
  v_burst   double precision := 30;
  v_cap     integer := 10;
  v_tokens  double precision;
  v_rows    integer;
  b         gre_relay.direct_write_buckets;
begin
  if v_player is null then
    raise exception 'gre_chat_messages: not allowed' using errcode = 'insufficient_privilege';
  end if;
  select s.player_messages_per_second, s.player_messages_burst, s.player_rows_per_statement
    into v_rate, v_burst, v_cap
    from gre_relay.settings s where s.singleton;
  -- No settings row (files applied by hand, relay never started): the relay's defaults.
  if not found then
    v_rate := 10; v_burst := 30; v_cap := 10;
  end if;

  insert into gre_relay.direct_write_buckets (player_id, tokens, refilled_at)
  values (v_player, v_burst, v_now)
  on conflict (player_id) do nothing;
  -- The row lock serializes a player's concurrent statements, so no token is spent twice.
  select * into b from gre_relay.direct_write_buckets where player_id = v_player for update;

  v_tokens := least(v_burst,
                    b.tokens + greatest(0, extract(epoch from v_now - b.refilled_at)) * v_rate);
  -- Rows of one statement share the backend and the statement's start time.
  if b.statement_pid = pg_catalog.pg_backend_pid() and b.statement_at = pg_catalog.statement_timestamp() then
    v_rows := b.statement_rows + 1;
  else
    v_rows := 1;
  end if;

  if v_rows > v_cap then
    raise exception 'gre_chat_messages: at most % messages per statement', v_cap
      using errcode = 'PT413';
  end if;
  if v_tokens < 1 then
    raise exception 'gre_chat_messages: too many messages, slow down'
      using errcode = 'PT429',
            hint = pg_catalog.format('at most %s messages a second on average', v_rate);
  end if;

  update gre_relay.direct_write_buckets
     set tokens = v_tokens - 1,
         refilled_at = v_now,
         statement_pid = pg_catalog.pg_backend_pid(),
         statement_at = pg_catalog.statement_timestamp(),
         statement_rows = v_rows
   where player_id = v_player;
end
$$;
