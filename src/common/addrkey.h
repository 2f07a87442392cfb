/*
 * addrkey.h — the key under which a peer's IP address is counted against a
 * per-source limit. One rule for every such limit: the relay's QUIC
 * admission (src/masque: handshakes per source, connections per address,
 * the deferred-packet share of a source) and zgate-api's
 * max_connections_per_address (src/api). zgate-api does not link the
 * masque module, so the rule lives here.
 *
 * A key is ADDRKEY_LEN bytes, an IPv6 address in network order:
 *   - an IPv4 address is ::ffff:a.b.c.d, whether it came as AF_INET or as
 *     an IPv4-mapped AF_INET6 address (a dual-stack socket): one IPv4
 *     peer has one key;
 *   - any other IPv6 address is, with ADDRKEY_SOURCE, its /64 (the other
 *     eight bytes zero): one host usually holds a whole /64 and picks
 *     its interface identifier at will, so a cap per exact address would
 *     not hold it; with ADDRKEY_EXACT, the whole address: where every
 *     address is a distinct peer that cannot choose it (agents' virtual
 *     addresses behind a connector, which may share one /64).
 *
 * Pure: no I/O, no state, thread-safe.
 */
#ifndef ZG_ADDRKEY_H
#define ZG_ADDRKEY_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDRKEY_LEN 16
/* addrkey_text()'s longest text, NUL included: an IPv6 address and "/64". */
#define ADDRKEY_TEXT_MAX (INET6_ADDRSTRLEN + 3)

enum addrkey_kind {
	ADDRKEY_SOURCE, /* IPv4 address, or IPv6 /64 */
	ADDRKEY_EXACT,  /* IPv4 address, or the whole IPv6 address */
};

/* The key of sa's address (the port is ignored) into key. Returns 0, or
 * ZG_ERR_INVAL when sa is NULL or neither AF_INET nor AF_INET6: key is
 * then all zero, and the caller should count nothing against it. */
int addrkey_of(const struct sockaddr *sa, enum addrkey_kind kind, uint8_t key[ADDRKEY_LEN]);

/* The key as text for logs, into buf (len bytes, ADDRKEY_TEXT_MAX is
 * enough): "192.0.2.7" for an IPv4 key; for an IPv6 one, the address,
 * followed by "/64" when kind is ADDRKEY_SOURCE ("2001:db8:1:2::/64").
 * Always NUL-terminated when len > 0 (cut to fit). */
void addrkey_text(const uint8_t key[ADDRKEY_LEN], enum addrkey_kind kind, char *buf, size_t len);

#endif /* ZG_ADDRKEY_H */
