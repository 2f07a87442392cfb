#include "routes.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "zg_err.h"

typedef unsigned __int128 u128;

static u128 load(const uint8_t *a, unsigned bytes)
{
	u128 v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v = (v << 8) | a[i];
	return v;
}

static void store(u128 v, uint8_t *a, unsigned bytes)
{
	memset(a, 0, 16);
	for (unsigned i = bytes; i-- > 0;) {
		a[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static int emit(struct route_prefix *out, size_t max, size_t *pn, uint8_t version,
		u128 addr, unsigned len, unsigned bits)
{
	if (*pn == max)
		return ZG_ERR_TOO_LARGE;
	out[*pn].version = version;
	out[*pn].len = (uint8_t)len;
	store(addr, out[*pn].addr, bits / 8);
	(*pn)++;
	return 0;
}

/* Cuts [s, e] into the fewest aligned prefixes. A /0 becomes two /1. */
static int cover(struct route_prefix *out, size_t max, size_t *pn, uint8_t version,
		 u128 s, u128 e, unsigned bits)
{
	u128 top = bits == 128 ? ~(u128)0 : (((u128)1 << bits) - 1);
	int r;

	for (;;) {
		unsigned size_log = 0; /* the block is 2^size_log addresses */
		while (size_log < bits) {
			u128 span = size_log + 1 >= 128 ? ~(u128)0 /* block size - 1 */
							: ((u128)1 << (size_log + 1)) - 1;
			if ((s & span) != 0 || s + span > e || s + span < s)
				break;
			size_log++;
		}
		if (size_log == bits) { /* the whole space: two halves */
			u128 half = (u128)1 << (bits - 1);
			if ((r = emit(out, max, pn, version, 0, 1, bits)) != 0)
				return r;
			return emit(out, max, pn, version, half, 1, bits);
		}
		if ((r = emit(out, max, pn, version, s, bits - size_log, bits)) != 0)
			return r;
		u128 last = s + (((u128)1 << size_log) - 1);
		if (last >= e || last == top)
			return 0;
		s = last + 1;
	}
}

int routes_from_ranges(const struct cip_route *r, size_t n,
		       struct route_prefix *out, size_t max, size_t *pn)
{
	size_t count = 0;
	int err;

	for (size_t i = 0; i < n; i++) {
		unsigned bytes = r[i].version == 4 ? 4 : r[i].version == 6 ? 16
									   : 0;
		if (!bytes)
			return ZG_ERR_VERSION;
		if (load(r[i].start, bytes) > load(r[i].end, bytes))
			return ZG_ERR_MALFORMED;
	}
	for (uint8_t version = 4; version <= 6; version += 2) {
		unsigned bytes = version == 4 ? 4 : 16, bits = bytes * 8;
		u128 c = 0;
		int done = 0;

		/* Sweep: the next covered address at or after c, then extend
		 * while some range starts inside or right after the union.
		 * O(n^2) per union interval; advertisements are small. */
		while (!done) {
			int found = 0;
			u128 s = 0, e = 0;
			for (size_t i = 0; i < n; i++) {
				if (r[i].version != version)
					continue;
				u128 rs = load(r[i].start, bytes), re = load(r[i].end, bytes);
				if (re < c)
					continue;
				u128 from = rs > c ? rs : c;
				if (!found || from < s) {
					s = from;
					found = 1;
				}
			}
			if (!found)
				break;
			e = s;
			for (int grew = 1; grew;) {
				grew = 0;
				for (size_t i = 0; i < n; i++) {
					if (r[i].version != version)
						continue;
					u128 rs = load(r[i].start, bytes), re = load(r[i].end, bytes);
					if (re > e && (rs <= e || rs - 1 <= e) && re >= s) {
						e = re;
						grew = 1;
					}
				}
			}
			if ((err = cover(out, max, &count, version, s, e, bits)) != 0)
				return err;
			u128 top = bits == 128 ? ~(u128)0 : (((u128)1 << bits) - 1);
			if (e == top)
				done = 1;
			else
				c = e + 1;
		}
	}
	*pn = count;
	return 0;
}

int routes_equal(const struct route_prefix *a, const struct route_prefix *b)
{
	return a->version == b->version && a->len == b->len &&
	       memcmp(a->addr, b->addr, a->version == 4 ? 4 : 16) == 0;
}

int routes_cmp(const struct route_prefix *a, const struct route_prefix *b)
{
	if (a->version != b->version)
		return a->version < b->version ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->addr, b->addr, a->version == 4 ? 4 : 16);
}

static int cmp_qsort(const void *a, const void *b)
{
	return routes_cmp(a, b);
}

void routes_sort(struct route_prefix *l, size_t n)
{
	if (n > 1)
		qsort(l, n, sizeof(*l), cmp_qsort);
}

int routes_find(const struct route_prefix *sorted, size_t n, const struct route_prefix *p)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = routes_cmp(&sorted[mid], p);

		if (c == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void routes_diff(const struct route_prefix *old, size_t nold,
		 const struct route_prefix *new_, size_t nnew,
		 struct route_prefix *scratch,
		 struct route_prefix *del, size_t *pndel,
		 struct route_prefix *add, size_t *pnadd)
{
	*pndel = 0;
	*pnadd = 0;
	/* scratch holds one sorted list at a time: new's, then old's */
	if (nnew > 0)
		memcpy(scratch, new_, nnew * sizeof(*scratch));
	routes_sort(scratch, nnew);
	for (size_t i = 0; i < nold; i++)
		if (!routes_find(scratch, nnew, &old[i]))
			del[(*pndel)++] = old[i];
	if (nold > 0)
		memcpy(scratch, old, nold * sizeof(*scratch));
	routes_sort(scratch, nold);
	for (size_t i = 0; i < nnew; i++)
		if (!routes_find(scratch, nold, &new_[i]))
			add[(*pnadd)++] = new_[i];
}

const char *routes_format(const struct route_prefix *p, char *buf, size_t buflen)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->version == 4 ? AF_INET : AF_INET6, p->addr, a, sizeof(a)))
		(void)snprintf(a, sizeof(a), "?");
	(void)snprintf(buf, buflen, "%s/%u", a, p->len);
	return buf;
}

