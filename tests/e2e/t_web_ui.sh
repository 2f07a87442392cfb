#!/usr/bin/env bash
# zgate-api's web UI in a real headless Chromium (Debian's chromium, driven
# by puppeteer-core pinned in tests/ui/package-lock.json, installed once
# into a cache outside the tree): the page and its headers (CSP, nosniff,
# no-referrer, no-store; / → /ui/), sign-in (a wrong token shown refused,
# then the right one), an invalid policy (the parser's error, its line
# marked and selected), a valid one saved and activated (marked active;
# curl as a relay gets exactly the text typed), a second version
# prefilled from the active one and its line diff, an activation race
# (the active version changed with curl behind the page: the page's
# activation gets 409 and shows it), the activation history, and that the
# page loads nothing from another origin and breaks no CSP rule. The
# browser trusts zgate-api's certificate by its SPKI hash only
# (--ignore-certificate-errors-spki-list), in a throwaway profile. zgate-api,
# Chromium and the driver run in a network namespace with only a loopback:
# nothing Chromium tries to reach leaves the machine.
# Skipped, saying why, only when node, npm, Chromium or puppeteer-core
# cannot be had.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (runs PostgreSQL as uid 65534)"
API=$ZG_BIN/zgate-api
[[ -x $API ]] || fail "$API not built"

step "browser tooling"
CHROME=
for c in /usr/lib/chromium/chromium "$(command -v chromium || true)" "$(command -v chromium-browser || true)"; do
	[[ -n $c && -x $c ]] && { CHROME=$c; break; }
