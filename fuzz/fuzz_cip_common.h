/*
 * Shared body of the RFC 9484 capsule fuzz targets: decode the input as a
 * capsule value; when it is accepted, encode it, decode the encoding and
 * require the same entries, and encode again to the same bytes (encoding
 * is canonical; the input itself may use longer varints than needed).
 */
#ifndef FUZZ_CIP_COMMON_H
#define FUZZ_CIP_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capsule.h"
#include "connectip.h"
#include "varint.h"

#define FUZZ_MAX 512

/* Strips the capsule header written by an encoder. */
static inline const uint8_t *fuzz_value(const uint8_t *cap, const uint8_t *end,
					uint64_t type, size_t *plen)
{
	uint64_t t, l;

	if (varint_decode(&cap, end, &t) || t != type || varint_decode(&cap, end, &l) ||
	    l != (uint64_t)(end - cap))
		abort();
	*plen = (size_t)l;
	return cap;
}

#define FUZZ_ROUNDTRIP(T, DECODE, ENCODE, TYPE)                               \
	static T a[FUZZ_MAX], b[FUZZ_MAX];                                    \
	static uint8_t e1[FUZZ_MAX * 40], e2[FUZZ_MAX * 40];                  \
	size_t na, nb, vlen;                                                  \
	uint8_t *w1 = e1, *w2 = e2;                                           \
	const uint8_t *v;                                                     \
	memset(a, 0, sizeof(a));                                              \
	memset(b, 0, sizeof(b));                                              \
	if (DECODE(data, size, a, FUZZ_MAX, &na) != 0)                        \
		return 0;                                                     \
	if (ENCODE(&w1, e1 + sizeof(e1), a, na) != 0)                         \
		abort();                                                      \
	v = fuzz_value(e1, w1, TYPE, &vlen);                                  \
	if (DECODE(v, vlen, b, FUZZ_MAX, &nb) != 0 || nb != na ||             \
	    memcmp(a, b, na * sizeof(a[0])) != 0)                             \
		abort();                                                      \
	if (ENCODE(&w2, e2 + sizeof(e2), b, nb) != 0 || w2 - e2 != w1 - e1 || \
	    memcmp(e1, e2, (size_t)(w1 - e1)) != 0)                           \
		abort();                                                      \
	return 0

#endif
