#include "connector/conn_config.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "hostport.h"
#include "log.h"
#include "masque/uri.h"
#include "opt.h"
#include "yamlcfg.h"
#include "zg_err.h"

static int set_relays(void *cfg, const struct opt_spec *o, const char *text,
		      const char *where, char *err, size_t errlen);
static int set_prefixes(void *cfg, const struct opt_spec *o, const char *text,
			const char *where, char *err, size_t errlen);
static int set_audit(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		     char *err, size_t errlen);
static int set_ops_listen(void *cfg, const struct opt_spec *o, const char *text,
			  const char *where, char *err, size_t errlen);
static int set_port(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		    char *err, size_t errlen);

#define F(f) offsetof(struct conn_config, f), sizeof(((struct conn_config *)0)->f)
#define STR(k, f)                                            \
	{                                                    \
		.key = k, .type = OPT_T_STR, F(f), .def = "" \
	}
#define DUR(k, f, lo, hi, d)                                                      \
	{                                                                         \
		.key = k, .type = OPT_T_DUR, F(f), .min = lo, .max = hi, .def = d \
	}
#define C(k, f, d, fn, l)                                                            \
	{                                                                            \
		.key = k, .type = OPT_T_CUSTOM, F(f), .def = d, .set = fn, .list = l \
	}

/* The file's keys, in the order "unknown key" lists them. The connector
 * has no flags or variables, so no --help text. */
static const struct opt_spec opts[] = {
	C("relays", relays, "", set_relays, 1),
	STR("server_name", server_name),
	STR("ca", ca),
	STR("cert", cert),
	STR("key", key),
	C("prefixes", prefixes, "", set_prefixes, 1),
	STR("policy", policy),
	C("audit", audit, "-", set_audit, 0),
	C("ops_listen", ops_listen, "127.0.0.1:9201", set_ops_listen, 0),
	C("inner_port", inner_port, "443", set_port, 0),
	{ .key = "log_level", .type = OPT_T_LEVEL, F(log_level), .def = "info" },
	DUR("reconnect_min", reconnect_min_ms, 10, 60000, "500ms"),
	DUR("reconnect_max", reconnect_max_ms, 100, 3600000, "30s"),
	DUR("keepalive", keepalive_ms, 0, 3600000, "25s"),
	DUR("idle_timeout", idle_timeout_ms, 1000, 3600000, "30s"),
	{ .key = "max_conns_per_agent",
	  .type = OPT_T_U32,
	  F(max_conns_per_agent),
	  .min = 1,
	  .max = 1024,
	  .def = "8" },
	DUR("request_timeout", request_timeout_ms, 100, 300000, "10s"),
};

OPT_TABLE_FITS(opts);
static const struct opt_table table = OPT_TABLE_FROM(opts, struct conn_config, from);

void conn_config_defaults(struct conn_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	opt_defaults(&table, cfg);
}

static int add_prefix(struct conn_config *cfg, const char *v, const char *where, char *err,
		      size_t errlen)
{
	struct route_prefix p;
	int r = routes_parse(v, &p);

	if (r == ZG_ERR_MALFORMED) {
		zg_seterr(err, errlen,
			  "%s: \"%s\" has bits set after the prefix length (write the network's "
			  "first address, e.g. 10.20.0.0/16)",
			  where, v);
		return ZG_ERR_CONFIG;
	}
	if (r != 0) {
		zg_seterr(err, errlen, "%s: \"%s\" is not a prefix (e.g. 10.20.0.0/16 or fd20::/48)",
			  where, v);
		return ZG_ERR_CONFIG;
	}
	if (cfg->nprefixes == CONN_PREFIX_MAX) {
		zg_seterr(err, errlen, "%s: more than %d prefixes", where, CONN_PREFIX_MAX);
		return ZG_ERR_CONFIG;
	}
	cfg->prefixes[cfg->nprefixes++] = p;
	return 0;
}

/* relays as one value: a comma-separated list that replaces the list. */
static int set_relays(void *cfg, const struct opt_spec *o, const char *text,
		      const char *where, char *err, size_t errlen)
{
	struct conn_config *c = cfg;

	(void)o;
	c->relays.n = 0;
	return relaylist_add(&c->relays, text, where, err, errlen);
}

