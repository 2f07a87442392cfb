#!/usr/bin/env bash
# run-tests.sh SUITE BIN... — run cmocka test binaries, keep each log under
# $RESULTS/SUITE/, and write "$RESULTS/SUITE.count" = "<passed> <failed>".
# A binary that dies before cmocka prints its summary counts as one failure.
# Exits 1 when anything failed.
set -uo pipefail

suite=$1; shift
results=${RESULTS:-build/results}
mkdir -p "$results/$suite"
passed=0 failed=0

for bin in "$@"; do
	name=$(basename "$bin")
	log="$results/$suite/$name.log"
	"$bin" >"$log" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | tail -1)
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | tail -1)
	p=${p:-0}; f=${f:-0}
	if [[ $rc -ne 0 && $f -eq 0 ]]; then
		f=1 # crashed or exited early: not a pass, whatever it printed
	fi
	passed=$((passed + p)); failed=$((failed + f))
	if [[ $f -ne 0 ]]; then
		printf '  FAIL %-28s %d passed, %d failed (log: %s)\n' "$name" "$p" "$f" "$log"
		grep -E '^\[  (FAILED|ERROR) +\]|error:|runtime error|Sanitizer' "$log" | head -20 | sed 's/^/       /'
	else
		printf '  ok   %-28s %d passed\n' "$name" "$p"
	fi
done

echo "$passed $failed" >"$results/$suite.count"
echo "$suite: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
