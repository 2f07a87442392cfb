#include "be.h"
#include "agent/ptb.h"

#include <string.h>

#include "cksum.h"
#include "zg_err.h"

#define V4_QUOTE_TOTAL 576  /* the whole ICMPv4 error, RFC 1812 §4.3.2.3 */
#define V6_QUOTE_TOTAL 1280 /* the whole ICMPv6 error, RFC 4443 §2.4 (c) */
#define V6_EXT_MAX 8        /* extension headers followed, at most */

uint16_t ptb_checksum(const uint8_t *p, size_t n, uint32_t sum)
{
	return cksum_fold(cksum_add(sum, p, n));
}

/* 0.0.0.0/8, 127/8, 224/4 (multicast) and 240/4 (incl. broadcast). */
static int v4_special(const uint8_t *a)
{
	return a[0] == 0 || a[0] == 127 || a[0] >= 224;
}

/* ff00::/8 (multicast), :: and ::1. */
static int v6_special(const uint8_t *a)
{
	static const uint8_t zero[15];

	return a[0] == 0xff || (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1));
}

/* The ICMPv4 error types (RFC 1122 §3.2.2): never answered, and the only
 * types built here. */
static int icmp4_error_type(uint8_t t)
{
	return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
}

/* 1 when an error of type/code may answer the IPv4 packet pkt (header
 * length hl, within len). */
static int may_answer4(const uint8_t *pkt, size_t len, size_t hl, uint8_t type, uint8_t code)
{
	if ((pkt[6] & 0x1f) != 0 || pkt[7] != 0)
		return 0; /* not the first fragment */
	if (type == PTB_ICMP4_UNREACH && code == PTB_ICMP4_FRAG_NEEDED && !(pkt[6] & 0x40))
		return 0; /* DF clear: fragmentable, "fragmentation needed" is wrong */
	if (v4_special(pkt + 12) || v4_special(pkt + 16))
		return 0;
	if (pkt[9] == 1 && (len < hl + 1 || icmp4_error_type(pkt[hl])))
		return 0; /* never answer an ICMP error (or what may be one) */
	return 1;
}

/* 1 when an error may answer the IPv6 packet pkt[0..len): follows the
 * usual extension headers to the upper layer. */
static int may_answer6(const uint8_t *pkt, size_t len)
{
	uint8_t nh = pkt[6];
	size_t off = 40;

	/* A multicast destination may get a "too big" by RFC 4443, but it
	 * could not be the error's source. */
	if (v6_special(pkt + 8) || v6_special(pkt + 24))
		return 0;
	for (int i = 0;; i++) {
		switch (nh) {
		case 0:  /* hop-by-hop */
		case 43: /* routing */
		case 60: /* destination options */
		case 44: /* fragment */
			if (i == V6_EXT_MAX || len < off + 8)
				return 0; /* cannot see the upper layer */
			if (nh == 44) {
				if ((be16_get(pkt + off + 2) & 0xfff8) != 0)
					return 0; /* not the first fragment */
				nh = pkt[off];
				off += 8;
			} else {
				nh = pkt[off];
				off += ((size_t)pkt[off + 1] + 1) * 8;
			}
			break;
		case 58: /* ICMPv6: errors are types 0-127 */
			return len > off && pkt[off] >= 128;
		default:
			return 1;
		}
	}
}

static size_t build4(const uint8_t *pkt, size_t len, uint8_t type, uint8_t code, uint32_t rest,
		     uint8_t *out)
{
	size_t quote = len < V4_QUOTE_TOTAL - 28 ? len : V4_QUOTE_TOTAL - 28, n = 28 + quote;
	uint8_t *icmp = out + 20;

	memset(out, 0, 28);
	out[0] = 0x45;
	out[1] = 0xc0; /* internetwork control, as routers send errors */
	be16_put(out + 2, (uint16_t)n);
	out[8] = 64;
	out[9] = 1;
	memcpy(out + 12, pkt + 16, 4); /* from the destination it could not reach */
	memcpy(out + 16, pkt + 12, 4); /* to the sender */
	be16_put(out + 10, ptb_checksum(out, 20, 0));
	icmp[0] = type;
	icmp[1] = code;
	be32_put(icmp + 4, rest);
	memcpy(icmp + 8, pkt, quote);
	be16_put(icmp + 2, ptb_checksum(icmp, 8 + quote, 0));
	return n;
}

