#!/usr/bin/env bash
# zgate-api's policy store against a real PostgreSQL (tests/e2e/pg.sh):
# migration 0005 once and idempotent; an invalid document refused with the
# relay parser's line and column; validate; create (201, not active), the
# same document again (200, same id); the list newest first, paged with
# limit/before; a version by id with its document byte-exact (Unicode,
# quotes, backslashes, tabs, CRLF), also one of exactly 1 MiB; a document
# over 1 MiB (413) and a body announced over the bound (413 at the head);
# NUL refused; at most 4 large bodies at once (503 for a fifth); activation (idempotent, 409 on a stale expected_active, 404
# for an unknown id) and its history; GET /api/v1/policy as a relay: 404
# before any activation, then the raw YAML byte-exact with ETag and
# Zgate-Policy-Id, 304 with If-None-Match; roles (relay refused on every
# admin route, no credentials 401); two replicas racing on activation
# with the same expected_active (exactly one wins each round, also when
# both surely overlap); logs and
# metrics; a restart keeps everything; migrating again changes nothing; a
# connection broken after a create or an activation committed
# (tests/e2e/pg_break.py): 503, and the client's repeat gets the outcome.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (runs PostgreSQL as uid 65534)"
API=$ZG_BIN/zgate-api
[[ -x $API ]] || fail "$API not built"

step "PostgreSQL and certificates"
pg_start "$ZG_TMP/pg"
P=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$P" -s localhost -s 127.0.0.1 -c agent-1 >/dev/null
mkcert() { # CN NAME
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$2.key" \
		-subj "/CN=$1" -out "$P/$2.csr" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$P/$2.ext"
	openssl x509 -req -in "$P/$2.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
		-days 2 -extfile "$P/$2.ext" -out "$P/$2.crt" 2>/dev/null
}
mkcert relay:r1 r1; mkcert admin:ops ops; mkcert admin:sec sec
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" >"$ZG_TMP/token"
common=(--cert "$P/relay.crt" --key "$P/relay.key" --ca "$P/ca.crt" --database "$PG_CONNINFO"
	--pool 10.100.0.0/24 --admin-token-file "$ZG_TMP/token")

step "migrate twice"
out=$("$API" migrate "${common[@]}") || fail "migrate exited $?"
expect_contains "$out" "applied migration 0005_policies" "first migrate"
out=$("$API" migrate "${common[@]}") || fail "second migrate exited $?"
expect_contains "$out" "schema at version 5 (0 applied now)" "second migrate"

base=$((20000 + ($$ * 7) % 20000))
PA=$base PB=$((base + 1))
A=https://127.0.0.1:$PA B=https://127.0.0.1:$PB
start() { # NAME PORT
	"$API" "${common[@]}" --listen 127.0.0.1:$2 >>"$ZG_TMP/$1.log" 2>&1 &
	eval "${1}pid=$!"
	for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "https://127.0.0.1:$2/health" >/dev/null && return; sleep 0.1; done
	fail "replica $1 did not start: $(cat "$ZG_TMP/$1.log")"
}
start a $PA
cleanup "kill \$apid 2>/dev/null; wait \$apid 2>/dev/null"
start b $PB
cleanup "kill \$bpid 2>/dev/null; wait \$bpid 2>/dev/null"
cleanup "echo '--- replica A log'; cat '$ZG_TMP/a.log'; echo '--- replica B log'; cat '$ZG_TMP/b.log'"

