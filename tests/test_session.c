/* tests/test_session.c — the relay's session module (src/relay/session.c)
 * driven through fake hooks: a policy table, a pool that gives each client
 * a stable address, connections that record what was done to them, a
 * recorded audit trail and a fake clock. No sockets, no event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "relay/session.h"
#include "zg_err.h"

/* ------------------------------------------------------------------ */
/* fakes                                                              */

struct fake_conn {
	struct session *data;
	int open;
	int closed;
	char why[128];
	int answered; /* status of a pending answer, 0 if none */
	struct masque_accept acc;
	char ps[128];
	struct cip_route routes[MASQUE_MAX_ROUTES];
	size_t nroutes;
	int routes_pushes;
	int no_cert; /* the connection kept no client certificate */
};

#define POL_MAX 4
#define RT_MAX 8

struct fake {
	struct {
		const char *id;
		struct cip_route r[RT_MAX];
		size_t n;
	} pol[POL_MAX];
	size_t npol;
	int ipam_full;
	unsigned allocs, releases, saves;
	char released[64];
	unsigned opens, closes, limits;
	char limit[64], close_token[32];
	uint64_t close_sid, close_duration;
	unsigned flow_closes;
	char flows_of[64];
	uint64_t now;
	int defer_fail;
	struct session *deferred;
	int deferred_need;
	unsigned cancels;
	/* the shared pool (20.2) */
	struct session *alloc_pending;
	unsigned alloc_starts, alloc_cancels, assigns;
	int alloc_fail, assign_fail;
	uint8_t assigned[4];
	/* issue 22: the policy's connectors: and its clients with a connector rule */
	const char *known[4], *reach[4];
	size_t nknown, nreach;
};

static struct fake F;
static struct session_table T;
static struct cip_route ROUTES[MASQUE_MAX_ROUTES];

static struct masque_conn *mc(struct fake_conn *c)
{
	return (struct masque_conn *)c;
}

static struct fake_conn *fc(struct masque_conn *c)
{
	return (struct fake_conn *)c;
}

static int f_policy_routes(void *ctx, const char *id, struct cip_route *out, size_t cap,
			   size_t *pn)
{
	(void)ctx;
	*pn = 0;
	for (size_t i = 0; i < F.npol; i++) {
		if (strcmp(F.pol[i].id, id) != 0)
			continue;
		if (F.pol[i].n > cap)
			return ZG_ERR_TOO_LARGE;
		memcpy(out, F.pol[i].r, F.pol[i].n * sizeof(*out));
		*pn = F.pol[i].n;
	}
	return 0;
}

/* 100.64.0.x / fd00::x with x from the id: stable per client. */
static uint8_t id_byte(const char *id)
{
	unsigned h = 7;

	for (; *id; id++)
		h = h * 31 + (unsigned char)*id;
	return (uint8_t)(1 + h % 250);
}

static int f_ipam_alloc(void *ctx, const char *id, int version, uint8_t addr[16])
{
	(void)ctx;
	if (F.ipam_full)
		return ZG_ERR_LIMIT;
	F.allocs++;
	memset(addr, 0, 16);
	if (version == 4) {
		addr[0] = 100;
		addr[1] = 64;
		addr[3] = id_byte(id);
	} else {
		addr[0] = 0xfd;
		addr[15] = id_byte(id);
	}
	return 0;
}

static void f_ipam_release(void *ctx, const char *id, int version)
{
	(void)ctx;
	(void)version;
	F.releases++;
	(void)snprintf(F.released, sizeof(F.released), "%s", id);
}

static void f_ipam_changed(void *ctx)
{
	(void)ctx;
	F.saves++;
}

static const uint8_t *f_peer_cert(void *ctx, struct masque_conn *c, size_t *plen)
{
	(void)ctx;
	if (fc(c)->no_cert) {
		*plen = 0;
		return NULL;
	}
	*plen = 3;
	return (const uint8_t *)"DER";
}

static void f_set_data(void *ctx, struct masque_conn *c, struct session *s)
{
	(void)ctx;
	fc(c)->data = s;
}

static int f_conn_is_open(void *ctx, struct masque_conn *c)
{
	(void)ctx;
	return fc(c)->open;
}

static void f_close_conn(void *ctx, struct masque_conn *c, const char *why)
{
	(void)ctx;
	fc(c)->closed++;
	(void)snprintf(fc(c)->why, sizeof(fc(c)->why), "%s", why);
}

static void f_answer(void *ctx, struct masque_conn *c, int status, const struct masque_accept *acc,
		     const char *ps)
{
	(void)ctx;
	fc(c)->answered = status;
	if (acc != NULL)
		fc(c)->acc = *acc;
	(void)snprintf(fc(c)->ps, sizeof(fc(c)->ps), "%s", ps ? ps : "");
}

static int f_send_routes(void *ctx, struct masque_conn *c, const struct cip_route *r, size_t n)
{
	(void)ctx;
	memcpy(fc(c)->routes, r, n * sizeof(*r));
	fc(c)->nroutes = n;
	fc(c)->routes_pushes++;
	return 0;
}

static void f_close_flows(void *ctx, const char *id)
{
	(void)ctx;
	F.flow_closes++;
	(void)snprintf(F.flows_of, sizeof(F.flows_of), "%s", id);
}

static int f_defer(void *ctx, struct session *s, int need_resolver)
{
	(void)ctx;
	if (F.defer_fail)
		return ZG_ERR_STATE;
	F.deferred = s;
	F.deferred_need = need_resolver;
	return 0;
}

static void f_cancel_resolve(void *ctx, struct session *s)
{
	(void)ctx;
	(void)s;
	F.cancels++;
}

static int f_ipam_alloc_async(void *ctx, struct session *s)
{
	(void)ctx;
	if (F.alloc_fail)
		return ZG_ERR_LIMIT;
	assert_int_equal(s->state, SESSION_ALLOCATING);
	F.alloc_starts++;
	F.alloc_pending = s;
	s->alloc_req = &F;
	return 0;
}

static void f_ipam_cancel(void *ctx, struct session *s)
{
	(void)ctx;
	assert_ptr_equal(s->alloc_req, &F);
	F.alloc_cancels++;
	F.alloc_pending = NULL;
}

