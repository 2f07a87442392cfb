/*
 * capwr.c — the measure-then-write cursor of the capsule encoders
 * (capwr.h).
 */
#include "capwr.h"

#include <string.h>

#include "varint.h"
#include "zg_err.h"

void capwr_measure(struct capwr *w)
{
	memset(w, 0, sizeof(*w));
	w->measure = 1;
}

void capwr_init(struct capwr *w, uint8_t *out, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->out = out;
	w->cap = out != NULL ? cap : 0;
}

void capwr_put(struct capwr *w, const void *d, size_t n)
{
	if (w->err != 0)
		return;
	if (w->measure) {
		w->n += n;
		return;
	}
	if (n > w->cap - w->n) {
		w->err = ZG_ERR_BUFSHORT;
		return;
	}
	if (n > 0)
		memcpy(w->out + w->n, d, n);
	w->n += n;
}

void capwr_u8(struct capwr *w, uint8_t v)
{
	capwr_put(w, &v, 1);
}

void capwr_u16(struct capwr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	capwr_put(w, b, 2);
}

void capwr_varint(struct capwr *w, uint64_t v)
{
	uint8_t b[8];

	if (v > VARINT_MAX) {
		if (w->err == 0)
			w->err = ZG_ERR_RANGE;
		return;
	}
	capwr_put(w, b, (size_t)(varint_put(b, v) - b));
}

void capwr_vbytes(struct capwr *w, const void *d, size_t n)
{
	capwr_varint(w, n);
	capwr_put(w, d, n);
}
