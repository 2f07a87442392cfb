#!/usr/bin/env bash
# Issue 16 item 5: a malicious relay cannot take over the agent's routing.
# zgate-probe --echo-server (uid 65534) with its test options --assign and
# --advertise plays a relay that assigns 128.0.0.0/1, 8.8.8.8, loopback,
# link-local, its own address, an address of the agent's LAN, the agent's
# own address and one legitimate 10.100.0.9/32, and advertises loopback,
# link-local, multicast, a host route to itself, half of the agent's LAN
# (more specific than the LAN's own route: it would take the LAN's traffic),
# an IPv6 range (the agent runs without --ipv6) and two
# ordinary ranges.
# The agent installs the legitimate address as a /32 with noprefixroute
# (no 128.0.0.0/1 prefix route, 8.8.8.8 stays remote), refuses the rest
# with a log line naming the relay and the address, lists them in the
# status file, keeps the tunnel (ping through it works), and with
# --accept-routes installs only the routes inside the accepted prefixes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_env.sh"

# The agent's LAN: a link with a non-default route, as a laptop's Wi-Fi
# would have (a veth pair inside the agent's namespace; no traffic is sent).
ip -n "$NSA" link add zglan0 type veth peer name zglan1
ip -n "$NSA" addr add 172.31.9.1/24 dev zglan0
ip -n "$NSA" link set zglan0 up
ip -n "$NSA" link set zglan1 up

EVIL=(--assign 128.0.0.0/1 --assign 8.8.8.8/32 --assign 127.0.0.1 --assign 169.254.1.1
	--assign "$RELAY_IP" --assign 172.31.9.7 --assign "$NET.2" --assign 10.100.0.9/32
	--advertise 127.0.0.0/8 --advertise "$RELAY_IP/32" --advertise 224.0.0.0/4
	--advertise 169.254.0.0/16 --advertise 198.18.0.0/24 --advertise 203.0.113.0/24
	--advertise 172.31.9.128/25 --advertise fd00:9::/64)
start_evil() {
	ip netns exec "$NSR" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all \
		"$PROBE" --echo-server --listen "$RELAY" --cert "$PKI/relay.crt" \
		--key "$PKI/relay.key" --client-ca "$PKI/ca.crt" "${EVIL[@]}" >>"$ECHO_LOG" 2>&1 &
	ECHO_PID=$!
	wait_for 5 "the echo server" grep -q "echo server on UDP port $RELAY_PORT" "$ECHO_LOG"
}
"$PROBE" --help | grep -q -- "--assign PREFIX .*test option" || fail "--assign not documented in --help"
start_evil

tunroutes() { ip -n "$NSA" -4 route show dev zgate0 2>/dev/null | awk '{print $1}' | sort | tr '\n' ' '; }
refused_has() { grep -q "{\"$1\":\"$2\",\"reason\":\"$3\"}" "$STATUS"; }

step "the agent connects; only the legitimate address is installed, as a /32 without prefix route"
start_agent
wait_for 10 "state connected" state_is connected
wait_for 5 "the advertised routes" bash -c "ip -n $NSA route show dev zgate0 | grep -q 198.18.0.0/24"
wait_for 5 "the refusals in the status file" grep -q '"reason":"not_tunneled"' "$STATUS"
ip -n "$NSA" addr show dev zgate0
addrs=$(ip -n "$NSA" -o -4 addr show dev zgate0 | awk '{print $4}' | tr '\n' ' ')
[[ $addrs == "10.100.0.9/32 " ]] || fail "addresses on zgate0: '$addrs', expected only 10.100.0.9/32"
ip -n "$NSA" -o -4 addr show dev zgate0 | grep -q "inet 10.100.0.9/32 .*noprefixroute" ||
	fail "10.100.0.9/32 without noprefixroute: $(ip -n "$NSA" -o -4 addr show dev zgate0)"

step "no prefix route from the assignment, 8.8.8.8 not taken"
ip -n "$NSA" -4 route show table all
[[ -z $(ip -n "$NSA" -4 route show table all | grep '^128\.0\.0\.0/1\|^128\.0\.0\.0 ') ]] ||
	fail "a route for 128.0.0.0/1: $(ip -n "$NSA" -4 route show table all | grep 128.0.0.0)"
[[ -z $(ip -n "$NSA" -4 route show table all | grep '8\.8\.8\.8') ]] || fail "a route for 8.8.8.8"
ip -n "$NSA" -o addr | grep -q ' 8\.8\.8\.8/' && fail "8.8.8.8 is an address of the agent's machine"
in_agent ip route get 8.8.8.8 | grep -q "via $NET.1 dev zgv0" ||
	fail "8.8.8.8 no longer through the default route: $(in_agent ip route get 8.8.8.8)"