int routes_parse(const char *s, struct route_prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max, len;
	struct route_prefix host;

	memset(p, 0, sizeof(*p));
	if (alen == 0 || alen >= INET6_ADDRSTRLEN)
		return ZG_ERR_INVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, p->addr) == 1)
		p->version = 4;
	else if (inet_pton(AF_INET6, buf, p->addr) == 1)
		p->version = 6;
	else
		return ZG_ERR_INVAL;
	max = p->version == 4 ? 32 : 128;
	len = max;
	if (slash != NULL) {
		const char *d = slash + 1;

		if (*d == '\0' || strlen(d) > 3)
			return ZG_ERR_INVAL;
		len = 0;
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return ZG_ERR_INVAL;
			len = len * 10 + (unsigned)(*d - '0');
		}
		if (len > max)
			return ZG_ERR_INVAL;
	}
	p->len = (uint8_t)len;
	host = *p;
	host.len = (uint8_t)max;
	/* the address must be the prefix's first: no bits after len */
	for (unsigned b = len; b < max; b++)
		if (host.addr[b / 8] & (0x80u >> (b % 8)))
			return ZG_ERR_MALFORMED;
	return 0;
}

int routes_covers(const struct route_prefix *p, const struct route_prefix *q)
{
	unsigned full = p->len / 8u, rem = p->len % 8u;

	if (p->version != q->version || p->len > q->len)
		return 0;
	if (memcmp(p->addr, q->addr, full) != 0)
		return 0;
	return rem == 0 || ((p->addr[full] ^ q->addr[full]) & (0xffu << (8 - rem)) & 0xffu) == 0;
}

struct route_prefix routes_host(const struct route_prefix *a)
{
	struct route_prefix h = *a;

	h.len = a->version == 4 ? 32 : 128;
	return h;
}

struct special {
	uint8_t version, len;
	uint8_t addr[16];
	enum route_refusal why;
};

/* Most specific first, so 255.255.255.255 is "broadcast", not "reserved". */
static const struct special specials[] = {
	{ 4, 32, { 255, 255, 255, 255 }, ROUTE_BROADCAST },
	{ 4, 8, { 0 }, ROUTE_UNSPECIFIED },
	{ 4, 8, { 127 }, ROUTE_LOOPBACK },
	{ 4, 16, { 169, 254 }, ROUTE_LINK_LOCAL },
	{ 4, 4, { 224 }, ROUTE_MULTICAST },
	{ 4, 4, { 240 }, ROUTE_RESERVED },
	{ 6, 128, { 0 }, ROUTE_UNSPECIFIED },
	{ 6, 128, { [15] = 1 }, ROUTE_LOOPBACK },
	{ 6, 96, { [10] = 0xff, [11] = 0xff }, ROUTE_RESERVED },
	{ 6, 10, { 0xfe, 0x80 }, ROUTE_LINK_LOCAL },
	{ 6, 8, { 0xff }, ROUTE_MULTICAST },
};

enum route_refusal routes_special(const struct route_prefix *p)
{
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		struct route_prefix s;

		memset(&s, 0, sizeof(s));
		s.version = specials[i].version;
		s.len = specials[i].len;
		memcpy(s.addr, specials[i].addr, 16);
		if (routes_covers(&s, p))
			return specials[i].why;
	}
	return ROUTE_OK;
}

int routes_is_private(const struct route_prefix *a)
{
	static const struct route_prefix priv[] = {
		{ 4, { 10 }, 8 },
		{ 4, { 172, 16 }, 12 },
		{ 4, { 192, 168 }, 16 },
		{ 4, { 100, 64 }, 10 },
		{ 6, { 0xfc }, 7 },
	};

	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++)
		if (routes_covers(&priv[i], a))
			return 1;
	return 0;
}

