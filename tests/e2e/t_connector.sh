#!/usr/bin/env bash
# On-prem through zgate-connector, end to end, and the relay cannot read it
# (issue 22):
#
#   c1 agent-1 ─┐                                     ┌─ service ns S (198.18.0.10,
#   c2 agent-2 ─┴─ relay ns R (zgate-relay, uid 65534)┤   reached by the relay's own stack)
#                                                     └─ connector ns K (zgate-connector,
#                                                        uid 65534, no capabilities)
#                                                          └─ on-prem ns P (10.20.0.10)
#
# P is reachable ONLY from K (a veth between them; R has no route to it and
# K does not forward). The relay's policy lists connector hospital-a bound to
# 10.20.0.0/16; agent-1 may reach it (a connector rule), agent-2 may not.
#   1. agent-1 curls the on-prem web server and reaches its UDP and TCP echo
#      services by their on-prem address; the relay audits connector_open.
#      A packet too big for the inner tunnel gets ICMP "Frag needed" with
#      the inner size (the kernel learns it) and is counted.
#      The connector host's own address 10.20.0.1 (inside the served
#      prefix, and allowed by a rule of the connector's policy) is refused
#      at once and audited (forbidden-destination), while a service on it
#      answers in the connector's namespace.
#   2. agent-2 is refused: no on-prem route in its tunnel; with a route forced
#      into zgate0 its flows are refused at once by the relay; UDP it sends
#      straight at the connector's tunnel address is never forwarded.
#      What the connector's address answers to another port of agent-1
#      than its inner session's (a Version Negotiation answer to a probe
#      agent-1 sent from port 7777: the relay sees a flow agent-1 opened
#      and forwards it) is dropped by the agent, and counted
#      (rx_unsolicited in its status file).
#   3. The relay cannot read it: a marker sent both ways through the
#      connector appears neither in a tcpdump capture of every interface of
#      the relay's namespace nor in the relay's debug.payload_dump file, nor
#      in its logs, while a second marker sent to S through the relay's own
#      stack shows in both (so the check can fail); the dump does hold the
#      agent's inner packets, received and forwarded.
#   4. The connector stopped: agent-1's on-prem traffic fails, connector_close
#      is audited; started again: traffic resumes. The relay restarted: the
#      connector and the agent come back and traffic resumes.
#   4c. (workers) A worker restarted learns the connector up on the other;
#      the connector's worker restarted: the other forgets it, the connector
#      comes back, traffic resumes.
#   5. A policy reload without the connector takes it away; one that lists it
#      again is taken (no longer refused under workers), traffic resumes.
#   6. A misbehaving connector (zgate-probe with the certificate of
#      connector:hospital-b, announcing a prefix) sends UDP from its inner
#      port to agent-1's port 7777, which never sent to it, while agent-1
#      has a link to it (its inner session's handshake, never answered):
#      the relay drops every such packet before agent-1 sees it
#      (zgate_connector_drops_total{reason="unsolicited"}; the dump shows
#      them received, never forwarded; rx_unsolicited of hospital-b in
#      agent-1's status stays 0).
# The relay runs workers: 2 (ZG_E2E_WORKERS=N for another count, 1 for one
# process); agent-1 is reconnected until its tunnel is on another worker
# than the connector's, so 1-4a cross workers (the connector counted once).
# Skipped (77) until build/bin/zgate-connector exists.
#
# ASSUMED INTERFACES (CONNECTOR.md; align here if the code differs):
#   zgate-connector --config FILE; YAML keys: relays (list of host:port),
#     server_name, ca, cert, key, prefixes, policy (the relay's policy
#     format), audit ("-" = stdout), ops_listen (/ready 200 once a relay
#     tunnel is open, /metrics), inner_port, log_level.
#   relay YAML: debug: { payload_dump: PATH } (4-byte big-endian length, then
#     the IP packet, for every packet decrypted from or sent into a tunnel).
#   relay policy: connectors: {hospital-a: {prefixes: [...]}} and the client
#     rule { id, action: allow, connector: hospital-a }.
#   relay audit (JSON lines): "event":"connector_open" / "connector_close"
#     with "client" = the agent's ID and a field naming hospital-a;
#     connector_close carries bytes_up and bytes_down.
#   relay metric zgate_connectors_up.
#   the agent's status file names each connector it was told of (hospital-a).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v tcpdump >/dev/null || "$ZG_ROOT/scripts/ensure-packages.sh" tcpdump >/dev/null 2>&1 ||
	skip "tcpdump missing (make e2e installs the Makefile's TEST_PACKAGES)"
