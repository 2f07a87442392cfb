/* The agent's ICMP error builder (C16, issue 22): for any bytes it never
 * reads past the packet, and every answer it builds — "too big",
 * "unreachable", "prohibited" — is a well-formed IPv4/ICMP or IPv6/ICMPv6
 * packet whose checksums verify, addressed back to the sender, within the
 * RFC 1812 / RFC 4443 size limits, with the type and code asked for. The
 * three share one set of rules: whatever gets a "too big" gets an
 * "unreachable" too, and for IPv6 exactly the same packets get both. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ptb.h"

enum {
	TOO_BIG,
	UNREACH,
	PROHIBITED
};

/* Checks one answer of kind to pkt; returns n. */
static size_t check(const uint8_t *pkt, const uint8_t *out, size_t n, int kind)
{
	if (n == 0)
		return 0;
	if ((out[0] >> 4) == 4) {
		uint8_t code = kind == TOO_BIG ? 4 : kind == UNREACH ? 1
								     : 13;

		if (n > 576 || n < 28 || out[9] != 1 || out[20] != 3 || out[21] != code ||
		    ptb_checksum(out, 20, 0) != 0 || ptb_checksum(out + 20, n - 20, 0) != 0 ||
		    memcmp(out + 16, pkt + 12, 4) != 0 || memcmp(out + 28, pkt, n - 28) != 0 ||
		    (size_t)(out[2] << 8 | out[3]) != n || (kind != TOO_BIG && (out[24] | out[25] | out[26] | out[27]) != 0))
			abort();
	} else {
		uint32_t s = 0, il = (uint32_t)(n - 40);
		uint8_t type = kind == TOO_BIG ? 2 : 1, code = kind == UNREACH ? 3 : kind == PROHIBITED;

		for (size_t i = 8; i < 40; i += 2)
			s += (uint32_t)(out[i] << 8 | out[i + 1]);
		s += (il >> 16) + (il & 0xffff) + 58;
		if (n > 1280 || n < 48 || out[6] != 58 || out[40] != type || out[41] != code ||
		    ptb_checksum(out + 40, il, s) != 0 || memcmp(out + 24, pkt + 8, 16) != 0 ||
		    memcmp(out + 48, pkt, n - 48) != 0 || (size_t)(out[4] << 8 | out[5]) != il)
			abort();
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[PTB_MAX], *pkt;
	uint32_t mtu = 1280;
	size_t n[3] = { 0, 0, 0 };
	int r[3];

	if (size >= 2) { /* the first two bytes pick the MTU */
		mtu += (uint32_t)(data[0] << 8 | data[1]);
		data += 2;
		size -= 2;
	}
	pkt = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
	if (pkt == NULL)
		return 0;
	memcpy(pkt, data, size);
	r[TOO_BIG] = ptb_build(pkt, size, mtu, out, sizeof(out), &n[TOO_BIG]);
	if (r[TOO_BIG] == 0)
		check(pkt, out, n[TOO_BIG], TOO_BIG);
	r[UNREACH] = ptb_unreachable(pkt, size, 0, out, sizeof(out), &n[UNREACH]);
	if (r[UNREACH] == 0)
		check(pkt, out, n[UNREACH], UNREACH);
	r[PROHIBITED] = ptb_unreachable(pkt, size, 1, out, sizeof(out), &n[PROHIBITED]);
	if (r[PROHIBITED] == 0)
		check(pkt, out, n[PROHIBITED], PROHIBITED);
	if (r[TOO_BIG] != r[UNREACH] || r[UNREACH] != r[PROHIBITED] ||
	    n[UNREACH] != n[PROHIBITED] || (n[TOO_BIG] != 0 && n[UNREACH] != n[TOO_BIG]) ||
	    (size > 0 && pkt[0] >> 4 == 6 && n[TOO_BIG] != n[UNREACH]))
		abort();
	free(pkt);
	return 0;
}
