# zgate — one entry point. See README.md.
#
#   make deps    install Debian packages + build source dependencies (cached)
#   make all     library and binaries into build/
#   make test    everything: unit, the same under ASan/UBSan, fuzz smoke, e2e
#   make unit    unit tests only (normal build)
#   make asan    unit tests built with clang -fsanitize=address,undefined
#   make fuzz    libFuzzer targets, FUZZ_SECONDS each (default 20; fuzz_masque_server 180)
#   make fuzz-long  the same, nightly-style: FUZZ_LONG_SECONDS each (600; masque_server 1800)
#   make e2e     end-to-end scenarios (tests/e2e/t_*.sh; root for namespaces)
#   make selftest tests of the project's scripts (dependency pins, leak check)
#   make bench   benchmarks (bench/run.sh; not part of make test)
#   make bench-api  zgate-api allocations/s and p50/p99 (bench/api.sh)
#   make install binaries, man pages, systemd units, examples (PREFIX, DESTDIR)
#   make deb     a Debian package of the same files (build/zgate_*.deb)
#   make demo    the end-to-end demo
#   make clean   remove build/ (the dependency cache outside the clone stays)
#   make format  clang-format the C sources in place (.clang-format)
#   make format-check  list what `make format` would change (exit 1 if anything)

SHELL := /bin/bash
.DEFAULT_GOAL := all
.SUFFIXES:

BUILD        ?= build
SAN          ?=
OPT          ?= -O2
FUZZ_SECONDS ?= 20
# fuzz_masque_server runs whole handshakes (~1,000 inputs a second) and
# finds rare cases: a ClientHello cut at one unlucky place failed once in
# roughly 40,000-180,000 inputs (issue 15), which 20 s would never show.
FUZZ_MASQUE_SECONDS ?= 180
FUZZ_LONG_SECONDS ?= 600
FUZZ_LONG_MASQUE_SECONDS ?= 1800
# MODULES/TESTS narrow a build while a module is under construction, e.g.
# make unit MODULES="common capsule stack" TESTS="test_stack%".
MODULES ?= common capsule stack masque relay agent api connector
TESTS   ?= %
ifeq ($(origin CC),default)
  CC := gcc
endif
Q := @

# Debian binary packages this project needs to build and test.
APT_PACKAGES := build-essential pkg-config autoconf automake libtool dpkg-dev \
	xz-utils ca-certificates clang libclang-rt-dev llvm libevent-dev \
	libyaml-dev libcmocka-dev libmnl-dev openssl iproute2 util-linux curl \
	iputils-ping python3 prometheus clang-format libmicrohttpd-dev libgnutls28-dev libpq-dev \
	libldns-dev dnsmasq-base bind9-dnsutils libsystemd-dev dbus-daemon
# Only for the tests that start a throwaway PostgreSQL (tests/e2e/t_api*.sh,
# make bench-api) and capture the relay's traffic (tcpdump: t_connector.sh
# proves the relay cannot read the connector path): kept apart because
# APT_PACKAGES also feeds the image build stage (docker/*.Dockerfile run
# `make deps`), which needs neither.
# The independent CONNECT-IP client of tests/e2e/t_interop_quinn.sh
# (tests/interop/quinn: quinn + rustls) builds offline from Debian's Rust
# source packages; Debian's cargo only when the machine has none.
INTEROP_PACKAGES := librust-quinn-dev librust-rustls-dev librust-rustls-pemfile-dev \
	librust-tokio-dev librust-bytes-dev $(if $(shell command -v cargo),,cargo)
TEST_PACKAGES := postgresql tcpdump $(INTEROP_PACKAGES)

