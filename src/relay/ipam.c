#include "relay/ipam.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fnv.h"
#include "atomicfile.h"
#include "log.h"
#include "zg_err.h"

typedef unsigned __int128 u128;

enum slot_state {
	SLOT_NEVER = 0,
	SLOT_FREE_REMEMBERED,
	SLOT_HELD
};

struct slot {
	uint8_t state;
	uint8_t holder;          /* of a held slot: ipam_alloc_by()'s holder */
	char owner[IPAM_ID_MAX]; /* "" for SLOT_NEVER */
};
/* The per-address cost ipam.h states. */
_Static_assert(sizeof(struct slot) == 66, "ipam.h states 66 bytes per address");

struct pool {
	uint8_t version; /* 0: no pool */
	u128 first;      /* first client address */
	u128 gateway;
	size_t n; /* client addresses */
	size_t used;
	/* 1 + the index of the slot being rewritten, 0 when none: what a
	 * worker that died holding the lock may have left half-written. */
	size_t dirty;
	struct slot *slots; /* shared: inside the same mapping */
	/* Slots by owner: open addressing on id_hash(owner), linear probing,
	 * entries slot + 1 (0 empty), idx_mask + 1 (a power of two, at least
	 * 2 n) of them. Every slot that is not never-used is in it once, so a
	 * client's slots are found without scanning the pool (that scan was
	 * O(pool) strcmp()s per tunnel set-up, under the shared lock). */
	uint32_t *idx;
	size_t idx_mask;
};

/* Shared (ipam_new_shared): this header, then the IPv4 slots, then the
 * IPv6 slots, in one MAP_SHARED mapping; every field below lives there. */
struct ipam {
	struct pool p4, p6;
	uint64_t changes; /* ipam_changes() */
	int shared;
	size_t maplen;      /* shared: bytes mapped */
	pthread_mutex_t mu; /* shared only: process-shared, robust */
};

static struct pool *pool_of(struct ipam *ip, uint8_t version)
{
	struct pool *p = version == 4 ? &ip->p4 : version == 6 ? &ip->p6
							       : NULL;
	return p && p->version ? p : NULL;
}

static const struct pool *cpool_of(const struct ipam *ip, uint8_t version)
{
	return pool_of((struct ipam *)ip, version);
}

static u128 load(const uint8_t *a, uint8_t version)
{
	u128 v = 0;
	for (unsigned i = 0; i < (version == 4 ? 4u : 16u); i++)
		v = (v << 8) | a[i];
	return v;
}

