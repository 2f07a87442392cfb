#include "relay/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

#define NB_BUCKETS 4096 /* bindings, power of two */
#define NC_BUCKETS 1024 /* clients, power of two */

struct nclient;

struct nbind {
	struct nbind *hnext;         /* bucket chain */
	struct nbind *cnext, *cprev; /* the client's list */
	struct nclient *cl;
	struct stack_addr a;
	struct names_binding b;
};

struct nclient {
	struct nclient *hnext;
	struct nbind *binds;
	size_t n;
	int changed;
	char id[STACK_ID_MAX];
};

struct names {
	struct names_config cfg;
	struct nbind *buckets[NB_BUCKETS];
	struct nclient *clients[NC_BUCKETS];
	struct names_counts cnt;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static size_t client_slot(const char *id)
{
	uint64_t h = fnv(0xcbf29ce484222325ull, id, strlen(id));

	return (size_t)(h ^ (h >> 32)) & (NC_BUCKETS - 1);
}

static size_t bind_slot(const struct nclient *cl, const struct stack_addr *a)
{
	uint64_t h = fnv(0xcbf29ce484222325ull, &cl, sizeof(cl));

	h = fnv(h, a->a, a->version == 4 ? 4 : 16);
	return (size_t)(h ^ (h >> 32)) & (NB_BUCKETS - 1);
}

static struct nclient *client_find(const struct names *n, const char *id)
{
	struct nclient *c;

