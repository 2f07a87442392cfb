#!/usr/bin/env bash
# Issue 16.8b: a DNS-name target (C03) is checked before the relay asks its
# resolver anything. The relay's resolver is a logging DNS server in the
# service namespace (/etc/netns/<relay ns>/resolv.conf), so every query the
# relay makes is seen:
#   - a client whose policy allows nothing: 403, no query;
#   - an allowed client: resolved (one name queried), tunnel scoped to it;
#   - a name outside dns.resolvable: 403, no query;
#   - more than dns.resolutions_per_minute: 429, no query.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
PROBE=$ZG_BIN/zgate-probe
[[ -x $PROBE ]] || fail "zgate-probe not built"

topo_init 1
topo_pki agent-1 nobody
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
P

# The relay namespace's resolver: ip netns exec bind-mounts this file over
# /etc/resolv.conf.
mkdir -p "/etc/netns/$R"
cleanup "rm -rf /etc/netns/$R"
printf 'nameserver 198.18.0.10\noptions timeout:2 attempts:1\n' >"/etc/netns/$R/resolv.conf"
ZG_EXEC=exec ins python3 - "$D/queries.log" >"$D/dns.out" 2>&1 <<'PY' &
import socket, struct, sys
log = open(sys.argv[1], "a", buffering=1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.10", 53))
print("listening", flush=True)
while True:
    q, peer = s.recvfrom(512)
    labels, i = [], 12
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
        i += 1 + q[i]
    name = ".".join(labels).lower()
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    log.write(f"{name} {qtype}\n")
    head, question = q[:2], q[12:i + 5]
    if name == "saas.example" and qtype == 1:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("198.18.0.10")
        s.sendto(head + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + rr, peer)
    else:
        s.sendto(head + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0) + question, peer)
PY
cleanup "kill $! 2>/dev/null"
for _ in $(seq 50); do grep -q listening "$D/dns.out" && break; sleep 0.1; done
touch "$D/queries.log"

topo_relay --dns-resolvable "saas.example, .corp.example" --dns-resolutions-per-minute 3

p() { # CLIENT ARGS...
	local c=$1; shift
	ip netns exec "$R" "$PROBE" --relay 127.0.0.1:4433 --server-name relay.test \
		--template "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/" \
		--cert "$D/pki/$c.crt" --key "$D/pki/$c.key" --ca "$D/pki/ca.crt" "$@"
}
queries() { wc -l <"$D/queries.log"; }

step "a client allowed nothing asks for a DNS-name target: 403 and no DNS query"
out=$(p nobody --scope-target saas.example --timeout 3 2>&1) && fail "nobody admitted: $out"
expect_contains "$out" "HTTP 403" "403"
[[ $(queries) -eq 0 ]] || fail "the relay resolved for a client allowed nothing: $(cat "$D/queries.log")"
[[ $(metric 'zgate_dns_refused_total{reason="policy"}') == 1 ]] || fail "not counted: $(metrics | grep dns_)"
[[ $(metric zgate_dns_queries_total) == 0 ]] || fail "queries counted"

step "an allowed client: the name is resolved, the tunnel scoped to its address"
out=$(p agent-1 --scope-target saas.example 2>&1) || fail "DNS-name target refused: $out"
expect_contains "$out" "route 198.18.0.10-198.18.0.10" "scoped to the resolved address"
grep -q "^saas.example " "$D/queries.log" || fail "no query seen: $(cat "$D/queries.log")"
n=$(queries)

step "a name outside dns.resolvable: 403, no query"
out=$(p agent-1 --scope-target db.internal --timeout 3 2>&1) && fail "unlisted name admitted: $out"
expect_contains "$out" "HTTP 403" "403"
[[ $(queries) -eq $n ]] || fail "unlisted name resolved: $(cat "$D/queries.log")"
grep -q "target db.internal is not in dns.resolvable: 403" "$D/relay.log" || fail "not logged"

step "more than dns.resolutions_per_minute (3): 429, no query"
p agent-1 --scope-target saas.example >/dev/null 2>&1 || fail "second resolution refused"
p agent-1 --scope-target saas.example >/dev/null 2>&1 || fail "third resolution refused"
n=$(queries)
out=$(p agent-1 --scope-target saas.example --timeout 3 2>&1) && fail "fourth resolution admitted: $out"
expect_contains "$out" "HTTP 429" "429"
[[ $(queries) -eq $n ]] || fail "rate-limited name resolved"
[[ $(metric 'zgate_dns_refused_total{reason="rate"}') == 1 ]] || fail "rate refusal not counted"
[[ $(metric 'zgate_tunnel_refused_total{status="429"}') == 1 ]] || fail "429 not counted: $(metrics | grep tunnel_refused)"
[[ $(metric 'zgate_dns_refused_total{reason="not_listed"}') == 1 ]] || fail "list refusal not counted"
ZG_PASSED=1
