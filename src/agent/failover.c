/* failover.c — see failover.h. */
#include "agent/failover.h"

void failover_init(struct failover *f, size_t n, uint32_t min_ms, uint32_t max_ms,
		   uint64_t stable_ns)
{
	backoff_init(&f->bo, min_ms, max_ms);
	f->n = n ? n : 1;
	f->cur = 0;
	f->failed = 0;
	f->stable_ns = stable_ns;
	f->open = 0;
	f->opened_at = 0;
	f->switches = 0;
}

void failover_opened(struct failover *f, uint64_t now)
{
	f->open = 1;
	f->opened_at = now;
}

uint32_t failover_failed(struct failover *f, uint64_t now, int goaway, uint32_t rnd)
{
	int held = f->open && now - f->opened_at >= f->stable_ns;

	if (goaway || held)
		failover_restart(f);
	f->open = 0;
	f->failed++;
	if (f->n > 1) {
		f->cur = (f->cur + 1) % f->n;
		f->switches++;
	}
	if (f->failed < f->n)
		return 0;
	f->failed = 0;
	return backoff_next(&f->bo, rnd);
}

void failover_restart(struct failover *f)
{
	f->failed = 0;
	backoff_reset(&f->bo);
}