static void store(u128 v, uint8_t *a, uint8_t version)
{
	unsigned n = version == 4 ? 4 : 16;
	memset(a, 0, 16);
	for (unsigned i = n; i-- > 0;) {
		a[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static int pool_init(struct pool *p, const struct config_prefix *c, uint32_t max)
{
	unsigned bits = c->version == 4 ? 32 : 128, host = bits - c->len;
	u128 size;

	if (c->version != 4 && c->version != 6)
		return ZG_ERR_INVAL;
	if (host < 2)
		return ZG_ERR_INVAL;
	p->version = c->version;
	p->gateway = load(c->addr, c->version) + 1;
	p->first = p->gateway + 1;
	/* v4: minus network, gateway, broadcast; v6: minus subnet-router, gateway */
	size = host >= 127 ? ~(u128)0 : ((u128)1 << host) - (c->version == 4 ? 3 : 2);
	if (size > max)
		size = max;
	p->n = (size_t)size;
	return p->n == 0 ? ZG_ERR_INVAL : 0;
}

/* Entries of a pool's owner index: a power of two, at least 2 n. */
static size_t idx_size(size_t n)
{
	size_t k = 16;

	while (k < 2 * n)
		k <<= 1;
	return k;
}

/* Fills the pools' geometry (no slots yet) from the parameters. */
static int layout(const struct config_prefix *pool4, const struct config_prefix *pool6,
		  uint32_t max6, struct ipam *ip)
{
	int r;

	if (!pool4 || pool4->version != 4)
		return ZG_ERR_INVAL;
	if ((r = pool_init(&ip->p4, pool4, IPAM_MAX_CLIENTS)) != 0)
		return r;
	ip->p4.idx_mask = idx_size(ip->p4.n) - 1;
	if (pool6 && pool6->version == 6) {
		r = pool_init(&ip->p6, pool6,
			      max6 && max6 < IPAM_MAX_CLIENTS ? max6 : IPAM_MAX_CLIENTS);
		ip->p6.idx_mask = r == 0 ? idx_size(ip->p6.n) - 1 : 0;
	}
	return r;
}

/* Heap slots and index of an unshared pool (none for no pool). */
static int pool_mem(struct pool *p)
{
	if (!p->version)
		return 0;
	p->slots = calloc(p->n, sizeof(struct slot));
	p->idx = calloc(p->idx_mask + 1, sizeof(*p->idx));
	return p->slots && p->idx ? 0 : ZG_ERR_NOMEM;
}

int ipam_new(const struct config_prefix *pool4, const struct config_prefix *pool6,
	     uint32_t max6, struct ipam **pp)
{
	struct ipam *ip = calloc(1, sizeof(*ip));
	int r;

	if (!ip)
		return ZG_ERR_NOMEM;
	if ((r = layout(pool4, pool6, max6, ip)) != 0)
		goto fail;
	if ((r = pool_mem(&ip->p4)) != 0 || (r = pool_mem(&ip->p6)) != 0)
		goto fail;
	*pp = ip;
	return 0;
fail:
	ipam_free(ip);
	return r;
}

int ipam_new_shared(const struct config_prefix *pool4, const struct config_prefix *pool6,
		    uint32_t max6, struct ipam **pp)
{
	struct ipam geo = { 0 }, *ip;
	pthread_mutexattr_t a;
	size_t len, idxoff;
	void *base;
	int r;

	if ((r = layout(pool4, pool6, max6, &geo)) != 0)
		return r;
	/* header, the slots, then (4-byte aligned) the indexes */
	idxoff = sizeof(struct ipam) + (geo.p4.n + (geo.p6.version ? geo.p6.n : 0)) * sizeof(struct slot);
	idxoff = (idxoff + 3) & ~(size_t)3;
	len = idxoff + (geo.p4.idx_mask + 1 + (geo.p6.version ? geo.p6.idx_mask + 1 : 0)) *
			       sizeof(uint32_t);
	/* anonymous memory is zero: every slot starts SLOT_NEVER, and pages
	 * cost RAM only once touched, as with calloc */
	base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return ZG_ERR_NOMEM;
	ip = base;
	ip->p4 = geo.p4;
	ip->p6 = geo.p6;
	ip->p4.slots = (struct slot *)(ip + 1);
	ip->p6.slots = ip->p6.version ? ip->p4.slots + ip->p4.n : NULL;
	ip->p4.idx = (uint32_t *)(void *)((char *)base + idxoff);
	ip->p6.idx = ip->p6.version ? ip->p4.idx + ip->p4.idx_mask + 1 : NULL;
	ip->shared = 1;
	ip->maplen = len;
	if (pthread_mutexattr_init(&a) != 0)
		goto fail;
	if (pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(&ip->mu, &a) != 0) {
		pthread_mutexattr_destroy(&a);
		goto fail;
	}
	pthread_mutexattr_destroy(&a);
	*pp = ip;
	return 0;
fail:
	munmap(base, len);
	return ZG_ERR_NOMEM;
}

void ipam_free(struct ipam *ip)
{
	if (!ip)
		return;
	if (ip->shared) {
		/* Not pthread_mutex_destroy: other processes may still use it;
		 * the mapping goes away with the last process's. */
		munmap(ip, ip->maplen);
		return;
	}
	free(ip->p4.slots);
	free(ip->p6.slots);
	free(ip->p4.idx);
	free(ip->p6.idx);
	free(ip);
}

/* FNV-1a: fixed, so an ID maps to the same slot on every relay. */
static uint64_t id_hash(const char *id)
{
	return fnv64_str(id);
}

static int valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n >= IPAM_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)id[i]))
			return 0;
	return 1;
}

static size_t idx_home(const struct pool *p, const char *owner)
{
	return (size_t)id_hash(owner) & p->idx_mask;
}

