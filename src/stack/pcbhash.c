/*
 * pcbhash.c — lwIP's active and TIME-WAIT TCP pcbs indexed by their
 * 4-tuple.
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
 * tuples. The TIME-WAIT pcbs have an index of their own, for the same
 * reason: lwIP walked them for every SYN, and so did stack_tw_admit().
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

/* One index: chains through the pcbs' ext_args[0] (a pcb is in one of
 * lwIP's lists at a time, so in one index at a time). */
struct pcbtab {
	struct tcp_pcb **tab;
	size_t nbuckets, n;
};

static struct pcbtab active, tw; /* tcp_active_pcbs, tcp_tw_pcbs */
static uint8_t key[16];
/* the pcb found last: the segments of a transfer come one flow at a time,
 * and each would be hashed again (a SipHash per segment). Active pcbs
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

/* Moves every chain of t into a table of nb buckets; keeps the old one
 * when that cannot be allocated. */
static void
resize(struct pcbtab *t, size_t nb)
{
	struct tcp_pcb **n = calloc(nb, sizeof(*n));

	if (n == NULL)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct tcp_pcb *pcb = t->tab[i], *next;

		for (; pcb != NULL; pcb = next) {
			size_t b = pcb_bucket(pcb, nb);

			next = chain_next(pcb);
			chain_set(pcb, n[b]);
			n[b] = pcb;
		}
	}
	free(t->tab);
	t->tab = n;
	t->nbuckets = nb;
}

static int
tab_init(struct pcbtab *t)
{
	t->tab = calloc(PCBHASH_MIN, sizeof(*t->tab));
	if (t->tab == NULL)
		return ZG_ERR_NOMEM;
	t->nbuckets = PCBHASH_MIN;
	t->n = 0;
	return 0;
}

static void
tab_free(struct pcbtab *t)
{
	free(t->tab);
	t->tab = NULL;
	t->nbuckets = t->n = 0;
}

int stack_pcbhash_init(const uint8_t k[16])
{
	stack_pcbhash_free();
	if (tab_init(&active) != 0 || tab_init(&tw) != 0) {
		stack_pcbhash_free();
		return ZG_ERR_NOMEM;
	}
	memcpy(key, k, sizeof(key));
	return 0;
}

void stack_pcbhash_free(void)
{
	tab_free(&active);
	tab_free(&tw);
	last = NULL;
}

size_t
stack_pcbhash_count(void)
{
	return active.n;
}

size_t
stack_pcbhash_tw_count(void)
{
	return tw.n;
}

static void
tab_add(struct pcbtab *t, struct tcp_pcb *pcb)
{
	size_t b;

	if (t->tab == NULL)
		return;
	if (t->n >= 2 * t->nbuckets)
		resize(t, 2 * t->nbuckets);
	b = pcb_bucket(pcb, t->nbuckets);
	chain_set(pcb, t->tab[b]);
	t->tab[b] = pcb;
	t->n++;
}

/* Unlinks pcb from bucket b of t; 1 when it was there. */
static int
unlink_from(struct pcbtab *t, size_t b, struct tcp_pcb *pcb)
{
	struct tcp_pcb *prev = NULL, *p;

	for (p = t->tab[b]; p != NULL; prev = p, p = chain_next(p)) {
		if (p != pcb)
			continue;
		if (prev == NULL)
			t->tab[b] = chain_next(p);
		else
			chain_set(prev, chain_next(p));
		chain_set(p, NULL);
		t->n--;
		return 1;
	}
	return 0;
}

static void
tab_del(struct pcbtab *t, struct tcp_pcb *pcb)
{
	if (t->tab == NULL || unlink_from(t, pcb_bucket(pcb, t->nbuckets), pcb))
		return;
	/* not where its tuple says: lwIP changed the tuple of an indexed pcb,
	 * which it does not do; never keep a pointer to a freed pcb */
	for (size_t i = 0; i < t->nbuckets; i++)
		if (unlink_from(t, i, pcb))
			return;
}

static int
pcb_is(const struct tcp_pcb *pcb, const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip,
       u16_t rport)
{
	return pcb->remote_port == rport && pcb->local_port == lport &&
	       ip_addr_eq(&pcb->remote_ip, rip) && ip_addr_eq(&pcb->local_ip, lip);
}

static struct tcp_pcb *
tab_find(const struct pcbtab *t, const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip,
	 u16_t rport)
{
	struct tcp_pcb *pcb;

	for (pcb = t->tab[bucket_of(lip, lport, rip, rport, t->nbuckets)]; pcb != NULL;
	     pcb = chain_next(pcb))
		if (pcb_is(pcb, lip, lport, rip, rport))
			return pcb;
	return NULL;
}

void stack_pcb_add(struct tcp_pcb *pcb)
{
	tab_add(&active, pcb);
}

void stack_pcb_del(struct tcp_pcb *pcb)
{
	if (last == pcb)
		last = NULL;
	tab_del(&active, pcb);
}

struct tcp_pcb *
stack_pcb_find(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport)
{
	struct tcp_pcb *pcb;

	if (last != NULL && pcb_is(last, lip, lport, rip, rport))
		return last;
	if (active.tab == NULL) { /* no stack: lwIP's own walk */
		for (pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next)
			if (pcb_is(pcb, lip, lport, rip, rport))
				return pcb;
		return NULL;
	}
	pcb = tab_find(&active, lip, lport, rip, rport);
	if (pcb != NULL)
		last = pcb;
	return pcb;
}

void stack_pcb_tw_add(struct tcp_pcb *pcb)
{
	tab_add(&tw, pcb);
}

/* The chain pointer of a TIME-WAIT pcb stack_pcb_tw_retire() took out of
 * the index: lwIP's list still holds it until its slow timer frees it,
 * and the hook that then runs must not look for it in the index (tab_del
 * would scan every bucket for a pcb it cannot find). */
static char retired_mark;
#define RETIRED ((void *)&retired_mark)

void stack_pcb_tw_del(struct tcp_pcb *pcb)
{
	if (pcb->ext_args[0].data == RETIRED) {
		pcb->ext_args[0].data = NULL;
		return;
	}
	tab_del(&tw, pcb);
}

int stack_pcb_tw_retired(const struct tcp_pcb *pcb)
{
	return pcb->ext_args[0].data == RETIRED;
}

void stack_pcb_tw_retire(struct tcp_pcb *pcb)
{
	tab_del(&tw, pcb);
	pcb->ext_args[0].data = RETIRED;
	/* past 2 * MSL: tcp_slowtmr frees it at its next pass (it unlinks
	 * with the pointer it walked in with, no search) */
	pcb->tmr = tcp_ticks - (u32_t)(2 * TCP_MSL / TCP_SLOW_INTERVAL) - 1;
}

struct tcp_pcb *
stack_pcb_tw_find(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip, u16_t rport)
{
	struct tcp_pcb *pcb;

	if (tw.tab != NULL)
		return tab_find(&tw, lip, lport, rip, rport);
	for (pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next) /* no stack */
		if (pcb_is(pcb, lip, lport, rip, rport))
			return pcb;
	return NULL;
}
