/*
 * fnv.h — FNV-1a (Fowler–Noll–Vo), the project's one non-cryptographic
 * string and byte hash: hash tables (sessions, DNS gate, audit buckets,
 * metrics series, virtual addresses) and the placements that must be the
 * same on every relay and every restart (ipam's first slot, zgate-api's
 * search start), so the constants and the byte order are fixed here.
 * Not for anything an attacker must not steer: tables keyed by peer input
 * bound their chains or use SipHash (stack_hash.c).
 */
#ifndef ZG_FNV_H
#define ZG_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV32_INIT 2166136261u /* FNV-1a's 32-bit offset basis */
/* NOT FNV-1a's 64-bit offset basis (14695981039346656037): its first 19
 * digits, as every 64-bit use in this project has always had it. It hashes
 * as well, and ipam's placements (the same ID on the same address on every
 * relay, after every restart and upgrade) depend on it: do not "fix" it. */
#define FNV64_INIT UINT64_C(1469598103934665603)

/* One step: v xor-ed in, then multiplied by the prime (v is a byte for
 * the standard hash; fnv64_mix also takes a wider value as one step). */
static inline uint32_t fnv32_mix(uint32_t h, uint32_t v)
{
	return (h ^ v) * 16777619u;
}

static inline uint64_t fnv64_mix(uint64_t h, uint64_t v)
{
	return (h ^ v) * UINT64_C(1099511628211);
}

/* h continued over p[0..n). */
static inline uint32_t fnv32_bytes(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n-- > 0)
		h = fnv32_mix(h, *b++);
	return h;
}

static inline uint64_t fnv64_bytes(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n-- > 0)
		h = fnv64_mix(h, *b++);
	return h;
}

/* The hash of a NUL-terminated string (its bytes, not the NUL). */
static inline uint32_t fnv32_str(const char *s)
{
	uint32_t h = FNV32_INIT;

	for (; *s != '\0'; s++)
		h = fnv32_mix(h, (uint8_t)*s);
	return h;
}

static inline uint64_t fnv64_str(const char *s)
{
	uint64_t h = FNV64_INIT;

	for (; *s != '\0'; s++)
		h = fnv64_mix(h, (uint8_t)*s);
	return h;
}

#endif /* ZG_FNV_H */
