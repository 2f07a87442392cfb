#!/usr/bin/env bash
# Unit-style check of tests/e2e/run.sh's leftover-process check (issue 15.3)
# and of scripts/leftovers.sh; run by `make selftest`. Not an e2e scenario
# (run.sh runs t_*.sh only): the deliberately leaking scenarios live in a
# scratch folder. Needs no root.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/shtest.sh
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# Three scenarios: the bug of issue 15.3 (a service started through a shell
# function with "&", then "kill $!": the subshell dies, the program stays),
# the same bug in a failing scenario, and the fixed pattern.
scenarios() {
	cat >"$TMP/t_leaky.sh" <<'S'
. "$ZG_ROOT/tests/e2e/lib.sh"
svc() { sleep 313; }
svc &
cleanup "kill $! 2>/dev/null"
sleep 0.2
echo PASS
S
	cat >"$TMP/t_leaky_fail.sh" <<'S'
. "$ZG_ROOT/tests/e2e/lib.sh"
svc() { sleep 314; }
svc &
cleanup "kill $! 2>/dev/null"
sleep 0.2
fail "something else went wrong"
S
	cat >"$TMP/t_tidy.sh" <<'S'
. "$ZG_ROOT/tests/e2e/lib.sh"
svc() { $ZG_EXEC sleep 315; }
ZG_EXEC=exec svc &
cleanup "kill $! 2>/dev/null; wait $! 2>/dev/null"
sleep 315 &
cleanup "kill $! 2>/dev/null"
sleep 0.2
echo PASS
S
}

# pids of the processes named in "leftover after ..." lines
pids_in() { sed -n 's/^.*leftover after .*: pid \([0-9]*\): .*$/\1/p' <<<"$1"; }
alive() { [[ -r /proc/$1/cmdline && -n $(tr -d '\0' <"/proc/$1/cmdline" 2>/dev/null) ]]; }

test_run_sh_fails_and_kills_a_leaking_scenario() {
	local out rc pid
	scenarios
	out=$(RESULTS=$TMP/results tests/e2e/run.sh "$TMP/t_leaky.sh" "$TMP/t_leaky_fail.sh" "$TMP/t_tidy.sh" 2>&1)
	rc=$?
	echo "$out"
	expect_eq "$rc" 1 "run.sh exit status"
	expect_has "$out" "FAIL leaky " "the leaking scenario fails"
	expect_has "$out" "leftover after e2e scenario leaky: pid " "report names the scenario"
	expect_has "$out" ": sleep 313" "report names the command line"
	expect_has "$out" "FAIL leaky_fail " "a failing scenario stays failed"
	expect_has "$out" "leftover after e2e scenario leaky_fail: pid " "and its leftovers are reported"
	expect_has "$out" "ok   tidy " "exec'd background programs killed by \$! leave nothing"
	expect_lacks "$out" "scenario tidy" "nothing reported for tidy"
	expect_eq "$(cat "$TMP/results/e2e.count")" "1 2" "counts: each failing scenario once"
	expect_has "$(cat "$TMP/results/e2e/leaky.log")" "sleep 313" "the report is in the scenario's log"
	sleep 0.3
	for pid in $(pids_in "$out"); do
		alive "$pid" && fail_test "leftover pid $pid still running: $(tr '\0' ' ' </proc/"$pid"/cmdline)"
	done
	[[ -n $(pids_in "$out") ]] || fail_test "no pids reported"
}

test_leftovers_matches_its_marker_only() {
	local out rc a b c
	ZG_TEST_RUN=zgself-$$/a sleep 321 & a=$!
	ZG_TEST_RUN=zgself-$$/a/deeper sleep 322 & b=$!
	ZG_TEST_RUN=zgself-$$/ab sleep 323 & c=$!
	sleep 0.2
	# the caller carries the marker too: it is not a leftover
	out=$(ZG_TEST_RUN=zgself-$$/a scripts/leftovers.sh "unit check" "zgself-$$/a" 0)
	rc=$?
	kill $c 2>/dev/null
	echo "$out"
	expect_eq "$rc" 1 "exit status"
	expect_eq "$(wc -l <<<"$out")" 2 "two leftovers"
	expect_has "$out" "leftover after unit check: pid $a: sleep 321" "exact marker"
	expect_has "$out" "leftover after unit check: pid $b: sleep 322" "marker below it"
	expect_lacks "$out" "sleep 323" "another marker with the same prefix"
	{ wait $a $b $c; } 2>/dev/null
	alive $a && fail_test "pid $a not killed"
	alive $b && fail_test "pid $b not killed"
	return 0
}

test_leftovers_waits_for_exiting_processes() {
	local out rc
	ZG_TEST_RUN=zgself-$$-grace sleep 0.5 &
	out=$(scripts/leftovers.sh "unit check" "zgself-$$-grace" 3)
	rc=$?
	expect_eq "$rc" 0 "a process that exits within the grace time is no leftover"
	expect_eq "$out" "" "nothing reported"
	out=$(scripts/leftovers.sh "unit check" "zgself-$$-none" 0)
	expect_eq "$?" 0 "nothing found"
}

shtest_main