R1=(--cert "$P/r1.crt" --key "$P/r1.key") OPS=(--cert "$P/ops.crt" --key "$P/ops.key")
SEC=(--cert "$P/sec.crt" --key "$P/sec.key") TOK=(-H "Authorization: Bearer $TOKEN")
# req URL METHOD PATH BODYFILE|'' [curl options...]: prints "CODE BODY"
# (headers in $ZG_TMP/hdr, the body also in $ZG_TMP/body)
req() {
	local u=$1 m=$2 p=$3 f=$4; shift 4
	: >"$ZG_TMP/body" # curl writes no file for an empty body
	curl -sS --cacert "$P/ca.crt" -X "$m" ${f:+--data-binary "@$f" -H "Content-Type: application/json"} \
		-D "$ZG_TMP/hdr" -o "$ZG_TMP/body" -w '%{http_code}' "$@" "$u/api/v1/$p" >"$ZG_TMP/code" || true
	echo "$(cat "$ZG_TMP/code") $(cat "$ZG_TMP/body")"
}
# field "CODE BODY" KEY: a member of the JSON body (Python's repr: True, None)
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1].split(" ",1)[1]).get(sys.argv[2]))' "$1" "$2"; }
# body YAMLFILE OUT [COMMENT]: the JSON body of a policy POST, the document exactly the file's bytes
body() {
	python3 -c 'import json,sys
doc=open(sys.argv[1],"rb").read().decode("utf-8")
b={"document":doc}
if len(sys.argv) > 3: b["comment"]=sys.argv[3]
open(sys.argv[2],"w").write(json.dumps(b))' "$@"
}
header() { tr -d '\r' <"$ZG_TMP/hdr" | awk -v h="$1" 'tolower($1) == tolower(h) ":" { $1 = ""; sub(/^ /, ""); print }'; }

cat >"$ZG_TMP/p1.yaml" <<'EOF'
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - id: web
        action: allow
        destinations: ["10.0.0.0/8"]
EOF
# Unicode, quotes, backslashes, tabs and CRLF line ends, all of which the
# relay's parser accepts: the document must come back byte for byte.
printf '# Politique d\xe2\x80\x99acc\xc3\xa8s \xe2\x80\x9cv2\xe2\x80\x9d \\ back\\slash "q" \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x92\ttab\r\nversion: 1\r\ndefault_action: deny\r\nclients:\r\n  "agent-1":\r\n    rules:\r\n      - id: web\t# a tab, then a comment \\n\r\n        action: allow\r\n        destinations: ["10.0.0.0/8", "2001:db8::/32"]\r\n  agent-2:\r\n    rules:\r\n      - id: dns\r\n        action: allow\r\n        destinations: ["*.example.com"]\r\n' >"$ZG_TMP/p2.yaml"
sed 's/10.0.0.0\/8/10.1.0.0\/16/' "$ZG_TMP/p1.yaml" >"$ZG_TMP/p3.yaml"
cat >"$ZG_TMP/bad.yaml" <<'EOF'
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - id: web
        action: maybe
        destinations: ["10.0.0.0/8"]
EOF
for f in p1 p2 p3 bad; do body "$ZG_TMP/$f.yaml" "$ZG_TMP/$f.json" "version $f"; done

step "roles: no credentials, a relay on admin routes, nothing active yet"
r=$(req $A GET policies ''); [[ $r == 401* ]] || fail "list without credentials: $r"
r=$(req $A GET policy ''); [[ $r == 401* ]] || fail "active policy without credentials: $r"
r=$(req $A POST policies "$ZG_TMP/p1.json"); [[ $r == 401* ]] || fail "create without credentials: $r"
for x in "GET policies" "POST policies $ZG_TMP/p1.json" "POST policies/validate $ZG_TMP/p1.json" \
	"GET policies/1" "POST policies/1/activate" "GET policy/activations"; do
	read -r m p f <<<"$x"
	r=$(req $A "$m" "$p" "${f:-}" "${R1[@]}"); [[ $r == 403* ]] || fail "relay on $m $p: $r"
done
r=$(req $A GET policy '' "${R1[@]}"); echo "$r"
[[ $r == "404 {\"error\":\"no active policy\"}" ]] || fail "active policy before any activation: $r"
r=$(req $A DELETE policies/1 '' "${OPS[@]}"); [[ $r == 405* ]] || fail "DELETE a version: $r"
[[ $(header Allow) == "GET, HEAD" ]] || fail "Allow of policies/1: $(header Allow)"
r=$(req $A GET policies/abc '' "${OPS[@]}"); [[ $r == 400*"policy id"* ]] || fail "a bad id in the path: $r"

