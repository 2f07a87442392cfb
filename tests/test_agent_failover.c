/* Unit tests for src/agent/failover: which relay is tried next and after
 * how long. The clock is a number the test moves; nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/failover.h"

#define S 1000000000ull
#define STABLE (10 * S)
/* rnd = UINT32_MAX... picks within [c/2, c]; rnd = 0 picks c/2 exactly. */
#define LOW 0u

static void test_one_relay_is_plain_backoff(void **state)
{
	struct failover f;
	uint64_t now = 100 * S;

	(void)state;
	failover_init(&f, 1, 500, 4000, STABLE);
	/* every failure waits, the ceiling doubling up to the cap */
	assert_int_equal(failover_failed(&f, now, 0, LOW), 250);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 500);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 1000);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 2000);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 2000);
	assert_int_equal(f.cur, 0);
	assert_int_equal(f.switches, 0);
	/* a tunnel that held resets the backoff */
	failover_opened(&f, now);
	assert_int_equal(failover_failed(&f, now + STABLE, 0, LOW), 250);
	/* one that did not, does not */
	failover_opened(&f, now);
	assert_int_equal(failover_failed(&f, now + STABLE - 1, 0, LOW), 500);
	/* nor does 0 relays break anything: taken as one */
	failover_init(&f, 0, 500, 4000, STABLE);
	assert_int_equal(f.n, 1);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 250);
}

/* Each relay once per round, at once; the backoff between rounds. */
static void test_rounds(void **state)
{
	struct failover f;
	uint64_t now = 5 * S;

	(void)state;
	failover_init(&f, 3, 500, 30000, STABLE);
	assert_int_equal(f.cur, 0);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0); /* 0 failed: 1 at once */
	assert_int_equal(f.cur, 1);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0); /* 1 failed: 2 at once */
	assert_int_equal(f.cur, 2);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 250); /* all failed: wait */
	assert_int_equal(f.cur, 0);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 500); /* rounds back off */
	assert_int_equal(f.cur, 0);
	assert_int_equal(f.switches, 6);
	for (int i = 0; i < 30; i++)
		(void)failover_failed(&f, now, 0, LOW);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 15000); /* capped */
}

/* The e2e story: on A for a while, A dies: B at once; B holds, dies: A
 * at once. The backoff never grew. */
static void test_lost_tunnel_moves_on_at_once(void **state)
{
	struct failover f;
	uint64_t now = 1 * S;

	(void)state;
	failover_init(&f, 2, 500, 30000, STABLE);
	failover_opened(&f, now);
	now += 60 * S;
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0);
	assert_int_equal(f.cur, 1);
	failover_opened(&f, now);
	now += 60 * S;
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0);
	assert_int_equal(f.cur, 0);
	assert_int_equal(f.switches, 2);
	/* both down now: A fails, the round is over: wait */
	assert_int_equal(failover_failed(&f, now, 0, LOW), 250);
	assert_int_equal(f.cur, 1);
}

/* A relay that accepts and drops at once cannot make the agent spin: the
 * short tunnel counts as that relay's failure. */
static void test_flapping_relays_back_off(void **state)
{
	struct failover f;
	uint64_t now = 1 * S;
	uint32_t waited = 0;

	(void)state;
	failover_init(&f, 2, 500, 30000, STABLE);
	for (int i = 0; i < 20; i++) {
		failover_opened(&f, now);
		now += S / 10;
		waited += failover_failed(&f, now, 0, LOW);
	}
	/* 10 rounds of two: 250+500+1000+...+15000 ms at the low end */
	assert_int_equal(waited, 250 + 500 + 1000 + 2000 + 4000 + 8000 + 15000 * 4);
}

/* GOAWAY: the relay asked the agent to leave; it is not a failure. */
static void test_goaway_starts_afresh(void **state)
{
	struct failover f;
	uint64_t now = 1 * S;

	(void)state;
	failover_init(&f, 2, 500, 30000, STABLE);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 0);
	assert_int_equal(failover_failed(&f, now, 0, LOW), 250);
	assert_int_equal(f.cur, 0);
	failover_opened(&f, now);
	/* after 1 s on A the relay drains: B at once, the round new */
	assert_int_equal(failover_failed(&f, now + S, 1, LOW), 0);
	assert_int_equal(f.cur, 1);
	assert_int_equal(failover_failed(&f, now + S, 0, LOW), 250); /* backoff reset too */
}

/* New certificates: the round and the backoff start again where it is. */
static void test_restart(void **state)
{
	struct failover f;

	(void)state;
	failover_init(&f, 3, 500, 30000, STABLE);
	for (int i = 0; i < 7; i++)
		(void)failover_failed(&f, S, 0, LOW);
	assert_int_equal(f.cur, 1);
	failover_restart(&f);
	assert_int_equal(f.cur, 1);
	assert_int_equal(failover_failed(&f, S, 0, LOW), 0);
	assert_int_equal(failover_failed(&f, S, 0, LOW), 0);
	assert_int_equal(failover_failed(&f, S, 0, LOW), 250);
	assert_int_equal(f.cur, 1);
}

/* The jitter of backoff.h applies to the waits between rounds. */
static void test_jitter(void **state)
{
	struct failover f;

	(void)state;
	failover_init(&f, 2, 1000, 30000, STABLE);
	(void)failover_failed(&f, S, 0, 12345);
	assert_int_equal(failover_failed(&f, S, 0, 1000), 500 + 1000 % 501);
	(void)failover_failed(&f, S, 0, 0);
	assert_int_equal(failover_failed(&f, S, 0, UINT32_MAX), 1000 + UINT32_MAX % 1001);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_relay_is_plain_backoff),
		cmocka_unit_test(test_rounds),
		cmocka_unit_test(test_lost_tunnel_moves_on_at_once),
		cmocka_unit_test(test_flapping_relays_back_off),
		cmocka_unit_test(test_goaway_starts_afresh),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_jitter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
