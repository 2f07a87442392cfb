#!/usr/bin/env bash
# bench/vpn.sh BINDIR OUT.md — zgate side by side with the VPNs a user
# would compare it with, measured in one run on the same topology:
#
#   client ns ──veth── gateway ns ──veth── server ns
#   10.201.0.2         10.201.0.1 | 10.202.0.1      10.202.0.2 (iperf3, connrate)
#                                 | 10.207.0.1
#                                 └─veth── connector ns ──veth── on-prem ns
#                                          10.207.0.2 | 10.205.0.1   10.205.0.2 (iperf3, connrate)
#
# Configurations, in turn: direct (routed through the gateway, no tunnel),
# zgate (agent in the client ns, relay as uid 65534 without capabilities in
# the gateway ns), zgate-connector (the same agent and relay, and
# zgate-connector as uid 65534 without capabilities in the connector ns:
# the client reaches the on-prem ns, which only the connector's ns can
# reach, through the agent's end-to-end inner session with the connector,
# which the relay only forwards), wireguard-go, kernel WireGuard (when the
# kernel has it), OpenVPN (UDP, AES-256-GCM, TLS, no DCO). Before each
# tunnel's row the client's route to the server must use the tunnel device.
#
# Environment: BENCH_QUICK=1 (short runs), BENCH_SECS (per iperf3 run,
# default 10), BENCH_REPS (median of, default 3), BENCH_ONLY="direct zgate
# zgate-connector" (subset), BENCH_TESTS="bulk conn" (bulk: iperf3 and ping; conn: the
# connection-setup runs), BENCH_CONNS (connections per setup run, default
# 2000), BENCH_PERF=FILE (record zgate's relay and agent with perf during
# its runs into FILE; bench/flamegraph.py draws it). Writes the markdown
# tables to OUT.md and a chart to OUT.png.
#
# Every peer gets 4 MiB socket buffers, as zgate's UDP socket has: iperf3
# -w 4M, OpenVPN --sndbuf/--rcvbuf; wireguard-go sizes its own (larger).
set -uo pipefail

die() { echo "bench: $*" >&2; exit 1; }

# descendants PID: its children's pids, and theirs, deepest first
descendants() {
	local p
	for p in $(ps -o pid= --ppid "$1"); do descendants "$p"; echo "$p"; done
}

cleanup() {
	local p
	# an interrupted run leaves a measurement (iperf3, connrate) running
	# in a command substitution
	for p in $(descendants $$) "${pids[@]}"; do kill "$p" 2>/dev/null; done
	# iperf3 -D outlives its namespace
	for p in "$W"/iperf3-*.pid; do [[ -s $p ]] && kill "$(cat "$p")" 2>/dev/null; done
	sleep 0.2
	netns_del_made
	rm -rf "$W"
}

# netns_del_made: deletes the namespaces netns_new made, and no other
netns_del_made() {
	local n
	for n in "${made[@]}"; do ip netns del "$n" 2>/dev/null; done
	made=()
}

# netns_new NS...: new namespaces with lo up, remembered for cleanup. A
# name that exists already is not ours (a run that died, or one at work
# with this pid's suffix): stop rather than take or delete it.
netns_new() {
	local n
	for n in "$@"; do
		ip netns add "$n" || die "cannot make namespace $n (ip netns list shows the ones in use)"
		made+=("$n")
		ip -n "$n" link set lo up
	done
}

topo() {
	netns_new $C $G $S
	ip link add zgb-c0 netns $C type veth peer name zgb-g0 netns $G
	ip link add zgb-s0 netns $S type veth peer name zgb-g1 netns $G
	ip -n $C addr add 10.201.0.2/24 dev zgb-c0; ip -n $C link set zgb-c0 up
	ip -n $G addr add 10.201.0.1/24 dev zgb-g0; ip -n $G link set zgb-g0 up
	ip -n $G addr add 10.202.0.1/24 dev zgb-g1; ip -n $G link set zgb-g1 up
	ip -n $S addr add "$SERVER/24" dev zgb-s0; ip -n $S link set zgb-s0 up
	ip netns exec $G sysctl -qw net.ipv4.ip_forward=1
	ip netns exec $G sysctl -qw net.ipv4.ping_group_range="0 2147483647"
	# Replies to tunnel-inner addresses go back through the gateway.
	ip -n $S route add 10.200.0.0/13 via 10.202.0.1
	serve $S "$SERVER"
}

# serve NS ADDR: the iperf3 and connrate servers measure talks to
serve() {
	ip netns exec "$1" iperf3 -s -D -I "$W/iperf3-$1.pid" >/dev/null 2>&1
	ip netns exec "$1" "$bindir/connrate" serve "$2" 8080 >"$W/connrate-$1.out" 2>&1 &
	pids+=("$!")
	sleep 0.3
}

