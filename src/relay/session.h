/*
 * session — the relay's tunnels: one struct session per CONNECT-IP
 * request, from admission to close. Owns the session table (by id, by
 * virtual address), admission (routes from the policy, addresses from the
 * pool, the session cap), the replacement of an older session of the same
 * client, the tunnel's scope (C03, C19), answers to ADDRESS_REQUEST (C08,
 * C09), route pushes after a policy change (C07) and the close reason of
 * the audit trail.
 *
 * It does no I/O of its own: everything outside (policy, address pool,
 * audit, the QUIC connection, the stack's flows, the clock, the DNS
 * resolver) is reached through struct session_hooks, so a test drives it
 * with fakes (tests/test_session.c). One thread; nothing here blocks.
 *
 * States (enum session_state):
 *
 *   NEW ──admit──▶ OPEN ──revoke──▶ CLOSING
 *    │               └──a newer session of the same client──▶ REPLACED
 *    ├─DNS target─▶ RESOLVING ──resolved──▶ NEW ──▶ OPEN (or refused, freed)
 *    │                 └──connection closed meanwhile──▶ ABANDONED (freed
 *    │                    by session_resolved / session_deferred)
 *    └─shared pool (ipam_alloc_async)─▶ ALLOCATING ──allocated──▶ NEW ──▶ OPEN
 *                      (or 503, freed; connection closed meanwhile: the
 *                       allocation is cancelled and s freed at once)
 *
 * A "connector:<ID>" identity is an on-prem connector (issue 22): admitted
 * only when the policy lists its ID (else 403 with a Proxy-Status), with
 * the connector_routes hook's routes instead of the policy's, no DNS-name
 * target and no DNS_ASSIGN; the caller keeps its packets off the stack.
 *
 * Only OPEN and CLOSING sessions are in the address index; OPEN, CLOSING
 * and REPLACED ones are in the table until their connection closes
 * (session_conn_closed), which frees them. CLOSING may still become
 * REPLACED (the close reason is kept).
 */
#ifndef ZG_RELAY_SESSION_H
#define ZG_RELAY_SESSION_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "connectip.h"
#include "masque/masque.h"
#include "stack.h"

#define SESSION_VIP_BUCKETS 4096 /* power of two */
#define SESSION_H3_NO_ERROR 0x100

struct masque_conn;
struct dnsgate;
struct session_table;

enum session_state {
	SESSION_NEW,        /* scope known, not admitted yet */
	SESSION_RESOLVING,  /* waiting for its DNS-name target (C03) */
	SESSION_ABANDONED,  /* its connection closed while resolving */
	SESSION_ALLOCATING, /* waiting for its address from the shared pool (20.2) */
	SESSION_OPEN,       /* admitted: holds its addresses, carries packets */
	SESSION_CLOSING,    /* the relay is closing it (revoked, policy, admin) */
	SESSION_REPLACED,   /* a newer session of its client took its addresses */
};

