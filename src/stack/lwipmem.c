/*
 * lwipmem.c — lwIP's heap (MEM_CUSTOM_ALLOCATOR): malloc, with freed
 * packet-sized blocks kept for reuse.
 *
 * Every TCP segment lwIP builds toward a client (tcp_write copies into a
 * pbuf of about 1.5 KB) and every segment it takes in (a pool pbuf of
 * PBUF_POOL_BUFSIZE) is one malloc and one free. Those sizes are above
 * glibc's per-thread cache (1 KiB), so each went through its bins and
 * consolidation: 9 % of the relay's samples in a bulk download. Blocks
 * for requests of 1 to 2 KiB are now allocated as 2 KiB and, when freed,
 * kept on a list (at most LWIPMEM_KEEP, 1 MiB) that the next such request
 * takes from first. Any freed block of 2 to 4 KiB serves, so no size
 * needs storing. lwIP's own statistics (the used bytes the memory budget
 * reads) count requests as before; blocks on the list count as free.
 *
 * Under AddressSanitizer the list is off, so that a use after free in the
 * stack is still reported.
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

static struct lwipmem_free *kept;
static unsigned nkept;

void *stack_mem_malloc(size_t n)
{
	if (!LWIPMEM_CACHE || n <= LWIPMEM_MIN || n > LWIPMEM_BLOCK)
		return malloc(n);
	if (kept != NULL) {
		struct lwipmem_free *b = kept;

		kept = b->next;
		nkept--;
		return b;
	}
	return malloc(LWIPMEM_BLOCK);
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
	size_t u;

	if (p == NULL)
		return;
	u = LWIPMEM_CACHE ? malloc_usable_size(p) : 0;
	if (u >= LWIPMEM_BLOCK && u < 2 * LWIPMEM_BLOCK && nkept < LWIPMEM_KEEP) {
		struct lwipmem_free *b = p;

		b->next = kept;
		kept = b;
		nkept++;
		return;
	}
	free(p);
}

unsigned stack_mem_kept(void)
{
	return nkept;
}

int stack_mem_keeps(void)
{
	return LWIPMEM_CACHE;
}

void stack_mem_trim(void)
{
	while (kept != NULL) {
		struct lwipmem_free *b = kept;

		kept = b->next;
		free(b);
	}
	nkept = 0;
}
