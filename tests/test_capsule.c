/* Unit tests for src/capsule/capsule: RFC 9297 framing and HTTP Datagrams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "capsule.h"
#include "varint.h"
#include "zg_err.h"

#define MAXCAPS 16

/* What a parse produced: the capsules (copied out) and the final result. */
struct parsed {
	size_t n;
	uint64_t type[MAXCAPS];
	size_t len[MAXCAPS];
	uint8_t val[MAXCAPS][256];
	int err;    /* first negative feed() result, else 0 */
	int finish; /* capsule_parser_finish() */
};

/* Feeds in[0..len) in pieces of `step` bytes (0 = whole). */
static void parse_steps(const uint8_t *in, size_t len, size_t step,
			size_t bufsize, struct parsed *out)
{
	static uint8_t buf[4096];
	struct capsule_parser cp;
	struct capsule c;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	capsule_parser_init(&cp, buf, bufsize, CAPSULE_MASK_CONNECT_IP);
	while (off < len && out->err == 0) {
		size_t n = step ? step : len;
		if (n > len - off)
			n = len - off;
		const uint8_t *p = in + off, *end = in + off + n;
		int r;
		while ((r = capsule_parser_feed(&cp, &p, end, &c)) == 1) {
			assert_true(out->n < MAXCAPS);
			assert_true(c.len <= sizeof(out->val[0]));
			out->type[out->n] = c.type;
			out->len[out->n] = c.len;
			if (c.len)
				memcpy(out->val[out->n], c.value, c.len);
			out->n++;
		}
		if (r < 0) {
			out->err = r;
			break;
		}
		assert_ptr_equal(p, end); /* 0 means all consumed */
		off += n;
	}
	out->finish = capsule_parser_finish(&cp);
}

static void assert_same(const struct parsed *a, const struct parsed *b)
{
	assert_int_equal(a->n, b->n);
	assert_int_equal(a->err, b->err);
	assert_int_equal(a->finish, b->finish);
	for (size_t i = 0; i < a->n; i++) {
		assert_true(a->type[i] == b->type[i]);
		assert_int_equal(a->len[i], b->len[i]);
		assert_memory_equal(a->val[i], b->val[i], a->len[i]);
	}
}

/* A stream with known, unknown and GREASE capsules. */
static size_t sample_stream(uint8_t *buf, size_t cap)
{
	uint8_t *p = buf, *end = buf + cap;
	static const uint8_t v1[] = { 1, 2, 3, 4, 5 };
	static const uint8_t big[200] = { [0] = 9, [199] = 7 };

	assert_int_equal(capsule_encode(&p, end, CAPSULE_ADDRESS_ASSIGN, v1, sizeof(v1)), 0);
	assert_int_equal(capsule_encode(&p, end, 0x29 * 3 + 0x17, v1, 3), 0); /* GREASE */
	assert_int_equal(capsule_encode(&p, end, CAPSULE_ROUTE_ADVERTISEMENT, NULL, 0), 0);
	assert_int_equal(capsule_encode(&p, end, 0x4242, big, sizeof(big)), 0); /* unknown */
	assert_int_equal(capsule_encode(&p, end, CAPSULE_DATAGRAM, big, sizeof(big)), 0);
	assert_int_equal(capsule_encode(&p, end, CAPSULE_ADDRESS_REQUEST, v1, 1), 0);
	return (size_t)(p - buf);
}

static void test_c06_parse_whole(void **state)
{
	uint8_t in[1024];
	size_t len = sample_stream(in, sizeof(in));
	struct parsed r;
	(void)state;

	parse_steps(in, len, 0, 256, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.finish, 0);
	assert_int_equal(r.n, 4); /* GREASE and 0x4242 skipped */
	assert_true(r.type[0] == CAPSULE_ADDRESS_ASSIGN);
	assert_int_equal(r.len[0], 5);
	assert_int_equal(r.val[0][4], 5);
	assert_true(r.type[1] == CAPSULE_ROUTE_ADVERTISEMENT);
	assert_int_equal(r.len[1], 0);
	assert_true(r.type[2] == CAPSULE_DATAGRAM);
	assert_int_equal(r.len[2], 200);
	assert_int_equal(r.val[2][0], 9);
	assert_int_equal(r.val[2][199], 7);
	assert_true(r.type[3] == CAPSULE_ADDRESS_REQUEST);
}

