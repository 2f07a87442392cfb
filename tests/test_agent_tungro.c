/* Unit tests for src/agent/tungro: coalescing TCP segments into GSO
 * writes for the TUN device. Each coalesced item is checked the way the
 * kernel would use it: splitting it at gso_size with the first segment's
 * headers must give back the original segments' payloads in order, and
 * completing the partial checksum must give a valid TCP checksum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "be.h"
#include "agent/tungro.h"
#include "cksum.h"
#include "zg_err.h"

struct segspec {
	int v6;
	uint16_t sport;
	uint32_t seq, ack;
	uint8_t flags;
	size_t payload;
	uint16_t window;
	uint8_t ttl;
};

/* A TCP segment with a valid checksum; payload bytes derive from seq. */
static size_t seg(uint8_t *p, const struct segspec *s)
{
	size_t hl = s->v6 ? 40 : 20, len = hl + 20 + s->payload;
	uint8_t *t = p + hl;
	uint32_t sum;

	memset(p, 0, len);
	if (s->v6) {
		p[0] = 0x60;
		be16_put(p + 4, (uint16_t)(20 + s->payload));
		p[6] = 6;
		p[7] = s->ttl ? s->ttl : 64;
		inet_pton(AF_INET6, "fd00::2", p + 8);
		inet_pton(AF_INET6, "fd00:100::7", p + 24);
		sum = cksum_add(0, p + 8, 32);
	} else {
		p[0] = 0x45;
		be16_put(p + 2, (uint16_t)len);
		be16_put(p + 4, (uint16_t)(s->seq & 0xffff)); /* IDs differ */
		p[6] = 0x40;                                  /* DF */
		p[8] = s->ttl ? s->ttl : 64;
		p[9] = 6;
		inet_pton(AF_INET, "198.18.0.10", p + 12);
		inet_pton(AF_INET, "10.100.0.7", p + 16);
		be16_put(p + 10, cksum_fold(cksum_add(0, p, 20)));
		sum = cksum_add(0, p + 12, 8);
	}
	be16_put(t, s->sport ? s->sport : 443);
	be16_put(t + 2, 50000);
	be32_put(t + 4, s->seq);
	be32_put(t + 8, s->ack ? s->ack : 777);
	t[12] = 5 << 4;
	t[13] = s->flags ? s->flags : 0x10;
	be16_put(t + 14, s->window ? s->window : 1000);
	for (size_t i = 0; i < s->payload; i++)
		t[20 + i] = (uint8_t)((s->seq + i) * 31 + 7);
	sum += 6 + (uint32_t)(20 + s->payload);
	be16_put(t + 16, cksum_fold(cksum_add(sum, t, 20 + s->payload)));
	return len;
}

struct vnet {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset;
};

static struct vnet vnet_of(const uint8_t *item)
{
	struct vnet v;
	uint16_t f[4];

	v.flags = item[0];
	v.gso_type = item[1];
	memcpy(f, item + 2, sizeof(f));
	v.hdr_len = f[0];
	v.gso_size = f[1];
	v.csum_start = f[2];
	v.csum_offset = f[3];
	return v;
}

/* Checks a coalesced item: lengths, IPv4 header checksum, the partial TCP
 * checksum completing to a valid one, and the payload equal to the
 * segments starting at seq0 with total payload bytes. */
