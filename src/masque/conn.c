/*
 * conn.c — one QUIC connection carrying HTTP/3 and one CONNECT-IP tunnel,
 * for either role (see masque.h). The server side (connection ID table,
 * Retry, stateless reset) is in server.c; both share struct masque_conn
 * through masque_int.h.
 *
 * Re-entrancy: ngtcp2 and nghttp3 must not be entered while one of their
 * calls is running. Owner callbacks run inside such calls (on_packet runs
 * inside ngtcp2_conn_read_pkt), and the owner may answer at once (the
 * relay's stack emits a SYN-ACK or an ICMP error for the packet it just
 * got). So while c->busy is set, masque_conn_send() copies the packet to a
 * small bounded queue that is flushed when the outer call returns, and
 * closing is deferred the same way.
 */
#include "masque/masque_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_wolfssl.h>

#include "capsule.h"
#include "log.h"
#include "masque/aead.h"
#include "masque/uri.h"
#include "varint.h"
#include "zg_err.h"

#define H3_DATAGRAM_ERROR 0x33
#define TLS_ALERT_NO_APPLICATION_PROTOCOL 120 /* QUIC CRYPTO_ERROR 0x178 */
#define TLS_ALERT_UNEXPECTED_MESSAGE 10       /* QUIC CRYPTO_ERROR 0x10a */
#define TLS_ALERT_PROTOCOL_VERSION 70
#define TLS_ALERT_CERTIFICATE_REQUIRED 116
#define QUIC_TRANSPORT_PARAMETER_ERROR 0x08
#define QUIC_CRYPTO_ERROR 0x100
#define NS_PER_MS UINT64_C(1000000)
/* How long an ACK may wait for a packet to ride on (see arm_timer). Well
 * below the max_ack_delay we advertise (ngtcp2's default, 25 ms), which is
 * what the peer's loss detection allows for. */
#define ACK_COALESCE_NS (NS_PER_MS / 2)
/* Ack-eliciting packets received before an ACK goes at once (ngtcp2's
 * default, RFC 9000's suggestion, is 2). Every second packet of a short
 * exchange through the tunnel cost an ACK alone; a bulk sender is ACKed
 * every 10 packets (as Google's QUIC does), packets out of order and the
 * ACK delay still make ACKs go sooner. */
#define ACK_THRESH 10

static FILE *keylog_fp;

void masque_random(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = getrandom(p, n, 0);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			/* getrandom(2) cannot fail otherwise for n <= 256 with
			 * flags 0 on Linux >= 3.17; abort rather than run with
			 * predictable connection IDs and tokens. */
			log_err("getrandom");
			abort();
		}
		p += k;
		n -= (size_t)k;
	}
}

/* While a received packet is handled (masque_conn_input() to the end of
 * conn_after()), every call into ngtcp2 uses the time it arrived: the
 * packet's own handling, however long (a datagram handed to the TUN or
 * the stack), must not count as ACK delay. Otherwise the ACK delay
 * (smoothed RTT / 8) ran out before conn_write() and each packet got an
 * ACK alone at once. */
static masque_time now_ts(const struct masque_conn *c)
{
	if (c->input_ts != 0)
		return c->input_ts;
	return c->cfg->io->now(c->cfg->ioctx);
}

/* ---------------------------------------------------------------------- */
/* small helpers                                                          */

/* Names of the TLS alerts either end sends when it refuses the other. */
static const char *tls_alert_name(uint8_t a)
{
	switch (a) {
	case 10:
		return "unexpected message";
	case 40:
		return "handshake failure";
	case 42:
		return "bad certificate";
	case 43:
		return "unsupported certificate";
	case 44:
		return "certificate revoked";
	case 45:
		return "certificate expired";
	case 46:
		return "certificate unknown";
	case 47:
		return "illegal parameter";
	case 48:
		return "unknown CA";
	case 50:
		return "decode error";
	case 51:
		return "decrypt error";
	case 70:
		return "protocol version";
	case 80:
		return "internal error";
	case 109:
		return "missing extension";
	case 116:
		return "certificate required";
	case 120:
		return "no application protocol";
	default:
		return "see RFC 8446 §6";
	}
}

static const char *const hs_fail_names[MASQUE_HS_COUNT] = {
	"none",
	"alpn",
	"version",
	"transport_parameters",
	"tls",
	"client_aborted",
	"protocol",
};

const char *masque_hs_fail_name(enum masque_hs_fail f)
{
	return (unsigned)f < MASQUE_HS_COUNT ? hs_fail_names[f] : "protocol";
}

void masque_conn_set_reason(struct masque_conn *c, const char *fmt, ...)
{
	char buf[sizeof(((struct masque_close_info *)0)->reason)];
	va_list ap;

	if (c->ci.reason_set)
		return; /* keep the first cause */
	c->ci.reason_set = 1;
	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->ci.reason = strdup(buf); /* NULL: said as lost in close_info */
}

void masque_conn_clear_reason(struct masque_conn *c)
{
	free(c->ci.reason);
	c->ci.reason = NULL;
	c->ci.reason_set = 0;
}

void masque_conn_report_close(struct masque_conn *c)
{
	const struct masque_close_state *s = &c->ci;
	struct masque_close_info out;

	if (c->cbs->on_close == NULL)
		return;
	out = (struct masque_close_info){ .error = s->error,
					  .app_error = s->app_error,
					  .idle = s->idle,
					  .status = s->status,
					  .reject = s->reject,
					  .hs_fail = s->hs_fail };
	if (s->reason != NULL)
		snprintf(out.reason, sizeof(out.reason), "%s", s->reason);
	else if (s->reason_set)
		snprintf(out.reason, sizeof(out.reason), "(reason lost: out of memory)");
	c->cbs->on_close(c, &out, c->ctx);
}

/* Marks c for closing with an HTTP/3 application error; the close is sent
 * when the current library call returns. */
static void close_app(struct masque_conn *c, uint64_t app_error, int error, const char *why)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (c->ci.error == 0)
		c->ci.error = error;
	c->ci.app_error = app_error;
	masque_conn_set_reason(c, "%s", why);
	ngtcp2_ccerr_set_application_error(&c->ccerr, app_error, (const uint8_t *)why, strlen(why));
}

static int tunnel_ready(const struct masque_conn *c)
{
	return c->tunnel_sid >= 0 && c->tunnel_open && !c->closing;
}

/* QUIC datagrams may carry HTTP datagrams: both SETTINGS said
 * H3_DATAGRAM = 1 and the peer's max_datagram_frame_size is non-zero (C13). */
static int dgram_ok(const struct masque_conn *c)
{
	const ngtcp2_transport_params *tp;

	if (c->cfg->no_datagrams || !c->peer_settings || !c->peer_h3_datagram)
		return 0;
	tp = ngtcp2_conn_get_remote_transport_params2(c->qc);
	return tp != NULL && tp->max_datagram_frame_size > 0;
}

size_t masque_conn_max_packet(const struct masque_conn *c)
{
	const ngtcp2_transport_params *tp;
	size_t udp, frame, qsid, over;

	if (!tunnel_ready(c))
		return 0;
	if (!dgram_ok(c))
		return 65535; /* capsules: bounded by the IP packet size */
	udp = ngtcp2_conn_get_path_max_tx_udp_payload_size2(c->qc);
	tp = ngtcp2_conn_get_remote_transport_params2(c->qc);
	/* Short header: 1 + DCID + up to 4 bytes of packet number; AEAD tag
	 * 16; DATAGRAM frame type 1 + length up to 2. */
	over = 1 + ngtcp2_conn_get_dcid2(c->qc)->datalen + 4 + 16 + 3;
	if (udp <= over)
		return 0;
	frame = udp - over;
	if (tp->max_datagram_frame_size < frame + 3)
		frame = tp->max_datagram_frame_size > 3 ? (size_t)tp->max_datagram_frame_size - 3 : 0;
	qsid = varint_len((uint64_t)c->tunnel_sid / 4) + 1; /* + Context ID 0 */
	return frame > qsid ? frame - qsid : 0;
}

/* ---------------------------------------------------------------------- */
/* writing packets                                                        */

static void conn_send(struct masque_conn *c, const ngtcp2_path *path, const uint8_t *data,
		      size_t len)
{
	const struct masque_io *io = c->cfg->io;

	(void)io->send(c->cfg->ioctx, path->local.addr, (socklen_t)path->local.addrlen,
		       path->remote.addr, (socklen_t)path->remote.addrlen, data, len);
}

/* Server: when c is closed for having no tunnel (request_timeout_ms),
 * or 0 (no deadline, or the tunnel is open). */
static masque_time request_deadline(const struct masque_conn *c)
{
	if (c->srv == NULL || c->cfg->request_timeout_ms == 0 || c->tunnel_open || c->closing)
		return 0;
	return c->created + c->cfg->request_timeout_ms * NS_PER_MS;
}

static void arm_timer(struct masque_conn *c)
{
	ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->qc), now;
	masque_time rd = request_deadline(c);

	/* Queued packets are flushed by the next ACK or timer. With nothing
	 * in flight no ACK will come, and ngtcp2's own timers can be seconds
	 * away: come back within a millisecond so the queue always moves. */
	if (c->pending_len > 0) {
		ngtcp2_conn_info ci;

		ngtcp2_conn_get_conn_info2(c->qc, &ci);
		if (ci.bytes_in_flight == 0 && exp > now_ts(c) + NS_PER_MS)
			exp = now_ts(c) + NS_PER_MS;
	} else if (!c->write_blocked && ngtcp2_conn_get_handshake_completed(c->qc)) {
		/* Nothing waits to be sent, so a deadline this close is ngtcp2's
		 * ACK delay (smoothed RTT / 8: tens of microseconds here; loss
		 * timers are at least 1 ms, pacing only holds back data). Firing
		 * it sends an ACK alone, one more packet each way per short
		 * exchange. Held back a little, the ACK (its delay long
		 * elapsed) rides on the next packet this end sends — the SYN-ACK
		 * or the answer that is usually on its way — and goes alone
		 * only when nothing comes. */
		now = now_ts(c);
		if (exp > now && exp < now + ACK_COALESCE_NS)
			exp = now + ACK_COALESCE_NS;
	}
	if (rd != 0 && rd < exp)
		exp = rd;
	c->cfg->io->timer_arm(c->cfg->ioctx, c->timer, exp);
}

/* Writes every packet ngtcp2 and nghttp3 have ready. Returns 0 or a
 * negative ZG error after which the connection must be closed. */
static int conn_write(struct masque_conn *c)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	masque_time ts = now_ts(c);

	ngtcp2_path_storage_zero(&ps);
	c->write_blocked = 0;
	for (;;) {
		int64_t sid = -1;
		int fin = 0;
		nghttp3_vec vec[16];
		nghttp3_ssize sveccnt = 0;
		ngtcp2_ssize ndatalen = -1, nwrite;
		uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;

		if (c->h3 != NULL && ngtcp2_conn_get_max_data_left2(c->qc) > 0) {
			sveccnt = nghttp3_conn_writev_stream(c->h3, &sid, &fin, vec, 16);
			if (sveccnt < 0) {
				close_app(c, nghttp3_err_infer_quic_app_error_code((int)sveccnt),
					  ZG_ERR_STATE, nghttp3_strerror((int)sveccnt));
				return ZG_ERR_STATE;
			}
		}
		if (fin)
			flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
		c->busy++;
		nwrite = ngtcp2_conn_writev_stream(c->qc, &ps.path, &pi, c->pktbuf, c->pktbuf_size,
						   &ndatalen, flags, sid, (const ngtcp2_vec *)vec,
						   (size_t)sveccnt, ts);
		c->busy--;
		if (nwrite < 0) {
			switch (nwrite) {
			case NGTCP2_ERR_STREAM_DATA_BLOCKED:
				nghttp3_conn_block_stream(c->h3, sid);
				continue;
			case NGTCP2_ERR_STREAM_SHUT_WR:
				nghttp3_conn_shutdown_stream_write(c->h3, sid);
				continue;
			case NGTCP2_ERR_WRITE_MORE:
				if (nghttp3_conn_add_write_offset(c->h3, sid, (uint64_t)ndatalen) != 0)
					return ZG_ERR_STATE;
				continue;
			default:
				if (!c->closing) {
					c->closing = 1;
					c->ci.error = ZG_ERR_STATE;
					masque_conn_set_reason(c, "QUIC: %s", ngtcp2_strerror((int)nwrite));
					ngtcp2_ccerr_set_liberr(&c->ccerr, (int)nwrite, NULL, 0);
				}
				return ZG_ERR_STATE;
			}
		}
		if (ndatalen >= 0 && sid >= 0 &&
		    nghttp3_conn_add_write_offset(c->h3, sid, (uint64_t)ndatalen) != 0)
			return ZG_ERR_STATE;
		if (nwrite == 0)
			break;
		conn_send(c, &ps.path, c->pktbuf, (size_t)nwrite);
	}
	ngtcp2_conn_update_pkt_tx_time(c->qc, ts);
	return 0;
}

