/*
 * Unit tests for src/common/ratelimit: token buckets and per-key buckets
 * under a global cap, on a fake clock (every call takes "now").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ratelimit.h"
#include "zg_err.h"

static int
take_n(struct rl_bucket *b, int n, uint64_t now)
{
	int k = 0;

	while (n-- > 0)
		k += rl_bucket_take(b, now);
	return k;
}

static void
test_bucket_burst_then_rate(void **state)
{
	struct rl_bucket b;

	(void)state;
	rl_bucket_init(&b, 10, 5, 1000);
	assert_int_equal(take_n(&b, 20, 1000), 5); /* the burst */
	assert_int_equal(take_n(&b, 20, 1100), 1); /* 100 ms at 10/s */
	assert_int_equal(take_n(&b, 20, 1150), 0); /* half a token */
	assert_int_equal(take_n(&b, 20, 1200), 1); /* the other half */
	/* a long pause refills to the burst, not beyond */
	assert_int_equal(take_n(&b, 20, 1000000000), 5);
	/* a clock that goes back refills nothing */
	assert_int_equal(take_n(&b, 20, 500), 0);
}

static void
test_bucket_unlimited_and_huge_gap(void **state)
{
	struct rl_bucket b;

	(void)state;
	rl_bucket_init(&b, 0, 0, 0);
	assert_int_equal(take_n(&b, 100, 0), 100);
	/* a gap of centuries at a high rate: no overflow, capped */
	rl_bucket_init(&b, 4000000000u, 3, 0);
	assert_int_equal(take_n(&b, 3, 0), 3);
	assert_int_equal(take_n(&b, 10, UINT64_MAX / 2), 3);
}

static enum rl_result
take_key(struct rl_fair *f, const char *k, uint64_t now)
{
	return rl_fair_take(f, k, strlen(k), now);
}

/* One key's flood empties its own bucket only: another key still passes. */
static void
test_fair_flood_does_not_starve_others(void **state)
{
	struct rl_fair f;
	int i, pass = 0;

	(void)state;
	assert_int_equal(rl_fair_init(&f, 64, 20, 20, 500, 250, 42, 0), 0);
	for (i = 0; i < 30000; i++)
		pass += take_key(&f, "flooder", 10) == RL_PASS;
	assert_int_equal(pass, 20);
	assert_int_equal(take_key(&f, "flooder", 10), RL_KEY);
	assert_int_equal(take_key(&f, "agent-2", 10), RL_PASS);
	/* refills at the key's rate: 1 s later 20 more, no more */
	pass = 0;
	for (i = 0; i < 1000; i++)
		pass += take_key(&f, "flooder", 1010) == RL_PASS;
	assert_int_equal(pass, 20);
	rl_fair_free(&f);
}

/* The global cap holds whatever the number of keys, and a key refused by
 * its own bucket takes nothing from the global one. */
static void
test_fair_global_cap(void **state)
{
	struct rl_fair f;
	char k[32];
	int i, pass = 0;

	(void)state;
	assert_int_equal(rl_fair_init(&f, 256, 2, 2, 10, 10, 7, 0), 0);
	/* key refusals leave the global bucket alone */
	for (i = 0; i < 100; i++)
		(void)take_key(&f, "one", 0);
	assert_int_equal(f.global.tokens_milli, 8000); /* 10 - 2 */
	for (i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "client-%d", i);
		pass += take_key(&f, k, 0) == RL_PASS;
	}
	assert_int_equal(pass, 8);
	assert_int_equal(take_key(&f, "fresh", 0), RL_GLOBAL);
	/* 100 ms refills one global token */
	assert_int_equal(take_key(&f, "fresh", 100), RL_PASS);
	assert_int_equal(take_key(&f, "fresh2", 100), RL_GLOBAL);
	rl_fair_free(&f);
}

/* More keys than slots: keys evict each other, each eviction is counted,
 * and the global cap still bounds what all of them get. */
static void
test_fair_eviction_bounded_by_global(void **state)
{
	struct rl_fair f;
	char k[32];
	int i, round, pass = 0;

	(void)state;
	assert_int_equal(rl_fair_init(&f, 4, 1, 1, 50, 50, 1, 0), 0);
	for (round = 0; round < 10; round++) {
		for (i = 0; i < 40; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			pass += take_key(&f, k, 0) == RL_PASS;
		}
	}
	assert_true(f.evictions > 0);
	assert_int_equal(pass, 50);
	rl_fair_free(&f);
}

/* A key whose slot the other choice frees keeps its own bucket: two keys
 * within the two-slot reach do not reset each other. */
static void
test_fair_two_keys_keep_state(void **state)
{
	struct rl_fair f;
	int i;

	(void)state;
	assert_int_equal(rl_fair_init(&f, 2, 1, 3, 0, 0, 99, 0), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(take_key(&f, "a", 0), RL_PASS);
		assert_int_equal(take_key(&f, "b", 0), RL_PASS);
	}
	assert_int_equal(take_key(&f, "a", 0), RL_KEY);
	assert_int_equal(take_key(&f, "b", 0), RL_KEY);
	assert_int_equal(f.evictions, 0);
	rl_fair_free(&f);
}

static void
test_fair_bad_args(void **state)
{
	struct rl_fair f;

	(void)state;
	assert_int_equal(rl_fair_init(&f, 1, 1, 1, 1, 1, 0, 0), ZG_ERR_INVAL);
	rl_fair_free(&f); /* harmless after a failed init */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_burst_then_rate),
		cmocka_unit_test(test_bucket_unlimited_and_huge_gap),
		cmocka_unit_test(test_fair_flood_does_not_starve_others),
		cmocka_unit_test(test_fair_global_cap),
		cmocka_unit_test(test_fair_eviction_bounded_by_global),
		cmocka_unit_test(test_fair_two_keys_keep_state),
		cmocka_unit_test(test_fair_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