DIRECT=198.18.0.10
# Two markers neither of which contains the other.
MARK_CONN=zgCONNmark$RANDOM$RANDOM$RANDOM
MARK_DIRECT=zgDIRECTmark$RANDOM$RANDOM$RANDOM
WEB_TEXT="onprem-web $MARK_CONN" WEB_PATH=$MARK_CONN
source "$(dirname "$0")/connector_env.sh"

topo_init 2
conn_init
conn_pki agent-1 agent-2
conn_policies
# The connector's policy lets agent-1 reach the whole on-prem /24 on port
# 8000: the connector host's own address in it (KLAN) stays out of reach
# all the same, as the relay's own addresses do.
KLAN=10.20.0.1
cat >>"$D/connector-policy.yaml" <<Y
      - { id: onprem-lan, action: allow, destinations: ["10.20.0.0/24"], protocols: [tcp], ports: ["8000"] }
Y
mkdir -m 0777 "$D/dump"
DUMP=$D/dump/payload.bin
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
debug: { payload_dump: $DUMP }
workers: ${ZG_E2E_WORKERS:-2}
C
conn_yaml "$RELAY_K:4433"

step "services: web, UDP and TCP echo on-prem ($ONPREM) and in S ($DIRECT)"
psvc_start web http "$ONPREM" 8000 "$WEB_TEXT"
psvc_start udp udp-echo "$ONPREM" 7007
psvc_start tcp tcp-echo "$ONPREM" 7008
svc_start web http "$DIRECT" 8000 "saas-web $MARK_DIRECT"
psvc_start -n "$K" khost http "$KLAN" 8000 "connector-host"
svc_start udp udp-echo "$DIRECT" 7007

step "tcpdump on every interface of the relay's namespace, from the start"
PCAP=$D/relay.pcap
ip netns exec "$R" tcpdump -i any -s 0 -U -n -Z root -w "$PCAP" 2>"$D/tcpdump.log" &
TPID=$!
cleanup "kill $TPID 2>/dev/null; wait $TPID 2>/dev/null"
for _ in $(seq 50); do grep -q "listening on" "$D/tcpdump.log" && break; sleep 0.1; done
grep -q "listening on" "$D/tcpdump.log" || fail "tcpdump did not start: $(cat "$D/tcpdump.log")"

topo_relay
grep -qi "payload_dump" "$D/relay.log" || fail "the relay does not warn that debug.payload_dump is on"

step "zgate-connector (uid 65534, no capabilities) dials the relay"
connector_start
[[ $(awk '/^Uid:/ {print $2}' "/proc/$KPID/status") == 65534 ]] || fail "connector uid: $(grep ^Uid "/proc/$KPID/status")"
[[ $(awk '/^CapEff:/ {print $2}' "/proc/$KPID/status") == 0000000000000000 ]] ||
	fail "connector capabilities: $(grep ^Cap "/proc/$KPID/status")"
[[ $(awk '/^CapBnd:/ {print $2}' "/proc/$KPID/status") == 0000000000000000 ]] ||
	fail "connector bounding set: $(grep ^CapBnd "/proc/$KPID/status")"
wait_for 10 "the relay does not count the connector up" connectors_up 1

