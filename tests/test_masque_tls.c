/*
 * Unit tests for src/masque/tls: the client-certificate checks (C24) on a
 * PKI made at run time by scripts/gen-certs.sh --test-set, and the TLS
 * contexts' start-up errors, each naming the file at fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <wolfssl/options.h>
#include <wolfssl/error-ssl.h>

#include "masque/tls.h"
#include "zg_err.h"
#include "pki.h"

static char err[512];

static int setup(void **state)
{
	if (setup_pki(state) != 0)
		return -1;
	return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -1;
}

static int teardown(void **state)
{
	wolfSSL_Cleanup();
	return teardown_pki(state);
}

/* What the relay's chain and validity checks say about a certificate. */
static enum tls_reject chain_verdict(const char *cert)
{
	WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
	int r;
	assert_non_null(cm);
	assert_int_equal(wolfSSL_CertManagerLoadCA(cm, f("ca.crt"), NULL), WOLFSSL_SUCCESS);
	r = wolfSSL_CertManagerVerify(cm, f(cert), WOLFSSL_FILETYPE_PEM);
	wolfSSL_CertManagerFree(cm);
	return tls_reject_from_error(r == WOLFSSL_SUCCESS ? 0 : r);
}

static WOLFSSL_X509 *load(const char *cert)
{
	WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(f(cert), WOLFSSL_FILETYPE_PEM);
	assert_non_null(x);
	return x;
}

static void test_c24_reject_names(void **state)
{
	(void)state;
	for (int i = 0; i < TLS_REJECT_COUNT; i++) {
		for (int j = 0; j < i; j++)
			assert_string_not_equal(tls_reject_name(i), tls_reject_name(j));
	}
	assert_string_equal(tls_reject_name(TLS_REJECT_EXPIRED), "expired");
	assert_string_equal(tls_reject_name(TLS_REJECT_COUNT), "other");
}

static void test_c24_chain_and_validity(void **state)
{
	(void)state;
	assert_int_equal(chain_verdict("agent-1.crt"), TLS_ACCEPTED);
	assert_int_equal(chain_verdict("expired.crt"), TLS_REJECT_EXPIRED);
	assert_int_equal(chain_verdict("notyet.crt"), TLS_REJECT_NOT_YET_VALID);
	assert_int_equal(chain_verdict("stranger.crt"), TLS_REJECT_UNKNOWN_CA);
}

static void test_c24_client_auth_eku(void **state)
{
	WOLFSSL_X509 *x;
	(void)state;
	x = load("agent-1.crt");
	assert_int_equal(tls_check_eku(x, 1), TLS_ACCEPTED);
	assert_int_equal(tls_check_eku(x, 0), TLS_REJECT_OTHER);
	wolfSSL_X509_free(x);
	x = load("serveronly.crt");
	assert_int_equal(tls_check_eku(x, 1), TLS_REJECT_NO_CLIENT_AUTH);
	wolfSSL_X509_free(x);
	x = load("relay.crt");
	assert_int_equal(tls_check_eku(x, 0), TLS_ACCEPTED);
	assert_int_equal(tls_check_eku(x, 1), TLS_REJECT_NO_CLIENT_AUTH);
	wolfSSL_X509_free(x);
	/* the CA has no EKU extension: not a client certificate */
	x = load("ca.crt");
	assert_int_equal(tls_check_eku(x, 1), TLS_REJECT_NO_CLIENT_AUTH);
	wolfSSL_X509_free(x);
}

static void test_subject_cn_is_the_client_id(void **state)
{
	WOLFSSL_X509 *x = load("agent-1.crt");
	char cn[64], small[4];
	(void)state;
	assert_int_equal(tls_subject_cn(x, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "agent-1");
	assert_int_equal(tls_subject_cn(x, small, sizeof(small)), ZG_ERR_MALFORMED);
	wolfSSL_X509_free(x);
}

static void test_error_mapping(void **state)
{
	(void)state;
	assert_int_equal(tls_reject_from_error(0), TLS_ACCEPTED);
	assert_int_equal(tls_reject_from_error(CRL_CERT_REVOKED), TLS_REJECT_REVOKED);
	assert_int_equal(tls_reject_from_error(NO_PEER_CERT), TLS_REJECT_NO_CERT);
	assert_int_equal(tls_reject_from_error(EXTKEYUSE_AUTH_E), TLS_REJECT_NO_CLIENT_AUTH);
	assert_int_equal(tls_reject_from_error(-12345), TLS_REJECT_OTHER);
}

static void test_server_ctx(void **state)
{
	WOLFSSL_CTX *ctx = NULL;
	WOLFSSL *ssl;
	(void)state;
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)), 0);
	ssl = wolfSSL_new(ctx);
	assert_non_null(ssl);
	assert_true(wolfSSL_is_quic(ssl));
	assert_int_equal(tls_last_reject(ssl), TLS_ACCEPTED);
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
}

static void test_server_ctx_errors_name_the_file(void **state)
{
	WOLFSSL_CTX *ctx = NULL;
	(void)state;
	assert_int_equal(tls_server_ctx_new(f("missing.crt"), f("relay.key"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "missing.crt: No such file or directory"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("agent-1.key"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "agent-1.key does not match certificate"));
	assert_int_equal(tls_server_ctx_new(f("relay.key"), f("relay.key"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "relay.key: not a PEM certificate chain"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.crt"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "relay.crt: not a PEM private key"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.key"), NULL, &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "client CA"));
	assert_non_null(strstr(err, "ca.key: no usable PEM CA certificate"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), f("none.crl"), &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "CRL"));
	assert_non_null(strstr(err, "none.crl: No such file or directory"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), f("ca.crt"), &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ca.crt: not a PEM CRL"));
	assert_null(ctx);
}

static void test_client_ctx(void **state)
{
	WOLFSSL_CTX *ctx = NULL;
	(void)state;
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), f("ca.crt"), &ctx,
					    err, sizeof(err)), 0);
	wolfSSL_CTX_free(ctx);
	ctx = NULL;
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), "", &ctx,
					    err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "relay CA: no file given"));
	assert_null(ctx);
}

static void test_c25_set_alpn(void **state)
{
	WOLFSSL_CTX *ctx = NULL;
	WOLFSSL *ssl;
	char long_list[TLS_ALPN_LIST_MAX + 2];
	(void)state;
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), f("ca.crt"), &ctx,
					    err, sizeof(err)), 0);
	ssl = wolfSSL_new(ctx);
	assert_non_null(ssl);
	assert_int_equal(tls_set_alpn(ssl, NULL), 0);
	assert_int_equal(tls_set_alpn(ssl, ""), 0);
	assert_int_equal(tls_set_alpn(ssl, "h3,h2"), 0);
	memset(long_list, 'a', sizeof(long_list) - 1);
	long_list[sizeof(long_list) - 1] = '\0';
	assert_int_equal(tls_set_alpn(ssl, long_list), ZG_ERR_CONFIG);
	/* nothing negotiated before a handshake */
	assert_false(tls_alpn_is_h3(ssl));
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c24_reject_names),
		cmocka_unit_test(test_c24_chain_and_validity),
		cmocka_unit_test(test_c24_client_auth_eku),
		cmocka_unit_test(test_subject_cn_is_the_client_id),
		cmocka_unit_test(test_error_mapping),
		cmocka_unit_test(test_server_ctx),
		cmocka_unit_test(test_server_ctx_errors_name_the_file),
		cmocka_unit_test(test_client_ctx),
		cmocka_unit_test(test_c25_set_alpn),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
