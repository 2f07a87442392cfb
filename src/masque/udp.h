/*
 * udp.h — struct masque_io on libevent and UDP sockets: what the relay,
 * the agent and the probe use. One socket per server (many connections)
 * or per client connection; reads are batched with recvmmsg(2); the
 * clock is CLOCK_MONOTONIC; each connection gets one libevent timer.
 *
 * Objects made here must not be freed from inside a masque callback.
 */
#ifndef ZG_MASQUE_UDP_H
#define ZG_MASQUE_UDP_H

#include <stddef.h>

#include <event2/event.h>

#include "masque/masque.h"

struct masque_udp;

/* The event base these objects expect. QUIC timers need microsecond
 * precision (pacing waits are often tens of microseconds; rounded up to
 * epoll's millisecond they cost 3-4x in short connections per second), so
 * each masque_udp keeps its connections' timers in its own heap behind one
 * timerfd, re-armed only when the earliest deadline moves earlier. The
 * base itself is a plain one: libevent's precise-timer mode set its
 * timerfd again on every loop turn. Other libevent timers on this base
 * have millisecond precision. NULL when libevent cannot make one. */
struct event_base *masque_udp_base_new(void);

/* Binds UDP on listen ("host:port", "[v6]:port" or ":port" for every
 * address; port 0 picks one) and makes a server on it. cfg->io and
 * cfg->ioctx are filled in here. Returns 0 with *pu and *psrv (owned by
 * *pu), or ZG_ERR_CONFIG/ZG_ERR_IO/ZG_ERR_NOMEM with err saying why. */
int masque_udp_server_new(struct event_base *base, const char *listen, struct masque_config *cfg,
			  const struct masque_cbs *cbs, void *ctx, struct masque_udp **pu,
			  struct masque_server **psrv, char *err, size_t errlen);

/* Resolves relay ("host:port"), connects a UDP socket to it and starts a
 * client connection. Same returns; *pc is owned by *pu and freed when it
 * closes (after on_close). */
int masque_udp_client_new(struct event_base *base, const char *relay, struct masque_config *cfg,
			  const struct masque_cbs *cbs, void *ctx, struct masque_udp **pu,
			  struct masque_conn **pc, char *err, size_t errlen);

/* The client connection, NULL once it closed. */
struct masque_conn *masque_udp_conn(const struct masque_udp *u);

/* Server: Initials of new connections dropped because too many waited
 * for a turn of the loop (masque_config.accepts_per_round). */
uint64_t masque_udp_initials_dropped(const struct masque_udp *u);

/* The bound local port. */
int masque_udp_port(const struct masque_udp *u);

/* Closes everything at once: a server and each of its connections, or a
 * client connection (CONNECTION_CLOSE is sent; on_close fires from inside
 * this call), then the socket. NULL is ignored. */
void masque_udp_del(struct masque_udp *u);

/* Monotonic time in nanoseconds. */
masque_time masque_udp_now(void);

#endif /* ZG_MASQUE_UDP_H */