topo_agent 1 agent-1
topo_agent 2 agent-2
# With workers (2 here unless ZG_E2E_WORKERS says otherwise), everything
# below crosses workers: agent-1's tunnel on one, the connector's on another.
agent_elsewhere 1 agent-1
A1=$(agent_addr 1) A2=$(agent_addr 2)
A1=${A1%/*} A2=${A2%/*}
echo "agent-1 $A1, agent-2 $A2"

step "1. agent-1: the on-prem prefix is routed into its tunnel; web, UDP and TCP reach $ONPREM"
wait_for 15 "agent-1 has no route to 10.20.0.0/16 in zgate0" bash -c "ip -n ${C[1]} route show dev zgate0 | grep -q '^10.20.0.0/16'"
grep -q hospital-a "$D/status1.json" || fail "agent-1's status file does not name connector hospital-a: $(cat "$D/status1.json")"
start=$(date +%s%N)
wait_for 20 "agent-1 cannot fetch the on-prem web page: $(onprem_web 2>&1)" web_ok
echo "first on-prem page after $((($(date +%s%N) - start) / 1000000)) ms"
out=$(inc 1 $SVC udp-query "$ONPREM" 7007 "udp $MARK_CONN") || fail "UDP echo on-prem: $out"
[[ $out == *"udp $MARK_CONN"* ]] || fail "UDP echo on-prem answered '$out'"
out=$(inc 1 $SVC many "$ONPREM" 7008 4 50000) || fail "TCP echo on-prem: $out"
expect_contains "$out" "ok 4" "TCP echo on-prem"
out=$(inc 1 curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --data "post $MARK_CONN" "http://$ONPREM:8000/") ||
	fail "POST on-prem: $out"
[[ $out == 200 ]] || fail "POST on-prem: HTTP $out"
out=$(inc 1 curl -sS --max-time 3 "http://$ONPREM:8001/" 2>&1) && fail "port 8001 (not in the connector's policy) answered: $out"
audit_has "$D/audit.log" connector_open agent-1 >/dev/null || fail "no connector_open for agent-1 in the relay's audit"
audit_wait "$D/connector-audit.log" "$ONPREM" || fail "the connector's audit does not show agent-1's flows to $ONPREM"

step "1b. a packet too big for the inner tunnel: 'Frag needed' with the inner size, counted"
# The inner session's datagrams ride inside the outer tunnel's, so it
# carries less than the TUN's MTU (the outer tunnel's): the agent answers
# with the inner size, as it does for the outer tunnel (C16).
tunmtu=$(ip -n "${C[1]}" link show zgate0 | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
set +e
out=$(inc 1 ping -c 1 -W 2 -M do -s $((tunmtu - 28)) "$ONPREM" 2>&1)
set -e
echo "$out"
inner=$(sed -n 's/.*Frag needed and DF set (mtu = \([0-9]*\)).*/\1/p' <<<"$out" | head -1)
[[ -n $inner ]] && ((inner >= 1280 && inner < tunmtu)) ||
	fail "a $tunmtu-byte packet to $ONPREM got no 'Frag needed' with the inner tunnel's size: $out"
echo "TUN MTU $tunmtu, inner tunnel $inner"
inc 1 ip route get "$ONPREM" | grep -q "mtu $inner" || fail "the kernel did not learn the inner path MTU"
wait_for 8 "the connector's too-big drops are not in agent-1's status" \
	grep -q '"unreachable":[0-9]*,"too_big":[1-9][0-9]*,"icmp_too_big_sent":[1-9]' "$D/status1.json"
out=$(inc 1 $SVC many "$ONPREM" 7008 4 50000) || fail "TCP echo on-prem after the path MTU shrank: $out"
expect_contains "$out" "ok 4" "TCP echo on-prem at the inner path MTU"

step "1c. the connector host's own address $KLAN (in the served prefix, allowed by its policy) is refused"
out=$(ip netns exec "$K" curl -sS --max-time 3 "http://$KLAN:8000/" 2>&1) || fail "control: the connector host's service does not answer in its namespace: $out"
[[ $out == connector-host ]] || fail "control: the connector host's service answered '$out'"
start=$(date +%s%N)
out=$(inc 1 curl -sS --max-time 5 "http://$KLAN:8000/" 2>&1) && fail "agent-1 reached the connector host's own service at $KLAN:8000: $out"
ms=$((($(date +%s%N) - start) / 1000000))
echo "agent-1 to $KLAN:8000: '$out' after $ms ms"
[[ $ms -lt 3000 ]] || fail "the refusal of $KLAN took $ms ms"
audit_wait "$D/connector-audit.log" "\"event\":\"flow_deny\".*\"dst\":\"$KLAN\".*\"reason\":\"forbidden-destination\"" ||
	fail "the connector did not audit the refusal of $KLAN as forbidden-destination"
grep -q "own addresses are forbidden destinations" "$D/connector.log" || fail "the connector does not log its forbidden own addresses"

step "2. agent-2 (no connector rule) is refused"
grep -q hospital-a "$D/status2.json" && fail "agent-2 was told of hospital-a: $(cat "$D/status2.json")"
[[ $(inc 2 ip route get "$ONPREM") != *zgate0* ]] || fail "agent-2 routes $ONPREM into its tunnel"
# A route forced into the tunnel: the relay's own policy refuses at once.
ip -n "${C[2]}" route add 10.20.0.0/16 dev zgate0
out=$(inc 2 $SVC send "$ONPREM" 8000 10 2>&1) && fail "agent-2 reached $ONPREM:8000: $out"
expect_contains "$out" "refused" "agent-2 TCP to on-prem"
ms=$(sed -n 's/.*(after \([0-9]*\) ms).*/\1/p' <<<"$out")
[[ -n $ms && $ms -lt 1000 ]] || fail "agent-2's refusal took ${ms:-?} ms: $out"
out=$(inc 2 curl -sS --max-time 5 "http://$ONPREM:8000/" 2>&1) && fail "agent-2 fetched the on-prem page: $out"
out=$(inc 2 $SVC udp-query "$ONPREM" 7007 x 2>&1) && fail "agent-2's UDP reached on-prem: $out"
ip -n "${C[2]}" route del 10.20.0.0/16 dev zgate0
audit_has "$D/audit.log" connector_open agent-2 >/dev/null && fail "connector_open audited for agent-2"

# dumpscan.py: the relay's payload dump (4-byte big-endian length + IP packet)
cat >"$D/dumpscan.py" <<'PY'
import collections, socket, struct, sys

def packets(path):
    b = open(path, "rb").read()
    i = 0
    while i + 4 <= len(b):
        (n,) = struct.unpack_from("!I", b, i)
        if n == 0 or i + 4 + n > len(b):
            break  # a record being written right now
        yield b[i + 4:i + 4 + n]
        i += 4 + n

def udp4(p):  # (src, dst, ttl, sport, dport, payload) or None
    if len(p) < 28 or p[0] >> 4 != 4 or p[9] != 17:
        return None
    ihl = (p[0] & 15) * 4
    sport, dport = struct.unpack_from("!HH", p, ihl)
    return socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20]), p[8], sport, dport, p[ihl + 8:]

