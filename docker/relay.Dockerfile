# zgate-relay image: the relay binary and the shared libraries it loads,
# nothing else (no shell, no package manager), running as uid/gid 65532.
#
#   docker build -f docker/relay.Dockerfile -t zgate-relay .     (from the repository root)
#
# The relay needs no capability, no TUN and no root; it works with a
# read-only root file system. Mount:
#   /etc/zgate/zgate-relay.yaml   the configuration (examples/zgate-relay.yaml)
#   /etc/zgate/policy.yaml        the policy (examples/policy.yaml)
#   /etc/zgate/tls/               relay.crt, relay.key, ca.crt (scripts/gen-certs.sh)
#   /var/lib/zgate/               writable, only if state_file is set
# Ports: 4433/udp (QUIC), 8080/tcp (/health, /ready, /metrics).
# There is no HEALTHCHECK: the image has no program to run one with. Probe
# GET /health (alive) and GET /ready (serving; 503 while draining) on 8080
# from the orchestrator instead (docker/compose.yaml, helm/zgate-relay).
# ICMP echo through the relay needs the ping sockets sysctl
# net.ipv4.ping_group_range to include gid 65532 (namespaced, safe).

# ---- build: the same commands CI runs (.ci/run → make), on Debian 12.
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends make ca-certificates
WORKDIR /src
# Dependencies first, so that editing src/ does not rebuild them: `make deps`
# installs the Debian packages the Makefile lists and builds the source-built
# dependencies (third_party/deps.sh) into the build cache.
COPY Makefile ./
COPY scripts/ scripts/
COPY third_party/ third_party/
RUN make deps
COPY src/ src/
RUN make all
COPY docker/rootfs.sh docker/
RUN docker/rootfs.sh /out build/bin/zgate-relay

# ---- runtime: only what rootfs.sh staged.
FROM scratch
COPY --from=build /out/ /
COPY --from=build --chown=65532:65532 /out/var/lib/zgate/ /var/lib/zgate/
USER 65532:65532
EXPOSE 4433/udp 8080/tcp
ENTRYPOINT ["/usr/local/bin/zgate-relay"]
CMD ["--config", "/etc/zgate/zgate-relay.yaml"]
