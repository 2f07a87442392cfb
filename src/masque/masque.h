/*
 * masque.h — CONNECT-IP (RFC 9484) over HTTP/3 (RFC 9114, 9220, 9297) on
 * QUIC v1 with DATAGRAM (RFC 9000, 9221): ngtcp2 + nghttp3 + wolfSSL.
 *
 * Shape. The protocol core owns no socket, no clock and no timer: every
 * packet comes in through masque_server_input()/masque_conn_input() and
 * goes out through struct masque_io, which also supplies the time and one
 * timer per connection. src/masque/udp.c implements masque_io on libevent
 * and UDP sockets for the binaries; the tests implement it in memory with
 * a fake clock, so a client and a server are joined without sockets.
 *
 * One CONNECT-IP tunnel per QUIC connection (the first accepted request
 * stream). A second CONNECT-IP request on the same connection is answered
 * 400: a client that wants two tunnels opens two connections. The relay
 * serves many connections.
 *
 * This library knows nothing of lwIP, TUN devices, policy or IPAM: the
 * owner decides requests and address requests through callbacks, gets IP
 * packets through on_packet and sends them with masque_conn_send().
 */
#ifndef ZG_MASQUE_MASQUE_H
#define ZG_MASQUE_MASQUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "capsule.h"
#include "connectip.h"
#include "histo.h"
#include "tls.h"

struct masque_server;
struct masque_conn;

/* Limits of the library (callers' arrays are sized with these). */
#define MASQUE_MAX_ADDRS 8     /* addresses per ADDRESS_ASSIGN/REQUEST */
#define MASQUE_MAX_ROUTES 1024 /* ranges per ROUTE_ADVERTISEMENT */
#define MASQUE_MIN_INNER_MTU 1280
#define MASQUE_IDENTITY_MAX 128

/* Time in nanoseconds on a monotonic clock (ngtcp2's ngtcp2_tstamp). */
typedef uint64_t masque_time;

/* The platform seam. Every function is called from the thread that drives
 * the library. */
struct masque_io {
	/* Sends one UDP datagram from local to remote. Returns 0, or a
	 * negative value when it was not sent (the data is dropped; QUIC
	 * recovers). */
	int (*send)(void *ioctx, const struct sockaddr *local, socklen_t locallen,
		    const struct sockaddr *remote, socklen_t remotelen,
		    const uint8_t *data, size_t len);
	/* The current monotonic time. */
	masque_time (*now)(void *ioctx);
	/* Creates the timer of connection c (NULL on failure: the connection
	 * is refused). When it fires, the io layer calls
	 * masque_conn_on_timer(c). */
	void *(*timer_new)(void *ioctx, struct masque_conn *c);
	/* (Re)arms timer to fire at `at` (absolute; may be in the past). */
	void (*timer_arm)(void *ioctx, void *timer, masque_time at);
	/* Frees a timer made by timer_new. */
	void (*timer_free)(void *ioctx, void *timer);
};

/* A decoded CONNECT-IP request as the server saw it (C02, C03). */
struct masque_request {
	char identity[MASQUE_IDENTITY_MAX]; /* client ID: certificate CN or SAN URI (tls.h) */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char authority[256];
	char path[1024];
	/* Scope from the template variables: target "*" = any (version 0).
	 * A prefix or literal sets target (and its length); ipproto 0 with
	 * any_proto = 1 means "*". */
	int any_target;
	struct cip_addr target; /* request_id unused */
	char dns[254];          /* a DNS-name target, "" otherwise (C03) */
	int any_proto;
	uint8_t ipproto;
};

/* What the owner answers to an accepted request. */
struct masque_accept {
	struct cip_addr addrs[MASQUE_MAX_ADDRS]; /* sent with Request ID 0 */
	size_t naddrs;
	struct cip_route *routes; /* owner's array, copied before return */
	size_t nroutes;
	/* Further whole capsules (e.g. DNS_ASSIGN, cipdns.h), encoded by the
	 * owner, sent after ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT (a
	 * DNS_ASSIGN must not precede the routes). Copied; NULL/0 = none. */
	const uint8_t *capsules;
	size_t capsules_len;
};

/* Why the server refused a handshake before (or without) examining a
 * client certificate; certificate refusals are enum tls_reject. */
