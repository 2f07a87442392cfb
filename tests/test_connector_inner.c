/*
 * test_connector_inner.c — the connector's inner sessions, joined in memory
 * (memnet.h) to zgate masque clients: admission of an agent with its
 * address and routes, refusal of connector:/relay: identities and of an
 * agent its policy gives nothing, an address held by another identity,
 * and packets reaching the stack's policy (denied flows answered back
 * through the inner tunnel, audited with the deciding rule), the cap on
 * connections per agent address and the deadline for a tunnel.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cksum.h"
#include "connector/inner.h"
#include "masque/masque.h"
#include "masque/memnet.h"
#include "relay/audit.h"
#include "relay/localaddr.h"
#include "relay/policy.h"
#include "zg_err.h"
#include "masque_fx.h"
#include "pki.h"

#define SEC UINT64_C(1000000000)

static const char policy_text[] = "version: 1\n"
				  "clients:\n"
				  "  agent-1:\n"
				  "    rules:\n"
				  "      - id: echo-udp\n"
				  "        action: allow\n"
				  "        destinations: [\"10.20.0.5/32\"]\n"
				  "        protocols: [udp]\n"
				  "        ports: [\"7\"]\n"
				  "      - id: emr-web\n"
				  "        action: allow\n"
				  "        destinations: [\"10.20.0.0/16\", \"172.16.0.0/12\"]\n"
				  "        protocols: [tcp]\n"
				  "  agent-2:\n"
				  "    rules:\n"
				  "      - id: elsewhere\n"
				  "        action: allow\n"
				  "        destinations: [\"172.16.0.0/12\"]\n"
				  "  connector:evil:\n"
				  "    rules:\n"
				  "      - id: all\n"
				  "        action: allow\n"
				  "        destinations: [\"0.0.0.0/0\"]\n";

struct client {
	struct memnet_ep ep;
	WOLFSSL_CTX *tls;
	struct masque_config mc;
	int opened, closed, status;
	struct cip_addr addrs[MASQUE_MAX_ADDRS];
	size_t naddrs;
	struct cip_route routes[16];
	size_t nroutes, route_events;
	uint64_t pkts;
	uint8_t last[1500];
	size_t last_len;
};

struct fx {
	struct memnet net;
	struct event_base *base;
	WOLFSSL_CTX *stls;
	struct policy *pol;
	struct audit *audit;
	struct inner *in;
	struct client cl[4];
	char log[65536];
	size_t loglen;
};

static struct fx *cur;
/* inner_config of the next fx_new(): 0 = the defaults */
static size_t opt_per_agent;
static uint64_t opt_request_timeout_ms;
static int opt_loopback;  /* 127.0.0.0/8 served (and exempt): flows to a test socket */
static int opt_big_hello; /* clients' first flights take two Initials (masque_fx.h) */

static uint64_t fake_ms(void *ctx)
{
	(void)ctx;
	return cur->net.now / 1000000;
}

static ssize_t log_write(void *ctx, const void *buf, size_t len)
{
	struct fx *x = ctx;
	size_t room = sizeof(x->log) - 1 - x->loglen;

	if (len > room)
		len = room;
	memcpy(x->log + x->loglen, buf, len);
	x->loglen += len;
	x->log[x->loglen] = '\0';
	return (ssize_t)len;
}

/* client callbacks */
static void c_open(struct masque_conn *c, void *ctx)
{
	(void)c;
	((struct client *)ctx)->opened++;
}

static void c_addresses(struct masque_conn *c, const struct cip_addr *a, size_t n, void *ctx)
{
	struct client *s = ctx;

	(void)c;
	memcpy(s->addrs, a, n * sizeof(*a));
	s->naddrs = n;
}

static void c_routes(struct masque_conn *c, const struct cip_route *r, size_t n, void *ctx)
{
	struct client *s = ctx;

	(void)c;
	if (n > 16)
		n = 16;
	memcpy(s->routes, r, n * sizeof(*r));
	s->nroutes = n;
	s->route_events++;
}

static void c_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct client *s = ctx;

	(void)c;
	s->pkts++;
	s->last_len = len < sizeof(s->last) ? len : sizeof(s->last);
	memcpy(s->last, pkt, s->last_len);
}

static void c_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct client *s = ctx;

	(void)c;
	s->closed++;
	s->status = ci->status;
	s->ep.conn = NULL;
}

static const struct masque_cbs client_cbs = {
	.on_open = c_open,
	.on_addresses = c_addresses,
	.on_routes = c_routes,
	.on_packet = c_packet,
	.on_close = c_close,
};

/* Makes the connector cert (CN connector:evil: both EKUs) the test PKI
 * lacks, and a relay:r1 client cert. */