cmd, path = sys.argv[1], sys.argv[2]
if cmd == "inner":  # SRC PORT: "DST TTLS..." of UDP SRC -> DST:PORT, the most frequent DST
    src, port = sys.argv[3], int(sys.argv[4])
    ttls = collections.defaultdict(collections.Counter)
    for p in packets(path):
        u = udp4(p)
        if u and u[0] == src and u[4] == port:
            ttls[u[1]][u[2]] += 1
    if ttls:
        dst = max(ttls, key=lambda d: sum(ttls[d].values()))
        print(dst, " ".join("ttl%d=%d" % kv for kv in sorted(ttls[dst].items())))
elif cmd == "udp-with":  # NEEDLE: how many UDP packets carry it
    needle = sys.argv[3].encode()
    print(sum(1 for p in packets(path) if udp4(p) and needle in udp4(p)[5]))
elif cmd == "flow":  # SRC SPORT DST DPORT: how many such UDP packets
    src, sport, dst, dport = sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    print(sum(1 for p in packets(path) if (lambda u: u and u[:2] == (src, dst) and u[3:5] == (sport, dport))(udp4(p))))
elif cmd == "flowttl":  # SRC SPORT DST DPORT: "TTL=COUNT ..." of such UDP packets
    src, sport, dst, dport = sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    ttls = collections.Counter(u[2] for u in map(udp4, packets(path)) if u and u[:2] == (src, dst) and u[3:5] == (sport, dport))
    print(" ".join("ttl%d=%d" % kv for kv in sorted(ttls.items())))
elif cmd == "count":  # NEEDLE: raw occurrences in the file
    print(open(path, "rb").read().count(sys.argv[3].encode()))
PY
scan() { python3 "$D/dumpscan.py" "$@"; }

