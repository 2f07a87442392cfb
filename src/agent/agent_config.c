#include "agent/agent_config.h"
#include "agent/agentdns.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "log.h"
#include "masque/uri.h"
#include "opt.h"
#include "yamlcfg.h"
#include "zg_err.h"

enum opt_type {
	T_STR,
	T_U32,
	T_DUR,
	T_BOOL,
	T_LEVEL,
	T_FORMAT,
	T_PREFIXES,
	T_RELAYS,
	T_DNS
};

struct opt {
	const char *key; /* YAML key; flag and variable derive from it */
	enum opt_type type;
	size_t off, size;
	uint32_t min, max;
	const char *def;
	const char *help;
	const char *meta; /* what --help shows as the value; NULL = by type */
};

#define F(f) offsetof(struct agent_config, f), sizeof(((struct agent_config *)0)->f)

static const struct opt opts[] = {
	{ "relay", T_RELAYS, F(relay), 0, 0, "",
	  "relay address, HOST:PORT (UDP), or several separated by commas (a YAML list in the "
	  "file): the agent moves to the next when one fails. NAME@HOST:PORT checks that relay's "
	  "certificate for NAME; required",
	  "HOST:PORT,..." },
	{ "cert", T_STR, F(cert), 0, 0, "", "client certificate (PEM); required", "FILE" },
	{ "key", T_STR, F(key), 0, 0, "", "client private key (PEM); required", "FILE" },
	{ "ca", T_STR, F(ca), 0, 0, "", "CA the relay's certificate must chain to (PEM); required", "FILE" },
	{ "connector_ca", T_STR, F(connector_ca), 0, 0, "",
	  "CA the certificates of zgate-connectors (CN connector:ID) must chain to, for the "
	  "end-to-end sessions the relay lists (PEM); empty = ca",
	  "FILE" },
	{ "server_name", T_STR, F(server_name), 0, 0, "",
	  "name the relay's certificate must carry; empty = the relay's host", "NAME" },
	{ "template", T_STR, F(uri_template), 0, 0, "",
	  "CONNECT-IP URI template; empty = https://HOST:PORT/.well-known/masque/ip/{target}/{ipproto}/", "URI" },
	{ "tun", T_STR, F(tun), 0, 0, "zgate0", "TUN device name", "NAME" },
	{ "status_file", T_STR, F(status_file), 0, 0, "",
	  "JSON status file, rewritten on every state change (read by zgate-agent status); empty = "
	  "none, or $RUNTIME_DIRECTORY/status.json under systemd",
	  "FILE" },
	{ "reconnect_min", T_DUR, F(reconnect_min_ms), 10, 60000, "500ms",
	  "first retry waits between half this and this", NULL },
	{ "reconnect_max", T_DUR, F(reconnect_max_ms), 100, 3600000, "30s",
	  "retries back off exponentially up to this (with jitter)", NULL },
	{ "keepalive", T_DUR, F(keepalive_ms), 0, 3600000, "25s",
	  "QUIC PING when idle so NAT bindings survive; 0 = off", NULL },
	{ "idle_timeout", T_DUR, F(idle_timeout_ms), 1000, 3600000, "30s",
	  "the connection is given up after this long without packets", NULL },
	{ "connect_timeout", T_DUR, F(connect_timeout_ms), 1000, 600000, "10s",
	  "a connection attempt is given up after this long", NULL },
	{ "mtu", T_U32, F(mtu), 0, 65535, "0",
	  "TUN MTU; 0 = the largest packet the tunnel carries (at least 1280)", NULL },
	{ "ipv6", T_BOOL, F(ipv6), 0, 0, "false", "also ask the relay for an IPv6 address", NULL },
	{ "log_level", T_LEVEL, F(log_level), 0, 0, "info", "error, warn, info or debug", NULL },
	{ "log_format", T_FORMAT, F(log_format), 0, 0, "text",
	  "text (one line per event) or json (one JSON object per line: ts, level, msg)", NULL },
	{ "accept_routes", T_PREFIXES, F(accept_routes), 0, 0, "",
	  "install only advertised routes inside these prefixes (a YAML list, or comma-separated); "
	  "others are refused and logged. Empty = every route; none = no route",
	  "PREFIX,..." },
	{ "dns", T_DNS, F(dns), 0, 0, "auto",
	  "DNS from the relay (DNS_ASSIGN): resolved (per-link servers and routing domains on the "
	  "TUN through systemd-resolved), file (rewrite resolv_conf, restored on exit), auto "
	  "(resolved if it runs, else file) or off",
	  "MODE" },
	{ "resolv_conf", T_STR, F(resolv_conf), 0, 0, "/etc/resolv.conf",
	  "the resolver file dns: file rewrites in place", "FILE" },
	{ "dns_backup", T_STR, F(dns_backup), 0, 0, "",
	  "where dns: file keeps the original resolver file until it is put back (also after a "
	  "crash, at the next start); empty = beside it, RESOLV_CONF.zgate-orig. Agents sharing "
	  "one /etc (ip netns exec) need one each",
	  "FILE" },
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

/* Appends the prefixes of text (separated by commas and/or blanks) to *a
 * and sets its filter; "none" alone is the empty filter. */
static int add_prefixes(struct agent_accept *a, const char *text, const char *where, char *err,
			size_t errlen)
{
	const char *s = text;

	if (strcmp(text, "none") == 0) {
		a->filter = 1;
		return 0;
	}
	while (*s) {
		char item[64];
		size_t n = strcspn(s, ", \t");
		struct route_prefix p;
		int r;

		if (n == 0) {
			s++;
			continue;
		}
		if (n >= sizeof(item)) {
			zg_seterr(err, errlen, "%s: \"%.40s...\" is not a prefix", where, s);
			return ZG_ERR_CONFIG;
		}
		memcpy(item, s, n);
		item[n] = '\0';
		s += n;
		r = routes_parse(item, &p);
		if (r == ZG_ERR_MALFORMED) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" has bits set after the prefix length (write the "
				  "network's first address, e.g. 10.0.0.0/8)",
				  where, item);
			return ZG_ERR_CONFIG;
		}
		if (r != 0) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not a prefix (e.g. 10.0.0.0/8, fd00::/8 or an address)",
				  where, item);
			return ZG_ERR_CONFIG;
		}
		if (a->n == AGENT_ACCEPT_MAX) {
			zg_seterr(err, errlen, "%s: more than %d prefixes", where, AGENT_ACCEPT_MAX);
			return ZG_ERR_CONFIG;
		}
		a->p[a->n++] = p;
		a->filter = 1;
	}
	return 0;
}

