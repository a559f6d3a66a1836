-- 0040_push_notifications.sql
-- What: notifications for players who are not connected (a GRE wrote while they were away).
-- Touches: table public.push_notifications.
-- Idempotent: yes.

create table if not exists public.push_notifications (
  id          uuid primary key default gen_random_uuid(),
  player_id   bigint not null,
  title       text not null,
  message     text not null,
  type        text not null default 'gre_chat',
  created_at  timestamptz not null default now(),
  read_at     timestamptz
);

comment on table public.push_notifications is
  'Notifications to show a player later. type = gre_chat for a GRE message sent while the player was offline.';

-- A player's unread notifications, newest first.
create index if not exists push_notifications_player_created
  on public.push_notifications (player_id, created_at desc);
