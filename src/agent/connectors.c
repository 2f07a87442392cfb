#include "agent/connectors.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "agent/backoff.h"
#include "agent/ptb.h"
#include "be.h"
#include "log.h"
#include "masque/masque.h"
#include "masque/tls.h"
#include "masque/tunio.h"
#include "masque/uri.h"
#include "zg_err.h"

#define ICMP_PER_SECOND 100                        /* ICMP answers to the TUN, unreachable and too big */
#define STABLE_NS (10ull * 1000000000ull)          /* a session this old resets the backoff */
#define UNSOLICITED_LOG_NS (10ull * 1000000000ull) /* unsolicited packets: a log line at most this often */
#define CN_PREFIX ZGCONN_IDENTITY_PREFIX

struct connector {
	struct connectors *cs;
	struct zgconn info; /* as the relay last sent it */
	enum connector_state state;
	int refused; /* the last handshake refused the peer's certificate */

	/* the inner session; lport 0 = none */
	struct tunio *tio;
	WOLFSSL_CTX *tls;
	struct masque_conn *c;
	int open, closing;
	masque_time opened_at;
	struct masque_config mc;
	struct masque_cbs cbs;
	char authority[64], path[128], want_cn[sizeof(CN_PREFIX) + ZGCONN_ID_MAX];
	uint8_t ver; /* address family of the session: 4 or 6 */
	uint8_t laddr[16], raddr[16];
	uint16_t lport;
	struct backoff bo;
	struct event *retry_ev;
	char seen_serial[TLS_SERIAL_HEX_MAX];            /* verified in the handshake under way */
	uint64_t unsolicited_log_ns, unsolicited_logged; /* the last log line: when, the count then */

	struct connector_status st;
};

_Static_assert(sizeof(((struct connector_status *)0)->cert_serial) == TLS_SERIAL_HEX_MAX,
	       "cert_serial holds a tls_cert_ids() serial");

struct connectors {
	struct connectors_env env;
	struct connector *e[ZGCONN_MAX];
	size_t n;
	struct route_prefix local4, local6;
	uint64_t icmp_window; /* ICMP_PER_SECOND */
	unsigned icmp_count;
	uint8_t icmp[PTB_MAX];
	/* connectors_set_list() is rebuilding e[]: changes are reported once
	 * at its end (the owner's changed() walks e[]) */
	int updating, pending_change;
};

static int ex_idx = -1; /* the connector a TLS context verifies for */

const char *connectors_state_name(enum connector_state s)
{
	switch (s) {
	case CONNECTOR_DOWN:
		return "down";
	case CONNECTOR_CONNECTING:
		return "connecting";
	case CONNECTOR_UP:
		return "up";
	case CONNECTOR_REFUSED:
		return "refused";
	}
	return "unknown";
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The module's clock: env.now_ns, else CLOCK_MONOTONIC. */
static uint64_t now_ns(const struct connectors *cs)
{
	return cs->env.now_ns != NULL ? cs->env.now_ns(cs->env.ctx) : mono_ns();
}

static uint32_t random32(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)mono_ns();
	return r;
}

/* ------------------------------------------------------------------ */
/* pure helpers                                                       */

