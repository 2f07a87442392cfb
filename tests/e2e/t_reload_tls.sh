#!/usr/bin/env bash
# Issue 18.1/18.2: the relay's TLS files reloaded while tunnels are open.
# (a) The relay's certificate and key, mounted as Kubernetes mounts a Secret
#     (tls.crt -> ..data/tls.crt, ..data -> ..<version>), are replaced by an
#     atomic ..data swap with a new key and a certificate from a new CA: no
#     signal, agent-1's tunnel stays up and its ping goes on, a new
#     zgate-probe trusting only the new CA gets through and one trusting
#     only the old CA is refused; the expiry metric follows the new file.
#     A broken key file keeps the certificate in force (tls_reload error).
# (b) agent-1 revoked (gen-certs.sh -r writes a new ca.crl over tls.crl):
#     its open tunnel is closed within 2 s (session_close reason revoked),
#     its reconnections are refused (cert_rejected revoked), agent-2 goes on.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
probe=$ZG_BIN/zgate-probe
[[ -x $probe ]] || fail "$probe not built"
topo_init 3
topo_pki agent-1 agent-2 probe-1
# the new CA and relay certificate (new key, 100 days), made beforehand
mkdir -p "$D/pki2"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/pki2/ca.key" 2>/dev/null
openssl req -x509 -new -key "$D/pki2/ca.key" -subj "/CN=zgate CA 2" -days 365 \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$D/pki2/ca.crt" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/pki2/relay.key" 2>/dev/null
openssl req -new -key "$D/pki2/relay.key" -subj "/CN=relay.test" -out "$D/pki2/relay.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:relay.test\n' >"$D/pki2/ext"
openssl x509 -req -in "$D/pki2/relay.csr" -CA "$D/pki2/ca.crt" -CAkey "$D/pki2/ca.key" -CAcreateserial \
	-days 100 -extfile "$D/pki2/ext" -out "$D/pki2/relay.crt" 2>/dev/null
cat "$D/pki/ca.crt" "$D/pki2/ca.crt" >"$D/both-ca.crt" # what the agents trust
# the Secret-like mount
tls=$D/tls
mkdir -p "$tls/..v1"
cp "$D/pki/relay.crt" "$tls/..v1/tls.crt"; cp "$D/pki/relay.key" "$tls/..v1/tls.key"
ln -s ..v1 "$tls/..data"; ln -s ..data/tls.crt "$tls/tls.crt"; ln -s ..data/tls.key "$tls/tls.key"
chmod -R a+rX "$tls" "$D/pki2" "$D/both-ca.crt"
swap() { # NEWDIR CERT KEY: Kubernetes' atomic update
	mkdir "$tls/$1"; cp "$2" "$tls/$1/tls.crt"; cp "$3" "$tls/$1/tls.key"; chmod -R a+rX "$tls/$1"
	ln -s "$1" "$tls/..data_tmp"; mv -T "$tls/..data_tmp" "$tls/..data"
}
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1: { rules: [ { id: saas, action: allow, destinations: ["198.18.0.0/24"] } ] }
  agent-2: { rules: [ { id: saas2, action: allow, destinations: ["198.18.0.0/24"] } ] }
  probe-1: { rules: [ { id: probe, action: allow, destinations: ["198.18.0.0/24"] } ] }
P
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $tls/tls.crt, key: $tls/tls.key, client_ca: $D/pki/ca.crt, crl: $D/pki/ca.crl }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
C
topo_relay
topo_agent 1 agent-1 --ca "$D/both-ca.crt"
topo_agent 2 agent-2 --ca "$D/both-ca.crt"
run_probe() { # CA: one probe tunnel from client namespace 3, 2 pings
	ip netns exec "${C[3]}" "$probe" --relay 192.168.83.1:4433 --server-name relay.test \
		--cert "$D/pki/probe-1.crt" --key "$D/pki/probe-1.key" --ca "$1" \
		--target 198.18.0.10 --count 2 --interval 100 2>&1
}
expiry_before=$(metric zgate_tls_cert_expiry_timestamp_seconds)
out=$(run_probe "$D/pki/ca.crt") || fail "probe before the rotation: $out"

step "(a) relay certificate and key rotated by a ..data swap, no signal"
ip netns exec "${C[1]}" ping -i 0.1 -c 40 -W 1 198.18.0.10 >"$D/ping1.out" 2>&1 &
ping1=$!
cleanup "kill $ping1 2>/dev/null; wait $ping1 2>/dev/null"
sleep 1
swap ..v2 "$D/pki2/relay.crt" "$D/pki2/relay.key"
for _ in $(seq 40); do grep -q '"event":"tls_reload","result":"ok"' "$D/audit.log" && break; sleep 0.05; done
grep -q '"event":"tls_reload","result":"ok","trigger":"file"' "$D/audit.log" || fail "no tls_reload ok: $(grep tls_reload "$D/audit.log")"
[[ $(metric 'zgate_tls_reloads_total{result="ok"}') == 1 ]] || fail "tls reloads ok: $(metric 'zgate_tls_reloads_total{result="ok"}')"
expiry_after=$(metric zgate_tls_cert_expiry_timestamp_seconds)
want=$(date -d "$(openssl x509 -in "$D/pki2/relay.crt" -noout -enddate | cut -d= -f2)" +%s)
[[ $expiry_after == "$want" && $expiry_after != "$expiry_before" ]] ||
	fail "expiry metric $expiry_after (before $expiry_before), the new certificate ends $want"
