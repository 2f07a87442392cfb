# tests/e2e/connector_env.sh — the on-prem side of the zgate-connector
# scenarios (sourced after topo.sh; issue 22):
#
#   relay ns R ── 192.168.99.0/24 ── connector ns K (zgate-connector, uid 65534,
#                                    no capabilities)
#                                       └── 10.20.0.0/24 ── on-prem ns P (10.20.0.10)
#
# P is reachable ONLY from K (K does not forward; R has no route to it).
# Call: topo_init N; conn_init; conn_pki AGENT...; conn_policies;
# conn_yaml RELAY... (extra YAML lines on stdin); topo_relay;
# connector_start. Everything is removed at exit (lib.sh).
CONNECTOR=${ZG_BIN:-$ZG_ROOT/build/bin}/zgate-connector
[[ -x $CONNECTOR ]] || skip "zgate-connector is not built ($CONNECTOR)"
command -v curl >/dev/null || skip "curl missing"

K=zgt-$T-k P=zgt-$T-p
ONPREM=10.20.0.10 RELAY_K=192.168.99.1
# What the on-prem web server answers, and the path asked for (a scenario
# may set them first).
WEB_TEXT=${WEB_TEXT:-onprem-web} WEB_PATH=${WEB_PATH:-}

conn_init() {
	step "namespaces: connector K behind the relay, on-prem P behind the connector only"
	ip netns add "$K"; cleanup "ip netns del $K"
	ip netns add "$P"; cleanup "ip netns del $P"
	ip -n "$K" link set lo up; ip -n "$P" link set lo up
	ip link add "${T}rk" netns "$R" type veth peer name "${T}k" netns "$K"
	ip -n "$R" addr add "$RELAY_K/24" dev "${T}rk"; ip -n "$R" link set "${T}rk" up
	ip -n "$K" addr add 192.168.99.2/24 dev "${T}k"; ip -n "$K" link set "${T}k" up
	ip -n "$K" route add default via "$RELAY_K"
	ip link add "${T}kp" netns "$K" type veth peer name "${T}p" netns "$P"
	ip -n "$K" addr add 10.20.0.1/24 dev "${T}kp"; ip -n "$K" link set "${T}kp" up
	ip -n "$P" addr add "$ONPREM/24" dev "${T}p"; ip -n "$P" link set "${T}p" up
	ip netns exec "$K" sysctl -qw net.ipv4.ip_forward=0
	ip netns exec "$R" ip route get "$ONPREM" >/dev/null 2>&1 && fail "the relay's namespace has a route to $ONPREM"
	ip netns exec "$R" ping -c 1 -W 1 "$ONPREM" >/dev/null 2>&1 && fail "the relay's namespace reaches $ONPREM"
	ip netns exec "$K" ping -c 1 -W 2 "$ONPREM" >/dev/null || fail "the connector's namespace cannot reach $ONPREM"
}

conn_pki() { # AGENT_ID...
	step "certificates: relay, $*, connector:hospital-a"
	topo_pki "$@"
	"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki" --connector hospital-a >/dev/null
	chmod -R a+rX "$D/pki"
}

# The relay's policy: hospital-a bound to 10.20.0.0/16; agent-1 may reach it
# (a connector rule) and the SaaS range, agent-2 only the SaaS range. The
# connector's own policy: agent-1 reaches web (8000), TCP echo (7008) and
# UDP echo (7007) on $ONPREM.
conn_policies() {
	cat >"$D/policy.yaml" <<Y
version: 1
default_action: deny
connectors:
  hospital-a:
    prefixes: ["10.20.0.0/16"]
clients:
  agent-1:
    rules:
      - { id: emr, action: allow, connector: hospital-a }
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp, udp] }
  agent-2:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"], protocols: [tcp, udp] }
Y
	cat >"$D/connector-policy.yaml" <<Y
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: web, action: allow, destinations: ["$ONPREM/32"], protocols: [tcp], ports: ["8000", "7008"] }
      - { id: echo, action: allow, destinations: ["$ONPREM/32"], protocols: [udp], ports: ["7007"] }
Y
}

conn_yaml() { # RELAY... (host:port), extra YAML lines on stdin
	local relays
	relays=$(printf '"%s", ' "$@")
	{
		cat <<C
relays: [${relays%, }]
server_name: relay.test
ca: $D/pki/ca.crt
cert: $D/pki/connector-hospital-a.crt
key: $D/pki/connector-hospital-a.key
prefixes: ["10.20.0.0/16"]
policy: $D/connector-policy.yaml
audit: "-"
ops_listen: "127.0.0.1:9201"
inner_port: 443
log_level: info
C
		[[ -t 0 ]] || cat
	} >"$D/connector.yaml"
	chmod 644 "$D/connector.yaml"
}

