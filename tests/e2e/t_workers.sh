#!/usr/bin/env bash
# workers: 2 (issue 21, target 3): the relay, as uid 65534 without
# capabilities, runs a master and two worker processes on one UDP port.
# Four agents connect and each reaches its service; /metrics is one
# relay's (the workers' figures merged: 4 sessions, 2 workers running);
# the audit trail is one stream of whole JSON lines with one relay_start;
# the admin endpoint lists every worker's sessions and closes a session
# wherever it is. A client that connects again (zgate-probe with agent-1's
# certificate, six times: it lands on either worker) replaces its older
# tunnel each time, and agent-1 keeps one session. SIGHUP reloads the
# policy in every worker with one policy_reload line. A worker killed with
# SIGKILL is restarted and its agents come back; SIGTERM drains and stops
# the master and both workers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v curl >/dev/null || skip "curl missing"
topo_init 4
topo_pki agent-1 agent-2 agent-3 agent-4
policy() { # RULE-FOR-AGENT-2
	{
		printf 'version: 1\ndefault_action: deny\nclients:\n'
		for i in 1 3 4; do
			printf '  agent-%s:\n    rules:\n      - { id: svc, action: allow, destinations: ["198.18.0.0/24"] }\n' "$i"
		done
		printf '  agent-2:\n    rules:\n      - %s\n' "$1"
	} >"$D/policy.yaml.new"
	mv "$D/policy.yaml.new" "$D/policy.yaml"
}
policy '{ id: svc, action: allow, destinations: ["198.18.0.0/24"] }'
TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
mkdir -p "$D/secret" && chmod 755 "$D/secret"
printf '%s\n' "$TOKEN" >"$D/secret/admin.token"
chown 65534:65534 "$D/secret/admin.token"; chmod 0400 "$D/secret/admin.token"
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
admin: { token_file: $D/secret/admin.token }
workers: 2
timeouts: { drain_grace: 3s }
C
admin() { # METHOD PATH: the status; the body in $D/body
	ip netns exec "$R" curl -s -o "$D/body" -w '%{http_code}' -X "$1" \
		-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8080$2"
}
workers_of() { pgrep -P "$1" | sort -n | tr '\n' ' '; }
sessions_of() { # CLIENT: rows of the admin list
	admin GET /admin/sessions >/dev/null
	python3 -c 'import json,sys; print(sum(1 for s in json.load(open(sys.argv[1])) if s["client"] == sys.argv[2]))' \
		"$D/body" "$1"
}
wait_metric() { # NAME VALUE
	local k
	for k in $(seq 100); do [[ $(metric "$1") == "$2" ]] && return 0; sleep 0.1; done
	fail "$1 is $(metric "$1"), expected $2"
}
all_reach() {
	local i
	for i in 1 2 3 4; do
		inc "$i" ping -c 1 -W 3 198.18.0.10 >/dev/null || fail "agent-$i cannot reach 198.18.0.10"
	done
}

step "check-config names the processes"
out=$(ip netns exec "$R" "$RELAY" --config "$D/relay.yaml" --check-config 2>&1) || fail "check-config: $out"
expect_contains "$out" "processes     2 workers and a master" "check-config"

step "a master and two workers, unprivileged, on one port; four agents reach their service"
topo_relay
for i in 1 2 3 4; do topo_agent "$i" "agent-$i"; done
w=$(workers_of "$RPID")
echo "master $RPID, workers $w"
[[ $(wc -w <<<"$w") -eq 2 ]] || fail "expected 2 workers, have: $w"
w0=$(worker_pid "$RPID" 0) && w1=$(worker_pid "$RPID" 1) || fail "the workers are not named zgate-relay:w0/w1: $(for p in $w; do cat /proc/$p/comm; done)"
[[ " $w " == *" $w0 "* && " $w " == *" $w1 "* && $w0 != "$w1" ]] || fail "worker names: w0 $w0, w1 $w1, workers $w"
echo "ps names them: $(ps -o pid=,comm= -p "$w0,$w1" | tr -s ' \n' ' ')"
for p in $RPID $w; do
	[[ $(awk '/^Uid:/{print $2}' "/proc/$p/status") == 65534 ]] || fail "process $p is not uid 65534"
	[[ $(awk '/^CapEff:/{print $2}' "/proc/$p/status") == 0000000000000000 ]] || fail "process $p has capabilities"
done
[[ $(ip netns exec "$R" ss -Hulnp 'sport = :4433' | wc -l) -eq 2 ]] ||
	fail "expected two UDP sockets on port 4433: $(ip netns exec "$R" ss -Hulnp 'sport = :4433')"
all_reach
grep 'worker [01]: serving' "$D/relay.log"

step "/metrics is the relay's: the workers' figures merged"
wait_metric zgate_sessions 4
[[ $(metric zgate_workers) == 2 && $(metric zgate_workers_running) == 2 ]] ||
	fail "workers $(metric zgate_workers), running $(metric zgate_workers_running)"
[[ $(metric zgate_worker_metrics_missing) == 0 ]] || fail "a worker's figures are missing"
metrics | grep -c '^zgate_build_info' | grep -qx 1 || fail "build info twice"
metrics | grep -E '^zgate_(sessions|workers|pool_used)' || true

step "one audit trail of whole lines, one relay_start, every session_open"
audit_wait "$D/audit.log" '"event":"session_open"' 3 4 || fail "session_open lines: $(grep -c session_open "$D/audit.log")"
[[ $(grep -c '"event":"relay_start"' "$D/audit.log") -eq 1 ]] || fail "relay_start lines: $(grep -c relay_start "$D/audit.log")"
python3 - "$D/audit.log" <<'PY' || fail "the audit trail has a broken line"
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    json.loads(line)
PY

