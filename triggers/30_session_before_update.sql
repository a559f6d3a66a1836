-- 30_session_before_update.sql
-- What: a session's server-owned columns are the database's, whoever writes it:
--       at insert, created_at and updated_at are now(), last_seq is 0, closed_at is now() for a
--       session inserted closed and null otherwise; at update, created_at never changes, updated_at
--       moves (to now()) exactly when status or assignment changes, closed_at is set when the
--       session closes and cleared if it reopens, and last_seq never decreases. Numbering messages
--       (last_seq) does not count as a change of the session.
--       A player opening a session through the API (row level security applies to it) gets a
--       'waiting' session assigned to nobody, for itself only, and only when the chat gate lets it
--       chat (gre_relay.caller_may_chat(), CONTRACT section 5). Status and assignment otherwise
--       change only by staff (RLS) or by the rules (triggers/10: first GRE reply makes it active).
--       Three triggers run the function: gre_chat_sessions_before_insert, and
--       gre_chat_sessions_before_update and gre_chat_sessions_before_update_seq, whose column
--       lists and WHEN clauses skip the call when the function would return the row unchanged.
--       That is the case of every message's numbering UPDATE (last_seq + 1 alone), so numbering
--       costs no trigger function on the session and reads one short WHEN clause.
-- Touches: function gre_relay.session_before_update(), triggers gre_chat_sessions_before_insert,
--          gre_chat_sessions_before_update and gre_chat_sessions_before_update_seq.
-- Idempotent: yes (create or replace).

-- Not security definer: row_security_active() must see the writer as it is.
create or replace function gre_relay.session_before_update() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if tg_op = 'INSERT' then
    new.created_at := pg_catalog.now();
    new.updated_at := pg_catalog.now();
    new.last_seq := 0;
    if pg_catalog.row_security_active(tg_relid) and not gre_relay.jwt_is_staff() then
      if new.player_id is distinct from gre_relay.jwt_player_id() then
        raise exception 'gre_chat_sessions: not allowed'
          using errcode = 'insufficient_privilege';
      end if;
      new.status := 'waiting';
      new.assigned_gre_id := null;
      if not gre_relay.caller_may_chat() then
        raise exception 'gre_chat_sessions: chat is not enabled for this player'
          using errcode = 'PT403';
      end if;
    end if;
    new.closed_at := case when new.status = 'closed' then pg_catalog.now() end;
    return new;
  end if;

  new.created_at := old.created_at;
  if new.last_seq < old.last_seq then
    raise exception 'gre_chat_sessions: last_seq never decreases'
      using errcode = 'check_violation';
  end if;
  if new.status is distinct from old.status
     or new.assigned_gre_id is distinct from old.assigned_gre_id then
    new.updated_at := pg_catalog.now();
  else
    new.updated_at := old.updated_at;
  end if;
  if new.status <> 'closed' then
    new.closed_at := null;
  elsif old.status <> 'closed' then
    new.closed_at := pg_catalog.now();
  else
    new.closed_at := old.closed_at;
  end if;
  return new;
end
$$;

create or replace trigger gre_chat_sessions_before_insert
  before insert on public.gre_chat_sessions
  for each row execute function gre_relay.session_before_update();

-- Fires exactly when the function's update branch would change the row: when status,
-- assignment or a server-owned timestamp was written, when last_seq goes down, or when a row
-- that is not closed carries a closed_at (adopted data). Otherwise the function would keep
-- created_at, updated_at and closed_at as they are and let last_seq grow: the row stays as it is,
-- so the call is skipped. (A WHEN clause of an insert-or-update trigger may not name OLD, hence
-- two triggers.)
-- Two update triggers, by the columns the UPDATE names in its SET list (`update of`): PostgreSQL
-- looks at the column list before it reads a WHEN clause, and it reads a WHEN clause from its
-- stored text once per statement. Every message's numbering UPDATE (triggers/10) names last_seq
-- alone, so it reads only the short WHEN of gre_chat_sessions_before_update_seq, not the long
-- one below nor those of the after-update triggers (triggers/40, 80, 90, also column triggers):
-- with the numbering UPDATE naming last_seq alone, about 12% of a GRE message's backend CPU at
-- HEAD (docs/performance.md, "Issue 12, part 5"). The list below is
-- every column but last_seq; an UPDATE naming both kinds may run the function twice, which
-- gives the same row (it computes the new row from the old one and now()).
create or replace trigger gre_chat_sessions_before_update
  before update of id, player_id, status, assigned_gre_id, created_at, updated_at, closed_at
  on public.gre_chat_sessions
  for each row
  when (old.status is distinct from new.status
        or old.assigned_gre_id is distinct from new.assigned_gre_id
        or old.created_at is distinct from new.created_at
        or old.updated_at is distinct from new.updated_at
        or old.closed_at is distinct from new.closed_at
        or new.last_seq < old.last_seq
        or (new.status <> 'closed' and new.closed_at is not null))
  execute function gre_relay.session_before_update();

-- An UPDATE that names last_seq: the numbering (last_seq + 1) is left alone; a decrease is
-- refused and an adopted row's stray closed_at is cleared by the function.
create or replace trigger gre_chat_sessions_before_update_seq
  before update of last_seq on public.gre_chat_sessions
  for each row
  when (new.last_seq < old.last_seq or (new.status <> 'closed' and new.closed_at is not null))
  execute function gre_relay.session_before_update();
