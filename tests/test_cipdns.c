/* Unit tests for src/capsule/cipdns: the DNS_ASSIGN capsule of
 * draft-ietf-masque-connect-ip-dns-06 (checklist item C26), and the
 * capsule parser's extension types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capsule.h"
#include "cipdns.h"
#include "varint.h"
#include "zg_err.h"

static struct cipdns_assign *A, *B;

static int setup(void **state)
{
	(void)state;
	A = calloc(1, sizeof(*A));
	B = calloc(1, sizeof(*B));
	return A && B ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(A);
	free(B);
	return 0;
}

/* The draft's split-tunnel example (§"Split-Tunnel Enterprise VPN"). */
static void split_example(struct cipdns_assign *a)
{
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct cipdns_config *c = &a->cfg[0];

	memset(a, 0, sizeof(*a));
	a->n = 1;
	c->nns = 1;
	c->ns[0].priority = 1;
	c->ns[0].n4 = 1;
	memcpy(c->ns[0].v4[0], (uint8_t[]){ 192, 0, 2, 33 }, 4);
	c->ns[0].n6 = 1;
	memcpy(c->ns[0].v6[0], v6, 16);
	c->ninternal = 1;
	strcpy(c->internal[0], "internal.corp.example");
	c->nsearch = 2;
	strcpy(c->search[0], "internal.corp.example");
	strcpy(c->search[1], "corp.example");
}

/* The same, byte by byte as the draft's figures lay it out. */
static size_t split_example_bytes(uint8_t *b)
{
	uint8_t *p = b;

	p = varint_put(p, CAPSULE_DNS_ASSIGN);
	p = varint_put(p, 86); /* value length, checked below */
	*p++ = 1;              /* Nameserver Count */
	*p++ = 0, *p++ = 1;    /* Service Priority */
	*p++ = 1;              /* IPv4 Address Count */
	*p++ = 192, *p++ = 0, *p++ = 2, *p++ = 33;
	*p++ = 1; /* IPv6 Address Count */
	memcpy(p, (uint8_t[]){ 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 16);
	p += 16;
	*p++ = 0; /* Authentication Domain Name: empty */
	*p++ = 0; /* Service Parameters Length */
	*p++ = 1; /* Internal Domain Count */
	*p++ = 21, memcpy(p, "internal.corp.example", 21), p += 21;
	*p++ = 2; /* Search Domain Count */
	*p++ = 21, memcpy(p, "internal.corp.example", 21), p += 21;
	*p++ = 12, memcpy(p, "corp.example", 12), p += 12;
	return (size_t)(p - b);
}

static void test_c26_type_is_draft_06_codepoint(void **state)
{
	(void)state;
	assert_true(CAPSULE_DNS_ASSIGN == 0x1ACE79EC);
	assert_int_equal(varint_len(CAPSULE_DNS_ASSIGN), 4);
}

static void test_c26_encode_matches_draft_layout(void **state)
{
	uint8_t want[256], got[256], *p = got;
	size_t n = split_example_bytes(want);

	(void)state;
	split_example(A);
	assert_int_equal(cipdns_assign_encode(&p, got + sizeof(got), A), 0);
	assert_int_equal((size_t)(p - got), n);
	assert_int_equal(n - 6, 86); /* type (4 bytes), length (2), value */
	assert_memory_equal(got, want, n);
}

static void test_c26_decode_roundtrip(void **state)
{
	uint8_t buf[512], *p = buf;
	const uint8_t *q;
	uint64_t t, l;

	(void)state;
	split_example(A);
	assert_int_equal(cipdns_assign_encode(&p, buf + sizeof(buf), A), 0);
	q = buf;
	assert_int_equal(varint_decode(&q, p, &t), 0);
	assert_int_equal(varint_decode(&q, p, &l), 0);
	assert_true(t == CAPSULE_DNS_ASSIGN);
	assert_int_equal(l, (uint64_t)(p - q));
	assert_int_equal(cipdns_assign_decode(q, (size_t)l, B), 0);
	assert_int_equal(B->n, 1);
	assert_int_equal(B->cfg[0].ns[0].priority, 1);
	assert_memory_equal(B->cfg[0].ns[0].v4[0], ((uint8_t[]){ 192, 0, 2, 33 }), 4);
	assert_string_equal(B->cfg[0].internal[0], "internal.corp.example");
	assert_string_equal(B->cfg[0].search[1], "corp.example");
	assert_memory_equal(A, B, sizeof(*A)); /* every field, padding zeroed by both */
}

static void test_c26_empty_capsule_withdraws(void **state)
{
	uint8_t buf[16], *p = buf;

	(void)state;
	memset(A, 0, sizeof(*A));
	assert_int_equal(cipdns_assign_encode(&p, buf + sizeof(buf), A), 0);
	assert_int_equal((size_t)(p - buf), 5); /* type (4) + length 0 */
	B->n = 3;
	assert_int_equal(cipdns_assign_decode(buf + 5, 0, B), 0);
	assert_int_equal(B->n, 0);
}

static void test_c26_root_internal_domain(void **state)
{
	/* one config: no nameserver, internal [""] (the root), no search */
	static const uint8_t v[] = { 0, 1, 0, 0 };

	(void)state;
	assert_int_equal(cipdns_assign_decode(v, sizeof(v), A), 0);
	assert_int_equal(A->cfg[0].ninternal, 1);
	assert_string_equal(A->cfg[0].internal[0], "");
	/* but the root is no search domain */
	assert_int_equal(cipdns_assign_decode((const uint8_t[]){ 0, 0, 1, 0 }, 4, A),
			 ZG_ERR_MALFORMED);
}

static void test_c26_truncated_every_length(void **state)
{
	uint8_t buf[256];
	size_t n = split_example_bytes(buf), i;

	(void)state;
	/* value starts after the 4-byte type and 2-byte length */
	for (i = 0; i < n - 6; i++) {
		int r = cipdns_assign_decode(buf + 6, i, A);

		/* a prefix that ends between two configurations is valid: only
		 * the empty one here */
		if (i == 0)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, ZG_ERR_MALFORMED);
	}
	assert_int_equal(cipdns_assign_decode(buf + 6, n - 6, A), 0);
}