/* Sends CONNECTION_CLOSE for c->ccerr (once). */
static void write_close(struct masque_conn *c)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n;

	if (c->close_sent || c->qc == NULL || ngtcp2_conn_in_closing_period2(c->qc) ||
	    ngtcp2_conn_in_draining_period2(c->qc))
		return;
	c->close_sent = 1;
	ngtcp2_path_storage_zero(&ps);
	n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, c->pktbuf, c->pktbuf_size,
					       &c->ccerr, now_ts(c));
	if (n > 0)
		conn_send(c, &ps.path, c->pktbuf, (size_t)n);
}

/* Frees everything c holds after on_close. */
void masque_conn_free(struct masque_conn *c)
{
	struct mstream *s, *n;

	if (c == NULL)
		return;
	for (s = c->streams; s != NULL; s = n) {
		n = s->next;
		free(s);
	}
	if (c->timer != NULL)
		c->cfg->io->timer_free(c->cfg->ioctx, c->timer);
	nghttp3_conn_del(c->h3);
	ngtcp2_conn_del(c->qc);
	if (c->ssl != NULL)
		wolfSSL_free(c->ssl);
	free(c->cert_der);
	free(c->ids);
	free(c->ci.reason);
	sendq_free(&c->sendq);
	free(c->capbuf);
	free(c->pending);
	if (c->pktbuf_own)
		free(c->pktbuf);
	if (c->qlog != NULL)
		fclose(c->qlog);
	free(c);
}

/* Ends c: CONNECTION_CLOSE if not yet sent, on_close, unlink, free.
 * Must run outside every ngtcp2/nghttp3 call. */
static void conn_finish(struct masque_conn *c)
{
	if (!c->drained)
		write_close(c);
	if (!c->ci.reason_set)
		masque_conn_set_reason(c, "closed");
	if (c->srv != NULL)
		masque_server_unlink(c->srv, c);
	masque_conn_report_close(c);
	masque_conn_free(c);
}

static int send_now(struct masque_conn *c, const uint8_t *pkt, size_t len);

/* Sends queued packets in order until QUIC refuses one (congestion window
 * or pacing: the rest waits for the next ACK or timer). */
static void flush_pending(struct masque_conn *c)
{
	size_t off = 0;

	while (off < c->pending_len && !c->closing) {
		uint16_t len;
		int r;

		memcpy(&len, c->pending + off, sizeof(len));
		r = send_now(c, c->pending + off + sizeof(len), len);
		if (r == ZG_ERR_LIMIT && c->pending_blocked)
			break;
		off += sizeof(len) + len;
	}
	if (c->closing)
		off = c->pending_len;
	memmove(c->pending, c->pending + off, c->pending_len - off);
	c->pending_len -= off;
	if (c->congested && c->pending_len < c->pending_cap / 8 && !c->closing) {
		c->congested = 0;
		if (c->cbs->on_writable != NULL)
			c->cbs->on_writable(c, c->ctx);
	}
}

/* Server, after a completed handshake (outside every library call): frees
 * the TLS object, about 12 KB of a connection's 25 (issue 21, memory per
 * idle tunnel). Nothing needs it any more: ngtcp2 keeps the 1-RTT
 * packet protection and the traffic secrets, from which a key update
 * derives the next keys without TLS (ngtcp2_crypto_update_key); the
 * identity and the certificate were copied (q_handshake_completed); and
 * a client sends no TLS message after its Finished (q_recv_crypto_data).
 * A client keeps its TLS object: the relay's NewSessionTicket comes after
 * the handshake. */
static void release_tls(struct masque_conn *c)
{
	if (!c->is_server || !c->tls_done || c->ssl == NULL || c->busy)
		return;
	ngtcp2_conn_set_tls_native_handle(c->qc, NULL);
	wolfSSL_free(c->ssl);
	c->ssl = NULL;
}

/* After input or a timer: flush, write, close if needed. Returns 1 when c
 * is gone. */
static int conn_after(struct masque_conn *c)
{
	release_tls(c);
	if (c->pending_len > 0)
		flush_pending(c);
	if (!c->closing && !c->drained && conn_write(c) == 0) {
		arm_timer(c);
		c->input_ts = 0;
		return 0;
	}
	c->input_ts = 0;
	conn_finish(c);
	return 1;
}

/* ---------------------------------------------------------------------- */
/* capsules                                                               */

/* Queues whole capsules on the tunnel stream and wakes nghttp3. */
static int queue_capsule(struct masque_conn *c, const uint8_t *const *data, const size_t *len,
			 size_t n)
{
	int r = sendq_append(&c->sendq, data, len, n);

	if (r != 0)
		return r;
	if (c->tunnel_sid >= 0 && c->h3 != NULL)
		(void)nghttp3_conn_resume_stream(c->h3, c->tunnel_sid);
	return 0;
}

static int queue_encoded(struct masque_conn *c, const uint8_t *buf, size_t len)
{
	const uint8_t *d[1] = { buf };
	size_t l[1] = { len };

	return queue_capsule(c, d, l, 1);
}

/* Outside a library call, writes what was just queued now rather than at
 * the next packet or timer. */
static void kick(struct masque_conn *c)
{
	if (c->busy)
		return;
	if (c->closing || conn_write(c) != 0) {
		c->close_now = 1;
		c->cfg->io->timer_arm(c->cfg->ioctx, c->timer, 0);
	} else {
		arm_timer(c);
	}
}

int masque_conn_send_addresses(struct masque_conn *c, const struct cip_addr *a, size_t n)
{
	uint8_t buf[16 + MASQUE_MAX_ADDRS * 27];
	uint8_t *p = buf;
	int r;

	if (c->tunnel_sid < 0 || c->closing)
		return ZG_ERR_STATE;
	r = cip_addr_assign_encode(&p, buf + sizeof(buf), a, n);
	if (r == 0)
		r = queue_encoded(c, buf, (size_t)(p - buf));
	if (r == 0)
		kick(c);
	return r;
}

int masque_conn_send_routes(struct masque_conn *c, const struct cip_route *r, size_t n)
{
	size_t cap = 16 + n * 34;
	uint8_t *buf, *p;
	int rv;

	if (c->tunnel_sid < 0 || c->closing)
		return ZG_ERR_STATE;
	if (n > MASQUE_MAX_ROUTES)
		return ZG_ERR_TOO_LARGE;
	buf = calloc(1, cap);
	if (buf == NULL)
		return ZG_ERR_NOMEM;
	p = buf;
	rv = cip_route_adv_encode(&p, buf + cap, r, n);
	if (rv == 0)
		rv = queue_encoded(c, buf, (size_t)(p - buf));
	free(buf);
	if (rv == 0)
		kick(c);
	if (rv == ZG_ERR_ORDER || rv == ZG_ERR_VERSION || rv == ZG_ERR_MALFORMED)
		rv = ZG_ERR_INVAL;
	return rv;
}

static int send_address_request(struct masque_conn *c)
{
	struct cip_addr req[2];
	uint8_t buf[64];
	uint8_t *p = buf;
	size_t n = c->cfg->nwant, i;
	int r;

	if (n == 0) {
		memset(&req[0], 0, sizeof(req[0]));
		req[0].version = 4;
		req[0].prefix_len = 32;
		n = 1;
	} else {
		memcpy(req, c->cfg->want, n * sizeof(req[0]));
	}
	for (i = 0; i < n; i++)
		req[i].request_id = ++c->next_request_id; /* non-zero, never reused (C09) */
	r = cip_addr_request_encode(&p, buf + sizeof(buf), req, n);
	if (r != 0)
		return r;
	return queue_encoded(c, buf, (size_t)(p - buf));
}

int masque_conn_send_capsule(struct masque_conn *c, uint64_t type, const uint8_t *value,
			     size_t len)
{
	uint8_t hdr[16];
	uint8_t *p = hdr;
	const uint8_t *d[2];
	size_t l[2];
	int r;

	if (c->tunnel_sid < 0 || c->closing || !c->tunnel_open)
		return ZG_ERR_STATE;
	if ((r = capsule_encode_header(&p, hdr + sizeof(hdr), type, len)) != 0)
		return r;
	d[0] = hdr;
	l[0] = (size_t)(p - hdr);
	d[1] = value;
	l[1] = len;
	r = queue_capsule(c, d, l, len ? 2 : 1);
	if (r == 0)
		kick(c);
	return r;
}

/* The tunnel's capsule parser: the CONNECT-IP types and the owner's
 * extension types (masque_config.ext_capsules). */
static void parser_init(struct masque_conn *c)
{
	size_t i;

	/* the assembly buffer is lent only while a split capsule needs it */
	capsule_parser_init(&c->cparser, NULL, MASQUE_CAPSULE_MAX, CAPSULE_MASK_CONNECT_IP);
	for (i = 0; i < c->cfg->n_ext_capsules && i < CAPSULE_EXT_MAX; i++)
		(void)capsule_parser_add_type(&c->cparser, c->cfg->ext_capsules[i]);
}

static void deliver_packet(struct masque_conn *c, const uint8_t *pkt, size_t len)
{
	c->st.pkts_in++;
	c->st.bytes_in += len;
	if (c->cbs->on_packet != NULL)
		c->cbs->on_packet(c, pkt, len, c->ctx);
}

/* One complete capsule from the peer on the tunnel stream. Returns 0 or a
 * negative error that aborts the tunnel. */
static int handle_capsule(struct masque_conn *c, const struct capsule *cap)
{
	struct cip_addr addrs[MASQUE_MAX_ADDRS], out[MASQUE_MAX_ADDRS];
	size_t n = 0, nout = 0;
	const uint8_t *payload;
	size_t plen;
	uint64_t ctxid;
	int r;

	switch (cap->type) {
	case CAPSULE_DATAGRAM:
		if (httpdg_decode_capsule_value(cap->value, cap->len, &ctxid, &payload, &plen) != 0)
			return ZG_ERR_MALFORMED;
		if (ctxid != HTTPDG_CONTEXT_IP) {
			c->st.drop_context++;
			return 0;
		}
		deliver_packet(c, payload, plen);
		return 0;
	case CAPSULE_ADDRESS_ASSIGN:
		r = cip_addr_assign_decode(cap->value, cap->len, addrs, MASQUE_MAX_ADDRS, &n);
		if (r != 0)
			return r;
		if (!c->is_server && c->cbs->on_addresses != NULL)
			c->cbs->on_addresses(c, addrs, n, c->ctx);
		return 0;
	case CAPSULE_ADDRESS_REQUEST:
		r = cip_addr_request_decode(cap->value, cap->len, addrs, MASQUE_MAX_ADDRS, &n);
		if (r != 0)
			return r; /* empty or Request ID 0: abort (C09) */
		if (!c->is_server || c->cbs->on_address_request == NULL)
			return 0;
		r = c->cbs->on_address_request(c, addrs, n, out, &nout, c->ctx);
		if (r != 0)
			return r;
		return masque_conn_send_addresses(c, out, nout);
	case CAPSULE_ROUTE_ADVERTISEMENT: {
		struct cip_route *routes = malloc(MASQUE_MAX_ROUTES * sizeof(*routes));

		if (routes == NULL)
			return ZG_ERR_NOMEM;
		r = cip_route_adv_decode(cap->value, cap->len, routes, MASQUE_MAX_ROUTES, &n);
		if (r == 0 && c->cbs->on_routes != NULL)
			c->cbs->on_routes(c, routes, n, c->ctx);
		free(routes);
		return r; /* a violation aborts the stream (C07) */
	}
	default:
		/* an extension type the owner asked for (parser_init) */
		if (c->cbs->on_capsule != NULL)
			return c->cbs->on_capsule(c, cap->type, cap->value, cap->len, c->ctx);
		return 0;
	}
}

