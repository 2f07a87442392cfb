/* ZG_CONNECTORS capsule value (src/capsule/zgconn.h): decode, and when
 * accepted, encode → the same bytes (the format has one encoding per
 * list except for varint widths, which the encoder makes shortest, so
 * compare after a second round) → decode → the same entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zgconn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct zgconn a[ZGCONN_MAX], b[ZGCONN_MAX];
	static uint8_t e1[65536], e2[65536];
	size_t n = 0, m = 0, l1 = 0, l2 = 0, i;

	if (zgconn_decode(data, size, a, ZGCONN_MAX, &n) != 0)
		return 0;
	if (zgconn_encode(a, n, e1, sizeof(e1), &l1) != 0)
		abort(); /* everything the decoder accepts must encode */
	if (zgconn_decode(e1, l1, b, ZGCONN_MAX, &m) != 0 || m != n)
		abort();
	for (i = 0; i < n; i++)
		if (strcmp(a[i].id, b[i].id) != 0 || a[i].up != b[i].up || a[i].port != b[i].port ||
		    a[i].naddrs != b[i].naddrs || a[i].nprefixes != b[i].nprefixes ||
		    memcmp(a[i].addrs, b[i].addrs, sizeof(a[i].addrs)) != 0 ||
		    memcmp(a[i].prefixes, b[i].prefixes, sizeof(a[i].prefixes)) != 0)
			abort();
	if (zgconn_encode(b, m, e2, sizeof(e2), &l2) != 0 || l2 != l1 || memcmp(e1, e2, l1) != 0)
		abort();
	return 0;
}
