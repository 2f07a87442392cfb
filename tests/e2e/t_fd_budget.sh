#!/usr/bin/env bash
# Issue 16.2: with a low descriptor limit (256) one client gets at most its
# share of the flows' descriptors (50 % of 256 - 64 reserved = 96): its
# extra flows are refused at once (RST), audited and counted, while another
# client still opens flows and the ops port still answers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
topo_policy_tcp agent-1 agent-2
# the relay with a hard and soft limit of 256 descriptors (raising the soft
# limit to the hard one at start changes nothing then)
cat >"$D/relay-lowfd.sh" <<W
#!/bin/bash
ulimit -Sn 256 && ulimit -Hn 256 && exec $RELAY "\$@"
W
chmod 755 "$D/relay-lowfd.sh"
RELAY=$D/relay-lowfd.sh
# flows_per_client must fit in 256 descriptors beside the ops port (16.1's
# start-time check); the descriptor share (96) is what stops agent-1 first
topo_relay --limits-flows-per-client 150
topo_agent 1 agent-1
topo_agent 2 agent-2
svc_start echo tcp-echo 198.18.0.10 5007
[[ $(metric 'zgate_flow_descriptor_budget{scope="client"}') -eq 96 ]] ||
	fail "per-client descriptor budget: $(metrics | grep descriptor_budget)"

step "agent-1 holds 96 flows; more are refused at once"
ZG_EXEC=exec inc 1 python3 - >"$D/hold.out" 2>&1 <<'PY' &
import socket, time
held, refused = [], 0
for _ in range(150):
    try:
        held.append(socket.create_connection(("198.18.0.10", 5007), timeout=10))
    except ConnectionRefusedError:
        refused += 1
held[-1].sendall(b"ping"); assert held[-1].recv(4) == b"ping"
print(f"held {len(held)} refused {refused}", flush=True)
time.sleep(20)
PY
hpid=$!
cleanup "kill $hpid 2>/dev/null"
for _ in $(seq 150); do grep -q held "$D/hold.out" && break; sleep 0.2; done
cat "$D/hold.out"
grep -q "held 96 refused 54" "$D/hold.out" || fail "agent-1: $(cat "$D/hold.out")"
grep -q '"event":"limit_hit","limit":"limit-descriptors-client","client":"agent-1"' "$D/audit.log" ||
	fail "descriptor limit not audited"
# each refused SYN counts, a retransmitted one too (RSTs are rate-limited per client)
[[ $(metric 'zgate_flow_descriptor_refused_total{scope="client"}') -ge 54 ]] ||
	fail "refusals not counted: $(metrics | grep descriptor_refused)"
[[ $(metric zgate_emfile_total) == 0 ]] || fail "zgate_emfile_total not exported"
[[ $(grep -c "new flows refused: a client holds its share" "$D/relay.log") -eq 1 ]] ||
	fail "expected one log line for the refusals: $(grep 'flows refused' "$D/relay.log")"

step "agent-2 still opens flows"
out=$(inc 2 $SVC many 198.18.0.10 5007 50 4096) || fail "agent-2: $out"
[[ $out == "ok 50" ]] || fail "agent-2: $out"
kill $hpid 2>/dev/null; wait $hpid 2>/dev/null || true
pass
