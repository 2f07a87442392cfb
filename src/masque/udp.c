/* udp.c — see udp.h. */
#include "masque/udp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "addrkey.h"
#include "dheap.h"
#include "hostport.h"
#include "log.h"
#include "masque/steer.h"
#include "zg_err.h"

#define BATCH 32
#define SEND_BATCH 64  /* datagrams per sendmmsg(2) */
#define SEND_SLOT 1500 /* bytes per queued datagram; larger ones go alone */
#define PKT_MAX 65536  /* a UDP payload never exceeds this */
#define SOCKBUF (4 * 1024 * 1024)
/* UDP GSO: one sendmsg(2) carries up to GSO_SEGS equal datagrams and the
 * kernel walks its stack once for them (the largest cost per packet here). */
#define GSO_SEGS 64
#define GSO_BYTES 61440
/* GSO messages refused (each then sent a datagram at a time) with no
 * message of segments as large taken in between, before GSO is given up
 * for the socket: one path that cannot take it is not every path, and
 * smaller segments going through prove nothing for the larger ones. */
#define GSO_REFUSED_MAX 8
/* Initials of new connections waiting for a later round (server): */
#define ACCEPTS_PER_ROUND 8 /* default masque_config.accepts_per_round */
#define DQ_MAX 256          /* handshakes waiting */
#define DQ_PER_SOURCE 16    /* of them from one source (addrkey_of ADDRKEY_SOURCE) */
/* Datagrams of one handshake's first flight waiting: a ClientHello with
 * an X25519MLKEM768 key share takes two Initials, all with the same DCID
 * and SCID; they wait together and count as one handshake. */
#define DQ_PER_FLIGHT 4
#define DQ_BYTES (4u << 20)        /* all datagrams waiting, in bytes */
#define FLIGHT_ID_MAX (2 + 2 * 20) /* a long header's DCID and SCID, lengths first */

/* A datagram the server handed back (MASQUE_DEFERRED). */
struct deferred {
	struct deferred *next;
	struct sockaddr_storage from;
	socklen_t fromlen;
	uint8_t key[ADDRKEY_LEN]; /* addrkey_of(from, ADDRKEY_SOURCE) */
	int first;                /* the first of its flight waiting: a handshake */
	size_t fidlen;            /* flight_id(); 0: none */
	uint8_t fid[FLIGHT_ID_MAX];
	size_t len;
	uint8_t data[];
};

union cmsg_u16 {
	char buf[CMSG_SPACE(sizeof(uint16_t))];
	struct cmsghdr align;
};

union cmsg_int {
	char buf[CMSG_SPACE(sizeof(int))];
	struct cmsghdr align;
};

/* A connection's timer: a node in the loop's deadline heap (u->theap). */
struct utimer {
	struct dheap_node node; /* first: the heap hands back &node */
	struct masque_udp *u;
	struct masque_conn *c;
};

struct masque_udp {
	struct event_base *base;
	int fd;
	struct event *rd;
	struct masque_config cfg;
	struct masque_io io;
	struct masque_server *srv; /* server mode */
	struct masque_conn *conn;  /* client mode */
	struct sockaddr_storage local;
	socklen_t locallen;
	uint64_t send_errors;
	int send_failing; /* logged once per failure streak */
	uint8_t *bufs;    /* BATCH receive buffers */
	/* Datagrams written during one pass of the event loop leave together
	 * in one sendmmsg(2) when the pass ends (or when the batch is full). */
	uint8_t *sbufs; /* SEND_BATCH slots of SEND_SLOT bytes */
	struct mmsghdr smsg[SEND_BATCH];
	struct iovec siov[SEND_BATCH];
	struct sockaddr_storage sto[SEND_BATCH];
	unsigned nsend;
	/* the same datagrams grouped for GSO, one message per group */
	struct mmsghdr gmsg[SEND_BATCH];
	union cmsg_u16 gctl[SEND_BATCH];
	unsigned gfirst[SEND_BATCH]; /* first datagram of each group */
	int gso;                     /* 1 while the kernel takes UDP_SEGMENT */
	unsigned gso_refused;        /* GSO messages refused in a row */
	size_t gso_refused_seg;      /* the smallest segment size refused, 0: none */
	int gro;                     /* 1 when UDP_GRO is on */
	struct event *flush_ev;
	/* Every connection's timer lives in theap; one timerfd (tfd, read by
	 * tev) is armed at the earliest deadline, and set again only when
	 * that deadline moves earlier (tfd_at) or after it fired. libevent's
	 * own precise timer re-armed its timerfd on every loop turn: one
	 * system call per turn, 7% of the relay's samples on short
	 * connections. */
	struct dheap theap;
	size_t ntimers;
	int tfd;
	struct event *tev;
	masque_time tfd_at; /* deadline the timerfd is armed at; 0 = none */
	int firing;         /* in tev_cb: it re-arms once at the end */
	/* Bounded handshake work per loop turn (server): new connections
	 * beyond the round's share wait here, oldest first, and a zero
	 * timer gives them the next turns, after the tunnels' packets. */
	struct deferred *dq_head, *dq_tail;
	size_t dq_n;     /* handshakes waiting (their first datagrams) */
	size_t dq_bytes; /* all datagrams waiting */
	uint64_t dq_dropped;
	int dq_full_logged; /* once per streak of drops */
	struct event *dq_ev;
	/* Workers sharing the port (server; steer.h): nworkers and this
	 * worker's index from the masque_config; steering is on once
	 * masque_udp_server_set_steer() gave the channels (steer_wr != NULL). */
	unsigned worker_index, nworkers;
	int listen_fd;     /* masque_config.listen_fd */
	int *steer_wr;     /* nworkers write ends; not owned */
	struct event *hev; /* this worker's read end; not owned */
	uint8_t *hbuf;     /* STEER_MSG_MAX */
	int steer_failing; /* a drop logged; logged again when it works */
	struct masque_udp_steer_stats steer;
};