enum masque_hs_fail {
	MASQUE_HS_OK = 0,
	MASQUE_HS_ALPN,             /* no ALPN "h3" (RFC 9001 §8.1, alert 120) */
	MASQUE_HS_VERSION,          /* no common TLS version (alert 70) */
	MASQUE_HS_TRANSPORT_PARAMS, /* QUIC transport parameters missing or invalid */
	MASQUE_HS_TLS,              /* another TLS failure (cipher, group, decode) */
	MASQUE_HS_CLIENT_ABORTED,   /* the client closed the handshake itself */
	MASQUE_HS_PROTOCOL,         /* a QUIC protocol error during the handshake */
	MASQUE_HS_COUNT
};

/* A short, stable token for logs, audit and metric labels ("alpn",
 * "version", "transport_parameters", "tls", "client_aborted",
 * "protocol"). Never NULL. */
const char *masque_hs_fail_name(enum masque_hs_fail f);

/* Why a connection ended (on_close). */
struct masque_close_info {
	int error;                   /* 0 clean, else ZG_ERR_* */
	uint64_t app_error;          /* HTTP/3 error code when an application close */
	int idle;                    /* closed by the idle timeout */
	int status;                  /* client: the server's status if refused, else 0 */
	enum tls_reject reject;      /* server: TLS refusal reason, TLS_ACCEPTED if none */
	enum masque_hs_fail hs_fail; /* server: handshake failure before a
					certificate, MASQUE_HS_OK if none */
	char reason[320];            /* human-readable, for the log */
};

struct masque_stats {
	uint64_t pkts_in, pkts_out, bytes_in, bytes_out; /* IP packets */
	uint64_t drop_too_big;                           /* larger than the datagram limit */
	uint64_t drop_congested;                         /* QUIC could not take the datagram now */
	uint64_t drop_no_tunnel;                         /* before the tunnel opened / unknown stream */
	uint64_t drop_context;                           /* unknown context ID (C12) */
	uint64_t capsule_fallback;                       /* packets sent as DATAGRAM capsules */
	masque_time handshake_ns;                        /* time from first packet to handshake done */
	/* QUIC path state now (0 before the handshake) */
	uint64_t srtt_ns, min_rtt_ns;
	uint64_t cwnd, bytes_in_flight; /* congestion window, bytes */
	uint64_t quic_sent, quic_lost;  /* QUIC packets since the start */
	uint64_t queued;                /* packet bytes waiting for QUIC */
	uint64_t timer_in_ns;           /* next timer, from now; UINT64_MAX = none */
};

/* Callbacks to the owner. ctx is the one given at creation. Every callback
 * may call masque_conn_send()/masque_conn_close() on c but must not free
 * the server. */
struct masque_cbs {
	/* Server: a CONNECT-IP request arrived on connection c. Return 200 to
	 * accept (fill acc: addresses, routes); 400, 403 or 503 to refuse; any
	 * other value is sent as is. Return MASQUE_PENDING to answer later
	 * with masque_conn_answer() (e.g. after resolving a DNS-name target).
	 * Called once per connection. */
	int (*on_request)(struct masque_conn *c, const struct masque_request *rq,
			  struct masque_accept *acc, void *ctx);
	/* Server: the client sent ADDRESS_REQUEST (entries already validated,
	 * n >= 1). Fill out[] (cap MASQUE_MAX_ADDRS) with the complete set of
	 * addresses the client now holds; entries answering a request carry
	 * its Request ID, refused ones are all-zero with the maximum prefix
	 * length (C09). Return 0, or a negative error to abort the tunnel. */
	int (*on_address_request)(struct masque_conn *c, const struct cip_addr *req, size_t n,
				  struct cip_addr *out, size_t *nout, void *ctx);
	/* Client: the server accepted (2xx + capsule-protocol). */
	void (*on_open)(struct masque_conn *c, void *ctx);
	/* Client: an ADDRESS_ASSIGN arrived; it replaces the earlier set. */
	void (*on_addresses)(struct masque_conn *c, const struct cip_addr *a, size_t n, void *ctx);
	/* Both: a valid ROUTE_ADVERTISEMENT arrived (the full list). Either
	 * endpoint may advertise (RFC 9484 §4.7.3): a zgate-connector tells
	 * the relay the on-prem prefixes it serves this way. */
	void (*on_routes)(struct masque_conn *c, const struct cip_route *r, size_t n, void *ctx);
	/* Both: an IP packet arrived through the tunnel. */
	void (*on_packet)(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx);
	/* Both: the packets QUIC held back (congestion window, pacing) have
	 * drained after masque_conn_congested() said 1: a sender that paused
	 * its source (the agent's TUN) resumes. */
	void (*on_writable)(struct masque_conn *c, void *ctx);
	/* Both: a capsule of one of the extension types listed in
	 * masque_config.ext_capsules arrived (value bounded like every parsed
	 * capsule). Types not listed never reach the owner: RFC 9297 says an
	 * endpoint ignores capsule types it does not know, so a peer may send
	 * them freely. Return 0, or a negative ZG_ERR_* to abort the tunnel
	 * (a malformed extension capsule the owner relies on). */
	int (*on_capsule)(struct masque_conn *c, uint64_t type, const uint8_t *value, size_t len,
			  void *ctx);
	/* Client: the server sent GOAWAY (it is shutting down). */
	void (*on_goaway)(struct masque_conn *c, void *ctx);
	/* Server: the handshake refused a client certificate. */
	void (*on_reject)(const struct sockaddr *peer, socklen_t peerlen, enum tls_reject why,
			  void *ctx);
	/* Server: the handshake failed before a client certificate was
	 * examined (or the certificate was fine): wrong ALPN, version,
	 * transport parameters... detail is the close reason, for the log.
	 * Timeouts are not reported. At most one of on_reject and
	 * on_handshake_failed fires per connection. */
	void (*on_handshake_failed)(const struct sockaddr *peer, socklen_t peerlen,
				    enum masque_hs_fail why, const char *detail, void *ctx);
	/* Both: c is closed; it is freed when the callback returns. */
	void (*on_close)(struct masque_conn *c, const struct masque_close_info *ci, void *ctx);
};

