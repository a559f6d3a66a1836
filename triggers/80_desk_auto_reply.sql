-- 80_desk_auto_reply.sql
-- What: the desk's auto-replies (issue 13; docs/database.md, "The GRE desk"). When a player writes
--       (whoever writes the row: a relay, the player straight through Supabase, a DBA) and no GRE
--       is available for the session, the database adds one `system` message to the thread:
--       gre_desk_settings.unavailable_text within the desk's hours, after_hours_text outside them
--       (system_kind 'auto_reply' or 'after_hours'). It is a row like any message: it is
--       numbered after the player's message, announced, resumed and kept in history; it does not
--       make the session active (only a `gre` message does, triggers/10).
--   Available: the session's assignee is online (any status: it is their session). A session
--     with no assignee is first offered to the queue once more, without waiting
--     (gre_relay.desk_assign_queue(false)): a GRE may be free.
--   At most one per session per period, exactly once: a period is the kind of reply, the number
--     of the session's last GRE message (a GRE reply starts a new period) and, after hours, when
--     the desk closed. The guard is one row per session in gre_relay.desk_auto_replies, claimed
--     with insert ... on conflict do update ... where the period differs: PostgreSQL evaluates
--     that on the latest row version under its row lock, so concurrent player messages (several
--     relays, a direct writer) write one reply between them. (They are serialized anyway by the
--     session row lock every message insert takes to number itself, triggers/10.)
--   Cost: a row trigger with `when (new.sender = 'player')` (GRE and system messages cost no
--     call); a player message into a session whose assignee is online costs one query (two
--     index lookups) and returns.
-- Touches: function gre_relay.desk_auto_reply(), trigger gre_chat_messages_zz_auto_reply; writes
--          gre_chat_messages, gre_relay.desk_auto_replies; reads gre_desk_settings,
--          gre_online_status.
-- Idempotent: yes (create or replace).

-- security definer: a player writing through the API may not write system messages, read staff
-- presence or the desk's settings.
create or replace function gre_relay.desk_auto_reply() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_assignee  text;
  d           public.gre_desk_settings;
  v_local     timestamp;
  v_open      boolean;
  v_kind      text;
  v_text      text;
  v_period    text;
  v_last_gre  bigint;
  v_claimed   uuid;
begin
  -- The usual case, in one query: the session's assignee is online. (The session row is locked
  -- by this transaction already: numbering, triggers/10.)
  if exists (select 1
               from public.gre_chat_sessions s
               join public.gre_online_status o on o.gre_id = s.assigned_gre_id
              where s.id = new.session_id and o.is_online) then
    return null;
  end if;
  select s.assigned_gre_id into v_assignee
    from public.gre_chat_sessions s where s.id = new.session_id;
  -- Offered to the queue only when some GRE is available at all: after hours, with nobody on
  -- duty, a player's message does not even touch the desk row.
  if v_assignee is null
     and exists (select 1 from public.gre_online_status o where o.is_online and o.status = 'online')
     and gre_relay.desk_assign_queue(false) > 0
     and exists (select 1
                   from public.gre_chat_sessions s
                   join public.gre_online_status o on o.gre_id = s.assigned_gre_id
                  where s.id = new.session_id and o.is_online) then
    return null;
  end if;

  select * into d from public.gre_desk_settings s where s.singleton;
  if not found then
    return null;
  end if;
  v_local := pg_catalog.now() at time zone d.time_zone;
  v_open := pg_catalog.jsonb_array_length(d.hours) = 0
    or exists (
      select 1 from pg_catalog.jsonb_array_elements(d.hours) h
       where (h ->> 'day')::int = extract(dow from v_local)::int
         and v_local::time >= (h ->> 'opens')::time
         and v_local::time < (h ->> 'closes')::time
    );
  -- 24:00 as a time is the end of the day, so "closes": "24:00" keeps the desk open to midnight.
  if v_open then
    v_kind := 'auto_reply';
    v_text := d.unavailable_text;
  else
    v_kind := 'after_hours';
    v_text := d.after_hours_text;
  end if;
  if pg_catalog.btrim(coalesce(v_text, '')) = '' then
    return null;
  end if;

  select coalesce(max(m.seq), 0) into v_last_gre
    from public.gre_chat_messages m
   where m.session_id = new.session_id and m.sender = 'gre';
  v_period := v_kind || ':' || v_last_gre::text;
  if not v_open then
    -- When this closed stretch began: the latest closing time before now (local time).
    v_period := v_period || ':' || coalesce((
      select max(c.t - case when c.t > v_local then interval '7 days' else interval '0' end)
        from (
          select (v_local::date
                  - ((extract(dow from v_local)::int - (h ->> 'day')::int + 7) % 7))
                 + (h ->> 'closes')::time as t
            from pg_catalog.jsonb_array_elements(d.hours) h
        ) c
    )::text, '');
  end if;

  insert into gre_relay.desk_auto_replies as g (session_id, period, replied_at)
  values (new.session_id, v_period, pg_catalog.now())
  on conflict (session_id) do update
     set period = excluded.period, replied_at = excluded.replied_at
   where g.period is distinct from excluded.period
  returning g.session_id into v_claimed;
  if v_claimed is null then
    return null;
  end if;

  insert into public.gre_chat_messages (session_id, sender, sender_name, message, system_kind)
  values (new.session_id, 'system', 'GRE desk', pg_catalog.left(v_text, 4000), v_kind);
  return null;
end
$$;

-- "zz": after-row triggers fire in name order, and this one must come after
-- gre_chat_messages_notify_insert (triggers/20), so the player's message is announced before the
-- reply it caused (relays publish a session's messages in number order).
create or replace trigger gre_chat_messages_zz_auto_reply
  after insert on public.gre_chat_messages
  for each row
  when (new.sender = 'player')
  execute function gre_relay.desk_auto_reply();

revoke all on function gre_relay.desk_auto_reply() from public, anon, authenticated, service_role;
