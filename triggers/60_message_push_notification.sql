-- 60_message_push_notification.sql
-- What: a GRE message to a player who has no live connection on any gre-relay process produces
--       one push_notifications row (type 'gre_chat'), whoever wrote the message. A connected
--       player gets none: the relay delivers the message itself. "Connected" is judged from
--       gre_relay.presence (sql/0090_presence.sql), so it holds across relay processes.
--       A row trigger with `when (new.sender = 'gre')`: player and system messages cost no call
--       at all, and a GRE message costs one index lookup of the presence table (the body of
--       gre_relay.is_connected(), written out here: a SQL function with a SET clause is never
--       inlined, and calling it cost 140 µs per row, a third of the insert; docs/performance.md).
--       An attachment sent without text (message_is_label, sql/0220) is announced as
--       "Anna sent a photo" or "Anna sent a file".
-- Touches: function gre_relay.push_for_offline_players(), trigger
--          gre_chat_messages_push_notification; writes public.push_notifications.
-- Idempotent: yes (create or replace; the trigger is dropped and created again because it was a
--             statement trigger with a transition table before, which "create or replace" cannot
--             turn into a row trigger).

-- security definer: the writer (staff through Supabase) may not insert notifications or read
-- the relay's presence tables itself.
create or replace function gre_relay.push_for_offline_players() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
begin
  -- Keep in line with gre_relay.is_connected() (sql/0090): a presence row on a relay whose
  -- heartbeat is fresh. The player is connected in the usual case, so the insert (and its
  -- executor set-up) is reached only for an offline player.
  if exists (
    select 1
      from gre_relay.presence p
      join gre_relay.relay_instances i on i.instance_id = p.instance_id
     where p.kind = 'player'
       and p.subject = new.player_id::text
       and i.heartbeat_at > pg_catalog.now() - gre_relay.presence_stale_after()
  ) then
    return null;
  end if;
  insert into public.push_notifications (player_id, title, message, type)
  values (new.player_id,
          'New message from ' || coalesce(nullif(pg_catalog.btrim(new.sender_name), ''), 'the GRE team'),
          -- An attachment sent alone: its `message` is the file name, a label; say what came.
          case when new.message_is_label
               then coalesce(nullif(pg_catalog.btrim(new.sender_name), ''), 'The GRE team')
                    || case when new.attachment_type like 'image/%' then ' sent a photo' else ' sent a file' end
               else pg_catalog.left(new.message, 500) end,
          'gre_chat');
  return null;
end
$$;

-- Dropped first: "create or replace trigger" cannot drop the transition table of the statement
-- trigger this used to be.
drop trigger if exists gre_chat_messages_push_notification on public.gre_chat_messages;
create trigger gre_chat_messages_push_notification
  after insert on public.gre_chat_messages
  for each row
  when (new.sender = 'gre')
  execute function gre_relay.push_for_offline_players();
