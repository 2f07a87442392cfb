/* tests/test_connectors.c — the agent's connector list, packet steering,
 * ICMP unreachable and "too big" answers (built by ptb.c, whose rules
 * test_agent_ptb covers), outer UDP demultiplexing and a whole inner
 * session with a connector joined in memory (issue 22). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <event2/event.h>

#include "agent/connectors.h"
#include "agent/ptb.h"
#include "masque/masque.h"
#include "masque/tls.h"
#include "masque/tunio.h"
#include "pki.h"
#include "zg_err.h"
#include "zgconn.h"

static void pfx(struct zgconn_prefix *p, const char *s, uint8_t len)
{
	memset(p, 0, sizeof(*p));
	if (strchr(s, ':') != NULL) {
		p->version = 6;
		assert_int_equal(inet_pton(AF_INET6, s, p->a), 1);
	} else {
		p->version = 4;
		assert_int_equal(inet_pton(AF_INET, s, p->a), 1);
	}
	p->len = len;
}

static void conn(struct zgconn *z, const char *id, int up, const char *vaddr, const char *prefix,
		 uint8_t len)
{
	memset(z, 0, sizeof(*z));
	snprintf(z->id, sizeof(z->id), "%s", id);
	z->up = up;
	z->port = 443;
	pfx(&z->addrs[0], vaddr, 32);
	z->naddrs = 1;
	pfx(&z->prefixes[0], prefix, len);
	z->nprefixes = 1;
}

/* An IPv4 UDP packet src:sport -> dst:dport with 8 payload bytes (no
 * checksum: steering looks at addresses and ports only). */
static size_t udp4(uint8_t *b, const char *src, uint16_t sport, const char *dst, uint16_t dport)
{
	memset(b, 0, 36);
	b[0] = 0x45;
	b[3] = 36;
	b[6] = 0x40; /* DF */
	b[8] = 64;
	b[9] = 17;
	assert_int_equal(inet_pton(AF_INET, src, b + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, b + 16), 1);
	b[20] = (uint8_t)(sport >> 8);
	b[21] = (uint8_t)sport;
	b[22] = (uint8_t)(dport >> 8);
	b[23] = (uint8_t)dport;
	b[25] = 16;
	memcpy(b + 28, "payload!", 8);
	return 36;
}

struct rec {
	struct connectors *cs; /* set: changed() walks the routes, as the agent does */
	size_t routes_seen;
	int changed;
	size_t ntun;
	uint8_t tun[4][1600];
	size_t tunlen[4];
};

static void rec_changed(void *ctx)
{
	struct rec *r = ctx;
	struct route_prefix rt[64];

	r->changed++;
	if (r->cs != NULL)
		r->routes_seen = connectors_routes(r->cs, rt, 64);
}

static void rec_tun(void *ctx, const uint8_t *pkt, size_t len)
{
	struct rec *r = ctx;

	if (r->ntun < 4 && len <= sizeof(r->tun[0])) {
		memcpy(r->tun[r->ntun], pkt, len);
		r->tunlen[r->ntun] = len;
	}
	r->ntun++;
}

static struct connectors *pure(struct rec *r)
{
	struct connectors_env env;
	struct connectors *cs = NULL;

	memset(&env, 0, sizeof(env));
	env.changed = rec_changed;
	env.to_tun = rec_tun;
	env.ctx = r;
	assert_int_equal(connectors_new(&env, &cs), 0);
	return cs;
}

