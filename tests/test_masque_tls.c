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
#include <time.h>

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
	assert_string_equal(tls_reject_name(TLS_REJECT_CN_COUNT), "cn_count");
	assert_string_equal(tls_reject_name(TLS_REJECT_CN_INVALID), "cn_invalid");
	assert_string_equal(tls_reject_name(TLS_REJECT_URI_COUNT), "uri_count");
	assert_string_equal(tls_reject_name(TLS_REJECT_URI_INVALID), "uri_invalid");
	assert_string_equal(tls_reject_name(TLS_REJECT_CRL_EXPIRED), "crl_expired");
	assert_string_equal(tls_reject_name(TLS_REJECT_OTHER), "other");
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

static enum tls_reject id_of(const char *cert, enum tls_identity mode, char *id, size_t idlen)
{
	WOLFSSL_X509 *x = load(cert);
	enum tls_reject r = tls_client_id(x, mode, id, idlen);

	wolfSSL_X509_free(x);
	return r;
}

static void test_c24_identity_is_the_one_cn(void **state)
{
	char id[TLS_ID_MAX], small[4];
	(void)state;
	assert_int_equal(id_of("agent-1.crt", TLS_IDENTITY_CN, id, sizeof(id)), TLS_ACCEPTED);
	assert_string_equal(id, "agent-1");
	assert_int_equal(id_of("agent-1.crt", TLS_IDENTITY_CN, small, sizeof(small)),
			 TLS_REJECT_CN_INVALID);
	assert_string_equal(small, "");
}

/* Issue 16 item 4: CN=agent-2 + CN=agent-1 names no one, nor does a
 * subject without CN; a CN that is no valid ID is refused, not cut. */
static void test_c24_identity_refuses_bad_cns(void **state)
{
	char id[TLS_ID_MAX];
	(void)state;
	assert_int_equal(id_of("twocn.crt", TLS_IDENTITY_CN, id, sizeof(id)), TLS_REJECT_CN_COUNT);
	assert_string_equal(id, "");
	assert_int_equal(id_of("nocn.crt", TLS_IDENTITY_CN, id, sizeof(id)), TLS_REJECT_CN_COUNT);
	assert_int_equal(id_of("longcn.crt", TLS_IDENTITY_CN, id, sizeof(id)), TLS_REJECT_CN_INVALID);
	assert_int_equal(id_of("spacecn.crt", TLS_IDENTITY_CN, id, sizeof(id)), TLS_REJECT_CN_INVALID);
	assert_int_equal(id_of("utf8cn.crt", TLS_IDENTITY_CN, id, sizeof(id)), TLS_REJECT_CN_INVALID);
	/* a larger buffer does not lift the 63-character limit */
	{
		char big[256];
		assert_int_equal(id_of("longcn.crt", TLS_IDENTITY_CN, big, sizeof(big)),
				 TLS_REJECT_CN_INVALID);
	}
}

/* 63 characters is the longest ID (the policy's limit). */
static void test_c24_identity_63_characters(void **state)
{
	char cmd[512], name[64], crt[80], id[TLS_ID_MAX];
	(void)state;
	memset(name, 'b', 63);
	name[63] = '\0';
	snprintf(cmd, sizeof(cmd), "scripts/gen-certs.sh -d %s -c %s >/dev/null", pki_dir, name);
	assert_int_equal(system(cmd), 0);
	snprintf(crt, sizeof(crt), "%s.crt", name);
	assert_int_equal(id_of(crt, TLS_IDENTITY_CN, id, sizeof(id)), TLS_ACCEPTED);
	assert_int_equal(strlen(id), 63);
}

