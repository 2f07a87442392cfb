/* ICMP "too big" builder (C16): for any bytes it never reads past the
 * packet, and every answer it builds is a well-formed IPv4/ICMP or
 * IPv6/ICMPv6 packet whose checksums verify, addressed back to the sender
 * and within the RFC 1812 / RFC 4443 size limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ptb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[PTB_MAX], *pkt;
	uint32_t mtu = 1280;
	size_t n = 0;

	if (size >= 2) { /* the first two bytes pick the MTU */
		mtu += (uint32_t)(data[0] << 8 | data[1]);
		data += 2;
		size -= 2;
	}
	pkt = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
	if (pkt == NULL)
		return 0;
	memcpy(pkt, data, size);
	if (ptb_build(pkt, size, mtu, out, sizeof(out), &n) == 0 && n > 0) {
		if ((out[0] >> 4) == 4) {
			if (n > 576 || n < 28 || out[9] != 1 || out[20] != 3 || out[21] != 4 ||
			    ptb_checksum(out, 20, 0) != 0 || ptb_checksum(out + 20, n - 20, 0) != 0 ||
			    memcmp(out + 16, pkt + 12, 4) != 0 || (size_t)(out[2] << 8 | out[3]) != n)
				abort();
		} else {
			uint32_t s = 0, il = (uint32_t)(n - 40);

			for (size_t i = 8; i < 40; i += 2)
				s += (uint32_t)(out[i] << 8 | out[i + 1]);
			s += (il >> 16) + (il & 0xffff) + 58;
			if (n > 1280 || n < 48 || out[6] != 58 || out[40] != 2 ||
			    ptb_checksum(out + 40, il, s) != 0 || memcmp(out + 24, pkt + 8, 16) != 0 ||
			    (size_t)(out[4] << 8 | out[5]) != il)
				abort();
		}
	}
	free(pkt);
	return 0;
}