static int f_ipam_assign(void *ctx, const char *id, const uint8_t addr4[4])
{
	(void)ctx;
	(void)id;
	if (F.assign_fail)
		return ZG_ERR_STATE;
	F.assigns++;
	memcpy(F.assigned, addr4, 4);
	return 0;
}

static void f_audit_limit(void *ctx, const char *what, const char *id, uint64_t sid)
{
	(void)ctx;
	(void)id;
	assert_true(sid != 0);
	F.limits++;
	(void)snprintf(F.limit, sizeof(F.limit), "%s", what);
}

static void f_audit_open(void *ctx, const struct session *s)
{
	(void)ctx;
	assert_int_equal(s->state, SESSION_OPEN);
	F.opens++;
}

static void f_audit_close(void *ctx, const struct session *s, uint64_t duration_ms,
			  const char *token)
{
	(void)ctx;
	F.closes++;
	F.close_sid = s->sid;
	F.close_duration = duration_ms;
	(void)snprintf(F.close_token, sizeof(F.close_token), "%s", token);
}

static int in_list(const char *const *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], id) == 0)
			return 1;
	return 0;
}

static int f_connector_known(void *ctx, const char *id)
{
	(void)ctx;
	return in_list(F.known, F.nknown, id);
}

/* What a connector may send to: the address pool, UDP (as the relay's). */
static struct cip_route route4(const char *lo, const char *hi, uint8_t proto);

static int f_connector_routes(void *ctx, const struct session *s, struct cip_route *out,
			      size_t cap, size_t *pn)
{
	(void)ctx;
	assert_true(s->connector);
	assert_true(cap >= 1);
	out[0] = route4("100.64.0.0", "100.64.0.255", 17);
	*pn = 1;
	return 0;
}

static int f_has_connectors(void *ctx, const char *id)
{
	(void)ctx;
	return in_list(F.reach, F.nreach, id);
}

static uint64_t f_now_ms(void *ctx)
{
	(void)ctx;
	return F.now;
}

static const struct session_hooks HOOKS = {
	.ctx = &F,
	.policy_routes = f_policy_routes,
	.ipam_alloc = f_ipam_alloc,
	.ipam_release = f_ipam_release,
	.ipam_changed = f_ipam_changed,
	.peer_cert = f_peer_cert,
	.set_data = f_set_data,
	.conn_is_open = f_conn_is_open,
	.close_conn = f_close_conn,
	.answer = f_answer,
	.send_routes = f_send_routes,
	.close_flows = f_close_flows,
	.defer = f_defer,
	.cancel_resolve = f_cancel_resolve,
	.audit_limit = f_audit_limit,
	.audit_open = f_audit_open,
	.audit_close = f_audit_close,
	.now_ms = f_now_ms,
	.connector_known = f_connector_known,
	.connector_routes = f_connector_routes,
	.has_connectors = f_has_connectors,
};

static int setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	F.now = 1000;
	session_table_init(&T, &HOOKS, 16, 0, 42);
	return 0;
}

static int setup6(void **state)
{
	setup(state);
	T.pool6 = 1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	session_table_free(&T); /* ASan reports what a test leaked */
	return 0;
}

static struct cip_route route4(const char *lo, const char *hi, uint8_t proto)
{
	struct cip_route r;

	memset(&r, 0, sizeof(r));
	r.version = 4;
	assert_int_equal(inet_pton(AF_INET, lo, r.start), 1);
	assert_int_equal(inet_pton(AF_INET, hi, r.end), 1);
	r.proto = proto;
	return r;
}

static struct cip_route route6(const char *lo, const char *hi, uint8_t proto)
{
	struct cip_route r;

	memset(&r, 0, sizeof(r));
	r.version = 6;
	assert_int_equal(inet_pton(AF_INET6, lo, r.start), 1);
	assert_int_equal(inet_pton(AF_INET6, hi, r.end), 1);
	r.proto = proto;
	return r;
}

static void allow(const char *id, struct cip_route r)
{
	size_t i;

	for (i = 0; i < F.npol; i++)
		if (strcmp(F.pol[i].id, id) == 0)
			break;
	if (i == F.npol) {
		assert_true(F.npol < POL_MAX);
		F.pol[F.npol].id = id;
		F.pol[F.npol++].n = 0;
	}
	assert_true(F.pol[i].n < RT_MAX);
	F.pol[i].r[F.pol[i].n++] = r;
}

static void allow_nothing(const char *id)
{
	for (size_t i = 0; i < F.npol; i++)
		if (strcmp(F.pol[i].id, id) == 0)
			F.pol[i].n = 0;
}

static struct masque_request req_any(const char *id)
{
	struct masque_request rq;
	struct sockaddr_in *sin = (struct sockaddr_in *)&rq.peer;

	memset(&rq, 0, sizeof(rq));
	(void)snprintf(rq.identity, sizeof(rq.identity), "%s", id);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(4433);
	sin->sin_addr.s_addr = htonl(0xc6336401); /* 198.51.100.1 */
	rq.peerlen = sizeof(*sin);
	rq.any_target = 1;
	rq.any_proto = 1;
	return rq;
}

static int connect_as(const char *id, struct fake_conn *c, struct masque_accept *acc)
{
	struct masque_request rq = req_any(id);

	memset(c, 0, sizeof(*c));
	c->open = 1;
	return session_request(&T, mc(c), &rq, ROUTES, acc);
}

static struct masque_close_info clean_close(void)
{
	struct masque_close_info ci;

	memset(&ci, 0, sizeof(ci));
	(void)snprintf(ci.reason, sizeof(ci.reason), "test");
	return ci;
}

static struct stack_flow_info flow4(const char *dst, uint8_t proto)
{
	struct stack_flow_info f;

	memset(&f, 0, sizeof(f));
	f.dst.version = 4;
	assert_int_equal(inet_pton(AF_INET, dst, f.dst.a), 1);
	f.proto = proto;
	return f;
}

/* ------------------------------------------------------------------ */
/* admission                                                          */

