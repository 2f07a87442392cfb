#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "log.h"
#include "masque/uri.h"
#include "opt.h"
#include "relay/dnssvc.h"
#include "yamlcfg.h"
#include "zg_err.h"

enum opt_type {
	OPT_STR,      /* free text (paths, addresses) */
	OPT_U32,      /* whole number within [min, max] */
	OPT_DURATION, /* "60s" etc., stored as uint32_t milliseconds */
	OPT_PREFIX,   /* CIDR prefix of the given IP version */
	OPT_PREFIXES, /* list of CIDR prefixes, either version (YAML list or
		       * comma-separated text) */
	OPT_LOGLEVEL,
	OPT_LOGFORMAT
};

struct opt {
	const char *path; /* YAML path; flag and variable derive from it */
	enum opt_type type;
	size_t off;  /* offset in struct relay_config */
	size_t size; /* for OPT_STR: the buffer size */
	uint64_t min, max;
	uint8_t version; /* for OPT_PREFIX */
	const char *def; /* default, as text (parsed by config_defaults) */
	const char *help;
};

#define STR(p, f, d, h)                                                      \
	{                                                                    \
		p, OPT_STR, offsetof(struct relay_config, f),                \
			sizeof(((struct relay_config *)0)->f), 0, 0, 0, d, h \
	}
/* A list: a YAML sequence of strings, or one string of comma-separated
 * items (environment, flags); stored joined with ", ". */
#define LIST(p, f, d, h)                                                     \
	{                                                                    \
		p, OPT_STR, offsetof(struct relay_config, f),                \
			sizeof(((struct relay_config *)0)->f), 0, 0, 1, d, h \
	}
#define U32(p, f, lo, hi, d, h)                                                \
	{                                                                      \
		p, OPT_U32, offsetof(struct relay_config, f),                  \
			sizeof(((struct relay_config *)0)->f), lo, hi, 0, d, h \
	}
#define DUR(p, f, lo, hi, d, h)                                    \
	{                                                          \
		p, OPT_DURATION, offsetof(struct relay_config, f), \
			sizeof(uint32_t), lo, hi, 0, d, h          \
	}
#define PFX(p, f, v, d, h)                                          \
	{                                                           \
		p, OPT_PREFIX, offsetof(struct relay_config, f),    \
			sizeof(struct config_prefix), 0, 0, v, d, h \
	}

