#!/usr/bin/env bash
# Agent failover across two relays (issue 20.3): zgate-agent is given
# --relay A,B. Both relays run as uid 65534 without capabilities, with the
# same policy and the same address pool, reached from the client at two
# addresses. The agent connects to A; A is SIGKILLed; the agent moves to
# B, asking for the address it holds, and traffic flows again; the seconds
# from the kill to the first answered ping are printed (goal < 5 s, with
# --idle-timeout 2s: a dead relay is noticed by the idle timeout). Then A
# comes back and B is killed: the agent is on A again. The status file and
# `zgate-agent status` name the relay in use and the list.
# All of it twice: a split tunnel (198.18.0.0/24), then a full tunnel
# (0.0.0.0/0 advertised as 0/1 + 128/1), where the next relay's address is
# covered by the tunnel's routes and must get its host route before the
# agent sends it anything. Last, one round through three entries: a relay
# that does not answer (handshake timeout) and one whose certificate lacks
# the entry's NAME@ are skipped without a backoff delay.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v curl >/dev/null || skip "curl missing"
topo_init 1
topo_pki agent-1
policy() { # DESTINATION
	cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["$1"], protocols: [icmp, tcp] }
P
}
# the relays' own addresses, on the relay namespace's loopback: the client
# reaches both through its default gateway, as relays on other networks
ip -n "$R" addr add 192.168.90.1/32 dev lo
ip -n "$R" addr add 192.168.91.1/32 dev lo
A_ADDR=192.168.90.1:4433 B_ADDR=192.168.91.1:4434
declare -A RP

# relay_start NAME LISTEN OPS_PORT — one relay process; RP[NAME] its pid.
relay_start() {
	local name=$1 listen=$2 ops=$3 k
	cat >"$D/relay-$name.yaml" <<C
listen: "$listen"
ops_listen: "127.0.0.1:$ops"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:${listen##*:}/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
C
	chmod 644 "$D/relay-$name.yaml"
	ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$RELAY" --config "$D/relay-$name.yaml" \
		>>"$D/audit-$name.log" 2>>"$D/relay-$name.log" &
	RP[$name]=$!
	cleanup "kill -9 ${RP[$name]} 2>/dev/null; wait ${RP[$name]} 2>/dev/null"
	for k in $(seq 50); do
		ip netns exec "$R" curl -sf "127.0.0.1:$ops/ready" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "relay $name not ready: $(tail -5 "$D/relay-$name.log")"
}
relay_kill() { kill -9 "${RP[$1]}"; wait "${RP[$1]}" 2>/dev/null || true; }

status_json() { cat "$D/status1.json"; }
field() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[0-9][0-9]*\|\[[^]]*\]\).*/\1/p" "$D/status1.json"; }
ping_ok() { inc 1 ping -c 1 -W 0.5 198.18.0.10 >/dev/null 2>&1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# recover NAME — kills relay NAME, prints and checks the seconds until a
# ping through the tunnel is answered again.
recover() {
	local t0 t1 secs
	t0=$(now_ms)
	relay_kill "$1"
	until ping_ok; do
		(($(now_ms) - t0 < 20000)) || fail "no traffic 20 s after relay $1 was killed"
	done
	t1=$(now_ms)
	secs=$(printf '%d.%03d' $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000)))
	echo "recovery after relay $1 was killed: $secs s"
	(((t1 - t0) < 5000)) || fail "recovery took $secs s (goal: under 5 s)"
}

