#include "masque/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
	"accepted",
	"no_certificate",
	"unknown_ca",
	"expired",
	"not_yet_valid",
	"no_client_auth",
	"revoked",
	"bad_signature",
	"name_mismatch",
	"cn_count",
	"cn_invalid",
	"uri_count",
	"uri_invalid",
	"crl_expired",
	"other",
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

int tls_identity_parse(const char *s, enum tls_identity *pmode)
{
	if (strcmp(s, "cn") == 0)
		*pmode = TLS_IDENTITY_CN;
	else if (strcmp(s, "san_uri") == 0)
		*pmode = TLS_IDENTITY_SAN_URI;
	else
		return ZG_ERR_CONFIG;
	return 0;
}

const char *tls_identity_name(enum tls_identity mode)
{
	return mode == TLS_IDENTITY_SAN_URI ? "san_uri" : "cn";
}

/* Copies the n bytes at d to id when they make a valid identity. */
static enum tls_reject copy_id(const unsigned char *d, int n, char *id, size_t idlen,
			       enum tls_reject bad)
{
	size_t max = idlen < TLS_ID_MAX ? idlen : TLS_ID_MAX;

	if (d == NULL || n <= 0 || (size_t)n >= max)
		return bad;
	for (int i = 0; i < n; i++)
		if (d[i] <= 0x20 || d[i] >= 0x7f) /* not isgraph(): no locale */
			return bad;
	memcpy(id, d, (size_t)n);
	id[n] = '\0';
	return TLS_ACCEPTED;
}

/* Exactly one subject CN. Counting matters: tools disagree on which of
 * several CNs names the subject (wolfSSL takes the first, many the last). */
static enum tls_reject id_from_cn(WOLFSSL_X509 *x, char *id, size_t idlen)
{
	WOLFSSL_X509_NAME *name = wolfSSL_X509_get_subject_name(x);
	WOLFSSL_ASN1_STRING *v = NULL;
	int pos = -1, count = 0;

	if (name == NULL)
		return TLS_REJECT_CN_COUNT;
	while ((pos = wolfSSL_X509_NAME_get_index_by_NID(name, NID_commonName, pos)) >= 0) {
		if (++count > 1)
			return TLS_REJECT_CN_COUNT;
		v = wolfSSL_X509_NAME_ENTRY_get_data(wolfSSL_X509_NAME_get_entry(name, pos));
	}
	if (count != 1)
		return TLS_REJECT_CN_COUNT;
	if (v == NULL)
		return TLS_REJECT_CN_INVALID;
	return copy_id(wolfSSL_ASN1_STRING_data(v), wolfSSL_ASN1_STRING_length(v), id, idlen,
		       TLS_REJECT_CN_INVALID);
}

/* Exactly one subjectAltName URI (other SAN types are ignored). */
static enum tls_reject id_from_uri(WOLFSSL_X509 *x, char *id, size_t idlen)
{
	WOLF_STACK_OF(WOLFSSL_GENERAL_NAME) * gns;
	WOLFSSL_GENERAL_NAME *uri = NULL;
	enum tls_reject r;
	int count = 0, n;

	gns = wolfSSL_X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gns == NULL)
		return TLS_REJECT_URI_COUNT;
	n = wolfSSL_sk_GENERAL_NAME_num(gns);
	for (int i = 0; i < n; i++) {
		WOLFSSL_GENERAL_NAME *g = wolfSSL_sk_GENERAL_NAME_value(gns, i);

		if (g != NULL && g->type == GEN_URI) {
			count++;
			uri = g;
		}
	}
	if (count != 1)
		r = TLS_REJECT_URI_COUNT;
	else if (uri->d.uniformResourceIdentifier == NULL)
		r = TLS_REJECT_URI_INVALID;
	else
		r = copy_id(wolfSSL_ASN1_STRING_data(uri->d.uniformResourceIdentifier),
			    wolfSSL_ASN1_STRING_length(uri->d.uniformResourceIdentifier), id, idlen,
			    TLS_REJECT_URI_INVALID);
	wolfSSL_sk_GENERAL_NAME_pop_free(gns, wolfSSL_GENERAL_NAME_free);
	return r;
}

