# One-shot certificate generation for docker/compose.yaml: runs
# scripts/gen-certs.sh as uid 65532 into /pki. A named volume mounted there
# starts out owned by 65532 (it copies the image's directory), so the relay
# and the agents, which run as 65532 too, can read the 0600 keys.
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /pki && chown 65532:65532 /pki
COPY scripts/gen-certs.sh /usr/local/bin/gen-certs.sh
USER 65532:65532
WORKDIR /pki
ENTRYPOINT ["/usr/local/bin/gen-certs.sh", "-d", "/pki"]
CMD ["-s", "relay", "-s", "localhost", "-s", "127.0.0.1", "-c", "agent-1", "-c", "agent-2"]
