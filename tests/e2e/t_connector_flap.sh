#!/usr/bin/env bash
# A connector whose prefixes flap (issue 22 hardening): every change of a
# connector's prefixes makes the relay tell each agent its list of
# connectors again (a ZG_CONNECTORS capsule per agent), so a connector
# announcing in a loop must not set that off for every announcement.
#
#   c1 agent-1 ── relay ns R (zgate-relay, --log-level debug; connector_env's
#                 policies: agent-1 may use connector hospital-a, 10.20.0.0/16)
#                    └── connector ns K: zgate-probe with the certificate
#                        connector:hospital-a
#
#   1. The probe announces 10.20.0.0/24 and 10.20.2.0/24: agent-1 gets
#      routes for both.
#   2. A second probe session (the same connector, replacing the first)
#      announces 2000 times, every other time without 10.20.2.0/24, the last
#      time without it. The relay tells agents at most every 250 ms: agent-1
#      gets a few ZG_CONNECTORS (it got one per announcement before), ends
#      with the last list (no route to 10.20.2.0/24), and the relay logs a
#      line a second about the announcements, not one each.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
source "$(dirname "$0")/connector_env.sh"

N=2000
topo_init 1
conn_init
conn_pki agent-1
conn_policies
topo_relay --log-level debug
topo_agent 1 agent-1

# connector_probe TIMES OUT: zgate-probe as connector:hospital-a, announcing
# TIMES times, open for about 3 s; PPID_ is its pid
connector_probe() {
	ip netns exec "$K" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$ZG_BIN/zgate-probe" --relay "$RELAY_K:4433" \
		--server-name relay.test --ca "$D/pki/ca.crt" --cert "$D/pki/connector-hospital-a.crt" \
		--key "$D/pki/connector-hospital-a.key" --advertise 10.20.0.0/24 \
		--advertise 10.20.2.0/24 --advertise-times "$1" --target 10.20.0.10 --count 15 \
		--interval 200ms --min-replies 0 --timeout 1s >"$2" 2>&1 &
	PPID_=$!
	cleanup "kill $PPID_ 2>/dev/null; wait $PPID_ 2>/dev/null"
}
routes() { ip -n "${C[1]}" route show dev zgate0; }
has_route() { grep -q "^$1 " <<<"$(routes)"; }
sent() { grep -c 'agent-1: ZG_CONNECTORS sent' "$D/relay.log" || true; }
announced() { grep -c 'connector hospital-a announced' "$D/relay.log" || true; }

step "1. the connector announces two prefixes: agent-1 routes both"
connector_probe 1 "$D/probe1.out"
wait_for 10 "agent-1 has no route to 10.20.2.0/24: $(routes); probe: $(cat "$D/probe1.out")" has_route 10.20.2.0/24
# the connector's two and the relay's (its saas rule, its DNS address),
# nothing else: an agent once added a ::/0 it was never sent
want=$(printf '%s\n' 10.20.0.0/24 10.20.2.0/24 198.18.0.0/24 10.100.0.1 | sort | tr '\n' ' ')
[[ $(routes | awk '{print $1}' | sort | tr '\n' ' ') == "$want" ]] ||
	fail "agent-1's routes are not the connector's two and the relay's: $(routes)"
wait "$PPID_" || fail "the first probe failed: $(cat "$D/probe1.out")"
s0=$(sent) a0=$(announced)
echo "agent-1's routes: $(routes | awk '{print $1}' | tr '\n' ' ')"

step "2. $N announcements, flapping: agent-1 is told a few times, ends with the last list"
connector_probe "$N" "$D/probe2.out"
wait_for 10 "the probe did not announce $N times: $(cat "$D/probe2.out")" \
	grep -q "advertised $N times, the last 1 routes" "$D/probe2.out"
gone() { ! has_route 10.20.2.0/24 && has_route 10.20.0.0/24; }
wait_for 5 "agent-1 does not end with the last list (10.20.0.0/24 only): $(routes)" gone
wait "$PPID_" || fail "the flapping probe failed: $(cat "$D/probe2.out")"
s1=$(sent) a1=$(announced)
echo "ZG_CONNECTORS to agent-1 during $N announcements: $((s1 - s0)); 'announced' lines logged: $((a1 - a0))"
grep 'connector hospital-a announced' "$D/relay.log" | tail -1 | sed 's/^.*connector/connector/'
# The probe session is replaced and goes down (two more tellings); the
# announcements take well under a second, and tellings are 250 ms apart
# at least: a few, and nothing like one per announcement.
((s1 - s0 <= 20)) || fail "agent-1 was sent $((s1 - s0)) ZG_CONNECTORS for $N announcements"
((s1 - s0 >= 1)) || fail "agent-1 was told nothing about the flapping connector"
((a1 - a0 <= 20)) || fail "the relay logged $((a1 - a0)) lines for $N announcements"
pass
