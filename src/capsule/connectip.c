#include "connectip.h"

#include <stdlib.h>
#include <string.h>

#include "capsule.h"
#include "varint.h"
#include "zg_err.h"

size_t cip_addr_len(uint8_t version)
{
	return version == 4 ? 4 : version == 6 ? 16
					       : 0;
}

static int tail_zero(const uint8_t *a, size_t from)
{
	for (size_t i = from; i < 16; i++)
		if (a[i])
			return 0;
	return 1;
}

int cip_addr_validate(const struct cip_addr *a)
{
	size_t alen = cip_addr_len(a->version);
	unsigned plen = a->prefix_len, full, rem;

	if (alen == 0)
		return ZG_ERR_VERSION;
	if (!tail_zero(a->addr, alen))
		return ZG_ERR_INVAL;
	if (plen > alen * 8)
		return ZG_ERR_PREFIX;
	full = plen / 8;
	rem = plen % 8;
	if (rem && (a->addr[full] & (0xffu >> rem)))
		return ZG_ERR_PREFIX;
	for (size_t i = full + (rem ? 1 : 0); i < alen; i++)
		if (a->addr[i])
			return ZG_ERR_PREFIX;
	return 0;
}

/* Decodes entries until the value ends; shared by assign and request. */
static int addr_list_decode(const uint8_t *v, size_t len, struct cip_addr *out,
			    size_t max, size_t *pn)
{
	const uint8_t *p = v, *end = v + len;
	size_t n = 0, alen;
	struct cip_addr a;
	int r;

	while (p < end) {
		memset(&a, 0, sizeof(a));
		if (varint_decode(&p, end, &a.request_id) != 0 || p >= end)
			return ZG_ERR_MALFORMED;
		a.version = *p++;
		alen = cip_addr_len(a.version);
		if (alen == 0)
			return ZG_ERR_VERSION;
		if ((size_t)(end - p) < alen + 1)
			return ZG_ERR_MALFORMED;
		memcpy(a.addr, p, alen);
		p += alen;
		a.prefix_len = *p++;
		if ((r = cip_addr_validate(&a)) != 0)
			return r;
		if (n == max)
			return ZG_ERR_TOO_LARGE;
		out[n++] = a;
	}
	*pn = n;
	return 0;
}

int cip_addr_assign_decode(const uint8_t *v, size_t len, struct cip_addr *out,
			   size_t max, size_t *pn)
{
	return addr_list_decode(v, len, out, max, pn);
}

int cip_addr_request_decode(const uint8_t *v, size_t len, struct cip_addr *out,
			    size_t max, size_t *pn)
{
	size_t n;
	int r;

	if ((r = addr_list_decode(v, len, out, max, &n)) != 0)
		return r;
	if (n == 0)
		return ZG_ERR_EMPTY;
	for (size_t i = 0; i < n; i++)
		if (out[i].request_id == 0)
			return ZG_ERR_REQUEST_ID;
	*pn = n;
	return 0;
}

static int addr_list_encode(uint8_t **pp, const uint8_t *end, uint64_t type,
			    const struct cip_addr *a, size_t n, int request)
{
	size_t vlen = 0, alen;
	uint8_t *p;
	int r;

	if (request && n == 0)
		return ZG_ERR_EMPTY;
	for (size_t i = 0; i < n; i++) {
		if ((r = cip_addr_validate(&a[i])) != 0)
			return r;
		if (request && a[i].request_id == 0)
			return ZG_ERR_REQUEST_ID;
		if (varint_len(a[i].request_id) == 0)
			return ZG_ERR_RANGE;
		vlen += varint_len(a[i].request_id) + 2 + cip_addr_len(a[i].version);
	}
	p = *pp;
	if ((r = capsule_encode_header(&p, end, type, vlen)) != 0)
		return r;
	if ((size_t)(end - p) < vlen)
		return ZG_ERR_BUFSHORT;
	for (size_t i = 0; i < n; i++) {
		alen = cip_addr_len(a[i].version);
		p = varint_put(p, a[i].request_id);
		*p++ = a[i].version;
		memcpy(p, a[i].addr, alen);
		p += alen;
		*p++ = a[i].prefix_len;
	}
	*pp = p;
	return 0;
}

