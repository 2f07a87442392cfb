#include "masque/tls.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_wolfssl.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "zg_err.h"

static const char *const reject_names[TLS_REJECT_COUNT] = {
	"accepted", "no_certificate", "unknown_ca", "expired", "not_yet_valid",
	"no_client_auth", "revoked", "bad_signature", "name_mismatch", "other",
};

const char *tls_reject_name(enum tls_reject r)
{
	return (unsigned)r < TLS_REJECT_COUNT ? reject_names[r] : "other";
}

enum tls_reject tls_reject_from_error(int err)
{
	switch (err) {
	case 0:
		return TLS_ACCEPTED;
	case ASN_NO_SIGNER_E:
		return TLS_REJECT_UNKNOWN_CA;
	case ASN_AFTER_DATE_E:
		return TLS_REJECT_EXPIRED;
	case ASN_BEFORE_DATE_E:
		return TLS_REJECT_NOT_YET_VALID;
	case CRL_CERT_REVOKED:
		return TLS_REJECT_REVOKED;
	case ASN_SIG_CONFIRM_E:
		return TLS_REJECT_BAD_SIGNATURE;
	case NO_PEER_CERT:
		return TLS_REJECT_NO_CERT;
	case EXTKEYUSE_AUTH_E:
		return TLS_REJECT_NO_CLIENT_AUTH;
	case DOMAIN_NAME_MISMATCH:
	case IPADDR_MISMATCH:
		return TLS_REJECT_NAME_MISMATCH;
	default:
		return TLS_REJECT_OTHER;
	}
}

enum tls_reject tls_check_eku(WOLFSSL_X509 *x, int want_client)
{
	unsigned int eku = wolfSSL_X509_get_extended_key_usage(x);
	/* wolfSSL's X509 layer reports OpenSSL's XKU_* bits, not EXTKEYUSE_* */
	unsigned int want = want_client ? XKU_SSL_CLIENT : XKU_SSL_SERVER;

	if (eku & want)
		return TLS_ACCEPTED;
	return want_client ? TLS_REJECT_NO_CLIENT_AUTH : TLS_REJECT_OTHER;
}

int tls_subject_cn(WOLFSSL_X509 *x, char *cn, size_t cnlen)
{
	WOLFSSL_X509_NAME *name = wolfSSL_X509_get_subject_name(x);
	char buf[256];
	int n;

	if (!name)
		return ZG_ERR_NOTFOUND;
	n = wolfSSL_X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)sizeof(buf));
	if (n < 0)
		return ZG_ERR_NOTFOUND;
	if (n == 0 || (size_t)n >= cnlen || (size_t)n >= sizeof(buf))
		return ZG_ERR_MALFORMED;
	for (int i = 0; i < n; i++)
		if (!isgraph((unsigned char)buf[i]))
			return ZG_ERR_MALFORMED;
	memcpy(cn, buf, (size_t)n);
	cn[n] = '\0';
	return 0;
}

/* Per-connection reason, kept in the SSL object's ex data slot. */
static int reject_idx = -1;

static void set_reject(WOLFSSL *ssl, enum tls_reject r)
{
	if (ssl && reject_idx >= 0)
		(void)wolfSSL_set_ex_data(ssl, reject_idx, (void *)(uintptr_t)r);
}

enum tls_reject tls_last_reject(WOLFSSL *ssl)
{
	return reject_idx >= 0 ? (enum tls_reject)(uintptr_t)wolfSSL_get_ex_data(ssl, reject_idx)
			       : TLS_ACCEPTED;
}

/* Runs for every certificate of the client's chain: keeps wolfSSL's
 * verdict, records why it refused, and adds the clientAuth check on the
 * leaf (depth 0). */