step "the admin endpoint lists every worker's sessions and closes one wherever it is"
[[ $(admin GET /admin/sessions) == 200 ]] || fail "list: $(cat "$D/body")"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$D/body")
[[ $n -eq 4 ]] || fail "the list has $n sessions: $(cat "$D/body")"
[[ $(admin DELETE /admin/sessions/agent-3) == 200 ]] || fail "close agent-3: $(cat "$D/body")"
audit_wait "$D/audit.log" '"event":"session_close","client":"agent-3".*"reason":"admin"' ||
	fail "agent-3's close not audited"
[[ $(admin DELETE /admin/sessions/nobody) == 404 ]] || fail "close of nobody: $(cat "$D/body")"
wait_metric zgate_sessions 4 # agent-3 reconnects by itself

step "a client connecting again replaces its older tunnel, whichever worker has it"
probe=$ZG_BIN/zgate-probe
for k in 1 2 3 4 5 6; do
	before=$(grep -c '"event":"session_close","client":"agent-1".*"reason":"replaced"' "$D/audit.log" || true)
	out=$(inc 1 "$probe" --relay 192.168.81.1:4433 --server-name relay.test --cert "$D/pki/agent-1.crt" \
		--key "$D/pki/agent-1.key" --ca "$D/pki/ca.crt" --target 198.18.0.10 --count 1 --quiet 2>&1) ||
		fail "probe $k as agent-1: $out"
	audit_wait "$D/audit.log" '"event":"session_close","client":"agent-1".*"reason":"replaced"' 3 $((before + 1)) ||
		fail "probe $k: no older agent-1 tunnel was replaced"
	wait_metric zgate_sessions 4 # the agent's tunnel is back, once
done
for k in $(seq 50); do [[ $(sessions_of agent-1) == 1 ]] && break; sleep 0.1; done
[[ $(sessions_of agent-1) == 1 ]] || fail "agent-1 has $(sessions_of agent-1) sessions"
echo "replaced on the other worker: $(grep -c 'a newer tunnel on another worker replaces' "$D/relay.log" || true) of 6"
[[ $(metric zgate_sessions_replaced_total) -ge 6 ]] || fail "zgate_sessions_replaced_total $(metric zgate_sessions_replaced_total)"
inc 1 ping -c 1 -W 3 198.18.0.10 >/dev/null || fail "agent-1 after the probes"

step "SIGHUP: every worker reloads the policy, one policy_reload line"
policy '{ id: nothing, action: allow, destinations: ["198.18.9.0/24"] }'
kill -HUP "$RPID"
wait_metric 'zgate_policy_reloads_total{result="ok"}' 1 # the relay's one reload
for k in $(seq 30); do [[ $(grep -c 'worker [01]: policy reloaded' "$D/relay.log") -eq 2 ]] && break; sleep 0.1; done
[[ $(grep -c 'worker [01]: policy reloaded' "$D/relay.log") -eq 2 ]] || fail "not every worker reloaded: $(grep 'policy reloaded' "$D/relay.log")"
audit_wait "$D/audit.log" '"event":"policy_reload","result":"ok"' || fail "no policy_reload line"
sleep 0.3
[[ $(grep -c '"event":"policy_reload"' "$D/audit.log") -eq 1 ]] || fail "policy_reload lines: $(grep -c policy_reload "$D/audit.log")"
inc 2 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && fail "agent-2 still reaches 198.18.0.10"
inc 1 ping -c 1 -W 3 198.18.0.10 >/dev/null || fail "agent-1 after the reload"

step "a worker killed with SIGKILL is restarted; its agents come back"
victim=$(worker_pid "$RPID" 0) || fail "no worker 0"
kill -9 "$victim"
wait_metric zgate_worker_restarts_total 1
for k in $(seq 100); do [[ $(wc -w <<<"$(workers_of "$RPID")") -eq 2 ]] && break; sleep 0.1; done
[[ $(wc -w <<<"$(workers_of "$RPID")") -eq 2 ]] || fail "the worker was not restarted: $(workers_of "$RPID")"
grep -E "worker 0 \(pid $victim\)|pid $victim" "$D/relay.log" | head -2
grep -q "worker 0 (pid $victim) killed by SIGKILL" "$D/relay.log" || fail "worker 0's death not logged as worker 0's"
# the new worker does not know the old one's connections: an agent's next
# packet gets a stateless reset (the workers' shared secret) and the agent
# reconnects at once
for i in 1 3 4; do
	for k in $(seq 10); do inc "$i" ping -c 1 -W 1 198.18.0.10 >/dev/null && break; done
	inc "$i" ping -c 1 -W 3 198.18.0.10 >/dev/null || fail "agent-$i after the restart"
done
inc 2 ping -c 1 -W 1 198.18.9.1 >/dev/null 2>&1 || true # agent-2's tunnel, if it was there
wait_metric zgate_sessions 4
grep -h "stateless reset\|reconnecting" "$D"/agent[1-4].log | tail -3

step "SIGTERM: the workers drain, the master stops, nothing is left"
w=$(workers_of "$RPID")
kill -TERM "$RPID"
for k in $(seq 100); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RPID" 2>/dev/null && fail "the master still runs"
wait "$RPID" && rc=0 || rc=$?
[[ $rc -eq 0 ]] || fail "the master exited $rc"
for p in $w; do kill -0 "$p" 2>/dev/null && fail "worker $p still runs"; done
audit_wait "$D/audit.log" '"event":"relay_stop".*"reason":"sigterm"' || fail "no relay_stop line"
pass
