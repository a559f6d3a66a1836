-- 20_message_notify.sql
-- What: after each statement that inserts or changes gre_chat_messages rows, tell gre-relay with
--       NOTIFY on channel 'gre_relay'. Payloads are hints: identifiers only, never a message's
--       text, a name or a player id (anyone with a login may LISTEN). The relay reads the rows.
--
--   inserted: {"k":"m","op":"i","ids":["<message id>", ...]}
--   changed:  {"k":"m","op":"u","ids":[...]}   for a session with at most 100 changed rows in
--                                             the statement, and otherwise, for that session,
--             {"k":"r","ranges":[{"sessionId":"...","from":"<cursor>","to":"<cursor>"}, ...]}
--             (one item per session: a mass update, e.g. 11,840 messages marked read in one
--             statement, becomes one event per session for each client, not 11,840).
--   Ids are in (session, seq) order, at most 200 per payload (7,8xx bytes; NOTIFY's limit is
--   8,000), so an announcement to 2,000 sessions is 10 notifications. An update whose rows end
--   up equal to what they were changes nothing and sends nothing.
-- Touches: function gre_relay.notify_message_changes(), triggers gre_chat_messages_notify_insert
--          and gre_chat_messages_notify_update.
-- Idempotent: yes (create or replace; the update trigger is dropped and created again because
--             its transition tables changed).

create or replace function gre_relay.notify_message_changes() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  -- Ids per payload: 200 quoted ids and commas are 7,800 bytes, plus the envelope.
  c_ids    constant int := 200;
  -- More changed rows than this in one session in one statement: one range instead of ids.
  c_detail constant int := 100;
  -- Ranges per payload: each is at most about 110 bytes.
  c_ranges constant int := 60;
  v_payload text;
begin
  if tg_op = 'INSERT' then
    for v_payload in
      select '{"k":"m","op":"i","ids":['
             || pg_catalog.string_agg('"' || t.id::text || '"', ',' order by t.session_id, t.seq)
             || ']}'
        from (select n.id, n.session_id, n.seq,
                     (pg_catalog.row_number() over (order by n.session_id, n.seq) - 1) / c_ids as chunk
                from new_rows n) t
       group by t.chunk
       order by t.chunk
    loop
      perform pg_catalog.pg_notify('gre_relay', v_payload);
    end loop;
    return null;
  end if;

  -- UPDATE: per session either the ids of the changed rows or one range. Every row here did
  -- change: the before-update rule of triggers/10 (gre_chat_messages_0_writer_rules) skips an
  -- update that changes nothing, for every writer, so no old_rows table and no join are needed
  -- (joining the two transition tables, which have no index, went quadratic: 40 s for one
  -- statement marking 11,840 messages read).
  for v_payload in
    with changed as (
      select n.id, n.session_id, n.seq
        from new_rows n
    ), per_session as (
      select c.session_id, pg_catalog.count(*) as n, pg_catalog.min(c.seq) as lo, pg_catalog.max(c.seq) as hi
        from changed c
       group by c.session_id
    ), detail as (
      select c.id, c.session_id, c.seq,
             (pg_catalog.row_number() over (order by c.session_id, c.seq) - 1) / c_ids as chunk
        from changed c
        join per_session p on p.session_id = c.session_id
       where p.n <= c_detail
    ), coarse as (
      select p.session_id, p.lo, p.hi,
             (pg_catalog.row_number() over (order by p.session_id) - 1) / c_ranges as chunk
        from per_session p
       where p.n > c_detail
    )
    select x.payload from (
      select 0 as part, d.chunk,
             '{"k":"m","op":"u","ids":['
             || pg_catalog.string_agg('"' || d.id::text || '"', ',' order by d.session_id, d.seq)
             || ']}' as payload
        from detail d
       group by d.chunk
      union all
      select 1, r.chunk,
             '{"k":"r","ranges":['
             || pg_catalog.string_agg(
                  pg_catalog.jsonb_build_object('sessionId', r.session_id,
                                                'from', r.lo::text, 'to', r.hi::text)::text,
                  ',' order by r.session_id)
             || ']}'
        from coarse r
       group by r.chunk
    ) x
    order by x.part, x.chunk
  loop
    perform pg_catalog.pg_notify('gre_relay', v_payload);
  end loop;
  return null;
end
$$;

create or replace trigger gre_chat_messages_notify_insert
  after insert on public.gre_chat_messages
  referencing new table as new_rows
  for each statement execute function gre_relay.notify_message_changes();

-- Dropped first: "create or replace trigger" cannot add a transition table to an existing one.
drop trigger if exists gre_chat_messages_notify_update on public.gre_chat_messages;
create trigger gre_chat_messages_notify_update
  after update on public.gre_chat_messages
  referencing new table as new_rows
  for each statement execute function gre_relay.notify_message_changes();
