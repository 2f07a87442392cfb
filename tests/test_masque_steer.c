/*
 * test_masque_steer.c — the steering fallback of src/masque/udp.c
 * (masque_udp_server_set_steer(), steer.h) on real loopback sockets: two
 * masque_udp servers, workers 0 and 1 of 2, share one UDP port with
 * SO_REUSEPORT but without the reuseport program, so the kernel picks a
 * socket by its 4-tuple hash, blind to connection IDs. Joined by their
 * handoff channels and driven by one event base, they must still serve
 * every connection on the worker its connection IDs name: the datagrams
 * the hash gives the other socket are handed over, for the whole life of
 * the connection. No privileges needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "masque/masque.h"
#include "masque/masque_int.h"
#include "masque/steer.h"
#include "masque/tls.h"
#include "masque/udp.h"
#include "masque_fx.h"
#include "pki.h"
#include "zg_err.h"

/* Each client's Initial DCID is random and so is its source port's hash:
 * about half the clients reach the other worker's socket first; with 24
 * the chance that none does is 2^-24. */
#define NCLIENTS 24
#define NPKTS 5 /* IP packets each client sends through its tunnel */
#define NW 2
#define TEMPLATE "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"

struct run;

struct client {
	struct run *r;
	struct masque_udp *u;
	int port; /* its local UDP port: how a server tells it */
	int opened, echoes, served_by;
};

struct worker {
	struct run *r;
	unsigned idx;
	int served, packets, closed;
};

struct run {
	struct event_base *base;
	struct client cl[NCLIENTS];
	struct worker wk[NW];
	int done; /* clients that got every echo */
};

static int on_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	struct worker *w = ctx;
	socklen_t len;
	const struct sockaddr_in *peer = (const struct sockaddr_in *)masque_conn_peer(c, &len);
	int i;

	(void)rq;
	w->served++;
	for (i = 0; i < NCLIENTS; i++) {
		if (w->r->cl[i].port == ntohs(peer->sin_port)) {
			assert_int_equal(w->r->cl[i].served_by, -1); /* served once */
			w->r->cl[i].served_by = (int)w->idx;
		}
	}
	return fx_accept_one(acc);
}

/* Server: echo each packet back through the same tunnel. */
static void srv_on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct worker *w = ctx;

	w->packets++;
	(void)masque_conn_send(c, pkt, len);
}

static void srv_on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct worker *w = ctx;

	(void)c;
	(void)ci;
	w->closed++;
}

static void cl_on_open(struct masque_conn *c, void *ctx)
{
	struct client *cl = ctx;
	uint8_t pkt[300];
	int k;

	cl->opened++;
	for (k = 0; k < NPKTS; k++) {
		memset(pkt, 0x45, sizeof(pkt));
		pkt[4] = (uint8_t)cl->port;
		pkt[5] = (uint8_t)k;
		assert_int_equal(masque_conn_send(c, pkt, 100 + (size_t)k * 30), 0);
	}
}