# ---------------------------------------------------------------- dependencies
# build/deps.mk records where the source-built dependencies are. Making it
# installs missing Debian packages and builds (or finds cached) dependencies;
# GNU make then re-reads this file, so every wildcard below sees them.
NO_DEPS_GOALS := clean help demo selftest uninstall format format-check
ifneq ($(filter-out $(NO_DEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
-include $(BUILD)/deps.mk
endif

$(BUILD)/deps.mk: third_party/deps.sh Makefile $(if $(wildcard $(DEPS_PREFIX)/.complete),,FORCE)
	$(Q)scripts/ensure-packages.sh $(APT_PACKAGES)
	$(Q)third_party/deps.sh build
	@mkdir -p $(@D)
	$(Q)echo "DEPS_PREFIX := $$(third_party/deps.sh prefix)" > $@

.PHONY: FORCE
FORCE:

# ---------------------------------------------------------------- flags
WARN := -Wall -Wextra -Wshadow -Wconversion -Wvla -Wmissing-prototypes \
	-Wstrict-prototypes -Wformat=2 -Wno-sign-conversion -Werror
# SAN=1: ASan+UBSan; SAN=fuzz: the same plus libFuzzer coverage hooks.
comma := ,
SAN_FLAGS := $(if $(SAN),-fsanitize=address$(comma)undefined -fno-sanitize-recover=all)
SAN_FLAGS += $(if $(filter fuzz,$(SAN)),-fsanitize=fuzzer-no-link)

# lwIP: sources from the dependency cache, compiled here with our lwipopts.h
# (src/stack) so that tuning it never invalidates the dependency cache.
LWIP_DIR := $(DEPS_PREFIX)/src/lwip/src
LWIP_INC := -Isrc/stack -I$(LWIP_DIR)/include
LWIP_SRC := $(if $(and $(DEPS_PREFIX),$(filter stack,$(MODULES)),$(wildcard src/stack/lwipopts.h)),$(wildcard $(LWIP_DIR)/core/*.c \
	$(LWIP_DIR)/core/ipv4/*.c $(LWIP_DIR)/core/ipv6/*.c))
LWIP_OBJ := $(patsubst $(LWIP_DIR)/%.c,$(BUILD)/lwip/%.o,$(LWIP_SRC))
LWIP_LIB := $(BUILD)/liblwip.a

VERSION := 0.1.0
# The commit built, for --version and zgate_build_info: `git describe` of
# the tree, "unknown" outside a git tree. $(BUILD)/gen/zg_build.h is
# rewritten only when it changes, so only the files that include it rebuild.
COMMIT := $(or $(shell git describe --always --dirty 2>/dev/null),unknown)
$(shell mkdir -p $(BUILD)/gen && { echo '#define ZG_COMMIT "$(COMMIT)"' | cmp -s - $(BUILD)/gen/zg_build.h || \
	echo '#define ZG_COMMIT "$(COMMIT)"' > $(BUILD)/gen/zg_build.h; })
ZG_CPPFLAGS := -D_GNU_SOURCE -DZG_VERSION='"$(VERSION)"' -I$(BUILD)/gen -Isrc -Isrc/common -Isrc/capsule \
	-isystem $(DEPS_PREFIX)/include $(LWIP_INC) \
	$(patsubst -I%,-isystem %,$(shell pkg-config --cflags-only-I libpq 2>/dev/null))
ZG_CFLAGS   := -std=c11 $(OPT) -g -fno-omit-frame-pointer $(WARN) $(SAN_FLAGS)
ZG_LDFLAGS  := $(SAN_FLAGS)
DEP_LIBS    := -L$(DEPS_PREFIX)/lib -lngtcp2_crypto_wolfssl -lngtcp2 -lnghttp3 \
	-lwolfssl -levent -lyaml -lmnl -lldns -lm -lpthread -Wl,--as-needed -lsystemd -Wl,--no-as-needed

# zgate-api alone links the HTTP server, GnuTLS and libpq (README: "zgate-api").
# It checks policy documents with the relay's own parser: src/relay/policy.c
# comes from $(ZG_LIB) like every module's code, so there is one parser.
API_LIBS    := -lmicrohttpd -lgnutls -lpq

# ---------------------------------------------------------------- sources
# Every src/<module>/*.c except main programs goes into one static library;
# static linking pulls only what each binary or test uses.
LIB_SRC := $(filter-out %main.c,$(wildcard $(patsubst %,src/%/*.c,$(MODULES))))
ZG_LIB  := $(BUILD)/libzg.a
# The archive's members depend on MODULES: record the set so a change rebuilds it.
$(shell mkdir -p $(BUILD) && { echo "$(MODULES)" | cmp -s - $(BUILD)/.modules || echo "$(MODULES)" > $(BUILD)/.modules; })
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBS_ALL  := $(ZG_LIB) $(if $(LWIP_SRC),$(LWIP_LIB))

# Programs: src/relay/main.c → zgate-relay, src/agent/main.c → zgate-agent,
# src/connector/main.c → zgate-connector,
# src/api/main.c → zgate-api, src/masque/probe_main.c → zgate-probe (the
# diagnostics client).
BIN_MAINS := $(wildcard $(patsubst %,src/%/main.c,$(filter relay agent api connector,$(MODULES))) \
	$(if $(filter masque,$(MODULES)),src/masque/probe_main.c))
bin_name   = $(BUILD)/bin/zgate-$(if $(filter %/probe_main.c,$(1)),probe,$(notdir $(patsubst %/,%,$(dir $(1)))))
BINS      := $(foreach m,$(BIN_MAINS),$(call bin_name,$(m)))
TEST_BINS := $(filter $(addprefix $(BUILD)/tests/,$(TESTS)),\
	$(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c)))
FUZZ_BINS := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard fuzz/fuzz_*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

# ---------------------------------------------------------------- rules
.PHONY: all deps unit asan fuzz fuzz-run fuzz-long e2e selftest bench test demo clean help \
	format format-check

all: $(LIBS_ALL) $(BINS)

deps: $(BUILD)/deps.mk
	@echo "deps: ready in $(DEPS_PREFIX)"

help:
	$(Q)sed -n '2,19p' Makefile | sed 's/^# \{0,1\}//'

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(CC) $(ZG_CPPFLAGS) $(ZG_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# lwIP is third-party code: its own warnings are not ours to fix.
$(BUILD)/lwip/%.o: $(LWIP_DIR)/%.c $(wildcard src/stack/lwipopts.h src/stack/stack_hooks.h src/stack/arch/*.h)
	@mkdir -p $(@D)
	$(Q)$(CC) -D_GNU_SOURCE $(LWIP_INC) -std=gnu11 $(OPT) -g -w $(SAN_FLAGS) -c $< -o $@

$(LWIP_LIB): $(LWIP_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(ZG_LIB): $(call obj,$(LIB_SRC)) $(BUILD)/.modules
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $(filter %.o,$^)

define bin_rule
$(call bin_name,$(1)): $(call obj,$(1)) $$(LIBS_ALL)
	@mkdir -p $$(@D)
	$$(Q)$$(CC) $$^ -o $$@ $$(ZG_LDFLAGS) $$(DEP_LIBS)
endef
$(foreach m,$(BIN_MAINS),$(eval $(call bin_rule,$(m))))
$(BUILD)/bin/zgate-api: DEP_LIBS += $(API_LIBS)

# zgate-api carries its schema: src/api/migrations/*.sql become a C table.
API_MIGRATIONS := $(sort $(wildcard src/api/migrations/*.sql))
$(BUILD)/gen/api_migrations.h: scripts/embed-migrations.sh $(API_MIGRATIONS)
	@mkdir -p $(@D)
	$(Q)scripts/embed-migrations.sh $@ $(API_MIGRATIONS)
$(BUILD)/obj/src/api/api_db.o: $(BUILD)/gen/api_migrations.h

$(BUILD)/tests/test_%: tests/test_%.c $(LIBS_ALL)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ZG_CPPFLAGS) $(ZG_CFLAGS) $(CFLAGS) -Wno-missing-prototypes -MMD -MP \
		$< -o $@ $(LIBS_ALL) $(ZG_LDFLAGS) -lcmocka $(DEP_LIBS)

# ---------------------------------------------------------------- tests
# One formatting style (.clang-format): the tree follows it, and `make
# test` checks that it still does (tests/format/test_format.sh, a selftest).
format:
	$(Q)scripts/format.sh

format-check:
	$(Q)scripts/format.sh --check

unit: $(TEST_BINS)
	$(Q)scripts/run-tests.sh unit$(if $(SAN),-asan) $(TEST_BINS)

asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=1 CC=clang OPT=-O1 unit

# libFuzzer targets: fuzz/fuzz_<name>.c linked with the library built for
# fuzzing; each runs FUZZ_SECONDS on a scratch copy of fuzz/corpus/fuzz_<name>/.
fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=build/fuzz SAN=fuzz CC=clang OPT=-O1 fuzz-run

fuzz-run: $(FUZZ_BINS)
	$(Q)FUZZ_SECONDS_fuzz_masque_server=$(FUZZ_MASQUE_SECONDS) \
		scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-long:
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_LONG_SECONDS) \
		FUZZ_MASQUE_SECONDS=$(FUZZ_LONG_MASQUE_SECONDS)

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(LIBS_ALL)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ZG_CPPFLAGS) $(ZG_CFLAGS) -Wno-missing-prototypes -fsanitize=fuzzer \
		$< -o $@ $(LIBS_ALL) $(ZG_LDFLAGS) -fsanitize=fuzzer $(DEP_LIBS)

e2e: all
	$(Q)scripts/ensure-packages.sh $(TEST_PACKAGES)
	$(Q)tests/e2e/run.sh

# Shell tests of the project's own scripts (cmocka-style output, counted
# like the unit tests): third_party/deps.sh's resolution of the pins against
# canned apt-cache output, the e2e runner's check for leftover processes,
# and that the sources follow .clang-format.
SELFTESTS := tests/deps/test_resolve.sh tests/e2e/test_leftovers.sh tests/format/test_format.sh \
	tests/bench/test_vpn_report.sh tests/bench/test_workers.sh
selftest:
	$(Q)scripts/run-tests.sh selftest $(SELFTESTS)

# Benchmarks: bench/<name>.c linked like the tests (without cmocka), run by
# bench/run.sh, which prints the results as markdown.
# Debian packages of the peers zgate is measured against (make bench only).
# python3-cryptography signs bench/tunnels.sh's 10,000 client certificates.
BENCH_PACKAGES := iperf3 wireguard-go wireguard-tools openvpn gnuplot-nox python3-cryptography

bench: $(BENCH_BINS) $(BINS)
	$(Q)scripts/ensure-packages.sh $(BENCH_PACKAGES)
	$(Q)bench/run.sh $(BUILD)/bench

# zgate-api's allocations/s and p50/p99 latency against a throwaway
# PostgreSQL (root; BENCH_API_CLIENTS, default 10000).
.PHONY: bench-api
bench-api: $(BUILD)/bin/zgate-api
	$(Q)scripts/ensure-packages.sh $(TEST_PACKAGES)
	$(Q)ZG_BIN=$(abspath $(BUILD))/bin bench/api.sh

$(BUILD)/bench/%: bench/%.c $(LIBS_ALL)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ZG_CPPFLAGS) $(ZG_CFLAGS) $(CFLAGS) -Wno-missing-prototypes \
		$< -o $@ $(LIBS_ALL) $(ZG_LDFLAGS) $(DEP_LIBS)

# Every suite runs even when an earlier one failed; a suite that broke before
# counting anything (e.g. a compile error) counts as one failure. Each suite
# runs with ZG_TEST_RUN=<run>/<suite>: a process still carrying it after the
# last suite is a leftover (scripts/leftovers.sh), counted as a failure.
run_suite = ZG_TEST_RUN=$$run/$(1) $(MAKE) --no-print-directory $(2) || { rc=1; \
	test -f build/results/$(1).count || { mkdir -p build/results; echo "0 1" > build/results/$(1).count; }; };

test: $(BUILD)/deps.mk
	$(Q)rm -f build/results/*.count
	$(Q)rc=0; run=test-$$(date +%s)-$$$$; \
	$(call run_suite,selftest,selftest) \
	$(call run_suite,unit,unit) \
	$(call run_suite,unit-asan,asan) \
	$(call run_suite,fuzz,fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)) \
	$(call run_suite,e2e,e2e) \
	left=$$(scripts/leftovers.sh "make test" "$$run") || { rc=1; printf '%s\n' "$$left"; \
		echo "0 $$(printf '%s\n' "$$left" | wc -l)" > build/results/leftovers.count; }; \
	scripts/summary.sh build/results || rc=1; \
	exit $$rc

# ---------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=]: the four programs into
# $(BINDIR) (zgate-agent status is for users too, so bin, not sbin, as
# wireguard-tools does), man pages, the systemd units (their ExecStart
# names $(BINDIR)), README and examples under $(DOCDIR), and the example
# configuration into $(SYSCONFDIR)/zgate unless a file is there already.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/zgate
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
PROGRAMS   := zgate-relay zgate-agent zgate-probe zgate-api zgate-connector
MANPAGES   := man/zgate-relay.8 man/zgate-agent.8 man/zgate-probe.1 man/zgate-api.8 \
	man/zgate-connector.8
UNITS      := zgate-relay.service zgate-agent.service zgate-api.service zgate-connector.service
EXAMPLES   := examples/zgate-relay.yaml examples/policy.yaml examples/zgate-agent.yaml \
	examples/zgate-api.yaml examples/zgate-connector.yaml examples/connector-policy.yaml
# Debian packages `make deb` needs (dpkg-shlibdeps; t_install.sh also wants systemd, groff-base, man-db).
DEB_PACKAGES := dpkg-dev

.PHONY: install uninstall deb
install: all
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SYSCONFDIR)/zgate/tls
	$(Q)install -m 0755 $(addprefix $(BUILD)/bin/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)/
	$(Q)install -m 0644 $(filter %.1,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	$(Q)install -m 0644 $(filter %.8,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man8/
	$(Q)for u in $(UNITS); do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/systemd/$$u.in \
			> $(DESTDIR)$(UNITDIR)/$$u.tmp && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	$(Q)install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	$(Q)install -m 0644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/
	$(Q)for f in $(notdir $(EXAMPLES)); do \
		if [ -e $(DESTDIR)$(SYSCONFDIR)/zgate/$$f ]; then \
			echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/zgate/$$f (the example is in $(DOCDIR)/examples)"; \
		else install -m 0644 examples/$$f $(DESTDIR)$(SYSCONFDIR)/zgate/$$f; fi; done
	@echo "installed into $(DESTDIR)$(PREFIX); next: certificates in $(SYSCONFDIR)/zgate/tls, then systemctl enable --now zgate-relay (and zgate-api where the shared pool runs, zgate-connector on-prem)"

# Removes what install put there, except the configuration in $(SYSCONFDIR)/zgate.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(PROGRAMS)) $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) \
		$(DESTDIR)$(MANDIR)/man1/zgate-probe.1 $(DESTDIR)$(MANDIR)/man8/zgate-relay.8 \
		$(DESTDIR)$(MANDIR)/man8/zgate-agent.8 $(DESTDIR)$(MANDIR)/man8/zgate-api.8 \
		$(DESTDIR)$(MANDIR)/man8/zgate-connector.8
	rm -rf $(DESTDIR)$(DOCDIR)

# make deb: the files `make install PREFIX=/usr` stages, packed by dpkg-deb
# with a generated DEBIAN/ (scripts/make-deb.sh says why not dpkg-buildpackage).
deb: all
	$(Q)scripts/ensure-packages.sh $(DEB_PACKAGES)
	$(Q)scripts/make-deb.sh $(BUILD) $(VERSION)

demo: $(BUILD)/deps.mk
	$(Q)$(MAKE) --no-print-directory all
	$(Q)ZG_BIN=$(abspath $(BUILD))/bin scripts/demo.sh

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
# test binaries: a change to a header they include (tests/pki.h) rebuilds them
-include $(wildcard $(BUILD)/tests/*.d)
