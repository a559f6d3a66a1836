-- 20_message_notify.sql
-- What: tell gre-relay with NOTIFY on channel 'gre_relay' about every inserted or changed
--       gre_chat_messages row. Payloads are hints: identifiers only, never a message's text, a
--       name or a player id (anyone with a login may LISTEN). The relay reads the rows.
--
--   inserted: {"k":"m","op":"i","ids":["<message id>"]}   one per row, from a row trigger
--   changed:  {"k":"m","op":"u","ids":[...]}   for a session with at most 100 changed rows in
--                                             the statement, and otherwise, for that session,
--             {"k":"r","ranges":[{"sessionId":"...","from":"<cursor>","to":"<cursor>"}, ...]}
--             (one item per session: a mass update, e.g. 11,840 messages marked read in one
--             statement, becomes one event per session for each client, not 11,840).
--   Update ids are in (session, seq) order, at most 200 per payload (7,8xx bytes; NOTIFY's
--   limit is 8,000). An update whose rows end up equal to what they were changes nothing and
--   sends nothing.
--   Why a row trigger for inserts: almost every insert is one row (a chat message). For one row
--   the statement trigger with its transition table cost more than the row trigger (measured in
--   docs/performance.md, "The database's cost per message, after"), and an announcement of N
--   rows sends N hints in insert order, which the relay reads in batches (up to 1,000 ids a query).
-- Touches: functions gre_relay.notify_message_inserted(), gre_relay.notify_message_changes();
--          triggers gre_chat_messages_notify_insert and gre_chat_messages_notify_update.
-- Idempotent: yes (create or replace; both triggers are dropped and created again because
--             "create or replace trigger" cannot change a trigger's transition tables).

-- One hint per inserted row. Fires after the row is in the table (so a row that an
-- "on conflict do nothing" skipped, or a later before-trigger cancelled, announces nothing) and
-- is sent at commit only (a rolled-back insert announces nothing).
create or replace function gre_relay.notify_message_inserted() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_catalog.pg_notify('gre_relay', '{"k":"m","op":"i","ids":["' || new.id::text || '"]}');
  return null;
end
$$;

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
  -- Inserts have their own row trigger (above); this runs for updates only.
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

-- Dropped first: it was a statement trigger with a transition table, which "create or replace
-- trigger" cannot turn into a row trigger.
drop trigger if exists gre_chat_messages_notify_insert on public.gre_chat_messages;
create trigger gre_chat_messages_notify_insert
  after insert on public.gre_chat_messages
  for each row execute function gre_relay.notify_message_inserted();

-- Dropped first: "create or replace trigger" cannot add a transition table to an existing one.
drop trigger if exists gre_chat_messages_notify_update on public.gre_chat_messages;
create trigger gre_chat_messages_notify_update
  after update on public.gre_chat_messages
  referencing new table as new_rows
  for each statement execute function gre_relay.notify_message_changes();
