/*
 * Unit tests for src/masque/udp.c's server side on loopback sockets: a
 * burst of new connections is started a few per turn of the event loop
 * (accepts_per_round), the rest wait in order and all complete.
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

#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "masque/masque.h"
#include "masque/tls.h"
#include "masque/udp.h"
#include "masque_fx.h"
#include "pki.h"
#include "zg_err.h"

#define NCLIENTS 20
#define TEMPLATE "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"

struct run {
	struct event_base *base;
	int opened, closed, served;
};

static int on_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	struct run *r = ctx;

	(void)c;
	(void)rq;
	r->served++;
	return fx_accept_one(acc);
}

static void on_open(struct masque_conn *c, void *ctx)
{
	struct run *r = ctx;

	(void)c;
	if (++r->opened == NCLIENTS)
		event_base_loopbreak(r->base);
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct run *r = ctx;

	(void)c;
	(void)ci;
	r->closed++;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Twenty clients start at once against a server that starts at most two
 * handshakes per turn: Initials are deferred, one address's share of the
 * waiting room is bounded, and every client gets its tunnel. big: every
 * client's first flight takes two Initials or more (masque_fx.h): they
 * wait together, and the waiting room still holds 16 handshakes. */
static void burst(int big)
{
	struct run srv_run = { 0 }, cl_run = { 0 };
	struct masque_cbs scbs = { .on_request = on_request,
				   .on_address_request = fx_grant_as_asked,
				   .on_close = on_close };
	struct masque_cbs ccbs = { .on_open = on_open, .on_close = on_close };
	struct masque_config scfg, ccfg[NCLIENTS];
	struct masque_udp *su = NULL, *cu[NCLIENTS];
	struct masque_server *srv = NULL;
	struct masque_server_stats st;
	struct masque_conn *cc;
	WOLFSSL_CTX *sctx = NULL, *cctx = NULL;
	struct event *stop;
	struct timeval limit = { 20, 0 };
	char err[256], relay[64];
	int i;

	srv_run.base = cl_run.base = masque_udp_base_new();
	assert_non_null(srv_run.base);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL,
					    &sctx, err, sizeof(err)),
			 0);
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), f("ca.crt"),
					    &cctx, err, sizeof(err)),
			 0);
	memset(&scfg, 0, sizeof(scfg));
	scfg.tls = sctx;
	scfg.uri_template = TEMPLATE;
	scfg.retry_off = 1;
	scfg.accepts_per_round = 2;
	assert_int_equal(masque_udp_server_new(srv_run.base, "127.0.0.1:0", &scfg, &scbs, &srv_run,
					       &su, &srv, err, sizeof(err)),
			 0);
	snprintf(relay, sizeof(relay), "127.0.0.1:%d", masque_udp_port(su));
	for (i = 0; i < NCLIENTS; i++) {
		memset(&ccfg[i], 0, sizeof(ccfg[i]));
		ccfg[i].tls = cctx;
		ccfg[i].server_name = "localhost";
		ccfg[i].authority = "relay.test:4433";
		ccfg[i].path = "/.well-known/masque/ip/*/*/";
		ccfg[i].test_alpn = big ? fx_big_hello_alpn() : NULL;
		assert_int_equal(masque_udp_client_new(cl_run.base, relay, &ccfg[i], &ccbs, &cl_run,
						       &cu[i], &cc, err, sizeof(err)),
				 0);
	}
	stop = evtimer_new(srv_run.base, stop_cb, srv_run.base);
	assert_non_null(stop);
	evtimer_add(stop, &limit);
	event_base_dispatch(srv_run.base);
	event_free(stop);

	masque_server_stats(srv, &st);
	assert_int_equal(cl_run.opened, NCLIENTS);
	assert_int_equal(srv_run.served, NCLIENTS);
	assert_true(st.deferred > 0);
	/* all from one address: at most 16 of its handshakes wait, the
	 * rest are dropped (and retransmitted by their clients) */
	assert_true(masque_udp_initials_dropped(su) <= NCLIENTS - 16 - 2);
	assert_true(st.accepted >= NCLIENTS);
	for (i = 0; i < NCLIENTS; i++)
		masque_udp_del(cu[i]);
	masque_udp_del(su);
	wolfSSL_CTX_free(cctx);
	wolfSSL_CTX_free(sctx);
	event_base_free(srv_run.base);
}

