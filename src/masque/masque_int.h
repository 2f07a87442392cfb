/*
 * masque_int.h — what conn.c and server.c share. Not for other modules.
 */
#ifndef ZG_MASQUE_INT_H
#define ZG_MASQUE_INT_H

#include <netinet/in.h>
#include <stdio.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "capsule.h"
#include "masque/masque.h"
#include "masque/sendq.h"

#define MASQUE_CIDLEN 16
#define MASQUE_MAX_STREAMS 16            /* header sections being received at once */
#define MASQUE_MAX_FIELD_SECTION 16384   /* header section cap, both ways */
#define MASQUE_CAPSULE_MAX 70000         /* largest capsule value buffered */
#define MASQUE_PENDING_MAX (1024 * 1024) /* default send queue (masque_config.send_queue) */

/* Header fields of one request/response stream, bounded. */
struct mstream {
	struct mstream *next;
	int64_t sid;
	int bad;     /* a field too long, repeated or with NUL: 400 */
	int refused; /* answered with an error status */
	int status;  /* client: :status */
	char method[16];
	char protocol[32];
	char scheme[16];
	char authority[256];
	char path[1024];
	char capsule_protocol[32];
	char proxy_status[256]; /* client: the answer's Proxy-Status, truncated */
};

/* A socket address a QUIC path can have (ngtcp2 takes IPv4 and IPv6 only):
 * 28 bytes where a sockaddr_storage takes 128, twice per connection. */
union masque_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* Why a connection ends, gathered while it runs; handed to on_close as a
 * struct masque_close_info. The reason lives on the heap, allocated only
 * when one is set (most connections keep none until they close): an idle
 * tunnel does not carry 320 bytes of text it may never need. */
struct masque_close_state {
	int error;
	uint64_t app_error;
	int idle;
	int status;
	enum tls_reject reject;
	enum masque_hs_fail hs_fail;
	char *reason;   /* the first cause (masque_conn_set_reason), or NULL */
	int reason_set; /* a cause was set, even if its text could not be kept */
};

struct masque_conn {
	struct masque_server *srv; /* NULL for a client */
	const struct masque_config *cfg;
	const struct masque_cbs *cbs;
	void *ctx;
	void *data; /* owner's */
	int is_server;

	ngtcp2_conn *qc;
	nghttp3_conn *h3;
	WOLFSSL *ssl;
	ngtcp2_crypto_conn_ref ref;
	ngtcp2_ccerr ccerr;
	void *timer;
	masque_time created;
	union masque_sockaddr local, remote; /* IPv4 or IPv6: all QUIC runs on */
	socklen_t locallen, remotelen;
	uint8_t *pktbuf; /* a server's: its server's (masque_server_pktbuf) */
	size_t pktbuf_size;
	int pktbuf_own; /* a client's: its own */
	FILE *qlog;

	/* state */
	int busy;    /* inside an ngtcp2/nghttp3 call */
	int closing; /* a close is decided; ccerr holds it */
	int close_sent;
	int close_now; /* finish at the next timer */
	int drained;   /* the peer closed, or idle: nothing to send */
	int goaway;    /* server: GOAWAY sent; client: received */
	int handshake_counted;
	struct src_count *hs_src; /* server: counted against this source */
	struct src_count *addr;   /* server: counted against this address */
	int hs_validated;         /* ... as one with a Retry token */

	/* HTTP/3 */
	int peer_settings, peer_h3_datagram, peer_connect_protocol;
	uint64_t peer_qpack_dtable; /* the peer's SETTINGS_QPACK_MAX_TABLE_CAPACITY */
	int request_sent;
	struct mstream *streams;
	size_t nstreams;

	/* the tunnel */
	int64_t tunnel_sid;
	int64_t answer_sid; /* server: request waiting for masque_conn_answer() */
	int tunnel_open;
	struct capsule_parser cparser;
	uint8_t *capbuf;         /* lent to cparser while a split capsule needs it */
	masque_time capbuf_used; /* last lent: freed after 5 s without use */
	struct sendq sendq;
	uint64_t next_request_id;
	uint64_t dgram_id;
	uint8_t *pending; /* allocated on first use, freed after 5 s idle */
	size_t pending_len, pending_cap;
	masque_time pending_used;
	int pending_blocked;  /* the last send_now() hit the congestion window */
	int congested;        /* pending above half full; on_writable when drained */
	int write_blocked;    /* the last conn_write() left stream data unsent */
	masque_time input_ts; /* arrival of the packet being handled, else 0 */
	int reject_reported;  /* on_reject or on_handshake_failed has fired */