step "the relay only forwards: agent-1's inner packets are in the dump as received and as forwarded"
[[ -s $DUMP ]] || fail "the relay wrote no payload dump at $DUMP"
inner=$(scan inner "$DUMP" "$A1" 443)
echo "agent-1 -> connector inner UDP in the dump: ${inner:-none}"
[[ -n $inner ]] || fail "no UDP from agent-1 ($A1) to port 443 in the relay's dump"
CV=${inner%% *}
# received (ttl t) and sent on into the connector's tunnel (ttl t-1)
[[ $(wc -w <<<"$inner") -ge 3 ]] || fail "agent-1's inner packets were not seen forwarded (one TTL only): $inner"

step "agent-2's UDP aimed straight at the connector's tunnel address $CV:443 is not forwarded"
PROBE2=zgPROBEagent2$RANDOM$RANDOM
ip -n "${C[2]}" route add "$CV/32" dev zgate0
inc 2 $SVC udp-query "$CV" 443 "$PROBE2" >/dev/null 2>&1 || true
inc 2 $SVC udp-query "$CV" 443 "$PROBE2" >/dev/null 2>&1 || true
ip -n "${C[2]}" route del "$CV/32" dev zgate0
sleep 0.5
n=$(scan udp-with "$DUMP" "$PROBE2")
[[ $n == 2 ]] || fail "agent-2's 2 datagrams to $CV:443 appear $n times as UDP in the dump (2 = received, none forwarded)"
audit_has "$D/audit.log" connector_open agent-2 >/dev/null && fail "connector_open audited for agent-2 after its probe"

step "the connector's address reaches only agent-1's inner session, not its other ports"
# agent-1 itself (not its inner session) sends QUIC of an unknown version
# from port 7777 to $CV:443: the relay forwards it (agent-1 has a link to
# the connector) and the connector answers Version Negotiation to
# $A1:7777, which the relay forwards too: port 7777 sent to the connector,
# so for the relay it is an answer agent-1 asked for (step 6 shows what a
# connector sends unasked). The agent must drop it: it is for no inner
# session it opened. The dump shows the answer was forwarded, so the check
# can fail.
ip -n "${C[1]}" route add "$CV/32" dev zgate0
out=$(inc 1 python3 - "$A1" "$CV" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7777))
s.settimeout(1)
hdr = bytes([0xc0]) + bytes.fromhex("1a2a3a4a") + bytes([8]) + os.urandom(8) + bytes([8]) + os.urandom(8)
got = 0
for _ in range(3):
    s.sendto(hdr + bytes(1200 - len(hdr)), (sys.argv[2], 443))
    try:
        s.recvfrom(65535)
        got += 1
    except socket.timeout:
        pass
print("replies", got)
PY
) || fail "the unknown-version probe failed: $out"
ip -n "${C[1]}" route del "$CV/32" dev zgate0
fwd=$(scan flow "$DUMP" "$CV" 443 "$A1" 7777)
echo "connector $CV:443 -> agent-1 $A1:7777: $fwd packets in the relay's dump; agent-1's socket got: $out"
[[ $fwd -ge 1 ]] || fail "the control failed: the connector's answer to $A1:7777 is not in the relay's dump"
[[ $out == "replies 0" ]] || fail "agent-1's port 7777 received packets from the connector's address: $out"
wait_for 5 "agent-1's status does not count the connector's unsolicited packets" \
	grep -q '"rx_unsolicited":[1-9]' "$D/status1.json"

step "3. the marker: through the connector unreadable by the relay; through the relay's stack readable"
out=$(inc 1 curl -sS --max-time 5 "http://$DIRECT:8000/$MARK_DIRECT") || fail "agent-1 to $DIRECT: $out"
[[ $out == "saas-web $MARK_DIRECT" ]] || fail "agent-1's page from $DIRECT: $out"
out=$(inc 1 $SVC udp-query "$DIRECT" 7007 "udp $MARK_DIRECT") || fail "UDP echo at $DIRECT: $out"
web_ok || fail "the on-prem page, again: $(onprem_web 2>&1)"
sleep 1 # let tcpdump and the dump catch up
kill -INT "$TPID"; wait "$TPID" 2>/dev/null || true
pcap_conn=$(scan count "$PCAP" "$MARK_CONN") pcap_direct=$(scan count "$PCAP" "$MARK_DIRECT")
dump_conn=$(scan count "$DUMP" "$MARK_CONN") dump_direct=$(scan count "$DUMP" "$MARK_DIRECT")
echo "marker via the connector: capture $pcap_conn, dump $dump_conn; via the relay's stack: capture $pcap_direct, dump $dump_direct"
echo "capture: $(stat -c %s "$PCAP") bytes, $(tcpdump -r "$PCAP" -n 'udp port 4433' 2>/dev/null | wc -l) packets on UDP 4433;" \
	"dump: $(stat -c %s "$DUMP") bytes"
