/*
 * connectip.h — the CONNECT-IP capsules of RFC 9484 §4.7:
 * ADDRESS_ASSIGN (0x01), ADDRESS_REQUEST (0x02), ROUTE_ADVERTISEMENT (0x03).
 *
 * Decoders take a capsule value (as handed out by capsule_parser_feed()),
 * validate every field and fill caller-provided arrays; encoders validate
 * the same rules and write a whole capsule (header + value), so an invalid
 * list is never put on the wire. No I/O, no allocation.
 *
 * Addresses are 16-byte arrays; an IPv4 address uses the first 4 bytes and
 * the rest are zero.
 */
#ifndef ZG_CONNECTIP_H
#define ZG_CONNECTIP_H

#include <stddef.h>
#include <stdint.h>

/* One entry of ADDRESS_ASSIGN or ADDRESS_REQUEST. */
struct cip_addr {
	uint64_t request_id; /* 0 in an unprompted ADDRESS_ASSIGN */
	uint8_t version;     /* 4 or 6 */
	uint8_t addr[16];
	uint8_t prefix_len; /* <= 32 or <= 128; host bits are zero */
};

/* One range of ROUTE_ADVERTISEMENT: start..end inclusive. */
struct cip_route {
	uint8_t version; /* 4 or 6 */
	uint8_t start[16];
	uint8_t end[16];
	uint8_t proto; /* IP protocol number; 0 = any */
};

/* Returns the address length for an IP version (4 or 16), 0 otherwise. */
size_t cip_addr_len(uint8_t version);

/* Checks one entry: version 4|6 (ZG_ERR_VERSION), prefix length within the
 * version's bound and no host bit set beyond it (ZG_ERR_PREFIX), unused
 * bytes of an IPv4 address zero (ZG_ERR_INVAL). Returns 0 when valid. */
int cip_addr_validate(const struct cip_addr *a);

/* Decodes an ADDRESS_ASSIGN value into out[0..max). Returns 0 with the
 * count in *pn (0 is valid: "remove all addresses"), ZG_ERR_MALFORMED for a
 * truncated entry, ZG_ERR_VERSION/ZG_ERR_PREFIX for an invalid one, or
 * ZG_ERR_TOO_LARGE when there are more than max entries. */
int cip_addr_assign_decode(const uint8_t *v, size_t len, struct cip_addr *out,
			   size_t max, size_t *pn);

/* Decodes an ADDRESS_REQUEST value. As cip_addr_assign_decode(), and also
 * ZG_ERR_EMPTY for no entry and ZG_ERR_REQUEST_ID for a Request ID of 0
 * (RFC 9484 §4.7.2; the receiver aborts the stream on either). */
int cip_addr_request_decode(const uint8_t *v, size_t len, struct cip_addr *out,
			    size_t max, size_t *pn);

/* Write a whole ADDRESS_ASSIGN / ADDRESS_REQUEST capsule for a[0..n) at
 * *pp, advancing it. Return 0, the validation errors above (a request also
 * needs n >= 1 and non-zero Request IDs) or ZG_ERR_BUFSHORT; nothing is
 * written on error. */
int cip_addr_assign_encode(uint8_t **pp, const uint8_t *end,
			   const struct cip_addr *a, size_t n);
int cip_addr_request_encode(uint8_t **pp, const uint8_t *end,
			    const struct cip_addr *a, size_t n);

/* Fills *out with the "refused" answer to request entry req: same Request
 * ID and version, all-zero address, maximum prefix length (RFC 9484
 * §4.7.1). Returns 0 or ZG_ERR_VERSION. */
int cip_addr_refusal(const struct cip_addr *req, struct cip_addr *out);

/* 1 when a[0..na) and b[0..nb) hold the same addresses (version, address
 * and prefix length; Request IDs and order do not count), 0 otherwise. A
 * client told its addresses again (the relay's unprompted ADDRESS_ASSIGN,
 * then its answer to the ADDRESS_REQUEST) uses it to act once. */
int cip_addr_same_set(const struct cip_addr *a, size_t na, const struct cip_addr *b, size_t nb);

/* Checks a route list against RFC 9484 §4.7.3: each range has version 4|6
 * (ZG_ERR_VERSION) and start <= end with unused IPv4 bytes zero
 * (ZG_ERR_MALFORMED); consecutive ranges are ordered by version, then
 * protocol, then address with end(A) < start(B) (ZG_ERR_ORDER); and no
 * protocol-0 range overlaps a non-zero-protocol range of the same version
 * (ZG_ERR_ORDER). Runs in O(n log n)-free linear passes: O(n) plus, per
 * version, a merge walk of the protocol-0 ranges against the others, which
 * are each already sorted. Returns 0 when valid. */
int cip_routes_validate(const struct cip_route *r, size_t n);

/* Decodes a ROUTE_ADVERTISEMENT value into out[0..max) and validates it as
 * cip_routes_validate() does. Returns 0 with the count in *pn,
 * ZG_ERR_MALFORMED (truncated), ZG_ERR_VERSION, ZG_ERR_ORDER, or
 * ZG_ERR_TOO_LARGE (more than max ranges). */
int cip_route_adv_decode(const uint8_t *v, size_t len, struct cip_route *out,
			 size_t max, size_t *pn);

/* Writes a whole ROUTE_ADVERTISEMENT capsule for r[0..n) at *pp. Returns 0,
 * a cip_routes_validate() error, or ZG_ERR_BUFSHORT; nothing is written on
 * error. */
int cip_route_adv_encode(uint8_t **pp, const uint8_t *end,
			 const struct cip_route *r, size_t n);

/* Turns an arbitrary list of ranges into a valid advertisement in place:
 * sorts by (version, protocol, start), merges ranges of the same version
 * and protocol that overlap or touch, and removes from every
 * non-zero-protocol range the parts a protocol-0 range of the same version
 * already covers (protocol 0 means every protocol, so nothing is lost).
 * Trimming may split a range in two, so the result can be longer than the
 * input: r has room for cap entries. Returns 0 with the new count in *pn,
 * ZG_ERR_VERSION/ZG_ERR_MALFORMED for an invalid range, or
 * ZG_ERR_TOO_LARGE when the result needs more than cap entries. */
int cip_routes_normalize(struct cip_route *r, size_t n, size_t cap, size_t *pn);

/* Makes r[0..n) fit in max ranges (max >= 2) by widening: protocols are
 * dropped (0 = any) and the ranges of each IP version joined across their
 * smallest gaps until at most max remain. Every address r covered is still
 * covered (a route advertisement may over-state what is allowed, never
 * under-state it). The result is a valid advertisement, in place. Returns
 * 0 with the count in *pn, ZG_ERR_INVAL (max < 2), the errors of
 * cip_routes_normalize(), or ZG_ERR_NOMEM. */
int cip_routes_coarsen(struct cip_route *r, size_t n, size_t max, size_t *pn);

#endif /* ZG_CONNECTIP_H */
