#include "api/api_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hostport.h"
#include "log.h"
#include "opt.h"
#include "yamlcfg.h"
#include "zg_err.h"

enum api_opt_type {
	T_STR,
	T_U32,
	T_DUR,
	T_LEVEL,
	T_FORMAT
};

struct opt {
	const char *key;
	enum api_opt_type type;
	size_t off, size;
	uint32_t min, max;
	const char *def;
	const char *help;
	const char *meta;
};

#define F(f) offsetof(struct api_config, f), sizeof(((struct api_config *)0)->f)

static const struct opt opts[] = {
	{ "listen", T_STR, F(listen), 0, 0, "0.0.0.0:8443", "HTTPS address to listen on", "HOST:PORT" },
	{ "cert", T_STR, F(cert), 0, 0, "", "server certificate (PEM); required", "FILE" },
	{ "key", T_STR, F(key), 0, 0, "", "server private key (PEM); required", "FILE" },
	{ "ca", T_STR, F(ca), 0, 0, "",
	  "CA that relay (CN relay:ID) and admin (CN admin:NAME) client certificates must chain "
	  "to (PEM); required",
	  "FILE" },
	{ "database", T_STR, F(database), 0, 0, "",
	  "PostgreSQL connection string (libpq: \"host=/run/postgresql dbname=zgate\" or "
	  "postgresql://...); required",
	  "CONNINFO" },
	{ "admin_token_file", T_STR, F(admin_token_file), 0, 0, "",
	  "file holding the admin bearer token (one line); empty = admins by certificate only",
	  "FILE" },
	{ "pool", T_STR, F(pool), 0, 0, "10.100.0.0/24",
	  "IPv4 address pool shared by all relays, /16 to /30; .1 is the relays' gateway",
	  "PREFIX" },
	{ "lease_ttl", T_DUR, F(lease_ttl_ms), 60000, 4000000000u, "168h",
	  "a lease unused (not refreshed) this long may be given to another client", NULL },
	{ "threads", T_U32, F(threads), 1, 64, "4",
	  "HTTP worker threads, each with its own database connection", NULL },
	{ "db_timeout", T_DUR, F(db_timeout_ms), 100, 600000, "5s",
	  "a request fails with 503 when the database does not answer within this", NULL },
	{ "log_level", T_LEVEL, F(log_level), 0, 0, "info", "error, warn, info or debug", NULL },
	{ "log_format", T_FORMAT, F(log_format), 0, 0, "text",
	  "text (one line per event) or json (one JSON object per line)", NULL },
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static int set_opt(struct api_config *cfg, const struct opt *o, const char *text,
		   const char *where, char *err, size_t errlen)
{
	char *dst = (char *)cfg + o->off;
	enum log_level lvl;
	enum log_format fmt;
	uint64_t v;
	uint32_t u;

	switch (o->type) {
	case T_STR:
	case T_LEVEL:
	case T_FORMAT:
		if (strlen(text) >= o->size) {
			zg_seterr(err, errlen, "%s: value is %zu bytes long; at most %zu allowed", where,
				  strlen(text), o->size - 1);
			return ZG_ERR_CONFIG;
		}
		if (o->type == T_LEVEL && log_level_parse(text, &lvl) != 0) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not a log level (error, warn, info or debug)", where,
				  text);
			return ZG_ERR_CONFIG;
		}
		if (o->type == T_FORMAT && log_format_parse(text, &fmt) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a log format (text or json)", where,
				  text);
			return ZG_ERR_CONFIG;
		}
		memcpy(dst, text, strlen(text) + 1);
		return 0;
	case T_U32:
		if (opt_parse_uint(text, o->min, o->max, &v) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a whole number from %u to %u", where,
				  text, o->min, o->max);
			return ZG_ERR_CONFIG;
		}
		u = (uint32_t)v;
		memcpy(dst, &u, sizeof(u));
		return 0;
	case T_DUR:
		if (opt_parse_duration(text, &u) != 0 || u < o->min || u > o->max) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not a duration from %ums to %ums (a whole number with "
				  "ms, s, m or h: 500ms, 5s, 168h)",
				  where, text, o->min, o->max);
			return ZG_ERR_CONFIG;
		}
		memcpy(dst, &u, sizeof(u));
		return 0;
	}
	return ZG_ERR_INVAL;
}

void api_config_defaults(struct api_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_OPTS; i++)
		(void)set_opt(cfg, &opts[i], opts[i].def, "default", NULL, 0); /* tested to parse */
}

static const struct opt *find_key(const char *key)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