static void test_list_add_update_remove(void **state)
{
	struct rec r;
	struct connectors *cs;
	struct zgconn v[3];
	struct route_prefix rt[8];
	struct connector_status st;

	(void)state;
	memset(&r, 0, sizeof(r));
	cs = pure(&r);
	conn(&v[0], "hosp-a", 1, "10.100.0.9", "10.20.0.0", 16);
	conn(&v[1], "hosp-b", 0, "10.100.0.10", "10.30.0.0", 16);
	assert_int_equal(connectors_set_list(cs, v, 2), 2);
	assert_true(r.changed >= 1);
	assert_int_equal(connectors_count(cs), 2);
	connectors_status(cs, 0, &st);
	assert_string_equal(st.id, "hosp-a");
	assert_string_equal(connectors_state_name(st.state), "connecting"); /* no base: waits */
	connectors_status(cs, 1, &st);
	assert_string_equal(connectors_state_name(st.state), "down");
	/* down ones are routed too: their packets get ICMP unreachable */
	assert_int_equal(connectors_routes(cs, rt, 8), 2);
	assert_int_equal(rt[0].version, 4);
	assert_int_equal(rt[0].addr[1], 20);
	assert_int_equal(rt[0].len, 16);
	assert_int_equal(rt[1].addr[1], 30);

	/* the same list again changes nothing */
	r.changed = 0;
	assert_int_equal(connectors_set_list(cs, v, 2), 2);
	assert_int_equal(r.changed, 0);

	/* update: hosp-b comes up with a second prefix; hosp-a goes away;
	 * a bad ID and a duplicate are skipped */
	v[1].up = 1;
	pfx(&v[1].prefixes[1], "fd20::", 48);
	v[1].nprefixes = 2;
	conn(&v[2], "hosp-b", 1, "10.100.0.11", "10.99.0.0", 16); /* duplicate ID */
	v[0] = v[1];
	v[1] = v[2];
	conn(&v[2], "bad id", 1, "10.100.0.12", "10.98.0.0", 16);
	assert_int_equal(connectors_set_list(cs, v, 3), 1);
	assert_true(r.changed >= 1);
	assert_int_equal(connectors_count(cs), 1);
	connectors_status(cs, 0, &st);
	assert_string_equal(st.id, "hosp-b");
	assert_int_equal(connectors_routes(cs, rt, 8), 2);
	assert_int_equal(rt[1].version, 6);
	assert_int_equal(rt[1].len, 48);

	/* hosp-b goes down: reported once, after the list is whole again
	 * (the owner's changed() walks the routes; it used to run mid-update
	 * and crash the agent) */
	r.cs = cs;
	r.changed = 0;
	r.routes_seen = 99;
	v[0].up = 0;
	v[0].nprefixes = 0; /* as the relay lists a connector that went away */
	assert_int_equal(connectors_set_list(cs, v, 1), 1);
	assert_int_equal(r.changed, 1);
	assert_int_equal(r.routes_seen, 2); /* its last prefixes stay routed */
	connectors_status(cs, 0, &st);
	assert_int_equal(st.state, CONNECTOR_DOWN);
	r.cs = NULL;

	/* remove all */
	r.changed = 0;
	assert_int_equal(connectors_set_list(cs, NULL, 0), 0);
	assert_int_equal(r.changed, 1);
	assert_int_equal(connectors_routes(cs, rt, 8), 0);
	connectors_free(cs);
}

static void test_capsule(void **state)
{
	struct rec r;
	struct connectors *cs;
	struct zgconn v[2];
	uint8_t buf[2048];
	size_t n = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	cs = pure(&r);
	conn(&v[0], "hosp-a", 1, "10.100.0.9", "10.20.0.0", 16);
	conn(&v[1], "hosp-b", 0, "10.100.0.10", "10.30.0.0", 16);
	v[1].port = 0; /* down: no port needed */
	v[1].naddrs = 0;
	assert_int_equal(zgconn_encode(v, 2, buf, sizeof(buf), &n), 0);
	assert_int_equal(connectors_on_capsule(cs, buf, n), 0);
	assert_int_equal(connectors_count(cs), 2);
	/* a truncated capsule keeps the list in force */
	assert_int_not_equal(connectors_on_capsule(cs, buf, n - 3), 0);
	assert_int_equal(connectors_count(cs), 2);
	connectors_free(cs);
}

