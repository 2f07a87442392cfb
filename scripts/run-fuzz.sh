#!/usr/bin/env bash
# run-fuzz.sh SECONDS BIN... — run each libFuzzer binary for SECONDS on a
# scratch copy of its seed corpus fuzz/corpus/<name>/. One target = one test:
# it passes when libFuzzer exits 0 (no crash, leak, timeout or failed
# assertion). Prints executions per second; writes $RESULTS/fuzz.count.
# FUZZ_SECONDS_<name> (e.g. FUZZ_SECONDS_fuzz_masque_server=180) gives one
# target its own duration.
set -uo pipefail
export ZG_ROOT=${ZG_ROOT:-$PWD}   # targets that need repository files (PKI script)
default_secs=$1; shift
results=${RESULTS:-build/results}
mkdir -p "$results/fuzz"
passed=0 failed=0
for bin in "$@"; do
	name=$(basename "$bin")
	own="FUZZ_SECONDS_$name"
	secs=${!own:-$default_secs}
	seeds=fuzz/corpus/$name
	work=$(mktemp -d)
	[[ -d $seeds ]] && cp -r "$seeds/." "$work/"
	log="$results/fuzz/$name.log"
	(cd "$results/fuzz" && "$OLDPWD/$bin" -max_total_time="$secs" -print_final_stats=1 \
		-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$name-" "$work") >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
	rate=$(( ${execs:-0} / (secs > 0 ? secs : 1) ))
	rm -rf "$work"
	if [[ $rc -eq 0 ]]; then
		passed=$((passed + 1))
		printf '  ok   %-28s %s execs in %ss (~%s/s), %s\n' "$name" "${execs:-?}" "$secs" "$rate" "${cov:-cov: ?}"
	else
		failed=$((failed + 1))
		printf '  FAIL %-28s exit %d (log: %s)\n' "$name" "$rc" "$log"
		grep -E 'ERROR|SUMMARY|Assertion|runtime error' "$log" | head -10 | sed 's/^/       /'
	fi
done
echo "$passed $failed" >"$results/fuzz.count"
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