done
[[ -n $CHROME ]] || skip "web UI test: no Chromium (Debian package chromium; make e2e installs TEST_PACKAGES)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	skip "web UI test: no node/npm (Debian packages nodejs and npm)"
fi
# puppeteer-core, exactly as tests/ui/package-lock.json pins it, installed
# once into the cache third_party/deps.sh uses, under the lock file's hash
# (npm ci --ignore-scripts: it downloads no browser and runs no package's
# scripts).
UI_SRC=$ZG_ROOT/tests/ui
NPM_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/zgate/ui-npm-$(sha256sum "$UI_SRC/package-lock.json" | cut -c1-16)
if [[ ! -f $NPM_DIR/.complete ]]; then
	rm -rf "$NPM_DIR.tmp.$$"
	mkdir -p "$NPM_DIR.tmp.$$"
	cp "$UI_SRC/package.json" "$UI_SRC/package-lock.json" "$NPM_DIR.tmp.$$/"
	if ! (cd "$NPM_DIR.tmp.$$" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >"$ZG_TMP/npm.log" 2>&1; then
		rm -rf "$NPM_DIR.tmp.$$"
		skip "web UI test: npm ci of tests/ui (puppeteer-core) failed: $(grep -m2 . "$ZG_TMP/npm.log" | tr "\n" " ")"
	fi
	touch "$NPM_DIR.tmp.$$/.complete"
	rm -rf "$NPM_DIR"
	mv "$NPM_DIR.tmp.$$" "$NPM_DIR"
fi
echo "chromium: $CHROME ($("$CHROME" --version 2>/dev/null | head -1)); node $(node --version); puppeteer-core in $NPM_DIR"

step "PostgreSQL"
pg_start "$ZG_TMP/pg"

# zgate-api, Chromium and the driver run in a network namespace of their own
# with only a loopback: whatever Chromium might try to reach (its update
# and safe-browsing services, despite the flags below) never leaves the
# machine, not even as a DNS query. PostgreSQL answers on its Unix socket.
NS=zgui-$$
ip netns add "$NS" || fail "cannot make network namespace $NS"
cleanup "ip netns del $NS 2>/dev/null"
ip netns exec "$NS" ip link set lo up
IN=(ip netns exec "$NS")

step "certificates"
P=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$P" -s localhost -s 127.0.0.1 -c agent-1 --test-set >/dev/null
mkcert() { # CN NAME
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$2.key" \
		-subj "/CN=$1" -out "$P/$2.csr" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$P/$2.ext"
	openssl x509 -req -in "$P/$2.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
		-days 2 -extfile "$P/$2.ext" -out "$P/$2.crt" 2>/dev/null
}
mkcert relay:r1 r1
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" >"$ZG_TMP/token"
# The browser trusts this one certificate's key, nothing else.
SPKI=$(openssl x509 -in "$P/relay.crt" -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha256 -binary | base64)

step "zgate-api"
PORT=$((20000 + $$ % 20000 + 7))
"${IN[@]}" "$API" --cert "$P/relay.crt" --key "$P/relay.key" --ca "$P/ca.crt" --database "$PG_CONNINFO" \
	--pool 10.100.0.0/24 --admin-token-file "$ZG_TMP/token" --listen 127.0.0.1:$PORT \
	>"$ZG_TMP/api.log" 2>&1 & apid=$!
cleanup "kill $apid 2>/dev/null; wait $apid 2>/dev/null"
cleanup "echo '--- zgate-api log'; cat '$ZG_TMP/api.log'"
BASE=https://127.0.0.1:$PORT
for _ in $(seq 100); do "${IN[@]}" curl -sf --cacert "$P/ca.crt" "$BASE/health" >/dev/null && break; sleep 0.1; done
[[ $("${IN[@]}" curl -sS --cacert "$P/ca.crt" "$BASE/ready") == ready ]] || fail "zgate-api not ready"
hdr=$("${IN[@]}" curl -sS --cacert "$P/ca.crt" -D - -o /dev/null "$BASE/ui/")
expect_contains "$hdr" "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'" "CSP of /ui/"

step "chromium"
# Its own profile, its DevTools on a port it picks (written to the
# profile), no crash reporter or background traffic. Every process it
# starts carries ZG_UI_CHROME in its environment: all are found and killed
# by their PIDs at the end, whatever became of their parent.
mark="ui-chrome-$$-$RANDOM"
PROFILE=$ZG_TMP/chrome
mkdir -p "$PROFILE"
ZG_UI_CHROME=$mark "${IN[@]}" "$CHROME" --headless --no-sandbox --user-data-dir="$PROFILE" \
	--remote-debugging-address=127.0.0.1 --remote-debugging-port=0 \
	--ignore-certificate-errors-spki-list="$SPKI" \
	--no-first-run --no-default-browser-check --disable-extensions --disable-sync \
	--disable-background-networking --disable-component-update --disable-breakpad \
	--disable-crash-reporter --disable-gpu --disable-dev-shm-usage --password-store=basic \
	--disable-features=Translate,MediaRouter,OptimizationHints about:blank \
	>"$ZG_TMP/chrome.log" 2>&1 & cpid=$!
chrome_pids() { # every live process that carries the mark
	local e
	for e in /proc/[0-9]*/environ; do
		grep -qsz "^ZG_UI_CHROME=$mark\$" "$e" && { e=${e#/proc/}; echo "${e%/environ}"; }
	done
	return 0
}
stop_chrome() {
	local p _
	kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
	for _ in $(seq 50); do [[ -z $(chrome_pids) ]] && return 0; sleep 0.1; done
	for p in $(chrome_pids); do kill -9 "$p" 2>/dev/null; done
}
cleanup "stop_chrome"
for _ in $(seq 100); do [[ -s $PROFILE/DevToolsActivePort ]] && break; sleep 0.1; done
[[ -s $PROFILE/DevToolsActivePort ]] || { cat "$ZG_TMP/chrome.log"; fail "chromium did not start (no DevToolsActivePort)"; }
{ read -r dport; read -r dpath || true; } <"$PROFILE/DevToolsActivePort"
WS=ws://127.0.0.1:$dport$dpath
echo "chromium $cpid: $WS"

step "the UI, driven (tests/ui/drive.cjs)"
ZG_UI_BASE=$BASE ZG_UI_WS=$WS ZG_UI_TOKEN=$TOKEN ZG_UI_CA=$P/ca.crt ZG_UI_RELAY=$P/r1 \
	NODE_PATH=$NPM_DIR/node_modules "${IN[@]}" timeout 300 node "$UI_SRC/drive.cjs" || fail "the web UI (see above)"

step "the log"
grep -q "policy .* activated by token" "$ZG_TMP/api.log" || fail "activations not logged"
stop_chrome
[[ -z $(chrome_pids) ]] || fail "chromium processes left: $(chrome_pids)"
echo "web UI: passed"
