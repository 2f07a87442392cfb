/* opt.c — see opt.h. */
#include "opt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
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

int opt_set_text(char *dst, size_t size, const char *text, const char *where, char *err,
		 size_t errlen)
{
	size_t n = strlen(text);

	if (n >= size) {
		zg_seterr(err, errlen, "%s: value is %zu bytes long; at most %zu allowed", where, n,
			  size - 1);
		return ZG_ERR_CONFIG;
	}
	memcpy(dst, text, n + 1);
	return 0;
}

int opt_set(void *cfg, const struct opt_spec *o, const char *text, const char *where, char *err,
	    size_t errlen)
{
	char *dst = (char *)cfg + o->off;
	enum log_level lvl;
	enum log_format fmt;
	uint64_t v;
	uint32_t u;
	int b;

	switch (o->type) {
	case OPT_T_STR:
		return opt_set_text(dst, o->size, text, where, err, errlen);
	case OPT_T_LEVEL:
		if (log_level_parse(text, &lvl) != 0) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not a log level (error, warn, info or debug)", where,
				  text);
			return ZG_ERR_CONFIG;
		}
		return opt_set_text(dst, o->size, text, where, err, errlen);
	case OPT_T_FORMAT:
		if (log_format_parse(text, &fmt) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a log format (text or json)", where,
				  text);
			return ZG_ERR_CONFIG;
		}
		return opt_set_text(dst, o->size, text, where, err, errlen);
	case OPT_T_U32:
		if (opt_parse_uint(text, o->min, o->max, &v) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a whole number from %llu to %llu",
				  where, text, (unsigned long long)o->min, (unsigned long long)o->max);
			return ZG_ERR_CONFIG;
		}
		if (o->size == sizeof(uint16_t)) {
			uint16_t v16 = (uint16_t)v;

			memcpy(dst, &v16, sizeof(v16));
		} else {
			u = (uint32_t)v;
			memcpy(dst, &u, sizeof(u));
		}
		return 0;
	case OPT_T_DUR:
	case OPT_T_DUR_MIN:
		if (opt_parse_duration(text, &u) != 0 || u < o->min || u > o->max) {
			if (o->type == OPT_T_DUR)
				zg_seterr(err, errlen,
					  "%s: \"%s\" is not a duration from %llums to %llums (a whole "
					  "number with ms, s, m or h: 500ms, 25s, 5m)",
					  where, text, (unsigned long long)o->min,
					  (unsigned long long)o->max);
			else
				zg_seterr(err, errlen,
					  "%s: \"%s\" is not a duration of at least %llums (a whole "
					  "number with ms, s, m or h: 500ms, 60s, 5m, 2h)",
					  where, text, (unsigned long long)o->min);
			return ZG_ERR_CONFIG;
		}
		memcpy(dst, &u, sizeof(u));
		return 0;
	case OPT_T_BOOL:
		if (opt_parse_bool(text, &b) != 0) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not true or false (also yes/no, on/off, 1/0)", where,
				  text);
			return ZG_ERR_CONFIG;
		}
		memcpy(dst, &b, sizeof(b));
		return 0;
	case OPT_T_CUSTOM:
		if (o->set != NULL)
			return o->set(cfg, o, text, where, err, errlen);
		break;
	}
	zg_seterr(err, errlen, "%s: the option table is wrong", where);
	return ZG_ERR_INVAL;
}

/* cfg's origins, or NULL when t keeps none. */
static struct opt_from *from_of(const struct opt_table *t, const void *cfg)
{
	return t->has_from ? (struct opt_from *)(uintptr_t)((const char *)cfg + t->from_off) : NULL;
}

void opt_from_note(const struct opt_table *t, void *cfg, const struct opt_spec *o,
		   enum opt_src src, size_t line)
{
	struct opt_from *f = from_of(t, cfg);
	size_t i;