static void test_c06_parse_byte_by_byte_same(void **state)
{
	uint8_t in[1024];
	size_t len = sample_stream(in, sizeof(in));
	struct parsed whole, one;
	(void)state;

	parse_steps(in, len, 0, 256, &whole);
	parse_steps(in, len, 1, 256, &one);
	assert_same(&whole, &one);
}

static void test_c06_parse_every_split_same(void **state)
{
	static uint8_t in[1024];
	size_t len = sample_stream(in, sizeof(in));
	struct parsed whole, split;
	static uint8_t buf[4096];
	(void)state;

	parse_steps(in, len, 0, 256, &whole);
	for (size_t cut = 0; cut <= len; cut++) {
		struct capsule_parser cp;
		struct capsule c;
		const uint8_t *p;
		int r;

		memset(&split, 0, sizeof(split));
		capsule_parser_init(&cp, buf, 256, CAPSULE_MASK_CONNECT_IP);
		const size_t bounds[3] = { 0, cut, len };
		for (int part = 0; part < 2; part++) {
			p = in + bounds[part];
			while ((r = capsule_parser_feed(&cp, &p, in + bounds[part + 1], &c)) == 1) {
				split.type[split.n] = c.type;
				split.len[split.n] = c.len;
				if (c.len)
					memcpy(split.val[split.n], c.value, c.len);
				split.n++;
			}
			assert_int_equal(r, 0);
		}
		split.finish = capsule_parser_finish(&cp);
		assert_same(&whole, &split);
	}
	/* and in pieces of every size */
	for (size_t step = 2; step < 40; step++) {
		parse_steps(in, len, step, 256, &split);
		assert_same(&whole, &split);
	}
}

static void test_c06_unknown_huge_skipped_without_buffering(void **state)
{
	/* GREASE type with the largest length; only 3 value bytes arrive. A
	 * 0-byte buffer proves nothing is buffered. */
	uint8_t in[32], *p = in;
	const uint8_t *r;
	struct capsule_parser cp;
	struct capsule c;
	(void)state;

	assert_int_equal(capsule_encode_header(&p, in + sizeof(in), 0x29 * 7 + 0x17, VARINT_MAX), 0);
	memset(p, 0xee, 3);
	p += 3;
	capsule_parser_init(&cp, NULL, 0, CAPSULE_MASK_CONNECT_IP);
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 0);
	assert_ptr_equal(r, p);
	assert_int_equal(cp.n_skipped, 1);
	assert_int_equal(capsule_parser_finish(&cp), ZG_ERR_TRUNCATED);
}

