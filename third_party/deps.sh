#!/usr/bin/env bash
# third_party/deps.sh — fetch the source-built dependencies of zgate as Debian
# source packages (apt-get source) and build them into a cache folder outside
# the clone.  See third_party/README.md.
#
#   third_party/deps.sh prefix       print the absolute cache prefix, build nothing
#   third_party/deps.sh fetch        download + verify the pinned source files only
#   third_party/deps.sh build        build everything into the prefix (no-op if cached)
#   third_party/deps.sh offers DEP   what each suite offers for DEP (to re-pin it)
#
# No registry host is written here: the deb-src entries are derived at run time
# from the machine's own apt sources file, into a private apt state folder, so
# the system's apt configuration is never touched.
#
# Sourcing this file (tests/deps/test_resolve.sh does) defines the functions
# and runs nothing.
set -euo pipefail

# ================================================================ recipe
# Everything from this line to "end of recipe" decides what is built, and only
# this part (full-line comments and blank lines left out) plus the files under
# third_party/patches/ names the cache prefix (recipe_hash).  Where the files
# come from (suites, Debian revisions: see "resolution" below) is outside it,
# so changing how they are found rebuilds nothing.
#
# Pins: each dependency is its upstream ("orig") tarball, pinned by name and
# SHA-256.  Any Debian source package, in any suite, whose signed index lists
# that very file (same name, same SHA-256) may deliver it, whatever its Debian
# revision.  DEB_PATCHES=1: the Debian patch tarball of the revision that
# delivered it is applied too (verified against the same signed index).
# nghttp3 and wolfSSL use the upstream tarball only: the mirror answers 404
# for their patch tarballs (nghttp3's is pristine upstream anyway; wolfSSL
# 5.7.2's were Debian packaging fixes and CVE backports that 5.9.2 has
# upstream; third_party/README.md).
DEPS=(wolfssl ngtcp2 nghttp3 lwip)
declare -gA VER ORIG ORIG_SHA DEB_PATCHES

VER[wolfssl]=5.9.2
ORIG[wolfssl]=wolfssl_5.9.2.orig.tar.gz
ORIG_SHA[wolfssl]=2f4ef3d4fd387a9b3191d36a6316d69116c46ff69bb9583b6c82b36d7b8ca114
DEB_PATCHES[wolfssl]=0

VER[ngtcp2]=1.24.0
ORIG[ngtcp2]=ngtcp2_1.24.0.orig.tar.xz
ORIG_SHA[ngtcp2]=7fa5ec2be0f0cbed8bc4ec89c0787dfa9d8ce678f1ed9477c52f30eb1a591207
DEB_PATCHES[ngtcp2]=1

VER[nghttp3]=1.15.0
ORIG[nghttp3]=nghttp3_1.15.0.orig.tar.xz
ORIG_SHA[nghttp3]=6da0cd06b428d32a54c58137838505d9dc0371a900bb8070a46b29e1ceaf2e0f
DEB_PATCHES[nghttp3]=0

# Our own patches, one file per dependency at most: third_party/patches/FILE,
# pinned by SHA-256 like the tarballs and applied (patch -p1) after Debian's.
# Each header says what it changes and why. They touch no build file, so
# they need no autoreconf. (Their contents are part of the cache key too.)
declare -gA OWN_PATCH OWN_PATCH_SHA
OWN_PATCH[ngtcp2]=ngtcp2-zgate.patch
OWN_PATCH_SHA[ngtcp2]=0525c7baebc71e50dee63d8198de4bf04c846b66555e2ad014b200b45db558c0
OWN_PATCH[nghttp3]=nghttp3-ksl-degree.patch
OWN_PATCH_SHA[nghttp3]=a957e57b3f1848fa18bec3dc7549487699661a22fb6b926ab2dc1ddeaec826c6
OWN_PATCH[lwip]=lwip-zgate.patch
OWN_PATCH_SHA[lwip]=a841df828d7c0d3422ca9a30d95184b4aba875649566209140d857636d007ccb

VER[lwip]=2.2.1+dfsg1
ORIG[lwip]=lwip_2.2.1+dfsg1.orig.tar.xz
ORIG_SHA[lwip]=83729c274c499d3348e9fbbe043a3113f3fa8953e7efddc7c21c7fcbb1f2b7b1
DEB_PATCHES[lwip]=1

