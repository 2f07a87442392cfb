/* Unit tests for src/relay/dnssvc: the DNS service on a real stack (its
 * replies captured at the stack's output) and a fake upstream resolver on
 * loopback (UDP, and TCP for truncated answers), on an injected clock:
 * names denied and allowed, bindings and their expiry, the route
 * coalescing window, the cache, rebinding, truncation both ways. */
#include <errno.h>
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
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <ldns/ldns.h>
#pragma GCC diagnostic pop

#include "relay/dnsmsg.h"
#include "relay/dnssvc.h"
#include "stack/pkt.h"
#include "zg_err.h"

struct fx {
	struct event_base *base;
	struct stack *st;
	struct dnssvc *d;
	struct policy *pol;
	uint64_t now;
	int ufd, tfd; /* fake upstream: UDP and TCP on one loopback port */
	uint16_t port;
	struct dnssvc_config dc;
	struct dnssvc_hooks h;
	uint8_t out[4][2048]; /* replies toward the client (IP packets) */
	size_t outlen[4];
	int nout;
	char changed[8][64];
	int changed_nout[8];
	int nchanged;
};

static void out_cb(void *ctx, const struct stack_addr *dst, const uint8_t *pkt, size_t len)
{
	struct fx *fx = ctx;
	(void)dst;
	if (fx->nout < 4 && len <= sizeof(fx->out[0])) {
		memcpy(fx->out[fx->nout], pkt, len);
		fx->outlen[fx->nout] = len;
	}
	fx->nout++; /* the first four kept */
}

static enum stack_verdict pol_cb(void *ctx, const struct stack_flow_info *f, const char **prule)
{
	(void)ctx;
	(void)f;
	*prule = "x";
	return STACK_DENY;
}

static uint64_t clock_cb(void *ctx)
{
	return ((struct fx *)ctx)->now;
}

static const struct policy *policy_hook(void *ctx)
{
	return ((struct fx *)ctx)->pol;
}

