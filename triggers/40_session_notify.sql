-- 40_session_notify.sql
-- What: NOTIFY gre-relay (channel 'gre_relay') when a session is opened, or its status or
--       assignment changes, whoever wrote it, so every client gets `session_updated`.
--       payload: {"k":"s","id":"<session id>"}: a hint with the session's id only (no player id:
--       anyone with a login may LISTEN). The relay reads the session row and routes from it.
--       Numbering a message (last_seq) is not a change of the session and sends nothing.
-- Touches: function gre_relay.notify_session_change(), triggers gre_chat_sessions_notify_insert
--          and gre_chat_sessions_notify_update.
-- Idempotent: yes (create or replace).

create or replace function gre_relay.notify_session_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_catalog.pg_notify('gre_relay', '{"k":"s","id":"' || new.id::text || '"}');
  return null;
end
$$;

create or replace trigger gre_chat_sessions_notify_insert
  after insert on public.gre_chat_sessions
  for each row execute function gre_relay.notify_session_change();

-- `update of status, assigned_gre_id`: a message's numbering UPDATE names last_seq alone, so
-- PostgreSQL skips this trigger without reading its WHEN clause (no before-update trigger
-- changes either column on its own). docs/performance.md, "Issue 12, part 5".
create or replace trigger gre_chat_sessions_notify_update
  after update of status, assigned_gre_id on public.gre_chat_sessions
  for each row
  when (old.status is distinct from new.status
        or old.assigned_gre_id is distinct from new.assigned_gre_id)
  execute function gre_relay.notify_session_change();