struct session {
	struct session_table *t; /* its table: the hooks' ctx is t->h.ctx */
	enum session_state state;
	struct masque_conn *c;
	uint64_t sid; /* the audit trail's session_id: unique per tunnel */
	char id[STACK_ID_MAX];
	char peer[INET6_ADDRSTRLEN + 8];
	char vip_s[INET6_ADDRSTRLEN]; /* the IPv4 address as text */
	struct stack_client client;
	struct stack_addr vip4, vip6;
	/* scope asked in the request (C03) */
	int any_target, any_proto;
	struct cip_addr target;
	uint8_t ipproto;
	uint64_t opened_ms;
	uint64_t bytes_up, bytes_down; /* counted by the caller */
	/* a DNS-name target (C03), NUL-terminated, on the heap while the
	 * session has one (most have none: no 256 bytes per tunnel) */
	char *dns;
	void *resolve_req; /* the caller's pending lookup, NULL when none */
	void *alloc_req;   /* the caller's pending allocation, NULL when none */
	int allocated;     /* addr4 came from the shared pool */
	uint8_t addr4[4];
	uint64_t refreshed_ms; /* the caller's: its shared lease last marked used */
	int refuse;            /* answer this status instead of resolving (16.8b) */
	uint8_t api_rechecked; /* the caller's: its last refresh was a recheck (no padding grows) */
	const char *refuse_ps;
	const char *close_reason;        /* the relay closed it: revoked, policy, admin */
	int connector;                   /* an on-prem connector ("connector:<ID>", issue 22) */
	const char *conn_id;             /* its ID: inside id, after "connector:"; else NULL */
	uint64_t zgconn_sent;            /* the caller's: hash of the last ZG_CONNECTORS sent */
	int dns_assigned;                /* DNS_ASSIGN sent (or nothing to send): 19.5 */
	int dns_wants;                   /* takes DNS_ASSIGN (sent one, or dns.enabled true) */
	uint64_t dns_sent;               /* FNV-1a of the last one sent; 0: none */
	struct session *next, *prev;     /* the table */
	struct session *vnext4, *vnext6; /* address buckets */
	struct session *inext;           /* client-id buckets */
};

/* What the module needs from outside. Every hook is required. */
struct session_hooks {
	void *ctx; /* passed to every hook */
	/* The ranges client id may reach, as policy_routes(): 0 with *pn
	 * ranges in out, ZG_ERR_TOO_LARGE when more than cap. */
	int (*policy_routes)(void *ctx, const char *id, struct cip_route *out, size_t cap,
			     size_t *pn);
	/* An address of version 4|6 for id into addr (stable per id): 0, or
	 * negative when the pool is exhausted. */
	int (*ipam_alloc)(void *ctx, const char *id, int version, uint8_t addr[16]);
	void (*ipam_release)(void *ctx, const char *id, int version);
	void (*ipam_changed)(void *ctx); /* the pool changed: persist it */
	/* The connection's client certificate (DER, *plen bytes), owned by
	 * the connection and valid while it is open; NULL when it has none. */
	const uint8_t *(*peer_cert)(void *ctx, struct masque_conn *c, size_t *plen);
	/* Attaches data to c (masque_conn_set_data). */
	void (*set_data)(void *ctx, struct masque_conn *c, struct session *s);
	int (*conn_is_open)(void *ctx, struct masque_conn *c);
	/* Closes c with HTTP/3 NO_ERROR; its close arrives later through
	 * session_conn_closed. */
	void (*close_conn)(void *ctx, struct masque_conn *c, const char *why);
	/* Answers a request left pending (MASQUE_PENDING): status, acc on 200
	 * (NULL otherwise), a Proxy-Status or NULL. */
	void (*answer)(void *ctx, struct masque_conn *c, int status,
		       const struct masque_accept *acc, const char *proxy_status);
	int (*send_routes)(void *ctx, struct masque_conn *c, const struct cip_route *r, size_t n);
	void (*close_flows)(void *ctx, const char *id); /* every flow of client id, now */
	/* Calls session_deferred(t, s) later, outside the current callback.
	 * need_resolver: the deferred step will resolve a name; return
	 * nonzero when that is impossible (no resolver) or scheduling failed. */
	int (*defer)(void *ctx, struct session *s, int need_resolver);
	/* Cancels s->resolve_req (its callback still runs, with an error). */
	void (*cancel_resolve)(void *ctx, struct session *s);
	void (*audit_limit)(void *ctx, const char *what, const char *id, uint64_t sid);
	void (*audit_open)(void *ctx, const struct session *s);
	void (*audit_close)(void *ctx, const struct session *s, uint64_t duration_ms,
			    const char *token);
	uint64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
	/* Optional (may be NULL): ranges client id reaches besides the
	 * policy's CIDRs (the DNS service's address, addresses learned from
	 * its answers), appended to out (at most cap); returns how many.
	 * has_routes: whether the policy gave the client any range. */
	size_t (*extra_routes)(void *ctx, const char *id, int has_routes, struct cip_route *out,
			       size_t cap);
	/* Optional (may be NULL): called on admission just before the 200
	 * leaves, to add what rides with it (acc->capsules: DNS_ASSIGN). */
	void (*accept_extra)(void *ctx, struct session *s, struct masque_accept *acc);
	/* Optional (NULL: ipam_alloc gives IPv4 addresses at once): the
	 * shared pool (ipam.backend api, issue 20.2). Starts finding s's IPv4
	 * address (storing its request in s->alloc_req); returns 0 when
	 * started, and the caller later calls session_allocated(t, s, ...)
	 * exactly once unless the connection closes first (then
	 * ipam_cancel(s) is called and the answer must never come); nonzero
	 * when it could not start (503). */
	int (*ipam_alloc_async)(void *ctx, struct session *s);
	void (*ipam_cancel)(void *ctx, struct session *s);
	/* Required with ipam_alloc_async: makes addr4, the shared pool's
	 * answer, client id's in the local pool (ipam_assign): 0, or negative
	 * when it cannot be (503). */
	int (*ipam_assign)(void *ctx, const char *id, const uint8_t addr4[4]);
	/* Optional (issue 22; NULL: every "connector:" identity is refused
	 * 403): 1 when the policy lists connector ID id, else 0. */
	int (*connector_known)(void *ctx, const char *id);
	/* Optional: the routes of connector session s (what it may send to:
	 * the address pool), as policy_routes. NULL: none. */
	int (*connector_routes)(void *ctx, const struct session *s, struct cip_route *out,
				size_t cap, size_t *pn);
	/* Optional: 1 when client id may reach a connector: such a client is
	 * admitted (and kept after a policy change) even with no routes. */
	int (*has_connectors)(void *ctx, const char *id);
};

