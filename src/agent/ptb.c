#include "be.h"
#include "agent/ptb.h"

#include <string.h>

#include "cksum.h"
#include "zg_err.h"

#define V4_QUOTE_TOTAL 576  /* the whole ICMPv4 error, RFC 1812 §4.3.2.3 */
#define V6_QUOTE_TOTAL 1280 /* the whole ICMPv6 error, RFC 4443 §2.4 (c) */

uint16_t ptb_checksum(const uint8_t *p, size_t n, uint32_t sum)
{
	return cksum_fold(cksum_add(sum, p, n));
}

/* 0.0.0.0/8, 127/8, 224/4 (multicast) and 240/4 (incl. broadcast). */
static int v4_special(const uint8_t *a)
{
	return a[0] == 0 || a[0] == 127 || a[0] >= 224;
}

static int v6_unspecified(const uint8_t *a)
{
	static const uint8_t zero[16];

	return memcmp(a, zero, 16) == 0;
}

static int v6_loopback(const uint8_t *a)
{
	static const uint8_t lo[16] = { [15] = 1 };

	return memcmp(a, lo, 16) == 0;
}

static int build4(const uint8_t *pkt, size_t len, uint32_t mtu, uint8_t *out, size_t *pn)
{
	size_t hl = (size_t)(pkt[0] & 15) * 4, quote, n;
	uint8_t *icmp = out + 20;

	if (hl < 20 || len < hl)
		return ZG_ERR_MALFORMED;
	if ((pkt[6] & 0x1f) != 0 || pkt[7] != 0)
		return 0; /* not the first fragment */
	if (!(pkt[6] & 0x40))
		return 0; /* DF clear: fragmentable, "fragmentation needed" is wrong */
	if (v4_special(pkt + 12) || v4_special(pkt + 16))
		return 0;
	if (pkt[9] == 1) { /* ICMP: never answer an error with an error */
		uint8_t t;

		if (len < hl + 1)
			return 0;
		t = pkt[hl];
		if (t == 3 || t == 4 || t == 5 || t == 11 || t == 12)
			return 0;
	}
	quote = len < V4_QUOTE_TOTAL - 28 ? len : V4_QUOTE_TOTAL - 28;
	n = 28 + quote;
	memset(out, 0, 28);
	out[0] = 0x45;
	out[1] = 0xc0; /* internetwork control, as routers send errors */
	be16_put(out + 2, (uint16_t)n);
	out[8] = 64;
	out[9] = 1;
	memcpy(out + 12, pkt + 16, 4); /* from the destination it could not reach */
	memcpy(out + 16, pkt + 12, 4); /* to the sender */
	be16_put(out + 10, ptb_checksum(out, 20, 0));
	icmp[0] = 3;
	icmp[1] = 4;
	be16_put(icmp + 6, (uint16_t)(mtu > 0xffff ? 0xffff : mtu));
	memcpy(icmp + 8, pkt, quote);
	be16_put(icmp + 2, ptb_checksum(icmp, 8 + quote, 0));
	*pn = n;
	return 0;
}

/* Finds the upper-layer protocol of an IPv6 packet, walking the usual
 * extension headers. Returns the protocol and its offset in *poff, or -1
 * when the chain cannot be followed within len. */
static int v6_upper(const uint8_t *pkt, size_t len, size_t *poff)
{
	uint8_t nh = pkt[6];
	size_t off = 40;

	for (int i = 0; i < 8; i++) {
		switch (nh) {
		case 0:  /* hop-by-hop */
		case 43: /* routing */
		case 60: /* destination options */
			if (len < off + 8)
				return -1;
			nh = pkt[off];
			off += ((size_t)pkt[off + 1] + 1) * 8;
			break;
		case 44: /* fragment */
			if (len < off + 8)
				return -1;
			if ((pkt[off + 2] << 8 | pkt[off + 3]) & 0xfff8)
				return -1; /* not the first fragment: no header to see */
			nh = pkt[off];
			off += 8;
			break;
		default:
			*poff = off;
			return nh;
		}
	}
	return -1;
}

static int build6(const uint8_t *pkt, size_t len, uint32_t mtu, uint8_t *out, size_t *pn)
{
	uint8_t *icmp = out + 40;
	size_t quote, il, off = 0;
	uint32_t s;
	int up;

	if (len < 40)
		return ZG_ERR_MALFORMED;
	/* Multicast sources and destinations (ff00::/8) and the unspecified
	 * or loopback source get no answer; a multicast destination may get
	 * one by RFC 4443, but it could not be the error's source. */
	if (pkt[8] == 0xff || pkt[24] == 0xff || v6_unspecified(pkt + 8) || v6_loopback(pkt + 8) ||
	    v6_unspecified(pkt + 24))
		return 0;
	up = v6_upper(pkt, len, &off);
	if (up == 58 && len > off && pkt[off] < 128)
		return 0; /* an ICMPv6 error */
	quote = len < V6_QUOTE_TOTAL - 48 ? len : V6_QUOTE_TOTAL - 48;
	il = 8 + quote;
	memset(out, 0, 48);
	out[0] = 0x60;
	be16_put(out + 4, (uint16_t)il);
	out[6] = 58;
	out[7] = 64;
	memcpy(out + 8, pkt + 24, 16);
	memcpy(out + 24, pkt + 8, 16);
	icmp[0] = 2;
	icmp[4] = (uint8_t)(mtu >> 24);
	icmp[5] = (uint8_t)(mtu >> 16);
	icmp[6] = (uint8_t)(mtu >> 8);
	icmp[7] = (uint8_t)mtu;
	memcpy(icmp + 8, pkt, quote);
	/* pseudo-header: addresses, upper-layer length, next header */
	s = cksum_add(0, out + 8, 32);
	s += (uint32_t)(il >> 16) + (uint32_t)(il & 0xffff) + 58;
	be16_put(icmp + 2, ptb_checksum(icmp, il, s));
	*pn = 40 + il;
	return 0;
}

int ptb_build(const uint8_t *pkt, size_t len, uint32_t mtu, uint8_t *out, size_t cap,
	      size_t *pn)
{
	*pn = 0;
	if (cap < PTB_MAX)
		return ZG_ERR_BUFSHORT;
	if (len < 1)
		return ZG_ERR_MALFORMED;
	switch (pkt[0] >> 4) {
	case 4:
		if (len < 20)
			return ZG_ERR_MALFORMED;
		return build4(pkt, len, mtu, out, pn);
	case 6:
		return build6(pkt, len, mtu, out, pn);
	default:
		return ZG_ERR_MALFORMED;
	}
}
