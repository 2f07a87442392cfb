/*
 * memnet.h — an in-memory network for the transport: struct masque_io
 * implemented with a packet queue, a fake clock and fake timers, so a
 * server and clients run in one thread without sockets or sleeps
 * (STYLE.md: "two endpoints joined in memory"). For tests, fuzzing and
 * benchmarks of the protocol code; never used by the binaries.
 */
#ifndef ZG_MASQUE_MEMNET_H
#define ZG_MASQUE_MEMNET_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "masque/masque.h"

#define MEMNET_QUEUE 8192
#define MEMNET_EPS 8

struct memnet_pkt {
	int to_server;
	masque_time at; /* delivery time */
	uint16_t port;  /* the client's port as the server sees it (destination or source) */
	size_t len;
	uint8_t data[1500];
};

struct memnet;

/* One end: the server or a client. Its address is the ioctx of the
 * masque_config it is used with. */
struct memnet_ep {
	struct memnet *net;
	int is_server;
	uint16_t port;
	struct sockaddr_in addr;
	/* a client's port as the server sees it when a NAT in between maps
	 * it to another (memnet_rebind); 0: addr as it is */
	uint16_t nat_port;
	struct masque_conn *conn; /* client: set by the owner, cleared in on_close */
};

struct memnet {
	masque_time now;
	masque_time delay; /* one-way, default 1 ms */
	int drop_every;    /* drop every Nth packet sent (0 = none) */
	uint64_t sent;
	size_t first_client_pkt; /* size of the first datagram a client sent */
	struct memnet_pkt *q;
	size_t qhead, qlen;
	struct memnet_timer *timers;
	struct masque_server *srv;
	struct memnet_ep server;
	struct memnet_ep *clients[MEMNET_EPS];
	size_t nclients;
};

extern const struct masque_io memnet_io;

/* Prepares n (clock at 1000 s) and its server end point; returns 0 or
 * ZG_ERR_NOMEM. Set n->srv once the server exists. */
int memnet_init(struct memnet *n);

/* Frees the queue. Returns the number of timers still allocated (each a
 * leaked connection): 0 when everything was freed. */
size_t memnet_free(struct memnet *n);

/* Registers client end point ep at index i (port 40000 + i). */
void memnet_client(struct memnet *n, size_t i, struct memnet_ep *ep);

/* A NAT between client ep and the server maps ep to port from now on
 * (the client's own address stays): the server sees its packets come
 * from there, and packets still on their way to the old port are lost. */
void memnet_rebind(struct memnet_ep *ep, uint16_t port);

/* Delivers the next packet or fires the next timer due before horizon.
 * Returns 0 when nothing was due. */
int memnet_step(struct memnet *n, masque_time horizon);

/* Steps until cond(arg) holds or nothing is due within limit ns. Returns
 * cond(arg) (1 when cond is NULL). */
int memnet_run(struct memnet *n, int (*cond)(void *), void *arg, masque_time limit);

#endif /* ZG_MASQUE_MEMNET_H */