static void test_c24_identity_from_san_uri(void **state)
{
	char id[TLS_ID_MAX];
	enum tls_identity m;
	(void)state;
	assert_int_equal(id_of("uri.crt", TLS_IDENTITY_SAN_URI, id, sizeof(id)), TLS_ACCEPTED);
	assert_string_equal(id, "spiffe://zgate.test/agent-uri");
	assert_int_equal(id_of("twouri.crt", TLS_IDENTITY_SAN_URI, id, sizeof(id)),
			 TLS_REJECT_URI_COUNT);
	assert_int_equal(id_of("agent-1.crt", TLS_IDENTITY_SAN_URI, id, sizeof(id)),
			 TLS_REJECT_URI_COUNT);
	/* the relay's certificate has DNS and IP SANs, no URI */
	assert_int_equal(id_of("relay.crt", TLS_IDENTITY_SAN_URI, id, sizeof(id)),
			 TLS_REJECT_URI_COUNT);
	/* in san_uri mode the CN does not matter */
	assert_int_equal(id_of("uri.crt", TLS_IDENTITY_CN, id, sizeof(id)), TLS_ACCEPTED);
	assert_string_equal(id, "uri-client");
	assert_int_equal(tls_identity_parse("cn", &m), 0);
	assert_int_equal(m, TLS_IDENTITY_CN);
	assert_int_equal(tls_identity_parse("san_uri", &m), 0);
	assert_int_equal(m, TLS_IDENTITY_SAN_URI);
	assert_string_equal(tls_identity_name(m), "san_uri");
	assert_int_equal(tls_identity_parse("CN", &m), ZG_ERR_CONFIG);
	assert_int_equal(tls_identity_parse("", &m), ZG_ERR_CONFIG);
}

/* Serial and fingerprint read as openssl prints them (lower case, no colons). */
static void test_cert_ids_match_openssl(void **state)
{
	char cmd[512], want[256], serial[TLS_SERIAL_HEX_MAX], sha[TLS_SHA256_HEX_LEN];
	const char *certs[] = { "agent-1.crt", "twocn.crt", "relay.crt" };
	(void)state;
	for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
		WOLFSSL_X509 *x = load(certs[i]);
		FILE *p;
		size_t n;

		assert_int_equal(tls_cert_ids(x, serial, sha), 0);
		wolfSSL_X509_free(x);
		snprintf(cmd, sizeof(cmd),
			 "openssl x509 -in %s -noout -serial -fingerprint -sha256 | "
			 "sed 's/.*=//; s/://g' | tr 'A-F\\n' 'a-f '",
			 f(certs[i]));
		p = popen(cmd, "r");
		assert_non_null(p);
		n = fread(want, 1, sizeof(want) - 1, p);
		want[n] = '\0';
		assert_int_equal(pclose(p), 0);
		snprintf(cmd, sizeof(cmd), "%s %s ", serial, sha);
		assert_string_equal(cmd, want);
	}
}

/* Issue 22: what a reload looks at before swapping a certificate in: the
 * file's serial (as tls_cert_ids()) and whether it is valid now; each
 * refusal names the file. */
static void test_cert_file_info_and_time(void **state)
{
	struct tls_cert_info ci;
	char serial[TLS_SERIAL_HEX_MAX], sha[TLS_SHA256_HEX_LEN];
	WOLFSSL_X509 *x = load("agent-1.crt");
	int64_t now = (int64_t)time(NULL);
	(void)state;
	assert_int_equal(tls_cert_ids(x, serial, sha), 0);
	wolfSSL_X509_free(x);
	assert_int_equal(tls_cert_file_info(f("agent-1.crt"), &ci, err, sizeof(err)), 0);
	assert_string_equal(ci.serial, serial);
	assert_string_equal(ci.sha256, sha);
	assert_true(ci.not_before <= now && now < ci.not_after);
	assert_int_equal(tls_cert_info_check_time(&ci, "agent-1.crt", now, err, sizeof(err)), 0);
	/* the same certificate one second past its notAfter */
	assert_int_equal(tls_cert_info_check_time(&ci, "agent-1.crt", ci.not_after + 1, err,
						  sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "certificate agent-1.crt expired on 20"));
	/* the test set's expired and not-yet-valid certificates */
	assert_int_equal(tls_cert_file_info(f("expired.crt"), &ci, err, sizeof(err)), 0);
	assert_int_equal(tls_cert_info_check_time(&ci, f("expired.crt"), now, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "expired.crt expired on "));
	assert_non_null(strstr(err, "Z"));
	assert_int_equal(tls_cert_file_info(f("notyet.crt"), &ci, err, sizeof(err)), 0);
	assert_int_equal(tls_cert_info_check_time(&ci, f("notyet.crt"), now, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "notyet.crt is not valid before "));
	/* not a certificate, or no file at all */
	assert_int_equal(tls_cert_file_info(f("agent-1.key"), &ci, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "agent-1.key: not a PEM certificate"));
	assert_string_equal(ci.serial, "");
	assert_int_equal(tls_cert_file_info(f("missing.crt"), &ci, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "missing.crt"));
}