static const struct opt opts[] = {
	STR("listen", listen, "0.0.0.0:4433", "UDP address:port for QUIC"),
	STR("ops_listen", ops_listen, "127.0.0.1:8080", "TCP address:port for /health, /ready, /metrics (set the pod address to reach it from outside)"),
	STR("tls.cert", tls_cert, "", "server certificate chain (PEM); required"),
	STR("tls.key", tls_key, "", "server private key (PEM); required"),
	STR("tls.client_ca", tls_client_ca, "", "CA bundle that signs client certificates (PEM); required"),
	STR("tls.crl", tls_crl, "", "certificate revocation list (PEM); optional"),
	STR("tls.identity", tls_identity, "cn",
	    "client identity: the certificate's one subject CN (cn) or one SAN URI (san_uri)"),
	STR("uri_template", uri_template,
	    "https://localhost:4433/.well-known/masque/ip/{target}/{ipproto}/",
	    "CONNECT-IP URI template (RFC 9484)"),
	STR("policy", policy_file, "", "policy file (YAML); required"),
	STR("state_file", state_file, "", "IPAM state file; empty = in memory only"),
	STR("relay_id", relay_id, "",
	    "this relay's id, recorded on the leases of zgate-api (letters, digits, . _ -); empty = the host name"),
	STR("ipam.backend", ipam_backend, "local",
	    "where addresses come from: local (this relay's pool.ipv4) or api (zgate-api, shared by several relays)"),
	STR("ipam.api.url", ipam_api_url, "", "zgate-api's address, https://host[:port]; required with ipam.backend api"),
	STR("ipam.api.ca", ipam_api_ca, "", "CA bundle that signs zgate-api's certificate (PEM)"),
	STR("ipam.api.cert", ipam_api_cert, "",
	    "this relay's client certificate for zgate-api (PEM; CN relay:<relay_id>)"),
	STR("ipam.api.key", ipam_api_key, "", "its private key (PEM)"),
	DUR("ipam.api.timeout", ipam_api_timeout_ms, 100, 60000, "2s",
	    "an allocation (retries included) waits at most this long; then a new client gets 503"),
	DUR("ipam.api.refresh", ipam_api_refresh_ms, 1000, 86400000, "1h",
	    "open tunnels' leases are marked used (last_seen) this often"),
	PFX("pool.ipv4", pool4, 4, "10.100.0.0/24", "IPv4 pool; .1 is the gateway"),
	PFX("pool.ipv6", pool6, 6, "", "IPv6 pool; optional"),
	{ "forbidden", OPT_PREFIXES, offsetof(struct relay_config, forbidden),
	  sizeof(((struct relay_config *)0)->forbidden), 0, 0, 0, "",
	  "extra never-reachable destinations, e.g. [10.96.0.0/12] (Kubernetes Services); "
	  "at most 16" },
	U32("limits.sessions", max_sessions, 1, 1000000, "10000", "tunnels at once"),
	U32("limits.handshakes_per_source", max_handshakes_per_source, 1, 1000000, "32",
	    "TLS handshakes in progress from one IPv4 address or IPv6 /64"),
	U32("limits.flows", max_flows, 1, 10000000, "100000", "flows at once, all clients"),
	U32("limits.flows_per_client", max_flows_per_client, 1, 1000000, "1000", "flows at once per client"),
	U32("limits.halfopen_per_client", max_halfopen_per_client, 1, 1000000, "512", "TCP connects in progress per client; more SYNs wait (dropped, retried)"),
	U32("limits.udp_per_client", max_udp_per_client, 1, 1000000, "500", "UDP flows per client"),
	U32("limits.memory", memory_mib, 0, 4194304, "0", "MiB the TCP stack may hold; 0 = half the cgroup memory limit, else 1024"),
	U32("limits.memory_per_client", memory_per_client_mib, 0, 1048576, "32", "MiB of TCP windows per client; 0 = no budget"),
	U32("limits.fd_reserve", fd_reserve, 0, 1000000, "0", "descriptors flows never take (sessions, ops); 0 = 1/8 of RLIMIT_NOFILE, 64..1024"),
	U32("limits.fd_per_client_pct", fd_client_pct, 1, 100, "50", "percent of the flows' descriptors one client may hold"),
	U32("mtu", mtu, 1280, 65535, "1280", "inner (tunnel) MTU"),
	DUR("timeouts.tcp_idle", tcp_idle_ms, 1000, UINT32_MAX, "2h", "idle TCP flow closed after"),
	DUR("timeouts.udp_idle", udp_idle_ms, 1000, UINT32_MAX, "60s", "idle UDP flow closed after"),
	DUR("timeouts.dns_idle", dns_idle_ms, 1000, UINT32_MAX, "10s", "idle UDP flow to port 53 closed after"),
	DUR("timeouts.quic_idle", quic_idle_ms, 1000, UINT32_MAX, "60s", "idle QUIC connection closed after"),
	DUR("timeouts.keepalive", keepalive_ms, 0, UINT32_MAX, "20s", "PING interval; 0 = off"),
	DUR("timeouts.drain_grace", drain_grace_ms, 0, UINT32_MAX, "30s", "on SIGTERM, wait this long for tunnels to end"),
	LIST("dns.resolvable", dns_resolvable, "", "DNS-name targets that may be resolved: names, or .suffix for every name under it; empty = any name"),
	U32("dns.resolutions_per_minute", dns_per_min, 1, 100000, "60", "DNS-name targets one client may have resolved per minute"),
	STR("dns.service", dns_service, "on", "the DNS service on the pool's gateway addresses (UDP and TCP port 53, inside the tunnel): on or off"),
	LIST("dns.upstreams", dns_upstreams, "", "resolvers the DNS service asks (address or [address]:port); empty = the nameservers of /etc/resolv.conf"),
	STR("dns.deny_answer", dns_deny_answer, "nxdomain", "answer to a name no allow rule of the client names: nxdomain or refused"),
	DUR("dns.ttl_floor", dns_ttl_floor_ms, 1000, 86400000, "30s", "an address learned from an answer stays bound to its name at least this long"),
	DUR("dns.ttl_cap", dns_ttl_cap_ms, 1000, 604800000, "1h", "and at most this long, whatever the record's TTL"),
	U32("dns.max_learned_routes", dns_max_learned_routes, 0, 100000, "256", "addresses learned from answers (bound and routed) per client; more are not bound (zgate_dns_learned_cap_hits_total)"),
	U32("dns.cache_entries", dns_cache_entries, 0, 1000000, "10000", "answers the DNS service keeps (by name and type, for their TTL); 0 = no cache"),
	STR("dns.enabled", dns_enabled, "auto",
	    "tell clients their DNS server and domains (DNS_ASSIGN capsule): auto (only to clients that send DNS_ASSIGN themselves), true (to every client) or false"),
	LIST("dns.domains", dns_domains, "",
	     "domains the agent sends to the relay's DNS server (split DNS); \".\" = every name; at most 32"),
	LIST("dns.nameservers", dns_nameservers, "",
	     "the DNS server addresses given to clients; empty = the pool gateway (.1), where the relay answers DNS"),
	U32("ops.max_connections", ops_max_conns, 1, 10000, "64", "ops connections at once; more get 503"),
	DUR("ops.timeout", ops_timeout_ms, 100, 600000, "5s", "an ops client must send its request (and take the answer) within"),
	STR("admin.token_file", admin_token_file, "",
	    "file with the bearer token for /admin/sessions (at least 32 bytes, not readable by others); empty = no admin endpoint"),
	STR("admin.listen", admin_listen, "",
	    "TCP address:port for the admin endpoint alone; empty = on ops_listen"),
	STR("debug.payload_dump", payload_dump, "",
	    "DEBUG ONLY: append every IP packet decrypted from or sent into a tunnel to this file "
	    "(4-byte big-endian length, raw bytes); empty = off"),
	U32("audit.deny_per_second", audit_deny_per_s, 0, 1000000, "10",
	    "flow_deny audit lines per client per second (20 times this for all clients together); "
	    "the rest are counted in flow_deny_suppressed; 0 = every deny is written"),
	U32("audit.buffer_kib", audit_buffer_kib, 16, 1048576, "1024",
	    "KiB of audit lines waiting for stdout; when it is full, lines are dropped and counted "
	    "(audit_dropped, zgate_audit_lines_dropped_total)"),
	{ "log_level", OPT_LOGLEVEL, offsetof(struct relay_config, log_level),
	  sizeof(((struct relay_config *)0)->log_level), 0, 0, 0, "info",
	  "error, warn, info or debug" },
	{ "log_format", OPT_LOGFORMAT, offsetof(struct relay_config, log_format),
	  sizeof(((struct relay_config *)0)->log_format), 0, 0, 0, "text",
	  "text (one line per event) or json (one JSON object per line: ts, level, msg)" },
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

int config_parse_prefix(const char *s, struct config_prefix *p)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	char *end;
	unsigned long len;
	size_t alen, full;
	unsigned rem;
	struct config_prefix r;

	memset(&r, 0, sizeof(r));
	if (!slash || (size_t)(slash - s) >= sizeof(addr) || !isdigit((unsigned char)slash[1]))
		return ZG_ERR_CONFIG;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (errno || *end)
		return ZG_ERR_CONFIG;
	if (inet_pton(AF_INET, addr, r.addr) == 1)
		r.version = 4;
	else if (inet_pton(AF_INET6, addr, r.addr) == 1)
		r.version = 6;
	else
		return ZG_ERR_CONFIG;
	alen = r.version == 4 ? 4 : 16;
	if (len > alen * 8)
		return ZG_ERR_CONFIG;
	r.len = (uint8_t)len;
	full = len / 8;
	rem = (unsigned)(len % 8);
	if (rem && (r.addr[full] & (0xffu >> rem)))
		return ZG_ERR_CONFIG;
	for (size_t i = full + (rem ? 1 : 0); i < alen; i++)
		if (r.addr[i])
			return ZG_ERR_CONFIG;
	*p = r;
	return 0;
}