static void test_c26_priority_zero_refused(void **state)
{
	uint8_t buf[256];
	size_t n = split_example_bytes(buf);

	(void)state;
	buf[6 + 2] = 0; /* priority 0x0001 -> 0 */
	assert_int_equal(cipdns_assign_decode(buf + 6, n - 6, A), ZG_ERR_MALFORMED);
	split_example(A);
	A->cfg[0].ns[0].priority = 0;
	{
		uint8_t out[256], *p = out;

		assert_int_equal(cipdns_assign_encode(&p, out + sizeof(out), A), ZG_ERR_INVAL);
		assert_ptr_equal(p, out);
	}
}

static void test_c26_bad_names_refused(void **state)
{
	static const char *bad[] = { "a..b", ".a", "a b", "a\nnameserver 6.6.6.6", "a\\.b",
				     "-\x01", "é.example", "a;b" };
	uint8_t v[300];
	size_t i, l;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = strlen(bad[i]);
		v[0] = 0; /* no nameserver */
		v[1] = 1; /* one internal domain */
		v[2] = (uint8_t)l;
		memcpy(v + 3, bad[i], l);
		v[3 + l] = 0;
		assert_int_equal(cipdns_assign_decode(v, 4 + l, A), ZG_ERR_MALFORMED);
	}
	assert_true(cipdns_name_ok("Example.COM.", 12, 0));
	assert_true(cipdns_name_ok("_dns.x-y.example", 16, 0));
	{
		char big[300];

		memset(big, 'a', sizeof(big));
		assert_false(cipdns_name_ok(big, 64, 0)); /* label > 63 */
		for (i = 63; i < 254; i += 64)
			big[i] = '.';
		assert_true(cipdns_name_ok(big, 253, 0));
		assert_false(cipdns_name_ok(big, 254, 0) && big[253] != '.');
	}
}

static void test_c26_counts_bounded_before_reading(void **state)
{
	uint8_t v[16], *p;

	(void)state;
	/* a huge nameserver count with nothing behind it: too large, not a read */
	p = v;
	p = varint_put(p, UINT64_C(1) << 40);
	assert_int_equal(cipdns_assign_decode(v, (size_t)(p - v), A), ZG_ERR_TOO_LARGE);
	p = v;
	*p++ = 0;
	p = varint_put(p, CIPDNS_MAX_DOMAINS + 1);
	assert_int_equal(cipdns_assign_decode(v, (size_t)(p - v), A), ZG_ERR_TOO_LARGE);
	/* more configurations than the bound */
	{
		uint8_t many[4 * (CIPDNS_MAX_CONFIGS + 1)];

		memset(many, 0, sizeof(many)); /* each config: 0,0,0 = 3 bytes */
		assert_int_equal(cipdns_assign_decode(many, 3 * CIPDNS_MAX_CONFIGS, A), 0);
		assert_int_equal(A->n, CIPDNS_MAX_CONFIGS);
		assert_int_equal(cipdns_assign_decode(many, 3 * (CIPDNS_MAX_CONFIGS + 1), A),
				 ZG_ERR_TOO_LARGE);
	}
}

