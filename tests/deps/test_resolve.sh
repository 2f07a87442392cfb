#!/usr/bin/env bash
# Unit-style tests of third_party/deps.sh (issue 15.4): which suite and
# Debian revision deliver each pinned orig tarball, the one-line failure
# when none does, the offline reuse of a resolution, and the cache key.
# Uses the canned apt-cache showsrc output in tests/deps/showsrc/; no
# network, no root. Run by `make selftest`.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOTDIR=$PWD
CANNED=$ROOTDIR/tests/deps/showsrc
. tests/shtest.sh
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# In a test's subshell: load deps.sh's functions with a scratch cache and
# apt-cache replaced by the canned output of $1 (today, later).
load() {
	export XDG_CACHE_HOME=$TMP/cache-$BASHPID ZGATE_SHOWSRC_DIR=$CANNED/$1
	unset ZGATE_SUITES
	# shellcheck source=/dev/null
	. "$ROOTDIR/third_party/deps.sh" || fail_test "deps.sh did not load"
	set +e
	DL=$TMP/dl-$BASHPID; mkdir -p "$DL"
}

# A resolve_dep callback that accepts nothing: lists every candidate.
CANDS=()
collect() { CANDS+=("$2 $3 $4 $5"); return 1; }
candidates() { CANDS=(); resolve_dep "$1" collect; printf '%s\n' "${CANDS[@]}"; }

test_today_stable_suites_first() {
	load today
	# only sid has wolfSSL 5.9.2; trixie's 5.7.2 is another tarball
	expect_eq "$(candidates wolfssl)" \
		"sid 5.9.2-1.2 wolfssl_5.9.2-1.2.debian.tar.xz e512984f185866c99452b769eb4b5e7fe4c878bc6e5eb98079fcbf4585c5e4a7" wolfssl
	expect_eq "$(candidates nghttp3)" \
		"trixie-backports 1.15.0-1~bpo13+1 nghttp3_1.15.0-1~bpo13+1.debian.tar.xz 56595f5fefee6bfee4e93e288f9d1b217f92076edaa60bd6d31a6348b87c395b" nghttp3
	# trixie's 1.11.0 and trixie-backports' 1.22.1 are other tarballs
	expect_eq "$(candidates ngtcp2)" \
		"forky 1.24.0-1 ngtcp2_1.24.0-1.debian.tar.xz 3cb0672f931ac47d2f043250fcba4656d6ef9a4a926042426356acb489888062
sid 1.24.0-1 ngtcp2_1.24.0-1.debian.tar.xz 3cb0672f931ac47d2f043250fcba4656d6ef9a4a926042426356acb489888062" ngtcp2
	# three revisions share the orig tarball; the stable one comes first
	expect_eq "$(candidates lwip | cut -d' ' -f1,2)" \
		"trixie 2.2.1+dfsg1-1+deb13u1
forky 2.2.1+dfsg1-8
sid 2.2.1+dfsg1-9" lwip
}

test_first_accepted_candidate_ends_the_search() {
	load today
	# showsrc runs in a command substitution: it notes the suites in a file
	eval "canned_$(declare -f showsrc)"
	showsrc() { printf "%s " "$1" >>"$TMP/asked"; canned_showsrc "$@"; }
	asked() { cat "$TMP/asked"; rm -f "$TMP/asked"; }
	take() { CANDS+=("$2 $3"); return 0; }
	CANDS=()
	resolve_dep lwip take || fail_test "resolve_dep failed"
	expect_eq "${CANDS[*]}" "trixie 2.2.1+dfsg1-1+deb13u1" "accepted"
	expect_eq "$(asked)" "trixie " "suites indexed"
	# a candidate that cannot deliver (e.g. mirror gap) leads to the next one
	CANDS=()
	second() { CANDS+=("$2"); [[ $2 == forky ]]; }
	resolve_dep lwip second || fail_test "resolve_dep failed"
	expect_eq "${CANDS[*]}" "trixie forky" "tried"
	expect_eq "$(asked)" "trixie trixie-backports bookworm-backports forky " "suites indexed"
	# every candidate failing is not the "gone" error: resolve_dep returns 1
	(resolve_dep lwip collect) 2>"$TMP/err"
	expect_eq "$?" 1 "all candidates failed"
	expect_eq "$(cat "$TMP/err")" "" "no message from resolve_dep itself"
}

