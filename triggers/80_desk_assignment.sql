-- 80_desk_assignment.sql
-- What: automatic assignment of waiting sessions to GREs (issue 13; docs/database.md, "The GRE
--       desk"), decided once, in the database, whoever writes (relays, the staff portal, a DBA):
--   gre_relay.desk_assign_queue(p_wait) assigns unassigned waiting sessions, oldest first, each
--     to an available GRE: gre_online_status says online (is_online and status 'online', not
--     'away' or 'busy'), fewer open sessions than its capacity (gre_desk_agents.capacity, else
--     gre_desk_settings.default_capacity), least loaded first, ties to the one assigned least
--     recently (round robin), never to the GRE who handed that session back to the queue.
--     Locks: it first locks the desk settings row, so decisions are made one at a time (two
--     relays, or a relay and a direct writer, never assign one session twice nor fill a GRE past
--     capacity: the load is counted under the lock, by a statement that sees every committed
--     assignment). It never waits for a session row (`for update skip locked`): a session locked
--     by a writer is left for the next sweep, and so the lock order is always desk, then
--     sessions, and no deadlock can form. p_wait = false (the player-message path, which already
--     holds a session row) gives up at once when another transaction holds the desk.
--   Sweeps run from triggers: a session is opened waiting and unassigned; a session loses its
--     assignee or is closed (capacity freed, or handed back); a GRE becomes available; the desk
--     settings or a GRE's capacity change.
--   Assumes READ COMMITTED (PostgreSQL's and PostgREST's default): each statement in the sweep
--     sees what committed before the desk lock was granted.
-- Touches: functions gre_relay.desk_assign_queue(boolean), gre_relay.desk_assign_trigger();
--          triggers on gre_chat_sessions, gre_online_status, gre_desk_settings, gre_desk_agents;
--          writes gre_chat_sessions.assigned_gre_id, gre_relay.desk_agent_state,
--          gre_relay.desk_queue.
-- Idempotent: yes (create or replace).

-- security definer: it runs for any writer (a player opening a session through the API may not
-- update sessions or read staff presence), and it reads and writes the desk's private tables.
create or replace function gre_relay.desk_assign_queue(p_wait boolean) returns integer
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_auto      boolean;
  v_default   integer;
  v_session   uuid;
  v_returned  text;
  v_gre       text;
  v_skipped   uuid[] := '{}';
  v_assigned  integer := 0;
begin
  if p_wait then
    select d.auto_assign, d.default_capacity into v_auto, v_default
      from public.gre_desk_settings d where d.singleton for update;
  else
    select d.auto_assign, d.default_capacity into v_auto, v_default
      from public.gre_desk_settings d where d.singleton for update skip locked;
  end if;
  -- No row (deleted by hand) or busy elsewhere, or switched off: nothing to decide here.
  if not found or not v_auto then
    return 0;
  end if;

  -- Bounded: a sweep hands out at most 500 sessions (far more than a desk's total capacity).
  for i in 1..500 loop
    select s.id, q.returned_by into v_session, v_returned
      from public.gre_chat_sessions s
      left join gre_relay.desk_queue q on q.session_id = s.id
     where s.status = 'waiting' and s.assigned_gre_id is null
       and s.id <> all (v_skipped)
     order by s.created_at, s.id
     limit 1
     for update of s skip locked;
    exit when not found;

    select o.gre_id into v_gre
      from public.gre_online_status o
      left join public.gre_desk_agents a on a.gre_id = o.gre_id
      left join gre_relay.desk_agent_state st on st.gre_id = o.gre_id
      cross join lateral (
        select pg_catalog.count(*) as n
          from public.gre_chat_sessions l
         where l.assigned_gre_id = o.gre_id and l.status <> 'closed'
      ) load
     where o.is_online and o.status = 'online'
       and o.gre_id is distinct from v_returned
       and load.n < coalesce(a.capacity, v_default)
     order by load.n, st.last_assigned_at nulls first, o.gre_id
     limit 1;

    if not found then
      -- Nobody for this one. Only a session handed back by the one GRE who is free could still
      -- go to someone else: skip it and look at the next.
      exit when v_returned is null;
      v_skipped := v_skipped || v_session;
      continue;
    end if;

    update public.gre_chat_sessions set assigned_gre_id = v_gre where id = v_session;
    insert into gre_relay.desk_agent_state as st (gre_id, last_assigned_at)
    values (v_gre, pg_catalog.clock_timestamp())
    on conflict (gre_id) do update set last_assigned_at = excluded.last_assigned_at;
    delete from gre_relay.desk_queue where session_id = v_session;
    v_assigned := v_assigned + 1;
  end loop;
  return v_assigned;
end
$$;

create or replace function gre_relay.desk_assign_trigger() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
begin
  perform gre_relay.desk_assign_queue(true);
  return null;
end
$$;

-- A session opened waiting and unassigned (the first player message, a staff portal's insert).
create or replace trigger gre_chat_sessions_desk_assign_insert
  after insert on public.gre_chat_sessions
  for each row
  when (new.status = 'waiting' and new.assigned_gre_id is null)
  execute function gre_relay.desk_assign_trigger();

-- Capacity freed or a session handed back: it had an assignee, and lost it or was closed. (A
-- session without an assignee is the queue itself, so its changes need no sweep; this also keeps
-- a transaction that holds such a session from waiting for the desk while a sweep holds the desk
-- and skips that session.)
-- `update of`: a message's numbering UPDATE (last_seq alone) skips it unread (triggers/40).
create or replace trigger gre_chat_sessions_desk_assign_update
  after update of assigned_gre_id, status on public.gre_chat_sessions
  for each row
  when (old.assigned_gre_id is not null
        and (new.assigned_gre_id is distinct from old.assigned_gre_id
             or (new.status = 'closed' and old.status <> 'closed')))
  execute function gre_relay.desk_assign_trigger();

-- A GRE became available (came online, or back from away or busy). Refreshing last_seen alone
-- fires nothing.
create or replace trigger gre_online_status_desk_assign_insert
  after insert on public.gre_online_status
  for each row
  when (new.is_online and new.status = 'online')
  execute function gre_relay.desk_assign_trigger();

create or replace trigger gre_online_status_desk_assign_update
  after update on public.gre_online_status
  for each row
  when (new.is_online and new.status = 'online'
        and (old.is_online is distinct from new.is_online or old.status is distinct from new.status))
  execute function gre_relay.desk_assign_trigger();

-- Automatic assignment switched on, or more capacity.
create or replace trigger gre_desk_settings_desk_assign
  after update on public.gre_desk_settings
  for each row
  when (new.auto_assign and (not old.auto_assign or new.default_capacity > old.default_capacity))
  execute function gre_relay.desk_assign_trigger();

create or replace trigger gre_desk_agents_desk_assign_insert
  after insert on public.gre_desk_agents
  for each row execute function gre_relay.desk_assign_trigger();

create or replace trigger gre_desk_agents_desk_assign_update
  after update on public.gre_desk_agents
  for each row
  when (new.capacity is distinct from old.capacity)
  execute function gre_relay.desk_assign_trigger();

revoke all on function gre_relay.desk_assign_queue(boolean) from public, anon, authenticated, service_role;
revoke all on function gre_relay.desk_assign_trigger() from public, anon, authenticated, service_role;
