#!/bin/bash
# scripts/readback_cpu.sh DBURL N PASSES: the PostgreSQL CPU of one read-back query of the relay's
# listener (the rows a hint names), before and after issue 12 part 4 (docs/performance.md,
# "Issue 12, part 4: where the cluster's CPU goes under load").
#
# One pgbench client (-M prepared, as the relay's pool runs its statements) runs N transactions of
# each variant, PASSES times in turn (alternating, so that the machine's load hits all alike):
#   base   only the lookup of a random message id (h12a.ids), which every variant also does;
#   any1   the read-back at HEAD: `message_json(m)::text ... where m.id = any($1)`, one id;
#   eq1    `message_json(m)::text ... where m.id = $1` (planned once per connection);
#   plain1 the read-back now: plain columns (src/db/wire_json.rs), `where m.id = $1`;
#   any8   HEAD's query with 8 ids; plain8 the new multi-id query with 8 ids.
# The CPU is the whole cluster's (the postmaster's children, /proc), so the cluster must be this
# machine's and otherwise idle; µs per query = (variant - base) / N. Needs the table h12a.ids
# (n, id) of existing message ids, made by the set-up below when missing.
# Example: scripts/readback_cpu.sh postgres://postgres@127.0.0.1:55530/gre 20000 3
set -eu
URL=$1; N=${2:-20000}; PASSES=${3:-3}
DIR=$(mktemp -d)
psql "$URL" -X -q -v ON_ERROR_STOP=1 <<'SQL'
create schema if not exists h12a;
do $$ begin
  if to_regclass('h12a.ids') is null then
    insert into public.gre_chat_sessions (player_id, status) values (990000000001, 'active');
    insert into public.gre_chat_messages (session_id, sender, sender_id, message)
      select s.id, 'gre', 'bench', 'read-back probe ' || g
        from public.gre_chat_sessions s, generate_series(1, 2000) g where s.player_id = 990000000001;
    create table h12a.ids as select row_number() over (order by m.seq) n, m.id
      from public.gre_chat_messages m join public.gre_chat_sessions s on s.id = m.session_id
     where s.player_id = 990000000001;
  end if;
end $$;
SQL
COLS="m.id, m.session_id, m.player_id, m.sender, m.sender_id, m.sender_name, m.message, m.status, m.created_at, m.seq, m.client_message_id, m.system_kind, m.attachment_key is not null, m.attachment_name, m.attachment_type, m.attachment_size, m.attachment_width, m.attachment_height, m.message_is_label"
LOOKUP1='\set n random(1, 1992)
select id as rid, '"'"'{'"'"' || id || '"'"'}'"'"' as rids from h12a.ids where n = :n \gset'
LOOKUP8='\set n random(1, 1992)
select '"'"'{'"'"' || string_agg(id::text, '"'"','"'"') || '"'"'}'"'"' as rids from h12a.ids where n between :n and :n + 7 \gset'
printf '%s\n' "$LOOKUP1" > "$DIR/base.pgb"
printf '%s\nselect m.session_id, m.seq, gre_relay.message_json(m)::text from public.gre_chat_messages m where m.id = any(:rids) order by m.session_id, m.seq;\n' "$LOOKUP1" > "$DIR/any1.pgb"
printf '%s\nselect m.session_id, m.seq, gre_relay.message_json(m)::text from public.gre_chat_messages m where m.id = :rid;\n' "$LOOKUP1" > "$DIR/eq1.pgb"
printf '%s\nselect %s from public.gre_chat_messages m where m.id = :rid;\n' "$LOOKUP1" "$COLS" > "$DIR/plain1.pgb"
printf '%s\n' "$LOOKUP8" > "$DIR/base8.pgb"
printf '%s\nselect m.session_id, m.seq, gre_relay.message_json(m)::text from public.gre_chat_messages m where m.id = any(:rids) order by m.session_id, m.seq;\n' "$LOOKUP8" > "$DIR/any8.pgb"
printf '%s\nselect %s from public.gre_chat_messages m where m.id = any(:rids) order by m.session_id, m.seq;\n' "$LOOKUP8" "$COLS" > "$DIR/plain8.pgb"

# The postmaster: the parent of any backend (read by the backend itself, while it lives).
PM=$(psql "$URL" -X -A -t -c "select pg_read_file('/proc/' || pg_backend_pid() || '/stat')" | sed 's/.*) //' | awk '{print $2}')
cluster_cpu() { # CPU seconds x100 (ticks) of the postmaster, its reaped children and live children
  local t
  t=$(awk '{print $14+$15+$16+$17}' "/proc/$PM/stat")
  for p in $(ps -o pid= --ppid "$PM"); do
    t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
echo "# $(uptime)"
for pass in $(seq 1 "$PASSES"); do
  for v in base any1 eq1 plain1 base8 any8 plain8; do
    a=$(cluster_cpu)
    pgbench -n -M prepared -c 1 -t "$N" -f "$DIR/$v.pgb" "$URL" > "$DIR/$v.out" 2>&1 || { cat "$DIR/$v.out"; exit 1; }
    sleep 0.3
    b=$(cluster_cpu)
    echo "pass $pass $v cpu_us_per_tx $(( (b - a) * 10000 / N ))"
  done
done
echo "# $(uptime)"
rm -rf "$DIR"