test_later_any_debian_revision_of_the_pinned_tarball() {
	load later
	expect_eq "$(candidates wolfssl)" \
		"sid 5.9.2-2 wolfssl_5.9.2-2.debian.tar.xz $(printf '%064d' 16)" wolfssl
	expect_eq "$(candidates lwip 2>/dev/null | cut -d' ' -f1-3)" \
		"trixie 2.2.1+dfsg1-1+deb13u2 lwip_2.2.1+dfsg1-1+deb13u2.debian.tar.xz
forky 2.2.1+dfsg1-9 lwip_2.2.1+dfsg1-9.debian.tar.xz" lwip
}

test_later_same_name_other_sha_is_refused_loudly() {
	load later
	local err
	err=$(candidates lwip 2>&1 >/dev/null)
	expect_has "$err" "sid lwip 2.2.1+dfsg1-10 lists lwip_2.2.1+dfsg1.orig.tar.xz with SHA-256 $(printf '%064d' 17)" "warning"
	expect_has "$err" "not used" "warning"
	# alone, it is no candidate at all
	ZGATE_SHOWSRC_DIR=$TMP/only-sid; mkdir -p "$ZGATE_SHOWSRC_DIR"
	cp "$CANNED/later/sid" "$ZGATE_SHOWSRC_DIR/"
	err=$( (candidates lwip) 2>&1)
	expect_eq "$?" 1 "exit status"
	expect_has "$err" "sid has 2.2.1+dfsg1-10 (lwip_2.2.1+dfsg1.orig.tar.xz with another SHA-256!)" "error"
}

test_later_gone_pin_fails_with_one_clear_line() {
	load later
	local err
	err=$( (candidates ngtcp2) 2>&1)
	expect_eq "$?" 1 "exit status"
	expect_eq "$(wc -l <<<"$err")" 1 "one line"
	expect_eq "$err" "deps: error: no suite offers ngtcp2 1.24.0 (ngtcp2_1.24.0.orig.tar.xz with the pinned SHA-256) any more; now trixie has 1.11.0-1+deb13u2, trixie-backports has 1.26.0-1~bpo13+1, bookworm-backports has no index, forky has 1.25.0-1, sid has 1.26.0-1; to re-pin, set VER[ngtcp2], ORIG[ngtcp2] and ORIG_SHA[ngtcp2] in the recipe section of third_party/deps.sh to one of these ('third_party/deps.sh offers ngtcp2' lists files and SHA-256s), then rebuild and run make test" "message"
	err=$( (candidates nghttp3) 2>&1)
	expect_eq "$?" 1 "nghttp3 exit status"
	expect_has "$err" "no suite offers nghttp3 1.15.0" "nghttp3"
	expect_has "$err" "now trixie has 1.8.0-1, trixie-backports has 1.17.0-1~bpo13+1," "nghttp3 offers"
}

test_offers_lists_orig_tarballs_to_repin_from() {
	load later
	local out
	out=$(offers ngtcp2)
	expect_has "$out" "pinned: 1.24.0 ngtcp2_1.24.0.orig.tar.xz 7fa5ec2be0f0cbed8bc4ec89c0787dfa9d8ce678f1ed9477c52f30eb1a591207" "pinned"
	expect_has "$out" "trixie               1.11.0-1+deb13u2         ngtcp2_1.11.0.orig.tar.xz 382c15bf66b630f26021631b25b7eb1feac42c67c1d6826189d61091dfaa4d09" "trixie"
	expect_has "$out" "bookworm-backports   (no index)" "missing suite"
	expect_lacks "$out" ".debian.tar" "only orig tarballs"
}

