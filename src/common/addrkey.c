/*
 * addrkey.c — see addrkey.h.
 */
#include "addrkey.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "zg_err.h"

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int addrkey_of(const struct sockaddr *sa, enum addrkey_kind kind, uint8_t key[ADDRKEY_LEN])
{
	memset(key, 0, ADDRKEY_LEN);
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		memcpy(key, v4mapped, sizeof(v4mapped));
		memcpy(key + 12, &in->sin_addr, 4);
		return 0;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(key, in6->sin6_addr.s6_addr, ADDRKEY_LEN);
		if (kind == ADDRKEY_SOURCE && memcmp(key, v4mapped, sizeof(v4mapped)) != 0)
			memset(key + 8, 0, 8);
		return 0;
	}
	return ZG_ERR_INVAL;
}

void addrkey_text(const uint8_t key[ADDRKEY_LEN], enum addrkey_kind kind, char *buf, size_t len)
{
	char t[INET6_ADDRSTRLEN] = "?";
	int v4 = memcmp(key, v4mapped, sizeof(v4mapped)) == 0;

	if (len == 0)
		return;
	(void)inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? key + 12 : key, t, sizeof(t));
	(void)snprintf(buf, len, "%s%s", t, !v4 && kind == ADDRKEY_SOURCE ? "/64" : "");
}