/* "forbidden": comma-separated prefixes (spaces allowed) replace the list. */
static int set_prefixes(struct relay_config *cfg, const char *text, const char *where,
			char *err, size_t errlen)
{
	struct config_prefix list[CONFIG_FORBIDDEN_MAX];
	char item[INET6_ADDRSTRLEN + 8];
	uint32_t n = 0;
	const char *p = text;

	while (*p) {
		size_t len;

		while (*p == ' ' || *p == ',')
			p++;
		len = strcspn(p, ", ");
		if (len == 0)
			break;
		if (n == CONFIG_FORBIDDEN_MAX) {
			zg_seterr(err, errlen, "%s: more than %d prefixes", where,
				  CONFIG_FORBIDDEN_MAX);
			return ZG_ERR_CONFIG;
		}
		if (len >= sizeof(item) ||
		    (memcpy(item, p, len), item[len] = '\0', config_parse_prefix(item, &list[n])) != 0) {
			zg_seterr(err, errlen,
				  "%s: \"%.*s\" is not an IPv4 or IPv6 prefix with host bits zero "
				  "(e.g. 10.96.0.0/12)",
				  where, (int)(len < 64 ? len : 64), p);
			return ZG_ERR_CONFIG;
		}
		n++;
		p += len;
	}
	memcpy(cfg->forbidden, list, n * sizeof(list[0]));
	cfg->n_forbidden = n;
	return 0;
}

/* Parses text for option o into cfg. where names the source for messages
 * ("file:line:col: path", "ZGATE_X" or "--x"). */
static int set_opt(struct relay_config *cfg, const struct opt *o,
		   const char *text, const char *where, char *err, size_t errlen)
{
	char *base = (char *)cfg + o->off;
	uint64_t v;
	uint32_t ms;
	enum log_level lvl;
	enum log_format fmt;
	struct config_prefix pfx;

	switch (o->type) {
	case OPT_STR:
		if (strlen(text) >= o->size) {
			zg_seterr(err, errlen, "%s: value is %zu bytes long; at most %zu allowed",
				  where, strlen(text), o->size - 1);
			return ZG_ERR_CONFIG;
		}
		memcpy(base, text, strlen(text) + 1);
		return 0;
	case OPT_U32:
		if (opt_parse_uint(text, o->min, o->max, &v) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a whole number from %llu to %llu",
				  where, text, (unsigned long long)o->min, (unsigned long long)o->max);
			return ZG_ERR_CONFIG;
		}
		if (o->size == sizeof(uint16_t)) {
			uint16_t v16 = (uint16_t)v;
			memcpy(base, &v16, sizeof(v16));
		} else {
			uint32_t v32 = (uint32_t)v;
			memcpy(base, &v32, sizeof(v32));
		}
		return 0;
	case OPT_DURATION:
		if (opt_parse_duration(text, &ms) != 0 || ms < o->min || ms > o->max) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not a duration of at least %llums (a whole number with ms, s, m or h: 500ms, 60s, 5m, 2h)",
				  where, text, (unsigned long long)o->min);
			return ZG_ERR_CONFIG;
		}
		memcpy(base, &ms, sizeof(ms));
		return 0;
	case OPT_PREFIX:
		if (text[0] == '\0' && o->def[0] == '\0') { /* unset an optional pool */
			memset(base, 0, sizeof(pfx));
			return 0;
		}
		if (config_parse_prefix(text, &pfx) != 0 || pfx.version != o->version) {
			zg_seterr(err, errlen,
				  "%s: \"%s\" is not an IPv%u prefix with host bits zero (e.g. %s)",
				  where, text, o->version,
				  o->version == 4 ? "10.100.0.0/24" : "fd00:100::/64");
			return ZG_ERR_CONFIG;
		}
		memcpy(base, &pfx, sizeof(pfx));
		return 0;
	case OPT_PREFIXES:
		return set_prefixes(cfg, text, where, err, errlen);
	case OPT_LOGLEVEL:
		if (log_level_parse(text, &lvl) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a log level (error, warn, info or debug)",
				  where, text);
			return ZG_ERR_CONFIG;
		}
		memcpy(base, text, strlen(text) + 1);
		return 0;
	case OPT_LOGFORMAT:
		if (log_format_parse(text, &fmt) != 0) {
			zg_seterr(err, errlen, "%s: \"%s\" is not a log format (text or json)", where,
				  text);
			return ZG_ERR_CONFIG;
		}
		memcpy(base, text, strlen(text) + 1);
		return 0;
	}
	return ZG_ERR_INVAL;
}

