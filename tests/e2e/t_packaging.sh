#!/usr/bin/env bash
# Container images, docker/compose.yaml and the Helm chart, checked without
# a container engine or helm (scripts/check-packaging.sh says what and how):
# Dockerfiles, the image's root file system run read-only as 65532, the
# chart rendered for several values files and every Pod spec held to the
# restricted Pod Security profile, `docker-compose config`; the same for
# zgate-api (docker/api.Dockerfile, helm/zgate-api) and the two-relay compose.
. "$(dirname "$0")/lib.sh"
rc=0
"$ZG_ROOT/scripts/check-packaging.sh" | tee "$ZG_TMP/out" || rc=$?
[[ $rc -eq 77 ]] && skip "check-packaging.sh could not run: $(tail -1 "$ZG_TMP/out")"
if [[ $rc -ne 0 ]]; then
	grep -E '^FAIL' "$ZG_TMP/out" >&2 || true
	fail "check-packaging.sh: exit $rc"
fi
echo "pass"
