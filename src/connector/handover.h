/*
 * handover.h — one relay's tunnels as zgate-connector keeps them across
 * the relay's GOAWAY: which slot to dial, when, and whether the relay
 * counts as up for /ready.
 *
 * A relay has two slots. The current one holds the tunnel in use, or the
 * attempt being made, or waits for the next attempt; the other holds a
 * tunnel that is draining: its relay sent GOAWAY (graceful shutdown).
 *
 *  - A failed attempt, or a tunnel lost without GOAWAY, waits a capped
 *    exponential backoff with jitter (backoff.h); an open tunnel resets it.
 *  - GOAWAY on the current tunnel: it becomes the draining one and keeps
 *    carrying the inner sessions it has until the relay closes it; a new
 *    tunnel is dialled at once in the other slot with the backoff reset
 *    (no penalty: a relay going away is not a failure). Behind a load
 *    balancer that attempt reaches another replica; a lone relay refuses
 *    it while it drains (those refusals back off as usual).
 *  - The draining tunnel closes: the backoff is reset (the relay that was
 *    draining is gone or restarting now) and, when no attempt is under
 *    way, the next one is made at once.
 *  - A tunnel that closes after its GOAWAY without a replacement having
 *    started (a second GOAWAY while an older tunnel still drained) is
 *    dialled again at once as well.
 * Up: a tunnel is open (a draining one included), or the relay is being
 * replaced: a tunnel that had GOAWAY closed less than grace_ns ago and no
 * new one is open yet. A relay that restarts within the grace thus never
 * makes the connector unready.
 *
 * Pure logic: the caller supplies the time (monotonic nanoseconds) and
 * the random numbers, owns the connections and sets the timers.
 */
#ifndef ZG_CONNECTOR_HANDOVER_H
#define ZG_CONNECTOR_HANDOVER_H

#include <stdint.h>

#include "agent/backoff.h"

struct handover {
	struct backoff bo;
	uint64_t grace_ns;
	int cur;                /* the slot in use, being dialled, or to dial */
	uint8_t busy[2];        /* the slot has a connection (dialling, open, draining) */
	uint8_t open[2];        /* its tunnel is open */
	uint8_t goaway[2];      /* its relay sent GOAWAY */
	uint64_t replace_until; /* being replaced until then; 0 = not */
	uint64_t goaways;       /* GOAWAYs received */
};

/* Sets the backoff bounds (backoff_init()) and the grace; no slot busy. */
void handover_init(struct handover *h, uint32_t min_ms, uint32_t max_ms, uint64_t grace_ns);

/* The caller dials now: returns the slot the connection belongs to (the
 * current one, now busy), or -1 when it is busy already (nothing to do). */
int handover_dial(struct handover *h);

/* The tunnel of slot opened: the backoff is reset, no longer replacing. */
void handover_opened(struct handover *h, int slot);

/* The relay sent GOAWAY on slot's tunnel. Returns 1 when a replacement is
 * to be dialled at once (the current slot moved to the free one), 0
 * otherwise. */
int handover_goaway(struct handover *h, int slot);

/* Slot's connection ended at now (closed, refused, or a dial that failed
 * before it started). Returns 1 and *pdelay_ms when the caller dials
 * (handover_dial()) after that delay, replacing any attempt it had
 * scheduled; 0 when the current slot is busy (an attempt or tunnel is
 * under way) and nothing is to be scheduled. rnd is any uniformly random
 * value (the backoff's jitter). */
int handover_closed(struct handover *h, int slot, uint64_t now, uint32_t rnd,
		    uint32_t *pdelay_ms);

/* 1 when the relay counts as up at now (see above). */
int handover_up(const struct handover *h, uint64_t now);

/* Nanoseconds from now until handover_up() may turn 0 without another
 * event (the end of the grace), 0 when it will not. */
uint64_t handover_deadline(const struct handover *h, uint64_t now);

/* "open", "draining (GOAWAY), new tunnel open", "draining (GOAWAY),
 * connecting", "replacing", "connecting": the relay's state for /ready.
 * Never NULL. */
const char *handover_state(const struct handover *h, uint64_t now);

#endif /* ZG_CONNECTOR_HANDOVER_H */
