/* Unit tests for src/relay/audit: exact JSON lines, escaping of hostile
 * strings, deny-flood summaries with a fake clock, the bounded output
 * buffer (issue 17.6), session ids, relay_start/stop, the config keys and
 * stdout that never blocks. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay/audit.h"
#include "relay/config.h"
#include "zg_err.h"

struct fx {
	char *buf;
	size_t len;
	FILE *out;
	uint64_t now;
	struct audit *a;
	int refuse;     /* the writer takes nothing (a full pipe) */
	size_t budget;  /* not 0: the writer takes this many bytes more, then nothing */
	size_t chunk;   /* 0: the writer takes everything; else at most this */
	unsigned wakes; /* wake callbacks seen */
};

static uint64_t fake_clock(void *ctx)
{
	return ((struct fx *)ctx)->now;
}

static ssize_t mem_write(void *ctx, const void *buf, size_t len)
{
	struct fx *fx = ctx;

	if (fx->refuse)
		return 0;
	if (fx->chunk != 0 && len > fx->chunk)
		len = fx->chunk;
	if (fx->budget != 0) {
		if (fx->budget == 1)
			return 0;
		if (len > fx->budget - 1)
			len = fx->budget - 1;
		fx->budget -= len;
	}
	if (fwrite(buf, 1, len, fx->out) != len)
		return -1;
	fflush(fx->out);
	return (ssize_t)len;
}

static void fx_wake(void *ctx)
{
	((struct fx *)ctx)->wakes++;
}

static int fx_open(struct fx *fx, size_t buffer_bytes, int with_wake)
{
	struct audit_config ac;

	memset(fx, 0, sizeof(*fx));
	fx->out = open_memstream(&fx->buf, &fx->len);
	fx->now = UINT64_C(1795575001123); /* 2026-11-25T02:50:01.123Z */
	memset(&ac, 0, sizeof(ac));
	ac.write = mem_write;
	ac.write_ctx = fx;
	ac.wake = with_wake ? fx_wake : NULL;
	ac.wake_ctx = fx;
	ac.clock = fake_clock;
	ac.clock_ctx = fx;
	ac.deny_per_s = 3;
	ac.buffer_bytes = buffer_bytes;
	if (!fx->out || audit_new(&ac, &fx->a) != 0)
		return -1;
	return 0;
}

static int setup(void **state)
{
	static struct fx fx;

	if (fx_open(&fx, 0, 0) != 0)
		return -1;
	*state = &fx;
	return 0;
}

/* A small buffer (the minimum) and a wake callback, as the relay has. */
static int setup_small(void **state)
{
	static struct fx fx;

	if (fx_open(&fx, AUDIT_BUFFER_MIN, 1) != 0)
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
	audit_session_open(fx->a, 0, "agent-1", "10.100.0.7", "198.51.100.20:51000", "7a00f98b",
			   "e961c2ad528b37057e0372a8b94d05cf49336cbf2702b4cbb243ced72295f484");
	assert_string_equal(take(fx),
			    "{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"session_open\",\"client\":\"agent-1\","
			    "\"vip\":\"10.100.0.7\",\"peer\":\"198.51.100.20:51000\",\"cert_serial\":\"7a00f98b\","
			    "\"cert_sha256\":\"e961c2ad528b37057e0372a8b94d05cf49336cbf2702b4cbb243ced72295f484\"}\n");
	fx->now += 61000;
	audit_session_close(fx->a, 0, "agent-1", "10.100.0.7", "198.51.100.20:51000", 61000, 1234, 56789, "client-closed");
	assert_string_equal(take(fx),
			    "{\"ts\":\"2026-11-25T02:51:02.123Z\",\"event\":\"session_close\",\"client\":\"agent-1\","
			    "\"vip\":\"10.100.0.7\",\"peer\":\"198.51.100.20:51000\",\"duration_ms\":61000,"
			    "\"bytes_up\":1234,\"bytes_down\":56789,\"reason\":\"client-closed\"}\n");
}