static int setup(void **state)
{
	char cmd[1024];

	if (setup_pki(state) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "cd %s && scripts_dir=$OLDPWD && "
		 "$scripts_dir/scripts/gen-certs.sh -d . --api-relay r1 >/dev/null && "
		 "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out conn.key "
		 "2>/dev/null && "
		 "openssl req -new -key conn.key -subj /CN=connector:evil -out conn.csr 2>/dev/null && "
		 "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
		 "extendedKeyUsage=clientAuth,serverAuth\\n' > conn.ext && "
		 "openssl x509 -req -in conn.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		 "-extfile conn.ext -out conn.crt 2>/dev/null",
		 pki_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct fx *fx_new(void)
{
	struct fx *x = calloc(1, sizeof(*x));
	struct inner_config ic;
	struct audit_config ac;
	struct route_prefix pfx[3];
	struct stack_prefix lo;
	char err[512];

	assert_non_null(x);
	cur = x;
	assert_int_equal(memnet_init(&x->net), 0);
	x->base = event_base_new();
	assert_non_null(x->base);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL,
					    &x->stls, err, sizeof(err)),
			 0);
	assert_int_equal(policy_load_buf("p.yaml", policy_text, strlen(policy_text), &x->pol, err,
					 sizeof(err)),
			 0);
	memset(&ac, 0, sizeof(ac));
	ac.write = log_write;
	ac.write_ctx = x;
	assert_int_equal(audit_new(&ac, &x->audit), 0);
	memset(pfx, 0, sizeof(pfx));
	assert_int_equal(routes_parse("10.20.0.0/16", &pfx[0]), 0);
	assert_int_equal(routes_parse("192.168.0.0/16", &pfx[1]), 0);
	assert_int_equal(routes_parse("127.0.0.0/8", &pfx[2]), 0);
	memset(&lo, 0, sizeof(lo));
	lo.addr.version = 4;
	lo.addr.a[0] = 127;
	lo.len = 8;
	memset(&ic, 0, sizeof(ic));
	ic.base = x->base;
	ic.tls = x->stls;
	ic.policy = x->pol;
	ic.prefixes = pfx;
	ic.nprefixes = opt_loopback ? 3 : 2;
	if (opt_loopback) {
		ic.exempt = &lo;
		ic.n_exempt = 1;
	}
	ic.audit = x->audit;
	ic.now_ms = fake_ms;
	ic.max_conns_per_agent = opt_per_agent;
	ic.request_timeout_ms = opt_request_timeout_ms;
	assert_int_equal(inner_new(&ic, &x->in), 0);
	assert_int_equal(inner_server_new(x->in, &memnet_io, &x->net.server, 1350, &x->net.srv), 0);
	return x;
}

static void fx_free(struct fx *x)
{
	for (int i = 0; i < 4; i++) {
		if (x->cl[i].ep.conn != NULL) {
			masque_conn_close(x->cl[i].ep.conn, 0, "test over");
			memnet_run(&x->net, NULL, NULL, SEC);
		}
		if (x->cl[i].tls != NULL)
			wolfSSL_CTX_free(x->cl[i].tls);
	}
	inner_server_del(x->in, x->net.srv);
	inner_del(x->in);
	audit_free(x->audit);
	policy_free(x->pol);
	wolfSSL_CTX_free(x->stls);
	event_base_free(x->base);
	assert_int_equal(memnet_free(&x->net), 0);
	free(x);
	cur = NULL;
}

static int done(void *arg)
{
	struct client *s = arg;

	return s->closed || (s->opened && s->naddrs > 0 && s->route_events > 0);
}

/* Starts client i with certificate file stem id from the outer address
 * vaddr; no_request: it never sends its CONNECT-IP request. */
static struct client *start_on(struct fx *x, struct memnet *net, int i, const char *id,
			       const char *vaddr, int no_request)
{
	struct client *s = &x->cl[i];
	char err[256], crt[64], key[64];

	memnet_client(net, (size_t)i, &s->ep);
	assert_int_equal(inet_pton(AF_INET, vaddr, &s->ep.addr.sin_addr), 1);
	snprintf(crt, sizeof(crt), "%s.crt", id);
	snprintf(key, sizeof(key), "%s.key", id);
	assert_int_equal(tls_client_ctx_new(f(crt), f(key), f("ca.crt"), &s->tls, err, sizeof(err)),
			 0);
	s->mc.tls = s->tls;
	s->mc.io = &memnet_io;
	s->mc.ioctx = &s->ep;
	s->mc.server_name = "localhost";
	s->mc.authority = "zgate-connector:443";
	s->mc.path = "/.well-known/masque/ip/*/*/";
	s->mc.test_no_request = no_request;
	s->mc.test_alpn = opt_big_hello ? fx_big_hello_alpn() : NULL;
	assert_int_equal(masque_client_new(&s->mc, &client_cbs, s, (struct sockaddr *)&s->ep.addr,
					   sizeof(s->ep.addr), (struct sockaddr *)&net->server.addr,
					   sizeof(net->server.addr), &s->ep.conn),
			 0);
	return s;
}

