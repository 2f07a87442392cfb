# tests/e2e/lib.sh — helpers for the end-to-end scenarios (sourced).
set -euo pipefail

fail() { ZG_FAIL=$*; echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skipped: $*"; exit 77; }
# step TEXT: a heading in the scenario's log, with the seconds since the
# scenario started (bash's SECONDS), to see where a slow one spends them.
step() { echo "--- [${SECONDS}s] $*"; }

# expect_contains TEXT NEEDLE WHAT
expect_contains() { [[ $1 == *"$2"* ]] || fail "$3: expected to contain '$2', got: $1"; }

# worker_pid MASTER W: the pid of worker W of the relay whose master is
# MASTER (a worker names itself "zgate-relay:wW"), or nothing
worker_pid() {
	local p
	for p in $(pgrep -P "$1"); do
		[[ $(cat "/proc/$p/comm" 2>/dev/null) == "zgate-relay:w$2" ]] && { echo "$p"; return 0; }
	done
	return 1
}

# audit_wait FILE ERE [SECONDS] [COUNT]: waits (default 3 s) until COUNT
# (default 1) lines of FILE match; the relay writes its audit trail after
# each event-loop turn, so a line may land a moment after the client saw
# the result. 1 if they did not come.
audit_wait() {
	local f=$1 re=$2 t=${3:-3} want=${4:-1} k
	for ((k = 0; k < t * 20; k++)); do
		[[ $(grep -cE -- "$re" "$f" 2>/dev/null) -ge $want ]] && return 0
		sleep 0.05
	done
	return 1
}

# Background programs: start them so that $! is the program itself, e.g.
#   ip netns exec "$NS" PROG ARGS... >LOG 2>&1 &  pid=$!
# and kill that pid in a cleanup hook. "FUNC ARGS &" with a shell function
# FUNC forks a subshell: $! is the subshell, and killing it leaves FUNC's
# program running. A wrapper function that runs one program may instead
# write it as "$ZG_EXEC PROG ..." and be started as
#   ZG_EXEC=exec FUNC ARGS... &
# so that the background subshell becomes the program. run.sh fails a
# scenario that leaves any process behind (scripts/leftovers.sh).
ZG_EXEC=${ZG_EXEC:-}

# A scratch directory removed on exit, whatever happens.
ZG_TMP=$(mktemp -d)
zg_cleanup_hooks=("rm -rf '$ZG_TMP'")
on_exit() { local i; for ((i = ${#zg_cleanup_hooks[@]} - 1; i >= 0; i--)); do eval "${zg_cleanup_hooks[$i]}" || true; done; }
trap on_exit EXIT
cleanup() { zg_cleanup_hooks+=("$*"); }
