#!/usr/bin/env bash
# C16: a packet larger than the tunnel's datagrams is dropped and answered
# with ICMP "fragmentation needed" carrying the tunnel's packet size, never
# silently lost; the kernel learns that path MTU and the application's
# next packets fit. The TUN MTU is forced above the tunnel's (--mtu 1500)
# so the kernel hands the agent packets that are too big.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_env.sh"

start_echo
start_agent --mtu 1500
wait_for 10 "state connected" state_is connected
wait_for 5 "routes" bash -c "ip -n $NSA route | grep -q '128.0.0.0/1 dev zgate0'"
ip -n "$NSA" link show zgate0 | grep -q "mtu 1500" || fail "--mtu 1500 not applied"
max=$(sed -n 's/.*state connected: .*largest packet \([0-9]*\),.*/\1/p' "$AGENT_LOG" | head -1)
echo "largest packet through the tunnel: $max"
((max >= 1280 && max < 1500)) || fail "largest packet $max"

step "a 1500-byte ping with DF: 'Frag needed' from the destination, mtu $max"
set +e
out=$(in_agent ping -c 1 -W 2 -M do -s 1472 198.18.0.1 2>&1)
set -e
echo "$out"
expect_contains "$out" "Frag needed and DF set (mtu = $max)" "ICMP answer"
in_agent ip route get 198.18.0.1 | grep -q "mtu $max" || fail "the kernel did not learn the path MTU"

step "the next ones fit: the largest that fits passes, one byte more is refused locally"
out=$(in_agent ping -c 2 -i 0.2 -W 2 -M do -s $((max - 28)) 198.18.0.1) || fail "ping of $max bytes: $out"
expect_contains "$out" "2 received" "ping at the path MTU"
set +e
out=$(in_agent ping -c 1 -W 1 -M do -s $((max - 27)) 198.18.0.1 2>&1)
set -e
expect_contains "$out" "mtu=$max" "local refusal above the path MTU"

sleep 6 # the counters are refreshed every 5 s
cat "$STATUS"
grep -q '"too_big":[1-9]' "$STATUS" || fail "too-big drops not counted"
grep -q '"icmp_too_big_sent":[1-9]' "$STATUS" || fail "ICMP answers not counted"
stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "exit status $AGENT_RC"
echo "PASS"