[[ $dump_direct -ge 1 ]] || fail "the control failed: the marker sent through the relay's stack is not in the dump"
[[ $pcap_direct -ge 1 ]] || fail "the control failed: the marker sent through the relay's stack is not in the capture"
[[ $dump_conn == 0 ]] || fail "the relay's payload dump holds the connector-path marker $dump_conn times"
[[ $pcap_conn == 0 ]] || fail "the relay namespace's capture holds the connector-path marker $pcap_conn times"
[[ $(tcpdump -r "$PCAP" -n "host $RELAY_K and udp port 4433" 2>/dev/null | wc -l) -gt 10 ]] ||
	fail "the capture does not show the connector's tunnel traffic"
for f in "$D/relay.log" "$D/audit.log"; do
	grep -qF "$MARK_CONN" "$f" && fail "$(basename "$f") holds the connector-path marker"
done

step "4a. the connector stopped: on-prem traffic fails, connector_close audited; restarted: it resumes"
connector_stop
wait_for 10 "the relay still counts the connector up" connectors_up 0
start=$(date +%s%N)
out=$(onprem_web 2>&1) && fail "the on-prem page came with the connector stopped: $out"
ms=$((($(date +%s%N) - start) / 1000000))
echo "with the connector down: '$out' after $ms ms"
# the agent answers ICMP unreachable for a down connector's prefixes: no timeout
[[ $ms -lt 3000 ]] || fail "the on-prem request took $ms ms to fail with the connector down"
line=$(audit_has "$D/audit.log" connector_close agent-1) || fail "no connector_close for agent-1"
expect_contains "$line" '"bytes_up":' "connector_close"
expect_contains "$line" '"bytes_down":' "connector_close"
[[ $line != *'"bytes_up":0,'* && $line != *'"bytes_down":0,'* ]] || fail "connector_close without bytes: $line"
connector_start
start=$(date +%s%N)
wait_for 30 "agent-1 does not reach on-prem after the connector's restart: $(onprem_web 2>&1)" web_ok
echo "on-prem again $((($(date +%s%N) - start) / 1000000)) ms after the connector was ready"
out=$(inc 1 $SVC udp-query "$ONPREM" 7007 again) || fail "UDP echo after the connector's restart: $out"
echo "after the connector's restart: agent-1 on worker $(worker_of agent-1), the connector on worker $(worker_of connector:hospital-a)"

