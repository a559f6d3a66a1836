-- 90_analytics.sql
-- What: the chat analytics (definitions: docs/analytics.md).
--   Facts, one definition used both when an episode closes and, for episodes still open, at
--   query time:
--     gre_relay.analytics_answers_of(sessions, start_seqs, end_seqs)  the counted messages
--         (player, gre; never system) of the episodes, seq in (start, end], each player message
--         with the first GRE reply after it in its episode (null when none);
--     (per episode, one aggregate of those, in the two places that read them: first player
--         message, first reply, counts, the GREs who replied);
--     gre_relay.analytics_open_episodes()     the current episode of every session not closed.
--   Kept: trigger gre_chat_sessions_analytics (after update, only when the status enters or
--     leaves 'closed'; and after insert of a session inserted closed) runs
--     gre_relay.analytics_session_changed(): at closing, gre_relay.analytics_fold() writes the
--     episode's row, its reply samples and its message counts (sql/0230); at reopening, it opens
--     a new episode row. Inserting a message runs nothing here.
--   Rollups for periods over 31 days (sql/0231): gre_relay.analytics_roll() adds a closed
--     episode to analytics_monthly, analytics_daily (histograms in 2% bins,
--     gre_relay.analytics_bin()) and analytics_quarters (15-minute sums), from the view
--     gre_relay.analytics_closed_facts; gre_relay.analytics_rollup_rebuild() sums them again from
--     the facts (run here the first time, when they are empty).
--   Read (staff only): public.gre_chat_analytics(from, to, group, tz) and
--     public.gre_chat_analytics_live(). Both run with the caller's rights and refuse an API
--     caller who is not GRE staff (insufficient_privilege); the tables' policies show such a
--     caller nothing anyway.
--   At the end, gre_relay.analytics_backfill() folds sessions closed before this file existed
--   (only sessions without an episode row, so applying the file again does nothing more).
-- Touches: the functions above, gre_relay.analytics_fold(uuid), gre_relay.analytics_backfill(),
--          gre_relay.analytics_bin(), analytics_roll_add(), analytics_roll(),
--          analytics_rollup_rebuild(), the view gre_relay.analytics_closed_facts (drops and
--          recreates public.gre_chat_analytics: its result gained the column percentiles);
--          triggers gre_chat_sessions_analytics and gre_chat_sessions_analytics_insert on
--          gre_chat_sessions; writes gre_relay.analytics_* (sql/0230).
-- Idempotent: yes (create or replace; the backfill skips sessions already folded; the rollups
--             are rebuilt only when empty).

-- These two are plpgsql, not SQL functions: a SQL function that is not inlined (a SET clause
-- prevents it) is planned again at every call, which made closing a session cost 1 ms; plpgsql
-- keeps its plans for the session (docs/performance.md, "Chat analytics on a year of data").

-- Every counted message of the episodes; a player message with the first GRE reply after it in
-- its episode (by seq; nulls when none). The window runs backwards through each session, so
-- "the lowest gre seq at or after this row" is a running minimum: one pass, no lookup per row.
-- Reply samples, message counts and episode facts are all read from this one scan.
create or replace function gre_relay.analytics_answers_of(
  p_sessions uuid[], p_start bigint[], p_end bigint[])
returns table (session_id uuid, seq bigint, sender text, sender_id text, created_at timestamptz,
               reply_seq bigint, reply_at timestamptz, reply_gre text)
  language plpgsql stable
  set search_path = ''
  as $$
#variable_conflict use_column
begin
  return query
    with m as materialized (
      select m.session_id, m.seq, m.sender, m.sender_id, m.created_at
        from unnest(p_sessions, p_start, p_end) as e(session_id, start_seq, end_seq)
        join public.gre_chat_messages m
          on m.session_id = e.session_id and m.seq > e.start_seq and m.seq <= e.end_seq
       where m.sender in ('player', 'gre')
    ), n as (
      select m.*, min(m.seq) filter (where m.sender = 'gre')
                    over (partition by m.session_id order by m.seq desc) as next_gre
        from m
    )
    select n.session_id, n.seq, n.sender, n.sender_id, n.created_at, r.seq, r.created_at, r.sender_id
      from n
      left join m r on n.sender = 'player' and r.session_id = n.session_id and r.seq = n.next_gre;
end
$$;

-- An episode's facts (first player message, its first reply, counts, the GREs who replied) are
-- one aggregate over analytics_answers_of(), written where the answers are already at hand: in
-- analytics_fold() and in gre_chat_analytics() (the same expression twice; the integration
-- test "closing_and_reopening_through_the_relay_fold_episodes" checks that they agree). A
-- function of its own would scan the messages a second time.

-- The current episode of every session that is not closed: from its reopening when it was
-- reopened, else from its creation.
create or replace function gre_relay.analytics_open_episodes()
returns table (session_id uuid, player_id bigint, assigned_gre_id text, opened_at timestamptz,
               start_seq bigint, end_seq bigint)
  language plpgsql stable
  set search_path = ''
  as $$
#variable_conflict use_column
begin
  return query
    select s.id, s.player_id, s.assigned_gre_id, coalesce(e.opened_at, s.created_at),
           coalesce(e.start_seq, 0), s.last_seq
      from public.gre_chat_sessions s
      left join gre_relay.analytics_episodes e on e.session_id = s.id and e.closed_at is null
     where s.status <> 'closed';
end
$$;

-- Sums up the episode of a session that has just closed. security definer: staff close sessions
-- through the API and may not write the analytics tables.
create or replace function gre_relay.analytics_fold(p_session uuid) returns void
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  s         public.gre_chat_sessions;
  v_episode integer;
  v_start   bigint;
  v_opened  timestamptz;
