#!/usr/bin/env bash
# Installed as a service: `make install DESTDIR PREFIX=/usr` puts exactly
# the expected files in place and keeps a configuration already there; the
# man pages list every option of every --help; the relay's and zgate-api's
# units have an ExecReload sending SIGHUP; `systemd-analyze verify`
# accepts the four units (ExecStart resolved inside the staged tree) and
# `systemd-analyze security` rates the relay's, zgate-api's and
# zgate-connector's units OK or better (the scores are printed); the installed relay, unprivileged, tells
# a service manager READY=1, WATCHDOG=1 and STOPPING=1, and so does the
# installed zgate-api (READY=1, STOPPING=1) against a throwaway PostgreSQL; `zgate-agent status` reads a live
# agent run with only CAP_NET_ADMIN and its status file in
# $RUNTIME_DIRECTORY, as the unit runs it, and says when it is gone; `make
# deb` builds a package that `dpkg -i` installs on this machine, whose
# units verify there, and that `dpkg --purge` removes without a trace.
# When systemd is PID 1 the relay also runs under systemd-run.
source "$(dirname "$0")/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (dpkg, network namespaces)"
"$ZG_ROOT/scripts/ensure-packages.sh" dpkg-dev systemd groff-base man-db >/dev/null ||
	skip "cannot install dpkg-dev systemd groff-base man-db"
for t in systemd-analyze dpkg-deb python3 setpriv; do command -v $t >/dev/null || skip "$t missing"; done

DEST=$ZG_TMP/dest
U=/usr/lib/systemd/system
inst() { make -C "$ZG_ROOT" --no-print-directory install DESTDIR="$DEST" PREFIX=/usr; }

step "make install DESTDIR=\$tmp PREFIX=/usr: the file list"
inst >"$ZG_TMP/install.log" 2>&1 || { cat "$ZG_TMP/install.log"; fail "make install failed"; }
got=$(cd "$DEST" && find . -mindepth 1 | sed 's|^\.||' | sort)
want="/etc
/etc/zgate
/etc/zgate/connector-policy.yaml
/etc/zgate/policy.yaml
/etc/zgate/tls
/etc/zgate/zgate-agent.yaml
/etc/zgate/zgate-api.yaml
/etc/zgate/zgate-connector.yaml
/etc/zgate/zgate-relay.yaml
/usr
/usr/bin
/usr/bin/zgate-agent
/usr/bin/zgate-api
/usr/bin/zgate-connector
/usr/bin/zgate-probe
/usr/bin/zgate-relay
/usr/lib
/usr/lib/systemd
/usr/lib/systemd/system
/usr/lib/systemd/system/zgate-agent.service
/usr/lib/systemd/system/zgate-api.service
/usr/lib/systemd/system/zgate-connector.service
/usr/lib/systemd/system/zgate-relay.service
/usr/share
/usr/share/doc
/usr/share/doc/zgate
/usr/share/doc/zgate/README.md
/usr/share/doc/zgate/examples
/usr/share/doc/zgate/examples/connector-policy.yaml
/usr/share/doc/zgate/examples/policy.yaml
/usr/share/doc/zgate/examples/zgate-agent.yaml
/usr/share/doc/zgate/examples/zgate-api.yaml
/usr/share/doc/zgate/examples/zgate-connector.yaml
/usr/share/doc/zgate/examples/zgate-relay.yaml
/usr/share/man
/usr/share/man/man1
/usr/share/man/man1/zgate-probe.1
/usr/share/man/man8
/usr/share/man/man8/zgate-agent.8
/usr/share/man/man8/zgate-api.8
/usr/share/man/man8/zgate-connector.8
/usr/share/man/man8/zgate-relay.8"
[[ $got == "$want" ]] || fail "installed files differ: $(diff <(echo "$want") <(echo "$got"))"
echo "$(wc -l <<<"$got") paths, as expected"
[[ $(stat -c %a "$DEST/usr/bin/zgate-relay") == 755 && $(stat -c %a "$DEST$U/zgate-relay.service") == 644 ]] ||
	fail "modes: $(stat -c '%a %n' "$DEST/usr/bin/zgate-relay" "$DEST$U/zgate-relay.service")"
grep -q '^ExecStart=/usr/bin/zgate-relay --config /etc/zgate/zgate-relay.yaml ' "$DEST$U/zgate-relay.service" ||
	fail "ExecStart does not name the installed relay: $(grep ExecStart "$DEST$U/zgate-relay.service")"
