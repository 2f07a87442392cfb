#!/usr/bin/env bash
# summary.sh DIR — add up every DIR/*.count ("<passed> <failed>") and print
# the closing line "N passed, N failed". Exits 1 when anything failed or
# when no suite ran at all.
set -euo pipefail
dir=${1:-build/results}
passed=0 failed=0 suites=0
for f in "$dir"/*.count; do
	[[ -e $f ]] || continue
	read -r p q <"$f"
	passed=$((passed + p)); failed=$((failed + q)); suites=$((suites + 1))
	printf '  %-12s %d passed, %d failed\n' "$(basename "$f" .count)" "$p" "$q"
done
if [[ $suites -eq 0 ]]; then
	echo "no test suite ran"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
