#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "cgroup.h"
#include "log.h"
#include "masque/uri.h"
#include "opt.h"
#include "relay/dnssvc.h"
#include "yamlcfg.h"
#include "zg_err.h"

static int set_pool(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		    char *err, size_t errlen);
static int set_prefixes(void *cfg, const struct opt_spec *o, const char *text,
			const char *where, char *err, size_t errlen);

#define FIELD(f) offsetof(struct relay_config, f), sizeof(((struct relay_config *)0)->f)
#define STR(p, f, d, h)                                                    \
	{                                                                  \
		.key = p, .type = OPT_T_STR, FIELD(f), .def = d, .help = h \
	}
/* A string whose value --help names m (FILE, ADDR:PORT, on|off), as
 * zgate-relay(8) does. */
#define STRM(p, f, d, h, m)                                                           \
	{                                                                             \
		.key = p, .type = OPT_T_STR, FIELD(f), .def = d, .help = h, .meta = m \
	}
/* A list: a YAML sequence of strings, or one string of comma-separated
 * items (environment, flags); stored joined with ", ". */
#define LIST(p, f, d, h, m)                                                                      \
	{                                                                                        \
		.key = p, .type = OPT_T_STR, FIELD(f), .def = d, .help = h, .meta = m, .list = 1 \
	}
#define U32(p, f, lo, hi, d, h)                                                                  \
	{                                                                                        \
		.key = p, .type = OPT_T_U32, FIELD(f), .min = lo, .max = hi, .def = d, .help = h \
	}
/* A number in a unit --help names (MIB, KIB) instead of N. */
#define U32M(p, f, lo, hi, d, h, m)                                                               \
	{                                                                                         \
		.key = p, .type = OPT_T_U32, FIELD(f), .min = lo, .max = hi, .def = d, .help = h, \
		.meta = m                                                                         \
	}
#define DUR(p, f, lo, hi, d, h)                                                                      \
	{                                                                                            \
		.key = p, .type = OPT_T_DUR_MIN, FIELD(f), .min = lo, .max = hi, .def = d, .help = h \
	}
/* A CIDR prefix of IP version v (config_parse_prefix()). */
#define PFX(p, f, v, d, h)                                                                     \
	{                                                                                      \
		.key = p, .type = OPT_T_CUSTOM, FIELD(f), .def = d, .help = h, .meta = "CIDR", \
		.set = set_pool, .arg = v                                                      \
	}