static struct client *start_as(struct fx *x, int i, const char *id, const char *vaddr,
			       int no_request)
{
	return start_on(x, &x->net, i, id, vaddr, no_request);
}

/* Client i with certificate file stem id, from the outer address vaddr. */
static struct client *connect_as(struct fx *x, int i, const char *id, const char *vaddr)
{
	struct client *s = start_as(x, i, id, vaddr, 0);

	assert_true(memnet_run(&x->net, done, s, 5 * SEC));
	return s;
}

/* Replaces the fixture's policy with the YAML text pol. */
static void fx_set_policy(struct fx *x, const char *pol)
{
	struct policy *p;
	char err[256];

	assert_int_equal(policy_load_buf("p2.yaml", pol, strlen(pol), &p, err, sizeof(err)), 0);
	inner_set_policy(x->in, p);
	policy_free(x->pol);
	x->pol = p;
}

static void test_admission(void **state)
{
	struct fx *x = fx_new();
	struct client *s;
	struct inner_stats st;
	uint8_t a[4];

	(void)state;
	s = connect_as(x, 0, "agent-1", "10.100.0.7");
	assert_int_equal(s->closed, 0);
	assert_int_equal(s->naddrs, 1);
	assert_int_equal(s->addrs[0].version, 4);
	assert_int_equal(s->addrs[0].prefix_len, 32);
	inet_pton(AF_INET, "10.100.0.7", a);
	assert_memory_equal(s->addrs[0].addr, a, 4);
	/* emr-web cut to the served prefixes: 10.20.0.0/16 tcp; 172.16/12 is
	 * not served, 192.168/16 is not in the policy; echo-udp is separate */
	assert_int_equal(s->nroutes, 2);
	inet_pton(AF_INET, "10.20.0.0", a);
	assert_memory_equal(s->routes[0].start, a, 4);
	inet_pton(AF_INET, "10.20.255.255", a);
	assert_memory_equal(s->routes[0].end, a, 4);
	assert_int_equal(s->routes[0].proto, 6);
	inet_pton(AF_INET, "10.20.0.5", a);
	assert_memory_equal(s->routes[1].start, a, 4);
	assert_memory_equal(s->routes[1].end, a, 4);
	assert_int_equal(s->routes[1].proto, 17);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.sessions, 1);
	assert_int_equal(st.opened, 1);
	assert_non_null(strstr(x->log, "\"event\":\"session_open\""));
	assert_non_null(strstr(x->log, "\"client\":\"agent-1\""));
	assert_non_null(strstr(x->log, "10.100.0.7"));
	/* the agent goes: the session closes and is audited */
	masque_conn_close(s->ep.conn, 0, "bye");
	memnet_run(&x->net, NULL, NULL, SEC);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.sessions, 0);
	assert_non_null(strstr(x->log, "\"event\":\"session_close\""));
	fx_free(x);
}

static void test_refused_identities(void **state)
{
	struct fx *x = fx_new();
	struct inner_stats st;

	(void)state;
	/* a connector's certificate cannot act as an agent, even though the
	 * policy lists its identity */
	assert_int_equal(connect_as(x, 0, "conn", "10.100.0.8")->status, 403);
	assert_int_equal(connect_as(x, 1, "relay-r1", "10.100.0.9")->status, 403);
	/* an agent whose policy reaches nothing served here */
	assert_int_equal(connect_as(x, 2, "agent-2", "10.100.0.10")->status, 403);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.refused_403, 3);
	assert_int_equal(st.sessions, 0);
	fx_free(x);
}

static void test_address_in_use(void **state)
{
	struct fx *x = fx_new();
	struct inner_stats st;
	struct client *s;

	(void)state;
	assert_int_equal(connect_as(x, 0, "agent-1", "10.100.0.7")->closed, 0);
	/* the same agent again from the same address replaces the old one */
	s = connect_as(x, 1, "agent-1", "10.100.0.7");
	assert_int_equal(s->closed, 0);
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(x->cl[0].closed, 1);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.sessions, 1);
	assert_int_equal(st.replaced, 1);
	fx_free(x);
}

static void test_address_other_identity(void **state)
{
	static const char pol2[] = "version: 1\nclients:\n"
				   "  agent-1:\n    rules:\n      - id: a\n        action: allow\n"
				   "        destinations: [\"10.20.0.0/16\"]\n"
				   "  agent-2:\n    rules:\n      - id: b\n        action: allow\n"
				   "        destinations: [\"10.20.1.0/24\"]\n";
	struct fx *x = fx_new();
	struct inner_stats st;

	(void)state;
	fx_set_policy(x, pol2);
	assert_int_equal(connect_as(x, 0, "agent-1", "10.100.0.7")->closed, 0);
	assert_int_equal(connect_as(x, 1, "agent-2", "10.100.0.7")->status, 409);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.refused_409, 1);
	assert_int_equal(st.sessions, 1);
	fx_free(x);
}

