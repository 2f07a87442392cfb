/*
 * dheap.h — a min-heap of deadlines for timers kept outside the event
 * library.
 *
 * Pure: no clock, no I/O. Nodes are embedded in their owner (intrusive)
 * and remember their slot, so moving or removing one is O(log n) and needs
 * no search. The event loop keeps one heap, one timerfd armed at the
 * earliest deadline, and re-arms it only when that deadline moves earlier
 * (see masque/udp.c): that is one timer system call per change of the
 * earliest deadline instead of one per loop turn.
 */
#ifndef ZG_DHEAP_H
#define ZG_DHEAP_H

#include <stddef.h>
#include <stdint.h>

#define DHEAP_NONE SIZE_MAX /* a node's idx while it is not in a heap */

struct dheap_node {
	uint64_t at; /* the deadline, in any unit the owner picks */
	size_t idx;  /* slot in the heap, DHEAP_NONE when not in one */
};

struct dheap {
	struct dheap_node **v;
	size_t n, cap;
};

/* An empty heap; nothing allocated yet. */
void dheap_init(struct dheap *h);

/* Frees the heap's array (not the nodes, which the owners hold). The
 * nodes still in it are left with idx DHEAP_NONE. */
void dheap_free(struct dheap *h);

/* A node that is in no heap. */
void dheap_node_init(struct dheap_node *x);

/* Makes room for n nodes in total, so that dheap_set() of up to n nodes
 * cannot fail. Returns 0 or ZG_ERR_NOMEM. */
int dheap_reserve(struct dheap *h, size_t n);

/* Puts x in h with deadline at, or moves it there when it is already in h.
 * Returns 0, or ZG_ERR_NOMEM when x was not in h and the array could not
 * grow (x is then still in no heap). */
int dheap_set(struct dheap *h, struct dheap_node *x, uint64_t at);

/* Takes x out of h; nothing when x is in no heap. */
void dheap_del(struct dheap *h, struct dheap_node *x);

/* The node with the earliest deadline, NULL when h is empty. */
struct dheap_node *dheap_top(const struct dheap *h);

/* Takes the earliest node out of h and returns it when its deadline is at
 * or before now; NULL otherwise. Ties leave in no particular order. */
struct dheap_node *dheap_pop_due(struct dheap *h, uint64_t now);

/* 1 when x is in a heap. */
int dheap_pending(const struct dheap_node *x);

#endif /* ZG_DHEAP_H */
