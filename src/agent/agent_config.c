#include "agent/agent_config.h"
#include "agent/agentdns.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "log.h"
#include "masque/uri.h"
#include "opt.h"
#include "yamlcfg.h"
#include "zg_err.h"

static int set_relays(void *cfg, const struct opt_spec *o, const char *text,
		      const char *where, char *err, size_t errlen);
static int set_prefixes(void *cfg, const struct opt_spec *o, const char *text,
			const char *where, char *err, size_t errlen);
static int set_dns(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		   char *err, size_t errlen);
static int set_mtu(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		   char *err, size_t errlen);
static int set_tun(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		   char *err, size_t errlen);

#define F(f) offsetof(struct agent_config, f), sizeof(((struct agent_config *)0)->f)
/* One option: its key, type, field, range, default, --help text and value
 * name (NULL = by type). */
#define O(k, t, f, lo, hi, d, h, m)                                                             \
	{                                                                                       \
		.key = k, .type = t, F(f), .min = lo, .max = hi, .def = d, .help = h, .meta = m \
	}
/* The same with the agent's own parser set (which also reads a YAML list
 * when list is 1). */
#define C(k, f, d, h, m, fn, l)                                                                            \
	{                                                                                                  \
		.key = k, .type = OPT_T_CUSTOM, F(f), .def = d, .help = h, .meta = m, .set = fn, .list = l \
	}

static const struct opt_spec opts[] = {
	C("relay", relay, "",
	  "relay address, HOST:PORT (UDP), or several separated by commas (a YAML list in the "
	  "file): the agent moves to the next when one fails. NAME@HOST:PORT checks that relay's "
	  "certificate for NAME; required",
	  "HOST:PORT,...", set_relays, 1),
	O("cert", OPT_T_STR, cert, 0, 0, "", "client certificate (PEM); required", "FILE"),
	O("key", OPT_T_STR, key, 0, 0, "", "client private key (PEM); required", "FILE"),
	O("ca", OPT_T_STR, ca, 0, 0, "", "CA the relay's certificate must chain to (PEM); required", "FILE"),
	O("connector_ca", OPT_T_STR, connector_ca, 0, 0, "",
	  "CA the certificates of zgate-connectors (CN connector:ID) must chain to, for the "
	  "end-to-end sessions the relay lists (PEM); empty = ca",
	  "FILE"),
	O("server_name", OPT_T_STR, server_name, 0, 0, "",
	  "name the relay's certificate must carry; empty = the relay's host", "NAME"),
	O("template", OPT_T_STR, uri_template, 0, 0, "",
	  "CONNECT-IP URI template; empty = https://HOST:PORT/.well-known/masque/ip/{target}/{ipproto}/", "URI"),
	C("tun", tun, "zgate0", "TUN device name", "NAME", set_tun, 0),
	O("status_file", OPT_T_STR, status_file, 0, 0, "",
	  "JSON status file, rewritten on every state change (read by zgate-agent status); empty = "
	  "none, or $RUNTIME_DIRECTORY/status.json under systemd",
	  "FILE"),
	O("reconnect_min", OPT_T_DUR, reconnect_min_ms, 10, 60000, "500ms",
	  "first retry waits between half this and this", NULL),
	O("reconnect_max", OPT_T_DUR, reconnect_max_ms, 100, 3600000, "30s",
	  "retries back off exponentially up to this (with jitter)", NULL),
	O("keepalive", OPT_T_DUR, keepalive_ms, 0, 3600000, "25s",
	  "QUIC PING when idle so NAT bindings survive; 0 = off", NULL),
	O("idle_timeout", OPT_T_DUR, idle_timeout_ms, 1000, 3600000, "30s",
	  "the connection is given up after this long without packets", NULL),
	O("connect_timeout", OPT_T_DUR, connect_timeout_ms, 1000, 600000, "10s",
	  "a connection attempt is given up after this long", NULL),
	C("mtu", mtu, "0",
	  "TUN MTU, 1280 to 65535; 0 = the largest packet the tunnel carries (at least 1280)", "N",
	  set_mtu, 0),
	O("ipv6", OPT_T_BOOL, ipv6, 0, 0, "false", "also ask the relay for an IPv6 address", NULL),
	O("log_level", OPT_T_LEVEL, log_level, 0, 0, "info", "error, warn, info or debug", NULL),
	O("log_format", OPT_T_FORMAT, log_format, 0, 0, "text",
	  "text (one line per event) or json (one JSON object per line: ts, level, msg)", NULL),
	C("accept_routes", accept_routes, "",
	  "install only advertised routes inside these prefixes (a YAML list, or comma-separated); "
	  "others are refused and logged. Empty = every route; none = no route",
	  "PREFIX,...", set_prefixes, 1),
	C("dns", dns, "auto",
	  "DNS from the relay (DNS_ASSIGN): resolved (per-link servers and routing domains on the "
	  "TUN through systemd-resolved), file (rewrite resolv_conf, restored on exit), auto "
	  "(resolved if it runs, else file) or off",
	  "MODE", set_dns, 0),
	O("resolv_conf", OPT_T_STR, resolv_conf, 0, 0, "/etc/resolv.conf",
	  "the resolver file dns: file rewrites in place", "FILE"),
	O("dns_backup", OPT_T_STR, dns_backup, 0, 0, "",
	  "where dns: file keeps the original resolver file until it is put back (also after a "
	  "crash, at the next start); empty = beside it, RESOLV_CONF.zgate-orig. Agents sharing "
	  "one /etc (ip netns exec) need one each",
	  "FILE"),
};

