/*
 * stack.h — the relay's userspace TCP/IP stack (lwIP) with the ingress ACL.
 *
 * IP packets from client tunnels go in through stack_input(); every flow they
 * start is checked (source address, never-reachable destinations, policy)
 * and, when allowed, terminated as an ordinary non-blocking host socket: TCP
 * through lwIP, UDP and ICMP echo by the stack itself. Packets toward clients
 * leave through the output callback, addressed by the client's virtual IP;
 * the owner maps that address to its session.
 *
 * lwIP keeps its state in globals, so one process holds at most one stack at
 * a time (stack_new() returns ZG_ERR_STATE for a second one). Everything runs
 * on the event_base given to stack_new(); no function is thread-safe, and
 * callbacks must not call back into the stack (stack_input() from inside
 * output, say): queue instead.
 */
#ifndef ZG_STACK_H
#define ZG_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "histo.h"

struct event_base;
struct stack;

/* An IPv4 or IPv6 address. version is 4 (address in a[0..3]) or 6; 0 means
 * "no address". Compare with stack_addr_eq(), not memcmp: bytes past the
 * address are unspecified. */
struct stack_addr {
	uint8_t version;
	uint8_t a[16];
};

struct stack_prefix {
	struct stack_addr addr;
	uint8_t len; /* prefix length in bits */
};

#define STACK_PROTO_ICMP 1
#define STACK_PROTO_TCP 6
#define STACK_PROTO_UDP 17
#define STACK_PROTO_ICMPV6 58

/* The audit trail's name of an IP protocol: "tcp", "udp", "icmp",
 * "icmpv6", else "other". Never NULL. */
const char *stack_proto_name(uint8_t proto);

/* The tunnel a packet came from. Borrowed for the duration of one call. */
struct stack_client {
	const char *id;         /* client ID (certificate CN), NUL-terminated */
	struct stack_addr vip4; /* assigned IPv4 address, or version 0 */
	struct stack_addr vip6; /* assigned IPv6 address, or version 0 */
	/* Where the owner's clients may share an address (the connector: two
	 * relays' pools may overlap), what tells them apart (the connector's
	 * relay link); 0 where an address is one client (the relay). The ICMP
	 * errors and RSTs the stack sends are paced per (scope, address). */
	uint64_t scope;
};

/* Maximum client ID and rule ID lengths kept per flow (longer ones are
 * truncated in audit events, never rejected). */
#define STACK_ID_MAX 64

/* A flow as the client sees it. For ICMP echo sport is the echo identifier
 * and dport is 0. */
struct stack_flow_info {
	const char *client_id;
	void *session; /* as given to stack_input() */
	struct stack_addr src, dst;
	uint8_t proto;
	uint16_t sport, dport;
};

enum stack_verdict {
	STACK_DENY = 0,
	STACK_ALLOW = 1
};

enum stack_event_type {
	STACK_EV_ALLOW = 1, /* a flow was admitted by policy */
	STACK_EV_DENY,      /* policy or a never-reachable destination refused it */
	STACK_EV_CLOSE,     /* an admitted flow ended */
	STACK_EV_LIMIT      /* a limit refused a new flow (rate-limited) */
};

struct stack_event {
	enum stack_event_type type;
	struct stack_flow_info flow;
	const char *rule_id;  /* "" when no rule decided */
	const char *reason;   /* short token, e.g. "policy", "refused", "idle" */
	uint64_t bytes_up;    /* client -> destination, payload bytes */
	uint64_t bytes_down;  /* destination -> client */
	uint64_t duration_ms; /* CLOSE only */
};

struct stack_callbacks {
	/* Required. One IP packet toward the client whose virtual address is
	 * dst. pkt is valid only during the call. */
	void (*output)(void *ctx, const struct stack_addr *dst,
		       const uint8_t *pkt, size_t len);
	/* Required. Decides a new flow. *prule_id may be set to a string that
	 * stays valid during the call (copied, truncated to STACK_ID_MAX-1). */
	enum stack_verdict (*policy)(void *ctx,
				     const struct stack_flow_info *flow,
				     const char **prule_id);
	/* Optional. Flow events for the audit log; ev is valid during the call. */
	void (*audit)(void *ctx, const struct stack_event *ev);
	/* Optional. Milliseconds from any fixed origin; NULL = CLOCK_MONOTONIC.
	 * Drives lwIP's timers and every idle timeout. */
	uint64_t (*now_ms)(void *ctx);
};