# Unpack the orig tarball into $2, replace any upstream debian/ folder with
# Debian's patch tarball $3 (as dpkg-source does for format 3.0 (quilt)) and
# apply the patches listed in debian/patches/series, then our own
# (own_patch).  Does not need the .dsc, which the mirror does not always
# serve.  Sets PATCHED=1 when Debian patches were applied.
unpack_dep() {
    local dep=$1 dir=$2 debfile=$3 line name opts n=0
    PATCHED=0
    rm -rf -- "$dir"; mkdir -p "$dir"
    tar -xf "$DL/${ORIG[$dep]}" -C "$dir" --strip-components=1 --no-same-owner
    if ((DEB_PATCHES[$dep])); then
        rm -rf -- "$dir/debian"
        tar -xf "$DL/$debfile" -C "$dir" --no-same-owner
    fi
    if ((DEB_PATCHES[$dep])) && [[ -f $dir/debian/patches/series ]]; then
        while IFS= read -r line || [[ -n $line ]]; do
            line=${line%%#*}
            read -r name opts <<<"$line" || true
            [[ -n ${name:-} ]] || continue
            # shellcheck disable=SC2086  # series options (e.g. -p0) are words
            patch -d "$dir" -s -N -t -F 0 -E --no-backup-if-mismatch ${opts:--p1} \
                <"$dir/debian/patches/$name" ||
                die "Debian patch $name for $dep does not apply"
            n=$((n + 1))
        done <"$dir/debian/patches/series"
        ((n == 0)) || { PATCHED=1; log "$dep: applied $n Debian patches"; }
    fi
    own_patch "$dep" "$dir"
}

# Applies OWN_PATCH[$1] (third_party/patches/) to the tree $2 after checking
# it against its pinned SHA-256.
own_patch() {
    local dep=$1 dir=$2 f
    [[ -n ${OWN_PATCH[$dep]:-} ]] || return 0
    f="$HERE/patches/${OWN_PATCH[$dep]}"
    [[ -f $f ]] || die "$dep: our patch $f is missing"
    [[ $(sha_of "$f") == "${OWN_PATCH_SHA[$dep]}" ]] ||
        die "$dep: $f does not match the SHA-256 pinned in OWN_PATCH_SHA[$dep] (a patch that was edited: review it, then pin its new SHA-256)"
    patch -d "$dir" -s -N -t -F 0 -E --no-backup-if-mismatch -p1 <"$f" ||
        die "$dep: our patch ${OWN_PATCH[$dep]} does not apply to ${ORIG[$dep]}"
    log "$dep: applied ${OWN_PATCH[$dep]}"
}

# A clean environment: the cache key is this recipe, not the caller's flags.
build_env() {
    unset CFLAGS CXXFLAGS CPPFLAGS LDFLAGS LIBS CC CXX MAKEFLAGS MFLAGS MAKELEVEL \
        PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
    export LC_ALL=C
    HOST=$(cc -dumpmachine)
    JOBS=$(nproc 2>/dev/null || echo 2)
    DEP_CFLAGS="-O2 -g -fPIC"
}

run_logged() {  # run_logged LOGFILE cmd...
    local logf=$1; shift
    printf '+ %s\n' "$*" >>"$logf"
    if ! "$@" >>"$logf" 2>&1; then
        tail -n 60 "$logf" >&2
        die "failed: $* (full log: $logf)"
    fi
}

build_wolfssl() {
    local src=$1 logf=$2 arch_opts=()
    case $HOST in
        x86_64-*) arch_opts=(--enable-aesni --enable-intelasm --enable-sp-asm) ;;
    esac
    (
        cd "$src"
        run_logged "$logf" autoreconf -fi
        # QUIC API (implies opensslextra), TLS 1.3, tickets, ALPN/SNI for h3,
        # the ciphers QUIC needs, hardened SP math.  KEEP_PEER_CERT: the peer
        # certificate (CN, extended key usage) stays available after the
        # handshake.  HAVE_AES_ECB: ngtcp2 header protection uses AES-ECB.
        # HAVE_SECRET_CALLBACK: wolfSSL_CTX_set_keylog_callback for opt-in
        # debugging (not --enable-keylog-export, which makes every connection
        # dump its secrets to stderr).  WOLFSSL_IP_ALT_NAME: a relay
        # reached by IP address is checked against its certificate's
        # iPAddress SANs (without it wolfSSL_check_domain_name only knows
        # DNS names, and `--relay 192.0.2.7:443` never matched).
        # --enable-ticket-nonce-malloc: a NewSessionTicket's nonce may be
        # up to 255 bytes (RFC 8446 §4.6.1); without it wolfSSL keeps 8
        # and the client aborts the connection with illegal_parameter (47)
        # when a standard server sends a longer one (rustls sends 32:
        # tests/e2e/t_interop_quinn.sh).
        # ML-KEM is built (5.9's default): zgate leads with the
        # X25519MLKEM768 hybrid (tls_set_groups), a ClientHello that takes
        # two QUIC Initial datagrams; the relay answers, counts and defers
        # first flights, not datagrams (src/masque/server.c, udp.c).
        # third_party/README.md has the measurements.
        # HAVE_EX_DATA_CRYPTO: wolfSSL_get_ex_new_index() and
        # wolfSSL_CTX_get_ex_new_index(), which 5.9 declares only with it
        # (or OPENSSL_ALL); 5.7.2 had them with opensslextra.
        run_logged "$logf" ./configure --prefix="$PREFIX" --host="$HOST" \
            --enable-static --disable-shared --with-pic --disable-dependency-tracking \
            --enable-quic --enable-tls13 --enable-opensslextra \
            --enable-session-ticket --enable-alpn --enable-sni \
            --enable-aesgcm --enable-chacha --enable-poly1305 \
            --enable-curve25519 --enable-ecc --enable-harden --enable-sp \
            --enable-crl \
            --enable-ticket-nonce-malloc \
            --disable-examples --disable-crypttests --disable-benchmark \
            "${arch_opts[@]}" \
            CFLAGS="$DEP_CFLAGS" \
            CPPFLAGS="-DKEEP_PEER_CERT -DHAVE_AES_ECB -DHAVE_SECRET_CALLBACK -DWOLFSSL_ALWAYS_VERIFY_CB -DWOLFSSL_IP_ALT_NAME -DHAVE_EX_DATA_CRYPTO"
        run_logged "$logf" make -j"$JOBS"
        run_logged "$logf" make install DESTDIR="$STAGE"
    )
}