begin
  select * into s from public.gre_chat_sessions where id = p_session;
  if not found or s.status <> 'closed' then
    return;
  end if;
  select e.episode, e.start_seq, e.opened_at into v_episode, v_start, v_opened
    from gre_relay.analytics_episodes e
   where e.session_id = p_session and e.closed_at is null;
  if not found then
    -- The first episode (no row until now), or a session whose reopening was not recorded.
    select coalesce(max(e.episode), 0) + 1, coalesce(max(e.end_seq), 0)
      into v_episode, v_start
      from gre_relay.analytics_episodes e where e.session_id = p_session;
    v_opened := case when v_episode = 1 then s.created_at else s.closed_at end;
  end if;

  -- The episode's row, its reply samples and its message counts, from one scan of its messages.
  with a as materialized (
    select * from gre_relay.analytics_answers_of(array[p_session], array[v_start], array[s.last_seq])
  ), f as (
    select count(*) filter (where a.sender = 'player')::integer as player_messages,
           count(*) filter (where a.sender = 'gre')::integer as gre_messages,
           coalesce(array_agg(distinct a.sender_id) filter (where a.sender = 'gre' and a.sender_id is not null),
                    '{}') as repliers,
           min(a.seq) filter (where a.sender = 'player') as first_player_seq
      from a
  ), episode as (
    insert into gre_relay.analytics_episodes as e
           (session_id, episode, player_id, opened_at, start_seq, closed_at, end_seq, assigned_gre_id,
            first_player_seq, first_player_at, first_reply_seq, first_reply_at, first_reply_gre,
            player_messages, gre_messages, repliers)
    select p_session, v_episode, s.player_id, v_opened, v_start, s.closed_at, s.last_seq,
           s.assigned_gre_id, f.first_player_seq, p.created_at, p.reply_seq, p.reply_at, p.reply_gre,
           f.player_messages, f.gre_messages, f.repliers
      from f
      left join a p on p.seq = f.first_player_seq
    on conflict (session_id, episode) do update
       set closed_at = excluded.closed_at, end_seq = excluded.end_seq,
           assigned_gre_id = excluded.assigned_gre_id,
           first_player_seq = excluded.first_player_seq, first_player_at = excluded.first_player_at,
           first_reply_seq = excluded.first_reply_seq, first_reply_at = excluded.first_reply_at,
           first_reply_gre = excluded.first_reply_gre, player_messages = excluded.player_messages,
           gre_messages = excluded.gre_messages, repliers = excluded.repliers
  ), samples as (
    insert into gre_relay.analytics_replies
           (session_id, player_seq, player_at, reply_seq, reply_at, gre_id, seconds)
    select a.session_id, a.seq, a.created_at, a.reply_seq, a.reply_at, a.reply_gre,
           greatest(0, pg_catalog.date_part('epoch', a.reply_at - a.created_at))
      from a
     where a.reply_seq is not null
    on conflict (session_id, player_seq) do nothing
  )
  insert into gre_relay.analytics_message_counts as c (bucket, sender, gre_id, messages)
  select pg_catalog.date_bin('15 minutes', a.created_at, '2000-01-01 00:00:00+00'), a.sender,
         case when a.sender = 'gre' then coalesce(a.sender_id, '') else '' end, count(*)
    from a
   group by 1, 2, 3
  on conflict (bucket, sender, gre_id) do update set messages = c.messages + excluded.messages;

  -- And its sums in the rollups of long periods.
  perform gre_relay.analytics_roll(p_session, v_episode);
end
$$;

-- security definer: see analytics_fold().
create or replace function gre_relay.analytics_session_changed() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
begin
  if new.status = 'closed' then
    perform gre_relay.analytics_fold(new.id);
  else
    -- Reopened: a new episode starts now, after the messages the session has.
    insert into gre_relay.analytics_episodes (session_id, episode, player_id, opened_at, start_seq)
    select new.id, coalesce(max(e.episode), 0) + 1, new.player_id, pg_catalog.now(), new.last_seq
      from gre_relay.analytics_episodes e
     where e.session_id = new.id
    on conflict do nothing;
  end if;
  return null;
end
$$;

-- Fires only when a session closes or reopens: never for a message's numbering UPDATE.
-- `update of status`: a message's numbering UPDATE (last_seq alone) skips it unread (triggers/40).
create or replace trigger gre_chat_sessions_analytics
  after update of status on public.gre_chat_sessions
  for each row
  when ((old.status = 'closed') is distinct from (new.status = 'closed'))
  execute function gre_relay.analytics_session_changed();

create or replace trigger gre_chat_sessions_analytics_insert
  after insert on public.gre_chat_sessions
  for each row
  when (new.status = 'closed')
  execute function gre_relay.analytics_session_changed();

-- Folds closed sessions that have no episode row (closed before this file was applied).
create or replace function gre_relay.analytics_backfill() returns integer
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_id uuid;
  v_n  integer := 0;
begin
  for v_id in
    select s.id from public.gre_chat_sessions s
     where s.status = 'closed'
       and not exists (select 1 from gre_relay.analytics_episodes e where e.session_id = s.id)
  loop
    perform gre_relay.analytics_fold(v_id);
    v_n := v_n + 1;
  end loop;
  return v_n;
end
$$;

-- Rollups for long periods (sql/0231, docs/analytics.md "Long periods"). ---------------------

