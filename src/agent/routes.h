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

/* Splits the change from old to new into what to delete (in old, not in
 * new) and what to add (in new, not in old). del and add have room for
 * nold and nnew entries. */
void routes_diff(const struct route_prefix *old, size_t nold,
		 const struct route_prefix *new_, size_t nnew,
		 struct route_prefix *del, size_t *pndel,
		 struct route_prefix *add, size_t *pnadd);

/* Formats "10.0.0.0/8" or "2001:db8::/32" into buf. Returns buf. */
const char *routes_format(const struct route_prefix *p, char *buf, size_t buflen);

#endif /* ZG_AGENT_ROUTES_H */
