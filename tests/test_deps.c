/*
 * Checks that the source-built dependencies are the ones DESIGN.md requires:
 * versions at or above the minimum, and wolfSSL built with its QUIC API and
 * the options the transport relies on (peer certificate kept, CRL, AES-ECB).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/version.h>

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_wolfssl.h>

static void test_ngtcp2_version(void **state)
{
	const ngtcp2_info *info = ngtcp2_version(0);
	(void)state;
	assert_non_null(info);
	assert_true(info->version_num >= 0x010b00); /* >= 1.11.0 */
	/* a newer requirement than the library offers is refused */
	assert_null(ngtcp2_version(0x7fffff));
}

static void test_nghttp3_version(void **state)
{
	const nghttp3_info *info = nghttp3_version(0);
	(void)state;
	assert_non_null(info);
	assert_true(info->version_num >= 0x010800); /* >= 1.8.0 */
}

static void test_wolfssl_quic_api(void **state)
{
	WOLFSSL_CTX *ctx;
	WOLFSSL *ssl;
	(void)state;

	assert_true(LIBWOLFSSL_VERSION_HEX >= 0x05009002); /* >= 5.9.2 (CVE fixes) */
	assert_int_equal(wolfSSL_Init(), WOLFSSL_SUCCESS);
	ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
	assert_non_null(ctx);
	assert_int_equal(ngtcp2_crypto_wolfssl_configure_client_context(ctx), 0);
	/* a client context: wolfSSL refuses a server session without a key */
	ssl = wolfSSL_new(ctx);
	assert_non_null(ssl);
	assert_true(wolfSSL_is_quic(ssl));
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
	wolfSSL_Cleanup();
}

static void test_wolfssl_build_options(void **state)
{
	(void)state;
#if !defined(WOLFSSL_QUIC) || !defined(KEEP_PEER_CERT) || !defined(HAVE_CRL) ||     \
	!defined(HAVE_AES_ECB) || !defined(HAVE_ALPN) || !defined(OPENSSL_EXTRA) || \
	!defined(WOLFSSL_ALWAYS_VERIFY_CB)
	fail_msg("wolfSSL lacks QUIC, KEEP_PEER_CERT, CRL, AES-ECB, ALPN, OPENSSL_EXTRA or ALWAYS_VERIFY_CB: "
		 "rebuild with third_party/deps.sh");
#endif
#if !defined(HAVE_EX_DATA_CRYPTO) || !defined(WOLFSSL_IP_ALT_NAME)
	fail_msg("wolfSSL lacks HAVE_EX_DATA_CRYPTO (the ex_data index calls) or WOLFSSL_IP_ALT_NAME");
#endif
#ifndef WOLFSSL_HAVE_MLKEM
	/* tls_set_groups() leads with X25519MLKEM768 (third_party/README.md) */
	fail_msg("wolfSSL was built without ML-KEM: third_party/deps.sh must not pass --disable-mlkem");
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ngtcp2_version),
		cmocka_unit_test(test_nghttp3_version),
		cmocka_unit_test(test_wolfssl_quic_api),
		cmocka_unit_test(test_wolfssl_build_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