void config_defaults(struct relay_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_OPTS; i++) {
		int r = set_opt(cfg, &opts[i], opts[i].def, "default", NULL, 0);
		(void)r; /* the table's defaults are tested to parse */
	}
}

static const struct opt *find_path(const char *path)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].path, path) == 0)
			return &opts[i];
	return NULL;
}

/* Is prefix "a.b" a section, i.e. does some option start with "a.b."? */
static int is_section(const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < N_OPTS; i++)
		if (strncmp(opts[i].path, path, n) == 0 && opts[i].path[n] == '.')
			return 1;
	return 0;
}

/* Lists the keys valid under section (or at the top when section is ""). */
static void keys_under(const char *section, char *out, size_t outlen)
{
	size_t sl = strlen(section), n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < N_OPTS; i++) {
		const char *p = opts[i].path, *rest, *dot;
		size_t kl;
		if (sl && (strncmp(p, section, sl) != 0 || p[sl] != '.'))
			continue;
		rest = sl ? p + sl + 1 : p;
		dot = strchr(rest, '.');
		kl = dot ? (size_t)(dot - rest) : strlen(rest);
		/* skip keys already listed (sections repeat) */
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++) {
			const char *q = opts[j].path, *qr, *qd;
			if (sl && (strncmp(q, section, sl) != 0 || q[sl] != '.'))
				continue;
			qr = sl ? q + sl + 1 : q;
			qd = strchr(qr, '.');
			if ((qd ? (size_t)(qd - qr) : strlen(qr)) == kl && strncmp(qr, rest, kl) == 0)
				dup = 1;
		}
		if (dup)
			continue;
		int w = snprintf(out + n, outlen - n, "%s%.*s", n ? ", " : "", (int)kl, rest);
		if (w < 0 || (size_t)w >= outlen - n)
			return;
		n += (size_t)w;
	}
}

struct yparse {
	yaml_parser_t *p;
	const char *name;
	char *err;
	size_t errlen;
};

