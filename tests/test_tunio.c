/* Unit tests for src/masque/tunio: masque_io over IP/UDP packets in a
 * tunnel, the transport of the inner agent-to-connector session (issue 22). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>

#include "masque/masque.h"
#include "masque/tunio.h"
#include "pki.h"
#include "sockaddr_fx.h"
#include "zg_err.h"

static void test_build_parse_ipv4(void **state)
{
	struct sockaddr_in l, r;
	struct sockaddr_storage pl, pr;
	socklen_t ll, rl;
	const uint8_t *pay;
	size_t plen, n;
	uint8_t pkt[1600];
	const uint8_t data[] = "inner quic";

	(void)state;
	l = fx_sin4("10.100.0.2", 50000);
	r = fx_sin4("10.100.0.9", 443);
	n = tunio_build_udp((struct sockaddr *)&l, (struct sockaddr *)&r, data, sizeof(data), pkt,
			    sizeof(pkt));
	assert_int_equal(n, 20 + 8 + sizeof(data));
	assert_int_equal(pkt[0], 0x45);
	assert_int_equal(pkt[9], 17);
	assert_int_equal(pkt[8], 64);
	assert_int_equal(pkt[6] & 0x40, 0x40); /* DF */
	assert_int_equal(tunio_parse_udp(pkt, n, &pl, &ll, &pr, &rl, &pay, &plen), 1);
	assert_int_equal(ll, sizeof(struct sockaddr_in));
	/* local of the parsed packet is its destination */
	assert_memory_equal(&((struct sockaddr_in *)&pl)->sin_addr, &r.sin_addr, 4);
	assert_int_equal(((struct sockaddr_in *)&pl)->sin_port, htons(443));
	assert_memory_equal(&((struct sockaddr_in *)&pr)->sin_addr, &l.sin_addr, 4);
	assert_int_equal(((struct sockaddr_in *)&pr)->sin_port, htons(50000));
	assert_int_equal(plen, sizeof(data));
	assert_memory_equal(pay, data, sizeof(data));
	/* a trailing byte beyond the IP total length is ignored */
	assert_int_equal(tunio_parse_udp(pkt, n + 1, &pl, &ll, &pr, &rl, &pay, &plen), 1);
	assert_int_equal(plen, sizeof(data));
}

static void test_build_parse_ipv6(void **state)
{
	struct sockaddr_in6 l, r;
	struct sockaddr_storage pl, pr;
	socklen_t ll, rl;
	const uint8_t *pay;
	size_t plen, n;
	uint8_t pkt[1600];
	const uint8_t data[1200] = { 1, 2, 3 };

	(void)state;
	l = fx_sin6("fd00:100::2", 50001);
	r = fx_sin6("fd00:100::9", 443);
	n = tunio_build_udp((struct sockaddr *)&l, (struct sockaddr *)&r, data, sizeof(data), pkt,
			    sizeof(pkt));
	assert_int_equal(n, 40 + 8 + sizeof(data));
	assert_int_equal(pkt[0] >> 4, 6);
	assert_int_equal(tunio_parse_udp(pkt, n, &pl, &ll, &pr, &rl, &pay, &plen), 1);
	assert_int_equal(ll, sizeof(struct sockaddr_in6));
	assert_int_equal(((struct sockaddr_in6 *)&pr)->sin6_port, htons(50001));
	assert_int_equal(plen, sizeof(data));
	/* mixed families, a buffer too small: nothing built */
	assert_int_equal(tunio_build_udp((struct sockaddr *)&l, (struct sockaddr *)&(struct sockaddr_in){ .sin_family = AF_INET },
					 data, 4, pkt, sizeof(pkt)),
			 0);
	assert_int_equal(tunio_build_udp((struct sockaddr *)&l, (struct sockaddr *)&r, data, 100, pkt, 100), 0);
}