/* A flag or variable replaces the list the file gave; "" is every route. */
static int set_prefixes(struct agent_accept *a, const char *text, const char *where, char *err,
			size_t errlen)
{
	memset(a, 0, sizeof(*a));
	return add_prefixes(a, text, where, err, errlen);
}

static struct relaylist scratch; /* entries checked as they are read */

/* A flag, variable or YAML scalar: the whole relay list, each entry
 * checked here so an error names where it came from. */
static int set_relays(char *dst, size_t size, const char *text, const char *where, char *err,
		      size_t errlen)
{
	int r;

	if (strlen(text) >= size) {
		zg_seterr(err, errlen, "%s: value is %zu bytes long; at most %zu allowed", where,
			  strlen(text), size - 1);
		return ZG_ERR_CONFIG;
	}
	scratch.n = 0;
	if ((r = relaylist_add(&scratch, text, where, err, errlen)) != 0)
		return r;
	memcpy(dst, text, strlen(text) + 1);
	return 0;
}

/* Parses text for o into cfg; where names the source for messages. */
static int set_opt(struct agent_config *cfg, const struct opt *o, const char *text,
		   const char *where, char *err, size_t errlen)
{
	char *dst = (char *)cfg + o->off;
	uint64_t v;
	enum log_level lvl;
	enum log_format fmt;
	enum agentdns_mode dm;
	uint32_t u;
	int b;

	switch (o->type) {
	case T_STR:
	case T_LEVEL:
	case T_FORMAT:
	case T_DNS:
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
		if (o->type == T_DNS && agentdns_mode_parse(text, &dm) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a DNS mode (auto, resolved, file "
					       "or off)",
				  where, text);
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
				  "ms, s, m or h: 500ms, 25s, 5m)",
				  where, text, o->min, o->max);
			return ZG_ERR_CONFIG;
		}
		memcpy(dst, &u, sizeof(u));
		return 0;
	case T_PREFIXES:
		return set_prefixes((struct agent_accept *)(void *)dst, text, where, err, errlen);
	case T_RELAYS:
		return set_relays(dst, o->size, text, where, err, errlen);
	case T_BOOL:
		if (opt_parse_bool(text, &b) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not true or false (also yes/no, on/off, 1/0)",
				  where, text);
			return ZG_ERR_CONFIG;
		}
		memcpy(dst, &b, sizeof(b));
		return 0;
	}
	return ZG_ERR_INVAL;
}

