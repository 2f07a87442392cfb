#!/usr/bin/env bash
# Issue 16.6: with a policy that allows 0.0.0.0/0 and ::/0, the cloud
# metadata addresses outside link-local (100.100.100.200, fd00:ec2::254),
# NAT64 addresses embedding a forbidden IPv4 (64:ff9b::/96), IPv4-compatible
# ::a.b.c.d, a configured extra prefix ("forbidden", e.g. Kubernetes
# Services) and an address the relay's host gains after start are refused
# at once (ICMP administratively prohibited) and audited with the reason;
# an allowed neighbour still works.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/topo.sh"
PROBE=$ZG_BIN/zgate-probe
[[ -x $PROBE ]] || fail "zgate-probe must be built"
topo_init 1
topo_pki agent-1
cat >"$D/policy.yaml" <<P
version: 1
default_action: deny
clients:
  agent-1:
    rules:
      - id: everything
        action: allow
        destinations: ["0.0.0.0/0", "::/0"]
P
cat >"$D/relay.yaml" <<C
listen: "0.0.0.0:4433"
ops_listen: "127.0.0.1:8080"
tls: { cert: $D/pki/relay.crt, key: $D/pki/relay.key, client_ca: $D/pki/ca.crt }
uri_template: "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
policy: $D/policy.yaml
pool: { ipv4: 10.100.0.0/24, ipv6: "fd00:100::/64" }
forbidden: [10.96.0.0/12, "fd00:10:96::/112"]
C
topo_relay

probe() { # TARGET: one echo request through a fresh tunnel; prints what came back
	inc 1 "$PROBE" --relay 192.168.81.1:4433 --server-name relay.test \
		--cert "$D/pki/agent-1.crt" --key "$D/pki/agent-1.key" --ca "$D/pki/ca.crt" \
		--target "$1" --count 1 --timeout 1 --min-replies 0 2>&1 || true
}

refused() { # TARGET AUDIT_DST
	local out
	out=$(probe "$1")
	if [[ $1 == *:* ]]; then
		expect_contains "$out" "ICMPv6 type 1 code 1" "$1"
	else
		expect_contains "$out" "ICMP type 3 code 13" "$1"
	fi
	grep -q "\"event\":\"flow_deny\".*\"dst\":\"$2\".*\"reason\":\"forbidden-destination\"" \
		"$D/audit.log" || fail "refusal of $1 not audited (dst $2)"
}

step "an allowed neighbour works"
out=$(probe 198.18.0.10)
expect_contains "$out" "1 received" "ping 198.18.0.10"

step "cloud metadata outside link-local: refused, audited"
refused 100.100.100.200 100.100.100.200
refused fd00:ec2::254 fd00:ec2::254

step "NAT64 with a forbidden IPv4 inside, IPv4-compatible: refused, audited"
refused 64:ff9b::a9fe:a9fe 64:ff9b::a9fe:a9fe   # 169.254.169.254
refused 64:ff9b::7f00:1 64:ff9b::7f00:1         # 127.0.0.1
refused 64:ff9b::c612:1 64:ff9b::c612:1         # 198.18.0.1, the relay's own
refused ::a9fe:a9fe ::169.254.169.254

step "configured extra prefixes (forbidden: ...): refused, audited"
refused 10.96.0.10 10.96.0.10
refused fd00:10:96::1 fd00:10:96::1
refused 64:ff9b::a60:a 64:ff9b::a60:a           # 10.96.0.10 through NAT64

step "an address the relay's host gains after start: refused within a second"
ip -n "$R" addr add 198.18.0.99/24 dev "${T}rs"
sleep 1
refused 198.18.0.99 198.18.0.99
n=$(grep -c '"reason":"forbidden-destination"' "$D/audit.log")
[[ $n -ge 10 ]] || fail "expected at least 10 forbidden-destination audit lines, got $n"
grep -q "own addresses are forbidden destinations" "$D/relay.log" || fail "address refresh not logged"
pass
