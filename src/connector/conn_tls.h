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
	char id[TLS_ID_MAX];       /* its identity, "connector:<ID>" (the CN) */
	/* of the last successful load: a doubt about the certificate to log
	 * (its SAN URI names another identity), or "" */
	char warning[256 + CONN_PATH_MAX];
	uint64_t loads; /* successful loads, the first included */
};

/* Checks that certificate x (read from path) names a connector wherever a
 * relay could read its identity: its one subject CN is "connector:<ID>"
 * (a relay with tls.identity cn, the default, takes the CN, and agents
 * always check the connector's CN); a relay with san_uri takes the one
 * SAN URI instead, which the connector cannot know. Returns 0 with the CN
 * in id (TLS_ID_MAX bytes) and warning "" or saying that a single SAN URI
 * naming something else makes a san_uri relay treat it as another client
 * (a certificate without one, or with several, is refused by such a
 * relay: no silent mistake); or ZG_ERR_CONFIG with err naming path and the
 * identity ("cert PATH: identity \"agent-1\" is not connector:<id>; the
 * relay treats this client as an agent"). */
int conn_tls_check_identity(WOLFSSL_X509 *x, const char *path, char id[TLS_ID_MAX], char *warning,
			    size_t warnlen, char *err, size_t errlen);

/* Loads cfg's cert, key and ca into two new contexts and, when both load,
 * the certificate is valid at now (Unix seconds) and names a connector
 * (conn_tls_check_identity), makes them t's, releasing the old ones (t->id
 * and t->warning follow). Returns 0; or ZG_ERR_CONFIG (ZG_ERR_NOMEM) with
 * err naming the file and what is wrong with it, and t unchanged. */
int conn_tls_load(struct conn_tls *t, const struct conn_config *cfg, int64_t now, char *err,
		  size_t errlen);

/* Releases t's contexts (connections still open keep theirs). */
void conn_tls_free(struct conn_tls *t);

/* The files conn_tls_load() reads, in files[0..2] (for watching and
 * change detection). Returns 3. */
size_t conn_tls_files(const struct conn_config *cfg, const char *files[3]);

#endif /* ZG_CONNECTOR_CONN_TLS_H */
