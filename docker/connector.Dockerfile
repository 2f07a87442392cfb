# zgate-connector image: the connector binary and the shared libraries it
# loads, nothing else (no shell, no package manager), running as uid/gid
# 65532.
#
#   docker build -f docker/connector.Dockerfile -t zgate-connector .   (from the repository root)
#
# Run it inside the network it serves. It dials out to the relays (QUIC over
# UDP) and reaches the prefixes it serves with ordinary sockets: no
# capability, no TUN, no root, no inbound port; it works with a read-only
# root file system. Mount:
#   /etc/zgate/zgate-connector.yaml    the configuration (examples/zgate-connector.yaml)
#   /etc/zgate/connector-policy.yaml   what each agent may reach (examples/connector-policy.yaml)
#   /etc/zgate/tls/                    its certificate (CN connector:ID:
#                                      scripts/gen-certs.sh --connector ID), key, ca.crt
# Port: 9201/tcp (/health, /ready, /metrics) when ops_listen is set to the
# container's address. There is no HEALTHCHECK: the image has no program to
# run one with; probe /health and /ready from the orchestrator
# (docker/compose.yaml, helm/zgate-connector). ICMP echo to on-prem hosts
# needs the ping sockets sysctl net.ipv4.ping_group_range to include gid
# 65532 (namespaced, safe).

# ---- build: the same commands CI runs (.ci/run → make), on Debian 12.
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends make ca-certificates
WORKDIR /src
# Dependencies first, so that editing src/ does not rebuild them.
COPY Makefile ./
COPY scripts/ scripts/
COPY third_party/ third_party/
RUN make deps
COPY src/ src/
RUN make all
COPY docker/rootfs.sh docker/
RUN docker/rootfs.sh /out build/bin/zgate-connector

# ---- runtime: only what rootfs.sh staged.
FROM scratch
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 9201/tcp
ENTRYPOINT ["/usr/local/bin/zgate-connector"]
CMD ["--config", "/etc/zgate/zgate-connector.yaml"]
