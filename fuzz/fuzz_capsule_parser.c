/*
 * Streaming capsule parser: the same input fed whole, one byte at a time and
 * split at a point taken from the data must give the same capsules and the
 * same final result; re-encoding what was parsed and parsing it again must
 * give the same capsules once more.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capsule.h"

#define BUFSZ 512
#define MAXEV 4096

struct events {
	size_t n;
	uint64_t type[MAXEV];
	size_t off[MAXEV], len[MAXEV];
	int err, finish;
	size_t used;
	uint8_t data[1 << 17]; /* last: run() clears only what precedes it */
};

static void record(struct events *e, const struct capsule *c)
{
	if (e->n == MAXEV || e->used + c->len > sizeof(e->data))
		abort(); /* cannot happen: capsules are at least 2 bytes of input */
	e->type[e->n] = c->type;
	e->off[e->n] = e->used;
	e->len[e->n] = c->len;
	if (c->len)
		memcpy(e->data + e->used, c->value, c->len);
	e->used += c->len;
	e->n++;
}

/* Feeds data in pieces: step 0 = whole; else pieces of step bytes, except
 * that a non-zero cut splits the input in exactly two pieces there. */
static void run(const uint8_t *data, size_t size, size_t step, size_t cut,
		struct events *e)
{
	static uint8_t buf[BUFSZ];
	struct capsule_parser cp;
	struct capsule c;
	size_t off = 0;

	memset(e, 0, offsetof(struct events, data));
	capsule_parser_init(&cp, buf, sizeof(buf), CAPSULE_MASK_CONNECT_IP);
	while (off < size) {
		size_t n = cut ? (off == 0 ? cut : size - off) : step ? step
								      : size;
		if (n > size - off)
			n = size - off;
		const uint8_t *p = data + off, *end = p + n;
		int r;
		while ((r = capsule_parser_feed(&cp, &p, end, &c)) == 1)
			record(e, &c);
		if (r < 0) {
			e->err = r;
			break;
		}
		if (p != end)
			abort(); /* 0 promises the input was consumed */
		off += n;
	}
	e->finish = capsule_parser_finish(&cp);
}

static void same(const struct events *a, const struct events *b)
{
	if (a->n != b->n || a->err != b->err || a->finish != b->finish)
		abort();
	for (size_t i = 0; i < a->n; i++)
		if (a->type[i] != b->type[i] || a->len[i] != b->len[i] ||
		    memcmp(a->data + a->off[i], b->data + b->off[i], a->len[i]))
			abort();
}

static struct events whole, bytes, split, again;
static uint8_t reenc[1 << 18];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut = size ? (data[0] % size) : 0;
	uint8_t *w = reenc;

	run(data, size, 0, 0, &whole);
	run(data, size, 1, 0, &bytes);
	same(&whole, &bytes);
	if (cut) {
		run(data, size, 0, cut, &split);
		same(&whole, &split);
	}
	for (size_t i = 0; i < whole.n; i++)
		if (capsule_encode(&w, reenc + sizeof(reenc), whole.type[i],
				   whole.data + whole.off[i], whole.len[i]) != 0)
			abort();
	run(reenc, (size_t)(w - reenc), 0, 0, &again);
	if (again.n != whole.n || again.err != 0 || again.finish != 0)
		abort();
	for (size_t i = 0; i < whole.n; i++)
		if (again.type[i] != whole.type[i] || again.len[i] != whole.len[i] ||
		    memcmp(again.data + again.off[i], whole.data + whole.off[i], whole.len[i]))
			abort();
	return 0;
}
