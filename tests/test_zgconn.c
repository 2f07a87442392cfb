/* Unit tests for src/capsule/zgconn: the ZG_CONNECTORS capsule that tells
 * an agent where its on-prem connectors are (issue 22). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capsule.h"
#include "varint.h"
#include "zg_err.h"
#include "zgconn.h"

static struct zgconn A[ZGCONN_MAX + 1], B[ZGCONN_MAX];
static uint8_t buf[16384];

static void v4(struct zgconn_prefix *p, uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t len)
{
	memset(p, 0, sizeof(*p));
	p->version = 4;
	p->a[0] = a;
	p->a[1] = b;
	p->a[2] = c;
	p->a[3] = d;
	p->len = len;
}

static void hospital(struct zgconn *c, const char *id)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->id, id);
	c->up = 1;
	c->port = 443;
	v4(&c->addrs[0], 10, 100, 0, 9, 32);
	c->naddrs = 1;
	v4(&c->prefixes[0], 10, 20, 0, 0, 16);
	memset(&c->prefixes[1], 0, sizeof(c->prefixes[1]));
	c->prefixes[1].version = 6;
	c->prefixes[1].a[0] = 0xfd;
	c->prefixes[1].a[1] = 0x20;
	c->prefixes[1].len = 48;
	c->nprefixes = 2;
}

static int decode(const uint8_t *v, size_t len, size_t *pn)
{
	return zgconn_decode(v, len, B, ZGCONN_MAX, pn);
}

static void test_roundtrip_capsule(void **state)
{
	const uint8_t *q;
	uint64_t t, l;
	size_t len, n;

	(void)state;
	hospital(&A[0], "hospital-a");
	hospital(&A[1], "clinic.b_2");
	A[1].up = 0;
	A[1].port = 0;
	A[1].naddrs = 0;
	assert_int_equal(zgconn_encode_capsule(A, 2, buf, sizeof(buf), &len), 0);
	q = buf;
	assert_int_equal(varint_decode(&q, buf + len, &t), 0);
	assert_int_equal(varint_decode(&q, buf + len, &l), 0);
	assert_true(t == CAPSULE_ZG_CONNECTORS);
	assert_int_equal((size_t)l, len - (size_t)(q - buf));
	assert_int_equal(decode(q, (size_t)l, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(B[0].id, "hospital-a");
	assert_int_equal(B[0].up, 1);
	assert_int_equal(B[0].port, 443);
	assert_int_equal(B[0].naddrs, 1);
	assert_memory_equal(B[0].addrs[0].a, A[0].addrs[0].a, 4);
	assert_int_equal(B[0].addrs[0].len, 32);
	assert_int_equal(B[0].nprefixes, 2);
	assert_int_equal(B[0].prefixes[1].version, 6);
	assert_int_equal(B[0].prefixes[1].len, 48);
	assert_int_equal(B[0].prefixes[1].a[1], 0x20);
	assert_string_equal(B[1].id, "clinic.b_2");
	assert_int_equal(B[1].up, 0);
	assert_int_equal(B[1].nprefixes, 2);
}

/* The bytes on the wire, written out from zgconn.h's format. */
static void test_wire_bytes(void **state)
{
	/* type (an 8-byte varint), length 36; ID "h", up, port 443; one
	 * address 10.100.0.9; two prefixes 10.20.0.0/16, fd20::/48 */
	static const uint8_t want[] = { 0xc0, 0x00, 0x00, 0x00, 0x5a, 0x47, 0x43, 0x4e, 0x24,
					0x01, 'h', 0x01, 0x01, 0xbb, 0x01, 0x04, 10, 100,
					0, 9, 0x02, 0x04, 10, 20, 0, 0, 16,
					0x06, 0xfd, 0x20, 0, 0, 0, 0, 0, 0,
					0, 0, 0, 0, 0, 0, 0, 0, 48 };
	size_t len = 0;

	(void)state;
	hospital(&A[0], "h");
	assert_int_equal(zgconn_encode_capsule(A, 1, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	/* one byte short of room: refused, nothing claimed */
	assert_int_equal(zgconn_encode_capsule(A, 1, buf, sizeof(want) - 1, &len),
			 ZG_ERR_BUFSHORT);
}

/* The value alone equals the capsule minus its header; an empty list is a
 * valid (withdrawing) capsule. */
static void test_value_and_empty(void **state)
{
	uint8_t v[1024];
	size_t len, vlen, n = 99;

	(void)state;
	hospital(&A[0], "h");
	assert_int_equal(zgconn_encode(A, 1, v, sizeof(v), &vlen), 0);
	assert_int_equal(zgconn_encode_capsule(A, 1, buf, sizeof(buf), &len), 0);
	assert_memory_equal(buf + len - vlen, v, vlen);
	assert_int_equal(zgconn_encode(A, 0, v, sizeof(v), &vlen), 0);
	assert_int_equal(vlen, 0);
	assert_int_equal(decode(v, 0, &n), 0);
	assert_int_equal(n, 0);
	/* too small a buffer: nothing claimed written */
	assert_int_equal(zgconn_encode(A, 1, v, 5, &vlen), ZG_ERR_BUFSHORT);
}

static void test_encoder_refuses_invalid(void **state)
{
	size_t len;

	(void)state;
	hospital(&A[0], "bad id");
	assert_int_equal(zgconn_encode(A, 1, buf, sizeof(buf), &len), ZG_ERR_INVAL);
	hospital(&A[0], "a");
	hospital(&A[1], "a");
	assert_int_equal(zgconn_encode(A, 2, buf, sizeof(buf), &len), ZG_ERR_INVAL); /* duplicate */
	hospital(&A[0], "a");
	A[0].prefixes[0].a[2] = 1; /* 10.20.1.0/16: host bits */
	assert_int_equal(zgconn_encode(A, 1, buf, sizeof(buf), &len), ZG_ERR_INVAL);
	hospital(&A[0], "a");
	A[0].naddrs = 0; /* up without an address */
	assert_int_equal(zgconn_encode(A, 1, buf, sizeof(buf), &len), ZG_ERR_INVAL);
	hospital(&A[0], "a");
	A[0].addrs[0].len = 24; /* an address is a /32 */
	assert_int_equal(zgconn_encode(A, 1, buf, sizeof(buf), &len), ZG_ERR_INVAL);
	hospital(&A[0], "a");
	A[0].nprefixes = ZGCONN_MAX_PREFIXES + 1;
	assert_int_equal(zgconn_encode(A, 1, buf, sizeof(buf), &len), ZG_ERR_TOO_LARGE);
	for (size_t i = 0; i <= ZGCONN_MAX; i++) {
		char id[8];

		snprintf(id, sizeof(id), "c%zu", i);
		hospital(&A[i], id);
	}
	assert_int_equal(zgconn_encode(A, ZGCONN_MAX + 1, buf, sizeof(buf), &len),
			 ZG_ERR_TOO_LARGE);
	assert_int_equal(zgconn_encode(A, ZGCONN_MAX, buf, sizeof(buf), &len), 0);
}

/* Hand-made values: each violation is refused with its own code. */
static void test_decoder_refuses_malformed(void **state)
{
	/* "h", up, port 443, 1 addr 10.100.0.9, 1 prefix 10.20.0.0/16 */
	const uint8_t good[] = { 1, 'h', 1, 1, 187, 1, 4, 10, 100, 0, 9, 1, 4, 10, 20, 0, 0, 16 };
	uint8_t v[64];
	size_t n, i;

	(void)state;
	assert_int_equal(decode(good, sizeof(good), &n), 0);
	assert_int_equal(n, 1);
	/* every cut ends inside an entry */
	for (i = 1; i < sizeof(good); i++)
		assert_int_equal(decode(good, i, &n), ZG_ERR_TRUNCATED);
	memcpy(v, good, sizeof(good));
	v[2] = 2; /* state */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_MALFORMED);
	memcpy(v, good, sizeof(good));
	v[1] = ' '; /* ID */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_MALFORMED);
	memcpy(v, good, sizeof(good));
	v[6] = 5; /* address version */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_VERSION);
	memcpy(v, good, sizeof(good));
	v[17] = 33; /* prefix length */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_PREFIX);
	memcpy(v, good, sizeof(good));
	v[17] = 8; /* 10.20.0.0/8 has host bits */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_PREFIX);
	memcpy(v, good, sizeof(good));
	v[3] = 0;
	v[4] = 0; /* up with port 0 */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_MALFORMED);
	memcpy(v, good, sizeof(good));
	v[11] = 0; /* up without prefixes: then bytes remain, the next entry is garbage */
	assert_true(decode(v, 12, &n) == ZG_ERR_MALFORMED);
	memcpy(v, good, sizeof(good));
	v[5] = 3; /* more addresses than the bound */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_TOO_LARGE);
	memcpy(v, good, sizeof(good));
	v[0] = 64; /* an ID longer than any valid one */
	assert_int_equal(decode(v, sizeof(good), &n), ZG_ERR_MALFORMED);
	/* the same entry twice */
	memcpy(v, good, sizeof(good));
	memcpy(v + sizeof(good), good, sizeof(good));
	assert_int_equal(decode(v, 2 * sizeof(good), &n), ZG_ERR_MALFORMED);
	/* more entries than the caller's array */
	assert_int_equal(zgconn_decode(good, sizeof(good), B, 0, &n), ZG_ERR_TOO_LARGE);
}

