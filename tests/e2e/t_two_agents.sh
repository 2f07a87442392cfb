#!/usr/bin/env bash
# Two agents in two client namespaces, each with its own certificate: they
# get different addresses, and each is routed exactly what its own policy
# allows (allow rules minus an earlier all-protocol deny) and reaches only
# that. The addresses are stable: an agent restarted from scratch (no
# previous address to ask for) gets its address again, and so does every
# client of a relay restarted without a state file (the address derives
# from the client ID).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
ip -n "$S" addr add 203.0.113.10/24 dev "${T}s"
ip -n "$R" route add 203.0.113.0/24 dev "${T}rs"
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
  agent-2:
    rules:
      - { id: no-upper-half, action: deny, destinations: ["198.18.1.128/25"] }
      - { id: internal, action: allow, destinations: ["198.18.1.0/24", "203.0.113.0/24"] }
P
topo_relay
topo_agent 1 agent-1
topo_agent 2 agent-2

routes_of() { ip -n "${C[$1]}" -4 route show dev zgate0 | awk '{print $1}' | sort | tr '\n' ' '; }
# the relay's DNS service (gateway 10.100.0.1) is routed for every client (issue 19)
step "different addresses; each client routed exactly its own policy"
a1=$(agent_addr 1) a2=$(agent_addr 2)
echo "agent-1 $a1, agent-2 $a2"
[[ -n $a1 && -n $a2 && $a1 != "$a2" ]] || fail "addresses '$a1' and '$a2'"
for _ in $(seq 30); do [[ $(routes_of 2) == "10.100.0.1 198.18.1.0/25 203.0.113.0/24 " ]] && break; sleep 0.1; done
[[ $(routes_of 1) == "10.100.0.1 198.18.0.0/24 " ]] || fail "agent-1 routes: $(routes_of 1)"
[[ $(routes_of 2) == "10.100.0.1 198.18.1.0/25 203.0.113.0/24 " ]] || fail "agent-2 routes: $(routes_of 2)"
expect_contains "$(cat "$D/status2.json")" '"routes":["10.100.0.1/32","198.18.1.0/25","203.0.113.0/24"]' "agent-2 status file"
grep -q '"event":"session_open","client":"agent-1","vip":"'"${a1%/*}"'"' "$D/audit.log" || fail "agent-1 session not audited"
grep -q '"event":"session_open","client":"agent-2","vip":"'"${a2%/*}"'"' "$D/audit.log" || fail "agent-2 session not audited"

step "each reaches its own ranges, not the other's"
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-1 cannot reach 198.18.0.10"
inc 2 ping -c 1 -W 2 198.18.1.10 >/dev/null || fail "agent-2 cannot reach 198.18.1.10"
inc 2 ping -c 1 -W 2 203.0.113.10 >/dev/null || fail "agent-2 cannot reach 203.0.113.10"
inc 1 ping -c 1 -W 1 198.18.1.10 >/dev/null 2>&1 && fail "agent-1 reaches 198.18.1.10"
inc 2 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && fail "agent-2 reaches 198.18.0.10"
[[ $(inc 2 ip route get 198.18.1.200) != *zgate0* ]] || fail "198.18.1.200 (denied for agent-2) routed into the tunnel"

step "an agent restarted from scratch gets its address again"
kill -TERM "${APID[1]}"; wait "${APID[1]}" 2>/dev/null || true
n=$(wc -l <"$D/agent1.log")
topo_agent 1 agent-1
tail -n +$((n + 1)) "$D/agent1.log" | grep -q "asking for any address" || fail "the new agent asked for a specific address"
[[ $(agent_addr 1) == "$a1" ]] || fail "agent-1 got $(agent_addr 1) after a restart, had $a1"
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-1 ping after its restart"

step "a relay restarted without a state file gives both the same addresses"
for i in 1 2; do kill -TERM "${APID[$i]}"; wait "${APID[$i]}" 2>/dev/null || true; done
kill -TERM "$RPID"; wait "$RPID" 2>/dev/null || true
topo_relay
topo_agent 2 agent-2 # the other order this time
topo_agent 1 agent-1
[[ $(agent_addr 1) == "$a1" && $(agent_addr 2) == "$a2" ]] ||
	fail "after a relay restart: agent-1 $(agent_addr 1) (had $a1), agent-2 $(agent_addr 2) (had $a2)"
inc 2 ping -c 1 -W 2 203.0.113.10 >/dev/null || fail "agent-2 ping after the relay restart"
pass
