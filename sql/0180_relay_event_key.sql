-- 0180_relay_event_key.sql
-- What: gre_relay.relay_event_key, one random 32-byte key (244 random bits) that gre-relay processes sign the
--       events they relay through NOTIFY with (typing, messages_read; HMAC-SHA256). Anyone with a
--       database login can pg_notify on channel 'gre_relay'; without this key a forged relayed
--       event is refused by every relay. Only the owner (the role the relays connect as) reads
--       it: no API role (anon, authenticated, service_role) and not PUBLIC.
--       To rotate: update gre_relay.relay_event_key set key = <new bytes>; then restart the relays
--       (each reads the key at start; until all have restarted, events between old and new ones
--       are refused).
-- Touches: table gre_relay.relay_event_key (created, one row inserted if missing), its grants.
-- Idempotent: yes (create if not exists, insert ... on conflict do nothing, revoke).

create table if not exists gre_relay.relay_event_key (
  singleton  boolean primary key default true check (singleton),
  -- 2 x 122 random bits from pg_strong_random (gen_random_uuid is core since PostgreSQL 13;
  -- pgcrypto's gen_random_bytes would need the extension).
  key        bytea not null default pg_catalog.decode(
               pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', '')
                 || pg_catalog.replace(pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'),
  created_at timestamptz not null default pg_catalog.now()
);

insert into gre_relay.relay_event_key (singleton) values (true) on conflict do nothing;

alter table gre_relay.relay_event_key enable row level security;
revoke all on table gre_relay.relay_event_key from public, anon, authenticated, service_role;
