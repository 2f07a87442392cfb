#!/usr/bin/env bash
# The relay takes its policy from zgate-api (policy_api.*): PostgreSQL
# (tests/e2e/pg.sh), zgate-api and a relay (uid 65534, no capabilities,
# workers: 2, policy_api.poll 1s) in the relay namespace, agent-1 in a
# client namespace.
#   1. version A (agent-1 may reach 198.18.0.0/24) is created and activated
#      through zgate-api's admin API; the relay fetches it, writes it to its
#      cache (the policy file) with its version, audits policy_reload with
#      source api and the version; agent-1's ping and a TCP connection to
#      198.18.0.10 pass.
#   2. version B (agent-1 may reach 198.18.1.0/24 only) is activated: within
#      the poll interval plus slack the open TCP connection is reset
#      (flow_close reason policy), new flows to 198.18.0.10 are refused,
#      198.18.1.10 answers; the metrics say version B, 2 changes.
#   3. zgate-api stopped: the relay keeps B (one warning, not one per poll).
#   4. the relay restarted while zgate-api is down: it starts with B from
#      its cache; agent-1 is back with B's rights.
#   5. a second relay (one process) with no cache and zgate-api down starts
#      deny-all: agent-1 is refused (403), the version is 0; zgate-api back:
#      it fetches B and admits agent-1; the first relay logs the recovery.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
source "$(dirname "$0")/pg.sh"
command -v curl >/dev/null || skip "curl missing"
command -v openssl >/dev/null || skip "openssl missing"
API=$ZG_BIN/zgate-api
[[ -x $API ]] || fail "zgate-api must be built"
POLL=1 # s: policy_api.poll

topo_init 2
step "certificates: relay (also zgate-api's server), agent-1, relay:r1, relay:r2, admin:ops"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki" -s relay.test -s 127.0.0.1 -c agent-1 >/dev/null
P=$D/pki
mkcert() { # CN NAME
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$2.key" \
		-subj "/CN=$1" -out "$P/$2.csr" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$P/$2.ext"
	openssl x509 -req -in "$P/$2.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
		-days 2 -extfile "$P/$2.ext" -out "$P/$2.crt" 2>/dev/null
}
mkcert relay:r1 r1; mkcert relay:r2 r2; mkcert admin:ops ops
chmod -R a+rX "$P"

step "PostgreSQL and zgate-api (relay namespace, 127.0.0.1:8443, uid 65534)"
pg_start "$ZG_TMP/pg"
api_start() {
	ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$API" --listen 127.0.0.1:8443 \
		--cert "$P/relay.crt" --key "$P/relay.key" --ca "$P/ca.crt" \
		--database "$PG_CONNINFO" --pool 10.100.0.0/22 >>"$D/api.log" 2>&1 &
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
		"https://127.0.0.1:8443/api/v1/$2" >"$D/api.code" || true
	echo "$(cat "$D/api.code") $(cat "$D/api.body")"
}
# new_version FILE COMMENT: creates a version of the policy in FILE, prints its id
new_version() {
	local body r
	body=$(python3 -c 'import json,sys; print(json.dumps({"document": open(sys.argv[1]).read(), "comment": sys.argv[2]}))' "$1" "$2")
	r=$(api POST policies "$body")
	[[ $r == 201* ]] || fail "creating a policy version: $r"
	sed -n 's/^201 .*"id":\([0-9]*\).*/\1/p' <<<"$r"
}
activate() { # ID
	local r
	r=$(api POST "policies/$1/activate" '{}')
	[[ $r == 200* ]] || fail "activating policy $1: $r"
}

