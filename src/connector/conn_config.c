#include "connector/conn_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hostport.h"
#include "log.h"
#include "masque/uri.h"
#include "opt.h"
#include "yamlcfg.h"
#include "zg_err.h"

static const char *const keys_all =
	"relays, server_name, ca, cert, key, prefixes, policy, audit, ops_listen, inner_port, "
	"log_level, reconnect_min, reconnect_max, keepalive, idle_timeout";

void conn_config_defaults(struct conn_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	(void)snprintf(cfg->audit, sizeof(cfg->audit), "-");
	(void)snprintf(cfg->ops_listen, sizeof(cfg->ops_listen), "127.0.0.1:9201");
	cfg->inner_port = CONN_INNER_PORT;
	(void)snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
	cfg->reconnect_min_ms = 500;
	cfg->reconnect_max_ms = 30000;
	cfg->keepalive_ms = 25000;
	cfg->idle_timeout_ms = 30000;
}

/* The state of one load: where the current key stands, for messages. */
struct load {
	struct conn_config *cfg;
	const char *name;
	int seen_relays, seen_prefixes;
};

static int set_str(char *dst, size_t size, const char *v, const char *where, char *err,
		   size_t errlen)
{
	size_t n = strlen(v);

	if (n >= size) {
		zg_seterr(err, errlen, "%s: value is %zu bytes long; at most %zu allowed", where, n,
			  size - 1);
		return ZG_ERR_CONFIG;
	}
	memcpy(dst, v, n + 1);
	return 0;
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

/* One scalar value v of key at where. */
static int set_scalar(struct load *ld, const char *key, const char *v, const char *where,
		      char *err, size_t errlen)
{
	struct conn_config *cfg = ld->cfg;
	enum log_level lvl;
	uint64_t u64;
	uint32_t ms, *pms = NULL, lo = 0, hi = 0;
	char host[RELAYLIST_NAME_MAX];
	uint16_t port;

	if (strcmp(key, "relays") == 0) {
		ld->seen_relays = 1;
		cfg->relays.n = 0;
		return relaylist_add(&cfg->relays, v, where, err, errlen);
	}
	if (strcmp(key, "prefixes") == 0) {
		ld->seen_prefixes = 1;
		cfg->nprefixes = 0;
		return add_prefix(cfg, v, where, err, errlen);
	}
	if (strcmp(key, "server_name") == 0)
		return set_str(cfg->server_name, sizeof(cfg->server_name), v, where, err, errlen);
	if (strcmp(key, "ca") == 0)
		return set_str(cfg->ca, sizeof(cfg->ca), v, where, err, errlen);
	if (strcmp(key, "cert") == 0)
		return set_str(cfg->cert, sizeof(cfg->cert), v, where, err, errlen);
	if (strcmp(key, "key") == 0)
		return set_str(cfg->key, sizeof(cfg->key), v, where, err, errlen);
	if (strcmp(key, "policy") == 0)
		return set_str(cfg->policy, sizeof(cfg->policy), v, where, err, errlen);
	if (strcmp(key, "audit") == 0) {
		if (v[0] == '\0') {
			zg_seterr(err, errlen, "%s: empty (\"-\" for stdout, or a file)", where);
			return ZG_ERR_CONFIG;
		}
		return set_str(cfg->audit, sizeof(cfg->audit), v, where, err, errlen);
	}
	if (strcmp(key, "ops_listen") == 0) {
		if (hostport_split(v, host, sizeof(host), &port) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not host:port (e.g. 127.0.0.1:9201)",
				  where, v);
			return ZG_ERR_CONFIG;
		}
		return set_str(cfg->ops_listen, sizeof(cfg->ops_listen), v, where, err, errlen);
	}
	if (strcmp(key, "inner_port") == 0) {
		if (opt_parse_uint(v, 1, 65535, &u64) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a port from 1 to 65535", where, v);
			return ZG_ERR_CONFIG;
		}
		cfg->inner_port = (uint16_t)u64;
		return 0;
	}
	if (strcmp(key, "log_level") == 0) {
		if (log_level_parse(v, &lvl) != 0) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not a log level (error, warn, info or debug)", where,
				  v);
			return ZG_ERR_CONFIG;
		}
		return set_str(cfg->log_level, sizeof(cfg->log_level), v, where, err, errlen);
	}
	if (strcmp(key, "reconnect_min") == 0)
		pms = &cfg->reconnect_min_ms, lo = 10, hi = 60000;
	else if (strcmp(key, "reconnect_max") == 0)
		pms = &cfg->reconnect_max_ms, lo = 100, hi = 3600000;
	else if (strcmp(key, "keepalive") == 0)
		pms = &cfg->keepalive_ms, lo = 0, hi = 3600000;
	else if (strcmp(key, "idle_timeout") == 0)
		pms = &cfg->idle_timeout_ms, lo = 1000, hi = 3600000;
	if (pms != NULL) {
		if (opt_parse_duration(v, &ms) != 0 || ms < lo || ms > hi) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not a duration from %ums to %ums (a whole number "
				  "with ms, s, m or h: 500ms, 25s, 5m)",
				  where, v, lo, hi);
			return ZG_ERR_CONFIG;
		}
		*pms = ms;
		return 0;
	}
	zg_seterr(err, errlen, "%s: unknown key (expected one of: %s)", where, keys_all);
	return ZG_ERR_CONFIG;
}

