/* test_opt.c — the command-line convention the three programs share
 * (src/common/opt.c: opt_next, opt_exit_code, durations, opt_version) and
 * the operator-facing log formats (src/common/log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent_config.h"
#include "log.h"
#include "opt.h"
#include "relay/config.h"
#include "zg_err.h"

static char err[256];

/* A program with one value option (--name), one boolean (--ipv6) and one
 * action (--check). */
static enum opt_arg kind(const char *name, void *ctx)
{
	(void)ctx;
	if (strcmp(name, "name") == 0)
		return OPT_ARG_VALUE;
	if (strcmp(name, "ipv6") == 0)
		return OPT_ARG_BOOL;
	if (strcmp(name, "check") == 0)
		return OPT_ARG_NONE;
	return OPT_ARG_UNKNOWN;
}

/* Walks argv (NULL-terminated) into "name=value;..." in out; returns the
 * last opt_next() result (0 or an error). */
static int walk(char **argv, char *out, size_t outlen)
{
	struct opt_cmdline c;
	size_t n = 0;
	int argc = 0, r;

	while (argv[argc] != NULL)
		argc++;
	memset(&c, 0, sizeof(c));
	c.argc = argc;
	c.argv = argv;
	c.i = 1;
	c.kind = kind;
	out[0] = '\0';
	err[0] = '\0';
	while ((r = opt_next(&c, err, sizeof(err))) == 1) {
		int w = snprintf(out + n, outlen - n, "%s=%s;", c.name, c.value ? c.value : "-");
		assert_true(w > 0 && (size_t)w < outlen - n);
		n += (size_t)w;
	}
	return r;
}

static void test_opt_next_values_and_bare_booleans(void **state)
{
	char out[256];
	char *a1[] = { "p", "--name", "x", "--name=y", "--ipv6", "--check", NULL };
	char *a2[] = { "p", "--ipv6", "--name", "z", NULL };
	char *a3[] = { "p", "--ipv6=false", "-h", "--version", NULL };

	(void)state;
	assert_int_equal(walk(a1, out, sizeof(out)), 0);
	assert_string_equal(out, "name=x;name=y;ipv6=true;check=-;");
	/* a bare boolean never takes the next argument as its value */
	assert_int_equal(walk(a2, out, sizeof(out)), 0);
	assert_string_equal(out, "ipv6=true;name=z;");
	assert_int_equal(walk(a3, out, sizeof(out)), 0);
	assert_string_equal(out, "ipv6=false;help=-;version=-;");
}

static void test_opt_next_errors(void **state)
{
	char out[256];
	char *unknown[] = { "p", "--x", NULL };
	char *unknown_eq[] = { "p", "--frob=1", NULL };
	char *short_opt[] = { "p", "-v", NULL };
	char *positional[] = { "p", "file", NULL };
	char *novalue[] = { "p", "--name", NULL };
	char *flagvalue[] = { "p", "--name", "--ipv6", NULL };
	char *actionvalue[] = { "p", "--check=1", NULL };
	char *dashdash[] = { "p", "--", NULL };

	(void)state;
	assert_int_equal(walk(unknown, out, sizeof(out)), ZG_ERR_CONFIG);
	assert_string_equal(err, "unknown option --x (see --help)");
	assert_int_equal(walk(unknown_eq, out, sizeof(out)), ZG_ERR_CONFIG);
	assert_string_equal(err, "unknown option --frob (see --help)");
	assert_int_equal(walk(short_opt, out, sizeof(out)), ZG_ERR_CONFIG);
	assert_string_equal(err, "unknown option -v (see --help)");
	assert_int_equal(walk(positional, out, sizeof(out)), ZG_ERR_CONFIG);
	assert_string_equal(err, "unexpected argument \"file\" (see --help)");
	assert_int_equal(walk(novalue, out, sizeof(out)), ZG_ERR_CONFIG);
	assert_string_equal(err, "--name needs a value (see --help)");
	assert_int_equal(walk(flagvalue, out, sizeof(out)), ZG_ERR_CONFIG);
	assert_string_equal(err, "--name needs a value (see --help)");
	assert_int_equal(walk(actionvalue, out, sizeof(out)), ZG_ERR_CONFIG);
	assert_string_equal(err, "--check takes no value");
	assert_int_equal(walk(dashdash, out, sizeof(out)), ZG_ERR_CONFIG);
	/* every one of them is a usage error: exit status 2 */
	assert_int_equal(opt_exit_code(ZG_ERR_CONFIG), 2);
	assert_int_equal(opt_exit_code(0), 0);
	assert_int_equal(opt_exit_code(ZG_ERR_IO), 1);
	assert_int_equal(opt_exit_code(ZG_ERR_NOMEM), 1);
}