/* Limits and timeouts. Fill with stack_config_defaults(), then adjust. */
struct stack_config {
	uint16_t mtu; /* inner (tunnel) MTU, >= 1280 */
	/* Extra never-reachable prefixes: the virtual pool and configured
	 * ones (the relay's own addresses: stack_set_local_addresses()).
	 * Copied by stack_new(); at most STACK_MAX_PREFIXES. */
	const struct stack_prefix *forbidden;
	size_t n_forbidden;
	/* Prefixes exempt from the never-reachable set (loopback, link-local,
	 * multicast, ...): only for destinations a rule names explicitly, and
	 * for tests on loopback. At most STACK_MAX_PREFIXES. */
	const struct stack_prefix *exempt;
	size_t n_exempt;
	uint32_t max_flows;               /* all protocols, all clients */
	uint32_t max_flows_per_client;    /* all protocols */
	uint32_t max_halfopen_per_client; /* TCP not yet established */
	uint32_t max_udp_per_client;
	uint32_t tcp_idle_ms;
	/* both sides closed, bytes still on their way: the flow ends (RST)
	 * after this long without any of them delivered */
	uint32_t tcp_close_ms;
	uint32_t udp_idle_ms;
	uint32_t dns_idle_ms; /* UDP to port 53 */
	uint32_t icmp_idle_ms;
	uint32_t connect_timeout_ms;   /* upstream TCP connect */
	uint32_t handshake_timeout_ms; /* client's ACK after our SYN-ACK */
	/* ICMP errors and RSTs we generate: per client (by tunnel address
	 * and stack_client.scope) and, under that, for all clients together;
	 * 0 rate = unlimited */
	uint32_t icmp_errors_per_s; /* all clients */
	uint32_t icmp_errors_burst;
	uint32_t icmp_errors_per_client_per_s;
	uint32_t icmp_errors_per_client_burst;
	/* STACK_EV_LIMIT events: per client ID, and for all clients */
	uint32_t audit_limits_per_s;            /* all clients (burst = rate) */
	uint32_t audit_limits_per_client_per_s; /* burst = rate */
	/* Global memory cap: bytes of lwIP heap (segments, pbufs, pcbs). New
	 * TCP flows are refused above it; from 3/4 of it on, every TCP window
	 * shrinks to STACK_WND_MIN. 0 = no cap. */
	uint64_t max_lwip_bytes;
	/* Per-client memory budget: the sum of the windows (bytes a flow may
	 * hold in each direction) of one client's TCP flows. A new flow gets
	 * what is left, at least STACK_WND_MIN; beyond it, windows shrink
	 * toward an equal share. 0 = no budget. */
	uint64_t max_client_bytes;
	/* Descriptors: of RLIMIT_NOFILE (read by stack_new()), fd_reserve stay
	 * for everything but flows (0 = an eighth, 64 to 1024), and one client
	 * holds at most fd_client_pct percent of the rest. New flows past
	 * either are refused (RST / admin-prohibited) and audited. */
	uint32_t fd_reserve;
	uint32_t fd_client_pct;
	/* TCP connections lwIP keeps in TIME_WAIT (2 * TCP_MSL, 20 s) after
	 * the relay closed first. Checked at each new connection's SYN: when
	 * more than this are held, the oldest go until max - max / 8 are
	 * left, counted in tw_evicted; connections that close between two
	 * SYNs may take the count past it until the next one. The TIME_WAIT
	 * pcbs are indexed (pcbhash.c), so this bounds memory, not time per
	 * SYN: a struct tcp_pcb each (288 bytes with our lwipopts.h on x86-64,
	 * 296 as malloc hands it out, counted against max_lwip_bytes) and at
	 * most 8 bytes of index; lwIP's slow timer still walks them every
	 * 500 ms. A SYN newer than its tuple's TIME_WAIT reopens it whatever
	 * the count. At least 1. */
	uint32_t max_time_wait;
};

