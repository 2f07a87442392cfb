/* Unit tests for src/relay/dnsassign: the DNS_ASSIGN the relay sends each
 * client (issue 19.5, checklist C26). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "cipdns.h"
#include "relay/dnsassign.h"
#include "varint.h"
#include "zg_err.h"

static const uint8_t GW4[4] = { 10, 100, 0, 1 };
static struct cipdns_assign got;

/* Decodes a capsule written by dnsassign_for_client into got. */
static void decode(const uint8_t *buf, size_t len)
{
	const uint8_t *q = buf;
	uint64_t t, l;

	assert_int_equal(varint_decode(&q, buf + len, &t), 0);
	assert_int_equal(varint_decode(&q, buf + len, &l), 0);
	assert_true(t == CAPSULE_DNS_ASSIGN);
	assert_int_equal(l, (uint64_t)(buf + len - q));
	assert_int_equal(cipdns_assign_decode(q, (size_t)l, &got), 0);
}

static void test_auto_off_without_domains(void **state)
{
	struct dnsassign *d;
	uint8_t buf[DNSASSIGN_CAPSULE_MAX];
	size_t len;
	char err[256], sum[256];

	(void)state;
	assert_int_equal(dnsassign_new("auto", "", "", GW4, NULL, &d, err, sizeof(err)), 0);
	assert_false(dnsassign_enabled(d));
	assert_int_equal(dnsassign_for_client(d, NULL, 0, buf, sizeof(buf), &len, NULL),
			 ZG_ERR_NOTFOUND);
	dnsassign_summary(d, sum, sizeof(sum));
	assert_string_equal(sum, "off (no dns.domains)");
	dnsassign_free(d);
}

static void test_c26_gateway_and_domains(void **state)
{
	struct dnsassign *d;
	uint8_t buf[DNSASSIGN_CAPSULE_MAX], gw6[16];
	size_t len, dropped = 9;
	char err[256], sum[256];

	(void)state;
	inet_pton(AF_INET6, "fd00:100::1", gw6);
	assert_int_equal(dnsassign_new("auto", "Saas.Example., lab.example lab.example", "", GW4,
				       gw6, &d, err, sizeof(err)),
			 0);
	assert_true(dnsassign_enabled(d));
	assert_int_equal(dnsassign_for_client(d, NULL, 0, buf, sizeof(buf), &len, &dropped), 0);
	assert_int_equal(dropped, 0);
	decode(buf, len);
	assert_int_equal(got.n, 1);
	assert_int_equal(got.cfg[0].nns, 1);
	assert_int_equal(got.cfg[0].ns[0].priority, 1);
	assert_int_equal(got.cfg[0].ns[0].n4, 1);
	assert_memory_equal(got.cfg[0].ns[0].v4[0], GW4, 4);
	assert_int_equal(got.cfg[0].ns[0].n6, 1);
	assert_memory_equal(got.cfg[0].ns[0].v6[0], gw6, 16);
	assert_string_equal(got.cfg[0].ns[0].auth_name, ""); /* plain DNS on port 53 */
	assert_int_equal(got.cfg[0].ns[0].svcparams_len, 0);
	/* canonical: lower case, no final dot, no duplicate */
	assert_int_equal(got.cfg[0].ninternal, 2);
	assert_string_equal(got.cfg[0].internal[0], "saas.example");
	assert_string_equal(got.cfg[0].internal[1], "lab.example");
	assert_int_equal(got.cfg[0].nsearch, 0);
	dnsassign_summary(d, sum, sizeof(sum));
	assert_string_equal(sum, "on, to clients that send one: nameserver 10.100.0.1 fd00:100::1, "
				 "domains saas.example, lab.example");
	assert_int_equal(dnsassign_when(d), DNSASSIGN_ON_ASK);
	dnsassign_free(d);
}

static void test_nameservers_override_gateway(void **state)
{
	struct dnsassign *d;
	uint8_t buf[DNSASSIGN_CAPSULE_MAX];
	size_t len;
	char err[256];

	(void)state;
	assert_int_equal(dnsassign_new("true", ".", "192.0.2.53, 2001:db8::53", GW4, NULL, &d, err,
				       sizeof(err)),
			 0);
	assert_int_equal(dnsassign_when(d), DNSASSIGN_ALWAYS);
	assert_int_equal(dnsassign_for_client(d, NULL, 0, buf, sizeof(buf), &len, NULL), 0);
	decode(buf, len);
	assert_memory_equal(got.cfg[0].ns[0].v4[0], ((uint8_t[]){ 192, 0, 2, 53 }), 4);
	assert_int_equal(got.cfg[0].ns[0].n6, 1);
	assert_int_equal(got.cfg[0].ninternal, 1);
	assert_string_equal(got.cfg[0].internal[0], ""); /* the root: every name */
	dnsassign_free(d);
}

