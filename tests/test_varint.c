/* Unit tests for src/capsule/varint: RFC 9000 §16 and Appendix A.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "varint.h"
#include "zg_err.h"

struct vec {
	const uint8_t *bytes;
	size_t len;
	uint64_t value;
};

/* RFC 9000 Appendix A.1 sample decodings. */
static const uint8_t v8[] = { 0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c };
static const uint8_t v4[] = { 0x9d, 0x7f, 0x3e, 0x7d };
static const uint8_t v2[] = { 0x7b, 0xbd };
static const uint8_t v1[] = { 0x25 };
static const uint8_t v2b[] = { 0x40, 0x25 };

static const struct vec rfc_vectors[] = {
	{ v8, sizeof(v8), UINT64_C(151288809941952652) },
	{ v4, sizeof(v4), 494878333 },
	{ v2, sizeof(v2), 15293 },
	{ v1, sizeof(v1), 37 },
	{ v2b, sizeof(v2b), 37 },
};

static void test_rfc9000_a1_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
		const uint8_t *p = rfc_vectors[i].bytes;
		uint64_t v = 0;
		assert_int_equal(varint_decode(&p, p + rfc_vectors[i].len, &v), 0);
		assert_true(v == rfc_vectors[i].value);
		assert_ptr_equal(p, rfc_vectors[i].bytes + rfc_vectors[i].len);
	}
}

static void test_rfc9000_a1_encode_shortest(void **state)
{
	uint8_t buf[8], *p;
	(void)state;
	/* the first four vectors are in shortest form; 40 25 is not */
	for (size_t i = 0; i < 4; i++) {
		p = buf;
		assert_int_equal(varint_encode(&p, buf + sizeof(buf), rfc_vectors[i].value), 0);
		assert_int_equal((size_t)(p - buf), rfc_vectors[i].len);
		assert_memory_equal(buf, rfc_vectors[i].bytes, rfc_vectors[i].len);
	}
	p = buf;
	assert_int_equal(varint_encode(&p, buf + sizeof(buf), 37), 0);
	assert_int_equal(p - buf, 1);
}

static void test_len_boundaries(void **state)
{
	(void)state;
	assert_int_equal(varint_len(0), 1);
	assert_int_equal(varint_len(63), 1);
	assert_int_equal(varint_len(64), 2);
	assert_int_equal(varint_len(16383), 2);
	assert_int_equal(varint_len(16384), 4);
	assert_int_equal(varint_len((UINT64_C(1) << 30) - 1), 4);
	assert_int_equal(varint_len(UINT64_C(1) << 30), 8);
	assert_int_equal(varint_len(VARINT_MAX), 8);
	assert_int_equal(varint_len(VARINT_MAX + 1), 0);
	assert_int_equal(varint_len(UINT64_MAX), 0);
}

static void test_roundtrip_boundaries(void **state)
{
	static const uint64_t vals[] = { 0, 1, 63, 64, 16383, 16384,
					 (UINT64_C(1) << 30) - 1, UINT64_C(1) << 30, VARINT_MAX - 1, VARINT_MAX };
	uint8_t buf[8];
	(void)state;
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t *w = buf;
		const uint8_t *r = buf;
		uint64_t v;
		assert_int_equal(varint_encode(&w, buf + sizeof(buf), vals[i]), 0);
		assert_int_equal((size_t)(w - buf), varint_len(vals[i]));
		assert_int_equal(varint_len_from_first(buf[0]), varint_len(vals[i]));
		assert_int_equal(varint_decode(&r, w, &v), 0);
		assert_true(v == vals[i]);
		assert_ptr_equal(r, w);
	}
}

static void test_encode_out_of_range(void **state)
{
	uint8_t buf[8] = { 0 }, *p = buf;
	(void)state;
	assert_int_equal(varint_encode(&p, buf + 8, VARINT_MAX + 1), ZG_ERR_RANGE);
	assert_ptr_equal(p, buf);
}

static void test_encode_buffer_short(void **state)
{
	uint8_t buf[8], *p;
	(void)state;
	for (size_t room = 0; room < 8; room++) {
		memset(buf, 0xaa, sizeof(buf));
		p = buf;
		assert_int_equal(varint_encode(&p, buf + room, VARINT_MAX), ZG_ERR_BUFSHORT);
		assert_ptr_equal(p, buf);
		assert_int_equal(buf[0], 0xaa); /* nothing written */
	}
	p = buf;
	assert_int_equal(varint_encode(&p, buf + 1, 16384), ZG_ERR_BUFSHORT);
	assert_int_equal(varint_encode(&p, buf + 1, 63), 0);
}

static void test_decode_truncated_every_length(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
		for (size_t cut = 0; cut < rfc_vectors[i].len; cut++) {
			const uint8_t *p = rfc_vectors[i].bytes;
			uint64_t v = 12345;
			assert_int_equal(varint_decode(&p, p + cut, &v), ZG_ERR_TRUNCATED);
			assert_ptr_equal(p, rfc_vectors[i].bytes);
			assert_true(v == 12345);
		}
	}
}

static void test_decode_non_shortest_accepted(void **state)
{
	/* 37 in the 4- and 8-byte forms */
	static const uint8_t f4[] = { 0x80, 0x00, 0x00, 0x25 };
	static const uint8_t f8[] = { 0xc0, 0, 0, 0, 0, 0, 0, 0x25 };
	const uint8_t *p;
	uint64_t v;
	(void)state;
	p = f4;
	assert_int_equal(varint_decode(&p, f4 + 4, &v), 0);
	assert_true(v == 37);
	p = f8;
	assert_int_equal(varint_decode(&p, f8 + 8, &v), 0);
	assert_true(v == 37);
}

static void test_decode_sequence(void **state)
{
	uint8_t buf[32], *w = buf;
	const uint8_t *r = buf;
	uint64_t v;
	(void)state;
	w = varint_put(w, 1);
	w = varint_put(w, 300);
	w = varint_put(w, 70000);
	w = varint_put(w, UINT64_C(5000000000));
	assert_int_equal(w - buf, 1 + 2 + 4 + 8);
	assert_int_equal(varint_decode(&r, w, &v), 0);
	assert_true(v == 1);
	assert_int_equal(varint_decode(&r, w, &v), 0);
	assert_true(v == 300);
	assert_int_equal(varint_decode(&r, w, &v), 0);
	assert_true(v == 70000);
	assert_int_equal(varint_decode(&r, w, &v), 0);
	assert_true(v == UINT64_C(5000000000));
	assert_int_equal(varint_decode(&r, w, &v), ZG_ERR_TRUNCATED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc9000_a1_decode),
		cmocka_unit_test(test_rfc9000_a1_encode_shortest),
		cmocka_unit_test(test_len_boundaries),
		cmocka_unit_test(test_roundtrip_boundaries),
		cmocka_unit_test(test_encode_out_of_range),
		cmocka_unit_test(test_encode_buffer_short),
		cmocka_unit_test(test_decode_truncated_every_length),
		cmocka_unit_test(test_decode_non_shortest_accepted),
		cmocka_unit_test(test_decode_sequence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
