/*
 * Unit tests for src/common/addrkey: the one key of a peer's address for
 * per-source limits (the relay's QUIC admission, zgate-api's
 * max_connections_per_address).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>
#include <sys/un.h>

#include "addrkey.h"
#include "sockaddr_fx.h"
#include "zg_err.h"

static void key_of(const void *sa, enum addrkey_kind kind, uint8_t key[ADDRKEY_LEN])
{
	assert_int_equal(addrkey_of(sa, kind, key), 0);
}

/* The key as an IPv6 address, to compare with text. */
static void assert_key(const uint8_t key[ADDRKEY_LEN], const char *want6)
{
	uint8_t w[16];

	assert_int_equal(inet_pton(AF_INET6, want6, w), 1);
	assert_memory_equal(key, w, 16);
}

/* IPv4, plain or v4-mapped, is one key, ::ffff:a.b.c.d, of either kind;
 * the port never matters. */
static void test_ipv4(void **state)
{
	struct sockaddr_in a = fx_sin4("192.0.2.7", 443), b = fx_sin4("192.0.2.7", 5555);
	struct sockaddr_in6 m = fx_sin6("::ffff:192.0.2.7", 80);
	uint8_t k[ADDRKEY_LEN], k2[ADDRKEY_LEN];

	(void)state;
	for (int kind = ADDRKEY_SOURCE; kind <= ADDRKEY_EXACT; kind++) {
		key_of(&a, (enum addrkey_kind)kind, k);
		assert_key(k, "::ffff:192.0.2.7");
		key_of(&b, (enum addrkey_kind)kind, k2);
		assert_memory_equal(k, k2, ADDRKEY_LEN);
		key_of(&m, (enum addrkey_kind)kind, k2);
		assert_memory_equal(k, k2, ADDRKEY_LEN);
	}
	a = fx_sin4("192.0.2.8", 443);
	key_of(&a, ADDRKEY_SOURCE, k2);
	assert_memory_not_equal(k, k2, ADDRKEY_LEN);
}

/* IPv6: ADDRKEY_SOURCE keeps the /64, ADDRKEY_EXACT the address. */
static void test_ipv6(void **state)
{
	struct sockaddr_in6 a = fx_sin6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 443);
	struct sockaddr_in6 b = fx_sin6("2001:db8:1:2::5", 1);
	struct sockaddr_in6 other = fx_sin6("2001:db8:1:3::5", 1);
	uint8_t ka[ADDRKEY_LEN], kb[ADDRKEY_LEN], ko[ADDRKEY_LEN];

	(void)state;
	key_of(&a, ADDRKEY_SOURCE, ka);
	assert_key(ka, "2001:db8:1:2::");
	key_of(&b, ADDRKEY_SOURCE, kb);
	assert_memory_equal(ka, kb, ADDRKEY_LEN);
	key_of(&other, ADDRKEY_SOURCE, ko);
	assert_memory_not_equal(ka, ko, ADDRKEY_LEN);

	key_of(&a, ADDRKEY_EXACT, ka);
	assert_key(ka, "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
	key_of(&b, ADDRKEY_EXACT, kb);
	assert_memory_not_equal(ka, kb, ADDRKEY_LEN);
	b.sin6_port = htons(9);
	key_of(&b, ADDRKEY_EXACT, ko);
	assert_memory_equal(kb, ko, ADDRKEY_LEN);
}

/* Neither IPv4 nor IPv6, or no address: refused, the key zeroed. */
static void test_other_family(void **state)
{
	struct sockaddr_un u;
	uint8_t k[ADDRKEY_LEN], zero[ADDRKEY_LEN] = { 0 };

	(void)state;
	memset(&u, 0, sizeof(u));
	u.sun_family = AF_UNIX;
	memset(k, 0xaa, sizeof(k));
	assert_int_equal(addrkey_of((const struct sockaddr *)&u, ADDRKEY_SOURCE, k), ZG_ERR_INVAL);
	assert_memory_equal(k, zero, ADDRKEY_LEN);
	memset(k, 0xaa, sizeof(k));
	assert_int_equal(addrkey_of(NULL, ADDRKEY_EXACT, k), ZG_ERR_INVAL);
	assert_memory_equal(k, zero, ADDRKEY_LEN);
}

static void test_text(void **state)
{
	struct sockaddr_in a = fx_sin4("198.51.100.20", 1);
	struct sockaddr_in6 m = fx_sin6("::ffff:198.51.100.20", 1);
	struct sockaddr_in6 b = fx_sin6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 1);
	uint8_t k[ADDRKEY_LEN];
	char t[ADDRKEY_TEXT_MAX], small[4] = "xyz";

	(void)state;
	key_of(&a, ADDRKEY_SOURCE, k);
	addrkey_text(k, ADDRKEY_SOURCE, t, sizeof(t));
	assert_string_equal(t, "198.51.100.20");
	key_of(&m, ADDRKEY_EXACT, k);
	addrkey_text(k, ADDRKEY_EXACT, t, sizeof(t));
	assert_string_equal(t, "198.51.100.20");
	key_of(&b, ADDRKEY_SOURCE, k);
	addrkey_text(k, ADDRKEY_SOURCE, t, sizeof(t));
	assert_string_equal(t, "2001:db8:1:2::/64");
	key_of(&b, ADDRKEY_EXACT, k);
	addrkey_text(k, ADDRKEY_EXACT, t, sizeof(t));
	assert_string_equal(t, "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
	/* the longest text fits ADDRKEY_TEXT_MAX */
	b = fx_sin6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1);
	key_of(&b, ADDRKEY_SOURCE, k);
	memset(k + 8, 0xff, 8); /* not a real /64 key: the longest text */
	addrkey_text(k, ADDRKEY_SOURCE, t, sizeof(t));
	assert_string_equal(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/64");
	/* cut to fit, NUL-terminated; len 0 writes nothing */
	key_of(&a, ADDRKEY_SOURCE, k);
	addrkey_text(k, ADDRKEY_SOURCE, small, sizeof(small));
	assert_string_equal(small, "198");
	addrkey_text(k, ADDRKEY_SOURCE, small, 0);
	assert_string_equal(small, "198");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_other_family),
		cmocka_unit_test(test_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
