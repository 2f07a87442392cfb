/*
 * Unit tests for src/relay/metrics: the /metrics exposition rendered from
 * a fixed struct, compared byte for byte with tests/golden/metrics.txt,
 * checked by promtool (Debian's prometheus package, installed by make),
 * and its structure (histograms, families, label sums) checked here.
 *
 * When the exposition changes on purpose, regenerate the golden file from
 * the repository's root and review the diff:
 *
 *   make unit TESTS="test_metrics%"   # fails, showing the first difference
 *   ZG_GOLDEN_UPDATE=1 build/tests/test_metrics
 *   git diff tests/golden/metrics.txt fuzz/corpus/fuzz_metrics_merge/
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "golden.h"
#include "histo.h"
#include "relay/metrics.h"
#include "zg_err.h"

#define GOLDEN "tests/golden/metrics.txt"
/* fuzz_metrics_merge's seeds: the golden text, and it twice with a NUL
 * between (two workers' expositions) */
#define SEED "fuzz/corpus/fuzz_metrics_merge/golden"
#define SEED_X2 "fuzz/corpus/fuzz_metrics_merge/golden_x2"

static void write_file(const char *path, const char *a, size_t alen, const char *b, size_t blen)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(a, 1, alen, f), alen);
	if (b != NULL) {
		assert_int_equal(fputc('\0', f), 0);
		assert_int_equal(fwrite(b, 1, blen, f), blen);
	}
	assert_int_equal(fclose(f), 0);
}