enum tls_reject tls_client_id(WOLFSSL_X509 *x, enum tls_identity mode, char *id, size_t idlen)
{
	enum tls_reject r;

	if (idlen == 0)
		return mode == TLS_IDENTITY_SAN_URI ? TLS_REJECT_URI_INVALID : TLS_REJECT_CN_INVALID;
	id[0] = '\0';
	if (x == NULL)
		return TLS_REJECT_NO_CERT;
	r = mode == TLS_IDENTITY_SAN_URI ? id_from_uri(x, id, idlen) : id_from_cn(x, id, idlen);
	if (r != TLS_ACCEPTED)
		id[0] = '\0';
	return r;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

int tls_cert_ids(WOLFSSL_X509 *x, char serial[TLS_SERIAL_HEX_MAX],
		 char sha256[TLS_SHA256_HEX_LEN])
{
	unsigned char sn[(TLS_SERIAL_HEX_MAX - 1) / 2], digest[32];
	const unsigned char *der, *p = sn;
	int snlen = (int)sizeof(sn), derlen = 0;

	serial[0] = sha256[0] = '\0';
	if (x == NULL || wolfSSL_X509_get_serial_number(x, sn, &snlen) != WOLFSSL_SUCCESS ||
	    snlen <= 0 || (size_t)snlen > sizeof(sn))
		return ZG_ERR_MALFORMED;
	der = wolfSSL_X509_get_der(x, &derlen);
	if (der == NULL || derlen <= 0 || wc_Sha256Hash(der, (word32)derlen, digest) != 0)
		return ZG_ERR_MALFORMED;
	while (snlen > 1 && p[0] == 0) { /* DER's sign octet */
		p++;
		snlen--;
	}
	hex(p, (size_t)snlen, serial);
	hex(digest, sizeof(digest), sha256);
	return 0;
}

/* Per-connection reason, kept in the SSL object's ex data slot. */
static int reject_idx = -1;

/* Per-context settings of a server context, in the context's ex data
 * slots (plain values, so nothing needs freeing with the context): the
 * identity mode, the CRL's nextUpdate and the certificate's notAfter (Unix
 * seconds, 0 = none). */
enum {
	SLOT_IDENTITY,
	SLOT_CRL_NEXT,
	SLOT_CERT_END,
	SLOT_COUNT
};
static int ctx_idx[SLOT_COUNT] = { -1, -1, -1 };

static uintptr_t ctx_get(WOLFSSL_CTX *ctx, int slot)
{
	if (ctx == NULL || ctx_idx[slot] < 0)
		return 0;
	return (uintptr_t)wolfSSL_CTX_get_ex_data(ctx, ctx_idx[slot]);
}

static int ctx_set(WOLFSSL_CTX *ctx, int slot, uintptr_t v)
{
	if (ctx == NULL || ctx_idx[slot] < 0 ||
	    wolfSSL_CTX_set_ex_data(ctx, ctx_idx[slot], (void *)v) != WOLFSSL_SUCCESS)
		return ZG_ERR_STATE;
	return 0;
}

int tls_server_set_identity(WOLFSSL_CTX *ctx, enum tls_identity mode)
{
	return ctx_set(ctx, SLOT_IDENTITY, (uintptr_t)mode);
}

enum tls_reject tls_peer_id(WOLFSSL *ssl, WOLFSSL_X509 *x, char *id, size_t idlen)
{
	WOLFSSL_CTX *ctx = ssl != NULL ? wolfSSL_get_SSL_CTX(ssl) : NULL;