static void test_admit_open(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct session *s;
	struct stack_addr a;
	struct masque_close_info ci = clean_close();

	(void)state;
	allow("alice", route4("10.0.0.0", "10.0.255.255", 0));
	assert_int_equal(connect_as("alice", &c, &acc), 200);
	s = c.data;
	assert_non_null(s);
	assert_int_equal(s->state, SESSION_OPEN);
	assert_int_equal(T.n, 1);
	assert_int_equal(T.cnt.opened, 1);
	assert_string_equal(s->peer, "198.51.100.1:4433");
	assert_true(s->sid != 0);
	/* the answer: one IPv4 address (no IPv6 pool), the routes in the
	 * caller's array */
	assert_int_equal(acc.naddrs, 1);
	assert_int_equal(acc.addrs[0].version, 4);
	assert_int_equal(acc.addrs[0].prefix_len, 32);
	assert_int_equal(acc.addrs[0].addr[0], 100);
	assert_ptr_equal(acc.routes, ROUTES);
	assert_int_equal(acc.nroutes, 1);
	assert_true(strncmp(s->vip_s, "100.64.0.", 9) == 0 && strlen(s->vip_s) > 9);
	assert_int_equal(F.opens, 1);
	assert_int_equal(F.saves, 1);
	a = s->vip4;
	assert_ptr_equal(session_by_vip(&T, &a), s);
	assert_ptr_equal(session_by_id(&T, "alice"), s);
	assert_null(session_by_id(&T, "bob"));

	F.now += 2500;
	session_conn_closed(&T, s, &ci);
	assert_int_equal(T.n, 0);
	assert_null(c.data);
	assert_null(session_by_vip(&T, &a));
	assert_int_equal(F.releases, 1);
	assert_int_equal(F.flow_closes, 1);
	assert_int_equal(F.closes, 1);
	assert_int_equal(F.close_duration, 2500);
	assert_string_equal(F.close_token, "client_closed");
}

/* C05: nothing allowed → 403; no address left → 503; never 200 then
 * silence. */
static void test_c05_refusals(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_request rq;
	char longid[STACK_ID_MAX + 8];
	unsigned allocs;

	(void)state;
	/* an identity the policy does not know */
	assert_int_equal(connect_as("nobody", &c, &acc), 403);
	assert_null(c.data);
	assert_int_equal(T.n, 0);
	assert_int_equal(T.cnt.refused_403, 1);
	assert_int_equal(F.allocs, 0); /* no address taken for it */
	assert_string_equal(F.limit, "policy_nothing_allowed");

	/* one whose rules allow nothing any more */
	allow("carol", route4("10.0.0.0", "10.0.0.255", 0));
	allow_nothing("carol");
	assert_int_equal(connect_as("carol", &c, &acc), 403);
	assert_int_equal(T.cnt.refused_403, 2);

	/* the pool is empty */
	allow("alice", route4("10.0.0.0", "10.0.0.255", 0));
	F.ipam_full = 1;
	assert_int_equal(connect_as("alice", &c, &acc), 503);
	assert_null(c.data);
	assert_int_equal(T.n, 0);
	assert_int_equal(T.cnt.refused_503, 1);
	assert_string_equal(F.limit, "pool");
	assert_int_equal(F.opens, 0);

	/* a client ID too long for the tables */
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(connect_as(longid, &c, &acc), 403);
	assert_int_equal(T.cnt.refused_403, 3);

	/* no client certificate kept by the connection (one larger than
	 * TLS_CERT_DER_MAX): a tunnel a TLS reload could not check again is
	 * not opened */
	F.ipam_full = 0;
	rq = req_any("alice");
	memset(&c, 0, sizeof(c));
	c.open = 1;
	c.no_cert = 1;
	allocs = F.allocs;
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), 503);
	assert_null(c.data);
	assert_int_equal(T.n, 0);
	assert_int_equal(T.cnt.refused_503, 2);
	assert_int_equal(F.allocs, allocs); /* refused before any address */

	/* draining */
	T.shutting_down = 1;
	assert_int_equal(connect_as("alice", &c, &acc), 503);
	assert_int_equal(T.n, 0);
}

static void test_session_cap(void **state)
{
	struct fake_conn a1, b1, a2;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();

	(void)state;
	T.max_sessions = 1;
	allow("alice", route4("10.0.0.0", "10.0.0.255", 0));
	allow("bob", route4("10.0.0.0", "10.0.0.255", 0));
	assert_int_equal(connect_as("alice", &a1, &acc), 200);
	assert_int_equal(connect_as("bob", &b1, &acc), 503);
	assert_string_equal(F.limit, "sessions");
	/* the same client again is a replacement, not one more session */
	assert_int_equal(connect_as("alice", &a2, &acc), 200);
	session_conn_closed(&T, a1.data, &ci);
	session_conn_closed(&T, a2.data, &ci);
	assert_int_equal(T.n, 0);
}

/* The same client connects twice: the old session is REPLACED (its
 * connection closed, its flows ended), the address stays with the
 * client, and the old close is audited "replaced" without giving the
 * address back. */
static void test_replacement(void **state)
{
	struct fake_conn c1, c2;
	struct masque_accept acc1, acc2;
	struct session *old, *cur;
	struct masque_close_info ci = clean_close();
	uint64_t old_sid;

	(void)state;
	allow("alice", route4("10.0.0.0", "10.0.0.255", 0));
	assert_int_equal(connect_as("alice", &c1, &acc1), 200);
	old = c1.data;
	old_sid = old->sid;
	assert_int_equal(connect_as("alice", &c2, &acc2), 200);
	cur = c2.data;
	assert_ptr_not_equal(old, cur);
	assert_true(cur->sid != old_sid);
	assert_int_equal(old->state, SESSION_REPLACED);
	assert_int_equal(cur->state, SESSION_OPEN);
	assert_int_equal(c1.closed, 1);
	assert_string_equal(c1.why, "replaced by a newer connection");
	assert_int_equal(c2.closed, 0);
	assert_int_equal(F.flow_closes, 1);
	assert_string_equal(F.flows_of, "alice");
	assert_int_equal(T.cnt.replaced, 1);
	assert_int_equal(T.n, 2); /* until the old connection's close arrives */
	/* the address is kept */
	assert_memory_equal(acc1.addrs[0].addr, acc2.addrs[0].addr, 4);
	assert_true(stack_addr_eq(&old->vip4, &cur->vip4));
	assert_ptr_equal(session_by_vip(&T, &cur->vip4), cur);
	assert_ptr_equal(session_by_id(&T, "alice"), cur);
	/* a replaced session carries no more packets, but still answers for
	 * its address until it is gone */
	session_revoke(&T, old, "admin", "no effect on a replaced session");
	assert_int_equal(old->state, SESSION_REPLACED);
	assert_int_equal(c1.closed, 1);

	session_conn_closed(&T, old, &ci);
	assert_int_equal(T.n, 1);
	assert_int_equal(F.closes, 1);
	assert_int_equal(F.close_sid, old_sid);
	assert_string_equal(F.close_token, "replaced");
	assert_int_equal(F.releases, 0); /* the new session holds it */
	assert_ptr_equal(session_by_vip(&T, &cur->vip4), cur);
	assert_int_equal(F.opens, 2);

	session_conn_closed(&T, cur, &ci);
	assert_int_equal(T.n, 0);
	assert_int_equal(F.releases, 1);
	assert_string_equal(F.close_token, "client_closed");
}

