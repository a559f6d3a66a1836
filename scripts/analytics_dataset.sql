-- analytics_dataset.sql: a year of a busy club for the analytics benchmark (docs/performance.md,
-- "Chat analytics on a year of data"). Run on a scratch database with sql/ and triggers/
-- applied, as a superuser (it writes in replica mode, i.e. without the per-row triggers, then
-- folds the closed sessions with the same function the closing trigger calls):
--
--   psql -v sessions=100000 -f scripts/analytics_dataset.sql DBNAME
--
-- Makes :sessions sessions (default 100,000) over the 365 days before 2026-11-30 UTC, busy in
-- the evenings and at weekends, each with 4 to 16 messages (about 10, so 1,000,000 in all):
-- the player first, then players, GRE replies (staff-1 to staff-20) and 5% system lines, with
-- delays of seconds to minutes. 1% of the sessions (the newest) stay open; the rest are closed
-- 1 to 30 minutes after their last message. Not idempotent: run it once on an empty database.

\if :{?sessions}
\else
  \set sessions 100000
\endif
\timing on
set session_replication_role = replica;
select setseed(0.15);

create temporary table gen_sessions as
select g,
       gen_random_uuid() as id,
       1 + (g % 30000) as player_id,
       'staff-' || (1 + (g * 7) % 20) as gre,
       -- A day of the year, then an hour weighted to the evening and a random minute.
       timestamptz '2025-11-30 00:00:00+00'
         + (floor(random() * 365) || ' days')::interval
         + ((array[0,1,2,10,11,12,13,14,15,16,17,17,18,18,19,19,19,20,20,20,21,21,21,22,22,22,23,23])
              [1 + floor(random() * 28)::int] || ' hours')::interval
         + (floor(random() * 3600) || ' seconds')::interval as created_at,
       4 + floor(random() * 13)::int as n,
       g > :sessions * 0.99 as still_open
  from generate_series(1, :sessions) g;

-- The newest 1% stay open: give them this week's times.
update gen_sessions set created_at = timestamptz '2026-11-29 00:00:00+00' + (g % 1000) * interval '80 seconds'
 where still_open;

-- random() in the inner select list: evaluated per message (an uncorrelated lateral subquery
-- would be evaluated once).
create temporary table gen_messages as
select x.id as session_id, x.i as seq, x.player_id,
       case when x.i = 1 then 'player'
            when x.r1 < 0.05 then 'system'
            when x.r1 < 0.55 then 'player'
            else 'gre' end as sender,
       x.gre,
       x.created_at + sum(case when x.i = 1 then 5 + floor(x.r2 * 60) else 2 + floor(exp(x.r2 * 6.5)) end)
                        over (partition by x.id order by x.i) * interval '1 second' as created_at
  from (select s.id, s.player_id, s.gre, s.created_at, i, random() as r1, random() as r2
          from gen_sessions s
          cross join lateral generate_series(1, s.n) i) x;

insert into public.gre_chat_sessions (id, player_id, status, assigned_gre_id, created_at, updated_at, closed_at, last_seq)
select s.id, s.player_id,
       case when s.still_open then 'active' else 'closed' end,
       s.gre, s.created_at, s.created_at,
       case when s.still_open then null
            else l.last_at + (60 + floor(random() * 1740)) * interval '1 second' end,
       s.n
  from gen_sessions s
  join (select m.session_id, max(m.created_at) as last_at from gen_messages m group by 1) l
    on l.session_id = s.id;

insert into public.gre_chat_messages (session_id, player_id, sender, sender_id, sender_name, message, status, created_at, seq)
select m.session_id, m.player_id, m.sender,
       case m.sender when 'player' then m.player_id::text when 'gre' then m.gre end,
       case m.sender when 'gre' then m.gre end,
       'generated message ' || m.seq, 'read', m.created_at, m.seq
  from gen_messages m;

set session_replication_role = origin;
-- The closed sessions' episodes, replies and message counts, as the closing trigger writes them.
select gre_relay.analytics_backfill() as folded;
vacuum analyze public.gre_chat_sessions, public.gre_chat_messages, gre_relay.analytics_episodes,
               gre_relay.analytics_replies, gre_relay.analytics_message_counts;
select (select count(*) from public.gre_chat_sessions) as sessions,
       (select count(*) from public.gre_chat_messages) as messages,
       (select count(*) from gre_relay.analytics_episodes) as episodes,
       (select count(*) from gre_relay.analytics_replies) as reply_samples,
       (select count(*) from gre_relay.analytics_message_counts) as count_rows;
