#!/usr/bin/env bash
# third_party/deps.sh — fetch the source-built dependencies of zgate as Debian
# source packages (apt-get source) and build them into a cache folder outside
# the clone.  See third_party/README.md.
#
#   third_party/deps.sh prefix   print the absolute cache prefix, build nothing
#   third_party/deps.sh fetch    download + verify the pinned source files only
#   third_party/deps.sh build    build everything into the prefix (no-op if cached)
#
# No registry host is written here: the deb-src entries are derived at run time
# from the machine's own apt sources file, into a private apt state folder, so
# the system's apt configuration is never touched.
set -euo pipefail

# ---------------------------------------------------------------- pins
# Every file used is pinned by name and SHA-256.  TRY lists, in order, the
# suite=debian-version pairs whose source package may deliver the files; the
# first one that yields every pinned file wins (the mirror has gaps: some pool
# files answer 404 every time, and apt-get source then exits 100 even though
# the files we need did arrive).  DEB is empty when only the upstream tarball
# is used (nghttp3: Debian's patch tarball is not downloadable; it is pristine
# upstream anyway).
DEPS=(wolfssl ngtcp2 nghttp3 lwip)
declare -A VER ORIG ORIG_SHA DEB DEB_SHA TRY

VER[wolfssl]=5.7.2
ORIG[wolfssl]=wolfssl_5.7.2.orig.tar.gz
ORIG_SHA[wolfssl]=0f2ed82e345b833242705bbc4b08a2a2037a33f7bf9c610efae6464f6b10e305
DEB[wolfssl]=wolfssl_5.7.2-0.1+deb13u2.debian.tar.xz
DEB_SHA[wolfssl]=c4c31ffaa8e05e1132cb535cc0b0cd3083e04f134883ab039154f3857d0a96d8
TRY[wolfssl]="trixie=5.7.2-0.1+deb13u2"

VER[ngtcp2]=1.24.0
ORIG[ngtcp2]=ngtcp2_1.24.0.orig.tar.xz
ORIG_SHA[ngtcp2]=7fa5ec2be0f0cbed8bc4ec89c0787dfa9d8ce678f1ed9477c52f30eb1a591207
DEB[ngtcp2]=ngtcp2_1.24.0-1.debian.tar.xz
DEB_SHA[ngtcp2]=3cb0672f931ac47d2f043250fcba4656d6ef9a4a926042426356acb489888062
TRY[ngtcp2]="sid=1.24.0-1"

VER[nghttp3]=1.15.0
ORIG[nghttp3]=nghttp3_1.15.0.orig.tar.xz
ORIG_SHA[nghttp3]=6da0cd06b428d32a54c58137838505d9dc0371a900bb8070a46b29e1ceaf2e0f
DEB[nghttp3]=
DEB_SHA[nghttp3]=
TRY[nghttp3]="trixie-backports=1.15.0-1~bpo13+1"

VER[lwip]=2.2.1
ORIG[lwip]=lwip_2.2.1+dfsg1.orig.tar.xz
ORIG_SHA[lwip]=83729c274c499d3348e9fbbe043a3113f3fa8953e7efddc7c21c7fcbb1f2b7b1
DEB[lwip]=lwip_2.2.1+dfsg1-1+deb13u1.debian.tar.xz
DEB_SHA[lwip]=faa343b3c76d69080240ae1323932b7348fa1d0042f6ad29bd286246660720a9
# sid's 2.2.1+dfsg1-9 shares the orig tarball; its own patch tarball is not used.
TRY[lwip]="trixie=2.2.1+dfsg1-1+deb13u1 sid=2.2.1+dfsg1-9"

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