struct event_base *masque_udp_base_new(void)
{
	return event_base_new();
}

masque_time masque_udp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (masque_time)ts.tv_sec * 1000000000u + (masque_time)ts.tv_nsec;
}

static masque_time io_now(void *ioctx)
{
	(void)ioctx;
	return masque_udp_now();
}

static void send_failed(struct masque_udp *u, unsigned n)
{
	/* QUIC recovers lost packets; say so once per streak. */
	u->send_errors += n;
	if (!u->send_failing)
		log_warn("UDP send (%llu packets lost so far)", (unsigned long long)u->send_errors);
	u->send_failing = 1;
}

static void send_ok(struct masque_udp *u)
{
	if (u->send_failing) {
		log_info("UDP send works again");
		u->send_failing = 0;
	}
}

/* 1 when datagram j may follow datagram first in one GSO message: same
 * destination and the same size as the first (only the group's last may be
 * shorter, which the caller handles). */
static int same_dest(const struct masque_udp *u, unsigned first, unsigned j)
{
	const struct msghdr *a = &u->smsg[first].msg_hdr, *b = &u->smsg[j].msg_hdr;

	return a->msg_namelen == b->msg_namelen &&
	       (a->msg_namelen == 0 || memcmp(a->msg_name, b->msg_name, a->msg_namelen) == 0);
}

/* Groups the queued datagrams into GSO messages. Returns their number. */
static unsigned plan_gso(struct masque_udp *u)
{
	unsigned i = 0, ng = 0;

	while (i < u->nsend) {
		size_t seg = u->siov[i].iov_len, total = seg;
		unsigned j = i + 1;
		struct msghdr *h = &u->gmsg[ng].msg_hdr;

		while (j < u->nsend && j - i < GSO_SEGS && total + u->siov[j].iov_len <= GSO_BYTES &&
		       u->siov[j].iov_len <= seg && same_dest(u, i, j)) {
			total += u->siov[j].iov_len;
			if (u->siov[j++].iov_len < seg)
				break; /* a shorter one ends the group */
		}
		*h = u->smsg[i].msg_hdr;
		h->msg_iov = &u->siov[i];
		h->msg_iovlen = j - i;
		h->msg_control = NULL;
		h->msg_controllen = 0;
		if (j - i > 1) {
			struct cmsghdr *cm;
			uint16_t gs = (uint16_t)seg;

			h->msg_control = u->gctl[ng].buf;
			h->msg_controllen = sizeof(u->gctl[ng].buf);
			cm = CMSG_FIRSTHDR(h);
			cm->cmsg_level = IPPROTO_UDP;
			cm->cmsg_type = UDP_SEGMENT;
			cm->cmsg_len = CMSG_LEN(sizeof(gs));
			memcpy(CMSG_DATA(cm), &gs, sizeof(gs));
		}
		u->gfirst[ng++] = i;
		i = j;
	}
	return ng;
}

/* Errors after which nothing more is sent in this flush: the socket (not
 * one destination) is out of room. */
static int send_blocked(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == ENOMEM;
}

/* Sends u->smsg[first..end), a datagram per message. An error of one
 * message (its destination refused: EPERM from a firewall, no route,
 * EACCES, ECONNREFUSED on a connected socket) loses that datagram only.
 * Returns 0, or -1 when the socket is full (first..end counted lost; the
 * caller counts the rest). */
static int send_plain(struct masque_udp *u, unsigned first, unsigned end)
{
	while (first < end) {
		int n = sendmmsg(u->fd, u->smsg + first, end - first, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (send_blocked(errno)) {
				send_failed(u, end - first);
				return -1;
			}
			send_failed(u, 1);
			first++;
			continue;
		}
		first += (unsigned)n;
		send_ok(u);
	}
	return 0;
}

/* Sends the queued datagrams, grouped with GSO when the kernel takes it.
 * A full socket buffer drops the rest: waiting would only delay what QUIC
 * will retransmit anyway. A message the kernel refuses for its own sake
 * loses its datagrams only; the others still go. A GSO message refused
 * as such (EMSGSIZE or EINVAL: a segment over its route's MTU, learned
 * per destination; EIO: a device without checksum offload on its route)
 * goes a datagram at a time; after GSO_REFUSED_MAX refusals (see there),
 * or when the socket cannot do it at all, GSO is off for good. */
