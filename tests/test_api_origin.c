/*
 * test_api_origin.c — which browser requests zgate-api accepts: every
 * branch of api_origin_refused() (cross-site Sec-Fetch-Site, no Origin,
 * Origin of another site, of another port or scheme, a Host that is not a
 * name of the certificate as DNS rebinding makes it, IPv4/IPv6/wildcard
 * names), and the names read from a certificate made here with GnuTLS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "api/api_origin.h"
#include "zg_err.h"

/* A self-signed certificate with the given DNS and IP (binary) names, as
 * PEM (free() it). */
static char *make_cert(const char *const *dns, size_t ndns, const unsigned char *const *ips,
		       const size_t *iplens, size_t nips)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned char serial[] = { 1 };
	size_t len = 0;
	char *pem;
	time_t now = time(NULL);

	assert_int_equal(gnutls_x509_privkey_init(&key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
			 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 60), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
						       "zgate-api", 9),
			 0);
	for (size_t i = 0; i < ndns; i++)
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
								      dns[i], (unsigned)strlen(dns[i]),
								      GNUTLS_FSAN_APPEND),
				 0);
	for (size_t i = 0; i < nips; i++)
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS,
								      ips[i], (unsigned)iplens[i],
								      GNUTLS_FSAN_APPEND),
				 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
	assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_PEM, NULL, &len),
			 GNUTLS_E_SHORT_MEMORY_BUFFER);
	pem = calloc(1, len + 1);
	assert_non_null(pem);
	assert_int_equal(gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_PEM, pem, &len), 0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return pem;
}

static struct api_names names; /* of the certificate of test_names */

static int setup(void **state)
{
	static const char *const dns[] = { "zgate.example.com", "*.api.example.com",
					   "Upper.Example." };
	static const unsigned char v4[] = { 127, 0, 0, 1 };
	static const unsigned char v6[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const unsigned char *const ips[] = { v4, v6 };
	static const size_t iplens[] = { 4, 16 };
	char err[256];
	size_t skipped = 99;
	char *pem;

	(void)state;
	pem = make_cert(dns, 3, ips, iplens, 2);
	assert_int_equal(api_names_from_pem(pem, &names, &skipped, err, sizeof(err)), 0);
	assert_int_equal(skipped, 0);
	free(pem);
	return 0;
}

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(names.n, 5);
	assert_string_equal(names.name[0].text, "zgate.example.com");
	assert_int_equal(names.name[0].ip, 0);
	assert_string_equal(names.name[1].text, "*.api.example.com");
	assert_string_equal(names.name[2].text, "upper.example"); /* lower case, no final dot */
	assert_string_equal(names.name[3].text, "127.0.0.1");
	assert_int_equal(names.name[3].ip, 1);
	assert_string_equal(names.name[4].text, "::1");
	assert_int_equal(names.name[4].ip, 1);
}

static void test_not_a_cert(void **state)
{
	struct api_names n;
	char err[256];
	size_t skipped;

	(void)state;
	assert_int_equal(api_names_from_pem("not a certificate", &n, &skipped, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "not a certificate"));
	assert_int_equal(n.n, 0);
}

/* More names than API_NAMES_MAX: the first ones kept, the rest counted. */
static void test_too_many_names(void **state)
{
	const char *dns[API_NAMES_MAX + 3];
	char buf[API_NAMES_MAX + 3][32], err[256];
	struct api_names n;
	size_t skipped;
	char *pem;

	(void)state;
	for (size_t i = 0; i < API_NAMES_MAX + 3; i++) {
		(void)snprintf(buf[i], sizeof(buf[i]), "n%zu.example", i);
		dns[i] = buf[i];
	}
	pem = make_cert(dns, API_NAMES_MAX + 3, NULL, NULL, 0);
	assert_int_equal(api_names_from_pem(pem, &n, &skipped, err, sizeof(err)), 0);
	assert_int_equal(n.n, API_NAMES_MAX);
	assert_int_equal(skipped, 3);
	free(pem);
}

#define OK(o, sfs, h) assert_null(api_origin_refused((o), (sfs), (h), &names))
#define REFUSED(o, sfs, h, why)                                                     \
	do {                                                                        \
		const char *w_ = api_origin_refused((o), (sfs), (h), &names);       \
		assert_non_null(w_);                                                \
		assert_non_null(strstr(w_, "cross-site request refused"));          \
		if (strstr(w_, (why)) == NULL)                                      \
			fail_msg("refused for \"%s\", expected \"%s\"", w_, (why)); \
	} while (0)

/* No Origin: as before the UI, only Sec-Fetch-Site is looked at (curl, a
 * relay and a page's own GET send none). */
