-- 80_desk_transfer.sql
-- What: gre_relay.desk_transfer(): a GRE hands a session to another GRE, or back to the queue,
--       with an optional note (issue 13; docs/database.md, "The GRE desk"). In one transaction:
--         the session's assignee changes (clients get session_updated);
--         the thread gets a `system` line (system_kind 'transfer') the player may read:
--           "Anna transferred the chat to Ben", "Anna passed the chat to the next available GRE",
--           "Anna took over the chat": names only, never the note or a staff id;
--         a staff-only record in gre_chat_internal_notes (kind 'transfer': who, from, to, note);
--         back to the queue: the session is assigned automatically (oldest first) to someone
--           other than the GRE who handed it back (gre_relay.desk_queue, triggers/80_desk_assignment).
--       Callers: the relay (for /api/gre-admin/desk/sessions/:id/transfer), passing the staff member's
--       id and name; a staff portal through Supabase (`rpc('desk_transfer', ...)` against schema
--       gre_relay, or `select gre_relay.desk_transfer(...)`): the actor is then the caller's JWT
--       `sub` (and user_metadata.name), whatever it passes; a player's or anonymous JWT is refused.
--       Errors: P0002 no such session, PT409 closed, 22023 bad argument, 42501 not staff.
--       A transfer to the GRE who already has it changes nothing and writes nothing.
-- Touches: function gre_relay.desk_transfer(uuid, text, text, text, text); writes
--          gre_chat_sessions.assigned_gre_id, gre_chat_messages, gre_chat_internal_notes,
--          gre_relay.desk_queue.
-- Idempotent: yes (create or replace; revoke then grant).

-- security definer: the system line's kind and the transfer record are columns no API caller
-- may write, and the queue is the database's. So it checks the caller itself (below).
create or replace function gre_relay.desk_transfer(
  p_session_id  uuid,
  p_to_gre_id   text,
  p_note        text default null,
  p_actor_id    text default null,
  p_actor_name  text default null
) returns public.gre_chat_sessions
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_claims   jsonb := auth.jwt();
  v_actor    text;
  v_name     text;
  v_target   text;
  v_line     text;
  v_s        public.gre_chat_sessions;
begin
  -- A caller with a JWT (PostgREST) acts as the JWT says, and must be staff; the service key
  -- and callers without a JWT (the relay, a DBA: a database login) name the actor themselves.
  if v_claims is not null and coalesce(v_claims ->> 'role', '') <> 'service_role' then
    if not gre_relay.jwt_is_staff() then
      raise exception 'desk_transfer: staff only' using errcode = 'insufficient_privilege';
    end if;
    v_actor := v_claims ->> 'sub';
    v_name := v_claims -> 'user_metadata' ->> 'name';
  else
    v_actor := p_actor_id;
    v_name := p_actor_name;
  end if;
  if v_actor is null or char_length(v_actor) not between 1 and 100 then
    raise exception 'desk_transfer: the acting staff id is 1 to 100 characters' using errcode = '22023';
  end if;
  if p_to_gre_id is not null and char_length(p_to_gre_id) not between 1 and 100 then
    raise exception 'desk_transfer: a GRE id is 1 to 100 characters' using errcode = '22023';
  end if;
  if p_note is not null and (char_length(p_note) > 4000 or p_note !~ '[^[:space:]]') then
    raise exception 'desk_transfer: a note is 1 to 4000 characters, not only white space'
      using errcode = '22023';
  end if;

  select * into v_s from public.gre_chat_sessions s where s.id = p_session_id for update;
  if not found then
    raise exception 'desk_transfer: no such session' using errcode = 'P0002';
  end if;
  if v_s.status = 'closed' then
    raise exception 'desk_transfer: the session is closed' using errcode = 'PT409';
  end if;
  if v_s.assigned_gre_id is not distinct from p_to_gre_id then
    return v_s;
  end if;

  v_name := coalesce(nullif(pg_catalog.btrim(pg_catalog.left(v_name, 100)), ''),
                     (select nullif(pg_catalog.btrim(a.display_name), '') from public.gre_desk_agents a
                       where a.gre_id = v_actor),
                     'A GRE');
  if p_to_gre_id is null then
    v_line := v_name || ' passed the chat to the next available GRE';
  elsif p_to_gre_id = v_actor then
    v_line := v_name || ' took over the chat';
  else
    v_target := coalesce((select nullif(pg_catalog.btrim(a.display_name), '') from public.gre_desk_agents a
                           where a.gre_id = p_to_gre_id),
                         'another GRE');
    v_line := v_name || ' transferred the chat to ' || v_target;
  end if;

  -- The line and the record first: the assignment below may start a sweep that hands the
  -- session on at once, and the thread should read in that order.
  insert into public.gre_chat_messages (session_id, sender, sender_id, sender_name, message, system_kind)
  values (p_session_id, 'system', v_actor, v_name, v_line, 'transfer');
  insert into public.gre_chat_internal_notes
    (session_id, kind, author_id, author_name, note, from_gre_id, to_gre_id)
  values (p_session_id, 'transfer', v_actor, v_name, p_note, v_s.assigned_gre_id, p_to_gre_id);

  if p_to_gre_id is null then
    insert into gre_relay.desk_queue as q (session_id, returned_by, returned_at)
    values (p_session_id, coalesce(v_s.assigned_gre_id, v_actor), pg_catalog.now())
    on conflict (session_id) do update
       set returned_by = excluded.returned_by, returned_at = excluded.returned_at;
  else
    delete from gre_relay.desk_queue where session_id = p_session_id;
  end if;
  update public.gre_chat_sessions set assigned_gre_id = p_to_gre_id where id = p_session_id;

  select * into v_s from public.gre_chat_sessions s where s.id = p_session_id;
  return v_s;
end
$$;

revoke all on function gre_relay.desk_transfer(uuid, text, text, text, text) from public, anon;
grant execute on function gre_relay.desk_transfer(uuid, text, text, text, text) to authenticated, service_role;
