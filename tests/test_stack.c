/*
 * Unit tests for src/stack: a fake tunnel (packets captured in memory), a
 * hand-written client TCP, real host sockets on loopback driven by the same
 * event_base, and a fake clock. Checklist ids name the tests they cover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "be.h"
#include "pkt.h"
#include "stack.h"
#include "stack_int.h"
#include "zg_err.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "lwip/memp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "stack_hooks.h"
#pragma GCC diagnostic pop

/* ---------------------------------------------------------------- fixture */

#define QCAP 8192
#define PMAX 1600

struct qpkt {
	size_t len;
	uint8_t b[PMAX];
};

struct ev_rec {
	enum stack_event_type type;
	char reason[32];
	char rule[32];
	char client[32];
	uint8_t proto;
	uint16_t dport;
	uint64_t up, down;
};

struct fx {
	struct event_base *base;
	struct stack *st;
	struct stack_config cfg;
	struct stack_client client;
	struct stack_prefix exempt[2];
	uint64_t now;
	unsigned clock_reads; /* calls of fake_clock */
	struct qpkt *q;       /* captured output */
	size_t qhead, qtail;
	uint64_t oversize;
	int deny; /* policy: deny everything */
	int policy_calls;
	struct stack_flow_info last_policy;
	struct ev_rec ev[64];
	int nev;
	int fds_before;
};

static uint64_t
fake_clock(void *ctx)
{
	((struct fx *)ctx)->clock_reads++;
	return ((struct fx *)ctx)->now;
}

static void
cap_output(void *ctx, const struct stack_addr *dst, const uint8_t *pkt,
	   size_t len)
{
	struct fx *fx = ctx;
	struct qpkt *p;

	(void)dst;
	if (len > PMAX || fx->qtail - fx->qhead >= QCAP) {
		fx->oversize++;
		return;
	}
	p = &fx->q[fx->qtail++ % QCAP];
	p->len = len;
	memcpy(p->b, pkt, len);
}

static enum stack_verdict
policy_cb(void *ctx, const struct stack_flow_info *fi, const char **prule)
{
	struct fx *fx = ctx;

	fx->policy_calls++;
	fx->last_policy = *fi;
	if (fx->deny) {
		*prule = "deny-all";
		return STACK_DENY;
	}
	*prule = "allow-test";
	return STACK_ALLOW;
}

static void
audit_cb(void *ctx, const struct stack_event *ev)
{
	struct fx *fx = ctx;
	struct ev_rec *r;

	if (fx->nev >= 64)
		return;
	r = &fx->ev[fx->nev++];
	r->type = ev->type;
	snprintf(r->reason, sizeof(r->reason), "%s", ev->reason);
	snprintf(r->rule, sizeof(r->rule), "%s", ev->rule_id);
	snprintf(r->client, sizeof(r->client), "%s", ev->flow.client_id);
	r->proto = ev->flow.proto;
	r->dport = ev->flow.dport;
	r->up = ev->bytes_up;
	r->down = ev->bytes_down;
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
addr4(struct stack_addr *a, const char *s)
{
	memset(a, 0, sizeof(*a));
	a->version = 4;
	assert_int_equal(inet_pton(AF_INET, s, a->a), 1);
}

static void
addr6(struct stack_addr *a, const char *s)
{
	memset(a, 0, sizeof(*a));
	a->version = 6;
	assert_int_equal(inet_pton(AF_INET6, s, a->a), 1);
}

/* lwIP's cyclic timers (memp SYS_TIMEOUT, heap-backed here) stay allocated
 * from the first lwip_init() on: the heap baseline is taken then. */
static long mem_base = -1;

static int
fx_start(struct fx *fx, int allow_loopback)
{
	struct stack_callbacks cb = { cap_output, policy_cb, audit_cb,
				      fake_clock };
	int r;

	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->q = calloc(QCAP, sizeof(*fx->q));
	assert_non_null(fx->q);
	fx->now = 1000000;
	if (fx->cfg.mtu == 0)
		stack_config_defaults(&fx->cfg);
	if (allow_loopback) {
		addr4(&fx->exempt[0].addr, "127.0.0.0");
		fx->exempt[0].len = 8;
		addr6(&fx->exempt[1].addr, "::1");
		fx->exempt[1].len = 128;
		fx->cfg.exempt = fx->exempt;
		fx->cfg.n_exempt = 2;
	}
	fx->client.id = "agent-1";
	addr4(&fx->client.vip4, "10.100.0.7");
	addr6(&fx->client.vip6, "fd00:100::7");
	r = stack_new(fx->base, &fx->cfg, &cb, fx, &fx->st);
	if (r == 0 && mem_base < 0)
		mem_base = (long)lwip_stats.mem.used;
	return r;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	fx->fds_before = count_fds();
	*state = fx;
	return 0;
}

static void
assert_lwip_clean(void)
{
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 0);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, 0);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_SEG]->used, 0);
	assert_int_equal(lwip_stats.memp[MEMP_PBUF]->used, 0);
	assert_int_equal(lwip_stats.mem.used, mem_base);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->st)
		stack_del(fx->st);
	if (fx->base)
		event_base_free(fx->base);
	free(fx->q);
	assert_lwip_clean();
	assert_int_equal(count_fds(), fx->fds_before);
	free(fx);
	return 0;
}

static struct qpkt *
q_pop(struct fx *fx)
{
	if (fx->qhead == fx->qtail)
		return NULL;
	return &fx->q[fx->qhead++ % QCAP];
}

/* One packet from the client, as one turn of the relay's loop: the UDP
 * datagrams it queued for the host sockets go at the turn's end (udpq.c;
 * test_udp_batched_per_turn sees them queued). */
static void
input(struct fx *fx, const uint8_t *p, size_t n)
{
	assert_int_equal(stack_input(fx->st, fx, &fx->client, p, n), 0);
	stack_udpq_flush(fx->st);
}

/* pcbhash.c indexes exactly lwIP's active pcbs, each under its tuple, and
 * its TIME-WAIT pcbs but those retired (reopened, waiting for the slow
 * timer), which no lookup finds */
static void
pcbhash_check(void)
{
	size_t n = 0;

	for (struct tcp_pcb *pcb = tcp_active_pcbs; pcb != NULL; pcb = pcb->next, n++)
		assert_ptr_equal(stack_pcb_find(&pcb->local_ip, pcb->local_port, &pcb->remote_ip,
						pcb->remote_port),
				 pcb);
	assert_int_equal(stack_pcbhash_count(), n);
	n = 0;
	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next) {
		struct tcp_pcb *f = stack_pcb_tw_find(&pcb->local_ip, pcb->local_port,
						      &pcb->remote_ip, pcb->remote_port);

		if (stack_pcb_tw_retired(pcb)) {
			assert_ptr_not_equal(f, pcb);
			continue;
		}
		assert_ptr_equal(f, pcb);
		n++;
	}
	assert_int_equal(stack_pcbhash_tw_count(), n);
}

static void
loop_once(struct fx *fx)
{
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	pcbhash_check();
}

/* Moves the fake clock and runs the stack's timers. */
static void
advance(struct fx *fx, uint64_t ms)
{
	while (ms > 0) {
		uint64_t step = ms > 250 ? 250 : ms;

		fx->now += step;
		ms -= step;
		stack_tick(fx->st);
	}
}

/* ---------------------------------------------------------------- packets */

static size_t
build_ip(uint8_t *b, const struct stack_addr *src, const struct stack_addr *dst,
	 uint8_t proto, size_t l4len)
{
	if (src->version == 4) {
		memset(b, 0, 20);
		b[0] = 0x45;
		b[2] = (uint8_t)((20 + l4len) >> 8);
		b[3] = (uint8_t)(20 + l4len);
		b[8] = 64;
		b[9] = proto;
		memcpy(b + 12, src->a, 4);
		memcpy(b + 16, dst->a, 4);
		{
			uint16_t c = cksum_fold(cksum_add(0, b, 20));

			b[10] = (uint8_t)(c >> 8);
			b[11] = (uint8_t)c;
		}
		return 20;
	}
	memset(b, 0, 40);
	b[0] = 0x60;
	b[4] = (uint8_t)(l4len >> 8);
	b[5] = (uint8_t)l4len;
	b[6] = proto;
	b[7] = 64;
	memcpy(b + 8, src->a, 16);
	memcpy(b + 24, dst->a, 16);
	return 40;
}

static void
l4_csum(uint8_t *l4, size_t len, size_t off, const struct stack_addr *src,
	const struct stack_addr *dst, uint8_t proto)
{
	uint32_t s = 0;
	uint16_t c;

	l4[off] = l4[off + 1] = 0;
	if (proto != STACK_PROTO_ICMP)
		s = pkt_csum_pseudo(src, dst, proto, len);
	c = cksum_fold(cksum_add(s, l4, len));
	l4[off] = (uint8_t)(c >> 8);
	l4[off + 1] = (uint8_t)c;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* the MSS clients announce in their SYN */
static uint16_t syn_mss = 1200;

static size_t
build_tcp(uint8_t *b, const struct stack_addr *src, const struct stack_addr *dst,
	  uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
	  uint8_t flags, uint16_t wnd, const uint8_t *data, size_t len)
{
	size_t optlen = (flags & PKT_TCP_SYN) ? 8 : 0;
	size_t hl = build_ip(b, src, dst, STACK_PROTO_TCP, 20 + optlen + len);
	uint8_t *t = b + hl;

	memset(t, 0, 20 + optlen);
	t[0] = (uint8_t)(sport >> 8);
	t[1] = (uint8_t)sport;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = (uint8_t)(((20 + optlen) / 4) << 4);
	t[13] = flags;
	t[14] = (uint8_t)(wnd >> 8);
	t[15] = (uint8_t)wnd;
	if (optlen) {
		/* MSS, NOP, window scale 7 */
		t[20] = 2;
		t[21] = 4;
		t[22] = (uint8_t)(syn_mss >> 8);
		t[23] = (uint8_t)syn_mss;
		t[24] = 1;
		t[25] = 3;
		t[26] = 3;
		t[27] = 7;
	}
	if (len)
		memcpy(t + 20 + optlen, data, len);
	l4_csum(t, 20 + optlen + len, 16, src, dst, STACK_PROTO_TCP);
	return hl + 20 + optlen + len;
}

static size_t
build_udp(uint8_t *b, const struct stack_addr *src, const struct stack_addr *dst,
	  uint16_t sport, uint16_t dport, const uint8_t *data, size_t len)
{
	size_t n = pkt_build_udp(b, PMAX, src, sport, dst, dport, data, len);

	assert_true(n > 0);
	return n;
}

/* ---------------------------------------------------------------- client TCP */

struct tc {
	struct stack_addr src, dst;
	uint16_t sport, dport;
	uint32_t snd_nxt, snd_una, rcv_nxt;
	uint64_t peer_wnd;
	uint8_t peer_ws;
	uint16_t peer_mss;
	int synack, fin, rst, fin_sent;
	int data_fin; /* segments that carried data and the FIN */
	uint8_t *rx;
	size_t rx_len, rx_cap;
	struct qpkt other[32]; /* packets for nobody else (ICMP, ...) */
	int nother;
	size_t seg;   /* payload bytes per segment the client sends */
	int zero_wnd; /* announce a zero window and take no data */
	int wnd_set;  /* announce wnd (raw, scaled by 7) instead of TC_WND */
	uint16_t wnd;
};

#define TC_WND 0xffff /* scaled by 7: 8 MiB receive window */

static void
tc_init(struct tc *c, struct fx *fx, int v6, const char *dst, uint16_t dport)
{
	memset(c, 0, sizeof(*c));
	c->src = v6 ? fx->client.vip6 : fx->client.vip4;
	if (v6)
		addr6(&c->dst, dst);
	else
		addr4(&c->dst, dst);
	c->sport = (uint16_t)(40000 + (rand() % 20000));
	c->dport = dport;
	c->snd_nxt = c->snd_una = 0x10000000u + (uint32_t)rand();
	c->rx_cap = 1 << 16;
	c->rx = malloc(c->rx_cap);
	c->seg = 1200;
}

static void
tc_free(struct tc *c)
{
	free(c->rx);
}

static void
tc_seg(struct fx *fx, struct tc *c, uint8_t flags, const uint8_t *data,
       size_t len)
{
	uint8_t b[PMAX];
	size_t n;

	n = build_tcp(b, &c->src, &c->dst, c->sport, c->dport,
		      (flags & PKT_TCP_SYN) ? c->snd_nxt - 1 : c->snd_nxt,
		      c->rcv_nxt, flags, c->zero_wnd ? 0 : c->wnd_set ? c->wnd
								      : TC_WND,
		      data, len);
	input(fx, b, n);
}

static void
tc_syn(struct fx *fx, struct tc *c)
{
	c->snd_nxt++; /* the SYN takes one sequence number */
	tc_seg(fx, c, PKT_TCP_SYN, NULL, 0);
}

static void
parse_wscale(struct tc *c, const uint8_t *t, size_t hl)
{
	size_t i = 20;

	while (i < hl) {
		if (t[i] == 0)
			break;
		if (t[i] == 1) {
			i++;
			continue;
		}
		if (i + 1 >= hl || t[i + 1] < 2)
			break;
		if (t[i] == 3 && t[i + 1] == 3)
			c->peer_ws = t[i + 2];
		if (t[i] == 2 && t[i + 1] == 4)
			c->peer_mss = (uint16_t)(t[i + 2] << 8 | t[i + 3]);
		i += t[i + 1];
	}
}

/* Processes every captured packet as client c; returns how many were TCP
 * for c. ACKs what arrived. */
static int
tc_pump(struct fx *fx, struct tc *c)
{
	struct qpkt *p;
	int n = 0, need_ack = 0;

	while ((p = q_pop(fx)) != NULL) {
		struct pkt_info pi;
		const uint8_t *t;
		size_t hl, plen;
		uint32_t seq;

		assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
		if (pi.proto != STACK_PROTO_TCP || pi.dport != c->sport ||
		    pi.sport != c->dport) {
			if (c->nother < 32)
				c->other[c->nother++] = *p;
			continue;
		}
		n++;
		t = p->b + pi.l4_off;
		hl = (size_t)(t[12] >> 4) * 4;
		seq = pi.tcp_seq;
		plen = pi.tcp_payload;
		if (pi.tcp_flags & PKT_TCP_RST) {
			c->rst = 1;
			continue;
		}
		if ((pi.tcp_flags & PKT_TCP_SYN) && (pi.tcp_flags & PKT_TCP_ACK)) {
			parse_wscale(c, t, hl);
			c->rcv_nxt = seq + 1;
			c->synack = 1;
			need_ack = 1;
			c->peer_wnd = (uint64_t)((t[14] << 8) | t[15]);
			c->snd_una = pi.tcp_ack;
			continue;
		}
		if (pi.tcp_flags & PKT_TCP_ACK) {
			if ((int32_t)(pi.tcp_ack - c->snd_una) > 0)
				c->snd_una = pi.tcp_ack;
			c->peer_wnd = (uint64_t)((t[14] << 8) | t[15]) << c->peer_ws;
		}
		if (plen > 0 || (pi.tcp_flags & PKT_TCP_FIN))
			need_ack = 1;
		/* in order, or overlapping what arrived (after a window
		 * probe's byte): the new part */
		if (plen > 0 && !c->zero_wnd && (int32_t)(c->rcv_nxt - seq) >= 0 &&
		    (int32_t)(seq + (uint32_t)plen - c->rcv_nxt) > 0) {
			size_t skip = c->rcv_nxt - seq, take = plen - skip;

			while (c->rx_len + take > c->rx_cap) {
				c->rx_cap *= 2;
				c->rx = realloc(c->rx, c->rx_cap);
			}
			memcpy(c->rx + c->rx_len, t + hl + skip, take);
			c->rx_len += take;
			c->rcv_nxt += (uint32_t)take;
		}
		if ((pi.tcp_flags & PKT_TCP_FIN) && plen > 0)
			c->data_fin++;
		if ((pi.tcp_flags & PKT_TCP_FIN) && seq + plen == c->rcv_nxt &&
		    !c->fin) {
			c->fin = 1;
			c->rcv_nxt++;
		}
	}
	if (need_ack && !c->rst)
		tc_seg(fx, c, PKT_TCP_ACK, NULL, 0);
	return n;
}

/* Runs the loop until cond(c) holds or the bound is reached. Moves the fake
 * clock when nothing happens, so lwIP's delayed ACKs and RTOs fire. */
typedef int (*cond_fn)(struct fx *, struct tc *, void *);

static int
run_until(struct fx *fx, struct tc *c, cond_fn cond, void *arg, int bound)
{
	int i, idle = 0;

	for (i = 0; i < bound; i++) {
		size_t before = fx->qtail;

		if (cond(fx, c, arg))
			return 1;
		loop_once(fx);
		if (c)
			tc_pump(fx, c);
		if (fx->qtail == before) {
			if (++idle % 50 == 0)
				advance(fx, 200);
			else
				(void)poll(NULL, 0, idle > 10 ? 1 : 0);
		} else {
			idle = 0;
		}
	}
	return cond(fx, c, arg);
}

static int
c_synack(struct fx *fx, struct tc *c, void *a)
{
	(void)fx;
	(void)a;
	return c->synack || c->rst || c->nother > 0;
}

static int
c_fin(struct fx *fx, struct tc *c, void *a)
{
	(void)fx;
	(void)a;
	return c->fin || c->rst;
}

static int
c_rst(struct fx *fx, struct tc *c, void *a)
{
	(void)fx;
	(void)a;
	return c->rst;
}

static int
c_no_flows(struct fx *fx, struct tc *c, void *a)
{
	struct stack_counters k;

	(void)c;
	(void)a;
	stack_get_counters(fx->st, &k);
	return k.flows_tcp == 0 && k.flows_udp == 0 && k.flows_icmp == 0;
}

static int
c_no_flows_but_one(struct fx *fx, struct tc *c, void *a)
{
	struct stack_counters k;

	(void)c;
	(void)a;
	stack_get_counters(fx->st, &k);
	return k.flows_tcp == 1;
}

/* Sends len bytes as the client, within the peer's window, while reading
 * what comes back; returns when everything was acknowledged and expect_rx
 * bytes arrived. */
static void
tc_transfer(struct fx *fx, struct tc *c, const uint8_t *data, size_t len,
	    size_t expect_rx, int bound)
{
	size_t sent = 0;
	uint32_t base_seq = c->snd_nxt;
	int i, idle = 0;

	for (i = 0; i < bound; i++) {
		size_t before = fx->qtail;
		int progress = 0;

		sent = c->snd_nxt - base_seq;
		while (sent < len &&
		       (uint64_t)(c->snd_nxt - c->snd_una) + c->seg <= c->peer_wnd) {
			size_t n = len - sent < c->seg ? len - sent : c->seg;

			tc_seg(fx, c, PKT_TCP_ACK | PKT_TCP_PSH, data + sent, n);
			c->snd_nxt += (uint32_t)n;
			sent += n;
			progress = 1;
		}
		if (c->snd_una == base_seq + len && c->rx_len >= expect_rx)
			return;
		if (c->rst)
			fail_msg("client got RST during transfer");
		loop_once(fx);
		tc_pump(fx, c);
		if (!progress && fx->qtail == before) {
			if (++idle % 50 == 0)
				advance(fx, 200);
			else
				(void)poll(NULL, 0, idle > 10 ? 1 : 0);
		} else {
			idle = 0;
		}
	}
	fail_msg("transfer stalled: acked %u of %zu, received %zu of %zu",
		 c->snd_una - base_seq, len, c->rx_len, expect_rx);
}

/* ---------------------------------------------------------------- servers */

enum srv_mode {
	SRV_ECHO,
	SRV_GREET_HALFCLOSE,
	SRV_SINK,
	SRV_SOURCE,
	SRV_RESET
};

struct conn {
	struct srv *srv;
	int fd;
	struct event *rev, *wev;
	uint8_t buf[65536];
	size_t off, len;
	int eof;
};

struct srv {
	int lfd;
	struct event *ev;
	struct event_base *base;
	enum srv_mode mode;
	uint16_t port;
	size_t received;
	int eof_seen, closed;
	struct conn *c;
	const uint8_t *src; /* SRV_SOURCE: bytes to send, then FIN */
	size_t src_len, src_off;
};

static void conn_close(struct conn *k);

static void
conn_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *k = arg;

	(void)what;
	while (k->off < k->len) {
		ssize_t w = send(fd, k->buf + k->off, k->len - k->off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN)
				return;
			conn_close(k);
			return;
		}
		k->off += (size_t)w;
	}
	k->off = k->len = 0;
	event_del(k->wev);
	if (k->eof) {
		shutdown(fd, SHUT_WR);
		k->srv->closed = 1;
	} else {
		event_add(k->rev, NULL);
	}
}

