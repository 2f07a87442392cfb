/*
 * server.c — the relay's side of masque.h: routes datagrams to
 * connections by Destination Connection ID, admits new connections
 * (Retry under handshake load, refusal when full or shutting down),
 * answers unknown short-header packets with a stateless reset and unknown
 * versions with Version Negotiation.
 */
#include "masque/masque_int.h"

#include <stdlib.h>
#include <string.h>

#include "addrkey.h"
#include "fnv.h"
#include "log.h"
#include "masque/steer.h"
#include "masque/uri.h"
#include "zg_err.h"

#define CID_BUCKETS 4096 /* power of two */
#define SRC_BUCKETS 1024 /* power of two */
#define RETRY_TOKEN_TIMEOUT (10 * UINT64_C(1000000000))

struct cid_node {
	struct cid_node *next;      /* bucket chain */
	struct cid_node *conn_next; /* the owning connection's list */
	ngtcp2_cid cid;
	struct masque_conn *c;
};

/* Connections counted against one key in one of the server's tables
 * (count_add); exists while n > 0. In srv->sources, handshakes in progress
 * from one source (addrkey_of ADDRKEY_SOURCE: an IPv4 address or an IPv6
 * /64), so there are never more than
 * max_handshakes of them: n counts all, nvalid those that proved the
 * address with a Retry token; only those can make the source refused, so a
 * forged source address can cost a real client a Retry round trip but
 * never its handshake. In srv->addrs, connections open from one exact
 * address (ADDRKEY_EXACT, max_conns_per_address; nvalid unused). */
struct src_count {
	struct src_count *next;
	uint8_t key[ADDRKEY_LEN];
	size_t n, nvalid;
};

#define NOTE_NS (10 * UINT64_C(1000000000)) /* refusals: a log line at most this often */

/* First flights answered without a connection (a Retry, a refusal) or
 * dropped by the io layer (masque_server_initial_dropped()). A client's
 * ClientHello may span several Initial datagrams (with an X25519MLKEM768
 * key share it takes two), all with the same DCID and SCID; the ones
 * after the first must not be answered, nor counted, again. Bounded and
 * stateless in what matters: one slot per keyed digest of (DCID, SCID,
 * exact address and port), direct-mapped, overwritten on collision and
 * good for FLIGHT_NS only, so a flood of Initials from forged sources
 * costs no memory (FLIGHT_SLOTS * 16 bytes, in the server) and an entry
 * pushed out early means only that the next datagram of its flight is
 * answered and counted again, as if it started a handshake (as every
 * datagram was before). The rest of a flight follows its first datagram
 * at once; a client sends the flight again only after its probe timeout
 * (about 1 s on a new path, RFC 9002 kInitialRtt 333 ms), and that copy
 * is answered anew, in case the answer was lost. */
#define FLIGHT_SLOTS 512 /* power of two */
#define FLIGHT_NS (100 * UINT64_C(1000000))

struct flight {
	uint64_t tag;      /* flight_tag() */
	masque_time until; /* 0: empty */
};

struct masque_server {
	struct masque_config cfg;
	struct masque_cbs cbs;
	void *ctx;
	uint8_t secret[32]; /* Retry tokens and stateless reset tokens */
	uint64_t seed;      /* CID hash seed */
	struct cid_node *buckets[CID_BUCKETS];
	struct masque_conn *conns;
	size_t nconns, nhandshaking;
	struct src_count *sources[SRC_BUCKETS]; /* handshakes by source */
	struct src_count *addrs[SRC_BUCKETS];   /* max_conns_per_address */
	/* the last log line about refused_address / request_timeouts: when,
	 * and their counts then */
	masque_time note_at;
	uint64_t note_refused, note_timeouts;
	int noted;
	size_t round_accepts; /* new connections this round */
	int round_over;       /* masque_server_end_round() */
	int goaway;
	struct masque_server_stats st;
	struct flight flights[FLIGHT_SLOTS];
	uint8_t buf[1500];
	/* One packet buffer for all its connections instead of one each
	 * (1.4 KB less per idle tunnel; issue 21). A connection fills it in
	 * an ngtcp2 write call and hands it to io->send (which copies it)
	 * right after; nothing in between enters another connection: ngtcp2
	 * and nghttp3 run none of the owner's callbacks (on_packet, ...)
	 * inside a write, only while reading, and the loop is one thread. */
	uint8_t *pktbuf;
};

