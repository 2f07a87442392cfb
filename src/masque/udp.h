/*
 * udp.h — struct masque_io on libevent and UDP sockets: what the relay,
 * the agent and the probe use. One socket per server (many connections)
 * or per client connection; reads are batched with recvmmsg(2); the
 * clock is CLOCK_MONOTONIC; each connection gets one timer, kept in a
 * heap per socket behind one timerfd (see masque_udp_base_new).
 *
 * Objects made here must not be freed from inside a masque callback.
 */
#ifndef ZG_MASQUE_UDP_H
#define ZG_MASQUE_UDP_H

#include <stddef.h>

#include <event2/event.h>

#include "masque/masque.h"

struct masque_udp;
struct steer_group;

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
 * cfg->ioctx are filled in here. With cfg->nworkers > 1 the socket is
 * bound with SO_REUSEPORT, to share the port with the other workers
 * (steer.h; bind them in worker order when steer_attach_cbpf() is to be
 * attached). Returns 0 with *pu and *psrv (owned by
 * *pu), or ZG_ERR_CONFIG/ZG_ERR_IO/ZG_ERR_NOMEM with err saying why. */
int masque_udp_server_new(struct event_base *base, const char *listen, struct masque_config *cfg,
			  const struct masque_cbs *cbs, void *ctx, struct masque_udp **pu,
			  struct masque_server **psrv, char *err, size_t errlen);

/* The UDP sockets of n workers (2 .. STEER_MAX_WORKERS) on one port:
 * binds n sockets to listen with SO_REUSEPORT, in order, so that fds[i]
 * is socket i of the kernel's reuseport group (what steer_attach_cbpf()'s
 * program indexes). With port 0, the port the first socket got is used
 * for the others. Each is handed to its worker as
 * masque_config.listen_fd. Returns 0, or ZG_ERR_INVAL/ZG_ERR_CONFIG/
 * ZG_ERR_IO with err saying why (then every fds[i] is -1, none left
 * open). */
int masque_udp_bind_group(const char *listen, unsigned n, int *fds, char *err, size_t errlen);

/* Resolves relay ("host:port"), connects a UDP socket to it and starts a
 * client connection. Same returns; *pc is owned by *pu and freed when it
 * closes (after on_close). */
int masque_udp_client_new(struct event_base *base, const char *relay, struct masque_config *cfg,
			  const struct masque_cbs *cbs, void *ctx, struct masque_udp **pu,
			  struct masque_conn **pc, char *err, size_t errlen);

/* The client connection, NULL once it closed. */
struct masque_conn *masque_udp_conn(const struct masque_udp *u);

/* Server: new connections whose Initials were dropped because too many
 * waited for a turn of the loop (masque_config.accepts_per_round): one
 * per first flight, however many datagrams its ClientHello took. */
uint64_t masque_udp_initials_dropped(const struct masque_udp *u);

/* Server of worker cfg->worker_index of cfg->nworkers (at least 2):
 * from now on each datagram read from the socket whose
 * steer_cid_worker() names another worker is handed to that worker over
 * g (steer_handoff_send()), and the datagrams other workers hand over on
 * this worker's read end g->rd[worker_index] are fed to the server as if
 * this socket had read them (their own peer and local addresses; replies
 * leave from this socket). g must have g->n == nworkers, this worker's
 * read end and the other workers' write ends open; the descriptors are
 * not owned and must stay open while u lives (g itself need not). Without
 * this call a server reads nothing but its socket and steers nothing.
 * Returns 0; ZG_ERR_STATE (not a server, or already set), ZG_ERR_INVAL
 * (g does not fit), ZG_ERR_NOMEM, with err saying why. */
int masque_udp_server_set_steer(struct masque_udp *u, const struct steer_group *g, char *err,
				size_t errlen);

/* What a steering server (masque_udp_server_set_steer()) did. */
struct masque_udp_steer_stats {
	/* datagrams read from this socket and sent to the worker named by
	 * their connection ID */
	uint64_t handed_over;
	/* datagrams read from the socket for another worker and dropped:
	 * that worker's channel was full (it is behind; QUIC retransmits),
	 * the datagram too large, or the send failed */
	uint64_t dropped;
	/* datagrams other workers handed over, fed to this server */
	uint64_t received;
	/* messages read from this worker's channel and dropped as malformed
	 * (truncated, wrong version or addresses): a bug, never the peer */
	uint64_t bad;
};

/* Copies the counters into *st (all 0 when steering is off). */
void masque_udp_steer_stats(const struct masque_udp *u, struct masque_udp_steer_stats *st);

/* The bound local port. */
int masque_udp_port(const struct masque_udp *u);

/* Closes everything at once: a server and each of its connections, or a
 * client connection (CONNECTION_CLOSE is sent; on_close fires from inside
 * this call), then the socket. NULL is ignored. */
void masque_udp_del(struct masque_udp *u);

/* Monotonic time in nanoseconds. */
masque_time masque_udp_now(void);

#endif /* ZG_MASQUE_UDP_H */