/* Whatever is not a whole, correct UDP packet is not the inner session's. */
static void test_parse_refuses(void **state)
{
	struct sockaddr_in l, r;
	struct sockaddr_in6 l6, r6;
	struct sockaddr_storage pl, pr;
	socklen_t ll, rl;
	const uint8_t *pay;
	size_t plen, n, n6, i;
	uint8_t pkt[200], bad[200], p6[200];
	const uint8_t data[] = "payload";

	(void)state;
	l = fx_sin4("10.100.0.2", 50000);
	r = fx_sin4("10.100.0.9", 443);
	n = tunio_build_udp((struct sockaddr *)&l, (struct sockaddr *)&r, data, sizeof(data), pkt,
			    sizeof(pkt));
	for (i = 0; i < n; i++) { /* every cut */
		assert_int_equal(tunio_parse_udp(pkt, i, &pl, &ll, &pr, &rl, &pay, &plen), 0);
	}
	memcpy(bad, pkt, n);
	bad[n - 1] ^= 1; /* payload changed: UDP checksum */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 0);
	memcpy(bad, pkt, n);
	bad[12] ^= 1; /* source changed: IP header checksum */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 0);
	memcpy(bad, pkt, n);
	bad[9] = 6; /* TCP */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 0);
	memcpy(bad, pkt, n);
	bad[6] |= 0x20; /* MF: a fragment */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 0);
	memcpy(bad, pkt, n);
	bad[0] = 0x46; /* options */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 0);
	memcpy(bad, pkt, n);
	bad[25] = 200; /* UDP length past the packet */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 0);
	memcpy(bad, pkt, n);
	bad[26] = bad[27] = 0; /* IPv4 UDP without a checksum is allowed */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 1);
	bad[0] = 0x55; /* version 5 */
	assert_int_equal(tunio_parse_udp(bad, n, &pl, &ll, &pr, &rl, &pay, &plen), 0);

	l6 = fx_sin6("fd00::2", 1);
	r6 = fx_sin6("fd00::9", 2);
	n6 = tunio_build_udp((struct sockaddr *)&l6, (struct sockaddr *)&r6, data, sizeof(data), p6,
			     sizeof(p6));
	assert_true(n6 > 0);
	p6[46] = p6[47] = 0; /* IPv6 requires the checksum */
	assert_int_equal(tunio_parse_udp(p6, n6, &pl, &ll, &pr, &rl, &pay, &plen), 0);
}

/* ------------------------------------------------------------------ */
/* An inner session: a masque client and server joined through two
 * tunio transports on one libevent loop, as the agent and the connector
 * are joined through the relay. Packets are queued and delivered on the
 * next loop turn, as a tunnel would. */

#define QMAX 256
struct q {
	uint8_t data[QMAX][1600];
	size_t len[QMAX];
	size_t n;
};

struct pair {
	struct event_base *base;
	struct event *deliver;
	struct tunio *cio, *sio;
	struct q to_server, to_client;
	struct masque_server *srv;
	struct masque_conn *cl;
	int opened, got, server_closed, client_closed, dropped;
	uint8_t echo[64];
	size_t echo_len;
};

static void enqueue(struct pair *p, struct q *q, const uint8_t *pkt, size_t len)
{
	if (q->n == QMAX || len > sizeof(q->data[0])) {
		p->dropped++;
		return;
	}
	memcpy(q->data[q->n], pkt, len);
	q->len[q->n++] = len;
	event_active(p->deliver, 0, 0);
}

static void client_emit(void *ctx, const uint8_t *pkt, size_t len)
{
	struct pair *p = ctx;

	enqueue(p, &p->to_server, pkt, len);
}

static void server_emit(void *ctx, const uint8_t *pkt, size_t len)
{
	struct pair *p = ctx;

	enqueue(p, &p->to_client, pkt, len);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pair *p = arg;
	struct sockaddr_storage l, r;
	socklen_t ll, rl;
	const uint8_t *pay;
	size_t plen, i, n;
	static uint8_t copy[QMAX][1600];
	static size_t clen[QMAX];

	(void)fd;
	(void)what;
	n = p->to_server.n;
	memcpy(copy, p->to_server.data, sizeof(copy[0]) * n);
	memcpy(clen, p->to_server.len, sizeof(clen[0]) * n);
	p->to_server.n = 0;
	for (i = 0; i < n; i++)
		if (tunio_parse_udp(copy[i], clen[i], &l, &ll, &r, &rl, &pay, &plen))
			(void)masque_server_input(p->srv, (struct sockaddr *)&l, ll,
						  (struct sockaddr *)&r, rl, pay, plen);
	n = p->to_client.n;
	memcpy(copy, p->to_client.data, sizeof(copy[0]) * n);
	memcpy(clen, p->to_client.len, sizeof(clen[0]) * n);
	p->to_client.n = 0;
	for (i = 0; i < n && p->cl != NULL; i++)
		if (tunio_parse_udp(copy[i], clen[i], &l, &ll, &r, &rl, &pay, &plen))
			(void)masque_conn_input(p->cl, (struct sockaddr *)&l, ll,
						(struct sockaddr *)&r, rl, pay, plen);
	masque_server_new_round(p->srv);
}

