#!/usr/bin/env bash
# zgate-agent refuses to start, with a message that says what is missing
# and a non-zero exit, when it lacks CAP_NET_ADMIN (uid 65534 without
# capabilities; root with CAP_NET_ADMIN dropped) or /dev/net/tun (hidden by
# an empty /dev/net in a private mount namespace), and for configuration
# errors (exit 2, naming file:line). Nothing is left behind in either case.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/agent_env.sh"

args=(--relay "$RELAY" --server-name localhost --cert "$PKI/agent-1.crt"
	--key "$PKI/agent-1.key" --ca "$PKI/ca.crt")
snapshot "$ZG_TMP/before"
unchanged() {
	snapshot "$ZG_TMP/after"
	diff -u "$ZG_TMP/before" "$ZG_TMP/after" || fail "$1 left something behind"
}
run() { # EXPECTED-EXIT NEEDLE WHAT COMMAND...
	local want=$1 needle=$2 what=$3 out rc; shift 3
	set +e; out=$("$@" 2>&1); rc=$?; set -e
	echo "$what: exit $rc: $out"
	[[ $rc -eq $want ]] || fail "$what: exit $rc, expected $want"
	expect_contains "$out" "$needle" "$what"
	unchanged "$what"
}

step "no CAP_NET_ADMIN: uid 65534 without capabilities"
run 1 "CAP_NET_ADMIN is missing" "uid 65534" \
	ip netns exec "$NSA" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$AGENT" "${args[@]}"

step "no CAP_NET_ADMIN: root with the capability dropped"
run 1 "CAP_NET_ADMIN is missing" "root without CAP_NET_ADMIN" \
	ip netns exec "$NSA" setpriv --bounding-set=-net_admin --inh-caps=-net_admin \
	"$AGENT" "${args[@]}"

step "no /dev/net/tun"
run 1 "/dev/net/tun is missing" "no /dev/net/tun" \
	ip netns exec "$NSA" unshare --mount --propagation private \
	sh -c 'mount -t tmpfs none /dev/net && exec "$0" "$@"' "$AGENT" "${args[@]}"

step "configuration errors: exit 2, the message names the source"
printf 'relay: %s\ncert: %s\nkeepalive: soon\n' "$RELAY" "$PKI/agent-1.crt" >"$ZG_TMP/agent.yaml"
run 2 "$ZG_TMP/agent.yaml:3:1: keepalive: \"soon\" is not a duration" "bad file" \
	ip netns exec "$NSA" "$AGENT" --config "$ZG_TMP/agent.yaml"
run 2 "relay: required" "no relay" ip netns exec "$NSA" "$AGENT" --cert a --key b --ca c
run 2 "$ZG_TMP/missing.crt" "missing certificate" \
	ip netns exec "$NSA" "$AGENT" "${args[@]}" --cert "$ZG_TMP/missing.crt"
run 2 "ZGATE_KEEPALIV names no option" "mistyped variable" \
	env ZGATE_KEEPALIV=1s ip netns exec "$NSA" "$AGENT" "${args[@]}"

run 2 "unknown option --frobnicate (see --help)" "unknown option" "$AGENT" "${args[@]}" --frobnicate
step "--check-config loads the certificates, naming the file that does not"
run 2 "$ZG_TMP/missing.key" "--check-config, missing key" \
	"$AGENT" "${args[@]}" --key "$ZG_TMP/missing.key" --check-config
run 0 "configuration OK" "--check-config" "$AGENT" "${args[@]}" --ipv6 --log-format json --check-config
out=$("$AGENT" "${args[@]}" --ipv6 --check-config) || fail "bare --ipv6"
expect_contains "$out" "ipv6            yes" "bare --ipv6"

step "--help and --version"
out=$("$AGENT" --help) || fail "--help exit"; expect_contains "$out" "--status-file FILE" "--help"
out=$("$AGENT" --version) || fail "--version exit"
[[ $out == "zgate-agent "* ]] || fail "--version: $out"
for lib in "(commit " ngtcp2 nghttp3 wolfSSL lwIP libevent; do expect_contains "$out" "$lib" "--version"; done
echo "PASS"
