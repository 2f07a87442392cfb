#!/usr/bin/env bash
# The agent reloads its certificate without dropping its tunnel (issue
# 18.6, check e). SIGHUP keeps the agent, its tunnel and its routes (ping
# across works before and after; the relay sees no new session) — it used
# to kill the agent and leave its routes behind. A rotated certificate
# (new key, renamed into place) is noticed by itself and used on the next
# handshake: after the relay closes the session (admin endpoint), the new
# session_open carries the new certificate's serial. A broken certificate
# file keeps the one in use and says why. The status file and
# `zgate-agent status` count the reloads and the failed ones.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v curl >/dev/null || skip "curl missing"
topo_init 1
topo_pki agent-1
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
P
TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
printf '%s\n' "$TOKEN" >"$D/admin.token"
chown 65534:65534 "$D/admin.token"; chmod 0400 "$D/admin.token"
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
admin: { token_file: $D/admin.token }
C
topo_relay
topo_agent 1 agent-1

ping_ok() { inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null 2>&1; }
routes() { ip -n "${C[1]}" route show dev zgate0 2>/dev/null; }
opens() { grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log"; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/.*=//' | tr 'A-F' 'a-f' | sed 's/^0*//'; }
wait_log() { # SECONDS PATTERN
	local i
	for ((i = 0; i < $1 * 10; i++)); do grep -q -- "$2" "$D/agent1.log" && return 0; sleep 0.1; done
	fail "the agent did not log '$2': $(tail -5 "$D/agent1.log")"
}
still_up() { # WHAT
	kill -0 "${APID[1]}" 2>/dev/null || fail "$1: the agent is gone"
	ping_ok || fail "$1: no ping across the tunnel"
	[[ $(routes) == "$rt" ]] || fail "$1: routes changed: $(routes)"
	[[ $(opens) -eq 1 ]] || fail "$1: the relay saw a new session"
	grep -q '"event":"session_close"' "$D/audit.log" && fail "$1: the session was closed"
	return 0
}

ping_ok || fail "no ping across the tunnel"
rt=$(routes)
[[ -n $rt ]] || fail "no routes on zgate0"
old=$(serial_of "$D/pki/agent-1.crt")

step "SIGHUP: the agent stays, and so do its tunnel and routes"
kill -HUP "${APID[1]}"
sleep 0.5
kill -0 "${APID[1]}" 2>/dev/null || fail "SIGHUP killed the agent (its routes and address are left behind)"
wait_log 5 "SIGHUP: certificate $D/pki/agent-1.crt loaded again (serial 0*$old)"
still_up "after SIGHUP"

step "a rotated certificate (new key, renamed into place) is noticed; the tunnel stays"
mkdir "$D/pki2"
cp "$D/pki/ca.crt" "$D/pki/ca.key" "$D/pki2/"
"$ZG_ROOT/scripts/gen-certs.sh" -d "$D/pki2" -s relay.test -c agent-1 >/dev/null
new=$(serial_of "$D/pki2/agent-1.crt")
[[ $new != "$old" ]] || fail "the new certificate has the old serial"
cp "$D/pki2/agent-1.key" "$D/pki/.agent-1.key.new"; cp "$D/pki2/agent-1.crt" "$D/pki/.agent-1.crt.new"
mv "$D/pki/.agent-1.key.new" "$D/pki/agent-1.key"; mv "$D/pki/.agent-1.crt.new" "$D/pki/agent-1.crt"
wait_log 5 "certificate files changed: certificate $D/pki/agent-1.crt loaded again (serial 0*$new)"
still_up "after the rotation"

step "a broken certificate file keeps the one in use and says why"
cp "$D/pki/agent-1.crt" "$D/good.crt"
echo "not a certificate" >"$D/pki/agent-1.crt"
wait_log 5 "the certificate files do not load, keeping the ones in use"
for _ in $(seq 30); do grep -q 'certificate reload (certificate files changed) failed' "$D/status1.json" && break; sleep 0.2; done
grep -q 'certificate reload (certificate files changed) failed' "$D/status1.json" ||
	fail "the status file does not say why: $(cat "$D/status1.json")"
kill -HUP "${APID[1]}"
wait_log 5 "SIGHUP: the certificate files do not load"
still_up "with a broken certificate file"
cp "$D/good.crt" "$D/pki/.agent-1.crt.new"; mv "$D/pki/.agent-1.crt.new" "$D/pki/agent-1.crt"
for _ in $(seq 50); do [[ $(grep -c "loaded again (serial 0*$new)" "$D/agent1.log") -ge 2 ]] && break; sleep 0.1; done
[[ $(grep -c "loaded again (serial 0*$new)" "$D/agent1.log") -ge 2 ]] || fail "the repaired file was not loaded"

step "the status file and zgate-agent status count the reloads"
# SIGHUP, the rotation and the repair loaded (the rotation's two renames may
# give two reloads); the broken file and the SIGHUP on it failed.
count() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$D/status1.json"; }
for _ in $(seq 30); do [[ $(count cert_reloads) -ge 3 ]] && break; sleep 0.2; done
[[ $(count cert_reloads) -ge 3 && $(count cert_reload_errors) -ge 2 ]] ||
	fail "cert_reloads $(count cert_reloads), cert_reload_errors $(count cert_reload_errors): want >= 3 and >= 2"
out=$("$AGENT" status --status-file "$D/status1.json") || fail "zgate-agent status: $out"
grep -q "^  certificate reloads: $(count cert_reloads), $(count cert_reload_errors) failed$" <<<"$out" ||
	fail "zgate-agent status does not show the reloads: $out"

step "the next handshake uses the new certificate"
code=$(ip netns exec "$R" curl -s -o /dev/null -w '%{http_code}' -X DELETE \
	-H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/admin/sessions/agent-1)
[[ $code == 200 ]] || fail "closing the session: HTTP $code"
for _ in $(seq 100); do [[ $(opens) -eq 2 ]] && break; sleep 0.1; done
[[ $(opens) -eq 2 ]] || fail "the agent did not reconnect: $(tail -5 "$D/agent1.log")"
line=$(grep '"event":"session_open","client":"agent-1"' "$D/audit.log" | tail -1)
got=$(sed 's/.*"cert_serial":"\([0-9a-f]*\)".*/\1/' <<<"$line" | sed 's/^0*//')
[[ $got == "$new" ]] || fail "the new session's certificate serial is $got, want $new (old $old)"
grep -q '"event":"session_close","client":"agent-1".*"reason":"admin"' "$D/audit.log" ||
	fail "session_close reason admin missing"
for _ in $(seq 30); do ping_ok && break; done
ping_ok || fail "no ping after the reconnect"
kill -0 "${APID[1]}" || fail "the agent is gone"
pass