static void test_steer(void **state)
{
	struct rec r;
	struct connectors *cs;
	struct zgconn v[2];
	uint8_t p[64];
	size_t i = 99, n;

	(void)state;
	memset(&r, 0, sizeof(r));
	cs = pure(&r);
	conn(&v[0], "wide", 1, "10.100.0.9", "10.0.0.0", 8);
	conn(&v[1], "narrow", 0, "10.100.0.10", "10.20.0.0", 16);
	assert_int_equal(connectors_set_list(cs, v, 2), 2);
	n = udp4(p, "10.100.0.2", 5000, "8.8.8.8", 53);
	assert_int_equal(connectors_steer(cs, p, n, &i), CONNECTORS_PASS);
	assert_int_equal(i, 99);
	/* the longest prefix wins: narrow is down -> unreachable */
	n = udp4(p, "10.100.0.2", 5000, "10.20.1.1", 53);
	assert_int_equal(connectors_steer(cs, p, n, &i), CONNECTORS_UNREACHABLE);
	assert_int_equal(i, 1);
	/* wide is up, but its inner session is not open: unreachable too */
	n = udp4(p, "10.100.0.2", 5000, "10.30.1.1", 53);
	assert_int_equal(connectors_steer(cs, p, n, &i), CONNECTORS_UNREACHABLE);
	assert_int_equal(i, 0);
	/* malformed: pass (the outer path counts it) */
	assert_int_equal(connectors_steer(cs, p, 10, &i), CONNECTORS_PASS);
	/* from_tun answers with ICMP host unreachable through to_tun */
	assert_int_equal(connectors_from_tun(cs, p, n), CONNECTORS_UNREACHABLE);
	assert_int_equal(r.ntun, 1);
	assert_int_equal(r.tunlen[0], 28 + n);
	assert_int_equal(r.tun[0][20], 3);             /* destination unreachable */
	assert_int_equal(r.tun[0][21], 1);             /* host unreachable */
	assert_memory_equal(r.tun[0] + 12, p + 16, 4); /* from the destination */
	assert_memory_equal(r.tun[0] + 16, p + 12, 4); /* to the sender */
	assert_memory_equal(r.tun[0] + 28, p, n);      /* quotes the packet */
	assert_int_equal(ptb_checksum(r.tun[0], 20, 0), 0);
	assert_int_equal(ptb_checksum(r.tun[0] + 20, 8 + n, 0), 0);
	connectors_free(cs);
}

/* A connector may reach only the inner sessions the agent opened: a
 * packet from a listed connector's address to any other port of the agent
 * (or not UDP, or while no session is open) is the module's, dropped and
 * counted, never written to the TUN; a packet from elsewhere is not the
 * module's (the relay's own traffic to the TUN). */
static void test_outer_unsolicited(void **state)
{
	struct rec r;
	struct connectors *cs;
	struct zgconn v[2];
	struct connector_status st;
	uint8_t p[80];
	size_t n;

	(void)state;
	memset(&r, 0, sizeof(r));
	cs = pure(&r);
	conn(&v[0], "hosp-a", 1, "10.100.0.9", "10.20.0.0", 16);
	conn(&v[1], "hosp-b", 0, "10.100.0.10", "10.30.0.0", 16);
	pfx(&v[0].addrs[1], "fd00:100::9", 128);
	v[0].naddrs = 2;
	assert_int_equal(connectors_set_list(cs, v, 2), 2);
	/* from the connector's inner port to an agent service port */
	n = udp4(p, "10.100.0.9", 443, "10.100.0.2", 7777);
	assert_int_equal(connectors_from_outer(cs, p, n), 1);
	/* from another of its ports, and not UDP */
	n = udp4(p, "10.100.0.9", 53, "10.100.0.2", 53);
	assert_int_equal(connectors_from_outer(cs, p, n), 1);
	p[9] = 6;
	assert_int_equal(connectors_from_outer(cs, p, n), 1);
	/* its IPv6 address */
	memset(p, 0, sizeof(p));
	p[0] = 0x60;
	p[5] = 8;
	p[6] = 17;
	p[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, "fd00:100::9", p + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, "fd00:100::2", p + 24), 1);
	p[40] = 1;
	p[41] = 0xbb;
	p[43] = 22;
	assert_int_equal(connectors_from_outer(cs, p, 48), 1);
	connectors_status(cs, 0, &st);
	assert_int_equal(st.rx_unsolicited, 4);
	assert_int_equal(st.rx_packets, 0);
	/* a connector that is down is no source either */
	n = udp4(p, "10.100.0.10", 443, "10.100.0.2", 7777);
	assert_int_equal(connectors_from_outer(cs, p, n), 1);
	connectors_status(cs, 1, &st);
	assert_int_equal(st.rx_unsolicited, 1);
	/* the relay's traffic (any other source) is not the module's */
	n = udp4(p, "198.18.0.10", 443, "10.100.0.2", 7777);
	assert_int_equal(connectors_from_outer(cs, p, n), 0);
	n = udp4(p, "10.100.0.11", 443, "10.100.0.2", 7777);
	assert_int_equal(connectors_from_outer(cs, p, n), 0);
	assert_int_equal(connectors_from_outer(cs, p, 10), 0);
	assert_int_equal(r.ntun, 0);
	connectors_free(cs);
}

