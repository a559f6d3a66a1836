-- 20_message_notify.sql
-- What: after each statement that inserts or updates gre_chat_messages rows, tell gre-relay with
--       NOTIFY on channel 'gre_relay'. One statement costs one NOTIFY (more only when the rows do
--       not fit in one), so an announcement to 2,000 sessions is a handful of notifications.
--
--   payload: {"k":"m","op":"i"|"u","rows":[ item, ... ]}   (k = kind, op = insert | update)
--   item:    the message as gre_relay.message_json() shapes it, or, when that alone would not fit
--            in NOTIFY's 8000-byte payload (4000 characters of 4-byte emoji are 16000 bytes), a
--            reference {"ref":true,"id":...,"sessionId":...,"cursor":...} that the relay reads
--            back from the table. So no row is ever lost to the size limit.
--   Items are in (session, seq) order, so the relay sees each session's messages in order.
-- Touches: function gre_relay.notify_message_changes(), triggers gre_chat_messages_notify_insert
--          and gre_chat_messages_notify_update.
-- Idempotent: yes (create or replace).

create or replace function gre_relay.notify_message_changes() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  -- NOTIFY refuses payloads of 8000 bytes or more; keep a margin for the envelope.
  c_limit constant int := 7900;
  v_head  text := '{"k":"m","op":"' || case tg_op when 'INSERT' then 'i' else 'u' end || '","rows":[';
  v_body  text := '';
  v_item  text;
  r       record;
begin
  for r in
    select n.id, n.session_id, n.seq, gre_relay.message_json(n)::text as j
      from new_rows n
     order by n.session_id, n.seq
  loop
    v_item := r.j;
    if octet_length(v_head) + octet_length(v_item) + 2 > c_limit then
      v_item := pg_catalog.jsonb_build_object(
        'ref', true, 'id', r.id, 'sessionId', r.session_id, 'cursor', r.seq::text)::text;
    end if;
    if v_body <> '' and octet_length(v_head) + octet_length(v_body) + octet_length(v_item) + 3 > c_limit then
      perform pg_catalog.pg_notify('gre_relay', v_head || v_body || ']}');
      v_body := '';
    end if;
    v_body := case when v_body = '' then v_item else v_body || ',' || v_item end;
  end loop;
  if v_body <> '' then
    perform pg_catalog.pg_notify('gre_relay', v_head || v_body || ']}');
  end if;
  return null;
end
$$;

create or replace trigger gre_chat_messages_notify_insert
  after insert on public.gre_chat_messages
  referencing new table as new_rows
  for each statement execute function gre_relay.notify_message_changes();

create or replace trigger gre_chat_messages_notify_update
  after update on public.gre_chat_messages
  referencing new table as new_rows
  for each statement execute function gre_relay.notify_message_changes();
