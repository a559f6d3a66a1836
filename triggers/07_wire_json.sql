-- 07_wire_json.sql
-- What: the JSON shape of a message and of a session as gre-relay sends them to clients
--       (docs/protocol.md), and the timestamp format: gre_relay.ts_json(), message_json(),
--       session_json(). They replace the first versions of sql/0070_wire_json.sql (same names,
--       same arguments, byte-for-byte the same output) with plpgsql bodies: a SQL function with a
--       SET clause (set search_path = '', required here) is never inlined, so PostgreSQL parsed,
--       planned and started its body again in every query that called it. The relay reads back
--       one or a few rows per query (the rows a NOTIFY hint names), and that cost 118 us per row
--       of PostgreSQL CPU, as much as the whole insert (docs/performance.md, "The database's cost
--       per message, after"). plpgsql keeps the compiled body for the connection's life and
--       evaluates the one expression on its fast path. The timestamp format is written out in
--       message_json() and session_json() (keep it in line with ts_json()) so they call nothing.
-- Mirror: the relay writes message_json()'s output itself when it reads back hinted messages
--       (src/db/wire_json.rs, byte for byte; tests/it/wire_json.rs compares the two): change
--       both together.
-- Touches: functions gre_relay.ts_json(timestamptz), gre_relay.message_json(gre_chat_messages),
--          gre_relay.session_json(gre_chat_sessions).
--       message_json() carries `attachment` (issue 14: null, or the file's name, type, size,
--       dimensions, kind and whether `message` is only a label) since sql/0220, and
--       `systemKind` (the GRE desk's system lines, sql/0210).
-- Idempotent: yes (create or replace).

-- RFC 3339 in UTC with microseconds, whatever the session's TimeZone; null stays null.
create or replace function gre_relay.ts_json(ts timestamptz) returns text
  language plpgsql immutable
  set search_path = ''
  as $$
begin
  return pg_catalog.to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
end
$$;

create or replace function gre_relay.message_json(m public.gre_chat_messages) returns jsonb
  language plpgsql stable
  set search_path = ''
  as $$
begin
  return pg_catalog.jsonb_build_object(
    'id',              m.id,
    'sessionId',       m.session_id,
    'playerId',        m.player_id,
    'sender',          m.sender,
    'senderId',        m.sender_id,
    'senderName',      m.sender_name,
    'message',         m.message,
    'status',          m.status,
    'createdAt',       pg_catalog.to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'cursor',          m.seq::text,
    'clientMessageId', m.client_message_id,
    -- Images and files (sql/0220, docs/protocol.md "Attachments"): null without one. The
    -- storage key stays in the database: clients download through the relay by message id.
    'attachment',      case when m.attachment_key is null then null else pg_catalog.jsonb_build_object(
                         'name',           m.attachment_name,
                         'type',           m.attachment_type,
                         'size',           m.attachment_size,
                         'width',          m.attachment_width,
                         'height',         m.attachment_height,
                         'kind',           case when m.attachment_type like 'image/%' then 'image' else 'file' end,
                         'messageIsLabel', m.message_is_label) end,
    -- Which line of the GRE desk a system message is (sql/0210): auto_reply, after_hours,
    -- transfer; null for every other message.
    'systemKind',      m.system_kind
  );
end
$$;

create or replace function gre_relay.session_json(s public.gre_chat_sessions) returns jsonb
  language plpgsql stable
  set search_path = ''
  as $$
begin
  return pg_catalog.jsonb_build_object(
    'id',            s.id,
    'playerId',      s.player_id,
    'status',        s.status,
    'assignedGreId', s.assigned_gre_id,
    'createdAt',     pg_catalog.to_char(s.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'updatedAt',     pg_catalog.to_char(s.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'closedAt',      pg_catalog.to_char(s.closed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  );
end
$$;