static void
conn_source(evutil_socket_t fd, short what, void *arg)
{
	struct conn *k = arg;
	struct srv *s = k->srv;

	(void)what;
	while (s->src_off < s->src_len) {
		ssize_t w = send(fd, s->src + s->src_off, s->src_len - s->src_off,
				 MSG_NOSIGNAL);

		if (w < 0)
			return; /* EAGAIN: wait for the next EV_WRITE */
		s->src_off += (size_t)w;
	}
	event_del(k->wev);
	shutdown(fd, SHUT_WR);
	s->closed = 1;
}

static void
conn_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *k = arg;
	ssize_t r;

	(void)what;
	r = recv(fd, k->buf, sizeof(k->buf), 0);
	if (r < 0) {
		if (errno != EAGAIN)
			conn_close(k);
		return;
	}
	if (r == 0) {
		k->srv->eof_seen = 1;
		k->eof = 1;
		event_del(k->rev);
		if (k->srv->mode == SRV_ECHO) {
			conn_write(fd, 0, k); /* shuts down after flushing */
		}
		return;
	}
	k->srv->received += (size_t)r;
	if (k->srv->mode != SRV_ECHO)
		return;
	k->off = 0;
	k->len = (size_t)r;
	event_del(k->rev);
	event_add(k->wev, NULL);
}

static void
conn_close(struct conn *k)
{
	if (k->fd < 0)
		return;
	event_free(k->rev);
	event_free(k->wev);
	close(k->fd);
	k->fd = -1;
}

static void
srv_accept(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	struct conn *k;
	int cfd;

	(void)what;
	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	if (s->c != NULL) { /* one connection per test server */
		close(cfd);
		return;
	}
	k = calloc(1, sizeof(*k));
	k->srv = s;
	k->fd = cfd;
	k->rev = event_new(s->base, cfd, EV_READ | EV_PERSIST, conn_read, k);
	k->wev = event_new(s->base, cfd, EV_WRITE | EV_PERSIST,
			   s->mode == SRV_SOURCE ? conn_source : conn_write, k);
	s->c = k;
	if (s->mode == SRV_SOURCE) {
		int sz = 65536;

		setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		event_add(k->wev, NULL);
	}
	if (s->mode == SRV_RESET) {
		struct linger lg = { 1, 0 };

		setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		conn_close(k);
		s->closed = 1;
		return;
	}
	if (s->mode == SRV_GREET_HALFCLOSE) {
		static const char hello[] = "hello from upstream\n";

		assert_int_equal(send(cfd, hello, sizeof(hello) - 1, 0),
				 (ssize_t)(sizeof(hello) - 1));
		shutdown(cfd, SHUT_WR);
	}
	event_add(k->rev, NULL);
}

static void
srv_start(struct srv *s, struct event_base *base, int v6, enum srv_mode mode)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;

	memset(s, 0, sizeof(*s));
	memset(&ss, 0, sizeof(ss));
	s->base = base;
	s->mode = mode;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	}
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&ss, &sl), 0);
	s->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	s->ev = event_new(base, s->lfd, EV_READ | EV_PERSIST, srv_accept, s);
	event_add(s->ev, NULL);
}

static void
srv_stop(struct srv *s)
{
	if (s->c) {
		conn_close(s->c);
		free(s->c);
	}
	event_free(s->ev);
	close(s->lfd);
}

/* A port on loopback where nothing listens. */
static uint16_t
closed_port(int v6)
{
	struct sockaddr_storage ss;
	socklen_t sl = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = v6 ? AF_INET6 : AF_INET;
	if (v6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	return port;
}

static void
fill_pattern(uint8_t *b, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 7u + seed + (i >> 11)) % 251u);
}

/* Everything after the flows closed: TIME_WAIT ends, no pcb or memory left
 * in lwIP while the stack still runs. */
static void
wait_lwip_idle(struct fx *fx)
{
	advance(fx, 25000);
	pcbhash_check();
	assert_int_equal(stack_pcbhash_count(), 0);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 0);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_SEG]->used, 0);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, 0);
	assert_int_equal(lwip_stats.mem.used, mem_base);
}

/* ---------------------------------------------------------------- TCP tests */

static void
tcp_echo(struct fx *fx, int v6, size_t total, size_t seg)
{
	struct srv s;
	struct tc c;
	uint8_t *data = malloc(total);
	struct stack_counters k;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, v6, SRV_ECHO);
	tc_init(&c, fx, v6, v6 ? "::1" : "127.0.0.1", s.port);
	c.seg = seg;
	fill_pattern(data, total, 3);

	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	assert_true(c.synack);
	assert_false(c.rst);
	assert_int_equal(c.peer_ws, 4);
	/* MSS from the tunnel MTU (1280), not lwIP's TCP_MSS */
	assert_int_equal(c.peer_mss, v6 ? 1280 - 60 : 1280 - 40);
	tc_pump(fx, &c); /* sends the ACK */

	tc_transfer(fx, &c, data, total, total, 2000000);
	assert_int_equal(c.rx_len, total);
	assert_memory_equal(c.rx, data, total);

	/* client closes; the echo server closes after flushing */
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	assert_true(run_until(fx, &c, c_fin, NULL, 20000));
	assert_true(c.fin);
	assert_false(c.rst);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));

	stack_get_counters(fx->st, &k);
	assert_int_equal(k.bytes_up, total);
	assert_int_equal(k.bytes_down, total);
	assert_int_equal(k.halfopen_tcp, 0);
	assert_int_equal(k.opened_tcp, 1);
	/* issue 17.5: the flow's setup time (SYN to connected) is observed */
	assert_int_equal(k.tcp_connect.count, 1);
	assert_int_equal(k.tcp_connect.sum_us % 1000u, 0); /* the stack's clock is in ms */
	assert_int_equal(fx->ev[0].type, STACK_EV_ALLOW);
	assert_string_equal(fx->ev[0].rule, "allow-test");
	assert_int_equal(fx->ev[fx->nev - 1].type, STACK_EV_CLOSE);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "closed");
	assert_int_equal(fx->ev[fx->nev - 1].up, total);
	assert_int_equal(fx->ev[fx->nev - 1].down, total);
	tc_pump(fx, &c);
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
	free(data);
}

static void
test_tcp_echo_100k_v4(void **state)
{
	tcp_echo(*state, 0, 100 * 1000, 1200);
}

/* 3-byte segments: long pbuf chains toward the host socket */
static void
test_tcp_echo_small_segments(void **state)
{
	tcp_echo(*state, 0, 30 * 1000, 3);
}

static void
test_tcp_echo_10m_v4(void **state)
{
	tcp_echo(*state, 0, 10 * 1000 * 1000, 1200);
}

static void
test_tcp_echo_100k_v6(void **state)
{
	tcp_echo(*state, 1, 100 * 1000, 1200);
}

/* Sends the n 1200-byte segments of an echo connection's data in the
 * order given (indexes into the data), all before the loop runs, then
 * checks that the echo brings every byte back in order. */
static void
echo_segments_in_order(struct fx *fx, const int *order, int n, unsigned seed)
{
	uint8_t data[8 * 1200];
	struct srv s;
	struct tc c;
	uint32_t base;
	size_t want = (size_t)n * 1200;
	int i;

	assert_true(n <= 8);
	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	fill_pattern(data, want, seed);
	base = c.snd_nxt;
	for (i = 0; i < n; i++) {
		c.snd_nxt = base + (uint32_t)order[i] * 1200;
		tc_seg(fx, &c, PKT_TCP_ACK, data + (size_t)order[i] * 1200, 1200);
	}
	c.snd_nxt = base + (uint32_t)want;
	for (i = 0; i < 5000 && (c.rx_len < want || c.snd_una != c.snd_nxt); i++) {
		loop_once(fx);
		tc_pump(fx, &c);
		if (i % 100 == 99)
			advance(fx, 200);
	}
	assert_int_equal(c.rx_len, want);
	assert_memory_equal(c.rx, data, want);
	tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 5000));
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* The client's second segment arrives before its first: lwIP queues it
 * (bounded out-of-order queue) and the upstream gets the bytes in order. */
static void
test_tcp_out_of_order_client_segments(void **state)
{
	static const int order[] = { 1, 0 };

	echo_segments_in_order(*state, order, 2, 11);
}

/* Within one loop turn (the host socket is written at its end), lwIP
 * hands over a packet of several pbufs (out-of-order segments 1 and 2
 * joined to 0, which filled the gap) and then segment 3: the relay queues
 * both behind one another and the upstream gets every byte in order. */
static void
test_tcp_queued_chain_then_segment(void **state)
{
	static const int order[] = { 1, 2, 0, 3 };

	echo_segments_in_order(*state, order, 4, 13);
}

/* stack_input() reads the clock once for everything a packet sets off
 * (the flow, lwIP's callbacks, the timer's re-arm): a data segment read it
 * five times. */
static void
test_clock_read_once_per_packet(void **state)
{
	struct fx *fx = *state;
	uint8_t data[1200];
	struct srv s;
	struct tc c;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	fx->clock_reads = 0;
	tc_syn(fx, &c);
	assert_int_equal(fx->clock_reads, 1);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	fill_pattern(data, sizeof(data), 7);
	fx->clock_reads = 0;
	tc_seg(fx, &c, PKT_TCP_ACK | PKT_TCP_PSH, data, sizeof(data));
	assert_int_equal(fx->clock_reads, 1);
	c.snd_nxt += sizeof(data);
	/* outside stack_input() the clock is read again: a later packet
	 * sees the time move */
	fx->now += 1000;
	assert_int_equal(stack_now(fx->st), fx->now);
	for (int i = 0; i < 5000 && c.rx_len < sizeof(data); i++) {
		loop_once(fx);
		tc_pump(fx, &c);
	}
	assert_memory_equal(c.rx, data, sizeof(data));
	tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 5000));
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* Pure ACKs toward c waiting in the capture (not taken out); *plast is
 * the acknowledgement number of the last. */
static int
count_pure_acks(struct fx *fx, const struct tc *c, uint32_t *plast)
{
	int n = 0;

	for (size_t i = fx->qhead; i != fx->qtail; i++) {
		const struct qpkt *p = &fx->q[i % QCAP];
		struct pkt_info pi;

		if (pkt_parse(p->b, p->len, 1, &pi) != 0 || pi.proto != STACK_PROTO_TCP ||
		    pi.dport != c->sport || pi.tcp_flags != PKT_TCP_ACK || pi.tcp_payload != 0)
			continue;
		n++;
		*plast = pi.tcp_ack;
	}
	return n;
}

/* ackq.c: a burst of segments taken in within one loop turn is
 * acknowledged once, at the end of the turn, by the newest ACK; duplicate
 * ACKs (out-of-order segments) are all sent, in order. */
static void
test_tcp_acks_merged_within_a_turn(void **state)
{
	struct fx *fx = *state;
	uint8_t data[12 * 1200];
	struct stack_counters k;
	struct srv s;
	struct tc c;
	uint32_t base, last = 0;
	uint64_t merged;
	int i;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_SINK);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	loop_once(fx);
	tc_pump(fx, &c);
	fill_pattern(data, sizeof(data), 5);

	/* eight segments in order, as one batch of datagrams: lwIP ACKs
	 * every second one, and only the last of those four leaves */
	base = c.snd_nxt;
	for (i = 0; i < 8; i++) {
		tc_seg(fx, &c, PKT_TCP_ACK, data + i * 1200, 1200);
		c.snd_nxt += 1200;
	}
	assert_int_equal(count_pure_acks(fx, &c, &last), 0); /* held */
	loop_once(fx);
	assert_int_equal(count_pure_acks(fx, &c, &last), 1);
	assert_int_equal(last, base + 8 * 1200);
	stack_get_counters(fx->st, &k);
	assert_true(k.acks_merged >= 3); /* lwIP may ACK more often than every 2nd */
	merged = k.acks_merged;
	tc_pump(fx, &c);

	/* two segments past a gap: two duplicate ACKs, both sent */
	base = c.snd_nxt;
	c.snd_nxt = base + 1200;
	tc_seg(fx, &c, PKT_TCP_ACK, data + 9 * 1200, 1200);
	c.snd_nxt = base + 2400;
	tc_seg(fx, &c, PKT_TCP_ACK, data + 10 * 1200, 1200);
	loop_once(fx);
	assert_int_equal(count_pure_acks(fx, &c, &last), 2);
	assert_int_equal(last, base);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.acks_merged, merged);
	tc_pump(fx, &c);

	/* the gap filled: all of it acknowledged (lwIP may delay that ACK) */
	c.snd_nxt = base;
	tc_seg(fx, &c, PKT_TCP_ACK, data + 8 * 1200, 1200);
	c.snd_nxt = base + 3 * 1200;
	for (i = 0; i < 50 && c.snd_una != c.snd_nxt; i++) {
		loop_once(fx);
		tc_pump(fx, &c);
		advance(fx, 50);
	}
	assert_int_equal(c.snd_una, c.snd_nxt);

	tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 5000));
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* A segment toward the client as lwIP would send it, through ackq. */
static void
ackq_seg(struct fx *fx, int v6, uint16_t sport, uint32_t ack, uint16_t wnd, uint8_t flags,
	 size_t len)
{
	struct stack_addr srv, cli;
	uint8_t b[PMAX], data[100];
	size_t n;

	memset(data, 'x', sizeof(data));
	if (v6) {
		addr6(&srv, "2001:db8::80");
		cli = fx->client.vip6;
	} else {
		addr4(&srv, "198.51.100.80");
		cli = fx->client.vip4;
	}
	n = build_tcp(b, &srv, &cli, 80, sport, 1000, ack, flags, wnd, data, len);
	stack_ackq_output(fx->st, &cli, b, n);
}

/* The captured segments toward sport, in order: "A<ack>" a pure ACK,
 * "D<ack>" data, "F<ack>" a FIN; taken out of the capture. */
static void
ackq_seen(struct fx *fx, uint16_t sport, char *out, size_t cap)
{
	struct qpkt *p;
	size_t o = 0;

	out[0] = '\0';
	while ((p = q_pop(fx)) != NULL) {
		struct pkt_info pi;

		assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
		if (pi.proto != STACK_PROTO_TCP || pi.dport != sport)
			continue;
		o += (size_t)snprintf(out + o, cap - o, "%s%c%u", o ? " " : "",
				      (pi.tcp_flags & PKT_TCP_FIN) ? 'F'
				      : pi.tcp_payload             ? 'D'
								   : 'A',
				      (unsigned)pi.tcp_ack);
		assert_true(o < cap);
	}
}

/* ackq.c's rules, one by one, with segments built by hand: only an ACK of
 * more data supersedes a held one; anything else of the connection goes
 * after it; other connections and IPv6 are kept apart; stack_del sends
 * what is held. */
static void
test_ackq_rules(void **state)
{
	struct fx *fx = *state;
	char seen[256];
	struct stack_counters k;

	assert_int_equal(fx_start(fx, 1), 0);
	while (q_pop(fx) != NULL)
		;
	/* advancing pure ACKs: the last stands for all */
	ackq_seg(fx, 0, 5000, 100, 1000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 200, 1000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 300, 900, PKT_TCP_ACK, 0);
	ackq_seen(fx, 5000, seen, sizeof(seen));
	assert_string_equal(seen, ""); /* held until the loop turn ends */
	loop_once(fx);
	ackq_seen(fx, 5000, seen, sizeof(seen));
	assert_string_equal(seen, "A300");
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.acks_merged, 2);

	/* the same number again (a duplicate, then a window update, then
	 * data): each may tell the sender something, all go, in order */
	ackq_seg(fx, 0, 5000, 300, 900, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 300, 900, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 300, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 300, 2000, PKT_TCP_ACK | PKT_TCP_PSH, 10);
	loop_once(fx);
	ackq_seen(fx, 5000, seen, sizeof(seen));
	assert_string_equal(seen, "A300 A300 A300 D300");

	/* a burst, then the window update when the data reached the
	 * upstream socket: the held ACK advanced, so the update replaces it */
	ackq_seg(fx, 0, 5000, 350, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 360, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 360, 4000, PKT_TCP_ACK, 0);
	loop_once(fx);
	{
		struct qpkt *p = q_pop(fx);
		struct pkt_info pi;

		assert_non_null(p);
		assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
		assert_int_equal(pi.tcp_ack, 360);
		assert_int_equal(be16_get(p->b + pi.l4_off + 14), 4000);
		assert_null(q_pop(fx));
	}

	/* data acknowledging more carries the ACK: the held one is dropped;
	 * a FIN without more goes after the held ACK */
	ackq_seg(fx, 0, 5000, 400, 4000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 500, 4000, PKT_TCP_ACK | PKT_TCP_PSH, 10);
	ackq_seg(fx, 0, 5000, 600, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 600, 2000, PKT_TCP_ACK | PKT_TCP_FIN, 0);
	loop_once(fx);
	ackq_seen(fx, 5000, seen, sizeof(seen));
	assert_string_equal(seen, "D500 A600 F600");

	/* two connections (ports), IPv4 and IPv6 (same ports): apart */
	ackq_seg(fx, 0, 5000, 700, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5001, 10, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 1, 5000, 20, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 0, 5000, 800, 2000, PKT_TCP_ACK, 0);
	ackq_seg(fx, 1, 5000, 30, 2000, PKT_TCP_ACK, 0);
	loop_once(fx);
	{
		struct qpkt *p;
		int n4 = 0, n6 = 0, n5001 = 0;

		/* order across connections does not matter: count them */
		while ((p = q_pop(fx)) != NULL) {
			struct pkt_info pi;

			assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
			if (pi.dport == 5001) {
				n5001++;
				assert_int_equal(pi.tcp_ack, 10);
			} else if (pi.version == 6) {
				n6++;
				assert_int_equal(pi.tcp_ack, 30);
			} else {
				n4++;
				assert_int_equal(pi.tcp_ack, 800);
			}
		}
		assert_int_equal(n4, 1);
		assert_int_equal(n6, 1);
		assert_int_equal(n5001, 1);
	}

	/* what is still held when the stack goes is sent */
	ackq_seg(fx, 0, 5002, 900, 2000, PKT_TCP_ACK, 0);
	stack_del(fx->st);
	fx->st = NULL;
	ackq_seen(fx, 5002, seen, sizeof(seen));
	assert_string_equal(seen, "A900");
}

/* lwipmem.c: blocks of a class (segment-sized, tcp_seg-sized) come back
 * from its list, within its bound; other sizes are plain malloc. */
static void
lwipmem_class(size_t lo, size_t hi, size_t reuse_size)
{
	enum {
		N = LWIPMEM_KEEP + 40
	};
	void **b = calloc(N, sizeof(*b)), **got = calloc(LWIPMEM_KEEP, sizeof(*got));
	uintptr_t *was = calloc(N, sizeof(*was));
	unsigned i, reused = 0;

	for (i = 0; i < N; i++) {
		size_t n = lo + i % (hi - lo + 1);

		b[i] = stack_mem_malloc(n);
		assert_non_null(b[i]);
		/* kept or not, the whole class block is the caller's */
		memset(b[i], 0xa5, stack_mem_keeps() ? hi : n);
	}
	for (i = 0; i < N; i++) {
		was[i] = (uintptr_t)b[i]; /* the addresses, not the freed pointers */
		stack_mem_free(b[i]);
	}
	if (!stack_mem_keeps()) { /* AddressSanitizer: plain malloc */
		assert_int_equal(stack_mem_kept(), 0);
		free(b);
		free(got);
		free(was);
		return;
	}
	assert_int_equal(stack_mem_kept(), LWIPMEM_KEEP);
	for (i = 0; i < LWIPMEM_KEEP; i++) {
		got[i] = stack_mem_malloc(reuse_size);
		for (unsigned k = 0; k < N; k++)
			reused += (uintptr_t)got[i] == was[k];
	}
	assert_int_equal(reused, LWIPMEM_KEEP);
	assert_int_equal(stack_mem_kept(), 0);
	for (i = 0; i < LWIPMEM_KEEP; i++)
		stack_mem_free(got[i]);
	stack_mem_trim();
	assert_int_equal(stack_mem_kept(), 0);
	free(b);
	free(got);
	free(was);
}

