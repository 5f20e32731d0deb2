#!/usr/bin/env bash
# Dashboard pages under load: 1 000 000 journal requests (40 000 1C sessions), 100 000 orders with
# 300 000 timeline events, 200 000 outbox messages; wrk with CONNECTIONS (default 4) connections for DURATION seconds
# per page; prints p50/p99 per page. Needs wrk (Debian package `wrk`).
#   bench/dashboard.sh            # REQUESTS=1000000 ORDERS=100000 MESSAGES=200000 DURATION=15
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-1000000}
ORDERS=${ORDERS:-100000}
MESSAGES=${MESSAGES:-200000}
DURATION=${DURATION:-15}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin obmen --example dash_seed
BIN=target/release/obmen
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
target/release/examples/dash_seed "$DATA" "$REQUESTS" "$ORDERS" "$MESSAGES"
echo "bench-password-1" | $BIN --data-dir "$DATA" user add bench --role admin --password-stdin >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
OBMEN_EXCHANGE_PASSWORD=x OBMEN_LOG=warn $BIN --data-dir "$DATA" serve --listen 127.0.0.1:$PORT >/dev/null 2>&1 &
SERVER=$!
BASE=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do curl -sf $BASE/healthz >/dev/null && break; sleep 0.2; done
JAR=$DATA/jar
FORM=$(curl -s -c $JAR $BASE/login)
TOKEN=$(echo "$FORM" | grep -o 'name="csrf_token" value="[^"]*"' | head -1 | sed 's/.*value="//;s/"$//')
curl -s -b $JAR -c $JAR -o /dev/null -d "csrf_token=$TOKEN&username=bench&password=bench-password-1&next=/" $BASE/login
SESSION=$(awk '$6 == "obmen_session" {print $7}' $JAR)
[ -n "$SESSION" ] || { echo "login failed" >&2; exit 1; }
MID=$(printf 's%031d' $((REQUESTS / 25 / 2)))
PAGES=(
  "/"
  "/exchanges"
  "/exchanges?result=bad"
  "/exchanges?q=10.0.7.7"
  "/exchanges/$MID"
  "/messages"
  "/messages?state=dead"
  "/orders"
  "/orders?status=shipped"
  "/orders/OB-0050000"
  "/catalog?q=A-1"
  "/audit"
)
printf '| page | requests/s | p50 ms | p99 ms |\n|---|---:|---:|---:|\n'
for p in "${PAGES[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: obmen_session=$SESSION" "$BASE$p")
  if [ "$code" != "200" ]; then printf '| `%s` | HTTP %s | | |\n' "$p" "$code"; continue; fi
  out=$(wrk -t2 -c${CONNECTIONS:-4} -d${DURATION}s --latency -H "Cookie: obmen_session=$SESSION" "$BASE$p" 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errs=$(echo "$out" | grep -E "Non-2xx|Socket errors" || true)
  printf '| `%s` | %s | %s | %s | %s\n' "$p" "$rps" "$p50" "$p99" "$errs"
done
echo "server RSS: $(ps -o rss= -p $SERVER | awk '{printf "%.0f MiB", $1/1024}')"