static void check_gso(const uint8_t *item, size_t len, int v6, uint32_t seq0, size_t total,
		      size_t gso)
{
	struct vnet v = vnet_of(item);
	const uint8_t *p = item + TUNGRO_VNET_LEN;
	size_t hl = v6 ? 40 : 20, iplen = len - TUNGRO_VNET_LEN;
	const uint8_t *t = p + hl;
	uint32_t sum;

	assert_int_equal(v.flags, TUNGRO_F_NEEDS_CSUM);
	assert_int_equal(v.gso_type, v6 ? TUNGRO_GSO_TCPV6 : TUNGRO_GSO_TCPV4);
	assert_int_equal(v.hdr_len, hl + 20);
	assert_int_equal(v.gso_size, gso);
	assert_int_equal(v.csum_start, hl);
	assert_int_equal(v.csum_offset, 16);
	assert_int_equal(iplen, hl + 20 + total);
	if (v6) {
		assert_int_equal(be16_get(p + 4), 20 + total);
	} else {
		assert_int_equal(be16_get(p + 2), iplen);
		assert_int_equal(cksum_fold(cksum_add(0, p, 20)), 0);
	}
	assert_int_equal(((uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7]),
			 seq0);
	for (size_t i = 0; i < total; i++)
		assert_int_equal(t[20 + i], (uint8_t)((seq0 + i) * 31 + 7));
	/* what the kernel does for CHECKSUM_PARTIAL: sum from csum_start
	 * (the field holding the pseudo-header sum) and complement */
	sum = cksum_add(0, t, 20 + total);
	{
		uint8_t tmp[2];

		be16_put(tmp, cksum_fold(sum));
		/* then the segment's checksum verifies against the pseudo header */
		uint8_t copy[65536];

		memcpy(copy, t, 20 + total);
		copy[16] = tmp[0];
		copy[17] = tmp[1];
		sum = v6 ? cksum_add(0, p + 8, 32) : cksum_add(0, p + 12, 8);
		sum += 6 + (uint32_t)(20 + total);
		assert_int_equal(cksum_fold(cksum_add(sum, copy, 20 + total)), 0);
	}
}

static uint8_t pkt[70000];

static void add_seg(struct tungro *g, const struct segspec *s)
{
	size_t n = seg(pkt, s);

	assert_int_equal(tungro_add(g, pkt, n), 0);
}

static void test_consecutive_segments_become_one_gso_write(void **state)
{
	struct tungro *g = tungro_new();
	size_t len;
	unsigned nseg;
	const uint8_t *it;

	(void)state;
	for (int v6 = 0; v6 <= 1; v6++) {
		tungro_reset(g);
		for (uint32_t i = 0; i < 10; i++) {
			struct segspec s = { .v6 = v6, .seq = 1000 + i * 1240, .payload = 1240, .flags = i == 9 ? 0x18 : 0x10 };
			add_seg(g, &s);
		}
		assert_int_equal(tungro_count(g), 1);
		it = tungro_item(g, 0, &len, &nseg);
		assert_int_equal(nseg, 10);
		check_gso(it, len, v6, 1000, 12400, 1240);
		/* PSH of the last segment is kept */
		assert_int_equal(it[TUNGRO_VNET_LEN + (v6 ? 40 : 20) + 13], 0x18);
	}
	tungro_free(g);
}

static void test_single_packets_pass_unchanged(void **state)
{
	struct tungro *g = tungro_new();
	struct segspec s = { .seq = 5, .payload = 100 };
	size_t n = seg(pkt, &s), len;
	uint8_t copy[200];
	unsigned nseg;
	const uint8_t *it;
	static const uint8_t zero[TUNGRO_VNET_LEN];

	(void)state;
	memcpy(copy, pkt, n);
	assert_int_equal(tungro_add(g, pkt, n), 0);
	assert_int_equal(tungro_count(g), 1);
	it = tungro_item(g, 0, &len, &nseg);
	assert_int_equal(nseg, 1);
	assert_int_equal(len, TUNGRO_VNET_LEN + n);
	assert_memory_equal(it, zero, TUNGRO_VNET_LEN);
	assert_memory_equal(it + TUNGRO_VNET_LEN, copy, n);
	tungro_free(g);
}

