/*
 * tungro.h — what the agent writes to its TUN device in one pass of the
 * event loop, with consecutive TCP segments of a flow coalesced into one
 * GSO packet (a virtio_net_hdr with gso_type TCPV4/TCPV6, as Linux's own
 * GRO would build). The kernel then takes tens of segments in one write(2)
 * and hands them to the receiving TCP as one; per-packet writes were the
 * agent's largest cost in a download.
 *
 * The TUN device must be opened with IFF_VNET_HDR (10-byte header, host
 * byte order: legacy virtio). Every item starts with that header; items
 * that are not coalesced carry an all-zero one (no GSO, checksum complete).
 *
 * Segments merge into an open item when they belong to the same IPv4 (no
 * options, not fragmented) or IPv6 (no extension headers) TCP flow, follow
 * it in sequence, carry only ACK (the last may add PSH), carry valid
 * checksums (the kernel trusts the merged item's partial one: a damaged
 * segment stays alone, for the kernel to drop), and match its header
 * fields (TOS/traffic class, TTL/hop limit, DF, ACK number, window, the
 * reserved and AE bits, TCP options byte for byte); every segment but the
 * last has the first's
 * payload size; at most TUNGRO_SEGS segments and 65535 bytes per item.
 * Anything else is passed through unchanged, in order within its flow.
 *
 * Memory is fixed at tungro_new(): TUNGRO_ARENA bytes, TUNGRO_ITEMS items.
 */
#ifndef ZG_AGENT_TUNGRO_H
#define ZG_AGENT_TUNGRO_H

#include <stddef.h>
#include <stdint.h>

#define TUNGRO_VNET_LEN 10
#define TUNGRO_ITEMS 128
#define TUNGRO_SEGS 64
#define TUNGRO_ARENA (2u * 1024 * 1024)

/* virtio_net_hdr fields (linux/virtio_net.h) */
#define TUNGRO_F_NEEDS_CSUM 1
#define TUNGRO_GSO_NONE 0
#define TUNGRO_GSO_TCPV4 1
#define TUNGRO_GSO_TCPV6 4
#define TUNGRO_GSO_ECN 0x80

struct tungro;

/* Returns a new, empty batch, or NULL without memory. */
struct tungro *tungro_new(void);
void tungro_free(struct tungro *g);

/* Adds one IP packet of len bytes (1..65535). Returns 0, or ZG_ERR_LIMIT
 * when the batch is full: write it out (tungro_count/tungro_item), reset
 * it and add again. */
int tungro_add(struct tungro *g, const uint8_t *pkt, size_t len);

/* Items in the batch. tungro_item() finishes item i for writing (no more
 * packets join it): *plen bytes at the returned address, virtio_net_hdr +
 * IP packet; *pnseg (may be NULL) is the number of packets it carries,
 * tungro_item_bytes() their IP bytes as they were added.
 * Valid until the next reset. */
size_t tungro_count(const struct tungro *g);
const uint8_t *tungro_item(struct tungro *g, size_t i, size_t *plen, unsigned *pnseg);
size_t tungro_item_bytes(const struct tungro *g, size_t i);

/* Empties the batch. */
void tungro_reset(struct tungro *g);

/* The other direction. With TSO offered (TUNSETOFFLOAD TUN_F_CSUM |
 * TUN_F_TSO4 | TUN_F_TSO6) one read returns a virtio_net_hdr and up to
 * 64 KiB of one TCP flow. tungro_split() turns buf (len bytes, as read)
 * into IP packets with complete checksums, calling fn for each in order:
 * a GSO packet becomes gso_size segments (sequence numbers and IPv4 IDs
 * advanced, FIN/PSH on the last only, CWR on the first only); a packet
 * with a partial checksum gets it completed. out (outlen bytes, at least
 * 65535) holds each packet while fn runs. Returns the number of packets,
 * or ZG_ERR_MALFORMED for a header that does not match the packet (then
 * fn was not called). */
typedef void (*tungro_fn)(const uint8_t *pkt, size_t len, void *arg);
int tungro_split(const uint8_t *buf, size_t len, uint8_t *out, size_t outlen, tungro_fn fn,
		 void *arg);

#endif /* ZG_AGENT_TUNGRO_H */
