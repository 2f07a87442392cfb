/*
 * histo.h — a fixed-bucket latency histogram for /metrics.
 *
 * Pure: the caller measures the duration with its own clock and hands it
 * in microseconds. Every histogram shares one set of upper bounds (1 ms to
 * 10 s), fit for both a QUIC handshake and a TCP connect upstream, whose
 * timeouts are 10 s; so the exposition can print them all the same way.
 */
#ifndef ZG_HISTO_H
#define ZG_HISTO_H

#include <stddef.h>
#include <stdint.h>

#define ZG_HISTO_BOUNDS 13

/* The buckets' upper bounds in microseconds, ascending (le="0.001" ...
 * le="10"); a last, implicit bucket is +Inf. */
extern const uint64_t zg_histo_bounds_us[ZG_HISTO_BOUNDS];

struct zg_histo {
	uint64_t n[ZG_HISTO_BOUNDS + 1]; /* observations per bucket (not
					    cumulative); [ZG_HISTO_BOUNDS]
					    = above the largest bound */
	uint64_t count;                  /* observations */
	uint64_t sum_us;                 /* their sum, microseconds */
};

/* Records one duration of us microseconds in h: the first bucket whose
 * bound is >= us (Prometheus' le), the count and the sum. */
void zg_histo_observe(struct zg_histo *h, uint64_t us);

#endif /* ZG_HISTO_H */
