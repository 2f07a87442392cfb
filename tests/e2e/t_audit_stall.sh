#!/usr/bin/env bash
# Issue 17.6: an audit reader that stops reading never stalls the data
# path. The relay (uid 65534, no capabilities) writes its audit trail into
# a FIFO whose reader (sleep) holds it open and never reads; a flood of
# denied packets fills the pipe and the relay's small audit buffer. Pings
# and TCP through the agent's tunnel keep working, /metrics counts the
# dropped lines, the relay log says so (not once per line); when a reader
# comes back the trail resumes with an audit_dropped line. Every session
# line carries the session's id, relay_start/relay_stop frame the trail.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
# a relay whose loop is stuck in a write must fail this test, not hang it
metrics() { ip netns exec "$R" curl -sf -m 5 127.0.0.1:8080/metrics; }
topo_init 1
topo_pki agent-1
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: no-udp, action: deny, destinations: ["198.18.0.10/32"], protocols: [udp] }
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
P
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
timeouts: { drain_grace: 1s }
audit:
  deny_per_second: 0   # every deny is a line: the flood below is all audit
  buffer_kib: 16
C
chmod 644 "$D"/*.yaml

step "the relay's stdout is a FIFO whose reader never reads"
mkfifo -m 600 "$D/audit.fifo" # root's: the relay cannot reopen it, shares O_NONBLOCK
sleep 600 <"$D/audit.fifo" &
HOLD=$!
cleanup "kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null"
ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$RELAY" --config "$D/relay.yaml" \
	>"$D/audit.fifo" 2>>"$D/relay.log" &
RPID=$!
cleanup "kill -9 $RPID 2>/dev/null; wait $RPID 2>/dev/null"
for _ in $(seq 50); do metrics >/dev/null 2>&1 && break; sleep 0.1; done
metrics >/dev/null || fail "relay not ready: $(tail -5 "$D/relay.log")"
grep -q 'audit trail on stdout (pipe' "$D/relay.log" || fail "audit output mode: $(grep 'audit trail' "$D/relay.log")"
[[ $(readlink "/proc/$HOLD/exe") == */sleep ]] || fail "\$! is not sleep"
topo_agent 1 agent-1
svc_start echo tcp-echo 198.18.0.10 7000

step "a flood of denied packets fills the pipe and the buffer"
flood() { # COUNT: UDP datagrams to 198.18.0.10 (routed into the tunnel, denied), one port each
	inc 1 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    try:
        s.sendto(b"x", ("198.18.0.10", 1024 + i % 60000))
    except OSError:
        pass  # an ICMP error from the refusal
' "$1"
}
flood 20000
for _ in $(seq 50); do
	m=$(metrics) || fail "/metrics does not answer: the relay's event loop is stuck"
	dropped=$(awk '$1 == "zgate_audit_lines_dropped_total" {print $2}' <<<"$m")
	((${dropped:-0} > 0)) && break
	flood 2000
done
echo "dropped so far: $dropped"
((${dropped:-0} > 0)) || fail "no audit line dropped: $(metrics | grep audit)"
grep -q "audit output is not keeping up" "$D/relay.log" || fail "drops not logged"

step "the tunnel keeps working while the audit pipe is full"
out=$(inc 1 ping -c 5 -i 0.2 -W 2 198.18.0.10) || fail "ping while the audit pipe is full: $out"
expect_contains "$out" "5 received" "ping"
out=$(inc 1 python3 "$ZG_ROOT/tests/e2e/svc.py" many 198.18.0.10 7000 20 65536) ||
	fail "TCP while the audit pipe is full: $out"
expect_contains "$out" "ok 20" "TCP echo"
flood 5000
inc 1 ping -c 3 -i 0.2 -W 2 198.18.0.10 >/dev/null || fail "ping after a second flood"
d2=$(metric zgate_audit_lines_dropped_total)
((d2 > dropped)) || fail "dropped lines not counted: $dropped then $d2"
n=$(grep -c "audit output is not keeping up" "$D/relay.log")
((n <= 3)) || fail "$n 'not keeping up' log lines: one per 10 s is the limit"
kill -0 $RPID || fail "relay died"

step "a reader comes back: what waited, then audit_dropped with the count"
timeout 60 cat "$D/audit.fifo" >"$D/audit.log" &
READER=$!
cleanup "kill $READER 2>/dev/null; wait $READER 2>/dev/null"
for _ in $(seq 100); do grep -q '"event":"audit_dropped"' "$D/audit.log" && break; sleep 0.1; done
grep -q '"event":"audit_dropped","count":[1-9][0-9]*,"since":"' "$D/audit.log" ||
	fail "no audit_dropped line: $(tail -3 "$D/audit.log")"
head -1 "$D/audit.log" | grep -q '"event":"relay_start","version":"[^"]*","listen":"0.0.0.0:4433","ops_listen":"0.0.0.0:8080","pid":'"$RPID"'}' ||
	fail "first line is not relay_start: $(head -1 "$D/audit.log")"
# the lines lost are exactly those counted: the audit_dropped counts add up
sum=$(grep -o '"event":"audit_dropped","count":[0-9]*' "$D/audit.log" | awk -F: '{s += $3} END {print s}')
d3=$(metric zgate_audit_lines_dropped_total)
[[ $sum == "$d3" ]] || fail "audit_dropped lines count $sum, /metrics $d3"

step "every line of the session carries its session_id"
sid=$(grep '"event":"session_open","client":"agent-1"' "$D/audit.log" | sed -n 's/.*"session_id":"\([0-9a-f]\{16\}\)"}$/\1/p')
[[ -n $sid ]] || fail "session_open without a session_id: $(grep session_open "$D/audit.log")"
out=$(inc 1 python3 "$ZG_ROOT/tests/e2e/svc.py" udp-query 198.18.0.10 53 x 2>&1) && fail "denied UDP answered: $out"
inc 1 python3 "$ZG_ROOT/tests/e2e/svc.py" many 198.18.0.10 7000 1 100 >/dev/null || fail "TCP after the stall"
for _ in $(seq 30); do grep -q '"event":"flow_allow".*"dport":7000' "$D/audit.log" && break; sleep 0.1; done
n=$(grep -cE '"event":"(flow_[a-z_]+|limit_hit|session_open)"' "$D/audit.log")
m=$(grep -E '"event":"(flow_[a-z_]+|limit_hit|session_open)"' "$D/audit.log" | grep -c "\"session_id\":\"$sid\"}\$")
echo "$n session lines, $m with session_id $sid"
((n > 100 && n == m)) || fail "$((n - m)) of $n session lines lack session_id $sid"

step "SIGTERM: session_close and relay_stop close the trail"
kill -TERM $RPID
for _ in $(seq 100); do kill -0 $RPID 2>/dev/null || break; sleep 0.1; done
kill -0 $RPID 2>/dev/null && fail "relay still running"
wait $RPID || fail "relay exit status $?"
wait $READER 2>/dev/null
grep -q "\"event\":\"session_close\",\"client\":\"agent-1\".*\"session_id\":\"$sid\"}" "$D/audit.log" ||
	fail "session_close without its session_id"
tail -1 "$D/audit.log" | grep -q '"event":"relay_stop","reason":"sigterm","uptime_ms":[0-9]*}' ||
	fail "last line is not relay_stop: $(tail -1 "$D/audit.log")"
pass
