/*
 * pkt.c — IPv4/IPv6 parsing and the packets the stack builds itself.
 *
 * Every read is bounded by the IP total length, itself bounded by the
 * buffer. UDP and ICMP never enter lwIP, so their replies are built here:
 * a 20/40-byte IP header plus an 8-byte header needs no pcb table.
 */
#include "be.h"
#include "cksum.h"
#include "lwipopts.h"
#include "pkt.h"

#include <string.h>

#include "zg_err.h"

uint32_t
pkt_csum_pseudo(const struct stack_addr *src, const struct stack_addr *dst,
		uint8_t proto, size_t l4_len)
{
	size_t alen = src->version == 4 ? 4 : 16;
	uint32_t sum = 0;

	sum = cksum_add(sum, src->a, alen);
	sum = cksum_add(sum, dst->a, alen);
	sum += proto;
	sum += (uint32_t)(l4_len >> 16);
	sum += (uint32_t)(l4_len & 0xffff);
	return sum;
}

static int
l4_csum_ok(const uint8_t *pkt, const struct pkt_info *pi, uint8_t proto)
{
	uint32_t sum = 0;

	if (proto != STACK_PROTO_ICMP)
		sum = pkt_csum_pseudo(&pi->src, &pi->dst, proto, pi->l4_len);
	sum = cksum_add(sum, pkt + pi->l4_off, pi->l4_len);
	return cksum_fold(sum) == 0;
}

int pkt_l4_csum_ok(const uint8_t *pkt, const struct pkt_info *pi)
{
	return l4_csum_ok(pkt, pi, pi->proto);
}

static int
is_ext_header(uint8_t nh)
{
	/* hop-by-hop, routing, fragment, destination options, mobility,
	 * HIP, shim6 (RFC 7045 list minus ESP/AH, which we do not relay) */
	return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 135 ||
	       nh == 139 || nh == 140;
}

static int
parse_ip6(const uint8_t *pkt, size_t len, struct pkt_info *pi)
{
	size_t off = 40, plen;
	uint8_t nh;
	int n;

	if (len < 40)
		return ZG_ERR_MALFORMED;
	plen = be16_get(pkt + 4);
	if (plen == 0 || 40 + plen > len) /* no jumbograms */
		return ZG_ERR_MALFORMED;
	pi->len = 40 + plen;
	pi->src.version = pi->dst.version = 6;
	memcpy(pi->src.a, pkt + 8, 16);
	memcpy(pi->dst.a, pkt + 24, 16);
	nh = pkt[6];
	for (n = 0; is_ext_header(nh); n++) {
		size_t hlen;

		if (n >= PKT_MAX_EXT_HEADERS || off + 8 > pi->len)
			return ZG_ERR_MALFORMED;
		if (nh == 44) {
			/* fragment header: fixed 8 bytes; offset or M flag
			 * set means this is (part of) a fragment */
			uint16_t fo = be16_get(pkt + off + 2);

			if ((fo & 0xfff9) != 0)
				pi->fragment = 1;
			hlen = 8;
		} else {
			hlen = ((size_t)pkt[off + 1] + 1) * 8;
		}
		if (off + hlen > pi->len)
			return ZG_ERR_MALFORMED;
		nh = pkt[off];
		off += hlen;
	}
	pi->proto = nh;
	pi->l4_off = off;
	pi->l4_len = pi->len - off;
	return 0;
}

static int
parse_ip4(const uint8_t *pkt, size_t len, struct pkt_info *pi)
{
	size_t ihl, tot;
	uint16_t frag;

	if (len < 20)
		return ZG_ERR_MALFORMED;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	tot = be16_get(pkt + 2);
	if (ihl < 20 || tot < ihl || tot > len)
		return ZG_ERR_MALFORMED;
	if (cksum_fold(cksum_add(0, pkt, ihl)) != 0)
		return ZG_ERR_MALFORMED;
	pi->len = tot;
	pi->src.version = pi->dst.version = 4;
	memcpy(pi->src.a, pkt + 12, 4);
	memcpy(pi->dst.a, pkt + 16, 4);
	frag = be16_get(pkt + 6);
	if ((frag & 0x3fff) != 0) /* MF or a fragment offset */
		pi->fragment = 1;
	pi->proto = pkt[9];
	pi->l4_off = ihl;
	pi->l4_len = tot - ihl;
	return 0;
}

