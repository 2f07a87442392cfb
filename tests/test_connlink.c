/* Unit tests for src/relay/connlink: the agent <-> connector forwarding
 * path with fake sessions, policy, audit and clock (no I/O). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "relay/connlink.h"
#include "zg_err.h"

struct sent {
	void *sess;
	uint8_t pkt[256];
	size_t len;
};

static struct fake {
	uint64_t now;
	struct sent sent[16];
	size_t nsent;
	int send_fails;
	int deny_all;     /* may_reach denies everything */
	int bound_narrow; /* the bound is 10.20.0.0/24 instead of /16 */
	char opens[8][160], closes[8][200];
	size_t nopens, ncloses;
	size_t nrejected;
	char rejected[200];
	size_t nnotes;
	char note[200];
} F;

static int agent_a, agent_b, conn_x, conn_y; /* their addresses are the session handles */

static int f_send(void *ctx, void *sess, const uint8_t *pkt, size_t len)
{
	(void)ctx;
	if (F.send_fails)
		return ZG_ERR_LIMIT;
	assert_true(F.nsent < 16 && len <= sizeof(F.sent[0].pkt));
	F.sent[F.nsent].sess = sess;
	memcpy(F.sent[F.nsent].pkt, pkt, len);
	F.sent[F.nsent++].len = len;
	return 0;
}

static enum policy_action f_may_reach(void *ctx, const char *client, const char *connector,
				      const char **prule)
{
	(void)ctx;
	*prule = "emr";
	if (F.deny_all || strcmp(client, "agent-1") != 0 || strcmp(connector, "hospital-a") != 0) {
		*prule = "default";
		return POLICY_DENY;
	}
	return POLICY_ALLOW;
}

static void route(struct cip_route *r, const char *lo, const char *hi)
{
	memset(r, 0, sizeof(*r));
	if (inet_pton(AF_INET, lo, r->start) == 1) {
		r->version = 4;
		assert_int_equal(inet_pton(AF_INET, hi, r->end), 1);
	} else {
		r->version = 6;
		assert_int_equal(inet_pton(AF_INET6, lo, r->start), 1);
		assert_int_equal(inet_pton(AF_INET6, hi, r->end), 1);
	}
}

static int f_bound(void *ctx, const char *connector, struct cip_route *out, size_t max,
		   size_t *pn)
{
	(void)ctx;
	(void)max;
	if (strcmp(connector, "hospital-a") != 0)
		return ZG_ERR_NOTFOUND;
	route(&out[0], "10.20.0.0", F.bound_narrow ? "10.20.0.255" : "10.20.255.255");
	route(&out[1], "fd20::", "fd20:0:0:ffff:ffff:ffff:ffff:ffff");
	*pn = 2;
	return 0;
}

static void f_rejected(void *ctx, const char *connector, const struct cip_route *r,
		       const char *why)
{
	char a[INET6_ADDRSTRLEN];

	(void)ctx;
	inet_ntop(r->version == 4 ? AF_INET : AF_INET6, r->start, a, sizeof(a));
	(void)snprintf(F.rejected, sizeof(F.rejected), "%s %s %s", connector, a, why);
	F.nrejected++;
}

static void f_audit_open(void *ctx, const struct connlink_info *li)
{
	(void)ctx;
	assert_true(F.nopens < 8);
	(void)snprintf(F.opens[F.nopens++], sizeof(F.opens[0]), "%s %s %llx %llx %s", li->client,
		       li->connector, (unsigned long long)li->client_sid,
		       (unsigned long long)li->connector_sid, li->rule);
}

static void f_audit_close(void *ctx, const struct connlink_info *li, const char *reason)
{
	(void)ctx;
	assert_true(F.ncloses < 8);
	(void)snprintf(F.closes[F.ncloses++], sizeof(F.closes[0]), "%s %s %s up=%llu down=%llu ms=%llu",
		       li->client, li->connector, reason, (unsigned long long)li->bytes_up,
		       (unsigned long long)li->bytes_down, (unsigned long long)li->duration_ms);
}

static uint64_t f_now(void *ctx)
{
	(void)ctx;
	return F.now;
}

/* A remote connector's packet: recorded as sent to its session handle. */
static int f_send_remote(void *ctx, const struct connlink_connector *c, const uint8_t *pkt,
			 size_t len)
{
	(void)ctx;
	if (F.send_fails)
		return ZG_ERR_LIMIT;
	assert_true(F.nsent < 16 && len <= sizeof(F.sent[0].pkt));
	assert_true(c->remote != 0);
	F.sent[F.nsent].sess = c->sess;
	memcpy(F.sent[F.nsent].pkt, pkt, len);
	F.sent[F.nsent++].len = len;
	return 0;
}

