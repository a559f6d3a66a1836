-- desk_auto_reply_cost.sql
-- What: what the desk's auto-reply trigger (triggers/80_desk_auto_reply.sql) adds to a player
--       message in the usual case (the session's assignee is online): 8 alternating rounds of
--       1,500 inserts in one backend, the trigger disabled and enabled, then the medians, the
--       minima and their ratios. Run it on a scratch database with the schema applied, one GRE
--       online and sessions assigned to it, e.g.:
--         insert into gre_online_status (gre_id, is_online, status) values ('bench-gre', true, 'online');
--         insert into gre_desk_agents (gre_id, capacity) values ('bench-gre', 100);
--         insert into gre_chat_sessions (player_id) select g from generate_series(1, 50) g;
--       psql "$URL" -X -q -f scripts/desk_auto_reply_cost.sql
-- Touches: inserts messages into gre_chat_messages; toggles the trigger (never on production).
-- Idempotent: it adds rows each run; the trigger is left enabled.
create or replace function pg_temp.cost(n int) returns float8 language plpgsql as $$
declare t0 timestamptz; s uuid[]; begin
  select array_agg(id) into s from public.gre_chat_sessions where status <> 'closed' and assigned_gre_id = 'bench-gre';
  t0 := clock_timestamp();
  for i in 1..n loop
    insert into public.gre_chat_messages (session_id, sender, message) values (s[1 + (i % array_length(s,1))], 'player', 'bench');
  end loop;
  return extract(epoch from clock_timestamp() - t0) * 1e6 / n;
end $$;
create temp table res (cfg text, us float8);
do $$ begin
  for r in 1..8 loop
    execute 'alter table public.gre_chat_messages disable trigger gre_chat_messages_zz_auto_reply';
    insert into res values ('without', pg_temp.cost(1500));
    execute 'alter table public.gre_chat_messages enable trigger gre_chat_messages_zz_auto_reply';
    insert into res values ('with', pg_temp.cost(1500));
  end loop;
end $$;
select cfg, round(min(us)::numeric,1) as min_us, round(percentile_cont(0.5) within group (order by us)::numeric,1) as median_us from res group by cfg order by cfg desc;
select round((select percentile_cont(0.5) within group (order by us) from res where cfg='with')::numeric / (select percentile_cont(0.5) within group (order by us) from res where cfg='without')::numeric, 3) as ratio_median,
       round((select min(us) from res where cfg='with')::numeric / (select min(us) from res where cfg='without')::numeric, 3) as ratio_min;