static void test_parser_lends_buffer_only_when_split(void **state)
{
	/* No buffer at init: a whole capsule needs none; a split one asks for
	 * it (CAPSULE_NEED_BUF) without consuming, then assembles in it; the
	 * buffer cannot be taken back while it holds part of a value. */
	uint8_t in[64], *p = in, buf[40], val[30];
	const uint8_t *r;
	struct capsule_parser cp;
	struct capsule c;
	size_t i;
	(void)state;

	for (i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(i + 1);
	assert_int_equal(capsule_encode(&p, in + sizeof(in), CAPSULE_DATAGRAM, val, 5), 0);
	assert_int_equal(capsule_encode(&p, in + sizeof(in), CAPSULE_DATAGRAM, val, sizeof(val)), 0);
	capsule_parser_init(&cp, NULL, sizeof(buf), CAPSULE_MASK_CONNECT_IP);
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 1); /* whole: no buffer */
	assert_int_equal(c.len, 5);
	assert_memory_equal(c.value, val, 5);
	/* the second arrives in two pieces: 2 header bytes + 10 value bytes */
	assert_int_equal(capsule_parser_feed(&cp, &r, r + 12, &c), CAPSULE_NEED_BUF);
	assert_false(capsule_parser_buffering(&cp));
	assert_int_equal(capsule_parser_feed(&cp, &r, r + 10, &c), CAPSULE_NEED_BUF);
	assert_int_equal(capsule_parser_set_buf(&cp, buf), 0);
	assert_int_equal(capsule_parser_feed(&cp, &r, r + 10, &c), 0);
	assert_true(capsule_parser_buffering(&cp));
	assert_int_equal(capsule_parser_set_buf(&cp, NULL), ZG_ERR_STATE);
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 1);
	assert_ptr_equal(r, p);
	assert_int_equal(c.len, sizeof(val));
	assert_ptr_equal(c.value, buf);
	assert_memory_equal(c.value, val, sizeof(val));
	assert_false(capsule_parser_buffering(&cp));
	assert_int_equal(capsule_parser_set_buf(&cp, NULL), 0);
	assert_int_equal(capsule_parser_finish(&cp), 0);
	/* an empty value needs no buffer and still points somewhere */
	p = in;
	assert_int_equal(capsule_encode(&p, in + sizeof(in), CAPSULE_DATAGRAM, NULL, 0), 0);
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 1);
	assert_int_equal(c.len, 0);
	assert_non_null(c.value);
	/* the bound still applies without a buffer */
	p = in;
	assert_int_equal(capsule_encode_header(&p, in + sizeof(in), CAPSULE_DATAGRAM, 41), 0);
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), ZG_ERR_TOO_LARGE);
}

static void test_c06_known_too_large_refused_before_value(void **state)
{
	uint8_t in[16], *p = in, buf[100];
	const uint8_t *r;
	struct capsule_parser cp;
	struct capsule c;
	(void)state;

	/* header only: the length alone must trigger the refusal */
	assert_int_equal(capsule_encode_header(&p, in + sizeof(in), CAPSULE_DATAGRAM, 101), 0);
	capsule_parser_init(&cp, buf, sizeof(buf), CAPSULE_MASK_CONNECT_IP);
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), ZG_ERR_TOO_LARGE);
	/* sticky */
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), ZG_ERR_TOO_LARGE);
	assert_ptr_equal(r, in);
	assert_int_equal(capsule_parser_finish(&cp), ZG_ERR_TOO_LARGE);

	/* exactly bufsize is fine */
	p = in;
	assert_int_equal(capsule_encode_header(&p, in + sizeof(in), CAPSULE_DATAGRAM, 100), 0);
	capsule_parser_init(&cp, buf, sizeof(buf), CAPSULE_MASK_CONNECT_IP);
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 0);
}

static void test_c06_truncated_at_stream_end(void **state)
{
	uint8_t in[64];
	size_t len = 0;
	uint8_t *p = in;
	static const uint8_t v[] = { 1, 2, 3, 4 };
	struct parsed r;
	(void)state;

	assert_int_equal(capsule_encode(&p, in + sizeof(in), CAPSULE_ADDRESS_ASSIGN, v, 4), 0);
	len = (size_t)(p - in);
	for (size_t cut = 1; cut < len; cut++) {
		parse_steps(in, cut, 1, 256, &r);
		assert_int_equal(r.n, 0);
		assert_int_equal(r.finish, ZG_ERR_TRUNCATED);
	}
	parse_steps(in, len, 1, 256, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.finish, 0);
	/* an unknown capsule cut short is truncated too */
	p = in;
	assert_int_equal(capsule_encode(&p, in + sizeof(in), 0x99, v, 4), 0);
	parse_steps(in, (size_t)(p - in) - 1, 0, 256, &r);
	assert_int_equal(r.finish, ZG_ERR_TRUNCATED);
}

static void test_c06_empty_stream_ok(void **state)
{
	struct capsule_parser cp;
	(void)state;
	capsule_parser_init(&cp, NULL, 0, CAPSULE_MASK_CONNECT_IP);
	assert_int_equal(capsule_parser_finish(&cp), 0);
}

