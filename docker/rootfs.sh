#!/usr/bin/env bash
# docker/rootfs.sh OUT BINARY... — stage a minimal root file system in OUT
# for a `FROM scratch` image: each BINARY in /usr/local/bin (stripped), the
# shared libraries it loads (as ldd resolves them, copied under the same
# paths, symlinks followed), the dynamic loader, /etc/passwd and /etc/group
# naming the unprivileged users 65532 (nonroot) and 65534 (nobody), an
# /etc/nsswitch.conf, an empty /tmp and the mount points /etc/zgate,
# /etc/zgate/tls and /var/lib/zgate (the state volume; owned by 65532).
# No shell, no package manager. Used by docker/relay.Dockerfile and docker/api.Dockerfile and run by
# scripts/check-packaging.sh on the locally built binary, so what the image
# holds is tested here even though no image can be built here.
set -euo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 OUT BINARY..." >&2; exit 2; }
out=$1; shift
mkdir -p "$out/usr/local/bin" "$out/etc/zgate/tls" "$out/var/lib/zgate" "$out/tmp"
chmod 1777 "$out/tmp"

libs=()
for bin in "$@"; do
	[[ -x $bin ]] || { echo "rootfs.sh: $bin: not an executable" >&2; exit 1; }
	install -m 0755 "$bin" "$out/usr/local/bin/$(basename "$bin")"
	strip --strip-unneeded "$out/usr/local/bin/$(basename "$bin")" 2>/dev/null || true
	# ldd lines: "libx.so.1 => /lib/.../libx.so.1 (0x...)" and
	# "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
	while read -r lib; do libs+=("$lib"); done < <(ldd "$bin" |
		awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
done
[[ ${#libs[@]} -gt 0 ]] || { echo "rootfs.sh: ldd found no libraries (static binary?)" >&2; exit 1; }
for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
	mkdir -p "$out$(dirname "$lib")"
	cp -L "$lib" "$out$lib"
done

cat >"$out/etc/passwd" <<'PW'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PW
cat >"$out/etc/group" <<'GR'
root:x:0:
nonroot:x:65532:
nogroup:x:65534:
GR
echo "hosts: files dns" >"$out/etc/nsswitch.conf"
chmod 0644 "$out/etc/passwd" "$out/etc/group" "$out/etc/nsswitch.conf"
# The state volume's mount point: a named volume copies this ownership.
chown 65532:65532 "$out/var/lib/zgate" 2>/dev/null || true
echo "rootfs.sh: $out: $# binaries, ${#libs[@]} library references"