step "validate and create"
r=$(req $A POST policies "$ZG_TMP/bad.json" "${OPS[@]}"); echo "$r"
[[ $r == 400* && $(field "$r" line) == 7 && $(field "$r" column) -gt 1 ]] || fail "invalid document: $r"
expect_contains "$r" '"error":"policy:7:' "invalid document"
expect_contains "$r" "action" "invalid document"
r=$(req $A POST policies/validate "$ZG_TMP/bad.json" "${OPS[@]}"); [[ $r == 400*'"line":7'* ]] || fail "validate invalid: $r"
r=$(req $A POST policies/validate "$ZG_TMP/p2.json" "${OPS[@]}"); echo "$r"
[[ $r == '200 {"ok":true,"clients":2,"rules":2}' ]] || fail "validate: $r"
[[ $(pg_sql "SELECT count(*) FROM policy_versions") == 0 ]] || fail "validate stored something"
r=$(req $A POST policies "$ZG_TMP/p1.json" "${OPS[@]}"); echo "$r"
[[ $r == 201* && $(field "$r" active) == False && $(field "$r" created_by) == admin:ops &&
	$(field "$r" comment) == "version p1" && $(field "$r" clients) == 1 && $(field "$r" rules) == 1 ]] ||
	fail "create: $r"
id1=$(field "$r" id)
[[ $(field "$r" sha256) == $(sha256sum <"$ZG_TMP/p1.yaml" | cut -d' ' -f1) ]] || fail "sha256: $r"
[[ $(field "$r" size) == $(stat -c %s "$ZG_TMP/p1.yaml") ]] || fail "size: $r"
r=$(req $B POST policies "$ZG_TMP/p1.json" "${TOK[@]}"); echo "$r"
[[ $r == 200* && $(field "$r" id) == "$id1" && $(field "$r" created_by) == admin:ops ]] ||
	fail "the same document again, through the other replica: $r"
r=$(req $A POST policies "$ZG_TMP/p2.json" "${TOK[@]}"); [[ $r == 201* && $(field "$r" created_by) == token ]] || fail "create p2: $r"
id2=$(field "$r" id)
r=$(req $B POST policies "$ZG_TMP/p3.json" "${SEC[@]}"); [[ $r == 201* ]] || fail "create p3: $r"
id3=$(field "$r" id)
[[ $(pg_sql "SELECT count(*) FROM policy_versions") == 3 ]] || fail "not three versions"
grep -q "policy $id1 created by admin:ops ($(stat -c %s "$ZG_TMP/p1.yaml") bytes, sha256 " "$ZG_TMP/a.log" ||
	fail "creation not logged"

step "a version by id, byte-exact"
r=$(req $A GET "policies/$id2" '' "${OPS[@]}")
[[ $r == 200* && $(field "$r" clients) == 2 ]] || fail "GET policies/$id2: $r"
python3 -c 'import json,sys; sys.stdout.buffer.write(json.load(open(sys.argv[1]))["document"].encode())' \
	"$ZG_TMP/body" >"$ZG_TMP/p2.back"
cmp "$ZG_TMP/p2.yaml" "$ZG_TMP/p2.back" || fail "the document came back changed"
r=$(req $A GET policies/999999 '' "${OPS[@]}"); [[ $r == 404* ]] || fail "unknown version: $r"

step "the list, paged"
r=$(req $A GET 'policies?limit=2' '' "${OPS[@]}"); echo "$r"
python3 - "$r" "$id3" "$id2" <<'EOF' || fail "first page: $r"
import json, sys
b = json.loads(sys.argv[1].split(" ", 1)[1])
assert b["active"] is None, b
assert [p["id"] for p in b["policies"]] == [int(sys.argv[2]), int(sys.argv[3])], b
assert b["next"] == int(sys.argv[3]), b
assert all(p["active"] is False and len(p["sha256"]) == 64 and p["created"].endswith("Z") for p in b["policies"]), b
EOF
r=$(req $A GET "policies?limit=2&before=$id2" '' "${OPS[@]}")
python3 - "$r" "$id1" <<'EOF' || fail "second page: $r"
import json, sys
b = json.loads(sys.argv[1].split(" ", 1)[1])
assert [p["id"] for p in b["policies"]] == [int(sys.argv[2])] and b["next"] is None, b
EOF
r=$(req $A GET 'policies' '' "${OPS[@]}"); [[ $(field "$r" next) == None ]] || fail "default page: $r"
r=$(req $A GET 'policies?limit=501' '' "${OPS[@]}"); [[ $r == 400* ]] || fail "limit 501: $r"
r=$(req $A GET 'policies?before=x' '' "${OPS[@]}"); [[ $r == 400* ]] || fail "before=x: $r"

