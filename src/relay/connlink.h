/*
 * connlink — the relay's only session-to-session path (issue 22,
 * CONNECTOR.md "Relay forwarding"): UDP packets between an agent's tunnel
 * and an on-prem connector's tunnel, carrying the inner QUIC session the
 * relay cannot read.
 *
 *   agent → connector: UDP, source = the agent's own tunnel address,
 *     destination = an up connector's address and its inner port, and the
 *     policy lets the client reach that connector (checked when the link
 *     opens; a policy change re-checks every link).
 *   connector → agent: UDP, source = the connector's own address and inner
 *     port, destination = an agent address with an open link to this
 *     connector AND a port of that agent which sent to this connector's
 *     address and inner port within CONNLINK_FLOW_IDLE_MS (a flow, below).
 *     Nothing from a connector reaches the stack.
 *
 * Forwarded packets are unchanged but for the TTL / hop limit (decremented;
 * a packet that would leave with 0 is dropped) and the IPv4 header
 * checksum (updated, RFC 1624). Every drop is counted by reason.
 *
 * A link is (agent session, agent address, connector): it opens on the
 * first packet forwarded from the agent (audit connector_open) and closes
 * (audit connector_close, with bytes and duration) when either session
 * ends, when a policy change takes the right away, when the agent's
 * address passes to a newer session, or after CONNLINK_IDLE_MS without a
 * packet either way (connlink_expire). An agent using IPv4 and IPv6 to
 * one connector has two links.
 *
 * Flows. The relay forwards from a connector only what an agent asked for,
 * as a stateful firewall would: each link remembers the agent's ports that
 * sent toward the connector (the 5-tuple's other fields are the link's:
 * the agent's address, the connector's address of that IP version and its
 * inner port, UDP), each for CONNLINK_FLOW_IDLE_MS after the agent's last
 * packet from it (only the agent's packets refresh a flow: a connector
 * cannot keep one open by sending). A link holds at most
 * CONNLINK_FLOWS_PER_LINK flows: a new one past that takes the place of
 * the one the agent used least recently (counted in flows_evicted; an
 * agent has one inner session per connector at a time, the rest are
 * ports of sessions that ended). A connector's packet to any other port
 * of the agent is dropped (CONNLINK_DROP_UNSOLICITED) and reported
 * through the flow_note hook (at most every CONNLINK_NOTE_MS per
 * connector, for a log line), so a compromised connector cannot reach an
 * agent's own services, nor spray an agent's ports, through the relay
 * (the agent drops such packets too: rx_unsolicited in its status).
 * Nothing but UDP passes either way, so no ICMP error does: the inner
 * QUIC needs none (its path MTU is probed with its own packets, RFC 9000
 * 14.3), and an agent's inner sessions keep their flows fresh with their
 * keepalive (25 s by default).
 *
 * A connector's announced prefixes (its ROUTE_ADVERTISEMENT) are kept when
 * they lie inside the policy's bound for it (connectors: prefixes), as
 * CIDR prefixes for the ZG_CONNECTORS capsule; the others are reported
 * through the rejected hook.
 *
 * Workers (master.h): a connector's session lives on one worker, agents
 * on any. Every other worker registers it as a remote connector (an end
 * with remote = 1 + the owner's index, made from the owner's notes, see
 * connlink_state) so that its agents see it, their links open, are checked
 * and audited where the agent is, as in one process; a packet up to a
 * remote connector goes through the send_remote hook (to the owner, which
 * puts it into the connector's tunnel), and the owner hands a packet from
 * the connector to the worker holding its destination address, which
 * passes it to connlink_from_connector() with its remote end. Counters and
 * connlink_connectors_up() count local connector sessions only, so a
 * relay-wide sum counts each connector once.
 *
 * No I/O, no clock, no logging: everything outside goes through struct
 * connlink_hooks, so tests/test_connlink.c drives it with fakes.
 */
#ifndef ZG_RELAY_CONNLINK_H
#define ZG_RELAY_CONNLINK_H

#include <stddef.h>
#include <stdint.h>

#include "connectip.h"
#include "zgconn.h"
#include "relay/policy.h"
#include "stack.h"

#define CONNLINK_INNER_PORT 443          /* ZG_CONNECTOR_INNER_PORT */
#define CONNLINK_IDLE_MS 120000u         /* a link without packets this long closes */
#define CONNLINK_MAX_CONNECTORS 256      /* connector sessions up at once */
#define CONNLINK_MAX_PREFIXES 64         /* kept per connector (ZGCONN_MAX_PREFIXES) */
#define CONNLINK_MAX_ANNOUNCED 64        /* announced ranges kept per connector */
#define CONNLINK_MAX_LINKS_DEFAULT 65536 /* links at once */
#define CONNLINK_FLOWS_PER_LINK 8        /* agent ports remembered per link */
#define CONNLINK_FLOW_IDLE_MS 120000u    /* a flow without a packet from the agent this long ends */
#define CONNLINK_NOTE_MS 10000u          /* flow_note at most this often per connector and kind */
#define CONNLINK_IDENTITY_PREFIX ZGCONN_IDENTITY_PREFIX