# --disable-mempool (ngtcp2) and NOMEMPOOL (nghttp3, which reads the same
# define but has no configure switch for it): objects are malloc'd one by
# one instead of from per-connection pools (blocks of 8-16 streams, frames,
# sent packets; 4 KB of QPACK chunks) that, once touched, stay for the
# connection's life. An idle relay tunnel kept about 13 KB of mostly empty
# pool blocks (issue 21); glibc's own caches serve the churn instead
# (third_party/README.md has the measured cost).
build_ngtcp2() {
    local src=$1 logf=$2
    (
        cd "$src"
        ((PATCHED == 0)) || run_logged "$logf" autoreconf -fi
        run_logged "$logf" ./configure --prefix="$PREFIX" --host="$HOST" \
            --enable-lib-only --enable-static --disable-shared --with-pic --disable-dependency-tracking \
            --disable-mempool \
            --with-wolfssl --without-openssl --without-gnutls \
            --without-boringssl --without-picotls \
            --without-libnghttp3 --without-libev --without-jemalloc \
            --without-libbrotlienc --without-libbrotlidec \
            CFLAGS="$DEP_CFLAGS" CXXFLAGS="$DEP_CFLAGS" \
            PKG_CONFIG="pkg-config --static" \
            PKG_CONFIG_LIBDIR="$STAGE$PREFIX/lib/pkgconfig" \
            PKG_CONFIG_SYSROOT_DIR="$STAGE"
        run_logged "$logf" make -j"$JOBS"
        run_logged "$logf" make install DESTDIR="$STAGE"
    )
    [[ -f $STAGE$PREFIX/lib/libngtcp2_crypto_wolfssl.a ]] ||
        die "ngtcp2 built without libngtcp2_crypto_wolfssl.a (log: $logf)"
}

build_nghttp3() {
    local src=$1 logf=$2
    (
        cd "$src"
        ((PATCHED == 0)) || run_logged "$logf" autoreconf -fi
        run_logged "$logf" ./configure --prefix="$PREFIX" --host="$HOST" \
            --enable-lib-only --enable-static --disable-shared --with-pic --disable-dependency-tracking \
            CFLAGS="$DEP_CFLAGS -DNOMEMPOOL" CXXFLAGS="$DEP_CFLAGS -DNOMEMPOOL"
        run_logged "$logf" make -j"$JOBS"
        run_logged "$logf" make install DESTDIR="$STAGE"
    )
}

