/*
 * agent_config.h — zgate-agent configuration: one flat YAML file, ZGATE_*
 * environment variables and command-line flags, in that order of
 * increasing precedence (flag > environment > file > built-in default),
 * like the relay's.
 *
 * Every option is described once, in a table (agent_config.c): the YAML
 * key ("status_file") gives the flag ("--status-file") and the variable
 * ("ZGATE_STATUS_FILE"), so the three can never disagree. Every error
 * names where the bad value came from — "agent.yaml:4:1: keepalive", the
 * variable or the flag — and what was expected.
 */
#ifndef ZG_AGENT_AGENT_CONFIG_H
#define ZG_AGENT_AGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "agent/relaylist.h"
#include "agent/routes.h"
#include "opt.h"

#define AGENT_CONFIG_PATH_MAX 1024
#define AGENT_ACCEPT_MAX 64 /* prefixes in accept_routes */

/* accept_routes: which advertised routes the agent installs. */
struct agent_accept {
	int filter;                              /* 0: every route the relay advertises (the default) */
	struct route_prefix p[AGENT_ACCEPT_MAX]; /* with filter: only routes inside these */
	size_t n;                                /* 0 with filter ("none"): no route at all */
};

struct agent_config {
	/* The relay list as given: entries [NAME@]HOST:PORT (UDP) separated
	 * by commas (a YAML list is joined so); required. */
	char relay[RELAYLIST_MAX * RELAYLIST_TEXT_MAX];
	/* Parsed from relay by agent_config_validate(), each entry with the
	 * server name and URI template its connections use. */
	struct relaylist relays;
	char cert[AGENT_CONFIG_PATH_MAX];         /* client certificate (PEM), required */
	char key[AGENT_CONFIG_PATH_MAX];          /* its key, required */
	char ca[AGENT_CONFIG_PATH_MAX];           /* CA of the relay's certificate, required */
	char connector_ca[AGENT_CONFIG_PATH_MAX]; /* CA of connectors' certificates; "" = ca
						      (agent_config_validate() fills it) */
	char server_name[256];                    /* "" = each relay's host (or NAME@) */
	char uri_template[AGENT_CONFIG_PATH_MAX]; /* "" = https://HOST:PORT/.well-known/...
						      of each relay */
	char tun[16];                             /* TUN device name */
	char status_file[AGENT_CONFIG_PATH_MAX];  /* "" = none */
	uint32_t reconnect_min_ms;                /* ceiling of the first retry delay */
	uint32_t reconnect_max_ms;                /* cap of the retry delay */
	uint32_t keepalive_ms;                    /* QUIC PING when idle; 0 = off */
	uint32_t idle_timeout_ms;                 /* QUIC idle timeout */
	uint32_t connect_timeout_ms;              /* QUIC handshake timeout */
	uint32_t mtu;                             /* TUN MTU; 0 = the tunnel's datagram size */
	int ipv6;                                 /* also ask for an IPv6 address */
	struct agent_accept accept_routes;        /* like Tailscale's --accept-routes */
	char dns[16];                             /* auto, resolved, file, off (agentdns.h) */
	char resolv_conf[AGENT_CONFIG_PATH_MAX];  /* the file mode's resolver file */
	char dns_backup[AGENT_CONFIG_PATH_MAX];   /* its crash backup; "" = beside it */
	char log_level[16];
	char log_format[8];   /* text or json */
	struct opt_from from; /* where each option was set, for agent_config_validate() */
};

/* What the command line asks for besides running. */
enum agent_action {
	AGENT_RUN = OPT_ACT_RUN,
	AGENT_HELP = OPT_ACT_HELP,
	AGENT_VERSION = OPT_ACT_VERSION,
	AGENT_CHECK_CONFIG = OPT_ACT_CHECK_CONFIG
};

/* Fills *cfg with the built-in defaults. */
void agent_config_defaults(struct agent_config *cfg);

/* Applies YAML text (a flat mapping of the keys in the table) over *cfg;
 * name is used in messages. Unknown keys, non-scalar values and bad values
 * are errors. Returns 0 or ZG_ERR_CONFIG / ZG_ERR_NOMEM with err holding
 * one line: "name:line:column: key: what was wrong, what was expected". */
int agent_config_load_buf(struct agent_config *cfg, const char *name, const char *text,
			  size_t len, char *err, size_t errlen);

/* As agent_config_load_buf() for the file at path; ZG_ERR_IO when it
 * cannot be read. */
int agent_config_load_file(struct agent_config *cfg, const char *path, char *err,
			   size_t errlen);

/* Applies every ZGATE_* variable of envp (NULL-terminated "K=V"). A
 * ZGATE_* variable that names no option is an error (ZGATE_CONFIG, the
 * file's path, excepted). Returns 0 or ZG_ERR_CONFIG with err set. */
int agent_config_apply_env(struct agent_config *cfg, char *const *envp, char *err,
			   size_t errlen);

/* Applies one flag: name without "--" and its value. Returns 0,
 * ZG_ERR_NOTFOUND (no such option) or ZG_ERR_CONFIG (bad value). */
int agent_config_apply_flag(struct agent_config *cfg, const char *name, const char *value,
			    char *err, size_t errlen);

/* Checks what no single source can (required options, the relay list
 * (relaylist.h; an error names the entry), the URI template (C01),
 * keepalive shorter than the idle timeout, reconnect_min <= reconnect_max,
 * MTU >= 1280) and fills cfg->relays, each entry with its server name
 * (its NAME@, else server_name, else its host) and URI template (the
 * template option, else https://HOST:PORT/... of the entry). server_name
 * and uri_template, when empty, are filled with those of the first relay.
 * Returns 0 or ZG_ERR_CONFIG with err naming the option and how to set it. */
int agent_config_validate(struct agent_config *cfg, char *err, size_t errlen);

/* The whole command line: defaults, then the file (--config FILE or
 * ZGATE_CONFIG), the environment, the flags (the rules of opt_next():
 * "--name value", "--name=value", a bare boolean "--ipv6" is true), then
 * agent_config_validate(). --help, -h or --version anywhere return at
 * once with *paction set. Returns 0, or ZG_ERR_CONFIG (also for a file
 * that cannot be read: exit status 2) or ZG_ERR_NOMEM with err naming the
 * source of the error. */
int agent_config_parse(struct agent_config *cfg, int argc, char *const *argv,
		       char *const *envp, enum agent_action *paction, char *err, size_t errlen);

/* Writes the option reference to buf (NUL-terminated, truncated to
 * buflen). Returns the length needed. */
size_t agent_config_usage(char *buf, size_t buflen);

#endif /* ZG_AGENT_AGENT_CONFIG_H */
