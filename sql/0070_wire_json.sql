-- 0070_wire_json.sql
-- What: the JSON shape of a message and of a session as gre-relay sends them to clients
--       (docs/protocol.md). Defined once, here, and used both by the NOTIFY triggers and by the
--       relay's own queries, so a live message and a backfilled one are byte-for-byte alike.
--       Timestamps are RFC 3339 in UTC whatever the writer's TimeZone setting.
-- Touches: functions gre_relay.ts_json(timestamptz), gre_relay.message_json(gre_chat_messages),
--          gre_relay.session_json(gre_chat_sessions).
-- Idempotent: yes (create or replace).

create or replace function gre_relay.ts_json(ts timestamptz) returns text
  language sql immutable
  set search_path = ''
  as $$
    select pg_catalog.to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
  $$;

create or replace function gre_relay.message_json(m public.gre_chat_messages) returns jsonb
  language sql stable
  set search_path = ''
  as $$
    select pg_catalog.jsonb_build_object(
      'id',              m.id,
      'sessionId',       m.session_id,
      'playerId',        m.player_id,
      'sender',          m.sender,
      'senderId',        m.sender_id,
      'senderName',      m.sender_name,
      'message',         m.message,
      'status',          m.status,
      'createdAt',       gre_relay.ts_json(m.created_at),
      'cursor',          m.seq::text,
      'clientMessageId', m.client_message_id
    )
  $$;

create or replace function gre_relay.session_json(s public.gre_chat_sessions) returns jsonb
  language sql stable
  set search_path = ''
  as $$
    select pg_catalog.jsonb_build_object(
      'id',            s.id,
      'playerId',      s.player_id,
      'status',        s.status,
      'assignedGreId', s.assigned_gre_id,
      'createdAt',     gre_relay.ts_json(s.created_at),
      'updatedAt',     gre_relay.ts_json(s.updated_at),
      'closedAt',      gre_relay.ts_json(s.closed_at)
    )
  $$;