	return tls_client_id(x, (enum tls_identity)ctx_get(ctx, SLOT_IDENTITY), id, idlen);
}

int64_t tls_server_cert_not_after(WOLFSSL_CTX *ctx)
{
	return (int64_t)ctx_get(ctx, SLOT_CERT_END);
}

int64_t tls_server_crl_next_update(WOLFSSL_CTX *ctx)
{
	return (int64_t)ctx_get(ctx, SLOT_CRL_NEXT);
}

/* Whether ctx has a CRL whose nextUpdate has passed. */
static int crl_expired(WOLFSSL_CTX *ctx)
{
	uintptr_t next = ctx_get(ctx, SLOT_CRL_NEXT);

	return next != 0 && (uintptr_t)time(NULL) >= next;
}

/* An ASN.1 time as Unix seconds, 0 when it cannot be read. */
static int64_t asn1_time(const WOLFSSL_ASN1_TIME *t)
{
	struct tm tm;
	time_t v;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS)
		return 0;
	v = timegm(&tm);
	return v > 0 ? (int64_t)v : 0;
}

static void set_reject(WOLFSSL *ssl, enum tls_reject r)
{
	if (ssl && reject_idx >= 0)
		(void)wolfSSL_set_ex_data(ssl, reject_idx, (void *)(uintptr_t)r);
}

enum tls_reject tls_last_reject(WOLFSSL *ssl)
{
	enum tls_reject r = reject_idx >= 0
				    ? (enum tls_reject)(uintptr_t)wolfSSL_get_ex_data(ssl, reject_idx)
				    : TLS_ACCEPTED;

	/* wolfSSL 5.9 compares an address (tls_check_peer_name) with the
	 * certificate after the verify callback, which saw the chain
	 * accepted: only the handshake's error tells */
	if (r == TLS_ACCEPTED && ssl != NULL && wolfSSL_get_error(ssl, 0) == IPADDR_MISMATCH)
		r = TLS_REJECT_NAME_MISMATCH;
	return r;
}

/* Runs for every certificate of the client's chain: keeps wolfSSL's
 * verdict, records why it refused, and adds on the leaf (depth 0) the
 * clientAuth check and the identity rule. An expired CRL refuses first,
 * whatever wolfSSL makes of it (it reports it as a missing CRL). */
