#!/usr/bin/env bash
# zgate-connector without restarts (issue 22 hardening): certificate
# rotation and a relay's graceful shutdown (GOAWAY).
#
#   c1 agent-1 ── relay ns R ─┬─ zgate-relay A (UDP 4433, ops 8080)
#                             └─ zgate-relay B (UDP 4434, ops 8081), from step 5
#                                  └── connector ns K (zgate-connector; both relays
#                                       configured) ── on-prem ns P (10.20.0.10)
#
#   1. Baseline: agent-1 reaches the on-prem web server; the agent's status
#      names the connector's certificate serial S1 (from its start-up log).
#   2. The connector's certificate and key are rotated (gen-certs.sh with the
#      same CA, new key) and SIGHUP sent: the connector logs "TLS reloaded
#      (sighup)" with the new serial S2 (= openssl's serial of the new file),
#      tls_reload ok is audited and counted, its PID is unchanged; agent-1's
#      open inner session carries on with S1; agent-1 restarted opens a new
#      inner session and its status shows S2.
#   3. A key that does not match the certificate, then SIGHUP: the log names
#      the key file, tls_reload error is audited and counted, traffic flows,
#      and a new inner session (agent restarted) still gets S2. The good key
#      put back is reloaded by itself (file watch), with no signal.
#   4. A third certificate is written in place with no signal: the file
#      watch reloads it (serial S3) within a few seconds.
#   5. Relay A restarts gracefully (SIGTERM: GOAWAY, drain, exit; started
#      again) while B is down: the connector logs the GOAWAY, counts it,
#      reconnects, /ready polled every 50 ms stays 200 throughout, the relay
#      audits the connector's new tunnel with the serial S3 (the rotated
#      outer identity), and agent-1's traffic resumes.
#   6. With relay B up as well, B shuts down gracefully for good: /ready
#      stays 200 (A is up) past the 10 s replacement grace, and its body
#      names B as connecting. Then A shuts down for good too: /ready stays
#      200 while A is being replaced, and turns 503 once the grace is over.
# The relays run workers: 2 (ZG_E2E_WORKERS=N for another count); agent-1
# starts on another worker than the connector.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v openssl >/dev/null || skip "openssl missing"
source "$(dirname "$0")/connector_env.sh"

RELAY_B=$RELAY_K:4434
topo_init 1
conn_init
conn_pki agent-1
conn_policies
conn_yaml "$RELAY_K:4433" "$RELAY_B" <<C
reconnect_min: 200ms
reconnect_max: 2s
C
step "--check-config: this configuration loads; an audit file it cannot open, an agent's certificate (also at start) and -c, --config or --key without a value are named"
out=$("$CONNECTOR" -c "$D/connector.yaml" --check-config 2>&1) || fail "--check-config: $out"
expect_contains "$out" "configuration ok (2 relays, 1 prefixes" "--check-config"
# the audit file: one that run time could not open is refused now, and
# --check-config makes none
sed "s|^audit: .*|audit: $D/none/audit.log|" "$D/connector.yaml" >"$D/bad-audit.yaml"
rc=0; out=$("$CONNECTOR" -c "$D/bad-audit.yaml" --check-config 2>&1) || rc=$?
[[ $rc -eq 2 ]] || fail "an audit file in a missing directory: exit $rc, expected 2: $out"
expect_contains "$out" "audit: $D/none/audit.log: cannot open: No such file or directory" "bad audit file"
sed "s|^audit: .*|audit: $D/audit-new.log|" "$D/connector.yaml" >"$D/new-audit.yaml"
out=$("$CONNECTOR" -c "$D/new-audit.yaml" --check-config 2>&1) || fail "an audit file yet to be made: $out"
[[ ! -e $D/audit-new.log ]] || fail "--check-config made the audit file"
# an agent's certificate: the relay would take this client for an agent
sed -e "s|^cert: .*|cert: $D/pki/agent-1.crt|" -e "s|^key: .*|key: $D/pki/agent-1.key|" \
	"$D/connector.yaml" >"$D/agent-cert.yaml"
for mode in --check-config start; do
	args=(-c "$D/agent-cert.yaml"); [[ $mode == start ]] || args+=("$mode")
	rc=0; out=$(timeout 10 "$CONNECTOR" "${args[@]}" 2>&1) || rc=$?
	[[ $rc -eq 2 ]] || fail "an agent's certificate ($mode): exit $rc, expected 2: $out"
	expect_contains "$out" "cert $D/pki/agent-1.crt: identity \"agent-1\" is not connector:<id>; the relay treats this client as an agent" \
		"an agent's certificate ($mode)"