# scenario split|full — the whole story with a fresh agent and relays.
scenario() {
	local mode=$1
	step "=== $mode tunnel"
	policy "$([[ $mode == full ]] && echo 0.0.0.0/0 || echo 198.18.0.0/24)"
	: >"$D/agent1.log"; rm -f "$D"/audit-?.log "$D/status1.json"
	relay_start A "$A_ADDR" 8080
	relay_start B "$B_ADDR" 8081
	# the first entry takes --server-name, the second names itself
	ip netns exec "${C[1]}" "$AGENT" --relay "$A_ADDR,relay.test@$B_ADDR" --server-name relay.test \
		--cert "$D/pki/agent-1.crt" --key "$D/pki/agent-1.key" --ca "$D/pki/ca.crt" \
		--status-file "$D/status1.json" --reconnect-min 200ms --reconnect-max 1s \
		--idle-timeout 2s --keepalive 500ms 2>>"$D/agent1.log" &
	APID[1]=$!
	cleanup "kill ${APID[1]} 2>/dev/null; wait ${APID[1]} 2>/dev/null"

	step "the agent connects to the first relay (A)"
	for _ in $(seq 100); do [[ -n $(agent_addr 1) ]] && break; sleep 0.1; done
	addr=$(agent_addr 1)
	[[ -n $addr ]] || fail "no address: $(tail -5 "$D/agent1.log")"
	echo "address from A: $addr"
	for _ in $(seq 50); do ping_ok && break; done
	ping_ok || fail "no ping through relay A"
	[[ $(field relay) == "\"$A_ADDR\"" ]] || fail "status relay: $(field relay)"
	[[ $(field relays) == "[\"$A_ADDR\",\"relay.test@$B_ADDR\"]" ]] || fail "status relays: $(field relays)"
	[[ $(field relay_index) == 0 ]] || fail "relay_index: $(field relay_index)"
	grep -q "\"event\":\"session_open\",\"client\":\"agent-1\",\"vip\":\"${addr%/*}\"" "$D/audit-A.log" ||
		fail "no session on A"

	step "A is killed: the agent is on B and traffic flows again"
	n=$(wc -l <"$D/agent1.log")
	recover A
	[[ $(field relay) == "\"relay.test@$B_ADDR\"" ]] || fail "status relay after A died: $(field relay)"
	[[ $(field relay_index) == 1 ]] || fail "relay_index: $(field relay_index)"
	[[ $(field state) == '"connected"' ]] || fail "state: $(field state)"
	new=$(tail -n +$((n + 1)) "$D/agent1.log")
	expect_contains "$new" "relay relay.test@$B_ADDR (server name relay.test, 2 of 2), asking for the previous address $addr" "agent log"
	expect_contains "$new" "state connected: relay relay.test@$B_ADDR" "agent log"
	addr_b=$(agent_addr 1)
	echo "address from B: $addr_b (asked for $addr)"
	# identical pools: B grants the address asked for (it is free there)
	[[ $addr_b == "$addr" ]] || fail "B assigned $addr_b, the agent asked for $addr"
	grep -q "\"event\":\"session_open\",\"client\":\"agent-1\",\"vip\":\"${addr%/*}\"" "$D/audit-B.log" ||
		fail "no session on B"
	if [[ $mode == full ]]; then
		routes=$(ip -n "${C[1]}" route)
		echo "$routes"
		expect_contains "$routes" "0.0.0.0/1 dev zgate0" "full tunnel routes"
		expect_contains "$routes" "${B_ADDR%:*} via 192.168.81.1" "host route to B"
		[[ $routes != *"${A_ADDR%:*} via"* ]] || fail "the host route to A stayed"
		expect_contains "$new" "the relay ${B_ADDR%:*}/32 is routed through zgate0: it is reached the way the previous relay was" "agent log"
	fi
	out=$("$AGENT" status --status-file "$D/status1.json")
	echo "$out"
	expect_contains "$out" "  relay: relay.test@$B_ADDR" "zgate-agent status"
	expect_contains "$out" "  relays: $A_ADDR, relay.test@$B_ADDR (on 2 of 2, 1 switch)" "zgate-agent status"
	json=$("$AGENT" status --json --status-file "$D/status1.json")
	expect_contains "$json" "\"relay\":\"relay.test@$B_ADDR\",\"relays\":[\"$A_ADDR\",\"relay.test@$B_ADDR\"],\"relay_index\":1" "status --json"

	step "A is back, B is killed: the agent is on A again"
	relay_start A "$A_ADDR" 8080
	sleep 1 # the tunnel on B stays: no going back while it works
	[[ $(field relay_index) == 1 ]] || fail "left B while it worked"
	recover B
	[[ $(field relay) == "\"$A_ADDR\"" ]] || fail "status relay after B died: $(field relay)"
	[[ $(field relay_index) == 0 ]] || fail "relay_index: $(field relay_index)"
	[[ $(agent_addr 1) == "$addr" ]] || fail "A assigned $(agent_addr 1) the second time"
	[[ $(field relay_switches) == 2 ]] || sleep 5 # the counters are refreshed every 5 s
	[[ $(field relay_switches) == 2 ]] || fail "relay_switches: $(field relay_switches)"

	kill -TERM "${APID[1]}"
	rc=0; wait "${APID[1]}" || rc=$?
	[[ $rc -eq 0 ]] || fail "agent exit status $rc"
	relay_kill A
}

scenario split
scenario full

# One round without waiting: a relay that does not answer (handshake
# timeout), one whose certificate does not carry the entry's name (refused:
# the name check is per relay), then one that works.
step "=== a dead relay and a wrong name are skipped within one round"
policy 198.18.0.0/24
: >"$D/agent1.log"; rm -f "$D/status1.json"
relay_start A "$A_ADDR" 8080
relay_start B "$B_ADDR" 8081
t0=$(now_ms)
ip netns exec "${C[1]}" "$AGENT" --relay "192.168.92.1:4433,wrong.test@$A_ADDR,relay.test@$B_ADDR" \
	--cert "$D/pki/agent-1.crt" --key "$D/pki/agent-1.key" --ca "$D/pki/ca.crt" \
	--status-file "$D/status1.json" --reconnect-min 2s --reconnect-max 5s \
	--connect-timeout 1s 2>>"$D/agent1.log" &
APID[1]=$!
cleanup "kill ${APID[1]} 2>/dev/null; wait ${APID[1]} 2>/dev/null"
for _ in $(seq 100); do [[ $(field state) == '"connected"' ]] && break; sleep 0.1; done
t1=$(now_ms)
[[ $(field state) == '"connected"' ]] || fail "not connected: $(tail -5 "$D/agent1.log")"
echo "connected to the third relay after $(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000))) s"
[[ $(field relay_index) == 2 ]] || fail "relay_index: $(field relay_index)"
log=$(cat "$D/agent1.log")
expect_contains "$log" "relay 192.168.92.1:4433: cannot connect: handshake timeout; next attempt in 0.000 s to relay wrong.test@$A_ADDR (2 of 3)" "agent log"
expect_contains "$log" "relay wrong.test@$A_ADDR: cannot connect: relay certificate refused" "agent log"
expect_contains "$log" "next attempt in 0.000 s to relay relay.test@$B_ADDR (3 of 3)" "agent log"
# no backoff delay (reconnect-min 2s) was waited within the round
(((t1 - t0) < 3000)) || fail "the round took $((t1 - t0)) ms"
for _ in $(seq 50); do ping_ok && break; done
ping_ok || fail "no ping through relay B"
kill -TERM "${APID[1]}"
rc=0; wait "${APID[1]}" || rc=$?
[[ $rc -eq 0 ]] || fail "agent exit status $rc"
pass
