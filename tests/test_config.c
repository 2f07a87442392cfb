/* Unit tests for src/relay/config: file, environment and flag sources, and
 * that every error names where the bad value came from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay/config.h"
#include "zg_err.h"

static char err[1024];

static int load(struct relay_config *c, const char *text)
{
	err[0] = '\0';
	return config_load_buf(c, "relay.yaml", text, strlen(text), err, sizeof(err));
}

static void assert_err_contains(const char *want)
{
	if (!strstr(err, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_defaults(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_string_equal(c.listen, "0.0.0.0:4433");
	assert_string_equal(c.ops_listen, "127.0.0.1:8080"); /* loopback: 16.1 */
	assert_int_equal(c.pool4.version, 4);
	assert_int_equal(c.pool4.len, 24);
	assert_int_equal(c.pool4.addr[0], 10);
	assert_int_equal(c.pool4.addr[1], 100);
	assert_int_equal(c.pool6.version, 0);
	assert_int_equal(c.udp_idle_ms, 60000);
	assert_int_equal(c.tcp_idle_ms, 2 * 3600 * 1000);
	assert_int_equal(c.tcp_close_ms, 60 * 1000);
	assert_int_equal(c.request_ms, 30 * 1000);
	assert_int_equal(c.drain_grace_ms, 30000);
	assert_int_equal(c.mtu, 1280);
	assert_int_equal(c.max_sessions, 10000);
	assert_int_equal(c.max_time_wait, 65536);
	assert_string_equal(c.log_level, "info");
	assert_string_equal(c.tls_crl, "");
	/* defaults alone are not a runnable config: certificates are required */
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("tls.cert: required; set it in the file, with --tls-cert or with ZGATE_TLS_CERT");
}

static const char *good =
	"# a complete relay configuration\n"
	"listen: \"[::]:4433\"\n"
	"ops_listen: 127.0.0.1:9090\n"
	"tls:\n"
	"  cert: /etc/zgate/relay.crt\n"
	"  key: /etc/zgate/relay.key\n"
	"  client_ca: /etc/zgate/ca.crt\n"
	"  crl: /etc/zgate/ca.crl\n"
	"uri_template: https://relay.example:4433/.well-known/masque/ip/{target}/{ipproto}/\n"
	"policy: /etc/zgate/policy.yaml\n"
	"pool:\n"
	"  ipv4: 10.200.0.0/16\n"
	"  ipv6: fd00:200::/64\n"
	"limits:\n"
	"  sessions: 50\n"
	"  flows_per_client: 20\n"
	"timeouts:\n"
	"  udp_idle: 90s\n"
	"  drain_grace: 1500ms\n"
	"  tcp_idle: 5m\n"
	"  tcp_close: 30s\n"
	"  request: 5s\n"
	"mtu: 1400\n"
	"log_level: debug\n";

static void test_file_good(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, good), 0);
	assert_string_equal(c.listen, "[::]:4433");
	assert_string_equal(c.tls_crl, "/etc/zgate/ca.crl");
	assert_int_equal(c.pool4.len, 16);
	assert_int_equal(c.pool4.addr[1], 200);
	assert_int_equal(c.pool6.version, 6);
	assert_int_equal(c.pool6.len, 64);
	assert_int_equal(c.max_sessions, 50);
	assert_int_equal(c.max_flows_per_client, 20);
	assert_int_equal(c.max_flows, 100000); /* untouched default */
	assert_int_equal(c.udp_idle_ms, 90000);
	assert_int_equal(c.drain_grace_ms, 1500);
	assert_int_equal(c.tcp_idle_ms, 300000);
	assert_int_equal(c.tcp_close_ms, 30000);
	assert_int_equal(c.request_ms, 5000);
	assert_int_equal(c.mtu, 1400);
	assert_string_equal(c.log_level, "debug");
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
}

static void test_file_unknown_key_names_line_and_choices(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "listen: 0.0.0.0:1\ntls:\n  cret: x\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:3:3: tls.cret: unknown key (expected one of: cert, key, client_ca, crl, identity)");
	config_defaults(&c);
	assert_int_equal(load(&c, "\n\nlisten_port: 4433\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:3:1: listen_port: unknown key (expected one of: listen, ops_listen, tls,");
}