static void test_c26_svcparams_rules(void **state)
{
	/* port=53 (key 3), then alpn: keys must increase */
	static const uint8_t port[] = { 0, 3, 0, 2, 0, 53 };
	static const uint8_t desc[] = { 0, 3, 0, 2, 0, 53, 0, 1, 0, 3, 2, 'h', '3' };
	static const uint8_t hint[] = { 0, 4, 0, 4, 1, 2, 3, 4 };
	static const uint8_t nodef[] = { 0, 2, 0, 0 };
	static const uint8_t cut[] = { 0, 3, 0, 9, 0 };

	(void)state;
	assert_int_equal(cipdns_svcparams_check(port, sizeof(port), 0, 1), 0);
	assert_int_equal(cipdns_svcparams_check(desc, sizeof(desc), 1, 1), ZG_ERR_MALFORMED);
	assert_int_equal(cipdns_svcparams_check(hint, sizeof(hint), 1, 1), ZG_ERR_MALFORMED);
	/* alpn / no-default-alpn need an authentication name */
	assert_int_equal(cipdns_svcparams_check(nodef, sizeof(nodef), 0, 1), ZG_ERR_MALFORMED);
	assert_int_equal(cipdns_svcparams_check(nodef, sizeof(nodef), 1, 0), 0);
	/* unencrypted DNS (no no-default-alpn) needs an address */
	assert_int_equal(cipdns_svcparams_check(NULL, 0, 0, 0), ZG_ERR_MALFORMED);
	assert_int_equal(cipdns_svcparams_check(cut, sizeof(cut), 0, 1), ZG_ERR_MALFORMED);
}

static void test_c26_doh_example_roundtrip(void **state)
{
	/* the draft's full-tunnel example: DoH at masque.example.org */
	static const uint8_t sp[] = { 0, 1, 0, 6, 2, 'h', '2', 2, 'h', '3',
				      0, 2, 0, 0, /* no-default-alpn: DoH only */
				      0, 7, 0, 16, '/', 'd', 'n', 's', '-', 'q', 'u', 'e', 'r', 'y',
				      '{', '?', 'd', 'n', 's', '}' };
	uint8_t buf[512], *p = buf;

	(void)state;
	memset(A, 0, sizeof(*A));
	A->n = 1;
	A->cfg[0].nns = 1;
	A->cfg[0].ns[0].priority = 1;
	strcpy(A->cfg[0].ns[0].auth_name, "masque.example.org");
	memcpy(A->cfg[0].ns[0].svcparams, sp, sizeof(sp));
	A->cfg[0].ns[0].svcparams_len = sizeof(sp);
	A->cfg[0].ninternal = 1; /* "" = the root */
	assert_int_equal(cipdns_assign_encode(&p, buf + sizeof(buf), A), 0);
	assert_int_equal(buf[4], (size_t)(p - buf) - 5); /* a one-byte length */
	assert_int_equal(cipdns_assign_decode(buf + 5, (size_t)(p - buf) - 5, B), 0);
	assert_memory_equal(A, B, sizeof(*A));
}

static void test_c26_encode_bufshort_writes_nothing(void **state)
{
	uint8_t buf[256], *p;
	size_t full, i;

	(void)state;
	split_example(A);
	p = buf;
	assert_int_equal(cipdns_assign_encode(&p, buf + sizeof(buf), A), 0);
	full = (size_t)(p - buf);
	for (i = 0; i < full; i++) {
		memset(buf, 0xee, sizeof(buf));
		p = buf;
		assert_int_equal(cipdns_assign_encode(&p, buf + i, A), ZG_ERR_BUFSHORT);
		assert_ptr_equal(p, buf);
		assert_int_equal(buf[0], 0xee);
	}
	p = buf;
	assert_int_equal(cipdns_assign_encode(&p, buf + full, A), 0); /* exact fit */
}

