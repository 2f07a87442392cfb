/* Unit tests for src/connector/handover: one relay's tunnels across its
 * GOAWAY — which slot is dialled and when, and whether the relay counts
 * as up for the connector's /ready. The clock is a number the test moves;
 * nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "connector/handover.h"

#define S 1000000000ull
#define GRACE (10 * S)
#define LOW 0u /* picks the lower end of the backoff's range: c/2 */

static void test_plain_backoff(void **state)
{
	struct handover h;
	uint32_t ms = 99;
	uint64_t now = 100 * S;

	(void)state;
	handover_init(&h, 500, 4000, GRACE);
	assert_false(handover_up(&h, now));
	assert_string_equal(handover_state(&h, now), "connecting");
	assert_int_equal(handover_dial(&h), 0);
	assert_int_equal(handover_dial(&h), -1); /* busy: nothing to do */
	/* failures back off, doubling to the cap, always on slot 0 */
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1);
	assert_int_equal(ms, 250);
	assert_int_equal(handover_dial(&h), 0);
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1);
	assert_int_equal(ms, 500);
	assert_int_equal(handover_dial(&h), 0);
	handover_opened(&h, 0);
	assert_true(handover_up(&h, now));
	assert_string_equal(handover_state(&h, now), "open");
	/* a tunnel lost without GOAWAY: down at once, backoff from the start */
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1);
	assert_int_equal(ms, 250);
	assert_false(handover_up(&h, now));
	assert_int_equal(handover_deadline(&h, now), 0);
	assert_int_equal(h.goaways, 0);
}

/* The relay drains behind a load balancer: the replacement opens on
 * another replica while the old tunnel still drains; up throughout. */
static void test_goaway_replaced_at_once(void **state)
{
	struct handover h;
	uint32_t ms = 99;
	uint64_t now = 100 * S;

	(void)state;
	handover_init(&h, 500, 4000, GRACE);
	assert_int_equal(handover_dial(&h), 0);
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1); /* one failure: attempt 1 */
	assert_int_equal(handover_dial(&h), 0);
	handover_opened(&h, 0);
	/* GOAWAY: dial a new tunnel now in the other slot; the old one drains */
	assert_int_equal(handover_goaway(&h, 0), 1);
	assert_int_equal(handover_goaway(&h, 0), 0); /* said once */
	assert_int_equal(h.goaways, 1);
	assert_int_equal(h.cur, 1);
	assert_int_equal(handover_dial(&h), 1);
	assert_true(handover_up(&h, now)); /* the draining tunnel is open */
	assert_string_equal(handover_state(&h, now), "draining (GOAWAY), connecting");
	handover_opened(&h, 1);
	assert_string_equal(handover_state(&h, now), "draining (GOAWAY), new tunnel open");
	/* the old one closes: nothing to dial, still up */
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 0);
	assert_true(handover_up(&h, now));
	assert_string_equal(handover_state(&h, now), "open");
	assert_int_equal(handover_deadline(&h, now), 0);
	/* the next loss backs off from the start (the open reset it) */
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 250);
	assert_int_equal(h.cur, 1);
}

/* A lone relay restarts: it refuses the replacement while it drains
 * (those refusals back off), then closes the old tunnel: the next attempt
 * is made at once with the backoff reset, and the relay counts as up for
 * the grace while it comes back. */
