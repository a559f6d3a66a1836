-- analytics_write_cost.sql: run with psql on a scratch database with sql/ and triggers/ applied:
--   psql -q -f scripts/analytics_write_cost.sql DBNAME
-- The cost of the analytics for writers, in one run: 1,000 sessions of 10 messages each
-- (player and GRE in turn) are written and closed with the closing trigger
-- gre_chat_sessions_analytics disabled (A) and enabled (B), in the order A B B A A B B A.
-- Figures: microseconds per message insert and per closing, from clock_timestamp().
create or replace function pg_temp.round_of(p_base bigint) returns table (per_message_us float8, per_close_us float8)
language plpgsql as $$
declare
  v_ids uuid[] := '{}';
  v_id uuid;
  t0 timestamptz;
  t1 timestamptz;
  t2 timestamptz;
begin
  t0 := clock_timestamp();
  for i in 1..1000 loop
    insert into public.gre_chat_sessions (player_id, assigned_gre_id) values (p_base + i, 'staff-1') returning id into v_id;
    v_ids := v_ids || v_id;
    for j in 1..10 loop
      insert into public.gre_chat_messages (session_id, sender, sender_id, message)
      values (v_id, case when j % 2 = 1 then 'player' else 'gre' end, case when j % 2 = 0 then 'staff-1' end, 'ratio ' || j);
    end loop;
  end loop;
  t1 := clock_timestamp();
  foreach v_id in array v_ids loop
    update public.gre_chat_sessions set status = 'closed' where id = v_id;
  end loop;
  t2 := clock_timestamp();
  return query select date_part('epoch', t1 - t0) * 1e6 / 10000, date_part('epoch', t2 - t1) * 1e6 / 1000;
end $$;
\pset footer off
alter table public.gre_chat_sessions disable trigger gre_chat_sessions_analytics;
select 'A' as run, * from pg_temp.round_of(71000000);
alter table public.gre_chat_sessions enable trigger gre_chat_sessions_analytics;
select 'B' as run, * from pg_temp.round_of(72000000);
alter table public.gre_chat_sessions enable trigger gre_chat_sessions_analytics;
select 'B' as run, * from pg_temp.round_of(73000000);
alter table public.gre_chat_sessions disable trigger gre_chat_sessions_analytics;
select 'A' as run, * from pg_temp.round_of(74000000);
alter table public.gre_chat_sessions disable trigger gre_chat_sessions_analytics;
select 'A' as run, * from pg_temp.round_of(75000000);
alter table public.gre_chat_sessions enable trigger gre_chat_sessions_analytics;
select 'B' as run, * from pg_temp.round_of(76000000);
alter table public.gre_chat_sessions enable trigger gre_chat_sessions_analytics;
select 'B' as run, * from pg_temp.round_of(77000000);
alter table public.gre_chat_sessions disable trigger gre_chat_sessions_analytics;
select 'A' as run, * from pg_temp.round_of(78000000);
alter table public.gre_chat_sessions enable trigger gre_chat_sessions_analytics;