static int load_mapping(struct api_config *cfg, yaml_parser_t *p, const char *name, char *err,
			size_t errlen)
{
	yaml_event_t k, v;
	char where[512];
	const struct opt *o;
	int r;

	for (;;) {
		if (!yaml_parser_parse(p, &k))
			goto syntax;
		if (k.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&k);
			return 0;
		}
		if (k.type != YAML_SCALAR_EVENT) {
			zg_seterr(err, errlen, "%s:%zu:%zu: expected a key, found %s", name,
				  k.start_mark.line + 1, k.start_mark.column + 1, yamlcfg_kind(&k));
			yaml_event_delete(&k);
			return ZG_ERR_CONFIG;
		}
		(void)snprintf(where, sizeof(where), "%s:%zu:%zu: %.128s", name,
			       k.start_mark.line + 1, k.start_mark.column + 1,
			       (const char *)k.data.scalar.value);
		o = find_key((const char *)k.data.scalar.value);
		yaml_event_delete(&k);
		if (o == NULL) {
			zg_seterr(err, errlen, "%s: unknown key (see --help for the keys)", where);
			return ZG_ERR_CONFIG;
		}
		if (!yaml_parser_parse(p, &v))
			goto syntax;
		if (v.type == YAML_SCALAR_EVENT)
			r = set_opt(cfg, o, (const char *)v.data.scalar.value, where, err, errlen);
		else {
			zg_seterr(err, errlen, "%s: expected a single value, found %s", where, yamlcfg_kind(&v));
			r = ZG_ERR_CONFIG;
		}
		yaml_event_delete(&v);
		if (r != 0)
			return r;
	}
syntax:
	zg_seterr(err, errlen, "%s:%zu:%zu: not valid YAML: %s", name, p->problem_mark.line + 1,
		  p->problem_mark.column + 1, p->problem ? p->problem : "syntax error");
	return ZG_ERR_CONFIG;
}

static int mapping_cb(void *ctx, yaml_parser_t *p, const char *name, char *err, size_t errlen)
{
	return load_mapping(ctx, p, name, err, errlen);
}

int api_config_load_buf(struct api_config *cfg, const char *name, const char *text, size_t len,
			char *err, size_t errlen)
{
	return yamlcfg_load(name, text, len, mapping_cb, cfg, err, errlen);
}

static int load_file(struct api_config *cfg, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t n;
	int r = yamlcfg_read_file(path, &buf, &n, err, errlen);

	if (r == ZG_ERR_IO)
		return ZG_ERR_CONFIG; /* zgate-api: an unreadable file is a usage error (exit 2) */
	if (r != 0)
		return r;
	r = api_config_load_buf(cfg, path, buf, n, err, errlen);
	free(buf);
	return r;
}

static int apply_env(struct api_config *cfg, char *const *envp, char *err, size_t errlen)
{
	char name[64];

	for (; envp != NULL && *envp != NULL; envp++) {
		const char *kv = *envp, *eq = strchr(kv, '=');
		const struct opt *o = NULL;
		size_t klen;
		int r;

		if (strncmp(kv, "ZGATE_", 6) != 0 || eq == NULL)
			continue;
		klen = (size_t)(eq - kv);
		if (klen == 12 && strncmp(kv, "ZGATE_CONFIG", 12) == 0)
			continue;
		for (size_t i = 0; i < N_OPTS && o == NULL; i++) {
			opt_name(opts[i].key, 1, name, sizeof(name));
			if (strlen(name) == klen && strncmp(kv, name, klen) == 0)
				o = &opts[i];
		}
		if (o == NULL) {
			zg_seterr(err, errlen, "environment: %.*s names no option (see --help)",
				  (int)klen, kv);
			return ZG_ERR_CONFIG;
		}
		opt_name(o->key, 1, name, sizeof(name));
		if ((r = set_opt(cfg, o, eq + 1, name, err, errlen)) != 0)
			return r;
	}
	return 0;
}

static const struct opt *find_flag(const char *flag)
{
	char name[64];

	for (size_t i = 0; i < N_OPTS; i++) {
		opt_name(opts[i].key, 0, name, sizeof(name));
		if (strcmp(name, flag) == 0)
			return &opts[i];
	}
	return NULL;
}