grep -q '^ExecStart=/usr/bin/zgate-api --config /etc/zgate/zgate-api.yaml ' "$DEST$U/zgate-api.service" ||
	fail "ExecStart does not name the installed zgate-api: $(grep ExecStart "$DEST$U/zgate-api.service")"
grep -q '^ExecStart=/usr/bin/zgate-connector --config /etc/zgate/zgate-connector.yaml ' "$DEST$U/zgate-connector.service" ||
	fail "ExecStart does not name the installed zgate-connector: $(grep ExecStart "$DEST$U/zgate-connector.service")"
# SIGHUP re-reads what the programs read again: systemctl reload sends it.
for u in zgate-relay zgate-api; do
	grep -q '^ExecReload=/bin/sh -c .kill -HUP \$\$MAINPID.$' "$DEST$U/$u.service" ||
		fail "$u.service: no ExecReload sending SIGHUP: $(grep ExecReload "$DEST$U/$u.service")"
done
! grep -qE "@[A-Z]+@" "$DEST$U/zgate-relay.service" "$DEST$U/zgate-agent.service" "$DEST$U/zgate-api.service" \
	"$DEST$U/zgate-connector.service" ||
	fail "an @VARIABLE@ left in a unit"

step "a second make install keeps the configuration in /etc/zgate"
echo "# changed by the operator" >>"$DEST/etc/zgate/zgate-relay.yaml"
out=$(inst 2>&1) || fail "second make install: $out"
grep -q "# changed by the operator" "$DEST/etc/zgate/zgate-relay.yaml" || fail "make install overwrote the configuration"
expect_contains "$out" "keeping $DEST/etc/zgate/zgate-relay.yaml" "make install message"
cmp -s "$ZG_ROOT/examples/zgate-relay.yaml" "$DEST/usr/share/doc/zgate/examples/zgate-relay.yaml" ||
	fail "the example in the doc directory is not the shipped one"

step "the installed programs run; the man pages list every option and default of --help"
"$DEST/usr/bin/zgate-relay" --version
"$DEST/usr/bin/zgate-agent" --version
"$DEST/usr/bin/zgate-probe" --version
"$DEST/usr/bin/zgate-api" --version
"$DEST/usr/bin/zgate-connector" --version
"$ZG_ROOT/scripts/check-manpages.sh" "$DEST/usr/bin" "$DEST/usr/share/man" || fail "man pages out of step with --help"
# the check notices an option missing from a page
mkdir -p "$ZG_TMP/man/man8"
grep -v 'limits\\-flows\\-per\\-client' "$DEST/usr/share/man/man8/zgate-relay.8" >"$ZG_TMP/man/man8/zgate-relay.8"
cp -r "$DEST/usr/share/man/man1" "$ZG_TMP/man/"
# ... and, in the agent's page, a default that drifted, a value named
# otherwise than --help names it and an entry for an option the program no
# longer has
sed 's/(default 500ms)/(default 600ms)/; s/^\.BI \\-\\-tun " NAME"/.BI \\-\\-tun " DEVICE"/' \
	"$DEST/usr/share/man/man8/zgate-agent.8" >"$ZG_TMP/man/man8/zgate-agent.8"
printf '.SH GONE\n.TP\n.BI \\-\\-gone\\-option " N"\nRemoved long ago.\n' >>"$ZG_TMP/man/man8/zgate-agent.8"
out=$("$ZG_ROOT/scripts/check-manpages.sh" "$DEST/usr/bin" "$ZG_TMP/man" 2>&1) && fail "check-manpages.sh missed a removed option"
expect_contains "$out" "FAIL zgate-relay(8): options in" "check-manpages.sh"
expect_contains "$out" ": --limits-flows-per-client" "check-manpages.sh names the option"
expect_contains "$out" "FAIL zgate-agent(8): --reconnect-min: --help says default 500ms" "check-manpages.sh (defaults)"
expect_contains "$out" "FAIL zgate-agent(8): --gone-option: a man entry, but no --help prints it" "check-manpages.sh (stale entries)"
expect_contains "$out" "FAIL zgate-agent(8): --tun: --help names its value NAME, its man entry does not" \
	"check-manpages.sh (value names)"

step "systemd-analyze verify (--root: the staged tree plus this system's units)"
R=$ZG_TMP/vroot
mkdir -p "$R/usr/lib/systemd/system"
cp -a "$DEST/." "$R/"
cp -a /usr/lib/systemd/system/. "$R/usr/lib/systemd/system/"
ln -s usr/bin "$R/bin"
cp /bin/sh "$R/usr/bin/sh"   # ExecReload=/bin/sh
verify() { MANPATH=$R/usr/share/man systemd-analyze verify --root="$R" "$@" 2>&1; }
out=$(verify zgate-relay.service zgate-agent.service zgate-api.service zgate-connector.service) ||
	fail "systemd-analyze verify: $out"
