#!/usr/bin/env bash
# Issue 15.2: a burst of 1,000 TCP connections from one client all complete
# with the default limits (SYNs over the half-open limit wait for the
# client's retransmission instead of an RST), and a flood beyond the
# per-client flow limit is still refused at once (RST), contained and
# audited, while another client keeps working.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
topo_policy_tcp agent-1 agent-2
topo_relay
topo_agent 1 agent-1
topo_agent 2 agent-2
svc_start echo tcp-echo 198.18.0.10 5004

step "1,000 connections at once from one client, 4 KiB each, all complete"
t0=$(date +%s%N)
out=$(inc 1 $SVC many 198.18.0.10 5004 1000 4096) || fail "burst: $out"
[[ $out == "ok 1000" ]] || fail "burst: $out"
echo "1000 connections in $(( ($(date +%s%N) - t0) / 1000000 )) ms;" \
	"SYNs that waited: $(metric 'zgate_drops_total{reason="halfopen"}')"
[[ $(metric 'zgate_drops_total{reason="limit"}') -eq 0 ]] || fail "connections of the burst refused"
audit_wait "$D/audit.log" '"event":"flow_allow".*"dport":5004' 3 1000 || true
n=$(grep -c '"event":"flow_allow".*"dport":5004' "$D/audit.log" || true)
[[ $n -eq 1000 ]] || fail "$n flow_allow events for 1000 connections"

step "a flood past the flow limit (1,000) is refused (RST), contained and audited"
ZG_EXEC=exec inc 1 python3 - >"$D/flood.out" 2>&1 <<'PY' &
import socket, sys, time
held = [socket.create_connection(("198.18.0.10", 5004), timeout=30) for _ in range(1000)]
refused, t = 0, time.time()
for _ in range(300):
    try:
        socket.create_connection(("198.18.0.10", 5004), timeout=5).close()
    except ConnectionRefusedError:
        refused += 1
ms = (time.time() - t) * 1000
held[0].sendall(b"ping"); assert held[0].recv(4) == b"ping"
print(f"refused {refused} of 300 in {ms:.0f} ms", flush=True)
time.sleep(4)  # held while another client works and the relay is looked at
PY
fpid=$!
cleanup "kill $fpid 2>/dev/null"
for _ in $(seq 150); do grep -q refused "$D/flood.out" && break; sleep 0.2; done
grep -q "refused 300 of 300" "$D/flood.out" || fail "flood: $(cat "$D/flood.out")"
cat "$D/flood.out"
open=$(metric 'zgate_flows{proto="tcp"}')
[[ $open -le 1000 ]] || fail "$open flows open: the per-client limit did not hold"
grep -q '"event":"limit_hit","limit":"limit-flows-client","client":"agent-1"' "$D/audit.log" ||
	fail "flood not audited"
step "another client works during the flood"
out=$(inc 2 $SVC many 198.18.0.10 5004 20 4096) || fail "agent-2: $out"
[[ $out == "ok 20" ]] || fail "agent-2: $out"
wait $fpid || fail "flood client: $(cat "$D/flood.out")"
pass
