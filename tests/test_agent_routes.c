/* Unit tests for src/agent/routes: advertised ranges → kernel prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
	struct route_prefix a[8], b[8], del[8], add[8];
	size_t na, nb, nd, nadd;
	struct cip_route ra[] = { rng("10.0.0.0", "10.0.0.255", 0), rng("192.0.2.0", "192.0.2.255", 0) };
	struct cip_route rb[] = { rng("10.0.0.0", "10.0.0.255", 0), rng("198.51.100.0", "198.51.100.255", 0) };
	(void)state;
	assert_int_equal(routes_from_ranges(ra, 2, a, 8, &na), 0);
	assert_int_equal(routes_from_ranges(rb, 2, b, 8, &nb), 0);
	routes_diff(a, na, b, nb, del, &nd, add, &nadd);
	assert_string_equal(fmt(del, nd), "192.0.2.0/24");
	assert_string_equal(fmt(add, nadd), "198.51.100.0/24");
	/* the same list again changes nothing */
	routes_diff(a, na, a, na, del, &nd, add, &nadd);
	assert_int_equal(nd, 0);
	assert_int_equal(nadd, 0);
	/* an empty advertisement removes everything */
	routes_diff(a, na, NULL, 0, del, &nd, add, &nadd);
	assert_int_equal(nd, 2);
	assert_int_equal(nadd, 0);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