int cip_addr_assign_encode(uint8_t **pp, const uint8_t *end,
			   const struct cip_addr *a, size_t n)
{
	return addr_list_encode(pp, end, CAPSULE_ADDRESS_ASSIGN, a, n, 0);
}

int cip_addr_request_encode(uint8_t **pp, const uint8_t *end,
			    const struct cip_addr *a, size_t n)
{
	return addr_list_encode(pp, end, CAPSULE_ADDRESS_REQUEST, a, n, 1);
}

int cip_addr_refusal(const struct cip_addr *req, struct cip_addr *out)
{
	size_t alen = cip_addr_len(req->version);

	if (alen == 0)
		return ZG_ERR_VERSION;
	memset(out, 0, sizeof(*out));
	out->request_id = req->request_id;
	out->version = req->version;
	out->prefix_len = (uint8_t)(alen * 8);
	return 0;
}

static int addr_equal(const struct cip_addr *x, const struct cip_addr *y)
{
	return x->version == y->version && x->prefix_len == y->prefix_len &&
	       memcmp(x->addr, y->addr, cip_addr_len(x->version)) == 0;
}

/* 1 when every entry of a[0..n) has an equal one in b[0..n). */
static int addr_all_in(const struct cip_addr *a, const struct cip_addr *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		while (k < n && !addr_equal(&a[i], &b[k]))
			k++;
		if (k == n)
			return 0;
	}
	return 1;
}

int cip_addr_same_set(const struct cip_addr *a, size_t na, const struct cip_addr *b, size_t nb)
{
	return na == nb && addr_all_in(a, b, na) && addr_all_in(b, a, na);
}

/* ---------------------------------------------------------------- routes */

static int route_check_one(const struct cip_route *r)
{
	size_t alen = cip_addr_len(r->version);

	if (alen == 0)
		return ZG_ERR_VERSION;
	if (!tail_zero(r->start, alen) || !tail_zero(r->end, alen))
		return ZG_ERR_MALFORMED;
	if (memcmp(r->start, r->end, alen) > 0)
		return ZG_ERR_MALFORMED;
	return 0;
}