done
for a in -c --config --key; do
	rc=0; out=$("$CONNECTOR" --check-config "$a" 2>&1) || rc=$?
	[[ $rc -eq 2 ]] || fail "$a without a value: exit $rc, expected 2: $out"
	expect_contains "$out" "zgate-connector: $a needs a value (see --help)" "$a without a value"
done
psvc_start web http "$ONPREM" 8000 "$WEB_TEXT"
# A graceful shutdown drains for up to timeouts.drain_grace (30 s by
# default) while tunnels stay open: 4 s keeps the scenario short.
for x in A:4433:8080 B:4434:8081; do
	IFS=: read -r name port ops <<<"$x"
	f=$D/relay.yaml; [[ $name == B ]] && f=$D/relay-b.yaml
	cat >"$f" <<C
listen: "0.0.0.0:$port"
ops_listen: "127.0.0.1:$ops"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:$port/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
timeouts: { drain_grace: 4s }
workers: ${ZG_E2E_WORKERS:-2}
C
done
chmod 644 "$D/relay-b.yaml"
topo_relay
relay_b_start() {
	ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$RELAY" --config "$D/relay-b.yaml" \
		>>"$D/audit-b.log" 2>>"$D/relay-b.log" &
	BPID=$!
	cleanup "kill -9 $BPID 2>/dev/null; wait $BPID 2>/dev/null"
	wait_for 5 "relay B not ready: $(tail -5 "$D/relay-b.log" 2>/dev/null)" ip netns exec "$R" curl -sf 127.0.0.1:8081/ready
}

kready() { ip netns exec "$K" curl -s -o /dev/null -w '%{http_code}' --max-time 1 127.0.0.1:9201/ready; }
# poll_ready FILE: "<ms> <status>" of /ready every 50 ms into FILE until
# poll_stop (one process: nothing of it outlives the kill); RDPID
poll_ready() {
	ip netns exec "$K" python3 -u -c '
import sys, time, urllib.request, urllib.error
while True:
    try:
        code = urllib.request.urlopen("http://127.0.0.1:9201/ready", timeout=1).status
    except urllib.error.HTTPError as e:
        code = e.code
    except Exception as e:
        code = "error:" + type(e).__name__
    print(int(time.monotonic() * 1000), code, flush=True)
    time.sleep(0.05)
' >"$1" 2>/dev/null &
	RDPID=$!
	cleanup "kill $RDPID 2>/dev/null; wait $RDPID 2>/dev/null"
}
poll_stop() { kill "$RDPID" 2>/dev/null; wait "$RDPID" 2>/dev/null || true; }
# what openssl calls the serial, as the connector and the relay write it
# (lower case, without leading zero octets)
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f' | sed 's/^\(00\)*//'; }
agent_serial() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([c.get("cert_serial","") for c in d.get("connectors",[]) if c["id"]=="hospital-a"][0])' "$D/status1.json" 2>/dev/null; }
# wait_serial SERIAL WHAT: until agent-1's status shows the connector's SERIAL (5 s)
wait_serial() {
	local i
	for ((i = 0; i < 50; i++)); do [[ $(agent_serial) == "$1" ]] && return 0; sleep 0.1; done
	fail "$2: agent-1's status shows connector serial '$(agent_serial)', not $1"
}
agent_restart() {
	kill "${APID[1]}"; wait "${APID[1]}" 2>/dev/null || true
	rm -f "$D/status1.json" # the new agent's own, not the last one's
	topo_agent 1 agent-1
	wait_for 20 "agent-1 cannot fetch the on-prem page after its restart: $(onprem_web 2>&1)" web_ok
}
# rotate DIR: a new connector certificate and key from the same CA, in DIR
rotate() {
	mkdir -p "$1"
	cp "$D/pki/ca.crt" "$D/pki/ca.key" "$1/"
	"$ZG_ROOT/scripts/gen-certs.sh" -d "$1" --connector hospital-a >/dev/null
	chmod -R a+rX "$1"
}
CRT=$D/pki/connector-hospital-a.crt KEY=$D/pki/connector-hospital-a.key
# predicates for wait_for
a_reopened() { [[ $(conn_metric "zgate_connector_tunnel_opens_total{relay=\"$RELAY_K:4433\"}") -ge 2 ]]; }
both_up() { [[ $(conn_metric zgate_connector_tunnels_up) == 2 ]]; }
not_ready() { [[ $(kready) == 503 ]]; }

step "zgate-connector dials relay A (relay B is down for now)"
connector_start
kpid0=$KPID
S1=$(sed -n 's/.*certificate .* (serial \([0-9a-f]*\)).*/\1/p' "$D/connector.log" | head -1)
[[ -n $S1 && $S1 == "$(serial_of "$CRT")" ]] || fail "start-up serial '$S1', the file's $(serial_of "$CRT")"
topo_agent 1 agent-1
agent_elsewhere 1 agent-1 # with workers: the agent's and the connector's tunnels apart

