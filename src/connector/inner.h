/*
 * inner.h — the connector's core: the inner CONNECT-IP sessions agents open
 * to it end to end (through the relays' outer tunnels) and the one
 * userspace stack (src/stack) that terminates their flows on host sockets
 * toward the on-prem prefixes.
 *
 * One struct inner per process (lwIP is a singleton). Each outer tunnel
 * gets its own inner masque server (inner_server_new()) on whatever
 * masque_io carries its QUIC packets: tunio.h in the binary, memnet.h in
 * the tests; no socket is opened here.
 *
 * Admission (on_request of every inner server):
 *  - the client identity (inner mTLS, client certificate CN) must not start
 *    with "connector:" or "relay:" (403): neither may act as an agent;
 *  - the client is assigned exactly the source address of its inner QUIC
 *    packets (its outer virtual address, /32 or /128): the address the
 *    stack then requires as the source of its packets;
 *  - routes = what the connector's policy lets this identity reach, cut to
 *    the served prefixes; nothing reachable is 403;
 *  - sessions are keyed by (relay link, address): two relays' address
 *    pools may overlap, so the same address through two relays is two
 *    agents, each with its session; an address held through the same
 *    relay by a session of another identity is 409; the same identity
 *    from the same address (through any relay) replaces its old session
 *    (an agent that reconnects, or moves to another relay, is not locked
 *    out until the old one times out);
 *  - more than INNER_MAX_SESSIONS sessions is 503.
 * Before admission, on each inner server (one per relay tunnel): at most
 * max_conns_per_agent inner QUIC connections at once from one agent
 * address (more are refused with CONNECTION_CLOSE), and a connection
 * whose tunnel is not open request_timeout_ms after its first packet (no
 * request, or a refused one) is closed; both counted (inner_stats) and
 * logged at most every 10 s. One agent cannot use up INNER_MAX_SESSIONS
 * with connections that never become sessions.
 * Packets from the stack go to the session holding their destination
 * address; when several relays' agents share it, to the session of the
 * flow they belong to (stack_packet_owner()). The ICMP errors and RSTs the
 * stack answers refused packets with are paced per agent as the sessions
 * are keyed, by (relay link, address) (stack_client.scope is the link):
 * an agent that uses up its allowance leaves another relay's agent at the
 * same address its own.
 * Flows: the stack's policy callback denies every destination outside the
 * served prefixes (rule "outside_prefixes"), else policy_eval(). The
 * connector host's own addresses are never reachable, as the relay's are
 * not (localaddr.h: read at start, kept current; its ops endpoint, its
 * other services, even when an address lies inside a served prefix): the
 * stack refuses them before the policy ("forbidden-destination"), and so
 * are the connector's own tunnel addresses (inner_set_tunnel_addresses()).
 * Audit lines (relay audit format, audit.h): session_open/session_close per
 * inner session, flow_allow/flow_deny/flow_close, limit_hit.
 */
#ifndef ZG_CONNECTOR_INNER_H
#define ZG_CONNECTOR_INNER_H

#include <stddef.h>
#include <stdint.h>

#include "agent/routes.h"
#include "masque/masque.h"
#include "stack/stack.h"

struct event_base;
struct audit;
struct policy;
struct inner;

#define INNER_MAX_SESSIONS 1024
#define INNER_CONNS_PER_AGENT 8                        /* max_conns_per_agent default */
#define INNER_REQUEST_TIMEOUT_MS 10000                 /* request_timeout default: the QUIC handshake timeout */
#define INNER_MAX_SERVERS 32                           /* inner servers at once: two per relay (one draining) */
#define INNER_MAX_TUNNEL_ADDRS (2 * INNER_MAX_SERVERS) /* an IPv4 and an IPv6 per tunnel */
#define INNER_TEMPLATE "https://zgate-connector/.well-known/masque/ip/{target}/{ipproto}/"

