#!/usr/bin/env bash
# insert_cpu.sh: one backend's own CPU per inserted message (the "cpu1" method of
# docs/performance.md, "Issue 12, part 3"; used again in "Issue 12, part 5").
#
# The backend reads its own utime + stime from /proc/self/stat (pg_read_file: superuser, and
# the cluster on this machine) before and after a `do` block that inserts N rows, one
# transaction each (`commit` in the loop), with synchronous_commit = off. Time spent waiting
# for a CPU does not count, so the figure holds on a loaded machine (about +-6% between
# identical runs); compare variants in alternating passes all the same.
#
# Usage (a scratch database with sql/*.sql then triggers/*.sql applied, as user postgres):
#   [GRE_BENCH=path] scripts/insert_cpu.sh setup URL         once per database (a template copies it): schema bd
#                                            with 2,000 active sessions in bd.s (assigned to
#                                            bench-gre, who is online), their players present
#                                            under a fake relay, and the peer table bench_peer
#                                            of gre-bench (one identity column, one NOTIFY trigger)
#   scripts/insert_cpu.sh run URL KIND N     KIND = gre | player | peer; prints "KIND us_per_row"
#   scripts/insert_cpu.sh wal URL KIND N     the same loop, prints WAL bytes per row instead
#                                            (pg_current_wal_insert_lsn() before and after)
# Example: for p in 1 2 3; do for db in g0 g1; do
#            scripts/insert_cpu.sh run postgres://postgres@127.0.0.1:55522/$db gre 20000; done; done
# Touches: deletes the messages of bd's sessions, truncates bench_peer.messages and
#          public.push_notifications, moves the fake relay's heartbeat. Never on production.
set -euo pipefail

cmd=${1:?usage: insert_cpu.sh setup|run|wal URL [KIND N]}
url=${2:?database URL}
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$url" "$@"; }

case "$cmd" in
setup)
  # The peer table exactly as gre-bench compare creates it (one identity column, one NOTIFY trigger).
  "${GRE_BENCH:-target/release/gre-bench}" peer-schema | psql_
  psql_ <<'SQL'
create schema if not exists bd;
create table if not exists bd.s (n int primary key, id uuid not null, player_id bigint not null);
do $$
declare v uuid;
begin
  if exists (select 1 from bd.s) then return; end if;
  insert into public.gre_online_status (gre_id, is_online, status) values ('bench-gre', true, 'online')
    on conflict do nothing;
  insert into gre_relay.relay_instances (instance_id, hostname)
    values ('00000000-0000-0000-0000-0000000000bd', 'insert_cpu') on conflict do nothing;
  for i in 0..1999 loop
    insert into public.gre_chat_sessions (player_id, status, assigned_gre_id)
      values (900000 + i, 'active', 'bench-gre') returning id into v;
    insert into bd.s values (i, v, 900000 + i);
    insert into gre_relay.presence (kind, subject, instance_id)
      values ('player', (900000 + i)::text, '00000000-0000-0000-0000-0000000000bd');
  end loop;
end $$;
analyze;
SQL
  ;;
run|wal)
  kind=${3:?KIND: gre, player or peer}
  n=${4:?N rows}
  case "$kind" in
  gre)    ins="insert into public.gre_chat_messages (session_id, sender, sender_id, message) select id, 'gre', 'bench', 'bd message ' || i from bd.s where n = i % 2000;" ;;
  player) ins="insert into public.gre_chat_messages (session_id, sender, message) select id, 'player', 'bd message ' || i from bd.s where n = i % 2000;" ;;
  peer)   ins="insert into bench_peer.messages (session_id, sender, sender_id, message) select id, 'gre', 'bench', 'bd message ' || i from bd.s where n = i % 2000;" ;;
  *) echo "KIND: gre, player or peer" >&2; exit 2 ;;
  esac
  psql_ <<SQL
delete from public.gre_chat_messages where session_id in (select id from bd.s);
truncate bench_peer.messages, public.push_notifications;
update gre_relay.relay_instances set heartbeat_at = now() + interval '1 hour'
 where instance_id = '00000000-0000-0000-0000-0000000000bd';
vacuum analyze public.gre_chat_messages;
vacuum analyze public.gre_chat_sessions;
vacuum analyze bench_peer.messages;
SQL
  psql_ -At <<SQL
set synchronous_commit = off;
-- utime + stime in clock ticks (fields 14 and 15; the 12th and 13th after the command name).
create temp table t0 as
  select (split_part(x, ' ', 12)::bigint + split_part(x, ' ', 13)::bigint) as ticks,
         pg_current_wal_insert_lsn() as lsn
    from (select substring(pg_read_file('/proc/self/stat') from '\) (.*)$') as x) s;
do \$\$ begin for i in 1..$n loop $ins commit; end loop; end \$\$;
select case when '$cmd' = 'run'
            -- one clock tick is 10 ms (CLK_TCK 100) = 10,000 us
            then '$kind ' || round((split_part(x, ' ', 12)::bigint + split_part(x, ' ', 13)::bigint - t0.ticks)
                   * 10000.0 / $n, 1) || ' us/row'
            else '$kind ' || round((pg_current_wal_insert_lsn() - t0.lsn) / $n::numeric, 0) || ' WAL bytes/row' end
  from (select substring(pg_read_file('/proc/self/stat') from '\) (.*)$') as x) s, t0;
SQL
  ;;
*) echo "usage: insert_cpu.sh setup|run|wal URL [KIND N]" >&2; exit 2 ;;
esac