static void
test_lwipmem_keeps_packet_blocks(void **state)
{
	void *mid, *large, *again;
	uintptr_t was;

	(void)state;
	stack_mem_trim();
	/* between the classes, and above: not kept */
	mid = stack_mem_malloc(300);
	large = stack_mem_malloc(2 * LWIPMEM_BLOCK + 1);
	assert_non_null(mid);
	assert_non_null(large);
	stack_mem_free(mid);
	stack_mem_free(large);
	assert_int_equal(stack_mem_kept(), 0);
	lwipmem_class(LWIPMEM_MIN + 1, LWIPMEM_BLOCK, 1500);
	lwipmem_class(1, LWIPMEM_SMALL, 40);
	/* calloc: a kept block comes back zeroed */
	mid = stack_mem_malloc(1500);
	assert_non_null(mid);
	memset(mid, 0xa5, 1500);
	was = (uintptr_t)mid;
	stack_mem_free(mid);
	again = stack_mem_calloc(3, 500);
	assert_non_null(again);
	if (stack_mem_keeps())
		assert_true((uintptr_t)again == was);
	for (unsigned i = 0; i < 1500; i++)
		assert_int_equal(((uint8_t *)again)[i], 0);
	stack_mem_free(again);
	stack_mem_trim();
}

static void
test_tcp_upstream_refused_gets_rst(void **state)
{
	struct fx *fx = *state;
	struct tc c;
	struct stack_counters k;

	assert_int_equal(fx_start(fx, 1), 0);
	tc_init(&c, fx, 0, "127.0.0.1", closed_port(0));
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_rst, NULL, 5000));
	assert_false(c.synack);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tcp_refused, 1);
	assert_int_equal(k.tcp_connect.count, 0); /* never connected */
	assert_int_equal(k.flows_tcp, 0);
	assert_int_equal(k.halfopen_tcp, 0);
	assert_int_equal(fx->ev[fx->nev - 1].type, STACK_EV_CLOSE);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "refused");
	wait_lwip_idle(fx);
	tc_free(&c);
}

/* A local upstream settles its handshake inside connect(): the client's
 * SYN-ACK (accepted) or RST (refused) leaves within the stack_input() of
 * the SYN, without a turn of the event loop. The kernel may defer its
 * loopback work under load, so one inline answer in 8 tries is asked;
 * any answer that does come late must still be the right one. */
static void
test_tcp_local_connect_answers_inline(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	int inline_ok = 0, inline_rst = 0;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	for (int i = 0; i < 8; i++) {
		tc_init(&c, fx, 0, "127.0.0.1", s.port);
		tc_syn(fx, &c);
		tc_pump(fx, &c); /* what stack_input() emitted, no loop turn */
		inline_ok += c.synack;
		assert_false(c.rst);
		assert_true(run_until(fx, &c, c_synack, NULL, 5000));
		assert_true(c.synack);
		tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
		assert_true(run_until(fx, &c, c_no_flows, NULL, 5000));
		tc_free(&c);
	}
	for (int i = 0; i < 8; i++) {
		tc_init(&c, fx, 0, "127.0.0.1", closed_port(0));
		tc_syn(fx, &c);
		tc_pump(fx, &c);
		inline_rst += c.rst;
		assert_false(c.synack); /* refused: never accepted-then-reset */
		assert_true(run_until(fx, &c, c_rst, NULL, 5000));
		assert_false(c.synack);
		tc_free(&c);
	}
	assert_true(inline_ok >= 1);
	assert_true(inline_rst >= 1);
	wait_lwip_idle(fx);
	srv_stop(&s);
}

static void
test_tcp_client_rst_closes_upstream(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	size_t want = 5;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	tc_transfer(fx, &c, (const uint8_t *)"hello", 5, want, 100000);
	tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 5000));
	/* the upstream sees the reset (or EOF) */
	for (int i = 0; i < 2000 && s.c && s.c->fd >= 0 && !s.eof_seen; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen || (s.c && s.c->fd < 0));
	assert_string_equal(fx->ev[fx->nev - 1].reason, "client-reset");
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

static void
test_tcp_upstream_half_close(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	static const char hello[] = "hello from upstream\n";
	uint8_t more[3000];

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_GREET_HALFCLOSE);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	/* the greeting and the upstream's FIN reach the client */
	assert_true(run_until(fx, &c, c_fin, NULL, 20000));
	assert_true(c.fin);
	assert_int_equal(c.rx_len, sizeof(hello) - 1);
	assert_memory_equal(c.rx, hello, sizeof(hello) - 1);
	/* the server wrote and closed at once: the relay read both in one
	 * pass, and the FIN rode on the greeting's segment */
	assert_int_equal(c.data_fin, 1);
	/* the client can still send after the upstream's half-close */
	fill_pattern(more, sizeof(more), 9);
	tc_transfer(fx, &c, more, sizeof(more), sizeof(hello) - 1, 100000);
	for (int i = 0; i < 2000 && s.received < sizeof(more); i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_int_equal(s.received, sizeof(more));
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
	for (int i = 0; i < 2000 && !s.eof_seen; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen);
	assert_false(c.rst);
	tc_pump(fx, &c);
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* The upstream closed first and stopped reading; the client keeps
 * sending until the host socket is full, then closes: its bytes still wait
 * in the flow while lwIP holds the connection in TIME_WAIT, which lwIP
 * may end (2 MSL, or a newer SYN past max_time_wait) without telling the
 * flow. The flow must have let go of the pcb at the client's FIN (it used
 * to keep it, and wrote to freed memory once the upstream drained: the
 * ASan build catches that), then deliver every byte and the FIN upstream,
 * without an RST either way. */
static void
test_tcp_fin_both_ways_while_upstream_full(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	static uint8_t data[16 << 20];
	size_t sent = 0, stuck = 0;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_GREET_HALFCLOSE);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	assert_true(run_until(fx, &c, c_fin, NULL, 20000)); /* greeting + upstream FIN */
	for (int i = 0; i < 2000 && s.c == NULL; i++)
		loop_once(fx);
	assert_non_null(s.c);
	event_del(s.c->rev); /* the upstream stops reading */
	fill_pattern(data, sizeof(data), 3);
	/* send while the relay takes it (its window open); stop once it has
	 * held back part of its window for a while (its host socket is full),
	 * some window left for the FIN */
	for (int i = 0; i < 400000 && stuck < 300; i++) {
		uint32_t una = c.snd_una;

		while (sent + c.seg <= sizeof(data) &&
		       (uint64_t)(c.snd_nxt - c.snd_una) + 3 * (uint64_t)c.seg <= c.peer_wnd) {
			tc_seg(fx, &c, PKT_TCP_ACK | PKT_TCP_PSH, data + sent, c.seg);
			c.snd_nxt += (uint32_t)c.seg;
			sent += c.seg;
		}
		loop_once(fx);
		tc_pump(fx, &c);
		if (c.snd_una != una || c.peer_wnd >= 256 * 1024)
			stuck = 0;
		else if (++stuck % 50 == 0)
			advance(fx, 200); /* lwIP's delayed ACK */
	}
	assert_int_equal(c.snd_nxt - c.snd_una, 0); /* all taken by lwIP */
	assert_int_equal(s.received, 0);            /* nothing read upstream */
	assert_true(sent > 100000);
	assert_true(c.peer_wnd > 0);
	/* the client's FIN: lwIP goes to TIME_WAIT with bytes still waiting */
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	for (int i = 0; i < 50; i++) {
		if (i % 10 == 9)
			advance(fx, 200);
		loop_once(fx);
		tc_pump(fx, &c);
	}
	assert_int_equal(c.snd_una, c.snd_nxt); /* the FIN was taken */
	/* TIME_WAIT ends (2 MSL) while the flow still waits on the host */
	advance(fx, 2 * TCP_MSL + 1000);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 0);
	assert_true(c_no_flows_but_one(fx, &c, NULL));
	/* the upstream reads again: every byte, then EOF */
	event_add(s.c->rev, NULL);
	for (int i = 0; i < 200000 && !s.eof_seen; i++) {
		loop_once(fx);
		if (i % 64 == 0)
			(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen);
	assert_int_equal(s.received, sent);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
	assert_false(c.rst);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "closed");
	tc_free(&c);
	srv_stop(&s);
}

/* A SRV_SOURCE server sending data[0..len) then its EOF, and client c
 * connected to it (the SYN-ACK in). */
static void
source_open(struct fx *fx, struct srv *s, struct tc *c, const uint8_t *data, size_t len)
{
	srv_start(s, fx->base, 0, SRV_SOURCE);
	s->src = data;
	s->src_len = len;
	tc_init(c, fx, 0, "127.0.0.1", s->port);
	tc_syn(fx, c);
	assert_true(run_until(fx, c, c_synack, NULL, 5000));
	assert_true(c->synack);
}

/* Runs the loop until the relay took all len bytes of the upstream and
 * its EOF into lwIP. */
static void
wait_upstream_eof(struct fx *fx, struct tc *c, size_t len)
{
	struct stack_counters k;

	for (int i = 0; i < 5000; i++) {
		stack_get_counters(fx->st, &k);
		if (k.bytes_down == len && fx->st->flows != NULL && fx->st->flows->upstream_fin)
			return;
		loop_once(fx);
		tc_pump(fx, c);
		(void)poll(NULL, 0, 1);
	}
	fail_msg("the upstream's %zu bytes and EOF not taken: %llu", len,
		 (unsigned long long)k.bytes_down);
}

/* The client's FIN, then the flow must end cleanly ("closed"), lwIP idle;
 * frees what the test made. */
static void
fin_closed_clean(struct fx *fx, struct srv *s, struct tc *c, uint8_t *data)
{
	tc_seg(fx, c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c->snd_nxt++;
	assert_true(run_until(fx, c, c_no_flows, NULL, 20000));
	assert_string_equal(fx->ev[fx->nev - 1].reason, "closed");
	wait_lwip_idle(fx);
	tc_free(c);
	srv_stop(s);
	free(data);
}

/* Both sides have closed while the upstream's bytes still wait in lwIP for
 * a client that keeps its window shut (and answers lwIP's window probes,
 * so lwIP alone would keep them for ever). The flow must stay, charged to
 * its client, until the bytes are delivered or tcp_close_ms passes without
 * progress: it used to be freed at the second FIN and leave lwIP holding
 * the bytes outside every per-client count. upstream_first: the upstream's
 * EOF reaches the relay before the client's FIN; reopen: the client opens
 * its window before the deadline and receives everything. */
static void
closing_zero_window(struct fx *fx, int upstream_first, int reopen)
{
	const size_t total = 100 * 1000;
	uint8_t *data = malloc(total);
	struct stack_counters k;
	struct srv s;
	struct tc c;
	int i;

	stack_config_defaults(&fx->cfg);
	fx->cfg.tcp_close_ms = 10000;
	assert_int_equal(fx_start(fx, 1), 0);
	fill_pattern(data, total, 21);
	source_open(fx, &s, &c, data, total);
	c.zero_wnd = 1;
	tc_pump(fx, &c); /* the handshake's ACK shuts the window */
	if (!upstream_first) {
		tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
		c.snd_nxt++;
	}
	wait_upstream_eof(fx, &c, total);
	if (upstream_first) {
		tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
		c.snd_nxt++;
	}
	/* 9 s of window probes answered with a shut window */
	for (i = 0; i < 36; i++) {
		advance(fx, 250);
		loop_once(fx);
		tc_pump(fx, &c);
	}
	assert_false(c.rst);
	assert_int_equal(c.rx_len, 0);
	assert_int_equal(c.snd_una, c.snd_nxt); /* the client's FIN taken */
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_tcp, 1); /* still the client's */
	assert_non_null(fx->st->flows);
	assert_non_null(fx->st->flows->pcb);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 1);
	if (reopen) {
		c.zero_wnd = 0;
		tc_seg(fx, &c, PKT_TCP_ACK, NULL, 0); /* window update */
		assert_true(run_until(fx, &c, c_fin, NULL, 200000));
		assert_false(c.rst);
		assert_int_equal(c.rx_len, total);
		assert_memory_equal(c.rx, data, total);
		assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
		tc_pump(fx, &c);
		assert_false(c.rst);
		assert_string_equal(fx->ev[fx->nev - 1].reason, "closed");
	} else {
		/* no byte delivered for tcp_close_ms: RST, and lwIP lets go */
		assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
		tc_pump(fx, &c);
		assert_true(c.rst);
		assert_string_equal(fx->ev[fx->nev - 1].reason, "close-timeout");
		assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 0);
	}
	for (i = 0; i < 2000 && !s.eof_seen; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen); /* the client's FIN reached the upstream */
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
	free(data);
}

/* The client's FIN first, then the upstream's bytes and EOF, which the
 * client takes slowly (1 KiB a second, its window shut in between) for
 * longer than lwIP keeps a closed pcb in LAST_ACK (2 MSL = 20 s): every
 * byte must still arrive, then the FIN, with no RST. lwIP stops counting
 * a closed pcb's incoming segments as activity, so the pcb is closed only
 * once its bytes are acknowledged (it used to be dropped at 20 s). */
static void
test_tcp_closing_slow_reader_past_last_ack_timer(void **state)
{
	struct fx *fx = *state;
	const size_t total = 30 * 1000;
	uint8_t *data = malloc(total);
	struct srv s;
	struct tc c;
	int i;

	stack_config_defaults(&fx->cfg);
	fx->cfg.tcp_close_ms = 60000;
	assert_int_equal(fx_start(fx, 1), 0);
	fill_pattern(data, total, 23);
	source_open(fx, &s, &c, data, total);
	c.wnd_set = 1;
	c.wnd = 0;
	tc_pump(fx, &c);
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	wait_upstream_eof(fx, &c, total);
	for (i = 0; i < 240 && !c.fin && !c.rst; i++) { /* up to 60 s */
		advance(fx, 250);
		c.wnd = i % 4 == 0 ? 8 : 0; /* 1 KiB, once a second */
		if (c.wnd != 0)
			tc_seg(fx, &c, PKT_TCP_ACK, NULL, 0);
		loop_once(fx);
		tc_pump(fx, &c);
	}
	assert_false(c.rst);
	assert_true(c.fin);
	assert_true(i > 100); /* it took more than 25 s */
	assert_int_equal(c.rx_len, total);
	assert_memory_equal(c.rx, data, total);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
	assert_string_equal(fx->ev[fx->nev - 1].reason, "closed");
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
	free(data);
}

static void
test_tcp_closing_zero_window_times_out(void **state)
{
	closing_zero_window(*state, 0, 0);
}

static void
test_tcp_closing_zero_window_upstream_first_times_out(void **state)
{
	closing_zero_window(*state, 1, 0);
}

static void
test_tcp_closing_zero_window_reopens(void **state)
{
	closing_zero_window(*state, 0, 1);
}

/* Both FINs in, the client's bytes still waiting for an upstream that does
 * not read, the relay's greeting not yet taken (the client's window shut),
 * then the client resets. lwIP acknowledged those bytes: they must still
 * reach the upstream, then its EOF, not an RST that drops them. */
static void
test_tcp_client_reset_after_fin_keeps_its_bytes(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	static uint8_t data[4 << 20];
	size_t sent = 0, stuck = 0;
	int i;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_GREET_HALFCLOSE);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	c.zero_wnd = 1;
	tc_pump(fx, &c);
	for (i = 0; i < 5000 && !(fx->st->flows != NULL && fx->st->flows->upstream_fin && s.c != NULL);
	     i++) {
		loop_once(fx);
		tc_pump(fx, &c);
		(void)poll(NULL, 0, 1);
	}
	assert_non_null(s.c);
	assert_true(fx->st->flows->upstream_fin);
	event_del(s.c->rev); /* the upstream stops reading */
	fill_pattern(data, sizeof(data), 29);
	for (i = 0; i < 400000 && stuck < 300; i++) {
		uint32_t una = c.snd_una;

		while (sent + c.seg <= sizeof(data) &&
		       (uint64_t)(c.snd_nxt - c.snd_una) + 3 * (uint64_t)c.seg <= c.peer_wnd) {
			tc_seg(fx, &c, PKT_TCP_ACK | PKT_TCP_PSH, data + sent, c.seg);
			c.snd_nxt += (uint32_t)c.seg;
			sent += c.seg;
		}
		loop_once(fx);
		tc_pump(fx, &c);
		if (c.snd_una != una)
			stuck = 0;
		else if (++stuck % 50 == 0)
			advance(fx, 200);
	}
	assert_int_equal(c.snd_nxt - c.snd_una, 0);
	assert_true(sent > 100000);
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	for (i = 0; i < 20; i++) {
		loop_once(fx);
		tc_pump(fx, &c);
	}
	assert_int_equal(c.snd_una, c.snd_nxt);
	assert_non_null(fx->st->flows);
	assert_non_null(fx->st->flows->pcb); /* the greeting is not taken */
	tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	loop_once(fx);
	assert_true(fx->st->flows == NULL || fx->st->flows->pcb == NULL);
	event_add(s.c->rev, NULL); /* the upstream reads again */
	for (i = 0; i < 200000 && !s.eof_seen; i++) {
		loop_once(fx);
		if (i % 64 == 0)
			(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen);
	assert_int_equal(s.received, sent);
	assert_true(run_until(fx, NULL, c_no_flows, NULL, 20000));
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* One connection to a SRV_GREET_HALFCLOSE server from sport with initial
 * sequence number isn: the greeting arrives, the upstream closed first, so
 * after the client's FIN lwIP holds the tuple in TIME_WAIT. */
static void
tw_connection(struct fx *fx, struct srv *s, uint16_t sport, uint32_t isn)
{
	static const char hello[] = "hello from upstream\n";
	struct tc c;

	tc_init(&c, fx, 0, "127.0.0.1", s->port);
	c.sport = sport;
	c.snd_nxt = c.snd_una = isn;
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	assert_true(c.synack);
	assert_false(c.rst);
	tc_pump(fx, &c);
	assert_true(run_until(fx, &c, c_fin, NULL, 20000));
	assert_int_equal(c.rx_len, sizeof(hello) - 1);
	assert_memory_equal(c.rx, hello, sizeof(hello) - 1);
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
	assert_false(c.rst);
	tc_free(&c);
	/* the test server takes one connection at a time */
	for (int i = 0; i < 2000 && !s->eof_seen; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_true(s->eof_seen);
	conn_close(s->c);
	free(s->c);
	s->c = NULL;
	s->eof_seen = 0;
}

/* A client that closed second may reuse its port at once. lwIP, still in
 * TIME_WAIT, used to answer the new SYN with an ACK and ignore the client's
 * RST, stalling the connect until TIME_WAIT ended (seconds, at every port
 * cycle of a busy client). A newer SYN now reopens the tuple; an older one
 * is dropped; TIME_WAIT never holds more than max_time_wait pcbs. */
static void
test_tcp_time_wait_reopen(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct srv s;
	struct tc old;
	uint32_t isn = 0x20000000u;
	int i;

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_time_wait = 3;
	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_GREET_HALFCLOSE);
	tw_connection(fx, &s, 45000, isn);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 1); /* TIME_WAIT */

	/* an older SYN on the tuple: no SYN-ACK, no upstream connect */
	tc_init(&old, fx, 0, "127.0.0.1", s.port);
	old.sport = 45000;
	old.snd_nxt = old.snd_una = isn - 70000;
	tc_syn(fx, &old);
	for (i = 0; i < 20; i++) {
		loop_once(fx);
		tc_pump(fx, &old);
	}
	assert_false(old.synack);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tw_refused, 1);
	assert_int_equal(k.flows_tcp, 0);
	tc_free(&old);

	/* a newer one: served at once, the old TIME_WAIT made way: out of
	 * the index at once (no walk of lwIP's list), freed by lwIP's next
	 * slow timer */
	tw_connection(fx, &s, 45000, isn + 1000000);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tw_reopened, 1);
	assert_int_equal(stack_pcbhash_tw_count(), 1);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 2);
	assert_non_null(tcp_tw_pcbs->next);
	assert_true(stack_pcb_tw_retired(tcp_tw_pcbs->next)); /* the old one, still listed */
	advance(fx, 600);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 1);
	assert_null(tcp_tw_pcbs->next);

	/* more closed connections than the cap: the oldest are evicted */
	for (i = 1; i <= 5; i++)
		tw_connection(fx, &s, (uint16_t)(45000 + i), isn);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tw_reopened, 1);
	assert_int_equal(k.tw_evicted, 2);
	/* 6 in TIME_WAIT at most cap + 1 (the walk before each SYN evicts) */
	assert_true(lwip_stats.memp[MEMP_TCP_PCB]->used <= 4);
	wait_lwip_idle(fx);
	srv_stop(&s);
}

/* Over max_time_wait, the oldest eighth of the TIME_WAIT pcbs goes in one
 * pass (pcbhash.c indexes them; evicting one per SYN walked the list each
 * time): the newest stay, findable, and a reused tuple still reopens. */