/* Adds slot i (not never-used) under its owner. */
static void idx_add(struct pool *p, size_t i)
{
	size_t k = idx_home(p, p->slots[i].owner);

	while (p->idx[k] != 0)
		k = (k + 1) & p->idx_mask;
	p->idx[k] = (uint32_t)(i + 1);
}

/* Takes slot i out of the index (looked up under its current owner);
 * the entries after it shift back so no probe sequence breaks. */
static void idx_del(struct pool *p, size_t i)
{
	size_t m = p->idx_mask, j = idx_home(p, p->slots[i].owner), k;

	while (p->idx[j] != i + 1) {
		if (p->idx[j] == 0)
			return; /* not indexed (never-used) */
		j = (j + 1) & m;
	}
	for (;;) {
		p->idx[j] = 0;
		k = j;
		for (;;) {
			size_t h;

			k = (k + 1) & m;
			if (p->idx[k] == 0)
				return;
			h = idx_home(p, p->slots[p->idx[k] - 1].owner);
			/* the entry at k may fill j unless its home lies in (j, k] */
			if (((k - h) & m) >= ((k - j) & m))
				break;
		}
		p->idx[j] = p->idx[k];
		j = k;
	}
}

/* Rebuilds a pool's index from its slots (after a load or a repair). */
static void idx_rebuild(struct pool *p)
{
	if (!p->version)
		return;
	memset(p->idx, 0, (p->idx_mask + 1) * sizeof(*p->idx));
	for (size_t i = 0; i < p->n; i++)
		if (p->slots[i].state != SLOT_NEVER)
			idx_add(p, i);
}

/* The next locker after a worker died holding the lock (EOWNERDEAD):
 * the only state a cut-short call can leave is (a) the slot under a pool's
 * journal, half-written — reset to never-used: its new client got no answer
 * (its worker is gone) and its old one only loses the memory of an address;
 * (b) a `used` counter not yet adjusted — recounted; (c) a torn slot left
 * by ipam_load's copy (the master's, before workers exist; not journaled)
 * — any slot whose owner is not a valid ID is reset as in (a). */
static void repair(struct ipam *ip)
{
	for (int v = 0; v < 2; v++) {
		struct pool *p = v ? &ip->p6 : &ip->p4;

		if (!p->version)
			continue;
		if (p->dirty) {
			p->slots[p->dirty - 1].state = SLOT_NEVER;
			p->dirty = 0;
		}
		p->used = 0;
		for (size_t i = 0; i < p->n; i++) {
			struct slot *s = &p->slots[i];

			if (s->state > SLOT_HELD ||
			    (s->state != SLOT_NEVER && (!memchr(s->owner, '\0', IPAM_ID_MAX) || !valid_id(s->owner))))
				s->state = SLOT_NEVER;
			if (s->state == SLOT_NEVER)
				memset(s->owner, 0, IPAM_ID_MAX);
			else if (s->state == SLOT_HELD)
				p->used++;
		}
	}
	idx_rebuild(&ip->p4); /* a cut-short slot_set() may have left it half-done */
	idx_rebuild(&ip->p6);
	ip->changes++; /* the master's next save writes the repaired pool */
}

/* Shared: takes the process-shared lock, repairing after a dead holder.
 * Unshared: nothing. Returns 0 or ZG_ERR_STATE (the lock is unusable:
 * only if a repair itself was cut short twice over, or a bug). */
static int lock(const struct ipam *cip)
{
	struct ipam *ip = (struct ipam *)cip; /* the lock lives in the mapping */
	int e;

	if (!ip->shared)
		return 0;
	e = pthread_mutex_lock(&ip->mu);
	if (e == EOWNERDEAD) {
		repair(ip);
		e = pthread_mutex_consistent(&ip->mu);
	}
	return e == 0 ? 0 : ZG_ERR_STATE;
}

static void unlock(const struct ipam *ip)
{
	if (ip->shared)
		(void)pthread_mutex_unlock((pthread_mutex_t *)&ip->mu);
}