static void changed_hook(void *ctx, const char *client)
{
	struct fx *fx = ctx;
	if (fx->nchanged < 8) {
		fx->changed_nout[fx->nchanged] = fx->nout; /* replies out by then */
		(void)snprintf(fx->changed[fx->nchanged++], 64, "%s", client);
	}
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct stack_callbacks cb = { out_cb, pol_cb, NULL, clock_cb };
	struct dnssvc_hooks h = { fx, policy_hook, changed_hook, NULL, clock_cb };
	struct dnssvc_config dc;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char err[256], up[64];
	const char *pol = "version: 1\nclients:\n  agent-1:\n    rules:\n"
			  "      - { id: lab, action: allow, destinations: [portal.lab.example, \"*.saas.example\"] }\n";

	fx->now = 1000000;
	fx->base = event_base_new();
	assert_non_null(fx->base);
	assert_int_equal(policy_load_buf("p", pol, strlen(pol), &fx->pol, err, sizeof(err)), 0);
	assert_int_equal(stack_new(fx->base, NULL, &cb, fx, &fx->st), 0);
	/* the fake upstream: UDP and TCP on one port. The UDP socket picks
	 * it; another process may hold that TCP port on the loopback (a
	 * client's ephemeral port), so a clash means another try. */
	for (int tries = 0;; tries++) {
		int one = 1;

		fx->ufd = socket(AF_INET, SOCK_DGRAM, 0);
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(sin);
		assert_int_equal(bind(fx->ufd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		assert_int_equal(getsockname(fx->ufd, (struct sockaddr *)&sin, &sl), 0);
		fx->port = ntohs(sin.sin_port);
		fx->tfd = socket(AF_INET, SOCK_STREAM, 0);
		(void)setsockopt(fx->tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fx->tfd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			break;
		assert_int_equal(errno, EADDRINUSE);
		assert_true(tries < 50);
		close(fx->tfd);
		close(fx->ufd);
	}
	assert_int_equal(listen(fx->tfd, 4), 0);
	memset(&dc, 0, sizeof(dc));
	(void)snprintf(up, sizeof(up), "127.0.0.1:%u", fx->port);
	assert_int_equal(dnssvc_parse_upstreams(&dc, up, "/nonexistent", err, sizeof(err)), 0);
	dc.deny_rcode = DNSMSG_RCODE_NXDOMAIN;
	dc.names.ttl_floor_ms = 30000;
	dc.names.ttl_cap_ms = 3600000;
	dc.names.max_per_client = 16;
	dc.cache_entries = 100;
	dc.gw[0].version = 4;
	dc.gw[0].a[0] = 10, dc.gw[0].a[1] = 100, dc.gw[0].a[3] = 1;
	dc.n_gw = 1;
	assert_int_equal(dnssvc_new(fx->base, fx->st, NULL, &dc, &h, &fx->d), 0);
	fx->dc = dc;
	fx->h = h;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	dnssvc_free(fx->d);
	stack_del(fx->st);
	policy_free(fx->pol);
	close(fx->ufd);
	close(fx->tfd);
	event_base_free(fx->base);
	free(fx);
	return 0;
}

static struct stack_flow_info flow4(void)
{
	struct stack_flow_info f;
	memset(&f, 0, sizeof(f));
	f.client_id = "agent-1";
	f.src.version = f.dst.version = 4;
	memcpy(f.src.a, "\x0a\x64\x00\x07", 4);
	memcpy(f.dst.a, "\x0a\x64\x00\x01", 4);
	f.proto = STACK_PROTO_UDP;
	f.sport = 5353;
	f.dport = 53;
	return f;
}

static void ask(struct fx *fx, const char *name, uint16_t id, uint16_t edns)
{
	ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str(name), LDNS_RR_TYPE_A,
					 LDNS_RR_CLASS_IN, LDNS_RD);
	struct stack_flow_info f = flow4();
	uint8_t *w = NULL;
	size_t n;
	ldns_pkt_set_id(p, id);
	if (edns) {
		ldns_pkt_set_edns_udp_size(p, edns);
		ldns_pkt_set_edns_data(p, NULL);
	}
	assert_int_equal(ldns_pkt2wire(&w, p, &n), LDNS_STATUS_OK);
	ldns_pkt_free(p);
	dnssvc_query(fx->d, &f, 0, w, n);
	free(w);
}

/* An answer to query q (wire) with nrr A records at first, TTL ttl. */
static uint8_t *answer(const uint8_t *q, size_t qlen, const char *first, int nrr, uint32_t ttl,
		       int tc, size_t *plen)
{
	ldns_pkt *p = NULL;
	uint8_t *w = NULL;
	assert_int_equal(ldns_wire2pkt(&p, q, qlen), LDNS_STATUS_OK);
	ldns_pkt_set_qr(p, 1);
	ldns_pkt_set_tc(p, tc != 0);
	char *owner = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, first, &a), 1);
	for (int i = 0; i < nrr && !tc; i++) {
		char rr[512], ip[32];
		uint32_t v = ntohl(a.s_addr) + (uint32_t)i;
		struct in_addr b = { htonl(v) };
		inet_ntop(AF_INET, &b, ip, sizeof(ip));
		(void)snprintf(rr, sizeof(rr), "%s %u IN A %s", owner, ttl, ip);
		ldns_rr *r = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&r, rr, 0, NULL, NULL), LDNS_STATUS_OK);
		assert_true(ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, r));
	}
	free(owner);
	assert_int_equal(ldns_pkt2wire(&w, p, plen), LDNS_STATUS_OK);
	ldns_pkt_free(p);
	return w;
}

