#!/bin/bash
# scripts/cpu_breakdown.sh OUTDIR PASSES BIN [BIN ...] -- [gre-bench compare arguments]
#
# Issue 12, part 4 (docs/performance.md, "Issue 12, part 4: where the cluster's CPU goes under
# load"): `gre-bench compare --ws` against each relay binary in turn, PASSES times (BIN1, BIN2,
# BIN1, BIN2, ...: alternating, so that a before/after ratio comes from one run of the machine),
# all on one database that the relays do not own (a cluster started with pg_ctl, migrated once).
# Each relay is started fresh, the tool runs, the relay gets SIGTERM. Writes OUTDIR/NN-BIN.json
# (the tool's JSON line) and OUTDIR/NN-BIN.txt (its report), with `uptime` before and after.
#
# Environment: DATABASE_URL (the migrated database), SUPABASE_JWT_SECRET, PORT (default 5931),
# BENCH (default target/release/gre-bench).
# Example:
#   DATABASE_URL=postgres://postgres@127.0.0.1:55530/gre SUPABASE_JWT_SECRET=s3cr3t... \
#     scripts/cpu_breakdown.sh /var/tmp/h12a-out/s5 2 target/release/gre-relay.head \
#     target/release/gre-relay -- --staff 5 --writers 4 --rate 1000 --duration 10 --rounds 3
set -u
OUT=$1; PASSES=$2; shift 2
BINS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do BINS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
PORT=${PORT:-5931}
BENCH=${BENCH:-target/release/gre-bench}
mkdir -p "$OUT"
n=0
for pass in $(seq 1 "$PASSES"); do
  for bin in "${BINS[@]}"; do
    n=$((n + 1))
    tag=$(printf '%02d-%s' "$n" "$(basename "$bin")")
    PORT=$PORT GRE_SERVER__HOST=127.0.0.1 GRE_LOG=warn GRE_DATABASE__MIGRATE_ON_START=false \
      bash -c 'ulimit -n 20000; exec "$0" serve' "$bin" > "$OUT/$tag.relay.log" 2>&1 &
    relay=$!
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$PORT/api/gre-chat/health" > /dev/null && break
      sleep 0.2
    done
    {
      echo "# $bin pass $pass"
      echo "# before: $(uptime)"
    } > "$OUT/$tag.txt"
    bash -c 'ulimit -n 20000; exec "$0" "$@"' "$BENCH" compare \
      --ws "ws://127.0.0.1:$PORT/ws" "$@" > "$OUT/$tag.out" 2>> "$OUT/$tag.txt"
    echo "# after: $(uptime)" >> "$OUT/$tag.txt"
    grep -v '^{' "$OUT/$tag.out" >> "$OUT/$tag.txt"
    tail -n 1 "$OUT/$tag.out" > "$OUT/$tag.json"
    rm -f "$OUT/$tag.out"
    kill -TERM "$relay"
    wait "$relay"
    echo "$tag done: $(grep -o '"ok":[a-z]*' "$OUT/$tag.json" | head -1)"
  done
done
