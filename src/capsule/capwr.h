/*
 * capwr.h — the write cursor of the capsule encoders that measure, then
 * write (cipdns.c, zgconn.c).
 *
 * An encoder puts its value through one function twice: first with a
 * measuring cursor (capwr_measure) to learn the length it needs and check
 * the room, then with a writing cursor over the caller's buffer
 * (capwr_init). A writing cursor never writes past its buffer: a put that
 * does not fit writes nothing and sets err, so a measure that disagreed
 * with the write would be an error, not an overrun.
 *
 * No I/O, no allocation.
 */
#ifndef ZG_CAPWR_H
#define ZG_CAPWR_H

#include <stddef.h>
#include <stdint.h>

struct capwr {
	uint8_t *out; /* NULL while measuring */
	size_t cap;   /* room in out */
	size_t n;     /* bytes put so far (written, or counted while measuring) */
	int measure;  /* only count */
	int err;      /* 0, ZG_ERR_BUFSHORT (a put did not fit) or ZG_ERR_RANGE */
};

/* A cursor that only counts what would be put. */
void capwr_measure(struct capwr *w);

/* A cursor that writes into out[0..cap) (out may be NULL when cap is 0). */
void capwr_init(struct capwr *w, uint8_t *out, size_t cap);

/* Puts d[0..n). After an error nothing more is written. */
void capwr_put(struct capwr *w, const void *d, size_t n);

/* Puts one byte; a 16-bit value in network byte order. */
void capwr_u8(struct capwr *w, uint8_t v);
void capwr_u16(struct capwr *w, uint16_t v);

/* Puts v as a QUIC varint (varint.h) in its shortest form; err is
 * ZG_ERR_RANGE when v exceeds VARINT_MAX. */
void capwr_varint(struct capwr *w, uint64_t v);

/* Puts n as a varint, then d[0..n): a length-prefixed string. */
void capwr_vbytes(struct capwr *w, const void *d, size_t n);

#endif /* ZG_CAPWR_H */
