/*
 * routes.h — turning the relay's ROUTE_ADVERTISEMENT into kernel routes.
 *
 * RFC 9484 advertises inclusive address ranges, each with an IP protocol;
 * the kernel routes prefixes by destination only. The agent routes every
 * destination the relay advertises for any protocol (the relay enforces the
 * protocol), so the ranges of each IP version are united and each union is
 * cut into the fewest CIDR prefixes that cover it exactly. A default route
 * (/0) is installed as two halves (0.0.0.0/1 + 128.0.0.0/1, ::/1 +
 * 8000::/1), which win over the machine's own default route without
 * replacing it, so removing them restores the machine as it was.
 *
 * Pure logic: no I/O, no allocation.
 */
#ifndef ZG_AGENT_ROUTES_H
#define ZG_AGENT_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "connectip.h"

struct route_prefix {
	uint8_t version; /* 4 or 6 */
	uint8_t addr[16];
	uint8_t len;
};

/* Converts the ranges r[0..n) (any order, any protocols, overlaps allowed)
 * into prefixes, sorted by version then address, IPv4 first. Returns 0 with
 * the count in *pn, ZG_ERR_VERSION/ZG_ERR_MALFORMED for an invalid range,
 * or ZG_ERR_TOO_LARGE when more than max prefixes are needed. */
int routes_from_ranges(const struct cip_route *r, size_t n,
		       struct route_prefix *out, size_t max, size_t *pn);

/* 1 when a and b are the same prefix. */
int routes_equal(const struct route_prefix *a, const struct route_prefix *b);

/* A total order of prefixes (version, length, address; only the address
 * bytes of the version count, as in routes_equal): <0, 0, >0. */
int routes_cmp(const struct route_prefix *a, const struct route_prefix *b);

/* Sorts l[0..n) in place by routes_cmp. */
void routes_sort(struct route_prefix *l, size_t n);

/* 1 when p equals one of sorted[0..n) (sorted by routes_sort): O(log n). */
int routes_find(const struct route_prefix *sorted, size_t n, const struct route_prefix *p);

/* Splits the change from old to new into what to delete (in old, not in
 * new) and what to add (in new, not in old), each in its list's order.
 * del and add have room for nold and nnew entries; scratch, room for the
 * longer of the two lists (its contents on return are unspecified). The
 * lists must not overlap scratch, del or add. O((nold + nnew) log) with
 * no allocation: a relay may advertise thousands of prefixes, and one at
 * a time compared with each other took tens of millions of steps per
 * advertisement. */
void routes_diff(const struct route_prefix *old, size_t nold,
		 const struct route_prefix *new_, size_t nnew,
		 struct route_prefix *scratch,
		 struct route_prefix *del, size_t *pndel,
		 struct route_prefix *add, size_t *pnadd);

/* Formats "10.0.0.0/8" or "2001:db8::/32" into buf. Returns buf. */
const char *routes_format(const struct route_prefix *p, char *buf, size_t buflen);

/* Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (full length)
 * into *p. Returns 0, ZG_ERR_INVAL when s is not a prefix, or
 * ZG_ERR_MALFORMED when bits after the length are set (10.0.0.1/8). */
int routes_parse(const char *s, struct route_prefix *p);

/* 1 when q lies inside p (same version, p->len <= q->len, the first
 * p->len bits equal); a prefix is inside itself. */
int routes_covers(const struct route_prefix *p, const struct route_prefix *q);

/* ------------------------------------------------------------------
 * What the agent takes from a relay. A relay is trusted with the traffic
 * it is given, not with the machine's routing: an address or a route that
 * would capture traffic which is not the tunnel's is refused (issue 16
 * item 5). */

enum route_refusal {
	ROUTE_OK = 0,
	ROUTE_UNSPECIFIED,  /* inside 0.0.0.0/8 or :: */
	ROUTE_LOOPBACK,     /* 127.0.0.0/8, ::1 */
	ROUTE_LINK_LOCAL,   /* 169.254.0.0/16, fe80::/10 */
	ROUTE_MULTICAST,    /* 224.0.0.0/4, ff00::/8 */
	ROUTE_BROADCAST,    /* 255.255.255.255 */
	ROUTE_RESERVED,     /* 240.0.0.0/4, IPv4-mapped ::ffff:0:0/96 */
	ROUTE_RELAY,        /* the relay's own address: its path stays outside */
	ROUTE_NOT_TUNNELED, /* a global address no tunnel route covers */
	ROUTE_LOCAL,        /* already an address of this machine elsewhere */
	ROUTE_HIJACK,       /* another interface's (non-default) route reaches it */
	ROUTE_NOT_ACCEPTED, /* outside the agent's accept_routes */
	ROUTE_COVERS_RELAY, /* covers the relay and its path cannot be pinned */
	ROUTE_IPV6_OFF,     /* IPv6, and the agent's ipv6 is off */
};