/* Every value different, so a value under the wrong label shows. */
static void fixed_values(struct metrics_values *v)
{
	struct stack_counters *sc = &v->stack;
	struct masque_server_stats *q = &v->quic;
	int i;

	memset(v, 0, sizeof(*v));
	v->version = "0.1.0";
	v->commit = "0123456789ab";
	v->open_fds = 17;
	v->max_fds = 65536;
	v->sessions = 3;
	v->quic_connections = 4;
	v->sessions_opened = 5;
	v->sessions_replaced = 2;
	v->refused_400 = 6;
	v->refused_403 = 7;
	v->refused_429 = 8;
	v->refused_500 = 9;
	v->refused_502 = 10;
	v->refused_503 = 11;
	v->dns_queries = 12;
	v->dns_refused_policy = 13;
	v->dns_refused_not_listed = 14;
	v->dns_refused_rate = 15;

	sc->pkts_in = 101;
	sc->pkts_out = 102;
	sc->bytes_in = 103;
	sc->bytes_out = 104;
	sc->drop_malformed = 105;
	sc->drop_spoofed = 106;
	sc->drop_forbidden = 107;
	sc->drop_denied = 108;
	sc->drop_fragment = 109;
	sc->drop_unsupported = 110;
	sc->drop_limit = 111;
	sc->drop_halfopen = 112;
	sc->drop_no_flow = 113;
	sc->drop_too_big = 114;
	sc->icmp_errors_sent = 115;
	sc->rsts_sent = 116;
	sc->errors_ratelimited = 117;
	sc->tcp_refused = 118;
	sc->tcp_unreachable = 119;
	sc->emfile = 120;
	sc->limit_fds = 121;
	sc->limit_fds_client = 122;
	sc->fd_budget = 123;
	sc->fd_budget_client = 124;
	sc->wnd_limited = 125;
	sc->wnd_committed = 126;
	sc->flows_tcp = 127;
	sc->flows_udp = 128;
	sc->flows_icmp = 129;
	sc->halfopen_tcp = 130;
	sc->opened_tcp = 131;
	sc->opened_udp = 132;
	sc->opened_icmp = 133;
	sc->closed_idle = 134;
	sc->tw_reopened = 135;
	sc->tw_evicted = 136;
	sc->tw_refused = 137;
	sc->bytes_up = 138;
	sc->bytes_down = 139;
	sc->ping_unavailable = 140;
	sc->echo_local = 141;
	sc->lwip_mem_used = 142;
	sc->lwip_tcp_chkerr = 143;
	sc->lwip_tcp_proterr = 144;
	sc->lwip_tcp_memerr = 145;
	sc->lwip_tcp_drop = 143 + 144 + 146; /* other = 146 */
	sc->acks_merged = 147;
	zg_histo_observe(&sc->tcp_connect, 0);
	zg_histo_observe(&sc->tcp_connect, 3000);
	zg_histo_observe(&sc->tcp_connect, 3000);
	zg_histo_observe(&sc->tcp_connect, 120000);
	zg_histo_observe(&sc->tcp_connect, 11000000);

	q->accepted = 201;
	q->refused_full = 202;
	q->retries_sent = 203;
	q->stateless_resets = 204;
	q->bad_packets = 205;
	q->refused_handshakes = 206;
	q->refused_source = 207;
	q->retries_source = 208;
	q->deferred = 209;
	q->request_timeouts = 210;
	for (i = 0; i < TLS_REJECT_COUNT; i++)
		q->reject[i] = 210 + (uint64_t)i;
	for (i = 0; i < MASQUE_HS_COUNT; i++)
		q->hs_fail[i] = 240 + (uint64_t)i;
	zg_histo_observe(&q->handshake, 1000);
	zg_histo_observe(&q->handshake, 1001);
	zg_histo_observe(&q->handshake, 45678);
	v->quic_initials_dropped = 260;

	v->out_no_session = 301;
	v->out_too_big = 302;
	v->out_congested = 303;
	v->decisions_allow = 304;
	v->decisions_deny = 305;
	v->cert_not_after = 1893456000;
	v->has_crl = 1;
	v->crl_next_update = 1767225600;
	v->pool4_size = 306;
	v->pool4_used = 307;
	v->has_pool6 = 1;
	v->pool6_size = 308;
	v->pool6_used = 309;
	v->policy_reload_ok = 310;
	v->policy_reload_error = 311;
	v->policy_last_reload_s = 1764806400;
	v->tls_reload_ok = 312;
	v->tls_reload_error = 313;
	v->closed_revoked = 314;
	v->closed_policy = 315;
	v->flows_closed_policy = 316;
	v->audit_lines = 317;
	v->audit_suppressed = 318;
	v->audit_dropped = 319;
	v->has_dnssvc = 1;
	v->dnssvc.allowed = 320;
	v->dnssvc.denied = 321;
	v->dnssvc.rebinding = 322;
	v->dnssvc.servfail = 323;
	v->dnssvc.overload = 324;
	v->dnssvc.malformed = 325;
	v->dnssvc.cache_hits = 326;
	v->dnssvc.cache_entries = 327;
	v->has_ipam_api = 1;
	v->ipam_api_up = 1;
	v->ipam_api_adm_api = 340;
	v->ipam_api_adm_cached = 341;
	v->ipam_api_adm_refused = 342;
	v->ipam_api_requests = 343;
	v->ipam_api_failures = 344;
	v->ipam_api_retries = 345;
	v->ipam_api_connects = 346;
	v->ipam_api_refreshes = 347;
	v->ipam_api_pending = 348;
	v->ipam_api_realloc_kept = 349;
	v->ipam_api_realloc_closed = 350;
	v->ipam_api_realloc_unreachable = 351;
	v->has_policy_api = 1;
	v->policy_api_version = 352;
	v->policy_api_fetches[0] = 353;
	v->policy_api_fetches[1] = 354;
	v->policy_api_fetches[2] = 355;
	v->policy_api_fetches[3] = 356;
	v->dnssvc.upstream_tcp = 328;
	v->dnssvc.held = 333;
	zg_histo_observe(&v->dnssvc.upstream, 800);
	zg_histo_observe(&v->dnssvc.upstream, 25000);
	v->dnssvc.names.bindings = 329;
	v->dnssvc.names.learned = 330;
	v->dnssvc.names.expired = 331;
	v->dnssvc.names.cap_hits = 332;
}