struct connlink;

enum connlink_result {
	CONNLINK_PASS = 0,      /* not for a connector: the caller's usual path */
	CONNLINK_FORWARDED = 1, /* sent into the other session */
	CONNLINK_DROPPED = 2,   /* dropped and counted */
};

enum connlink_dir {
	CONNLINK_UP = 0,   /* agent → connector */
	CONNLINK_DOWN = 1, /* connector → agent */
	CONNLINK_NDIR
};

enum connlink_drop {
	CONNLINK_DROP_POLICY,      /* the client may not reach this connector */
	CONNLINK_DROP_PORT,        /* not the connector's inner port */
	CONNLINK_DROP_PROTOCOL,    /* not UDP (or a fragment, or IPv6 extension headers) */
	CONNLINK_DROP_SPOOFED,     /* source is not the sender's own tunnel address */
	CONNLINK_DROP_NO_LINK,     /* connector → an address with no open link */
	CONNLINK_DROP_TTL,         /* TTL / hop limit would reach 0 */
	CONNLINK_DROP_MALFORMED,   /* not a whole IPv4/IPv6 + UDP header */
	CONNLINK_DROP_SEND,        /* the other session would not take it */
	CONNLINK_DROP_LIMIT,       /* the link table is full */
	CONNLINK_DROP_UNSOLICITED, /* connector → an agent port that did not send to it */
	CONNLINK_NDROP
};

/* The label of a drop reason in metrics ("policy", "port", ...). */
const char *connlink_drop_name(enum connlink_drop d);

/* A session as connlink sees it. id: the client ID, or the connector ID
 * without "connector:" (copied). sess is the caller's, handed back. */
struct connlink_end {
	void *sess;
	const char *id;
	uint64_t sid; /* the audit trail's session_id */
	struct stack_addr vip4, vip6;
	unsigned remote; /* a connector's: 0 here, else 1 + the worker it is on */
};

struct connlink_prefix {
	uint8_t version;
	uint8_t a[16];
	uint8_t len;
};

/* An up connector (read-only for the caller). */
struct connlink_connector {
	char id[POLICY_ID_MAX];
	void *sess;
	uint64_t sid;
	struct stack_addr vip4, vip6;
	uint16_t port;
	unsigned remote;                                        /* 0: a session here; else 1 + the worker it is on */
	struct connlink_prefix prefixes[CONNLINK_MAX_PREFIXES]; /* accepted, within the bound */
	size_t nprefixes;
};

/* A link, for the audit trail. */
struct connlink_info {
	const char *client, *connector;
	uint64_t client_sid, connector_sid;
	const char *rule; /* the connector rule that allowed it */
	uint64_t bytes_up, bytes_down, duration_ms;
};

/* A flow (see "Flows"), for a log line. */
struct connlink_flow {
	const char *client, *connector;
	struct stack_addr agent, conn; /* the agent's and the connector's address */
	uint16_t agent_port, conn_port;
};

struct connlink_hooks {
	void *ctx;
	/* Sends the IP packet into sess's tunnel: 0, or negative (dropped). */
	int (*send)(void *ctx, void *sess, const uint8_t *pkt, size_t len);
	/* policy_client_may_reach_connector() of the policy in force. */
	enum policy_action (*may_reach)(void *ctx, const char *client, const char *connector,
					const char **prule);
	/* The policy's bound for connector (policy_connector_prefixes). */
	int (*bound)(void *ctx, const char *connector, struct cip_route *out, size_t max,
		     size_t *pn);
	/* An announced range left out (why: a static text), for a warning;
	 * not called for a remote connector (its own worker warns). */
	void (*rejected)(void *ctx, const char *connector, const struct cip_route *r,
			 const char *why);
	void (*audit_open)(void *ctx, const struct connlink_info *li);
	/* reason: idle_timeout, client_closed, connector_closed, policy,
	 * replaced, relay_shutdown */
	void (*audit_close)(void *ctx, const struct connlink_info *li, const char *reason);
	uint64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
	/* Sends the IP packet to remote connector c's worker: 0, or negative
	 * (dropped). NULL when no connector is ever remote. */
	int (*send_remote)(void *ctx, const struct connlink_connector *c, const uint8_t *pkt,
			   size_t len);
	/* A connector's packet to flow f that no packet of the agent opened
	 * (evicted 0: dropped, counted as unsolicited), or flow f forgotten
	 * for a new one of a full link (evicted 1, counted in
	 * flows_evicted): for a warning. Called at most once every
	 * CONNLINK_NOTE_MS per connector and kind; n is how many there were
	 * since the last call (this one included). NULL: not told. */
	void (*flow_note)(void *ctx, const struct connlink_flow *f, int evicted, uint64_t n);
};