static void flush_sends(struct masque_udp *u)
{
	unsigned off = 0, ng;

	if (!u->gso || u->nsend < 2) {
		(void)send_plain(u, 0, u->nsend);
		u->nsend = 0;
		return;
	}
	ng = plan_gso(u);
	while (off < ng) {
		int n = sendmmsg(u->fd, u->gmsg + off, ng - off, 0), e = errno;
		unsigned first = u->gfirst[off], end = off + 1 < ng ? u->gfirst[off + 1] : u->nsend;

		if (n >= 0) {
			for (unsigned k = off; k < off + (unsigned)n; k++)
				if (u->gmsg[k].msg_hdr.msg_controllen > 0 && u->gso_refused > 0 &&
				    u->siov[u->gfirst[k]].iov_len >= u->gso_refused_seg) {
					u->gso_refused = 0;
					u->gso_refused_seg = 0;
				}
			off += (unsigned)n;
			send_ok(u);
			continue;
		}
		if (e == EINTR)
			continue;
		if (send_blocked(e)) {
			send_failed(u, u->nsend - first);
			break;
		}
		if (u->gmsg[off].msg_hdr.msg_controllen > 0 &&
		    (e == EIO || e == EINVAL || e == EMSGSIZE || e == EOPNOTSUPP || e == ENOPROTOOPT)) {
			size_t seg = u->siov[first].iov_len;

			if (u->gso_refused_seg == 0 || seg < u->gso_refused_seg)
				u->gso_refused_seg = seg;
			if (u->gso_refused == 0) /* once per streak */
				log_info("UDP GSO refused for %zu-byte segments (%s); those go one "
					 "datagram at a time",
					 seg, strerror(e));
			if (e == EOPNOTSUPP || e == ENOPROTOOPT || ++u->gso_refused >= GSO_REFUSED_MAX) {
				log_info("UDP GSO given up (%s); sending datagrams one by one",
					 strerror(e));
				u->gso = 0;
				(void)send_plain(u, first, u->nsend);
				break;
			}
			if (send_plain(u, first, end) != 0) {
				send_failed(u, u->nsend - end);
				break;
			}
			off++;
			continue;
		}
		send_failed(u, end - first); /* this message's destination refused it */
		off++;
	}
	u->nsend = 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_sends(arg);
}

static int io_send(void *ioctx, const struct sockaddr *local, socklen_t locallen,
		   const struct sockaddr *remote, socklen_t remotelen, const uint8_t *data,
		   size_t len)
{
	struct masque_udp *u = ioctx;
	struct mmsghdr *m;
	unsigned i;

	(void)local;
	(void)locallen;
	if (len > SEND_SLOT || u->sbufs == NULL || remotelen > sizeof(u->sto[0])) {
		ssize_t n;

		flush_sends(u); /* keep the order */
		do {
			n = u->srv == NULL ? send(u->fd, data, len, 0)
					   : sendto(u->fd, data, len, 0, remote, remotelen);
		} while (n < 0 && errno == EINTR);
		if (n < 0) {
			send_failed(u, 1);
			return -1;
		}
		send_ok(u);
		return 0;
	}
	i = u->nsend++;
	m = &u->smsg[i];
	memcpy(u->sbufs + (size_t)i * SEND_SLOT, data, len);
	u->siov[i].iov_base = u->sbufs + (size_t)i * SEND_SLOT;
	u->siov[i].iov_len = len;
	memset(&m->msg_hdr, 0, sizeof(m->msg_hdr));
	m->msg_hdr.msg_iov = &u->siov[i];
	m->msg_hdr.msg_iovlen = 1;
	if (u->srv != NULL) {
		/* The server's socket is unconnected; a client's is connected. */
		memcpy(&u->sto[i], remote, remotelen);
		m->msg_hdr.msg_name = &u->sto[i];
		m->msg_hdr.msg_namelen = remotelen;
	}
	if (u->nsend == SEND_BATCH)
		flush_sends(u);
	else if (u->nsend == 1)
		event_active(u->flush_ev, EV_TIMEOUT, 0);
	return 0;
}

/* Arms the timerfd at the heap's earliest deadline when that is earlier
 * than what it is armed at. A later one leaves it: firing early finds
 * nothing due and re-arms (tev_cb). */
static void tfd_update(struct masque_udp *u)
{
	struct dheap_node *top = dheap_top(&u->theap);
	struct itimerspec its;
	masque_time at;

	if (u->firing || top == NULL || (u->tfd_at != 0 && u->tfd_at <= top->at))
		return;
	at = top->at ? top->at : 1; /* 0 would disarm */
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at / 1000000000u);
	its.it_value.tv_nsec = (long)(at % 1000000000u);
	if (timerfd_settime(u->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
		log_warn("timerfd_settime");
		return;
	}
	u->tfd_at = at;
}

static void tev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct masque_udp *u = arg;
	uint64_t expirations;
	masque_time now = masque_udp_now();
	size_t budget = u->theap.n;
	struct dheap_node *x;

	(void)what;
	(void)!read(fd, &expirations, sizeof(expirations));
	u->tfd_at = 0;
	u->firing = 1;
	/* At most as many callbacks as there were timers when the timerfd
	 * fired: a timer armed again for a passed deadline may run again in
	 * this pass while that budget lasts, else on the next turn. Callbacks
	 * may free any timer; the one being run is already out of the heap. */
	while (budget-- > 0 && (x = dheap_pop_due(&u->theap, now)) != NULL) {
		struct utimer *t = (struct utimer *)x;

		(void)masque_conn_on_timer(t->c); /* t may be freed inside */
	}
	u->firing = 0;
	tfd_update(u);
}