/* 1 when the first len bits of a and b agree. */
static int bits_equal(const uint8_t *a, const uint8_t *b, unsigned len)
{
	unsigned full = len / 8, rest = len % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static int prefix_has(const struct zgconn_prefix *p, uint8_t ver, const uint8_t *addr)
{
	unsigned max = ver == 4 ? 32 : 128;

	return p->version == ver && p->len <= max && bits_equal(p->a, addr, p->len);
}

/* The destination (dst 1) or source of an IPv4/IPv6 packet. Returns the
 * version, 0 when malformed. */
static uint8_t pkt_addr(const uint8_t *pkt, size_t len, int dst, const uint8_t **pa)
{
	if (len >= 20 && pkt[0] >> 4 == 4) {
		*pa = pkt + (dst ? 16 : 12);
		return 4;
	}
	if (len >= 40 && pkt[0] >> 4 == 6) {
		*pa = pkt + (dst ? 24 : 8);
		return 6;
	}
	return 0;
}

enum connectors_steer connectors_steer(const struct connectors *cs, const uint8_t *pkt,
				       size_t len, size_t *pidx)
{
	const uint8_t *dst;
	uint8_t v = pkt_addr(pkt, len, 1, &dst);
	int best = -1;
	size_t bi = 0;

	if (v == 0)
		return CONNECTORS_PASS;
	for (size_t i = 0; i < cs->n; i++) {
		const struct zgconn *z = &cs->e[i]->info;

		for (size_t j = 0; j < z->nprefixes; j++)
			if (prefix_has(&z->prefixes[j], v, dst) && (int)z->prefixes[j].len > best) {
				best = z->prefixes[j].len;
				bi = i;
			}
	}
	if (best < 0)
		return CONNECTORS_PASS;
	*pidx = bi;
	if (cs->e[bi]->info.up && cs->e[bi]->c != NULL && cs->e[bi]->open)
		return CONNECTORS_INNER;
	return CONNECTORS_UNREACHABLE;
}

int connectors_match_outer(const struct connectors *cs, const uint8_t *pkt, size_t len,
			   size_t *pidx)
{
	size_t hl;
	uint16_t sport, dport;
	const uint8_t *src, *dst;

	if (len >= 20 && pkt[0] >> 4 == 4) {
		hl = (size_t)(pkt[0] & 15) * 4;
		if (hl < 20 || pkt[9] != 17 || len < hl + 8 || (be16_get(pkt + 6) & 0x3fff) != 0)
			return 0; /* not UDP, or a fragment */
		src = pkt + 12;
		dst = pkt + 16;
	} else if (len >= 48 && pkt[0] >> 4 == 6) {
		hl = 40;
		if (pkt[6] != 17)
			return 0;
		src = pkt + 8;
		dst = pkt + 24;
	} else {
		return 0;
	}
	sport = be16_get(pkt + hl);
	dport = be16_get(pkt + hl + 2);
	for (size_t i = 0; i < cs->n; i++) {
		const struct connector *e = cs->e[i];
		size_t al = e->ver == 4 ? 4 : 16;

		if (e->lport == 0 || e->ver != pkt[0] >> 4 || dport != e->lport ||
		    sport != e->info.port || memcmp(dst, e->laddr, al) != 0 ||
		    memcmp(src, e->raddr, al) != 0)
			continue;
		*pidx = i;
		return 1;
	}
	return 0;
}

size_t connectors_routes(const struct connectors *cs, struct route_prefix *out, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < cs->n; i++) {
		/* down ones too: their packets are answered ICMP unreachable */
		const struct zgconn *z = &cs->e[i]->info;

		for (size_t j = 0; j < z->nprefixes && k < max; j++) {
			struct route_prefix p;
			int dup = 0;

			memset(&p, 0, sizeof(p));
			p.version = z->prefixes[j].version;
			memcpy(p.addr, z->prefixes[j].a, 16);
			p.len = z->prefixes[j].len;
			for (size_t m = 0; m < k && !dup; m++)
				dup = routes_equal(&out[m], &p);
			if (!dup)
				out[k++] = p;
		}
	}
	return k;
}

size_t connectors_count(const struct connectors *cs)
{
	return cs->n;
}

void connectors_status(const struct connectors *cs, size_t i, struct connector_status *st)
{
	const struct connector *e = cs->e[i];

	*st = e->st;
	(void)snprintf(st->id, sizeof(st->id), "%s", e->info.id);
	st->state = e->state;
	st->rtt_us = 0;
	if (e->c != NULL && e->open) {
		struct masque_stats ms;

		masque_conn_stats(e->c, &ms);
		st->rtt_us = ms.srtt_ns / 1000;
	}
}

/* ------------------------------------------------------------------ */
/* inner sessions                                                     */

static void changed(struct connectors *cs)
{
	if (cs->updating) {
		cs->pending_change = 1;
		return;
	}
	if (cs->env.changed != NULL)
		cs->env.changed(cs->env.ctx);
}