/* The capsule type's name for a log line ("ROUTE_ADVERTISEMENT", "type
 * 0x1ca3f"), in buf. */
static const char *capsule_name(uint64_t type, char *buf, size_t len)
{
	switch (type) {
	case CAPSULE_DATAGRAM:
		return "DATAGRAM";
	case CAPSULE_ADDRESS_ASSIGN:
		return "ADDRESS_ASSIGN";
	case CAPSULE_ADDRESS_REQUEST:
		return "ADDRESS_REQUEST";
	case CAPSULE_ROUTE_ADVERTISEMENT:
		return "ROUTE_ADVERTISEMENT";
	default:
		(void)snprintf(buf, len, "type 0x%llx", (unsigned long long)type);
		return buf;
	}
}

static int feed_capsules(struct masque_conn *c, const uint8_t *data, size_t len)
{
	const uint8_t *p = data, *end = data + len;
	struct capsule cap;
	int r, handled = 0;

	for (;;) {
		r = capsule_parser_feed(&c->cparser, &p, end, &cap);
		if (r == CAPSULE_NEED_BUF) {
			if (c->capbuf == NULL && (c->capbuf = malloc(MASQUE_CAPSULE_MAX)) == NULL) {
				r = ZG_ERR_NOMEM;
				break;
			}
			c->capbuf_used = now_ts(c);
			(void)capsule_parser_set_buf(&c->cparser, c->capbuf);
			continue;
		}
		if (r != 1)
			break;
		r = handle_capsule(c, &cap);
		if (r != 0) {
			handled = 1;
			break;
		}
		if (c->closing)
			return 0;
	}
	if (r < 0) {
		char why[128], tb[32];

		if (handled)
			(void)snprintf(why, sizeof(why), "bad %s capsule from peer: %s",
				       capsule_name(cap.type, tb, sizeof(tb)), zg_strerror(r));
		else
			(void)snprintf(why, sizeof(why), "bad capsule framing from peer: %s",
				       zg_strerror(r));
		close_app(c, r == ZG_ERR_NOMEM ? NGHTTP3_H3_INTERNAL_ERROR : H3_DATAGRAM_ERROR, r,
			  why);
		return r;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* HTTP/3 request and response                                            */

static struct mstream *stream_find(struct masque_conn *c, int64_t sid)
{
	struct mstream *s;

	for (s = c->streams; s != NULL; s = s->next)
		if (s->sid == sid)
			return s;
	return NULL;
}

static struct mstream *stream_get(struct masque_conn *c, int64_t sid)
{
	struct mstream *s = stream_find(c, sid);

	if (s != NULL)
		return s;
	if (c->nstreams >= MASQUE_MAX_STREAMS)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->sid = sid;
	s->next = c->streams;
	c->streams = s;
	c->nstreams++;
	return s;
}

static void stream_drop(struct masque_conn *c, int64_t sid)
{
	struct mstream **pp, *s;

	for (pp = &c->streams; (s = *pp) != NULL; pp = &s->next) {
		if (s->sid == sid) {
			*pp = s->next;
			free(s);
			c->nstreams--;
			return;
		}
	}
}

static nghttp3_ssize read_capsules(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
				   uint32_t *pflags, void *ud, void *sud)
{
	struct masque_conn *c = ud;
	const uint8_t *ptr[16];
	size_t len[16], k, i;

	(void)h3;
	(void)sid;
	(void)sud;
	(void)pflags;
	if (veccnt > 16)
		veccnt = 16;
	k = sendq_next(&c->sendq, ptr, len, veccnt);
	if (k == 0)
		return NGHTTP3_ERR_WOULDBLOCK;
	for (i = 0; i < k; i++) {
		vec[i].base = (uint8_t *)(uintptr_t)ptr[i];
		vec[i].len = len[i];
	}
	return (nghttp3_ssize)k;
}

static nghttp3_nv mknv(const char *name, const char *value)
{
	nghttp3_nv nv;

	nv.name = (const uint8_t *)name;
	nv.namelen = strlen(name);
	nv.value = (const uint8_t *)value;
	nv.valuelen = strlen(value);
	nv.flags = NGHTTP3_NV_FLAG_NONE;
	return nv;
}

static int submit_status(struct masque_conn *c, int64_t sid, int status, const char *proxy_status)
{
	char code[8];
	nghttp3_nv nva[2];
	size_t n = 0;

	(void)snprintf(code, sizeof(code), "%d", status);
	nva[n++] = mknv(":status", code);
	if (proxy_status != NULL && proxy_status[0] != '\0')
		nva[n++] = mknv("proxy-status", proxy_status);
	return nghttp3_conn_submit_response(c->h3, sid, nva, n, NULL);
}

/* The value of a Structured Field boolean header is exactly "?1" (RFC
 * 8941 §3.3.6); parameters are allowed after it. */
static int sf_true(const char *v)
{
	return v[0] == '?' && v[1] == '1' && (v[2] == '\0' || v[2] == ';');
}

static int validate_request(struct masque_conn *c, struct mstream *s, struct masque_request *rq)
{
	struct uri_scope sc;

	if (s->bad)
		return 400;
	if (strcmp(s->method, "CONNECT") != 0 || strcmp(s->protocol, "connect-ip") != 0)
		return 400;
	if (strcmp(s->scheme, "https") != 0 || s->authority[0] == '\0' || s->path[0] != '/')
		return 400;
	if (!sf_true(s->capsule_protocol))
		return 400;
	if (uri_match(c->cfg->uri_template, s->path, &sc) != 0)
		return 400;
	memset(rq, 0, sizeof(*rq));
	(void)snprintf(rq->identity, sizeof(rq->identity), "%s", masque_conn_identity(c));
	memcpy(&rq->peer, &c->remote, c->remotelen);
	rq->peerlen = c->remotelen;
	(void)snprintf(rq->authority, sizeof(rq->authority), "%s", s->authority);
	(void)snprintf(rq->path, sizeof(rq->path), "%s", s->path);
	rq->any_target = sc.any_target;
	rq->target = sc.target;
	(void)snprintf(rq->dns, sizeof(rq->dns), "%s", sc.dns);
	rq->any_proto = sc.any_proto;
	rq->ipproto = sc.ipproto;
	return 200;
}

/* Answers the request on stream sid: opens the tunnel for a 2xx (sending
 * the addresses and routes first), else a refusal. */
static int answer(struct masque_conn *c, int64_t sid, int status, const struct masque_accept *acc,
		  const char *proxy_status)
{
	int r = 0;

	if (status < 100 || status > 599) {
		status = 500;
		if (c->srv != NULL)
			masque_server_count_refusal(c->srv, 500);
	}
	if (status >= 200 && status < 300) {
		c->tunnel_sid = sid;
		c->tunnel_open = 1;
		parser_init(c);
		if (acc->naddrs > 0)
			r = masque_conn_send_addresses(c, acc->addrs, acc->naddrs);
		if (r == 0)
			r = masque_conn_send_routes(c, acc->routes, acc->nroutes);
		if (r == 0 && acc->capsules_len > 0)
			r = queue_encoded(c, acc->capsules, acc->capsules_len);
		if (r == 0)
			return nghttp3_conn_submit_response(c->h3, sid,
							    (nghttp3_nv[]){ mknv(":status", "200"),
									    mknv("capsule-protocol", "?1") },
							    2, &(nghttp3_data_reader){ read_capsules });
		log_warnx("tunnel for %s: cannot send its addresses/routes: %s", masque_conn_identity(c),
			  zg_strerror(r));
		c->tunnel_sid = -1;
		c->tunnel_open = 0;
		sendq_free(&c->sendq);
		status = 500;
		if (c->srv != NULL)
			masque_server_count_refusal(c->srv, 500);
	}
	return submit_status(c, sid, status, proxy_status);
}

static int server_request(struct masque_conn *c, struct mstream *s)
{
	struct masque_request rq;
	struct masque_accept acc;
	int status;

	status = validate_request(c, s, &rq);
	if (status == 200 && (c->tunnel_sid >= 0 || c->answer_sid >= 0 || c->goaway))
		status = c->goaway ? 503 : 400; /* one tunnel per connection */
	if (status != 200 && c->srv != NULL)
		masque_server_count_refusal(c->srv, status);
	memset(&acc, 0, sizeof(acc));
	if (status == 200) {
		status = c->cbs->on_request != NULL ? c->cbs->on_request(c, &rq, &acc, c->ctx) : 403;
		if (status == MASQUE_PENDING) {
			c->answer_sid = s->sid; /* masque_conn_answer() later */
			return 0;
		}
	}
	return answer(c, s->sid, status, &acc, NULL);
}

int masque_conn_answer(struct masque_conn *c, int status, const struct masque_accept *acc,
		       const char *proxy_status)
{
	static const struct masque_accept none;
	int64_t sid = c->answer_sid;
	int r;

	if (sid < 0 || c->closing || status == MASQUE_PENDING)
		return ZG_ERR_STATE;
	c->answer_sid = -1;
	r = answer(c, sid, status, acc != NULL ? acc : &none, proxy_status);
	if (r != 0) {
		close_app(c, NGHTTP3_H3_INTERNAL_ERROR, ZG_ERR_STATE, nghttp3_strerror(r));
		r = ZG_ERR_STATE;
	}
	kick(c);
	return r;
}

static int client_submit_request(struct masque_conn *c)
{
	nghttp3_nv nva[6];
	nghttp3_data_reader dr = { read_capsules };
	int64_t sid;
	size_t n = 0;
	int r;

	if (c->request_sent || c->cfg->test_no_request)
		return 0;
	if (!c->peer_connect_protocol || !c->peer_h3_datagram) {
		/* C02: only after the server's SETTINGS allowed it. */
		close_app(c, NGHTTP3_H3_SETTINGS_ERROR, ZG_ERR_STATE,
			  "relay did not enable extended CONNECT and HTTP datagrams in SETTINGS");
		return 0;
	}
	r = ngtcp2_conn_open_bidi_stream(c->qc, &sid, NULL);
	if (r != 0)
		return 0; /* retried when the peer raises the stream limit */
	nva[n++] = mknv(":method", "CONNECT");
	nva[n++] = mknv(":protocol", c->cfg->test_protocol ? c->cfg->test_protocol : "connect-ip");
	nva[n++] = mknv(":scheme", "https");
	nva[n++] = mknv(":authority", c->cfg->authority);
	nva[n++] = mknv(":path", c->cfg->path);
	if (!c->cfg->test_no_capsule_protocol)
		nva[n++] = mknv("capsule-protocol", "?1");
	c->tunnel_sid = sid;
	parser_init(c);
	r = nghttp3_conn_submit_request(c->h3, sid, nva, n, &dr, NULL);
	if (r != 0) {
		close_app(c, NGHTTP3_H3_INTERNAL_ERROR, ZG_ERR_STATE, nghttp3_strerror(r));
		return 0;
	}
	c->request_sent = 1;
	return 0;
}

static void client_response(struct masque_conn *c, struct mstream *s)
{
	char why[400];

	if (s->sid != c->tunnel_sid)
		return;
	if (s->status >= 100 && s->status < 200)
		return; /* interim: wait for the final response */
	if (s->status >= 200 && s->status < 300 && sf_true(s->capsule_protocol)) {
		c->tunnel_open = 1;
		if (dgram_ok(c) && masque_conn_max_packet(c) < MASQUE_MIN_INNER_MTU) {
			close_app(c, H3_DATAGRAM_ERROR, ZG_ERR_LIMIT,
				  "path cannot carry a 1280-byte packet in a QUIC datagram");
			return;
		}
		if (send_address_request(c) != 0) {
			close_app(c, NGHTTP3_H3_INTERNAL_ERROR, ZG_ERR_NOMEM,
				  "cannot queue ADDRESS_REQUEST");
			return;
		}
		if (c->cbs->on_open != NULL)
			c->cbs->on_open(c, c->ctx);
		return;
	}
	/* C04: anything else is a failure. */
	c->ci.status = s->status;
	if (s->status >= 200 && s->status < 300)
		(void)snprintf(why, sizeof(why), "relay answered %d without capsule-protocol",
			       s->status);
	else
		(void)snprintf(why, sizeof(why), "relay refused the tunnel: HTTP %d%s%s%s", s->status,
			       s->proxy_status[0] ? " (Proxy-Status: " : "", s->proxy_status,
			       s->proxy_status[0] ? ")" : "");
	close_app(c, NGHTTP3_H3_NO_ERROR, ZG_ERR_STATE, why);
}

/* nghttp3 callbacks ---------------------------------------------------- */

static int h3_acked_stream_data(nghttp3_conn *h3, int64_t sid, uint64_t datalen, void *ud,
				void *sud)
{
	struct masque_conn *c = ud;

	(void)h3;
	(void)sud;
	if (sid == c->tunnel_sid && sendq_ack(&c->sendq, (size_t)datalen) != 0)
		return NGHTTP3_ERR_CALLBACK_FAILURE;
	return 0;
}

static int h3_stream_close(nghttp3_conn *h3, int64_t sid, uint64_t app_error, void *ud, void *sud)
{
	struct masque_conn *c = ud;

	(void)h3;
	(void)sud;
	stream_drop(c, sid);
	if (c->is_server && ngtcp2_is_bidi_stream(sid))
		ngtcp2_conn_extend_max_streams_bidi(c->qc, 1);
	if (sid == c->tunnel_sid && !c->closing) {
		/* C11: the tunnel lives exactly as long as its stream. */
		char why[64];

		(void)snprintf(why, sizeof(why), "tunnel stream closed (H3 error 0x%llx)",
			       (unsigned long long)app_error);
		c->tunnel_open = 0;
		close_app(c, NGHTTP3_H3_NO_ERROR, 0, why);
	}
	return 0;
}

static void consume(struct masque_conn *c, int64_t sid, size_t n)
{
	ngtcp2_conn_extend_max_stream_offset(c->qc, sid, n);
	ngtcp2_conn_extend_max_offset(c->qc, n);
}

static int h3_recv_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len, void *ud,
			void *sud)
{
	struct masque_conn *c = ud;

	(void)h3;
	(void)sud;
	consume(c, sid, len);
	if (sid != c->tunnel_sid || !c->tunnel_open)
		return 0; /* body of a refused request, or before the 2xx */
	(void)feed_capsules(c, data, len);
	return 0;
}

static int h3_deferred_consume(nghttp3_conn *h3, int64_t sid, size_t n, void *ud, void *sud)
{
	(void)h3;
	(void)sud;
	consume(ud, sid, n);
	return 0;
}

static int h3_begin_headers(nghttp3_conn *h3, int64_t sid, void *ud, void *sud)
{
	struct masque_conn *c = ud;

	(void)h3;
	(void)sud;
	if (stream_get(c, sid) == NULL)
		return NGHTTP3_ERR_CALLBACK_FAILURE; /* too many open streams */
	return 0;
}

static void copy_field(struct mstream *s, char *dst, size_t cap, const nghttp3_vec *v)
{
	if (v->len >= cap) {
		s->bad = 1;
		return;
	}
	if (dst[0] != '\0' && cap > 1) {
		s->bad = 1; /* a repeated field */
		return;
	}
	memcpy(dst, v->base, v->len);
	dst[v->len] = '\0';
	if (memchr(v->base, '\0', v->len) != NULL)
		s->bad = 1;
}

static int h3_recv_header(nghttp3_conn *h3, int64_t sid, int32_t token, nghttp3_rcbuf *name,
			  nghttp3_rcbuf *value, uint8_t flags, void *ud, void *sud)
{
	struct masque_conn *c = ud;
	struct mstream *s = stream_find(c, sid);
	nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);

	(void)h3;
	(void)flags;
	(void)sud;
	if (s == NULL)
		return 0;
	switch (token) {
	case NGHTTP3_QPACK_TOKEN__METHOD:
		copy_field(s, s->method, sizeof(s->method), &v);
		break;
	case NGHTTP3_QPACK_TOKEN__PROTOCOL:
		copy_field(s, s->protocol, sizeof(s->protocol), &v);
		break;
	case NGHTTP3_QPACK_TOKEN__SCHEME:
		copy_field(s, s->scheme, sizeof(s->scheme), &v);
		break;
	case NGHTTP3_QPACK_TOKEN__AUTHORITY:
		copy_field(s, s->authority, sizeof(s->authority), &v);
		break;
	case NGHTTP3_QPACK_TOKEN__PATH:
		copy_field(s, s->path, sizeof(s->path), &v);
		break;
	case NGHTTP3_QPACK_TOKEN__STATUS: {
		char code[8] = "";

		if (v.len == 3) {
			memcpy(code, v.base, 3);
			s->status = atoi(code);
		}
		break;
	}
	default:
		if (n.len == 16 && memcmp(n.base, "capsule-protocol", 16) == 0) {
			copy_field(s, s->capsule_protocol, sizeof(s->capsule_protocol), &v);
		} else if (n.len == 12 && memcmp(n.base, "proxy-status", 12) == 0 &&
			   s->proxy_status[0] == '\0') {
			/* for the client's error message only: printable,
			 * truncated, never a reason to refuse the answer */
			size_t k, len = v.len < sizeof(s->proxy_status) - 1
						? v.len
						: sizeof(s->proxy_status) - 1;

			for (k = 0; k < len; k++)
				s->proxy_status[k] =
					v.base[k] >= 0x20 && v.base[k] < 0x7f ? (char)v.base[k] : '?';
			s->proxy_status[len] = '\0';
		}
		break;
	}
	return 0;
}