static void *io_timer_new(void *ioctx, struct masque_conn *c)
{
	struct masque_udp *u = ioctx;
	struct utimer *t;

	/* room in the heap for every timer, so that arming cannot fail */
	if (dheap_reserve(&u->theap, u->ntimers + 1) != 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	dheap_node_init(&t->node);
	t->u = u;
	t->c = c;
	u->ntimers++;
	return t;
}

static void io_timer_arm(void *ioctx, void *timer, masque_time at)
{
	struct masque_udp *u = ioctx;
	struct utimer *t = timer;

	if (at == UINT64_MAX) {
		dheap_del(&u->theap, &t->node);
		return;
	}
	(void)dheap_set(&u->theap, &t->node, at); /* room reserved: cannot fail */
	tfd_update(u);
}

static void io_timer_free(void *ioctx, void *timer)
{
	struct masque_udp *u = ioctx;
	struct utimer *t = timer;

	if (u->conn == t->c)
		u->conn = NULL; /* the client connection is going away */
	dheap_del(&u->theap, &t->node);
	u->ntimers--;
	free(t);
}

/* The DCID and SCID of a long-header packet, their lengths first, into
 * fid: the same for every Initial of one first flight. Returns its
 * length, 0 for anything else. */
static size_t flight_id(const uint8_t *p, size_t len, uint8_t fid[FLIGHT_ID_MAX])
{
	size_t dl, sl;

	if (len < 7 || !(p[0] & 0x80) || (dl = p[5]) > 20 || len < 7 + dl ||
	    (sl = p[6 + dl]) > 20 || len < 7 + dl + sl)
		return 0;
	memcpy(fid, p + 5, 2 + dl + sl);
	return 2 + dl + sl;
}

static void dq_drop(struct masque_udp *u)
{
	u->dq_dropped++;
	if (!u->dq_full_logged)
		log_warnx("handshake burst: new connections dropped while %zu wait "
			  "(the clients retransmit)",
			  u->dq_n);
	u->dq_full_logged = 1;
}

/* Queues a datagram the server deferred, behind the rest of its flight
 * when some of it waits; full (or this source's share full): dropped,
 * the client's Initials are retransmitted, and the server drops the rest
 * of the flight too (masque_server_initial_dropped()). */
static void defer(struct masque_udp *u, const struct sockaddr_storage *from, socklen_t fromlen,
		  const uint8_t *p, size_t len)
{
	struct deferred *d, *last = NULL;
	uint8_t key[ADDRKEY_LEN], fid[FLIGHT_ID_MAX];
	size_t same = 0, nflight = 0, fidlen = flight_id(p, len, fid);

	(void)addrkey_of((const struct sockaddr *)from, ADDRKEY_SOURCE, key);
	for (d = u->dq_head; d != NULL; d = d->next) {
		same += d->first && memcmp(d->key, key, ADDRKEY_LEN) == 0;
		if (fidlen > 0 && d->fidlen == fidlen && memcmp(d->fid, fid, fidlen) == 0 &&
		    d->fromlen == fromlen && memcmp(&d->from, from, fromlen) == 0) {
			last = d;
			nflight++;
		}
	}
	if (last == NULL && (u->dq_n >= DQ_MAX || same >= DQ_PER_SOURCE)) {
		dq_drop(u);
		masque_server_initial_dropped(u->srv, (const struct sockaddr *)from, p, len);
		return;
	}
	if (nflight >= DQ_PER_FLIGHT || u->dq_bytes + len > DQ_BYTES ||
	    (d = malloc(sizeof(*d) + len)) == NULL) {
		dq_drop(u);
		if (last == NULL)
			masque_server_initial_dropped(u->srv, (const struct sockaddr *)from, p,
						      len);
		return;
	}
	memcpy(&d->from, from, sizeof(d->from));
	d->fromlen = fromlen;
	memcpy(d->key, key, ADDRKEY_LEN);
	d->first = last == NULL;
	d->fidlen = fidlen;
	memcpy(d->fid, fid, fidlen);
	d->len = len;
	memcpy(d->data, p, len);
	u->dq_bytes += len;
	if (last != NULL) {
		/* right behind its flight: fed in the same round as its start */
		d->next = last->next;
		last->next = d;
		if (u->dq_tail == last)
			u->dq_tail = d;
		return;
	}
	d->next = NULL;
	if (u->dq_tail != NULL)
		u->dq_tail->next = d;
	else
		u->dq_head = d;
	u->dq_tail = d;
	if (++u->dq_n == 1) {
		struct timeval zero = { 0, 0 };

		evtimer_add(u->dq_ev, &zero);
	}
}

/* A new round: the waiting datagrams first, in order, as far as the round
 * takes them; the rest wait for the next turn of the loop. */
static void dq_cb(evutil_socket_t fd, short what, void *arg)
{
	struct masque_udp *u = arg;
	struct deferred *d;

	(void)fd;
	(void)what;
	if (u->srv == NULL)
		return;
	masque_server_new_round(u->srv);
	while ((d = u->dq_head) != NULL) {
		if (masque_server_input(u->srv, (struct sockaddr *)&u->local, u->locallen,
					(const struct sockaddr *)&d->from, d->fromlen, d->data,
					d->len) == MASQUE_DEFERRED) {
			/* the rest of a flight whose start came to nothing
			 * (no memory) now starts a handshake of its own */
			if (!d->first) {
				d->first = 1;
				u->dq_n++;
			}
			break;
		}
		u->dq_head = d->next;
		if (u->dq_head == NULL)
			u->dq_tail = NULL;
		u->dq_n -= d->first != 0;
		u->dq_bytes -= d->len;
		free(d);
	}
	if (u->dq_head == NULL)
		u->dq_full_logged = 0;
	if (u->dq_head != NULL) {
		struct timeval zero = { 0, 0 };

		/* later ones keep their place behind these */
		masque_server_end_round(u->srv);
		evtimer_add(u->dq_ev, &zero);
	}
}

static void dq_free(struct masque_udp *u)
{
	struct deferred *d;

	while ((d = u->dq_head) != NULL) {
		u->dq_head = d->next;
		free(d);
	}
	u->dq_tail = NULL;
	u->dq_n = 0;
	u->dq_bytes = 0;
}

/* Sends a datagram of worker w's connection to w: a full channel drops it
 * (QUIC retransmits); logged once per streak of drops. */
static void hand_over(struct masque_udp *u, unsigned w, const struct sockaddr_storage *from,
		      socklen_t fromlen, const uint8_t *p, size_t len)
{
	int r = steer_handoff_send(u->steer_wr[w], (const struct sockaddr *)from, fromlen,
				   (const struct sockaddr *)&u->local, u->locallen, p, len);

	if (r == 0) {
		u->steer.handed_over++;
		if (u->steer_failing)
			log_info("worker %u: handing datagrams to other workers works again",
				 u->worker_index);
		u->steer_failing = 0;
		return;
	}
	u->steer.dropped++;
	if (!u->steer_failing)
		log_warnx("worker %u: a datagram of worker %u dropped (%s; %llu so far)",
			  u->worker_index, w,
			  r == ZG_ERR_LIMIT ? "its handoff channel is full"
			  : r == ZG_ERR_IO  ? strerror(errno)
					    : zg_strerror(r),
			  (unsigned long long)u->steer.dropped);
	u->steer_failing = 1;
}

/* Hands one received UDP payload (one QUIC datagram) to the connection or
 * server, or to the worker that owns its connection ID. */
static void deliver(struct masque_udp *u, const struct sockaddr_storage *from, socklen_t fromlen,
		    const uint8_t *p, size_t len)
{
	if (u->steer_wr != NULL) {
		unsigned w = steer_cid_worker(p, len, u->nworkers);

		if (w != u->worker_index) {
			hand_over(u, w, from, fromlen, p, len);
			return;
		}
	}
	if (u->srv != NULL) {
		if (masque_server_input(u->srv, (struct sockaddr *)&u->local, u->locallen,
					(const struct sockaddr *)from, fromlen, p,
					len) == MASQUE_DEFERRED)
			defer(u, from, fromlen, p, len);
	} else if (u->conn != NULL)
		(void)masque_conn_input(u->conn, (struct sockaddr *)&u->local, u->locallen,
					(const struct sockaddr *)from, fromlen, p, len);
}

/* The segment size of a GRO-coalesced receive, or 0. */
static size_t gro_size(struct msghdr *h)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(h); cm != NULL; cm = CMSG_NXTHDR(h, cm)) {
		if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO) {
			int gs;

			memcpy(&gs, CMSG_DATA(cm), sizeof(gs));
			return gs > 0 ? (size_t)gs : 0;
		}
	}
	return 0;
}

