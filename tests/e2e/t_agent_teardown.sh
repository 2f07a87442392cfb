#!/usr/bin/env bash
# zgate-agent removes exactly what it added on SIGTERM/SIGINT and exits 0:
# `ip route` (both families, every table), `ip addr` and `ip link` of the
# agent's namespace are the same before and after, and
#  - a route it would have installed but found in place on another
#    interface (refused: it would take that route's traffic) survives, as
#    does everything else;
#  - a persistent TUN device made beforehand is left as it was found
#    (down, its MTU), only emptied of the agent's address and routes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_env.sh"

start_echo

compare() { # BEFORE AFTER WHAT
	diff -u "$1" "$2" || fail "$3: the namespace differs after the agent left (above)"
}

step "full tunnel up, then SIGTERM: everything as before"
snapshot "$ZG_TMP/before1"
start_agent
wait_for 10 "state connected" state_is connected
wait_for 5 "routes" bash -c "ip -n $NSA route | grep -q '128.0.0.0/1 dev zgate0'"
wait_for 5 "the relay route" bash -c "ip -n $NSA route | grep -q '^$RELAY_IP via'"
in_agent ping -c 1 -W 2 198.18.0.1 >/dev/null || fail "no ping through the tunnel"
stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "SIGTERM: exit status $AGENT_RC"
snapshot "$ZG_TMP/after1"
compare "$ZG_TMP/before1" "$ZG_TMP/after1" "SIGTERM"
state_is stopped || fail "state $(status_field state)"
[[ $(status_field routes) == "[]" && $(status_field addresses) == "[]" ]] ||
	fail "status after stop: $(cat "$STATUS")"
grep -q "relay route $RELAY_IP/32 removed" "$AGENT_LOG" || fail "relay route removal not logged"

step "a route that was there before is not the agent's: kept; SIGINT"
ip -n "$NSA" route add 128.0.0.0/1 via "$NET.1" dev zgv0
snapshot "$ZG_TMP/before2"
start_agent
wait_for 10 "state connected" state_is connected
wait_for 5 "0.0.0.0/1" bash -c "ip -n $NSA route | grep -q '0.0.0.0/1 dev zgate0'"
# another interface's route as wide as the advertised one: refused (it
# would take that route's traffic), the route left as it was
wait_for 5 "the warning" grep -q "advertised the route 128.0.0.0/1: refused, reached through another interface's route" "$AGENT_LOG"
kill -INT "$AGENT_PID"
wait "$AGENT_PID" || fail "SIGINT: exit status $?"
AGENT_PID=
snapshot "$ZG_TMP/after2"
compare "$ZG_TMP/before2" "$ZG_TMP/after2" "SIGINT"
ip -n "$NSA" route show 128.0.0.0/1 | grep -q "via $NET.1" || fail "the pre-existing route is gone"
ip -n "$NSA" route del 128.0.0.0/1 via "$NET.1" dev zgv0

step "a persistent TUN made beforehand is left down with its MTU"
ip -n "$NSA" tuntap add dev zgate0 mode tun
ip -n "$NSA" link set zgate0 mtu 1300
snapshot "$ZG_TMP/before3"
start_agent
wait_for 10 "state connected" state_is connected
wait_for 5 "an address on zgate0" bash -c "ip -n $NSA -4 addr show zgate0 | grep -q 'inet 10.100.0.'"
ip -n "$NSA" link show zgate0 | grep -q "mtu 1300" && fail "MTU not set from the tunnel"
stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "exit status $AGENT_RC"
snapshot "$ZG_TMP/after3"
# A device's first "up" makes the kernel give it a queueing discipline, an
# IPv6 link-local address (kept when it goes down) and, for a TUN, the
# "random" address generation mode: the kernel's doing, not the agent's.
kernel_own() {
	grep -v "inet6 fe80::\|valid_lft forever preferred_lft forever" "$1" |
		sed 's/ qdisc [a-z_]* / qdisc - /; s/ addrgenmode [a-z_0-9]* / addrgenmode - /'
}
kernel_own "$ZG_TMP/before3" >"$ZG_TMP/b3"
kernel_own "$ZG_TMP/after3" >"$ZG_TMP/a3"
compare "$ZG_TMP/b3" "$ZG_TMP/a3" "persistent TUN"
ip -n "$NSA" link show zgate0 | grep -q "mtu 1300" || fail "MTU not restored"
echo "PASS"
