/*
 * Unit tests for src/relay/metrics_merge: the workers' expositions merged
 * into the relay's. The golden exposition (tests/golden/metrics.txt, what
 * metrics_write() renders from a fixed struct) merged with itself, line by
 * line and against hand-computed values; small texts with different label
 * sets and families; every kind of bad input, by text and line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include <event2/buffer.h>

#include "golden.h"
#include "relay/metrics_merge.h"
#include "zg_err.h"

#define GOLDEN "tests/golden/metrics.txt"

/* The merge of n NUL-terminated texts, NUL-terminated (caller frees), or
 * NULL with *pr the error and err its message. */
static char *merge(const char *const *texts, size_t n, int *pr, char *err, size_t errlen)
{
	struct metrics_text t[8];
	struct evbuffer *b = evbuffer_new();
	size_t i, len;
	char *s = NULL;

	assert_true(n <= 8);
	assert_non_null(b);
	for (i = 0; i < n; i++) {
		t[i].s = texts[i];
		t[i].len = strlen(texts[i]);
	}
	err[0] = '\0';
	*pr = metrics_merge(b, t, n, err, errlen);
	len = evbuffer_get_length(b);
	if (*pr == 0) {
		s = malloc(len + 1);
		assert_non_null(s);
		assert_int_equal(evbuffer_remove(b, s, len), (int)len);
		s[len] = '\0';
	} else {
		assert_int_equal(len, 0); /* an error leaves the buffer untouched */
	}
	evbuffer_free(b);
	return s;
}

static char *merge_ok(const char *const *texts, size_t n)
{
	char err[256];
	int r;
	char *s = merge(texts, n, &r, err, sizeof(err));

	if (r != 0)
		fail_msg("metrics_merge: %s (%s)", zg_strerror(r), err);
	return s;
}

/* Every gauge family of the golden text and its rule: a gauge added to
 * metrics.c fails here until it is classified (sum, or one of the
 * exceptions of metrics_merge.h). */
static const struct {
	const char *name;
	enum metrics_merge_op op;
} golden_gauges[] = {
	{ "zgate_build_info", METRICS_MERGE_FIRST },
	{ "zgate_sessions", METRICS_MERGE_SUM },
	{ "zgate_quic_connections", METRICS_MERGE_SUM },
	{ "zgate_flows", METRICS_MERGE_SUM },
	{ "zgate_tcp_half_open", METRICS_MERGE_SUM },
	{ "zgate_flow_descriptor_budget", METRICS_MERGE_FIRST },
	{ "zgate_tcp_window_bytes", METRICS_MERGE_SUM },
	{ "zgate_tcp_stack_memory_bytes", METRICS_MERGE_SUM },
	{ "zgate_tcp_time_wait", METRICS_MERGE_SUM },
	{ "zgate_tls_cert_expiry_timestamp_seconds", METRICS_MERGE_MIN },
	{ "zgate_tls_crl_next_update_timestamp_seconds", METRICS_MERGE_MIN },
	{ "zgate_pool_size", METRICS_MERGE_FIRST },
	{ "zgate_pool_used", METRICS_MERGE_FIRST },
	{ "zgate_policy_last_reload_success_timestamp_seconds", METRICS_MERGE_MIN },
	{ "process_open_fds", METRICS_MERGE_MAX },
	{ "process_max_fds", METRICS_MERGE_MIN },
	{ "zgate_dns_service_cache_entries", METRICS_MERGE_SUM },
	{ "zgate_dns_learned_bindings", METRICS_MERGE_SUM },
	{ "zgate_ipam_api_up", METRICS_MERGE_MIN },
	{ "zgate_ipam_api_pending", METRICS_MERGE_SUM },
	{ "zgate_policy_api_version", METRICS_MERGE_SAME },
	{ "zgate_connectors_up", METRICS_MERGE_SUM },
	{ "zgate_connector_links", METRICS_MERGE_SUM },
};