# lwIP is not compiled here: the project Makefile compiles its sources with
# zgate's own lwipopts.h.  Only the (Debian-patched) tree is installed.
build_lwip() {
    local src=$1
    mkdir -p "$STAGE$PREFIX/src"
    rm -rf -- "$src/debian"
    cp -a -- "$src" "$STAGE$PREFIX/src/lwip"
    [[ -f $STAGE$PREFIX/src/lwip/src/core/tcp.c ]] || die "lwIP tree is incomplete"
}

# Static libraries, headers and .pc files only: libtool archives would carry
# stale paths; wolfssl-config and the docs are not used.
tidy_stage() {
    local f
    find "$STAGE$PREFIX/lib" -name '*.la' -delete
    rm -rf -- "${STAGE:?}$PREFIX/bin" "${STAGE:?}$PREFIX/share"
    for f in libwolfssl.a libngtcp2.a libngtcp2_crypto_wolfssl.a libnghttp3.a; do
        [[ -f $STAGE$PREFIX/lib/$f ]] || die "expected $f was not installed"
    done
}
# ================================================================ end of recipe

# ---------------------------------------------------------------- resolution
# Suites searched for a source package that lists a pinned orig tarball, in
# order of preference: stable suites first (a stable release keeps its
# upstream versions for its whole life; only the Debian revision changes),
# then testing and sid, which move on with every upload.  The archive keeps
# only the current version of a package in each suite.
SUITES=(trixie trixie-backports bookworm-backports forky sid)
[[ -z ${ZGATE_SUITES:-} ]] || read -r -a SUITES <<<"$ZGATE_SUITES"

# Debian packages needed to build (installed only if missing, only as root).
BUILD_PACKAGES=(build-essential autoconf automake libtool pkg-config xz-utils patch)

# The machine's own apt sources; the deb-src entries are derived from it.
# deb822 format (Debian 12 default) or, on older installs, one-line format.
if [[ -n ${ZGATE_APT_SOURCES:-} ]]; then
    SYSTEM_SOURCES=$ZGATE_APT_SOURCES
elif [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    SYSTEM_SOURCES=/etc/apt/sources.list.d/debian.sources
else
    SYSTEM_SOURCES=/etc/apt/sources.list
fi

# ---------------------------------------------------------------- paths
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename -- "${BASH_SOURCE[0]}")"
ROOT=${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/zgate
case $ROOT in /*) ;; *) ROOT="$PWD/$ROOT" ;; esac
DL="$ROOT/downloads"
APTROOT="$ROOT/apt"

log() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

# The prefix is named after the recipe section of this file (full-line
# comments and blank lines left out) and any patch files under
# third_party/patches (names and contents), so that changing what is built
# builds afresh, and nothing else does.
recipe_text() {
    local f
    awk '/^# =+ recipe$/ { on = 1 } on && !/^[[:space:]]*(#|$)/ { print }
         /^# =+ end of recipe$/ { on = 0 }' "$SELF"
    if [[ -d $HERE/patches ]]; then
        while IFS= read -r f; do
            printf 'patch %s\n' "${f#"$HERE"/}"; cat -- "$f"
        done < <(find "$HERE/patches" -type f | LC_ALL=C sort)
    fi
}
recipe_hash() {
    local text
    text=$(recipe_text)
    [[ $text == *build_wolfssl* ]] || die "no recipe section found in $SELF"
    printf '%s\n' "$text" | sha256sum | cut -c1-16
}
PREFIX="$ROOT/deps-$(recipe_hash)"

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
sha_of() { sha256sum -- "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------- build tools
ensure_tools() {
    local missing=() p
    if ! command -v dpkg-query >/dev/null; then
        log "dpkg-query not found; assuming build tools are present"
        return 0
    fi
    for p in "${BUILD_PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] \
            || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        die "missing build packages: ${missing[*]}
  install them as root:  apt-get install -y --no-install-recommends ${missing[*]}"
    fi
    log "installing build packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null; then
        log "apt-get install failed; refreshing the system package lists once and retrying"
        apt-get update -q </dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null \
            || die "could not install: ${missing[*]}"
    fi
}

# ---------------------------------------------------------------- private apt
# Write deb-src entries for SUITE into $1/sources.list.d, derived from the
# machine's sources file: main-archive stanza only (the -security stanza is
# dropped), Types deb -> deb-src, Suites -> SUITE, Components -> main.  The
# URIs line is kept exactly as the machine has it.
derive_sources() {
    local dir=$1 suite=$2 out
    mkdir -p "$dir/sources.list.d"
    rm -f "$dir"/sources.list.d/*
    [[ -f $SYSTEM_SOURCES ]] ||
        die "cannot find the machine's apt sources ($SYSTEM_SOURCES); set ZGATE_APT_SOURCES"
    if [[ $SYSTEM_SOURCES == *.sources ]]; then
        out="$dir/sources.list.d/zgate-$suite.sources"
        # awk: one record per stanza; keep the stanzas that are not -security.
        awk -v RS= -v ORS='\n\n' '!/(^|\n)Suites:[^\n]*-security/' "$SYSTEM_SOURCES" |
            sed -e '/^[[:space:]]*#/d' \
                -e 's/^Types:.*/Types: deb-src/' \
                -e "s/^Suites:.*/Suites: $suite/" \
                -e 's/^Components:.*/Components: main/' >"$out"
        grep -q '^URIs:' "$out" || die "no main-archive stanza found in $SYSTEM_SOURCES"
    else
        # One-line format (older installs): "deb [opts] URI SUITE COMPONENTS".
        out="$dir/sources.list.d/zgate-$suite.list"
        sed -nE -e '/-security/d' \
            -e "s/^deb([[:space:]]+\[[^]]*\])?[[:space:]]+([^[:space:]]+)[[:space:]].*/deb-src\1 \2 $suite main/p" \
            "$SYSTEM_SOURCES" | awk '!seen[$0]++' >"$out"
        [[ -s $out ]] || die "no main-archive entry found in $SYSTEM_SOURCES"
    fi
}