static void f_flow_note(void *ctx, const struct connlink_flow *fl, int evicted, uint64_t n)
{
	char a[INET6_ADDRSTRLEN], c[INET6_ADDRSTRLEN];

	(void)ctx;
	inet_ntop(fl->agent.version == 4 ? AF_INET : AF_INET6, fl->agent.a, a, sizeof(a));
	inet_ntop(fl->conn.version == 4 ? AF_INET : AF_INET6, fl->conn.a, c, sizeof(c));
	(void)snprintf(F.note, sizeof(F.note), "%s %s:%u %s %s:%u %s %llu", fl->client, a,
		       fl->agent_port, fl->connector, c, fl->conn_port,
		       evicted ? "evicted" : "unsolicited", (unsigned long long)n);
	F.nnotes++;
}

static const struct connlink_hooks hooks = { NULL, f_send, f_may_reach, f_bound,
					     f_rejected, f_audit_open, f_audit_close, f_now,
					     f_send_remote, f_flow_note };

static struct stack_addr a4(const char *s)
{
	struct stack_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, s, a.a) == 1) {
		a.version = 4;
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, a.a), 1);
		a.version = 6;
	}
	return a;
}

static struct connlink_end agent1 = { &agent_a, "agent-1", 0xa1, { 0 }, { 0 }, 0 };
static struct connlink_end agent2 = { &agent_b, "agent-2", 0xa2, { 0 }, { 0 }, 0 };
static struct connlink_end connx = { &conn_x, "hospital-a", 0xc1, { 0 }, { 0 }, 0 };
static struct connlink_end conny = { &conn_y, "hospital-b", 0xc2, { 0 }, { 0 }, 0 };

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* An IPv4 (or IPv6) UDP packet with 20 bytes of payload. */
static size_t udp(uint8_t *p, const char *src, uint16_t sport, const char *dst, uint16_t dport,
		  uint8_t ttl, uint8_t proto)
{
	struct stack_addr s = a4(src), d = a4(dst);
	size_t hl = s.version == 4 ? 20 : 40, len = hl + 8 + 20;

	memset(p, 0, len);
	if (s.version == 4) {
		p[0] = 0x45;
		p[2] = (uint8_t)(len >> 8);
		p[3] = (uint8_t)len;
		p[8] = ttl;
		p[9] = proto;
		memcpy(p + 12, s.a, 4);
		memcpy(p + 16, d.a, 4);
		uint16_t c = csum(p, 20);
		p[10] = (uint8_t)(c >> 8);
		p[11] = (uint8_t)c;
	} else {
		p[0] = 0x60;
		p[4] = (uint8_t)((len - 40) >> 8);
		p[5] = (uint8_t)(len - 40);
		p[6] = proto;
		p[7] = ttl;
		memcpy(p + 8, s.a, 16);
		memcpy(p + 24, d.a, 16);
	}
	p[hl] = (uint8_t)(sport >> 8);
	p[hl + 1] = (uint8_t)sport;
	p[hl + 2] = (uint8_t)(dport >> 8);
	p[hl + 3] = (uint8_t)dport;
	memset(p + hl + 8, 0x5a, 20);
	return len;
}

/* Every test starts with a fresh module (*state) where hospital-a and
 * hospital-b are up on the inner port, and empty fakes. */
static int setup(void **state)
{
	struct connlink *cl = NULL;

	memset(&F, 0, sizeof(F));
	F.now = 1000000;
	agent1.vip4 = a4("100.64.0.2");
	agent1.vip6 = a4("fd00::2");
	agent2.vip4 = a4("100.64.0.3");
	connx.vip4 = a4("100.64.0.9");
	connx.vip6 = a4("fd00::9");
	conny.vip4 = a4("100.64.0.10");
	assert_int_equal(connlink_new(&hooks, 0, &cl), 0);
	assert_int_equal(connlink_connector_up(cl, &connx, CONNLINK_INNER_PORT), 0);
	assert_int_equal(connlink_connector_up(cl, &conny, CONNLINK_INNER_PORT), 0);
	*state = cl;
	return 0;
}