static void
test_tcp_time_wait_batch_eviction(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct srv s;
	uint32_t isn = 0x30000000u;
	size_t n = 0;
	int i;

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_time_wait = 16;
	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_GREET_HALFCLOSE);
	for (i = 0; i < 17; i++)
		tw_connection(fx, &s, (uint16_t)(46000 + i), isn);
	assert_int_equal(stack_pcbhash_tw_count(), 17);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tw_evicted, 0);
	/* the 18th SYN finds 17 > 16: the 3 oldest go (down to 16 - 16 / 8) */
	tw_connection(fx, &s, 46017, isn);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tw_evicted, 3);
	assert_int_equal(stack_pcbhash_tw_count(), 15);
	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next, n++)
		assert_true(pcb->remote_port >= 46003); /* 46000..46002 went */
	assert_int_equal(n, 15);
	/* a tuple still in TIME_WAIT reopens on a newer SYN */
	tw_connection(fx, &s, 46010, isn + 1000000);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tw_reopened, 1);
	assert_int_equal(stack_pcbhash_tw_count(), 15);
	wait_lwip_idle(fx);
	assert_int_equal(stack_pcbhash_tw_count(), 0);
	srv_stop(&s);
}

/* limits.time_wait reaches the stack as max_time_wait: a cap other than
 * the default is what the stack holds to. With 32, through 80 connections
 * the relay closed first: at each SYN more than 32 are cut to 28 (32 - 32
 * / 8), so the count never passes 33 (the cap and the connection that
 * closed after its SYN's check), and every connection is either still in
 * TIME_WAIT or counted in tw_evicted. */
static void
test_tcp_time_wait_cap_from_config(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct srv s;
	size_t n, peak = 0;
	int i;

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_time_wait = 32;
	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_GREET_HALFCLOSE);
	for (i = 1; i <= 80; i++) {
		tw_connection(fx, &s, (uint16_t)(47000 + i), 0x40000000u);
		n = stack_pcbhash_tw_count();
		stack_get_counters(fx->st, &k);
		assert_true(n <= 33);
		assert_int_equal(k.tw_now, n);
		assert_int_equal(k.tw_evicted + n, (uint64_t)i);
		assert_int_equal(k.tw_reopened, 0);
		peak = n > peak ? n : peak;
	}
	assert_int_equal(peak, 33);
	assert_int_equal(k.tw_evicted, 50); /* 5 at the 34th, 39th, ..., 79th SYN */
	assert_int_equal(n, 30);
	wait_lwip_idle(fx);
	assert_int_equal(stack_pcbhash_tw_count(), 0);
	srv_stop(&s);
}

/* A listening socket on a free loopback port (the kernel completes the
 * relay's handshakes into its backlog); its port in *pport. */
static int
backlog_listener(uint16_t *pport)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*pport = ntohs(sin.sin_port);
	return fd;
}

/* One client connection to port through the stack: SYN-ACK, then RST. */
static void
syn_then_rst(struct fx *fx, uint16_t port, uint16_t sport)
{
	struct tc c;

	tc_init(&c, fx, 0, "127.0.0.1", port);
	c.sport = sport;
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 5000));
	tc_free(&c);
}

/* The per-port lwIP listener outlives its last flow for
 * STACK_LISTENER_LINGER_MS, so connections one after another to a port
 * reuse it (lwIP's close of a listener walks every active and TIME-WAIT
 * pcb: it was closed and made again for each connection); idle ones close
 * after the linger, and beyond STACK_LISTENERS_IDLE_MAX at once. */
static void
test_listener_lingers_then_closes(void **state)
{
	struct fx *fx = *state;
	int fds[STACK_LISTENERS_IDLE_MAX + 3];
	uint16_t port;
	size_t base;

	assert_int_equal(fx_start(fx, 1), 0);
	base = lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used;
	fds[0] = backlog_listener(&port);
	syn_then_rst(fx, port, 47000);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, base + 1); /* lingers */
	advance(fx, STACK_LISTENER_LINGER_MS / 2);
	syn_then_rst(fx, port, 47001); /* the same listener */
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, base + 1);
	advance(fx, STACK_LISTENER_LINGER_MS / 2 + 250);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, base + 1); /* reused: later */
	advance(fx, STACK_LISTENER_LINGER_MS / 2);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, base); /* gone */
	/* the stack's timer would close it too: it is armed for the linger */
	syn_then_rst(fx, port, 47002);
	assert_true(stack_expiry(fx->st) <= fx->now + STACK_LISTENER_LINGER_MS);
	close(fds[0]);
	/* more idle ports than the cap: the oldest close at once */
	for (int i = 0; i < STACK_LISTENERS_IDLE_MAX + 3; i++) {
		fds[i] = backlog_listener(&port);
		syn_then_rst(fx, port, (uint16_t)(47100 + i));
	}
	loop_once(fx);
	assert_true(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used <= base + STACK_LISTENERS_IDLE_MAX);
	for (int i = 0; i < STACK_LISTENERS_IDLE_MAX + 3; i++)
		close(fds[i]);
	wait_lwip_idle(fx);
}

/* A TIME_WAIT pcb outlives the listener that accepted it: closing the
 * listener leaves lwIP's TIME_WAIT list alone (lwip-zgate.patch, change
 * 4: it walked every TIME_WAIT pcb to clear a pointer that only SYN_RCVD
 * reads), and the pcb still does its work afterwards: a newer SYN on its
 * tuple reopens it through a new listener, and the timer frees it. Under
 * AddressSanitizer a read of the freed listener through the pcb fails. */
static void
test_tcp_time_wait_outlives_its_listener(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct srv s;
	size_t base;

	assert_int_equal(fx_start(fx, 1), 0);
	base = lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used;
	srv_start(&s, fx->base, 0, SRV_GREET_HALFCLOSE);
	tw_connection(fx, &s, 46000, 0x30000000u);
	tw_connection(fx, &s, 46001, 0x30000000u);
	assert_int_equal(stack_pcbhash_tw_count(), 2);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, base + 1);
	advance(fx, STACK_LISTENER_LINGER_MS + 250);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB_LISTEN]->used, base); /* closed, freed */
	assert_int_equal(stack_pcbhash_tw_count(), 2);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 2);
	/* the close did not walk them: their (now stale, never read) listener
	 * pointers are as accept left them */
	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next)
		assert_non_null(pcb->listener);
	tw_connection(fx, &s, 46000, 0x30000000u + 1000000);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tw_reopened, 1);
	assert_int_equal(k.tw_refused, 0);
	assert_int_equal(stack_pcbhash_tw_count(), 2);
	wait_lwip_idle(fx);
	assert_int_equal(stack_pcbhash_tw_count(), 0);
	srv_stop(&s);
}

static void
test_tcp_idle_timeout(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	struct stack_counters k;

	stack_config_defaults(&fx->cfg);
	fx->cfg.tcp_idle_ms = 60000;
	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	advance(fx, 30000);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_tcp, 1);
	advance(fx, 31000);
	tc_pump(fx, &c);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_tcp, 0);
	assert_int_equal(k.closed_idle, 1);
	assert_true(c.rst);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "idle");
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* ---------------------------------------------------------------- ACL tests */

static void
test_c18_spoofed_source_dropped(void **state)
{
	struct fx *fx = *state;
	struct stack_addr spoof, dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;

	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&spoof, "10.100.0.8"); /* another client's address */
	addr4(&dst, "127.0.0.1");
	n = build_tcp(b, &spoof, &dst, 1234, 80, 1, 0, PKT_TCP_SYN, 1000, NULL, 0);
	input(fx, b, n);
	n = build_udp(b, &spoof, &dst, 1234, 53, (const uint8_t *)"x", 1);
	input(fx, b, n);
	/* IPv6 from a client without that address */
	addr6(&spoof, "fd00:100::8");
	addr6(&dst, "::1");
	n = build_udp(b, &spoof, &dst, 1234, 53, (const uint8_t *)"x", 1);
	input(fx, b, n);
	loop_once(fx);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_spoofed, 3);
	assert_int_equal(fx->policy_calls, 0);
	assert_int_equal(fx->qtail, 0); /* silently dropped */
	assert_int_equal(k.flows_tcp + k.flows_udp, 0);
}

static void
test_c19_denied_tcp_gets_rst_and_audit(void **state)
{
	struct fx *fx = *state;
	struct tc c;
	struct stack_counters k;

	fx->deny = 1;
	assert_int_equal(fx_start(fx, 1), 0);
	tc_init(&c, fx, 0, "127.0.0.1", 443);
	tc_syn(fx, &c);
	tc_pump(fx, &c);
	assert_true(c.rst);
	assert_int_equal(fx->policy_calls, 1);
	assert_string_equal(fx->last_policy.client_id, "agent-1");
	assert_int_equal(fx->last_policy.dport, 443);
	assert_int_equal(fx->last_policy.proto, STACK_PROTO_TCP);
	assert_int_equal(fx->nev, 1);
	assert_int_equal(fx->ev[0].type, STACK_EV_DENY);
	assert_string_equal(fx->ev[0].rule, "deny-all");
	assert_string_equal(fx->ev[0].reason, "policy");
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_denied, 1);
	assert_int_equal(k.rsts_sent, 1);
	assert_int_equal(k.flows_tcp, 0);
	tc_free(&c);
}

static void
expect_admin_prohibited(const struct qpkt *p, int v6)
{
	struct pkt_info pi;

	assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
	if (v6) {
		assert_int_equal(pi.proto, STACK_PROTO_ICMPV6);
		assert_int_equal(pi.icmp_type, 1);
		assert_int_equal(pi.icmp_code, 1);
	} else {
		assert_int_equal(pi.proto, STACK_PROTO_ICMP);
		assert_int_equal(pi.icmp_type, 3);
		assert_int_equal(pi.icmp_code, 13);
	}
}

static void
test_c19_denied_udp_gets_admin_prohibited(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	uint8_t b[PMAX];
	size_t n;

	fx->deny = 1;
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "198.51.100.1");
	n = build_udp(b, &fx->client.vip4, &dst, 5000, 53, (const uint8_t *)"q", 1);
	input(fx, b, n);
	assert_int_equal(fx->qtail, 1);
	expect_admin_prohibited(&fx->q[0], 0);
	/* the quoted packet is ours */
	assert_memory_equal(fx->q[0].b + 28, b, 20);
	addr6(&dst, "2001:db8::1");
	n = build_udp(b, &fx->client.vip6, &dst, 5000, 53, (const uint8_t *)"q", 1);
	input(fx, b, n);
	assert_int_equal(fx->qtail, 2);
	expect_admin_prohibited(&fx->q[1], 1);
	assert_int_equal(fx->nev, 2);
	assert_int_equal(fx->ev[1].type, STACK_EV_DENY);
}

static void
test_c19_icmp_errors_rate_limited(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;
	int i;

	fx->deny = 1;
	stack_config_defaults(&fx->cfg);
	fx->cfg.icmp_errors_per_s = 10;
	fx->cfg.icmp_errors_burst = 5;
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "198.51.100.1");
	for (i = 0; i < 20; i++) {
		n = build_udp(b, &fx->client.vip4, &dst, (uint16_t)(5000 + i), 53,
			      (const uint8_t *)"q", 1);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.icmp_errors_sent, 5);
	assert_int_equal(k.errors_ratelimited, 15);
	fx->now += 1000; /* refills 10 */
	for (i = 0; i < 20; i++) {
		n = build_udp(b, &fx->client.vip4, &dst, (uint16_t)(6000 + i), 53,
			      (const uint8_t *)"q", 1);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.icmp_errors_sent, 10);
}

static void
test_loopback_forbidden_by_default(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;
	static const char *bad4[] = { "127.0.0.1", "169.254.169.254", "224.0.0.1",
				      "255.255.255.255", "0.0.0.0" };
	static const char *bad6[] = { "::1", "fe80::1", "ff02::1",
				      "::ffff:127.0.0.1" };
	size_t i;

	assert_int_equal(fx_start(fx, 0), 0);
	for (i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
		addr4(&dst, bad4[i]);
		n = build_tcp(b, &fx->client.vip4, &dst, 1234, 80, 1, 0,
			      PKT_TCP_SYN, 1000, NULL, 0);
		input(fx, b, n);
	}
	for (i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
		addr6(&dst, bad6[i]);
		n = build_udp(b, &fx->client.vip6, &dst, 1234, 53,
			      (const uint8_t *)"x", 1);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_forbidden, 9);
	assert_int_equal(fx->policy_calls, 0);
	assert_int_equal(k.flows_tcp + k.flows_udp, 0);
	assert_int_equal(fx->qtail, 9);
	expect_admin_prohibited(&fx->q[0], 0);
	expect_admin_prohibited(&fx->q[8], 1);
	assert_string_equal(fx->ev[0].reason, "forbidden-destination");
}

static void
test_configured_forbidden_prefix(void **state)
{
	struct fx *fx = *state;
	struct stack_prefix pool;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;

	stack_config_defaults(&fx->cfg);
	addr4(&pool.addr, "10.100.0.0");
	pool.len = 24;
	fx->cfg.forbidden = &pool;
	fx->cfg.n_forbidden = 1;
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "10.100.0.9"); /* another client in the pool */
	n = build_udp(b, &fx->client.vip4, &dst, 1234, 53, (const uint8_t *)"x", 1);
	input(fx, b, n);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_forbidden, 1);
	assert_int_equal(fx->policy_calls, 0);
}

/* IPv6 with hop-by-hop and destination-options headers before UDP: the
 * policy sees UDP and the ports (C21). */
static void
test_c21_ipv6_ext_headers_walked(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	uint8_t b[PMAX], u[PMAX];
	size_t un, n;
	struct pkt_info pi;

	fx->deny = 1;
	assert_int_equal(fx_start(fx, 1), 0);
	addr6(&dst, "2001:db8::53");
	un = pkt_build_udp(u, sizeof(u), &fx->client.vip6, 5353, &dst, 53,
			   (const uint8_t *)"abc", 3);
	assert_true(un > 40);
	/* splice HBH (8 bytes, PadN) and dest-opts (16 bytes) after the header */
	memcpy(b, u, 40);
	b[6] = 0; /* HBH */
	memset(b + 40, 0, 8);
	b[40] = 60; /* next: dest opts */
	b[41] = 0;
	b[42] = 1; /* PadN */
	b[43] = 4;
	memset(b + 48, 0, 16);
	b[48] = STACK_PROTO_UDP;
	b[49] = 1; /* (1+1)*8 = 16 bytes */
	b[50] = 1;
	b[51] = 12;
	memcpy(b + 64, u + 40, un - 40);
	n = un + 24;
	b[4] = (uint8_t)((n - 40) >> 8);
	b[5] = (uint8_t)(n - 40);
	assert_int_equal(pkt_parse(b, n, 1, &pi), 0);
	assert_int_equal(pi.proto, STACK_PROTO_UDP);
	assert_int_equal(pi.l4_off, 64);
	input(fx, b, n);
	assert_int_equal(fx->policy_calls, 1);
	assert_int_equal(fx->last_policy.proto, STACK_PROTO_UDP);
	assert_int_equal(fx->last_policy.sport, 5353);
	assert_int_equal(fx->last_policy.dport, 53);
	expect_admin_prohibited(&fx->q[0], 1);

	/* a TCP SYN behind a hop-by-hop header: policy sees TCP, client a RST */
	{
		uint8_t t[PMAX], h[PMAX];
		size_t tn;
		struct pkt_info rp;

		tn = build_tcp(t, &fx->client.vip6, &dst, 4444, 443, 77, 0,
			       PKT_TCP_SYN, 1000, NULL, 0);
		memcpy(h, t, 40);
		h[6] = 0;
		memset(h + 40, 0, 8);
		h[40] = STACK_PROTO_TCP;
		h[42] = 1;
		h[43] = 4;
		memcpy(h + 48, t + 40, tn - 40);
		tn += 8;
		h[4] = (uint8_t)((tn - 40) >> 8);
		h[5] = (uint8_t)(tn - 40);
		input(fx, h, tn);
		assert_int_equal(fx->policy_calls, 2);
		assert_int_equal(fx->last_policy.proto, STACK_PROTO_TCP);
		assert_int_equal(fx->last_policy.dport, 443);
		assert_int_equal(fx->qtail, 2);
		assert_int_equal(pkt_parse(fx->q[1].b, fx->q[1].len, 1, &rp), 0);
		assert_int_equal(rp.proto, STACK_PROTO_TCP);
		assert_int_equal(rp.tcp_flags, PKT_TCP_RST | PKT_TCP_ACK);
		assert_int_equal(rp.tcp_ack, 78);
		assert_int_equal(rp.dport, 4444);
	}

	/* a fragment header: dropped, never a policy question */
	b[48] = 44; /* dest opts -> fragment */
	{
		uint8_t f[PMAX];

		memcpy(f, b, 64);
		memset(f + 64, 0, 8);
		f[64] = STACK_PROTO_UDP;
		f[67] = 1; /* M flag */
		memcpy(f + 72, u + 40, un - 40);
		n = un + 32;
		f[4] = (uint8_t)((n - 40) >> 8);
		f[5] = (uint8_t)(n - 40);
		input(fx, f, n);
	}
	{
		struct stack_counters k;

		stack_get_counters(fx->st, &k);
		assert_int_equal(k.drop_fragment, 1);
	}
	assert_int_equal(fx->policy_calls, 2);
}

static void
test_malformed_dropped(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;

	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "127.0.0.1");
	n = build_tcp(b, &fx->client.vip4, &dst, 1234, 80, 1, 0, PKT_TCP_SYN,
		      1000, NULL, 0);
	b[n - 1] ^= 0xff; /* bad TCP checksum on a SYN */
	input(fx, b, n);
	input(fx, b, 10); /* truncated */
	b[0] = 0x55;      /* bad version */
	input(fx, b, n);
	input(fx, b, 0);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_malformed, 4);
	assert_int_equal(fx->policy_calls, 0);
	assert_int_equal(stack_input(fx->st, NULL, NULL, b, n), ZG_ERR_INVAL);
}

/* ---------------------------------------------------------------- UDP */

struct usrv {
	int fd;
	uint16_t port;
};

static void
usrv_start(struct usrv *u, int v6)
{
	struct sockaddr_storage ss;
	socklen_t sl = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = v6 ? AF_INET6 : AF_INET;
	if (v6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(u->fd >= 0);
	assert_int_equal(bind(u->fd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(getsockname(u->fd, (struct sockaddr *)&ss, &sl), 0);
	u->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
}

/* Echoes one datagram back upper-cased; returns its length or -1. */
static ssize_t
usrv_echo(struct usrv *u)
{
	uint8_t b[2048];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t r;
	int i;

	for (i = 0; i < 1000; i++) {
		r = recvfrom(u->fd, b, sizeof(b), 0, (struct sockaddr *)&from, &fl);
		if (r >= 0) {
			for (ssize_t j = 0; j < r; j++)
				if (b[j] >= 'a' && b[j] <= 'z')
					b[j] = (uint8_t)(b[j] - 32);
			assert_int_equal(sendto(u->fd, b, (size_t)r, 0,
						(struct sockaddr *)&from, fl),
					 r);
			return r;
		}
		(void)poll(NULL, 0, 1);
	}
	return -1;
}

static struct qpkt *
wait_pkt(struct fx *fx)
{
	int i;

	for (i = 0; i < 2000 && fx->qhead == fx->qtail; i++) {
		loop_once(fx);
		if (fx->qhead == fx->qtail)
			(void)poll(NULL, 0, 1);
	}
	return q_pop(fx);
}

static void
udp_roundtrip(struct fx *fx, int v6)
{
	struct usrv u;
	struct stack_addr dst;
	struct stack_counters k;
	struct pkt_info pi;
	struct qpkt *p;
	uint8_t b[PMAX];
	size_t n;

	assert_int_equal(fx_start(fx, 1), 0);
	usrv_start(&u, v6);
	if (v6)
		addr6(&dst, "::1");
	else
		addr4(&dst, "127.0.0.1");
	n = build_udp(b, v6 ? &fx->client.vip6 : &fx->client.vip4, &dst, 33333,
		      u.port, (const uint8_t *)"ping one", 8);
	input(fx, b, n);
	assert_int_equal(usrv_echo(&u), 8);
	p = wait_pkt(fx);
	assert_non_null(p);
	assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0); /* checksums ok */
	assert_int_equal(pi.proto, STACK_PROTO_UDP);
	assert_int_equal(pi.sport, u.port);
	assert_int_equal(pi.dport, 33333);
	assert_true(stack_addr_eq(&pi.src, &dst));
	assert_true(stack_addr_eq(&pi.dst, v6 ? &fx->client.vip6 : &fx->client.vip4));
	assert_int_equal(pi.payload_len, 8);
	assert_memory_equal(p->b + pi.payload_off, "PING ONE", 8);
	/* a second datagram reuses the flow: one policy question */
	n = build_udp(b, v6 ? &fx->client.vip6 : &fx->client.vip4, &dst, 33333,
		      u.port, (const uint8_t *)"two", 3);
	input(fx, b, n);
	assert_int_equal(usrv_echo(&u), 3);
	p = wait_pkt(fx);
	assert_non_null(p);
	assert_int_equal(fx->policy_calls, 1);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 1);
	assert_int_equal(k.bytes_up, 11);
	assert_int_equal(k.bytes_down, 11);
	/* idle timeout by the fake clock */
	advance(fx, fx->cfg.udp_idle_ms - 1000);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 1);
	advance(fx, 2000);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 0);
	assert_int_equal(k.closed_idle, 1);
	assert_int_equal(fx->ev[fx->nev - 1].type, STACK_EV_CLOSE);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "idle");
	assert_int_equal(fx->ev[fx->nev - 1].up, 11);
	close(u.fd);
}

