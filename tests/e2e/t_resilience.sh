#!/usr/bin/env bash
# Resilience: two agents with their own certificates get different
# addresses and their own split routes; each keeps its address across an
# agent restart and across a relay killed with SIGKILL and restarted (the
# relay's state file), with traffic back within 5 s; a relay SIGTERM sends
# GOAWAY, the agents reconnect to the relay that comes back.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
  agent-2:
    rules:
      - { id: internal, action: allow, destinations: ["198.18.1.0/24"] }
P
mkdir -p "$D/state"; chown 65534:65534 "$D/state"
topo_relay --state-file "$D/state/ipam.state" --timeouts-drain-grace 2s
topo_agent 1 agent-1
topo_agent 2 agent-2

step "different addresses, each client's own routes"
a1=$(agent_addr 1) a2=$(agent_addr 2)
[[ -n $a1 && -n $a2 && $a1 != "$a2" ]] || fail "addresses '$a1' and '$a2'"
[[ $(ip -n "${C[1]}" route show dev zgate0 | awk '{print $1}' | tr '\n' ' ') == "198.18.0.0/24 " ]] || fail "agent-1 routes"
[[ $(ip -n "${C[2]}" route show dev zgate0 | awk '{print $1}' | tr '\n' ' ') == "198.18.1.0/24 " ]] || fail "agent-2 routes"
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-1 ping"
inc 2 ping -c 1 -W 2 198.18.1.10 >/dev/null || fail "agent-2 ping"

step "agent restart: same address"
kill -TERM "${APID[1]}"; wait "${APID[1]}" 2>/dev/null || true
topo_agent 1 agent-1
[[ $(agent_addr 1) == "$a1" ]] || fail "agent-1 got $(agent_addr 1) after a restart, had $a1"

step "relay SIGKILL and restart: agents reconnect, same addresses, traffic within 5 s"
kill -9 "$RPID"; wait "$RPID" 2>/dev/null || true
sleep 0.5
t0=$(date +%s)
topo_relay --state-file "$D/state/ipam.state" --timeouts-drain-grace 2s
ok=0
for _ in $(seq 50); do
	if inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && inc 2 ping -c 1 -W 1 198.18.1.10 >/dev/null 2>&1; then
		ok=1; break
	fi
	sleep 0.1
done
[[ $ok -eq 1 ]] || fail "traffic did not resume: $(tail -3 "$D/agent1.log")"
[[ $(( $(date +%s) - t0 )) -le 5 ]] || fail "traffic resumed after $(( $(date +%s) - t0 )) s"
[[ $(agent_addr 1) == "$a1" && $(agent_addr 2) == "$a2" ]] || fail "addresses changed across the relay restart"
[[ $(grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log") -ge 3 ]] || fail "agent-1 did not open a new session"

step "relay SIGTERM: GOAWAY reaches the agents; they reconnect to the next relay"
kill -TERM "$RPID"
for _ in $(seq 50); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RPID" 2>/dev/null && fail "relay still running after the drain grace period"
rc=0; wait "$RPID" || rc=$?
[[ $rc -eq 0 ]] || fail "relay exit status $rc"
grep -q "GOAWAY" "$D/agent1.log" || fail "agent-1 did not see GOAWAY"
topo_relay --state-file "$D/state/ipam.state" --timeouts-drain-grace 2s
ok=0
for _ in $(seq 80); do inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
[[ $ok -eq 1 ]] || fail "agent-1 did not come back after the drain"
[[ $(agent_addr 1) == "$a1" ]] || fail "agent-1 address changed after the drain"
pass