static int teardown(void **state)
{
	connlink_free(*state, NULL); /* NULL: a test freed it itself */
	return 0;
}

/* agent-1's inner packet to hospital-a (100.64.0.2:50000
 * -> 100.64.0.9:443), and hospital-a's answer to it. */
static size_t to_conn(uint8_t *p)
{
	return udp(p, "100.64.0.2", 50000, "100.64.0.9", 443, 64, 17);
}

static size_t to_agent(uint8_t *p)
{
	return udp(p, "100.64.0.9", 443, "100.64.0.2", 50000, 64, 17);
}

/* agent-1 -> hospital-a (to_conn into p), forwarded: opens their link
 * if there is none. Returns the packet's length. */
static size_t link_agent1(struct connlink *cl, uint8_t *p)
{
	size_t n = to_conn(p);

	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	return n;
}

static uint64_t drops(const struct connlink *cl, enum connlink_drop d)
{
	struct connlink_counters c;

	connlink_get_counters(cl, &c);
	return c.drops[d];
}

static void test_allowed_both_ways(void **state)
{
	struct connlink *cl = *state;
	struct connlink_counters c;
	uint8_t p[128];
	size_t n;

	n = link_agent1(cl, p);
	assert_int_equal(F.nsent, 1);
	assert_ptr_equal(F.sent[0].sess, &conn_x);
	assert_int_equal(F.sent[0].len, n);
	assert_int_equal(F.sent[0].pkt[8], 63);                  /* TTL one less */
	assert_int_equal(csum(F.sent[0].pkt, 20), 0);            /* header checksum still right */
	assert_memory_equal(F.sent[0].pkt + 12, p + 12, n - 12); /* the rest untouched */
	assert_int_equal(F.nopens, 1);
	assert_string_equal(F.opens[0], "agent-1 hospital-a a1 c1 emr");
	assert_int_equal(connlink_links(cl), 1);

	/* the answer comes back to the agent */
	n = to_agent(p);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	assert_int_equal(F.nsent, 2);
	assert_ptr_equal(F.sent[1].sess, &agent_a);
	assert_int_equal(F.sent[1].pkt[8], 63);
	assert_int_equal(csum(F.sent[1].pkt, 20), 0);

	/* IPv6: a second link, hop limit decremented */
	n = udp(p, "fd00::2", 50001, "fd00::9", 443, 2, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	assert_int_equal(F.sent[2].pkt[7], 1);
	assert_int_equal(connlink_links(cl), 2);

	connlink_get_counters(cl, &c);
	assert_int_equal(c.packets[CONNLINK_UP], 2);
	assert_int_equal(c.packets[CONNLINK_DOWN], 1);
	assert_int_equal(c.bytes[CONNLINK_UP], 48 + 68);
	assert_int_equal(c.bytes[CONNLINK_DOWN], 48);

	/* not for a connector: the caller's path */
	n = udp(p, "100.64.0.2", 50000, "198.51.100.1", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_PASS);
	connlink_free(cl, "relay_shutdown");
	*state = NULL;
	assert_int_equal(F.ncloses, 2);
	assert_non_null(strstr(F.closes[0], "relay_shutdown") ? F.closes[0] : F.closes[1]);
}

static void test_refused_by_policy_port_protocol(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	/* agent-2 has no connector rule */
	n = udp(p, "100.64.0.3", 50000, "100.64.0.9", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent2, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_POLICY), 1);
	/* agent-1 may not reach hospital-b */
	n = udp(p, "100.64.0.2", 50000, "100.64.0.10", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_POLICY), 2);
	/* wrong port */
	n = udp(p, "100.64.0.2", 50000, "100.64.0.9", 22, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_PORT), 1);
	/* TCP to the connector's address */
	n = udp(p, "100.64.0.2", 50000, "100.64.0.9", 443, 64, 6);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_PROTOCOL), 1);
	/* a length that does not match */
	n = to_conn(p);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n - 1), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_MALFORMED), 1);
	assert_int_equal(F.nsent, 0);
	assert_int_equal(F.nopens, 0);
	assert_int_equal(connlink_links(cl), 0);
	/* a send that fails is counted */
	F.send_fails = 1;
	n = to_conn(p);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_SEND), 1);
}

static void test_spoofed_source(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	/* agent-1 claims agent-2's address */
	n = udp(p, "100.64.0.3", 50000, "100.64.0.9", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_SPOOFED), 1);
	/* the connector claims another address, then another port */
	n = udp(p, "100.64.0.10", 443, "100.64.0.2", 50000, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_SPOOFED), 2);
	n = udp(p, "100.64.0.9", 444, "100.64.0.2", 50000, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_PORT), 1);
	assert_int_equal(F.nsent, 0);
}

