/* cksum.c — see cksum.h. */
#include "cksum.h"

uint32_t cksum_add(uint32_t s, const uint8_t *p, size_t n)
{
	while (n > 1) {
		s += (uint32_t)(p[0] << 8 | p[1]);
		if (s > 0xffff0000u) /* fold early: any length, any starting sum */
			s = (s & 0xffff) + (s >> 16);
		p += 2;
		n -= 2;
	}
	if (n)
		s += (uint32_t)(p[0] << 8);
	return s;
}

uint16_t cksum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}