#define STACK_MAX_PREFIXES 32
/* The least window a TCP flow keeps under memory pressure. */
#define STACK_WND_MIN (8u * 1024)
#define STACK_MAX_LOCAL 64 /* stack_set_local_addresses() */

struct stack_counters {
	uint64_t pkts_in, pkts_out, bytes_in, bytes_out;
	/* pure ACKs toward clients not sent: a later segment of the same
	 * connection in the same loop turn acknowledged as much (ackq.c) */
	uint64_t acks_merged;
	uint64_t drop_malformed;   /* not a valid IPv4/IPv6 packet, bad checksum */
	uint64_t drop_spoofed;     /* C18: source is not the tunnel's address */
	uint64_t drop_forbidden;   /* never-reachable destination */
	uint64_t drop_denied;      /* policy said no */
	uint64_t drop_fragment;    /* fragments are not reassembled */
	uint64_t drop_unsupported; /* protocol or ICMP type not relayed */
	uint64_t drop_limit;       /* a limit refused a new flow */
	uint64_t drop_halfopen;    /* SYNs over the half-open limit, dropped
				    * silently (the client's retry decides) */
	uint64_t drop_no_flow;     /* UDP/ICMP reply path without a flow, etc. */
	uint64_t drop_too_big;     /* a reply larger than the tunnel MTU */
	uint64_t icmp_errors_sent, rsts_sent, errors_ratelimited;
	uint64_t tcp_refused, tcp_unreachable;     /* upstream connect failures */
	uint64_t emfile;                           /* host sockets exhausted */
	uint64_t limit_fds, limit_fds_client;      /* refused by the descriptor budget */
	uint64_t fd_budget, fd_budget_client;      /* descriptors flows may hold: all, one client */
	uint64_t wnd_limited;                      /* TCP windows started or kept below full (memory budget) */
	uint64_t wnd_committed;                    /* gauge: bytes of window given to TCP flows, all clients */
	uint64_t flows_tcp, flows_udp, flows_icmp; /* currently open */
	uint64_t halfopen_tcp;
	uint64_t opened_tcp, opened_udp, opened_icmp; /* since start */
	uint64_t closed_idle;
	uint64_t tw_reopened;           /* SYNs that reopened a TIME_WAIT connection */
	uint64_t tw_evicted;            /* TIME_WAIT pcbs dropped over max_time_wait */
	uint64_t tw_refused;            /* SYNs older than their TIME_WAIT connection */
	uint64_t tw_now;                /* gauge: connections in TIME_WAIT (max_time_wait caps) */
	uint64_t bytes_up, bytes_down;  /* payload, all flows */
	uint64_t ping_unavailable;      /* echo refused: no ping sockets */
	uint64_t echo_local;            /* C20: ff02::/16 echo answered here */
	uint64_t svc_udp, svc_tcp_msgs; /* service requests received */
	uint64_t svc_tcp_conns;         /* gauge: TCP connections to services */
	uint64_t svc_refused;           /* connections over the per-client cap */
	uint64_t svc_tcp_reset;         /* reset: an answer did not fit, or was not taken */
	uint64_t lwip_mem_used;         /* gauge: bytes lwIP holds now */
	/* TCP segments lwIP itself dropped: bad checksum, not acceptable
	 * (outside the window, no pcb), no memory, other */
	uint64_t lwip_tcp_chkerr, lwip_tcp_proterr, lwip_tcp_memerr, lwip_tcp_drop;
	/* TCP flow setup: the client's SYN to the upstream socket connected,
	 * on the stack's clock (milliseconds) */
	struct zg_histo tcp_connect;
};

/* Fills *cfg with the defaults (mtu 1280, 100,000 flows, 1,000 per client,
 * 512 half-open, 500 UDP, TCP idle 2 h, UDP 60 s, DNS 10 s, ICMP 10 s,
 * connect 10 s, handshake 10 s, ICMP errors/RSTs 20/s burst 20 per client
 * and 500/s burst 250 in all, limit audits 5/s per client and 20/s in all,
 * lwIP heap 1 GiB, 32 MiB per client, automatic descriptor reserve, 50 %
 * of the flow descriptors per client, 512 in TIME_WAIT). Nothing is
 * forbidden beyond the built-in set. */
void stack_config_defaults(struct stack_config *cfg);

