-- 40_session_notify.sql
-- What: NOTIFY gre-relay (channel 'gre_relay') when a session is opened, or its status or
--       assignment changes, whoever wrote it, so every client gets `session_updated`.
--       payload: {"k":"s","session": gre_relay.session_json(row)}  (always far below 8000 bytes)
--       Numbering a message (last_seq) is not a change of the session and sends nothing.
-- Touches: function gre_relay.notify_session_change(), triggers gre_chat_sessions_notify_insert
--          and gre_chat_sessions_notify_update.
-- Idempotent: yes (create or replace).

create or replace function gre_relay.notify_session_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_catalog.pg_notify(
    'gre_relay',
    pg_catalog.jsonb_build_object('k', 's', 'session', gre_relay.session_json(new))::text
  );
  return null;
end
$$;

create or replace trigger gre_chat_sessions_notify_insert
  after insert on public.gre_chat_sessions
  for each row execute function gre_relay.notify_session_change();

create or replace trigger gre_chat_sessions_notify_update
  after update on public.gre_chat_sessions
  for each row
  when (old.status is distinct from new.status
        or old.assigned_gre_id is distinct from new.assigned_gre_id)
  execute function gre_relay.notify_session_change();
