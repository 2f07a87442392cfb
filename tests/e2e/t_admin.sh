#!/usr/bin/env bash
# The relay's admin endpoint (issue 18.3, check d). With admin.token_file
# set, GET /admin/sessions and DELETE /admin/sessions/{client} on the ops
# port need "Authorization: Bearer <token>": a missing or wrong token is
# 401 (and nothing is listed or closed), the right one lists both agents'
# sessions (client, addresses, peer, since, bytes, certificate serial) and
# closes agent-1's: audited as session_close reason admin plus an admin
# event naming the action and the caller; agent-2 is untouched and agent-1
# reconnects by itself. /metrics needs no token. SIGHUP reads the token
# file again; a world-readable or short token file stops the relay from
# starting, with an error naming the file.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
command -v curl >/dev/null || skip "curl missing"
topo_init 2
topo_pki agent-1 agent-2
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
  agent-2:
    rules:
      - { id: saas, action: allow, destinations: ["198.18.0.0/24"] }
P
TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
mkdir -p "$D/secret" && chmod 755 "$D/secret"
printf '%s\n' "$TOKEN" >"$D/secret/admin.token"
chown 65534:65534 "$D/secret/admin.token"; chmod 0400 "$D/secret/admin.token"
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "0.0.0.0:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
admin: { token_file: $D/secret/admin.token }
C

step "a world-readable or short token file: the relay refuses to start and says why"
cp "$D/relay.yaml" "$D/bad.yaml"
printf '%s\n' "$TOKEN" >"$D/secret/open.token"; chmod 0644 "$D/secret/open.token"
sed -i "s|$D/secret/admin.token|$D/secret/open.token|" "$D/bad.yaml"
out=$("$RELAY" --config "$D/bad.yaml" --check-config 2>&1) && fail "accepted a world-readable token file"
expect_contains "$out" "admin.token_file $D/secret/open.token: mode 0644" "error for a world-readable file"
printf 'too-short\n' >"$D/secret/open.token"; chmod 0600 "$D/secret/open.token"
out=$("$RELAY" --config "$D/bad.yaml" --check-config 2>&1) && fail "accepted a 9-byte token"
expect_contains "$out" "the token has 9 bytes; at least 32 are needed" "error for a short token"

topo_relay
topo_agent 1 agent-1
topo_agent 2 agent-2
a1=$(agent_addr 1) a2=$(agent_addr 2)
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-1 cannot reach 198.18.0.10"

# admin METHOD PATH [TOKEN]: prints the status; the body is in $D/body
admin() {
	local h=()
	[[ -n ${3:-} ]] && h=(-H "Authorization: Bearer $3")
	ip netns exec "$R" curl -s -o "$D/body" -D "$D/head" -w '%{http_code}' -X "$1" "${h[@]}" \
		"http://127.0.0.1:8080$2"
}

step "no token, a wrong token: 401 with WWW-Authenticate; nothing listed or closed"
[[ $(admin GET /admin/sessions) == 401 ]] || fail "GET without a token: $(cat "$D/body")"
grep -qi '^WWW-Authenticate: Bearer' "$D/head" || fail "no WWW-Authenticate: $(cat "$D/head")"
[[ $(admin GET /admin/sessions "${TOKEN}x") == 401 ]] || fail "GET with a wrong token"
[[ $(admin DELETE /admin/sessions/agent-1 "wrong-token-wrong-token-wrong-token") == 401 ]] ||
	fail "DELETE with a wrong token"
[[ $(admin DELETE /admin/sessions/agent-1) == 401 ]] || fail "DELETE without a token"
grep -q '"event":"session_close"' "$D/audit.log" && fail "a session was closed without the token"
grep -q '"event":"admin"' "$D/audit.log" && fail "an unauthenticated request was served"
[[ $(metric 'zgate_admin_requests_total{result="unauthorized"}') == 4 ]] ||
	fail "unauthorized metric: $(metrics | grep admin_requests)"
[[ $(metric zgate_sessions) == 2 ]] || fail "/metrics (no token needed) does not show 2 sessions"

