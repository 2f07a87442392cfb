#!/usr/bin/env bash
# Issue 16.3: one client's flows into an upstream that stopped reading pin
# at most the client's memory budget in the relay (their TCP windows
# shrink), not 256 KiB each: 1,000 such flows stay under a stated RSS
# bound (before: 5 MB -> 265 MB), and another client still works.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
topo_init 2
topo_pki agent-1 agent-2
topo_policy_tcp agent-1 agent-2
topo_relay --limits-memory-per-client 16
topo_agent 1 agent-1
topo_agent 2 agent-2
svc_start stall tcp-stall 198.18.0.10 5005
svc_start echo tcp-echo 198.18.0.10 5006
rss() { awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$RPID/status"; }
echo "relay RSS at start: $(rss) MB"

step "1,000 flows push into a stalled upstream until nothing moves"
ZG_EXEC=exec inc 1 python3 - >"$D/push.out" 2>&1 <<'PY' &
import selectors, socket, time
socks = []
for _ in range(1000):
    s = socket.create_connection(("198.18.0.10", 5005), timeout=30)
    s.setblocking(False)
    socks.append(s)
buf, total, last = b"x" * 65536, 0, time.time()
while time.time() - last < 3 and time.time() - last < 60:
    moved = 0
    for s in socks:
        try:
            moved += s.send(buf)
        except BlockingIOError:
            pass
    total += moved
    if moved:
        last = time.time()
    else:
        time.sleep(0.1)
print(f"pushed {total >> 20} MiB; holding", flush=True)
time.sleep(30)
PY
ppid=$!
cleanup "kill $ppid 2>/dev/null"
for _ in $(seq 400); do grep -q holding "$D/push.out" && break; sleep 0.25; done
grep -q holding "$D/push.out" || fail "push: $(cat "$D/push.out")"
cat "$D/push.out"
flows=$(metric 'zgate_flows{proto="tcp"}') mem=$(metric zgate_tcp_stack_memory_bytes)
wnd=$(metric zgate_tcp_window_bytes) r=$(rss)
echo "relay: $flows flows, RSS $r MB, TCP stack $((mem >> 20)) MiB, windows $((wnd >> 20)) MiB"
[[ $flows -eq 1000 ]] || fail "$flows flows open, expected 1000"
# budget 16 MiB + an 8 KiB floor per flow, plus per-flow overhead: 64 MB
[[ $r -lt 64 ]] || fail "relay RSS $r MB with 1,000 stalled flows (bound 64 MB)"
[[ $(metric zgate_tcp_window_limited_total) -gt 0 ]] || fail "no window was limited"

step "another client still works"
out=$(inc 2 $SVC many 198.18.0.10 5006 20 65536) || fail "agent-2: $out"
[[ $out == "ok 20" ]] || fail "agent-2: $out"
pass
