# tests/e2e/topo.sh — the product topology for end-to-end scenarios
# (sourced after lib.sh):
#
#   client ns c1..cN (zgate-agent, TUN zgate0) ── relay ns (zgate-relay,
#   uid 65534, no capabilities) ── service ns (198.18.0.10 "SaaS",
#   198.18.1.10 "internal", 169.254.169.254 decoy on lo)
#
# Client i reaches the relay at 192.168.(80+i).1; the service namespace is
# reachable from the relay only. Everything is removed at exit (lib.sh).
# Call: topo_init N; topo_pki ID...; write "$D/policy.yaml";
# topo_relay [FLAGS...]; topo_agent I ID [FLAGS...]; then the scenario.

[[ $(id -u) -eq 0 ]] || skip "needs root for network namespaces"
[[ -c /dev/net/tun ]] || skip "no /dev/net/tun"
command -v python3 >/dev/null || skip "python3 missing"
RELAY=$ZG_BIN/zgate-relay AGENT=$ZG_BIN/zgate-agent SVC="python3 $ZG_ROOT/tests/e2e/svc.py"
[[ -x $RELAY && -x $AGENT ]] || fail "zgate-relay and zgate-agent must be built"
D=$ZG_TMP; chmod 755 "$D"
T=zg$$ # short: interface names are limited to 15 characters
R=zgt-$T-r S=zgt-$T-s
declare -a C APID

topo_init() { # NCLIENTS
	local i
	ip netns add "$R"; cleanup "ip netns del $R"
	ip netns add "$S"; cleanup "ip netns del $S"
	ip -n "$R" link set lo up; ip -n "$S" link set lo up
	ip link add "${T}rs" netns "$R" type veth peer name "${T}s" netns "$S"
	ip -n "$R" addr add 198.18.0.1/24 dev "${T}rs"; ip -n "$R" link set "${T}rs" up
	ip -n "$R" route add 198.18.1.0/24 dev "${T}rs"
	ip -n "$R" route add 169.254.169.254/32 dev "${T}rs"
	ip -n "$S" addr add 198.18.0.10/24 dev "${T}s"
	ip -n "$S" addr add 198.18.1.10/24 dev "${T}s"
	ip -n "$S" addr add 169.254.169.254/32 dev lo
	ip -n "$S" link set "${T}s" up
	ip netns exec "$R" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
	for ((i = 1; i <= $1; i++)); do
		C[$i]=zgt-$T-c$i
		ip netns add "${C[$i]}"; cleanup "ip netns del ${C[$i]}"
		ip -n "${C[$i]}" link set lo up
		ip link add "${T}c$i" netns "${C[$i]}" type veth peer name "${T}r$i" netns "$R"
		ip -n "${C[$i]}" addr add "192.168.$((80 + i)).2/24" dev "${T}c$i"
		ip -n "${C[$i]}" link set "${T}c$i" up
		ip -n "$R" addr add "192.168.$((80 + i)).1/24" dev "${T}r$i"
		ip -n "$R" link set "${T}r$i" up
		ip -n "${C[$i]}" route add default via "192.168.$((80 + i)).1"
	done
	cleanup topo_logs_on_failure
}

topo_pki() { # CLIENT_ID...
	local args=() id
	for id in "$@"; do args+=(-c "$id"); done
	"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki" -s relay.test "${args[@]}" >/dev/null
	chmod -R a+rX "$D/pki"
}

# Writes $D/policy.yaml: each CLIENT_ID may open TCP to the SaaS range
# 198.18.0.0/24 (rule id "saas"), nothing else.
topo_policy_tcp() { # CLIENT_ID...
	local id
	printf 'version: 1\ndefault_action: deny\nclients:\n' >"$D/policy.yaml"
	for id in "$@"; do
		printf '  %s:\n    rules:\n      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp] }\n' \
			"$id" >>"$D/policy.yaml"
	done
}

