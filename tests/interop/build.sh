#!/usr/bin/env bash
# tests/interop/build.sh OUTDIR — builds the independent CONNECT-IP client
# (tests/interop/quinn: quinn + rustls) offline from Debian's Rust
# packages, into OUTDIR/zgate-interop-quinn. Prints the binary's path.
# Needs cargo (the machine's, or Debian's) and the librust-*-dev packages
# named in INTEROP_PACKAGES of the Makefile; fetches nothing.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
src=$(cd "$(dirname "$0")/quinn" && pwd)
command -v cargo >/dev/null || { echo "build.sh: cargo not found (Debian package cargo)" >&2; exit 1; }
# Built from a copy in OUTDIR, so that Cargo.lock (the versions Debian
# ships on this machine, in this cargo's format) stays out of the tree.
# The crate's .cargo/config.toml points cargo at /usr/share/cargo/registry.
mkdir -p "$out/crate"
cp -r "$src/Cargo.toml" "$src/src" "$src/.cargo" "$out/crate/"
(cd "$out/crate" && CARGO_TARGET_DIR="$out/target" cargo build --quiet)
cp "$out/target/debug/zgate-interop-quinn" "$out/zgate-interop-quinn"
echo "$out/zgate-interop-quinn"
