/*
 * tunio.h — struct masque_io over IP/UDP packets instead of a socket: the
 * transport of the inner QUIC session between an agent and a connector
 * (issue 22, README "On-prem connectors").
 *
 * The inner session's QUIC datagrams travel as ordinary IPv4/IPv6 UDP
 * packets between the two ends' tunnel addresses, inside their outer
 * CONNECT-IP tunnels; the relay only forwards them and never holds the
 * inner keys. Outbound, tunio builds each datagram into a whole IP packet
 * (UDP checksum set, TTL/hop limit 64, DF set) and hands it to emit(), which
 * sends it into the outer tunnel (masque_conn_send). Inbound, the owner
 * picks the packets that belong to the inner session out of its tunnel
 * with tunio_parse_udp() and feeds the payload to masque_conn_input() /
 * masque_server_input() with the addresses it returned.
 *
 * Size: the masque client closes a tunnel whose datagrams cannot carry a
 * 1280-byte packet (RFC 9484 §10.1, C16), so the inner session needs a
 * max_udp_payload of about 1372 (1280 + QUIC and HTTP Datagram overhead):
 * the outer tunnel must carry IP packets of 1400 bytes (the default
 * 1452-byte outer UDP payload does). Set the inner max_udp_payload to the
 * outer masque_conn_max_packet() minus 28 (IPv4) or 48 (IPv6).
 *
 * Time is CLOCK_MONOTONIC (masque_udp_now()); each connection's timer is a
 * libevent timer on the base given to tunio_new() that calls
 * masque_conn_on_timer(). One thread, that of the base.
 */
#ifndef ZG_MASQUE_TUNIO_H
#define ZG_MASQUE_TUNIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "masque/masque.h"

struct event_base;
struct tunio;

/* Takes one whole IP packet (valid during the call). */
typedef void (*tunio_emit_fn)(void *ctx, const uint8_t *pkt, size_t len);

/* Creates a transport on base whose packets go to emit(ctx, ...). Returns
 * 0 and *pt, ZG_ERR_INVAL or ZG_ERR_NOMEM. */
int tunio_new(struct event_base *base, tunio_emit_fn emit, void *ctx, struct tunio **pt);

/* Frees t. Every connection using it must be gone (its timers freed). */
void tunio_free(struct tunio *t);

/* The io table; use it with masque_config.ioctx = the struct tunio *. */
const struct masque_io *tunio_io(void);

/* Packets emit() got, and datagrams that could not be built (addresses
 * of different families, or too large for one IP packet). */
struct tunio_stats {
	uint64_t sent, send_errors;
};
void tunio_stats(const struct tunio *t, struct tunio_stats *st);

/* Builds the IP/UDP packet of one datagram from local to remote (both
 * AF_INET or both AF_INET6) into out. Returns the packet length, or 0 when
 * it cannot (families differ, cap too small, over 65535). Exposed for
 * tests; send() uses it. */
size_t tunio_build_udp(const struct sockaddr *local, const struct sockaddr *remote,
		       const uint8_t *data, size_t len, uint8_t *out, size_t cap);

/* Parses an IP packet from the outer tunnel. When it is a UDP packet (a
 * well-formed IPv4 or IPv6 header without options or extension headers,
 * not a fragment, a UDP length that fits, a valid UDP checksum — IPv4's
 * may be 0, "none"), fills local (its destination) and remote (its source)
 * as sockaddr_in / sockaddr_in6, points *payload into pkt and returns 1.
 * Anything else returns 0 and changes nothing. */
int tunio_parse_udp(const uint8_t *pkt, size_t len, struct sockaddr_storage *local,
		    socklen_t *locallen, struct sockaddr_storage *remote, socklen_t *remotelen,
		    const uint8_t **payload, size_t *plen);

#endif /* ZG_MASQUE_TUNIO_H */
