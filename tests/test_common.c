/* Unit tests for src/common: error names and log level parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <dirent.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "atomicfile.h"
#include "cksum.h"
#include "filesig.h"
#include "fnv.h"
#include "hostport.h"
#include "yamlcfg.h"
#include "log.h"
#include "opt.h"
#include "zg_err.h"

/* Entries of dir other than . and .. */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* atomic_write(): the pieces in order, the mode asked, the old content
 * replaced whole; on failure a message naming the path and the step, the
 * old file untouched and no temporary file left. */
static void test_atomic_write(void **state)
{
	char dir[] = "/tmp/zg-atomic-XXXXXX", path[128], sub[160], buf[64], err[512];
	const char *p[3] = { "# head\n", "", "body" };
	size_t len[3] = { 7, 0, 4 };
	struct stat st;
	ssize_t n;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(atomic_write(path, 0640, p, len, 3, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, 11);
	assert_memory_equal(buf, "# head\nbody", 11);
	/* replaced by a shorter one, whole */
	len[0] = 2;
	assert_int_equal(atomic_write(path, 0600, p, len, 1, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 2);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(entries(dir), 1);
	/* the rename fails (a non-empty directory is in the way) */
	(void)snprintf(sub, sizeof(sub), "%s/d", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	(void)snprintf(sub, sizeof(sub), "%s/d/x", dir);
	assert_int_equal(atomic_write(sub, 0600, p, len, 1, err, sizeof(err)), 0);
	(void)snprintf(sub, sizeof(sub), "%s/d", dir);
	assert_int_equal(atomic_write(sub, 0600, p, len, 1, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, sub));
	assert_non_null(strstr(err, "cannot rename"));
	assert_non_null(strstr(err, "into place"));
	assert_int_equal(entries(dir), 2); /* f and d: no temporary file left */
	/* the directory does not exist */
	(void)snprintf(sub, sizeof(sub), "%s/none/f", dir);
	assert_int_equal(atomic_write(sub, 0600, p, len, 1, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "cannot create a temporary file"));
	assert_non_null(strstr(err, "No such file or directory"));
	/* clean up */
	(void)snprintf(sub, sizeof(sub), "%s/d/x", dir);
	assert_int_equal(unlink(sub), 0);
	(void)snprintf(sub, sizeof(sub), "%s/d", dir);
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_strerror_every_code_named(void **state)
{
	(void)state;
	for (int e = 0; e > ZG_ERR_LAST; e--) {
		const char *s = zg_strerror(e);
		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
		/* names are distinct */
		for (int f = 0; f > e; f--)
			assert_string_not_equal(s, zg_strerror(f));
	}
}

static void test_strerror_unknown(void **state)
{
	(void)state;
	assert_string_equal(zg_strerror(1), "unknown error");
	assert_string_equal(zg_strerror(ZG_ERR_LAST), "unknown error");
	assert_string_equal(zg_strerror(-1000), "unknown error");
}

static void test_log_level_parse(void **state)
{
	enum log_level l = LOG_LVL_ERROR;
	(void)state;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("verbose", &l), ZG_ERR_INVAL);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("", &l), ZG_ERR_INVAL);
}

/* Runs fn with stderr redirected to a temporary file; returns what it wrote. */
static void capture_stderr(void (*fn)(void), char *out, size_t outsz)
{
	FILE *tmp = tmpfile();
	int saved;
	size_t n;

	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, outsz - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
}

static void emit_info_and_warn(void)
{
	log_info("info line %d", 1);
	errno = ENOENT;
	log_warn("warn line %s", "two");
	log_warnx("plain");
}

static void test_log_level_filters(void **state)
{
	char buf[2048];
	(void)state;

	log_set_level(LOG_LVL_WARN);
	assert_int_equal(log_get_level(), LOG_LVL_WARN);
	capture_stderr(emit_info_and_warn, buf, sizeof(buf));
	assert_null(strstr(buf, "info line"));
	assert_non_null(strstr(buf, " warn warn line two: No such file or directory\n"));
	assert_non_null(strstr(buf, " warn plain\n"));

	log_set_level(LOG_LVL_INFO);
	capture_stderr(emit_info_and_warn, buf, sizeof(buf));
	assert_non_null(strstr(buf, " info info line 1\n"));
	/* lines are for operators: no C function name below debug */
	assert_null(strstr(buf, "emit_info_and_warn"));
}

static void emit_debug(void)
{
	log_debug("debug line");
}

/* The function name stays in debug lines, where developers look. */
static void test_log_debug_keeps_function(void **state)
{
	char buf[512];

	(void)state;
	log_set_level(LOG_LVL_DEBUG);
	capture_stderr(emit_debug, buf, sizeof(buf));
	log_set_level(LOG_LVL_INFO);
	assert_non_null(strstr(buf, " debug emit_debug: debug line\n"));
}

static void test_opt_durations(void **state)
{
	uint32_t ms = 1;

	(void)state;
	assert_int_equal(opt_parse_duration("0", &ms), 0); /* zero needs no unit */
	assert_int_equal(ms, 0);
	assert_int_equal(opt_parse_duration("0s", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(opt_parse_duration("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(opt_parse_duration("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(opt_parse_duration("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(opt_parse_duration("1193h", &ms), 0);
	assert_int_equal(opt_parse_duration("1194h", &ms), ZG_ERR_CONFIG); /* > 2^32 ms */
	assert_int_equal(opt_parse_duration("10", &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration("s", &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration("-1s", &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration("1.5s", &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration("5 s", &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration("", &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration("99999999999999999999s", &ms), ZG_ERR_CONFIG);
}

static void test_opt_names_bools_usage(void **state)
{
	char out[64], buf[512];
	int b = -1;
	size_t n, m;

	(void)state;
	opt_name("timeouts.udp_idle", 0, out, sizeof(out));
	assert_string_equal(out, "timeouts-udp-idle");
	opt_name("timeouts.udp_idle", 1, out, sizeof(out));
	assert_string_equal(out, "ZGATE_TIMEOUTS_UDP_IDLE");
	opt_name("status_file", 1, out, 10); /* cut, terminated */
	assert_string_equal(out, "ZGATE_STA");
	opt_name("x", 1, out, 3);
	assert_string_equal(out, "ZG");
	assert_int_equal(opt_parse_bool("yes", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(opt_parse_bool("off", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(opt_parse_bool("maybe", &b), ZG_ERR_CONFIG);
	{
		uint64_t v = 7;

		assert_int_equal(opt_parse_uint("1280", 1280, 65535, &v), 0);
		assert_int_equal(v, 1280);
		assert_int_equal(opt_parse_uint("1279", 1280, 65535, &v), ZG_ERR_CONFIG);
		assert_int_equal(opt_parse_uint("65536", 1280, 65535, &v), ZG_ERR_CONFIG);
		assert_int_equal(opt_parse_uint("+5", 0, 9, &v), ZG_ERR_CONFIG);
		assert_int_equal(opt_parse_uint("5x", 0, 9, &v), ZG_ERR_CONFIG);
		assert_int_equal(opt_parse_uint("", 0, 9, &v), ZG_ERR_CONFIG);
		assert_int_equal(opt_parse_uint("99999999999999999999", 0, UINT64_MAX, &v),
				 ZG_ERR_CONFIG);
		assert_int_equal(v, 1280);
	}
	assert_int_equal(opt_require("x", "tls.cert", buf, sizeof(buf)), 0);
	assert_int_equal(opt_require("", "tls.cert", buf, sizeof(buf)), ZG_ERR_CONFIG);
	assert_string_equal(buf, "tls.cert: required; set it in the file, with --tls-cert or with "
				 "ZGATE_TLS_CERT");
	n = opt_usage_entry(buf, sizeof(buf), 0, "reconnect_max", "DURATION", "back off", "30s");
	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf, "  --reconnect-max DURATION\n      back off.\n      File key "
				 "reconnect_max, variable ZGATE_RECONNECT_MAX, default \"30s\".\n");
	/* appended at an offset; past the end it only counts */
	m = opt_usage_entry(buf, sizeof(buf), n, "tun", "NAME", "device", "");
	assert_int_equal(m, strlen(buf) - n);
	assert_string_equal(buf + n, "  --tun NAME\n      device.\n      File key tun, variable ZGATE_TUN.\n");
	assert_int_equal(opt_usage_entry(buf, 10, 20, "tun", "NAME", "device", ""), m);
}

/* FNV-1a: the published 32-bit vectors; the 64-bit hash with the
 * project's own offset basis (fnv.h). The placements that must match on
 * every relay (ipam, zgate-api) depend on these exact values. */
static void test_fnv_vectors(void **state)
{
	(void)state;
	assert_int_equal(fnv32_str(""), 0x811c9dc5u);
	assert_int_equal(fnv32_str("a"), 0xe40c292cu);
	assert_int_equal(fnv32_str("foobar"), 0xbf9cf968u);
	assert_true(fnv64_str("") == UINT64_C(0x14650fb0739d0383));
	assert_true(fnv64_str("a") == UINT64_C(0x44bd8ad473cd9906));
	assert_true(fnv64_str("foobar") == UINT64_C(0x88fad7c0a8ff07f2));
	/* bytes and strings agree, and a hash can be continued */
	assert_int_equal(fnv32_bytes(FNV32_INIT, "foobar", 6), fnv32_str("foobar"));
	assert_true(fnv64_bytes(fnv64_bytes(FNV64_INIT, "foo", 3), "bar", 3) == fnv64_str("foobar"));
}

/* The word-at-a-time sum equals the plain 16-bit big-endian sum of RFC
 * 1071 for every length (odd ones padded), alignment and starting sum. */
static uint16_t cksum_ref(uint32_t s, const uint8_t *p, size_t n)
{
	uint64_t r = s;

	for (; n > 1; p += 2, n -= 2)
		r += (uint64_t)(p[0] << 8 | p[1]);
	if (n)
		r += (uint64_t)p[0] << 8;
	while (r >> 16)
		r = (r & 0xffff) + (r >> 16);
	return (uint16_t)~r;
}

static void test_cksum_matches_reference(void **state)
{
	static uint8_t buf[1600];
	uint32_t x = 12345, s;
	size_t len, off;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (len = 0; len <= 80; len++) {
		for (off = 0; off < 8; off++) {
			s = (uint32_t)len * 2654435761u;
			s &= 0x1ffffu;
			assert_int_equal(cksum_fold(cksum_add(s, buf + off, len)),
					 cksum_ref(s, buf + off, len));
		}
	}
	for (len = 1400; len <= 1500; len++)
		assert_int_equal(cksum_fold(cksum_add(0, buf + 3, len)), cksum_ref(0, buf + 3, len));
	/* all ones and all zeros (the +0 / -0 corner of one's complement) */
	memset(buf, 0xff, sizeof(buf));
	for (len = 0; len <= 40; len++)
		assert_int_equal(cksum_fold(cksum_add(0, buf, len)), cksum_ref(0, buf, len));
	/* the largest lwIP buffer, all ones, from a nearly full starting
	 * sum: the most every fold sees in one packet */
	{
		static uint8_t big[65535];

		memset(big, 0xff, sizeof(big));
		for (len = sizeof(big) - 8; len <= sizeof(big); len++)
			assert_int_equal(cksum_fold(cksum_add(0xfffeffffu, big, len)),
					 cksum_ref(0xfffeffffu, big, len));
	}
	memset(buf, 0, sizeof(buf));
	for (len = 0; len <= 40; len++)
		assert_int_equal(cksum_fold(cksum_add(0, buf, len)), cksum_ref(0, buf, len));
	/* a packet with its checksum in place sums to zero */
	buf[0] = 0x45;
	buf[9] = 17;
	{
		uint16_t c = cksum_fold(cksum_add(0, buf, 20));

		buf[10] = (uint8_t)(c >> 8);
		buf[11] = (uint8_t)c;
		assert_int_equal(cksum_fold(cksum_add(0, buf, 20)), 0);
	}
}

/* One Internet checksum serves the stack (any packet length) and the
 * agent (64 KiB segments on a running sum): it must not overflow. */
static void test_cksum_long_input_no_overflow(void **state)
{
	static uint8_t buf[200001];
	uint64_t ref = 0xfffe;

	(void)state;
	memset(buf, 0xff, sizeof(buf));
	buf[7] = 0x12;
	for (size_t i = 0; i + 1 < sizeof(buf); i += 2)
		ref += (uint64_t)(buf[i] << 8 | buf[i + 1]);
	ref += (uint64_t)buf[sizeof(buf) - 1] << 8;
	while (ref >> 16)
		ref = (ref & 0xffff) + (ref >> 16);
	assert_int_equal(cksum_fold(cksum_add(0xfffe, buf, sizeof(buf))), (uint16_t)~ref);
	/* RFC 1071's example words 0001 f203 f4f5 f6f7: sum ddf2, checksum 220d */
	{
		static const uint8_t w[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

		assert_int_equal(cksum_fold(cksum_add(0, w, sizeof(w))), 0x220d);
	}
}

/* 16.8a: a peer's close reason "x\n<forged line>" stays on one line. */
static void test_log_escape_forged_close_reason(void **state)
{
	static const char forged[] = "bye\n2024-01-01T00:00:00.000Z info on_close: tunnel open: admin";
	char buf[256];
	(void)state;
	log_escape_n(forged, sizeof(forged) - 1, buf, sizeof(buf));
	assert_null(strchr(buf, '\n'));
	assert_string_equal(buf, "bye\\n2024-01-01T00:00:00.000Z info on_close: tunnel open: admin");
	/* an embedded NUL, CR, ESC (terminal control), DEL and backslash */
	log_escape_n("a\0b\r\x1b[2Jc\x7f\\", 11, buf, sizeof(buf));
	assert_string_equal(buf, "a\\x00b\\r\\x1b[2Jc\\x7f\\\\");
	assert_string_equal(log_escape(NULL, buf, sizeof(buf)), "");
}

static void test_log_escape_utf8(void **state)
{
	char buf[64];
	(void)state;
	/* well-formed UTF-8 is kept */
	assert_string_equal(log_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92", buf, sizeof(buf)),
			    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92");
	/* not UTF-8: stray continuation, overlong '/', surrogate, truncated, > U+10FFFF */
	assert_string_equal(log_escape("\x80", buf, sizeof(buf)), "\\x80");
	assert_string_equal(log_escape("\xc0\xaf", buf, sizeof(buf)), "\\xc0\\xaf");
	assert_string_equal(log_escape("\xed\xa0\x80", buf, sizeof(buf)), "\\xed\\xa0\\x80");
	assert_string_equal(log_escape("\xe2\x82", buf, sizeof(buf)), "\\xe2\\x82");
	assert_string_equal(log_escape("\xf4\x90\x80\x80", buf, sizeof(buf)), "\\xf4\\x90\\x80\\x80");
	/* C1 CSI, line separator and a right-to-left override are shown escaped */
	assert_string_equal(log_escape("a\xc2\x9b"
				       "b\xe2\x80\xa8"
				       "c\xe2\x80\xae"
				       "d",
				       buf, sizeof(buf)),
			    "a\\u{009b}b\\u{2028}c\\u{202e}d");
}

static void test_log_escape_truncates_on_boundaries(void **state)
{
	char buf[9];
	(void)state;
	assert_string_equal(log_escape("abcdefg", buf, 8), "abcdefg");
	assert_string_equal(log_escape("abcdefgh", buf, 8), "abcd...");
	/* an escape is never cut in half */
	assert_string_equal(log_escape("abc\n\n\n", buf, 8), "abc...");
	/* nor a UTF-8 character */
	assert_string_equal(log_escape("ab\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", buf, 9), "ab\xe2\x82\xac...");
	assert_string_equal(log_escape("ab\xe2\x82\xac\xe2\x82\xac", buf, 8), "ab...");
	assert_string_equal(log_escape("abcdef", buf, 4), "...");
	buf[0] = 'x';
	assert_string_equal(log_escape("a", buf, 3), "");
}

/* hostport_format: the inverse of hostport_split, brackets for IPv6. */
static void test_hostport_format(void **state)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(4433) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	struct sockaddr sa = { .sa_family = AF_UNIX };
	char buf[64], host[64];
	uint16_t port;

	(void)state;
	inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
	hostport_format((struct sockaddr *)&a4, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.7:4433");
	hostport_format((struct sockaddr *)&a6, buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::1]:443");
	assert_int_equal(hostport_split(buf, host, sizeof(host), &port), 0);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 443);
	hostport_format(&sa, buf, sizeof(buf));
	assert_string_equal(buf, "?");
	hostport_format((struct sockaddr *)&a4, buf, 8); /* truncated, terminated */
	assert_string_equal(buf, "192.0.2");
}

/* yamlcfg_read_file: the limit is 1 MiB exactly; errors name the file. */
static void test_yamlcfg_read_file(void **state)
{
	char path[] = "/tmp/zg-yamlcfg-XXXXXX", err[256], *buf = NULL;
	size_t n = 0;
	FILE *f;
	int fd;

	(void)state;
	assert_int_equal(yamlcfg_read_file("/nonexistent/x.yaml", &buf, &n, err, sizeof(err)),
			 ZG_ERR_IO);
	assert_string_equal(err, "/nonexistent/x.yaml: cannot open: No such file or directory");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(yamlcfg_read_file(path, &buf, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(buf[0], '\0');
	free(buf);
	f = fopen(path, "wb");
	assert_non_null(f);
	for (size_t i = 0; i < YAMLCFG_MAX_FILE; i++)
		fputc(i % 64 ? 'a' : '\n', f);
	fclose(f);
	assert_int_equal(yamlcfg_read_file(path, &buf, &n, err, sizeof(err)), 0);
	assert_int_equal(n, YAMLCFG_MAX_FILE);
	assert_int_equal(buf[n], '\0');
	assert_int_equal(buf[1], 'a');
	free(buf);
	f = fopen(path, "ab");
	fputc('a', f);
	fclose(f);
	buf = NULL;
	assert_int_equal(yamlcfg_read_file(path, &buf, &n, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_null(buf);
	assert_non_null(strstr(err, ": larger than 1 MiB"));
	unlink(path);
	/* a read that fails (sysfs: EINVAL for lo's speed) is an error, not
	 * the part read so far; skipped where that file reads or is absent */
	buf = NULL;
	fd = open("/sys/class/net/lo/speed", O_RDONLY);
	if (fd >= 0 && read(fd, err, sizeof(err)) < 0) {
		assert_int_equal(yamlcfg_read_file("/sys/class/net/lo/speed", &buf, &n, err,
						   sizeof(err)),
				 ZG_ERR_IO);
		assert_string_equal(err, "/sys/class/net/lo/speed: read error: Invalid argument");
		assert_null(buf);
	}
	if (fd >= 0)
		close(fd);
}

static int count_mapping(void *ctx, yaml_parser_t *p, const char *name, char *err,
			 size_t errlen)
{
	yaml_event_t ev;
	int depth = 1;

	(void)name;
	(void)err;
	(void)errlen;
	while (depth > 0) {
		if (!yaml_parser_parse(p, &ev))
			return ZG_ERR_CONFIG;
		if (ev.type == YAML_MAPPING_START_EVENT)
			depth++;
		else if (ev.type == YAML_MAPPING_END_EVENT)
			depth--;
		else if (ev.type == YAML_SCALAR_EVENT)
			++*(int *)ctx;
		yaml_event_delete(&ev);
	}
	return 0;
}

/* yamlcfg_load: one document whose top level is a mapping, or nothing. */
static void test_yamlcfg_load(void **state)
{
	static const char *bad[][2] = {
		{ "a: 1\n---\nb: 2\n", "f.yaml:2:1: only one YAML document is allowed" },
		{ "- a\n", "f.yaml:1:1: the top level must be a mapping of keys, found a list" },
		{ "plain\n", "f.yaml:1:1: the top level must be a mapping of keys, found a value" },
		{ "\"abc\n", "f.yaml:2:1: not valid YAML: found unexpected end of stream" },
	};
	char err[256];
	int n = 0;

	(void)state;
	assert_int_equal(yamlcfg_load("f.yaml", "a: 1\nb: {c: 2}\n", 15, count_mapping, &n, err,
				      sizeof(err)),
			 0);
	assert_int_equal(n, 5); /* a 1 b c 2 */
	n = 0;
	assert_int_equal(yamlcfg_load("f.yaml", "", 0, count_mapping, &n, err, sizeof(err)), 0);
	assert_int_equal(yamlcfg_load("f.yaml", "# nothing\n", 10, count_mapping, &n, err,
				      sizeof(err)),
			 0);
	assert_int_equal(n, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(yamlcfg_load("f.yaml", bad[i][0], strlen(bad[i][0]), count_mapping,
					      &n, err, sizeof(err)),
				 ZG_ERR_CONFIG);
		if (strncmp(err, bad[i][1], strlen(bad[i][1])) != 0)
			fail_msg("%s: got \"%s\", want \"%s...\"", bad[i][0], err, bad[i][1]);
	}
}

/* filesig: a missing file is a version; created, rewritten in place with
 * the same size, renamed over or only touched is another each time; the
 * same version read twice is equal. */
static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_filesig_versions(void **state)
{
	char dir[] = "/tmp/zg-filesig-XXXXXX", path[64], tmp[64];
	struct filesig a, b;
	struct timespec later[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/crl.pem", dir);
	snprintf(tmp, sizeof(tmp), "%s/crl.pem.new", dir);

	filesig_of(path, &a);
	assert_int_equal(a.err, ENOENT);
	filesig_of(path, &b);
	assert_true(filesig_eq(&a, &b)); /* still missing: no change */

	write_file(path, "one");
	filesig_of(path, &b);
	assert_int_equal(b.err, 0);
	assert_false(filesig_eq(&a, &b)); /* it appeared */
	filesig_of(path, &a);
	assert_true(filesig_eq(&a, &b)); /* the same version, read twice */

	/* rewritten in place, same size: the modification time says so (set
	 * it a second on, as a fast rewrite can share the timestamp) */
	write_file(path, "two");
	later[1].tv_sec = a.mtim.tv_sec + 1;
	later[1].tv_nsec = a.mtim.tv_nsec;
	assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
	filesig_of(path, &b);
	assert_false(filesig_eq(&a, &b));

	/* renamed over the path: a new inode */
	filesig_of(path, &a);
	write_file(tmp, "two");
	assert_int_equal(rename(tmp, path), 0);
	filesig_of(path, &b);
	assert_false(filesig_eq(&a, &b));

	/* only its mode changed: the change time moves */
	filesig_of(path, &a);
	usleep(20000);
	assert_int_equal(chmod(path, 0600), 0);
	filesig_of(path, &b);
	assert_false(filesig_eq(&a, &b));

	/* gone again: a change, and a version of its own */
	assert_int_equal(unlink(path), 0);
	filesig_of(path, &a);
	assert_false(filesig_eq(&a, &b));
	assert_int_equal(a.err, ENOENT);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_every_code_named),
		cmocka_unit_test(test_strerror_unknown),
		cmocka_unit_test(test_log_level_parse),
		cmocka_unit_test(test_log_level_filters),
		cmocka_unit_test(test_log_debug_keeps_function),
		cmocka_unit_test(test_opt_durations),
		cmocka_unit_test(test_cksum_long_input_no_overflow),
		cmocka_unit_test(test_cksum_matches_reference),
		cmocka_unit_test(test_fnv_vectors),
		cmocka_unit_test(test_filesig_versions),
		cmocka_unit_test(test_opt_names_bools_usage),
		cmocka_unit_test(test_hostport_format),
		cmocka_unit_test(test_yamlcfg_read_file),
		cmocka_unit_test(test_yamlcfg_load),
		cmocka_unit_test(test_log_escape_forged_close_reason),
		cmocka_unit_test(test_log_escape_utf8),
		cmocka_unit_test(test_log_escape_truncates_on_boundaries),
		cmocka_unit_test(test_atomic_write),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