/* A reloaded policy (issue 18.2): denies TCP to deny_port, allows the rest. */
struct reeval {
	uint16_t deny_port;
	int calls;
	char clients[4][STACK_ID_MAX];
};

static enum stack_verdict
reeval_cb(void *arg, const struct stack_flow_info *fi, const char **prule)
{
	struct reeval *r = arg;

	if (r->calls < 4)
		snprintf(r->clients[r->calls], STACK_ID_MAX, "%s", fi->client_id);
	r->calls++;
	if (fi->proto == STACK_PROTO_TCP && fi->dport == r->deny_port) {
		*prule = "new-deny";
		return STACK_DENY;
	}
	*prule = "new-allow";
	return STACK_ALLOW;
}

/* Re-evaluation after a policy reload closes the flows the new policy
 * denies (TCP: RST to the client and the destination, audited close
 * "policy" with the denying rule) and leaves the others running. */
static void
test_reevaluate_closes_denied_flows_keeps_allowed(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct usrv u;
	struct tc c;
	struct stack_addr dst;
	struct stack_counters k;
	struct reeval re;
	struct qpkt *p;
	uint8_t b[PMAX];
	size_t n;
	int nev;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	usrv_start(&u, 0);
	addr4(&dst, "127.0.0.1");
	/* an established TCP flow with data through it */
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	tc_transfer(fx, &c, (const uint8_t *)"hello", 5, 5, 100000);
	/* and a UDP flow */
	n = build_udp(b, &fx->client.vip4, &dst, 33333, u.port, (const uint8_t *)"ping", 4);
	input(fx, b, n);
	assert_int_equal(usrv_echo(&u), 4);
	assert_non_null(wait_pkt(fx));
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_tcp, 1);
	assert_int_equal(k.flows_udp, 1);

	/* a policy that still allows both: nothing closes, rules follow it */
	memset(&re, 0, sizeof(re));
	nev = fx->nev;
	assert_int_equal(stack_reevaluate(fx->st, reeval_cb, &re, "policy"), 0);
	assert_int_equal(re.calls, 2);
	assert_string_equal(re.clients[0], "agent-1");
	assert_int_equal(fx->nev, nev);

	/* the new policy denies the TCP destination */
	memset(&re, 0, sizeof(re));
	re.deny_port = s.port;
	assert_int_equal(stack_reevaluate(fx->st, reeval_cb, &re, "policy"), 1);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_tcp, 0);
	assert_int_equal(k.flows_udp, 1);
	assert_int_equal(fx->nev, nev + 1);
	assert_int_equal(fx->ev[nev].type, STACK_EV_CLOSE);
	assert_int_equal(fx->ev[nev].proto, STACK_PROTO_TCP);
	assert_string_equal(fx->ev[nev].reason, "policy");
	assert_string_equal(fx->ev[nev].rule, "new-deny");
	assert_int_equal(fx->ev[nev].up, 5);
	/* the client got an RST at once */
	tc_pump(fx, &c);
	assert_true(c.rst);
	/* the destination sees the connection end */
	for (int i = 0; i < 2000 && s.c && s.c->fd >= 0 && !s.eof_seen; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen || (s.c && s.c->fd < 0));
	/* the UDP flow still works */
	n = build_udp(b, &fx->client.vip4, &dst, 33333, u.port, (const uint8_t *)"two", 3);
	input(fx, b, n);
	assert_int_equal(usrv_echo(&u), 3);
	p = wait_pkt(fx);
	assert_non_null(p);
	/* the client's TCP segments now find no flow: RST again */
	c.rst = 0;
	tc_seg(fx, &c, PKT_TCP_ACK, (const uint8_t *)"more", 4);
	assert_true(run_until(fx, &c, c_rst, NULL, 2000));
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_tcp, 0);
	assert_int_equal(stack_reevaluate(NULL, reeval_cb, &re, "policy"), 0);
	assert_int_equal(stack_reevaluate(fx->st, NULL, &re, "policy"), 0);
	stack_close_client(fx->st, "agent-1");
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
	close(u.fd);
}

static void
test_udp_roundtrip_v4_and_idle(void **state)
{
	udp_roundtrip(*state, 0);
}

static void
test_udp_roundtrip_v6_and_idle(void **state)
{
	udp_roundtrip(*state, 1);
}

static void
test_c23_udp_port_unreachable_to_owner(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct pkt_info pi;
	struct qpkt *p;
	uint8_t b[PMAX];
	size_t n;
	int i;

	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "127.0.0.1");
	n = build_udp(b, &fx->client.vip4, &dst, 33334, closed_port(0),
		      (const uint8_t *)"x", 1);
	input(fx, b, n);
	/* the kernel's ICMP error comes back on the connected socket */
	for (i = 0; i < 5 && fx->qhead == fx->qtail; i++) {
		loop_once(fx);
		input(fx, b, n);
	}
	p = wait_pkt(fx);
	assert_non_null(p);
	assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
	assert_int_equal(pi.proto, STACK_PROTO_ICMP);
	assert_int_equal(pi.icmp_type, 3);
	assert_int_equal(pi.icmp_code, 3);
	assert_true(stack_addr_eq(&pi.dst, &fx->client.vip4));
}

/* ---------------------------------------------------------------- ICMP */

static void
test_icmp_echo_or_unavailable(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct stack_counters k;
	struct pkt_info pi;
	struct qpkt *p;
	uint8_t b[PMAX];
	size_t hl;
	int fd, ping_ok;

	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	ping_ok = fd >= 0;
	if (fd >= 0)
		close(fd);
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "127.0.0.1");
	hl = build_ip(b, &fx->client.vip4, &dst, STACK_PROTO_ICMP, 8 + 4);
	memset(b + hl, 0, 12);
	b[hl] = 8;
	b[hl + 4] = 0x12; /* id 0x1234 */
	b[hl + 5] = 0x34;
	b[hl + 7] = 1; /* seq 1 */
	memcpy(b + hl + 8, "abcd", 4);
	l4_csum(b + hl, 12, 2, &fx->client.vip4, &dst, STACK_PROTO_ICMP);
	input(fx, b, hl + 12);
	p = wait_pkt(fx);
	assert_non_null(p);
	assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
	assert_int_equal(pi.proto, STACK_PROTO_ICMP);
	stack_get_counters(fx->st, &k);
	if (ping_ok) {
		assert_int_equal(pi.icmp_type, 0);
		assert_int_equal(pi.icmp_id, 0x1234);
		assert_int_equal(pi.icmp_seq, 1);
		assert_memory_equal(p->b + pi.payload_off, "abcd", 4);
		assert_int_equal(k.flows_icmp, 1);
		advance(fx, fx->cfg.icmp_idle_ms + 1000);
		stack_get_counters(fx->st, &k);
		assert_int_equal(k.flows_icmp, 0);
	} else {
		print_message("ping sockets not permitted here: checking refusal\n");
		assert_int_equal(pi.icmp_type, 3);
		assert_int_equal(pi.icmp_code, 13);
		assert_int_equal(k.ping_unavailable, 1);
		assert_int_equal(k.flows_icmp, 0);
	}
}

static void
echo_roundtrip(struct fx *fx, int v6)
{
	struct stack_addr dst;
	const struct stack_addr *src = v6 ? &fx->client.vip6 : &fx->client.vip4;
	uint8_t proto = v6 ? STACK_PROTO_ICMPV6 : STACK_PROTO_ICMP;
	struct pkt_info pi;
	struct qpkt *p;
	uint8_t b[PMAX];
	size_t hl;

	if (v6)
		addr6(&dst, "::1");
	else
		addr4(&dst, "127.0.0.1");
	hl = build_ip(b, src, &dst, proto, 8 + 4);
	memset(b + hl, 0, 12);
	b[hl] = v6 ? 128 : 8;
	b[hl + 4] = 0x12; /* id 0x1234 */
	b[hl + 5] = 0x34;
	b[hl + 7] = 1; /* seq 1 */
	memcpy(b + hl + 8, "abcd", 4);
	l4_csum(b + hl, 12, 2, src, &dst, proto);
	input(fx, b, hl + 12);
	p = wait_pkt(fx);
	assert_non_null(p);
	assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
	assert_int_equal(pi.proto, proto);
	assert_int_equal(pi.icmp_type, v6 ? 129 : 0);
	assert_int_equal(pi.icmp_id, 0x1234); /* the client's id, restored */
	assert_int_equal(pi.icmp_seq, 1);
	assert_true(stack_addr_eq(&pi.src, &dst));
	assert_true(stack_addr_eq(&pi.dst, src));
	assert_memory_equal(p->b + pi.payload_off, "abcd", 4);
}

/* Runs inside a private network namespace where ping sockets are allowed
 * (started by test_icmp_echo_netns through STACK_TEST_IN_NETNS). */
static void
test_icmp_echo_netns_child(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;

	assert_int_equal(fx_start(fx, 1), 0);
	echo_roundtrip(fx, 0);
	echo_roundtrip(fx, 1);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_icmp, 2);
	advance(fx, fx->cfg.icmp_idle_ms + 1000);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_icmp, 0);
	assert_int_equal(k.ping_unavailable, 0);
}

/* ICMP echo and ICMPv6 echo through ping sockets: the same binary re-runs
 * test_icmp_echo_netns_child in a new network namespace with loopback up
 * and net.ipv4.ping_group_range opened (both per namespace). Skipped when
 * namespaces cannot be created here. */
static void
test_icmp_echo_netns(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ifreq ifr;
		int fd;
		char *argv[] = { "test_stack", NULL };

		if (unshare(CLONE_NEWNET) != 0)
			_exit(77);
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
		if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
			_exit(77);
		ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
			_exit(77);
		close(fd);
		fd = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY);
		if (fd < 0 || write(fd, "0 2147483647", 12) != 12)
			_exit(77);
		close(fd);
		setenv("STACK_TEST_IN_NETNS", "1", 1);
		execv("/proc/self/exe", argv);
		_exit(78);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---------------------------------------------------------------- budgets */

/* Issue 16.2: the descriptor budget from RLIMIT_NOFILE. */
static void
test_fd_budget(void **state)
{
	struct stack_fd_budget b;

	(void)state;
	stack_fd_budget(1024, 0, 50, &b); /* the common default limit */
	assert_int_equal(b.reserve, 128);
	assert_int_equal(b.flows, 896);
	assert_int_equal(b.per_client, 448);
	stack_fd_budget(256, 0, 50, &b); /* reserve never below 64 */
	assert_int_equal(b.reserve, 64);
	assert_int_equal(b.flows, 192);
	assert_int_equal(b.per_client, 96);
	stack_fd_budget(1048576, 0, 50, &b); /* nor above 1024 */
	assert_int_equal(b.reserve, 1024);
	assert_int_equal(b.flows, 1047552);
	stack_fd_budget(UINT64_MAX, 10, 100, &b); /* unlimited */
	assert_int_equal(b.flows, UINT32_MAX - 10);
	assert_int_equal(b.per_client, UINT32_MAX - 10);
	stack_fd_budget(50, 0, 50, &b); /* less than the reserve: no flows */
	assert_int_equal(b.flows, 0);
	assert_int_equal(b.per_client, 0);
	stack_fd_budget(1000, 900, 1, &b); /* a share never rounds to 0 */
	assert_int_equal(b.per_client, 1);
}

#define FULL (256u * 1024)
#define MIB (1024u * 1024)

/* Issue 16.3: a new flow's window comes from what the client's budget
 * has left, never below the floor. */
static void
test_wnd_initial(void **state)
{
	(void)state;
	assert_int_equal(stack_wnd_initial(32 * MIB, 0, FULL, STACK_WND_MIN, 0), FULL);
	assert_int_equal(stack_wnd_initial(32 * MIB, 32 * MIB - 100000, FULL,
					   STACK_WND_MIN, 0),
			 100000);
	assert_int_equal(stack_wnd_initial(32 * MIB, 32 * MIB - 100, FULL,
					   STACK_WND_MIN, 0),
			 STACK_WND_MIN);
	assert_int_equal(stack_wnd_initial(32 * MIB, 64 * MIB, FULL,
					   STACK_WND_MIN, 0),
			 STACK_WND_MIN);
	assert_int_equal(stack_wnd_initial(32 * MIB, 0, FULL, STACK_WND_MIN, 1),
			 STACK_WND_MIN); /* global pressure */
	assert_int_equal(stack_wnd_initial(0, 64 * MIB, FULL, STACK_WND_MIN, 0),
			 FULL); /* no budget */
	/* a client without window scaling: 64 KiB is full */
	assert_int_equal(stack_wnd_initial(32 * MIB, 0, 65535, STACK_WND_MIN, 0), 65535);
}

/* Credit after bytes moved: over budget a window shrinks toward the equal
 * share by withholding at most what moved; with room it grows back. */
static void
test_wnd_credit(void **state)
{
	uint32_t w;

	(void)state;
	/* over budget (4 flows of 256 KiB, budget 512 KiB): share 128 KiB */
	w = FULL;
	assert_int_equal(stack_wnd_credit(512 * 1024, 4 * FULL, 4, &w, 10000,
					  FULL, STACK_WND_MIN, 0),
			 0);
	assert_int_equal(w, FULL - 10000);
	w = 130 * 1024;
	assert_int_equal(stack_wnd_credit(512 * 1024, 4 * FULL, 4, &w, 10000,
					  FULL, STACK_WND_MIN, 0),
			 10000 - 2048);
	assert_int_equal(w, 128 * 1024);
	/* at its share: full credit, no growth */
	assert_int_equal(stack_wnd_credit(512 * 1024, 4 * FULL, 4, &w, 10000,
					  FULL, STACK_WND_MIN, 0),
			 10000);
	assert_int_equal(w, 128 * 1024);
	/* room again: grows by what moved, within what is left */
	w = STACK_WND_MIN;
	assert_int_equal(stack_wnd_credit(32 * MIB, 0, 1, &w, 20000, FULL,
					  STACK_WND_MIN, 0),
			 40000);
	assert_int_equal(w, STACK_WND_MIN + 20000);
	w = STACK_WND_MIN;
	assert_int_equal(stack_wnd_credit(32 * MIB, 32 * MIB - 1000, 1, &w, 20000,
					  FULL, STACK_WND_MIN, 0),
			 21000);
	/* small moves still grow by the floor */
	w = STACK_WND_MIN;
	assert_int_equal(stack_wnd_credit(32 * MIB, 0, 1, &w, 100, FULL,
					  STACK_WND_MIN, 0),
			 100 + STACK_WND_MIN);
	/* pressure: down to the floor, never below */
	w = 3 * STACK_WND_MIN;
	assert_int_equal(stack_wnd_credit(32 * MIB, 0, 1, &w, 1u << 20, FULL,
					  STACK_WND_MIN, 1),
			 (1u << 20) - 2 * STACK_WND_MIN);
	assert_int_equal(w, STACK_WND_MIN);
	assert_int_equal(stack_wnd_credit(32 * MIB, 0, 1, &w, 5, FULL,
					  STACK_WND_MIN, 1),
			 5);
	/* no budget: straight back to full */
	w = STACK_WND_MIN;
	assert_int_equal(stack_wnd_credit(0, 0, 1, &w, 5, FULL, STACK_WND_MIN, 0),
			 5 + FULL - STACK_WND_MIN);
	assert_int_equal(w, FULL);
}

/* A client opening 1,000 flows that all move data in turn: its windows
 * never sum to more than the budget plus one floor per flow, and end at
 * an equal share. */
static void
test_wnd_budget_many_flows(void **state)
{
	enum {
		N = 1000
	};
	static uint32_t w[N];
	const uint64_t budget = 32ull * MIB;
	uint64_t sum = 0;
	int i, round;

	(void)state;
	for (i = 0; i < N; i++) {
		w[i] = stack_wnd_initial(budget, sum, FULL, STACK_WND_MIN, 0);
		sum += w[i];
		assert_true(sum <= budget + (uint64_t)(i + 1) * STACK_WND_MIN);
	}
	assert_int_equal(w[0], FULL);
	assert_int_equal(w[N - 1], STACK_WND_MIN);
	for (round = 0; round < 200; round++) {
		for (i = 0; i < N; i++) {
			uint32_t old = w[i];

			(void)stack_wnd_credit(budget, sum, N, &w[i], 16384, FULL,
					       STACK_WND_MIN, 0);
			sum = sum - old + w[i];
			assert_true(sum <= budget + (uint64_t)N * STACK_WND_MIN);
		}
	}
	{
		uint32_t lo = UINT32_MAX, hi = 0;

		for (i = 0; i < N; i++) {
			lo = w[i] < lo ? w[i] : lo;
			hi = w[i] > hi ? w[i] : hi;
		}
		print_message("windows %u..%u, sum %llu\n", lo, hi, (unsigned long long)sum);
		assert_true(lo >= STACK_WND_MIN);
		assert_true(hi <= budget / N + 16384 + STACK_WND_MIN);
	}
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char p[512];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* The memory cap's default from the cgroup limit: v2 in this process's
 * cgroup or a parent (the smallest), "max" = none, v1 as a fallback. */
static void
test_cgroup_memory_limit(void **state)
{
	char root[] = "/tmp/zg-cgroup-XXXXXX", p[512], self[600];

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(self, sizeof(self), "%s/self", root);
	snprintf(p, sizeof(p), "%s/kubepods", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/kubepods/pod1", root);
	assert_int_equal(mkdir(p, 0755), 0);
	write_file(root, "self", "0::/kubepods/pod1\n");
	write_file(root, "kubepods/pod1/memory.max", "max\n");
	write_file(root, "kubepods/memory.max", "536870912\n");
	assert_int_equal(stack_cgroup_memory_limit(root, self), 536870912ull);
	write_file(root, "kubepods/pod1/memory.max", "268435456\n");
	assert_int_equal(stack_cgroup_memory_limit(root, self), 268435456ull);
	assert_int_equal(stack_memory_default(268435456ull), 134217728ull);
	write_file(root, "kubepods/pod1/memory.max", "max\n");
	write_file(root, "kubepods/memory.max", "max\n");
	assert_int_equal(stack_cgroup_memory_limit(root, self), 0);
	assert_int_equal(stack_memory_default(0), 1024ull * MIB);
	/* v1: no memory.max anywhere, memory/memory.limit_in_bytes */
	snprintf(p, sizeof(p), "%s/memory", root);
	assert_int_equal(mkdir(p, 0755), 0);
	write_file(root, "memory/memory.limit_in_bytes", "9223372036854771712\n");
	assert_int_equal(stack_cgroup_memory_limit(root, "/nonexistent"), 0);
	write_file(root, "memory/memory.limit_in_bytes", "1073741824\n");
	assert_int_equal(stack_cgroup_memory_limit(root, "/nonexistent"), 1073741824ull);
	write_file(root, "memory/memory.limit_in_bytes", "garbage\n");
	assert_int_equal(stack_cgroup_memory_limit(root, "/nonexistent"), 0);
	snprintf(p, sizeof(p), "rm -rf '%s'", root);
	assert_int_equal(system(p), 0);
}

/* ---------------------------------------------------------------- limits */

static void
test_limit_flows_per_client(void **state)
{
	struct fx *fx = *state;
	struct usrv u;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;
	int i;

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_flows_per_client = 3;
	assert_int_equal(fx_start(fx, 1), 0);
	usrv_start(&u, 0);
	addr4(&dst, "127.0.0.1");
	for (i = 0; i < 5; i++) {
		n = build_udp(b, &fx->client.vip4, &dst, (uint16_t)(20000 + i),
			      u.port, (const uint8_t *)"x", 1);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 3);
	assert_int_equal(k.drop_limit, 2);
	assert_int_equal(k.icmp_errors_sent, 2);
	assert_int_equal(fx->ev[fx->nev - 1].type, STACK_EV_LIMIT);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "limit-flows-client");
	/* another client is not affected */
	{
		struct stack_client other = fx->client;

		other.id = "agent-2";
		addr4(&other.vip4, "10.100.0.8");
		n = build_udp(b, &other.vip4, &dst, 20000, u.port,
			      (const uint8_t *)"x", 1);
		assert_int_equal(stack_input(fx->st, NULL, &other, b, n), 0);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 4);
	stack_close_client(fx->st, "agent-1");
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 1);
	close(u.fd);
}