static void cl_on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct client *cl = ctx;

	(void)c;
	assert_int_equal(pkt[4], (uint8_t)cl->port); /* its own packets came back */
	assert_int_equal(len, 100 + (size_t)pkt[5] * 30);
	if (++cl->echoes == NPKTS && ++cl->r->done == NCLIENTS)
		event_base_loopbreak(cl->r->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* 1 when every datagram handed over so far has been read by its worker. */
static int balanced(struct masque_udp *su[NW])
{
	struct masque_udp_steer_stats a, b;

	masque_udp_steer_stats(su[0], &a);
	masque_udp_steer_stats(su[1], &b);
	return a.handed_over == b.received && b.handed_over == a.received;
}

/* bound_group 0: each server binds its own socket, without the kernel's
 * program (the 4-tuple hash picks, the handoff corrects); 1: the sockets
 * come from masque_udp_bind_group() in worker order with the cBPF program
 * attached, as the relay's master makes them. */
static void run_workers(int bound_group)
{
	static struct run r; /* large: not on the stack */
	struct masque_cbs scbs = { .on_request = on_request,
				   .on_address_request = fx_grant_as_asked,
				   .on_packet = srv_on_packet,
				   .on_close = srv_on_close };
	struct masque_cbs ccbs = { .on_open = cl_on_open, .on_packet = cl_on_packet };
	struct masque_config scfg[NW], ccfg[NCLIENTS];
	struct masque_udp *su[NW];
	struct masque_server *srv[NW];
	struct masque_udp_steer_stats st[NW];
	struct masque_server_stats ss[NW];
	struct steer_group g;
	struct masque_conn *cc;
	WOLFSSL_CTX *sctx = NULL, *cctx = NULL;
	struct event *stop;
	struct timeval limit = { 20, 0 };
	uint8_t secret[32];
	char err[256], listen[64];
	unsigned w;
	int i, per_worker[NW] = { 0 }, fds[NW];

	memset(&r, 0, sizeof(r));
	r.base = masque_udp_base_new();
	assert_non_null(r.base);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL,
					    &sctx, err, sizeof(err)),
			 0);
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), f("ca.crt"),
					    &cctx, err, sizeof(err)),
			 0);
	memset(secret, 0x5e, sizeof(secret)); /* shared by the workers */
	assert_int_equal(steer_group_open(&g, NW, err, sizeof(err)), 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:0");
	if (bound_group) {
		if (masque_udp_bind_group(listen, NW, fds, err, sizeof(err)) != 0)
			fail_msg("%s", err);
		if (steer_attach_cbpf(fds[0], NW, err, sizeof(err)) != 0)
			fail_msg("%s", err);
	}
	for (w = 0; w < NW; w++) {
		r.wk[w].r = &r;
		r.wk[w].idx = w;
		memset(&scfg[w], 0, sizeof(scfg[w]));
		scfg[w].tls = sctx;
		scfg[w].uri_template = TEMPLATE;
		scfg[w].retry_off = 1;
		scfg[w].static_secret = secret;
		scfg[w].worker_index = w;
		scfg[w].nworkers = NW;
		scfg[w].listen_fd = bound_group ? fds[w] : 0;
		if (masque_udp_server_new(r.base, listen, &scfg[w], &scbs, &r.wk[w], &su[w],
					  &srv[w], err, sizeof(err)) != 0)
			fail_msg("worker %u: %s", w, err);
		/* the others join worker 0's port (SO_REUSEPORT) */
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", masque_udp_port(su[0]));
		if (masque_udp_server_set_steer(su[w], &g, err, sizeof(err)) != 0)
			fail_msg("worker %u: %s", w, err);
	}
	assert_int_equal(masque_udp_port(su[1]), masque_udp_port(su[0]));
	for (i = 0; i < NCLIENTS; i++) {
		struct client *cl = &r.cl[i];

		cl->r = &r;
		cl->served_by = -1;
		memset(&ccfg[i], 0, sizeof(ccfg[i]));
		ccfg[i].tls = cctx;
		ccfg[i].server_name = "localhost";
		ccfg[i].authority = "relay.test:4433";
		ccfg[i].path = "/.well-known/masque/ip/*/*/";
		assert_int_equal(masque_udp_client_new(r.base, listen, &ccfg[i], &ccbs, cl, &cl->u,
						       &cc, err, sizeof(err)),
				 0);
		cl->port = masque_udp_port(cl->u);
	}
	stop = evtimer_new(r.base, stop_cb, r.base);
	assert_non_null(stop);
	evtimer_add(stop, &limit);
	event_base_dispatch(r.base);
	event_free(stop);

	assert_int_equal(r.done, NCLIENTS);
	/* the last acknowledgements handed over may still wait in a
	 * channel: let the loop read them (bounded; nothing blocks) */
	for (i = 0; i < 1000 && !balanced(su); i++)
		event_base_loop(r.base, EVLOOP_NONBLOCK);
	for (i = 0; i < NCLIENTS; i++) {
		struct client *cl = &r.cl[i];
		struct masque_conn *c = masque_udp_conn(cl->u);
		const ngtcp2_cid *first, *now;

		assert_int_equal(cl->opened, 1);
		assert_int_equal(cl->echoes, NPKTS);
		assert_non_null(c);
		first = ngtcp2_conn_get_client_initial_dcid2(c->qc);
		now = ngtcp2_conn_get_dcid2(c->qc);
		assert_true(first->datalen >= 8);
		assert_int_equal(now->datalen, STEER_CIDLEN);
		/* served by the worker its first Initial's random DCID
		 * names, wherever the kernel's hash sent its datagrams, and
		 * it now addresses that worker's own CIDs */
		assert_int_equal(cl->served_by, (int)(first->data[0] % NW));
		assert_int_equal(now->data[0] % NW, (unsigned)cl->served_by);
		per_worker[cl->served_by]++;
	}
	for (w = 0; w < NW; w++) {
		masque_udp_steer_stats(su[w], &st[w]);
		masque_server_stats(srv[w], &ss[w]);
		print_message("worker %u: %d connections; handed over %llu, received %llu, "
			      "dropped %llu\n",
			      w, per_worker[w], (unsigned long long)st[w].handed_over,
			      (unsigned long long)st[w].received, (unsigned long long)st[w].dropped);
		assert_int_equal(r.wk[w].served, per_worker[w]);
		assert_int_equal(masque_server_conns(srv[w]), (size_t)per_worker[w]);
		assert_int_equal(r.wk[w].packets, per_worker[w] * NPKTS);
		/* nothing of the other worker's was taken for unknown */
		assert_int_equal(ss[w].stateless_resets, 0);
		assert_int_equal(r.wk[w].closed, 0);
		assert_int_equal(st[w].dropped, 0);
		assert_int_equal(st[w].bad, 0);
	}
	if (bound_group) {
		/* the kernel's program sent every datagram to its worker */
		assert_int_equal(st[0].handed_over + st[1].handed_over, 0);
	} else {
		/* the kernel's hash did send datagrams to the wrong socket,
		 * and every one handed over arrived */
		assert_true(st[0].handed_over + st[1].handed_over > 0);
	}
	assert_int_equal(st[0].handed_over, st[1].received);
	assert_int_equal(st[1].handed_over, st[0].received);

	for (i = 0; i < NCLIENTS; i++)
		masque_udp_del(r.cl[i].u);
	for (w = 0; w < NW; w++)
		masque_udp_del(su[w]);
	steer_group_close(&g);
	wolfSSL_CTX_free(cctx);
	wolfSSL_CTX_free(sctx);
	event_base_free(r.base);
}