struct connlink_counters {
	uint64_t packets[CONNLINK_NDIR], bytes[CONNLINK_NDIR];
	uint64_t drops[CONNLINK_NDROP];
	uint64_t links_opened, links_closed;
	uint64_t flows_evicted; /* a link's least recently used flow, for a new one */
};

/* A new, empty forwarder. max_links 0: CONNLINK_MAX_LINKS_DEFAULT. Every
 * hook is required but send_remote and flow_note. Returns 0 and *pcl, or ZG_ERR_NOMEM. */
int connlink_new(const struct connlink_hooks *h, size_t max_links, struct connlink **pcl);

/* Closes every link (audited with reason, e.g. "relay_shutdown"; NULL:
 * not audited) and frees cl. NULL is ignored. */
void connlink_free(struct connlink *cl, const char *reason);

/* Connector session e is up, taking inner port port. A connector of the
 * same ID already up is replaced (its links close, "replaced"). Returns 0,
 * ZG_ERR_LIMIT (CONNLINK_MAX_CONNECTORS up) or ZG_ERR_NOMEM. */
int connlink_connector_up(struct connlink *cl, const struct connlink_end *e, uint16_t port);

/* Connector session sess announced routes r[0..n) (a ROUTE_ADVERTISEMENT
 * supersedes the one before). Keeps those inside the policy's bound (the
 * first CONNLINK_MAX_ANNOUNCED; the rest, and those outside, go to the
 * rejected hook). Returns 1 when the accepted prefixes changed, 0 when
 * not, ZG_ERR_NOTFOUND when sess is no up connector. */
int connlink_announce(struct connlink *cl, void *sess, const struct cip_route *r, size_t n);

/* A session ended (an agent's or a connector's; any other is ignored):
 * its links close (client_closed / connector_closed) and a connector is
 * no longer up. Returns 1 when sess was an up connector, else 0. */
int connlink_session_closed(struct connlink *cl, void *sess);

/* After a policy change: every link the policy no longer allows closes
 * ("policy"), and every connector's announced ranges are checked against
 * its new bound. Returns the number of links closed. */
size_t connlink_policy_changed(struct connlink *cl);

/* Closes the links idle CONNLINK_IDLE_MS or more. Returns how many. */
size_t connlink_expire(struct connlink *cl);

/* A packet from agent session a (its on_packet). CONNLINK_PASS when its
 * destination is no up connector's address. */
enum connlink_result connlink_from_agent(struct connlink *cl, const struct connlink_end *a,
					 const uint8_t *pkt, size_t len);

/* A packet from connector session sess: forwarded or dropped, never
 * CONNLINK_PASS. */
enum connlink_result connlink_from_connector(struct connlink *cl, void *sess, const uint8_t *pkt,
					     size_t len);

/* The up connector of ID id (without "connector:"), or NULL. */
const struct connlink_connector *connlink_find(const struct connlink *cl, const char *id);

/* The up connector whose session here (remote 0) has session ID sid, or
 * NULL. */
const struct connlink_connector *connlink_find_local_sid(const struct connlink *cl,
							 uint64_t sid);

/* The destination address of IP packet pkt: 0, or ZG_ERR_MALFORMED when
 * its IP header is not whole. */
int connlink_packet_dst(const uint8_t *pkt, size_t len, struct stack_addr *dst);

/* A connector session as workers tell each other (MASTER_NOTE_CONN_*):
 * what connlink_connector_up() and connlink_announce() take. */
struct connlink_state {
	char id[POLICY_ID_MAX];
	uint64_t sid;
	struct stack_addr vip4, vip6;
	uint16_t port;
	struct cip_route routes[CONNLINK_MAX_ANNOUNCED]; /* as announced */
	size_t nroutes;
};
#define CONNLINK_STATE_MAX (1 + POLICY_ID_MAX + 8 + 2 * 17 + 2 + 1 + CONNLINK_MAX_ANNOUNCED * 34)

/* The state of the up connector whose session is sess (its announced
 * ranges as kept). Returns 0 or ZG_ERR_NOTFOUND. */
int connlink_state_of(const struct connlink *cl, const void *sess, struct connlink_state *st);

/* Writes st to [p, end): returns the advanced pointer, or NULL when it
 * does not fit or st is not one (an empty ID, more routes than kept). */
uint8_t *connlink_state_encode(const struct connlink_state *st, uint8_t *p, const uint8_t *end);

/* Reads one state from *pp (advanced) up to end. Returns 0 or
 * ZG_ERR_MALFORMED (short, an ID empty, too long or with a NUL, an
 * address or route of no IP version, too many routes). */
int connlink_state_decode(const uint8_t **pp, const uint8_t *end, struct connlink_state *st);

/* The connector sessions up here (remote 0). */
size_t connlink_connectors_up(const struct connlink *cl);
size_t connlink_links(const struct connlink *cl);
void connlink_get_counters(const struct connlink *cl, struct connlink_counters *out);

#endif /* ZG_RELAY_CONNLINK_H */
