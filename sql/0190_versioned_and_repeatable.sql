-- 0190_versioned_and_repeatable.sql
-- What: the migration ledger says which rule each file follows. Files in sql/ are versioned
--       migrations: each runs once and is never edited once released (gre-relay refuses a database
--       whose ledger holds another checksum for one of them). Files in triggers/ are repeatable:
--       functions, triggers, policies and views, applied again whenever they change.
--       Rows recorded by earlier releases are kept as they are.
-- Touches: table gre_relay.schema_migrations (one generated column, comments).
-- Idempotent: yes (add column if not exists; comments are replaced).

alter table gre_relay.schema_migrations
  add column if not exists kind text
    generated always as (case when name like 'sql/%' then 'versioned' else 'repeatable' end) stored;

comment on table gre_relay.schema_migrations is
  'One row per migration file applied by gre-relay. kind = versioned (sql/): applied once, never edited; kind = repeatable (triggers/): applied again when its checksum changes.';

comment on column gre_relay.schema_migrations.checksum is
  'sha256 of the file as applied. A versioned file whose checksum no longer matches stops gre-relay migrate; a repeatable one is applied again.';

comment on column gre_relay.schema_migrations.kind is
  'versioned (sql/, never edited once released) or repeatable (triggers/, re-applied when changed).';
