/* DNS messages as the relay's DNS service reads them (src/relay/dnsmsg):
 * a client's query and an upstream answer, from any bytes. Properties: a
 * parsed query's name is canonical (policy_name_canon of itself is itself)
 * and the reply made for it parses back as an answer with the same ID and
 * rcode; a parsed answer ages into a message that parses again with the
 * same rcode, no more addresses, and TTLs no higher. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/dnsmsg.h"
#include "zg_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dnsmsg_query q;
	struct dnsmsg_answer a, b;
	struct dnsmsg_addr ad[16], bd[16];
	uint8_t *out = NULL;
	size_t outlen = 0;

	if (dnsmsg_parse_query(data, size, &q) == 0) {
		if (q.name_ok) {
			char again[POLICY_NAME_MAX];
			const char *why;
			assert(policy_name_canon(q.name, 0, again, &why) == 0);
			assert(strcmp(again, q.name) == 0);
		}
		assert(q.udp_max >= 512 && q.udp_max <= DNSMSG_UDP_MAX);
		if (dnsmsg_build_reply(data, size, DNSMSG_RCODE_REFUSED, 1, &out, &outlen) == 0) {
			assert(dnsmsg_parse_answer(out, outlen, &a, ad, 16) == 0);
			assert(a.id == q.id && a.rcode == DNSMSG_RCODE_REFUSED && a.tc);
			assert(a.naddr == 0);
			free(out);
			out = NULL;
		}
	}
	if (dnsmsg_parse_answer(data, size, &a, ad, 16) == 0) {
		assert(a.naddr <= 16 && a.naddr <= a.naddr_seen);
		if (dnsmsg_age(data, size, 7, 5, &out, &outlen) == 0) {
			if (dnsmsg_parse_answer(out, outlen, &b, bd, 16) == 0) {
				assert(b.id == 7 && b.rcode == a.rcode);
				assert(b.naddr <= a.naddr_seen);
			}
			free(out);
		}
	}
	return 0;
}