for a in 127.0.0.1 169.254.1.1 "$RELAY_IP" 172.31.9.7; do
	ip -n "$NSA" -o addr show dev zgate0 | grep -q " $a/" && fail "$a installed on zgate0"
done
in_agent ip route get 172.31.9.7 | grep -q "dev zglan0" || fail "the LAN address was taken"

step "routes: loopback, link-local, multicast, the relay's host route and the LAN's half refused"
[[ $(tunroutes) == "198.18.0.0/24 203.0.113.0/24 " ]] || fail "routes via zgate0: '$(tunroutes)'"
in_agent ip route get "$RELAY_IP" | grep -q "dev zgv0" || fail "relay not outside the tunnel"
in_agent ip route get 172.31.9.200 | grep -q "dev zglan0" || fail "the LAN's half was taken"
[[ -z $(ip -n "$NSA" -4 route show dev zgate0 table all | grep '^127\.\|^169\.254\|^224\.\|^multicast') ]] ||
	fail "special route through zgate0: $(ip -n "$NSA" -4 route show dev zgate0 table all)"

step "status file lists every refusal; the log names the relay and the address"
cat "$STATUS"; echo
refused_has address 128.0.0.0/1 not_tunneled || fail "128.0.0.0/1 not listed"
refused_has address 8.8.8.8/32 not_tunneled || fail "8.8.8.8 not listed"
refused_has address 127.0.0.1/32 loopback || fail "127.0.0.1 not listed"
refused_has address 169.254.1.1/32 link_local || fail "169.254.1.1 not listed"
refused_has address "$RELAY_IP/32" relay_address || fail "relay address not listed"
refused_has address 172.31.9.7/32 overlaps_route || fail "LAN address not listed"
refused_has address "$NET.2/32" local_address || fail "the agent's own address not listed"
refused_has route 127.0.0.0/8 loopback || fail "route 127.0.0.0/8 not listed"
refused_has route "$RELAY_IP/32" relay_address || fail "route to the relay not listed"
refused_has route 224.0.0.0/4 multicast || fail "route 224.0.0.0/4 not listed"
refused_has route 169.254.0.0/16 link_local || fail "route 169.254.0.0/16 not listed"
refused_has route 172.31.9.128/25 overlaps_route || fail "route 172.31.9.128/25 not listed"
refused_has route fd00:9::/64 ipv6_off || fail "route fd00:9::/64 not listed"
[[ -z $(ip -n "$NSA" -6 route show dev zgate0 | grep '^fd00') ]] ||
	fail "IPv6 routes with ipv6 off: $(ip -n "$NSA" -6 route show dev zgate0)"
ip -n "$NSA" -6 addr show dev zgate0 | grep -q fd00 && fail "an IPv6 address with ipv6 off"
[[ $(status_field addresses) == '["10.100.0.9/32"]' ]] || fail "addresses: $(status_field addresses)"
grep -q "relay $RELAY ($RELAY_IP/32) assigned the address 8.8.8.8/32: refused" "$AGENT_LOG" ||
	fail "no log line naming the relay and 8.8.8.8"
grep -q "relay $RELAY ($RELAY_IP/32) advertised the route 127.0.0.0/8: refused, a loopback" "$AGENT_LOG" ||
	fail "no log line naming the relay and 127.0.0.0/8"
# once per refusal, not again when the ADDRESS_REQUEST's answer repeats it
[[ $(grep -c "assigned the address 8.8.8.8/32: refused" "$AGENT_LOG") -eq 1 ]] ||
	fail "8.8.8.8 refusal logged $(grep -c "8.8.8.8/32: refused" "$AGENT_LOG") times"

step "the tunnel stays up: ping 198.18.0.1 through it from 10.100.0.9"
out=$(in_agent ping -c 3 -i 0.2 -W 2 198.18.0.1) || fail "ping failed: $out"
expect_contains "$out" "3 received" "ping"
state_is connected || fail "state: $(status_field state)"

step "SIGTERM removes what was added"
stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "exit status $AGENT_RC"

step "--accept-routes 198.18.0.0/16: other advertised routes refused as not_accepted"
: >"$AGENT_LOG"
start_agent --accept-routes 198.18.0.0/16
wait_for 10 "state connected" state_is connected
wait_for 5 "the refusal of 203.0.113.0/24" refused_has route 203.0.113.0/24 not_accepted
[[ $(tunroutes) == "198.18.0.0/24 " ]] || fail "routes via zgate0: '$(tunroutes)'"
grep -q "advertised the route 203.0.113.0/24: refused, outside accept_routes" "$AGENT_LOG" ||
	fail "no log line for 203.0.113.0/24"
out=$(in_agent ping -c 2 -i 0.2 -W 2 198.18.0.1) || fail "ping with accept_routes failed: $out"
stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "exit status $AGENT_RC"
echo "PASS"
