/*
 * conn_tls.h — zgate-connector's TLS material, loaded and replaced as one:
 * the client context it dials the relays with and the server context
 * agents' inner sessions are verified against. Both come from the same
 * files (conn_config.h cert, key, ca: the connector's certificate
 * "connector:<ID>", its key, and the CA of the relays and the agents).
 *
 * A load (at start, then on SIGHUP or a change of the files) builds both
 * new contexts before touching the ones in force: a bad file, a key that
 * does not match, or a certificate outside its validity period leaves the
 * old material in place and says which file is wrong. Contexts that are
 * replaced are released, not freed under anyone: every connection made
 * from one holds a reference to it (wolfSSL), so open tunnels and inner
 * sessions continue with the material they were made with.
 */
#ifndef ZG_CONNECTOR_CONN_TLS_H
#define ZG_CONNECTOR_CONN_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "connector/conn_config.h"
#include "masque/tls.h"

struct conn_tls {
	WOLFSSL_CTX *client;       /* toward the relays; NULL before the first load */
	WOLFSSL_CTX *server;       /* agents' inner sessions (client CA = ca) */
	struct tls_cert_info cert; /* of the certificate in force */
	uint64_t loads;            /* successful loads, the first included */
};

/* Loads cfg's cert, key and ca into two new contexts and, when both load
 * and the certificate is valid at now (Unix seconds), makes them t's,
 * releasing the old ones. Returns 0; or ZG_ERR_CONFIG (ZG_ERR_NOMEM) with
 * err naming the file and what is wrong with it, and t unchanged. */
int conn_tls_load(struct conn_tls *t, const struct conn_config *cfg, int64_t now, char *err,
		  size_t errlen);

/* Releases t's contexts (connections still open keep theirs). */
void conn_tls_free(struct conn_tls *t);

/* The files conn_tls_load() reads, in files[0..2] (for watching and
 * change detection). Returns 3. */
size_t conn_tls_files(const struct conn_config *cfg, const char *files[3]);

#endif /* ZG_CONNECTOR_CONN_TLS_H */
