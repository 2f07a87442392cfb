#!/usr/bin/env bash
# bench/api.sh — allocations through zgate-api (make bench-api). Starts a
# throwaway PostgreSQL (tests/e2e/pg.sh: root, uid 65534, Unix socket) and
# one zgate-api on loopback, then allocates BENCH_API_CLIENTS (default
# 10000) new clients from BENCH_API_WORKERS (default 8) concurrent
# keep-alive HTTPS connections with a relay certificate
# (tests/e2e/api_load.py), and prints allocations/s and p50/p99 latency as
# the client sees it (TLS, HTTP, the transaction), then the server's own
# histogram and the load average before and after. Target: p99 < 10 ms.
set -euo pipefail
ZG_ROOT=$(cd "$(dirname "$0")/.." && pwd)
ZG_BIN=${ZG_BIN:-$ZG_ROOT/build/bin}
source "$ZG_ROOT/tests/e2e/lib.sh"
source "$ZG_ROOT/tests/e2e/pg.sh"
[[ $(id -u) -eq 0 ]] || { echo "bench/api.sh: needs root (PostgreSQL runs as uid 65534)" >&2; exit 1; }
clients=${BENCH_API_CLIENTS:-10000} workers=${BENCH_API_WORKERS:-8} threads=${BENCH_API_THREADS:-8}

pg_start "$ZG_TMP/pg" >/dev/null
P=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$P" -s 127.0.0.1 -c agent-1 >/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/r1.key" \
	-subj "/CN=relay:bench" -out "$P/r1.csr" 2>/dev/null
openssl x509 -req -in "$P/r1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
	-out "$P/r1.crt" 2>/dev/null
port=$((20000 + $$ % 20000))
"$ZG_BIN/zgate-api" --cert "$P/relay.crt" --key "$P/relay.key" --ca "$P/ca.crt" \
	--database "$PG_CONNINFO" --pool 10.64.0.0/16 --threads "$threads" \
	--listen 127.0.0.1:$port >"$ZG_TMP/api.log" 2>&1 & apid=$!
cleanup "kill $apid 2>/dev/null; wait $apid 2>/dev/null"
for _ in $(seq 100); do curl -sf --cacert "$P/ca.crt" https://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
echo "zgate-api: $clients new clients, $workers concurrent connections, $threads server threads, pool /16"
echo "load average: $(cut -d" " -f1-3 /proc/loadavg)"
python3 "$ZG_ROOT/tests/e2e/api_load.py" bench --url https://127.0.0.1:$port --ca "$P/ca.crt" \
	--cert "$P/r1.crt" --key "$P/r1.key" --clients "$clients" --workers "$workers"
# The server's own view (its histogram in /metrics, from the request's
# headers to the answer's completion), apart from the Python client's
# scheduling on the same cores.
curl -sS --cacert "$P/ca.crt" https://127.0.0.1:$port/metrics | awk '
	/^zgate_api_request_duration_seconds_bucket\{le="0.005000"\}/ { l5 = $2 }
	/^zgate_api_request_duration_seconds_bucket\{le="0.010000"\}/ { l10 = $2 }
	/^zgate_api_request_duration_seconds_count/ { n = $2 }
	/^zgate_api_db_retries_total/ { r = $2 }
	END { printf "server: %d requests, %d within 5 ms, %d within 10 ms, %d db retries\n", n, l5, l10, r }'
echo "load average: $(cut -d" " -f1-3 /proc/loadavg)"