static void test_merge_rules_cover_golden_gauges(void **state)
{
	size_t len, i, found = 0;
	char *g = golden_read(GOLDEN, &len), *l, *save = NULL;
	char name[128], type[16];

	(void)state;
	for (l = strtok_r(g, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		if (sscanf(l, "# TYPE %127s %15s", name, type) != 2)
			continue;
		if (strcmp(type, "gauge") != 0) {
			/* every worker does the relay's one reload: the maximum */
			int once = strcmp(name, "zgate_policy_reloads_total") == 0 ||
				   strcmp(name, "zgate_tls_reloads_total") == 0;

			assert_int_equal(metrics_merge_rule(name, strlen(name), type),
					 once ? METRICS_MERGE_MAX : METRICS_MERGE_SUM);
			continue;
		}
		for (i = 0; i < sizeof(golden_gauges) / sizeof(golden_gauges[0]); i++)
			if (strcmp(golden_gauges[i].name, name) == 0)
				break;
		if (i == sizeof(golden_gauges) / sizeof(golden_gauges[0]))
			fail_msg("gauge %s: not classified (add it to golden_gauges and, unless it "
				 "adds up, to metrics_merge.c's gauge_rules)",
				 name);
		if (metrics_merge_rule(name, strlen(name), type) != golden_gauges[i].op)
			fail_msg("gauge %s: rule %d, want %d", name,
				 metrics_merge_rule(name, strlen(name), type), golden_gauges[i].op);
		found++;
	}
	assert_int_equal(found, sizeof(golden_gauges) / sizeof(golden_gauges[0]));
	/* the rule is by type: a counter of an excepted name adds up */
	assert_int_equal(metrics_merge_rule("process_max_fds", 15, "counter"), METRICS_MERGE_SUM);
	free(g);
}

/* A value of the golden text in millionths (it has at most 6 decimals). */
static unsigned long long micro(const char *v)
{
	unsigned long long ip = strtoull(v, NULL, 10), fp = 0;
	const char *dot = strchr(v, '.');
	size_t n;

	if (dot != NULL) {
		for (n = 1; n <= 6; n++)
			fp = fp * 10 + (dot[n] >= '0' && dot[n] <= '9' ? (unsigned)(dot[n] - '0') : 0);
		assert_true(strspn(dot + 1, "0123456789") <= 6);
	}
	return ip * 1000000ull + fp;
}

/* The golden text merged with itself: the same lines in the same order,
 * HELP and TYPE lines byte for byte, every sample the same series with
 * twice its value where its family adds up, the same value elsewhere. */
static void test_merge_golden_twice(void **state)
{
	size_t len, lines = 0, samples = 0;
	char *g = golden_read(GOLDEN, &len);
	const char *texts[2] = { g, g };
	char *m = merge_ok(texts, 2), *gl, *ml, *gs = NULL, *ms = NULL;
	char fam[128] = "", type[16] = "";
	enum metrics_merge_op op = METRICS_MERGE_SUM;

	(void)state;
	for (gl = strtok_r(g, "\n", &gs), ml = strtok_r(m, "\n", &ms); gl != NULL;
	     gl = strtok_r(NULL, "\n", &gs), ml = strtok_r(NULL, "\n", &ms)) {
		const char *gv, *mv;
		unsigned long long want;

		lines++;
		if (ml == NULL)
			fail_msg("merged text ends before golden line %zu: %s", lines, gl);
		if (gl[0] == '#') {
			if (strcmp(gl, ml) != 0)
				fail_msg("line %zu:\n  got:  %s\n  want: %s", lines, ml, gl);
			if (sscanf(gl, "# TYPE %127s %15s", fam, type) == 2)
				op = metrics_merge_rule(fam, strlen(fam), type);
			continue;
		}
		samples++;
		gv = strrchr(gl, ' ');
		mv = strrchr(ml, ' ');
		assert_non_null(gv);
		assert_non_null(mv);
		if (gv - gl != mv - ml || strncmp(gl, ml, (size_t)(gv - gl)) != 0)
			fail_msg("line %zu: series %s, want %.*s", lines, ml, (int)(gv - gl), gl);
		want = micro(gv + 1) * (op == METRICS_MERGE_SUM ? 2 : 1);
		if (micro(mv + 1) != want)
			fail_msg("line %zu (%s, rule %d): %s, want %llu millionths", lines, fam, op,
				 mv + 1, want);
		/* integers stay integers, and only a fraction has a point */
		assert_int_equal(strchr(mv, '.') != NULL, want % 1000000 != 0);
	}
	assert_null(strtok_r(NULL, "\n", &ms));
	assert_true(samples > 150); /* not an empty text: 199 when this was written */
	free(m);

	/* by hand, a few families of each kind */
	free(g);
	g = golden_read(GOLDEN, &len);
	texts[0] = texts[1] = g;
	m = merge_ok(texts, 2);
	assert_non_null(strstr(m, "\nzgate_sessions_opened_total 10\n"));
	assert_non_null(strstr(m, "\nzgate_tunnel_refused_total{status=\"400\"} 12\n"
				  "zgate_tunnel_refused_total{status=\"403\"} 14\n"));
	assert_non_null(strstr(m, "\nzgate_drops_total{reason=\"too_big\"} 832\n"));
	assert_non_null(strstr(m, "\nzgate_sessions 6\n"));
	assert_non_null(strstr(m, "\nzgate_flows{proto=\"icmp\"} 258\n"));
	assert_non_null(strstr(m, "# TYPE zgate_flow_setup_seconds histogram\n"
				  "zgate_flow_setup_seconds_bucket{le=\"0.001\"} 2\n"
				  "zgate_flow_setup_seconds_bucket{le=\"0.0025\"} 2\n"
				  "zgate_flow_setup_seconds_bucket{le=\"0.005\"} 6\n"));
	assert_non_null(strstr(m, "zgate_flow_setup_seconds_bucket{le=\"+Inf\"} 10\n"
				  "zgate_flow_setup_seconds_sum 22.252\n"
				  "zgate_flow_setup_seconds_count 10\n"));
	assert_non_null(strstr(m, "\nzgate_quic_handshake_seconds_sum 0.095358\n"));
	assert_non_null(strstr(m, "\nzgate_dns_service_upstream_seconds_sum 0.0516\n"));
	assert_non_null(strstr(m, "\nzgate_build_info{version=\"0.1.0\",commit=\"0123456789ab\"} 1\n"));
	assert_non_null(strstr(m, "\nzgate_flow_descriptor_budget{scope=\"all\"} 123\n"));
	assert_non_null(strstr(m, "\nzgate_pool_size{version=\"6\"} 308\n"));
	assert_non_null(strstr(m, "\nzgate_pool_used{version=\"4\"} 307\n"));
	assert_non_null(strstr(m, "\nzgate_tls_cert_expiry_timestamp_seconds 1893456000\n"));
	assert_non_null(strstr(m, "\nzgate_policy_last_reload_success_timestamp_seconds 1764806400\n"));
	assert_non_null(strstr(m, "\nprocess_open_fds 17\n"));
	assert_non_null(strstr(m, "\nprocess_max_fds 65536\n"));
	assert_non_null(strstr(m, "\nzgate_ipam_api_up 1\n"));
	assert_non_null(strstr(m, "\nzgate_policy_api_version 352\n"));
	free(m);

	/* one text alone is the text itself, byte for byte */
	m = merge_ok(texts, 1);
	assert_string_equal(m, g);
	free(m);
	free(g);
}

/* promtool accepts the merge of three golden texts. */
static void test_merge_promtool(void **state)
{
	size_t len;
	char *g = golden_read(GOLDEN, &len);
	const char *texts[3] = { g, g, g };
	char *m = merge_ok(texts, 3), path[] = "/tmp/zg-mmerge-XXXXXX", cmd[128];
	FILE *f;
	int fd;

	(void)state;
	if (system("command -v promtool >/dev/null") != 0)
		fail_msg("promtool not found: install Debian's prometheus package (make deps does)");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(m, 1, strlen(m), f), strlen(m));
	assert_int_equal(fclose(f), 0);
	(void)snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	assert_int_equal(system(cmd), 0);
	unlink(path);
	assert_non_null(strstr(m, "\nzgate_sessions_opened_total 15\n"));
	assert_non_null(strstr(m, "\nzgate_flow_setup_seconds_sum 33.378\n"));
	free(m);
	free(g);
}

