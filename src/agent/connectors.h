/*
 * connectors.h — the agent's end-to-end sessions with zgate-connectors
 * (issue 22, CONNECTOR.md "Agent").
 *
 * The relay tells the agent, in a ZG_CONNECTORS capsule (zgconn.h), which
 * connectors its policy lets it reach: each with its ID, whether it is up,
 * its virtual addresses and inner port, and the on-prem prefixes it
 * serves. Each capsule is the full list and replaces the previous one.
 *
 * For every up connector the agent runs an INNER CONNECT-IP client
 * (masque.h) over a tunio (tunio.h): its QUIC packets travel as IP/UDP
 * packets from the agent's own tunnel address and a random port in
 * 49152-65535 to the connector's virtual address and inner port, inside
 * the outer tunnel, so the relay only forwards ciphertext. The inner
 * handshake presents the agent's certificate and accepts only a
 * certificate that chains to connector_ca and whose subject CN is exactly
 * "connector:<ID>" of the connector it was told about; anything else is
 * refused and logged (state "refused"), and tried again later.
 *
 * TLS names of the inner session: SNI "connector.zgate.invalid" (RFC
 * 6761's .invalid: a valid DNS name that names nothing, since the peer is
 * identified by its CN, not by a host name; the connector serves one
 * identity, so the SNI carries no choice) with no host-name match
 * (masque_config.cert_name ""): the CN check replaces it, so a connector
 * certificate needs no subjectAltName. :authority
 * "connector.zgate.invalid:<port>", :path the default template with
 * target and protocol "*".
 *
 * Steering. A packet from the TUN whose destination lies in a listed
 * connector's prefix (the longest such prefix wins) goes into that
 * connector's inner tunnel when it is open (one too big for it is
 * answered with ICMP "too big" carrying the inner tunnel's size);
 * otherwise it is answered with ICMP destination unreachable. It is never
 * sent to the relay in the clear.
 * A packet from the outer tunnel that is UDP from a connector's address
 * and inner port to our inner address and port feeds the inner QUIC, never
 * the TUN. Any other packet from a listed connector's address (another
 * port of ours, another protocol, a session already ended) is dropped and
 * counted (rx_unsolicited): the relay forwards whatever a connector sends
 * to an agent it has a link with, and a connector may reach only the inner
 * sessions the agent opened, never the agent's own services. Inner packets
 * go to the TUN.
 *
 * The steering and list functions are pure (no I/O): the sessions are
 * started only when the environment gives an event base.
 */
#ifndef ZG_AGENT_CONNECTORS_H
#define ZG_AGENT_CONNECTORS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent/routes.h"
#include "zgconn.h"

struct event_base;
struct connectors;

/* SNI and :authority host of every inner session (see above). */
#define CONNECTORS_SNI "connector.zgate.invalid"
/* Local ports of inner sessions: the dynamic range (RFC 6335). */
#define CONNECTORS_PORT_MIN 49152
/* IPv4 + UDP headers around an inner QUIC packet (IPv6: 48). */
#define CONNECTORS_OVERHEAD4 28
#define CONNECTORS_OVERHEAD6 48
/* Most prefixes routed for connectors at once. */
#define CONNECTORS_ROUTES_MAX (ZGCONN_MAX * ZGCONN_MAX_PREFIXES)

enum connector_state {
	CONNECTOR_DOWN = 0,   /* the relay says it is down */
	CONNECTOR_CONNECTING, /* up; the inner session is not open (yet) */
	CONNECTOR_UP,         /* the inner session is open */
	CONNECTOR_REFUSED,    /* its certificate was refused (wrong CN, CA, ...) */
};

/* "down", "connecting", "up", "refused". Never NULL. */
const char *connectors_state_name(enum connector_state s);

/* What the agent gives the module. Callbacks may be NULL. */
struct connectors_env {
	struct event_base *base;                     /* NULL: no sessions are started (tests of the pure parts) */
	const char *cert, *key;                      /* the agent's client certificate and key (PEM) */
	const char *ca;                              /* connector_ca: CA connector certificates chain to */
	uint32_t reconnect_min_ms, reconnect_max_ms; /* backoff.h; 0 = 500 / 30000 */
	uint32_t keepalive_ms, idle_timeout_ms;      /* inner QUIC; 0 = none / 30000 */
	/* Sends one IP packet (an inner QUIC packet in IP/UDP) into the
	 * outer tunnel. Returns 0 or a negative error (dropped; QUIC
	 * recovers). */
	int (*to_outer)(void *ctx, const uint8_t *pkt, size_t len);
	/* The largest packet the outer tunnel takes now (0 = none open). */
	size_t (*outer_max)(void *ctx);
	/* Writes one IP packet from an inner tunnel to the TUN. */
	void (*to_tun)(void *ctx, const uint8_t *pkt, size_t len);
	/* The routes (connectors_routes()) or a state changed. */
	void (*changed)(void *ctx);
	/* Monotonic nanoseconds (the ICMP rate limit, session ages); NULL =
	 * CLOCK_MONOTONIC. For tests. */
	uint64_t (*now_ns)(void *ctx);
	void *ctx;
};

