/*
 * ops.h — the relay's operations endpoint (a small HTTP/1.1 server on
 * libevent bufferevents):
 *
 *   GET /health   200 "ok" while the process runs
 *   GET /ready    200 "ready" once the owner says so; 503 while starting or
 *                 draining (the body names the state)
 *   GET /metrics  200, Prometheus text exposition format 0.0.4, written by
 *                 the owner's callback (plus the endpoint's own zgate_ops_*)
 *
 * HEAD is answered like GET without a body. Any other path is 404, any
 * other method 405. Every answer closes the connection.
 *
 * Admin (issue 18.3), only once ops_admin_enable() gave it a token; until
 * then /admin paths are 404 like any unknown path:
 *
 *   GET    /admin/sessions           200, a JSON list of the open sessions
 *   DELETE /admin/sessions/{client}  200 and the session is closed; 404
 *                                    when that client has none. {client}
 *                                    is percent-decoded (SAN URI IDs).
 *
 * Every admin request needs "Authorization: Bearer <token>" (compared in
 * constant time): without it, or with another token, 401 with
 * WWW-Authenticate; another method is 405 (after the token check), a
 * request body (Content-Length > 0, Transfer-Encoding) 400. Each served
 * admin action is handed to the owner's audit callback with the caller's
 * address. The token comes from a file that must be a regular file, not
 * readable or writable by others, of OPS_TOKEN_MIN..OPS_TOKEN_MAX
 * printable ASCII bytes (trailing whitespace ignored).
 *
 * The endpoint must never take descriptors or CPU from the tunnels (issue
 * 16.1): at most max_connections connections at once (more are answered
 * 503 and closed at once); a connection has timeout_ms to send its whole
 * request head (at most OPS_MAX_HEADERS bytes) and again to take the
 * answer; at most OPS_ACCEPT_BATCH accepts per loop iteration; when
 * accept() fails for want of descriptors or memory, a spare descriptor is
 * released to accept-and-close one waiting connection and accepting pauses
 * (backing off from OPS_PAUSE_MIN_MS to OPS_PAUSE_MAX_MS) instead of
 * spinning on a listener that stays readable. Logged once per episode.
 */
#ifndef ZG_RELAY_OPS_H
#define ZG_RELAY_OPS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct ops;

#define OPS_MAX_HEADERS 8192
#define OPS_MAX_BODY 1024
#define OPS_MAX_CONNECTIONS 64 /* default cap; ops_set_limits() */
#define OPS_TIMEOUT_MS 5000    /* default; ops_set_limits() */
#define OPS_ACCEPT_BATCH 16
#define OPS_PAUSE_MIN_MS 100
#define OPS_PAUSE_MAX_MS 2000
/* Descriptors the endpoint may hold: connections, the listener, the spare. */
#define OPS_FDS(max_conns) ((max_conns) + 2u)

enum ops_state {
	OPS_STARTING = 0, /* /ready 503 "starting" */
	OPS_READY,        /* /ready 200 "ready" */
	OPS_DRAINING      /* /ready 503 "draining" */
};

struct ops_stats {
	unsigned conns;         /* open now */
	uint64_t accepted;      /* served (or being served) */
	uint64_t refused_busy;  /* over the cap: 503 and closed */
	uint64_t timeouts;      /* closed by the deadline */
	uint64_t accept_errors; /* accept() failed (EMFILE, ENFILE, ENOMEM...) */
	uint64_t shed;          /* closed unserved with the spare descriptor */
};

/* Appends the metrics text to out. Called on the event loop per request. */
typedef void (*ops_metrics_fn)(void *ctx, struct evbuffer *out);

#define OPS_TOKEN_MIN 32
#define OPS_TOKEN_MAX 512
#define OPS_CLIENT_MAX 64 /* a client ID in a DELETE, with its NUL */

/* One open session, as GET /admin/sessions lists it. Strings are only
 * read during the emit call; NULL or "" fields are written as null. */
struct ops_session {
	const char *client;
	const char *addr4, *addr6; /* virtual addresses */
	const char *peer;          /* "host:port" the tunnel comes from */
	int64_t since;             /* Unix time the session opened */
	uint64_t bytes_up, bytes_down;
	const char *cert_serial; /* the client certificate's serial, hex */
};

typedef void (*ops_session_emit_fn)(void *ectx, const struct ops_session *s);

/* What the admin endpoint asks of its owner (the relay's session table),
 * all called on the event loop. */
