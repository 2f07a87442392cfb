/*
 * cipdns.h — the DNS_ASSIGN capsule of draft-ietf-masque-connect-ip-dns
 * (revision -06, "DNS and PREF64 Configuration for Proxying IP in HTTP").
 *
 * Wire format (all counts and lengths are QUIC varints):
 *
 *   DNS_ASSIGN Capsule { Type (i) = 0x1ACE79EC, Length (i),
 *                        DNS Configuration (..) ... }
 *   DNS Configuration  { Nameserver Count (i), Nameserver (..) ...,
 *                        Internal Domain Count (i), Domain (..) ...,
 *                        Search Domain Count (i), Domain (..) ... }
 *   Nameserver         { Service Priority (16), IPv4 Address Count (i),
 *                        IPv4 Address (32) ..., IPv6 Address Count (i),
 *                        IPv6 Address (128) ..., Authentication Domain
 *                        Name (Domain), Service Parameters Length (i),
 *                        Service Parameters (..) }
 *   Domain             { Domain Length (i), Domain Name (..) }
 *
 * A capsule holds zero or more configurations (one per set of nameservers
 * responsible for its internal domains); each DNS_ASSIGN supersedes the
 * previous one, so an empty one withdraws the configuration. An internal
 * domain covers its subdomains; the empty domain is the DNS root ("every
 * name"). The capsule type is the draft's provisional codepoint; it will
 * change when the draft becomes an RFC.
 *
 * The decoder is strict, because the agent writes what it decodes into
 * the system's resolver configuration: every count is bounded (below) before
 * anything is read, names must be domain names in presentation format
 * (labels of 1..63 letters, digits, '-' or '_', at most 253 characters,
 * an optional final dot), the Service Priority is non-zero, the Service
 * Parameters are well-formed SVCB SvcParams (RFC 9460 §2.2: keys strictly
 * increasing, lengths inside) without ipv4hint/ipv6hint, "alpn" and
 * "no-default-alpn" only with an authentication name, and a nameserver
 * that does unencrypted DNS (no "no-default-alpn") has an address. The
 * encoder checks the same rules, so nothing invalid is put on the wire.
 * No I/O, no allocation.
 */
#ifndef ZG_CIPDNS_H
#define ZG_CIPDNS_H

#include <stddef.h>
#include <stdint.h>

#define CAPSULE_DNS_ASSIGN UINT64_C(0x1ACE79EC)

/* Bounds on what one DNS_ASSIGN may carry (larger: ZG_ERR_TOO_LARGE). */
#define CIPDNS_MAX_CONFIGS 4
#define CIPDNS_MAX_NS 4       /* nameservers per configuration */
#define CIPDNS_MAX_ADDRS 4    /* addresses per family per nameserver */
#define CIPDNS_MAX_DOMAINS 32 /* internal domains, and search domains */
#define CIPDNS_NAME_MAX 253   /* characters of a name, final dot excluded */
#define CIPDNS_SVCPARAMS_MAX 256

/* SvcParamKeys the rules above look at (RFC 9460 §14.3.2). */
#define CIPDNS_SVC_ALPN 1
#define CIPDNS_SVC_NO_DEFAULT_ALPN 2
#define CIPDNS_SVC_IPV4HINT 4
#define CIPDNS_SVC_IPV6HINT 6

struct cipdns_ns {
	uint16_t priority; /* non-zero */
	uint8_t v4[CIPDNS_MAX_ADDRS][4];
	size_t n4;
	uint8_t v6[CIPDNS_MAX_ADDRS][16];
	size_t n6;
	char auth_name[CIPDNS_NAME_MAX + 2]; /* "" = none (unencrypted DNS only) */
	uint8_t svcparams[CIPDNS_SVCPARAMS_MAX];
	size_t svcparams_len;
};

/* Names are NUL-terminated, as on the wire (case and final dot kept). */
struct cipdns_config {
	struct cipdns_ns ns[CIPDNS_MAX_NS];
	size_t nns;
	char internal[CIPDNS_MAX_DOMAINS][CIPDNS_NAME_MAX + 2]; /* "" = the root */
	size_t ninternal;
	char search[CIPDNS_MAX_DOMAINS][CIPDNS_NAME_MAX + 2];
	size_t nsearch;
};

struct cipdns_assign {
	struct cipdns_config cfg[CIPDNS_MAX_CONFIGS];
	size_t n;
};

/* 1 when s (len bytes, no NUL needed) is a domain name as described above;
 * allow_root: the empty name (and a lone ".") are accepted too. */
int cipdns_name_ok(const char *s, size_t len, int allow_root);

/* Checks SvcParams wire bytes against the rules above for a nameserver
 * with (has_auth) or without an authentication name and with naddrs
 * addresses. Returns 0 or ZG_ERR_MALFORMED. */
int cipdns_svcparams_check(const uint8_t *p, size_t len, int has_auth, size_t naddrs);

/* Decodes a DNS_ASSIGN value (as capsule_parser_feed() hands it out) into
 * *out (zeroed first). Returns 0 (out->n may be 0: "no DNS
 * configuration"), ZG_ERR_MALFORMED (truncated, trailing bytes inside a
 * structure, a field that breaks a rule), or ZG_ERR_TOO_LARGE (a count
 * above the bounds). */
int cipdns_assign_decode(const uint8_t *v, size_t len, struct cipdns_assign *out);

/* Writes a whole DNS_ASSIGN capsule (header and value) for a at *pp,
 * advancing it. Returns 0, ZG_ERR_INVAL (a rule broken or a count above
 * the bounds: a caller bug) or ZG_ERR_BUFSHORT; nothing is written on
 * error. */
int cipdns_assign_encode(uint8_t **pp, const uint8_t *end, const struct cipdns_assign *a);

#endif /* ZG_CIPDNS_H */
