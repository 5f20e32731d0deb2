#!/usr/bin/env bash
# obmen benchmark: generate a catalog, import it with obmen (offline and, optionally, through the
# 1C protocol with `obmen emulate-1c`), parse it with the Node `commerceml-parser` peer, and print
# a table (MB, seconds, MB/s, peak RSS MiB) measured with /usr/bin/time -v.
#
# Environment:
#   GOODS=100000          number of goods (import.xml ≈ 3.3 KB and offers.xml ≈ 3.2 KB per good)
#   SEED=1                generator seed (same seed → byte-identical files)
#   BENCH_DIR=/tmp/obmen-bench   where the catalog, databases and logs go
#   SKIP_BUILD=1          do not run `cargo build --release` (use the existing binary)
#   SKIP_OBMEN=1          skip obmen's offline import
#   SKIP_UPLOAD=1         skip the 1C-protocol run (obmen serve + obmen emulate-1c)
#   SKIP_PEER=1           skip the Node peer
#   FILE_LIMIT=204800     chunk size for the protocol run (1C's Bitrix default)
#   PORT=18080            port for the protocol run
#
# Reproduce the figures in BENCHMARKS.md: `GOODS=100000 bench/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

GOODS=${GOODS:-100000}
SEED=${SEED:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/obmen-bench}
FILE_LIMIT=${FILE_LIMIT:-204800}
PORT=${PORT:-18080}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

mkdir -p "$BENCH_DIR"
BIN=$BENCH_DIR/obmen
CAT=$BENCH_DIR/catalog-$GOODS-$SEED
RESULTS=$BENCH_DIR/results.tsv
: >"$RESULTS"

log() { printf '== %s\n' "$*" >&2; }

# A private copy of the binary: the cargo target folder may be shared with other builds.
if [ -z "${SKIP_BUILD:-}" ]; then
  log "cargo build --release"
  cargo build --release --quiet
  cp "$TARGET/release/obmen" "$BIN"
elif [ -x "$TARGET/release/obmen" ]; then
  # Always the current build: a stale private copy once measured a reader stub.
  cp "$TARGET/release/obmen" "$BIN"
fi

# run NAME INPUT_BYTES CMD... : run under /usr/bin/time -v, record seconds and peak RSS.
run() {
  local name=$1 bytes=$2
  shift 2
  local tlog=$BENCH_DIR/time-$name.log out=$BENCH_DIR/out-$name.log
  log "$name: $*"
  if ! /usr/bin/time -v "$@" >"$out" 2>"$tlog"; then
    echo "FAILED: $name (see $out, $tlog)" >&2
    tail -n 30 "$tlog" >&2
    printf '%s\t%s\tFAILED\t\t\n' "$name" "$bytes" >>"$RESULTS"
    return 0
  fi
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tlog")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tlog")
  printf '%s\t%s\t%s\t%s\n' "$name" "$bytes" "$wall" "$rss" >>"$RESULTS"
  tail -n 1 "$out" >&2
}

log "gen-catalog --goods $GOODS --seed $SEED $CAT"
rm -rf "$CAT"
"$BIN" gen-catalog --goods "$GOODS" --seed "$SEED" "$CAT" >"$BENCH_DIR/gen.json"
cat "$BENCH_DIR/gen.json" >&2
IMP_BYTES=$(stat -c %s "$CAT/import.xml")
OFF_BYTES=$(stat -c %s "$CAT/offers.xml")
ALL_BYTES=$((IMP_BYTES + OFF_BYTES))

if [ -z "${SKIP_OBMEN:-}" ]; then
  rm -rf "$BENCH_DIR/data-import"
  run "obmen import (import.xml + offers.xml)" "$ALL_BYTES" \
    env OBMEN_LOG=warn "$BIN" import --data-dir "$BENCH_DIR/data-import" "$CAT/import.xml" "$CAT/offers.xml"
fi

