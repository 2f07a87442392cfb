/*
 * sockaddr_fx.h — socket addresses from text for the unit tests
 * (test_addrkey, test_steer, test_tunio, test_localaddr): every field not
 * named is zero, and text that is not an address of the family fails the
 * test at once (cmocka's assert_int_equal, so include <cmocka.h> first).
 */
#ifndef ZG_TESTS_SOCKADDR_FX_H
#define ZG_TESTS_SOCKADDR_FX_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* The IPv4 socket address a:port (port in host order). */
static inline struct sockaddr_in fx_sin4(const char *a, uint16_t port)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
	return s;
}

/* The IPv6 socket address [a]:port (port in host order); flow label and
 * scope 0. */
static inline struct sockaddr_in6 fx_sin6(const char *a, uint16_t port)
{
	struct sockaddr_in6 s;

	memset(&s, 0, sizeof(s));
	s.sin6_family = AF_INET6;
	s.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
	return s;
}

#endif /* ZG_TESTS_SOCKADDR_FX_H */