/* Packets of existing connections are all read now; new connections only
 * as far as this turn's round allows, after the waiting ones. */
static void begin_round(struct masque_udp *u)
{
	if (u->srv == NULL)
		return;
	if (u->dq_head == NULL)
		masque_server_new_round(u->srv);
	else
		masque_server_end_round(u->srv);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct masque_udp *u = arg;
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_storage from[BATCH];
	union cmsg_int ctl[BATCH];
	int n, i, rounds;

	(void)what;
	begin_round(u);
	/* Bounded work per wake-up so one busy socket cannot starve the
	 * loop (timers, the ops endpoint). */
	for (rounds = 0; rounds < 8; rounds++) {
		for (i = 0; i < BATCH; i++) {
			iov[i].iov_base = u->bufs + (size_t)i * PKT_MAX;
			iov[i].iov_len = PKT_MAX;
			memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = &from[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
			if (u->gro) {
				msgs[i].msg_hdr.msg_control = ctl[i].buf;
				msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
			}
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNREFUSED)
				log_warn("UDP receive");
			return;
		}
		for (i = 0; i < n; i++) {
			const uint8_t *p = iov[i].iov_base;
			size_t len = msgs[i].msg_len, seg = u->gro ? gro_size(&msgs[i].msg_hdr) : 0;
			socklen_t fl = msgs[i].msg_hdr.msg_namelen;

			if (seg == 0 || seg >= len) {
				deliver(u, &from[i], fl, p, len);
				continue;
			}
			/* GRO: equal datagrams back to back, the last maybe shorter */
			for (; len > 0 && (u->srv != NULL || u->conn != NULL);) {
				size_t l = len < seg ? len : seg;

				deliver(u, &from[i], fl, p, l);
				p += l;
				len -= l;
			}
		}
		if (n < BATCH)
			return;
	}
}

