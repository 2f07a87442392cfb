#!/usr/bin/env bash
# zgate-api against a real PostgreSQL (tests/e2e/pg.sh): migrations once and
# idempotent; allocate, idempotent re-allocation, requested address,
# refresh (moving relays), release, stats; mTLS roles (relay:ID,
# admin:NAME), the admin token, and every refusal (untrusted CA, wrong CN,
# serverAuth-only EKU, no credentials, wrong token, relay on an admin
# endpoint, relay_id not its own); the web UI's files (/ → /ui/, headers,
# 404, 405; opened from another site's link) and the origin rule (the UI's same-origin requests pass; another
# site, port or scheme, a cross-site Sec-Fetch-Site, a Host not in the
# certificate as DNS rebinding sends it: 403); bad requests (a chunked body over the
# limit refused as it passes it); exhaustion and reclaiming an expired
# lease (and a requested expired one: "how" of every path, the 0002/0003
# function); a lease outside a pool made smaller or moved: marked by GET,
# refused by refresh (409), replaced by an allocation, freed by the sweep
# once expired; the CRL: a revoked
# certificate refused after SIGHUP and, with no signal, once the file
# changed; a broken file kept out; two replicas racing with 250 clients
# allocated twice at once (500 requests) → 250 distinct addresses; the
# database going away and coming back; exit statuses; SIGTERM.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (runs PostgreSQL as uid 65534)"
API=$ZG_BIN/zgate-api
[[ -x $API ]] || fail "$API not built"

step "PostgreSQL"
pg_start "$ZG_TMP/pg"
echo "postmaster $PG_PID: $PG_CONNINFO"

step "certificates"
P=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$P" -s localhost -s 127.0.0.1 -c agent-1 --test-set >/dev/null
# Client certificates with the API's CN convention, signed by the same CA.
mkcert() { # CN NAME [EKU]
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$2.key" \
		-subj "/CN=$1" -out "$P/$2.csr" 2>/dev/null
	printf 'extendedKeyUsage=%s\n' "${3:-clientAuth}" >"$P/$2.ext"
	openssl x509 -req -in "$P/$2.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
		-days 2 -extfile "$P/$2.ext" -out "$P/$2.crt" 2>/dev/null
}
mkcert relay:r1 r1; mkcert relay:r2 r2; mkcert relay:r3 r3; mkcert admin:ops ops; mkcert relay:r9 r9srv serverAuth
mkcert "admin:x/CN=relay:r1" twocn # two common names: which one is the role?
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" >"$ZG_TMP/token"

step "exit statuses and migrate"
common=(--cert "$P/relay.crt" --key "$P/relay.key" --ca "$P/ca.crt" --database "$PG_CONNINFO"
	--pool 10.100.0.0/22 --admin-token-file "$ZG_TMP/token")
out=$("$API" "${common[@]}" --check-config) || fail "--check-config exited $?"
expect_contains "$out" "configuration OK" "--check-config"
[[ $out != *"$PG_DIR"* ]] || fail "--check-config printed the database string"
# a file that does not load is named with its option
mkdir "$ZG_TMP/adir"
for x in "cert:--cert $ZG_TMP/none.crt:cannot open: No such file" "key:--key $ZG_TMP/adir:Is a directory" \
	"ca:--ca $ZG_TMP/none.crt:cannot open" "crl:--crl $ZG_TMP/adir:Is a directory" \
	"admin_token_file:--admin-token-file $ZG_TMP/adir:cannot read: Is a directory"; do
	IFS=: read -r what args why <<<"$x"
	rc=0
	# shellcheck disable=SC2086  # $args is a flag and its value
	"$API" "${common[@]}" $args --check-config >/dev/null 2>"$ZG_TMP/err" || rc=$?
	[[ $rc -eq 2 ]] || fail "$args: exit $rc, expected 2"
	expect_contains "$(cat "$ZG_TMP/err")" "zgate-api: $what ${args#* }: $why" "$args"
done
rc=0; "$API" "${common[@]}" --pool 10.100.0.1/24 2>"$ZG_TMP/err" || rc=$?
[[ $rc -eq 2 ]] || fail "bad pool: exit $rc, expected 2"
expect_contains "$(cat "$ZG_TMP/err")" "pool" "bad pool message"
rc=0; "$API" "${common[@]}" --bogus 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "unknown option: exit $rc, expected 2"
rc=0; "$API" "${common[@]}" --key "$P/nonexistent.key" 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "missing key file: exit $rc, expected 2"
rc=0; "$API" migrate "${common[@]}" --database "host=$ZG_TMP/nowhere dbname=x" --db-timeout 1s \
	2>"$ZG_TMP/err" || rc=$?
[[ $rc -eq 1 ]] || fail "unreachable database: exit $rc, expected 1"
out=$("$API" migrate "${common[@]}") || fail "migrate exited $?"
echo "$out"
expect_contains "$out" "applied migration 0001_ipam" "first migrate"
expect_contains "$out" "applied migration 0002_allocate_function" "first migrate"
expect_contains "$out" "applied migration 0003_allocate_in_pool" "first migrate"
expect_contains "$out" "applied migration 0004_relay_quota" "first migrate"
expect_contains "$out" "applied migration 0005_policies" "first migrate"
out=$("$API" migrate "${common[@]}") || fail "second migrate exited $?"
expect_contains "$out" "schema at version 5 (0 applied now)" "second migrate"
[[ $(pg_sql "SELECT count(*) FROM zgate_schema_migrations") == 5 ]] || fail "migration recorded twice"
# A database at version 1 (a zgate-api of before 0002) gains the function;
# 0002 and 0003 are CREATE OR REPLACE, so they also run over a function
# already there (and 0003 replaces 0002's).
pg_sql "DELETE FROM zgate_schema_migrations WHERE version >= 2" >/dev/null
out=$("$API" migrate "${common[@]}") || fail "migrate from version 1 exited $?"
expect_contains "$out" "applied migration 0002_allocate_function" "migrate from version 1"
expect_contains "$out" "applied migration 0003_allocate_in_pool" "migrate from version 1"
expect_contains "$out" "applied migration 0004_relay_quota" "migrate from version 1"
expect_contains "$out" "applied migration 0005_policies" "migrate from version 1"
expect_contains "$out" "schema at version 5 (4 applied now)" "migrate from version 1"
# 0004's function with the quota, and 0002's signature as its wrapper (for
# replicas not upgraded yet).
[[ $(pg_sql "SELECT count(*) FROM pg_proc WHERE proname = 'zgate_ipam_allocate'") == 2 ]] ||
	fail "not exactly two zgate_ipam_allocate functions"

