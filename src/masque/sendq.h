/*
 * sendq.h — the bytes of one request stream's body (capsules) between the
 * moment they are queued and the moment the peer acknowledged them.
 *
 * nghttp3 sends body data by pointing at the caller's memory and needs it
 * unchanged until acked_stream_data (STYLE.md, "ownership"). So the queue
 * is a list of fixed chunks that never move: appending fills the tail,
 * sendq_next() hands out what was not offered yet, sendq_ack() frees
 * acknowledged chunks from the head. The total held is capped.
 */
#ifndef ZG_MASQUE_SENDQ_H
#define ZG_MASQUE_SENDQ_H

#include <stddef.h>
#include <stdint.h>

#define SENDQ_CHUNK 16384

struct sendq_chunk;

struct sendq {
	struct sendq_chunk *head, *tail;
	size_t head_off;            /* acknowledged bytes in head */
	struct sendq_chunk *unsent; /* first chunk with bytes not yet offered */
	size_t unsent_off;
	size_t held; /* queued and not acknowledged */
	size_t cap;
};

void sendq_init(struct sendq *q, size_t cap);
void sendq_free(struct sendq *q);

/* Room left before the cap. */
size_t sendq_room(const struct sendq *q);

/* Appends n pieces atomically: either all bytes or none. Returns 0,
 * ZG_ERR_LIMIT (over the cap) or ZG_ERR_NOMEM. */
int sendq_append(struct sendq *q, const uint8_t *const *data, const size_t *len, size_t n);

/* Fills up to max (pointer, length) pairs with bytes not yet offered and
 * marks them offered. Returns the number of pairs (0: nothing new). */
size_t sendq_next(struct sendq *q, const uint8_t **ptr, size_t *len, size_t max);

/* The peer acknowledged n more bytes (in order). Returns 0, or
 * ZG_ERR_RANGE when n exceeds what was offered. */
int sendq_ack(struct sendq *q, size_t n);

/* Bytes queued but not yet offered. */
size_t sendq_unsent(const struct sendq *q);

#endif /* ZG_MASQUE_SENDQ_H */