static int next_event(struct yparse *y, yaml_event_t *ev)
{
	if (!yaml_parser_parse(y->p, ev)) {
		zg_seterr(y->err, y->errlen, "%s:%zu:%zu: not valid YAML: %s", y->name,
			  y->p->problem_mark.line + 1, y->p->problem_mark.column + 1,
			  y->p->problem ? y->p->problem : "syntax error");
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* True for the options that take a YAML sequence (a list of names or of
 * prefixes): stored as one comma-separated text, parsed like the same text
 * from a flag or variable. */
static int takes_list(const struct opt *o)
{
	return o->type == OPT_PREFIXES || (o->type == OPT_STR && o->version == 1);
}

/* Parses a sequence of strings (its start event consumed) into list option
 * o: the items are joined with ", " and set as one value, so every source
 * takes the same text. An item may not itself contain a comma. */
static int parse_list(struct yparse *y, struct relay_config *cfg, const struct opt *o,
		      const char *where)
{
	char joined[CONFIG_PATH_MAX];
	size_t n = 0;
	yaml_event_t ev;
	int r;

	joined[0] = '\0';
	for (;;) {
		if ((r = next_event(y, &ev)) != 0)
			return r;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return set_opt(cfg, o, joined, where, y->err, y->errlen);
		}
		if (ev.type != YAML_SCALAR_EVENT || strchr((const char *)ev.data.scalar.value, ',') ||
		    n + ev.data.scalar.length + 3 > sizeof(joined)) {
			zg_seterr(y->err, y->errlen, "%s:%zu:%zu: %s: expected a list of at most %zu "
						     "bytes of items without commas, found %s",
				  y->name,
				  ev.start_mark.line + 1, ev.start_mark.column + 1, o->path,
				  sizeof(joined) - 1,
				  ev.type == YAML_SCALAR_EVENT ? "a longer list or a comma" : yamlcfg_kind(&ev));
			yaml_event_delete(&ev);
			return ZG_ERR_CONFIG;
		}
		n += (size_t)snprintf(joined + n, sizeof(joined) - n, "%s%s", n ? ", " : "",
				      (const char *)ev.data.scalar.value);
		yaml_event_delete(&ev);
	}
}

/* Parses one mapping whose start event was consumed; section is its path. */
static int parse_mapping(struct yparse *y, struct relay_config *cfg,
			 const char *section, int depth)
{
	yaml_event_t key, val;
	char path[256], where[512], keys[512];
	const struct opt *o;
	int r;

	if (depth > 4) {
		zg_seterr(y->err, y->errlen, "%s: nesting too deep", y->name);
		return ZG_ERR_CONFIG;
	}
	for (;;) {
		if ((r = next_event(y, &key)) != 0)
			return r;
		if (key.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&key);
			return 0;
		}
		if (key.type != YAML_SCALAR_EVENT) {
			zg_seterr(y->err, y->errlen, "%s:%zu:%zu: expected a key, found %s",
				  y->name, key.start_mark.line + 1, key.start_mark.column + 1,
				  yamlcfg_kind(&key));
			yaml_event_delete(&key);
			return ZG_ERR_CONFIG;
		}
		(void)snprintf(path, sizeof(path), "%s%s%s", section, *section ? "." : "",
			       (const char *)key.data.scalar.value);
		(void)snprintf(where, sizeof(where), "%s:%zu:%zu: %s", y->name,
			       key.start_mark.line + 1, key.start_mark.column + 1, path);
		o = find_path(path);
		if (!o && !is_section(path)) {
			keys_under(section, keys, sizeof(keys));
			zg_seterr(y->err, y->errlen, "%s: unknown key (expected one of: %s)", where, keys);
			yaml_event_delete(&key);
			return ZG_ERR_CONFIG;
		}
		if ((r = next_event(y, &val)) != 0) {
			yaml_event_delete(&key);
			return r;
		}
		if (o && val.type == YAML_SCALAR_EVENT) {
			r = set_opt(cfg, o, (const char *)val.data.scalar.value, where, y->err, y->errlen);
		} else if (o && takes_list(o) && val.type == YAML_SEQUENCE_START_EVENT) {
			r = parse_list(y, cfg, o, where);
		} else if (!o && val.type == YAML_MAPPING_START_EVENT) {
			r = parse_mapping(y, cfg, path, depth + 1);
		} else {
			zg_seterr(y->err, y->errlen, "%s: expected %s, found %s", where,
				  o ? "a single value" : "a mapping of keys", yamlcfg_kind(&val));
			r = ZG_ERR_CONFIG;
		}
		yaml_event_delete(&key);
		yaml_event_delete(&val);
		if (r != 0)
			return r;
	}
}

/* yamlcfg_load()'s callback: the top-level mapping, whose start was read. */
static int load_mapping(void *ctx, yaml_parser_t *p, const char *name, char *err, size_t errlen)
{
	struct yparse y = { .p = p, .name = name, .err = err, .errlen = errlen };

	return parse_mapping(&y, ctx, "", 0);
}

int config_load_buf(struct relay_config *cfg, const char *name,
		    const char *text, size_t len, char *err, size_t errlen)
{
	return yamlcfg_load(name, text, len, load_mapping, cfg, err, errlen);
}

int config_load_file(struct relay_config *cfg, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t n;
	int r = yamlcfg_read_file(path, &buf, &n, err, errlen);

	if (r != 0)
		return r;
	r = config_load_buf(cfg, path, buf, n, err, errlen);
	free(buf);
	return r;
}

int config_apply_env(struct relay_config *cfg, char *const *envp, char *err,
		     size_t errlen)
{
	char name[128];

	for (; envp && *envp; envp++) {
		const char *kv = *envp, *eq = strchr(kv, '=');
		const struct opt *o = NULL;
		int r;

		if (strncmp(kv, "ZGATE_", 6) != 0 || !eq)
			continue;
		if ((size_t)(eq - kv) == strlen("ZGATE_CONFIG") &&
		    strncmp(kv, "ZGATE_CONFIG", (size_t)(eq - kv)) == 0)
			continue;
		for (size_t i = 0; i < N_OPTS && !o; i++) {
			opt_name(opts[i].path, 1, name, sizeof(name));
			if (strlen(name) == (size_t)(eq - kv) && strncmp(kv, name, (size_t)(eq - kv)) == 0)
				o = &opts[i];
		}
		if (!o) {
			zg_seterr(err, errlen, "environment: %.*s names no option (see --help)",
				  (int)(eq - kv), kv);
			return ZG_ERR_CONFIG;
		}
		opt_name(o->path, 1, name, sizeof(name));
		if ((r = set_opt(cfg, o, eq + 1, name, err, errlen)) != 0)
			return r;
	}
	return 0;
}

int config_apply_flag(struct relay_config *cfg, const char *flag,
		      const char *value, char *err, size_t errlen)
{
	char name[128], where[160];

	for (size_t i = 0; i < N_OPTS; i++) {
		opt_name(opts[i].path, 0, name, sizeof(name));
		if (strcmp(name, flag) == 0) {
			(void)snprintf(where, sizeof(where), "--%s", name);
			return set_opt(cfg, &opts[i], value, where, err, errlen);
		}
	}
	zg_seterr(err, errlen, "unknown option --%s (see --help)", flag);
	return ZG_ERR_NOTFOUND;
}

