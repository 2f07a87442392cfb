/* opt.c — see opt.h. */
#include "opt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

void opt_name(const char *key, int env, char *out, size_t outlen)
{
	size_t n = 0;

	if (outlen == 0)
		return;
	if (env)
		n = (size_t)snprintf(out, outlen, "ZGATE_");
	if (n >= outlen)
		n = outlen - 1;
	for (; *key && n + 1 < outlen; key++) {
		char c = *key;

		if (c == '.' || c == '_')
			c = env ? '_' : '-';
		else if (env)
			c = (char)toupper((unsigned char)c);
		out[n++] = c;
	}
	out[n] = '\0';
}

int opt_parse_duration(const char *s, uint32_t *pms)
{
	unsigned long long v, mul;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return ZG_ERR_CONFIG;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return ZG_ERR_CONFIG;
	if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else if (*end == '\0' && v == 0)
		mul = 1; /* zero needs no unit */
	else
		return ZG_ERR_CONFIG;
	if (v > UINT32_MAX / mul)
		return ZG_ERR_CONFIG;
	*pms = (uint32_t)(v * mul);
	return 0;
}

int opt_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *pv)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return ZG_ERR_CONFIG;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return ZG_ERR_CONFIG;
	*pv = v;
	return 0;
}

int opt_require(const char *value, const char *key, char *err, size_t errlen)
{
	char flag[128], env[128];

	if (value[0] != '\0')
		return 0;
	opt_name(key, 0, flag, sizeof(flag));
	opt_name(key, 1, env, sizeof(env));
	zg_seterr(err, errlen, "%s: required; set it in the file, with --%s or with %s", key, flag,
		  env);
	return ZG_ERR_CONFIG;
}

int opt_parse_bool(const char *s, int *pb)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*pb = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*pb = 0;
			return 0;
		}
	}
	return ZG_ERR_CONFIG;
}

size_t opt_usage_entry(char *buf, size_t buflen, size_t at, const char *key, const char *meta,
		       const char *help, const char *def)
{
	char flag[128], env[128];
	int w;

	opt_name(key, 0, flag, sizeof(flag));
	opt_name(key, 1, env, sizeof(env));
	w = snprintf(at < buflen ? buf + at : NULL, at < buflen ? buflen - at : 0,
		     "  --%s %s\n      %s.\n      File key %s, variable %s%s%s%s.\n", flag, meta,
		     help, key, env, def[0] ? ", default \"" : "", def, def[0] ? "\"" : "");
	return w < 0 ? 0 : (size_t)w;
}

int opt_exit_code(int err)
{
	if (err == 0)
		return OPT_EXIT_OK;
	return err == ZG_ERR_CONFIG ? OPT_EXIT_USAGE : OPT_EXIT_FAILURE;
}

int opt_parse_duration_bare(const char *s, uint32_t bare_ms, uint32_t *pms)
{
	uint64_t v;

	if (opt_parse_duration(s, pms) == 0)
		return 0;
	if (bare_ms == 0 || opt_parse_uint(s, 0, UINT32_MAX / bare_ms, &v) != 0)
		return ZG_ERR_CONFIG;
	*pms = (uint32_t)v * bare_ms;
	return 0;
}

int opt_next(struct opt_cmdline *c, char *err, size_t errlen)
{
	const char *a, *eq;
	enum opt_arg k;
	size_t nl;

	if (c->i >= c->argc)
		return 0;
	a = c->argv[c->i++];
	c->value = NULL;
	if (strcmp(a, "-h") == 0) {
		(void)snprintf(c->name, sizeof(c->name), "help");
		return 1;
	}
	if (a[0] == '-' && a[1] != '-' && a[1] != '\0') {
		zg_seterr(err, errlen, "unknown option %.40s (see --help)", a);
		return ZG_ERR_CONFIG;
	}
	if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
		zg_seterr(err, errlen, "unexpected argument \"%.200s\" (see --help)", a);
		return ZG_ERR_CONFIG;
	}
	a += 2;
	eq = strchr(a, '=');
	nl = eq != NULL ? (size_t)(eq - a) : strlen(a);
	if (nl >= sizeof(c->name)) {
		zg_seterr(err, errlen, "unknown option --%.40s... (see --help)", a);
		return ZG_ERR_CONFIG;
	}
	memcpy(c->name, a, nl);
	c->name[nl] = '\0';
	if (strcmp(c->name, "help") == 0 || strcmp(c->name, "version") == 0)
		k = OPT_ARG_NONE;
	else
		k = c->kind(c->name, c->ctx);
	switch (k) {
	case OPT_ARG_UNKNOWN:
		zg_seterr(err, errlen, "unknown option --%s (see --help)", c->name);
		return ZG_ERR_CONFIG;
	case OPT_ARG_NONE:
		if (eq != NULL) {
			zg_seterr(err, errlen, "--%s takes no value", c->name);
			return ZG_ERR_CONFIG;
		}
		return 1;
	case OPT_ARG_BOOL:
		/* A bare boolean is true; only --name=false turns it off, so
		 * the next argument is never taken as its value. */
		c->value = eq != NULL ? eq + 1 : "true";
		return 1;
	case OPT_ARG_VALUE:
		break;
	}
	if (eq != NULL) {
		c->value = eq + 1;
		return 1;
	}
	if (c->i >= c->argc || strncmp(c->argv[c->i], "--", 2) == 0) {
		zg_seterr(err, errlen, "--%s needs a value (see --help)", c->name);
		return ZG_ERR_CONFIG;
	}
	c->value = c->argv[c->i++];
	return 1;
}
