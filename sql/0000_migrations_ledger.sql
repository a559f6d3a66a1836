-- 0000_migrations_ledger.sql
-- What: the private schema `gre_relay` (relay internals, never exposed through the Supabase API)
--       and the ledger of applied migration files.
-- Touches: schema gre_relay, table gre_relay.schema_migrations.
-- Idempotent: yes. `gre-relay migrate` runs this file first, then every pending file of sql/ and
-- triggers/ in file-name order, recording each one here with its checksum. DBAs applying the files
-- by hand with psql may skip the ledger: every file is idempotent on its own.

create schema if not exists gre_relay;

comment on schema gre_relay is
  'Internals of gre-relay: migration ledger, helper functions, presence and chat access. Not exposed through the API.';

create table if not exists gre_relay.schema_migrations (
  name        text primary key,          -- e.g. 'sql/0010_chat_sessions.sql'
  checksum    text not null,             -- sha256 of the file as applied; a changed file is applied again
  applied_at  timestamptz not null default now()
);

comment on table gre_relay.schema_migrations is
  'One row per migration file applied by gre-relay (sql/ and triggers/).';
