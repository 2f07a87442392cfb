#!/usr/bin/env bash
# Identity (issue 16 item 4) and an expired CRL (item 8). The real agent-2
# holds a tunnel; a certificate from the same CA naming CN=agent-2 and
# CN=agent-1 is refused in the handshake (cn_count), audited as
# cert_rejected and counted, and agent-2's tunnel is not replaced. So are
# certificates with no CN or an unusable one. session_open names the
# certificate by serial and SHA-256 fingerprint. A relay whose CRL is past
# its nextUpdate refuses everyone as crl_expired, says so once, and exports
# the CRL's nextUpdate and its own certificate's expiry.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
probe=$ZG_BIN/zgate-probe
[[ -x $probe ]] || fail "zgate-probe not built"
topo_init 2
"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki" -s relay.test -c agent-1 -c agent-2 --test-set >/dev/null
chmod -R a+rX "$D/pki"
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
  agent-2:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
P
topo_relay
topo_agent 1 agent-2

# probe from client namespace 2 with certificate NAME; must be refused
refused() { # NAME
	if ip netns exec "${C[2]}" "$probe" --relay 192.168.82.1:4433 --server-name relay.test \
		--cert "$D/pki/$1.crt" --key "$D/pki/$1.key" --ca "$D/pki/ca.crt" \
		--count 1 --timeout 2 >"$D/probe-$1.out" 2>&1; then
		fail "$1: the relay accepted it: $(tail -3 "$D/probe-$1.out")"
	fi
}
hexid() { # CERT: "serial sha256" as openssl prints them, lower case, no colons
	openssl x509 -in "$D/pki/$1.crt" -noout -serial -fingerprint -sha256 |
		sed 's/.*=//; s/://g' | tr 'A-F\n' 'a-f ' | sed 's/ $//'
}

step "session_open names the certificate: serial and SHA-256 fingerprint"
read -r serial sha <<<"$(hexid agent-2)"
line=$(grep '"event":"session_open","client":"agent-2"' "$D/audit.log") || fail "agent-2 session not audited"
expect_contains "$line" "\"cert_serial\":\"$serial\",\"cert_sha256\":\"$sha\"" "session_open"
[[ ${#sha} -eq 64 ]] || fail "fingerprint '$sha'"
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-2 cannot reach 198.18.0.10"

step "CN=agent-2 + CN=agent-1 is refused, audited and counted; agent-2 keeps its tunnel"
refused twocn
expect_contains "$(cat "$D/probe-twocn.out")" "peer refused the TLS handshake" "probe message"
audit_wait "$D/audit.log" '"event":"cert_rejected","reason":"cn_count","peer":"192\.168\.82\.2:' ||
	fail "not audited as cert_rejected cn_count: $(grep cert_rejected "$D/audit.log" || true)"
[[ $(metric 'zgate_handshake_failures_total{reason="cn_count"}') == 1 ]] ||
	fail "cn_count metric: $(metrics | grep handshake_failures)"
[[ $(grep -c '"event":"session_open"' "$D/audit.log") -eq 1 ]] || fail "a second session was opened"
grep -q '"event":"session_close"' "$D/audit.log" && fail "agent-2's session was closed"
grep -q 'replaces' "$D/relay.log" && fail "the relay replaced a session: $(grep replaces "$D/relay.log")"
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-2's tunnel broke"

step "no CN, a 64-character CN, a CN with a space, a non-ASCII CN: refused the same way"
for c in nocn longcn spacecn utf8cn; do refused $c; done
audit_wait "$D/audit.log" '"event":"cert_rejected","reason":"cn_invalid"' 3 3 || true
[[ $(grep -c '"event":"cert_rejected","reason":"cn_count"' "$D/audit.log") -eq 2 ]] ||
	fail "cn_count lines: $(grep cert_rejected "$D/audit.log")"
[[ $(grep -c '"event":"cert_rejected","reason":"cn_invalid"' "$D/audit.log") -eq 3 ]] ||
	fail "cn_invalid lines: $(grep cert_rejected "$D/audit.log")"
[[ $(metric 'zgate_handshake_failures_total{reason="cn_count"}') == 2 ]] || fail "cn_count metric"
[[ $(metric 'zgate_handshake_failures_total{reason="cn_invalid"}') == 3 ]] || fail "cn_invalid metric"
[[ $(metric 'zgate_handshake_failures_total{reason="other"}') == 0 ]] || fail "'other' counted"
[[ $(metric 'zgate_tunnel_refused_total{status="403"}') == 0 ]] || fail "a CN got as far as a 403"

step "the relay certificate's expiry is exported"
want=$(date -u -d "$(openssl x509 -in "$D/pki/relay.crt" -noout -enddate | sed 's/.*=//')" +%s)
[[ $(metric zgate_tls_cert_expiry_timestamp_seconds) == "$want" ]] ||
	fail "cert expiry $(metric zgate_tls_cert_expiry_timestamp_seconds), want $want"
metrics | grep -q zgate_tls_crl_next_update_timestamp_seconds && fail "CRL metric without a CRL"

step "an expired CRL: every client refused as crl_expired, said once, nextUpdate exported"
kill "${APID[1]}"; wait "${APID[1]}" 2>/dev/null || true
kill "$RPID"; wait "$RPID" 2>/dev/null || true
sed -i "s|client_ca: $D/pki/ca.crt|client_ca: $D/pki/ca.crt, crl: $D/pki/expired.crl|" "$D/relay.yaml"
grep -q 'crl: ' "$D/relay.yaml" || fail "relay.yaml not rewritten: $(cat "$D/relay.yaml")"
: >"$D/audit.log"
topo_relay
grep -q "CRL $D/pki/expired.crl expired (nextUpdate" "$D/relay.log" ||
	fail "no start-up warning: $(tail -3 "$D/relay.log")"
refused agent-1
refused agent-2
[[ $(grep -c '"event":"cert_rejected","reason":"crl_expired"' "$D/audit.log") -eq 2 ]] ||
	fail "crl_expired lines: $(grep cert_rejected "$D/audit.log" || true)"
[[ $(metric 'zgate_handshake_failures_total{reason="crl_expired"}') == 2 ]] || fail "crl_expired metric"
[[ $(grep -c 'expired (nextUpdate' "$D/relay.log") -eq 1 ]] || fail "the CRL warning is not said once"
want=$(date -u -d "$(openssl crl -in "$D/pki/expired.crl" -noout -nextupdate | sed 's/.*=//')" +%s)
[[ $(metric zgate_tls_crl_next_update_timestamp_seconds) == "$want" ]] ||
	fail "CRL nextUpdate $(metric zgate_tls_crl_next_update_timestamp_seconds), want $want"
pass
