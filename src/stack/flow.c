/*
 * flow.c — flows: a client's TCP connection, UDP 5-tuple or ICMP echo
 * identifier, terminated as a non-blocking host socket.
 *
 * TCP holds the client's SYN while the host socket connects. Only when the
 * upstream connect succeeds is the saved SYN handed to lwIP, where a
 * listener bound to ANY on that port (created on demand, SO_REUSE so it
 * coexists with accepted pcbs, closed once no held SYN needs it) accepts
 * it; the client therefore sees a SYN-ACK only for a reachable destination,
 * an RST when it refused, and ICMP unreachable when it could not be reached.
 *
 * Back-pressure: client bytes are tcp_recved() only once the host socket
 * took them (so lwIP's receive window bounds what we hold), and the host
 * socket is read only while the pcb has send buffer. Each flow's window
 * (f->wnd, budget.c) caps both: the receive window lwIP advertises and the
 * bytes queued toward the client; the sum over a client's flows stays
 * within its memory budget.
 *
 * UDP and ICMP echo never enter lwIP: their replies are built by pkt.c.
 */
#include <errno.h>
#include <poll.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "stack_int.h"
#include "zg_err.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "lwip/ip_addr.h"
#pragma GCC diagnostic pop

#define UDP_READS_PER_EVENT 64
#define WRITEV_MAX 64

static void tcp_down_pump(struct flow *f);
static err_t tcp_up_flush(struct flow *f);
static void fd_exhausted(struct stack *st, int emfile, const char *why);

/* ---------------------------------------------------------------- table */

struct flow_key {
	uint8_t proto, version;
	uint16_t sport, dport;
	uint8_t src[16], dst[16];
};

static size_t
flow_bucket(struct stack *st, uint8_t proto, const struct stack_addr *src,
	    uint16_t sport, const struct stack_addr *dst, uint16_t dport)
{
	struct flow_key k;
	size_t alen = src->version == 4 ? 4 : 16;

	memset(&k, 0, sizeof(k));
	k.proto = proto;
	k.version = src->version;
	k.sport = sport;
	k.dport = dport;
	memcpy(k.src, src->a, alen);
	memcpy(k.dst, dst->a, alen);
	return (size_t)stack_siphash(st->hash_key, &k, sizeof(k)) &
	       (STACK_FLOW_BUCKETS - 1);
}

static int
flow_is(const struct flow *f, uint8_t proto, const struct stack_addr *src, uint16_t sport,
	const struct stack_addr *dst, uint16_t dport)
{
	return f->proto == proto && f->sport == sport && f->dport == dport &&
	       stack_addr_eq(&f->src, src) && stack_addr_eq(&f->dst, dst);
}

struct flow *
flow_lookup(struct stack *st, uint8_t proto, const struct stack_addr *src,
	    uint16_t sport, const struct stack_addr *dst, uint16_t dport)
{
	struct flow *f = st->last_flow;

	if (f != NULL && flow_is(f, proto, src, sport, dst, dport))
		return f;
	for (f = st->buckets[flow_bucket(st, proto, src, sport, dst, dport)];
	     f != NULL; f = f->hnext) {
		if (flow_is(f, proto, src, sport, dst, dport)) {
			st->last_flow = f;
			return f;
		}
	}
	return NULL;
}

static struct stack_client_acct *
acct_get(struct stack *st, const char *id)
{
	char key[STACK_ID_MAX];
	struct stack_client_acct *a;
	size_t b;

	snprintf(key, sizeof(key), "%s", id); /* truncation is intended */
	b = (size_t)stack_siphash(st->hash_key, key, strlen(key)) &
	    (STACK_ACCT_BUCKETS - 1);
	for (a = st->accts[b]; a != NULL; a = a->next)
		if (strcmp(a->id, key) == 0)
			return a;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	memcpy(a->id, key, sizeof(key));
	a->next = st->accts[b];
	st->accts[b] = a;
	return a;
}

static void
acct_put(struct stack *st, struct stack_client_acct *a)
{
	struct stack_client_acct **pp;
	size_t b;

	if (a->flows > 0)
		return;
	b = (size_t)stack_siphash(st->hash_key, a->id, strlen(a->id)) &
	    (STACK_ACCT_BUCKETS - 1);
	for (pp = &st->accts[b]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			free(a);
			return;
		}
	}
}

static uint64_t *
proto_gauge(struct stack *st, uint8_t proto)
{
	if (proto == STACK_PROTO_TCP)
		return &st->cnt.flows_tcp;
	if (proto == STACK_PROTO_UDP)
		return &st->cnt.flows_udp;
	return &st->cnt.flows_icmp;
}

/* Near the global memory cap: every window shrinks to the floor. */
static int
mem_pressure(const struct stack *st)
{
	uint64_t cap = st->cfg.max_lwip_bytes;

	return cap != 0 && stack_lwip_mem_used() >= cap - cap / 4;
}

/* Sets f's window, keeping the client's and the stack's sums. */
static void
wnd_set(struct flow *f, uint32_t wnd)
{
	f->acct->wnd = f->acct->wnd - f->wnd + wnd;
	f->st->cnt.wnd_committed = f->st->cnt.wnd_committed - f->wnd + wnd;
	f->wnd = wnd;
}

static void
halfopen_done(struct flow *f)
{
	if (f->state == FLOW_TCP_CONNECTING || f->state == FLOW_TCP_INJECTED) {
		f->acct->halfopen--;
		f->st->cnt.halfopen_tcp--;
	}
}