/* Per-connector counters and state, for the status file. */
struct connector_status {
	char id[ZGCONN_ID_MAX];
	enum connector_state state;
	uint64_t rtt_us; /* inner smoothed RTT; 0 while not open */
	uint64_t tx_packets, tx_bytes, rx_packets, rx_bytes;
	uint64_t tx_dropped;   /* the inner tunnel did not take them (congested) */
	uint64_t too_big;      /* larger than the inner tunnel carries: dropped */
	uint64_t icmp_too_big; /* ICMP "too big" answers to them (at most 100 a second) */
	uint64_t rx_dropped;   /* malformed, or from a source it does not serve */
	/* from its tunnel address to no inner session of ours (another port,
	 * not UDP, a session that ended): dropped, never for the TUN */
	uint64_t rx_unsolicited;
	uint64_t unreachable; /* packets answered with ICMP unreachable */
	char last_error[160]; /* why the last session ended or was refused; "" */
	/* serial (hex, as tls_cert_ids()) of the certificate the connector
	 * presented to the open or last inner session; "" before one opened */
	char cert_serial[65];
};

/* Creates the module (no connector yet). env is copied; its strings must
 * outlive the module. Returns 0, ZG_ERR_INVAL or ZG_ERR_NOMEM. */
int connectors_new(const struct connectors_env *env, struct connectors **pcs);

/* Closes every inner session and frees cs (NULL is fine). */
void connectors_free(struct connectors *cs);

/* Replaces the list with v[0..n) (a decoded ZG_CONNECTORS capsule):
 * connectors no longer listed, or down, lose their session; new up ones,
 * or ones whose address or port changed, get a (new) session. Entries
 * with an invalid ID, a duplicate ID, no address or port 0 are skipped
 * (logged). Calls env.changed once when anything changed. Returns the
 * number of connectors kept. */
size_t connectors_set_list(struct connectors *cs, const struct zgconn *v, size_t n);

/* Decodes a ZG_CONNECTORS capsule value and applies it. Returns 0, or
 * ZG_ERR_MALFORMED / ZG_ERR_TOO_LARGE (zgconn_decode; the list in force
 * is kept). */
int connectors_on_capsule(struct connectors *cs, const uint8_t *value, size_t len);

/* Sets the agent's own tunnel addresses (version 0 = none of that
 * family): inner sessions start from them. Sessions whose local address
 * changed start again. */
void connectors_set_local(struct connectors *cs, const struct route_prefix *v4,
			  const struct route_prefix *v6);

/* Number of connectors listed; their status (i < count). */
size_t connectors_count(const struct connectors *cs);
void connectors_status(const struct connectors *cs, size_t i, struct connector_status *st);

/* The prefixes of listed connectors, up or down (a down one keeps the
 * last prefixes it was listed with, so its packets reach the TUN steering
 * and get ICMP unreachable), deduplicated, into out (room for max).
 * Returns the count. */
size_t connectors_routes(const struct connectors *cs, struct route_prefix *out, size_t max);

/* Where a packet read from the TUN goes. */
enum connectors_steer {
	CONNECTORS_PASS = 0,    /* not for a connector: the outer tunnel */
	CONNECTORS_INNER,       /* into connector *pidx's open inner tunnel */
	CONNECTORS_UNREACHABLE, /* connector *pidx cannot take it: ICMP back */
};

/* Decides for pkt[0..len) by its destination (pure). A malformed packet
 * is CONNECTORS_PASS (the outer path counts it). */
enum connectors_steer connectors_steer(const struct connectors *cs, const uint8_t *pkt,
				       size_t len, size_t *pidx);

/* 1 when pkt[0..len) from the outer tunnel is UDP from connector i's
 * address and inner port to the address and port of i's inner session
 * (pure; *pidx = i), 0 otherwise. */
int connectors_match_outer(const struct connectors *cs, const uint8_t *pkt, size_t len,
			   size_t *pidx);

/* The TUN read path: steers pkt. Returns CONNECTORS_PASS (the caller sends
 * it to the relay), or CONNECTORS_INNER / CONNECTORS_UNREACHABLE when the
 * module took it: sent into the inner tunnel, or answered through
 * env.to_tun with ICMP unreachable and dropped. A packet larger than the
 * inner tunnel carries (its largest packet is smaller than the outer
 * tunnel's, hence than the TUN's MTU) is dropped (CONNECTORS_INNER,
 * counted in too_big) and answered with ICMP "fragmentation needed" /
 * "packet too big" carrying the inner tunnel's largest packet, so the
 * sender's path MTU to that prefix shrinks (C16, as for the outer tunnel).
 * ICMP answers: at most 100 a second in all. */
enum connectors_steer connectors_from_tun(struct connectors *cs, const uint8_t *pkt, size_t len);

/* The outer on_packet path: 1 when pkt was the module's, never for the
 * TUN: an inner packet of one of our sessions (fed to its QUIC, or dropped
 * when malformed), or any other packet whose source is a listed
 * connector's address (dropped, counted in rx_unsolicited, logged at most
 * once every 10 s per connector). 0 when it is not the module's. */
int connectors_from_outer(struct connectors *cs, const uint8_t *pkt, size_t len);

/* The outer tunnel opened or closed (its largest packet changed): open
 * sessions keep going; sessions waiting for it start. */
void connectors_outer_changed(struct connectors *cs);

/* The agent's certificate, key or connector_ca may have changed (its TLS
 * reload: SIGHUP, a file change): makes every connector's inner TLS
 * context again from env's files. The next inner session uses the new
 * context; open ones keep theirs (each WOLFSSL holds its context). A
 * connector waiting to retry (refused, or the last attempt failed) tries
 * again at once. With no connector listed the files are only checked.
 * Returns 0, or ZG_ERR_CONFIG with err naming the file: then every
 * connector keeps the context it had. */
int connectors_reload_tls(struct connectors *cs, char *err, size_t errlen);

#endif /* ZG_AGENT_CONNECTORS_H */
