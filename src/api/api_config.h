/*
 * api_config.h — zgate-api configuration: one flat YAML file, ZGATE_*
 * environment variables and command-line flags, in that order of
 * increasing precedence, applied by the option-table engine the relay and
 * the agent use (src/common/opt.h, yamlcfg.h): the YAML key "lease_ttl"
 * is the flag "--lease-ttl" and the variable "ZGATE_LEASE_TTL"; every
 * error names its source.
 */
#ifndef ZG_API_API_CONFIG_H
#define ZG_API_API_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "opt.h"

#define API_CONFIG_PATH_MAX 1024

struct api_config {
	char listen[256];                           /* HOST:PORT (TCP, HTTPS) */
	char cert[API_CONFIG_PATH_MAX];             /* server certificate (PEM), required */
	char key[API_CONFIG_PATH_MAX];              /* its key, required */
	char ca[API_CONFIG_PATH_MAX];               /* CA of relay/admin client certs, required */
	char crl[API_CONFIG_PATH_MAX];              /* the CA's CRL (PEM); "" = none */
	char database[2048];                        /* libpq connection string, required */
	char admin_token_file[API_CONFIG_PATH_MAX]; /* "" = admins by certificate only */
	char pool[64];                              /* IPv4 prefix, /16 to /30 */
	uint32_t lease_ttl_ms;                      /* unused this long: reclaimable */
	uint32_t sweep_interval_ms;                 /* expired leases outside the pool freed */
	uint32_t threads;                           /* HTTP worker threads = DB connections */
	uint32_t db_timeout_ms;                     /* a request waits this long for a DB connection */
	uint32_t max_leases_per_relay;              /* active leases one relay may hold; 0 = any */
	uint32_t max_conns_per_address;             /* open connections per source; 0 = no cap */
	uint32_t head_timeout_ms;                   /* TLS handshake + request head deadline */
	char log_level[16];
	char log_format[8];
	/* Derived by api_config_validate(), host order. */
	uint32_t pool_net, pool_first, pool_last; /* clients get first..last */
	uint8_t pool_len;
};

enum api_action {
	API_RUN = OPT_ACT_RUN,
	API_HELP = OPT_ACT_HELP,
	API_VERSION = OPT_ACT_VERSION,
	API_CHECK_CONFIG = OPT_ACT_CHECK_CONFIG,
	API_MIGRATE
};

/* Fills *cfg with the built-in defaults. */
void api_config_defaults(struct api_config *cfg);

/* Applies YAML text (a flat mapping) over *cfg; name is used in messages.
 * Returns 0 or ZG_ERR_CONFIG / ZG_ERR_NOMEM with err holding
 * "name:line:column: key: what was wrong". */
int api_config_load_buf(struct api_config *cfg, const char *name, const char *text, size_t len,
			char *err, size_t errlen);

/* Checks what no single source can (required keys, listen HOST:PORT, the
 * pool) and derives pool_*. Returns 0 or ZG_ERR_CONFIG with err set. */
int api_config_validate(struct api_config *cfg, char *err, size_t errlen);

/* The whole command line: "zgate-api [migrate] [options]". Defaults, then
 * --config FILE (or ZGATE_CONFIG), the environment, the flags, then
 * api_config_validate(). --help/-h/--version return at once with
 * *paction set; the word "migrate" first sets API_MIGRATE. Returns 0 or
 * ZG_ERR_CONFIG / ZG_ERR_NOMEM with err naming the source. */
int api_config_parse(struct api_config *cfg, int argc, char *const *argv, char *const *envp,
		     enum api_action *paction, char *err, size_t errlen);

/* Writes the option reference to buf (NUL-terminated, cut to buflen).
 * Returns the length needed. */
size_t api_config_usage(char *buf, size_t buflen);

#endif /* ZG_API_API_CONFIG_H */
