/*
 * agentdns.h — the agent's DNS configuration from the relay (issue 19.5).
 *
 * The relay sends DNS_ASSIGN (draft-ietf-masque-connect-ip-dns, cipdns.h)
 * after the routes: its DNS server(s) inside the tunnel and the internal
 * domains to send there. The agent takes it from the relay it
 * authenticated (the draft: act on DNS_ASSIGN only from a trusted peer
 * that is expected to send it) and configures split DNS, by mode (`dns`):
 *
 *   auto      resolved when org.freedesktop.resolve1 is on the system bus,
 *             else file (decided at start)
 *   resolved  per-link servers and routing domains on the TUN through
 *             systemd-resolved (resolved.h); reverted on exit
 *   file      the resolver file of the agent's own view of the system
 *             (resolv_conf, default /etc/resolv.conf; resolvconf.h),
 *             restored byte for byte on exit, and at the next start after
 *             a crash
 *   off       DNS_ASSIGN is ignored
 *
 * Only nameservers that speak plain DNS on port 53 (no "no-default-alpn",
 * no other "port") can be configured this way; others are left out and
 * logged. A DNS_ASSIGN replaces the previous one; an empty one (or one
 * without usable servers) removes the configuration. A reconnect keeps
 * the configuration until the relay sends a new one.
 */
#ifndef ZG_AGENT_AGENTDNS_H
#define ZG_AGENT_AGENTDNS_H

#include <stddef.h>
#include <stdint.h>

#include "cipdns.h"

enum agentdns_mode {
	AGENTDNS_AUTO = 0,
	AGENTDNS_RESOLVED,
	AGENTDNS_FILE,
	AGENTDNS_OFF
};

/* "auto", "resolved", "file", "off" <-> the enum. parse returns 0 or
 * ZG_ERR_CONFIG. */
int agentdns_mode_parse(const char *s, enum agentdns_mode *pm);
const char *agentdns_mode_name(enum agentdns_mode m);

#define AGENTDNS_MAX_SERVERS 8

/* What is configured now, for the status file and the log. */
struct agentdns_state {
	enum agentdns_mode mode; /* resolved mode once auto decided */
	int active;              /* a configuration is in place */
	char servers[AGENTDNS_MAX_SERVERS][48];
	size_t nservers;
	char domains[CIPDNS_MAX_DOMAINS * CIPDNS_MAX_CONFIGS][CIPDNS_NAME_MAX + 2];
	size_t ndomains;                            /* internal ("" = every name) */
	const char *server_p[AGENTDNS_MAX_SERVERS]; /* servers[i], as a list */
	const char *domain_p[CIPDNS_MAX_DOMAINS * CIPDNS_MAX_CONFIGS];
	size_t skipped; /* nameservers left out (not plain DNS on 53) */
	char via[1100]; /* "resolved on zgate0 (ifindex 7)", "file /etc/resolv.conf", "off" */
};

struct agentdns;

/* Starts DNS handling in mode for the TUN (name, ifindex). resolv_conf is
 * the file mode's path ("" = RESOLVCONF_DEFAULT), backup where it keeps the
 * original ("" = beside it, resolvconf.h). In every mode (an earlier run
 * may have used file mode), a crash backup left by an earlier run is
 * restored first. Returns 0 and *pd; ZG_ERR_IO when the mode cannot work
 * (resolved: no bus or no resolve1; err says why); ZG_ERR_NOMEM. */
int agentdns_new(enum agentdns_mode mode, const char *resolv_conf, const char *backup,
		 const char *tun, int ifindex, struct agentdns **pd, char *err, size_t errlen);

/* Applies a DNS_ASSIGN value (as received). Returns 0 (applied, or
 * ignored in mode off), ZG_ERR_MALFORMED / ZG_ERR_TOO_LARGE (the capsule
 * breaks the draft: the caller aborts the tunnel as for any bad capsule;
 * nothing changed), ZG_ERR_IO (the system refused: err says why; the
 * previous configuration is removed). */
int agentdns_assign(struct agentdns *d, const uint8_t *value, size_t len, char *err,
		    size_t errlen);

/* Removes the configuration (RevertLink, or the original file back).
 * Returns 0 or ZG_ERR_IO (err set). */
int agentdns_clear(struct agentdns *d, char *err, size_t errlen);

const struct agentdns_state *agentdns_state(const struct agentdns *d);

/* agentdns_clear() then frees d (NULL is fine). */
void agentdns_free(struct agentdns *d);

#endif /* ZG_AGENT_AGENTDNS_H */