static char udp_mark = 'x'; /* udp4()'s payload bytes */

/* An IPv4 UDP packet src:sport -> dst:dport with a valid checksum. */
static size_t udp4(uint8_t *b, const char *src, const char *dst, uint16_t sport, uint16_t dport)
{
	size_t plen = 8, len = 20 + 8 + plen;
	uint8_t ph[12];
	uint16_t c;

	memset(b, 0, len);
	b[0] = 0x45;
	b[3] = (uint8_t)len;
	b[8] = 64;
	b[9] = 17;
	inet_pton(AF_INET, src, b + 12);
	inet_pton(AF_INET, dst, b + 16);
	c = cksum_fold(cksum_add(0, b, 20));
	b[10] = (uint8_t)(c >> 8);
	b[11] = (uint8_t)c;
	b[20] = (uint8_t)(sport >> 8);
	b[21] = (uint8_t)sport;
	b[22] = (uint8_t)(dport >> 8);
	b[23] = (uint8_t)dport;
	b[25] = (uint8_t)(8 + plen);
	memset(b + 28, udp_mark, plen);
	memcpy(ph, b + 12, 8);
	ph[8] = 0;
	ph[9] = 17;
	ph[10] = 0;
	ph[11] = (uint8_t)(8 + plen);
	c = cksum_fold(cksum_add(cksum_add(0, ph, 12), b + 20, 8 + plen));
	b[26] = (uint8_t)(c >> 8);
	b[27] = (uint8_t)c;
	return len;
}

