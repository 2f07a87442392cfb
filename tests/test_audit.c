/* Unit tests for src/relay/audit: exact JSON lines, escaping of hostile
 * strings, and deny-flood summaries with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay/audit.h"
#include "zg_err.h"

struct fx {
	char *buf;
	size_t len;
	FILE *out;
	uint64_t now;
	struct audit *a;
};

static uint64_t fake_clock(void *ctx)
{
	return ((struct fx *)ctx)->now;
}

static int setup(void **state)
{
	static struct fx fx;
	memset(&fx, 0, sizeof(fx));
	fx.out = open_memstream(&fx.buf, &fx.len);
	fx.now = UINT64_C(1795575001123); /* 2026-11-25T02:50:01.123Z */
	if (!fx.out || audit_new(fx.out, fake_clock, &fx, 3, &fx.a) != 0)
		return -1;
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	audit_free(fx->a);
	fclose(fx->out);
	free(fx->buf);
	return 0;
}

/* Everything written since the last call. */
static const char *take(struct fx *fx)
{
	static char copy[8192];
	fflush(fx->out);
	snprintf(copy, sizeof(copy), "%s", fx->buf ? fx->buf : "");
	/* clear it all: a shorter next line must not show the tail of this one */
	if (fx->buf)
		memset(fx->buf, 0, fx->len);
	rewind(fx->out);
	fflush(fx->out);
	return copy;
}

static void test_session_lines_exact(void **state)
{
	struct fx *fx = *state;
	audit_session_open(fx->a, "agent-1", "10.100.0.7", "198.51.100.20:51000", "7a00f98b",
			   "e961c2ad528b37057e0372a8b94d05cf49336cbf2702b4cbb243ced72295f484");
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"session_open\",\"client\":\"agent-1\","
		"\"vip\":\"10.100.0.7\",\"peer\":\"198.51.100.20:51000\",\"cert_serial\":\"7a00f98b\","
		"\"cert_sha256\":\"e961c2ad528b37057e0372a8b94d05cf49336cbf2702b4cbb243ced72295f484\"}\n");
	fx->now += 61000;
	audit_session_close(fx->a, "agent-1", "10.100.0.7", "198.51.100.20:51000", 61000, 1234, 56789, "client-closed");
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:51:02.123Z\",\"event\":\"session_close\",\"client\":\"agent-1\","
		"\"vip\":\"10.100.0.7\",\"peer\":\"198.51.100.20:51000\",\"duration_ms\":61000,"
		"\"bytes_up\":1234,\"bytes_down\":56789,\"reason\":\"client-closed\"}\n");
}

static void test_flow_lines_exact(void **state)
{
	struct fx *fx = *state;
	struct audit_flow f = { .client = "agent-1", .proto = "tcp", .src = "10.100.0.7", .sport = 40000,
				.dst = "203.0.113.5", .dport = 443, .rule = "allow-saas" };
	audit_flow_allow(fx->a, &f);
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"flow_allow\",\"client\":\"agent-1\",\"proto\":\"tcp\","
		"\"src\":\"10.100.0.7\",\"sport\":40000,\"dst\":\"203.0.113.5\",\"dport\":443,\"rule\":\"allow-saas\"}\n");
	f.reason = "idle";
	f.bytes_up = 10;
	f.bytes_down = 20;
	f.duration_ms = 30;
	audit_flow_close(fx->a, &f);
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"flow_close\",\"client\":\"agent-1\",\"proto\":\"tcp\","
		"\"src\":\"10.100.0.7\",\"sport\":40000,\"dst\":\"203.0.113.5\",\"dport\":443,\"rule\":\"allow-saas\","
		"\"reason\":\"idle\",\"bytes_up\":10,\"bytes_down\":20,\"duration_ms\":30}\n");
}

