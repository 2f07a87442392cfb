/*
 * masque_fx.h — what the masque tests share: server callbacks of the
 * real-socket tests (test_masque_udp, test_masque_steer: one fixed tunnel
 * address, address requests granted as asked) and a client ALPN list that
 * makes a ClientHello take two Initials.
 */
#ifndef ZG_TESTS_MASQUE_FX_H
#define ZG_TESTS_MASQUE_FX_H

#include <arpa/inet.h>
#include <string.h>

#include "masque/masque.h"
#include "masque/tls.h"

/* Accepts with the one address 10.100.0.7/32; returns 200. */
static inline int fx_accept_one(struct masque_accept *acc)
{
	acc->naddrs = 1;
	acc->addrs[0].version = 4;
	inet_pton(AF_INET, "10.100.0.7", acc->addrs[0].addr);
	acc->addrs[0].prefix_len = 32;
	return 200;
}

/* on_address_request: every requested address is granted as asked. */
static inline int fx_grant_as_asked(struct masque_conn *c, const struct cip_addr *req, size_t n,
				    struct cip_addr *out, size_t *nout, void *ctx)
{
	(void)c;
	(void)ctx;
	memcpy(out, req, n * sizeof(*req));
	*nout = n;
	return 0;
}

/* A client's test_alpn that offers "h3" and six made-up 240-byte names:
 * some 1450 bytes more ClientHello, so its first flight takes two Initial
 * datagrams (three with an X25519MLKEM768 key share), as a ClientHello
 * with that key share alone does, whatever groups this wolfSSL has. The
 * relay selects "h3". */
static inline const char *fx_big_hello_alpn(void)
{
	static char s[3 + 6 * 241];

	if (s[0] == '\0') {
		size_t n = 2;

		memcpy(s, "h3", 2);
		for (int k = 0; k < 6; k++) {
			s[n++] = ',';
			memset(s + n, 'a' + k, 240);
			n += 240;
		}
		s[n] = '\0';
	}
	return s;
}

#endif /* ZG_TESTS_MASQUE_FX_H */