static void test_packets_reach_policy(void **state)
{
	struct fx *x = fx_new();
	struct client *s;
	struct inner_stats st;
	uint8_t pkt[64];
	size_t len;

	(void)state;
	s = connect_as(x, 0, "agent-1", "10.100.0.7");
	assert_int_equal(s->closed, 0);
	/* served, but no rule allows UDP port 53: the policy's default */
	len = udp4(pkt, "10.100.0.7", "10.20.0.5", 40000, 53);
	assert_int_equal(masque_conn_send(s->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_non_null(strstr(x->log, "\"event\":\"flow_deny\""));
	assert_non_null(strstr(x->log, "\"rule\":\"default\""));
	assert_non_null(strstr(x->log, "\"dport\":53"));
	/* the refusal (ICMP administratively prohibited) came back through
	 * the inner tunnel to the agent's address */
	assert_true(s->pkts >= 1);
	assert_int_equal(s->last[9], 1); /* ICMP */
	assert_memory_equal(s->last + 16, pkt + 12, 4);
	/* not served at all, even if a rule named it */
	len = udp4(pkt, "10.100.0.7", "172.16.0.1", 40001, 80);
	assert_int_equal(masque_conn_send(s->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_non_null(strstr(x->log, "\"rule\":\"outside_prefixes\""));
	/* allowed by echo-udp: the stack takes the flow */
	len = udp4(pkt, "10.100.0.7", "10.20.0.5", 40002, 7);
	assert_int_equal(masque_conn_send(s->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_non_null(strstr(x->log, "\"event\":\"flow_allow\""));
	assert_non_null(strstr(x->log, "\"rule\":\"echo-udp\""));
	/* a spoofed source never becomes a flow */
	len = udp4(pkt, "10.100.0.99", "10.20.0.5", 40003, 7);
	assert_int_equal(masque_conn_send(s->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_null(strstr(x->log, "40003"));
	inner_get_stats(x->in, &st);
	assert_true(st.bytes_up >= 4 * 36);
	assert_true(st.bytes_down > 0);
	fx_free(x);
}

static void test_replies_find_their_session(void **state)
{
	/* Two agents (two addresses in one bucket table): each refusal comes
	 * back to the agent whose packet caused it, also after the other one
	 * was replaced, so the table links and unlinks right. */
	static const char pol2[] = "version: 1\nclients:\n"
				   "  agent-1:\n    rules:\n      - id: a\n        action: allow\n"
				   "        destinations: [\"10.20.0.0/16\"]\n        protocols: [tcp]\n"
				   "  agent-2:\n    rules:\n      - id: b\n        action: allow\n"
				   "        destinations: [\"10.20.0.0/16\"]\n        protocols: [tcp]\n";
	struct fx *x = fx_new();
	struct client *a, *b;
	uint8_t pkt[64];
	size_t len;

	(void)state;
	fx_set_policy(x, pol2);
	a = connect_as(x, 0, "agent-1", "10.100.0.7");
	b = connect_as(x, 1, "agent-2", "10.100.0.8");
	assert_int_equal(a->closed + b->closed, 0);
	len = udp4(pkt, "10.100.0.8", "10.20.0.5", 40000, 53);
	assert_int_equal(masque_conn_send(b->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(a->pkts, 0);
	assert_int_equal(b->pkts, 1);
	assert_memory_equal(b->last + 16, pkt + 12, 4); /* to 10.100.0.8 */
	/* agent-1 reconnects: its old session goes, the new one takes the
	 * address; agent-2's entry must survive the unlink */
	a = connect_as(x, 2, "agent-1", "10.100.0.7");
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(x->cl[0].closed, 1);
	len = udp4(pkt, "10.100.0.7", "10.20.0.5", 40001, 53);
	assert_int_equal(masque_conn_send(a->ep.conn, pkt, len), 0);
	len = udp4(pkt, "10.100.0.8", "10.20.0.5", 40002, 53);
	assert_int_equal(masque_conn_send(b->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(a->pkts, 1);
	assert_memory_equal(a->last + 16, "\x0a\x64\x00\x07", 4);
	assert_int_equal(b->pkts, 2);
	assert_int_equal(x->cl[0].pkts, 0);
	fx_free(x);
}

/* Issue 22: a TLS reload gives new inner sessions the new server context
 * (here a client CA the agents' certificates do not chain to, then the
 * right one again); the session already open keeps its own and carries
 * packets on. */
/* One agent address holds at most max_conns_per_agent inner connections
 * at once, sessions or not: connections that never ask for a tunnel
 * cannot lock other agents out (the server's connection cap). */
static void conns_per_agent(void)
{
	struct fx *x;
	struct client *s;
	struct inner_stats st;

	opt_per_agent = 2;
	opt_request_timeout_ms = 60000;
	x = fx_new();
	(void)start_as(x, 0, "agent-1", "10.100.0.7", 1);
	(void)start_as(x, 1, "agent-1", "10.100.0.7", 1);
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(masque_server_conns(x->net.srv), 2);
	assert_int_equal(x->cl[0].closed + x->cl[1].closed, 0);
	/* a third from the same address is refused, even one that asks */
	s = connect_as(x, 2, "agent-1", "10.100.0.7");
	assert_int_equal(s->closed, 1);
	assert_int_equal(s->opened, 0);
	assert_int_equal(masque_server_conns(x->net.srv), 2);
	/* another address is not affected */
	s = connect_as(x, 3, "agent-1", "10.100.0.8");
	assert_int_equal(s->closed, 0);
	assert_int_equal(s->naddrs, 1);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.refused_per_agent, 1);
	assert_int_equal(st.sessions, 1);
	/* one of the first two goes: its address may connect again */
	masque_conn_close(x->cl[0].ep.conn, 0, "bye");
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(x->cl[0].closed, 1);
	wolfSSL_CTX_free(x->cl[0].tls);
	memset(&x->cl[0], 0, sizeof(x->cl[0]));
	s = connect_as(x, 0, "agent-1", "10.100.0.7");
	assert_int_equal(s->closed, 0);
	assert_int_equal(s->naddrs, 1);
	fx_free(x);
	opt_per_agent = 0;
	opt_request_timeout_ms = 0;
}

static void test_conns_per_agent(void **state)
{
	(void)state;
	conns_per_agent();
}

/* The same with first flights of two Initials: the third connection is
 * refused, and counted, once. */
static void test_conns_per_agent_two_initials(void **state)
{
	(void)state;
	opt_big_hello = 1;
	conns_per_agent();
	opt_big_hello = 0;
}

/* A connection whose tunnel is not open request_timeout after it started
 * (no request, or a refused one) is closed by the connector. */
static void test_request_deadline(void **state)
{
	struct fx *x;
	struct client *s;
	struct inner_stats st;

	(void)state;
	opt_request_timeout_ms = 2000;
	x = fx_new();
	s = start_as(x, 0, "agent-1", "10.100.0.7", 1);
	memnet_run(&x->net, NULL, NULL, SEC);
	assert_int_equal(masque_server_conns(x->net.srv), 1);
	assert_int_equal(s->closed, 0);
	memnet_run(&x->net, NULL, NULL, 2 * SEC);
	assert_int_equal(s->closed, 1);
	assert_int_equal(masque_server_conns(x->net.srv), 0);
	/* a refused request (agent-2 reaches nothing served) is no tunnel either */
	s = connect_as(x, 1, "agent-2", "10.100.0.9");
	memnet_run(&x->net, NULL, NULL, 3 * SEC);
	assert_int_equal(masque_server_conns(x->net.srv), 0);
	/* an open session stays */
	s = connect_as(x, 2, "agent-1", "10.100.0.8");
	memnet_run(&x->net, NULL, NULL, 3 * SEC);
	assert_int_equal(s->closed, 0);
	assert_int_equal(masque_server_conns(x->net.srv), 1);
	inner_get_stats(x->in, &st);
	assert_true(st.no_request >= 1);
	assert_int_equal(st.sessions, 1);
	fx_free(x);
	opt_request_timeout_ms = 0;
}

/* The connector host's own addresses are never destinations, as the
 * relay's are not: its ops endpoint and other services stay out of
 * agents' reach even inside a served prefix. */
static void test_own_addresses_forbidden(void **state)
{
	struct fx *x;
	struct ifaddrs *ifa = NULL;
	struct stack_addr own[16], other;
	size_t n;

	(void)state;
	assert_int_equal(getifaddrs(&ifa), 0);
	n = localaddr_collect(ifa, own, 16, NULL);
	freeifaddrs(ifa);
	if (n == 0)
		skip(); /* no address but loopback, which is never reachable anyway */
	x = fx_new();
	for (size_t i = 0; i < n; i++)
		assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &own[i]), 1);
	memset(&other, 0, sizeof(other));
	other.version = 4;
	assert_int_equal(inet_pton(AF_INET, "10.20.0.5", other.a), 1);
	assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &other), 0);
	fx_free(x);
}

/* The connector's own tunnel addresses are never destinations either,
 * even inside a served prefix (a relay's pool inside it), and the host's
 * addresses stay forbidden beside them; a new set replaces the old. */
static void test_tunnel_addresses_forbidden(void **state)
{
	struct fx *x;
	struct ifaddrs *ifa = NULL;
	struct stack_addr own[16], tun[INNER_MAX_TUNNEL_ADDRS + 1], lan;
	struct client *s;
	uint8_t pkt[64];
	size_t n, len;

	(void)state;
	assert_int_equal(getifaddrs(&ifa), 0);
	n = localaddr_collect(ifa, own, 16, NULL);
	freeifaddrs(ifa);
	x = fx_new();
	memset(tun, 0, sizeof(tun));
	tun[0].version = 4;
	assert_int_equal(inet_pton(AF_INET, "10.20.0.9", tun[0].a), 1); /* served */
	tun[1].version = 6;
	assert_int_equal(inet_pton(AF_INET6, "fd00:100::9", tun[1].a), 1);
	lan = tun[0];
	lan.a[3] = 5;
	assert_int_equal(inner_set_tunnel_addresses(x->in, tun, 2), 0);
	assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &tun[0]), 1);
	assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &tun[1]), 1);
	assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &lan), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &own[i]), 1);
	/* an agent's flow to it is refused before the policy is asked */
	s = connect_as(x, 0, "agent-1", "10.100.0.7");
	len = udp4(pkt, "10.100.0.7", "10.20.0.9", 40000, 7);
	assert_int_equal(masque_conn_send(s->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_non_null(strstr(x->log, "\"dst\":\"10.20.0.9\""));
	assert_non_null(strstr(x->log, "\"reason\":\"forbidden-destination\""));
	assert_true(s->pkts >= 1); /* answered: administratively prohibited */
	/* the tunnel closed: its address is an ordinary one again */
	assert_int_equal(inner_set_tunnel_addresses(x->in, NULL, 0), 0);
	assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &tun[0]), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &own[i]), 1);
	/* bounded: more than INNER_MAX_TUNNEL_ADDRS is refused, the first kept */
	for (size_t i = 2; i < INNER_MAX_TUNNEL_ADDRS + 1; i++) {
		tun[i] = tun[0];
		tun[i].a[2] = (uint8_t)(1 + i / 256);
		tun[i].a[3] = (uint8_t)i;
	}
	assert_int_equal(inner_set_tunnel_addresses(x->in, tun, INNER_MAX_TUNNEL_ADDRS + 1),
			 ZG_ERR_LIMIT);
	assert_int_equal(stack_dst_forbidden(inner_stack(x->in), &tun[0]), 1);
	assert_int_equal(inner_set_tunnel_addresses(x->in, NULL, 1), ZG_ERR_INVAL);
	fx_free(x);
}