	if (f == NULL || o < t->v || o >= t->v + t->n)
		return;
	i = (size_t)(o - t->v);
	if (i >= OPT_FROM_MAX) /* OPT_TABLE_FITS() keeps the programs' tables within */
		return;
	f->src[i] = (uint8_t)src;
	f->line[i] = src == OPT_SRC_FILE && line <= UINT32_MAX ? (uint32_t)line : 0;
}

void opt_from_file(const struct opt_table *t, void *cfg, const char *file)
{
	struct opt_from *f = from_of(t, cfg);

	if (f != NULL)
		(void)snprintf(f->file, sizeof(f->file), "%s", file);
}

enum opt_src opt_where(const struct opt_table *t, const void *cfg, const char *key, int lead,
		       char *out, size_t outlen)
{
	const struct opt_from *f = from_of(t, cfg);
	const struct opt_spec *o = opt_find(t, key, strlen(key));
	enum opt_src src = OPT_SRC_DEFAULT;
	char name[128];
	size_t i;

	if (outlen == 0)
		return src;
	if (f == NULL || o == NULL || (i = (size_t)(o - t->v)) >= OPT_FROM_MAX) {
		(void)snprintf(out, outlen, "%s", lead ? key : "");
		return src;
	}
	src = (enum opt_src)f->src[i];
	switch (src) {
	case OPT_SRC_FILE:
		if (lead)
			(void)snprintf(out, outlen, "%s:%u: %s", f->file, (unsigned)f->line[i], key);
		else
			(void)snprintf(out, outlen, "%s:%u", f->file, (unsigned)f->line[i]);
		break;
	case OPT_SRC_ENV:
		opt_name(key, 1, out, outlen);
		break;
	case OPT_SRC_FLAG:
		opt_name(key, 0, name, sizeof(name));
		(void)snprintf(out, outlen, "--%s", name);
		break;
	case OPT_SRC_DEFAULT:
	default:
		src = OPT_SRC_DEFAULT;
		(void)snprintf(out, outlen, "%s%s", lead ? key : "default", lead ? " (default)" : "");
		break;
	}
	return src;
}

void opt_defaults(const struct opt_table *t, void *cfg)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i].def[0] != '\0')
			(void)opt_set(cfg, &t->v[i], t->v[i].def, "default", NULL, 0);
		opt_from_note(t, cfg, &t->v[i], OPT_SRC_DEFAULT, 0);
	}
}

const struct opt_spec *opt_find(const struct opt_table *t, const char *key, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->v[i].key) == len && strncmp(t->v[i].key, key, len) == 0)
			return &t->v[i];
	return NULL;
}

int opt_is_section(const struct opt_table *t, const char *key)
{
	size_t n = strlen(key);

	for (size_t i = 0; i < t->n; i++)
		if (strncmp(t->v[i].key, key, n) == 0 && t->v[i].key[n] == '.')
			return 1;
	return 0;
}

/* The first component of key below section, or NULL when key is not in
 * section; *plen is its length. */
static const char *key_below(const char *key, const char *section, size_t sl, size_t *plen)
{
	const char *rest, *dot;

	if (sl && (strncmp(key, section, sl) != 0 || key[sl] != '.'))
		return NULL;
	rest = sl ? key + sl + 1 : key;
	dot = strchr(rest, '.');
	*plen = dot ? (size_t)(dot - rest) : strlen(rest);
	return rest;
}

void opt_keys_under(const struct opt_table *t, const char *section, char *out, size_t outlen)
{
	size_t sl = strlen(section), n = 0, kl, ql;

	if (outlen == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < t->n; i++) {
		const char *rest = key_below(t->v[i].key, section, sl, &kl), *q;
		int dup = 0, w;

		if (rest == NULL)
			continue;
		/* a section stands once, however many keys it holds */
		for (size_t j = 0; j < i && !dup; j++)
			if ((q = key_below(t->v[j].key, section, sl, &ql)) != NULL && ql == kl &&
			    strncmp(q, rest, kl) == 0)
				dup = 1;
		if (dup)
			continue;
		w = snprintf(out + n, outlen - n, "%s%.*s", n ? ", " : "", (int)kl, rest);
		if (w < 0 || (size_t)w >= outlen - n)
			return;
		n += (size_t)w;
	}
}

