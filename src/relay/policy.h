/*
 * policy.h — per-client, first-match, default-deny access policy.
 *
 *   version: 1
 *   default_action: deny            # allow | deny (default deny)
 *   clients:                        # key: client ID = certificate CN
 *     agent-1:
 *       rules:                      # first match wins
 *         - id: allow-saas
 *           action: allow
 *           destinations: ["203.0.113.0/24", "2001:db8::/32"]
 *           protocols: [tcp, udp]   # tcp | udp | icmp | any (default any)
 *           ports: ["443", "8000-8100"]   # default all; tcp/udp only
 *
 * A loaded policy is immutable: reload builds a new one and the owner swaps
 * pointers, so evaluation never sees a half-updated policy. policy_eval()
 * allocates nothing; it runs once per new flow. Complexity: client lookup
 * O(log clients), rules scanned in order, O(rules × destinations).
 */
#ifndef ZG_RELAY_POLICY_H
#define ZG_RELAY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "connectip.h"

struct policy;

#define POLICY_ID_MAX 64 /* rule and client IDs, including the NUL */

enum policy_action { POLICY_DENY = 0, POLICY_ALLOW = 1 };

/* One new flow. Addresses are 4 (version 4) or 16 bytes in a[16]. For
 * ICMP, sport/dport are ignored. */
struct policy_flow {
	uint8_t version;
	uint8_t src[16];
	uint8_t dst[16];
	uint8_t proto; /* IP protocol number: 6 tcp, 17 udp, 1/58 icmp */
	uint16_t sport, dport;
};

struct policy_verdict {
	enum policy_action action;
	const char *rule_id; /* the matching rule's id, or "default"; valid
				as long as the policy */
};

/* Parses a policy file. Returns 0 and *pp (free with policy_free), or
 * ZG_ERR_IO (cannot read), ZG_ERR_CONFIG (invalid: err holds
 * "file:line:column: field: what is wrong, what was expected"),
 * ZG_ERR_NOMEM. */
int policy_load_file(const char *path, struct policy **pp, char *err, size_t errlen);

/* As policy_load_file() for text in memory; name appears in messages. */
int policy_load_buf(const char *name, const char *text, size_t len,
		    struct policy **pp, char *err, size_t errlen);

void policy_free(struct policy *p);

/* Decides a flow of client_id (a client the policy does not list gets the
 * default action, rule "default"). Allocation-free. */
void policy_eval(const struct policy *p, const char *client_id,
		 const struct policy_flow *flow, struct policy_verdict *out);

/* The destinations client_id may reach, as a valid ROUTE_ADVERTISEMENT
 * (RFC 9484 §4.7.3: sorted, no overlap, protocol-0 ranges not overlapping
 * others): each allow rule's destinations, minus what an earlier deny rule
 * refuses for every protocol and port that allow rule covers; with
 * default_action allow, everything not so refused. A range carries the
 * rule's protocol when it allows exactly one (ICMP as 1 for IPv4, 58 for
 * IPv6), else 0. The result may over-state what a port-restricted rule
 * allows (routes carry no ports) but never under-states it.
 * Returns 0 with the count in *pn (0: the client may reach nothing, the
 * relay answers 403), ZG_ERR_TOO_LARGE (more than max ranges) or
 * ZG_ERR_NOMEM. */
int policy_routes(const struct policy *p, const char *client_id,
		  struct cip_route *out, size_t max, size_t *pn);

/* Number of clients listed, and of rules over all clients. */
size_t policy_client_count(const struct policy *p);
size_t policy_rule_count(const struct policy *p);

/* 1 when the policy lists client_id. */
int policy_has_client(const struct policy *p, const char *client_id);

/* The default action. */
enum policy_action policy_default_action(const struct policy *p);

#endif /* ZG_RELAY_POLICY_H */