static int verify_client(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store,
		wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	WOLFSSL_X509 *cert = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	enum tls_reject r;

	if (!preverify) {
		set_reject(ssl, tls_reject_from_error(wolfSSL_X509_STORE_CTX_get_error(store)));
		return 0;
	}
	if (wolfSSL_X509_STORE_CTX_get_error_depth(store) == 0 && cert &&
	    (r = tls_check_eku(cert, 1)) != TLS_ACCEPTED) {
		set_reject(ssl, r);
		return 0;
	}
	return 1;
}

/* The client's view of the relay's chain: wolfSSL decides, this only
 * records why it refused, for the connection's close reason. */
static int verify_server(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store,
		wolfSSL_get_ex_data_X509_STORE_CTX_idx());

	if (!preverify)
		set_reject(ssl, tls_reject_from_error(wolfSSL_X509_STORE_CTX_get_error(store)));
	return preverify;
}

int tls_set_alpn(WOLFSSL *ssl, const char *list)
{
	char buf[TLS_ALPN_LIST_MAX + 1];
	size_t n;

	if (list == NULL)
		list = TLS_ALPN;
	n = strlen(list);
	if (n == 0)
		return 0;
	if (n > TLS_ALPN_LIST_MAX)
		return ZG_ERR_CONFIG;
	memcpy(buf, list, n + 1); /* wolfSSL takes a char * */
	if (wolfSSL_UseALPN(ssl, buf, (unsigned int)n, WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
	    WOLFSSL_SUCCESS)
		return ZG_ERR_CONFIG;
	return 0;
}

int tls_alpn_is_h3(WOLFSSL *ssl)
{
	char *name = NULL;
	unsigned short len = 0;

	if (wolfSSL_ALPN_GetProtocol(ssl, &name, &len) != WOLFSSL_SUCCESS || name == NULL)
		return 0;
	return len == sizeof(TLS_ALPN) - 1 && memcmp(name, TLS_ALPN, len) == 0;
}

static int readable(const char *what, const char *path, char *err, size_t errlen)
{
	if (!path || !path[0]) {
		(void)snprintf(err, errlen, "%s: no file given", what);
		return ZG_ERR_CONFIG;
	}
	if (access(path, R_OK) != 0) {
		(void)snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* Loads our certificate chain and key and checks that they belong together. */
static int load_identity(WOLFSSL_CTX *ctx, const char *cert, const char *key,
			 char *err, size_t errlen)
{
	int r;

	if ((r = readable("certificate", cert, err, errlen)) != 0 ||
	    (r = readable("key", key, err, errlen)) != 0)
		return r;
	if (wolfSSL_CTX_use_certificate_chain_file(ctx, cert) != WOLFSSL_SUCCESS) {
		(void)snprintf(err, errlen, "certificate %s: not a PEM certificate chain", cert);
		return ZG_ERR_CONFIG;
	}
	if (wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
		(void)snprintf(err, errlen, "key %s: not a PEM private key", key);
		return ZG_ERR_CONFIG;
	}
	if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
		(void)snprintf(err, errlen, "key %s does not match certificate %s", key, cert);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

static int load_ca(WOLFSSL_CTX *ctx, const char *what, const char *ca, char *err, size_t errlen)
{
	int r;

	if ((r = readable(what, ca, err, errlen)) != 0)
		return r;
	if (wolfSSL_CTX_load_verify_locations(ctx, ca, NULL) != WOLFSSL_SUCCESS) {
		(void)snprintf(err, errlen, "%s %s: no usable PEM CA certificate in it", what, ca);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* Initialises wolfSSL and makes a TLS 1.3 context of the given method
 * holding our certificate and key and trusting ca. */
static int ctx_base(WOLFSSL_METHOD *method, const char *cert, const char *key,
		    const char *ca_what, const char *ca, WOLFSSL_CTX **pctx,
		    char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx;
	int r;

	if (!method || !(ctx = wolfSSL_CTX_new(method))) {
		(void)snprintf(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	if ((cert != NULL && (r = load_identity(ctx, cert, key, err, errlen)) != 0) ||
	    (r = load_ca(ctx, ca_what, ca, err, errlen)) != 0) {
		wolfSSL_CTX_free(ctx);
		return r;
	}
	*pctx = ctx;
	return 0;
}

static int init_once(char *err, size_t errlen)
{
	if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
		(void)snprintf(err, errlen, "wolfSSL initialisation failed");
		return ZG_ERR_CONFIG;
	}
	/* Slot 0 is wolfSSL_set_app_data()'s, which ngtcp2's QUIC glue
	 * uses for the connection: never share it. */
	while (reject_idx <= 0) {
		reject_idx = wolfSSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		if (reject_idx < 0)
			break;
	}
	return 0;
}

int tls_server_ctx_new(const char *cert, const char *key, const char *client_ca,
		       const char *crl, WOLFSSL_CTX **pctx, char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx;
	int r;

	if (cert == NULL || key == NULL) {
		(void)snprintf(err, errlen, "the relay needs a certificate and a key");
		return ZG_ERR_CONFIG;
	}
	if ((r = init_once(err, errlen)) != 0 ||
	    (r = ctx_base(wolfTLSv1_3_server_method(), cert, key, "client CA", client_ca, &ctx,
			  err, errlen)) != 0)
		return r;
	if (crl && crl[0]) {
		if ((r = readable("CRL", crl, err, errlen)) != 0)
			goto fail;
		if (wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS ||
		    wolfSSL_CTX_LoadCRLFile(ctx, crl, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
			(void)snprintf(err, errlen, "CRL %s: not a PEM CRL signed by the client CA", crl);
			r = ZG_ERR_CONFIG;
			goto fail;
		}
	}
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			       verify_client);
	if (ngtcp2_crypto_wolfssl_configure_server_context(ctx) != 0) {
		(void)snprintf(err, errlen, "cannot set up QUIC on the TLS context");
		r = ZG_ERR_CONFIG;
		goto fail;
	}
	*pctx = ctx;
	return 0;
fail:
	wolfSSL_CTX_free(ctx);
	return r;
}

int tls_client_ctx_new(const char *cert, const char *key, const char *ca,
		       WOLFSSL_CTX **pctx, char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx;
	int r;

	if ((r = init_once(err, errlen)) != 0 ||
	    (r = ctx_base(wolfTLSv1_3_client_method(), cert, key, "relay CA", ca, &ctx,
			  err, errlen)) != 0)
		return r;
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, verify_server);
	if (ngtcp2_crypto_wolfssl_configure_client_context(ctx) != 0) {
		(void)snprintf(err, errlen, "cannot set up QUIC on the TLS context");
		r = ZG_ERR_CONFIG;
		goto fail;
	}
	*pctx = ctx;
	return 0;
fail:
	wolfSSL_CTX_free(ctx);
	return r;
}

int tls_derive_secret(const char *file, const char *label, uint8_t out[32], char *err,
		      size_t errlen)
{
	FILE *f = fopen(file, "rb");
	size_t ll = strlen(label), n;
	uint8_t *buf;
	int r = 0;

	if (f == NULL) {
		(void)snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return ZG_ERR_IO;
	}
	buf = malloc(ll + 1 + (1 << 20) + 1);
	if (buf == NULL) {
		fclose(f);
		return ZG_ERR_NOMEM;
	}
	memcpy(buf, label, ll);
	buf[ll] = 0;
	n = fread(buf + ll + 1, 1, (1 << 20) + 1, f);
	if (ferror(f)) {
		(void)snprintf(err, errlen, "%s: read error", file);
		r = ZG_ERR_IO;
	} else if (n > (1 << 20)) {
		(void)snprintf(err, errlen, "%s: larger than 1 MiB", file);
		r = ZG_ERR_TOO_LARGE;
	} else if (wc_Sha256Hash(buf, (word32)(ll + 1 + n), out) != 0) {
		(void)snprintf(err, errlen, "%s: hashing failed", file);
		r = ZG_ERR_IO;
	}
	memset(buf, 0, ll + 1 + n); /* key material */
	free(buf);
	fclose(f);
	return r;
}
