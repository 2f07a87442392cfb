#!/usr/bin/env bash
# zgate-relay as it is deployed: uid 65534, every capability dropped, in a
# network namespace made here, with a service namespace behind it. Checks
# --check-config, /health /ready /metrics, tunnels and policy decisions
# (audited with rule ids), certificate refusals, SIGHUP reloads (valid and
# invalid), the SIGTERM drain, and a state file that does not load (kept
# aside as .bad.<time>, or left alone in a read-only directory).
source "$(dirname "$0")/lib.sh"
relay=$ZG_BIN/zgate-relay probe=$ZG_BIN/zgate-probe
[[ -x $relay && -x $probe ]] || fail "binaries not built"
[[ $(id -u) -eq 0 ]] || skip "needs root for network namespaces"
command -v curl >/dev/null || skip "curl missing"

ns=zgt-relay-$$ svc=zgt-svc-$$
ip netns add "$ns"; cleanup "ip netns del $ns"
ip netns add "$svc"; cleanup "ip netns del $svc"
ip -n "$ns" link set lo up; ip -n "$svc" link set lo up
ip link add zgtr$$ netns "$ns" type veth peer name zgts$$ netns "$svc"
ip -n "$ns" addr add 198.18.0.1/24 dev zgtr$$; ip -n "$ns" link set zgtr$$ up
ip -n "$svc" addr add 198.18.0.2/24 dev zgts$$; ip -n "$svc" link set zgts$$ up
ip -n "$svc" addr add 198.18.1.2/24 dev zgts$$   # "internal": policy does not allow it
ip -n "$ns" route add 198.18.1.0/24 dev zgtr$$
ip -n "$svc" addr add 169.254.169.254/32 dev lo   # decoy cloud metadata
ip -n "$ns" route add 169.254.169.254/32 dev zgtr$$
ip netns exec "$ns" sysctl -qw net.ipv4.ping_group_range="0 2147483647"

d=$ZG_TMP; chmod 755 "$d"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$d/pki" --test-set -c agent-1 -c agent-2 -c nobody-allowed -c agent-many >/dev/null
chmod -R a+rX "$d/pki"
cat >"$d/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - id: allow-svc
        action: allow
        destinations: ["198.18.0.0/24"]
  agent-2:
    rules:
      - id: allow-all
        action: allow
        destinations: ["0.0.0.0/0"]
  agent-many:
    rules:
P
# 600 separate addresses: more ranges than one advertisement (512) carries
for i in $(seq 0 599); do
	echo "      - { id: m$i, action: allow, destinations: [\"100.64.$((i / 100)).$((i % 100 * 2 + 1))/32\"] }"
done >>"$d/policy.yaml"
cat >"$d/relay.yaml" <<C
listen: "127.0.0.1:4433"
ops_listen: "127.0.0.1:8080"
tls:
  cert: $d/pki/relay.crt
  key: $d/pki/relay.key
  client_ca: $d/pki/ca.crt
uri_template: "https://localhost:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $d/policy.yaml
timeouts:
  drain_grace: 20s
