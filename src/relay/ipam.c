#include "relay/ipam.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zg_err.h"

typedef unsigned __int128 u128;

enum slot_state {
	SLOT_NEVER = 0,
	SLOT_FREE_REMEMBERED,
	SLOT_HELD
};

struct slot {
	uint8_t state;
	char owner[IPAM_ID_MAX]; /* "" for SLOT_NEVER */
};

struct pool {
	uint8_t version; /* 0: no pool */
	u128 first;      /* first client address */
	u128 gateway;
	size_t n; /* client addresses */
	size_t used;
	struct slot *slots;
};

struct ipam {
	struct pool p4, p6;
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
	if (p->n == 0)
		return ZG_ERR_INVAL;
	p->slots = calloc(p->n, sizeof(*p->slots));
	return p->slots ? 0 : ZG_ERR_NOMEM;
}

int ipam_new(const struct config_prefix *pool4, const struct config_prefix *pool6,
	     uint32_t max6, struct ipam **pp)
{
	struct ipam *ip = calloc(1, sizeof(*ip));
	int r;

	if (!ip)
		return ZG_ERR_NOMEM;
	if (!pool4 || pool4->version != 4) {
		r = ZG_ERR_INVAL;
		goto fail;
	}
	if ((r = pool_init(&ip->p4, pool4, IPAM_MAX_CLIENTS)) != 0)
		goto fail;
	if (pool6 && pool6->version == 6 && (r = pool_init(&ip->p6, pool6, max6 && max6 < IPAM_MAX_CLIENTS ? max6 : IPAM_MAX_CLIENTS)) != 0)
		goto fail;
	*pp = ip;
	return 0;
fail:
	ipam_free(ip);
	return r;
}

void ipam_free(struct ipam *ip)
{
	if (!ip)
		return;
	free(ip->p4.slots);
	free(ip->p6.slots);
	free(ip);
}

/* FNV-1a: fixed, so an ID maps to the same slot on every relay. */
static uint64_t id_hash(const char *id)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *s = (const unsigned char *)id; *s; s++) {
		h ^= *s;
		h *= 1099511628211ULL;
	}
	return h;
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

static long find_owner(const struct pool *p, const char *id, uint8_t state)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->slots[i].state == state && strcmp(p->slots[i].owner, id) == 0)
			return (long)i;
	return -1;
}

static void take(struct pool *p, size_t i, const char *id, uint8_t out[16])
{
	/* another client's memory of this slot is forgotten */
	if (p->slots[i].state != SLOT_HELD)
		p->used++;
	p->slots[i].state = SLOT_HELD;
	memcpy(p->slots[i].owner, id, strlen(id) + 1);
	store(p->first + i, out, p->version);
}

int ipam_alloc(struct ipam *ip, const char *client_id, uint8_t version,
	       const uint8_t *preferred, uint8_t out[16])
{
	struct pool *p = pool_of(ip, version);
	long i;
	size_t start;

	if (!valid_id(client_id))
		return ZG_ERR_INVAL;
	if (!p)
		return ZG_ERR_NOTFOUND;
	if ((i = find_owner(p, client_id, SLOT_HELD)) >= 0) {
		store(p->first + (size_t)i, out, version);
		return 0;
	}
	if (preferred) {
		u128 a = load(preferred, version);
		if (a >= p->first && a - p->first < p->n) {
			struct slot *s = &p->slots[(size_t)(a - p->first)];
			if (s->state == SLOT_NEVER || strcmp(s->owner, client_id) == 0) {
				take(p, (size_t)(a - p->first), client_id, out);
				return 0;
			}
		}
	}
	if ((i = find_owner(p, client_id, SLOT_FREE_REMEMBERED)) >= 0) {
		take(p, (size_t)i, client_id, out);
		return 0;
	}
	start = (size_t)(id_hash(client_id) % p->n);
	for (size_t k = 0; k < p->n; k++) {
		size_t j = (start + k) % p->n;
		if (p->slots[j].state == SLOT_NEVER) {
			take(p, j, client_id, out);
			return 0;
		}
	}
	for (size_t k = 0; k < p->n; k++) { /* reclaim someone's memory */
		size_t j = (start + k) % p->n;
		if (p->slots[j].state == SLOT_FREE_REMEMBERED) {
			take(p, j, client_id, out);
			return 0;
		}
	}
	return ZG_ERR_LIMIT;
}

int ipam_release(struct ipam *ip, const char *client_id, uint8_t version)
{
	struct pool *p = pool_of(ip, version);
	long i;

	if (!p || (i = find_owner(p, client_id, SLOT_HELD)) < 0)
		return ZG_ERR_NOTFOUND;
	p->slots[i].state = SLOT_FREE_REMEMBERED;
	p->used--;
	return 0;
}

