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
 *         - id: allow-emr
 *           action: allow
 *           destinations: ["portal.lab.example", "*.emr-vendor.example"]
 *
 * On-prem connectors (issue 22): a top-level section lists each connector
 * the relay admits (certificate CN "connector:<ID>") with the prefixes it
 * may serve; a client rule with "connector: <ID>" (and no destinations,
 * protocols or ports) lets the client reach that connector:
 *
 *   connectors:
 *     hospital-a:
 *       prefixes: ["10.20.0.0/16", "fd20::/48"]
 *   clients:
 *     agent-1:
 *       rules:
 *         - id: emr
 *           action: allow
 *           connector: hospital-a
 *
 * Connector rules never match a flow (policy_eval*, policy_routes skip
 * them); flow rules never give access to a connector.
 *
 * A destination is a CIDR, an exact DNS name, or "*.suffix": every name
 * below suffix, not suffix itself. Names are stored lower-case without a
 * trailing dot; labels are LDH (letters, digits, '-', '_', no leading or
 * trailing '-'), 1-63 bytes, 253 in all; internationalised names must be
 * written as IDNA A-labels ("xn--..."), other non-ASCII is refused. A name
 * matches no address by itself: the relay binds the addresses its DNS
 * service returned for it (policy_eval_bound()).
 *
 * A loaded policy is immutable: reload builds a new one and the owner swaps
 * pointers, so evaluation never sees a half-updated policy. policy_eval()
 * allocates nothing; it runs once per new flow. Complexity: client lookup
 * O(log clients), rules scanned in order, O(rules × destinations).
 * policy_eval_name() costs one hash probe per label of the name, whatever
 * the number of rules or names (a table keyed by client, name or suffix).
 */
#ifndef ZG_RELAY_POLICY_H
#define ZG_RELAY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "connectip.h"

struct policy;

#define POLICY_ID_MAX 64    /* rule and client IDs, including the NUL */
#define POLICY_NAME_MAX 254 /* a DNS name, no trailing dot, with the NUL */

enum policy_action {
	POLICY_DENY = 0,
	POLICY_ALLOW = 1
};

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
 * ZG_ERR_IO (cannot read: "PATH: cannot open: REASON", "PATH: cannot read:
 * REASON", also when the file changed size while read), ZG_ERR_CONFIG (invalid: err holds
 * "file:line:column: field: what is wrong, what was expected"; or path
 * is a directory or another file that is not a regular one), ZG_ERR_NOMEM. */
int policy_load_file(const char *path, struct policy **pp, char *err, size_t errlen);

/* As policy_load_file() for text in memory; name appears in messages. */
int policy_load_buf(const char *name, const char *text, size_t len,
		    struct policy **pp, char *err, size_t errlen);

void policy_free(struct policy *p);

/* Decides a flow of client_id (a client the policy does not list gets the
 * default action, rule "default"). Allocation-free. */
void policy_eval(const struct policy *p, const char *client_id,
		 const struct policy_flow *flow, struct policy_verdict *out);

/* As policy_eval(), but a rule whose id is bound_rule (may be NULL) also
 * matches the flow's destination: the relay found the destination in a DNS
 * answer for one of that rule's names (its protocols and ports still
 * apply, and earlier rules still come first). */
void policy_eval_bound(const struct policy *p, const char *client_id,
		       const struct policy_flow *flow, const char *bound_rule,
		       struct policy_verdict *out);

/* Decides whether client_id may resolve name (any case, trailing dot
 * allowed): the first rule, in order, that names it (exactly, or a "*."
 * suffix it is below) or whose destinations include a whole address
 * family (0.0.0.0/0 or ::/0 — such a rule stands for every name); none:
 * the default action, rule "default". An invalid name is denied with rule
 * "invalid". Allocation-free; *prule_id lives as long as the policy. */
enum policy_action policy_eval_name(const struct policy *p, const char *client_id,
				    const char *name, const char **prule_id);

/* The DNS domains client_id's allow rules name, for split DNS: an exact
 * name as itself, "*.suffix" as suffix; each once, in rule order. Returns
 * 0 with the count in *pn, or ZG_ERR_TOO_LARGE (more than max). */
int policy_client_domains(const struct policy *p, const char *client_id,
			  char out[][POLICY_NAME_MAX], size_t max, size_t *pn);

/* 1 when an allow rule of client_id names a DNS name, else 0. */
int policy_client_has_names(const struct policy *p, const char *client_id);

/* Canonical form of a policy or query name into out (POLICY_NAME_MAX):
 * lower-case, no trailing dot. wildcard: "*." allowed in front (kept).
 * Returns 0, or -1 when it is not a valid name (why: a static message). */
int policy_name_canon(const char *in, int wildcard, char *out, const char **why);

/* Number of names (exact and wildcard) over all rules. */
size_t policy_name_count(const struct policy *p);

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

/* Number of connectors listed under connectors:. */
size_t policy_connector_count(const struct policy *p);

/* 1 when connectors: lists connector_id (without "connector:"), else 0. */
int policy_has_connector(const struct policy *p, const char *connector_id);

/* The prefixes connector_id may serve (its bound), as protocol-0 ranges in
 * file order. Returns 0 with *pn, ZG_ERR_NOTFOUND (not listed) or
 * ZG_ERR_TOO_LARGE (more than max). */
int policy_connector_prefixes(const struct policy *p, const char *connector_id,
			      struct cip_route *out, size_t max, size_t *pn);

/* Whether client_id may reach connector_id: the first connector rule of
 * the client naming it decides (an allow after a deny naming it does not
 * count); none: deny with rule "default", whatever default_action says —
 * a connector is reached only through a rule naming it. *prule_id (may be
 * NULL) lives as long as the policy. Allocation-free. */
enum policy_action policy_client_may_reach_connector(const struct policy *p, const char *client_id,
						     const char *connector_id,
						     const char **prule_id);

/* The connectors client_id may reach (policy_client_may_reach_connector
 * allows), each once, in rule order. Returns 0 with *pn, or
 * ZG_ERR_TOO_LARGE (more than max). */
int policy_client_connectors(const struct policy *p, const char *client_id,
			     char out[][POLICY_ID_MAX], size_t max, size_t *pn);

#endif /* ZG_RELAY_POLICY_H */