int pkt_parse(const uint8_t *pkt, size_t len, int check_tcp, struct pkt_info *pi)
{
	const uint8_t *l4;
	int r;

	memset(pi, 0, sizeof(*pi));
	if (len < 1)
		return ZG_ERR_MALFORMED;
	switch (pkt[0] >> 4) {
	case 4:
		pi->version = 4;
		r = parse_ip4(pkt, len, pi);
		break;
	case 6:
		pi->version = 6;
		r = parse_ip6(pkt, len, pi);
		break;
	default:
		return ZG_ERR_VERSION;
	}
	if (r != 0 || pi->fragment)
		return r;

	l4 = pkt + pi->l4_off;
	switch (pi->proto) {
	case STACK_PROTO_TCP: {
		size_t doff;

		if (pi->l4_len < 20)
			return ZG_ERR_MALFORMED;
		doff = (size_t)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > pi->l4_len)
			return ZG_ERR_MALFORMED;
		pi->sport = be16_get(l4);
		pi->dport = be16_get(l4 + 2);
		pi->tcp_seq = be32_get(l4 + 4);
		pi->tcp_ack = be32_get(l4 + 8);
		pi->tcp_flags = l4[13];
		pi->tcp_payload = pi->l4_len - doff;
		if (check_tcp && !l4_csum_ok(pkt, pi, STACK_PROTO_TCP))
			return ZG_ERR_MALFORMED;
		break;
	}
	case STACK_PROTO_UDP: {
		size_t ulen;

		if (pi->l4_len < 8)
			return ZG_ERR_MALFORMED;
		ulen = be16_get(l4 + 4);
		if (ulen < 8 || ulen > pi->l4_len)
			return ZG_ERR_MALFORMED;
		pi->l4_len = ulen; /* trailing bytes past the datagram ignored */
		pi->sport = be16_get(l4);
		pi->dport = be16_get(l4 + 2);
		/* a zero checksum means "none", allowed for IPv4 only */
		if (!(pi->version == 4 && be16_get(l4 + 6) == 0) &&
		    !l4_csum_ok(pkt, pi, STACK_PROTO_UDP))
			return ZG_ERR_MALFORMED;
		pi->payload_off = pi->l4_off + 8;
		pi->payload_len = ulen - 8;
		break;
	}
	case STACK_PROTO_ICMP:
	case STACK_PROTO_ICMPV6:
		if ((pi->proto == STACK_PROTO_ICMP) != (pi->version == 4))
			return 0; /* ICMP in IPv6 or ICMPv6 in IPv4: unsupported */
		if (pi->l4_len < 8)
			return ZG_ERR_MALFORMED;
		if (!l4_csum_ok(pkt, pi, pi->proto))
			return ZG_ERR_MALFORMED;
		pi->icmp_type = l4[0];
		pi->icmp_code = l4[1];
		pi->icmp_id = be16_get(l4 + 4);
		pi->icmp_seq = be16_get(l4 + 6);
		pi->payload_off = pi->l4_off + 8;
		pi->payload_len = pi->l4_len - 8;
		break;
	default:
		break;
	}
	return 0;
}

int pkt_v6_embedded_v4(const struct stack_addr *a, struct stack_addr *v4)
{
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };

	if (a->version != 6 || memcmp(a->a, nat64, 12) != 0)
		return 0;
	memset(v4, 0, sizeof(*v4));
	v4->version = 4;
	memcpy(v4->a, a->a + 12, 4);
	return 1;
}

