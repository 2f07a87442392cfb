#!/usr/bin/env bash
# Several relays, one address pool (issue 20): PostgreSQL (tests/e2e/pg.sh),
# zgate-api and two relays A and B (uid 65534, no capabilities) with
# `ipam.backend: api`, in the relay namespace; clients reach A and B at two
# addresses.
#   1. agent-1's lease is made first at an address no local pool would pick
#      (10.100.1.77, through zgate-api's admin role); the agent (--relay A,B)
#      gets it from A; A is SIGKILLed; the agent is on B, which never saw
#      it, with the same address, and traffic flows again: the seconds from
#      the kill to the first answered ping are printed (goal < 5 s); B
#      marks the lease used every ipam.api.refresh.
#   2. 200 clients at once, half through A and half through B: 200
#      distinct addresses; the same 200 again through the other relay: each
#      client keeps its address.
#   3. zgate-api stopped: agent-1's tunnel carries on; a client B knows is
#      admitted with its cached address; a new client gets 503 whose
#      Proxy-Status names the cause; /ready stays 200 and says so; the
#      metrics count it. zgate-api back: the new client is admitted.
#      A, restarted meanwhile with no client, says in /ready that zgate-api
#      is down and, once it is back, that it is up again (the relay probes
#      a zgate-api it has not found up: GET /ready every 5 s).
#   4. PostgreSQL restarted: the tunnel carries on, new clients are
#      admitted once it is back.
#   5. zgate-api restarted with a smaller pool (10.100.0.0/24) that
#      leaves agent-1's lease (10.100.1.77) out: its relay's next refresh
#      is refused (409), the relay allocates again, gets another address,
#      closes the tunnel (audit reason "lease") and says why; the agent
#      reconnects with the new address of the pool and traffic flows.
#   6. relay C (one worker, ipam.api.refresh 20s) holds two tunnels opened
#      10 s apart whose leases a smaller pool leaves out: the first one's
#      refresh (409) makes C refresh the other's at once, so both close
#      within moments, not 10 s apart.
# Each relay runs workers: 2 (ZG_E2E_WORKERS=N for another count): every
# worker asks zgate-api for its own clients; the 200 clients land on both.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
source "$(dirname "$0")/pg.sh"
command -v curl >/dev/null || skip "curl missing"
command -v openssl >/dev/null || skip "openssl missing"
API=$ZG_BIN/zgate-api PROBE=$ZG_BIN/zgate-probe
[[ -x $API && -x $PROBE ]] || fail "zgate-api and zgate-probe must be built"
NCL=200

topo_init 1
step "certificates: relay (also zgate-api's server), agent-1, $NCL clients, relay:rA/rB, admin"
ids=(agent-1 newbie newbie2)
for i in $(seq $NCL); do ids+=("cl-$i"); done
args=()
for id in "${ids[@]}"; do args+=(-c "$id"); done
"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki" -s relay.test -s 127.0.0.1 "${args[@]}" >/dev/null
P=$D/pki
mkcert() { # CN NAME
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$2.key" \
		-subj "/CN=$1" -out "$P/$2.csr" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$P/$2.ext"
	openssl x509 -req -in "$P/$2.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
		-days 2 -extfile "$P/$2.ext" -out "$P/$2.crt" 2>/dev/null
}
mkcert relay:rA rA; mkcert relay:rB rB; mkcert relay:rC rC; mkcert admin:ops ops
chmod -R a+rX "$P"

{
	printf 'version: 1\ndefault_action: deny\nclients:\n'
	for id in "${ids[@]}"; do
		printf '  %s:\n    rules:\n      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [icmp, tcp] }\n' "$id"
	done
} >"$D/policy.yaml"

