/*
 * tls.h — TLS 1.3 contexts for QUIC (wolfSSL + ngtcp2's wolfSSL helper)
 * and the client-certificate checks the relay applies (C24).
 *
 * Server: TLS 1.3 only, ALPN "h3" only (tls_set_alpn() on each
 * connection's SSL object), a client certificate is required
 * and must chain to the configured CA, be within its validity period,
 * carry the clientAuth extended key usage, (with a CRL) not be revoked, and
 * name exactly one client: one subject CN (tls.identity cn, the default)
 * or one subjectAltName URI (san_uri), 1-63 printable ASCII characters
 * without spaces. A CRL whose nextUpdate has passed refuses every client
 * (crl_expired): revocation status is unknown, so the relay fails closed.
 * Each refusal has its own reason (enum tls_reject), recorded per
 * connection for the log, the audit trail and the metrics.
 * Client: verifies the relay against a CA and the expected server name.
 */
#ifndef ZG_MASQUE_TLS_H
#define ZG_MASQUE_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

enum tls_reject {
	TLS_ACCEPTED = 0,
	TLS_REJECT_NO_CERT,        /* the client sent no certificate */
	TLS_REJECT_UNKNOWN_CA,     /* does not chain to the configured CA */
	TLS_REJECT_EXPIRED,        /* notAfter is past */
	TLS_REJECT_NOT_YET_VALID,  /* notBefore is ahead */
	TLS_REJECT_NO_CLIENT_AUTH, /* no clientAuth extended key usage */
	TLS_REJECT_REVOKED,        /* listed in the CRL */
	TLS_REJECT_BAD_SIGNATURE,  /* signature does not verify */
	TLS_REJECT_NAME_MISMATCH,  /* (the relay's) not issued for the expected name */
	TLS_REJECT_CN_COUNT,       /* no subject CN, or several (tls.identity cn) */
	TLS_REJECT_CN_INVALID,     /* the CN is empty, too long, or not printable ASCII */
	TLS_REJECT_URI_COUNT,      /* no SAN URI, or several (tls.identity san_uri) */
	TLS_REJECT_URI_INVALID,    /* the SAN URI is too long or not printable ASCII */
	TLS_REJECT_CRL_EXPIRED,    /* the configured CRL's nextUpdate has passed */
	TLS_REJECT_OTHER,
	TLS_REJECT_COUNT
};

/* A short, stable token for logs, audit and metric labels
 * ("no_certificate", "unknown_ca", "expired", ...). Never NULL. */
const char *tls_reject_name(enum tls_reject r);

/* Maps a wolfSSL verification error code to a reason. */
enum tls_reject tls_reject_from_error(int err);

/* Checks the extended key usage of a leaf certificate: TLS_ACCEPTED when
 * it lists clientAuth (want_client) or serverAuth (!want_client), else
 * TLS_REJECT_NO_CLIENT_AUTH (or TLS_REJECT_OTHER for a server). A
 * certificate without the extension is refused: zgate issues purpose-bound
 * certificates. */
enum tls_reject tls_check_eku(WOLFSSL_X509 *x, int want_client);

/* Where the relay takes a client's identity from (relay option
 * tls.identity): the certificate's one subject CN, or its one
 * subjectAltName URI, used verbatim (e.g. spiffe://corp.example/agent-1). */
enum tls_identity {
	TLS_IDENTITY_CN = 0,
	TLS_IDENTITY_SAN_URI,
};

/* An identity: 1 to TLS_ID_MAX - 1 printable ASCII characters, no spaces
 * (it must fit the policy's client IDs). */
#define TLS_ID_MAX 64

/* Parses "cn" or "san_uri". Returns 0 and *pmode, or ZG_ERR_CONFIG. */
int tls_identity_parse(const char *s, enum tls_identity *pmode);

/* The option value for mode ("cn", "san_uri"). Never NULL. */
const char *tls_identity_name(enum tls_identity mode);

/* Takes the client identity from certificate x by mode and copies it to id
 * (idlen bytes, at most TLS_ID_MAX are used). Returns TLS_ACCEPTED, or
 * TLS_REJECT_CN_COUNT / TLS_REJECT_URI_COUNT when x has none or several,
 * TLS_REJECT_CN_INVALID / TLS_REJECT_URI_INVALID when the one it has is
 * empty, longer than min(idlen, TLS_ID_MAX) - 1, or has a byte outside
 * 0x21-0x7e (space, control, non-ASCII, an embedded NUL). id is "" then. */
enum tls_reject tls_client_id(WOLFSSL_X509 *x, enum tls_identity mode, char *id, size_t idlen);

/* The same with the mode set on ssl's context (tls_server_set_identity). */
enum tls_reject tls_peer_id(WOLFSSL *ssl, WOLFSSL_X509 *x, char *id, size_t idlen);

