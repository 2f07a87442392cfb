/* test_api_json.c — zgate-api's request side without I/O (src/api/api_json.c):
 * which endpoint a path names, the allocation and refresh bodies, the
 * identifier rules, JSON string decoding and the quoting of answers; and
 * its configuration (src/api/api_config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api_config.h"
#include "api/api_json.h"
#include "zg_err.h"

static char err[256];

static int alloc(const char *body, struct api_alloc_req *req)
{
	err[0] = '\0';
	return api_parse_alloc(body, strlen(body), req, err, sizeof(err));
}

static void test_routes(void **state)
{
	struct api_route r;

	(void)state;
	assert_int_equal(api_route_parse("/health", &r), 0);
	assert_int_equal(r.kind, API_R_HEALTH);
	assert_int_equal(api_route_parse("/ready", &r), 0);
	assert_int_equal(r.kind, API_R_READY);
	assert_int_equal(api_route_parse("/metrics?x=1", &r), 0);
	assert_int_equal(r.kind, API_R_METRICS);
	assert_int_equal(api_route_parse("/api/v1/ipam/stats", &r), 0);
	assert_int_equal(r.kind, API_R_STATS);
	assert_int_equal(api_route_parse("/api/v1/ipam/allocations", &r), 0);
	assert_int_equal(r.kind, API_R_ALLOCS);
	assert_int_equal(api_route_parse("/api/v1/ipam/allocations/agent-1", &r), 0);
	assert_int_equal(r.kind, API_R_ALLOC);
	assert_string_equal(r.client_id, "agent-1");
	assert_int_equal(api_route_parse("/api/v1/ipam/allocations/a@b.c:1+x/refresh", &r), 0);
	assert_int_equal(r.kind, API_R_REFRESH);
	assert_string_equal(r.client_id, "a@b.c:1+x");
	/* Near misses are 404s, not another endpoint. */
	const char *none[] = { "/", "", "/health/", "/api/v1/ipam/allocations/", "/api/v1/ipam/stats/",
			       "/api/v1/ipam/allocations/x/refresh/", "/api/v1/ipam/allocations/x/y",
			       "/api/v1/ipam/allocationsx", "/API/v1/ipam/stats", "/api/v2/ipam/stats" };
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		assert_int_equal(api_route_parse(none[i], &r), 0);
		assert_int_equal(r.kind, API_R_NONE);
	}
	/* A bad id where an id belongs is the caller's mistake: 400. */
	assert_int_equal(api_route_parse("/api/v1/ipam/allocations/a b", &r), ZG_ERR_MALFORMED);
	assert_int_equal(api_route_parse("/api/v1/ipam/allocations//refresh", &r), ZG_ERR_MALFORMED);
	assert_int_equal(api_route_parse("/api/v1/ipam/allocations/a%2Fb", &r), ZG_ERR_MALFORMED);
	assert_int_equal(r.kind, API_R_NONE);
}

static void test_ids(void **state)
{
	char long_id[200];

	(void)state;
	assert_true(api_id_valid("agent-1", 7, API_CLIENT_ID_MAX));
	assert_true(api_id_valid("A.Z_0-9@x:y+z", 13, API_CLIENT_ID_MAX));
	assert_false(api_id_valid("", 0, API_CLIENT_ID_MAX));
	assert_false(api_id_valid("a b", 3, API_CLIENT_ID_MAX));
	assert_false(api_id_valid("a/b", 3, API_CLIENT_ID_MAX));
	assert_false(api_id_valid("a\"b", 3, API_CLIENT_ID_MAX));
	assert_false(api_id_valid("a\0b", 3, API_CLIENT_ID_MAX));
	assert_false(api_id_valid("\xc3\xa9", 2, API_CLIENT_ID_MAX));
	memset(long_id, 'a', sizeof(long_id));
	assert_true(api_id_valid(long_id, API_CLIENT_ID_MAX, API_CLIENT_ID_MAX));
	assert_false(api_id_valid(long_id, API_CLIENT_ID_MAX + 1, API_CLIENT_ID_MAX));
	assert_false(api_id_valid(long_id, API_RELAY_ID_MAX + 1, API_RELAY_ID_MAX));
}

