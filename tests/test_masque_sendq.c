/*
 * test_masque_sendq.c — the capsule send queue: bytes come out in order,
 * offered pointers stay valid until acknowledged, the cap holds, and
 * acknowledged memory is released.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "masque/sendq.h"
#include "zg_err.h"

static void append1(struct sendq *q, const uint8_t *p, size_t n, int want)
{
	const uint8_t *d[1] = { p };
	size_t l[1] = { n };

	assert_int_equal(sendq_append(q, d, l, 1), want);
}

static void test_sendq_order_across_chunks(void **state)
{
	static uint8_t in[3 * SENDQ_CHUNK + 123], out[sizeof(in)];
	struct sendq q;
	const uint8_t *ptr[8];
	size_t len[8], got = 0, off = 0, k, i;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	sendq_init(&q, 1 << 20);
	/* Appends of odd sizes interleaved with reads. */
	while (off < sizeof(in)) {
		size_t n = sizeof(in) - off < 1000 ? sizeof(in) - off : 1000;

		append1(&q, in + off, n, 0);
		off += n;
		k = sendq_next(&q, ptr, len, 8);
		for (i = 0; i < k; i++) {
			memcpy(out + got, ptr[i], len[i]);
			got += len[i];
		}
	}
	assert_int_equal(got, sizeof(in));
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(sendq_next(&q, ptr, len, 8), 0);
	assert_int_equal(sendq_unsent(&q), 0);
	assert_int_equal(sendq_ack(&q, sizeof(in)), 0);
	assert_int_equal(q.held, 0);
	assert_int_equal(sendq_ack(&q, 1), ZG_ERR_RANGE);
	sendq_free(&q);
}

static void test_sendq_cap_is_atomic(void **state)
{
	uint8_t buf[100] = { 0 };
	const uint8_t *d[2] = { buf, buf };
	size_t l[2] = { 60, 60 };
	struct sendq q;

	(void)state;
	sendq_init(&q, 100);
	assert_int_equal(sendq_append(&q, d, l, 2), ZG_ERR_LIMIT);
	assert_int_equal(q.held, 0);
	l[1] = 40;
	assert_int_equal(sendq_append(&q, d, l, 2), 0);
	assert_int_equal(sendq_room(&q), 0);
	append1(&q, buf, 1, ZG_ERR_LIMIT);
	sendq_free(&q);
}

static void test_sendq_ack_only_what_was_offered(void **state)
{
	uint8_t buf[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	const uint8_t *ptr[2];
	size_t len[2];
	struct sendq q;

	(void)state;
	sendq_init(&q, 1000);
	append1(&q, buf, 10, 0);
	assert_int_equal(sendq_ack(&q, 1), ZG_ERR_RANGE); /* nothing offered yet */
	assert_int_equal(sendq_next(&q, ptr, len, 2), 1);
	assert_int_equal(len[0], 10);
	append1(&q, buf, 5, 0);
	assert_int_equal(sendq_ack(&q, 10), 0);
	/* The new bytes follow in the same chunk, nothing moved. */
	assert_int_equal(sendq_next(&q, ptr, len, 2), 1);
	assert_int_equal(len[0], 5);
	assert_memory_equal(ptr[0], buf, 5);
	assert_int_equal(sendq_ack(&q, 5), 0);
	/* Fully acknowledged: the chunk restarts from its beginning. */
	append1(&q, buf + 5, 5, 0);
	assert_int_equal(sendq_next(&q, ptr, len, 2), 1);
	assert_memory_equal(ptr[0], buf + 5, 5);
	sendq_free(&q);
}

static void test_sendq_releases_acked_chunks(void **state)
{
	static uint8_t big[4 * SENDQ_CHUNK];
	const uint8_t *ptr[8];
	size_t len[8];
	struct sendq q;

	(void)state;
	sendq_init(&q, sizeof(big));
	append1(&q, big, sizeof(big), 0);
	assert_int_equal(sendq_next(&q, ptr, len, 8), 4);
	assert_int_equal(sendq_ack(&q, 2 * SENDQ_CHUNK + 1), 0);
	assert_int_equal(sendq_room(&q), 2 * SENDQ_CHUNK + 1);
	assert_non_null(q.head);
	assert_int_equal(q.head_off, 1);
	sendq_free(&q); /* LeakSanitizer checks the rest */
}

static void test_sendq_fully_acked_holds_nothing(void **state)
{
	/* An idle tunnel: its few capsules were acknowledged, so the queue
	 * keeps no chunk (16 kB per tunnel otherwise), and works again. */
	static const uint8_t small[20] = { 1, 2, 3 };
	const uint8_t *ptr[2];
	size_t len[2];
	struct sendq q;

	(void)state;
	sendq_init(&q, 4 * SENDQ_CHUNK);
	append1(&q, small, sizeof(small), 0);
	assert_int_equal(sendq_next(&q, ptr, len, 2), 1);
	assert_int_equal(sendq_ack(&q, sizeof(small)), 0);
	assert_null(q.head);
	assert_null(q.tail);
	assert_null(q.unsent);
	append1(&q, small, sizeof(small), 0);
	assert_int_equal(sendq_next(&q, ptr, len, 2), 1);
	assert_int_equal(len[0], sizeof(small));
	assert_memory_equal(ptr[0], small, sizeof(small));
	assert_int_equal(sendq_ack(&q, sizeof(small)), 0);
	assert_null(q.head);
	sendq_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sendq_order_across_chunks),
		cmocka_unit_test(test_sendq_cap_is_atomic),
		cmocka_unit_test(test_sendq_ack_only_what_was_offered),
		cmocka_unit_test(test_sendq_releases_acked_chunks),
		cmocka_unit_test(test_sendq_fully_acked_holds_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
