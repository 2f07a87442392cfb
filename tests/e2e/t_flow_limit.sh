#!/usr/bin/env bash
# A per-client flow limit refuses only the extra flows: with
# limits.flows_per_client = 5, five TCP connections stay open and keep
# working while the sixth is refused (RST), audited as limit_hit; another
# client is not affected.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp] }
  agent-2:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp] }
P
topo_relay --limits-flows-per-client 5
topo_agent 1 agent-1
topo_agent 2 agent-2
svc_start echo tcp-echo 198.18.0.10 7000

step "five connections open, the sixth refused, the five still work"
out=$(inc 1 python3 - <<'PY'
import socket, sys, time
held = [socket.create_connection(("198.18.0.10", 7000), timeout=5) for _ in range(5)]
for s in held:
    s.sendall(b"ping"); assert s.recv(4) == b"ping"
t = time.time()
try:
    socket.create_connection(("198.18.0.10", 7000), timeout=5).sendall(b"x")
    print("sixth connection accepted"); sys.exit(1)
except ConnectionRefusedError:
    pass
refused_ms = (time.time() - t) * 1000
for s in held:
    s.sendall(b"pong"); assert s.recv(4) == b"pong"
print(f"ok refused in {refused_ms:.0f} ms")
PY
) || fail "flow limit: $out"
expect_contains "$out" "ok refused" "sixth connection"
grep -q '"event":"limit_hit".*"client":"agent-1"' "$D/audit.log" || fail "limit not audited"

step "another client is not affected"
out=$(inc 2 $SVC many 198.18.0.10 7000 5 1000) || fail "agent-2: $out"
pass
