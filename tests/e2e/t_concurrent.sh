#!/usr/bin/env bash
# 200 TCP connections at once through one agent: each carries 64 KiB of
# its own random bytes to an echo server behind the relay and must get
# every byte back, in order; every flow is audited open and closed, and
# none is left in the relay afterwards.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 1
topo_pki agent-1
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp] }
P
# 200 SYNs arrive together: room for all of them while they connect.
topo_relay --limits-halfopen-per-client 300
topo_agent 1 agent-1
svc_start echo tcp-echo 198.18.0.10 5003

step "200 concurrent connections, 64 KiB each, every byte echoed"
t0=$(date +%s%N)
out=$(inc 1 $SVC many 198.18.0.10 5003 200 65536) || fail "concurrent connections: $out"
[[ $out == "ok 200" ]] || fail "concurrent connections: $out"
echo "200 x 64 KiB echoed in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

step "every flow audited open and closed; none left open"
audit_wait "$D/audit.log" '"event":"flow_allow".*"dport":5003' 3 200 || true
n=$(grep -c '"event":"flow_allow".*"dport":5003' "$D/audit.log" || true)
[[ $n -eq 200 ]] || fail "$n flow_allow events for 200 connections"
for _ in $(seq 50); do
	[[ $(grep -c '"event":"flow_close".*"dport":5003' "$D/audit.log") -eq 200 ]] && break
	sleep 0.1
done
n=$(grep -c '"event":"flow_close".*"dport":5003' "$D/audit.log" || true)
[[ $n -eq 200 ]] || fail "$n flow_close events for 200 connections"
grep '"event":"flow_close".*"dport":5003' "$D/audit.log" | grep -v '"bytes_up":65536,"bytes_down":65536' | head -3 |
	grep . && fail "flows closed with other byte counts than 65536 each way"
open=$(metric 'zgate_flows{proto="tcp"}')
[[ $open -eq 0 ]] || fail "$open TCP flows still open in the relay"
pass
