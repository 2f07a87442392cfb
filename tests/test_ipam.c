/* Unit tests for src/relay/ipam: stable, bounded address assignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/ipam.h"
#include "zg_err.h"

static char err[512];

static struct ipam *mk(const char *p4, const char *p6, uint32_t max6)
{
	struct config_prefix a, b;
	struct ipam *ip = NULL;
	assert_int_equal(config_parse_prefix(p4, &a), 0);
	if (p6)
		assert_int_equal(config_parse_prefix(p6, &b), 0);
	assert_int_equal(ipam_new(&a, p6 ? &b : NULL, max6, &ip), 0);
	return ip;
}

static const char *alloc4(struct ipam *ip, const char *id, const char *pref)
{
	static char buf[64];
	uint8_t out[16], pb[16];
	int r = ipam_alloc(ip, id, 4, pref ? (inet_pton(AF_INET, pref, pb), pb) : NULL, out);
	if (r != 0) {
		snprintf(buf, sizeof(buf), "error %d", r);
		return buf;
	}
	inet_ntop(AF_INET, out, buf, sizeof(buf));
	return buf;
}

/* 20.2: the shared pool's answer overrides the local choice; the local
 * pool is then a cache of who had which address. */
static void test_assign_and_known(void **state)
{
	struct ipam *ip = mk("10.100.0.0/24", NULL, 0);
	uint8_t a[16], out[16];
	char s[64];
	(void)state;
	assert_int_equal(ipam_known(ip, "a", 4, out), ZG_ERR_NOTFOUND);
	inet_pton(AF_INET, "10.100.0.9", a);
	assert_int_equal(ipam_assign(ip, "a", 4, a), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	assert_int_equal(ipam_lookup(ip, "a", 4, out), 0);
	assert_string_equal(inet_ntop(AF_INET, out, s, sizeof(s)), "10.100.0.9");
	/* again: nothing changes */
	assert_int_equal(ipam_assign(ip, "a", 4, a), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	/* held by a: nobody else may take it */
	assert_int_equal(ipam_assign(ip, "b", 4, a), ZG_ERR_STATE);
	/* released: still known (remembered) */
	assert_int_equal(ipam_release(ip, "a", 4), 0);
	assert_int_equal(ipam_used(ip, 4), 0);
	assert_int_equal(ipam_known(ip, "a", 4, out), 0);
	assert_string_equal(inet_ntop(AF_INET, out, s, sizeof(s)), "10.100.0.9");
	/* the shared pool gave a's old address to b: a's memory is gone */
	assert_int_equal(ipam_assign(ip, "b", 4, a), 0);
	assert_int_equal(ipam_known(ip, "a", 4, out), ZG_ERR_NOTFOUND);
	/* b moves to .10: .9 is free again, b holds one address */
	inet_pton(AF_INET, "10.100.0.10", a);
	assert_int_equal(ipam_assign(ip, "b", 4, a), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	assert_string_equal(alloc4(ip, "c", "10.100.0.9"), "10.100.0.9");
	/* outside the pool, the gateway, no IPv6 pool, bad id */
	inet_pton(AF_INET, "10.100.1.9", a);
	assert_int_equal(ipam_assign(ip, "d", 4, a), ZG_ERR_RANGE);
	inet_pton(AF_INET, "10.100.0.1", a);
	assert_int_equal(ipam_assign(ip, "d", 4, a), ZG_ERR_RANGE);
	assert_int_equal(ipam_assign(ip, "d", 6, a), ZG_ERR_NOTFOUND);
	assert_int_equal(ipam_assign(ip, "", 4, a), ZG_ERR_INVAL);
	ipam_free(ip);
}

static void test_pool_layout(void **state)
{
	struct ipam *ip = mk("10.100.0.0/24", "fd00:100::/64", 1000);
	uint8_t g[16];
	char s[64];
	(void)state;
	assert_int_equal(ipam_size(ip, 4), 253); /* .2 - .254 */
	assert_int_equal(ipam_size(ip, 6), 1000);
	assert_int_equal(ipam_gateway(ip, 4, g), 0);
	assert_string_equal(inet_ntop(AF_INET, g, s, sizeof(s)), "10.100.0.1");
	assert_int_equal(ipam_gateway(ip, 6, g), 0);
	assert_string_equal(inet_ntop(AF_INET6, g, s, sizeof(s)), "fd00:100::1");
	ipam_free(ip);
	ip = mk("10.0.0.0/30", NULL, 0);
	assert_int_equal(ipam_size(ip, 4), 1);
	assert_int_equal(ipam_size(ip, 6), 0);
	assert_int_equal(ipam_gateway(ip, 6, g), ZG_ERR_NOTFOUND);
	assert_string_equal(alloc4(ip, "only", NULL), "10.0.0.2");
	ipam_free(ip);
}

static void test_deterministic_across_instances(void **state)
{
	struct ipam *a = mk("10.100.0.0/24", NULL, 0), *b = mk("10.100.0.0/24", NULL, 0);
	char first[64];
	(void)state;
	/* the same ID lands on the same address in another instance */
	strcpy(first, alloc4(a, "agent-1", NULL));
	assert_string_equal(alloc4(b, "agent-1", NULL), first);
	/* and after other clients took addresses, as long as its slot is free */
	assert_int_equal(ipam_release(b, "agent-1", 4), 0);
	ipam_free(b);
	b = mk("10.100.0.0/24", NULL, 0);
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof(id), "o%d", i);
		if (strcmp(alloc4(b, id, NULL), first) == 0)
			fail_msg("%s hashed onto agent-1's slot; pick other test IDs", id);
	}
	assert_string_equal(alloc4(b, "agent-1", NULL), first);
	/* idempotent while held */
	assert_string_equal(alloc4(a, "agent-1", NULL), first);
	assert_int_equal(ipam_used(a, 4), 1);
	ipam_free(a);
	ipam_free(b);
}

static void test_reconnect_same_address(void **state)
{
	struct ipam *ip = mk("10.100.0.0/24", NULL, 0);
	char first[64];
	(void)state;
	strcpy(first, alloc4(ip, "agent-1", NULL));
	assert_int_equal(ipam_release(ip, "agent-1", 4), 0);
	assert_int_equal(ipam_used(ip, 4), 0);
	assert_int_equal(ipam_release(ip, "agent-1", 4), ZG_ERR_NOTFOUND);
	/* others come and go; agent-1's remembered slot is not handed out */
	for (int i = 0; i < 100; i++) {
		char id[32];
		snprintf(id, sizeof(id), "c%d", i);
		assert_string_not_equal(alloc4(ip, id, NULL), first);
	}
	assert_string_equal(alloc4(ip, "agent-1", NULL), first);
	ipam_free(ip);
}

static void test_c10_preferred_address(void **state)
{
	struct ipam *ip = mk("10.100.0.0/24", NULL, 0);
	(void)state;
	/* honoured when free */
	assert_string_equal(alloc4(ip, "agent-1", "10.100.0.77"), "10.100.0.77");
	/* not someone else's held address */
	assert_string_not_equal(alloc4(ip, "agent-2", "10.100.0.77"), "10.100.0.77");
	/* outside the pool, the gateway, or 0.0.0.0 ("any"): ignored */
	assert_string_not_equal(alloc4(ip, "agent-3", "192.0.2.1"), "192.0.2.1");
	assert_string_not_equal(alloc4(ip, "agent-4", "10.100.0.1"), "10.100.0.1");
	assert_string_not_equal(alloc4(ip, "agent-5", "0.0.0.0"), "0.0.0.0");
	assert_string_not_equal(alloc4(ip, "agent-6", "10.100.0.255"), "10.100.0.255");
	ipam_free(ip);
}

static void test_exhaustion_and_release(void **state)
{
	struct ipam *ip = mk("10.0.0.0/29", NULL, 0); /* .2 - .6: 5 clients */
	char seen[5][64];
	(void)state;
	assert_int_equal(ipam_size(ip, 4), 5);
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof(id), "c%d", i);
		strcpy(seen[i], alloc4(ip, id, NULL));
		assert_null(strstr(seen[i], "error"));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
	assert_int_equal(ipam_used(ip, 4), 5);
	assert_string_equal(alloc4(ip, "c5", NULL), "error -16"); /* ZG_ERR_LIMIT */
	/* a release makes room; the newcomer takes the remembered slot */
	assert_int_equal(ipam_release(ip, "c2", 4), 0);
	assert_string_equal(alloc4(ip, "c5", NULL), seen[2]);
	ipam_free(ip);
}