static size_t cid_hash(const struct masque_server *srv, const uint8_t *p, size_t n)
{
	/* FNV-1a seeded with a per-process random value, so peers cannot
	 * aim connection IDs at one bucket. */
	uint64_t h = fnv64_bytes(UINT64_C(0xcbf29ce484222325) ^ srv->seed, p, n);

	return (size_t)(h ^ (h >> 29)) & (CID_BUCKETS - 1);
}

/* The digest of the flight an Initial from remote with hd's DCID and
 * SCID belongs to, keyed with the per-process seed. */
static uint64_t flight_tag(const struct masque_server *srv, const ngtcp2_pkt_hd *hd,
			   const struct sockaddr *remote)
{
	uint64_t h = (UINT64_C(0xcbf29ce484222325) ^ srv->seed) + 1; /* not cid_hash's */
	uint8_t key[ADDRKEY_LEN], port[2] = { 0, 0 }, n;

	(void)addrkey_of(remote, ADDRKEY_EXACT, key);
	if (remote->sa_family == AF_INET)
		memcpy(port, &((const struct sockaddr_in *)(const void *)remote)->sin_port, 2);
	else if (remote->sa_family == AF_INET6)
		memcpy(port, &((const struct sockaddr_in6 *)(const void *)remote)->sin6_port, 2);
	n = (uint8_t)hd->dcid.datalen;
	h = fnv64_bytes(h, &n, 1);
	h = fnv64_bytes(h, hd->dcid.data, hd->dcid.datalen);
	n = (uint8_t)hd->scid.datalen;
	h = fnv64_bytes(h, &n, 1);
	h = fnv64_bytes(h, hd->scid.data, hd->scid.datalen);
	h = fnv64_bytes(h, key, sizeof(key));
	h = fnv64_bytes(h, port, sizeof(port));
	return h ^ (h >> 29);
}

/* 1 when the flight of this Initial was answered or dropped less than
 * FLIGHT_NS ago. */
static int flight_seen(const struct masque_server *srv, const ngtcp2_pkt_hd *hd,
		       const struct sockaddr *remote, masque_time now)
{
	uint64_t tag = flight_tag(srv, hd, remote);
	const struct flight *f = &srv->flights[tag & (FLIGHT_SLOTS - 1)];

	return f->until != 0 && now < f->until && f->tag == tag;
}

/* This Initial's flight was answered (or dropped): the rest of it is not. */
static void flight_note(struct masque_server *srv, const ngtcp2_pkt_hd *hd,
			const struct sockaddr *remote, masque_time now)
{
	uint64_t tag = flight_tag(srv, hd, remote);
	struct flight *f = &srv->flights[tag & (FLIGHT_SLOTS - 1)];

	f->tag = tag;
	f->until = now + FLIGHT_NS;
}

static struct masque_conn *cid_find(const struct masque_server *srv, const uint8_t *p, size_t n)
{
	const struct cid_node *e;

	for (e = srv->buckets[cid_hash(srv, p, n)]; e != NULL; e = e->next)
		if (e->cid.datalen == n && memcmp(e->cid.data, p, n) == 0)
			return e->c;
	return NULL;
}

static int cid_add(struct masque_server *srv, struct masque_conn *c, const ngtcp2_cid *cid)
{
	struct cid_node *e = malloc(sizeof(*e));
	size_t b;

	if (e == NULL)
		return ZG_ERR_NOMEM;
	e->cid = *cid;
	e->c = c;
	b = cid_hash(srv, cid->data, cid->datalen);
	e->next = srv->buckets[b];
	srv->buckets[b] = e;
	e->conn_next = c->cids;
	c->cids = e;
	return 0;
}