# psvc_start [-n NS] NAME SVC-ARGS...: a service in the on-prem namespace P
# (or in NS: the connector's K for its host's own services); waits until
# it listens.
psvc_start() {
	local ns=$P name
	if [[ $1 == -n ]]; then ns=$2; shift 2; fi
	name=$1; shift
	# shellcheck disable=SC2086  # $SVC is "python3 PATH"
	ip netns exec "$ns" $SVC "$@" >"$D/psvc-$name.out" 2>&1 &
	cleanup "kill $! 2>/dev/null; wait $! 2>/dev/null"
	for _ in $(seq 50); do grep -qs listening "$D/psvc-$name.out" && return 0; sleep 0.1; done
	fail "service $name in $ns did not start: $(cat "$D/psvc-$name.out")"
}

# Starts zgate-connector (uid 65534, no capabilities) in K; waits for /ready.
# KPID is its pid.
connector_start() {
	ip netns exec "$K" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$CONNECTOR" --config "$D/connector.yaml" \
		>>"$D/connector-audit.log" 2>>"$D/connector.log" &
	KPID=$!
	cleanup "kill -9 $KPID 2>/dev/null; wait $KPID 2>/dev/null"
	for _ in $(seq 150); do
		ip netns exec "$K" curl -sf 127.0.0.1:9201/ready >/dev/null 2>&1 && return 0
		kill -0 "$KPID" 2>/dev/null || fail "zgate-connector exited: $(tail -5 "$D/connector.log")"
		sleep 0.1
	done
	fail "zgate-connector not ready in 15 s: $(tail -5 "$D/connector.log")"
}
connector_stop() { kill -TERM "$KPID"; wait "$KPID" 2>/dev/null || true; }
cleanup 'for f in "$D"/connector.log "$D"/connector-audit.log; do [[ -f $f && ${ZG_PASSED:-0} -ne 1 ]] && { echo "--- $(basename "$f") (last 15 lines)"; tail -15 "$f"; }; done; true'

# connectors_up N [OPS_PORT]: the relay (ops port 8080 unless given) counts
# N connectors up; for wait_for.
connectors_up() {
	[[ $(ip netns exec "$R" curl -sf "127.0.0.1:${2:-8080}/metrics" |
		awk '$1 == "zgate_connectors_up" {print $2}') == "$1" ]]
}
conn_metric() { ip netns exec "$K" curl -sf 127.0.0.1:9201/metrics | awk -v m="$1" '$1 == m {print $2}'; } # EXACT_NAME{labels}

# audit_has FILE EVENT CLIENT: a JSON line with that event and client that names hospital-a
audit_has() {
	python3 - "$@" <<'PY'
import json, sys
f, ev, cl = sys.argv[1:4]
for line in open(f, errors="replace"):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if isinstance(d, dict) and d.get("event") == ev and d.get("client") == cl and "hospital-a" in line:
        print(line.strip())
        sys.exit(0)
sys.exit(1)
PY
}
# wait_for SECS WHAT CMD...: until CMD succeeds
wait_for() {
	local secs=$1 what=$2 i; shift 2
	for ((i = 0; i < secs * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	fail "$what (not within $secs s)"
}
# worker_of ID: the worker of ID's newest tunnel in relay.log ("worker N:
# tunnel open: ID from ..."); empty when the relay runs one process.
worker_of() {
	grep -a "tunnel open: $1 from" "$D/relay.log" | tail -1 | sed -n 's/.*worker \([0-9]*\): tunnel open.*/\1/p'
}
# agent_elsewhere I ID: with workers, restarts agent I until its tunnel and
# the connector's are on different workers (each new connection lands on a
# worker by chance), so the path between them crosses workers.
agent_elsewhere() {
	local i=$1 id=$2 try cw aw
	for ((try = 0; try < 16; try++)); do
		cw=$(worker_of connector:hospital-a) aw=$(worker_of "$id")
		[[ -z $cw || -z $aw ]] && { echo "one process: agent and connector share it"; return 0; }
		[[ $cw != "$aw" ]] && { echo "$id on worker $aw, the connector on worker $cw"; return 0; }
		kill "${APID[$i]}"; wait "${APID[$i]}" 2>/dev/null || true
		rm -f "$D/status$i.json" # the new agent's own
		topo_agent "$i" "$id"
	done
	fail "$id kept landing on the connector's worker $cw in 16 tries"
}
onprem_web() { inc 1 curl -sS --max-time 5 "http://$ONPREM:8000/$WEB_PATH"; }
web_ok() { [[ $(onprem_web 2>&1) == "$WEB_TEXT" ]]; }