apt_opts() {  # apt_opts STATE-DIR: the options that make apt use it alone
    APT_OPTS=(-o Dir::Etc::SourceList=/dev/null
        -o Dir::Etc::SourceParts="$1/sources.list.d"
        -o Dir::State::Lists="$1/lists"
        -o Dir::Cache="$1/cache")
}
apt_private() {
    local st=$1; shift
    apt_opts "$st"
    apt-get -q "${APT_OPTS[@]}" "$@" </dev/null
}

# Index a suite once per run.  Returns 1 (after a warning) when the suite
# cannot be indexed, e.g. it was archived: the next suite is tried then.
declare -gA SUITE_READY=()
apt_suite_ready() {
    local suite=$1 st="$APTROOT/$1"
    case ${SUITE_READY[$suite]:-} in 1) return 0 ;; 0) return 1 ;; esac
    SUITE_READY[$suite]=0
    derive_sources "$st" "$suite"
    mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
    log "apt: updating private deb-src index for suite $suite"
    if ! apt_private "$st" update >"$st/update.log" 2>&1; then
        log "apt-get update failed for suite $suite, skipping it; apt said:"
        grep -E '^(E|W|Err):' "$st/update.log" | grep -v unsandboxed | sed 's/^/    /' >&2 || true
        return 1
    fi
    SUITE_READY[$suite]=1
}

# suite_index SUITE: 0 when the suite's index can be read (call it in the
# main shell: it indexes once per run).  showsrc SUITE PKG: that suite's
# source records (apt-cache showsrc) on stdout.  ZGATE_SHOWSRC_DIR=DIR reads
# canned output from DIR/SUITE instead (missing file: no index) — tests.
suite_index() {
    if [[ -n ${ZGATE_SHOWSRC_DIR:-} ]]; then
        [[ -f $ZGATE_SHOWSRC_DIR/$1 ]]
    else
        apt_suite_ready "$1"
    fi
}
showsrc() {
    local suite=$1 pkg=$2
    if [[ -n ${ZGATE_SHOWSRC_DIR:-} ]]; then
        cat -- "$ZGATE_SHOWSRC_DIR/$suite"
        return 0
    fi
    apt_opts "$APTROOT/$suite"
    # No cache files written: the index is read as it is.
    apt-cache "${APT_OPTS[@]}" -o Dir::Cache::srcpkgcache= -o Dir::Cache::pkgcache= \
        showsrc "$pkg" 2>/dev/null </dev/null || true
}

