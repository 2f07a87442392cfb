/*
 * dnssvc.h — the relay's DNS service, per client, inside the tunnel
 * (issue 19).
 *
 * Answers UDP and TCP port 53 on the pool's gateway addresses through the
 * stack (stack_service_set: no host socket on 53, no privilege). For each
 * query the client's policy decides the name (policy_eval_name):
 *   - denied: answered here, NXDOMAIN or REFUSED (dns.deny_answer),
 *     audited dns_deny (client, name, qtype, rule);
 *   - allowed: answered from the cache, or forwarded to the upstream
 *     resolvers (dns.upstreams; default the host's resolv.conf) over UDP
 *     from a fresh socket (random source port) per query, over TCP when
 *     the answer is truncated; the next upstream after 2 s; SERVFAIL when
 *     none answers. Audited dns_allow.
 * Each A/AAAA address of an allowed answer is bound to (client, rule,
 * name) in a names table (names.h) for its TTL, clamped: later flows to
 * it match the rule (dnssvc_binding). An answer holding a never-reachable
 * address (loopback, link-local, metadata, the pool, the relay's own:
 * stack_dst_forbidden) is refused whole (REFUSED, dns_deny reason
 * rebinding) and binds nothing.
 * New and expired bindings change the client's learned routes; the owner
 * is told (routes_changed) and builds a complete ROUTE_ADVERTISEMENT
 * including dnssvc_routes(): the gateway addresses (always) and the
 * learned ones. Changes are told at most once per DNSSVC_ROUTE_COALESCE_MS
 * per client, or per DNSSVC_ROUTE_HOLD_MS while answers wait for them.
 * An answer with addresses is sent after the advertisement that holds
 * them (so the client's first connection to the name finds its route):
 * the first change in a window is told at once, before its answer; while
 * a change waits for the window's end, every answer with an address for
 * that client (new, or the same again from the cache or another name) is
 * held (counted in held) until the advertisement, which then comes
 * DNSSVC_ROUTE_HOLD_MS after the last one instead of a whole window.
 * Past DNSSVC_HOLD_MAX answers or DNSSVC_HOLD_MAX_BYTES held for a client,
 * or DNSSVC_HOLD_MAX_BYTES_ALL for all, the routes are told at once. Sent
 * in that order, the two still travel apart (the advertisement on the
 * request stream, the answer in a datagram): a lost packet can reorder
 * them.
 *
 * Bounds: DNSSVC_MAX_PENDING queries in flight, DNSSVC_MAX_PENDING_PER_CLIENT
 * of one client (more: SERVFAIL, counted as overload), the
 * cache at cache_entries answers (oldest evicted), names per client at
 * dns.max_learned_routes.
 */
#ifndef ZG_RELAY_DNSSVC_H
#define ZG_RELAY_DNSSVC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "connectip.h"
#include "histo.h"
#include "relay/names.h"
#include "relay/policy.h"
#include "stack.h"

struct event_base;
struct audit;
struct dnssvc;

#define DNSSVC_MAX_UPSTREAMS 4
#define DNSSVC_MAX_PENDING 1024
#define DNSSVC_MAX_PENDING_PER_CLIENT 64
#define DNSSVC_TIMEOUT_MS 2000
#define DNSSVC_ROUTE_COALESCE_MS 100
#define DNSSVC_ROUTE_HOLD_MS 20
#define DNSSVC_HOLD_MAX 64
#define DNSSVC_HOLD_MAX_BYTES (64u * 1024u)
#define DNSSVC_HOLD_MAX_BYTES_ALL (4u * 1024u * 1024u)

struct dnssvc_config {
	struct sockaddr_storage upstream[DNSSVC_MAX_UPSTREAMS];
	socklen_t upstream_len[DNSSVC_MAX_UPSTREAMS];
	size_t n_upstreams;
	uint8_t deny_rcode; /* DNSMSG_RCODE_NXDOMAIN or _REFUSED */
	struct names_config names;
	uint32_t cache_entries;
	struct stack_addr gw[STACK_SVC_MAX_ADDRS]; /* where the service answers */
	size_t n_gw;
};

struct dnssvc_hooks {
	void *ctx;
	/* the policy in force now (it is swapped on reload) */
	const struct policy *(*policy)(void *ctx);
	/* client's learned routes changed: send it a new advertisement */
	void (*routes_changed)(void *ctx, const char *client);
	/* the audit session_id of a session pointer from the stack (0: none) */
	uint64_t (*session_id)(void *ctx, const void *session);
	/* milliseconds, any origin; NULL = CLOCK_MONOTONIC (tests inject one) */
	uint64_t (*now_ms)(void *ctx);
};

struct dnssvc_counts {
	uint64_t allowed, denied, rebinding, servfail, malformed, overload;
	uint64_t cache_hits, cache_entries, upstream_tcp;
	uint64_t held; /* answers sent after the advertisement of their route */
	struct names_counts names;
	struct zg_histo upstream; /* query sent to answer received */
};

/* Parses dns.upstreams ("addr, [v6]:port, ..."; "" reads the nameservers
 * of resolv_conf, normally "/etc/resolv.conf") into cfg. Returns 0, or
 * ZG_ERR_CONFIG with err naming the bad entry (none found is an error). */
int dnssvc_parse_upstreams(struct dnssvc_config *cfg, const char *list, const char *resolv_conf,
			   char *err, size_t errlen);

struct relay_config;

/* The service's configuration from the relay's dns.* keys (gateway
 * addresses left for the caller). Returns 0 or ZG_ERR_CONFIG (err set). */
int dnssvc_config_build(struct dnssvc_config *dc, const struct relay_config *cfg,
			const char *resolv_conf, char *err, size_t errlen);

/* Starts the service on st (stack_service_set). Returns 0 and *pd,
 * ZG_ERR_INVAL, ZG_ERR_NOMEM. */
int dnssvc_new(struct event_base *base, struct stack *st, struct audit *audit,
	       const struct dnssvc_config *cfg, const struct dnssvc_hooks *hooks,
	       struct dnssvc **pd);

/* Stops the service, cancels queries in flight, frees. NULL is ignored. */
void dnssvc_free(struct dnssvc *d);

/* The binding of dst for client (a flow's destination), or NULL. */
const struct names_binding *dnssvc_binding(struct dnssvc *d, const char *client,
					   const struct stack_addr *dst);

/* Appends to out[0..max) the gateway addresses (as single-address routes)
 * and client's learned addresses; returns how many were written. The
 * caller normalises the whole advertisement. */
size_t dnssvc_routes(struct dnssvc *d, const char *client, struct cip_route *out, size_t max);

void dnssvc_get_counts(const struct dnssvc *d, struct dnssvc_counts *c);

/* Runs what is due by the service's clock: expired bindings (their routes
 * withdrawn), route advertisements held back by the coalescing window
 * and the answers waiting for them.
 * The service's own timers call it; tests with a fake clock call it after
 * moving the clock. */
void dnssvc_tick(struct dnssvc *d);

/* Handles one query as if from the stack (tests, the fuzzer's sibling):
 * the same as a datagram from flow. */
void dnssvc_query(struct dnssvc *d, const struct stack_flow_info *flow, uint64_t conn,
		  const uint8_t *msg, size_t len);

#endif /* ZG_RELAY_DNSSVC_H */
