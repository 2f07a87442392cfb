/*
 * routepace.c — see routepace.h.
 */
#include "agent/routepace.h"

#include <string.h>

void routepace_init(struct routepace *p, uint32_t per_s, uint32_t burst, uint64_t now)
{
	memset(p, 0, sizeof(*p));
	rl_bucket_init(&p->b, per_s > 0 ? per_s : 1, burst > 0 ? burst : 1, now);
}

/* When the bucket, as rl_bucket_take() left it at now, holds a token. */
static uint64_t next_token(const struct routepace *p, uint64_t now)
{
	uint64_t need = p->b.tokens_milli >= 1000 ? 0 : 1000 - p->b.tokens_milli;

	return now + (need + p->b.rate - 1) / p->b.rate;
}

int routepace_request(struct routepace *p, uint64_t now, uint64_t *pdue)
{
	p->cnt.requested++;
	if (p->pending) {
		/* the one waiting was never applied: this one replaces it */
		p->cnt.coalesced++;
		*pdue = p->due_ms;
		return 0;
	}
	if (rl_bucket_take(&p->b, now)) {
		p->cnt.applied++;
		return 1;
	}
	p->pending = 1;
	p->due_ms = next_token(p, now);
	*pdue = p->due_ms;
	return 0;
}

int routepace_fire(struct routepace *p, uint64_t now, uint64_t *pdue)
{
	if (!p->pending)
		return 0;
	if (!rl_bucket_take(&p->b, now)) {
		p->due_ms = next_token(p, now);
		*pdue = p->due_ms;
		return 0;
	}
	p->pending = 0;
	p->cnt.applied++;
	return 1;
}

int routepace_pending(const struct routepace *p)
{
	return p->pending;
}