enum route_refusal routes_check_address(const struct route_prefix *a,
					const struct route_prefix *relay,
					const struct route_prefix *tun, size_t ntun)
{
	struct route_prefix h = routes_host(a);
	enum route_refusal r = routes_special(&h);

	if (r != ROUTE_OK)
		return r;
	if (relay != NULL && relay->version != 0 && routes_covers(&h, relay))
		return ROUTE_RELAY;
	if (routes_is_private(&h))
		return ROUTE_OK;
	for (size_t i = 0; i < ntun; i++)
		if (routes_covers(&tun[i], &h))
			return ROUTE_OK;
	return ROUTE_NOT_TUNNELED;
}

enum route_refusal routes_check_route(const struct route_prefix *p,
				      const struct route_prefix *relay,
				      const struct route_prefix *accept, size_t naccept,
				      int filter)
{
	enum route_refusal r = routes_special(p);

	if (r != ROUTE_OK)
		return r;
	/* a host route to the relay: nothing but the relay's own path */
	if (relay != NULL && relay->version != 0 && routes_covers(relay, p))
		return ROUTE_RELAY;
	if (!filter)
		return ROUTE_OK;
	for (size_t i = 0; i < naccept; i++)
		if (routes_covers(&accept[i], p))
			return ROUTE_OK;
	return ROUTE_NOT_ACCEPTED;
}

enum route_refusal routes_check_kernel(const struct route_lookup *k, int tun_ifindex)
{
	if (!k->found || (k->oif != 0 && k->oif == tun_ifindex))
		return ROUTE_OK;
	if (k->local)
		return ROUTE_LOCAL;
	if (k->len > 0)
		return ROUTE_HIJACK;
	return ROUTE_OK;
}

enum route_refusal routes_check_kernel_route(const struct route_lookup *k,
					     const struct route_prefix *p, int tun_ifindex)
{
	if (!k->found || k->local || (k->oif != 0 && k->oif == tun_ifindex) || k->len == 0)
		return ROUTE_OK;
	return k->len <= p->len ? ROUTE_HIJACK : ROUTE_OK;
}

struct route_prefix routes_last(const struct route_prefix *p)
{
	struct route_prefix h = *p;
	unsigned bits = p->version == 4 ? 32u : 128u;

	for (unsigned b = p->len; b < bits; b++)
		h.addr[b / 8] |= (uint8_t)(0x80u >> (b % 8));
	h.len = (uint8_t)bits;
	return h;
}

const char *routes_refusal_name(enum route_refusal r)
{
	switch (r) {
	case ROUTE_OK:
		return "ok";
	case ROUTE_UNSPECIFIED:
		return "unspecified";
	case ROUTE_LOOPBACK:
		return "loopback";
	case ROUTE_LINK_LOCAL:
		return "link_local";
	case ROUTE_MULTICAST:
		return "multicast";
	case ROUTE_BROADCAST:
		return "broadcast";
	case ROUTE_RESERVED:
		return "reserved";
	case ROUTE_RELAY:
		return "relay_address";
	case ROUTE_NOT_TUNNELED:
		return "not_tunneled";
	case ROUTE_LOCAL:
		return "local_address";
	case ROUTE_HIJACK:
		return "overlaps_route";
	case ROUTE_NOT_ACCEPTED:
		return "not_accepted";
	case ROUTE_COVERS_RELAY:
		return "covers_relay";
	case ROUTE_IPV6_OFF:
		return "ipv6_off";
	}
	return "unknown";
}

const char *routes_refusal_why(enum route_refusal r)
{
	switch (r) {
	case ROUTE_OK:
		return "acceptable";
	case ROUTE_UNSPECIFIED:
		return "an unspecified (\"this network\") address";
	case ROUTE_LOOPBACK:
		return "a loopback address";
	case ROUTE_LINK_LOCAL:
		return "a link-local address";
	case ROUTE_MULTICAST:
		return "a multicast address";
	case ROUTE_BROADCAST:
		return "the broadcast address";
	case ROUTE_RESERVED:
		return "a reserved address";
	case ROUTE_RELAY:
		return "the relay's own address, whose path must stay outside the tunnel";
	case ROUTE_NOT_TUNNELED:
		return "a global address the tunnel does not route: taking it would capture "
		       "this machine's traffic to it";
	case ROUTE_LOCAL:
		return "already an address of this machine on another interface";
	case ROUTE_HIJACK:
		return "reached through another interface's route: taking it would cut this "
		       "machine off it";
	case ROUTE_NOT_ACCEPTED:
		return "outside accept_routes";
	case ROUTE_COVERS_RELAY:
		return "covers the relay and the relay's own path cannot be kept outside the "
		       "tunnel: it would loop";
	case ROUTE_IPV6_OFF:
		return "IPv6, and ipv6 is off in this agent's configuration: the machine's own IPv6 "
		       "would go into a tunnel that gives it no address";
	}
	return "unknown";
}