/* When f times out in its current state if nothing happens meanwhile. */
static uint64_t
flow_deadline(const struct flow *f)
{
	const struct stack_config *cfg = &f->st->cfg;

	switch (f->state) {
	case FLOW_TCP_CONNECTING:
		return f->created_ms + cfg->connect_timeout_ms;
	case FLOW_TCP_INJECTED:
		return f->last_ms + cfg->handshake_timeout_ms;
	case FLOW_TCP_ESTABLISHED:
		if (f->progress_ms != 0)
			return f->progress_ms + cfg->tcp_close_ms;
		return f->last_ms + cfg->tcp_idle_ms;
	case FLOW_UDP:
		return f->last_ms + (f->dport == 53 ? cfg->dns_idle_ms : cfg->udp_idle_ms);
	case FLOW_ICMP:
		return f->last_ms + cfg->icmp_idle_ms;
	}
	return f->last_ms;
}

/* f entered a state: its timeout may come before the next planned scan. */
static void
flow_track(struct flow *f)
{
	uint64_t d = flow_deadline(f);

	if (d < f->st->sweep_due)
		f->st->sweep_due = d;
}

/* ---------------------------------------------------------------- listeners */

static int
listener_ref(struct stack *st, uint16_t port)
{
	struct stack_listener *l;
	struct tcp_pcb *pcb, *lpcb;

	for (l = st->listeners; l != NULL; l = l->next) {
		if (l->port == port) {
			if (l->refs++ == 0)
				st->listeners_idle--;
			return 0;
		}
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return ZG_ERR_NOMEM;
	pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
	if (pcb == NULL)
		goto fail;
	ip_set_option(pcb, SOF_REUSEADDR);
	if (tcp_bind(pcb, IP_ANY_TYPE, port) != ERR_OK) {
		tcp_abort(pcb);
		goto fail;
	}
	lpcb = tcp_listen(pcb);
	if (lpcb == NULL) {
		tcp_abort(pcb);
		goto fail;
	}
	tcp_arg(lpcb, st);
	tcp_accept(lpcb, flow_tcp_accept);
	l->pcb = lpcb;
	l->port = port;
	l->refs = 1;
	l->next = st->listeners;
	st->listeners = l;
	return 0;
fail:
	free(l);
	return ZG_ERR_NOMEM;
}

static void
listener_unref(struct stack *st, uint16_t port)
{
	struct stack_listener *l;

	for (l = st->listeners; l != NULL; l = l->next) {
		if (l->port == port && l->refs > 0) {
			if (--l->refs == 0) {
				uint64_t due;

				l->idle_ms = stack_now(st);
				due = l->idle_ms + STACK_LISTENER_LINGER_MS;
				st->listeners_idle++;
				if (due < st->listeners_due)
					st->listeners_due = due;
			}
			return;
		}
	}
}

/* Closing is deferred to here so a listener is never closed from inside
 * its own accept callback. The list is newest first: past the idle cap,
 * the idle listeners further down (made longer ago) close first. */
void flow_listeners_gc(struct stack *st)
{
	struct stack_listener **pp = &st->listeners, *l;
	uint64_t now = stack_now(st);
	size_t idle = 0;

	st->listeners_due = STACK_NEVER;
	while ((l = *pp) != NULL) {
		if (l->refs == 0 && (now - l->idle_ms >= STACK_LISTENER_LINGER_MS ||
				     idle == STACK_LISTENERS_IDLE_MAX)) {
			*pp = l->next;
			tcp_close(l->pcb);
			free(l);
			continue;
		}
		if (l->refs == 0) {
			idle++;
			if (l->idle_ms + STACK_LISTENER_LINGER_MS < st->listeners_due)
				st->listeners_due = l->idle_ms + STACK_LISTENER_LINGER_MS;
		}
		pp = &l->next;
	}
	st->listeners_idle = idle;
}

/* ---------------------------------------------------------------- life */

static int
to_sockaddr(const struct stack_addr *a, uint16_t port,
	    struct sockaddr_storage *ss, socklen_t *plen)
{
	memset(ss, 0, sizeof(*ss));
	if (a->version == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->a, 4);
		*plen = sizeof(*sin);
		return AF_INET;
	}
	{
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a->a, 16);
		*plen = sizeof(*sin6);
		return AF_INET6;
	}
}

/* Releases everything f holds, audits its close and frees it. Any pcb must
 * already be detached or gone. */
static void
flow_free(struct flow *f, const char *reason)
{
	struct stack *st = f->st;
	struct flow **pp;

	stack_audit(st, STACK_EV_CLOSE, f, reason);
	if (st->last_flow == f)
		st->last_flow = NULL;
	pp = &st->buckets[flow_bucket(st, f->proto, &f->src, f->sport, &f->dst,
				      f->dport)];
	for (; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	}
	if (f->prev)
		f->prev->next = f->next;
	else
		st->flows = f->next;
	if (f->next)
		f->next->prev = f->prev;
	st->nflows--;
	(*proto_gauge(st, f->proto))--;
	halfopen_done(f);
	if (f->state == FLOW_TCP_ESTABLISHED) {
		wnd_set(f, 0);
		f->acct->tcp_wnd_flows--;
	}
	if (f->proto == STACK_PROTO_UDP)
		f->acct->udp--;
	if (f->udpq_n > 0)
		stack_udpq_forget(st, f);
	f->acct->flows--;
	acct_put(st, f->acct);
	if (f->listener_ref)
		listener_unref(st, f->dport);
	if (f->ev_read)
		event_free(f->ev_read);
	if (f->ev_write)
		event_free(f->ev_write);
	if (f->fd >= 0)
		close(f->fd);
	if (f->pending)
		pbuf_free(f->pending);
	free(f->syn);
	free(f);
}

