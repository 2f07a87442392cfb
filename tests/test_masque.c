/*
 * test_masque.c — CONNECT-IP client and server joined in memory: the
 * masque_io seam is a packet queue and a fake clock, so handshakes,
 * capsules, datagrams, refusals and timeouts run without sockets or
 * sleeps. PKI from scripts/gen-certs.sh --test-set. Tests name the
 * RFC9484-CHECKLIST items they cover.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capsule.h"
#include "cipdns.h"
#include "masque/masque.h"
#include "masque/masque_int.h"
#include "masque/memnet.h"
#include "masque/steer.h"
#include "varint.h"
#include "zg_err.h"
#include "masque_fx.h"
#include "pki.h"

#define TEMPLATE "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"
#define SEC UINT64_C(1000000000)

/* ------------------------------------------------------------------ */
/* what the callbacks saw                                             */

struct side {
	struct memnet_ep ep; /* ep.ep.conn: the client connection */
	int is_server;
	/* what the callbacks saw */
	int opened, goaway, closed, rejects, writable, hs_failures;
	enum tls_reject reject_why;
	enum masque_hs_fail hs_why;
	char hs_detail[128];
	struct masque_close_info ci;
	struct cip_addr addrs[MASQUE_MAX_ADDRS];
	size_t naddrs, naddr_events;
	struct cip_route routes[64];
	size_t nroutes, nroute_events;
	uint64_t pkts, bytes, bad;
	uint32_t next_seq;
	/* server behaviour */
	int status;
	int defer; /* answer later with masque_conn_answer() */
	int echo;
	int cross; /* server: a packet from one of pair[] goes out on the other */
	struct masque_conn *pair[2];
	masque_time work_ns; /* on_packet advances the clock by this */
	struct masque_request rq;
	int requests;
	struct cip_addr areq[MASQUE_MAX_ADDRS];
	size_t nareq;
	struct masque_conn *last_conn;
	size_t server_closed;
	/* extension capsules (C26) */
	const uint8_t *extra; /* server: whole capsules sent with the 200 */
	size_t nextra;
	int cap_fail; /* client: on_capsule returns this */
	size_t ncaps; /* client: extension capsules seen */
	uint64_t cap_type;
	uint8_t cap[512];
	size_t cap_len;
	size_t routes_before_cap; /* route events when the first one arrived */
};

/* ------------------------------------------------------------------ */
/* callbacks                                                          */

static struct cip_route srv_routes[2];

static int on_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	struct side *s = ctx;

	s->requests++;
	s->rq = *rq;
	s->last_conn = c;
	if (s->defer)
		return MASQUE_PENDING;
	if (s->status != 200)
		return s->status;
	acc->naddrs = 1;
	acc->addrs[0].version = 4;
	inet_pton(AF_INET, "10.100.0.7", acc->addrs[0].addr);
	acc->addrs[0].prefix_len = 32;
	memset(srv_routes, 0, sizeof(srv_routes));
	srv_routes[0].version = 4;
	inet_pton(AF_INET, "10.0.0.0", srv_routes[0].start);
	inet_pton(AF_INET, "10.255.255.255", srv_routes[0].end);
	srv_routes[1].version = 4;
	inet_pton(AF_INET, "192.168.1.0", srv_routes[1].start);
	inet_pton(AF_INET, "192.168.1.255", srv_routes[1].end);
	srv_routes[1].proto = 6;
	acc->routes = srv_routes;
	acc->nroutes = 2;
	acc->capsules = s->extra;
	acc->capsules_len = s->nextra;
	return 200;
}

static int on_capsule(struct masque_conn *c, uint64_t type, const uint8_t *v, size_t len,
		      void *ctx)
{
	struct side *s = ctx;

	(void)c;
	if (s->ncaps++ == 0)
		s->routes_before_cap = s->nroute_events;
	s->cap_type = type;
	s->cap_len = len < sizeof(s->cap) ? len : sizeof(s->cap);
	memcpy(s->cap, v, s->cap_len);
	return s->cap_fail;
}

static int on_address_request(struct masque_conn *c, const struct cip_addr *req, size_t n,
			      struct cip_addr *out, size_t *nout, void *ctx)
{
	struct side *s = ctx;
	size_t i;

	(void)c;
	memcpy(s->areq, req, n * sizeof(*req));
	s->nareq = n;
	for (i = 0; i < n; i++) {
		if (req[i].version == 4) {
			out[i] = req[i];
			inet_pton(AF_INET, "10.100.0.7", out[i].addr);
			out[i].prefix_len = 32;
		} else {
			cip_addr_refusal(&req[i], &out[i]);
		}
	}
	*nout = n;
	return 0;
}

static void check_packet(struct side *s, const uint8_t *pkt, size_t len)
{
	uint32_t seq;
	size_t i;

	if (len < 8) {
		s->bad++;
		return;
	}
	memcpy(&seq, pkt + 4, 4);
	for (i = 8; i < len; i++) {
		if (pkt[i] != (uint8_t)(seq + i)) {
			s->bad++;
			return;
		}
	}
	s->pkts++;
	s->bytes += len;
}

static void on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct side *s = ctx;

	check_packet(s, pkt, len);
	if (s->work_ns && s->ep.net != NULL)
		s->ep.net->now += s->work_ns; /* the time handling it takes */
	if (s->echo)
		(void)masque_conn_send(c, pkt, len); /* from inside the callback */
	if (s->cross && (c == s->pair[0] || c == s->pair[1]))
		(void)masque_conn_send(c == s->pair[0] ? s->pair[1] : s->pair[0], pkt, len);
}

static void on_open(struct masque_conn *c, void *ctx)
{
	(void)c;
	((struct side *)ctx)->opened++;
}

static void on_addresses(struct masque_conn *c, const struct cip_addr *a, size_t n, void *ctx)
{
	struct side *s = ctx;

	(void)c;
	memcpy(s->addrs, a, n * sizeof(*a));
	s->naddrs = n;
	s->naddr_events++;
}

static void on_routes(struct masque_conn *c, const struct cip_route *r, size_t n, void *ctx)
{
	struct side *s = ctx;

	(void)c;
	if (n > 64)
		n = 64;
	memcpy(s->routes, r, n * sizeof(*r));
	s->nroutes = n;
	s->nroute_events++;
}

static void on_writable(struct masque_conn *c, void *ctx)
{
	(void)c;
	((struct side *)ctx)->writable++;
}

static void on_goaway(struct masque_conn *c, void *ctx)
{
	(void)c;
	((struct side *)ctx)->goaway++;
}

static void on_reject(const struct sockaddr *peer, socklen_t peerlen, enum tls_reject why,
		      void *ctx)
{
	struct side *s = ctx;

	(void)peer;
	(void)peerlen;
	s->rejects++;
	s->reject_why = why;
}

static void on_handshake_failed(const struct sockaddr *peer, socklen_t peerlen,
				enum masque_hs_fail why, const char *detail, void *ctx)
{
	struct side *s = ctx;

	(void)peer;
	(void)peerlen;
	s->hs_failures++;
	s->hs_why = why;
	snprintf(s->hs_detail, sizeof(s->hs_detail), "%s", detail);
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct side *s = ctx;

	if (s->is_server) {
		s->server_closed++;
		if (getenv("ZG_TEST_VERBOSE"))
			fprintf(stderr, "server closed: %s\n", ci->reason);
		if (s->last_conn == c)
			s->last_conn = NULL;
		s->ci = *ci;
		return;
	}
	s->closed++;
	s->ci = *ci;
	if (getenv("ZG_TEST_VERBOSE"))
		fprintf(stderr, "client closed: %s (status %d)\n", ci->reason, ci->status);
	s->ep.conn = NULL;
}

static const struct masque_cbs cbs = {
	.on_request = on_request,
	.on_address_request = on_address_request,
	.on_open = on_open,
	.on_addresses = on_addresses,
	.on_routes = on_routes,
	.on_capsule = on_capsule,
	.on_packet = on_packet,
	.on_goaway = on_goaway,
	.on_writable = on_writable,
	.on_reject = on_reject,
	.on_handshake_failed = on_handshake_failed,
	.on_close = on_close,
};

/* ------------------------------------------------------------------ */
/* fixtures                                                           */

struct fx {
	struct memnet net;
	struct side srv;
	struct side cl[3];
	WOLFSSL_CTX *sctx;
	WOLFSSL_CTX *cctx[3];
	struct masque_config scfg;
	struct masque_config ccfg[3];
};

/* The server's CRL (a file of the test PKI) and identity mode, set by a
 * test before fx_server() and put back by it. */
static const char *fx_crl;
static enum tls_identity fx_identity = TLS_IDENTITY_CN;
/* Every client fx_client() prepares offers fx_big_hello_alpn(): its
 * first flight takes two Initials or more (set by big_hello_on()). */
static int fx_big_hello;

/* The server with handshake admission limits from lim (NULL: defaults). */
static void fx_server_lim(struct fx *x, int retry_always, const struct masque_config *lim)
{
	const char *crl = fx_crl;
	enum tls_identity idm = fx_identity;
	char err[256];

	fx_crl = NULL; /* for this server only: a failed test leaves no trace */
	fx_identity = TLS_IDENTITY_CN;
	assert_int_equal(memnet_init(&x->net), 0); /* 1 ms each way */
	memset(&x->srv, 0, sizeof(x->srv));
	x->srv.is_server = 1;
	x->srv.status = 200;
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"),
					    crl ? f(crl) : NULL, &x->sctx, err, sizeof(err)),
			 0);
	assert_int_equal(tls_server_set_identity(x->sctx, idm), 0);
	memset(&x->scfg, 0, sizeof(x->scfg));
	x->scfg.tls = x->sctx;
	x->scfg.io = &memnet_io;
	x->scfg.ioctx = &x->net.server;
	x->scfg.uri_template = TEMPLATE;
	x->scfg.retry_always = retry_always;
	x->scfg.retry_off = !retry_always;
	if (lim != NULL) {
		x->scfg.retry_off = lim->retry_off;
		x->scfg.max_handshakes = lim->max_handshakes;
		x->scfg.max_handshakes_per_source = lim->max_handshakes_per_source;
		x->scfg.accepts_per_round = lim->accepts_per_round;
		x->scfg.worker_index = lim->worker_index;
		x->scfg.nworkers = lim->nworkers;
	}
	assert_int_equal(masque_server_new(&x->scfg, &cbs, &x->srv, &x->net.srv), 0);
}

static void fx_server(struct fx *x, int retry_always)
{
	fx_server_lim(x, retry_always, NULL);
}

/* Prepares client i with certificate `id` (NULL: none). */
static void fx_client(struct fx *x, int i, const char *id, const char *path)
{
	char err[256], crt[64], key[64];
	struct side *s = &x->cl[i];

	memset(s, 0, sizeof(*s));
	memnet_client(&x->net, (size_t)i, &s->ep);
	snprintf(crt, sizeof(crt), "%s.crt", id ? id : "x");
	snprintf(key, sizeof(key), "%s.key", id ? id : "x");
	assert_int_equal(tls_client_ctx_new(id ? f(crt) : NULL, id ? f(key) : NULL, f("ca.crt"),
					    &x->cctx[i], err, sizeof(err)),
			 0);
	memset(&x->ccfg[i], 0, sizeof(x->ccfg[i]));
	x->ccfg[i].tls = x->cctx[i];
	x->ccfg[i].io = &memnet_io;
	x->ccfg[i].ioctx = &s->ep;
	x->ccfg[i].server_name = "localhost";
	x->ccfg[i].authority = "relay.test:4433";
	x->ccfg[i].path = path ? path : "/.well-known/masque/ip/*/*/";
	if (fx_big_hello)
		x->ccfg[i].test_alpn = fx_big_hello_alpn();
}

static void fx_connect(struct fx *x, int i)
{
	assert_int_equal(masque_client_new(&x->ccfg[i], &cbs, &x->cl[i],
					   (struct sockaddr *)&x->cl[i].ep.addr, sizeof(x->cl[i].ep.addr),
					   (struct sockaddr *)&x->net.server.addr,
					   sizeof(x->net.server.addr), &x->cl[i].ep.conn),
			 0);
}

