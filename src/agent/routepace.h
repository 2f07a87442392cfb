/*
 * routepace.h — route changes applied at a bounded rate.
 *
 * Each ROUTE_ADVERTISEMENT (and each change of the connectors' prefixes a
 * ZG_CONNECTORS capsule brings) is the full list of routes (C07), and
 * applying one costs the agent netlink work: a kernel look-up for each new
 * route, an add or a delete for each change, then a status file write. A
 * relay (or a connector, through it) sending them back to back would keep
 * the agent doing only that. So changes are applied through a token
 * bucket: ROUTEPACE_BURST at once, then ROUTEPACE_PER_S a second. A
 * change that finds the bucket empty waits for the next token; those that
 * come meanwhile only replace what waits (the latest list wins, and
 * nothing is lost: the last change is always applied, at most
 * 1/ROUTEPACE_PER_S s after it came). A zgate relay paces its own
 * advertisements below this (one per 100 ms per client; 20 ms apart for a
 * few in a row while DNS answers wait for their routes), so it is never
 * slowed; only a peer sending faster is.
 *
 * Pure: no clock of its own (milliseconds from any fixed origin are
 * passed in), no I/O. The caller applies the change when told to and
 * runs a timer for the time it is given.
 */
#ifndef ZG_AGENT_ROUTEPACE_H
#define ZG_AGENT_ROUTEPACE_H

#include <stdint.h>

#include "ratelimit.h"

#define ROUTEPACE_PER_S 20 /* route sets applied a second, after the burst */
#define ROUTEPACE_BURST 40 /* route sets applied back to back */

struct routepace_counters {
	uint64_t requested; /* changes that came */
	uint64_t applied;   /* route sets applied (at once, or when their turn came) */
	uint64_t coalesced; /* changes a later one replaced before their turn */
};

struct routepace {
	struct rl_bucket b;
	int pending;     /* a change waits */
	uint64_t due_ms; /* when it may be applied */
	struct routepace_counters cnt;
};

/* Sets p up with rate per_s (> 0) and burst (>= 1), the bucket full as of
 * now, nothing waiting. */
void routepace_init(struct routepace *p, uint32_t per_s, uint32_t burst, uint64_t now);

/* A change came at now. Returns 1: apply it now (counted applied). 0: it
 * waits (replacing one that waited, counted coalesced); call
 * routepace_fire() at *pdue (the same time as before when one already
 * waited). */
int routepace_request(struct routepace *p, uint64_t now, uint64_t *pdue);

/* The timer a 0 from routepace_request() asked for. Returns 1: apply the
 * change that waits now (counted applied). 0: nothing waits, or it is not
 * due yet (a clock that ran early): then *pdue says when to come back. */
int routepace_fire(struct routepace *p, uint64_t now, uint64_t *pdue);

/* 1 when a change waits. */
int routepace_pending(const struct routepace *p);

#endif /* ZG_AGENT_ROUTEPACE_H */