static void
tcp_detach(struct flow *f)
{
	if (f->pcb == NULL)
		return;
	tcp_arg(f->pcb, NULL);
	tcp_recv(f->pcb, NULL);
	tcp_sent(f->pcb, NULL);
	tcp_err(f->pcb, NULL);
}

/* Host socket close that tells the peer RST rather than FIN. */
static void
close_with_rst(struct flow *f)
{
	struct linger lg = { 1, 0 };

	if (f->fd < 0)
		return;
	if (f->proto == STACK_PROTO_TCP)
		(void)setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(f->fd);
	f->fd = -1;
}

void flow_abort(struct flow *f, const char *reason)
{
	if (f->pcb != NULL) {
		struct tcp_pcb *pcb = f->pcb;

		tcp_detach(f);
		f->pcb = NULL;
		tcp_abort(pcb); /* RST to the client */
	}
	close_with_rst(f);
	flow_free(f, reason);
}

/* Both FINs are in (lwIP queued ours at tcp_shutdown(), after the bytes it
 * still holds). f keeps the pcb, and stays charged to its client (flow
 * count, window budget, the tcp_close_ms deadline), until every byte lwIP
 * took from it was acknowledged: a client that keeps its window shut must
 * not leave lwIP holding them for it after f is gone. Only then is the pcb
 * closed and let go (f->pcb is NULL after): lwIP may free a pcb in
 * TIME_WAIT, or one in LAST_ACK once acknowledged, without a callback, and
 * neither state can be reached with data unacknowledged. Not closed
 * before: lwIP stops counting a closed pcb's incoming segments as activity
 * and would drop one in LAST_ACK after 2 MSL while its client still takes
 * bytes. f itself stays while client bytes still wait for the host socket
 * (tcp_up_flush), and is freed once they are written and the host socket
 * is shut for writing. Returns 1 if f was freed; *perr is ERR_ABRT if the
 * pcb had to be aborted instead (lwIP callbacks must then return it). */
static int
tcp_check_done(struct flow *f, err_t *perr)
{
	struct tcp_pcb *pcb = f->pcb;

	*perr = ERR_OK;
	if (!(f->client_fin && f->upstream_fin))
		return 0;
	if (f->progress_ms == 0) {
		f->progress_ms = stack_now(f->st);
		flow_track(f); /* the close deadline */
	}
	/* snd_buf counts data only (an ACK of the FIN alone adds nothing and
	 * calls no tcp_sent), so this holds from the ACK of the last byte */
	if (pcb != NULL && pcb->snd_buf >= TCP_SND_BUF) {
		tcp_detach(f);
		f->pcb = NULL;
		/* every byte lwIP took is ours to deliver; a window the
		 * budget kept small would make tcp_close() answer with RST
		 * ("data not received") */
		pcb->rcv_wnd = TCP_WND_MAX(pcb);
		if (tcp_close(pcb) != ERR_OK) {
			tcp_abort(pcb);
			*perr = ERR_ABRT;
		}
	}
	if (!f->shut_wr || f->pcb != NULL)
		return 0;
	flow_free(f, "closed");
	return 1;
}

static struct flow *
flow_alloc(struct stack *st, void *session, struct stack_client_acct *acct,
	   const struct pkt_info *pi, uint16_t sport, uint16_t dport,
	   const char *rule_id)
{
	struct flow *f;
	size_t b;

	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->st = st;
	f->session = session;
	f->scope = st->in_scope; /* a flow starts from stack_input() */
	f->acct = acct;
	f->proto = pi->proto;
	f->src = pi->src;
	f->dst = pi->dst;
	f->sport = sport;
	f->dport = dport;
	f->fd = -1;
	f->created_ms = f->last_ms = stack_now(st);
	snprintf(f->rule_id, sizeof(f->rule_id), "%s", rule_id);
	b = flow_bucket(st, f->proto, &f->src, sport, &f->dst, dport);
	f->hnext = st->buckets[b];
	st->buckets[b] = f;
	f->next = st->flows;
	if (st->flows)
		st->flows->prev = f;
	st->flows = f;
	st->nflows++;
	(*proto_gauge(st, f->proto))++;
	acct->flows++;
	return f;
}

/* ---------------------------------------------------------------- TCP */

static void
tcp_refuse_held(struct flow *f, int err)
{
	struct stack *st = f->st;
	struct pkt_info pi;

	if (f->syn == NULL || pkt_parse(f->syn, f->syn_len, 0, &pi) != 0)
		return;
	if (err == ECONNREFUSED || err == ECONNRESET) {
		st->cnt.tcp_refused++;
		stack_refuse(st, f->syn, &pi, PKT_UNREACH_PORT, 1, f->scope);
	} else {
		st->cnt.tcp_unreachable++;
		stack_refuse(st, f->syn, &pi, PKT_UNREACH_HOST, 0, f->scope);
	}
}

static void
tcp_connect_failed(struct flow *f, int err)
{
	tcp_refuse_held(f, err);
	flow_free(f, err == ECONNREFUSED || err == ECONNRESET ? "refused" : err == ETIMEDOUT ? "connect-timeout"
											     : "unreachable");
}

/* Socket callbacks are entry points: each ends with stack_rearm(), on the
 * stack saved first because the flow may be gone by then. */
static void
tcp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flow *f = arg;
	struct stack *st = f->st;

	(void)fd;
	if (what & EV_CLOSED)
		f->upstream_rdhup = 1;
	tcp_down_pump(f);
	stack_rearm(st);
}

static void
tcp_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flow *f = arg;
	struct stack *st = f->st;

	(void)fd;
	(void)what;
	f->flush_queued = 0;
	(void)tcp_up_flush(f);
	stack_rearm(st);
}

