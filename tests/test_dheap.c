/*
 * Unit tests for src/common/dheap: the deadline heap behind the event
 * loop's one timerfd. Checked against a plain array model under random
 * inserts, moves, removals and pops, with the heap property verified after
 * every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "dheap.h"
#include "zg_err.h"

/* every parent no later than its children, every node knows its slot */
static void
check_heap(const struct dheap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		assert_int_equal(h->v[i]->idx, i);
		if (i > 0)
			assert_true(h->v[(i - 1) / 2]->at <= h->v[i]->at);
	}
}

static void
test_empty(void **state)
{
	struct dheap h;
	struct dheap_node x;

	(void)state;
	dheap_init(&h);
	dheap_node_init(&x);
	assert_null(dheap_top(&h));
	assert_null(dheap_pop_due(&h, UINT64_MAX));
	assert_false(dheap_pending(&x));
	dheap_del(&h, &x); /* not in the heap: nothing happens */
	assert_int_equal(h.n, 0);
	dheap_free(&h);
}

static void
test_order_and_due(void **state)
{
	struct dheap h;
	struct dheap_node n[5];
	uint64_t at[5] = { 50, 10, 40, 10, 30 };

	(void)state;
	dheap_init(&h);
	for (int i = 0; i < 5; i++) {
		dheap_node_init(&n[i]);
		assert_int_equal(dheap_set(&h, &n[i], at[i]), 0);
		check_heap(&h);
	}
	assert_int_equal(dheap_top(&h)->at, 10);
	/* nothing due before 10 */
	assert_null(dheap_pop_due(&h, 9));
	assert_int_equal(dheap_pop_due(&h, 10)->at, 10);
	assert_int_equal(dheap_pop_due(&h, 10)->at, 10);
	assert_null(dheap_pop_due(&h, 29));
	/* moving a node later and earlier */
	assert_int_equal(dheap_set(&h, &n[0], 5), 0); /* 50 -> 5 */
	check_heap(&h);
	assert_ptr_equal(dheap_top(&h), &n[0]);
	assert_int_equal(dheap_set(&h, &n[0], 100), 0); /* 5 -> 100 */
	check_heap(&h);
	assert_int_equal(dheap_top(&h)->at, 30);
	dheap_del(&h, &n[4]); /* the 30 */
	assert_false(dheap_pending(&n[4]));
	check_heap(&h);
	assert_ptr_equal(dheap_pop_due(&h, 1000), &n[2]);
	assert_ptr_equal(dheap_pop_due(&h, 1000), &n[0]);
	assert_null(dheap_pop_due(&h, UINT64_MAX));
	assert_int_equal(h.n, 0);
	dheap_free(&h);
}

static void
test_free_leaves_nodes_out(void **state)
{
	struct dheap h;
	struct dheap_node n[3];

	(void)state;
	dheap_init(&h);
	assert_int_equal(dheap_reserve(&h, 3), 0);
	assert_true(h.cap >= 3);
	for (int i = 0; i < 3; i++) {
		dheap_node_init(&n[i]);
		assert_int_equal(dheap_set(&h, &n[i], (uint64_t)i), 0);
	}
	dheap_free(&h);
	for (int i = 0; i < 3; i++)
		assert_false(dheap_pending(&n[i]));
	assert_int_equal(dheap_reserve(&h, SIZE_MAX), ZG_ERR_NOMEM);
	dheap_free(&h);
}

static uint32_t rng = 12345;

static uint32_t
rnd(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

/* random set/move/del/pop against a model: the heap's top is always the
 * model's minimum, and everything pops in deadline order */
static void
test_random_against_model(void **state)
{
	enum {
		N = 300,
		STEPS = 20000
	};
	static struct dheap_node n[N];
	static int in[N];
	struct dheap h;
	uint64_t now = 0;

	(void)state;
	dheap_init(&h);
	memset(in, 0, sizeof(in));
	for (int i = 0; i < N; i++)
		dheap_node_init(&n[i]);
	for (int s = 0; s < STEPS; s++) {
		int i = (int)(rnd() % N), op = (int)(rnd() % 4);
		uint64_t min = UINT64_MAX;
		size_t count = 0;

		if (op <= 1) {
			assert_int_equal(dheap_set(&h, &n[i], now + rnd() % 1000), 0);
			in[i] = 1;
		} else if (op == 2) {
			dheap_del(&h, &n[i]);
			in[i] = 0;
		} else {
			struct dheap_node *x;

			now += rnd() % 50;
			while ((x = dheap_pop_due(&h, now)) != NULL) {
				int k = (int)(x - n);

				assert_true(in[k]);
				assert_true(x->at <= now);
				assert_false(dheap_pending(x));
				in[k] = 0;
			}
		}
		check_heap(&h);
		for (int k = 0; k < N; k++) {
			assert_int_equal(dheap_pending(&n[k]), in[k]);
			if (in[k]) {
				count++;
				if (n[k].at < min)
					min = n[k].at;
			}
		}
		assert_int_equal(h.n, count);
		if (count)
			assert_int_equal(dheap_top(&h)->at, min);
		else
			assert_null(dheap_top(&h));
	}
	/* drain: non-decreasing deadlines */
	{
		uint64_t last = 0;
		struct dheap_node *x;

		while ((x = dheap_pop_due(&h, UINT64_MAX)) != NULL) {
			assert_true(x->at >= last);
			last = x->at;
		}
	}
	assert_int_equal(h.n, 0);
	dheap_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_order_and_due),
		cmocka_unit_test(test_free_leaves_nodes_out),
		cmocka_unit_test(test_random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