/* Two relays whose address pools overlap: the same tunnel address through
 * each is another agent. Both get a session (not 409), and what the stack
 * sends to that address goes to the agent whose packet or flow it answers. */
static void test_overlapping_pools(void **state)
{
	static const char pol2[] = "version: 1\nclients:\n"
				   "  agent-1:\n    rules:\n      - id: a\n        action: allow\n"
				   "        destinations: [\"10.20.0.0/16\"]\n        protocols: [tcp]\n"
				   "      - id: lo\n        action: allow\n"
				   "        destinations: [\"127.0.0.0/8\"]\n        protocols: [udp]\n"
				   "  agent-2:\n    rules:\n      - id: b\n        action: allow\n"
				   "        destinations: [\"10.20.0.0/16\"]\n        protocols: [tcp]\n"
				   "      - id: lo\n        action: allow\n"
				   "        destinations: [\"127.0.0.0/8\"]\n        protocols: [udp]\n";
	struct memnet *n2 = calloc(1, sizeof(*n2));
	struct fx *x;
	struct client *a, *b;
	struct inner_stats st;
	struct sockaddr_in sin, from;
	socklen_t sl = sizeof(sin);
	uint8_t pkt[64], buf[64];
	size_t len;
	int fd, got = 0;

	(void)state;
	assert_non_null(n2);
	opt_loopback = 1;
	x = fx_new();
	opt_loopback = 0;
	fx_set_policy(x, pol2);
	assert_int_equal(memnet_init(n2), 0);
	assert_int_equal(inner_server_new(x->in, &memnet_io, &n2->server, 1350, &n2->srv), 0);
	/* agent-1 through relay 1, agent-2 through relay 2: one address */
	a = connect_as(x, 0, "agent-1", "10.100.0.7");
	b = start_on(x, n2, 1, "agent-2", "10.100.0.7", 0);
	assert_true(memnet_run(n2, done, b, 5 * SEC));
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(a->closed, 0);
	assert_int_equal(b->closed, 0);
	assert_int_equal(b->naddrs, 1);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.sessions, 2);
	assert_int_equal(st.refused_409, 0);
	/* refusals go back to the agent whose packet caused them */
	len = udp4(pkt, "10.100.0.7", "10.20.0.5", 40000, 53);
	assert_int_equal(masque_conn_send(b->ep.conn, pkt, len), 0);
	memnet_run(n2, NULL, NULL, SEC / 10);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(a->pkts, 0);
	assert_int_equal(b->pkts, 1);
	assert_int_equal(b->last[9], 1); /* ICMP */
	len = udp4(pkt, "10.100.0.7", "10.20.0.5", 40001, 53);
	assert_int_equal(masque_conn_send(a->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	memnet_run(n2, NULL, NULL, SEC / 10);
	assert_int_equal(a->pkts, 1);
	assert_int_equal(b->pkts, 1);
	/* a flow's answers go back to the agent that started it */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	udp_mark = 'A';
	len = udp4(pkt, "10.100.0.7", "127.0.0.1", 41000, ntohs(sin.sin_port));
	assert_int_equal(masque_conn_send(a->ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	udp_mark = 'B';
	len = udp4(pkt, "10.100.0.7", "127.0.0.1", 41001, ntohs(sin.sin_port));
	assert_int_equal(masque_conn_send(b->ep.conn, pkt, len), 0);
	memnet_run(n2, NULL, NULL, SEC / 10);
	udp_mark = 'x';
	for (int k = 0; k < 100 && got < 2; k++) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ssize_t r;

		(void)event_base_loop(x->base, EVLOOP_NONBLOCK);
		if (poll(&pf, 1, 10) != 1)
			continue;
		sl = sizeof(from);
		r = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &sl);
		assert_true(r == 8);
		assert_int_equal(sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, sl), r);
		got++;
	}
	assert_int_equal(got, 2);
	for (int k = 0; k < 100 && (a->pkts < 2 || b->pkts < 2); k++) {
		(void)event_base_loop(x->base, EVLOOP_NONBLOCK);
		memnet_run(&x->net, NULL, NULL, SEC / 100);
		memnet_run(n2, NULL, NULL, SEC / 100);
		usleep(1000);
	}
	close(fd);
	assert_int_equal(a->pkts, 2);
	assert_int_equal(b->pkts, 2);
	assert_int_equal(a->last[28], 'A');
	assert_int_equal(b->last[28], 'B');
	/* agent-2's relay goes: its session with it; agent-1's stays */
	masque_conn_close(b->ep.conn, 0, "bye");
	memnet_run(n2, NULL, NULL, SEC);
	inner_server_del(x->in, n2->srv);
	assert_int_equal(memnet_free(n2), 0);
	free(n2);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.sessions, 1);
	wolfSSL_CTX_free(x->cl[1].tls);
	memset(&x->cl[1], 0, sizeof(x->cl[1]));
	fx_free(x);
}

