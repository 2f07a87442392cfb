#include "relay/dnsgate.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <strings.h>

#include "fnv.h"
#include "zg_err.h"

#define NAME_MAX_LEN 253

struct bucket {
	uint64_t last_ms;
	uint64_t milli_tokens; /* tokens x 1000; starts full */
	int used;
};

struct dnsgate {
	char names[DNSGATE_MAX_NAMES][NAME_MAX_LEN + 2];
	size_t nnames;
	uint32_t per_min;
	uint64_t refused_list, refused_rate; /* this process's */
	struct bucket *b;                    /* own, or sh->b */
	struct shared *sh;
	struct bucket own[DNSGATE_BUCKETS];
};

/* dnsgate_share(): the buckets in memory the forked workers share. */
struct shared {
	pthread_mutex_t mu; /* process-shared, robust */
	struct bucket b[DNSGATE_BUCKETS];
};

/* A DNS name (or ".suffix"): letters, digits, '-', '_' and dots, no empty
 * label, at most 253 characters. */
static int name_valid(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0 && i != 0)
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

int dnsgate_new(const char *resolvable, uint32_t per_min, struct dnsgate **pg, char *err,
		size_t errlen)
{
	struct dnsgate *g = calloc(1, sizeof(*g));
	const char *p = resolvable;

	if (g == NULL)
		return ZG_ERR_NOMEM;
	g->b = g->own;
	g->per_min = per_min ? per_min : 1;
	while (*p != '\0') {
		size_t n, skip = 0;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (n >= 2 && p[0] == '*' && p[1] == '.')
			skip = 1; /* "*.corp" is ".corp" */
		if (!name_valid(p + skip, n - skip) || g->nnames == DNSGATE_MAX_NAMES) {
			zg_seterr(err, errlen,
				  "dns.resolvable: \"%.*s\" is not a DNS name or .suffix (at most %d entries)",
				  (int)(n > 80 ? 80 : n), p, DNSGATE_MAX_NAMES);
			free(g);
			return ZG_ERR_CONFIG;
		}
		memcpy(g->names[g->nnames], p + skip, n - skip);
		g->names[g->nnames][n - skip] = '\0';
		g->nnames++;
		p += n;
	}
	*pg = g;
	return 0;
}

int dnsgate_share(struct dnsgate *g)
{
	pthread_mutexattr_t a;
	struct shared *sh;

	if (g->sh != NULL)
		return 0;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return ZG_ERR_NOMEM;
	if (pthread_mutexattr_init(&a) != 0) {
		(void)munmap(sh, sizeof(*sh));
		return ZG_ERR_NOMEM;
	}
	if (pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(&sh->mu, &a) != 0) {
		pthread_mutexattr_destroy(&a);
		(void)munmap(sh, sizeof(*sh));
		return ZG_ERR_NOMEM;
	}
	pthread_mutexattr_destroy(&a);
	memcpy(sh->b, g->own, sizeof(sh->b));
	g->sh = sh;
	g->b = sh->b;
	return 0;
}

void dnsgate_free(struct dnsgate *g)
{
	if (g != NULL && g->sh != NULL)
		(void)munmap(g->sh, sizeof(*g->sh));
	free(g);
}

int dnsgate_name_ok(struct dnsgate *g, const char *name)
{
	size_t n = strlen(name);

	if (g->nnames == 0)
		return 1;
	if (n > 0 && name[n - 1] == '.')
		n--;
	for (size_t i = 0; i < g->nnames; i++) {
		const char *e = g->names[i];
		size_t el = strlen(e);

		if (e[0] == '.') {
			/* every name under the suffix (not the suffix itself) */
			if (n > el && strncasecmp(name + n - el, e, el) == 0)
				return 1;
		} else if (n == el && strncasecmp(name, e, n) == 0) {
			return 1;
		}
	}
	g->refused_list++;
	return 0;
}

static uint32_t hash(const char *s)
{
	return fnv32_str(s);
}

static int take(struct dnsgate *g, struct bucket *b, uint64_t now_ms);

int dnsgate_take(struct dnsgate *g, const char *client, uint64_t now_ms)
{
	struct bucket *b = &g->b[hash(client) % DNSGATE_BUCKETS];
	int rv;

	if (g->sh == NULL)
		return take(g, b, now_ms);
	/* a worker that died holding the lock left at most one bucket
	 * half-updated: a token more or less, nothing to repair */
	if (pthread_mutex_lock(&g->sh->mu) == EOWNERDEAD)
		(void)pthread_mutex_consistent(&g->sh->mu);
	rv = take(g, b, now_ms);
	(void)pthread_mutex_unlock(&g->sh->mu);
	return rv;
}

static int take(struct dnsgate *g, struct bucket *b, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)g->per_min * 1000;

	if (!b->used) {
		b->used = 1;
		b->milli_tokens = cap;
		b->last_ms = now_ms;
	} else if (now_ms > b->last_ms) {
		/* per_min tokens a minute = per_min milli-tokens a millisecond / 60;
		 * the clock advances only by the time the added ones stand for,
		 * so no fraction is lost between close calls */
		uint64_t add = (now_ms - b->last_ms) * g->per_min / 60;

		if (b->milli_tokens + add >= cap) {
			b->milli_tokens = cap;
			b->last_ms = now_ms;
		} else {
			b->milli_tokens += add;
			b->last_ms += add * 60 / g->per_min;
		}
	}
	if (b->milli_tokens < 1000) {
		g->refused_rate++;
		return ZG_ERR_LIMIT;
	}
	b->milli_tokens -= 1000;
	return 0;
}

void dnsgate_counts(const struct dnsgate *g, uint64_t *pnot_listed, uint64_t *prate)
{
	*pnot_listed = g->refused_list;
	*prate = g->refused_rate;
}