static void
tcp_connected(struct flow *f)
{
	struct stack *st = f->st;
	struct pkt_info pi;

	if (f->ev_write)
		event_free(f->ev_write);
	f->ev_write = event_new(st->base, f->fd, EV_WRITE | EV_PERSIST,
				tcp_write_cb, f);
	/* EV_CLOSED: a server that answers and closes has its FIN read in
	 * the same pass as the answer, which then leaves with it in one
	 * segment (tcp_down_pump) */
	f->ev_read = event_new(st->base, f->fd, EV_READ | EV_CLOSED | EV_PERSIST,
			       tcp_read_cb, f);
	if (f->ev_write == NULL || f->ev_read == NULL ||
	    listener_ref(st, f->dport) != 0 ||
	    pkt_parse(f->syn, f->syn_len, 0, &pi) != 0) {
		flow_abort(f, "no-memory");
		return;
	}
	f->listener_ref = 1;
	f->state = FLOW_TCP_INJECTED;
	f->last_ms = stack_now(st);
	zg_histo_observe(&st->cnt.tcp_connect,
			 f->last_ms > f->created_ms ? (f->last_ms - f->created_ms) * 1000u : 0);
	flow_track(f);
	stack_lwip_input(st, f->syn, f->syn_len, &pi);
	/* f may be gone only through lwIP callbacks, which cannot run for a
	 * pcb not yet accepted; the held SYN is no longer needed */
	free(f->syn);
	f->syn = NULL;
}

static void
tcp_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flow *f = arg;
	struct stack *st = f->st;
	int err = 0;
	socklen_t sl = sizeof(err);

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY) {
		event_add(f->ev_write, NULL); /* spurious wake-up: wait again */
		return;
	}
	if (err != 0)
		tcp_connect_failed(f, err);
	else
		tcp_connected(f);
	stack_rearm(st);
}

/* A local upstream (loopback, a veth next door) often completes or
 * refuses the handshake inside connect() itself. Returns 1 with *perr (0
 * or the connect's error) when it did, 0 when it is still in progress. */
static int
connect_settled(int fd, const struct sockaddr *sa, socklen_t sl, int *perr)
{
	/* A second connect() tells in one call (poll() and SO_ERROR took
	 * two): 0 the first time after the handshake completed (EISCONN
	 * after that), EALREADY while it is in progress, else the error
	 * that ended it (Linux's inet_stream_connect). */
	if (connect(fd, sa, sl) == 0 || errno == EISCONN) {
		*perr = 0;
		return 1;
	}
	if (errno == EALREADY || errno == EINPROGRESS || errno == EINTR)
		return 0;
	*perr = errno;
	return 1;
}

static void
tcp_start(struct flow *f, const uint8_t *pkt, const struct pkt_info *pi)
{
	struct stack *st = f->st;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fam, err;

	f->state = FLOW_TCP_CONNECTING;
	f->acct->halfopen++;
	st->cnt.halfopen_tcp++;
	st->cnt.opened_tcp++;
	flow_track(f);
	f->syn = malloc(pi->len);
	if (f->syn == NULL) {
		flow_free(f, "no-memory");
		return;
	}
	memcpy(f->syn, pkt, pi->len);
	f->syn_len = pi->len;
	fam = to_sockaddr(&f->dst, f->dport, &ss, &sl);
	f->fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			fd_exhausted(st, 1, "no descriptor left (EMFILE)");
		stack_refuse(st, pkt, pi, PKT_UNREACH_ADMIN, 1, f->scope);
		flow_free(f, "no-socket");
		return;
	}
	if (connect(f->fd, (struct sockaddr *)&ss, sl) == 0) {
		tcp_connected(f);
		return;
	}
	if (errno != EINPROGRESS) {
		tcp_connect_failed(f, errno);
		return;
	}
	/* Settled already: the SYN-ACK (or, refused, the RST) goes to the
	 * client now rather than after a loop turn through epoll. */
	if (connect_settled(f->fd, (struct sockaddr *)&ss, sl, &err)) {
		if (err != 0)
			tcp_connect_failed(f, err);
		else
			tcp_connected(f);
		return;
	}
	f->ev_write = event_new(st->base, f->fd, EV_WRITE, tcp_connect_cb, f);
	if (f->ev_write == NULL || event_add(f->ev_write, NULL) != 0) {
		flow_free(f, "no-memory");
		return;
	}
}

static err_t
tcp_recv_cb(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct flow *f = arg;

	(void)pcb;
	(void)err;
	if (f == NULL) { /* cannot happen: detached pcbs have no recv */
		if (p)
			pbuf_free(p);
		return ERR_OK;
	}
	f->last_ms = stack_now(f->st);
	if (p == NULL) {
		f->client_fin = 1;
	} else if (f->client_fin) {
		pbuf_free(p); /* data after FIN: lwIP does not do this */
		return ERR_OK;
	} else {
		struct pbuf *t = p;

		while (t->next != NULL)
			t = t->next;
		if (f->pending != NULL)
			f->pending_tail->next = p;
		else
			f->pending = p;
		f->pending_tail = t;
	}
	if (p != NULL && f->ev_write != NULL) {
		/* Segments that arrive in one pass of the event loop (a batch
		 * of QUIC datagrams) reach the host socket in one sendmsg() at
		 * the end of the pass, not one system call each. */
		if (!f->flush_queued) {
			f->flush_queued = 1;
			event_active(f->ev_write, EV_WRITE, 0);
		}
		return ERR_OK;
	}
	return tcp_up_flush(f);
}

static void
recved(struct tcp_pcb *pcb, size_t n)
{
	while (n > 0) {
		u16_t c = (u16_t)(n > 0xffff ? 0xffff : n);

		tcp_recved(pcb, c);
		n -= c;
	}
}