static void test_alloc_bodies(void **state)
{
	struct api_alloc_req q;
	char a[INET_ADDRSTRLEN];

	(void)state;
	assert_int_equal(alloc("{\"client_id\":\"agent-1\"}", &q), 0);
	assert_string_equal(q.client_id, "agent-1");
	assert_string_equal(q.relay_id, "");
	assert_false(q.has_requested);
	assert_int_equal(alloc(" \n{ \"relay_id\" : \"r1\", \"client_id\":\"c\",\t"
			       "\"requested_address\": \"10.100.0.7\" } \r\n",
			       &q),
			 0);
	assert_string_equal(q.client_id, "c");
	assert_string_equal(q.relay_id, "r1");
	assert_true(q.has_requested);
	assert_non_null(inet_ntop(AF_INET, &q.requested, a, sizeof(a)));
	assert_string_equal(a, "10.100.0.7");
	assert_int_equal(alloc("{\"client_id\":\"c\",\"requested_address\":null}", &q), 0);
	assert_false(q.has_requested);
	/* Escapes decode before the id rules apply. */
	assert_int_equal(alloc("{\"client_id\":\"ag\\u0065nt\\/1\"}", &q), ZG_ERR_MALFORMED);
	assert_int_equal(alloc("{\"client_id\":\"ag\\u0065nt-1\"}", &q), 0);
	assert_string_equal(q.client_id, "agent-1");
}

static void test_alloc_errors(void **state)
{
	struct api_alloc_req q;
	static const struct {
		const char *body;
		const char *says;
	} bad[] = {
		{ "", "JSON object" },
		{ "[]", "JSON object" },
		{ "{}", "client_id: required" },
		{ "{\"relay_id\":\"r\"}", "client_id: required" },
		{ "{\"client_id\":\"a\",\"client_id\":\"b\"}", "twice" },
		{ "{\"client\":\"a\"}", "unknown key \"client\"" },
		{ "{\"client_id\":1}", "must be a string" },
		{ "{\"client_id\":null}", "must be a string" },
		{ "{\"client_id\":\"a\",\"relay_id\":true}", "must be a string" },
		{ "{\"client_id\":{\"x\":1}}", "must be a string" },
		{ "{\"client_id\":\"a\"} x", "after the object" },
		{ "{\"client_id\":\"a\"}{}", "after the object" },
		{ "{\"client_id\":\"a\",}", "expected a key" },
		{ "{\"client_id\" \"a\"}", "expected ':'" },
		{ "{\"client_id\":\"a\"", "expected ',' or '}'" },
		{ "{\"client_id\":\"a", "not a valid JSON string" },
		{ "{\"client_id\":\"a\\x\"}", "not a valid JSON string" },
		{ "{\"client_id\":\"a\\u00\"}", "not a valid JSON string" },
		{ "{\"client_id\":\"a\\ud800\"}", "not a valid JSON string" },
		{ "{\"client_id\":\"a\\udc00\"}", "not a valid JSON string" },
		{ "{\"client_id\":\"a\\u0000\"}", "not a valid JSON string" },
		{ "{\"client_id\":\"a\tb\"}", "not a valid JSON string" },
		{ "{\"client_id\":\"\xff\"}", "not a valid JSON string" },
		{ "{\"client_id\":\"\"}", "client_id: must be 1 to 128" },
		{ "{\"client_id\":\"a b\"}", "client_id: must be 1 to 128" },
		{ "{\"client_id\":\"a\",\"relay_id\":\"\"}", "relay_id: must be 1 to 64" },
		{ "{\"client_id\":\"a\",\"requested_address\":\"10.1.1\"}", "not an IPv4 address" },
		{ "{\"client_id\":\"a\",\"requested_address\":\"::1\"}", "not an IPv4 address" },
		{ "{\"client_id\":\"a\",\"requested_address\":7}", "must be a string or null" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&q, 0x55, sizeof(q));
		if (alloc(bad[i].body, &q) != ZG_ERR_MALFORMED || strstr(err, bad[i].says) == NULL)
			fail_msg("body %s: error \"%s\", expected \"%s\"", bad[i].body, err,
				 bad[i].says);
		assert_string_equal(q.client_id, ""); /* nothing half-filled */
	}
}