# The prefix is named after a hash of this recipe (and of any patch files
# under third_party/patches), so that changing the recipe builds afresh.
recipe_hash() {
    local files=("$SELF") f
    if [[ -d $HERE/patches ]]; then
        while IFS= read -r f; do files+=("$f"); done \
            < <(find "$HERE/patches" -type f | LC_ALL=C sort)
    fi
    cat -- "${files[@]}" | sha256sum | cut -c1-16
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

apt_private() {
    local st=$1; shift
    apt-get -q \
        -o Dir::Etc::SourceList=/dev/null \
        -o Dir::Etc::SourceParts="$st/sources.list.d" \
        -o Dir::State::Lists="$st/lists" \
        -o Dir::Cache="$st/cache" \
        "$@" </dev/null
}

declare -A SUITE_READY=()
apt_suite_ready() {
    local suite=$1 st="$APTROOT/$1"
    [[ -n ${SUITE_READY[$suite]:-} ]] && return 0
    derive_sources "$st" "$suite"
    mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
    log "apt: updating private deb-src index for suite $suite"
    apt_private "$st" update >"$st/update.log" 2>&1 ||
        { cat "$st/update.log" >&2; die "apt-get update failed for suite $suite"; }
    SUITE_READY[$suite]=1
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

fetch_dep() {
    local dep=$1 pkg=$1 need=() shas=() i cand suite ver stage rc missing f got tried=()
    need+=("${ORIG[$dep]}"); shas+=("${ORIG_SHA[$dep]}")
    if [[ -n ${DEB[$dep]} ]]; then need+=("${DEB[$dep]}"); shas+=("${DEB_SHA[$dep]}"); fi

    missing=()
    for i in "${!need[@]}"; do have_verified "${need[$i]}" "${shas[$i]}" || missing+=("${need[$i]}"); done
    ((${#missing[@]} == 0)) && return 0

    mkdir -p "$DL"
    for cand in ${TRY[$dep]}; do
        suite=${cand%%=*} ver=${cand#*=}
        tried+=("$pkg=$ver from $suite")
        apt_suite_ready "$suite"
        stage=$(mktemp -d "${TMPDIR:-/tmp}/zgate-apt.XXXXXX")
        chmod 755 "$stage"
        # Let apt's unprivileged download user write here (avoids its warning).
        if ((EUID == 0)) && id _apt >/dev/null 2>&1; then chown _apt "$stage"; fi
        log "apt: source --download-only $pkg=$ver ($suite)"
        rc=0
        (cd "$stage" && apt_private "$APTROOT/$suite" source --download-only \
            -o APT::Get::Only-Source=true "$pkg=$ver") >"$stage.log" 2>&1 || rc=$?
        for i in "${!need[@]}"; do
            f=${need[$i]}
            [[ -f $DL/$f || ! -f $stage/$f ]] && continue
            got=$(sha_of "$stage/$f")
            if [[ $got != "${shas[$i]}" ]]; then
                rm -rf -- "$stage" "$stage.log"
                die "$f from $suite has SHA-256 $got, expected ${shas[$i]} (pinned in $SELF)"
            fi
            mv -f -- "$stage/$f" "$DL/$f"
        done
        missing=()
        for f in "${need[@]}"; do [[ -f $DL/$f ]] || missing+=("$f"); done
        if ((${#missing[@]} == 0)); then
            ((rc == 0)) || log "apt-get source exited $rc (mirror gaps), but every pinned file for $pkg arrived and verified"
            rm -rf -- "$stage" "$stage.log"
            return 0
        fi
        log "$suite did not deliver: ${missing[*]} (apt-get exited $rc); apt said:"
        grep -E '^(E|W): ' "$stage.log" | grep -v 'unsandboxed' | sed 's/^/    /' >&2 || true
        rm -rf -- "$stage" "$stage.log"
    done
    die "cannot obtain ${missing[*]} for $pkg ${VER[$dep]}; tried: ${tried[*]}"
}

fetch_all() {
    local dep
    for dep in "${DEPS[@]}"; do fetch_dep "$dep"; done
    log "all source files present and verified in $DL"
}

# ---------------------------------------------------------------- unpack
# Unpack the orig tarball into $2, replace any upstream debian/ folder with
# Debian's (as dpkg-source does for format 3.0 (quilt)) and apply the patches
# listed in debian/patches/series.  Does not need the .dsc, which the mirror
# does not always serve.  Sets PATCHED=1 when patches were applied.
unpack_dep() {
    local dep=$1 dir=$2 line name opts n=0
    PATCHED=0
    rm -rf -- "$dir"; mkdir -p "$dir"
    tar -xf "$DL/${ORIG[$dep]}" -C "$dir" --strip-components=1 --no-same-owner
    [[ -n ${DEB[$dep]} ]] || return 0
    rm -rf -- "$dir/debian"
    tar -xf "$DL/${DEB[$dep]}" -C "$dir" --no-same-owner
    [[ -f $dir/debian/patches/series ]] || return 0
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
}

# ---------------------------------------------------------------- build
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
        # dump its secrets to stderr).
        run_logged "$logf" ./configure --prefix="$PREFIX" --host="$HOST" \
            --enable-static --disable-shared --with-pic --disable-dependency-tracking \
            --enable-quic --enable-tls13 --enable-opensslextra \
            --enable-session-ticket --enable-alpn --enable-sni \
            --enable-aesgcm --enable-chacha --enable-poly1305 \
            --enable-curve25519 --enable-ecc --enable-harden --enable-sp \
            --enable-crl \
            --disable-examples --disable-crypttests --disable-benchmark \
            "${arch_opts[@]}" \
            CFLAGS="$DEP_CFLAGS" \
            CPPFLAGS="-DKEEP_PEER_CERT -DHAVE_AES_ECB -DHAVE_SECRET_CALLBACK -DWOLFSSL_ALWAYS_VERIFY_CB"
        run_logged "$logf" make -j"$JOBS"
        run_logged "$logf" make install DESTDIR="$STAGE"
    )
}

build_ngtcp2() {
    local src=$1 logf=$2
    (
        cd "$src"
        ((PATCHED == 0)) || run_logged "$logf" autoreconf -fi
        run_logged "$logf" ./configure --prefix="$PREFIX" --host="$HOST" \
            --enable-lib-only --enable-static --disable-shared --with-pic --disable-dependency-tracking \
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
            CFLAGS="$DEP_CFLAGS" CXXFLAGS="$DEP_CFLAGS"
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

build_all() {
    local t_all t dep work f first
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

    # A clean environment: the cache key is this recipe, not the caller's flags.
    unset CFLAGS CXXFLAGS CPPFLAGS LDFLAGS LIBS CC CXX MAKEFLAGS MFLAGS MAKELEVEL \
        PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
    export LC_ALL=C
    HOST=$(cc -dumpmachine)
    JOBS=$(nproc 2>/dev/null || echo 2)
    DEP_CFLAGS="-O2 -g -fPIC"
    work="$PREFIX.work"
    STAGE="$work/stage"
    rm -rf -- "$work" "$PREFIX.tmp"
    mkdir -p "$work/log" "$STAGE$PREFIX"
    log "building into $PREFIX (work dir $work, -j$JOBS, host $HOST)"

    for dep in "${DEPS[@]}"; do
        t=$(now)
        unpack_dep "$dep" "$work/src/$dep"
        "build_$dep" "$work/src/$dep" "$work/log/$dep.log"
        log "$dep ${VER[$dep]}: done in $(elapsed "$t")"
    done

    # Static libraries, headers and .pc files only: libtool archives would
    # carry stale paths; wolfssl-config and the docs are not used.
    find "$STAGE$PREFIX/lib" -name '*.la' -delete
    rm -rf -- "${STAGE:?}$PREFIX/bin" "${STAGE:?}$PREFIX/share"
    for f in libwolfssl.a libngtcp2.a libngtcp2_crypto_wolfssl.a libnghttp3.a; do
        [[ -f $STAGE$PREFIX/lib/$f ]] || die "expected $f was not installed"
    done
    {
        printf '# zgate source-built dependencies (recipe %s)\n' "${PREFIX##*/deps-}"
        printf '# name upstream-version debian-version suite file sha256 [file sha256]\n'
        for dep in "${DEPS[@]}"; do
            first=${TRY[$dep]%% *}
            printf '%s %s %s %s %s %s' "$dep" "${VER[$dep]}" "${first#*=}" "${first%%=*}" \
                "${ORIG[$dep]}" "${ORIG_SHA[$dep]}"
            [[ -z ${DEB[$dep]} ]] || printf ' %s %s' "${DEB[$dep]}" "${DEB_SHA[$dep]}"
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
case ${1:-} in
    prefix) printf '%s\n' "$PREFIX" ;;
    fetch) ensure_tools; fetch_all ;;
    build) build_all ;;
    *)
        printf 'usage: %s prefix|fetch|build\n' "$0" >&2
        exit 2
        ;;
esac
