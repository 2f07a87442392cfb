/*
 * lwipmem.c — lwIP's heap (MEM_CUSTOM_ALLOCATOR): malloc, with freed
 * blocks of the two sizes every segment needs kept for reuse.
 *
 * Every TCP segment lwIP builds toward a client is a pbuf of about 1.5 KB
 * (tcp_write copies into it) and a struct tcp_seg of a few dozen bytes;
 * every segment it takes in is a pbuf too. Each was one malloc and one
 * free. The pbufs are above glibc's per-thread cache (1 KiB) and a burst
 * of 40-odd segments overflows the cache's seven entries of the small
 * size, so both went through malloc's bins and consolidation: 9 % of the
 * relay's samples in a bulk download. Two classes now: requests of more
 * than LWIPMEM_MIN up to LWIPMEM_BLOCK bytes get LWIPMEM_BLOCK, requests
 * up to LWIPMEM_SMALL get LWIPMEM_SMALL; freed, each goes on its class's
 * list (at most LWIPMEM_KEEP of each: 1 MiB and 32 KiB), which the next
 * request of the class takes from first. The class of a freed block is
 * read from malloc_usable_size(): any block that large (and less than
 * twice it) serves, so nothing needs storing. What lwIP holds is counted
 * here at the blocks' real size (stack_mem_live(): the memory budget
 * reads it), since a 1.5 KB request now takes 2 KiB; lwIP's own
 * statistics count the requests; blocks on the lists count as free.
 *
 * Under AddressSanitizer the lists are off, so that a use after free in
 * the stack is still reported.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "stack_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define LWIPMEM_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LWIPMEM_CACHE 0
#endif
#endif
#ifndef LWIPMEM_CACHE
#define LWIPMEM_CACHE 1
#endif

struct lwipmem_free {
	struct lwipmem_free *next;
};

struct lwipmem_class {
	struct lwipmem_free *head;
	unsigned n;
	size_t size;
};

static struct lwipmem_class big = { NULL, 0, LWIPMEM_BLOCK };
static struct lwipmem_class small = { NULL, 0, LWIPMEM_SMALL };
static uint64_t live; /* usable bytes of the blocks lwIP holds */

static void *take(struct lwipmem_class *k)
{
	struct lwipmem_free *b = k->head;

	if (b == NULL)
		return malloc(k->size);
	k->head = b->next;
	k->n--;
	return b;
}

void *stack_mem_malloc(size_t n)
{
	void *p;

	if (!LWIPMEM_CACHE || n > LWIPMEM_BLOCK || (n > LWIPMEM_SMALL && n <= LWIPMEM_MIN))
		p = malloc(n);
	else
		p = take(n <= LWIPMEM_SMALL ? &small : &big);
	if (p != NULL)
		live += malloc_usable_size(p);
	return p;
}

void *stack_mem_calloc(size_t count, size_t size)
{
	void *p;

	if (size != 0 && count > (size_t)-1 / size)
		return NULL;
	p = stack_mem_malloc(count * size);
	if (p != NULL)
		memset(p, 0, count * size);
	return p;
}

void stack_mem_free(void *p)
{
	struct lwipmem_class *k = NULL;
	size_t u;

	if (p == NULL)
		return;
	u = malloc_usable_size(p);
	live -= u;
	if (LWIPMEM_CACHE && u >= LWIPMEM_BLOCK && u < 2 * LWIPMEM_BLOCK)
		k = &big;
	else if (LWIPMEM_CACHE && u >= LWIPMEM_SMALL && u < 2 * LWIPMEM_SMALL)
		k = &small;
	if (k != NULL && k->n < LWIPMEM_KEEP) {
		struct lwipmem_free *b = p;

		b->next = k->head;
		k->head = b;
		k->n++;
		return;
	}
	free(p);
}

uint64_t stack_mem_live(void)
{
	return live;
}

unsigned stack_mem_kept(void)
{
	return big.n + small.n;
}

int stack_mem_keeps(void)
{
	return LWIPMEM_CACHE;
}

static void trim(struct lwipmem_class *k)
{
	while (k->head != NULL) {
		struct lwipmem_free *b = k->head;

		k->head = b->next;
		free(b);
	}
	k->n = 0;
}

void stack_mem_trim(void)
{
	trim(&big);
	trim(&small);
}