/* The fake upstream takes one UDP query and answers it (tc: truncated). */
static void upstream_udp(struct fx *fx, const char *first, int nrr, uint32_t ttl, int tc)
{
	uint8_t q[2048];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	struct pollfd pfd = { fx->ufd, POLLIN, 0 };
	size_t n;
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	ssize_t r = recvfrom(fx->ufd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
	assert_true(r >= 12);
	uint8_t *w = answer(q, (size_t)r, first, nrr, ttl, tc, &n);
	assert_int_equal(sendto(fx->ufd, w, n, 0, (struct sockaddr *)&from, fl), (ssize_t)n);
	free(w);
}

static int upstream_idle(struct fx *fx)
{
	struct pollfd pfd = { fx->ufd, POLLIN, 0 };
	return poll(&pfd, 1, 50) == 0;
}

/* Runs the loop until a reply reached the client. */
static void wait_reply(struct fx *fx, int want)
{
	for (int i = 0; i < 2000 && fx->nout < want; i++) {
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		if (fx->nout < want)
			(void)poll(NULL, 0, 1);
	}
	assert_int_equal(fx->nout, want);
}

/* Runs the loop until n answers were held in all. */
static void held_wait(struct fx *fx, uint64_t n)
{
	struct dnssvc_counts c;
	for (int i = 0; i < 2000; i++) {
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		dnssvc_get_counts(fx->d, &c);
		if (c.held >= n)
			break;
		(void)poll(NULL, 0, 1);
	}
	assert_int_equal(c.held, n);
}

/* Reply k as (rcode, tc, id, number of A records). */
static void reply_is(struct fx *fx, int k, uint8_t rcode, int tc, uint16_t id, size_t naddr)
{
	struct pkt_info pi;
	struct dnsmsg_answer a;
	struct dnsmsg_addr ad[64];
	assert_int_equal(pkt_parse(fx->out[k], fx->outlen[k], 1, &pi), 0);
	assert_int_equal(pi.sport, 53);
	assert_int_equal(pi.dport, 5353);
	assert_int_equal(dnsmsg_parse_answer(fx->out[k] + pi.payload_off, pi.payload_len, &a, ad, 64), 0);
	assert_int_equal(a.rcode, rcode);
	assert_int_equal(a.tc, tc);
	assert_int_equal(a.id, id);
	assert_int_equal(a.naddr, naddr);
}

static const struct names_binding *bound(struct fx *fx, const char *ip)
{
	struct stack_addr a;
	memset(&a, 0, sizeof(a));
	a.version = 4;
	assert_int_equal(inet_pton(AF_INET, ip, a.a), 1);
	return dnssvc_binding(fx->d, "agent-1", &a);
}

static void test_denied_never_forwarded(void **state)
{
	struct fx *fx = *state;
	struct dnssvc_counts c;
	ask(fx, "unlisted.example.", 11, 0);
	assert_int_equal(fx->nout, 1); /* answered at once */
	reply_is(fx, 0, DNSMSG_RCODE_NXDOMAIN, 0, 11, 0);
	assert_true(upstream_idle(fx));
	ask(fx, "saas.example.", 12, 0); /* a wildcard's apex */
	reply_is(fx, 1, DNSMSG_RCODE_NXDOMAIN, 0, 12, 0);
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.denied, 2);
	assert_int_equal(c.allowed, 0);
}

static void test_allowed_binds_routes_cache_expiry(void **state)
{
	struct fx *fx = *state;
	struct dnssvc_counts c;
	struct cip_route r[8];
	const struct names_binding *b;

	ask(fx, "Portal.Lab.Example.", 21, 0);
	upstream_udp(fx, "198.18.0.10", 2, 5, 0);
	wait_reply(fx, 1);
	reply_is(fx, 0, 0, 0, 21, 2); /* the client's ID, not ours */
	b = bound(fx, "198.18.0.11");
	assert_non_null(b);
	assert_string_equal(b->rule, "lab");
	assert_string_equal(b->name, "portal.lab.example");
	assert_int_equal(b->expires_ms, fx->now + 30000); /* TTL 5 s: the 30 s floor */
	/* routes: the gateway and the two learned addresses */
	assert_int_equal(dnssvc_routes(fx->d, "agent-1", r, 8), 3);
	/* the first change is advertised at once, before the answer that
	 * made it leaves (the client's SYN must find the route) ... */
	assert_int_equal(fx->nchanged, 1);
	assert_int_equal(fx->changed_nout[0], 0);
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 1);
	assert_string_equal(fx->changed[0], "agent-1");
	/* ... a second within 100 ms waits, and so does its answer: the
	 * window is DNSSVC_ROUTE_HOLD_MS then, and the answer goes right
	 * after the advertisement */
	fx->now += 5;
	ask(fx, "a.saas.example.", 22, 0);
	upstream_udp(fx, "198.18.1.10", 1, 600, 0);
	held_wait(fx, 1);
	assert_int_equal(fx->nout, 1);
	fx->now += DNSSVC_ROUTE_HOLD_MS - 6;
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 1);
	assert_int_equal(fx->nout, 1);
	fx->now += 1;
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 2);
	assert_int_equal(fx->changed_nout[1], 1); /* told before the answer left */
	assert_int_equal(fx->nout, 2);
	reply_is(fx, 1, 0, 0, 22, 1);
	/* the same name again: from the cache, nothing upstream, new ID */
	ask(fx, "portal.lab.example.", 23, 0);
	assert_true(upstream_idle(fx));
	assert_int_equal(fx->nout, 3);
	reply_is(fx, 2, 0, 0, 23, 2);
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.cache_hits, 1);
	assert_int_equal(c.allowed, 3);
	assert_int_equal(c.names.bindings, 3);
	/* expiry: the floor passes, portal's two go, a.saas.example's stays */
	fx->now += 30000;
	dnssvc_tick(fx->d);
	assert_null(bound(fx, "198.18.0.10"));
	assert_non_null(bound(fx, "198.18.1.10"));
	assert_int_equal(fx->nchanged, 3); /* withdrawn with a new advertisement */
	assert_int_equal(dnssvc_routes(fx->d, "agent-1", r, 8), 2);
	/* the cached answer (TTL 5 s) is gone too: asked upstream again; its
	 * route is new again, in the window the withdrawal opened: the answer
	 * waits for it */
	ask(fx, "portal.lab.example.", 24, 0);
	upstream_udp(fx, "198.18.0.10", 1, 5, 0);
	held_wait(fx, 2);
	assert_int_equal(fx->nout, 3);
	fx->now += DNSSVC_ROUTE_HOLD_MS;
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 4);
	assert_int_equal(fx->changed_nout[3], 3);
	assert_int_equal(fx->nout, 4);
	reply_is(fx, 3, 0, 0, 24, 1);
}