static int on_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	(void)c;
	(void)ctx;
	assert_string_equal(rq->identity, "agent-1");
	acc->addrs[0].version = 4;
	acc->addrs[0].addr[0] = 10;
	acc->addrs[0].addr[1] = 100;
	acc->addrs[0].addr[3] = 2;
	acc->addrs[0].prefix_len = 32;
	acc->naddrs = 1;
	return 200;
}

static void on_open(struct masque_conn *c, void *ctx)
{
	struct pair *p = ctx;
	uint8_t ip[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 100, 0, 2, 10, 20, 0, 5 };

	p->opened++;
	memcpy(p->echo, ip, sizeof(ip));
	p->echo_len = sizeof(ip);
	assert_int_equal(masque_conn_send(c, ip, sizeof(ip)), 0);
}

static void on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct pair *p = ctx;

	if (p->cl != NULL && c != p->cl) { /* the server echoes */
		(void)masque_conn_send(c, pkt, len);
		return;
	}
	if (len == p->echo_len && memcmp(pkt, p->echo, len) == 0) {
		p->got++;
		event_base_loopbreak(p->base);
	}
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct pair *p = ctx;

	if (getenv("ZG_TEST_VERBOSE"))
		fprintf(stderr, "%s closed: %s\n", c == p->cl ? "client" : "server", ci->reason);
	if (c == p->cl) {
		p->client_closed++;
		p->cl = NULL;
		event_base_loopbreak(p->base);
	} else {
		p->server_closed++;
	}
}

static const struct masque_cbs pcbs = {
	.on_request = on_request,
	.on_open = on_open,
	.on_packet = on_packet,
	.on_close = on_close,
};

static void test_inner_session_through_tunio(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	WOLFSSL_CTX *sctx = NULL, *cctx = NULL;
	struct masque_config scfg, ccfg;
	struct sockaddr_in cl, sv;
	struct timeval limit = { 10, 0 };
	struct tunio_stats st;
	char err[256];

	(void)state;
	assert_non_null(p);
	p->base = event_base_new();
	assert_non_null(p->base);
	p->deliver = event_new(p->base, -1, 0, deliver_cb, p);
	assert_int_equal(tunio_new(p->base, client_emit, p, &p->cio), 0);
	assert_int_equal(tunio_new(p->base, server_emit, p, &p->sio), 0);
	assert_int_equal(tunio_new(NULL, client_emit, p, &p->cio), ZG_ERR_INVAL);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL, &sctx,
					    err, sizeof(err)),
			 0);
	assert_int_equal(tls_client_ctx_new(f("agent-1.crt"), f("agent-1.key"), f("ca.crt"), &cctx,
					    err, sizeof(err)),
			 0);
	memset(&scfg, 0, sizeof(scfg));
	scfg.tls = sctx;
	scfg.io = tunio_io();
	scfg.ioctx = p->sio;
	scfg.uri_template = "https://connector.test/.well-known/masque/ip/{target}/{ipproto}/";
	scfg.retry_off = 1;
	scfg.max_udp_payload = 1372;
	assert_int_equal(masque_server_new(&scfg, &pcbs, p, &p->srv), 0);
	memset(&ccfg, 0, sizeof(ccfg));
	ccfg.tls = cctx;
	ccfg.io = tunio_io();
	ccfg.ioctx = p->cio;
	ccfg.server_name = "localhost";
	ccfg.authority = "connector.test:443";
	ccfg.path = "/.well-known/masque/ip/*/*/";
	ccfg.max_udp_payload = 1372;
	cl = fx_sin4("10.100.0.2", 50000);
	sv = fx_sin4("10.100.0.9", 443);
	assert_int_equal(masque_client_new(&ccfg, &pcbs, p, (struct sockaddr *)&cl, sizeof(cl),
					   (struct sockaddr *)&sv, sizeof(sv), &p->cl),
			 0);
	event_base_loopexit(p->base, &limit);
	event_base_dispatch(p->base);
	assert_int_equal(p->opened, 1);
	assert_int_equal(p->got, 1); /* the packet went there and back */
	assert_int_equal(p->dropped, 0);
	tunio_stats(p->cio, &st);
	assert_true(st.sent >= 2);
	assert_int_equal(st.send_errors, 0);

	masque_conn_destroy(p->cl);
	assert_null(p->cl);
	masque_server_del(p->srv);
	assert_int_equal(p->server_closed, 1);
	tunio_free(p->cio);
	tunio_free(p->sio);
	event_free(p->deliver);
	event_base_free(p->base);
	wolfSSL_CTX_free(sctx);
	wolfSSL_CTX_free(cctx);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_parse_ipv4),
		cmocka_unit_test(test_build_parse_ipv6),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_inner_session_through_tunio),
	};
	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