/* Writes pending client bytes to the host socket. Returns ERR_ABRT when
 * the flow is gone (the pcb was aborted), else ERR_OK. */
static err_t
tcp_up_flush(struct flow *f)
{
	struct stack *st = f->st;

	while (f->pending != NULL) {
		struct iovec iov[WRITEV_MAX];
		struct msghdr mh;
		struct pbuf *q;
		size_t n = 0, w;
		ssize_t r;

		for (q = f->pending; q != NULL && n < WRITEV_MAX; q = q->next) {
			if (q->len == 0)
				continue;
			iov[n].iov_base = q->payload;
			iov[n].iov_len = q->len;
			n++;
		}
		if (n == 0) {
			pbuf_free(f->pending);
			f->pending = NULL;
			break;
		}
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = n;
		r = sendmsg(f->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(f->ev_write, NULL);
				break;
			}
			flow_abort(f, "upstream-error");
			return ERR_ABRT;
		}
		w = (size_t)r;
		f->bytes_up += w;
		st->cnt.bytes_up += w;
		f->last_ms = stack_now(st);
		if (f->progress_ms != 0)
			f->progress_ms = f->last_ms;
		if (f->pcb) {
			uint32_t wnd = f->wnd;
			uint32_t c = stack_wnd_credit(st->cfg.max_client_bytes,
						      f->acct->wnd,
						      f->acct->tcp_wnd_flows, &wnd,
						      (uint32_t)w,
						      TCP_WND_MAX(f->pcb),
						      STACK_WND_MIN,
						      mem_pressure(st));

			if (wnd < f->wnd)
				st->cnt.wnd_limited++;
			wnd_set(f, wnd);
			recved(f->pcb, c);
		}
		while (w > 0 && f->pending != NULL) {
			u16_t c = (u16_t)(w > 0xffff ? 0xffff : w);

			f->pending = pbuf_free_header(f->pending, c);
			w -= c;
		}
	}
	if (f->pending == NULL) {
		event_del(f->ev_write);
		if (f->client_fin && !f->shut_wr) {
			(void)shutdown(f->fd, SHUT_WR);
			f->shut_wr = 1;
		}
	}
	{
		err_t e;

		(void)tcp_check_done(f, &e);
		return e;
	}
}

/* Bytes f may still queue toward the client: the pcb's send buffer within
 * the flow's window. */
static size_t
send_room(const struct flow *f, const struct tcp_pcb *pcb)
{
	size_t space = pcb->snd_buf;
	size_t queued = TCP_SND_BUF > space ? TCP_SND_BUF - space : 0;
	size_t cap = f->wnd > queued ? f->wnd - queued : 0;

	return cap < space ? cap : space;
}

static err_t
tcp_sent_cb(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct flow *f = arg;

	if (f == NULL)
		return ERR_OK;
	f->last_ms = stack_now(f->st);
	{
		/* the client took bytes: its window may grow back (the
		 * receive side too, which only its own traffic grows else) */
		uint32_t d = stack_wnd_grow(f->st->cfg.max_client_bytes,
					    f->acct->wnd, f->acct->tcp_wnd_flows,
					    f->wnd, len,
					    TCP_WND_MAX(pcb), STACK_WND_MIN,
					    mem_pressure(f->st));

		if (d > 0) {
			wnd_set(f, f->wnd + d);
			recved(pcb, d);
		}
	}
	if (f->read_paused && !f->upstream_fin &&
	    send_room(f, pcb) >= (f->wnd / 4 > TCP_MSS ? f->wnd / 4 : TCP_MSS)) {
		f->read_paused = 0;
		event_add(f->ev_read, NULL);
	}
	if (f->progress_ms != 0) { /* closing: maybe the last bytes */
		err_t e;

		f->progress_ms = f->last_ms;
		(void)tcp_check_done(f, &e);
		return e; /* ERR_ABRT if tcp_close() failed and it aborted */
	}
	return ERR_OK;
}

static void
tcp_err_cb(void *arg, err_t err)
{
	struct flow *f = arg;

	if (f == NULL)
		return;
	f->pcb = NULL; /* lwIP already freed it */
	if (f->client_fin && f->pending != NULL && f->fd >= 0) {
		/* after its FIN: every byte of the client's was acknowledged,
		 * so they still go upstream, then the host socket is shut and
		 * closed (tcp_up_flush); nothing more goes toward the client */
		f->upstream_fin = 1;
		if (f->ev_read != NULL)
			event_del(f->ev_read);
		(void)tcp_up_flush(f);
		return;
	}
	close_with_rst(f);
	flow_free(f, err == ERR_RST ? "client-reset" : "tcp-error");
}

/* The payload of the segments tcp_write() makes now (lwIP's mss_local). */
static size_t
seg_size(const struct tcp_pcb *pcb)
{
	size_t half = pcb->snd_wnd_max / 2;

	return half > 0 && half < pcb->mss ? half : pcb->mss;
}

