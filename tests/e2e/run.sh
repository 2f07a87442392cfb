#!/usr/bin/env bash
# tests/e2e/run.sh [NAME|PATH...] — run the end-to-end scenarios
# tests/e2e/t_*.sh (or the named ones; an argument with a "/" is a scenario
# file's path). Each scenario is a script that exits 0 on pass, 77 to be
# skipped (e.g. not root), anything else on failure; it cleans up after
# itself (trap). Logs go to $RESULTS/e2e/<name>.log; the counts to
# $RESULTS/e2e.count. Prints each scenario with its time, then
# "e2e: N passed, N failed".
#
# Every process a scenario starts must be gone when it ends: each scenario
# runs with ZG_TEST_RUN=<run>/<name> in its environment (inherited by all it
# starts), and scripts/leftovers.sh then lists, kills and reports whatever
# still carries it; such a scenario counts as failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
results=${RESULTS:-build/results}
mkdir -p "$results/e2e"
export ZG_ROOT=$PWD ZG_BIN=${ZG_BIN:-$PWD/build/bin}

if [[ $# -gt 0 ]]; then
	tests=()
	for n in "$@"; do [[ $n == */* ]] && tests+=("$n") || tests+=("tests/e2e/t_$n.sh"); done
else
	tests=(tests/e2e/t_*.sh)
fi
passed=0 failed=0 skipped=0
run=${ZG_TEST_RUN:-e2e-$(date +%s)-$$}
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh); name=${name#t_}
	log="$results/e2e/$name.log"
	start=$(date +%s%N)
	ZG_TEST_RUN=$run/$name timeout 600 bash "$t" >"$log" 2>&1
	rc=$?
	if ! left=$(scripts/leftovers.sh "e2e scenario $name" "$run/$name"); then
		printf '%s\n' "$left" >>"$log"
		echo "FAIL: the scenario left processes behind (killed now): see above" >>"$log"
		[[ $rc -ne 0 && $rc -ne 77 ]] || rc=125
	fi
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	secs=$(printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)))
	if [[ $rc -eq 0 ]]; then
		passed=$((passed + 1)); printf '  ok   %-36s %5ss\n' "$name" "$secs"
	elif [[ $rc -eq 77 ]]; then
		skipped=$((skipped + 1)); printf '  skip %-36s %s\n' "$name" "$(tail -1 "$log")"
	else
		failed=$((failed + 1)); printf '  FAIL %-36s %5ss (exit %d, log: %s)\n' "$name" "$secs" "$rc" "$log"
		tail -15 "$log" | sed 's/^/       /'
	fi
done
echo "$passed $failed" >"$results/e2e.count"
echo "e2e: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