static void test_i16_7_burst_started_a_few_per_turn(void **state)
{
	(void)state;
	burst(0);
}

static void test_i16_7_burst_of_two_initial_flights(void **state)
{
	(void)state;
	burst(1);
}

static int udp_rx(uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Datagrams fd received, each checked to be len bytes of tag. */
static int drain(int fd, size_t len, uint8_t tag)
{
	uint8_t buf[2048];
	ssize_t n;
	int got = 0;

	while ((n = recv(fd, buf, sizeof(buf), 0)) >= 0) {
		assert_int_equal((size_t)n, len);
		assert_int_equal(buf[0], tag);
		assert_int_equal(buf[len - 1], tag);
		got++;
	}
	return got;
}

/* One send batch holds datagrams for two peers and, between them, two
 * the kernel refuses for their own sake (an IPv6 address on an IPv4
 * socket: EAFNOSUPPORT, as a firewall's EPERM or a missing route would
 * be): only those two are lost, with GSO grouping and without. */
static void test_refused_datagram_loses_only_itself(void **state)
{
	for (int offload = 1; offload >= 0; offload--) {
		struct masque_cbs scbs = { .on_request = on_request };
		struct masque_config scfg;
		struct masque_udp *su = NULL;
		struct masque_server *srv = NULL;
		WOLFSSL_CTX *sctx = NULL;
		struct event_base *base = masque_udp_base_new();
		struct run r = { 0 };
		struct sockaddr_in a = { .sin_family = AF_INET }, b = { .sin_family = AF_INET };
		struct sockaddr_in6 bad = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
		uint16_t pa, pb;
		int fa = udp_rx(&pa), fb = udp_rx(&pb);
		uint8_t d[1000];
		char err[256];

		(void)state;
		if (!offload)
			setenv("ZG_UDP_OFFLOAD", "0", 1);
		r.base = base;
		assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL,
						    &sctx, err, sizeof(err)),
				 0);
		memset(&scfg, 0, sizeof(scfg));
		scfg.tls = sctx;
		scfg.uri_template = TEMPLATE;
		assert_int_equal(masque_udp_server_new(base, "127.0.0.1:0", &scfg, &scbs, &r, &su,
						       &srv, err, sizeof(err)),
				 0);
		unsetenv("ZG_UDP_OFFLOAD");
		a.sin_addr.s_addr = b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons(pa);
		b.sin_port = htons(pb);
		bad.sin6_addr = in6addr_loopback;
		memset(d, 'a', sizeof(d));
		for (int i = 0; i < 3; i++)
			assert_int_equal(scfg.io->send(scfg.ioctx, NULL, 0, (struct sockaddr *)&a,
						       sizeof(a), d, sizeof(d)),
					 0);
		memset(d, 'x', sizeof(d));
		for (int i = 0; i < 2; i++)
			assert_int_equal(scfg.io->send(scfg.ioctx, NULL, 0, (struct sockaddr *)&bad,
						       sizeof(bad), d, sizeof(d)),
					 0);
		memset(d, 'b', sizeof(d));
		for (int i = 0; i < 3; i++)
			assert_int_equal(scfg.io->send(scfg.ioctx, NULL, 0, (struct sockaddr *)&b,
						       sizeof(b), d, sizeof(d)),
					 0);
		/* the batch goes at the end of this loop turn */
		assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
		assert_int_equal(drain(fa, sizeof(d), 'a'), 3);
		assert_int_equal(drain(fb, sizeof(d), 'b'), 3);
		close(fa);
		close(fb);
		masque_udp_del(su);
		wolfSSL_CTX_free(sctx);
		event_base_free(base);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i16_7_burst_started_a_few_per_turn),
		cmocka_unit_test(test_i16_7_burst_of_two_initial_flights),
		cmocka_unit_test(test_refused_datagram_loses_only_itself),
	};

	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
