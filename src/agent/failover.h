/*
 * failover.h — which relay the agent tries next, and when.
 *
 * The policy, for a list of n relays (relaylist.h):
 *  - The agent starts with the first relay and stays on whichever relay
 *    works: there is no going back to an earlier one while it holds.
 *  - When an attempt or a tunnel ends (connection lost, handshake refused
 *    or timed out, relay going away), the agent moves to the next relay in
 *    the list, wrapping around.
 *  - A round tries each relay once. Within a round the next relay is tried
 *    at once (it is another server: the one that failed says nothing about
 *    it), so losing one relay of several costs one failure detection, not
 *    a backoff delay. When every relay of the round failed, a new round
 *    starts after the backoff delay (backoff.h), which grows from round to
 *    round. With one relay this is exactly the single relay's backoff.
 *  - A tunnel that stayed open for stable_ns, or that closed after the
 *    relay's GOAWAY, starts afresh: a new round and the backoff reset.
 *    A tunnel that closed sooner counts as a failure of its relay, so a
 *    relay that accepts and then drops cannot make the agent spin.
 *
 * Pure logic: the caller supplies the time (monotonic nanoseconds) and the
 * random numbers, and sets the timer.
 */
#ifndef ZG_AGENT_FAILOVER_H
#define ZG_AGENT_FAILOVER_H

#include <stddef.h>
#include <stdint.h>

#include "agent/backoff.h"

struct failover {
	struct backoff bo;  /* between rounds */
	size_t n;           /* relays in the list, >= 1 */
	size_t cur;         /* the relay being tried or used */
	size_t failed;      /* relays that failed in this round */
	uint64_t stable_ns; /* a tunnel this old starts afresh when it ends */
	int open;           /* a tunnel is open on cur */
	uint64_t opened_at;
	uint64_t switches; /* moves from one relay to another */
};

/* Sets up for n relays (0 is taken as 1), starting at the first, with the
 * backoff bounds of backoff_init(). */
void failover_init(struct failover *f, size_t n, uint32_t min_ms, uint32_t max_ms,
		   uint64_t stable_ns);

/* A tunnel opened on f->cur at now. */
void failover_opened(struct failover *f, uint64_t now);

/* The attempt or the tunnel on f->cur ended at now; goaway: the relay
 * said it was going away. Moves f->cur to the next relay and returns the
 * delay in milliseconds before trying it: 0 while relays of the round are
 * untried, else a backoff delay picked with rnd (any uniformly random
 * value), which starts a new round. */
uint32_t failover_failed(struct failover *f, uint64_t now, int goaway, uint32_t rnd);

/* Starts a new round at f->cur with the backoff reset (new certificates:
 * what failed before may work now). */
void failover_restart(struct failover *f);

#endif /* ZG_AGENT_FAILOVER_H */