/* A loopback port whose accept queue is full: connects to it stay in
 * progress (the kernel drops their SYNs). Returns the port; *pfd[0..1] are
 * the listener and the connection that fills its queue. */
static uint16_t
blackhole_port(int fds[2])
{
	struct sockaddr_in a;
	socklen_t sl = sizeof(a);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fds[0] >= 0);
	assert_int_equal(bind(fds[0], (struct sockaddr *)&a, sl), 0);
	assert_int_equal(listen(fds[0], 0), 0);
	assert_int_equal(getsockname(fds[0], (struct sockaddr *)&a, &sl), 0);
	fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fds[1] >= 0);
	assert_int_equal(connect(fds[1], (struct sockaddr *)&a, sl), 0);
	return ntohs(a.sin_port);
}

static void
test_limit_halfopen_per_client(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	uint16_t hole;
	size_t n;
	int i, fds[2];

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_halfopen_per_client = 2;
	assert_int_equal(fx_start(fx, 1), 0);
	/* connects stay in progress, on loopback: a destination off this
	 * machine (TEST-NET-1 was used) may be routed and answer, and test
	 * traffic never leaves the machine */
	hole = blackhole_port(fds);
	addr4(&dst, "127.0.0.1");
	for (i = 0; i < 4; i++) {
		n = build_tcp(b, &fx->client.vip4, &dst, (uint16_t)(30000 + i), hole,
			      1, 0, PKT_TCP_SYN, 1000, NULL, 0);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.tcp_unreachable, 0);
	assert_int_equal(k.halfopen_tcp, 2);
	/* the two SYNs over the limit wait: no RST, no ICMP, counted */
	assert_int_equal(fx->qtail, fx->qhead);
	assert_int_equal(k.drop_halfopen, 2);
	assert_int_equal(k.drop_limit, 0);
	assert_int_equal(k.rsts_sent, 0);
	assert_int_equal(k.flows_tcp, 2);
	/* the connect timeout (fake clock) answers ICMP host unreachable */
	advance(fx, fx->cfg.connect_timeout_ms + 500);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.halfopen_tcp, 0);
	assert_int_equal(k.flows_tcp, 0);
	assert_int_equal(k.tcp_unreachable, 2);
	{
		struct qpkt *p = q_pop(fx);
		struct pkt_info pi;

		assert_non_null(p);
		assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
		assert_int_equal(pi.icmp_type, 3);
		assert_int_equal(pi.icmp_code, 1);
	}
	close(fds[1]);
	close(fds[0]);
}

/* Issue 15.2: a SYN over the half-open limit is dropped without any
 * answer, as a full SYN queue drops it; the client's retransmission of the
 * same SYN is taken once a connect in progress ended. */
static void
test_halfopen_syn_dropped_then_retry_accepted(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct stack_counters k;
	struct srv s;
	struct tc c;
	uint8_t b[PMAX];
	uint16_t hole;
	size_t n;
	int i, fds[2];

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_halfopen_per_client = 2;
	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	hole = blackhole_port(fds);
	addr4(&dst, "127.0.0.1");
	for (i = 0; i < 2; i++) {
		n = build_tcp(b, &fx->client.vip4, &dst, (uint16_t)(30000 + i), hole,
			      1, 0, PKT_TCP_SYN, 1000, NULL, 0);
		input(fx, b, n);
	}
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	for (i = 0; i < 20; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.halfopen_tcp, 2);
	assert_int_equal(fx->qtail, fx->qhead); /* nothing answered */
	assert_int_equal(k.drop_halfopen, 1);
	assert_int_equal(k.drop_limit, 0);
	assert_int_equal(k.rsts_sent + k.icmp_errors_sent, 0);
	assert_int_equal(k.opened_tcp, 2);
	assert_int_equal(fx->ev[fx->nev - 1].type, STACK_EV_ALLOW); /* no LIMIT */
	/* a slot frees: the client gives up one connect */
	n = build_tcp(b, &fx->client.vip4, &dst, 30000, hole, 2, 0, PKT_TCP_RST,
		      0, NULL, 0);
	input(fx, b, n);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.halfopen_tcp, 1);
	/* the client's retransmission: the same SYN again */
	tc_seg(fx, &c, PKT_TCP_SYN, NULL, 0);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	assert_true(c.synack);
	assert_false(c.rst);
	assert_int_equal(c.nother, 0);
	tc_pump(fx, &c);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_halfopen, 1);
	assert_int_equal(k.opened_tcp, 3);
	tc_seg(fx, &c, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	assert_true(run_until(fx, &c, c_no_flows_but_one, NULL, 5000));
	wait_lwip_idle(fx); /* the held connect times out meanwhile */
	srv_stop(&s);
	tc_free(&c);
	close(fds[1]);
	close(fds[0]);
}

static void
test_limit_total_flows(void **state)
{
	struct fx *fx = *state;
	struct usrv u;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_flows = 1;
	assert_int_equal(fx_start(fx, 1), 0);
	usrv_start(&u, 0);
	addr4(&dst, "127.0.0.1");
	n = build_udp(b, &fx->client.vip4, &dst, 20000, u.port, (const uint8_t *)"x", 1);
	input(fx, b, n);
	n = build_udp(b, &fx->client.vip4, &dst, 20001, u.port, (const uint8_t *)"x", 1);
	input(fx, b, n);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 1);
	assert_int_equal(k.drop_limit, 1);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "limit-flows");
	close(u.fd);
}

static void
test_limit_lwip_memory(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct tc c;

	struct tc first;
	struct srv s;

	stack_config_defaults(&fx->cfg);
	/* an idle lwIP holds nothing (no timers); one established flow's pcb
	 * and timer take it over the limit */
	fx->cfg.max_lwip_bytes = 1;
	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&first, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &first);
	assert_true(run_until(fx, &first, c_synack, NULL, 5000));
	assert_true(first.synack);
	tc_pump(fx, &first);
	tc_init(&c, fx, 0, "127.0.0.1", 80);
	tc_syn(fx, &c);
	tc_pump(fx, &c);
	assert_true(c.rst);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_limit, 1);
	assert_true(k.lwip_mem_used > 0);
	assert_int_equal(k.opened_tcp, 1);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "limit-memory");
	tc_seg(fx, &first, PKT_TCP_RST | PKT_TCP_ACK, NULL, 0);
	assert_true(run_until(fx, &first, c_no_flows, NULL, 5000));
	wait_lwip_idle(fx);
	tc_free(&first);
	tc_free(&c);
	srv_stop(&s);
}

/* Out of descriptors: the new flow is refused with RST and counted; the
 * stack keeps working once descriptors are back. */
static void
test_emfile_refuses_new_flow(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct rlimit old, low;
	struct tc c;
	int spare;

	assert_int_equal(fx_start(fx, 1), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	spare = dup(0); /* find the lowest free descriptor, then cap below it */
	assert_true(spare >= 0);
	close(spare);
	low = old;
	low.rlim_cur = (rlim_t)spare;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	tc_init(&c, fx, 0, "127.0.0.1", 80);
	tc_syn(fx, &c);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	tc_pump(fx, &c);
	assert_true(c.rst);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.emfile, 1);
	assert_int_equal(k.flows_tcp, 0);
	assert_int_equal(k.halfopen_tcp, 0);
	tc_free(&c);
}

/* stack_del() with a spliced flow: the client gets a RST, the teardown
 * check proves no pcb, pbuf, heap byte or descriptor survives. */
static void
test_del_with_established_flow(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	size_t i;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	tc_transfer(fx, &c, (const uint8_t *)"abc", 3, 3, 100000);
	stack_del(fx->st);
	fx->st = NULL;
	for (i = fx->qhead; i < fx->qtail; i++) {
		struct pkt_info pi;

		assert_int_equal(pkt_parse(fx->q[i].b, fx->q[i].len, 1, &pi), 0);
		if (pi.tcp_flags & PKT_TCP_RST)
			c.rst = 1;
	}
	assert_true(c.rst);
	assert_int_equal(fx->ev[fx->nev - 1].type, STACK_EV_CLOSE);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "shutdown");
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 0);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_SEG]->used, 0);
	/* lwIP's TCP timer (process-global) frees itself on its next run,
	 * which needs a stack to drive the timers */
	{
		struct stack_callbacks cb = { cap_output, policy_cb, audit_cb,
					      fake_clock };

		assert_int_equal(stack_new(fx->base, &fx->cfg, &cb, fx, &fx->st), 0);
		advance(fx, 1000);
	}
	tc_free(&c);
	srv_stop(&s);
}

/* ---------------------------------------------------------------- timers */

/* Events added to the base: the stack's timer plus each flow's socket. */
static int
events_added(struct fx *fx)
{
	return event_base_get_num_events(fx->base, EVENT_BASE_COUNT_ADDED);
}

/* A TCP timer an earlier test left in lwIP (process-global) stops on its
 * next run once no pcb is left. */
static void
drain_lwip_timers(struct fx *fx)
{
	advance(fx, 500);
	assert_int_equal(sys_timeouts_sleeptime(), SYS_TIMEOUTS_SLEEPTIME_INFINITE);
}

/* Without flows nothing is pending: no lwIP timeout (the ND6 timer is
 * cancelled), no flow scan, no libevent timer; packets that open no flow
 * and ticks change nothing. */
static void
test_timer_idle_stack_not_armed(void **state)
{
	struct fx *fx = *state;
	struct stack_addr spoof, dst;
	uint8_t b[PMAX];
	size_t n;

	assert_int_equal(fx_start(fx, 1), 0);
	drain_lwip_timers(fx);
	assert_true(stack_expiry(fx->st) == UINT64_MAX);
	assert_int_equal(events_added(fx), 0);
	addr4(&spoof, "10.100.0.8");
	addr4(&dst, "127.0.0.1");
	n = build_udp(b, &spoof, &dst, 1, 2, (const uint8_t *)"x", 1);
	input(fx, b, n); /* dropped: spoofed */
	stack_tick(fx->st);
	advance(fx, 3600 * 1000);
	assert_true(stack_expiry(fx->st) == UINT64_MAX);
	assert_int_equal(events_added(fx), 0);
}

/* A UDP flow's idle deadline drives the timer: armed for it, moved later
 * by a scan that finds the flow active again, fired by libevent once due,
 * and disarmed when the last flow is gone. */
static void
test_timer_follows_udp_idle_deadline(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct stack_addr dst, spoof;
	struct usrv u;
	uint8_t b[PMAX];
	uint64_t t0;
	size_t n;
	int i;

	stack_config_defaults(&fx->cfg);
	fx->cfg.udp_idle_ms = 5000;
	assert_int_equal(fx_start(fx, 1), 0);
	drain_lwip_timers(fx);
	usrv_start(&u, 0);
	addr4(&dst, "127.0.0.1");
	n = build_udp(b, &fx->client.vip4, &dst, 20000, u.port,
		      (const uint8_t *)"x", 1);
	t0 = fx->now;
	input(fx, b, n);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 1);
	assert_true(stack_expiry(fx->st) == t0 + 5000);
	assert_int_equal(events_added(fx), 2); /* the flow's socket, the timer */

	/* traffic moves the flow's deadline, not the planned scan */
	fx->now = t0 + 2000;
	input(fx, b, n);
	assert_true(stack_expiry(fx->st) == t0 + 5000);
	fx->now = t0 + 4999;
	stack_tick(fx->st);
	assert_true(stack_expiry(fx->st) == t0 + 5000);
	/* the scan finds the flow active and plans the next one for its
	 * new deadline */
	fx->now = t0 + 5000;
	stack_tick(fx->st);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 1);
	assert_true(stack_expiry(fx->st) == t0 + 7000);

	/* the deadline passes while the loop is busy: the next entry point
	 * arms the timer with no delay and the event loop runs the scan */
	fx->now = t0 + 7000;
	addr4(&spoof, "10.100.0.8");
	n = build_udp(b, &spoof, &dst, 1, 2, (const uint8_t *)"x", 1);
	input(fx, b, n);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 1);
	for (i = 0; i < 3 && k.flows_udp > 0; i++) {
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		stack_get_counters(fx->st, &k);
	}
	assert_int_equal(k.flows_udp, 0);
	assert_int_equal(k.closed_idle, 1);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "idle");
	assert_true(stack_expiry(fx->st) == UINT64_MAX);
	assert_int_equal(events_added(fx), 0);
	close(u.fd);
}

/* A TCP flow: the timer follows lwIP's TCP timer while a pcb exists, and
 * is disarmed once TIME_WAIT is over and lwIP stopped that timer. */
static void
test_timer_follows_lwip_tcp_timer(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	u32_t sleep;

	assert_int_equal(fx_start(fx, 1), 0);
	drain_lwip_timers(fx);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	tc_transfer(fx, &c, (const uint8_t *)"hello", 5, 5, 100000);
	sleep = sys_timeouts_sleeptime();
	assert_true(sleep <= 250); /* TCP_TMR_INTERVAL */
	/* the flow's 2 h idle deadline is later: lwIP's timer decides */
	assert_true(stack_expiry(fx->st) == fx->now + sleep);

	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
	tc_pump(fx, &c);
	wait_lwip_idle(fx); /* TIME_WAIT ends; tcp_tmr stops */
	assert_int_equal(sys_timeouts_sleeptime(), SYS_TIMEOUTS_SLEEPTIME_INFINITE);
	assert_true(stack_expiry(fx->st) == UINT64_MAX);
	srv_stop(&s);
	assert_int_equal(events_added(fx), 0);
	tc_free(&c);
}

/* ---------------------------------------------------------------- misc */

static void
test_second_stack_refused(void **state)
{
	struct fx *fx = *state;
	struct stack *st2 = NULL;
	struct stack_callbacks cb = { cap_output, policy_cb, NULL, NULL };

	assert_int_equal(fx_start(fx, 0), 0);
	assert_int_equal(stack_new(fx->base, NULL, &cb, fx, &st2), ZG_ERR_STATE);
	assert_null(st2);
	cb.policy = NULL;
	assert_int_equal(stack_new(fx->base, NULL, &cb, fx, &st2), ZG_ERR_INVAL);
}

static void
test_pkt_rst_for_syn(void **state)
{
	struct stack_addr a, b;
	uint8_t in[PMAX], out[PMAX];
	struct pkt_info pi, po;
	size_t n;

	(void)state;
	addr4(&a, "10.0.0.1");
	addr4(&b, "10.0.0.2");
	n = build_tcp(in, &a, &b, 1111, 80, 1000, 0, PKT_TCP_SYN, 100, NULL, 0);
	assert_int_equal(pkt_parse(in, n, 1, &pi), 0);
	n = pkt_build_rst(out, sizeof(out), &pi);
	assert_int_equal(n, 40);
	assert_int_equal(pkt_parse(out, n, 1, &po), 0);
	assert_int_equal(po.tcp_flags, PKT_TCP_RST | PKT_TCP_ACK);
	assert_int_equal(po.tcp_ack, 1001);
	assert_int_equal(po.sport, 80);
	assert_int_equal(po.dport, 1111);
	/* never a RST for a RST */
	n = build_tcp(in, &a, &b, 1111, 80, 1000, 0, PKT_TCP_RST, 100, NULL, 0);
	assert_int_equal(pkt_parse(in, n, 1, &pi), 0);
	assert_int_equal(pkt_build_rst(out, sizeof(out), &pi), 0);
}

static void
test_tcp_upstream_refused_v6_gets_rst(void **state)
{
	struct fx *fx = *state;
	struct tc c;

	assert_int_equal(fx_start(fx, 1), 0);
	tc_init(&c, fx, 1, "::1", closed_port(1));
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_rst, NULL, 5000));
	assert_false(c.synack);
	wait_lwip_idle(fx);
	tc_free(&c);
}

static void
test_tcp_upstream_reset_reaches_client(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_RESET);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	/* the reset may win the race with our connect (refused: RST before
	 * any SYN-ACK) or come after the splice started (RST after it) */
	assert_true(run_until(fx, &c, c_rst, NULL, 20000));
	assert_true(c.rst);
	assert_int_equal(c.nother, 0);
	assert_true(run_until(fx, &c, c_no_flows, NULL, 1000));
	assert_string_equal(fx->ev[fx->nev - 1].reason,
			    c.synack ? "upstream-reset" : "refused");
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* The client never completes the handshake: the flow and the upstream
 * connection go after handshake_timeout_ms of the fake clock. */
static void
test_tcp_handshake_timeout(void **state)
{
	struct fx *fx = *state;
	struct srv s;
	struct tc c;
	struct stack_counters k;
	int i;

	assert_int_equal(fx_start(fx, 1), 0);
	srv_start(&s, fx->base, 0, SRV_ECHO);
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	for (i = 0; i < 2000 && fx->qtail == 0; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_int_equal(fx->qtail, 1); /* the SYN-ACK, left unanswered */
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.halfopen_tcp, 1);
	advance(fx, fx->cfg.handshake_timeout_ms + 500);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.halfopen_tcp, 0);
	assert_int_equal(k.flows_tcp, 0);
	assert_string_equal(fx->ev[fx->nev - 1].reason, "handshake-timeout");
	for (i = 0; i < 2000 && !s.eof_seen; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen || (s.c && s.c->fd < 0));
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
}

/* A client that stops acknowledging: the relay holds at most the pcb's send
 * buffer and stops reading the upstream (whose writes then block); when
 * the client resumes, every byte arrives in order. */
static void
test_tcp_backpressure_slow_client(void **state)
{
	struct fx *fx = *state;
	/* more than the kernel buffers on both loopback ends can hold */
	const size_t total = 16 * 1000 * 1000;
	uint8_t *data = malloc(total);
	struct stack_counters k;
	struct srv s;
	struct tc c;
	int i;

	assert_int_equal(fx_start(fx, 1), 0);
	fill_pattern(data, total, 5);
	srv_start(&s, fx->base, 0, SRV_SOURCE);
	s.src = data;
	s.src_len = total;
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	tc_pump(fx, &c);
	/* stall: packets pile up unacknowledged in the capture queue */
	for (i = 0; i < 300; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, i % 10 == 0 ? 1 : 0);
	}
	stack_get_counters(fx->st, &k);
	assert_true(k.bytes_down > 0);
	assert_true(k.bytes_down <= 256 * 1024);
	assert_true(s.src_off < total); /* the upstream is blocked */
	/* resume */
	assert_true(run_until(fx, &c, c_fin, NULL, 200000));
	assert_false(c.rst);
	assert_int_equal(c.rx_len, total);
	assert_memory_equal(c.rx, data, total);
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
	tc_pump(fx, &c);
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
	free(data);
}

/* A client announcing a tiny MSS: lwIP's segments are that small, and the
 * relay must queue no more of them than lwIP's segment queue holds (it
 * used to hand lwIP 64 KiB at a time, which lwIP refused, and the flow was
 * reset). Below 48 bytes the MSS is raised to 48, as Linux does. */
static void
tiny_mss(struct fx *fx, uint16_t mss, size_t want_seg)
{
	const size_t total = 300 * 1000;
	uint8_t *data = malloc(total);
	struct srv s;
	struct tc c;

	assert_int_equal(fx_start(fx, 1), 0);
	fill_pattern(data, total, 17);
	syn_mss = mss;
	source_open(fx, &s, &c, data, total);
	syn_mss = 1200;
	assert_false(c.rst);
	tc_pump(fx, &c);
	assert_non_null(fx->st->flows);
	assert_non_null(fx->st->flows->pcb);
	assert_int_equal(fx->st->flows->pcb->mss, want_seg);
	assert_true(run_until(fx, &c, c_fin, NULL, 400000));
	assert_false(c.rst);
	assert_int_equal(c.rx_len, total);
	assert_memory_equal(c.rx, data, total);
	fin_closed_clean(fx, &s, &c, data);
}

static void
test_tcp_tiny_mss_delivers(void **state)
{
	tiny_mss(*state, 64, 64);
}

static void
test_tcp_mss_below_48_raised(void **state)
{
	tiny_mss(*state, 8, 48);
}

/* A flow of a client at its memory budget (max_client_bytes) starts with a
 * receive window below full. When both sides finished cleanly, the stack
 * must end the connection toward the client with a FIN, not a RST: lwIP's
 * tcp_close() resets a pcb whose window is not full ("data not received").
 * upstream_first: the upstream sends its bytes and EOF before the client's
 * FIN; else the client's FIN comes first and the echo server closes after. */