static void test_ids(void **state)
{
	char longid[80];

	(void)state;
	assert_true(zgconn_id_valid("hospital-a"));
	assert_true(zgconn_id_valid("A.b_c-9"));
	assert_false(zgconn_id_valid(""));
	assert_false(zgconn_id_valid("a b"));
	assert_false(zgconn_id_valid("a:b"));
	assert_false(zgconn_id_valid("é"));
	memset(longid, 'x', 63);
	longid[63] = '\0';
	assert_true(zgconn_id_valid(longid));
	longid[63] = 'x';
	longid[64] = '\0';
	assert_false(zgconn_id_valid(longid));
}

static void test_prefix_contains(void **state)
{
	struct zgconn_prefix p;
	const uint8_t in[4] = { 10, 20, 200, 1 }, out[4] = { 10, 21, 0, 1 };
	const uint8_t in6[16] = { 0xfd, 0x20, 0, 0, 0, 0, 0, 1 }, out6[16] = { 0xfd, 0x20, 0, 1 };

	(void)state;
	v4(&p, 10, 20, 0, 0, 16);
	assert_true(zgconn_prefix_contains(&p, 4, in));
	assert_false(zgconn_prefix_contains(&p, 4, out));
	assert_false(zgconn_prefix_contains(&p, 6, in6));
	v4(&p, 10, 20, 128, 0, 17);
	assert_true(zgconn_prefix_contains(&p, 4, in));
	v4(&p, 10, 20, 0, 0, 17);
	assert_false(zgconn_prefix_contains(&p, 4, in));
	v4(&p, 0, 0, 0, 0, 0);
	assert_true(zgconn_prefix_contains(&p, 4, out));
	memset(&p, 0, sizeof(p));
	p.version = 6;
	p.a[0] = 0xfd;
	p.a[1] = 0x20;
	p.len = 48;
	assert_true(zgconn_prefix_contains(&p, 6, in6));
	assert_false(zgconn_prefix_contains(&p, 6, out6));
}