static void test_c06_zero_copy_and_buffered_values(void **state)
{
	uint8_t in[64], *p = in, buf[64];
	static const uint8_t v[] = { 'a', 'b', 'c', 'd' };
	const uint8_t *r;
	struct capsule_parser cp;
	struct capsule c;
	(void)state;

	assert_int_equal(capsule_encode(&p, in + sizeof(in), CAPSULE_ADDRESS_ASSIGN, v, 4), 0);
	capsule_parser_init(&cp, buf, sizeof(buf), CAPSULE_MASK_CONNECT_IP);
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 1);
	assert_ptr_equal(c.value, in + 2); /* whole: points into the input */
	r = in;
	assert_int_equal(capsule_parser_feed(&cp, &r, in + 3, &c), 0);
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 1);
	assert_ptr_equal(c.value, buf); /* split: assembled in the buffer */
	assert_memory_equal(c.value, v, 4);
}

static void test_c06_known_mask_selects_types(void **state)
{
	uint8_t in[64], *p = in, buf[64];
	static const uint8_t v[] = { 1 };
	const uint8_t *r = in;
	struct capsule_parser cp;
	struct capsule c;
	(void)state;

	assert_int_equal(capsule_encode(&p, in + sizeof(in), CAPSULE_ADDRESS_ASSIGN, v, 1), 0);
	assert_int_equal(capsule_encode(&p, in + sizeof(in), 63, v, 1), 0);
	assert_int_equal(capsule_encode(&p, in + sizeof(in), 64, v, 1), 0);
	capsule_parser_init(&cp, buf, sizeof(buf), UINT64_C(1) << 63);
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 1);
	assert_true(c.type == 63);
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 0);
	assert_int_equal(cp.n_skipped, 2);
	assert_int_equal(cp.n_parsed, 1);
}

static void test_encode_errors(void **state)
{
	uint8_t out[8], *p = out;
	static const uint8_t v[16] = { 0 };
	(void)state;
	assert_int_equal(capsule_encode_header(&p, out + 8, VARINT_MAX + 1, 0), ZG_ERR_RANGE);
	assert_int_equal(capsule_encode_header(&p, out + 1, 1, 1), ZG_ERR_BUFSHORT);
	assert_int_equal(capsule_encode(&p, out + 8, 1, v, 7), ZG_ERR_BUFSHORT);
	assert_ptr_equal(p, out);
	assert_int_equal(capsule_encode(&p, out + 8, 1, v, 6), 0);
	assert_int_equal(p - out, 8);
}

static void test_c12_httpdg_roundtrip(void **state)
{
	uint8_t buf[64], *p = buf;
	static const uint8_t pkt[] = { 0x45, 0, 0, 20 };
	const uint8_t *payload;
	uint64_t qsid, ctx;
	size_t plen;
	(void)state;

	assert_int_equal(httpdg_encode_prefix(&p, buf + sizeof(buf), 1, HTTPDG_CONTEXT_IP), 0);
	memcpy(p, pkt, sizeof(pkt));
	p += sizeof(pkt);
	assert_int_equal(httpdg_decode(buf, (size_t)(p - buf), &qsid, &ctx, &payload, &plen), 0);
	assert_true(qsid == 1);
	assert_true(ctx == 0);
	assert_int_equal(plen, sizeof(pkt));
	assert_memory_equal(payload, pkt, sizeof(pkt));

	/* a non-zero context id decodes (the caller drops it) */
	p = buf;
	assert_int_equal(httpdg_encode_prefix(&p, buf + sizeof(buf), 7, 42), 0);
	assert_int_equal(httpdg_decode(buf, (size_t)(p - buf), &qsid, &ctx, &payload, &plen), 0);
	assert_true(ctx == 42);
	assert_int_equal(plen, 0);
}

