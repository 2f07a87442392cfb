/*
 * varint.h — QUIC variable-length integers (RFC 9000 §16).
 *
 * The two most significant bits of the first byte give the length (1, 2, 4
 * or 8 bytes); the rest is the value in network byte order, so values up to
 * 2^62-1 fit. Encoders always write the shortest form; the decoder accepts
 * any form, as the RFC allows.
 */
#ifndef ZG_VARINT_H
#define ZG_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define VARINT_MAX ((UINT64_C(1) << 62) - 1)

/* Returns the shortest encoded length of v (1, 2, 4 or 8), or 0 when v
 * exceeds VARINT_MAX and cannot be encoded. */
size_t varint_len(uint64_t v);

/* Returns the encoded length announced by a first byte b (1, 2, 4 or 8). */
size_t varint_len_from_first(uint8_t b);

/* Writes v in its shortest form at p and returns p advanced past it. The
 * caller guarantees v <= VARINT_MAX and varint_len(v) bytes of room. */
uint8_t *varint_put(uint8_t *p, uint64_t v);

/* Checked encoder: writes v at *pp and advances *pp. Returns 0,
 * ZG_ERR_RANGE when v > VARINT_MAX, or ZG_ERR_BUFSHORT when fewer than
 * varint_len(v) bytes remain before end (nothing is written then). */
int varint_encode(uint8_t **pp, const uint8_t *end, uint64_t v);

/* Reads one varint from *pp, never past end. Returns 0 with the value in
 * *pv and *pp advanced, or ZG_ERR_TRUNCATED (nothing moved) when the input
 * ends inside the integer. */
int varint_decode(const uint8_t **pp, const uint8_t *end, uint64_t *pv);

#endif /* ZG_VARINT_H */
