#!/usr/bin/env bash
# bench/workers.sh's pieces that need no namespaces (BENCH_LIB_WORKERS=1
# sources the functions only): which worker holds each agent's newest
# tunnel, from the relay's log; per-process CPU from /proc snapshots;
# the CPU table's cells for one process and for a master with workers;
# the workers: 2 / workers: 1 ratios. Run by `make selftest`.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/shtest.sh
BENCH_LIB_WORKERS=1 . bench/workers.sh
set +e

relay_log() {
	cat <<'L'
2026-12-06T04:23:30.100Z info worker 1: serving: QUIC on UDP 0.0.0.0:4433
2026-12-06T04:23:30.200Z info worker 0: tunnel open: agent-1 from 10.211.1.2:40000, address 10.200.0.2, 1 routes
2026-12-06T04:23:30.300Z info worker 0: tunnel open: agent-2 from 10.211.2.2:40001, address 10.200.0.3, 1 routes
2026-12-06T04:23:30.400Z info worker 0: tunnel open: agent-10 from 10.211.3.2:40002, address 10.200.0.4, 1 routes
2026-12-06T04:23:30.500Z info worker 1: tunnel closed: agent-1 from 10.211.1.2:40000 (replaced)
2026-12-06T04:23:30.600Z info worker 1: tunnel open: agent-1 from 10.211.1.2:40003, address 10.200.0.2, 1 routes
L
}

test_spread_takes_each_agents_newest_tunnel() {
	local W
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	relay_log >"$W/relay.log"
	expect_eq "$(spread "$W/relay.log" | tr '\n' ' ')" "agent-1 1 agent-10 0 agent-2 0 " "spread"
	expect_eq "$(spread_text "$W/relay.log")" "worker 0: agent-2, agent-10; worker 1: agent-1" "spread_text"
}

test_spread_of_one_worker_names_it_alone() {
	local W
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	relay_log | grep -v 'worker 1: tunnel open' >"$W/relay.log"
	expect_eq "$(spread_text "$W/relay.log")" "worker 0: agent-1, agent-2, agent-10" "spread_text"
}

# snapshots as snap writes them: 2 s apart, HZ ticks a second
snaps() {
	cat >"$W/s0" <<S
wall 100.0
host 1000 50
master 10/10 zgate-relay 5
worker0 11/11 zgate-relay 100
worker1 12/12 zgate-relay 200
worker1 12/13 helper 0
agents 20/20 zgate-agent 300
agents 21/21 zgate-agent 300
S
	cat >"$W/s1" <<S
wall 102.0
host $((1000 + 3 * HZ)) $((50 + HZ / 10))
master 10/10 zgate-relay $((5 + HZ / 50))
worker0 11/11 zgate-relay $((100 + HZ))
worker1 12/12 zgate-relay $((200 + HZ / 2))
worker1 12/13 helper $((HZ / 2))
agents 20/20 zgate-agent $((300 + HZ / 2))
agents 21/21 zgate-agent $((300 + HZ / 4))
S
}

test_cpu_line_sums_threads_per_process() {
	local W
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	snaps
	expect_eq "$(cpu_line "$W/s0" "$W/s1" | tr '\n' ' ')" \
		"master 1.0 worker0 50.0 worker1 50.0 threads worker1 2 agents 37.5 host 150.0 steal 5.0 " "cpu_line"
}

test_cpu_cells_with_workers_and_alone() {
	local W
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	snaps
	cpu_line "$W/s0" "$W/s1" >"$W/c"
	# the rest: 150 - (1 + 50 + 50) - 37.5
	expect_eq "$(cpu_cells "$W/c")" "1.0 % | 50.0 % | 50.0 % | 37.5 % | 11.5 % | 150.0 % | 5.0 %" "two workers"
	printf '%s\n' "relay 80.0" "agents 60.0" "host 190.0" "steal 0.0" >"$W/c"
	expect_eq "$(cpu_cells "$W/c")" "– | 80.0 % | – | 60.0 % | 50.0 % | 190.0 % | 0.0 %" "one process"
}

test_ratios_sum_the_rounds() {
	local W out secs=8
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	printf '%s\n' "1 1000 2000 5000 50" "2 1200 2000 6000 60" "1 1000 2000 5000 50" "2 800 2000 4000 60" >"$W/data"
	out=$(ratios "$W/data")
	# c→s 2000 / 2000, conn/s 10000 / 10000; CPU: 2 x 4 s / 2 GB with
	# workers: 1, 2 x 4.8 s / 2 GB with workers: 2
	expect_has "$out" "TCP c→s 1.00×, s→c 1.00×, conn/s 1.00×" "ratios"
	expect_has "$out" "4.0 s with \`workers: 1\`, 4.8 s with \`workers: 2\`" "CPU per GB"
}

shtest_main
