/*
 * pkt.h — IPv4/IPv6 packet parsing and the few packets the stack builds
 * itself (ICMP errors, TCP RST, UDP datagrams, echo replies).
 *
 * Pure functions over byte buffers: no I/O, no allocation, no lwIP.
 */
#ifndef ZG_STACK_PKT_H
#define ZG_STACK_PKT_H

#include <stddef.h>
#include <stdint.h>

#include "cksum.h"

#include "stack.h"

#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10

#define PKT_ICMP4_ECHO_REPLY 0
#define PKT_ICMP4_UNREACH 3
#define PKT_ICMP4_ECHO 8
#define PKT_ICMP6_UNREACH 1
#define PKT_ICMP6_ECHO 128
#define PKT_ICMP6_ECHO_REPLY 129

/* ICMP destination-unreachable codes, by meaning. */
enum pkt_unreach {
	PKT_UNREACH_ADMIN, /* v4 3/13, v6 1/1 */
	PKT_UNREACH_HOST,  /* v4 3/1,  v6 1/3 */
	PKT_UNREACH_PORT   /* v4 3/3,  v6 1/4 */
};

/* Maximum IPv6 extension headers walked before giving up (C21). */
#define PKT_MAX_EXT_HEADERS 8

struct pkt_info {
	uint8_t version;
	struct stack_addr src, dst;
	uint8_t proto;    /* upper-layer protocol after extension headers */
	uint8_t fragment; /* 1: a fragment (not reassembled) */
	size_t len;       /* IP total length (<= buffer length) */
	size_t l4_off;    /* offset of the upper-layer header */
	size_t l4_len;    /* bytes from l4_off to len */
	/* TCP/UDP */
	uint16_t sport, dport;
	/* TCP */
	uint8_t tcp_flags;
	uint32_t tcp_seq, tcp_ack;
	size_t tcp_payload; /* payload bytes of the segment */
	/* ICMP / ICMPv6 */
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id, icmp_seq; /* echo only */
	/* payload of UDP and ICMP echo (after the 8-byte header) */
	size_t payload_off, payload_len;
};

/* 1 when the upper-layer checksum of a packet pkt_parse() parsed into pi
 * is right (the pseudo header included, but for ICMPv4), else 0: for a
 * TCP segment parsed without check_tcp. */
int pkt_l4_csum_ok(const uint8_t *pkt, const struct pkt_info *pi);

/* Parses pkt into *pi, walking IPv6 extension headers to the upper layer.
 * Checks lengths, the IPv4 header checksum and, for UDP and ICMP, the
 * upper-layer checksum; TCP checksums are checked only when check_tcp.
 * Returns 0, ZG_ERR_VERSION (not IPv4/IPv6) or ZG_ERR_MALFORMED. */
int pkt_parse(const uint8_t *pkt, size_t len, int check_tcp,
	      struct pkt_info *pi);

/* 1 if a is in a never-reachable range: unspecified, loopback, link-local
 * (169.254/16 and fe80::/10, where cloud metadata lives), the other cloud
 * metadata addresses (100.100.100.200, fd00:ec2::254), multicast, limited
 * broadcast and 240/4, 0/8, IPv4-mapped ::ffff:0:0/96 and IPv4-compatible
 * ::/96 (both reach IPv4 around the IPv4 rules), and NAT64 64:ff9b::/96
 * addresses whose embedded IPv4 address is itself never reachable. */
int pkt_addr_never_reachable(const struct stack_addr *a);

/* 1 and the IPv4 address in *v4 when a is in the NAT64 well-known prefix
 * 64:ff9b::/96 (RFC 6052), which a NAT64 gateway on the relay's path
 * translates to that IPv4 address; else 0. */
int pkt_v6_embedded_v4(const struct stack_addr *a, struct stack_addr *v4);

/* The builders write one IP packet into out (cap bytes) and return its
 * length, or 0 when it does not fit or the input cannot be answered. */

/* ICMP destination unreachable quoting the offending packet orig (as much
 * as fits in mtu), from the offending packet's destination to its source. */
size_t pkt_build_unreach(uint8_t *out, size_t cap, size_t mtu,
			 const uint8_t *orig, const struct pkt_info *pi,
			 enum pkt_unreach why);

/* TCP RST answering segment pi (RFC 9293 3.10.7.1 rules for seq/ack). */
size_t pkt_build_rst(uint8_t *out, size_t cap, const struct pkt_info *pi);

/* UDP datagram src:sport -> dst:dport with payload. */
size_t pkt_build_udp(uint8_t *out, size_t cap, const struct stack_addr *src,
		     uint16_t sport, const struct stack_addr *dst,
		     uint16_t dport, const uint8_t *data, size_t len);

/* ICMP/ICMPv6 echo reply src -> dst; data is what follows id and seq. */
size_t pkt_build_echo_reply(uint8_t *out, size_t cap,
			    const struct stack_addr *src,
			    const struct stack_addr *dst, uint16_t id,
			    uint16_t seq, const uint8_t *data, size_t len);

/* Checksums: cksum_add()/cksum_fold() (src/common/cksum.h). The
 * pseudo-header sum for an upper-layer checksum, to continue with
 * cksum_add(). */
uint32_t pkt_csum_pseudo(const struct stack_addr *src,
			 const struct stack_addr *dst, uint8_t proto,
			 size_t l4_len);

#endif /* ZG_STACK_PKT_H */
