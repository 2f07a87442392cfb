#!/usr/bin/env bash
# One formatting style (issue 17.8): the C sources git tracks match
# .clang-format (scripts/format.sh --check, what `make format-check` runs),
# and the check does notice a file that does not. Run by `make selftest`.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/shtest.sh

test_tree_is_formatted() {
	local out rc
	out=$(scripts/format.sh --check 2>&1); rc=$?
	[[ $rc -eq 0 ]] || fail_test "run 'make format' and commit the result: $(tail -5 <<<"$out")"
	expect_has "$out" "format-check: 0 lines" "summary"
}

test_check_catches_drift() {
	local tmp out
	tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
	cp .clang-format "$tmp/"
	printf 'static int  f( void ){return 0;}\n' >"$tmp/x.c"
	out=$(cd "$tmp" && clang-format --style=file x.c)
	[[ $out != "$(cat "$tmp/x.c")" ]] || fail_test ".clang-format accepts a misformatted function"
	expect_has "$out" "static int f(void)" "clang-format output"
}

shtest_main
