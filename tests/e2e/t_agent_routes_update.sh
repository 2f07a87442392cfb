#!/usr/bin/env bash
# The agent with the real relay: split-tunnel routes are exactly the
# client's allow rules; after a policy reload (SIGHUP) the relay sends the
# new ROUTE_ADVERTISEMENT and the agent adds and removes routes to match
# (C07), without reconnecting; traffic to a range the new policy removed
# no longer enters the tunnel. The relay's DNS service address (the
# gateway, 10.100.0.1) is always routed too (issue 19).
source "$(dirname "$0")/lib.sh"
relay=$ZG_BIN/zgate-relay agent=$ZG_BIN/zgate-agent
[[ -x $relay && -x $agent ]] || fail "binaries not built"
[[ $(id -u) -eq 0 ]] || skip "needs root for network namespaces"
[[ -c /dev/net/tun ]] || skip "no /dev/net/tun"

c=zgt-ruc-$$ r=zgt-rur-$$ s=zgt-rus-$$
for n in $c $r $s; do ip netns add $n; cleanup "ip netns del $n"; ip -n $n link set lo up; done
ip link add zgruc$$ netns $c type veth peer name zgrurc$$ netns $r
ip link add zgrus$$ netns $s type veth peer name zgrurs$$ netns $r
ip -n $c addr add 192.168.78.2/24 dev zgruc$$; ip -n $c link set zgruc$$ up
ip -n $r addr add 192.168.78.1/24 dev zgrurc$$; ip -n $r link set zgrurc$$ up
ip -n $r addr add 198.18.0.1/24 dev zgrurs$$; ip -n $r link set zgrurs$$ up
ip -n $r route add 198.18.2.0/24 dev zgrurs$$
ip -n $s addr add 198.18.0.10/24 dev zgrus$$; ip -n $s addr add 198.18.2.10/24 dev zgrus$$
ip -n $s link set zgrus$$ up
ip -n $c route add default via 192.168.78.1
ip netns exec $r sysctl -qw net.ipv4.ping_group_range="0 2147483647"

d=$ZG_TMP; chmod 755 "$d"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$d/pki" -s relay.test -c agent-1 >/dev/null
chmod -R a+rX "$d/pki"
policy() { # RANGES...
	{ echo "version: 1"; echo "default_action: deny"; echo "clients:"
	  echo "  agent-1:"; echo "    rules:"
	  local i=0 p
	  for p in "$@"; do i=$((i + 1))
		printf '      - id: r%d\n        action: allow\n        destinations: ["%s"]\n' $i "$p"
	  done; } >"$d/policy.tmp"
	chmod 644 "$d/policy.tmp"; mv "$d/policy.tmp" "$d/policy.yaml"
}
policy 198.18.0.0/24 198.18.2.0/24
cat >"$d/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "127.0.0.1:8080"
tls: { cert: $d/pki/relay.crt, key: $d/pki/relay.key, client_ca: $d/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $d/policy.yaml
C
chmod 644 "$d/relay.yaml"
ip netns exec $r setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$relay" --config "$d/relay.yaml" \
	>"$d/audit.log" 2>"$d/relay.log" &
rpid=$!; cleanup "kill -9 $rpid 2>/dev/null"
for _ in $(seq 50); do ip netns exec $r curl -sf 127.0.0.1:8080/ready >/dev/null && break; sleep 0.1; done

ip netns exec $c "$agent" --relay 192.168.78.1:4433 --server-name relay.test \
	--cert "$d/pki/agent-1.crt" --key "$d/pki/agent-1.key" --ca "$d/pki/ca.crt" \
	--status-file "$d/status.json" 2>"$d/agent.log" &
apid=$!; cleanup "kill $apid 2>/dev/null; wait $apid 2>/dev/null"
trap_logs() { echo "--- relay log"; tail -20 "$d/relay.log"; echo "--- agent log"; tail -20 "$d/agent.log"; }
cleanup trap_logs
tunroutes() { ip -n $c route show dev zgate0 2>/dev/null | awk '{print $1}' | sort | tr '\n' ' '; }
wait_routes() { # EXPECTED [TENTHS]: the relay sends at once, so 1 s is plenty after a reload
	local i; for i in $(seq "${2:-50}"); do [[ $(tunroutes) == "$1" ]] && return 0; sleep 0.1; done
	fail "routes via zgate0: expected '$1', got '$(tunroutes)'"
}

step "split tunnel: exactly the allow rules (and the DNS service) are routed through zgate0"
wait_routes "10.100.0.1 198.18.0.0/24 198.18.2.0/24 "
ip netns exec $c ping -c 2 -i 0.2 -W 2 198.18.2.10 >/dev/null || fail "ping 198.18.2.10 through the tunnel"
addr=$(ip -n $c -4 addr show dev zgate0 | awk '/inet /{print $2}')

step "SIGHUP with a narrower policy: the agent removes the withdrawn route, same tunnel"
policy 198.18.0.0/24
kill -HUP $rpid
wait_routes "10.100.0.1 198.18.0.0/24 " 10
ip netns exec $c ping -c 2 -i 0.2 -W 2 198.18.0.10 >/dev/null || fail "ping 198.18.0.10 after the reload"
[[ $(ip -n $c route get 198.18.2.10 | head -1) != *zgate0* ]] || fail "198.18.2.10 still routed into the tunnel"
[[ $(grep -c '"event":"session_open"' "$d/audit.log") -eq 1 ]] || fail "the agent reconnected instead of updating"

step "SIGHUP with a wider policy: the new range is added"
policy 198.18.0.0/24 198.18.2.0/24
kill -HUP $rpid
wait_routes "10.100.0.1 198.18.0.0/24 198.18.2.0/24 " 10
ip netns exec $c ping -c 2 -i 0.2 -W 2 198.18.2.10 >/dev/null || fail "ping 198.18.2.10 after widening"
[[ $(ip -n $c -4 addr show dev zgate0 | awk '/inet /{print $2}') == "$addr" ]] || fail "address changed"
echo PASS
