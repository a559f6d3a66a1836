-- 0030_online_status.sql
-- What: which GRE staff members are online, one row per staff member.
-- Touches: table public.gre_online_status.
-- Idempotent: yes.

create table if not exists public.gre_online_status (
  gre_id     text primary key,
  is_online  boolean not null default false,
  status     text not null default 'offline',
  last_seen  timestamptz not null default now(),
  constraint gre_online_status_status_check check (status in ('online', 'away', 'busy', 'offline'))
);

comment on table public.gre_online_status is
  'GRE staff presence, maintained by gre-relay from live WebSocket connections.';