step "two replicas"
base=$((20000 + $$ % 20000))
PA=$base PB=$((base + 1))
"$API" "${common[@]}" --listen 127.0.0.1:$PA >"$ZG_TMP/a.log" 2>&1 & apid=$!
cleanup "kill $apid 2>/dev/null; wait $apid 2>/dev/null"
"$API" "${common[@]}" --listen 127.0.0.1:$PB --threads 8 >"$ZG_TMP/b.log" 2>&1 & bpid=$!
cleanup "kill $bpid 2>/dev/null; wait $bpid 2>/dev/null"
cleanup "echo '--- replica A log'; cat '$ZG_TMP/a.log'; echo '--- replica B log'; cat '$ZG_TMP/b.log'"
A=https://127.0.0.1:$PA B=https://127.0.0.1:$PB
for u in $A $B; do
	for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "$u/health" >/dev/null && break; sleep 0.1; done
	[[ $(curl -sS --cacert "$P/ca.crt" "$u/ready") == ready ]] || fail "$u not ready"
done
[[ $(pg_sql "SELECT count(*) FROM ipam_addresses") == 1021 ]] || fail "pool not filled once (10.100.0.2-10.100.3.254)"

# req URL METHOD PATH [BODY] [curl options...]: prints "CODE BODY"
req() {
	local u=$1 m=$2 p=$3 body=${4:-}; shift 4 || shift $#
	curl -sS --cacert "$P/ca.crt" -X "$m" ${body:+-d "$body" -H "Content-Type: application/json"} -o "$ZG_TMP/body" -w '%{http_code}' \
		"$@" "$u/api/v1/ipam/$p" >"$ZG_TMP/code" || true
	echo "$(cat "$ZG_TMP/code") $(cat "$ZG_TMP/body")"
}
R1=(--cert "$P/r1.crt" --key "$P/r1.key") R2=(--cert "$P/r2.crt" --key "$P/r2.key")
OPS=(--cert "$P/ops.crt" --key "$P/ops.key") R3=(--cert "$P/r3.crt" --key "$P/r3.key")
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1].split(" ",1)[1]).get(sys.argv[2]); print(v)' "$1" "$2"; }

step "allocate, idempotent, requested, refresh, release"
r=$(req $A POST allocations '{"client_id":"agent-1"}' "${R1[@]}"); echo "$r"
[[ $r == 201* ]] || fail "first allocation: $r"
addr1=$(field "$r" address)
[[ $(field "$r" relay_id) == r1 && $(field "$r" how) == new ]] || fail "lease: $r"
r=$(req $B POST allocations '{"client_id":"agent-1"}' "${R2[@]}"); echo "$r"
[[ $r == 200* && $(field "$r" address) == "$addr1" && $(field "$r" how) == existing ]] ||
	fail "allocation again through the other replica and relay: $r"
[[ $(field "$r" relay_id) == r2 ]] || fail "lease did not move to relay r2: $r"
r=$(req $A POST allocations '{"client_id":"agent-2","requested_address":"10.100.2.7","relay_id":"r1"}' "${R1[@]}")
[[ $r == 201* && $(field "$r" address) == 10.100.2.7 && $(field "$r" how) == requested ]] ||
	fail "requested free address: $r"
r=$(req $A POST allocations "{\"client_id\":\"agent-3\",\"requested_address\":\"10.100.2.7\"}" "${R1[@]}")
[[ $r == 201* && $(field "$r" address) != 10.100.2.7 && $(field "$r" how) == new ]] ||
	fail "an address someone holds was handed out again: $r"
r=$(req $A POST allocations '{"client_id":"agent-4","requested_address":"192.0.2.1"}' "${R1[@]}")
[[ $r == 201* && $(field "$r" how) == new ]] || fail "requested address outside the pool: $r"
pg_sql "UPDATE ipam_addresses SET last_seen = now() - interval '1 hour' WHERE client_id = 'agent-1'"
r=$(req $A PUT allocations/agent-1/refresh '' "${R1[@]}"); echo "$r"
[[ $r == 200* && $(field "$r" relay_id) == r1 ]] || fail "refresh: $r"
[[ $(pg_sql "SELECT last_seen > now() - interval '1 minute' FROM ipam_addresses WHERE client_id = 'agent-1'") == t ]] ||
	fail "refresh did not update last_seen"
r=$(req $A PUT allocations/nobody/refresh '' "${R1[@]}")
[[ $r == 404* ]] || fail "refresh of an unknown client: $r"
r=$(req $B GET allocations/agent-1 '' "${R2[@]}")
[[ $r == 200* && $(field "$r" address) == "$addr1" ]] || fail "GET: $r"
r=$(req $A GET stats '' "${OPS[@]}"); echo "$r"
[[ $(field "$r" size) == 1021 && $(field "$r" allocated) == 4 && $(field "$r" free) == 1017 ]] || fail "stats: $r"
r=$(req $A DELETE allocations/agent-1 '' "${OPS[@]}")
[[ $r == 200* && $(field "$r" address) == "$addr1" ]] || fail "DELETE: $r"
r=$(req $B GET allocations/agent-1 '' "${R2[@]}")
[[ $r == 404* ]] || fail "GET after DELETE: $r"
r=$(req $A DELETE allocations/agent-1 '' "${OPS[@]}")
[[ $r == 404* ]] || fail "second DELETE: $r"

step "credentials"
r=$(req $A POST allocations '{"client_id":"x"}' --cert "$P/stranger.crt" --key "$P/stranger.key")
[[ $r == 401*"not trusted"* ]] || fail "certificate of another CA: $r"
r=$(req $A POST allocations '{"client_id":"x"}' --cert "$P/expired.crt" --key "$P/expired.key")
[[ $r == 401* ]] || fail "expired certificate: $r"
r=$(req $A POST allocations '{"client_id":"x"}' --cert "$P/agent-1.crt" --key "$P/agent-1.key")
[[ $r == 401*"relay:ID or admin:NAME"* ]] || fail "an agent's certificate: $r"
r=$(req $A POST allocations '{"client_id":"x"}' --cert "$P/r9srv.crt" --key "$P/r9srv.key")
[[ $r == 401*"key usage"* ]] || fail "serverAuth-only certificate: $r"
r=$(req $A GET stats '' --cert "$P/twocn.crt" --key "$P/twocn.key")
[[ $r == 401*"more than one common name"* ]] || fail "certificate with two common names: $r"
r=$(req $A POST allocations '{"client_id":"x"}')
[[ $r == 401* ]] || fail "no credentials: $r"
r=$(req $A GET stats '' -H "Authorization: Bearer wrong-token-wrong-token")
[[ $r == 401* ]] || fail "wrong token: $r"
r=$(req $A GET stats '' -H "Authorization: Bearer $TOKEN")
[[ $r == 200* ]] || fail "admin token: $r"
r=$(req $A GET stats '' -H "Authorization: Bearer $TOKEN" --cert "$P/stranger.crt" --key "$P/stranger.key")
[[ $r == 401* ]] || fail "good token with an untrusted certificate: $r"
r=$(req $A GET stats '' "${R1[@]}")
[[ $r == 403* ]] || fail "relay on stats: $r"
r=$(req $A DELETE allocations/agent-2 '' "${R1[@]}")
[[ $r == 403* ]] || fail "relay on DELETE: $r"
r=$(req $A POST allocations '{"client_id":"x","relay_id":"r2"}' "${R1[@]}")
[[ $r == 403* ]] || fail "relay claiming another relay's id: $r"