static long find_owner(const struct pool *p, const char *id, uint8_t state)
{
	for (size_t k = idx_home(p, id); p->idx[k] != 0; k = (k + 1) & p->idx_mask) {
		const struct slot *sl = &p->slots[p->idx[k] - 1];

		if (sl->state == state && strcmp(sl->owner, id) == 0)
			return (long)(p->idx[k] - 1);
	}
	return -1;
}

/* Rewrites slot i (state and owner) under the journal p->dirty: a worker
 * that dies in here leaves p->dirty set, and the next locker resets that
 * slot (repair()). The signal fences keep the compiler from moving the
 * slot's stores outside the journal's; a dying process's stores are not
 * lost, only cut short. */
static void slot_set(struct pool *p, size_t i, uint8_t state, const char *id)
{
	p->dirty = i + 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (p->slots[i].state != SLOT_NEVER)
		idx_del(p, i);
	p->slots[i].state = state;
	memcpy(p->slots[i].owner, id, strlen(id) + 1);
	if (state != SLOT_NEVER)
		idx_add(p, i);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	p->dirty = 0;
}

static void take(struct pool *p, size_t i, const char *id, uint8_t holder, uint8_t out[16])
{
	/* another client's memory of this slot is forgotten */
	if (p->slots[i].state != SLOT_HELD)
		p->used++;
	slot_set(p, i, SLOT_HELD, id);
	p->slots[i].holder = holder;
	store(p->first + i, out, p->version);
}

static int alloc_locked(struct ipam *ip, const char *client_id, uint8_t version,
			const uint8_t *preferred, uint8_t holder, uint8_t out[16])
{
	struct pool *p = pool_of(ip, version);
	long i;
	size_t start;

	if (!valid_id(client_id))
		return ZG_ERR_INVAL;
	if (!p)
		return ZG_ERR_NOTFOUND;
	if ((i = find_owner(p, client_id, SLOT_HELD)) >= 0) {
		p->slots[i].holder = holder; /* the newest tunnel holds it */
		store(p->first + (size_t)i, out, version);
		return 0;
	}
	if (preferred) {
		u128 a = load(preferred, version);
		if (a >= p->first && a - p->first < p->n) {
			struct slot *s = &p->slots[(size_t)(a - p->first)];
			if (s->state == SLOT_NEVER || strcmp(s->owner, client_id) == 0) {
				take(p, (size_t)(a - p->first), client_id, holder, out);
				return 0;
			}
		}
	}
	if ((i = find_owner(p, client_id, SLOT_FREE_REMEMBERED)) >= 0) {
		take(p, (size_t)i, client_id, holder, out);
		return 0;
	}
	start = (size_t)(id_hash(client_id) % p->n);
	for (size_t k = 0; k < p->n; k++) {
		size_t j = (start + k) % p->n;
		if (p->slots[j].state == SLOT_NEVER) {
			take(p, j, client_id, holder, out);
			return 0;
		}
	}
	for (size_t k = 0; k < p->n; k++) { /* reclaim someone's memory */
		size_t j = (start + k) % p->n;
		if (p->slots[j].state == SLOT_FREE_REMEMBERED) {
			take(p, j, client_id, holder, out);
			return 0;
		}
	}
	return ZG_ERR_LIMIT;
}

static int release_locked(struct ipam *ip, const char *client_id, uint8_t version, int holder)
{
	struct pool *p = pool_of(ip, version);
	long i;

	if (!p || (i = find_owner(p, client_id, SLOT_HELD)) < 0)
		return ZG_ERR_NOTFOUND;
	if (holder >= 0 && p->slots[i].holder != (uint8_t)holder)
		return ZG_ERR_STATE;
	p->slots[i].state = SLOT_FREE_REMEMBERED;
	p->used--;
	return 0;
}

/* Locked: client_id's held address, or with remembered also its remembered one. */
static int find_client(const struct ipam *ip, const char *client_id, uint8_t version,
		       int remembered, uint8_t out[16])
{
	const struct pool *p;
	long i;
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	r = ZG_ERR_NOTFOUND;
	if ((p = cpool_of(ip, version)) != NULL &&
	    ((i = find_owner(p, client_id, SLOT_HELD)) >= 0 ||
	     (remembered && (i = find_owner(p, client_id, SLOT_FREE_REMEMBERED)) >= 0))) {
		store(p->first + (size_t)i, out, version);
		r = 0;
	}
	unlock(ip);
	return r;
}