static void
wnd_limited_close(struct fx *fx, int upstream_first)
{
	const size_t total = 60 * 1000;
	uint8_t *data = malloc(total);
	struct stack_counters k;
	struct srv s;
	struct tc c;

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_client_bytes = 2 * STACK_WND_MIN;
	assert_int_equal(fx_start(fx, 1), 0);
	fill_pattern(data, total, 13);
	srv_start(&s, fx->base, 0, upstream_first ? SRV_SOURCE : SRV_ECHO);
	if (upstream_first) {
		s.src = data;
		s.src_len = total;
	}
	tc_init(&c, fx, 0, "127.0.0.1", s.port);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 5000));
	assert_true(c.synack);
	assert_false(c.rst);
	tc_pump(fx, &c);
	stack_get_counters(fx->st, &k);
	assert_true(k.wnd_limited >= 1); /* the window started below full */

	/* data both ways, the client's limited by the small window. The
	 * SYN-ACK announced 64 KiB; this client does not retransmit what
	 * lwIP trims beyond the smaller window, so it learns the window from
	 * the ACK of a first short segment. */
	tc_transfer(fx, &c, data, 1000, upstream_first ? 0 : 1000, 100000);
	assert_true(c.peer_wnd <= fx->cfg.max_client_bytes);
	tc_transfer(fx, &c, data + 1000, total - 1000, total, 2000000);
	assert_int_equal(c.rx_len, total);
	assert_memory_equal(c.rx, data, total);
	if (upstream_first) {
		/* the upstream's EOF reaches the client first */
		assert_true(run_until(fx, &c, c_fin, NULL, 20000));
		assert_true(c.fin);
		assert_false(c.rst);
		for (int i = 0; i < 2000 && s.received < total; i++) {
			loop_once(fx);
			(void)poll(NULL, 0, 1);
		}
		assert_int_equal(s.received, total);
	}
	/* the window is still below full when the close begins: what makes
	 * lwIP's tcp_close() reset the connection */
	assert_non_null(fx->st->flows);
	assert_non_null(fx->st->flows->pcb);
	assert_true(fx->st->flows->pcb->rcv_wnd <
		    TCP_WND_MAX(fx->st->flows->pcb));
	tc_seg(fx, &c, PKT_TCP_FIN | PKT_TCP_ACK, NULL, 0);
	c.snd_nxt++;
	if (!upstream_first) {
		/* the echo server closes after the client's FIN */
		assert_true(run_until(fx, &c, c_fin, NULL, 20000));
		assert_false(c.rst);
		assert_true(c.fin);
	}
	assert_true(run_until(fx, &c, c_no_flows, NULL, 20000));
	for (int i = 0; i < 2000 && !s.eof_seen; i++) {
		loop_once(fx);
		(void)poll(NULL, 0, 1);
	}
	assert_true(s.eof_seen);
	/* whatever lwIP still sends (ACK of the client's FIN, TIME_WAIT) is
	 * no reset */
	tc_pump(fx, &c);
	advance(fx, 1000);
	tc_pump(fx, &c);
	assert_false(c.rst);
	assert_true(c.fin);
	assert_int_equal(c.snd_una, c.snd_nxt); /* the client's FIN acked */
	assert_string_equal(fx->ev[fx->nev - 1].reason, "closed");
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.bytes_up, total);
	assert_int_equal(k.bytes_down, total);
	wait_lwip_idle(fx);
	tc_free(&c);
	srv_stop(&s);
	free(data);
}

static void
test_wnd_limited_flow_closes_with_fin(void **state)
{
	wnd_limited_close(*state, 0);
}

static void
test_wnd_limited_flow_upstream_closes_first_with_fin(void **state)
{
	wnd_limited_close(*state, 1);
}

static void
test_c20_linklocal_multicast_echo_answered_locally(void **state)
{
	struct fx *fx = *state;
	struct stack_addr dst;
	struct stack_counters k;
	struct pkt_info pi;
	uint8_t b[PMAX];
	size_t hl;

	assert_int_equal(fx_start(fx, 0), 0);
	addr6(&dst, "ff02::1");
	hl = build_ip(b, &fx->client.vip6, &dst, STACK_PROTO_ICMPV6, 8 + 4);
	memset(b + hl, 0, 12);
	b[hl] = 128;
	b[hl + 5] = 7; /* id 7 */
	b[hl + 7] = 9; /* seq 9 */
	memcpy(b + hl + 8, "mtu!", 4);
	l4_csum(b + hl, 12, 2, &fx->client.vip6, &dst, STACK_PROTO_ICMPV6);
	input(fx, b, hl + 12);
	assert_int_equal(fx->qtail, 1);
	assert_int_equal(pkt_parse(fx->q[0].b, fx->q[0].len, 1, &pi), 0);
	assert_int_equal(pi.icmp_type, 129);
	assert_int_equal(pi.icmp_id, 7);
	assert_int_equal(pi.icmp_seq, 9);
	assert_true(stack_addr_eq(&pi.dst, &fx->client.vip6));
	assert_int_equal(pi.src.a[0], 0xfe); /* from a link-local address */
	assert_memory_equal(fx->q[0].b + pi.payload_off, "mtu!", 4);
	assert_int_equal(fx->policy_calls, 0);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.echo_local, 1);
	assert_int_equal(k.flows_icmp, 0);
}

static void
test_own_address_is_forbidden(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;

	assert_int_equal(fx_start(fx, 1), 0);
	n = build_udp(b, &fx->client.vip4, &fx->client.vip4, 1, 2,
		      (const uint8_t *)"x", 1);
	input(fx, b, n);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_forbidden, 1);
	assert_int_equal(fx->policy_calls, 0);
}

/* ---------------------------------------------------------------- 16.6 */

static int
forbidden_str(struct fx *fx, const char *s)
{
	struct stack_addr a;

	if (strchr(s, ':'))
		addr6(&a, s);
	else
		addr4(&a, s);
	return stack_dst_forbidden(fx->st, &a);
}

/* Issue 16.6: the cloud metadata addresses outside link-local, IPv4
 * embedded in IPv6 (NAT64 with a forbidden IPv4 inside, IPv4-compatible,
 * IPv4-mapped), configured extra prefixes and the relay's own addresses
 * are never reachable; their neighbours are. */
static void
test_i16_6_new_never_reachable_ranges(void **state)
{
	struct fx *fx = *state;
	struct stack_prefix extra[2];
	struct stack_addr own[2];
	static const char *bad[] = {
		"100.100.100.200",    /* Alibaba Cloud metadata */
		"fd00:ec2::254",      /* AWS metadata over IPv6 */
		"64:ff9b::7f00:1",    /* NAT64 of 127.0.0.1 */
		"64:ff9b::a9fe:a9fe", /* NAT64 of 169.254.169.254 */
		"64:ff9b::6464:64c8", /* NAT64 of 100.100.100.200 */
		"64:ff9b::e000:1",    /* NAT64 of 224.0.0.1 */
		"64:ff9b::a60:1",     /* NAT64 of 10.96.0.1 (configured) */
		"64:ff9b::c612:1",    /* NAT64 of 198.18.0.1 (own address) */
		"::a9fe:a9fe",        /* IPv4-compatible 169.254.169.254 */
		"::808:808",          /* IPv4-compatible, any: deprecated */
		"::ffff:808:808",     /* IPv4-mapped, any */
		"::ffff:7f00:1",
		"10.96.0.1", "10.111.255.255", /* configured 10.96.0.0/12 */
		"fd12:3456::1",                /* configured fd12:3456::/32 */
		"198.18.0.1", "2001:db8:5::1", /* the relay's own */
	};
	static const char *good[] = {
		"100.100.100.199",
		"100.100.100.201",
		"100.100.101.200",
		"fd00:ec2::253",
		"fd00:ec2::255",
		"fd00:ec3::254",
		"64:ff9b::808:808",  /* NAT64 of 8.8.8.8 */
		"64:ff9b::c612:2",   /* NAT64 of 198.18.0.2 */
		"64:ff9b:1::7f00:1", /* not the /96 well-known prefix */
		"1::a9fe:a9fe",
		"::1:0:0:0:1",
		"10.95.255.255",
		"10.112.0.0",
		"fd12:3457::1",
		"198.18.0.2",
		"2001:db8:5::2",
		"8.8.8.8",
		"2001:db8::1",
	};
	size_t i;

	addr4(&extra[0].addr, "10.96.0.0");
	extra[0].len = 12;
	addr6(&extra[1].addr, "fd12:3456::");
	extra[1].len = 32;
	stack_config_defaults(&fx->cfg);
	fx->cfg.forbidden = extra;
	fx->cfg.n_forbidden = 2;
	assert_int_equal(fx_start(fx, 0), 0);
	addr4(&own[0], "198.18.0.1");
	addr6(&own[1], "2001:db8:5::1");
	assert_int_equal(stack_set_local_addresses(fx->st, own, 2), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (!forbidden_str(fx, bad[i]))
			fail_msg("%s is reachable", bad[i]);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (forbidden_str(fx, good[i]))
			fail_msg("%s is refused", good[i]);
	}
}

/* The same through stack_input with a policy that allows everything:
 * refused before the policy is asked, ICMP prohibited, audited. */
static void
test_i16_6_new_ranges_refused_and_audited(void **state)
{
	struct fx *fx = *state;
	static const char *bad6[] = { "fd00:ec2::254", "64:ff9b::a9fe:a9fe",
				      "::a9fe:a9fe" };
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n, i;

	assert_int_equal(fx_start(fx, 0), 0);
	addr4(&dst, "100.100.100.200");
	n = build_tcp(b, &fx->client.vip4, &dst, 1234, 80, 1, 0, PKT_TCP_SYN,
		      1000, NULL, 0);
	input(fx, b, n);
	for (i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
		addr6(&dst, bad6[i]);
		n = build_udp(b, &fx->client.vip6, &dst, 1234, 80,
			      (const uint8_t *)"x", 1);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_forbidden, 4);
	assert_int_equal(fx->policy_calls, 0);
	assert_int_equal(fx->qtail, 4);
	expect_admin_prohibited(&fx->q[0], 0);
	expect_admin_prohibited(&fx->q[3], 1);
	assert_int_equal(fx->nev, 4);
	for (i = 0; i < 4; i++) {
		assert_int_equal(fx->ev[i].type, STACK_EV_DENY);
		assert_string_equal(fx->ev[i].reason, "forbidden-destination");
	}
}

/* The relay's own addresses are replaced, not added to, on each call; the
 * table is bounded. */
static void
test_i16_6_local_addresses_refresh(void **state)
{
	struct fx *fx = *state;
	struct stack_addr a[STACK_MAX_LOCAL + 1];
	size_t i;

	assert_int_equal(fx_start(fx, 0), 0);
	assert_false(forbidden_str(fx, "198.18.0.99"));
	addr4(&a[0], "198.18.0.99");
	assert_int_equal(stack_set_local_addresses(fx->st, a, 1), 0);
	assert_true(forbidden_str(fx, "198.18.0.99"));
	addr4(&a[0], "198.18.0.98"); /* the address moved */
	assert_int_equal(stack_set_local_addresses(fx->st, a, 1), 0);
	assert_false(forbidden_str(fx, "198.18.0.99"));
	assert_true(forbidden_str(fx, "198.18.0.98"));
	for (i = 0; i <= STACK_MAX_LOCAL; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].version = 4;
		a[i].a[0] = 203;
		a[i].a[3] = (uint8_t)i;
	}
	assert_int_equal(stack_set_local_addresses(fx->st, a, STACK_MAX_LOCAL + 1),
			 ZG_ERR_LIMIT);
	assert_true(forbidden_str(fx, "203.0.0.0"));
	assert_false(forbidden_str(fx, "198.18.0.98"));
	assert_int_equal(stack_set_local_addresses(fx->st, NULL, 0), 0);
	assert_false(forbidden_str(fx, "203.0.0.0"));
	assert_int_equal(stack_set_local_addresses(fx->st, NULL, 1), ZG_ERR_INVAL);
}

/* ---------------------------------------------------------------- 16.7 */

/* Issue 16.7: one client's flood of denied SYNs uses up its own allowance
 * of RSTs, not another client's: the other still gets its refusal at
 * once. */
static void
test_i16_7_refusals_fair_per_client(void **state)
{
	struct fx *fx = *state;
	struct stack_client other;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;
	int i;

	fx->deny = 1;
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "198.51.100.1");
	for (i = 0; i < 3000; i++) {
		n = build_tcp(b, &fx->client.vip4, &dst, (uint16_t)(1024 + i), 22,
			      1, 0, PKT_TCP_SYN, 1000, NULL, 0);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.rsts_sent, 20); /* the per-client burst */
	assert_int_equal(k.errors_ratelimited, 2980);
	other = fx->client;
	other.id = "agent-2";
	addr4(&other.vip4, "10.100.0.8");
	n = build_tcp(b, &other.vip4, &dst, 4000, 22, 1, 0, PKT_TCP_SYN, 1000,
		      NULL, 0);
	assert_int_equal(stack_input(fx->st, NULL, &other, b, n), 0);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.rsts_sent, 21);
	assert_int_equal(fx->q[20].b[16], 10); /* to 10.100.0.8 */
	assert_int_equal(fx->q[20].b[19], 8);
	/* a second later the flooder has 20 more, no more */
	fx->now += 1000;
	for (i = 0; i < 100; i++) {
		n = build_tcp(b, &fx->client.vip4, &dst, (uint16_t)(5000 + i), 22,
			      1, 0, PKT_TCP_SYN, 1000, NULL, 0);
		input(fx, b, n);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.rsts_sent, 41);
}

/* Many clients together stay under the global cap. */
static void
test_i16_7_refusals_global_cap(void **state)
{
	struct fx *fx = *state;
	struct stack_client c;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;
	int i, j;

	fx->deny = 1;
	stack_config_defaults(&fx->cfg);
	fx->cfg.icmp_errors_per_client_per_s = 5;
	fx->cfg.icmp_errors_per_client_burst = 5;
	fx->cfg.icmp_errors_per_s = 30;
	fx->cfg.icmp_errors_burst = 30;
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "198.51.100.1");
	c = fx->client;
	for (j = 0; j < 20; j++) {
		addr4(&c.vip4, "10.100.0.0");
		c.vip4.a[3] = (uint8_t)(10 + j);
		for (i = 0; i < 10; i++) {
			n = build_udp(b, &c.vip4, &dst, (uint16_t)(1024 + i), 53,
				      (const uint8_t *)"q", 1);
			assert_int_equal(stack_input(fx->st, NULL, &c, b, n), 0);
		}
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.icmp_errors_sent, 30); /* 6 clients' worth */
	assert_int_equal(k.errors_ratelimited, 170);
}

/* Clients that share an address but not a scope (the connector's agents
 * of two relays) each have their own allowance; one scope's is shared by
 * its packets whatever else changes. */
static void
test_refusals_per_scope(void **state)
{
	struct fx *fx = *state;
	struct stack_client c;
	struct stack_addr dst;
	struct stack_counters k;
	uint8_t b[PMAX];
	size_t n;
	int i;

	fx->deny = 1;
	stack_config_defaults(&fx->cfg);
	fx->cfg.icmp_errors_per_client_per_s = 5;
	fx->cfg.icmp_errors_per_client_burst = 5;
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "198.51.100.1");
	c = fx->client;
	c.scope = 1;
	for (i = 0; i < 10; i++) {
		n = build_udp(b, &c.vip4, &dst, (uint16_t)(1024 + i), 53, (const uint8_t *)"q", 1);
		assert_int_equal(stack_input(fx->st, NULL, &c, b, n), 0);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.icmp_errors_sent, 5);
	assert_int_equal(k.errors_ratelimited, 5);
	c.scope = 2; /* the same address through another link */
	for (i = 0; i < 10; i++) {
		n = build_udp(b, &c.vip4, &dst, (uint16_t)(2024 + i), 53, (const uint8_t *)"q", 1);
		assert_int_equal(stack_input(fx->st, NULL, &c, b, n), 0);
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.icmp_errors_sent, 10);
	assert_int_equal(k.errors_ratelimited, 10);
	c.scope = 1; /* still empty */
	n = build_udp(b, &c.vip4, &dst, 3000, 53, (const uint8_t *)"q", 1);
	assert_int_equal(stack_input(fx->st, NULL, &c, b, n), 0);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.icmp_errors_sent, 10);
	assert_int_equal(k.errors_ratelimited, 11);
}

/* Limit audit events: a client that keeps hitting a limit gets at most
 * its own share; another client's limit event is still reported. */
static void
test_i16_7_limit_audits_fair_per_client(void **state)
{
	struct fx *fx = *state;
	struct stack_client other;
	struct stack_addr dst;
	uint8_t b[PMAX];
	size_t n;
	int i, mine = 0, theirs = 0;

	stack_config_defaults(&fx->cfg);
	fx->cfg.max_flows_per_client = 0; /* every new flow hits the limit */
	assert_int_equal(fx_start(fx, 1), 0);
	addr4(&dst, "198.51.100.1");
	for (i = 0; i < 1000; i++) {
		n = build_udp(b, &fx->client.vip4, &dst, (uint16_t)(1024 + i), 53,
			      (const uint8_t *)"q", 1);
		input(fx, b, n);
	}
	other = fx->client;
	other.id = "agent-2";
	addr4(&other.vip4, "10.100.0.8");
	n = build_udp(b, &other.vip4, &dst, 1024, 53, (const uint8_t *)"q", 1);
	assert_int_equal(stack_input(fx->st, NULL, &other, b, n), 0);
	for (i = 0; i < fx->nev; i++) {
		assert_int_equal(fx->ev[i].type, STACK_EV_LIMIT);
		if (strcmp(fx->ev[i].client, "agent-1") == 0)
			mine++;
		else if (strcmp(fx->ev[i].client, "agent-2") == 0)
			theirs++;
	}
	assert_int_equal(mine, 5);
	assert_int_equal(theirs, 1);
}

/* ---------------------------------------------------------------- services */

/* An echo service: answers every request upper-cased, at once. */
static void
svc_echo(void *ctx, const struct stack_flow_info *fi, uint64_t conn, const uint8_t *msg,
	 size_t len)
{
	struct fx *fx = ctx;
	uint8_t b[256];

	assert_true(len < sizeof(b));
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(msg[i] >= 'a' && msg[i] <= 'z' ? msg[i] - 32 : msg[i]);
	fx->policy_calls += 1000; /* counted apart from the policy's calls */
	assert_string_equal(fi->client_id, "agent-1");
	assert_ptr_equal(fi->session, fx);
	assert_int_equal(fi->dport, 53);
	assert_int_equal(stack_service_reply(fx->st, fi, conn, b, len), 0);
}

/* C18-style: UDP and TCP to the gateway's port 53 reach the service, not
 * the policy, with no host socket; other ports of the gateway stay
 * refused as part of the pool. */
static void
test_service_udp_tcp(void **state)
{
	struct fx *fx = *state;
	struct stack_prefix pool;
	struct stack_addr gw[2];
	struct stack_counters k;
	struct pkt_info pi;
	struct qpkt *p;
	struct tc c;
	uint8_t b[PMAX];
	size_t n;

	addr4(&pool.addr, "10.100.0.0");
	pool.len = 24;
	fx->cfg.mtu = 0;
	stack_config_defaults(&fx->cfg);
	fx->cfg.forbidden = &pool;
	fx->cfg.n_forbidden = 1;
	assert_int_equal(fx_start(fx, 0), 0);
	addr4(&gw[0], "10.100.0.1");
	addr6(&gw[1], "fd00:100::1");
	assert_int_equal(stack_service_set(fx->st, gw, 2, 53, svc_echo, fx), 0);

	/* UDP v4 */
	n = build_udp(b, &fx->client.vip4, &gw[0], 5353, 53, (const uint8_t *)"query", 5);
	input(fx, b, n);
	p = q_pop(fx);
	assert_non_null(p);
	assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
	assert_true(stack_addr_eq(&pi.src, &gw[0]));
	assert_true(stack_addr_eq(&pi.dst, &fx->client.vip4));
	assert_int_equal(pi.sport, 53);
	assert_int_equal(pi.dport, 5353);
	assert_int_equal(pi.payload_len, 5);
	assert_memory_equal(p->b + pi.payload_off, "QUERY", 5);
	assert_int_equal(fx->policy_calls, 1000);
	/* UDP v6 */
	n = build_udp(b, &fx->client.vip6, &gw[1], 5353, 53, (const uint8_t *)"v6", 2);
	input(fx, b, n);
	p = q_pop(fx);
	assert_non_null(p);
	assert_int_equal(pkt_parse(p->b, p->len, 1, &pi), 0);
	assert_memory_equal(p->b + pi.payload_off, "V6", 2);
	/* another port of the gateway: the pool, refused */
	n = build_udp(b, &fx->client.vip4, &gw[0], 5353, 54, (const uint8_t *)"x", 1);
	input(fx, b, n);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.drop_forbidden, 1);
	assert_int_equal(k.svc_udp, 2);
	while (q_pop(fx) != NULL)
		;

	/* TCP: two framed requests in one segment, one split over two */
	tc_init(&c, fx, 0, "10.100.0.1", 53);
	tc_syn(fx, &c);
	assert_true(run_until(fx, &c, c_synack, NULL, 200));
	assert_true(c.synack);
	tc_seg(fx, &c, PKT_TCP_ACK | PKT_TCP_PSH, (const uint8_t *)"\0\3abc\0\2de\0", 10);
	c.snd_nxt += 10;
	tc_seg(fx, &c, PKT_TCP_ACK | PKT_TCP_PSH, (const uint8_t *)"\4fghi", 5);
	c.snd_nxt += 5;
	for (int i = 0; i < 100 && c.rx_len < 15; i++) {
		tc_pump(fx, &c);
		advance(fx, 10);
	}
	assert_int_equal(c.rx_len, 15);
	assert_memory_equal(c.rx, "\0\3ABC\0\2DE\0\4FGHI", 15);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.svc_tcp_msgs, 3);
	assert_int_equal(k.svc_tcp_conns, 1);
	assert_int_equal(k.flows_tcp, 0);
	/* idle: closed by the service (FIN) */
	advance(fx, STACK_SVC_TCP_IDLE_MS + 3000);
	tc_pump(fx, &c);
	assert_true(c.fin);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.svc_tcp_conns, 0);
	tc_seg(fx, &c, PKT_TCP_ACK | PKT_TCP_FIN, NULL, 0);
	c.snd_nxt++;
	advance(fx, 2 * 10000 + 1000); /* TIME_WAIT ends, lwIP's TCP timer stops */
	tc_free(&c);
	/* a reply to a connection that is gone */
	assert_int_equal(stack_service_reply(fx->st, &fx->last_policy, 12345, b, 1), ZG_ERR_NOTFOUND);
}

