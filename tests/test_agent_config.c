/* Unit tests for src/agent/agent_config: the agent's file, environment and
 * flag sources, their precedence, and that every error names where the bad
 * value came from (file:line:column, variable or flag). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_config.h"
#include "zg_err.h"

static char err[1024];

static int load(struct agent_config *c, const char *text)
{
	err[0] = '\0';
	return agent_config_load_buf(c, "agent.yaml", text, strlen(text), err, sizeof(err));
}

static void assert_err(const char *want)
{
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

/* The minimum that validates. */
static void required_set(struct agent_config *c)
{
	strcpy(c->relay, "relay.example.com:443");
	strcpy(c->cert, "/etc/zgate/agent.crt");
	strcpy(c->key, "/etc/zgate/agent.key");
	strcpy(c->ca, "/etc/zgate/ca.crt");
}

static void test_defaults(void **state)
{
	struct agent_config c;

	(void)state;
	agent_config_defaults(&c);
	assert_string_equal(c.tun, "zgate0");
	assert_int_equal(c.reconnect_min_ms, 500);
	assert_int_equal(c.reconnect_max_ms, 30000);
	assert_int_equal(c.keepalive_ms, 25000);
	assert_int_equal(c.idle_timeout_ms, 30000);
	assert_int_equal(c.connect_timeout_ms, 10000);
	assert_int_equal(c.mtu, 0);
	assert_int_equal(c.ipv6, 0);
	assert_string_equal(c.log_level, "info");
	assert_string_equal(c.status_file, "");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("relay: required; set it in the file, with --relay or with ZGATE_RELAY");
	/* with the required options, the derived defaults are filled in */
	required_set(&c);
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.server_name, "relay.example.com");
	assert_string_equal(c.uri_template,
			    "https://relay.example.com:443/.well-known/masque/ip/{target}/{ipproto}/");
}

static void test_ipv6_relay_template(void **state)
{
	struct agent_config c;

	(void)state;
	agent_config_defaults(&c);
	required_set(&c);
	strcpy(c.relay, "[2001:db8::1]:4433");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0);
	assert_string_equal(c.server_name, "2001:db8::1");
	assert_string_equal(c.uri_template,
			    "https://[2001:db8::1]:4433/.well-known/masque/ip/{target}/{ipproto}/");
}

static void test_full_file(void **state)
{
	struct agent_config c;

	(void)state;
	agent_config_defaults(&c);
	assert_int_equal(load(&c, "# the agent\n"
				  "relay: relay.example.com:443\n"
				  "cert: /a.crt\n"
				  "key: /a.key\n"
				  "ca: /ca.crt\n"
				  "server_name: zgate.example.com\n"
				  "template: \"https://zgate.example.com/masque?t={target}&p={ipproto}\"\n"
				  "tun: zt1\n"
				  "status_file: /run/zgate/status.json\n"
				  "reconnect_min: 200ms\n"
				  "reconnect_max: 2m\n"
				  "keepalive: 10s\n"
				  "idle_timeout: 1m\n"
				  "connect_timeout: 5s\n"
				  "mtu: 1400\n"
				  "ipv6: yes\n"
				  "log_level: debug\n"),
			 0);
	assert_string_equal(c.relay, "relay.example.com:443");
	assert_string_equal(c.server_name, "zgate.example.com");
	assert_string_equal(c.uri_template, "https://zgate.example.com/masque?t={target}&p={ipproto}");
	assert_string_equal(c.tun, "zt1");
	assert_string_equal(c.status_file, "/run/zgate/status.json");
	assert_int_equal(c.reconnect_min_ms, 200);
	assert_int_equal(c.reconnect_max_ms, 120000);
	assert_int_equal(c.keepalive_ms, 10000);
	assert_int_equal(c.idle_timeout_ms, 60000);
	assert_int_equal(c.connect_timeout_ms, 5000);
	assert_int_equal(c.mtu, 1400);
	assert_int_equal(c.ipv6, 1);
	assert_string_equal(c.log_level, "debug");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0);
	/* an empty file changes nothing */
	assert_int_equal(load(&c, ""), 0);
	assert_int_equal(load(&c, "# only a comment\n"), 0);
	assert_string_equal(c.tun, "zt1");
}