static void test_alloc_limits(void **state)
{
	struct api_alloc_req q;
	char body[API_BODY_MAX + 64];
	int n;

	(void)state;
	/* 128 is the longest client id; 129 is refused as too long. */
	n = snprintf(body, sizeof(body), "{\"client_id\":\"%0128d\"}", 0);
	assert_int_equal(api_parse_alloc(body, (size_t)n, &q, err, sizeof(err)), 0);
	assert_int_equal(strlen(q.client_id), 128);
	n = snprintf(body, sizeof(body), "{\"client_id\":\"%0129d\"}", 0);
	assert_int_equal(api_parse_alloc(body, (size_t)n, &q, err, sizeof(err)), ZG_ERR_MALFORMED);
	assert_non_null(strstr(err, "longer than 128"));
	/* A body over API_BODY_MAX: 413, whatever it holds. */
	memset(body, ' ', sizeof(body));
	memcpy(body, "{\"client_id\":\"a\"}", 17);
	assert_int_equal(api_parse_alloc(body, API_BODY_MAX, &q, err, sizeof(err)), 0);
	assert_int_equal(api_parse_alloc(body, API_BODY_MAX + 1, &q, err, sizeof(err)),
			 ZG_ERR_TOO_LARGE);
	/* A length, not a NUL, ends the body. */
	assert_int_equal(api_parse_alloc("{\"client_id\":\"a\"}garbage", 17, &q, err, sizeof(err)), 0);
}

static void test_refresh_bodies(void **state)
{
	char relay[API_RELAY_ID_MAX + 1];

	(void)state;
	assert_int_equal(api_parse_refresh("", 0, relay, err, sizeof(err)), 0);
	assert_string_equal(relay, "");
	assert_int_equal(api_parse_refresh(" \n", 2, relay, err, sizeof(err)), 0);
	assert_int_equal(api_parse_refresh("{}", 2, relay, err, sizeof(err)), 0);
	assert_string_equal(relay, "");
	assert_int_equal(api_parse_refresh("{\"relay_id\":\"r2\"}", 17, relay, err, sizeof(err)), 0);
	assert_string_equal(relay, "r2");
	assert_int_equal(api_parse_refresh("{\"client_id\":\"x\"}", 17, relay, err, sizeof(err)),
			 ZG_ERR_MALFORMED);
	assert_string_equal(relay, "");
	assert_int_equal(api_parse_refresh("{\"relay_id\":\"r 2\"}", 18, relay, err, sizeof(err)),
			 ZG_ERR_MALFORMED);
	assert_string_equal(relay, "");
}