struct masque_config {
	WOLFSSL_CTX *tls; /* tls_server_ctx_new()/tls_client_ctx_new(); not owned */
	const struct masque_io *io;
	void *ioctx;
	/* Client only. */
	const char *server_name; /* SNI and the name the certificate must match */
	/* The name the server certificate must match instead of server_name;
	 * NULL = server_name, "" = no name check: the owner's verify callback
	 * on the TLS context checks the peer's identity itself (the agent's
	 * inner connector sessions check CN "connector:<ID>"). */
	const char *cert_name;
	const char *authority;   /* :authority, host:port */
	const char *path;        /* :path, the expanded template (uri.h) */
	struct cip_addr want[2]; /* ADDRESS_REQUEST entries (C10); */
	size_t nwant;            /* 0 = ask for 0.0.0.0/32 */
	/* Server only. */
	const char *uri_template; /* absolute https template (C01) */
	size_t max_conns;         /* 0 = 4096 */
	size_t retry_above;       /* handshakes in progress before Retry is
				      required; 0 = 64 */
	int retry_always;         /* require Retry for every connection */
	int retry_off;            /* never send Retry */
	/* Handshake admission (issue 16.7). Handshakes in progress at once;
	 * the rest of max_conns stays for connections past their handshake.
	 * 0 = max_conns / 4, at least 16. */
	size_t max_handshakes;
	/* Handshakes in progress from one source (an IPv4 address or an IPv6
	 * /64: addrkey.h, ADDRKEY_SOURCE); beyond it a new client without a Retry token gets a Retry, one
	 * with a token is refused. 0 = 32. */
	size_t max_handshakes_per_source;
	/* Connections at once from one address (the exact IPv4 or IPv6
	 * address, ADDRKEY_EXACT, not max_handshakes_per_source's /64),
	 * handshaking or not:
	 * beyond it a new connection is refused with CONNECTION_CLOSE
	 * (refused_address). 0 = no cap (the relay: many clients may share
	 * one NAT address). */
	size_t max_conns_per_address;
	/* A connection whose CONNECT-IP tunnel is not open this long after
	 * its first packet (no request, or a refused one) is closed
	 * (request_timeouts): no client holds a connection without a
	 * tunnel. 0 = no deadline. */
	uint64_t request_timeout_ms;
	/* New connections started per round (masque_server_new_round()); the
	 * Initial packets beyond it are handed back (MASQUE_DEFERRED) for a
	 * later round, so a burst of handshakes cannot stall the event loop
	 * and the tunnels it serves. 0 = no bound (masque_udp_server_new()
	 * makes it 8). */
	size_t accepts_per_round;
	/* Key for stateless-reset and Retry tokens. NULL = random per process.
	 * Set it (e.g. tls_derive_secret() from the server key) so a relay
	 * that restarts, or another replica with the same key, can reset the
	 * connections it no longer knows: clients then reconnect at once
	 * instead of waiting for their idle timeout. */
	const uint8_t *static_secret; /* 32 bytes */
	/* This server is worker worker_index of nworkers processes sharing
	 * one UDP port (issue 21; steer.h): every connection ID it issues
	 * (at accept, in a Retry, in NEW_CONNECTION_ID) has a first byte b
	 * with b % nworkers == worker_index, so the kernel's reuseport
	 * program (steer_attach_cbpf()) sends the connection's datagrams to
	 * this worker (masque_udp_server_new() binds with SO_REUSEPORT, and
	 * masque_udp_server_set_steer() hands over what lands on the wrong
	 * worker). nworkers 0 or 1 = one process, random CIDs;
	 * nworkers at most STEER_MAX_WORKERS and worker_index below it. */
	unsigned worker_index;
	unsigned nworkers;
	/* masque_udp_server_new() only: > 0, a UDP socket already bound
	 * (SO_REUSEPORT with nworkers > 1) to serve on instead of binding a
	 * new one: the relay's master binds the workers' sockets in worker
	 * order before it forks (steer.h). Owned by the server from then on
	 * (closed by masque_udp_del()). 0: bind the listen address. */
	int listen_fd;
	/* Both. */
	/* Extension capsule types handed to on_capsule (at most
	 * CAPSULE_EXT_MAX, capsule.h); every other unknown type is skipped. */
	uint64_t ext_capsules[CAPSULE_EXT_MAX];
	size_t n_ext_capsules;
	uint64_t idle_timeout_ms;      /* 0 = 30000 */
	uint64_t keepalive_ms;         /* PING interval when idle; 0 = none */
	uint64_t handshake_timeout_ms; /* 0 = 10000 */
	size_t max_udp_payload;        /* 0 = 1452 (outer UDP payload) */
	int no_datagrams;              /* do not offer QUIC DATAGRAM (testing the
				      capsule fallback, C13) */
	size_t capsule_buffer;         /* bytes of unacknowledged capsules kept
				      per tunnel; 0 = 1 MiB */
	size_t send_queue;             /* bytes of packets waiting for QUIC's
				      congestion window per connection (also
				      those sent from inside callbacks);
				      0 = 1 MiB. Allocated while in use. */
	const char *keylog_file;       /* NSS key log (debugging); NULL = off */
	const char *qlog_dir;          /* one qlog per connection; NULL = off */
	/* Testing only: send a wrong :protocol / omit capsule-protocol so
	 * tests can check the server's 400 answers. */
	const char *test_protocol;
	int test_no_capsule_protocol;
	/* Testing only: a client that never sends its CONNECT-IP request
	 * (checks the server's request_timeout_ms). */
	int test_no_request;
	/* Testing only: the ALPN list (tls_set_alpn()) this end offers or
	 * accepts instead of "h3"; "" = none. Checks that the peer refuses. */
	const char *test_alpn;
};