# unpriv NS LOG PROG ARGS...: starts PROG in NS in the background as uid
# 65534 without any capability, as the relay and the connector run in
# production; stdout (their audit trail) is dropped. BGPID is its pid.
unpriv() {
	local ns=$1 log=$2; shift 2
	ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
		--bounding-set=-all --inh-caps=-all "$@" >/dev/null 2>"$log" &
	BGPID=$!; pids+=("$BGPID")
}

# cpu_of PID... : utime+stime in seconds of these processes and their
# children (the relay's workers: with `workers` it is a master and N worker
# processes; a worker that exited meanwhile is not counted)
cpu_of() {
	local t=0 p
	for p in "$@" $(for q in "$@"; do pgrep -P "$q"; done); do
		[[ -r /proc/$p/stat ]] || continue
		t=$(awk -v t="$t" '{ printf "%.2f", t + ($14 + $15) / 100 }' "/proc/$p/stat")
	done
	echo "$t"
}
host_busy() { awk '/^cpu / { print ($2 + $3 + $4 + $7 + $8) / 100 }' /proc/stat; }
udp_out() { # NS: UDP OutDatagrams
	ip netns exec "$1" awk '/^Udp:/ { if (h) { print $5; exit } h = 1 }' /proc/net/snmp
}
tcp_out() { # NS: TCP OutSegs
	ip netns exec "$1" awk '/^Tcp:/ { if (h) { print $12; exit } h = 1 }' /proc/net/snmp
}
udp_rcverr() { # NS...: UDP RcvbufErrors, summed
	local n t=0
	for n in "$@"; do
		t=$((t + $(ip netns exec "$n" awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp)))
	done
	echo $t
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "n/a" }'; }

# udp_received FILE: "Mbit/s loss%" of an iperf3 -u -J result, the rate
# being what the server received (end.sum_received; an iperf3 without it:
# the sending rate less the loss)
udp_received() {
	python3 -c 'import json, sys
e = json.load(open(sys.argv[1]))["end"]
s = e["sum"]
r = e.get("sum_received", {}).get("bits_per_second")
if r is None:
    r = s["bits_per_second"] * (1 - s["lost_percent"] / 100)
print("%.0f %.1f" % (r / 1e6, s["lost_percent"]))' "$1"
}

# The bulk table's header: skip_row and the report count its cells.
BULK_HEAD="| configuration | TCP 1 stream up Mbit/s | TCP 1 stream down Mbit/s | TCP 4 streams Mbit/s | UDP 1200 B received Mbit/s | UDP loss % | ping avg ms | ping p99 ms | HTTP conn/s (8 parallel) | tunnel CPU s/GB | host CPU s/GB | UDP rcvbuf drops |"

# skip_row NAME WHY: a bulk row without figures (not installed, no route,
# ...), with as many cells as the header
skip_row() {
	local i row="| $1 | $2 |" n
	n=$(awk -F'|' '{ print NF - 2 }' <<<"$BULK_HEAD")
	for ((i = 2; i < n; i++)); do row+=" |"; done
	echo "$row" >>"$W/rows"
}