static void test_connections_live_on_their_cid_worker(void **state)
{
	(void)state;
	run_workers(0);
}

/* masque_udp_bind_group() + steer_attach_cbpf(): nothing to hand over */
static void test_bound_group_with_cbpf(void **state)
{
	(void)state;
	run_workers(1);
}

/* masque_udp_bind_group() refuses what cannot be a group, leaving nothing
 * open; with port 0 every socket has the first one's port. */
static void test_bind_group_errors(void **state)
{
	int fds[3];
	struct sockaddr_in a, b;
	socklen_t la = sizeof(a), lb = sizeof(b);
	char err[256];

	(void)state;
	assert_int_equal(masque_udp_bind_group("127.0.0.1:0", 1, fds, err, sizeof(err)),
			 ZG_ERR_INVAL);
	assert_int_equal(fds[0], -1);
	/* not host:port (a name to resolve would ask the machine's DNS
	 * server: tests stay on the machine) */
	assert_int_equal(masque_udp_bind_group("127.0.0.1:port", 2, fds, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);
	/* a port another socket holds without SO_REUSEPORT: the bind fails */
	{
		int held = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in h;
		socklen_t lh = sizeof(h);
		char hp[32];

		assert_true(held >= 0);
		memset(&h, 0, sizeof(h));
		h.sin_family = AF_INET;
		h.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(held, (struct sockaddr *)&h, sizeof(h)), 0);
		assert_int_equal(getsockname(held, (struct sockaddr *)&h, &lh), 0);
		(void)snprintf(hp, sizeof(hp), "127.0.0.1:%u", ntohs(h.sin_port));
		assert_int_not_equal(masque_udp_bind_group(hp, 2, fds, err, sizeof(err)), 0);
		assert_int_equal(fds[0], -1);
		assert_int_equal(fds[1], -1);
		close(held);
	}
	assert_int_equal(masque_udp_bind_group("127.0.0.1:0", 3, fds, err, sizeof(err)), 0);
	assert_int_equal(getsockname(fds[0], (struct sockaddr *)&a, &la), 0);
	assert_int_equal(getsockname(fds[2], (struct sockaddr *)&b, &lb), 0);
	assert_int_not_equal(a.sin_port, 0);
	assert_int_equal(a.sin_port, b.sin_port);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

/* One server: no steering unless asked, and a group that does not fit is
 * refused with a reason. */
static void test_set_steer_refuses(void **state)
{
	struct masque_cbs scbs = { .on_request = on_request };
	struct masque_config scfg;
	struct masque_udp *su;
	struct masque_server *srv;
	struct masque_udp_steer_stats st;
	struct steer_group g;
	struct event_base *base = masque_udp_base_new();
	WOLFSSL_CTX *sctx = NULL;
	struct worker wk = { 0 };
	char err[256];

	(void)state;
	assert_non_null(base);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL,
					    &sctx, err, sizeof(err)),
			 0);
	memset(&scfg, 0, sizeof(scfg));
	scfg.tls = sctx;
	scfg.uri_template = TEMPLATE;
	scfg.worker_index = 1;
	scfg.nworkers = 3;
	assert_int_equal(masque_udp_server_new(base, "127.0.0.1:0", &scfg, &scbs, &wk, &su, &srv,
					       err, sizeof(err)),
			 0);
	assert_int_equal(steer_group_open(&g, 2, err, sizeof(err)), 0);
	assert_int_equal(masque_udp_server_set_steer(su, &g, err, sizeof(err)), ZG_ERR_INVAL);
	assert_non_null(strstr(err, "2 handoff channels for a server of 3 workers"));
	steer_group_close(&g);
	assert_int_equal(steer_group_open(&g, 3, err, sizeof(err)), 0);
	steer_group_keep(&g, 0); /* worker 0's ends: not worker 1's */
	assert_int_equal(masque_udp_server_set_steer(su, &g, err, sizeof(err)), ZG_ERR_INVAL);
	assert_non_null(strstr(err, "write end of worker 0's handoff channel is closed"));
	close(g.rd[0]); /* its own read end (1) is closed too */
	g.rd[0] = -1;
	g.wr[0] = dup(g.wr[1]);
	assert_int_equal(masque_udp_server_set_steer(su, &g, err, sizeof(err)), ZG_ERR_INVAL);
	assert_non_null(strstr(err, "read end of worker 1's handoff channel is closed"));
	steer_group_close(&g);
	assert_int_equal(steer_group_open(&g, 3, err, sizeof(err)), 0);
	steer_group_keep(&g, 1);
	assert_int_equal(masque_udp_server_set_steer(su, &g, err, sizeof(err)), 0);
	assert_int_equal(masque_udp_server_set_steer(su, &g, err, sizeof(err)), ZG_ERR_STATE);
	assert_non_null(strstr(err, "already set"));
	masque_udp_steer_stats(su, &st);
	assert_int_equal(st.handed_over + st.received + st.dropped + st.bad, 0);
	masque_udp_del(su);
	steer_group_close(&g);
	wolfSSL_CTX_free(sctx);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connections_live_on_their_cid_worker),
		cmocka_unit_test(test_bound_group_with_cbpf),
		cmocka_unit_test(test_bind_group_errors),
		cmocka_unit_test(test_set_steer_refuses),
	};

	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