/* ------------------------------------------------------------------ */
/* a whole inner session: the module's client and a zgate masque server
 * with a connector:ID certificate, joined through tunio transports; the
 * outer tunnel is a queue delivered on the next loop turn */

#define QMAX 256
struct e2e {
	struct event_base *base;
	struct event *deliver;
	struct connectors *cs;
	struct tunio *sio;
	struct masque_server *srv;
	WOLFSSL_CTX *sctx;
	uint8_t q[2][QMAX][1600]; /* 0: to the connector, 1: to the agent */
	size_t qlen[2][QMAX], qn[2];
	int changed, stray, tun_got, srv_got;
	size_t srv_len; /* of the last packet the connector got */
	uint64_t now;   /* the module's clock (ns) */
	uint8_t last_tun[1600];
	size_t last_tun_len;
};

static void enqueue(struct e2e *t, int dir, const uint8_t *pkt, size_t len)
{
	if (t->qn[dir] == QMAX || len > sizeof(t->q[0][0]))
		return;
	memcpy(t->q[dir][t->qn[dir]], pkt, len);
	t->qlen[dir][t->qn[dir]++] = len;
	event_active(t->deliver, 0, 0);
}

static int agent_to_outer(void *ctx, const uint8_t *pkt, size_t len)
{
	enqueue(ctx, 0, pkt, len);
	return 0;
}

static size_t agent_outer_max(void *ctx)
{
	(void)ctx;
	return 1452;
}

static void agent_changed(void *ctx)
{
	struct e2e *t = ctx;
	struct connector_status st;

	t->changed++;
	if (connectors_count(t->cs) == 1) {
		connectors_status(t->cs, 0, &st);
		if (st.state == CONNECTOR_UP || st.state == CONNECTOR_REFUSED)
			event_base_loopbreak(t->base);
	}
}

static void agent_tun(void *ctx, const uint8_t *pkt, size_t len)
{
	struct e2e *t = ctx;

	t->tun_got++;
	memcpy(t->last_tun, pkt, len < sizeof(t->last_tun) ? len : sizeof(t->last_tun));
	t->last_tun_len = len;
	event_base_loopbreak(t->base);
}

static uint64_t agent_now(void *ctx)
{
	return ((struct e2e *)ctx)->now;
}

static void server_emit(void *ctx, const uint8_t *pkt, size_t len)
{
	enqueue(ctx, 1, pkt, len);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct e2e *t = arg;
	static uint8_t copy[QMAX][1600];
	static size_t clen[QMAX];
	struct sockaddr_storage l, r;
	socklen_t ll, rl;
	const uint8_t *pay;
	size_t plen, n;

	(void)fd;
	(void)what;
	for (int dir = 0; dir < 2; dir++) {
		n = t->qn[dir];
		memcpy(copy, t->q[dir], sizeof(copy[0]) * n);
		memcpy(clen, t->qlen[dir], sizeof(clen[0]) * n);
		t->qn[dir] = 0;
		for (size_t i = 0; i < n; i++) {
			if (dir == 1) {
				/* the agent's outer on_packet */
				if (!connectors_from_outer(t->cs, copy[i], clen[i]))
					t->stray++;
			} else if (tunio_parse_udp(copy[i], clen[i], &l, &ll, &r, &rl, &pay, &plen)) {
				(void)masque_server_input(t->srv, (struct sockaddr *)&l, ll,
							  (struct sockaddr *)&r, rl, pay, plen);
			}
		}
	}
	masque_server_new_round(t->srv);
}

static int srv_request(struct masque_conn *c, const struct masque_request *rq,
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

/* The connector answers each packet from the on-prem host it was for. */
static void srv_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct e2e *t = ctx;
	uint8_t b[1600];

	t->srv_got++;
	t->srv_len = len;
	memcpy(b, pkt, len);
	memcpy(b + 12, pkt + 16, 4);
	memcpy(b + 16, pkt + 12, 4);
	(void)masque_conn_send(c, b, len);
}

static const struct masque_cbs srv_cbs = {
	.on_request = srv_request,
	.on_packet = srv_packet,
};