static void fx_free(struct fx *x)
{
	int i;

	for (i = 0; i < 3; i++) {
		if (x->cl[i].ep.conn != NULL) {
			masque_conn_close(x->cl[i].ep.conn, 0, "test over");
			memnet_run(&x->net, NULL, NULL, SEC);
		}
		if (x->cctx[i] != NULL)
			wolfSSL_CTX_free(x->cctx[i]);
	}
	masque_server_del(x->net.srv);
	wolfSSL_CTX_free(x->sctx);
	assert_int_equal(memnet_free(&x->net), 0); /* every connection freed */
}

static int opened_and_routed(void *arg)
{
	struct side *s = arg;

	return s->closed || (s->opened && s->nroute_events > 0 && s->naddr_events >= 2);
}

static int is_closed(void *arg)
{
	return ((struct side *)arg)->closed != 0;
}

static struct fx *fx_open(int retry_always)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	fx_server(x, retry_always);
	fx_client(x, 0, "agent-1", NULL);
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].closed, 0);
	return x;
}

/* ------------------------------------------------------------------ */
/* tests                                                              */

static void test_c24_handshake_mtls_and_tunnel(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_stats st;
	struct masque_server_stats ss;
	char a[INET_ADDRSTRLEN];

	(void)state;
	assert_int_equal(x->srv.requests, 1);
	assert_string_equal(x->srv.rq.identity, "agent-1");
	assert_string_equal(x->srv.rq.authority, "relay.test:4433");
	assert_string_equal(x->srv.rq.path, "/.well-known/masque/ip/*/*/");
	assert_true(x->srv.rq.any_target);
	assert_true(x->srv.rq.any_proto);
	assert_int_equal(x->cl[0].opened, 1);
	assert_true(masque_conn_is_open(x->cl[0].ep.conn));
	assert_true(masque_conn_datagrams(x->cl[0].ep.conn));
	/* The last ADDRESS_ASSIGN answers our request (Request ID 1). */
	assert_int_equal(x->cl[0].naddrs, 1);
	assert_int_equal(x->cl[0].addrs[0].request_id, 1);
	inet_ntop(AF_INET, x->cl[0].addrs[0].addr, a, sizeof(a));
	assert_string_equal(a, "10.100.0.7");
	assert_int_equal(x->cl[0].nroutes, 2);
	assert_int_equal(x->cl[0].routes[1].proto, 6);
	/* no resumption: the server sends no session ticket (it came, when
	 * it did, with HANDSHAKE_DONE, before the tunnel's 200) */
	assert_false(masque_conn_got_ticket(x->cl[0].ep.conn));
	/* tls_set_groups: the client's first choice, the post-quantum
	 * hybrid (the relay has freed its TLS object by now; the client
	 * keeps its own) */
	assert_string_equal(wolfSSL_get_curve_name(x->cl[0].ep.conn->ssl), "X25519MLKEM768");
	masque_conn_stats(x->cl[0].ep.conn, &st);
	assert_true(st.handshake_ns >= 2 * x->net.delay); /* at least one round trip */
	/* issue 17.5: the server's handshake time is in its histogram */
	masque_server_stats(x->net.srv, &ss);
	assert_int_equal(ss.handshake.count, 1);
	assert_true(ss.handshake.sum_us >= 2 * x->net.delay / 1000u);
	assert_int_equal(ss.refused_bad_request, 0);
	fx_free(x);
	free(x);
}

/* Key exchange groups (tls_set_groups) between a client offering cg and
 * a server accepting sg (NULL: zgate's own): the group agreed on, the
 * client's first flight in datagrams and the handshake's round trips. */
static void groups(int *cg, int ncg, int *sg, int nsg, const char *want, size_t flight,
		   int rtts)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_stats st;

	assert_non_null(x);
	fx_server(x, 0);
	if (sg != NULL)
		assert_int_equal(wolfSSL_CTX_set_groups(x->sctx, sg, nsg), WOLFSSL_SUCCESS);
	fx_client(x, 0, "agent-1", NULL);
	if (cg != NULL)
		assert_int_equal(wolfSSL_CTX_set_groups(x->cctx[0], cg, ncg), WOLFSSL_SUCCESS);
	fx_connect(x, 0);
	assert_int_equal(x->net.qlen, flight);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].closed, 0);
	assert_string_equal(masque_conn_tls_group(x->cl[0].ep.conn), want);
	assert_null(masque_conn_tls_group(x->srv.last_conn)); /* TLS object freed */
	masque_conn_stats(x->cl[0].ep.conn, &st);
	assert_true(st.handshake_ns >= (uint64_t)rtts * 2 * x->net.delay);
	assert_true(st.handshake_ns < (uint64_t)(rtts + 1) * 2 * x->net.delay);
	fx_free(x);
	free(x);
}

/* zgate's own ends agree on X25519MLKEM768 in one round trip, with a
 * first flight of two Initials. */
static void test_groups_hybrid_between_zgate_ends(void **state)
{
	(void)state;
	groups(NULL, 0, NULL, 0, "X25519MLKEM768", 2, 1);
}

/* A client without ML-KEM (rustls 0.20 offers X25519, P-256, P-384; an
 * agent built before it leads with X25519, one with wolfSSL 5.7.2's
 * defaults with P-256) gets its own key share taken: no
 * HelloRetryRequest, one Initial. */
static void test_groups_client_without_mlkem(void **state)
{
	int x25519[] = { WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1 };
	int p256[] = { WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1 };

	(void)state;
	groups(x25519, 3, NULL, 0, "X25519", 1, 1);
	groups(p256, 2, NULL, 0, "SECP256R1", 1, 1);
}

/* A server without ML-KEM (a quinn/rustls 0.20 echo server for
 * zgate-probe) answers zgate's hybrid key share with a HelloRetryRequest
 * for X25519: it works, one round trip later. */
static void test_groups_server_without_mlkem(void **state)
{
	int classic[] = { WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1 };

	(void)state;
	groups(NULL, 0, classic, 3, "X25519", 2, 2);
}

static void test_c10_client_sends_address_request(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	assert_int_equal(x->srv.nareq, 1);
	assert_int_equal(x->srv.areq[0].version, 4);
	assert_int_equal(x->srv.areq[0].prefix_len, 32);
	assert_int_not_equal(x->srv.areq[0].request_id, 0);
	assert_memory_equal(x->srv.areq[0].addr, "\0\0\0\0", 4);
	fx_free(x);
	free(x);
}

static void test_c10_reconnect_asks_previous_address(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	(void)state;
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].nwant = 2;
	x->ccfg[0].want[0].version = 4;
	inet_pton(AF_INET, "10.100.0.7", x->ccfg[0].want[0].addr);
	x->ccfg[0].want[0].prefix_len = 32;
	x->ccfg[0].want[1].version = 6;
	x->ccfg[0].want[1].prefix_len = 128;
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->srv.nareq, 2);
	assert_int_equal(x->srv.areq[0].request_id, 1);
	assert_int_equal(x->srv.areq[1].request_id, 2);
	/* IPv6 refused: all-zero with the maximum prefix length (C09). */
	assert_int_equal(x->cl[0].naddrs, 2);
	assert_int_equal(x->cl[0].addrs[1].version, 6);
	assert_int_equal(x->cl[0].addrs[1].prefix_len, 128);
	fx_free(x);
	free(x);
}

static void send_batch(struct side *from, struct masque_conn *c, size_t n, size_t *sent)
{
	uint8_t pkt[1400];
	size_t i, k;

	for (i = 0; i < n; i++) {
		uint32_t seq = from->next_seq;
		size_t len = 20 + (seq * 37) % 1200;

		memset(pkt, 0x45, 4);
		memcpy(pkt + 4, &seq, 4);
		for (k = 8; k < len; k++)
			pkt[k] = (uint8_t)(seq + k);
		if (masque_conn_send(c, pkt, len) == 0) {
			from->next_seq++;
			(*sent)++;
		} else {
			break; /* congested: let the network drain */
		}
	}
}

static int cl_got(void *arg)
{
	struct side *s = arg;

	return s->pkts >= s->next_seq;
}

/* 10,000 datagrams each way, byte-exact; the server echoes from inside
 * on_packet (the re-entrancy path). */
static void exchange(struct fx *x, size_t total)
{
	size_t sent = 0;
	int rounds = 0;

	x->srv.echo = 1;
	while (sent < total && rounds++ < 100000) {
		size_t before = sent;

		send_batch(&x->cl[0], x->cl[0].ep.conn, total - sent > 32 ? 32 : total - sent, &sent);
		x->cl[0].next_seq = (uint32_t)sent;
		memnet_run(&x->net, cl_got, &x->cl[0], SEC);
		if (sent == before)
			memnet_run(&x->net, NULL, NULL, SEC / 100);
	}
	memnet_run(&x->net, cl_got, &x->cl[0], 5 * SEC);
	assert_int_equal(sent, total);
	assert_int_equal(x->srv.bad, 0);
	assert_int_equal(x->cl[0].bad, 0);
	assert_int_equal(x->srv.pkts, total);
	assert_int_equal(x->cl[0].pkts, total);
}

static void test_c12_datagrams_10000_each_way(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_stats st;

	(void)state;
	exchange(x, 10000);
	masque_conn_stats(x->cl[0].ep.conn, &st);
	assert_int_equal(st.capsule_fallback, 0);
	fx_free(x);
	free(x);
}

/* A NAT in front of the agent maps it to a new port, three times: the
 * tunnel carries on each time (the relay follows the new path and
 * validates it, with the one spare connection ID the client gave it:
 * active_connection_id_limit 2 and ngtcp2-zgate.patch's smaller rings). */
static void test_nat_rebinding_keeps_tunnel(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_stats st;

	(void)state;
	exchange(x, 200);
	for (int k = 1; k <= 3; k++) {
		memnet_run(&x->net, NULL, NULL, SEC / 10); /* ACKs delivered */
		memnet_rebind(&x->cl[0].ep, (uint16_t)(41000 + k));
		x->srv.pkts = x->cl[0].pkts = 0;
		x->srv.next_seq = x->cl[0].next_seq = 0;
		exchange(x, 200);
	}
	/* and stays up well past the moves (no validation left failing) */
	memnet_run(&x->net, is_closed, &x->cl[0], 10 * SEC);
	assert_int_equal(x->cl[0].closed, 0);
	assert_true(masque_conn_is_open(x->cl[0].ep.conn));
	masque_conn_stats(x->cl[0].ep.conn, &st);
	assert_int_equal(st.capsule_fallback, 0);
	fx_free(x);
	free(x);
}

/* Damages the first 1-RTT packet (short header) on its way to the server
 * whose size is that of a damage_len-byte datagram with a QUIC header,
 * frame header and tag (not, e.g., a path MTU probe): one bit of the
 * datagram flipped. */
static size_t damage_len;
static int damaged; /* memnet_run asks its condition once more at the end */

static int damage_one(void *arg)
{
	struct memnet *n = arg;
	size_t lo = damage_len + 16, hi = damage_len + 80;

	if (damaged)
		return 1;

	for (size_t i = 0; i < n->qlen; i++) {
		struct memnet_pkt *p = &n->q[(n->qhead + i) % MEMNET_QUEUE];

		if (p->to_server && !(p->data[0] & 0x80) && p->len > lo && p->len < hi) {
			p->data[p->len - 100] ^= 0x04;
			damaged = 1;
			return 1;
		}
	}
	return 0;
}

/* A client that offers only TLS_CHACHA20_POLY1305_SHA256 gets a working
 * tunnel, and a 1-RTT packet damaged on the way is dropped, never opened:
 * through ngtcp2's wolfSSL helper it was with wolfSSL 5.7.2 (its EVP layer
 * did not compare the tag, CVE-2026-5479; src/masque/aead.h). */
static void test_chacha20_poly1305_drops_damaged(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	size_t sent = 0;

	(void)state;
	assert_non_null(x);
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	assert_int_equal(wolfSSL_CTX_set_cipher_list(x->cctx[0], "TLS13-CHACHA20-POLY1305-SHA256"),
			 WOLFSSL_SUCCESS);
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].closed, 0);
	assert_string_equal(wolfSSL_get_cipher_name(x->cl[0].ep.conn->ssl),
			    "TLS13-CHACHA20-POLY1305-SHA256");
	exchange(x, 100);

	/* one datagram (send_batch's size for seq 10), damaged in flight */
	memnet_run(&x->net, NULL, NULL, SEC / 10); /* ACKs and echoes delivered */
	x->srv.echo = 0;
	x->srv.pkts = 0;
	x->cl[0].next_seq = 10;
	damage_len = 20 + (10 * 37) % 1200;
	send_batch(&x->cl[0], x->cl[0].ep.conn, 1, &sent);
	assert_int_equal(sent, 1);
	assert_true(memnet_run(&x->net, damage_one, &x->net, SEC));
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(x->srv.bad, 0);  /* never opened with the flipped bit */
	assert_int_equal(x->srv.pkts, 0); /* dropped, not delivered */
	assert_int_equal(x->cl[0].closed, 0);
	assert_true(masque_conn_is_open(x->cl[0].ep.conn));

	/* and the tunnel carries on */
	x->srv.pkts = x->cl[0].pkts = 0;
	x->srv.next_seq = x->cl[0].next_seq = 0;
	exchange(x, 100);
	fx_free(x);
	free(x);
}