/* Three workers with different label sets and families: series in only
 * some texts are kept, families missing from the first follow it, the
 * first text's HELP wins, and each exception takes its rule. */
static void test_merge_three_label_sets(void **state)
{
	static const char t0[] = "# HELP a_total Things, by kind.\n"
				 "# TYPE a_total counter\n"
				 "a_total{k=\"x\"} 1\n"
				 "a_total{k=\"y\"} 2\n"
				 "# TYPE g gauge\n"
				 "g{w=\"0\",z=\"a\"} 5\n"
				 "# HELP zgate_pool_size Pool.\n"
				 "# TYPE zgate_pool_size gauge\n"
				 "zgate_pool_size{version=\"4\"} 100\n"
				 "# TYPE h_seconds histogram\n"
				 "h_seconds_bucket{le=\"0.1\"} 1\n"
				 "h_seconds_bucket{le=\"+Inf\"} 2\n"
				 "h_seconds_sum 0.25\n"
				 "h_seconds_count 2\n"
				 "# TYPE zgate_tls_cert_expiry_timestamp_seconds gauge\n"
				 "zgate_tls_cert_expiry_timestamp_seconds 100\n"
				 "# TYPE process_open_fds gauge\n"
				 "process_open_fds 12\n";
	static const char t1[] = "# HELP a_total Another help.\n"
				 "# TYPE a_total counter\n"
				 "a_total{k=\"y\"} 3\n"
				 "a_total{k=\"z\"} 4\n"
				 "# TYPE only1_total counter\n"
				 "only1_total 9\n"
				 "# TYPE g gauge\n"
				 "g{w=\"1\",z=\"a\"} 7\n"
				 "g{z=\"a\",w=\"0\"} 1\n" /* labels as written: another series */
				 "# TYPE zgate_pool_size gauge\n"
				 "zgate_pool_size{version=\"4\"} 200\n"
				 "zgate_pool_size{version=\"6\"} 50\n"
				 "# TYPE h_seconds histogram\n"
				 "h_seconds_bucket{le=\"0.1\"} 3\n"
				 "h_seconds_bucket{le=\"+Inf\"} 3\n"
				 "h_seconds_sum 0.75\n"
				 "h_seconds_count 3\n";
	static const char t2[] = "# TYPE process_open_fds gauge\n"
				 "process_open_fds 30\n"
				 "\n"
				 "# a comment line\n"
				 "# TYPE g gauge\n"
				 "g{w=\"0\",z=\"a\"} -2.5\n"
				 "# TYPE a_total counter\n"
				 "a_total{k=\"x\"} 10\n"
				 "# TYPE zgate_tls_cert_expiry_timestamp_seconds gauge\n"
				 "zgate_tls_cert_expiry_timestamp_seconds 50\n"
				 "# TYPE h_seconds histogram\n"
				 "h_seconds_sum 0.000000001\n"
				 "# TYPE only2 gauge\n"
				 "only2{a=\"}\\\" \"} 18446744073709551615\n"
				 "# TYPE big_total counter\n"
				 "big_total 18446744073709551615"; /* no final newline */
	static const char t3[] = "# TYPE big_total counter\n"
				 "big_total 18446744073709551615\n";
	static const char want[] = "# HELP a_total Things, by kind.\n"
				   "# TYPE a_total counter\n"
				   "a_total{k=\"x\"} 11\n"
				   "a_total{k=\"y\"} 5\n"
				   "a_total{k=\"z\"} 4\n"
				   "# TYPE g gauge\n"
				   "g{w=\"0\",z=\"a\"} 2.5\n"
				   "g{w=\"1\",z=\"a\"} 7\n"
				   "g{z=\"a\",w=\"0\"} 1\n"
				   "# HELP zgate_pool_size Pool.\n"
				   "# TYPE zgate_pool_size gauge\n"
				   "zgate_pool_size{version=\"4\"} 100\n"
				   "zgate_pool_size{version=\"6\"} 50\n"
				   "# TYPE h_seconds histogram\n"
				   "h_seconds_bucket{le=\"0.1\"} 4\n"
				   "h_seconds_bucket{le=\"+Inf\"} 5\n"
				   "h_seconds_sum 1.000000001\n"
				   "h_seconds_count 5\n"
				   "# TYPE zgate_tls_cert_expiry_timestamp_seconds gauge\n"
				   "zgate_tls_cert_expiry_timestamp_seconds 50\n"
				   "# TYPE process_open_fds gauge\n"
				   "process_open_fds 30\n"
				   "# TYPE only1_total counter\n"
				   "only1_total 9\n"
				   "# TYPE only2 gauge\n"
				   "only2{a=\"}\\\" \"} 18446744073709551615\n"
				   "# TYPE big_total counter\n"
				   "big_total 36893488147419103230\n";
	const char *texts[4] = { t0, t1, t2, t3 };
	char *m;

	(void)state;
	m = merge_ok(texts, 4);
	assert_string_equal(m, want);
	free(m);

	/* h_seconds_sum 0.25 + 0.75: an integer, written as one */
	m = merge_ok(texts, 2);
	assert_non_null(strstr(m, "\nh_seconds_sum 1\n"));
	free(m);
}

