/*
 * backoff.h — the agent's reconnect schedule: capped exponential backoff
 * with jitter.
 *
 * Attempt k (from 0) waits a delay drawn from [c/2, c] where
 * c = min(max, min * 2^k). With the defaults (min 500 ms, max 30 s) the
 * first retry comes within half a second to a second, and a relay that
 * stays away is asked at most every 15-30 s; the jitter keeps many agents
 * that lost the same relay from coming back in step.
 *
 * Pure logic: the caller supplies the random numbers.
 */
#ifndef ZG_AGENT_BACKOFF_H
#define ZG_AGENT_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint32_t min_ms;  /* ceiling of the first delay */
	uint32_t max_ms;  /* largest ceiling */
	unsigned attempt; /* delays handed out since the last reset */
};

/* Sets the bounds (min_ms >= 1, max_ms >= min_ms; other values are
 * clamped to them) and resets. */
void backoff_init(struct backoff *b, uint32_t min_ms, uint32_t max_ms);

/* Starts again from the first delay (after a tunnel that held). */
void backoff_reset(struct backoff *b);

/* The ceiling c of the next delay, without consuming an attempt. */
uint32_t backoff_ceiling(const struct backoff *b);

/* Returns the next delay in milliseconds, in [c/2, c] (c as above) and
 * picked by rnd (any uniformly random 32-bit value), and counts the
 * attempt. */
uint32_t backoff_next(struct backoff *b, uint32_t rnd);

#endif /* ZG_AGENT_BACKOFF_H */