/* Datagrams other workers handed over: fed to the server as if they came
 * from this worker's socket, with their own peer and local addresses (an
 * Initial deferred to a later round is fed again with this socket's local
 * address: the group shares it). The channel is a source of its own: a
 * wake-up starts a round of accepts_per_round, as read_cb does. */
static void handoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct masque_udp *u = arg;
	struct steer_msg m;
	int i, r;

	(void)what;
	begin_round(u);
	for (i = 0; i < BATCH * 8; i++) { /* bounded like read_cb */
		r = steer_handoff_recv(fd, u->hbuf, STEER_MSG_MAX, &m);
		if (r == 0)
			return;
		if (r == ZG_ERR_MALFORMED) {
			/* a bug of a sibling, not of a peer: logged at the
			 * 1st, 2nd, 4th, 8th... */
			u->steer.bad++;
			if ((u->steer.bad & (u->steer.bad - 1)) == 0)
				log_warnx("worker %u: malformed handoff message dropped (%llu so far)",
					  u->worker_index, (unsigned long long)u->steer.bad);
			continue;
		}
		if (r < 0) {
			if (r == ZG_ERR_STATE)
				log_warnx("worker %u: every writer of the handoff channel closed",
					  u->worker_index);
			else
				log_warn("worker %u: handoff channel", u->worker_index);
			event_del(u->hev); /* level-triggered: it would spin */
			return;
		}
		u->steer.received++;
		if (u->srv != NULL &&
		    masque_server_input(u->srv, (const struct sockaddr *)&m.local, m.locallen,
					(const struct sockaddr *)&m.peer, m.peerlen, m.data,
					m.len) == MASQUE_DEFERRED)
			defer(u, &m.peer, m.peerlen, m.data, m.len);
	}
}