step "1. baseline: agent-1 reaches on-prem; its status shows the connector's serial"
wait_for 20 "agent-1 cannot fetch the on-prem page: $(onprem_web 2>&1)" web_ok
wait_serial "$S1" "baseline"
echo "connector certificate serial $S1"

step "2. rotated certificate + SIGHUP: reloaded in place; new inner sessions get it"
rotate "$D/rot2"
S2=$(serial_of "$D/rot2/connector-hospital-a.crt")
[[ $S2 != "$S1" ]] || fail "gen-certs.sh made the same serial"
cp "$D/rot2/connector-hospital-a.key" "$KEY.new"; cp "$D/rot2/connector-hospital-a.crt" "$CRT.new"
mv "$KEY.new" "$KEY"; mv "$CRT.new" "$CRT"
kill -HUP "$KPID"
wait_for 5 "no 'TLS reloaded (sighup)' with serial $S2: $(tail -3 "$D/connector.log")" \
	grep -q "TLS reloaded (sighup): certificate $CRT (serial $S2)" "$D/connector.log"
grep "TLS reloaded (sighup)" "$D/connector.log" | tail -1 | sed 's/^.*TLS/TLS/'
[[ $KPID == "$kpid0" ]] && kill -0 "$KPID" || fail "the connector's process changed or exited"
audit_wait "$D/connector-audit.log" '"event":"tls_reload".*"result":"ok".*"trigger":"sighup"' ||
	fail "no tls_reload ok audited: $(grep tls_reload "$D/connector-audit.log")"
[[ $(conn_metric 'zgate_connector_tls_reloads_total{result="ok"}') == 1 ]] ||
	fail "tls_reloads_total ok: $(conn_metric 'zgate_connector_tls_reloads_total{result="ok"}')"
web_ok || fail "the open inner session broke on the reload: $(onprem_web 2>&1)"
[[ $(agent_serial) == "$S1" ]] || fail "the open inner session should still show $S1, shows $(agent_serial)"
sleep 1 # the file watch sees the same contents: no second reload
[[ $(grep -c "TLS reloaded" "$D/connector.log") == 1 ]] || fail "reloaded more than once: $(grep 'TLS re' "$D/connector.log")"
agent_restart
wait_serial "$S2" "the new inner session after the rotation"
grep -q "connector hospital-a: inner session open (certificate connector:hospital-a, serial $S2)" "$D/agent1.log" ||
	fail "agent-1's log does not show serial $S2"
echo "agent-1's new inner session: connector certificate serial $S2 (connector pid $KPID unchanged)"

step "3. a key that does not match + SIGHUP: kept, named, counted; traffic flows"
cp "$KEY" "$D/good.key"
cp "$D/pki/agent-1.key" "$KEY.new"; chmod a+r "$KEY.new"; mv "$KEY.new" "$KEY"
kill -HUP "$KPID"
wait_for 5 "no failed reload logged: $(tail -3 "$D/connector.log")" \
	grep -q "TLS reload failed (sighup), keeping the current certificate (serial $S2): key $KEY does not match certificate $CRT" "$D/connector.log"
grep "TLS reload failed (sighup)" "$D/connector.log" | tail -1 | sed 's/^.*TLS/TLS/'
audit_wait "$D/connector-audit.log" '"event":"tls_reload".*"result":"error".*"trigger":"sighup".*connector-hospital-a.key' ||
	fail "no tls_reload error audited: $(grep tls_reload "$D/connector-audit.log")"
[[ $(conn_metric 'zgate_connector_tls_reloads_total{result="error"}') == 1 ]] ||
	fail "tls_reloads_total error: $(conn_metric 'zgate_connector_tls_reloads_total{result="error"}')"
web_ok || fail "traffic stopped after a failed reload: $(onprem_web 2>&1)"
agent_restart
wait_serial "$S2" "a new inner session after the failed reload"
cp "$D/good.key" "$KEY.new"; mv "$KEY.new" "$KEY"
wait_for 5 "the good key put back was not reloaded by itself" \
	grep -q "TLS reloaded (file): certificate $CRT (serial $S2)" "$D/connector.log"
[[ $(conn_metric 'zgate_connector_tls_reloads_total{result="ok"}') == 2 ]] || fail "tls_reloads_total ok after the file reload"

step "4. a third certificate written in place, no signal: the file watch reloads it"
rotate "$D/rot3"
S3=$(serial_of "$D/rot3/connector-hospital-a.crt")
cat "$D/rot3/connector-hospital-a.key" >"$KEY"; cat "$D/rot3/connector-hospital-a.crt" >"$CRT"
wait_for 5 "the third certificate was not reloaded by itself: $(tail -3 "$D/connector.log")" \
	grep -q "TLS reloaded (file): certificate $CRT (serial $S3)" "$D/connector.log"