# parse_showsrc PKG ORIG ORIG_SHA < showsrc output: one line per source
# record of PKG:
#   match VERSION DEBFILE DEBSHA   lists ORIG with ORIG_SHA (DEBFILE "-": none)
#   badsha VERSION SHA             lists ORIG with another SHA-256
#   other VERSION                  anything else
parse_showsrc() {
    awk -v pkg="$1" -v orig="$2" -v sha="$3" '
        function flush() {
            if (p == pkg && v != "") {
                if (m) print "match", v, (df == "" ? "-" : df), (ds == "" ? "-" : ds)
                else if (bad != "") print "badsha", v, bad
                else print "other", v
            }
            p = v = df = ds = bad = ""; m = insha = 0
        }
        /^[[:space:]]*$/ { flush(); next }
        /^Package:/ { p = $2; insha = 0; next }
        /^Version:/ { v = $2; insha = 0; next }
        /^Checksums-Sha256:/ { insha = 1; next }
        /^[ \t]/ {
            if (insha && NF >= 3) {
                if ($3 == orig) { if ($1 == sha) m = 1; else bad = $1 }
                else if ($3 ~ /\.debian\.tar\.[a-z0-9]+$/) { df = $3; ds = $1 }
            }
            next
        }
        { insha = 0 }
        END { flush() }'
}

# resolve_dep DEP CALLBACK: walk SUITES in order; for every source record
# that lists DEP's pinned orig tarball (name and SHA-256), call
#   CALLBACK DEP SUITE DEBIAN-VERSION DEBFILE DEBSHA
# and stop at the first call that returns 0 (later suites are not even
# indexed).  Returns 1 when records matched but every CALLBACK failed.  When
# no suite lists the pinned tarball any more, dies with one line naming what
# each suite offers now and what to edit to re-pin.
resolve_dep() {
    local dep=$1 cb=$2 suite text kind ver a b offers=() matched=0 what
    for suite in "${SUITES[@]}"; do
        if ! suite_index "$suite"; then
            offers+=("$suite has no index"); continue
        fi
        text=$(showsrc "$suite" "$dep")
        what=
        while read -r kind ver a b; do
            case $kind in
                match)
                    matched=1
                    "$cb" "$dep" "$suite" "$ver" "$a" "$b" && return 0
                    what+=" $ver" ;;
                badsha)
                    log "warning: $suite $dep $ver lists ${ORIG[$dep]} with SHA-256 $a, not the pinned ${ORIG_SHA[$dep]}; not used"
                    what+=" $ver (${ORIG[$dep]} with another SHA-256!)" ;;
                other) what+=" $ver" ;;
            esac
        done < <(parse_showsrc "$dep" "${ORIG[$dep]}" "${ORIG_SHA[$dep]}" <<<"$text")
        offers+=("$suite has${what:- none}")
    done
    ((matched == 0)) || return 1
    what=$(IFS=,; printf '%s' "${offers[*]}"); what=${what//,/, }
    die "no suite offers $dep ${VER[$dep]} (${ORIG[$dep]} with the pinned SHA-256) any more; now $what; to re-pin, set VER[$dep], ORIG[$dep] and ORIG_SHA[$dep] in the recipe section of third_party/deps.sh to one of these ('third_party/deps.sh offers $dep' lists files and SHA-256s), then rebuild and run make test"
}

# ---------------------------------------------------------------- download
# Check a cached download; a mismatch deletes it (it is fetched again).
have_verified() {
    local file=$1 sha=$2 got
    [[ -f $DL/$file ]] || return 1
    got=$(sha_of "$DL/$file")
    [[ $got == "$sha" ]] && return 0
    log "cached $file has SHA-256 $got, expected $sha: discarding it"
    rm -f -- "$DL/$file"
    return 1
}