static int resolve(const char *hostport, int passive, struct sockaddr_storage *ss,
		   socklen_t *plen, char *err, size_t errlen)
{
	char host[256], port[8];
	uint16_t p;
	struct addrinfo hints, *res = NULL;
	int r;

	if (hostport_split(hostport, host, sizeof(host), &p) != 0) {
		(void)snprintf(err, errlen, "\"%s\": expected host:port, [v6]:port or :port",
			       hostport);
		return ZG_ERR_CONFIG;
	}
	(void)snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	if (passive && host[0] == '\0')
		hints.ai_family = AF_INET6; /* ":port": every address, v4 and v6 */
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (r != 0 || res == NULL) {
		(void)snprintf(err, errlen, "\"%s\": %s", hostport, gai_strerror(r));
		return ZG_ERR_CONFIG;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*plen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Returns 0, ZG_ERR_NOMEM, or ZG_ERR_IO when the timer descriptor cannot
 * be made (err says why: usually RLIMIT_NOFILE). */
static int udp_new(struct event_base *base, struct masque_config *cfg, struct masque_udp **pu,
		   char *err, size_t errlen)
{
	struct masque_udp *u = calloc(1, sizeof(*u));
	int tfd_errno = 0;

	if (u == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	u->bufs = malloc((size_t)BATCH * PKT_MAX);
	u->sbufs = malloc((size_t)SEND_BATCH * SEND_SLOT);
	u->flush_ev = event_new(base, -1, 0, flush_cb, u);
	u->dq_ev = evtimer_new(base, dq_cb, u);
	dheap_init(&u->theap);
	u->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (u->tfd < 0)
		tfd_errno = errno;
	u->tev = u->tfd >= 0 ? event_new(base, u->tfd, EV_READ | EV_PERSIST, tev_cb, u) : NULL;
	if (u->bufs == NULL || u->sbufs == NULL || u->flush_ev == NULL || u->dq_ev == NULL ||
	    u->tev == NULL || event_add(u->tev, NULL) != 0) {
		if (u->tev != NULL)
			event_free(u->tev);
		if (u->tfd >= 0)
			close(u->tfd);
		if (u->flush_ev != NULL)
			event_free(u->flush_ev);
		if (u->dq_ev != NULL)
			event_free(u->dq_ev);
		free(u->sbufs);
		free(u->bufs);
		free(u);
		if (tfd_errno != 0) {
			(void)snprintf(err, errlen, "timerfd_create: %s", strerror(tfd_errno));
			return ZG_ERR_IO;
		}
		(void)snprintf(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	u->base = base;
	u->fd = -1;
	u->worker_index = cfg->worker_index;
	u->nworkers = cfg->nworkers;
	u->listen_fd = cfg->listen_fd;
	u->io.send = io_send;
	u->io.now = io_now;
	u->io.timer_new = io_timer_new;
	u->io.timer_arm = io_timer_arm;
	u->io.timer_free = io_timer_free;
	cfg->io = &u->io;
	cfg->ioctx = u;
	*pu = u;
	return 0;
}

/* UDP GSO and GRO where the kernel has them, unless ZG_UDP_OFFLOAD=0 (for
 * comparisons, and for paths that mangle them). */
static void udp_offload(struct masque_udp *u)
{
	const char *e = getenv("ZG_UDP_OFFLOAD");
	int one = 1, v = 0;
	socklen_t vl = sizeof(v);

	if (e != NULL && strcmp(e, "0") == 0)
		return;
	u->gso = getsockopt(u->fd, IPPROTO_UDP, UDP_SEGMENT, &v, &vl) == 0;
	u->gro = setsockopt(u->fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}

static int open_socket(struct masque_udp *u, const struct sockaddr_storage *ss, socklen_t len,
		       int bind_it, char *err, size_t errlen, const char *what)
{
	int one = 1, zero = 0, sz = SOCKBUF;

	if (bind_it && u->listen_fd > 0) {
		/* bound already (the relay's master, in worker order) */
		u->fd = u->listen_fd;
		bind_it = 0;
		if (fcntl(u->fd, F_SETFL, fcntl(u->fd, F_GETFL) | O_NONBLOCK) != 0) {
			(void)snprintf(err, errlen, "%s: fcntl: %s", what, strerror(errno));
			return ZG_ERR_IO;
		}
		(void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		(void)setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		udp_offload(u);
		goto named;
	}
	u->fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		(void)snprintf(err, errlen, "%s: socket: %s", what, strerror(errno));
		return ZG_ERR_IO;
	}
	/* Bigger buffers absorb bursts; the kernel caps them at rmem_max
	 * without privileges, which is fine. */
	(void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	(void)setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (ss->ss_family == AF_INET6)
		(void)setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	udp_offload(u);
	if (bind_it) {
		(void)setsockopt(u->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* workers share the port (steer.h); the kernel then needs
		 * every socket of the group to ask for it, by the same user */
		if (u->nworkers > 1 &&
		    setsockopt(u->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
			(void)snprintf(err, errlen, "%s: SO_REUSEPORT: %s", what, strerror(errno));
			return ZG_ERR_IO;
		}
		if (bind(u->fd, (const struct sockaddr *)ss, len) != 0) {
			(void)snprintf(err, errlen, "%s: bind: %s", what, strerror(errno));
			return ZG_ERR_IO;
		}
	} else if (connect(u->fd, (const struct sockaddr *)ss, len) != 0) {
		(void)snprintf(err, errlen, "%s: connect: %s", what, strerror(errno));
		return ZG_ERR_IO;
	}
named:
	u->locallen = sizeof(u->local);
	if (getsockname(u->fd, (struct sockaddr *)&u->local, &u->locallen) != 0) {
		(void)snprintf(err, errlen, "%s: getsockname: %s", what, strerror(errno));
		return ZG_ERR_IO;
	}
	u->rd = event_new(u->base, u->fd, EV_READ | EV_PERSIST, read_cb, u);
	if (u->rd == NULL || event_add(u->rd, NULL) != 0) {
		(void)snprintf(err, errlen, "%s: out of memory", what);
		return ZG_ERR_NOMEM;
	}
	return 0;
}

/* Resolves hostport, makes the object and its socket (bound when passive,
 * else connected). Returns 0 with *pu and the peer/bound address in *ss. */
static int udp_setup(struct event_base *base, const char *hostport, int passive,
		     struct masque_config *cfg, struct masque_udp **pu,
		     struct sockaddr_storage *ss, socklen_t *plen, char *err, size_t errlen)
{
	struct masque_udp *u;
	int r;

	r = resolve(hostport, passive, ss, plen, err, errlen);
	if (r != 0)
		return r;
	r = udp_new(base, cfg, &u, err, errlen);
	if (r != 0)
		return r;
	r = open_socket(u, ss, *plen, passive, err, errlen, hostport);
	if (r != 0) {
		masque_udp_del(u);
		return r;
	}
	*pu = u;
	return 0;
}

int masque_udp_bind_group(const char *listen, unsigned n, int *fds, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, zero = 0, r;
	unsigned i;

	for (i = 0; i < n; i++)
		fds[i] = -1;
	if (n < 2 || n > STEER_MAX_WORKERS) {
		(void)snprintf(err, errlen, "%s: %u sockets: 2 to %u", listen, n, STEER_MAX_WORKERS);
		return ZG_ERR_INVAL;
	}
	if ((r = resolve(listen, 1, &ss, &len, err, errlen)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			(void)snprintf(err, errlen, "%s: socket: %s", listen, strerror(errno));
			break;
		}
		fds[i] = fd;
		if (ss.ss_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
			(void)snprintf(err, errlen, "%s: SO_REUSEPORT: %s", listen, strerror(errno));
			break;
		}
		if (bind(fd, (const struct sockaddr *)&ss, len) != 0) {
			(void)snprintf(err, errlen, "%s: bind: %s", listen, strerror(errno));
			break;
		}
		/* port 0: every other socket takes the port the first got */
		if (i == 0 && (ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port) == 0 &&
		    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
			(void)snprintf(err, errlen, "%s: getsockname: %s", listen, strerror(errno));
			break;
		}
	}
	if (i == n)
		return 0;
	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			(void)close(fds[i]);
		fds[i] = -1;
	}
	return ZG_ERR_IO;
}

int masque_udp_server_new(struct event_base *base, const char *listen, struct masque_config *cfg,
			  const struct masque_cbs *cbs, void *ctx, struct masque_udp **pu,
			  struct masque_server **psrv, char *err, size_t errlen)
{
	struct masque_udp *u;
	struct sockaddr_storage ss;
	socklen_t len;
	int r;

	if (cfg->accepts_per_round == 0)
		cfg->accepts_per_round = ACCEPTS_PER_ROUND; /* this loop honours it */
	r = udp_setup(base, listen, 1, cfg, &u, &ss, &len, err, errlen);
	if (r != 0)
		return r;
	r = masque_server_new(cfg, cbs, ctx, &u->srv);
	if (r != 0) {
		(void)snprintf(err, errlen, "cannot start the QUIC server: %s", zg_strerror(r));
		masque_udp_del(u);
		return r;
	}
	*pu = u;
	*psrv = u->srv;
	return 0;
}

int masque_udp_client_new(struct event_base *base, const char *relay, struct masque_config *cfg,
			  const struct masque_cbs *cbs, void *ctx, struct masque_udp **pu,
			  struct masque_conn **pc, char *err, size_t errlen)
{
	struct masque_udp *u;
	struct sockaddr_storage ss;
	socklen_t len;
	int r;

	r = udp_setup(base, relay, 0, cfg, &u, &ss, &len, err, errlen);
	if (r != 0)
		return r;
	r = masque_client_new(cfg, cbs, ctx, (struct sockaddr *)&u->local, u->locallen,
			      (struct sockaddr *)&ss, len, &u->conn);
	if (r != 0) {
		(void)snprintf(err, errlen, "cannot start the QUIC client: %s", zg_strerror(r));
		masque_udp_del(u);
		return r;
	}
	*pu = u;
	*pc = u->conn;
	return 0;
}

/* Stops steering (the descriptors are not ours). */
static void steer_free(struct masque_udp *u)
{
	if (u->hev != NULL)
		event_free(u->hev);
	u->hev = NULL;
	free(u->steer_wr);
	u->steer_wr = NULL;
	free(u->hbuf);
	u->hbuf = NULL;
}

int masque_udp_server_set_steer(struct masque_udp *u, const struct steer_group *g, char *err,
				size_t errlen)
{
	unsigned w, self = u->worker_index;

	if (u->srv == NULL || u->steer_wr != NULL) {
		(void)snprintf(err, errlen, "steering: %s",
			       u->srv == NULL ? "not a server" : "already set");
		return ZG_ERR_STATE;
	}
	if (u->nworkers < 2 || g->n != u->nworkers) {
		(void)snprintf(err, errlen,
			       "steering: %u handoff channels for a server of %u workers", g->n,
			       u->nworkers);
		return ZG_ERR_INVAL;
	}
	for (w = 0; w < g->n; w++) {
		if ((w == self && g->rd[w] < 0) || (w != self && g->wr[w] < 0)) {
			(void)snprintf(err, errlen, "steering: worker %u: the %s end of worker %u's "
						    "handoff channel is closed",
				       self,
				       w == self ? "read" : "write", w);
			return ZG_ERR_INVAL;
		}
	}
	u->hbuf = malloc(STEER_MSG_MAX);
	u->steer_wr = malloc(g->n * sizeof(*u->steer_wr));
	u->hev = event_new(u->base, g->rd[self], EV_READ | EV_PERSIST, handoff_cb, u);
	if (u->hbuf == NULL || u->steer_wr == NULL || u->hev == NULL ||
	    event_add(u->hev, NULL) != 0) {
		steer_free(u);
		(void)snprintf(err, errlen, "steering: out of memory");
		return ZG_ERR_NOMEM;
	}
	memcpy(u->steer_wr, g->wr, g->n * sizeof(*u->steer_wr));
	return 0;
}

void masque_udp_steer_stats(const struct masque_udp *u, struct masque_udp_steer_stats *st)
{
	*st = u->steer;
}

uint64_t masque_udp_initials_dropped(const struct masque_udp *u)
{
	return u->dq_dropped;
}

struct masque_conn *masque_udp_conn(const struct masque_udp *u)
{
	return u->conn;
}

int masque_udp_port(const struct masque_udp *u)
{
	if (u->local.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&u->local)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&u->local)->sin6_port);
}

void masque_udp_del(struct masque_udp *u)
{
	if (u == NULL)
		return;
	if (u->srv != NULL)
		masque_server_del(u->srv);
	u->srv = NULL;
	if (u->conn != NULL)
		masque_conn_destroy(u->conn);
	if (u->fd >= 0)
		flush_sends(u); /* the CONNECTION_CLOSE packets just written */
	event_free(u->flush_ev);
	event_free(u->dq_ev);
	event_free(u->tev);
	close(u->tfd);
	dheap_free(&u->theap);
	dq_free(u);
	steer_free(u);
	free(u->sbufs);
	if (u->rd != NULL)
		event_free(u->rd);
	if (u->fd >= 0)
		close(u->fd);
	free(u->bufs);
	free(u);
}
