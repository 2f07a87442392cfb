# zgate-agent image: the agent binary on Debian 12 slim, running as uid/gid
# 65532 with one file capability, CAP_NET_ADMIN (to create its TUN device
# and set addresses and routes in the container's own network namespace).
#
#   docker build -f docker/agent.Dockerfile -t zgate-agent .     (from the repository root)
#   docker run --cap-drop ALL --cap-add NET_ADMIN --device /dev/net/tun \
#       -v "$PWD/pki:/etc/zgate/tls:ro" zgate-agent ...
#
# Needs, and only needs:
#   --cap-add NET_ADMIN        the capability bounding set must hold it, or
#                              the kernel refuses to run the binary
#   --device /dev/net/tun      the TUN clone device
# Never run it --privileged. no-new-privileges cannot be set for this
# container: it would stop the kernel from granting the file capability,
# and the agent would then refuse to start (no CAP_NET_ADMIN).
# Mount its client certificate and key (scripts/gen-certs.sh -c ID) and the
# CA that signed the relay's certificate under /etc/zgate/tls.

# ---- build: the same commands CI runs (.ci/run → make), on Debian 12.
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends make ca-certificates
WORKDIR /src
COPY Makefile ./
COPY scripts/ scripts/
COPY third_party/ third_party/
RUN make deps
COPY src/ src/
RUN make all \
 && install -D -m 0755 build/bin/zgate-agent /out/zgate-agent \
 && strip --strip-unneeded /out/zgate-agent

# ---- runtime: Debian 12 slim with the shared libraries the agent loads
# (libevent, libyaml, libmnl; the rest is in the C library). The file
# capability is set here, in the final stage, because not every builder
# keeps extended attributes across COPY --from.
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/zgate-agent /usr/local/bin/zgate-agent
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends libevent-2.1-7 libyaml-0-2 libmnl0 libcap2-bin \
 && setcap cap_net_admin=ep /usr/local/bin/zgate-agent \
 && apt-get purge -y -q libcap2-bin \
 && apt-get autoremove -y -q \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 65532 nonroot \
 && useradd -u 65532 -g 65532 -d /nonexistent -s /usr/sbin/nologin -M nonroot \
 && mkdir -p /etc/zgate/tls
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/zgate-agent"]