static void put(const char *dir, const char *name, const char *text)
{
	char p[600];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* issue 21: workers: a number, or 0 for the CPUs the relay may use (its
 * affinity, capped by the cgroup's cpu.max quota, rounded up). */
static void test_workers(void **state)
{
	struct relay_config c;
	char root[] = "/tmp/zg-cpu-XXXXXX", p[600], self[600];

	(void)state;
	config_defaults(&c);
	assert_int_equal(c.workers, 0); /* one per CPU */
	assert_int_equal(config_workers(&c, 8, 0), 8);
	assert_int_equal(load(&c, "workers: 1\n"), 0);
	assert_int_equal(config_workers(&c, 8, 0), 1);
	assert_int_equal(load(&c, "workers: 3\n"), 0);
	assert_int_equal(config_workers(&c, 2, 1), 3); /* as asked, even above the CPUs */
	assert_int_equal(load(&c, "workers: 65\n"), ZG_ERR_CONFIG);
	assert_err_contains("workers");
	assert_int_equal(load(&c, "workers: two\n"), ZG_ERR_CONFIG);
	assert_int_equal(load(&c, "workers: 0\n"), 0);
	assert_int_equal(config_workers(&c, 8, 0), 8);
	assert_int_equal(config_workers(&c, 8, 3), 3);
	assert_int_equal(config_workers(&c, 2, 3), 2);
	assert_int_equal(config_workers(&c, 0, 0), 1);
	assert_int_equal(config_workers(&c, 200, 0), CONFIG_WORKERS_MAX);

	assert_non_null(mkdtemp(root));
	snprintf(self, sizeof(self), "%s/self", root);
	snprintf(p, sizeof(p), "%s/kubepods", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/kubepods/pod1", root);
	assert_int_equal(mkdir(p, 0755), 0);
	put(root, "self", "0::/kubepods/pod1\n");
	assert_int_equal(config_cgroup_cpus(root, self), 0); /* no cpu.max */
	put(root, "kubepods/pod1/cpu.max", "max 100000\n");
	put(root, "kubepods/cpu.max", "250000 100000\n");
	assert_int_equal(config_cgroup_cpus(root, self), 3); /* 2.5 CPUs: 3 workers */
	put(root, "kubepods/pod1/cpu.max", "50000 100000\n");
	assert_int_equal(config_cgroup_cpus(root, self), 1);
	put(root, "kubepods/pod1/cpu.max", "garbage\n");
	assert_int_equal(config_cgroup_cpus(root, self), 3);
	assert_int_equal(config_cgroup_cpus(root, "/nonexistent/self"), 0);
	snprintf(p, sizeof(p), "rm -rf '%s'", root);
	assert_int_equal(system(p), 0);
}

/* 16.8b: dns.resolvable is a YAML list (or, from a variable or flag, one
 * comma-separated string). */
static void test_dns_resolvable_list(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_string_equal(c.dns_resolvable, "");
	assert_int_equal(c.dns_per_min, 60);
	assert_int_equal(load(&c, "dns:\n  resolvable: [db.corp.example, .saas.example]\n"), 0);
	assert_string_equal(c.dns_resolvable, "db.corp.example, .saas.example");
	assert_int_equal(load(&c, "dns:\n  resolvable:\n    - a.example\n    - [b]\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:4:7: dns.resolvable: expected a list of at most");
	assert_int_equal(config_apply_flag(&c, "dns-resolvable", "x.example,.y", err, sizeof(err)), 0);
	assert_string_equal(c.dns_resolvable, "x.example,.y");
}

static void test_file_bad_values_name_field(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "timeouts:\n  udp_idle: 60x\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:2:3: timeouts.udp_idle: \"60x\" is not a duration");
	config_defaults(&c);
	assert_int_equal(load(&c, "limits:\n  sessions: 0\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:2:3: limits.sessions: \"0\" is not a whole number from 1 to 1000000");
	config_defaults(&c);
	assert_int_equal(load(&c, "limits:\n  sessions: -5\n"), ZG_ERR_CONFIG);
	assert_err_contains("limits.sessions: \"-5\" is not a whole number");
	config_defaults(&c);
	assert_int_equal(load(&c, "mtu: 1000\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1:1: mtu: \"1000\" is not a whole number from 1280 to 65535");
	config_defaults(&c);
	assert_int_equal(load(&c, "pool:\n  ipv4: 10.100.0.1/24\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:2:3: pool.ipv4: \"10.100.0.1/24\" is not an IPv4 prefix with host bits zero");
	config_defaults(&c);
	assert_int_equal(load(&c, "pool:\n  ipv4: fd00::/64\n"), ZG_ERR_CONFIG);
	assert_err_contains("pool.ipv4: \"fd00::/64\" is not an IPv4 prefix");
	config_defaults(&c);
	assert_int_equal(load(&c, "pool:\n  ipv4:\n"), ZG_ERR_CONFIG); /* required: cannot be emptied */
	assert_err_contains("relay.yaml:2:3: pool.ipv4: \"\" is not an IPv4 prefix");
	config_defaults(&c);
	assert_int_equal(load(&c, "pool:\n  ipv6: \"\"\n"), 0); /* optional: empty = none */
	assert_int_equal(c.pool6.version, 0);
	config_defaults(&c);
	assert_int_equal(load(&c, "log_level: loud\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1:1: log_level: \"loud\" is not a log level (error, warn, info or debug)");
}

static void test_file_wrong_shapes(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "tls: /etc/cert\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1:1: tls: expected a mapping of keys, found a value");
	config_defaults(&c);
	assert_int_equal(load(&c, "listen:\n  - a\n  - b\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1:1: listen: expected a single value, found a list");
	config_defaults(&c);
	assert_int_equal(load(&c, "- listen\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1:1: the top level must be a mapping of keys, found a list");
	config_defaults(&c);
	assert_int_equal(load(&c, "listen: \"unclosed\nmtu: 1300\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:");
	assert_err_contains("not valid YAML");
	config_defaults(&c);
	assert_int_equal(load(&c, "a: 1\n---\nb: 2\n"), ZG_ERR_CONFIG); /* a first, unknown */
	config_defaults(&c);
	assert_int_equal(load(&c, "listen: 0.0.0.0:1\n---\nlisten: 0.0.0.0:2\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:2:1: only one YAML document is allowed");
	/* the shared loader (yamlcfg_load) gives the messages the relay gave */
	config_defaults(&c);
	assert_int_equal(load(&c, "listen: \"unclosed\nmtu: 1300\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:1: not valid YAML: found unexpected end of stream");
	config_defaults(&c);
	assert_int_equal(load(&c, "dns:\n  domains: [a\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:1: not valid YAML: did not find expected ',' or ']'");
	config_defaults(&c);
	assert_int_equal(load(&c, "just text\n"), ZG_ERR_CONFIG);
	assert_string_equal(err,
			    "relay.yaml:1:1: the top level must be a mapping of keys, found a value");
	config_defaults(&c);
	assert_int_equal(load(&c, "---\n...\n"), 0); /* an empty document */
}

/* A key given twice in one mapping is refused at the second: YAML keeps
 * the last, so a stray "workers: 2" further down would win silently. */
static void test_file_key_given_twice(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "workers: 1\nmtu: 1400\nworkers: 2\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:1: workers: given twice (first at line 1)");
	config_defaults(&c);
	assert_int_equal(load(&c, "limits:\n  flows: 100\n  flows: 200\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:3: limits.flows: given twice (first at line 2)");
	config_defaults(&c);
	assert_int_equal(load(&c, "limits: {flows: 100}\nmtu: 1400\nlimits:\n  sessions: 5\n"),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:1: limits: given twice (first at line 1)");
	config_defaults(&c);
	assert_int_equal(load(&c, "tls: {cert: a, key: b, cert: c}\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:1:24: tls.cert: given twice (first at line 1)");
	/* one option in two spellings, dotted and nested, is given twice too:
	 * otherwise the last would win silently */
	config_defaults(&c);
	assert_int_equal(load(&c, "tls.cert: a\nmtu: 1400\ntls: {cert: b}\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:7: tls.cert: given twice (first at line 1)");
	config_defaults(&c);
	assert_int_equal(load(&c, "tls:\n  cert: a\ntls.cert: b\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:1: tls.cert: given twice (first at line 2)");
	config_defaults(&c);
	assert_int_equal(load(&c, "ipam.api.url: https://a\nipam:\n  api: {url: https://b}\n"),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:3:9: ipam.api.url: given twice (first at line 1)");
	config_defaults(&c);
	assert_int_equal(load(&c, "ipam: {api.url: https://a}\nipam.api: {url: https://b}\n"),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:2:12: ipam.api.url: given twice (first at line 1)");
	/* a section in two spellings with different options is fine */
	config_defaults(&c);
	assert_int_equal(load(&c, "tls.cert: a\ntls: {key: b}\n"), 0);
	assert_string_equal(c.tls_cert, "a");
	assert_string_equal(c.tls_key, "b");
	/* the same name in two sections is two keys */
	config_defaults(&c);
	assert_int_equal(load(&c, "tls: {cert: a, key: b}\nipam: {api: {cert: c, key: d}}\n"), 0);
	assert_string_equal(c.tls_cert, "a");
}

static void test_file_empty_is_defaults(void **state)
{
	struct relay_config c, d;
	(void)state;
	config_defaults(&c);
	config_defaults(&d);
	assert_int_equal(load(&c, ""), 0);
	assert_int_equal(load(&c, "# only a comment\n"), 0);
	assert_memory_equal(&c, &d, sizeof(c));
}

static void test_file_errors(void **state)
{
	struct relay_config c;
	char path[] = "/tmp/zg-config-XXXXXX";
	int fd;
	(void)state;
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, "/nonexistent/relay.yaml", err, sizeof(err)), ZG_ERR_IO);
	assert_err_contains("/nonexistent/relay.yaml: cannot open: No such file or directory");

	fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char text[] = "mtu: 1500\nbogus: 1\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(config_load_file(&c, path, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, path));
	assert_err_contains(":2:1: bogus: unknown key");
	assert_int_equal(c.mtu, 1500);
	unlink(path);
}

static void test_env_overrides_and_unknown(void **state)
{
	struct relay_config c;
	char *env[] = { "HOME=/root", "ZGATE_TIMEOUTS_UDP_IDLE=5s", "ZGATE_TLS_CERT=/x.crt",
			"ZGATE_CONFIG=/etc/zgate/relay.yaml", NULL };
	char *bad[] = { "ZGATE_TIMEOUT_UDP_IDLE=5s", NULL };
	char *badval[] = { "ZGATE_LIMITS_SESSIONS=lots", NULL };
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "timeouts:\n  udp_idle: 90s\n"), 0);
	assert_int_equal(config_apply_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(c.udp_idle_ms, 5000);
	assert_string_equal(c.tls_cert, "/x.crt");
	assert_int_equal(config_apply_env(&c, bad, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("environment: ZGATE_TIMEOUT_UDP_IDLE names no option");
	assert_int_equal(config_apply_env(&c, badval, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("ZGATE_LIMITS_SESSIONS: \"lots\" is not a whole number");
}

static void test_flag_precedence(void **state)
{
	struct relay_config c;
	char *env[] = { "ZGATE_MTU=1300", NULL };
	(void)state;
	/* default < file < env < flag */
	config_defaults(&c);
	assert_int_equal(load(&c, "mtu: 1400\n"), 0);
	assert_int_equal(c.mtu, 1400);
	assert_int_equal(config_apply_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(c.mtu, 1300);
	assert_int_equal(config_apply_flag(&c, "mtu", "1350", err, sizeof(err)), 0);
	assert_int_equal(c.mtu, 1350);
	assert_int_equal(config_apply_flag(&c, "timeouts-drain-grace", "2s", err, sizeof(err)), 0);
	assert_int_equal(c.drain_grace_ms, 2000);
	assert_int_equal(config_apply_flag(&c, "pool-ipv6", "fd00:1::/120", err, sizeof(err)), 0);
	assert_int_equal(c.pool6.len, 120);
	assert_int_equal(config_apply_flag(&c, "pool-ipv6", "", err, sizeof(err)), 0);
	assert_int_equal(c.pool6.version, 0);
	assert_int_equal(config_apply_flag(&c, "no-such-thing", "1", err, sizeof(err)), ZG_ERR_NOTFOUND);
	assert_err_contains("unknown option --no-such-thing (see --help)");
	assert_int_equal(config_apply_flag(&c, "mtu", "big", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("--mtu: \"big\" is not a whole number from 1280 to 65535");
}

static void test_string_too_long(void **state)
{
	struct relay_config c;
	static char longv[CONFIG_PATH_MAX + 10];
	(void)state;
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	config_defaults(&c);
	assert_int_equal(config_apply_flag(&c, "policy", longv, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("--policy: value is 1033 bytes long; at most 1023 allowed");
}

static void test_prefix_parse(void **state)
{
	struct config_prefix p;
	(void)state;
	assert_int_equal(config_parse_prefix("0.0.0.0/0", &p), 0);
	assert_int_equal(p.len, 0);
	assert_int_equal(config_parse_prefix("10.0.0.0/8", &p), 0);
	assert_int_equal(config_parse_prefix("10.0.0.0/33", &p), ZG_ERR_CONFIG);
	assert_int_equal(config_parse_prefix("10.0.0.0", &p), ZG_ERR_CONFIG);
	assert_int_equal(config_parse_prefix("10.0.0.0/", &p), ZG_ERR_CONFIG);
	assert_int_equal(config_parse_prefix("10.0.0.0/8x", &p), ZG_ERR_CONFIG);
	assert_int_equal(config_parse_prefix("10.0.0.1/31", &p), ZG_ERR_CONFIG);
	assert_int_equal(config_parse_prefix("2001:db8::/32", &p), 0);
	assert_int_equal(p.version, 6);
	assert_int_equal(config_parse_prefix("2001:db8::1/64", &p), ZG_ERR_CONFIG);
	assert_int_equal(config_parse_prefix("2001:db8::/129", &p), ZG_ERR_CONFIG);
	assert_int_equal(config_parse_prefix("example.com/24", &p), ZG_ERR_CONFIG);
}

static void test_c01_uri_template(void **state)
{
	char why[256];
	(void)state;
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/.well-known/masque/ip/{target}/{ipproto}/", why, sizeof(why)),
			 0);
	assert_int_equal(config_check_uri_template(
				 "https://relay.example:443/ip?t={target}&p={ipproto}", why, sizeof(why)),
			 0);
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip{?target,ipproto}", why, sizeof(why)),
			 0);
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip/", why, sizeof(why)),
			 0);
	assert_int_equal(config_check_uri_template(
				 "http://relay.example/ip/{target}/{ipproto}/", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(why, "absolute https://"));
	assert_int_equal(config_check_uri_template(
				 "/.well-known/masque/ip/{target}/{ipproto}/", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_int_equal(config_check_uri_template("https://relay.example", why, sizeof(why)), ZG_ERR_CONFIG);
	assert_non_null(strstr(why, "path starting with /"));
	assert_int_equal(config_check_uri_template(
				 "https://{target}.example/ip/", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(why, "not in the authority"));
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip/{+target}/", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(why, "operator '+'"));
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip/{#target}/", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip/{host}/", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(why, "unknown variable \"host\""));
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip/{target", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(why, "unbalanced '{'"));
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip/{target}/{target}/", why, sizeof(why)),
			 ZG_ERR_CONFIG);
	assert_int_equal(config_check_uri_template(
				 "https://relay.example/ip/#frag", why, sizeof(why)),
			 ZG_ERR_CONFIG);
}

static void test_validate(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, good), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&c, "listen", "4433", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("listen: \"4433\" is not host:port");
	assert_int_equal(config_apply_flag(&c, "listen", "0.0.0.0:4433", err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&c, "pool-ipv4", "10.0.0.0/31", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("pool.ipv4: needs at least a /30");
	assert_int_equal(config_apply_flag(&c, "pool-ipv4", "10.0.0.0/30", err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&c, "uri-template", "https://x/{foo}", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("uri_template: \"https://x/{foo}\": unknown variable \"foo\"");
	assert_int_equal(config_apply_flag(&c, "uri-template", "https://x/ip/{target}/{ipproto}/", err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&c, "limits-flows", "10", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "relay.yaml:16: limits.flows_per_client: 20 exceeds limits.flows "
				 "(10, --limits-flows)");
	assert_int_equal(config_apply_flag(&c, "limits-flows", "20", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	/* keepalive at or past the idle timeout: an idle tunnel dies before the
	 * PING that would keep it, as the agent and the connector refuse */
	assert_int_equal(config_apply_flag(&c, "timeouts-keepalive", "60s", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "--timeouts-keepalive: 60000ms must be shorter than "
				 "timeouts.quic_idle (60000ms, default), or idle tunnels die between "
				 "PINGs (0 turns the PINGs off)");
	assert_int_equal(config_apply_flag(&c, "timeouts-quic-idle", "61s", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&c, "timeouts-quic-idle", "5s", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("--timeouts-keepalive: 60000ms must be shorter than timeouts.quic_idle "
			    "(5000ms, --timeouts-quic-idle)");
	assert_int_equal(config_apply_flag(&c, "timeouts-keepalive", "0", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0); /* off */
	/* from the file and the environment: each named where it was set */
	config_defaults(&c);
	assert_int_equal(load(&c, good), 0);
	assert_int_equal(load(&c, "timeouts:\n  quic_idle: 30s\n  keepalive: 45s\n"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:3: timeouts.keepalive: 45000ms must be shorter than "
			    "timeouts.quic_idle (30000ms, relay.yaml:2)");
	{
		char *env[] = { "ZGATE_TIMEOUTS_QUIC_IDLE=10s", NULL };

		config_defaults(&c);
		assert_int_equal(load(&c, good), 0);
		assert_int_equal(config_apply_env(&c, env, err, sizeof(err)), 0);
		assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
		assert_err_contains("timeouts.keepalive (default): 20000ms must be shorter than "
				    "timeouts.quic_idle (10000ms, ZGATE_TIMEOUTS_QUIC_IDLE)");
	}
	/* the defaults pass */
	config_defaults(&c);
	assert_int_equal(load(&c, good), 0);
	assert_true(c.keepalive_ms != 0 && c.keepalive_ms < c.quic_idle_ms);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
}

/* 20.2: ipam.backend api needs the API's URL and credentials; relay_id
 * is checked; the summary names the backend. */
static void test_ipam_api_keys(void **state)
{
	static char buf[16384];
	static const char yml[] = "ipam:\n  backend: api\n  api:\n    url: https://api.example:8443\n"
				  "    ca: /c/ca.crt\n    cert: /c/r1.crt\n    key: /c/r1.key\n"
				  "    timeout: 750ms\nrelay_id: r1\n";
	struct relay_config c;
	char id[64];
	(void)state;
	config_defaults(&c);
	assert_string_equal(c.ipam_backend, "local");
	assert_int_equal(c.ipam_api_timeout_ms, 2000);
	assert_int_equal(c.ipam_api_refresh_ms, 3600000);
	assert_int_equal(load(&c, good), 0);
	assert_int_equal(config_relay_id(&c, id, sizeof(id), err, sizeof(err)), 0);
	assert_true(id[0] != '\0'); /* the host name */
	assert_int_equal(config_apply_flag(&c, "ipam-backend", "remote", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("ipam.backend: \"remote\" is neither local nor api");
	assert_int_equal(config_apply_flag(&c, "ipam-backend", "api", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("ipam.api.url");
	assert_int_equal(config_load_buf(&c, "r.yaml", yml, sizeof(yml) - 1, err, sizeof(err)), 0);
	assert_int_equal(c.ipam_api_timeout_ms, 750);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(config_relay_id(&c, id, sizeof(id), err, sizeof(err)), 0);
	assert_string_equal(id, "r1");
	(void)config_summary(&c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "ipam          api https://api.example:8443 (relay_id r1, timeout 750ms"));
	assert_int_equal(config_apply_flag(&c, "ipam-api-url", "http://api:80", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("ipam.api.url: \"http://api:80\" is not https://host[:port]");
	assert_int_equal(config_apply_flag(&c, "ipam-api-url", "https://api:8443", err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&c, "relay-id", "r 1/x", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("relay_id: \"r 1/x\"");
	assert_int_equal(config_apply_flag(&c, "ipam-api-timeout", "10ms", err, sizeof(err)),
			 ZG_ERR_CONFIG);
}

/* policy_api.*: off by default; the files default to ipam.api's; the URL
 * must be https; poll and timeout bounded; the summary says where the
 * fetched policy is kept; environment and flags as for every key. */
static void test_policy_api_keys(void **state)
{
	static char buf[16384];
	static const char yml[] = "policy: /var/lib/zgate/policy.api.yaml\n"
				  "policy_api:\n  url: https://api.example:8443\n"
				  "  ca: /c/ca.crt\n  cert: /c/r1.crt\n  key: /c/r1.key\n"
				  "  poll: 5s\n  timeout: 750ms\nrelay_id: r1\n";
	const char *ca, *cert, *key;
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_string_equal(c.policy_api_url, "");
	assert_int_equal(c.policy_api_poll_ms, 10000);
	assert_int_equal(c.policy_api_timeout_ms, 2000);
	assert_int_equal(load(&c, good), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	(void)config_summary(&c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "policy_api    off (the policy file)\n"));
	/* on, no files: named, with the fallback */
	assert_int_equal(config_apply_flag(&c, "policy-api-url", "https://api:8443", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("policy_api.ca: required with policy_api.url (or set ipam.api.ca)");
	/* ipam.api's files serve */
	assert_int_equal(config_apply_flag(&c, "ipam-api-ca", "/i/ca.crt", err, sizeof(err)), 0);
	assert_int_equal(config_apply_flag(&c, "ipam-api-cert", "/i/r.crt", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("policy_api.key: required");
	assert_int_equal(config_apply_flag(&c, "ipam-api-key", "/i/r.key", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	config_policy_api_files(&c, &ca, &cert, &key);
	assert_string_equal(ca, "/i/ca.crt");
	assert_string_equal(cert, "/i/r.crt");
	assert_string_equal(key, "/i/r.key");
	/* its own files win */
	assert_int_equal(config_load_buf(&c, "r.yaml", yml, sizeof(yml) - 1, err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	config_policy_api_files(&c, &ca, &cert, &key);
	assert_string_equal(ca, "/c/ca.crt");
	assert_string_equal(key, "/c/r1.key");
	assert_int_equal(c.policy_api_poll_ms, 5000);
	assert_int_equal(c.policy_api_timeout_ms, 750);
	(void)config_summary(&c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "policy_api    https://api.example:8443 every 5000ms (timeout "
				    "750ms; ca /c/ca.crt, cert /c/r1.crt, key /c/r1.key), kept in "
				    "/var/lib/zgate/policy.api.yaml\n"));
	/* the URL's form */
	assert_int_equal(config_apply_flag(&c, "policy-api-url", "http://api:80", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("policy_api.url: \"http://api:80\" is not https://host[:port]");
	assert_int_equal(config_apply_flag(&c, "policy-api-url", "https://", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	/* bounds: poll at least 1 s, timeout at least 100 ms */
	assert_int_equal(config_apply_flag(&c, "policy-api-poll", "500ms", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err_contains("--policy-api-poll: \"500ms\" is not a duration of at least 1000ms");
	assert_int_equal(config_apply_flag(&c, "policy-api-timeout", "10ms", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err_contains("--policy-api-timeout");
	{
		char *env[] = { "ZGATE_POLICY_API_URL=https://10.0.0.1:9443", NULL };

		assert_int_equal(config_apply_env(&c, env, err, sizeof(err)), 0);
		assert_string_equal(c.policy_api_url, "https://10.0.0.1:9443");
	}
	/* a bad value in the file names its line */
	assert_int_equal(load(&c, "policy_api:\n  poll: often\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:2");
	assert_err_contains("policy_api.poll");
	/* --help names them */
	(void)config_usage(buf, sizeof(buf));
	assert_non_null(strstr(buf, "--policy-api-url https://HOST[:PORT]"));
	assert_non_null(strstr(buf, "ZGATE_POLICY_API_POLL, default \"10s\""));
}

/* 18.3: admin.* keys: off by default; admin.listen needs a token file and
 * its own address. */
static void test_admin_keys(void **state)
{
	static char buf[16384];
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_string_equal(c.admin_token_file, "");
	assert_string_equal(c.admin_listen, "");
	assert_int_equal(load(&c, good), 0);
	(void)config_summary(&c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "admin         off (no admin.token_file)"));
	assert_non_null(strstr(buf, "resources     memory auto (half the cgroup limit), 32 MiB/client, "
				    "fd_reserve auto, 50% fds/client, 32 handshakes/source, "
				    "time_wait 65536\n"));
	assert_int_equal(load(&c, "admin: { listen: \"127.0.0.1:8081\" }\n"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1: admin.listen is set but admin.token_file is not");
	assert_int_equal(load(&c, "admin: { token_file: /run/zgate/admin.token, listen: \"8081\" }\n"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("admin.listen: \"8081\" is not host:port");
	assert_int_equal(config_apply_flag(&c, "admin-listen", c.ops_listen, err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("--admin-listen: \"127.0.0.1:9090\" is ops_listen already "
			    "(relay.yaml:3; leave");
	assert_int_equal(config_apply_flag(&c, "admin-listen", "127.0.0.1:8081", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	(void)config_summary(&c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "admin         token file /run/zgate/admin.token, on 127.0.0.1:8081"));
	assert_int_equal(load(&c, "admin: { tokenfile: x }\n"), ZG_ERR_CONFIG);
	assert_err_contains("token_file");
}

/* Issue 22: the debug hook that proves the relay cannot read inner sessions. */
static void test_debug_payload_dump(void **state)
{
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_string_equal(c.payload_dump, "");
	assert_int_equal(load(&c, good), 0);
	assert_string_equal(c.payload_dump, "");
	assert_int_equal(load(&c, "debug: { payload_dump: /tmp/zg-dump.bin }\n"), 0);
	assert_string_equal(c.payload_dump, "/tmp/zg-dump.bin");
	assert_int_equal(config_apply_flag(&c, "debug-payload-dump", "/tmp/other.bin", err,
					   sizeof(err)),
			 0);
	assert_string_equal(c.payload_dump, "/tmp/other.bin");
	assert_int_equal(load(&c, "debug: { payload: x }\n"), ZG_ERR_CONFIG);
}

/* Issue 19: the DNS service's keys, checked before start (--check-config). */
static void test_dns_service_keys(void **state)
{
	static char buf[16384];
	struct relay_config c;
	(void)state;
	config_defaults(&c);
	assert_string_equal(c.dns_service, "on");
	assert_string_equal(c.dns_deny_answer, "nxdomain");
	assert_int_equal(c.dns_ttl_floor_ms, 30000);
	assert_int_equal(c.dns_ttl_cap_ms, 3600000);
	assert_int_equal(c.dns_max_learned_routes, 256);
	assert_int_equal(load(&c, good), 0);
	assert_int_equal(load(&c, "dns: { upstreams: [192.0.2.53, \"[2001:db8::53]:5353\"], deny_answer: refused, "
				  "ttl_floor: 10s, ttl_cap: 5m, max_learned_routes: 8 }\n"),
			 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.dns_upstreams, "192.0.2.53, [2001:db8::53]:5353");
	(void)config_summary(&c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "dns service   on, upstreams 192.0.2.53, [2001:db8::53]:5353, deny refused, "
				    "ttl 10000ms..300000ms, 8 learned routes/client, cache 10000\n"));
	assert_int_equal(load(&c, "dns: { deny_answer: drop }\n"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("dns.deny_answer: \"drop\" is neither nxdomain nor refused");
	assert_int_equal(load(&c, "dns: { deny_answer: nxdomain, ttl_floor: 2h }\n"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1: dns.ttl_floor: 7200000 ms is above dns.ttl_cap "
			    "(300000 ms, relay.yaml:1)");
	assert_int_equal(load(&c, "dns: { ttl_floor: 1s, upstreams: [resolver.example] }\n"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("dns.upstreams: \"resolver.example\" is not an IP address");
	assert_int_equal(load(&c, "dns: { upstreams: [], service: maybe }\n"), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("dns.service: \"maybe\" is neither on nor off");
	assert_int_equal(config_apply_flag(&c, "dns-service", "off", err, sizeof(err)), 0);
	assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
}

/* limits.time_wait: the relay's TIME-WAIT cap, from the file, the
 * environment or a flag (in that order of precedence), 16 to 1,000,000;
 * an error names the key as its source spells it. */
static void test_limits_time_wait(void **state)
{
	static char buf[16384];
	struct relay_config c;
	char *env[] = { "ZGATE_LIMITS_TIME_WAIT=4096", NULL };
	char *badenv[] = { "ZGATE_LIMITS_TIME_WAIT=1000001", NULL };
	(void)state;
	config_defaults(&c);
	assert_int_equal(load(&c, "limits:\n  time_wait: 100000\n"), 0);
	assert_int_equal(c.max_time_wait, 100000);
	assert_int_equal(c.max_sessions, 10000); /* the other limits keep their defaults */
	assert_int_equal(config_apply_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(c.max_time_wait, 4096);
	assert_int_equal(config_apply_flag(&c, "limits-time-wait", "16", err, sizeof(err)), 0);
	assert_int_equal(c.max_time_wait, 16);
	assert_int_equal(config_apply_flag(&c, "limits-memory", "512", err, sizeof(err)), 0);
	(void)config_summary(&c, buf, sizeof(buf));
	assert_non_null(strstr(buf, "resources     memory 512 MiB, "));
	assert_non_null(strstr(buf, ", time_wait 16\n"));

	config_defaults(&c);
	assert_int_equal(load(&c, "limits:\n  time_wait: 15\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:2:3: limits.time_wait: \"15\" is not a whole number from 16 to 1000000");
	config_defaults(&c);
	assert_int_equal(load(&c, "limits:\n  time_wait: 0\n"), ZG_ERR_CONFIG);
	assert_err_contains("limits.time_wait: \"0\" is not a whole number from 16 to 1000000");
	config_defaults(&c);
	assert_int_equal(config_apply_env(&c, badenv, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err_contains("ZGATE_LIMITS_TIME_WAIT: \"1000001\" is not a whole number from 16 to 1000000");
	assert_int_equal(config_apply_flag(&c, "limits-time-wait", "many", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err_contains("--limits-time-wait: \"many\" is not a whole number from 16 to 1000000");
	assert_int_equal(c.max_time_wait, 65536); /* refused values leave it as it was */

	assert_true(config_usage(buf, sizeof(buf)) < sizeof(buf));
	assert_non_null(strstr(buf, "--limits-time-wait N"));
	assert_non_null(strstr(buf, "ZGATE_LIMITS_TIME_WAIT, default \"65536\""));
}

static void test_usage_and_summary(void **state)
{
	static char buf[16384];
	struct relay_config c;
	size_t n;
	(void)state;
	n = config_usage(buf, sizeof(buf));
	assert_true(n > 0 && n < sizeof(buf));
	assert_non_null(strstr(buf, "--timeouts-udp-idle DURATION"));
	assert_non_null(strstr(buf, "ZGATE_TIMEOUTS_UDP_IDLE, default \"60s\""));
	assert_non_null(strstr(buf, "--pool-ipv4 CIDR"));
	/* truncation reports the full length */
	assert_int_equal(config_usage(buf, 10), n);
	assert_int_equal(strlen(buf), 9);

	config_defaults(&c);
	assert_int_equal(load(&c, good), 0);
	n = config_summary(&c, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "pool          IPv4 10.200.0.0/16, IPv6 fd00:200::/64"));
	assert_non_null(strstr(buf, "CRL /etc/zgate/ca.crl"));
}

/* Issue 16.6: "forbidden" takes a YAML list, a comma-separated scalar, a
 * flag or a variable; bad entries are named; the list is bounded. */
static void test_i16_6_forbidden_list(void **state)
{
	struct relay_config c;
	char *envp[] = { "ZGATE_FORBIDDEN=192.0.2.0/24", NULL };
	char text[1024];
	size_t n = 0;
	(void)state;

	config_defaults(&c);
	assert_int_equal(c.n_forbidden, 0);
	assert_int_equal(load(&c, "forbidden: [10.96.0.0/12, \"fd00:10:96::/112\"]\n"), 0);
	assert_int_equal(c.n_forbidden, 2);
	assert_int_equal(c.forbidden[0].version, 4);
	assert_int_equal(c.forbidden[0].len, 12);
	assert_int_equal(c.forbidden[0].addr[1], 96);
	assert_int_equal(c.forbidden[1].version, 6);
	assert_int_equal(c.forbidden[1].len, 112);
	assert_int_equal(load(&c, "forbidden:\n  - 10.0.0.0/8\n"), 0);
	assert_int_equal(c.n_forbidden, 1); /* replaced, not appended */
	assert_int_equal(load(&c, "forbidden: \"10.0.0.0/8, 172.16.0.0/12\"\n"), 0);
	assert_int_equal(c.n_forbidden, 2);
	assert_int_equal(load(&c, "forbidden: []\n"), 0);
	assert_int_equal(c.n_forbidden, 0);
	assert_int_equal(config_apply_env(&c, envp, err, sizeof(err)), 0);
	assert_int_equal(c.n_forbidden, 1);
	assert_int_equal(config_apply_flag(&c, "forbidden", "198.51.100.7/32,2001:db8::/32", err,
					   sizeof(err)),
			 0);
	assert_int_equal(c.n_forbidden, 2);

	assert_int_equal(load(&c, "forbidden: [10.96.0.1/12]\n"), ZG_ERR_CONFIG);
	assert_err_contains("relay.yaml:1:1: forbidden: \"10.96.0.1/12\" is not an IPv4 or IPv6 prefix");
	assert_int_equal(load(&c, "forbidden: [10.0.0.0/8, nonsense]\n"), ZG_ERR_CONFIG);
	assert_err_contains("\"nonsense\"");
	assert_int_equal(load(&c, "forbidden: [[10.0.0.0/8]]\n"), ZG_ERR_CONFIG);
	assert_err_contains("forbidden");
	n += (size_t)snprintf(text + n, sizeof(text) - n, "forbidden: [");
	for (int i = 0; i < CONFIG_FORBIDDEN_MAX + 1; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s10.%d.0.0/16", i ? ", " : "", i);
	(void)snprintf(text + n, sizeof(text) - n, "]\n");
	assert_int_equal(load(&c, text), ZG_ERR_CONFIG);
	assert_err_contains("more than 16 prefixes");
	assert_int_equal(config_apply_flag(&c, "forbidden", "10.0.0.0/8,x", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err_contains("--forbidden: \"x\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_service_keys),
		cmocka_unit_test(test_debug_payload_dump),
		cmocka_unit_test(test_ipam_api_keys),
		cmocka_unit_test(test_policy_api_keys),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_file_good),
		cmocka_unit_test(test_file_unknown_key_names_line_and_choices),
		cmocka_unit_test(test_dns_resolvable_list),
		cmocka_unit_test(test_file_bad_values_name_field),
		cmocka_unit_test(test_file_wrong_shapes),
		cmocka_unit_test(test_file_key_given_twice),
		cmocka_unit_test(test_file_empty_is_defaults),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_env_overrides_and_unknown),
		cmocka_unit_test(test_flag_precedence),
		cmocka_unit_test(test_string_too_long),
		cmocka_unit_test(test_prefix_parse),
		cmocka_unit_test(test_c01_uri_template),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_admin_keys),
		cmocka_unit_test(test_limits_time_wait),
		cmocka_unit_test(test_usage_and_summary),
		cmocka_unit_test(test_i16_6_forbidden_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