static int buffers_returned(void *arg)
{
	struct fx *x = arg;
	const struct masque_conn *c = x->cl[0].ep.conn, *sc = x->srv.last_conn;

	return c->capbuf == NULL && c->sendq.head == NULL && sc->capbuf == NULL &&
	       sc->sendq.head == NULL;
}

static void test_c13_capsule_fallback(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_stats st;

	(void)state;
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].no_datagrams = 1;    /* the client offers no QUIC datagrams */
	x->ccfg[0].keepalive_ms = 1000; /* as the agent: PINGs when idle */
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_false(masque_conn_datagrams(x->cl[0].ep.conn));
	exchange(x, 2000);
	masque_conn_stats(x->cl[0].ep.conn, &st);
	assert_int_equal(st.capsule_fallback, 2000);
	/* Capsules split across STREAM frames were assembled in a lent
	 * buffer; 5 s without one, it and the acknowledged send queue go
	 * back: an idle tunnel holds neither (issue 21, memory per tunnel). */
	assert_non_null(x->srv.last_conn->capbuf);
	assert_true(memnet_run(&x->net, buffers_returned, x, 8 * SEC));
	assert_true(masque_conn_is_open(x->cl[0].ep.conn));
	/* and the tunnel still carries capsules (seq numbers start again) */
	x->srv.pkts = x->cl[0].pkts = 0;
	x->srv.next_seq = x->cl[0].next_seq = 0;
	exchange(x, 200);
	masque_conn_stats(x->cl[0].ep.conn, &st);
	assert_int_equal(st.capsule_fallback, 2200);
	fx_free(x);
	free(x);
}

static void test_c16_oversized_packet_refused(void **state)
{
	struct fx *x = fx_open(0);
	uint8_t big[1500];
	size_t max = masque_conn_max_packet(x->cl[0].ep.conn);

	(void)state;
	assert_true(max >= MASQUE_MIN_INNER_MTU); /* C15 */
	assert_true(max < sizeof(big));
	memset(big, 0x45, sizeof(big));
	assert_int_equal(masque_conn_send(x->cl[0].ep.conn, big, max + 1), ZG_ERR_TOO_LARGE);
	fx_free(x);
	free(x);
}

static int cl_got_one(void *arg)
{
	return ((struct side *)arg)->pkts >= 1;
}

static int cl_got_two(void *arg)
{
	return ((struct side *)arg)->pkts >= 2;
}

static int srv_got_one(void *arg)
{
	return ((struct side *)arg)->pkts >= 1;
}

/* Full-size datagrams right after the client received one (it owes an
 * ACK; pacing may hold them). Whatever ngtcp2 answers, a datagram that
 * is queued leaves within milliseconds: nothing may leave it waiting for
 * a timer seconds away (as a packet written without the datagram once
 * did: 20 s stalls until the keepalive). */
static void test_queued_datagram_leaves_within_ms(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_conn *c = x->cl[0].ep.conn;
	size_t max = masque_conn_max_packet(c), sent = 0;
	struct masque_stats st;
	uint8_t pkt[1500];

	(void)state;
	for (int round = 0; round < 20; round++) {
		x->cl[0].pkts = 0;
		x->srv.pkts = 0;
		send_batch(&x->srv, x->srv.last_conn, 1, &sent);
		assert_true(memnet_run(&x->net, cl_got_one, &x->cl[0], SEC));
		memset(pkt, 0x45, 4);
		memcpy(pkt + 4, &round, 4);
		for (size_t k = 8; k < max; k++)
			pkt[k] = (uint8_t)((uint32_t)round + k);
		assert_int_equal(masque_conn_send(c, pkt, max), 0);
		assert_true(memnet_run(&x->net, srv_got_one, &x->srv, 5 * (SEC / 1000)));
		assert_int_equal(x->srv.bad, 0);
		masque_conn_stats(c, &st);
		assert_int_equal(st.queued, 0);
	}
	fx_free(x);
	free(x);
}

/* An ACK the client owes waits (0.5 ms) for a packet of its own to ride
 * on instead of leaving alone at ngtcp2's ACK delay (smoothed RTT / 8:
 * 0.25 ms on this 2 ms path): a short exchange through the tunnel costs
 * one packet less. With nothing to ride on, it leaves alone soon after.
 * Handling the packet (0.3 ms in round 1, longer than that ACK delay)
 * does not count as delay: no ACK leaves alone right after it either. */
/* One run of the exchange below on a fresh pair; 1 when every packet
 * count was as expected, else 0 with what differed in why. */
static int ack_rides_once(char *why, size_t whylen)
{
	struct fx *x = fx_open(0);
	struct masque_conn *c = x->cl[0].ep.conn;
	uint64_t sent0;
	masque_time t;
	size_t sent = 0;
	int ok = 1;

#define ACK_EXPECT(got, want, what)                                                                \
	do {                                                                                       \
		if (ok && (got) != (want)) {                                                       \
			ok = 0;                                                                    \
			snprintf(why, whylen, "round %d, %s: %llu packets, not %llu", round, what, \
				 (unsigned long long)((got)-sent0),                                \
				 (unsigned long long)((want)-sent0));                              \
		}                                                                                  \
	} while (0)
	(void)memnet_run(&x->net, NULL, NULL, SEC / 10); /* handshake's tail */
	for (int round = 0; ok && round < 2; round++) {
		x->cl[0].work_ns = round == 0 ? 100 * 1000 : 300 * 1000;
		x->cl[0].pkts = 0;
		x->srv.pkts = 0;
		sent0 = x->net.sent;
		/* round 0: two datagrams, which ngtcp2's default ACK threshold
		 * (2) would answer with an ACK alone at once */
		send_batch(&x->srv, x->srv.last_conn, 2 - (size_t)round, &sent);
		assert_true(memnet_run(&x->net, round == 0 ? cl_got_two : cl_got_one, &x->cl[0],
				       SEC));
		ACK_EXPECT(x->net.sent, sent0 + 2 - (uint64_t)round, "the datagrams");
		sent0 += 1 - (uint64_t)round;
		t = x->net.now;
		(void)memnet_run(&x->net, NULL, NULL, 100 * 1000);
		ACK_EXPECT(x->net.sent, sent0 + 1, "no ACK alone yet");
		x->net.now = t + 100 * 1000; /* the time the reply takes */
		if (round == 0) {
			send_batch(&x->cl[0], c, 1, &sent);
			/* the answer left at once, the ACK in it */
			ACK_EXPECT(x->net.sent, sent0 + 2, "the answer with the ACK in it");
			assert_true(memnet_run(&x->net, srv_got_one, &x->srv, SEC));
			(void)memnet_run(&x->net, NULL, NULL, SEC / 20);
			/* then only the server's ACK of the answer */
			ACK_EXPECT(x->net.sent, sent0 + 3, "then only the server's ACK");
		} else {
			(void)memnet_run(&x->net, NULL, NULL, 600 * 1000);
			ACK_EXPECT(x->net.sent, sent0 + 2, "the ACK, alone"); /* the ACK, alone */
		}
	}
#undef ACK_EXPECT
	fx_free(x);
	free(x);
	return ok;
}

/* ngtcp2 skips a packet number now and then, at random (its defence
 * against optimistic ACKs), and a receiver acknowledges a gap at once
 * (RFC 9000 §13.2.1): a run whose packets hit a skip has one ACK more,
 * rightly (seen in ngtcp2's trace: pkn 7, then 9, then the client's ACK
 * with a gap). So a run may be repeated: three runs in a row each
 * hitting a skip is not chance. */
static void test_ack_rides_on_next_packet(void **state)
{
	char why[128] = "";
	int ok = 0;

	(void)state;
	for (int run = 0; run < 3 && !ok; run++)
		ok = ack_rides_once(why, sizeof(why));
	if (!ok)
		fail_msg("ACKs did not ride on the next packet in 3 runs; the last: %s", why);
}

static int got_writable(void *arg)
{
	return ((struct side *)arg)->writable > 0;
}

/* A burst beyond what QUIC may send now waits in the queue (no loss);
 * past half of it masque_conn_congested() says so, and on_writable
 * fires once it has drained. */
static void test_congested_then_writable(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	uint8_t pkt[1200];
	size_t i, sent = 0;

	(void)state;
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].send_queue = 64 * 1024;
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	memset(pkt, 0x45, sizeof(pkt));
	for (i = 0; i < 200 && !masque_conn_congested(x->cl[0].ep.conn); i++) {
		uint32_t seq = (uint32_t)i;
		size_t k;

		memcpy(pkt + 4, &seq, 4);
		for (k = 8; k < sizeof(pkt); k++)
			pkt[k] = (uint8_t)(seq + k);
		if (masque_conn_send(x->cl[0].ep.conn, pkt, sizeof(pkt)) == 0)
			sent++;
	}
	assert_true(masque_conn_congested(x->cl[0].ep.conn));
	assert_int_equal(sent, i); /* queued, not dropped */
	assert_true(memnet_run(&x->net, got_writable, &x->cl[0], 5 * SEC));
	assert_false(masque_conn_congested(x->cl[0].ep.conn));
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(x->srv.pkts, sent);
	assert_int_equal(x->srv.bad, 0);
	fx_free(x);
	free(x);
}

static void test_c15_client_initial_padded(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	assert_true(x->net.first_client_pkt >= 1331);
	fx_free(x);
	free(x);
}

static void refused_cert(const char *id, enum tls_reject want)
{
	struct fx *x = calloc(1, sizeof(*x));

	fx_server(x, 0);
	fx_client(x, 0, id, NULL);
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 30 * SEC));
	assert_int_equal(x->cl[0].opened, 0);
	assert_int_equal(x->srv.requests, 0);
	assert_int_equal(x->srv.rejects, 1);
	assert_int_equal(x->srv.reject_why, want);
	assert_int_equal(x->srv.hs_failures, 0);
	fx_free(x);
	free(x);
}

static void test_c24_refuses_expired(void **state)
{
	(void)state;
	refused_cert("expired", TLS_REJECT_EXPIRED);
}

static void test_c24_refuses_not_yet_valid(void **state)
{
	(void)state;
	refused_cert("notyet", TLS_REJECT_NOT_YET_VALID);
}

static void test_c24_refuses_unknown_ca(void **state)
{
	(void)state;
	refused_cert("stranger", TLS_REJECT_UNKNOWN_CA);
}

static void test_c24_refuses_server_only_eku(void **state)
{
	(void)state;
	refused_cert("serveronly", TLS_REJECT_NO_CLIENT_AUTH);
}

static void test_c24_refuses_no_certificate(void **state)
{
	(void)state;
	refused_cert(NULL, TLS_REJECT_NO_CERT);
}

/* Issue 16 item 4: a certificate naming two clients (CN=agent-2 and
 * CN=agent-1) must not connect as either; nor one naming none, or one
 * whose CN is no valid ID. Each is a counted, reported refusal. */
static void test_c24_refuses_two_cns(void **state)
{
	(void)state;
	refused_cert("twocn", TLS_REJECT_CN_COUNT);
}

static void test_c24_refuses_no_cn(void **state)
{
	(void)state;
	refused_cert("nocn", TLS_REJECT_CN_COUNT);
}

static void test_c24_refuses_unusable_cn(void **state)
{
	(void)state;
	refused_cert("longcn", TLS_REJECT_CN_INVALID);
	refused_cert("spacecn", TLS_REJECT_CN_INVALID);
	refused_cert("utf8cn", TLS_REJECT_CN_INVALID);
}

