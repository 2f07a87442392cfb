#!/usr/bin/env bash
# bench/workers.sh BINDIR [OUT.md] — the relay with `workers: 1` and
# `workers: 2` under the same load (issue 21, target 3):
#
#   client ns 1..4 (zgate-agent "agent-I", TUN zgate0)
#     10.211.I.2 ──veth── relay ns 10.211.I.1 | 10.202.0.1 ──veth── server ns 10.202.0.2
#                         (zgate-relay, uid 65534,            (iperf3 -s on 5201..5204,
#                          no capabilities)                    connrate serve on 8081..8084)
#
# For each round (BENCH_WORKERS_ROUNDS, default 2) and each setting (1,
# then 2) the relay starts afresh and the four agents connect; then, for
# BENCH_WORKERS_SECS seconds each (default 8): four iperf3 TCP streams at
# once, one per agent to its own server, client to server, then server to
# client (-R), summed; then the four agents' HTTP/1.0 connections per
# second, each with 8 in parallel (bench/connrate run), summed. During the
# client-to-server streams and the connections, the CPU of every thread of
# the relay's processes (the master and each worker, from
# /proc/PID/task/*/stat), of the agents and of the whole machine
# (/proc/stat) is sampled. With `workers: 2` the four tunnels are spread
# evenly, two on each worker: a worker is picked by connection ID, at
# random (an even split comes 3 times in 8, all four on one worker once in
# 8), so agents on the busier worker connect again until it is even (at
# most 12 times; the table says how they were spread, and how many
# reconnections it took).
#
# Prints the markdown (and writes it to OUT.md when given). Reuses
# bench/vpn.sh's functions (BENCH_LIB=1): namespaces, the unprivileged
# relay, certificates, agents, cleanup.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/vpn.sh
BENCH_LIB=1 . "$here/vpn.sh"

HZ=$(getconf CLK_TCK)

# relay_procs PID: "label pid" lines: the relay itself ("relay") when it
# is one process, else "master" and "workerI" (the workers are forked in
# index order, so the lower pid is worker 0)
relay_procs() {
	local kids p i=0
	kids=$(pgrep -P "$1" | sort -n)
	if [[ -z $kids ]]; then
		echo "relay $1"
		return
	fi
	echo "master $1"
	for p in $kids; do echo "worker$i $p"; i=$((i + 1)); done
}

# ticks LABEL PID...: "LABEL pid/tid comm ticks" for every thread of these
# processes (utime + stime; comm's spaces as "_")
ticks() {
	local label=$1 p t; shift
	for p in "$@"; do
		for t in /proc/"$p"/task/*; do
			[[ -r $t/stat ]] || continue
			awk -v l="$label" -v id="$p/${t##*/}" '{
				c = $0; sub(/^[^(]*\(/, "", c); sub(/\) .*$/, "", c); gsub(/ /, "_", c)
				sub(/.*\) /, ""); print l, id, c, $12 + $13 }' "$t/stat" 2>/dev/null
		done
	done
}

# host_ticks: the machine's busy ticks (user, nice, system, irq, softirq)
# and its steal ticks (the hypervisor's other guests)
host_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# snap FILE: the threads of the relay (RP) and the agents (APS), and the
# machine, now; with the wall clock
snap() {
	{
		echo "wall $(date +%s.%N)"
		echo "host $(host_ticks)"
		local l p
		while read -r l p; do ticks "$l" "$p"; done < <(relay_procs "$RP")
		# shellcheck disable=SC2086 # APS: the agents' pids
		ticks agents $APS
	} >"$1"
}

