#!/usr/bin/env bash
# check-packaging.sh — check the container images, the compose file and the
# Helm chart without a container engine or helm (neither is installable
# here). Run by `make e2e` as the scenario tests/e2e/t_packaging.sh.
#
#   scripts/check-packaging.sh          (from anywhere; root to install tools)
#
# 1. Static (scripts/packaging/check_packaging.py static): every YAML file
#    parses; each Dockerfile is multi-stage on Debian 12, builds with
#    `make deps` + `make all` like CI, every COPY/ADD source exists, COPY
#    --from names a stage, the final USER is non-root (65532/65534), exec-form
#    ENTRYPOINT, no registry host in FROM, nothing fetched with curl/wget;
#    the relay image is FROM scratch exposing 4433/udp and 8080/tcp, the
#    zgate-api image (docker/api.Dockerfile) FROM scratch exposing 8443/tcp;
#    the agent gets only CAP_NET_ADMIN; compose locks both relays, zgate-api
#    and postgres down (cap_drop ALL, read_only, no-new-privileges; the
#    relays' ping_group_range), wires the relays to zgate-api (ipam backend
#    api, each with its relay:ID certificate from certgen), points the agents
#    at both relays and gives them only NET_ADMIN + /dev/net/tun; both charts'
#    templates hold each restricted-profile setting outside any if/with/range.
# 2. Image root file system: docker/rootfs.sh stages what the relay image
#    holds (from build/bin/zgate-relay, and a stand-in linking the same
#    libraries), then runs it chrooted, read-only, as 65532 with no
#    capability: the stand-in checks the promises, the relay (once it exists)
#    answers --version and --check-config on a read-only config. The same
#    for zgate-api's image (--version, --check-config with a PKI and token).
# 3. Helm charts: rendered with a Go renderer built from Debian's Go packages
#    (scripts/packaging/helm-render.go: text/template, sprig,
#    sigs.k8s.io/yaml, gojsonschema) for the default values and each
#    helm/zgate-relay/ci/*.yaml; every rendered Pod spec is checked rule by
#    rule against the restricted Pod Security profile, the ConfigMap is
#    loaded with the relay's own parsers, bad values must be refused, and
#    each rule check must catch a deliberate breakage.
#    Every rendered object is also validated against the Kubernetes API
#    schemas with npm's kubernetes-models (scripts/packaging/k8s-validate.cjs),
#    the cert-manager Certificate and Issuer (ci/cert-manager-values.yaml)
#    against cert-manager's CRD schemas (npm @kubernetes-models/cert-manager,
#    generated from those CRDs). A policy-only change must leave the
#    Deployment (its checksum annotations included) unchanged, so it rolls
#    no pods; a change of the relay's configuration must change the checksum.
#    helm/zgate-api the same way (default values and ci/*.yaml, restricted
#    rules, schemas, refusals, the CRL named and mounted exactly when
#    given), its rendered ConfigMap through zgate-api
#    --check-config; the relay chart's ipamApi values (ci/ipam-api*.yaml)
#    and policyApi values (ci/policy-api*.yaml: policy_api.* and relay_id
#    set, the fetched policy on a writable emptyDir, no policy ConfigMap,
#    each breakage caught by a self-test; the rendered config through the
#    real zgate-relay --check-config as the pod's uid with an emptyDir-like
#    policy directory, and refused with one it cannot write).
#    helm/zgate-connector too (restricted rules, no capability, no Service,
#    HTTP probes on the ops port, schemas, refusals, a policy change rolls
#    the pod), its ConfigMap through zgate-connector --check-config once
#    that binary exists. docker/connector.Dockerfile: FROM scratch as 65532,
#    only 9201/tcp; compose's on-prem network internal and joined only by
#    the connector and on-prem servers; the image's root file system run
#    read-only as 65532 (--version, --check-config) once the binary exists.
# 4. `docker-compose config` (Debian's docker-compose, no engine needed).
# 5. The compose services' ZGATE_* settings through each program's own
#    --check-config (agents, relays, zgate-api). The relays' relay_id and
#    ipam.* keys (issue 20) fail there, and in the relay's parser on the
#    ci/ipam-api*.yaml renders, until the relay's parser knows them.
#
# Missing tools are installed from Debian's packages when running as root
# (python3-yaml, golang-go and the Go libraries, docker-compose). A part
# whose tools cannot be had, or that needs root, is skipped with a message.
# Prints one line per check and "packaging: N passed, N failed, N skipped";
# exits 0 when nothing failed, 1 otherwise, 77 when nothing could run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${PACKAGING_OUT:-$ROOT/build/packaging}
mkdir -p "$OUT"
CHART=helm/zgate-relay
passed=0 failed=0 skipped=0

say() { printf '%s\n' "$*"; }
pass() { passed=$((passed + 1)); say "ok   $*"; }
fail() { failed=$((failed + 1)); say "FAIL $*"; }
skip_part() { skipped=$((skipped + 1)); say "skip $*"; }
# count PYTHON-CHECKER-OUTPUT: adds its ok/FAIL lines to the totals.
count() {
	local out=$1 n
	say "$out"
	n=$(grep -c '^ok ' <<<"$out" || true); passed=$((passed + n))
	n=$(grep -c '^FAIL ' <<<"$out" || true); failed=$((failed + n))
}
is_root() { [[ $(id -u) -eq 0 ]]; }
# have_pkgs PKG...: installed, or installed now (root only).
have_pkgs() {
	local missing=() p
	for p in "$@"; do
		[[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) == ii* ]] || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	is_root || { say "note: missing Debian packages ${missing[*]} (install them as root)"; return 1; }
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${missing[@]}" >"$OUT/apt.log" 2>&1 && return 0
	apt-get update -q >>"$OUT/apt.log" 2>&1
	apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$OUT/apt.log" 2>&1 ||
		{ say "note: apt-get install ${missing[*]} failed:"; tail -5 "$OUT/apt.log"; return 1; }
}

# ---------------------------------------------------------------- python + PyYAML
PY=
for py in python3 /usr/bin/python3; do
	if command -v "$py" >/dev/null && "$py" -c 'import yaml' 2>/dev/null; then PY=$py; break; fi
done
if [[ -z $PY ]] && have_pkgs python3-yaml && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
	PY=/usr/bin/python3
fi
if [[ -z $PY ]]; then
	say "check-packaging: no python3 with PyYAML (Debian package python3-yaml) and cannot install it"
	exit 77
fi
CHECK=("$PY" "$ROOT/scripts/packaging/check_packaging.py")

# ---------------------------------------------------------------- the relay's config checker
# Built against build/libzg.a: the relay's own configuration and policy parsers.
CONFIGCHECK=$OUT/check-relay-config
if [[ ! -f build/libzg.a ]]; then
	say "building the library (make all) for the configuration checker"
	make --no-print-directory all >"$OUT/make.log" 2>&1 || { tail -20 "$OUT/make.log"; }
