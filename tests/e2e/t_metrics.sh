#!/usr/bin/env bash
# Issue 17.5: /metrics of a live relay is true and complete. After known
# traffic (one agent, five TCP flows, a malformed CONNECT-IP request, a
# client allowed nothing), the counters say exactly that; the histograms
# count the handshake and the flows' setup; zgate_build_info names the
# commit built; process_*_fds match /proc; and promtool (Debian's
# prometheus package) accepts the whole exposition, IPv6 pool included.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
PROBE=$ZG_BIN/zgate-probe
[[ -x $PROBE ]] || fail "zgate-probe not built"
command -v promtool >/dev/null || fail "promtool missing: install Debian's prometheus package (make deps)"

topo_init 1
topo_pki agent-1 nobody
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp] }
P
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
pool: { ipv4: 10.100.0.0/24, ipv6: "fd00:100::/64" }
C
topo_relay
p() { # CLIENT ARGS...: the probe, from the relay's namespace
	local c=$1; shift
	ip netns exec "$R" "$PROBE" --relay 127.0.0.1:4433 --server-name relay.test \
		--cert "$D/pki/$c.crt" --key "$D/pki/$c.key" --ca "$D/pki/ca.crt" "$@"
}

step "promtool accepts the exposition of an idle relay"
metrics >"$D/m0.txt" || fail "no /metrics"
promtool check metrics <"$D/m0.txt" >"$D/promtool0.out" 2>&1 || fail "promtool: $(cat "$D/promtool0.out")"
[[ $(metric 'zgate_quic_handshake_seconds_count') == 0 ]] || fail "handshakes before any client"

step "one agent, five TCP flows: counted once each, setup times in the histogram"
topo_agent 1 agent-1
svc_start echo tcp-echo 198.18.0.10 5005
out=$(inc 1 $SVC many 198.18.0.10 5005 5 1000) || fail "flows: $out"
[[ $out == "ok 5" ]] || fail "flows: $out"
[[ $(metric 'zgate_flows_opened_total{proto="tcp"}') == 5 ]] || fail "flows opened: $(metrics | grep flows_opened)"
[[ $(metric 'zgate_flow_setup_seconds_count') == 5 ]] || fail "setup histogram: $(metrics | grep flow_setup)"
[[ $(metric 'zgate_flow_setup_seconds_bucket{le="+Inf"}') == 5 ]] || fail "+Inf bucket"
[[ $(metric 'zgate_flow_setup_seconds_bucket{le="10"}') == 5 ]] || fail "a loopback connect took over 10 s"
[[ $(metric 'zgate_quic_handshake_seconds_count') == 1 ]] || fail "handshake histogram: $(metrics | grep handshake_seconds)"
[[ $(metric 'zgate_quic_connections_accepted_total') == 1 ]] || fail "QUIC accepted"
[[ $(metric 'zgate_bytes_total{direction="up"}') -ge 5000 ]] || fail "bytes up: $(metrics | grep bytes_total)"
[[ $(metric 'zgate_bytes_total{direction="down"}') -ge 5000 ]] || fail "bytes down"
[[ $(metric 'zgate_packets_total{direction="up"}') -gt 0 ]] || fail "packets up: $(metrics | grep packets_total)"
[[ $(metric 'zgate_packets_total{direction="down"}') -gt 0 ]] || fail "packets down"
[[ $(metric 'zgate_pool_used{version="6"}') == 1 ]] || fail "IPv6 pool: $(metrics | grep pool_)"

step "a request the relay cannot parse: 400, counted (issue 17.5: it never was)"
out=$(p agent-1 --template "https://relay.test:4433/elsewhere/{target}/{ipproto}/" --timeout 3 2>&1) &&
	fail "malformed request admitted: $out"
expect_contains "$out" "HTTP 400" "400"
[[ $(metric 'zgate_tunnel_refused_total{status="400"}') == 1 ]] || fail "400 not counted: $(metrics | grep tunnel_refused)"

step "a client allowed nothing: 403, counted once"
out=$(p nobody --timeout 3 2>&1) && fail "nobody admitted: $out"
expect_contains "$out" "HTTP 403" "403"
[[ $(metric 'zgate_tunnel_refused_total{status="403"}') == 1 ]] || fail "403: $(metrics | grep tunnel_refused)"
[[ $(metric 'zgate_quic_handshake_seconds_count') == 3 ]] || fail "handshakes of the two probes"

step "zgate_build_info names this build; process_*_fds match /proc"
m=$(metrics)
# the commit the binary was built from, as its --version says (the build, not
# the tree now: they differ when the tree moved on after the build)
ver=$("$RELAY" --version) || fail "--version"
commit=$(sed -n '1s/.*(commit \(.*\)).*/\1/p' <<<"$ver")
[[ -n $commit ]] || fail "no commit in --version: $ver"
expect_contains "$m" "zgate_build_info{version=\"" "build_info"
expect_contains "$m" "commit=\"$commit\"} 1" "build_info commit"
max=$(awk '/^Max open files/ {print $4}' "/proc/$RPID/limits")
[[ $(metric process_max_fds) == "$max" ]] || fail "process_max_fds $(metric process_max_fds), limit $max"
n=$(metric process_open_fds)
# the process that serves the scrape; with workers (a master and worker
# processes) the figure is the largest worker's
procs=$(pgrep -P "$RPID" || true)
procs=${procs:-$RPID}
have=0
for p in $procs; do c=$(ls "/proc/$p/fd" | wc -l); ((c > have)) && have=$c; done
# the scrape's own connection is open while the relay counts
((n >= have - 1 && n <= have + 1)) || fail "process_open_fds $n, /proc has $have ($procs)"

step "promtool accepts the exposition after traffic"
metrics >"$D/m1.txt" || fail "no /metrics"
promtool check metrics <"$D/m1.txt" >"$D/promtool1.out" 2>&1 || fail "promtool: $(cat "$D/promtool1.out")"
grep -q 'reason="all"' "$D/m1.txt" && fail "a label that sums the others"
grep -q 'direction="\(in\|out\)"' "$D/m1.txt" && fail "two direction vocabularies"
pass
