/*
 * ratelimit.h — token buckets, and per-key buckets under a global cap.
 *
 * Pure: no clock of their own (every call takes "now" in milliseconds from
 * any fixed origin), no I/O. Used where one peer must not use up what
 * every peer shares: the ICMP errors and RSTs the relay's stack generates
 * and its limit audit events are paced per client and globally, so one
 * client's flood of refused packets cannot starve another client's fast
 * refusal.
 */
#ifndef ZG_RATELIMIT_H
#define ZG_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* A token bucket: rate tokens per second, at most burst held. rate 0 means
 * unlimited. Tokens are kept in thousandths so rates below 1/ms add up. */
struct rl_bucket {
	uint32_t rate, burst;
	uint64_t tokens_milli;
	uint64_t last_ms;
};

/* Sets rate and burst and fills the bucket (burst tokens) as of now. */
void rl_bucket_init(struct rl_bucket *b, uint32_t rate, uint32_t burst,
		    uint64_t now);

/* Refills b for the time since its last use; then takes one token.
 * Returns 1 when a token was taken, 0 when b is empty. A clock that goes
 * backwards refills nothing. */
int rl_bucket_take(struct rl_bucket *b, uint64_t now);

/* One key's bucket; hash 0 marks a free slot. */
struct rl_slot {
	uint64_t hash;
	struct rl_bucket b;
};

/* Buckets per key (a client ID) under one global bucket. The table is a
 * fixed array: each key may live in one of two slots (two hash functions),
 * and a new key takes a free slot or evicts the fuller (longer idle) of
 * the two; an evicted key starts again with a full bucket, which the
 * global bucket still bounds. */
struct rl_fair {
	struct rl_bucket global;
	uint32_t rate, burst; /* per key; rate 0 = no per-key limit */
	uint64_t seed;
	struct rl_slot *slots;
	size_t nslots;
	uint64_t evictions;
};

enum rl_result {
	RL_PASS = 0,  /* a token was taken from the key's and the global bucket */
	RL_KEY = 1,   /* the key's own bucket is empty (nothing taken) */
	RL_GLOBAL = 2 /* the global bucket is empty (nothing taken) */
};

/* Prepares f with nslots (>= 2) key slots (allocated here), the per-key
 * rate/burst and the global cap, all buckets full as of now. seed varies
 * the hash so peers cannot aim their keys at one slot. Returns 0,
 * ZG_ERR_INVAL (nslots < 2) or ZG_ERR_NOMEM; free with rl_fair_free(). */
int rl_fair_init(struct rl_fair *f, size_t nslots, uint32_t rate,
		 uint32_t burst, uint32_t global_rate, uint32_t global_burst,
		 uint64_t seed, uint64_t now);

/* Frees the slots. NULL slots (never initialised) are fine. */
void rl_fair_free(struct rl_fair *f);

/* Takes one token for key (len bytes) and one from the global bucket, or
 * neither. Returns an enum rl_result. */
enum rl_result rl_fair_take(struct rl_fair *f, const void *key, size_t len,
			    uint64_t now);

#endif /* ZG_RATELIMIT_H */