/* What a relay flag takes (opt_next's kind callback). */
static enum opt_arg flag_kind(const char *flag, void *ctx)
{
	char name[128];

	(void)ctx;
	if (strcmp(flag, "config") == 0)
		return OPT_ARG_VALUE;
	if (strcmp(flag, "check-config") == 0)
		return OPT_ARG_NONE;
	for (size_t i = 0; i < N_OPTS; i++) {
		opt_name(opts[i].path, 0, name, sizeof(name));
		if (strcmp(name, flag) == 0)
			return OPT_ARG_VALUE;
	}
	return OPT_ARG_UNKNOWN;
}

int config_parse_args(struct relay_config *cfg, int argc, char *const *argv,
		      char *const *envp, enum config_action *paction, char *path,
		      size_t pathlen, char *err, size_t errlen)
{
	struct opt_cmdline c;
	const char *file = NULL;
	int r, pass;

	*paction = CONFIG_RUN;
	if (pathlen > 0)
		path[0] = '\0';
	config_defaults(cfg);
	/* --help and --version win over anything else on the line. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			*paction = CONFIG_HELP;
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0)
			*paction = CONFIG_VERSION;
	}
	if (*paction == CONFIG_VERSION)
		return 0;
	for (char *const *e = envp; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "ZGATE_CONFIG=", 13) == 0)
			file = *e + 13;
	/* Pass 0 checks the whole line and finds --config; pass 1 applies
	 * the flags over the file and the environment, so flags win. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (file != NULL && file[0] != '\0') {
				(void)snprintf(path, pathlen, "%s", file);
				if ((r = config_load_file(cfg, file, err, errlen)) != 0)
					return r == ZG_ERR_IO ? ZG_ERR_CONFIG : r;
			}
			if ((r = config_apply_env(cfg, envp, err, errlen)) != 0)
				return r;
		}
		memset(&c, 0, sizeof(c));
		c.argc = argc;
		c.argv = argv;
		c.i = 1;
		c.kind = flag_kind;
		while ((r = opt_next(&c, err, errlen)) == 1) {
			if (strcmp(c.name, "check-config") == 0) {
				*paction = CONFIG_CHECK;
			} else if (strcmp(c.name, "config") == 0) {
				file = c.value;
			} else if (pass == 1) {
				r = config_apply_flag(cfg, c.name, c.value, err, errlen);
				if (r != 0)
					return ZG_ERR_CONFIG;
			}
		}
		if (r != 0)
			return r;
	}
	return config_validate(cfg, err, errlen);
}

/* Checks a host:port; the host may be empty, a name, an IPv4 literal or a
 * bracketed IPv6 literal. */
static int check_hostport(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;

	if (!colon)
		return ZG_ERR_CONFIG;
	if (s[0] == '[' && (colon == s || colon[-1] != ']'))
		return ZG_ERR_CONFIG;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || errno || *end || port == 0 || port > 65535)
		return ZG_ERR_CONFIG;
	return 0;
}

/* The rules live in src/masque/uri.c, next to the code that expands and
 * matches templates, so the check and the matcher cannot disagree. */
int config_check_uri_template(const char *t, char *err, size_t errlen)
{
	return uri_template_check(t, err, errlen);
}