/* ------------------------------------------------------------------ */
/* routes (C07)                                                       */

/* Each advertisement is the full list and supersedes the previous: a
 * policy change pushes the new ranges (sorted by version), and a client
 * allowed nothing any more is closed with reason "policy". */
static void test_c07_policy_change(void **state)
{
	struct fake_conn a, b;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct session *sa, *sb;
	size_t closed;

	(void)state;
	allow("alice", route4("10.0.0.0", "10.0.0.255", 0));
	allow("bob", route4("10.1.0.0", "10.1.0.255", 0));
	assert_int_equal(connect_as("alice", &a, &acc), 200);
	assert_int_equal(connect_as("bob", &b, &acc), 200);
	sa = a.data;
	sb = b.data;

	/* new policy: alice gets two other IPv4 ranges and an IPv6 one (as
	 * policy_routes gives them: ordered, C07); bob gets nothing */
	F.pol[0].n = 0;
	allow("alice", route4("10.2.0.0", "10.2.0.255", 0));
	allow("alice", route4("10.9.0.0", "10.9.0.255", 0));
	allow("alice", route6("2001:db8::", "2001:db8::ffff", 0));
	allow_nothing("bob");
	closed = session_policy_changed(&T, ROUTES);
	assert_int_equal(closed, 1);
	assert_int_equal(T.cnt.closed_policy, 1);

	assert_int_equal(a.routes_pushes, 1);
	assert_int_equal(a.nroutes, 3);
	assert_int_equal(a.routes[0].version, 4);
	assert_int_equal(a.routes[0].start[1], 2);
	assert_int_equal(a.routes[1].version, 4);
	assert_int_equal(a.routes[1].start[1], 9);
	assert_int_equal(a.routes[2].version, 6);
	assert_memory_equal(a.routes, F.pol[0].r, 3 * sizeof(struct cip_route));
	assert_int_equal(sa->state, SESSION_OPEN);

	assert_int_equal(b.routes_pushes, 0);
	assert_int_equal(sb->state, SESSION_CLOSING);
	assert_int_equal(b.closed, 1);
	assert_string_equal(F.flows_of, "bob");
	/* CLOSING: no second push, no second close */
	assert_int_equal(session_policy_changed(&T, ROUTES), 0);
	assert_int_equal(b.closed, 1);
	assert_int_equal(a.routes_pushes, 2);

	/* a connection no longer open gets no push */
	a.open = 0;
	assert_int_equal(session_policy_changed(&T, ROUTES), 0);
	assert_int_equal(a.routes_pushes, 2);

	session_conn_closed(&T, sb, &ci);
	assert_string_equal(F.close_token, "policy");
	assert_string_equal(F.released, "bob");
	session_conn_closed(&T, sa, &ci);
	assert_int_equal(T.n, 0);
}

/* ------------------------------------------------------------------ */
/* addresses (C08, C09)                                               */