/* prefixes as one value: that prefix alone. */
static int set_prefixes(void *cfg, const struct opt_spec *o, const char *text,
			const char *where, char *err, size_t errlen)
{
	struct conn_config *c = cfg;

	(void)o;
	c->nprefixes = 0;
	return add_prefix(c, text, where, err, errlen);
}

static int set_audit(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		     char *err, size_t errlen)
{
	if (text[0] == '\0') {
		zg_seterr(err, errlen, "%s: empty (\"-\" for stdout, or a file)", where);
		return ZG_ERR_CONFIG;
	}
	return opt_set_text((char *)cfg + o->off, o->size, text, where, err, errlen);
}

static int set_ops_listen(void *cfg, const struct opt_spec *o, const char *text,
			  const char *where, char *err, size_t errlen)
{
	char host[RELAYLIST_NAME_MAX];
	uint16_t port;

	if (hostport_split(text, host, sizeof(host), &port) != 0) {
		zg_seterr(err, errlen, "%s: \"%s\" is not host:port (e.g. 127.0.0.1:9201)", where,
			  text);
		return ZG_ERR_CONFIG;
	}
	return opt_set_text((char *)cfg + o->off, o->size, text, where, err, errlen);
}

static int set_port(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		    char *err, size_t errlen)
{
	uint64_t v;
	uint16_t port;

	if (opt_parse_uint(text, 1, 65535, &v) != 0) {
		zg_seterr(err, errlen, "%s: \"%s\" is not a port from 1 to 65535", where, text);
		return ZG_ERR_CONFIG;
	}
	port = (uint16_t)v;
	memcpy((char *)cfg + o->off, &port, sizeof(port));
	return 0;
}

/* What a YAML list of relays or prefixes is read into. */
struct list_load {
	struct conn_config *cfg;
	const char *name, *key;
	int relays;
};

/* One item; its message names its own line and column. */
static int list_item(void *ctx, const yaml_event_t *ev, char *err, size_t errlen)
{
	struct list_load *l = ctx;
	const char *v = (const char *)ev->data.scalar.value;
	char at[600];

	(void)snprintf(at, sizeof(at), "%s:%zu:%zu: %s", l->name, ev->start_mark.line + 1,
		       ev->start_mark.column + 1, l->key);
	if (ev->type != YAML_SCALAR_EVENT) {
		zg_seterr(err, errlen, "%s: expected a list of %s, found %s in it", at,
			  l->relays ? "HOST:PORT" : "prefixes", yamlcfg_kind(ev));
		return ZG_ERR_CONFIG;
	}
	if (l->relays)
		return relaylist_add(&l->cfg->relays, v, at, err, errlen);
	return add_prefix(l->cfg, v, at, err, errlen);
}

/* A YAML list for relays or prefixes, whose start was read: it replaces
 * the list, and may not be empty. */