/* A parser that lists the type (the agent) gets the capsule whole; one
 * that does not (a standard RFC 9484 peer) skips it and still reads the
 * ROUTE_ADVERTISEMENT after it (RFC 9297 §3.2). */
static void test_parsers_with_and_without_the_type(void **state)
{
	static uint8_t pbuf[4096];
	struct capsule_parser cp;
	struct capsule out;
	const uint8_t route[] = { CAPSULE_ROUTE_ADVERTISEMENT, 0 };
	const uint8_t *p;
	size_t len, n;

	(void)state;
	hospital(&A[0], "h");
	assert_int_equal(zgconn_encode_capsule(A, 1, buf, sizeof(buf), &len), 0);
	memcpy(buf + len, route, sizeof(route));

	capsule_parser_init(&cp, pbuf, sizeof(pbuf), CAPSULE_MASK_CONNECT_IP);
	p = buf;
	assert_int_equal(capsule_parser_feed(&cp, &p, buf + len + 2, &out), 1);
	assert_true(out.type == CAPSULE_ROUTE_ADVERTISEMENT); /* skipped ours */
	assert_int_equal(capsule_parser_finish(&cp), 0);

	capsule_parser_init(&cp, pbuf, sizeof(pbuf), CAPSULE_MASK_CONNECT_IP);
	assert_int_equal(capsule_parser_add_type(&cp, CAPSULE_ZG_CONNECTORS), 0);
	p = buf;
	assert_int_equal(capsule_parser_feed(&cp, &p, buf + len + 2, &out), 1);
	assert_true(out.type == CAPSULE_ZG_CONNECTORS);
	assert_int_equal(decode(out.value, out.len, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(B[0].id, "h");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_capsule),
		cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_value_and_empty),
		cmocka_unit_test(test_encoder_refuses_invalid),
		cmocka_unit_test(test_decoder_refuses_malformed),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_prefix_contains),
		cmocka_unit_test(test_parsers_with_and_without_the_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