static void set_error(struct connector *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_error(struct connector *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(e->st.last_error, sizeof(e->st.last_error), fmt, ap);
	va_end(ap);
}

/* The client's view of the connector's chain: wolfSSL's verdict, then on
 * the leaf the serverAuth purpose and the CN "connector:<ID>" this
 * context was made for. */
static int verify_connector(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(store,
							  wolfSSL_get_ex_data_X509_STORE_CTX_idx());
	WOLFSSL_CTX *ctx = ssl != NULL ? wolfSSL_get_SSL_CTX(ssl) : NULL;
	struct connector *e = ctx != NULL && ex_idx >= 0 ? wolfSSL_CTX_get_ex_data(ctx, ex_idx)
							 : NULL;
	WOLFSSL_X509 *cert = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	char id[TLS_ID_MAX];
	enum tls_reject r;

	if (e == NULL)
		return 0;
	if (!preverify) {
		r = tls_reject_from_error(wolfSSL_X509_STORE_CTX_get_error(store));
		e->refused = 1;
		set_error(e, "certificate refused: %s", tls_reject_name(r));
		return 0;
	}
	if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
		return 1;
	if (cert == NULL || tls_check_eku(cert, 0) != TLS_ACCEPTED) {
		e->refused = 1;
		set_error(e, "certificate refused: no serverAuth purpose");
		return 0;
	}
	r = tls_client_id(cert, TLS_IDENTITY_CN, id, sizeof(id));
	if (r != TLS_ACCEPTED || strcmp(id, e->want_cn) != 0) {
		e->refused = 1;
		set_error(e, "certificate refused: CN \"%s\" is not \"%s\"",
			  r == TLS_ACCEPTED ? id : tls_reject_name(r), e->want_cn);
		return 0;
	}
	{
		char sha[TLS_SHA256_HEX_LEN];

		(void)tls_cert_ids(cert, e->seen_serial, sha);
	}
	return 1;
}

static void emit(void *ctx, const uint8_t *pkt, size_t len)
{
	struct connector *e = ctx;
	struct connectors *cs = e->cs;

	if (cs->env.to_outer != NULL)
		(void)cs->env.to_outer(cs->env.ctx, pkt, len);
}

static void set_state(struct connector *e, enum connector_state s)
{
	if (e->state == s)
		return;
	log_info("connector %s: %s -> %s%s%s", e->info.id, connectors_state_name(e->state),
		 connectors_state_name(s), e->st.last_error[0] ? ": " : "", e->st.last_error);
	e->state = s;
	changed(e->cs);
}

static void schedule(struct connector *e)
{
	uint32_t ms = backoff_next(&e->bo, random32());
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (e->retry_ev != NULL)
		(void)evtimer_add(e->retry_ev, &tv);
	log_debug("connector %s: next attempt in %u ms", e->info.id, ms);
}

static void in_open(struct masque_conn *c, void *ctx)
{
	struct connector *e = ctx;

	(void)c;
	e->open = 1;
	e->refused = 0;
	e->opened_at = now_ns(e->cs);
	e->st.last_error[0] = '\0';
	memcpy(e->st.cert_serial, e->seen_serial, sizeof(e->st.cert_serial));
	log_info("connector %s: inner session open (certificate %s, serial %s)", e->info.id,
		 e->want_cn, e->st.cert_serial[0] ? e->st.cert_serial : "?");
	set_state(e, CONNECTOR_UP);
}

/* Inner packets go to the TUN when their source is one the connector
 * serves: a connector cannot speak for other addresses. */
static void in_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct connector *e = ctx;
	struct connectors *cs = e->cs;
	const uint8_t *src;
	uint8_t v = pkt_addr(pkt, len, 0, &src);
	int ok = 0;

	(void)c;
	for (size_t j = 0; v != 0 && j < e->info.nprefixes && !ok; j++)
		ok = prefix_has(&e->info.prefixes[j], v, src);
	if (!ok) {
		e->st.rx_dropped++;
		return;
	}
	e->st.rx_packets++;
	e->st.rx_bytes += len;
	if (cs->env.to_tun != NULL)
		cs->env.to_tun(cs->env.ctx, pkt, len);
}

static void in_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct connector *e = ctx;
	int was_open = e->open;

	(void)c;
	e->c = NULL;
	e->open = 0;
	if (e->closing)
		return;
	if (!e->refused)
		set_error(e, "%s: %s", was_open ? "session lost" : "cannot connect", ci->reason);
	else
		log_warnx("connector %s: %s; refused", e->info.id, e->st.last_error);
	if (was_open && now_ns(e->cs) - e->opened_at >= STABLE_NS)
		backoff_reset(&e->bo);
	set_state(e, e->refused ? CONNECTOR_REFUSED : CONNECTOR_CONNECTING);
	schedule(e);
}