/* Room for a serial number in hex (wolfSSL keeps at most 32 octets) and
 * for a SHA-256 fingerprint in hex, each with the NUL. */
#define TLS_SERIAL_HEX_MAX 65
#define TLS_SHA256_HEX_LEN 65

/* Writes x's serial number in lower-case hex without leading zero octets
 * (as `openssl x509 -serial` prints it, but lower case) and the SHA-256 of
 * its DER encoding in lower-case hex (`openssl x509 -fingerprint
 * -sha256` without the colons). Returns 0 or ZG_ERR_MALFORMED (both ""). */
int tls_cert_ids(WOLFSSL_X509 *x, char serial[TLS_SERIAL_HEX_MAX],
		 char sha256[TLS_SHA256_HEX_LEN]);

/* What a certificate file says of its first (leaf) certificate. */
struct tls_cert_info {
	char serial[TLS_SERIAL_HEX_MAX]; /* tls_cert_ids() */
	char sha256[TLS_SHA256_HEX_LEN];
	int64_t not_before, not_after; /* Unix seconds; 0 when absent */
};

/* Reads the first certificate of the PEM file path. Returns 0 and *info,
 * or ZG_ERR_CONFIG with err naming the file ("certificate PATH: ...":
 * unreadable, or no PEM certificate in it). */
int tls_cert_file_info(const char *path, struct tls_cert_info *info, char *err, size_t errlen);

/* tls_cert_file_info() that also hands back the certificate it read (*px,
 * the caller frees it with wolfSSL_X509_free(); NULL on error), for a
 * caller that checks more of it (the connector: its identity) from the
 * same read. px may be NULL. Same returns and messages. */
int tls_cert_file_read(const char *path, struct tls_cert_info *info, WOLFSSL_X509 **px,
		       char *err, size_t errlen);

/* Checks that now (Unix seconds) lies within info's validity: a reload
 * must not swap a working certificate for one the peers refuse. Returns 0,
 * or ZG_ERR_CONFIG with err "certificate PATH expired on <notAfter>" or
 * "certificate PATH is not valid before <notBefore>" (UTC, ISO 8601). */
int tls_cert_info_check_time(const struct tls_cert_info *info, const char *path, int64_t now,
			     char *err, size_t errlen);

/* Creates the relay's context: cert chain + key (PEM), client CA bundle,
 * optional CRL (NULL or ""). Returns 0 and *pctx (free with
 * wolfSSL_CTX_free), or ZG_ERR_CONFIG with err naming the file and what
 * is wrong with it. A CRL whose nextUpdate has already passed is not an
 * error: the context refuses every client with TLS_REJECT_CRL_EXPIRED (the
 * caller sees it with tls_server_crl_next_update() and says so). */
int tls_server_ctx_new(const char *cert, const char *key, const char *client_ca,
		       const char *crl, WOLFSSL_CTX **pctx, char *err, size_t errlen);

/* Sets where clients' identities come from on a tls_server_ctx_new()
 * context (default TLS_IDENTITY_CN). Returns 0 or ZG_ERR_STATE (wolfSSL
 * not initialised by a tls_*_ctx_new call). */
int tls_server_set_identity(WOLFSSL_CTX *ctx, enum tls_identity mode);

/* Unix times of the end of the relay certificate's validity (notAfter)
 * and of the CRL's nextUpdate (the earliest, when the file holds several),
 * 0 when unknown or there is no CRL. Valid for tls_server_ctx_new()
 * contexts. */
int64_t tls_server_cert_not_after(WOLFSSL_CTX *ctx);
int64_t tls_server_crl_next_update(WOLFSSL_CTX *ctx);

/* The files of a relay context, as configured (tls.cert, tls.key,
 * tls.client_ca, tls.crl; crl NULL or "" for none). */
struct tls_server_files {
	const char *cert, *key, *client_ca, *crl;
};

/* Rebuilds the relay's context from the files (issue 18.1): a new
 * tls_server_ctx_new() context with identity mode. On success returns 0,
 * *pctx is the new context and the old one is released: connections made
 * from it keep it (every WOLFSSL holds a reference to its WOLFSSL_CTX) and
 * it is freed with the last of them. On failure returns ZG_ERR_CONFIG (or
 * ZG_ERR_NOMEM) with err naming the file and what is wrong with it, and
 * *pctx is untouched: the old context stays in force. */
int tls_server_ctx_rebuild(WOLFSSL_CTX **pctx, const struct tls_server_files *f,
			   enum tls_identity mode, char *err, size_t errlen);

/* Largest client certificate (DER) the relay keeps per session. */
#define TLS_CERT_DER_MAX 16384

