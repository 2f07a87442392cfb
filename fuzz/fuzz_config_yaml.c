/* Relay configuration parser: arbitrary bytes never crash it, an error
 * always comes with a message, and an accepted file leaves every field in
 * its documented range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_config c;
	char err[512];
	char sum[4096];

	config_defaults(&c);
	err[0] = '\0';
	if (config_load_buf(&c, "fuzz.yaml", (const char *)data, size, err, sizeof(err)) != 0) {
		if (err[0] == '\0' || strncmp(err, "fuzz.yaml", 9) != 0)
			abort(); /* every error names the file */
		return 0;
	}
	if (c.mtu < 1280 || c.max_sessions < 1 || c.pool4.version != 4 ||
	    (c.pool6.version != 0 && c.pool6.version != 6) ||
	    memchr(c.listen, '\0', sizeof(c.listen)) == NULL)
		abort();
	(void)config_validate(&c, err, sizeof(err));
	(void)config_summary(&c, sum, sizeof(sum));
	return 0;
}