/* Ends the session (not from inside one of its callbacks). */
static void stop_session(struct connector *e)
{
	if (e->retry_ev != NULL)
		(void)evtimer_del(e->retry_ev);
	if (e->c != NULL) {
		e->closing = 1;
		masque_conn_destroy(e->c); /* on_close clears e->c */
		e->closing = 0;
	}
	e->c = NULL;
	e->open = 0;
	e->lport = 0;
}

static void free_session(struct connector *e)
{
	stop_session(e);
	if (e->retry_ev != NULL)
		event_free(e->retry_ev);
	e->retry_ev = NULL;
	if (e->tio != NULL)
		tunio_free(e->tio);
	e->tio = NULL;
	if (e->tls != NULL)
		wolfSSL_CTX_free(e->tls);
	e->tls = NULL;
}

static void fill_sa(struct sockaddr_storage *ss, socklen_t *plen, uint8_t ver, const uint8_t *a,
		    uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (ver == 4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		s4->sin_port = htons(port);
		*plen = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		s6->sin6_port = htons(port);
		*plen = sizeof(*s6);
	}
}

/* A TLS context for connector e (NULL: a check of the files only) from
 * env's files: the agent's certificate and key, trusting connector_ca;
 * its verify callback knows which CN to want. Returns 0 and *pctx, or
 * ZG_ERR_CONFIG with err naming the file. */
static int build_tls(const struct connectors_env *env, struct connector *e, WOLFSSL_CTX **pctx,
		     char *err, size_t errlen)
{
	WOLFSSL_CTX *ctx = NULL;

	if (tls_client_ctx_new(env->cert, env->key, env->ca, &ctx, err, errlen) != 0)
		return ZG_ERR_CONFIG;
	if (ex_idx < 0)
		ex_idx = wolfSSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (ex_idx < 0 || wolfSSL_CTX_set_ex_data(ctx, ex_idx, e) != WOLFSSL_SUCCESS) {
		wolfSSL_CTX_free(ctx);
		(void)snprintf(err, errlen, "cannot attach the connector to its TLS context");
		return ZG_ERR_CONFIG;
	}
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, verify_connector);
	*pctx = ctx;
	return 0;
}

/* Makes the TLS context (once per connector, and again on
 * connectors_reload_tls()). Returns 0 or ZG_ERR_CONFIG (logged). */