fi
DEPS_PREFIX=$(third_party/deps.sh prefix 2>/dev/null || true)
if gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc -Isrc/common -Isrc/capsule \
	${DEPS_PREFIX:+-isystem "$DEPS_PREFIX/include"} scripts/packaging/check-relay-config.c \
	build/libzg.a build/liblwip.a ${DEPS_PREFIX:+-L"$DEPS_PREFIX/lib"} -lngtcp2_crypto_wolfssl \
	-lngtcp2 -lnghttp3 -lwolfssl -levent -lyaml -lmnl -lldns -lm -lpthread \
	-o "$CONFIGCHECK" 2>"$OUT/configcheck.log"; then
	pass "tools: scripts/packaging/check-relay-config.c builds against build/libzg.a"
	out=$("$CONFIGCHECK" examples/zgate-relay.yaml examples/policy.yaml 2>&1) &&
		pass "examples/zgate-relay.yaml and examples/policy.yaml load with the relay's parsers" ||
		fail "examples/zgate-relay.yaml: $out"
	out=$("$CONFIGCHECK" examples/zgate-relay.yaml docker/policy.yaml 2>&1) &&
		pass "docker/policy.yaml (the compose demo's policy) loads with the relay's parser" ||
		fail "docker/policy.yaml: $out"
else
	fail "tools: cannot build the configuration checker: $(head -5 "$OUT/configcheck.log")"
	CONFIGCHECK=false
fi

# ---------------------------------------------------------------- 2. image root file system
ROOTFS=$OUT/rootfs
rm -rf "$ROOTFS"
STANDIN=$OUT/rootfs-standin
RELAY=build/bin/zgate-relay
staged=
if gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror scripts/packaging/rootfs-standin.c \
	-o "$STANDIN" -levent -lyaml -lmnl 2>"$OUT/standin.log"; then
	bins=("$STANDIN")
	[[ -x $RELAY ]] && bins+=("$RELAY")
	if out=$(docker/rootfs.sh "$ROOTFS" "${bins[@]}" 2>&1); then
		pass "docker/rootfs.sh stages the image's root file system ($out)"
		staged=1
		if [[ -x $RELAY ]]; then
			[[ -x $ROOTFS/usr/local/bin/zgate-relay ]] &&
				pass "the staged root file system holds the relay image's ENTRYPOINT" ||
				fail "the staged root file system lacks /usr/local/bin/zgate-relay"
		fi
	else
		fail "docker/rootfs.sh: $out"
	fi
else
	fail "cannot build the rootfs stand-in: $(head -5 "$OUT/standin.log")"
fi

# run_in_image CMD...: runs CMD in the staged root file system ($RUN_ROOT,
# default the relay's $ROOTFS) as the image would: chrooted, root file system read-only, tmpfs on /tmp and the state
# directory, uid/gid 65532, no capabilities. Config files are copied in
# first (examples/zgate-relay.yaml, examples/policy.yaml, a fresh PKI).
run_in_image() {
	unshare --mount --fork -- bash -c '
		set -e
		r=$1; shift
		mkdir -p "$r/dev"
		mount --bind "$r" "$r"
		mount -o remount,bind,ro "$r"
		mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
		# The /dev a container runtime gives every container (wolfSSL
		# seeds its RNG from /dev/urandom).
		mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
		for d in null zero random urandom; do
			touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"
		done
		mount -t tmpfs -o uid=65532,gid=65532,mode=0700 tmpfs "$r/var/lib/zgate"
		exec chroot --userspec=65532:65532 --groups=65532 "$r" "$@"
	' run_in_image "${RUN_ROOT:-$ROOTFS}" "$@"
}
if [[ -n $staged ]]; then
	if ! is_root || ! command -v unshare >/dev/null; then
		skip_part "image run test: needs root (unshare, mount, chroot)"
	else
		cp examples/zgate-relay.yaml "$ROOTFS/etc/zgate/zgate-relay.yaml"
		cp examples/policy.yaml "$ROOTFS/etc/zgate/policy.yaml"
		if scripts/gen-certs.sh -d "$ROOTFS/etc/zgate/tls" -s relay.example.org -c agent-1 >"$OUT/pki.log" 2>&1; then
			chown -R 65532:65532 "$ROOTFS/etc/zgate/tls"
		else
			fail "scripts/gen-certs.sh: $(tail -3 "$OUT/pki.log")"
		fi
		chmod 0444 "$ROOTFS/etc/zgate/"*.yaml
		if out=$(run_in_image /usr/local/bin/rootfs-standin 2>&1); then
			pass "image run test (stand-in): $(tr '\n' ';' <<<"$out" | sed 's/ok  //g; s/;$//')"
		else
			fail "image run test (stand-in): $(grep -v '^ok' <<<"$out" | tr '\n' ';')"
		fi
		if [[ -x $RELAY ]]; then
			if out=$(run_in_image /usr/local/bin/zgate-relay --version 2>&1); then
				pass "image run test: zgate-relay --version runs in the image as 65532 ($out)"
			else
				fail "image run test: zgate-relay --version: $out"
			fi
			if out=$(run_in_image /usr/local/bin/zgate-relay --check-config --config /etc/zgate/zgate-relay.yaml 2>&1); then
				pass "image run test: zgate-relay --check-config accepts the read-only example config and PKI"
			else
				fail "image run test: zgate-relay --check-config: $(tail -3 <<<"$out")"
			fi
		else
			skip_part "image run test of zgate-relay itself: $RELAY is not built yet (its main is not written); the stand-in covered the image layout"
		fi
	fi
fi

# ---------------------------------------------------------------- 2b. zgate-api image root file system
# What docker/api.Dockerfile's runtime stage holds: rootfs.sh on the built
# zgate-api; run in it as the relay's image is, --version and --check-config
# on the read-only example configuration with a fresh PKI (gen-certs.sh --api).
API=build/bin/zgate-api
APIROOT=$OUT/rootfs-api
rm -rf "$APIROOT"
api_staged=
if [[ ! -x $API ]]; then
	fail "zgate-api image: $API is not built (make all)"
elif out=$(docker/rootfs.sh "$APIROOT" "$API" 2>&1); then
	pass "docker/rootfs.sh stages the zgate-api image's root file system ($out)"
	api_staged=1
	if ! is_root || ! command -v unshare >/dev/null; then
		skip_part "zgate-api image run test: needs root (unshare, mount, chroot)"
	else
		cp examples/zgate-api.yaml "$APIROOT/etc/zgate/zgate-api.yaml"
		if scripts/gen-certs.sh -d "$APIROOT/etc/zgate/tls" --api api --api-relay r1 >"$OUT/pki-api.log" 2>&1; then
			chown -R 65532:65532 "$APIROOT/etc/zgate/tls"
		else
			fail "scripts/gen-certs.sh --api: $(tail -3 "$OUT/pki-api.log")"
		fi
		# the token file examples/zgate-api.yaml names (16+ printable characters)
		echo "packaging-test-admin-token-0123456789" >"$APIROOT/etc/zgate/api-admin.token"
		chown 65532:65532 "$APIROOT/etc/zgate/api-admin.token"
		chmod 0400 "$APIROOT/etc/zgate/api-admin.token"
		chmod 0444 "$APIROOT/etc/zgate/zgate-api.yaml"
		if out=$(RUN_ROOT=$APIROOT run_in_image /usr/local/bin/zgate-api --version 2>&1); then
			pass "zgate-api image run test: --version runs in the image as 65532 ($(tr '\n' ' ' <<<"$out"))"
		else
			fail "zgate-api image run test: --version: $out"
		fi
		if out=$(RUN_ROOT=$APIROOT run_in_image /usr/local/bin/zgate-api --check-config \
			--config /etc/zgate/zgate-api.yaml 2>&1); then
			pass "zgate-api image run test: --check-config accepts the read-only example config, PKI and token"
		else
			fail "zgate-api image run test: --check-config: $(tail -3 <<<"$out")"
		fi
	fi