void agent_config_defaults(struct agent_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_OPTS; i++)
		(void)set_opt(cfg, &opts[i], opts[i].def, "default", NULL, 0); /* tested to parse */
}

static const struct opt *find_key(const char *key, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strlen(opts[i].key) == len && strncmp(opts[i].key, key, len) == 0)
			return &opts[i];
	return NULL;
}

static void all_keys(char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < N_OPTS; i++) {
		int w = snprintf(out + n, outlen - n, "%s%s", i ? ", " : "", opts[i].key);
		if (w < 0 || (size_t)w >= outlen - n)
			return;
		n += (size_t)w;
	}
}

/* A YAML list of prefixes for o, whose start was read. An empty list
 * ([]) is "none": the key is there, so a filter was meant. */
static int load_prefix_list(struct agent_config *cfg, const struct opt *o, yaml_parser_t *p,
			    const char *where, char *err, size_t errlen)
{
	struct agent_accept *a = (struct agent_accept *)(void *)((char *)cfg + o->off);
	yaml_event_t ev;
	int r = 0;

	memset(a, 0, sizeof(*a));
	a->filter = 1;
	for (;;) {
		if (!yaml_parser_parse(p, &ev)) {
			zg_seterr(err, errlen, "%s: not valid YAML: %s", where,
				  p->problem ? p->problem : "syntax error");
			return ZG_ERR_CONFIG;
		}
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (ev.type != YAML_SCALAR_EVENT) {
			zg_seterr(err, errlen, "%s: expected a list of prefixes, found %s in it", where,
				  yamlcfg_kind(&ev));
			r = ZG_ERR_CONFIG;
		} else if (strcmp((const char *)ev.data.scalar.value, "none") == 0) {
			zg_seterr(err, errlen, "%s: \"none\" cannot be in a list (write [] or none)",
				  where);
			r = ZG_ERR_CONFIG;
		} else {
			r = add_prefixes(a, (const char *)ev.data.scalar.value, where, err, errlen);
		}
		yaml_event_delete(&ev);
		if (r != 0)
			return r;
	}
}

/* A YAML list of relays for o, whose start was read: each entry checked
 * where it stands, then the list joined with commas into cfg->relay. */