static int h3_end_headers(nghttp3_conn *h3, int64_t sid, int fin, void *ud, void *sud)
{
	struct masque_conn *c = ud;
	struct mstream *s = stream_find(c, sid);
	int r = 0;

	(void)h3;
	(void)fin;
	(void)sud;
	if (s == NULL)
		return 0;
	if (c->is_server) {
		r = server_request(c, s);
	} else {
		client_response(c, s);
		if (s->status >= 100 && s->status < 200)
			return 0; /* interim: the final response reuses s */
	}
	/* The fields are used up (a second header block on the stream is
	 * trailers, which nghttp3 hands to no callback of ours): an idle
	 * tunnel does not keep its request's 1.7 KB (issue 21). */
	stream_drop(c, sid);
	return r != 0 ? NGHTTP3_ERR_CALLBACK_FAILURE : 0;
}

static int h3_end_stream(nghttp3_conn *h3, int64_t sid, void *ud, void *sud)
{
	struct masque_conn *c = ud;
	int r;

	(void)h3;
	(void)sud;
	if (sid != c->tunnel_sid)
		return 0;
	r = capsule_parser_finish(&c->cparser);
	if (r != 0)
		close_app(c, H3_DATAGRAM_ERROR, r, "tunnel stream ended inside a capsule");
	else if (c->is_server || c->tunnel_open)
		close_app(c, NGHTTP3_H3_NO_ERROR, 0, "peer ended the tunnel stream");
	else
		close_app(c, NGHTTP3_H3_NO_ERROR, ZG_ERR_STATE, "relay ended the request stream");
	return 0;
}

static int h3_stop_sending(nghttp3_conn *h3, int64_t sid, uint64_t app_error, void *ud, void *sud)
{
	struct masque_conn *c = ud;

	(void)h3;
	(void)sud;
	(void)ngtcp2_conn_shutdown_stream_read(c->qc, 0, sid, app_error);
	return 0;
}

static int h3_reset_stream(nghttp3_conn *h3, int64_t sid, uint64_t app_error, void *ud, void *sud)
{
	struct masque_conn *c = ud;

	(void)h3;
	(void)sud;
	(void)ngtcp2_conn_shutdown_stream_write(c->qc, 0, sid, app_error);
	return 0;
}

static int h3_shutdown(nghttp3_conn *h3, int64_t id, void *ud)
{
	struct masque_conn *c = ud;

	(void)h3;
	(void)id;
	if (!c->is_server && !c->goaway) {
		c->goaway = 1;
		if (c->cbs->on_goaway != NULL)
			c->cbs->on_goaway(c, c->ctx);
	}
	return 0;
}

static int h3_recv_settings(nghttp3_conn *h3, const nghttp3_settings *st, void *ud)
{
	struct masque_conn *c = ud;

	(void)h3;
	c->peer_settings = 1;
	c->peer_h3_datagram = st->h3_datagram;
	c->peer_connect_protocol = st->enable_connect_protocol;
	c->peer_qpack_dtable = st->qpack_max_dtable_capacity;
	if (!c->is_server)
		return client_submit_request(c);
	return 0;
}

static void h3_rand(uint8_t *dest, size_t len)
{
	masque_random(dest, len);
}

static int setup_h3(struct masque_conn *c)
{
	nghttp3_callbacks cb;
	nghttp3_settings st;
	int64_t ctrl, enc, dec;
	int r;

	if (c->h3 != NULL)
		return 0;
	memset(&cb, 0, sizeof(cb));
	cb.acked_stream_data = h3_acked_stream_data;
	cb.stream_close = h3_stream_close;
	cb.recv_data = h3_recv_data;
	cb.deferred_consume = h3_deferred_consume;
	cb.begin_headers = h3_begin_headers;
	cb.recv_header = h3_recv_header;
	cb.end_headers = h3_end_headers;
	cb.end_stream = h3_end_stream;
	cb.stop_sending = h3_stop_sending;
	cb.reset_stream = h3_reset_stream;
	cb.shutdown = h3_shutdown;
	cb.recv_settings = h3_recv_settings;
	cb.rand = h3_rand;
	nghttp3_settings_default(&st);
	st.max_field_section_size = MASQUE_MAX_FIELD_SECTION;
	/* No QPACK dynamic table either way: a connection carries one
	 * request, so there is nothing to index, and each end would keep
	 * the other's entries for the connection's life (issue 21, memory
	 * per idle tunnel). Static table and literals only; no stream can
	 * be blocked on the encoder stream then. */
	st.qpack_max_dtable_capacity = 0;
	st.qpack_encoder_max_dtable_capacity = 0;
	st.qpack_blocked_streams = 0;
	st.h3_datagram = 1;
	st.enable_connect_protocol = c->is_server ? 1 : 0;
	if (c->is_server)
		r = nghttp3_conn_server_new(&c->h3, &cb, &st, NULL, c);
	else
		r = nghttp3_conn_client_new(&c->h3, &cb, &st, NULL, c);
	if (r != 0)
		return ZG_ERR_NOMEM;
	if (c->is_server)
		nghttp3_conn_set_max_client_streams_bidi(
			c->h3, ngtcp2_conn_get_local_transport_params(c->qc)->initial_max_streams_bidi);
	if ((r = ngtcp2_conn_open_uni_stream(c->qc, &ctrl, NULL)) != 0 ||
	    (r = nghttp3_conn_bind_control_stream(c->h3, ctrl)) != 0 ||
	    (r = ngtcp2_conn_open_uni_stream(c->qc, &enc, NULL)) != 0 ||
	    (r = ngtcp2_conn_open_uni_stream(c->qc, &dec, NULL)) != 0 ||
	    (r = nghttp3_conn_bind_qpack_streams(c->h3, enc, dec)) != 0) {
		return ZG_ERR_STATE;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* ngtcp2 callbacks                                                       */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	struct masque_conn *c = ref->user_data;

	return c->qc;
}

static void q_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *rctx)
{
	(void)rctx;
	masque_random(dest, len);
}