# Two requests on one keep-alive connection: the second uses the identity
# cached from the first (the relay's), so it is still refused stats.
out=$(curl -sS --cacert "$P/ca.crt" "${R1[@]}" -w '%{http_code} %{num_connects}\n' -o /dev/null -o /dev/null \
	$A/api/v1/ipam/allocations/agent-2 $A/api/v1/ipam/stats)
[[ $out == $'200 1\n403 0' ]] || fail "keep-alive connection as relay: $out"

step "credentials checked on the head; silent, slow and too many connections"
# Before the body: an unauthenticated request is answered and closed at once.
python3 "$ZG_ROOT/tests/e2e/api_conns.py" early --port $PA --ca "$P/ca.crt" || fail "credentials after the body"
r=$(req $A GET stats '' "${R1[@]}" -H 'Content-Length: 50000' -H 'Content-Type: application/json')
[[ $r == 403* ]] || fail "relay on stats with an announced body: $r"
PD=$((base + 3))
"$API" "${common[@]}" --listen 127.0.0.1:$PD --head-timeout 1s --max-connections-per-address 4 \
	>"$ZG_TMP/d.log" 2>&1 & dpid_api=$!
cleanup "kill $dpid_api 2>/dev/null; wait $dpid_api 2>/dev/null"
for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "https://127.0.0.1:$PD/health" >/dev/null && break; sleep 0.1; done
python3 "$ZG_ROOT/tests/e2e/api_conns.py" deadline --port $PD --ca "$P/ca.crt" --within 1 ||
	fail "no deadline for the TLS handshake and the request head"
python3 "$ZG_ROOT/tests/e2e/api_conns.py" peraddr --port $PD --ca "$P/ca.crt" --cap 4 ||
	fail "max_connections_per_address not enforced"
