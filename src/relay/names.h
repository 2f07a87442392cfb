/*
 * names.h — addresses learned from DNS answers, bound to the name and the
 * policy rule that allowed them (issue 19).
 *
 * When the DNS service hands client C an answer for name N, allowed by
 * rule R, each A/AAAA address X in it is bound: (C, X) -> (R, N) until the
 * record's TTL, clamped to [floor, cap], runs out. A later flow of C to X
 * then matches R (policy_eval_bound) and its audit line names N; for a
 * split tunnel, X is one of C's learned routes. A client holds at most
 * max_per_client bindings: past it, new addresses are not bound (counted).
 * An address bound again keeps the later expiry and the newest name.
 *
 * Pure data structure: no I/O, the clock is passed in (milliseconds, any
 * origin). Lookup O(1) (hash of client and address), expiry O(bindings)
 * at most once per names_expire() call, routes O(the client's bindings).
 */
#ifndef ZG_RELAY_NAMES_H
#define ZG_RELAY_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "connectip.h"
#include "relay/policy.h"
#include "stack.h"

struct names;

struct names_config {
	uint32_t ttl_floor_ms, ttl_cap_ms;
	uint32_t max_per_client;
};

struct names_binding {
	char rule[POLICY_ID_MAX];
	char name[POLICY_NAME_MAX];
	uint64_t expires_ms;
};

struct names_counts {
	uint64_t bindings; /* gauge: bound now, all clients */
	uint64_t learned;  /* new bindings since start */
	uint64_t expired;  /* bindings that ran out */
	uint64_t cap_hits; /* addresses not bound: the client was at its cap */
};

/* Returns 0 and *pn, ZG_ERR_INVAL (floor above cap), ZG_ERR_NOMEM. */
int names_new(const struct names_config *cfg, struct names **pn);
void names_free(struct names *n);

/* Binds a for client to (rule, name) for ttl_s seconds (clamped) from
 * now_ms. Returns 1 when a is new for the client (a route to add), 0 when
 * it was bound already (refreshed), ZG_ERR_LIMIT at the client's cap,
 * ZG_ERR_INVAL (bad address), ZG_ERR_NOMEM. */
int names_bind(struct names *n, const char *client, const struct stack_addr *a,
	       const char *rule, const char *name, uint32_t ttl_s, uint64_t now_ms);

/* The binding of a for client, or NULL (none, or expired by now_ms). Valid
 * until the next call that changes n. */
const struct names_binding *names_lookup(const struct names *n, const char *client,
					 const struct stack_addr *a, uint64_t now_ms);

/* Removes every binding expired by now_ms; changed(ctx, client) is called
 * once per client that lost some (to withdraw its routes). Returns the
 * earliest expiry left, UINT64_MAX when none. */
uint64_t names_expire(struct names *n, uint64_t now_ms,
		      void (*changed)(void *ctx, const char *client), void *ctx);

/* The client's bound addresses as single-address routes (protocol 0),
 * unsorted. Returns the number written (at most max); *pall (may be NULL)
 * gets the number bound. */
size_t names_routes(const struct names *n, const char *client, struct cip_route *out,
		    size_t max, size_t *pall);

/* Forgets every binding of client. */
void names_forget_client(struct names *n, const char *client);

void names_get_counts(const struct names *n, struct names_counts *c);

#endif /* ZG_RELAY_NAMES_H */