/* tls_cert_file_read(): tls_cert_file_info() and the certificate it read,
 * so a caller checks more of it without reading the file again. */
static void test_cert_file_read(void **state)
{
	struct tls_cert_info ci, ci2;
	char serial[TLS_SERIAL_HEX_MAX], sha[TLS_SHA256_HEX_LEN];
	WOLFSSL_X509 *x = (WOLFSSL_X509 *)&ci; /* set to NULL on error */
	(void)state;
	assert_int_equal(tls_cert_file_read(f("agent-1.crt"), &ci, &x, err, sizeof(err)), 0);
	assert_non_null(x);
	assert_int_equal(tls_cert_ids(x, serial, sha), 0);
	wolfSSL_X509_free(x);
	assert_string_equal(ci.serial, serial);
	assert_string_equal(ci.sha256, sha);
	assert_int_equal(tls_cert_file_info(f("agent-1.crt"), &ci2, err, sizeof(err)), 0);
	assert_memory_equal(&ci, &ci2, sizeof(ci));
	assert_int_equal(tls_cert_file_read(f("agent-1.crt"), &ci, NULL, err, sizeof(err)), 0);
	assert_int_equal(tls_cert_file_read(f("agent-1.key"), &ci, &x, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_null(x);
	assert_non_null(strstr(err, "agent-1.key: not a PEM certificate"));
	x = (WOLFSSL_X509 *)&ci;
	assert_int_equal(tls_cert_file_read(f("missing.crt"), &ci, &x, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_null(x);
}

/* tls_derive_secret(): the same key and label give the same 32 bytes, a
 * different label others; a file that opens but does not read says why. */
static void test_derive_secret(void **state)
{
	uint8_t a[32], b[32], c[32];
	(void)state;
	assert_int_equal(tls_derive_secret(f("relay.key"), "l1", a, err, sizeof(err)), 0);
	assert_int_equal(tls_derive_secret(f("relay.key"), "l1", b, err, sizeof(err)), 0);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(tls_derive_secret(f("relay.key"), "l2", c, err, sizeof(err)), 0);
	assert_memory_not_equal(a, c, sizeof(a));
	assert_int_equal(tls_derive_secret(f("missing.key"), "l1", a, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "missing.key: No such file or directory"));
	/* a directory opens for reading and fails at the first read */
	assert_int_equal(tls_derive_secret(pki_dir, "l1", a, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, ": read error: Is a directory"));
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
					    err, sizeof(err)),
			 0);
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
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "missing.crt: No such file or directory"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("agent-1.key"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "agent-1.key does not match certificate"));
	assert_int_equal(tls_server_ctx_new(f("relay.key"), f("relay.key"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "relay.key: not a PEM certificate chain"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.crt"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "relay.crt: not a PEM private key"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.key"), NULL, &ctx,
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "client CA"));
	assert_non_null(strstr(err, "ca.key: no usable PEM CA certificate"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), f("none.crl"), &ctx,
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "CRL"));
	assert_non_null(strstr(err, "none.crl: No such file or directory"));
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), f("ca.crt"), &ctx,
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ca.crt: not a PEM CRL"));
	assert_null(ctx);
}

/* The relay's certificate end and the CRL's nextUpdate, for /metrics; an
 * expired CRL still makes a context (that refuses everyone). */
