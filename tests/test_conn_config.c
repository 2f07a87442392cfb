/*
 * test_conn_config.c — zgate-connector's configuration file: a valid file
 * with every key, the defaults, and each bad value named by file, line,
 * column and key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/conn_config.h"
#include "zg_err.h"

#define BASE                                                       \
	"relays: [\"relay-a.test:4433\", \"relay-b.test:4433\"]\n" \
	"ca: ca.crt\n"                                             \
	"cert: c.crt\n"                                            \
	"key: c.key\n"                                             \
	"prefixes: [\"10.20.0.0/16\", \"fd20::/48\"]\n"            \
	"policy: p.yaml\n"

static int load(struct conn_config *cfg, const char *text, char *err, size_t errlen)
{
	conn_config_defaults(cfg);
	err[0] = '\0';
	return conn_config_load_buf(cfg, "c.yaml", text, strlen(text), err, errlen);
}

static void test_valid_full(void **state)
{
	static struct conn_config cfg;
	char err[512];
	uint8_t a[16];

	(void)state;
	assert_int_equal(load(&cfg,
			      BASE "server_name: relay.test\n"
				   "audit: /var/log/zgate/audit.jsonl\n"
				   "ops_listen: \"[::1]:9300\"\n"
				   "inner_port: 8443\n"
				   "log_level: debug\n"
				   "reconnect_min: 1s\n"
				   "reconnect_max: 1m\n"
				   "keepalive: 10s\n"
				   "idle_timeout: 20s\n"
				   "max_conns_per_agent: 4\n"
				   "request_timeout: 2s\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(cfg.relays.n, 2);
	assert_string_equal(cfg.relays.e[1].host, "relay-b.test");
	assert_int_equal(cfg.relays.e[1].port, 4433);
	assert_string_equal(cfg.relays.e[0].server_name, "relay.test");
	assert_string_equal(cfg.relays.e[0].uri_template,
			    "https://relay-a.test:4433/.well-known/masque/ip/{target}/{ipproto}/");
	assert_string_equal(cfg.ca, "ca.crt");
	assert_string_equal(cfg.cert, "c.crt");
	assert_string_equal(cfg.key, "c.key");
	assert_string_equal(cfg.policy, "p.yaml");
	assert_string_equal(cfg.audit, "/var/log/zgate/audit.jsonl");
	assert_string_equal(cfg.ops_listen, "[::1]:9300");
	assert_int_equal(cfg.inner_port, 8443);
	assert_string_equal(cfg.log_level, "debug");
	assert_int_equal(cfg.reconnect_min_ms, 1000);
	assert_int_equal(cfg.reconnect_max_ms, 60000);
	assert_int_equal(cfg.keepalive_ms, 10000);
	assert_int_equal(cfg.idle_timeout_ms, 20000);
	assert_int_equal(cfg.max_conns_per_agent, 4);
	assert_int_equal(cfg.request_timeout_ms, 2000);
	assert_int_equal(cfg.nprefixes, 2);
	assert_int_equal(cfg.prefixes[0].version, 4);
	assert_int_equal(cfg.prefixes[0].len, 16);
	assert_int_equal(cfg.prefixes[1].version, 6);
	assert_int_equal(cfg.prefixes[1].len, 48);
	inet_pton(AF_INET, "10.20.255.1", a);
	assert_true(conn_config_serves(&cfg, 4, a));
	inet_pton(AF_INET, "10.21.0.1", a);
	assert_false(conn_config_serves(&cfg, 4, a));
	inet_pton(AF_INET6, "fd20:0:0:ffff::1", a);
	assert_true(conn_config_serves(&cfg, 6, a));
	inet_pton(AF_INET6, "fd20:0:1::1", a);
	assert_false(conn_config_serves(&cfg, 6, a));
}

static void test_defaults(void **state)
{
	static struct conn_config cfg;
	char err[512];

	(void)state;
	assert_int_equal(load(&cfg, BASE, err, sizeof(err)), 0);
	assert_string_equal(cfg.audit, "-");
	assert_string_equal(cfg.ops_listen, "127.0.0.1:9201");
	assert_int_equal(cfg.inner_port, 443);
	assert_string_equal(cfg.log_level, "info");
	assert_int_equal(cfg.max_conns_per_agent, 8);
	assert_int_equal(cfg.request_timeout_ms, 10000);
	/* without server_name each relay is checked for its own host */
	assert_string_equal(cfg.relays.e[0].server_name, "relay-a.test");
	/* a single scalar is a one-entry list */
	assert_int_equal(load(&cfg,
			      "relays: r.test:443\nca: a\ncert: b\nkey: c\nprefixes: 10.0.0.0/8\n"
			      "policy: p\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(cfg.relays.n, 1);
	assert_int_equal(cfg.nprefixes, 1);
}

/* Each bad file and the start of the message it must give. */
static void test_bad_fields(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ BASE "inner_port: 0\n", "c.yaml:7:1: inner_port: \"0\" is not a port" },
		{ BASE "inner_port: 70000\n", "c.yaml:7:1: inner_port: \"70000\" is not a port" },
		{ BASE "ops_listen: nowhere\n", "c.yaml:7:1: ops_listen: \"nowhere\" is not host:port" },
		{ BASE "log_level: loud\n", "c.yaml:7:1: log_level: \"loud\" is not a log level" },
		{ BASE "keepalive: 5\n", "c.yaml:7:1: keepalive: \"5\" is not a duration" },
		{ BASE "colour: blue\n",
		  "c.yaml:7:1: colour: unknown key (expected one of: relays, server_name, ca, cert, "
		  "key, prefixes, policy, audit, ops_listen, inner_port, log_level, reconnect_min, "
		  "reconnect_max, keepalive, idle_timeout, max_conns_per_agent, request_timeout)" },
		{ BASE "max_conns_per_agent: 0\n", "c.yaml:7:1: max_conns_per_agent: " },
		{ BASE "request_timeout: 10ms\n", "c.yaml:7:1: request_timeout: " },
		{ BASE "tls.cert: x\n", "c.yaml:7:1: tls.cert: unknown key (expected one of: relays," },
		{ BASE "audit: {a: 1}\n", "c.yaml:7:1: audit: expected a single value, found a mapping" },
		{ BASE "audit: \"\"\n", "c.yaml:7:1: audit: empty" },
		{ BASE "server_name: [a, b]\n", "c.yaml:7:1: server_name: expected a single value, found a list" },
		{ BASE "extra: {a: 1}\n", "c.yaml:7:1: extra: unknown key" },
		{ "relays: [\"r.test:443\", \"nope\"]\n", "c.yaml:1:24: relays: entry 2 \"nope\"" },
		{ "relays: []\n", "c.yaml:1:1: relays: the list is empty" },
		{ "relays: [r:1]\nprefixes:\n  - 10.0.0.0/8\n  - 10.0.0.1/8\n",
		  "c.yaml:4:5: prefixes: \"10.0.0.1/8\" has bits set after the prefix length" },
		{ "prefixes: [banana]\n", "c.yaml:1:12: prefixes: \"banana\" is not a prefix" },
		{ "prefixes: [[1]]\n", "c.yaml:1:12: prefixes: expected a list of prefixes, found a list" },
		{ "ca: a\n", "c.yaml: relays: required" },
		{ "relays: r:1\nca: a\ncert: b\nkey: c\npolicy: p\n", "c.yaml: prefixes: required" },
		{ "relays: r:1\nca: a\ncert: b\nkey: c\nprefixes: [10.0.0.0/8]\n",
		  "c.yaml: policy: required" },
		/* checks across keys name where each value was set: its line, or the
		 * default (then after the file's name, as the messages above) */
		{ BASE "keepalive: 30s\n",
		  "c.yaml:7: keepalive: 30000ms must be shorter than idle_timeout (30000ms, default), "
		  "or the connection dies before the first PING" },
		{ BASE "idle_timeout: 20s\n",
		  "c.yaml: keepalive (default): 25000ms must be shorter than idle_timeout (20000ms, "
		  "c.yaml:7)" },
		{ BASE "reconnect_min: 50s\nreconnect_max: 10s\n",
		  "c.yaml:7: reconnect_min: 50000ms is longer than reconnect_max (10000ms, c.yaml:8)" },
		{ "relays: [r:1\n", "c.yaml:" },
		{ "- a\n- b\n", "c.yaml" },
		/* a key given twice: YAML keeps the last; the loader refuses it */
		{ BASE "inner_port: 443\ninner_port: 8443\n",
		  "c.yaml:8:1: inner_port: given twice (first at line 7)" },
		{ BASE "policy: q.yaml\n", "c.yaml:7:1: policy: given twice (first at line 6)" },
	};
	static struct conn_config cfg;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = load(&cfg, cases[i].text, err, sizeof(err));

		if (r != ZG_ERR_CONFIG || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: r=%d err \"%s\", want \"%s...\"", i, r, err,
				 cases[i].want);
	}
}

static void test_file(void **state)
{
	static struct conn_config cfg;
	char path[] = "/tmp/zg-conncfg-XXXXXX", err[512];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, BASE, strlen(BASE)), (ssize_t)strlen(BASE));
	close(fd);
	conn_config_defaults(&cfg);
	assert_int_equal(conn_config_load_file(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.relays.n, 2);
	unlink(path);
	conn_config_defaults(&cfg);
	assert_int_equal(conn_config_load_file(&cfg, path, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, path));
}

/* The shipped example loads as it is. */
static void test_example(void **state)
{
	static struct conn_config cfg;
	char err[512];

	(void)state;
	conn_config_defaults(&cfg);
	if (conn_config_load_file(&cfg, "examples/zgate-connector.yaml", err, sizeof(err)) != 0)
		fail_msg("examples/zgate-connector.yaml: %s", err);
	assert_int_equal(cfg.relays.n, 1);
	assert_string_equal(cfg.server_name, "relay.example.org");
	assert_int_equal(cfg.nprefixes, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
