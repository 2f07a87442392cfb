#!/usr/bin/env bash
# scripts/gen-certs.sh makes a PKI whose certificates are what their names
# say: clients valid for clientAuth only, the relay for serverAuth with the
# requested names, connectors (--connector ID) for both with CN connector:ID,
# and the test set's refusals refused for the right reason.
. "$(dirname "$0")/lib.sh"
pki=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" -s relay.test -s 127.0.0.1 -c agent-1 -c agent-2 --test-set

verify() { openssl verify -CAfile "$pki/ca.crt" -purpose "$2" "$pki/$1.crt" 2>&1 || true; }
step "clients verify for clientAuth"
expect_contains "$(verify agent-1 sslclient)" "agent-1.crt: OK" "agent-1"
expect_contains "$(verify agent-2 sslclient)" "agent-2.crt: OK" "agent-2"
expect_contains "$(openssl x509 -in "$pki/agent-2.crt" -noout -subject)" "CN = agent-2" "client CN"
step "relay verifies for serverAuth, with its names"
expect_contains "$(verify relay sslserver)" "relay.crt: OK" "relay"
expect_contains "$(openssl x509 -in "$pki/relay.crt" -noout -ext subjectAltName)" "DNS:relay.test, IP Address:127.0.0.1" "relay SAN"
step "the test set is refused for the right reasons"
expect_contains "$(verify expired sslclient)" "certificate has expired" "expired"
expect_contains "$(verify notyet sslclient)" "certificate is not yet valid" "notyet"
expect_contains "$(verify serveronly sslclient)" "unsuitable certificate purpose" "serveronly"
expect_contains "$(verify stranger sslclient)" "unable to get local issuer certificate" "stranger"
expect_contains "$(verify relay sslclient)" "unsuitable certificate purpose" "relay as client"
step "identity material: CNs and SAN URIs as named"
subj() { openssl x509 -in "$pki/$1.crt" -noout -subject -nameopt oneline,-esc_msb; }
expect_contains "$(subj twocn)" "CN = agent-2, CN = agent-1" "twocn"
[[ $(subj nocn) != *CN* ]] || fail "nocn has a CN: $(subj nocn)"
[[ $(subj longcn) =~ CN\ =\ a{64}$ ]] || fail "longcn: $(subj longcn)"
expect_contains "$(subj spacecn)" "CN = agent 1" "spacecn"
expect_contains "$(subj utf8cn)" "CN = agént-1" "utf8cn"
expect_contains "$(openssl x509 -in "$pki/uri.crt" -noout -ext subjectAltName)" "URI:spiffe://zgate.test/agent-uri" "uri"
expect_contains "$(openssl x509 -in "$pki/twouri.crt" -noout -ext subjectAltName)" "URI:spiffe://zgate.test/a, URI:spiffe://zgate.test/b" "twouri"
for c in twocn nocn longcn spacecn utf8cn uri twouri revoked; do
	expect_contains "$(verify $c sslclient)" "$c.crt: OK" "$c chains and has clientAuth"
done
step "CRLs: revoked.crt listed; ca.crl current, expired.crl past its nextUpdate"
crlv() { openssl verify -CAfile "$pki/ca.crt" -crl_check -CRLfile "$pki/$1" "$pki/$2.crt" 2>&1 || true; }
expect_contains "$(crlv ca.crl revoked)" "certificate revoked" "revoked with ca.crl"
expect_contains "$(crlv ca.crl agent-1)" "agent-1.crt: OK" "agent-1 with ca.crl"
expect_contains "$(crlv expired.crl agent-1)" "CRL has expired" "expired.crl"
step "-r revokes a client: a new ca.crl lists it and every earlier revocation; the relay's certificate stays"
relay_before=$(sha256sum <"$pki/relay.crt")
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" -r agent-2 >/dev/null
expect_contains "$(crlv ca.crl agent-2)" "certificate revoked" "agent-2 after -r agent-2"
expect_contains "$(crlv ca.crl revoked)" "certificate revoked" "revoked.crt still listed"
expect_contains "$(crlv ca.crl agent-1)" "agent-1.crt: OK" "agent-1 after -r agent-2"
[[ $(sha256sum <"$pki/relay.crt") == "$relay_before" ]] || fail "-r alone re-signed the relay certificate"
[[ $(stat -c %a "$pki/ca.crl") == 644 ]] || fail "ca.crl mode $(stat -c %a "$pki/ca.crl")"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" -r agent-2 >/dev/null # again: no duplicate, no error
[[ $(openssl crl -in "$pki/ca.crl" -noout -text | grep -c "Serial Number") == 2 ]] || fail "ca.crl after a second -r agent-2"
if "$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" -r nobody 2>"$ZG_TMP/err"; then fail "revoked a missing client"; fi
expect_contains "$(cat "$ZG_TMP/err")" "-r nobody: no nobody.crt" "missing client message"
step "a PKI without the test set has a CRL revoking nothing"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$ZG_TMP/plain" -c agent-1 >/dev/null
expect_contains "$(openssl crl -in "$ZG_TMP/plain/ca.crl" -noout -text)" "No Revoked Certificates" "plain ca.crl"
step "keys are private"
[[ $(stat -c %a "$pki/agent-1.key") == 600 ]] || fail "agent-1.key mode $(stat -c %a "$pki/agent-1.key")"
step "the CA is reused when adding a client"
before=$(openssl x509 -in "$pki/ca.crt" -noout -fingerprint)
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" -c agent-3 >/dev/null
[[ $(openssl x509 -in "$pki/ca.crt" -noout -fingerprint) == "$before" ]] || fail "CA was replaced"
expect_contains "$(verify agent-3 sslclient)" "agent-3.crt: OK" "agent-3"
step "a bad client ID is refused"
if "$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" -c 'bad id' 2>"$ZG_TMP/err"; then fail "accepted 'bad id'"; fi
expect_contains "$(cat "$ZG_TMP/err")" "client ID 'bad id' must be" "bad id message"
if "$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" -c "$(printf 'a%.0s' {1..64})" 2>"$ZG_TMP/err"; then fail "accepted a 64-character ID"; fi
expect_contains "$(cat "$ZG_TMP/err")" "must be 1-63 of" "64-character ID message"
step "zgate-api certificates: --api (server), --api-relay (CN relay:ID), --api-admin (CN admin:NAME)"
relay_before=$(sha256sum <"$pki/relay.crt")
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" --api api.test --api 127.0.0.2 --api-relay r1 --api-relay r2 \
	--api-admin ops >/dev/null
