/* The agent's TUN batching (tungro.h) on packets from the relay, which are
 * untrusted: for any sequence of packets it never reads or writes out of
 * bounds, keeps every packet (each comes out once, in an item of its own
 * or merged), and every merged item is a GSO write the kernel would take:
 * split at its gso_size by the agent's own splitter (the same format as a
 * TSO read) it gives back as many segments as were merged, each within
 * the MTU-free IP maximum. The same input, read as one TUN read, goes
 * through the splitter alone.
 *
 * Input: packets, each as a 2-byte big-endian length and its bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/tungro.h"

static uint8_t out[70000];
static size_t nout;

static void count(const uint8_t *p, size_t len, void *arg)
{
	(void)p;
	(void)arg;
	if (len == 0 || len > 65535)
		abort();
	nout++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tungro *g;
	size_t off = 0, added = 0, bytes = 0, items_bytes = 0, nseg_all = 0;

	if (g == NULL && (g = tungro_new()) == NULL)
		abort();
	tungro_reset(g);
	while (off + 2 <= size) {
		size_t len = (size_t)data[off] << 8 | data[off + 1];

		off += 2;
		if (len > size - off)
			len = size - off;
		if (len == 0)
			continue;
		if (tungro_add(g, data + off, len) != 0)
			break; /* full: the agent writes the batch out first */
		added++;
		bytes += len;
		off += len;
	}
	for (size_t i = 0; i < tungro_count(g); i++) {
		size_t len;
		unsigned nseg;
		const uint8_t *it = tungro_item(g, i, &len, &nseg);

		if (it == NULL || len <= TUNGRO_VNET_LEN || nseg == 0 || len > TUNGRO_VNET_LEN + 65535)
			abort();
		nseg_all += nseg;
		items_bytes += tungro_item_bytes(g, i);
		if (nseg > 1) {
			nout = 0;
			if (tungro_split(it, len, out, sizeof(out), count, NULL) != (int)nseg ||
			    nout != nseg)
				abort();
		}
	}
	if (nseg_all != added || items_bytes != bytes)
		abort();
	/* the whole input as one TUN read */
	if (size > TUNGRO_VNET_LEN && size <= TUNGRO_VNET_LEN + 65535) {
		nout = 0;
		(void)tungro_split(data, size, out, sizeof(out), count, NULL);
	}
	return 0;
}
