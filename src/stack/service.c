/*
 * service.c — in-process services on the pool's gateway addresses (the DNS
 * service): UDP datagrams handed over as they are, TCP through lwIP with
 * listeners bound to the service addresses (lwIP prefers them over the
 * per-port IP_ANY listeners flows use), messages framed by a 2-byte length.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stack_int.h"
#include "zg_err.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "lwip/ip_addr.h"
#include "lwip/tcp.h"
#include "stack_hooks.h"
#pragma GCC diagnostic pop

/* lwIP's slow timer runs every 500 ms; poll every 2 s for idleness */
#define SVC_POLL_TICKS 4

static int svc_addr(const struct stack *st, const struct stack_addr *a)
{
	for (size_t i = 0; i < st->svc.n; i++)
		if (stack_addr_eq(&st->svc.addrs[i], a))
			return 1;
	return 0;
}

/* Answer bytes lwIP holds that the client has not acknowledged. */
static int unacked(const struct tcp_pcb *pcb)
{
	return pcb->snd_buf < TCP_SND_BUF;
}

static void conn_unlink(struct svc_conn *c)
{
	struct stack *st = c->st;

	if (c->full)
		st->svc.nfull--;

	for (struct svc_conn **pp = &st->svc.conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	st->cnt.svc_tcp_conns--;
	free(c);
}

/* Detaches c from its pcb and frees it; closes (or aborts) the pcb. A pcb
 * still holding answers is aborted: closed, lwIP would keep them, outside
 * every per-client count, for as long as the client answers its window
 * probes. Returns ERR_ABRT when it aborted pcb (to return from an lwIP
 * callback). */
static err_t conn_close(struct svc_conn *c, int abort)
{
	struct tcp_pcb *pcb = c->pcb;
	err_t r = ERR_OK;

	if (pcb != NULL) {
		tcp_arg(pcb, NULL);
		tcp_recv(pcb, NULL);
		tcp_sent(pcb, NULL);
		tcp_err(pcb, NULL);
		tcp_poll(pcb, NULL, 0);
		if (abort || unacked(pcb) || tcp_close(pcb) != ERR_OK) {
			/* answers untaken, not the service going away */
			if (c->full || (!abort && unacked(pcb)))
				c->st->cnt.svc_tcp_reset++;
			tcp_abort(pcb);
			r = ERR_ABRT;
		}
	}
	conn_unlink(c);
	return r;
}

/* Resets the connections an answer did not fit (marked while lwIP was
 * delivering a packet, when they may not be freed). */
static void conn_sweep_full(struct stack *st)
{
	struct svc_conn *c, *next;

	for (c = st->svc.conns; c != NULL && st->svc.nfull > 0; c = next) {
		next = c->next;
		if (c->full)
			(void)conn_close(c, 1);
	}
}

static void svc_err_cb(void *arg, err_t err)
{
	struct svc_conn *c = arg;

	(void)err;
	if (c != NULL) {
		c->pcb = NULL; /* lwIP freed it */
		conn_unlink(c);
	}
}

static err_t svc_poll_cb(void *arg, struct tcp_pcb *pcb)
{
	struct svc_conn *c = arg;

	(void)pcb;
	if (c != NULL && stack_now(c->st) - c->last_ms >= STACK_SVC_TCP_IDLE_MS)
		return conn_close(c, 0);
	return ERR_OK;
}

/* The client took answer bytes: after its FIN, the last ones end c. */
static err_t svc_sent_cb(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct svc_conn *c = arg;

	(void)len;
	if (c == NULL)
		return ERR_OK;
	c->last_ms = stack_now(c->st);
	if (c->fin && !unacked(pcb))
		return conn_close(c, 0);
	return ERR_OK;
}

static err_t svc_recv_cb(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct svc_conn *c = arg;
	struct stack *st;

	if (c == NULL) {
		if (p != NULL)
			pbuf_free(p);
		return ERR_OK;
	}
	st = c->st;
	if (p == NULL || err != ERR_OK) { /* the client closed */
		if (p != NULL)
			pbuf_free(p);
		if (err == ERR_OK && unacked(pcb) && !c->full) {
			/* it may still read: answers first, then our FIN */
			c->fin = 1;
			return ERR_OK;
		}
		return conn_close(c, c->full);
	}
	if (c->full) {
		pbuf_free(p);
		return conn_close(c, 1);
	}
	c->last_ms = stack_now(st);
	tcp_recved(pcb, p->tot_len);
	for (struct pbuf *q = p; q != NULL; q = q->next) {
		const uint8_t *d = q->payload;
		size_t left = q->len;
		while (left > 0) {
			size_t need = c->have < 2 ? 2 - c->have
						  : 2 + (((size_t)c->buf[0] << 8) | c->buf[1]) - c->have;
			size_t take = left < need ? left : need;
			memcpy(c->buf + c->have, d, take);
			c->have += take;
			d += take;
			left -= take;
			size_t mlen = ((size_t)c->buf[0] << 8) | c->buf[1];
			if (c->have >= 2 && c->have == 2 + mlen) {
				uint64_t id = c->id;
				c->have = 0;
				if (mlen == 0)
					continue;
				st->cnt.svc_tcp_msgs++;
				st->svc.fn(st->svc.ctx, &c->fi, id, c->buf + 2, mlen);
				/* the service may not close c: it only replies */
				if (c->full) { /* an answer did not fit */
					pbuf_free(p);
					return conn_close(c, 1);
				}
			}
		}
	}
	pbuf_free(p);
	return ERR_OK;
}

static err_t svc_accept_cb(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct stack *st = arg;
	const struct stack_client *cl = st->svc.cur;
	struct svc_conn *c;
	size_t mine = 0;

	if (err != ERR_OK || pcb == NULL || cl == NULL) {
		if (pcb != NULL)
			tcp_abort(pcb);
		return ERR_ABRT;
	}
	for (c = st->svc.conns; c != NULL; c = c->next)
		mine += strcmp(c->client, cl->id) == 0;
	if (mine >= STACK_SVC_TCP_PER_CLIENT || !(c = calloc(1, sizeof(*c)))) {
		st->cnt.svc_refused++;
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	c->st = st;
	c->pcb = pcb;
	c->id = ++st->svc.next_id;
	c->session = st->svc.cur_session;
	(void)snprintf(c->client, sizeof(c->client), "%s", cl->id);
	c->fi.client_id = c->client;
	c->fi.session = c->session;
	c->fi.proto = STACK_PROTO_TCP;
	stack_addr_from_ip(&c->fi.src, &pcb->remote_ip);
	stack_addr_from_ip(&c->fi.dst, &pcb->local_ip);
	c->fi.sport = pcb->remote_port;
	c->fi.dport = pcb->local_port;
	c->last_ms = stack_now(st);
	c->next = st->svc.conns;
	st->svc.conns = c;
	st->cnt.svc_tcp_conns++;
	tcp_arg(pcb, c);
	tcp_recv(pcb, svc_recv_cb);
	tcp_sent(pcb, svc_sent_cb);
	tcp_err(pcb, svc_err_cb);
	tcp_poll(pcb, svc_poll_cb, SVC_POLL_TICKS);
	tcp_nagle_disable(pcb);
	return ERR_OK;
}

static void listeners_close(struct stack *st)
{
	for (size_t i = 0; i < STACK_SVC_MAX_ADDRS; i++) {
		if (st->svc.listen[i] != NULL) {
			tcp_close(st->svc.listen[i]);
			st->svc.listen[i] = NULL;
		}
	}
	while (st->svc.conns != NULL)
		(void)conn_close(st->svc.conns, 1);
}

int stack_service_set(struct stack *st, const struct stack_addr *addrs, size_t n,
		      uint16_t port, stack_service_fn fn, void *ctx)
{
	if (st == NULL || n > STACK_SVC_MAX_ADDRS || (n > 0 && (addrs == NULL || fn == NULL)))
		return ZG_ERR_INVAL;
	listeners_close(st);
	st->svc.n = 0;
	for (size_t i = 0; i < n; i++) {
		ip_addr_t ip;
		struct tcp_pcb *pcb, *lpcb;

		stack_lwip_ip(&ip, &addrs[i]);
		pcb = tcp_new_ip_type(addrs[i].version == 4 ? IPADDR_TYPE_V4 : IPADDR_TYPE_V6);
		if (pcb == NULL)
			goto fail;
		ip_set_option(pcb, SOF_REUSEADDR);
		if (tcp_bind(pcb, &ip, port) != ERR_OK || (lpcb = tcp_listen(pcb)) == NULL) {
			tcp_abort(pcb);
			goto fail;
		}
		tcp_arg(lpcb, st);
		tcp_accept(lpcb, svc_accept_cb);
		st->svc.listen[i] = lpcb;
		st->svc.addrs[i] = addrs[i];
	}
	st->svc.n = n;
	st->svc.port = port;
	st->svc.fn = fn;
	st->svc.ctx = ctx;
	return 0;
fail:
	listeners_close(st);
	return ZG_ERR_NOMEM;
}

int stack_service_input(struct stack *st, void *session, const struct stack_client *client,
			const uint8_t *pkt, size_t len, const struct pkt_info *pi)
{
	if (st->svc.n == 0 || (pi->proto != STACK_PROTO_UDP && pi->proto != STACK_PROTO_TCP) ||
	    pi->dport != st->svc.port || !svc_addr(st, &pi->dst))
		return 0;
	if (pi->proto == STACK_PROTO_UDP) {
		struct stack_flow_info fi;

		memset(&fi, 0, sizeof(fi));
		fi.client_id = client->id;
		fi.session = session;
		fi.src = pi->src;
		fi.dst = pi->dst;
		fi.proto = STACK_PROTO_UDP;
		fi.sport = pi->sport;
		fi.dport = pi->dport;
		st->cnt.svc_udp++;
		st->svc.in_input = 1;
		st->svc.fn(st->svc.ctx, &fi, 0, pkt + pi->payload_off, pi->payload_len);
		st->svc.in_input = 0;
		if (st->svc.nfull > 0)
			conn_sweep_full(st);
		return 1;
	}
	st->svc.cur = client;
	st->svc.cur_session = session;
	st->svc.in_input = 1;
	stack_lwip_input(st, pkt, len, pi);
	st->svc.in_input = 0;
	st->svc.cur = NULL;
	st->svc.cur_session = NULL;
	if (st->svc.nfull > 0)
		conn_sweep_full(st);
	return 1;
}

static const uint8_t *hdr_of(uint8_t hdr[2], size_t len)
{
	hdr[0] = (uint8_t)(len >> 8);
	hdr[1] = (uint8_t)len;
	return hdr;
}

int stack_service_reply(struct stack *st, const struct stack_flow_info *flow, uint64_t conn,
			const uint8_t *msg, size_t len)
{
	struct svc_conn *c;
	uint8_t hdr[2];

	if (st == NULL || flow == NULL || (msg == NULL && len > 0))
		return ZG_ERR_INVAL;
	if (conn == 0) {
		size_t n = pkt_build_udp(st->obuf, sizeof(st->obuf), &flow->dst, flow->dport,
					 &flow->src, flow->sport, msg, len);
		if (n == 0 || n > st->cfg.mtu)
			return ZG_ERR_TOO_LARGE;
		stack_emit(st, &flow->src, st->obuf, n);
		return 0;
	}
	if (len > STACK_SVC_MAX_MSG)
		return ZG_ERR_TOO_LARGE;
	for (c = st->svc.conns; c != NULL && c->id != conn; c = c->next)
		;
	if (c == NULL || c->pcb == NULL || c->full)
		return ZG_ERR_NOTFOUND;
	if (tcp_sndbuf(c->pcb) < len + 2 ||
	    tcp_write(c->pcb, hdr_of(hdr, len), 2, TCP_WRITE_FLAG_COPY | TCP_WRITE_FLAG_MORE) != ERR_OK ||
	    tcp_write(c->pcb, msg, (u16_t)len, TCP_WRITE_FLAG_COPY) != ERR_OK) {
		/* A client that does not read its answers: its connection is
		 * reset rather than this answer lost in silence (RFC 7766
		 * 6.2.4: the client then asks again what is unanswered). */
		c->full = 1;
		st->svc.nfull++;
		if (!st->svc.in_input) {
			(void)conn_close(c, 1);
			stack_rearm(st);
		}
		return ZG_ERR_LIMIT;
	}
	(void)tcp_output(c->pcb);
	c->last_ms = stack_now(st);
	if (!st->svc.in_input) /* a later answer: lwIP's retransmit timer */
		stack_rearm(st);
	return 0;
}

void stack_service_close_client(struct stack *st, const char *client_id)
{
	struct svc_conn *c, *next;

	for (c = st->svc.conns; c != NULL; c = next) {
		next = c->next;
		if (strcmp(c->client, client_id) == 0)
			(void)conn_close(c, 1);
	}
}

void stack_service_free(struct stack *st)
{
	listeners_close(st);
	st->svc.n = 0;
}