int config_validate(const struct relay_config *cfg, char *err, size_t errlen)
{
	char why[256];
	int r;

	if ((r = opt_require(cfg->tls_cert, "tls.cert", err, errlen)) != 0 ||
	    (r = opt_require(cfg->tls_key, "tls.key", err, errlen)) != 0 ||
	    (r = opt_require(cfg->tls_client_ca, "tls.client_ca", err, errlen)) != 0 ||
	    (r = opt_require(cfg->policy_file, "policy", err, errlen)) != 0)
		return r;
	if (strcmp(cfg->tls_identity, "cn") != 0 && strcmp(cfg->tls_identity, "san_uri") != 0) {
		zg_seterr(err, errlen, "tls.identity: \"%s\" is neither cn nor san_uri", cfg->tls_identity);
		return ZG_ERR_CONFIG;
	}
	if (strcmp(cfg->dns_service, "on") != 0 && strcmp(cfg->dns_service, "off") != 0) {
		zg_seterr(err, errlen, "dns.service: \"%s\" is neither on nor off", cfg->dns_service);
		return ZG_ERR_CONFIG;
	}
	if (strcmp(cfg->dns_deny_answer, "nxdomain") != 0 && strcmp(cfg->dns_deny_answer, "refused") != 0) {
		zg_seterr(err, errlen, "dns.deny_answer: \"%s\" is neither nxdomain nor refused",
			  cfg->dns_deny_answer);
		return ZG_ERR_CONFIG;
	}
	if (cfg->dns_upstreams[0] != '\0') {
		struct dnssvc_config dc;
		if (dnssvc_parse_upstreams(&dc, cfg->dns_upstreams, "", err, errlen) != 0)
			return ZG_ERR_CONFIG;
	}
	if (cfg->dns_ttl_floor_ms > cfg->dns_ttl_cap_ms) {
		zg_seterr(err, errlen, "dns.ttl_floor: %u ms is above dns.ttl_cap (%u ms)",
			  cfg->dns_ttl_floor_ms, cfg->dns_ttl_cap_ms);
		return ZG_ERR_CONFIG;
	}
	if (check_hostport(cfg->listen) != 0) {
		zg_seterr(err, errlen, "listen: \"%s\" is not host:port (e.g. 0.0.0.0:4433 or [::]:4433)", cfg->listen);
		return ZG_ERR_CONFIG;
	}
	if (check_hostport(cfg->ops_listen) != 0) {
		zg_seterr(err, errlen, "ops_listen: \"%s\" is not host:port (e.g. 127.0.0.1:8080)", cfg->ops_listen);
		return ZG_ERR_CONFIG;
	}
	if (cfg->admin_listen[0] != '\0' && check_hostport(cfg->admin_listen) != 0) {
		zg_seterr(err, errlen, "admin.listen: \"%s\" is not host:port (e.g. 127.0.0.1:8081)",
			  cfg->admin_listen);
		return ZG_ERR_CONFIG;
	}
	if (cfg->admin_listen[0] != '\0' && cfg->admin_token_file[0] == '\0') {
		zg_seterr(err, errlen, "admin.listen is set but admin.token_file is not: the admin "
				       "endpoint needs a token");
		return ZG_ERR_CONFIG;
	}
	if (cfg->admin_listen[0] != '\0' && strcmp(cfg->admin_listen, cfg->ops_listen) == 0) {
		zg_seterr(err, errlen, "admin.listen: \"%s\" is ops_listen already (leave "
				       "admin.listen empty to serve admin there)",
			  cfg->admin_listen);
		return ZG_ERR_CONFIG;
	}
	if (config_check_uri_template(cfg->uri_template, why, sizeof(why)) != 0) {
		zg_seterr(err, errlen, "uri_template: \"%s\": %s", cfg->uri_template, why);
		return ZG_ERR_CONFIG;
	}
	if (cfg->pool4.version != 4 || cfg->pool4.len > 30) {
		zg_seterr(err, errlen, "pool.ipv4: needs at least a /30 (a gateway and one client)");
		return ZG_ERR_CONFIG;
	}
	if (cfg->pool6.version == 6 && cfg->pool6.len > 126) {
		zg_seterr(err, errlen, "pool.ipv6: needs at least a /126");
		return ZG_ERR_CONFIG;
	}
	if (strcmp(cfg->ipam_backend, "local") != 0 && strcmp(cfg->ipam_backend, "api") != 0) {
		zg_seterr(err, errlen, "ipam.backend: \"%s\" is neither local nor api", cfg->ipam_backend);
		return ZG_ERR_CONFIG;
	}
	if (strcmp(cfg->ipam_backend, "api") == 0) {
		char id[64];
		if ((r = opt_require(cfg->ipam_api_url, "ipam.api.url", err, errlen)) != 0 ||
		    (r = opt_require(cfg->ipam_api_ca, "ipam.api.ca", err, errlen)) != 0 ||
		    (r = opt_require(cfg->ipam_api_cert, "ipam.api.cert", err, errlen)) != 0 ||
		    (r = opt_require(cfg->ipam_api_key, "ipam.api.key", err, errlen)) != 0)
			return r;
		if (strncmp(cfg->ipam_api_url, "https://", 8) != 0 || cfg->ipam_api_url[8] == '\0') {
			zg_seterr(err, errlen, "ipam.api.url: \"%s\" is not https://host[:port]",
				  cfg->ipam_api_url);
			return ZG_ERR_CONFIG;
		}
		if ((r = config_relay_id(cfg, id, sizeof(id), err, errlen)) != 0)
			return r;
	}
	if (cfg->relay_id[0] != '\0') {
		char id[64];
		if ((r = config_relay_id(cfg, id, sizeof(id), err, errlen)) != 0)
			return r;
	}
	if (cfg->max_flows_per_client > cfg->max_flows) {
		zg_seterr(err, errlen, "limits.flows_per_client (%u) exceeds limits.flows (%u)",
			  cfg->max_flows_per_client, cfg->max_flows);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

static int id_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 63)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return 0;
	return 1;
}

int config_relay_id(const struct relay_config *cfg, char *out, size_t outlen, char *err,
		    size_t errlen)
{
	char host[256];

	if (cfg->relay_id[0] != '\0') {
		if (!id_ok(cfg->relay_id)) {
			zg_seterr(err, errlen,
				  "relay_id: \"%s\": use 1 to 63 letters, digits, '.', '_' or '-'",
				  cfg->relay_id);
			return ZG_ERR_CONFIG;
		}
		(void)snprintf(out, outlen, "%s", cfg->relay_id);
		return 0;
	}
	if (gethostname(host, sizeof(host)) != 0 || (host[sizeof(host) - 1] = '\0', !id_ok(host))) {
		zg_seterr(err, errlen,
			  "relay_id: not set and the host name is not usable as one; set relay_id");
		return ZG_ERR_CONFIG;
	}
	(void)snprintf(out, outlen, "%s", host);
	return 0;
}