# measure NAME DEV PIDS...: one row of results into $W/rows
measure() {
	local name=$1 dev=$2; shift 2
	local procs=("$@") r t1 t1d p4 udp loss rtt p99 conns cpu0 cpu1 host0 host1 bytes drops0 drops1
	if [[ $dev != - ]] && ! ip netns exec $C ip route get "$SERVER" | grep -q "dev $dev"; then
		skip_row "$name" "route to the server does not use $dev: skipped"
		return
	fi
	if ! ip netns exec $C ping -c 3 -W 2 "$SERVER" >/dev/null; then
		skip_row "$name" "no connectivity"
		echo "bench: $name: no connectivity through $dev" >&2
		local f; for f in ${LOGS:-}; do tail -n 5 "$f" >&2; done
		return
	fi
	[[ " $tests " == *" conn "* ]] && measure_conn "$name" "${procs[@]}"
	if [[ " $tests " != *" bulk "* ]]; then
		return
	fi
	# TCP, one stream, median of reps; CPU and drops over these runs
	cpu0=$(cpu_of "${procs[@]}"); host0=$(host_busy)
	# shellcheck disable=SC2086 # GWNS: one or more namespaces
	drops0=$(udp_rcverr $C $GWNS)
	bytes=0
	t1=$(for r in $(seq "$reps"); do
		ip netns exec $C iperf3 -c "$SERVER" -w 4M -t "$secs" -J 2>/dev/null >"$W/t1.json"
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); e=d["end"]["sum_received"]; print(e["bits_per_second"]/1e6, int(e["bytes"]))' "$W/t1.json" 2>/dev/null || echo "0 0"
	done | tee "$W/t1.all" | awk '{print $1}' | median)
	bytes=$(awk '{ s += $2 } END { print s + 0 }' "$W/t1.all")
	cpu1=$(cpu_of "${procs[@]}"); host1=$(host_busy)
	# shellcheck disable=SC2086
	drops1=$(udp_rcverr $C $GWNS)
	# TCP, one stream, server to client (download)
	t1d=$(for r in $(seq "$reps"); do
		ip netns exec $C iperf3 -c "$SERVER" -w 4M -t "$secs" -R -J 2>/dev/null >"$W/t1d.json"
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["end"]["sum_received"]["bits_per_second"]/1e6)' "$W/t1d.json" 2>/dev/null || echo 0
	done | median)
	# TCP, 4 streams
	p4=$(for r in $(seq "$reps"); do
		ip netns exec $C iperf3 -c "$SERVER" -w 4M -t "$secs" -P 4 -J 2>/dev/null >"$W/p4.json"
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["end"]["sum_received"]["bits_per_second"]/1e6)' "$W/p4.json" 2>/dev/null || echo 0
	done | median)
	# UDP, 1200-byte datagrams at the highest rate iperf3 offers. The rate
	# is what reached the server: iperf3's own figure is the sending rate,
	# which with most datagrams lost says little about the tunnel.
	ip netns exec $C iperf3 -c "$SERVER" -w 4M -u -b 0 -l 1200 -t "$secs" -J 2>/dev/null >"$W/udp.json"
	read -r udp loss < <(udp_received "$W/udp.json" 2>/dev/null || echo "0 100")
	# ping RTT: avg and p99
	read -r rtt p99 < <(ip netns exec $C ping -c "$pings" -i 0.01 -W 2 "$SERVER" 2>/dev/null |
		sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | sort -n |
		awk '{ a[NR] = $1; s += $1 } END { if (NR) printf "%.3f %.3f\n", s / NR, a[int(NR * 0.99 + 0.999)]; else print "n/a n/a" }')
	# HTTP/1.0 connections per second, 8 in parallel
	conns=$(ip netns exec $C "$bindir/connrate" run "$SERVER" 8080 "$secs" 8 | sed -n 's/.*rate \([0-9]*\)\/s.*/\1/p')
	local gb cpugb hostgb
	gb=$(awk -v b="$bytes" 'BEGIN { printf "%.3f", b / 1e9 }')
	if [[ ${#procs[@]} -gt 0 ]]; then
		cpugb=$(awk -v a="$cpu0" -v b="$cpu1" -v g="$gb" 'BEGIN { if (g > 0) printf "%.1f", (b - a) / g; else print "n/a" }')
	else
		cpugb="n/a (kernel)"
	fi
	hostgb=$(awk -v a="$host0" -v b="$host1" -v g="$gb" 'BEGIN { if (g > 0) printf "%.1f", (b - a) / g; else print "n/a" }')
	printf '| %s | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$t1" "$t1d" "$p4" "$udp" "$loss" \
		"$rtt" "$p99" "${conns:-n/a}" "$cpugb" "$hostgb" "$((drops1 - drops0))" >>"$W/rows"
	echo "${name%% *} $t1 $t1d $p4 $udp $rtt ${conns:-0} ${cpugb%% *} $loss" >>"$W/data"
	echo >&2 "  $name: TCP ${t1} Mbit/s (down ${t1d}), 4 streams ${p4}, UDP ${udp} received (${loss}% loss), ping ${rtt}/${p99} ms, ${conns} conn/s, ${cpugb} CPU s/GB"
}

# measure_conn NAME [PIDS...]: BENCH_CONNS short HTTP/1.0 connections one
# after another, then 8 in parallel (bench/connrate count), reps times; the
# run with the median rate gives the row. Into $W/conndata, with the CPU
# time the tunnel's processes PIDS (and their children) spent per
# connection over all reps, in µs ("n/a" without PIDS: the kernel's).
measure_conn() {
	local name=$1 par line rate p50 p99 errs best
	local -a cols=() cpus=() procs=("${@:2}")
	for par in 1 8; do
		local c0 g0 t0 s0 u0
		c0=$(udp_out $C); g0=$(udp_out $G); t0=$(tcp_out $C); s0=$(tcp_out "$SNS")
		((${#procs[@]})) && u0=$(cpu_of "${procs[@]}")
		best=$(for r in $(seq "$reps"); do
			ip netns exec $C "$bindir/connrate" count "$SERVER" 8080 "$nconns" $par |
				sed -n 's/^conns [0-9]* errors \([0-9]*\) rate \([0-9]*\)\/s p50 \([0-9.]*\) ms p99 \([0-9.]*\) ms/\2 \3 \4 \1/p'
		done | sort -n | awk '{ a[NR] = $0 } END { if (NR) print a[int((NR + 1) / 2)]; else print "0 0 0 0" }')
		cols+=($best)
		if ((${#procs[@]})); then
			cpus+=("$(awk -v a="$u0" -v b="$(cpu_of "${procs[@]}")" -v k=$((nconns * reps)) 'BEGIN { printf "%.0f", (b - a) * 1e6 / k }')")
		else
			cpus+=(n/a)
		fi
		awk -v n="$name" -v p=$par -v k=$((nconns * reps)) -v c="$(( $(udp_out $C) - c0 ))" -v g="$(( $(udp_out $G) - g0 ))" \
			-v t="$(( $(tcp_out $C) - t0 ))" -v s="$(( $(tcp_out "$SNS") - s0 ))" 'BEGIN {
			printf "  %s, %d at a time, per connection: UDP datagrams client → %.1f, gateway → %.1f; TCP segments client → %.1f, server → %.1f\n", n, p, c / k, g / k, t / k, s / k }' >&2
	done
	echo "${name%% *} ${cols[*]} ${cpus[*]}" >>"$W/conndata"
	echo >&2 "  $name: setup seq ${cols[0]}/s p50 ${cols[1]} p99 ${cols[2]} ms (errors ${cols[3]}), 8-par ${cols[4]}/s p50 ${cols[5]} p99 ${cols[6]} ms (errors ${cols[7]}), tunnel CPU ${cpus[0]} / ${cpus[1]} µs per connection"
}

run_direct() {
	ip -n $C route add 10.202.0.0/24 via 10.201.0.1
	measure direct -
	ip -n $C route del 10.202.0.0/24 via 10.201.0.1
}

# zgate_pki DIR [GEN-CERTS ARGS...]: DIR with the relay's and client
# "bench"'s certificates (and whatever ARGS add), readable by uid 65534
zgate_pki() {
	local d=$1; shift
	mkdir -p "$d"; chmod 755 "$d"
	"$root/scripts/gen-certs.sh" -d "$d/pki" -s relay.bench -c bench "$@" >/dev/null
	chmod -R a+rX "$d/pki"
}

# zgate_relay DIR LISTEN [YAML-LINE...]: the relay in the gateway ns with
# DIR/policy.yaml (written by the caller) and these lines added to its
# relay.yaml (log_level: warn unless one of them sets it); RP is its pid.
zgate_relay() {
	local d=$1 l level="log_level: warn"
	for l in "${@:3}"; do [[ $l == log_level:* ]] && level=; done
	cat >"$d/relay.yaml" <<C
listen: "$2"
ops_listen: "127.0.0.1:8080"
tls: { cert: $d/pki/relay.crt, key: $d/pki/relay.key, client_ca: $d/pki/ca.crt }
uri_template: "https://relay.bench:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $d/policy.yaml
C
	printf '%s\n' ${level:+"$level"} "${@:3}" >>"$d/relay.yaml"
	chmod 644 "$d"/*.yaml
	unpriv $G "$d/relay.log" "$zbin/zgate-relay" --config "$d/relay.yaml"
	RP=$BGPID
	sleep 0.5
}

# zgate_agent DIR PREFIX [NS RELAY-ADDR ID]: the agent ID (default
# "bench", DIR/pki/ID.crt) in NS (default the client ns), to the relay at
# RELAY-ADDR (default 10.201.0.1); waits up to 10 s until the relay has
# routed PREFIX into zgate0. Logs to DIR/agent.log (DIR/agent-ID.log for
# another ID). AP is its pid.
zgate_agent() {
	local d=$1 ns=${3:-$C} relay=${4:-10.201.0.1} id=${5:-bench} k log
	log=$d/agent${5:+-$5}.log
	ip netns exec "$ns" "$zbin/zgate-agent" --relay "$relay:4433" --server-name relay.bench \
		--cert "$d/pki/$id.crt" --key "$d/pki/$id.key" --ca "$d/pki/ca.crt" \
		--log-level warn 2>"$log" &
	AP=$!; pids+=("$AP")
	for k in $(seq 100); do ip -n "$ns" route show dev zgate0 2>/dev/null | grep -q "^$2" && break; sleep 0.1; done
	kill -0 "$RP" 2>/dev/null || echo "bench: zgate-relay exited: $(tail -3 "$d/relay.log")" >&2
	kill -0 "$AP" 2>/dev/null || echo "bench: zgate-agent $id exited: $(tail -3 "$log")" >&2
}

# stop PID...: SIGTERM, and wait for each
stop() {
	local p
	for p in "$@"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}

run_zgate() {
	local d=$W/zgate
	zgate_pki "$d"
	printf 'version: 1\ndefault_action: deny\nclients:\n  bench:\n    rules:\n      - { id: bench, action: allow, destinations: ["10.202.0.0/24"] }\n' >"$d/policy.yaml"
	zgate_relay "$d" 10.201.0.1:4433
	zgate_agent "$d" 10.202
	local pp=
	if [[ -n ${BENCH_PERF:-} ]]; then
		# the relay's workers (children of RP) do its work
		perf record -F 4999 -g -o "$BENCH_PERF" -p "$(pgrep -P "$RP" | sed 's/$/,/' | tr -d '\n')$RP,$AP" \
			>/dev/null 2>"$d/perf.log" &
		pp=$!
		sleep 0.5
	fi
	LOGS="$d/relay.log $d/agent.log" measure zgate zgate0 "$RP" "$AP"
	if [[ -n $pp ]]; then
		kill -INT "$pp"; wait "$pp" 2>/dev/null
	fi
	stop "$AP" "$RP"
}

# The connector's namespace hangs off the gateway ns (the relay's); the
# on-prem ns hangs off the connector's only: the gateway ns has no route to
# it and the connector's ns does not forward, so only zgate-connector's own
# sockets reach the on-prem servers.
connector_topo() {
	netns_new $K $P
	ip link add zgb-k0 netns $K type veth peer name zgb-g2 netns $G
	ip link add zgb-p0 netns $P type veth peer name zgb-k1 netns $K
	ip -n $G addr add 10.207.0.1/24 dev zgb-g2; ip -n $G link set zgb-g2 up
	ip -n $K addr add 10.207.0.2/24 dev zgb-k0; ip -n $K link set zgb-k0 up
	ip -n $K addr add 10.205.0.1/24 dev zgb-k1; ip -n $K link set zgb-k1 up
	ip -n $P addr add $ONPREM/24 dev zgb-p0; ip -n $P link set zgb-p0 up
	ip netns exec $K sysctl -qw net.ipv4.ip_forward=0
	ip netns exec $K sysctl -qw net.ipv4.ping_group_range="0 2147483647"
	if ip netns exec $G ping -c 1 -W 1 $ONPREM >/dev/null 2>&1; then
		echo "bench: the gateway ns reaches $ONPREM: the connector row would not prove the path" >&2
		return 1
	fi
	serve $P $ONPREM
}

run_zgate-connector() {
	local d=$W/connector k
	local name="zgate-connector (agent → relay → connector)"
	[[ -x $zbin/zgate-connector ]] || { skip_row "$name" "zgate-connector not built"; return; }
	connector_topo || { skip_row "$name" "topology failed"; return; }
	zgate_pki "$d" --connector bench-k
	cat >"$d/policy.yaml" <<Y
version: 1
default_action: deny
connectors:
  bench-k:
    prefixes: ["10.205.0.0/24"]
clients:
  bench:
    rules:
      - { id: onprem, action: allow, connector: bench-k }
Y
	printf 'version: 1\ndefault_action: deny\nclients:\n  bench:\n    rules:\n      - { id: bench, action: allow, destinations: ["10.205.0.0/24"] }\n' >"$d/connector-policy.yaml"
	cat >"$d/connector.yaml" <<C
relays: ["10.207.0.1:4433"]
server_name: relay.bench
ca: $d/pki/ca.crt
cert: $d/pki/connector-bench-k.crt
key: $d/pki/connector-bench-k.key
prefixes: ["10.205.0.0/24"]
policy: $d/connector-policy.yaml
audit: "-"
ops_listen: "127.0.0.1:9201"
inner_port: 443
log_level: warn
C
	zgate_relay "$d" 0.0.0.0:4433
	unpriv $K "$d/connector.log" "$zbin/zgate-connector" --config "$d/connector.yaml"
	local kp=$BGPID
	zgate_agent "$d" 10.205.0.0/24
	kill -0 "$kp" 2>/dev/null || echo "bench: zgate-connector exited: $(tail -3 "$d/connector.log")" >&2
	# the route comes with the relay's word; the inner session follows
	for k in $(seq 20); do ip netns exec $C ping -c 1 -W 1 $ONPREM >/dev/null 2>&1 && break; done
	SERVER=$ONPREM SNS=$P GWNS="$G $K" LOGS="$d/relay.log $d/agent.log $d/connector.log" \
		measure "$name" zgate0 "$RP" "$AP" "$kp"
	stop "$AP" "$kp" "$RP"
}

wg_keys() { wg genkey | tee "$W/$1.key" | wg pubkey >"$W/$1.pub"; }

# wg_setup KIND: KIND is "go" (wireguard-go) or "kernel". The two ends get
# different device names: wireguard-go's control socket lives in the
# shared /var/run/wireguard, not in the namespace.
wg_setup() {
	local kind=$1 dc=$WGDC dg=$WGDG
	wg_keys c; wg_keys g
	if [[ $kind == go ]]; then
		ip netns exec $C env WG_PROCESS_FOREGROUND=1 WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
			wireguard-go $dc >"$W/wgc.log" 2>&1 &
		WGC=$!; pids+=($WGC)
		ip netns exec $G env WG_PROCESS_FOREGROUND=1 WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
			wireguard-go $dg >"$W/wgg.log" 2>&1 &
		WGG=$!; pids+=($WGG)
		sleep 0.5
	else
		ip -n $C link add $dc type wireguard 2>/dev/null || return 1
		ip -n $G link add $dg type wireguard || return 1
	fi
	ip netns exec $G wg set $dg listen-port 51820 private-key "$W/g.key" \
		peer "$(cat "$W/c.pub")" allowed-ips 10.203.0.2/32 || return 1
	ip netns exec $C wg set $dc private-key "$W/c.key" \
		peer "$(cat "$W/g.pub")" endpoint 10.201.0.1:51820 allowed-ips 10.202.0.0/24,10.203.0.1/32 || return 1
	ip -n $C addr add 10.203.0.2/24 dev $dc && ip -n $C link set $dc up mtu 1420 &&
		ip -n $G addr add 10.203.0.1/24 dev $dg && ip -n $G link set $dg up mtu 1420 &&
		ip -n $C route add 10.202.0.0/24 dev $dc
}

wg_teardown() {
	ip -n $C link del "$WGDC" 2>/dev/null; ip -n $G link del "$WGDG" 2>/dev/null
	[[ -n ${WGC:-} ]] && kill "$WGC" "$WGG" 2>/dev/null
	WGC= WGG=
	sleep 0.2
}

run_wireguard-go() {
	command -v wireguard-go >/dev/null || { skip_row "wireguard-go" "not installed"; return; }
	wg_setup go || { skip_row "wireguard-go" "setup failed"; wg_teardown; return; }
	measure wireguard-go "$WGDC" "$WGC" "$WGG"
	wg_teardown
}

run_wireguard-kernel() {
	if ! wg_setup kernel; then
		skip_row "WireGuard (kernel)" "not available in this kernel"
		wg_teardown; return
	fi
	measure "WireGuard-kernel (in-kernel)" "$WGDC"
	wg_teardown
}

run_openvpn() {
	command -v openvpn >/dev/null || { skip_row "OpenVPN" "not installed"; return; }
	local d=$W/ovpn
	mkdir -p "$d"
	"$root/scripts/gen-certs.sh" -d "$d/pki" -s server -c client >/dev/null
	local common="--sndbuf $SOCKBUF --rcvbuf $SOCKBUF --dev zgbtun0 --dev-type tun --proto udp --data-ciphers AES-256-GCM --cipher AES-256-GCM --auth SHA256 --disable-dco --verb 1 --ca $d/pki/ca.crt"
	ip netns exec $G openvpn $common --mode p2p --tls-server --dh none --local 10.201.0.1 --port 1194 \
		--cert "$d/pki/relay.crt" --key "$d/pki/relay.key" --ifconfig 10.204.0.1 10.204.0.2 \
		--verify-client-cert require >"$d/server.log" 2>&1 &
	local sp=$!; pids+=($sp)
	ip netns exec $C openvpn $common --tls-client --remote 10.201.0.1 1194 --nobind \
		--cert "$d/pki/client.crt" --key "$d/pki/client.key" --ifconfig 10.204.0.2 10.204.0.1 \
		--route 10.202.0.0 255.255.255.0 --remote-cert-tls server >"$d/client.log" 2>&1 &
	local cp=$!; pids+=($cp)
	local k
	for k in $(seq 100); do grep -q "Initialization Sequence Completed" "$d/client.log" && break; sleep 0.1; done
	sleep 0.5
	ip -n $C route show | grep -q zgbtun0 || echo "bench: OpenVPN did not come up: $(tail -3 "$d/client.log") / $(tail -3 "$d/server.log")" >&2
	LOGS="$d/client.log $d/server.log" measure "OpenVPN (UDP, AES-256-GCM)" zgbtun0 "$cp" "$sp"
	kill $cp $sp 2>/dev/null; wait $cp $sp 2>/dev/null
}

# report: the markdown tables from $W/rows, $W/data and $W/conndata, and
# the ratios zgate/peer, on stdout.
report() {
	echo "### zgate next to established VPNs (same run, same machine)"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs; client ns → gateway ns → server ns over veth; iperf3 ${secs} s, median of ${reps}."
	echo
	if [[ -s $W/conndata ]]; then
		echo "#### Connection setup: $nconns HTTP/1.0 connections (connect, GET, answer, close), median of $reps runs"
		echo
		echo "Latency is per connection, connect() to the answer's EOF; \"added\" is over the no-tunnel row of the same run. Tunnel CPU: what the tunnel's own processes (agent and relay, their kernel time included) spent per connection, one after another / 8 in parallel."
		echo
		echo "| configuration | one after another conn/s | p50 ms | p99 ms | p50 added ms | 8 in parallel conn/s | p50 ms | p99 ms | errors | conn/s seq / OpenVPN | 8-par / OpenVPN | tunnel CPU µs/conn (1 / 8) |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
		awk '{ r[NR] = $0; n[$1] = NR; split($0, f, " "); s[$1] = f[2]; p[$1] = f[6]; b[$1] = f[3] }
		     END {
			for (i = 1; i <= NR; i++) {
				split(r[i], f, " ")
				add = ("direct" in b) ? sprintf("%+.3f", f[3] - b["direct"]) : "n/a"
				rs = ("OpenVPN" in s && s["OpenVPN"] > 0) ? sprintf("%.2f", f[2] / s["OpenVPN"]) : "n/a"
				rp = ("OpenVPN" in p && p["OpenVPN"] > 0) ? sprintf("%.2f", f[6] / p["OpenVPN"]) : "n/a"
				cpu = (f[10] == "" || f[10] == "n/a") ? "n/a" : f[10] " / " f[11]
				printf "| %s | %.0f | %.3f | %.3f | %s | %.0f | %.3f | %.3f | %d | %s | %s | %s |\n", f[1], f[2], f[3], f[4], add, f[6], f[7], f[8], f[5] + f[9], rs, rp, cpu
			}
		     }' "$W/conndata"
		echo
	fi
	if [[ -s $W/data ]] || [[ " $tests " == *" bulk "* ]]; then
		echo "#### Bulk (iperf3 -w 4M), ping, and HTTP conn/s for ${secs} s, 8 in parallel"
		echo
		echo "UDP: iperf3 sends 1200-byte datagrams as fast as it can; the rate is what reached the server (the sending rate less the loss)."
		echo
		echo "$BULK_HEAD"
		echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
		cat "$W/rows"
		echo
	fi
	if grep -q '^zgate ' "$W/data"; then
		echo "Ratios zgate / peer (throughput and conn/s: higher is better for zgate; ping and CPU: lower is better):"
		echo
		echo "| peer | TCP 1 up | TCP 1 down | TCP 4 | UDP received | ping avg | conn/s | tunnel CPU/GB |"
		echo "|---|---|---|---|---|---|---|---|"
		awk '$1 == "zgate" { for (i = 2; i <= 8; i++) z[i] = $i }
		     $1 != "zgate" && $1 != "zgate-connector" { n[$1] = $0 }
		     END {
			for (k in n) {
				split(n[k], p, " ")
				printf "| %s |", k
				for (i = 2; i <= 8; i++) {
					if (p[i] + 0 > 0 && z[i] != "" && z[i] != "n/a") printf " %.2f |", z[i] / p[i]; else printf " n/a |"
				}
				printf "\n"
			}
		     }' "$W/data"
		echo
	fi
	if cat "$W/data" "$W/conndata" | grep -q '^zgate-connector '; then
		echo "zgate-connector reaches a server that only the connector's namespace can reach, through two" \
			"QUIC layers: the agent's inner CONNECT-IP session with the connector (end to end; the relay" \
			"cannot read it) travels as UDP packets inside the outer tunnels agent ↔ relay and relay ↔" \
			"connector. So every packet is encrypted twice by the agent and decrypted twice by the" \
			"connector (and the other way), the relay decrypts it from one outer tunnel and encrypts it" \
			"into the other instead of terminating its flow, and the connector's stack terminates the flow;" \
			"tunnel CPU counts the agent, the relay and the connector."
		# data: name up down 4-streams udp-received ping conn/s cpu/GB loss%;
		# conndata: name seq/s p50 p99 errors par/s p50 p99 errors cpu-seq cpu-par
		awk 'FILENAME == ARGV[1] && $1 == "zgate" { for (i = 2; i <= 9; i++) z[i] = $i }
		     FILENAME == ARGV[1] && $1 == "zgate-connector" { for (i = 2; i <= 9; i++) k[i] = $i }
		     FILENAME == ARGV[2] && $1 == "zgate" { for (i = 2; i <= 9; i++) zc[i] = $i }
		     FILENAME == ARGV[2] && $1 == "zgate-connector" { for (i = 2; i <= 9; i++) kc[i] = $i }
		     function r(a, b) { return (b + 0 > 0 && a != "" && a != "n/a") ? sprintf("%.2f×", a / b) : "n/a" }
		     END {
			s = ""
			if ((2 in z) && (2 in k))
				s = sprintf("TCP 1 stream up %s, down %s, 4 streams %s, UDP received %s, HTTP conn/s %s, ping %+.3f ms, tunnel CPU per GB %s",
					r(k[2], z[2]), r(k[3], z[3]), r(k[4], z[4]), r(k[5], z[5]),
					r(k[7], z[7]), k[6] - z[6], r(k[8], z[8]))
			if ((2 in zc) && (2 in kc))
				s = s (s != "" ? "; " : "") sprintf("connections one after another %s (p50 %+.3f ms), 8 in parallel %s (p50 %+.3f ms)",
					r(kc[2], zc[2]), kc[3] - zc[3], r(kc[6], zc[6]), kc[7] - zc[7])
			if (s != "")
				printf "\nRelative to the zgate row (same run): %s.\n", s
		     }' "$W/data" "$W/conndata"
	fi
}

# BENCH_LIB=1: the functions only (tests/bench/test_vpn_report.sh)
[[ ${BENCH_LIB:-0} == 1 ]] && return 0

bindir=${1:?usage: bench/vpn.sh BINDIR OUT.md}
out=${2:?usage: bench/vpn.sh BINDIR OUT.md}
root=$(cd "$(dirname "$0")/.." && pwd)
zbin=${ZG_BIN:-$(cd "$bindir/../bin" && pwd)}
quick=${BENCH_QUICK:-0}
secs=${BENCH_SECS:-$([[ $quick == 1 ]] && echo 3 || echo 10)}
reps=${BENCH_REPS:-$([[ $quick == 1 ]] && echo 1 || echo 3)}
pings=$([[ $quick == 1 ]] && echo 100 || echo 200)
only=${BENCH_ONLY:-direct zgate zgate-connector wireguard-go wireguard-kernel openvpn}
tests=${BENCH_TESTS:-bulk conn}
nconns=${BENCH_CONNS:-2000}
SOCKBUF=4194304
# This run's namespaces and the names outside them: two runs at once do
# not collide (veth names live inside the namespaces; wireguard-go's
# control socket in /var/run/wireguard is shared, so its devices carry the
# suffix too: "zgbwgc-" and a pid fit IFNAMSIZ). Only namespaces this run
# made are deleted (made, netns_new).
RUN=$$
C=zgb-c-$RUN G=zgb-g-$RUN S=zgb-s-$RUN K=zgb-k-$RUN P=zgb-p-$RUN
WGDC=zgbwgc-$RUN WGDG=zgbwgg-$RUN
made=()
W=$(mktemp -d /tmp/zgate-bench.XXXXXX); chmod 755 "$W"
# measure's target, its namespace, and the tunnel's namespaces past the
# client (UDP drops are counted there); the connector's row sets them for
# its call (NAME=VALUE measure ...)
SERVER=10.202.0.2 SNS=$S GWNS=$G
ONPREM=10.205.0.2
pids=()
trap cleanup EXIT

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
for t in iperf3 python3 ip; do command -v $t >/dev/null || die "$t missing (make bench installs it)"; done

topo
: >"$W/rows"; : >"$W/data"; : >"$W/conndata"
echo "measuring: $only, $tests (${secs}s runs, median of $reps)"
for cfg in $only; do "run_$cfg"; done

report >"$out"

if command -v gnuplot >/dev/null && [[ -s $W/data ]]; then
	awk '{ print $1, $2, $3, $4, $5 }' "$W/data" >"$W/plot.dat"
	gnuplot <<G 2>/dev/null
set terminal png size 900,500
set output "${out%.md}.png"
set title "Throughput through each configuration (Mbit/s, same run)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set boxwidth 0.9
set xtics rotate by -20
set key top right
plot "$W/plot.dat" using 2:xtic(1) title "TCP 1 stream up", "" using 3 title "TCP 1 stream down", "" using 4 title "TCP 4 streams", "" using 5 title "UDP 1200 B received"
G
fi
cat "$out"