C
chmod 644 "$d"/*.yaml

step "--check-config: good file exit 0, bad files exit 2 naming file:line and field"
out=$("$relay" --config "$d/relay.yaml" --check-config) || fail "good config refused"; expect_contains "$out" "configuration ok" "good config"
printf 'listen: "127.0.0.1:4433"\nbogus_key: 1\n' >"$d/bad.yaml"
rc=0; out=$("$relay" --config "$d/bad.yaml" --check-config 2>&1) || rc=$?
[[ $rc -eq 2 ]] || fail "unknown key: exit $rc, expected 2: $out"
expect_contains "$out" "$d/bad.yaml:2" "bad config position"
expect_contains "$out" "bogus_key" "bad config field"
out=$("$relay" --config "$d/relay.yaml" --tls-cert /nonexistent.crt --check-config 2>&1) && fail "missing cert accepted"
expect_contains "$out" "/nonexistent.crt" "missing cert"
echo "clients: [" >"$d/broken-policy.yaml"
out=$("$relay" --config "$d/relay.yaml" --policy "$d/broken-policy.yaml" --check-config 2>&1) && fail "broken policy accepted"
expect_contains "$out" "broken-policy.yaml" "broken policy"
# --check-config only reads the state file: it neither rewrites a good one
# (run as root, that would leave it root's) nor empties one it ignores
printf '# kept as written\nagent-1 10.100.0.7\n' >"$d/check.state"
printf 'not a state line\n' >"$d/corrupt.state"
for f in check corrupt; do
	cp "$d/$f.state" "$d/$f.orig"; ino=$(stat -c %i "$d/$f.state")
	out=$("$relay" --config "$d/relay.yaml" --workers 1 --state-file "$d/$f.state" --check-config 2>&1) ||
		fail "--check-config with the $f state file: $out"
	cmp -s "$d/$f.state" "$d/$f.orig" && [[ $(stat -c %i "$d/$f.state") == "$ino" ]] ||
		fail "--check-config rewrote the $f state file: $(cat "$d/$f.state")"
done
# ... and says what a start would do with the corrupt one (exit 0: a start serves)
expect_contains "$out" "state file $d/corrupt.state cannot be used ($d/corrupt.state:1: expected" "corrupt state file"
expect_contains "$out" "a start renames it to $d/corrupt.state.bad.<unix time>" "corrupt state file"
ls "$d"/corrupt.state.bad.* >/dev/null 2>&1 && fail "--check-config renamed the corrupt state file"
# captured first: grep -q would leave while the help is still being written (SIGPIPE)
out=$("$relay" --help) || fail "--help exit"
expect_contains "$out" "--check-config" "--help"
out=$("$relay" --version) || fail "--version exit"; expect_contains "$out" "zgate-relay" "--version"
for lib in "(commit " ngtcp2 nghttp3 wolfSSL lwIP libevent; do expect_contains "$out" "$lib" "--version"; done
rc=0; out=$("$relay" --no-such-flag 2>&1) || rc=$?
[[ $rc -eq 2 ]] || fail "unknown option: exit $rc, expected 2"
expect_contains "$out" "unknown option --no-such-flag (see --help)" "unknown option"

step "start as uid 65534 without capabilities; /health, /ready, /metrics"
ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$relay" --config "$d/relay.yaml" \
	>"$d/audit.log" 2>"$d/relay.log" &
pid=$!
cleanup "kill -9 $pid 2>/dev/null"
for _ in $(seq 50); do ip netns exec "$ns" curl -sf 127.0.0.1:8080/ready >/dev/null && break; sleep 0.1; done
[[ $(ip netns exec "$ns" curl -s 127.0.0.1:8080/ready) == ready ]] || fail "/ready: $(cat "$d/relay.log")"
[[ $(awk '/^CapEff:/ {print $2}' /proc/$pid/status) == 0000000000000000 ]] || fail "has capabilities"
[[ $(awk '/^Uid:/ {print $2}' /proc/$pid/status) == 65534 ]] || fail "not uid 65534"
ip netns exec "$ns" curl -sf 127.0.0.1:8080/health >/dev/null || fail "/health"
[[ $(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:8080/nope) == 404 ]] || fail "404"

p() { # CLIENT ARGS...
	local c=$1; shift
	$ZG_EXEC ip netns exec "$ns" "$probe" --relay 127.0.0.1:4433 --server-name localhost \
		--cert "$d/pki/$c.crt" --key "$d/pki/$c.key" --ca "$d/pki/ca.crt" "$@"
}

step "allowed destination: ping through the relay's ping socket"
out=$(p agent-1 --target 198.18.0.2 --count 3 --interval 50) || fail "ping failed: $out"
expect_contains "$out" "route 198.18.0.0-198.18.0.255" "split-tunnel route"
expect_contains "$out" "3 received" "replies"

step "denied destination: ICMP administratively prohibited, audited with the rule"
out=$(p agent-1 --target 198.18.1.2 --count 1 --timeout 2 2>&1) && fail "denied ping answered"
expect_contains "$out" "ICMP type 3 code 13" "prohibited"
audit_wait "$d/audit.log" '"event":"flow_deny".*"dst":"198.18.1.2".*"rule":"default"' || fail "deny not audited"

step "allow-all client: service reachable, cloud-metadata decoy never"
p agent-2 --target 198.18.1.2 --count 1 >/dev/null || fail "allow-all cannot reach 198.18.1.2"
out=$(p agent-2 --target 169.254.169.254 --count 1 --timeout 2 2>&1) && fail "decoy reachable"
out=$(p agent-2 --target 127.0.0.1 --count 1 --timeout 2 2>&1) && fail "relay loopback reachable"

step "scoped requests (C03): a prefix narrows the routes; a DNS name is resolved first"
out=$(p agent-2 --scope-target 198.18.0.0/25 --target 198.18.0.2 --count 1) || fail "scoped tunnel: $out"
expect_contains "$out" "route 198.18.0.0-198.18.0.127" "routes narrowed to the scope"
out=$(p agent-2 --scope-target 198.18.0.0/25 --target 198.18.1.2 --count 1 --timeout 2 2>&1) &&
	fail "destination outside the scope answered"
expect_contains "$out" "ICMP type 3 code 13" "outside the scope: prohibited (C19)"
out=$(p agent-2 --scope-target localhost 2>&1) || fail "DNS-name target refused: $out"
expect_contains "$out" "route 127.0.0.1-127.0.0.1" "DNS target scoped to its address"

step "client with no allowed destination: 403; bad certificates audited"
out=$(p nobody-allowed --count 1 --timeout 2 2>&1) && fail "403 expected"
expect_contains "$out" "HTTP 403" "403"
p expired --count 1 --timeout 2 >/dev/null 2>&1 && fail "expired certificate accepted"
grep -q '"event":"cert_rejected".*"reason":"expired"' "$d/audit.log" || fail "rejection not audited"
m=$(ip netns exec "$ns" curl -s 127.0.0.1:8080/metrics)
expect_contains "$m" 'zgate_handshake_failures_total{reason="expired"} 1' "metric: handshake failure"
expect_contains "$m" 'zgate_tunnel_refused_total{status="403"} 1' "metric: 403"
expect_contains "$m" 'zgate_pool_used{version="4"} 0' "refused clients consumed no address"
expect_contains "$m" 'zgate_policy_decisions_total{action="deny"}' "metric: decisions"

step "a client without ALPN h3 (C25): no_application_protocol, audited as handshake_failed"
out=$(p agent-1 --alpn h2 --count 1 --timeout 2 2>&1) && fail "ALPN h2 accepted"
expect_contains "$out" "alert 120" "refused with no_application_protocol (CRYPTO_ERROR 0x178)"
grep -q '"event":"handshake_failed".*"reason":"alpn"' "$d/audit.log" || fail "ALPN refusal not audited"
grep -q '"reason":"no_certificate"' "$d/audit.log" && fail "ALPN refusal audited as a certificate"
m=$(ip netns exec "$ns" curl -s 127.0.0.1:8080/metrics)
expect_contains "$m" 'zgate_handshake_failures_total{reason="alpn"} 1' "metric: alpn"

step "a policy of 600 separate ranges: advertised as at most 512 wider ones"
out=$(p agent-many 2>&1) || fail "agent-many refused: $out"
# besides the policy's ranges, the DNS service's address (issue 19)
expect_contains "$out" "route 10.100.0.1-10.100.0.1" "the DNS service's address"
nr=$(grep '^route ' <<<"$out" | grep -vcE '^route 10\.100\.0\.1-10\.100\.0\.1( |$)')
((nr >= 1 && nr <= 512)) || fail "$nr routes advertised"
expect_contains "$out" "route 100.64.0.1-" "first range kept"
grep -q "agent-many: the policy allows 600 separate ranges; advertised as $nr wider" "$d/relay.log" ||
	fail "no log line for the widened advertisement: $(grep agent-many "$d/relay.log")"

step "the same client again replaces its older tunnel, same address"
a1=$(p agent-1 | sed -n 's/^address //p')
a2=$(p agent-1 | sed -n 's/^address //p')
[[ -n $a1 && $a1 == "$a2" ]] || fail "address not stable: '$a1' then '$a2'"

step "SIGHUP: invalid policy keeps the old one; valid one changes new flows, tunnel stays"
ZG_EXEC=exec p agent-2 --target 198.18.0.2 --count 40 --interval 100 >"$d/long.out" 2>&1 &
long=$!; cleanup "kill $long 2>/dev/null"
sleep 0.5
cp "$d/policy.yaml" "$d/policy.good"
echo "clients: [" >"$d/policy.yaml"
kill -HUP $pid; sleep 0.3
grep -q "policy reload failed" "$d/relay.log" || fail "invalid reload not logged"
# log lines are for operators: no C function names below debug level
grep -q " info descriptor limit (RLIMIT_NOFILE)" "$d/relay.log" || fail "no descriptor limit line: $(head -3 "$d/relay.log")"
! grep -E " (info|warn|error) (fdlimit_apply|main|start|load_state): " "$d/relay.log" || fail "a function name in a log line"
grep -q '"event":"policy_reload".*"result":"error"' "$d/audit.log" || fail "invalid reload not audited"
sed 's#198.18.0.0/24#198.18.0.0/16#' "$d/policy.good" >"$d/policy.yaml"
kill -HUP $pid; sleep 0.3
p agent-1 --target 198.18.1.2 --count 1 >/dev/null || fail "reloaded policy not in force"
wait $long || fail "long-running tunnel broke during reloads: $(cat "$d/long.out")"

step "SIGTERM: /ready 503, GOAWAY, sessions drain, exit 0"
ZG_EXEC=exec p agent-2 --target 198.18.0.2 --count 20 --interval 100 >"$d/drain.out" 2>&1 &
long=$!; cleanup "kill $long 2>/dev/null"
sleep 0.5
kill -TERM $pid; sleep 0.2
[[ $(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:8080/ready) == 503 ]] || fail "/ready not 503 while draining"
out=$(p agent-1 --count 1 --timeout 2 2>&1) && fail "new tunnel accepted while draining"
wait $long || fail "draining tunnel broke: $(cat "$d/drain.out")"
for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "relay still running after the last tunnel ended"
wait $pid; rc=$?
[[ $rc -eq 0 ]] || fail "exit status $rc"
grep -q '"event":"session_close".*"reason":"client_closed"' "$d/audit.log" || fail "session close not audited with its reason"

step "the shipped examples/zgate-relay.yaml and examples/policy.yaml serve tunnels"
ip -n "$svc" addr add 203.0.113.10/24 dev zgts$$
ip -n "$ns" route add 203.0.113.0/24 dev zgtr$$
mkdir -p "$d/state"; chown 65534:65534 "$d/state"
ip netns exec "$ns" env ZGATE_TLS_CERT="$d/pki/relay.crt" ZGATE_TLS_KEY="$d/pki/relay.key" \
	ZGATE_TLS_CLIENT_CA="$d/pki/ca.crt" setpriv --reuid=65534 --regid=65534 --clear-groups \
	--no-new-privs --bounding-set=-all --inh-caps=-all "$relay" \
	--config "$ZG_ROOT/examples/zgate-relay.yaml" --policy "$ZG_ROOT/examples/policy.yaml" \
	--state-file "$d/state/ipam.state" >"$d/audit2.log" 2>"$d/relay2.log" &
pid=$!
cleanup "kill -9 $pid 2>/dev/null"
for _ in $(seq 50); do ip netns exec "$ns" curl -sf 127.0.0.1:8080/ready >/dev/null && break; sleep 0.1; done
out=$(p agent-1 --target 203.0.113.10 --count 2) || fail "example config: $out $(cat "$d/relay2.log")"
expect_contains "$out" "2 received" "ping with the example config"
kill -TERM $pid; wait $pid || fail "example relay exit status $?"
[[ -s $d/state/ipam.state ]] || fail "state file not written"

# run_state W LOG [FLAGS...]: the relay of relay.yaml as uid 65534 with W
# workers on $d/state/ipam.state, until /ready; its pid in $pid
run_state() {
	local w=$1 log=$2; shift 2
	ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$relay" --config "$d/relay.yaml" --workers "$w" "$@" \
		>/dev/null 2>"$log" &
	pid=$!
	cleanup "kill -9 $pid 2>/dev/null"
	for _ in $(seq 50); do ip netns exec "$ns" curl -sf 127.0.0.1:8080/ready >/dev/null && break; sleep 0.1; done
	[[ $(ip netns exec "$ns" curl -s 127.0.0.1:8080/ready) == ready ]] || fail "/ready with $w workers: $(cat "$log")"
}

step "a corrupt state file: kept as .bad.<time>, logged; the relay serves and writes a new one"
for w in 1 2; do
	rm -f "$d"/state/ipam.state*
	printf 'agent-1 10.100.0.77\nagent-2 not-an-address\n' >"$d/state/ipam.state"
	cp "$d/state/ipam.state" "$d/corrupt.orig"; chown 65534:65534 "$d/state/ipam.state"
	run_state "$w" "$d/relay-bad$w.log" --state-file "$d/state/ipam.state"
	bad=$(ls "$d"/state/ipam.state.bad.*) || fail "$w workers: no .bad copy: $(ls "$d/state"); $(cat "$d/relay-bad$w.log")"
	[[ $(wc -w <<<"$bad") -eq 1 && $(dirname "$bad") == "$d/state" ]] || fail "$w workers: copies: $bad"
	cmp -s "$bad" "$d/corrupt.orig" || fail "$w workers: the copy is not the old file: $(cat "$bad")"
	grep -qF "state file $d/state/ipam.state could not be used ($d/state/ipam.state:2: \"not-an-address\" is not an IP address): moved to $bad" \
		"$d/relay-bad$w.log" || fail "$w workers: not logged as expected: $(cat "$d/relay-bad$w.log")"
	a=$(p agent-1 --target 198.18.0.2 --count 1 | sed -n 's/^address //p') || fail "$w workers: no tunnel"
	[[ -n $a ]] || fail "$w workers: no address"
	kill -TERM $pid; wait $pid || fail "$w workers: exit status $?"
	grep -qx "agent-1 ${a%/*}" "$d/state/ipam.state" || fail "$w workers: new state file: $(cat "$d/state/ipam.state")"
	cmp -s "$bad" "$d/corrupt.orig" || fail "$w workers: the copy changed"
	echo "$w workers: copy $(basename "$bad"), new state file: $(grep -v '^#' "$d/state/ipam.state")"
done

step "saves that fail (directory made read-only): counted, logged once, and when they work again"
for w in 1 2; do
	rm -rf "$d/wstate"; mkdir "$d/wstate"; chown 65534:65534 "$d/wstate"
	run_state "$w" "$d/relay-save$w.log" --state-file "$d/wstate/ipam.state"
	chown root:root "$d/wstate"; chmod 755 "$d/wstate"   # uid 65534 cannot write in it now
	p agent-1 --target 198.18.0.2 --count 1 >/dev/null || fail "$w workers: no tunnel"
	p agent-2 --target 198.18.0.2 --count 1 >/dev/null || fail "$w workers: no tunnel"
	sleep 1.2   # the master saves within a tick (1 s) of a change
	n=$(ip netns exec "$ns" curl -s 127.0.0.1:8080/metrics | awk '$1 == "zgate_state_save_errors_total" { print $2 }')
	[[ -n $n ]] && ((n >= 1)) || fail "$w workers: zgate_state_save_errors_total '$n' after failed saves"
	[[ $(grep -c "$d/wstate/.*the relay goes on serving and tries again at the next change" "$d/relay-save$w.log") -eq 1 ]] ||
		fail "$w workers: the failure is not logged once: $(cat "$d/relay-save$w.log")"
	chown 65534:65534 "$d/wstate"
	p agent-many >/dev/null || fail "$w workers: no tunnel for agent-many"
	sleep 1.2
	grep -qE "state file $d/wstate/ipam.state saved again, after [0-9]+ saves that failed" "$d/relay-save$w.log" ||
		fail "$w workers: the recovery is not logged: $(cat "$d/relay-save$w.log")"
	grep -q '^agent-many ' "$d/wstate/ipam.state" || fail "$w workers: state file: $(cat "$d/wstate/ipam.state")"
	kill -TERM $pid; wait $pid || fail "$w workers: exit status $?"
	echo "$w workers: $n failed saves counted, then saved again"
done

step "a corrupt state file that cannot be moved (read-only directory): serves, never writes it"
mkdir "$d/rostate"; chmod 755 "$d/rostate"   # root's: uid 65534 cannot rename in it
cp "$d/corrupt.orig" "$d/rostate/ipam.state"; chown 65534:65534 "$d/rostate/ipam.state"
ino=$(stat -c %i "$d/rostate/ipam.state")
run_state 1 "$d/relay-ro.log" --state-file "$d/rostate/ipam.state"
grep -qF "state file $d/rostate/ipam.state could not be used ($d/rostate/ipam.state:2: " "$d/relay-ro.log" &&
	grep -qF "cannot be moved aside ($d/rostate/ipam.state: cannot rename it to $d/rostate/ipam.state.bad." "$d/relay-ro.log" &&
	grep -qF "Permission denied): left as it is and not written while the relay runs" "$d/relay-ro.log" ||
	fail "read-only directory: not logged as expected: $(cat "$d/relay-ro.log")"
p agent-1 --target 198.18.0.2 --count 1 >/dev/null || fail "read-only directory: no tunnel"
kill -TERM $pid; wait $pid || fail "read-only directory: exit status $?"
cmp -s "$d/rostate/ipam.state" "$d/corrupt.orig" && [[ $(stat -c %i "$d/rostate/ipam.state") == "$ino" ]] ||
	fail "read-only directory: the state file changed"
! grep -q "cannot create a temporary file" "$d/relay-ro.log" || fail "read-only directory: saves attempted"
echo PASS
