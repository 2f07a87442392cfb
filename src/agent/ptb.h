/*
 * ptb.h — the ICMP errors the agent writes into its TUN device for packets
 * it will not carry: "packet too big" (RFC 9484 §10.1, checklist C16) and
 * "destination unreachable" (a connector cannot take them, issue 22).
 *
 * One builder makes every such error: from the packet's destination to its
 * source (so it passes reverse-path filtering on the TUN), ICMPv4 for an
 * IPv4 packet, ICMPv6 for an IPv6 one, quoting as much of the packet as
 * fits in the minimum MTU (576 bytes in all for ICMPv4, RFC 1812
 * §4.3.2.3; 1280 for ICMPv6, RFC 4443 §2.4 (c)), both checksums set (the
 * ICMPv6 one over the pseudo header, RFC 8200 §8.1). It applies the rules
 * of RFC 1122 §3.2.2 and RFC 4443 §2.4 (e) and never answers:
 *   - an ICMP or ICMPv6 error (or an ICMP packet too short to tell);
 *   - a fragment other than the first (its upper layer is unknown);
 *   - an IPv6 packet whose extension headers cannot be followed within
 *     the packet (truncated, or more than 8 of them);
 *   - a packet from or to an address an error must not come from or go
 *     to: unspecified, loopback, multicast or (IPv4) broadcast, incl. all
 *     of 0/8, 127/8, 224/4 and 240/4;
 *   - with ICMPv4 "fragmentation needed", a packet without DF: a router
 *     would fragment it, so that error would be wrong (the caller drops it).
 * The kernel receiving a "too big" error learns the path MTU of that
 * destination; an "unreachable" one fails the application's connect() or
 * send() at once.
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

/* Types and codes of the errors built here (RFC 792, RFC 1812 §5.2.7.1,
 * RFC 4443 §3). */
#define PTB_ICMP4_UNREACH 3      /* destination unreachable */
#define PTB_ICMP4_HOST 1         /*   host unreachable */
#define PTB_ICMP4_FRAG_NEEDED 4  /*   fragmentation needed and DF set */
#define PTB_ICMP4_PROHIBITED 13  /*   communication administratively prohibited */
#define PTB_ICMP6_UNREACH 1      /* destination unreachable */
#define PTB_ICMP6_PROHIBITED 1   /*   administratively prohibited */
#define PTB_ICMP6_ADDR_UNREACH 3 /*   address unreachable */
#define PTB_ICMP6_TOO_BIG 2      /* packet too big (code 0) */

/* Builds the ICMP error of type and code whose 4-byte "rest of header"
 * word (after the checksum) is rest, in network order (0 = unused; an MTU
 * for the "too big" errors), answering pkt[0..len): ICMPv4 type and code
 * for an IPv4 packet, ICMPv6 ones for an IPv6 packet. Returns 0 with the
 * answer's length in *pn; *pn is 0 when no error may be sent for this
 * packet (the rules above). ZG_ERR_MALFORMED when pkt is not an IPv4 or
 * IPv6 packet whose header fits in len; ZG_ERR_INVAL when type is not an
 * error type of the packet's family (ICMPv4 3, 4, 5, 11, 12; ICMPv6 1-4);
 * ZG_ERR_BUFSHORT when cap is below PTB_MAX. */
int ptb_icmp_error(const uint8_t *pkt, size_t len, uint8_t type, uint8_t code, uint32_t rest,
		   uint8_t *out, size_t cap, size_t *pn);

/* The "too big" answer to pkt[0..len) for a path that carries mtu bytes:
 * ICMPv4 3/4 with the next-hop MTU (RFC 1191; above 65535 it says 65535)
 * or ICMPv6 2/0 with the MTU. Returns as ptb_icmp_error(). */
int ptb_build(const uint8_t *pkt, size_t len, uint32_t mtu, uint8_t *out, size_t cap,
	      size_t *pn);

/* The "destination unreachable" answer to pkt[0..len): host unreachable
 * (ICMPv4 3/1, ICMPv6 1/3 address unreachable) or, with prohibited,
 * administratively prohibited (ICMPv4 3/13, ICMPv6 1/1). Returns as
 * ptb_icmp_error(). */
int ptb_unreachable(const uint8_t *pkt, size_t len, int prohibited, uint8_t *out, size_t cap,
		    size_t *pn);

/* The Internet checksum (RFC 1071) of p[0..n) added to sum, folded and
 * complemented; exposed for the tests. */
uint16_t ptb_checksum(const uint8_t *p, size_t n, uint32_t sum);

#endif /* ZG_AGENT_PTB_H */