step "activation"
r=$(req $A POST "policies/$id1/activate" '' "${OPS[@]}"); echo "$r"
[[ $r == 200* && $(field "$r" active) == True && $(field "$r" id) == "$id1" ]] || fail "activate: $r"
grep -q "policy $id1 activated by admin:ops (was none)" "$ZG_TMP/a.log" || fail "activation not logged"
echo '{}' >"$ZG_TMP/empty.json"
r=$(req $B POST "policies/$id1/activate" "$ZG_TMP/empty.json" "${TOK[@]}"); [[ $r == 200* ]] || fail "activate again: $r"
[[ $(pg_sql "SELECT count(*) FROM policy_activations") == 1 ]] || fail "activating the active version added a row"
echo "{\"expected_active\":$id3}" >"$ZG_TMP/stale.json"
r=$(req $A POST "policies/$id2/activate" "$ZG_TMP/stale.json" "${OPS[@]}"); echo "$r"
[[ $r == "409 {\"error\":\"the active policy is $id1, not $id3\",\"active\":$id1}" ]] || fail "stale expected_active: $r"
echo '{"expected_active":null}' >"$ZG_TMP/none.json"
r=$(req $A POST "policies/$id2/activate" "$ZG_TMP/none.json" "${OPS[@]}"); [[ $r == 409* ]] || fail "expected none: $r"
r=$(req $A POST policies/999999/activate '' "${OPS[@]}"); [[ $r == 404* ]] || fail "activate unknown: $r"
echo "{\"expected_active\":$id1}" >"$ZG_TMP/cur.json"
r=$(req $A POST "policies/$id2/activate" "$ZG_TMP/cur.json" "${SEC[@]}"); [[ $r == 200* ]] || fail "activate with expected_active: $r"
grep -q "policy $id2 activated by admin:sec (was $id1)" "$ZG_TMP/a.log" || fail "second activation not logged"
r=$(req $A GET policies '' "${OPS[@]}")
[[ $(field "$r" active) == "$id2" ]] || fail "list's active: $r"

step "the active document for relays: raw, ETag, 304"
r=$(req $B GET policy '' "${R1[@]}")
[[ ${r%% *} == 200 ]] || fail "GET policy as relay: $r"
cmp "$ZG_TMP/p2.yaml" "$ZG_TMP/body" || fail "the active document is not byte-exact"
sha=$(sha256sum <"$ZG_TMP/p2.yaml" | cut -d' ' -f1)
etag=$(header ETag)
[[ $etag == "\"$id2-${sha:0:16}\"" ]] || fail "ETag: $etag"
[[ $(header Zgate-Policy-Id) == "$id2" ]] || fail "Zgate-Policy-Id: $(header Zgate-Policy-Id)"
[[ $(header Content-Type) == application/yaml ]] || fail "Content-Type: $(header Content-Type)"
r=$(req $B GET policy '' "${R1[@]}" -H "If-None-Match: $etag"); [[ $r == "304 " ]] || fail "If-None-Match: $r"
[[ $(header ETag) == "$etag" ]] || fail "304 without the ETag"
r=$(req $A GET policy '' "${R1[@]}" -H "If-None-Match: \"$id1-${sha:0:16}\""); [[ $r == 200* ]] || fail "an old ETag: $r"
r=$(req $A GET policy '' "${OPS[@]}"); [[ $r == 200* ]] || fail "GET policy as admin: $r"

step "activation history"
r=$(req $A GET 'policy/activations?limit=5' '' "${OPS[@]}"); echo "$r"
python3 - "$r" "$id2" "$id1" <<'EOF' || fail "history: $r"
import json, sys
b = json.loads(sys.argv[1].split(" ", 1)[1])["activations"]
assert [(a["policy_id"], a["by"]) for a in b] == [(int(sys.argv[2]), "admin:sec"), (int(sys.argv[3]), "admin:ops")], b
assert all(a["at"].endswith("Z") for a in b), b
EOF