OPT_TABLE_FITS(opts);
static const struct opt_table table = OPT_TABLE_FROM(opts, struct agent_config, from);

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

/* accept_routes: a flag or variable replaces the list the file gave; ""
 * is every route. */
static int set_prefixes(void *cfg, const struct opt_spec *o, const char *text,
			const char *where, char *err, size_t errlen)
{
	struct agent_accept *a = (struct agent_accept *)(void *)((char *)cfg + o->off);

	memset(a, 0, sizeof(*a));
	return add_prefixes(a, text, where, err, errlen);
}

static struct relaylist scratch; /* entries checked as they are read */

/* relay from a flag, variable or YAML scalar: the whole relay list, each
 * entry checked here so an error names where it came from. */
static int set_relays(void *cfg, const struct opt_spec *o, const char *text,
		      const char *where, char *err, size_t errlen)
{
	int r;

	scratch.n = 0;
	if (strlen(text) < o->size && (r = relaylist_add(&scratch, text, where, err, errlen)) != 0)
		return r;
	return opt_set_text((char *)cfg + o->off, o->size, text, where, err, errlen);
}

/* dns: the length first, then the mode (agentdns_mode_parse()). */
static int set_dns(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		   char *err, size_t errlen)
{
	enum agentdns_mode dm;

	if (strlen(text) < o->size && agentdns_mode_parse(text, &dm) != 0) {
		zg_seterr(err, errlen,
			  "%s: \"%s\" is not a DNS mode (auto, resolved, file or off)", where,
			  text);
		return ZG_ERR_CONFIG;
	}
	return opt_set_text((char *)cfg + o->off, o->size, text, where, err, errlen);
}

/* The least MTU of an IPv6 link (RFC 8200), which the TUN carries too. */
#define MTU_MIN 1280

/* mtu: 0 or MTU_MIN to 65535, checked as it is read so that the message
 * names where it came from: FILE:LINE:COL, the flag or the variable. */
static int set_mtu(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		   char *err, size_t errlen)
{
	uint64_t v;
	uint32_t u;

	if (opt_parse_uint(text, 0, 65535, &v) != 0 || (v != 0 && v < MTU_MIN)) {
		zg_seterr(err, errlen,
			  "%s: \"%s\" is not 0 (auto) or a whole number from %u to 65535 (an IPv6 "
			  "link carries at least %u bytes, RFC 8200)",
			  where, text, MTU_MIN, MTU_MIN);
		return ZG_ERR_CONFIG;
	}
	u = (uint32_t)v;
	memcpy((char *)cfg + o->off, &u, sizeof(u));
	return 0;
}

/* 1 when name can name a network device: 1 to IFNAMSIZ - 1 characters,
 * no '/', ':', '%' or blanks, not "." or "..". */