/* The relay and the agent follow the same rules: same message for an
 * unknown option, bare booleans, usage errors (exit 2) for a file that
 * cannot be read. */
static void test_programs_share_the_rules(void **state)
{
	struct relay_config rc;
	struct agent_config ac;
	enum config_action ract;
	enum agent_action aact;
	char path[256];
	char *noenv[] = { NULL };
	char *r_unknown[] = { "zgate-relay", "--x", NULL };
	char *a_unknown[] = { "zgate-agent", "--x", NULL };
	char *r_nofile[] = { "zgate-relay", "--config", "/nonexistent/relay.yaml", NULL };
	char *a_nofile[] = { "zgate-agent", "--config", "/nonexistent/agent.yaml", NULL };
	char *a_bare[] = { "zgate-agent", "--ipv6", "--relay", "r:1", "--cert", "c", "--key", "k",
			   "--ca", "a", "--log-format", "json", NULL };
	char *r_help[] = { "zgate-relay", "--x", "-h", NULL };
	char *r_fmt[] = { "zgate-relay", "--log-format", "xml", NULL };

	(void)state;
	assert_int_equal(config_parse_args(&rc, 2, r_unknown, noenv, &ract, path, sizeof(path), err,
					   sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "unknown option --x (see --help)");
	assert_int_equal(agent_config_parse(&ac, 2, a_unknown, noenv, &aact, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "unknown option --x (see --help)");
	assert_int_equal(opt_exit_code(config_parse_args(&rc, 3, r_nofile, noenv, &ract, path,
							 sizeof(path), err, sizeof(err))),
			 OPT_EXIT_USAGE);
	assert_non_null(strstr(err, "/nonexistent/relay.yaml"));
	assert_int_equal(opt_exit_code(agent_config_parse(&ac, 3, a_nofile, noenv, &aact, err,
							  sizeof(err))),
			 OPT_EXIT_USAGE);
	assert_non_null(strstr(err, "/nonexistent/agent.yaml"));
	assert_int_equal(agent_config_parse(&ac, 12, a_bare, noenv, &aact, err, sizeof(err)), 0);
	assert_int_equal(ac.ipv6, 1);
	assert_string_equal(ac.relay, "r:1");
	assert_string_equal(ac.log_format, "json");
	/* --help wins over a bad option */
	assert_int_equal(config_parse_args(&rc, 3, r_help, noenv, &ract, path, sizeof(path), err,
					   sizeof(err)),
			 0);
	assert_int_equal(ract, CONFIG_HELP);
	assert_int_equal(config_parse_args(&rc, 3, r_fmt, noenv, &ract, path, sizeof(path), err,
					   sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "--log-format: \"xml\" is not a log format (text or json)");
}

static void test_durations_with_units_and_bare_numbers(void **state)
{
	uint32_t ms = 7;

	(void)state;
	assert_int_equal(opt_parse_duration_bare("500ms", 1000, &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(opt_parse_duration_bare("2s", 1, &ms), 0);
	assert_int_equal(ms, 2000);
	/* a bare number, in the option's old unit */
	assert_int_equal(opt_parse_duration_bare("3", 1000, &ms), 0);
	assert_int_equal(ms, 3000);
	assert_int_equal(opt_parse_duration_bare("50", 1, &ms), 0);
	assert_int_equal(ms, 50);
	/* without a bare unit, a unit is needed */
	assert_int_equal(opt_parse_duration_bare("3", 0, &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration_bare("2x", 1000, &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration_bare("-1", 1000, &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration_bare("4294968", 1000, &ms), ZG_ERR_CONFIG);
	assert_int_equal(opt_parse_duration_bare("1.5s", 1000, &ms), ZG_ERR_CONFIG);
}

static void test_version_names_commit_and_libraries(void **state)
{
	char v[1024];
	const char *const names[] = { "zgate-test " ZG_VERSION " (commit ", "\nngtcp2 ",
				      "\nnghttp3 ", "\nwolfSSL ", "\nlwIP ", "\nlibevent " };
	size_t n;

	(void)state;
	n = opt_version("zgate-test", v, sizeof(v));
	assert_int_equal(n, strlen(v));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_non_null(strstr(v, names[i]));
	assert_null(strstr(v, "unknown\n")); /* each library reported a version */
	/* cut to fit, still terminated, the length needed returned */
	assert_int_equal(opt_version("zgate-test", v, 10), n);
	assert_int_equal(strlen(v), 9);
}

/* ---- a strict checker for one log line: a JSON object whose values are
 * strings (RFC 8259 string grammar), then "\n" and nothing else. */
static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20 || *p == '\0')
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || p[i] == '\0')
						return NULL;
				p += 5;
				continue;
			}
			if (*p == '\0' || !strchr("\"\\/bfnrt", *p))
				return NULL;
		}
		p++;
	}
	return p + 1;
}

static int json_line_ok(const char *p)
{
	if (*p++ != '{')
		return 0;
	for (;;) {
		if ((p = json_string(p)) == NULL || *p++ != ':' || (p = json_string(p)) == NULL)
			return 0;
		if (*p == '}')
			break;
		if (*p++ != ',')
			return 0;
	}
	return strcmp(p, "}\n") == 0;
}

static char captured[4096];

static void capture(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	size_t n;

	assert_non_null(tmp);
	log_set_output(tmp);
	fn();
	log_set_output(NULL);
	rewind(tmp);
	n = fread(captured, 1, sizeof(captured) - 1, tmp);
	captured[n] = '\0';
	fclose(tmp);
}

static void emit_nasty(void)
{
	log_info("quote \" backslash \\ newline \n tab \t bell \a bad \xff end");
}

static void emit_errno(void)
{
	errno = ENOENT;
	log_warn("cannot open %s", "/x");
}

static void emit_debug(void)
{
	log_debug("dbg");
}

static void test_log_json_lines(void **state)
{
	(void)state;
	log_set_format(LOG_FMT_JSON);
	capture(emit_nasty);
	assert_true(json_line_ok(captured));
	assert_non_null(strstr(captured, "\"level\":\"info\""));
	assert_non_null(strstr(captured, "\"ts\":\""));
	assert_non_null(strstr(captured,
			       "\"msg\":\"quote \\\" backslash \\\\ newline \\n tab \\t bell "
			       "\\u0007 bad \\ufffd end\"}"));
	assert_null(strstr(captured, "emit_nasty"));
	capture(emit_errno);
	assert_true(json_line_ok(captured));
	assert_non_null(strstr(captured, "\"msg\":\"cannot open /x\",\"error\":\"No such file or "
					 "directory\"}\n"));
	log_set_level(LOG_LVL_DEBUG);
	capture(emit_debug);
	log_set_level(LOG_LVL_INFO);
	assert_true(json_line_ok(captured));
	assert_non_null(strstr(captured, "\"func\":\"emit_debug\""));
	log_set_format(LOG_FMT_TEXT);
	capture(emit_errno);
	assert_null(strchr(captured, '{'));
	assert_non_null(strstr(captured, " warn cannot open /x: No such file or directory\n"));
}

static void test_log_format_parse(void **state)
{
	enum log_format f = LOG_FMT_JSON;

	(void)state;
	assert_int_equal(log_format_parse("text", &f), 0);
	assert_int_equal(f, LOG_FMT_TEXT);
	assert_int_equal(log_format_parse("json", &f), 0);
	assert_int_equal(f, LOG_FMT_JSON);
	assert_int_equal(log_format_parse("JSON", &f), ZG_ERR_INVAL);
	assert_int_equal(log_format_parse("", &f), ZG_ERR_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opt_next_values_and_bare_booleans),
		cmocka_unit_test(test_opt_next_errors),
		cmocka_unit_test(test_programs_share_the_rules),
		cmocka_unit_test(test_durations_with_units_and_bare_numbers),
		cmocka_unit_test(test_version_names_commit_and_libraries),
		cmocka_unit_test(test_log_json_lines),
		cmocka_unit_test(test_log_format_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