step "limits: 1 MiB exactly, one byte more, an announced body over the bound, NUL"
python3 - "$ZG_TMP/p1.yaml" "$ZG_TMP" <<'EOF'
import json, sys
doc = open(sys.argv[1], "rb").read()
exact = b"#" + b"a" * (1048576 - len(doc) - 2) + b"\n" + doc
assert len(exact) == 1048576
open(sys.argv[2] + "/big.yaml", "wb").write(exact)
# \u escapes for every character: the longest body a client may send
enc = "".join("\\u%04x" % ord(c) for c in exact.decode())
open(sys.argv[2] + "/big.json", "w").write('{"document":"' + enc + '","comment":"1 MiB"}')
over = b"#" + b"a" * 1048576 + b"\n" + doc
open(sys.argv[2] + "/over.json", "w").write(json.dumps({"document": over.decode()}))
open(sys.argv[2] + "/nul.json", "w").write('{"document":"version: 1\\u0000"}')
EOF
r=$(req $A POST policies "$ZG_TMP/big.json" "${OPS[@]}"); [[ $r == 201* && $(field "$r" size) == 1048576 ]] || fail "1 MiB document: ${r:0:300}"
idbig=$(field "$r" id)
r=$(req $A GET "policies/$idbig" '' "${OPS[@]}")
python3 -c 'import json,sys; sys.stdout.buffer.write(json.load(open(sys.argv[1]))["document"].encode())' \
	"$ZG_TMP/body" >"$ZG_TMP/big.back"
cmp "$ZG_TMP/big.yaml" "$ZG_TMP/big.back" || fail "the 1 MiB document came back changed"
r=$(req $A POST policies "$ZG_TMP/over.json" "${OPS[@]}"); echo "${r:0:200}"
[[ $r == 413*"document: longer than 1048576 bytes"* ]] || fail "a document over 1 MiB: ${r:0:300}"
r=$(req $A POST policies "$ZG_TMP/nul.json" "${OPS[@]}"); [[ $r == 400*NUL* ]] || fail "NUL: $r"
r=$(req $A POST policies '' "${OPS[@]}" -H 'Content-Type: application/json' -H 'Content-Length: 7000000' --data-binary x)
[[ $r == 413*"policy document may be 1 MiB"* ]] || fail "announced body over the bound: $r"
r=$(req $A POST policies "$ZG_TMP/big.json" "${OPS[@]}" -H 'Transfer-Encoding: chunked')
[[ $r == 200* ]] || fail "the 1 MiB document chunked (the same again: 200): ${r:0:300}"
python3 "$ZG_ROOT/tests/e2e/api_conns.py" bigslots --port $PA --ca "$P/ca.crt" --cert "$P/ops.crt" \
	--key "$P/ops.key" --cap 4 || fail "large bodies at once not bounded, or the slot not given back"
head -c 5000 /dev/zero | tr '\0' ' ' >"$ZG_TMP/pad.json"; echo '{}' >>"$ZG_TMP/pad.json"
r=$(req $A POST "policies/$id2/activate" "$ZG_TMP/pad.json" "${OPS[@]}"); [[ $r == 413* ]] || fail "activate keeps the 4096-byte limit: $r"

step "two replicas race on activation"
# Each round, both replicas are asked at the same instant to activate
# another version, each expecting the version active now: one wins. In
# round 0 a transaction of psql holds back every insert into
# policy_activations (not reads) for a second, so that both activations
# surely overlap: had both read the active version before either wrote,
# both would win.
cur=$id2
for round in $(seq 0 8); do
	if [[ $round == 0 ]]; then
		pg_sql "BEGIN; LOCK TABLE policy_activations IN SHARE MODE; SELECT pg_sleep(1.5); COMMIT" >/dev/null & lpid=$!
		sleep 0.5
	fi
	echo "{\"expected_active\":$cur}" >"$ZG_TMP/exp.json"
	n0=$(pg_sql "SELECT count(*) FROM policy_activations")
	curl -sS --cacert "$P/ca.crt" "${OPS[@]}" -H 'Content-Type: application/json' --data-binary @"$ZG_TMP/exp.json" \
		-o "$ZG_TMP/ra.body" -w '%{http_code}' "$A/api/v1/policies/$id1/activate" >"$ZG_TMP/ra.code" & c1=$!
	curl -sS --cacert "$P/ca.crt" "${SEC[@]}" -H 'Content-Type: application/json' --data-binary @"$ZG_TMP/exp.json" \
		-o "$ZG_TMP/rb.body" -w '%{http_code}' "$B/api/v1/policies/$id3/activate" >"$ZG_TMP/rb.code" & c2=$!
	wait $c1 $c2
	[[ $round != 0 ]] || wait $lpid || fail "psql holding the table failed"
	codes="$(cat "$ZG_TMP/ra.code") $(cat "$ZG_TMP/rb.code")"
	[[ $codes == "200 409" || $codes == "409 200" ]] || fail "round $round: $codes ($(cat "$ZG_TMP/ra.body") $(cat "$ZG_TMP/rb.body"))"
	[[ $(pg_sql "SELECT count(*) FROM policy_activations") == $((n0 + 1)) ]] || fail "round $round: not one activation"
	cur=$(pg_sql "SELECT policy_id FROM policy_activations ORDER BY id DESC LIMIT 1")
	[[ $codes == "200 409" && $cur == "$id1" || $codes == "409 200" && $cur == "$id3" ]] || fail "round $round: the winner is not active"
	loser=$([[ $codes == "200 409" ]] && cat "$ZG_TMP/rb.body" || cat "$ZG_TMP/ra.body")
	expect_contains "$loser" "\"active\":$cur}" "round $round: the loser's 409"
	# the next round starts from another version, so that both change it
	echo "{\"expected_active\":$cur}" >"$ZG_TMP/exp.json"
	r=$(req $A POST "policies/$id2/activate" "$ZG_TMP/exp.json" "${OPS[@]}"); [[ $r == 200* ]] || fail "reset: $r"
	cur=$id2