/* Signs a certificate with the test CA: name.crt/.key, CN cn, serverAuth. */
static void sign_server(const char *name, const char *cn)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl ecparam -name prime256v1 -genkey -noout -out %s.key 2>/dev/null && "
		 "openssl req -new -key %s.key -subj '/CN=%s' -out %s.csr 2>/dev/null && "
		 "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
		 "extendedKeyUsage=serverAuth,clientAuth\\n' > %s.ext && "
		 "openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		 "-extfile %s.ext -out %s.crt 2>/dev/null",
		 pki_dir, name, name, cn, name, name, name, name, name);
	assert_int_equal(system(cmd), 0);
}

/* Runs an inner session against a server presenting cert; returns the
 * connector's state when the loop stopped. */
static enum connector_state run_session_ca(struct e2e *t, const char *cert, const char *key,
					   const char *connector_ca)
{
	struct connectors_env env;
	struct masque_config scfg;
	WOLFSSL_CTX *sctx = NULL;
	struct zgconn v;
	struct route_prefix me;
	struct connector_status st;
	struct timeval limit = { 10, 0 };
	char err[256];

	memset(t, 0, sizeof(*t));
	t->now = 5000000000ull;
	t->base = event_base_new();
	assert_non_null(t->base);
	t->deliver = event_new(t->base, -1, 0, deliver_cb, t);
	assert_int_equal(tunio_new(t->base, server_emit, t, &t->sio), 0);
	assert_int_equal(tls_server_ctx_new(cert, key, f("ca.crt"), NULL, &sctx, err, sizeof(err)), 0);
	memset(&scfg, 0, sizeof(scfg));
	scfg.tls = sctx;
	scfg.io = tunio_io();
	scfg.ioctx = t->sio;
	scfg.uri_template = "https://connector.test/.well-known/masque/ip/{target}/{ipproto}/";
	scfg.retry_off = 1;
	scfg.max_udp_payload = 1424;
	assert_int_equal(masque_server_new(&scfg, &srv_cbs, t, &t->srv), 0);
	t->sctx = sctx; /* must outlive the server */

	memset(&env, 0, sizeof(env));
	env.base = t->base;
	env.cert = f("agent-1.crt");
	env.key = f("agent-1.key");
	env.ca = connector_ca;
	env.reconnect_min_ms = 5000; /* no retry within the test */
	env.to_outer = agent_to_outer;
	env.outer_max = agent_outer_max;
	env.to_tun = agent_tun;
	env.changed = agent_changed;
	env.now_ns = agent_now;
	env.ctx = t;
	assert_int_equal(connectors_new(&env, &t->cs), 0);
	conn(&v, "hosp-a", 1, "10.100.0.9", "10.20.0.0", 16);
	(void)connectors_set_list(t->cs, &v, 1);
	memset(&me, 0, sizeof(me));
	me.version = 4;
	me.addr[0] = 10;
	me.addr[1] = 100;
	me.addr[3] = 2;
	me.len = 32;
	connectors_set_local(t->cs, &me, NULL);
	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	connectors_status(t->cs, 0, &st);
	return st.state;
}

static enum connector_state run_session(struct e2e *t, const char *cert, const char *key)
{
	return run_session_ca(t, cert, key, f("ca.crt"));
}

static void end_session(struct e2e *t)
{
	connectors_free(t->cs);
	masque_server_del(t->srv);
	wolfSSL_CTX_free(t->sctx);
	tunio_free(t->sio);
	event_free(t->deliver);
	event_base_free(t->base);
}