static int load_relay_list(struct agent_config *cfg, const struct opt *o, yaml_parser_t *p,
			   const char *where, char *err, size_t errlen)
{
	char *dst = (char *)cfg + o->off, at[600];
	size_t len = 0;
	yaml_event_t ev;
	int r = 0;

	scratch.n = 0;
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
		(void)snprintf(at, sizeof(at), "%s (line %zu)", where, ev.start_mark.line + 1);
		if (ev.type != YAML_SCALAR_EVENT) {
			zg_seterr(err, errlen, "%s: expected a list of HOST:PORT, found %s in it", at,
				  yamlcfg_kind(&ev));
			r = ZG_ERR_CONFIG;
		} else {
			const char *v = (const char *)ev.data.scalar.value;

			r = relaylist_add(&scratch, v, at, err, errlen);
			if (r == 0 && len + strlen(v) + 2 > o->size) {
				zg_seterr(err, errlen, "%s: the list is longer than %zu bytes", at,
					  o->size - 1);
				r = ZG_ERR_CONFIG;
			}
			if (r == 0) {
				len += (size_t)snprintf(dst + len, o->size - len, "%s%s", len ? "," : "",
							v);
			}
		}
		yaml_event_delete(&ev);
		if (r != 0)
			return r;
	}
	if (len == 0) {
		zg_seterr(err, errlen, "%s: the list is empty (at least one HOST:PORT)", where);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* The keys and values of the top-level mapping, whose start was read. */
static int load_mapping(struct agent_config *cfg, yaml_parser_t *p, const char *name,
			char *err, size_t errlen)
{
	yaml_event_t k, v;
	char where[512], keys[512];
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
		(void)snprintf(where, sizeof(where), "%s:%zu:%zu: %s", name, k.start_mark.line + 1,
			       k.start_mark.column + 1, (const char *)k.data.scalar.value);
		o = find_key((const char *)k.data.scalar.value, k.data.scalar.length);
		yaml_event_delete(&k);
		if (o == NULL) {
			all_keys(keys, sizeof(keys));
			zg_seterr(err, errlen, "%s: unknown key (expected one of: %s)", where, keys);
			return ZG_ERR_CONFIG;
		}
		if (!yaml_parser_parse(p, &v))
			goto syntax;
		if (v.type == YAML_SCALAR_EVENT)
			r = set_opt(cfg, o, (const char *)v.data.scalar.value, where, err, errlen);
		else if (v.type == YAML_SEQUENCE_START_EVENT && o->type == T_PREFIXES)
			r = load_prefix_list(cfg, o, p, where, err, errlen);
		else if (v.type == YAML_SEQUENCE_START_EVENT && o->type == T_RELAYS)
			r = load_relay_list(cfg, o, p, where, err, errlen);
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

int agent_config_load_buf(struct agent_config *cfg, const char *name, const char *text,
			  size_t len, char *err, size_t errlen)
{
	return yamlcfg_load(name, text, len, mapping_cb, cfg, err, errlen);
}

int agent_config_load_file(struct agent_config *cfg, const char *path, char *err,
			   size_t errlen)
{
	char *buf;
	size_t n;
	int r = yamlcfg_read_file(path, &buf, &n, err, errlen);

	if (r != 0)
		return r;
	r = agent_config_load_buf(cfg, path, buf, n, err, errlen);
	free(buf);
	return r;
}

int agent_config_apply_env(struct agent_config *cfg, char *const *envp, char *err,
			   size_t errlen)
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
			zg_seterr(err, errlen, "environment: %.*s names no option (see --help)", (int)klen,
				  kv);
			return ZG_ERR_CONFIG;
		}
		opt_name(o->key, 1, name, sizeof(name));
		if ((r = set_opt(cfg, o, eq + 1, name, err, errlen)) != 0)
			return r;
	}
	return 0;
}

int agent_config_apply_flag(struct agent_config *cfg, const char *flag, const char *value,
			    char *err, size_t errlen)
{
	char name[64], where[80];

	for (size_t i = 0; i < N_OPTS; i++) {
		opt_name(opts[i].key, 0, name, sizeof(name));
		if (strcmp(name, flag) == 0) {
			(void)snprintf(where, sizeof(where), "--%s", name);
			return set_opt(cfg, &opts[i], value, where, err, errlen);
		}
	}
	zg_seterr(err, errlen, "unknown option --%s (see --help)", flag);
	return ZG_ERR_NOTFOUND;
}

