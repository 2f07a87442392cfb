#!/usr/bin/env bash
# Policy as a user meets it through the agent: allowed destinations work;
# a denied TCP port is refused at once (RST) and a denied UDP port or ICMP
# destination gets ICMP prohibited at once, each audited with its rule;
# with allow-all the link-local decoy, the relay's loopback and the relay's
# own addresses (its ops endpoint listens there) stay unreachable; a
# spoofed source never reaches the service and is counted (C18).
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
      - id: no-ssh
        action: deny
        destinations: ["198.18.0.0/24"]
        protocols: [tcp]
        ports: ["22"]
      - id: no-tftp
        action: deny
        destinations: ["198.18.0.0/24"]
        protocols: [udp]
        ports: ["69"]
      - id: no-ping-20
        action: deny
        destinations: ["198.18.0.20/32"]
        protocols: [icmp]
      - id: saas
        action: allow
        destinations: ["198.18.0.0/24"]
  agent-2:
    rules:
      - id: everything
        action: allow
        destinations: ["0.0.0.0/0"]
P
ip -n "$S" addr add 198.18.0.20/24 dev "${T}s"
topo_relay
topo_agent 1 agent-1
topo_agent 2 agent-2
a2=$(agent_addr 2)
svc=198.18.0.10
svc_start web tcp-echo 0.0.0.0 80
svc_start ssh tcp-echo 0.0.0.0 22
svc_start udp udp-echo 0.0.0.0 9
svc_start tftp udp-echo 0.0.0.0 69

step "allowed: TCP and ICMP to the SaaS range"
out=$(inc 1 $SVC many $svc 80 3 20000) || fail "TCP to an allowed destination: $out"
out=$(inc 1 $SVC udp-query $svc 9 ok) || fail "UDP to an allowed destination: $out"
inc 1 ping -c 1 -W 2 $svc >/dev/null || fail "ping $svc"

step "denied TCP port: refused at once (RST from the relay), audited with the rule"
# svc.py times the refusal itself (python's start-up is not the relay's)
out=$(inc 1 $SVC send $svc 22 10 2>&1) && fail "port 22 was reachable"
expect_contains "$out" "refused" "TCP to a denied port"
ms=$(sed -n 's/.*(after \([0-9]*\) ms).*/\1/p' <<<"$out")
[[ -n $ms && $ms -lt 1000 ]] || fail "refusal took ${ms:-?} ms: $out"
audit_wait "$D/audit.log" '"event":"flow_deny".*"dport":22.*"rule":"no-ssh"' || fail "deny not audited with no-ssh"

step "denied UDP port: ICMP prohibited at once, audited with the rule"
out=$(inc 1 $SVC udp-query $svc 69 x 2>&1) && fail "UDP port 69 answered: $out"
expect_contains "$out" "No route to host" "UDP to a denied port (ICMP prohibited)"
ms=$(sed -n 's/.*(after \([0-9]*\) ms).*/\1/p' <<<"$out")
[[ -n $ms && $ms -lt 1000 ]] || fail "UDP refusal took ${ms:-?} ms: $out"
audit_wait "$D/audit.log" '"event":"flow_deny".*"proto":"udp".*"dport":69.*"rule":"no-tftp"' || fail "UDP deny not audited with no-tftp"

step "denied ICMP destination: ICMP prohibited, audited with the rule"
out=$(inc 1 ping -c 1 -W 2 198.18.0.20 2>&1) && fail "198.18.0.20 answered a denied ping"
expect_contains "$out" "Packet filtered" "ping to a denied destination"
audit_wait "$D/audit.log" '"event":"flow_deny".*"proto":"icmp".*"dst":"198\.18\.0\.20".*"rule":"no-ping-20"' ||
	fail "ICMP deny not audited with no-ping-20"

step "destination outside the client's routes: not even routed into the tunnel"
[[ $(inc 1 ip route get 198.18.1.10) != *zgate0* ]] || fail "198.18.1.10 routed into the tunnel for agent-1"

step "agent-2 (allow-all, full tunnel): the internal range works; decoy and loopback never"
inc 2 ping -c 1 -W 2 198.18.1.10 >/dev/null || fail "allow-all cannot reach 198.18.1.10"
out=$(inc 2 ping -c 1 -W 2 169.254.169.254 2>&1) && fail "cloud-metadata decoy reachable"
expect_contains "$out" "Packet filtered" "decoy: ICMP administratively prohibited"
audit_wait "$D/audit.log" '"event":"flow_deny".*"dst":"169.254.169.254"' || fail "decoy deny not audited"
# The client's kernel keeps 127.0.0.1 to itself: a SYN put on zgate0 with a
# packet socket is what a hostile client could send.
out=$(inc 2 $SVC raw-syn zgate0 "${a2%/*}" 127.0.0.1 8080)
[[ $out == "icmp 3 13" ]] || fail "SYN to the relay's loopback (its ops port): answer '$out', not ICMP prohibited"
audit_wait "$D/audit.log" '"event":"flow_deny".*"dst":"127.0.0.1".*"reason":"forbidden-destination"' ||
	fail "loopback deny not audited"
out=$(inc 2 ping -c 1 -W 2 198.18.0.1 2>&1) && fail "the relay's own address 198.18.0.1 answered a ping"
expect_contains "$out" "Packet filtered" "ping to the relay's own address"
out=$(inc 2 curl -sS --max-time 3 http://198.18.0.1:8080/metrics 2>&1) &&
	fail "the relay's ops endpoint is reachable through the tunnel: $(head -2 <<<"$out")"
audit_wait "$D/audit.log" '"event":"flow_deny".*"dst":"198.18.0.1".*"reason":"forbidden-destination"' ||
	fail "deny of the relay's own address not audited"

step "spoofed source: never reaches the service, counted"
before=$(metric 'zgate_drops_total{reason="spoofed"}')
svc_start spoof udp-echo 198.18.0.10 9999
# A UDP packet with a forged source written straight into the TUN's path.
inc 1 python3 - <<'PY'
import socket, struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
src, dst = socket.inet_aton("10.100.0.250"), socket.inet_aton("198.18.0.10")
udp = struct.pack("!HHHH", 4242, 9999, 8 + 5, 0) + b"spoof"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"zgate0")
for _ in range(3):
    s.sendto(ip + udp, ("198.18.0.10", 0))
PY
sleep 0.5
grep -q spoof "$D/svc-spoof.out" && fail "a spoofed packet reached the service"
# The agent drops them before the tunnel (not_ours); a client that sent
# them anyway would meet the relay's check (spoofed): either counts.
kill -TERM "${APID[1]}"; wait "${APID[1]}" 2>/dev/null || true
after=$(metric 'zgate_drops_total{reason="spoofed"}')
ours=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["drops"]["not_ours"])' "$D/status1.json")
[[ $((after - before + ours)) -ge 3 ]] || fail "spoofed packets not counted: relay $before -> $after, agent not_ours $ours"
pass