struct session_counters {
	uint64_t opened, replaced;
	uint64_t refused_403, refused_429, refused_502, refused_503;
	uint64_t refused_ipam; /* of refused_503: the shared pool gave no address */
	uint64_t dns_queries, dns_refused_policy;
	uint64_t closed_policy;
};

struct session_table {
	struct session_hooks h;
	unsigned max_sessions;
	int pool6;               /* an IPv6 pool exists */
	struct dnsgate *dnsgate; /* which names, how often; NULL: any, unlimited */
	unsigned dns_per_min;    /* for the log line of a 429 */
	int shutting_down;       /* set by the caller: new requests get 503 */
	uint64_t sid_key, sid_next;
	struct session *head; /* all sessions, newest first */
	size_t n;
	struct session_counters cnt;
	struct session *vip4[SESSION_VIP_BUCKETS], *vip6[SESSION_VIP_BUCKETS];
	struct session *byid[SESSION_VIP_BUCKETS]; /* OPEN and CLOSING ones */
};

/* Initialises t (embedded by the caller) with hooks h, a random sid_key
 * for session ids, and no sessions. Cannot fail. */
void session_table_init(struct session_table *t, const struct session_hooks *h,
			unsigned max_sessions, int pool6, uint64_t sid_key);

/* Frees every session left in t (at exit; no hook is called). */
void session_table_free(struct session_table *t);

/* A CONNECT-IP request on c (on_request of masque.h). Returns the HTTP
 * status: 200 with acc filled (acc->routes points into routes, the
 * caller's array of MASQUE_MAX_ROUTES entries, which must stay valid until
 * the answer is sent), 403/502/503 when refused (nothing kept), or
 * MASQUE_PENDING when a DNS-name target must be resolved first: the answer
 * then goes through the answer hook. */
int session_request(struct session_table *t, struct masque_conn *c,
		    const struct masque_request *rq, struct cip_route *routes,
		    struct masque_accept *acc);

