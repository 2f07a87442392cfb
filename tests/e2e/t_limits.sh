#!/usr/bin/env bash
# Limits, as an operator would meet them: a pool smaller than the number of
# clients answers the extra one 503 (C05), audited, while the tunnels
# already open keep working; a client that connects again reuses its
# address instead of taking a new one. A connection that never asks for
# a tunnel is closed after timeouts.request; open tunnels outlive it.
source "$(dirname "$0")/lib.sh"
relay=$ZG_BIN/zgate-relay probe=$ZG_BIN/zgate-probe
[[ -x $relay && -x $probe ]] || fail "binaries not built"
[[ $(id -u) -eq 0 ]] || skip "needs root for network namespaces"

ns=zgt-lim-$$ svc=zgt-lsvc-$$
ip netns add "$ns"; cleanup "ip netns del $ns"
ip netns add "$svc"; cleanup "ip netns del $svc"
ip -n "$ns" link set lo up; ip -n "$svc" link set lo up
ip link add zglr$$ netns "$ns" type veth peer name zgls$$ netns "$svc"
ip -n "$ns" addr add 198.18.0.1/24 dev zglr$$; ip -n "$ns" link set zglr$$ up
ip -n "$svc" addr add 198.18.0.2/24 dev zgls$$; ip -n "$svc" link set zgls$$ up
ip netns exec "$ns" sysctl -qw net.ipv4.ping_group_range="0 2147483647"

d=$ZG_TMP; chmod 755 "$d"
ids=(c1 c2 c3 c4 c5 c6)
args=(); for i in "${ids[@]}"; do args+=(-c "$i"); done
"$ZG_ROOT/scripts/gen-certs.sh" -d "$d/pki" "${args[@]}" >/dev/null
chmod -R a+rX "$d/pki"
{
	echo "version: 1"; echo "default_action: deny"; echo "clients:"
	for i in "${ids[@]}"; do
		printf '  %s:\n    rules:\n      - id: svc\n        action: allow\n        destinations: ["198.18.0.0/24"]\n' "$i"
	done
} >"$d/policy.yaml"
cat >"$d/relay.yaml" <<C
listen: "127.0.0.1:4433"
ops_listen: "127.0.0.1:8080"
tls: { cert: $d/pki/relay.crt, key: $d/pki/relay.key, client_ca: $d/pki/ca.crt }
uri_template: "https://localhost:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $d/policy.yaml
pool: { ipv4: 10.100.0.0/29 }
timeouts: { request: 2s }   # below the long tunnels' 3 s: open ones stay
C
chmod 644 "$d"/*.yaml
ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all "$relay" --config "$d/relay.yaml" \
	>"$d/audit.log" 2>"$d/relay.log" &
pid=$!; cleanup "kill -9 $pid 2>/dev/null"
for _ in $(seq 50); do ip netns exec "$ns" curl -sf 127.0.0.1:8080/ready >/dev/null && break; sleep 0.1; done
size=$(ip netns exec "$ns" curl -s 127.0.0.1:8080/metrics | sed -n 's/^zgate_pool_size{version="4"} //p')
[[ $size -ge 1 && $size -lt ${#ids[@]} ]] || fail "pool size $size: expected fewer addresses than ${#ids[@]} clients"
echo "pool of $size addresses, ${#ids[@]} clients"

p() { local c=$1; shift
	$ZG_EXEC ip netns exec "$ns" "$probe" --relay 127.0.0.1:4433 --server-name localhost \
		--cert "$d/pki/$c.crt" --key "$d/pki/$c.key" --ca "$d/pki/ca.crt" "$@"; }

step "fill the pool with $size long-running tunnels"
long=()
for ((i = 0; i < size; i++)); do
	ZG_EXEC=exec p "${ids[$i]}" --target 198.18.0.2 --count 30 --interval 100 >"$d/long$i.out" 2>&1 &
	long+=($!); cleanup "kill $! 2>/dev/null"
	sleep 0.2
done
sleep 0.5
step "one more client: 503, audited; the others keep working"
out=$(p "${ids[$size]}" --count 1 --timeout 3 2>&1) && fail "client beyond the pool was accepted"
expect_contains "$out" "HTTP 503" "503"
audit_wait "$d/audit.log" '"event":"limit_hit","limit":"pool","client":"'"${ids[$size]}"'"' ||
	fail "pool exhaustion not audited"
for ((i = 0; i < size; i++)); do
	wait "${long[$i]}" || fail "tunnel ${ids[$i]} broke: $(tail -3 "$d/long$i.out")"
done
step "the pool is free again once they closed"
p "${ids[$size]}" --target 198.18.0.2 --count 1 >/dev/null || fail "no address after the others left"
used=$(ip netns exec "$ns" curl -s 127.0.0.1:8080/metrics | sed -n 's/^zgate_pool_used{version="4"} //p')
[[ $used -eq 0 ]] || fail "addresses still in use after every tunnel closed: $used"

step "a connection that never asks for a tunnel is closed after timeouts.request (2 s)"
t0=$(date +%s%N)
out=$(p "${ids[0]}" --no-request --timeout 8s 2>&1) || fail "not closed by the relay: $out"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "$out (after $ms ms)"
expect_contains "$out" "no CONNECT-IP tunnel within 2000 ms" "close reason"
(( ms >= 1900 && ms < 6000 )) || fail "closed after $ms ms, expected about 2000"
n=$(ip netns exec "$ns" curl -s 127.0.0.1:8080/metrics | sed -n 's/^zgate_quic_request_timeouts_total //p')
[[ $n == 1 ]] || fail "zgate_quic_request_timeouts_total is '$n', expected 1"
echo PASS
