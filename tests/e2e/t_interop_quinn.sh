#!/usr/bin/env bash
# An independent CONNECT-IP client against zgate-relay (uid 65534, no
# capabilities, its default workers): tests/interop/quinn runs on quinn +
# rustls (Debian's Rust packages), not on ngtcp2, nghttp3 or wolfSSL,
# with HTTP/3, QPACK and the capsules written from the RFCs. It checks
# the handshake (ALPN h3, mutual TLS), SETTINGS (ENABLE_CONNECT_PROTOCOL,
# H3_DATAGRAM), the extended CONNECT, ADDRESS_REQUEST answered by an
# ADDRESS_ASSIGN with its request ID, ROUTE_ADVERTISEMENT, datagrams the
# relay must drop (an unknown context ID, a stream that is no CONNECT-IP
# request), an ICMP echo, three QUIC key updates started by the client
# (each followed by an echo in the new key phase), a UDP datagram through
# the tunnel, and a clean close; then a client the policy does not know gets 403, and a client
# offering only "h3-29" is refused in the handshake.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v cargo >/dev/null || skip "cargo missing (make test installs Debian's)"
[[ -d /usr/share/cargo/registry/quinn-0.9.3 || -n $(ls -d /usr/share/cargo/registry/quinn-0.* 2>/dev/null) ]] ||
	skip "librust-quinn-dev missing (make test installs it)"
Q=$("$ZG_ROOT/tests/interop/build.sh" "${ZG_INTEROP_DIR:-$HOME/.cache/zgate/interop}") || fail "the quinn client did not build"

topo_init 1
topo_pki interop-1 outsider
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  interop-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [icmp, udp] }
P
topo_relay
svc_start udp udp-echo 198.18.0.10 5004
qc() { # ID [FLAGS...]
	local id=$1; shift
	inc 1 "$Q" --relay 192.168.81.1:4433 --server-name relay.test --cert "$D/pki/$id.crt" \
		--key "$D/pki/$id.key" --ca "$D/pki/ca.crt" "$@"
}

step "quinn + rustls: tunnel, address, routes, ICMP and UDP through it"
out=$(qc interop-1 --stray --ping 198.18.0.10 --key-updates 3 --udp 198.18.0.10:5004) ||
	fail "interop client: $out"
echo "$out"
expect_contains "$out" "handshake: ok, ALPN h3" "ALPN"
expect_contains "$out" "settings: ENABLE_CONNECT_PROTOCOL=1 H3_DATAGRAM=1" "server SETTINGS"
expect_contains "$out" "response: 200" "status"
expect_contains "$out" "ADDRESS_ASSIGN: request 1 10.100." "ADDRESS_ASSIGN for request 1"
expect_contains "$out" "route: 198.18.0.0-198.18.0.255 protocol 0" "the route to the service range (any protocol)"
expect_contains "$out" "stray datagrams: context ID 1 and stream 4 sent" "stray datagrams"
expect_contains "$out" "ping 198.18.0.10: echo reply" "ICMP echo after the stray datagrams"
expect_contains "$out" "key update 3: echo reply" "three QUIC key updates"
expect_contains "$out" "udp 198.18.0.10:5004:" "UDP echo"
expect_contains "$out" "closed: H3_NO_ERROR" "close"

step "quinn + rustls offering only TLS_CHACHA20_POLY1305_SHA256: tunnel, ICMP, key updates"
# the relay seals and opens ChaCha20-Poly1305 with its own callbacks
# (src/masque/aead.c, not wolfSSL's EVP layer): an independent peer agrees on every tag
out=$(qc interop-1 --chacha20 --ping 198.18.0.10 --key-updates 2) ||
	fail "interop client with ChaCha20-Poly1305: $out"
echo "$out"
expect_contains "$out" "handshake: ok, ALPN h3" "ChaCha20-Poly1305 handshake"
expect_contains "$out" "ping 198.18.0.10: echo reply" "ICMP echo with ChaCha20-Poly1305"
expect_contains "$out" "key update 2: echo reply" "key updates with ChaCha20-Poly1305"
audit_wait "$D/audit.log" '"event":"session_open","client":"interop-1"' ||
	fail "no session_open for interop-1: $(tail -3 "$D/audit.log")"
