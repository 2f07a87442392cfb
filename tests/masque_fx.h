/*
 * masque_fx.h — server callbacks the real-socket masque tests share
 * (test_masque_udp, test_masque_steer): one fixed tunnel address, and
 * address requests granted as asked.
 */
#ifndef ZG_TESTS_MASQUE_FX_H
#define ZG_TESTS_MASQUE_FX_H

#include <arpa/inet.h>
#include <string.h>

#include "masque/masque.h"

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

#endif /* ZG_TESTS_MASQUE_FX_H */