static void test_c08_c09_address_request(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct cip_addr req[3], out[MASQUE_MAX_ADDRS];
	size_t n = 0;
	struct session *s;

	(void)state;
	allow("alice", route4("10.0.0.0", "10.0.0.255", 0));
	assert_int_equal(connect_as("alice", &c, &acc), 200);
	s = c.data;
	assert_int_equal(acc.naddrs, 2);
	assert_int_equal(acc.addrs[1].version, 6);
	assert_int_equal(acc.addrs[1].prefix_len, 128);

	/* asks for IPv4 only: gets its IPv4 under its Request ID, and the
	 * IPv6 one unprompted (the full set, C08) */
	memset(req, 0, sizeof(req));
	req[0].request_id = 7;
	req[0].version = 4;
	req[0].prefix_len = 32;
	assert_int_equal(session_address_request(s, req, 1, out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].request_id, 7);
	assert_int_equal(out[0].version, 4);
	assert_int_equal(out[0].prefix_len, 32);
	assert_memory_equal(out[0].addr, s->vip4.a, 4);
	assert_int_equal(out[1].request_id, 0);
	assert_int_equal(out[1].version, 6);
	assert_int_equal(out[1].prefix_len, 128);
	assert_memory_equal(out[1].addr, s->vip6.a, 16);

	/* another address than the one held: the held one (stable) */
	req[0].addr[0] = 192;
	req[0].addr[3] = 7;
	assert_int_equal(session_address_request(s, req, 1, out, &n), 0);
	assert_memory_equal(out[0].addr, s->vip4.a, 4);

	/* two requests of one version: the second is refused, all-zero with
	 * the maximum prefix length and its own Request ID (C09) */
	memset(req, 0, sizeof(req));
	req[0].request_id = 3;
	req[0].version = 6;
	req[0].prefix_len = 128;
	req[1] = req[0];
	req[1].request_id = 4;
	assert_int_equal(session_address_request(s, req, 2, out, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(out[0].request_id, 3);
	assert_memory_equal(out[0].addr, s->vip6.a, 16);
	assert_int_equal(out[1].request_id, 4);
	assert_int_equal(out[1].version, 6);
	assert_int_equal(out[1].prefix_len, 128);
	for (int i = 0; i < 16; i++)
		assert_int_equal(out[1].addr[i], 0);
	assert_int_equal(out[2].request_id, 0);
	assert_int_equal(out[2].version, 4);

	/* nothing to answer before admission */
	assert_int_equal(session_address_request(NULL, req, 1, out, &n), ZG_ERR_STATE);
	session_conn_closed(&T, s, &ci);
	assert_int_equal(F.releases, 2);
}

static void test_c09_refused_without_pool6(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct cip_addr req, out[MASQUE_MAX_ADDRS];
	size_t n = 0;

	(void)state;
	allow("alice", route4("10.0.0.0", "10.0.0.255", 0));
	assert_int_equal(connect_as("alice", &c, &acc), 200);
	memset(&req, 0, sizeof(req));
	req.request_id = 9;
	req.version = 6;
	req.prefix_len = 128;
	assert_int_equal(session_address_request(c.data, &req, 1, out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].request_id, 9);
	assert_int_equal(out[0].version, 6);
	assert_int_equal(out[0].prefix_len, 128);
	for (int i = 0; i < 16; i++)
		assert_int_equal(out[0].addr[i], 0);
	assert_int_equal(out[1].request_id, 0);
	assert_int_equal(out[1].version, 4);
	session_conn_closed(&T, c.data, &ci);
}

/* ------------------------------------------------------------------ */
/* scope (C19)                                                        */

static void test_c19_scope(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_request rq = req_any("alice");
	struct masque_close_info ci = clean_close();
	struct stack_flow_info f;
	struct session *s;

	(void)state;
	allow("alice", route4("192.0.0.0", "192.255.255.255", 0));
	allow("alice", route4("198.51.100.0", "198.51.100.255", 0));
	/* the tunnel asks for TCP to 192.0.2.0/24 only */
	rq.any_target = 0;
	rq.target.version = 4;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.0", rq.target.addr), 1);
	rq.target.prefix_len = 24;
	rq.any_proto = 0;
	rq.ipproto = STACK_PROTO_TCP;
	memset(&c, 0, sizeof(c));
	c.open = 1;
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), 200);
	s = c.data;
	/* the routes are the policy's narrowed to the scope */
	assert_int_equal(acc.nroutes, 1);
	assert_int_equal(acc.routes[0].proto, STACK_PROTO_TCP);
	assert_memory_equal(acc.routes[0].start, "\xc0\x00\x02\x00", 4);
	assert_memory_equal(acc.routes[0].end, "\xc0\x00\x02\xff", 4);

	f = flow4("192.0.2.9", STACK_PROTO_TCP);
	assert_int_equal(session_in_scope(s, &f), 1);
	f = flow4("198.51.100.1", STACK_PROTO_TCP); /* allowed by policy, out of scope */
	assert_int_equal(session_in_scope(s, &f), 0);
	f = flow4("192.0.3.1", STACK_PROTO_TCP);
	assert_int_equal(session_in_scope(s, &f), 0);
	f = flow4("192.0.2.9", STACK_PROTO_UDP); /* another protocol */
	assert_int_equal(session_in_scope(s, &f), 0);
	f = flow4("192.0.2.9", STACK_PROTO_ICMP); /* ICMP always in scope */
	assert_int_equal(session_in_scope(s, &f), 1);
	f = flow4("198.51.100.1", STACK_PROTO_ICMP); /* but not outside the target */
	assert_int_equal(session_in_scope(s, &f), 0);
	f.dst.version = 6;
	assert_int_equal(session_in_scope(s, &f), 0);
	session_conn_closed(&T, s, &ci);

	/* a scope the policy allows nothing of: 403 (C05) */
	assert_int_equal(inet_pton(AF_INET, "203.0.113.0", rq.target.addr), 1);
	memset(&c, 0, sizeof(c));
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), 403);
	/* a UDP-only policy and a TCP tunnel: 403 */
	F.pol[0].n = 0;
	allow("alice", route4("192.0.2.0", "192.0.2.255", STACK_PROTO_UDP));
	assert_int_equal(inet_pton(AF_INET, "192.0.2.0", rq.target.addr), 1);
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), 403);
	assert_int_equal(T.n, 0);
}

/* ------------------------------------------------------------------ */
/* DNS-name targets: RESOLVING, ABANDONED                             */

static void test_dns_resolved(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_request rq = req_any("alice");
	struct masque_close_info ci = clean_close();
	struct cip_addr target;
	struct session *s;

	(void)state;
	allow("alice", route4("192.0.2.0", "192.0.2.255", 0));
	(void)snprintf(rq.dns, sizeof(rq.dns), "app.example");
	memset(&c, 0, sizeof(c));
	c.open = 1;
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), MASQUE_PENDING);
	s = F.deferred;
	assert_non_null(s);
	assert_ptr_equal(c.data, s);
	assert_int_equal(s->state, SESSION_RESOLVING);
	assert_int_equal(F.deferred_need, 1);
	assert_int_equal(T.n, 0);
	/* no packets, no addresses while resolving */
	assert_int_equal(session_address_request(s, NULL, 0, NULL, NULL), ZG_ERR_STATE);
	assert_int_equal(session_deferred(&T, s), 1);
	assert_int_equal(T.cnt.dns_queries, 1);

	memset(&target, 0, sizeof(target));
	target.version = 4;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.80", target.addr), 1);
	target.prefix_len = 32;
	session_resolved(&T, s, &target, NULL, ROUTES);
	assert_int_equal(c.answered, 200);
	assert_int_equal(s->state, SESSION_OPEN);
	assert_int_equal(c.acc.nroutes, 1);
	assert_memory_equal(c.acc.routes[0].start, target.addr, 4);
	assert_memory_equal(c.acc.routes[0].end, target.addr, 4);
	session_conn_closed(&T, s, &ci);

	/* a name that does not resolve: 502 with dns_error */
	memset(&c, 0, sizeof(c));
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), MASQUE_PENDING);
	assert_int_equal(session_deferred(&T, F.deferred), 1);
	session_resolved(&T, F.deferred, NULL, "no such name", ROUTES);
	assert_int_equal(c.answered, 502);
	assert_string_equal(c.ps, "zgate-relay; error=dns_error");
	assert_null(c.data);
	assert_int_equal(T.cnt.refused_502, 1);
	assert_int_equal(T.n, 0);
}