-- The histogram bin of a time in seconds: 0 for [0, 1 s), then k >= 1 for
-- [1.02^(k-1), 1.02^k) s: each bin is 2% wide, so any value of a bin is within 2% of any other
-- (and of the bin's mean, which the report reads as the value of the samples in it). The report
-- writes the same expression inline (a function call per sample costs more than the rest).
create or replace function gre_relay.analytics_bin(p_seconds double precision) returns smallint
  language sql immutable parallel safe
  set search_path = ''
  as $$
  select case when p_seconds < 1 then 0
              else 1 + pg_catalog.floor(pg_catalog.ln(p_seconds) / pg_catalog.ln(1.02::double precision))
         end::smallint
$$;

-- The facts of the closed episodes and their reply samples, one row per (fact, whom it counts
-- for): g = '' for everybody, else the GRE it counts for under group gre (the assignee for
-- sessions, unanswered and resolution; each replier for replied; the first responder for frt;
-- the answering GRE for reply). `at` is the attribution time (opened_at, or the player
-- message's time for reply), s the seconds (null for counts). What analytics_monthly and
-- analytics_quarters sum, and what a long report reads for the days at its edges.
create or replace view gre_relay.analytics_closed_facts with (security_invoker = true) as
select e.session_id, e.episode, null::bigint as player_seq, e.opened_at as at, x.g, x.metric, x.s
  from gre_relay.analytics_episodes e
  cross join lateral (
    select case when e.first_reply_at is not null
                then greatest(0, pg_catalog.date_part('epoch', e.first_reply_at - e.first_player_at))
           end as frt,
           (e.first_player_at is not null and e.first_reply_at is null) as unans,
           pg_catalog.date_part('epoch', e.closed_at - e.opened_at) as res) v
  cross join lateral (values
    (''::text, 'sessions'::text, null::double precision),
    (e.assigned_gre_id, 'sessions', null),
    (case when cardinality(e.repliers) > 0 then '' end, 'replied', null),
    (case when v.unans then '' end, 'unanswered', null),
    (case when v.unans then e.assigned_gre_id end, 'unanswered', null),
    (case when v.frt is not null then '' end, 'frt', v.frt),
    (case when v.frt is not null then e.first_reply_gre end, 'frt', v.frt),
    ('', 'resolution', v.res),
    (e.assigned_gre_id, 'resolution', v.res)) as x(g, metric, s)
 where e.closed_at is not null and x.g is not null
union all
select e.session_id, e.episode, null, e.opened_at, r.g, 'replied', null
  from gre_relay.analytics_episodes e
  cross join unnest(e.repliers) as r(g)
 where e.closed_at is not null
union all
select r.session_id, null, r.player_seq, r.player_at, w.g, 'reply', r.seconds
  from gre_relay.analytics_replies r
  cross join lateral (values (''::text), (r.gre_id)) as w(g)
 where w.g is not null;

-- Adds facts to the rollups. Rows are locked in key order, so two closings at once never
-- deadlock. p_facts: (at, g, metric, s, n) as in analytics_closed_facts, plus the message
-- counts (metric player_messages / gre_messages, n messages).
create or replace function gre_relay.analytics_roll_add(
  p_at timestamptz[], p_g text[], p_metric text[], p_s double precision[], p_n bigint[])
returns void
  language plpgsql
  security definer
  set search_path = ''
  as $$
begin
  insert into gre_relay.analytics_monthly as m (month, gre_id, metric, bin, n, total)
  select pg_catalog.date_trunc('month', f.at, 'UTC'), f.g, f.metric,
         -- gre_relay.analytics_bin(f.s), written out: a call per sample cost 0.1 ms.
         case when f.s is null or f.s < 1 then 0
              else 1 + pg_catalog.floor(pg_catalog.ln(f.s) / pg_catalog.ln(1.02::double precision))
         end::smallint, sum(f.n),
         coalesce(sum(f.s), 0)
    from unnest(p_at, p_g, p_metric, p_s, p_n) as f(at, g, metric, s, n)
   group by 1, 2, 3, 4
   order by 1, 2, 3, 4
  on conflict (month, gre_id, metric, bin) do update
     set n = m.n + excluded.n, total = m.total + excluded.total;

  insert into gre_relay.analytics_daily as d (day, gre_id, metric, bin, n, total)
  select pg_catalog.date_trunc('day', f.at, 'UTC'), f.g, f.metric,
         -- gre_relay.analytics_bin(f.s), written out: a call per sample cost 0.1 ms.
         case when f.s is null or f.s < 1 then 0
              else 1 + pg_catalog.floor(pg_catalog.ln(f.s) / pg_catalog.ln(1.02::double precision))
         end::smallint, sum(f.n),
         coalesce(sum(f.s), 0)
    from unnest(p_at, p_g, p_metric, p_s, p_n) as f(at, g, metric, s, n)
   group by 1, 2, 3, 4
   order by 1, 2, 3, 4
  on conflict (day, gre_id, metric, bin) do update
     set n = d.n + excluded.n, total = d.total + excluded.total;

  insert into gre_relay.analytics_quarters as q
         (bucket, sessions, sessions_replied, first_responses, frt_total, unanswered, resolved,
          resolution_total, replies, reply_total, player_messages, gre_messages)
  select pg_catalog.date_bin('15 minutes', f.at, '2000-01-01 00:00:00+00'),
         coalesce(sum(f.n) filter (where f.metric = 'sessions'), 0),
         coalesce(sum(f.n) filter (where f.metric = 'replied'), 0),
         coalesce(sum(f.n) filter (where f.metric = 'frt'), 0),
         coalesce(sum(f.s) filter (where f.metric = 'frt'), 0),
         coalesce(sum(f.n) filter (where f.metric = 'unanswered'), 0),
         coalesce(sum(f.n) filter (where f.metric = 'resolution'), 0),
         coalesce(sum(f.s) filter (where f.metric = 'resolution'), 0),
         coalesce(sum(f.n) filter (where f.metric = 'reply'), 0),
         coalesce(sum(f.s) filter (where f.metric = 'reply'), 0),
         coalesce(sum(f.n) filter (where f.metric = 'player_messages'), 0),
         coalesce(sum(f.n) filter (where f.metric = 'gre_messages'), 0)
    from unnest(p_at, p_g, p_metric, p_s, p_n) as f(at, g, metric, s, n)
   where f.g = ''
   group by 1
   order by 1
  on conflict (bucket) do update
     set sessions = q.sessions + excluded.sessions,
         sessions_replied = q.sessions_replied + excluded.sessions_replied,
         first_responses = q.first_responses + excluded.first_responses,
         frt_total = q.frt_total + excluded.frt_total,
         unanswered = q.unanswered + excluded.unanswered,
         resolved = q.resolved + excluded.resolved,
         resolution_total = q.resolution_total + excluded.resolution_total,
         replies = q.replies + excluded.replies,
         reply_total = q.reply_total + excluded.reply_total,
         player_messages = q.player_messages + excluded.player_messages,
         gre_messages = q.gre_messages + excluded.gre_messages;
end
$$;

-- One closed episode into the rollups: its facts, its reply samples, its messages.
create or replace function gre_relay.analytics_roll(p_session uuid, p_episode integer) returns void
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_start bigint;
  v_end   bigint;
  v_at    timestamptz[];
  v_g     text[];
  v_m     text[];
  v_s     double precision[];
  v_n     bigint[];
begin
  select e.start_seq, e.end_seq into v_start, v_end
    from gre_relay.analytics_episodes e
   where e.session_id = p_session and e.episode = p_episode and e.closed_at is not null;
  if not found then
    return;
  end if;
  select array_agg(f.at), array_agg(f.g), array_agg(f.metric), array_agg(f.s), array_agg(f.n)
    into v_at, v_g, v_m, v_s, v_n
    from (
      select c.at, c.g, c.metric, c.s, 1::bigint as n
        from gre_relay.analytics_closed_facts c
       where c.session_id = p_session
         and (c.episode = p_episode or (c.player_seq > v_start and c.player_seq <= v_end))
      union all
      -- Messages as analytics_message_counts counts them: everybody, and each GRE its own.
      select pg_catalog.date_bin('15 minutes', m.created_at, '2000-01-01 00:00:00+00'), w.g,
             m.sender || '_messages', null, count(*)
        from public.gre_chat_messages m
        cross join lateral (values (''::text),
                                   (case when m.sender = 'gre' then nullif(m.sender_id, '') end)) as w(g)
       where m.session_id = p_session and m.seq > v_start and m.seq <= v_end
         and m.sender in ('player', 'gre') and w.g is not null
       group by 1, 2, 3) f;
  if v_at is not null then
    perform gre_relay.analytics_roll_add(v_at, v_g, v_m, v_s, v_n);
  end if;
end
$$;

-- Empties the rollups and sums them again from the facts of sql/0230 (every closed episode, its
-- replies, analytics_message_counts). Run when the rollups are empty (below, the first time this
-- file is applied); a DBA may run it to check them: the rollups must come out the same, except
-- for the sessions deleted since (their facts went with them; the rollups keep their sums).
create or replace function gre_relay.analytics_rollup_rebuild() returns bigint
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  v_at timestamptz[];
  v_g  text[];
  v_m  text[];
  v_s  double precision[];
  v_n  bigint[];
begin
  lock table gre_relay.analytics_monthly, gre_relay.analytics_daily, gre_relay.analytics_quarters
    in exclusive mode;
  delete from gre_relay.analytics_monthly;
  delete from gre_relay.analytics_daily;
  delete from gre_relay.analytics_quarters;
  -- Pre-summed per bin and bucket here, so that the arrays stay small.
  select array_agg(f.at), array_agg(f.g), array_agg(f.metric), array_agg(f.s), array_agg(f.n)
    into v_at, v_g, v_m, v_s, v_n
    from (
      select c.at, c.g, c.metric, c.s, 1::bigint as n
        from gre_relay.analytics_closed_facts c
      union all
      select c.bucket, w.g, c.sender || '_messages', null, c.messages
        from gre_relay.analytics_message_counts c
        cross join lateral (values (''::text),
                                   (case when c.sender = 'gre' then nullif(c.gre_id, '') end)) as w(g)
       where w.g is not null) f;
  if v_at is not null then
    perform gre_relay.analytics_roll_add(v_at, v_g, v_m, v_s, v_n);
  end if;
  return coalesce(cardinality(v_at), 0);
end
$$;

-- The report. Invoker rights: staff read the tables under their policies.
-- Its columns gained `percentiles` (which path answered): a new result type needs a drop.
drop function if exists public.gre_chat_analytics(timestamptz, timestamptz, text, text);
create or replace function public.gre_chat_analytics(
  p_from timestamptz, p_to timestamptz, p_group text default 'total', p_tz text default 'UTC')
returns table (key text, sessions bigint, sessions_replied bigint, first_responses bigint,
               unanswered bigint, frt_avg double precision, frt_median double precision,
               frt_p90 double precision, resolved bigint, resolution_avg double precision,
               resolution_median double precision, resolution_p90 double precision,
               replies bigint, reply_avg double precision, reply_median double precision,
               reply_p90 double precision, player_messages bigint, gre_messages bigint,
               percentiles text)
  language plpgsql stable
  set search_path = ''
  -- The sorts of the medians stay in memory; the planner's (high) cost estimates for the key
  -- joins made JIT compile the query, which took longer than running it (docs/performance.md).
  set work_mem = '64MB'
  set jit = off
  as $$
declare
  v_sessions uuid[];
  v_start    bigint[];
  v_end      bigint[];
  v_opened   timestamptz[];
  v_assignee text[];
  v_m1       timestamptz;
  v_m2       timestamptz;
  v_d1       timestamptz;
  v_d2       timestamptz;
begin
  if pg_catalog.row_security_active('public.gre_chat_sessions'::pg_catalog.regclass)
     and not gre_relay.jwt_is_staff() then
    raise exception 'gre_chat_analytics: GRE staff only' using errcode = 'insufficient_privilege';
  end if;
  if p_group is null or p_group not in ('total', 'day', 'hour_of_week', 'gre', 'first_response') then
    raise exception 'gre_chat_analytics: group must be total, day, hour_of_week, gre or first_response'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_from is null or p_to is null or p_from >= p_to or p_to - p_from > interval '400 days' then
    raise exception 'gre_chat_analytics: the period must be from < to, at most 400 days'
      using errcode = 'invalid_parameter_value';
  end if;
  begin
    perform pg_catalog.now() at time zone p_tz;
  exception when others then
    raise exception 'gre_chat_analytics: unknown time zone' using errcode = 'invalid_parameter_value';
  end;

  select array_agg(o.session_id), array_agg(o.start_seq), array_agg(o.end_seq),
         array_agg(o.opened_at), array_agg(o.assigned_gre_id)
    into v_sessions, v_start, v_end, v_opened, v_assignee
    from gre_relay.analytics_open_episodes() o;

  -- Long periods (more than 31 days): the rollups (sql/0231) for the closed episodes, read per
  -- UTC month for the months wholly inside the period and from the facts for the days at its
  -- edges; the open episodes live, as above. Medians and p90 come from the 2% histogram bins
  -- (docs/analytics.md, "Long periods"); counts and sums are the same as the exact path's.
  if p_to - p_from > interval '31 days' and p_group in ('total', 'gre') then
    v_m1 := pg_catalog.date_trunc('month', p_from, 'UTC');
    if v_m1 < p_from then
      v_m1 := pg_catalog.date_trunc('month', v_m1 + interval '32 days', 'UTC');
    end if;
    v_m2 := pg_catalog.date_trunc('month', p_to, 'UTC');
    v_d1 := pg_catalog.date_trunc('day', p_from, 'UTC');
    if v_d1 < p_from then
      v_d1 := pg_catalog.date_trunc('day', v_d1 + interval '25 hours', 'UTC');
    end if;
    v_d2 := pg_catalog.date_trunc('day', p_to, 'UTC');
    if v_m2 <= v_m1 then
      -- No whole month: whole days, then the facts.
      v_m1 := v_d2;
      v_m2 := v_d2;
    end if;
    return query
    with open_ep as (
      select o.session_id, o.opened_at, o.assigned_gre_id
        from unnest(v_sessions, v_opened, v_assignee) as o(session_id, opened_at, assigned_gre_id)
       where o.opened_at >= p_from and o.opened_at < p_to
    ),
    live as materialized (
      select * from gre_relay.analytics_answers_of(v_sessions, v_start, v_end)
    ),
    -- The open episodes' facts, as analytics_closed_facts has them for closed ones.
    live_ep as (
      select o.opened_at, o.assigned_gre_id, p.first_reply_gre, coalesce(f.repliers, '{}') as repliers,
             case when p.reply_at is not null
                  then greatest(0, pg_catalog.date_part('epoch', p.reply_at - p.created_at)) end as frt,
             (p.created_at is not null and p.reply_at is null) as unans
        from open_ep o
        left join (select l.session_id,
                          coalesce(array_agg(distinct l.sender_id) filter (where l.sender = 'gre' and l.sender_id is not null),
                                   '{}') as repliers,
                          min(l.seq) filter (where l.sender = 'player') as first_player_seq
                     from live l group by l.session_id) f on f.session_id = o.session_id
        left join lateral (select l.created_at, l.reply_at, l.reply_gre as first_reply_gre
                             from live l
                            where l.session_id = o.session_id and l.seq = f.first_player_seq) p on true
    ),
    facts (g, metric, bin, n, total) as (
      select m.gre_id, m.metric, m.bin, m.n, m.total
        from gre_relay.analytics_monthly m
       where m.month >= v_m1 and m.month < v_m2
      union all
      select d.gre_id, d.metric, d.bin, d.n, d.total
        from gre_relay.analytics_daily d
       where (d.day >= v_d1 and d.day < v_m1) or (d.day >= v_m2 and d.day < v_d2)
      union all
      select c.g, c.metric,
             case when c.s is null or c.s < 1 then 0
                  else 1 + pg_catalog.floor(pg_catalog.ln(c.s) / pg_catalog.ln(1.02::double precision))
             end::smallint,
             1::bigint, coalesce(c.s, 0)
        from gre_relay.analytics_closed_facts c
       where (c.at >= p_from and c.at < v_d1) or (c.at >= v_d2 and c.at < p_to)
      union all
      select w.g, c.sender || '_messages', 0::smallint, c.messages, 0::double precision
        from gre_relay.analytics_message_counts c
        cross join lateral (values (''::text),
                                   (case when c.sender = 'gre' then nullif(c.gre_id, '') end)) as w(g)
       where ((c.bucket >= p_from and c.bucket < v_d1) or (c.bucket >= v_d2 and c.bucket < p_to))
         and w.g is not null
      union all
      select x.g, x.metric,
             case when x.s is null or x.s < 1 then 0
                  else 1 + pg_catalog.floor(pg_catalog.ln(x.s) / pg_catalog.ln(1.02::double precision))
             end::smallint,
             1::bigint, coalesce(x.s, 0)
        from live_ep e
        cross join lateral (values
          (''::text, 'sessions'::text, null::double precision),
          (e.assigned_gre_id, 'sessions', null),
          (case when cardinality(e.repliers) > 0 then '' end, 'replied', null),
          (case when e.unans then '' end, 'unanswered', null),
          (case when e.unans then e.assigned_gre_id end, 'unanswered', null),
          (case when e.frt is not null then '' end, 'frt', e.frt),
          (case when e.frt is not null then e.first_reply_gre end, 'frt', e.frt)) as x(g, metric, s)
       where x.g is not null
      union all
      select r.g, 'replied', 0::smallint, 1::bigint, 0::double precision
        from live_ep e cross join unnest(e.repliers) as r(g)
      union all
      select w.g, 'reply',
             case when x.s < 1 then 0
                  else 1 + pg_catalog.floor(pg_catalog.ln(x.s) / pg_catalog.ln(1.02::double precision))
             end::smallint,
             1::bigint, x.s
        from live l
        cross join lateral (select greatest(0, pg_catalog.date_part('epoch', l.reply_at - l.created_at)) as s) x
        cross join lateral (values (''::text), (l.reply_gre)) as w(g)
       where l.reply_seq is not null and l.created_at >= p_from and l.created_at < p_to
         and w.g is not null
      union all
      select w.g, l.sender || '_messages', 0::smallint, 1::bigint, 0::double precision
        from live l
        cross join lateral (values (''::text),
                                   (case when l.sender = 'gre' then nullif(l.sender_id, '') end)) as w(g)
       where pg_catalog.date_bin('15 minutes', l.created_at, '2000-01-01 00:00:00+00') >= p_from
         and pg_catalog.date_bin('15 minutes', l.created_at, '2000-01-01 00:00:00+00') < p_to
         and w.g is not null
    ),
    bins as (
      select f.g collate "C" as g, f.metric, f.bin, sum(f.n) as n, sum(f.total) as total
        from facts f
       where (p_group = 'total' and f.g = '') or (p_group = 'gre' and f.g <> '')
       group by 1, 2, 3
    ),
    -- Each bin holds the samples of ranks [c - n, c) (from 0) of its (g, metric), valued at the
    -- bin's mean; percentile_cont's interpolation between ranks floor(h) and ceil(h),
    -- h = q * (count - 1), is done on those values.
    ranked as (
      select b.*, sum(b.n) over (partition by b.g, b.metric order by b.bin) as c,
             sum(b.n) over (partition by b.g, b.metric) as nn
        from bins b
    ),
    per as (
      select r.g, r.metric, sum(r.n)::bigint as n, sum(r.total) as total, max(r.nn) as nn,
             max(r.total / r.n) filter (where r.c - r.n <= floor(0.5 * (r.nn - 1)) and r.c > floor(0.5 * (r.nn - 1))) as lo5,
             max(r.total / r.n) filter (where r.c - r.n <= ceil(0.5 * (r.nn - 1)) and r.c > ceil(0.5 * (r.nn - 1))) as hi5,
             max(r.total / r.n) filter (where r.c - r.n <= floor(0.9 * (r.nn - 1)) and r.c > floor(0.9 * (r.nn - 1))) as lo9,
             max(r.total / r.n) filter (where r.c - r.n <= ceil(0.9 * (r.nn - 1)) and r.c > ceil(0.9 * (r.nn - 1))) as hi9
        from ranked r
       group by 1, 2
    ),
    pv as (
      select p.g, p.metric, p.n, p.total,
             p.lo5 + (0.5 * (p.nn - 1) - floor(0.5 * (p.nn - 1)))::double precision * (p.hi5 - p.lo5) as med,
             p.lo9 + (0.9 * (p.nn - 1) - floor(0.9 * (p.nn - 1)))::double precision * (p.hi9 - p.lo9) as p90
        from per p
    ),
    keys as (
      select ''::text collate "C" as g where p_group = 'total'
      union
      select pv.g from pv where p_group = 'gre'
    )
    select case when p_group = 'total' then 'total' else k.g::text end,
           coalesce(max(pv.n) filter (where pv.metric = 'sessions'), 0),
           coalesce(max(pv.n) filter (where pv.metric = 'replied'), 0),
           coalesce(max(pv.n) filter (where pv.metric = 'frt'), 0),
           coalesce(max(pv.n) filter (where pv.metric = 'unanswered'), 0),
           max(pv.total / pv.n) filter (where pv.metric = 'frt'),
           max(pv.med) filter (where pv.metric = 'frt'),
           max(pv.p90) filter (where pv.metric = 'frt'),
           coalesce(max(pv.n) filter (where pv.metric = 'resolution'), 0),
           max(pv.total / pv.n) filter (where pv.metric = 'resolution'),
           max(pv.med) filter (where pv.metric = 'resolution'),
           max(pv.p90) filter (where pv.metric = 'resolution'),
           coalesce(max(pv.n) filter (where pv.metric = 'reply'), 0),
           max(pv.total / pv.n) filter (where pv.metric = 'reply'),
           max(pv.med) filter (where pv.metric = 'reply'),
           max(pv.p90) filter (where pv.metric = 'reply'),
           case when p_group = 'gre' then 0::bigint
                else coalesce(max(pv.n) filter (where pv.metric = 'player_messages'), 0) end,
           coalesce(max(pv.n) filter (where pv.metric = 'gre_messages'), 0),
           'histogram'::text
      from keys k
      left join pv on pv.g = k.g
     group by k.g
     order by k.g;
    return;
  end if;

  -- Long periods by day or hour of the week: the 15-minute sums (sql/0231) for the closed
  -- episodes and the open ones live. Counts and averages only: the medians and p90 of each day
  -- or hour of a long period would need a histogram per 15 minutes, as large as the samples
  -- (docs/analytics.md, "Long periods"); they are null, percentiles 'none'.
  if p_to - p_from > interval '31 days' and p_group in ('day', 'hour_of_week') then
    return query
    with open_ep as (
      select o.session_id, o.opened_at
        from unnest(v_sessions, v_opened) as o(session_id, opened_at)
       where o.opened_at >= p_from and o.opened_at < p_to
    ),
    live as materialized (
      select * from gre_relay.analytics_answers_of(v_sessions, v_start, v_end)
    ),
    live_ep as (
      select o.opened_at,
             (f.n_gre > 0) as replied,
             case when p.reply_at is not null
                  then greatest(0, pg_catalog.date_part('epoch', p.reply_at - p.created_at)) end as frt,
             (p.created_at is not null and p.reply_at is null) as unans
        from open_ep o
        left join (select l.session_id, count(*) filter (where l.sender = 'gre' and l.sender_id is not null) as n_gre,
                          min(l.seq) filter (where l.sender = 'player') as first_player_seq
                     from live l group by l.session_id) f on f.session_id = o.session_id
        left join live p on p.session_id = o.session_id and p.seq = f.first_player_seq
    ),
    q as (
      select a.bucket, a.sessions, a.sessions_replied, a.first_responses, a.frt_total, a.unanswered,
             a.resolved, a.resolution_total, a.replies, a.reply_total, a.player_messages, a.gre_messages
        from gre_relay.analytics_quarters a
       where a.bucket >= p_from and a.bucket < p_to
      union all
      select pg_catalog.date_bin('15 minutes', e.opened_at, '2000-01-01 00:00:00+00'), 1,
             coalesce(e.replied, false)::integer, (e.frt is not null)::integer, coalesce(e.frt, 0),
             e.unans::integer, 0, 0, 0, 0, 0, 0
        from live_ep e
      union all
      select pg_catalog.date_bin('15 minutes', l.created_at, '2000-01-01 00:00:00+00'), 0, 0, 0, 0, 0, 0, 0,
             (l.reply_seq is not null and l.created_at >= p_from and l.created_at < p_to)::integer,
             case when l.reply_seq is not null and l.created_at >= p_from and l.created_at < p_to
                  then greatest(0, pg_catalog.date_part('epoch', l.reply_at - l.created_at)) else 0 end,
             (l.sender = 'player')::integer, (l.sender = 'gre')::integer
        from live l
       where pg_catalog.date_bin('15 minutes', l.created_at, '2000-01-01 00:00:00+00') >= p_from
         and pg_catalog.date_bin('15 minutes', l.created_at, '2000-01-01 00:00:00+00') < p_to
    ),
    keyed as (
      select case p_group
               when 'day' then ((q.bucket at time zone p_tz)::date - date '2000-01-01')
               else pg_catalog.date_part('isodow', q.bucket at time zone p_tz)::integer * 100
                    + pg_catalog.date_part('hour', q.bucket at time zone p_tz)::integer
             end as kn,
             sum(q.sessions)::bigint as sessions, sum(q.sessions_replied)::bigint as sessions_replied,
             sum(q.first_responses)::bigint as first_responses, sum(q.frt_total) as frt_total,
             sum(q.unanswered)::bigint as unanswered, sum(q.resolved)::bigint as resolved,
             sum(q.resolution_total) as resolution_total, sum(q.replies)::bigint as replies,
             sum(q.reply_total) as reply_total, sum(q.player_messages)::bigint as player_messages,
             sum(q.gre_messages)::bigint as gre_messages
        from q
       group by 1
    ),
    keys as (
      select d::date - date '2000-01-01' as kn
        from pg_catalog.generate_series(date_trunc('day', p_from at time zone p_tz),
                                        date_trunc('day', (p_to - interval '1 microsecond') at time zone p_tz),
                                        interval '1 day') d
       where p_group = 'day'
      union
      select d * 100 + h
        from pg_catalog.generate_series(1, 7) d, pg_catalog.generate_series(0, 23) h
       where p_group = 'hour_of_week'
    )
    select case p_group
             when 'day' then pg_catalog.to_char(date '2000-01-01' + keys.kn, 'YYYY-MM-DD')
             else (keys.kn / 100)::text || '-' || pg_catalog.lpad((keys.kn % 100)::text, 2, '0')
           end,
           coalesce(k.sessions, 0), coalesce(k.sessions_replied, 0), coalesce(k.first_responses, 0),
           coalesce(k.unanswered, 0), k.frt_total / nullif(k.first_responses, 0), null::double precision,
           null::double precision, coalesce(k.resolved, 0), k.resolution_total / nullif(k.resolved, 0),
           null::double precision, null::double precision, coalesce(k.replies, 0),
           k.reply_total / nullif(k.replies, 0), null::double precision, null::double precision,
           coalesce(k.player_messages, 0), coalesce(k.gre_messages, 0), 'none'::text
      from keys
      left join keyed k on k.kn = keys.kn
     order by keys.kn;
    return;
  end if;

  return query
  with open_ep as (
    select o.session_id, o.opened_at, o.assigned_gre_id
      from unnest(v_sessions, v_opened, v_assignee) as o(session_id, opened_at, assigned_gre_id)
  ),
  -- The messages of the open episodes, once, with their replies.
  live as materialized (
    select * from gre_relay.analytics_answers_of(v_sessions, v_start, v_end)
  ),
  -- Their facts: the aggregate of analytics_fold(), per session.
  live_facts as (
    select f.session_id, p.created_at as first_player_at, p.reply_at as first_reply_at,
           p.reply_gre as first_reply_gre, f.repliers
      from (select l.session_id,
                   coalesce(array_agg(distinct l.sender_id) filter (where l.sender = 'gre' and l.sender_id is not null),
                            '{}') as repliers,
                   min(l.seq) filter (where l.sender = 'player') as first_player_seq
              from live l
             group by l.session_id) f
      left join live p on p.session_id = f.session_id and p.seq = f.first_player_seq
  ),
  ep as (
    select e.opened_at, e.closed_at, e.assigned_gre_id, e.first_player_at, e.first_reply_at,
           e.first_reply_gre, e.repliers
      from gre_relay.analytics_episodes e
     where e.opened_at >= p_from and e.opened_at < p_to and e.closed_at is not null
    union all
    select o.opened_at, null::timestamptz, o.assigned_gre_id, f.first_player_at, f.first_reply_at,
           f.first_reply_gre, coalesce(f.repliers, '{}')
      from open_ep o
      left join live_facts f on f.session_id = o.session_id
     where o.opened_at >= p_from and o.opened_at < p_to
  ),
  ep2 as (
    select ep.*,
           case when ep.first_reply_at is not null
                then greatest(0, pg_catalog.date_part('epoch', ep.first_reply_at - ep.first_player_at))
           end as frt,
           (ep.first_player_at is not null and ep.first_reply_at is null)::integer as unans,
           pg_catalog.date_part('epoch', ep.closed_at - ep.opened_at) as res
      from ep
  ),
  -- One row per (key, episode) and what it counts for under that key: in the time groups one
  -- key per episode; by GRE, the assignee, each replier and the first responder separately; by
  -- first response, the episodes that have one, keyed by its bucket (b).
  ep_keyed as (
    select case when p_group in ('gre', 'first_response') then null else ep2.opened_at end as t,
           case when p_group = 'first_response' then
             case when ep2.frt < 60 then 0 when ep2.frt < 120 then 1 when ep2.frt < 300 then 2
                  when ep2.frt < 600 then 3 when ep2.frt < 1800 then 4 when ep2.frt < 3600 then 5
                  else 6 end
           end as b,
           null::text as g,
           1 as s, (cardinality(ep2.repliers) > 0)::integer as sr, ep2.frt, ep2.unans, ep2.res
      from ep2 where p_group <> 'gre' and (p_group <> 'first_response' or ep2.frt is not null)
    union all
    select null, null, ep2.assigned_gre_id, 1, 0, null, ep2.unans, ep2.res
      from ep2 where p_group = 'gre' and ep2.assigned_gre_id is not null
    union all
    select null, null, r.gre, 0, 1, null, 0, null
      from ep2 cross join unnest(ep2.repliers) as r(gre) where p_group = 'gre'
    union all
    select null, null, ep2.first_reply_gre, 0, 0, ep2.frt, 0, null
      from ep2 where p_group = 'gre' and ep2.first_reply_gre is not null
  ),
  rp as (
    select r.player_at, r.gre_id, r.seconds
      from gre_relay.analytics_replies r
     where r.player_at >= p_from and r.player_at < p_to
    union all
    select l.created_at, l.reply_gre, greatest(0, pg_catalog.date_part('epoch', l.reply_at - l.created_at))
      from live l
     where l.reply_seq is not null and l.created_at >= p_from and l.created_at < p_to
  ),
  mc as (
    select c.bucket, c.sender, c.gre_id, c.messages
      from gre_relay.analytics_message_counts c
     where c.bucket >= p_from and c.bucket < p_to
    union all
    select b.bucket, b.sender, b.gre_id, count(*)
      from (select pg_catalog.date_bin('15 minutes', m.created_at, '2000-01-01 00:00:00+00') as bucket,
                   m.sender, case when m.sender = 'gre' then coalesce(m.sender_id, '') else '' end as gre_id
              from live m) b
     where b.bucket >= p_from and b.bucket < p_to
     group by 1, 2, 3
  ),
  -- The key of each 15-minute bucket of the period, for the time groups: the time zone
  -- arithmetic runs once per bucket (35,000 a year), not once per row (700,000), and is exact
  -- for every zone whose offset is a whole number of quarter hours.
  keymap as materialized (
    select b, case p_group when 'total' then 0
                  when 'day' then ((b at time zone p_tz)::date - date '2000-01-01')
                  when 'hour_of_week' then pg_catalog.date_part('isodow', b at time zone p_tz)::integer * 100
                                           + pg_catalog.date_part('hour', b at time zone p_tz)::integer
             end as kn
      from pg_catalog.generate_series(pg_catalog.date_bin('15 minutes', p_from, '2000-01-01 00:00:00+00'), p_to, interval '15 minutes') b
     where p_group in ('day', 'hour_of_week')
  ),
  -- GRE ids group and sort bytewise (collate "C"): a linguistic sort of 400,000 ids cost more
  -- than the rest of the query.
  -- Keys: an integer for the time groups (days since 2000-01-01, or ISO day * 100 + hour, in
  -- p_tz, from keymap; 0 for total), the FRT bucket for first_response, text for GREs (with
  -- 0). Formatted once per group at the end. (The key was a helper function first: with its SET
  -- clause it was never inlined and cost 5 us a row.)
  e_agg as (
    select case when p_group in ('total', 'gre') then 0 else coalesce(k.b, km.kn) end as kn,
           k.g collate "C" as g,
           sum(k.s)::bigint as sessions, sum(k.sr)::bigint as sessions_replied,
           count(k.frt) as first_responses, sum(k.unans)::bigint as unanswered,
           avg(k.frt) as frt_avg,
           percentile_cont(array[0.5, 0.9]) within group (order by k.frt) as frt_pc,
           count(k.res) as resolved, avg(k.res) as res_avg,
           percentile_cont(array[0.5, 0.9]) within group (order by k.res) as res_pc
      from ep_keyed k
      left join keymap km on km.b = pg_catalog.date_bin('15 minutes', k.t, '2000-01-01 00:00:00+00')
     group by 1, 2
  ),
  r_agg as (
    select case when p_group in ('total', 'gre') then 0 else km.kn end as kn,
           case when p_group = 'gre' then rp.gre_id end collate "C" as g,
           count(*) as replies, avg(rp.seconds) as reply_avg,
           percentile_cont(array[0.5, 0.9]) within group (order by rp.seconds) as reply_pc
      from rp
      left join keymap km on km.b = pg_catalog.date_bin('15 minutes', rp.player_at, '2000-01-01 00:00:00+00')
     where p_group <> 'first_response' and (p_group <> 'gre' or rp.gre_id is not null)
     group by 1, 2
  ),
  m_agg as (
    select case when p_group in ('total', 'gre') then 0 else km.kn end as kn,
           case when p_group = 'gre' then nullif(mc.gre_id, '') end collate "C" as g,
           coalesce(sum(mc.messages) filter (where mc.sender = 'player' and p_group <> 'gre'), 0)::bigint as pm,
           coalesce(sum(mc.messages) filter (where mc.sender = 'gre'), 0)::bigint as gm
      from mc
      left join keymap km on km.b = mc.bucket
     where p_group <> 'first_response' and (p_group <> 'gre' or mc.sender = 'gre')
     group by 1, 2
  ),
  keys as (
    select kk.kn, kk.g from (
      select 0 as kn, null::text as g where p_group = 'total'
      union
      select d::date - date '2000-01-01', null
        from pg_catalog.generate_series(date_trunc('day', p_from at time zone p_tz),
                                        date_trunc('day', (p_to - interval '1 microsecond') at time zone p_tz),
                                        interval '1 day') d
       where p_group = 'day'
      union
      select d * 100 + h, null
        from pg_catalog.generate_series(1, 7) d, pg_catalog.generate_series(0, 23) h
       where p_group = 'hour_of_week'
      union
      select b, null from pg_catalog.generate_series(0, 6) b where p_group = 'first_response'
      union select e_agg.kn, e_agg.g from e_agg
      union select r_agg.kn, r_agg.g from r_agg
      union select m_agg.kn, m_agg.g from m_agg
    ) kk
    where p_group <> 'gre' or kk.g is not null
  )
  select case p_group
           when 'gre' then keys.g
           when 'total' then 'total'
           when 'day' then pg_catalog.to_char(date '2000-01-01' + keys.kn, 'YYYY-MM-DD')
           when 'first_response'
             then (array['0-1m', '1-2m', '2-5m', '5-10m', '10-30m', '30-60m', '60m+'])[keys.kn + 1]
           else (keys.kn / 100)::text || '-' || pg_catalog.lpad((keys.kn % 100)::text, 2, '0')
         end,
         coalesce(e.sessions, 0), coalesce(e.sessions_replied, 0), coalesce(e.first_responses, 0),
         coalesce(e.unanswered, 0), e.frt_avg, e.frt_pc[1], e.frt_pc[2],
         coalesce(e.resolved, 0), e.res_avg, e.res_pc[1], e.res_pc[2],
         coalesce(r.replies, 0), r.reply_avg, r.reply_pc[1], r.reply_pc[2],
         coalesce(m.pm, 0), coalesce(m.gm, 0), 'exact'::text
    from keys
    left join e_agg e on e.kn is not distinct from keys.kn and e.g is not distinct from keys.g
    left join r_agg r on r.kn is not distinct from keys.kn and r.g is not distinct from keys.g
    left join m_agg m on m.kn is not distinct from keys.kn and m.g is not distinct from keys.g
   order by keys.kn, keys.g;
end
$$;

-- Waiting now and the longest current wait (not bound to a period).
create or replace function public.gre_chat_analytics_live()
returns table (waiting_now bigint, longest_wait_since timestamptz, longest_wait_seconds double precision)
  language plpgsql stable
  set search_path = ''
  as $$
begin
  if pg_catalog.row_security_active('public.gre_chat_sessions'::pg_catalog.regclass)
     and not gre_relay.jwt_is_staff() then
    raise exception 'gre_chat_analytics: GRE staff only' using errcode = 'insufficient_privilege';
  end if;
  return query
  select count(w.since), min(w.since),
         greatest(0, extract(epoch from pg_catalog.now() - min(w.since)))::double precision
    from gre_relay.analytics_open_episodes() o
    cross join lateral (
      select min(m.created_at) as since
        from public.gre_chat_messages m
       where m.session_id = o.session_id and m.sender = 'player'
         and m.seq > greatest(o.start_seq,
               coalesce((select max(g.seq) from public.gre_chat_messages g
                          where g.session_id = o.session_id and g.sender = 'gre'
                            and g.seq > o.start_seq), 0))
    ) w;
end
$$;

-- Privileges: nothing for PUBLIC or anon; the invoker-rights functions for authenticated and
-- service_role (the checks above and the policies decide); the security definer ones for nobody
-- but the owner (the trigger calls them as the owner).
revoke all on function gre_relay.analytics_answers_of(uuid[], bigint[], bigint[]),
                       gre_relay.analytics_open_episodes(),
                       public.gre_chat_analytics(timestamptz, timestamptz, text, text),
                       public.gre_chat_analytics_live()
  from public, anon;
grant execute on function gre_relay.analytics_answers_of(uuid[], bigint[], bigint[]),
                          gre_relay.analytics_open_episodes(),
                          public.gre_chat_analytics(timestamptz, timestamptz, text, text),
                          public.gre_chat_analytics_live()
  to authenticated, service_role;
revoke all on function gre_relay.analytics_fold(uuid), gre_relay.analytics_session_changed(),
                       gre_relay.analytics_backfill(),
                       gre_relay.analytics_roll_add(timestamptz[], text[], text[], double precision[], bigint[]),
                       gre_relay.analytics_roll(uuid, integer), gre_relay.analytics_rollup_rebuild()
  from public, anon, authenticated, service_role;
-- The bin helper and the facts view are for reading (the view with the reader's rights, under
-- the tables' policies).
revoke all on function gre_relay.analytics_bin(double precision) from public, anon;
grant execute on function gre_relay.analytics_bin(double precision) to authenticated, service_role;
revoke all on table gre_relay.analytics_closed_facts from public, anon, authenticated, service_role;
grant select on table gre_relay.analytics_closed_facts to authenticated, service_role;

-- The rollups of sql/0231, the first time: summed from the facts already kept. (Before the
-- backfill below, which folds older sessions, and with them their rollups, one by one.)
select gre_relay.analytics_rollup_rebuild()
 where not exists (select 1 from gre_relay.analytics_monthly)
   and not exists (select 1 from gre_relay.analytics_daily)
   and not exists (select 1 from gre_relay.analytics_quarters);

select gre_relay.analytics_backfill();