	/* server: identity */
	/* identity, the client certificate's serial and SHA-256 (hex): three
	 * strings in one allocation, made at the end of the handshake (an
	 * idle tunnel keeps their lengths, not 258 bytes of room); NULL
	 * before. masque_conn_identity() and the others say "" then. */
	char *ids;
	const char *identity, *cert_serial, *cert_sha256;
	/* the client certificate (DER, at most TLS_CERT_DER_MAX; else NULL),
	 * copied at the end of the handshake: the TLS object is freed then
	 * (release_tls in conn.c) and a TLS reload checks it again */
	uint8_t *cert_der;
	size_t cert_len;
	int tls_done; /* the handshake completed and the identity was accepted */

	/* server: connection IDs in the server's table */
	struct cid_node *cids;
	struct masque_conn *next, *prev; /* server's list */

	struct masque_stats st;
	struct masque_close_state ci;
};

void masque_random(uint8_t *p, size_t n);
/* The size of a connection's packet buffer under cfg. */
size_t masque_pktbuf_size(const struct masque_config *cfg);
void masque_conn_free(struct masque_conn *c);
/* Sets c's close reason unless one is set already (the first cause is the
 * one that counts); masque_conn_clear_reason() forgets it first. Out of
 * memory the reason reads "(reason lost: out of memory)". */
void masque_conn_set_reason(struct masque_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void masque_conn_clear_reason(struct masque_conn *c);
/* Calls c's on_close (if any) with why c ends, as a struct
 * masque_close_info. */
void masque_conn_report_close(struct masque_conn *c);
void masque_keylog_setup(const struct masque_config *cfg);
void masque_conn_goaway(struct masque_conn *c);

int masque_conn_server_new(struct masque_server *srv, const struct masque_config *cfg,
			   const struct masque_cbs *cbs, void *ctx, const struct sockaddr *local,
			   socklen_t locallen, const struct sockaddr *remote, socklen_t remotelen,
			   const ngtcp2_pkt_hd *hd, const ngtcp2_cid *odcid, const ngtcp2_cid *scid,
			   const uint8_t *reset_token, struct masque_conn **pc);

/* For tests: queue raw bytes on the tunnel stream / send a raw QUIC
 * DATAGRAM frame payload, bypassing the encoders. Return 0 or ZG_ERR_*. */
int masque_conn_queue_raw(struct masque_conn *c, const uint8_t *data, size_t len);
int masque_conn_send_raw_datagram(struct masque_conn *c, const uint8_t *data, size_t len);

/* server.c, called from conn.c */
/* Fills cid with len random bytes, the first marked with this server's
 * worker (masque_config.worker_index, steer.h). */
void masque_server_cid(const struct masque_server *srv, uint8_t *cid, size_t len);
int masque_server_new_cid(struct masque_server *srv, struct masque_conn *c, const ngtcp2_cid *cid,
			  uint8_t *token);
void masque_server_remove_cid(struct masque_server *srv, const ngtcp2_cid *cid);
void masque_server_unlink(struct masque_server *srv, struct masque_conn *c);
/* c is closed for having no tunnel within request_timeout_ms: counted,
 * logged at most every 10 s. */
void masque_server_count_request_timeout(struct masque_server *srv);
/* The packet buffer all of srv's connections share (server.c says why
 * that is safe), masque_pktbuf_size(&its config) bytes. */
uint8_t *masque_server_pktbuf(struct masque_server *srv);
void masque_server_handshake_done(struct masque_server *srv, struct masque_conn *c);
/* Counts a CONNECT-IP request refused by this layer (400, 500 or 503). */
void masque_server_count_refusal(struct masque_server *srv, int status);
void masque_server_count_reject(struct masque_server *srv, enum tls_reject why);
void masque_server_count_hs_fail(struct masque_server *srv, enum masque_hs_fail why);

#endif /* ZG_MASQUE_INT_H */