/* Moves upstream bytes into the pcb while it has send buffer. */
static void
tcp_down_pump(struct flow *f)
{
	struct stack *st = f->st;
	struct tcp_pcb *pcb = f->pcb;

	if (pcb == NULL)
		return;
	for (;;) {
		size_t space = send_room(f, pcb), want, off, segs; /* not tcp_sndbuf(): it caps at 64 KiB */
		ssize_t r;

		/* no more segments than lwIP's queue takes (a client with a
		 * tiny MSS or window has tiny segments; a tcp_write() may
		 * start a segment more than its length needs) */
		segs = tcp_sndqueuelen(pcb) + 64 < TCP_SND_QUEUELEN
			       ? (size_t)(TCP_SND_QUEUELEN - 64 - tcp_sndqueuelen(pcb)) / 2
			       : 0;
		/* less than a segment of room: wait for the client's ACKs
		 * (tcp_sent) rather than queue runt segments */
		if (space < TCP_MSS || segs == 0) {
			f->read_paused = 1;
			event_del(f->ev_read);
			break;
		}
		want = space < sizeof(st->buf) ? space : sizeof(st->buf);
		if (want > segs * seg_size(pcb))
			want = segs * seg_size(pcb);
		r = recv(f->fd, st->buf, want, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			flow_abort(f, "upstream-reset");
			return;
		}
		if (r == 0) {
			f->upstream_fin = 1;
			event_del(f->ev_read);
			if (tcp_shutdown(pcb, 0, 1) != ERR_OK) {
				flow_abort(f, "no-memory");
				return;
			}
			{
				err_t e;

				if (tcp_check_done(f, &e) || f->pcb == NULL)
					return; /* closed; lwIP sends the FIN */
			}
			break;
		}
		for (off = 0; off < (size_t)r;) {
			size_t c = (size_t)r - off;
			u8_t fl = TCP_WRITE_FLAG_COPY;

			if (c > 0xffff) {
				c = 0xffff;
				fl |= TCP_WRITE_FLAG_MORE;
			}
			if (tcp_write(pcb, st->buf + off, (u16_t)c, fl) != ERR_OK) {
				flow_abort(f, "no-memory");
				return;
			}
			off += c;
		}
		f->bytes_down += (size_t)r;
		st->cnt.bytes_down += (size_t)r;
		f->last_ms = stack_now(st);
		/* the socket is drained, unless its FIN is still to read:
		 * then the next recv() returns 0 and the FIN rides on the
		 * segment just queued */
		if ((size_t)r < want && !f->upstream_rdhup)
			break;
	}
	tcp_output(pcb);
}

void stack_addr_from_ip(struct stack_addr *a, const ip_addr_t *ip)
{
	memset(a, 0, sizeof(*a));
	if (IP_IS_V6(ip)) {
		a->version = 6;
		memcpy(a->a, ip_2_ip6(ip)->addr, 16);
	} else {
		a->version = 4;
		memcpy(a->a, &ip_2_ip4(ip)->addr, 4);
	}
}

err_t flow_tcp_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct stack *st = arg;
	struct stack_addr src, dst;
	struct flow *f;

	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	stack_addr_from_ip(&src, &pcb->remote_ip);
	stack_addr_from_ip(&dst, &pcb->local_ip);
	f = flow_lookup(st, STACK_PROTO_TCP, &src, pcb->remote_port, &dst,
			pcb->local_port);
	if (f == NULL || f->state != FLOW_TCP_INJECTED) {
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	halfopen_done(f);
	f->state = FLOW_TCP_ESTABLISHED;
	if (f->listener_ref) {
		listener_unref(st, f->dport);
		f->listener_ref = 0;
	}
	f->pcb = pcb;
	f->last_ms = stack_now(st);
	flow_track(f);
	/* The flow's window, from the client's memory budget. Nothing was
	 * received yet (data after the handshake is processed after this
	 * callback); the SYN-ACK announced at most 64 KiB unscaled, and a
	 * client that uses more than a smaller window sees its excess trimmed
	 * by lwIP and sends it again. */
	{
		uint32_t full = TCP_WND_MAX(pcb);
		uint32_t w = stack_wnd_initial(st->cfg.max_client_bytes,
					       f->acct->wnd, full, STACK_WND_MIN,
					       mem_pressure(st));

		f->acct->tcp_wnd_flows++;
		wnd_set(f, w);
		if (w < full) {
			st->cnt.wnd_limited++;
			pcb->rcv_wnd = pcb->rcv_ann_wnd = (tcpwnd_size_t)w;
			pcb->rcv_ann_right_edge = pcb->rcv_nxt + w;
		}
	}
	tcp_arg(pcb, f);
	tcp_recv(pcb, tcp_recv_cb);
	tcp_sent(pcb, tcp_sent_cb);
	tcp_err(pcb, tcp_err_cb);
	tcp_nagle_disable(pcb);
	/* a client's MSS below STACK_MIN_SND_MSS is not followed (Linux's
	 * tcp_min_snd_mss): a window's worth of such segments costs more in
	 * lwIP's per-segment state than in bytes */
	if (pcb->mss < STACK_MIN_SND_MSS)
		pcb->mss = STACK_MIN_SND_MSS;
	event_add(f->ev_read, NULL);
	return ERR_OK;
}

/* ---------------------------------------------------------------- UDP */

/* The host socket reported an ICMP error (or a local routing failure) for
 * this flow: tell the client, as port or host unreachable. */
void flow_udp_unreach(struct flow *f, int err)
{
	struct stack *st = f->st;
	uint8_t orig[64];
	struct pkt_info pi;
	size_t n;

	/* quote a synthetic copy of the client's datagram header (C23: the
	 * error goes only to the tunnel that owns this flow) */
	n = pkt_build_udp(orig, sizeof(orig), &f->src, f->sport, &f->dst,
			  f->dport, NULL, 0);
	if (n == 0 || pkt_parse(orig, n, 0, &pi) != 0)
		return;
	stack_refuse(st, orig, &pi,
		     err == ECONNREFUSED ? PKT_UNREACH_PORT : PKT_UNREACH_HOST, 0,
		     f->scope);
}

static int
udp_err_is_unreach(int err)
{
	return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH;
}

