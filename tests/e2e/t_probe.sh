#!/usr/bin/env bash
# zgate-probe against its own --echo-server over loopback UDP, the server
# running as uid 65534 with every capability dropped: the tunnel opens,
# pings come back, and each bad client certificate is refused with its
# own logged reason (C24).
source "$(dirname "$0")/lib.sh"
probe=$ZG_BIN/zgate-probe
[[ -x $probe ]] || fail "$probe not built"
command -v setpriv >/dev/null || skip "setpriv missing"
[[ $(id -u) -eq 0 ]] || skip "needs root to switch to uid 65534"

pki=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" --test-set -c agent-1 >/dev/null
chmod 755 "$ZG_TMP" "$pki"; chmod 644 "$pki"/*   # readable by uid 65534 (a test PKI)

port=$((20000 + RANDOM % 20000))
log=$ZG_TMP/echo.log
setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all \
	"$probe" --echo-server --listen "127.0.0.1:$port" --cert "$pki/relay.crt" \
	--key "$pki/relay.key" --client-ca "$pki/ca.crt" >"$log" 2>&1 &
server=$!
cleanup "kill $server 2>/dev/null; wait $server 2>/dev/null"
for _ in $(seq 50); do grep -q "echo server on UDP port" "$log" && break; sleep 0.1; done
grep -q "echo server on UDP port $port" "$log" || fail "echo server did not start: $(cat "$log")"
[[ $(awk '/^Uid:/ {print $2}' /proc/$server/status) == 65534 ]] || fail "server not running as 65534"
[[ $(awk '/^CapEff:/ {print $2}' /proc/$server/status) == 0000000000000000 ]] || fail "server has capabilities"

run_probe() { # CERT EXTRA...
	local c=$1; shift
	"$probe" --relay "127.0.0.1:$port" --server-name localhost --cert "$pki/$c.crt" \
		--key "$pki/$c.key" --ca "$pki/ca.crt" "$@"
}

step "tunnel opens, address and routes printed, 5 pings answered"
out=$(run_probe agent-1 --target 192.0.2.1 --count 5 --interval 50ms --timeout 5s) || fail "probe failed: $out"
echo "$out"
expect_contains "$out" "(key exchange X25519MLKEM768," "the post-quantum hybrid (tls_set_groups)"
expect_contains "$out" "address 10.100.0." "assigned address"
expect_contains "$out" "route 0.0.0.0-255.255.255.255" "route"
expect_contains "$out" "5 sent, 5 received, 0% loss" "summary"

step "a 1280-byte inner packet fits (C15) and a 20000-echo flood mostly arrives"
run_probe agent-1 --target 192.0.2.1 --count 2 --interval 20 --size 1252 >/dev/null ||
	fail "1280-byte packets do not pass"
out=$(run_probe agent-1 --target 192.0.2.1 --flood 20000 --size 1200 --quiet --timeout 20) ||
	fail "flood failed: $out"
echo "$out"

step "refused certificates: exit 1, distinct reasons in the server log"
for c in expired:expired notyet:not_yet_valid stranger:unknown_ca serveronly:no_client_auth; do
	cert=${c%%:*} why=${c#*:}
	if out=$(run_probe "$cert" --target 192.0.2.1 --count 1 --timeout 3 2>&1); then
		fail "$cert certificate was accepted"
	fi
	expect_contains "$out" "refused the TLS handshake" "$cert: client message"
	grep -q "refused: $why" "$log" || fail "$cert: server log lacks 'refused: $why': $(cat "$log")"
done

step "the relay's certificate refused by the client: the reason, not a QUIC error code"
out=$("$probe" --relay "127.0.0.1:$port" --server-name localhost --cert "$pki/agent-1.crt" \
	--key "$pki/agent-1.key" --ca "$pki/other-ca.crt" --count 1 --timeout 3 2>&1) &&
	fail "a relay certificate from another CA was accepted"
expect_contains "$out" "relay certificate refused: unknown_ca (check --ca and --server-name)" "wrong --ca"
out=$(run_probe agent-1 --server-name wrong.example --count 1 --timeout 3 2>&1) &&
	fail "a relay certificate for another name was accepted"
expect_contains "$out" "relay certificate refused: name_mismatch" "wrong --server-name"
# A relay reached by IP address: its certificate's iPAddress SAN (127.0.0.1)
# is what is checked, with no --server-name (wolfSSL's WOLFSSL_IP_ALT_NAME).
out=$("$probe" --relay "127.0.0.1:$port" --cert "$pki/agent-1.crt" --key "$pki/agent-1.key" \
	--ca "$pki/ca.crt" --target 192.0.2.1 --count 1 --timeout 5s 2>&1) ||
	fail "a relay reached at the IP address its certificate names was refused: $out"
out=$(run_probe agent-1 --server-name 127.0.0.2 --count 1 --timeout 3 2>&1) &&
	fail "a relay certificate for another IP address was accepted"
expect_contains "$out" "relay certificate refused: name_mismatch" "wrong IP --server-name"

step "bad usage: exit 2 with a message naming the option"
set +e
out=$("$probe" --relay nowhere --cert x --key x --ca x 2>&1); rc=$?
set -e
[[ $rc -eq 2 ]] || fail "bad --relay: exit $rc"
expect_contains "$out" "--relay nowhere" "bad --relay message"
out=$("$probe" --relay 127.0.0.1:1 --cert "$pki/agent-1.crt" --key "$pki/agent-1.key" --ca /nonexistent 2>&1) && fail "missing CA accepted"
expect_contains "$out" "/nonexistent" "missing CA message"
out=$("$probe" --help) || fail "--help exit"; expect_contains "$out" "--echo-server" "--help"
out=$("$probe" --version) || fail "--version exit"; expect_contains "$out" "zgate-probe" "--version"
for lib in "(commit " ngtcp2 nghttp3 wolfSSL lwIP libevent; do expect_contains "$out" "$lib" "--version"; done
set +e
out=$("$probe" --relay 127.0.0.1:1 --timeout 2x 2>&1); rc=$?
set -e
[[ $rc -eq 2 ]] || fail "bad --timeout: exit $rc"
expect_contains "$out" "--timeout 2x: expected a duration" "bad --timeout message"
set +e
out=$("$probe" --quiet --frobnicate 2>&1); rc=$?
set -e
[[ $rc -eq 2 ]] || fail "unknown option: exit $rc"
expect_contains "$out" "unknown option --frobnicate (see --help)" "unknown option message"
echo "PASS"
