#!/usr/bin/env bash
# scripts/demo.sh — the main job end to end on this machine, on embedded
# defaults: a PKI, a relay running as uid 65534 with no capabilities in
# its own network namespace, a "hospital SaaS" service namespace behind it,
# and a client. With zgate-agent built, the client is a namespace with a
# real TUN device, and ping and curl reach the service through the tunnel;
# the probe always runs first (no TUN needed); a rule by name
# (portal.lab.example) is reached through the relay's DNS service, with a
# real dnsmasq as the "hospital's" resolver. Everything it makes is
# removed at the end, also on failure. Needs root (namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ZG_BIN:-$PWD/build/bin}
[[ $(id -u) -eq 0 ]] || { echo "make demo: needs root (it creates network namespaces)" >&2; exit 1; }
work=$(mktemp -d /tmp/zgate-demo.XXXXXX)
r=zgdemo-relay s=zgdemo-svc c=zgdemo-client
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for n in $c $r $s; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "/etc/netns/$c"
	rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*" 2>/dev/null || printf '\n== %s\n' "$*"; }

say "1. certificates (scripts/gen-certs.sh): a CA, the relay, clients agent-1 and agent-2"
scripts/gen-certs.sh -d "$work/pki" -s relay.demo -c agent-1 -c agent-2 | sed 's/^/   /'
chmod 755 "$work"; chmod -R a+rX "$work/pki"

say "2. networks: client ⇄ relay ⇄ service (namespaces $c, $r, $s)"
for n in $c $r $s; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add zgd-c netns $c type veth peer name zgd-rc netns $r
ip link add zgd-s netns $s type veth peer name zgd-rs netns $r
ip -n $c addr add 192.168.77.2/24 dev zgd-c; ip -n $c link set zgd-c up
ip -n $r addr add 192.168.77.1/24 dev zgd-rc; ip -n $r link set zgd-rc up
ip -n $r addr add 198.18.0.1/24 dev zgd-rs; ip -n $r link set zgd-rs up
ip -n $s addr add 198.18.0.10/24 dev zgd-s; ip -n $s link set zgd-s up
ip -n $s addr add 198.18.1.10/24 dev zgd-s; ip -n $r route add 198.18.1.0/24 dev zgd-rs
ip -n $c route add default via 192.168.77.1
ip netns exec $r sysctl -qw net.ipv4.ping_group_range="0 2147483647"
echo "   the client has no route to 198.18.0.0/24 except through zgate"
echo '<h1>Hello from the hospital SaaS</h1>' >"$work/index.html"
(cd "$work" && exec ip netns exec $s python3 -m http.server 80 --bind 0.0.0.0) >/dev/null 2>&1 &
pids+=($!)
# the site's resolver: portal.lab.example is 198.18.1.10, outside the CIDR rules
ip netns exec $s "$(command -v dnsmasq || echo /usr/sbin/dnsmasq)" --keep-in-foreground \
	--conf-file=/dev/null --no-resolv --no-hosts --listen-address=198.18.0.10 --bind-interfaces \
	--port=53 --address=/portal.lab.example/198.18.1.10 --pid-file= >/dev/null 2>&1 &
pids+=($!)

cat >"$work/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:            # split tunnel: only the SaaS network, web and ping
    rules:
      - id: saas-web
        action: allow
        destinations: ["198.18.0.0/24"]
        protocols: [tcp]
        ports: ["80", "443"]
      - id: saas-ping
        action: allow
        destinations: ["198.18.0.0/24"]
        protocols: [icmp]
      - id: lab-portal    # by name: reachable once the name was resolved
        action: allow
        destinations: ["portal.lab.example"]
        protocols: [tcp]
        ports: ["80"]
P
cat >"$work/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "127.0.0.1:8080"
tls:
  cert: $work/pki/relay.crt
  key: $work/pki/relay.key
  client_ca: $work/pki/ca.crt
uri_template: "https://relay.demo:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $work/policy.yaml
timeouts:
  drain_grace: 5s
dns:
  upstreams: ["198.18.0.10"]