static int assign_locked(struct ipam *ip, const char *client_id, uint8_t version, const uint8_t *addr,
			 uint8_t holder)
{
	struct pool *p = pool_of(ip, version);
	uint8_t out[16];
	struct slot *s;
	long i;
	u128 a;

	if (!valid_id(client_id))
		return ZG_ERR_INVAL;
	if (!p)
		return ZG_ERR_NOTFOUND;
	a = load(addr, version);
	if (a < p->first || a - p->first >= p->n)
		return ZG_ERR_RANGE;
	s = &p->slots[(size_t)(a - p->first)];
	if (s->state == SLOT_HELD && strcmp(s->owner, client_id) != 0)
		return ZG_ERR_STATE;
	if ((i = find_owner(p, client_id, SLOT_HELD)) >= 0 && (size_t)i != (size_t)(a - p->first)) {
		slot_set(p, (size_t)i, SLOT_NEVER, "");
		p->used--;
	}
	while ((i = find_owner(p, client_id, SLOT_FREE_REMEMBERED)) >= 0 &&
	       (size_t)i != (size_t)(a - p->first))
		slot_set(p, (size_t)i, SLOT_NEVER, "");
	take(p, (size_t)(a - p->first), client_id, holder, out);
	return 0;
}

static int gateway_locked(const struct ipam *ip, uint8_t version, uint8_t out[16])
{
	const struct pool *p = cpool_of(ip, version);

	if (!p)
		return ZG_ERR_NOTFOUND;
	store(p->gateway, out, version);
	return 0;
}

/* ---- the public calls: the lock around the calls above when shared ---- */

int ipam_alloc(struct ipam *ip, const char *client_id, uint8_t version,
	       const uint8_t *preferred, uint8_t out[16])
{
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	if ((r = alloc_locked(ip, client_id, version, preferred, 0, out)) == 0)
		ip->changes++;
	unlock(ip);
	return r;
}

int ipam_alloc_by(struct ipam *ip, const char *client_id, uint8_t version,
		  const uint8_t *preferred, uint8_t holder, uint8_t out[16])
{
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	if ((r = alloc_locked(ip, client_id, version, preferred, holder, out)) == 0)
		ip->changes++;
	unlock(ip);
	return r;
}

int ipam_release(struct ipam *ip, const char *client_id, uint8_t version)
{
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	if ((r = release_locked(ip, client_id, version, -1)) == 0)
		ip->changes++;
	unlock(ip);
	return r;
}

int ipam_holder(const struct ipam *ip, const char *client_id, uint8_t version)
{
	const struct pool *p;
	long i;
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	r = ZG_ERR_NOTFOUND;
	if ((p = cpool_of(ip, version)) != NULL && (i = find_owner(p, client_id, SLOT_HELD)) >= 0)
		r = p->slots[i].holder;
	unlock(ip);
	return r;
}

int ipam_addr_holder(const struct ipam *ip, uint8_t version, const uint8_t *addr)
{
	const struct pool *p;
	u128 a;
	int r;

	if ((p = cpool_of(ip, version)) == NULL || p->version == 0)
		return ZG_ERR_NOTFOUND;
	a = load(addr, version);
	if (a < p->first || a - p->first >= p->n)
		return ZG_ERR_NOTFOUND;
	if ((r = lock(ip)) != 0)
		return r;
	r = ZG_ERR_NOTFOUND;
	if (p->slots[a - p->first].state == SLOT_HELD)
		r = p->slots[a - p->first].holder;
	unlock(ip);
	return r;
}

int ipam_release_by(struct ipam *ip, const char *client_id, uint8_t version, uint8_t holder)
{
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	if ((r = release_locked(ip, client_id, version, holder)) == 0)
		ip->changes++;
	unlock(ip);
	return r;
}

int ipam_lookup(const struct ipam *ip, const char *client_id, uint8_t version,
		uint8_t out[16])
{
	return find_client(ip, client_id, version, 0, out);
}

