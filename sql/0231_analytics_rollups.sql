-- 0231_analytics_rollups.sql
-- What: rollups of the chat analytics, so that a report over a long period (more than 31 days)
--       reads a few thousand summed rows instead of every episode and reply sample
--       (docs/analytics.md, "Long periods"). Both are kept by the closing trigger of
--       triggers/90_analytics.sql (gre_relay.analytics_roll(), from the facts of sql/0230 when an
--       episode closes: inserting a message writes nothing here), and can be rebuilt from those
--       facts (gre_relay.analytics_rollup_rebuild()).
--         gre_relay.analytics_monthly   per UTC month, GRE ('' = everybody), metric and histogram
--                                       bin: how many (n) and their sum of seconds (total).
--                                       Counts (sessions, replied, unanswered, player_messages,
--                                       gre_messages) use bin 0; the times (frt, resolution,
--                                       reply) one bin per 2% of value (gre_relay.analytics_bin()).
--         gre_relay.analytics_daily     the same per UTC day, for the days of a long period
--                                       outside its whole months.
--         gre_relay.analytics_quarters  per 15-minute bucket (UTC-aligned, like
--                                       analytics_message_counts): the counts and sums of seconds
--                                       of the day and hour_of_week groups, everybody together.
--       Staff read them under row level security (select only); nobody but the owner writes.
-- Touches: creates the three tables, their policies and grants. Filled by triggers/90_analytics.sql.
-- Idempotent: yes (if not exists; drop policy if exists, then create; revoke, then grant).

create table if not exists gre_relay.analytics_monthly (
  month   timestamptz not null,
  gre_id  text not null,
  metric  text not null check (metric in ('sessions', 'replied', 'unanswered', 'frt', 'resolution',
                                          'reply', 'player_messages', 'gre_messages')),
  bin     smallint not null check (bin >= 0),
  n       bigint not null check (n >= 0),
  total   double precision not null,
  primary key (month, gre_id, metric, bin)
);

create table if not exists gre_relay.analytics_daily (
  day     timestamptz not null,
  gre_id  text not null,
  metric  text not null check (metric in ('sessions', 'replied', 'unanswered', 'frt', 'resolution',
                                          'reply', 'player_messages', 'gre_messages')),
  bin     smallint not null check (bin >= 0),
  n       bigint not null check (n >= 0),
  total   double precision not null,
  primary key (day, gre_id, metric, bin)
);

create table if not exists gre_relay.analytics_quarters (
  bucket            timestamptz primary key,
  sessions          bigint not null default 0,
  sessions_replied  bigint not null default 0,
  first_responses   bigint not null default 0,
  frt_total         double precision not null default 0,
  unanswered        bigint not null default 0,
  resolved          bigint not null default 0,
  resolution_total  double precision not null default 0,
  replies           bigint not null default 0,
  reply_total       double precision not null default 0,
  player_messages   bigint not null default 0,
  gre_messages      bigint not null default 0
);

alter table gre_relay.analytics_monthly  enable row level security;
alter table gre_relay.analytics_daily    enable row level security;
alter table gre_relay.analytics_quarters enable row level security;

revoke all on table gre_relay.analytics_monthly, gre_relay.analytics_daily,
                    gre_relay.analytics_quarters
  from public, anon, authenticated, service_role;
grant select on table gre_relay.analytics_monthly, gre_relay.analytics_daily,
                      gre_relay.analytics_quarters
  to authenticated, service_role;

drop policy if exists "staff read analytics monthly" on gre_relay.analytics_monthly;
create policy "staff read analytics monthly" on gre_relay.analytics_monthly
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff read analytics daily" on gre_relay.analytics_daily;
create policy "staff read analytics daily" on gre_relay.analytics_daily
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
drop policy if exists "staff read analytics quarters" on gre_relay.analytics_quarters;
create policy "staff read analytics quarters" on gre_relay.analytics_quarters
  for select to authenticated using ((select gre_relay.jwt_is_staff()));
