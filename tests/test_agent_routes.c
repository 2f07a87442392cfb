/* Unit tests for src/agent/routes: advertised ranges → kernel prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "agent/routes.h"
#include "zg_err.h"

static struct cip_route rng(const char *s, const char *e, uint8_t proto)
{
	struct cip_route r;
	memset(&r, 0, sizeof(r));
	if (inet_pton(AF_INET, s, r.start) == 1) {
		r.version = 4;
		assert_int_equal(inet_pton(AF_INET, e, r.end), 1);
	} else {
		r.version = 6;
		assert_int_equal(inet_pton(AF_INET6, s, r.start), 1);
		assert_int_equal(inet_pton(AF_INET6, e, r.end), 1);
	}
	r.proto = proto;
	return r;
}

/* Joins the formatted prefixes with spaces. */
static const char *fmt(const struct route_prefix *p, size_t n)
{
	static char out[4096];
	char one[64];
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? " " : "",
					routes_format(&p[i], one, sizeof(one)));
	return out;
}

static const char *convert(const struct cip_route *r, size_t n)
{
	static struct route_prefix out[256];
	size_t k = 0;
	assert_int_equal(routes_from_ranges(r, n, out, 256, &k), 0);
	return fmt(out, k);
}

static void test_single_prefix(void **state)
{
	struct cip_route r[] = { rng("203.0.113.0", "203.0.113.255", 0) };
	(void)state;
	assert_string_equal(convert(r, 1), "203.0.113.0/24");
}

static void test_unaligned_range_minimal_cover(void **state)
{
	struct cip_route r[] = { rng("10.0.0.1", "10.0.0.6", 0) };
	(void)state;
	assert_string_equal(convert(r, 1), "10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32");
}

static void test_single_address(void **state)
{
	struct cip_route r[] = { rng("192.0.2.7", "192.0.2.7", 6), rng("2001:db8::1", "2001:db8::1", 0) };
	(void)state;
	assert_string_equal(convert(r, 2), "192.0.2.7/32 2001:db8::1/128");
}

static void test_protocols_united(void **state)
{
	/* TCP to one half, UDP to the other, any to an overlapping part */
	struct cip_route r[] = {
		rng("10.1.0.0", "10.1.0.127", 6),
		rng("10.1.0.128", "10.1.0.255", 17),
		rng("10.1.0.64", "10.1.0.191", 0),
	};
	(void)state;
	assert_string_equal(convert(r, 3), "10.1.0.0/24");
}

static void test_adjacent_and_unsorted(void **state)
{
	struct cip_route r[] = {
		rng("10.0.2.0", "10.0.3.255", 0),
		rng("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 0),
		rng("10.0.0.0", "10.0.1.255", 0),
		rng("192.168.0.0", "192.168.0.255", 0),
	};
	(void)state;
	assert_string_equal(convert(r, 4), "10.0.0.0/22 192.168.0.0/24 2001:db8::/32");
}

static void test_full_tunnel_split_in_halves(void **state)
{
	struct cip_route r[] = {
		rng("0.0.0.0", "255.255.255.255", 0),
		rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0),
	};
	(void)state;
	assert_string_equal(convert(r, 2), "0.0.0.0/1 128.0.0.0/1 ::/1 8000::/1");
}

static void test_everything_but_a_hole(void **state)
{
	/* the whole IPv4 space minus 10.0.0.0/8, as a relay with a deny
	 * rule before allow-all advertises it */
	struct cip_route r[] = {
		rng("0.0.0.0", "9.255.255.255", 0),
		rng("11.0.0.0", "255.255.255.255", 0),
	};
	(void)state;
	assert_string_equal(convert(r, 2),
			    "0.0.0.0/5 8.0.0.0/7 11.0.0.0/8 12.0.0.0/6 16.0.0.0/4 32.0.0.0/3 64.0.0.0/2 128.0.0.0/1");
}