/* The connection closes while its name resolves: the session becomes
 * ABANDONED, the lookup is cancelled, and the later step frees it (ASan
 * would report a leak or a use after free). */
static void test_dns_abandoned(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_request rq = req_any("alice");
	struct masque_close_info ci = clean_close();
	struct session *s;
	int token;

	(void)state;
	allow("alice", route4("192.0.2.0", "192.0.2.255", 0));
	(void)snprintf(rq.dns, sizeof(rq.dns), "app.example");

	/* closed before the deferred step */
	memset(&c, 0, sizeof(c));
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), MASQUE_PENDING);
	s = F.deferred;
	session_conn_closed(&T, s, &ci);
	assert_int_equal(s->state, SESSION_ABANDONED);
	assert_null(c.data);
	assert_int_equal(F.closes, 0);  /* never opened: no session_close line */
	assert_int_equal(F.cancels, 0); /* no lookup yet */
	assert_int_equal(session_deferred(&T, s), 0);
	assert_int_equal(T.cnt.dns_queries, 0);

	/* closed during the lookup */
	memset(&c, 0, sizeof(c));
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), MASQUE_PENDING);
	s = F.deferred;
	assert_int_equal(session_deferred(&T, s), 1);
	s->resolve_req = &token;
	session_conn_closed(&T, s, &ci);
	assert_int_equal(s->state, SESSION_ABANDONED);
	assert_int_equal(F.cancels, 1);
	session_resolved(&T, s, NULL, "cancelled", ROUTES);
	assert_int_equal(c.answered, 0); /* nobody to answer */
	assert_int_equal(F.allocs, 0);
	assert_int_equal(T.n, 0);
}

/* 20.2: with the shared pool the request waits for its address; nothing
 * is taken, replaced or opened until the answer; a failure is a 503 with
 * the cause; a close meanwhile cancels the allocation. */
static void test_shared_pool(void **state)
{
	struct session_hooks h = HOOKS;
	struct fake_conn c, c2;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct session *s, *first;
	const uint8_t a9[4] = { 10, 100, 0, 9 };

	(void)state;
	h.ipam_alloc_async = f_ipam_alloc_async;
	h.ipam_cancel = f_ipam_cancel;
	h.ipam_assign = f_ipam_assign;
	session_table_init(&T, &h, 16, 0, 42);
	allow("alice", route4("10.0.0.0", "10.0.255.255", 0));

	assert_int_equal(connect_as("alice", &c, &acc), MASQUE_PENDING);
	s = F.alloc_pending;
	assert_non_null(s);
	assert_ptr_equal(c.data, s);
	assert_int_equal(T.n, 0);
	assert_int_equal(F.allocs, 0);
	assert_int_equal(session_address_request(s, NULL, 0, NULL, NULL), ZG_ERR_STATE);
	session_allocated(&T, s, a9, NULL, ROUTES);
	assert_int_equal(c.answered, 200);
	assert_int_equal(s->state, SESSION_OPEN);
	assert_memory_equal(c.acc.addrs[0].addr, a9, 4);
	assert_string_equal(s->vip_s, "10.100.0.9");
	assert_int_equal(F.assigns, 1);
	assert_int_equal(F.allocs, 0); /* the local pool chose nothing */
	assert_int_equal(F.opens, 1);
	first = s;

	/* the same client again: the old tunnel stays until the answer */
	assert_int_equal(connect_as("alice", &c2, &acc), MASQUE_PENDING);
	assert_int_equal(c.closed, 0);
	assert_int_equal(first->state, SESSION_OPEN);
	session_allocated(&T, F.alloc_pending, a9, NULL, ROUTES);
	assert_int_equal(c2.answered, 200);
	assert_int_equal(first->state, SESSION_REPLACED);
	assert_int_equal(c.closed, 1);
	session_conn_closed(&T, first, &ci);
	session_conn_closed(&T, c2.data, &ci);
	assert_int_equal(T.n, 0);

	/* no address: 503 with the cause, audited, nothing kept */
	assert_int_equal(connect_as("alice", &c, &acc), MASQUE_PENDING);
	session_allocated(&T, F.alloc_pending, NULL,
			  "zgate-relay; error=destination_unavailable; details=\"ipam api\"",
			  ROUTES);
	assert_int_equal(c.answered, 503);
	assert_string_equal(c.ps, "zgate-relay; error=destination_unavailable; details=\"ipam api\"");
	assert_null(c.data);
	assert_string_equal(F.limit, "ipam_api");
	assert_int_equal(T.cnt.refused_ipam, 1);
	assert_int_equal(T.n, 0);

	/* the local pool refuses the answer (pools disagree): 503 */
	F.assign_fail = 1;
	assert_int_equal(connect_as("alice", &c, &acc), MASQUE_PENDING);
	session_allocated(&T, F.alloc_pending, a9, NULL, ROUTES);
	assert_int_equal(c.answered, 503);
	assert_int_equal(T.cnt.refused_ipam, 2);
	F.assign_fail = 0;

	/* closed while waiting: cancelled, freed, never answered */
	assert_int_equal(connect_as("alice", &c, &acc), MASQUE_PENDING);
	session_conn_closed(&T, c.data, &ci);
	assert_int_equal(F.alloc_cancels, 1);
	assert_int_equal(c.answered, 0);
	assert_int_equal(F.closes, 2); /* only the two opened tunnels were audited closed */

	/* cannot even ask: 503 at once */
	F.alloc_fail = 1;
	assert_int_equal(connect_as("alice", &c, &acc), 503);
	assert_int_equal(T.cnt.refused_ipam, 3);

	/* nothing allowed: 403 without asking the pool */
	F.alloc_fail = 0;
	allow_nothing("alice");
	assert_int_equal(connect_as("alice", &c, &acc), 403);
	assert_int_equal(F.alloc_starts, 5);
}

/* session_by_id is an index: it finds every open client, forgets closed
 * and replaced sessions, and tells clients apart whose ids share a
 * bucket. */