static void test_connector_to_agent_without_link(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	n = to_agent(p);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_NO_LINK), 1);
	/* a link to hospital-a is not one to hospital-b */
	n = link_agent1(cl, p);
	n = udp(p, "100.64.0.10", 443, "100.64.0.2", 50000, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_y, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_NO_LINK), 2);
	/* nor to another agent */
	n = udp(p, "100.64.0.9", 443, "100.64.0.3", 50000, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_NO_LINK), 3);
	/* a session that is no connector */
	assert_int_equal(connlink_from_connector(cl, &agent_b, p, n), CONNLINK_DROPPED);
	assert_int_equal(F.nsent, 1);
}

static void test_idle_expiry(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	n = link_agent1(cl, p);
	F.now += 100000;
	n = to_agent(p);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	F.now += CONNLINK_IDLE_MS - 1; /* a packet 100 s in kept it alive */
	assert_int_equal(connlink_expire(cl), 0);
	F.now += 1;
	assert_int_equal(connlink_expire(cl), 1);
	assert_int_equal(connlink_links(cl), 0);
	assert_int_equal(F.ncloses, 1);
	assert_string_equal(F.closes[0],
			    "agent-1 hospital-a idle_timeout up=48 down=48 ms=220000");
	/* the connector cannot answer any more */
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_NO_LINK), 1);
}

/* A connector reaches only the agent ports that sent to it: agent-1's
 * port 50000 opened a flow, its port 7777 did not (until it sends). */