[[ $KPID == "$kpid0" ]] && kill -0 "$KPID" || fail "the connector's process changed or exited"
web_ok || fail "traffic after the file reload: $(onprem_web 2>&1)"

step "5. relay A restarts gracefully (GOAWAY) with B down: /ready stays 200, traffic resumes"
poll_ready "$D/ready5.txt"
sleep 0.3
start=$(date +%s%N)
kill -TERM "$RPID"; wait "$RPID" 2>/dev/null || true
stopped=$((($(date +%s%N) - start) / 1000000))
topo_relay
wait_for 20 "the connector did not reopen its tunnel to relay A" a_reopened
sleep 0.3
poll_stop
grep -q "relay $RELAY_K:4433: GOAWAY" "$D/connector.log" || fail "the connector did not log relay A's GOAWAY"
[[ $(conn_metric "zgate_connector_goaways_total{relay=\"$RELAY_K:4433\"}") -ge 1 ]] || fail "GOAWAY not counted"
n=$(wc -l <"$D/ready5.txt") bad=$(awk '$2 != 200' "$D/ready5.txt" | wc -l)
echo "relay A took $stopped ms to drain and exit; /ready polled $n times, $bad not 200"
[[ $n -ge 5 ]] || fail "/ready was polled only $n times"
[[ $bad == 0 ]] || fail "/ready was not 200 during relay A's graceful restart: $(awk '$2 != 200' "$D/ready5.txt" | head -3)"
wait_for 45 "agent-1 does not reach on-prem after relay A's restart: $(onprem_web 2>&1)" web_ok
echo "on-prem again $((($(date +%s%N) - start) / 1000000)) ms after relay A was told to stop"
python3 - "$D/audit.log" "$S3" <<'PY' || fail "relay A did not audit the connector's new tunnel with serial $S3"
import json, sys
f, serial = sys.argv[1:3]
ok = [d for d in (json.loads(l) for l in open(f) if l.startswith("{"))
      if d.get("event") == "session_open" and d.get("client") == "connector:hospital-a"]
print("relay A: connector tunnels opened with serials", [d.get("cert_serial") for d in ok])
sys.exit(0 if ok and ok[-1].get("cert_serial") == serial else 1)
PY

step "6. relay B up, then gone for good: /ready stays 200 while A is up; then A gone too"
relay_b_start
wait_for 10 "the connector has no tunnel to relay B" both_up
poll_ready "$D/ready6.txt"
kill -TERM "$BPID"; wait "$BPID" 2>/dev/null || true
sleep 11 # past the 10 s replacement grace
body=$(ip netns exec "$K" curl -s --max-time 1 127.0.0.1:9201/ready)
poll_stop
bad=$(awk '$2 != 200' "$D/ready6.txt" | wc -l)
echo "relay B gone for 11 s: /ready polled $(wc -l <"$D/ready6.txt") times, $bad not 200; body: $(tr '\n' '|' <<<"$body")"
[[ $bad == 0 ]] || fail "/ready dropped with relay A still up"
expect_contains "$body" "relay $RELAY_B: connecting" "/ready body"
expect_contains "$body" "relay $RELAY_K:4433: open" "/ready body"
kill -TERM "$RPID"; wait "$RPID" 2>/dev/null || true
start=$(date +%s%N) # relay A has closed the connector's tunnel
[[ $(kready) == 200 ]] || fail "/ready is not 200 while relay A is being replaced"
expect_contains "$(ip netns exec "$K" curl -s --max-time 1 127.0.0.1:9201/ready)" "replacing after GOAWAY" "/ready body"
wait_for 15 "/ready did not turn 503 after the grace" not_ready
ms=$((($(date +%s%N) - start) / 1000000))
echo "both relays gone: /ready 503 $ms ms after relay A closed the last tunnel"
[[ $ms -ge 9000 && $ms -le 12000 ]] || fail "/ready turned 503 after $ms ms, not at the end of the 10 s grace"
grep -q "relay $RELAY_K:4433: not replaced within 10 s of its GOAWAY" "$D/connector.log" || fail "no 'not replaced' warning"
[[ $KPID == "$kpid0" ]] && kill -0 "$KPID" || fail "the connector's process changed or exited"
step "the connector stops cleanly (exit 0; a sanitizer build reports nothing)"
kill -TERM "$KPID"
rc=0; wait "$KPID" || rc=$?
[[ $rc == 0 ]] || fail "the connector exited $rc: $(tail -5 "$D/connector.log")"
! grep -q "Sanitizer" "$D/connector.log" || fail "sanitizer report: $(grep -A5 Sanitizer "$D/connector.log" | head -20)"
pass