# What delivered each dependency: "SUITE DEBIAN-VERSION DEBFILE DEBSHA", kept
# in $DL/<orig>.resolved so that later runs work offline.
declare -gA RES_SUITE RES_VER RES_DEB RES_DEBSHA
use_resolution() {  # DEP SUITE VERSION DEBFILE DEBSHA
    RES_SUITE[$1]=$2 RES_VER[$1]=$3 RES_DEB[$1]=$4 RES_DEBSHA[$1]=$5
    printf '%s %s %s %s\n' "$2" "$3" "$4" "$5" >"$DL/${ORIG[$1]}.resolved"
}
load_resolution() {  # DEP: 0 when a recorded resolution's files all verify
    local dep=$1 r="$DL/${ORIG[$1]}.resolved" suite ver deb debsha
    [[ -f $r ]] && read -r suite ver deb debsha <"$r" || return 1
    have_verified "${ORIG[$dep]}" "${ORIG_SHA[$dep]}" || return 1
    if ((DEB_PATCHES[$dep])); then
        [[ $deb != - ]] && have_verified "$deb" "$debsha" || return 1
    fi
    RES_SUITE[$dep]=$suite RES_VER[$dep]=$ver RES_DEB[$dep]=$deb RES_DEBSHA[$dep]=$debsha
}

