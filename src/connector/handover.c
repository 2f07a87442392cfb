/* handover.c — see handover.h. */
#include "connector/handover.h"

void handover_init(struct handover *h, uint32_t min_ms, uint32_t max_ms, uint64_t grace_ns)
{
	backoff_init(&h->bo, min_ms, max_ms);
	h->grace_ns = grace_ns;
	h->cur = 0;
	for (int i = 0; i < 2; i++)
		h->busy[i] = h->open[i] = h->goaway[i] = 0;
	h->replace_until = 0;
	h->goaways = 0;
}

int handover_dial(struct handover *h)
{
	if (h->busy[h->cur])
		return -1;
	h->busy[h->cur] = 1;
	return h->cur;
}

void handover_opened(struct handover *h, int slot)
{
	h->open[slot & 1] = 1;
	backoff_reset(&h->bo);
	h->replace_until = 0;
}

int handover_goaway(struct handover *h, int slot)
{
	int other = !h->cur;

	slot &= 1;
	if (h->goaway[slot])
		return 0;
	h->goaway[slot] = 1;
	h->goaways++;
	if (slot != h->cur || h->busy[other])
		return 0; /* already the draining one, or an older one still drains */
	h->cur = other;
	backoff_reset(&h->bo);
	return 1;
}

int handover_closed(struct handover *h, int slot, uint64_t now, uint32_t rnd,
		    uint32_t *pdelay_ms)
{
	int had_goaway;

	slot &= 1;
	had_goaway = h->goaway[slot];
	h->busy[slot] = h->open[slot] = h->goaway[slot] = 0;
	if (had_goaway && !h->open[!slot])
		h->replace_until = now + h->grace_ns;
	if (slot != h->cur) {
		/* a draining tunnel ended */
		if (h->busy[h->cur] && h->goaway[h->cur]) {
			/* the current one is draining too: replace it now */
			h->cur = slot;
		} else if (h->busy[h->cur]) {
			/* the replacement is being dialled, or open: should this
			 * attempt fail, the next one comes soon */
			backoff_reset(&h->bo);
			return 0;
		}
		backoff_reset(&h->bo);
		*pdelay_ms = 0;
		return 1;
	}
	if (had_goaway) {
		backoff_reset(&h->bo);
		*pdelay_ms = 0;
		return 1;
	}
	*pdelay_ms = backoff_next(&h->bo, rnd);
	return 1;
}

int handover_up(const struct handover *h, uint64_t now)
{
	return h->open[0] || h->open[1] || (h->replace_until != 0 && now < h->replace_until);
}

uint64_t handover_deadline(const struct handover *h, uint64_t now)
{
	if (h->open[0] || h->open[1] || h->replace_until == 0 || now >= h->replace_until)
		return 0;
	return h->replace_until - now;
}

const char *handover_state(const struct handover *h, uint64_t now)
{
	int cur = h->cur, other = !h->cur;

	if (h->busy[other] && h->goaway[other])
		return h->open[cur] ? "draining (GOAWAY), new tunnel open"
				    : "draining (GOAWAY), connecting";
	if (h->open[cur])
		return h->goaway[cur] ? "open (GOAWAY received)" : "open";
	if (h->replace_until != 0 && now < h->replace_until)
		return "replacing after GOAWAY";
	return "connecting";
}