static void test_server_ctx_times_and_crl(void **state)
{
	WOLFSSL_CTX *ctx = NULL;
	int64_t now = (int64_t)time(NULL);
	(void)state;
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL, &ctx,
					    err, sizeof(err)),
			 0);
	/* gen-certs.sh: 825 days */
	assert_true(tls_server_cert_not_after(ctx) > now + 824 * 86400);
	assert_true(tls_server_cert_not_after(ctx) < now + 826 * 86400);
	assert_int_equal(tls_server_crl_next_update(ctx), 0);
	wolfSSL_CTX_free(ctx);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), f("ca.crl"),
					    &ctx, err, sizeof(err)),
			 0);
	assert_true(tls_server_crl_next_update(ctx) > now + 29 * 86400);
	assert_true(tls_server_crl_next_update(ctx) < now + 31 * 86400);
	wolfSSL_CTX_free(ctx);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"),
					    f("expired.crl"), &ctx, err, sizeof(err)),
			 0);
	assert_true(tls_server_crl_next_update(ctx) < now);
	assert_true(tls_server_crl_next_update(ctx) > now - 2 * 86400);
	wolfSSL_CTX_free(ctx);
}

/* Issue 18.1: a rebuild from a bad file keeps the context in force and
 * says which file; a good one replaces it, and a connection made from the
 * old context keeps it (reference-counted: this runs under ASan too). */
static void test_reload_keeps_old_context_on_bad_file(void **state)
{
	struct tls_server_files good = { f("relay.crt"), f("relay.key"), f("ca.crt"), f("ca.crl") };
	struct tls_server_files files = good;
	WOLFSSL_CTX *ctx = NULL, *old;
	WOLFSSL *ssl;
	int64_t crl_next;
	(void)state;
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &good, TLS_IDENTITY_CN, err, sizeof(err)), 0);
	assert_non_null(ctx);
	old = ctx;
	crl_next = tls_server_crl_next_update(ctx);
	assert_true(crl_next > 0);
	ssl = wolfSSL_new(ctx); /* an open connection */
	assert_non_null(ssl);

	files.key = f("agent-1.key");
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_CN, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "agent-1.key does not match certificate"));
	assert_ptr_equal(ctx, old);
	files = good;
	files.crl = f("ca.crt");
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_CN, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ca.crt: not a PEM CRL"));
	assert_ptr_equal(ctx, old);
	files = good;
	files.client_ca = f("missing-ca.crt");
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_CN, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "missing-ca.crt"));
	assert_ptr_equal(ctx, old);
	assert_int_equal(tls_server_crl_next_update(ctx), crl_next);

	/* a good rebuild: new context, the expiry follows the new files */
	files = good;
	files.crl = f("expired.crl");
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_SAN_URI, err, sizeof(err)),
			 0);
	assert_ptr_not_equal(ctx, old);
	assert_true(tls_server_crl_next_update(ctx) < (int64_t)time(NULL));
	/* the old connection still has its (old) context */
	assert_ptr_equal(wolfSSL_get_SSL_CTX(ssl), old);
	assert_int_equal(tls_server_crl_next_update(wolfSSL_get_SSL_CTX(ssl)), crl_next);
	wolfSSL_free(ssl); /* frees the old context with it */
	wolfSSL_CTX_free(ctx);
}

static uint8_t *der_of(const char *cert, size_t *plen)
{
	WOLFSSL_X509 *x = load(cert);
	const unsigned char *d;
	uint8_t *out;
	int n = 0;

	d = wolfSSL_X509_get_der(x, &n);
	assert_non_null(d);
	assert_true(n > 0);
	out = malloc((size_t)n);
	assert_non_null(out);
	memcpy(out, d, (size_t)n);
	*plen = (size_t)n;
	wolfSSL_X509_free(x);
	return out;
}

/* Issue 18.2: an open session's certificate against the context as
 * reloaded: a new CRL revokes it, a new client CA no longer chains it. */