int ipam_known(const struct ipam *ip, const char *client_id, uint8_t version, uint8_t out[16])
{
	return find_client(ip, client_id, version, 1, out);
}

int ipam_assign(struct ipam *ip, const char *client_id, uint8_t version, const uint8_t *addr)
{
	return ipam_assign_by(ip, client_id, version, addr, 0);
}

int ipam_assign_by(struct ipam *ip, const char *client_id, uint8_t version, const uint8_t *addr,
		   uint8_t holder)
{
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	if ((r = assign_locked(ip, client_id, version, addr, holder)) == 0)
		ip->changes++;
	unlock(ip);
	return r;
}

int ipam_gateway(const struct ipam *ip, uint8_t version, uint8_t out[16])
{
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	r = gateway_locked(ip, version, out);
	unlock(ip);
	return r;
}

enum counter {
	COUNT_SIZE,
	COUNT_USED,
	COUNT_CHANGES
};

static uint64_t counter(const struct ipam *ip, enum counter c, uint8_t version)
{
	const struct pool *p;
	uint64_t n;

	if (lock(ip) != 0)
		return 0;
	p = cpool_of(ip, version);
	n = c == COUNT_CHANGES ? ip->changes : !p        ? 0
				       : c == COUNT_SIZE ? p->n
							 : p->used;
	unlock(ip);
	return n;
}

size_t ipam_size(const struct ipam *ip, uint8_t version)
{
	return (size_t)counter(ip, COUNT_SIZE, version);
}

size_t ipam_used(const struct ipam *ip, uint8_t version)
{
	return (size_t)counter(ip, COUNT_USED, version);
}

uint64_t ipam_changes(const struct ipam *ip)
{
	return counter(ip, COUNT_CHANGES, 0);
}

static int check_pool(const struct pool *p)
{
	size_t entries = 0, live = 0;

	if (!p->version)
		return 0;
	for (size_t k = 0; k <= p->idx_mask; k++) {
		size_t i;

		if (p->idx[k] == 0)
			continue;
		i = p->idx[k] - 1;
		entries++;
		if (i >= p->n || p->slots[i].state == SLOT_NEVER)
			return ZG_ERR_STATE;
		/* reachable: no empty entry between its home and k */
		for (size_t h = idx_home(p, p->slots[i].owner); h != k; h = (h + 1) & p->idx_mask)
			if (p->idx[h] == 0)
				return ZG_ERR_STATE;
	}
	for (size_t i = 0; i < p->n; i++)
		live += p->slots[i].state != SLOT_NEVER;
	return entries == live ? 0 : ZG_ERR_STATE;
}

int ipam_check(const struct ipam *ip)
{
	int r;

	if ((r = lock(ip)) != 0)
		return r;
	r = check_pool(&ip->p4);
	if (r == 0)
		r = check_pool(&ip->p6);
	unlock(ip);
	return r;
}

int ipam_test_lock(struct ipam *ip, const char *half_id)
{
	struct pool *p = &ip->p4;
	size_t i;
	int r;

	if (!ip->shared || (half_id && !valid_id(half_id)))
		return ZG_ERR_INVAL;
	if ((r = lock(ip)) != 0 || !half_id)
		return r;
	/* take() of half_id's first never-used slot, cut off half-way */
	i = (size_t)(id_hash(half_id) % p->n);
	for (size_t k = 0; p->slots[i].state != SLOT_NEVER; i = (i + 1) % p->n)
		if (++k == p->n) {
			unlock(ip);
			return ZG_ERR_LIMIT;
		}
	p->dirty = i + 1;
	p->slots[i].state = SLOT_HELD;
	memcpy(p->slots[i].owner, half_id, strlen(half_id) / 2);
	p->used++;
	return 0;
}

#define STATE_HEADER "# zgate ipam state v1: <client-id> <address>\n"

/* A private (unshared, heap) copy of ip's pools: ipam_load's scratch and
 * ipam_save's snapshot. Returns 0 or ZG_ERR_NOMEM. */