	for (c = n->clients[client_slot(id)]; c != NULL; c = c->hnext)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static struct nbind *bind_find(const struct names *n, const struct nclient *cl,
			       const struct stack_addr *a)
{
	struct nbind *b;

	for (b = n->buckets[bind_slot(cl, a)]; b != NULL; b = b->hnext)
		if (b->cl == cl && stack_addr_eq(&b->a, a))
			return b;
	return NULL;
}

int names_new(const struct names_config *cfg, struct names **pn)
{
	struct names *n;

	if (cfg == NULL || cfg->ttl_floor_ms > cfg->ttl_cap_ms)
		return ZG_ERR_INVAL;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return ZG_ERR_NOMEM;
	n->cfg = *cfg;
	*pn = n;
	return 0;
}

static void bind_remove(struct names *n, struct nbind *b)
{
	struct nbind **pp = &n->buckets[bind_slot(b->cl, &b->a)];

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
	if (b->cprev)
		b->cprev->cnext = b->cnext;
	else
		b->cl->binds = b->cnext;
	if (b->cnext)
		b->cnext->cprev = b->cprev;
	b->cl->n--;
	n->cnt.bindings--;
	free(b);
}

static void client_remove(struct names *n, struct nclient *c)
{
	struct nclient **pp = &n->clients[client_slot(c->id)];

	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	free(c);
}

void names_free(struct names *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < NC_BUCKETS; i++) {
		while (n->clients[i] != NULL) {
			struct nclient *c = n->clients[i];
			while (c->binds != NULL)
				bind_remove(n, c->binds);
			client_remove(n, c);
		}
	}
	free(n);
}

int names_bind(struct names *n, const char *client, const struct stack_addr *a,
	       const char *rule, const char *name, uint32_t ttl_s, uint64_t now_ms)
{
	struct nclient *cl;
	struct nbind *b;
	uint64_t ttl_ms = (uint64_t)ttl_s * 1000, exp;

	if (a == NULL || (a->version != 4 && a->version != 6) || client == NULL ||
	    strlen(client) >= STACK_ID_MAX)
		return ZG_ERR_INVAL;
	if (ttl_ms < n->cfg.ttl_floor_ms)
		ttl_ms = n->cfg.ttl_floor_ms;
	if (ttl_ms > n->cfg.ttl_cap_ms)
		ttl_ms = n->cfg.ttl_cap_ms;
	exp = now_ms + ttl_ms;
	if ((cl = client_find(n, client)) == NULL) {
		if (n->cfg.max_per_client == 0) {
			n->cnt.cap_hits++;
			return ZG_ERR_LIMIT;
		}
		if ((cl = calloc(1, sizeof(*cl))) == NULL)
			return ZG_ERR_NOMEM;
		memcpy(cl->id, client, strlen(client) + 1);
		size_t s = client_slot(client);
		cl->hnext = n->clients[s];
		n->clients[s] = cl;
	}
	if ((b = bind_find(n, cl, a)) != NULL) {
		if (exp > b->b.expires_ms)
			b->b.expires_ms = exp;
		(void)snprintf(b->b.rule, sizeof(b->b.rule), "%s", rule);
		(void)snprintf(b->b.name, sizeof(b->b.name), "%s", name);
		return 0;
	}
	if (cl->n >= n->cfg.max_per_client) {
		n->cnt.cap_hits++;
		return ZG_ERR_LIMIT;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return ZG_ERR_NOMEM;
	b->cl = cl;
	b->a = *a;
	b->b.expires_ms = exp;
	(void)snprintf(b->b.rule, sizeof(b->b.rule), "%s", rule);
	(void)snprintf(b->b.name, sizeof(b->b.name), "%s", name);
	size_t s = bind_slot(cl, a);
	b->hnext = n->buckets[s];
	n->buckets[s] = b;
	b->cnext = cl->binds;
	if (cl->binds)
		cl->binds->cprev = b;
	cl->binds = b;
	cl->n++;
	n->cnt.bindings++;
	n->cnt.learned++;
	return 1;
}

const struct names_binding *names_lookup(const struct names *n, const char *client,
					 const struct stack_addr *a, uint64_t now_ms)
{
	const struct nclient *cl = client_find(n, client);
	const struct nbind *b;

	if (cl == NULL || (b = bind_find(n, cl, a)) == NULL || now_ms >= b->b.expires_ms)
		return NULL;
	return &b->b;
}

uint64_t names_expire(struct names *n, uint64_t now_ms,
		      void (*changed)(void *ctx, const char *client), void *ctx)
{
	uint64_t next = UINT64_MAX;

	for (size_t i = 0; i < NC_BUCKETS; i++) {
		struct nclient *c = n->clients[i], *cnext;
		for (; c != NULL; c = cnext) {
			struct nbind *b = c->binds, *bnext;
			int lost = 0;
			cnext = c->hnext;
			for (; b != NULL; b = bnext) {
				bnext = b->cnext;
				if (now_ms >= b->b.expires_ms) {
					bind_remove(n, b);
					n->cnt.expired++;
					lost = 1;
				} else if (b->b.expires_ms < next) {
					next = b->b.expires_ms;
				}
			}
			if (lost && changed != NULL)
				changed(ctx, c->id);
			if (c->n == 0)
				client_remove(n, c);
		}
	}
	return next;
}

size_t names_routes(const struct names *n, const char *client, struct cip_route *out,
		    size_t max, size_t *pall)
{
	const struct nclient *cl = client_find(n, client);
	size_t k = 0;

	if (pall != NULL)
		*pall = cl ? cl->n : 0;
	for (const struct nbind *b = cl ? cl->binds : NULL; b != NULL && k < max; b = b->cnext) {
		struct cip_route *r = &out[k++];
		memset(r, 0, sizeof(*r));
		r->version = b->a.version;
		memcpy(r->start, b->a.a, b->a.version == 4 ? 4 : 16);
		memcpy(r->end, b->a.a, b->a.version == 4 ? 4 : 16);
		r->proto = 0;
	}
	return k;
}

void names_forget_client(struct names *n, const char *client)
{
	struct nclient *c = client_find(n, client);

	if (c == NULL)
		return;
	while (c->binds != NULL)
		bind_remove(n, c->binds);
	client_remove(n, c);
}

void names_get_counts(const struct names *n, struct names_counts *c)
{
	*c = n->cnt;
}
