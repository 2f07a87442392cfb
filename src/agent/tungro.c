/* tungro.c — see tungro.h. */
#include "be.h"
#include "agent/tungro.h"

#include <stdlib.h>
#include <string.h>

#include "cksum.h"
#include "zg_err.h"

#define IP_MAX 65535u
#define TCP_ACK 0x10
#define TCP_PSH 0x08

struct item {
	size_t off;   /* of the virtio_net_hdr in the arena */
	size_t len;   /* IP packet bytes after it */
	size_t cap;   /* bytes reserved for the IP packet */
	size_t bytes; /* IP bytes of the packets added, as they came */
	uint32_t next_seq;
	uint16_t gso; /* payload of the first segment */
	uint16_t nseg;
	uint8_t v; /* 4 or 6 when TCP that may grow, else 0 */
	uint8_t hl, thl;
	uint8_t closed, psh, done;
};

struct tungro {
	uint8_t *arena;
	size_t used;
	size_t n;
	struct item it[TUNGRO_ITEMS];
};

struct tcpseg {
	uint8_t v, hl, thl, flags;
	size_t payload;
	uint32_t seq;
};

struct tungro *tungro_new(void)
{
	struct tungro *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->arena = malloc(TUNGRO_ARENA);
	if (g->arena == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

void tungro_free(struct tungro *g)
{
	if (g == NULL)
		return;
	free(g->arena);
	free(g);
}

void tungro_reset(struct tungro *g)
{
	g->n = 0;
	g->used = 0;
}

/* The sum of the TCP pseudo header's addresses of IP packet p (IPv4 or
 * IPv6); the protocol and the TCP length are added by the caller. */
static uint32_t pseudo_addrs(const uint8_t *p)
{
	return (p[0] >> 4) == 4 ? cksum_add(0, p + 12, 8) : cksum_add(0, p + 8, 32);
}

/* 1 when p (len bytes, IPv4 or IPv6 of header length hl) carries a valid
 * TCP checksum, and for IPv4 a valid header checksum. */
static int csum_ok(const uint8_t *p, size_t len, size_t hl)
{
	if (hl == 20 && cksum_fold(cksum_add(0, p, 20)) != 0)
		return 0;
	return cksum_fold(cksum_add(pseudo_addrs(p) + 6 + (uint32_t)(len - hl), p + hl,
				    len - hl)) == 0;
}

/* 1 when pkt is a TCP segment that may start or extend a coalesced item:
 * IPv4 without options or fragmentation, or IPv6 without extension
 * headers; lengths consistent; ACK with an optional PSH and no urgent
 * data; a payload; checksums valid (a merged item carries one partial
 * checksum the kernel trusts, so a damaged segment must stay alone, to be
 * dropped). Fills *s. */
static int parse_seg(const uint8_t *p, size_t len, struct tcpseg *s)
{
	const uint8_t *t;

	memset(s, 0, sizeof(*s));
	if (len >= 20 && p[0] == 0x45) {
		if (p[9] != 6 || (be16_get(p + 6) & 0x3fff) != 0 || be16_get(p + 2) != len)
			return 0;
		s->v = 4;
		s->hl = 20;
	} else if (len >= 40 && (p[0] >> 4) == 6) {
		if (p[6] != 6 || (size_t)be16_get(p + 4) + 40 != len)
			return 0;
		s->v = 6;
		s->hl = 40;
	} else {
		return 0;
	}
	t = p + s->hl;
	if (len < (size_t)s->hl + 20 || (t[12] >> 4) < 5 || (size_t)s->hl + (t[12] >> 4) * 4u > len) {
		s->v = 0; /* malformed: passed through, no flow */
		return 0;
	}
	s->thl = (uint8_t)((t[12] >> 4) * 4);
	s->flags = t[13];
	s->payload = len - s->hl - s->thl;
	s->seq = be32_get(t + 4);
	return (s->flags & ~TCP_PSH) == TCP_ACK && be16_get(t + 18) == 0 && s->payload > 0 &&
	       csum_ok(p, len, s->hl);
}

/* 1 when p (a segment parsed into s) belongs to item it's flow. */
static int same_flow(const struct item *it, const uint8_t *h, const uint8_t *p,
		     const struct tcpseg *s)
{
	if (it->v != s->v)
		return 0;
	if (s->v == 4)
		return memcmp(h + 12, p + 12, 8) == 0 && memcmp(h + 20, p + 20, 4) == 0;
	return memcmp(h + 8, p + 8, 32) == 0 && memcmp(h + 40, p + 40, 4) == 0;
}

/* 1 when the headers agree in everything but lengths, IDs, sequence
 * numbers, checksums and PSH. */
static int same_headers(const struct item *it, const uint8_t *h, const uint8_t *p,
			const struct tcpseg *s)
{
	const uint8_t *ht = h + it->hl, *pt = p + s->hl;

	if (it->thl != s->thl)
		return 0;
	if (s->v == 4) {
		if (h[1] != p[1] || memcmp(h + 6, p + 6, 4) != 0)
			return 0;
	} else if (memcmp(h, p, 4) != 0 || h[7] != p[7]) {
		return 0;
	}
	return ht[12] == pt[12] &&                                 /* reserved, AE */
	       memcmp(ht + 8, pt + 8, 4) == 0 &&                   /* ACK number */
	       memcmp(ht + 14, pt + 14, 2) == 0 &&                 /* window */
	       memcmp(ht + 20, pt + 20, (size_t)s->thl - 20) == 0; /* options */
}

int tungro_add(struct tungro *g, const uint8_t *pkt, size_t len)
{
	struct tcpseg s;
	struct item *it;
	int cand;
	size_t i;

	if (len == 0 || len > IP_MAX)
		return ZG_ERR_INVAL;
	cand = parse_seg(pkt, len, &s);
	if (s.v != 0) {
		/* Newest first: the item this segment continues, if any. A
		 * segment of the flow that cannot join closes the flow's open
		 * items, so nothing later is merged ahead of it. */
		for (i = g->n; i-- > 0;) {
			const uint8_t *h;

			it = &g->it[i];
			h = g->arena + it->off + TUNGRO_VNET_LEN;
			if (it->closed || !same_flow(it, h, pkt, &s))
				continue;
			if (cand && s.seq == it->next_seq && s.payload <= it->gso &&
			    it->nseg < TUNGRO_SEGS && it->len + s.payload <= it->cap &&
			    same_headers(it, h, pkt, &s)) {
				memcpy(g->arena + it->off + TUNGRO_VNET_LEN + it->len,
				       pkt + s.hl + s.thl, s.payload);
				it->len += s.payload;
				it->bytes += len;
				it->next_seq += (uint32_t)s.payload;
				it->nseg++;
				if (s.flags & TCP_PSH)
					it->psh = it->closed = 1;
				if (s.payload < it->gso)
					it->closed = 1; /* only the last may be short */
				return 0;
			}
			it->closed = 1;
		}
	}
	/* a new item */
	{
		size_t cap = cand && !(s.flags & TCP_PSH) ? IP_MAX : len;

		if (g->n == TUNGRO_ITEMS || g->used + TUNGRO_VNET_LEN + cap > TUNGRO_ARENA)
			return ZG_ERR_LIMIT;
		it = &g->it[g->n++];
		memset(it, 0, sizeof(*it));
		it->off = g->used;
		it->len = len;
		it->bytes = len;
		it->cap = cap;
		it->nseg = 1;
		g->used += TUNGRO_VNET_LEN + cap;
		memset(g->arena + it->off, 0, TUNGRO_VNET_LEN);
		memcpy(g->arena + it->off + TUNGRO_VNET_LEN, pkt, len);
		if (cand) {
			it->v = s.v;
			it->hl = s.hl;
			it->thl = s.thl;
			it->gso = (uint16_t)s.payload;
			it->next_seq = s.seq + (uint32_t)s.payload;
			it->closed = cap == len;
		} else {
			it->v = s.v; /* a TCP segment that closes its flow */
			if (s.v != 0) {
				it->hl = s.hl;
				it->thl = s.thl;
			}
			it->closed = 1;
		}
	}
	return 0;
}

/* Rewrites a coalesced item's headers and fills its virtio_net_hdr. */
static void finish(struct tungro *g, struct item *it)
{
	uint8_t *vh = g->arena + it->off, *p = vh + TUNGRO_VNET_LEN, *t = p + it->hl;
	uint16_t f[4];
	uint32_t sum;
	size_t tcplen = it->len - it->hl;

	it->done = 1;
	it->closed = 1;
	if (it->nseg < 2)
		return; /* as it came, with the zero header */
	if (it->v == 4) {
		be16_put(p + 2, (uint16_t)it->len);
		p[10] = p[11] = 0;
		be16_put(p + 10, cksum_fold(cksum_add(0, p, 20)));
	} else {
		be16_put(p + 4, (uint16_t)tcplen);
	}
	sum = pseudo_addrs(p);
	if (it->psh)
		t[13] |= TCP_PSH;
	/* CHECKSUM_PARTIAL: the field holds the pseudo-header sum, folded
	 * but not complemented; the kernel adds the rest */
	sum += 6 + (uint32_t)tcplen;
	be16_put(t + 16, (uint16_t)~cksum_fold(sum));
	vh[0] = TUNGRO_F_NEEDS_CSUM;
	vh[1] = it->v == 4 ? TUNGRO_GSO_TCPV4 : TUNGRO_GSO_TCPV6;
	f[0] = (uint16_t)(it->hl + it->thl); /* hdr_len */
	f[1] = it->gso;                      /* gso_size */
	f[2] = it->hl;                       /* csum_start */
	f[3] = 16;                           /* csum_offset */
	memcpy(vh + 2, f, sizeof(f));        /* host byte order (legacy virtio) */
}

size_t tungro_count(const struct tungro *g)
{
	return g->n;
}

size_t tungro_item_bytes(const struct tungro *g, size_t i)
{
	return i < g->n ? g->it[i].bytes : 0;
}

const uint8_t *tungro_item(struct tungro *g, size_t i, size_t *plen, unsigned *pnseg)
{
	struct item *it;

	if (i >= g->n)
		return NULL;
	it = &g->it[i];
	if (!it->done)
		finish(g, it);
	*plen = TUNGRO_VNET_LEN + it->len;
	if (pnseg != NULL)
		*pnseg = it->nseg;
	return g->arena + it->off;
}

/* Completes a partial checksum: the one's complement sum from start to the
 * end, stored at start + off. A sum of zero is written as 0xffff, its
 * other form: 0 in a UDP checksum means none (and is invalid over IPv6). */
static int complete_csum(uint8_t *p, size_t len, size_t start, size_t off)
{
	uint16_t c;

	if (start + off + 2 > len)
		return ZG_ERR_MALFORMED;
	c = cksum_fold(cksum_add(0, p + start, len - start));
	be16_put(p + start + off, c != 0 ? c : 0xffff);
	return 0;
}

int tungro_split(const uint8_t *buf, size_t len, uint8_t *out, size_t outlen, tungro_fn fn,
		 void *arg)
{
	const uint8_t *p = buf + TUNGRO_VNET_LEN;
	uint16_t f[4];
	uint8_t flags, type;
	size_t plen, hl, thl, hdr, gso, off, n = 0;
	uint32_t seq, sum0;
	uint16_t id = 0;

	if (len <= TUNGRO_VNET_LEN || outlen < IP_MAX)
		return ZG_ERR_MALFORMED;
	flags = buf[0];
	type = (uint8_t)(buf[1] & ~TUNGRO_GSO_ECN);
	memcpy(f, buf + 2, sizeof(f));
	plen = len - TUNGRO_VNET_LEN;
	if (plen > IP_MAX)
		return ZG_ERR_MALFORMED;
	if (type == TUNGRO_GSO_NONE) {
		memcpy(out, p, plen);
		if ((flags & TUNGRO_F_NEEDS_CSUM) && complete_csum(out, plen, f[2], f[3]) != 0)
			return ZG_ERR_MALFORMED;
		fn(out, plen, arg);
		return 1;
	}
	if (type != TUNGRO_GSO_TCPV4 && type != TUNGRO_GSO_TCPV6)
		return ZG_ERR_MALFORMED; /* not offered: UDP, SCTP */
	if (type == TUNGRO_GSO_TCPV4) {
		if (plen < 20 || (p[0] >> 4) != 4 || p[9] != 6)
			return ZG_ERR_MALFORMED;
		hl = (size_t)(p[0] & 0x0f) * 4;
		id = be16_get(p + 4);
	} else {
		if (plen < 40 || (p[0] >> 4) != 6 || p[6] != 6)
			return ZG_ERR_MALFORMED;
		hl = 40;
	}
	if (hl < 20 || plen < hl + 20)
		return ZG_ERR_MALFORMED;
	thl = (size_t)(p[hl + 12] >> 4) * 4;
	hdr = hl + thl;
	gso = f[1];
	if (thl < 20 || plen < hdr || gso == 0 || hdr + gso > IP_MAX)
		return ZG_ERR_MALFORMED;
	seq = be32_get(p + hl + 4);
	sum0 = pseudo_addrs(p);
	for (off = hdr; off < plen || n == 0; off += gso, n++) {
		size_t pay = plen - off < gso ? plen - off : gso, sl = hdr + pay;
		uint8_t *t = out + hl;
		int last = off + pay >= plen;
		uint32_t s32 = seq + (uint32_t)(off - hdr);

		memcpy(out, p, hdr);
		memcpy(out + hdr, p + off, pay);
		if (type == TUNGRO_GSO_TCPV4) {
			be16_put(out + 2, (uint16_t)sl);
			be16_put(out + 4, (uint16_t)(id + n));
			out[10] = out[11] = 0;
			be16_put(out + 10, cksum_fold(cksum_add(0, out, hl)));
		} else {
			be16_put(out + 4, (uint16_t)(sl - 40));
		}
		be16_put(t + 4, (uint16_t)(s32 >> 16));
		be16_put(t + 6, (uint16_t)s32);
		if (!last)
			t[13] &= (uint8_t) ~(0x01 | TCP_PSH); /* FIN, PSH: the last only */
		if (n > 0)
			t[13] &= (uint8_t)~0x80; /* CWR: the first only */
		t[16] = t[17] = 0;
		be16_put(t + 16, cksum_fold(cksum_add(sum0 + 6 + (uint32_t)(sl - hl), t, sl - hl)));
		fn(out, sl, arg);
		if (last)
			break;
	}
	return (int)n + 1;
}