/* Creates a server. cfg and cbs are copied; the strings and the TLS
 * context must outlive the server. Returns 0, ZG_ERR_INVAL, ZG_ERR_NOMEM,
 * ZG_ERR_CONFIG (bad template). */
int masque_server_new(const struct masque_config *cfg, const struct masque_cbs *cbs,
		      void *ctx, struct masque_server **psrv);

/* Closes every connection at once (each gets on_close) and frees srv. */
void masque_server_del(struct masque_server *srv);

/* Feeds one UDP datagram that arrived on local from remote. New
 * connections, Retry, version negotiation and stateless resets are
 * handled here. Returns 0 (handled: bad packets are counted and dropped),
 * or MASQUE_DEFERRED when the datagram would start a connection and this
 * round's accepts_per_round are used up: nothing was done; feed it again
 * after masque_server_new_round() (or drop it). */
int masque_server_input(struct masque_server *srv, const struct sockaddr *local,
			socklen_t locallen, const struct sockaddr *remote, socklen_t remotelen,
			const uint8_t *pkt, size_t len);
#define MASQUE_DEFERRED 1

/* The io layer drops an Initial that masque_server_input() handed back
 * (MASQUE_DEFERRED) instead of feeding it again (its waiting room is
 * full): the rest of that first flight, arriving just after it, is
 * dropped too instead of starting the handshake without its start, and
 * is counted in initials_repeat only. The client sends the flight again. */