/* The exposition of v, NUL-terminated; the caller frees it. */
static char *render(const struct metrics_values *v)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	assert_non_null(b);
	assert_int_equal(metrics_write(b, v), 0);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	assert_non_null(s);
	assert_int_equal(evbuffer_remove(b, s, n), (int)n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static void test_metrics_golden(void **state)
{
	struct metrics_values v;
	char *got, *want;
	size_t wlen = 0, i, line = 1, ls = 0;

	(void)state;
	fixed_values(&v);
	got = render(&v);
	if (getenv("ZG_GOLDEN_UPDATE") != NULL) {
		write_file(GOLDEN, got, strlen(got), NULL, 0);
		write_file(SEED, got, strlen(got), NULL, 0);
		write_file(SEED_X2, got, strlen(got), got, strlen(got));
		print_message("rewrote %s, %s and %s\n", GOLDEN, SEED, SEED_X2);
	}
	want = golden_read(GOLDEN, &wlen);
	for (i = 0; got[i] != '\0' && i < wlen && got[i] == want[i]; i++) {
		if (got[i] == '\n') {
			line++;
			ls = i + 1;
		}
	}
	if (i != wlen || got[i] != '\0')
		fail_msg("%s differs at line %zu:\n  got:  %.*s\n  want: %.*s\n(to accept the new "
			 "text: ZG_GOLDEN_UPDATE=1 build/tests/test_metrics)",
			 GOLDEN, line, (int)strcspn(got + ls, "\n"), got + ls,
			 (int)strcspn(want + ls, "\n"), want + ls);
	free(got);
	free(want);
}

/* fuzz_metrics_merge starts from the exposition as it is: its seeds are
 * the golden file (rewritten with it), alone and twice. */
static void test_metrics_fuzz_seeds_follow_golden(void **state)
{
	char *g, *seed, *x2;
	size_t glen = 0, slen = 0, xlen = 0;

	(void)state;
	g = golden_read(GOLDEN, &glen);
	seed = golden_read(SEED, &slen);
	x2 = golden_read(SEED_X2, &xlen);
	if (slen != glen || memcmp(seed, g, glen) != 0)
		fail_msg("%s is not %s (ZG_GOLDEN_UPDATE=1 build/tests/test_metrics rewrites both)",
			 SEED, GOLDEN);
	if (xlen != 2 * glen + 1 || memcmp(x2, g, glen) != 0 || x2[glen] != '\0' ||
	    memcmp(x2 + glen + 1, g, glen) != 0)
		fail_msg("%s is not %s twice with a NUL between (ZG_GOLDEN_UPDATE=1 "
			 "build/tests/test_metrics rewrites it)",
			 SEED_X2, GOLDEN);
	free(g);
	free(seed);
	free(x2);
}

/* promtool (the Prometheus project's checker) accepts the golden file:
 * the format parses and the names follow the naming rules. */
static void test_metrics_promtool_golden(void **state)
{
	int rc;

	(void)state;
	if (system("command -v promtool >/dev/null") != 0)
		fail_msg("promtool not found: install Debian's prometheus package (make deps does)");
	rc = system("promtool check metrics < " GOLDEN);
	assert_int_equal(rc, 0);
}

/* The base name of a sample line (up to '{' or ' '). */
static size_t sample_name(const char *l, char *name, size_t len)
{
	size_t n = strcspn(l, "{ ");

	assert_true(n < len);
	memcpy(name, l, n);
	name[n] = '\0';
	return n;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Every sample follows its own family's TYPE line (families contiguous,
 * none twice), every counter ends in _total, and histograms have
 * cumulative buckets ending with +Inf = _count. */
static void check_structure(const char *text)
{
	char fam[128] = "", type[16] = "", name[128], seen[8192] = " ";
	const char *l, *nl;
	unsigned long long last_bucket = 0;
	int have_inf = 0;
	size_t n;

	for (l = text; *l != '\0'; l = nl + 1) {
		nl = strchr(l, '\n');
		assert_non_null(nl);
		if (strncmp(l, "# TYPE ", 7) == 0) {
			char key[140];

			assert_int_equal(sscanf(l, "# TYPE %127s %15s", fam, type), 2);
			(void)snprintf(key, sizeof(key), " %s ", fam);
			if (strstr(seen, key) != NULL)
				fail_msg("family %s appears twice", fam);
			n = strlen(seen);
			assert_true(n + strlen(fam) + 2 < sizeof(seen));
			(void)snprintf(seen + n, sizeof(seen) - n, "%s ", fam);
			if (strcmp(type, "counter") == 0 && !ends_with(fam, "_total"))
				fail_msg("counter %s does not end in _total", fam);
			last_bucket = 0;
			have_inf = 0;
			continue;
		}
		if (l[0] == '#')
			continue;
		sample_name(l, name, sizeof(name));
		if (strcmp(type, "histogram") == 0) {
			unsigned long long v = strtoull(strrchr(l, ' ') + 1, NULL, 10);
			size_t fl = strlen(fam);

			if (strncmp(name, fam, fl) != 0 ||
			    (strcmp(name + fl, "_bucket") != 0 && strcmp(name + fl, "_sum") != 0 &&
			     strcmp(name + fl, "_count") != 0))
				fail_msg("sample %s outside its family %s", name, fam);
			if (strcmp(name + fl, "_bucket") == 0) {
				if (v < last_bucket)
					fail_msg("%s: buckets not cumulative", fam);
				last_bucket = v;
				have_inf = strstr(l, "le=\"+Inf\"") != NULL;
			} else if (strcmp(name + fl, "_count") == 0) {
				assert_true(have_inf);
				assert_int_equal(v, last_bucket);
			}
		} else if (strcmp(name, fam) != 0) {
			fail_msg("sample %s outside its family %s (after its TYPE line?)", name, fam);
		}
	}
}

static void test_metrics_structure(void **state)
{
	struct metrics_values v;
	char *s;

	(void)state;
	fixed_values(&v);
	s = render(&v);
	check_structure(s);
	free(s);
	/* without IPv6 pool, CRL, descriptor counts: still well formed */
	v.has_pool6 = 0;
	v.has_crl = 0;
	v.open_fds = -1;
	v.max_fds = -1;
	s = render(&v);
	check_structure(s);
	assert_null(strstr(s, "version=\"6\""));
	assert_null(strstr(s, "zgate_tls_crl_next_update_timestamp_seconds"));
	assert_null(strstr(s, "process_open_fds"));
	free(s);
}

/* Issue 17.5: no label value is the sum of the others (reason="all" made
 * sum() count every segment twice); "other" is lwIP's drops less the
 * checksum and protocol errors it counts too, never below zero. */
static void test_metrics_lwip_drops_add_up(void **state)
{
	struct metrics_values v;
	char *s;

	(void)state;
	fixed_values(&v);
	s = render(&v);
	assert_null(strstr(s, "reason=\"all\""));
	assert_non_null(strstr(s, "zgate_lwip_tcp_drops_total{reason=\"other\"} 146\n"));
	free(s);
	v.stack.lwip_tcp_drop = 10; /* torn read: less than its parts */
	s = render(&v);
	assert_non_null(strstr(s, "zgate_lwip_tcp_drops_total{reason=\"other\"} 0\n"));
	free(s);
}

/* Issue 17.5: one direction vocabulary, up/down, for bytes and packets. */
static void test_metrics_directions(void **state)
{
	struct metrics_values v;
	char *s;

	(void)state;
	fixed_values(&v);
	s = render(&v);
	assert_null(strstr(s, "direction=\"in\""));
	assert_null(strstr(s, "direction=\"out\""));
	assert_non_null(strstr(s, "zgate_packets_total{direction=\"up\"} 101\n"));
	assert_non_null(strstr(s, "zgate_packets_total{direction=\"down\"} 102\n"));
	assert_non_null(strstr(s, "zgate_bytes_total{direction=\"up\"} 138\n"));
	assert_non_null(strstr(s, "zgate_tunnel_bytes_total{direction=\"down\"} 104\n"));
	free(s);
}

static void test_metrics_histogram(void **state)
{
	struct metrics_values v;
	char *s;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.open_fds = v.max_fds = -1;
	zg_histo_observe(&v.quic.handshake, 1000);     /* le 0.001: bounds are inclusive */
	zg_histo_observe(&v.quic.handshake, 1001);     /* le 0.0025 */
	zg_histo_observe(&v.quic.handshake, 10000000); /* le 10 */
	zg_histo_observe(&v.quic.handshake, 10000001); /* +Inf only */
	s = render(&v);
	assert_non_null(strstr(s, "# TYPE zgate_quic_handshake_seconds histogram\n"
				  "zgate_quic_handshake_seconds_bucket{le=\"0.001\"} 1\n"
				  "zgate_quic_handshake_seconds_bucket{le=\"0.0025\"} 2\n"
				  "zgate_quic_handshake_seconds_bucket{le=\"0.005\"} 2\n"));
	assert_non_null(strstr(s, "zgate_quic_handshake_seconds_bucket{le=\"5\"} 2\n"
				  "zgate_quic_handshake_seconds_bucket{le=\"10\"} 3\n"
				  "zgate_quic_handshake_seconds_bucket{le=\"+Inf\"} 4\n"
				  "zgate_quic_handshake_seconds_sum 20.002002\n"
				  "zgate_quic_handshake_seconds_count 4\n"));
	assert_non_null(strstr(s, "zgate_flow_setup_seconds_sum 0\n"
				  "zgate_flow_setup_seconds_count 0\n"));
	free(s);
}

static void test_metrics_build_info_escaped(void **state)
{
	struct metrics_values v;
	char *s;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.open_fds = v.max_fds = -1;
	v.version = "1.0\"x\\y\n";
	s = render(&v);
	assert_non_null(strstr(s, "zgate_build_info{version=\"1.0\\\"x\\\\y\\n\","
				  "commit=\"unknown\"} 1\n"));
	free(s);
}

static void test_metrics_process_fds(void **state)
{
	char dir[] = "/tmp/zg-metrics-XXXXXX", p[64];
	long long open1, open2, max;
	struct rlimit rl;
	int fd, i;

	(void)state;
	/* a directory of three entries: three "descriptors" */
	assert_non_null(mkdtemp(dir));
	for (i = 0; i < 3; i++) {
		(void)snprintf(p, sizeof(p), "%s/f%d", dir, i);
		fd = open(p, O_CREAT | O_WRONLY, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	metrics_process_fds(dir, &open1, &max);
	assert_int_equal(open1, 3);
	for (i = 0; i < 3; i++) {
		(void)snprintf(p, sizeof(p), "%s/f%d", dir, i);
		unlink(p);
	}
	rmdir(dir);
	/* this process: one more descriptor, one more counted */
	metrics_process_fds("/proc/self/fd", &open1, &max);
	fd = open("/dev/null", O_RDONLY);
	assert_true(fd >= 0);
	metrics_process_fds("/proc/self/fd", &open2, &max);
	close(fd);
	assert_true(open1 >= 3);
	assert_int_equal(open2, open1 + 1);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(max, (long long)rl.rlim_cur);
	metrics_process_fds("/nonexistent/fd", &open1, &max);
	assert_int_equal(open1, -1);
}

static void test_histo_observe_bounds(void **state)
{
	struct zg_histo h;
	size_t i;

	(void)state;
	memset(&h, 0, sizeof(h));
	for (i = 0; i < ZG_HISTO_BOUNDS; i++)
		zg_histo_observe(&h, zg_histo_bounds_us[i]);
	zg_histo_observe(&h, zg_histo_bounds_us[ZG_HISTO_BOUNDS - 1] + 1);
	for (i = 0; i <= ZG_HISTO_BOUNDS; i++)
		assert_int_equal(h.n[i], 1);
	assert_int_equal(h.count, ZG_HISTO_BOUNDS + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_golden),
		cmocka_unit_test(test_metrics_fuzz_seeds_follow_golden),
		cmocka_unit_test(test_metrics_promtool_golden),
		cmocka_unit_test(test_metrics_structure),
		cmocka_unit_test(test_metrics_lwip_drops_add_up),
		cmocka_unit_test(test_metrics_directions),
		cmocka_unit_test(test_metrics_histogram),
		cmocka_unit_test(test_metrics_build_info_escaped),
		cmocka_unit_test(test_metrics_process_fds),
		cmocka_unit_test(test_histo_observe_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
