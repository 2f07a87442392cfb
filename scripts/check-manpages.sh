#!/usr/bin/env bash
# check-manpages.sh BINDIR MANDIR — the man pages cannot drift from the
# programs: every option (--word) that `zgate-relay --help`, `zgate-agent
# --help`, `zgate-agent status --help`, `zgate-probe --help` and (when
# built) `zgate-api --help` print must appear in man/zgate-relay.8,
# man/zgate-agent.8, man/zgate-probe.1 or man/zgate-api.8
# (looked up in MANDIR/manN/ or MANDIR itself), and each page must format
# without a groff warning. Prints one line per page; exits 1 on a failure.
set -uo pipefail
bindir=${1:?usage: check-manpages.sh BINDIR MANDIR} mandir=${2:?usage: check-manpages.sh BINDIR MANDIR}
rc=0

page_of() { # NAME SECTION
	local f
	for f in "$mandir/man$2/$1.$2" "$mandir/$1.$2" "$mandir/man$2/$1.$2.gz"; do
		[[ -f $f ]] && { echo "$f"; return 0; }
	done
	return 1
}
# The page as plain text with roff's "\-" and font escapes undone.
page_text() { if [[ $1 == *.gz ]]; then zcat "$1"; else cat "$1"; fi | sed 's/\\-/-/g; s/\\f[BIRP]//g; s/\\f(..//g'; }

check() { # PROG SECTION HELP-COMMAND...
	local prog=$1 sect=$2 page help opts missing=() o text; shift 2
	if ! page=$(page_of "$prog" "$sect"); then
		echo "FAIL $prog($sect): no man page under $mandir"; rc=1; return
	fi
	if ! help=$("$@" 2>&1); then
		echo "FAIL $prog($sect): '$*' failed: $help"; rc=1; return
	fi
	opts=$(grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' <<<"$help" | sed 's/^[^-]*//' | sort -u)
	text=$(page_text "$page")
	for o in $opts; do
		grep -qE -- "(^|[^a-zA-Z0-9-])$o([^a-zA-Z0-9-]|\$)" <<<"$text" || missing+=("$o")
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		echo "FAIL $prog($sect): options in '$*' but not in $page: ${missing[*]}"; rc=1
	else
		echo "ok   $prog($sect): all $(wc -w <<<"$opts") options of '$(basename "$1") ${*:2}' are documented"
	fi
}
lint() { # PROG SECTION
	local page out
	page=$(page_of "$1" "$2") || return 0
	out=$( { if [[ $page == *.gz ]]; then zcat "$page"; else cat "$page"; fi; } | groff -man -ww -z 2>&1)
	if [[ -n $out ]]; then echo "FAIL $1($2): groff warnings: $out"; rc=1; else echo "ok   $1($2): formats without warnings"; fi
}

check zgate-relay 8 "$bindir/zgate-relay" --help
check zgate-agent 8 "$bindir/zgate-agent" --help
check zgate-agent 8 "$bindir/zgate-agent" status --help
check zgate-probe 1 "$bindir/zgate-probe" --help
if [[ -x $bindir/zgate-api ]]; then
	check zgate-api 8 "$bindir/zgate-api" --help
fi
if command -v groff >/dev/null; then
	lint zgate-relay 8; lint zgate-agent 8; lint zgate-probe 1; lint zgate-api 8
else
	echo "note: no groff (Debian groff-base): pages not linted"
fi
exit $rc