/* A page resolving many new names in one window: every answer waits for
 * the advertisement of its route, but no more than DNSSVC_HOLD_MAX of
 * them: then the routes are told at once and all the answers go, in the
 * order they came. A change from expiry alone waits the whole window. */
static void test_answers_held_cap(void **state)
{
	struct fx *fx = *state;
	struct dnssvc_counts c;
	char name[64], ip[32];

	dnssvc_free(fx->d); /* again, with room for more learned routes */
	fx->dc.names.max_per_client = 1000;
	assert_int_equal(dnssvc_new(fx->base, fx->st, NULL, &fx->dc, &fx->h, &fx->d), 0);
	uint64_t t0 = fx->now;
	ask(fx, "first.saas.example.", 1, 0);
	upstream_udp(fx, "198.18.3.1", 1, 5, 0); /* bound for the 30 s floor */
	wait_reply(fx, 1);
	assert_int_equal(fx->nchanged, 1);
	assert_int_equal(fx->changed_nout[0], 0);
	fx->now += 1;
	for (int i = 0; i < DNSSVC_HOLD_MAX; i++) {
		(void)snprintf(name, sizeof(name), "h%d.saas.example.", i);
		(void)snprintf(ip, sizeof(ip), "198.18.4.%d", i + 1);
		ask(fx, name, (uint16_t)(100 + i), 0);
		upstream_udp(fx, ip, 1, 600, 0);
		held_wait(fx, (uint64_t)i + 1);
	}
	assert_int_equal(fx->nout, 1);
	assert_int_equal(fx->nchanged, 1);
	/* one more: over the cap, told now, then every answer, oldest first */
	ask(fx, "last.saas.example.", 99, 0);
	upstream_udp(fx, "198.18.5.1", 1, 600, 0);
	wait_reply(fx, DNSSVC_HOLD_MAX + 2);
	assert_int_equal(fx->nchanged, 2);
	assert_int_equal(fx->changed_nout[1], 1);
	reply_is(fx, 1, 0, 0, 100, 1);
	reply_is(fx, 2, 0, 0, 101, 1);
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.held, DNSSVC_HOLD_MAX);
	/* the same addresses again (from the cache): no new route, no wait */
	ask(fx, "h0.saas.example.", 200, 0);
	assert_int_equal(fx->nout, DNSSVC_HOLD_MAX + 3);
	/* a change from expiry alone waits for the whole window */
	fx->now = t0 + 30000 - 10;
	ask(fx, "fresh.saas.example.", 202, 0);
	upstream_udp(fx, "198.18.6.1", 1, 600, 0);
	wait_reply(fx, DNSSVC_HOLD_MAX + 4); /* a new window: told at once */
	assert_int_equal(fx->nchanged, 3);
	fx->now = t0 + 30000; /* first.saas.example's binding expires */
	dnssvc_tick(fx->d);
	assert_null(dnssvc_binding(fx->d, "agent-1", &(struct stack_addr){ 4, { 198, 18, 3, 1 } }));
	assert_int_equal(fx->nchanged, 3);
	fx->now = t0 + 30000 - 10 + DNSSVC_ROUTE_COALESCE_MS - 1;
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 3);
	fx->now += 1;
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 4);
	/* an answer still held when the service stops is freed with it
	 * (teardown; the ASan build checks) */
	fx->now += 1;
	ask(fx, "late.saas.example.", 201, 0);
	upstream_udp(fx, "198.18.7.1", 1, 600, 0);
	held_wait(fx, DNSSVC_HOLD_MAX + 1);
	assert_int_equal(fx->nout, DNSSVC_HOLD_MAX + 4);
}

