/*
 * config.h — zgate-relay configuration: one YAML file, ZGATE_* environment
 * variables and command-line flags, in that order of increasing precedence
 * (flag > environment > file > built-in default).
 *
 * Every option is described once, in a table (config.c): its YAML path
 * (e.g. "timeouts.udp_idle"), its flag ("--timeouts-udp-idle") and its
 * environment variable ("ZGATE_TIMEOUTS_UDP_IDLE") are derived from that
 * path, so the three sources can never disagree. Every error names where
 * the bad value came from — "relay.yaml:12:14: timeouts.udp_idle", the
 * variable or the flag — and says what was expected.
 */
#ifndef ZG_RELAY_CONFIG_H
#define ZG_RELAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "opt.h"

#define CONFIG_PATH_MAX 1024
#define CONFIG_FORBIDDEN_MAX 16 /* prefixes in "forbidden" */
#define CONFIG_WORKERS_MAX 64   /* workers: (issue 21) */

/* An address prefix as configured (pool). version 0 = not set. */
struct config_prefix {
	uint8_t version;
	uint8_t addr[16];
	uint8_t len;
};

struct relay_config {
	char listen[CONFIG_PATH_MAX];         /* host:port for QUIC (UDP) */
	char ops_listen[CONFIG_PATH_MAX];     /* host:port for HTTP ops */
	char dns_resolvable[CONFIG_PATH_MAX]; /* "a.example, .corp.example"; "" = any */
	uint32_t dns_per_min;                 /* resolutions per client per minute */
	/* the DNS service on the gateway addresses (issue 19, names.h) */
	char dns_service[8];                       /* "on" or "off" */
	char dns_upstreams[CONFIG_PATH_MAX];       /* "a[:port], ..."; "" = resolv.conf */
	char dns_deny_answer[16];                  /* "nxdomain" or "refused" */
	uint32_t dns_ttl_floor_ms, dns_ttl_cap_ms; /* bindings last at least/most */
	uint32_t dns_max_learned_routes;           /* per client */
	uint32_t dns_cache_entries;
	char dns_enabled[8];                    /* DNS_ASSIGN: auto, true, false */
	char dns_domains[8704];                 /* sent to clients (dnsassign.h): 32 names */
	char dns_nameservers[CONFIG_PATH_MAX];  /* "" = the pool gateways */
	uint32_t ops_max_conns;                 /* ops connections at once */
	uint32_t ops_timeout_ms;                /* ops request/answer deadline */
	char admin_token_file[CONFIG_PATH_MAX]; /* "" = no admin endpoint */
	char admin_listen[CONFIG_PATH_MAX];     /* "" = on ops_listen */
	char payload_dump[CONFIG_PATH_MAX];     /* debug.payload_dump; "" = off */
	char tls_cert[CONFIG_PATH_MAX];
	char tls_key[CONFIG_PATH_MAX];
	char tls_client_ca[CONFIG_PATH_MAX];
	char tls_crl[CONFIG_PATH_MAX]; /* optional: "" = none */
	char tls_identity[16];         /* "cn" or "san_uri" (masque/tls.h) */
	char uri_template[CONFIG_PATH_MAX];
	char policy_file[CONFIG_PATH_MAX];
	char state_file[CONFIG_PATH_MAX]; /* optional: "" = memory only */
	/* several relays sharing one pool through zgate-api (issue 20.2) */
	char relay_id[64];    /* "" = the host name (config_relay_id) */
	char ipam_backend[8]; /* "local" or "api" */
	char ipam_api_url[CONFIG_PATH_MAX];
	char ipam_api_ca[CONFIG_PATH_MAX];
	char ipam_api_cert[CONFIG_PATH_MAX];
	char ipam_api_key[CONFIG_PATH_MAX];
	uint32_t ipam_api_timeout_ms; /* per allocation, retries included */
	uint32_t ipam_api_refresh_ms; /* open tunnels' leases marked used every */
	/* the policy fetched from zgate-api (policy_api.*): url "" = off, the
	 * policy file is then the relay's cache of the last one fetched;
	 * ca/cert/key "" = ipam.api's (config_policy_api_files) */
	char policy_api_url[CONFIG_PATH_MAX];
	char policy_api_ca[CONFIG_PATH_MAX];
	char policy_api_cert[CONFIG_PATH_MAX];
	char policy_api_key[CONFIG_PATH_MAX];
	uint32_t policy_api_poll_ms;    /* a fetch every */
	uint32_t policy_api_timeout_ms; /* one fetch, retries included */
	struct config_prefix pool4;
	struct config_prefix pool6; /* optional */
	/* extra destinations no tunnel may reach (Kubernetes Service and
	 * node ranges that lead back to the relay), besides the built-in set */
	struct config_prefix forbidden[CONFIG_FORBIDDEN_MAX];
	uint32_t n_forbidden;
	uint32_t workers; /* 0: one per usable CPU (config_workers()) */
	uint32_t max_sessions;
	uint32_t max_handshakes_per_source; /* QUIC handshakes in progress per address */
	uint32_t max_flows;
	uint32_t max_flows_per_client;
	uint32_t max_halfopen_per_client;
	uint32_t max_udp_per_client;
	uint32_t memory_mib;            /* 0 = from the cgroup limit */
	uint32_t memory_per_client_mib; /* 0 = no per-client budget */
	uint32_t fd_reserve;            /* 0 = automatic */
	uint32_t fd_client_pct;
	uint32_t max_time_wait; /* TCP TIME-WAIT pcbs, all workers together */
	uint32_t tcp_idle_ms;
	uint32_t tcp_close_ms;
	uint32_t udp_idle_ms;
	uint32_t dns_idle_ms;
	uint32_t quic_idle_ms;
	uint32_t request_ms; /* timeouts.request: no tunnel this long, closed */
	uint32_t keepalive_ms;
	uint32_t drain_grace_ms;
	uint16_t mtu;
	char log_level[16];
	char log_format[8];        /* text or json */
	uint32_t audit_deny_per_s; /* flow_deny lines per client per second; 0 = all */
	uint32_t audit_buffer_kib; /* audit lines waiting for stdout, at most */
	struct opt_from from;      /* where each option was set, for config_validate() */
};