static void test_unsolicited_port(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	(void)link_agent1(cl, p);
	n = to_agent(p);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	n = udp(p, "100.64.0.9", 443, "100.64.0.2", 7777, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_UNSOLICITED), 1);
	assert_int_equal(drops(cl, CONNLINK_DROP_NO_LINK), 0);
	assert_int_equal(F.nnotes, 1);
	assert_string_equal(F.note,
			    "agent-1 100.64.0.2:7777 hospital-a 100.64.0.9:443 unsolicited 1");
	assert_int_equal(F.nsent, 2);
	/* a port of the agent's is not opened by another agent's address,
	 * nor by another protocol's packet to the connector */
	n = udp(p, "100.64.0.2", 7777, "100.64.0.9", 443, 64, 6);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	n = udp(p, "100.64.0.9", 443, "100.64.0.2", 7777, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_UNSOLICITED), 2);
	/* once port 7777 sent to the connector, its answer passes */
	n = udp(p, "100.64.0.2", 7777, "100.64.0.9", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	n = udp(p, "100.64.0.9", 443, "100.64.0.2", 7777, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	assert_ptr_equal(F.sent[F.nsent - 1].sess, &agent_a);
	/* the agent's IPv6 address has its own link, and no flow yet */
	n = udp(p, "fd00::2", 50000, "fd00::9", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	n = udp(p, "fd00::9", 443, "fd00::2", 50001, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_UNSOLICITED), 3);
	n = udp(p, "fd00::9", 443, "fd00::2", 50000, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	assert_int_equal(drops(cl, CONNLINK_DROP_NO_LINK), 0);
	/* reported at most once every CONNLINK_NOTE_MS per connector, with
	 * the count since the last report */
	assert_int_equal(F.nnotes, 1);
	F.now += CONNLINK_NOTE_MS - 1;
	n = udp(p, "100.64.0.9", 443, "100.64.0.2", 7778, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(F.nnotes, 1);
	F.now += 1;
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(F.nnotes, 2);
	assert_string_equal(F.note,
			    "agent-1 100.64.0.2:7778 hospital-a 100.64.0.9:443 unsolicited 4");
	assert_int_equal(drops(cl, CONNLINK_DROP_UNSOLICITED), 5);
}

/* A flow ends CONNLINK_FLOW_IDLE_MS after the agent's last packet on it,
 * whatever the connector sends; the agent's next packet opens it again. */
static void test_flow_idle(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128], q[128];
	size_t n, m;

	n = link_agent1(cl, p);
	m = to_agent(q);
	F.now += CONNLINK_FLOW_IDLE_MS - 1;
	assert_int_equal(connlink_from_connector(cl, &conn_x, q, m), CONNLINK_FORWARDED);
	F.now += 1; /* the connector's packet did not refresh it */
	assert_int_equal(connlink_from_connector(cl, &conn_x, q, m), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_UNSOLICITED), 1);
	assert_int_equal(connlink_links(cl), 1); /* the link itself is still there */
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	F.now += CONNLINK_FLOW_IDLE_MS - 1;
	assert_int_equal(connlink_from_connector(cl, &conn_x, q, m), CONNLINK_FORWARDED);
	assert_int_equal(drops(cl, CONNLINK_DROP_UNSOLICITED), 1);
}

/* A link remembers CONNLINK_FLOWS_PER_LINK flows: a new one past that
 * takes the place of the least recently used, counted and reported. */
static void test_flow_table_bounded(void **state)
{
	struct connlink *cl = *state;
	struct connlink_counters c;
	uint8_t p[128];
	size_t n;

	for (unsigned i = 0; i < CONNLINK_FLOWS_PER_LINK; i++) {
		F.now += 10;
		n = udp(p, "100.64.0.2", (uint16_t)(60000 + i), "100.64.0.9", 443, 64, 17);
		assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	}
	/* port 60000 used again: 60001 is now the least recently used */
	F.now += 10;
	n = udp(p, "100.64.0.2", 60000, "100.64.0.9", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	connlink_get_counters(cl, &c);
	assert_int_equal(c.flows_evicted, 0);
	assert_int_equal(F.nnotes, 0);
	F.now += 10;
	n = udp(p, "100.64.0.2", 61000, "100.64.0.9", 443, 64, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	connlink_get_counters(cl, &c);
	assert_int_equal(c.flows_evicted, 1);
	assert_int_equal(F.nnotes, 1);
	assert_string_equal(F.note, "agent-1 100.64.0.2:60001 hospital-a 100.64.0.9:443 evicted 1");
	n = udp(p, "100.64.0.9", 443, "100.64.0.2", 60001, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_UNSOLICITED), 1);
	F.nsent = 0;
	for (unsigned port = 60000; port < 60000 + CONNLINK_FLOWS_PER_LINK; port++) {
		if (port == 60001)
			continue;
		n = udp(p, "100.64.0.9", 443, "100.64.0.2", (uint16_t)port, 64, 17);
		assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	}
	n = udp(p, "100.64.0.9", 443, "100.64.0.2", 61000, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	/* an expired flow's place is taken without evicting a live one */
	F.now += CONNLINK_FLOW_IDLE_MS;
	F.nsent = 0;
	for (unsigned i = 0; i < CONNLINK_FLOWS_PER_LINK; i++) {
		n = udp(p, "100.64.0.2", (uint16_t)(62000 + i), "100.64.0.9", 443, 64, 17);
		assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	}
	connlink_get_counters(cl, &c);
	assert_int_equal(c.flows_evicted, 1);
}

static void test_session_close_closes_links(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	n = link_agent1(cl, p);
	assert_int_equal(connlink_session_closed(cl, &agent_b), 0); /* no link: nothing */
	assert_int_equal(F.ncloses, 0);
	assert_int_equal(connlink_session_closed(cl, &agent_a), 0);
	assert_int_equal(F.ncloses, 1);
	assert_non_null(strstr(F.closes[0], "client_closed up=48 down=0"));

	/* the connector's end closes its links and takes it down */
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	assert_int_equal(connlink_session_closed(cl, &conn_x), 1);
	assert_int_equal(F.ncloses, 2);
	assert_non_null(strstr(F.closes[1], "connector_closed"));
	assert_null(connlink_find(cl, "hospital-a"));
	assert_int_equal(connlink_connectors_up(cl), 1);
	/* its address is no connector's now: the caller's path */
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_PASS);

	/* a connector of the same ID coming back replaces the one up */
	assert_int_equal(connlink_connector_up(cl, &connx, 443), 0);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	struct connlink_end again = connx;
	int other;
	again.sess = &other;
	assert_int_equal(connlink_connector_up(cl, &again, 443), 0);
	assert_int_equal(F.ncloses, 3);
	assert_non_null(strstr(F.closes[2], "replaced"));
	assert_int_equal(connlink_connectors_up(cl), 2);
	assert_ptr_equal(connlink_find(cl, "hospital-a")->sess, &other);
	/* the old session's close is no connector's close any more */
	assert_int_equal(connlink_session_closed(cl, &conn_x), 0);
}

static void test_policy_reload_removes_access(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	n = link_agent1(cl, p);
	assert_int_equal(connlink_policy_changed(cl), 0); /* still allowed */
	assert_int_equal(connlink_links(cl), 1);
	F.deny_all = 1;
	assert_int_equal(connlink_policy_changed(cl), 1);
	assert_int_equal(connlink_links(cl), 0);
	assert_non_null(strstr(F.closes[0], "agent-1 hospital-a policy"));
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_POLICY), 1);
	n = to_agent(p);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(F.nsent, 1);
}

