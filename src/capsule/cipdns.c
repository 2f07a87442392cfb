#include "cipdns.h"

#include <string.h>

#include "capsule.h"
#include "capwr.h"
#include "varint.h"
#include "zg_err.h"

static int label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

int cipdns_name_ok(const char *s, size_t len, int allow_root)
{
	size_t i, lab = 0;

	if (len == 0 || (len == 1 && s[0] == '.'))
		return allow_root;
	if (s[len - 1] == '.')
		len--; /* a fully qualified name may end with the root's dot */
	if (len > CIPDNS_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (lab == 0)
				return 0; /* empty label */
			lab = 0;
			continue;
		}
		if (!label_char((unsigned char)s[i]) || ++lab > 63)
			return 0;
	}
	return lab > 0;
}

int cipdns_svcparams_check(const uint8_t *p, size_t len, int has_auth, size_t naddrs)
{
	const uint8_t *end = len ? p + len : p; /* p may be NULL when len is 0 */
	long prev = -1;
	int no_default = 0;
	unsigned key, vlen;

	while (p < end) {
		if (end - p < 4)
			return ZG_ERR_MALFORMED;
		key = (unsigned)p[0] << 8 | p[1];
		vlen = (unsigned)p[2] << 8 | p[3];
		p += 4;
		if ((long)key <= prev || (size_t)(end - p) < vlen)
			return ZG_ERR_MALFORMED; /* RFC 9460 §2.2: strictly increasing */
		prev = (long)key;
		if (key == CIPDNS_SVC_IPV4HINT || key == CIPDNS_SVC_IPV6HINT)
			return ZG_ERR_MALFORMED;
		if ((key == CIPDNS_SVC_ALPN || key == CIPDNS_SVC_NO_DEFAULT_ALPN) && !has_auth)
			return ZG_ERR_MALFORMED;
		if (key == CIPDNS_SVC_NO_DEFAULT_ALPN) {
			if (vlen != 0)
				return ZG_ERR_MALFORMED;
			no_default = 1;
		}
		p += vlen;
	}
	if (!no_default && naddrs == 0)
		return ZG_ERR_MALFORMED; /* unencrypted DNS needs an address */
	return 0;
}

/* ---------------------------------------------------------------- decode */

static int get_count(const uint8_t **pp, const uint8_t *end, size_t max, size_t *pn)
{
	uint64_t v;

	if (varint_decode(pp, end, &v) != 0)
		return ZG_ERR_MALFORMED;
	if (v > max)
		return ZG_ERR_TOO_LARGE;
	*pn = (size_t)v;
	return 0;
}

static int get_name(const uint8_t **pp, const uint8_t *end, char *out, int allow_root)
{
	uint64_t v;

	if (varint_decode(pp, end, &v) != 0)
		return ZG_ERR_MALFORMED;
	if (v > CIPDNS_NAME_MAX + 1)
		return ZG_ERR_MALFORMED; /* no domain name is that long */
	if ((uint64_t)(end - *pp) < v)
		return ZG_ERR_MALFORMED;
	if (!cipdns_name_ok((const char *)*pp, (size_t)v, allow_root))
		return ZG_ERR_MALFORMED;
	memcpy(out, *pp, (size_t)v);
	out[v] = '\0';
	*pp += v;
	return 0;
}

static int get_ns(const uint8_t **pp, const uint8_t *end, struct cipdns_ns *ns)
{
	uint64_t v;
	size_t i;
	int r;

	if (end - *pp < 2)
		return ZG_ERR_MALFORMED;
	ns->priority = (uint16_t)((*pp)[0] << 8 | (*pp)[1]);
	*pp += 2;
	if (ns->priority == 0)
		return ZG_ERR_MALFORMED; /* ServiceMode only */
	if ((r = get_count(pp, end, CIPDNS_MAX_ADDRS, &ns->n4)) != 0)
		return r;
	if ((size_t)(end - *pp) < ns->n4 * 4)
		return ZG_ERR_MALFORMED;
	for (i = 0; i < ns->n4; i++, *pp += 4)
		memcpy(ns->v4[i], *pp, 4);
	if ((r = get_count(pp, end, CIPDNS_MAX_ADDRS, &ns->n6)) != 0)
		return r;
	if ((size_t)(end - *pp) < ns->n6 * 16)
		return ZG_ERR_MALFORMED;
	for (i = 0; i < ns->n6; i++, *pp += 16)
		memcpy(ns->v6[i], *pp, 16);
	if ((r = get_name(pp, end, ns->auth_name, 1)) != 0)
		return r;
	if (strcmp(ns->auth_name, ".") == 0)
		ns->auth_name[0] = '\0';
	if (varint_decode(pp, end, &v) != 0)
		return ZG_ERR_MALFORMED;
	if (v > CIPDNS_SVCPARAMS_MAX)
		return ZG_ERR_TOO_LARGE;
	if ((uint64_t)(end - *pp) < v)
		return ZG_ERR_MALFORMED;
	memcpy(ns->svcparams, *pp, (size_t)v);
	ns->svcparams_len = (size_t)v;
	*pp += v;
	return cipdns_svcparams_check(ns->svcparams, ns->svcparams_len, ns->auth_name[0] != '\0',
				      ns->n4 + ns->n6);
}