static void test_flow_lines_exact(void **state)
{
	struct fx *fx = *state;
	struct audit_flow f = { .client = "agent-1", .proto = "tcp", .src = "10.100.0.7", .sport = 40000, .dst = "203.0.113.5", .dport = 443, .rule = "allow-saas" };
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
	audit_limit_hit(fx->a, "flows_per_client", "agent-2", 0);
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

/* Workers' lines through the master's trail (audit_raw): kept byte for
 * byte, counted; anything but one whole line is refused. */
static void test_raw_lines(void **state)
{
	struct fx *fx = *state;
	static const char l1[] = "{\"ts\":\"x\",\"event\":\"flow_allow\"}\n";
	char big[2100];
	uint64_t n0 = audit_lines(fx->a);

	assert_int_equal(audit_raw(fx->a, l1, strlen(l1)), 0);
	assert_int_equal(audit_raw(fx->a, "a\nb\n", 4), ZG_ERR_INVAL);
	assert_int_equal(audit_raw(fx->a, "no newline", 10), ZG_ERR_INVAL);
	assert_int_equal(audit_raw(fx->a, "\n", 1), ZG_ERR_INVAL);
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	assert_int_equal(audit_raw(fx->a, big, sizeof(big)), ZG_ERR_INVAL);
	assert_int_equal(audit_raw(fx->a, big + sizeof(big) - 2048, 2048), 0);
	assert_int_equal(audit_drain(fx->a), 0);
	assert_int_equal(audit_lines(fx->a), n0); /* counted where they were made */
	{
		const char *out = take(fx);

		assert_int_equal(strncmp(out, l1, strlen(l1)), 0);
		assert_int_equal(strlen(out), strlen(l1) + 2048);
	}
}

/* A worker's audit_dropped line that finds the master's buffer full is not
 * lost: its count joins the master's next audit_dropped line, so the
 * counts in the trail add up to every line lost (the master's own drops
 * are its dropped counter). */
static void test_raw_gap_absorbed(void **state)
{
	struct fx *fx = *state;
	static const char gap[] = "{\"ts\":\"x\",\"event\":\"audit_dropped\",\"count\":40,"
				  "\"since\":\"y\"}\n";
	static const char l1[] = "{\"ts\":\"x\",\"event\":\"flow_allow\"}\n";
	const char *out;
	uint64_t d0 = audit_dropped(fx->a);
	int i;

	fx->refuse = 1;
	for (i = 0; i < 200; i++) /* 8 KiB of lines into a 4 KiB buffer */
		(void)audit_raw(fx->a, l1, strlen(l1));
	assert_true(audit_dropped(fx->a) > d0);
	d0 = audit_dropped(fx->a) - d0; /* the master's own drops */
	{
		uint64_t before = audit_dropped(fx->a);

		assert_int_equal(audit_raw(fx->a, gap, strlen(gap)), 0);
		/* not one more drop of the master's: the 40 were the worker's */
		assert_int_equal(audit_dropped(fx->a), before);
	}
	fx->refuse = 0;
	assert_int_equal(audit_drain(fx->a), 0);
	audit_session_open(fx->a, 1, "agent-1", "10.100.0.2", "192.0.2.1:1", NULL, NULL);
	out = take(fx);
	{
		char want[64];

		snprintf(want, sizeof(want), "\"count\":%llu,", (unsigned long long)d0 + 40);
		assert_non_null(strstr(out, "\"event\":\"audit_dropped\""));
		assert_non_null(strstr(out, want));
	}
}

static void test_hostile_strings_escaped(void **state)
{
	struct fx *fx = *state;
	audit_session_open(fx->a, 0, "evil\",\"event\":\"x\\\n\x01\x7f", "10.0.0.1", "p", NULL, "");
	assert_string_equal(take(fx),
			    "{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"session_open\","
			    "\"client\":\"evil\\\",\\\"event\\\":\\\"x\\\\\\u000a\\u0001\\u007f\",\"vip\":\"10.0.0.1\",\"peer\":\"p\"}\n");
}

/* 16.8a: JSON is UTF-8: bytes that are not become U+FFFD, well-formed
 * characters stay, U+2028 (a line break to JavaScript) is escaped. */
static void test_non_utf8_strings_escaped(void **state)
{
	struct fx *fx = *state;
	audit_session_open(fx->a, 0, "a\xff\xc0\xaf"
				     "b\xc3\xa9\xe2\x80\xa8",
			   "10.0.0.1", "p", NULL, NULL);
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
	struct audit_flow f = { .client = "agent-1", .proto = "udp", .src = "10.100.0.7", .sport = 1, .dst = "10.0.0.1", .dport = 53, .rule = "block-internal", .reason = "policy" };
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

/* Issue 19: dns_allow / dns_deny lines, exact; a flow line names the DNS
 * name its destination was learned from; dns_deny floods share the
 * client's deny window. */
static void test_i19_dns_lines(void **state)
{
	struct fx *fx = *state;
	struct audit_dns_query q = { 0x8f3a5c0e12d4b7a9ull, "agent-1", "portal.lab.example", "A", "lab",
				     NULL, "NOERROR" };
	struct audit_flow f = { .client = "agent-1", .proto = "tcp", .src = "10.100.0.7", .sport = 40000, .dst = "198.18.0.10", .dport = 443, .rule = "lab", .name = "portal.lab.example", .reason = "policy" };
	const char *out;
	int lines = 0;

	audit_dns(fx->a, 1, &q);
	assert_string_equal(take(fx),
			    "{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"dns_allow\",\"client\":\"agent-1\","
			    "\"name\":\"portal.lab.example\",\"qtype\":\"A\",\"rule\":\"lab\",\"answer\":\"NOERROR\","
			    "\"session_id\":\"8f3a5c0e12d4b7a9\"}\n");
	audit_flow_allow(fx->a, &f);
	assert_non_null(strstr(take(fx), "\"rule\":\"lab\",\"name\":\"portal.lab.example\",\"reason\":\"policy\""));
	q.name = "unlisted.example";
	q.qtype = "AAAA";
	q.rule = "default";
	q.reason = "policy";
	q.answer = "NXDOMAIN";
	for (int i = 0; i < 50; i++)
		audit_dns(fx->a, 0, &q); /* 3 a second per client */
	out = take(fx);
	assert_non_null(strstr(out, "\"event\":\"dns_deny\",\"client\":\"agent-1\",\"name\":\"unlisted.example\","
				    "\"qtype\":\"AAAA\",\"rule\":\"default\",\"reason\":\"policy\",\"answer\":\"NXDOMAIN\""));
	for (const char *p = out; (p = strstr(p, "\"event\":\"dns_deny\"")); p++)
		lines++;
	assert_int_equal(lines, 3);
	assert_int_equal(audit_suppressed(fx->a), 47);
	/* allowed queries are never summarised */
	for (int i = 0; i < 10; i++)
		audit_dns(fx->a, 1, &q);
	out = take(fx);
	lines = 0;
	for (const char *p = out; (p = strstr(p, "\"event\":\"dns_allow\"")); p++)
		lines++;
	assert_int_equal(lines, 10);
}

/* Issue 16.7: one client's deny flood uses up its own window only; the
 * global window caps all clients together, and what it holds back shows
 * in each client's summary. */
static void test_i16_7_deny_windows_per_client_under_global_cap(void **state)
{
	struct fx *fx = *state;
	struct audit_flow f = { .client = "flooder", .proto = "tcp", .src = "10.100.0.7", .sport = 1, .dst = "10.0.0.1", .dport = 22, .reason = "policy" };
	const char *out;
	char id[32];
	int lines = 0, i;

	audit_set_deny_global(fx->a, 8);
	for (i = 0; i < 30000; i++)
		audit_flow_deny(fx->a, &f); /* 3 lines: its own window */
	f.client = "agent-2";
	audit_flow_deny(fx->a, &f); /* still has its own lines */
	audit_flow_deny(fx->a, &f);
	for (i = 0; i < 10; i++) { /* 3 more reach the global cap of 8 */
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
	fx->now += 1000;            /* a new window for everyone */
	audit_flow_deny(fx->a, &f); /* agent-19: its summary, then the line */
	out = take(fx);
	assert_non_null(strstr(out, "\"client\":\"agent-19\",\"count\":1,"));
	assert_non_null(strstr(out, "\"event\":\"flow_deny\""));
	audit_flush(fx->a, 1);
	assert_non_null(strstr(take(fx), "\"client\":\"flooder\",\"count\":29997,"));
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* 17.6: a writer that takes nothing (a pipe nobody reads): lines fill the
 * buffer up to its bound, the rest are dropped and counted, memory does
 * not grow; when the writer takes again, what waited comes out whole and
 * in order, then one audit_dropped line with the count and when the gap
 * began. */
static void test_i17_6_full_output_drops_lines_bounded(void **state)
{
	struct fx *fx = *state;
	struct audit_flow f = { .session_id = 0x1234, .client = "agent-1", .proto = "tcp", .src = "10.100.0.7", .sport = 40000, .dst = "203.0.113.5", .dport = 443, .rule = "allow-saas" };
	struct mallinfo2 before, after;
	size_t fit, i, pending;
	const char *out;

	fx->refuse = 1;
	audit_flow_allow(fx->a, &f);
	assert_int_equal(fx->wakes, 1); /* the owner is told once... */
	audit_flow_allow(fx->a, &f);
	assert_int_equal(fx->wakes, 1);          /* ...not per line */
	assert_int_equal(audit_drain(fx->a), 1); /* lines wait: the writer took none */
	pending = audit_pending(fx->a);
	fit = AUDIT_BUFFER_MIN / (pending / 2);
	before = mallinfo2();
	for (i = 0; i < 100000; i++)
		audit_flow_allow(fx->a, &f);
	after = mallinfo2();
	assert_true(after.uordblks <= before.uordblks + 1024); /* no memory per line */
	assert_true(audit_pending(fx->a) <= AUDIT_BUFFER_MIN);
	assert_int_equal(audit_lines(fx->a), fit);
	assert_int_equal(audit_dropped(fx->a), 100002 - fit);
	assert_int_equal(fx->len, 0);   /* nothing was written */
	assert_int_equal(fx->wakes, 1); /* a drain is pending: no more wakes */
	/* the reader is back, in small gulps */
	fx->now += 5000;
	fx->refuse = 0;
	fx->chunk = 100;
	assert_int_equal(audit_drain(fx->a), 0);
	fflush(fx->out);
	assert_int_equal(count_of(fx->buf, "\"event\":\"flow_allow\""), fit);
	assert_int_equal(count_of(fx->buf, "\n"), fit + 1);
	assert_non_null(strstr(fx->buf, "{\"ts\":\"2026-11-25T02:50:06.123Z\",\"event\":\"audit_dropped\","));
	{
		char want[128];
		snprintf(want, sizeof(want), "\"count\":%zu,\"since\":\"2026-11-25T02:50:01.123Z\"}\n",
			 (size_t)(100002 - fit));
		assert_non_null(strstr(fx->buf, want));
		/* the summary is the last line: it comes after what waited */
		assert_string_equal(fx->buf + strlen(fx->buf) - strlen(want), want);
	}
	/* every line whole: each starts with {"ts" and ends with }\n */
	for (const char *p = fx->buf; *p; p = strchr(p, '\n') + 1)
		assert_memory_equal(p, "{\"ts\":", 6);
	assert_int_equal(audit_lines(fx->a), fit + 1);
	/* reported once */
	take(fx);
	audit_flow_allow(fx->a, &f);
	assert_int_equal(audit_drain(fx->a), 0);
	out = take(fx);
	assert_int_equal(count_of(out, "audit_dropped"), 0);
	assert_int_equal(count_of(out, "flow_allow"), 1);
}

/* The reader takes a little, then stalls again: space returned but the
 * drain could not report the gap (it still waits); the next line that
 * fits reports it first. */
static void test_i17_6_gap_reported_before_next_line(void **state)
{
	struct fx *fx = *state;
	const char *out;
	size_t i;

	fx->refuse = 1;
	for (i = 0; i < 200; i++)
		audit_policy_reload(fx->a, 1, "/etc/zgate/policy.yaml", NULL);
	assert_true(audit_dropped(fx->a) > 0);
	fx->refuse = 0;
	fx->budget = 1000; /* then full again */
	assert_int_equal(audit_drain(fx->a), 1);
	assert_int_equal(count_of(take(fx), "audit_dropped"), 0);
	audit_limit_hit(fx->a, "pool", "agent-9", 0x77);
	fx->budget = 0;
	fx->refuse = 0;
	assert_int_equal(audit_drain(fx->a), 0);
	out = take(fx);
	assert_int_equal(count_of(out, "\"event\":\"audit_dropped\""), 1);
	assert_non_null(strstr(out, "\"event\":\"audit_dropped\""));
	assert_true(strstr(out, "\"event\":\"audit_dropped\"") < strstr(out, "\"event\":\"limit_hit\""));
	/* after every policy_reload line that waited */
	assert_null(strstr(strstr(out, "\"event\":\"audit_dropped\""), "policy_reload"));
}

/* With no wake callback every line is drained at once; a writer that
 * takes nothing makes the same drops, and the next line after it takes
 * again is preceded by the summary. */
static void test_i17_6_sync_writer_summary_precedes_next_line(void **state)
{
	struct fx fx;
	const char *out;
	size_t i;

	(void)state;
	assert_int_equal(fx_open(&fx, AUDIT_BUFFER_MIN, 0), 0);
	fx.refuse = 1;
	for (i = 0; i < 100; i++)
		audit_handshake_failed(fx.a, "alpn", "192.0.2.9:4001");
	assert_true(audit_dropped(fx.a) > 0);
	fx.refuse = 0;
	audit_admin(fx.a, "list_sessions", NULL, "127.0.0.1:1", 200);
	out = take(&fx);
	assert_non_null(strstr(out, "\"event\":\"audit_dropped\""));
	assert_true(strstr(out, "audit_dropped") < strstr(out, "\"event\":\"admin\""));
	assert_true(strstr(out, "audit_dropped") > strstr(out, "handshake_failed"));
	audit_free(fx.a);
	fclose(fx.out);
	free(fx.buf);
}

/* 17.6: every line of a session carries its session_id, including deny
 * summaries; a line of another session carries that one's. */
static void test_i17_6_session_id_in_every_line(void **state)
{
	struct fx *fx = *state;
	const uint64_t sid = UINT64_C(0x8f3a5c0e12d4b7a9), other = 0x2a;
	struct audit_flow f = { .session_id = sid, .client = "agent-1", .proto = "udp", .src = "10.100.0.7", .sport = 5353, .dst = "10.0.0.1", .dport = 53, .rule = "dns" };
	const char *out, *p;
	size_t lines = 0;

	audit_session_open(fx->a, sid, "agent-1", "10.100.0.7", "192.0.2.1:5000", NULL, NULL);
	audit_flow_allow(fx->a, &f);
	audit_flow_close(fx->a, &f);
	f.reason = "policy";
	for (int i = 0; i < 5; i++)
		audit_flow_deny(fx->a, &f); /* 3 written, 2 summarised */
	audit_limit_hit(fx->a, "flows_per_client", "agent-1", sid);
	fx->now += 1000;
	audit_flush(fx->a, 0);
	audit_session_close(fx->a, sid, "agent-1", "10.100.0.7", "192.0.2.1:5000", 1000, 1, 2,
			    "client_closed");
	out = take(fx);
	/* the last field of every line: greps written for the lines before
	 * session ids still match */
	for (p = out; *p; p = strchr(p, '\n') + 1) {
		lines++;
		assert_memory_equal(strchr(p, '\n') - 33, ",\"session_id\":\"8f3a5c0e12d4b7a9\"}", 33);
	}
	assert_int_equal(lines, 1 + 1 + 1 + 3 + 1 + 1 + 1);
	assert_non_null(strstr(out, "\"event\":\"flow_deny_suppressed\",\"client\":\"agent-1\",\"count\":2,"
				    "\"window_ms\":1000,\"session_id\":\"8f3a5c0e12d4b7a9\"}\n"));
	{
		static const char want[] = "{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"session_open\","
					   "\"client\":\"agent-1\",\"vip\":\"10.100.0.7\",\"peer\":\"192.0.2.1:5000\","
					   "\"session_id\":\"8f3a5c0e12d4b7a9\"}\n"
					   "{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"flow_allow\","
					   "\"client\":\"agent-1\",\"proto\":\"udp\",\"src\":\"10.100.0.7\",\"sport\":5353,\"dst\":\"10.0.0.1\","
					   "\"dport\":53,\"rule\":\"dns\",\"session_id\":\"8f3a5c0e12d4b7a9\"}\n";
		assert_memory_equal(out, want, sizeof(want) - 1);
	}
	/* a reconnect of the same client: the old session's denied count is
	 * reported under its own id before the new one's denies */
	f.session_id = other;
	for (int i = 0; i < 4; i++)
		audit_flow_deny(fx->a, &f); /* new window for the new session */
	f.session_id = sid;
	audit_flow_deny(fx->a, &f);
	out = take(fx);
	assert_non_null(strstr(out, "\"event\":\"flow_deny_suppressed\",\"client\":\"agent-1\",\"count\":1,"
				    "\"window_ms\":0,\"session_id\":\"000000000000002a\"}\n"));
}

/* 17.6: relay_start and relay_stop, exactly. */
static void test_i17_6_relay_start_stop_exact(void **state)
{
	struct fx *fx = *state;

	audit_relay_start(fx->a, "0.9.0-3-gabcdef", "0.0.0.0:4433", "127.0.0.1:8080", "", 4242);
	audit_relay_start(fx->a, "0.9.0", "[::]:443", "0.0.0.0:8080", "127.0.0.1:9090", 7);
	fx->now += 3723000;
	audit_relay_stop(fx->a, "sigterm", 3723000);
	assert_string_equal(take(fx),
			    "{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"relay_start\",\"version\":\"0.9.0-3-gabcdef\","
			    "\"listen\":\"0.0.0.0:4433\",\"ops_listen\":\"127.0.0.1:8080\",\"pid\":4242}\n"
			    "{\"ts\":\"2026-11-25T02:50:01.123Z\",\"event\":\"relay_start\",\"version\":\"0.9.0\","
			    "\"listen\":\"[::]:443\",\"ops_listen\":\"0.0.0.0:8080\",\"admin_listen\":\"127.0.0.1:9090\","
			    "\"pid\":7}\n"
			    "{\"ts\":\"2026-11-25T03:52:04.123Z\",\"event\":\"relay_stop\",\"reason\":\"sigterm\","
			    "\"uptime_ms\":3723000}\n");
}

/* 17.6: the deny limit and the buffer are configuration keys (file,
 * environment, flag), with defaults and bounds. */
static void test_i17_6_config_keys(void **state)
{
	struct relay_config cfg;
	char err[512];
	const char *yaml = "audit:\n  deny_per_second: 25\n  buffer_kib: 64\n";
	char *envp[] = { "ZGATE_AUDIT_DENY_PER_SECOND=0", NULL };
	char usage[65536];

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(cfg.audit_deny_per_s, 10);
	assert_int_equal(cfg.audit_buffer_kib, 1024);
	assert_int_equal(config_load_buf(&cfg, "relay.yaml", yaml, strlen(yaml), err, sizeof(err)), 0);
	assert_int_equal(cfg.audit_deny_per_s, 25);
	assert_int_equal(cfg.audit_buffer_kib, 64);
	assert_int_equal(config_apply_env(&cfg, envp, err, sizeof(err)), 0);
	assert_int_equal(cfg.audit_deny_per_s, 0);
	assert_int_equal(config_apply_flag(&cfg, "audit-buffer-kib", "2048", err, sizeof(err)), 0);
	assert_int_equal(cfg.audit_buffer_kib, 2048);
	assert_int_equal(config_apply_flag(&cfg, "audit-buffer-kib", "8", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "audit-buffer-kib"));
	yaml = "audit:\n  deny_per_second: -1\n";
	assert_int_equal(config_load_buf(&cfg, "relay.yaml", yaml, strlen(yaml), err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "relay.yaml:2:"));
	assert_non_null(strstr(err, "audit.deny_per_second"));
	(void)config_usage(usage, sizeof(usage));
	assert_non_null(strstr(usage, "--audit-deny-per-second"));
	assert_non_null(strstr(usage, "ZGATE_AUDIT_BUFFER_KIB"));
	(void)config_summary(&cfg, usage, sizeof(usage));
	assert_non_null(strstr(usage, "\naudit         0 flow_deny lines/s per client (0: all), buffer 2048 KiB\n"));
	assert_int_equal(config_summary(&cfg, NULL, 0), strlen(usage));
}

/* The configured deny limit is the one in force. */
static void test_i17_6_deny_limit_from_config(void **state)
{
	struct fx fx;
	struct audit_config ac;
	struct audit_flow f = { .client = "agent-1", .proto = "tcp", .src = "10.100.0.7", .dst = "10.0.0.1", .dport = 22, .reason = "policy" };
	const char *out;

	(void)state;
	assert_int_equal(fx_open(&fx, 0, 0), 0);
	audit_free(fx.a);
	memset(&ac, 0, sizeof(ac));
	ac.write = mem_write;
	ac.write_ctx = &fx;
	ac.clock = fake_clock;
	ac.clock_ctx = &fx;
	ac.deny_per_s = 7;
	assert_int_equal(audit_new(&ac, &fx.a), 0);
	for (int i = 0; i < 50; i++)
		audit_flow_deny(fx.a, &f);
	out = take(&fx);
	assert_int_equal(count_of(out, "\"event\":\"flow_deny\""), 7);
	assert_int_equal(audit_suppressed(fx.a), 43);
	audit_free(fx.a);
	ac.deny_per_s = 0; /* every deny */
	assert_int_equal(audit_new(&ac, &fx.a), 0);
	for (int i = 0; i < 50; i++)
		audit_flow_deny(fx.a, &f);
	assert_int_equal(count_of(take(&fx), "\"event\":\"flow_deny\""), 50);
	ac.buffer_bytes = AUDIT_BUFFER_MIN - 1;
	{
		struct audit *tiny = NULL;
		assert_int_equal(audit_new(&ac, &tiny), ZG_ERR_INVAL);
	}
	audit_free(fx.a);
	fclose(fx.out);
	free(fx.buf);
}

/* 17.6: stdout on a pipe nobody reads: writing never blocks, and the
 * O_NONBLOCK is on a description of our own, so the fd (which stderr may
 * share, 2>&1) keeps blocking. */
static void test_i17_6_out_pipe_never_blocks(void **state)
{
	struct audit_out o;
	int p[2], fl;
	char chunk[4096];
	size_t total = 0;
	ssize_t n;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(pipe(p), 0);
	assert_int_equal(audit_out_open(p[1], &o), 0);
	assert_true(o.can_wait);
	assert_false(o.sock);
	assert_string_equal(o.mode, "pipe");
	assert_int_not_equal(o.fd, p[1]);
	fl = fcntl(p[1], F_GETFL);
	assert_false(fl & O_NONBLOCK);
	/* fill it: a blocking write would hang the test here */
	while ((n = audit_out_write(&o, chunk, sizeof(chunk))) > 0)
		total += (size_t)n;
	assert_int_equal(n, 0);
	assert_true(total >= 4096);
	audit_out_close(&o);
	assert_int_equal(o.fd, p[1]);
	/* the reader went away: an error, not a hang (the relay ignores
	 * SIGPIPE, as audit_out_write() expects) */
	signal(SIGPIPE, SIG_IGN);
	close(p[0]);
	assert_int_equal(audit_out_open(p[1], &o), 0);
	assert_int_equal(audit_out_write(&o, chunk, 10), -1);
	assert_int_equal(errno, EPIPE);
	audit_out_close(&o);
	close(p[1]);
}

/* A terminal keeps its flags (it is shared with the shell); a socket is
 * written with MSG_DONTWAIT without changing its flags either. */
static void test_i17_6_out_terminal_and_socket_flags_untouched(void **state)
{
	struct audit_out o;
	int m, t, sv[2], fl;
	char chunk[4096];
	ssize_t n;

	(void)state;
	memset(chunk, 'y', sizeof(chunk));
	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0 &&
	    (t = open(ptsname(m), O_RDWR | O_NOCTTY)) >= 0) {
		fl = fcntl(t, F_GETFL);
		assert_int_equal(audit_out_open(t, &o), 0);
		assert_string_equal(o.mode, "terminal (blocking)");
		assert_false(o.can_wait);
		assert_int_equal(fcntl(t, F_GETFL), fl);
		audit_out_close(&o);
		assert_int_equal(fcntl(t, F_GETFL), fl);
		close(t);
	}
	if (m >= 0)
		close(m);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fl = fcntl(sv[0], F_GETFL);
	assert_int_equal(audit_out_open(sv[0], &o), 0);
	assert_string_equal(o.mode, "socket");
	while ((n = audit_out_write(&o, chunk, sizeof(chunk))) > 0)
		;
	assert_int_equal(n, 0); /* full: would block, did not */
	assert_int_equal(fcntl(sv[0], F_GETFL), fl);
	audit_out_close(&o);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_i19_dns_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i16_7_deny_windows_per_client_under_global_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_lines_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_lines_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_events_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_event_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_gap_absorbed, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_strings_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_utf8_strings_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlong_line_stays_valid_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deny_flood_summarised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i17_6_full_output_drops_lines_bounded, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_i17_6_gap_reported_before_next_line, setup_small, teardown),
		cmocka_unit_test(test_i17_6_sync_writer_summary_precedes_next_line),
		cmocka_unit_test_setup_teardown(test_i17_6_session_id_in_every_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i17_6_relay_start_stop_exact, setup, teardown),
		cmocka_unit_test(test_i17_6_config_keys),
		cmocka_unit_test(test_i17_6_deny_limit_from_config),
		cmocka_unit_test(test_i17_6_out_pipe_never_blocks),
		cmocka_unit_test(test_i17_6_out_terminal_and_socket_flags_untouched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