static void test_what_must_not_merge(void **state)
{
	struct tungro *g = tungro_new();
	size_t len;
	unsigned nseg;

	(void)state;
	/* a gap in sequence, a different ACK, window, TTL: new items */
	{
		struct segspec a = { .seq = 0, .payload = 500 };
		struct segspec gap = { .seq = 600, .payload = 500 };
		struct segspec ack = { .seq = 1100, .payload = 500, .ack = 999 };
		struct segspec win = { .seq = 1600, .payload = 500, .ack = 999, .window = 7 };
		struct segspec ttl = { .seq = 2100, .payload = 500, .ack = 999, .window = 7, .ttl = 9 };

		add_seg(g, &a);
		add_seg(g, &gap);
		add_seg(g, &ack);
		add_seg(g, &win);
		add_seg(g, &ttl);
		assert_int_equal(tungro_count(g), 5);
	}
	/* SYN, FIN, pure ACK, RST, a shorter segment then a full one */
	tungro_reset(g);
	{
		struct segspec a = { .seq = 0, .payload = 500 };
		struct segspec fin = { .seq = 500, .payload = 500, .flags = 0x11 };
		struct segspec after = { .seq = 1000, .payload = 500 };
		struct segspec pure = { .seq = 1500, .payload = 0 };
		struct segspec b = { .seq = 1500, .payload = 500 };
		struct segspec shortseg = { .seq = 2000, .payload = 100 };
		struct segspec full = { .seq = 2100, .payload = 500 };

		add_seg(g, &a);
		add_seg(g, &fin);   /* closes the flow's item */
		add_seg(g, &after); /* may not jump ahead of the FIN */
		add_seg(g, &pure);
		add_seg(g, &b);
		add_seg(g, &shortseg); /* joins b, as its last */
		add_seg(g, &full);     /* b is closed: a new item */
		assert_int_equal(tungro_count(g), 6);
		const uint8_t *it = tungro_item(g, 4, &len, &nseg);

		assert_int_equal(nseg, 2);
		check_gso(it, len, 0, 1500, 600, 500);
	}
	/* UDP and a larger segment than the first: passed through */
	tungro_reset(g);
	{
		struct segspec a = { .seq = 0, .payload = 500 };
		struct segspec big = { .seq = 500, .payload = 600 };
		size_t n = seg(pkt, &a);

		assert_int_equal(tungro_add(g, pkt, n), 0);
		pkt[9] = 17; /* UDP now */
		assert_int_equal(tungro_add(g, pkt, n), 0);
		add_seg(g, &big);
		assert_int_equal(tungro_count(g), 3);
	}
	tungro_free(g);
}

/* A segment with a bad TCP or IPv4 header checksum, or other reserved/AE
 * bits, is never merged (the kernel trusts a merged item's checksum: a
 * damaged segment inside one would reach the user's stream); it passes
 * alone, in its place, and the flow goes on after it. The bytes of an
 * item are those of the packets that made it. */
static void test_damaged_or_odd_segments_stay_alone(void **state)
{
	struct tungro *g = tungro_new();
	size_t len, n, total = 0;
	unsigned nseg;
	static uint8_t cp[2000];

	(void)state;
	for (int v6 = 0; v6 <= 1; v6++) {
		for (int kind = 0; kind < 4; kind++) {
			struct segspec a = { .v6 = v6, .seq = 0, .payload = 500 };
			struct segspec b = { .v6 = v6, .seq = 500, .payload = 500 };
			struct segspec c = { .v6 = v6, .seq = 1000, .payload = 500 };
			struct segspec d = { .v6 = v6, .seq = 1500, .payload = 500 };
			size_t hl = v6 ? 40 : 20;

			if (v6 && kind == 2)
				continue; /* no IPv6 header checksum */
			tungro_reset(g);
			add_seg(g, &a);
			add_seg(g, &b);
			n = seg(pkt, &c);
			if (kind == 0)
				pkt[n - 1] ^= 0x01; /* a payload bit */
			else if (kind == 1)
				pkt[hl + 16] ^= 0x80; /* the TCP checksum itself */
			else if (kind == 2)
				pkt[8] = 63; /* the TTL, header checksum not updated */
			else
				pkt[hl + 12] |= 0x01; /* AE: checksum fixed below */
			if (kind == 3) {
				uint32_t sum = v6 ? cksum_add(0, pkt + 8, 32) : cksum_add(0, pkt + 12, 8);
				pkt[hl + 16] = pkt[hl + 17] = 0;
				sum += 6 + (uint32_t)(n - hl);
				be16_put(pkt + hl + 16, cksum_fold(cksum_add(sum, pkt + hl, n - hl)));
			}
			assert_int_equal(tungro_add(g, pkt, n), 0);
			memcpy(cp, pkt, n);
			add_seg(g, &d);
			/* a+b merged; c alone and as it came; d after it */
			assert_int_equal(tungro_count(g), 3);
			const uint8_t *it = tungro_item(g, 0, &len, &nseg);
			assert_int_equal(nseg, 2);
			check_gso(it, len, v6, 0, 1000, 500);
			assert_int_equal(tungro_item_bytes(g, 0), 2 * (hl + 20 + 500));
			it = tungro_item(g, 1, &len, &nseg);
			assert_int_equal(nseg, 1);
			assert_int_equal(len, TUNGRO_VNET_LEN + n);
			assert_memory_equal(it + TUNGRO_VNET_LEN, cp, n);
			assert_int_equal(tungro_item_bytes(g, 1), n);
			total++;
		}
	}
	assert_int_equal(total, 7);
	tungro_free(g);
}

