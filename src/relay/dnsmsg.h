/*
 * dnsmsg.h — the DNS messages the relay's DNS service reads and writes,
 * through ldns (no hand-written parser): a client's query, the answers the
 * service makes itself (NXDOMAIN, REFUSED, SERVFAIL, truncated), and the
 * addresses and TTLs in an upstream answer. Pure functions over bytes: no
 * I/O, no clock.
 */
#ifndef ZG_RELAY_DNSMSG_H
#define ZG_RELAY_DNSMSG_H

#include <stddef.h>
#include <stdint.h>

#include "relay/policy.h"

#define DNSMSG_RCODE_NOERROR 0
#define DNSMSG_RCODE_SERVFAIL 2
#define DNSMSG_RCODE_NXDOMAIN 3
#define DNSMSG_RCODE_REFUSED 5

#define DNSMSG_TYPE_A 1
#define DNSMSG_TYPE_AAAA 28

/* The UDP payload a client may be sent: its EDNS size, at least 512, at
 * most this (the tunnel MTU 1280 less IPv6 and UDP headers, RFC 9715). */
#define DNSMSG_UDP_MAX 1232

struct dnsmsg_query {
	uint16_t id;
	uint16_t qtype, qclass;
	uint16_t udp_max;           /* 512, or the EDNS size up to DNSMSG_UDP_MAX */
	char name[POLICY_NAME_MAX]; /* canonical (policy_name_canon), or "" */
	int name_ok;                /* 0: the name is not one a policy can name */
};

/* Parses a query: QR 0, opcode QUERY, exactly one question. Returns 0 and
 * *q, or ZG_ERR_MALFORMED (not a DNS message, or not such a query). */
int dnsmsg_parse_query(const uint8_t *msg, size_t len, struct dnsmsg_query *q);

/* An answer to query (its bytes) made here: same ID, question and RD, QR
 * and RA set, rcode, no records; tc sets TC (the real answer did not fit).
 * Returns 0 with a malloc'd message in *pout (the caller frees), or
 * ZG_ERR_MALFORMED, ZG_ERR_NOMEM. */
int dnsmsg_build_reply(const uint8_t *query, size_t qlen, uint8_t rcode, int tc,
		       uint8_t **pout, size_t *poutlen);

struct dnsmsg_addr {
	uint8_t version; /* 4 or 6 */
	uint8_t a[16];
	uint32_t ttl;
};

struct dnsmsg_answer {
	uint16_t id;
	uint8_t rcode;
	int tc;
	uint32_t min_ttl;  /* least TTL of every record (SOA minimum for a
			      negative answer), UINT32_MAX when none */
	size_t naddr;      /* A/AAAA records of the answer section */
	size_t naddr_seen; /* of them all, when more than max */
};

/* Parses an upstream answer: QR 1. The A and AAAA records of the answer
 * section (of any owner: CNAME chains end in them) go to addr[0..max).
 * Returns 0, or ZG_ERR_MALFORMED. */
int dnsmsg_parse_answer(const uint8_t *msg, size_t len, struct dnsmsg_answer *a,
			struct dnsmsg_addr *addr, size_t max);

/* A copy of msg with id and every TTL (except OPT's) lowered by age
 * seconds (at least 0): a cached answer as it is served later. Returns 0
 * and a malloc'd *pout, ZG_ERR_MALFORMED or ZG_ERR_NOMEM. */
int dnsmsg_age(const uint8_t *msg, size_t len, uint16_t id, uint32_t age, uint8_t **pout,
	       size_t *poutlen);

/* The message ID of msg (len >= 2), and setting it in place. */
uint16_t dnsmsg_id(const uint8_t *msg);
void dnsmsg_set_id(uint8_t *msg, uint16_t id);

#endif /* ZG_RELAY_DNSMSG_H */
