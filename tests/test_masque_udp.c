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
 * waiting room is bounded, and every client gets its tunnel. */
static void test_i16_7_burst_started_a_few_per_turn(void **state)
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

	(void)state;
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
	/* all from one address: at most 16 of its Initials wait, the rest
	 * are dropped (and retransmitted by their clients) */
	assert_true(masque_udp_initials_dropped(su) <= NCLIENTS - 16 - 2);
	assert_true(st.accepted >= NCLIENTS);
	for (i = 0; i < NCLIENTS; i++)
		masque_udp_del(cu[i]);
	masque_udp_del(su);
	wolfSSL_CTX_free(cctx);
	wolfSSL_CTX_free(sctx);
	event_base_free(srv_run.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i16_7_burst_started_a_few_per_turn),
	};

	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