[[ -z $out ]] || fail "systemd-analyze verify complained: $out"
echo "zgate-relay.service, zgate-agent.service, zgate-api.service and zgate-connector.service verify cleanly"
# and it does look: a missing program or a bad key is reported
mv "$R/usr/bin/zgate-relay" "$R/usr/bin/zgate-relay.away"
out=$(verify zgate-relay.service) && fail "verify accepted a unit whose program is missing"
expect_contains "$out" "/usr/bin/zgate-relay is not executable" "verify of a missing program"
mv "$R/usr/bin/zgate-relay.away" "$R/usr/bin/zgate-relay"
cp "$R$U/zgate-agent.service" "$ZG_TMP/agent.unit"
sed -i 's/^DeviceAllow=/DevicesAllow=/' "$R$U/zgate-agent.service"
out=$(verify zgate-agent.service || true)
expect_contains "$out" "Unknown key 'DevicesAllow'" "verify of a misspelt key"
cp "$ZG_TMP/agent.unit" "$R$U/zgate-agent.service"

step "systemd-analyze security: the relay's unit is OK or better"
sec=$(systemd-analyze security --offline=true --root="$R" zgate-relay.service 2>&1) || true
line=$(grep 'Overall exposure level for zgate-relay.service' <<<"$sec") || fail "no score: $sec"
echo "$line"
read -r score word < <(sed -n 's/.*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' <<<"$line")
[[ $word == OK || $word == SAFE || $word == PERFECT ]] || fail "relay unit rated $word ($score)"
awk -v s="$score" 'BEGIN { exit !(s < 5.0) }' || fail "relay exposure $score is not below 5.0"
grep -E '^✗' <<<"$sec" | head -20 || true
step "systemd-analyze security: zgate-api's unit is OK or better"
sec=$(systemd-analyze security --offline=true --root="$R" zgate-api.service 2>&1) || true
line=$(grep 'Overall exposure level for zgate-api.service' <<<"$sec") || fail "no score: $sec"
echo "$line"
read -r score word < <(sed -n 's/.*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' <<<"$line")
[[ $word == OK || $word == SAFE || $word == PERFECT ]] || fail "zgate-api unit rated $word ($score)"
awk -v s="$score" 'BEGIN { exit !(s < 5.0) }' || fail "zgate-api exposure $score is not below 5.0"
step "systemd-analyze security: zgate-connector's unit is OK or better, with no capability"
sec=$(systemd-analyze security --offline=true --root="$R" zgate-connector.service 2>&1) || true
line=$(grep 'Overall exposure level for zgate-connector.service' <<<"$sec") || fail "no score: $sec"
echo "$line"
read -r score word < <(sed -n 's/.*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' <<<"$line")
[[ $word == OK || $word == SAFE || $word == PERFECT ]] || fail "zgate-connector unit rated $word ($score)"
awk -v s="$score" 'BEGIN { exit !(s < 5.0) }' || fail "zgate-connector exposure $score is not below 5.0"
! grep -E '^✗ (CapabilityBoundingSet|AmbientCapabilities)' <<<"$sec" || fail "zgate-connector's unit keeps capabilities"
grep -q '^✓ CapabilityBoundingSet=~CAP_NET_ADMIN' <<<"$sec" || fail "zgate-connector's unit may hold CAP_NET_ADMIN"
asec=$(systemd-analyze security --offline=true --root="$R" zgate-agent.service 2>&1 | grep 'Overall exposure') || true
echo "$asec (the agent holds CAP_NET_ADMIN)"

step "service manager"
pid1=$(ps -p 1 -o comm= 2>/dev/null || cat /proc/1/comm)
if [[ $pid1 == systemd ]]; then
	echo "systemd is PID 1: the relay under systemd-run follows"
else
	echo "PID 1 is '$pid1', not systemd: no systemd-run here; the units were verified above and the notify protocol is checked next"
fi