C
chmod 644 "$work"/*.yaml

say "3. zgate-relay --check-config"
"$BIN/zgate-relay" --config "$work/relay.yaml" --check-config | sed 's/^/   /'

say "4. zgate-relay as uid 65534, every capability dropped"
ip netns exec $r setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$BIN/zgate-relay" --config "$work/relay.yaml" \
	>"$work/audit.jsonl" 2>"$work/relay.log" &
relay=$!; pids+=($relay)
for _ in $(seq 50); do ip netns exec $r curl -sf 127.0.0.1:8080/ready >/dev/null && break; sleep 0.1; done
echo "   /ready: $(ip netns exec $r curl -s 127.0.0.1:8080/ready)"
grep -E '^(Uid|CapEff)' /proc/$relay/status | sed 's/^/   /'

say "5. zgate-probe (no TUN): tunnel, address, routes, ping through the relay"
ip netns exec $c "$BIN/zgate-probe" --relay 192.168.77.1:4433 --server-name relay.demo \
	--cert "$work/pki/agent-1.crt" --key "$work/pki/agent-1.key" --ca "$work/pki/ca.crt" \
	--target 198.18.0.10 --count 3 | sed 's/^/   /'

if [[ -x $BIN/zgate-agent ]]; then
	say "6. zgate-agent with a TUN device in the client namespace"
	# the namespace's own resolver file (ip netns exec binds it over
	# /etc/resolv.conf): the agent points it at the relay (DNS_ASSIGN)
	mkdir -p /etc/netns/$c; printf 'nameserver 192.0.2.1\n' >/etc/netns/$c/resolv.conf
	ip netns exec $c "$BIN/zgate-agent" --relay 192.168.77.1:4433 --server-name relay.demo \
		--cert "$work/pki/agent-1.crt" --key "$work/pki/agent-1.key" --ca "$work/pki/ca.crt" \
		--status-file "$work/agent.status" --dns file --dns-backup "$work/resolv.backup" \
		2>"$work/agent.log" &
	agent=$!; pids+=($agent)
	for _ in $(seq 50); do ip netns exec $c ip route show | grep -q 198.18.0.0 && break; sleep 0.1; done
	echo "   routes in the client namespace:"; ip netns exec $c ip route show | sed 's/^/     /'
	echo "   ping 198.18.0.10:"; ip netns exec $c ping -c 3 -i 0.2 198.18.0.10 | sed 's/^/     /'
	echo "   curl http://198.18.0.10/:"; ip netns exec $c curl -s --max-time 5 http://198.18.0.10/ | sed 's/^/     /'
	echo "   a denied port (198.18.0.10:22) is refused at once:"
	ip netns exec $c curl -s --max-time 5 telnet://198.18.0.10:22 </dev/null 2>&1 | sed 's/^/     /' || echo "     connection refused (TCP RST from the relay)"
	echo "   by name: curl http://portal.lab.example/ (the relay answers DNS in the tunnel,"
	echo "   binds the answer to rule lab-portal and routes 198.18.1.10 to this client):"
	ip netns exec $c curl -s --max-time 5 http://portal.lab.example/ | sed 's/^/     /'
	echo "   the learned route:"; ip netns exec $c ip route show | grep 198.18.1 | sed 's/^/     /'
	kill -TERM $agent; wait $agent 2>/dev/null || true
	echo "   after SIGTERM the agent removed its routes:"; ip netns exec $c ip route show | sed 's/^/     /'
else
	say "6. (zgate-agent is not built yet: the TUN part of the demo is skipped)"
fi

say "7. what the relay recorded"
echo "   audit trail (JSON lines on stdout):"
sed 's/^/     /' "$work/audit.jsonl" | head -12
echo "   metrics (excerpt):"
ip netns exec $r curl -s 127.0.0.1:8080/metrics | grep -E '^zgate_(sessions_opened_total|policy_decisions_total|bytes_total|flows)' | sed 's/^/     /'

say "8. SIGTERM: the relay drains and exits 0"
kill -TERM $relay
rc=0; wait $relay || rc=$?
tail -2 "$work/relay.log" | sed 's/^/   /'
[[ $rc -eq 0 ]] || { echo "relay exit status $rc" >&2; exit 1; }
echo; echo "demo complete."