# cpu_line BEFORE AFTER: "label pct" per relay process (threads summed, in
# % of one CPU) in the order of BEFORE, then "agents pct", "host pct" (the
# machine busy), "steal pct"; and "threads label n" for a process with more
# than one thread
cpu_line() {
	awk -v hz="$HZ" '
	FNR == 1 { f++ }
	$1 == "wall" { w[f] = $2; next }
	$1 == "host" { h[f] = $2; st[f] = $3; next }
	f == 1 { t0[$2] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } next }
	f == 2 { lab[$2] = $1; t1[$2] = $4 }
	END {
		wall = w[2] - w[1]
		if (wall <= 0) exit 1
		for (id in t1) if (id in t0) { d[lab[id]] += t1[id] - t0[id]; nt[lab[id]]++ }
		for (i = 1; i <= n; i++) {
			l = order[i]
			printf "%s %.1f\n", l, 100 * d[l] / hz / wall
			if (l != "agents" && nt[l] > 1) printf "threads %s %d\n", l, nt[l]
		}
		printf "host %.1f\n", 100 * (h[2] - h[1]) / hz / wall
		printf "steal %.1f\n", 100 * (st[2] - st[1]) / hz / wall
	}' "$1" "$2"
}

# spread LOG: "agent-I worker" for each agent's newest tunnel, from the
# relay's log lines "worker N: tunnel open: agent-I from ..."
spread() {
	sed -n 's/.* worker \([0-9]*\): tunnel open: \(agent-[0-9]*\) from .*/\2 \1/p' "$1" |
		awk '{ w[$1] = $2 } END { for (a in w) print a, w[a] }' | LC_ALL=C sort
}

# spread_text LOG: "worker 0: agent-1, agent-3; worker 1: agent-2, agent-4"
spread_text() {
	spread "$1" | sort -k2,2n -k1,1V | awk 'NR == 1 || $2 != w { printf "%sworker %s: %s", (NR > 1 ? "; " : ""), $2, $1; w = $2; next }
		{ printf ", %s", $1 }'
}

# cpu_cells FILE: the CPU table's cells from cpu_line's output: master,
# worker 0 (or the one relay process), worker 1, agents, the rest of the
# machine's busy time, the machine's, steal
cpu_cells() {
	awk '$1 == "threads" { next }
	{ v[$1] = $2; if ($1 == "relay" || $1 ~ /^(master|worker)/) relay += $2 }
	END {
		m = ("master" in v) ? v["master"] " %" : "–"
		w0 = ("relay" in v) ? v["relay"] : v["worker0"]
		w1 = ("worker1" in v) ? v["worker1"] " %" : "–"
		printf "%s | %s %% | %s | %s %% | %.1f %% | %s %% | %s %%", m, w0, w1, v["agents"],
			v["host"] - relay - v["agents"], v["host"], v["steal"]
	}' "$1"
}

# ratios DATA: the summary line from "workers up down conn/s relay-cpu%"
# lines (relay-cpu%: all its processes during the c→s streams): the
# ratios of the sums over the rounds, and the relay's CPU seconds per GB
# of c→s streams (the streams lasting as long as the CPU was sampled)
ratios() {
	awk -v secs="$secs" '{ u[$1] += $2; d[$1] += $3; c[$1] += $4; r[$1] += $5 * secs / 100; g[$1] += $2 * secs / 8000 }
	     END {
		if (u[1] > 0 && d[1] > 0 && c[1] > 0 && u[2] > 0)
			printf "`workers: 2` / `workers: 1`, all rounds summed: TCP c→s %.2f×, s→c %.2f×, conn/s %.2f×; relay CPU per GB of c→s streams %.1f s with `workers: 1`, %.1f s with `workers: 2`.\n",
				u[2] / u[1], d[2] / d[1], c[2] / c[1], r[1] / g[1], r[2] / g[2]
	     }' "$1"
}

# BENCH_LIB_WORKERS=1: the functions only (tests/bench/test_workers.sh)
[[ ${BENCH_LIB_WORKERS:-0} == 1 ]] && return 0

bindir=${1:?usage: bench/workers.sh BINDIR [OUT.md]}
out=${2:-}
root=$(cd "$here/.." && pwd)
zbin=${ZG_BIN:-$(cd "$bindir/../bin" && pwd)}
secs=${BENCH_WORKERS_SECS:-8}
rounds=${BENCH_WORKERS_ROUNDS:-2}
RUN=$$
G=zgw-r-$RUN S=zgw-s-$RUN
CN=()
for i in 1 2 3 4; do CN[i]=zgw-c$i-$RUN; done
made=() pids=()
W=$(mktemp -d /tmp/zgate-bench-workers.XXXXXX); chmod 755 "$W"
trap cleanup EXIT
# INT, TERM and HUP end the run at once, through cleanup
trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
for t in iperf3 python3 ip curl setpriv; do command -v $t >/dev/null || die "$t missing (make bench installs it)"; done
[[ -x $bindir/connrate && -x $zbin/zgate-relay && -x $zbin/zgate-agent ]] ||
	die "build first: $bindir/connrate, $zbin/zgate-relay and zgate-agent"