# kill_worker W: SIGKILL worker W (found by its process name), until the
# master has started it again
kill_worker() {
	local w=$1 victim n
	victim=$(worker_pid "$RPID" "$w") || fail "no worker $w under $RPID: $(pgrep -P "$RPID" | tr '\n' ' ')"
	n=$(grep -c "worker $w: restarted" "$D/relay.log" || true)
	kill -9 "$victim"
	wait_for 10 "worker $w was not restarted" bash -c "[[ \$(grep -c 'worker $w: restarted' $D/relay.log) -gt $n ]]"
}
if [[ -n $(worker_of agent-1) ]]; then
	step "4c. a worker restarted learns the connector up on another; the connector's worker restarted: it comes back"
	cw=$(worker_of connector:hospital-a) ow=$((1 - $(worker_of connector:hospital-a)))
	n=$(grep -c "worker $ow: connector hospital-a up on worker $cw" "$D/relay.log" || true)
	kill_worker "$ow"
	wait_for 10 "the restarted worker $ow did not learn that hospital-a is up on worker $cw" \
		bash -c "[[ \$(grep -c 'worker $ow: connector hospital-a up on worker $cw' $D/relay.log) -gt $n ]]"
	wait_for 30 "agent-1 does not reach on-prem after worker $ow's restart: $(onprem_web 2>&1)" web_ok
	echo "worker $ow restarted: agent-1 on worker $(worker_of agent-1), the connector on worker $(worker_of connector:hospital-a)"
	# the agent's tunnel moves to the restarted worker when it was there;
	# make sure this path is crossed too
	agent_elsewhere 1 agent-1
	wait_for 20 "agent-1 does not reach on-prem (worker $(worker_of agent-1), the connector on $cw): $(onprem_web 2>&1)" web_ok
	kill_worker "$cw"
	# worker $ow forgets it as soon as the master tells it that worker $cw
	# exited, before the restart
	wait_for 10 "worker $ow did not forget hospital-a when worker $cw exited: $(grep "worker $ow: connector" "$D/relay.log" | tail -3)" \
		grep -q "worker $ow: connector hospital-a down (worker $cw exited)" "$D/relay.log"
	grep -h "worker $cw (pid [0-9]*) killed\|worker $cw: restart in\|worker $ow: connector hospital-a down" "$D/relay.log" | tail -3 | cut -d' ' -f3-
	wait_for 30 "the connector did not come back after its worker's restart" \
		connectors_up 1
	wait_for 45 "agent-1 does not reach on-prem after the connector's worker restarted: $(onprem_web 2>&1)" web_ok
	echo "worker $cw restarted: agent-1 on worker $(worker_of agent-1), the connector on worker $(worker_of connector:hospital-a)"
fi

step "4b. the relay restarted: the connector and agent-1 come back, traffic resumes"
kill -TERM "$RPID"; wait "$RPID" 2>/dev/null || true
start=$(date +%s%N)
topo_relay
wait_for 30 "the connector did not come back to the restarted relay" \
	ip netns exec "$K" curl -sf 127.0.0.1:9201/ready
wait_for 45 "agent-1 does not reach on-prem after the relay's restart: $(onprem_web 2>&1)" web_ok
echo "on-prem again $((($(date +%s%N) - start) / 1000000)) ms after the relay was stopped"
out=$(inc 1 $SVC many "$ONPREM" 7008 2 20000) || fail "TCP echo after the relay's restart: $out"
kill -0 "$KPID" || fail "the connector exited during the relay's restart"
# The relay tells the addresses twice per tunnel (its ADDRESS_ASSIGN, then
# the answer to the ADDRESS_REQUEST): logged once per tunnel opened.
opens=$(grep -c ': tunnel open, ' "$D/connector.log") addrs=$(grep -c ': tunnel address' "$D/connector.log")
echo "connector log: $opens tunnels opened, $addrs tunnel address lines"
((opens >= 3 && addrs == opens)) || fail "$opens tunnels opened but $addrs 'tunnel address' lines: $(grep ': tunnel address' "$D/connector.log")"

step "5. a policy reload without the connector takes it away; one that adds it back is taken (with workers too)"
cp "$D/policy.yaml" "$D/policy-full.yaml"
cat >"$D/policy-none.yaml" <<Y
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp, udp] }
Y
reloads() { grep -c '"event":"policy_reload","result":"ok"' "$D/audit.log" || true; }
n=$(reloads)
cp "$D/policy-none.yaml" "$D/policy.yaml"
kill -HUP "$RPID"
wait_for 10 "the policy without connectors was not reloaded" bash -c "(( \$(grep -c '\"event\":\"policy_reload\",\"result\":\"ok\"' $D/audit.log) > $n ))"
no_web() { ! web_ok; }
wait_for 15 "agent-1 still reaches on-prem with no connector in the policy" no_web
n=$(reloads)
cp "$D/policy-full.yaml" "$D/policy.yaml"
kill -HUP "$RPID"
wait_for 10 "the policy adding the connector back was not reloaded" bash -c "(( \$(grep -c '\"event\":\"policy_reload\",\"result\":\"ok\"' $D/audit.log) > $n ))"
grep -q "policy reload failed" "$D/relay.log" && fail "a policy reload was refused: $(grep 'policy reload failed' "$D/relay.log")"
wait_for 60 "agent-1 does not reach on-prem once the policy lists the connector again: $(onprem_web 2>&1)" web_ok
echo "after the reloads: agent-1 on worker $(worker_of agent-1), the connector on worker $(worker_of connector:hospital-a)"