/* tls.identity san_uri: the one SAN URI names the client; two refuse. */
static void test_c24_identity_from_san_uri(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	(void)state;
	fx_identity = TLS_IDENTITY_SAN_URI;
	fx_server(x, 0);
	fx_client(x, 0, "uri", NULL);
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_string_equal(x->srv.rq.identity, "spiffe://zgate.test/agent-uri");
	fx_free(x);
	free(x);
	fx_identity = TLS_IDENTITY_SAN_URI;
	refused_cert("twouri", TLS_REJECT_URI_COUNT);
	fx_identity = TLS_IDENTITY_SAN_URI;
	refused_cert("agent-1", TLS_REJECT_URI_COUNT);
}

/* The server knows the client certificate's serial and fingerprint. */
static void test_c24_client_cert_serial_and_fingerprint(void **state)
{
	struct fx *x = fx_open(0);
	WOLFSSL_X509 *c = wolfSSL_X509_load_certificate_file(f("agent-1.crt"), WOLFSSL_FILETYPE_PEM);
	char serial[TLS_SERIAL_HEX_MAX], sha[TLS_SHA256_HEX_LEN];

	(void)state;
	assert_non_null(c);
	assert_int_equal(tls_cert_ids(c, serial, sha), 0);
	wolfSSL_X509_free(c);
	assert_non_null(x->srv.last_conn);
	assert_string_equal(masque_conn_cert_serial(x->srv.last_conn), serial);
	assert_string_equal(masque_conn_cert_sha256(x->srv.last_conn), sha);
	assert_int_equal(strlen(sha), 64);
	fx_free(x);
	free(x);
}

/* Issue 21: once its handshake is complete the server frees its TLS
 * object (about 12 KB a connection) and keeps the client certificate
 * (DER) for the checks after a TLS reload. A client keeps its own (the
 * relay's session ticket comes after the handshake). */
static void test_i21_server_frees_tls_keeps_cert(void **state)
{
	struct fx *x = fx_open(0);
	WOLFSSL_X509 *c = wolfSSL_X509_load_certificate_file(f("agent-1.crt"), WOLFSSL_FILETYPE_PEM);
	const unsigned char *want;
	const uint8_t *der;
	size_t len = 1;
	int wantlen = 0;

	(void)state;
	assert_non_null(c);
	assert_non_null(x->srv.last_conn);
	assert_null(x->srv.last_conn->ssl);
	assert_null(ngtcp2_conn_get_tls_native_handle2(x->srv.last_conn->qc));
	assert_non_null(x->cl[0].ep.conn->ssl);
	want = wolfSSL_X509_get_der(c, &wantlen);
	assert_non_null(want);
	der = masque_conn_peer_cert(x->srv.last_conn, &len);
	assert_non_null(der);
	assert_int_equal(len, (size_t)wantlen);
	assert_memory_equal(der, want, len);
	/* the identity and the certificate's IDs outlive the TLS object */
	assert_string_equal(masque_conn_identity(x->srv.last_conn), "agent-1");
	assert_int_equal(strlen(masque_conn_cert_sha256(x->srv.last_conn)), 64);
	/* a client connection has no client certificate to give */
	assert_null(masque_conn_peer_cert(x->cl[0].ep.conn, &len));
	assert_int_equal(len, 0);
	wolfSSL_X509_free(c);
	fx_free(x);
	free(x);
}

/* Issue 21: once a request is answered neither end keeps its header
 * fields (1.7 KB a tunnel); the tunnel goes on without them. */
static void test_i21_request_fields_not_kept(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	assert_null(x->srv.last_conn->streams);
	assert_int_equal(x->srv.last_conn->nstreams, 0);
	assert_null(x->cl[0].ep.conn->streams);
	assert_int_equal(x->cl[0].ep.conn->nstreams, 0);
	exchange(x, 100);
	fx_free(x);
	free(x);
}

/* Issue 21: neither end lets the other fill a QPACK dynamic table (one
 * request per connection: nothing to index, only memory to keep), and the
 * request and its answer still decode (static table and literals). */
static void test_i21_no_qpack_dynamic_table(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	assert_true(x->srv.last_conn->peer_settings);
	assert_int_equal(x->srv.last_conn->peer_qpack_dtable, 0);
	assert_true(x->cl[0].ep.conn->peer_settings);
	assert_int_equal(x->cl[0].ep.conn->peer_qpack_dtable, 0);
	assert_string_equal(x->srv.rq.authority, "relay.test:4433");
	assert_int_equal(x->cl[0].opened, 1);
	fx_free(x);
	free(x);
}

/* Issue 21: a server's connections share one packet buffer (a client
 * has its own). Two tunnels whose packets the server forwards to each
 * other, from inside one connection's input onto the other (the relay
 * between two of its clients), both ways at once: every packet arrives
 * intact. */
static void test_i21_server_conns_share_packet_buffer(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	size_t sent[2] = { 0, 0 };
	const size_t total = 3000;

	(void)state;
	fx_server(x, 0);
	for (int i = 0; i < 2; i++) {
		fx_client(x, i, i == 1 ? "agent-2" : "agent-1", NULL);
		fx_connect(x, i);
		assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[i], 5 * SEC));
		x->srv.pair[i] = x->srv.last_conn;
	}
	assert_ptr_not_equal(x->srv.pair[0], x->srv.pair[1]);
	for (int i = 0; i < 2; i++) {
		assert_ptr_equal(x->srv.pair[i]->pktbuf, masque_server_pktbuf(x->net.srv));
		assert_false(x->srv.pair[i]->pktbuf_own);
		assert_true(x->cl[i].ep.conn->pktbuf_own);
	}
	x->srv.cross = 1;
	for (int rounds = 0; (sent[0] < total || sent[1] < total) && rounds < 100000; rounds++) {
		for (int i = 0; i < 2; i++) {
			size_t n = total - sent[i] > 32 ? 32 : total - sent[i];

			send_batch(&x->cl[i], x->cl[i].ep.conn, n, &sent[i]);
			x->cl[i].next_seq = (uint32_t)sent[i];
		}
		memnet_run(&x->net, NULL, NULL, SEC / 1000);
	}
	memnet_run(&x->net, NULL, NULL, SEC);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sent[i], total);
		assert_int_equal(x->cl[i].bad, 0);
		assert_int_equal(x->cl[i].pkts, total); /* all of the other's */
		assert_int_equal(x->cl[i].closed, 0);
	}
	fx_free(x);
	free(x);
}

/* exchange() once more, its counters from zero */
static void exchange_again(struct fx *x, size_t total)
{
	x->srv.pkts = x->cl[0].pkts = 0;
	x->cl[0].next_seq = 0;
	exchange(x, total);
}

/* Issue 21: key updates (RFC 9001 §6) work without the server's TLS
 * object, started by either end, several in a row: ngtcp2 derives each
 * next key from the traffic secret it keeps. A key update that failed
 * would leave packets undecryptable; ngtcp2 also refuses to start one
 * before the previous one was confirmed, so each start succeeding proves
 * the one before went through. */
static void test_i21_key_updates_without_server_tls(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_conn *sc = x->srv.last_conn;

	(void)state;
	assert_non_null(sc);
	assert_null(sc->ssl);
	for (int round = 0; round < 4; round++) {
		ngtcp2_conn *qc = round % 2 == 0 ? x->cl[0].ep.conn->qc : sc->qc;

		/* past 3 PTO since the last update was confirmed; traffic
		 * then has both ends derive their next keys */
		x->net.now += SEC;
		exchange_again(x, 20);
		assert_int_equal(ngtcp2_conn_initiate_key_update(qc, x->net.now), 0);
		exchange_again(x, 200);
		memnet_run(&x->net, NULL, NULL, SEC / 10); /* the last ACKs confirm it */
	}
	assert_int_equal(x->cl[0].closed, 0);
	assert_int_equal(x->srv.server_closed, 0);
	fx_free(x);
	free(x);
}

/* Issue 21: with its TLS object gone, the server answers a TLS message a
 * client sends after the handshake (here a KeyUpdate, which QUIC forbids)
 * as TLS 1.3 would: CRYPTO_ERROR with unexpected_message (0x10a). */
static void test_i21_tls_message_after_handshake_refused(void **state)
{
	static const uint8_t key_update[] = { 24, 0, 0, 1, 0 };
	struct fx *x = fx_open(0);
	struct masque_conn *cc = x->cl[0].ep.conn;

	(void)state;
	assert_null(x->srv.last_conn->ssl);
	assert_int_equal(ngtcp2_conn_submit_crypto_data(cc->qc, NGTCP2_ENCRYPTION_LEVEL_1RTT,
							key_update, sizeof(key_update)),
			 0);
	/* anything sent writes the pending CRYPTO frame too */
	assert_int_equal(masque_conn_send_capsule(cc, 0x17f3, (const uint8_t *)"x", 1), 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->srv.server_closed, 1);
	assert_string_equal(x->srv.ci.reason, "TLS message from the client after the handshake");
	assert_string_equal(x->cl[0].ci.reason,
			    "peer refused the TLS handshake: alert 10 (unexpected message)");
	fx_free(x);
	free(x);
}

/* With a CRL: a listed certificate is refused as revoked, others pass;
 * past the CRL's nextUpdate everyone is refused, as crl_expired. */
static void test_c24_crl_revoked_and_expired(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	(void)state;
	fx_crl = "ca.crl";
	refused_cert("revoked", TLS_REJECT_REVOKED);
	fx_crl = "ca.crl";
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	fx_free(x);
	free(x);
	fx_crl = "expired.crl";
	refused_cert("agent-1", TLS_REJECT_CRL_EXPIRED);
	fx_crl = "expired.crl";
	refused_cert("revoked", TLS_REJECT_CRL_EXPIRED);
}

/* ------------------------------------------------------------------ */
/* ALPN (C25, RFC 9001 §8.1)                                          */

/* The protocol wolfSSL says ssl negotiated, "" when none. */
static const char *alpn_of(WOLFSSL *ssl)
{
	static char out[32];
	char *name = NULL;
	unsigned short len = 0;

	out[0] = '\0';
	if (wolfSSL_ALPN_GetProtocol(ssl, &name, &len) == WOLFSSL_SUCCESS && name != NULL &&
	    len < sizeof(out)) {
		memcpy(out, name, len);
		out[len] = '\0';
	}
	return out;
}

static void test_c25_both_roles_negotiate_h3(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	assert_non_null(x->srv.last_conn);
	assert_string_equal(alpn_of(x->cl[0].ep.conn->ssl), "h3");
	assert_true(tls_alpn_is_h3(x->cl[0].ep.conn->ssl));
	/* the server checked it when its handshake completed (the refusals
	 * below) and has freed its TLS object since (issue 21) */
	assert_null(x->srv.last_conn->ssl);
	fx_free(x);
	free(x);
}

/* Client i (agent-1, a valid certificate) offers client_alpn to a server
 * accepting server_alpn (NULL: "h3"); runs until the client closes. */
static struct fx *alpn_attempt(const char *client_alpn, const char *server_alpn)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	fx_server(x, 0);
	if (server_alpn != NULL) {
		x->scfg.test_alpn = server_alpn;
		masque_server_del(x->net.srv);
		assert_int_equal(masque_server_new(&x->scfg, &cbs, &x->srv, &x->net.srv), 0);
	}
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].test_alpn = client_alpn;
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 30 * SEC));
	memnet_run(&x->net, NULL, NULL, SEC); /* the server ends its side */
	assert_int_equal(x->cl[0].opened, 0);
	assert_int_equal(x->srv.requests, 0);
	return x;
}

/* The server's verdict: one handshake failure "alpn", no certificate
 * refusal (the certificate was fine), counted for the metrics. */
static void assert_refused_for_alpn(struct fx *x)
{
	struct masque_server_stats st;

	assert_int_equal(x->srv.rejects, 0);
	assert_int_equal(x->srv.hs_failures, 1);
	assert_int_equal(x->srv.hs_why, MASQUE_HS_ALPN);
	assert_string_equal(masque_hs_fail_name(x->srv.hs_why), "alpn");
	assert_int_equal(x->srv.ci.hs_fail, MASQUE_HS_ALPN);
	assert_int_equal(x->srv.ci.reject, TLS_ACCEPTED);
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.hs_fail[MASQUE_HS_ALPN], 1);
	assert_int_equal(st.reject[TLS_REJECT_NO_CERT], 0);
}