netns_new $G $S "${CN[@]}"
ip link add zgw-s0 netns $S type veth peer name zgw-g0 netns $G
ip -n $G addr add 10.202.0.1/24 dev zgw-g0; ip -n $G link set zgw-g0 up
ip -n $S addr add 10.202.0.2/24 dev zgw-s0; ip -n $S link set zgw-s0 up
for i in 1 2 3 4; do
	ip link add zgw-c0 netns "${CN[i]}" type veth peer name "zgw-c$i" netns $G
	ip -n "${CN[i]}" addr add "10.211.$i.2/24" dev zgw-c0; ip -n "${CN[i]}" link set zgw-c0 up
	ip -n $G addr add "10.211.$i.1/24" dev "zgw-c$i"; ip -n $G link set "zgw-c$i" up
	ip netns exec $S iperf3 -s -D -p $((5200 + i)) -I "$W/iperf3-$i.pid" >/dev/null 2>&1
	ip netns exec $S "$bindir/connrate" serve 10.202.0.2 $((8080 + i)) >"$W/connrate-$i.out" 2>&1 &
	pids+=("$!")
done
# the client namespaces reach the server through their tunnel only: no
# route to it but the one the relay sends
ip netns exec $G sysctl -qw net.ipv4.ip_forward=0
# the relay answers a tunnel's ping with its own unprivileged ICMP socket
ip netns exec $G sysctl -qw net.ipv4.ping_group_range="0 2147483647"

d=$W/z
zgate_pki "$d" -c agent-1 -c agent-2 -c agent-3 -c agent-4
{
	printf 'version: 1\ndefault_action: deny\nclients:\n'
	for i in 1 2 3 4; do
		printf '  agent-%s:\n    rules:\n      - { id: bench, action: allow, destinations: ["10.202.0.0/24"] }\n' $i
	done
} >"$d/policy.yaml"

declare -A AP_OF
APS=

# agent_start I: agent-I in its namespace, connected (zgate_agent waits
# for the route)
agent_start() {
	zgate_agent "$d" 10.202 "${CN[$1]}" "10.211.$1.1" "agent-$1"
	AP_OF[$1]=$AP
}
agents_pids() { APS="${AP_OF[*]}"; }

# opened: the relay log's "tunnel open" lines so far
opened() { grep -c 'tunnel open: agent-' "$d/relay.log"; }

# balance: with two workers, an agent on the busier worker connects again
# until each worker has two tunnels (at most 12 times). Returns 1 when
# one worker still has none.
balance() {
	local n0 n1 a before
	for _ in $(seq 13); do
		n0=$(spread "$d/relay.log" | awk '$2 == 0' | wc -l)
		n1=$(spread "$d/relay.log" | awk '$2 == 1' | wc -l)
		((n0 + n1 == 4)) || echo "bench: $((n0 + n1)) of 4 tunnels in the relay's log" >&2
		((n0 == n1 || RECONNECTS == 12)) && break
		a=$(spread "$d/relay.log" | awk -v w=$((n0 > n1 ? 0 : 1)) '$2 == w { print $1; exit }')
		echo "  tunnels on workers 0 and 1: $n0 and $n1; $a connects again" >&2
		before=$(opened)
		stop "${AP_OF[${a#agent-}]}"
		agent_start "${a#agent-}"
		for _ in $(seq 50); do (($(opened) > before)) && break; sleep 0.1; done
		RECONNECTS=$((RECONNECTS + 1))
	done
	((n0 > 0 && n1 > 0))
}

