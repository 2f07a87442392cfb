#!/usr/bin/env bash
# Traffic through the whole product: agent (TUN) → relay (uid 65534, no
# capabilities, lwIP) → service. Ping; 100 MB TCP each way with SHA-256
# match; UDP request/response; a DNS query. (200 concurrent connections:
# t_concurrent.sh.)
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
      - id: saas
        action: allow
        destinations: ["198.18.0.0/24"]
P
topo_relay
topo_agent 1 agent-1
svc=198.18.0.10

step "ping through the tunnel"
inc 1 ping -c 3 -i 0.2 -W 2 $svc >/dev/null || fail "ping $svc"

step "100 MB TCP up and down, SHA-256 match"
svc_start sink tcp-sink $svc 5001
svc_start source tcp-source $svc 5002 100000000
t0=$(date +%s%N)
up=$(inc 1 $SVC send $svc 5001 100000000) || fail "upload: $up"
t1=$(date +%s%N)
for _ in $(seq 50); do grep -q sha256 "$D/svc-sink.out" && break; sleep 0.1; done
got=$(grep sha256 "$D/svc-sink.out" | tail -1)
[[ "$up" == "$got" ]] || fail "upload: sent '$up', the service got '$got'"
t2=$(date +%s%N)
down=$(inc 1 $SVC recv $svc 5002) || fail "download: $down"
t3=$(date +%s%N)
for _ in $(seq 50); do grep -q sha256 "$D/svc-source.out" && break; sleep 0.1; done
sent=$(grep sha256 "$D/svc-source.out" | tail -1)
[[ "$down" == "$sent" ]] || fail "download: the service sent '$sent', the client got '$down'"
echo "upload $(( 800000 / ((t1 - t0) / 1000000 + 1) )) Mbit/s, download $(( 800000 / ((t3 - t2) / 1000000 + 1) )) Mbit/s (one stream, informational)"

step "UDP request/response and a DNS query"
svc_start udp udp-echo $svc 7
out=$(inc 1 $SVC udp-query $svc 7 "hello through zgate") || fail "UDP: $out"
[[ $out == "hello through zgate" ]] || fail "UDP echo: '$out'"
svc_start dns dns $svc 53 saas.example 198.18.0.10
out=$(inc 1 $SVC dns-query $svc 53 saas.example) || fail "DNS: $out"
[[ $out == "198.18.0.10" ]] || fail "DNS answer: '$out'"

pass
