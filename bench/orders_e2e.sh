#!/usr/bin/env bash
# Orders through the 1C protocol: `obmen serve` with ORDERS pending orders (posted through
# `POST /api/v1/orders`), one `obmen emulate-1c --sale` query (time, the server's extra peak RSS
# during it), then a 1C orders file with one document per order uploaded and imported.
#
# Environment:
#   ORDERS=10000                 number of orders
#   BENCH_DIR=/tmp/obmen-orders  data folder, files and logs
#   SKIP_BUILD=1                 use the existing release binary
#   PORT=18081
#
# The library-level figures come from `cargo run --release --example orders_bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ORDERS=${ORDERS:-10000}
BENCH_DIR=${BENCH_DIR:-/tmp/obmen-orders}
PORT=${PORT:-18081}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
URL="http://127.0.0.1:$PORT/1c_exchange.php"

log() { printf '== %s\n' "$*" >&2; }

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet
BIN=$BENCH_DIR/obmen
cp "$TARGET/release/obmen" "$BIN"

OBMEN_LOG=warn OBMEN_EXCHANGE_LOGIN=bench OBMEN_EXCHANGE_PASSWORD=bench OBMEN_API_TOKEN=bench \
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$BENCH_DIR/data" >"$BENCH_DIR/serve.log" 2>&1 &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

emulate() { "$BIN" emulate-1c "$URL" --user bench --password bench --json -q "$@"; }
# Without -q: one line per request on stderr, with the time of each answer.
emulate_verbose() { "$BIN" emulate-1c "$URL" --user bench --password bench --json "$@"; }

log "catalog: gen-catalog --goods 50 + emulate-1c"
"$BIN" gen-catalog --goods 50 --seed 1 "$BENCH_DIR/catalog" >/dev/null
emulate "$BENCH_DIR/catalog" >/dev/null

log "intake: $ORDERS orders through POST /api/v1/orders"
python3 - "$PORT" "$ORDERS" "$BENCH_DIR/catalog/expected.json" <<'EOF'
import http.client, json, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
offers = [o["id"] for o in json.load(open(sys.argv[3]))["sample_offers"]]
c = http.client.HTTPConnection("127.0.0.1", port)
t = time.time()
for i in range(n):
    body = {"channel": "api", "external_id": f"B-{i}", "date": "2026-11-23T10:00:00+03:00",
            "currency": "RUB",
            "customer": {"name": f"Покупатель {i}", "phone": "+79990000000",
                         "email": "buyer@example.ru", "address": "Москва, ул. Ленина, д. 1"},
            "lines": [{"offer_id": offers[i % len(offers)], "quantity": 2, "price": 1200.0},
                      {"offer_id": offers[(i + 1) % len(offers)], "quantity": 1, "price": 349.9}],
            "delivery": {"method": "cdek", "cost": 300.0},
            "payment": {"method": "card", "paid": False}, "comment": "Позвонить за час"}
    c.request("POST", "/api/v1/orders", json.dumps(body).encode(),
              {"Authorization": "Bearer bench", "Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
print(f"intake: {n} orders in {time.time() - t:.1f} s", file=sys.stderr)
EOF

status() { awk -v k="$1" '$1 == k {print $2}' "/proc/$SERVE_PID/status"; }

log "query ($ORDERS documents), success dropped"
echo 5 >"/proc/$SERVE_PID/clear_refs"
RSS0=$(status VmRSS:)
T0=$(date +%s.%N)
emulate_verbose --sale --no-success --save-query "$BENCH_DIR/query.xml" >"$BENCH_DIR/query.json" \
  2>"$BENCH_DIR/query.log"
T1=$(date +%s.%N)
HWM=$(status VmHWM:)
python3 - "$BENCH_DIR/query.json" "$T0" "$T1" "$RSS0" "$HWM" "$BENCH_DIR/query.log" <<'EOF'
import json, re, sys
s = json.load(open(sys.argv[1]))["sale"]
line = next(l for l in open(sys.argv[6], encoding="utf-8") if "mode=query" in l)
answer = re.search(r"\(([0-9.]+) s\)\s*$", line).group(1)
print(f"query: {s['documents']} documents, {s['query_bytes'] / 1e6:.1f} MB {s['charset']}, "
      f"request answered and read in {answer} s, whole emulate-1c run {float(sys.argv[3]) - float(sys.argv[2]):.2f} s, "
      f"server extra peak RSS {(int(sys.argv[5]) - int(sys.argv[4])) / 1024:.1f} MiB")
EOF

log "query again with success"
emulate --sale >"$BENCH_DIR/success.json"

log "1C file with one document per order"
FILE=$BENCH_DIR/orders-0f6c7a9e-1111-2222-3333-444455556666_1.xml
python3 - "$BENCH_DIR/query.json" "$FILE" <<'EOF'
import json, sys
numbers = json.load(open(sys.argv[1]))["sale"]["numbers"]
req = lambda n, v: f"<ЗначениеРеквизита><Наименование>{n}</Наименование><Значение>{v}</Значение></ЗначениеРеквизита>"
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" '
            'ВерсияСхемы="2.07" ДатаФормирования="2026-11-24T10:00:00">\n')
    for i, n in enumerate(numbers):
        reqs = (req("Номер по 1С", f"ЗК-{i:06}") + req("Дата по 1С", "2026-11-24T09:15:00") + req("Проведен", "true")
                + req("Номер оплаты по 1С", f"ПП-{i:06}") + req("Дата оплаты по 1С", "2026-11-24T10:00:00")
                + req("Статус заказа", "Готов к отгрузке"))
        f.write(f"<Документ><Ид>7c79f0f3-8c0a-11e4-a897-{i:012}</Ид><Номер>{n}</Номер><Дата>2026-11-23</Дата>"
                f"<ХозОперация>Заказ товара</ХозОперация><Роль>Продавец</Роль><Валюта>руб</Валюта><Курс>1</Курс>"
                f"<ЗначенияРеквизитов>{reqs}</ЗначенияРеквизитов></Документ>\n")
    f.write("</КоммерческаяИнформация>\n")
EOF
emulate --sale "$FILE" >"$BENCH_DIR/apply.json"
python3 - "$BENCH_DIR/apply.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
f = s["files"][0]
print(f"apply: {f['file']} {f['bytes'] / 1e6:.1f} MB, import {f['import']}, {f['import_requests']} import "
      f"requests, {f['import_seconds']:.2f} s; {f['answer']}")
EOF