else
	fail "docker/rootfs.sh (zgate-api): $out"
fi

# ---------------------------------------------------------------- 2c. zgate-connector image root file system
# What docker/connector.Dockerfile's runtime stage holds: rootfs.sh on the
# built zgate-connector, run read-only as 65532 with no capability:
# --version, and --check-config on the example configuration and policy
# with a fresh connector certificate (gen-certs.sh --connector).
CONN=build/bin/zgate-connector
CONNROOT=$OUT/rootfs-connector
rm -rf "$CONNROOT"
conn_staged=
if [[ ! -x $CONN ]]; then
	skip_part "zgate-connector image: $CONN is not built yet (issue 22's binary)"
elif out=$(docker/rootfs.sh "$CONNROOT" "$CONN" 2>&1); then
	pass "docker/rootfs.sh stages the zgate-connector image's root file system ($out)"
	conn_staged=1
	if ! is_root || ! command -v unshare >/dev/null; then
		skip_part "zgate-connector image run test: needs root (unshare, mount, chroot)"
	else
		cp examples/zgate-connector.yaml "$CONNROOT/etc/zgate/zgate-connector.yaml"
		cp examples/connector-policy.yaml "$CONNROOT/etc/zgate/connector-policy.yaml"
		if scripts/gen-certs.sh -d "$CONNROOT/etc/zgate/tls" --connector hospital-a >"$OUT/pki-connector.log" 2>&1; then
			mv "$CONNROOT/etc/zgate/tls/connector-hospital-a.crt" "$CONNROOT/etc/zgate/tls/connector.crt"
			mv "$CONNROOT/etc/zgate/tls/connector-hospital-a.key" "$CONNROOT/etc/zgate/tls/connector.key"
			chown -R 65532:65532 "$CONNROOT/etc/zgate/tls"
		else
			fail "scripts/gen-certs.sh --connector: $(tail -3 "$OUT/pki-connector.log")"
		fi
		chmod 0444 "$CONNROOT/etc/zgate/"*.yaml
		if out=$(RUN_ROOT=$CONNROOT run_in_image /usr/local/bin/zgate-connector --version 2>&1); then
			pass "zgate-connector image run test: --version runs in the image as 65532 ($(tr '\n' ' ' <<<"$out"))"
		else
			fail "zgate-connector image run test: --version: $out"
		fi
		if out=$(RUN_ROOT=$CONNROOT run_in_image /usr/local/bin/zgate-connector --check-config \
			--config /etc/zgate/zgate-connector.yaml 2>&1); then
			pass "zgate-connector image run test: --check-config accepts the read-only example config, policy and PKI"
		else
			fail "zgate-connector image run test: --check-config: $(tail -3 <<<"$out")"
		fi
	fi
else
	fail "docker/rootfs.sh (zgate-connector): $out"
fi

# ---------------------------------------------------------------- 1. static checks
count "$("${CHECK[@]}" static "$ROOT" --staged-rootfs "${staged:+$ROOTFS}" \
	--staged-api-rootfs "${api_staged:+$APIROOT}" --staged-connector-rootfs "${conn_staged:+$CONNROOT}" 2>&1)"

# The unrendered check must notice a restricted setting moved under a
# condition (else it would pass vacuously).
mut=$OUT/mutant
rm -rf "$mut" && mkdir -p "$mut" && cp -r docker examples helm "$mut/"
for c in "$CHART" helm/zgate-api helm/zgate-connector; do
	sed -i 's/^\( *\)allowPrivilegeEscalation: false$/\1{{- if .Values.hardening }}\n\1allowPrivilegeEscalation: false\n\1{{- end }}/' \
		"$mut/$c/templates/deployment.yaml"
done
# The copy has no Makefile, src/ or scripts/: the COPY check must see that.
out=$("${CHECK[@]}" static "$mut" 2>&1)
if grep -q '^FAIL chart (unrendered): deployment.yaml has `allowPrivilegeEscalation: false`' <<<"$out"; then
	pass "selftest: the unrendered check notices allowPrivilegeEscalation moved under an if"
else
	fail "selftest: the unrendered check missed allowPrivilegeEscalation moved under an if"
fi
if grep -q '^FAIL chart zgate-api (unrendered): deployment.yaml has `allowPrivilegeEscalation: false`' <<<"$out"; then
	pass "selftest: the unrendered check of the zgate-api chart notices allowPrivilegeEscalation moved under an if"
else
	fail "selftest: the unrendered check of the zgate-api chart missed allowPrivilegeEscalation moved under an if"
fi
if grep -q '^FAIL chart zgate-connector (unrendered): deployment.yaml has `allowPrivilegeEscalation: false`' <<<"$out"; then
	pass "selftest: the unrendered check of the zgate-connector chart notices allowPrivilegeEscalation moved under an if"
else
	fail "selftest: the unrendered check of the zgate-connector chart missed allowPrivilegeEscalation moved under an if"
fi
if grep -q "^FAIL dockerfile docker/relay.Dockerfile: every COPY/ADD source exists.*'line [0-9]*: Makefile'" <<<"$out"; then
	pass "selftest: the COPY check notices a missing COPY source"
else
	fail "selftest: the COPY check missed the missing Makefile"
fi

# ---------------------------------------------------------------- 3. Helm chart, rendered
RENDER=$OUT/helm-render
GO_PKGS=(golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev golang-github-xeipuuv-gojsonschema-dev)
build_renderer() {
	local gp=$OUT/gopath
	# Debian installs the v3 modules without their /v3 suffix; GOPATH mode
	# finds them through these links.
	mkdir -p "$gp/src/github.com/Masterminds/sprig" "$gp/src/github.com/Masterminds/semver"
	ln -sfn /usr/share/gocode/src/github.com/Masterminds/sprig "$gp/src/github.com/Masterminds/sprig/v3"
	ln -sfn /usr/share/gocode/src/github.com/Masterminds/semver "$gp/src/github.com/Masterminds/semver/v3"
	GO111MODULE=off GOPATH="$gp:/usr/share/gocode" GOCACHE="$OUT/gocache" GOFLAGS="" \
		GOPROXY=off CGO_ENABLED=0 go build -o "$RENDER" scripts/packaging/helm-render.go
}
if ! have_pkgs "${GO_PKGS[@]}"; then
	skip_part "Helm chart rendering: needs Debian packages ${GO_PKGS[*]}"
elif ! build_renderer >"$OUT/go-build.log" 2>&1; then
	fail "tools: scripts/packaging/helm-render.go does not build: $(head -10 "$OUT/go-build.log")"