static void test_check_cert_against_reloaded_context(void **state)
{
	static char cert[256], key[256], ca[256], crl[256], crl_old[256], other[256];
	struct tls_server_files files = { cert, key, ca, NULL };
	WOLFSSL_CTX *ctx = NULL;
	size_t la, lr, ls;
	uint8_t *a1 = der_of("agent-1.crt", &la), *rv = der_of("revoked.crt", &lr);
	uint8_t *st = der_of("stranger.crt", &ls), junk[64];
	(void)state;
	/* f() keeps 8 paths at a time: copies */
	snprintf(cert, sizeof(cert), "%s", f("relay.crt"));
	snprintf(key, sizeof(key), "%s", f("relay.key"));
	snprintf(ca, sizeof(ca), "%s", f("ca.crt"));
	snprintf(crl, sizeof(crl), "%s", f("ca.crl"));
	snprintf(crl_old, sizeof(crl_old), "%s", f("expired.crl"));
	snprintf(other, sizeof(other), "%s", f("other-ca.crt"));
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_CN, err, sizeof(err)), 0);
	assert_int_equal(tls_server_check_cert(ctx, a1, la), TLS_ACCEPTED);
	assert_int_equal(tls_server_check_cert(ctx, rv, lr), TLS_ACCEPTED); /* no CRL yet */
	assert_int_equal(tls_server_check_cert(ctx, st, ls), TLS_REJECT_UNKNOWN_CA);
	files.crl = crl;
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_CN, err, sizeof(err)), 0);
	assert_int_equal(tls_server_check_cert(ctx, a1, la), TLS_ACCEPTED);
	assert_int_equal(tls_server_check_cert(ctx, rv, lr), TLS_REJECT_REVOKED);
	/* an expired CRL: status unknown, said as such */
	files.crl = crl_old;
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_CN, err, sizeof(err)), 0);
	assert_int_equal(tls_server_check_cert(ctx, a1, la), TLS_REJECT_CRL_EXPIRED);
	/* another client CA: agent-1 no longer chains */
	files.crl = NULL;
	files.client_ca = other;
	assert_int_equal(tls_server_ctx_rebuild(&ctx, &files, TLS_IDENTITY_CN, err, sizeof(err)), 0);
	assert_int_equal(tls_server_check_cert(ctx, a1, la), TLS_REJECT_UNKNOWN_CA);
	assert_int_equal(tls_server_check_cert(ctx, st, ls), TLS_ACCEPTED);
	/* not a certificate, or nothing */
	memset(junk, 0x30, sizeof(junk));
	assert_int_not_equal(tls_server_check_cert(ctx, junk, sizeof(junk)), TLS_ACCEPTED);
	assert_int_equal(tls_server_check_cert(ctx, NULL, 0), TLS_REJECT_OTHER);
	assert_int_equal(tls_server_check_cert(NULL, a1, la), TLS_REJECT_OTHER);
	wolfSSL_CTX_free(ctx);
	free(a1);
	free(rv);
	free(st);
}

static void test_client_ctx(void **state)
{
	WOLFSSL_CTX *ctx = NULL;
	(void)state;
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), f("ca.crt"), &ctx,
					    err, sizeof(err)),
			 0);
	wolfSSL_CTX_free(ctx);
	ctx = NULL;
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), "", &ctx,
					    err, sizeof(err)),
			 ZG_ERR_CONFIG);
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
					    err, sizeof(err)),
			 0);
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
		cmocka_unit_test(test_c24_identity_is_the_one_cn),
		cmocka_unit_test(test_c24_identity_refuses_bad_cns),
		cmocka_unit_test(test_c24_identity_63_characters),
		cmocka_unit_test(test_c24_identity_from_san_uri),
		cmocka_unit_test(test_cert_ids_match_openssl),
		cmocka_unit_test(test_cert_file_info_and_time),
		cmocka_unit_test(test_cert_file_read),
		cmocka_unit_test(test_server_ctx_times_and_crl),
		cmocka_unit_test(test_error_mapping),
		cmocka_unit_test(test_derive_secret),
		cmocka_unit_test(test_server_ctx),
		cmocka_unit_test(test_server_ctx_errors_name_the_file),
		cmocka_unit_test(test_client_ctx),
		cmocka_unit_test(test_c25_set_alpn),
		cmocka_unit_test(test_reload_keeps_old_context_on_bad_file),
		cmocka_unit_test(test_check_cert_against_reloaded_context),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