static void test_ttl_one_dropped(void **state)
{
	struct connlink *cl = *state;
	uint8_t p[128];
	size_t n;

	n = udp(p, "100.64.0.2", 50000, "100.64.0.9", 443, 1, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_TTL), 1);
	assert_int_equal(F.nopens, 0); /* no link for a packet that never left */
	n = udp(p, "fd00::2", 50000, "fd00::9", 443, 1, 17);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	n = link_agent1(cl, p);
	n = udp(p, "100.64.0.9", 443, "100.64.0.2", 50000, 1, 17);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_TTL), 3);
	assert_int_equal(F.nsent, 1);
}

static void test_replaced_agent_session(void **state)
{
	struct connlink *cl = *state;
	struct connlink_end newer = agent1;
	int other;
	uint8_t p[128];
	size_t n;

	newer.sess = &other;
	newer.sid = 0xa9;
	n = link_agent1(cl, p);
	assert_int_equal(connlink_from_agent(cl, &newer, p, n), CONNLINK_FORWARDED);
	assert_int_equal(F.ncloses, 1);
	assert_non_null(strstr(F.closes[0], "replaced"));
	assert_string_equal(F.opens[1], "agent-1 hospital-a a9 c1 emr");
	n = to_agent(p);
	assert_int_equal(connlink_from_connector(cl, &conn_x, p, n), CONNLINK_FORWARDED);
	assert_ptr_equal(F.sent[2].sess, &other);
}

static void test_announce_within_bound(void **state)
{
	struct connlink *cl = *state;
	const struct connlink_connector *c;
	struct cip_route r[4];
	char a[INET6_ADDRSTRLEN];

	route(&r[0], "10.20.1.0", "10.20.1.255");
	route(&r[1], "10.30.0.0", "10.30.0.255"); /* outside the bound */
	route(&r[2], "fd20::", "fd20::ffff");
	route(&r[3], "10.20.2.0", "10.20.4.255"); /* not one prefix: two */
	assert_int_equal(connlink_announce(cl, &conn_x, r, 4), 1);
	assert_int_equal(F.nrejected, 1);
	assert_string_equal(F.rejected,
			    "hospital-a 10.30.0.0 outside the prefixes the policy lets it serve");
	c = connlink_find(cl, "hospital-a");
	assert_non_null(c);
	assert_int_equal(c->nprefixes, 4);
	inet_ntop(AF_INET, c->prefixes[0].a, a, sizeof(a));
	assert_string_equal(a, "10.20.1.0");
	assert_int_equal(c->prefixes[0].len, 24);
	assert_int_equal(c->prefixes[1].version, 6);
	assert_int_equal(c->prefixes[1].len, 112);
	inet_ntop(AF_INET, c->prefixes[2].a, a, sizeof(a));
	assert_string_equal(a, "10.20.2.0");
	assert_int_equal(c->prefixes[2].len, 23);
	inet_ntop(AF_INET, c->prefixes[3].a, a, sizeof(a));
	assert_string_equal(a, "10.20.4.0");
	assert_int_equal(c->prefixes[3].len, 24);
	/* the same again: no change */
	assert_int_equal(connlink_announce(cl, &conn_x, r, 4), 0);
	/* a narrower bound after a policy change keeps only what fits */
	F.bound_narrow = 1;
	F.nrejected = 0;
	(void)connlink_policy_changed(cl);
	assert_int_equal(c->nprefixes, 1);
	assert_int_equal(c->prefixes[0].version, 6);
	assert_int_equal(F.nrejected, 3);
	/* a connector the policy gives no bound keeps nothing */
	route(&r[0], "10.20.1.0", "10.20.1.255");
	assert_int_equal(connlink_announce(cl, &conn_y, r, 1), 0);
	assert_int_equal(connlink_find(cl, "hospital-b")->nprefixes, 0);
	assert_int_equal(connlink_announce(cl, &agent_a, r, 1), ZG_ERR_NOTFOUND);
}

