/*
 * zgconn.h — the ZG_CONNECTORS capsule: the relay tells an agent which
 * on-prem connectors it may reach, where they are in the tunnel and which
 * prefixes they serve (issue 22; README "On-prem connectors").
 *
 * A zgate extension, sent only by the relay on an open CONNECT-IP tunnel.
 * Standard peers skip it: RFC 9297 §3.2 says an endpoint ignores capsule
 * types it does not know. Wire format (counts and lengths are QUIC
 * varints):
 *
 *   ZG_CONNECTORS Capsule { Type (i) = 0x5A47434E, Length (i),
 *                           Connector (..) ... }
 *   Connector { ID Length (i), ID (..),      -- without "connector:"
 *               State (8),                   -- 0 down, 1 up
 *               Inner Port (16),
 *               Address Count (i), Address { IP Version (8),
 *                                            IP Address (32/128) } ...,
 *               Prefix Count (i), Prefix { IP Version (8),
 *                                          IP Address (32/128),
 *                                          Prefix Length (8) } ... }
 *
 * Each capsule carries the full list for this agent (the connectors its
 * policy lets it reach, up or down) and supersedes the previous one; an
 * empty capsule withdraws every connector. The Address is the connector's
 * tunnel address: the agent's inner QUIC session goes to Address:Inner
 * Port inside its own tunnel.
 *
 * The decoder is strict because the agent turns what it decodes into
 * routes: counts are bounded before anything is read, IDs are valid
 * (zgconn_id_valid), unique, addresses and prefixes are version 4 or 6,
 * a prefix has no host bits, an up connector has an address, a port
 * and at least one prefix. The encoder checks the same. No I/O, no
 * allocation.
 */
#ifndef ZG_ZGCONN_H
#define ZG_ZGCONN_H

#include <stddef.h>
#include <stdint.h>

#define CAPSULE_ZG_CONNECTORS UINT64_C(0x5A47434E)

#define ZGCONN_MAX 16          /* connectors per capsule */
#define ZGCONN_MAX_ADDRS 2     /* tunnel addresses per connector */
#define ZGCONN_MAX_PREFIXES 64 /* prefixes per connector */
#define ZGCONN_ID_MAX 64       /* ID characters + NUL */

/* The identity prefix of a connector's certificate (CN "connector:ID"). */
#define ZGCONN_IDENTITY_PREFIX "connector:"

/* An address (len 32 or 128) or a prefix. Bytes past the address are 0
 * after decoding. */
struct zgconn_prefix {
	uint8_t version; /* 4 or 6 */
	uint8_t a[16];
	uint8_t len; /* prefix length in bits */
};

struct zgconn {
	char id[ZGCONN_ID_MAX]; /* without "connector:" */
	int up;
	uint16_t port; /* inner port (0 only when down) */
	struct zgconn_prefix addrs[ZGCONN_MAX_ADDRS];
	size_t naddrs;
	struct zgconn_prefix prefixes[ZGCONN_MAX_PREFIXES];
	size_t nprefixes;
};

/* 1 when id is a valid connector ID: 1..63 characters of [A-Za-z0-9._-],
 * else 0. */
int zgconn_id_valid(const char *id);

/* 1 when a client identity names a connector (ZGCONN_IDENTITY_PREFIX and
 * 1 or more characters), as the relay tells one (session.c) and the
 * connector checks its own certificate; *pid (when pid is not NULL) then
 * points to the ID inside it. */
int zgconn_identity(const char *identity, const char **pid);

/* 1 when prefix p contains the address a (version 4: 4 bytes of a). */
int zgconn_prefix_contains(const struct zgconn_prefix *p, uint8_t version, const uint8_t *a);

/* Encodes the capsule VALUE of v[0..n) into out (cap bytes): *plen gets
 * its length. Returns 0, ZG_ERR_TOO_LARGE (n or a count over its bound),
 * ZG_ERR_INVAL (an invalid entry, see above), ZG_ERR_BUFSHORT. */
int zgconn_encode(const struct zgconn *v, size_t n, uint8_t *out, size_t cap, size_t *plen);

/* The same as a whole capsule: type, length, value. */
int zgconn_encode_capsule(const struct zgconn *v, size_t n, uint8_t *out, size_t cap,
			  size_t *plen);

/* Decodes a capsule value into v[0..max); *pn gets the count. Returns 0,
 * ZG_ERR_TRUNCATED (it ends inside an entry), ZG_ERR_TOO_LARGE (more than
 * max connectors or a count over its bound), ZG_ERR_VERSION,
 * ZG_ERR_PREFIX (length out of range or host bits set), ZG_ERR_MALFORMED
 * (bad ID, duplicate ID, bad state, up without address/port/prefix,
 * trailing bytes). Nothing in v is meaningful after an error. */
int zgconn_decode(const uint8_t *val, size_t len, struct zgconn *v, size_t max, size_t *pn);

#endif /* ZG_ZGCONN_H */