static int get_domains(const uint8_t **pp, const uint8_t *end,
		       char (*out)[CIPDNS_NAME_MAX + 2], size_t *pn, int allow_root)
{
	size_t i;
	int r;

	if ((r = get_count(pp, end, CIPDNS_MAX_DOMAINS, pn)) != 0)
		return r;
	for (i = 0; i < *pn; i++)
		if ((r = get_name(pp, end, out[i], allow_root)) != 0)
			return r;
	return 0;
}

int cipdns_assign_decode(const uint8_t *v, size_t len, struct cipdns_assign *out)
{
	const uint8_t *p = v, *end = v + len;
	struct cipdns_config *c;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	if (v == NULL)
		return ZG_ERR_INVAL;
	while (p < end) {
		if (out->n == CIPDNS_MAX_CONFIGS)
			return ZG_ERR_TOO_LARGE;
		c = &out->cfg[out->n++];
		if ((r = get_count(&p, end, CIPDNS_MAX_NS, &c->nns)) != 0)
			return r;
		for (i = 0; i < c->nns; i++)
			if ((r = get_ns(&p, end, &c->ns[i])) != 0)
				return r;
		/* internal domains may name the root: every name */
		if ((r = get_domains(&p, end, c->internal, &c->ninternal, 1)) != 0)
			return r;
		if ((r = get_domains(&p, end, c->search, &c->nsearch, 0)) != 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------- encode */

static int check_ns(const struct cipdns_ns *ns)
{
	size_t alen = strlen(ns->auth_name);

	if (ns->priority == 0 || ns->n4 > CIPDNS_MAX_ADDRS || ns->n6 > CIPDNS_MAX_ADDRS ||
	    ns->svcparams_len > CIPDNS_SVCPARAMS_MAX || alen > CIPDNS_NAME_MAX + 1 ||
	    (alen != 0 && !cipdns_name_ok(ns->auth_name, alen, 0)))
		return ZG_ERR_INVAL;
	if (cipdns_svcparams_check(ns->svcparams, ns->svcparams_len, alen != 0,
				   ns->n4 + ns->n6) != 0)
		return ZG_ERR_INVAL;
	return 0;
}

static int check_names(const char (*n)[CIPDNS_NAME_MAX + 2], size_t count, int allow_root)
{
	size_t i, l;

	if (count > CIPDNS_MAX_DOMAINS)
		return ZG_ERR_INVAL;
	for (i = 0; i < count; i++) {
		l = strnlen(n[i], CIPDNS_NAME_MAX + 2);
		if (l > CIPDNS_NAME_MAX + 1 || !cipdns_name_ok(n[i], l, allow_root))
			return ZG_ERR_INVAL;
	}
	return 0;
}

static void put_name(struct capwr *w, const char *s)
{
	capwr_vbytes(w, s, strlen(s));
}

static void put_value(struct capwr *w, const struct cipdns_assign *a)
{
	const struct cipdns_config *c;
	const struct cipdns_ns *ns;
	size_t i, j, k;

	for (i = 0; i < a->n; i++) {
		c = &a->cfg[i];
		capwr_varint(w, c->nns);
		for (j = 0; j < c->nns; j++) {
			ns = &c->ns[j];
			capwr_u16(w, ns->priority);
			capwr_varint(w, ns->n4);
			for (k = 0; k < ns->n4; k++)
				capwr_put(w, ns->v4[k], 4);
			capwr_varint(w, ns->n6);
			for (k = 0; k < ns->n6; k++)
				capwr_put(w, ns->v6[k], 16);
			put_name(w, ns->auth_name);
			capwr_vbytes(w, ns->svcparams, ns->svcparams_len);
		}
		capwr_varint(w, c->ninternal);
		for (j = 0; j < c->ninternal; j++)
			put_name(w, c->internal[j]);
		capwr_varint(w, c->nsearch);
		for (j = 0; j < c->nsearch; j++)
			put_name(w, c->search[j]);
	}
}

int cipdns_assign_encode(uint8_t **pp, const uint8_t *end, const struct cipdns_assign *a)
{
	uint8_t *start = *pp;
	struct capwr w;
	const struct cipdns_config *c;
	size_t i, j, hlen;
	int r;

	if (a->n > CIPDNS_MAX_CONFIGS)
		return ZG_ERR_INVAL;
	for (i = 0; i < a->n; i++) {
		c = &a->cfg[i];
		if (c->nns > CIPDNS_MAX_NS)
			return ZG_ERR_INVAL;
		for (j = 0; j < c->nns; j++)
			if ((r = check_ns(&c->ns[j])) != 0)
				return r;
		if ((r = check_names(c->internal, c->ninternal, 1)) != 0 ||
		    (r = check_names(c->search, c->nsearch, 0)) != 0)
			return r;
	}
	capwr_measure(&w);
	put_value(&w, a);
	if (w.err != 0)
		return w.err;
	hlen = varint_len(CAPSULE_DNS_ASSIGN) + varint_len(w.n);
	if ((size_t)(end - *pp) < hlen || (size_t)(end - *pp) - hlen < w.n)
		return ZG_ERR_BUFSHORT;
	if ((r = capsule_encode_header(pp, end, CAPSULE_DNS_ASSIGN, w.n)) != 0)
		return r;
	capwr_init(&w, *pp, (size_t)(end - *pp));
	put_value(&w, a);
	if (w.err != 0) { /* cannot happen: measured above */
		*pp = start;
		return w.err;
	}
	*pp += w.n;
	return 0;
}