static int copy_of(const struct ipam *ip, struct ipam **pcopy)
{
	struct ipam *c = calloc(1, sizeof(*c));

	if (!c)
		return ZG_ERR_NOMEM;
	c->p4 = ip->p4;
	c->p6 = ip->p6;
	c->shared = 0;
	c->p4.slots = c->p6.slots = NULL;
	c->p4.idx = c->p6.idx = NULL;
	if (pool_mem(&c->p4) != 0 || pool_mem(&c->p6) != 0) {
		ipam_free(c);
		return ZG_ERR_NOMEM;
	}
	memcpy(c->p4.slots, ip->p4.slots, ip->p4.n * sizeof(struct slot));
	memcpy(c->p4.idx, ip->p4.idx, (ip->p4.idx_mask + 1) * sizeof(*ip->p4.idx));
	if (ip->p6.version) {
		memcpy(c->p6.slots, ip->p6.slots, ip->p6.n * sizeof(struct slot));
		memcpy(c->p6.idx, ip->p6.idx, (ip->p6.idx_mask + 1) * sizeof(*ip->p6.idx));
	}
	*pcopy = c;
	return 0;
}

static int write_state(const struct ipam *ip, const char *path, char *err, size_t errlen);

int ipam_save(const struct ipam *ip, const char *path, char *err, size_t errlen)
{
	struct ipam *snap = NULL;
	int r;

	if (!ip->shared)
		return write_state(ip, path, err, errlen);
	/* Shared: copy under the lock, write and fsync without it, so the
	 * workers wait for a memcpy, not for the disk. */
	if ((r = lock(ip)) == 0) {
		r = copy_of(ip, &snap);
		unlock(ip);
	}
	if (r != 0) {
		(void)snprintf(err, errlen, "%s: cannot snapshot the pool: %s", path, zg_strerror(r));
		return r;
	}
	r = write_state(snap, path, err, errlen);
	ipam_free(snap);
	return r;
}

static int write_state(const struct ipam *ip, const char *path, char *err, size_t errlen)
{
	char a[INET6_ADDRSTRLEN], *buf = NULL;
	size_t len = 0;
	uint8_t b[16];
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (f == NULL) {
		(void)snprintf(err, errlen, "%s: out of memory", path);
		return ZG_ERR_NOMEM;
	}
	fputs(STATE_HEADER, f);
	for (int v = 0; v < 2; v++) {
		const struct pool *p = v ? &ip->p6 : &ip->p4;
		for (size_t i = 0; p->version && i < p->n; i++) {
			if (p->slots[i].state == SLOT_NEVER)
				continue;
			store(p->first + i, b, p->version);
			inet_ntop(p->version == 4 ? AF_INET : AF_INET6, b, a, sizeof(a));
			fprintf(f, "%s %s\n", p->slots[i].owner, a);
		}
	}
	if (ferror(f) | fclose(f)) {
		free(buf);
		(void)snprintf(err, errlen, "%s: out of memory", path);
		return ZG_ERR_NOMEM;
	}
	{
		const char *piece[1] = { buf };

		/* the rename is durable once this returns */
		r = atomic_write(path, 0600, piece, &len, 1, err, errlen);
	}
	free(buf);
	return r;
}

