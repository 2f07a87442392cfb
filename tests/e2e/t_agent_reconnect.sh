#!/usr/bin/env bash
# zgate-agent keeps its TUN, address and routes while the relay is away,
# drops and counts the packets meanwhile, retries with backoff (the first
# retry within a second), asks for its previous address (C10) and carries
# traffic again once the relay is back: after a clean shutdown of the relay
# (CONNECTION_CLOSE) and after a crash (SIGKILL: found by the idle timeout,
# the keepalive holding the idle tunnel open until then).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_env.sh"

ping_ok() { in_agent ping -c 1 -W 1 198.18.0.1 >/dev/null 2>&1; }
# Why the tunnel went: the agent's log keeps every reason; the status
# file's last_error is only the latest, and a retry that fails against the
# absent relay ("cannot connect: handshake timeout") may already have
# replaced the loss itself (seen under load).
lost_because() { # WHAT PATTERN
	grep -q "state reconnecting: connection lost: .*$2" "$AGENT_LOG" ||
		fail "$1: no 'connection lost: ...$2' in the agent's log"
	[[ $(status_field last_error) =~ (connection lost|cannot connect) ]] ||
		fail "$1: last_error is $(status_field last_error)"
}
routes_now() { ip -n "$NSA" -4 route | sort; }

start_echo
start_agent --connect-timeout 2s --idle-timeout 3s --keepalive 1s --reconnect-max 2s
wait_for 10 "state connected" state_is connected
wait_for 5 "an address on zgate0" bash -c "ip -n $NSA -4 addr show zgate0 | grep -q 'inet 10.100.0.'"
wait_for 5 "routes" bash -c "ip -n $NSA route | grep -q '128.0.0.0/1 dev zgate0'"
addr=$(ip -n "$NSA" -4 -o addr show zgate0 | awk '{print $4}')
routes=$(routes_now)
wait_for 5 "ping through the tunnel" ping_ok

step "an idle tunnel outlives the idle timeout (keepalive)"
sleep 5
state_is connected || fail "the idle tunnel closed: $(status_field last_error)"
[[ $(grep -c "state connected" "$AGENT_LOG") -eq 1 ]] || fail "reconnected while idle"

step "relay shuts down: TUN, address and routes stay; packets dropped and counted"
stop_echo TERM
wait_for 5 "state reconnecting" state_is reconnecting
first=$(sed -n 's/.*state reconnecting: .*next attempt in \([0-9.]*\) s.*/\1/p' "$AGENT_LOG" | head -1)
echo "first retry after $first s"
awk -v t="$first" 'BEGIN { exit !(t > 0 && t < 1) }' || fail "first retry after $first s"
[[ $(ip -n "$NSA" -4 -o addr show zgate0 | awk '{print $4}') == "$addr" ]] || fail "address gone"
[[ $(routes_now) == "$routes" ]] || fail "routes changed during the outage: $(routes_now)"
ping_ok && fail "ping answered with the relay down"
wait_for 8 "drops counted in the status file" bash -c "grep -q '\"outage\":[1-9]' $STATUS"
lost_because "relay shutdown" "peer closed"

step "relay back: same address asked for and kept, traffic resumes"
sleep 2 # a few failing attempts first
start_echo
wait_for 20 "state connected again" state_is connected
grep -q "asking for the previous address $addr" "$AGENT_LOG" || fail "previous address not requested"
wait_for 10 "ping through the new tunnel" ping_ok
[[ $(ip -n "$NSA" -4 -o addr show zgate0 | awk '{print $4}') == "$addr" ]] || fail "address changed"
[[ $(routes_now) == "$routes" ]] || fail "routes differ after the reconnect: $(routes_now)"

step "relay crashes (SIGKILL): idle timeout, reconnect, traffic resumes"
stop_echo KILL
wait_for 10 "state reconnecting after the crash" state_is reconnecting
lost_because "relay crash" "idle"
start_echo
wait_for 20 "state connected after the crash" state_is connected
wait_for 10 "ping after the crash" ping_ok
[[ $(routes_now) == "$routes" ]] || fail "routes differ after the crash: $(routes_now)"
sleep 6 # the counters are refreshed every 5 s
[[ $(status_field connects) -eq 3 ]] || fail "connects: $(status_field connects)"

stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "exit status $AGENT_RC"
echo "PASS"