static void test_c25_server_refuses_other_alpn(void **state)
{
	struct fx *x = alpn_attempt("h2,hq-interop", NULL);

	(void)state;
	/* no_application_protocol: CRYPTO_ERROR 0x178 */
	assert_non_null(strstr(x->cl[0].ci.reason, "alert 120"));
	assert_refused_for_alpn(x);
	assert_non_null(strstr(x->srv.hs_detail, "alert 120"));
	fx_free(x);
	free(x);
}

static void test_c25_server_refuses_client_without_alpn(void **state)
{
	struct fx *x = alpn_attempt("", NULL);

	(void)state;
	assert_non_null(strstr(x->cl[0].ci.reason, "ALPN"));
	assert_refused_for_alpn(x);
	fx_free(x);
	free(x);
}

static void test_c25_client_refuses_server_without_alpn(void **state)
{
	struct fx *x = alpn_attempt(NULL, "");

	(void)state;
	assert_non_null(strstr(x->cl[0].ci.reason, "relay did not negotiate ALPN \"h3\""));
	/* The server learns why: the client's close is CRYPTO_ERROR 0x178. */
	assert_non_null(strstr(x->srv.ci.reason, "alert 120"));
	assert_refused_for_alpn(x);
	fx_free(x);
	free(x);
}

static void test_c25_client_refuses_server_with_other_alpn(void **state)
{
	struct fx *x = alpn_attempt("h3,h2", "h2");

	(void)state;
	/* The client offered h2 as well: the relay picked it, so the
	 * connection must still close (zgate speaks h3 only). */
	assert_non_null(strstr(x->cl[0].ci.reason, "relay did not negotiate ALPN \"h3\""));
	assert_refused_for_alpn(x);
	fx_free(x);
	free(x);
}

/* A client that gives up on the relay's certificate is not a refused
 * client certificate: the relay never saw one. */
static void test_c25_client_abort_is_not_cert_rejected(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_server_stats st;

	(void)state;
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].server_name = "not-the-relay.test";
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 30 * SEC));
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_non_null(strstr(x->cl[0].ci.reason, "relay certificate refused"));
	assert_int_equal(x->srv.rejects, 0);
	assert_int_equal(x->srv.hs_failures, 1);
	assert_int_equal(x->srv.hs_why, MASQUE_HS_CLIENT_ABORTED);
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.reject[TLS_REJECT_NO_CERT], 0);
	assert_int_equal(st.hs_fail[MASQUE_HS_CLIENT_ABORTED], 1);
	fx_free(x);
	free(x);
}

/* A relay named by an address (--relay 127.0.0.1:4433 with no
 * --server-name) is checked against its certificate's iPAddress SANs
 * (tls_check_peer_name: wolfSSL 5.9's domain-name check refuses an address
 * outright): the test relay's certificate names 127.0.0.1, so that
 * connects; 127.0.0.2 is refused as a name mismatch, and so is an IPv6
 * address it does not list. */
static void ip_name_attempt(const char *name, int want_open)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].cert_name = name;
	fx_connect(x, 0);
	if (want_open) {
		assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
		assert_int_equal(x->cl[0].closed, 0);
		assert_int_equal(x->cl[0].opened, 1);
	} else {
		assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 30 * SEC));
		memnet_run(&x->net, NULL, NULL, SEC);
		assert_int_equal(x->cl[0].opened, 0);
		assert_non_null(strstr(x->cl[0].ci.reason, "relay certificate refused"));
		assert_int_equal(x->srv.requests, 0);
	}
	fx_free(x);
	free(x);
}

static void test_c24_relay_named_by_address(void **state)
{
	(void)state;
	ip_name_attempt("127.0.0.1", 1);
	ip_name_attempt("127.0.0.2", 0);
	ip_name_attempt("::1", 0);
}

static void test_c25_hs_fail_names(void **state)
{
	(void)state;
	for (int i = 0; i < MASQUE_HS_COUNT; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(masque_hs_fail_name(i), masque_hs_fail_name(j));
	assert_string_equal(masque_hs_fail_name(MASQUE_HS_VERSION), "version");
	assert_string_equal(masque_hs_fail_name(MASQUE_HS_TRANSPORT_PARAMS), "transport_parameters");
	assert_string_equal(masque_hs_fail_name(MASQUE_HS_COUNT), "protocol");
}

/* ------------------------------------------------------------------ */
/* CRYPTO data to wolfSSL (issue 15 item 5)                           */

/* A wolfSSL QUIC end point without ngtcp2: what it sends is kept. */
static uint8_t hs_out[8192];
static size_t hs_out_len;

static int t_secrets(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL level, const uint8_t *r,
		     const uint8_t *w, size_t n)
{
	(void)ssl, (void)level, (void)r, (void)w, (void)n;
	return 1;
}

static int t_add(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL level, const uint8_t *data, size_t len)
{
	(void)ssl;
	if (level == wolfssl_encryption_initial && hs_out_len + len <= sizeof(hs_out)) {
		memcpy(hs_out + hs_out_len, data, len);
		hs_out_len += len;
	}
	return 1;
}

static int t_flush(WOLFSSL *ssl)
{
	(void)ssl;
	return 1;
}

static int t_alert(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL level, uint8_t alert)
{
	(void)ssl, (void)level, (void)alert;
	return 1;
}

static const WOLFSSL_QUIC_METHOD t_method = { t_secrets, t_add, t_flush, t_alert };

static WOLFSSL *quic_end(WOLFSSL_CTX *ctx, int server)
{
	static const uint8_t tp[] = { 0x04, 0x01, 0x20 }; /* initial_max_data 32 */
	WOLFSSL *ssl = wolfSSL_new(ctx);

	assert_non_null(ssl);
	assert_int_equal(wolfSSL_set_quic_method(ssl, &t_method), WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_set_quic_transport_params(ssl, tp, sizeof(tp)), WOLFSSL_SUCCESS);
	assert_int_equal(tls_set_alpn(ssl, NULL), 0);
	if (server)
		wolfSSL_set_accept_state(ssl);
	else
		wolfSSL_set_connect_state(ssl);
	return ssl;
}

static int to_wolfssl(WOLFSSL *ssl, const uint8_t *data, size_t len)
{
	return wolfSSL_provide_quic_data(ssl, wolfssl_encryption_initial, data, len) ==
			       WOLFSSL_SUCCESS
		       ? 0
		       : -1;
}

/* The relay's wolfSSL answers a real ClientHello that arrives cut in
 * three anywhere in its first bytes, its four-byte message header among
 * them, as ngtcp2 hands CRYPTO data over (peers split it anywhere; ngtcp2
 * clients cut their ClientHello into random pieces). wolfSSL 5.7.2 failed
 * wolfSSL_provide_quic_data() with no alert when a header it got split
 * was completed by data ending exactly at the header's end (the cuts 3|4
 * and 1|4: a valid agent refused, audited as no_certificate, closed with
 * alert 0), and zgate held such headers back until whole; the pinned
 * wolfSSL has the fix (wolfSSL pull request 8340), so CRYPTO data goes to
 * it as it comes, and this test is what keeps a pin without the fix
 * out. */
static void test_wolfssl_takes_client_hello_cut_anywhere(void **state)
{
	WOLFSSL_CTX *sctx = NULL, *cctx = NULL;
	WOLFSSL *cl, *srv;
	uint8_t ch[2048];
	size_t chlen, i, j;
	char err[256];

	(void)state;
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL, &sctx,
					    err, sizeof(err)),
			 0);
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), f("ca.crt"), &cctx,
					    err, sizeof(err)),
			 0);
	cl = quic_end(cctx, 0);
	hs_out_len = 0;
	assert_true(wolfSSL_quic_do_handshake(cl) <= 0); /* waits for the ServerHello */
	assert_true(hs_out_len > 100 && hs_out_len < sizeof(ch));
	assert_int_equal(hs_out[0], 1); /* client_hello */
	memcpy(ch, hs_out, hs_out_len);
	chlen = hs_out_len;
	wolfSSL_free(cl);
	for (i = 1; i <= 6; i++) {
		for (j = i + 1; j <= 8; j++) {
			srv = quic_end(sctx, 1);
			hs_out_len = 0;
			assert_int_equal(to_wolfssl(srv, ch, i), 0);
			assert_int_equal(to_wolfssl(srv, ch + i, j - i), 0);
			assert_int_equal(to_wolfssl(srv, ch + j, chlen - j), 0);
			/* the server has read the ClientHello and answered it */
			assert_true(wolfSSL_quic_do_handshake(srv) <= 0);
			assert_int_equal(wolfSSL_get_error(srv, 0), WOLFSSL_ERROR_WANT_READ);
			assert_true(hs_out_len > 0);
			assert_int_equal(hs_out[0], 2); /* server_hello */
			wolfSSL_free(srv);
		}
	}
	wolfSSL_CTX_free(sctx);
	wolfSSL_CTX_free(cctx);
}

static void refused_request(const char *protocol, int no_cp, const char *path, int status,
			    int want)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_server_stats st;

	fx_server(x, 0);
	x->srv.status = status;
	fx_client(x, 0, "agent-1", path);
	x->ccfg[0].test_protocol = protocol;
	x->ccfg[0].test_no_capsule_protocol = no_cp;
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].opened, 0);
	assert_int_equal(x->cl[0].ci.status, want);
	/* issue 17.5: the 400s this layer answers itself are counted (the
	 * owner's own refusals are the owner's to count) */
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.refused_bad_request, want == 400 ? 1 : 0);
	assert_int_equal(st.refused_goaway, 0);
	assert_int_equal(st.refused_internal, 0);
	fx_free(x);
	free(x);
}

static void test_c05_wrong_protocol_400(void **state)
{
	(void)state;
	refused_request("connect-udp", 0, NULL, 200, 400);
}

static void test_c05_missing_capsule_protocol_400(void **state)
{
	(void)state;
	refused_request(NULL, 1, NULL, 200, 400);
}

static void test_c03_bad_path_400(void **state)
{
	(void)state;
	refused_request(NULL, 0, "/.well-known/masque/ip/300.1.1.1/*/", 200, 400);
	refused_request(NULL, 0, "/somewhere/else", 200, 400);
	refused_request(NULL, 0, "/.well-known/masque/ip/*/256/", 200, 400);
}

static void test_c05_owner_refusals_403_503(void **state)
{
	(void)state;
	refused_request(NULL, 0, NULL, 403, 403);
	refused_request(NULL, 0, NULL, 503, 503);
}

static int got_request(void *arg)
{
	return ((struct side *)arg)->requests > 0;
}

/* The owner answers later (a DNS-name target being resolved, C03): a
 * refusal carries Proxy-Status; an acceptance opens the tunnel. */
static void test_c03_deferred_answer(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_accept acc;
	struct cip_route rt = { 4, { 192, 0, 2, 0 }, { 192, 0, 2, 255 }, 0 };

	(void)state;
	fx_server(x, 0);
	x->srv.defer = 1;
	fx_client(x, 0, "agent-1", "/.well-known/masque/ip/example.org/*/");
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, got_request, &x->srv, 5 * SEC));
	assert_string_equal(x->srv.rq.dns, "example.org");
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(x->cl[0].opened, 0); /* nothing answered yet */
	assert_int_equal(masque_conn_answer(x->srv.last_conn, 502, NULL, "zgate; error=dns_error"), 0);
	assert_int_equal(masque_conn_answer(x->srv.last_conn, 502, NULL, NULL), ZG_ERR_STATE);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].ci.status, 502);
	/* the client's reason names the Proxy-Status (issue 20.2) */
	assert_string_equal(x->cl[0].ci.reason,
			    "relay refused the tunnel: HTTP 502 (Proxy-Status: zgate; error=dns_error)");

	fx_client(x, 1, "agent-1", "/.well-known/masque/ip/example.org/*/");
	fx_connect(x, 1);
	x->srv.requests = 0;
	assert_true(memnet_run(&x->net, got_request, &x->srv, 5 * SEC));
	memset(&acc, 0, sizeof(acc));
	acc.naddrs = 1;
	acc.addrs[0].version = 4;
	acc.addrs[0].addr[0] = 10;
	acc.addrs[0].prefix_len = 32;
	acc.routes = &rt;
	acc.nroutes = 1;
	assert_int_equal(masque_conn_answer(x->srv.last_conn, 200, &acc, NULL), 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[1], 5 * SEC));
	assert_int_equal(x->cl[1].opened, 1);
	assert_int_equal(x->cl[1].nroutes, 1);
	fx_free(x);
	free(x);
}