/* The integrator's seam: per-client names from the policy are merged. */
static void test_c26_for_client_merges_policy_names(void **state)
{
	struct dnsassign *d;
	uint8_t buf[DNSASSIGN_CAPSULE_MAX];
	size_t len, dropped;
	char err[256];
	const char *extra[] = { "*.emr-vendor.example", "portal.lab.example", "SAAS.example",
				"bad name", NULL };

	(void)state;
	assert_int_equal(dnsassign_new("auto", "saas.example", "", GW4, NULL, &d, err,
				       sizeof(err)),
			 0);
	assert_int_equal(dnsassign_for_client(d, extra, 5, buf, sizeof(buf), &len, &dropped), 0);
	assert_int_equal(dropped, 2); /* "bad name" and NULL */
	decode(buf, len);
	assert_int_equal(got.cfg[0].ninternal, 3);
	assert_string_equal(got.cfg[0].internal[1], "emr-vendor.example");
	assert_string_equal(got.cfg[0].internal[2], "portal.lab.example");
	dnsassign_free(d);

	/* auto without dns.domains: a client whose policy names domains gets
	 * them, one without gets nothing */
	assert_int_equal(dnsassign_new("auto", "", "", GW4, NULL, &d, err, sizeof(err)), 0);
	assert_false(dnsassign_enabled(d));
	assert_int_equal(dnsassign_for_client(d, extra, 2, buf, sizeof(buf), &len, NULL), 0);
	decode(buf, len);
	assert_int_equal(got.cfg[0].ninternal, 2);
	assert_int_equal(dnsassign_for_client(d, NULL, 0, buf, sizeof(buf), &len, NULL),
			 ZG_ERR_NOTFOUND);
	dnsassign_free(d);
	/* false: never, whatever the policy says */
	assert_int_equal(dnsassign_new("false", "saas.example", "", GW4, NULL, &d, err,
				       sizeof(err)),
			 0);
	assert_int_equal(dnsassign_for_client(d, extra, 2, buf, sizeof(buf), &len, NULL),
			 ZG_ERR_NOTFOUND);
	dnsassign_free(d);
}

static void test_bound_on_domains(void **state)
{
	struct dnsassign *d;
	static uint8_t buf[DNSASSIGN_CAPSULE_MAX];
	static char list[CIPDNS_MAX_DOMAINS * 300], names[CIPDNS_MAX_DOMAINS + 5][300];
	const char *extra[CIPDNS_MAX_DOMAINS + 5];
	size_t len, dropped, i, off = 0;
	char err[256];

	(void)state;
	/* the largest capsule: 32 names of 253 characters fit the buffer */
	for (i = 0; i < CIPDNS_MAX_DOMAINS; i++) {
		memset(names[i], 'a', 253);
		names[i][63] = names[i][127] = names[i][191] = '.';
		names[i][0] = (char)('a' + i % 26);
		names[i][1] = (char)('a' + i / 26);
		names[i][253] = '\0';
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s,", names[i]);
	}
	assert_int_equal(dnsassign_new("auto", list, "", GW4, NULL, &d, err, sizeof(err)), 0);
	for (i = 0; i < 3; i++) {
		snprintf(names[CIPDNS_MAX_DOMAINS + i], 300, "x%zu.example", i);
		extra[i] = names[CIPDNS_MAX_DOMAINS + i];
	}
	assert_int_equal(dnsassign_for_client(d, extra, 3, buf, sizeof(buf), &len, &dropped), 0);
	assert_int_equal(dropped, 3);
	decode(buf, len);
	assert_int_equal(got.cfg[0].ninternal, CIPDNS_MAX_DOMAINS);
	dnsassign_free(d);
	/* 33 in the configuration: an error naming the key */
	off += (size_t)snprintf(list + off, sizeof(list) - off, "one.more");
	assert_int_equal(dnsassign_new("auto", list, "", GW4, NULL, &d, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "dns.domains: more than 32"));
}

static void test_config_errors(void **state)
{
	struct dnsassign *d = NULL;
	char err[256];

	(void)state;
	assert_int_equal(dnsassign_new("maybe", "a.example", "", GW4, NULL, &d, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "dns.enabled: \"maybe\": expected auto, true or false");
	assert_int_equal(dnsassign_new("auto", "a.example, bad_na me;x", "", GW4, NULL, &d, err,
				       sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "dns.domains: \"me;x\" is not a domain name");
	assert_int_equal(dnsassign_new("auto", "a.example", "10.0.0.300", GW4, NULL, &d, err,
				       sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "dns.nameservers: \"10.0.0.300\" is not an IPv4 or IPv6 address");
	assert_int_equal(dnsassign_new("true", "", "", GW4, NULL, &d, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "dns.domains is empty"));
	assert_int_equal(dnsassign_new("false", "a.example", "", GW4, NULL, &d, err, sizeof(err)),
			 0);
	assert_false(dnsassign_enabled(d));
	assert_int_equal(dnsassign_when(d), DNSASSIGN_NEVER);
	dnsassign_summary(d, err, sizeof(err));
	assert_string_equal(err, "off (dns.enabled: false)");
	dnsassign_free(d);
	assert_false(dnsassign_enabled(NULL));
	assert_int_equal(dnsassign_when(NULL), DNSASSIGN_NEVER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auto_off_without_domains),
		cmocka_unit_test(test_c26_gateway_and_domains),
		cmocka_unit_test(test_nameservers_override_gateway),
		cmocka_unit_test(test_c26_for_client_merges_policy_names),
		cmocka_unit_test(test_bound_on_domains),
		cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