int api_config_validate(struct api_config *cfg, char *err, size_t errlen)
{
	char host[256], net[64], *slash;
	struct in_addr a;
	uint64_t len;
	uint16_t port;
	uint32_t mask, ip;
	int r;

	if ((r = opt_require(cfg->cert, "cert", err, errlen)) != 0 ||
	    (r = opt_require(cfg->key, "key", err, errlen)) != 0 ||
	    (r = opt_require(cfg->ca, "ca", err, errlen)) != 0 ||
	    (r = opt_require(cfg->database, "database", err, errlen)) != 0)
		return r;
	if (hostport_split(cfg->listen, host, sizeof(host), &port) != 0 || port == 0) {
		zg_seterr(err, errlen, "listen: \"%s\" is not HOST:PORT (e.g. 0.0.0.0:8443, [::]:8443)",
			  cfg->listen);
		return ZG_ERR_CONFIG;
	}
	(void)snprintf(net, sizeof(net), "%s", cfg->pool);
	slash = strchr(net, '/');
	if (slash == NULL || (*slash = '\0', inet_pton(AF_INET, net, &a) != 1) ||
	    opt_parse_uint(slash + 1, 16, 30, &len) != 0) {
		zg_seterr(err, errlen,
			  "pool: \"%s\" is not an IPv4 prefix from /16 to /30 (e.g. 10.100.0.0/24)",
			  cfg->pool);
		return ZG_ERR_CONFIG;
	}
	mask = ~0u << (32 - len);
	ip = ntohl(a.s_addr);
	if (ip & ~mask) {
		zg_seterr(err, errlen,
			  "pool: \"%s\" has bits set after the prefix length (write the network's "
			  "first address)",
			  cfg->pool);
		return ZG_ERR_CONFIG;
	}
	cfg->pool_net = ip;
	cfg->pool_len = (uint8_t)len;
	cfg->pool_first = ip + 2;          /* network, gateway */
	cfg->pool_last = (ip | ~mask) - 1; /* broadcast */
	return 0;
}

static enum opt_arg flag_kind(const char *flag, void *ctx)
{
	(void)ctx;
	if (strcmp(flag, "config") == 0)
		return OPT_ARG_VALUE;
	if (strcmp(flag, "check-config") == 0)
		return OPT_ARG_NONE;
	return find_flag(flag) ? OPT_ARG_VALUE : OPT_ARG_UNKNOWN;
}

int api_config_parse(struct api_config *cfg, int argc, char *const *argv, char *const *envp,
		     enum api_action *paction, char *err, size_t errlen)
{
	struct opt_cmdline c;
	const char *file = NULL;
	char where[80];
	int r, pass, first = 1;

	*paction = API_RUN;
	api_config_defaults(cfg);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			*paction = API_HELP;
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0)
			*paction = API_VERSION;
	}
	if (*paction == API_VERSION)
		return 0;
	if (argc > 1 && strcmp(argv[1], "migrate") == 0) {
		*paction = API_MIGRATE;
		first = 2;
	}
	for (char *const *e = envp; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "ZGATE_CONFIG=", 13) == 0 && (*e)[13] != '\0')
			file = *e + 13;
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (file != NULL && (r = load_file(cfg, file, err, errlen)) != 0)
				return r;
			if ((r = apply_env(cfg, envp, err, errlen)) != 0)
				return r;
		}
		memset(&c, 0, sizeof(c));
		c.argc = argc;
		c.argv = argv;
		c.i = first;
		c.kind = flag_kind;
		while ((r = opt_next(&c, err, errlen)) == 1) {
			if (strcmp(c.name, "check-config") == 0) {
				if (*paction != API_MIGRATE)
					*paction = API_CHECK_CONFIG;
			} else if (strcmp(c.name, "config") == 0) {
				file = c.value;
			} else if (pass == 1) {
				(void)snprintf(where, sizeof(where), "--%s", c.name);
				if ((r = set_opt(cfg, find_flag(c.name), c.value, where, err, errlen)) != 0)
					return r;
			}
		}
		if (r != 0)
			return r;
	}
	return api_config_validate(cfg, err, errlen);
}

static const char *hint(enum api_opt_type t)
{
	switch (t) {
	case T_U32:
		return "N";
	case T_DUR:
		return "DURATION";
	case T_LEVEL:
		return "LEVEL";
	case T_FORMAT:
		return "FORMAT";
	case T_STR:
		break;
	}
	return "VALUE";
}

size_t api_config_usage(char *buf, size_t buflen)
{
	size_t n = 0;

	if (buflen)
		buf[0] = '\0';
	for (size_t i = 0; i < N_OPTS; i++)
		n += opt_usage_entry(buf, buflen, n, opts[i].key,
				     opts[i].meta ? opts[i].meta : hint(opts[i].type), opts[i].help,
				     opts[i].def);
	return n;
}
