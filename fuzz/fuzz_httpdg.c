/* HTTP Datagram prefix: decode; when accepted, re-encode the prefix with the
 * payload and decode again to the same fields and payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capsule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[1 << 17];
	const uint8_t *payload, *p2;
	uint64_t qsid, ctx, q2, c2;
	size_t plen, l2;
	uint8_t *w = buf;

	if (size > sizeof(buf) - 16)
		return 0;
	if (httpdg_decode(data, size, &qsid, &ctx, &payload, &plen) != 0)
		return 0;
	if (qsid > HTTPDG_QSID_MAX || payload + plen != data + size)
		abort();
	if (httpdg_encode_prefix(&w, buf + sizeof(buf), qsid, ctx) != 0)
		abort();
	memcpy(w, payload, plen);
	w += plen;
	if (httpdg_decode(buf, (size_t)(w - buf), &q2, &c2, &p2, &l2) != 0 ||
	    q2 != qsid || c2 != ctx || l2 != plen || memcmp(p2, payload, plen) != 0)
		abort();
	/* the same payload in a DATAGRAM capsule value */
	w = buf;
	if (httpdg_encode_capsule(&w, buf + sizeof(buf), ctx, payload, plen) != 0)
		abort();
	return 0;
}