m=$(curl -sS --cacert "$P/ca.crt" https://127.0.0.1:$PD/metrics)
[[ $(awk '$1 == "zgate_api_head_timeouts_total" {print $2}' <<<"$m") -ge 2 ]] || fail "head timeouts not counted"
[[ $(awk '$1 == "zgate_api_connections_refused_total" {print $2}' <<<"$m") -ge 1 ]] || fail "refused connections not counted"
grep -q "over max_connections_per_address 4 (the last from 127.0.0.1)" "$ZG_TMP/d.log" || fail "refusal not logged"
grep -q "within head_timeout 1000ms" "$ZG_TMP/d.log" || fail "head timeouts not logged"
kill $dpid_api; wait $dpid_api || fail "replica D exited $? on SIGTERM"

step "bad requests"
r=$(req $A POST allocations '{"client_id":"x",}' "${R1[@]}"); [[ $r == 400* ]] || fail "bad JSON: $r"
r=$(req $A POST allocations '{"client":"x"}' "${R1[@]}"); [[ $r == 400*unknown* ]] || fail "unknown key: $r"
r=$(req $A POST allocations '{"client_id":"a b"}' "${R1[@]}"); [[ $r == 400* ]] || fail "bad client id: $r"
r=$(req $A POST allocations "{\"client_id\":\"$(head -c 5000 /dev/zero | tr '\0' a)\"}" "${R1[@]}")
[[ $r == 413* ]] || fail "large body: $r"
# A chunked body announces no length: refused once it passes the limit, not
# read to its end (1 MiB here) first; the replica serves on.
python3 "$ZG_ROOT/tests/e2e/api_conns.py" chunked --port $PA --ca "$P/ca.crt" --cert "$P/r1.crt" \
	--key "$P/r1.key" || fail "a chunked body over the limit was read to its end"
grep -q '^zgate_api_requests_total{endpoint="allocate",code="413"} [1-9]' <<<"$(curl -sS --cacert "$P/ca.crt" $A/metrics)" ||
	fail "the 413 of a chunked body is not counted"
r=$(req $A POST allocations '{"client_id":"after-chunked"}' "${R1[@]}"); [[ $r == 201* ]] || fail "after a chunked body: $r"
r=$(req $A GET 'allocations/a%20b' '' "${R1[@]}"); [[ $r == 400* ]] || fail "bad id in path: $r"
r=$(req $A PATCH allocations/agent-2 '' "${R1[@]}"); [[ $r == 405* ]] || fail "PATCH: $r"
r=$(req $A GET nothing '' "${R1[@]}"); [[ $r == 404* ]] || fail "unknown path: $r"

step "the web UI's files"
# hdr PATH [curl options...]: the answer's status line and headers, no credentials
hdr() { local p=$1; shift; curl -sS --cacert "$P/ca.crt" -D - -o "$ZG_TMP/body" "$@" "$A$p" | tr -d '\r'; }
h=$(hdr /); [[ $h == "HTTP/1.1 302"* && $h == *$'\nLocation: /ui/\n'* ]] || fail "GET /: $h"
h=$(hdr /ui); [[ $h == "HTTP/1.1 302"* && $h == *$'\nLocation: /ui/\n'* ]] || fail "GET /ui: $h"
h=$(hdr /ui/); echo "$h"
[[ $h == "HTTP/1.1 200"* ]] || fail "GET /ui/: $h"
for x in "Content-Type: text/html; charset=utf-8" "Cache-Control: no-store" "X-Content-Type-Options: nosniff" \
	"Referrer-Policy: no-referrer" \
	"Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"; do
	[[ $h == *$'\n'"$x"$'\n'* ]] || fail "GET /ui/: no '$x' in: $h"
done
grep -q '<script src="app.js" defer></script>' "$ZG_TMP/body" || fail "GET /ui/: not the UI's page"
cmp -s "$ZG_TMP/body" "$ZG_ROOT/src/api/ui/index.html" || fail "GET /ui/ differs from src/api/ui/index.html"
h=$(hdr /ui/app.js); [[ $h == *$'\nContent-Type: text/javascript; charset=utf-8\n'* ]] || fail "GET /ui/app.js: $h"
cmp -s "$ZG_TMP/body" "$ZG_ROOT/src/api/ui/app.js" || fail "GET /ui/app.js differs from src/api/ui/app.js"
h=$(hdr /ui/app.css); [[ $h == *$'\nContent-Type: text/css; charset=utf-8\n'* ]] || fail "GET /ui/app.css: $h"
h=$(hdr /ui/nope.js); [[ $h == "HTTP/1.1 404"* ]] || fail "GET /ui/nope.js: $h"
h=$(hdr /ui/ -I); [[ $h == "HTTP/1.1 200"* ]] || fail "HEAD /ui/: $h"
h=$(hdr /ui/ -X POST -d x); [[ $h == "HTTP/1.1 405"* && $h == *$'\nAllow: GET, HEAD\n'* ]] || fail "POST /ui/: $h"
# A link from another site (a wiki) opens the page: a GET or HEAD of the UI's
# pages needs no credentials and acts on nothing, so no origin rule; the API
# routes keep it (below), and so does a POST to a UI path.
nav=(-H 'Sec-Fetch-Site: cross-site' -H 'Sec-Fetch-Mode: navigate' -H 'Sec-Fetch-Dest: document')
h=$(hdr /ui/ "${nav[@]}"); [[ $h == "HTTP/1.1 200"* ]] || fail "GET /ui/ from a cross-site link: $h"
cmp -s "$ZG_TMP/body" "$ZG_ROOT/src/api/ui/index.html" || fail "GET /ui/ from a cross-site link: not the page"
h=$(hdr /ui/ -H 'Sec-Fetch-Site: same-site' -H 'Sec-Fetch-Mode: navigate'); [[ $h == "HTTP/1.1 200"* ]] || fail "GET /ui/ from a same-site link: $h"
h=$(hdr / "${nav[@]}"); [[ $h == "HTTP/1.1 302"* ]] || fail "GET / from a cross-site link: $h"
h=$(hdr /ui/app.js -H 'Sec-Fetch-Site: cross-site' -H 'Origin: https://evil.example'); [[ $h == "HTTP/1.1 200"* ]] || fail "GET /ui/app.js with another Origin: $h"
h=$(hdr /ui/ -I "${nav[@]}"); [[ $h == "HTTP/1.1 200"* ]] || fail "HEAD /ui/ from a cross-site link: $h"
h=$(hdr /ui/ -X POST -d x -H 'Sec-Fetch-Site: cross-site'); [[ $h == "HTTP/1.1 403"* ]] || fail "cross-site POST /ui/: $h"
h=$(hdr /api/v1/ipam/stats -H "Authorization: Bearer $TOKEN" "${nav[@]}"); [[ $h == "HTTP/1.1 403"* ]] || fail "API route from a cross-site link: $h"
grep -q 'Sec-Fetch-Site' "$ZG_TMP/body" || fail "API route from a cross-site link: not the origin rule's 403: $(cat "$ZG_TMP/body")"
h=$(hdr /api/v1/policies -H "Authorization: Bearer $TOKEN" -H 'Sec-Fetch-Site: same-site' -H 'Sec-Fetch-Mode: navigate')
[[ $h == "HTTP/1.1 403"* ]] || fail "policy list from a same-site link: $h"
grep -q '^zgate_api_requests_total{endpoint="ui",code="200"} [1-9]' <<<"$(curl -sS --cacert "$P/ca.crt" $A/metrics)" ||
	fail "UI requests not counted in /metrics"

step "cross-site requests and content types (CSRF)"
# raw CURL-ARGS...: prints "CODE BODY" of a POST of a valid allocation as relay r1
raw() {
	curl -sS --cacert "$P/ca.crt" "${R1[@]}" -o "$ZG_TMP/body" -w '%{http_code}' \
		"$@" "$A/api/v1/ipam/allocations" >"$ZG_TMP/code" || true
	echo "$(cat "$ZG_TMP/code") $(cat "$ZG_TMP/body")"
}
# A browser's form post: curl -d sends application/x-www-form-urlencoded.
r=$(raw -d '{"client_id":"csrf-1"}'); echo "$r"
[[ $r == 415*"Content-Type: application/json"* ]] || fail "form-encoded body accepted: $r"
r=$(raw -d '{"client_id":"csrf-1"}' -H 'Content-Type: text/plain'); [[ $r == 415* ]] || fail "text/plain body: $r"
r=$(raw -d '{"client_id":"csrf-1"}' -H 'Content-Type:'); [[ $r == 415* ]] || fail "body without Content-Type: $r"
r=$(raw -d '{"client_id":"csrf-1"}' -H 'Content-Type: application/json' -H 'Origin: https://evil.example'); echo "$r"
[[ $r == 403*"cross-site"* ]] || fail "request with an Origin header: $r"
r=$(raw -d '{"client_id":"csrf-1"}' -H 'Content-Type: application/json' -H 'Sec-Fetch-Site: cross-site')
[[ $r == 403*"cross-site"* ]] || fail "Sec-Fetch-Site: cross-site: $r"
r=$(req $A GET stats '' -H "Authorization: Bearer $TOKEN" -H 'Origin: null')
[[ $r == 403* ]] || fail "GET with an Origin header: $r"
[[ $(pg_sql "SELECT count(*) FROM ipam_addresses WHERE client_id = 'csrf-1'") == 0 ]] ||
	fail "a refused request allocated an address"
# The web UI's own page (src/api/api_origin.h): Origin exactly https:// and
# the request's Host, that Host a name of the certificate (localhost and
# 127.0.0.1 here), Sec-Fetch-Site same-origin or none.
stats() { req $A GET stats '' -H "Authorization: Bearer $TOKEN" "$@"; }
r=$(stats -H "Origin: $A" -H 'Sec-Fetch-Site: same-origin'); [[ $r == 200* ]] || fail "the UI's same-origin request: $r"
r=$(stats -H "Origin: $A"); [[ $r == 200* ]] || fail "same-origin request without Sec-Fetch-Site: $r"
r=$(stats -H "Host: localhost:$PA" -H "Origin: https://localhost:$PA" -H 'Sec-Fetch-Site: same-origin')
[[ $r == 200* ]] || fail "same-origin request under the certificate's DNS name: $r"
r=$(stats -H "Origin: https://evil.example" -H 'Sec-Fetch-Site: same-origin'); echo "$r"
[[ $r == 403*"Origin is not"* ]] || fail "Origin of another site: $r"
r=$(stats -H "Origin: https://127.0.0.1:$PB" -H 'Sec-Fetch-Site: same-origin')
[[ $r == 403*"Origin is not"* ]] || fail "Origin of another port: $r"
r=$(stats -H "Origin: http://127.0.0.1:$PA"); [[ $r == 403*"Origin is not"* ]] || fail "Origin of http: $r"
r=$(stats -H "Origin: $A" -H 'Sec-Fetch-Site: cross-site'); [[ $r == 403*"Sec-Fetch-Site"* ]] || fail "same Origin, Sec-Fetch-Site cross-site: $r"
# DNS rebinding: the attacker's name resolved to zgate-api, so the browser
# sends its Host and a matching Origin; the name is not the certificate's.
r=$(stats -H "Host: evil.example:$PA" -H "Origin: https://evil.example:$PA" -H 'Sec-Fetch-Site: same-origin'); echo "$r"
[[ $r == 403*"not a name of zgate-api's certificate"* ]] || fail "DNS rebinding (Host not in the certificate): $r"
# refused on the head: a body is never read, nothing allocated
r=$(raw -d '{"client_id":"csrf-2"}' -H 'Content-Type: application/json' -H "Host: evil.example:$PA" -H "Origin: https://evil.example:$PA")
[[ $r == 403* && $(pg_sql "SELECT count(*) FROM ipam_addresses WHERE client_id = 'csrf-2'") == 0 ]] ||
	fail "a rebound POST: $r"
r=$(raw -d '{"client_id":"csrf-1"}' -H 'Content-Type: application/json; charset=utf-8' -H 'Sec-Fetch-Site: same-origin')
[[ $r == 201* ]] || fail "application/json with charset: $r"
r=$(req $A PUT allocations/csrf-1/refresh '' "${R1[@]}"); [[ $r == 200* ]] || fail "refresh without a body needs no Content-Type: $r"
m=$(curl -sS --cacert "$P/ca.crt" $A/metrics)
grep -q '^zgate_api_requests_total{endpoint="[a-z]*",code="415"} [1-9]' <<<"$m" || fail "415 not counted in /metrics"

step "race: two replicas, 250 clients each allocated through both at once"
python3 "$ZG_ROOT/tests/e2e/api_load.py" race --url $A --url $B --ca "$P/ca.crt" --cert "$P/r1.crt" \
	--key "$P/r1.key" --clients 250 --twice >"$ZG_TMP/race.out" || { tail -20 "$ZG_TMP/race.out"; fail "race"; }
tail -1 "$ZG_TMP/race.out"
expect_contains "$(tail -1 "$ZG_TMP/race.out")" "clients 250 answers 500 distinct_addresses 250" "race"
[[ $(pg_sql "SELECT count(*), count(DISTINCT address) FROM ipam_addresses WHERE client_id LIKE 'race-%'") == "250|250" ]] ||
	fail "the table does not hold 250 distinct leases"
curl -sS --cacert "$P/ca.crt" $A/metrics $B/metrics | grep -E '^zgate_api_(allocations_total|db_retries_total)' || true

step "retry after losing a race: the client's lease committed meanwhile elsewhere"
# A transaction of psql gives client "dup" an address and holds it open;
# zgate-api, not seeing it yet, claims another address for "dup", waits on
# the client_id uniqueness, gets a unique violation when psql commits, and
# runs the allocation again: the existing lease, one retry counted.
retries() { curl -sS --cacert "$P/ca.crt" $A/metrics | awk '$1 == "zgate_api_db_retries_total" { print $2 }'; }
r0=$(retries)
pg_sql "BEGIN; UPDATE ipam_addresses SET client_id = 'dup', created_at = now(), last_seen = now()
	WHERE address = (SELECT address FROM ipam_addresses WHERE client_id IS NULL ORDER BY address DESC LIMIT 1)
	RETURNING host(address); SELECT pg_sleep(1.5); COMMIT" >"$ZG_TMP/dup.out" & dpid=$!
sleep 0.5
r=$(req $A POST allocations '{"client_id":"dup"}' "${R1[@]}"); echo "$r"
wait $dpid || fail "psql holding the lease of dup failed"
[[ $r == 200* && $(field "$r" how) == existing && $(field "$r" address) == "$(head -1 "$ZG_TMP/dup.out")" ]] ||
	fail "dup did not get the lease committed by the other transaction: $r"
[[ $(retries) -gt $r0 ]] || fail "no retry counted ($r0 before, $(retries) after)"

step "exhaustion and reclaiming (pool 10.200.0.0/30: one address)"
pg_sql "CREATE DATABASE zgate2" >/dev/null
PC=$((base + 2))
"$API" "${common[@]}" --database "host=$PG_DIR user=zgate dbname=zgate2" --pool 10.200.0.0/30 \
	--lease-ttl 1h --listen 127.0.0.1:$PC >"$ZG_TMP/c.log" 2>&1 & cpid=$!
cleanup "kill $cpid 2>/dev/null; wait $cpid 2>/dev/null"
C=https://127.0.0.1:$PC
for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "$C/health" >/dev/null && break; sleep 0.1; done
r=$(req $C POST allocations '{"client_id":"old"}' "${R1[@]}"); [[ $r == 201*10.200.0.2* ]] || fail "only address: $r"
r=$(req $C POST allocations '{"client_id":"new"}' "${R1[@]}"); [[ $r == 409* ]] || fail "exhausted: $r"
PGDB=zgate2 pg_sql "UPDATE ipam_addresses SET last_seen = now() - interval '2 hours' WHERE client_id = 'old'" >/dev/null
r=$(req $C GET stats '' "${OPS[@]}"); [[ $(field "$r" expired) == 1 ]] || fail "stats expired: $r"
r=$(req $C POST allocations '{"client_id":"new"}' "${R1[@]}"); echo "$r"
[[ $r == 201* && $(field "$r" address) == 10.200.0.2 && $(field "$r" how) == reclaimed ]] || fail "reclaim: $r"
r=$(req $C GET allocations/old '' "${R1[@]}"); [[ $r == 404* ]] || fail "the reclaimed client still has a lease: $r"
# The requested address held by an expired lease is reclaimed as "requested".
PGDB=zgate2 pg_sql "UPDATE ipam_addresses SET last_seen = now() - interval '2 hours' WHERE client_id = 'new'" >/dev/null
r=$(req $C POST allocations '{"client_id":"third","requested_address":"10.200.0.2"}' "${R1[@]}"); echo "$r"
[[ $r == 201* && $(field "$r" address) == 10.200.0.2 && $(field "$r" how) == requested ]] ||
	fail "requested expired address: $r"
r=$(req $C POST allocations '{"client_id":"third"}' "${R1[@]}")
[[ $r == 200* && $(field "$r" how) == existing ]] || fail "existing after requested: $r"
r=$(req $C POST allocations '{"client_id":"new"}' "${R1[@]}"); [[ $r == 409* ]] || fail "exhausted again: $r"
m=$(curl -sS --cacert "$P/ca.crt" $C/metrics)
for l in 'zgate_api_pool_exhausted_total 2' 'zgate_api_allocations_total{how="existing"} 1' \
	'zgate_api_allocations_total{how="requested"} 1' 'zgate_api_allocations_total{how="new"} 1' \
	'zgate_api_allocations_total{how="reclaimed"} 1'; do
	grep -qxF "$l" <<<"$m" || fail "metrics: no line '$l'"
done
kill $cpid; wait $cpid || fail "replica C exited $? on SIGTERM"

step "a lease outside a pool made smaller or moved is replaced"
pg_sql "CREATE DATABASE zgate3" >/dev/null
PE=$((base + 4)) E=https://127.0.0.1:$((base + 4))
start_e() { # POOL
	"$API" "${common[@]}" --database "host=$PG_DIR user=zgate dbname=zgate3" --pool "$1" \
		--listen 127.0.0.1:$PE --sweep-interval 1s >>"$ZG_TMP/e.log" 2>&1 & epid=$!
	for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "$E/health" >/dev/null && break; sleep 0.1; done
}
cleanup "kill \$epid 2>/dev/null; wait \$epid 2>/dev/null"
start_e 10.201.0.0/28
r=$(req $E POST allocations '{"client_id":"shrink-1","requested_address":"10.201.0.12"}' "${R1[@]}")
[[ $r == 201*10.201.0.12* ]] || fail "lease in the /28: $r"
r=$(req $E POST allocations '{"client_id":"shrink-2"}' "${R1[@]}"); [[ $r == 201* ]] || fail "second lease: $r"
kill $epid; wait $epid || true
start_e 10.201.0.0/29 # .2 to .6: 10.201.0.12 is out
# Until the client allocates again, GET shows its lease marked out of the
# pool, and a refresh refuses it (409, not extended) so that its relay
# allocates again instead of keeping an address no relay routes.
r=$(req $E GET allocations/shrink-1 '' "${R1[@]}"); echo "$r"
[[ $r == 200* && $(field "$r" address) == 10.201.0.12 && $(field "$r" in_pool) == False ]] ||
	fail "GET of a lease outside the pool does not say so: $r"
r=$(req $E POST allocations '{"client_id":"shrink-3","requested_address":"10.201.0.6"}' "${R1[@]}")
[[ $r == 201* && $(field "$r" in_pool) == True ]] || fail "a lease in the /29: $r"
r=$(req $E GET allocations/shrink-3 '' "${R1[@]}")
[[ $r == 200* && $(field "$r" in_pool) == True ]] || fail "GET of a lease in the pool: $r"
PGDB=zgate3 pg_sql "UPDATE ipam_addresses SET last_seen = now() - interval '1 hour', relay_id = 'r1' WHERE client_id = 'shrink-1'" >/dev/null
r=$(req $E PUT allocations/shrink-1/refresh '{"relay_id":"r2"}' -H "Authorization: Bearer $TOKEN"); echo "$r"
[[ $r == 409*"10.201.0.12 lies outside the pool 10.201.0.0/29"*"allocate again"* ]] ||
	fail "refresh of a lease outside the pool: $r"
[[ $(PGDB=zgate3 pg_sql "SELECT last_seen < now() - interval '30 minutes' AND relay_id = 'r1' FROM ipam_addresses WHERE client_id = 'shrink-1'") == t ]] ||
	fail "a refused refresh changed the lease outside the pool"
r=$(req $E PUT allocations/shrink-3/refresh '' "${R1[@]}"); [[ $r == 200* && $(field "$r" in_pool) == True ]] ||
	fail "refresh of a lease in the pool: $r"
r=$(req $E GET 'allocations?limit=10' '' "${OPS[@]}")
[[ $(python3 -c 'import json,sys; print(" ".join("%s:%s:%s" % (a["client_id"], a["address"], a["in_pool"]) for a in json.loads(sys.argv[1].split(" ",1)[1])["allocations"]))' "$r") == \
	"shrink-1:10.201.0.12:False shrink-2:10.201.0.11:False shrink-3:10.201.0.6:True" ]] ||
	fail "the list does not mark the leases outside the pool: $r"
grep -q '^zgate_api_requests_total{endpoint="refresh",code="409"} 1$' <<<"$(curl -sS --cacert "$P/ca.crt" $E/metrics)" ||
	fail "the refused refresh is not counted"
r=$(req $E POST allocations '{"client_id":"shrink-1"}' "${R1[@]}"); echo "$r"
a=$(field "$r" address)
[[ $r == 201* && $(field "$r" how) == new && $a =~ ^10\.201\.0\.[2-6]$ ]] ||
	fail "a lease outside the smaller pool was handed out again: $r"
[[ $(PGDB=zgate3 pg_sql "SELECT count(*) FROM ipam_addresses WHERE client_id = 'shrink-1'") == 1 ]] ||
	fail "shrink-1 holds more than one address"
[[ $(PGDB=zgate3 pg_sql "SELECT client_id IS NULL FROM ipam_addresses WHERE address = '10.201.0.12'") == t ]] ||
	fail "the address outside the pool was not freed"
r=$(req $E POST allocations '{"client_id":"shrink-1"}' "${R1[@]}")
[[ $r == 200* && $(field "$r" address) == "$a" && $(field "$r" how) == existing ]] || fail "again in the smaller pool: $r"
# shrink-2 never comes back: once its lease outside the pool has expired, the
# sweep (every sweep_interval, 1 s here) frees it; no allocation would, since
# reclaiming searches the pool only. An expired lease in the pool stays with
# its client until an allocation needs the address.
PGDB=zgate3 pg_sql "UPDATE ipam_addresses SET last_seen = now() - interval '8 days' WHERE client_id IN ('shrink-2', 'shrink-3')" >/dev/null
for _ in $(seq 50); do
	[[ $(PGDB=zgate3 pg_sql "SELECT count(*) FROM ipam_addresses WHERE client_id = 'shrink-2'") == 0 ]] && break
	sleep 0.1
done
r=$(req $E GET allocations/shrink-2 '' "${R1[@]}"); echo "$r"
[[ $r == 404* ]] || fail "an expired lease outside the pool is still there 5 s later: $r"
[[ $(PGDB=zgate3 pg_sql "SELECT client_id IS NULL AND relay_id IS NULL FROM ipam_addresses WHERE address = '10.201.0.11'") == t ]] ||
	fail "10.201.0.11 was not freed"
r=$(req $E GET allocations/shrink-3 '' "${R1[@]}")
[[ $r == 200* && $(field "$r" address) == 10.201.0.6 ]] || fail "the sweep freed an expired lease in the pool: $r"
grep -q "freed 1 expired lease(s) whose address lies outside the pool 10.201.0.0/29 (shrink-2's 10.201.0.11" "$ZG_TMP/e.log" ||
	fail "the sweep was not logged"
grep -qx 'zgate_api_leases_swept_total 1' <<<"$(curl -sS --cacert "$P/ca.crt" $E/metrics)" || fail "the sweep was not counted"
kill $epid; wait $epid || true
start_e 10.201.1.0/30 # moved: one address, 10.201.1.2
r=$(req $E POST allocations '{"client_id":"shrink-2"}' "${R1[@]}"); echo "$r"
[[ $r == 201* && $(field "$r" address) == 10.201.1.2 ]] || fail "a lease outside the moved pool: $r"
r=$(req $E POST allocations '{"client_id":"shrink-1"}' "${R1[@]}")
[[ $r == 409* ]] || fail "moved pool of one address, already taken: $r"
kill $epid; wait $epid || fail "replica E exited $? on SIGTERM"

step "quota of leases per relay; listing a relay's leases"
pg_sql "CREATE DATABASE zgate4" >/dev/null
PF=$((base + 5)) F=https://127.0.0.1:$((base + 5))
"$API" "${common[@]}" --database "host=$PG_DIR user=zgate dbname=zgate4" --pool 10.202.0.0/24 \
	--max-leases-per-relay 3 --listen 127.0.0.1:$PF >"$ZG_TMP/f.log" 2>&1 & fpid=$!
cleanup "kill $fpid 2>/dev/null; wait $fpid 2>/dev/null"
for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "$F/health" >/dev/null && break; sleep 0.1; done
for i in 1 2 3; do
	r=$(req $F POST allocations "{\"client_id\":\"q-$i\"}" "${R1[@]}"); [[ $r == 201* ]] || fail "r1 lease $i of 3: $r"
done
r=$(req $F POST allocations '{"client_id":"q-4"}' "${R1[@]}"); echo "$r"
[[ $r == 429*"relay r1 holds 3 leases"*"max_leases_per_relay) is 3"* ]] || fail "r1 over its quota: $r"
r=$(req $F POST allocations '{"client_id":"q-1"}' "${R1[@]}")
[[ $r == 200* && $(field "$r" how) == existing ]] || fail "existing lease at the quota: $r"
r=$(req $F POST allocations '{"client_id":"q-5"}' "${R2[@]}"); [[ $r == 201* ]] || fail "r2 while r1 is at its quota: $r"
r=$(req $F DELETE allocations/q-2 '' "${OPS[@]}"); [[ $r == 200* ]] || fail "DELETE q-2: $r"
r=$(req $F POST allocations '{"client_id":"q-4"}' "${R1[@]}"); [[ $r == 201* ]] || fail "r1 after a release: $r"
PGDB=zgate4 pg_sql "UPDATE ipam_addresses SET last_seen = now() - interval '8 days' WHERE client_id = 'q-3'" >/dev/null
r=$(req $F POST allocations '{"client_id":"q-6"}' "${R1[@]}"); [[ $r == 201* ]] || fail "an expired lease counts: $r"
# 20 new clients of r3 at once, quota 3: exactly 3 leases.
qp=()
for i in $(seq 20); do
	(cd "$ZG_TMP" && mkdir -p q3d.$i && ZG_TMP=$ZG_TMP/q3d.$i && req $F POST allocations "{\"client_id\":\"r3-$i\"}" "${R3[@]}" >"$ZG_TMP/../q3.$i") & qp+=($!)
done
wait "${qp[@]}"
[[ $(cat "$ZG_TMP"/q3.* | grep -c '^201') == 3 && $(cat "$ZG_TMP"/q3.* | grep -c '^429') == 17 ]] ||
	fail "racing allocations of one relay: $(cut -c1-3 "$ZG_TMP"/q3.* | sort | uniq -c)"
[[ $(PGDB=zgate4 pg_sql "SELECT count(*) FROM ipam_addresses WHERE relay_id = 'r3'") == 3 ]] || fail "r3 holds more than its quota"
m=$(curl -sS --cacert "$P/ca.crt" $F/metrics)
grep -qx 'zgate_api_over_quota_total 18' <<<"$m" || fail "quota refusals not counted: $(grep over_quota <<<"$m")"
grep -q "relay r1 holds 3 leases" "$ZG_TMP/f.log" || fail "quota refusal not logged"
# Listing, by pages.
r=$(req $F GET 'allocations?relay_id=r1&limit=2' '' "${OPS[@]}"); echo "$r"
[[ $r == 200* ]] || fail "list: $r"
page() { python3 -c 'import json,sys; d=json.loads(sys.argv[1].split(" ",1)[1]); print(" ".join(a["client_id"]+"@"+a["relay_id"] for a in d["allocations"]), d["next"])' "$1"; }
[[ $(page "$r") == "q-1@r1 q-3@r1 q-3" ]] || fail "first page: $(page "$r")"
r=$(req $F GET 'allocations?relay_id=r1&limit=2&after=q-3' '' "${OPS[@]}")
[[ $(page "$r") == "q-4@r1 q-6@r1 None" ]] || fail "second page: $(page "$r")"
r=$(req $F GET 'allocations?limit=1000' '' -H "Authorization: Bearer $TOKEN")
[[ $(page "$r" | wc -w) == 9 ]] || fail "all leases: $(page "$r")"
r=$(req $F GET 'allocations?relay_id=r1' '' "${R1[@]}"); [[ $r == 403* ]] || fail "a relay listing: $r"
r=$(req $F GET 'allocations?limit=1001' '' "${OPS[@]}"); [[ $r == 400* ]] || fail "limit 1001: $r"
r=$(req $F GET 'allocations?limit=0' '' "${OPS[@]}"); [[ $r == 400* ]] || fail "limit 0: $r"
r=$(req $F GET 'allocations?relay_id=a%20b' '' "${OPS[@]}"); [[ $r == 400* ]] || fail "bad relay_id: $r"
kill $fpid; wait $fpid || fail "replica F exited $? on SIGTERM"

step "CRL: a revoked relay certificate after SIGHUP; a bad CRL kept out; an expired CRL"
rc=0; "$API" "${common[@]}" --crl "$P/other-ca.crt" --check-config >/dev/null 2>"$ZG_TMP/err" || rc=$?
[[ $rc -eq 2 ]] || fail "a file that is no CRL: exit $rc, expected 2"
rc=0; "$API" "${common[@]}" --ca "$P/other-ca.crt" --crl "$P/ca.crl" --check-config >/dev/null 2>"$ZG_TMP/err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "not signed by the CA" "$ZG_TMP/err" || fail "a CRL of another CA: exit $rc: $(cat "$ZG_TMP/err")"
cp "$P/ca.crl" "$ZG_TMP/api.crl"
PG_=$((base + 6)) G=https://127.0.0.1:$((base + 6))
"$API" "${common[@]}" --listen 127.0.0.1:$PG_ --crl "$ZG_TMP/api.crl" >"$ZG_TMP/g.log" 2>&1 & gpid=$!
cleanup "kill $gpid 2>/dev/null; wait $gpid 2>/dev/null"
for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "$G/health" >/dev/null && break; sleep 0.1; done
hup_g() { # reloads counted in g.log before the signal; waits for the next one
	local n; n=$(grep -c "crl .* read\|keeping the CRL" "$ZG_TMP/g.log")
	kill -HUP $gpid
	for _ in $(seq 50); do [[ $(grep -c "crl .* read\|keeping the CRL" "$ZG_TMP/g.log") -gt $n ]] && return; sleep 0.1; done
	fail "SIGHUP: the CRL was not read again"
}
r=$(req $G GET allocations/nobody '' "${R3[@]}"); [[ $r == 404* ]] || fail "relay r3 before its revocation: $r"
# A keep-alive connection of r3 open across the revocation: its cached
# identity must not outlive the CRL it was checked against.
python3 "$ZG_ROOT/tests/e2e/api_conns.py" keepalive --port $PG_ --ca "$P/ca.crt" --cert "$P/r3.crt" \
	--key "$P/r3.key" --wait-file "$ZG_TMP/revoked" >"$ZG_TMP/ka.out" & kpid=$!
sleep 0.5
"$ZG_ROOT/scripts/gen-certs.sh" -d "$P" -r r3 >/dev/null
cp "$P/ca.crl" "$ZG_TMP/api.crl.new" && mv "$ZG_TMP/api.crl.new" "$ZG_TMP/api.crl"
hup_g
touch "$ZG_TMP/revoked"
wait $kpid || fail "keep-alive client failed"
[[ $(cat "$ZG_TMP/ka.out") == "404 401" ]] || fail "revocation on an open keep-alive connection: $(cat "$ZG_TMP/ka.out")"
r=$(req $G GET allocations/nobody '' "${R3[@]}"); echo "$r"
[[ $r == 401*revoked* ]] || fail "revoked relay certificate after SIGHUP: $r"
r=$(req $G POST allocations '{"client_id":"crl-1"}' "${R3[@]}"); [[ $r == 401* ]] || fail "revoked relay allocating: $r"
r=$(req $G GET allocations/nobody '' "${R1[@]}"); [[ $r == 404* ]] || fail "r1 after r3's revocation: $r"
echo "not a CRL" >"$ZG_TMP/api.crl"
hup_g
grep -q "keeping the CRL in force" "$ZG_TMP/g.log" || fail "a broken CRL file was not reported"
r=$(req $G GET allocations/nobody '' "${R3[@]}"); [[ $r == 401*revoked* ]] || fail "r3 after a broken CRL file: $r"
cp "$P/expired.crl" "$ZG_TMP/api.crl"
hup_g
grep -q "past its nextUpdate" "$ZG_TMP/g.log" || fail "the expired CRL was not logged: $(tail -8 "$ZG_TMP/g.log")"
r=$(req $G GET allocations/nobody '' "${R1[@]}"); echo "$r"
[[ $r == 401*nextUpdate* ]] || fail "a relay certificate with an expired CRL: $r"
r=$(req $G GET stats '' "${OPS[@]}"); [[ $r == 401* ]] || fail "an admin certificate with an expired CRL: $r"
r=$(req $G GET stats '' -H "Authorization: Bearer $TOKEN"); [[ $r == 200* ]] || fail "the admin token with an expired CRL: $r"
cp "$P/ca.crl" "$ZG_TMP/api.crl"
hup_g
r=$(req $G GET allocations/nobody '' "${R1[@]}"); [[ $r == 404* ]] || fail "r1 with a current CRL again: $r"

step "CRL: a changed file is read again without a signal; a broken one keeps the CRL in force"
# No SIGHUP from here: zgate-api notices the file changed by itself.
r=$(req $G GET allocations/nobody '' "${R2[@]}"); [[ $r == 404* ]] || fail "relay r2 before its revocation: $r"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$P" -r r2 >/dev/null
cp "$P/ca.crl" "$ZG_TMP/api.crl.new" && mv "$ZG_TMP/api.crl.new" "$ZG_TMP/api.crl" # a new inode
t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
while r=$(req $G GET allocations/nobody '' "${R2[@]}"); [[ $r != 401* && $(ms) -lt 5000 ]]; do sleep 0.1; done
echo "r2 refused $(ms) ms after the new CRL was renamed into place: $r"
[[ $r == 401*revoked* ]] || fail "a revoked relay certificate still served 5 s after the CRL file changed, no signal: $r"
grep -q "crl $ZG_TMP/api.crl read (changed on disk)" "$ZG_TMP/g.log" || fail "the reload on a change was not logged"
n=$(grep -c "crl $ZG_TMP/api.crl changed on disk but does not load" "$ZG_TMP/g.log" || true)
echo "not a CRL" >"$ZG_TMP/api.crl" # rewritten in place, broken
for _ in $(seq 50); do
	[[ $(grep -c "crl $ZG_TMP/api.crl changed on disk but does not load" "$ZG_TMP/g.log") -gt $n ]] && break
	sleep 0.1
done
grep "changed on disk but does not load" "$ZG_TMP/g.log" | tail -1
[[ $(grep -c "crl $ZG_TMP/api.crl changed on disk but does not load" "$ZG_TMP/g.log") -gt $n ]] ||
	fail "a broken CRL file was not reported within 5 s: $(tail -3 "$ZG_TMP/g.log")"
r=$(req $G GET allocations/nobody '' "${R2[@]}"); [[ $r == 401*revoked* ]] || fail "r2 after a broken CRL file: $r"
r=$(req $G GET allocations/nobody '' "${R1[@]}"); [[ $r == 404* ]] || fail "r1 after a broken CRL file: $r"
sleep 2.5 # reported once, not at every look while it stays broken
[[ $(grep -c "crl $ZG_TMP/api.crl changed on disk but does not load" "$ZG_TMP/g.log") -eq $((n + 1)) ]] ||
	fail "an unchanged broken CRL file reported more than once"
cp "$P/ca.crl" "$ZG_TMP/api.crl" # in place again, good
for _ in $(seq 50); do
	[[ $(grep -c "crl $ZG_TMP/api.crl read (changed on disk)" "$ZG_TMP/g.log") -ge 2 ]] && break
	sleep 0.1
done
[[ $(grep -c "crl $ZG_TMP/api.crl read (changed on disk)" "$ZG_TMP/g.log") -ge 2 ]] || fail "the repaired CRL file was not read"
r=$(req $G GET allocations/nobody '' "${R2[@]}"); [[ $r == 401*revoked* ]] || fail "r2 with the repaired CRL: $r"
kill $gpid; wait $gpid || fail "replica G exited $? on SIGTERM"

step "database down and back"
pg_kill
code=$(curl -sS --cacert "$P/ca.crt" -o /dev/null -w '%{http_code}' $A/ready)
[[ $code == 503 ]] || fail "/ready with the database down: $code"
r=$(req $A POST allocations '{"client_id":"during-outage"}' "${R1[@]}"); [[ $r == 503* ]] || fail "allocation during outage: $r"
[[ $(curl -sS --cacert "$P/ca.crt" $A/health) == ok ]] || fail "/health must not depend on the database"
pg_up
for _ in $(seq 50); do [[ $(curl -sS --cacert "$P/ca.crt" $A/ready) == ready ]] && break; sleep 0.1; done
[[ $(curl -sS --cacert "$P/ca.crt" $A/ready) == ready ]] || fail "not ready after the database came back"
r=$(req $A POST allocations '{"client_id":"after-outage"}' "${R1[@]}"); [[ $r == 201* ]] || fail "after outage: $r"
r=$(req $B POST allocations '{"client_id":"after-outage"}' "${R2[@]}"); [[ $r == 200* ]] || fail "after outage on B: $r"

step "SIGTERM"
kill $apid; wait $apid || fail "replica A exited $? on SIGTERM"
kill $bpid; wait $bpid || fail "replica B exited $? on SIGTERM"
echo "PASS"