/* Fills *cfg with the built-in defaults (see config_usage()). */
void config_defaults(struct relay_config *cfg);

/* Applies the YAML file at path over *cfg. Unknown keys, wrong types and
 * out-of-range values are errors. Returns 0, ZG_ERR_IO (cannot read the
 * file) or ZG_ERR_CONFIG; on error err holds one line naming
 * "path:line:column: key: what was wrong, what was expected" and *cfg may
 * be partly updated (callers discard it). */
int config_load_file(struct relay_config *cfg, const char *path, char *err,
		     size_t errlen);

/* As config_load_file() for YAML text in memory; name is used in messages. */
int config_load_buf(struct relay_config *cfg, const char *name,
		    const char *text, size_t len, char *err, size_t errlen);

/* Applies every ZGATE_* variable of envp (NULL-terminated "K=V" strings)
 * that names an option. ZGATE_CONFIG is skipped (see config_find_file);
 * any other ZGATE_* variable that names no option is an error, so a typo
 * is never silently ignored. Returns 0 or ZG_ERR_CONFIG with err set. */
int config_apply_env(struct relay_config *cfg, char *const *envp, char *err,
		     size_t errlen);

/* Applies one command-line option: name without the leading "--" (e.g.
 * "timeouts-udp-idle") and its value. Returns 0, ZG_ERR_NOTFOUND (no such
 * option; err names it) or ZG_ERR_CONFIG (bad value). */
int config_apply_flag(struct relay_config *cfg, const char *name,
		      const char *value, char *err, size_t errlen);

/* Checks what no single source can: required options present, pools
 * usable, the URI template valid (RFC 9484 / C01). Returns 0 or
 * ZG_ERR_CONFIG with err naming the option and every way to set it. */
int config_validate(const struct relay_config *cfg, char *err, size_t errlen);

/* What the command line asks for besides running. */
enum config_action {
	CONFIG_RUN = OPT_ACT_RUN,
	CONFIG_HELP = OPT_ACT_HELP,
	CONFIG_VERSION = OPT_ACT_VERSION,
	CONFIG_CHECK = OPT_ACT_CHECK_CONFIG
};

/* The whole command line: defaults < the file (--config FILE or
 * ZGATE_CONFIG) < the environment < the flags ("--name value" or
 * "--name=value", the rules of opt_next()), then config_validate().
 * --help, -h or --version anywhere return at once with *paction set. The
 * file's path goes to path (pathlen bytes; "" without a file). Returns 0,
 * or ZG_ERR_CONFIG with err naming the source (a file that cannot be read
 * included): exit status 2. */
int config_parse_args(struct relay_config *cfg, int argc, char *const *argv,
		      char *const *envp, enum config_action *paction, char *path,
		      size_t pathlen, char *err, size_t errlen);

/* Writes the option reference (flag, variable, default, meaning) to buf,
 * NUL-terminated and truncated to buflen. Returns the length needed. */
size_t config_usage(char *buf, size_t buflen);

/* Writes a human-readable summary of *cfg (for --check-config). Returns the
 * length needed, like snprintf. */
size_t config_summary(const struct relay_config *cfg, char *buf, size_t buflen);

/* The CPUs cgroup v2 lets this process use: ceil(quota / period) of the
 * smallest cpu.max on the way from its cgroup (read from self_cgroup,
 * normally /proc/self/cgroup) up to sysfs (/sys/fs/cgroup); 0 when none
 * sets a quota. At most CONFIG_WORKERS_MAX. */
unsigned config_cgroup_cpus(const char *sysfs, const char *self_cgroup);

/* The worker processes to run: workers:, or for 0 the CPUs the relay may
 * use, ncpu (its affinity mask) capped by cgroup_cpus (0: no quota);
 * 1 .. CONFIG_WORKERS_MAX. */
unsigned config_workers(const struct relay_config *c, unsigned ncpu, unsigned cgroup_cpus);

/* The relay's id as zgate-api records it: relay_id, or the host name
 * when that is empty (truncated to outlen). Returns 0, or
 * ZG_ERR_CONFIG when neither gives a usable id (err says why). */
/* The files policy_api uses: policy_api.ca/cert/key, each defaulting to
 * ipam.api's when empty. */
void config_policy_api_files(const struct relay_config *cfg, const char **pca,
			     const char **pcert, const char **pkey);

int config_relay_id(const struct relay_config *cfg, char *out, size_t outlen, char *err,
		    size_t errlen);

/* Parses "a.b.c.d/len" or an IPv6 prefix; host bits must be zero. Returns 0
 * or ZG_ERR_CONFIG. */
int config_parse_prefix(const char *s, struct config_prefix *p);

/* Checks a CONNECT-IP URI template (C01): absolute https URI with a host,
 * a path starting with "/", only the variables target and ipproto, each at
 * most once, only in the path or query, no "+" or "#" operators. Returns 0
 * or ZG_ERR_CONFIG with err saying what is wrong. */
int config_check_uri_template(const char *tmpl, char *err, size_t errlen);

#endif /* ZG_RELAY_CONFIG_H */
