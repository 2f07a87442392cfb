#!/usr/bin/env bash
# zgate-agent against zgate-probe --echo-server (uid 65534, no capabilities)
# in network namespaces: the TUN appears with the assigned address, exactly
# the advertised routes (the echo server advertises all of IPv4: a full
# tunnel as two /1 halves) plus the host route to the relay through the old
# default gateway; ping reaches 198.18.0.1 through the tunnel; the status
# file tells the truth; SIGTERM exits 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_env.sh"

start_echo
[[ $(awk '/^CapEff:/ {print $2}' /proc/$ECHO_PID/status) == 0000000000000000 ]] ||
	fail "echo server has capabilities"

step "agent connects; TUN zgate0 up with the assigned address"
start_agent
wait_for 10 "state connected" state_is connected
wait_for 5 "an address on zgate0" bash -c "ip -n $NSA -4 addr show zgate0 | grep -q 'inet 10.100.0.'"
addr=$(ip -n "$NSA" -4 -o addr show zgate0 | awk '{print $4}')
echo "address: $addr"
[[ $addr =~ ^10\.100\.0\.[0-9]+/32$ ]] || fail "address: $addr"
ip -n "$NSA" link show zgate0 | grep -q "state UNKNOWN\|,UP" || fail "zgate0 not up"
mtu=$(ip -n "$NSA" -o link show zgate0 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
echo "mtu: $mtu"
((mtu >= 1280)) || fail "MTU $mtu below 1280"
qlen=$(ip -n "$NSA" -o link show zgate0 | sed -n 's/.* qlen \([0-9]*\).*/\1/p')
[[ $qlen == 1000 ]] || fail "transmit queue $qlen, expected 1000 (TUN_TXQLEN)"

step "exactly the advertised routes through zgate0, and the relay host route"
wait_for 5 "routes" bash -c "ip -n $NSA route | grep -q '128.0.0.0/1 dev zgate0'"
got=$(ip -n "$NSA" -4 route show dev zgate0 | awk '{print $1}' | sort | tr '\n' ' ')
[[ $got == "0.0.0.0/1 128.0.0.0/1 " ]] || fail "routes through zgate0: '$got'"
[[ -z $(ip -n "$NSA" -6 route show dev zgate0 | grep -v '^fe80::/64\|^multicast\|^ff00::/8') ]] ||
	fail "IPv6 routes that nobody advertised: $(ip -n "$NSA" -6 route show dev zgate0)"
ip -n "$NSA" route show "$RELAY_IP/32" | grep -q "via $NET.1 dev zgv0" ||
	fail "no host route to the relay via the old gateway: $(ip -n "$NSA" route)"
ip -n "$NSA" route show default | grep -q "via $NET.1 dev zgv0" || fail "default route touched"
ip -n "$NSA" route
in_agent ip route get 198.18.0.1 | grep -q "dev zgate0" || fail "198.18.0.1 not through zgate0"
in_agent ip route get "$RELAY_IP" | grep -q "dev zgv0" || fail "relay not outside the tunnel"

step "ping 198.18.0.1 through the tunnel"
out=$(in_agent ping -c 5 -i 0.2 -W 2 198.18.0.1) || fail "ping failed: $out"
echo "$out" | tail -2
expect_contains "$out" "5 received" "ping"
expect_contains "$out" "from 198.18.0.1" "ping reply source"

step "status file"
sleep $((5 + 1))   # the counters are refreshed every 5 s
cat "$STATUS"
state_is connected || fail "state: $(status_field state)"
[[ $(status_field addresses) == "[\"$addr\"]" ]] || fail "addresses: $(status_field addresses)"
[[ $(status_field routes) == '["0.0.0.0/1","128.0.0.0/1"]' ]] || fail "routes: $(status_field routes)"
[[ $(status_field relay_route) == "\"$RELAY_IP/32\"" ]] || fail "relay_route"
[[ $(status_field relay) == "\"$RELAY\"" ]] || fail "relay"
(($(status_field rx_packets) >= 5)) || fail "rx_packets $(status_field rx_packets)"
(($(status_field tx_packets) >= 5)) || fail "tx_packets $(status_field tx_packets)"
(($(status_field rx_bytes) >= 5 * 84)) || fail "rx_bytes"
grep -q '"quic":{"srtt_us":[0-9]*,"min_rtt_us":[0-9]*,"cwnd":[1-9][0-9]*,' "$STATUS" ||
	fail "no QUIC path in the status file"
grep -q "state connecting: relay $RELAY" "$AGENT_LOG" || fail "no state line for connecting"
grep -q "state connected: relay $RELAY" "$AGENT_LOG" || fail "no state line for connected"

step "SIGTERM: exit 0, state stopped"
stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "exit status $AGENT_RC"
state_is stopped || fail "final state $(status_field state)"
ip -n "$NSA" link show zgate0 2>/dev/null && fail "zgate0 still there"
echo "PASS"