static const struct opt_spec opts[] = {
	STRM("listen", listen, "0.0.0.0:4433", "UDP address:port for QUIC", "ADDR:PORT"),
	STRM("ops_listen", ops_listen, "127.0.0.1:8080", "TCP address:port for /health, /ready, /metrics (set the pod address to reach it from outside)", "ADDR:PORT"),
	STRM("tls.cert", tls_cert, "", "server certificate chain (PEM); required", "FILE"),
	STRM("tls.key", tls_key, "", "server private key (PEM); required", "FILE"),
	STRM("tls.client_ca", tls_client_ca, "", "CA bundle that signs client certificates (PEM); required", "FILE"),
	STRM("tls.crl", tls_crl, "", "certificate revocation list (PEM); optional", "FILE"),
	STRM("tls.identity", tls_identity, "cn",
	     "client identity: the certificate's one subject CN (cn) or one SAN URI (san_uri)", "cn|san_uri"),
	STRM("uri_template", uri_template,
	     "https://localhost:4433/.well-known/masque/ip/{target}/{ipproto}/",
	     "CONNECT-IP URI template (RFC 9484)", "URI"),
	STRM("policy", policy_file, "", "policy file (YAML); required", "FILE"),
	STRM("state_file", state_file, "", "IPAM state file; empty = in memory only", "FILE"),
	STRM("relay_id", relay_id, "",
	     "this relay's id, recorded on the leases of zgate-api (letters, digits, . _ -); empty = the host name", "ID"),
	STRM("ipam.backend", ipam_backend, "local",
	     "where addresses come from: local (this relay's pool.ipv4) or api (zgate-api, shared by several relays)", "local|api"),
	STRM("ipam.api.url", ipam_api_url, "", "zgate-api's address, https://host[:port]; required with ipam.backend api", "https://HOST[:PORT]"),
	STRM("ipam.api.ca", ipam_api_ca, "", "CA bundle that signs zgate-api's certificate (PEM)", "FILE"),
	STRM("ipam.api.cert", ipam_api_cert, "",
	     "this relay's client certificate for zgate-api (PEM; CN relay:<relay_id>)", "FILE"),
	STRM("ipam.api.key", ipam_api_key, "", "its private key (PEM)", "FILE"),
	DUR("ipam.api.timeout", ipam_api_timeout_ms, 100, 60000, "2s",
	    "an allocation (retries included) waits at most this long; then a new client gets 503"),
	DUR("ipam.api.refresh", ipam_api_refresh_ms, 1000, 86400000, "1h",
	    "open tunnels' leases are marked used (last_seen) this often"),
	STRM("policy_api.url", policy_api_url, "",
	     "fetch the active policy from zgate-api, https://host[:port]; the policy file is then where the relay keeps the last one fetched; empty = off", "https://HOST[:PORT]"),
	STRM("policy_api.ca", policy_api_ca, "", "CA bundle that signs zgate-api's certificate (PEM); empty = ipam.api.ca", "FILE"),
	STRM("policy_api.cert", policy_api_cert, "",
	     "this relay's client certificate for zgate-api (PEM; CN relay:<relay_id>); empty = ipam.api.cert", "FILE"),
	STRM("policy_api.key", policy_api_key, "", "its private key (PEM); empty = ipam.api.key", "FILE"),
	DUR("policy_api.poll", policy_api_poll_ms, 1000, 86400000, "10s",
	    "the active policy is asked for this often (If-None-Match: an unchanged one costs a 304)"),
	DUR("policy_api.timeout", policy_api_timeout_ms, 100, 60000, "2s",
	    "one fetch (retries included) waits at most this long"),
	PFX("pool.ipv4", pool4, 4, "10.100.0.0/24", "IPv4 pool; .1 is the gateway"),
	PFX("pool.ipv6", pool6, 6, "", "IPv6 pool; optional"),
	{ .key = "forbidden", .type = OPT_T_CUSTOM, FIELD(forbidden), .def = "", .help = "extra never-reachable destinations, e.g. [10.96.0.0/12] (Kubernetes Services); "
											 "at most 16",
	  .meta = "CIDR,...",
	  .set = set_prefixes,
	  .list = 1 },
	U32("workers", workers, 0, CONFIG_WORKERS_MAX, "0",
	    "worker processes, each with its own event loop, stack and UDP socket on the same port; "
	    "0 = one per CPU the relay may use; the limits are shared out among them"),
	U32("limits.sessions", max_sessions, 1, 1000000, "10000", "tunnels at once"),
	U32("limits.handshakes_per_source", max_handshakes_per_source, 1, 1000000, "32",
	    "TLS handshakes in progress from one IPv4 address or IPv6 /64"),
	U32("limits.flows", max_flows, 1, 10000000, "100000", "flows at once, all clients"),
	U32("limits.flows_per_client", max_flows_per_client, 1, 1000000, "1000", "flows at once per client"),
	U32("limits.halfopen_per_client", max_halfopen_per_client, 1, 1000000, "512", "TCP connects in progress per client; more SYNs wait (dropped, retried)"),
	U32("limits.udp_per_client", max_udp_per_client, 1, 1000000, "500", "UDP flows per client"),
	U32M("limits.memory", memory_mib, 0, 4194304, "0", "MiB the TCP stack may hold; 0 = half the cgroup memory limit, else 1024", "MIB"),
	U32M("limits.memory_per_client", memory_per_client_mib, 0, 1048576, "32", "MiB of TCP windows per client; 0 = no budget", "MIB"),
	U32("limits.fd_reserve", fd_reserve, 0, 1000000, "0", "descriptors flows never take (sessions, ops); 0 = 1/8 of RLIMIT_NOFILE, 64..1024"),
	U32("limits.fd_per_client_pct", fd_client_pct, 1, 100, "50", "percent of the flows' descriptors one client may hold"),
	U32("limits.time_wait", max_time_wait, 16, 1000000, "65536",
	    "TCP connections the relay closed first kept in TIME-WAIT (20 s), all workers together; "
	    "past it the oldest go early (zgate_tcp_time_wait_total{event=\"evicted\"}); about 300 bytes each"),
	U32("mtu", mtu, 1280, 65535, "1280", "inner (tunnel) MTU"),
	DUR("timeouts.tcp_idle", tcp_idle_ms, 1000, UINT32_MAX, "2h", "idle TCP flow closed after"),
	DUR("timeouts.tcp_close", tcp_close_ms, 1000, UINT32_MAX, "60s", "TCP flow closed both ways, bytes undelivered: reset after this long without progress"),
	DUR("timeouts.udp_idle", udp_idle_ms, 1000, UINT32_MAX, "60s", "idle UDP flow closed after"),
	DUR("timeouts.dns_idle", dns_idle_ms, 1000, UINT32_MAX, "10s", "idle UDP flow to port 53 closed after"),
	DUR("timeouts.quic_idle", quic_idle_ms, 1000, UINT32_MAX, "60s", "idle QUIC connection closed after"),
	DUR("timeouts.request", request_ms, 1000, UINT32_MAX, "30s", "QUIC connection without an open CONNECT-IP tunnel this long after its first packet closed"),
	DUR("timeouts.keepalive", keepalive_ms, 0, UINT32_MAX, "20s", "PING interval, shorter than timeouts.quic_idle; 0 = off"),
	DUR("timeouts.drain_grace", drain_grace_ms, 0, UINT32_MAX, "30s", "on SIGTERM, wait this long for tunnels to end"),
	LIST("dns.resolvable", dns_resolvable, "", "DNS-name targets that may be resolved: names, or .suffix for every name under it; empty = any name", "NAMES"),
	U32("dns.resolutions_per_minute", dns_per_min, 1, 100000, "60", "DNS-name targets one client may have resolved per minute"),
	STRM("dns.service", dns_service, "on", "the DNS service on the pool's gateway addresses (UDP and TCP port 53, inside the tunnel): on or off", "on|off"),
	LIST("dns.upstreams", dns_upstreams, "", "resolvers the DNS service asks (address or [address]:port); empty = the nameservers of /etc/resolv.conf", "ADDR,..."),
	STRM("dns.deny_answer", dns_deny_answer, "nxdomain", "answer to a name no allow rule of the client names: nxdomain or refused", "nxdomain|refused"),
	DUR("dns.ttl_floor", dns_ttl_floor_ms, 1000, 86400000, "30s", "an address learned from an answer stays bound to its name at least this long"),
	DUR("dns.ttl_cap", dns_ttl_cap_ms, 1000, 604800000, "1h", "and at most this long, whatever the record's TTL"),
	U32("dns.max_learned_routes", dns_max_learned_routes, 0, 100000, "256", "addresses learned from answers (bound and routed) per client; more are not bound (zgate_dns_learned_cap_hits_total)"),
	U32("dns.cache_entries", dns_cache_entries, 0, 1000000, "10000", "answers the DNS service keeps (by name and type, for their TTL); 0 = no cache"),
	STRM("dns.enabled", dns_enabled, "auto",
	     "tell clients their DNS server and domains (DNS_ASSIGN capsule): auto (only to clients that send DNS_ASSIGN themselves), true (to every client) or false", "auto|true|false"),
	LIST("dns.domains", dns_domains, "",
	     "domains the agent sends to the relay's DNS server (split DNS); \".\" = every name; at most 32", "NAMES"),
	LIST("dns.nameservers", dns_nameservers, "",
	     "the DNS server addresses given to clients; empty = the pool gateway (.1), where the relay answers DNS", "ADDRESSES"),
	U32("ops.max_connections", ops_max_conns, 1, 10000, "64", "ops connections at once; more get 503"),
	DUR("ops.timeout", ops_timeout_ms, 100, 600000, "5s", "an ops client must send its request (and take the answer) within"),
	STRM("admin.token_file", admin_token_file, "",
	     "file with the bearer token for /admin/sessions (at least 32 bytes, not readable by others); empty = no admin endpoint", "FILE"),
	STRM("admin.listen", admin_listen, "",
	     "TCP address:port for the admin endpoint alone; empty = on ops_listen", "HOST:PORT"),
	STRM("debug.payload_dump", payload_dump, "",
	     "DEBUG ONLY: append every IP packet decrypted from or sent into a tunnel to this file "
	     "(4-byte big-endian length, raw bytes); empty = off",
	     "FILE"),
	U32("audit.deny_per_second", audit_deny_per_s, 0, 1000000, "10",
	    "flow_deny audit lines per client per second (20 times this for all clients together); "
	    "the rest are counted in flow_deny_suppressed; 0 = every deny is written"),
	U32M("audit.buffer_kib", audit_buffer_kib, 16, 1048576, "1024",
	     "KiB of audit lines waiting for stdout; when it is full, lines are dropped and counted "
	     "(audit_dropped, zgate_audit_lines_dropped_total)",
	     "KIB"),
	{ .key = "log_level", .type = OPT_T_LEVEL, FIELD(log_level), .def = "info", .help = "error, warn, info or debug" },
	{ .key = "log_format", .type = OPT_T_FORMAT, FIELD(log_format), .def = "text", .help = "text (one line per event) or json (one JSON object per line: ts, level, msg)" },
};

