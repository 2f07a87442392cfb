/*
 * resolved.h — the agent's "resolved" DNS mode (issue 19.5): split DNS
 * through systemd-resolved's D-Bus API (org.freedesktop.resolve1.Manager,
 * see org.freedesktop.resolve1(5)), on the TUN link only:
 *
 *   SetLinkDNS(ifindex, [(family, address)])       the relay's servers
 *   SetLinkDomains(ifindex, [(domain, routing)])   "~saas.example" (routing
 *                                                  only) per internal domain,
 *                                                  search domains as plain
 *   SetLinkDefaultRoute(ifindex, false|true)       true only when the relay
 *                                                  claims every name ("~.")
 *   RevertLink(ifindex)                            on exit
 *
 * Names under the routing domains go to the relay; every other name keeps
 * using the system's resolvers. The bus is the system bus
 * (sd_bus_open_system(), which honours DBUS_SYSTEM_BUS_ADDRESS — the tests
 * run a private dbus-daemon with a fake resolve1). Calls are synchronous
 * with a short timeout: resolved answers in milliseconds, and the agent
 * makes them only when a DNS_ASSIGN arrives and at exit.
 */
#ifndef ZG_AGENT_RESOLVED_H
#define ZG_AGENT_RESOLVED_H

#include <stddef.h>
#include <stdint.h>

#define RESOLVED_TIMEOUT_US (2 * 1000 * 1000)

struct resolved;

/* A server: family 4 or 6 and its address bytes. */
struct resolved_server {
	uint8_t family;
	uint8_t addr[16];
};

/* Connects to the system bus. Returns 0 and *pr, or ZG_ERR_IO (no bus;
 * err says why). */
int resolved_open(struct resolved **pr, char *err, size_t errlen);
void resolved_close(struct resolved *r);

/* 1 when org.freedesktop.resolve1 has an owner on the bus (resolved runs),
 * 0 otherwise. */
int resolved_present(struct resolved *r);

/* Configures link ifindex: servers, routing domains (internal; "" = every
 * name, "~."), search domains. Returns 0, or ZG_ERR_IO with err holding
 * resolved's error (the link may be half-configured: call
 * resolved_revert()). */
int resolved_apply(struct resolved *r, int ifindex, const struct resolved_server *s, size_t ns,
		   const char *const *internal, size_t ninternal, const char *const *search,
		   size_t nsearch, char *err, size_t errlen);

/* RevertLink(ifindex). Returns 0 or ZG_ERR_IO (err set). */
int resolved_revert(struct resolved *r, int ifindex, char *err, size_t errlen);

#endif /* ZG_AGENT_RESOLVED_H */