/* Is any protocol-0 range in z[0..nz) (sorted, disjoint) overlapping r? */
static int overlaps_any(const struct cip_route *z, size_t nz,
			const struct cip_route *r, size_t alen)
{
	size_t lo = 0, hi = nz;

	/* find the first z whose end >= r->start */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (memcmp(z[mid].end, r->start, alen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nz && memcmp(z[lo].start, r->end, alen) <= 0;
}

int cip_routes_validate(const struct cip_route *r, size_t n)
{
	size_t i, vstart = 0, nz = 0, alen;
	int e;

	for (i = 0; i < n; i++) {
		if ((e = route_check_one(&r[i])) != 0)
			return e;
		if (i == 0)
			continue;
		const struct cip_route *a = &r[i - 1], *b = &r[i];
		if (a->version > b->version)
			return ZG_ERR_ORDER;
		if (a->version < b->version)
			continue;
		if (a->proto > b->proto)
			return ZG_ERR_ORDER;
		if (a->proto == b->proto &&
		    memcmp(a->end, b->start, cip_addr_len(a->version)) >= 0)
			return ZG_ERR_ORDER;
	}
	/* Per version, the protocol-0 ranges come first (sorted by protocol),
	 * sorted and disjoint; check every other range against them. */
	for (i = 0; i < n; i++) {
		if (i == 0 || r[i].version != r[i - 1].version) {
			vstart = i;
			nz = 0;
		}
		alen = cip_addr_len(r[i].version);
		if (r[i].proto == 0)
			nz = i - vstart + 1;
		else if (nz && overlaps_any(&r[vstart], nz, &r[i], alen))
			return ZG_ERR_ORDER;
	}
	return 0;
}

int cip_route_adv_decode(const uint8_t *v, size_t len, struct cip_route *out,
			 size_t max, size_t *pn)
{
	const uint8_t *p = v, *end = v + len;
	size_t n = 0, alen;
	struct cip_route rt;
	int r;

	while (p < end) {
		memset(&rt, 0, sizeof(rt));
		rt.version = *p++;
		alen = cip_addr_len(rt.version);
		if (alen == 0)
			return ZG_ERR_VERSION;
		if ((size_t)(end - p) < 2 * alen + 1)
			return ZG_ERR_MALFORMED;
		memcpy(rt.start, p, alen);
		memcpy(rt.end, p + alen, alen);
		rt.proto = p[2 * alen];
		p += 2 * alen + 1;
		if (n == max)
			return ZG_ERR_TOO_LARGE;
		out[n++] = rt;
	}
	if ((r = cip_routes_validate(out, n)) != 0)
		return r;
	*pn = n;
	return 0;
}

int cip_route_adv_encode(uint8_t **pp, const uint8_t *end,
			 const struct cip_route *rt, size_t n)
{
	size_t vlen = 0, alen;
	uint8_t *p = *pp;
	int r;

	if ((r = cip_routes_validate(rt, n)) != 0)
		return r;
	for (size_t i = 0; i < n; i++)
		vlen += 2 + 2 * cip_addr_len(rt[i].version);
	if ((r = capsule_encode_header(&p, end, CAPSULE_ROUTE_ADVERTISEMENT, vlen)) != 0)
		return r;
	if ((size_t)(end - p) < vlen)
		return ZG_ERR_BUFSHORT;
	for (size_t i = 0; i < n; i++) {
		alen = cip_addr_len(rt[i].version);
		*p++ = rt[i].version;
		memcpy(p, rt[i].start, alen);
		memcpy(p + alen, rt[i].end, alen);
		p[2 * alen] = rt[i].proto;
		p += 2 * alen + 1;
	}
	*pp = p;
	return 0;
}

/* Big-endian address arithmetic on the first alen bytes. */
static int addr_inc(uint8_t *a, size_t alen) /* returns 1 on wrap-around */
{
	for (size_t i = alen; i-- > 0;)
		if (++a[i] != 0)
			return 0;
	return 1;
}

static void addr_dec(uint8_t *a, size_t alen) /* caller ensures a != 0 */
{
	for (size_t i = alen; i-- > 0;)
		if (a[i]-- != 0)
			return;
}

static int route_cmp(const void *x, const void *y)
{
	const struct cip_route *a = x, *b = y;

	if (a->version != b->version)
		return a->version < b->version ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return memcmp(a->start, b->start, 16);
}

/* Merges r[0..n) (sorted) in place; returns the new count. */
static size_t routes_merge(struct cip_route *r, size_t n)
{
	size_t out = 0, alen;
	uint8_t next[16];

	for (size_t i = 0; i < n; i++) {
		if (out > 0) {
			struct cip_route *last = &r[out - 1];
			alen = cip_addr_len(last->version);
			if (last->version == r[i].version && last->proto == r[i].proto) {
				memcpy(next, last->end, 16);
				/* touching or overlapping: start <= end + 1 */
				if (addr_inc(next, alen) ||
				    memcmp(r[i].start, next, alen) <= 0) {
					if (memcmp(r[i].end, last->end, alen) > 0)
						memcpy(last->end, r[i].end, 16);
					continue;
				}
			}
		}
		r[out++] = r[i];
	}
	return out;
}

/* Puts the next piece of the range being trimmed at r[i + *pcount]: the
 * first piece replaces r[i], later ones are inserted after it. */
static int put_piece(struct cip_route *r, size_t *pn, size_t cap, size_t i,
		     size_t *pcount, const struct cip_route *piece)
{
	size_t at = i + *pcount;

	if (*pcount > 0) {
		if (*pn == cap)
			return ZG_ERR_TOO_LARGE;
		memmove(&r[at + 1], &r[at], (*pn - at) * sizeof(*r));
		(*pn)++;
	}
	r[at] = *piece;
	(*pcount)++;
	return 0;
}

int cip_routes_normalize(struct cip_route *r, size_t n, size_t cap, size_t *pn)
{
	size_t i, z0 = 0, nz = 0, alen, count;
	struct cip_route cur, piece;
	uint8_t pos[16];
	int e, done;

	if (n > cap)
		return ZG_ERR_INVAL;
	for (i = 0; i < n; i++)
		if ((e = route_check_one(&r[i])) != 0)
			return e;
	qsort(r, n, sizeof(*r), route_cmp);
	n = routes_merge(r, n);

	/* Remove from every non-zero-protocol range what the protocol-0
	 * ranges of its version (r[z0..z0+nz), sorted and disjoint, always
	 * before it in the array) cover. O(n * nz) plus the shifts. */
	for (i = 0; i < n;) {
		if (i == 0 || r[i].version != r[i - 1].version) {
			z0 = i;
			nz = 0;
		}
		if (r[i].proto == 0) {
			nz = i - z0 + 1;
			i++;
			continue;
		}
		alen = cip_addr_len(r[i].version);
		cur = r[i];
		count = 0;
		done = 0;
		memcpy(pos, cur.start, 16);
		for (size_t k = z0; k < z0 + nz && !done; k++) {
			const struct cip_route *z = &r[k];
			if (memcmp(z->end, pos, alen) < 0)
				continue;
			if (memcmp(z->start, cur.end, alen) > 0)
				break;
			if (memcmp(z->start, pos, alen) > 0) {
				piece = cur;
				memcpy(piece.start, pos, 16);
				memcpy(piece.end, z->start, 16);
				addr_dec(piece.end, alen);
				if ((e = put_piece(r, &n, cap, i, &count, &piece)) != 0)
					return e;
			}
			if (memcmp(z->end, cur.end, alen) >= 0) {
				done = 1;
			} else {
				memcpy(pos, z->end, 16);
				addr_inc(pos, alen);
			}
		}
		if (!done) {
			piece = cur;
			memcpy(piece.start, pos, 16);
			if ((e = put_piece(r, &n, cap, i, &count, &piece)) != 0)
				return e;
		}
		if (count == 0) { /* wholly covered by protocol 0 */
			memmove(&r[i], &r[i + 1], (n - i - 1) * sizeof(*r));
			n--;
			continue;
		}
		i += count;
	}
	*pn = n;
	return 0;
}

struct gap {
	uint8_t size[16]; /* next.start - cur.end, big-endian, right-aligned */
	size_t at;        /* between r[at] and r[at + 1] */
};

static int gap_cmp(const void *x, const void *y)
{
	const struct gap *a = x, *b = y;
	int c = memcmp(a->size, b->size, 16);

	return c != 0 ? c : (a->at > b->at) - (a->at < b->at);
}

int cip_routes_coarsen(struct cip_route *r, size_t n, size_t max, size_t *pn)
{
	struct gap *g;
	uint8_t *join;
	size_t i, k, ng = 0, out = 0;
	int e;

	if (max < 2)
		return ZG_ERR_INVAL;
	for (i = 0; i < n; i++)
		r[i].proto = 0;
	if ((e = cip_routes_normalize(r, n, n, &n)) != 0)
		return e;
	if (n <= max) {
		*pn = n;
		return 0;
	}
	g = calloc(n, sizeof(*g));
	join = calloc(n, 1);
	if (g == NULL || join == NULL) {
		free(g);
		free(join);
		return ZG_ERR_NOMEM;
	}
	/* sorted by version then start, disjoint and not touching */
	for (i = 0; i + 1 < n; i++) {
		size_t alen = cip_addr_len(r[i].version), off = 16 - alen;
		int borrow = 0;

		if (r[i + 1].version != r[i].version)
			continue;
		for (size_t b = alen; b-- > 0;) {
			int d = r[i + 1].start[b] - r[i].end[b] - borrow;

			borrow = d < 0;
			g[ng].size[off + b] = (uint8_t)(d + (borrow ? 256 : 0));
		}
		g[ng++].at = i;
	}
	qsort(g, ng, sizeof(*g), gap_cmp);
	/* n - max joins, the smallest gaps first; with two versions and
	 * max >= 2 there are always enough gaps */
	for (k = 0; k < n - max && k < ng; k++)
		join[g[k].at] = 1;
	for (i = 0; i < n; i++) {
		if (out > 0 && join[i - 1])
			memcpy(r[out - 1].end, r[i].end, 16);
		else
			r[out++] = r[i];
	}
	free(g);
	free(join);
	*pn = out;
	return 0;
}