static void test_identity(void **state)
{
	const char *id = NULL;

	(void)state;
	assert_true(zgconn_identity("connector:hospital-a", &id));
	assert_string_equal(id, "hospital-a");
	assert_false(zgconn_identity("connector:", &id));
	assert_false(zgconn_identity("agent-1", &id));
	assert_false(zgconn_identity("Connector:x", &id));
	assert_string_equal(connlink_drop_name(CONNLINK_DROP_NO_LINK), "no_link");
	assert_string_equal(connlink_drop_name(CONNLINK_DROP_UNSOLICITED), "unsolicited");
	assert_string_equal(connlink_drop_name(CONNLINK_NDROP), "unknown");
}

/* Workers: hospital-a's session is on worker 2 (remote 3); here it is a
 * remote end. agent-1's link opens, is audited and checked here; packets
 * up go through send_remote with the TTL one less; its packets down (the
 * owner hands them over) reach agent-1 through the link here. */
static void test_remote_connector(void **state)
{
	struct connlink *cl = *state;
	static int rx; /* the remote end's handle */
	struct connlink_end e = connx;
	const struct connlink_connector *cc;
	struct cip_route r[2];
	uint8_t p[128];
	size_t n;

	e.sess = &rx;
	e.sid = 0xc9;
	e.remote = 3;
	assert_int_equal(connlink_connectors_up(cl), 2);
	assert_int_equal(connlink_connector_up(cl, &e, CONNLINK_INNER_PORT), 0);
	/* it replaced the local session of the same ID: counted on its worker */
	assert_int_equal(connlink_connectors_up(cl), 1);
	cc = connlink_find(cl, "hospital-a");
	assert_non_null(cc);
	assert_ptr_equal(cc->sess, &rx);
	assert_int_equal(cc->remote, 3);
	assert_null(connlink_find_local_sid(cl, 0xc9)); /* not a session here */
	assert_non_null(connlink_find_local_sid(cl, 0xc2));
	/* its announce is filtered by the bound here too; the warnings are
	 * its worker's */
	route(&r[0], "10.20.1.0", "10.20.1.255");
	route(&r[1], "192.168.0.0", "192.168.0.255");
	assert_int_equal(connlink_announce(cl, &rx, r, 2), 1);
	assert_int_equal(cc->nprefixes, 1);
	assert_int_equal(F.nrejected, 0);

	n = to_conn(p);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_FORWARDED);
	assert_int_equal(F.nsent, 1);
	assert_ptr_equal(F.sent[0].sess, &rx);
	assert_int_equal(F.sent[0].pkt[8], 63);
	assert_int_equal(F.nopens, 1);
	assert_string_equal(F.opens[0], "agent-1 hospital-a a1 c9 emr");
	n = to_agent(p);
	assert_int_equal(connlink_from_connector(cl, &rx, p, n), CONNLINK_FORWARDED);
	assert_ptr_equal(F.sent[1].sess, &agent_a);
	/* a spoofed source from the remote end is dropped here */
	n = udp(p, "100.64.0.10", 443, "100.64.0.2", 50000, 64, 17);
	assert_int_equal(connlink_from_connector(cl, &rx, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_SPOOFED), 1);
	/* the owner's channel full: dropped, counted */
	F.send_fails = 1;
	n = to_conn(p);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_SEND), 1);
	F.send_fails = 0;
	/* the owner says it is down: its link closes here */
	assert_int_equal(connlink_session_closed(cl, &rx), 1);
	assert_int_equal(F.ncloses, 1);
	assert_non_null(strstr(F.closes[0], "connector_closed"));
	assert_null(connlink_find(cl, "hospital-a"));
}

/* Without a send_remote hook a remote connector's packets are dropped. */
static void test_remote_without_hook(void **state)
{
	struct connlink *cl = NULL;
	struct connlink_hooks h = hooks;
	struct connlink_end e = connx;
	uint8_t p[128];
	size_t n;

	(void)state;
	h.send_remote = NULL;
	e.remote = 1;
	assert_int_equal(connlink_new(&h, 0, &cl), 0);
	assert_int_equal(connlink_connector_up(cl, &e, CONNLINK_INNER_PORT), 0);
	n = to_conn(p);
	assert_int_equal(connlink_from_agent(cl, &agent1, p, n), CONNLINK_DROPPED);
	assert_int_equal(drops(cl, CONNLINK_DROP_SEND), 1);
	assert_int_equal(F.nsent, 0);
	connlink_free(cl, NULL);
}