static void test_policy_routes(void **state)
{
	struct api_route r;

	(void)state;
	assert_int_equal(api_route_parse("/api/v1/policies", &r), 0);
	assert_int_equal(r.kind, API_R_POLICIES);
	assert_int_equal(api_route_parse("/api/v1/policies?limit=2&before=9", &r), 0);
	assert_int_equal(r.kind, API_R_POLICIES);
	assert_int_equal(api_route_parse("/api/v1/policies/validate", &r), 0);
	assert_int_equal(r.kind, API_R_POLICY_VALIDATE);
	assert_int_equal(api_route_parse("/api/v1/policies/42", &r), 0);
	assert_int_equal(r.kind, API_R_POLICY_ONE);
	assert_true(r.policy_id == 42);
	assert_int_equal(api_route_parse("/api/v1/policies/999999999999999999/activate", &r), 0);
	assert_int_equal(r.kind, API_R_POLICY_ACTIVATE);
	assert_true(r.policy_id == 999999999999999999LL);
	assert_int_equal(api_route_parse("/api/v1/policy", &r), 0);
	assert_int_equal(r.kind, API_R_POLICY_ACTIVE);
	assert_int_equal(api_route_parse("/api/v1/policy/activations?limit=3", &r), 0);
	assert_int_equal(r.kind, API_R_POLICY_ACTIVATIONS);
	const char *none[] = { "/api/v1/policies/", "/api/v1/policy/", "/api/v1/policiesx",
			       "/api/v1/policies/1/activate/", "/api/v1/policies/1/x",
			       "/api/v1/policy/activation", "/api/v1/policies/validate/x" };
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		assert_int_equal(api_route_parse(none[i], &r), 0);
		assert_int_equal(r.kind, API_R_NONE);
	}
	const char *bad[] = { "/api/v1/policies/0", "/api/v1/policies/007", "/api/v1/policies/-1",
			      "/api/v1/policies/1a", "/api/v1/policies/1000000000000000000",
			      "/api/v1/policies/x/activate", "/api/v1/policies//activate" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(api_route_parse(bad[i], &r), ZG_ERR_MALFORMED);
		assert_int_equal(r.kind, API_R_NONE);
		assert_non_null(strstr(r.why, "policy id"));
	}
	assert_int_equal(api_route_parse("/api/v1/ipam/allocations/a b", &r), ZG_ERR_MALFORMED);
	assert_non_null(strstr(r.why, "client id"));
}

static int pol(const char *body, struct api_policy_body *b)
{
	err[0] = '\0';
	return api_parse_policy(body, strlen(body), b, err, sizeof(err));
}

static void test_policy_bodies(void **state)
{
	struct api_policy_body b;

	(void)state;
	/* every escape, a surrogate pair, raw UTF-8 kept as it is */
	assert_int_equal(pol("{\"document\":\"a\\n\\t\\r\\\"\\\\\\/\\b\\f\\u00e9\\u20ac"
			     "\\ud83d\\ude00\xc3\xa9 z\",\"comment\":\"why\"}",
			     &b),
			 0);
	assert_int_equal(b.len, 22);
	assert_memory_equal(b.document,
			    "a\n\t\r\"\\/\b\f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9 z", 23);
	assert_string_equal(b.comment, "why");
	api_policy_body_free(&b);
	assert_null(b.document);
	assert_int_equal(pol(" {\"comment\":null, \"document\":\"\"} ", &b), 0);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.document, "");
	assert_string_equal(b.comment, "");
	api_policy_body_free(&b);
	static const struct {
		const char *body;
		const char *says;
	} bad[] = {
		{ "{}", "document: required" },
		{ "{\"comment\":\"x\"}", "document: required" },
		{ "{\"document\":null}", "document: must be a string" },
		{ "{\"document\":1}", "document: must be a string" },
		{ "{\"document\":\"a\\u0000b\"}", "NUL character" },
		{ "{\"document\":\"a\",\"comment\":\"\\u0000\"}", "comment: not a valid JSON string" },
		{ "{\"document\":\"a\\ud800x\"}", "document: not a valid JSON string" },
		{ "{\"document\":\"a\nb\"}", "document: not a valid JSON string" },
		{ "{\"document\":\"a\",\"document\":\"b\"}", "twice" },
		{ "{\"document\":\"a\",\"x\":1}", "unknown key" },
		{ "{\"document\":\"a\"", "expected ',' or '}'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pol(bad[i].body, &b), ZG_ERR_MALFORMED);
		assert_null(b.document);
		if (strstr(err, bad[i].says) == NULL)
			fail_msg("%s: expected '%s', got '%s'", bad[i].body, bad[i].says, err);
	}
}

