#!/usr/bin/env bash
# Load run on loopback: SESSIONS (default 50) concurrent 1C clients doing full catalog exchanges in
# a loop (plus sale query/success every SALE_EVERY-th round) and DASH (default 4) signed-in
# dashboard clients, for DURATION seconds (default 600), against `obmen serve` on a fresh data
# folder. Prints per-kind requests, errors, p50/p95/p99 and the server's RSS (first/middle/last/max,
# slope), then one `LOAD_JSON {...}` line; then the server log's warnings/errors counted.
# Exit status 1 when any request failed or the server logged an error.
#
#   bench/load.sh                         # DURATION=600 SESSIONS=50 DASH=4 GOODS=30 CHUNK=4096
#   OBMEN_DATABASE_URL=postgres://user:pw@localhost/obmen_load bench/load.sh   # on PostgreSQL
#   PROFILE=debug bench/load.sh           # the debug build (no release compile; slower server)
#   SKIP_BUILD=1 bench/load.sh            # use the binaries already built
#   LOAD_ARGS=--same-address bench/load.sh   # all 1C clients from 127.0.0.1 (default: one address each)
# The PostgreSQL database must exist and should be empty (obmen migrates it on start).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
SESSIONS=${SESSIONS:-50}
DASH=${DASH:-4}
GOODS=${GOODS:-30}
CHUNK=${CHUNK:-4096}
SALE_EVERY=${SALE_EVERY:-3}
PROFILE=${PROFILE:-release}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${SKIP_BUILD:-}" ]; then
  if [ "$PROFILE" = release ]; then
    cargo build --release --examples --bins
  else
    cargo build --bin obmen --example load
  fi
fi
BIN=$TARGET/$PROFILE/obmen
LOAD=$TARGET/$PROFILE/examples/load
DATA=$(mktemp -d)
LOG=$DATA/serve.log
SERVER=
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "data folder kept: $DATA" >&2; else rm -rf "$DATA"; fi
}
trap cleanup EXIT
export OBMEN_EXCHANGE_LOGIN=1c
export OBMEN_EXCHANGE_PASSWORD=load-secret-1c
unset OBMEN_CONFIG
DASH_PASSWORD=load-dash-password-1
echo "$DASH_PASSWORD" | $BIN --data-dir "$DATA" user add load --role admin --password-stdin >/dev/null
OBMEN_LOG=${OBMEN_LOG:-warn} $BIN --data-dir "$DATA" serve --listen 127.0.0.1:0 >"$LOG" 2>&1 &
SERVER=$!
ADDR=
for _ in $(seq 1 300); do
  ADDR=$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -1 | sed 's|listening on http://||') || true
  [ -n "$ADDR" ] && break
  kill -0 $SERVER 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.2
done
[ -n "$ADDR" ] || { echo "obmen serve did not start" >&2; cat "$LOG" >&2; exit 1; }
echo "obmen serve pid $SERVER on $ADDR, data $DATA, database: ${OBMEN_DATABASE_URL:+PostgreSQL }${OBMEN_DATABASE_URL:-SQLite}" \
  | sed 's|//[^@]*@|//…@|' >&2
# SQLite: the WAL's size (its bound is what store::checkpoint_wal keeps) and SQLite's heap (the
# obmen_sqlite_memory_bytes gauge: page caches and statements) every 10 s.
WAL_SAMPLES=$DATA/wal.samples
HEAP_SAMPLES=$DATA/sqlite-heap.samples
if [ -z "${OBMEN_DATABASE_URL:-}" ]; then
  (while kill -0 $SERVER 2>/dev/null; do
    stat -c %s "$DATA/obmen.db-wal" 2>/dev/null >>"$WAL_SAMPLES" || true
    curl -fsS --max-time 5 "http://$ADDR/metrics" 2>/dev/null |
      sed -n 's/^obmen_sqlite_memory_bytes //p' >>"$HEAP_SAMPLES" || true
    sleep 10
  done) &
  SAMPLER=$!
fi
status=0
$LOAD --base "http://$ADDR" --pid $SERVER --login 1c --password "$OBMEN_EXCHANGE_PASSWORD" \
  --dash-user load --dash-password "$DASH_PASSWORD" --duration "$DURATION" --sessions "$SESSIONS" \
  --dash "$DASH" --goods "$GOODS" --chunk "$CHUNK" --sale-every "$SALE_EVERY" ${LOAD_ARGS:-} || status=1
kill -0 $SERVER 2>/dev/null || { echo "obmen serve died during the run" >&2; status=1; }
if [ -s "$WAL_SAMPLES" ]; then
  sort -n "$WAL_SAMPLES" | awk -v last="$(tail -1 "$WAL_SAMPLES")" -v db="$(stat -c %s "$DATA/obmen.db")" \
    '{m=$1} END {printf "SQLite: WAL max %.1f MiB, last sample %.1f MiB (%d samples); database %.1f MiB\n", m/1048576, last/1048576, NR, db/1048576}'
fi
if [ -s "$HEAP_SAMPLES" ]; then
  awk '{if ($1 > m) m = $1; l = $1; if (NR == 1) f = $1} END {printf "SQLite heap: first %.1f MiB, max %.1f MiB, last %.1f MiB (%d samples)\n", f/1048576, m/1048576, l/1048576, NR}' "$HEAP_SAMPLES"
fi
# Without colour codes (the log may carry ANSI escapes).
sed 's/\x1b\[[0-9;]*m//g' "$LOG" >"$LOG.plain"
warn=$(grep -c ' WARN ' "$LOG.plain" || true)
err=$(grep -c ' ERROR \|panicked' "$LOG.plain" || true)
locked=$(grep -ci 'database is locked\|deadlock' "$LOG.plain" || true)
echo "server log: $warn warnings, $err errors, $locked 'database is locked'/deadlock lines"
if [ "$warn" != 0 ] || [ "$err" != 0 ]; then
  grep ' WARN \| ERROR \|panicked' "$LOG.plain" | sed 's/^[^ ]* *//' | cut -c1-300 | sort | uniq -c | sort -rn | head -10
fi
[ "$err" = 0 ] || status=1
exit $status
