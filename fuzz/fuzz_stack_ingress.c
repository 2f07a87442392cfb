/*
 * fuzz_stack_ingress — arbitrary packets from a tunnel into src/stack.
 *
 * Input: one flags byte, then the packet. Flags bit 0: force the source to
 * the client's address (past the C18 check); bit 1: fix up the IPv4 header
 * checksum and the TCP/UDP/ICMP checksum (past the malformed-drop); bit 2:
 * also run the stack's timers an hour later (expires every flow).
 * The policy allows only TCP/UDP to 127.0.0.1 port 9 (nothing listens there,
 * so no byte leaves the machine) and denies everything else.
 * Properties checked on every packet the stack emits: it parses, its
 * checksums are right, and it goes to the client's own address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pkt.h"
#include "stack.h"

static struct event_base *base;
static struct stack *st;
static struct stack_client client;
static uint64_t now_ms = 1000000;

static uint64_t
fake_clock(void *ctx)
{
	(void)ctx;
	return now_ms;
}

static void
out_cb(void *ctx, const struct stack_addr *dst, const uint8_t *pkt, size_t len)
{
	struct pkt_info pi;
	const struct stack_addr *vip;

	(void)ctx;
	if (pkt_parse(pkt, len, 1, &pi) != 0)
		abort(); /* the stack emitted something malformed */
	vip = pi.version == 4 ? &client.vip4 : &client.vip6;
	if (!stack_addr_eq(&pi.dst, vip) || !stack_addr_eq(dst, vip))
		abort(); /* a packet toward someone else's tunnel */
}

static enum stack_verdict
policy_cb(void *ctx, const struct stack_flow_info *fi, const char **prule)
{
	(void)ctx;
	*prule = "fuzz";
	if (fi->dst.version == 4 && fi->dst.a[0] == 127 && fi->dst.a[1] == 0 &&
	    fi->dst.a[2] == 0 && fi->dst.a[3] == 1 && fi->dport == 9 &&
	    (fi->proto == STACK_PROTO_TCP || fi->proto == STACK_PROTO_UDP))
		return STACK_ALLOW;
	return STACK_DENY;
}

static void
init(void)
{
	static struct stack_prefix exempt;
	struct stack_config cfg;
	struct stack_callbacks cb = { out_cb, policy_cb, NULL, fake_clock };

	base = event_base_new();
	stack_config_defaults(&cfg);
	exempt.addr.version = 4;
	exempt.addr.a[0] = 127;
	exempt.len = 8;
	cfg.exempt = &exempt;
	cfg.n_exempt = 1;
	cfg.icmp_errors_per_s = 0; /* unlimited: exercise every builder */
	if (base == NULL || stack_new(base, &cfg, &cb, NULL, &st) != 0)
		abort();
	client.id = "fuzz-client";
	client.vip4.version = 4;
	client.vip4.a[0] = 10;
	client.vip4.a[1] = 100;
	client.vip4.a[3] = 7;
	client.vip6.version = 6;
	client.vip6.a[0] = 0xfd;
	client.vip6.a[2] = 0x01;
	client.vip6.a[15] = 7;
}

static void
put_csum(uint8_t *p, size_t off, uint16_t c)
{
	p[off] = (uint8_t)(c >> 8);
	p[off + 1] = (uint8_t)c;
}

static void
fixup(uint8_t *p, size_t len, int set_src)
{
	struct stack_addr src, dst;
	size_t ihl, tot, l4off, l4len, coff;
	uint8_t proto;
	uint32_t sum;

	if (len < 1)
		return;
	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	if ((p[0] >> 4) == 4 && len >= 20) {
		ihl = (size_t)(p[0] & 15) * 4;
		tot = (size_t)(p[2] << 8 | p[3]);
		if (ihl < 20 || ihl > len)
			return;
		if (set_src)
			memcpy(p + 12, client.vip4.a, 4);
		put_csum(p, 10, 0);
		put_csum(p, 10, cksum_fold(cksum_add(0, p, ihl)));
		if (tot < ihl || tot > len)
			return;
		src.version = dst.version = 4;
		memcpy(src.a, p + 12, 4);
		memcpy(dst.a, p + 16, 4);
		proto = p[9];
		l4off = ihl;
		l4len = tot - ihl;
	} else if ((p[0] >> 4) == 6 && len >= 40) {
		if (set_src)
			memcpy(p + 8, client.vip6.a, 16);
		tot = 40 + (size_t)(p[4] << 8 | p[5]);
		if (tot > len)
			return;
		src.version = dst.version = 6;
		memcpy(src.a, p + 8, 16);
		memcpy(dst.a, p + 24, 16);
		proto = p[6];
		l4off = 40;
		l4len = tot - 40;
	} else {
		return;
	}
	if (proto == STACK_PROTO_TCP && l4len >= 20)
		coff = 16;
	else if (proto == STACK_PROTO_UDP && l4len >= 8)
		coff = 6;
	else if ((proto == STACK_PROTO_ICMP || proto == STACK_PROTO_ICMPV6) &&
		 l4len >= 8)
		coff = 2;
	else
		return;
	if (proto == STACK_PROTO_UDP) {
		size_t ulen = (size_t)(p[l4off + 4] << 8 | p[l4off + 5]);

		if (ulen >= 8 && ulen <= l4len)
			l4len = ulen;
	}
	put_csum(p, l4off + coff, 0);
	sum = proto == STACK_PROTO_ICMP ? 0 : pkt_csum_pseudo(&src, &dst, proto, l4len);
	put_csum(p, l4off + coff, cksum_fold(cksum_add(sum, p + l4off, l4len)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pkt[65536];
	uint8_t flags;
	size_t len;

	if (st == NULL)
		init();
	if (size < 1)
		return 0;
	flags = data[0];
	len = size - 1 < sizeof(pkt) ? size - 1 : sizeof(pkt);
	memcpy(pkt, data + 1, len);
	if (flags & 2)
		fixup(pkt, len, flags & 1);
	else if ((flags & 1) && len >= 20 && (pkt[0] >> 4) == 4)
		memcpy(pkt + 12, client.vip4.a, 4);
	else if ((flags & 1) && len >= 40 && (pkt[0] >> 4) == 6)
		memcpy(pkt + 8, client.vip6.a, 16);

	if (stack_input(st, NULL, &client, pkt, len) != 0)
		abort();
	event_base_loop(base, EVLOOP_NONBLOCK);
	now_ms += 10;
	if (flags & 4) {
		now_ms += 3600 * 1000;
		stack_tick(st);
	}
	return 0;
}
