/*
 * zgconn.c — the ZG_CONNECTORS capsule (zgconn.h).
 */
#include "zgconn.h"

#include <string.h>

#include "capwr.h"
#include "varint.h"
#include "zg_err.h"

int zgconn_identity(const char *identity, const char **pid)
{
	size_t n = strlen(ZGCONN_IDENTITY_PREFIX);

	if (strncmp(identity, ZGCONN_IDENTITY_PREFIX, n) != 0 || identity[n] == '\0')
		return 0;
	if (pid != NULL)
		*pid = identity + n;
	return 1;
}

int zgconn_id_valid(const char *id)
{
	size_t i;

	if (id == NULL || id[0] == '\0')
		return 0;
	for (i = 0; id[i] != '\0'; i++) {
		unsigned char c = (unsigned char)id[i];

		if (i >= ZGCONN_ID_MAX - 1)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static size_t alen(uint8_t version)
{
	return version == 4 ? 4 : version == 6 ? 16
					       : 0;
}

int zgconn_prefix_contains(const struct zgconn_prefix *p, uint8_t version, const uint8_t *a)
{
	size_t full, i;
	unsigned rem;

	if (p == NULL || a == NULL || p->version != version || alen(version) == 0 ||
	    p->len > alen(version) * 8)
		return 0;
	full = p->len / 8u;
	rem = p->len % 8u;
	for (i = 0; i < full; i++)
		if (p->a[i] != a[i])
			return 0;
	if (rem != 0) {
		uint8_t m = (uint8_t)(0xffu << (8 - rem));

		if ((p->a[full] & m) != (a[full] & m))
			return 0;
	}
	return 1;
}

/* 0, ZG_ERR_VERSION or ZG_ERR_PREFIX (length or host bits). */
static int prefix_check(const struct zgconn_prefix *p, int is_addr)
{
	size_t l = alen(p->version), i;

	if (l == 0)
		return ZG_ERR_VERSION;
	if (p->len > l * 8 || (is_addr && p->len != l * 8))
		return ZG_ERR_PREFIX;
	for (i = 0; i < l; i++) {
		unsigned bit0 = (unsigned)i * 8; /* first bit of byte i */
		uint8_t host;

		if (bit0 + 8 <= p->len)
			continue;
		host = (uint8_t)(bit0 >= p->len ? 0xffu : 0xffu >> (p->len - bit0));
		if (p->a[i] & host)
			return ZG_ERR_PREFIX;
	}
	return 0;
}

/* The checks both directions share; 0 or ZG_ERR_*. */
static int entry_check(const struct zgconn *c)
{
	size_t i;
	int r;

	if (!zgconn_id_valid(c->id))
		return ZG_ERR_MALFORMED;
	if (c->naddrs > ZGCONN_MAX_ADDRS || c->nprefixes > ZGCONN_MAX_PREFIXES)
		return ZG_ERR_TOO_LARGE;
	if (c->up && (c->naddrs == 0 || c->nprefixes == 0 || c->port == 0))
		return ZG_ERR_MALFORMED;
	for (i = 0; i < c->naddrs; i++)
		if ((r = prefix_check(&c->addrs[i], 1)) != 0)
			return r;
	for (i = 0; i < c->nprefixes; i++)
		if ((r = prefix_check(&c->prefixes[i], 0)) != 0)
			return r;
	return 0;
}

/* ---------------------------------------------------------------- encode */

static void put_value(struct capwr *w, const struct zgconn *v, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const struct zgconn *c = &v[i];

		capwr_vbytes(w, c->id, strlen(c->id));
		capwr_u8(w, c->up ? 1 : 0);
		capwr_u16(w, c->port);
		capwr_varint(w, c->naddrs);
		for (j = 0; j < c->naddrs; j++) {
			capwr_u8(w, c->addrs[j].version);
			capwr_put(w, c->addrs[j].a, alen(c->addrs[j].version));
		}
		capwr_varint(w, c->nprefixes);
		for (j = 0; j < c->nprefixes; j++) {
			capwr_u8(w, c->prefixes[j].version);
			capwr_put(w, c->prefixes[j].a, alen(c->prefixes[j].version));
			capwr_u8(w, c->prefixes[j].len);
		}
	}
}

static int check_all(const struct zgconn *v, size_t n)
{
	size_t i, j;
	int r;

	if (n > ZGCONN_MAX)
		return ZG_ERR_TOO_LARGE;
	if (n > 0 && v == NULL)
		return ZG_ERR_INVAL;
	for (i = 0; i < n; i++) {
		if ((r = entry_check(&v[i])) != 0)
			return r == ZG_ERR_TOO_LARGE ? r : ZG_ERR_INVAL;
		for (j = 0; j < i; j++)
			if (strcmp(v[i].id, v[j].id) == 0)
				return ZG_ERR_INVAL;
	}
	return 0;
}

int zgconn_encode(const struct zgconn *v, size_t n, uint8_t *out, size_t cap, size_t *plen)
{
	struct capwr w;
	int r;

	if (plen == NULL || (out == NULL && cap > 0))
		return ZG_ERR_INVAL;
	if ((r = check_all(v, n)) != 0)
		return r;
	capwr_measure(&w);
	put_value(&w, v, n);
	if (w.err != 0)
		return w.err;
	if (w.n > cap)
		return ZG_ERR_BUFSHORT;
	capwr_init(&w, out, cap);
	put_value(&w, v, n);
	if (w.err != 0)
		return w.err;
	*plen = w.n;
	return 0;
}

int zgconn_encode_capsule(const struct zgconn *v, size_t n, uint8_t *out, size_t cap,
			  size_t *plen)
{
	struct capwr w;
	size_t vlen;
	int r;

	if (plen == NULL || (out == NULL && cap > 0))
		return ZG_ERR_INVAL;
	if ((r = check_all(v, n)) != 0)
		return r;
	capwr_measure(&w);
	put_value(&w, v, n);
	if (w.err != 0)
		return w.err;
	vlen = w.n;
	if (varint_len(CAPSULE_ZG_CONNECTORS) + varint_len(vlen) + vlen > cap)
		return ZG_ERR_BUFSHORT;
	capwr_init(&w, out, cap);
	capwr_varint(&w, CAPSULE_ZG_CONNECTORS);
	capwr_varint(&w, vlen);
	put_value(&w, v, n);
	if (w.err != 0)
		return w.err;
	*plen = w.n;
	return 0;
}

/* ---------------------------------------------------------------- decode */

static int get_count(const uint8_t **pp, const uint8_t *end, size_t max, size_t *pn)
{
	uint64_t v;

	if (varint_decode(pp, end, &v) != 0)
		return ZG_ERR_TRUNCATED;
	if (v > max)
		return ZG_ERR_TOO_LARGE;
	*pn = (size_t)v;
	return 0;
}

static int get_prefix(const uint8_t **pp, const uint8_t *end, struct zgconn_prefix *p,
		      int is_addr)
{
	size_t l;

	memset(p, 0, sizeof(*p));
	if (end - *pp < 1)
		return ZG_ERR_TRUNCATED;
	p->version = **pp;
	l = alen(p->version);
	if (l == 0)
		return ZG_ERR_VERSION;
	if ((size_t)(end - *pp) < 1 + l + (is_addr ? 0 : 1))
		return ZG_ERR_TRUNCATED;
	memcpy(p->a, *pp + 1, l);
	p->len = is_addr ? (uint8_t)(l * 8) : (*pp)[1 + l];
	*pp += 1 + l + (is_addr ? 0 : 1);
	return prefix_check(p, is_addr);
}

int zgconn_decode(const uint8_t *val, size_t len, struct zgconn *v, size_t max, size_t *pn)
{
	const uint8_t *p = val, *end = val + len;
	size_t n = 0, i, j, l;
	int r;

	if ((val == NULL && len > 0) || v == NULL || pn == NULL)
		return ZG_ERR_INVAL;
	if (max > ZGCONN_MAX)
		max = ZGCONN_MAX;
	while (p < end) {
		struct zgconn *c;

		if (n >= max)
			return ZG_ERR_TOO_LARGE;
		c = &v[n];
		memset(c, 0, sizeof(*c));
		if ((r = get_count(&p, end, ZGCONN_ID_MAX - 1, &l)) != 0)
			return r == ZG_ERR_TOO_LARGE ? ZG_ERR_MALFORMED : r;
		if ((size_t)(end - p) < l)
			return ZG_ERR_TRUNCATED;
		memcpy(c->id, p, l);
		c->id[l] = '\0';
		if (memchr(p, '\0', l) != NULL || !zgconn_id_valid(c->id))
			return ZG_ERR_MALFORMED;
		p += l;
		if (end - p < 3)
			return ZG_ERR_TRUNCATED;
		if (p[0] > 1)
			return ZG_ERR_MALFORMED;
		c->up = p[0];
		c->port = (uint16_t)(p[1] << 8 | p[2]);
		p += 3;
		if ((r = get_count(&p, end, ZGCONN_MAX_ADDRS, &c->naddrs)) != 0)
			return r;
		for (i = 0; i < c->naddrs; i++)
			if ((r = get_prefix(&p, end, &c->addrs[i], 1)) != 0)
				return r;
		if ((r = get_count(&p, end, ZGCONN_MAX_PREFIXES, &c->nprefixes)) != 0)
			return r;
		for (i = 0; i < c->nprefixes; i++)
			if ((r = get_prefix(&p, end, &c->prefixes[i], 0)) != 0)
				return r;
		if ((r = entry_check(c)) != 0)
			return r;
		for (j = 0; j < n; j++)
			if (strcmp(v[j].id, c->id) == 0)
				return ZG_ERR_MALFORMED;
		n++;
	}
	*pn = n;
	return 0;
}
