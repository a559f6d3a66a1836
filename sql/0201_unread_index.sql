-- 0201_unread_index.sql
-- What: the partial index behind the staff console's unread counts (player messages not yet
--       read, src/db/sessions.rs admin_sessions) holds player messages only. It used to hold
--       every message not yet read, so every GRE and system message (the staff portal's writes,
--       announcements) paid an index insert that no query reads: about 2.5 us and 72 bytes of
--       WAL a message (docs/performance.md, "Issue 12, part 3").
--       The new index is built before the old one is dropped, so the console's query always has
--       one. The build takes a lock that holds inserts for its duration (seconds per million
--       messages); on a very large table build it beforehand with
--       `create index concurrently gre_chat_messages_unread_player ...` (same definition), and
--       this file then only drops the old one.
-- Touches: indexes gre_chat_messages_unread_player (created), gre_chat_messages_unread (dropped).
-- Idempotent: yes (if not exists / if exists).

create index if not exists gre_chat_messages_unread_player
  on public.gre_chat_messages (session_id)
  where sender = 'player' and status <> 'read';

drop index if exists public.gre_chat_messages_unread;