static void
udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flow *f = arg;
	struct stack *st = f->st;
	size_t hl = f->src.version == 4 ? 28 : 48;
	int i;

	(void)what;
	for (i = 0; i < UDP_READS_PER_EVENT; i++) {
		ssize_t r = recv(fd, st->buf, sizeof(st->buf), MSG_DONTWAIT);
		size_t n;

		if (r < 0) {
			if (udp_err_is_unreach(errno))
				flow_udp_unreach(f, errno);
			break;
		}
		f->last_ms = stack_now(st);
		if ((size_t)r + hl > st->cfg.mtu) {
			st->cnt.drop_too_big++;
			continue;
		}
		n = pkt_build_udp(st->obuf, sizeof(st->obuf), &f->dst, f->dport,
				  &f->src, f->sport, st->buf, (size_t)r);
		if (n == 0)
			continue;
		f->bytes_down += (size_t)r;
		st->cnt.bytes_down += (size_t)r;
		stack_emit(st, &f->src, st->obuf, n);
	}
	stack_rearm(st);
}

/* ---------------------------------------------------------------- ICMP */

static void
icmp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flow *f = arg;
	struct stack *st = f->st;
	uint8_t want = f->src.version == 4 ? PKT_ICMP4_ECHO_REPLY : PKT_ICMP6_ECHO_REPLY;
	int i;

	(void)what;
	for (i = 0; i < UDP_READS_PER_EVENT; i++) {
		ssize_t r = recv(fd, st->buf, sizeof(st->buf), MSG_DONTWAIT);
		uint16_t seq;
		size_t n;

		if (r < 0)
			break;
		if (r < 8 || st->buf[0] != want)
			continue;
		seq = (uint16_t)((st->buf[6] << 8) | st->buf[7]);
		/* the kernel rewrote the identifier; the client gets its own */
		n = pkt_build_echo_reply(st->obuf, sizeof(st->obuf), &f->dst,
					 &f->src, f->sport, seq, st->buf + 8,
					 (size_t)r - 8);
		if (n == 0 || n > st->cfg.mtu) {
			st->cnt.drop_too_big++;
			continue;
		}
		f->last_ms = stack_now(st);
		f->bytes_down += (size_t)r - 8;
		st->cnt.bytes_down += (size_t)r - 8;
		stack_emit(st, &f->src, st->obuf, n);
	}
	stack_rearm(st);
}

/* Opens a connected datagram socket for f; returns 0 or -errno, and sets
 * *psocket_failed when socket() itself failed (not the connect). */
static int
dgram_open(struct flow *f, int proto, event_callback_fn cb,
	   int *psocket_failed)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fam;

	*psocket_failed = 0;
	fam = to_sockaddr(&f->dst, proto == 0 ? f->dport : 0, &ss, &sl);
	f->fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (f->fd < 0) {
		*psocket_failed = 1;
		return -errno;
	}
	if (connect(f->fd, (struct sockaddr *)&ss, sl) != 0)
		return -errno;
	f->ev_read = event_new(f->st->base, f->fd, EV_READ | EV_PERSIST, cb, f);
	if (f->ev_read == NULL || event_add(f->ev_read, NULL) != 0)
		return -ENOMEM;
	return 0;
}

/* ---------------------------------------------------------------- entry */

#define FD_LOG_MS 60000

/* A flow was refused for want of descriptors (the process's limit or the
 * budget): counted, and logged at most once a minute with the count. */
static void
fd_exhausted(struct stack *st, int emfile, const char *why)
{
	uint64_t now = stack_now(st);

	if (emfile)
		st->cnt.emfile++;
	st->fd_refused++;
	if (st->fd_logged_ms != 0 && now - st->fd_logged_ms < FD_LOG_MS)
		return;
	log_warnx("new flows refused: %s; %llu since the last report (flows "
		  "hold %zu of %u descriptors, at most %u per client)",
		  why, (unsigned long long)st->fd_refused, st->nflows,
		  st->fd_flows, st->fd_per_client);
	st->fd_refused = 0;
	st->fd_logged_ms = now ? now : 1;
}

static void
refuse_limit(struct stack *st, void *session, const char *client_id,
	     const uint8_t *pkt, const struct pkt_info *pi, const char *what)
{
	st->cnt.drop_limit++;
	stack_refuse(st, pkt, pi, PKT_UNREACH_ADMIN, pi->proto == STACK_PROTO_TCP,
		     st->in_scope);
	if (st->cb.audit && stack_limit_audit_ok(st, client_id)) {
		struct stack_event ev;
		int ports = pi->proto == STACK_PROTO_TCP ||
			    pi->proto == STACK_PROTO_UDP;

		memset(&ev, 0, sizeof(ev));
		ev.type = STACK_EV_LIMIT;
		ev.flow.client_id = client_id;
		ev.flow.session = session;
		ev.flow.src = pi->src;
		ev.flow.dst = pi->dst;
		ev.flow.proto = pi->proto;
		ev.flow.sport = ports ? pi->sport : pi->icmp_id;
		ev.flow.dport = ports ? pi->dport : 0;
		ev.rule_id = "";
		ev.reason = what;
		st->cb.audit(st->ctx, &ev);
	}
}

