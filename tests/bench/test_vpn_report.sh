#!/usr/bin/env bash
# bench/vpn.sh's report and its namespaces (BENCH_LIB=1 sources the
# functions only): every row of the bulk table has as many cells as its
# header, skipped rows included; the UDP column and the zgate/peer ratio
# use the rate that reached the server, not iperf3's sending rate; a run
# deletes only the namespaces it made. Run by `make selftest`.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/shtest.sh
BENCH_LIB=1 . bench/vpn.sh
set +e

cells() { awk -F'|' '{ print NF - 2 }' <<<"$1"; }

# iperf3 -u -J's end object: 100 Mbit/s sent, 80 % lost
udp_json() { # FILE [with sum_received: 1|0]
	if [[ $2 == 1 ]]; then
		printf '{"end":{"sum":{"bits_per_second":100e6,"lost_percent":80},"sum_sent":{"bits_per_second":100e6},"sum_received":{"bits_per_second":20.4e6,"lost_percent":80}}}' >"$1"
	else
		printf '{"end":{"sum":{"bits_per_second":100e6,"lost_percent":80}}}' >"$1"
	fi
}

test_skip_rows_have_the_header_cells() {
	local W row
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	skip_row "zgate" "route to the server does not use zgate0: skipped"
	skip_row "OpenVPN" "not installed"
	expect_eq "$(cells "$BULK_HEAD")" 12 "header cells"
	while read -r row; do
		expect_eq "$(cells "$row")" 12 "cells of '$row'"
	done <"$W/rows"
	expect_eq "$(head -1 "$W/rows")" "| zgate | route to the server does not use zgate0: skipped | | | | | | | | | | |" "skipped row"
}

test_udp_rate_is_the_received_one() {
	local W
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	udp_json "$W/u.json" 1
	expect_eq "$(udp_received "$W/u.json")" "20 80.0" "with sum_received"
	udp_json "$W/u.json" 0
	expect_eq "$(udp_received "$W/u.json")" "20 80.0" "without sum_received (sent less the loss)"
	echo '{}' >"$W/u.json"
	udp_received "$W/u.json" 2>/dev/null && fail_test "a file without end.sum gave a rate"
	return 0
}

test_report_heading_and_ratios_use_received() {
	local W out secs=3 reps=1 nconns=10 tests="bulk" row n
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	: >"$W/conndata"
	# name up down 4-streams udp-received ping conn/s cpu/GB loss%
	printf '%s\n' "direct 900 900 900 400 0.1 5000 n/a 10.0" "zgate 450 400 500 100 0.3 3000 4.0 80.0" \
		"wireguard-go 600 600 700 200 0.2 4000 2.0 10.0" >"$W/data"
	printf '| zgate | 450 | 400 | 500 | 100 | 80.0 | 0.300 | 0.500 | 3000 | 4.0 | 5.0 | 0 |\n' >"$W/rows"
	skip_row "OpenVPN" "not installed"
	out=$(report)
	expect_has "$out" "| UDP 1200 B received Mbit/s | UDP loss % |" "bulk header"
	expect_has "$out" "the rate is what reached the server" "UDP note"
	expect_has "$out" "| peer | TCP 1 up | TCP 1 down | TCP 4 | UDP received |" "ratio header"
	# 100 / 200 received: 0.50 (the sending rates would give another figure)
	expect_has "$out" "| wireguard-go | 0.75 | 0.67 | 0.71 | 0.50 | 1.50 | 0.75 | 2.00 |" "ratios"
	n=$(cells "$BULK_HEAD")
	while read -r row; do
		[[ $row == "| "* && $row != "|---"* ]] || continue
		[[ $row == "| configuration "* || $row == "| zgate "* || $row == "| OpenVPN "* ]] || continue
		expect_eq "$(cells "$row")" "$n" "cells of '$row'"
	done <<<"$out"
}

test_connector_line_compares_received_rates() {
	local W out secs=3 reps=1 nconns=10 tests="bulk"
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	: >"$W/conndata"; : >"$W/rows"
	printf '%s\n' "zgate 450 400 500 100 0.3 3000 4.0 80.0" "zgate-connector 300 300 300 50 0.5 2000 8.0 50.0" >"$W/data"
	out=$(report)
	# 50 / 100: the loss is already in the received rates
	expect_has "$out" "UDP received 0.50×" "connector line"
}

# The connection table: every row has the header's cells; the tunnel CPU
# per connection is shown for a tunnel and "n/a" for the kernel's routing.
test_conn_table_has_cpu_per_connection() {
	local W out secs=3 reps=1 nconns=10 tests="conn" row n
	W=$(mktemp -d); trap 'rm -rf "$W"' RETURN
	: >"$W/data"; : >"$W/rows"
	# name seq/s p50 p99 errors par/s p50 p99 errors cpu-seq cpu-par
	printf '%s\n' "direct 8000 0.100 0.200 0 16000 0.400 0.800 0 n/a n/a" \
		"zgate 2000 0.450 0.700 0 5000 1.500 2.400 0 312 198" \
		"OpenVPN 2500 0.350 0.500 0 4000 1.600 3.000 0 280 240" >"$W/conndata"
	out=$(report)
	expect_has "$out" "| tunnel CPU µs/conn (1 / 8) |" "conn header"
	expect_has "$out" "| zgate | 2000 | 0.450 | 0.700 | +0.350 | 5000 | 1.500 | 2.400 | 0 | 0.80 | 1.25 | 312 / 198 |" "zgate row"
	expect_has "$out" "| direct | 8000 | 0.100 | 0.200 | +0.000 | 16000 | 0.400 | 0.800 | 0 | 3.20 | 4.00 | n/a |" "direct row"
	n=$(cells "$(grep '^| configuration | one after another' <<<"$out")")
	expect_eq "$n" 12 "conn header cells"
	while read -r row; do
		[[ $row == "| zgate | 2000"* || $row == "| direct | 8000"* || $row == "| OpenVPN | 2500"* ]] || continue
		expect_eq "$(cells "$row")" "$n" "cells of '$row'"
	done <<<"$out"
}

# Only the namespaces netns_new made are deleted; a name in use (another
# run's) is refused, not taken over or deleted. Needs root.
test_only_own_namespaces_are_deleted() {
	local other=zgb-t-$$-other mine=zgb-t-$$-mine made=()
	[[ $(id -u) -eq 0 ]] || { echo "  (not root: namespaces not tried)"; return 0; }
	ip netns add "$other" || fail_test "cannot make $other"
	trap 'ip netns del "$other" 2>/dev/null; ip netns del "$mine" 2>/dev/null' RETURN
	(netns_new "$other") 2>/dev/null && fail_test "netns_new took over an existing namespace"
	ip netns list | grep -qw "$other" || fail_test "the existing namespace is gone"
	netns_new "$mine"
	expect_eq "${made[*]}" "$mine" "made"
	netns_del_made
	ip netns list | grep -qw "$mine" && fail_test "$mine was not deleted"
	ip netns list | grep -qw "$other" || fail_test "$other, not this run's, was deleted"
	return 0
}

shtest_main
