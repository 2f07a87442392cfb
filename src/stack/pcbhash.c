/*
 * pcbhash.c — lwIP's active TCP pcbs indexed by their 4-tuple.
 *
 * lwIP finds the pcb of every incoming segment by walking tcp_active_pcbs,
 * and walks all of it for every SYN: with thousands of flows open that walk
 * was most of the stack's time per new connection (bench/stack_flows). Our
 * lwIP patch (third_party/patches/lwip-zgate.patch) tells us of
 * every pcb that joins or leaves the list, its 4-tuple still set, and asks
 * stack_pcb_find() instead of walking. The chains run through the pcbs
 * themselves (lwIP's per-pcb ext_args[0], which nothing else uses), so an
 * insert cannot fail; the bucket array doubles as the list grows, and if
 * that allocation fails the chains just get longer. Buckets are chosen
 * with SipHash under a key drawn at stack_new(): the client picks the
 * tuples.
 */
#include <stdlib.h>
#include <string.h>

#include "stack_int.h"
#include "zg_err.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "lwip/ip_addr.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "stack_hooks.h"
#pragma GCC diagnostic pop

#define PCBHASH_MIN 1024 /* buckets; a power of two */

static struct tcp_pcb **tab;
static size_t nbuckets, npcbs;
static uint8_t key[16];
/* the pcb found last: the segments of a transfer come one flow at a time,
 * and each would be hashed again (a SipHash per segment). Indexed pcbs
 * only; stack_pcb_del() forgets it. */
static struct tcp_pcb *last;

static struct tcp_pcb *
chain_next(const struct tcp_pcb *pcb)
{
	return pcb->ext_args[0].data;
}

static void
chain_set(struct tcp_pcb *pcb, struct tcp_pcb *next)
{
	pcb->ext_args[0].data = next;
}

static size_t
bucket_of(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport, size_t nb)
{
	uint8_t in[STACK_TUPLE_MAX];
	size_t n = stack_lwip_tuple(in, lip, lport, rip, rport);

	return (size_t)stack_siphash(key, in, n) & (nb - 1);
}

static size_t
pcb_bucket(const struct tcp_pcb *pcb, size_t nb)
{
	return bucket_of(&pcb->local_ip, pcb->local_port, &pcb->remote_ip, pcb->remote_port, nb);
}

/* Moves every chain into a table of nb buckets; keeps the old one when
 * that cannot be allocated. */
static void
resize(size_t nb)
{
	struct tcp_pcb **t = calloc(nb, sizeof(*t));

	if (t == NULL)
		return;
	for (size_t i = 0; i < nbuckets; i++) {
		struct tcp_pcb *pcb = tab[i], *next;

		for (; pcb != NULL; pcb = next) {
			size_t b = pcb_bucket(pcb, nb);

			next = chain_next(pcb);
			chain_set(pcb, t[b]);
			t[b] = pcb;
		}
	}
	free(tab);
	tab = t;
	nbuckets = nb;
}

int stack_pcbhash_init(const uint8_t k[16])
{
	stack_pcbhash_free();
	tab = calloc(PCBHASH_MIN, sizeof(*tab));
	if (tab == NULL)
		return ZG_ERR_NOMEM;
	nbuckets = PCBHASH_MIN;
	memcpy(key, k, sizeof(key));
	return 0;
}

void stack_pcbhash_free(void)
{
	free(tab);
	tab = NULL;
	last = NULL;
	nbuckets = npcbs = 0;
}

size_t
stack_pcbhash_count(void)
{
	return npcbs;
}

void stack_pcb_add(struct tcp_pcb *pcb)
{
	size_t b;

	if (tab == NULL)
		return;
	if (npcbs >= 2 * nbuckets)
		resize(2 * nbuckets);
	b = pcb_bucket(pcb, nbuckets);
	chain_set(pcb, tab[b]);
	tab[b] = pcb;
	npcbs++;
}

/* Unlinks pcb from bucket b; 1 when it was there. */
static int
unlink_from(size_t b, struct tcp_pcb *pcb)
{
	struct tcp_pcb *prev = NULL, *p;

	for (p = tab[b]; p != NULL; prev = p, p = chain_next(p)) {
		if (p != pcb)
			continue;
		if (prev == NULL)
			tab[b] = chain_next(p);
		else
			chain_set(prev, chain_next(p));
		chain_set(p, NULL);
		npcbs--;
		return 1;
	}
	return 0;
}

void stack_pcb_del(struct tcp_pcb *pcb)
{
	if (last == pcb)
		last = NULL;
	if (tab == NULL || unlink_from(pcb_bucket(pcb, nbuckets), pcb))
		return;
	/* not where its tuple says: lwIP changed the tuple of an indexed pcb,
	 * which it does not do; never keep a pointer to a freed pcb */
	for (size_t i = 0; i < nbuckets; i++)
		if (unlink_from(i, pcb))
			return;
}

static int
pcb_is(const struct tcp_pcb *pcb, const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip,
       u16_t rport)
{
	return pcb->remote_port == rport && pcb->local_port == lport &&
	       ip_addr_eq(&pcb->remote_ip, rip) && ip_addr_eq(&pcb->local_ip, lip);
}

struct tcp_pcb *
stack_pcb_find(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport)
{
	struct tcp_pcb *pcb;

	if (last != NULL && pcb_is(last, lip, lport, rip, rport))
		return last;
	/* no table (no stack): lwIP's own walk */
	for (pcb = tab != NULL ? tab[bucket_of(lip, lport, rip, rport, nbuckets)] : tcp_active_pcbs;
	     pcb != NULL; pcb = tab != NULL ? chain_next(pcb) : pcb->next) {
		if (pcb_is(pcb, lip, lport, rip, rport)) {
			if (tab != NULL)
				last = pcb;
			return pcb;
		}
	}
	return NULL;
}