void flow_start(struct stack *st, void *session, const struct stack_client *client,
		const uint8_t *pkt, const struct pkt_info *pi, const char *rule_id)
{
	struct stack_client_acct *acct;
	const char *limit = NULL;
	struct flow *f;
	uint16_t sport, dport;
	int r, sockfail = 0;

	/* a SYN older than the TIME_WAIT connection on its tuple: dropped
	 * before anything is opened; the client's retry decides */
	if (pi->proto == STACK_PROTO_TCP && stack_tw_admit(st, pi) != 0)
		return;
	acct = acct_get(st, client->id);
	if (acct == NULL)
		limit = "no-memory";
	else if (st->nflows >= st->cfg.max_flows)
		limit = "limit-flows";
	else if (acct->flows >= st->cfg.max_flows_per_client)
		limit = "limit-flows-client";
	else if (st->nflows >= st->fd_flows) {
		limit = "limit-descriptors";
		st->cnt.limit_fds++;
		fd_exhausted(st, 0, "the flows' descriptor budget is spent");
	} else if (acct->flows >= st->fd_per_client) {
		limit = "limit-descriptors-client";
		st->cnt.limit_fds_client++;
		fd_exhausted(st, 0, "a client holds its share of descriptors");
	} else if (pi->proto == STACK_PROTO_TCP && st->cfg.max_lwip_bytes &&
		   stack_lwip_mem_used() >= st->cfg.max_lwip_bytes)
		limit = "limit-memory";
	else if (pi->proto == STACK_PROTO_TCP &&
		 acct->halfopen >= st->cfg.max_halfopen_per_client) {
		/* a soft limit: like a full SYN queue, the SYN is dropped
		 * without an answer and the client's retransmission gets in
		 * once a connect finished (an RST would fail it for good) */
		st->cnt.drop_halfopen++;
		acct_put(st, acct);
		return;
	} else if (pi->proto == STACK_PROTO_UDP &&
		   acct->udp >= st->cfg.max_udp_per_client)
		limit = "limit-udp-client";
	if (limit != NULL) {
		refuse_limit(st, session, client->id, pkt, pi, limit);
		if (acct)
			acct_put(st, acct);
		return;
	}
	if (pi->proto == STACK_PROTO_TCP || pi->proto == STACK_PROTO_UDP) {
		sport = pi->sport;
		dport = pi->dport;
	} else {
		sport = pi->icmp_id;
		dport = 0;
	}
	f = flow_alloc(st, session, acct, pi, sport, dport, rule_id);
	if (f == NULL) {
		refuse_limit(st, session, client->id, pkt, pi, "no-memory");
		acct_put(st, acct);
		return;
	}
	stack_audit(st, STACK_EV_ALLOW, f, "policy");

	switch (pi->proto) {
	case STACK_PROTO_TCP:
		tcp_start(f, pkt, pi);
		return;
	case STACK_PROTO_UDP:
		f->state = FLOW_UDP;
		acct->udp++;
		st->cnt.opened_udp++;
		flow_track(f);
		r = dgram_open(f, 0, udp_read_cb, &sockfail);
		break;
	default:
		f->state = FLOW_ICMP;
		st->cnt.opened_icmp++;
		flow_track(f);
		r = dgram_open(f, pi->version == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6,
			       icmp_read_cb, &sockfail);
		if (sockfail &&
		    (r == -EACCES || r == -EPERM || r == -EPROTONOSUPPORT)) {
			st->cnt.ping_unavailable++;
			if (!st->ping_warned) {
				/* once: an operator setting, not a per-packet event */
				log_warnx("ICMP echo is refused: ping sockets are "
					  "not permitted (net.ipv4.ping_group_range)");
				st->ping_warned = 1;
			}
		}
		break;
	}
	if (r != 0) {
		if (r == -EMFILE || r == -ENFILE)
			fd_exhausted(st, 1, "no descriptor left (EMFILE)");
		stack_refuse(st, pkt, pi, PKT_UNREACH_ADMIN, 0, f->scope);
		flow_free(f, "no-socket");
		return;
	}
	flow_packet(f, pkt, pi->len, pi);
}

void flow_packet(struct flow *f, const uint8_t *pkt, size_t len,
		 const struct pkt_info *pi)
{
	struct stack *st = f->st;
	ssize_t r;

	f->last_ms = stack_now(st);
	switch (f->state) {
	case FLOW_TCP_CONNECTING:
		/* the SYN is held; a RST from the client cancels the connect */
		if (pi->tcp_flags & PKT_TCP_RST)
			flow_free(f, "client-reset");
		return;
	case FLOW_TCP_INJECTED:
	case FLOW_TCP_ESTABLISHED:
		stack_lwip_input(st, pkt, len, pi);
		return;
	case FLOW_UDP:
		/* sent at the end of the loop turn with the flow's next ones */
		stack_udpq_send(f, pkt + pi->payload_off, pi->payload_len);
		return;
	case FLOW_ICMP: {
		uint8_t *m = st->buf;

		if (pi->l4_len > sizeof(st->buf))
			return;
		/* type, code, id and seq as sent; the kernel sets the
		 * identifier and checksum of ping sockets */
		memcpy(m, pkt + pi->l4_off, pi->l4_len);
		m[2] = m[3] = 0;
		r = send(f->fd, m, pi->l4_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r >= 0) {
			f->bytes_up += pi->payload_len;
			st->cnt.bytes_up += pi->payload_len;
		}
		return;
	}
	}
}

void flow_sweep(struct stack *st, uint64_t now)
{
	struct flow *f, *next;
	uint64_t next_due = STACK_NEVER;

	for (f = st->flows; f != NULL; f = next) {
		uint64_t due = flow_deadline(f);

		next = f->next;
		if (now < due) {
			if (due < next_due)
				next_due = due;
			continue;
		}
		switch (f->state) {
		case FLOW_TCP_CONNECTING:
			tcp_connect_failed(f, ETIMEDOUT);
			break;
		case FLOW_TCP_INJECTED:
			flow_abort(f, "handshake-timeout");
			break;
		case FLOW_TCP_ESTABLISHED:
			st->cnt.closed_idle++;
			flow_abort(f, f->progress_ms != 0 ? "close-timeout" : "idle");
			break;
		case FLOW_UDP:
		case FLOW_ICMP:
			st->cnt.closed_idle++;
			flow_free(f, "idle");
			break;
		}
	}
	st->sweep_due = next_due;
}
