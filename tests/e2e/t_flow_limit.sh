#!/usr/bin/env bash
# A per-client flow limit refuses only the extra flows: with
# limits.flows_per_client = 5, five TCP connections stay open and keep
# working while the extra ones are refused at once (RST), audited as
# limit_hit; closing one makes room again; another client is not affected.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
topo_policy_tcp agent-1 agent-2
topo_relay --limits-flows-per-client 5
topo_agent 1 agent-1
topo_agent 2 agent-2
svc_start echo tcp-echo 198.18.0.10 7000

step "five connections open, three more refused at once (RST), the five still work"
out=$(inc 1 python3 - <<'PY'
import socket, sys, time
held = [socket.create_connection(("198.18.0.10", 7000), timeout=5) for _ in range(5)]
for s in held:
    s.sendall(b"ping"); assert s.recv(4) == b"ping"
for k in range(3):
    t = time.time()
    try:
        socket.create_connection(("198.18.0.10", 7000), timeout=5).sendall(b"x")
        print(f"extra connection {k + 1} accepted"); sys.exit(1)
    except ConnectionRefusedError:
        pass
    ms = (time.time() - t) * 1000
    if ms > 500:
        print(f"extra connection {k + 1} refused only after {ms:.0f} ms"); sys.exit(1)
for s in held:
    s.sendall(b"pong"); assert s.recv(4) == b"pong"
# closing one makes room for one more
held.pop().close()
for _ in range(50):
    try:
        c = socket.create_connection(("198.18.0.10", 7000), timeout=5)
        break
    except ConnectionRefusedError:
        time.sleep(0.1)
else:
    print("no room after a connection closed"); sys.exit(1)
c.sendall(b"again"); assert c.recv(5) == b"again"
print(f"ok refused in {ms:.0f} ms")
PY
) || fail "flow limit: $out"
expect_contains "$out" "ok refused" "extra connections"
echo "$out"
grep -q '"event":"limit_hit","limit":"limit-flows-client","client":"agent-1"' "$D/audit.log" ||
	fail "limit not audited: $(grep limit_hit "$D/audit.log")"
audit_wait "$D/audit.log" '"event":"flow_allow".*"client":"agent-1"' 3 6 || true
[[ $(grep -c '"event":"flow_allow".*"client":"agent-1"' "$D/audit.log") -eq 6 ]] ||
	fail "expected 6 flows allowed for agent-1 (5 + 1 after a close)"

step "another client is not affected"
out=$(inc 2 $SVC many 198.18.0.10 7000 5 1000) || fail "agent-2: $out"
pass
