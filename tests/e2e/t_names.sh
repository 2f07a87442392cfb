#!/usr/bin/env bash
# Issue 19: names, not just addresses. A real DNS server (dnsmasq) in the
# service namespace holds portal.lab.example (198.18.0.10), a wildcard
# zone *.saas.example (198.18.1.10) and evil.saas.example (127.0.0.1); the
# relay's DNS service answers on the gateway address inside the tunnel and
# forwards to it. The policy names only names, no address:
#   - before resolving, the service address is not routed into the tunnel,
#     and a flow forced to it is refused by policy;
#   - portal.lab.example resolves (dig, UDP and TCP) through the tunnel,
#     dns_allow is audited, the address becomes a route on the agent and
#     curl to it works, its flow audited with rule and name;
#   - x.saas.example resolves through the wildcard, the apex does not;
#   - an unlisted name gets NXDOMAIN and a dns_deny line (client, name, qtype);
#   - evil.saas.example (127.0.0.1: rebinding) is REFUSED and audited;
#   - several new names resolved at once: each answer reaches the client
#     after the route of its address (its first SYN finds the tunnel);
#   - after the TTL the learned route is withdrawn from the agent.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v dnsmasq >/dev/null || skip "dnsmasq missing (Debian dnsmasq-base)"
command -v dig >/dev/null || skip "dig missing (Debian bind9-dnsutils)"
command -v curl >/dev/null || skip "curl missing"

topo_init 1
topo_pki agent-1
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - id: lab-portal
        action: allow
        destinations: ["portal.lab.example", "*.saas.example"]
        protocols: [tcp]
        ports: ["80"]
P
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
dns:
  upstreams: ["198.18.0.10"]
  ttl_floor: 1s
  deny_answer: nxdomain
C

# the zone: answers with a 3 s TTL so that expiry is seen quickly
ZG_EXEC=exec ins dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root --group=root \
	--listen-address=198.18.0.10 --bind-interfaces --port=53 --local-ttl=3 \
	--address=/portal.lab.example/198.18.0.10 --address=/saas.example/198.18.1.10 \
	--address=/evil.saas.example/127.0.0.1 --address=/unlisted.example/198.18.0.10 \
	$(for i in 1 2 3 4 5 6; do printf -- '--address=/b%d.saas.example/198.18.2.%d ' $i $i; done) \
	--log-queries --log-facility="$D/dnsmasq.log" --pid-file= >"$D/dnsmasq.out" 2>&1 &
DPID=$!
cleanup "kill $DPID 2>/dev/null; wait $DPID 2>/dev/null"
svc_start web http 0.0.0.0 80 "portal ok"
for k in $(seq 50); do ins dig +short +time=1 +tries=1 @198.18.0.10 portal.lab.example | grep -q . && break; sleep 0.1; done
topo_relay
# the client namespace's own resolver file (ip netns exec binds it over
# /etc/resolv.conf): the agent points it at the relay (DNS_ASSIGN)
NSDIR=/etc/netns/${C[1]}
mkdir -p "$NSDIR"; cleanup "rm -rf $NSDIR"
printf 'nameserver 192.0.2.1\n' >"$NSDIR/resolv.conf"
topo_agent 1 agent-1 --dns file --dns-backup "$D/agent-1.resolv.backup"
GW=10.100.0.1

step "DNS_ASSIGN carries the client's policy names: the agent's resolver is the relay's"
for k in $(seq 50); do grep -q "^nameserver $GW" "$NSDIR/resolv.conf" && break; sleep 0.1; done
cat "$NSDIR/resolv.conf"
[[ $(grep -m1 '^nameserver' "$NSDIR/resolv.conf") == "nameserver $GW" ]] ||
	fail "the agent's resolver file does not name the relay's DNS service first"
