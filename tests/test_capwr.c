/* Unit tests for src/capsule/capwr: the measure-then-write cursor of the
 * capsule encoders. What is measured is what is written; a writing cursor
 * never writes past its buffer; values a varint cannot carry are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "capwr.h"
#include "varint.h"
#include "zg_err.h"

/* One of everything the encoders put. */
static void put_sample(struct capwr *w)
{
	capwr_u8(w, 0x7f);
	capwr_u16(w, 0xbeef);
	capwr_varint(w, 63);               /* 1 byte */
	capwr_varint(w, 16383);            /* 2 */
	capwr_varint(w, 1073741823);       /* 4 */
	capwr_varint(w, VARINT_MAX);       /* 8 */
	capwr_vbytes(w, "hospital-a", 10); /* 1 + 10 */
	capwr_put(w, "", 0);
}

static void test_measure_then_write(void **state)
{
	static const uint8_t want[] = { 0x7f, 0xbe, 0xef, 0x3f, 0x7f, 0xff, 0xbf, 0xff, 0xff,
					0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					0x0a, 'h', 'o', 's', 'p', 'i', 't', 'a', 'l',
					'-', 'a' };
	uint8_t buf[64];
	struct capwr w;

	(void)state;
	capwr_measure(&w);
	put_sample(&w);
	assert_int_equal(w.err, 0);
	assert_int_equal(w.n, sizeof(want));
	memset(buf, 0xee, sizeof(buf));
	capwr_init(&w, buf, sizeof(want));
	put_sample(&w);
	assert_int_equal(w.err, 0);
	assert_int_equal(w.n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(buf[sizeof(want)], 0xee);
}

static void test_never_past_the_end(void **state)
{
	uint8_t buf[40];
	struct capwr w;

	(void)state;
	/* every room short of the whole: an error, nothing past it touched */
	for (size_t cap = 0; cap < 29; cap++) {
		memset(buf, 0xee, sizeof(buf));
		capwr_init(&w, buf, cap);
		put_sample(&w);
		assert_int_equal(w.err, ZG_ERR_BUFSHORT);
		assert_true(w.n <= cap);
		for (size_t i = cap; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 0xee);
	}
	/* no buffer at all */
	capwr_init(&w, NULL, 0);
	capwr_put(&w, "", 0);
	assert_int_equal(w.err, 0);
	capwr_u8(&w, 1);
	assert_int_equal(w.err, ZG_ERR_BUFSHORT);
	assert_int_equal(w.n, 0);
	/* after an error nothing more is written, even what would fit */
	memset(buf, 0xee, sizeof(buf));
	capwr_init(&w, buf, 3);
	capwr_u16(&w, 0x1234);
	capwr_put(&w, "ab", 2);
	capwr_u8(&w, 9);
	assert_int_equal(w.err, ZG_ERR_BUFSHORT);
	assert_int_equal(w.n, 2);
	assert_int_equal(buf[2], 0xee);
}

static void test_varint_range(void **state)
{
	uint8_t buf[16];
	struct capwr w;

	(void)state;
	capwr_measure(&w);
	capwr_varint(&w, VARINT_MAX + 1);
	assert_int_equal(w.err, ZG_ERR_RANGE);
	capwr_init(&w, buf, sizeof(buf));
	capwr_varint(&w, UINT64_MAX);
	capwr_u8(&w, 1);
	assert_int_equal(w.err, ZG_ERR_RANGE);
	assert_int_equal(w.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_measure_then_write),
		cmocka_unit_test(test_never_past_the_end),
		cmocka_unit_test(test_varint_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
