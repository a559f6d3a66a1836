-- 80_desk_tables.sql
-- What: the rules of the GRE desk's tables (sql/0210_desk.sql), whoever writes them:
--   row level security: staff (app_metadata.role = 'gre_staff') read and write them, one policy
--     per operation; players and anonymous sign-ins have no policy, so they see no row (internal
--     notes above all: never visible to a player through the API);
--   before triggers: the database owns ids, timestamps and "who" (updated_by, created_by,
--     author_id: the caller's `sub` for an API caller, refused if it names someone else); the
--     desk's opening hours and time zone are checked;
--   NOTIFY hints on channel 'gre_relay', identifiers only (as triggers/20, 40, 50):
--     {"k":"c","id":"<canned response id>"}   a canned response was added, changed or deleted;
--     {"k":"n","id":"<internal note id>"}      a note (or a transfer's record) was added;
--     {"k":"d"}                                the desk settings or a GRE's capacity changed.
--     The relay reads the row and sends it to staff sockets only;
--   wire JSON of a canned response, a note and the desk settings, as the relay sends them.
-- Touches: policies on gre_desk_settings, gre_desk_agents, gre_canned_responses,
--          gre_chat_internal_notes; functions gre_relay.desk_row_rules(),
--          gre_relay.desk_notify(), and the wire JSON gre_relay.canned_response_json(),
--          internal_note_json(), desk_settings_json(); their triggers.
-- Idempotent: yes (drop policy if exists, then create; create or replace).

-- Policies: staff only ------------------------------------------------------------------------
drop policy if exists "staff read desk settings" on public.gre_desk_settings;
create policy "staff read desk settings" on public.gre_desk_settings
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff update desk settings" on public.gre_desk_settings;
create policy "staff update desk settings" on public.gre_desk_settings
  for update to authenticated
  using ((select gre_relay.jwt_is_staff())) with check ((select gre_relay.jwt_is_staff()));

drop policy if exists "staff read desk agents" on public.gre_desk_agents;
create policy "staff read desk agents" on public.gre_desk_agents
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff add desk agents" on public.gre_desk_agents;
create policy "staff add desk agents" on public.gre_desk_agents
  for insert to authenticated with check ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff update desk agents" on public.gre_desk_agents;
create policy "staff update desk agents" on public.gre_desk_agents
  for update to authenticated
  using ((select gre_relay.jwt_is_staff())) with check ((select gre_relay.jwt_is_staff()));

drop policy if exists "staff read canned responses" on public.gre_canned_responses;
create policy "staff read canned responses" on public.gre_canned_responses
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff add canned responses" on public.gre_canned_responses;
create policy "staff add canned responses" on public.gre_canned_responses
  for insert to authenticated with check ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff update canned responses" on public.gre_canned_responses;
create policy "staff update canned responses" on public.gre_canned_responses
  for update to authenticated
  using ((select gre_relay.jwt_is_staff())) with check ((select gre_relay.jwt_is_staff()));

drop policy if exists "staff read internal notes" on public.gre_chat_internal_notes;
create policy "staff read internal notes" on public.gre_chat_internal_notes
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff add internal notes" on public.gre_chat_internal_notes;
create policy "staff add internal notes" on public.gre_chat_internal_notes
  for insert to authenticated with check ((select gre_relay.jwt_is_staff()));

-- Server-owned columns ------------------------------------------------------------------------
-- Not security definer: row_security_active() must see the writer as it is.
create or replace function gre_relay.desk_row_rules() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  v_api  boolean := pg_catalog.row_security_active(tg_relid);
  v_sub  text := case when v_api then auth.jwt() ->> 'sub' end;
  v_day  jsonb;
begin
  if tg_table_name = 'gre_chat_internal_notes' then
    new.created_at := pg_catalog.now();
    if v_api then
      -- An API caller writes plain notes, signed with its own id.
      new.kind := 'note';
      new.from_gre_id := null;
      new.to_gre_id := null;
      if new.author_id is null then
        new.author_id := v_sub;
      elsif new.author_id is distinct from v_sub then
        raise exception 'gre_chat_internal_notes: author_id must be your own staff id'
          using errcode = 'insufficient_privilege';
      end if;
    end if;
    return new;
  end if;

  new.updated_at := pg_catalog.now();
  if v_api then
    new.updated_by := v_sub;
  end if;

  if tg_table_name = 'gre_canned_responses' then
    if tg_op = 'INSERT' then
      new.created_at := pg_catalog.now();
      new.created_by := coalesce(v_sub, new.created_by);
      new.deleted_at := null;
    else
      new.id := old.id;
      new.created_at := old.created_at;
      new.created_by := old.created_by;
      -- Deleting stamps the time; a deleted response stays deleted.
      if old.deleted_at is not null then
        new.deleted_at := old.deleted_at;
      elsif new.deleted_at is not null then
        new.deleted_at := pg_catalog.now();
      end if;
    end if;
    return new;
  end if;

  if tg_table_name = 'gre_desk_settings' then
    -- Refused here rather than at the first player message after hours.
    begin
      perform pg_catalog.now() at time zone new.time_zone;
    exception when others then
      raise exception 'gre_desk_settings: unknown time zone' using errcode = 'check_violation';
    end;
    if pg_catalog.jsonb_typeof(new.hours) <> 'array' or pg_catalog.jsonb_array_length(new.hours) > 50 then
      raise exception 'gre_desk_settings: hours is an array of at most 50 {day, opens, closes}'
        using errcode = 'check_violation';
    end if;
    for v_day in select * from pg_catalog.jsonb_array_elements(new.hours) loop
      if pg_catalog.jsonb_typeof(v_day) <> 'object'
         or (select pg_catalog.count(*) from pg_catalog.jsonb_object_keys(v_day) k
              where k not in ('day', 'opens', 'closes')) > 0
         or coalesce(v_day ->> 'day', '') !~ '^[0-6]$'
         or coalesce(v_day ->> 'opens', '') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
         or coalesce(v_day ->> 'closes', '') !~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'
         or (v_day ->> 'opens')::time >= (v_day ->> 'closes')::time then
        raise exception 'gre_desk_settings: each opening is {"day": 0-6 (0 = Sunday), "opens": "HH:MM", "closes": "HH:MM" later that day, or "24:00"}'
          using errcode = 'check_violation';
      end if;
    end loop;
    new.singleton := true;
  end if;
  return new;
end
$$;

create or replace trigger gre_desk_settings_rules
  before insert or update on public.gre_desk_settings
  for each row execute function gre_relay.desk_row_rules();
create or replace trigger gre_desk_agents_rules
  before insert or update on public.gre_desk_agents
  for each row execute function gre_relay.desk_row_rules();
create or replace trigger gre_canned_responses_rules
  before insert or update on public.gre_canned_responses
  for each row execute function gre_relay.desk_row_rules();
create or replace trigger gre_chat_internal_notes_rules
  before insert on public.gre_chat_internal_notes
  for each row execute function gre_relay.desk_row_rules();

-- Hints ---------------------------------------------------------------------------------------
create or replace function gre_relay.desk_notify() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if tg_table_name = 'gre_canned_responses' then
    perform pg_catalog.pg_notify('gre_relay', '{"k":"c","id":"' || new.id::text || '"}');
  elsif tg_table_name = 'gre_chat_internal_notes' then
    perform pg_catalog.pg_notify('gre_relay', '{"k":"n","id":"' || new.id::text || '"}');
  else
    perform pg_catalog.pg_notify('gre_relay', '{"k":"d"}');
  end if;
  return null;
end
$$;

create or replace trigger gre_canned_responses_notify
  after insert or update on public.gre_canned_responses
  for each row execute function gre_relay.desk_notify();
create or replace trigger gre_chat_internal_notes_notify
  after insert on public.gre_chat_internal_notes
  for each row execute function gre_relay.desk_notify();
create or replace trigger gre_desk_settings_notify
  after update on public.gre_desk_settings
  for each statement execute function gre_relay.desk_notify();
create or replace trigger gre_desk_agents_notify
  after insert or update on public.gre_desk_agents
  for each statement execute function gre_relay.desk_notify();

-- Wire JSON (docs/protocol.md, "The GRE desk"): the shapes the relay sends, built here like
-- message_json() (triggers/07) so a REST answer and a live event are the same bytes.
create or replace function gre_relay.canned_response_json(c public.gre_canned_responses) returns jsonb
  language plpgsql stable
  set search_path = ''
  as $$
begin
  return pg_catalog.jsonb_build_object(
    'id',        c.id,
    'shortCode', c.short_code,
    'title',     c.title,
    'body',      c.body,
    'createdBy', c.created_by,
    'updatedBy', c.updated_by,
    'createdAt', pg_catalog.to_char(c.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'updatedAt', pg_catalog.to_char(c.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'deleted',   c.deleted_at is not null
  );
end
$$;

create or replace function gre_relay.internal_note_json(n public.gre_chat_internal_notes) returns jsonb
  language plpgsql stable
  set search_path = ''
  as $$
begin
  return pg_catalog.jsonb_build_object(
    'id',         n.id,
    'sessionId',  n.session_id,
    'kind',       n.kind,
    'authorId',   n.author_id,
    'authorName', n.author_name,
    'note',       n.note,
    'fromGreId',  n.from_gre_id,
    'toGreId',    n.to_gre_id,
    'createdAt',  pg_catalog.to_char(n.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  );
end
$$;

-- The desk settings and every GRE's row (invoker rights: a caller sees what RLS lets it see).
create or replace function gre_relay.desk_settings_json() returns jsonb
  language plpgsql stable
  set search_path = ''
  as $$
declare
  v jsonb;
begin
  select pg_catalog.jsonb_build_object(
           'autoAssign',      d.auto_assign,
           'defaultCapacity', d.default_capacity,
           'unavailableText', d.unavailable_text,
           'afterHoursText',  d.after_hours_text,
           'hours',           d.hours,
           'timeZone',        d.time_zone,
           'updatedAt',       pg_catalog.to_char(d.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'updatedBy',       d.updated_by,
           'agents', coalesce((
             select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                      'greId', a.gre_id, 'capacity', a.capacity, 'displayName', a.display_name)
                    order by a.gre_id)
               from public.gre_desk_agents a), '[]'::jsonb))
    into v
    from public.gre_desk_settings d where d.singleton;
  return v;
end
$$;

-- EXECUTE as triggers/70 settles it for the functions that existed before this file: not for
-- PUBLIC or anon; invoker-rights functions for authenticated and service_role (policies and
-- triggers call them as the caller).
revoke all on function gre_relay.desk_row_rules(), gre_relay.desk_notify(),
                       gre_relay.canned_response_json(public.gre_canned_responses),
                       gre_relay.internal_note_json(public.gre_chat_internal_notes),
                       gre_relay.desk_settings_json()
  from public, anon;
grant execute on function gre_relay.desk_row_rules(), gre_relay.desk_notify(),
                          gre_relay.canned_response_json(public.gre_canned_responses),
                          gre_relay.internal_note_json(public.gre_chat_internal_notes),
                          gre_relay.desk_settings_json()
  to authenticated, service_role;
