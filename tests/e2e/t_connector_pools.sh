#!/usr/bin/env bash
# Two relays whose address pools overlap, one zgate-connector dialling
# both (issue 22, security review: sessions keyed by relay link and
# address):
#
#   c1 agent-1 ── relay A (UDP 4433) ─┐
#                                      ├── connector ns K ── on-prem ns P (10.20.0.10)
#   c2 agent-2 ── relay B (UDP 4434) ─┘
#
# Both relays use the default pool 10.100.0.0/24, and their IPAM state
# files pin agent-1 (at A) and agent-2 (at B) to the same tunnel address
# 10.100.0.50. The connector knows an agent by (relay, address): both
# agents get an inner session (none is refused 409 for the other's
# address), both reach the on-prem web server, and UDP answers sent at the
# same time each come back to the agent that asked.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
source "$(dirname "$0")/connector_env.sh"

SAME=10.100.0.50
topo_init 2
conn_init
conn_pki agent-1 agent-2
cat >"$D/policy.yaml" <<Y
version: 1
default_action: deny
connectors:
  hospital-a:
    prefixes: ["10.20.0.0/16"]
clients:
  agent-1:
    rules:
      - { id: emr, action: allow, connector: hospital-a }
  agent-2:
    rules:
      - { id: emr, action: allow, connector: hospital-a }
Y
cat >"$D/connector-policy.yaml" <<Y
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: web, action: allow, destinations: ["$ONPREM/32"], protocols: [tcp], ports: ["8000"] }
      - { id: echo, action: allow, destinations: ["$ONPREM/32"], protocols: [udp], ports: ["7007"] }
  agent-2:
    rules:
      - { id: web, action: allow, destinations: ["$ONPREM/32"], protocols: [tcp], ports: ["8000"] }
      - { id: echo, action: allow, destinations: ["$ONPREM/32"], protocols: [udp], ports: ["7007"] }
Y
conn_yaml "$RELAY_K:4433" "$RELAY_K:4434"
mkdir -m 0777 "$D/state"
printf '# zgate ipam state v1: <client-id> <address>\nagent-1 %s\n' "$SAME" >"$D/state/a"
printf '# zgate ipam state v1: <client-id> <address>\nagent-2 %s\n' "$SAME" >"$D/state/b"
chmod 666 "$D/state/a" "$D/state/b"
for x in A:4433:8080:a B:4434:8081:b; do
	IFS=: read -r name port ops st <<<"$x"
	f=$D/relay.yaml; [[ $name == B ]] && f=$D/relay-b.yaml
	cat >"$f" <<C
listen: "0.0.0.0:$port"
ops_listen: "127.0.0.1:$ops"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:$port/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
state_file: $D/state/$st
C
done
chmod 644 "$D/relay-b.yaml"

step "services on-prem ($ONPREM): web and UDP echo"
psvc_start web http "$ONPREM" 8000 "$WEB_TEXT"
psvc_start udp udp-echo "$ONPREM" 7007

step "relays A and B (one pool, 10.100.0.0/24), the connector dialling both"
topo_relay
ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$RELAY" --config "$D/relay-b.yaml" \
	>>"$D/audit-b.log" 2>>"$D/relay-b.log" &
BPID=$!
cleanup "kill -9 $BPID 2>/dev/null; wait $BPID 2>/dev/null"
wait_for 5 "relay B not ready: $(tail -5 "$D/relay-b.log" 2>/dev/null)" ip netns exec "$R" curl -sf 127.0.0.1:8081/ready
connector_start
for ops in 8080 8081; do
	wait_for 10 "the relay on ops port $ops does not count the connector up" \
		connectors_up 1 "$ops"
done

step "agent-1 through relay A, agent-2 through relay B: one tunnel address"
topo_agent 1 agent-1
topo_agent 2 agent-2 --relay 192.168.82.1:4434
A1=$(agent_addr 1) A2=$(agent_addr 2)
echo "agent-1 $A1 (relay A), agent-2 $A2 (relay B)"
[[ $A1 == "$SAME/32" && $A2 == "$SAME/32" ]] || fail "the state files did not pin both agents to $SAME: $A1, $A2"

step "both reach on-prem through the connector"
web() { inc "$1" curl -sS --max-time 5 "http://$ONPREM:8000/"; }
for i in 1 2; do
	wait_for 20 "agent-$i cannot fetch the on-prem page: $(web "$i" 2>&1); status: $(cat "$D/status$i.json" 2>/dev/null)" \
		bash -c "[[ \$($ZG_EXEC ip netns exec ${C[$i]} curl -sS --max-time 5 http://$ONPREM:8000/) == '$WEB_TEXT' ]]"
done
n=$(grep -c '"event":"session_open".*"vip":"'"$SAME"'"' "$D/connector-audit.log" || true)
echo "connector: $n inner sessions opened at $SAME; 409 refusals: $(conn_metric 'zgate_connector_inner_refused_total{status="409"}')"
for id in agent-1 agent-2; do
	grep -q '"event":"session_open","client":"'"$id"'".*"vip":"'"$SAME"'"' "$D/connector-audit.log" ||
		fail "the connector audited no inner session of $id at $SAME"
done
[[ $(conn_metric 'zgate_connector_inner_refused_total{status="409"}') == 0 ]] ||
	fail "the connector refused an inner session 409 (address held through the other relay)"

step "answers at the same time: each to the agent that asked"
for round in 1 2 3; do
	inc 1 $SVC udp-query "$ONPREM" 7007 "from-agent-1-$round" >"$D/u1" 2>&1 &
	p1=$!
	inc 2 $SVC udp-query "$ONPREM" 7007 "from-agent-2-$round" >"$D/u2" 2>&1 &
	p2=$!
	wait "$p1" || fail "agent-1's UDP query failed: $(cat "$D/u1")"
	wait "$p2" || fail "agent-2's UDP query failed: $(cat "$D/u2")"
	[[ $(cat "$D/u1") == "from-agent-1-$round" ]] || fail "agent-1 got '$(cat "$D/u1")'"
	[[ $(cat "$D/u2") == "from-agent-2-$round" ]] || fail "agent-2 got '$(cat "$D/u2")'"
done
echo "3 rounds: each agent got its own answer"
for i in 1 2; do
	[[ $(web "$i") == "$WEB_TEXT" ]] || fail "agent-$i's page, again"
done
pass