static int verify_client(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store,
							  wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	WOLFSSL_X509 *cert = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	char id[TLS_ID_MAX];
	enum tls_reject r;

	if (ssl != NULL && crl_expired(wolfSSL_get_SSL_CTX(ssl))) {
		set_reject(ssl, TLS_REJECT_CRL_EXPIRED);
		return 0;
	}
	if (!preverify) {
		set_reject(ssl, tls_reject_from_error(wolfSSL_X509_STORE_CTX_get_error(store)));
		return 0;
	}
	if (wolfSSL_X509_STORE_CTX_get_error_depth(store) == 0 && cert &&
	    ((r = tls_check_eku(cert, 1)) != TLS_ACCEPTED ||
	     (r = tls_peer_id(ssl, cert, id, sizeof(id))) != TLS_ACCEPTED)) {
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

int tls_set_groups(WOLFSSL_CTX *ctx)
{
	int groups[] = { WOLFSSL_X25519MLKEM768, WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1,
			 WOLFSSL_ECC_SECP384R1 };

	return wolfSSL_CTX_set_groups(ctx, groups, (int)(sizeof(groups) / sizeof(groups[0]))) ==
			       WOLFSSL_SUCCESS
		       ? 0
		       : ZG_ERR_CONFIG;
}

int tls_check_peer_name(WOLFSSL *ssl, const char *name)
{
	struct in6_addr a;
	int r;

	if (inet_pton(AF_INET, name, &a) == 1 || inet_pton(AF_INET6, name, &a) == 1)
		r = wolfSSL_check_ip_address(ssl, name);
	else
		r = wolfSSL_check_domain_name(ssl, name);
	return r == WOLFSSL_SUCCESS ? 0 : ZG_ERR_CONFIG;
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
	if (tls_set_groups(ctx) != 0) {
		(void)snprintf(err, errlen, "TLS key exchange groups not accepted by wolfSSL");
		wolfSSL_CTX_free(ctx);
		return ZG_ERR_CONFIG;
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
	for (int i = 0; i < SLOT_COUNT; i++)
		while (ctx_idx[i] <= 0) {
			ctx_idx[i] = wolfSSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
			if (ctx_idx[i] < 0)
				break;
		}
	return 0;
}

/* The earliest nextUpdate of the CRLs in a PEM file: 0 and *pnext (0 when
 * none has one), or ZG_ERR_CONFIG when the file holds no CRL. */
static int crl_next_update(const char *path, int64_t *pnext)
{
	FILE *fp = fopen(path, "r");
	WOLFSSL_X509_CRL *crl;
	int64_t next = 0;
	int n = 0;

	if (fp == NULL)
		return ZG_ERR_CONFIG;
	while (n < 1024 && (crl = wolfSSL_PEM_read_X509_CRL(fp, NULL, NULL, NULL)) != NULL) {
		int64_t t = asn1_time(wolfSSL_X509_CRL_get_nextUpdate(crl));

		if (t != 0 && (next == 0 || t < next))
			next = t;
		wolfSSL_X509_CRL_free(crl);
		n++;
	}
	fclose(fp);
	if (n == 0)
		return ZG_ERR_CONFIG;
	*pnext = next;
	return 0;
}

int tls_cert_file_read(const char *path, struct tls_cert_info *info, WOLFSSL_X509 **px,
		       char *err, size_t errlen)
{
	WOLFSSL_X509 *x;
	int r;

	memset(info, 0, sizeof(*info));
	if (px != NULL)
		*px = NULL;
	if ((r = readable("certificate", path, err, errlen)) != 0)
		return r;
	if ((x = wolfSSL_X509_load_certificate_file(path, WOLFSSL_FILETYPE_PEM)) == NULL) {
		(void)snprintf(err, errlen, "certificate %s: not a PEM certificate", path);
		return ZG_ERR_CONFIG;
	}
	(void)tls_cert_ids(x, info->serial, info->sha256);
	info->not_before = asn1_time(wolfSSL_X509_get_notBefore(x));
	info->not_after = asn1_time(wolfSSL_X509_get_notAfter(x));
	if (px != NULL)
		*px = x;
	else
		wolfSSL_X509_free(x);
	return 0;
}

int tls_cert_file_info(const char *path, struct tls_cert_info *info, char *err, size_t errlen)
{
	return tls_cert_file_read(path, info, NULL, err, errlen);
}

static void utc(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(buf, len, "%lld", (long long)t);
}

int tls_cert_info_check_time(const struct tls_cert_info *info, const char *path, int64_t now,
			     char *err, size_t errlen)
{
	char when[40];

	if (info->not_after != 0 && now > info->not_after) {
		utc(info->not_after, when, sizeof(when));
		(void)snprintf(err, errlen, "certificate %s expired on %s", path, when);
		return ZG_ERR_CONFIG;
	}
	if (info->not_before != 0 && now < info->not_before) {
		utc(info->not_before, when, sizeof(when));
		(void)snprintf(err, errlen, "certificate %s is not valid before %s", path, when);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* The notAfter of the first certificate of a PEM chain, 0 if unreadable. */
static int64_t cert_not_after(const char *path)
{
	struct tls_cert_info ci;
	char err[16];

	return tls_cert_file_info(path, &ci, err, sizeof(err)) == 0 ? ci.not_after : 0;
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
	(void)ctx_set(ctx, SLOT_CERT_END, (uintptr_t)cert_not_after(cert));
	if (crl && crl[0]) {
		int64_t next = 0;
		int lr;

		if ((r = readable("CRL", crl, err, errlen)) != 0)
			goto fail;
		if (crl_next_update(crl, &next) != 0 ||
		    wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS) {
			(void)snprintf(err, errlen, "CRL %s: not a PEM CRL", crl);
			r = ZG_ERR_CONFIG;
			goto fail;
		}
		lr = wolfSSL_CTX_LoadCRLFile(ctx, crl, WOLFSSL_FILETYPE_PEM);
		/* wolfSSL will not load an expired CRL; the context then
		 * refuses everyone as crl_expired (verify_client) */
		if (lr != WOLFSSL_SUCCESS &&
		    !(lr == CRL_CERT_DATE_ERR && next != 0 && next <= (int64_t)time(NULL))) {
			(void)snprintf(err, errlen, "CRL %s: not a PEM CRL signed by the client CA", crl);
			r = ZG_ERR_CONFIG;
			goto fail;
		}
		if ((r = ctx_set(ctx, SLOT_CRL_NEXT, (uintptr_t)next)) != 0) {
			(void)snprintf(err, errlen, "CRL %s: cannot record its nextUpdate", crl);
			goto fail;
		}
	}
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			       verify_client);
	/* No resumption: a tunnel is one long connection, nothing resumes it
	 * (and 0-RTT is never accepted), so a NewSessionTicket per handshake
	 * and a server-side session cache would be bytes, CPU and memory for
	 * nothing; every handshake authenticates the client certificate in
	 * full, which revocation (CRL reload) relies on. */
	if (wolfSSL_CTX_no_ticket_TLSv13(ctx) != 0 ||
	    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF) != WOLFSSL_SUCCESS) {
		(void)snprintf(err, errlen, "cannot turn TLS session resumption off");
		r = ZG_ERR_CONFIG;
		goto fail;
	}
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

int tls_server_ctx_rebuild(WOLFSSL_CTX **pctx, const struct tls_server_files *f,
			   enum tls_identity mode, char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx = NULL;
	int r;

	if (pctx == NULL || f == NULL) {
		(void)snprintf(err, errlen, "no context to rebuild");
		return ZG_ERR_INVAL;
	}
	r = tls_server_ctx_new(f->cert, f->key, f->client_ca, f->crl, &ctx, err, errlen);
	if (r != 0)
		return r;
	if (tls_server_set_identity(ctx, mode) != 0) {
		(void)snprintf(err, errlen, "cannot set the identity mode on the new context");
		wolfSSL_CTX_free(ctx);
		return ZG_ERR_CONFIG;
	}
	if (*pctx != NULL)
		wolfSSL_CTX_free(*pctx); /* a reference; open connections hold theirs */
	*pctx = ctx;
	return 0;
}

enum tls_reject tls_server_check_cert(WOLFSSL_CTX *ctx, const uint8_t *der, size_t len)
{
	WOLFSSL_CERT_MANAGER *cm;
	int rv;

	if (ctx == NULL || der == NULL || len == 0 || len > TLS_CERT_DER_MAX)
		return TLS_REJECT_OTHER;
	if (crl_expired(ctx))
		return TLS_REJECT_CRL_EXPIRED;
	cm = wolfSSL_CTX_GetCertManager(ctx);
	if (cm == NULL)
		return TLS_REJECT_OTHER;
	/* the signature, the issuer among the CAs, the dates and (the
	 * context's CRL enabled) revocation */
	rv = wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1);
	if (rv == WOLFSSL_SUCCESS)
		return TLS_ACCEPTED;
	return tls_reject_from_error(rv);
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
	errno = 0;
	n = fread(buf + ll + 1, 1, (1 << 20) + 1, f);
	if (ferror(f)) {
		/* fread() leaves read(2)'s errno (EISDIR, EIO, ...) */
		(void)snprintf(err, errlen, "%s: read error: %s", file,
			       strerror(errno ? errno : EIO));
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
