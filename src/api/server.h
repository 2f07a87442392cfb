/*
 * server.h — zgate-api's HTTPS front: libmicrohttpd with GnuTLS, a pool
 * of worker threads (each request runs on one and may block on the
 * database), client-certificate and bearer-token authentication, the
 * /api/v1 IPAM endpoints and /health, /ready, /metrics.
 *
 * Who may do what:
 *   /health /ready /metrics           anyone (no credentials; probes)
 *   POST ipam/allocations, GET and    a relay (certificate CN "relay:ID",
 *   PUT .../refresh of one client      ID recorded on the lease) or an admin
 *   DELETE of one client, ipam/stats, an admin: certificate CN "admin:NAME"
 *   GET ipam/allocations (a list)      or "Authorization: Bearer TOKEN"
 *   GET /api/v1/policy (the active    a relay or an admin
 *   policy, raw)
 *   the other policy endpoints        an admin (policy_routes.h)
 * A certificate must chain to the configured CA and, when it has an
 * extended key usage, allow TLS client authentication. A certificate that
 * is presented but fails is refused (401) even with a good token; so is
 * one the CRL (cfg->crl, read again when the file changes or on SIGHUP)
 * lists, and every one while that CRL is past its nextUpdate (bearer
 * tokens are not certificates: they still work).
 *
 * No browser UI is served: a request with an Origin header or a
 * cross-site Sec-Fetch-Site is refused (403), and one with a body must be
 * Content-Type: application/json (415), both decided on the head (CSRF).
 *
 * Credentials, too, are checked on the head: a refused request is answered
 * and its connection closed before its body is read. So is a body whose
 * Content-Length passes API_BODY_MAX (413; API_POLICY_BODY_MAX for the
 * two policy POSTs, whose large bodies also need a free slot, else 503);
 * a chunked one is refused (413) and closed as soon as the bytes received
 * pass it. A connection must
 * complete its TLS handshake and request head within head_timeout (a
 * watchdog thread shuts late ones down), and one source address may hold
 * max_connections_per_address connections (refused when accepted).
 *
 * A sweeper thread frees, at start and every sweep_interval, the expired
 * leases whose address lies outside the pool (api_db_sweep()).
 */
#ifndef ZG_API_SERVER_H
#define ZG_API_SERVER_H

#include <stddef.h>

#include "api/api_config.h"
#include "api/api_db.h"

struct api_server;

/* Reads cfg's certificate, key and CA and checks they load together (the
 * key matches the certificate). Returns 0 or ZG_ERR_CONFIG with err naming
 * the file. */
int api_server_check_tls(const struct api_config *cfg, char *err, size_t errlen);

/* Reads the admin token from path (the first line, surrounding blanks
 * cut; at least 16 bytes). Returns 0 with the token in out, or
 * ZG_ERR_CONFIG with err set. */
int api_server_read_token(const char *path, char *out, size_t outlen, char *err,
			  size_t errlen);

/* Starts listening on cfg->listen with cfg->threads workers over db,
 * which stays owned by the caller and must outlive the server. token ""
 * disables bearer tokens. Returns 0 and *ps, ZG_ERR_CONFIG (TLS files),
 * ZG_ERR_IO (cannot listen) or ZG_ERR_NOMEM, with err set. */
int api_server_start(const struct api_config *cfg, struct api_db *db, const char *token,
		     struct api_server **ps, char *err, size_t errlen);

/* Reads the CRL file (cfg->crl of api_server_start) again now (SIGHUP)
 * and puts it in force for every following certificate check, also on
 * connections already open. Logs what it did (and, when the new CRL is
 * past its nextUpdate, that every client certificate is now refused).
 * Returns 0, or ZG_ERR_CONFIG with err set (no crl configured,
 * unreadable, not a CRL, not signed by cfg->ca): the CRL in force stays.
 *
 * Without a signal, the server's watchdog thread looks at the file every
 * second (stat: inode, size, modification and change times) and reads a
 * new version the same way once it has stayed unchanged for one look, so
 * a CRL renamed into place, rewritten or updated by Kubernetes applies
 * within about 2 s; a version that does not load is logged once, as an
 * error naming the file, and the CRL in force stays. */
int api_server_reload_crl(struct api_server *s, char *err, size_t errlen);

/* Replaces the admin token (SIGHUP re-reads its file). */
void api_server_set_token(struct api_server *s, const char *token);

/* Stops accepting, closes connections, joins the workers, frees s. */
void api_server_stop(struct api_server *s);

#endif /* ZG_API_SERVER_H */