struct ops_admin_cbs {
	/* Calls emit once per open session. */
	void (*list)(void *ctx, ops_session_emit_fn emit, void *ectx);
	/* Closes client's session. Returns 0, or ZG_ERR_NOTFOUND when the
	 * client has no open session. */
	int (*kick)(void *ctx, const char *client);
	/* An admin action was served: action "list_sessions" or
	 * "close_session", client (NULL for a list), the caller's
	 * "host:port", the HTTP status answered. May be NULL. */
	void (*audit)(void *ctx, const char *action, const char *client, const char *caller,
		      int status);
};

struct ops_admin_stats {
	uint64_t ok, unauthorized, not_found, refused; /* refused: 400/405 */
	uint64_t reload_errors;
};

/* Starts listening on listen ("host:port"; an empty host or "0.0.0.0"
 * means every IPv4 address, "[::]" every IPv6 one). Returns 0 and *pops,
 * ZG_ERR_CONFIG (unparsable address), ZG_ERR_IO (bind failed: errno is
 * kept) or ZG_ERR_NOMEM. The state starts as OPS_STARTING; the limits are
 * OPS_MAX_CONNECTIONS and OPS_TIMEOUT_MS. */
int ops_new(struct event_base *base, const char *listen, ops_metrics_fn fn,
	    void *ctx, struct ops **pops);

/* Sets the cap on connections at once (0 keeps the current one) and the
 * time each may take to send its request and to take the answer (0 keeps
 * it). Connections already open keep their deadline. */
void ops_set_limits(struct ops *o, unsigned max_conns, uint32_t timeout_ms);

/* Stops listening, closes every connection and frees. NULL is ignored. */
void ops_del(struct ops *o);

/* NULL is ignored (a relay worker has no ops endpoint of its own). */
void ops_set_state(struct ops *o, enum ops_state st);

/* Writes extra lines for the /ready body into buf (NUL-terminated, at
 * most len bytes; "" for none): state that matters to an operator but
 * does not decide readiness (e.g. zgate-api unreachable, issue 20.2). */
typedef void (*ops_ready_note_fn)(void *ctx, char *buf, size_t len);

/* Sets the /ready note callback (NULL: none); it is called with the
 * metrics callback's ctx. */
void ops_set_ready_note(struct ops *o, ops_ready_note_fn fn);

/* Why a relay that has started is not ready yet (e.g. "policy: waiting
 * for the first one from zgate-api"), or NULL when nothing holds it back.
 * While it returns a reason, /ready answers 503 "waiting" and the reason
 * (the state stays OPS_READY: the relay serves; only the probe waits). */
typedef const char *(*ops_ready_gate_fn)(void *ctx);

/* Sets the gate (NULL: none); called with the metrics callback's ctx. */
void ops_set_ready_gate(struct ops *o, ops_ready_gate_fn fn);
enum ops_state ops_get_state(const struct ops *o);

void ops_get_stats(const struct ops *o, struct ops_stats *st);

/* Reads a bearer token from path into tok (tokcap bytes, NUL-terminated)
 * and *plen. Returns 0, ZG_ERR_IO (cannot open or read) or ZG_ERR_CONFIG
 * (not a regular file, readable or writable by others, shorter than
 * OPS_TOKEN_MIN or longer than OPS_TOKEN_MAX bytes, or a byte outside
 * 0x21-0x7e); err names the file and says what to do. */
int ops_token_load(const char *path, char *tok, size_t tokcap, size_t *plen, char *err,
		   size_t errlen);

/* Serves the admin paths on o with the token read from token_file (kept
 * for ops_admin_reload()). cbs is copied. Returns 0, or an
 * ops_token_load() error (admin stays off). */
int ops_admin_enable(struct ops *o, const char *token_file, const struct ops_admin_cbs *cbs,
		     void *ctx, char *err, size_t errlen);

/* Reads the token file again (SIGHUP). Returns 0, ZG_ERR_STATE (admin not
 * enabled), or an ops_token_load() error: then the token in force is kept
 * and err says why. */
int ops_admin_reload(struct ops *o, char *err, size_t errlen);

/* A listener for admin only (admin.listen): /health, /ready and /metrics
 * are 404 there. */
void ops_set_admin_only(struct ops *o, int on);

void ops_get_admin_stats(const struct ops *o, struct ops_admin_stats *st);

/* Appends o's zgate_admin_* metrics to b (its own /metrics does this
 * already; for an admin-only listener, the owner adds them to the main
 * port's). */
void ops_admin_metrics(const struct ops *o, struct evbuffer *b);

/* The port actually bound (useful with port 0 in tests). */
uint16_t ops_port(const struct ops *o); /* 0 for NULL */

#endif /* ZG_RELAY_OPS_H */