/* Creates the stack on base. cfg NULL means defaults; cfg and cbs are
 * copied. Returns 0 and *pst, or ZG_ERR_INVAL (bad config or missing
 * callback), ZG_ERR_STATE (a stack already exists in this process),
 * ZG_ERR_NOMEM. The caller owns *pst and frees it with stack_del(). */
int stack_new(struct event_base *base, const struct stack_config *cfg,
	      const struct stack_callbacks *cbs, void *ctx,
	      struct stack **pst);

/* Closes every flow (RST to clients still connected, audit CLOSE events),
 * every host socket and lwIP pcb, and frees st. NULL is ignored. */
void stack_del(struct stack *st);

/* Feeds one IP packet that arrived from the tunnel of client. session is
 * passed back in stack_flow_info. The packet is copied; it may be dropped
 * (counted in stack_counters) for being malformed, spoofed, forbidden, denied
 * or over a limit. Output callbacks can run before this returns.
 * Returns 0, or ZG_ERR_INVAL for a NULL argument. */
int stack_input(struct stack *st, void *session,
		const struct stack_client *client, const uint8_t *pkt,
		size_t len);

/* Runs what is due now by the stack's clock: lwIP timers, idle timeouts.
 * The stack's own one-shot libevent timer calls it at stack_expiry(); tests
 * with a fake clock call it after moving the clock. */
void stack_tick(struct stack *st);

/* Returns when stack_tick() next has work, in the stack's clock (ms):
 * lwIP's earliest timeout or the next flow scan, whichever is first, or
 * UINT64_MAX when nothing is pending (no lwIP timer, no flow). The stack's
 * libevent timer is armed for this after every stack_input(), stack_tick()
 * and socket event, and not armed at all while it is UINT64_MAX. */
uint64_t stack_expiry(struct stack *st);

/* Replaces the relay's own addresses, which no tunnel may reach (they
 * serve the relay's QUIC and ops ports), with a[0..n). Call again when the
 * host's addresses change. Returns 0, or ZG_ERR_LIMIT when n exceeds
 * STACK_MAX_LOCAL (the first STACK_MAX_LOCAL are kept), ZG_ERR_INVAL for
 * a NULL array with n > 0. */
int stack_set_local_addresses(struct stack *st, const struct stack_addr *a,
			      size_t n);

/* 1 if dst is never reachable through this stack: the built-in set
 * (pkt_addr_never_reachable), a configured forbidden prefix, the relay's
 * own addresses, or a NAT64 address (64:ff9b::/96) embedding any of these;
 * exempt prefixes win. */
int stack_dst_forbidden(const struct stack *st, const struct stack_addr *dst);

/* Who an IP packet the stack hands to the output callback is for, when
 * the owner's clients may share an address (the connector: two relays'
 * address pools overlap): the session and client ID of the flow it
 * belongs to, else, for a packet made while stack_input() handles another
 * (a refusal, an RST), that packet's. Returns 0, or ZG_ERR_NOTFOUND
 * (neither; *psession and *pclient NULL). *psession is the pointer given
 * to stack_input(), perhaps of a session the owner has ended since (flows
 * outlive a session its client replaced): compare it with live ones,
 * never dereference it. *pclient is valid until the stack runs again. */
int stack_packet_owner(struct stack *st, const uint8_t *pkt, size_t len, void **psession,
		       const char **pclient);

/* Closes every flow of the client with this ID (its session ended). */
void stack_close_client(struct stack *st, const char *client_id);

/* Decides an open flow again (stack_reevaluate): as the policy callback,
 * with the flow as the client started it. */
typedef enum stack_verdict (*stack_verdict_fn)(void *arg,
					       const struct stack_flow_info *flow,
					       const char **prule_id);

/* Asks fn about every open flow (after a policy reload, issue 18.2) and
 * closes each it denies at once: TCP with an RST to the client and to the
 * destination, UDP and ICMP by forgetting the flow (the client's next
 * packet is a new flow, decided and refused as such). Each closed flow is
 * audited STACK_EV_CLOSE with reason and the denying rule's ID; a flow
 * still allowed keeps running and takes the ID of the rule that allows it
 * now. fn must not call into the stack. Returns the number of flows
 * closed, 0 for NULL arguments. O(flows). */