# par_iperf OUTPREFIX [-R]: the four agents' iperf3 streams at once;
# prints the sum of the receivers' Mbit/s and the four figures
par_iperf() {
	local pfx=$1 i ps=(); shift
	for i in 1 2 3 4; do
		ip netns exec "${CN[i]}" iperf3 -c 10.202.0.2 -p $((5200 + i)) -w 4M -t "$secs" -J "$@" \
			>"$pfx-$i.json" 2>/dev/null &
		ps+=("$!")
	done
	wait "${ps[@]}"
	for i in 1 2 3 4; do
		python3 -c 'import json,sys; print("%.0f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))' \
			"$pfx-$i.json" 2>/dev/null || echo 0
	done | awk '{ s += $1; l = l (l == "" ? "" : "/") $1 } END { print s, l }'
}

# par_conn OUTPREFIX: the four agents' connrate runs at once; prints the
# summed rate and errors
par_conn() {
	local pfx=$1 i ps=()
	for i in 1 2 3 4; do
		ip netns exec "${CN[i]}" "$bindir/connrate" run 10.202.0.2 $((8080 + i)) "$secs" 8 \
			>"$pfx-$i.out" 2>&1 &
		ps+=("$!")
	done
	wait "${ps[@]}"
	cat "$pfx"-[1-4].out | sed -n 's/^conns [0-9]* errors \([0-9]*\) rate \([0-9]*\)\/s.*/\2 \1/p' |
		awk '{ r += $1; e += $2; n++ } END { printf "%d %d %d\n", r, e, n }'
}

# one ROUND WORKERS: a fresh relay with that setting, the agents, the three
# measurements; a row in $W/rows and two in $W/cpurows
one() {
	local round=$1 nw=$2 i up upl dn dnl rate errs n sp
	RECONNECTS=0
	zgate_relay "$d" 0.0.0.0:4433 "workers: $nw" "log_level: info" "timeouts: { drain_grace: 1s }"
	for _ in $(seq 100); do
		ip netns exec $G curl -sf http://127.0.0.1:8080/ready >/dev/null 2>&1 && break
		sleep 0.1
	done
	kill -0 "$RP" 2>/dev/null || die "zgate-relay (workers: $nw) exited: $(tail -3 "$d/relay.log")"
	[[ $(relay_procs "$RP" | grep -c '^worker') -eq $((nw > 1 ? nw : 0)) ]] ||
		die "workers: $nw: the relay runs $(relay_procs "$RP" | tr '\n' ' ')"
	for i in 1 2 3 4; do agent_start $i; done
	sp=single
	if ((nw > 1)); then
		balance || echo "bench: the four tunnels stayed on one worker after 12 reconnections" >&2
		sp=$(spread_text "$d/relay.log")
	fi
	agents_pids
	for i in 1 2 3 4; do
		ip netns exec "${CN[i]}" ip route get 10.202.0.2 | grep -q 'dev zgate0' ||
			die "agent-$i: the route to the server does not use zgate0"
		ip netns exec "${CN[i]}" ping -c 1 -W 3 10.202.0.2 >/dev/null ||
			die "agent-$i cannot reach the server: $(tail -3 "$d/agent-agent-$i.log")"
	done
	local open0 drops0
	open0=$(opened)
	drops0=$(udp_rcverr $G "${CN[@]}")
	echo "  round $round, workers: $nw: tunnels $sp" >&2
	snap "$W/s0"
	read -r up upl < <(par_iperf "$W/up")
	snap "$W/s1"
	read -r dn dnl < <(par_iperf "$W/dn" -R)
	snap "$W/s2"
	read -r rate errs n < <(par_conn "$W/conn")
	snap "$W/s3"
	cpu_line "$W/s0" "$W/s1" >"$W/cpu-up"
	cpu_line "$W/s2" "$W/s3" >"$W/cpu-conn"
	local moved=$(($(opened) - open0)) drops=$(($(udp_rcverr $G "${CN[@]}") - drops0))
	((n == 4)) || rate="$rate ($n of 4 runs reported)"
	((RECONNECTS == 0)) || sp="$sp (after $RECONNECTS reconnection(s))"
	((moved == 0)) || sp="$sp; $moved tunnel(s) opened again during the measurements"
	echo "| $round | $nw | $up ($upl) | $dn ($dnl) | $rate | $errs | $drops | $sp |" >>"$W/rows"
	echo "| $round | $nw | c→s streams | $(cpu_cells "$W/cpu-up") |" >>"$W/cpurows"
	echo "| $round | $nw | connections | $(cpu_cells "$W/cpu-conn") |" >>"$W/cpurows"
	awk -v r="$round" -v w="$nw" '$1 == "threads" { printf "round %s, workers: %s: %s has %s threads\n", r, w, $2, $3 }' \
		"$W/cpu-up" >>"$W/threads"
	echo "$nw $up $dn ${rate%% *} $(awk '$1 == "relay" || $1 ~ /^(master|worker)/ { s += $2 } END { print s + 0 }' "$W/cpu-up")" >>"$W/data"
	echo "  up $up ($upl) Mbit/s, down $dn ($dnl), $rate conn/s ($errs errors); CPU c→s: $(grep -v threads "$W/cpu-up" | tr '\n' ' ')" >&2
	grep -h -i 'error\|warn' "$d/relay.log" | grep -v 'tunnel open' | head -3 >&2
	stop "${AP_OF[@]}"
	stop "$RP"
}

