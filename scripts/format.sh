#!/usr/bin/env bash
# scripts/format.sh [--check] — clang-format (.clang-format) over the C
# sources git tracks (src, tests, fuzz, bench). Without --check the files
# are rewritten in place. With --check nothing is written: each file that
# would change is listed with the number of lines that would, then a total;
# exit 1 when anything would change, 0 when nothing would, 2 when
# clang-format is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null; then
	echo "format: $cf not found (Debian package clang-format; make deps installs it)" >&2
	exit 2
fi
mapfile -t files < <(git ls-files -- 'src/*.[ch]' 'tests/*.[ch]' 'fuzz/*.[ch]' 'bench/*.[ch]')
if [[ ${1:-} != --check ]]; then
	"$cf" -i --style=file "${files[@]}"
	exit $?
fi
total=0 nfiles=0
for f in "${files[@]}"; do
	n=$("$cf" --style=file "$f" | diff -- "$f" - | grep -c '^<')
	if ((n > 0)); then
		printf '%6d  %s\n' "$n" "$f"
		total=$((total + n))
		nfiles=$((nfiles + 1))
	fi
done
echo "format-check: $total lines in $nfiles of ${#files[@]} files differ from .clang-format"
((total == 0))