/* While a change waits for its advertisement, an answer that carries an
 * address the client may not have been told of yet waits too: the same
 * name again (from the cache), another name with the same address, and
 * (simply) any answer with an address. A denied name is answered at once. */
static void test_answers_same_address_held(void **state)
{
	struct fx *fx = *state;
	struct dnssvc_counts c;

	ask(fx, "p.saas.example.", 1, 0);
	upstream_udp(fx, "198.18.8.1", 1, 600, 0);
	wait_reply(fx, 1); /* told at once */
	assert_int_equal(fx->nchanged, 1);
	fx->now += 1;
	ask(fx, "q.saas.example.", 2, 0);
	upstream_udp(fx, "198.18.8.2", 1, 600, 0);
	held_wait(fx, 1);
	ask(fx, "q.saas.example.", 3, 0); /* from the cache: its address is not told yet */
	assert_true(upstream_idle(fx));
	held_wait(fx, 2);
	ask(fx, "r.saas.example.", 4, 0); /* another name, the same address */
	upstream_udp(fx, "198.18.8.2", 1, 600, 0);
	held_wait(fx, 3);
	ask(fx, "p.saas.example.", 5, 0); /* told already, but held all the same */
	held_wait(fx, 4);
	ask(fx, "unlisted.example.", 6, 0); /* denied: at once */
	assert_int_equal(fx->nout, 2);
	reply_is(fx, 1, DNSMSG_RCODE_NXDOMAIN, 0, 6, 0);
	fx->now += DNSSVC_ROUTE_HOLD_MS - 2; /* the window began 1 ms before */
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 1);
	assert_int_equal(fx->nout, 2);
	fx->now += 1;
	dnssvc_tick(fx->d);
	assert_int_equal(fx->nchanged, 2);
	assert_int_equal(fx->changed_nout[1], 2); /* told before any of the four */
	assert_int_equal(fx->nout, 6);
	reply_is(fx, 2, 0, 0, 2, 1); /* oldest first */
	reply_is(fx, 3, 0, 0, 3, 1);
	/* nothing waits now: the cache answers at once */
	ask(fx, "q.saas.example.", 7, 0);
	assert_int_equal(fx->nout, 7);
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.held, 4);
}

static void test_rebinding_refused(void **state)
{
	struct fx *fx = *state;
	struct dnssvc_counts c;
	ask(fx, "evil.saas.example.", 31, 0);
	upstream_udp(fx, "127.0.0.1", 1, 600, 0);
	wait_reply(fx, 1);
	reply_is(fx, 0, DNSMSG_RCODE_REFUSED, 0, 31, 0);
	assert_null(bound(fx, "127.0.0.1"));
	ask(fx, "meta.saas.example.", 32, 0);
	upstream_udp(fx, "169.254.169.254", 1, 600, 0);
	wait_reply(fx, 2);
	reply_is(fx, 1, DNSMSG_RCODE_REFUSED, 0, 32, 0);
	/* the pool is never reachable either */
	ask(fx, "pool.saas.example.", 33, 0);
	upstream_udp(fx, "10.100.0.9", 1, 600, 0);
	wait_reply(fx, 3);
	reply_is(fx, 2, DNSMSG_RCODE_NOERROR, 0, 33, 1); /* no pool configured here */
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.rebinding, 2);
	/* nothing refused was cached */
	ask(fx, "evil.saas.example.", 34, 0);
	upstream_udp(fx, "127.0.0.1", 1, 600, 0);
	wait_reply(fx, 4);
	reply_is(fx, 3, DNSMSG_RCODE_REFUSED, 0, 34, 0);
}

