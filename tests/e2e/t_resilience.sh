#!/usr/bin/env bash
# Resilience: a relay killed with SIGKILL and started again (with its state
# file) has both agents back, same addresses, ping and new TCP connections
# working within 5 s; a relay stopped with SIGTERM sends GOAWAY, keeps
# carrying the agents' traffic while it drains, exits 0 after the grace
# period, and the agents reconnect to the relay that comes back.
# (Addresses and routes of two agents: t_two_agents.sh.)
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
relay_up() { topo_relay --state-file "$D/state/ipam.state" --timeouts-drain-grace 2s; }
relay_up
topo_agent 1 agent-1
topo_agent 2 agent-2
svc_start echo tcp-echo 0.0.0.0 7000
a1=$(agent_addr 1) a2=$(agent_addr 2)
# both_ping — from both agents at once (their first packet to a restarted
# relay is what tells them to reconnect); both_tcp — new TCP connections.
both_ping() {
	local p1 p2 ok=0
	ip netns exec "${C[1]}" ping -c 1 -W 0.3 198.18.0.10 >/dev/null 2>&1 & p1=$!
	ip netns exec "${C[2]}" ping -c 1 -W 0.3 198.18.1.10 >/dev/null 2>&1 & p2=$!
	wait $p1 || ok=1
	wait $p2 || ok=1
	return $ok
}
both_tcp() {
	inc 1 $SVC many 198.18.0.10 7000 3 10000 >/dev/null 2>&1 &&
		inc 2 $SVC many 198.18.1.10 7000 3 10000 >/dev/null 2>&1
}
both_work() { both_ping && both_tcp; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# wait_traffic SECONDS WHAT — until both agents have ping and TCP again
# (each python3 start costs a few hundred ms here: TCP's time includes it)
wait_traffic() {
	local t0=$(date +%s%N) tp
	until both_ping; do
		(($(ms_since $t0) < $1 * 1000)) || fail "$2: no ping after $(ms_since $t0) ms"
		sleep 0.05
	done
	tp=$(ms_since $t0)
	until both_tcp; do
		(($(ms_since $t0) < $1 * 1000)) || fail "$2: no TCP after $(ms_since $t0) ms"
		sleep 0.05
	done
	echo "$2: ping back after $tp ms, TCP after $(ms_since $t0) ms"
}
both_work || fail "no traffic at the start"

step "relay SIGKILL and restart: both agents back within 5 s, same addresses"
kill -9 "$RPID"; wait "$RPID" 2>/dev/null || true
sleep 1 # the agents' packets meanwhile are lost
relay_up
wait_traffic 5 "after SIGKILL"
[[ $(agent_addr 1) == "$a1" && $(agent_addr 2) == "$a2" ]] ||
	fail "addresses changed across the restart: $a1 -> $(agent_addr 1), $a2 -> $(agent_addr 2)"
[[ $(grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log") -eq 2 ]] || fail "agent-1 sessions: expected 2"
grep -qx "agent-1 ${a1%/*}" "$D/state/ipam.state" && grep -qx "agent-2 ${a2%/*}" "$D/state/ipam.state" ||
	fail "the state file lacks the assignments: $(cat "$D/state/ipam.state")"

step "relay SIGTERM: GOAWAY, traffic flows while it drains, exit 0 after the grace period"
kill -TERM "$RPID"
t0=$(date +%s%N)
for i in 1 2; do
	for _ in $(seq 20); do grep -q "state draining" "$D/agent$i.log" && break; sleep 0.1; done
	grep -q "GOAWAY" "$D/agent$i.log" || fail "agent-$i did not see GOAWAY"
done
both_work || fail "the tunnels stopped carrying traffic while the relay drained"
rc=0; wait "$RPID" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[[ $rc -eq 0 ]] || fail "relay exit status $rc"
((ms < 4000)) || fail "relay exited $ms ms after SIGTERM (grace 2 s)"
echo "relay exited 0 after $ms ms"
grep -q '"event":"session_close","client":"agent-1".*"reason":"relay_shutdown"' "$D/audit.log" ||
	fail "session close on shutdown not audited"

step "the relay comes back: both agents reconnect, same addresses"
sleep 0.5
relay_up
wait_traffic 5 "after SIGTERM"
[[ $(agent_addr 1) == "$a1" && $(agent_addr 2) == "$a2" ]] || fail "addresses changed after the drain"
pass
