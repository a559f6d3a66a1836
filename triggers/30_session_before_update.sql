-- 30_session_before_update.sql
-- What: keep gre_chat_sessions.updated_at and closed_at true, whoever writes a session:
--       updated_at moves when status or assignment changes; closed_at is set when the session
--       closes (or is inserted closed) and cleared if it is reopened. Numbering messages (last_seq) does not count as a
--       change of the session.
-- Touches: function gre_relay.session_before_update(), trigger gre_chat_sessions_before_update.
-- Idempotent: yes (create or replace).

create or replace function gre_relay.session_before_update() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if tg_op = 'INSERT' then
    if new.status = 'closed' then
      new.closed_at := coalesce(new.closed_at, pg_catalog.now());
    else
      new.closed_at := null;
    end if;
    return new;
  end if;
  if new.status is distinct from old.status
     or new.assigned_gre_id is distinct from old.assigned_gre_id then
    new.updated_at := pg_catalog.now();
  end if;
  if new.status = 'closed' and old.status <> 'closed' then
    new.closed_at := coalesce(new.closed_at, pg_catalog.now());
  elsif new.status <> 'closed' then
    new.closed_at := null;
  end if;
  return new;
end
$$;

create or replace trigger gre_chat_sessions_before_update
  before insert or update on public.gre_chat_sessions
  for each row execute function gre_relay.session_before_update();