step "the right token lists both sessions"
[[ $(admin GET /admin/sessions "$TOKEN") == 200 ]] || fail "GET with the token: $(cat "$D/body")"
serial1=$(openssl x509 -in "$D/pki/agent-1.crt" -noout -serial | sed 's/.*=//' | tr 'A-F' 'a-f')
python3 - "$D/body" "${a1%/*}" "${a2%/*}" "$serial1" <<'PY' || fail "the session list: $(cat "$D/body")"
import json, sys, datetime
body, a1, a2, serial1 = sys.argv[1:]
s = {x["client"]: x for x in json.load(open(body))}
assert set(s) == {"agent-1", "agent-2"}, s
assert s["agent-1"]["addresses"][0] == a1 and s["agent-2"]["addresses"][0] == a2, s
assert s["agent-1"]["peer"].startswith("192.168.81.2:"), s
assert s["agent-1"]["cert_serial"].lstrip("0") == serial1.lstrip("0"), (s, serial1)
since = datetime.datetime.strptime(s["agent-1"]["since"], "%Y-%m-%dT%H:%M:%SZ")
age = datetime.datetime.utcnow() - since
assert 0 <= age.total_seconds() < 120, age
assert s["agent-1"]["bytes_up"] > 0 and s["agent-1"]["bytes_down"] > 0, s  # the ping
PY
grep -q '"event":"admin","action":"list_sessions","caller":"127.0.0.1:[0-9]*","status":200' "$D/audit.log" ||
	fail "the list is not audited: $(grep '"admin"' "$D/audit.log" || true)"

step "405 for another method, 404 for a client without a session"
[[ $(admin POST /admin/sessions "$TOKEN") == 405 ]] || fail "POST /admin/sessions"
[[ $(admin DELETE /admin/sessions/agent-9 "$TOKEN") == 404 ]] || fail "DELETE of an unknown client"

step "DELETE closes agent-1's session (reason admin); agent-2 untouched; agent-1 comes back"
[[ $(admin DELETE /admin/sessions/agent-1 "$TOKEN") == 200 ]] || fail "DELETE agent-1: $(cat "$D/body")"
for _ in $(seq 30); do grep -q '"event":"session_close","client":"agent-1"' "$D/audit.log" && break; sleep 0.1; done
line=$(grep '"event":"session_close","client":"agent-1"' "$D/audit.log") || fail "agent-1's session not closed"
expect_contains "$line" '"reason":"admin"' "session_close"
grep -q '"event":"admin","action":"close_session","client":"agent-1","caller":"127.0.0.1:[0-9]*","status":200' \
	"$D/audit.log" || fail "the close is not audited: $(grep '"admin"' "$D/audit.log" || true)"
grep -q '"event":"session_close","client":"agent-2"' "$D/audit.log" && fail "agent-2 was closed too"
for _ in $(seq 50); do [[ $(grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log") -eq 2 ]] && break; sleep 0.1; done
[[ $(grep -c '"event":"session_open","client":"agent-1"' "$D/audit.log") -eq 2 ]] || fail "agent-1 did not reconnect"
for _ in $(seq 30); do inc 1 ping -c 1 -W 1 198.18.0.10 >/dev/null 2>&1 && break; done
inc 1 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-1 cannot reach 198.18.0.10 after reconnecting"
inc 2 ping -c 1 -W 2 198.18.0.10 >/dev/null || fail "agent-2 lost its tunnel"

step "SIGHUP reads the token file again"
NEW=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
chmod 0600 "$D/secret/admin.token"; printf '%s\n' "$NEW" >"$D/secret/admin.token"; chmod 0400 "$D/secret/admin.token"
kill -HUP "$RPID"
for _ in $(seq 30); do [[ $(admin GET /admin/sessions "$NEW") == 200 ]] && break; sleep 0.1; done
[[ $(admin GET /admin/sessions "$NEW") == 200 ]] || fail "the new token is refused after SIGHUP"
[[ $(admin GET /admin/sessions "$TOKEN") == 401 ]] || fail "the old token still works after SIGHUP"
chmod 0644 "$D/secret/admin.token"
kill -HUP "$RPID"
for _ in $(seq 30); do grep -q "keeping the admin token in force" "$D/relay.log" && break; sleep 0.1; done
grep -q "admin.token_file $D/secret/admin.token: mode 0644.*keeping the admin token in force" "$D/relay.log" ||
	fail "a world-readable token file on SIGHUP is not reported"
[[ $(admin GET /admin/sessions "$NEW") == 200 ]] || fail "the token in force was dropped"
kill -0 "$RPID" || fail "the relay died"
pass
