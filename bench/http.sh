#!/usr/bin/env bash
# http.commands_per_sec and http.p99_ms: wrk, 64 keep-alive connections, durable commands
# against `aftersale serve` on a fresh SQLite file. Usage: bench/http.sh AFTERSALE PACKS WORKDIR
set -euo pipefail
bin=$1 packs=$2 work=$3
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'bench-platform platform\nbench-logistics logistics\n' > "$work/keys"
"$bin" serve --listen "127.0.0.1:$port" --db "$work/http.db" --keys "$work/keys" --packs "$packs" \
  2> "$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
# 1000 delivered orders with one open case each, through the API (platform on the buyer's behalf)
python3 - "$port" <<'PY'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
h = {"Authorization": "Bearer bench-platform", "Content-Type": "application/json"}
def post(path, body):
    c.request("POST", path, json.dumps(body), h)
    r = c.getresponse(); r.read()
    if r.status not in (200, 201): sys.exit("setup: %s %s" % (path, r.status))
for i in range(1000):
    post("/v1/orders", {"id": "O%d" % i, "shop": "S%d" % (i % 10), "buyer": "B%d" % i,
         "items": [{"sku": "T1", "category": "apparel", "qty": 1, "price": 19900}]})
    post("/v1/orders/O%d/deliver" % i, {})
    post("/v1/cases", {"as": "buyer:B%d" % i, "id": "C%d" % i, "order": "O%d" % i,
         "type": "return_refund", "reason": "no_reason", "items": [{"sku": "T1", "qty": 1}]})
PY
# a warm-up round of 5 s (not counted: the fresh file's write-ahead log is still growing, and
# a growing file costs every fsync a metadata write), then three rounds of 10 s on the same
# server: the median round's rate, the worst round's p99
wrk -t2 -c64 -d5s -s "$(dirname "$0")/http.lua" "http://127.0.0.1:$port" >/dev/null 2>&1
rounds=""
for round in 1 2 3; do
  out=$(wrk -t2 -c64 -d10s --latency -s "$(dirname "$0")/http.lua" "http://127.0.0.1:$port" 2>&1)
  rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
  bad=$(printf '%s\n' "$out" | awk '/Non-2xx or 3xx responses/ {print $5}')
  sock=$(printf '%s\n' "$out" | awk '/Socket errors/ {print $0}')
  rounds="$rounds $rps:$p99:${bad:-0}"
  [ -z "$sock" ] || echo "# round $round: $sock"
done
python3 - $rounds <<'PY'
import sys
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
rounds = [r.split(":") for r in sys.argv[1:]]
rates = sorted(float(r[0]) for r in rounds)
print("http.commands_per_sec %.0f commands/s" % rates[1])
print("http.p99_ms %.2f ms" % max(ms(r[1]) for r in rounds))
print("# wrk -t2 -c64 -d10s x3 after 5 s of warm-up, POST /v1/cases/{id}/actions (durable): "
      "median round; p99 of the worst round; rounds in order %s commands/s; non-2xx answers %d"
      % (", ".join(r[0] for r in rounds), sum(int(r[2]) for r in rounds)))
PY
kill -TERM $pid; wait $pid || true