static int load_list(void *cfg, const struct opt_spec *o, yaml_parser_t *p, const char *name,
		     const char *where, char *err, size_t errlen)
{
	struct list_load l = { .cfg = cfg, .name = name, .key = o->key };
	size_t n;
	int r;

	l.relays = o->set == set_relays;
	if (l.relays)
		l.cfg->relays.n = 0;
	else
		l.cfg->nprefixes = 0;
	if ((r = yamlcfg_list(p, name, where, list_item, &l, &n, err, errlen)) != 0)
		return r;
	if (n == 0) {
		zg_seterr(err, errlen, "%s: the list is empty (at least one %s)", where,
			  l.relays ? "HOST:PORT" : "prefix");
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* Required keys, relay names and templates, what no single key can check. */
static int validate(struct conn_config *cfg, const char *name, char *err, size_t errlen)
{
	const char *missing = NULL;
	char why[256], a[OPT_FROM_FILE_MAX + 64], b[OPT_FROM_FILE_MAX + 32];

	if (cfg->relays.n == 0)
		missing = "relays";
	else if (cfg->ca[0] == '\0')
		missing = "ca";
	else if (cfg->cert[0] == '\0')
		missing = "cert";
	else if (cfg->key[0] == '\0')
		missing = "key";
	else if (cfg->nprefixes == 0)
		missing = "prefixes";
	else if (cfg->policy[0] == '\0')
		missing = "policy";
	if (missing != NULL) {
		zg_seterr(err, errlen, "%s: %s: required, not set", name, missing);
		return ZG_ERR_CONFIG;
	}
	/* each value named where it was set: its line, or the default (then
	 * the message starts with the file's name, as the others here) */
	if (cfg->keepalive_ms != 0 && cfg->keepalive_ms >= cfg->idle_timeout_ms) {
		int dflt = opt_where(&table, cfg, "keepalive", 1, a, sizeof(a)) != OPT_SRC_FILE;

		(void)opt_where(&table, cfg, "idle_timeout", 0, b, sizeof(b));
		zg_seterr(err, errlen,
			  "%s%s%s: %ums must be shorter than idle_timeout (%ums, %s), or the "
			  "connection dies before the first PING",
			  dflt ? name : "", dflt ? ": " : "", a, cfg->keepalive_ms,
			  cfg->idle_timeout_ms, b);
		return ZG_ERR_CONFIG;
	}
	if (cfg->reconnect_min_ms > cfg->reconnect_max_ms) {
		int dflt = opt_where(&table, cfg, "reconnect_min", 1, a, sizeof(a)) != OPT_SRC_FILE;

		(void)opt_where(&table, cfg, "reconnect_max", 0, b, sizeof(b));
		zg_seterr(err, errlen, "%s%s%s: %ums is longer than reconnect_max (%ums, %s)",
			  dflt ? name : "", dflt ? ": " : "", a, cfg->reconnect_min_ms,
			  cfg->reconnect_max_ms, b);
		return ZG_ERR_CONFIG;
	}
	for (size_t i = 0; i < cfg->relays.n; i++) {
		struct relay_entry *e = &cfg->relays.e[i];

		(void)snprintf(e->server_name, sizeof(e->server_name), "%s",
			       e->name[0]            ? e->name
			       : cfg->server_name[0] ? cfg->server_name
						     : e->host);
		(void)snprintf(e->uri_template, sizeof(e->uri_template),
			       strchr(e->host, ':')
				       ? "https://[%s]:%u/.well-known/masque/ip/{target}/{ipproto}/"
				       : "https://%s:%u/.well-known/masque/ip/{target}/{ipproto}/",
			       e->host, e->port);
		if (uri_template_check(e->uri_template, why, sizeof(why)) != 0) {
			zg_seterr(err, errlen, "%s: relays: entry %zu \"%s\": %s", name, i + 1,
				  e->text, why);
			return ZG_ERR_CONFIG;
		}
	}
	return 0;
}

int conn_config_load_buf(struct conn_config *cfg, const char *name, const char *text, size_t len,
			 char *err, size_t errlen)
{
	struct yamlcfg_opts c = { .t = &table, .cfg = cfg, .list = load_list };
	int r = yamlcfg_load(name, text, len, yamlcfg_opts_mapping, &c, err, errlen);

	if (r != 0)
		return r;
	return validate(cfg, name, err, errlen);
}

int conn_config_load_file(struct conn_config *cfg, const char *path, char *err, size_t errlen)
{
	struct yamlcfg_opts c = { .t = &table, .cfg = cfg, .list = load_list };
	int r = yamlcfg_load_file(path, yamlcfg_opts_mapping, &c, err, errlen);

	if (r != 0)
		return r;
	return validate(cfg, path, err, errlen);
}

int conn_config_serves(const struct conn_config *cfg, uint8_t version, const uint8_t *a)
{
	for (size_t i = 0; i < cfg->nprefixes; i++) {
		const struct route_prefix *p = &cfg->prefixes[i];
		unsigned bits = p->len, full = bits / 8, rest = bits % 8;

		if (p->version != version)
			continue;
		if (memcmp(p->addr, a, full) != 0)
			continue;
		if (rest != 0 && ((p->addr[full] ^ a[full]) & (uint8_t)(0xff00 >> rest)) != 0)
			continue;
		return 1;
	}
	return 0;
}