static void test_by_id_index(void **state)
{
	static struct fake_conn c[16], again;
	static char ids[16][24];
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct session *old;

	(void)state;
	for (int i = 0; i < 16; i++) {
		(void)snprintf(ids[i], sizeof(ids[i]), "client-%d", i);
		F.npol = 0; /* the fake policy holds POL_MAX clients: one at a time */
		allow(ids[i], route4("10.0.0.0", "10.0.0.255", 0));
		assert_int_equal(connect_as(ids[i], &c[i], &acc), 200);
	}
	for (int i = 0; i < 16; i++)
		assert_ptr_equal(session_by_id(&T, ids[i]), c[i].data);
	assert_null(session_by_id(&T, "client-16"));
	/* closed: gone from the index, the others stay */
	session_conn_closed(&T, c[3].data, &ci);
	assert_null(session_by_id(&T, ids[3]));
	assert_ptr_equal(session_by_id(&T, ids[4]), c[4].data);
	/* replaced: the index holds the new one */
	F.npol = 0;
	allow(ids[5], route4("10.0.0.0", "10.0.0.255", 0));
	old = c[5].data;
	assert_int_equal(connect_as(ids[5], &again, &acc), 200);
	assert_ptr_equal(session_by_id(&T, ids[5]), again.data);
	session_conn_closed(&T, old, &ci);
	assert_ptr_equal(session_by_id(&T, ids[5]), again.data);
}

static void test_dns_refused_early(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_request rq = req_any("alice");

	(void)state;
	(void)snprintf(rq.dns, sizeof(rq.dns), "app.example");
	/* nothing allowed: 403 at once, no query */
	memset(&c, 0, sizeof(c));
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), 403);
	assert_null(F.deferred);
	assert_int_equal(T.cnt.dns_refused_policy, 1);
	/* no resolver: 502 */
	allow("alice", route4("192.0.2.0", "192.0.2.255", 0));
	F.defer_fail = 1;
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), 502);
	assert_null(c.data);
	assert_int_equal(T.cnt.refused_502, 1);
}

/* ------------------------------------------------------------------ */
/* close reasons                                                      */

static void test_close_tokens(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct session *s;

	(void)state;
	allow("alice", route4("10.0.0.0", "10.0.0.255", 0));
	assert_int_equal(connect_as("alice", &c, &acc), 200);
	s = c.data;
	assert_string_equal(session_close_token(&T, s, &ci), "client_closed");
	ci.app_error = SESSION_H3_NO_ERROR;
	assert_string_equal(session_close_token(&T, s, &ci), "client_closed");
	ci.app_error = 0x101;
	assert_string_equal(session_close_token(&T, s, &ci), "error");
	ci.app_error = 0;
	ci.error = ZG_ERR_MALFORMED;
	assert_string_equal(session_close_token(&T, s, &ci), "error");
	ci.idle = 1;
	assert_string_equal(session_close_token(&T, s, &ci), "idle_timeout");
	ci.idle = 0;
	ci.error = 0;
	T.shutting_down = 1;
	assert_string_equal(session_close_token(&T, s, &ci), "relay_shutdown");
	T.shutting_down = 0;
	session_revoke(&T, s, "admin", "closed by an administrator");
	assert_int_equal(s->state, SESSION_CLOSING);
	assert_string_equal(c.why, "closed by an administrator");
	assert_string_equal(session_close_token(&T, s, &ci), "admin");
	session_revoke(&T, s, "revoked", "twice");
	assert_int_equal(c.closed, 1);
	assert_string_equal(session_close_token(&T, s, &ci), "admin");
	/* its packets still find it until the close */
	assert_ptr_equal(session_by_vip(&T, &s->vip4), s);
	session_conn_closed(&T, s, &ci);
	assert_string_equal(F.close_token, "admin");
	assert_int_equal(F.releases, 1);
}

/* ------------------------------------------------------------------ */
/* connectors (issue 22)                                              */

/* A "connector:ID" certificate is a connector, admitted only when the
 * policy lists ID under connectors:, with the connector routes (the pool,
 * UDP) and never the policy's client rules, whatever scope it asked for. */
static void test_connector_admitted(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_request rq = req_any("connector:hosp-a");
	struct masque_close_info ci = clean_close();
	struct session *s;

	(void)state;
	F.known[F.nknown++] = "hosp-a";
	/* a client rule for that name changes nothing: it is no client */
	allow("connector:hosp-a", route4("10.0.0.0", "10.0.0.255", 0));
	/* whatever target it asks for (a DNS name included), it gets its own scope */
	rq.any_target = 0;
	rq.any_proto = 0;
	rq.ipproto = 6;
	(void)snprintf(rq.dns, sizeof(rq.dns), "db.example");
	memset(&c, 0, sizeof(c));
	c.open = 1;
	assert_int_equal(session_request(&T, mc(&c), &rq, ROUTES, &acc), 200);
	s = c.data;
	assert_non_null(s);
	assert_int_equal(s->state, SESSION_OPEN);
	assert_true(s->connector);
	assert_string_equal(s->conn_id, "hosp-a");
	assert_ptr_equal(s->conn_id, s->id + strlen("connector:"));
	assert_true(s->any_target && s->any_proto);
	assert_null(F.deferred); /* no name resolved for it */
	assert_int_equal(acc.nroutes, 1);
	assert_int_equal(acc.routes[0].proto, 17);
	assert_int_equal(acc.routes[0].start[0], 100); /* the pool, not 10.0.0.0/24 */
	assert_int_equal(F.opens, 1);
	assert_ptr_equal(session_by_id(&T, "connector:hosp-a"), s);
	/* the same connector again replaces it, as a client's session */
	{
		struct fake_conn c2;

		assert_int_equal(connect_as("connector:hosp-a", &c2, &acc), 200);
		assert_int_equal(s->state, SESSION_REPLACED);
		assert_true(((struct session *)c2.data)->connector);
		session_conn_closed(&T, s, &ci);
		session_conn_closed(&T, c2.data, &ci);
	}
	assert_int_equal(T.n, 0);
}

/* An ID the policy does not list is refused 403 with a Proxy-Status,
 * answered outside the request callback; no address is taken. */