static void test_other_events_exact(void **state)
{
	struct fx *fx = *state;
	audit_policy_reload(fx->a, 0, "/etc/zgate/policy.yaml", "policy.yaml:3:1: bogus: unknown key");
	audit_limit_hit(fx->a, "flows_per_client", "agent-2");
	audit_cert_rejected(fx->a, "certificate expired", "192.0.2.9:4000");
	audit_handshake_failed(fx->a, "alpn", "192.0.2.9:4001");
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"policy_reload\",\"result\":\"error\","
		"\"file\":\"/etc/zgate/policy.yaml\",\"message\":\"policy.yaml:3:1: bogus: unknown key\"}\n"
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"limit_hit\",\"limit\":\"flows_per_client\",\"client\":\"agent-2\"}\n"
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"cert_rejected\",\"reason\":\"certificate expired\","
		"\"peer\":\"192.0.2.9:4000\"}\n"
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"handshake_failed\",\"reason\":\"alpn\","
		"\"peer\":\"192.0.2.9:4001\"}\n");
	assert_int_equal(audit_lines(fx->a), 4);
	audit_tls_reload(fx->a, 0, "file", "key /etc/zgate/tls/tls.key does not match certificate");
	audit_tls_reload(fx->a, 1, "sighup", NULL);
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"tls_reload\",\"result\":\"error\","
		"\"trigger\":\"file\",\"reason\":\"key /etc/zgate/tls/tls.key does not match certificate\"}\n"
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"tls_reload\",\"result\":\"ok\","
		"\"trigger\":\"sighup\"}\n");
}

/* 18.3: the admin event names the action, the client and the caller. */
static void test_admin_event_exact(void **state)
{
	struct fx *fx = *state;
	audit_admin(fx->a, "close_session", "agent-1", "127.0.0.1:50000", 200);
	audit_admin(fx->a, "list_sessions", NULL, "[::1]:50001", 200);
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"admin\",\"action\":\"close_session\","
		"\"client\":\"agent-1\",\"caller\":\"127.0.0.1:50000\",\"status\":200}\n"
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"admin\",\"action\":\"list_sessions\","
		"\"caller\":\"[::1]:50001\",\"status\":200}\n");
}

static void test_hostile_strings_escaped(void **state)
{
	struct fx *fx = *state;
	audit_session_open(fx->a, "evil\",\"event\":\"x\\\n\x01\x7f", "10.0.0.1", "p", NULL, "");
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"session_open\","
		"\"client\":\"evil\\\",\\\"event\\\":\\\"x\\\\\\u000a\\u0001\\u007f\",\"vip\":\"10.0.0.1\",\"peer\":\"p\"}\n");
}

/* 16.8a: JSON is UTF-8: bytes that are not become U+FFFD, well-formed
 * characters stay, U+2028 (a line break to JavaScript) is escaped. */
static void test_non_utf8_strings_escaped(void **state)
{
	struct fx *fx = *state;
	audit_session_open(fx->a, "a\xff\xc0\xaf" "b\xc3\xa9\xe2\x80\xa8", "10.0.0.1", "p", NULL, NULL);
	assert_string_equal(take(fx),
		"{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"session_open\","
		"\"client\":\"a\\ufffd\\ufffd\\ufffdb\xc3\xa9\\u2028\",\"vip\":\"10.0.0.1\",\"peer\":\"p\"}\n");
}

static void test_overlong_line_stays_valid_json(void **state)
{
	struct fx *fx = *state;
	static char big[5000];
	const char *out;
	memset(big, 'x', sizeof(big) - 1);
	audit_cert_rejected(fx->a, big, "peer-after");
	out = take(fx);
	assert_true(strlen(out) < 2100);
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_int_equal(out[strlen(out) - 2], '}');
	assert_non_null(strstr(out, "\"event\":\"cert_rejected\""));
	/* the over-long field is dropped whole, later fields still fit */
	assert_null(strstr(out, "xxxx"));
	assert_non_null(strstr(out, "\"peer\":\"peer-after\""));
}