struct inner_config {
	struct event_base *base;             /* the stack's timers and sockets */
	WOLFSSL_CTX *tls;                    /* server context: connector cert, agents' CA; not owned
						inner_set_tls() replaces it */
	const struct policy *policy;         /* not owned; inner_set_policy() replaces it */
	const struct route_prefix *prefixes; /* served; copied */
	size_t nprefixes;
	struct audit *audit;               /* NULL: no audit lines; not owned */
	uint64_t (*now_ms)(void *ctx);     /* stack clock; NULL = CLOCK_MONOTONIC */
	uint64_t idle_timeout_ms;          /* inner QUIC; 0 = 30000 */
	size_t max_conns_per_agent;        /* per inner server; 0 = INNER_CONNS_PER_AGENT */
	uint64_t request_timeout_ms;       /* 0 = INNER_REQUEST_TIMEOUT_MS */
	const struct stack_prefix *exempt; /* tests: destinations on loopback */
	size_t n_exempt;
};

struct inner_stats {
	uint64_t sessions;          /* open now */
	uint64_t opened;            /* accepted since start */
	uint64_t refused_403;       /* identity or nothing reachable */
	uint64_t refused_409;       /* address held by another identity */
	uint64_t refused_503;       /* session cap */
	uint64_t replaced;          /* same identity and address came again */
	uint64_t refused_per_agent; /* connections beyond max_conns_per_agent */
	uint64_t no_request;        /* connections closed: no tunnel within request_timeout_ms */
	uint64_t bytes_up;          /* IP bytes from agents (inner on_packet) */
	uint64_t bytes_down;        /* IP bytes to agents (stack output) */
	uint64_t drop_no_sess;      /* stack output toward an address without a session */
	uint64_t drop_send;         /* masque_conn_send() refused (too big, congested) */
};

/* Creates the core and its stack. Returns 0 and *pin, ZG_ERR_INVAL (a NULL
 * base/tls/policy or no prefixes), ZG_ERR_STATE (a stack exists in this
 * process), ZG_ERR_NOMEM. */
int inner_new(const struct inner_config *cfg, struct inner **pin);

/* Closes the stack (its flows) and frees. The caller has freed its inner
 * servers first (inner_server_del()). NULL is ignored. */
void inner_del(struct inner *in);

/* Creates an inner masque server for one outer tunnel: its packets go out
 * through io/ioctx; max_udp_payload is what fits the outer tunnel
 * (>= 1200). Returns 0 and *psrv (owned by the caller: free it with
 * inner_server_del(), which also ends its sessions), ZG_ERR_LIMIT
 * (INNER_MAX_SERVERS exist), or the errors of masque_server_new(). */
int inner_server_new(struct inner *in, const struct masque_io *io, void *ioctx,
		     size_t max_udp_payload, struct masque_server **psrv);

/* Ends every session of srv (audited, their flows closed) and frees it.
 * Not from inside a masque callback of srv. NULL is ignored. */
void inner_server_del(struct inner *in, struct masque_server *srv);

/* Makes new inner sessions, on every inner server now and later, use tls
 * (a tls_server_ctx_new() context, not owned: the caller keeps it until it
 * replaces it again or frees the core; wolfSSL keeps a context alive for
 * the sessions made from it). Open sessions keep theirs: certificate
 * rotation without dropping an agent. NULL is ignored. */
void inner_set_tls(struct inner *in, WOLFSSL_CTX *tls);

/* Replaces the policy (not owned; the old one may be freed after this
 * returns): open flows are decided again, those now denied are closed. */
void inner_set_policy(struct inner *in, const struct policy *p);

/* The routes identity may reach: policy_routes() cut to the served
 * prefixes, a valid ROUTE_ADVERTISEMENT. Returns 0 with *pn, or
 * ZG_ERR_TOO_LARGE / ZG_ERR_NOMEM. */
int inner_routes(const struct inner *in, const char *identity, struct cip_route *out, size_t max,
		 size_t *pn);

/* The connector's own tunnel addresses (what the relays' pools gave its
 * outer tunnels), a[0..n), replacing those given before: never
 * destinations, as the host's own addresses are not (they matter when a
 * served prefix covers a relay's pool). Returns 0, or ZG_ERR_LIMIT when n
 * exceeds INNER_MAX_TUNNEL_ADDRS (the first are kept), ZG_ERR_INVAL for a
 * NULL a with n > 0. */
int inner_set_tunnel_addresses(struct inner *in, const struct stack_addr *a, size_t n);

void inner_get_stats(const struct inner *in, struct inner_stats *st);
struct stack *inner_stack(const struct inner *in);

#endif /* ZG_CONNECTOR_INNER_H */