static void test_c14_httpdg_qsid_limit(void **state)
{
	uint8_t buf[32], *p = buf;
	const uint8_t *payload;
	uint64_t qsid, ctx;
	size_t plen;
	(void)state;

	assert_int_equal(httpdg_encode_prefix(&p, buf + sizeof(buf), HTTPDG_QSID_MAX, 0), 0);
	assert_int_equal(httpdg_decode(buf, (size_t)(p - buf), &qsid, &ctx, &payload, &plen), 0);
	assert_true(qsid == HTTPDG_QSID_MAX);

	p = buf;
	assert_int_equal(httpdg_encode_prefix(&p, buf + sizeof(buf), HTTPDG_QSID_MAX + 1, 0), ZG_ERR_RANGE);
	assert_ptr_equal(p, buf);
	/* hand-encode 2^60 as a varint: the decoder must refuse it */
	p = varint_put(buf, HTTPDG_QSID_MAX + 1);
	*p++ = 0;
	assert_int_equal(httpdg_decode(buf, (size_t)(p - buf), &qsid, &ctx, &payload, &plen), ZG_ERR_RANGE);
}

static void test_httpdg_truncated(void **state)
{
	static const uint8_t two_byte_qsid[] = { 0x40, 0x10, 0x00 };
	const uint8_t *payload;
	uint64_t qsid, ctx;
	size_t plen;
	(void)state;
	assert_int_equal(httpdg_decode(two_byte_qsid, 0, &qsid, &ctx, &payload, &plen), ZG_ERR_MALFORMED);
	assert_int_equal(httpdg_decode(two_byte_qsid, 1, &qsid, &ctx, &payload, &plen), ZG_ERR_MALFORMED);
	assert_int_equal(httpdg_decode(two_byte_qsid, 2, &qsid, &ctx, &payload, &plen), ZG_ERR_MALFORMED);
	assert_int_equal(httpdg_decode(two_byte_qsid, 3, &qsid, &ctx, &payload, &plen), 0);
	assert_int_equal(httpdg_decode_capsule_value(two_byte_qsid, 0, &ctx, &payload, &plen), ZG_ERR_MALFORMED);
}

static void test_c13_datagram_capsule_roundtrip(void **state)
{
	uint8_t buf[64], *p = buf, pbuf[64];
	static const uint8_t pkt[] = { 0x60, 0, 0, 0, 9, 9 };
	const uint8_t *r = buf, *payload;
	struct capsule_parser cp;
	struct capsule c;
	uint64_t ctx;
	size_t plen;
	(void)state;

	assert_int_equal(httpdg_encode_capsule(&p, buf + sizeof(buf), 0, pkt, sizeof(pkt)), 0);
	capsule_parser_init(&cp, pbuf, sizeof(pbuf), CAPSULE_MASK_CONNECT_IP);
	assert_int_equal(capsule_parser_feed(&cp, &r, p, &c), 1);
	assert_true(c.type == CAPSULE_DATAGRAM);
	assert_int_equal(httpdg_decode_capsule_value(c.value, c.len, &ctx, &payload, &plen), 0);
	assert_true(ctx == 0);
	assert_int_equal(plen, sizeof(pkt));
	assert_memory_equal(payload, pkt, sizeof(pkt));
	/* too small a buffer: nothing written */
	p = buf;
	assert_int_equal(httpdg_encode_capsule(&p, buf + 8, 0, pkt, sizeof(pkt)), ZG_ERR_BUFSHORT);
	assert_ptr_equal(p, buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c06_parse_whole),
		cmocka_unit_test(test_c06_parse_byte_by_byte_same),
		cmocka_unit_test(test_c06_parse_every_split_same),
		cmocka_unit_test(test_c06_unknown_huge_skipped_without_buffering),
		cmocka_unit_test(test_c06_known_too_large_refused_before_value),
		cmocka_unit_test(test_parser_lends_buffer_only_when_split),
		cmocka_unit_test(test_c06_truncated_at_stream_end),
		cmocka_unit_test(test_c06_empty_stream_ok),
		cmocka_unit_test(test_c06_zero_copy_and_buffered_values),
		cmocka_unit_test(test_c06_known_mask_selects_types),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_c12_httpdg_roundtrip),
		cmocka_unit_test(test_c14_httpdg_qsid_limit),
		cmocka_unit_test(test_httpdg_truncated),
		cmocka_unit_test(test_c13_datagram_capsule_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
