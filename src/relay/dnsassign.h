/*
 * dnsassign.h — what the relay tells each client about DNS (issue 19.5):
 * one DNS_ASSIGN capsule (draft-ietf-masque-connect-ip-dns, cipdns.h),
 * sent with the 200 right after ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT.
 *
 * It names one nameserver — dns.nameservers, by default the pool's
 * gateway address(es), where the relay answers DNS inside the tunnel — and
 * the internal domains the client should send to it: dns.domains, plus
 * the client's own names from its policy (dnsassign_for_client()'s extra,
 * e.g. policy_client_domains()). The agent turns this into split DNS:
 * routing domains on the TUN link, or a resolver file.
 *
 * Who gets it. RFC 9297 §3.2 makes a receiver skip capsule types it does
 * not know, so any conforming client could take it (test_masque C26) — but
 * not every client conforms (connect-ip-go aborts the stream on an unknown
 * capsule). So by default (auto) the relay sends DNS_ASSIGN only to a client
 * that showed it knows the capsule by sending one itself: zgate-agent sends
 * an empty DNS_ASSIGN ("no DNS configuration of mine", which the draft lets
 * either endpoint send and the relay ignores as configuration) right after
 * the 200, and the relay answers it with its own, after the routes. true
 * sends it with the 200 to every client (for other implementations of the
 * draft), false never.
 *
 * Configuration (relay.yaml):
 *   dns.enabled      auto (default), true, false — as above; in auto and
 *                    true only a client with any domain (dns.domains or its
 *                    policy's names) gets one
 *   dns.domains      list; "." (or "") is the root: every name
 *   dns.nameservers  list of IPv4/IPv6 literals, at most CIPDNS_MAX_ADDRS
 *                    of each; empty = the pool gateways
 */
#ifndef ZG_RELAY_DNSASSIGN_H
#define ZG_RELAY_DNSASSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "cipdns.h"

/* Room for any capsule dnsassign_for_client() writes. */
#define DNSASSIGN_CAPSULE_MAX                         \
	(16 + 2 + 2 * 9 + CIPDNS_MAX_ADDRS * 20 + 2 + \
	 CIPDNS_MAX_DOMAINS * (2 + CIPDNS_NAME_MAX + 1) + 2)

struct dnsassign;

/* Builds the relay's DNS assignment from the configuration strings (as
 * config.c stores lists: comma- or space-separated). gw4 (4 bytes) and gw6
 * (16 bytes, NULL when there is no IPv6 pool) are the pool gateways, used
 * when nameservers is empty. Returns 0 and *pd (also when disabled),
 * ZG_ERR_CONFIG with err naming the key and the bad entry, or
 * ZG_ERR_NOMEM. */
int dnsassign_new(const char *enabled, const char *domains, const char *nameservers,
		  const uint8_t gw4[4], const uint8_t *gw6, struct dnsassign **pd, char *err,
		  size_t errlen);
void dnsassign_free(struct dnsassign *d);

enum dnsassign_when {
	DNSASSIGN_NEVER = 0, /* dns.enabled false (or d NULL) */
	DNSASSIGN_ON_ASK,    /* auto: in answer to the client's DNS_ASSIGN */
	DNSASSIGN_ALWAYS     /* true: with the 200 */
};
enum dnsassign_when dnsassign_when(const struct dnsassign *d);

/* 1 when dns.enabled is not false and dns.domains is set (every client
 * that asks gets a capsule). */
int dnsassign_enabled(const struct dnsassign *d);

/* Writes the whole DNS_ASSIGN capsule for one client into buf[0..cap):
 * the configured domains then extra[0..nextra) (the client's policy
 * names: "*.x.example" is taken as x.example, which covers what is below
 * it), lower-cased, final dot dropped, duplicates removed. Names beyond
 * CIPDNS_MAX_DOMAINS or not valid are left out and counted in *pdropped
 * (may be NULL). Returns 0 with *plen, ZG_ERR_NOTFOUND when nothing is to
 * be sent (dns.enabled false, or no domain at all for this client),
 * ZG_ERR_BUFSHORT. */
int dnsassign_for_client(const struct dnsassign *d, const char *const *extra, size_t nextra,
			 uint8_t *buf, size_t cap, size_t *plen, size_t *pdropped);

/* One line for --check-config and the start-up log, e.g.
 * "on: nameserver 10.100.0.1, domains saas.example, lab.example". */
void dnsassign_summary(const struct dnsassign *d, char *buf, size_t buflen);

#endif /* ZG_RELAY_DNSASSIGN_H */
