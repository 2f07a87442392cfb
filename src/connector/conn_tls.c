#include "connector/conn_tls.h"

#include <string.h>

#include "zg_err.h"

int conn_tls_load(struct conn_tls *t, const struct conn_config *cfg, int64_t now, char *err,
		  size_t errlen)
{
	struct tls_server_files sf = { cfg->cert, cfg->key, cfg->ca, NULL };
	struct tls_cert_info ci;
	WOLFSSL_CTX *client = NULL, *server = NULL;
	int r;

	if ((r = tls_cert_file_info(cfg->cert, &ci, err, errlen)) != 0 ||
	    (r = tls_cert_info_check_time(&ci, cfg->cert, now, err, errlen)) != 0)
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