static void test_inner_session(void **state)
{
	struct e2e *t = calloc(1, sizeof(*t));
	struct connector_status st;
	struct timeval limit = { 10, 0 };
	uint8_t p[64];
	size_t n, i = 9;

	(void)state;
	assert_non_null(t);
	sign_server("conn-a", "connector:hosp-a");
	assert_int_equal(run_session(t, f("conn-a.crt"), f("conn-a.key")), CONNECTOR_UP);
	assert_int_equal(t->stray, 0);
	/* a packet to the connector's prefix goes into the inner tunnel */
	n = udp4(p, "10.100.0.2", 40000, "10.20.3.4", 5432);
	assert_int_equal(connectors_steer(t->cs, p, n, &i), CONNECTORS_INNER);
	assert_int_equal(connectors_from_tun(t->cs, p, n), CONNECTORS_INNER);
	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	assert_int_equal(t->srv_got, 1);
	assert_int_equal(t->tun_got, 1); /* the answer, to the TUN */
	assert_int_equal(t->last_tun_len, n);
	assert_memory_equal(t->last_tun + 12, p + 16, 4);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.tx_packets, 1);
	assert_int_equal(st.rx_packets, 1);
	assert_int_equal(st.rx_bytes, n);
	assert_true(st.rtt_us > 0);
	/* outer demux: only the exact connector address:port -> our port */
	{
		uint8_t q[64];
		size_t k = 0;
		uint16_t lport;

		/* find our inner port from a packet the module sent */
		n = udp4(q, "10.100.0.9", 443, "10.100.0.2", 0);
		for (lport = 49152; lport != 0 && !connectors_match_outer(t->cs, q, n, &k);
		     lport++) {
			q[22] = (uint8_t)(lport >> 8);
			q[23] = (uint8_t)lport;
		}
		assert_true(connectors_match_outer(t->cs, q, n, &k));
		assert_int_equal(k, 0);
		q[21] = 0xbc; /* another source port */
		assert_false(connectors_match_outer(t->cs, q, n, &k));
		q[21] = 0xbb;
		q[15] = 10; /* another source address */
		assert_false(connectors_match_outer(t->cs, q, n, &k));
		q[15] = 9;
		q[19] = 3; /* another destination address */
		assert_false(connectors_match_outer(t->cs, q, n, &k));
		q[19] = 2;
		q[9] = 6; /* TCP */
		assert_false(connectors_match_outer(t->cs, q, n, &k));
		q[9] = 17;
		assert_true(connectors_match_outer(t->cs, q, n, &k));
		/* another port of ours: the module's (dropped), never the TUN */
		q[23] ^= 1;
		assert_int_equal(connectors_from_outer(t->cs, q, n), 1);
		q[23] ^= 1;
		/* a matching packet with a bad checksum is taken, never for the TUN */
		q[26] = 0x12;
		assert_int_equal(connectors_from_outer(t->cs, q, n), 1);
	}
	end_session(t);
	free(t);
}

/* An IPv4 UDP packet of len bytes (DF as given) for the inner tests. */
static size_t udp4_len(uint8_t *b, size_t len, const char *dst, int df)
{
	(void)udp4(b, "10.100.0.2", 40000, dst, 5432);
	for (size_t i = 36; i < len; i++)
		b[i] = (uint8_t)i;
	b[2] = (uint8_t)(len >> 8);
	b[3] = (uint8_t)len;
	b[6] = df ? 0x40 : 0;
	b[24] = (uint8_t)((len - 20) >> 8);
	b[25] = (uint8_t)(len - 20);
	return len;
}

/* A packet larger than the inner tunnel carries — its datagrams ride in
 * the outer tunnel's, so it is smaller than the outer tunnel (and the
 * TUN) — is answered with ICMP "fragmentation needed" carrying the inner
 * size, and counted; one of exactly that size goes through. */