int ipam_lookup(const struct ipam *ip, const char *client_id, uint8_t version,
		uint8_t out[16])
{
	const struct pool *p = cpool_of(ip, version);
	long i;

	if (!p || (i = find_owner(p, client_id, SLOT_HELD)) < 0)
		return ZG_ERR_NOTFOUND;
	store(p->first + (size_t)i, out, version);
	return 0;
}

int ipam_known(const struct ipam *ip, const char *client_id, uint8_t version, uint8_t out[16])
{
	const struct pool *p = cpool_of(ip, version);
	long i;

	if (!p)
		return ZG_ERR_NOTFOUND;
	if ((i = find_owner(p, client_id, SLOT_HELD)) < 0 &&
	    (i = find_owner(p, client_id, SLOT_FREE_REMEMBERED)) < 0)
		return ZG_ERR_NOTFOUND;
	store(p->first + (size_t)i, out, version);
	return 0;
}

int ipam_assign(struct ipam *ip, const char *client_id, uint8_t version, const uint8_t *addr)
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
		p->slots[i].state = SLOT_NEVER;
		p->slots[i].owner[0] = '\0';
		p->used--;
	}
	while ((i = find_owner(p, client_id, SLOT_FREE_REMEMBERED)) >= 0 &&
	       (size_t)i != (size_t)(a - p->first)) {
		p->slots[i].state = SLOT_NEVER;
		p->slots[i].owner[0] = '\0';
	}
	take(p, (size_t)(a - p->first), client_id, out);
	return 0;
}

int ipam_gateway(const struct ipam *ip, uint8_t version, uint8_t out[16])
{
	const struct pool *p = cpool_of(ip, version);

	if (!p)
		return ZG_ERR_NOTFOUND;
	store(p->gateway, out, version);
	return 0;
}

size_t ipam_size(const struct ipam *ip, uint8_t version)
{
	const struct pool *p = cpool_of(ip, version);
	return p ? p->n : 0;
}

size_t ipam_used(const struct ipam *ip, uint8_t version)
{
	const struct pool *p = cpool_of(ip, version);
	return p ? p->used : 0;
}

#define STATE_HEADER "# zgate ipam state v1: <client-id> <address>\n"

int ipam_save(const struct ipam *ip, const char *path, char *err, size_t errlen)
{
	char tmp[4096], dirbuf[4096], a[INET6_ADDRSTRLEN];
	uint8_t b[16];
	FILE *f = NULL;
	int fd = -1, dfd, e;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp)) {
		(void)snprintf(err, errlen, "%s: path too long", path);
		return ZG_ERR_IO;
	}
	if ((fd = mkstemp(tmp)) < 0 || !(f = fdopen(fd, "w"))) {
		e = errno;
		(void)snprintf(err, errlen, "%s: cannot create temporary file %s: %s", path, tmp, strerror(e));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		errno = e;
		return ZG_ERR_IO;
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
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || ferror(f)) {
		e = errno;
		(void)snprintf(err, errlen, "%s: cannot write %s: %s", path, tmp, strerror(e));
		fclose(f);
		unlink(tmp);
		errno = e;
		return ZG_ERR_IO;
	}
	fclose(f);
	if (rename(tmp, path) != 0) {
		e = errno;
		(void)snprintf(err, errlen, "%s: cannot rename %s into place: %s", path, tmp, strerror(e));
		unlink(tmp);
		errno = e;
		return ZG_ERR_IO;
	}
	(void)snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	if ((dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd); /* best effort: the rename is durable once this returns */
		close(dfd);
	}
	return 0;
}

int ipam_load(struct ipam *ip, const char *path, size_t *pskipped, char *err,
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
	if (!(scratch = calloc(1, sizeof(*scratch)))) {
		fclose(f);
		return ZG_ERR_NOMEM;
	}
	*scratch = *ip;
	scratch->p4.slots = calloc(ip->p4.n, sizeof(struct slot));
	scratch->p6.slots = ip->p6.version ? calloc(ip->p6.n, sizeof(struct slot)) : NULL;
	if (!scratch->p4.slots || (ip->p6.version && !scratch->p6.slots)) {
		r = ZG_ERR_NOMEM;
		goto out;
	}
	memcpy(scratch->p4.slots, ip->p4.slots, ip->p4.n * sizeof(struct slot));
	if (ip->p6.version)
		memcpy(scratch->p6.slots, ip->p6.slots, ip->p6.n * sizeof(struct slot));
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
	}
	if (ferror(f)) {
		(void)snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		r = ZG_ERR_IO;
		goto out;
	}
	/* commit */
	free(ip->p4.slots);
	free(ip->p6.slots);
	ip->p4.slots = scratch->p4.slots;
	ip->p6.slots = scratch->p6.slots;
	scratch->p4.slots = scratch->p6.slots = NULL;
	*pskipped = skipped;
out:
	if (scratch) {
		free(scratch->p4.slots);
		free(scratch->p6.slots);
		free(scratch);
	}
	fclose(f);
	return r;
}