static void test_bad_input(void **state)
{
	struct ipam *ip = mk("10.0.0.0/24", NULL, 0), *bad = NULL;
	struct config_prefix p;
	uint8_t out[16];
	(void)state;
	assert_int_equal(ipam_alloc(ip, "", 4, NULL, out), ZG_ERR_INVAL);
	assert_int_equal(ipam_alloc(ip, "has space", 4, NULL, out), ZG_ERR_INVAL);
	assert_int_equal(ipam_alloc(ip, "ok", 6, NULL, out), ZG_ERR_NOTFOUND);
	assert_int_equal(config_parse_prefix("10.0.0.0/31", &p), 0);
	assert_int_equal(ipam_new(&p, NULL, 0, &bad), ZG_ERR_INVAL);
	assert_int_equal(config_parse_prefix("fd00::/64", &p), 0);
	assert_int_equal(ipam_new(&p, NULL, 0, &bad), ZG_ERR_INVAL);
	assert_null(bad);
	ipam_free(ip);
}

static void test_ipv6(void **state)
{
	struct ipam *ip = mk("10.0.0.0/24", "fd00:100::/120", 0);
	uint8_t out[16], pref[16];
	char s[64];
	(void)state;
	assert_int_equal(ipam_size(ip, 6), 254);
	inet_pton(AF_INET6, "fd00:100::42", pref);
	assert_int_equal(ipam_alloc(ip, "agent-1", 6, pref, out), 0);
	assert_string_equal(inet_ntop(AF_INET6, out, s, sizeof(s)), "fd00:100::42");
	assert_int_equal(ipam_lookup(ip, "agent-1", 6, out), 0);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, out), ZG_ERR_NOTFOUND);
	ipam_free(ip);
}

