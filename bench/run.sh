#!/usr/bin/env bash
# run.sh BINDIR — runs the benchmarks built in BINDIR (make bench) and prints
# their results as markdown. Sizes come from the environment:
#   BENCH_FLOWS  idle TCP flows to open (default 10000)
#   BENCH_BYTES  bytes through the throughput flow (default 1000000000)
#   BENCH_MTU    tunnel MTU, 1280..1500 (default 1280)
#   BENCH_IDLE_S seconds the idle flows are watched (default 3)
#   BENCH_RULES  policy rules for bench/policy_rules (default 10000)
#   BENCH_TUNNELS, BENCH_TUNNELS_PAR: concurrent tunnels (bench/tunnels.sh)
#   BENCH_QUICK=1, BENCH_SECS, BENCH_REPS, BENCH_ONLY: see bench/vpn.sh
#   BENCH_WORKERS_SECS, BENCH_WORKERS_ROUNDS: see bench/workers.sh
# The whole report also goes to bench/results/<date>.md (+ .png chart);
# bench/workers.sh's part also to bench/results/<date>-workers.md.
set -euo pipefail

bindir=${1:?usage: bench/run.sh BINDIR}
results=$(dirname "$0")/results
mkdir -p "$results"
report=$results/$(date -u +%Y-%m-%d).md

body() {
echo "## zgate benchmarks"
echo
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -sr), $(nproc) CPUs," \
	"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo
echo "### src/stack: bench/stack_flows"
echo
"$bindir/stack_flows" -n "${BENCH_FLOWS:-10000}" -b "${BENCH_BYTES:-1000000000}" \
	-m "${BENCH_MTU:-1280}" -i "${BENCH_IDLE_S:-3}"
echo
echo "RSS is user-space memory only: the kernel's socket memory (the relay's" \
	"upstream socket and the listener's accepted one, per flow) is not in it."
echo
echo "### src/relay/policy: bench/policy_rules"
echo
"$bindir/policy_rules" -n "${BENCH_RULES:-10000}"
echo
echo "Rules are evaluated once per new flow (first match), never per packet."
echo
bench/tunnels.sh "$bindir"
echo
bench/vpn.sh "$bindir" "$results/$(date -u +%Y-%m-%d)-vpn.md" >/dev/null
cat "$results/$(date -u +%Y-%m-%d)-vpn.md"
echo
bench/workers.sh "$bindir" "$results/$(date -u +%Y-%m-%d)-workers.md"
}

body | tee "$report.tmp"
mv "$report.tmp" "$report"
rm -f "$results/$(date -u +%Y-%m-%d)-vpn.md"
echo
echo "written: $report (chart: ${report%.md}-vpn.png; workers: ${report%.md}-workers.md)"