static void test_inner_too_big(void **state)
{
	struct e2e *t = calloc(1, sizeof(*t));
	struct connector_status st;
	struct timeval limit = { 10, 0 };
	uint8_t p[1500];
	size_t n, mtu;

	(void)state;
	assert_non_null(t);
	sign_server("conn-a", "connector:hosp-a");
	assert_int_equal(run_session(t, f("conn-a.crt"), f("conn-a.key")), CONNECTOR_UP);
	/* 1400 bytes: the outer tunnel (1452-byte datagrams here) would take it */
	n = udp4_len(p, 1400, "10.20.3.4", 1);
	assert_int_equal(connectors_from_tun(t->cs, p, n), CONNECTORS_INNER);
	assert_int_equal(t->tun_got, 1); /* at once, to the TUN */
	assert_int_equal(t->last_tun_len, 576);
	assert_int_equal(t->last_tun[9], 1);
	assert_memory_equal(t->last_tun + 12, p + 16, 4); /* from the destination */
	assert_memory_equal(t->last_tun + 16, p + 12, 4); /* to the sender */
	assert_int_equal(t->last_tun[20], 3);             /* destination unreachable */
	assert_int_equal(t->last_tun[21], 4);             /* fragmentation needed */
	assert_int_equal(ptb_checksum(t->last_tun, 20, 0), 0);
	assert_int_equal(ptb_checksum(t->last_tun + 20, 576 - 20, 0), 0);
	assert_memory_equal(t->last_tun + 28, p, 576 - 28);
	mtu = (size_t)(t->last_tun[26] << 8 | t->last_tun[27]);
	/* the inner size: below 1452 - 28 (the inner UDP payload) less QUIC's
	 * overhead, and never below the 1280 every tunnel must carry */
	assert_true(mtu >= 1280 && mtu < 1400);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.too_big, 1);
	assert_int_equal(st.icmp_too_big, 1);
	assert_int_equal(st.tx_packets, 0);
	assert_int_equal(st.tx_dropped, 0);
	/* exactly that size goes through to the connector */
	n = udp4_len(p, mtu, "10.20.3.4", 1);
	assert_int_equal(connectors_from_tun(t->cs, p, n), CONNECTORS_INNER);
	assert_int_equal(t->tun_got, 1);
	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	assert_int_equal(t->srv_got, 1);
	assert_int_equal(t->srv_len, mtu);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.tx_packets, 1);
	assert_int_equal(st.too_big, 1);
	/* one byte more does not */
	n = udp4_len(p, mtu + 1, "10.20.3.4", 1);
	t->tun_got = 0;
	assert_int_equal(connectors_from_tun(t->cs, p, n), CONNECTORS_INNER);
	assert_int_equal(t->tun_got, 1);
	assert_int_equal(t->last_tun[21], 4);
	assert_int_equal(t->last_tun[26] << 8 | t->last_tun[27], mtu);
	/* without DF it is dropped and counted, with no "fragmentation
	 * needed" (that would be wrong for a fragmentable packet) */
	n = udp4_len(p, 1400, "10.20.3.4", 0);
	assert_int_equal(connectors_from_tun(t->cs, p, n), CONNECTORS_INNER);
	assert_int_equal(t->tun_got, 1);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.too_big, 3);
	assert_int_equal(st.icmp_too_big, 2);
	/* answers are capped at 100 a second, unreachable ones included (the
	 * module's clock stands still here) */
	n = udp4_len(p, 1400, "10.20.3.4", 1);
	t->tun_got = 0;
	for (int i = 0; i < 150; i++)
		(void)connectors_from_tun(t->cs, p, n);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.too_big, 153);
	assert_int_equal(st.icmp_too_big, 100);
	assert_int_equal(t->tun_got, 98); /* the 2 answers above were in this second */
	t->now += 1000000001ull;          /* a second later: answered again */
	(void)connectors_from_tun(t->cs, p, n);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.icmp_too_big, 101);
	assert_int_equal(t->tun_got, 99);
	end_session(t);
	free(t);
}

static void test_inner_session_wrong_cn(void **state)
{
	struct e2e *t = calloc(1, sizeof(*t));
	struct connector_status st;
	uint8_t p[64];
	size_t n;

	(void)state;
	assert_non_null(t);
	/* a valid server certificate of the same CA, but another connector */
	sign_server("conn-b", "connector:hosp-b");
	assert_int_equal(run_session(t, f("conn-b.crt"), f("conn-b.key")), CONNECTOR_REFUSED);
	connectors_status(t->cs, 0, &st);
	assert_non_null(strstr(st.last_error, "connector:hosp-a"));
	/* a refused connector's traffic is answered "prohibited" */
	n = udp4(p, "10.100.0.2", 40000, "10.20.3.4", 5432);
	assert_int_equal(connectors_from_tun(t->cs, p, n), CONNECTORS_UNREACHABLE);
	assert_int_equal(t->tun_got, 1);
	assert_int_equal(t->last_tun[20], 3);
	assert_int_equal(t->last_tun[21], 13);
	end_session(t);
	/* the relay's certificate (CN localhost) is refused as well */
	assert_int_equal(run_session(t, f("relay.crt"), f("relay.key")), CONNECTOR_REFUSED);
	end_session(t);
	free(t);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cp %s %s", from, to);
	assert_int_equal(system(cmd), 0);
}

/* Issue 22: the agent's TLS reload rebuilds the inner contexts: a
 * connector refused under the old connector_ca is tried again at once
 * (well before its backoff) with the new one; a reload from a bad file
 * changes nothing and names it; an open session stays up through
 * reloads. */