/* The next segment in sequence with another TOS, DF bit, IPv6 traffic
 * class or flow label (headers otherwise equal, checksums valid) starts
 * an item of its own. */
static void test_ip_header_fields_must_match(void **state)
{
	struct tungro *g = tungro_new();

	(void)state;
	for (int k = 0; k < 4; k++) {
		int v6 = k >= 2;
		struct segspec a = { .v6 = v6, .seq = 0, .payload = 500 };
		struct segspec b = { .v6 = v6, .seq = 500, .payload = 500 };
		size_t n;

		tungro_reset(g);
		add_seg(g, &a);
		n = seg(pkt, &b);
		if (k == 0)
			pkt[1] = 0x10; /* TOS */
		else if (k == 1)
			pkt[6] = 0; /* DF off */
		else if (k == 2)
			pkt[1] = 0x80; /* traffic class, low bits (header checksum: none) */
		else
			pkt[3] = 0x42; /* flow label */
		if (!v6) {
			pkt[10] = pkt[11] = 0;
			be16_put(pkt + 10, cksum_fold(cksum_add(0, pkt, 20)));
		}
		assert_int_equal(tungro_add(g, pkt, n), 0);
		assert_int_equal(tungro_count(g), 2);
		/* while the same again joins */
		tungro_reset(g);
		add_seg(g, &a);
		add_seg(g, &b);
		assert_int_equal(tungro_count(g), 1);
	}
	tungro_free(g);
}

static void test_interleaved_flows_each_coalesce(void **state)
{
	struct tungro *g = tungro_new();
	size_t len;
	unsigned nseg;

	(void)state;
	for (uint32_t i = 0; i < 6; i++) {
		struct segspec a = { .sport = 1001, .seq = 100 + i * 1000, .payload = 1000 };
		struct segspec b = { .sport = 1002, .seq = 9000 + i * 1000, .payload = 1000 };
		struct segspec c = { .v6 = 1, .sport = 1001, .seq = 100 + i * 1000, .payload = 1000 };

		add_seg(g, &a);
		add_seg(g, &b);
		add_seg(g, &c);
	}
	assert_int_equal(tungro_count(g), 3);
	for (size_t i = 0; i < 3; i++) {
		const uint8_t *it = tungro_item(g, i, &len, &nseg);

		assert_int_equal(nseg, 6);
		check_gso(it, len, i == 2, i == 1 ? 9000 : 100, 6000, 1000);
	}
	tungro_free(g);
}