static void test_goaway_lone_relay_restart(void **state)
{
	struct handover h;
	uint32_t ms = 99;
	uint64_t now = 100 * S;

	(void)state;
	handover_init(&h, 500, 4000, GRACE);
	assert_int_equal(handover_dial(&h), 0);
	handover_opened(&h, 0);
	assert_int_equal(handover_goaway(&h, 0), 1);
	assert_int_equal(handover_dial(&h), 1);
	/* refused while the relay drains */
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 250);
	assert_int_equal(handover_dial(&h), 1);
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 500);
	assert_int_equal(handover_dial(&h), 1);
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 1000);
	assert_true(handover_up(&h, now)); /* the old tunnel still drains */
	/* the relay exits while an attempt is under way: nothing to dial,
	 * but that attempt's failure is not penalised */
	assert_int_equal(handover_dial(&h), 1);
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 0);
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 250);
	/* again, with the old tunnel closing while slot 1 waits: dial now */
	assert_int_equal(handover_dial(&h), 1);
	handover_opened(&h, 1);
	assert_int_equal(handover_goaway(&h, 1), 1);
	assert_int_equal(handover_dial(&h), 0);
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1);
	assert_int_equal(handover_dial(&h), 0);
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1);
	assert_int_equal(ms, 500);
	assert_true(handover_up(&h, now));
	/* the relay exits: its tunnel closes; dial now, no penalty */
	now += 5 * S;
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 0);
	assert_true(handover_up(&h, now)); /* being replaced */
	assert_string_equal(handover_state(&h, now), "replacing after GOAWAY");
	assert_int_equal(handover_deadline(&h, now), GRACE);
	assert_int_equal(handover_dial(&h), 0);
	/* the restarting relay is not there yet: backoff from the start */
	assert_int_equal(handover_closed(&h, 0, now + S / 10, LOW, &ms), 1);
	assert_int_equal(ms, 250);
	assert_true(handover_up(&h, now + S / 10));
	assert_int_equal(handover_deadline(&h, now + S), GRACE - S);
	/* it is back: open, no longer replacing */
	assert_int_equal(handover_dial(&h), 0);
	handover_opened(&h, 0);
	assert_true(handover_up(&h, now + 100 * S));
	assert_int_equal(handover_deadline(&h, now + S), 0);
	/* a relay that does not come back: up until the grace ends */
	assert_int_equal(handover_goaway(&h, 0), 1);
	assert_int_equal(h.cur, 1);
	assert_int_equal(handover_dial(&h), 1);
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1); /* refused: waits */
	assert_int_equal(ms, 250);
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1);
	assert_int_equal(ms, 0);
	assert_int_equal(handover_dial(&h), 1);
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 250);
	assert_true(handover_up(&h, now + GRACE - 1));
	assert_false(handover_up(&h, now + GRACE));
	assert_int_equal(handover_deadline(&h, now + GRACE), 0);
	assert_string_equal(handover_state(&h, now + GRACE), "connecting");
}

/* Both tunnels had GOAWAY (the replacement got one too before the first
 * drained): the replacement starts when a slot frees, and a tunnel that
 * closes after its GOAWAY is dialled again at once. */
static void test_goaway_twice(void **state)
{
	struct handover h;
	uint32_t ms = 99;
	uint64_t now = 100 * S;

	(void)state;
	handover_init(&h, 500, 4000, GRACE);
	assert_int_equal(handover_dial(&h), 0);
	handover_opened(&h, 0);
	assert_int_equal(handover_goaway(&h, 0), 1);
	assert_int_equal(handover_dial(&h), 1);
	handover_opened(&h, 1);
	/* slot 0 still drains: no slot for a replacement of slot 1 */
	assert_int_equal(handover_goaway(&h, 1), 0);
	assert_int_equal(h.cur, 1);
	assert_string_equal(handover_state(&h, now), "draining (GOAWAY), new tunnel open");
	/* slot 0 ends: slot 0 is dialled now, slot 1 drains */
	assert_int_equal(handover_closed(&h, 0, now, LOW, &ms), 1);
	assert_int_equal(ms, 0);
	assert_int_equal(h.cur, 0);
	assert_int_equal(handover_dial(&h), 0);
	assert_true(handover_up(&h, now));
	/* the same, but the current one closes first: dialled again at once */
	handover_init(&h, 500, 4000, GRACE);
	assert_int_equal(handover_dial(&h), 0);
	handover_opened(&h, 0);
	assert_int_equal(handover_goaway(&h, 0), 1);
	assert_int_equal(handover_dial(&h), 1);
	handover_opened(&h, 1);
	assert_int_equal(handover_goaway(&h, 1), 0);
	assert_string_equal(handover_state(&h, now),
			    "draining (GOAWAY), new tunnel open");
	assert_int_equal(handover_closed(&h, 1, now, LOW, &ms), 1);
	assert_int_equal(ms, 0);
	assert_int_equal(h.cur, 1);
	assert_true(handover_up(&h, now)); /* slot 0 still open */
	assert_int_equal(h.goaways, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_backoff),
		cmocka_unit_test(test_goaway_replaced_at_once),
		cmocka_unit_test(test_goaway_lone_relay_restart),
		cmocka_unit_test(test_goaway_twice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
