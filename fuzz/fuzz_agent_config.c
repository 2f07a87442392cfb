/* Agent configuration parser: arbitrary bytes never crash it, every error
 * names the file, and an accepted file leaves every field NUL-terminated
 * and in its documented range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_config c;
	char err[512];

	agent_config_defaults(&c);
	err[0] = '\0';
	if (agent_config_load_buf(&c, "fuzz.yaml", (const char *)data, size, err, sizeof(err)) != 0) {
		if (strncmp(err, "fuzz.yaml", 9) != 0)
			abort(); /* every error names the file */
		return 0;
	}
	if (memchr(c.relay, '\0', sizeof(c.relay)) == NULL ||
	    memchr(c.tun, '\0', sizeof(c.tun)) == NULL ||
	    memchr(c.uri_template, '\0', sizeof(c.uri_template)) == NULL ||
	    c.reconnect_min_ms < 10 || c.reconnect_max_ms < 100 || c.idle_timeout_ms < 1000 ||
	    c.connect_timeout_ms < 1000 || c.mtu > 65535 || (c.mtu != 0 && c.mtu < 1280) ||
	    (c.ipv6 != 0 && c.ipv6 != 1))
		abort();
	err[0] = '\0';
	if (agent_config_validate(&c, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
	} else if (c.server_name[0] == '\0' || c.uri_template[0] == '\0' ||
		   (c.keepalive_ms != 0 && c.keepalive_ms >= c.idle_timeout_ms)) {
		abort();
	}
	return 0;
}