[[ $(sha256sum <"$pki/relay.crt") == "$relay_before" ]] || fail "an --api-only run re-signed the relay certificate"
expect_contains "$(verify api sslserver)" "api.crt: OK" "api server"
expect_contains "$(openssl x509 -in "$pki/api.crt" -noout -ext subjectAltName)" "DNS:api.test, IP Address:127.0.0.2" "api SAN"
expect_contains "$(verify api sslclient)" "unsuitable certificate purpose" "api as client"
for c in relay-r1 relay-r2 admin-ops; do
	expect_contains "$(verify $c sslclient)" "$c.crt: OK" "$c for clientAuth"
	expect_contains "$(verify $c sslserver)" "unsuitable certificate purpose" "$c as server"
done
expect_contains "$(subj relay-r1)" "CN = relay:r1" "relay-r1 CN"
expect_contains "$(subj relay-r2)" "CN = relay:r2" "relay-r2 CN"
expect_contains "$(subj admin-ops)" "CN = admin:ops" "admin-ops CN"
[[ $(stat -c %a "$pki/relay-r1.key") == 600 ]] || fail "relay-r1.key mode $(stat -c %a "$pki/relay-r1.key")"
if "$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" --api-relay "r/1" 2>"$ZG_TMP/err"; then fail "accepted relay id r/1"; fi
expect_contains "$(cat "$ZG_TMP/err")" "client ID 'r/1' must be" "bad relay id message"
# a run with only zgate-api certificates adds no agent and no relay certificate
"$ZG_ROOT/scripts/gen-certs.sh" -d "$ZG_TMP/apionly" --api api --api-relay r1 >/dev/null
[[ -f $ZG_TMP/apionly/relay-r1.crt && ! -e $ZG_TMP/apionly/agent-1.crt && ! -e $ZG_TMP/apionly/relay.crt ]] ||
	fail "--api-relay alone: $(ls "$ZG_TMP/apionly")"
step "--connector ID: CN connector:ID, clientAuth and serverAuth; the relay's certificate stays; no agent"
relay_before=$(sha256sum <"$pki/relay.crt")
"$ZG_ROOT/scripts/gen-certs.sh" -d "$pki" --connector hospital-a --connector site_2.b >/dev/null
[[ $(sha256sum <"$pki/relay.crt") == "$relay_before" ]] || fail "a --connector run re-signed the relay certificate"
for c in hospital-a site_2.b; do
	expect_contains "$(verify "connector-$c" sslclient)" "connector-$c.crt: OK" "connector-$c for clientAuth (to the relay)"
	expect_contains "$(verify "connector-$c" sslserver)" "connector-$c.crt: OK" "connector-$c for serverAuth (to agents)"
	[[ $(stat -c %a "$pki/connector-$c.key") == 600 ]] || fail "connector-$c.key mode $(stat -c %a "$pki/connector-$c.key")"
done
expect_contains "$(subj connector-hospital-a)" "CN = connector:hospital-a" "connector CN"
expect_contains "$(subj connector-site_2.b)" "CN = connector:site_2.b" "connector CN with . and _"
x509=$(openssl x509 -in "$pki/connector-hospital-a.crt" -noout -text)
expect_contains "$x509" "Subject: CN = connector:hospital-a" "openssl x509 subject"
expect_contains "$x509" "TLS Web Client Authentication, TLS Web Server Authentication" "openssl x509 shows both EKUs"
# an agent's certificate is not a server: it cannot pose as a connector to another agent
expect_contains "$(verify agent-1 sslserver)" "unsuitable certificate purpose" "agent-1 as a server"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$ZG_TMP/conn-only" --connector c1 >/dev/null
[[ -f $ZG_TMP/conn-only/connector-c1.crt && ! -e $ZG_TMP/conn-only/agent-1.crt && ! -e $ZG_TMP/conn-only/relay.crt ]] ||
	fail "--connector alone: $(ls "$ZG_TMP/conn-only")"
step "a bad connector ID is refused, and nothing is written"
for bad in "" "hospital a" "a/b" "connector:x" "$(printf 'c%.0s' {1..64})" "ünï"; do
	if "$ZG_ROOT/scripts/gen-certs.sh" -d "$ZG_TMP/badconn" --connector "$bad" 2>"$ZG_TMP/err"; then fail "accepted connector ID '$bad'"; fi
	expect_contains "$(cat "$ZG_TMP/err")" "connector ID '$bad' must be 1-63 of" "bad connector ID '$bad' message"
done
[[ ! -e $ZG_TMP/badconn ]] || fail "a refused --connector run wrote $(ls "$ZG_TMP/badconn")"
if "$ZG_ROOT/scripts/gen-certs.sh" -d "$ZG_TMP/badconn" --connector 2>"$ZG_TMP/err"; then fail "accepted --connector without an ID"; fi
expect_contains "$(cat "$ZG_TMP/err")" "--connector needs an ID" "--connector without an ID"
echo "pass"
