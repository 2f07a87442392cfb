#include "capsule.h"

#include <string.h>

#include "varint.h"
#include "zg_err.h"

void capsule_parser_init(struct capsule_parser *cp, uint8_t *buf,
			 size_t bufsize, uint64_t known_mask)
{
	memset(cp, 0, sizeof(*cp));
	cp->buf = buf;
	cp->bufsize = bufsize;
	cp->known_mask = known_mask;
	cp->state = CAPSULE_ST_TYPE;
}

int capsule_parser_add_type(struct capsule_parser *cp, uint64_t type)
{
	if (type > VARINT_MAX)
		return ZG_ERR_RANGE;
	if (cp->n_ext == CAPSULE_EXT_MAX)
		return ZG_ERR_LIMIT;
	cp->ext[cp->n_ext++] = type;
	return 0;
}

static int is_known(const struct capsule_parser *cp, uint64_t type)
{
	size_t i;

	if (type < 64)
		return (cp->known_mask >> type) & 1;
	for (i = 0; i < cp->n_ext; i++)
		if (cp->ext[i] == type)
			return 1;
	return 0;
}

static int fail(struct capsule_parser *cp, int err)
{
	cp->state = CAPSULE_ST_ERROR;
	cp->err = err;
	return err;
}

/* Accumulates the header varint; returns 1 with *pv when complete. */
static int take_varint(struct capsule_parser *cp, const uint8_t **pp,
		       const uint8_t *end, uint64_t *pv)
{
	size_t need;
	const uint8_t *q;

	while (*pp < end) {
		cp->vi[cp->vi_have++] = *(*pp)++;
		need = varint_len_from_first(cp->vi[0]);
		if (cp->vi_have == need) {
			q = cp->vi;
			(void)varint_decode(&q, cp->vi + need, pv);
			cp->vi_have = 0;
			return 1;
		}
	}
	return 0;
}

static void emit(struct capsule_parser *cp, struct capsule *out,
		 const uint8_t *value)
{
	out->type = cp->type;
	out->value = value;
	out->len = (size_t)cp->len;
	cp->n_parsed++;
	cp->state = CAPSULE_ST_TYPE;
}

int capsule_parser_feed(struct capsule_parser *cp, const uint8_t **pp,
			const uint8_t *end, struct capsule *out)
{
	size_t avail, n;
	uint64_t v;

	for (;;) {
		switch (cp->state) {
		case CAPSULE_ST_ERROR:
			return cp->err;
		case CAPSULE_ST_TYPE:
			if (!take_varint(cp, pp, end, &v))
				return 0;
			cp->type = v;
			cp->state = CAPSULE_ST_LEN;
			break;
		case CAPSULE_ST_LEN:
			if (!take_varint(cp, pp, end, &v))
				return 0;
			cp->len = v;
			cp->done = 0;
			if (!is_known(cp, cp->type)) {
				cp->n_skipped++;
				cp->state = v ? CAPSULE_ST_SKIP : CAPSULE_ST_TYPE;
				break;
			}
			if (v > cp->bufsize)
				return fail(cp, ZG_ERR_TOO_LARGE);
			if (v == 0) { /* value points at the input, never NULL */
				emit(cp, out, *pp);
				return 1;
			}
			avail = (size_t)(end - *pp);
			if (avail >= v) { /* whole value present: no copy */
				emit(cp, out, *pp);
				*pp += v;
				return 1;
			}
			cp->state = CAPSULE_ST_VALUE;
			break;
		case CAPSULE_ST_VALUE:
			avail = (size_t)(end - *pp);
			if (avail == 0)
				return 0;
			if (cp->buf == NULL)
				return CAPSULE_NEED_BUF;
			n = (size_t)(cp->len - cp->done);
			if (n > avail)
				n = avail;
			memcpy(cp->buf + cp->done, *pp, n);
			*pp += n;
			cp->done += n;
			if (cp->done == cp->len) {
				emit(cp, out, cp->buf);
				return 1;
			}
			return 0;
		case CAPSULE_ST_SKIP:
			avail = (size_t)(end - *pp);
			if (avail == 0)
				return 0;
			v = cp->len - cp->done;
			n = v < avail ? (size_t)v : avail;
			*pp += n;
			cp->done += n;
			if (cp->done == cp->len)
				cp->state = CAPSULE_ST_TYPE;
			break;
		}
	}
}