static const char *type_hint(enum opt_type t)
{
	switch (t) {
	case OPT_U32:
		return "N";
	case OPT_DURATION:
		return "DURATION";
	case OPT_PREFIX:
		return "CIDR";
	case OPT_PREFIXES:
		return "CIDR,...";
	case OPT_LOGLEVEL:
		return "LEVEL";
	case OPT_LOGFORMAT:
		return "FORMAT";
	case OPT_STR:
		break;
	}
	return "VALUE";
}

size_t config_usage(char *buf, size_t buflen)
{
	size_t n = 0;

	if (buflen)
		buf[0] = '\0';
	for (size_t i = 0; i < N_OPTS; i++)
		n += opt_usage_entry(buf, buflen, n, opts[i].path, type_hint(opts[i].type),
				     opts[i].help, opts[i].def);
	return n;
}

static void fmt_prefix(const struct config_prefix *p, char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN];

	if (p->version == 0 ||
	    !inet_ntop(p->version == 4 ? AF_INET : AF_INET6, p->addr, a, sizeof(a))) {
		(void)snprintf(out, outlen, "(none)");
		return;
	}
	(void)snprintf(out, outlen, "%s/%u", a, p->len);
}

size_t config_summary(const struct relay_config *c, char *buf, size_t buflen)
{
	char p4[64], p6[64];
	int w;

	fmt_prefix(&c->pool4, p4, sizeof(p4));
	fmt_prefix(&c->pool6, p6, sizeof(p6));
	w = snprintf(buf, buflen,
		     "listen        %s (QUIC/UDP)\n"
		     "ops_listen    %s (HTTP)\n"
		     "admin         %s%s%s%s\n"
		     "tls           cert %s, key %s, client CA %s, CRL %s, identity %s\n"
		     "uri_template  %s\n"
		     "policy        %s\n"
		     "pool          IPv4 %s, IPv6 %s\n"
		     "state_file    %s\n"
		     "limits        %u sessions, %u flows, %u flows/client, %u half-open/client, %u UDP/client\n"
		     "timeouts      tcp_idle %ums, udp_idle %ums, dns_idle %ums, quic_idle %ums, keepalive %ums, drain_grace %ums\n"
		     "mtu           %u\n"
		     "log_level     %s, log_format %s\n",
		     c->listen, c->ops_listen,
		     c->admin_token_file[0] ? "token file " : "off (no admin.token_file)",
		     c->admin_token_file,
		     c->admin_token_file[0] ? (c->admin_listen[0] ? ", on " : ", on ops_listen") : "",
		     c->admin_token_file[0] ? c->admin_listen : "",
		     c->tls_cert, c->tls_key, c->tls_client_ca,
		     c->tls_crl[0] ? c->tls_crl : "(none)", c->tls_identity, c->uri_template, c->policy_file, p4, p6,
		     c->state_file[0] ? c->state_file : "(memory only)", c->max_sessions,
		     c->max_flows, c->max_flows_per_client, c->max_halfopen_per_client,
		     c->max_udp_per_client, c->tcp_idle_ms, c->udp_idle_ms, c->dns_idle_ms,
		     c->quic_idle_ms, c->keepalive_ms, c->drain_grace_ms, c->mtu, c->log_level, c->log_format);
	if (w < 0)
		return 0;
	{ /* issue 17.6, appended so the table above stays as it was */
		size_t off = (size_t)w;
		int a = snprintf(off < buflen ? buf + off : NULL, off < buflen ? buflen - off : 0,
				 "audit         %u flow_deny lines/s per client%s, buffer %u KiB\n",
				 c->audit_deny_per_s, c->audit_deny_per_s ? "" : " (0: all)",
				 c->audit_buffer_kib);
		if (a < 0)
			return off;
		off += (size_t)a;
		/* issue 19 */
		a = snprintf(off < buflen ? buf + off : NULL, off < buflen ? buflen - off : 0,
			     "dns service   %s, upstreams %s, deny %s, ttl %ums..%ums, %u learned routes/client, "
			     "cache %u\n",
			     c->dns_service, c->dns_upstreams[0] ? c->dns_upstreams : "(resolv.conf)",
			     c->dns_deny_answer, c->dns_ttl_floor_ms, c->dns_ttl_cap_ms,
			     c->dns_max_learned_routes, c->dns_cache_entries);
		if (a < 0)
			return off;
		off += (size_t)a;
		/* issue 20.2 */
		if (strcmp(c->ipam_backend, "api") == 0) {
			char id[64];
			if (config_relay_id(c, id, sizeof(id), NULL, 0) != 0)
				(void)snprintf(id, sizeof(id), "(invalid)");
			a = snprintf(off < buflen ? buf + off : NULL, off < buflen ? buflen - off : 0,
				     "ipam          api %s (relay_id %s, timeout %ums, refresh %ums; "
				     "ca %s, cert %s, key %s)\n",
				     c->ipam_api_url, id, c->ipam_api_timeout_ms, c->ipam_api_refresh_ms,
				     c->ipam_api_ca, c->ipam_api_cert, c->ipam_api_key);
		} else {
			a = snprintf(off < buflen ? buf + off : NULL, off < buflen ? buflen - off : 0,
				     "ipam          local (pool.ipv4)\n");
		}
		return a < 0 ? off : off + (size_t)a;
	}
}