static void test_persistence_roundtrip(void **state)
{
	char dir[] = "/tmp/zg-ipam-XXXXXX", path[256], a1[64], a2[64];
	struct ipam *ip = mk("10.100.0.0/24", "fd00::/64", 100), *ip2;
	uint8_t out[16];
	size_t skipped = 9;
	struct stat st;
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ipam.state", dir);
	/* a missing file is a first start */
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), 0);
	assert_int_equal(skipped, 0);
	strcpy(a1, alloc4(ip, "agent-1", "10.100.0.50"));
	strcpy(a2, alloc4(ip, "agent-2", NULL));
	assert_int_equal(ipam_alloc(ip, "agent-1", 6, NULL, out), 0);
	assert_int_equal(ipam_release(ip, "agent-2", 4), 0);
	assert_int_equal(ipam_save(ip, path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	ipam_free(ip);

	/* a restarted relay gives both their addresses back */
	ip2 = mk("10.100.0.0/24", "fd00::/64", 100);
	assert_int_equal(ipam_load(ip2, path, &skipped, err, sizeof(err)), 0);
	assert_int_equal(skipped, 0);
	assert_int_equal(ipam_used(ip2, 4), 0); /* remembered, not held */
	/* a remembered address is not given to another client that asks for it */
	assert_string_not_equal(alloc4(ip2, "someone-new", "10.100.0.50"), "10.100.0.50");
	assert_string_equal(alloc4(ip2, "agent-2", NULL), a2);
	assert_string_equal(alloc4(ip2, "agent-1", NULL), a1);
	ipam_free(ip2);

	/* a smaller pool today: entries outside it are skipped */
	ip2 = mk("10.100.0.0/27", NULL, 0);
	assert_int_equal(ipam_load(ip2, path, &skipped, err, sizeof(err)), 0);
	assert_true(skipped >= 2); /* .50 and the IPv6 entry at least */
	ipam_free(ip2);
	unlink(path);
	rmdir(dir);
}

static void test_corrupt_state_file(void **state)
{
	char dir[] = "/tmp/zg-ipam-XXXXXX", path[256];
	struct ipam *ip = mk("10.100.0.0/24", NULL, 0);
	size_t skipped;
	FILE *f;
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ipam.state", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# zgate ipam state v1\nagent-1 10.100.0.9\nagent-2 not-an-address\n", f);
	fclose(f);
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ipam.state:3: \"not-an-address\" is not an IP address"));
	/* nothing was loaded: agent-1's line before the bad one is not half-applied */
	assert_string_equal(alloc4(ip, "x", "10.100.0.9"), "10.100.0.9");
	f = fopen(path, "w");
	fputs("agent-1 10.100.0.9 trailing\n", f);
	fclose(f);
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ipam.state:1: expected \"<client-id> <address>\""));
	f = fopen(path, "w");
	for (int i = 0; i < 100; i++)
		fputs("xxxxxxxxxx", f);
	fclose(f);
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ipam.state:1: line too long"));
	unlink(path);
	assert_int_equal(ipam_save(ip, "/nonexistent-dir/ipam.state", err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent-dir/ipam.state: cannot create temporary file"));
	rmdir(dir);
	ipam_free(ip);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_layout),
		cmocka_unit_test(test_assign_and_known),
		cmocka_unit_test(test_deterministic_across_instances),
		cmocka_unit_test(test_reconnect_same_address),
		cmocka_unit_test(test_c10_preferred_address),
		cmocka_unit_test(test_exhaustion_and_release),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_persistence_roundtrip),
		cmocka_unit_test(test_corrupt_state_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
