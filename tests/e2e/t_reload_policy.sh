#!/usr/bin/env bash
# Issue 18.2/18.4: the relay watches its policy file and reloads it without
# a signal; a reload re-decides every open flow. agent-2, removed from the
# policy while it holds a TCP connection, has that connection reset at once
# (flow_close reason policy) and its tunnel closed (session_close reason
# policy, it is allowed nothing any more); agent-1's flows and tunnel go on.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
policy() { # the policy, with agent-2 when $1 is 1; replaced by one rename
	{
		cat <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
P
		[[ $1 -eq 1 ]] && cat <<P
  agent-2:
    rules:
      - { id: internal, action: allow, destinations: ["198.18.1.0/24"] }
P
	} >"$D/policy.yaml.tmp"
	chmod 644 "$D/policy.yaml.tmp"
	mv -f "$D/policy.yaml.tmp" "$D/policy.yaml"
}
policy 1
topo_relay
topo_agent 1 agent-1
topo_agent 2 agent-2
svc_start stall tcp-stall 198.18.1.10 7000
svc_start echo tcp-echo 198.18.0.10 7001

step "both clients hold a TCP connection"
ip netns exec "${C[2]}" python3 "$ZG_ROOT/tests/e2e/svc.py" recv 198.18.1.10 7000 >"$D/held2.out" 2>&1 &
held2=$!
cleanup "kill $held2 2>/dev/null; wait $held2 2>/dev/null"
ip netns exec "${C[1]}" python3 "$ZG_ROOT/tests/e2e/svc.py" recv 198.18.0.10 7001 >"$D/held1.out" 2>&1 &
held1=$!
cleanup "kill $held1 2>/dev/null; wait $held1 2>/dev/null"
for _ in $(seq 50); do [[ $(metric 'zgate_flows{proto="tcp"}') == 2 ]] && break; sleep 0.1; done
[[ $(metric 'zgate_flows{proto="tcp"}') == 2 ]] || fail "expected 2 TCP flows, have $(metric 'zgate_flows{proto="tcp"}')"
ping1_before=$(grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log")

step "agent-2 removed from the policy file (no signal)"
t0=$(date +%s%N)
policy 0
for _ in $(seq 40); do kill -0 "$held2" 2>/dev/null || break; sleep 0.05; done
kill -0 "$held2" 2>/dev/null && fail "agent-2's TCP connection still open 2 s after the policy change"
wait "$held2" 2>/dev/null && fail "agent-2's connection ended cleanly: $(cat "$D/held2.out")"
echo "agent-2's connection ended after $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(tail -1 "$D/held2.out")"
expect_contains "$(cat "$D/held2.out")" "reset" "agent-2's connection"
for _ in $(seq 40); do grep -q '"event":"session_close","client":"agent-2".*"reason":"policy"' "$D/audit.log" && break; sleep 0.05; done
grep -q '"event":"policy_reload","result":"ok"' "$D/audit.log" || fail "no policy_reload audit"
grep -q '"event":"flow_close","client":"agent-2","proto":"tcp".*"dport":7000.*"reason":"policy"' "$D/audit.log" ||
	fail "no flow_close reason policy for agent-2: $(grep flow_close "$D/audit.log")"
grep -q '"event":"session_close","client":"agent-2".*"reason":"policy"' "$D/audit.log" ||
	fail "no session_close reason policy for agent-2: $(grep session_close "$D/audit.log")"
[[ $(metric 'zgate_policy_reloads_total{result="ok"}') == 1 ]] || fail "policy reloads: $(metric 'zgate_policy_reloads_total{result="ok"}')"
[[ $(metric 'zgate_reload_disconnects_total{reason="policy"}') == 1 ]] || fail "disconnect metric"

step "agent-1 untouched: its connection, its tunnel"
kill -0 "$held1" 2>/dev/null || fail "agent-1's connection ended: $(cat "$D/held1.out")"
[[ $(metric 'zgate_flows{proto="tcp"}') == 1 ]] || fail "agent-1's flow gone"
inc 1 ping -c 2 -W 2 198.18.0.10 >/dev/null || fail "agent-1 cannot ping after the reload"
grep -q '"event":"session_close","client":"agent-1"' "$D/audit.log" && fail "agent-1's session closed"
[[ $(grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log") == "$ping1_before" ]] || fail "agent-1 reconnected"

step "agent-2 cannot come back: nothing allowed (403)"
sleep 1.5
grep -q '"event":"session_open","client":"agent-2"' <(tail -n +2 <(grep '"client":"agent-2"' "$D/audit.log" | sed -n '/session_close/,$p')) &&
	fail "agent-2 got a tunnel again"
[[ $(metric 'zgate_tunnel_refused_total{status="403"}') -ge 1 ]] || fail "agent-2's reconnects were not refused 403"

step "a broken policy file keeps the policy in force"
echo "version: [" >"$D/policy.yaml.tmp"; chmod 644 "$D/policy.yaml.tmp"; mv -f "$D/policy.yaml.tmp" "$D/policy.yaml"
for _ in $(seq 40); do [[ $(metric 'zgate_policy_reloads_total{result="error"}') == 1 ]] && break; sleep 0.05; done
[[ $(metric 'zgate_policy_reloads_total{result="error"}') == 1 ]] || fail "the broken file was not seen"
kill -0 "$held1" 2>/dev/null || fail "agent-1's connection ended on a broken policy"
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-1 cannot ping after a broken policy"
pass