cat >"$D/policy-A.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [icmp, tcp] }
P
cat >"$D/policy-B.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: internal, action: allow, destinations: ["198.18.1.0/24"], protocols: [icmp, tcp] }
P
VA=$(new_version "$D/policy-A.yaml" "A: agent-1 to the SaaS range")
VB=$(new_version "$D/policy-B.yaml" "B: agent-1 to the internal range only")
[[ -n $VA && -n $VB && $VA != "$VB" ]] || fail "version ids: A '$VA', B '$VB'"
activate "$VA"
r=$(ip netns exec "$R" curl -s -D - --cacert "$P/ca.crt" --cert "$P/r1.crt" --key "$P/r1.key" https://127.0.0.1:8443/api/v1/policy)
expect_contains "$r" "saas" "GET /api/v1/policy as relay:r1"

step "the relay (workers: 2): policy_api on, its cache in a directory of its own"
mkdir -p "$D/state1" "$D/state2"
chown 65534:65534 "$D/state1" "$D/state2"
declare -A RP OPSP=([1]=8080 [2]=8082) LST=([1]=0.0.0.0:4433 [2]=0.0.0.0:4434) RW=([1]=2 [2]=1)
relay_start() { # N
	local n=$1
	cat >"$D/relay-$n.yaml" <<C
listen: "${LST[$n]}"
ops_listen: "127.0.0.1:${OPSP[$n]}"
relay_id: r$n
tls: { cert: $P/relay.crt, key: $P/relay.key, client_ca: $P/ca.crt }
uri_template: "https://relay.test:${LST[$n]##*:}/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/state$n/policy.api.yaml
workers: ${RW[$n]}
timeouts: { drain_grace: 1s } # relay_stop: the agent reconnects to the next one
policy_api:
  url: "https://127.0.0.1:8443"
  ca: $P/ca.crt
  cert: $P/r$n.crt
  key: $P/r$n.key
  poll: ${POLL}s
  timeout: 1s
C
	chmod 644 "$D/relay-$n.yaml"
	ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$RELAY" --config "$D/relay-$n.yaml" \
		>>"$D/audit-$n.log" 2>>"$D/relay-$n.log" &
	RP[$n]=$!
	cleanup "kill -9 ${RP[$n]} 2>/dev/null; wait ${RP[$n]} 2>/dev/null"
	# ready, or (a relay without a policy yet) started and waiting for one
	for _ in $(seq 50); do
		r=$(ip netns exec "$R" curl -s "127.0.0.1:${OPSP[$n]}/ready" 2>/dev/null || true) # not listening yet: 7
		[[ $r == ready* || $r == waiting* ]] && return 0
		sleep 0.1
	done
	fail "relay $n not ready: $(tail -5 "$D/relay-$n.log")"
}
relay_stop() { kill -TERM "${RP[$1]}"; wait "${RP[$1]}" 2>/dev/null || true; }
rmetric() { ip netns exec "$R" curl -sf "127.0.0.1:${OPSP[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
cleanup 'for f in "$D"/relay-?.log "$D"/api.log; do [[ -f $f ]] && { echo "--- $f"; tail -20 "$f"; }; done'
# wait_metric N NAME VALUE SECONDS
wait_metric() {
	local k
	for ((k = 0; k < $4 * 10; k++)); do
		[[ $(rmetric "$1" "$2") == "$3" ]] && return 0
		sleep 0.1
	done
	return 1
}

# --check-config: the new keys checked, nothing written, nothing asked
: >"$D/empty.yaml"; chmod 644 "$D/empty.yaml"
out=$(ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups "$RELAY" \
	--config "$D/empty.yaml" --tls-cert "$P/relay.crt" --tls-key "$P/relay.key" --tls-client-ca "$P/ca.crt" \
	--policy "$D/state1/policy.api.yaml" --policy-api-url https://127.0.0.1:8443 \
	--policy-api-ca "$P/ca.crt" --policy-api-cert "$P/r1.crt" --policy-api-key "$P/r1.key" \
	--relay-id r1 --check-config 2>&1) || fail "--check-config: $out"
expect_contains "$out" "policy_api    https://127.0.0.1:8443 every 10000ms" "--check-config"
expect_contains "$out" "deny-all until the first fetch" "--check-config with no cache"
[[ -e $D/state1/policy.api.yaml ]] && fail "--check-config wrote the cache"
out=$(ip netns exec "$R" "$RELAY" --config "$D/empty.yaml" --tls-cert "$P/relay.crt" --tls-key "$P/relay.key" \
	--tls-client-ca "$P/ca.crt" --policy "$D/state1/policy.api.yaml" --policy-api-url https://127.0.0.1:8443 \
	--policy-api-ca "$P/ca.crt" --policy-api-cert "$P/r1.crt" --policy-api-key "$P/nope.key" \
	--relay-id r1 --check-config 2>&1) && fail "--check-config took a missing key: $out"
expect_contains "$out" "policy_api.key $P/nope.key" "--check-config, missing key"

relay_start 1
for _ in $(seq 50); do grep -q "^# zgate-api policy $VA " "$D/state1/policy.api.yaml" 2>/dev/null && break; sleep 0.1; done
grep -q "^# zgate-api policy $VA " "$D/state1/policy.api.yaml" 2>/dev/null ||
	fail "the relay did not write version $VA to its cache: $(head -2 "$D/state1/policy.api.yaml" 2>&1)"
[[ $(tail -n +2 "$D/state1/policy.api.yaml") == "$(cat "$D/policy-A.yaml")" ]] || fail "the cache is not A's bytes"
grep -q "policy $VA fetched from zgate-api" "$D/relay-1.log" || fail "no 'policy $VA fetched' line"
audit_wait "$D/audit-1.log" "\"event\":\"policy_reload\",\"result\":\"ok\",.*\"source\":\"api\",\"policy_version\":$VA" 5 ||
	fail "no policy_reload audit with source api and version $VA: $(grep policy_reload "$D/audit-1.log")"
wait_metric 1 zgate_policy_api_version "$VA" 5 || fail "zgate_policy_api_version: $(rmetric 1 zgate_policy_api_version)"
r=$(ip netns exec "$R" curl -s -w ' %{http_code}' "127.0.0.1:${OPSP[1]}/ready")
[[ $r == "ready"*" 200" ]] || fail "relay 1's /ready (the master's) with A: $r"

step "1. version A: agent-1 reaches 198.18.0.10 (ping and a TCP connection)"
topo_agent 1 agent-1
svc_start echo tcp-echo 198.18.0.10 7001
svc_start echo2 tcp-echo 198.18.1.10 7002
for _ in $(seq 30); do inc 1 ping -c 1 -W 0.5 198.18.0.10 >/dev/null 2>&1 && break; done
inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null || fail "agent-1 cannot ping 198.18.0.10 under A"
ip netns exec "${C[1]}" python3 "$ZG_ROOT/tests/e2e/svc.py" recv 198.18.0.10 7001 >"$D/held.out" 2>&1 &
held=$!
cleanup "kill $held 2>/dev/null; wait $held 2>/dev/null"
for _ in $(seq 50); do [[ $(rmetric 1 'zgate_flows{proto="tcp"}') == 1 ]] && break; sleep 0.1; done
[[ $(rmetric 1 'zgate_flows{proto="tcp"}') == 1 ]] || fail "agent-1's TCP connection is not a flow"

step "2. version B activated: the open flow is closed within poll + slack, new ones refused"
t0=$(date +%s%N)
activate "$VB"
limit=$(((POLL + 3) * 20)) # 50 ms steps
for ((k = 0; k < limit; k++)); do kill -0 "$held" 2>/dev/null || break; sleep 0.05; done
kill -0 "$held" 2>/dev/null && fail "agent-1's connection to 198.18.0.10 still open $((POLL + 3)) s after B was activated"
ms=$((($(date +%s%N) - t0) / 1000000))
echo "the flow B denies ended $ms ms after the activation (poll ${POLL}s)"
expect_contains "$(cat "$D/held.out")" "reset" "agent-1's connection"
audit_wait "$D/audit-1.log" '"event":"flow_close","client":"agent-1","proto":"tcp".*"dport":7001.*"reason":"policy"' 3 ||
	fail "no flow_close reason policy: $(grep flow_close "$D/audit-1.log")"
audit_wait "$D/audit-1.log" "\"event\":\"policy_reload\",\"result\":\"ok\",.*\"source\":\"api\",\"policy_version\":$VB" 3 ||
	fail "no policy_reload audit for version $VB"
inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && fail "198.18.0.10 still reachable under B"
# B routes 198.18.0.10 no more: the SYN goes nowhere, so a connection that
# has not opened in 3 s will not (svc.py itself would wait 30 s)
out=$(inc 1 timeout 3 python3 "$ZG_ROOT/tests/e2e/svc.py" recv 198.18.0.10 7001 2>&1) && fail "a new TCP connection to 198.18.0.10 passed under B: $out"
for _ in $(seq 20); do inc 1 ping -c 1 -W 0.5 198.18.1.10 >/dev/null 2>&1 && break; done
inc 1 ping -c 1 -W 1 198.18.1.10 >/dev/null || fail "agent-1 cannot reach 198.18.1.10 under B"
wait_metric 1 zgate_policy_api_version "$VB" 3 || fail "version gauge: $(rmetric 1 zgate_policy_api_version)"
[[ $(rmetric 1 'zgate_policy_api_fetches_total{result="changed"}') == 2 ]] ||
	fail "changes counted: $(rmetric 1 'zgate_policy_api_fetches_total{result="changed"}')"
[[ $(rmetric 1 'zgate_policy_api_fetches_total{result="unchanged"}') -ge 1 ]] || fail "no 304 counted"
grep -q "^# zgate-api policy $VB " "$D/state1/policy.api.yaml" || fail "the cache is not B"
# Each of relay 1's two workers loaded B once: the master told it to
# (MASTER_OP_POLICY, which works without inotify too), and its file watch,
# finding the file already loaded, did not load it a second time.
n=$(grep -c "policy reloaded from .*: zgate-api policy $VB," "$D/relay-1.log")
[[ $n -eq 2 ]] || fail "B loaded $n times by 2 workers: $(grep "policy reloaded" "$D/relay-1.log")"
grep -q "policy reloaded from .* (zgate-api): zgate-api policy $VB," "$D/relay-1.log" ||
	fail "no worker reloaded B when the master asked: $(grep "policy reloaded" "$D/relay-1.log")"

step "3. zgate-api stopped: the relay keeps B, warns once"
api_stop
sleep $((POLL * 4))
[[ $(grep -c "cannot fetch the policy from zgate-api" "$D/relay-1.log") == 1 ]] ||
	fail "warnings for one outage: $(grep -c "cannot fetch the policy from zgate-api" "$D/relay-1.log")"
[[ $(rmetric 1 'zgate_policy_api_fetches_total{result="error"}') -ge 2 ]] || fail "errors not counted"
[[ $(rmetric 1 zgate_policy_api_version) == "$VB" ]] || fail "version changed while zgate-api is down"
grep -q "^# zgate-api policy $VB " "$D/state1/policy.api.yaml" || fail "the cache changed while zgate-api is down"
inc 1 ping -c 1 -W 1 198.18.1.10 >/dev/null || fail "agent-1 lost B's rights while zgate-api is down"
inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && fail "A's rights came back while zgate-api is down"

step "4. the relay restarted with zgate-api down: B from its cache"
relay_stop 1
relay_start 1
wait_metric 1 zgate_policy_api_version "$VB" 3 || fail "restarted relay's version: $(rmetric 1 zgate_policy_api_version)"
for _ in $(seq 100); do inc 1 ping -c 1 -W 0.5 198.18.1.10 >/dev/null 2>&1 && break; done
inc 1 ping -c 1 -W 1 198.18.1.10 >/dev/null || fail "agent-1 not back with B's rights after the restart"
inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && fail "198.18.0.10 reachable after the restart (B denies it)"

step "5. a relay with no cache and zgate-api down starts deny-all"
relay_start 2
grep -q "no policy fetched from zgate-api https://127.0.0.1:8443 yet: denying everything" "$D/relay-2.log" ||
	fail "relay 2 does not say it starts deny-all: $(tail -3 "$D/relay-2.log")"
[[ $(rmetric 2 zgate_policy_api_version) == 0 ]] || fail "relay 2's version: $(rmetric 2 zgate_policy_api_version)"
[[ -e $D/state2/policy.api.yaml ]] && fail "relay 2 wrote a cache with zgate-api down"
# started, but not ready: a load balancer must not send agents to it
r=$(ip netns exec "$R" curl -s -w ' %{http_code}' "127.0.0.1:${OPSP[2]}/ready")
[[ $r == "waiting"*"policy: waiting for the first one from zgate-api"*" 503" ]] || fail "relay 2's /ready without a policy: $r"
ip netns exec "${C[2]}" "$AGENT" --relay "192.168.82.1:4434" --server-name relay.test \
	--cert "$P/agent-1.crt" --key "$P/agent-1.key" --ca "$P/ca.crt" --dns off \
	--status-file "$D/status2.json" --reconnect-min 200ms --reconnect-max 1s 2>>"$D/agent2.log" &
APID[2]=$!
cleanup "kill ${APID[2]} 2>/dev/null; wait ${APID[2]} 2>/dev/null"
for _ in $(seq 50); do [[ $(rmetric 2 'zgate_tunnel_refused_total{status="403"}') -ge 1 ]] && break; sleep 0.1; done
[[ $(rmetric 2 'zgate_tunnel_refused_total{status="403"}') -ge 1 ]] || fail "relay 2 did not refuse agent-1 (deny-all)"
[[ -z $(agent_addr 2) ]] || fail "agent-1 got a tunnel from a deny-all relay"

step "zgate-api back: relay 2 fetches B and admits agent-1; relay 1 logs the recovery"
api_start
for _ in $(seq 100); do [[ -n $(agent_addr 2) ]] && break; sleep 0.1; done
[[ -n $(agent_addr 2) ]] || fail "agent-1 not admitted by relay 2 after zgate-api came back: $(tail -3 "$D/relay-2.log")"
[[ $(rmetric 2 zgate_policy_api_version) == "$VB" ]] || fail "relay 2's version: $(rmetric 2 zgate_policy_api_version)"
grep -q "^# zgate-api policy $VB " "$D/state2/policy.api.yaml" || fail "relay 2's cache is not B"
r=$(ip netns exec "$R" curl -s -w ' %{http_code}' "127.0.0.1:${OPSP[2]}/ready")
[[ $r == "ready"*" 200" ]] || fail "relay 2's /ready with B: $r"
for _ in $(seq 50); do grep -q "zgate-api https://127.0.0.1:8443 answers again" "$D/relay-1.log" && break; sleep 0.1; done
grep -q "zgate-api https://127.0.0.1:8443 answers again" "$D/relay-1.log" || fail "relay 1 did not log the recovery"

step "6. a cache cut short on disk: relay 2 starts deny-all and fetches B whole"
relay_stop 2
head -c 120 "$D/state2/policy.api.yaml" >"$D/cut" && cat "$D/cut" >"$D/state2/policy.api.yaml"
echo "  a: {rules: [" >>"$D/state2/policy.api.yaml"
: >"$D/relay-2.log"
relay_start 2
grep -q "policy $D/state2/policy.api.yaml does not load (.*): denying everything until zgate-api" "$D/relay-2.log" ||
	fail "relay 2 did not say its cache does not load: $(head -5 "$D/relay-2.log")"
# the cache names B, but it is asked for whole (a 304 would leave it deny-all)
for _ in $(seq 100); do grep -q "policy $VB fetched from zgate-api" "$D/relay-2.log" && break; sleep 0.1; done
grep -q "policy $VB fetched from zgate-api" "$D/relay-2.log" || fail "relay 2 did not fetch B again: $(tail -5 "$D/relay-2.log")"
[[ $(tail -n +2 "$D/state2/policy.api.yaml") == "$(cat "$D/policy-B.yaml")" ]] || fail "relay 2's cache is not B's bytes"
wait_metric 2 zgate_policy_api_version "$VB" 5 || fail "relay 2's version: $(rmetric 2 zgate_policy_api_version)"
r=$(ip netns exec "$R" curl -s -w ' %{http_code}' "127.0.0.1:${OPSP[2]}/ready")
[[ $r == "ready"*" 200" ]] || fail "relay 2's /ready once B came: $r"
pass
