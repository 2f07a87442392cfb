#!/usr/bin/env bash
# limits.time_wait reaches every worker's stack as its share: with
# --limits-time-wait 32 and two workers, each keeps at most 16 TCP
# connections in TIME-WAIT. One client (its tunnel is on one worker) makes
# 40 HTTP/1.0 requests one after another; the server closes first, so the
# relay does, and lwIP holds each connection in TIME-WAIT for 20 s. At each
# SYN over 16 the oldest go down to 14: 23 to 25 evicted (20 to 26 pass, a
# client FIN that reaches the relay after its next SYN shifts a pass).
# Caps of 32 per worker (not shared out) would evict 7 to 11, the default
# (65536) none. Every request is still answered.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 1
topo_pki agent-1
topo_policy_tcp agent-1
topo_relay --workers 2 --limits-time-wait 32
topo_agent 1 agent-1
svc_start web http 198.18.0.10 8000 hello

step "40 connections the relay closes first, one after another"
out=$(inc 1 python3 - <<'PY'
import socket, sys
for k in range(40):
    c = socket.create_connection(("198.18.0.10", 8000), timeout=5)
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    got = b""
    while True:
        b = c.recv(4096)
        if not b:
            break
        got += b
    c.close()
    if not got.endswith(b"hello\n"):
        print(f"connection {k}: {got!r}"); sys.exit(1)
print("ok 40")
PY
) || fail "requests: $out"
expect_contains "$out" "ok 40" "requests"
evicted=$(metric 'zgate_tcp_time_wait_total{event="evicted"}')
echo "evicted from TIME-WAIT: $evicted"
if [[ -z $evicted ]] || ((evicted < 20 || evicted > 26)); then
	fail "evicted '$evicted', expected 23 to 25 (a cap of 16 per worker)"
fi
held=$(metric 'zgate_tcp_time_wait')
echo "held in TIME-WAIT now: $held"
# what was not evicted is still held (20 s), at most the cap and one more
if [[ -z $held ]] || ((held + evicted != 40 || held > 17)); then
	fail "TIME-WAIT gauge '$held' with '$evicted' evicted: expected the 40 connections, at most 17 held"
fi
pass