static int make_tls(struct connector *e)
{
	char err[512];

	if (e->tls != NULL)
		return 0;
	if (build_tls(&e->cs->env, e, &e->tls, err, sizeof(err)) != 0) {
		set_error(e, "%s", err);
		log_warnx("connector %s: %s", e->info.id, err);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

static void start_session(struct connector *e);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_session(arg);
}

/* Starts the inner session when the connector is up, we have an address
 * of its family and the outer tunnel is open; else waits (connecting). */
static void start_session(struct connector *e)
{
	struct connectors *cs = e->cs;
	const struct connectors_env *env = &cs->env;
	const struct zgconn_prefix *ra = NULL;
	const struct route_prefix *la = NULL;
	struct sockaddr_storage l, r;
	socklen_t ll, rl;
	struct uri_scope any;
	size_t omax, over;
	int rc;

	if (!e->info.up || e->c != NULL)
		return;
	if (e->state != CONNECTOR_REFUSED)
		set_state(e, CONNECTOR_CONNECTING);
	if (env->base == NULL)
		return; /* no sessions without an event loop */
	for (size_t i = 0; i < e->info.naddrs && ra == NULL; i++) {
		if (e->info.addrs[i].version == 4 && cs->local4.version == 4) {
			ra = &e->info.addrs[i];
			la = &cs->local4;
		} else if (e->info.addrs[i].version == 6 && cs->local6.version == 6) {
			ra = &e->info.addrs[i];
			la = &cs->local6;
		}
	}
	if (ra == NULL)
		return; /* connectors_set_local() starts it */
	over = ra->version == 4 ? CONNECTORS_OVERHEAD4 : CONNECTORS_OVERHEAD6;
	omax = env->outer_max != NULL ? env->outer_max(env->ctx) : 0;
	if (omax < over + 1200)
		return; /* connectors_outer_changed() starts it */
	if (e->retry_ev == NULL) {
		e->retry_ev = evtimer_new(env->base, retry_cb, e);
		if (e->retry_ev == NULL)
			return;
	}
	if (make_tls(e) != 0) {
		schedule(e);
		return;
	}
	if (e->tio == NULL && tunio_new(env->base, emit, e, &e->tio) != 0) {
		set_error(e, "cannot create the tunnel transport");
		schedule(e);
		return;
	}
	e->ver = ra->version;
	memcpy(e->laddr, la->addr, 16);
	memcpy(e->raddr, ra->a, 16);
	e->lport = (uint16_t)(CONNECTORS_PORT_MIN + random32() % (65536u - CONNECTORS_PORT_MIN));
	fill_sa(&l, &ll, e->ver, e->laddr, e->lport);
	fill_sa(&r, &rl, e->ver, e->raddr, e->info.port);
	memset(&any, 0, sizeof(any));
	any.any_target = 1;
	any.any_proto = 1;
	{
		char tmpl[160];

		(void)snprintf(tmpl, sizeof(tmpl),
			       "https://" CONNECTORS_SNI ":%u/.well-known/masque/ip/{target}/{ipproto}/",
			       e->info.port);
		if (uri_expand(tmpl, &any, e->authority, sizeof(e->authority), e->path,
			       sizeof(e->path)) != 0) {
			e->lport = 0;
			set_error(e, "cannot expand the inner request");
			return;
		}
	}
	memset(&e->mc, 0, sizeof(e->mc));
	e->mc.tls = e->tls;
	e->mc.io = tunio_io();
	e->mc.ioctx = e->tio;
	e->mc.server_name = CONNECTORS_SNI;
	e->mc.cert_name = ""; /* verify_connector() checks the CN */
	e->mc.authority = e->authority;
	e->mc.path = e->path;
	e->mc.idle_timeout_ms = env->idle_timeout_ms;
	e->mc.keepalive_ms = env->keepalive_ms;
	e->mc.max_udp_payload = omax - over;
	memset(&e->cbs, 0, sizeof(e->cbs));
	e->cbs.on_open = in_open;
	e->cbs.on_packet = in_packet;
	e->cbs.on_close = in_close;
	e->refused = 0;
	e->seen_serial[0] = '\0';
	rc = masque_client_new(&e->mc, &e->cbs, e, (struct sockaddr *)&l, ll,
			       (struct sockaddr *)&r, rl, &e->c);
	if (rc != 0) {
		e->c = NULL;
		e->lport = 0;
		set_error(e, "cannot start the inner session: %s", zg_strerror(rc));
		log_warnx("connector %s: %s", e->info.id, e->st.last_error);
		schedule(e);
		return;
	}
	log_debug("connector %s: inner session from port %u", e->info.id, e->lport);
}

/* ------------------------------------------------------------------ */
/* the list                                                           */

int connectors_new(const struct connectors_env *env, struct connectors **pcs)
{
	struct connectors *cs;

	if (env == NULL || pcs == NULL)
		return ZG_ERR_INVAL;
	cs = calloc(1, sizeof(*cs));
	if (cs == NULL)
		return ZG_ERR_NOMEM;
	cs->env = *env;
	*pcs = cs;
	return 0;
}

static void connector_del(struct connector *e)
{
	free_session(e);
	free(e);
}

void connectors_free(struct connectors *cs)
{
	if (cs == NULL)
		return;
	for (size_t i = 0; i < cs->n; i++)
		connector_del(cs->e[i]);
	free(cs);
}

static int same_where(const struct zgconn *a, const struct zgconn *b)
{
	if (a->port != b->port || a->naddrs != b->naddrs)
		return 0;
	for (size_t i = 0; i < a->naddrs; i++)
		if (a->addrs[i].version != b->addrs[i].version ||
		    memcmp(a->addrs[i].a, b->addrs[i].a, 16) != 0)
			return 0;
	return 1;
}

static int entry_ok(const struct zgconn *z)
{
	if (!zgconn_id_valid(z->id)) {
		log_warnx("connector list: invalid connector ID; entry skipped");
		return 0;
	}
	if (z->naddrs > ZGCONN_MAX_ADDRS || (z->up && (z->naddrs == 0 || z->port == 0)) ||
	    z->nprefixes > ZGCONN_MAX_PREFIXES) {
		log_warnx("connector %s: no address or port; entry skipped", z->id);
		return 0;
	}
	for (size_t i = 0; i < z->nprefixes; i++)
		if ((z->prefixes[i].version != 4 && z->prefixes[i].version != 6) ||
		    z->prefixes[i].len > (z->prefixes[i].version == 4 ? 32 : 128)) {
			log_warnx("connector %s: invalid prefix; entry skipped", z->id);
			return 0;
		}
	return 1;
}

size_t connectors_set_list(struct connectors *cs, const struct zgconn *v, size_t n)
{
	struct connector *keep[ZGCONN_MAX];
	size_t k = 0;
	int any = 0;

	if (n > ZGCONN_MAX)
		n = ZGCONN_MAX;
	cs->updating = 1;
	for (size_t i = 0; i < n; i++) {
		struct connector *e = NULL;
		int dup = 0;

		if (!entry_ok(&v[i]))
			continue;
		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(keep[j]->info.id, v[i].id) == 0;
		if (dup) {
			log_warnx("connector %s: listed twice; the first entry counts", v[i].id);
			continue;
		}
		for (size_t j = 0; j < cs->n && e == NULL; j++)
			if (cs->e[j] != NULL && strcmp(cs->e[j]->info.id, v[i].id) == 0) {
				e = cs->e[j];
				cs->e[j] = NULL;
			}
		if (e == NULL) {
			e = calloc(1, sizeof(*e));
			if (e == NULL) {
				log_warnx("connector %s: out of memory; skipped", v[i].id);
				continue;
			}
			e->cs = cs;
			e->state = CONNECTOR_DOWN;
			backoff_init(&e->bo, cs->env.reconnect_min_ms ? cs->env.reconnect_min_ms : 500,
				     cs->env.reconnect_max_ms ? cs->env.reconnect_max_ms : 30000);
			(void)snprintf(e->want_cn, sizeof(e->want_cn), CN_PREFIX "%s", v[i].id);
			log_info("connector %s: listed (%s, %zu prefixes)", v[i].id,
				 v[i].up ? "up" : "down", v[i].nprefixes);
			any = 1;
		} else {
			if (!v[i].up || !same_where(&e->info, &v[i])) {
				if (e->c != NULL || e->lport != 0)
					stop_session(e);
			}
			if (e->info.up != v[i].up || e->info.nprefixes != v[i].nprefixes ||
			    memcmp(e->info.prefixes, v[i].prefixes,
				   v[i].nprefixes * sizeof(v[i].prefixes[0])) != 0)
				any = 1;
		}
		if (!v[i].up && v[i].nprefixes == 0 && e->info.nprefixes > 0) {
			/* The relay lists a connector that went down without its
			 * prefixes: keep routing the last ones into the TUN so
			 * their packets get ICMP unreachable at once, rather than
			 * leaving by another route or timing out. */
			struct zgconn was = e->info;

			e->info = v[i];
			memcpy(e->info.prefixes, was.prefixes, sizeof(was.prefixes));
			e->info.nprefixes = was.nprefixes;
		} else {
			e->info = v[i];
		}
		e->info.id[ZGCONN_ID_MAX - 1] = '\0';
		if (!e->info.up) {
			if (e->retry_ev != NULL)
				(void)evtimer_del(e->retry_ev);
			e->refused = 0;
			backoff_reset(&e->bo);
			set_state(e, CONNECTOR_DOWN);
		}
		keep[k++] = e;
	}
	for (size_t j = 0; j < cs->n; j++)
		if (cs->e[j] != NULL) {
			log_info("connector %s: no longer listed", cs->e[j]->info.id);
			connector_del(cs->e[j]);
			any = 1;
		}
	memcpy(cs->e, keep, k * sizeof(keep[0]));
	cs->n = k;
	for (size_t i = 0; i < k; i++)
		if (cs->e[i]->info.up && cs->e[i]->c == NULL &&
		    (cs->e[i]->retry_ev == NULL || !evtimer_pending(cs->e[i]->retry_ev, NULL)))
			start_session(cs->e[i]);
	cs->updating = 0;
	if (any || cs->pending_change)
		changed(cs);
	cs->pending_change = 0;
	return k;
}

int connectors_on_capsule(struct connectors *cs, const uint8_t *value, size_t len)
{
	struct zgconn *v = calloc(ZGCONN_MAX, sizeof(*v));
	size_t n = 0;
	int r;

	if (v == NULL)
		return ZG_ERR_NOMEM;
	r = zgconn_decode(value, len, v, ZGCONN_MAX, &n);
	if (r == 0)
		(void)connectors_set_list(cs, v, n);
	else
		log_warnx("connector list from the relay: %s; keeping the one in force",
			  zg_strerror(r));
	free(v);
	return r;
}

static int local_equal(const struct route_prefix *a, const struct route_prefix *b)
{
	return a->version == b->version && memcmp(a->addr, b->addr, 16) == 0;
}

void connectors_set_local(struct connectors *cs, const struct route_prefix *v4,
			  const struct route_prefix *v6)
{
	struct route_prefix n4, n6;

	memset(&n4, 0, sizeof(n4));
	memset(&n6, 0, sizeof(n6));
	if (v4 != NULL && v4->version == 4)
		n4 = *v4;
	if (v6 != NULL && v6->version == 6)
		n6 = *v6;
	if (local_equal(&n4, &cs->local4) && local_equal(&n6, &cs->local6))
		return;
	cs->local4 = n4;
	cs->local6 = n6;
	for (size_t i = 0; i < cs->n; i++) {
		struct connector *e = cs->e[i];
		const struct route_prefix *now = e->ver == 4 ? &cs->local4 : &cs->local6;

		if (e->lport != 0 && (now->version == 0 || memcmp(now->addr, e->laddr, 16) != 0))
			stop_session(e);
		start_session(e);
	}
}

void connectors_outer_changed(struct connectors *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		struct connector *e = cs->e[i];

		if (e->c == NULL &&
		    (e->retry_ev == NULL || !evtimer_pending(e->retry_ev, NULL)))
			start_session(e);
	}
}