static int q_get_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, ngtcp2_stateless_reset_token *token,
			 size_t cidlen, void *ud)
{
	struct masque_conn *c = ud;

	(void)qc;
	cid->datalen = cidlen;
	if (c->srv != NULL) {
		masque_server_cid(c->srv, cid->data, cidlen);
		return masque_server_new_cid(c->srv, c, cid, token->data);
	}
	masque_random(cid->data, cidlen);
	masque_random(token->data, sizeof(token->data));
	return 0;
}

static int q_remove_cid(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *ud)
{
	struct masque_conn *c = ud;

	(void)qc;
	if (c->srv != NULL)
		masque_server_remove_cid(c->srv, cid);
	return 0;
}

static int q_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t offset,
			      const uint8_t *data, size_t datalen, void *ud, void *sud)
{
	struct masque_conn *c = ud;
	nghttp3_ssize n;

	(void)qc;
	(void)offset;
	(void)sud;
	if (c->h3 == NULL)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	n = nghttp3_conn_read_stream2(c->h3, sid, data, datalen, flags & NGTCP2_STREAM_DATA_FLAG_FIN,
				      now_ts(c));
	if (n < 0) {
		if (!c->closing) {
			c->closing = 1;
			c->ci.error = ZG_ERR_MALFORMED;
			masque_conn_set_reason(c, "HTTP/3: %s", nghttp3_strerror((int)n));
		}
		ngtcp2_ccerr_set_application_error(
			&c->ccerr, nghttp3_err_infer_quic_app_error_code((int)n), NULL, 0);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	consume(c, sid, (size_t)n);
	return 0;
}

static int q_acked_stream_data(ngtcp2_conn *qc, int64_t sid, uint64_t offset, uint64_t datalen,
			       void *ud, void *sud)
{
	struct masque_conn *c = ud;

	(void)qc;
	(void)offset;
	(void)sud;
	if (c->h3 != NULL && nghttp3_conn_add_ack_offset(c->h3, sid, datalen) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int q_stream_close(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t app_error,
			  void *ud, void *sud)
{
	struct masque_conn *c = ud;
	int r;

	(void)qc;
	(void)sud;
	if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
		app_error = NGHTTP3_H3_NO_ERROR;
	if (c->h3 == NULL)
		return 0;
	r = nghttp3_conn_close_stream(c->h3, sid, app_error);
	if (r != 0 && r != NGHTTP3_ERR_STREAM_NOT_FOUND)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int q_stream_reset(ngtcp2_conn *qc, int64_t sid, uint64_t final_size, uint64_t app_error,
			  void *ud, void *sud)
{
	struct masque_conn *c = ud;

	(void)qc;
	(void)final_size;
	(void)app_error;
	(void)sud;
	if (c->h3 != NULL && nghttp3_conn_shutdown_stream_read(c->h3, sid) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int q_stream_stop_sending(ngtcp2_conn *qc, int64_t sid, uint64_t app_error, void *ud,
				 void *sud)
{
	return q_stream_reset(qc, sid, 0, app_error, ud, sud);
}

static int q_extend_max_remote_bidi(ngtcp2_conn *qc, uint64_t max, void *ud)
{
	struct masque_conn *c = ud;

	(void)qc;
	if (c->h3 != NULL)
		nghttp3_conn_set_max_client_streams_bidi(c->h3, max);
	return 0;
}

static int q_extend_max_local_bidi(ngtcp2_conn *qc, uint64_t max, void *ud)
{
	struct masque_conn *c = ud;

	(void)qc;
	(void)max;
	if (!c->is_server && c->h3 != NULL && c->peer_settings && !c->request_sent)
		return client_submit_request(c);
	return 0;
}

static int q_extend_max_stream_data(ngtcp2_conn *qc, int64_t sid, uint64_t max, void *ud,
				    void *sud)
{
	struct masque_conn *c = ud;

	(void)qc;
	(void)max;
	(void)sud;
	if (c->h3 != NULL && nghttp3_conn_unblock_stream(c->h3, sid) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int q_recv_datagram(ngtcp2_conn *qc, uint32_t flags, const uint8_t *data, size_t len,
			   void *ud)
{
	struct masque_conn *c = ud;
	uint64_t qsid, ctxid;
	const uint8_t *payload;
	size_t plen;
	int r;

	(void)qc;
	(void)flags;
	r = httpdg_decode(data, len, &qsid, &ctxid, &payload, &plen);
	if (r == ZG_ERR_RANGE) {
		/* C14: a Quarter Stream ID above 2^60-1 is a connection error. */
		c->closing = 1;
		c->ci.error = ZG_ERR_RANGE;
		masque_conn_set_reason(c, "HTTP datagram with a Quarter Stream ID above 2^60-1");
		ngtcp2_ccerr_set_application_error(&c->ccerr, H3_DATAGRAM_ERROR, NULL, 0);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	if (r != 0 || !tunnel_ready(c) || qsid != (uint64_t)c->tunnel_sid / 4) {
		c->st.drop_no_tunnel++; /* C14: not (or no longer) a tunnel */
		return 0;
	}
	if (ctxid != HTTPDG_CONTEXT_IP) {
		c->st.drop_context++; /* C12: dropped silently */
		return 0;
	}
	deliver_packet(c, payload, plen);
	return 0;
}

/* Keeps the identity, serial and fingerprint in one allocation (ids).
 * Returns 0 or ZG_ERR_NOMEM. */
static int keep_ids(struct masque_conn *c, const char *id, const char *serial, const char *sha)
{
	size_t a = strlen(id) + 1, b = strlen(serial) + 1, d = strlen(sha) + 1;
	char *p = malloc(a + b + d);

	if (p == NULL)
		return ZG_ERR_NOMEM;
	memcpy(p, id, a);
	memcpy(p + a, serial, b);
	memcpy(p + a + b, sha, d);
	free(c->ids);
	c->ids = p;
	c->identity = p;
	c->cert_serial = p + a;
	c->cert_sha256 = p + a + b;
	return 0;
}

/* Copies the client certificate x (DER) to c->cert_der; one larger than
 * TLS_CERT_DER_MAX is not kept (the relay then refuses the tunnel, 503).
 * Returns 0 or ZG_ERR_NOMEM. */
static int keep_cert(struct masque_conn *c, WOLFSSL_X509 *x)
{
	const unsigned char *der;
	int n = 0;

	der = wolfSSL_X509_get_der(x, &n);
	if (der == NULL || n <= 0 || (size_t)n > TLS_CERT_DER_MAX)
		return 0;
	c->cert_der = malloc((size_t)n);
	if (c->cert_der == NULL)
		return ZG_ERR_NOMEM;
	memcpy(c->cert_der, der, (size_t)n);
	c->cert_len = (size_t)n;
	return 0;
}

static int q_handshake_completed(ngtcp2_conn *qc, void *ud)
{
	char id[MASQUE_IDENTITY_MAX], serial[TLS_SERIAL_HEX_MAX], sha[TLS_SHA256_HEX_LEN];
	struct masque_conn *c = ud;
	WOLFSSL_X509 *x;
	int r;

	(void)qc;
	c->st.handshake_ns = now_ts(c) - c->created;
	if (!tls_alpn_is_h3(c->ssl)) {
		/* RFC 9001 §8.1: no application protocol, no connection. A
		 * server that offers other protocols (or a client offering
		 * another one) was refused by wolfSSL already; this catches a
		 * peer that negotiated none at all. */
		c->ci.error = ZG_ERR_STATE;
		if (c->is_server)
			c->ci.hs_fail = MASQUE_HS_ALPN;
		masque_conn_set_reason(c, "no application protocol: %s did not negotiate ALPN \"%s\"",
				       c->is_server ? "the client" : "the relay", TLS_ALPN);
		ngtcp2_ccerr_set_tls_alert(&c->ccerr, TLS_ALERT_NO_APPLICATION_PROTOCOL, NULL, 0);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	if (c->cfg->keepalive_ms > 0)
		ngtcp2_conn_set_keep_alive_timeout(c->qc, c->cfg->keepalive_ms * NS_PER_MS);
	if (!c->is_server)
		return 0;
	x = wolfSSL_get_peer_certificate(c->ssl);
	if (x == NULL) {
		c->ci.reject = TLS_REJECT_NO_CERT;
		masque_conn_set_reason(c, "client certificate missing after the handshake");
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	/* verify_client() has applied the identity rule already; this copies
	 * the identity, the certificate's serial and fingerprint and the
	 * certificate itself (the TLS object goes after this packet) */
	r = (int)tls_peer_id(c->ssl, x, id, sizeof(id));
	if (r == TLS_ACCEPTED) {
		(void)tls_cert_ids(x, serial, sha);
		if (keep_ids(c, id, serial, sha) != 0 || keep_cert(c, x) != 0) {
			wolfSSL_X509_free(x);
			c->ci.error = ZG_ERR_NOMEM;
			masque_conn_set_reason(c, "out of memory for the client certificate");
			return NGTCP2_ERR_CALLBACK_FAILURE;
		}
	}
	wolfSSL_X509_free(x);
	if (r != TLS_ACCEPTED) {
		c->ci.reject = (enum tls_reject)r;
		masque_conn_set_reason(c, "client certificate refused: %s", tls_reject_name(c->ci.reject));
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	c->tls_done = 1;
	if (c->srv != NULL)
		masque_server_handshake_done(c->srv, c);
	return 0;
}

/* HTTP/3 starts with the 1-RTT keys: the client's receive key, the
 * server's send key (installed after the client's transport parameters,
 * which set how many streams we may open). */
static int q_recv_key(ngtcp2_conn *qc, ngtcp2_encryption_level level, void *ud)
{
	struct masque_conn *c = ud;

	(void)qc;
	if (level != NGTCP2_ENCRYPTION_LEVEL_1RTT)
		return 0;
	return setup_h3(c) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static void q_qlog(void *ud, uint32_t flags, const void *data, size_t len)
{
	struct masque_conn *c = ud;

	(void)flags;
	if (c->qlog != NULL)
		(void)fwrite(data, 1, len, c->qlog);
}

static void keylog_cb(const WOLFSSL *ssl, const char *line)
{
	(void)ssl;
	if (keylog_fp != NULL) {
		(void)fprintf(keylog_fp, "%s\n", line);
		(void)fflush(keylog_fp);
	}
}

void masque_keylog_setup(const struct masque_config *cfg)
{
	if (cfg->keylog_file == NULL || cfg->keylog_file[0] == '\0')
		return;
	if (keylog_fp == NULL) {
		keylog_fp = fopen(cfg->keylog_file, "a");
		if (keylog_fp == NULL) {
			log_warn("keylog file %s", cfg->keylog_file);
			return;
		}
		log_warnx("TLS key log enabled (%s): traffic can be decrypted; debugging only",
			  cfg->keylog_file);
	}
	/* also for a context set later (masque_server_set_tls) */
	wolfSSL_CTX_set_keylog_callback(cfg->tls, keylog_cb);
}

/* ---------------------------------------------------------------------- */
/* creation                                                               */

/* ngtcp2's CRYPTO data for wolfSSL. */
static int q_recv_crypto_data(ngtcp2_conn *qc, ngtcp2_encryption_level level, uint64_t offset,
			      const uint8_t *data, size_t len, void *ud)
{
	struct masque_conn *c = ud;

	if (c->ssl == NULL) {
		/* the TLS object is gone (release_tls): in QUIC a client sends
		 * no TLS message after its Finished (no post-handshake
		 * authentication is asked for; KeyUpdate is forbidden, RFC 9001
		 * §6), so this is what TLS would answer too */
		c->closing = 1;
		c->ci.error = ZG_ERR_MALFORMED;
		masque_conn_set_reason(c, "TLS message from the client after the handshake");
		ngtcp2_ccerr_set_tls_alert(&c->ccerr, TLS_ALERT_UNEXPECTED_MESSAGE, NULL, 0);
		return NGTCP2_ERR_CALLBACK_FAILURE;
	}
	return ngtcp2_crypto_recv_crypto_data_cb(qc, level, offset, data, len, ud);
}

static void fill_callbacks(ngtcp2_callbacks *cb, int server)
{
	memset(cb, 0, sizeof(*cb));
	if (server)
		cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
	else {
		cb->client_initial = ngtcp2_crypto_client_initial_cb;
		cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
		cb->extend_max_local_streams_bidi = q_extend_max_local_bidi;
	}
	cb->recv_crypto_data = q_recv_crypto_data;
	/* AES: wolfCrypt directly, not five EVP calls and two mallocs per
	 * packet (aead.h); anything else goes to ngtcp2's helper */
	cb->encrypt = masque_aead_encrypt_cb;
	cb->decrypt = masque_aead_decrypt_cb;
	cb->hp_mask = masque_hp_mask_cb;
	cb->update_key = ngtcp2_crypto_update_key_cb;
	cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
	cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
	cb->get_path_challenge_data2 = ngtcp2_crypto_get_path_challenge_data2_cb;
	cb->rand = q_rand;
	cb->get_new_connection_id2 = q_get_new_cid;
	cb->remove_connection_id = q_remove_cid;
	cb->recv_stream_data = q_recv_stream_data;
	cb->acked_stream_data_offset = q_acked_stream_data;
	cb->stream_close = q_stream_close;
	cb->stream_reset = q_stream_reset;
	cb->stream_stop_sending = q_stream_stop_sending;
	cb->extend_max_remote_streams_bidi = q_extend_max_remote_bidi;
	cb->extend_max_stream_data = q_extend_max_stream_data;
	cb->recv_datagram = q_recv_datagram;
	cb->handshake_completed = q_handshake_completed;
	if (server)
		cb->recv_tx_key = q_recv_key;
	else
		cb->recv_rx_key = q_recv_key;
}

static void q_log(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void q_log(void *ud, const char *fmt, ...)
{
	va_list ap;

	(void)ud;
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
}

static void fill_settings(const struct masque_conn *c, ngtcp2_settings *st,
			  ngtcp2_transport_params *tp)
{
	const struct masque_config *cfg = c->cfg;

	ngtcp2_settings_default(st);
	st->initial_ts = c->created;
	st->max_tx_udp_payload_size = cfg->max_udp_payload ? cfg->max_udp_payload : 1452;
	/* Use the configured payload size from the first packet on: the
	 * client's Initial is padded to it, which proves the path carries
	 * datagrams big enough for a 1280-byte inner packet (C15). */
	st->no_tx_udp_payload_size_shaping = 1;
	st->handshake_timeout = (cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : 10000) *
				NS_PER_MS;
	st->max_window = 24 * 1024 * 1024;
	st->max_stream_window = 16 * 1024 * 1024;
	st->ack_thresh = ACK_THRESH;
	if (c->qlog != NULL)
		st->qlog_write = q_qlog;
	if (getenv("ZG_QUIC_TRACE") != NULL)
		st->log_printf = q_log; /* ngtcp2's event trace, for debugging */

	ngtcp2_transport_params_default(tp);
	tp->initial_max_stream_data_bidi_local = 1024 * 1024;
	tp->initial_max_stream_data_bidi_remote = 1024 * 1024;
	tp->initial_max_stream_data_uni = 256 * 1024;
	tp->initial_max_data = 4 * 1024 * 1024;
	tp->initial_max_streams_bidi = c->is_server ? MASQUE_MAX_STREAMS / 2 : 0;
	tp->initial_max_streams_uni = 3;
	tp->max_idle_timeout = (cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 30000) * NS_PER_MS;
	tp->max_datagram_frame_size = cfg->no_datagrams ? 0 : 65535;
	/* RFC 9000's default: one spare ID of the peer's for a path change
	 * (NAT rebinding, migration); ngtcp2-zgate.patch sizes its rings
	 * to it, so never above NGTCP2_DCIDTR_MAX_UNUSED_DCID_SIZE (2) */
	tp->active_connection_id_limit = 2;
}

size_t masque_pktbuf_size(const struct masque_config *cfg)
{
	size_t n = cfg->max_udp_payload ? cfg->max_udp_payload : 1452;

	return n < 1200 ? 1200 : n;
}

/* pktbuf: the server's shared packet buffer, NULL for one of c's own. */
static int conn_alloc(const struct masque_config *cfg, const struct masque_cbs *cbs, void *ctx,
		      int server, uint8_t *pktbuf, struct masque_conn **pc)
{
	struct masque_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return ZG_ERR_NOMEM;
	c->cfg = cfg;
	c->cbs = cbs;
	c->ctx = ctx;
	c->is_server = server;
	c->tunnel_sid = -1;
	c->answer_sid = -1;
	c->created = cfg->io->now(cfg->ioctx);
	ngtcp2_ccerr_default(&c->ccerr);
	sendq_init(&c->sendq, cfg->capsule_buffer ? cfg->capsule_buffer : 1024 * 1024);
	c->pending_cap = cfg->send_queue ? cfg->send_queue : MASQUE_PENDING_MAX;
	c->pktbuf_size = masque_pktbuf_size(cfg);
	c->pktbuf = pktbuf;
	if (pktbuf == NULL) {
		c->pktbuf = malloc(c->pktbuf_size);
		c->pktbuf_own = 1;
	}
	c->ref.get_conn = get_conn;
	c->ref.user_data = c;
	c->timer = cfg->io->timer_new(cfg->ioctx, c);
	if (c->pktbuf == NULL || c->timer == NULL) {
		masque_conn_free(c);
		return ZG_ERR_NOMEM;
	}
	*pc = c;
	return 0;
}

static void open_qlog(struct masque_conn *c, const ngtcp2_cid *scid)
{
	char path[512];
	size_t i, off;
	int n;

	if (c->cfg->qlog_dir == NULL || c->cfg->qlog_dir[0] == '\0')
		return;
	n = snprintf(path, sizeof(path), "%s/%s-", c->cfg->qlog_dir,
		     c->is_server ? "server" : "client");
	if (n < 0 || (size_t)n >= sizeof(path) - 2 * NGTCP2_MAX_CIDLEN - 8)
		return;
	off = (size_t)n;
	for (i = 0; i < scid->datalen; i++, off += 2)
		(void)snprintf(path + off, 3, "%02x", scid->data[i]);
	(void)snprintf(path + off, sizeof(path) - off, ".sqlog");
	c->qlog = fopen(path, "w");
	if (c->qlog == NULL)
		log_warn("qlog %s", path);
}

static void set_path(ngtcp2_path *path, struct masque_conn *c)
{
	path->local.addr = (ngtcp2_sockaddr *)&c->local;
	path->local.addrlen = c->locallen;
	path->remote.addr = (ngtcp2_sockaddr *)&c->remote;
	path->remote.addrlen = c->remotelen;
	path->user_data = NULL;
}

int masque_conn_server_new(struct masque_server *srv, const struct masque_config *cfg,
			   const struct masque_cbs *cbs, void *ctx, const struct sockaddr *local,
			   socklen_t locallen, const struct sockaddr *remote, socklen_t remotelen,
			   const ngtcp2_pkt_hd *hd, const ngtcp2_cid *odcid, const ngtcp2_cid *scid,
			   const uint8_t *reset_token, struct masque_conn **pc)
{
	struct masque_conn *c;
	ngtcp2_callbacks cb;
	ngtcp2_settings st;
	ngtcp2_transport_params tp;
	ngtcp2_path path;
	int r;

	if (locallen > sizeof(union masque_sockaddr) || remotelen > sizeof(union masque_sockaddr))
		return ZG_ERR_INVAL;
	r = conn_alloc(cfg, cbs, ctx, 1, masque_server_pktbuf(srv), &c);
	if (r != 0)
		return r;
	c->srv = srv;
	memcpy(&c->local, local, locallen);
	c->locallen = locallen;
	memcpy(&c->remote, remote, remotelen);
	c->remotelen = remotelen;
	open_qlog(c, scid);
	fill_callbacks(&cb, 1);
	fill_settings(c, &st, &tp);
	st.token = hd->token;
	st.tokenlen = hd->tokenlen;
	if (odcid != NULL) {
		st.token_type = NGTCP2_TOKEN_TYPE_RETRY;
		tp.original_dcid = *odcid;
		tp.retry_scid = hd->dcid;
		tp.retry_scid_present = 1;
	} else {
		tp.original_dcid = hd->dcid;
	}
	tp.original_dcid_present = 1;
	memcpy(tp.stateless_reset_token, reset_token, NGTCP2_STATELESS_RESET_TOKENLEN);
	tp.stateless_reset_token_present = 1;
	set_path(&path, c);
	if (ngtcp2_conn_server_new(&c->qc, &hd->scid, scid, &path, hd->version, &cb, &st, &tp, NULL,
				   c) != 0)
		goto fail;
	c->ssl = wolfSSL_new(cfg->tls);
	if (c->ssl == NULL)
		goto fail;
	wolfSSL_set_app_data(c->ssl, &c->ref);
	wolfSSL_set_accept_state(c->ssl);
	if (tls_set_alpn(c->ssl, cfg->test_alpn) != 0)
		goto fail;
	ngtcp2_conn_set_tls_native_handle(c->qc, c->ssl);
	*pc = c;
	return 0;
fail:
	masque_conn_free(c);
	return ZG_ERR_NOMEM;
}

int masque_client_new(const struct masque_config *cfg, const struct masque_cbs *cbs, void *ctx,
		      const struct sockaddr *local, socklen_t locallen,
		      const struct sockaddr *remote, socklen_t remotelen, struct masque_conn **pc)
{
	struct masque_conn *c;
	ngtcp2_callbacks cb;
	ngtcp2_settings st;
	ngtcp2_transport_params tp;
	ngtcp2_path path;
	ngtcp2_cid dcid, scid;
	const char *cert_name;
	int r;

	if (cfg == NULL || cfg->tls == NULL || cfg->io == NULL || cfg->server_name == NULL ||
	    cfg->authority == NULL || cfg->path == NULL || cfg->nwant > 2 ||
	    cfg->n_ext_capsules > CAPSULE_EXT_MAX ||
	    locallen > sizeof(union masque_sockaddr) || remotelen > sizeof(union masque_sockaddr))
		return ZG_ERR_INVAL;
	cert_name = cfg->cert_name != NULL ? cfg->cert_name : cfg->server_name;
	r = conn_alloc(cfg, cbs, ctx, 0, NULL, &c);
	if (r != 0)
		return r;
	memcpy(&c->local, local, locallen);
	c->locallen = locallen;
	memcpy(&c->remote, remote, remotelen);
	c->remotelen = remotelen;
	dcid.datalen = 18;
	masque_random(dcid.data, dcid.datalen);
	scid.datalen = MASQUE_CIDLEN;
	masque_random(scid.data, scid.datalen);
	open_qlog(c, &scid);
	masque_keylog_setup(cfg);
	fill_callbacks(&cb, 0);
	fill_settings(c, &st, &tp);
	set_path(&path, c);
	r = ZG_ERR_NOMEM;
	if (ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &st, &tp,
				   NULL, c) != 0)
		goto fail;
	c->ssl = wolfSSL_new(cfg->tls);
	if (c->ssl == NULL)
		goto fail;
	wolfSSL_set_app_data(c->ssl, &c->ref);
	wolfSSL_set_connect_state(c->ssl);
	r = ZG_ERR_CONFIG;
	if (tls_set_alpn(c->ssl, cfg->test_alpn) != 0 ||
	    wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, cfg->server_name,
			   (unsigned short)strlen(cfg->server_name)) != WOLFSSL_SUCCESS ||
	    (cert_name[0] != '\0' && tls_check_peer_name(c->ssl, cert_name) != 0))
		goto fail;
	ngtcp2_conn_set_tls_native_handle(c->qc, c->ssl);
	if (conn_write(c) != 0) {
		r = ZG_ERR_STATE;
		goto fail;
	}
	arm_timer(c);
	*pc = c;
	return 0;
fail:
	masque_conn_free(c);
	return r;
}

/* ---------------------------------------------------------------------- */
/* driving                                                                */

/* The close reason for a failed TLS handshake: wolfSSL's own error and
 * the alert we send, instead of ngtcp2's bare "ERR_CRYPTO". */
static void set_tls_reason(struct masque_conn *c)
{
	int err = c->ssl != NULL ? wolfSSL_get_error(c->ssl, 0) : 0;
	uint8_t alert = ngtcp2_conn_get_tls_alert2(c->qc);

	if (alert != 0 && err == 0)
		/* a post-handshake message (NewSessionTicket, KeyUpdate)
		 * refused: wolfSSL keeps no error for it, only the alert */
		masque_conn_set_reason(c, "TLS failed%s: alert %u (%s) sent",
				       ngtcp2_conn_get_handshake_completed(c->qc) ? " after the handshake" : "",
				       alert, tls_alert_name(alert));
	else if (alert != 0)
		masque_conn_set_reason(c, "TLS handshake failed: %s (%d), alert %u (%s)",
				       wolfSSL_ERR_reason_error_string((unsigned long)err), err, alert,
				       tls_alert_name(alert));
	else
		masque_conn_set_reason(c, "TLS handshake failed: %s (%d), no alert",
				       wolfSSL_ERR_reason_error_string((unsigned long)err), err);
}

/* Server: what refused a handshake that did not complete (rv: ngtcp2's
 * error; NGTCP2_ERR_DRAINING/CLOSING when the client closed it). Sets
 * *cert to a certificate reason (cert_rejected) or returns a failure that
 * happened before or beside the certificate check (handshake_failed);
 * neither for timeouts and drops, which refuse nothing. */
static enum masque_hs_fail classify_failure(struct masque_conn *c, int rv, enum tls_reject *cert)
{
	uint8_t alert = ngtcp2_conn_get_tls_alert2(c->qc);
	int err = c->ssl != NULL ? wolfSSL_get_error(c->ssl, 0) : 0;
	const ngtcp2_ccerr *e;

	/* the verify callback saw a certificate */
	*cert = c->ssl != NULL ? tls_last_reject(c->ssl) : TLS_ACCEPTED;
	if (*cert == TLS_ACCEPTED)
		*cert = c->ci.reject;
	if (*cert != TLS_ACCEPTED)
		return MASQUE_HS_OK;
	if (c->ci.hs_fail != MASQUE_HS_OK)
		return c->ci.hs_fail;
	switch (rv) {
	case NGTCP2_ERR_CRYPTO:
		if (alert == TLS_ALERT_NO_APPLICATION_PROTOCOL || err == UNKNOWN_ALPN_PROTOCOL_NAME_E)
			return MASQUE_HS_ALPN;
		if (alert == TLS_ALERT_PROTOCOL_VERSION || err == VERSION_ERROR)
			return MASQUE_HS_VERSION;
		if (err == QUIC_TP_MISSING_E)
			return MASQUE_HS_TRANSPORT_PARAMS;
		if (alert == TLS_ALERT_CERTIFICATE_REQUIRED || err == NO_PEER_CERT) {
			*cert = TLS_REJECT_NO_CERT;
			return MASQUE_HS_OK;
		}
		return MASQUE_HS_TLS;
	case NGTCP2_ERR_REQUIRED_TRANSPORT_PARAM:
	case NGTCP2_ERR_MALFORMED_TRANSPORT_PARAM:
	case NGTCP2_ERR_TRANSPORT_PARAM:
		return MASQUE_HS_TRANSPORT_PARAMS;
	case NGTCP2_ERR_DRAINING:
	case NGTCP2_ERR_CLOSING:
		e = ngtcp2_conn_get_ccerr(c->qc);
		if (e->type == NGTCP2_CCERR_TYPE_TRANSPORT) {
			if (e->error_code == QUIC_CRYPTO_ERROR + TLS_ALERT_NO_APPLICATION_PROTOCOL)
				return MASQUE_HS_ALPN;
			if (e->error_code == QUIC_CRYPTO_ERROR + TLS_ALERT_PROTOCOL_VERSION)
				return MASQUE_HS_VERSION;
			if (e->error_code == QUIC_TRANSPORT_PARAMETER_ERROR)
				return MASQUE_HS_TRANSPORT_PARAMS;
		}
		return MASQUE_HS_CLIENT_ABORTED;
	case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
	case NGTCP2_ERR_IDLE_CLOSE:
	case NGTCP2_ERR_DROP_CONN:
		return MASQUE_HS_OK;
	default:
		return MASQUE_HS_PROTOCOL;
	}
}

/* Reports a server handshake that ended without a tunnel-ready
 * connection, once: on_reject for a certificate, on_handshake_failed for
 * the rest. */
static void report_failure(struct masque_conn *c, int rv)
{
	enum tls_reject cert;
	enum masque_hs_fail hf;

	if (!c->is_server || c->reject_reported || c->handshake_counted || c->tls_done)
		return;
	hf = classify_failure(c, rv, &cert);
	if (cert != TLS_ACCEPTED) {
		c->reject_reported = 1;
		c->ci.reject = cert;
		masque_conn_clear_reason(c);
		masque_conn_set_reason(c, "client certificate refused: %s", tls_reject_name(cert));
		if (c->srv != NULL)
			masque_server_count_reject(c->srv, cert);
		if (c->cbs->on_reject != NULL)
			c->cbs->on_reject((const struct sockaddr *)&c->remote, c->remotelen, cert,
					  c->ctx);
	} else if (hf != MASQUE_HS_OK) {
		c->reject_reported = 1;
		c->ci.hs_fail = hf;
		if (c->srv != NULL)
			masque_server_count_hs_fail(c->srv, hf);
		if (c->cbs->on_handshake_failed != NULL)
			c->cbs->on_handshake_failed((const struct sockaddr *)&c->remote,
						    c->remotelen, hf,
						    c->ci.reason != NULL ? c->ci.reason : "", c->ctx);
	}
}

/* A call into ngtcp2 failed with rv before or during the handshake:
 * report it (server) and choose the CONNECTION_CLOSE to send. */
static void handshake_failed(struct masque_conn *c, int rv)
{
	report_failure(c, rv);
	if (!c->is_server && rv == NGTCP2_ERR_CRYPTO && tls_last_reject(c->ssl) != TLS_ACCEPTED) {
		/* say why instead of ngtcp2's "ERR_CRYPTO" */
		masque_conn_clear_reason(c);
		masque_conn_set_reason(c, "relay certificate refused: %s (check --ca and --server-name)",
				       tls_reject_name(tls_last_reject(c->ssl)));
	}
	if (c->ccerr.type == NGTCP2_CCERR_TYPE_TRANSPORT && c->ccerr.error_code != 0)
		return; /* chosen already (an ALPN refusal) */
	if (rv == NGTCP2_ERR_CRYPTO && ngtcp2_conn_get_tls_alert2(c->qc) != 0)
		ngtcp2_ccerr_set_tls_alert(&c->ccerr, ngtcp2_conn_get_tls_alert2(c->qc), NULL, 0);
	else if (rv == NGTCP2_ERR_CRYPTO)
		ngtcp2_ccerr_set_liberr(&c->ccerr, NGTCP2_ERR_INTERNAL, NULL, 0); /* not "alert 0" */
	else
		ngtcp2_ccerr_set_liberr(&c->ccerr, rv, NULL, 0);
}

int masque_conn_input(struct masque_conn *c, const struct sockaddr *local, socklen_t locallen,
		      const struct sockaddr *remote, socklen_t remotelen, const uint8_t *pkt,
		      size_t len)
{
	ngtcp2_path path;
	ngtcp2_pkt_info pi;
	int rv;

	memset(&pi, 0, sizeof(pi));
	path.local.addr = (ngtcp2_sockaddr *)(uintptr_t)local;
	path.local.addrlen = locallen;
	path.remote.addr = (ngtcp2_sockaddr *)(uintptr_t)remote;
	path.remote.addrlen = remotelen;
	path.user_data = NULL;
	if (c->closing || c->drained)
		return conn_after(c);
	c->input_ts = now_ts(c);
	c->busy++;
	rv = ngtcp2_conn_read_pkt(c->qc, &path, &pi, pkt, len, now_ts(c));
	c->busy--;
	if (rv != 0) {
		switch (rv) {
		case NGTCP2_ERR_DRAINING:
		case NGTCP2_ERR_CLOSING: {
			const ngtcp2_ccerr *e = ngtcp2_conn_get_ccerr(c->qc);
			char why[96]; /* the peer's reason phrase, escaped (16.8a) */

			c->drained = 1;
			log_escape_n(e->reason, e->reason ? e->reasonlen : 0, why, sizeof(why));
			if (!c->ci.reason_set) {
				if (e->type == NGTCP2_CCERR_TYPE_APPLICATION) {
					c->ci.app_error = e->error_code;
					masque_conn_set_reason(c, "peer closed the connection (H3 0x%llx%s%s)",
							       (unsigned long long)e->error_code,
							       why[0] ? ": " : "", why);
				} else if (e->error_code >= 0x100 && e->error_code <= 0x1ff) {
					masque_conn_set_reason(c, "peer refused the TLS handshake: alert %u (%s)",
							       (unsigned)(e->error_code - 0x100),
							       tls_alert_name((uint8_t)(e->error_code - 0x100)));
				} else {
					masque_conn_set_reason(c, "peer closed the connection (QUIC 0x%llx%s%s)",
							       (unsigned long long)e->error_code,
							       why[0] ? ": " : "", why);
				}
			}
			report_failure(c, rv); /* the client gave up the handshake */
			break;
		}
		case NGTCP2_ERR_DROP_CONN:
			c->drained = 1;
			masque_conn_set_reason(c, "connection dropped");
			break;
		default:
			if (!c->closing) {
				c->closing = 1;
				if (c->ci.error == 0)
					c->ci.error = rv == NGTCP2_ERR_CRYPTO ? ZG_ERR_STATE
									      : ZG_ERR_MALFORMED;
				if (rv == NGTCP2_ERR_CRYPTO)
					set_tls_reason(c);
				else
					masque_conn_set_reason(c, "QUIC: %s", ngtcp2_strerror(rv));
				handshake_failed(c, rv);
			}
			break;
		}
	}
	return conn_after(c);
}

int masque_conn_on_timer(struct masque_conn *c)
{
	masque_time rd;
	int rv;

	if (c->pending != NULL && c->pending_len == 0 && !c->busy &&
	    now_ts(c) - c->pending_used > 5 * NS_PER_MS * 1000) {
		/* Idle for 5 s: give the queue's memory back. */
		free(c->pending);
		c->pending = NULL;
	}
	if (c->capbuf != NULL && !capsule_parser_buffering(&c->cparser) && !c->busy &&
	    now_ts(c) - c->capbuf_used > 5 * NS_PER_MS * 1000) {
		/* No split capsule for 5 s: the 70 kB buffer goes back too
		 * (an idle tunnel holds none; issue 21, memory per tunnel). */
		(void)capsule_parser_set_buf(&c->cparser, NULL);
		free(c->capbuf);
		c->capbuf = NULL;
	}
	if (c->closing || c->drained || c->close_now)
		return conn_after(c);
	rd = request_deadline(c);
	if (rd != 0 && now_ts(c) >= rd) {
		char why[80];

		(void)snprintf(why, sizeof(why), "no CONNECT-IP tunnel within %llu ms",
			       (unsigned long long)c->cfg->request_timeout_ms);
		close_app(c, NGHTTP3_H3_REQUEST_REJECTED, ZG_ERR_TIMEOUT, why);
		masque_server_count_request_timeout(c->srv);
		return conn_after(c);
	}
	rv = ngtcp2_conn_handle_expiry(c->qc, now_ts(c));
	if (rv != 0) {
		c->drained = 1; /* idle or handshake timeout: no close to send */
		if (rv == NGTCP2_ERR_IDLE_CLOSE) {
			c->ci.idle = 1;
			masque_conn_set_reason(c, "idle timeout");
		} else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
			c->ci.error = ZG_ERR_STATE;
			masque_conn_set_reason(c, "handshake timeout");
		} else {
			c->ci.error = ZG_ERR_STATE;
			masque_conn_set_reason(c, "QUIC: %s", ngtcp2_strerror(rv));
		}
		if (c->is_server && !ngtcp2_conn_get_handshake_completed2(c->qc))
			handshake_failed(c, rv);
	}
	return conn_after(c);
}

/* Keeps a copy of pkt at the end of the pending queue. */
static int enqueue(struct masque_conn *c, const uint8_t *pkt, size_t len)
{
	uint16_t l16 = (uint16_t)len;

	if (len > UINT16_MAX || c->pending_len + sizeof(l16) + len > c->pending_cap) {
		c->st.drop_congested++;
		return ZG_ERR_LIMIT;
	}
	if (c->pending == NULL) {
		c->pending = malloc(c->pending_cap);
		if (c->pending == NULL) {
			c->st.drop_congested++;
			return ZG_ERR_LIMIT;
		}
	}
	memcpy(c->pending + c->pending_len, &l16, sizeof(l16));
	memcpy(c->pending + c->pending_len + sizeof(l16), pkt, len);
	c->pending_len += sizeof(l16) + len;
	c->pending_used = now_ts(c);
	if (c->pending_len > c->pending_cap / 2)
		c->congested = 1; /* see masque_conn_congested() */
	return 0;
}

/* Writes one packet now. Returns 0, ZG_ERR_TOO_LARGE, or ZG_ERR_LIMIT
 * with c->pending_blocked set when QUIC cannot take it yet (congestion
 * window, pacing) and clear when it was dropped for good. */
static int send_now(struct masque_conn *c, const uint8_t *pkt, size_t len)
{
	uint8_t prefix[16];
	uint8_t *p = prefix;
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	ngtcp2_vec v[2];
	ngtcp2_ssize n;
	int accepted = 0;

	c->pending_blocked = 0;
	if (!dgram_ok(c)) {
		/* C13: DATAGRAM capsule on the request stream. */
		uint8_t hdr[24];
		const uint8_t *d[2];
		size_t l[2];

		p = hdr;
		if (capsule_encode_header(&p, hdr + sizeof(hdr), CAPSULE_DATAGRAM, len + 1) != 0 ||
		    varint_encode(&p, hdr + sizeof(hdr), HTTPDG_CONTEXT_IP) != 0)
			return ZG_ERR_TOO_LARGE;
		d[0] = hdr;
		l[0] = (size_t)(p - hdr);
		d[1] = pkt;
		l[1] = len;
		if (queue_capsule(c, d, l, 2) != 0) {
			c->st.drop_congested++;
			return ZG_ERR_LIMIT;
		}
		c->st.capsule_fallback++;
		c->st.pkts_out++;
		c->st.bytes_out += len;
		kick(c);
		return 0;
	}
	if (httpdg_encode_prefix(&p, prefix + sizeof(prefix), (uint64_t)c->tunnel_sid / 4,
				 HTTPDG_CONTEXT_IP) != 0)
		return ZG_ERR_TOO_LARGE;
	v[0].base = prefix;
	v[0].len = (size_t)(p - prefix);
	v[1].base = (uint8_t *)(uintptr_t)pkt;
	v[1].len = len;
	/* A packet written without the datagram (ngtcp2 had ACKs or other
	 * frames to send first and no room left) means "again, now": only
	 * nothing written means congestion or pacing, which an ACK or the
	 * timer ends. Treating the first like the second left the datagram
	 * queued with nothing in flight and no timer near: a stall until the
	 * next keepalive. */
	for (int tries = 0;; tries++) {
		ngtcp2_path_storage_zero(&ps);
		c->busy++;
		n = ngtcp2_conn_writev_datagram(c->qc, &ps.path, &pi, c->pktbuf, c->pktbuf_size,
						&accepted, 0, c->dgram_id++, v, 2, now_ts(c));
		c->busy--;
		if (n < 0) {
			if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_NOBUF) {
				c->st.drop_too_big++;
				return ZG_ERR_TOO_LARGE;
			}
			c->st.drop_congested++;
			return ZG_ERR_LIMIT;
		}
		if (n > 0)
			conn_send(c, &ps.path, c->pktbuf, (size_t)n);
		if (accepted)
			break;
		if (n == 0 || tries == 3) {
			c->pending_blocked = 1;
			if (n > 0) /* not congestion: try again right after this pass */
				c->cfg->io->timer_arm(c->cfg->ioctx, c->timer, 0);
			return ZG_ERR_LIMIT;
		}
	}
	c->st.pkts_out++;
	c->st.bytes_out += len;
	return 0;
}

int masque_conn_send(struct masque_conn *c, const uint8_t *pkt, size_t len)
{
	int r;

	if (!tunnel_ready(c)) {
		c->st.drop_no_tunnel++;
		return ZG_ERR_STATE;
	}
	if (len > masque_conn_max_packet(c)) {
		c->st.drop_too_big++;
		return ZG_ERR_TOO_LARGE; /* C16: the caller sends ICMP */
	}
	/* Inside a library call, or behind packets already waiting: keep a
	 * copy, sent in order on return / when QUIC can take more. */
	if (c->busy || c->pending_len > 0)
		return enqueue(c, pkt, len);
	r = send_now(c, pkt, len);
	if (r == ZG_ERR_LIMIT && c->pending_blocked)
		r = enqueue(c, pkt, len);
	if (!c->busy)
		arm_timer(c);
	return r;
}

int masque_conn_queue_raw(struct masque_conn *c, const uint8_t *data, size_t len)
{
	int r;

	if (c->tunnel_sid < 0)
		return ZG_ERR_STATE;
	r = queue_encoded(c, data, len);
	if (r == 0)
		kick(c);
	return r;
}

int masque_conn_send_raw_datagram(struct masque_conn *c, const uint8_t *data, size_t len)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	ngtcp2_vec v = { (uint8_t *)(uintptr_t)data, len };
	ngtcp2_ssize n;
	int accepted = 0;

	ngtcp2_path_storage_zero(&ps);
	n = ngtcp2_conn_writev_datagram(c->qc, &ps.path, &pi, c->pktbuf, c->pktbuf_size, &accepted,
					0, c->dgram_id++, &v, 1, now_ts(c));
	if (n > 0)
		conn_send(c, &ps.path, c->pktbuf, (size_t)n);
	arm_timer(c);
	return n > 0 && accepted ? 0 : ZG_ERR_LIMIT;
}

void masque_conn_close(struct masque_conn *c, uint64_t app_error, const char *reason)
{
	close_app(c, app_error ? app_error : NGHTTP3_H3_NO_ERROR, 0,
		  reason != NULL ? reason : "closed by owner");
	if (!c->busy) {
		write_close(c);
		c->close_now = 1;
		c->cfg->io->timer_arm(c->cfg->ioctx, c->timer, 0);
	}
}

void masque_conn_destroy(struct masque_conn *c)
{
	close_app(c, NGHTTP3_H3_NO_ERROR, 0, "closed by owner");
	conn_finish(c);
}

void masque_conn_goaway(struct masque_conn *c)
{
	if (c->goaway || c->h3 == NULL || c->closing)
		return;
	c->goaway = 1;
	(void)nghttp3_conn_shutdown(c->h3);
	kick(c);
}

void masque_conn_set_data(struct masque_conn *c, void *data)
{
	c->data = data;
}

void *masque_conn_data(const struct masque_conn *c)
{
	return c->data;
}

const char *masque_conn_identity(const struct masque_conn *c)
{
	return c->identity != NULL ? c->identity : "";
}

const uint8_t *masque_conn_peer_cert(const struct masque_conn *c, size_t *plen)
{
	if (c == NULL || c->cert_der == NULL) {
		*plen = 0;
		return NULL;
	}
	*plen = c->cert_len;
	return c->cert_der;
}

const char *masque_conn_cert_serial(const struct masque_conn *c)
{
	return c->cert_serial != NULL ? c->cert_serial : "";
}

const char *masque_conn_cert_sha256(const struct masque_conn *c)
{
	return c->cert_sha256 != NULL ? c->cert_sha256 : "";
}

const char *masque_conn_tls_group(const struct masque_conn *c)
{
	if (c->ssl == NULL || !wolfSSL_is_init_finished(c->ssl))
		return NULL;
	return wolfSSL_get_curve_name(c->ssl);
}

int masque_conn_got_ticket(const struct masque_conn *c)
{
	WOLFSSL_SESSION *s;

	if (c->is_server || c->ssl == NULL || (s = wolfSSL_get_session(c->ssl)) == NULL)
		return 0;
	return wolfSSL_SESSION_has_ticket(s) == 1;
}

const struct sockaddr *masque_conn_peer(const struct masque_conn *c, socklen_t *plen)
{
	if (plen != NULL)
		*plen = c->remotelen;
	return (const struct sockaddr *)&c->remote;
}

int masque_conn_is_open(const struct masque_conn *c)
{
	return tunnel_ready(c);
}

int masque_conn_congested(const struct masque_conn *c)
{
	return c->congested;
}

int masque_conn_datagrams(const struct masque_conn *c)
{
	return dgram_ok(c);
}

void masque_conn_stats(const struct masque_conn *c, struct masque_stats *st)
{
	*st = c->st;
	if (c->qc != NULL) {
		ngtcp2_conn_info ci;

		ngtcp2_conn_get_conn_info2(c->qc, &ci);
		st->srtt_ns = ci.smoothed_rtt;
		st->min_rtt_ns = ci.min_rtt == UINT64_MAX ? 0 : ci.min_rtt;
		st->cwnd = ci.cwnd;
		st->bytes_in_flight = ci.bytes_in_flight;
		st->quic_sent = ci.pkt_sent;
		st->quic_lost = ci.pkt_lost;
		{
			ngtcp2_tstamp e = ngtcp2_conn_get_expiry(c->qc), now = now_ts(c);

			st->timer_in_ns = e == UINT64_MAX ? UINT64_MAX : e > now ? e - now
										 : 0;
		}
	}
	st->queued = c->pending_len;
}
