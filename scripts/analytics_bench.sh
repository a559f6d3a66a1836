#!/bin/bash
# scripts/analytics_bench.sh DBNAME: the analytics benchmark of docs/performance.md ("Chat analytics
# on a year of data"), on a database made by scripts/analytics_dataset.sql.
# CPU time (user+sys of the PostgreSQL backend, from /proc) and wall time per analytics query,
# each run 5 times in one session after one warm-up run.
# Connection: the usual PG* variables (PGHOST, PGPORT, PGUSER).
DB=${1:-big}
# Read from /proc: run it on the database server's machine.
PIDFILE="${TMPDIR:-/tmp}/gre-analytics-pid"
{
  echo "\\t on"
  echo "\\o $PIDFILE"
  echo "select pg_backend_pid();"
  echo "\\o /dev/null"
  while read -r label q; do
    echo "$q;"
    echo "\\! echo START $label \$(awk '{print \$14+\$15}' /proc/\$(tr -d ' \\n' < $PIDFILE)/stat) \$(date +%s%N)"
    for i in 1 2 3 4 5; do echo "$q;"; done
    echo "\\! echo END $label \$(awk '{print \$14+\$15}' /proc/\$(tr -d ' \\n' < $PIDFILE)/stat) \$(date +%s%N)"
  done <<'Q'
year-total select * from public.gre_chat_analytics('2025-11-30', '2026-11-30', 'total')
year-day select * from public.gre_chat_analytics('2025-11-30', '2026-11-30', 'day')
year-hour_of_week select * from public.gre_chat_analytics('2025-11-30', '2026-11-30', 'hour_of_week')
year-gre select * from public.gre_chat_analytics('2025-11-30', '2026-11-30', 'gre')
year-first_response select * from public.gre_chat_analytics('2025-11-30', '2026-11-30', 'first_response')
30d-day select * from public.gre_chat_analytics('2026-11-01', '2026-12-01', 'day')
30d-gre select * from public.gre_chat_analytics('2026-11-01', '2026-12-01', 'gre')
live select * from public.gre_chat_analytics_live()
Q
} | psql -q -d "$DB" 2>&1 | awk '
  /^START/ {c[$2]=$3; w[$2]=$4}
  /^END/ {printf "%-20s cpu %6.0f ms/query   wall %6.0f ms/query\n", $2, ($3-c[$2])*10/5, ($4-w[$2])/1e6/5}'
