#include "agent/backoff.h"

void backoff_init(struct backoff *b, uint32_t min_ms, uint32_t max_ms)
{
	b->min_ms = min_ms ? min_ms : 1;
	b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
	b->attempt = 0;
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}

uint32_t backoff_ceiling(const struct backoff *b)
{
	uint64_t c = b->min_ms;

	/* Doubling stops once the cap is reached, so attempt may grow
	 * without bound and c never overflows. */
	for (unsigned i = 0; i < b->attempt && c < b->max_ms; i++)
		c *= 2;
	return c > b->max_ms ? b->max_ms : (uint32_t)c;
}

uint32_t backoff_next(struct backoff *b, uint32_t rnd)
{
	uint32_t c = backoff_ceiling(b), lo = c / 2, span = c - lo;

	if (b->attempt < 64)
		b->attempt++;
	/* span + 1 values: lo..c inclusive */
	return lo + (uint32_t)((uint64_t)rnd % ((uint64_t)span + 1));
}