done

step "metrics"
m=$(curl -sS --cacert "$P/ca.crt" $A/metrics)
grep -qx "zgate_api_policy_active_id $id2" <<<"$m" || fail "gauge: $(grep policy_active <<<"$m")"
for l in 'endpoint="policy_create",code="201"' 'endpoint="policy_create",code="200"' 'endpoint="policy_create",code="400"' \
	'endpoint="policy_create",code="413"' 'endpoint="policy_validate",code="200"' 'endpoint="policy_get",code="200"' \
	'endpoint="policy_list",code="200"' 'endpoint="policy_activate",code="409"' 'endpoint="policy_activations",code="200"' \
	'endpoint="policy",code="404"' 'endpoint="policy",code="401"' 'endpoint="policy_list",code="403"'; do
	grep -q "^zgate_api_requests_total{$l} [1-9]" <<<"$m" || fail "metrics: no $l"
done
grep -q '^zgate_api_requests_total{endpoint="policy",code="304"} [1-9]' <<<"$(curl -sS --cacert "$P/ca.crt" $B/metrics)" ||
	fail "metrics: no 304"

step "restart keeps everything; migrating again changes nothing"
kill $apid $bpid; wait $apid || fail "replica A exited $? on SIGTERM"; wait $bpid || true
out=$("$API" migrate "${common[@]}") || fail "migrate exited $?"
expect_contains "$out" "schema at version 5 (0 applied now)" "migrate after use"
# 0005 run again over tables that hold data: IF NOT EXISTS, nothing lost
pg_sql "DELETE FROM zgate_schema_migrations WHERE version = 5" >/dev/null
out=$("$API" migrate "${common[@]}") || fail "migrate 0005 again exited $?"
expect_contains "$out" "applied migration 0005_policies" "0005 again"
start a $PA
r=$(req $A GET policy '' "${R1[@]}")
[[ ${r%% *} == 200 && $(header ETag) == "$etag" ]] || fail "after a restart: ${r:0:100} $(header ETag)"
cmp "$ZG_TMP/p2.yaml" "$ZG_TMP/body" || fail "the active document changed across the restart"
r=$(req $A GET 'policies?limit=500' '' "${OPS[@]}")
[[ $(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1].split(" ",1)[1])["policies"]))' "$r") == 4 ]] ||
	fail "versions after the restart: $r"
m=$(curl -sS --cacert "$P/ca.crt" $A/metrics)
grep -qx "zgate_api_policy_active_id $id2" <<<"$m" || fail "gauge after the restart: $(grep policy_active <<<"$m")"
kill $apid; wait $apid || fail "replica A exited $? on SIGTERM"

step "a connection that breaks after a write committed: 503, and a repeat tells"
# Replica C reaches PostgreSQL through tests/e2e/pg_break.py, which lets the
# first create and the first activation commit and then breaks the
# connection before their answer arrives. Run again on a new connection,
# the create would find its own row (200 "existing", no "created" line) and
# the activation its own activation (409): each is sent once, answered 503
# with Retry-After, and the client's repeat gets the outcome.
mkdir -p "$ZG_TMP/pgproxy"
python3 "$ZG_ROOT/tests/e2e/pg_break.py" --listen "$ZG_TMP/pgproxy" --to "$PG_DIR" \
	--break zg_pol_insert --break zg_pol_activate >"$ZG_TMP/proxy.log" 2>&1 & proxypid=$!
