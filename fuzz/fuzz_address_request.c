/* address request capsule value: decode, and when accepted, encode → decode →
 * the same entries, and encode again → the same bytes. */
#include "fuzz_cip_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FUZZ_ROUNDTRIP(struct cip_addr, cip_addr_request_decode, cip_addr_request_encode, CAPSULE_ADDRESS_REQUEST);
}