/* rename(2) that fails with EEXIST rather than replace to. */
static int rename_noreplace(const char *from, const char *to)
{
	struct stat st;

	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* a file system without RENAME_NOREPLACE (NFS): look, then rename. Only
	 * the relay and its operator write in the state file's directory. */
	if (lstat(to, &st) == 0) {
		errno = EEXIST;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	return rename(from, to);
}

int ipam_save_logged(const struct ipam *ip, const char *path, struct ipam_savelog *sl)
{
	char err[256];
	int r = ipam_save(ip, path, err, sizeof(err));

	if (r != 0) {
		sl->errors++;
		if (sl->streak++ == 0)
			log_warnx("%s; the relay goes on serving and tries again at the next change "
				  "(zgate_state_save_errors_total counts the failures)",
				  err);
		return r;
	}
	if (sl->streak > 0)
		log_info("state file %s saved again, after %llu saves that failed", path,
			 (unsigned long long)sl->streak);
	sl->streak = 0;
	return 0;
}

int ipam_set_aside(const char *path, int64_t now, char *dst, size_t dstlen, char *err,
		   size_t errlen)
{
	int e = 0, len;

	for (int n = 0; n < 100; n++) {
		len = n == 0 ? snprintf(dst, dstlen, "%s.bad.%lld", path, (long long)now)
			     : snprintf(dst, dstlen, "%s.bad.%lld.%d", path, (long long)now, n);
		if (len < 0 || (size_t)len >= dstlen) {
			(void)snprintf(err, errlen, "%s: cannot rename it: name too long", path);
			return ZG_ERR_IO;
		}
		if (rename_noreplace(path, dst) == 0) {
			fsync_dir_of(path);
			return 0;
		}
		if ((e = errno) != EEXIST)
			break;
	}
	(void)snprintf(err, errlen, "%s: cannot rename it to %s: %s", path, dst, strerror(e));
	return ZG_ERR_IO;
}

static int load_locked(struct ipam *ip, const char *path, size_t *pskipped, char *err,
		       size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[512], id[IPAM_ID_MAX + 1], addr[INET6_ADDRSTRLEN + 1], extra[2];
	struct ipam *scratch = NULL;
	size_t lineno = 0, skipped = 0;
	int r = 0;

	*pskipped = 0;
	if (!f) {
		if (errno == ENOENT)
			return 0;
		(void)snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return ZG_ERR_IO;
	}
	/* Parse everything into a copy first: a corrupt file loads nothing. */
	if ((r = copy_of(ip, &scratch)) != 0) {
		fclose(f);
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		uint8_t b[16];
		uint8_t version;
		struct pool *p;
		u128 a;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			(void)snprintf(err, errlen, "%s:%zu: line too long", path, lineno);
			r = ZG_ERR_CONFIG;
			goto out;
		}
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%64s %46s %1s", id, addr, extra) != 2 || !valid_id(id)) {
			(void)snprintf(err, errlen, "%s:%zu: expected \"<client-id> <address>\"", path, lineno);
			r = ZG_ERR_CONFIG;
			goto out;
		}
		if (inet_pton(AF_INET, addr, b) == 1)
			version = 4;
		else if (inet_pton(AF_INET6, addr, b) == 1)
			version = 6;
		else {
			(void)snprintf(err, errlen, "%s:%zu: \"%s\" is not an IP address", path, lineno, addr);
			r = ZG_ERR_CONFIG;
			goto out;
		}
		p = pool_of(scratch, version);
		a = load(b, version);
		if (!p || a < p->first || a - p->first >= p->n ||
		    p->slots[(size_t)(a - p->first)].state != SLOT_NEVER ||
		    find_owner(p, id, SLOT_FREE_REMEMBERED) >= 0) {
			skipped++; /* outside today's pool, or a duplicate */
			continue;
		}
		p->slots[(size_t)(a - p->first)].state = SLOT_FREE_REMEMBERED;
		memcpy(p->slots[(size_t)(a - p->first)].owner, id, strlen(id) + 1);
		idx_add(p, (size_t)(a - p->first));
	}
	if (ferror(f)) {
		(void)snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		r = ZG_ERR_IO;
		goto out;
	}
	/* commit: copied in place, a shared pool's slots stay in the mapping */
	memcpy(ip->p4.slots, scratch->p4.slots, ip->p4.n * sizeof(struct slot));
	if (ip->p6.version)
		memcpy(ip->p6.slots, scratch->p6.slots, ip->p6.n * sizeof(struct slot));
	idx_rebuild(&ip->p4);
	idx_rebuild(&ip->p6);
	ip->changes++;
	*pskipped = skipped;
out:
	ipam_free(scratch);
	fclose(f);
	return r;
}

int ipam_load(struct ipam *ip, const char *path, size_t *pskipped, char *err,
	      size_t errlen)
{
	int r;

	*pskipped = 0;
	if ((r = lock(ip)) != 0) {
		(void)snprintf(err, errlen, "%s: %s", path, zg_strerror(r));
		return r;
	}
	r = load_locked(ip, path, pskipped, err, errlen);
	unlock(ip);
	return r;
}