cleanup "kill \$proxypid 2>/dev/null; wait \$proxypid 2>/dev/null"
for _ in $(seq 50); do grep -q ready "$ZG_TMP/proxy.log" && break; sleep 0.1; done
grep -q ready "$ZG_TMP/proxy.log" || fail "pg_break.py did not start: $(cat "$ZG_TMP/proxy.log")"
cviaproxy=()
for x in "${common[@]}"; do [[ $x == "$PG_CONNINFO" ]] && x="host=$ZG_TMP/pgproxy user=zgate dbname=zgate"; cviaproxy+=("$x"); done
PC=$((base + 2)) C=https://127.0.0.1:$((base + 2))
"$API" "${cviaproxy[@]}" --listen 127.0.0.1:$PC >>"$ZG_TMP/c.log" 2>&1 & cpid=$!
cleanup "kill \$cpid 2>/dev/null; wait \$cpid 2>/dev/null; echo '--- replica C log'; cat '$ZG_TMP/c.log'; echo '--- pg_break.py'; cat '$ZG_TMP/proxy.log'"
for _ in $(seq 50); do curl -sf --cacert "$P/ca.crt" "$C/health" >/dev/null && break; sleep 0.1; done
{ cat "$ZG_TMP/p1.yaml"; echo "# lost answer"; } >"$ZG_TMP/p5.yaml"
body "$ZG_TMP/p5.yaml" "$ZG_TMP/p5.json"
sha5=$(sha256sum <"$ZG_TMP/p5.yaml" | cut -d' ' -f1)
r=$(req $C POST policies "$ZG_TMP/p5.json" "${OPS[@]}"); echo "$r"
[[ $r == 503* && $(header Retry-After) == 1 ]] || fail "create whose answer was lost: $r"
grep -q "breaking the answer to zg_pol_insert" "$ZG_TMP/proxy.log" || fail "the proxy broke no create"
id5=$(pg_sql "SELECT id FROM policy_versions WHERE sha256 = '$sha5'")
[[ -n $id5 ]] || fail "the create whose answer was lost did not commit (the test needs it to)"
grep -q "policy create (not known whether it was stored)" "$ZG_TMP/c.log" || fail "the lost create is not logged"
r=$(req $C POST policies "$ZG_TMP/p5.json" "${OPS[@]}"); [[ $r == 200* && $(field "$r" id) == "$id5" ]] || fail "create repeated: $r"
n0=$(pg_sql "SELECT count(*) FROM policy_activations")
echo "{\"expected_active\":$id2}" >"$ZG_TMP/exp2.json"
r=$(req $C POST "policies/$id5/activate" "$ZG_TMP/exp2.json" "${OPS[@]}"); echo "$r"
grep -q "breaking the answer to zg_pol_activate" "$ZG_TMP/proxy.log" || fail "the proxy broke no activation"
[[ $r == 503* && $(header Retry-After) == 1 ]] || fail "activation whose answer was lost: $r"
[[ $(pg_sql "SELECT policy_id FROM policy_activations ORDER BY id DESC LIMIT 1") == "$id5" ]] ||
	fail "the activation whose answer was lost did not commit (the test needs it to)"
# the repeat with the same expected_active finds its own activation
r=$(req $C POST "policies/$id5/activate" "$ZG_TMP/exp2.json" "${OPS[@]}"); echo "$r"
[[ $r == 200* && $(field "$r" active) == True && $(field "$r" id) == "$id5" ]] || fail "activation repeated: $r"
[[ $(pg_sql "SELECT count(*) FROM policy_activations") == $((n0 + 1)) ]] || fail "the repeat added an activation"
# a stale expected_active is still a conflict
r=$(req $C POST "policies/$id1/activate" "$ZG_TMP/exp2.json" "${OPS[@]}")
[[ $r == "409 {\"error\":\"the active policy is $id5, not $id2\",\"active\":$id5}" ]] || fail "stale expected_active after: $r"
kill $cpid; wait $cpid || fail "replica C exited $? on SIGTERM"
echo "ok"
