#include "routes.h"

#include <arpa/inet.h>
#include <stdio.h>
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
		unsigned bytes = r[i].version == 4 ? 4 : r[i].version == 6 ? 16 : 0;
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

static int contains(const struct route_prefix *l, size_t n, const struct route_prefix *p)
{
	for (size_t i = 0; i < n; i++)
		if (routes_equal(&l[i], p))
			return 1;
	return 0;
}

void routes_diff(const struct route_prefix *old, size_t nold,
		 const struct route_prefix *new_, size_t nnew,
		 struct route_prefix *del, size_t *pndel,
		 struct route_prefix *add, size_t *pnadd)
{
	*pndel = 0;
	*pnadd = 0;
	for (size_t i = 0; i < nold; i++)
		if (!contains(new_, nnew, &old[i]))
			del[(*pndel)++] = old[i];
	for (size_t i = 0; i < nnew; i++)
		if (!contains(old, nold, &new_[i]))
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
