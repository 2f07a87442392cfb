#include "api/api_config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "hostport.h"
#include "opt.h"
#include "yamlcfg.h"
#include "zg_err.h"

#define F(f) offsetof(struct api_config, f), sizeof(((struct api_config *)0)->f)
#define STR(k, f, d, h, m)                                                        \
	{                                                                         \
		.key = k, .type = OPT_T_STR, F(f), .def = d, .help = h, .meta = m \
	}
#define NUM(k, t, f, lo, hi, d, h)                                                   \
	{                                                                            \
		.key = k, .type = t, F(f), .min = lo, .max = hi, .def = d, .help = h \
	}

/* The options, in --help order (and the order "unknown key" lists them). */
static const struct opt_spec opts[] = {
	STR("listen", listen, "0.0.0.0:8443", "HTTPS address to listen on", "HOST:PORT"),
	STR("cert", cert, "", "server certificate (PEM); required", "FILE"),
	STR("key", key, "", "server private key (PEM); required", "FILE"),
	STR("ca", ca, "",
	    "CA that relay (CN relay:ID) and admin (CN admin:NAME) client certificates must chain "
	    "to (PEM); required",
	    "FILE"),
	STR("crl", crl, "",
	    "the CA's certificate revocation list (PEM), read again on SIGHUP; a revoked client "
	    "certificate is refused, and every one while the CRL is past its nextUpdate; optional",
	    "FILE"),
	STR("database", database, "",
	    "PostgreSQL connection string (libpq: \"host=/run/postgresql dbname=zgate\" or "
	    "postgresql://...); required",
	    "CONNINFO"),
	STR("admin_token_file", admin_token_file, "",
	    "file holding the admin bearer token (one line); empty = admins by certificate only",
	    "FILE"),
	STR("pool", pool, "10.100.0.0/24",
	    "IPv4 address pool shared by all relays, /16 to /30; .1 is the relays' gateway",
	    "PREFIX"),
	NUM("lease_ttl", OPT_T_DUR, lease_ttl_ms, 60000, 4000000000u, "168h",
	    "a lease unused (not refreshed) this long may be given to another client"),
	NUM("sweep_interval", OPT_T_DUR, sweep_interval_ms, 1000, 86400000, "1m",
	    "how often expired leases whose address lies outside the pool (made smaller or "
	    "moved) are freed"),
	NUM("threads", OPT_T_U32, threads, 1, 64, "4",
	    "HTTP worker threads, each with its own database connection"),
	NUM("db_timeout", OPT_T_DUR, db_timeout_ms, 100, 600000, "5s",
	    "a request fails with 503 when the database does not answer within this"),
	NUM("max_leases_per_relay", OPT_T_U32, max_leases_per_relay, 0, 16777216, "0",
	    "leases (not expired) one relay may hold; an allocation of a new address over it "
	    "is refused with 429; 0 = no quota"),
	NUM("max_connections_per_address", OPT_T_U32, max_conns_per_address, 0, 4096, "256",
	    "open connections one source address (IPv6: one /64) may hold; more are closed at "
	    "once; 0 = no cap. Relays behind one NAT share it"),
	NUM("head_timeout", OPT_T_DUR, head_timeout_ms, 1000, 600000, "10s",
	    "a connection must finish its TLS handshake and each request's head within this "
	    "(after a keep-alive answer: within 60s more), else it is closed"),
	{ .key = "log_level",
	  .type = OPT_T_LEVEL,
	  F(log_level),
	  .def = "info",
	  .help = "error, warn, info or debug" },
	{ .key = "log_format",
	  .type = OPT_T_FORMAT,
	  F(log_format),
	  .def = "text",
	  .help = "text (one line per event) or json (one JSON object per line)" },
};

static const struct opt_table table = { .v = opts, .n = sizeof(opts) / sizeof(opts[0]) };

void api_config_defaults(struct api_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	opt_defaults(&table, cfg);
}

int api_config_load_buf(struct api_config *cfg, const char *name, const char *text, size_t len,
			char *err, size_t errlen)
{
	struct yamlcfg_opts c = { .t = &table, .cfg = cfg };

	return yamlcfg_load(name, text, len, yamlcfg_opts_mapping, &c, err, errlen);
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

int api_config_parse(struct api_config *cfg, int argc, char *const *argv, char *const *envp,
		     enum api_action *paction, char *err, size_t errlen)
{
	struct yamlcfg_args a = { .o = { .t = &table, .cfg = cfg }, .first = 1 };
	int r;

	api_config_defaults(cfg);
	if (argc > 1 && strcmp(argv[1], "migrate") == 0)
		a.first = 2;
	r = yamlcfg_args(&a, argc, argv, envp, err, errlen);
	*paction = (enum api_action)a.action;
	if (a.first == 2 && (a.action == OPT_ACT_RUN || a.action == OPT_ACT_CHECK_CONFIG))
		*paction = API_MIGRATE; /* migrate --check-config: still the migration */
	if (r != 0 || a.action == OPT_ACT_HELP || a.action == OPT_ACT_VERSION)
		return r;
	return api_config_validate(cfg, err, errlen);
}

size_t api_config_usage(char *buf, size_t buflen)
{
	return opt_usage(&table, buf, buflen);
}