static void test_connector_unknown_refused(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();

	(void)state;
	F.known[F.nknown++] = "hosp-a";
	assert_int_equal(connect_as("connector:hosp-b", &c, &acc), MASQUE_PENDING);
	assert_non_null(F.deferred);
	assert_int_equal(F.deferred_need, 0); /* no resolver needed */
	assert_true(F.deferred->connector);
	assert_string_equal(F.limit, "connector_not_listed");
	assert_int_equal(T.cnt.refused_403, 1);
	assert_int_equal(session_deferred(&T, F.deferred), 0);
	assert_int_equal(c.answered, 403);
	assert_non_null(strstr(c.ps, "connector ID not listed in the relay policy"));
	assert_null(c.data);
	assert_int_equal(F.allocs, 0);
	assert_int_equal(F.opens, 0);
	assert_int_equal(T.n, 0);
	/* the connection closed before the answer: freed, nothing answered */
	F.deferred = NULL;
	assert_int_equal(connect_as("connector:hosp-b", &c, &acc), MASQUE_PENDING);
	session_conn_closed(&T, c.data, &ci);
	assert_int_equal(session_deferred(&T, F.deferred), 0);
	assert_int_equal(c.answered, 0);
	/* no scheduler: refused at once */
	F.defer_fail = 1;
	assert_int_equal(connect_as("connector:hosp-b", &c, &acc), 403);
	assert_int_equal(T.cnt.refused_403, 3);
	/* an ID that is no valid connector ID is no listed one either */
	F.defer_fail = 0;
	assert_int_equal(connect_as("connector:hosp a/..", &c, &acc), MASQUE_PENDING);
	assert_int_equal(session_deferred(&T, F.deferred), 0);
	assert_int_equal(c.answered, 403);
	assert_int_equal(F.allocs, 0);
}

/* The two identities do not mix: a connector certificate is never taken
 * for a client (even one the policy's clients: names), and a client
 * certificate is never a connector, whatever its name resembles. */
static void test_connector_and_client_do_not_mix(void **state)
{
	struct fake_conn c;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct session *s;

	(void)state;
	F.known[F.nknown++] = "hosp-a";
	/* "connector:x" under clients: with rules, x not under connectors: */
	allow("connector:clinic", route4("10.0.0.0", "10.0.0.255", 0));
	F.reach[F.nreach++] = "connector:clinic";
	assert_int_equal(connect_as("connector:clinic", &c, &acc), MASQUE_PENDING);
	assert_int_equal(session_deferred(&T, F.deferred), 0);
	assert_int_equal(c.answered, 403);
	assert_int_equal(F.opens, 0);

	/* a client certificate named like a listed connector ID: a client
	 * (the policy's rules, or nothing), never the connector */
	assert_int_equal(connect_as("hosp-a", &c, &acc), 403);
	assert_string_equal(F.limit, "policy_nothing_allowed");
	allow("hosp-a", route4("10.5.0.0", "10.5.0.255", 6));
	assert_int_equal(connect_as("hosp-a", &c, &acc), 200);
	s = c.data;
	assert_false(s->connector);
	assert_null(s->conn_id);
	assert_int_equal(acc.nroutes, 1);
	assert_int_equal(acc.routes[0].start[1], 5);
	session_conn_closed(&T, s, &ci);
	/* nor are near misses: an empty ID, another case */
	assert_int_equal(connect_as("connector:", &c, &acc), 403);
	assert_int_equal(connect_as("Connector:hosp-a", &c, &acc), 403);
	allow("Connector:hosp-a", route4("10.6.0.0", "10.6.0.255", 0));
	assert_int_equal(connect_as("Connector:hosp-a", &c, &acc), 200);
	assert_false(((struct session *)c.data)->connector);
	session_conn_closed(&T, c.data, &ci);
	assert_int_equal(F.opens, 2);
	assert_int_equal(T.n, 0);
}

/* A client whose only rule names a connector is admitted with no route of
 * its own; a policy change: a connector no longer listed is closed, a
 * client that reaches nothing any more is closed, a listed connector gets
 * its routes again (never the policy's). */
static void test_connector_policy_change(void **state)
{
	struct fake_conn k, a;
	struct masque_accept acc;
	struct masque_close_info ci = clean_close();
	struct session *sk, *sa;

	(void)state;
	F.known[F.nknown++] = "hosp-a";
	F.reach[F.nreach++] = "agent-1";
	assert_int_equal(connect_as("connector:hosp-a", &k, &acc), 200);
	assert_int_equal(connect_as("agent-1", &a, &acc), 200);
	assert_int_equal(acc.nroutes, 0);
	sk = k.data;
	sa = a.data;
	assert_false(sa->connector);

	/* nothing changed: routes pushed again, the connector's its own */
	allow("connector:hosp-a", route4("10.0.0.0", "10.0.0.255", 0));
	assert_int_equal(session_policy_changed(&T, ROUTES), 0);
	assert_int_equal(k.routes_pushes, 1);
	assert_int_equal(k.nroutes, 1);
	assert_int_equal(k.routes[0].start[0], 100);
	assert_int_equal(k.routes[0].proto, 17);
	assert_int_equal(a.routes_pushes, 1);
	assert_int_equal(a.nroutes, 0);

	/* hosp-a no longer listed, agent-1 loses its connector rule */
	F.nknown = 0;
	F.nreach = 0;
	assert_int_equal(session_policy_changed(&T, ROUTES), 2);
	assert_int_equal(sk->state, SESSION_CLOSING);
	assert_string_equal(k.why, "the policy no longer lists this connector");
	assert_int_equal(sa->state, SESSION_CLOSING);
	assert_string_equal(a.why, "the policy allows it nothing any more");
	assert_int_equal(T.cnt.closed_policy, 2);
	session_conn_closed(&T, sk, &ci);
	assert_string_equal(F.close_token, "policy");
	session_conn_closed(&T, sa, &ci);
	assert_int_equal(T.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_admit_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c05_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replacement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c07_policy_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c08_c09_address_request, setup6, teardown),
		cmocka_unit_test_setup_teardown(test_c09_refused_without_pool6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_c19_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_resolved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_abandoned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_refused_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_by_id_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connector_admitted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connector_unknown_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connector_and_client_do_not_mix, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_connector_policy_change, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