/* The refusal's short name for the status file ("link_local"), and a
 * phrase for the log saying why. Never NULL. */
const char *routes_refusal_name(enum route_refusal r);
const char *routes_refusal_why(enum route_refusal r);

/* Whether every address of p is special (unspecified, loopback,
 * link-local, multicast, broadcast, reserved): ROUTE_OK when not. A prefix
 * that merely contains a special range (0.0.0.0/1 holds 127.0.0.0/8,
 * 128.0.0.0/1 holds 169.254.0.0/16) is ROUTE_OK, as a full tunnel's
 * 0.0.0.0/0 is: the kernel's local table still wins for loopback and the
 * machine's own addresses, a link's more specific route for its
 * link-local and multicast traffic, and what reaches the tunnel of those
 * ranges the relay refuses (its never-reachable set). */
enum route_refusal routes_special(const struct route_prefix *p);

/* 1 when a is in a private-use range the Internet does not route:
 * 10/8, 172.16/12, 192.168/16, 100.64/10 (shared), fc00::/7 (ULA). */
int routes_is_private(const struct route_prefix *a);

/* The full-length (host) prefix of a's address: 10.100.0.0/24 gives
 * 10.100.0.0/32. The agent installs assigned addresses so, with no prefix
 * route, so an assignment never routes more than itself. */
struct route_prefix routes_host(const struct route_prefix *a);

/* Checks an assigned address a (as a host prefix) against what needs no
 * kernel look-up: special ranges, the relay's own address relay (version
 * 0 = unknown), and, for a global (non-private) address, whether one of
 * the tunnel's installed routes tun[0..ntun) covers it; a global address
 * the tunnel does not route is one the machine reaches elsewhere (the
 * default route), which taking it as a local address would capture. */
enum route_refusal routes_check_address(const struct route_prefix *a,
					const struct route_prefix *relay,
					const struct route_prefix *tun, size_t ntun);

/* Checks an advertised route p: special ranges, a route to the relay's own
 * address (a host route; wider routes that cover the relay are kept out
 * of the relay's path by a pinned host route, see main.c), and, when
 * filter is set, whether p lies inside one of accept[0..naccept) (an
 * empty list with filter set accepts nothing). */
enum route_refusal routes_check_route(const struct route_prefix *p,
				      const struct route_prefix *relay,
				      const struct route_prefix *accept, size_t naccept,
				      int filter);

/* How the kernel routes an address now (netlink.h nl_route_match). */
struct route_lookup {
	int found;   /* 0: no route at all */
	int oif;     /* outgoing interface; 0 when unknown */
	uint8_t len; /* prefix length of the matching route; 0 = a default route */
	int local;   /* the match is a local address (RTN_LOCAL) */
};

/* Judges the kernel's answer for an assigned address before it is added
 * to the TUN tun_ifindex: an address of this machine on another interface
 * is ROUTE_LOCAL, one reached through another interface's non-default
 * route is ROUTE_HIJACK (taking it would cut the machine off it); no
 * route, a default route or our own TUN are ROUTE_OK. */
enum route_refusal routes_check_kernel(const struct route_lookup *k, int tun_ifindex);

/* Judges the kernel's answer for the first or the last address of an
 * advertised route p before it is added to the TUN tun_ifindex: another
 * interface's non-default route as wide as p or wider (the LAN's /24 for
 * p = 192.168.1.0/24 or 192.168.1.1/32) would lose that traffic to the
 * tunnel, whose routes are as specific or more and come first (metric 0):
 * ROUTE_HIJACK. A narrower route inside p keeps its own traffic; no route,
 * a default route, a local address (the local table wins) or our own TUN
 * are ROUTE_OK. */
enum route_refusal routes_check_kernel_route(const struct route_lookup *k,
					     const struct route_prefix *p, int tun_ifindex);

/* The last address of p (p itself when a host prefix), as a host prefix. */
struct route_prefix routes_last(const struct route_prefix *p);

#endif /* ZG_AGENT_ROUTES_H */