# try_source DEP SUITE VERSION DEBFILE DEBSHA (a resolve_dep callback):
# download DEP's orig tarball and, with DEB_PATCHES, that version's patch
# tarball; 0 when every file needed is present and verified.  Does not rely
# on apt-get source's exit status nor on the .dsc (the mirror has gaps: some
# pool files answer 404 every time, and apt-get source then exits 100 even
# though the files needed did arrive).
try_source() {
    local dep=$1 suite=$2 ver=$3 deb=$4 debsha=$5 need=() shas=() i f got stage rc missing=()
    need+=("${ORIG[$dep]}"); shas+=("${ORIG_SHA[$dep]}")
    if ((DEB_PATCHES[$dep])); then
        if [[ $deb == - ]]; then
            log "$suite $dep $ver has no Debian patch tarball; trying the next suite"
            return 1
        fi
        need+=("$deb"); shas+=("$debsha")
    fi
    for i in "${!need[@]}"; do have_verified "${need[$i]}" "${shas[$i]}" || missing+=("${need[$i]}"); done
    if ((${#missing[@]} == 0)); then
        use_resolution "$dep" "$suite" "$ver" "$deb" "$debsha"
        return 0
    fi
    stage=$(mktemp -d "${TMPDIR:-/tmp}/zgate-apt.XXXXXX")
    chmod 755 "$stage"
    # Let apt's unprivileged download user write here (avoids its warning).
    if ((EUID == 0)) && id _apt >/dev/null 2>&1; then chown _apt "$stage"; fi
    log "apt: source --download-only $dep=$ver ($suite)"
    rc=0
    (cd "$stage" && apt_private "$APTROOT/$suite" source --download-only \
        -o APT::Get::Only-Source=true "$dep=$ver") >"$stage.log" 2>&1 || rc=$?
    for i in "${!need[@]}"; do
        f=${need[$i]}
        [[ -f $DL/$f || ! -f $stage/$f ]] && continue
        got=$(sha_of "$stage/$f")
        if [[ $got != "${shas[$i]}" ]]; then
            rm -rf -- "$stage" "$stage.log"
            die "$f from $suite has SHA-256 $got, expected ${shas[$i]}"
        fi
        mv -f -- "$stage/$f" "$DL/$f"
    done
    missing=()
    for f in "${need[@]}"; do [[ -f $DL/$f ]] || missing+=("$f"); done
    if ((${#missing[@]} == 0)); then
        ((rc == 0)) || log "apt-get source exited $rc (mirror gaps), but every file needed for $dep arrived and verified"
        rm -rf -- "$stage" "$stage.log"
        use_resolution "$dep" "$suite" "$ver" "$deb" "$debsha"
        return 0
    fi
    log "$suite did not deliver: ${missing[*]} (apt-get exited $rc); apt said:"
    grep -E '^(E|W): ' "$stage.log" | grep -v 'unsandboxed' | sed 's/^/    /' >&2 || true
    rm -rf -- "$stage" "$stage.log"
    return 1
}

fetch_dep() {
    local dep=$1
    load_resolution "$dep" && return 0
    mkdir -p "$DL"
    resolve_dep "$dep" try_source ||
        die "cannot obtain the source files of $dep ${VER[$dep]} from any suite that lists them (${SUITES[*]}); see the messages above"
}

fetch_all() {
    local dep
    for dep in "${DEPS[@]}"; do fetch_dep "$dep"; done
    log "all source files present and verified in $DL"
}

# offers DEP: every suite's versions of DEP with its orig tarball's name and
# SHA-256 (from the signed index), to re-pin from.
offers() {
    local dep=$1 suite text
    [[ -n ${ORIG[$dep]:-} ]] || die "unknown dependency '$dep' (known: ${DEPS[*]})"
    printf 'pinned: %s %s %s\n' "${VER[$dep]}" "${ORIG[$dep]}" "${ORIG_SHA[$dep]}"
    for suite in "${SUITES[@]}"; do
        suite_index "$suite" || { printf '%-20s (no index)\n' "$suite"; continue; }
        text=$(showsrc "$suite" "$dep")
        awk -v pkg="$dep" -v suite="$suite" '
            /^[[:space:]]*$/ { p = v = ""; insha = 0; next }
            /^Package:/ { p = $2; next }
            /^Version:/ { v = $2; next }
            /^Checksums-Sha256:/ { insha = 1; next }
            /^[ \t]/ { if (insha && p == pkg && $3 ~ /\.orig\.tar\.[a-z0-9]+$/)
                           { printf "%-20s %-24s %s %s\n", suite, v, $3, $1; n++ }; next }
            { insha = 0 }
            END { if (!n) printf "%-20s (none)\n", suite }' <<<"$text"
    done
}

# ---------------------------------------------------------------- build
build_all() {
    local t_all t dep work
    if [[ -f $PREFIX/.complete ]]; then
        log "cached at $PREFIX"
        return 0
    fi
    ensure_tools
    mkdir -p "$ROOT"
    # One builder at a time; a second one waits, then finds the cache.
    if command -v flock >/dev/null; then
        exec 9>"$ROOT/.lock"
        flock 9
        if [[ -f $PREFIX/.complete ]]; then log "cached at $PREFIX"; return 0; fi
    fi

    t_all=$(now)
    fetch_all
    log "sources ready in $(elapsed "$t_all")"

    build_env
    work="$PREFIX.work"
    STAGE="$work/stage"
    rm -rf -- "$work" "$PREFIX.tmp"
    mkdir -p "$work/log" "$STAGE$PREFIX"
    log "building into $PREFIX (work dir $work, -j$JOBS, host $HOST)"

    for dep in "${DEPS[@]}"; do
        t=$(now)
        unpack_dep "$dep" "$work/src/$dep" "${RES_DEB[$dep]}"
        "build_$dep" "$work/src/$dep" "$work/log/$dep.log"
        log "$dep ${VER[$dep]} (Debian ${RES_VER[$dep]}, ${RES_SUITE[$dep]}): done in $(elapsed "$t")"
    done
    tidy_stage
    {
        printf '# zgate source-built dependencies (recipe %s)\n' "${PREFIX##*/deps-}"
        printf '# name upstream-version debian-version suite file sha256 [patch-file sha256] [+own-patch sha256]\n'
        for dep in "${DEPS[@]}"; do
            printf '%s %s %s %s %s %s' "$dep" "${VER[$dep]}" "${RES_VER[$dep]}" "${RES_SUITE[$dep]}" \
                "${ORIG[$dep]}" "${ORIG_SHA[$dep]}"
            ((DEB_PATCHES[$dep] == 0)) || printf ' %s %s' "${RES_DEB[$dep]}" "${RES_DEBSHA[$dep]}"
            [[ -z ${OWN_PATCH[$dep]:-} ]] || printf ' +%s %s' "${OWN_PATCH[$dep]}" "${OWN_PATCH_SHA[$dep]}"
            printf '\n'
        done
    } >"$STAGE$PREFIX/versions.txt"

    mv -- "$STAGE$PREFIX" "$PREFIX.tmp"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$PREFIX.tmp/.complete"
    rm -rf -- "$PREFIX"
    mv -- "$PREFIX.tmp" "$PREFIX"
    rm -rf -- "$work"
    log "all dependencies built in $(elapsed "$t_all"); ready at $PREFIX"
}

# ---------------------------------------------------------------- main
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0
case ${1:-} in
    prefix) printf '%s\n' "$PREFIX" ;;
    fetch) ensure_tools; fetch_all ;;
    build) build_all ;;
    offers) [[ $# -eq 2 ]] || die "usage: $0 offers DEP"; offers "$2" ;;
    *)
        printf 'usage: %s prefix|fetch|build|offers DEP\n' "$0" >&2
        exit 2
        ;;
esac