/* Values: exact sums, integers kept integers, no "-0". */
static void test_merge_values(void **state)
{
	static const char a[] = "# TYPE g gauge\ng{i=\"1\"} 0.1\ng{i=\"2\"} -1\ng{i=\"3\"} 7\n"
				"g{i=\"4\"} 0.000001\n";
	static const char b[] = "# TYPE g gauge\ng{i=\"1\"} 0.2\ng{i=\"2\"} 1\ng{i=\"3\"} -9.5\n"
				"g{i=\"4\"} 0.999999\n";
	const char *texts[2] = { a, b };
	char *m = merge_ok(texts, 2);

	(void)state;
	assert_string_equal(m, "# TYPE g gauge\ng{i=\"1\"} 0.3\ng{i=\"2\"} 0\ng{i=\"3\"} -2.5\n"
			       "g{i=\"4\"} 1\n");
	free(m);
}

/* zgate_policy_api_version: after a rollback (version 3 activated again
 * over 7) a worker still on 7 must not hide behind 3, nor a worker still
 * on 3 behind 7: workers that differ merge to -1, workers that agree to
 * their version. */
static void test_merge_policy_api_version(void **state)
{
	static const char h[] = "# TYPE zgate_policy_api_version gauge\n";
	static const char v7[] = "# TYPE zgate_policy_api_version gauge\nzgate_policy_api_version 7\n";
	static const char v3[] = "# TYPE zgate_policy_api_version gauge\nzgate_policy_api_version 3\n";
	const char *differ[3] = { v3, v7, v3 }, *rollback[2] = { v7, v3 }, *agree[2] = { v3, v3 };
	char want[128], *m;

	(void)state;
	(void)snprintf(want, sizeof(want), "%szgate_policy_api_version -1\n", h);
	m = merge_ok(rollback, 2);
	assert_string_equal(m, want);
	free(m);
	m = merge_ok(differ, 3);
	assert_string_equal(m, want);
	free(m);
	m = merge_ok(agree, 2);
	assert_string_equal(m, v3);
	free(m);
}