static int ratelimited(void *arg)
{
	struct stack_counters c;

	stack_get_counters(inner_stack(((struct fx *)arg)->in), &c);
	return c.errors_ratelimited > 0;
}

static int got_one(void *arg)
{
	return ((struct client *)arg)->pkts > 0;
}

/* Two agents at one address through two relays are two agents for the
 * ICMP errors and RSTs the connector's stack sends too: one that used up
 * its allowance leaves the other's whole (the allowance is keyed by relay
 * link and address, as the sessions are). The stack's clock is the first
 * relay's network's: it stands still while the second one runs, so no
 * token comes back in between. */
static void test_error_budget_per_link(void **state)
{
	static const char pol2[] = "version: 1\nclients:\n"
				   "  agent-1:\n    rules:\n      - id: a\n        action: allow\n"
				   "        destinations: [\"10.20.0.0/16\"]\n        protocols: [tcp]\n"
				   "  agent-2:\n    rules:\n      - id: b\n        action: allow\n"
				   "        destinations: [\"10.20.0.0/16\"]\n        protocols: [tcp]\n";
	struct memnet *n2 = calloc(1, sizeof(*n2));
	struct fx *x;
	struct client *a, *b;
	struct stack_counters c;
	uint8_t pkt[64];
	size_t len;

	(void)state;
	assert_non_null(n2);
	x = fx_new();
	fx_set_policy(x, pol2);
	assert_int_equal(memnet_init(n2), 0);
	assert_int_equal(inner_server_new(x->in, &memnet_io, &n2->server, 1350, &n2->srv), 0);
	a = connect_as(x, 0, "agent-1", "10.100.0.7");
	b = start_on(x, n2, 1, "agent-2", "10.100.0.7", 0);
	assert_true(memnet_run(n2, done, b, 5 * SEC));
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_int_equal(a->closed + b->closed, 0);
	/* agent-1 through relay 1: denied flows until its allowance is gone */
	for (uint16_t i = 0; i < 40; i++) {
		len = udp4(pkt, "10.100.0.7", "10.20.0.5", (uint16_t)(40000 + i), 53);
		assert_int_equal(masque_conn_send(a->ep.conn, pkt, len), 0);
	}
	assert_true(memnet_run(&x->net, ratelimited, x, SEC / 10));
	/* the agent at the same address through relay 2 still gets its answer */
	len = udp4(pkt, "10.100.0.7", "10.20.0.5", 41000, 53);
	assert_int_equal(masque_conn_send(b->ep.conn, pkt, len), 0);
	assert_true(memnet_run(n2, got_one, b, SEC / 10));
	assert_int_equal(b->last[9], 1); /* ICMP */
	/* agent-1 got the answers of its allowance only */
	memnet_run(&x->net, NULL, NULL, SEC / 100);
	assert_true(a->pkts >= 1 && a->pkts < 40);
	stack_get_counters(inner_stack(x->in), &c);
	assert_true(c.errors_ratelimited >= 1);
	masque_conn_close(b->ep.conn, 0, "bye");
	memnet_run(n2, NULL, NULL, SEC);
	inner_server_del(x->in, n2->srv);
	assert_int_equal(memnet_free(n2), 0);
	free(n2);
	wolfSSL_CTX_free(x->cl[1].tls);
	memset(&x->cl[1], 0, sizeof(x->cl[1]));
	fx_free(x);
}

