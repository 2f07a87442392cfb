#!/usr/bin/env bash
# DNS from the relay (issue 19.5, C26). The relay sends DNS_ASSIGN
# (draft-ietf-masque-connect-ip-dns) after the routes; the agent (dns: file)
# points the resolver file of its own view — the client namespace's
# /etc/netns/<ns>/resolv.conf, which `ip netns exec` binds over
# /etc/resolv.conf — at the relay's DNS server. Here dns.nameservers names a
# dnsmasq in the service namespace, reached through the tunnel by a udp 53
# rule: a name under the assigned domains resolves through the tunnel. The
# status file and `zgate-agent status` show it; SIGTERM puts the original
# file back byte for byte; after kill -9 the next start restores it from the
# backup before it ever connects; with dns: off nothing is touched, and the
# relay (dns.enabled auto) sends DNS_ASSIGN only to an agent that sent one;
# with dns.enabled true every client gets it with the 200, and one that does
# not use it (dns: off) keeps working.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[[ -x $DNSMASQ ]] || skip "dnsmasq missing (apt package dnsmasq-base)"
topo_init 1
topo_pki agent-1
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.10/32"], protocols: [tcp] }
      - { id: dns, action: allow, destinations: ["198.18.0.53/32"], protocols: [udp], ports: ["53"] }
P
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
dns:
  domains: [saas.example, Lab.Example.]
  nameservers: [198.18.0.53]
C
ip -n "$S" addr add 198.18.0.53/24 dev "${T}s"

# a real DNS server for the zone, in the service namespace
ip netns exec "$S" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--listen-address=198.18.0.53 --bind-interfaces --port=53 --user=root --pid-file= \
	--address=/app.saas.example/198.18.0.10 --address=/db.lab.example/198.18.0.11 \
	--log-queries --log-facility="$D/dnsmasq.log" &
DPID=$!
cleanup "kill $DPID 2>/dev/null; wait $DPID 2>/dev/null"

# the client namespace's resolver file: what it must get back exactly (a
# comment, a search line, options, a CR, no final newline)
NSDIR=/etc/netns/${C[1]}
mkdir -p "$NSDIR"
cleanup "rm -rf $NSDIR"
printf '# the original, kept byte for byte\nnameserver 192.0.2.1\nsearch corp.example\noptions timeout:1 attempts:1\r\n# end' \
	>"$NSDIR/resolv.conf"
cp "$NSDIR/resolv.conf" "$D/resolv.orig"
BACKUP=$D/agent-1.resolv.backup

topo_relay --log-level debug
grep -q 'DNS_ASSIGN: on, to clients that send one: nameserver 198.18.0.53, domains saas.example, lab.example' \
	"$D/relay.log" || fail "relay does not announce its DNS_ASSIGN: $(grep -i dns "$D/relay.log")"

step "the agent writes the relay's DNS server into its resolver file"
topo_agent 1 agent-1 --dns file --dns-backup "$BACKUP"
for k in $(seq 50); do grep -q 198.18.0.53 "$NSDIR/resolv.conf" && break; sleep 0.1; done
cat "$NSDIR/resolv.conf"; echo
[[ $(grep -m1 '^nameserver' "$NSDIR/resolv.conf") == "nameserver 198.18.0.53" ]] ||
	fail "the relay's server is not the first nameserver"
grep -q '^nameserver 192.0.2.1$' "$NSDIR/resolv.conf" || fail "the original server is not kept as a fallback"
grep -q '^options timeout:1 attempts:1' "$NSDIR/resolv.conf" || fail "options line lost"
[[ -f $BACKUP ]] || fail "no backup at $BACKUP"
inc 1 cat /etc/resolv.conf | grep -q 198.18.0.53 || fail "the namespace's view of /etc/resolv.conf is not the file"
grep -q 'dns: file /etc/resolv.conf: 1 servers (first 198.18.0.53), 2 domains (first saas.example)' \
	"$D/agent1.log" || fail "agent log: $(grep dns: "$D/agent1.log")"
grep -h 'DNS_ASSIGN: ' "$D/relay.log"; grep -h 'dns: ' "$D/agent1.log"

step "a name under the assigned domains resolves through the tunnel"
out=$(inc 1 getent hosts app.saas.example) || fail "app.saas.example does not resolve"
echo "$out"
[[ $out == "198.18.0.10"*"app.saas.example" ]] || fail "answer: $out"
grep -q 'query\[A\] app.saas.example from 198.18.0.1' "$D/dnsmasq.log" ||
	fail "the query did not come through the relay: $(cat "$D/dnsmasq.log")"
audit_wait "$D/audit.log" '"event":"flow_allow".*"proto":"udp".*"dst":"198.18.0.53".*"dport":53.*"rule":"dns"' ||
	fail "the DNS flow is not audited with rule dns"