void masque_server_initial_dropped(struct masque_server *srv, const struct sockaddr *remote,
				   const uint8_t *pkt, size_t len);

/* Starts a new round of accepts_per_round new connections (the event loop
 * calls it once per turn). */
void masque_server_new_round(struct masque_server *srv);

/* Ends this round early: until the next masque_server_new_round(), every
 * new connection is deferred (used while earlier ones wait, to keep their
 * order). */
void masque_server_end_round(struct masque_server *srv);

/* Makes new connections use tls (a tls_server_ctx_new() context, not
 * owned; it must outlive them or be reference-counted as wolfSSL does: each
 * connection's WOLFSSL holds its context). Open connections keep theirs
 * (issue 18.1: certificate rotation without dropping tunnels). */
void masque_server_set_tls(struct masque_server *srv, WOLFSSL_CTX *tls);

/* Graceful shutdown: GOAWAY to every client, no new tunnels. */
void masque_server_goaway(struct masque_server *srv);

/* Connections currently open (handshaking included). */
size_t masque_server_conns(const struct masque_server *srv);

struct masque_server_stats {
	uint64_t accepted, refused_full, retries_sent, stateless_resets, bad_packets;
	uint64_t refused_handshakes; /* max_handshakes in progress */
	uint64_t refused_source;     /* max_handshakes_per_source */
	uint64_t refused_address;    /* max_conns_per_address */
	uint64_t request_timeouts;   /* closed: no tunnel within request_timeout_ms */
	uint64_t retries_source;     /* Retry because the source was at its cap */
	uint64_t deferred;           /* Initials handed back for a later round */
	/* Initials after the first of a first flight (one ClientHello may
	 * take several) that was answered (Retry, refusal) or dropped
	 * (masque_server_initial_dropped()) a moment before: not answered,
	 * nor counted above, again. */
	uint64_t initials_repeat;
	/* CONNECT-IP requests this layer refused itself, before or without
	 * asking on_request: 400 (not a valid CONNECT-IP request, or a second
	 * tunnel on one connection), 503 (after GOAWAY), 500 (the tunnel's
	 * addresses/routes could not be sent, or on_request gave no valid
	 * status). on_request's own refusals are its owner's to count. */
	uint64_t refused_bad_request, refused_goaway, refused_internal;
	/* server handshakes completed (client certificate accepted): the
	 * connection's first packet to handshake done, on the io clock */
	struct zg_histo handshake;
	uint64_t reject[TLS_REJECT_COUNT];
	uint64_t hs_fail[MASQUE_HS_COUNT];
};
void masque_server_stats(const struct masque_server *srv, struct masque_server_stats *st);

/* Creates a client connection from local to remote (IPv4 or IPv6
 * addresses: ZG_ERR_INVAL for a longer one) and starts the handshake.
 * Returns 0 and *pc, or ZG_ERR_* (no callback fires). */
int masque_client_new(const struct masque_config *cfg, const struct masque_cbs *cbs, void *ctx,
		      const struct sockaddr *local, socklen_t locallen,
		      const struct sockaddr *remote, socklen_t remotelen,
		      struct masque_conn **pc);

/* Feeds one UDP datagram to a client connection. May call on_close (and
 * free c) — the caller must not touch c after a call that closed it: the
 * return value is 1 when c is gone, 0 otherwise. */
int masque_conn_input(struct masque_conn *c, const struct sockaddr *local, socklen_t locallen,
		      const struct sockaddr *remote, socklen_t remotelen, const uint8_t *pkt,
		      size_t len);

/* The io layer calls this when c's timer fires. Returns 1 when c is gone. */
int masque_conn_on_timer(struct masque_conn *c);

/* Sends one IP packet through the tunnel: as an HTTP Datagram in a QUIC
 * DATAGRAM frame, or in a DATAGRAM capsule when QUIC datagrams were not
 * negotiated (C13). Returns 0 (sent or handed to QUIC), ZG_ERR_TOO_LARGE
 * (len > masque_conn_max_packet(): send ICMP "packet too big", C16),
 * ZG_ERR_STATE (no open tunnel), ZG_ERR_LIMIT (congested or capsule
 * buffer full; dropped and counted). */
