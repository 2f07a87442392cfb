/*
 * dheap.c — binary min-heap of intrusive deadline nodes (see dheap.h).
 */
#include "dheap.h"

#include <stdlib.h>

#include "zg_err.h"

void dheap_init(struct dheap *h)
{
	h->v = NULL;
	h->n = 0;
	h->cap = 0;
}

void dheap_free(struct dheap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->idx = DHEAP_NONE;
	free(h->v);
	dheap_init(h);
}

void dheap_node_init(struct dheap_node *x)
{
	x->at = 0;
	x->idx = DHEAP_NONE;
}

int dheap_reserve(struct dheap *h, size_t n)
{
	struct dheap_node **v;
	size_t cap = h->cap ? h->cap : 16;

	if (n <= h->cap)
		return 0;
	while (cap < n) {
		if (cap > SIZE_MAX / 2 / sizeof(*v))
			return ZG_ERR_NOMEM;
		cap *= 2;
	}
	v = realloc(h->v, cap * sizeof(*v));
	if (v == NULL)
		return ZG_ERR_NOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

static void place(struct dheap *h, size_t i, struct dheap_node *x)
{
	h->v[i] = x;
	x->idx = i;
}

static void up(struct dheap *h, size_t i)
{
	struct dheap_node *x = h->v[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (h->v[p]->at <= x->at)
			break;
		place(h, i, h->v[p]);
		i = p;
	}
	place(h, i, x);
}

static void down(struct dheap *h, size_t i)
{
	struct dheap_node *x = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1]->at < h->v[c]->at)
			c++;
		if (x->at <= h->v[c]->at)
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, x);
}

int dheap_set(struct dheap *h, struct dheap_node *x, uint64_t at)
{
	uint64_t old = x->at;

	if (x->idx == DHEAP_NONE) {
		if (h->n == h->cap && dheap_reserve(h, h->n + 1) != 0)
			return ZG_ERR_NOMEM;
		x->at = at;
		place(h, h->n++, x);
		up(h, x->idx);
		return 0;
	}
	x->at = at;
	if (at < old)
		up(h, x->idx);
	else
		down(h, x->idx);
	return 0;
}

void dheap_del(struct dheap *h, struct dheap_node *x)
{
	size_t i = x->idx;
	struct dheap_node *last;

	if (i == DHEAP_NONE || i >= h->n || h->v[i] != x)
		return;
	x->idx = DHEAP_NONE;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	if (i > 0 && h->v[(i - 1) / 2]->at > last->at)
		up(h, i);
	else
		down(h, i);
}

struct dheap_node *dheap_top(const struct dheap *h)
{
	return h->n ? h->v[0] : NULL;
}

struct dheap_node *dheap_pop_due(struct dheap *h, uint64_t now)
{
	struct dheap_node *x = dheap_top(h);

	if (x == NULL || x->at > now)
		return NULL;
	dheap_del(h, x);
	return x;
}

int dheap_pending(const struct dheap_node *x)
{
	return x->idx != DHEAP_NONE;
}
