-- 50_online_status_notify.sql
-- What: NOTIFY gre-relay (channel 'gre_relay') when a GRE staff member goes online or offline or
--       changes status, whoever wrote the row, so staff consoles and players learn it at once.
--       payload: {"k":"p","greId":"<gre id>"}: a hint; the relay reads the row.
--       Refreshing last_seen alone sends nothing.
-- Touches: function gre_relay.notify_online_status(), triggers gre_online_status_notify_insert
--          and gre_online_status_notify_update.
-- Idempotent: yes (create or replace).

create or replace function gre_relay.notify_online_status() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_catalog.pg_notify(
    'gre_relay',
    pg_catalog.jsonb_build_object('k', 'p', 'greId', new.gre_id)::text
  );
  return null;
end
$$;

create or replace trigger gre_online_status_notify_insert
  after insert on public.gre_online_status
  for each row
  execute function gre_relay.notify_online_status();

create or replace trigger gre_online_status_notify_update
  after update on public.gre_online_status
  for each row
  when (old.is_online is distinct from new.is_online or old.status is distinct from new.status)
  execute function gre_relay.notify_online_status();