/* C06 + C26: the parser delivers an added extension type, skips the rest. */
static void test_c26_parser_extension_type(void **state)
{
	uint8_t stream[512], vbuf[256], *p = stream;
	struct capsule_parser cp;
	struct capsule cap;
	const uint8_t *q, *end;
	size_t i, n;
	int got = 0, r;

	(void)state;
	split_example(A);
	/* a GREASE capsule (0x29 * N + 0x17), DNS_ASSIGN, another unknown one */
	assert_int_equal(capsule_encode(&p, stream + sizeof(stream), 0x29 * 7 + 0x17,
					(const uint8_t *)"grease", 6),
			 0);
	assert_int_equal(cipdns_assign_encode(&p, stream + sizeof(stream), A), 0);
	assert_int_equal(capsule_encode(&p, stream + sizeof(stream), 0x1ACE79ED,
					(const uint8_t *)"x", 1),
			 0);
	n = (size_t)(p - stream);

	/* whole */
	capsule_parser_init(&cp, vbuf, sizeof(vbuf), CAPSULE_MASK_CONNECT_IP);
	assert_int_equal(capsule_parser_add_type(&cp, CAPSULE_DNS_ASSIGN), 0);
	q = stream;
	end = stream + n;
	while ((r = capsule_parser_feed(&cp, &q, end, &cap)) == 1) {
		assert_true(cap.type == CAPSULE_DNS_ASSIGN);
		assert_int_equal(cipdns_assign_decode(cap.value, cap.len, B), 0);
		assert_memory_equal(A, B, sizeof(*A));
		got++;
	}
	assert_int_equal(r, 0);
	assert_int_equal(got, 1);
	assert_int_equal(cp.n_skipped, 2);
	assert_int_equal(capsule_parser_finish(&cp), 0);

	/* one byte at a time */
	capsule_parser_init(&cp, vbuf, sizeof(vbuf), CAPSULE_MASK_CONNECT_IP);
	assert_int_equal(capsule_parser_add_type(&cp, CAPSULE_DNS_ASSIGN), 0);
	got = 0;
	for (i = 0; i < n; i++) {
		q = stream + i;
		while ((r = capsule_parser_feed(&cp, &q, stream + i + 1, &cap)) == 1) {
			assert_int_equal(cipdns_assign_decode(cap.value, cap.len, B), 0);
			got++;
		}
		assert_int_equal(r, 0);
	}
	assert_int_equal(got, 1);

	/* without add_type the same stream is all skipped (RFC 9297) */
	capsule_parser_init(&cp, vbuf, sizeof(vbuf), CAPSULE_MASK_CONNECT_IP);
	q = stream;
	assert_int_equal(capsule_parser_feed(&cp, &q, end, &cap), 0);
	assert_int_equal(cp.n_skipped, 3);
}

static void test_c26_parser_extension_bounded(void **state)
{
	uint8_t hdr[16], vbuf[32], *p = hdr;
	struct capsule_parser cp;
	struct capsule cap;
	const uint8_t *q;
	int i;

	(void)state;
	capsule_parser_init(&cp, vbuf, sizeof(vbuf), CAPSULE_MASK_CONNECT_IP);
	for (i = 0; i < CAPSULE_EXT_MAX; i++)
		assert_int_equal(capsule_parser_add_type(&cp, CAPSULE_DNS_ASSIGN + (uint64_t)i), 0);
	assert_int_equal(capsule_parser_add_type(&cp, 0x9999), ZG_ERR_LIMIT);
	assert_int_equal(capsule_parser_add_type(&cp, UINT64_MAX), ZG_ERR_RANGE);
	/* a DNS_ASSIGN declaring more than the buffer: refused on its length */
	assert_int_equal(capsule_encode_header(&p, hdr + sizeof(hdr), CAPSULE_DNS_ASSIGN, 33), 0);
	q = hdr;
	assert_int_equal(capsule_parser_feed(&cp, &q, p, &cap), ZG_ERR_TOO_LARGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c26_type_is_draft_06_codepoint),
		cmocka_unit_test(test_c26_encode_matches_draft_layout),
		cmocka_unit_test(test_c26_decode_roundtrip),
		cmocka_unit_test(test_c26_empty_capsule_withdraws),
		cmocka_unit_test(test_c26_root_internal_domain),
		cmocka_unit_test(test_c26_truncated_every_length),
		cmocka_unit_test(test_c26_priority_zero_refused),
		cmocka_unit_test(test_c26_bad_names_refused),
		cmocka_unit_test(test_c26_counts_bounded_before_reading),
		cmocka_unit_test(test_c26_svcparams_rules),
		cmocka_unit_test(test_c26_doh_example_roundtrip),
		cmocka_unit_test(test_c26_encode_bufshort_writes_nothing),
		cmocka_unit_test(test_c26_parser_extension_type),
		cmocka_unit_test(test_c26_parser_extension_bounded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
