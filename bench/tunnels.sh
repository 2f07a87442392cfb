#!/usr/bin/env bash
# tunnels.sh BINDIR — many concurrent idle tunnels on one relay (issue 21,
# target 4): one load client (bench/tunnels) opens BENCH_TUNNELS tunnels
# (default 10000), BENCH_TUNNELS_PAR handshakes at a time (default 16: the
# relay defers at most 16 new connections per source address per loop turn
# and drops the rest, which a client then resends after 1 s), to a
# relay running as uid 65534 with every capability dropped, on the loopback
# of a namespace of its own. Prints a markdown section: handshakes/s, the
# handshake's p50/p99 as the client saw it, the relay's CPU per handshake,
# and the relay's memory per idle tunnel (RSS and PSS growth from before the
# first tunnel to all of them open, divided by their number). The relay
# runs `workers: 1` (one process, no master): with workers the tunnels live
# in the worker processes and the PID measured here would be the master's.
# BENCH_TUNNELS_IDLE_S (default 8) is how long they idle before the memory is
# read. BENCH_RELAY_WRAP runs the relay under a tool (e.g. "heaptrack -o FILE"; the
# figures are then the tool's process's).
set -euo pipefail

bindir=${1:?usage: bench/tunnels.sh BINDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
zbin=${ZG_BIN:-$root/build/bin}
n=${BENCH_TUNNELS:-10000}
par=${BENCH_TUNNELS_PAR:-16}
ns=zgbtun$$
W=$(mktemp -d /tmp/zgbtun.XXXXXX)
rp= lp=

cleanup() {
	set +e # every step runs, whatever the ones before returned
	if [[ -n $lp ]]; then kill "$lp" 2>/dev/null; wait "$lp" 2>/dev/null; fi
	if [[ -n $rp ]]; then kill "$rp" 2>/dev/null; wait "$rp" 2>/dev/null; fi
	ip netns del "$ns" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

# kB of a /proc/PID/status or smaps_rollup field
kb() { awk -v f="$2:" '$1 == f { print $2 }' "$1"; }
# CPU seconds (user + system) of a process, from /proc/PID/stat
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
metric() { ip netns exec "$ns" curl -s "http://127.0.0.1:8080/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

ip netns add "$ns"
ip -n "$ns" link set lo up
chmod 755 "$W"
"$root/scripts/gen-certs.sh" -d "$W/pki" -s relay.bench -c unused >/dev/null
python3 "$root/bench/tunnel_certs.py" "$W/pki" "$W/c" "$n"
chmod -R a+rX "$W/pki"
{
	echo 'version: 1'
	echo 'default_action: deny'
	echo 'clients:'
	for ((i = 0; i < n; i++)); do
		printf '  t%05d: { rules: [ { id: r, action: allow, destinations: ["10.250.0.0/24"] } ] }\n' $i
	done
} >"$W/policy.yaml"
plen=16
for p in 24 23 22 21 20 19 18 17; do ((n + 2 <= (1 << (32 - p)))) && { plen=$p; break; }; done
cat >"$W/relay.yaml" <<C
listen: "127.0.0.1:4433"
ops_listen: "127.0.0.1:8080"
tls: { cert: $W/pki/relay.crt, key: $W/pki/relay.key, client_ca: $W/pki/ca.crt }
uri_template: "https://relay.bench:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $W/policy.yaml
pool: { ipv4: 10.96.0.0/$plen }
limits: { sessions: $((n + 100)), handshakes_per_source: $((2 * par)) }
log_level: warn
workers: 1
C
chmod 644 "$W"/*.yaml
ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
	--bounding-set=-all --inh-caps=-all ${BENCH_RELAY_WRAP:-} "$zbin/zgate-relay" --config "$W/relay.yaml" \
	>/dev/null 2>"$W/relay.log" &
rp=$!
for _ in $(seq 100); do
	ip netns exec "$ns" curl -sf http://127.0.0.1:8080/ready >/dev/null 2>&1 && break
	sleep 0.1
done
kill -0 "$rp" 2>/dev/null || { echo "tunnels: zgate-relay exited: $(tail -3 "$W/relay.log")" >&2; exit 1; }
sleep 1
rss0=$(kb "/proc/$rp/status" VmRSS) pss0=$(kb "/proc/$rp/smaps_rollup" Pss) cpu0=$(cpu_s "$rp")

mkfifo "$W/out"
ip netns exec "$ns" "$bindir/tunnels" -r 127.0.0.1:4433 -s relay.bench -C "$W/pki/ca.crt" \
	-d "$W/c" -n "$n" -p "$par" >"$W/out" 2>"$W/client.log" &
lp=$!
exec 3<"$W/out"
result=
while read -r line <&3; do
	case $line in
	opened*) result=$line ;;
	holding*) break ;;
	esac
done
if [[ -z $result ]]; then
	wait "$lp" || true
	lp=
	echo "tunnels: the load client gave up: $(tail -5 "$W/client.log")" >&2
	exit 1
fi
cpu1=$(cpu_s "$rp")
sleep "${BENCH_TUNNELS_IDLE_S:-8}" # idle: handshake leftovers and lent buffers (5 s) freed
rss1=$(kb "/proc/$rp/status" VmRSS) pss1=$(kb "/proc/$rp/smaps_rollup" Pss)
sessions=$(metric zgate_sessions)
kill "$lp"
tail_line=$(cat <&3)
wait "$lp" || true
lp=
exec 3<&-

read -r opened failed secs rate p50 p99 < <(echo "$result" |
	sed -n 's/^opened \([0-9]*\) failed \([0-9]*\) in \([0-9.]*\) s: \([0-9]*\) handshakes\/s, p50 \([0-9.]*\) ms p99 \([0-9.]*\) ms$/\1 \2 \3 \4 \5 \6/p')
echo "### Concurrent tunnels: bench/tunnels.sh"
echo
echo "One load client opens $n CONNECT-IP tunnels (one client certificate and UDP socket each," \
	"$par handshakes at a time) to one relay (uid 65534, no capabilities, \`workers: 1\`) on" \
	"a namespace's loopback, then holds them idle."
echo
echo "| tunnels asked | open (relay's zgate_sessions) | failed | handshakes/s | handshake p50 / p99 | relay CPU per handshake | relay RSS before → all open | per idle tunnel (RSS / PSS) |"
echo "|---|---|---|---|---|---|---|---|"
awk -v n="$n" -v o="${opened:-0}" -v s="${sessions:-?}" -v f="${failed:-?}" -v r="${rate:-0}" \
	-v p50="${p50:-?}" -v p99="${p99:-?}" -v c0="$cpu0" -v c1="$cpu1" -v r0="$rss0" -v r1="$rss1" \
	-v q0="$pss0" -v q1="$pss1" 'BEGIN {
	printf "| %d | %d (%s) | %s | %s | %s / %s ms | %.0f µs | %.1f → %.1f MiB | %.1f / %.1f KiB |\n",
		n, o, s, f, r, p50, p99, o ? (c1 - c0) * 1e6 / o : 0, r0 / 1024, r1 / 1024,
		o ? (r1 - r0) / o : 0, o ? (q1 - q0) / o : 0 }'
echo
echo "Tunnels the relay closed while they were held: ${tail_line#closed while held }."
if [[ -s $W/client.log ]]; then
	echo
	echo "Client errors (first lines):"
	echo
	sed 's/^/    /' "$W/client.log" | head -5
fi
