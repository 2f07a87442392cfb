#!/usr/bin/env bash
# IPv6: the relay in a namespace whose only non-loopback addresses are
# IPv6 (as in an IPv6-only pod) starts, serves /ready, assigns an address
# from its IPv6 pool and relays ICMPv6 echo to an IPv6 service.
source "$(dirname "$0")/lib.sh"
relay=$ZG_BIN/zgate-relay probe=$ZG_BIN/zgate-probe
[[ -x $relay && -x $probe ]] || fail "binaries not built"
[[ $(id -u) -eq 0 ]] || skip "needs root for network namespaces"

r=zgt-v6r-$$ s=zgt-v6s-$$
for n in $r $s; do ip netns add $n; cleanup "ip netns del $n"; ip -n $n link set lo up; done
ip link add zgv6a$$ netns $r type veth peer name zgv6b$$ netns $s
ip -n $r addr add 2001:db8:5::1/64 dev zgv6a$$ nodad; ip -n $r link set zgv6a$$ up
ip -n $s addr add 2001:db8:5::2/64 dev zgv6b$$ nodad; ip -n $s link set zgv6b$$ up
ip netns exec $r sysctl -qw net.ipv4.ping_group_range="0 2147483647"
# Neighbour discovery waits for the link-local addresses to leave DAD.
for _ in $(seq 50); do
	[[ -z $(ip -n $r -6 addr show tentative; ip -n $s -6 addr show tentative) ]] && break; sleep 0.1
done

d=$ZG_TMP; chmod 755 "$d"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$d/pki" -c agent-1 >/dev/null
chmod -R a+rX "$d/pki"
cat >"$d/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - id: v6-svc
        action: allow
        destinations: ["2001:db8:5::/64"]
P
cat >"$d/relay.yaml" <<C
listen: "[::1]:4433"
ops_listen: "127.0.0.1:8080"
tls: { cert: $d/pki/relay.crt, key: $d/pki/relay.key, client_ca: $d/pki/ca.crt }
uri_template: "https://localhost:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $d/policy.yaml
pool: { ipv4: 10.100.0.0/24, ipv6: "fd00:100::/64" }
C
chmod 644 "$d"/*.yaml
ip netns exec $r setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$relay" --config "$d/relay.yaml" \
	>"$d/audit.log" 2>"$d/relay.log" &
pid=$!; cleanup "kill -9 $pid 2>/dev/null"
for _ in $(seq 50); do ip netns exec $r curl -sf 127.0.0.1:8080/ready >/dev/null && break; sleep 0.1; done
[[ $(ip netns exec $r curl -s 127.0.0.1:8080/ready) == ready ]] ||
	fail "not ready in an IPv6-only namespace: $(cat "$d/relay.log")"

step "IPv6 address from the pool, IPv6 route, ICMPv6 echo through the relay"
out=$(ip netns exec $r "$probe" --relay "[::1]:4433" --server-name localhost \
	--cert "$d/pki/agent-1.crt" --key "$d/pki/agent-1.key" --ca "$d/pki/ca.crt" \
	--target 2001:db8:5::2 --count 3 --interval 50) || fail "probe: $out $(tail -5 "$d/relay.log")"
echo "$out"
expect_contains "$out" "address fd00:100::" "IPv6 address from the pool"
expect_contains "$out" "route 2001:db8:5::-2001:db8:5:0:ffff:ffff:ffff:ffff" "IPv6 route"
expect_contains "$out" "3 received" "ICMPv6 echo"
audit_wait "$d/audit.log" '"proto":"icmpv6".*"rule":"v6-svc"' || fail "ICMPv6 flow not audited"
echo PASS
