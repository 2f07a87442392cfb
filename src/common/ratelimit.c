/*
 * ratelimit.c — see ratelimit.h.
 */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

void rl_bucket_init(struct rl_bucket *b, uint32_t rate, uint32_t burst,
		    uint64_t now)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens_milli = (uint64_t)burst * 1000u;
	b->last_ms = now;
}

static void
refill(struct rl_bucket *b, uint64_t now)
{
	uint64_t cap = (uint64_t)b->burst * 1000u;

	if (now > b->last_ms) {
		uint64_t dt = now - b->last_ms;

		/* a long idle time cannot overflow: cap first */
		if (dt >= cap / (b->rate ? b->rate : 1) + 1)
			b->tokens_milli = cap;
		else
			b->tokens_milli += dt * b->rate;
		if (b->tokens_milli > cap)
			b->tokens_milli = cap;
	}
	b->last_ms = now;
}

int rl_bucket_take(struct rl_bucket *b, uint64_t now)
{
	if (b->rate == 0)
		return 1;
	refill(b, now);
	if (b->tokens_milli < 1000)
		return 0;
	b->tokens_milli -= 1000;
	return 1;
}

int rl_fair_init(struct rl_fair *f, size_t nslots, uint32_t rate, uint32_t burst,
		 uint32_t global_rate, uint32_t global_burst, uint64_t seed,
		 uint64_t now)
{
	memset(f, 0, sizeof(*f));
	if (nslots < 2)
		return ZG_ERR_INVAL;
	f->slots = calloc(nslots, sizeof(*f->slots));
	if (f->slots == NULL)
		return ZG_ERR_NOMEM;
	f->nslots = nslots;
	f->rate = rate;
	f->burst = burst;
	f->seed = seed;
	rl_bucket_init(&f->global, global_rate, global_burst, now);
	return 0;
}

void rl_fair_free(struct rl_fair *f)
{
	free(f->slots);
	f->slots = NULL;
	f->nslots = 0;
}

static uint64_t
key_hash(uint64_t seed, const void *key, size_t len)
{
	const uint8_t *p = key;
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ seed;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	/* splitmix64 finaliser: both halves depend on every byte */
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	return h ? h : 1; /* 0 marks a free slot */
}

/* The slot of the key with hash h: its own, else a free or evicted one. */
static struct rl_slot *
slot_for(struct rl_fair *f, uint64_t h, uint64_t now)
{
	struct rl_slot *a = &f->slots[h % f->nslots];
	struct rl_slot *b = &f->slots[(h >> 32 ^ h << 7) % f->nslots];
	struct rl_slot *s;

	if (a->hash == h)
		return a;
	if (b->hash == h)
		return b;
	if (a->hash == 0)
		s = a;
	else if (b->hash == 0)
		s = b;
	else {
		/* evict the one that has recovered more: it lost less */
		refill(&a->b, now);
		refill(&b->b, now);
		s = a->b.tokens_milli >= b->b.tokens_milli ? a : b;
		f->evictions++;
	}
	s->hash = h;
	rl_bucket_init(&s->b, f->rate, f->burst, now);
	return s;
}

enum rl_result
rl_fair_take(struct rl_fair *f, const void *key, size_t len, uint64_t now)
{
	struct rl_slot *s;
	int global_limited = f->global.rate != 0;

	if (global_limited) {
		refill(&f->global, now);
		if (f->global.tokens_milli < 1000)
			return RL_GLOBAL;
	}
	if (f->rate != 0) {
		s = slot_for(f, key_hash(f->seed, key, len), now);
		if (!rl_bucket_take(&s->b, now))
			return RL_KEY;
	}
	if (global_limited)
		f->global.tokens_milli -= 1000;
	return RL_PASS;
}