static void test_limits(void **state)
{
	struct tungro *g = tungro_new();
	size_t len, total = 0;
	unsigned nseg, segs = 0;
	uint32_t seq = 0;
	int items = 0;

	(void)state;
	/* at most 64 segments and 65535 bytes per item */
	for (int i = 0; i < 200; i++) {
		struct segspec s = { .seq = seq, .payload = 1400 };

		add_seg(g, &s);
		seq += 1400;
	}
	items = (int)tungro_count(g);
	assert_true(items >= 5);
	for (int i = 0; i < items; i++) {
		const uint8_t *it = tungro_item(g, (size_t)i, &len, &nseg);

		assert_true(len - TUNGRO_VNET_LEN <= 65535);
		assert_true(nseg <= TUNGRO_SEGS);
		if (nseg > 1)
			check_gso(it, len, 0, (uint32_t)total, nseg * 1400u, 1400);
		total += nseg * 1400u;
		segs += nseg;
	}
	assert_int_equal(segs, 200);
	/* a full batch says so; after a reset it takes packets again */
	tungro_reset(g);
	{
		int r = 0, n = 0;

		while (r == 0 && n < 1000) {
			struct segspec s = { .sport = (uint16_t)(1000 + n), .seq = 1, .payload = 100 };
			size_t l = seg(pkt, &s);

			r = tungro_add(g, pkt, l);
			n++;
		}
		assert_int_equal(r, ZG_ERR_LIMIT);
		assert_true(n > 16);
	}
	tungro_reset(g);
	assert_int_equal(tungro_count(g), 0);
	{
		struct segspec s = { .seq = 1, .payload = 100 };

		add_seg(g, &s);
	}
	assert_int_equal(tungro_add(g, pkt, 0), ZG_ERR_INVAL);
	assert_int_equal(tungro_add(g, pkt, 65536), ZG_ERR_INVAL);
	tungro_free(g);
}

static void test_malformed_pass_through(void **state)
{
	struct tungro *g = tungro_new();
	struct segspec s = { .seq = 1, .payload = 100 };
	size_t n = seg(pkt, &s);

	(void)state;
	/* truncated TCP header, a data offset beyond the packet, a bad
	 * total length: each its own item, never merged */
	assert_int_equal(tungro_add(g, pkt, 30), 0);
	pkt[20 + 12] = 0xf0;
	assert_int_equal(tungro_add(g, pkt, n), 0);
	n = seg(pkt, &s);
	be16_put(pkt + 2, 9999);
	assert_int_equal(tungro_add(g, pkt, n), 0);
	assert_int_equal(tungro_add(g, pkt, n), 0);
	assert_int_equal(tungro_count(g), 4);
	tungro_free(g);
}

struct collected {
	uint8_t pk[80][1600];
	size_t len[80];
	int n;
};

static void collect(const uint8_t *p, size_t len, void *arg)
{
	struct collected *c = arg;

	assert_true(c->n < 80 && len <= sizeof(c->pk[0]));
	memcpy(c->pk[c->n], p, len);
	c->len[c->n++] = len;
}

static uint8_t rd[TUNGRO_VNET_LEN + 70000], out[70000];

/* A read as the kernel gives it with TSO: one header segment carrying
 * total payload bytes, gso_size set, checksum partial. */
static size_t gso_read(int v6, uint32_t seq, size_t total, uint16_t gso, uint8_t tcpflags)
{
	struct segspec s = { .v6 = v6, .seq = seq, .payload = total, .flags = tcpflags };
	size_t n = seg(rd + TUNGRO_VNET_LEN, &s);
	uint16_t f[4] = { (uint16_t)((v6 ? 40 : 20) + 20), gso, (uint16_t)(v6 ? 40 : 20), 16 };

	rd[0] = TUNGRO_F_NEEDS_CSUM;
	rd[1] = v6 ? TUNGRO_GSO_TCPV6 : TUNGRO_GSO_TCPV4;
	memcpy(rd + 2, f, sizeof(f));
	return TUNGRO_VNET_LEN + n;
}

/* Each output is a valid packet: IPv4 header checksum, TCP checksum over
 * the pseudo header, lengths. */
static void check_valid(const uint8_t *p, size_t len, int v6)
{
	size_t hl = v6 ? 40 : 20;
	uint32_t sum;

	if (v6) {
		assert_int_equal(be16_get(p + 4) + 40u, len);
		sum = cksum_add(0, p + 8, 32);
	} else {
		assert_int_equal(be16_get(p + 2), len);
		assert_int_equal(cksum_fold(cksum_add(0, p, 20)), 0);
		sum = cksum_add(0, p + 12, 8);
	}
	sum += 6 + (uint32_t)(len - hl);
	assert_int_equal(cksum_fold(cksum_add(sum, p + hl, len - hl)), 0);
}