static void cid_unlink_bucket(struct masque_server *srv, struct cid_node *e)
{
	struct cid_node **pp;

	for (pp = &srv->buckets[cid_hash(srv, e->cid.data, e->cid.datalen)]; *pp != NULL;
	     pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			return;
		}
	}
}

void masque_server_cid(const struct masque_server *srv, uint8_t *cid, size_t len)
{
	masque_random(cid, len);
	if (len > 0)
		cid[0] = steer_cid_byte(cid[0], srv->cfg.worker_index, srv->cfg.nworkers);
}

int masque_server_new_cid(struct masque_server *srv, struct masque_conn *c, const ngtcp2_cid *cid,
			  uint8_t *token)
{
	if (ngtcp2_crypto_generate_stateless_reset_token(token, srv->secret, sizeof(srv->secret),
							 cid) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return cid_add(srv, c, cid) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

void masque_server_remove_cid(struct masque_server *srv, const ngtcp2_cid *cid)
{
	struct masque_conn *c = cid_find(srv, cid->data, cid->datalen);
	struct cid_node **pp, *e;

	if (c == NULL)
		return;
	for (pp = &c->cids; (e = *pp) != NULL; pp = &e->conn_next) {
		if (ngtcp2_cid_eq(&e->cid, cid)) {
			*pp = e->conn_next;
			cid_unlink_bucket(srv, e);
			free(e);
			return;
		}
	}
}

/* The entry for key in table (one of srv's), or where it would go. */
static struct src_count **count_slot(struct masque_server *srv, struct src_count **table,
				     const uint8_t key[ADDRKEY_LEN])
{
	struct src_count **pp;

	for (pp = &table[cid_hash(srv, key, ADDRKEY_LEN) & (SRC_BUCKETS - 1)]; *pp != NULL;
	     pp = &(*pp)->next)
		if (memcmp((*pp)->key, key, ADDRKEY_LEN) == 0)
			break;
	return pp;
}

/* Counts one more connection against key in table. Returns its entry, or
 * NULL out of memory (nothing counted). */
static struct src_count *count_add(struct masque_server *srv, struct src_count **table,
				   const uint8_t key[ADDRKEY_LEN])
{
	struct src_count **pp = count_slot(srv, table, key);

	if (*pp == NULL) {
		*pp = calloc(1, sizeof(**pp));
		if (*pp == NULL)
			return NULL;
		memcpy((*pp)->key, key, ADDRKEY_LEN);
	}
	(*pp)->n++;
	return *pp;
}

/* One connection fewer against e (of table); e is freed at 0. */
static void count_release(struct masque_server *srv, struct src_count **table,
			  struct src_count *e)
{
	struct src_count **pp;

	if (--e->n > 0)
		return;
	pp = count_slot(srv, table, e->key);
	if (*pp == e) {
		*pp = e->next;
		free(e);
	}
}

static const struct src_count *src_find(struct masque_server *srv,
					const struct sockaddr *remote)
{
	uint8_t key[ADDRKEY_LEN];

	(void)addrkey_of(remote, ADDRKEY_SOURCE, key);
	return *count_slot(srv, srv->sources, key);
}

/* Counts c's handshake against its source. Returns 0 or ZG_ERR_NOMEM. */
static int src_add(struct masque_server *srv, struct masque_conn *c, const struct sockaddr *remote,
		   int validated)
{
	uint8_t key[ADDRKEY_LEN];
	struct src_count *e;

	(void)addrkey_of(remote, ADDRKEY_SOURCE, key);
	if ((e = count_add(srv, srv->sources, key)) == NULL)
		return ZG_ERR_NOMEM;
	if (validated)
		e->nvalid++;
	c->hs_src = e;
	c->hs_validated = validated;
	return 0;
}

/* c's handshake ended (done or gone): no longer counted. */
static void src_release(struct masque_server *srv, struct masque_conn *c)
{
	struct src_count *e = c->hs_src;

	if (e == NULL)
		return;
	c->hs_src = NULL;
	if (c->hs_validated)
		e->nvalid--;
	count_release(srv, srv->sources, e);
}

/* Connections open now from remote's address. */
static size_t addr_conns(struct masque_server *srv, const struct sockaddr *remote)
{
	uint8_t key[ADDRKEY_LEN];
	const struct src_count *e;

	(void)addrkey_of(remote, ADDRKEY_EXACT, key);
	e = *count_slot(srv, srv->addrs, key);
	return e != NULL ? e->n : 0;
}

/* Counts c against its address. Returns 0 or ZG_ERR_NOMEM. */
static int addr_add(struct masque_server *srv, struct masque_conn *c,
		    const struct sockaddr *remote)
{
	uint8_t key[ADDRKEY_LEN];

	(void)addrkey_of(remote, ADDRKEY_EXACT, key);
	if ((c->addr = count_add(srv, srv->addrs, key)) == NULL)
		return ZG_ERR_NOMEM;
	return 0;
}

static void addr_release(struct masque_server *srv, struct masque_conn *c)
{
	if (c->addr == NULL)
		return;
	count_release(srv, srv->addrs, c->addr);
	c->addr = NULL;
}

/* A connection was refused (max_conns_per_address) or closed without a
 * tunnel (request_timeout_ms): one log line at most every NOTE_NS, with
 * the counts since the last one. */
static void note_refusals(struct masque_server *srv)
{
	masque_time now = srv->cfg.io->now(srv->cfg.ioctx);

	if (srv->noted && now - srv->note_at < NOTE_NS)
		return;
	log_warnx("%llu connections refused (more than %zu from one address) and %llu closed "
		  "without a CONNECT-IP tunnel within %llu ms since the last report",
		  (unsigned long long)(srv->st.refused_address - srv->note_refused),
		  srv->cfg.max_conns_per_address,
		  (unsigned long long)(srv->st.request_timeouts - srv->note_timeouts),
		  (unsigned long long)srv->cfg.request_timeout_ms);
	srv->noted = 1;
	srv->note_at = now;
	srv->note_refused = srv->st.refused_address;
	srv->note_timeouts = srv->st.request_timeouts;
}

void masque_server_count_request_timeout(struct masque_server *srv)
{
	srv->st.request_timeouts++;
	note_refusals(srv);
}

void masque_server_new_round(struct masque_server *srv)
{
	srv->round_accepts = 0;
	srv->round_over = 0;
}

void masque_server_end_round(struct masque_server *srv)
{
	srv->round_over = 1;
}

void masque_server_unlink(struct masque_server *srv, struct masque_conn *c)
{
	struct cid_node *e, *n;

	for (e = c->cids; e != NULL; e = n) {
		n = e->conn_next;
		cid_unlink_bucket(srv, e);
		free(e);
	}
	c->cids = NULL;
	addr_release(srv, c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	srv->nconns--;
	if (!c->handshake_counted)
		srv->nhandshaking--;
	src_release(srv, c);
	c->srv = NULL;
}

void masque_server_handshake_done(struct masque_server *srv, struct masque_conn *c)
{
	if (!c->handshake_counted) {
		c->handshake_counted = 1;
		srv->nhandshaking--;
		zg_histo_observe(&srv->st.handshake, (uint64_t)c->st.handshake_ns / 1000u);
	}
	src_release(srv, c);
	if (srv->goaway)
		masque_conn_goaway(c);
}

void masque_server_count_refusal(struct masque_server *srv, int status)
{
	if (status == 400)
		srv->st.refused_bad_request++;
	else if (status == 503)
		srv->st.refused_goaway++;
	else
		srv->st.refused_internal++;
}

void masque_server_count_reject(struct masque_server *srv, enum tls_reject why)
{
	if ((unsigned)why < TLS_REJECT_COUNT)
		srv->st.reject[why]++;
}

void masque_server_count_hs_fail(struct masque_server *srv, enum masque_hs_fail why)
{
	if ((unsigned)why < MASQUE_HS_COUNT)
		srv->st.hs_fail[why]++;
}

int masque_server_new(const struct masque_config *cfg, const struct masque_cbs *cbs, void *ctx,
		      struct masque_server **psrv)
{
	struct masque_server *srv;
	char err[160];

	if (cfg == NULL || cbs == NULL || cfg->tls == NULL || cfg->io == NULL ||
	    cfg->uri_template == NULL || cfg->n_ext_capsules > CAPSULE_EXT_MAX)
		return ZG_ERR_INVAL;
	if (cfg->nworkers > STEER_MAX_WORKERS ||
	    (cfg->nworkers > 1 && cfg->worker_index >= cfg->nworkers)) {
		log_warnx("worker %u of %u: workers must be 1 to %d, the index below them",
			  cfg->worker_index, cfg->nworkers, STEER_MAX_WORKERS);
		return ZG_ERR_INVAL;
	}
	if (uri_template_check(cfg->uri_template, err, sizeof(err)) != 0) {
		log_warnx("uri_template \"%s\": %s", cfg->uri_template, err);
		return ZG_ERR_CONFIG;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return ZG_ERR_NOMEM;
	srv->cfg = *cfg;
	srv->pktbuf = malloc(masque_pktbuf_size(cfg));
	if (srv->pktbuf == NULL) {
		free(srv);
		return ZG_ERR_NOMEM;
	}
	if (srv->cfg.max_conns == 0)
		srv->cfg.max_conns = 4096;
	if (srv->cfg.retry_above == 0)
		srv->cfg.retry_above = 64;
	if (srv->cfg.max_handshakes == 0)
		srv->cfg.max_handshakes = srv->cfg.max_conns / 4 > 16 ? srv->cfg.max_conns / 4 : 16;
	if (srv->cfg.max_handshakes_per_source == 0)
		srv->cfg.max_handshakes_per_source = 32;
	srv->cbs = *cbs;
	srv->ctx = ctx;
	if (cfg->static_secret != NULL)
		memcpy(srv->secret, cfg->static_secret, sizeof(srv->secret));
	else
		masque_random(srv->secret, sizeof(srv->secret));
	masque_random((uint8_t *)&srv->seed, sizeof(srv->seed));
	masque_keylog_setup(cfg);
	*psrv = srv;
	return 0;
}

void masque_server_del(struct masque_server *srv)
{
	if (srv == NULL)
		return;
	while (srv->conns != NULL) {
		struct masque_conn *c = srv->conns;

		if (!c->closing) {
			c->closing = 1;
			masque_conn_clear_reason(c);
			masque_conn_set_reason(c, "relay shutting down");
			ngtcp2_ccerr_set_application_error(&c->ccerr, NGHTTP3_H3_NO_ERROR, NULL, 0);
		}
		masque_server_unlink(srv, c);
		if (!c->drained && c->qc != NULL && !c->close_sent) {
			ngtcp2_path_storage ps;
			ngtcp2_pkt_info pi;
			ngtcp2_ssize n;

			ngtcp2_path_storage_zero(&ps);
			n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, c->pktbuf,
							       c->pktbuf_size, &c->ccerr,
							       c->cfg->io->now(c->cfg->ioctx));
			if (n > 0)
				(void)c->cfg->io->send(c->cfg->ioctx, ps.path.local.addr,
						       (socklen_t)ps.path.local.addrlen,
						       ps.path.remote.addr,
						       (socklen_t)ps.path.remote.addrlen, c->pktbuf,
						       (size_t)n);
		}
		masque_conn_report_close(c);
		masque_conn_free(c);
	}
	free(srv->pktbuf);
	free(srv);
}

uint8_t *masque_server_pktbuf(struct masque_server *srv)
{
	return srv->pktbuf;
}

void masque_server_set_tls(struct masque_server *srv, WOLFSSL_CTX *tls)
{
	if (srv == NULL || tls == NULL)
		return;
	srv->cfg.tls = tls;
	masque_keylog_setup(&srv->cfg);
}

void masque_server_goaway(struct masque_server *srv)
{
	struct masque_conn *c, *n;

	srv->goaway = 1;
	for (c = srv->conns; c != NULL; c = n) {
		n = c->next;
		if (c->handshake_counted)
			masque_conn_goaway(c);
	}
}

size_t masque_server_conns(const struct masque_server *srv)
{
	return srv->nconns;
}

void masque_server_stats(const struct masque_server *srv, struct masque_server_stats *st)
{
	*st = srv->st;
}

static void srv_send(struct masque_server *srv, const struct sockaddr *local, socklen_t locallen,
		     const struct sockaddr *remote, socklen_t remotelen, size_t n)
{
	(void)srv->cfg.io->send(srv->cfg.ioctx, local, locallen, remote, remotelen, srv->buf, n);
}

static void send_version_negotiation(struct masque_server *srv, const ngtcp2_version_cid *vc,
				     const struct sockaddr *local, socklen_t locallen,
				     const struct sockaddr *remote, socklen_t remotelen)
{
	uint32_t sv[1] = { NGTCP2_PROTO_VER_V1 };
	uint8_t r;
	ngtcp2_ssize n;

	masque_random(&r, 1);
	n = ngtcp2_pkt_write_version_negotiation(srv->buf, sizeof(srv->buf), r, vc->scid,
						 vc->scidlen, vc->dcid, vc->dcidlen, sv, 1);
	if (n > 0)
		srv_send(srv, local, locallen, remote, remotelen, (size_t)n);
}

static void send_stateless_reset(struct masque_server *srv, const ngtcp2_version_cid *vc,
				 size_t pktlen, const struct sockaddr *local, socklen_t locallen,
				 const struct sockaddr *remote, socklen_t remotelen)
{
	ngtcp2_stateless_reset_token tok;
	uint8_t rnd[64];
	size_t randlen;
	ngtcp2_cid cid;
	ngtcp2_ssize n;

	/* Smaller than the packet that caused it (RFC 9000 §10.3.3), so two
	 * endpoints cannot loop; too small a trigger gets nothing. */
	if (pktlen < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN + 1)
		return;
	randlen = pktlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN - 1;
	if (randlen > sizeof(rnd))
		randlen = sizeof(rnd);
	ngtcp2_cid_init(&cid, vc->dcid, vc->dcidlen);
	if (ngtcp2_crypto_generate_stateless_reset_token(tok.data, srv->secret,
							 sizeof(srv->secret), &cid) != 0)
		return;
	masque_random(rnd, randlen);
	n = ngtcp2_pkt_write_stateless_reset2(srv->buf, sizeof(srv->buf), &tok, rnd, randlen);
	if (n > 0) {
		srv->st.stateless_resets++;
		srv_send(srv, local, locallen, remote, remotelen, (size_t)n);
	}
}

static void send_retry(struct masque_server *srv, const ngtcp2_pkt_hd *hd, masque_time now,
		       const struct sockaddr *local, socklen_t locallen,
		       const struct sockaddr *remote, socklen_t remotelen)
{
	uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2];
	ngtcp2_cid scid;
	ngtcp2_ssize tlen, n;

	scid.datalen = MASQUE_CIDLEN;
	masque_server_cid(srv, scid.data, scid.datalen);
	tlen = ngtcp2_crypto_generate_retry_token2(token, srv->secret, sizeof(srv->secret),
						   hd->version, (const ngtcp2_sockaddr *)remote,
						   remotelen, &scid, &hd->dcid, now);
	if (tlen < 0)
		return;
	n = ngtcp2_crypto_write_retry(srv->buf, sizeof(srv->buf), hd->version, &hd->scid, &scid,
				      &hd->dcid, token, (size_t)tlen);
	if (n > 0) {
		srv->st.retries_sent++;
		srv_send(srv, local, locallen, remote, remotelen, (size_t)n);
	}
}

static void send_refusal(struct masque_server *srv, const ngtcp2_pkt_hd *hd, uint64_t code,
			 const char *why, const struct sockaddr *local, socklen_t locallen,
			 const struct sockaddr *remote, socklen_t remotelen)
{
	ngtcp2_ssize n;

	n = ngtcp2_crypto_write_connection_close(srv->buf, sizeof(srv->buf), hd->version, &hd->scid,
						 &hd->dcid, code, (const uint8_t *)why, strlen(why));
	if (n > 0)
		srv_send(srv, local, locallen, remote, remotelen, (size_t)n);
}

/* A new connection's first datagram. Cheap refusals (full, busy, a Retry)
 * are answered at once, once per first flight (struct flight); only the
 * connection itself, whose handshake costs a signature and the client
 * certificate's verification, counts against the round. The rest of an
 * accepted flight finds the connection by its DCID. Returns 0 or
 * MASQUE_DEFERRED. */
static int accept_conn(struct masque_server *srv, const struct sockaddr *local,
		       socklen_t locallen, const struct sockaddr *remote, socklen_t remotelen,
		       const uint8_t *pkt, size_t len)
{
	ngtcp2_pkt_hd hd;
	ngtcp2_cid odcid, scid;
	uint8_t reset_token[NGTCP2_STATELESS_RESET_TOKENLEN];
	const ngtcp2_cid *po = NULL;
	struct masque_conn *c;
	masque_time now = srv->cfg.io->now(srv->cfg.ioctx);
	const struct src_count *hs;
	size_t from_src, valid_from_src;

	if (ngtcp2_accept(&hd, pkt, len) != 0) {
		srv->st.bad_packets++;
		return 0;
	}
	if (flight_seen(srv, &hd, remote, now)) {
		/* the rest of a first flight whose first datagram was answered */
		srv->st.initials_repeat++;
		return 0;
	}
	if (srv->goaway || srv->nconns >= srv->cfg.max_conns) {
		flight_note(srv, &hd, remote, now);
		srv->st.refused_full++;
		send_refusal(srv, &hd, NGTCP2_CONNECTION_REFUSED,
			     srv->goaway ? "relay is shutting down" : "relay is full", local, locallen,
			     remote, remotelen);
		return 0;
	}
	if (srv->cfg.max_conns_per_address != 0 &&
	    addr_conns(srv, remote) >= srv->cfg.max_conns_per_address) {
		flight_note(srv, &hd, remote, now);
		srv->st.refused_address++;
		send_refusal(srv, &hd, NGTCP2_CONNECTION_REFUSED,
			     "too many connections from this address", local, locallen, remote,
			     remotelen);
		note_refusals(srv);
		return 0;
	}
	hs = src_find(srv, remote);
	from_src = hs != NULL ? hs->n : 0;
	valid_from_src = hs != NULL ? hs->nvalid : 0;
	if (hd.tokenlen > 0 && hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2) {
		if (ngtcp2_crypto_verify_retry_token2(&odcid, hd.token, hd.tokenlen, srv->secret,
						      sizeof(srv->secret), hd.version,
						      (const ngtcp2_sockaddr *)remote, remotelen,
						      &hd.dcid, RETRY_TOKEN_TIMEOUT, now) != 0) {
			flight_note(srv, &hd, remote, now);
			srv->st.bad_packets++;
			send_refusal(srv, &hd, NGTCP2_INVALID_TOKEN, "invalid Retry token", local,
				     locallen, remote, remotelen);
			return 0;
		}
		po = &odcid;
	} else if (!srv->cfg.retry_off &&
		   (srv->cfg.retry_always || srv->nhandshaking >= srv->cfg.retry_above ||
		    from_src >= srv->cfg.max_handshakes_per_source)) {
		/* Under handshake load, or from a busy source: make the client
		 * prove its address first (a forged source cannot, so it cannot
		 * use up another address's handshakes). */
		flight_note(srv, &hd, remote, now);
		if (from_src >= srv->cfg.max_handshakes_per_source)
			srv->st.retries_source++;
		send_retry(srv, &hd, now, local, locallen, remote, remotelen);
		return 0;
	} else {
		hd.token = NULL;
		hd.tokenlen = 0;
	}
	if (srv->nhandshaking >= srv->cfg.max_handshakes ||
	    (po != NULL ? valid_from_src : from_src) >= srv->cfg.max_handshakes_per_source) {
		/* the rest of max_conns stays for connections past their
		 * handshake; one source gets its share only */
		int busy = srv->nhandshaking >= srv->cfg.max_handshakes;

		flight_note(srv, &hd, remote, now);
		if (busy)
			srv->st.refused_handshakes++;
		else
			srv->st.refused_source++;
		send_refusal(srv, &hd, NGTCP2_CONNECTION_REFUSED,
			     busy ? "relay is busy, retry later" : "too many handshakes from this address", local, locallen, remote,
			     remotelen);
		return 0;
	}
	if (srv->cfg.accepts_per_round != 0 &&
	    (srv->round_over || srv->round_accepts >= srv->cfg.accepts_per_round)) {
		srv->st.deferred++;
		return MASQUE_DEFERRED;
	}
	scid.datalen = MASQUE_CIDLEN;
	masque_server_cid(srv, scid.data, scid.datalen);
	if (ngtcp2_crypto_generate_stateless_reset_token(reset_token, srv->secret,
							 sizeof(srv->secret), &scid) != 0)
		return 0;
	if (masque_conn_server_new(srv, &srv->cfg, &srv->cbs, srv->ctx, local, locallen, remote,
				   remotelen, &hd, po, &scid, reset_token, &c) != 0) {
		log_warnx("cannot create a connection: out of memory");
		return 0;
	}
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	srv->nhandshaking++;
	srv->round_accepts++;
	srv->st.accepted++;
	/* The client addresses us by its chosen DCID until it learns ours. */
	if (src_add(srv, c, remote, po != NULL) != 0 ||
	    (srv->cfg.max_conns_per_address != 0 && addr_add(srv, c, remote) != 0) ||
	    cid_add(srv, c, &scid) != 0 ||
	    cid_add(srv, c, &hd.dcid) != 0) {
		c->closing = 1;
		masque_conn_set_reason(c, "out of memory");
	}
	(void)masque_conn_input(c, local, locallen, remote, remotelen, pkt, len);
	return 0;
}

void masque_server_initial_dropped(struct masque_server *srv, const struct sockaddr *remote,
				   const uint8_t *pkt, size_t len)
{
	ngtcp2_pkt_hd hd;

	if (ngtcp2_accept(&hd, pkt, len) == 0)
		flight_note(srv, &hd, remote, srv->cfg.io->now(srv->cfg.ioctx));
}

int masque_server_input(struct masque_server *srv, const struct sockaddr *local,
			socklen_t locallen, const struct sockaddr *remote, socklen_t remotelen,
			const uint8_t *pkt, size_t len)
{
	ngtcp2_version_cid vc;
	struct masque_conn *c;
	int rv;

	rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, MASQUE_CIDLEN);
	if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
		send_version_negotiation(srv, &vc, local, locallen, remote, remotelen);
		return 0;
	}
	if (rv != 0) {
		srv->st.bad_packets++;
		return 0;
	}
	c = cid_find(srv, vc.dcid, vc.dcidlen);
	if (c != NULL) {
		(void)masque_conn_input(c, local, locallen, remote, remotelen, pkt, len);
		return 0;
	}
	if (vc.version == 0) {
		/* Short header for a connection we do not know. */
		send_stateless_reset(srv, &vc, len, local, locallen, remote, remotelen);
		return 0;
	}
	return accept_conn(srv, local, locallen, remote, remotelen, pkt, len);
}
