/* DNS_ASSIGN capsule value (draft-ietf-masque-connect-ip-dns): decode, and
 * when accepted, encode -> the capsule header and value again -> decode ->
 * the same configuration, and encode again -> the same bytes. The input is
 * also fed to a capsule parser that knows DNS_ASSIGN as an extension type,
 * whole and one byte at a time, and both must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capsule.h"
#include "cipdns.h"
#include "varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t parse_all(const uint8_t *data, size_t size, size_t step, uint64_t *psum)
{
	static uint8_t vbuf[4096];
	struct capsule_parser cp;
	struct capsule cap;
	const uint8_t *p;
	size_t i, n = 0;
	int r;

	capsule_parser_init(&cp, vbuf, sizeof(vbuf), CAPSULE_MASK_CONNECT_IP);
	if (capsule_parser_add_type(&cp, CAPSULE_DNS_ASSIGN) != 0)
		abort();
	*psum = 0;
	for (i = 0; i < size; i += step) {
		size_t m = size - i < step ? size - i : step;

		p = data + i;
		while ((r = capsule_parser_feed(&cp, &p, data + i + m, &cap)) == 1) {
			n++;
			*psum = *psum * 31 + cap.type + cap.len;
		}
		if (r < 0)
			return n + 1000000; /* same sticky error both ways */
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cipdns_assign a, b;
	static uint8_t out1[1 << 17], out2[1 << 17];
	uint8_t *p1 = out1, *p2 = out2;
	const uint8_t *q, *end;
	uint64_t t, l, s1, s2;

	if (parse_all(data, size, size ? size : 1, &s1) != parse_all(data, size, 1, &s2) || s1 != s2)
		abort();
	if (cipdns_assign_decode(data, size, &a) != 0)
		return 0;
	if (cipdns_assign_encode(&p1, out1 + sizeof(out1), &a) != 0)
		abort(); /* what the decoder accepts, the encoder writes */
	q = out1;
	end = p1;
	if (varint_decode(&q, end, &t) != 0 || t != CAPSULE_DNS_ASSIGN ||
	    varint_decode(&q, end, &l) != 0 || l != (uint64_t)(end - q))
		abort();
	if (cipdns_assign_decode(q, (size_t)l, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	if (cipdns_assign_encode(&p2, out2 + sizeof(out2), &b) != 0 || p2 - out2 != p1 - out1 ||
	    memcmp(out1, out2, (size_t)(p1 - out1)) != 0)
		abort();
	return 0;
}