/* A connector's state, as workers tell each other: round trip, and every
 * cut or bad field refused. */
static void test_state_codec(void **state)
{
	struct connlink *cl = *state;
	struct connlink_state st, back;
	struct cip_route r[2];
	uint8_t buf[CONNLINK_STATE_MAX], *end;
	const uint8_t *q;

	route(&r[0], "10.20.1.0", "10.20.1.255");
	route(&r[1], "fd20::", "fd20::ff");
	r[1].proto = 17;
	assert_int_equal(connlink_announce(cl, &conn_x, r, 2), 1);
	assert_int_equal(connlink_state_of(cl, &agent_a, &st), ZG_ERR_NOTFOUND);
	assert_int_equal(connlink_state_of(cl, &conn_x, &st), 0);
	assert_string_equal(st.id, "hospital-a");
	assert_true(st.sid == 0xc1);
	assert_int_equal(st.nroutes, 2);
	end = connlink_state_encode(&st, buf, buf + sizeof(buf));
	assert_non_null(end);
	q = buf;
	assert_int_equal(connlink_state_decode(&q, end, &back), 0);
	assert_ptr_equal(q, end);
	assert_memory_equal(&back, &st, sizeof(st));
	/* every shorter prefix is refused */
	for (const uint8_t *cut = buf; cut < end; cut++) {
		q = buf;
		assert_int_equal(connlink_state_decode(&q, cut, &back), ZG_ERR_MALFORMED);
	}
	assert_null(connlink_state_encode(&st, buf, end - 1));
	/* bad fields */
	{
		uint8_t bad[CONNLINK_STATE_MAX];
		size_t len = (size_t)(end - buf), vip4 = 1 + 10 + 8;

		memcpy(bad, buf, len);
		bad[0] = 0; /* an empty ID */
		q = bad;
		assert_int_equal(connlink_state_decode(&q, bad + len, &back), ZG_ERR_MALFORMED);
		memcpy(bad, buf, len);
		bad[3] = 0; /* a NUL inside the ID */
		q = bad;
		assert_int_equal(connlink_state_decode(&q, bad + len, &back), ZG_ERR_MALFORMED);
		memcpy(bad, buf, len);
		bad[vip4] = 6; /* the IPv4 address says IPv6 */
		q = bad;
		assert_int_equal(connlink_state_decode(&q, bad + len, &back), ZG_ERR_MALFORMED);
		memcpy(bad, buf, len);
		bad[vip4 + 34 + 2] = CONNLINK_MAX_ANNOUNCED + 1; /* too many routes */
		q = bad;
		assert_int_equal(connlink_state_decode(&q, bad + len, &back), ZG_ERR_MALFORMED);
		memcpy(bad, buf, len);
		bad[vip4 + 34 + 3] = 5; /* a route of no IP version */
		q = bad;
		assert_int_equal(connlink_state_decode(&q, bad + len, &back), ZG_ERR_MALFORMED);
	}
	memset(&back, 0, sizeof(back));
	assert_null(connlink_state_encode(&back, buf, buf + sizeof(buf))); /* no ID */
}

static void test_packet_dst(void **state)
{
	struct stack_addr d;
	uint8_t p[128];
	size_t n;

	(void)state;
	n = to_agent(p);
	assert_int_equal(connlink_packet_dst(p, n, &d), 0);
	assert_true(stack_addr_eq(&d, &agent1.vip4));
	n = udp(p, "fd00::9", 443, "fd00::2", 50000, 64, 17);
	assert_int_equal(connlink_packet_dst(p, n, &d), 0);
	assert_true(stack_addr_eq(&d, &agent1.vip6));
	assert_int_equal(connlink_packet_dst(p, 39, &d), ZG_ERR_MALFORMED);
	assert_int_equal(connlink_packet_dst(p, 0, &d), ZG_ERR_MALFORMED);
	p[0] = 0x50;
	assert_int_equal(connlink_packet_dst(p, n, &d), ZG_ERR_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allowed_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_by_policy_port_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spoofed_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connector_to_agent_without_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsolicited_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_table_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_close_closes_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_reload_removes_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_one_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_agent_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_announce_within_bound, setup, teardown),
		cmocka_unit_test(test_identity),
		cmocka_unit_test_setup_teardown(test_remote_connector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_without_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_codec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_packet_dst, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