size_t stack_reevaluate(struct stack *st, stack_verdict_fn fn, void *arg,
			const char *reason);

/* ---------------------------------------------------------------- services
 * A service answers, in process, one port on a few addresses of the pool
 * (the gateway addresses) for UDP and TCP: the DNS service. No host socket
 * is involved. A UDP datagram is one request; over TCP, requests and
 * replies are framed by a 2-byte big-endian length (RFC 1035 4.2.2, RFC
 * 7766). Service traffic is exempt from the policy and from the
 * never-reachable set (the pool), and is no flow: it counts against no
 * flow limit, but a client holds at most STACK_SVC_TCP_PER_CLIENT TCP
 * connections to it (more are reset), each closed after
 * STACK_SVC_TCP_IDLE_MS without a request. A client's FIN ends its
 * connection once it has taken the answers queued; a connection whose
 * answers the client does not take (one that no longer fits, or any left
 * at the idle timeout) is reset, never left to lwIP to deliver. */
#define STACK_SVC_MAX_ADDRS 4
#define STACK_SVC_TCP_PER_CLIENT 8
#define STACK_SVC_TCP_IDLE_MS 10000
#define STACK_SVC_MAX_MSG 65535

/* A request for the service. conn is 0 for UDP, else the TCP connection;
 * flow is valid during the call only. The service answers, now or later,
 * with stack_service_reply(), or not at all. */
typedef void (*stack_service_fn)(void *ctx, const struct stack_flow_info *flow,
				 uint64_t conn, const uint8_t *msg, size_t len);

/* Serves port on addrs[0..n) (n <= STACK_SVC_MAX_ADDRS) with fn; n == 0
 * stops the service (its TCP connections are reset). Returns 0,
 * ZG_ERR_INVAL, or ZG_ERR_NOMEM (no lwIP listener). */
int stack_service_set(struct stack *st, const struct stack_addr *addrs, size_t n,
		      uint16_t port, stack_service_fn fn, void *ctx);

/* Answers the request flow (as given to the service function) with msg:
 * a UDP datagram from flow->dst:dport to flow->src:sport, or, for conn,
 * one framed message on that TCP connection. Returns 0, ZG_ERR_NOTFOUND (the
 * connection closed meanwhile), ZG_ERR_TOO_LARGE (a datagram over the
 * tunnel MTU, a message over STACK_SVC_MAX_MSG) or ZG_ERR_LIMIT (the
 * connection's send buffer is full: the client is not reading, and the
 * connection is reset, at once or, during the service function, when it
 * returns, so the client asks again what it has no answer to, RFC 7766
 * 6.2.4). */
int stack_service_reply(struct stack *st, const struct stack_flow_info *flow, uint64_t conn,
			const uint8_t *msg, size_t len);

/* Copies the counters. */
void stack_get_counters(const struct stack *st, struct stack_counters *pc);

/* The memory limit of this process's cgroup in bytes: v2's memory.max of
 * its own cgroup (from self_cgroup, normally "/proc/self/cgroup") or a
 * parent, the smallest that is set, else v1's memory.limit_in_bytes; sysfs
 * is normally "/sys/fs/cgroup". 0 when no limit is set or none is
 * readable. */
uint64_t stack_cgroup_memory_limit(const char *sysfs, const char *self_cgroup);

/* The default of max_lwip_bytes for a cgroup limit (0 = none): half of it,
 * or 1 GiB without one. */
uint64_t stack_memory_default(uint64_t cgroup_limit);

/* 1 if a and b are the same address (same version), else 0. */
int stack_addr_eq(const struct stack_addr *a, const struct stack_addr *b);

/* A 32-bit hash (FNV-1a) of the address's bytes (4 for IPv4, 16 else), for
 * the tables that find a session by its virtual address on every packet;
 * equal addresses (stack_addr_eq) hash equally. */
uint32_t stack_addr_hash(const struct stack_addr *a);

/* a as text into buf (len bytes, INET6_ADDRSTRLEN is enough); "-" for
 * "no address" (version 0). */
void stack_addr_str(const struct stack_addr *a, char *buf, size_t len);

/* 1 if a lies in p, else 0. */
int stack_prefix_contains(const struct stack_prefix *p,
			  const struct stack_addr *a);

#endif /* ZG_STACK_H */