static void test_no_origin(void **state)
{
	(void)state;
	OK(NULL, NULL, NULL);
	OK(NULL, NULL, "evil.example");
	OK(NULL, "none", "127.0.0.1:8443");
	OK(NULL, "same-origin", "127.0.0.1:8443");
	OK(NULL, "Same-Origin", NULL);
	REFUSED(NULL, "cross-site", "127.0.0.1:8443", "Sec-Fetch-Site");
	REFUSED(NULL, "same-site", "127.0.0.1:8443", "Sec-Fetch-Site");
	REFUSED(NULL, "", NULL, "Sec-Fetch-Site");
}

/* The UI's own page: Origin is https:// + Host, a name of the certificate. */
static void test_same_origin(void **state)
{
	(void)state;
	OK("https://127.0.0.1:8443", "same-origin", "127.0.0.1:8443");
	OK("https://127.0.0.1:8443", NULL, "127.0.0.1:8443"); /* no Fetch Metadata */
	OK("https://127.0.0.1", "same-origin", "127.0.0.1");  /* port 443 */
	OK("https://[::1]:8443", "same-origin", "[::1]:8443");
	OK("https://[0:0::1]:8443", "same-origin", "[0:0::1]:8443"); /* the same address */
	OK("https://zgate.example.com:8443", "same-origin", "zgate.example.com:8443");
	OK("https://ZGATE.example.com", "same-origin", "zgate.EXAMPLE.com");
	OK("https://zgate.example.com.:8443", "same-origin", "zgate.example.com.:8443");
	OK("https://upper.example", "same-origin", "upper.example");
	OK("https://a.api.example.com", "same-origin", "a.api.example.com"); /* wildcard */
	OK("https://127.0.0.1:8443", "none", "127.0.0.1:8443");
}

static void test_cross_site(void **state)
{
	(void)state;
	REFUSED("https://evil.example", NULL, "127.0.0.1:8443", "Origin");
	REFUSED("https://evil.example", "cross-site", "127.0.0.1:8443", "Sec-Fetch-Site");
	/* a same-origin Origin does not excuse a cross-site Sec-Fetch-Site */
	REFUSED("https://127.0.0.1:8443", "cross-site", "127.0.0.1:8443", "Sec-Fetch-Site");
	REFUSED("https://127.0.0.1:8443", "same-site", "127.0.0.1:8443", "Sec-Fetch-Site");
	REFUSED("null", "none", "127.0.0.1:8443", "Origin");
	REFUSED("", NULL, "127.0.0.1:8443", "Origin");
	REFUSED("https://127.0.0.1:8443", NULL, NULL, "Origin"); /* no Host */
	/* another port of the same host is another origin */
	REFUSED("https://127.0.0.1:9443", "same-origin", "127.0.0.1:8443", "Origin");
	REFUSED("https://127.0.0.1", "same-origin", "127.0.0.1:8443", "Origin");
	/* not https */
	REFUSED("http://127.0.0.1:8443", "same-origin", "127.0.0.1:8443", "Origin");
	REFUSED("https://127.0.0.1:8443/", "same-origin", "127.0.0.1:8443", "Origin");
	REFUSED("https://127.0.0.1:8443.evil.example", "same-origin", "127.0.0.1:8443", "Origin");
}

/* DNS rebinding: the attacker's name resolves to zgate-api, so the browser
 * sends Origin and Host of that name, equal: the certificate refuses it. */
static void test_rebinding(void **state)
{
	(void)state;
	REFUSED("https://evil.example:8443", "same-origin", "evil.example:8443", "certificate");
	REFUSED("https://127.0.0.2:8443", "same-origin", "127.0.0.2:8443", "certificate");
	REFUSED("https://[::2]:8443", "same-origin", "[::2]:8443", "certificate");
	REFUSED("https://example.com", "same-origin", "example.com", "certificate");
	REFUSED("https://zgate.example.com.evil", "same-origin", "zgate.example.com.evil",
		"certificate");
	/* a wildcard is one label, not several, and not the bare domain */
	REFUSED("https://a.b.api.example.com", "same-origin", "a.b.api.example.com",
		"certificate");
	REFUSED("https://api.example.com", "same-origin", "api.example.com", "certificate");
	REFUSED("https://*.api.example.com", "same-origin", "*.api.example.com", "not a name");
	/* a DNS name written like an address is not an IP name, nor the reverse */
	REFUSED("https://[127.0.0.1]", "same-origin", "[127.0.0.1]", "not a name");
	REFUSED("https://::1", "same-origin", "::1", "not a name");
	REFUSED("https://127.0.0.1:", "same-origin", "127.0.0.1:", "not a name");
	REFUSED("https://127.0.0.1:x", "same-origin", "127.0.0.1:x", "not a name");
	REFUSED("https://127.0.0.1:123456", "same-origin", "127.0.0.1:123456", "not a name");
	REFUSED("https://:8443", "same-origin", ":8443", "not a name");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_not_a_cert),
		cmocka_unit_test(test_too_many_names),
		cmocka_unit_test(test_no_origin),
		cmocka_unit_test(test_same_origin),
		cmocka_unit_test(test_cross_site),
		cmocka_unit_test(test_rebinding),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