int capsule_parser_set_buf(struct capsule_parser *cp, uint8_t *buf)
{
	if (capsule_parser_buffering(cp))
		return ZG_ERR_STATE;
	cp->buf = buf;
	return 0;
}

int capsule_parser_buffering(const struct capsule_parser *cp)
{
	return cp->state == CAPSULE_ST_VALUE && cp->done > 0;
}

int capsule_parser_finish(const struct capsule_parser *cp)
{
	if (cp->state == CAPSULE_ST_ERROR)
		return cp->err;
	if (cp->state == CAPSULE_ST_TYPE && cp->vi_have == 0)
		return 0;
	return ZG_ERR_TRUNCATED;
}

int capsule_encode_header(uint8_t **pp, const uint8_t *end, uint64_t type,
			  uint64_t len)
{
	size_t nt = varint_len(type), nl = varint_len(len);

	if (nt == 0 || nl == 0)
		return ZG_ERR_RANGE;
	if ((size_t)(end - *pp) < nt + nl)
		return ZG_ERR_BUFSHORT;
	*pp = varint_put(*pp, type);
	*pp = varint_put(*pp, len);
	return 0;
}

int capsule_encode(uint8_t **pp, const uint8_t *end, uint64_t type,
		   const uint8_t *value, size_t len)
{
	size_t nt = varint_len(type), nl = varint_len(len);
	uint8_t *p = *pp;

	if (nt == 0 || nl == 0)
		return ZG_ERR_RANGE;
	if ((size_t)(end - p) < nt + nl || (size_t)(end - p) - nt - nl < len)
		return ZG_ERR_BUFSHORT;
	p = varint_put(p, type);
	p = varint_put(p, len);
	if (len)
		memcpy(p, value, len);
	*pp = p + len;
	return 0;
}

int httpdg_decode(const uint8_t *p, size_t len, uint64_t *pqsid, uint64_t *pctx,
		  const uint8_t **ppayload, size_t *pplen)
{
	const uint8_t *q = p, *end;
	uint64_t qsid;

	if (p == NULL || len == 0)
		return ZG_ERR_MALFORMED; /* an empty DATAGRAM frame may have no buffer */
	end = p + len;
	if (varint_decode(&q, end, &qsid) != 0)
		return ZG_ERR_MALFORMED;
	if (qsid > HTTPDG_QSID_MAX)
		return ZG_ERR_RANGE;
	if (httpdg_decode_capsule_value(q, (size_t)(end - q), pctx, ppayload,
					pplen) != 0)
		return ZG_ERR_MALFORMED;
	*pqsid = qsid;
	return 0;
}

int httpdg_decode_capsule_value(const uint8_t *p, size_t len, uint64_t *pctx,
				const uint8_t **ppayload, size_t *pplen)
{
	const uint8_t *q = p, *end;

	if (p == NULL || len == 0)
		return ZG_ERR_MALFORMED;
	end = p + len;
	if (varint_decode(&q, end, pctx) != 0)
		return ZG_ERR_MALFORMED;
	*ppayload = q;
	*pplen = (size_t)(end - q);
	return 0;
}

int httpdg_encode_prefix(uint8_t **pp, const uint8_t *end, uint64_t qsid,
			 uint64_t ctx)
{
	size_t nq, nc;

	if (qsid > HTTPDG_QSID_MAX || ctx > VARINT_MAX)
		return ZG_ERR_RANGE;
	nq = varint_len(qsid);
	nc = varint_len(ctx);
	if ((size_t)(end - *pp) < nq + nc)
		return ZG_ERR_BUFSHORT;
	*pp = varint_put(*pp, qsid);
	*pp = varint_put(*pp, ctx);
	return 0;
}

int httpdg_encode_capsule(uint8_t **pp, const uint8_t *end, uint64_t ctx,
			  const uint8_t *payload, size_t len)
{
	size_t nc = varint_len(ctx), vlen, nh;
	uint8_t *p = *pp;

	if (nc == 0 || len > VARINT_MAX - nc)
		return ZG_ERR_RANGE;
	vlen = nc + len;
	nh = varint_len(CAPSULE_DATAGRAM) + varint_len(vlen);
	if ((size_t)(end - p) < nh || (size_t)(end - p) - nh < vlen)
		return ZG_ERR_BUFSHORT;
	p = varint_put(p, CAPSULE_DATAGRAM);
	p = varint_put(p, vlen);
	p = varint_put(p, ctx);
	if (len)
		memcpy(p, payload, len);
	*pp = p + len;
	return 0;
}
