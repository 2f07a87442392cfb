#include "varint.h"

#include "zg_err.h"

size_t varint_len(uint64_t v)
{
	if (v < (UINT64_C(1) << 6))
		return 1;
	if (v < (UINT64_C(1) << 14))
		return 2;
	if (v < (UINT64_C(1) << 30))
		return 4;
	if (v <= VARINT_MAX)
		return 8;
	return 0;
}

size_t varint_len_from_first(uint8_t b)
{
	return (size_t)1 << (b >> 6);
}

uint8_t *varint_put(uint8_t *p, uint64_t v)
{
	size_t n = varint_len(v);
	static const uint8_t tag[9] = { 0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0 };

	for (size_t i = n; i-- > 0;) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
	p[0] |= tag[n];
	return p + n;
}

int varint_encode(uint8_t **pp, const uint8_t *end, uint64_t v)
{
	size_t n = varint_len(v);

	if (n == 0)
		return ZG_ERR_RANGE;
	if ((size_t)(end - *pp) < n)
		return ZG_ERR_BUFSHORT;
	*pp = varint_put(*pp, v);
	return 0;
}

int varint_decode(const uint8_t **pp, const uint8_t *end, uint64_t *pv)
{
	const uint8_t *p = *pp;
	size_t n;
	uint64_t v;

	if (p >= end)
		return ZG_ERR_TRUNCATED;
	n = varint_len_from_first(p[0]);
	if ((size_t)(end - p) < n)
		return ZG_ERR_TRUNCATED;
	v = p[0] & 0x3f;
	for (size_t i = 1; i < n; i++)
		v = (v << 8) | p[i];
	*pv = v;
	*pp = p + n;
	return 0;
}