step "PostgreSQL and zgate-api (relay namespace, 127.0.0.1:8443, uid 65534)"
pg_start "$ZG_TMP/pg"
POOL=10.100.0.0/22
api_start() {
	ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$API" --listen 127.0.0.1:8443 \
		--cert "$P/relay.crt" --key "$P/relay.key" --ca "$P/ca.crt" \
		--database "$PG_CONNINFO" --pool "${API_POOL:-$POOL}" >>"$D/api.log" 2>&1 &
	APIPID=$!
	cleanup "kill $APIPID 2>/dev/null; wait $APIPID 2>/dev/null"
	for _ in $(seq 100); do
		[[ $(ip netns exec "$R" curl -s --cacert "$P/ca.crt" https://127.0.0.1:8443/ready 2>/dev/null) == ready ]] && return 0
		sleep 0.1
	done
	fail "zgate-api not ready: $(tail -5 "$D/api.log")"
}
api_stop() { kill -TERM "$APIPID"; wait "$APIPID" 2>/dev/null || true; }
api_start
# api METHOD PATH [BODY]: as admin, prints "CODE BODY"
api() {
	ip netns exec "$R" curl -sS --cacert "$P/ca.crt" --cert "$P/ops.crt" --key "$P/ops.key" \
		-X "$1" ${3:+-d "$3" -H "Content-Type: application/json"} -o "$D/api.body" -w '%{http_code}' \
		"https://127.0.0.1:8443/api/v1/ipam/$2" >"$D/api.code" || true
	echo "$(cat "$D/api.code") $(cat "$D/api.body")"
}

step "relays A and B: ipam.backend api"
ip -n "$R" addr add 192.168.90.1/32 dev lo
ip -n "$R" addr add 192.168.91.1/32 dev lo
ip -n "$R" addr add 192.168.92.1/32 dev lo
A_ADDR=192.168.90.1:4433 B_ADDR=192.168.91.1:4434
# RW, RF: a relay's workers and ipam.api.refresh when not the defaults
declare -A RP OPSP=([A]=8080 [B]=8081 [C]=8082) LST=([A]=$A_ADDR [B]=$B_ADDR [C]=192.168.92.1:4435) RW RF
relay_start() { # NAME
	local n=$1
	cat >"$D/relay-$n.yaml" <<C
listen: "${LST[$n]}"
ops_listen: "127.0.0.1:${OPSP[$n]}"
relay_id: r$n
tls: { cert: $P/relay.crt, key: $P/relay.key, client_ca: $P/ca.crt }
uri_template: "https://relay.test:${LST[$n]##*:}/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
pool: { ipv4: $POOL }
limits: { handshakes_per_source: 400 }
workers: ${RW[$n]:-${ZG_E2E_WORKERS:-2}}
ipam:
  backend: api
  api: { url: "https://127.0.0.1:8443", ca: $P/ca.crt, cert: $P/r$n.crt, key: $P/r$n.key, timeout: 1500ms, refresh: ${RF[$n]:-2s} }
C
	chmod 644 "$D/relay-$n.yaml"
	ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$RELAY" --config "$D/relay-$n.yaml" \
		>>"$D/audit-$n.log" 2>>"$D/relay-$n.log" &
	RP[$n]=$!
	cleanup "kill -9 ${RP[$n]} 2>/dev/null; wait ${RP[$n]} 2>/dev/null"
	for _ in $(seq 50); do
		ip netns exec "$R" curl -sf "127.0.0.1:${OPSP[$n]}/ready" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "relay $n not ready: $(tail -5 "$D/relay-$n.log")"
}
relay_kill() { kill -9 "${RP[$1]}"; wait "${RP[$1]}" 2>/dev/null || true; }
rmetric() { ip netns exec "$R" curl -sf "127.0.0.1:${OPSP[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
cleanup 'for f in "$D"/relay-?.log "$D"/api.log; do [[ -f $f ]] && { echo "--- $f"; tail -20 "$f"; }; done'
relay_start A
relay_start B
out=$(ip netns exec "$R" curl -sf 127.0.0.1:8080/ready)
expect_contains "$out" "ready" "/ready of A"
grep -q "addresses from zgate-api https://127.0.0.1:8443 as relay rA" "$D/relay-A.log" ||
	fail "relay A does not say where its addresses come from"

# probe ID RELAY — one tunnel, prints the assigned IPv4 address or the error
probe() {
	ip netns exec "${C[1]}" "$PROBE" --relay "${LST[$2]}" --server-name relay.test \
		--cert "$P/$1.crt" --key "$P/$1.key" --ca "$P/ca.crt" --timeout 10s --quiet 2>&1
}
# probe_until_admitted ID RELAY WHEN — retries for 15 s; $out is the last output
probe_until_admitted() {
	for _ in $(seq 30); do
		out=$(probe "$1" "$2") && return 0
		sleep 0.5
	done
	fail "$1 is still refused $3: $out"
}
addr_of() { sed -n 's|^address \([0-9.]*\)/32$|\1|p' <<<"$1" | head -1; }

step "1. agent-1's lease exists at 10.100.1.77; the agent gets it from A"
r=$(api POST allocations '{"client_id":"agent-1","requested_address":"10.100.1.77"}')
[[ $r == 201* && $r == *'"address":"10.100.1.77"'* ]] || fail "admin allocation: $r"
ping_ok() { inc 1 ping -c 1 -W 0.5 198.18.0.10 >/dev/null 2>&1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
ip netns exec "${C[1]}" "$AGENT" --relay "relay.test@$A_ADDR,relay.test@$B_ADDR" \
	--cert "$P/agent-1.crt" --key "$P/agent-1.key" --ca "$P/ca.crt" --dns off \
	--status-file "$D/status1.json" --reconnect-min 200ms --reconnect-max 1s \
	--idle-timeout 2s --keepalive 500ms 2>>"$D/agent1.log" &
APID[1]=$!
cleanup "kill ${APID[1]} 2>/dev/null; wait ${APID[1]} 2>/dev/null"
for _ in $(seq 100); do [[ -n $(agent_addr 1) ]] && break; sleep 0.1; done
[[ $(agent_addr 1) == 10.100.1.77/32 ]] || fail "agent-1 on A got '$(agent_addr 1)', the lease is 10.100.1.77: $(tail -3 "$D/agent1.log")"
for _ in $(seq 50); do ping_ok && break; done
ping_ok || fail "no ping through relay A"
r=$(api GET allocations/agent-1)
[[ $r == 200* && $r == *'"relay_id":"rA"'* ]] || fail "the lease does not name relay rA: $r"
[[ $(rmetric A 'zgate_ipam_api_admissions_total{source="api"}') -ge 1 ]] || fail "A's admissions from the API not counted"

step "A is SIGKILLed: the agent is on B with the same address"
t0=$(now_ms)
relay_kill A
until ping_ok; do
	(($(now_ms) - t0 < 20000)) || fail "no traffic 20 s after relay A was killed"
done
t1=$(now_ms)
secs=$(printf '%d.%03d' $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000)))
echo "recovery after relay A was killed: $secs s (same address through relay B)"
(((t1 - t0) < 5000)) || fail "recovery took $secs s (goal: under 5 s)"
[[ $(agent_addr 1) == 10.100.1.77/32 ]] || fail "agent-1 on B got $(agent_addr 1)"
grep -q '"event":"session_open","client":"agent-1","vip":"10.100.1.77"' "$D/audit-B.log" ||
	fail "no session of agent-1 at 10.100.1.77 on B"
r=$(api GET allocations/agent-1)
[[ $r == *'"relay_id":"rB"'* ]] || fail "the lease did not move to rB: $r"
# open tunnels' leases are marked used every ipam.api.refresh (2 s here)
pg_sql "UPDATE ipam_addresses SET last_seen = now() - interval '1 day' WHERE client_id = 'agent-1'"
for _ in $(seq 50); do
	[[ $(pg_sql "SELECT last_seen > now() - interval '1 minute' FROM ipam_addresses WHERE client_id = 'agent-1'") == t ]] && break
	sleep 0.1
done
[[ $(pg_sql "SELECT last_seen > now() - interval '1 minute' FROM ipam_addresses WHERE client_id = 'agent-1'") == t ]] ||
	fail "B did not refresh agent-1's lease within 5 s (ipam.api.refresh 2s)"
[[ $(rmetric B zgate_ipam_api_refreshes_total) -ge 1 ]] || fail "refreshes not counted"
relay_start A

step "2. $NCL clients at once, half through A, half through B"
round() { # TAG FIRST-RELAY SECOND-RELAY
	local i pids=() rel
	for i in $(seq $NCL); do
		rel=$2; ((i % 2)) || rel=$3
		probe "cl-$i" "$rel" >"$D/$1-$i.out" &
		pids+=($!)
	done
	cleanup "kill ${pids[*]} 2>/dev/null; true"
	for i in "${pids[@]}"; do wait "$i" || true; done
}
t0=$(now_ms)
round r1 A B
echo "$NCL tunnels through two relays in $(($(now_ms) - t0)) ms"
declare -A addr
for i in $(seq $NCL); do
	a=$(addr_of "$(cat "$D/r1-$i.out")")
	[[ -n $a ]] || fail "cl-$i got no address: $(tail -2 "$D/r1-$i.out")"
	addr[$i]=$a
done
distinct=$(printf '%s\n' "${addr[@]}" | sort -u | wc -l)
echo "$NCL clients, $distinct distinct addresses"
[[ $distinct -eq $NCL ]] || fail "$NCL clients got $distinct distinct addresses"
[[ " ${addr[*]} " != *" 10.100.1.77 "* ]] || fail "agent-1's address was handed out again"
round r2 B A
for i in $(seq $NCL); do
	a=$(addr_of "$(cat "$D/r2-$i.out")")
	[[ $a == "${addr[$i]}" ]] || fail "cl-$i got $a through the other relay, ${addr[$i]} before"
done
echo "the same $NCL clients through the other relay: each kept its address"
if [[ ${ZG_E2E_WORKERS:-2} -ge 2 ]]; then
	for n in A B; do
		w0=$(grep -c "worker 0: tunnel open" "$D/relay-$n.log" || true)
		w1=$(grep -c "worker 1: tunnel open" "$D/relay-$n.log" || true)
		echo "relay $n: tunnels opened by worker 0: $w0, worker 1: $w1"
		[[ $w0 -ge 1 && $w1 -ge 1 ]] || fail "relay $n's tunnels did not land on both workers"
	done
fi
r=$(api GET stats)
echo "stats: $r"

step "3. zgate-api stopped: tunnels carry on; known clients cached, new ones 503"
api_stop
ping_ok || fail "agent-1's tunnel stopped when zgate-api did"
out=$(probe newbie B) && fail "a new client was admitted without zgate-api: $out"
echo "$out" | tail -1
expect_contains "$out" "HTTP 503 (Proxy-Status: zgate-relay; error=proxy_internal_error; details=\"ipam api:" "new client's refusal"
out=$(probe cl-2 B) || fail "a client B knows was refused while zgate-api is down: $out"
[[ $(addr_of "$out") == "${addr[2]}" ]] || fail "cl-2 got $(addr_of "$out") from B's cache, ${addr[2]} before"
# /ready tells the state of B's own prober, which finds the outage within
# its probe interval (5 s), maybe after the refusal above (a worker's request)
for _ in $(seq 80); do
	ready=$(ip netns exec "$R" curl -s -w ' %{http_code}' 127.0.0.1:8081/ready)
	[[ $ready == *"ipam_api: down for"* ]] && break
	sleep 0.1
done
echo "B /ready: $ready"
expect_contains "$ready" "ready" "B's /ready while zgate-api is down"
expect_contains "$ready" "ipam_api: down for" "B's /ready note"
expect_contains "$ready" " 200" "B's /ready status"
[[ $(rmetric B 'zgate_ipam_api_admissions_total{source="refused"}') -ge 1 ]] || fail "refusal not counted"
[[ $(rmetric B 'zgate_ipam_api_admissions_total{source="cached"}') -ge 1 ]] || fail "cached admission not counted"
[[ $(rmetric B zgate_ipam_api_up) == 0 ]] || fail "zgate_ipam_api_up is not 0"
grep -q "zgate-api https://127.0.0.1:8443 unreachable" "$D/relay-B.log" || fail "B did not log the outage"

step "A restarted while zgate-api is down: with no client asking, it finds out and says so"
relay_kill A
relay_start A
for _ in $(seq 60); do
	ready=$(ip netns exec "$R" curl -s 127.0.0.1:8080/ready)
	[[ $ready == *"ipam_api: down for"* ]] && break
	sleep 0.1
done
echo "A /ready: $(tr '\n' ' ' <<<"$ready")"
expect_contains "$ready" "ipam_api: down for" "restarted A's /ready note with zgate-api down"
[[ $(rmetric A zgate_ipam_api_up) == 0 ]] || fail "A's zgate_ipam_api_up is not 0"

step "zgate-api back: A finds out by itself, and the new client is admitted"
# A's own probe is what finds out: no client asks A in this step. Each of
# its workers logs "answers again" when it learns it (counting zgate-api's
# GET /ready instead would race: A may probe before the test reads it).
again() { grep -c "zgate-api https://127.0.0.1:8443 answers again" "$D/relay-A.log" || true; }
n0=$(again)
api_start
t0=$(date +%s%N)
for _ in $(seq 100); do
	ready=$(ip netns exec "$R" curl -s 127.0.0.1:8080/ready)
	[[ $ready == *"ipam_api: up"* && $ready != *down* ]] && break
	sleep 0.1
done
echo "A /ready $(( ($(date +%s%N) - t0) / 1000000 )) ms after zgate-api was back: $(tr '\n' ' ' <<<"$ready")"
expect_contains "$ready" "ipam_api: up" "A's /ready note with zgate-api back"
[[ $ready != *down* ]] || fail "A's /ready still says down: $ready"
[[ $(rmetric A zgate_ipam_api_up) == 1 ]] || fail "A's zgate_ipam_api_up is not 1 with zgate-api back"
n1=$(again)
echo "A's workers that logged zgate-api answering again: $n0 before, $n1 after"
[[ $n1 -gt $n0 ]] || fail "A did not find out by itself that zgate-api is back ($n0 -> $n1)"
probe_until_admitted newbie B "with zgate-api back"
echo "newbie: $(addr_of "$out")"
ping_ok || fail "agent-1's tunnel broke"

step "4. PostgreSQL restarted: tunnels carry on; new clients once it is back"
pg_kill
ping_ok || fail "agent-1's tunnel stopped with PostgreSQL"
out=$(probe newbie2 A) && fail "admitted without a database: $out"
pg_up
probe_until_admitted newbie2 A "with PostgreSQL back"
echo "newbie2: $(addr_of "$out")"
ping_ok || fail "agent-1's tunnel broke"
[[ $(agent_addr 1) == 10.100.1.77/32 ]] || fail "agent-1's address changed"
grep -q '"event":"session_close","client":"agent-1"' "$D/audit-B.log" &&
	fail "agent-1's tunnel on B closed during the outages"

step "5. zgate-api's pool made smaller: agent-1's lease is outside it; the relay allocates again"
api_stop
API_POOL=10.100.0.0/24 api_start # .2 to .254: 10.100.1.77 is out, still in the relays' pool.ipv4
# (t_api.sh checks GET's in_pool: here the relay may have moved the lease already)
t0=$(now_ms)
while [[ $(agent_addr 1) == 10.100.1.77/32 || -z $(agent_addr 1) ]] && (($(now_ms) - t0 < 20000)); do sleep 0.1; done
new=$(agent_addr 1)
echo "agent-1 at $new $(($(now_ms) - t0)) ms after zgate-api came back with the smaller pool"
[[ $new =~ ^10\.100\.0\.([0-9]+)/32$ ]] || fail "agent-1 kept 10.100.1.77 (or got '$new') after its lease fell outside zgate-api's pool"
r=$(api GET allocations/agent-1)
[[ $r == 200* && $r == *"\"address\":\"${new%/32}\""* && $r == *'"in_pool":true'* ]] ||
	fail "the agent's address $new is not its lease in zgate-api: $r"
[[ $(pg_sql "SELECT client_id IS NULL FROM ipam_addresses WHERE address = '10.100.1.77'") == t ]] ||
	fail "10.100.1.77 is still held"
grep -h "agent-1 at 10.100.1.77: zgate-api refused to refresh its lease (409 the lease's address 10.100.1.77 lies outside the pool 10.100.0.0/24" \
	"$D"/relay-?.log | head -1 | grep . || fail "no relay said that the refresh was refused, and why"
grep -h "agent-1 from .*: its address 10.100.1.77 is no longer its lease (zgate-api gave ${new%/32}" \
	"$D"/relay-?.log | head -1 | grep . || fail "no relay said why it closed agent-1's tunnel"
grep -qh '"event":"session_close","client":"agent-1","vip":"10.100.1.77",.*"reason":"lease"' "$D"/audit-?.log ||
	fail "the close of agent-1's tunnel is not audited with reason lease"
# Counted too, once (agent-1's is the only tunnel closed so), on one relay.
ca=$(rmetric A 'zgate_ipam_api_reallocations_total{result="closed"}')
cb=$(rmetric B 'zgate_ipam_api_reallocations_total{result="closed"}')
closed=$((${ca:-0} + ${cb:-0}))
[[ $closed == 1 ]] || fail "tunnels closed for their lease counted $closed times, not once"
for _ in $(seq 50); do ping_ok && break; done
ping_ok || fail "no traffic with the new address"

step "6. one refresh refused with 409 makes the relay refresh its other tunnels' leases at once"
# Relay C: one worker, ipam.api.refresh 20s. cl-1 and cl-2 hold tunnels
# opened 10 s apart, with leases in 10.100.0.128/25; zgate-api restarted
# with 10.100.0.0/25 leaves both out. cl-1's refresh (409) closes it; cl-2,
# rechecked at once, closes right after, not at its own refresh 10 s later.
pg_sql "UPDATE ipam_addresses SET client_id = NULL, relay_id = NULL, created_at = NULL, last_seen = NULL
	WHERE client_id IN ('cl-1', 'cl-2')" >/dev/null
read -r a1 a2 <<<"$(pg_sql "SELECT host(address) FROM ipam_addresses WHERE client_id IS NULL
	AND address BETWEEN '10.100.0.128' AND '10.100.0.254' ORDER BY address LIMIT 2" | tr '\n' ' ')"
for c in 1 2; do
	a=$a1; ((c == 1)) || a=$a2
	r=$(api POST allocations "{\"client_id\":\"cl-$c\",\"requested_address\":\"$a\"}")
	[[ $r == 201* && $r == *"\"address\":\"$a\""* ]] || fail "cl-$c's lease at $a: $r"
done
RW[C]=1; RF[C]=20s
relay_start C
hold() { # ID: a tunnel through C held open by pings (about 60 s)
	ip netns exec "${C[1]}" "$PROBE" --relay "${LST[C]}" --server-name relay.test \
		--cert "$P/$1.crt" --key "$P/$1.key" --ca "$P/ca.crt" --target 198.18.0.10 \
		--count 60 --interval 1s --min-replies 1 --quiet >"$D/hold-$1.out" 2>&1 &
	HP+=($!)
	cleanup "kill $! 2>/dev/null; wait $! 2>/dev/null"
	for _ in $(seq 100); do
		grep -q "\"event\":\"session_open\",\"client\":\"$1\"" "$D/audit-C.log" && return 0
		sleep 0.1
	done
	fail "no tunnel of $1 through relay C: $(cat "$D/hold-$1.out")"
}
HP=()
hold cl-1
t1=$(now_ms)
sleep 10
hold cl-2
api_stop
API_POOL=10.100.0.0/25 api_start # .2 to .126: both leases are out
closed_at() { grep -q "\"event\":\"session_close\",\"client\":\"$1\",.*\"reason\":\"lease\"" "$D/audit-C.log"; }
c1= c2=
while [[ -z $c1 || -z $c2 ]] && (($(now_ms) - t1 < 45000)); do
	[[ -z $c1 ]] && closed_at cl-1 && c1=$(now_ms)
	[[ -z $c2 ]] && closed_at cl-2 && c2=$(now_ms)
	sleep 0.1
done
[[ -n $c1 && -n $c2 ]] || fail "cl-1 closed at '${c1:-never}', cl-2 at '${c2:-never}' (ms): $(tail -5 "$D/relay-C.log")"
echo "cl-1's tunnel closed $((c1 - t1)) ms after it opened (its refresh: 20 s), cl-2's $((c2 - c1)) ms after cl-1's (its own refresh: about 10 s later)"
(((c2 - c1) < 4000)) || fail "cl-2 waited for its own refresh: closed $((c2 - c1)) ms after cl-1"
grep -q "zgate-api's pool changed (a refresh refused with 409): the leases of the 1 other open tunnels are refreshed now" \
	"$D/relay-C.log" || fail "relay C did not say why it refreshed the other tunnels"
[[ $(rmetric C 'zgate_ipam_api_reallocations_total{result="closed"}') == 2 ]] || fail "C's closes for a lease not counted twice"
for p in "${HP[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done # closed: exit 1

kill -TERM "${APID[1]}"
wait "${APID[1]}" || fail "agent exit status $?"
pass
