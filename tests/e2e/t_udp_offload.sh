#!/usr/bin/env bash
# UDP GSO/GRO (src/masque/udp.c): a flood through a tunnel between two
# namespaces works with segmentation offload, and when the path refuses it
# (an MTU below the QUIC packet size: the kernel cannot segment into
# fragments and answers EINVAL) each sender says so once and carries on one
# datagram at a time, fragmented. The echo server runs as uid 65534 with
# every capability dropped.
source "$(dirname "$0")/lib.sh"
probe=$ZG_BIN/zgate-probe
[[ -x $probe ]] || fail "$probe not built"
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces)"

a=zgo-a-$$ b=zgo-b-$$
ip netns add $a && cleanup "ip netns del $a"
ip netns add $b && cleanup "ip netns del $b"
ip link add zgo0 netns $a type veth peer name zgo1 netns $b
ip -n $a addr add 10.77.0.1/24 dev zgo0 && ip -n $a link set zgo0 up && ip -n $a link set lo up
ip -n $b addr add 10.77.0.2/24 dev zgo1 && ip -n $b link set zgo1 up && ip -n $b link set lo up

pki=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" --test-set -c agent-1 >/dev/null
chmod 755 "$ZG_TMP" "$pki"; chmod 644 "$pki"/*
log=$ZG_TMP/echo.log
ip netns exec $b setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all \
	"$probe" --echo-server --listen 10.77.0.2:4433 --cert "$pki/relay.crt" \
	--key "$pki/relay.key" --client-ca "$pki/ca.crt" --log-level info >"$log" 2>&1 &
server=$!
cleanup "kill $server 2>/dev/null; wait $server 2>/dev/null"
for _ in $(seq 50); do grep -q "echo server on UDP port" "$log" && break; sleep 0.1; done
grep -q "echo server on UDP port" "$log" || fail "echo server did not start: $(cat "$log")"

flood() { # LOG: 20,000 echoes of 1,200 bytes, at least 90 % back
	ip netns exec $a "$probe" --relay 10.77.0.2:4433 --server-name localhost \
		--cert "$pki/agent-1.crt" --key "$pki/agent-1.key" --ca "$pki/ca.crt" \
		--target 192.0.2.1 --flood 20000 --size 1200 --min-replies 18000 \
		--log-level info --quiet 2>"$1"
}

step "offload on: 20,000 echoes of 1,200 bytes"
out=$(flood "$ZG_TMP/on.log") || fail "flood failed: $out $(tail -5 "$ZG_TMP/on.log")"
echo "$out"
! grep -q "GSO refused" "$ZG_TMP/on.log" "$log" || fail "GSO refused on a veth that takes it"

step "MTU 1400 below the 1452-byte QUIC packets: GSO refused, said once per side, the flood completes"
ip -n $a link set zgo0 mtu 1400
ip -n $b link set zgo1 mtu 1400
out=$(flood "$ZG_TMP/off.log") || fail "flood failed without GSO: $out $(tail -5 "$ZG_TMP/off.log")"
echo "$out"
# refused per message (that batch goes a datagram at a time), said once
# per streak; given up for the socket after repeated refusals
grep GSO "$ZG_TMP/off.log" "$log"
[[ $(grep -c "UDP GSO refused for [0-9]*-byte segments" "$ZG_TMP/off.log") == 1 ]] ||
	fail "client: expected one 'UDP GSO refused' line: $(grep GSO "$ZG_TMP/off.log")"
[[ $(grep -c "UDP GSO refused for [0-9]*-byte segments" "$log") == 1 ]] ||
	fail "server: expected one 'UDP GSO refused' line: $(grep GSO "$log")"
echo "PASS"