OPT_TABLE_FITS(opts);
static const struct opt_table table = OPT_TABLE_FROM(opts, struct relay_config, from);

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
static int set_prefixes(void *pcfg, const struct opt_spec *o, const char *text,
			const char *where, char *err, size_t errlen)
{
	struct relay_config *cfg = pcfg;

	(void)o;
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

/* pool.ipv4, pool.ipv6: one prefix of version o->arg; "" unsets an optional
 * pool (one without a default). */
static int set_pool(void *cfg, const struct opt_spec *o, const char *text, const char *where,
		    char *err, size_t errlen)
{
	char *base = (char *)cfg + o->off;
	struct config_prefix pfx;

	if (text[0] == '\0' && o->def[0] == '\0') {
		memset(base, 0, sizeof(pfx));
		return 0;
	}
	if (config_parse_prefix(text, &pfx) != 0 || pfx.version != o->arg) {
		zg_seterr(err, errlen, "%s: \"%s\" is not an IPv%u prefix with host bits zero (e.g. %s)",
			  where, text, o->arg, o->arg == 4 ? "10.100.0.0/24" : "fd00:100::/64");
		return ZG_ERR_CONFIG;
	}
	memcpy(base, &pfx, sizeof(pfx));
	return 0;
}

void config_defaults(struct relay_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	opt_defaults(&table, cfg);
}

/* The items of a list option (its YAML sequence): joined with ", " and
 * set as one value, so every source takes the same text. An item may not
 * itself contain a comma. */
struct list_join {
	const char *name, *key;
	char joined[CONFIG_PATH_MAX];
	size_t n;
};

static int join_item(void *ctx, const yaml_event_t *ev, char *err, size_t errlen)
{
	struct list_join *j = ctx;

	if (ev->type != YAML_SCALAR_EVENT || strchr((const char *)ev->data.scalar.value, ',') ||
	    j->n + ev->data.scalar.length + 3 > sizeof(j->joined)) {
		zg_seterr(err, errlen,
			  "%s:%zu:%zu: %s: expected a list of at most %zu bytes of items without "
			  "commas, found %s",
			  j->name, ev->start_mark.line + 1, ev->start_mark.column + 1, j->key,
			  sizeof(j->joined) - 1,
			  ev->type == YAML_SCALAR_EVENT ? "a longer list or a comma" : yamlcfg_kind(ev));
		return ZG_ERR_CONFIG;
	}
	j->n += (size_t)snprintf(j->joined + j->n, sizeof(j->joined) - j->n, "%s%s",
				 j->n ? ", " : "", (const char *)ev->data.scalar.value);
	return 0;
}

static int load_list(void *cfg, const struct opt_spec *o, yaml_parser_t *p, const char *name,
		     const char *where, char *err, size_t errlen)
{
	struct list_join j = { .name = name, .key = o->key };
	int r = yamlcfg_list(p, name, NULL, join_item, &j, NULL, err, errlen);

	return r != 0 ? r : opt_set(cfg, o, j.joined, where, err, errlen);
}

int config_load_buf(struct relay_config *cfg, const char *name,
		    const char *text, size_t len, char *err, size_t errlen)
{
	struct yamlcfg_opts c = { .t = &table, .cfg = cfg, .list = load_list };

	return yamlcfg_load(name, text, len, yamlcfg_opts_mapping, &c, err, errlen);
}

int config_load_file(struct relay_config *cfg, const char *path, char *err, size_t errlen)
{
	struct yamlcfg_opts c = { .t = &table, .cfg = cfg, .list = load_list };

	return yamlcfg_load_file(path, yamlcfg_opts_mapping, &c, err, errlen);
}

int config_apply_env(struct relay_config *cfg, char *const *envp, char *err,
		     size_t errlen)
{
	return opt_apply_env(&table, cfg, envp, err, errlen);
}

int config_apply_flag(struct relay_config *cfg, const char *flag,
		      const char *value, char *err, size_t errlen)
{
	return opt_apply_flag(&table, cfg, flag, value, err, errlen);
}

int config_parse_args(struct relay_config *cfg, int argc, char *const *argv,
		      char *const *envp, enum config_action *paction, char *path,
		      size_t pathlen, char *err, size_t errlen)
{
	struct yamlcfg_args a = { .o = { .t = &table, .cfg = cfg, .list = load_list }, .first = 1 };
	int r;

	if (pathlen > 0)
		path[0] = '\0';
	config_defaults(cfg);
	r = yamlcfg_args(&a, argc, argv, envp, err, errlen);
	if (a.file != NULL)
		(void)snprintf(path, pathlen, "%s", a.file);
	*paction = (enum config_action)a.action;
	if (r != 0 || a.action == OPT_ACT_HELP || a.action == OPT_ACT_VERSION)
		return r;
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
	/* checks across options name where each value was set (opt_where()) */
	char why[256], a[OPT_FROM_FILE_MAX + 64], b[OPT_FROM_FILE_MAX + 32];
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
		(void)opt_where(&table, cfg, "dns.ttl_floor", 1, a, sizeof(a));
		(void)opt_where(&table, cfg, "dns.ttl_cap", 0, b, sizeof(b));
		zg_seterr(err, errlen, "%s: %u ms is above dns.ttl_cap (%u ms, %s)", a,
			  cfg->dns_ttl_floor_ms, cfg->dns_ttl_cap_ms, b);
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
		(void)opt_where(&table, cfg, "admin.listen", 1, a, sizeof(a));
		zg_seterr(err, errlen, "%s is set but admin.token_file is not: the admin "
				       "endpoint needs a token",
			  a);
		return ZG_ERR_CONFIG;
	}
	if (cfg->admin_listen[0] != '\0' && strcmp(cfg->admin_listen, cfg->ops_listen) == 0) {
		(void)opt_where(&table, cfg, "admin.listen", 1, a, sizeof(a));
		(void)opt_where(&table, cfg, "ops_listen", 0, b, sizeof(b));
		zg_seterr(err, errlen, "%s: \"%s\" is ops_listen already (%s; leave "
				       "admin.listen empty to serve admin there)",
			  a, cfg->admin_listen, b);
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
	if (cfg->policy_api_url[0] != '\0') {
		const char *ca, *cert, *key;
		char id[64];

		if (strncmp(cfg->policy_api_url, "https://", 8) != 0 || cfg->policy_api_url[8] == '\0') {
			zg_seterr(err, errlen, "policy_api.url: \"%s\" is not https://host[:port]",
				  cfg->policy_api_url);
			return ZG_ERR_CONFIG;
		}
		config_policy_api_files(cfg, &ca, &cert, &key);
		if (ca[0] == '\0' || cert[0] == '\0' || key[0] == '\0') {
			zg_seterr(err, errlen, "policy_api.%s: required with policy_api.url (or set ipam.api.%s)",
				  ca[0] == '\0' ? "ca" : cert[0] == '\0' ? "cert"
									 : "key",
				  ca[0] == '\0' ? "ca" : cert[0] == '\0' ? "cert"
									 : "key");
			return ZG_ERR_CONFIG;
		}
		if ((r = config_relay_id(cfg, id, sizeof(id), err, errlen)) != 0)
			return r;
	}
	/* as the agent and the connector check theirs: a PING only as often
	 * as the idle timeout lets an idle tunnel die between two */
	if (cfg->keepalive_ms != 0 && cfg->keepalive_ms >= cfg->quic_idle_ms) {
		(void)opt_where(&table, cfg, "timeouts.keepalive", 1, a, sizeof(a));
		(void)opt_where(&table, cfg, "timeouts.quic_idle", 0, b, sizeof(b));
		zg_seterr(err, errlen,
			  "%s: %ums must be shorter than timeouts.quic_idle (%ums, %s), or idle "
			  "tunnels die between PINGs (0 turns the PINGs off)",
			  a, cfg->keepalive_ms, cfg->quic_idle_ms, b);
		return ZG_ERR_CONFIG;
	}
	if (cfg->max_flows_per_client > cfg->max_flows) {
		(void)opt_where(&table, cfg, "limits.flows_per_client", 1, a, sizeof(a));
		(void)opt_where(&table, cfg, "limits.flows", 0, b, sizeof(b));
		zg_seterr(err, errlen, "%s: %u exceeds limits.flows (%u, %s)", a,
			  cfg->max_flows_per_client, cfg->max_flows, b);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

void config_policy_api_files(const struct relay_config *cfg, const char **pca,
			     const char **pcert, const char **pkey)
{
	*pca = cfg->policy_api_ca[0] ? cfg->policy_api_ca : cfg->ipam_api_ca;
	*pcert = cfg->policy_api_cert[0] ? cfg->policy_api_cert : cfg->ipam_api_cert;
	*pkey = cfg->policy_api_key[0] ? cfg->policy_api_key : cfg->ipam_api_key;
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

size_t config_usage(char *buf, size_t buflen)
{
	return opt_usage(&table, buf, buflen);
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

/* ceil(quota / period) of one cpu.max file ("max 100000" or "150000
 * 100000"), 0 when it sets no limit or does not read. */
static unsigned cpu_max_file(const char *path)
{
	char buf[128];
	unsigned long long q, p;
	FILE *fp = fopen(path, "re");
	int ok;

	if (fp == NULL)
		return 0;
	ok = fgets(buf, sizeof(buf), fp) != NULL;
	fclose(fp);
	if (!ok || sscanf(buf, "%llu %llu", &q, &p) != 2 || p == 0 || q == 0)
		return 0;
	q = (q + p - 1) / p;
	return q > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (unsigned)q;
}

static void cpu_max(const char *path, void *ctx)
{
	unsigned *v = ctx, c = cpu_max_file(path);

	if (c != 0 && (*v == 0 || c < *v))
		*v = c;
}

unsigned config_cgroup_cpus(const char *sysfs, const char *self_cgroup)
{
	unsigned v = 0;

	/* cgroup v2: the smallest quota on the way up (cgroup.h) */
	cgroup_each_file(sysfs, self_cgroup, "cpu.max", cpu_max, &v);
	return v;
}

unsigned config_workers(const struct relay_config *c, unsigned ncpu, unsigned cgroup_cpus)
{
	unsigned n = c->workers;

	if (n == 0) {
		n = ncpu != 0 ? ncpu : 1;
		if (cgroup_cpus != 0 && cgroup_cpus < n)
			n = cgroup_cpus;
	}
	return n > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : n;
}

size_t config_summary(const struct relay_config *c, char *buf, size_t buflen)
{
	char p4[64], p6[64];
	char wk[32];
	int w;

	fmt_prefix(&c->pool4, p4, sizeof(p4));
	fmt_prefix(&c->pool6, p6, sizeof(p6));
	if (c->workers == 0)
		(void)snprintf(wk, sizeof(wk), "auto (one per CPU)");
	else
		(void)snprintf(wk, sizeof(wk), "%u", c->workers);
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
		     "timeouts      tcp_idle %ums, tcp_close %ums, udp_idle %ums, dns_idle %ums, quic_idle %ums, request %ums, keepalive %ums, drain_grace %ums\n"
		     "mtu           %u, workers %s\n"
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
		     c->max_udp_per_client, c->tcp_idle_ms, c->tcp_close_ms, c->udp_idle_ms, c->dns_idle_ms,
		     c->quic_idle_ms, c->request_ms, c->keepalive_ms, c->drain_grace_ms, c->mtu, wk, c->log_level, c->log_format);
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
		/* the limits the table above predates */
		{
			char mem[48], fdr[32];

			if (c->memory_mib == 0)
				(void)snprintf(mem, sizeof(mem), "auto (half the cgroup limit)");
			else
				(void)snprintf(mem, sizeof(mem), "%u MiB", c->memory_mib);
			if (c->fd_reserve == 0)
				(void)snprintf(fdr, sizeof(fdr), "auto");
			else
				(void)snprintf(fdr, sizeof(fdr), "%u", c->fd_reserve);
			a = snprintf(off < buflen ? buf + off : NULL, off < buflen ? buflen - off : 0,
				     "resources     memory %s, %u MiB/client, fd_reserve %s, %u%% fds/client, "
				     "%u handshakes/source, time_wait %u\n",
				     mem, c->memory_per_client_mib, fdr, c->fd_client_pct,
				     c->max_handshakes_per_source, c->max_time_wait);
			if (a < 0)
				return off;
			off += (size_t)a;
		}
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
		if (a < 0)
			return off;
		off += (size_t)a;
		if (c->policy_api_url[0] != '\0') {
			const char *ca, *cert, *key;

			config_policy_api_files(c, &ca, &cert, &key);
			a = snprintf(off < buflen ? buf + off : NULL, off < buflen ? buflen - off : 0,
				     "policy_api    %s every %ums (timeout %ums; ca %s, cert %s, key %s), "
				     "kept in %s\n",
				     c->policy_api_url, c->policy_api_poll_ms, c->policy_api_timeout_ms, ca,
				     cert, key, c->policy_file);
		} else {
			a = snprintf(off < buflen ? buf + off : NULL, off < buflen ? buflen - off : 0,
				     "policy_api    off (the policy file)\n");
		}
		return a < 0 ? off : off + (size_t)a;
	}
}
