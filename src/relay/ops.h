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
#define OPS_MAX_CONNECTIONS 64   /* default cap; ops_set_limits() */
#define OPS_TIMEOUT_MS 5000      /* default; ops_set_limits() */
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
	unsigned conns;           /* open now */
	uint64_t accepted;        /* served (or being served) */
	uint64_t refused_busy;    /* over the cap: 503 and closed */
	uint64_t timeouts;        /* closed by the deadline */
	uint64_t accept_errors;   /* accept() failed (EMFILE, ENFILE, ENOMEM...) */
	uint64_t shed;            /* closed unserved with the spare descriptor */
};

/* Appends the metrics text to out. Called on the event loop per request. */
typedef void (*ops_metrics_fn)(void *ctx, struct evbuffer *out);

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

void ops_set_state(struct ops *o, enum ops_state st);
enum ops_state ops_get_state(const struct ops *o);

void ops_get_stats(const struct ops *o, struct ops_stats *st);

/* The port actually bound (useful with port 0 in tests). */
uint16_t ops_port(const struct ops *o);

#endif /* ZG_RELAY_OPS_H */
