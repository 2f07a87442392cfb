/* Unit tests for src/agent/ptb: ICMP "fragmentation needed" / ICMPv6
 * "packet too big" for packets the tunnel cannot carry (C16), ICMP
 * destination unreachable for packets a connector cannot take (issue 22),
 * and the rules of when no error may be sent. Every answer is checked as a
 * receiver would: header and ICMP checksums verify, the new cases with a
 * checksum written here (sum16), not the module's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "agent/ptb.h"
#include "zg_err.h"

static uint8_t out[PTB_MAX];

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* An IPv4 packet of len bytes from src to dst with protocol proto. */
static size_t ip4(uint8_t *p, size_t len, const char *src, const char *dst, uint8_t proto,
		  int df)
{
	memset(p, 0, len);
	for (size_t i = 20; i < len; i++)
		p[i] = (uint8_t)(i * 7);
	p[0] = 0x45;
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	p[6] = df ? 0x40 : 0;
	p[8] = 64;
	p[9] = proto;
	assert_int_equal(inet_pton(AF_INET, src, p + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, p + 16), 1);
	return len;
}

static size_t ip6(uint8_t *p, size_t len, const char *src, const char *dst, uint8_t nh)
{
	memset(p, 0, len);
	for (size_t i = 40; i < len; i++)
		p[i] = (uint8_t)(i * 13);
	p[0] = 0x60;
	p[4] = (uint8_t)((len - 40) >> 8);
	p[5] = (uint8_t)(len - 40);
	p[6] = nh;
	p[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, src, p + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, dst, p + 24), 1);
	return len;
}

static void test_checksum_known_vector(void **state)
{
	/* an IPv4 header whose checksum is 0xb861 */
	static const uint8_t h[20] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
				       0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };
	uint8_t with[20];

	(void)state;
	assert_int_equal(ptb_checksum(h, sizeof(h), 0), 0xb861);
	memcpy(with, h, sizeof(h));
	with[10] = 0xb8;
	with[11] = 0x61;
	assert_int_equal(ptb_checksum(with, sizeof(with), 0), 0);
	/* odd length: the last byte is the high half of a word */
	assert_int_equal(ptb_checksum((const uint8_t *)"\x01", 1, 0), (uint16_t)~0x0100);
}

static void test_c16_ipv4_frag_needed(void **state)
{
	uint8_t pkt[1500];
	size_t n = 0, len = ip4(pkt, 1500, "10.100.0.2", "198.18.0.1", 17, 1);

	(void)state;
	assert_int_equal(ptb_build(pkt, len, 1410, out, sizeof(out), &n), 0);
	assert_int_equal(n, 576); /* the RFC 1812 ceiling */
	assert_int_equal(out[0], 0x45);
	assert_int_equal(get16(out + 2), 576);
	assert_int_equal(out[9], 1);
	assert_int_equal(ptb_checksum(out, 20, 0), 0);          /* header checksum */
	assert_memory_equal(out + 12, pkt + 16, 4);             /* from the destination */
	assert_memory_equal(out + 16, pkt + 12, 4);             /* to the sender */
	assert_int_equal(out[20], 3);                           /* destination unreachable */
	assert_int_equal(out[21], 4);                           /* fragmentation needed */
	assert_int_equal(get16(out + 24), 0);                   /* unused */
	assert_int_equal(get16(out + 26), 1410);                /* next-hop MTU */
	assert_int_equal(ptb_checksum(out + 20, n - 20, 0), 0); /* ICMP checksum */
	assert_memory_equal(out + 28, pkt, n - 28);             /* the quoted packet */
}

static void test_c16_ipv4_small_packet_quoted_whole(void **state)
{
	uint8_t pkt[100];
	size_t n = 0, len = ip4(pkt, 100, "10.100.0.2", "203.0.113.5", 6, 1);

	(void)state;
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 128);
	assert_int_equal(ptb_checksum(out, 20, 0), 0);
	assert_int_equal(ptb_checksum(out + 20, n - 20, 0), 0);
	assert_memory_equal(out + 28, pkt, 100);
	/* an MTU above 16 bits is capped */
	assert_int_equal(ptb_build(pkt, len, 70000, out, sizeof(out), &n), 0);
	assert_int_equal(get16(out + 26), 0xffff);
	assert_int_equal(ptb_checksum(out + 20, n - 20, 0), 0);
}