/* A service answering each request with SVC_BIG bytes; the replies'
 * results are counted. */
#define SVC_BIG 4000
static int svc_big_ok, svc_big_limit;

static void
svc_big(void *ctx, const struct stack_flow_info *fi, uint64_t conn, const uint8_t *msg,
	size_t len)
{
	struct fx *fx = ctx;
	static uint8_t b[SVC_BIG];
	int r;

	(void)msg;
	(void)len;
	memset(b, 'A', sizeof(b));
	r = stack_service_reply(fx->st, fi, conn, b, sizeof(b));
	if (r == 0)
		svc_big_ok++;
	else if (r == ZG_ERR_LIMIT)
		svc_big_limit++;
	else
		fail_msg("reply: %d", r);
}

/* The service on 10.100.0.1:53 with fn; client c connected to it. */
static void
svc_connect(struct fx *fx, stack_service_fn fn, struct tc *c)
{
	static struct stack_prefix pool;
	struct stack_addr gw;

	addr4(&pool.addr, "10.100.0.0");
	pool.len = 24;
	stack_config_defaults(&fx->cfg);
	fx->cfg.forbidden = &pool;
	fx->cfg.n_forbidden = 1;
	assert_int_equal(fx_start(fx, 0), 0);
	addr4(&gw, "10.100.0.1");
	assert_int_equal(stack_service_set(fx->st, &gw, 1, 53, fn, fx), 0);
	svc_big_ok = svc_big_limit = 0;
	tc_init(c, fx, 0, "10.100.0.1", 53);
	tc_syn(fx, c);
	assert_true(run_until(fx, c, c_synack, NULL, 200));
	assert_true(c->synack);
}

/* n framed one-byte requests from c, in segments of up to 1000 bytes */
static void
svc_requests(struct fx *fx, struct tc *c, int n)
{
	uint8_t b[1002];

	while (n > 0) {
		size_t k = 0;

		for (; n > 0 && k + 3 <= 1000; n--, k += 3) {
			b[k] = 0;
			b[k + 1] = 1;
			b[k + 2] = 'q';
		}
		tc_seg(fx, c, PKT_TCP_ACK | PKT_TCP_PSH, b, k);
		c->snd_nxt += (uint32_t)k;
		tc_pump(fx, c);
	}
}

/* A client that asks and does not read: once an answer no longer fits, its
 * connection is reset (it used to lose the answer in silence, and the
 * client waited for it until its own timeout), and nothing stays in lwIP. */
static void
test_service_tcp_answers_not_taken(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct tc c;

	svc_connect(fx, svc_big, &c);
	c.zero_wnd = 1;
	tc_pump(fx, &c);
	svc_requests(fx, &c, 100); /* 400 KB of answers for a 256 KiB buffer */
	for (int i = 0; i < 20; i++) {
		loop_once(fx);
		tc_pump(fx, &c);
	}
	assert_true(svc_big_ok > 0);
	assert_int_equal(svc_big_limit, 1); /* the first that did not fit */
	assert_true(c.rst);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.svc_tcp_conns, 0);
	assert_int_equal(k.svc_tcp_reset, 1);
	assert_int_equal(lwip_stats.memp[MEMP_TCP_PCB]->used, 0);
	/* the reset came at once, from inside lwIP's delivery */
	assert_true(svc_big_ok + svc_big_limit < 100);
	tc_free(&c);
	assert_int_equal(stack_service_set(fx->st, NULL, 0, 0, NULL, NULL), 0);
	wait_lwip_idle(fx);
}

/* A service that answers later (as the DNS service does after its
 * upstream): keeps the request's flow. */
static struct stack_flow_info svc_kept;
static uint64_t svc_kept_conn;

static void
svc_defer(void *ctx, const struct stack_flow_info *fi, uint64_t conn, const uint8_t *msg,
	  size_t len)
{
	(void)ctx;
	(void)msg;
	(void)len;
	svc_kept = *fi;
	svc_kept_conn = conn;
}

/* The same with answers given outside lwIP's delivery: reset at once. */
static void
test_service_tcp_later_answer_not_taken(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	static uint8_t b[SVC_BIG];
	struct tc c;
	int i, r = 0;

	svc_connect(fx, svc_defer, &c);
	c.zero_wnd = 1;
	svc_requests(fx, &c, 1);
	assert_true(svc_kept_conn != 0);
	for (i = 0; i < 100; i++) {
		r = stack_service_reply(fx->st, &svc_kept, svc_kept_conn, b, sizeof(b));
		if (r != 0)
			break;
	}
	assert_int_equal(r, ZG_ERR_LIMIT);
	assert_true(i > 10);
	tc_pump(fx, &c);
	assert_true(c.rst);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.svc_tcp_conns, 0);
	assert_int_equal(k.svc_tcp_reset, 1);
	assert_int_equal(stack_service_reply(fx->st, &svc_kept, svc_kept_conn, b, 1),
			 ZG_ERR_NOTFOUND);
	tc_free(&c);
	assert_int_equal(stack_service_set(fx->st, NULL, 0, 0, NULL, NULL), 0);
	wait_lwip_idle(fx);
}

/* The client's FIN after its requests: the answers are still delivered,
 * then the service's FIN, if it reads them (reopen); if it never does, the
 * connection is reset after STACK_SVC_TCP_IDLE_MS. The connection used to
 * be closed at the FIN and lwIP kept the answers for it, outside the
 * per-client cap, for as long as it answered window probes. */
static void
svc_fin_before_answers_read(struct fx *fx, int reopen)
{
	struct stack_counters k;
	struct tc c;

	svc_connect(fx, svc_big, &c);
	c.zero_wnd = 1;
	tc_pump(fx, &c);
	svc_requests(fx, &c, 5);
	tc_seg(fx, &c, PKT_TCP_ACK | PKT_TCP_FIN, NULL, 0);
	c.snd_nxt++;
	for (int i = 0; i < 12; i++) { /* 6 s of window probes */
		advance(fx, 500);
		loop_once(fx);
		tc_pump(fx, &c);
	}
	assert_int_equal(svc_big_ok, 5);
	assert_false(c.rst);
	assert_int_equal(c.snd_una, c.snd_nxt);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.svc_tcp_conns, 1); /* still the client's */
	if (reopen) {
		c.zero_wnd = 0;
		tc_seg(fx, &c, PKT_TCP_ACK, NULL, 0);
		assert_true(run_until(fx, &c, c_fin, NULL, 2000));
		assert_false(c.rst);
		assert_int_equal(c.rx_len, 5 * (2 + SVC_BIG));
		tc_pump(fx, &c);
		stack_get_counters(fx->st, &k);
		assert_int_equal(k.svc_tcp_reset, 0);
	} else {
		advance(fx, STACK_SVC_TCP_IDLE_MS);
		tc_pump(fx, &c);
		assert_true(c.rst);
		assert_int_equal(c.rx_len, 0);
		stack_get_counters(fx->st, &k);
		assert_int_equal(k.svc_tcp_reset, 1);
	}
	assert_int_equal(k.svc_tcp_conns, 0);
	tc_free(&c);
	assert_int_equal(stack_service_set(fx->st, NULL, 0, 0, NULL, NULL), 0);
	wait_lwip_idle(fx);
}

static void
test_service_tcp_fin_answers_delivered(void **state)
{
	svc_fin_before_answers_read(*state, 1);
}

static void
test_service_tcp_fin_answers_never_read(void **state)
{
	svc_fin_before_answers_read(*state, 0);
}

/* The pcb index on its own, with pcbs made up: many more than its first
 * table (it grows), IPv4 and IPv6 tuples that differ in one field only,
 * removal in another order than insertion. */
static void
test_pcbhash_many(void **state)
{
	const size_t n = 6000;
	struct tcp_pcb *p = calloc(n, sizeof(*p));
	uint8_t key[16] = { 1, 2, 3 };
	ip_addr_t other;

	(void)state;
	assert_non_null(p);
	assert_int_equal(stack_pcbhash_init(key), 0);
	for (size_t i = 0; i < n; i++) {
		if (i % 2 == 0) {
			IP_ADDR4(&p[i].local_ip, 198, 18, 0, 1);
			IP_ADDR4(&p[i].remote_ip, 10, 100, 0, (u8_t)(i % 7));
		} else {
			IP_ADDR6(&p[i].local_ip, 0x20010db8, 0, 0, 1);
			IP_ADDR6(&p[i].remote_ip, 0xfd000000, 0, 0, (u32_t)(i % 7));
		}
		p[i].local_port = (u16_t)(443 + i % 3);
		p[i].remote_port = (u16_t)(10000 + i / 3);
		stack_pcb_add(&p[i]);
	}
	assert_int_equal(stack_pcbhash_count(), n);
	for (size_t i = 0; i < n; i++)
		assert_ptr_equal(stack_pcb_find(&p[i].local_ip, p[i].local_port, &p[i].remote_ip,
						p[i].remote_port),
				 &p[i]);
	/* one field off: not found */
	assert_null(stack_pcb_find(&p[0].local_ip, p[0].local_port, &p[0].remote_ip,
				   (u16_t)(p[0].remote_port + 60000)));
	IP_ADDR4(&other, 10, 100, 0, 99);
	assert_null(stack_pcb_find(&p[0].local_ip, p[0].local_port, &other, p[0].remote_port));
	/* every third, from the end */
	for (size_t i = n; i-- > 0;)
		if (i % 3 == 0)
			stack_pcb_del(&p[i]);
	assert_int_equal(stack_pcbhash_count(), n - n / 3);
	for (size_t i = 0; i < n; i++)
		assert_ptr_equal(stack_pcb_find(&p[i].local_ip, p[i].local_port, &p[i].remote_ip,
						p[i].remote_port),
				 i % 3 == 0 ? NULL : &p[i]);
	stack_pcb_del(&p[0]); /* not indexed any more: no change */
	assert_int_equal(stack_pcbhash_count(), n - n / 3);
	for (size_t i = 0; i < n; i++)
		if (i % 3 != 0)
			stack_pcb_del(&p[i]);
	assert_int_equal(stack_pcbhash_count(), 0);
	stack_pcbhash_free();
	free(p);
}

/* Client datagrams wait for the end of the loop turn, then go out in
 * order, two flows' interleaved ones each in their own order; a flow freed
 * meanwhile takes its queued ones with it; bytes are counted as sent. */
static void
test_udp_batched_per_turn(void **state)
{
	struct fx *fx = *state;
	struct stack_counters k;
	struct stack_addr dst;
	struct usrv u;
	uint8_t b[PMAX], r[64];
	size_t n;
	int i;

	assert_int_equal(fx_start(fx, 1), 0);
	usrv_start(&u, 0);
	addr4(&dst, "127.0.0.1");
	for (i = 0; i < 40; i++) { /* flows from ports 20000 and 20001 */
		uint8_t d[2] = { (uint8_t)(i % 2), (uint8_t)i };

		n = build_udp(b, &fx->client.vip4, &dst, (uint16_t)(20000 + i % 2), u.port, d, 2);
		assert_int_equal(stack_input(fx->st, fx, &fx->client, b, n), 0);
	}
	assert_int_equal(fx->st->udpq.n, 40);
	assert_true(recv(u.fd, r, sizeof(r), MSG_DONTWAIT) < 0); /* nothing yet */
	loop_once(fx);                                           /* the turn ends */
	assert_int_equal(fx->st->udpq.n, 0);
	for (int last[2] = { -1, -1 }, got = 0; got < 40; got++) {
		ssize_t m = -1;

		for (int t = 0; t < 1000 && m < 0; t++) {
			m = recv(u.fd, r, sizeof(r), MSG_DONTWAIT);
			if (m < 0)
				(void)poll(NULL, 0, 1);
		}
		assert_int_equal(m, 2);
		assert_true(r[1] > last[r[0]]); /* each flow in its order */
		last[r[0]] = r[1];
	}
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.bytes_up, 80);
	/* queued, then the client gone: its flows and their datagrams */
	n = build_udp(b, &fx->client.vip4, &dst, 20000, u.port, (const uint8_t *)"zz", 2);
	assert_int_equal(stack_input(fx->st, fx, &fx->client, b, n), 0);
	assert_int_equal(fx->st->udpq.n, 1);
	stack_close_client(fx->st, fx->client.id);
	assert_int_equal(fx->st->udpq.n, 0);
	assert_int_equal(fx->st->udpq.used, 0); /* its bytes gone too */
	loop_once(fx);
	(void)poll(NULL, 0, 20);
	assert_true(recv(u.fd, r, sizeof(r), MSG_DONTWAIT) < 0);
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.bytes_up, 80);
	/* more than the queue holds in one turn (64 datagrams, 128 KiB):
	 * what is queued goes first, every datagram intact and in order
	 * (read as they come: the server's socket buffer is small) */
	{
		static uint8_t d[1200], got[1500];
		int next = 0;

		for (i = 0; i < 150; i++) {
			memset(d, (uint8_t)i, sizeof(d));
			n = build_udp(b, &fx->client.vip4, &dst, 20002, u.port, d, sizeof(d));
			assert_int_equal(stack_input(fx->st, fx, &fx->client, b, n), 0);
			if (i == 63)
				assert_int_equal(fx->st->udpq.n, 64);
			if (i == 64)
				assert_int_equal(fx->st->udpq.n, 1); /* 64 went first */
			for (ssize_t m; (m = recv(u.fd, got, sizeof(got), MSG_DONTWAIT)) >= 0; next++) {
				assert_int_equal(m, 1200);
				assert_int_equal(got[0], (uint8_t)next);
				assert_int_equal(got[1199], (uint8_t)next);
			}
		}
		loop_once(fx);
		for (int t = 0; t < 1000 && next < 150; t++) {
			ssize_t m = recv(u.fd, got, sizeof(got), MSG_DONTWAIT);

			if (m < 0) {
				(void)poll(NULL, 0, 1);
				continue;
			}
			assert_int_equal(m, 1200);
			assert_int_equal(got[0], (uint8_t)next);
			next++;
		}
		assert_int_equal(next, 150);
	}
	close(u.fd);
}

/* A flow outlives its client's hold on the address (another session of
 * the same identity kept it open), and the address goes to another
 * client: that client's packets on the same ports must not join the old
 * flow (its destination, its policy decision, the replies meant for the
 * first client); the old flow ends and the policy decides anew. */
static void
test_flow_of_another_client_not_joined(void **state)
{
	struct fx *fx = *state;
	struct stack_client other;
	struct stack_counters k;
	struct stack_addr dst;
	struct usrv u;
	uint8_t b[PMAX], r[16];
	size_t n;
	int calls;

	assert_int_equal(fx_start(fx, 1), 0);
	other = fx->client;
	usrv_start(&u, 0);
	addr4(&dst, "127.0.0.1");
	n = build_udp(b, &fx->client.vip4, &dst, 20000, u.port, (const uint8_t *)"a", 1);
	input(fx, b, n);
	calls = fx->policy_calls;
	assert_int_equal(recv(u.fd, r, sizeof(r), 0), 1);
	other.id = "agent-2"; /* the same address, now agent-2's */
	fx->deny = 1;         /* whose policy allows nothing */
	assert_int_equal(stack_input(fx->st, NULL, &other, b, n), 0);
	stack_udpq_flush(fx->st);
	assert_int_equal(fx->policy_calls, calls + 1); /* decided anew */
	stack_get_counters(fx->st, &k);
	assert_int_equal(k.flows_udp, 0);
	assert_int_equal(k.drop_denied, 1);
	(void)poll(NULL, 0, 20);
	assert_true(recv(u.fd, r, sizeof(r), MSG_DONTWAIT) < 0); /* nothing reached it */
	close(u.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flow_of_another_client_not_joined, setup, teardown),
		cmocka_unit_test(test_pcbhash_many),
		cmocka_unit_test(test_pkt_rst_for_syn),
		cmocka_unit_test(test_fd_budget),
		cmocka_unit_test(test_wnd_initial),
		cmocka_unit_test(test_wnd_credit),
		cmocka_unit_test(test_wnd_budget_many_flows),
		cmocka_unit_test(test_cgroup_memory_limit),
		cmocka_unit_test_setup_teardown(test_second_stack_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_per_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c18_spoofed_source_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c19_denied_tcp_gets_rst_and_audit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c19_denied_udp_gets_admin_prohibited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c19_icmp_errors_rate_limited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_forbidden_by_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configured_forbidden_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c21_ipv6_ext_headers_walked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_echo_100k_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_echo_100k_v6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_echo_small_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_out_of_order_client_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_queued_chain_then_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock_read_once_per_packet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_acks_merged_within_a_turn, setup, teardown),
		cmocka_unit_test(test_lwipmem_keeps_packet_blocks),
		cmocka_unit_test_setup_teardown(test_ackq_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_upstream_refused_gets_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_local_connect_answers_inline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_client_rst_closes_upstream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_upstream_half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_tcp_answers_not_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_tcp_later_answer_not_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_tcp_fin_answers_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_tcp_fin_answers_never_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_tiny_mss_delivers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_mss_below_48_raised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_closing_slow_reader_past_last_ack_timer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_closing_zero_window_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_closing_zero_window_upstream_first_times_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_closing_zero_window_reopens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_client_reset_after_fin_keeps_its_bytes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_fin_both_ways_while_upstream_full, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_time_wait_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_time_wait_batch_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_time_wait_cap_from_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listener_lingers_then_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_time_wait_outlives_its_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reevaluate_closes_denied_flows_keeps_allowed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_roundtrip_v4_and_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_batched_per_turn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_roundtrip_v6_and_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c23_udp_port_unreachable_to_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_echo_or_unavailable, setup, teardown),
		cmocka_unit_test(test_icmp_echo_netns),
		cmocka_unit_test_setup_teardown(test_limit_flows_per_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_halfopen_per_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_halfopen_syn_dropped_then_retry_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_total_flows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_lwip_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emfile_refuses_new_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_del_with_established_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_upstream_refused_v6_gets_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_upstream_reset_reaches_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_handshake_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_backpressure_slow_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wnd_limited_flow_closes_with_fin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wnd_limited_flow_upstream_closes_first_with_fin,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_c20_linklocal_multicast_echo_answered_locally, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_address_is_forbidden, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i16_6_new_never_reachable_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i16_6_new_ranges_refused_and_audited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i16_6_local_addresses_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i16_7_refusals_fair_per_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i16_7_refusals_global_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i16_7_limit_audits_fair_per_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_echo_10m_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_idle_stack_not_armed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_follows_udp_idle_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_follows_lwip_tcp_timer, setup, teardown),
	};

	const struct CMUnitTest in_netns[] = {
		cmocka_unit_test_setup_teardown(test_icmp_echo_netns_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_udp_tcp, setup, teardown),
	};

	if (getenv("STACK_TEST_IN_NETNS"))
		return cmocka_run_group_tests(in_netns, NULL, NULL);
	if (getenv("STACK_TEST_FILTER"))
		cmocka_set_test_filter(getenv("STACK_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
