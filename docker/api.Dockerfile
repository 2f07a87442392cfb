# zgate-api image: the shared address pool of several relays (over
# PostgreSQL), the binary and the shared libraries it loads, nothing else
# (no shell, no package manager), running as uid/gid 65532.
#
#   docker build -f docker/api.Dockerfile -t zgate-api .     (from the repository root)
#
# zgate-api needs no capability and no writable file; it works with a
# read-only root file system. Mount:
#   /etc/zgate/zgate-api.yaml     the configuration (examples/zgate-api.yaml)
#   /etc/zgate/tls/               api.crt, api.key, ca.crt (scripts/gen-certs.sh --api NAME)
# and give the database as ZGATE_DATABASE (a libpq connection string or
# postgresql:// URI) from a secret, not in the file. It applies its schema
# migrations at start (under an advisory lock: replicas may start together).
# Port: 8443/tcp, HTTPS with client certificates; GET /health (alive) and
# GET /ready (200 when the database answers) need none. There is no
# HEALTHCHECK: the image has no program to run one with; probe those from
# the orchestrator (docker/compose.yaml, helm/zgate-api).

# ---- build: the same commands CI runs (.ci/run → make), on Debian 12.
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends make ca-certificates
WORKDIR /src
# Dependencies first, so that editing src/ does not rebuild them: `make deps`
# installs the Debian packages the Makefile lists (libpq, libmicrohttpd and
# GnuTLS among them) and builds the source-built dependencies.
COPY Makefile ./
COPY scripts/ scripts/
COPY third_party/ third_party/
RUN make deps
COPY src/ src/
RUN make all
COPY docker/rootfs.sh docker/
RUN docker/rootfs.sh /out build/bin/zgate-api

# ---- runtime: only what rootfs.sh staged.
FROM scratch
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 8443/tcp
ENTRYPOINT ["/usr/local/bin/zgate-api"]
CMD ["--config", "/etc/zgate/zgate-api.yaml"]