static void test_inner_session_reload_tls(void **state)
{
	static char ca[256];
	struct e2e *t = calloc(1, sizeof(*t));
	struct connector_status st;
	struct tls_cert_info ci;
	struct timeval limit = { 2, 0 }; /* the backoff's first delay is >= 2.5 s */
	char err[512];
	uint8_t p[64];
	size_t n;

	(void)state;
	assert_non_null(t);
	sign_server("conn-r", "connector:hosp-a");
	snprintf(ca, sizeof(ca), "%s/connector-ca.crt", pki_dir);
	copy_file(f("other-ca.crt"), ca);
	assert_int_equal(run_session_ca(t, f("conn-r.crt"), f("conn-r.key"), ca), CONNECTOR_REFUSED);
	connectors_status(t->cs, 0, &st);
	assert_non_null(strstr(st.last_error, "unknown_ca"));
	assert_string_equal(st.cert_serial, "");
	/* the right CA is installed and the agent reloads */
	copy_file(f("ca.crt"), ca);
	assert_int_equal(connectors_reload_tls(t->cs, err, sizeof(err)), 0);
	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.state, CONNECTOR_UP);
	/* the status names the certificate the connector presented */
	assert_int_equal(tls_cert_file_info(f("conn-r.crt"), &ci, err, sizeof(err)), 0);
	assert_string_equal(st.cert_serial, ci.serial);
	/* a bad file: refused, named, the session carries on */
	copy_file(f("agent-1.key"), ca);
	assert_int_equal(connectors_reload_tls(t->cs, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "connector-ca.crt"));
	copy_file(f("ca.crt"), ca);
	assert_int_equal(connectors_reload_tls(t->cs, err, sizeof(err)), 0);
	n = udp4(p, "10.100.0.2", 40000, "10.20.3.4", 5432);
	assert_int_equal(connectors_from_tun(t->cs, p, n), CONNECTORS_INNER);
	event_base_loopexit(t->base, &limit);
	event_base_dispatch(t->base);
	assert_int_equal(t->srv_got, 1);
	assert_int_equal(t->tun_got, 1);
	connectors_status(t->cs, 0, &st);
	assert_int_equal(st.state, CONNECTOR_UP);
	end_session(t);
	free(t);
}

/* The module keeps env.cert, env.key and env.ca and reads them again at
 * every inner handshake and reload: a path from f() stays that file's
 * path however many other f() calls come between (tests/pki.h). */
static void test_pki_paths_stay_put(void **state)
{
	const char *ca = f("ca.crt"), *key = f("agent-1.key");
	char want[sizeof(pki_dir) + 16], name[32];

	(void)state;
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "other-%d.crt", i);
		assert_non_null(strstr(f(name), name));
	}
	snprintf(want, sizeof(want), "%s/ca.crt", pki_dir);
	assert_string_equal(ca, want);
	assert_ptr_equal(f("ca.crt"), ca);
	snprintf(want, sizeof(want), "%s/agent-1.key", pki_dir);
	assert_string_equal(key, want);
}

/* With no connector listed a reload only checks the files. */
static void test_reload_tls_without_connectors(void **state)
{
	static char cert[256], key[256], ca[256];
	struct connectors_env env;
	struct connectors *cs;
	char err[512];

	(void)state;
	snprintf(cert, sizeof(cert), "%s", f("agent-1.crt"));
	snprintf(key, sizeof(key), "%s", f("agent-1.key"));
	snprintf(ca, sizeof(ca), "%s", f("ca.crt"));
	memset(&env, 0, sizeof(env));
	env.cert = cert;
	env.key = key;
	env.ca = ca;
	assert_int_equal(connectors_new(&env, &cs), 0);
	assert_int_equal(connectors_reload_tls(cs, err, sizeof(err)), 0);
	snprintf(key, sizeof(key), "%s", f("agent-2.key"));
	assert_int_equal(connectors_reload_tls(cs, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "agent-2.key does not match"));
	connectors_free(cs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pki_paths_stay_put),
		cmocka_unit_test(test_list_add_update_remove),
		cmocka_unit_test(test_capsule),
		cmocka_unit_test(test_steer),
		cmocka_unit_test(test_outer_unsolicited),
		cmocka_unit_test(test_inner_session),
		cmocka_unit_test(test_inner_too_big),
		cmocka_unit_test(test_inner_session_wrong_cn),
		cmocka_unit_test(test_inner_session_reload_tls),
		cmocka_unit_test(test_reload_tls_without_connectors),
	};
	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
