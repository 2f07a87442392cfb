/*
 * ptb.h — "packet too big" answers for packets the tunnel cannot carry
 * (RFC 9484 §10.1, checklist C16).
 *
 * When masque_conn_send() refuses a packet as larger than a datagram, the
 * agent drops it and writes an ICMP error into the TUN device toward the
 * sending application, so the kernel's path MTU discovery shrinks the
 * packets of that destination: ICMPv4 type 3 code 4 "fragmentation needed"
 * (RFC 792, RFC 1191) with the next-hop MTU, or ICMPv6 type 2 "packet too
 * big" (RFC 4443) with the MTU. The error appears to come from the
 * packet's destination, so it passes reverse-path filtering on the TUN.
 *
 * Pure logic: no I/O, no allocation.
 */
#ifndef ZG_AGENT_PTB_H
#define ZG_AGENT_PTB_H

#include <stddef.h>
#include <stdint.h>

/* Room an answer needs at most: ICMPv4 answers quote up to 576 bytes in
 * all (RFC 1812 §4.3.2.3), ICMPv6 answers up to 1280 (RFC 4443 §2.4 (c)). */
#define PTB_MAX 1280

/* Builds the answer to pkt[0..len) for a path that carries mtu bytes.
 * Returns 0 with the answer's length in *pn; *pn is 0 when no ICMP error
 * may be sent for this packet: an ICMP error itself, a non-first IPv4
 * fragment, an IPv4 packet without DF (a router would fragment it; the
 * caller drops it), or a source or destination an error must not go to or
 * come from (unspecified, multicast, broadcast, loopback) (RFC 1122
 * §3.2.2, RFC 4443 §2.4 (e)). ZG_ERR_MALFORMED when pkt is not an IPv4 or
 * IPv6 packet whose header fits in len; ZG_ERR_BUFSHORT when cap is below
 * PTB_MAX. */
int ptb_build(const uint8_t *pkt, size_t len, uint32_t mtu, uint8_t *out, size_t cap,
	      size_t *pn);

/* The Internet checksum (RFC 1071) of p[0..n) added to sum, folded and
 * complemented; exposed for the tests. */
uint16_t ptb_checksum(const uint8_t *p, size_t n, uint32_t sum);

#endif /* ZG_AGENT_PTB_H */