static void test_file_errors_name_line_and_column(void **state)
{
	struct agent_config c;

	(void)state;
	agent_config_defaults(&c);
	assert_int_equal(load(&c, "relay: r:1\n\nkepalive: 10s\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:3:1: kepalive: unknown key (expected one of: relay, cert,");
	assert_int_equal(load(&c, "relay: r:1\nkeepalive:   25 s\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:2:1: keepalive: \"25 s\" is not a duration");
	/* mtu: what is accepted is 0 or 1280 and up, said where it stands */
	assert_int_equal(load(&c, "mtu: big\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: mtu: \"big\" is not 0 (auto) or a whole number from 1280 to "
		   "65535 (an IPv6 link carries at least 1280 bytes, RFC 8200)");
	assert_int_equal(load(&c, "tun: zg1\n\nmtu: 100\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:3:1: mtu: \"100\" is not 0 (auto) or a whole number from 1280 to "
		   "65535");
	assert_int_equal(load(&c, "mtu: 1279\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: mtu: \"1279\" is not 0 (auto)");
	assert_int_equal(load(&c, "mtu: 65536\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: mtu: \"65536\" is not 0 (auto)");
	assert_int_equal(load(&c, "mtu: 1280\n"), 0);
	assert_int_equal(c.mtu, 1280);
	assert_int_equal(load(&c, "mtu: 65535\n"), 0);
	assert_int_equal(c.mtu, 65535);
	assert_int_equal(load(&c, "mtu: 0\n"), 0);
	assert_int_equal(c.mtu, 0);
	/* tun: a name a device can have, also said where it stands */
	assert_int_equal(load(&c, "mtu: 0\ntun: ../x\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:2:1: tun: \"../x\" is not a device name (1 to 15 characters, no '/', "
		   "':', '%' or spaces)");
	assert_int_equal(load(&c, "tun: a-name-far-too-long\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: tun: \"a-name-far-too-long\" is not a device name");
	assert_int_equal(load(&c, "tun: \"\"\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: tun: \"\" is not a device name");
	assert_int_equal(agent_config_apply_flag(&c, "tun", "a:b", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("--tun: \"a:b\" is not a device name");
	assert_int_equal(load(&c, "tun: zg-1\n"), 0);
	assert_string_equal(c.tun, "zg-1");
	assert_int_equal(load(&c, "ipv6: maybe\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: ipv6: \"maybe\" is not true or false");
	assert_int_equal(load(&c, "log_level: loud\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: log_level: \"loud\" is not a log level");
	/* the value is checked before its length, as the relay does (opt_set()) */
	assert_int_equal(load(&c, "log_level: extraordinarily-loud\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: log_level: \"extraordinarily-loud\" is not a log level");
	assert_int_equal(load(&c, "dns: extraordinarily-clever\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: dns: value is 22 bytes long; at most 15 allowed");
	assert_int_equal(load(&c, "tun: zgate0\nrelay:\n  - a:1\n  - b\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:2:1: relay (line 4): entry 2 \"b\" is not [NAME@]HOST:PORT");
	assert_int_equal(load(&c, "relay:\n  - a:1\n  - [b:2]\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: relay (line 3): expected a list of HOST:PORT, found a list in it");
	assert_int_equal(load(&c, "relay: []\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: relay: the list is empty");
	assert_int_equal(load(&c, "relay: a:1, a:1\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: relay: entry 2 \"a:1\" repeats entry 1");
	assert_int_equal(load(&c, "tls:\n  cert: x\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: tls: unknown key");
	assert_int_equal(load(&c, "tun: zgate0\nrelay: \"a:1\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:3:1: not valid YAML");
	assert_int_equal(load(&c, "- relay\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: the top level must be a mapping of keys, found a list");
	assert_int_equal(load(&c, "tun: a\n---\ntun: b\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:2:1: only one YAML document is allowed");
	assert_int_equal(load(&c, "reconnect_min: 5ms\n"), ZG_ERR_CONFIG);
	assert_err("reconnect_min: \"5ms\" is not a duration from 10ms to 60000ms");
	/* a key given twice: YAML keeps the last; the loader refuses it */
	assert_int_equal(load(&c, "keepalive: 10s\ntun: zg1\nkeepalive: 40s\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:3:1: keepalive: given twice (first at line 1)");
	assert_int_equal(load(&c, "relay: [a:1]\nrelay: b:2\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:2:1: relay: given twice (first at line 1)");
}

static void test_env_and_flags(void **state)
{
	struct agent_config c;
	char *env[] = { "PATH=/bin", "ZGATE_KEEPALIVE=5s", "ZGATE_STATUS_FILE=/tmp/s.json",
			"ZGATE_CONFIG=/ignored/here", NULL };
	char *typo[] = { "ZGATE_KEEPALIV=5s", NULL };
	char *bad[] = { "ZGATE_MTU=12x", NULL };

	(void)state;
	agent_config_defaults(&c);
	assert_int_equal(agent_config_apply_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(c.keepalive_ms, 5000);
	assert_string_equal(c.status_file, "/tmp/s.json");
	assert_int_equal(agent_config_apply_env(&c, typo, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("environment: ZGATE_KEEPALIV names no option");
	assert_int_equal(agent_config_apply_env(&c, bad, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("ZGATE_MTU: \"12x\" is not 0 (auto) or a whole number from 1280 to 65535");
	assert_int_equal(agent_config_apply_flag(&c, "mtu", "576", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("--mtu: \"576\" is not 0 (auto) or a whole number from 1280 to 65535");
	assert_int_equal(agent_config_apply_flag(&c, "reconnect-max", "10s", err, sizeof(err)), 0);
	assert_int_equal(c.reconnect_max_ms, 10000);
	assert_int_equal(agent_config_apply_flag(&c, "server-name", "relay.local", err, sizeof(err)),
			 0);
	assert_string_equal(c.server_name, "relay.local");
	assert_int_equal(agent_config_apply_flag(&c, "keepalive", "soon", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("--keepalive: \"soon\" is not a duration");
	assert_int_equal(agent_config_apply_flag(&c, "tun-name", "x", err, sizeof(err)),
			 ZG_ERR_NOTFOUND);
	assert_err("unknown option --tun-name (see --help)");
}

/* A list from the file (YAML list or commas), the flag and the variable;
 * each entry gets its server name and template. */
static void test_relay_list(void **state)
{
	struct agent_config c;
	char *env[] = { "ZGATE_RELAY=e.example:1 f.example:2", NULL };

	(void)state;
	agent_config_defaults(&c);
	required_set(&c);
	assert_int_equal(load(&c, "relay:\n  - a.example:443\n  - sni.example@192.0.2.7:4433\n"
				  "  - \"[2001:db8::1]:443\"\n"),
			 0);
	assert_string_equal(c.relay, "a.example:443,sni.example@192.0.2.7:4433,[2001:db8::1]:443");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(c.relays.n, 3);
	assert_string_equal(c.relays.e[0].server_name, "a.example");
	assert_string_equal(c.relays.e[0].uri_template,
			    "https://a.example:443/.well-known/masque/ip/{target}/{ipproto}/");
	assert_string_equal(c.relays.e[1].addr, "192.0.2.7:4433");
	assert_string_equal(c.relays.e[1].server_name, "sni.example");
	assert_string_equal(c.relays.e[1].uri_template,
			    "https://192.0.2.7:4433/.well-known/masque/ip/{target}/{ipproto}/");
	assert_string_equal(c.relays.e[2].addr, "[2001:db8::1]:443");
	assert_string_equal(c.relays.e[2].server_name, "2001:db8::1");
	assert_string_equal(c.relays.e[2].uri_template,
			    "https://[2001:db8::1]:443/.well-known/masque/ip/{target}/{ipproto}/");
	/* the first relay's, as with one relay */
	assert_string_equal(c.server_name, "a.example");

	/* server_name applies to the entries without NAME@; template to all */
	agent_config_defaults(&c);
	required_set(&c);
	assert_int_equal(agent_config_apply_flag(&c, "relay", "a.example:443,n.example@b.example:443",
						 err, sizeof(err)),
			 0);
	strcpy(c.server_name, "relay.example");
	strcpy(c.uri_template, "https://relay.example/m/{target}/{ipproto}/");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(c.relays.n, 2);
	assert_string_equal(c.relays.e[0].server_name, "relay.example");
	assert_string_equal(c.relays.e[1].server_name, "n.example");
	assert_string_equal(c.relays.e[1].uri_template, "https://relay.example/m/{target}/{ipproto}/");

	/* the variable, blanks as separators; errors name the source */
	assert_int_equal(agent_config_apply_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(c.relays.n, 2);
	assert_string_equal(c.relays.e[1].addr, "f.example:2");
	assert_int_equal(agent_config_apply_flag(&c, "relay", "a:1,2001:db8::1:443", err,
						 sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("--relay: entry 2 \"2001:db8::1:443\" is not [NAME@]HOST:PORT");
	assert_err("an IPv6 address goes in brackets");
	assert_int_equal(agent_config_apply_flag(&c, "relay", " , ", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("--relay: no relay in");
}

static void test_validate_errors(void **state)
{
	struct agent_config c;

	(void)state;
	agent_config_defaults(&c);
	required_set(&c);
	strcpy(c.relay, "relay.example.com");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("relay: entry 1 \"relay.example.com\" is not [NAME@]HOST:PORT");
	strcpy(c.relay, ":443");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("relay: entry 1 \":443\" is not [NAME@]HOST:PORT");
	strcpy(c.relay, "a:443,b:0");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("relay: entry 2 \"b:0\" port 0 is not a relay's port");
	strcpy(c.relay, "r:443");
	/* checks across options name where each value was set */
	assert_int_equal(agent_config_apply_flag(&c, "keepalive", "30s", err, sizeof(err)), 0);
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "--keepalive: 30000ms must be shorter than idle_timeout (30000ms, "
				 "default), or the connection dies before the first PING");
	assert_int_equal(agent_config_apply_flag(&c, "keepalive", "0", err, sizeof(err)), 0);
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0); /* off is fine */
	assert_int_equal(load(&c, "reconnect_max: 1s\nreconnect_min: 5s\n"), 0);
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "agent.yaml:2: reconnect_min: 5000ms is longer than reconnect_max "
				 "(1000ms, agent.yaml:1)");
	c.reconnect_min_ms = 500;
	c.mtu = 1000;
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("mtu: 1000 is not 0 (auto) or a whole number from 1280 to 65535");
	c.mtu = 1500;
	strcpy(c.tun, "a-name-far-too-long");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("tun: \"a-name-far-too-long\" is not a device name");
	strcpy(c.tun, "../x");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	strcpy(c.tun, "zgate0");
	/* C01: a bad template is a configuration error at start-up */
	strcpy(c.uri_template, "http://r/.well-known/masque/ip/{target}/{ipproto}/");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("template: \"http://r/");
	strcpy(c.uri_template, "https://r/{+target}/");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	c.uri_template[0] = '\0';
	c.server_name[0] = '\0';
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), 0);
	strcpy(c.cert, "");
	assert_int_equal(agent_config_validate(&c, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("cert: required; set it in the file, with --cert or with ZGATE_CERT");
}

/* Writes text to a temporary file; returns its path (static). */
static const char *tmpfile_with(const char *text)
{
	static char path[64];
	int fd;

	(void)snprintf(path, sizeof(path), "/tmp/zg-agent-cfg-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_precedence_flag_env_file(void **state)
{
	struct agent_config c;
	enum agent_action act;
	const char *file = tmpfile_with("relay: file.example:443\ncert: /f.crt\nkey: /f.key\n"
					"ca: /f.ca\nkeepalive: 20s\ntun: filetun\nmtu: 1300\n");
	char envcfg[128];
	char *argv1[] = { "zgate-agent", "--config", (char *)file, "--keepalive", "10s", NULL };
	char *argv2[] = { "zgate-agent", NULL };
	char *argv3[] = { "zgate-agent", "--keepalive=7s", "--tun", "flagtun", NULL };
	char *env[] = { "ZGATE_KEEPALIVE=15s", "ZGATE_TUN=envtun", envcfg, NULL };
	char *noenv[] = { NULL };

	(void)state;
	(void)snprintf(envcfg, sizeof(envcfg), "ZGATE_CONFIG=%s", file);
	/* file alone */
	assert_int_equal(agent_config_parse(&c, 3, argv1, noenv, &act, err, sizeof(err)), 0);
	assert_int_equal(act, AGENT_RUN);
	assert_int_equal(c.keepalive_ms, 20000);
	assert_string_equal(c.tun, "filetun");
	/* the flag beats the file */
	assert_int_equal(agent_config_parse(&c, 5, argv1, noenv, &act, err, sizeof(err)), 0);
	assert_int_equal(c.keepalive_ms, 10000);
	assert_int_equal(c.mtu, 1300);
	/* the environment beats the file (found through ZGATE_CONFIG) */
	assert_int_equal(agent_config_parse(&c, 1, argv2, env, &act, err, sizeof(err)), 0);
	assert_int_equal(c.keepalive_ms, 15000);
	assert_string_equal(c.tun, "envtun");
	assert_string_equal(c.relay, "file.example:443");
	/* and flags beat the environment, in both spellings */
	assert_int_equal(agent_config_parse(&c, 4, argv3, env, &act, err, sizeof(err)), 0);
	assert_int_equal(c.keepalive_ms, 7000);
	assert_string_equal(c.tun, "flagtun");
	unlink(file);
}

/* The checks across options (keepalive under idle_timeout, reconnect_min
 * under reconnect_max) name where each value came from: the file's line,
 * the variable, the flag or the default. */
static void test_cross_checks_name_their_sources(void **state)
{
	struct agent_config c;
	enum agent_action act;
	const char *file = tmpfile_with("relay: r:443\ncert: /f.crt\nkey: /f.key\nca: /f.ca\n"
					"reconnect_max: 2s\nidle_timeout: 20s\n");
	char *argv[] = { "zgate-agent", "--config", (char *)file, NULL, NULL };
	char *noenv[] = { NULL };
	char *env[] = { "ZGATE_KEEPALIVE=1m", NULL };
	char *env_idle[] = { "ZGATE_IDLE_TIMEOUT=40s", "ZGATE_RECONNECT_MIN=3s", NULL };
	char want[512];

	(void)state;
	/* the default keepalive (25s) against the file's idle_timeout */
	assert_int_equal(agent_config_parse(&c, 3, argv, noenv, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	(void)snprintf(want, sizeof(want),
		       "keepalive (default): 25000ms must be shorter than idle_timeout (20000ms, "
		       "%s:6), or the connection dies before the first PING",
		       file);
	assert_string_equal(err, want);
	/* a variable against the file */
	assert_int_equal(agent_config_parse(&c, 3, argv, env, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	(void)snprintf(want, sizeof(want),
		       "ZGATE_KEEPALIVE: 60000ms must be shorter than idle_timeout (20000ms, %s:6)",
		       file);
	assert_err(want);
	/* a variable against a variable; then a flag against the file */
	argv[3] = "--idle-timeout=30s";
	assert_int_equal(agent_config_parse(&c, 4, argv, env, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("ZGATE_KEEPALIVE: 60000ms must be shorter than idle_timeout (30000ms, "
		   "--idle-timeout)");
	assert_int_equal(agent_config_parse(&c, 3, argv, env_idle, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	(void)snprintf(want, sizeof(want),
		       "ZGATE_RECONNECT_MIN: 3000ms is longer than reconnect_max (2000ms, %s:5)",
		       file);
	assert_string_equal(err, want);
	argv[3] = "--reconnect-max=3s";
	assert_int_equal(agent_config_parse(&c, 4, argv, env_idle, &act, err, sizeof(err)), 0);
	unlink(file);
}

/* Under systemd (RuntimeDirectory=zgate) the status file defaults to
 * where `zgate-agent status` reads it; the file, variable and flag still
 * win, and an empty value still turns it off. */
static void test_status_file_default_under_systemd(void **state)
{
	struct agent_config c;
	enum agent_action act;
	char *argv[] = { "zgate-agent", "--relay", "r:1", "--cert", "c", "--key", "k", "--ca", "a",
			 "--status-file", "/tmp/mine.json" };
	char *rt[] = { "RUNTIME_DIRECTORY=/run/zgate:/run/other", NULL };
	char *rt_off[] = { "RUNTIME_DIRECTORY=/run/zgate", "ZGATE_STATUS_FILE=", NULL };
	char *rt_bad[] = { "RUNTIME_DIRECTORY=relative", NULL };

	(void)state;
	assert_int_equal(agent_config_parse(&c, 9, argv, rt, &act, err, sizeof(err)), 0);
	assert_string_equal(c.status_file, "/run/zgate/status.json");
	assert_int_equal(agent_config_parse(&c, 11, argv, rt, &act, err, sizeof(err)), 0);
	assert_string_equal(c.status_file, "/tmp/mine.json");
	assert_int_equal(agent_config_parse(&c, 9, argv, rt_off, &act, err, sizeof(err)), 0);
	assert_string_equal(c.status_file, "");
	assert_int_equal(agent_config_parse(&c, 9, argv, rt_bad, &act, err, sizeof(err)), 0);
	assert_string_equal(c.status_file, "");
	assert_int_equal(agent_config_parse(&c, 9, argv, NULL, &act, err, sizeof(err)), 0);
	assert_string_equal(c.status_file, "");
}

static void test_command_line(void **state)
{
	struct agent_config c;
	enum agent_action act;
	char *noenv[] = { NULL };
	char *help[] = { "zgate-agent", "--relay", "x", "--help", NULL };
	char *version[] = { "zgate-agent", "--version", NULL };
	char *check[] = { "zgate-agent", "--check-config", "--relay", "r:1", "--cert", "c",
			  "--key", "k", "--ca", "a", NULL };
	char *missing[] = { "zgate-agent", "--cert", "c", "--relay", NULL };
	char *positional[] = { "zgate-agent", "relay:443", NULL };
	char *unknown[] = { "zgate-agent", "--frobnicate", "1", NULL };
	char *nofile[] = { "zgate-agent", "--config", "/nonexistent/agent.yaml", NULL };
	char *helpval[] = { "zgate-agent", "--help=yes", NULL };

	(void)state;
	/* --help and --version need no valid configuration */
	assert_int_equal(agent_config_parse(&c, 4, help, noenv, &act, err, sizeof(err)), 0);
	assert_int_equal(act, AGENT_HELP);
	assert_int_equal(agent_config_parse(&c, 2, version, noenv, &act, err, sizeof(err)), 0);
	assert_int_equal(act, AGENT_VERSION);
	assert_int_equal(agent_config_parse(&c, 10, check, noenv, &act, err, sizeof(err)), 0);
	assert_int_equal(act, AGENT_CHECK_CONFIG);
	assert_string_equal(c.relay, "r:1");
	assert_int_equal(agent_config_parse(&c, 4, missing, noenv, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("--relay needs a value");
	assert_int_equal(agent_config_parse(&c, 2, positional, noenv, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("unexpected argument \"relay:443\"");
	assert_int_equal(agent_config_parse(&c, 3, unknown, noenv, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("unknown option --frobnicate (see --help)");
	/* a file that cannot be read is a configuration error: exit 2 */
	assert_int_equal(agent_config_parse(&c, 3, nofile, noenv, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("/nonexistent/agent.yaml: cannot open");
	assert_int_equal(agent_config_parse(&c, 2, helpval, noenv, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("--help takes no value");
}

static void test_file_error_through_parse(void **state)
{
	struct agent_config c;
	enum agent_action act;
	const char *file = tmpfile_with("relay: r:1\ncert: c\nkey: k\nca: a\n\nstatus_file:\n  x: 1\n");
	char *argv[] = { "zgate-agent", "--config", (char *)file, NULL };
	char *noenv[] = { NULL };
	char want[128];

	(void)state;
	assert_int_equal(agent_config_parse(&c, 3, argv, noenv, &act, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	(void)snprintf(want, sizeof(want), "%s:6:1: status_file: expected a single value", file);
	assert_err(want);
	unlink(file);
}

static void test_usage_lists_every_option(void **state)
{
	char buf[8192];
	size_t n;

	(void)state;
	n = agent_config_usage(buf, sizeof(buf));
	assert_true(n < sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_non_null(strstr(buf, "--relay HOST:PORT"));
	assert_non_null(strstr(buf, "--status-file FILE"));
	assert_non_null(strstr(buf, "variable ZGATE_RECONNECT_MAX, default \"30s\""));
	assert_non_null(strstr(buf, "--keepalive DURATION"));
	assert_non_null(strstr(buf, "--log-level LEVEL"));
	assert_non_null(strstr(buf, "--accept-routes PREFIX,..."));
	/* truncation still reports the length needed */
	assert_int_equal(agent_config_usage(buf, 10), n);
	assert_int_equal(strlen(buf), 9);
}

/* Issue 16 item 5: accept_routes, from the file (a list or a string), the
 * environment and flags; a flag replaces the file's list. */
static void test_i16_accept_routes(void **state)
{
	struct agent_config c;
	char s[64];
	char *env[] = { "ZGATE_ACCEPT_ROUTES=10.0.0.0/8", NULL };
	char *argv[] = { "zgate-agent", "--relay", "r:443", "--cert", "c", "--key", "k", "--ca", "a",
			 "--accept-routes=none", NULL };
	enum agent_action act;

	(void)state;
	agent_config_defaults(&c);
	assert_int_equal(c.accept_routes.filter, 0); /* every route by default */
	assert_int_equal(c.accept_routes.n, 0);

	assert_int_equal(load(&c, "accept_routes: [10.0.0.0/8, \"fd00::/8\", 192.0.2.7]\n"), 0);
	assert_int_equal(c.accept_routes.filter, 1);
	assert_int_equal(c.accept_routes.n, 3);
	assert_string_equal(routes_format(&c.accept_routes.p[0], s, sizeof(s)), "10.0.0.0/8");
	assert_string_equal(routes_format(&c.accept_routes.p[1], s, sizeof(s)), "fd00::/8");
	assert_string_equal(routes_format(&c.accept_routes.p[2], s, sizeof(s)), "192.0.2.7/32");

	assert_int_equal(load(&c, "accept_routes:\n  - 198.18.0.0/16\n"), 0);
	assert_int_equal(c.accept_routes.n, 1);
	assert_int_equal(load(&c, "accept_routes: \"198.18.0.0/16, 203.0.113.0/24 2001:db8::/32\"\n"), 0);
	assert_int_equal(c.accept_routes.n, 3);
	/* an empty list and "none": the filter with nothing in it */
	assert_int_equal(load(&c, "accept_routes: []\n"), 0);
	assert_int_equal(c.accept_routes.filter, 1);
	assert_int_equal(c.accept_routes.n, 0);
	assert_int_equal(load(&c, "accept_routes: \"\"\n"), 0);
	assert_int_equal(c.accept_routes.filter, 0);
	assert_int_equal(load(&c, "accept_routes: none\n"), 0);
	assert_int_equal(c.accept_routes.filter, 1);
	assert_int_equal(c.accept_routes.n, 0);

	/* errors name the place and the item */
	assert_int_equal(load(&c, "accept_routes: [10.0.0.1/8]\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:1:1: accept_routes: \"10.0.0.1/8\" has bits set after the prefix length");
	assert_int_equal(load(&c, "mtu: 0\naccept_routes:\n  - 10.0.0.0/8\n  - corp\n"), ZG_ERR_CONFIG);
	assert_err("agent.yaml:2:1: accept_routes: \"corp\" is not a prefix");
	assert_int_equal(load(&c, "accept_routes: [[10.0.0.0/8]]\n"), ZG_ERR_CONFIG);
	assert_err("accept_routes: expected a list of prefixes, found a list in it");
	assert_int_equal(load(&c, "accept_routes: [none]\n"), ZG_ERR_CONFIG);
	assert_err("\"none\" cannot be in a list");
	assert_int_equal(load(&c, "accept_routes: {a: 1}\n"), ZG_ERR_CONFIG);
	assert_err("accept_routes: expected a single value, found a mapping");
	{
		char big[70 * 16] = "accept_routes: [";
		for (int i = 0; i < 65; i++) {
			char one[24];
			(void)snprintf(one, sizeof(one), "%s10.%d.0.0/16", i ? ", " : "", i);
			strcat(big, one);
		}
		strcat(big, "]\n");
		assert_int_equal(load(&c, big), ZG_ERR_CONFIG);
		assert_err("accept_routes: more than 64 prefixes");
	}

	/* environment and flags replace */
	assert_int_equal(load(&c, "accept_routes: [198.18.0.0/16, fd00::/8]\n"), 0);
	assert_int_equal(agent_config_apply_env(&c, env, err, sizeof(err)), 0);
	assert_int_equal(c.accept_routes.n, 1);
	assert_string_equal(routes_format(&c.accept_routes.p[0], s, sizeof(s)), "10.0.0.0/8");
	assert_int_equal(agent_config_apply_flag(&c, "accept-routes", "10.0.0.0/8,fd00::/8", err,
						 sizeof(err)),
			 0);
	assert_int_equal(c.accept_routes.n, 2);
	assert_int_equal(agent_config_apply_flag(&c, "accept-routes", "10.0.0.0/33", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("--accept-routes: \"10.0.0.0/33\" is not a prefix");
	assert_int_equal(agent_config_parse(&c, 10, argv, NULL, &act, err, sizeof(err)), 0);
	assert_int_equal(c.accept_routes.filter, 1);
	assert_int_equal(c.accept_routes.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_ipv6_relay_template),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_file_errors_name_line_and_column),
		cmocka_unit_test(test_env_and_flags),
		cmocka_unit_test(test_relay_list),
		cmocka_unit_test(test_validate_errors),
		cmocka_unit_test(test_precedence_flag_env_file),
		cmocka_unit_test(test_cross_checks_name_their_sources),
		cmocka_unit_test(test_command_line),
		cmocka_unit_test(test_file_error_through_parse),
		cmocka_unit_test(test_usage_lists_every_option),
		cmocka_unit_test(test_i16_accept_routes),
		cmocka_unit_test(test_status_file_default_under_systemd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
