#!/usr/bin/env bash
# make-deb.sh BUILD VERSION — build BUILD/zgate_VERSION_ARCH.deb (run by
# `make deb` after `make all`).
#
# The package is what `make install PREFIX=/usr` stages, so the Makefile
# stays the one list of installed files; dpkg-deb packs it with a
# generated DEBIAN/ directory. dpkg-buildpackage would need debhelper and
# a debian/ tree (rules, changelog, copyright) that would restate the
# build and the file list, and would rebuild the source-built libraries
# from a clean tree; this needs only dpkg-dev. The Depends line comes from
# dpkg-shlibdeps (the Debian libraries the binaries link); ngtcp2, nghttp3,
# wolfSSL and lwIP are linked statically.
#
# The configuration in /etc/zgate is marked as conffiles (an upgrade keeps
# a changed file); the maintainer scripts only reload systemd and, on
# purge, remove the relay's state. No service is enabled or started: each
# needs certificates first (and zgate-api its database). zgate-api (and its
# libpq, libmicrohttpd, GnuTLS) ships in the same package: one file list.
set -euo pipefail
build=${1:?usage: make-deb.sh BUILD VERSION} version=${2:?usage: make-deb.sh BUILD VERSION}
cd "$(dirname "$0")/.."
arch=$(dpkg --print-architecture)
work=$PWD/$build/deb
stage=$work/root
out=$build/zgate_${version}_${arch}.deb
rm -rf "$work"
mkdir -p "$stage"
make --no-print-directory install BUILD="$build" DESTDIR="$stage" PREFIX=/usr >"$work/install.log"

# Debian's layout: stripped programs, compressed man pages, the copyright file.
strip --strip-unneeded "$stage"/usr/bin/zgate-*
gzip -9n "$stage"/usr/share/man/man*/*
install -m 0644 /dev/null "$stage/usr/share/doc/zgate/copyright"
printf 'zgate\nSee README.md for the project and its licence.\n' >"$stage/usr/share/doc/zgate/copyright"

# Depends: the shared libraries the programs need, as Debian packages.
mkdir -p "$work/shlibs/debian"
printf 'Source: zgate\n\nPackage: zgate\nArchitecture: any\n' >"$work/shlibs/debian/control"
depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$stage/usr/bin/zgate-relay" \
	-e"$stage/usr/bin/zgate-agent" -e"$stage/usr/bin/zgate-probe" -e"$stage/usr/bin/zgate-api" \
	-e"$stage/usr/bin/zgate-connector" \
	2>"$work/shlibdeps.log" |
	sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "make-deb: dpkg-shlibdeps found no dependencies:" >&2; cat "$work/shlibdeps.log" >&2; exit 1; }

mkdir -p "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: zgate
Version: $version
Architecture: $arch
Maintainer: zgate developers <zgate@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Section: net
Priority: optional
Description: CONNECT-IP (RFC 9484) zero-trust gateway: relay, agent, connector, probe, address pool
 zgate-relay accepts CONNECT-IP tunnels over HTTP/3 with mutual TLS and
 lets each client reach only what its policy allows, as an unprivileged
 systemd service. zgate-agent is the client: a TUN device whose packets
 travel to the relay; zgate-agent status shows its state. zgate-probe
 tests a relay without privileges. zgate-api keeps the address pool that
 several relays share in PostgreSQL (HTTPS with client certificates).
 zgate-connector sits on-prem, dials out to the relays and serves agents'
 end-to-end encrypted sessions to the prefixes behind it, unprivileged.
CONTROL
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"

cat >"$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
SCRIPT
cat >"$stage/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl stop zgate-relay.service zgate-agent.service zgate-api.service zgate-connector.service || true
	systemctl disable zgate-relay.service zgate-agent.service zgate-api.service zgate-connector.service \
		>/dev/null 2>&1 || true
fi
SCRIPT
cat >"$stage/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
	# the relay's address assignments (StateDirectory=zgate, DynamicUser)
	rm -rf /var/lib/private/zgate /var/lib/zgate
	rmdir /etc/zgate/tls /etc/zgate 2>/dev/null || true
fi
SCRIPT
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