# Starts the relay with $D/relay.yaml and FLAGS; waits for /ready. RPID is
# its pid. It reads no stdin: a scenario that needs other keys writes its
# own $D/relay.yaml first (this one is written only when there is none),
# and ZG_E2E_WORKERS=N adds "workers: N" when the file sets no workers.
topo_relay() { # [FLAGS...]
	[[ -f $D/relay.yaml ]] || cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"   # the default: also on the relay's own addresses
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
C
	# ZG_E2E_WORKERS=N runs the scenarios' relays with workers: N
	# (a scenario that sets workers: itself keeps its own)
	if [[ -n ${ZG_E2E_WORKERS:-} ]] && ! grep -q '^workers:' "$D/relay.yaml"; then
		echo "workers: $ZG_E2E_WORKERS" >>"$D/relay.yaml"
	fi
	chmod 644 "$D"/*.yaml
	ip netns exec "$R" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$RELAY" --config "$D/relay.yaml" "$@" \
		>>"$D/audit.log" 2>>"$D/relay.log" &
	RPID=$!
	cleanup "kill -9 $RPID 2>/dev/null; wait $RPID 2>/dev/null"
	local k
	for k in $(seq 50); do metrics >/dev/null 2>&1 && return 0; sleep 0.1; done
	fail "relay not ready: $(tail -5 "$D/relay.log")"
}

metrics() { ip netns exec "$R" curl -sf 127.0.0.1:8080/metrics; }
metric() { metrics | awk -v m="$1" '$1 == m {print $2}'; } # EXACT_NAME{labels}

# Starts the agent in client namespace I and waits until zgate0 has an
# address. APID[I] is its pid.
topo_agent() { # I ID [FLAGS...]
	local i=$1 id=$2 k; shift 2
	# An agent told of a DNS server (DNS_ASSIGN) would rewrite the
	# machine's /etc/resolv.conf unless the scenario gave its namespace a
	# file of its own (/etc/netns/NS/resolv.conf): no DNS unless asked.
	[[ " $* " == *" --dns "* ]] || set -- "$@" --dns off
	ip netns exec "${C[$i]}" "$AGENT" --relay "192.168.$((80 + i)).1:4433" --server-name relay.test \
		--cert "$D/pki/$id.crt" --key "$D/pki/$id.key" --ca "$D/pki/ca.crt" \
		--status-file "$D/status$i.json" --reconnect-min 200ms --reconnect-max 1s "$@" \
		2>>"$D/agent$i.log" &
	APID[$i]=$!
	cleanup "kill ${APID[$i]} 2>/dev/null; wait ${APID[$i]} 2>/dev/null"
	for k in $(seq 100); do
		[[ -n $(agent_addr "$i") ]] && return 0
		sleep 0.1
	done
	fail "agent $i has no address: $(tail -5 "$D/agent$i.log")"
}

agent_addr() { ip -n "${C[$1]}" -4 addr show dev zgate0 2>/dev/null | awk '/inet /{print $2}'; }
inc() { local i=$1; shift; $ZG_EXEC ip netns exec "${C[$i]}" "$@"; } # run in client ns I
ins() { $ZG_EXEC ip netns exec "$S" "$@"; }                 # run in the service ns

# Starts a service program in the service namespace, waits for "listening".
svc_start() { # NAME SVC-ARGS...
	local name=$1 k; shift
	# shellcheck disable=SC2086  # $SVC is "python3 PATH"
	ip netns exec "$S" $SVC "$@" >"$D/svc-$name.out" 2>&1 &
	cleanup "kill $! 2>/dev/null; wait $! 2>/dev/null"
	for k in $(seq 50); do grep -q listening "$D/svc-$name.out" && return 0; sleep 0.1; done
	fail "service $name did not start: $(cat "$D/svc-$name.out")"
}

topo_logs_on_failure() {
	[[ ${ZG_PASSED:-0} -eq 1 ]] && return 0
	local f
	for f in "$D"/relay.log "$D"/agent*.log; do
		[[ -f $f ]] && { echo "--- $(basename "$f") (last 15 lines)"; tail -15 "$f"; }
	done
	# again at the end, where run.sh's excerpt of the log looks
	[[ -z ${ZG_FAIL:-} ]] || echo "FAIL: $ZG_FAIL (the relay's and agents' logs above)"
	return 0
}

pass() { ZG_PASSED=1; echo PASS; }
