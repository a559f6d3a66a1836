#!/usr/bin/env bash
# compare_schemas.sh: `gre-bench compare` on two databases of one cluster (e.g. one with HEAD's
# schema and one with a branch's), alternating A B A B ..., `uptime` before each run, so the two
# schemas are judged in one run on a shared machine (docs/performance.md, "Issue 12, part 5").
#
# Usage:
#   scripts/compare_schemas.sh BASE_URL DB_A DB_B PASSES [RELAY_BIN] -- [gre-bench compare args]
#     BASE_URL   postgres://user@host:port (no database, no query string)
#     URLOPT     (environment, optional) appended to each database URL, e.g.
#                '?options=-c%20synchronous_commit%3Doff' for the CPU path
#     RELAY_BIN  with it, each run starts that relay on the database being measured
#                (GRE_DATABASE__MIGRATE_ON_START=false: each database keeps the schema it has),
#                passes --ws ws://127.0.0.1:$RELAY_PORT/ws --jwt-secret $SECRET to gre-bench,
#                and stops the relay afterwards. RELAY_PORT defaults to 5977.
#     GRE_BENCH  (environment) the tool, default target/release/gre-bench
# Prints, per run: the database, uptime, and gre-bench's final JSON line (--json-only).
# Example (both databases prepared with psql from the two trees' sql/ and triggers/):
#   URLOPT='?options=-c%20synchronous_commit%3Doff' scripts/compare_schemas.sh \
#     postgres://postgres@127.0.0.1:55522 gre_head gre_new 2 -- --writers 4 --rate 1000 --duration 10 --rounds 3
# Touches: what gre-bench compare touches (bench_peer schema, its own sessions and rows).
set -euo pipefail

base=${1:?BASE_URL}
db_a=${2:?DB_A}
db_b=${3:?DB_B}
passes=${4:?PASSES}
shift 4
relay=""
if [ "${1:-}" != "--" ] && [ -n "${1:-}" ]; then relay=$1; shift; fi
[ "${1:-}" = "--" ] && shift
bench=${GRE_BENCH:-target/release/gre-bench}
port=${RELAY_PORT:-5977}
secret=compare-schemas-secret-0123456789abcdef
urlopt=${URLOPT:-}

run_one() {
  local db=$1 pid="" extra=()
  shift
  if [ -n "$relay" ]; then
    DATABASE_URL="$base/$db" PORT=$port GRE_SERVER__HOST=127.0.0.1 GRE_LOG=warn \
      GRE_DATABASE__MIGRATE_ON_START=false SUPABASE_JWT_SECRET=$secret "$relay" serve &
    pid=$!
    for _ in $(seq 1 100); do
      # Our relay must still be running: another process on the port would answer too.
      kill -0 "$pid" 2>/dev/null || { echo "relay exited (port $port taken?)" >&2; exit 1; }
      curl -fsS "http://127.0.0.1:$port/api/gre-chat/health" >/dev/null 2>&1 && break
      sleep 0.2
    done
    extra=(--ws "ws://127.0.0.1:$port/ws" --jwt-secret "$secret")
  fi
  echo "== $db $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/')"
  "$bench" compare --database-url "$base/$db$urlopt" --json-only "${extra[@]}" "$@" | tail -1 || true
  if [ -n "$pid" ]; then kill -TERM "$pid"; wait "$pid" || true; fi
}

for _ in $(seq 1 "$passes"); do
  run_one "$db_a" "$@"
  run_one "$db_b" "$@"
done
echo "== end $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/')"
