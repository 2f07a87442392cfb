# tests/shtest.sh — a minimal harness for shell tests of the project's
# scripts (sourced last by a test file). Runs every function named test_*
# in its own subshell, in name order; a test passes when it returns 0.
# Prints cmocka's summary lines, so scripts/run-tests.sh counts it like a
# unit test binary.
#   fail_test MESSAGE                 fail the current test
#   expect_eq GOT WANT WHAT           fail unless GOT == WANT
#   expect_has / expect_lacks TEXT NEEDLE WHAT
fail_test() { echo "  failed: $*" >&2; exit 1; }
expect_eq() { [[ $1 == "$2" ]] || fail_test "$3: expected '$2', got '$1'"; }
expect_has() { [[ $1 == *"$2"* ]] || fail_test "$3: expected to contain '$2', got: $1"; }
expect_lacks() { [[ $1 != *"$2"* ]] || fail_test "$3: expected not to contain '$2', got: $1"; }

shtest_main() {
	local t passed=0 failed=() rc
	for t in $(declare -F | awk '$3 ~ /^test_/ {print $3}'); do
		echo "[ RUN      ] $t"
		("$t")
		rc=$?
		if [[ $rc -eq 0 ]]; then
			echo "[       OK ] $t"; passed=$((passed + 1))
		else
			echo "[  FAILED  ] $t"; failed+=("$t")
		fi
	done
	echo "[==========] $((passed + ${#failed[@]})) test(s) run."
	echo "[  PASSED  ] $passed test(s)."
	if [[ ${#failed[@]} -gt 0 ]]; then
		echo "[  FAILED  ] ${#failed[@]} test(s), listed below:"
		for t in "${failed[@]}"; do echo "[  FAILED  ] $t"; done
		exit 1
	fi
	exit 0
}
