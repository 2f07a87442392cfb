/*
 * test_agent_routepace.c — route changes at a bounded rate (routepace.h),
 * on a fake clock: a burst is applied at once, a flood beyond it is
 * coalesced to one route set per token, the last change is always
 * applied, and a peer within the rate is never delayed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/routepace.h"

/* A peer that floods: 1000 changes at one instant. Only the burst is
 * applied then; the rest wait as one, applied when the next token comes,
 * and nothing else until a change comes again. */
static void test_flood_coalesced(void **state)
{
	struct routepace p;
	uint64_t now = 5000, due = 0, first_due = 0;
	unsigned now_applied = 0;

	(void)state;
	routepace_init(&p, ROUTEPACE_PER_S, ROUTEPACE_BURST, now);
	for (int i = 0; i < 1000; i++) {
		if (routepace_request(&p, now, &due))
			now_applied++;
		else if (first_due == 0)
			first_due = due;
		else
			assert_true(due == first_due); /* one timer, armed once */
	}
	assert_int_equal(now_applied, ROUTEPACE_BURST);
	assert_true(routepace_pending(&p));
	assert_true(first_due == now + 1000 / ROUTEPACE_PER_S);
	/* not yet due: nothing, and when to come back */
	assert_int_equal(routepace_fire(&p, first_due - 1, &due), 0);
	assert_true(due == first_due);
	assert_true(routepace_pending(&p));
	/* due: the latest list is applied, once */
	assert_int_equal(routepace_fire(&p, first_due, &due), 1);
	assert_false(routepace_pending(&p));
	assert_int_equal(routepace_fire(&p, first_due + 10000, &due), 0);
	assert_int_equal(p.cnt.requested, 1000);
	assert_int_equal(p.cnt.applied, ROUTEPACE_BURST + 1);
	assert_int_equal(p.cnt.coalesced, 1000 - ROUTEPACE_BURST - 1);
	assert_int_equal(p.cnt.requested, p.cnt.applied + p.cnt.coalesced);
}

/* A sustained flood is applied at ROUTEPACE_PER_S a second, whatever its
 * rate: 100 changes a millisecond for 10 s. */
static void test_sustained_rate(void **state)
{
	struct routepace p;
	uint64_t start = 1000, now, due = 0, timer = 0;
	int armed = 0;

	(void)state;
	routepace_init(&p, ROUTEPACE_PER_S, ROUTEPACE_BURST, start);
	for (now = start; now < start + 10000; now++) {
		if (armed && now >= timer) {
			armed = 0;
			if (!routepace_fire(&p, now, &due)) {
				timer = due;
				armed = 1;
			}
		}
		for (int k = 0; k < 100; k++) {
			if (!routepace_request(&p, now, &due)) {
				assert_true(due > now);
				timer = due;
				armed = 1;
			}
		}
	}
	/* the burst, then one per token: 10 s at ROUTEPACE_PER_S */
	assert_true(p.cnt.applied <= ROUTEPACE_BURST + 10 * ROUTEPACE_PER_S + 1);
	assert_true(p.cnt.applied >= ROUTEPACE_BURST + 10 * ROUTEPACE_PER_S - 1);
	assert_int_equal(p.cnt.requested, 100 * 10000);
	/* the last change is still applied */
	assert_true(armed && routepace_pending(&p));
	assert_int_equal(routepace_fire(&p, timer, &due), 1);
	assert_false(routepace_pending(&p));
}

/* A peer within the rate (a zgate relay: one advertisement per 100 ms,
 * 20 ms apart in runs of a few while DNS answers wait) is never delayed. */
static void test_conforming_peer_never_waits(void **state)
{
	struct routepace p;
	uint64_t now = 0, due;

	(void)state;
	routepace_init(&p, ROUTEPACE_PER_S, ROUTEPACE_BURST, now);
	for (int i = 0; i < 600; i++) { /* a minute at 10 a second */
		now += 100;
		assert_int_equal(routepace_request(&p, now, &due), 1);
	}
	for (int run = 0; run < 20; run++) { /* 20 runs of 5 at 20 ms, 1 s apart */
		now += 1000;
		for (int i = 0; i < 5; i++, now += 20)
			assert_int_equal(routepace_request(&p, now, &due), 1);
	}
	assert_int_equal(p.cnt.coalesced, 0);
	assert_false(routepace_pending(&p));
}

/* A clock that goes backwards neither refills nor breaks the timer. */
static void test_clock_backwards(void **state)
{
	struct routepace p;
	uint64_t due = 0;

	(void)state;
	routepace_init(&p, 1, 1, 100000);
	assert_int_equal(routepace_request(&p, 100000, &due), 1);
	assert_int_equal(routepace_request(&p, 100000, &due), 0);
	assert_true(due == 101000);
	assert_int_equal(routepace_fire(&p, 50000, &due), 0);
	assert_true(due > 50000);
	assert_true(routepace_pending(&p));
	assert_int_equal(routepace_fire(&p, due, &due), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flood_coalesced),
		cmocka_unit_test(test_sustained_rate),
		cmocka_unit_test(test_conforming_peer_never_waits),
		cmocka_unit_test(test_clock_backwards),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
