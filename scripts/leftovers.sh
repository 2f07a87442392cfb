#!/usr/bin/env bash
# leftovers.sh WHAT MARKER [GRACE] — find the processes a test run left
# behind, report them, kill them.
#
# A test run exports ZG_TEST_RUN=MARKER (tests/e2e/run.sh: one marker per
# scenario; make test: one per suite); every process it starts inherits the
# variable, whatever network namespace or user it runs as (ip netns exec,
# setpriv, python keep the environment), and /proc/PID/environ shows it
# after the test's own shell is gone. Processes whose ZG_TEST_RUN is MARKER
# or MARKER/... count; this script and its ancestors do not.
#
# Waits up to GRACE seconds (default 3) for them to exit by themselves (a
# cleanup's SIGTERM takes a moment), then prints one line per process,
#   leftover after WHAT: pid PID: COMMAND LINE
# kills each by its PID (SIGKILL) and exits 1. Exits 0 when none is left.
set -uo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
	echo "usage: $0 WHAT MARKER [GRACE-SECONDS]" >&2
	exit 2
fi
what=$1 marker=$2 grace=${3:-3}
[[ $marker =~ ^[A-Za-z0-9._/-]+$ ]] || { echo "leftovers.sh: bad marker '$marker'" >&2; exit 2; }
[[ $grace =~ ^[0-9]+$ ]] || { echo "leftovers.sh: bad grace '$grace'" >&2; exit 2; }
unset ZG_TEST_RUN
re="^ZG_TEST_RUN=${marker//./\\.}(/.*)?\$"

# This script, the shell that called it and so on up: they may carry a
# marker themselves and are not leftovers.
declare -A mine=()
p=$$
while [[ $p =~ ^[0-9]+$ && $p -gt 1 && -z ${mine[$p]:-} ]]; do
	mine[$p]=1
	s=$(<"/proc/$p/stat") 2>/dev/null || break
	s=${s##*) } # after "(comm)", which may contain spaces
	read -r _ p _ <<<"$s"
done

ppid_of() { local s; s=$(<"/proc/$1/stat") 2>/dev/null || return 1; s=${s##*) }; read -r _ s _ <<<"$s"; echo "$s"; }

# found: the pids with the marker, minus ours and our own forks.
find_them() {
	local f pid
	found=()
	while IFS= read -r f; do
		pid=${f#/proc/}; pid=${pid%/environ}
		[[ -n ${mine[$pid]:-} || $(ppid_of "$pid") == "$$" ]] && continue
		found+=("$pid")
	done < <(grep -lszE "$re" /proc/[0-9]*/environ)
}

now_ds() { local t=${EPOCHREALTIME/,/.}; echo $(( ${t%.*} * 10 + 10#${t#*.} / 100000 )); }
deadline=$(( $(now_ds) + grace * 10 ))
while :; do
	find_them
	((${#found[@]} == 0)) && exit 0
	(( $(now_ds) < deadline )) || break
	sleep 0.1
done
for pid in "${found[@]}"; do
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || cmd="(gone)"
	echo "leftover after $what: pid $pid: ${cmd% }"
done
kill -KILL "${found[@]}" 2>/dev/null
exit 1
