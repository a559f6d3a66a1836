-- 0090_presence.sql
-- What: who is connected, across every gre-relay process on this database, so that
--         * gre_online_status is right with several tabs and several relays, and
--         * the push trigger knows whether a player has a live connection anywhere.
--       Each relay registers itself in relay_instances and refreshes heartbeat_at every few
--       seconds; it records in presence each player and staff member it holds at least one socket
--       of. A relay that crashes stops its heartbeat: after presence_stale_after() its rows no
--       longer count, and the next relay heartbeat deletes them and marks its staff offline.
-- Touches: tables gre_relay.relay_instances, gre_relay.presence; functions
--          gre_relay.presence_stale_after(), gre_relay.is_connected(text, text),
--          gre_relay.refresh_staff_presence(text), gre_relay.reap_stale_relays();
--          writes public.gre_online_status.
-- Idempotent: yes.

create table if not exists gre_relay.relay_instances (
  instance_id   uuid primary key,
  hostname      text,
  started_at    timestamptz not null default now(),
  heartbeat_at  timestamptz not null default now()
);

create table if not exists gre_relay.presence (
  kind          text not null check (kind in ('player', 'staff')),
  subject       text not null,        -- the player id (as text) or the staff id
  instance_id   uuid not null references gre_relay.relay_instances (instance_id) on delete cascade,
  connected_at  timestamptz not null default now(),
  primary key (kind, subject, instance_id)
);

create index if not exists presence_instance on gre_relay.presence (instance_id);

alter table gre_relay.relay_instances enable row level security;
alter table gre_relay.presence enable row level security;

comment on table gre_relay.presence is
  'One row per (player or staff member, relay process) with at least one live WebSocket.';

-- How long a relay may miss heartbeats before its connections stop counting. Relays beat every
-- 5 seconds (presence::HEARTBEAT in src/presence.rs); this leaves room for a slow database.
create or replace function gre_relay.presence_stale_after() returns interval
  language sql immutable
  set search_path = ''
  as $$ select interval '20 seconds' $$;

-- Whether the player or staff member has a live connection on any healthy relay.
create or replace function gre_relay.is_connected(p_kind text, p_subject text) returns boolean
  language sql stable
  set search_path = ''
  as $$
    select exists (
      select 1
        from gre_relay.presence p
        join gre_relay.relay_instances i on i.instance_id = p.instance_id
       where p.kind = p_kind
         and p.subject = p_subject
         and i.heartbeat_at > pg_catalog.now() - gre_relay.presence_stale_after()
    )
  $$;

-- Brings one staff member's gre_online_status row in line with the presence table. An explicit
-- 'away' or 'busy' survives while the staff member stays online.
create or replace function gre_relay.refresh_staff_presence(p_gre_id text) returns void
  language plpgsql
  set search_path = ''
  as $$
declare
  v_online boolean := gre_relay.is_connected('staff', p_gre_id);
begin
  insert into public.gre_online_status as o (gre_id, is_online, status, last_seen)
  values (p_gre_id, v_online, case when v_online then 'online' else 'offline' end, pg_catalog.now())
  on conflict (gre_id) do update
     set is_online = excluded.is_online,
         status = case
                    when not excluded.is_online then 'offline'
                    when o.is_online and o.status in ('away', 'busy') then o.status
                    else 'online'
                  end,
         last_seen = pg_catalog.now()
   where o.is_online is distinct from excluded.is_online
      or (not excluded.is_online and o.status <> 'offline')
      or (excluded.is_online and o.status = 'offline')
      or excluded.is_online;  -- keep last_seen fresh while online
end
$$;

-- Forgets relays that stopped beating and marks offline the staff they were the last to hold.
-- Every relay calls it on its heartbeat; several doing so at once is harmless.
create or replace function gre_relay.reap_stale_relays() returns integer
  language plpgsql
  set search_path = ''
  as $$
declare
  v_reaped integer;
  v_gre_id text;
begin
  with gone as (
    delete from gre_relay.relay_instances
     where heartbeat_at < pg_catalog.now() - gre_relay.presence_stale_after()
    returning instance_id
  )
  select count(*) into v_reaped from gone;
  for v_gre_id in
    select o.gre_id from public.gre_online_status o
     where o.is_online and not gre_relay.is_connected('staff', o.gre_id)
  loop
    perform gre_relay.refresh_staff_presence(v_gre_id);
  end loop;
  return v_reaped;
end
$$;