out=$("$AGENT" status --status-file "$D/status1.json")
grep '^ *dns' <<<"$out"
expect_contains "$out" "portal.lab.example" "DNS_ASSIGN domains: the exact name"
expect_contains "$out" "saas.example" "DNS_ASSIGN domains: the wildcard's suffix"
via_tunnel() { [[ $(inc 1 ip route get "$1") == *zgate0* ]]; }
ask() { inc 1 dig +time=2 +tries=1 @$GW "$@"; }

step "before any answer: only the DNS service's address is routed into the tunnel"
via_tunnel $GW || fail "the gateway $GW (DNS service) is not routed: $(inc 1 ip route)"
via_tunnel 198.18.0.10 && fail "198.18.0.10 routed before its name was resolved"
# forced into the tunnel anyway, a flow to it is refused: the name was not resolved yet
inc 1 ip route add 198.18.0.10/32 dev zgate0
out=$(inc 1 curl -sS --max-time 3 http://198.18.0.10/ 2>&1) && fail "198.18.0.10 reachable before resolving: $out"
inc 1 ip route del 198.18.0.10/32 dev zgate0
audit_wait "$D/audit.log" '"event":"flow_deny".*"dst":"198.18.0.10".*"dport":80.*"rule":"default"' ||
	fail "the early flow was not denied by policy: $(grep flow_ "$D/audit.log" | tail -2)"

step "an allowed name resolves through the tunnel (UDP), dns_allow audited"
out=$(ask portal.lab.example A)
grep -E 'status:|^portal' <<<"$out"
expect_contains "$out" "status: NOERROR" "dig portal.lab.example"
expect_contains "$out" "198.18.0.10" "dig portal.lab.example"
audit_wait "$D/audit.log" \
	'"event":"dns_allow".*"client":"agent-1".*"name":"portal.lab.example".*"qtype":"A".*"rule":"lab-portal"' || fail "dns_allow not audited: $(grep dns_ "$D/audit.log" | tail -3)"
grep -q 'portal.lab.example' "$D/dnsmasq.log" || fail "the upstream never saw the query"

step "the answer's address becomes a route on the agent"
for k in $(seq 30); do via_tunnel 198.18.0.10 && break; sleep 0.1; done
via_tunnel 198.18.0.10 || fail "198.18.0.10 not routed after the answer: $(inc 1 ip route)"
echo "agent: $(inc 1 ip route get 198.18.0.10 | head -1)"

step "curl to the name works; the flow is audited with rule and name"
out=$(inc 1 curl -sS --max-time 5 --resolve portal.lab.example:80:198.18.0.10 http://portal.lab.example/) ||
	fail "curl portal.lab.example: $out"
expect_contains "$out" "portal ok" "curl portal.lab.example"
audit_wait "$D/audit.log" \
	'"event":"flow_allow".*"dst":"198.18.0.10".*"dport":80.*"rule":"lab-portal".*"name":"portal.lab.example"' || fail "flow_allow without rule and name: $(grep flow_allow "$D/audit.log" | tail -2)"
# the rule's port still applies to the learned address
out=$(inc 1 curl -sS --max-time 3 http://198.18.0.10:8081/ 2>&1) && fail "port 8081 allowed: $out"

step "over TCP to the DNS service as well"
out=$(ask +tcp y.saas.example A)
expect_contains "$out" "198.18.1.10" "dig +tcp y.saas.example"
audit_wait "$D/audit.log" '"event":"dns_allow".*"name":"y.saas.example"' || fail "TCP query not audited"

step "a wildcard rule covers names below it, not its apex"
out=$(ask x.saas.example A)
expect_contains "$out" "198.18.1.10" "dig x.saas.example"
for k in $(seq 30); do via_tunnel 198.18.1.10 && break; sleep 0.1; done
via_tunnel 198.18.1.10 || fail "198.18.1.10 not routed after x.saas.example"
out=$(ask saas.example A)
expect_contains "$out" "status: NXDOMAIN" "dig saas.example (the apex)"

step "an unlisted name: NXDOMAIN, dns_deny audited with client, name, qtype"
out=$(ask unlisted.example AAAA)
grep 'status:' <<<"$out"
expect_contains "$out" "status: NXDOMAIN" "dig unlisted.example"
audit_wait "$D/audit.log" \
	'"event":"dns_deny".*"client":"agent-1".*"name":"unlisted.example".*"qtype":"AAAA".*"rule":"default"' || fail "dns_deny not audited: $(grep dns_deny "$D/audit.log" | tail -2)"
grep -q 'unlisted.example' "$D/dnsmasq.log" && fail "a denied name was forwarded upstream"

step "DNS rebinding: an allowed name resolving to 127.0.0.1 is refused"
out=$(ask evil.saas.example A)
grep 'status:' <<<"$out"
expect_contains "$out" "status: REFUSED" "dig evil.saas.example"
audit_wait "$D/audit.log" '"event":"dns_deny".*"name":"evil.saas.example".*"reason":"rebinding"' ||
	fail "rebinding not audited"
via_tunnel 127.0.0.1 && fail "127.0.0.1 routed into the tunnel"

step "six new names at once (a web page): each answer comes after its route"
# each dig checks, the moment its answer is in, that the address already
# goes by the tunnel: the answers of one coalescing window are held until
# the advertisement that holds their routes
pids=()
for i in 1 2 3 4 5 6; do
	(a=$(ask +short b$i.saas.example A) && [[ $a == 198.18.2.$i ]] &&
		[[ $(inc 1 ip route get 198.18.2.$i) == *zgate0* ]] ||
		echo "b$i.saas.example: answer '$a' before its route: $(inc 1 ip route get 198.18.2.$i)") \
		>"$D/burst$i.out" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
cat "$D"/burst*.out
[[ -z $(cat "$D"/burst*.out) ]] || fail "an answer reached the client before its route"
[[ $(metric 'zgate_dns_service_answers_held_total') -ge 1 ]] ||
	fail "no answer was held: the six did not share a window"

step "metrics count the queries by result"
m=$(metrics | grep '^zgate_dns_service_queries_total')
echo "$m"
[[ $(metric 'zgate_dns_service_queries_total{result="denied"}') -ge 2 ]] || fail "denied queries not counted"
[[ $(metric 'zgate_dns_service_queries_total{result="rebinding"}') -ge 1 ]] || fail "rebinding not counted"
[[ $(metric 'zgate_dns_learned_bindings') -ge 2 ]] || fail "learned bindings not counted"

step "after the TTL the learned routes are withdrawn"
for k in $(seq 80); do via_tunnel 198.18.1.10 || via_tunnel 198.18.2.6 || break; sleep 0.1; done
via_tunnel 198.18.1.10 && fail "198.18.1.10 still routed 8 s after its 3 s TTL"
via_tunnel 198.18.2.6 && fail "198.18.2.6 still routed 8 s after its 3 s TTL"
via_tunnel 198.18.0.10 && fail "198.18.0.10 still routed after its TTL"
via_tunnel $GW || fail "the DNS service's address was withdrawn"
[[ $(metric 'zgate_dns_learned_bindings') -eq 0 ]] || fail "bindings left after the TTL"
grep -hE '"event":"(dns_|flow_allow)' "$D/audit.log" | head -8

step "a policy reload that names a new name: the agent gets a new DNS_ASSIGN"
sed 's|"portal.lab.example", |"portal.lab.example", "wiki.lab.example", |' "$D/policy.yaml" >"$D/policy.yaml.tmp"
chmod 644 "$D/policy.yaml.tmp"; mv -f "$D/policy.yaml.tmp" "$D/policy.yaml"
for k in $(seq 50); do
	"$AGENT" status --status-file "$D/status1.json" | grep -q 'wiki.lab.example' && break
	sleep 0.1
done
out=$("$AGENT" status --status-file "$D/status1.json")
grep '^ *dns domains' <<<"$out"
expect_contains "$out" "wiki.lab.example" "DNS_ASSIGN after the reload"
pass
