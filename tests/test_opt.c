/* test_opt.c — the command-line convention the three programs share
 * (src/common/opt.c: opt_next, opt_exit_code, durations, opt_version, the
 * option-table engine; src/common/yamlcfg.c: the YAML key walker and
 * the command line over them, yamlcfg_args()) and
 * the operator-facing log formats (src/common/log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_config.h"
#include "log.h"
#include "opt.h"
#include "relay/config.h"
#include "yamlcfg.h"
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

/* A relay worker's lines say which worker (log_set_worker). */
static void test_log_worker_tag(void **state)
{
	(void)state;
	log_set_worker(3);
	log_set_format(LOG_FMT_JSON);
	capture(emit_errno);
	assert_int_equal(strncmp(captured, "{\"ts\":\"", 7), 0);
	assert_non_null(strstr(captured, "\"level\":\"warn\",\"worker\":3,\"msg\":\"cannot open /x\""));
	log_set_format(LOG_FMT_TEXT);
	capture(emit_errno);
	assert_non_null(strstr(captured, " warn worker 3: cannot open /x: No such file or directory\n"));
	log_set_worker(-1);
	capture(emit_errno);
	assert_null(strstr(captured, "worker"));
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

/* The option-table engine on a table of its own: every built-in type, a
 * custom one with a YAML list, and a nested section. */
struct tcfg {
	char name[8];
	uint32_t n;
	uint16_t port;
	uint32_t wait_ms, grace_ms;
	int on;
	char level[16], format[8];
	char list[64];
	char sec_a[16];
	uint32_t sec_deep_b;
	struct opt_from from;
};

static int set_upper(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		     char *err_, size_t errlen)
{
	if (text[0] == '\0' || text[0] < 'A' || text[0] > 'Z') {
		zg_seterr(err_, errlen, "%s: \"%s\" must start with a capital", where, text);
		return ZG_ERR_CONFIG;
	}
	return opt_set_text((char *)cfg + o->off, o->size, text, where, err_, errlen);
}

#define TF(f) offsetof(struct tcfg, f), sizeof(((struct tcfg *)0)->f)
static const struct opt_spec topts[] = {
	{ .key = "name", .type = OPT_T_STR, TF(name), .def = "x", .help = "a name" },
	{ .key = "n", .type = OPT_T_U32, TF(n), .min = 1, .max = 9, .def = "3", .help = "a count" },
	{ .key = "port", .type = OPT_T_U32, TF(port), .min = 1, .max = 65535, .def = "443", .help = "a port" },
	{ .key = "wait", .type = OPT_T_DUR, TF(wait_ms), .min = 10, .max = 60000, .def = "1s", .help = "a wait" },
	{ .key = "grace", .type = OPT_T_DUR_MIN, TF(grace_ms), .min = 1000, .max = UINT32_MAX, .def = "30s", .help = "a grace" },
	{ .key = "on", .type = OPT_T_BOOL, TF(on), .def = "false", .help = "a switch" },
	{ .key = "log_level", .type = OPT_T_LEVEL, TF(level), .def = "info", .help = "a level" },
	{ .key = "log_format", .type = OPT_T_FORMAT, TF(format), .def = "text", .help = "a format" },
	{ .key = "list", .type = OPT_T_CUSTOM, TF(list), .def = "", .help = "a list", .meta = "ITEM,...", .set = set_upper, .list = 1 },
	{ .key = "sec.a", .type = OPT_T_STR, TF(sec_a), .def = "", .help = "in a section" },
	{ .key = "sec.deep.b", .type = OPT_T_U32, TF(sec_deep_b), .min = 0, .max = 5, .def = "", .help = "deeper" },
};
OPT_TABLE_FITS(topts);
static const struct opt_table ttable = OPT_TABLE_FROM(topts, struct tcfg, from);

static void test_opt_table_types_and_messages(void **state)
{
	struct tcfg c;

	(void)state;
	memset(&c, 0, sizeof(c));
	opt_defaults(&ttable, &c);
	assert_string_equal(c.name, "x");
	assert_int_equal(c.n, 3);
	assert_int_equal(c.port, 443); /* a 2-byte field gets a uint16_t */
	assert_int_equal(c.wait_ms, 1000);
	assert_int_equal(c.grace_ms, 30000);
	assert_int_equal(c.on, 0);
	assert_string_equal(c.level, "info");
	assert_string_equal(c.list, ""); /* "" defaults are left alone */

	assert_int_equal(opt_set(&c, &topts[0], "toolong!", "W", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "W: value is 8 bytes long; at most 7 allowed");
	assert_int_equal(opt_set(&c, &topts[1], "10", "W", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "W: \"10\" is not a whole number from 1 to 9");
	assert_int_equal(opt_set(&c, &topts[3], "5ms", "W", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "W: \"5ms\" is not a duration from 10ms to 60000ms (a whole number "
				 "with ms, s, m or h: 500ms, 25s, 5m)");
	assert_int_equal(opt_set(&c, &topts[4], "1", "W", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "W: \"1\" is not a duration of at least 1000ms (a whole number "
				 "with ms, s, m or h: 500ms, 60s, 5m, 2h)");
	assert_int_equal(opt_set(&c, &topts[5], "maybe", "W", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "W: \"maybe\" is not true or false (also yes/no, on/off, 1/0)");
	assert_int_equal(opt_set(&c, &topts[5], "yes", "W", err, sizeof(err)), 0);
	assert_int_equal(c.on, 1);
	/* the value is checked before its length */
	assert_int_equal(opt_set(&c, &topts[6], "extraordinarily-loud", "W", err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_string_equal(err, "W: \"extraordinarily-loud\" is not a log level (error, warn, info "
				 "or debug)");
	assert_int_equal(opt_set(&c, &topts[7], "xml", "W", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "W: \"xml\" is not a log format (text or json)");
	assert_int_equal(opt_set(&c, &topts[8], "lower", "W", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "W: \"lower\" must start with a capital");
	assert_int_equal(opt_set(&c, &topts[8], "Upper", "W", NULL, 0), 0);
	assert_string_equal(c.list, "Upper");
}

static void test_opt_table_keys_env_flags_usage(void **state)
{
	char keys[256], buf[4096];
	struct tcfg c;
	char *envp[] = { "PATH=/bin", "ZGATE_CONFIG=/x", "ZGATE_SEC_DEEP_B=4", NULL };
	char *bad[] = { "ZGATE_NOPE=1", NULL };
	size_t n;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_ptr_equal(opt_find(&ttable, "sec.axx", 5), &topts[9]);
	assert_null(opt_find(&ttable, "sec", 3));
	assert_true(opt_is_section(&ttable, "sec"));
	assert_true(opt_is_section(&ttable, "sec.deep"));
	assert_false(opt_is_section(&ttable, "se"));
	opt_keys_under(&ttable, "", keys, sizeof(keys));
	assert_string_equal(keys, "name, n, port, wait, grace, on, log_level, log_format, list, sec");
	opt_keys_under(&ttable, "sec", keys, sizeof(keys));
	assert_string_equal(keys, "a, deep");
	opt_keys_under(&ttable, "", keys, 12); /* cut, and terminated */
	assert_string_equal(keys, "name, n, po");

	assert_int_equal(opt_apply_env(&ttable, &c, envp, err, sizeof(err)), 0);
	assert_int_equal(c.sec_deep_b, 4);
	assert_int_equal(opt_apply_env(&ttable, &c, bad, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "environment: ZGATE_NOPE names no option (see --help)");
	assert_int_equal(opt_apply_flag(&ttable, &c, "log-level", "debug", err, sizeof(err)), 0);
	assert_string_equal(c.level, "debug");
	assert_int_equal(opt_apply_flag(&ttable, &c, "n", "0", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "--n: \"0\" is not a whole number from 1 to 9");
	assert_int_equal(opt_apply_flag(&ttable, &c, "nope", "1", err, sizeof(err)),
			 ZG_ERR_NOTFOUND);
	assert_string_equal(err, "unknown option --nope (see --help)");

	assert_int_equal(opt_table_kind("config", (void *)(uintptr_t)&ttable), OPT_ARG_VALUE);
	assert_int_equal(opt_table_kind("check-config", (void *)(uintptr_t)&ttable), OPT_ARG_NONE);
	assert_int_equal(opt_table_kind("on", (void *)(uintptr_t)&ttable), OPT_ARG_BOOL);
	assert_int_equal(opt_table_kind("sec-deep-b", (void *)(uintptr_t)&ttable), OPT_ARG_VALUE);
	assert_int_equal(opt_table_kind("sec", (void *)(uintptr_t)&ttable), OPT_ARG_UNKNOWN);

	n = opt_usage(&ttable, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_non_null(strstr(buf, "  --wait DURATION\n      a wait.\n      File key wait, "
				    "variable ZGATE_WAIT, default \"1s\".\n"));
	assert_non_null(strstr(buf, "  --list ITEM,...\n"));
	assert_non_null(strstr(buf, "  --on BOOL\n"));
	assert_int_equal(opt_usage(&ttable, buf, 10), n); /* the length is counted when cut */
	assert_int_equal(strlen(buf), 9);
}

/* A YAML list for "list": each item checked and set in turn; the number of
 * items is written into name. */
struct tjoin {
	struct tcfg *c;
	const struct opt_spec *o;
	const char *where;
};

static int titem(void *ctx, const yaml_event_t *ev, char *err_, size_t errlen)
{
	struct tjoin *j = ctx;

	if (ev->type != YAML_SCALAR_EVENT) {
		zg_seterr(err_, errlen, "%s: found %s in it", j->where, yamlcfg_kind(ev));
		return ZG_ERR_CONFIG;
	}
	if (set_upper(j->c, j->o, (const char *)ev->data.scalar.value, j->where, err_, errlen))
		return ZG_ERR_CONFIG;
	return 0;
}

static int tlist(void *cfg, const struct opt_spec *o, yaml_parser_t *p, const char *name,
		 const char *where, char *err_, size_t errlen)
{
	struct tjoin j = { .c = cfg, .o = o, .where = where };
	size_t n = 99;
	int r = yamlcfg_list(p, name, where, titem, &j, &n, err_, errlen);

	if (r == 0)
		(void)snprintf(j.c->name, sizeof(j.c->name), "%zu", n);
	return r;
}

static int tload(struct tcfg *c, const char *text)
{
	struct yamlcfg_opts y = { .t = &ttable, .cfg = c, .list = tlist };

	err[0] = '\0';
	return yamlcfg_load("t.yaml", text, strlen(text), yamlcfg_opts_mapping, &y, err,
			    sizeof(err));
}

static void test_yamlcfg_opts_mapping(void **state)
{
	struct tcfg c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(tload(&c, "n: 7\nsec:\n  a: hi\n  deep:\n    b: 5\nlist: [Ab, Cd]\n"), 0);
	assert_int_equal(c.n, 7);
	assert_string_equal(c.sec_a, "hi");
	assert_int_equal(c.sec_deep_b, 5);
	assert_string_equal(c.list, "Cd");
	assert_string_equal(c.name, "2"); /* yamlcfg_list counted the items */
	assert_int_equal(tload(&c, "list: []\n"), 0);
	assert_string_equal(c.name, "0");

	assert_int_equal(tload(&c, "sec:\n  x: 1\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:2:3: sec.x: unknown key (expected one of: a, deep)");
	assert_int_equal(tload(&c, "bogus: 1\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: bogus: unknown key (expected one of: name, n, port, "
				 "wait, grace, on, log_level, log_format, list, sec)");
	assert_int_equal(tload(&c, "sec: 1\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: sec: expected a mapping of keys, found a value");
	assert_int_equal(tload(&c, "n: [1]\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: n: expected a single value, found a list");
	assert_int_equal(tload(&c, "n: 0\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: n: \"0\" is not a whole number from 1 to 9");
	assert_int_equal(tload(&c, "? [a]\n: 1\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:3: expected a key, found a list");
	assert_int_equal(tload(&c, "list: [Ab, {x: 1}]\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: list: found a mapping in it");
	assert_int_equal(tload(&c, "list: [Ab, cd]\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: list: \"cd\" must start with a capital");
	/* a syntax error inside a list: "WHERE: not valid YAML" */
	assert_int_equal(tload(&c, "list: [Ab\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: list: not valid YAML: did not find expected ',' or ']'");
	assert_int_equal(tload(&c, "a:\n b:\n  c:\n   d:\n    e:\n     f: 1\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:1: a: unknown key (expected one of: name, n, port, wait, "
				 "grace, on, log_level, log_format, list, sec)");

	/* A key given twice in one mapping: YAML keeps the last, the loader
	 * refuses it at the second, with the first's line. */
	assert_int_equal(tload(&c, "n: 1\nname: x\nn: 2\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:3:1: n: given twice (first at line 1)");
	assert_int_equal(tload(&c, "sec:\n  a: x\n  a: y\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:3:3: sec.a: given twice (first at line 2)");
	assert_int_equal(tload(&c, "sec: {a: x}\nn: 1\nsec: {deep: {b: 1}}\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:3:1: sec: given twice (first at line 1)");
	assert_int_equal(tload(&c, "sec: {deep: {b: 1, b: 2}}\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:1:20: sec.deep.b: given twice (first at line 1)");
	assert_int_equal(tload(&c, "list: [Ab]\nlist: Cd\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:2:1: list: given twice (first at line 1)");
	/* an option set twice in one document, dotted in one place and nested
	 * in the other: the same option, so YAML's silent "last wins" again */
	assert_int_equal(tload(&c, "sec.a: x\nn: 1\nsec:\n  a: y\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:4:3: sec.a: given twice (first at line 1)");
	assert_int_equal(tload(&c, "sec: {a: x}\nsec.a: y\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:2:1: sec.a: given twice (first at line 1)");
	assert_int_equal(tload(&c, "sec.deep.b: 1\nsec: {deep: {b: 2}}\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:2:14: sec.deep.b: given twice (first at line 1)");
	assert_int_equal(tload(&c, "sec: {deep.b: 1}\nsec.deep: {b: 2}\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:2:12: sec.deep.b: given twice (first at line 1)");
	assert_int_equal(tload(&c, "sec:\n  deep: {b: 1}\nsec.deep:\n  b: 2\n"), ZG_ERR_CONFIG);
	assert_string_equal(err, "t.yaml:4:3: sec.deep.b: given twice (first at line 2)");
	/* a section named in two spellings is fine while its options differ */
	memset(&c, 0, sizeof(c));
	assert_int_equal(tload(&c, "sec.a: x\nsec: {deep: {b: 1}}\nsec.deep: {}\n"), 0);
	assert_string_equal(c.sec_a, "x");
	assert_int_equal(c.sec_deep_b, 1);
	/* each document is its own: loading it again is no repeat */
	assert_int_equal(tload(&c, "sec.a: z\n"), 0);
	assert_string_equal(c.sec_a, "z");
	/* each mapping has keys of its own */
	memset(&c, 0, sizeof(c));
	assert_int_equal(tload(&c, "sec: {a: y, deep: {b: 1}}\nn: 2\n"), 0);
	assert_string_equal(c.sec_a, "y");
	assert_int_equal(c.sec_deep_b, 1);
}

/* Where each option's value came from, kept as it is set: the file's line,
 * the variable, the flag or the default, in the two forms opt_where()
 * writes for a message across options. */
static void test_opt_where_names_each_source(void **state)
{
	char path[] = "/tmp/zg-optwhere-XXXXXX", want[64], w[OPT_FROM_FILE_MAX + 64];
	char *argv[] = { "prog", "--config", path, "--wait", "2s", NULL };
	char *env[] = { "ZGATE_PORT=80", NULL };
	static const char yml[] = "n: 2\nsec:\n  deep: {b: 4}\nport: 8\nwait: 5s\n";
	static const struct opt_table bare = { .v = topts, .n = sizeof(topts) / sizeof(topts[0]) };
	struct tcfg c;
	struct yamlcfg_args a = { .o = { .t = &ttable, .cfg = &c, .list = tlist }, .first = 1 };
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yml, sizeof(yml) - 1), (ssize_t)(sizeof(yml) - 1));
	close(fd);
	memset(&c, 0, sizeof(c));
	opt_defaults(&ttable, &c);
	assert_int_equal(yamlcfg_args(&a, 5, argv, env, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(c.port, 80);
	assert_int_equal(c.wait_ms, 2000);
	/* the file: its line, with the key as the table spells it */
	assert_int_equal(opt_where(&ttable, &c, "n", 1, w, sizeof(w)), OPT_SRC_FILE);
	(void)snprintf(want, sizeof(want), "%s:1: n", path);
	assert_string_equal(w, want);
	assert_int_equal(opt_where(&ttable, &c, "sec.deep.b", 1, w, sizeof(w)), OPT_SRC_FILE);
	(void)snprintf(want, sizeof(want), "%s:3: sec.deep.b", path);
	assert_string_equal(w, want);
	assert_int_equal(opt_where(&ttable, &c, "sec.deep.b", 0, w, sizeof(w)), OPT_SRC_FILE);
	(void)snprintf(want, sizeof(want), "%s:3", path);
	assert_string_equal(w, want);
	/* a variable over the file, a flag over both */
	assert_int_equal(opt_where(&ttable, &c, "port", 1, w, sizeof(w)), OPT_SRC_ENV);
	assert_string_equal(w, "ZGATE_PORT");
	assert_int_equal(opt_where(&ttable, &c, "port", 0, w, sizeof(w)), OPT_SRC_ENV);
	assert_string_equal(w, "ZGATE_PORT");
	assert_int_equal(opt_where(&ttable, &c, "wait", 1, w, sizeof(w)), OPT_SRC_FLAG);
	assert_string_equal(w, "--wait");
	/* untouched: the default */
	assert_int_equal(opt_where(&ttable, &c, "grace", 1, w, sizeof(w)), OPT_SRC_DEFAULT);
	assert_string_equal(w, "grace (default)");
	assert_int_equal(opt_where(&ttable, &c, "grace", 0, w, sizeof(w)), OPT_SRC_DEFAULT);
	assert_string_equal(w, "default");
	/* a value refused leaves the origin of the one kept */
	assert_int_equal(opt_apply_flag(&ttable, &c, "n", "0", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_int_equal(opt_where(&ttable, &c, "n", 0, w, sizeof(w)), OPT_SRC_FILE);
	assert_int_equal(opt_apply_flag(&ttable, &c, "sec-deep-b", "1", err, sizeof(err)), 0);
	assert_int_equal(opt_where(&ttable, &c, "sec.deep.b", 1, w, sizeof(w)), OPT_SRC_FLAG);
	assert_string_equal(w, "--sec-deep-b");
	/* cut to the room given, terminated */
	(void)opt_where(&ttable, &c, "grace", 1, w, 6);
	assert_string_equal(w, "grace");
	/* the defaults again: every origin is the default */
	opt_defaults(&ttable, &c);
	assert_int_equal(opt_where(&ttable, &c, "port", 1, w, sizeof(w)), OPT_SRC_DEFAULT);
	assert_string_equal(w, "port (default)");
	/* a key the table lacks, a table that keeps no origins: the key alone */
	assert_int_equal(opt_where(&ttable, &c, "nope", 1, w, sizeof(w)), OPT_SRC_DEFAULT);
	assert_string_equal(w, "nope");
	assert_int_equal(opt_apply_flag(&bare, &c, "n", "4", err, sizeof(err)), 0);
	assert_int_equal(opt_where(&bare, &c, "n", 1, w, sizeof(w)), OPT_SRC_DEFAULT);
	assert_string_equal(w, "n");
	assert_int_equal(opt_where(&bare, &c, "n", 0, w, sizeof(w)), OPT_SRC_DEFAULT);
	assert_string_equal(w, "");
}

/* yamlcfg_args(): the command line of every program with a table. A flag
 * wins over a variable over the file; --help/--version return before
 * anything is checked; --config "" means no file, even over ZGATE_CONFIG;
 * a file that cannot be read is a usage error naming it. */
static void test_yamlcfg_args(void **state)
{
	char path[] = "/tmp/zg-optargs-XXXXXX";
	char *argv[8] = { "prog", "--config", path, "--n", "7", "--check-config", NULL };
	char *env[] = { "ZGATE_N=5", "ZGATE_PORT=80", "ZGATE_CONFIG=/nonexistent/x.yaml", NULL };
	char *help[] = { "prog", "migrate", "--nope", "--help", NULL };
	char *ver[] = { "prog", "--nope", "--version", NULL };
	char *empty[] = { "prog", "--config", "", NULL };
	char *word[] = { "prog", "migrate", "--on", NULL };
	struct tcfg c;
	struct yamlcfg_args a = { .o = { .t = &ttable, .cfg = &c }, .first = 1 };
	char *const *av = argv, *const *ev = env;
	int ac = 6;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "n: 2\nport: 8\nname: f\n", 21), 21);
	close(fd);
	memset(&c, 0, sizeof(c));
	opt_defaults(&ttable, &c);
	assert_int_equal(yamlcfg_args(&a, ac, av, ev, err, sizeof(err)), 0);
	assert_int_equal(a.action, OPT_ACT_CHECK_CONFIG);
	assert_string_equal(a.file, path);
	assert_string_equal(c.name, "f"); /* the file */
	assert_int_equal(c.port, 80);     /* a variable over the file */
	assert_int_equal(c.n, 7);         /* a flag over a variable */
	/* ZGATE_CONFIG alone names the file */
	ac = 1;
	assert_int_equal(yamlcfg_args(&a, ac, av, ev, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "/nonexistent/x.yaml: cannot open: No such file or directory");
	/* --config "" overrides it: no file */
	av = empty;
	ac = 3;
	assert_int_equal(yamlcfg_args(&a, ac, av, ev, err, sizeof(err)), 0);
	assert_null(a.file);
	assert_int_equal(a.action, OPT_ACT_RUN);
	/* --help and --version win over a bad option */
	av = help;
	ac = 4;
	a.first = 2;
	assert_int_equal(yamlcfg_args(&a, ac, av, ev, err, sizeof(err)), 0);
	assert_int_equal(a.action, OPT_ACT_HELP);
	av = ver;
	ac = 3;
	a.first = 1;
	assert_int_equal(yamlcfg_args(&a, ac, av, ev, err, sizeof(err)), 0);
	assert_int_equal(a.action, OPT_ACT_VERSION);
	/* a command word is skipped only when first says so */
	av = word;
	ev = NULL;
	ac = 3;
	assert_int_equal(yamlcfg_args(&a, ac, av, ev, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "unexpected argument \"migrate\" (see --help)");
	a.first = 2;
	assert_int_equal(yamlcfg_args(&a, ac, av, ev, err, sizeof(err)), 0);
	assert_int_equal(c.on, 1);
	unlink(path);
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
		cmocka_unit_test(test_log_worker_tag),
		cmocka_unit_test(test_log_format_parse),
		cmocka_unit_test(test_opt_table_types_and_messages),
		cmocka_unit_test(test_opt_table_keys_env_flags_usage),
		cmocka_unit_test(test_yamlcfg_opts_mapping),
		cmocka_unit_test(test_yamlcfg_args),
		cmocka_unit_test(test_opt_where_names_each_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