test_parser_reads_sha256_block_only() {
	load today
	local out
	# today's records also list the files under Files: (MD5) and
	# Checksums-Sha1:, with the same names; those must not count
	out=$(parse_showsrc wolfssl wolfssl_5.7.2.orig.tar.gz 0f2ed82e345b833242705bbc4b08a2a2037a33f7bf9c610efae6464f6b10e305 <"$CANNED/today/trixie")
	expect_eq "$out" "match 5.7.2-0.1+deb13u2 wolfssl_5.7.2-0.1+deb13u2.debian.tar.xz c4c31ffaa8e05e1132cb535cc0b0cd3083e04f134883ab039154f3857d0a96d8" "trixie wolfssl"
	out=$(parse_showsrc ngtcp2 ngtcp2_1.24.0.orig.tar.xz 7fa5ec2be0f0cbed8bc4ec89c0787dfa9d8ce678f1ed9477c52f30eb1a591207 <"$CANNED/today/trixie")
	expect_eq "$out" "other 1.11.0-1+deb13u1" "another version"
	out=$(parse_showsrc zzz x y <"$CANNED/today/trixie")
	expect_eq "$out" "" "no record of another package"
}

# With every file already downloaded, a resolution needs no apt at all, is
# recorded, and the record alone is enough next time (offline).
test_fetch_offline_and_recorded() {
	load today
	local me=$TMP/fetch
	mkdir -p "$me/bin" "$me/canned"
	printf '#!/bin/sh\necho "$0 $*" >>%s/apt-called\nexit 100\n' "$TMP" >"$me/bin/apt-get"
	cp "$me/bin/apt-get" "$me/bin/apt-cache"
	chmod +x "$me/bin/"*
	PATH=$me/bin:$PATH
	echo orig >"$DL/lwip_2.2.1+dfsg1.orig.tar.xz"
	echo patches >"$DL/lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz"
	ORIG_SHA[lwip]=$(sha_of "$DL/lwip_2.2.1+dfsg1.orig.tar.xz")
	sed -e "s/83729c274c499d3348e9fbbe043a3113f3fa8953e7efddc7c21c7fcbb1f2b7b1/${ORIG_SHA[lwip]}/" \
		-e "s/faa343b3c76d69080240ae1323932b7348fa1d0042f6ad29bd286246660720a9/$(sha_of "$DL/lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz")/" \
		"$CANNED/today/trixie" >"$me/canned/trixie"
	ZGATE_SHOWSRC_DIR=$me/canned
	(fetch_dep lwip) || fail_test "fetch_dep failed"
	[[ ! -e $TMP/apt-called ]] || fail_test "apt-get was called: $(cat "$TMP/apt-called")"
	expect_eq "$(cat "$DL/lwip_2.2.1+dfsg1.orig.tar.xz.resolved")" \
		"trixie 2.2.1+dfsg1-1+deb13u1 lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz $(sha_of "$DL/lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz")" "record"
	# offline: no index at all, the record answers
	ZGATE_SHOWSRC_DIR=$TMP/nothing
	fetch_dep lwip
	expect_eq "${RES_SUITE[lwip]} ${RES_VER[lwip]} ${RES_DEB[lwip]}" \
		"trixie 2.2.1+dfsg1-1+deb13u1 lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz" "loaded"
	# a damaged patch tarball voids the record (and is deleted)
	echo tampered >"$DL/lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz"
	load_resolution lwip 2>/dev/null && fail_test "a tampered patch tarball was accepted"
	[[ ! -e $DL/lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz ]] || fail_test "tampered file kept"
}

# The cache prefix: the recipe section and patches only.
prefix_of() { XDG_CACHE_HOME=$TMP/k "$1/third_party/deps.sh" prefix; }
copy_tree() {
	rm -rf "$TMP/tree"; mkdir -p "$TMP/tree/third_party"; cp third_party/deps.sh "$TMP/tree/third_party/"
	[[ ! -d third_party/patches ]] || cp -r third_party/patches "$TMP/tree/third_party/"
}
edit() { python3 - "$TMP/tree/third_party/deps.sh" "$1" "$2" <<'PY' || fail_test "edit: '$1' not found"
import sys
p, a, b = sys.argv[1:]
s = open(p).read()
if a not in s: sys.exit(1)
open(p, 'w').write(s.replace(a, b, 1))
PY
}
same_key() { expect_eq "$(prefix_of "$TMP/tree")" "$base" "$1: the key must not change"; }
new_key() { [[ $(prefix_of "$TMP/tree") != "$base" ]] || fail_test "$1: the key must change"; }