out=$(run_probe "$D/pki2/ca.crt") || fail "a probe trusting the new CA: $out"
expect_contains "$out" "2 sent, 2 received" "probe with the new CA"
out=$(run_probe "$D/pki/ca.crt") && fail "a probe trusting only the old CA got through: $out"
echo "old-CA probe refused: $(echo "$out" | tail -1)"
wait "$ping1" || true
received=$(awk '/packets transmitted/ {print $4}' "$D/ping1.out")
echo "agent-1's ping across the rotation: $(grep 'packets transmitted' "$D/ping1.out")"
[[ ${received:-0} -ge 38 ]] || fail "agent-1's ping lost packets across the rotation: $(tail -2 "$D/ping1.out")"
grep -q '"event":"session_close","client":"agent-' "$D/audit.log" && fail "an agent's tunnel closed in the rotation: $(grep session_close "$D/audit.log")"

step "(a) a broken key keeps the certificate in force"
swap ..v3 "$D/pki2/relay.crt" "$D/pki/agent-1.key"
for _ in $(seq 40); do [[ $(metric 'zgate_tls_reloads_total{result="error"}') == 1 ]] && break; sleep 0.05; done
[[ $(metric 'zgate_tls_reloads_total{result="error"}') == 1 ]] || fail "the broken key was not reported"
grep -q '"event":"tls_reload","result":"error","trigger":"file","reason":"key '"$tls"'/tls.key does not match certificate' "$D/audit.log" ||
	fail "tls_reload error audit: $(grep tls_reload "$D/audit.log")"
grep -q "TLS reload failed (file), keeping the current certificates: key $tls/tls.key" "$D/relay.log" || fail "no log line naming the key"
out=$(run_probe "$D/pki2/ca.crt") || fail "probe after the broken key: $out"
[[ $(metric zgate_tls_cert_expiry_timestamp_seconds) == "$want" ]] || fail "expiry metric changed on a failed reload"
swap ..v4 "$D/pki2/relay.crt" "$D/pki2/relay.key" # repaired
for _ in $(seq 40); do [[ $(metric 'zgate_tls_reloads_total{result="ok"}') == 2 ]] && break; sleep 0.05; done

step "(b) agent-1 revoked: its open tunnel closes within 2 s"
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-1 ping before the revocation"
t0=$(date +%s%N)
"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki" -r agent-1 >/dev/null
for _ in $(seq 40); do grep -q '"event":"session_close","client":"agent-1"' "$D/audit.log" && break; sleep 0.05; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q '"event":"session_close","client":"agent-1".*"reason":"revoked"' "$D/audit.log" ||
	fail "agent-1 not closed as revoked: $(grep session_close "$D/audit.log")"
echo "agent-1's tunnel closed $ms ms after the new CRL"
[[ $ms -le 2000 ]] || fail "agent-1's tunnel closed only after $ms ms"
[[ $(metric 'zgate_reload_disconnects_total{reason="revoked"}') == 1 ]] || fail "revoked disconnect metric"

step "(b) agent-1 cannot reconnect; agent-2 untouched"
sleep 2
grep -q '"event":"cert_rejected","reason":"revoked","peer":"192.168.81.2' "$D/audit.log" ||
	fail "agent-1's reconnects not refused as revoked: $(grep cert_rejected "$D/audit.log")"
[[ $(grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log") == 1 ]] || fail "agent-1 got a new tunnel"
inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && fail "agent-1 still reaches 198.18.0.10"
inc 2 ping -c 2 -W 2 198.18.0.10 >/dev/null || fail "agent-2 cannot ping after agent-1's revocation"
grep -q '"event":"session_close","client":"agent-2"' "$D/audit.log" && fail "agent-2's tunnel closed"
[[ $(grep -c '"event":"session_open","client":"agent-2"' "$D/audit.log") == 1 ]] || fail "agent-2 reconnected"

step "SIGHUP reloads too"
kill -HUP "$RPID"
for _ in $(seq 40); do grep -q '"event":"tls_reload","result":"ok","trigger":"sighup"' "$D/audit.log" && break; sleep 0.05; done
grep -q '"event":"tls_reload","result":"ok","trigger":"sighup"' "$D/audit.log" || fail "no tls_reload on SIGHUP"
inc 2 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-2 after SIGHUP"
pass
