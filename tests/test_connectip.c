/* Unit tests for src/capsule/connectip: RFC 9484 §4.7 capsules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "capsule.h"
#include "connectip.h"
#include "varint.h"
#include "zg_err.h"

static struct cip_addr v4(uint64_t id, uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t plen)
{
	struct cip_addr x;
	memset(&x, 0, sizeof(x));
	x.request_id = id;
	x.version = 4;
	x.addr[0] = a;
	x.addr[1] = b;
	x.addr[2] = c;
	x.addr[3] = d;
	x.prefix_len = plen;
	return x;
}

static struct cip_addr v6(uint64_t id, uint16_t first, uint8_t last, uint8_t plen)
{
	struct cip_addr x;
	memset(&x, 0, sizeof(x));
	x.request_id = id;
	x.version = 6;
	x.addr[0] = (uint8_t)(first >> 8);
	x.addr[1] = (uint8_t)first;
	x.addr[15] = last;
	x.prefix_len = plen;
	return x;
}

static struct cip_route r4(uint32_t s, uint32_t e, uint8_t proto)
{
	struct cip_route r;
	memset(&r, 0, sizeof(r));
	r.version = 4;
	for (int i = 0; i < 4; i++) {
		r.start[i] = (uint8_t)(s >> (24 - 8 * i));
		r.end[i] = (uint8_t)(e >> (24 - 8 * i));
	}
	r.proto = proto;
	return r;
}

static struct cip_route r6(uint16_t s0, uint16_t e0, uint8_t proto)
{
	struct cip_route r;
	memset(&r, 0, sizeof(r));
	r.version = 6;
	r.start[0] = (uint8_t)(s0 >> 8);
	r.start[1] = (uint8_t)s0;
	r.end[0] = (uint8_t)(e0 >> 8);
	r.end[1] = (uint8_t)e0;
	memset(r.end + 2, 0xff, 14);
	r.proto = proto;
	return r;
}

/* Strips the capsule header off an encoding; returns the value. */
static const uint8_t *value_of(const uint8_t *cap, size_t caplen, uint64_t want_type, size_t *plen)
{
	const uint8_t *p = cap, *end = cap + caplen;
	uint64_t type, len;
	assert_int_equal(varint_decode(&p, end, &type), 0);
	assert_true(type == want_type);
	assert_int_equal(varint_decode(&p, end, &len), 0);
	assert_int_equal((size_t)(end - p), len);
	*plen = (size_t)len;
	return p;
}