static void test_set_tls_new_sessions_only(void **state)
{
	struct fx *x = fx_new();
	struct client *s;
	struct inner_stats st;
	WOLFSSL_CTX *other = NULL, *again = NULL;
	uint8_t pkt[64];
	size_t len;
	uint64_t before;
	char err[512];

	(void)state;
	s = connect_as(x, 0, "agent-1", "10.100.0.7");
	assert_int_equal(s->closed, 0);
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("other-ca.crt"), NULL,
					    &other, err, sizeof(err)),
			 0);
	inner_set_tls(x->in, other);
	inner_set_tls(x->in, NULL); /* ignored */
	/* a new session is verified against the new client CA: refused */
	s = connect_as(x, 1, "agent-1", "10.100.0.8");
	assert_int_equal(s->opened, 0);
	assert_int_equal(s->closed, 1);
	assert_non_null(strstr(x->log, "\"event\":\"cert_rejected\""));
	assert_non_null(strstr(x->log, "unknown_ca"));
	/* the open one goes on: a flow through it is decided and answered */
	before = x->cl[0].pkts;
	len = udp4(pkt, "10.100.0.7", "10.20.0.5", 40000, 53);
	assert_int_equal(masque_conn_send(x->cl[0].ep.conn, pkt, len), 0);
	memnet_run(&x->net, NULL, NULL, SEC / 10);
	assert_true(x->cl[0].pkts > before);
	assert_int_equal(x->cl[0].closed, 0);
	/* the right CA again: new sessions are admitted */
	assert_int_equal(tls_server_ctx_new(f("relay.crt"), f("relay.key"), f("ca.crt"), NULL,
					    &again, err, sizeof(err)),
			 0);
	inner_set_tls(x->in, again);
	s = connect_as(x, 2, "agent-1", "10.100.0.9");
	assert_int_equal(s->closed, 0);
	assert_int_equal(s->naddrs, 1);
	inner_get_stats(x->in, &st);
	assert_int_equal(st.sessions, 2);
	fx_free(x);
	wolfSSL_CTX_free(other);
	wolfSSL_CTX_free(again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admission),
		cmocka_unit_test(test_refused_identities),
		cmocka_unit_test(test_address_in_use),
		cmocka_unit_test(test_address_other_identity),
		cmocka_unit_test(test_packets_reach_policy),
		cmocka_unit_test(test_replies_find_their_session),
		cmocka_unit_test(test_set_tls_new_sessions_only),
		cmocka_unit_test(test_conns_per_agent),
		cmocka_unit_test(test_conns_per_agent_two_initials),
		cmocka_unit_test(test_request_deadline),
		cmocka_unit_test(test_own_addresses_forbidden),
		cmocka_unit_test(test_tunnel_addresses_forbidden),
		cmocka_unit_test(test_overlapping_pools),
		cmocka_unit_test(test_error_budget_per_link),
	};

	return cmocka_run_group_tests(tests, setup, teardown_pki);
}