static void test_c16_ipv4_when_not_to_answer(void **state)
{
	uint8_t pkt[1500];
	size_t n = 99, len;

	(void)state;
	/* DF clear: a router would fragment, "fragmentation needed" is wrong */
	len = ip4(pkt, 1500, "10.100.0.2", "198.18.0.1", 17, 0);
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* an ICMP error (type 3) is never answered; an echo request is */
	len = ip4(pkt, 1500, "10.100.0.2", "198.18.0.1", 1, 1);
	pkt[20] = 3;
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	pkt[20] = 8;
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 576);
	/* not the first fragment */
	len = ip4(pkt, 1500, "10.100.0.2", "198.18.0.1", 17, 1);
	pkt[7] = 0xb9;
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* multicast, broadcast, unspecified or loopback ends */
	len = ip4(pkt, 1500, "10.100.0.2", "224.0.0.251", 17, 1);
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	len = ip4(pkt, 1500, "10.100.0.2", "255.255.255.255", 17, 1);
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	len = ip4(pkt, 1500, "0.0.0.0", "198.18.0.1", 17, 1);
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	len = ip4(pkt, 1500, "127.0.0.1", "198.18.0.1", 17, 1);
	assert_int_equal(ptb_build(pkt, len, 1400, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
}

/* The ICMPv6 checksum covers a pseudo-header (RFC 8200 §8.1). */
static uint16_t icmp6_check(const uint8_t *pkt, size_t n)
{
	uint8_t ph[40];
	uint32_t l = (uint32_t)(n - 40), s = 0;

	memcpy(ph, pkt + 8, 32);
	ph[32] = (uint8_t)(l >> 24);
	ph[33] = (uint8_t)(l >> 16);
	ph[34] = (uint8_t)(l >> 8);
	ph[35] = (uint8_t)l;
	ph[36] = ph[37] = ph[38] = 0;
	ph[39] = 58;
	for (size_t i = 0; i < 40; i += 2)
		s += (uint32_t)(ph[i] << 8 | ph[i + 1]);
	return ptb_checksum(pkt + 40, n - 40, s);
}

static void test_c16_ipv6_packet_too_big(void **state)
{
	uint8_t pkt[1500];
	size_t n = 0, len = ip6(pkt, 1500, "fd00:100::2", "2001:db8::1", 17);

	(void)state;
	assert_int_equal(ptb_build(pkt, len, 1350, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1280); /* the RFC 4443 ceiling */
	assert_int_equal(out[0] >> 4, 6);
	assert_int_equal(get16(out + 4), 1240);
	assert_int_equal(out[6], 58);
	assert_memory_equal(out + 8, pkt + 24, 16);
	assert_memory_equal(out + 24, pkt + 8, 16);
	assert_int_equal(out[40], 2); /* packet too big */
	assert_int_equal(out[41], 0);
	assert_int_equal(out[44] << 24 | out[45] << 16 | out[46] << 8 | out[47], 1350);
	assert_int_equal(icmp6_check(out, n), 0);
	assert_memory_equal(out + 48, pkt, n - 48);
	/* a short packet is quoted whole, odd length included */
	len = ip6(pkt, 141, "fd00:100::2", "2001:db8::1", 6);
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 48 + 141);
	assert_int_equal(icmp6_check(out, n), 0);
}

static void test_c16_ipv6_when_not_to_answer(void **state)
{
	uint8_t pkt[1500];
	size_t n = 99, len;

	(void)state;
	/* an ICMPv6 error (type < 128) is not answered; an echo request is */
	len = ip6(pkt, 1500, "fd00:100::2", "2001:db8::1", 58);
	pkt[40] = 1;
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	pkt[40] = 128;
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1280);
	/* behind a hop-by-hop header, still an error */
	len = ip6(pkt, 1500, "fd00:100::2", "2001:db8::1", 0);
	pkt[40] = 58; /* next header */
	pkt[41] = 0;  /* 8 bytes */
	pkt[48] = 2;  /* packet too big */
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* multicast or unspecified ends */
	len = ip6(pkt, 1500, "fd00:100::2", "ff02::1", 17);
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	len = ip6(pkt, 1500, "::", "2001:db8::1", 17);
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* loopback at either end (as for IPv4's 127/8) */
	len = ip6(pkt, 1500, "fd00:100::2", "::1", 17);
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* a fragment other than the first: its upper layer is unknown */
	len = ip6(pkt, 1500, "fd00:100::2", "2001:db8::1", 44);
	pkt[40] = 17;
	pkt[42] = 0;
	pkt[43] = 0xb9; /* offset 23 * 8, more fragments */
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	pkt[43] = 1; /* offset 0, more fragments: the first, answered */
	assert_int_equal(ptb_build(pkt, len, 1280, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1280);
}

/* ------------------------------------------------------------------ */
/* destination unreachable (connectors.c) and the generic builder      */

/* The Internet checksum written out here (RFC 1071), so the module's own
 * ptb_checksum() is not what checks its answers. */
static uint16_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i < n; i++)
		s += i % 2 ? p[i] : (uint32_t)p[i] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* An answer to the IPv4 packet pkt[0..len): from its destination to its
 * source, ICMP type/code/rest as given, both checksums right. */
static void check4(const uint8_t *pkt, size_t len, size_t n, uint8_t type, uint8_t code,
		   uint32_t rest)
{
	size_t quote = len < 548 ? len : 548;

	assert_int_equal(n, 28 + quote);
	assert_int_equal(out[0], 0x45);
	assert_int_equal(get16(out + 2), n);
	assert_int_equal(out[8], 64);
	assert_int_equal(out[9], 1);
	assert_int_equal(sum16(out, 20, 0), 0);
	assert_memory_equal(out + 12, pkt + 16, 4);
	assert_memory_equal(out + 16, pkt + 12, 4);
	assert_int_equal(out[20], type);
	assert_int_equal(out[21], code);
	assert_int_equal((uint32_t)get16(out + 24) << 16 | get16(out + 26), rest);
	assert_int_equal(sum16(out + 20, n - 20, 0), 0);
	assert_memory_equal(out + 28, pkt, quote);
}

/* The same for IPv6, the ICMPv6 checksum over the pseudo header. */
static void check6(const uint8_t *pkt, size_t len, size_t n, uint8_t type, uint8_t code,
		   uint32_t rest)
{
	size_t quote = len < 1232 ? len : 1232;
	uint32_t s = 0;

	assert_int_equal(n, 48 + quote);
	assert_int_equal(out[0], 0x60);
	assert_int_equal(get16(out + 4), n - 40);
	assert_int_equal(out[6], 58);
	assert_int_equal(out[7], 64);
	assert_memory_equal(out + 8, pkt + 24, 16);
	assert_memory_equal(out + 24, pkt + 8, 16);
	assert_int_equal(out[40], type);
	assert_int_equal(out[41], code);
	assert_int_equal((uint32_t)get16(out + 44) << 16 | get16(out + 46), rest);
	for (size_t i = 8; i < 40; i += 2)
		s += (uint32_t)get16(out + i);
	s += (uint32_t)(n - 40) + 58;
	assert_int_equal(sum16(out + 40, n - 40, s), 0);
	assert_memory_equal(out + 48, pkt, quote);
	/* and a wrong checksum would show: this check can fail */
	out[48] ^= 1;
	assert_int_not_equal(sum16(out + 40, n - 40, s), 0);
	out[48] ^= 1;
}

static void test_unreachable_ipv4(void **state)
{
	uint8_t pkt[1500];
	size_t n = 0, len;

	(void)state;
	/* DF clear is fine here: unreachable is not "fragmentation needed" */
	len = ip4(pkt, 100, "10.100.0.2", "10.20.1.1", 17, 0);
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	check4(pkt, len, n, 3, 1, 0); /* host unreachable */
	assert_int_equal(ptb_unreachable(pkt, len, 1, out, sizeof(out), &n), 0);
	check4(pkt, len, n, 3, 13, 0); /* administratively prohibited */
	/* an odd length is quoted whole */
	len = ip4(pkt, 101, "10.100.0.2", "10.20.1.1", 6, 1);
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	check4(pkt, len, n, 3, 1, 0);
	/* a big one: 576 bytes in all */
	len = ip4(pkt, 1500, "10.100.0.2", "10.20.1.1", 17, 1);
	assert_int_equal(ptb_unreachable(pkt, len, 1, out, sizeof(out), &n), 0);
	assert_int_equal(n, 576);
	check4(pkt, len, n, 3, 13, 0);
	/* an echo request is answered */
	len = ip4(pkt, 84, "10.100.0.2", "10.20.1.1", 1, 1);
	pkt[20] = 8;
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	check4(pkt, len, n, 3, 1, 0);
}

static void test_unreachable_ipv6(void **state)
{
	uint8_t pkt[1500];
	size_t n = 0, len;

	(void)state;
	len = ip6(pkt, 48, "fd00:100::2", "fd20::5", 17);
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 1, 3, 0); /* address unreachable */
	assert_int_equal(ptb_unreachable(pkt, len, 1, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 1, 1, 0); /* administratively prohibited */
	len = ip6(pkt, 141, "fd00:100::2", "fd20::5", 6);
	assert_int_equal(ptb_unreachable(pkt, len, 1, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 1, 1, 0);
	len = ip6(pkt, 1500, "fd00:100::2", "fd20::5", 17);
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 1280);
	check6(pkt, len, n, 1, 3, 0);
	/* behind a destination options header, an echo request is answered */
	len = ip6(pkt, 104, "fd00:100::2", "fd20::5", 60);
	pkt[40] = 58;
	pkt[41] = 0;
	pkt[48] = 128;
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 1, 3, 0);
	/* the "too big" builder's answers pass the same independent checks */
	len = ip6(pkt, 1500, "fd00:100::2", "2001:db8::1", 17);
	assert_int_equal(ptb_build(pkt, len, 1350, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 2, 0, 1350);
	len = ip4(pkt, 1500, "10.100.0.2", "198.18.0.1", 17, 1);
	assert_int_equal(ptb_build(pkt, len, 1410, out, sizeof(out), &n), 0);
	check4(pkt, len, n, 3, 4, 1410);
}

static void test_unreachable_when_not_to_answer(void **state)
{
	uint8_t pkt[200];
	size_t n = 99, len;

	(void)state;
	/* IPv4: an ICMP error, a non-first fragment, special ends */
	len = ip4(pkt, 100, "10.100.0.2", "10.20.1.1", 1, 0);
	for (uint8_t t = 0; t < 20; t++) {
		pkt[20] = t;
		assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
		assert_int_equal(n != 0, !(t == 3 || t == 4 || t == 5 || t == 11 || t == 12));
	}
	assert_int_equal(ptb_unreachable(pkt, 20, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0); /* ICMP without its type: could be an error */
	len = ip4(pkt, 100, "10.100.0.2", "10.20.1.1", 17, 0);
	pkt[6] = 0x20; /* more fragments, offset 0: the first, answered */
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	assert_int_not_equal(n, 0);
	pkt[7] = 1; /* offset 8 */
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	static const char *const bad4[][2] = {
		{ "10.100.0.2", "255.255.255.255" },
		{ "10.100.0.2", "239.1.2.3" },
		{ "10.100.0.2", "127.0.0.1" },
		{ "0.0.0.0", "10.20.1.1" },
		{ "224.0.0.1", "10.20.1.1" },
		{ "10.100.0.2", "240.0.0.1" },
	};
	for (size_t i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
		len = ip4(pkt, 100, bad4[i][0], bad4[i][1], 17, 0);
		assert_int_equal(ptb_unreachable(pkt, len, 1, out, sizeof(out), &n), 0);
		assert_int_equal(n, 0);
	}
	/* IPv6: an ICMPv6 error, also behind extension headers */
	len = ip6(pkt, 100, "fd00:100::2", "fd20::5", 58);
	pkt[40] = 127;
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ptb_unreachable(pkt, 40, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0); /* ICMPv6 without its type */
	len = ip6(pkt, 120, "fd00:100::2", "fd20::5", 0);
	pkt[40] = 43; /* hop-by-hop, then routing, then ICMPv6 */
	pkt[41] = 0;  /* 8 bytes */
	pkt[48] = 58;
	pkt[49] = 1; /* 16 bytes */
	pkt[64] = 1; /* destination unreachable */
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	pkt[64] = 129; /* an echo reply: answered */
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 1, 3, 0);
	/* an extension header cut short: the upper layer is unknown */
	assert_int_equal(ptb_unreachable(pkt, 52, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	/* more extension headers than followed */
	len = ip6(pkt, 200, "fd00:100::2", "fd20::5", 60);
	for (size_t off = 40; off < 40 + 9 * 8; off += 8) {
		pkt[off] = off < 40 + 8 * 8 ? 60 : 17;
		pkt[off + 1] = 0;
	}
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	pkt[40 + 7 * 8] = 17; /* 8 of them: followed */
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 1, 3, 0);
	/* a non-first fragment */
	len = ip6(pkt, 100, "fd00:100::2", "fd20::5", 44);
	pkt[40] = 17;
	pkt[42] = 0;
	pkt[43] = 0x10; /* offset 2 * 8 */
	assert_int_equal(ptb_unreachable(pkt, len, 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	static const char *const bad6[][2] = {
		{ "fd00:100::2", "ff02::1" },
		{ "ff02::1", "fd20::5" },
		{ "::", "fd20::5" },
		{ "::1", "fd20::5" },
		{ "fd00:100::2", "::" },
		{ "fd00:100::2", "::1" },
	};
	for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
		len = ip6(pkt, 100, bad6[i][0], bad6[i][1], 17);
		assert_int_equal(ptb_unreachable(pkt, len, 1, out, sizeof(out), &n), 0);
		assert_int_equal(n, 0);
	}
	/* malformed, short buffer */
	assert_int_equal(ptb_unreachable(pkt, 0, 0, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	assert_int_equal(ptb_unreachable(pkt, 39, 0, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	assert_int_equal(ptb_unreachable(pkt, 100, 0, out, 100, &n), ZG_ERR_BUFSHORT);
}

/* Any error type of the packet's family; others are refused. */
static void test_icmp_error_generic(void **state)
{
	uint8_t pkt[100];
	size_t n = 0, len;

	(void)state;
	len = ip4(pkt, 100, "10.100.0.2", "198.18.0.1", 17, 0);
	/* time exceeded in transit, parameter problem with its pointer */
	assert_int_equal(ptb_icmp_error(pkt, len, 11, 0, 0, out, sizeof(out), &n), 0);
	check4(pkt, len, n, 11, 0, 0);
	assert_int_equal(ptb_icmp_error(pkt, len, 12, 0, 0x09000000, out, sizeof(out), &n), 0);
	check4(pkt, len, n, 12, 0, 0x09000000);
	/* not an ICMPv4 error type: echo reply, an ICMPv6 type */
	assert_int_equal(ptb_icmp_error(pkt, len, 0, 0, 0, out, sizeof(out), &n), ZG_ERR_INVAL);
	assert_int_equal(ptb_icmp_error(pkt, len, 2, 0, 0, out, sizeof(out), &n), ZG_ERR_INVAL);
	assert_int_equal(n, 0);
	len = ip6(pkt, 100, "fd00:100::2", "2001:db8::1", 17);
	assert_int_equal(ptb_icmp_error(pkt, len, 3, 0, 0, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 3, 0, 0); /* time exceeded */
	assert_int_equal(ptb_icmp_error(pkt, len, 4, 1, 6, out, sizeof(out), &n), 0);
	check6(pkt, len, n, 4, 1, 6); /* parameter problem, pointer 6 */
	assert_int_equal(ptb_icmp_error(pkt, len, 0, 0, 0, out, sizeof(out), &n), ZG_ERR_INVAL);
	assert_int_equal(ptb_icmp_error(pkt, len, 128, 0, 0, out, sizeof(out), &n), ZG_ERR_INVAL);
	assert_int_equal(ptb_icmp_error(pkt, len, 5, 0, 0, out, sizeof(out), &n), ZG_ERR_INVAL);
}

static void test_malformed(void **state)
{
	uint8_t pkt[64], small[100];
	size_t n;

	(void)state;
	memset(pkt, 0, sizeof(pkt));
	assert_int_equal(ptb_build(pkt, 0, 1280, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	pkt[0] = 0x50;
	assert_int_equal(ptb_build(pkt, sizeof(pkt), 1280, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	pkt[0] = 0x44; /* IHL 4: shorter than an IPv4 header */
	assert_int_equal(ptb_build(pkt, sizeof(pkt), 1280, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	pkt[0] = 0x4f; /* IHL 15 = 60 bytes, but only 40 given */
	assert_int_equal(ptb_build(pkt, 40, 1280, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	pkt[0] = 0x45;
	assert_int_equal(ptb_build(pkt, 19, 1280, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	pkt[0] = 0x60;
	assert_int_equal(ptb_build(pkt, 39, 1280, out, sizeof(out), &n), ZG_ERR_MALFORMED);
	assert_int_equal(ptb_build(pkt, 40, 1280, small, sizeof(small), &n), ZG_ERR_BUFSHORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checksum_known_vector),
		cmocka_unit_test(test_c16_ipv4_frag_needed),
		cmocka_unit_test(test_c16_ipv4_small_packet_quoted_whole),
		cmocka_unit_test(test_c16_ipv4_when_not_to_answer),
		cmocka_unit_test(test_c16_ipv6_packet_too_big),
		cmocka_unit_test(test_c16_ipv6_when_not_to_answer),
		cmocka_unit_test(test_unreachable_ipv4),
		cmocka_unit_test(test_unreachable_ipv6),
		cmocka_unit_test(test_unreachable_when_not_to_answer),
		cmocka_unit_test(test_icmp_error_generic),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