int pkt_addr_never_reachable(const struct stack_addr *a)
{
	static const uint8_t zero[16];
	static const uint8_t aws6[16] = { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02,
					  [15] = 0x54 };
	const uint8_t *b = a->a;
	struct stack_addr v4;

	if (a->version == 4) {
		return b[0] == 0 ||                    /* 0/8 "this network" */
		       b[0] == 127 ||                  /* loopback */
		       (b[0] == 169 && b[1] == 254) || /* link-local, metadata */
		       (b[0] == 100 && b[1] == 100 && b[2] == 100 &&
			b[3] == 200) || /* Alibaba Cloud metadata */
		       b[0] >= 224;     /* multicast, 240/4, bcast */
	}
	if (a->version == 6) {
		if (memcmp(b, zero, 12) == 0)
			return 1; /* ::, ::1 and IPv4-compatible ::a.b.c.d (RFC
				   * 4291 2.5.5.1: deprecated, tunnels to IPv4) */
		if (b[0] == 0xff)
			return 1; /* multicast */
		if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
			return 1; /* fe80::/10 */
		if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff)
			return 1; /* ::ffff:0:0/96 would reach IPv4 by the back door */
		if (memcmp(b, aws6, 16) == 0)
			return 1; /* AWS instance metadata over IPv6 */
		if (pkt_v6_embedded_v4(a, &v4))
			return pkt_addr_never_reachable(&v4); /* NAT64 */
		return 0;
	}
	return 1;
}

/* Writes an IP header for an upper-layer payload of l4_len bytes; returns
 * the header length (20 or 40). */
static size_t
put_ip(uint8_t *out, const struct stack_addr *src, const struct stack_addr *dst,
       uint8_t proto, size_t l4_len)
{
	static uint16_t ip_id;

	if (src->version == 4) {
		memset(out, 0, 20);
		out[0] = 0x45;
		be16_put(out + 2, (uint16_t)(20 + l4_len));
		be16_put(out + 4, ip_id++);
		out[8] = 64;
		out[9] = proto;
		memcpy(out + 12, src->a, 4);
		memcpy(out + 16, dst->a, 4);
		be16_put(out + 10, cksum_fold(cksum_add(0, out, 20)));
		return 20;
	}
	memset(out, 0, 40);
	out[0] = 0x60;
	be16_put(out + 4, (uint16_t)l4_len);
	out[6] = proto;
	out[7] = 64;
	memcpy(out + 8, src->a, 16);
	memcpy(out + 24, dst->a, 16);
	return 40;
}

static void
put_l4_csum(uint8_t *l4, size_t l4_len, size_t csum_off,
	    const struct stack_addr *src, const struct stack_addr *dst,
	    uint8_t proto)
{
	uint32_t sum = 0;
	uint16_t c;

	be16_put(l4 + csum_off, 0);
	if (proto != STACK_PROTO_ICMP)
		sum = pkt_csum_pseudo(src, dst, proto, l4_len);
	c = cksum_fold(cksum_add(sum, l4, l4_len));
	if (c == 0 && proto == STACK_PROTO_UDP)
		c = 0xffff;
	be16_put(l4 + csum_off, c);
}

size_t
pkt_build_unreach(uint8_t *out, size_t cap, size_t mtu, const uint8_t *orig,
		  const struct pkt_info *pi, enum pkt_unreach why)
{
	size_t hl = pi->version == 4 ? 20 : 40;
	size_t limit = pi->version == 4 ? 576 : 1280;
	size_t quote = pi->len, l4;
	uint8_t proto, type, code;

	if (mtu < limit)
		limit = mtu;
	if (limit > cap)
		limit = cap;
	if (limit < hl + 8 + (pi->version == 4 ? 28 : 48))
		return 0;
	if (hl + 8 + quote > limit)
		quote = limit - hl - 8;
	if (pi->version == 4) {
		proto = STACK_PROTO_ICMP;
		type = PKT_ICMP4_UNREACH;
		code = why == PKT_UNREACH_ADMIN ? 13 : why == PKT_UNREACH_HOST ? 1
									       : 3;
	} else {
		proto = STACK_PROTO_ICMPV6;
		type = PKT_ICMP6_UNREACH;
		code = why == PKT_UNREACH_ADMIN ? 1 : why == PKT_UNREACH_HOST ? 3
									      : 4;
	}
	l4 = 8 + quote;
	put_ip(out, &pi->dst, &pi->src, proto, l4);
	out[hl] = type;
	out[hl + 1] = code;
	memset(out + hl + 2, 0, 6);
	memcpy(out + hl + 8, orig, quote);
	put_l4_csum(out + hl, l4, 2, &pi->dst, &pi->src, proto);
	return hl + l4;
}