static void test_truncation_both_ways(void **state)
{
	struct fx *fx = *state;
	struct dnssvc_counts c;
	uint8_t hdr[2], q[1024], *w;
	size_t n;

	/* upstream UDP truncated: the same query over TCP */
	ask(fx, "big.saas.example.", 41, 0);
	upstream_udp(fx, "198.18.2.1", 0, 60, 1);
	struct pollfd pfd = { fx->tfd, POLLIN, 0 };
	for (int i = 0; i < 2000 && poll(&pfd, 1, 0) == 0; i++) {
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		(void)poll(NULL, 0, 1);
	}
	int c2 = accept(fx->tfd, NULL, NULL);
	assert_true(c2 >= 0);
	for (int i = 0; i < 2000; i++) {
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		struct pollfd p2 = { c2, POLLIN, 0 };
		if (poll(&p2, 1, 1) == 1)
			break;
	}
	assert_int_equal(recv(c2, hdr, 2, MSG_WAITALL), 2);
	n = ((size_t)hdr[0] << 8) | hdr[1];
	assert_int_equal(recv(c2, q, n, MSG_WAITALL), (ssize_t)n);
	/* 60 A records: too big for the client's 512-byte UDP */
	size_t an;
	w = answer(q, n, "198.18.2.1", 60, 600, 0, &an);
	assert_true(an > 512);
	hdr[0] = (uint8_t)(an >> 8);
	hdr[1] = (uint8_t)an;
	assert_int_equal(send(c2, hdr, 2, 0), 2);
	assert_int_equal(send(c2, w, an, 0), (ssize_t)an);
	free(w);
	wait_reply(fx, 1);
	close(c2);
	/* the client gets TC (it asks again over TCP); addresses are bound up
	 * to the client's cap (16), the rest counted */
	reply_is(fx, 0, 0, 1, 41, 0);
	assert_non_null(bound(fx, "198.18.2.16"));
	assert_null(bound(fx, "198.18.2.17"));
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.upstream_tcp, 1);
	assert_int_equal(c.names.bindings, 16);
	assert_int_equal(c.names.cap_hits, 44);
	/* with EDNS 1232 the cached answer (about 1 KiB) fits */
	ask(fx, "big.saas.example.", 42, 1232);
	assert_int_equal(fx->nout, 2);
	reply_is(fx, 1, 0, 0, 42, 60);
}

/* One client cannot hold more than its share of queries in flight. */
static void test_pending_per_client_cap(void **state)
{
	struct fx *fx = *state;
	struct dnssvc_counts c;
	char name[64];
	for (int i = 0; i < DNSSVC_MAX_PENDING_PER_CLIENT + 3; i++) {
		(void)snprintf(name, sizeof(name), "h%d.saas.example.", i);
		ask(fx, name, (uint16_t)i, 0);
	}
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.overload, 3);
	assert_int_equal(fx->nout, 3); /* the three over the cap: SERVFAIL at once */
	reply_is(fx, 0, DNSMSG_RCODE_SERVFAIL, 0, DNSSVC_MAX_PENDING_PER_CLIENT, 0);
}

static void test_malformed_and_bad_upstreams(void **state)
{
	struct fx *fx = *state;
	struct stack_flow_info f = flow4();
	struct dnssvc_counts c;
	struct dnssvc_config dc;
	char err[256];
	dnssvc_query(fx->d, &f, 0, (const uint8_t *)"garbage", 7);
	dnssvc_get_counts(fx->d, &c);
	assert_int_equal(c.malformed, 1);
	assert_int_equal(fx->nout, 0);
	memset(&dc, 0, sizeof(dc));
	assert_int_equal(dnssvc_parse_upstreams(&dc, "192.0.2.53, [2001:db8::53]:5353, 2001:db8::1",
						"/nonexistent", err, sizeof(err)),
			 0);
	assert_int_equal(dc.n_upstreams, 3);
	assert_int_equal(dnssvc_parse_upstreams(&dc, "dns.example", "/x", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "dns.upstreams: \"dns.example\" is not an IP address"));
	assert_int_equal(dnssvc_parse_upstreams(&dc, "", "/nonexistent", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "/nonexistent cannot be read"));
	FILE *rf = fopen("build/test_dnssvc_resolv.conf", "w");
	assert_non_null(rf);
	fputs("# comment\nsearch example\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\n", rf);
	fclose(rf);
	assert_int_equal(dnssvc_parse_upstreams(&dc, "", "build/test_dnssvc_resolv.conf", err, sizeof(err)), 0);
	assert_int_equal(dc.n_upstreams, 2);
	(void)remove("build/test_dnssvc_resolv.conf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_denied_never_forwarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed_binds_routes_cache_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answers_held_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answers_same_address_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebinding_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_and_bad_upstreams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_per_client_cap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