audit_wait "$D/audit.log" '"event":"session_close","client":"interop-1"' ||
	fail "no session_close for interop-1"
audit_wait "$D/audit.log" '"event":"flow_allow".*"client":"interop-1".*"proto":"udp"' ||
	audit_wait "$D/audit.log" '"event":"flow_allow".*"proto":"udp".*"client":"interop-1"' ||
	fail "the UDP flow was not audited"

step "a client the policy does not know: 403"
set +e
out=$(qc outsider); rc=$?
set -e
echo "$out"
[[ $rc -eq 3 ]] || fail "outsider: exit $rc, not 3 (refused): $out"
expect_contains "$out" "response: 403" "outsider's status"

step "a client offering only h3-29: refused in the handshake"
set +e
out=$(qc interop-1 --alpn h3-29); rc=$?
set -e
echo "$out"
[[ $rc -eq 1 ]] || fail "h3-29 only: exit $rc: $out"
expect_contains "$out" "FAILED handshake" "h3-29 refusal"
[[ $(metric 'zgate_handshake_failures_total{reason="alpn"}') -ge 1 ]] ||
	fail "the ALPN refusal was not counted"

step "zgate's client side (zgate-probe) against the quinn server"
ip netns exec "$R" "$Q" --serve 192.168.81.1:4434 --cert "$D/pki/relay.crt" --key "$D/pki/relay.key" \
	--ca "$D/pki/ca.crt" >"$D/quinn-server.log" 2>&1 &
QS=$!
cleanup "kill $QS 2>/dev/null; wait $QS 2>/dev/null"
for _ in $(seq 50); do grep -q "^listening" "$D/quinn-server.log" && break; sleep 0.1; done
grep -q "^listening on 192.168.81.1:4434" "$D/quinn-server.log" ||
	fail "quinn server did not start: $(cat "$D/quinn-server.log")"
out=$(inc 1 "$ZG_BIN/zgate-probe" --relay 192.168.81.1:4434 --server-name relay.test \
	--cert "$D/pki/interop-1.crt" --key "$D/pki/interop-1.key" --ca "$D/pki/ca.crt" \
	--target 192.0.2.1 --count 3 --interval 50ms --timeout 5s 2>&1) ||
	fail "zgate-probe against the quinn server: $out ($(cat "$D/quinn-server.log"))"
echo "$out"
sl=$(cat "$D/quinn-server.log")
echo "$sl"
# rustls 0.20 lacks X25519MLKEM768: it asks for X25519 (HelloRetryRequest)
expect_contains "$out" "(key exchange X25519," "the group the quinn server asked for"
expect_contains "$out" "address 10.99.0.2" "the address the quinn server assigned"
expect_contains "$out" "route 192.0.2.0-192.0.2.255" "the route the quinn server advertised"
expect_contains "$out" "3 sent, 3 received" "pings answered by the quinn server"
expect_contains "$sl" "connection: ALPN h3, client certificates 1" "the server's view of the handshake"
expect_contains "$sl" ":method: CONNECT" "the probe's :method"
expect_contains "$sl" ":protocol: connect-ip" "the probe's :protocol"
expect_contains "$sl" ":scheme: https" "the probe's :scheme"
expect_contains "$sl" ":path: /.well-known/masque/ip/*/*/" "the probe's :path"
expect_contains "$sl" "capsule-protocol: ?1" "the probe's capsule-protocol"
expect_contains "$sl" "client settings: H3_DATAGRAM=1" "the probe's SETTINGS"
expect_contains "$sl" "ADDRESS_REQUEST: request" "the probe's ADDRESS_REQUEST (C10)"
expect_contains "$sl" "echo reply 3 to 192.0.2.1" "the server's echo replies"

step "bad usage: exit 2"
set +e
"$Q" --relay nowhere >/dev/null 2>&1; rc=$?
set -e
[[ $rc -eq 2 ]] || fail "bad --relay: exit $rc"
pass
