-- 10_message_before_insert.sql
-- What: the before-row triggers of gre_chat_messages, fired in name order:
--   gre_chat_messages_0_writer_rules (before insert, only when row level security applies to the
--   writer, i.e. a direct API caller: the trigger's WHEN clause skips the call for the relay, the
--   service key or a DBA, so their inserts run one trigger function, not two):
--     for a player through the API: only `sender = 'player'` into its own session, sender_id is
--       the player id, and one token of its rate and row cap (triggers/05);
--     for staff through the API: only 'gre' or 'system' messages, signed with the caller's own
--       `sub` (filled when sender_id is null, refused when it differs).
--   gre_chat_messages_0_update_rules (before update, every writer; runs with the writer's rights):
--       an update that changes nothing is skipped (nothing written, nothing announced); a status
--       never moves backwards (sent < delivered < read); a player through the API may only set
--       `status = 'read'` on the other side's messages.
--   gre_chat_messages_before_insert (security definer, every writer):
--     0. at insert, status is 'sent' and created_at is now(), whatever was given;
--     1. number it: seq = the session's last_seq + 1, incremented on the session row. The row lock
--        this takes is held to commit, so two writers into one session are serialized and numbers
--        are handed out in commit order (the resume cursor relies on it: docs/database.md);
--     2. refuse a message into a closed session;
--     3. fill player_id from the session when the writer left it out, and refuse a player_id that
--        contradicts the session; a player message's sender_id is the session's player id;
--     4. the chat gate (CONTRACT section 5): a player message is refused unless
--        gre_relay.player_may_chat() allows it, whoever writes it (the relay included);
--     5. the first GRE reply makes a waiting session active, whoever wrote the row (the relay, the
--        staff portal, a DBA), so the session's status never depends on the writer.
--   Refusals name nothing but the caller's own input. Error codes: docs/database.md.
--   Cost (docs/performance.md, "The database's cost per message, after" and "Issue 12, part 5"):
--   one plpgsql call per row for every writer but an API caller; the numbering UPDATE is a HOT
--   update that names last_seq alone, so it fires no session trigger function and PostgreSQL
--   reads one short WHEN clause (the session triggers are column triggers: triggers/30).
-- Touches: functions gre_relay.message_writer_rules(), gre_relay.message_before_insert(); triggers
--          gre_chat_messages_0_writer_rules, gre_chat_messages_0_update_rules,
--          gre_chat_messages_before_insert; writes gre_chat_sessions.last_seq.
-- Idempotent: yes (create or replace).

-- Not security definer on purpose: row_security_active() and the session lookup must see the
-- writer as it is. The "0" in the triggers' names makes them fire before the numbering trigger,
-- so a refused write never locks or numbers a session. At insert it runs for API callers only
-- (the trigger's WHEN clause); the non-API branch below stays for safety.
create or replace function gre_relay.message_writer_rules() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  v_api     boolean := pg_catalog.row_security_active(tg_relid);
  v_player  bigint;
  v_owner   bigint;
  v_sub     text;
begin
  if tg_op = 'UPDATE' then
    if new is not distinct from old then
      return null;
    end if;
    if (case new.status when 'sent' then 0 when 'delivered' then 1 else 2 end)
       < (case old.status when 'sent' then 0 when 'delivered' then 1 else 2 end) then
      raise exception 'gre_chat_messages: a message''s status only moves forward (sent, delivered, read)'
        using errcode = 'check_violation';
    end if;
    if v_api and not gre_relay.jwt_is_staff()
       and (old.sender = 'player' or new.status <> 'read') then
      raise exception 'gre_chat_messages: players may only mark the other side''s messages read'
        using errcode = 'insufficient_privilege';
    end if;
    return new;
  end if;

  new.status := 'sent';
  new.created_at := pg_catalog.now();
  if not v_api then
    return new;
  end if;

  if gre_relay.jwt_is_staff() then
    if new.sender is distinct from 'gre' and new.sender is distinct from 'system' then
      raise exception 'gre_chat_messages: staff write gre or system messages'
        using errcode = 'insufficient_privilege';
    end if;
    v_sub := auth.jwt() ->> 'sub';
    if new.sender_id is null then
      new.sender_id := v_sub;
    elsif new.sender_id is distinct from v_sub then
      raise exception 'gre_chat_messages: sender_id must be your own staff id'
        using errcode = 'insufficient_privilege';
    end if;
    return new;
  end if;

  v_player := gre_relay.jwt_player_id();
  if v_player is null or new.sender is distinct from 'player' then
    raise exception 'gre_chat_messages: not allowed'
      using errcode = 'insufficient_privilege';
  end if;
  -- Row level security shows the caller its own sessions only: another player's session and a
  -- session that does not exist get the same answer, which names nobody.
  select s.player_id into v_owner from public.gre_chat_sessions s where s.id = new.session_id;
  if v_owner is distinct from v_player or new.player_id <> v_player then
    raise exception 'gre_chat_messages: no session of yours with this id'
      using errcode = 'insufficient_privilege';
  end if;
  perform gre_relay.take_direct_write();
  new.sender_id := v_player::text;
  return new;
end
$$;

-- security definer: the numbering UPDATE must work for every writer, including a player writing
-- through Supabase, whom row level security does not let update sessions, and the chat gate
-- reads the relay's private tables.
create or replace function gre_relay.message_before_insert() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_seq bigint;
  v_player_id bigint;
  v_status text;
begin
  -- The database's, for every writer (an API caller's rules trigger set them already).
  new.status := 'sent';
  new.created_at := pg_catalog.now();

  -- last_seq alone in the SET list: the session's update triggers are column triggers
  -- (`update of`), so PostgreSQL skips all but one short WHEN clause without reading them
  -- (triggers/30, 40, 80, 90; docs/performance.md, "Issue 12, part 5").
  update public.gre_chat_sessions
     set last_seq = last_seq + 1
   where id = new.session_id
  returning last_seq, player_id, status into v_seq, v_player_id, v_status;

  if not found then
    raise exception 'gre_chat_messages: no such session'
      using errcode = 'foreign_key_violation';
  end if;
  if v_status = 'closed' then
    raise exception 'gre_chat_messages: the session is closed'
      using errcode = 'PT409';
  end if;

  -- Rule 5, once per session: a second UPDATE of the row this transaction already holds.
  if new.sender = 'gre' and v_status = 'waiting' then
    update public.gre_chat_sessions set status = 'active' where id = new.session_id;
  end if;

  new.seq := v_seq;
  if new.player_id is null then
    new.player_id := v_player_id;
  elsif new.player_id <> v_player_id then
    raise exception 'gre_chat_messages: player_id does not match the session'
      using errcode = 'check_violation';
  end if;
  if new.sender = 'player' then
    new.sender_id := v_player_id::text;
    -- The body of gre_relay.player_may_chat() (triggers/05) written out, so keep the two in line:
    -- a SQL function with a SET clause is never inlined, and calling it cost 37 us per player
    -- message. OR stops at the first true, so chat_enabled() runs only when chat is not enabled
    -- by default.
    if not (coalesce((select s.chat_enabled_by_default from gre_relay.settings s where s.singleton), true)
            or gre_relay.chat_enabled(v_player_id)) then
      raise exception 'gre_chat_messages: chat is not enabled for this player'
        using errcode = 'PT403';
    end if;
  end if;
  return new;
end
$$;

-- The WHEN clause is evaluated by the executor as the writer (like the function would be), so
-- row_security_active() gives the same answer there as in the function, without its call.
create or replace trigger gre_chat_messages_0_writer_rules
  before insert on public.gre_chat_messages
  for each row
  when (pg_catalog.row_security_active('public.gre_chat_messages'::pg_catalog.regclass))
  execute function gre_relay.message_writer_rules();

create or replace trigger gre_chat_messages_0_update_rules
  before update on public.gre_chat_messages
  for each row execute function gre_relay.message_writer_rules();

create or replace trigger gre_chat_messages_before_insert
  before insert on public.gre_chat_messages
  for each row execute function gre_relay.message_before_insert();