: >"$W/rows"; : >"$W/cpurows"; : >"$W/threads"; : >"$W/data"
echo "measuring workers: 1 and 2, $rounds round(s), ${secs} s per run" >&2
for r in $(seq "$rounds"); do
	for nw in 1 2; do one "$r" "$nw"; done
done

report() {
	echo "### The relay on every core: \`workers: 1\` vs \`workers: 2\` (bench/workers.sh)"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs," \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)."
	echo "Four agents (four client namespaces, one TUN and certificate each) → one relay (uid 65534," \
		"no capabilities, started afresh for each row) → one server namespace; every agent, the relay," \
		"the iperf3 and connrate ends share the machine's CPUs. Settings alternate within each round," \
		"so the ratios compare runs minutes apart on the same machine. Each measurement lasts" \
		"${secs} s: one iperf3 TCP stream per agent (-w 4M) to its own server, the four at once;" \
		"then bench/connrate run with 8 connections in parallel per agent, the four at once." \
		"UDP rcvbuf drops: datagrams the kernel dropped for a full socket buffer in the relay's and" \
		"the clients' namespaces over the three measurements."
	echo
	echo "| round | workers | TCP c→s Mbit/s, 4 agents summed (each) | TCP s→c Mbit/s (each) | HTTP conn/s, 4 agents × 8 parallel, summed | errors | UDP rcvbuf drops | tunnels per worker |"
	echo "|---|---|---|---|---|---|---|---|"
	cat "$W/rows"
	echo
	ratios "$W/data"
	echo
	echo "CPU in % of one CPU (this machine has $(nproc), so at most $(($(nproc) * 100)) %), utime + stime" \
		"from /proc/PID/task/*/stat over each measurement: the relay's processes (each summed over" \
		"its threads), the four agents together; from /proc/stat the whole machine's busy time" \
		"(user, system, irq, softirq), the rest of it (the iperf3 or connrate ends and the kernel's" \
		"packet work outside the processes above), and steal (time the hypervisor gave to other guests)."
	echo
	echo "| round | workers | during | relay master | relay worker 0 (with workers: 1, the relay) | relay worker 1 | 4 agents | rest: iperf3 / connrate, kernel | machine busy | steal |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	cat "$W/cpurows"
	echo
	if [[ -s $W/threads ]]; then
		sed 's/^/- /' "$W/threads"
	else
		echo "Every relay process ran one thread: these are per-thread figures."
	fi
	echo
	echo "Reproduce: \`make all build/bench/connrate && sudo bench/workers.sh build/bench\`" \
		"(BENCH_WORKERS_SECS per run, default 8; BENCH_WORKERS_ROUNDS, default 2)."
}

if [[ -n $out ]]; then
	report >"$out"
	cat "$out"
else
	report
fi
