-- 10_message_before_insert.sql
-- What: before each new gre_chat_messages row,
--   1. number it: seq = the session's last_seq + 1, incremented on the session row. The row lock
--      this takes is held to commit, so two writers into one session are serialized and numbers
--      are handed out in commit order (the resume cursor relies on it: docs/database.md);
--   2. fill player_id from the session when the writer left it out, and refuse a player_id that
--      contradicts the session;
--   3. the first GRE reply makes a waiting session active, whoever wrote the row (the relay, the
--      staff portal, a DBA), so the session's status never depends on the writer.
-- Touches: function gre_relay.message_before_insert(), trigger gre_chat_messages_before_insert;
--          writes gre_chat_sessions.last_seq.
-- Idempotent: yes (create or replace).

-- security definer: the numbering UPDATE must work for every writer, including a player writing
-- through Supabase, whom row level security does not let update sessions.
create or replace function gre_relay.message_before_insert() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_seq bigint;
  v_player_id bigint;
begin
  update public.gre_chat_sessions
     set last_seq = last_seq + 1,
         status = case when new.sender = 'gre' and status = 'waiting' then 'active' else status end
   where id = new.session_id
  returning last_seq, player_id into v_seq, v_player_id;

  if not found then
    raise exception 'gre_chat_messages: session % does not exist', new.session_id
      using errcode = 'foreign_key_violation';
  end if;

  new.seq := v_seq;
  if new.player_id is null then
    new.player_id := v_player_id;
  elsif new.player_id <> v_player_id then
    raise exception 'gre_chat_messages: player_id % does not match session % (player %)',
      new.player_id, new.session_id, v_player_id
      using errcode = 'check_violation';
  end if;
  return new;
end
$$;

create or replace trigger gre_chat_messages_before_insert
  before insert on public.gre_chat_messages
  for each row execute function gre_relay.message_before_insert();