static void test_split_tso_reads(void **state)
{
	static struct collected c;
	struct tungro *g = tungro_new();

	(void)state;
	for (int v6 = 0; v6 <= 1; v6++) {
		/* CWR ACK PSH FIN: CWR on the first segment only, PSH and FIN
		 * on the last only */
		size_t n = gso_read(v6, 70000, 10 * 1370 + 500, 1370, 0x99);
		size_t hl = v6 ? 40 : 20, len;
		unsigned nseg;

		memset(&c, 0, sizeof(c));
		assert_int_equal(tungro_split(rd, n, out, sizeof(out), collect, &c), 11);
		assert_int_equal(c.n, 11);
		for (int i = 0; i < c.n; i++) {
			const uint8_t *t = c.pk[i] + hl;
			size_t pay = i < 10 ? 1370 : 500;
			uint32_t sq = 70000 + (uint32_t)i * 1370;

			check_valid(c.pk[i], c.len[i], v6);
			assert_int_equal(c.len[i], hl + 20 + pay);
			assert_int_equal(((uint32_t)be16_get(t + 4) << 16 | be16_get(t + 6)), sq);
			assert_int_equal(t[13], i == 0 ? 0x90 : i < 10 ? 0x10
								       : 0x19);
			for (size_t k = 0; k < pay; k++)
				assert_int_equal(t[20 + k], (uint8_t)((sq + k) * 31 + 7));
			if (!v6)
				assert_int_equal(be16_get(c.pk[i] + 4), (uint16_t)(70000 + i));
		}
		/* and back: the segments but the CWR and the FIN ones
		 * coalesce again */
		tungro_reset(g);
		for (int i = 0; i < 10; i++)
			assert_int_equal(tungro_add(g, c.pk[i], c.len[i]), 0);
		assert_int_equal(tungro_count(g), 2);
		{
			const uint8_t *it = tungro_item(g, 1, &len, &nseg);

			assert_int_equal(nseg, 9);
			check_gso(it, len, v6, 70000 + 1370, 9 * 1370, 1370);
		}
	}
	tungro_free(g);
}

static void test_split_partial_checksum_and_errors(void **state)
{
	static struct collected c;
	struct segspec s = { .seq = 9, .payload = 300 };
	size_t n = seg(rd + TUNGRO_VNET_LEN, &s);
	uint16_t f[4] = { 0, 0, 20, 16 };
	uint32_t sum;

	(void)state;
	/* a plain packet passes as it is */
	memset(rd, 0, TUNGRO_VNET_LEN);
	memset(&c, 0, sizeof(c));
	assert_int_equal(tungro_split(rd, TUNGRO_VNET_LEN + n, out, sizeof(out), collect, &c), 1);
	assert_int_equal(c.len[0], n);
	assert_memory_equal(c.pk[0], rd + TUNGRO_VNET_LEN, n);
	/* a partial checksum (pseudo-header sum in the field) is completed */
	sum = cksum_add(0, rd + TUNGRO_VNET_LEN + 12, 8) + 6 + 320;
	be16_put(rd + TUNGRO_VNET_LEN + 36, (uint16_t)~cksum_fold(sum));
	rd[0] = TUNGRO_F_NEEDS_CSUM;
	memcpy(rd + 2, f, sizeof(f));
	memset(&c, 0, sizeof(c));
	assert_int_equal(tungro_split(rd, TUNGRO_VNET_LEN + n, out, sizeof(out), collect, &c), 1);
	check_valid(c.pk[0], c.len[0], 0);
	/* a checksum offset beyond the packet, UDP GSO, a GSO packet that
	 * is not TCP, a truncated one: refused, nothing delivered */
	f[2] = 400;
	memcpy(rd + 2, f, sizeof(f));
	memset(&c, 0, sizeof(c));
	assert_int_equal(tungro_split(rd, TUNGRO_VNET_LEN + n, out, sizeof(out), collect, &c),
			 ZG_ERR_MALFORMED);
	n = gso_read(0, 1, 5000, 1000, 0x10);
	rd[1] = 5; /* VIRTIO_NET_HDR_GSO_UDP_L4 */
	assert_int_equal(tungro_split(rd, n, out, sizeof(out), collect, &c), ZG_ERR_MALFORMED);
	n = gso_read(0, 1, 5000, 1000, 0x10);
	rd[TUNGRO_VNET_LEN + 9] = 17;
	assert_int_equal(tungro_split(rd, n, out, sizeof(out), collect, &c), ZG_ERR_MALFORMED);
	n = gso_read(1, 1, 5000, 1000, 0x10);
	assert_int_equal(tungro_split(rd, TUNGRO_VNET_LEN + 30, out, sizeof(out), collect, &c),
			 ZG_ERR_MALFORMED);
	n = gso_read(0, 1, 5000, 0, 0x10); /* gso_size 0 */
	assert_int_equal(tungro_split(rd, n, out, sizeof(out), collect, &c), ZG_ERR_MALFORMED);
	assert_int_equal(tungro_split(rd, TUNGRO_VNET_LEN, out, sizeof(out), collect, &c),
			 ZG_ERR_MALFORMED);
	assert_int_equal(c.n, 0);
}

