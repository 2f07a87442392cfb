/*
 * conn_config.h — zgate-connector configuration: one flat YAML file.
 *
 *   relays: ["relay-a.example:443", "relay-b.example:443"]   # all at once
 *   server_name: relay.example     # "" = each relay's host (or NAME@)
 *   ca: /etc/zgate/ca.crt          # relays' CA, and the CA of agents' certs
 *   cert: /etc/zgate/connector.crt # CN connector:<ID>
 *   key: /etc/zgate/connector.key
 *   prefixes: ["10.20.0.0/16"]     # what this connector serves (>= 1)
 *   policy: /etc/zgate/connector-policy.yaml   # relay policy format
 *   audit: "-"                     # JSON lines: "-" = stdout, else a file
 *   ops_listen: 127.0.0.1:9201
 *   inner_port: 443                # virtual port inside the tunnel
 *   log_level: info
 *   max_conns_per_agent: 8         # inner QUIC connections per agent address and relay
 *   request_timeout: 10s           # a connection without a tunnel this long is closed
 *
 * Every error names where the bad value is: "FILE:LINE:COL: key: what is
 * wrong, what was expected"; a missing required key "FILE: key: ...".
 * Pure parsing: no file named in the config is opened here.
 */
#ifndef ZG_CONNECTOR_CONN_CONFIG_H
#define ZG_CONNECTOR_CONN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "agent/relaylist.h"
#include "agent/routes.h"
#include "opt.h"

#define CONN_PATH_MAX 1024
#define CONN_PREFIX_MAX 64 /* prefixes served */
#define CONN_INNER_PORT 443

struct conn_config {
	struct relaylist relays; /* each entry's server_name/uri_template filled */
	char server_name[RELAYLIST_NAME_MAX];
	char ca[CONN_PATH_MAX], cert[CONN_PATH_MAX], key[CONN_PATH_MAX];
	struct route_prefix prefixes[CONN_PREFIX_MAX];
	size_t nprefixes;
	char policy[CONN_PATH_MAX];
	char audit[CONN_PATH_MAX]; /* "-" = stdout */
	char ops_listen[RELAYLIST_TEXT_MAX];
	uint16_t inner_port;
	char log_level[16];
	uint32_t reconnect_min_ms, reconnect_max_ms;
	uint32_t keepalive_ms, idle_timeout_ms;
	uint32_t max_conns_per_agent; /* inner connections at once per agent address, per relay */
	uint32_t request_timeout_ms;  /* an inner connection without a tunnel is closed after it */
	struct opt_from from;         /* where each key was set, for the checks across keys */
};

/* Fills *cfg with the defaults (audit "-", ops_listen 127.0.0.1:9201,
 * inner_port 443, log_level info, reconnect 500ms..30s, keepalive 25s,
 * idle_timeout 30s, max_conns_per_agent 8, request_timeout 10s); the
 * required keys are empty. */
void conn_config_defaults(struct conn_config *cfg);

/* Applies YAML text (name starts every message) over *cfg, then checks
 * that the required keys (relays, ca, cert, key, prefixes, policy) are
 * set and fills each relay's server name and URI template. Returns 0, or
 * ZG_ERR_CONFIG / ZG_ERR_NOMEM with err holding one line as above. */
int conn_config_load_buf(struct conn_config *cfg, const char *name, const char *text, size_t len,
			 char *err, size_t errlen);

/* As conn_config_load_buf() for the file at path; ZG_ERR_IO when it cannot
 * be read (err says why). */
int conn_config_load_file(struct conn_config *cfg, const char *path, char *err, size_t errlen);

/* 1 when the address (version 4 or 6) lies in one of the served prefixes. */
int conn_config_serves(const struct conn_config *cfg, uint8_t version, const uint8_t *a);

#endif /* ZG_CONNECTOR_CONN_CONFIG_H */