int connectors_reload_tls(struct connectors *cs, char *err, size_t errlen)
{
	WOLFSSL_CTX *nt[ZGCONN_MAX] = { NULL };
	char why[512];

	/* every context first: a file that does not load changes nothing */
	for (size_t i = 0; i < (cs->n > 0 ? cs->n : 1); i++) {
		if (build_tls(&cs->env, cs->n > 0 ? cs->e[i] : NULL, &nt[i], why, sizeof(why)) !=
		    0) {
			for (size_t k = 0; k < i; k++)
				wolfSSL_CTX_free(nt[k]);
			(void)snprintf(err, errlen, "connectors' inner sessions: %s", why);
			return ZG_ERR_CONFIG;
		}
	}
	if (cs->n == 0) {
		wolfSSL_CTX_free(nt[0]); /* the files load; contexts are made when listed */
		return 0;
	}
	for (size_t i = 0; i < cs->n; i++) {
		struct connector *e = cs->e[i];

		if (e->tls != NULL)
			wolfSSL_CTX_free(e->tls); /* an open session holds its own reference */
		e->tls = nt[i];
		/* waiting to retry (perhaps refused for the old certificate or
		 * CA): try the new ones now */
		if (e->c == NULL && e->retry_ev != NULL && evtimer_pending(e->retry_ev, NULL)) {
			struct timeval now = { 0, 0 };

			backoff_reset(&e->bo);
			(void)evtimer_add(e->retry_ev, &now);
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* packets                                                            */

/* 1 when one more ICMP answer may go to the TUN this second (counted). */
static int icmp_allowed(struct connectors *cs)
{
	uint64_t now = now_ns(cs);

	if (now - cs->icmp_window > 1000000000ull) {
		cs->icmp_window = now;
		cs->icmp_count = 0;
	}
	if (cs->icmp_count >= ICMP_PER_SECOND)
		return 0;
	cs->icmp_count++;
	return 1;
}

static void answer_unreachable(struct connectors *cs, struct connector *e, const uint8_t *pkt,
			       size_t len)
{
	size_t n = 0;

	e->st.unreachable++;
	if (cs->env.to_tun != NULL &&
	    ptb_unreachable(pkt, len, e->state == CONNECTOR_REFUSED, cs->icmp, sizeof(cs->icmp),
			    &n) == 0 &&
	    n > 0 && icmp_allowed(cs))
		cs->env.to_tun(cs->env.ctx, cs->icmp, n);
}

/* pkt is larger than e's inner tunnel carries: its datagrams travel
 * inside the outer tunnel's, so its largest packet (inner max_udp_payload
 * = the outer largest packet less the IP/UDP headers, less the inner QUIC
 * and HTTP Datagram overhead) is smaller than the TUN's MTU. The sender
 * learns it from ICMP "too big", as for the outer tunnel (C16). */
static void answer_too_big(struct connectors *cs, struct connector *e, const uint8_t *pkt,
			   size_t len)
{
	size_t mtu = masque_conn_max_packet(e->c), n = 0;

	e->st.too_big++;
	if (cs->env.to_tun != NULL && mtu > 0 &&
	    ptb_build(pkt, len, (uint32_t)mtu, cs->icmp, sizeof(cs->icmp), &n) == 0 && n > 0 &&
	    icmp_allowed(cs)) {
		e->st.icmp_too_big++;
		cs->env.to_tun(cs->env.ctx, cs->icmp, n);
	}
}

enum connectors_steer connectors_from_tun(struct connectors *cs, const uint8_t *pkt, size_t len)
{
	size_t i = 0;
	enum connectors_steer s = connectors_steer(cs, pkt, len, &i);
	struct connector *e;
	int r;

	if (s == CONNECTORS_PASS)
		return s;
	e = cs->e[i];
	if (s == CONNECTORS_UNREACHABLE) {
		answer_unreachable(cs, e, pkt, len);
		return s;
	}
	r = masque_conn_send(e->c, pkt, len);
	if (r == 0) {
		e->st.tx_packets++;
		e->st.tx_bytes += len;
	} else if (r == ZG_ERR_TOO_LARGE) {
		answer_too_big(cs, e, pkt, len);
	} else {
		e->st.tx_dropped++;
	}
	return s;
}

/* The listed connector one of whose tunnel addresses is the source of
 * pkt, or NULL. */
static struct connector *from_connector(const struct connectors *cs, const uint8_t *pkt,
					size_t len)
{
	const uint8_t *src;
	uint8_t v = pkt_addr(pkt, len, 0, &src);

	if (v == 0)
		return NULL;
	for (size_t i = 0; i < cs->n; i++) {
		const struct zgconn *z = &cs->e[i]->info;

		for (size_t j = 0; j < z->naddrs; j++)
			if (z->addrs[j].version == v &&
			    memcmp(z->addrs[j].a, src, v == 4 ? 4 : 16) == 0)
				return cs->e[i];
	}
	return NULL;
}

/* A packet from e's address that no inner session of ours asked for: the
 * relay forwards whatever a connector sends to an agent address it has a
 * link with, so this is where the agent's own ports are kept out of a
 * connector's reach. Counted; logged at most every UNSOLICITED_LOG_NS. */
static void unsolicited(struct connectors *cs, struct connector *e)
{
	uint64_t now = now_ns(cs);

	e->st.rx_unsolicited++;
	if (e->unsolicited_logged != 0 && now - e->unsolicited_log_ns < UNSOLICITED_LOG_NS)
		return;
	log_warnx("connector %s: %llu packets from its address to no inner session of ours "
		  "dropped (%llu since the last report)",
		  e->info.id, (unsigned long long)e->st.rx_unsolicited,
		  (unsigned long long)(e->st.rx_unsolicited - e->unsolicited_logged));
	e->unsolicited_log_ns = now;
	e->unsolicited_logged = e->st.rx_unsolicited;
}

int connectors_from_outer(struct connectors *cs, const uint8_t *pkt, size_t len)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);
	const uint8_t *pl = NULL;
	size_t plen = 0, i = 0;
	struct connector *e;

	if (!connectors_match_outer(cs, pkt, len, &i)) {
		if ((e = from_connector(cs, pkt, len)) == NULL)
			return 0;
		unsolicited(cs, e);
		return 1;
	}
	e = cs->e[i];
	if (e->c == NULL ||
	    !tunio_parse_udp(pkt, len, &l, &ll, &r, &rl, &pl, &plen)) {
		e->st.rx_dropped++;
		return 1;
	}
	(void)masque_conn_input(e->c, (struct sockaddr *)&l, ll, (struct sockaddr *)&r, rl, pl,
				plen);
	return 1;
}