static void test_merge_empty(void **state)
{
	struct evbuffer *b = evbuffer_new();
	struct metrics_text t[2] = { { NULL, 0 }, { "", 0 } };
	char err[64];

	(void)state;
	assert_int_equal(metrics_merge(b, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(metrics_merge(b, t, 2, err, sizeof(err)), 0);
	assert_int_equal(evbuffer_get_length(b), 0);
	t[0].len = 1; /* NULL with a length */
	assert_int_equal(metrics_merge(b, t, 2, err, sizeof(err)), ZG_ERR_INVAL);
	assert_string_equal(err, "text 0: NULL");
	assert_int_equal(metrics_merge(b, t, METRICS_MERGE_MAX_TEXTS + 1, err, sizeof(err)),
			 ZG_ERR_INVAL);
	assert_int_equal(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}

/* Bad input: text 1 (text 0 is good) fails with the code and a message
 * naming text 1 and the line. */
static void test_merge_malformed(void **state)
{
	static const struct {
		const char *text;
		int r;
		const char *msg;
	} cases[] = {
		{ "x 1\n", ZG_ERR_MALFORMED, "text 1 line 1: sample x before any # TYPE line" },
		{ "# TYPE a gauge\nb 1\n", ZG_ERR_MALFORMED,
		  "text 1 line 2: sample b outside family a" },
		{ "# TYPE a gauge\na 1e3\n", ZG_ERR_MALFORMED, "line 2: sample a: value \"1e3\"" },
		{ "# TYPE a gauge\na NaN\n", ZG_ERR_MALFORMED, "is not a decimal" },
		{ "# TYPE a gauge\na +Inf\n", ZG_ERR_MALFORMED, "is not a decimal" },
		{ "# TYPE a gauge\na 1 1700000000\n", ZG_ERR_MALFORMED, "is not a decimal" },
		{ "# TYPE a gauge\na 1.\n", ZG_ERR_MALFORMED, "is not a decimal" },
		{ "# TYPE a gauge\na .5\n", ZG_ERR_MALFORMED, "is not a decimal" },
		{ "# TYPE a gauge\na 0.1234567891\n", ZG_ERR_MALFORMED, "is not a decimal" },
		{ "# TYPE a gauge\na 123456789012345678901\n", ZG_ERR_MALFORMED, "not a decimal" },
		{ "# TYPE a gauge\na\n", ZG_ERR_MALFORMED, "line 2: sample a: no value" },
		{ "# TYPE a gauge\na  1\n", ZG_ERR_MALFORMED, "not a decimal" },
		{ "# TYPE a gauge\na{k=\"x} 1\n", ZG_ERR_MALFORMED, "sample a: malformed labels" },
		{ "# TYPE a gauge\na{k=x} 1\n", ZG_ERR_MALFORMED, "malformed labels" },
		{ "# TYPE a gauge\na{k=\"x\"\n", ZG_ERR_MALFORMED, "malformed labels" },
		{ "# TYPE a gauge\na{k=\"\\q\"} 1\n", ZG_ERR_MALFORMED, "malformed labels" },
		{ "# TYPE a gauge\na{1k=\"x\"} 1\n", ZG_ERR_MALFORMED, "malformed labels" },
		{ "# TYPE a gauge\n{k=\"x\"} 1\n", ZG_ERR_MALFORMED, "line 2: not a sample" },
		{ "# TYPE a counter\n", ZG_ERR_MALFORMED,
		  "text 1 line 1: a is a counter here, a gauge in an earlier text" },
		{ "# TYPE a gauge\n# TYPE a gauge\n", ZG_ERR_MALFORMED, "line 2: family a twice" },
		{ "# TYPE a gauge\na 1\na 2\n", ZG_ERR_MALFORMED, "line 3: series a twice" },
		{ "# HELP a A.\na 1\n", ZG_ERR_MALFORMED,
		  "line 2: # HELP a is not followed by its # TYPE" },
		{ "# HELP a A.\n", ZG_ERR_MALFORMED, "# HELP a is not followed" },
		{ "# HELP a A.\n# TYPE b gauge\n", ZG_ERR_MALFORMED,
		  "line 2: # HELP a is followed by the TYPE of b" },
		{ "# HELP 9 x\n", ZG_ERR_MALFORMED, "line 1: # HELP without a metric name" },
		{ "# TYPE u untyped\n", ZG_ERR_MALFORMED, "u: type \"untyped\" is not counter" },
		{ "# TYPE u\n", ZG_ERR_MALFORMED, "# TYPE needs a metric name and a type" },
		{ "# TYPE c_total counter\nc_total -1\n", ZG_ERR_MALFORMED,
		  "sample c_total: negative value in a counter" },
		{ "# TYPE s summary\ns{quantile=\"0.5\"} 1\n", ZG_ERR_MALFORMED,
		  "quantiles cannot be merged" },
		{ "# TYPE s summary\ns_bucket 1\n", ZG_ERR_MALFORMED, "outside family s" },
		{ "# TYPE h histogram\nh 1\n", ZG_ERR_MALFORMED, "sample h outside family h" },
		{ "# TYPE h histogram\nh_total 1\n", ZG_ERR_MALFORMED, "outside family h" },
		/* text 0's histogram a has series a_bucket; here it is a family */
		{ "# TYPE h_bucket gauge\nh_bucket{le=\"1\"} 1\n", ZG_ERR_MALFORMED,
		  "line 2: series h_bucket{le=\"1\"} is in family h in an earlier text" },
	};
	static const char t0[] = "# TYPE a gauge\na 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n";
	char err[256];
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *texts[2] = { t0, cases[i].text };
		char *m = merge(texts, 2, &r, err, sizeof(err));

		if (r != cases[i].r || strstr(err, cases[i].msg) == NULL ||
		    strncmp(err, "text 1 line ", 12) != 0)
			fail_msg("case %zu (%s): %d \"%s\", want %d \"%s\"", i, cases[i].text, r, err,
				 cases[i].r, cases[i].msg);
		assert_null(m);
	}
	/* a good text still merges */
	{
		const char *texts[1] = { t0 };
		char *m = merge_ok(texts, 1);

		free(m);
	}
	/* a sample in text 0's third line */
	{
		const char *texts[1] = { "# TYPE a gauge\na 1\nb 2\n" };

		assert_null(merge(texts, 1, &r, err, sizeof(err)));
		assert_int_equal(r, ZG_ERR_MALFORMED);
		assert_string_equal(err, "text 0 line 3: sample b outside family a (before its "
					 "# TYPE?)");
	}
}

/* A line over METRICS_MERGE_MAX_LINE, and more series than
 * METRICS_MERGE_MAX_SERIES: refused, not grown into. */
static void test_merge_bounds(void **state)
{
	size_t n = METRICS_MERGE_MAX_SERIES + 1, cap = 64 + n * 32, k = 0, i;
	char *t = malloc(cap), err[256];
	const char *texts[1] = { t };
	char *m;
	int r;

	(void)state;
	assert_non_null(t);
	/* a HELP line of exactly the bound is fine, one byte more is not */
	k = (size_t)snprintf(t, cap, "# HELP a ");
	memset(t + k, 'x', METRICS_MERGE_MAX_LINE - k);
	k = METRICS_MERGE_MAX_LINE;
	k += (size_t)snprintf(t + k, cap - k, "\n# TYPE a gauge\na 1\n");
	m = merge_ok(texts, 1);
	assert_string_equal(m, t);
	free(m);
	memmove(t + 1, t, k + 1);
	t[0] = '#'; /* "## HELP a xxx...": a comment line, one byte too long */
	assert_null(merge(texts, 1, &r, err, sizeof(err)));
	assert_int_equal(r, ZG_ERR_TOO_LARGE);
	assert_string_equal(err, "text 0 line 1: longer than 4096 bytes");
	/* the last line, without its newline */
	memset(t, 'a', METRICS_MERGE_MAX_LINE + 1);
	t[METRICS_MERGE_MAX_LINE + 1] = '\0';
	assert_null(merge(texts, 1, &r, err, sizeof(err)));
	assert_int_equal(r, ZG_ERR_TOO_LARGE);

	k = (size_t)snprintf(t, cap, "# TYPE s gauge\n");
	for (i = 0; i < n; i++)
		k += (size_t)snprintf(t + k, cap - k, "s{i=\"%zu\"} 1\n", i);
	assert_null(merge(texts, 1, &r, err, sizeof(err)));
	assert_int_equal(r, ZG_ERR_LIMIT);
	assert_string_equal(err, "text 0 line 100002: more than 100000 series");
	/* the bound itself is fine */
	t[k - strlen(strrchr(t, 's'))] = '\0';
	m = merge_ok(texts, 1);
	assert_string_equal(m, t);
	free(m);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_rules_cover_golden_gauges),
		cmocka_unit_test(test_merge_golden_twice),
		cmocka_unit_test(test_merge_promtool),
		cmocka_unit_test(test_merge_three_label_sets),
		cmocka_unit_test(test_merge_values),
		cmocka_unit_test(test_merge_policy_api_version),
		cmocka_unit_test(test_merge_empty),
		cmocka_unit_test(test_merge_malformed),
		cmocka_unit_test(test_merge_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
