/*
 * ops.h — the relay's operations endpoint (HTTP/1.1 on libevent's evhttp):
 *
 *   GET /health   200 "ok" while the process runs
 *   GET /ready    200 "ready" once the owner says so; 503 while starting or
 *                 draining (the body names the state)
 *   GET /metrics  200, Prometheus text exposition format 0.0.4, written by
 *                 the owner's callback
 *
 * HEAD is answered like GET without a body. Any other path is 404, any
 * other method 405. Request headers and bodies are capped (OPS_MAX_HEADERS,
 * OPS_MAX_BODY) and idle connections time out, so a slow or hostile client
 * cannot hold memory.
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
#define OPS_TIMEOUT_S 10

enum ops_state {
	OPS_STARTING = 0, /* /ready 503 "starting" */
	OPS_READY,        /* /ready 200 "ready" */
	OPS_DRAINING      /* /ready 503 "draining" */
};

/* Appends the metrics text to out. Called on the event loop per request. */
typedef void (*ops_metrics_fn)(void *ctx, struct evbuffer *out);

/* Starts listening on listen ("host:port"; an empty host or "0.0.0.0"
 * means every IPv4 address, "[::]" every IPv6 one). Returns 0 and *pops,
 * ZG_ERR_CONFIG (unparsable address), ZG_ERR_IO (bind failed: errno is
 * kept) or ZG_ERR_NOMEM. The state starts as OPS_STARTING. */
int ops_new(struct event_base *base, const char *listen, ops_metrics_fn fn,
	    void *ctx, struct ops **pops);

/* Stops listening and frees. NULL is ignored. */
void ops_del(struct ops *o);

void ops_set_state(struct ops *o, enum ops_state st);
enum ops_state ops_get_state(const struct ops *o);

/* The port actually bound (useful with port 0 in tests). */
uint16_t ops_port(const struct ops *o);


#endif /* ZG_RELAY_OPS_H */
