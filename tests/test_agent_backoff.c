/* Unit tests for src/agent/backoff: the reconnect schedule and its jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/backoff.h"

/* A small deterministic generator standing in for getrandom(). */
static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void test_ceilings_double_up_to_the_cap(void **state)
{
	static const uint32_t want[] = { 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };
	struct backoff b;

	(void)state;
	backoff_init(&b, 500, 30000);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(backoff_ceiling(&b), want[i]);
		(void)backoff_next(&b, 0);
	}
}

static void test_first_retry_within_a_second(void **state)
{
	struct backoff b;
	uint32_t s = 12345;

	(void)state;
	for (int i = 0; i < 10000; i++) {
		uint32_t d;

		backoff_init(&b, 500, 30000);
		d = backoff_next(&b, xorshift(&s));
		assert_true(d >= 250 && d <= 500);
	}
	/* the extremes of the random value reach both bounds */
	backoff_init(&b, 500, 30000);
	assert_int_equal(backoff_next(&b, 0), 250);
	backoff_init(&b, 500, 30000);
	assert_int_equal(backoff_next(&b, 250), 500);
	backoff_init(&b, 500, 30000);
	assert_true(backoff_next(&b, UINT32_MAX) <= 500);
}

static void test_jitter_bounds_every_attempt(void **state)
{
	struct backoff b;
	uint32_t s = 99;

	(void)state;
	for (int run = 0; run < 200; run++) {
		backoff_init(&b, 500, 30000);
		for (int k = 0; k < 20; k++) {
			uint32_t c = backoff_ceiling(&b), d = backoff_next(&b, xorshift(&s));

			assert_true(d >= c / 2);
			assert_true(d <= c);
			assert_true(d <= 30000);
		}
	}
}

static void test_jitter_spreads(void **state)
{
	/* At the cap, delays fall in both halves of [15 s, 30 s]: agents that
	 * lost the same relay do not come back in step. */
	struct backoff b;
	uint32_t s = 7, lo = UINT32_MAX, hi = 0;
	int low_half = 0, high_half = 0;

	(void)state;
	backoff_init(&b, 500, 30000);
	for (int i = 0; i < 10; i++)
		(void)backoff_next(&b, 0);
	for (int i = 0; i < 1000; i++) {
		uint32_t d = backoff_next(&b, xorshift(&s));

		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		if (d < 22500)
			low_half++;
		else
			high_half++;
	}
	assert_true(lo >= 15000 && hi <= 30000);
	assert_true(low_half > 300 && high_half > 300);
}

static void test_reset_and_clamping(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 500, 30000);
	for (int i = 0; i < 5; i++)
		(void)backoff_next(&b, 0);
	backoff_reset(&b);
	assert_int_equal(backoff_ceiling(&b), 500);
	/* a cap below the start is raised to it; a zero start becomes 1 ms */
	backoff_init(&b, 800, 100);
	assert_int_equal(backoff_ceiling(&b), 800);
	(void)backoff_next(&b, 0);
	assert_int_equal(backoff_ceiling(&b), 800);
	backoff_init(&b, 0, 10);
	assert_int_equal(backoff_ceiling(&b), 1);
	assert_true(backoff_next(&b, 5) <= 1);
}

static void test_long_outage_no_overflow(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 3000000, UINT32_MAX);
	for (int i = 0; i < 100000; i++)
		(void)backoff_next(&b, (uint32_t)i);
	assert_int_equal(backoff_ceiling(&b), UINT32_MAX);
	assert_true(backoff_next(&b, 0) == UINT32_MAX / 2 + 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ceilings_double_up_to_the_cap),
		cmocka_unit_test(test_first_retry_within_a_second),
		cmocka_unit_test(test_jitter_bounds_every_attempt),
		cmocka_unit_test(test_jitter_spreads),
		cmocka_unit_test(test_reset_and_clamping),
		cmocka_unit_test(test_long_outage_no_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