if [ -z "${SKIP_UPLOAD:-}" ]; then
  rm -rf "$BENCH_DIR/data-serve"
  log "obmen serve on 127.0.0.1:$PORT (file_limit=$FILE_LIMIT, zip off)"
  OBMEN_LOG=warn OBMEN_EXCHANGE_LOGIN=bench OBMEN_EXCHANGE_PASSWORD=bench OBMEN_API_TOKEN=bench \
    OBMEN_EXCHANGE_ZIP=false OBMEN_EXCHANGE_FILE_LIMIT="$FILE_LIMIT" \
    /usr/bin/time -v "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$BENCH_DIR/data-serve" \
    >"$BENCH_DIR/serve.log" 2>"$BENCH_DIR/time-serve.log" &
  SERVE_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  run "obmen emulate-1c (UT11, ${FILE_LIMIT} B chunks, full exchange)" "$ALL_BYTES" \
    "$BIN" emulate-1c "http://127.0.0.1:$PORT/1c_exchange.php" "$CAT" \
    --user bench --password bench --json -q
  curl -fsS -H "Authorization: Bearer bench" "http://127.0.0.1:$PORT/api/v1/catalog/summary" \
    >"$BENCH_DIR/summary.json" 2>/dev/null || echo '{}' >"$BENCH_DIR/summary.json"
  # Stop obmen (the child of /usr/bin/time) so that time writes its report.
  kill "$(pgrep -P "$SERVE_PID")" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  SERVE_RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$BENCH_DIR/time-serve.log")
  printf '%s\t%s\t%s\t%s\n' "  obmen serve during that exchange" "$ALL_BYTES" "-" "${SERVE_RSS:-}" >>"$RESULTS"
  python3 - "$CAT/expected.json" "$BENCH_DIR/summary.json" <<'EOF' >&2 || true
import json, sys
exp = json.load(open(sys.argv[1])); got = json.load(open(sys.argv[2]))
keys = ["goods", "offers", "groups", "properties", "price_types", "warehouses", "deleted_goods"]
bad = [k for k in keys if got.get(k) != exp[k]]
if abs(float(got.get("stock_total", -1)) - float(exp["stock_total"])) > 1e-6:
    bad.append("stock_total")
print("summary API vs expected.json:", "match" if not bad else "MISMATCH " + ", ".join(
    f"{k}: got {got.get(k)} want {exp[k]}" for k in bad))
EOF
fi

if [ -z "${SKIP_PEER:-}" ]; then
  if [ ! -d bench/peer/node_modules/commerceml-parser ]; then
    log "npm ci (bench/peer)"
    (cd bench/peer && npm ci --no-audit --no-fund --silent)
  fi
  run "node commerceml-parser import.xml" "$IMP_BYTES" node bench/peer/parse.js "$CAT/import.xml" import
  run "node commerceml-parser offers.xml" "$OFF_BYTES" node bench/peer/parse.js "$CAT/offers.xml" offers
fi

python3 - "$RESULTS" "$GOODS" "$SEED" <<'EOF'
import sys
def secs(s):
    if not s or s in ("-", "FAILED"): return None
    parts = [float(p) for p in s.split(":")]
    t = 0.0
    for p in parts: t = t * 60 + p
    return t
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print(f"\nGOODS={sys.argv[2]} SEED={sys.argv[3]}")
print(f"| {'run':<58} | {'MB':>7} | {'seconds':>8} | {'MB/s':>7} | {'peak RSS MiB':>12} |")
print(f"|{'-'*60}|{'-'*9}|{'-'*10}|{'-'*9}|{'-'*14}|")
for r in rows:
    name, b = r[0], int(r[1])
    t = secs(r[2]) if len(r) > 2 else None
    rss = r[3] if len(r) > 3 else ""
    mb = b / 1e6
    print(f"| {name:<58} | {mb:>7.1f} | {(f'{t:.2f}' if t else (r[2] if len(r) > 2 else '')):>8} | "
          f"{(f'{mb / t:.1f}' if t else '-'):>7} | {(f'{int(rss) / 1024:.0f}' if rss.isdigit() else '-'):>12} |")
EOF
