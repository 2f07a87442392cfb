#include "connector/conn_tls.h"

#include <string.h>

#include "zg_err.h"
#include "zgconn.h"

int conn_tls_check_identity(WOLFSSL_X509 *x, const char *path, char id[TLS_ID_MAX], char *warning,
			    size_t warnlen, char *err, size_t errlen)
{
	char uri[TLS_ID_MAX];
	enum tls_reject r;
	int has_uri;

	if (warnlen > 0)
		warning[0] = '\0';
	has_uri = tls_client_id(x, TLS_IDENTITY_SAN_URI, uri, sizeof(uri)) == TLS_ACCEPTED;
	r = tls_client_id(x, TLS_IDENTITY_CN, id, TLS_ID_MAX);
	if (r != TLS_ACCEPTED) {
		zg_seterr(err, errlen,
			  "cert %s: no subject CN that names a client (%s); a connector's "
			  "certificate has the one CN connector:<id>, which the relay and the agents "
			  "check",
			  path, tls_reject_name(r));
		return ZG_ERR_CONFIG;
	}
	if (!zgconn_identity(id, NULL)) {
		zg_seterr(err, errlen,
			  "cert %s: identity \"%s\" is not connector:<id>; the relay treats this "
			  "client as an agent%s",
			  path, id,
			  has_uri && zgconn_identity(uri, NULL)
				  ? " (its SAN URI counts only on a relay with tls.identity san_uri, "
				    "and agents check the CN)"
				  : "");
		id[0] = '\0';
		return ZG_ERR_CONFIG;
	}
	/* A relay with tls.identity san_uri reads the one SAN URI instead; the
	 * connector does not know the relay's mode, so a URI that names
	 * another identity is said, not refused (it is right for cn). */
	if (has_uri && strcmp(uri, id) != 0)
		zg_seterr(warning, warnlen,
			  "cert %s: its SAN URI \"%s\" is not its CN \"%s\": a relay with "
			  "tls.identity san_uri takes the URI and %s (one with cn, the default, "
			  "takes the CN)",
			  path, uri, id,
			  zgconn_identity(uri, NULL) ? "treats this client as another connector, whose "
						       "inner sessions agents refuse (they check the CN)"
						     : "treats this client as an agent");
	return 0;
}

int conn_tls_load(struct conn_tls *t, const struct conn_config *cfg, int64_t now, char *err,
		  size_t errlen)
{
	struct tls_server_files sf = { cfg->cert, cfg->key, cfg->ca, NULL };
	struct tls_cert_info ci;
	WOLFSSL_CTX *client = NULL, *server = NULL;
	char id[TLS_ID_MAX], warning[sizeof(t->warning)];
	WOLFSSL_X509 *x;
	int r;

	/* one read: the dates and the identity are of the same certificate */
	if ((r = tls_cert_file_read(cfg->cert, &ci, &x, err, errlen)) != 0)
		return r;
	if ((r = tls_cert_info_check_time(&ci, cfg->cert, now, err, errlen)) == 0)
		r = conn_tls_check_identity(x, cfg->cert, id, warning, sizeof(warning), err,
					    errlen);
	wolfSSL_X509_free(x);
	if (r != 0)
		return r;
	if ((r = tls_client_ctx_new(cfg->cert, cfg->key, cfg->ca, &client, err, errlen)) != 0)
		return r;
	/* the relay's rebuild: a new context with the identity mode set (the
	 * agents' certificate CN), server left NULL so nothing is released */
	if ((r = tls_server_ctx_rebuild(&server, &sf, TLS_IDENTITY_CN, err, errlen)) != 0) {
		wolfSSL_CTX_free(client);
		return r;
	}
	conn_tls_free(t);
	t->client = client;
	t->server = server;
	t->cert = ci;
	memcpy(t->id, id, sizeof(t->id));
	memcpy(t->warning, warning, sizeof(t->warning));
	t->loads++;
	return 0;
}

void conn_tls_free(struct conn_tls *t)
{
	if (t->client != NULL)
		wolfSSL_CTX_free(t->client);
	if (t->server != NULL)
		wolfSSL_CTX_free(t->server);
	t->client = t->server = NULL;
}

size_t conn_tls_files(const struct conn_config *cfg, const char *files[3])
{
	files[0] = cfg->cert;
	files[1] = cfg->key;
	files[2] = cfg->ca;
	return 3;
}