/* The option whose flag is flag, or NULL. */
static const struct opt_spec *find_flag(const struct opt_table *t, const char *flag)
{
	char name[128];

	for (size_t i = 0; i < t->n; i++) {
		opt_name(t->v[i].key, 0, name, sizeof(name));
		if (strcmp(name, flag) == 0)
			return &t->v[i];
	}
	return NULL;
}

int opt_apply_env(const struct opt_table *t, void *cfg, char *const *envp, char *err,
		  size_t errlen)
{
	char name[128];

	for (; envp != NULL && *envp != NULL; envp++) {
		const char *kv = *envp, *eq = strchr(kv, '=');
		const struct opt_spec *o = NULL;
		size_t klen;
		int r;

		if (strncmp(kv, "ZGATE_", 6) != 0 || eq == NULL)
			continue;
		klen = (size_t)(eq - kv);
		if (klen == 12 && strncmp(kv, "ZGATE_CONFIG", 12) == 0)
			continue;
		for (size_t i = 0; i < t->n && o == NULL; i++) {
			opt_name(t->v[i].key, 1, name, sizeof(name));
			if (strlen(name) == klen && strncmp(kv, name, klen) == 0)
				o = &t->v[i];
		}
		if (o == NULL) {
			zg_seterr(err, errlen, "environment: %.*s names no option (see --help)",
				  (int)klen, kv);
			return ZG_ERR_CONFIG;
		}
		opt_name(o->key, 1, name, sizeof(name));
		if ((r = opt_set(cfg, o, eq + 1, name, err, errlen)) != 0)
			return r;
		opt_from_note(t, cfg, o, OPT_SRC_ENV, 0);
	}
	return 0;
}

int opt_apply_flag(const struct opt_table *t, void *cfg, const char *flag, const char *value,
		   char *err, size_t errlen)
{
	const struct opt_spec *o = find_flag(t, flag);
	char where[160];
	int r;

	if (o == NULL) {
		zg_seterr(err, errlen, "unknown option --%s (see --help)", flag);
		return ZG_ERR_NOTFOUND;
	}
	(void)snprintf(where, sizeof(where), "--%s", flag);
	if ((r = opt_set(cfg, o, value, where, err, errlen)) != 0)
		return r;
	opt_from_note(t, cfg, o, OPT_SRC_FLAG, 0);
	return 0;
}

enum opt_arg opt_table_kind(const char *flag, void *ctx)
{
	const struct opt_spec *o;

	if (strcmp(flag, "config") == 0)
		return OPT_ARG_VALUE;
	if (strcmp(flag, "check-config") == 0)
		return OPT_ARG_NONE;
	if ((o = find_flag(ctx, flag)) == NULL)
		return OPT_ARG_UNKNOWN;
	return o->type == OPT_T_BOOL ? OPT_ARG_BOOL : OPT_ARG_VALUE;
}

static const char *type_meta(enum opt_type t)
{
	switch (t) {
	case OPT_T_U32:
		return "N";
	case OPT_T_DUR:
	case OPT_T_DUR_MIN:
		return "DURATION";
	case OPT_T_BOOL:
		return "BOOL";
	case OPT_T_LEVEL:
		return "LEVEL";
	case OPT_T_FORMAT:
		return "FORMAT";
	case OPT_T_STR:
	case OPT_T_CUSTOM:
		break;
	}
	return "VALUE";
}

size_t opt_usage(const struct opt_table *t, char *buf, size_t buflen)
{
	size_t n = 0;

	if (buflen)
		buf[0] = '\0';
	for (size_t i = 0; i < t->n; i++)
		n += opt_usage_entry(buf, buflen, n, t->v[i].key,
				     t->v[i].meta ? t->v[i].meta : type_meta(t->v[i].type),
				     t->v[i].help, t->v[i].def);
	return n;
}