static void test_deny_flood_summarised(void **state)
{
	struct fx *fx = *state;
	struct audit_flow f = { .client = "agent-1", .proto = "udp", .src = "10.100.0.7", .sport = 1,
				.dst = "10.0.0.1", .dport = 53, .rule = "block-internal", .reason = "policy" };
	struct audit_flow g = f;
	const char *out;
	int lines = 0;

	g.client = "agent-2";
	for (int i = 0; i < 100; i++)
		audit_flow_deny(fx->a, &f); /* 3 written, 97 suppressed */
	audit_flow_deny(fx->a, &g);         /* another client is not affected */
	out = take(fx);
	for (const char *p = out; (p = strstr(p, "\"event\":\"flow_deny\"")); p++)
		lines++;
	assert_int_equal(lines, 4);
	assert_int_equal(audit_suppressed(fx->a), 97);
	assert_null(strstr(out, "suppressed"));
	/* the window ends: the next deny first reports the count */
	fx->now += 1500;
	audit_flow_deny(fx->a, &f);
	out = take(fx);
	assert_non_null(strstr(out,
		"{\"ts\":\"2026-11-25T02:50:02.623Z\",\"event\":\"flow_deny_suppressed\",\"client\":\"agent-1\","
		"\"count\":97,\"window_ms\":1500}\n"));
	assert_non_null(strstr(out, "\"event\":\"flow_deny\""));
	/* a flood with no later deny is reported by a flush */
	for (int i = 0; i < 10; i++)
		audit_flow_deny(fx->a, &f);
	take(fx);
	audit_flush(fx->a, 0); /* window not over: nothing yet */
	assert_string_equal(take(fx), "");
	fx->now += 1000;
	audit_flush(fx->a, 0);
	assert_non_null(strstr(take(fx), "\"event\":\"flow_deny_suppressed\",\"client\":\"agent-1\",\"count\":8,"));
}

/* Issue 16.7: one client's deny flood uses up its own window only; the
 * global window caps all clients together, and what it holds back shows
 * in each client's summary. */
static void test_i16_7_deny_windows_per_client_under_global_cap(void **state)
{
	struct fx *fx = *state;
	struct audit_flow f = { .client = "flooder", .proto = "tcp", .src = "10.100.0.7", .sport = 1,
				.dst = "10.0.0.1", .dport = 22, .reason = "policy" };
	const char *out;
	char id[32];
	int lines = 0, i;

	audit_set_deny_global(fx->a, 8);
	for (i = 0; i < 30000; i++)
		audit_flow_deny(fx->a, &f); /* 3 lines: its own window */
	f.client = "agent-2";
	audit_flow_deny(fx->a, &f);     /* still has its own lines */
	audit_flow_deny(fx->a, &f);
	for (i = 0; i < 10; i++) {      /* 3 more reach the global cap of 8 */
		snprintf(id, sizeof(id), "agent-%d", 10 + i);
		f.client = id;
		audit_flow_deny(fx->a, &f);
	}
	out = take(fx);
	for (const char *p = out; (p = strstr(p, "\"event\":\"flow_deny\"")); p++)
		lines++;
	assert_int_equal(lines, 8);
	assert_non_null(strstr(out, "\"client\":\"agent-2\""));
	assert_int_equal(audit_suppressed(fx->a), 29997 + 7);
	fx->now += 1000; /* a new window for everyone */
	audit_flow_deny(fx->a, &f);     /* agent-19: its summary, then the line */
	out = take(fx);
	assert_non_null(strstr(out, "\"client\":\"agent-19\",\"count\":1,"));
	assert_non_null(strstr(out, "\"event\":\"flow_deny\""));
	audit_flush(fx->a, 1);
	assert_non_null(strstr(take(fx), "\"client\":\"flooder\",\"count\":29997,"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_i16_7_deny_windows_per_client_under_global_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_lines_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_lines_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_events_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_event_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_strings_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_utf8_strings_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlong_line_stays_valid_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deny_flood_summarised, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