/* Fills e's server name and URI template (agent_config_validate()). */
static int relay_derive(const struct agent_config *cfg, struct relay_entry *e, size_t i,
			char *err, size_t errlen)
{
	char why[256];

	(void)snprintf(e->server_name, sizeof(e->server_name), "%s",
		       e->name[0] ? e->name : cfg->server_name[0] ? cfg->server_name
								  : e->host);
	if (cfg->uri_template[0] != '\0')
		(void)snprintf(e->uri_template, sizeof(e->uri_template), "%s", cfg->uri_template);
	else
		(void)snprintf(e->uri_template, sizeof(e->uri_template),
			       strchr(e->host, ':') ? "https://[%s]:%u/.well-known/masque/ip/{target}/{ipproto}/"
						    : "https://%s:%u/.well-known/masque/ip/{target}/{ipproto}/",
			       e->host, e->port);
	if (uri_template_check(e->uri_template, why, sizeof(why)) != 0) {
		if (cfg->uri_template[0] != '\0')
			zg_seterr(err, errlen, "template: \"%s\": %s", e->uri_template, why);
		else
			zg_seterr(err, errlen, "relay: entry %zu \"%s\": no URI template derives from it: %s",
				  i + 1, e->text, why);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

int agent_config_validate(struct agent_config *cfg, char *err, size_t errlen)
{
	int r;

	if ((r = opt_require(cfg->relay, "relay", err, errlen)) != 0 ||
	    (r = opt_require(cfg->cert, "cert", err, errlen)) != 0 ||
	    (r = opt_require(cfg->key, "key", err, errlen)) != 0 ||
	    (r = opt_require(cfg->ca, "ca", err, errlen)) != 0)
		return r;
	if (cfg->connector_ca[0] == '\0')
		(void)snprintf(cfg->connector_ca, sizeof(cfg->connector_ca), "%s", cfg->ca);
	memset(&cfg->relays, 0, sizeof(cfg->relays));
	if ((r = relaylist_add(&cfg->relays, cfg->relay, "relay", err, errlen)) != 0)
		return r;
	if (cfg->tun[0] == '\0' || strlen(cfg->tun) >= IFNAMSIZ || strpbrk(cfg->tun, "/ \t:%") ||
	    strcmp(cfg->tun, ".") == 0 || strcmp(cfg->tun, "..") == 0) {
		zg_seterr(err, errlen,
			  "tun: \"%s\" is not a device name (1 to %d characters, no '/', ':', '%%' or "
			  "spaces)",
			  cfg->tun, IFNAMSIZ - 1);
		return ZG_ERR_CONFIG;
	}
	if (cfg->keepalive_ms != 0 && cfg->keepalive_ms >= cfg->idle_timeout_ms) {
		zg_seterr(err, errlen,
			  "keepalive: %ums must be shorter than idle_timeout (%ums), or the connection "
			  "dies before the first PING",
			  cfg->keepalive_ms, cfg->idle_timeout_ms);
		return ZG_ERR_CONFIG;
	}
	if (cfg->reconnect_min_ms > cfg->reconnect_max_ms) {
		zg_seterr(err, errlen, "reconnect_min: %ums is longer than reconnect_max (%ums)",
			  cfg->reconnect_min_ms, cfg->reconnect_max_ms);
		return ZG_ERR_CONFIG;
	}
	if (cfg->mtu != 0 && cfg->mtu < 1280) {
		zg_seterr(err, errlen, "mtu: %u is below 1280, the least an IPv6 link may have "
				       "(RFC 8200); 0 takes the tunnel's",
			  cfg->mtu);
		return ZG_ERR_CONFIG;
	}
	for (size_t i = 0; i < cfg->relays.n; i++)
		if ((r = relay_derive(cfg, &cfg->relays.e[i], i, err, errlen)) != 0)
			return r;
	if (cfg->server_name[0] == '\0')
		(void)snprintf(cfg->server_name, sizeof(cfg->server_name), "%s",
			       cfg->relays.e[0].server_name);
	if (cfg->uri_template[0] == '\0')
		(void)snprintf(cfg->uri_template, sizeof(cfg->uri_template), "%s",
			       cfg->relays.e[0].uri_template);
	return 0;
}

/* What an agent flag takes (opt_next's kind callback). */
static enum opt_arg flag_kind(const char *flag, void *ctx)
{
	char name[64];

	(void)ctx;
	if (strcmp(flag, "config") == 0)
		return OPT_ARG_VALUE;
	if (strcmp(flag, "check-config") == 0)
		return OPT_ARG_NONE;
	for (size_t i = 0; i < N_OPTS; i++) {
		opt_name(opts[i].key, 0, name, sizeof(name));
		if (strcmp(name, flag) == 0)
			return opts[i].type == T_BOOL ? OPT_ARG_BOOL : OPT_ARG_VALUE;
	}
	return OPT_ARG_UNKNOWN;
}

int agent_config_parse(struct agent_config *cfg, int argc, char *const *argv,
		       char *const *envp, enum agent_action *paction, char *err, size_t errlen)
{
	struct opt_cmdline c;
	const char *file = NULL;
	int r, pass;

	*paction = AGENT_RUN;
	agent_config_defaults(cfg);
	/* --help and --version win over anything else on the line. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			*paction = AGENT_HELP;
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0)
			*paction = AGENT_VERSION;
	}
	if (*paction == AGENT_VERSION)
		return 0;
	for (char *const *e = envp; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, "ZGATE_CONFIG=", 13) == 0 && (*e)[13] != '\0')
			file = *e + 13;
		/* Under systemd (RuntimeDirectory=zgate) the status file is on by
		 * default where `zgate-agent status` looks: the first directory. */
		if (strncmp(*e, "RUNTIME_DIRECTORY=", 18) == 0 && (*e)[18] == '/') {
			const char *d = *e + 18;
			int dl = (int)strcspn(d, ":");

			(void)snprintf(cfg->status_file, sizeof(cfg->status_file), "%.*s/status.json", dl, d);
		}
	}
	/* Pass 0 checks the whole line and finds --config and the actions;
	 * pass 1 applies the flags after the file and the environment, so
	 * flags win. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (file != NULL && (r = agent_config_load_file(cfg, file, err, errlen)) != 0)
				return r == ZG_ERR_IO ? ZG_ERR_CONFIG : r;
			if ((r = agent_config_apply_env(cfg, envp, err, errlen)) != 0)
				return r;
		}
		memset(&c, 0, sizeof(c));
		c.argc = argc;
		c.argv = argv;
		c.i = 1;
		c.kind = flag_kind;
		while ((r = opt_next(&c, err, errlen)) == 1) {
			if (strcmp(c.name, "check-config") == 0)
				*paction = AGENT_CHECK_CONFIG;
			else if (strcmp(c.name, "config") == 0)
				file = c.value;
			else if (pass == 1 &&
				 (r = agent_config_apply_flag(cfg, c.name, c.value, err, errlen)) != 0)
				return r == ZG_ERR_NOTFOUND ? ZG_ERR_CONFIG : r;
		}
		if (r != 0)
			return r;
	}
	return agent_config_validate(cfg, err, errlen);
}

static const char *hint(enum opt_type t)
{
	switch (t) {
	case T_U32:
		return "N";
	case T_DUR:
		return "DURATION";
	case T_BOOL:
		return "BOOL";
	case T_LEVEL:
		return "LEVEL";
	case T_FORMAT:
		return "FORMAT";
	case T_PREFIXES:
	case T_RELAYS:
	case T_STR:
	case T_DNS:
		break;
	}
	return "VALUE";
}

size_t agent_config_usage(char *buf, size_t buflen)
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