step "6. a connector sending to a port of agent-1 that never sent to it: the relay drops it"
# zgate-probe as connector:hospital-b: it announces 10.30.0.0/16, so the
# relay lists it up for agent-1, whose inner session to it (a handshake it
# never answers) opens their link; from its inner port it sends UDP to
# agent-1's port 7777, which never sent to it.
"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki" --connector hospital-b >/dev/null
chmod -R a+rX "$D/pki"
cat >"$D/policy.yaml" <<Y
version: 1
default_action: deny
connectors:
  hospital-a:
    prefixes: ["10.20.0.0/16"]
  hospital-b:
    prefixes: ["10.30.0.0/16"]
clients:
  agent-1:
    rules:
      - { id: emr, action: allow, connector: hospital-a }
      - { id: lab, action: allow, connector: hospital-b }
Y
n=$(reloads)
kill -HUP "$RPID"
wait_for 10 "the policy with hospital-b was not reloaded" bash -c "(( \$(grep -c '\"event\":\"policy_reload\",\"result\":\"ok\"' $D/audit.log) > $n ))"
unsol() { metric 'zgate_connector_drops_total{reason="unsolicited"}'; }
before=$(unsol)
ip netns exec "$K" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$ZG_BIN/zgate-probe" --relay "$RELAY_K:4433" \
	--server-name relay.test --ca "$D/pki/ca.crt" --cert "$D/pki/connector-hospital-b.crt" \
	--key "$D/pki/connector-hospital-b.key" --advertise 10.30.0.0/16 --target "$A1" \
	--udp 443:7777 --count 40 --interval 200ms --timeout 1s >"$D/evil.out" 2>&1 &
EPID=$!
cleanup "kill $EPID 2>/dev/null; wait $EPID 2>/dev/null"
link_b() { grep '"event":"connector_open"' "$D/audit.log" | grep '"client":"agent-1"' | grep -q hospital-b; }
wait_for 10 "agent-1 opened no link to hospital-b: $(cat "$D/evil.out")" link_b
wait "$EPID" || fail "the misbehaving connector failed: $(cat "$D/evil.out")"
done_s=$(date +%s)
EV=$(sed -n 's|^address \([0-9.]*\)/32$|\1|p' "$D/evil.out" | head -1)
[[ -n $EV ]] || fail "the misbehaving connector printed no address: $(cat "$D/evil.out")"
# agent-1's status file is rewritten every 5 s while its tunnel is open
fresh() { python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["updated"] <= int(sys.argv[2]))' "$D/status1.json" "$done_s"; }
wait_for 8 "agent-1's status file was not rewritten" fresh
ttls=$(scan flowttl "$DUMP" "$EV" 443 "$A1" 7777)
echo "hospital-b $EV:443 -> agent-1 $A1:7777 in the relay's dump: $ttls; unsolicited drops ${before:-none} -> $(unsol)"
[[ $ttls == *ttl64=* ]] || fail "the control failed: hospital-b's UDP to $A1:7777 did not reach the relay: '$ttls'"
python3 - "$D/status1.json" <<'PY' || fail "agent-1 received hospital-b's unsolicited packets: $(cat "$D/status1.json")"
import json, sys
st = json.load(open(sys.argv[1]))
b = [c for c in st.get("connectors", []) if c.get("id") == "hospital-b"]
print("agent-1's status for hospital-b:", json.dumps(b[0]) if b else "not listed")
sys.exit(0 if b and b[0].get("rx_unsolicited") == 0 else 1)
PY
[[ $ttls != *ttl63* ]] || fail "the relay forwarded hospital-b's UDP to $A1:7777 (ttl63 in the dump): $ttls"
[[ -n $before ]] && (($(unsol) > before)) ||
	fail "zgate_connector_drops_total{reason=\"unsolicited\"} did not count them: ${before:-none} -> $(unsol)"
grep -q "connector hospital-b: packet from $EV:443 to client agent-1 at $A1:7777 dropped" "$D/relay.log" ||
	fail "the relay did not log the unsolicited packets"
pass