static int tun_name_ok(const char *name)
{
	return name[0] != '\0' && strlen(name) < IFNAMSIZ && !strpbrk(name, "/ \t:%") &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int tun_name_err(const char *where, const char *name, char *err, size_t errlen)
{
	zg_seterr(err, errlen,
		  "%s: \"%s\" is not a device name (1 to %d characters, no '/', ':', '%%' or "
		  "spaces)",
		  where, name, IFNAMSIZ - 1);
	return ZG_ERR_CONFIG;
}

/* tun: checked as it is read, so that the message names where it came
 * from, as set_mtu(). */
static int set_tun(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		   char *err, size_t errlen)
{
	if (!tun_name_ok(text))
		return tun_name_err(where, text, err, errlen);
	return opt_set_text((char *)cfg + o->off, o->size, text, where, err, errlen);
}

void agent_config_defaults(struct agent_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	opt_defaults(&table, cfg);
}

/* What a YAML list of o's items is read into. */
struct list_load {
	struct agent_config *cfg;
	const struct opt_spec *o;
	const char *where;
	size_t len; /* relay: bytes joined so far */
};

/* One item of accept_routes's list. */
static int prefix_item(void *ctx, const yaml_event_t *ev, char *err, size_t errlen)
{
	struct list_load *l = ctx;
	struct agent_accept *a = (struct agent_accept *)(void *)((char *)l->cfg + l->o->off);

	if (ev->type != YAML_SCALAR_EVENT) {
		zg_seterr(err, errlen, "%s: expected a list of prefixes, found %s in it", l->where,
			  yamlcfg_kind(ev));
		return ZG_ERR_CONFIG;
	}
	if (strcmp((const char *)ev->data.scalar.value, "none") == 0) {
		zg_seterr(err, errlen, "%s: \"none\" cannot be in a list (write [] or none)",
			  l->where);
		return ZG_ERR_CONFIG;
	}
	return add_prefixes(a, (const char *)ev->data.scalar.value, l->where, err, errlen);
}

/* One item of relay's list: checked where it stands, then joined with
 * commas into cfg->relay. */
static int relay_item(void *ctx, const yaml_event_t *ev, char *err, size_t errlen)
{
	struct list_load *l = ctx;
	char *dst = (char *)l->cfg + l->o->off, at[600];
	const char *v = (const char *)ev->data.scalar.value;
	int r;

	(void)snprintf(at, sizeof(at), "%s (line %zu)", l->where, ev->start_mark.line + 1);
	if (ev->type != YAML_SCALAR_EVENT) {
		zg_seterr(err, errlen, "%s: expected a list of HOST:PORT, found %s in it", at,
			  yamlcfg_kind(ev));
		return ZG_ERR_CONFIG;
	}
	if ((r = relaylist_add(&scratch, v, at, err, errlen)) != 0)
		return r;
	if (l->len + strlen(v) + 2 > l->o->size) {
		zg_seterr(err, errlen, "%s: the list is longer than %zu bytes", at, l->o->size - 1);
		return ZG_ERR_CONFIG;
	}
	l->len += (size_t)snprintf(dst + l->len, l->o->size - l->len, "%s%s", l->len ? "," : "",
				   v);
	return 0;
}

/* A YAML list for relay or accept_routes, whose start was read. An empty
 * accept_routes list ([]) is "none": the key is there, so a filter was
 * meant; an empty relay list is an error. */
static int load_list(void *cfg, const struct opt_spec *o, yaml_parser_t *p, const char *name,
		     const char *where, char *err, size_t errlen)
{
	struct list_load l = { .cfg = cfg, .o = o, .where = where };
	struct agent_accept *a;
	int r;

	if (o->set == set_prefixes) {
		a = (struct agent_accept *)(void *)((char *)cfg + o->off);
		memset(a, 0, sizeof(*a));
		a->filter = 1;
		return yamlcfg_list(p, name, where, prefix_item, &l, NULL, err, errlen);
	}
	scratch.n = 0;
	if ((r = yamlcfg_list(p, name, where, relay_item, &l, NULL, err, errlen)) != 0)
		return r;
	if (l.len == 0) {
		zg_seterr(err, errlen, "%s: the list is empty (at least one HOST:PORT)", where);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

int agent_config_load_buf(struct agent_config *cfg, const char *name, const char *text,
			  size_t len, char *err, size_t errlen)
{
	struct yamlcfg_opts c = { .t = &table, .cfg = cfg, .list = load_list };

	return yamlcfg_load(name, text, len, yamlcfg_opts_mapping, &c, err, errlen);
}

int agent_config_load_file(struct agent_config *cfg, const char *path, char *err,
			   size_t errlen)
{
	struct yamlcfg_opts c = { .t = &table, .cfg = cfg, .list = load_list };

	return yamlcfg_load_file(path, yamlcfg_opts_mapping, &c, err, errlen);
}

int agent_config_apply_env(struct agent_config *cfg, char *const *envp, char *err,
			   size_t errlen)
{
	return opt_apply_env(&table, cfg, envp, err, errlen);
}

int agent_config_apply_flag(struct agent_config *cfg, const char *flag, const char *value,
			    char *err, size_t errlen)
{
	return opt_apply_flag(&table, cfg, flag, value, err, errlen);
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
	char a[OPT_FROM_FILE_MAX + 64], b[OPT_FROM_FILE_MAX + 32];
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
	if (!tun_name_ok(cfg->tun)) /* set_tun() checks it as read; the struct may be filled */
		return tun_name_err("tun", cfg->tun, err, errlen);
	/* each value named where it was set: the two may come from
	 * different sources (the file, a variable, a flag, the default) */
	if (cfg->keepalive_ms != 0 && cfg->keepalive_ms >= cfg->idle_timeout_ms) {
		(void)opt_where(&table, cfg, "keepalive", 1, a, sizeof(a));
		(void)opt_where(&table, cfg, "idle_timeout", 0, b, sizeof(b));
		zg_seterr(err, errlen,
			  "%s: %ums must be shorter than idle_timeout (%ums, %s), or the connection "
			  "dies before the first PING",
			  a, cfg->keepalive_ms, cfg->idle_timeout_ms, b);
		return ZG_ERR_CONFIG;
	}
	if (cfg->reconnect_min_ms > cfg->reconnect_max_ms) {
		(void)opt_where(&table, cfg, "reconnect_min", 1, a, sizeof(a));
		(void)opt_where(&table, cfg, "reconnect_max", 0, b, sizeof(b));
		zg_seterr(err, errlen, "%s: %ums is longer than reconnect_max (%ums, %s)", a,
			  cfg->reconnect_min_ms, cfg->reconnect_max_ms, b);
		return ZG_ERR_CONFIG;
	}
	/* set_mtu() refuses it where it is read; this is for a caller that
	 * fills the struct itself */
	if ((cfg->mtu != 0 && cfg->mtu < MTU_MIN) || cfg->mtu > 65535) {
		zg_seterr(err, errlen,
			  "mtu: %u is not 0 (auto) or a whole number from %u to 65535 (an IPv6 link "
			  "carries at least %u bytes, RFC 8200)",
			  cfg->mtu, MTU_MIN, MTU_MIN);
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

int agent_config_parse(struct agent_config *cfg, int argc, char *const *argv,
		       char *const *envp, enum agent_action *paction, char *err, size_t errlen)
{
	struct yamlcfg_args a = { .o = { .t = &table, .cfg = cfg, .list = load_list }, .first = 1 };
	int r;

	agent_config_defaults(cfg);
	/* Under systemd (RuntimeDirectory=zgate) the status file is on by
	 * default where `zgate-agent status` looks: the first directory. */
	for (char *const *e = envp; e != NULL && *e != NULL; e++) {
		if (strncmp(*e, "RUNTIME_DIRECTORY=", 18) == 0 && (*e)[18] == '/') {
			const char *d = *e + 18;
			int dl = (int)strcspn(d, ":");

			(void)snprintf(cfg->status_file, sizeof(cfg->status_file), "%.*s/status.json", dl, d);
		}
	}
	r = yamlcfg_args(&a, argc, argv, envp, err, errlen);
	*paction = (enum agent_action)a.action;
	if (r != 0 || a.action == OPT_ACT_HELP || a.action == OPT_ACT_VERSION)
		return r;
	return agent_config_validate(cfg, err, errlen);
}

size_t agent_config_usage(char *buf, size_t buflen)
{
	return opt_usage(&table, buf, buflen);
}
