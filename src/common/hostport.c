/* hostport.c — see hostport.h. */
#include "hostport.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
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

void hostport_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char h[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s->sin_addr, h, sizeof(h));
		(void)snprintf(buf, len, "%s:%u", h, (unsigned)ntohs(s->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s->sin6_addr, h, sizeof(h));
		(void)snprintf(buf, len, "[%s]:%u", h, (unsigned)ntohs(s->sin6_port));
	} else {
		(void)snprintf(buf, len, "?");
	}
}