static void test_c03_scope_decoded(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char a[INET6_ADDRSTRLEN];

	(void)state;
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", "/.well-known/masque/ip/192.0.2.0%2F24/17/");
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_false(x->srv.rq.any_target);
	assert_false(x->srv.rq.any_proto);
	assert_int_equal(x->srv.rq.ipproto, 17);
	inet_ntop(AF_INET, x->srv.rq.target.addr, a, sizeof(a));
	assert_string_equal(a, "192.0.2.0");
	assert_int_equal(x->srv.rq.target.prefix_len, 24);
	fx_free(x);
	free(x);
}

static void test_c06_unknown_capsules_skipped(void **state)
{
	struct fx *x = fx_open(0);
	/* GREASE-like type 0x2a (unknown) with 3 bytes, then a DATAGRAM
	 * capsule carrying a packet: the packet must still arrive. */
	uint8_t raw[64] = { 0x40, 0x2a, 0x03, 1, 2, 3 };
	uint8_t *p = raw + 6;
	uint8_t pkt[16] = { 0x45 };
	uint32_t seq = 0;
	size_t k;

	(void)state;
	memcpy(pkt + 4, &seq, 4);
	for (k = 8; k < sizeof(pkt); k++)
		pkt[k] = (uint8_t)(seq + k);
	assert_int_equal(httpdg_encode_capsule(&p, raw + sizeof(raw), 0, pkt, sizeof(pkt)), 0);
	assert_int_equal(masque_conn_queue_raw(x->cl[0].ep.conn, raw, (size_t)(p - raw)), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(x->srv.pkts, 1);
	assert_int_equal(x->srv.bad, 0);
	assert_int_equal(x->cl[0].closed, 0);
	fx_free(x);
	free(x);
}

/* C26: DNS_ASSIGN rides the 200 after ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT. */
static size_t dns_assign_capsule(uint8_t *buf, size_t cap, const char *domain)
{
	static struct cipdns_assign a;
	uint8_t *p = buf;

	memset(&a, 0, sizeof(a));
	a.n = 1;
	a.cfg[0].nns = 1;
	a.cfg[0].ns[0].priority = 1;
	a.cfg[0].ns[0].n4 = 1;
	inet_pton(AF_INET, "10.100.0.1", a.cfg[0].ns[0].v4[0]);
	a.cfg[0].ninternal = 1;
	strcpy(a.cfg[0].internal[0], domain);
	assert_int_equal(cipdns_assign_encode(&p, buf + cap, &a), 0);
	return (size_t)(p - buf);
}

static struct fx *fx_open_dns(int client_wants)
{
	static uint8_t caps[256];
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	fx_server(x, 0);
	x->srv.nextra = dns_assign_capsule(caps, sizeof(caps), "saas.example");
	x->srv.extra = caps;
	fx_client(x, 0, "agent-1", NULL);
	if (client_wants) {
		x->ccfg[0].ext_capsules[0] = CAPSULE_DNS_ASSIGN;
		x->ccfg[0].n_ext_capsules = 1;
	}
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(x->cl[0].closed, 0);
	return x;
}

static void test_c26_dns_assign_after_routes(void **state)
{
	struct fx *x = fx_open_dns(1);
	static struct cipdns_assign got;

	(void)state;
	assert_int_equal(x->cl[0].ncaps, 1);
	assert_true(x->cl[0].cap_type == CAPSULE_DNS_ASSIGN);
	assert_int_equal(x->cl[0].routes_before_cap, 1); /* never before the routes */
	assert_int_equal(cipdns_assign_decode(x->cl[0].cap, x->cl[0].cap_len, &got), 0);
	assert_string_equal(got.cfg[0].internal[0], "saas.example");
	fx_free(x);
	free(x);
}

/* C26 + C06: a client that does not use DNS_ASSIGN ignores it and the
 * tunnel works as before. */
static void test_c26_dns_assign_ignored_by_plain_client(void **state)
{
	struct fx *x = fx_open_dns(0);
	uint8_t pkt[64] = { 0x45 };
	uint32_t seq = 0;
	size_t k;

	(void)state;
	assert_int_equal(x->cl[0].ncaps, 0);
	assert_true(masque_conn_is_open(x->cl[0].ep.conn));
	memcpy(pkt + 4, &seq, 4);
	for (k = 8; k < sizeof(pkt); k++)
		pkt[k] = (uint8_t)(seq + k);
	assert_int_equal(masque_conn_send(x->cl[0].ep.conn, pkt, sizeof(pkt)), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(x->srv.pkts, 1);
	assert_int_equal(x->cl[0].closed, 0);
	fx_free(x);
	free(x);
}

/* C26: a later DNS_ASSIGN (masque_conn_send_capsule) replaces the first. */
static void test_c26_dns_assign_sent_later(void **state)
{
	struct fx *x = fx_open_dns(1);
	uint8_t buf[256];
	size_t n = dns_assign_capsule(buf, sizeof(buf), "lab.example");
	const uint8_t *q = buf;
	uint64_t t, l;
	static struct cipdns_assign got;

	(void)state;
	assert_int_equal(varint_decode(&q, buf + n, &t), 0);
	assert_int_equal(varint_decode(&q, buf + n, &l), 0);
	assert_int_equal(masque_conn_send_capsule(x->srv.last_conn, t, q, (size_t)l), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(x->cl[0].ncaps, 2);
	assert_int_equal(cipdns_assign_decode(x->cl[0].cap, x->cl[0].cap_len, &got), 0);
	assert_string_equal(got.cfg[0].internal[0], "lab.example");
	fx_free(x);
	free(x);
}

/* C26: an owner that finds a DNS_ASSIGN malformed aborts the tunnel. */
static void test_c26_owner_error_aborts(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	static uint8_t caps[256];

	(void)state;
	fx_server(x, 0);
	x->srv.nextra = dns_assign_capsule(caps, sizeof(caps), "saas.example");
	x->srv.extra = caps;
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].ext_capsules[0] = CAPSULE_DNS_ASSIGN;
	x->ccfg[0].n_ext_capsules = 1;
	x->cl[0].cap_fail = ZG_ERR_MALFORMED;
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].ncaps, 1);
	fx_free(x);
	free(x);
}

static void test_c07_bad_route_advertisement_aborts(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_conn *sc = x->srv.last_conn;
	/* ROUTE_ADVERTISEMENT with two IPv4 ranges out of order. */
	uint8_t raw[] = { 0x03, 18,
			  4, 10, 0, 0, 10, 10, 0, 0, 20, 0,
			  4, 9, 0, 0, 0, 9, 0, 0, 1, 0 };

	(void)state;
	assert_non_null(sc);
	raw[1] = 20;
	assert_int_equal(masque_conn_queue_raw(sc, raw, sizeof(raw)), 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].nroute_events, 1); /* the bad list was not applied */
	/* the reason names the capsule */
	assert_non_null(strstr(x->cl[0].ci.reason, "bad ROUTE_ADVERTISEMENT capsule from peer"));
	fx_free(x);
	free(x);
}

static int routes_changed(void *arg)
{
	return ((struct side *)arg)->nroute_events > 1;
}

/* C07: a new advertisement (after a policy reload) leaves at once, not
 * with the next packet or timer, and replaces the list. */
static void test_c07_new_routes_sent_at_once(void **state)
{
	struct fx *x = fx_open(0);
	struct cip_route rt = { 4, { 172, 16, 0, 0 }, { 172, 16, 255, 255 }, 0 };

	(void)state;
	memnet_run(&x->net, NULL, NULL, SEC); /* let every ACK and timer settle */
	assert_int_equal(masque_conn_send_routes(x->srv.last_conn, &rt, 1), 0);
	/* One-way delay is 1 ms: 5 ms is far below any ACK or PTO timer. */
	assert_true(memnet_run(&x->net, routes_changed, &x->cl[0], 5 * SEC / 1000));
	assert_int_equal(x->cl[0].nroutes, 1);
	assert_int_equal(x->cl[0].routes[0].start[0], 172);
	fx_free(x);
	free(x);
}

static int routes_seen(void *arg)
{
	return ((struct side *)arg)->nroute_events > 0;
}

/* C07: the client may advertise routes too (RFC 9484 §4.7.3: both
 * endpoints); the server's owner gets them (a connector announcing its
 * prefixes). */
static void test_c07_client_advertises_routes(void **state)
{
	struct fx *x = fx_open(0);
	struct cip_route rt[2] = { { 4, { 10, 20, 0, 0 }, { 10, 20, 255, 255 }, 0 },
				   { 6, { 0xfd, 0x20 }, { 0xfd, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 0 } };

	(void)state;
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(x->srv.nroute_events, 0);
	assert_int_equal(masque_conn_send_routes(x->cl[0].ep.conn, rt, 2), 0);
	assert_true(memnet_run(&x->net, routes_seen, &x->srv, 5 * SEC / 1000));
	assert_int_equal(x->srv.nroute_events, 1);
	assert_int_equal(x->srv.nroutes, 2);
	assert_int_equal(x->srv.routes[0].start[1], 20);
	assert_int_equal(x->srv.routes[1].version, 6);
	assert_int_equal(x->srv.routes[1].end[5], 0xff);
	fx_free(x);
	free(x);
}

static void test_c09_empty_address_request_aborts(void **state)
{
	struct fx *x = fx_open(0);
	uint8_t raw[] = { 0x02, 0x00 };

	(void)state;
	assert_int_equal(masque_conn_queue_raw(x->cl[0].ep.conn, raw, sizeof(raw)), 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->srv.server_closed, 1);
	fx_free(x);
	free(x);
}

/* A raw QUIC DATAGRAM, retried while pacing holds it back. */
static int raw_dgram(struct fx *x, struct masque_conn *c, const uint8_t *d, size_t len)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (masque_conn_send_raw_datagram(c, d, len) == 0)
			return 0;
		memnet_run(&x->net, NULL, NULL, SEC / 100);
	}
	return -1;
}

static void test_c12_unknown_context_dropped(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_stats st;
	/* Quarter Stream ID 0 (stream 0), Context ID 7, payload. */
	uint8_t dg[] = { 0x00, 0x07, 0x45, 0, 0, 0 };

	(void)state;
	assert_int_equal(raw_dgram(x, x->cl[0].ep.conn, dg, sizeof(dg)), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	masque_conn_stats(x->srv.last_conn, &st);
	assert_int_equal(st.drop_context, 1);
	assert_int_equal(x->srv.pkts, 0);
	assert_int_equal(x->cl[0].closed, 0);
	fx_free(x);
	free(x);
}

static void test_c14_datagram_for_other_stream_dropped(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_stats st;
	uint8_t dg[] = { 0x05, 0x00, 0x45, 0, 0, 0 }; /* stream 20: no tunnel */

	(void)state;
	assert_int_equal(raw_dgram(x, x->cl[0].ep.conn, dg, sizeof(dg)), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	masque_conn_stats(x->srv.last_conn, &st);
	assert_int_equal(st.drop_no_tunnel, 1);
	assert_int_equal(x->cl[0].closed, 0);
	fx_free(x);
	free(x);
}

static void test_c14_quarter_stream_id_too_big_closes(void **state)
{
	struct fx *x = fx_open(0);
	/* 8-byte varint 2^60 */
	uint8_t dg[] = { 0xd0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x45 };

	(void)state;
	assert_int_equal(raw_dgram(x, x->cl[0].ep.conn, dg, sizeof(dg)), 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].ci.app_error, 0x33); /* H3_DATAGRAM_ERROR */
	fx_free(x);
	free(x);
}

static void test_goaway_reaches_client_and_refuses_new(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	masque_server_goaway(x->net.srv);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(x->cl[0].goaway, 1);
	assert_int_equal(x->cl[0].closed, 0); /* the tunnel drains, not cut */
	fx_client(x, 1, "agent-1", NULL);
	fx_connect(x, 1);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[1], 5 * SEC));
	assert_int_equal(x->cl[1].opened, 0);
	fx_free(x);
	free(x);
}

static void test_retry_then_handshake(void **state)
{
	struct fx *x = fx_open(1);
	struct masque_server_stats st;

	(void)state;
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.retries_sent, 1);
	assert_int_equal(x->cl[0].opened, 1);
	fx_free(x);
	free(x);
}

