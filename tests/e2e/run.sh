#!/usr/bin/env bash
# tests/e2e/run.sh [NAME...] — run the end-to-end scenarios tests/e2e/t_*.sh
# (or the named ones). Each scenario is a script that exits 0 on pass, 77 to
# be skipped (e.g. not root), anything else on failure; it cleans up after
# itself (trap). Logs go to $RESULTS/e2e/<name>.log; the counts to
# $RESULTS/e2e.count. Prints each scenario with its time, then
# "e2e: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
results=${RESULTS:-build/results}
mkdir -p "$results/e2e"
export ZG_ROOT=$PWD ZG_BIN=${ZG_BIN:-$PWD/build/bin}

if [[ $# -gt 0 ]]; then
	tests=(); for n in "$@"; do tests+=("tests/e2e/t_$n.sh"); done
else
	tests=(tests/e2e/t_*.sh)
fi
passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh); name=${name#t_}
	log="$results/e2e/$name.log"
	start=$(date +%s%N)
	timeout 600 bash "$t" >"$log" 2>&1
	rc=$?
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