/* Checks a client's certificate (DER, the leaf its handshake presented)
 * against a relay context as it is now: chains to its client CA, within
 * its validity period, not revoked by its CRL (issue 18.2: run after a
 * reload on every open session). Returns TLS_ACCEPTED, the reason it
 * fails (TLS_REJECT_REVOKED, TLS_REJECT_UNKNOWN_CA, TLS_REJECT_EXPIRED,
 * ...), TLS_REJECT_CRL_EXPIRED when the context's CRL is past its
 * nextUpdate (status unknown), or TLS_REJECT_OTHER for a NULL argument or
 * an unparsable certificate. The leaf must be issued by a CA in the client
 * CA file (an intermediate the client sent in its chain is not kept). */
enum tls_reject tls_server_check_cert(WOLFSSL_CTX *ctx, const uint8_t *der, size_t len);

/* Creates the agent's context: its cert + key, and the CA the relay's
 * certificate must chain to. Same returns. cert and key NULL make a
 * context without a client certificate (tests of the relay's refusal). */
int tls_client_ctx_new(const char *cert, const char *key, const char *ca,
		       WOLFSSL_CTX **pctx, char *err, size_t errlen);

/* Derives 32 bytes from the contents of a secret file (the relay's private
 * key) and a label: SHA-256(label || 0x00 || file). The same key gives the
 * same value on every restart and every replica. Returns 0, ZG_ERR_IO
 * (err "FILE: REASON" when it does not open, "FILE: read error: REASON"
 * when it does not read, e.g. a directory) or ZG_ERR_TOO_LARGE (over
 * 1 MiB). */
int tls_derive_secret(const char *file, const char *label, uint8_t out[32], char *err,
		      size_t errlen);

/* ALPN (RFC 9001 §8.1): zgate speaks HTTP/3 only. */
#define TLS_ALPN "h3"
/* Room for tests to make a ClientHello that takes two Initials
 * (masque_fx.h, fx_big_hello_alpn()) whatever the key exchange groups. */
#define TLS_ALPN_LIST_MAX 2048

/* Sets the ALPN protocols of one connection: what a client offers, what a
 * server accepts. list is comma-separated ("h3,foo"); NULL means "h3",
 * "" none (tests of the peer's refusal). With a list, a server answers a
 * ClientHello that offers ALPN but none of the list with the
 * no_application_protocol alert; a client refuses a server that selects
 * another protocol. Set on each SSL object: this wolfSSL build ignores
 * the context-level wolfSSL_CTX_set_alpn_select_cb() (it takes effect only
 * with OPENSSL_ALL/NGINX/HAPROXY), so the relay would select nothing.
 * Returns 0, or ZG_ERR_CONFIG (list longer than TLS_ALPN_LIST_MAX or not
 * accepted by wolfSSL, e.g. a name over 255 bytes). */
int tls_set_alpn(WOLFSSL *ssl, const char *list);

/* Sets the key exchange groups of ctx, in order of preference: the
 * post-quantum hybrid X25519MLKEM768, then X25519, P-256, P-384. A
 * client's one key share is the first (a 1562-byte ClientHello, two QUIC
 * Initials: the relay answers and counts first flights, not datagrams);
 * a server that lacks the hybrid asks for X25519 with a
 * HelloRetryRequest (one more round trip). A server takes the hybrid
 * when offered and otherwise any key share of the other three as it
 * comes, without a HelloRetryRequest (rustls 0.20, older agents: X25519).
 * Set explicitly because wolfSSL's default moves between versions (5.7.2
 * led with P-256). Returns 0 or ZG_ERR_CONFIG. */
int tls_set_groups(WOLFSSL_CTX *ctx);

/* Makes the handshake on ssl (a client) check the peer certificate against
 * name: an IPv4 or IPv6 address literal against the certificate's
 * iPAddress SANs, anything else against its DNS names (and, without any,
 * its CN). wolfSSL 5.9's wolfSSL_check_domain_name() refuses a name that is
 * not a valid DNS name, so an address must go through
 * wolfSSL_check_ip_address() (which needs WOLFSSL_IP_ALT_NAME). Returns 0,
 * or ZG_ERR_CONFIG when wolfSSL refuses the name or is out of memory. */
int tls_check_peer_name(WOLFSSL *ssl, const char *name);

/* 1 when the handshake on ssl negotiated ALPN "h3", 0 otherwise (nothing
 * or another protocol was selected). */
int tls_alpn_is_h3(WOLFSSL *ssl);

/* The reason the last handshake on ssl refused the peer, TLS_ACCEPTED when
 * it did not (or the handshake has not verified a certificate yet). Valid
 * for SSL objects made from a tls_server_ctx_new() context. */
enum tls_reject tls_last_reject(WOLFSSL *ssl);

#endif /* ZG_MASQUE_TLS_H */