static void test_policy_limits(void **state)
{
	struct api_policy_body b;
	size_t max = API_POLICY_DOC_MAX, n;
	char *body = malloc(API_POLICY_BODY_MAX + 2), *p;

	(void)state;
	assert_non_null(body);
	/* a 1 MiB document written with the longest escape, \u0041 for "A",
	 * fits the body limit and decodes to exactly the document limit */
	p = body + sprintf(body, "{\"comment\":\"%0200d\",\"document\":\"", 0);
	for (size_t i = 0; i < max; i++)
		p += sprintf(p, "\\u0041");
	p += sprintf(p, "\"}");
	n = (size_t)(p - body);
	assert_true(n <= API_POLICY_BODY_MAX);
	assert_int_equal(api_parse_policy(body, n, &b, err, sizeof(err)), 0);
	assert_int_equal(b.len, max);
	assert_int_equal(b.document[0], 'A');
	assert_int_equal(b.document[max - 1], 'A');
	assert_int_equal(b.document[max], '\0');
	api_policy_body_free(&b);
	/* one byte more: the document is too large (413), said so */
	p = body + sprintf(body, "{\"document\":\"");
	memset(p, 'a', max + 1);
	p += max + 1;
	p += sprintf(p, "\"}");
	assert_int_equal(api_parse_policy(body, (size_t)(p - body), &b, err, sizeof(err)),
			 ZG_ERR_TOO_LARGE);
	assert_non_null(strstr(err, "document: longer than 1048576 bytes"));
	assert_null(b.document);
	/* a body over API_POLICY_BODY_MAX is refused before it is parsed */
	assert_int_equal(api_parse_policy(body, API_POLICY_BODY_MAX + 1, &b, err, sizeof(err)),
			 ZG_ERR_TOO_LARGE);
	/* a comment: 200 bytes, not 201 */
	sprintf(body, "{\"document\":\"a\",\"comment\":\"%0200d\"}", 0);
	assert_int_equal(pol(body, &b), 0);
	api_policy_body_free(&b);
	sprintf(body, "{\"document\":\"a\",\"comment\":\"%0201d\"}", 0);
	assert_int_equal(pol(body, &b), ZG_ERR_MALFORMED);
	assert_non_null(strstr(err, "comment: longer than 200 bytes"));
	/* other endpoints keep API_BODY_MAX */
	memset(body, ' ', API_BODY_MAX + 1);
	memcpy(body, "{\"client_id\":\"a\"}", 17);
	{
		struct api_alloc_req q;

		assert_int_equal(api_parse_alloc(body, API_BODY_MAX + 1, &q, err, sizeof(err)),
				 ZG_ERR_TOO_LARGE);
	}
	free(body);
}

static void test_quote_n(void **state)
{
	char out[256];
	struct api_policy_body b;
	char body[600];
	const char in[] = "a\"b\\c\n\r\t\b\f\x01\x7f/\xc3\xa9\xf0\x9f\x98\x80\xff\xc3 \0z";

	(void)state;
	size_t w = api_json_quote_n(out, sizeof(out), in, sizeof(in) - 1);

	assert_int_equal(w, strlen(out));
	assert_string_equal(out, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u007f/\xc3\xa9\xf0\x9f\x98\x80"
				 "\\u00ff\\u00c3 \\u0000z\"");
	/* snprintf-style: the length needed, never half an escape */
	assert_int_equal(api_json_quote_n(NULL, 0, "a\n", 2), 5);
	assert_int_equal(api_json_quote_n(out, 3, "a\n", 2), 5);
	assert_string_equal(out, "\"a");
	/* the worst case: 6 bytes a byte, plus the quotes */
	assert_int_equal(api_json_quote_n(NULL, 0, "\x01\x02", 2), 14);
	/* round trip: any valid UTF-8 without NUL comes back byte for byte */
	const char *docs[] = { "version: 1\r\nclients:\r\n  \"q\\\\x\":\t{}\r\n",
			       "# \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x92\n\x7f\x1b[0m", "" };
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		size_t q = api_json_quote_n(out, sizeof(out), docs[i], strlen(docs[i]));
		int n = snprintf(body, sizeof(body), "{\"document\":%s}", out);

		assert_true(q < sizeof(out) && n > 0 && (size_t)n < sizeof(body));
		assert_int_equal(api_parse_policy(body, (size_t)n, &b, err, sizeof(err)), 0);
		assert_int_equal(b.len, strlen(docs[i]));
		assert_memory_equal(b.document, docs[i], b.len);
		api_policy_body_free(&b);
	}
}

