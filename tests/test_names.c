/* Unit tests for src/relay/names: bindings of learned addresses to names
 * and rules, TTL clamping and expiry on an injected clock, the per-client
 * cap, and the learned routes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "relay/names.h"
#include "zg_err.h"

static struct stack_addr A(const char *s) {
	struct stack_addr a;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, s, a.a) == 1) {
		a.version = 4;
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, a.a), 1);
		a.version = 6;
	}
	return a;
}

static struct names *
mk(uint32_t floor_ms, uint32_t cap_ms, uint32_t max)
{
	struct names_config c = { floor_ms, cap_ms, max };
	struct names *n = NULL;
	assert_int_equal(names_new(&c, &n), 0);
	return n;
}

struct chg {
	int calls;
	char last[64];
};

static void on_changed(void *ctx, const char *client)
{
	struct chg *c = ctx;
	c->calls++;
	(void)snprintf(c->last, sizeof(c->last), "%s", client);
}

static void test_bind_lookup_clamp_expire(void **state)
{
	struct names *n = mk(30000, 3600000, 16);
	struct stack_addr x = A("192.0.2.10"), y = A("2001:db8::10");
	const struct names_binding *b;
	struct names_counts k;
	struct chg chg = { 0 };
	uint64_t t = 1000000;
	(void)state;

	/* TTL 5 s is raised to the 30 s floor */
	assert_int_equal(names_bind(n, "agent-1", &x, "emr", "portal.lab.example", 5, t), 1);
	/* TTL 1 day is cut to the 1 h cap */
	assert_int_equal(names_bind(n, "agent-1", &y, "emr", "portal.lab.example", 86400, t), 1);
	b = names_lookup(n, "agent-1", &x, t);
	assert_non_null(b);
	assert_string_equal(b->rule, "emr");
	assert_string_equal(b->name, "portal.lab.example");
	assert_int_equal(b->expires_ms, t + 30000);
	assert_int_equal(names_lookup(n, "agent-1", &y, t)->expires_ms, t + 3600000);
	/* another client does not see it */
	assert_null(names_lookup(n, "agent-2", &x, t));
	/* refreshing: same address, later expiry, newest name; not new */
	assert_int_equal(names_bind(n, "agent-1", &x, "emr", "www.lab.example", 60, t + 1000), 0);
	b = names_lookup(n, "agent-1", &x, t + 1000);
	assert_string_equal(b->name, "www.lab.example");
	assert_int_equal(b->expires_ms, t + 61000);
	/* a shorter TTL later does not shorten it */
	assert_int_equal(names_bind(n, "agent-1", &x, "emr", "www.lab.example", 1, t + 2000), 0);
	assert_int_equal(names_lookup(n, "agent-1", &x, t + 2000)->expires_ms, t + 61000);
	/* expiry: not yet at t+60999, gone at t+61000 (lookup and table) */
	assert_int_equal(names_expire(n, t + 60999, on_changed, &chg), t + 61000);
	assert_int_equal(chg.calls, 0);
	assert_null(names_lookup(n, "agent-1", &x, t + 61000));
	assert_int_equal(names_expire(n, t + 61000, on_changed, &chg), t + 3600000);
	assert_int_equal(chg.calls, 1);
	assert_string_equal(chg.last, "agent-1");
	names_get_counts(n, &k);
	assert_int_equal(k.bindings, 1);
	assert_int_equal(k.learned, 2);
	assert_int_equal(k.expired, 1);
	assert_int_equal(names_expire(n, t + 3600000, on_changed, &chg), UINT64_MAX);
	assert_int_equal(chg.calls, 2);
	names_get_counts(n, &k);
	assert_int_equal(k.bindings, 0);
	/* bound again after expiry: new once more */
	assert_int_equal(names_bind(n, "agent-1", &x, "emr", "portal.lab.example", 5, t), 1);
	names_free(n);
}

static void test_cap_routes_forget(void **state)
{
	struct names *n = mk(1000, 10000, 3);
	struct cip_route r[8];
	struct stack_addr a[4] = { A("192.0.2.1"), A("192.0.2.2"), A("2001:db8::3"), A("192.0.2.4") };
	struct names_counts k;
	size_t all;
	(void)state;

	for (int i = 0; i < 3; i++)
		assert_int_equal(names_bind(n, "c", &a[i], "r", "x.example", 60, 0), 1);
	assert_int_equal(names_bind(n, "c", &a[3], "r", "x.example", 60, 0), ZG_ERR_LIMIT);
	/* at the cap, an address already bound is still refreshed */
	assert_int_equal(names_bind(n, "c", &a[0], "r", "x.example", 60, 0), 0);
	/* the cap is per client */
	assert_int_equal(names_bind(n, "d", &a[3], "r", "x.example", 60, 0), 1);
	names_get_counts(n, &k);
	assert_int_equal(k.cap_hits, 1);
	assert_int_equal(names_routes(n, "c", r, 8, &all), 3);
	assert_int_equal(all, 3);
	int v4 = 0, v6 = 0;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(r[i].proto, 0);
		assert_memory_equal(r[i].start, r[i].end, 16);
		if (r[i].version == 4)
			v4++;
		else
			v6++;
	}
	assert_int_equal(v4, 2);
	assert_int_equal(v6, 1);
	assert_int_equal(names_routes(n, "c", r, 2, &all), 2);
	assert_int_equal(all, 3);
	assert_int_equal(names_routes(n, "nobody", r, 8, &all), 0);
	assert_int_equal(all, 0);
	names_forget_client(n, "c");
	assert_null(names_lookup(n, "c", &a[0], 0));
	assert_non_null(names_lookup(n, "d", &a[3], 0));
	/* bad input */
	struct stack_addr bad = { 0 };
	assert_int_equal(names_bind(n, "c", &bad, "r", "x", 1, 0), ZG_ERR_INVAL);
	names_free(n);
	/* floor above cap is refused; a cap of 0 binds nothing */
	struct names_config c = { 2000, 1000, 1 };
	struct names *m = NULL;
	assert_int_equal(names_new(&c, &m), ZG_ERR_INVAL);
	m = mk(1000, 1000, 0);
	assert_int_equal(names_bind(m, "c", &a[0], "r", "x", 1, 0), ZG_ERR_LIMIT);
	names_free(m);
}

/* Many clients and bindings: every one found, all freed (ASan checks). */
static void test_many(void **state)
{
	struct names *n = mk(1000, 1000000, 1000);
	char id[32];
	(void)state;
	for (unsigned c = 0; c < 50; c++) {
		(void)snprintf(id, sizeof(id), "client-%u", c);
		for (unsigned i = 0; i < 200; i++) {
			struct stack_addr a = A("10.0.0.0");
			a.a[2] = (uint8_t)c;
			a.a[3] = (uint8_t)i;
			assert_int_equal(names_bind(n, id, &a, "r", "n.example", i + 1, 0), 1);
		}
	}
	struct stack_addr a = A("10.0.7.9");
	assert_non_null(names_lookup(n, "client-7", &a, 0));
	assert_null(names_lookup(n, "client-8", &a, 0));
	/* after 100.5 s half of each client's bindings (TTL 1..200 s) are gone */
	(void)names_expire(n, 100500, NULL, NULL);
	struct names_counts k;
	names_get_counts(n, &k);
	assert_int_equal(k.bindings, 50 * 100);
	names_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bind_lookup_clamp_expire),
		cmocka_unit_test(test_cap_routes_forget),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