static size_t build6(const uint8_t *pkt, size_t len, uint8_t type, uint8_t code, uint32_t rest,
		     uint8_t *out)
{
	size_t quote = len < V6_QUOTE_TOTAL - 48 ? len : V6_QUOTE_TOTAL - 48, il = 8 + quote;
	uint8_t *icmp = out + 40;
	uint32_t s;

	memset(out, 0, 48);
	out[0] = 0x60;
	be16_put(out + 4, (uint16_t)il);
	out[6] = 58;
	out[7] = 64;
	memcpy(out + 8, pkt + 24, 16);
	memcpy(out + 24, pkt + 8, 16);
	icmp[0] = type;
	icmp[1] = code;
	be32_put(icmp + 4, rest);
	memcpy(icmp + 8, pkt, quote);
	/* pseudo-header: addresses, upper-layer length, next header */
	s = cksum_add(0, out + 8, 32);
	s += (uint32_t)(il >> 16) + (uint32_t)(il & 0xffff) + 58;
	be16_put(icmp + 2, ptb_checksum(icmp, il, s));
	return 40 + il;
}

int ptb_icmp_error(const uint8_t *pkt, size_t len, uint8_t type, uint8_t code, uint32_t rest,
		   uint8_t *out, size_t cap, size_t *pn)
{
	size_t hl;

	*pn = 0;
	if (cap < PTB_MAX)
		return ZG_ERR_BUFSHORT;
	if (pkt == NULL || len < 1)
		return ZG_ERR_MALFORMED;
	switch (pkt[0] >> 4) {
	case 4:
		hl = (size_t)(pkt[0] & 15) * 4;
		if (len < 20 || hl < 20 || len < hl)
			return ZG_ERR_MALFORMED;
		if (!icmp4_error_type(type))
			return ZG_ERR_INVAL;
		if (may_answer4(pkt, len, hl, type, code))
			*pn = build4(pkt, len, type, code, rest, out);
		return 0;
	case 6:
		if (len < 40)
			return ZG_ERR_MALFORMED;
		if (type < 1 || type > 4)
			return ZG_ERR_INVAL;
		if (may_answer6(pkt, len))
			*pn = build6(pkt, len, type, code, rest, out);
		return 0;
	default:
		return ZG_ERR_MALFORMED;
	}
}

int ptb_build(const uint8_t *pkt, size_t len, uint32_t mtu, uint8_t *out, size_t cap,
	      size_t *pn)
{
	if (len >= 1 && pkt != NULL && pkt[0] >> 4 == 6)
		return ptb_icmp_error(pkt, len, PTB_ICMP6_TOO_BIG, 0, mtu, out, cap, pn);
	/* RFC 1191: the next-hop MTU in the low-order 16 bits */
	return ptb_icmp_error(pkt, len, PTB_ICMP4_UNREACH, PTB_ICMP4_FRAG_NEEDED,
			      mtu > 0xffff ? 0xffff : mtu, out, cap, pn);
}

int ptb_unreachable(const uint8_t *pkt, size_t len, int prohibited, uint8_t *out, size_t cap,
		    size_t *pn)
{
	if (len >= 1 && pkt != NULL && pkt[0] >> 4 == 6)
		return ptb_icmp_error(pkt, len, PTB_ICMP6_UNREACH,
				      prohibited ? PTB_ICMP6_PROHIBITED : PTB_ICMP6_ADDR_UNREACH, 0,
				      out, cap, pn);
	return ptb_icmp_error(pkt, len, PTB_ICMP4_UNREACH,
			      prohibited ? PTB_ICMP4_PROHIBITED : PTB_ICMP4_HOST, 0, out, cap, pn);
}
