#!/usr/bin/env bash
# ensure-packages.sh PKG... — install the Debian packages that are missing.
# Runs apt-get update once per call when something must be installed.
# Without root it prints the command to run instead and fails.
set -euo pipefail

missing=()
for p in "$@"; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ $st == ii* ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "zgate: missing Debian packages: ${missing[*]}" >&2
	echo "zgate: install them with: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "zgate: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# another apt (a second make, unattended-upgrades) may hold the lock: wait
# for it rather than fail
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -q >/dev/null
apt-get "${lock[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null