static void test_top_of_space(void **state)
{
	struct cip_route r[] = {
		rng("255.255.255.254", "255.255.255.255", 0),
		rng("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0),
	};
	(void)state;
	assert_string_equal(convert(r, 2), "255.255.255.254/31 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124");
}

static void test_empty_and_errors(void **state)
{
	struct route_prefix out[4];
	struct cip_route bad = rng("10.0.0.2", "10.0.0.1", 0);
	struct cip_route many = rng("10.0.0.1", "10.0.0.6", 0);
	size_t k = 99;
	(void)state;
	assert_int_equal(routes_from_ranges(NULL, 0, out, 4, &k), 0);
	assert_int_equal(k, 0);
	assert_int_equal(routes_from_ranges(&bad, 1, out, 4, &k), ZG_ERR_MALFORMED);
	bad.version = 5;
	assert_int_equal(routes_from_ranges(&bad, 1, out, 4, &k), ZG_ERR_VERSION);
	assert_int_equal(routes_from_ranges(&many, 1, out, 3, &k), ZG_ERR_TOO_LARGE);
	assert_int_equal(routes_from_ranges(&many, 1, out, 4, &k), 0);
}

static void test_c07_diff_removes_unlisted(void **state)
{
	struct route_prefix a[8], b[8], del[8], add[8], scratch[8];
	size_t na, nb, nd, nadd;
	struct cip_route ra[] = { rng("10.0.0.0", "10.0.0.255", 0), rng("192.0.2.0", "192.0.2.255", 0) };
	struct cip_route rb[] = { rng("10.0.0.0", "10.0.0.255", 0), rng("198.51.100.0", "198.51.100.255", 0) };
	(void)state;
	assert_int_equal(routes_from_ranges(ra, 2, a, 8, &na), 0);
	assert_int_equal(routes_from_ranges(rb, 2, b, 8, &nb), 0);
	routes_diff(a, na, b, nb, scratch, del, &nd, add, &nadd);
	assert_string_equal(fmt(del, nd), "192.0.2.0/24");
	assert_string_equal(fmt(add, nadd), "198.51.100.0/24");
	/* the same list again changes nothing */
	routes_diff(a, na, a, na, scratch, del, &nd, add, &nadd);
	assert_int_equal(nd, 0);
	assert_int_equal(nadd, 0);
	/* an empty advertisement removes everything */
	routes_diff(a, na, NULL, 0, scratch, del, &nd, add, &nadd);
	assert_int_equal(nd, 2);
	assert_int_equal(nadd, 0);
}

/* Large lists (a relay may advertise 4096 prefixes): the diff is the
 * one-by-one comparison's, each side in its own order, with duplicates,
 * both versions, IPv4 prefixes whose unused address bytes differ (they do
 * not count), and lengths that differ on one address. */
static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static void rnd_prefix(struct route_prefix *p)
{
	memset(p, 0, sizeof(*p));
	p->version = (rnd() & 3) == 0 ? 6 : 4;
	p->len = (uint8_t)(p->version == 4 ? 24 + rnd() % 2 : 64);
	for (int i = 0; i < 16; i++)
		p->addr[i] = (uint8_t)(i < (p->version == 4 ? 3 : 8) ? rnd() % 4 : rnd());
}

/* The reference: each entry compared with every entry of the other list
 * (the way routes_diff itself took for small lists until it always
 * sorted). */
static void diff_reference(const struct route_prefix *o, size_t no, const struct route_prefix *n,
			   size_t nn, struct route_prefix *del, size_t *nd, struct route_prefix *add,
			   size_t *na)
{
	*nd = *na = 0;
	for (size_t i = 0; i < no; i++) {
		int in = 0;

		for (size_t j = 0; j < nn && !in; j++)
			in = routes_equal(&o[i], &n[j]);
		if (!in)
			del[(*nd)++] = o[i];
	}
	for (size_t i = 0; i < nn; i++) {
		int in = 0;

		for (size_t j = 0; j < no && !in; j++)
			in = routes_equal(&n[i], &o[j]);
		if (!in)
			add[(*na)++] = n[i];
	}
}

/* o: no random prefixes; n: nn of them, about half taken from o (so shared
 * and often duplicated), IPv4 ones with a byte set past their prefix. */
static void rnd_lists(struct route_prefix *o, size_t no, struct route_prefix *n, size_t nn)
{
	for (size_t i = 0; i < no; i++)
		rnd_prefix(&o[i]);
	for (size_t i = 0; i < nn; i++) {
		if (no > 0 && rnd() % 2)
			n[i] = o[rnd() % no];
		else
			rnd_prefix(&n[i]);
		if (n[i].version == 4)
			n[i].addr[10] = (uint8_t)rnd(); /* not part of an IPv4 prefix */
	}
}

/* routes_diff(o, n) into d1/a1 (with scratch sc) equals diff_reference()'s
 * answer, computed into d2/a2; *nd and *na are the sizes found. */
static void assert_diff_is_reference(const struct route_prefix *o, size_t no,
				     const struct route_prefix *n, size_t nn, struct route_prefix *sc,
				     struct route_prefix *d1, struct route_prefix *a1,
				     struct route_prefix *d2, struct route_prefix *a2, size_t *nd,
				     size_t *na)
{
	size_t nd2, na2;

	routes_diff(o, no, n, nn, sc, d1, nd, a1, na);
	diff_reference(o, no, n, nn, d2, &nd2, a2, &na2);
	assert_int_equal(*nd, nd2);
	assert_int_equal(*na, na2);
	assert_memory_equal(d1, d2, *nd * sizeof(d1[0]));
	assert_memory_equal(a1, a2, *na * sizeof(a1[0]));
}

static void test_diff_large_lists_match_one_by_one(void **state)
{
	enum {
		N = 4096
	};
	static struct route_prefix o[N], n[N], d1[N], a1[N], d2[N], a2[N], s[N], sc[N];
	size_t nd1, na1;

	(void)state;
	for (int round = 0; round < 3; round++) {
		size_t no = N - (size_t)round * 1000, nn = N - (size_t)round * 700;

		rnd_lists(o, no, n, nn);
		assert_diff_is_reference(o, no, n, nn, sc, d1, a1, d2, a2, &nd1, &na1);
		assert_true(nd1 > 0 && na1 > 0 && nd1 < no && na1 < nn); /* a real mix */
	}
	/* routes_find on a sorted copy agrees with a walk of the list */
	memcpy(s, o, sizeof(s));
	routes_sort(s, N);
	for (size_t i = 0; i + 1 < N; i++)
		assert_true(routes_cmp(&s[i], &s[i + 1]) <= 0);
	for (size_t i = 0; i < N; i++) {
		struct route_prefix p;
		int in = 0;

		rnd_prefix(&p);
		for (size_t j = 0; j < N && !in; j++)
			in = routes_equal(&o[j], &p);
		assert_int_equal(routes_find(s, N, &p), in);
		assert_true(routes_find(s, N, &o[i]));
	}
	assert_false(routes_find(s, 0, &o[0]));
}

/* Small lists (an agent's addresses; what took the one-by-one way before
 * routes_diff always sorted): every pair of lengths up to 12, both empty
 * included, gives the one-by-one comparison's diff, with del, add and the
 * scratch allocated to exactly the sizes the contract names (so that
 * AddressSanitizer sees a write past them). */
static void test_diff_small_lists_match_one_by_one(void **state)
{
	enum {
		M = 12
	};
	struct route_prefix o[M], n[M], d2[M], a2[M];

	(void)state;
	for (size_t no = 0; no <= M; no++) {
		for (size_t nn = 0; nn <= M; nn++) {
			size_t big = no > nn ? no : nn, nd1, na1;
			struct route_prefix *d1 = calloc(no ? no : 1, sizeof(*d1));
			struct route_prefix *a1 = calloc(nn ? nn : 1, sizeof(*a1));
			struct route_prefix *sc = calloc(big ? big : 1, sizeof(*sc));

			assert_non_null(d1);
			assert_non_null(a1);
			assert_non_null(sc);
			rnd_lists(o, no, n, nn);
			assert_diff_is_reference(o, no, n, nn, sc, d1, a1, d2, a2, &nd1, &na1);
			/* old and new may be one list: nothing changes */
			routes_diff(o, no, o, no, sc, d1, &nd1, a1, &na1);
			assert_int_equal(nd1, 0);
			assert_int_equal(na1, 0);
			free(d1);
			free(a1);
			free(sc);
		}
	}
}

/* ------------------------------------------------------------------
 * Issue 16 item 5: what the agent takes from a relay. */

static struct route_prefix P(const char *s) {
	struct route_prefix p;
	assert_int_equal(routes_parse(s, &p), 0);
	return p;
}

static const char *
one(const struct route_prefix *p)
{
	static char buf[64];
	return routes_format(p, buf, sizeof(buf));
}

static void test_i16_parse(void **state)
{
	struct route_prefix p;
	(void)state;
	p = P("10.0.0.0/8");
	assert_string_equal(one(&p), "10.0.0.0/8");
	p = P("192.0.2.7");
	assert_string_equal(one(&p), "192.0.2.7/32");
	p = P("fd00::/8");
	assert_int_equal(p.version, 6);
	assert_string_equal(one(&p), "fd00::/8");
	p = P("2001:db8::1");
	assert_string_equal(one(&p), "2001:db8::1/128");
	p = P("0.0.0.0/0");
	assert_int_equal(p.len, 0);
	assert_int_equal(routes_parse("10.0.0.1/8", &p), ZG_ERR_MALFORMED);
	assert_int_equal(routes_parse("fd00::1/8", &p), ZG_ERR_MALFORMED);
	assert_int_equal(routes_parse("10.0.0.0/33", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("::/129", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("10.0.0.0/", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("10.0.0.0/8x", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("10.0.0.0/-1", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("/8", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("relay.example", &p), ZG_ERR_INVAL);
	assert_int_equal(routes_parse("10.0.0.0/0008", &p), ZG_ERR_INVAL);
}

static void test_i16_covers_and_host(void **state)
{
	struct route_prefix a = P("10.0.0.0/8"), b = P("10.1.2.0/24"), c = P("11.0.0.0/8");
	struct route_prefix h;
	(void)state;
	assert_true(routes_covers(&a, &b));
	assert_false(routes_covers(&b, &a));
	assert_true(routes_covers(&a, &a));
	assert_false(routes_covers(&a, &c));
	assert_false(routes_covers(&(struct route_prefix){ 4, { 0 }, 0 }, &(struct route_prefix){ 6, { 0 }, 128 }));
	assert_true(routes_covers(&(struct route_prefix){ 6, { 0 }, 0 }, &(struct route_prefix){ 6, { 0xfd }, 128 }));
	b = P("10.0.0.128/25");
	assert_false(routes_covers(&b, &(struct route_prefix){ 4, { 10, 0, 0, 127 }, 32 }));
	assert_true(routes_covers(&b, &(struct route_prefix){ 4, { 10, 0, 0, 129 }, 32 }));
	/* an assigned prefix is installed as its first address alone */
	a = P("128.0.0.0/1");
	h = routes_host(&a);
	assert_string_equal(one(&h), "128.0.0.0/32");
	a = P("fd00:100::/64");
	h = routes_host(&a);
	assert_string_equal(one(&h), "fd00:100::/128");
}

static enum route_refusal special(const char *s)
{
	struct route_prefix p = P(s);
	return routes_special(&p);
}

static void test_i16_special_ranges(void **state)
{
	(void)state;
	assert_int_equal(special("0.0.0.0"), ROUTE_UNSPECIFIED);
	assert_int_equal(special("0.1.2.3"), ROUTE_UNSPECIFIED);
	assert_int_equal(special("127.0.0.1"), ROUTE_LOOPBACK);
	assert_int_equal(special("127.0.0.0/8"), ROUTE_LOOPBACK);
	assert_int_equal(special("127.1.0.0/16"), ROUTE_LOOPBACK);
	assert_int_equal(special("169.254.169.254"), ROUTE_LINK_LOCAL);
	assert_int_equal(special("169.254.0.0/16"), ROUTE_LINK_LOCAL);
	assert_int_equal(special("224.0.0.0/4"), ROUTE_MULTICAST);
	assert_int_equal(special("239.1.2.3"), ROUTE_MULTICAST);
	assert_int_equal(special("255.255.255.255"), ROUTE_BROADCAST);
	assert_int_equal(special("240.0.0.1"), ROUTE_RESERVED);
	assert_int_equal(special("::"), ROUTE_UNSPECIFIED);
	assert_int_equal(special("::1"), ROUTE_LOOPBACK);
	assert_int_equal(special("fe80::1"), ROUTE_LINK_LOCAL);
	assert_int_equal(special("febf::/16"), ROUTE_LINK_LOCAL);
	assert_int_equal(special("ff02::1"), ROUTE_MULTICAST);
	assert_int_equal(special("::ffff:8.8.8.8"), ROUTE_RESERVED);
	/* ordinary addresses and ranges */
	assert_int_equal(special("10.100.0.2"), ROUTE_OK);
	assert_int_equal(special("8.8.8.8"), ROUTE_OK);
	assert_int_equal(special("126.255.255.255"), ROUTE_OK);
	assert_int_equal(special("128.0.0.0"), ROUTE_OK);
	assert_int_equal(special("169.253.0.0/16"), ROUTE_OK);
	assert_int_equal(special("223.255.255.255"), ROUTE_OK);
	assert_int_equal(special("fec0::1"), ROUTE_OK);
	assert_int_equal(special("2001:db8::/32"), ROUTE_OK);
	assert_int_equal(special("::2"), ROUTE_OK);
	/* a wider route containing a special range is not itself special:
	 * a full tunnel covers loopback and multicast */
	assert_int_equal(special("0.0.0.0/1"), ROUTE_OK);
	assert_int_equal(special("128.0.0.0/1"), ROUTE_OK);
	assert_int_equal(special("126.0.0.0/7"), ROUTE_OK);
	assert_int_equal(special("::/1"), ROUTE_OK);
	assert_int_equal(special("8000::/1"), ROUTE_OK);
}

static enum route_refusal addr(const char *a, const char *relay, const char *routes)
{
	struct route_prefix p = P(a), r, tun[8];
	size_t n = 0;
	char buf[256], *save = NULL;

	memset(&r, 0, sizeof(r));
	if (relay != NULL)
		r = P(relay);
	(void)snprintf(buf, sizeof(buf), "%s", routes ? routes : "");
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
		tun[n++] = P(t);
	return routes_check_address(&p, &r, tun, n);
}

/* The review's evil relay: 128.0.0.0/1 and 8.8.8.8/32. */
static void test_i16_check_address(void **state)
{
	(void)state;
	assert_int_equal(addr("128.0.0.0/1", "192.0.2.1", "198.18.0.0/24"), ROUTE_NOT_TUNNELED);
	assert_int_equal(addr("8.8.8.8", "192.0.2.1", "198.18.0.0/24"), ROUTE_NOT_TUNNELED);
	assert_int_equal(addr("8.8.8.8", "192.0.2.1", NULL), ROUTE_NOT_TUNNELED);
	assert_int_equal(addr("2001:db8::5", "192.0.2.1", NULL), ROUTE_NOT_TUNNELED);
	/* a global address the tunnel routes is the relay's to hand out */
	assert_int_equal(addr("8.8.8.8", "192.0.2.1", "0.0.0.0/1 128.0.0.0/1"), ROUTE_OK);
	assert_int_equal(addr("203.0.113.9", "192.0.2.1", "203.0.113.0/24"), ROUTE_OK);
	assert_int_equal(addr("2001:db8::5", NULL, "2001:db8::/32"), ROUTE_OK);
	/* private-use pools need no route */
	assert_int_equal(addr("10.100.0.2", "192.0.2.1", NULL), ROUTE_OK);
	assert_int_equal(addr("10.100.0.0/24", "192.0.2.1", NULL), ROUTE_OK);
	assert_int_equal(addr("172.16.0.1", NULL, NULL), ROUTE_OK);
	assert_int_equal(addr("172.32.0.1", NULL, NULL), ROUTE_NOT_TUNNELED);
	assert_int_equal(addr("192.168.1.5", NULL, NULL), ROUTE_OK);
	assert_int_equal(addr("100.64.0.5", NULL, NULL), ROUTE_OK);
	assert_int_equal(addr("100.128.0.5", NULL, NULL), ROUTE_NOT_TUNNELED);
	assert_int_equal(addr("fd00:100::2", NULL, NULL), ROUTE_OK);
	/* special and the relay's own, whatever the routes say */
	assert_int_equal(addr("127.0.0.1", "192.0.2.1", "0.0.0.0/1"), ROUTE_LOOPBACK);
	assert_int_equal(addr("127.0.0.0/8", "192.0.2.1", NULL), ROUTE_LOOPBACK);
	assert_int_equal(addr("169.254.1.1", NULL, NULL), ROUTE_LINK_LOCAL);
	assert_int_equal(addr("224.0.0.1", NULL, NULL), ROUTE_MULTICAST);
	assert_int_equal(addr("0.0.0.0", NULL, NULL), ROUTE_UNSPECIFIED);
	assert_int_equal(addr("255.255.255.255", NULL, NULL), ROUTE_BROADCAST);
	assert_int_equal(addr("fe80::1", NULL, NULL), ROUTE_LINK_LOCAL);
	assert_int_equal(addr("::1", NULL, NULL), ROUTE_LOOPBACK);
	assert_int_equal(addr("192.0.2.1", "192.0.2.1", "0.0.0.0/1 128.0.0.0/1"), ROUTE_RELAY);
	assert_int_equal(addr("10.0.0.1", "10.0.0.1", NULL), ROUTE_RELAY);
	assert_int_equal(addr("10.0.0.0/24", "10.0.0.0", NULL), ROUTE_RELAY);
	assert_int_equal(addr("fd00::1", "fd00::1", NULL), ROUTE_RELAY);
	assert_int_equal(addr("10.0.0.2", "10.0.0.1", NULL), ROUTE_OK);
}

static enum route_refusal rt(const char *p, const char *relay, const char *accept, int filter)
{
	struct route_prefix q = P(p), r, acc[8];
	size_t n = 0;
	char buf[256], *save = NULL;

	memset(&r, 0, sizeof(r));
	if (relay != NULL)
		r = P(relay);
	(void)snprintf(buf, sizeof(buf), "%s", accept ? accept : "");
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
		acc[n++] = P(t);
	return routes_check_route(&q, &r, acc, n, filter);
}

static void test_i16_check_route(void **state)
{
	(void)state;
	assert_int_equal(rt("127.0.0.0/8", "192.0.2.1", NULL, 0), ROUTE_LOOPBACK);
	assert_int_equal(rt("169.254.0.0/16", "192.0.2.1", NULL, 0), ROUTE_LINK_LOCAL);
	assert_int_equal(rt("224.0.0.0/4", "192.0.2.1", NULL, 0), ROUTE_MULTICAST);
	assert_int_equal(rt("ff00::/8", "192.0.2.1", NULL, 0), ROUTE_MULTICAST);
	assert_int_equal(rt("fe80::/64", "192.0.2.1", NULL, 0), ROUTE_LINK_LOCAL);
	assert_int_equal(rt("192.0.2.1/32", "192.0.2.1", NULL, 0), ROUTE_RELAY);
	assert_int_equal(rt("2001:db8::1/128", "2001:db8::1", NULL, 0), ROUTE_RELAY);
	/* wider routes over the relay: kept out of its path by the host route */
	assert_int_equal(rt("192.0.2.0/24", "192.0.2.1", NULL, 0), ROUTE_OK);
	assert_int_equal(rt("0.0.0.0/1", "192.0.2.1", NULL, 0), ROUTE_OK);
	assert_int_equal(rt("192.0.2.2/32", "192.0.2.1", NULL, 0), ROUTE_OK);
	assert_int_equal(rt("198.18.0.0/24", NULL, NULL, 0), ROUTE_OK);
	/* accept_routes: only routes inside */
	assert_int_equal(rt("198.18.0.0/24", "192.0.2.1", "198.18.0.0/16 fd00::/8", 1), ROUTE_OK);
	assert_int_equal(rt("198.18.0.0/16", "192.0.2.1", "198.18.0.0/16", 1), ROUTE_OK);
	assert_int_equal(rt("fd00:1::/32", "192.0.2.1", "198.18.0.0/16 fd00::/8", 1), ROUTE_OK);
	assert_int_equal(rt("203.0.113.0/24", "192.0.2.1", "198.18.0.0/16", 1), ROUTE_NOT_ACCEPTED);
	assert_int_equal(rt("198.0.0.0/8", "192.0.2.1", "198.18.0.0/16", 1), ROUTE_NOT_ACCEPTED);
	assert_int_equal(rt("0.0.0.0/1", "192.0.2.1", "198.18.0.0/16", 1), ROUTE_NOT_ACCEPTED);
	assert_int_equal(rt("198.18.0.0/24", "192.0.2.1", NULL, 1), ROUTE_NOT_ACCEPTED); /* none */
	assert_int_equal(rt("0.0.0.0/1", "192.0.2.1", "0.0.0.0/0", 1), ROUTE_OK);
	/* special ranges stay refused even when accepted */
	assert_int_equal(rt("127.0.0.0/8", "192.0.2.1", "0.0.0.0/0", 1), ROUTE_LOOPBACK);
}

static void test_i16_check_kernel(void **state)
{
	struct route_lookup none = { 0 }, dflt = { 1, 2, 0, 0 }, lan = { 1, 3, 24, 0 },
			    local = { 1, 2, 32, 1 }, ours = { 1, 7, 32, 1 }, tunroute = { 1, 7, 24, 0 },
			    host = { 1, 2, 32, 0 };
	(void)state;
	assert_int_equal(routes_check_kernel(&none, 7), ROUTE_OK);
	assert_int_equal(routes_check_kernel(&dflt, 7), ROUTE_OK);
	assert_int_equal(routes_check_kernel(&lan, 7), ROUTE_HIJACK);
	assert_int_equal(routes_check_kernel(&host, 7), ROUTE_HIJACK);
	assert_int_equal(routes_check_kernel(&local, 7), ROUTE_LOCAL);
	assert_int_equal(routes_check_kernel(&ours, 7), ROUTE_OK);
	assert_int_equal(routes_check_kernel(&tunroute, 7), ROUTE_OK);
}

/* An advertised route against how the kernel routes its ends: another
 * interface's route as wide as it or wider would lose traffic to it (the
 * LAN's /24 against the /24 itself or a /32 inside); a narrower one inside
 * it keeps its own; a default route, none, a local address or our TUN's
 * routes do not count. */
static void test_check_kernel_route(void **state)
{
	struct route_lookup none = { 0 }, dflt = { 1, 2, 0, 0 }, lan = { 1, 3, 24, 0 },
			    local = { 1, 2, 32, 1 }, tunroute = { 1, 7, 16, 0 },
			    pin = { 1, 2, 32, 0 };
	struct route_prefix p24, p32, p16, p0, last;
	char b[64];

	(void)state;
	assert_int_equal(routes_parse("192.168.1.0/24", &p24), 0);
	assert_int_equal(routes_parse("192.168.1.1/32", &p32), 0);
	assert_int_equal(routes_parse("192.168.0.0/16", &p16), 0);
	assert_int_equal(routes_parse("0.0.0.0/1", &p0), 0);
	assert_int_equal(routes_check_kernel_route(&lan, &p24, 7), ROUTE_HIJACK);
	assert_int_equal(routes_check_kernel_route(&lan, &p32, 7), ROUTE_HIJACK);
	assert_int_equal(routes_check_kernel_route(&lan, &p16, 7), ROUTE_OK); /* the LAN's is narrower */
	assert_int_equal(routes_check_kernel_route(&pin, &p0, 7), ROUTE_OK);  /* the relay's pin */
	assert_int_equal(routes_check_kernel_route(&pin, &p32, 7), ROUTE_HIJACK);
	assert_int_equal(routes_check_kernel_route(&none, &p24, 7), ROUTE_OK);
	assert_int_equal(routes_check_kernel_route(&dflt, &p24, 7), ROUTE_OK);
	assert_int_equal(routes_check_kernel_route(&local, &p32, 7), ROUTE_OK);
	assert_int_equal(routes_check_kernel_route(&tunroute, &p24, 7), ROUTE_OK);
	/* the ends asked of the kernel */
	last = routes_last(&p24);
	assert_string_equal(routes_format(&last, b, sizeof(b)), "192.168.1.255/32");
	last = routes_last(&p32);
	assert_string_equal(routes_format(&last, b, sizeof(b)), "192.168.1.1/32");
	assert_int_equal(routes_parse("fd00:1::/33", &p24), 0);
	last = routes_last(&p24);
	assert_string_equal(routes_format(&last, b, sizeof(b)), "fd00:1:7fff:ffff:ffff:ffff:ffff:ffff/128");
}

static void test_i16_refusal_names(void **state)
{
	(void)state;
	for (int a = ROUTE_OK; a <= ROUTE_IPV6_OFF; a++) {
		assert_string_not_equal(routes_refusal_name((enum route_refusal)a), "unknown");
		assert_string_not_equal(routes_refusal_why((enum route_refusal)a), "unknown");
		for (int b = a + 1; b <= ROUTE_IPV6_OFF; b++)
			assert_string_not_equal(routes_refusal_name((enum route_refusal)a),
						routes_refusal_name((enum route_refusal)b));
	}
	assert_string_equal(routes_refusal_name(ROUTE_NOT_TUNNELED), "not_tunneled");
	assert_string_equal(routes_refusal_name((enum route_refusal)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_prefix),
		cmocka_unit_test(test_unaligned_range_minimal_cover),
		cmocka_unit_test(test_single_address),
		cmocka_unit_test(test_protocols_united),
		cmocka_unit_test(test_adjacent_and_unsorted),
		cmocka_unit_test(test_full_tunnel_split_in_halves),
		cmocka_unit_test(test_everything_but_a_hole),
		cmocka_unit_test(test_top_of_space),
		cmocka_unit_test(test_empty_and_errors),
		cmocka_unit_test(test_c07_diff_removes_unlisted),
		cmocka_unit_test(test_diff_large_lists_match_one_by_one),
		cmocka_unit_test(test_diff_small_lists_match_one_by_one),
		cmocka_unit_test(test_i16_parse),
		cmocka_unit_test(test_i16_covers_and_host),
		cmocka_unit_test(test_i16_special_ranges),
		cmocka_unit_test(test_i16_check_address),
		cmocka_unit_test(test_i16_check_route),
		cmocka_unit_test(test_i16_check_kernel),
		cmocka_unit_test(test_check_kernel_route),
		cmocka_unit_test(test_i16_refusal_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
