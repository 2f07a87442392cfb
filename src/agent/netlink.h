/*
 * netlink.h — the agent's rtnetlink calls (libmnl): link state and MTU,
 * addresses, routes, and route look-ups. Each call is one request answered
 * by one acknowledgement; nothing is cached.
 *
 * Errors: ZG_ERR_IO with errno set to the kernel's answer (EEXIST, ESRCH,
 * EPERM, ENETUNREACH...), so callers can log it with log_warn().
 */
#ifndef ZG_AGENT_NETLINK_H
#define ZG_AGENT_NETLINK_H

#include <stdint.h>

#include "agent/routes.h"

struct nl;

/* Opens a NETLINK_ROUTE socket. Returns 0 and *pnl, ZG_ERR_IO or
 * ZG_ERR_NOMEM. */
int nl_open(struct nl **pnl);
void nl_close(struct nl *nl);

/* Sets the link up (or down) and, when mtu > 0, its MTU. */
int nl_link_set(struct nl *nl, int ifindex, int up, uint32_t mtu);

/* Adds (add = 1) or removes (add = 0) address a/len on the link, always
 * with IFA_F_NOPREFIXROUTE (no route for the prefix is created; the agent
 * passes host prefixes, routes.h routes_host) and, for IPv6, NODAD. */
int nl_addr(struct nl *nl, int add, int ifindex, const struct route_prefix *a);

/* Adds or removes a route to p in the main table: through the link when
 * gw is NULL, else via gateway gw (4 or 16 bytes, same version as p).
 * Adding an existing route is ZG_ERR_IO with errno EEXIST. */
int nl_route(struct nl *nl, int add, int ifindex, const struct route_prefix *p,
	     const uint8_t *gw);

/* Asks the kernel how it would reach dst (4 or 16 bytes): the outgoing
 * link in *poif and, when the route has one, the gateway in gw with
 * *phas_gw = 1. Returns 0 or ZG_ERR_IO (errno ENETUNREACH when there is no
 * route). */
int nl_route_get(struct nl *nl, uint8_t version, const uint8_t *dst,
		 uint8_t gw[16], int *phas_gw, int *poif);

/* Asks the kernel which configured route matches dst (RTM_F_FIB_MATCH):
 * fills *pk with its outgoing link, prefix length and whether it is a
 * local address. No route (or an unreachable/prohibit/blackhole one) is
 * 0 with pk->found = 0. Returns 0 or ZG_ERR_IO with errno set. */
int nl_route_match(struct nl *nl, const struct route_prefix *dst, struct route_lookup *pk);

#endif /* ZG_AGENT_NETLINK_H */