/* The deferred step of a RESOLVING session (the defer hook's call).
 * Returns 1 when the caller must now resolve s->dns and then call
 * session_resolved (storing its lookup in s->resolve_req), 0 when s was
 * answered or abandoned and freed here (s is invalid afterwards). */
int session_deferred(struct session_table *t, struct session *s);

/* The lookup of s ended: target is the first address (prefix_len full),
 * or NULL when the name did not resolve (err for the log). Admits or
 * refuses (502) s through the answer hook, or frees an ABANDONED s.
 * routes: as for session_request. s is invalid afterwards unless OPEN. */
void session_resolved(struct session_table *t, struct session *s,
		      const struct cip_addr *target, const char *err,
		      struct cip_route *routes);

/* The shared pool's answer for ALLOCATING s: addr4, or NULL when there is
 * none (proxy_status, "zgate-relay; error=...; details=...", goes with the
 * 503). Admits s or refuses it through the answer hook. routes: as for
 * session_request. s is invalid afterwards unless OPEN. */
void session_allocated(struct session_table *t, struct session *s, const uint8_t addr4[4],
		       const char *proxy_status, struct cip_route *routes);

/* The connection of s closed (s may be NULL: nothing to do). OPEN and
 * CLOSING sessions give their addresses back and their flows end; the
 * session_close audit gets session_close_token(); s is freed. A RESOLVING
 * s becomes ABANDONED (the pending lookup is cancelled; the resolver's
 * callback frees it). */
void session_conn_closed(struct session_table *t, struct session *s,
			 const struct masque_close_info *ci);

/* The audit trail's close reason of s: its close_reason (revoked, policy,
 * admin), replaced, idle_timeout, relay_shutdown (t->shutting_down),
 * client_closed or error. A static string. */
const char *session_close_token(const struct session_table *t, const struct session *s,
				const struct masque_close_info *ci);

/* The OPEN session holding address a, or one CLOSING (its packets still
 * flow until the close); NULL when none. O(1) on average. */
struct session *session_by_vip(const struct session_table *t, const struct stack_addr *a);

/* The OPEN or CLOSING session of client id, or NULL. O(1) on average. */
struct session *session_by_id(const struct session_table *t, const char *id);

/* 1 when flow f lies in the scope s asked for (C03/C19: target prefix and
 * protocol; ICMP always), else 0. */
int session_in_scope(const struct session *s, const struct stack_flow_info *f);

/* The routes of s: the policy's, narrowed to its scope, normalised (C07).
 * out has room for MASQUE_MAX_ROUTES. Returns 0 with *pn ranges (0 =
 * nothing allowed), or ZG_ERR_NOMEM / the policy hook's error. */
int session_routes(const struct session_table *t, const struct session *s,
		   struct cip_route *out, size_t *pn);

/* The ADDRESS_ASSIGN answering ADDRESS_REQUEST req[0..n) of s: the full
 * set s holds (C08), an entry per request with its Request ID (C09) — the
 * address s holds of that version, or the all-zero refusal — then the
 * addresses not asked for, with Request ID 0. out has room for
 * MASQUE_MAX_ADDRS. Returns 0 with *nout entries, or ZG_ERR_STATE when s is
 * NULL or not admitted yet. */
int session_address_request(const struct session *s, const struct cip_addr *req, size_t n,
			    struct cip_addr *out, size_t *nout);

/* Closes s because its right was taken away: reason is the audit token
 * ("revoked", "policy", "admin"), why the log's and the peer's text. Its
 * flows end now, the connection is closed, s becomes CLOSING. No effect
 * unless s is OPEN. */
void session_revoke(struct session_table *t, struct session *s, const char *reason,
		    const char *why);

/* After a policy change: sends every OPEN session its new routes (each
 * advertisement supersedes the previous one, C07) and revokes ("policy")
 * those allowed nothing any more. routes: scratch of MASQUE_MAX_ROUTES.
 * Returns how many were revoked. */
size_t session_policy_changed(struct session_table *t, struct cip_route *routes);

#endif