static void test_activate_body(void **state)
{
	int check;
	int64_t e;

	(void)state;
	assert_int_equal(api_parse_activate("", 0, &check, &e, err, sizeof(err)), 0);
	assert_false(check);
	assert_int_equal(api_parse_activate(" {} ", 4, &check, &e, err, sizeof(err)), 0);
	assert_false(check);
	assert_int_equal(api_parse_activate("{\"expected_active\":17}", 22, &check, &e, err,
					    sizeof(err)),
			 0);
	assert_true(check);
	assert_true(e == 17);
	assert_int_equal(api_parse_activate("{\"expected_active\":null}", 24, &check, &e, err,
					    sizeof(err)),
			 0);
	assert_true(check);
	assert_true(e == 0);
	const char *bad[] = { "{\"expected_active\":0}", "{\"expected_active\":-1}",
			      "{\"expected_active\":1.5}", "{\"expected_active\":1e3}",
			      "{\"expected_active\":\"3\"}", "{\"expected_active\":true}",
			      "{\"expected_active\":1234567890123456789}", "{\"x\":1}", "[]" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(api_parse_activate(bad[i], strlen(bad[i]), &check, &e, err,
						    sizeof(err)),
				 ZG_ERR_MALFORMED);
	assert_int_equal(api_parse_activate("{\"expected_active\":1.5}", 23, &check, &e, err,
					    sizeof(err)),
			 ZG_ERR_MALFORMED);
	assert_non_null(strstr(err, "expected_active: must be a policy id"));
}

static void test_etag(void **state)
{
	const char *t = "\"3-0123456789abcdef\"";

	(void)state;
	assert_false(api_etag_match(NULL, t));
	assert_false(api_etag_match("", t));
	assert_true(api_etag_match("\"3-0123456789abcdef\"", t));
	assert_true(api_etag_match("W/\"3-0123456789abcdef\"", t));
	assert_true(api_etag_match("\"x\", \"3-0123456789abcdef\"", t));
	assert_true(api_etag_match("\"x\",\"3-0123456789abcdef\" ", t));
	assert_true(api_etag_match("*", t));
	assert_false(api_etag_match("\"3-0123456789abcde\"", t));
	assert_false(api_etag_match("3-0123456789abcdef", t));
	assert_false(api_etag_match("\"2-0123456789abcdef\"", t));
	assert_false(api_etag_match("\"3-0123456789abcdef", t));
	/* a quote closes a tag: "x," then an unquoted rest that is not it */
	assert_false(api_etag_match("\"x,\"3-0123456789abcdef\"", t));
}

static void test_policy_error_pos(void **state)
{
	unsigned long l = 0, c = 0;

	(void)state;
	assert_int_equal(api_policy_error_pos("policy:12:7: clients.a.rules[0].action: bad", &l, &c),
			 0);
	assert_int_equal(l, 12);
	assert_int_equal(c, 7);
	assert_int_equal(api_policy_error_pos("policy: version: required", &l, &c), -1);
	assert_int_equal(api_policy_error_pos("policy:3: x", &l, &c), -1);
	assert_int_equal(api_policy_error_pos("policy:3:x: x", &l, &c), -1);
	assert_int_equal(api_policy_error_pos("nothing", &l, &c), -1);
}

static void test_quote(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(api_json_quote(out, sizeof(out), "a\"b\\c\n\x01"), 17);
	assert_string_equal(out, "\"a\\\"b\\\\c\\n\\u0001\"");
	/* a byte of no valid UTF-8: still valid JSON */
	assert_int_equal(api_json_quote(out, sizeof(out), "r\xff"), 9);
	assert_string_equal(out, "\"r\\u00ff\"");
	/* Cut to fit, never inside an escape. */
	assert_int_equal(api_json_quote(out, 5, "ab\"cd"), 8);
	assert_string_equal(out, "\"ab");
	assert_int_equal(api_json_quote(NULL, 0, "abc"), 5);
}

static void test_content_type(void **state)
{
	(void)state;
	assert_true(api_content_type_json("application/json"));
	assert_true(api_content_type_json("Application/JSON"));
	assert_true(api_content_type_json(" application/json ; charset=utf-8"));
	assert_true(api_content_type_json("application/json;charset=UTF-8"));
	assert_false(api_content_type_json(NULL));
	assert_false(api_content_type_json(""));
	assert_false(api_content_type_json("text/plain"));
	assert_false(api_content_type_json("application/x-www-form-urlencoded"));
	assert_false(api_content_type_json("multipart/form-data; boundary=x"));
	assert_false(api_content_type_json("application/jsonp"));
	assert_false(api_content_type_json("application/json-patch+json"));
	assert_false(api_content_type_json("text/plain; x=application/json"));
}

static int cfg_parse(struct api_config *c, const char *const *args, int n, enum api_action *pa)
{
	char *argv[16];

	argv[0] = "zgate-api";
	for (int i = 0; i < n; i++)
		argv[i + 1] = (char *)args[i];
	err[0] = '\0';
	return api_config_parse(c, n + 1, argv, NULL, pa, err, sizeof(err));
}

static void test_config(void **state)
{
	struct api_config c;
	enum api_action a;
	const char *req[] = { "--cert", "c", "--key", "k", "--ca", "a", "--database", "dbname=x" };
	const char *mig[] = { "migrate", "--cert", "c", "--key", "k", "--ca", "a", "--database", "d",
			      "--pool", "10.8.0.0/16", "--lease-ttl", "24h" };
	const char *bad_pool[] = { "--cert", "c", "--key", "k", "--ca", "a", "--database", "d",
				   "--pool", "10.8.0.1/16" };
	const char *short_pool[] = { "--cert", "c", "--key", "k", "--ca", "a", "--database", "d",
				     "--pool", "10.0.0.0/8" };
	const char *misplaced[] = { "--cert", "c", "migrate" };
	const char *yaml = "listen: \"[::]:9443\"\npool: 10.1.2.0/24\nthreads: 2\n";

	(void)state;
	assert_int_equal(cfg_parse(&c, req, 8, &a), 0);
	assert_int_equal(a, API_RUN);
	assert_string_equal(c.pool, "10.100.0.0/24");
	assert_int_equal(c.pool_first, 0x0a640002);
	assert_int_equal(c.pool_last, 0x0a6400fe);
	assert_int_equal(c.lease_ttl_ms, 7u * 24 * 3600 * 1000);
	assert_int_equal(cfg_parse(&c, mig, 13, &a), 0);
	assert_int_equal(a, API_MIGRATE);
	assert_int_equal(c.pool_last - c.pool_first + 1, 65533);
	assert_int_equal(c.lease_ttl_ms, 24u * 3600 * 1000);
	assert_int_equal(cfg_parse(&c, bad_pool, 10, &a), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "bits set"));
	assert_int_equal(cfg_parse(&c, short_pool, 10, &a), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "/16 to /30"));
	assert_int_equal(cfg_parse(&c, req, 2, &a), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "key: required"));
	assert_int_equal(cfg_parse(&c, misplaced, 3, &a), ZG_ERR_CONFIG);
	api_config_defaults(&c);
	assert_int_equal(api_config_load_buf(&c, "t.yaml", yaml, strlen(yaml), err, sizeof(err)), 0);
	assert_string_equal(c.listen, "[::]:9443");
	assert_int_equal(c.threads, 2);
	assert_int_equal(c.max_conns_per_address, 256);
	assert_int_equal(c.max_leases_per_relay, 0);
	assert_int_equal(c.head_timeout_ms, 10000);
	assert_int_equal(c.sweep_interval_ms, 60000);
	assert_int_equal(api_config_load_buf(&c, "t.yaml", "threads: 0\n", 11, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "t.yaml:1:1: threads"));
	assert_int_equal(api_config_load_buf(&c, "t.yaml", "nope: 1\n", 8, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	/* The shared walker (yamlcfg_opts_mapping()) lists the keys. */
	assert_non_null(strstr(err, "t.yaml:1:1: nope: unknown key (expected one of: listen, cert, "
				    "key, ca, crl, database, admin_token_file, pool, lease_ttl, "
				    "sweep_interval, threads, "
				    "db_timeout, max_leases_per_relay, max_connections_per_address, "
				    "head_timeout, "
				    "log_level, log_format)"));
	assert_int_equal(api_config_load_buf(&c, "t.yaml", "pool: [a]\n", 10, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "t.yaml:1:1: pool: expected a single value, found a list"));
	assert_int_equal(api_config_load_buf(&c, "t.yaml", "lease_ttl: 59s\n", 14, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "lease_ttl: \"59s\" is not a duration from 60000ms to "
				    "4000000000ms"));
	assert_int_equal(api_config_load_buf(&c, "t.yaml", "log_format: xml\n", 16, err,
					     sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "log_format: \"xml\" is not a log format (text or json)"));
	/* a key given twice: YAML keeps the last; the loader refuses it */
	assert_int_equal(api_config_load_buf(&c, "t.yaml", "threads: 2\nthreads: 3\n", 22, err,
					     sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:2:1: threads: given twice (first at line 1)");
}

/* ZGATE_* variables: over the defaults, under the flags; a stray one is an
 * error naming it. */
static void test_config_env(void **state)
{
	struct api_config c;
	enum api_action a;
	char *argv[] = { "zgate-api", "--cert", "c", "--key", "k", "--ca", "a", "--threads", "8" };
	char *env[] = { "HOME=/", "ZGATE_DATABASE=dbname=z", "ZGATE_THREADS=2",
			"ZGATE_DB_TIMEOUT=250ms", "ZGATE_CONFIG=", NULL };
	char *stray[] = { "ZGATE_DATABASE=d", "ZGATE_THREAD=2", NULL };
	char *bad[] = { "ZGATE_DATABASE=d", "ZGATE_DB_TIMEOUT=5", NULL };

	(void)state;
	assert_int_equal(api_config_parse(&c, 9, argv, env, &a, err, sizeof(err)), 0);
	assert_string_equal(c.database, "dbname=z");
	assert_int_equal(c.threads, 8);
	assert_int_equal(c.db_timeout_ms, 250);
	assert_int_equal(api_config_parse(&c, 7, argv, env, &a, err, sizeof(err)), 0);
	assert_int_equal(c.threads, 2);
	assert_int_equal(api_config_parse(&c, 7, argv, stray, &a, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "environment: ZGATE_THREAD names no option (see --help)");
	assert_int_equal(api_config_parse(&c, 7, argv, bad, &a, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ZGATE_DB_TIMEOUT: \"5\" is not a duration from 100ms"));
}

/* examples/zgate-api.yaml loads and validates with zgate-api's parser. */
static void test_example_config(void **state)
{
	struct api_config c;
	enum api_action a;
	const char *args[] = { "--config", "examples/zgate-api.yaml" };

	(void)state;
	if (cfg_parse(&c, args, 2, &a) != 0)
		fail_msg("examples/zgate-api.yaml: %s", err);
	assert_string_equal(c.listen, "0.0.0.0:8443");
	assert_string_equal(c.ca, "/etc/zgate/tls/ca.crt");
	assert_string_equal(c.pool, "10.100.0.0/24");
	assert_int_equal(c.lease_ttl_ms, 168u * 3600 * 1000);
	assert_int_equal(c.threads, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_alloc_bodies),
		cmocka_unit_test(test_alloc_errors),
		cmocka_unit_test(test_alloc_limits),
		cmocka_unit_test(test_refresh_bodies),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_policy_routes),
		cmocka_unit_test(test_policy_bodies),
		cmocka_unit_test(test_policy_limits),
		cmocka_unit_test(test_quote_n),
		cmocka_unit_test(test_activate_body),
		cmocka_unit_test(test_etag),
		cmocka_unit_test(test_policy_error_pos),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_env),
		cmocka_unit_test(test_example_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