/* A UDP datagram over IPv6 whose partial checksum completes to zero gets
 * 0xffff (0 would mean "no checksum", which IPv6 forbids); any other sum
 * is written as computed. */
static void test_split_udp_checksum_never_zero(void **state)
{
	static struct collected c;
	uint8_t *p = rd + TUNGRO_VNET_LEN, *u = p + 40;
	uint16_t f[4] = { 0, 0, 40, 6 };
	uint32_t pseudo, rest;
	size_t n = 40 + 8 + 10;

	(void)state;
	for (int zero = 0; zero <= 1; zero++) {
		memset(rd, 0, TUNGRO_VNET_LEN + n);
		p[0] = 0x60;
		be16_put(p + 4, 18);
		p[6] = 17;
		p[7] = 64;
		inet_pton(AF_INET6, "fd00::2", p + 8);
		inet_pton(AF_INET6, "fd00:100::7", p + 24);
		be16_put(u, 5353);
		be16_put(u + 2, 53);
		be16_put(u + 4, 18);
		/* the field holds the pseudo-header sum (CHECKSUM_PARTIAL) */
		pseudo = cksum_add(0, p + 8, 32) + 17 + 18;
		be16_put(u + 6, (uint16_t)~cksum_fold(pseudo));
		/* the last two payload bytes make the whole sum 0xffff */
		rest = cksum_add(0, u, 16);
		be16_put(u + 16, zero ? cksum_fold(rest) : 0x1234);
		rd[0] = TUNGRO_F_NEEDS_CSUM;
		memcpy(rd + 2, f, sizeof(f));
		memset(&c, 0, sizeof(c));
		assert_int_equal(tungro_split(rd, TUNGRO_VNET_LEN + n, out, sizeof(out), collect, &c), 1);
		const uint8_t *o = c.pk[0] + 40;
		uint32_t sum = cksum_add(0, c.pk[0] + 8, 32) + 17 + 18;
		assert_int_equal(cksum_fold(cksum_add(sum, o, 18)), 0); /* valid */
		if (zero)
			assert_int_equal(be16_get(o + 6), 0xffff);
		else
			assert_int_not_equal(be16_get(o + 6), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consecutive_segments_become_one_gso_write),
		cmocka_unit_test(test_single_packets_pass_unchanged),
		cmocka_unit_test(test_what_must_not_merge),
		cmocka_unit_test(test_damaged_or_odd_segments_stay_alone),
		cmocka_unit_test(test_ip_header_fields_must_match),
		cmocka_unit_test(test_interleaved_flows_each_coalesce),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_malformed_pass_through),
		cmocka_unit_test(test_split_tso_reads),
		cmocka_unit_test(test_split_partial_checksum_and_errors),
		cmocka_unit_test(test_split_udp_checksum_never_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