size_t
pkt_build_rst(uint8_t *out, size_t cap, const struct pkt_info *pi)
{
	size_t hl = pi->version == 4 ? 20 : 40;
	uint8_t *t;

	if (cap < hl + 20 || pi->proto != STACK_PROTO_TCP ||
	    (pi->tcp_flags & PKT_TCP_RST))
		return 0;
	put_ip(out, &pi->dst, &pi->src, STACK_PROTO_TCP, 20);
	t = out + hl;
	memset(t, 0, 20);
	be16_put(t, pi->dport);
	be16_put(t + 2, pi->sport);
	if (pi->tcp_flags & PKT_TCP_ACK) {
		be32_put(t + 4, pi->tcp_ack);
		t[13] = PKT_TCP_RST;
	} else {
		uint32_t seglen = (uint32_t)pi->tcp_payload;

		if (pi->tcp_flags & PKT_TCP_SYN)
			seglen++;
		if (pi->tcp_flags & PKT_TCP_FIN)
			seglen++;
		be32_put(t + 8, pi->tcp_seq + seglen);
		t[13] = PKT_TCP_RST | PKT_TCP_ACK;
	}
	t[12] = 5 << 4;
	put_l4_csum(t, 20, 16, &pi->dst, &pi->src, STACK_PROTO_TCP);
	return hl + 20;
}

size_t
pkt_build_udp(uint8_t *out, size_t cap, const struct stack_addr *src,
	      uint16_t sport, const struct stack_addr *dst, uint16_t dport,
	      const uint8_t *data, size_t len)
{
	size_t hl = src->version == 4 ? 20 : 40;
	uint8_t *u;

	if (src->version != dst->version || len > 0xffff - 8 - hl ||
	    cap < hl + 8 + len)
		return 0;
	put_ip(out, src, dst, STACK_PROTO_UDP, 8 + len);
	u = out + hl;
	be16_put(u, sport);
	be16_put(u + 2, dport);
	be16_put(u + 4, (uint16_t)(8 + len));
	if (len > 0)
		memcpy(u + 8, data, len);
	put_l4_csum(u, 8 + len, 6, src, dst, STACK_PROTO_UDP);
	return hl + 8 + len;
}

size_t
pkt_build_echo_reply(uint8_t *out, size_t cap, const struct stack_addr *src,
		     const struct stack_addr *dst, uint16_t id, uint16_t seq,
		     const uint8_t *data, size_t len)
{
	size_t hl = src->version == 4 ? 20 : 40;
	uint8_t proto = src->version == 4 ? STACK_PROTO_ICMP : STACK_PROTO_ICMPV6;
	uint8_t *m;

	if (src->version != dst->version || len > 0xffff - 8 - hl ||
	    cap < hl + 8 + len)
		return 0;
	put_ip(out, src, dst, proto, 8 + len);
	m = out + hl;
	m[0] = src->version == 4 ? PKT_ICMP4_ECHO_REPLY : PKT_ICMP6_ECHO_REPLY;
	m[1] = 0;
	be16_put(m + 4, id);
	be16_put(m + 6, seq);
	if (len > 0)
		memcpy(m + 8, data, len);
	put_l4_csum(m, 8 + len, 2, src, dst, proto);
	return hl + 8 + len;
}

unsigned short stack_lwip_chksum(const void *data, int len)
{
	/* cksum_fold() inverts; inverting again leaves the folded sum */
	uint16_t be = (uint16_t)~cksum_fold(cksum_add(0, data, len > 0 ? (size_t)len : 0));

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (uint16_t)(be >> 8 | be << 8); /* the same sum in memory order */
#else
	return be;
#endif
}
