/* sendq.c — see sendq.h. */
#include "masque/sendq.h"

#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

struct sendq_chunk {
	struct sendq_chunk *next;
	size_t len; /* bytes written */
	uint8_t data[SENDQ_CHUNK];
};

void sendq_init(struct sendq *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	q->cap = cap;
}

void sendq_free(struct sendq *q)
{
	struct sendq_chunk *c, *n;

	for (c = q->head; c != NULL; c = n) {
		n = c->next;
		free(c);
	}
	sendq_init(q, q->cap);
}

size_t sendq_room(const struct sendq *q)
{
	return q->held >= q->cap ? 0 : q->cap - q->held;
}

int sendq_append(struct sendq *q, const uint8_t *const *data, const size_t *len, size_t n)
{
	size_t total = 0, i, need, room;
	struct sendq_chunk *first = NULL, *last = NULL, *c;

	for (i = 0; i < n; i++)
		total += len[i];
	if (total > sendq_room(q))
		return ZG_ERR_LIMIT;
	/* Allocate every chunk needed first, so a failure changes nothing. */
	room = q->tail != NULL ? SENDQ_CHUNK - q->tail->len : 0;
	need = total > room ? total - room : 0;
	while (need > 0) {
		c = malloc(sizeof(*c));
		if (c == NULL) {
			while (first != NULL) {
				c = first->next;
				free(first);
				first = c;
			}
			return ZG_ERR_NOMEM;
		}
		c->next = NULL;
		c->len = 0;
		if (last != NULL)
			last->next = c;
		else
			first = c;
		last = c;
		need -= need > SENDQ_CHUNK ? SENDQ_CHUNK : need;
	}
	if (first != NULL) {
		if (q->tail != NULL) {
			q->tail->next = first;
		} else {
			q->head = first;
			q->head_off = 0;
			q->unsent = first;
			q->unsent_off = 0;
		}
	}
	c = q->tail != NULL ? q->tail : first;
	if (last != NULL)
		q->tail = last;
	for (i = 0; i < n; i++) {
		const uint8_t *p = data[i];
		size_t left = len[i];

		while (left > 0) {
			size_t k;

			if (c->len == SENDQ_CHUNK)
				c = c->next;
			k = SENDQ_CHUNK - c->len;
			if (k > left)
				k = left;
			memcpy(c->data + c->len, p, k);
			c->len += k;
			p += k;
			left -= k;
		}
	}
	q->held += total;
	return ZG_OK;
}

size_t sendq_next(struct sendq *q, const uint8_t **ptr, size_t *len, size_t max)
{
	struct sendq_chunk *c = q->unsent;
	size_t k = 0;

	while (c != NULL && k < max) {
		if (q->unsent_off < c->len) {
			ptr[k] = c->data + q->unsent_off;
			len[k] = c->len - q->unsent_off;
			k++;
			q->unsent_off = c->len;
		}
		if (c->len < SENDQ_CHUNK || c->next == NULL)
			break;
		c = c->next;
		q->unsent = c;
		q->unsent_off = 0;
	}
	return k;
}

size_t sendq_unsent(const struct sendq *q)
{
	const struct sendq_chunk *c;
	size_t n = 0;

	for (c = q->unsent; c != NULL; c = c->next)
		n += c->len - (c == q->unsent ? q->unsent_off : 0);
	return n;
}

int sendq_ack(struct sendq *q, size_t n)
{
	if (n > q->held - sendq_unsent(q))
		return ZG_ERR_RANGE;
	q->held -= n;
	while (n > 0) {
		struct sendq_chunk *c = q->head;
		size_t k = c->len - q->head_off;

		if (k > n || c->len < SENDQ_CHUNK) {
			q->head_off += n;
			break;
		}
		/* A full chunk entirely acknowledged: everything in it was
		 * offered, so the unsent cursor is at its end or beyond. */
		n -= k;
		q->head = c->next;
		q->head_off = 0;
		if (q->unsent == c) {
			q->unsent = c->next;
			q->unsent_off = 0;
		}
		if (q->tail == c)
			q->tail = NULL;
		free(c);
	}
	if (q->held == 0 && q->head != NULL) {
		/* All acknowledged: the last chunk goes too, so a tunnel whose
		 * capsules are all acknowledged (every idle one) holds none. */
		free(q->head);
		q->head = q->tail = q->unsent = NULL;
		q->head_off = q->unsent_off = 0;
	}
	return ZG_OK;
}
