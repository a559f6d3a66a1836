-- 60_message_push_notification.sql
-- What: a GRE message to a player who has no live connection on any gre-relay process produces
--       one push_notifications row (type 'gre_chat'), whoever wrote the message. A connected
--       player gets none: the relay delivers the message itself. "Connected" is judged from
--       gre_relay.presence (sql/0090_presence.sql), so it holds across relay processes.
--       One statement inserting many messages (an announcement) costs one insert here.
-- Touches: function gre_relay.push_for_offline_players(), trigger
--          gre_chat_messages_push_notification; writes public.push_notifications.
-- Idempotent: yes (create or replace).

-- security definer: the writer (staff through Supabase) may not insert notifications or read
-- the relay's presence tables itself.
create or replace function gre_relay.push_for_offline_players() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
begin
  insert into public.push_notifications (player_id, title, message, type)
  select n.player_id,
         'New message from ' || coalesce(nullif(pg_catalog.btrim(n.sender_name), ''), 'the GRE team'),
         pg_catalog.left(n.message, 500),
         'gre_chat'
    from new_rows n
   where n.sender = 'gre'
     and not gre_relay.is_connected('player', n.player_id::text);
  return null;
end
$$;

create or replace trigger gre_chat_messages_push_notification
  after insert on public.gre_chat_messages
  referencing new table as new_rows
  for each statement
  execute function gre_relay.push_for_offline_players();