/* A YAML list for key (relays or prefixes), whose start was read; each
 * entry's message names its own line and column. */
static int load_list(struct load *ld, const char *key, yaml_parser_t *p, const char *where,
		     char *err, size_t errlen)
{
	char at[600];
	yaml_event_t ev;
	size_t n = 0;
	int r = 0, relays = strcmp(key, "relays") == 0;

	if (relays) {
		ld->seen_relays = 1;
		ld->cfg->relays.n = 0;
	} else {
		ld->seen_prefixes = 1;
		ld->cfg->nprefixes = 0;
	}
	for (;;) {
		if (!yaml_parser_parse(p, &ev)) {
			zg_seterr(err, errlen, "%s: not valid YAML: %s", where,
				  p->problem ? p->problem : "syntax error");
			return ZG_ERR_CONFIG;
		}
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		(void)snprintf(at, sizeof(at), "%s:%zu:%zu: %s", ld->name, ev.start_mark.line + 1,
			       ev.start_mark.column + 1, key);
		if (ev.type != YAML_SCALAR_EVENT) {
			zg_seterr(err, errlen, "%s: expected a list of %s, found %s in it", at,
				  relays ? "HOST:PORT" : "prefixes", yamlcfg_kind(&ev));
			r = ZG_ERR_CONFIG;
		} else if (relays) {
			r = relaylist_add(&ld->cfg->relays, (const char *)ev.data.scalar.value, at, err,
					  errlen);
		} else {
			r = add_prefix(ld->cfg, (const char *)ev.data.scalar.value, at, err, errlen);
		}
		n++;
		yaml_event_delete(&ev);
		if (r != 0)
			return r;
	}
	if (n == 0) {
		zg_seterr(err, errlen, "%s: the list is empty (at least one %s)", where,
			  relays ? "HOST:PORT" : "prefix");
		return ZG_ERR_CONFIG;
	}
	return 0;
}

static int load_mapping(void *ctx, yaml_parser_t *p, const char *name, char *err, size_t errlen)
{
	struct load *ld = ctx;
	yaml_event_t k, v;
	char where[512], key[64];
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
		(void)snprintf(key, sizeof(key), "%s", (const char *)k.data.scalar.value);
		(void)snprintf(where, sizeof(where), "%s:%zu:%zu: %s", name, k.start_mark.line + 1,
			       k.start_mark.column + 1, (const char *)k.data.scalar.value);
		yaml_event_delete(&k);
		if (!yaml_parser_parse(p, &v))
			goto syntax;
		if (v.type == YAML_SCALAR_EVENT)
			r = set_scalar(ld, key, (const char *)v.data.scalar.value, where, err, errlen);
		else if (v.type == YAML_SEQUENCE_START_EVENT &&
			 (strcmp(key, "relays") == 0 || strcmp(key, "prefixes") == 0))
			r = load_list(ld, key, p, where, err, errlen);
		else if (v.type == YAML_SEQUENCE_START_EVENT || v.type == YAML_MAPPING_START_EVENT) {
			/* the key itself may be unknown: say so first */
			r = set_scalar(ld, key, "", where, err, errlen);
			if (r == 0 || strstr(err, "unknown key") == NULL) {
				zg_seterr(err, errlen, "%s: expected a single value, found %s", where,
					  yamlcfg_kind(&v));
				r = ZG_ERR_CONFIG;
			}
		} else {
			zg_seterr(err, errlen, "%s: expected a single value, found %s", where,
				  yamlcfg_kind(&v));
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

/* Required keys, relay names and templates, what no single key can check. */
static int validate(struct conn_config *cfg, const char *name, char *err, size_t errlen)
{
	const char *missing = NULL;
	char why[256];

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
	if (cfg->keepalive_ms != 0 && cfg->keepalive_ms >= cfg->idle_timeout_ms) {
		zg_seterr(err, errlen,
			  "%s: keepalive: %ums must be shorter than idle_timeout (%ums), or the "
			  "connection dies before the first PING",
			  name, cfg->keepalive_ms, cfg->idle_timeout_ms);
		return ZG_ERR_CONFIG;
	}
	if (cfg->reconnect_min_ms > cfg->reconnect_max_ms) {
		zg_seterr(err, errlen, "%s: reconnect_min: %ums is longer than reconnect_max (%ums)",
			  name, cfg->reconnect_min_ms, cfg->reconnect_max_ms);
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
	struct load ld = { .cfg = cfg, .name = name };
	int r = yamlcfg_load(name, text, len, load_mapping, &ld, err, errlen);

	if (r != 0)
		return r;
	return validate(cfg, name, err, errlen);
}

int conn_config_load_file(struct conn_config *cfg, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t n;
	int r = yamlcfg_read_file(path, &buf, &n, err, errlen);

	if (r != 0)
		return r;
	r = conn_config_load_buf(cfg, path, buf, n, err, errlen);
	free(buf);
	return r;
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