static void test_stateless_reset_for_unknown_connection(void **state)
{
	struct fx *x = fx_open(0);
	struct masque_server_stats st;
	uint8_t junk[100];
	size_t before = x->net.qlen;

	(void)state;

	memset(junk, 0x5a, sizeof(junk));
	junk[0] = 0x40; /* short header, fixed bit */
	masque_server_input(x->net.srv, (struct sockaddr *)&x->net.server.addr,
			    sizeof(x->net.server.addr), (struct sockaddr *)&x->cl[0].ep.addr,
			    sizeof(x->cl[0].ep.addr), junk, sizeof(junk));
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.stateless_resets, 1);
	assert_int_equal(x->net.qlen, before + 1);
	assert_true(x->net.q[(x->net.qhead + before) % MEMNET_QUEUE].len < sizeof(junk));
	fx_free(x);
	free(x);
}

/* A relay restarted with the same static secret (derived from its key)
 * resets the connections it lost at once: the client learns within a
 * round trip, not after its idle timeout. */
static void test_stateless_reset_after_restart(void **state)
{
	static const uint8_t secret[32] = { 1, 2, 3 };
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_server *fresh;
	uint8_t pkt[64] = { 0x45 };
	masque_time t0;

	(void)state;
	fx_server(x, 0);
	x->scfg.static_secret = secret;
	masque_server_del(x->net.srv); /* again, now with the static secret */
	assert_int_equal(masque_server_new(&x->scfg, &cbs, &x->srv, &x->net.srv), 0);
	fx_client(x, 0, "agent-1", NULL);
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	/* The relay dies without a word: nothing it sends now arrives. */
	x->net.drop_every = 1;
	masque_server_del(x->net.srv);
	x->net.drop_every = 0;
	assert_int_equal(masque_server_new(&x->scfg, &cbs, &x->srv, &fresh), 0);
	x->net.srv = fresh;
	t0 = x->net.now;
	assert_int_equal(masque_conn_send(x->cl[0].ep.conn, pkt, sizeof(pkt)), 0);
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 5 * SEC));
	assert_true(x->net.now - t0 < SEC / 10); /* idle timeout is 30 s */
	fx_free(x);
	free(x);
}

static void test_c11_idle_timeout_closes_both(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	assert_true(memnet_run(&x->net, is_closed, &x->cl[0], 120 * SEC));
	assert_true(x->cl[0].ci.idle);
	memnet_run(&x->net, NULL, NULL, 120 * SEC);
	assert_int_equal(x->srv.server_closed, 1);
	assert_int_equal(masque_server_conns(x->net.srv), 0);
	fx_free(x);
	free(x);
}

/* 16.8a: the peer's close reason reaches on_close (and so the log)
 * escaped: a forged "\n<log line>" cannot start a line of its own. */
static int server_saw_close(void *arg)
{
	return ((struct side *)arg)->server_closed != 0;
}

static void test_peer_close_reason_escaped(void **state)
{
	struct fx *x = fx_open(0);

	(void)state;
	masque_conn_close(x->cl[0].ep.conn, 0x10c, "bye\n2030-01-01T00:00:00.000Z info on_close: forged\x1b[2J");
	assert_true(memnet_run(&x->net, server_saw_close, &x->srv, 5 * SEC));
	assert_null(strchr(x->srv.ci.reason, '\n'));
	assert_null(strchr(x->srv.ci.reason, '\x1b'));
	assert_non_null(strstr(x->srv.ci.reason, "(H3 0x10c: bye\\n2030-01-01T00:00:00.000Z info"));
	x->cl[0].ep.conn = NULL; /* closed from our side; freed by the loop */
	memnet_run(&x->net, NULL, NULL, SEC);
	fx_free(x);
	free(x);
}

static void test_keepalive_keeps_idle_tunnel(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	(void)state;
	fx_server(x, 0);
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].keepalive_ms = 10000;
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	memnet_run(&x->net, is_closed, &x->cl[0], 300 * SEC);
	assert_int_equal(x->cl[0].closed, 0);
	fx_free(x);
	free(x);
}

static void test_lossy_path_still_delivers_capsules(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	(void)state;
	fx_server(x, 0);
	x->net.drop_every = 5;
	fx_client(x, 0, "agent-1", NULL);
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 60 * SEC));
	assert_int_equal(x->cl[0].opened, 1);
	assert_int_equal(x->cl[0].nroutes, 2);
	x->net.drop_every = 0;
	fx_free(x);
	free(x);
}

/* ------------------------------------------------------------------ */
/* handshake admission (issue 16.7)                                   */

static int all_settled(void *arg)
{
	struct fx *x = arg;
	int i;

	for (i = 0; i < 3; i++)
		if (!x->cl[i].closed && !opened_and_routed(&x->cl[i]))
			return 0;
	return 1;
}

static int count_open(struct fx *x)
{
	int i, n = 0;

	for (i = 0; i < 3; i++)
		n += x->cl[i].opened && !x->cl[i].closed;
	return n;
}

/* Three handshakes at once from one address with a per-source cap of 2
 * (no Retry): the third is refused at once; once the first two are done,
 * the address may start another. */
static void test_i16_7_handshakes_per_source_capped(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_config lim = { .retry_off = 1, .max_handshakes_per_source = 2 };
	struct masque_server_stats st;
	int i;

	(void)state;
	assert_non_null(x);
	fx_server_lim(x, 0, &lim);
	for (i = 0; i < 3; i++) {
		fx_client(x, i, i == 1 ? "agent-2" : "agent-1", NULL);
		fx_connect(x, i);
	}
	assert_true(memnet_run(&x->net, all_settled, x, 5 * SEC));
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.refused_source, 1);
	assert_int_equal(count_open(x), 2);
	assert_int_equal(x->cl[2].closed, 1);
	/* the two finished their handshakes: the address may start more */
	wolfSSL_CTX_free(x->cctx[2]);
	fx_client(x, 2, "agent-1", NULL);
	fx_connect(x, 2);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[2], 5 * SEC));
	assert_int_equal(x->cl[2].closed, 0);
	fx_free(x);
	free(x);
}

/* With Retry on, a busy source is asked to prove its address rather than
 * refused: only handshakes that did (Retry token) count toward refusing
 * it, so forged Initials in its name cannot lock it out. Cap 1: the first
 * goes through unvalidated, the other two get a Retry, one of those is
 * admitted with its token, the last is refused. */
static void test_i16_7_busy_source_gets_retry_first(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_config lim = { .max_handshakes_per_source = 1 };
	struct masque_server_stats st;
	int i;

	(void)state;
	assert_non_null(x);
	fx_server_lim(x, 0, &lim);
	for (i = 0; i < 3; i++) {
		fx_client(x, i, i == 1 ? "agent-2" : "agent-1", NULL);
		fx_connect(x, i);
	}
	assert_true(memnet_run(&x->net, all_settled, x, 5 * SEC));
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.retries_source, 2);
	assert_int_equal(st.refused_source, 1);
	assert_int_equal(count_open(x), 2);
	fx_free(x);
	free(x);
}

/* max_handshakes in progress: the rest of the connection table stays for
 * connections past their handshake. */
static void test_i16_7_max_handshakes(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_config lim = { .retry_off = 1, .max_handshakes = 1 };
	struct masque_server_stats st;
	int i;

	(void)state;
	assert_non_null(x);
	fx_server_lim(x, 0, &lim);
	for (i = 0; i < 2; i++) {
		fx_client(x, i, i == 1 ? "agent-2" : "agent-1", NULL);
		fx_connect(x, i);
	}
	assert_true(memnet_run(&x->net, is_closed, &x->cl[1], 5 * SEC));
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.refused_handshakes, 1);
	assert_int_equal(x->cl[0].closed, 0);
	assert_int_equal(masque_server_conns(x->net.srv), 1);
	fx_free(x);
	free(x);
}

/* Takes the next datagram toward the server off the in-memory network and
 * feeds it to the server; returns what masque_server_input() said, or -1
 * when none is queued. */
static int feed_next(struct fx *x)
{
	struct memnet_pkt *p;
	struct sockaddr_in from;
	int i, r;

	if (x->net.qlen == 0)
		return -1;
	p = &x->net.q[x->net.qhead];
	assert_int_equal(p->to_server, 1);
	for (i = 0; i < 3; i++)
		if (x->cl[i].ep.port == p->port)
			break;
	assert_true(i < 3);
	from = x->cl[i].ep.addr;
	r = masque_server_input(x->net.srv, (struct sockaddr *)&x->net.server.addr,
				sizeof(x->net.server.addr), (struct sockaddr *)&from, sizeof(from),
				p->data, p->len);
	x->net.qhead = (x->net.qhead + 1) % MEMNET_QUEUE;
	x->net.qlen--;
	return r;
}

/* accepts_per_round bounds the handshakes started per turn of the event
 * loop: the Initial beyond it is handed back untouched and goes through in
 * the next round; end_round() defers even within the round's share. */
static void test_i16_7_accepts_per_round(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_config lim = { .retry_off = 1, .accepts_per_round = 1 };
	struct masque_server_stats st;
	size_t per;
	int i;

	(void)state;
	assert_non_null(x);
	fx_server_lim(x, 0, &lim);
	for (i = 0; i < 2; i++) {
		fx_client(x, i, i == 1 ? "agent-2" : "agent-1", NULL);
		fx_connect(x, i);
	}
	/* each client's first flight: one padded Initial (C15), or more
	 * when the ClientHello does not fit in one (fx_big_hello, ML-KEM) */
	per = x->net.qlen / 2;
	assert_int_equal(x->net.qlen, 2 * per);
	assert_true(fx_big_hello ? per >= 2 : per >= 1);
	masque_server_new_round(x->net.srv);
	/* the first starts the connection, the rest of its flight finds it */
	for (i = 0; i < (int)per; i++)
		assert_int_equal(feed_next(x), 0);
	assert_int_equal(masque_server_conns(x->net.srv), 1);
	/* the second waits: nothing was done with it */
	{
		struct memnet_pkt saved = x->net.q[x->net.qhead];
		size_t sent = x->net.sent;

		assert_int_equal(feed_next(x), MASQUE_DEFERRED);
		assert_int_equal(masque_server_conns(x->net.srv), 1);
		assert_int_equal(x->net.sent, sent);
		masque_server_new_round(x->net.srv);
		masque_server_end_round(x->net.srv);
		x->net.qhead = (x->net.qhead + MEMNET_QUEUE - 1) % MEMNET_QUEUE;
		x->net.qlen++;
		x->net.q[x->net.qhead] = saved;
		assert_int_equal(feed_next(x), MASQUE_DEFERRED);
		masque_server_new_round(x->net.srv);
		x->net.qhead = (x->net.qhead + MEMNET_QUEUE - 1) % MEMNET_QUEUE;
		x->net.qlen++;
		x->net.q[x->net.qhead] = saved;
		/* the first's answer went behind it in the queue */
	}
	while (x->net.qlen > 0 && x->net.q[x->net.qhead].to_server) {
		assert_int_equal(feed_next(x), 0);
	}
	assert_int_equal(masque_server_conns(x->net.srv), 2);
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.deferred, 2);
	/* no further bound in this test: a round per step */
	for (i = 0; i < 2; i++) {
		masque_server_new_round(x->net.srv);
		assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[i], 5 * SEC));
		assert_int_equal(x->cl[i].closed, 0);
	}
	fx_free(x);
	free(x);
}

static int big_hello_on(void **state)
{
	(void)state;
	fx_big_hello = 1;
	return 0;
}

static int big_hello_off(void **state)
{
	(void)state;
	fx_big_hello = 0;
	return 0;
}

/* A test again with clients whose first flight takes two Initials or
 * more (fx_big_hello): the relay answers, counts and defers handshakes,
 * not datagrams, so it pins the same numbers. */
#define TWO_INITIALS(f)                                                  \
	{                                                                \
#f "_two_initials", f, big_hello_on, big_hello_off, NULL \
	}

/* Feeds p to the server as if it came from from. */
static int feed_as(struct fx *x, const struct memnet_pkt *p, const struct sockaddr_in *from)
{
	return masque_server_input(x->net.srv, (struct sockaddr *)&x->net.server.addr,
				   sizeof(x->net.server.addr), (const struct sockaddr *)from,
				   sizeof(*from), p->data, p->len);
}

/* A first flight of several Initials (one DCID and SCID) gets one Retry,
 * or one refusal, counted once; the others are only counted as repeats.
 * The same flight sent again after the client's probe timeout is
 * answered again (the answer may have been lost), and the same IDs from
 * another port are another client's. (Run with fx_big_hello.) */