svc_start web tcp-echo 198.18.0.10 80
inc 1 python3 -c 'import socket; s = socket.create_connection(("app.saas.example", 80), 3); s.sendall(b"hi"); assert s.recv(2) == b"hi"' ||
	fail "TCP to app.saas.example by name"

step "status file and zgate-agent status"
cat "$D/status1.json"; echo
grep -q '"dns":\["198.18.0.53"\],"dns_domains":\["saas.example","lab.example"\],"dns_via":"file /etc/resolv.conf"' \
	"$D/status1.json" || fail "status file lacks the DNS"
out=$("$AGENT" status --status-file "$D/status1.json") || fail "zgate-agent status: $out"
echo "$out"
expect_contains "$out" "  dns: 198.18.0.53" "status"
expect_contains "$out" "  dns domains: saas.example, lab.example" "status"
expect_contains "$out" "  dns via: file /etc/resolv.conf" "status"

step "SIGTERM: the original file back, byte for byte; the backup gone"
kill -TERM "${APID[1]}"; wait "${APID[1]}" || fail "agent exit status $?"
cmp "$NSDIR/resolv.conf" "$D/resolv.orig" || fail "resolver file not restored exactly"
[[ ! -e $BACKUP ]] || fail "backup left behind"

step "kill -9: the next start restores the file before it connects"
topo_agent 1 agent-1 --dns file --dns-backup "$BACKUP"
for k in $(seq 50); do grep -q 198.18.0.53 "$NSDIR/resolv.conf" && break; sleep 0.1; done
grep -q 198.18.0.53 "$NSDIR/resolv.conf" || fail "second start did not write the file"
kill -KILL "${APID[1]}"; wait "${APID[1]}" 2>/dev/null || true
grep -q 198.18.0.53 "$NSDIR/resolv.conf" || fail "file changed by a killed agent?"
[[ -f $BACKUP ]] || fail "no backup after kill -9"
# a relay that is not there: nothing will be assigned, only the recovery runs
ip netns exec "${C[1]}" "$AGENT" --relay 192.168.81.1:9 --server-name relay.test \
	--cert "$D/pki/agent-1.crt" --key "$D/pki/agent-1.key" --ca "$D/pki/ca.crt" \
	--dns file --dns-backup "$BACKUP" --tun zgate1 2>>"$D/agent1b.log" &
BPID=$!
cleanup "kill $BPID 2>/dev/null; wait $BPID 2>/dev/null"
for k in $(seq 50); do grep -q 'restored from' "$D/agent1b.log" && break; sleep 0.1; done
grep 'dns:' "$D/agent1b.log"
grep -q "dns: /etc/resolv.conf restored from $BACKUP" "$D/agent1b.log" || fail "no restore at start"
cmp "$NSDIR/resolv.conf" "$D/resolv.orig" || fail "not restored exactly after the crash"
[[ ! -e $BACKUP ]] || fail "backup left after the recovery"
kill -TERM $BPID; wait $BPID || fail "agent (no relay) exit status $?"
cmp "$NSDIR/resolv.conf" "$D/resolv.orig" || fail "an agent that got no DNS_ASSIGN changed the file"

step "dns: off leaves the file alone"
topo_agent 1 agent-1 --dns off
sleep 1
cmp "$NSDIR/resolv.conf" "$D/resolv.orig" || fail "dns: off changed the file"
grep -q '"dns_via":"off"' "$D/status1.json" || fail "status does not say off"
kill -TERM "${APID[1]}"; wait "${APID[1]}" || fail "agent exit status $?"
# an agent with dns: off did not send DNS_ASSIGN, so the relay (dns.enabled
# auto) sent it none: only the two tunnels above got one
n=$(grep -c 'agent-1: DNS_ASSIGN sent' "$D/relay.log")
[[ $n -eq 2 ]] || fail "the relay sent DNS_ASSIGN $n times, expected 2 (not to the dns: off agent)"

step "dns.enabled true: DNS_ASSIGN with the 200 to every client; one that does not use it ignores it"
kill -TERM "$RPID"; wait "$RPID" 2>/dev/null || true
topo_relay --log-level debug --dns-enabled true
grep -q 'DNS_ASSIGN: on, to every client: nameserver 198.18.0.53' "$D/relay.log" || fail "relay line for true"
topo_agent 1 agent-1 --dns off
grep -q 'agent-1: DNS_ASSIGN sent with the 200' "$D/relay.log" || fail "not sent with the 200"
inc 1 python3 -c 'import socket; s = socket.create_connection(("198.18.0.10", 80), 3); s.sendall(b"hi"); assert s.recv(2) == b"hi"' ||
	fail "the tunnel of a client that ignores DNS_ASSIGN does not work"
cmp "$NSDIR/resolv.conf" "$D/resolv.orig" || fail "dns: off changed the file"
kill -TERM "${APID[1]}"; wait "${APID[1]}" || fail "agent exit status $?"
pass