# A loopback relay configuration and PKI, readable by uid 65534.
PKI=$ZG_TMP/pki
"$ZG_ROOT/scripts/gen-certs.sh" -d "$PKI" -c agent-1 >/dev/null
chmod 755 "$ZG_TMP" "$PKI"; chmod 644 "$PKI"/*
cat >"$ZG_TMP/relay.yaml" <<YAML
listen: "127.0.0.1:$((20000 + RANDOM % 20000))"
ops_listen: "127.0.0.1:$((40000 + RANDOM % 20000))"
tls:
  cert: $PKI/relay.crt
  key: $PKI/relay.key
  client_ca: $PKI/ca.crt
policy: $DEST/etc/zgate/policy.yaml
YAML
chmod 644 "$ZG_TMP/relay.yaml"

if [[ $pid1 == systemd ]]; then
	step "the installed relay under systemd-run (DynamicUser, Type=notify)"
	unit=zgate-t-install-$$
	cleanup "systemctl stop $unit 2>/dev/null; systemctl reset-failed $unit 2>/dev/null"
	systemd-run --unit="$unit" -p Type=notify -p DynamicUser=yes -p WatchdogSec=10s \
		-p CapabilityBoundingSet= "$DEST/usr/bin/zgate-relay" --config "$ZG_TMP/relay.yaml"
	for _ in $(seq 50); do [[ $(systemctl show -p ActiveState --value "$unit") == active ]] && break; sleep 0.1; done
	systemctl show -p ActiveState -p StatusText "$unit"
	[[ $(systemctl show -p StatusText --value "$unit") == ready:* ]] || fail "no READY status from the relay"
	systemctl stop "$unit"
	[[ $(systemctl show -p ActiveState --value "$unit") != active ]] || fail "$unit still active"
fi

step "the installed relay speaks sd_notify: READY=1, WATCHDOG=1, STOPPING=1"
cat >"$ZG_TMP/notify.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
with open(sys.argv[2], "a") as f:
    print("listening", file=f, flush=True)
    while True:
        print(s.recv(4096).decode().replace("\n", "|"), file=f, flush=True)
PY
NOTIFY=zgate-t-install-$$ NLOG=$ZG_TMP/notify.log
python3 "$ZG_TMP/notify.py" "$NOTIFY" "$NLOG" &
NPID=$!
cleanup "kill $NPID 2>/dev/null; wait $NPID 2>/dev/null"
for _ in $(seq 50); do grep -q listening "$NLOG" 2>/dev/null && break; sleep 0.1; done
setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all \
	env NOTIFY_SOCKET="@$NOTIFY" WATCHDOG_USEC=400000 \
	"$DEST/usr/bin/zgate-relay" --config "$ZG_TMP/relay.yaml" >"$ZG_TMP/relay.out" 2>"$ZG_TMP/relay.log" &
RPID=$!
cleanup "kill -KILL $RPID 2>/dev/null; wait $RPID 2>/dev/null"
for _ in $(seq 100); do grep -q '^READY=1' "$NLOG" && break; sleep 0.1; done
grep -qE '^READY=1\|STATUS=ready: QUIC on UDP port [0-9]+, ops on port [0-9]+(, [0-9]+ workers)?$' "$NLOG" ||
	{ cat "$ZG_TMP/relay.log"; fail "no READY=1 from the relay: $(cat "$NLOG")"; }
sleep 1.2
n=$(grep -c '^WATCHDOG=1$' "$NLOG" || true)
echo "READY=1, then $n watchdog pings in about 1.2 s (WATCHDOG_USEC=400000)"
((n >= 3 && n <= 12)) || fail "$n watchdog pings, expected about 6 (every 200 ms)"
kill -TERM "$RPID"
rrc=0; wait "$RPID" || rrc=$?
[[ $rrc -eq 0 ]] || fail "relay exit status $rrc: $(tail -3 "$ZG_TMP/relay.log")"
grep -q '^STOPPING=1' "$NLOG" || fail "no STOPPING=1: $(cat "$NLOG")"
tr '|' ' ' <"$NLOG" | grep -v WATCHDOG

step "the installed zgate-api, unprivileged, against PostgreSQL: READY=1 once migrated and listening, STOPPING=1"
if [[ -z $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null) ]]; then
	echo "PostgreSQL is not installed (make e2e installs it): skipping the zgate-api run"
else
	source "$(dirname "$0")/pg.sh"
	pg_start "$ZG_TMP/pg"
	"$ZG_ROOT/scripts/gen-certs.sh" -d "$PKI" --api 127.0.0.1 --api-relay r1 >/dev/null
	chmod 644 "$PKI"/*
	: >"$NLOG"
	aport=$((20000 + RANDOM % 20000))
	setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all \
		env NOTIFY_SOCKET="@$NOTIFY" ZGATE_DATABASE="$PG_CONNINFO" ZGATE_ADMIN_TOKEN_FILE= \
		"$DEST/usr/bin/zgate-api" --config "$DEST/etc/zgate/zgate-api.yaml" --listen "127.0.0.1:$aport" \
		--cert "$PKI/api.crt" --key "$PKI/api.key" --ca "$PKI/ca.crt" >"$ZG_TMP/api.out" 2>"$ZG_TMP/api.log" &
	APID=$!
	cleanup "kill -KILL $APID 2>/dev/null; wait $APID 2>/dev/null"
	for _ in $(seq 100); do grep -q '^READY=1' "$NLOG" && break; sleep 0.1; done
	grep -q '^READY=1' "$NLOG" || { cat "$ZG_TMP/api.log"; fail "no READY=1 from zgate-api: $(cat "$NLOG")"; }
	[[ $(curl -sS --cacert "$PKI/ca.crt" "https://127.0.0.1:$aport/ready") == ready ]] ||
		fail "zgate-api is READY=1 but /ready says otherwise"
	kill -TERM "$APID"
	arc=0; wait "$APID" || arc=$?
	[[ $arc -eq 0 ]] || fail "zgate-api exit status $arc: $(tail -3 "$ZG_TMP/api.log")"
	grep -q '^STOPPING=1' "$NLOG" || fail "no STOPPING=1 from zgate-api: $(cat "$NLOG")"
	echo "zgate-api as uid 65534: $(tr '\n' ' ' <"$NLOG")"
	pg_kill
fi

step "zgate-agent status against a live agent (installed binaries, CAP_NET_ADMIN only, \$RUNTIME_DIRECTORY)"
ZG_BIN=$DEST/usr/bin
source "$(dirname "$0")/agent_env.sh"
RUN=$ZG_TMP/run
mkdir -p "$RUN" && chown 65534:65534 "$RUN"
STATUS=$RUN/status.json
status() { "$DEST/usr/bin/zgate-agent" status --status-file "$STATUS" "$@"; }
# The agent as the unit runs it: uid 65534 holding only CAP_NET_ADMIN. It
# opens /dev/net/tun as that user, which Debian's udev makes mode 0666;
# this machine's is 0600, so the agent gets a 0666 node of its own (in a
# mount namespace: nothing outside changes).
TUNDIR=$ZG_TMP/tundev
mkdir -p "$TUNDIR"
start_service_agent() {
	ip netns exec "$NSA" unshare --mount sh -c \
		'mount -t tmpfs -o mode=755 none "$1" && mknod -m 666 "$1/tun" c 10 200 &&
		 mount --bind "$1/tun" /dev/net/tun && shift && exec "$@"' sh "$TUNDIR" \
		setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin \
		env RUNTIME_DIRECTORY="$RUN" "$AGENT" --relay "$RELAY" --server-name localhost \
		--cert "$PKI/agent-1.crt" --key "$PKI/agent-1.key" --ca "$PKI/ca.crt" >>"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
}
out=$(status 2>&1) && fail "status before the agent ran: exit 0"
expect_contains "$out" "zgate-agent is not running (no status file $STATUS)" "status before start"
start_echo
start_service_agent
wait_for 10 "state connected" state_is connected
[[ $(awk '/^CapEff:/ {print $2}' /proc/$AGENT_PID/status) == 0000000000001000 ]] ||
	fail "agent capabilities: $(grep ^Cap /proc/$AGENT_PID/status)"
in_agent ping -c 3 -i 0.2 -W 2 198.18.0.1 >/dev/null || fail "ping through the tunnel"
wait_for 8 "traffic in the status file" bash -c "grep -q '\"tx_packets\":[1-9]' '$STATUS'"
out=$(status) || fail "status of a live agent: exit $?"
echo "$out"
expect_contains "$out" "agent: zgate0" "status"
expect_contains "$out" "state: connected (for " "status"
expect_contains "$out" "pid: $AGENT_PID" "status"
expect_contains "$out" "relay: $RELAY" "status"
expect_contains "$out" "addresses: 10.100.0." "status"
expect_contains "$out" "routes: 0.0.0.0/1, 128.0.0.0/1" "status"
expect_contains "$out" "relay route: $RELAY_IP/32" "status"
expect_contains "$out" "rtt: " "status"
expect_contains "$out" "transfer: " "status"
json=$(ZGATE_STATUS_FILE=$STATUS "$DEST/usr/bin/zgate-agent" status --json) || fail "status --json"
python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["state"] == "connected" and d["pid"] == int(sys.argv[2]), d' \
	"$json" "$AGENT_PID" || fail "status --json: $json"

step "status after SIGTERM, and after the agent is killed"
stop_agent
[[ $AGENT_RC -eq 0 ]] || fail "agent exit status $AGENT_RC"
out=$(status 2>&1) && fail "status of a stopped agent: exit 0"
echo "$out"
expect_contains "$out" "zgate-agent is not running (it stopped " "status after SIGTERM"
start_service_agent
wait_for 10 "state connected again" state_is connected
kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
dead=$AGENT_PID AGENT_PID=
out=$(status 2>&1) && fail "status of a killed agent: exit 0"
echo "$out"
expect_contains "$out" "zgate-agent is not running (process $dead is gone;" "status after SIGKILL"
stop_echo

step "make deb; dpkg -i on this machine; systemd-analyze verify; dpkg --purge"
if dpkg-query -W -f='${db:Status-Abbrev}' zgate 2>/dev/null | grep -q '^[ih]'; then
	echo "a zgate package is already installed here: not touching it"; echo "pass"; exit 0
fi
[[ ! -e /etc/zgate && ! -e /usr/bin/zgate-relay ]] ||
	{ echo "/etc/zgate or /usr/bin/zgate-relay exists outside dpkg: not installing over it"; echo "pass"; exit 0; }
deb=$(make -C "$ZG_ROOT" --no-print-directory deb 2>"$ZG_TMP/deb.err" | tail -1)
[[ -f $ZG_ROOT/$deb ]] || fail "make deb: $(tail -5 "$ZG_TMP/deb.err")"
deb=$ZG_ROOT/$deb
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Installed-Size\):/  \1:/p'
dpkg-deb -c "$deb" | awk '{print $6}' | grep -qx './usr/share/man/man8/zgate-relay.8.gz' || fail "no compressed man page"
# dpkg waits for nobody: retry while another apt/dpkg holds the lock
dpkg_retry() {
	local i out
	for i in $(seq 60); do
		out=$(dpkg "$@" 2>&1) && { echo "$out"; return 0; }
		grep -q "lock" <<<"$out" || { echo "$out"; return 1; }
		sleep 1
	done
	echo "$out"; return 1
}
cleanup "dpkg-query -W zgate >/dev/null 2>&1 && dpkg --purge zgate >/dev/null 2>&1"
dpkg_retry -i "$deb" >"$ZG_TMP/dpkg-i.log" || fail "dpkg -i: $(cat "$ZG_TMP/dpkg-i.log")"
files=$(dpkg -L zgate)
out=$(systemd-analyze verify $U/zgate-relay.service $U/zgate-agent.service $U/zgate-api.service \
	$U/zgate-connector.service 2>&1) ||
	fail "systemd-analyze verify of the installed units: $out"
[[ -z $out ]] || fail "systemd-analyze verify of the installed units complained: $out"
echo "dpkg -i installed $(wc -l <<<"$files") paths; the installed units verify cleanly"
man -w zgate-relay zgate-agent zgate-probe >/dev/null || fail "man cannot find the pages"
/usr/bin/zgate-relay --version
/usr/bin/zgate-api --version | head -1
/usr/bin/zgate-connector --version | head -1
dpkg-deb -f "$deb" Depends | grep -q 'libpq5' || fail "the package does not depend on libpq5 (zgate-api)"
out=$(/usr/bin/zgate-agent status 2>&1) && fail "status without an agent: exit 0"
expect_contains "$out" "zgate-agent is not running (no status file /run/zgate/status.json)" "installed status"
dpkg_retry -r zgate >/dev/null || fail "dpkg -r failed"
[[ -f /etc/zgate/zgate-relay.yaml && ! -e /usr/bin/zgate-relay ]] || fail "dpkg -r: the conffiles should stay, the programs go"
dpkg_retry --purge zgate >/dev/null || fail "dpkg --purge failed"
left=$(while read -r f; do if [[ -e $f && ! -d $f ]]; then echo "$f"; fi; done <<<"$files")
[[ -z $left ]] || fail "left after purge: $left"
[[ ! -e /etc/zgate && ! -e /usr/share/doc/zgate ]] || fail "directories left after purge: $(ls -d /etc/zgate /usr/share/doc/zgate 2>&1)"
dpkg-query -W zgate >/dev/null 2>&1 && fail "dpkg still knows zgate"
echo "dpkg -r and --purge removed every file"
echo "pass"