static void test_i16_7_flight_answered_once(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_server_stats st;
	struct memnet_pkt *fl;
	struct sockaddr_in from, other;
	size_t n, k, sent;

	(void)state;
	assert_non_null(x);
	fx_server(x, 1);
	fx_client(x, 0, "agent-1", NULL);
	fx_connect(x, 0);
	n = x->net.qlen;
	assert_true(n >= 2 && n <= 4);
	fl = calloc(n, sizeof(*fl));
	assert_non_null(fl);
	for (k = 0; k < n; k++)
		fl[k] = x->net.q[(x->net.qhead + k) % MEMNET_QUEUE];
	from = x->cl[0].ep.addr;
	other = from;
	other.sin_port = htons((uint16_t)(ntohs(from.sin_port) + 100));
	sent = x->net.sent;
	for (k = 0; k < n; k++)
		assert_int_equal(feed_next(x), 0);
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.retries_sent, 1);
	assert_int_equal(st.initials_repeat, n - 1);
	assert_int_equal(x->net.sent, sent + 1);
	/* within the moment: another port is another flight */
	x->net.now += SEC / 100;
	assert_int_equal(feed_as(x, &fl[n - 1], &other), 0);
	assert_int_equal(feed_as(x, &fl[0], &other), 0);
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.retries_sent, 2);
	assert_int_equal(st.initials_repeat, n);
	/* after the client's probe timeout: answered again, once */
	x->net.now += SEC;
	for (k = 0; k < n; k++)
		assert_int_equal(feed_as(x, &fl[k], &from), 0);
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.retries_sent, 3);
	assert_int_equal(st.initials_repeat, 2 * n - 1);
	/* a refusal likewise */
	masque_server_goaway(x->net.srv);
	x->net.now += SEC;
	sent = x->net.sent;
	for (k = 0; k < n; k++)
		assert_int_equal(feed_as(x, &fl[k], &from), 0);
	masque_server_stats(x->net.srv, &st);
	assert_int_equal(st.refused_full, 1);
	assert_int_equal(st.retries_sent, 3);
	assert_int_equal(st.initials_repeat, 3 * n - 2);
	assert_int_equal(x->net.sent, sent + 1);
	free(fl);
	fx_free(x);
	free(x);
}

/* ------------------------------------------------------------------ */
/* workers (issue 21; steer.h)                                        */

/* What the client sent, seen on its way to the server. */
static struct {
	uint8_t odcid[32]; /* the client's first DCID */
	size_t odcidlen;
	size_t original, steered, astray;
} tap;

static int tap_send(void *ioctx, const struct sockaddr *local, socklen_t locallen,
		    const struct sockaddr *remote, socklen_t remotelen, const uint8_t *data,
		    size_t len)
{
	int is_long = len > 6 && (data[0] & 0x80);

	if (is_long && tap.odcidlen == 0 && data[5] <= sizeof(tap.odcid) &&
	    len >= 6u + data[5]) {
		tap.odcidlen = data[5];
		memcpy(tap.odcid, data + 6, tap.odcidlen);
	}
	if (is_long && data[5] == tap.odcidlen && len >= 6u + data[5] &&
	    memcmp(data + 6, tap.odcid, tap.odcidlen) == 0)
		tap.original++; /* Initials to the client's own random DCID */
	else if (steer_cid_worker(data, len, 4) == 2)
		tap.steered++;
	else
		tap.astray++;
	return memnet_io.send(ioctx, local, locallen, remote, remotelen, data, len);
}

/* Worker 2 of 4 (with a Retry first when retry_always): every connection
 * ID the server issues has a first byte = 2 mod 4, so every datagram the
 * client sends once it knows one (after the Retry, Handshake, 1-RTT)
 * steers to worker 2; only its first Initials carry its own DCID. */
static void worker_cids(int retry_always)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_config lim = { .retry_off = !retry_always, .worker_index = 2, .nworkers = 4 };
	struct masque_io tap_io = memnet_io;
	ngtcp2_cid scids[16];
	struct masque_conn *sc;
	size_t i, n;

	assert_non_null(x);
	memset(&tap, 0, sizeof(tap));
	tap_io.send = tap_send;
	fx_server_lim(x, retry_always, &lim);
	fx_client(x, 0, "agent-1", NULL);
	x->ccfg[0].io = &tap_io;
	fx_connect(x, 0);
	assert_true(memnet_run(&x->net, opened_and_routed, &x->cl[0], 5 * SEC));
	assert_int_equal(x->cl[0].closed, 0);
	exchange(x, 200); /* 1-RTT both ways */
	sc = x->srv.last_conn;
	assert_non_null(sc);
	/* what the server gave the client: the first SCID and the
	 * NEW_CONNECTION_IDs (the client's DCID is not among them) */
	n = ngtcp2_conn_get_scid2(sc->qc, NULL);
	assert_true(n >= 2 && n <= 16);
	assert_int_equal(ngtcp2_conn_get_scid2(sc->qc, scids), n);
	for (i = 0; i < n; i++) {
		assert_int_equal(scids[i].datalen, MASQUE_CIDLEN);
		assert_int_equal(scids[i].data[0] % 4, 2);
	}
	assert_true(tap.original >= 1);
	assert_true(tap.steered >= 10);
	assert_int_equal(tap.astray, 0);
	if (retry_always) {
		struct masque_server_stats st;

		masque_server_stats(x->net.srv, &st);
		assert_int_equal(st.retries_sent, 1);
	}
	fx_free(x);
	free(x);
}

static void test_i21_worker_cids(void **state)
{
	(void)state;
	worker_cids(0);
}

static void test_i21_worker_cids_after_retry(void **state)
{
	(void)state;
	worker_cids(1);
}

static void test_i21_worker_config_checked(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct masque_server *srv = NULL;
	struct masque_config c;

	(void)state;
	assert_non_null(x);
	fx_server(x, 0);
	c = x->scfg;
	c.nworkers = 4;
	c.worker_index = 4;
	assert_int_equal(masque_server_new(&c, &cbs, &x->srv, &srv), ZG_ERR_INVAL);
	c.nworkers = STEER_MAX_WORKERS + 1;
	c.worker_index = 0;
	assert_int_equal(masque_server_new(&c, &cbs, &x->srv, &srv), ZG_ERR_INVAL);
	assert_null(srv);
	c.nworkers = STEER_MAX_WORKERS;
	c.worker_index = STEER_MAX_WORKERS - 1;
	assert_int_equal(masque_server_new(&c, &cbs, &x->srv, &srv), 0);
	masque_server_del(srv);
	fx_free(x);
	free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i21_server_frees_tls_keeps_cert),
		cmocka_unit_test(test_i21_request_fields_not_kept),
		cmocka_unit_test(test_i21_server_conns_share_packet_buffer),
		cmocka_unit_test(test_i21_no_qpack_dynamic_table),
		cmocka_unit_test(test_i21_key_updates_without_server_tls),
		cmocka_unit_test(test_i21_tls_message_after_handshake_refused),
		cmocka_unit_test(test_i21_worker_cids),
		cmocka_unit_test(test_i21_worker_cids_after_retry),
		cmocka_unit_test(test_i21_worker_config_checked),
		cmocka_unit_test(test_i16_7_handshakes_per_source_capped),
		cmocka_unit_test(test_i16_7_busy_source_gets_retry_first),
		cmocka_unit_test(test_i16_7_max_handshakes),
		cmocka_unit_test(test_i16_7_accepts_per_round),
		TWO_INITIALS(test_i16_7_handshakes_per_source_capped),
		TWO_INITIALS(test_i16_7_busy_source_gets_retry_first),
		TWO_INITIALS(test_i16_7_max_handshakes),
		TWO_INITIALS(test_i16_7_accepts_per_round),
		TWO_INITIALS(test_i16_7_flight_answered_once),
		TWO_INITIALS(test_retry_then_handshake),
		TWO_INITIALS(test_i21_worker_cids_after_retry),
		TWO_INITIALS(test_goaway_reaches_client_and_refuses_new),
		cmocka_unit_test(test_c24_handshake_mtls_and_tunnel),
		cmocka_unit_test(test_groups_hybrid_between_zgate_ends),
		cmocka_unit_test(test_groups_client_without_mlkem),
		cmocka_unit_test(test_groups_server_without_mlkem),
		cmocka_unit_test(test_c07_client_advertises_routes),
		cmocka_unit_test(test_c10_client_sends_address_request),
		cmocka_unit_test(test_c10_reconnect_asks_previous_address),
		cmocka_unit_test(test_c12_datagrams_10000_each_way),
		cmocka_unit_test(test_nat_rebinding_keeps_tunnel),
		cmocka_unit_test(test_chacha20_poly1305_drops_damaged),
		cmocka_unit_test(test_c13_capsule_fallback),
		cmocka_unit_test(test_c16_oversized_packet_refused),
		cmocka_unit_test(test_queued_datagram_leaves_within_ms),
		cmocka_unit_test(test_ack_rides_on_next_packet),
		cmocka_unit_test(test_c15_client_initial_padded),
		cmocka_unit_test(test_congested_then_writable),
		cmocka_unit_test(test_c24_refuses_expired),
		cmocka_unit_test(test_c24_refuses_not_yet_valid),
		cmocka_unit_test(test_c24_refuses_unknown_ca),
		cmocka_unit_test(test_c24_refuses_server_only_eku),
		cmocka_unit_test(test_c24_refuses_no_certificate),
		cmocka_unit_test(test_c25_both_roles_negotiate_h3),
		cmocka_unit_test(test_c25_server_refuses_other_alpn),
		cmocka_unit_test(test_c25_server_refuses_client_without_alpn),
		cmocka_unit_test(test_c25_client_refuses_server_without_alpn),
		cmocka_unit_test(test_c25_client_refuses_server_with_other_alpn),
		cmocka_unit_test(test_c25_client_abort_is_not_cert_rejected),
		cmocka_unit_test(test_c24_relay_named_by_address),
		cmocka_unit_test(test_c25_hs_fail_names),
		cmocka_unit_test(test_wolfssl_takes_client_hello_cut_anywhere),
		cmocka_unit_test(test_c24_refuses_two_cns),
		cmocka_unit_test(test_c24_refuses_no_cn),
		cmocka_unit_test(test_c24_refuses_unusable_cn),
		cmocka_unit_test(test_c24_identity_from_san_uri),
		cmocka_unit_test(test_c24_client_cert_serial_and_fingerprint),
		cmocka_unit_test(test_c24_crl_revoked_and_expired),
		cmocka_unit_test(test_c05_wrong_protocol_400),
		cmocka_unit_test(test_c05_missing_capsule_protocol_400),
		cmocka_unit_test(test_c03_bad_path_400),
		cmocka_unit_test(test_c05_owner_refusals_403_503),
		cmocka_unit_test(test_c03_scope_decoded),
		cmocka_unit_test(test_c03_deferred_answer),
		cmocka_unit_test(test_c06_unknown_capsules_skipped),
		cmocka_unit_test(test_c26_dns_assign_after_routes),
		cmocka_unit_test(test_c26_dns_assign_ignored_by_plain_client),
		cmocka_unit_test(test_c26_dns_assign_sent_later),
		cmocka_unit_test(test_c26_owner_error_aborts),
		cmocka_unit_test(test_c07_bad_route_advertisement_aborts),
		cmocka_unit_test(test_c07_new_routes_sent_at_once),
		cmocka_unit_test(test_c09_empty_address_request_aborts),
		cmocka_unit_test(test_c12_unknown_context_dropped),
		cmocka_unit_test(test_c14_datagram_for_other_stream_dropped),
		cmocka_unit_test(test_c14_quarter_stream_id_too_big_closes),
		cmocka_unit_test(test_goaway_reaches_client_and_refuses_new),
		cmocka_unit_test(test_retry_then_handshake),
		cmocka_unit_test(test_stateless_reset_for_unknown_connection),
		cmocka_unit_test(test_stateless_reset_after_restart),
		cmocka_unit_test(test_c11_idle_timeout_closes_both),
		cmocka_unit_test(test_peer_close_reason_escaped),
		cmocka_unit_test(test_keepalive_keeps_idle_tunnel),
		cmocka_unit_test(test_lossy_path_still_delivers_capsules),
	};

	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
