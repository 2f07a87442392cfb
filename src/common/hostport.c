/* hostport.c — see hostport.h. */
#include "hostport.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

int hostport_split(const char *s, char *host, size_t hostlen, uint16_t *pport)
{
	const char *colon = strrchr(s, ':'), *h = s;
	size_t hl;
	char *end;
	unsigned long port;

	if (!colon || !isdigit((unsigned char)colon[1]))
		return ZG_ERR_CONFIG;
	hl = (size_t)(colon - s);
	if (hl > 0 && s[0] == '[') {
		if (hl < 2 || s[hl - 1] != ']')
			return ZG_ERR_CONFIG;
		h = s + 1;
		hl -= 2;
	} else if (memchr(s, ':', hl)) {
		return ZG_ERR_CONFIG; /* an IPv6 literal needs brackets */
	}
	if (hl >= hostlen)
		return ZG_ERR_CONFIG;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535)
		return ZG_ERR_CONFIG;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*pport = (uint16_t)port;
	return 0;
}