else
	pass "tools: scripts/packaging/helm-render.go builds from Debian's Go packages"
	render() { "$RENDER" -name zgate-relay -namespace zgate "$@" "$CHART"; }

	# The default values alone must ask for certificates, and nothing else.
	if out=$(render 2>&1); then
		fail "render [values.yaml alone]: rendered without certificates"
	elif [[ $out == *"certificates: set tls.existingSecret"* ]]; then
		pass "render [values.yaml alone]: refused until certificates are given, and says how"
	else
		fail "render [values.yaml alone]: unexpected error: $out"
	fi

	variants=("defaults:-set tls.existingSecret=zgate-relay-tls")
	for f in "$CHART"/ci/*.yaml; do variants+=("ci/$(basename "$f"):-f $f"); done
	for v in "${variants[@]}"; do
		name=${v%%:*} args=${v#*:}
		file=$OUT/render-${name//\//-}; file=${file%.yaml}.yaml
		# shellcheck disable=SC2086 # args are flag words
		if render $args >"$file" 2>"$file.err"; then
			pass "render [$name]: every template renders"
			count "$("${CHECK[@]}" manifests "$ROOT" "$name" "$file" "$CONFIGCHECK" 2>&1)"
		else
			fail "render [$name]: $(cat "$file.err")"
		fi
	done
	count "$("${CHECK[@]}" selftest "$OUT/render-defaults.yaml" 2>&1)"
	# policyApi, with the relay itself: the rendered configuration (paths
	# moved to a fresh PKI and two directories) through zgate-relay
	# --check-config as the pod's uid, gid and fsGroup. The policy
	# directory as the kubelet makes an emptyDir with fsGroup (0777,
	# group fsGroup, setgid) passes; a directory the relay cannot write
	# (0755 root, e.g. the read-only root file system) must be refused.
	polrun() { # MODE: zgate-relay --check-config's output, status 0 or not
		local t=$OUT/policy-api-run ids
		ids=$("$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "Deployment":
        s = d["spec"]["template"]["spec"]["securityContext"]
        print(s["runAsUser"], s["runAsGroup"], s["fsGroup"])' "$OUT/render-ci-policy-api-values.yaml") || return 1
		set -- "$1" $ids
		rm -rf "$t" && mkdir -p "$t/tls" "$t/policy" "$t/state" && chmod 0755 "$t" "$t/tls" || return 1
		scripts/gen-certs.sh -d "$t/pki" -s relay.example.org -c agent-1 --api-relay relay-eu1 >/dev/null 2>&1 || return 1
		cp "$t/pki/relay.crt" "$t/pki/relay.key" "$t/pki/ca.crt" "$t/tls/"
		cp "$t/pki/ca.crt" "$t/tls/api-ca.crt"
		cp "$t/pki/relay-relay-eu1.crt" "$t/tls/api-client.crt"
		cp "$t/pki/relay-relay-eu1.key" "$t/tls/api-client.key"
		chown -R "$2:$3" "$t/tls" "$t/state"
		chown "0:$4" "$t/policy" && chmod "$1" "$t/policy"
		"$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and "zgate-relay.yaml" in d["data"]:
        print(d["data"]["zgate-relay.yaml"])' "$OUT/render-ci-policy-api-values.yaml" |
			sed -e "s|/etc/zgate/tls/|$t/tls/|g" -e "s|/var/lib/zgate-policy/|$t/policy/|" \
				-e "s|/var/lib/zgate/|$t/state/|" >"$t/zgate-relay.yaml"
		chmod 0444 "$t/zgate-relay.yaml"
		setpriv --reuid "$2" --regid "$3" --groups "$4" --inh-caps=-all --bounding-set=-all \
			"$RELAY" --check-config --config "$t/zgate-relay.yaml" 2>&1
	}
	if [[ ! -f $OUT/render-ci-policy-api-values.yaml || ! -x $RELAY ]] || ! is_root || ! command -v setpriv >/dev/null; then
		skip_part "policyApi with the relay: needs the ci/policy-api-values.yaml render, $RELAY, root and setpriv"
	else
		if out=$(polrun 2777) && [[ $out == *"deny-all until the first fetch"* ]]; then
			pass "render [ci/policy-api-values.yaml]: zgate-relay --check-config takes the rendered config as the pod's uid, the policy on an emptyDir-like directory (deny-all until the first fetch)"
		else
			fail "render [ci/policy-api-values.yaml]: zgate-relay --check-config: $(tail -3 <<<"$out")"
		fi
		if out=$(polrun 0755); then
			fail "render [ci/policy-api-values.yaml]: zgate-relay --check-config took a policy directory it cannot write"
		elif [[ $out == *"its directory is not writable"* ]]; then
			pass "render [ci/policy-api-values.yaml]: zgate-relay --check-config refuses a policy directory it cannot write"
		else
			fail "render [ci/policy-api-values.yaml]: unwritable policy directory: unexpected output: $(tail -3 <<<"$out")"
		fi
	fi
	# policyApi: the policy_api check must catch each way of breaking it
	if [[ -f $OUT/render-ci-policy-api-values.yaml ]]; then
		count "$("${CHECK[@]}" policy-api-selftest "$OUT/render-ci-policy-api-values.yaml" 2>&1)"
	else
		fail "selftest: no render of $CHART/ci/policy-api-values.yaml to break"
	fi

	# The zgate-api chart the same way: each values file rendered, every
	# Pod spec held to the restricted profile, the ConfigMap through
	# zgate-api --check-config (files written as render-api-*.yaml, so the
	# schema validation below takes them too).
	ACHART=helm/zgate-api
	arender() { "$RENDER" -name zgate-api -namespace zgate "$@" "$ACHART"; }
	avariants=("defaults:-set tls.existingSecret=zgate-api-tls -set database.existingSecret=zgate-api-database")
	for f in "$ACHART"/ci/*.yaml; do avariants+=("ci/$(basename "$f"):-f $f"); done
	for v in "${avariants[@]}"; do
		name=${v%%:*} args=${v#*:}
		file=$OUT/render-api-${name//\//-}; file=${file%.yaml}.yaml
		# shellcheck disable=SC2086 # args are flag words
		if arender $args >"$file" 2>"$file.err"; then
			pass "render zgate-api [$name]: every template renders"
			count "$("${CHECK[@]}" api-manifests "$ROOT" "$name" "$file" "$ROOT/$API" 2>&1)"
		else
			fail "render zgate-api [$name]: $(cat "$file.err")"
		fi
	done
	if out=$(arender -set tls.existingSecret=x -set database.existingSecret=y -notes 2>&1) &&
		[[ $out == *"NOTES:"*"ipamApi.url=https://zgate-api.zgate.svc:8443"* ]]; then
		pass "render zgate-api [defaults]: NOTES.txt renders and gives the relays' ipamApi.url"
	else
		fail "render zgate-api [defaults]: NOTES.txt: $(tail -3 <<<"$out")"
	fi
	# A configuration change rolls the pods; so does a new database string.
	adoc() { arender "$@" 2>&1 | "$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Deployment":
        print(d["spec"]["template"]["metadata"]["annotations"].get("checksum/config", ""),
              d["spec"]["template"]["metadata"]["annotations"].get("checksum/secret", ""))'; }
	a0=$(adoc -f "$ACHART/ci/inline-values.yaml") a1=$(adoc -f "$ACHART/ci/inline-values.yaml" -set config.lease_ttl=1h)
	a2=$(adoc -f "$ACHART/ci/inline-values.yaml" -set database.url=host=other)
	if [[ -n ${a0% *} && ${a0% *} != "${a1% *}" && -n ${a0#* } && ${a0#* } != "${a2#* }" ]]; then
		pass "render zgate-api: a configuration change alters checksum/config, a new database string checksum/secret"
	else
		fail "render zgate-api: checksums did not follow ('$a0' / '$a1' / '$a2')"
	fi
	arefuse() {
		local what=$1 want=$2; shift 2
		if out=$(arender "$@" 2>&1); then
			fail "render zgate-api refuses $what: it rendered"
		elif [[ $out == *"$want"* ]]; then
			pass "render zgate-api refuses $what"
		else
			fail "render zgate-api refuses $what: message lacks '$want': $out"
		fi
	}
	# The CRL: named in the config and mounted when given (as a key of the
	# existing Secret, or inline into the chart's Secret, also next to
	# cert-manager's), never otherwise; chart-managed, not a config key.
	acrl() { arender "$@" 2>&1 | "$PY" -c 'import sys, yaml
cfg, mnt, data = "-", "-", "-"
for d in yaml.safe_load_all(sys.stdin):
    if not d:
        continue
    if d.get("kind") == "ConfigMap":
        cfg = yaml.safe_load(d["data"]["zgate-api.yaml"]).get("crl", "-")
    if d.get("kind") == "Deployment":
        for v in d["spec"]["template"]["spec"]["volumes"]:
            for src in (v.get("projected") or {}).get("sources", []):
                for i in (src.get("secret") or {}).get("items", []):
                    if i["path"] == "tls/ca.crl":
                        mnt = src["secret"]["name"] + ":" + i["key"]
    if d.get("kind") == "Secret" and "ca.crl" in (d.get("data") or {}):
        data = d["metadata"]["name"] + ":" + ",".join(sorted(d["data"]))
print(cfg, mnt, data)'; }
	want="/etc/zgate/tls/ca.crl api-tls:revoked.pem -"
	got=$(acrl -set tls.existingSecret=api-tls -set tls.existingSecretCRLKey=revoked.pem -set database.existingSecret=y)
	[[ $got == "$want" ]] && pass "render zgate-api: tls.existingSecretCRLKey mounts that key as the config's crl" ||
		fail "render zgate-api: tls.existingSecretCRLKey: '$got', want '$want'"
	want="/etc/zgate/tls/ca.crl zgate-api-tls:ca.crl zgate-api-tls:ca.crl,ca.crt,tls.crt,tls.key"
	got=$(acrl -f "$ACHART/ci/inline-values.yaml")
	[[ $got == "$want" ]] && pass "render zgate-api: an inline tls.crl goes into the chart's Secret, mounted as the config's crl" ||
		fail "render zgate-api: inline tls.crl: '$got', want '$want'"
	want="/etc/zgate/tls/ca.crl zgate-api-tls:ca.crl zgate-api-tls:ca.crl"
	got=$(acrl -f "$ACHART/ci/cert-manager-values.yaml")
	[[ $got == "$want" ]] && pass "render zgate-api: with cert-manager, an inline tls.crl gets a Secret of its own (no empty ca.crt)" ||
		fail "render zgate-api: cert-manager and tls.crl: '$got', want '$want'"
	got=$(acrl -set tls.existingSecret=x -set database.existingSecret=y)
	[[ $got == "- - -" ]] && pass "render zgate-api: no CRL unless one is given" ||
		fail "render zgate-api: a CRL without being asked: '$got'"
	arefuse "config.crl (chart-managed)" "config" -set tls.existingSecret=x -set database.existingSecret=y \
		-set config.crl=/x.crl
	arefuse "no database" "the chart bundles no database" -set tls.existingSecret=x
	arefuse "no certificates" "certificates: set tls.existingSecret" -set database.existingSecret=y
	arefuse "both database.existingSecret and database.url" "not both" -set tls.existingSecret=x \
		-set database.existingSecret=y -set database.url=host=z
	arefuse "config.database (schema)" "config" -set tls.existingSecret=x -set database.existingSecret=y \
		-set config.database=host=z
	arefuse "config.listen (chart-managed)" "config" -set tls.existingSecret=x -set database.existingSecret=y \
		-set config.listen=0.0.0.0:1
	arefuse "runAsUser 0 (schema)" "securityContext.runAsUser" -set tls.existingSecret=x \
		-set database.existingSecret=y -set securityContext.runAsUser=0
	arefuse "extra securityContext keys (schema)" "securityContext" -set tls.existingSecret=x \
		-set database.existingSecret=y -set securityContext.privileged=true
	arefuse "a pool outside /16-/30 (schema)" "config.pool" -set tls.existingSecret=x \
		-set database.existingSecret=y -set config.pool=10.0.0.0/8
	arefuse "certManager.enabled without an issuer" "certManager.issuerRef.name" \
		-set database.existingSecret=y -set certManager.enabled=true
	arefuse "Kubernetes older than 1.25 (Chart.yaml kubeVersion)" "incompatible with Kubernetes" \
		-set tls.existingSecret=x -set database.existingSecret=y -kube-version 1.24.0

	# The zgate-connector chart the same way (files render-connector-*.yaml,
	# so the schema validation below takes them too): every Pod spec held
	# to the restricted profile, no capability, no Service, the ConfigMap
	# through zgate-connector --check-config once it is built.
	CCHART=helm/zgate-connector
	crender() { "$RENDER" -name hospital-a -namespace zgate "$@" "$CCHART"; }
	# (the renderer's -set takes no lists: relays and prefixes come in files)
	printf 'config:\n  relays: ["relay.example.org:4433"]\n' >"$OUT/connector-relays.yaml"
	printf 'config:\n  prefixes: ["10.20.0.0/16"]\n' >"$OUT/connector-prefixes.yaml"
	cbase=(-set tls.existingSecret=hospital-a-tls -f "$OUT/connector-relays.yaml" -f "$OUT/connector-prefixes.yaml")
	cvariants=("defaults:${cbase[*]}")
	for f in "$CCHART"/ci/*.yaml; do cvariants+=("ci/$(basename "$f"):-f $f"); done
	for v in "${cvariants[@]}"; do
		name=${v%%:*} args=${v#*:}
		file=$OUT/render-connector-${name//\//-}; file=${file%.yaml}.yaml
		# shellcheck disable=SC2086 # args are flag words
		if crender $args >"$file" 2>"$file.err"; then
			pass "render zgate-connector [$name]: every template renders"
			count "$("${CHECK[@]}" connector-manifests "$ROOT" "$name" "$file" "$ROOT/$CONN" 2>&1)"
		else
			fail "render zgate-connector [$name]: $(cat "$file.err")"
		fi
	done
	if out=$(crender "${cbase[@]}" -notes 2>&1) && [[ $out == *"NOTES:"*"connector:ID"* ]]; then
		pass "render zgate-connector [defaults]: NOTES.txt renders"
	else
		fail "render zgate-connector [defaults]: NOTES.txt: $(tail -3 <<<"$out")"
	fi
	cdoc() { crender "$@" 2>&1 | "$PY" -c 'import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "Deployment":
        print(d["spec"]["template"]["metadata"]["annotations"].get("checksum/config", ""))'; }
	c0=$(cdoc "${cbase[@]}") c1=$(cdoc "${cbase[@]}" -set "policy=version: 1
default_action: allow")
	if [[ -n $c0 && -n $c1 && $c0 != "$c1" ]]; then
		pass "render zgate-connector: a policy change alters checksum/config (rolls the pod: the connector reads it at start)"
	else
		fail "render zgate-connector: checksum/config did not follow the policy ('$c0' / '$c1')"
	fi
	crefuse() {
		local what=$1 want=$2; shift 2
		if out=$(crender "$@" 2>&1); then
			fail "render zgate-connector refuses $what: it rendered"
		elif [[ $out == *"$want"* ]]; then
			pass "render zgate-connector refuses $what"
		else
			fail "render zgate-connector refuses $what: message lacks '$want': $out"
		fi
	}
	crefuse "no certificates" "certificates: set tls.existingSecret" -f "$OUT/connector-relays.yaml" \
		-f "$OUT/connector-prefixes.yaml"
	crefuse "no relays" "config.relays" -set tls.existingSecret=x -f "$OUT/connector-prefixes.yaml"
	crefuse "no prefixes" "config.prefixes" -set tls.existingSecret=x -f "$OUT/connector-relays.yaml"
	crefuse "config.ops_listen (chart-managed)" "config" "${cbase[@]}" -set config.ops_listen=127.0.0.1:1
	crefuse "config.key (chart-managed)" "config" "${cbase[@]}" -set config.key=/x
	crefuse "runAsUser 0 (schema)" "securityContext.runAsUser" "${cbase[@]}" -set securityContext.runAsUser=0
	crefuse "extra securityContext keys (schema)" "securityContext" "${cbase[@]}" -set securityContext.privileged=true
	crefuse "an empty policy (schema)" "policy" "${cbase[@]}" -set policy=
	crefuse "Kubernetes older than 1.25 (Chart.yaml kubeVersion)" "incompatible with Kubernetes" "${cbase[@]}" \
		-kube-version 1.24.0

	# Every rendered object against the Kubernetes API schemas (types, enums,
	# required fields), with npm's kubernetes-models (pinned; the versions
	# that still run on Debian 12's Node.js).
	NPM_DIR=$OUT/npm
	K8S_MODELS=(kubernetes-models@4.5.1 @kubernetes-models/prometheus-operator@4.4.4
		@kubernetes-models/cert-manager@4.4.4 yaml@2.8.1)
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		skip_part "Kubernetes schema validation: no node/npm"
	elif ! { mkdir -p "$NPM_DIR" && { [[ -f $NPM_DIR/package.json ]] || echo '{"private": true}' >"$NPM_DIR/package.json"; } &&
		(cd "$NPM_DIR" && npm install --no-audit --no-fund --no-package-lock --loglevel=error "${K8S_MODELS[@]}") >"$OUT/npm.log" 2>&1; }; then
		skip_part "Kubernetes schema validation: npm install ${K8S_MODELS[*]} failed: $(tail -2 "$OUT/npm.log" | tr '\n' ' ')"
	else
		cp scripts/packaging/k8s-validate.cjs "$NPM_DIR/"
		[[ -f $OUT/render-ci-cert-manager-values.yaml ]] &&
			grep -q '^kind: Certificate$' "$OUT/render-ci-cert-manager-values.yaml" &&
			grep -q '^kind: Issuer$' "$OUT/render-ci-cert-manager-values.yaml" &&
			pass "render [ci/cert-manager-values.yaml]: a Certificate and an Issuer to validate" ||
			fail "render [ci/cert-manager-values.yaml]: no Certificate and Issuer rendered"
		count "$(node "$NPM_DIR/k8s-validate.cjs" "$OUT"/render-*.yaml 2>&1 | sed 's/^ok   /ok   schema: /; s/^FAIL /FAIL schema: /')"
		sed 's/protocol: UDP$/protocol: UDPX/' "$OUT/render-defaults.yaml" >"$OUT/broken.yaml.txt"
		if out=$(node "$NPM_DIR/k8s-validate.cjs" "$OUT/broken.yaml.txt" 2>&1); then
			fail "selftest: schema validation accepted protocol UDPX"
		elif [[ $out == *"protocol must be equal to one of the allowed values"* ]]; then
			pass "selftest: schema validation rejects a bad enum value (protocol UDPX)"
		else
			fail "selftest: schema validation: unexpected output: $out"
		fi
		# ... and the cert-manager schemas are really applied
		cmr=$OUT/render-ci-cert-manager-values.yaml
		for mut in 's/^    algorithm: ECDSA$/    algorithm: DSA/|spec/privateKey/algorithm must be equal to one of the allowed values' \
			's/^    - server auth$/    - server-auth/|spec/usages/1 must be equal to one of the allowed values' \
			's/^    secretName: zgate-ca$/    secretNam: zgate-ca/|spec/ca must have required property'; do
			sed "${mut%%|*}" "$cmr" >"$OUT/broken-cm.yaml.txt"
			if out=$(node "$NPM_DIR/k8s-validate.cjs" "$OUT/broken-cm.yaml.txt" 2>&1); then
				fail "selftest: cert-manager schema validation accepted '${mut%%|*}'"
			elif [[ $out == *"${mut#*|}"* ]]; then
				pass "selftest: cert-manager schema validation rejects '${mut%%|*}'"
			else
				fail "selftest: cert-manager schema validation of '${mut%%|*}': unexpected output: $out"
			fi
		done
	fi

	# NOTES.txt renders too (helm install prints it).
	if out=$(render -set tls.existingSecret=x -notes 2>&1) && [[ $out == *"NOTES:"*"port-forward"* ]]; then
		pass "render [defaults]: NOTES.txt renders"
	else
		fail "render [defaults]: NOTES.txt: $(tail -3 <<<"$out")"
	fi
	if out=$(render -f "$CHART/ci/policy-api-values.yaml" -notes 2>&1) &&
		[[ $out == *"NOTES:"*"Policy: fetched from zgate-api (https://zgate-api.zgate.svc:8443) every 5s"*"relay:relay-eu1"* ]]; then
		pass "render [ci/policy-api-values.yaml]: NOTES.txt says where the policy comes from"
	else
		fail "render [ci/policy-api-values.yaml]: NOTES.txt: $(tail -3 <<<"$out")"
	fi

	# A change of the relay's configuration changes the checksum (rolls the
	# pods); a policy-only change leaves the whole Deployment as it was (the
	# relay reloads the mounted policy: rolling would drop every tunnel)
	# while the policy's own ConfigMap does change. For each way of giving
	# certificates.
	doc() { # KIND NAME RENDER-ARGS...: that one rendered object
		local kind=$1 name=$2; shift 2
		render "$@" 2>&1 | "$PY" -c 'import sys, yaml
k, n = sys.argv[1:]
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == k and d["metadata"]["name"] == n:
        print(yaml.safe_dump(d, sort_keys=True))' "$kind" "$name"
	}
	newpol='policy=version: 1
default_action: deny
clients: {agent-9: {rules: [{id: x, action: allow, destinations: [198.51.100.0/24]}]}}'
	for certs in "-set tls.existingSecret=x" "-f $CHART/ci/inline-certs-values.yaml" "-f $CHART/ci/cert-manager-values.yaml"; do
		# shellcheck disable=SC2086 # flag words
		{
			d0=$(doc Deployment zgate-relay $certs) d1=$(doc Deployment zgate-relay $certs -set "$newpol")
			d2=$(doc Deployment zgate-relay $certs -set config.log_level=debug)
			p0=$(doc ConfigMap zgate-relay-policy $certs) p1=$(doc ConfigMap zgate-relay-policy $certs -set "$newpol")
		}
		sum0=$(sed -n 's/^ *checksum\/config: //p' <<<"$d0") sum2=$(sed -n 's/^ *checksum\/config: //p' <<<"$d2")
		if [[ -n $d0 && $d0 == "$d1" && -n $p0 && $p0 != "$p1" && $p1 == *agent-9* ]]; then
			pass "render [${certs##*/}]: a policy-only change leaves the Deployment (and its checksums) unchanged; only the policy ConfigMap changes"
		else
			fail "render [${certs##*/}]: a policy-only change altered the Deployment or missed the policy ConfigMap: $(diff <(echo "$d0") <(echo "$d1") | head -5)"
		fi
		if [[ -n $sum0 && -n $sum2 && $sum0 != "$sum2" ]]; then
			pass "render [${certs##*/}]: a configuration change alters checksum/config (rolls the pods)"
		else
			fail "render [${certs##*/}]: checksum/config did not follow the configuration ('$sum0' / '$sum2')"
		fi
	done

	# Values that must be refused, and the message that must say why.
	refuse() {
		local what=$1 want=$2; shift 2
		if out=$(render -set tls.existingSecret=x "$@" 2>&1); then
			fail "render refuses $what: it rendered"
		elif [[ $out == *"$want"* ]]; then
			pass "render refuses $what"
		else
			fail "render refuses $what: message lacks '$want': $out"
		fi
	}
	refuse "runAsUser 0 (schema)" "securityContext.runAsUser" -set securityContext.runAsUser=0
	refuse "runAsGroup 0 (schema)" "securityContext.runAsGroup" -set securityContext.runAsGroup=0
	refuse "a stop timeout not longer than the drain period" "must exceed drainGraceSeconds" \
		-set terminationGracePeriodSeconds=30
	refuse "config.listen (chart-managed)" "config" -set config.listen=0.0.0.0:1
	refuse "config.timeouts.drain_grace (chart-managed)" "use drainGraceSeconds" -set config.timeouts.drain_grace=5s
	refuse "a PVC shared by several replicas" "needs replicaCount 1" -set state.existingClaim=pvc -set replicaCount=2
	refuse "an unknown Service type (schema)" "service.type" -set service.type=ExternalName
	refuse "an empty policy (schema)" "policy" -set policy=
	refuse "Kubernetes older than 1.25 (Chart.yaml kubeVersion)" "incompatible with Kubernetes" -kube-version 1.24.0
	refuse "extra securityContext keys (schema)" "securityContext" -set securityContext.privileged=true
	refuse "certManager.enabled without an issuer" "certManager.issuerRef.name" -set certManager.enabled=true
	refuse "certManager.issuer.create without the CA's Secret" "certManager.issuer.caSecret" \
		-set certManager.enabled=true -set certManager.issuer.create=true
	refuse "certManager.enabled with tls.cert/tls.key given too" "remove tls.cert and tls.key" \
		-f "$CHART/ci/inline-certs-values.yaml" -set certManager.enabled=true -set certManager.issuerRef.name=ca
	refuse "certManager without a client CA (clientCAFromIssuer false)" "give the CA that signs client certificates" \
		-set tls.existingSecret= -set certManager.enabled=true -set certManager.issuerRef.name=ca \
		-set certManager.clientCAFromIssuer=false
	refuse "an unknown issuer kind (schema)" "certManager.issuerRef.kind" \
		-set certManager.enabled=true -set certManager.issuerRef.name=ca -set certManager.issuerRef.kind=Vault
	# the relay chart's ipamApi values
	refuse "ipamApi without its client certificate Secret" "ipamApi.existingSecret" \
		-set ipamApi.enabled=true -set ipamApi.url=https://zgate-api:8443
	refuse "ipamApi without a url" "ipamApi.url" -set ipamApi.enabled=true -set ipamApi.existingSecret=s
	refuse "an http:// ipamApi.url (schema)" "ipamApi.url" -set ipamApi.enabled=true \
		-set ipamApi.existingSecret=s -set ipamApi.url=http://zgate-api:8443
	refuse "config.ipam next to ipamApi (chart-managed)" "use ipamApi" -set ipamApi.enabled=true \
		-set ipamApi.existingSecret=s -set ipamApi.url=https://a:8443 -set config.ipam.backend=local
	refuse "a relayId zgate-api cannot take (schema)" "ipamApi.relayId" -set ipamApi.enabled=true \
		-set ipamApi.existingSecret=s -set ipamApi.url=https://a:8443 -set ipamApi.relayId=a:b
	# ... and its policyApi values
	refuse "policyApi without ipamApi or a url" "policyApi.url" -set policyApi.enabled=true \
		-set policyApi.existingSecret=s
	refuse "policyApi without ipamApi or a client certificate Secret" "policyApi.existingSecret" \
		-set policyApi.enabled=true -set policyApi.url=https://zgate-api:8443
	refuse "an http:// policyApi.url (schema)" "policyApi.url" -set policyApi.enabled=true \
		-set policyApi.existingSecret=s -set policyApi.url=http://zgate-api:8443
	refuse "a policyApi.poll without a unit (schema)" "policyApi.poll" -set policyApi.enabled=true \
		-set policyApi.existingSecret=s -set policyApi.url=https://a:8443 -set policyApi.poll=10
	refuse "a policy value next to policyApi" "with policyApi.enabled the relay takes its policy from zgate-api" \
		-f "$CHART/ci/policy-api-values.yaml" -set "$newpol"
	refuse "config.policy_api (chart-managed)" "use policyApi" -set config.policy_api.url=https://a:8443
	refuse "config.relay_id next to policyApi (chart-managed)" "use policyApi.relayId" \
		-f "$CHART/ci/policy-api-values.yaml" -set config.relay_id=r9
	refuse "policyApi.existingSecret next to ipamApi's certificate" "remove policyApi.existingSecret" \
		-f "$CHART/ci/ipam-api-values.yaml" -set policyApi.enabled=true -set policyApi.existingSecret=s
	refuse "a policyApi.relayId other than ipamApi's" "one id, ipamApi.relayId" \
		-f "$CHART/ci/ipam-api-values.yaml" -set policyApi.enabled=true -set policyApi.relayId=r9
	refuse "a policyApi.relayId zgate-api cannot take (schema)" "policyApi.relayId" \
		-f "$CHART/ci/policy-api-values.yaml" -set policyApi.relayId=a:b
	# policyApi shares ipamApi's url, relay id and certificate: the same files
	got=$(doc ConfigMap zgate-relay -f "$CHART/ci/ipam-api-values.yaml" -set policyApi.enabled=true | "$PY" -c '
import sys, yaml
c = yaml.safe_load(yaml.safe_load(sys.stdin)["data"]["zgate-relay.yaml"])
i, p = c["ipam"]["api"], c["policy_api"]
print(p["url"] == i["url"] and all(p[k] == i[k] for k in ("ca", "cert", "key")), c["relay_id"], p["poll"])' 2>&1)
	[[ $got == "True relay-eu1 10s" ]] &&
		pass "render [ci/ipam-api-values.yaml + policyApi.enabled]: policy_api takes ipamApi's url, relay_id and client certificate, poll 10s" ||
		fail "render [ci/ipam-api-values.yaml + policyApi.enabled]: got '$got', want 'True relay-eu1 10s'"
fi

# ---------------------------------------------------------------- 4. docker-compose config
if ! command -v docker-compose >/dev/null && ! have_pkgs docker-compose; then
	skip_part "docker-compose config: Debian's docker-compose is not installed and cannot be"
elif out=$(docker-compose -f docker/compose.yaml config -q 2>&1); then
	services=$(docker-compose -f docker/compose.yaml config --services 2>/dev/null | sort | tr '\n' ' ')
	pass "docker-compose config: docker/compose.yaml is valid (services: $services)"
else
	fail "docker-compose config: $out"
fi

# ---------------------------------------------------------------- 5. compose settings the binaries accept
# Each agent service's ZGATE_* variables, with the certificate paths pointed
# at a local PKI, must pass zgate-agent --check-config (a misspelt variable
# is an error there, so this catches names that drift from the code).
AGENT=${RELAY%/zgate-relay}/zgate-agent
if [[ -z $PY || ! -x $AGENT ]]; then
	skip_part "compose agent settings: needs python3-yaml and $AGENT"
else
	pki=$OUT/compose-pki
	[[ -f $pki/ca.crt ]] || scripts/gen-certs.sh -d "$pki" -s relay -c agent-1 -c agent-2 >/dev/null 2>&1
	for svc in $("$PY" -c 'import sys, yaml
d = yaml.safe_load(open("docker/compose.yaml"))
print(" ".join(n for n, s in d["services"].items() if "agent" in str(s.get("image", ""))))'); do
		envs=$("$PY" - "$svc" "$pki" <<'PYEOF'
import sys, yaml
d = yaml.safe_load(open("docker/compose.yaml"))
for k, v in (d["services"][sys.argv[1]].get("environment") or {}).items():
    print(k + "=" + str(v).replace("/etc/zgate/tls", sys.argv[2]))
PYEOF
)
		mapfile -t envv <<<"$envs"
		if out=$(env -i PATH="$PATH" "${envv[@]}" "$AGENT" --check-config 2>&1); then
			pass "compose $svc: zgate-agent --check-config accepts its ZGATE_* settings"
		else
			fail "compose $svc: zgate-agent --check-config: $(tail -2 <<<"$out")"
		fi
	done
fi

# The relays' and zgate-api's settings the same way: each service's
# environment (and env_file) over the configuration file it mounts, paths
# under /etc/zgate pointed at a local PKI, through the program's own
# --check-config. (The relays' ipam.* and relay_id keys are issue 20's:
# the relay's parser accepts them once that branch is in.)
# compose_env SERVICE PKI: its variables, one NAME=VALUE a line
compose_env() {
	"$PY" - "$1" "$2" <<'PYEOF'
import os, sys, yaml
d = yaml.safe_load(open("docker/compose.yaml"))
s = d["services"][sys.argv[1]]
env = {}
ef = s.get("env_file") or []
for f in [ef] if isinstance(ef, str) else ef:
    for line in open(os.path.join("docker", f)):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
env.update({k: "" if v is None else str(v) for k, v in (s.get("environment") or {}).items()})
for k, v in env.items():
    if k.startswith("ZGATE_"):
        print(k + "=" + v.replace("/etc/zgate/tls", sys.argv[2]))
PYEOF
}
compose_services() { # DOCKERFILE-SUFFIX
	"$PY" -c 'import sys, yaml
d = yaml.safe_load(open("docker/compose.yaml"))
print(" ".join(n for n, s in d["services"].items()
               if str((s.get("build") or {}).get("dockerfile", "")).endswith(sys.argv[1])))' "$1"
}
if [[ -z $PY || ! -x $RELAY || ! -x $API ]]; then
	skip_part "compose relay and zgate-api settings: needs python3-yaml, $RELAY and $API"
else
	cpki=$OUT/compose-api-pki
	rm -rf "$cpki"
	cmd=$("$PY" -c 'import yaml; print(" ".join(map(str, yaml.safe_load(open("docker/compose.yaml"))["services"]["certgen"]["command"])))')
	# shellcheck disable=SC2086 # certgen's argument words
	scripts/gen-certs.sh -d "$cpki" $cmd >"$OUT/compose-api-pki.log" 2>&1 ||
		fail "compose certgen's command with scripts/gen-certs.sh: $(tail -2 "$OUT/compose-api-pki.log")"
	sed -e "s|/etc/zgate/tls|$cpki|g" -e "s|/etc/zgate/policy.yaml|$ROOT/docker/policy.yaml|" \
		-e "s|/var/lib/zgate/|$OUT/|" examples/zgate-relay.yaml >"$OUT/compose-relay.yaml"
	for svc in $(compose_services relay.Dockerfile); do
		mapfile -t envv < <(compose_env "$svc" "$cpki")
		if out=$(env -i PATH="$PATH" "${envv[@]}" "$RELAY" --check-config --config "$OUT/compose-relay.yaml" 2>&1); then
			pass "compose $svc: zgate-relay --check-config accepts its ZGATE_* settings (ipam backend api)"
		else
			fail "compose $svc: zgate-relay --check-config: $(tail -2 <<<"$out")"
		fi
	done
	sed -e "s|/etc/zgate/tls|$cpki|g" examples/zgate-api.yaml >"$OUT/compose-api.yaml"
	for svc in $(compose_services api.Dockerfile); do
		mapfile -t envv < <(compose_env "$svc" "$cpki")
		if out=$(env -i PATH="$PATH" "${envv[@]}" "$API" --check-config --config "$OUT/compose-api.yaml" 2>&1); then
			pass "compose $svc: zgate-api --check-config accepts the mounted config with its ZGATE_* settings and certgen's PKI"
		else
			fail "compose $svc: zgate-api --check-config: $(tail -2 <<<"$out")"
		fi
	done
fi

# The compose connector's mounted configuration and policy, certificate
# paths pointed at certgen's PKI, through zgate-connector --check-config.
if [[ ! -x $CONN || ! -d ${cpki:-} ]]; then
	skip_part "compose connector settings: needs $CONN (and the compose PKI above)"
else
	sed -e "s|/etc/zgate/tls|$cpki|g" -e "s|/etc/zgate/connector-policy.yaml|$ROOT/docker/connector-policy.yaml|" \
		docker/connector.yaml >"$OUT/compose-connector.yaml"
	if out=$(env -i PATH="$PATH" "$CONN" --check-config --config "$OUT/compose-connector.yaml" 2>&1); then
		pass "compose hospital-a: zgate-connector --check-config accepts docker/connector.yaml and certgen's PKI"
	else
		fail "compose hospital-a: zgate-connector --check-config: $(tail -2 <<<"$out")"
	fi
fi

say "packaging: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]] || exit 1
[[ $passed -gt 0 ]] || exit 77
exit 0
