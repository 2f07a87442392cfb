# tests/e2e/agent_env.sh — the world of the zgate-agent scenarios (sourced
# after lib.sh). Two network namespaces made here and removed on exit:
#
#   agent ns  (zgate-agent, ping)          relay ns  (zgate-probe --echo-server, uid 65534)
#   veth 10.201.N.2/24 ──────────────────  veth 10.201.N.1/24
#   default via 10.201.N.1                  lo: 192.168.201.1/32 (the relay's address)
#
# The relay's address is on another subnet, so the agent reaches it through
# its default gateway and a full tunnel needs the host route. Nothing
# outside the two namespaces is touched.

[[ $(id -u) -eq 0 ]] || skip "needs root for network namespaces"
for t in ip setpriv ping unshare; do command -v $t >/dev/null || skip "$t missing"; done
AGENT=$ZG_BIN/zgate-agent PROBE=$ZG_BIN/zgate-probe
[[ -x $AGENT ]] || fail "$AGENT not built"
[[ -x $PROBE ]] || fail "$PROBE not built"

NSA=zga-$$ NSR=zgr-$$ NET=10.201.$(($$ % 250)) RELAY_IP=192.168.201.1
RELAY_PORT=$((20000 + RANDOM % 20000))
RELAY=$RELAY_IP:$RELAY_PORT
PKI=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$PKI" -c agent-1 >/dev/null
chmod 755 "$ZG_TMP" "$PKI"; chmod 644 "$PKI"/*   # readable by uid 65534 (a test PKI)

# Whatever still runs in the namespaces was started by this test.
cleanup "for ns in $NSA $NSR; do ip netns pids \$ns 2>/dev/null | xargs -r kill -KILL; ip netns del \$ns 2>/dev/null; done"
ip netns add "$NSA"
ip netns add "$NSR"
ip link add zgv0 netns "$NSA" type veth peer name zgv1 netns "$NSR"
ip -n "$NSA" link set lo up
ip -n "$NSR" link set lo up
ip -n "$NSA" addr add "$NET.2/24" dev zgv0
ip -n "$NSR" addr add "$NET.1/24" dev zgv1
ip -n "$NSA" link set zgv0 up
ip -n "$NSR" link set zgv1 up
ip -n "$NSR" addr add "$RELAY_IP/32" dev lo
ip -n "$NSA" route add default via "$NET.1"
# IPv6 link-local addresses change from "tentative" to final on their own:
# let that settle before anyone compares snapshots.
wait_for_dad() { ! ip -n "$NSA" addr | grep -q tentative; }

in_agent() { ip netns exec "$NSA" "$@"; }

# wait_for SECONDS DESCRIPTION COMMAND... — polls COMMAND every 0.1 s.
wait_for() {
	local secs=$1 what=$2 i; shift 2
	for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	fail "timed out after ${secs}s waiting for $what"
}

for _ in $(seq 50); do wait_for_dad && break; sleep 0.1; done

# start_echo — the relay side, unprivileged, in the relay namespace.
ECHO_PID= ECHO_LOG=$ZG_TMP/echo.log
start_echo() {
	ip netns exec "$NSR" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all \
		"$PROBE" --echo-server --listen "$RELAY" --cert "$PKI/relay.crt" \
		--key "$PKI/relay.key" --client-ca "$PKI/ca.crt" >>"$ECHO_LOG" 2>&1 &
	ECHO_PID=$!
	wait_for 5 "the echo server" grep -q "echo server on UDP port $RELAY_PORT" "$ECHO_LOG"
}
stop_echo() { # SIGNAL
	[[ -n $ECHO_PID ]] || return 0
	kill "-${1:-TERM}" "$ECHO_PID" 2>/dev/null || true
	wait "$ECHO_PID" 2>/dev/null || true
	ECHO_PID=
}
cleanup 'stop_echo KILL'

# start_agent EXTRA... — zgate-agent in the agent namespace; stderr in
# $AGENT_LOG, status in $STATUS.
AGENT_PID= AGENT_LOG=$ZG_TMP/agent.log STATUS=$ZG_TMP/status.json
start_agent() {
	ip netns exec "$NSA" "$AGENT" --relay "$RELAY" --server-name localhost --cert "$PKI/agent-1.crt" \
		--key "$PKI/agent-1.key" --ca "$PKI/ca.crt" --status-file "$STATUS" "$@" \
		>>"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
}
# stop_agent — SIGTERM; sets AGENT_RC to its exit status.
stop_agent() {
	AGENT_RC=0
	[[ -n $AGENT_PID ]] || return 0
	kill -TERM "$AGENT_PID" 2>/dev/null || true
	wait "$AGENT_PID" || AGENT_RC=$?
	AGENT_PID=
}
cleanup '[[ -z $AGENT_PID ]] || { kill -KILL $AGENT_PID 2>/dev/null; wait $AGENT_PID 2>/dev/null; }'
cleanup 'if [[ -f $AGENT_LOG ]]; then echo "--- agent log"; cat "$AGENT_LOG"; fi'

# status_field NAME — a top-level field of the status file, as written.
status_field() { sed -n "s/.*\"$1\":\(\"[^\"]*\"\|[0-9][0-9]*\|\[[^]]*\]\|null\).*/\1/p" "$STATUS" 2>/dev/null; }
state_is() { [[ $(status_field state) == "\"$1\"" ]]; }
drops_outage() { sed -n 's/.*"outage":\([0-9]*\).*/\1/p' "$STATUS"; }

# The kernel's view, the way an operator reads it.
snapshot() { # FILE
	{
		ip -n "$NSA" -4 route show table all
		ip -n "$NSA" -6 route show table all
		ip -n "$NSA" addr
		ip -n "$NSA" -d link
	} >"$1" 2>&1
}