int masque_conn_send(struct masque_conn *c, const uint8_t *pkt, size_t len);

/* The largest IP packet masque_conn_send() takes now (0 = no tunnel). */
size_t masque_conn_max_packet(const struct masque_conn *c);

/* Sends a new ROUTE_ADVERTISEMENT (the full list, C07; either end) or
 * (server) ADDRESS_ASSIGN on an open tunnel. Returns 0, ZG_ERR_STATE, ZG_ERR_LIMIT,
 * ZG_ERR_INVAL (routes not normalized). */
int masque_conn_send_routes(struct masque_conn *c, const struct cip_route *r, size_t n);
int masque_conn_send_addresses(struct masque_conn *c, const struct cip_addr *a, size_t n);

/* Both: sends one whole capsule (type, value) on the open tunnel, e.g. a
 * new DNS_ASSIGN after a policy reload. Returns 0, ZG_ERR_STATE (no open
 * tunnel), ZG_ERR_LIMIT (capsule buffer full), ZG_ERR_RANGE, ZG_ERR_NOMEM. */
int masque_conn_send_capsule(struct masque_conn *c, uint64_t type, const uint8_t *value,
			     size_t len);

/* Closes the tunnel and the connection (CONNECTION_CLOSE with
 * H3_NO_ERROR, or app_error). on_close fires later from input/timer,
 * never from inside this call. */
void masque_conn_close(struct masque_conn *c, uint64_t app_error, const char *reason);

#define MASQUE_PENDING 0

/* Server: answers the request on_request left pending: status as
 * on_request returns it, acc for a 2xx (copied; NULL otherwise), and an
 * optional Proxy-Status header value for a refusal (RFC 9209, e.g.
 * "zgate; error=dns_error"). Returns 0, or ZG_ERR_STATE (nothing pending,
 * or the connection is closing). */
int masque_conn_answer(struct masque_conn *c, int status, const struct masque_accept *acc,
		       const char *proxy_status);

/* Closes c at once: CONNECTION_CLOSE is sent, on_close fires from inside
 * this call and c is freed. Not from inside a masque callback. */
void masque_conn_destroy(struct masque_conn *c);

/* Owner data attached to c. */
void masque_conn_set_data(struct masque_conn *c, void *data);
void *masque_conn_data(const struct masque_conn *c);

/* Peer identity (server: client CN; client: ""), peer address. */
const char *masque_conn_identity(const struct masque_conn *c);
/* Server: the client certificate's serial number and SHA-256 fingerprint,
 * lower-case hex (tls_cert_ids); "" before the handshake completes. */
const char *masque_conn_cert_serial(const struct masque_conn *c);
const char *masque_conn_cert_sha256(const struct masque_conn *c);
/* The key exchange group the handshake agreed on ("X25519MLKEM768",
 * "X25519", ...: tls_set_groups()), a static string; NULL before the
 * handshake is complete, or on a relay connection, whose TLS object is
 * freed after it. */
const char *masque_conn_tls_group(const struct masque_conn *c);
/* Client: 1 when the server gave this connection a TLS session ticket
 * (resumption), 0 when not (a zgate relay never does) or on a server. */
int masque_conn_got_ticket(const struct masque_conn *c);
/* Server: the client certificate's DER (the leaf the handshake verified),
 * *plen bytes, owned by c and valid until it closes. NULL (*plen 0) for a
 * client connection, before the handshake completes, or when the
 * certificate is larger than TLS_CERT_DER_MAX (not kept). */
const uint8_t *masque_conn_peer_cert(const struct masque_conn *c, size_t *plen);
const struct sockaddr *masque_conn_peer(const struct masque_conn *c, socklen_t *plen);
int masque_conn_is_open(const struct masque_conn *c);
int masque_conn_datagrams(const struct masque_conn *c); /* QUIC datagrams in use */

/* 1 when packets QUIC cannot send yet fill more than half the per-
 * connection queue: a sender with a source it can pause (a TUN device)
 * should stop reading until on_writable, so the backlog stays in the
 * kernel's queue (where TCP sees it as delay) instead of being dropped
 * here (where TCP sees loss). */
int masque_conn_congested(const struct masque_conn *c);
void masque_conn_stats(const struct masque_conn *c, struct masque_stats *st);

#endif /* ZG_MASQUE_MASQUE_H */