static void test_c08_assign_roundtrip_v4_v6(void **state)
{
	struct cip_addr in[2] = { v4(0, 10, 100, 0, 7, 32), v6(5, 0xfd00, 0, 64) }, out[4];
	uint8_t buf[128], *p = buf;
	const uint8_t *v;
	size_t vlen, n = 0;
	(void)state;

	assert_int_equal(cip_addr_assign_encode(&p, buf + sizeof(buf), in, 2), 0);
	/* header(1+1) + v4 entry 1+1+4+1 + v6 entry 1+1+16+1 */
	assert_int_equal(p - buf, 2 + 7 + 19);
	v = value_of(buf, (size_t)(p - buf), CAPSULE_ADDRESS_ASSIGN, &vlen);
	assert_int_equal(cip_addr_assign_decode(v, vlen, out, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(&out[0], &in[0], sizeof(in[0]));
	assert_memory_equal(&out[1], &in[1], sizeof(in[1]));
}

static void test_c08_assign_empty_allowed(void **state)
{
	uint8_t buf[8], *p = buf;
	struct cip_addr out[1];
	size_t n = 99;
	(void)state;
	assert_int_equal(cip_addr_assign_encode(&p, buf + sizeof(buf), NULL, 0), 0);
	assert_int_equal(p - buf, 2);
	assert_int_equal(cip_addr_assign_decode(buf + 2, 0, out, 1, &n), 0);
	assert_int_equal(n, 0);
}

static void test_c08_bad_version(void **state)
{
	/* request id 1, version 5 */
	static const uint8_t v[] = { 0x01, 0x05, 10, 0, 0, 1, 32 };
	struct cip_addr out[1], a = v4(1, 10, 0, 0, 1, 32);
	uint8_t buf[32], *p = buf;
	size_t n;
	(void)state;
	assert_int_equal(cip_addr_assign_decode(v, sizeof(v), out, 1, &n), ZG_ERR_VERSION);
	a.version = 0;
	assert_int_equal(cip_addr_assign_encode(&p, buf + sizeof(buf), &a, 1), ZG_ERR_VERSION);
	assert_ptr_equal(p, buf);
}

static void test_c08_prefix_bounds_and_host_bits(void **state)
{
	struct cip_addr a;
	(void)state;
	a = v4(0, 10, 0, 0, 0, 33);
	assert_int_equal(cip_addr_validate(&a), ZG_ERR_PREFIX);
	a = v4(0, 10, 0, 0, 1, 24); /* host bit set */
	assert_int_equal(cip_addr_validate(&a), ZG_ERR_PREFIX);
	a = v4(0, 10, 0, 0, 0, 24);
	assert_int_equal(cip_addr_validate(&a), 0);
	a = v4(0, 10, 0, 0x80, 0, 17); /* 10.0.128.0/17: the 17th bit is in the prefix */
	assert_int_equal(cip_addr_validate(&a), 0);
	a = v4(0, 10, 0, 0x40, 0, 17); /* 10.0.64.0/17: the 18th bit is a host bit */
	assert_int_equal(cip_addr_validate(&a), ZG_ERR_PREFIX);
	a.prefix_len = 18;
	assert_int_equal(cip_addr_validate(&a), 0);
	a = v4(0, 0, 0, 0, 0, 0);
	assert_int_equal(cip_addr_validate(&a), 0);
	a = v4(0, 1, 0, 0, 0, 0);
	assert_int_equal(cip_addr_validate(&a), ZG_ERR_PREFIX);
	a = v6(0, 0x2001, 0, 128);
	assert_int_equal(cip_addr_validate(&a), 0);
	a = v6(0, 0x2001, 0, 129);
	assert_int_equal(cip_addr_validate(&a), ZG_ERR_PREFIX);
	a = v6(0, 0x2001, 1, 64);
	assert_int_equal(cip_addr_validate(&a), ZG_ERR_PREFIX);
	a = v4(0, 10, 0, 0, 1, 32);
	a.addr[4] = 1; /* garbage beyond the IPv4 bytes */
	assert_int_equal(cip_addr_validate(&a), ZG_ERR_INVAL);
}

static void test_c08_host_bits_on_the_wire(void **state)
{
	/* ADDRESS_ASSIGN entry 10.0.0.1/24 */
	static const uint8_t v[] = { 0x00, 0x04, 10, 0, 0, 1, 24 };
	struct cip_addr out[1];
	size_t n;
	(void)state;
	assert_int_equal(cip_addr_assign_decode(v, sizeof(v), out, 1, &n), ZG_ERR_PREFIX);
}

static void test_c08_truncated_every_length(void **state)
{
	struct cip_addr in[2] = { v4(3, 192, 0, 2, 1, 32), v6(400, 0x2001, 9, 128) }, out[2];
	uint8_t buf[128], *p = buf;
	const uint8_t *v;
	size_t vlen, n;
	(void)state;
	assert_int_equal(cip_addr_assign_encode(&p, buf + sizeof(buf), in, 2), 0);
	v = value_of(buf, (size_t)(p - buf), CAPSULE_ADDRESS_ASSIGN, &vlen);
	for (size_t cut = 1; cut < vlen; cut++) {
		int r = cip_addr_assign_decode(v, cut, out, 2, &n);
		/* the first entry is 1+1+4+1 = 7 bytes: a cut there is a whole list */
		if (cut == 7)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, ZG_ERR_MALFORMED);
	}
	assert_int_equal(cip_addr_assign_decode(v, vlen, out, 2, &n), 0);
	assert_int_equal(n, 2);
}

static void test_decode_more_than_max(void **state)
{
	struct cip_addr in[3] = { v4(0, 10, 0, 0, 1, 32), v4(0, 10, 0, 0, 2, 32), v4(0, 10, 0, 0, 3, 32) }, out[2];
	uint8_t buf[64], *p = buf;
	const uint8_t *v;
	size_t vlen, n;
	(void)state;
	assert_int_equal(cip_addr_assign_encode(&p, buf + sizeof(buf), in, 3), 0);
	v = value_of(buf, (size_t)(p - buf), CAPSULE_ADDRESS_ASSIGN, &vlen);
	assert_int_equal(cip_addr_assign_decode(v, vlen, out, 2, &n), ZG_ERR_TOO_LARGE);
}

static void test_c09_request_roundtrip(void **state)
{
	struct cip_addr in[2] = { v4(1, 0, 0, 0, 0, 32), v6(2, 0, 0, 128) }, out[2];
	uint8_t buf[64], *p = buf;
	const uint8_t *v;
	size_t vlen, n;
	(void)state;
	assert_int_equal(cip_addr_request_encode(&p, buf + sizeof(buf), in, 2), 0);
	v = value_of(buf, (size_t)(p - buf), CAPSULE_ADDRESS_REQUEST, &vlen);
	assert_int_equal(cip_addr_request_decode(v, vlen, out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, in, sizeof(in));
}

static void test_c09_request_empty_refused(void **state)
{
	uint8_t buf[8] = { 0 }, *p = buf;
	struct cip_addr out[1];
	size_t n;
	(void)state;
	assert_int_equal(cip_addr_request_decode(buf, 0, out, 1, &n), ZG_ERR_EMPTY);
	assert_int_equal(cip_addr_request_encode(&p, buf + sizeof(buf), NULL, 0), ZG_ERR_EMPTY);
	assert_ptr_equal(p, buf);
}

static void test_c09_request_id_zero_refused(void **state)
{
	static const uint8_t v[] = { 0x00, 0x04, 0, 0, 0, 0, 32 };
	struct cip_addr out[1], a = v4(0, 0, 0, 0, 0, 32);
	uint8_t buf[16], *p = buf;
	size_t n;
	(void)state;
	assert_int_equal(cip_addr_request_decode(v, sizeof(v), out, 1, &n), ZG_ERR_REQUEST_ID);
	assert_int_equal(cip_addr_request_encode(&p, buf + sizeof(buf), &a, 1), ZG_ERR_REQUEST_ID);
	/* the same bytes are a valid, unprompted ADDRESS_ASSIGN */
	assert_int_equal(cip_addr_assign_decode(v, sizeof(v), out, 1, &n), 0);
}

static void test_c09_refusal_form(void **state)
{
	struct cip_addr req4 = v4(77, 10, 100, 0, 9, 32), req6 = v6(78, 0xfd00, 1, 128), out;
	struct cip_addr bad = req4;
	(void)state;
	assert_int_equal(cip_addr_refusal(&req4, &out), 0);
	assert_true(out.request_id == 77);
	assert_int_equal(out.version, 4);
	assert_int_equal(out.prefix_len, 32);
	for (int i = 0; i < 16; i++)
		assert_int_equal(out.addr[i], 0);
	assert_int_equal(cip_addr_validate(&out), 0);
	assert_int_equal(cip_addr_refusal(&req6, &out), 0);
	assert_int_equal(out.prefix_len, 128);
	assert_true(out.request_id == 78);
	bad.version = 7;
	assert_int_equal(cip_addr_refusal(&bad, &out), ZG_ERR_VERSION);
}

static void test_encode_buffer_short(void **state)
{
	struct cip_addr a = v6(1, 0x2001, 1, 128);
	struct cip_route r = r4(0x0a000000, 0x0a0000ff, 0);
	uint8_t buf[64], *p;
	(void)state;
	for (size_t room = 0; room < 21; room++) {
		p = buf;
		assert_int_equal(cip_addr_assign_encode(&p, buf + room, &a, 1), ZG_ERR_BUFSHORT);
		assert_ptr_equal(p, buf);
	}
	p = buf;
	assert_int_equal(cip_addr_assign_encode(&p, buf + 21, &a, 1), 0);
	for (size_t room = 0; room < 12; room++) {
		p = buf;
		assert_int_equal(cip_route_adv_encode(&p, buf + room, &r, 1), ZG_ERR_BUFSHORT);
	}
	p = buf;
	assert_int_equal(cip_route_adv_encode(&p, buf + 12, &r, 1), 0);
}

static void test_c07_route_adv_roundtrip(void **state)
{
	struct cip_route in[5] = {
		r4(0x0a000000, 0x0a0000ff, 0),
		r4(0xcb007100, 0xcb0071ff, 0),
		r4(0xc0000200, 0xc00002ff, 6),
		r6(0x2001, 0x2001, 0),
		r6(0xfd00, 0xfd00, 17),
	},
			 out[8];
	uint8_t buf[256], *p = buf;
	const uint8_t *v;
	size_t vlen, n;
	(void)state;
	assert_int_equal(cip_routes_validate(in, 5), 0);
	assert_int_equal(cip_route_adv_encode(&p, buf + sizeof(buf), in, 5), 0);
	v = value_of(buf, (size_t)(p - buf), CAPSULE_ROUTE_ADVERTISEMENT, &vlen);
	assert_int_equal(vlen, 3 * 10 + 2 * 34);
	assert_int_equal(cip_route_adv_decode(v, vlen, out, 8, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, in, sizeof(in));
	/* an empty advertisement is valid: no routes */
	assert_int_equal(cip_route_adv_decode(v, 0, out, 8, &n), 0);
	assert_int_equal(n, 0);
}

static void test_c07_route_adv_order(void **state)
{
	struct cip_route l[2];
	(void)state;
	/* version: 6 before 4 */
	l[0] = r6(0x2001, 0x2001, 0);
	l[1] = r4(0x0a000000, 0x0a0000ff, 0);
	assert_int_equal(cip_routes_validate(l, 2), ZG_ERR_ORDER);
	/* protocol: 17 before 6, same version */
	l[0] = r4(0x0a000000, 0x0a0000ff, 17);
	l[1] = r4(0x0b000000, 0x0b0000ff, 6);
	assert_int_equal(cip_routes_validate(l, 2), ZG_ERR_ORDER);
	/* address: same version and protocol, B starts before A */
	l[0] = r4(0x0b000000, 0x0b0000ff, 6);
	l[1] = r4(0x0a000000, 0x0a0000ff, 6);
	assert_int_equal(cip_routes_validate(l, 2), ZG_ERR_ORDER);
	/* overlap */
	l[0] = r4(0x0a000000, 0x0a0000ff, 6);
	l[1] = r4(0x0a0000ff, 0x0a0001ff, 6);
	assert_int_equal(cip_routes_validate(l, 2), ZG_ERR_ORDER);
	/* adjacency is fine */
	l[1] = r4(0x0a000100, 0x0a0001ff, 6);
	assert_int_equal(cip_routes_validate(l, 2), 0);
	/* same range, different protocols is fine */
	l[0] = r4(0x0a000000, 0x0a0000ff, 6);
	l[1] = r4(0x0a000000, 0x0a0000ff, 17);
	assert_int_equal(cip_routes_validate(l, 2), 0);
}

static void test_c07_route_start_after_end(void **state)
{
	struct cip_route r = r4(0x0a000001, 0x0a000000, 0);
	static const uint8_t wire[] = { 4, 10, 0, 0, 1, 10, 0, 0, 0, 0 };
	struct cip_route out[1];
	size_t n;
	(void)state;
	assert_int_equal(cip_routes_validate(&r, 1), ZG_ERR_MALFORMED);
	assert_int_equal(cip_route_adv_decode(wire, sizeof(wire), out, 1, &n), ZG_ERR_MALFORMED);
	r = r4(0x0a000001, 0x0a000001, 0); /* a single address */
	assert_int_equal(cip_routes_validate(&r, 1), 0);
}

static void test_c07_route_bad_version(void **state)
{
	static const uint8_t wire[] = { 5, 10, 0, 0, 0, 10, 0, 0, 1, 0 };
	struct cip_route out[1], r = r4(1, 2, 0);
	uint8_t buf[32], *p = buf;
	size_t n;
	(void)state;
	assert_int_equal(cip_route_adv_decode(wire, sizeof(wire), out, 1, &n), ZG_ERR_VERSION);
	r.version = 0;
	assert_int_equal(cip_route_adv_encode(&p, buf + sizeof(buf), &r, 1), ZG_ERR_VERSION);
	assert_ptr_equal(p, buf);
}

static void test_c07_proto0_overlap_refused(void **state)
{
	struct cip_route l[3];
	(void)state;
	/* 10.0.0.0/24 any protocol, 10.0.0.128/25 TCP: overlap */
	l[0] = r4(0x0a000000, 0x0a0000ff, 0);
	l[1] = r4(0x0a000080, 0x0a0000ff, 6);
	assert_int_equal(cip_routes_validate(l, 2), ZG_ERR_ORDER);
	/* different version: no conflict */
	l[0] = r4(0x0a000000, 0x0a0000ff, 0);
	l[1] = r6(0x2001, 0x2001, 6);
	assert_int_equal(cip_routes_validate(l, 2), 0);
	/* the overlap found against a later protocol-0 range */
	l[0] = r4(0x01000000, 0x010000ff, 0);
	l[1] = r4(0x0a000000, 0x0a0000ff, 0);
	l[2] = r4(0x0a0000f0, 0x0b000000, 17);
	assert_int_equal(cip_routes_validate(l, 3), ZG_ERR_ORDER);
	l[2] = r4(0x0a000100, 0x0b000000, 17);
	assert_int_equal(cip_routes_validate(l, 3), 0);
	/* on the wire, the receiver refuses it */
	uint8_t buf[64], *p = buf;
	struct cip_route out[3];
	size_t n;
	l[2] = r4(0x0a0000f0, 0x0b000000, 17);
	p = buf;
	assert_int_equal(cip_route_adv_encode(&p, buf + sizeof(buf), l, 3), ZG_ERR_ORDER);
	p = buf;
	for (int i = 0; i < 3; i++) {
		*p++ = 4;
		memcpy(p, l[i].start, 4);
		memcpy(p + 4, l[i].end, 4);
		p[8] = l[i].proto;
		p += 9;
	}
	assert_int_equal(cip_route_adv_decode(buf, (size_t)(p - buf), out, 3, &n), ZG_ERR_ORDER);
}

static void test_c07_route_truncated_every_length(void **state)
{
	struct cip_route in[2] = { r4(0x0a000000, 0x0a0000ff, 0), r6(0x2001, 0x2002, 0) }, out[2];
	uint8_t buf[128], *p = buf;
	const uint8_t *v;
	size_t vlen, n;
	(void)state;
	assert_int_equal(cip_route_adv_encode(&p, buf + sizeof(buf), in, 2), 0);
	v = value_of(buf, (size_t)(p - buf), CAPSULE_ROUTE_ADVERTISEMENT, &vlen);
	for (size_t cut = 1; cut < vlen; cut++) {
		int r = cip_route_adv_decode(v, cut, out, 2, &n);
		if (cut == 10)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, ZG_ERR_MALFORMED);
	}
	assert_int_equal(cip_route_adv_decode(v, vlen, out, 1, &n), ZG_ERR_TOO_LARGE);
}

static void test_normalize_sorts_and_merges(void **state)
{
	struct cip_route l[8] = {
		r6(0x2001, 0x2001, 0),
		r4(0x0a000100, 0x0a0001ff, 0), /* touches the next one */
		r4(0x0a000000, 0x0a0000ff, 0),
		r4(0x0a000080, 0x0a000180, 0), /* inside the union */
		r4(0xc0000200, 0xc00002ff, 17),
	};
	size_t n;
	(void)state;
	assert_int_equal(cip_routes_normalize(l, 5, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(&l[0], &(struct cip_route){ 0 }, 0);
	struct cip_route want0 = r4(0x0a000000, 0x0a0001ff, 0);
	struct cip_route want1 = r4(0xc0000200, 0xc00002ff, 17);
	struct cip_route want2 = r6(0x2001, 0x2001, 0);
	assert_memory_equal(&l[0], &want0, sizeof(want0));
	assert_memory_equal(&l[1], &want1, sizeof(want1));
	assert_memory_equal(&l[2], &want2, sizeof(want2));
	assert_int_equal(cip_routes_validate(l, n), 0);
}

static void test_normalize_trims_against_proto0(void **state)
{
	/* TCP 10.0.0.0–10.0.3.255 minus "any" 10.0.1.0/24: split in two */
	struct cip_route l[4] = {
		r4(0x0a000000, 0x0a0003ff, 6),
		r4(0x0a000100, 0x0a0001ff, 0),
	};
	size_t n;
	(void)state;
	assert_int_equal(cip_routes_normalize(l, 2, 4, &n), 0);
	assert_int_equal(n, 3);
	struct cip_route w0 = r4(0x0a000100, 0x0a0001ff, 0);
	struct cip_route w1 = r4(0x0a000000, 0x0a0000ff, 6);
	struct cip_route w2 = r4(0x0a000200, 0x0a0003ff, 6);
	assert_memory_equal(&l[0], &w0, sizeof(w0));
	assert_memory_equal(&l[1], &w1, sizeof(w1));
	assert_memory_equal(&l[2], &w2, sizeof(w2));
	assert_int_equal(cip_routes_validate(l, n), 0);

	/* no room for the split */
	l[0] = r4(0x0a000000, 0x0a0003ff, 6);
	l[1] = r4(0x0a000100, 0x0a0001ff, 0);
	assert_int_equal(cip_routes_normalize(l, 2, 2, &n), ZG_ERR_TOO_LARGE);

	/* wholly covered: removed */
	l[0] = r4(0x0a000100, 0x0a000110, 17);
	l[1] = r4(0x0a000000, 0x0a0001ff, 0);
	l[2] = r4(0x0a000300, 0x0a000310, 17);
	assert_int_equal(cip_routes_normalize(l, 3, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(l[0].proto, 0);
	struct cip_route w3 = r4(0x0a000300, 0x0a000310, 17);
	assert_memory_equal(&l[1], &w3, sizeof(w3));
}

/* 1 when address a (4 bytes, big-endian u32) lies in one of r[0..n) */
static int covered4(const struct cip_route *r, size_t n, uint32_t a)
{
	struct cip_route x = r4(a, a, 0);

	for (size_t i = 0; i < n; i++)
		if (r[i].version == 4 && memcmp(r[i].start, x.start, 4) <= 0 &&
		    memcmp(r[i].end, x.end, 4) >= 0)
			return 1;
	return 0;
}

static void test_coarsen_joins_smallest_gaps(void **state)
{
	/* 1000 /32s in 100 clusters of 10 (gap 2 inside a cluster, 1000
	 * between clusters), TCP and UDP mixed, plus two IPv6 ranges */
	static struct cip_route l[1002];
	size_t n = 0, out;
	uint32_t base = 0x0a000000;

	(void)state;
	for (uint32_t c = 0; c < 100; c++)
		for (uint32_t k = 0; k < 10; k++) {
			uint32_t a = base + c * 1000 + k * 3;

			l[n++] = r4(a, a, k % 2 ? 6 : 17);
		}
	l[n++] = r6(0x2001, 0x2001, 6);
	l[n++] = r6(0x3001, 0x3001, 0);
	assert_int_equal(cip_routes_coarsen(l, n, 102, &out), 0);
	/* each cluster becomes one range: 100 + 2 IPv6 */
	assert_int_equal(out, 102);
	assert_int_equal(cip_routes_validate(l, out), 0);
	for (uint32_t c = 0; c < 100; c++) {
		for (uint32_t k = 0; k < 10; k++)
			assert_true(covered4(l, out, base + c * 1000 + k * 3));
		assert_false(covered4(l, out, base + c * 1000 + 500)); /* between clusters */
	}
	for (size_t i = 0; i < out; i++)
		assert_int_equal(l[i].proto, 0);
	assert_int_equal(l[out - 2].version, 6);
	assert_int_equal(l[out - 1].version, 6);

	/* down to 2: one range per version, still covering everything */
	n = 0;
	for (uint32_t c = 0; c < 100; c++)
		l[n++] = r4(base + c * 1000, base + c * 1000, 6);
	l[n++] = r6(0x2001, 0x2001, 6);
	l[n++] = r6(0x3001, 0x3001, 0);
	assert_int_equal(cip_routes_coarsen(l, n, 2, &out), 0);
	assert_int_equal(out, 2);
	struct cip_route w4 = r4(base, base + 99 * 1000, 0), w6 = r6(0x2001, 0x3001, 0);
	assert_memory_equal(&l[0], &w4, sizeof(w4));
	assert_memory_equal(&l[1], &w6, sizeof(w6));
	assert_int_equal(cip_routes_validate(l, out), 0);

	/* already small enough: only normalised; max below 2 refused */
	l[0] = r4(1, 1, 6);
	l[1] = r4(5, 5, 6);
	assert_int_equal(cip_routes_coarsen(l, 2, 4, &out), 0);
	assert_int_equal(out, 2);
	assert_int_equal(cip_routes_coarsen(l, 2, 1, &out), ZG_ERR_INVAL);
}

static void test_normalize_full_range_edges(void **state)
{
	/* ranges touching the top of the address space merge without wrap */
	struct cip_route l[3] = {
		r4(0x80000000, 0xffffffff, 0),
		r4(0x00000000, 0x7fffffff, 0),
		r4(0xfffffff0, 0xffffffff, 6),
	};
	size_t n;
	(void)state;
	assert_int_equal(cip_routes_normalize(l, 3, 3, &n), 0);
	assert_int_equal(n, 1);
	struct cip_route all = r4(0, 0xffffffff, 0);
	assert_memory_equal(&l[0], &all, sizeof(all));
	/* an invalid input range is refused */
	l[0] = r4(2, 1, 0);
	assert_int_equal(cip_routes_normalize(l, 1, 3, &n), ZG_ERR_MALFORMED);
	l[0].version = 9;
	assert_int_equal(cip_routes_normalize(l, 1, 3, &n), ZG_ERR_VERSION);
}

/* The same addresses told again (another Request ID, another order) are
 * the same set; a changed address, prefix length, version or count is not. */
static void test_addr_same_set(void **state)
{
	struct cip_addr a[2], b[2];

	(void)state;
	memset(a, 0, sizeof(a));
	a[0].version = 4;
	memcpy(a[0].addr, "\x0a\x64\x00\x29", 4);
	a[0].prefix_len = 32;
	a[1].version = 6;
	memcpy(a[1].addr, "\xfd\x00\x01\x00\0\0\0\0\0\0\0\0\0\0\0\x29", 16);
	a[1].prefix_len = 128;
	b[0] = a[1];
	b[1] = a[0];
	b[0].request_id = 7;
	b[1].request_id = 8;
	assert_int_equal(cip_addr_same_set(a, 2, b, 2), 1);
	assert_int_equal(cip_addr_same_set(a, 1, b + 1, 1), 1);
	assert_int_equal(cip_addr_same_set(a, 0, b, 0), 1);
	assert_int_equal(cip_addr_same_set(a, 1, b, 2), 0);
	assert_int_equal(cip_addr_same_set(a, 2, b, 1), 0);
	assert_int_equal(cip_addr_same_set(a, 0, b, 1), 0);
	assert_int_equal(cip_addr_same_set(a, 1, b, 1), 0);
	b[1].addr[3] = 0x2a;
	assert_int_equal(cip_addr_same_set(a, 2, b, 2), 0);
	b[1] = a[0];
	b[1].prefix_len = 31;
	assert_int_equal(cip_addr_same_set(a, 2, b, 2), 0);
	/* a duplicate does not stand in for a missing address */
	b[1] = a[1];
	assert_int_equal(cip_addr_same_set(a, 2, b, 2), 0);
	assert_int_equal(cip_addr_same_set(b, 2, a, 2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c08_assign_roundtrip_v4_v6),
		cmocka_unit_test(test_c08_assign_empty_allowed),
		cmocka_unit_test(test_c08_bad_version),
		cmocka_unit_test(test_c08_prefix_bounds_and_host_bits),
		cmocka_unit_test(test_c08_host_bits_on_the_wire),
		cmocka_unit_test(test_c08_truncated_every_length),
		cmocka_unit_test(test_decode_more_than_max),
		cmocka_unit_test(test_c09_request_roundtrip),
		cmocka_unit_test(test_c09_request_empty_refused),
		cmocka_unit_test(test_c09_request_id_zero_refused),
		cmocka_unit_test(test_c09_refusal_form),
		cmocka_unit_test(test_encode_buffer_short),
		cmocka_unit_test(test_c07_route_adv_roundtrip),
		cmocka_unit_test(test_c07_route_adv_order),
		cmocka_unit_test(test_c07_route_start_after_end),
		cmocka_unit_test(test_c07_route_bad_version),
		cmocka_unit_test(test_c07_proto0_overlap_refused),
		cmocka_unit_test(test_c07_route_truncated_every_length),
		cmocka_unit_test(test_normalize_sorts_and_merges),
		cmocka_unit_test(test_normalize_trims_against_proto0),
		cmocka_unit_test(test_normalize_full_range_edges),
		cmocka_unit_test(test_coarsen_joins_smallest_gaps),
		cmocka_unit_test(test_addr_same_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