test_cache_key_covers_the_recipe_only() {
	local base
	copy_tree; base=$(prefix_of "$TMP/tree")
	expect_eq "$base" "$(prefix_of "$ROOTDIR")" "same file, same key"
	[[ $base =~ /deps-[0-9a-f]{16}$ ]] || fail_test "prefix $base"
	edit 'SUITES=(trixie trixie-backports bookworm-backports forky sid)' 'SUITES=(sid)'; same_key "suites"
	edit 'trying the next suite"' 'trying the next one"'; same_key "resolution code"
	edit 'DEB_PATCHES[wolfssl]=0' $'# a comment\n\nDEB_PATCHES[wolfssl]=0'; same_key "comment and blank line in the recipe"
	copy_tree; edit '--enable-crl \' '\'; new_key "a configure flag"
	copy_tree; edit 'ORIG_SHA[ngtcp2]=7' 'ORIG_SHA[ngtcp2]=8'; new_key "a pinned SHA-256"
	copy_tree; edit 'DEB_PATCHES[lwip]=1' 'DEB_PATCHES[lwip]=0'; new_key "whether Debian patches apply"
	copy_tree; mkdir -p "$TMP/tree/third_party/patches"; echo x >"$TMP/tree/third_party/patches/a.patch"
	new_key "a patch file"
	# no Debian revision is part of the recipe: re-resolving to another
	# revision of the same tarball never changes the key
	copy_tree
	local recipe
	recipe=$(XDG_CACHE_HOME=$TMP/k bash -c '. "$1"; recipe_text' _ "$TMP/tree/third_party/deps.sh")
	expect_has "$recipe" "ORIG_SHA[ngtcp2]=7fa5ec2b" "recipe text"
	expect_has "$recipe" "build_wolfssl()" "recipe text"
	expect_lacks "$recipe" "deb13u" "Debian revision"
	expect_lacks "$recipe" "bpo13" "Debian revision"
	expect_lacks "$recipe" "SUITES=" "suites"
}

# Our own patches (third_party/patches/): the files in the tree are the
# ones pinned, a pinned patch is applied, an edited one is refused.
test_own_patches_pinned_and_checked() {
	local dep n=0 dir out
	load today
	for dep in "${!OWN_PATCH[@]}"; do
		expect_eq "$(sha_of "$ROOTDIR/third_party/patches/${OWN_PATCH[$dep]}")" \
			"${OWN_PATCH_SHA[$dep]}" "pinned SHA-256 of ${OWN_PATCH[$dep]}"
		n=$((n + 1))
	done
	((n > 0)) || fail_test "no own patch pinned"
	# a made-up patch of a made-up tree
	HERE=$TMP/own; dir=$TMP/own/tree
	mkdir -p "$HERE/patches" "$dir/lib"
	printf 'a\n#define DEGR 16\nb\n' >"$dir/lib/x.h"
	printf 'why\n\n--- a/lib/x.h\n+++ b/lib/x.h\n@@ -1,3 +1,3 @@\n a\n-#define DEGR 16\n+#define DEGR 4\n b\n' \
		>"$HERE/patches/x.patch"
	OWN_PATCH[ngtcp2]=x.patch OWN_PATCH_SHA[ngtcp2]=$(sha_of "$HERE/patches/x.patch")
	(own_patch ngtcp2 "$dir") 2>/dev/null || fail_test "pinned patch not applied"
	expect_eq "$(sed -n 2p "$dir/lib/x.h")" "#define DEGR 4" "patched file"
	printf 'a\n#define DEGR 16\nb\n' >"$dir/lib/x.h"
	sed -i 's/DEGR 4/DEGR 2/' "$HERE/patches/x.patch"
	out=$( (own_patch ngtcp2 "$dir") 2>&1) && fail_test "an edited patch was applied"
	expect_has "$out" "does not match the SHA-256 pinned in OWN_PATCH_SHA[ngtcp2]" "refusal"
	expect_eq "$(sed -n 2p "$dir/lib/x.h")" "#define DEGR 16" "file left alone"
	# a dependency without one is left alone
	(own_patch wolfssl "$dir") 2>/dev/null || fail_test "wolfssl has no own patch"
}

shtest_main
