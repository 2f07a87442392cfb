#include "relay/dnssvc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "hostport.h"
#include "log.h"
#include "relay/audit.h"
#include "relay/config.h"
#include "relay/dnsmsg.h"
#include "zg_err.h"

#define CACHE_BUCKETS 4096 /* power of two */
#define ADDRS_MAX 64       /* A/AAAA records of one answer we bind */

struct pending {
	struct pending *next, *prev;
	struct dnssvc *d;
	struct stack_flow_info flow;
	char client[STACK_ID_MAX];
	uint64_t conn, sid;
	uint8_t *q; /* the query as sent upstream (our ID) */
	size_t qlen;
	uint16_t client_qid, our_id, udp_max, qtype, qclass;
	char name[POLICY_NAME_MAX];
	char rule[POLICY_ID_MAX];
	size_t up; /* upstream tried now */
	int fd;
	struct event *ev;
	struct bufferevent *bev;
	uint64_t sent_us;
};

struct centry {
	struct centry *hnext;
	struct centry *lnext, *lprev; /* oldest first */
	uint16_t qtype, qclass;
	uint64_t stored_ms, expires_ms;
	uint8_t *msg;
	size_t len;
	char name[POLICY_NAME_MAX];
};

/* An answer that made a route not yet told to its client: sent right
 * after the advertisement that holds the route. */
struct held {
	struct held *next;
	struct stack_flow_info flow; /* client_id points at rdirty's, session NULL */
	uint64_t conn;
	uint16_t udp_max;
	size_t len;
	uint8_t msg[];
};

struct rdirty {
	struct rdirty *next;
	uint64_t last_ms; /* last routes_changed for this client */
	int dirty;
	struct held *held, **held_tail; /* oldest first */
	size_t nheld, held_bytes;
	char client[STACK_ID_MAX];
};

struct dnssvc {
	struct event_base *base;
	struct stack *st;
	struct audit *audit;
	struct dnssvc_config cfg;
	struct dnssvc_hooks hooks;
	struct names *names;
	struct pending *pending;
	size_t npending;
	struct centry *cache[CACHE_BUCKETS];
	struct centry *lru_head, *lru_tail;
	size_t ncache;
	struct rdirty *dirty;
	size_t held_bytes; /* all clients' held answers */
	struct event *ev_routes, *ev_expire;
	uint64_t expire_at; /* ev_expire's deadline, UINT64_MAX: not armed */
	struct dnssvc_counts cnt;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t d_now(const struct dnssvc *d)
{
	return d->hooks.now_ms != NULL ? d->hooks.now_ms(d->hooks.ctx) : now_us() / 1000u;
}

static void tv_ms(struct timeval *tv, uint64_t ms)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000 * 1000);
}

static const char *rcode_name(uint8_t rc)
{
	switch (rc) {
	case 0:
		return "NOERROR";
	case 1:
		return "FORMERR";
	case 2:
		return "SERVFAIL";
	case 3:
		return "NXDOMAIN";
	case 4:
		return "NOTIMP";
	case 5:
		return "REFUSED";
	default:
		return "OTHER";
	}
}

static const char *qtype_name(uint16_t t, char *buf, size_t len)
{
	switch (t) {
	case 1:
		return "A";
	case 2:
		return "NS";
	case 5:
		return "CNAME";
	case 6:
		return "SOA";
	case 12:
		return "PTR";
	case 15:
		return "MX";
	case 16:
		return "TXT";
	case 28:
		return "AAAA";
	case 33:
		return "SRV";
	case 64:
		return "SVCB";
	case 65:
		return "HTTPS";
	case 255:
		return "ANY";
	default:
		(void)snprintf(buf, len, "TYPE%u", t);
		return buf;
	}
}

static void audit_q(struct dnssvc *d, int allow, uint64_t sid, const char *client,
		    const char *name, uint16_t qtype, const char *rule, const char *reason,
		    const char *answer)
{
	char tb[16];
	struct audit_dns_query a = { sid, client, name, qtype_name(qtype, tb, sizeof(tb)), rule,
				     reason, answer };

	if (d->audit != NULL)
		audit_dns(d->audit, allow, &a);
}

/* ---------------------------------------------------------------- routes */

static void reply(struct dnssvc *d, const struct stack_flow_info *flow, uint64_t conn,
		  uint16_t udp_max, const uint8_t *msg, size_t len);

/* When r's advertisement is due: a window after the last one, a shorter
 * one while answers wait for it. */
static uint64_t routes_due(const struct rdirty *r)
{
	return r->last_ms + (r->nheld > 0 ? DNSSVC_ROUTE_HOLD_MS : DNSSVC_ROUTE_COALESCE_MS);
}

static void routes_arm(struct dnssvc *d, uint64_t now)
{
	uint64_t due = UINT64_MAX;
	struct timeval tv;

	for (struct rdirty *r = d->dirty; r != NULL; r = r->next)
		if (r->dirty && routes_due(r) < due)
			due = routes_due(r);
	if (due == UINT64_MAX)
		return;
	tv_ms(&tv, due > now ? due - now : 0);
	(void)event_add(d->ev_routes, &tv);
}

/* Sends (send != 0) or drops r's held answers, oldest first. */
static void held_release(struct dnssvc *d, struct rdirty *r, int send)
{
	struct held *h;

	while ((h = r->held) != NULL) {
		r->held = h->next;
		if (send)
			reply(d, &h->flow, h->conn, h->udp_max, h->msg, h->len);
		free(h);
	}
	r->held_tail = &r->held;
	d->held_bytes -= r->held_bytes;
	r->nheld = 0;
	r->held_bytes = 0;
}

/* Tells r's client its routes now, then sends the answers that waited. */
static void routes_tell(struct dnssvc *d, struct rdirty *r, uint64_t now)
{
	r->dirty = 0;
	r->last_ms = now;
	if (d->hooks.routes_changed != NULL)
		d->hooks.routes_changed(d->hooks.ctx, r->client);
	held_release(d, r, 1);
}

static void routes_run(struct dnssvc *d)
{
	uint64_t now = d_now(d);
	struct rdirty **pp = &d->dirty, *r;

	while ((r = *pp) != NULL) {
		if (r->dirty && now >= routes_due(r))
			routes_tell(d, r, now);
		if (!r->dirty && now >= r->last_ms + DNSSVC_ROUTE_COALESCE_MS) {
			*pp = r->next; /* quiet for a whole window: forget it */
			free(r);
			continue;
		}
		pp = &r->next;
	}
	routes_arm(d, now);
}

static void routes_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	routes_run(arg);
}

/* client's entry, or NULL */
static struct rdirty *rdirty_find(struct dnssvc *d, const char *client)
{
	struct rdirty *r;

	for (r = d->dirty; r != NULL && strcmp(r->client, client) != 0; r = r->next)
		;
	return r;
}

/* client's entry, made when there is none; NULL without memory */
static struct rdirty *rdirty_get(struct dnssvc *d, const char *client)
{
	struct rdirty *r = rdirty_find(d, client);

	if (r == NULL && (r = calloc(1, sizeof(*r))) != NULL) {
		(void)snprintf(r->client, sizeof(r->client), "%s", client);
		r->held_tail = &r->held;
		r->next = d->dirty;
		d->dirty = r;
	}
	return r;
}

/* client's learned routes changed: one advertisement per window. The
 * first change of a window is told at once. Returns the client's entry
 * when the change waits for the window's end, else NULL. */
static struct rdirty *routes_mark(struct dnssvc *d, const char *client)
{
	struct rdirty *r = rdirty_get(d, client);
	uint64_t now = d_now(d);

	if (r == NULL)
		return NULL; /* the next change or expiry tries again */
	r->dirty = 1;
	if (now >= r->last_ms + DNSSVC_ROUTE_COALESCE_MS) {
		routes_run(d);
		return NULL;
	}
	routes_arm(d, now);
	return r;
}

/* client's entry when its routes changed and are not told yet, else NULL */
static struct rdirty *routes_pending(struct dnssvc *d, const char *client)
{
	struct rdirty *r = rdirty_find(d, client);

	return r != NULL && r->dirty ? r : NULL;
}

/* An expired binding (names_expire's callback). */
static void routes_dirty(void *ctx, const char *client)
{
	(void)routes_mark(ctx, client);
}

/* Sends an answer that bound addresses of client: at once when its
 * routes were told already, else after the advertisement that tells them.
 * An answer that came first let the client's first SYN to the name leave
 * by its default route, with that route's source address: a connection
 * the tunnel then drops. Answers waiting shorten the window
 * (DNSSVC_ROUTE_HOLD_MS); past DNSSVC_HOLD_MAX of them, or
 * DNSSVC_HOLD_MAX_BYTES of one client's, or DNSSVC_HOLD_MAX_BYTES_ALL of
 * all clients', the routes are told at once. */
static void reply_after_routes(struct dnssvc *d, struct rdirty *r,
			       const struct stack_flow_info *flow, uint64_t conn,
			       uint16_t udp_max, const uint8_t *msg, size_t len)
{
	struct held *h;

	if (r == NULL || !r->dirty) {
		reply(d, flow, conn, udp_max, msg, len);
		return;
	}
	if (r->nheld >= DNSSVC_HOLD_MAX || r->held_bytes + len > DNSSVC_HOLD_MAX_BYTES ||
	    d->held_bytes + len > DNSSVC_HOLD_MAX_BYTES_ALL ||
	    (h = malloc(sizeof(*h) + len)) == NULL) {
		routes_tell(d, r, d_now(d));
		routes_arm(d, d_now(d));
		reply(d, flow, conn, udp_max, msg, len);
		return;
	}
	h->next = NULL;
	h->flow = *flow;
	h->flow.client_id = r->client;
	h->flow.session = NULL;
	h->conn = conn;
	h->udp_max = udp_max;
	h->len = len;
	memcpy(h->msg, msg, len);
	*r->held_tail = h;
	r->held_tail = &h->next;
	r->nheld++;
	r->held_bytes += len;
	d->held_bytes += len;
	d->cnt.held++;
	if (r->nheld == 1) /* the window just became shorter */
		routes_run(d);
}

static void expire_arm(struct dnssvc *d, uint64_t due)
{
	struct timeval tv;
	uint64_t now = d_now(d);

	if (due == UINT64_MAX || due >= d->expire_at)
		return;
	d->expire_at = due;
	tv_ms(&tv, due > now ? due - now : 0);
	(void)event_add(d->ev_expire, &tv);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dnssvc *d = arg;

	(void)fd;
	(void)what;
	d->expire_at = UINT64_MAX;
	expire_arm(d, names_expire(d->names, d_now(d), routes_dirty, d));
}

/* ---------------------------------------------------------------- cache */

static size_t cache_slot(const char *name, uint16_t qtype, uint16_t qclass)
{
	uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)qtype << 16) ^ qclass;

	for (const char *s = name; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (size_t)(h ^ (h >> 32)) & (CACHE_BUCKETS - 1);
}

static void cache_remove(struct dnssvc *d, struct centry *e)
{
	struct centry **pp = &d->cache[cache_slot(e->name, e->qtype, e->qclass)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		d->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		d->lru_tail = e->lprev;
	d->ncache--;
	free(e->msg);
	free(e);
}

static struct centry *cache_find(struct dnssvc *d, const char *name, uint16_t qtype,
				 uint16_t qclass, uint64_t now)
{
	struct centry *e = d->cache[cache_slot(name, qtype, qclass)];

	for (; e != NULL; e = e->hnext) {
		if (e->qtype != qtype || e->qclass != qclass || strcmp(e->name, name) != 0)
			continue;
		if (now >= e->expires_ms) {
			cache_remove(d, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

static void cache_put(struct dnssvc *d, const struct pending *p, const uint8_t *msg, size_t len,
		      uint32_t ttl_s, uint64_t now)
{
	struct centry *e;
	size_t s;

	if (d->cfg.cache_entries == 0 || ttl_s == 0 || ttl_s == UINT32_MAX)
		return;
	if (ttl_s > d->cfg.names.ttl_cap_ms / 1000)
		ttl_s = d->cfg.names.ttl_cap_ms / 1000;
	if ((e = cache_find(d, p->name, p->qtype, p->qclass, now)) != NULL)
		cache_remove(d, e);
	while (d->ncache >= d->cfg.cache_entries && d->lru_head != NULL)
		cache_remove(d, d->lru_head);
	if ((e = calloc(1, sizeof(*e))) == NULL || (e->msg = malloc(len)) == NULL) {
		free(e);
		return;
	}
	memcpy(e->msg, msg, len);
	e->len = len;
	e->qtype = p->qtype;
	e->qclass = p->qclass;
	e->stored_ms = now;
	e->expires_ms = now + (uint64_t)ttl_s * 1000;
	(void)snprintf(e->name, sizeof(e->name), "%s", p->name);
	s = cache_slot(e->name, e->qtype, e->qclass);
	e->hnext = d->cache[s];
	d->cache[s] = e;
	e->lprev = d->lru_tail;
	if (d->lru_tail)
		d->lru_tail->lnext = e;
	else
		d->lru_head = e;
	d->lru_tail = e;
	d->ncache++;
}

/* ---------------------------------------------------------------- answers */

/* Sends msg to the client; a UDP answer over its size goes as TC. */
static void reply(struct dnssvc *d, const struct stack_flow_info *flow, uint64_t conn,
		  uint16_t udp_max, const uint8_t *msg, size_t len)
{
	uint8_t *tc = NULL;
	size_t tclen;
	int r;

	if (conn == 0 && len > udp_max) {
		struct dnsmsg_answer a;
		struct dnsmsg_addr none[1];
		/* the question of the answer, rebuilt as a TC answer */
		if (dnsmsg_parse_answer(msg, len, &a, none, 0) != 0)
			return;
		uint8_t *q = malloc(len);
		if (q == NULL)
			return;
		memcpy(q, msg, len);
		q[2] &= 0x7f; /* as a query, for dnsmsg_build_reply's question */
		r = dnsmsg_build_reply(q, len, a.rcode, 1, &tc, &tclen);
		free(q);
		if (r != 0)
			return;
		msg = tc;
		len = tclen;
	}
	(void)stack_service_reply(d->st, flow, conn, msg, len);
	free(tc);
}

static void reply_rcode(struct dnssvc *d, const struct stack_flow_info *flow, uint64_t conn,
			const uint8_t *query, size_t qlen, uint8_t rcode)
{
	uint8_t *out = NULL;
	size_t n;

	if (dnsmsg_build_reply(query, qlen, rcode, 0, &out, &n) == 0)
		(void)stack_service_reply(d->st, flow, conn, out, n);
	free(out);
}

/* Binds the addresses of an allowed answer; 0, or -1 when one of them is
 * never reachable (nothing is bound then). *wait: the client's entry when
 * its routes changed and are not told yet (reply_after_routes), else NULL:
 * an answer with an address waits then, new or not (the same address
 * from the cache, or under another name, may be one not told yet). */
static int bind_answer(struct dnssvc *d, const char *client, const char *rule, const char *name,
		       const uint8_t *msg, size_t len, struct rdirty **wait)
{
	struct dnsmsg_addr ad[ADDRS_MAX];
	struct dnsmsg_answer a;
	uint64_t now = d_now(d), exp_min = UINT64_MAX;
	int changed = 0;

	*wait = NULL;
	if (dnsmsg_parse_answer(msg, len, &a, ad, ADDRS_MAX) != 0)
		return 0;
	for (size_t i = 0; i < a.naddr; i++) {
		struct stack_addr sa;
		memset(&sa, 0, sizeof(sa));
		sa.version = ad[i].version;
		memcpy(sa.a, ad[i].a, ad[i].version == 4 ? 4 : 16);
		if (stack_dst_forbidden(d->st, &sa))
			return -1;
	}
	for (size_t i = 0; i < a.naddr; i++) {
		struct stack_addr sa;
		memset(&sa, 0, sizeof(sa));
		sa.version = ad[i].version;
		memcpy(sa.a, ad[i].a, ad[i].version == 4 ? 4 : 16);
		int r = names_bind(d->names, client, &sa, rule, name, ad[i].ttl, now);
		if (r == 1)
			changed = 1;
		if (r == ZG_ERR_LIMIT)
			log_debug("%s: learned routes at dns.max_learned_routes, %s not bound", client,
				  name);
		const struct names_binding *b = names_lookup(d->names, client, &sa, now);
		if (b != NULL && b->expires_ms < exp_min)
			exp_min = b->expires_ms;
	}
	expire_arm(d, exp_min);
	if (changed)
		*wait = routes_mark(d, client);
	else if (a.naddr > 0)
		*wait = routes_pending(d, client);
	return 0;
}

/* The upstream's answer (our ID) for p: bound, cached, sent on. */
static void answered(struct pending *p, uint8_t *msg, size_t len)
{
	struct dnssvc *d = p->d;
	struct dnsmsg_answer a;
	struct dnsmsg_addr none[1];
	struct rdirty *wait;

	zg_histo_observe(&d->cnt.upstream, now_us() - p->sent_us);
	if (dnsmsg_parse_answer(msg, len, &a, none, 0) != 0) {
		d->cnt.servfail++;
		reply_rcode(d, &p->flow, p->conn, p->q, p->qlen, DNSMSG_RCODE_SERVFAIL);
		audit_q(d, 1, p->sid, p->client, p->name, p->qtype, p->rule, NULL, "SERVFAIL");
		return;
	}
	dnsmsg_set_id(msg, p->client_qid);
	if (bind_answer(d, p->client, p->rule, p->name, msg, len, &wait) != 0) {
		/* DNS rebinding: an allowed name leads somewhere never reachable */
		d->cnt.rebinding++;
		dnsmsg_set_id(p->q, p->client_qid);
		reply_rcode(d, &p->flow, p->conn, p->q, p->qlen, DNSMSG_RCODE_REFUSED);
		audit_q(d, 0, p->sid, p->client, p->name, p->qtype, p->rule, "rebinding", "REFUSED");
		log_info("%s: %s resolves to a never-reachable address: refused", p->client, p->name);
		return;
	}
	if (!a.tc && (a.rcode == DNSMSG_RCODE_NOERROR || a.rcode == DNSMSG_RCODE_NXDOMAIN))
		cache_put(d, p, msg, len, a.min_ttl, d_now(d));
	d->cnt.allowed++;
	reply_after_routes(d, wait, &p->flow, p->conn, p->udp_max, msg, len);
	audit_q(d, 1, p->sid, p->client, p->name, p->qtype, p->rule, NULL, rcode_name(a.rcode));
}

static void pending_free(struct pending *p)
{
	struct dnssvc *d = p->d;

	if (p->prev)
		p->prev->next = p->next;
	else
		d->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	d->npending--;
	if (p->ev)
		event_free(p->ev);
	if (p->fd >= 0)
		close(p->fd);
	if (p->bev)
		bufferevent_free(p->bev);
	free(p->q);
	free(p);
}

static int udp_send(struct pending *p);

/* This upstream failed: the next one, or SERVFAIL. */
static void next_upstream(struct pending *p)
{
	struct dnssvc *d = p->d;

	if (p->ev) {
		event_free(p->ev);
		p->ev = NULL;
	}
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	while (++p->up < d->cfg.n_upstreams)
		if (udp_send(p) == 0)
			return;
	d->cnt.servfail++;
	dnsmsg_set_id(p->q, p->client_qid);
	reply_rcode(d, &p->flow, p->conn, p->q, p->qlen, DNSMSG_RCODE_SERVFAIL);
	audit_q(d, 1, p->sid, p->client, p->name, p->qtype, p->rule, "upstream", "SERVFAIL");
	pending_free(p);
}

static void tcp_read_cb(struct bufferevent *bev, void *arg)
{
	struct pending *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[2], *m;
	size_t n;

	if (evbuffer_get_length(in) < 2)
		return;
	(void)evbuffer_copyout(in, hdr, 2);
	n = ((size_t)hdr[0] << 8) | hdr[1];
	if (evbuffer_get_length(in) < 2 + n)
		return;
	m = evbuffer_pullup(in, (ssize_t)(2 + n));
	if (m == NULL || n < 12 || dnsmsg_id(m + 2) != p->our_id) {
		next_upstream(p);
		return;
	}
	answered(p, m + 2, n);
	pending_free(p);
}

static void tcp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct pending *p = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	next_upstream(p); /* error, EOF or timeout */
}

/* The UDP answer was truncated: the same query over TCP, same upstream. */
static int tcp_send(struct pending *p)
{
	struct dnssvc *d = p->d;
	struct timeval tv;
	uint8_t hdr[2] = { (uint8_t)(p->qlen >> 8), (uint8_t)p->qlen };

	p->bev = bufferevent_socket_new(d->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (p->bev == NULL)
		return ZG_ERR_NOMEM;
	bufferevent_setcb(p->bev, tcp_read_cb, NULL, tcp_event_cb, p);
	tv_ms(&tv, DNSSVC_TIMEOUT_MS);
	bufferevent_set_timeouts(p->bev, &tv, &tv);
	if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&d->cfg.upstream[p->up],
				       (int)d->cfg.upstream_len[p->up]) != 0 ||
	    bufferevent_write(p->bev, hdr, 2) != 0 || bufferevent_write(p->bev, p->q, p->qlen) != 0 ||
	    bufferevent_enable(p->bev, EV_READ | EV_WRITE) != 0)
		return ZG_ERR_IO;
	d->cnt.upstream_tcp++;
	return 0;
}

static void udp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	uint8_t buf[65536];
	ssize_t n;

	if (what & EV_TIMEOUT) {
		next_upstream(p);
		return;
	}
	while ((n = recv(fd, buf, sizeof(buf), 0)) >= 0) {
		struct dnsmsg_answer a;
		struct dnsmsg_addr none[1];
		if (n < 12 || dnsmsg_id(buf) != p->our_id)
			continue; /* not ours: keep waiting (the timeout still runs) */
		if (dnsmsg_parse_answer(buf, (size_t)n, &a, none, 0) == 0 && a.tc) {
			event_free(p->ev);
			p->ev = NULL;
			close(p->fd);
			p->fd = -1;
			if (tcp_send(p) != 0)
				next_upstream(p);
			return;
		}
		answered(p, buf, (size_t)n);
		pending_free(p);
		return;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		next_upstream(p); /* ICMP port unreachable and the like */
}

static int udp_send(struct pending *p)
{
	struct dnssvc *d = p->d;
	const struct sockaddr *sa = (const struct sockaddr *)&d->cfg.upstream[p->up];
	struct timeval tv;

	p->fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return ZG_ERR_IO;
	if (connect(p->fd, sa, d->cfg.upstream_len[p->up]) != 0 ||
	    send(p->fd, p->q, p->qlen, 0) != (ssize_t)p->qlen)
		goto fail;
	p->ev = event_new(d->base, p->fd, EV_READ | EV_PERSIST, udp_cb, p);
	tv_ms(&tv, DNSSVC_TIMEOUT_MS);
	if (p->ev == NULL || event_add(p->ev, &tv) != 0)
		goto fail;
	p->sent_us = now_us();
	return 0;
fail:
	if (p->ev) {
		event_free(p->ev);
		p->ev = NULL;
	}
	close(p->fd);
	p->fd = -1;
	return ZG_ERR_IO;
}

/* ---------------------------------------------------------------- queries */

void dnssvc_query(struct dnssvc *d, const struct stack_flow_info *flow, uint64_t conn,
		  const uint8_t *msg, size_t len)
{
	struct dnsmsg_query q;
	const char *rule = "invalid";
	enum policy_action act = POLICY_DENY;
	uint64_t sid = d->hooks.session_id ? d->hooks.session_id(d->hooks.ctx, flow->session) : 0;
	struct centry *e;
	struct pending *p;
	uint64_t now = d_now(d);

	if (dnsmsg_parse_query(msg, len, &q) != 0) {
		d->cnt.malformed++;
		return; /* no question to answer */
	}
	if (q.name_ok)
		act = policy_eval_name(d->hooks.policy(d->hooks.ctx), flow->client_id, q.name, &rule);
	if (act != POLICY_ALLOW) {
		d->cnt.denied++;
		reply_rcode(d, flow, conn, msg, len, d->cfg.deny_rcode);
		audit_q(d, 0, sid, flow->client_id, q.name, q.qtype, rule, "policy",
			rcode_name(d->cfg.deny_rcode));
		return;
	}
	if ((e = cache_find(d, q.name, q.qtype, q.qclass, now)) != NULL) {
		uint8_t *aged = NULL;
		size_t alen;
		uint32_t age = (uint32_t)((now - e->stored_ms) / 1000);
		if (dnsmsg_age(e->msg, e->len, q.id, age, &aged, &alen) == 0) {
			d->cnt.cache_hits++;
			d->cnt.allowed++;
			/* cached answers passed the rebinding check when stored */
			struct rdirty *wait;
			(void)bind_answer(d, flow->client_id, rule, q.name, aged, alen, &wait);
			reply_after_routes(d, wait, flow, conn, q.udp_max, aged, alen);
			struct dnsmsg_answer a;
			struct dnsmsg_addr none[1];
			(void)dnsmsg_parse_answer(aged, alen, &a, none, 0);
			audit_q(d, 1, sid, flow->client_id, q.name, q.qtype, rule, "cache",
				rcode_name(a.rcode));
			free(aged);
			return;
		}
	}
	size_t mine = 0;
	for (p = d->pending; p != NULL; p = p->next)
		mine += strcmp(p->client, flow->client_id) == 0;
	if (d->npending >= DNSSVC_MAX_PENDING || mine >= DNSSVC_MAX_PENDING_PER_CLIENT ||
	    d->cfg.n_upstreams == 0 || (p = calloc(1, sizeof(*p))) == NULL) {
		d->cnt.overload++;
		reply_rcode(d, flow, conn, msg, len, DNSMSG_RCODE_SERVFAIL);
		audit_q(d, 1, sid, flow->client_id, q.name, q.qtype, rule, "overload", "SERVFAIL");
		return;
	}
	p->d = d;
	p->fd = -1;
	p->flow = *flow;
	(void)snprintf(p->client, sizeof(p->client), "%s", flow->client_id);
	p->flow.client_id = p->client;
	p->flow.session = NULL;
	p->conn = conn;
	p->sid = sid;
	p->client_qid = q.id;
	p->udp_max = q.udp_max;
	p->qtype = q.qtype;
	p->qclass = q.qclass;
	memcpy(p->name, q.name, sizeof(p->name));
	(void)snprintf(p->rule, sizeof(p->rule), "%s", rule);
	if ((p->q = malloc(len)) == NULL) {
		free(p);
		return;
	}
	memcpy(p->q, msg, len);
	p->qlen = len;
	evutil_secure_rng_get_bytes(&p->our_id, sizeof(p->our_id));
	dnsmsg_set_id(p->q, p->our_id);
	p->next = d->pending;
	if (d->pending)
		d->pending->prev = p;
	d->pending = p;
	d->npending++;
	p->up = 0;
	if (udp_send(p) != 0) {
		p->up = (size_t)-1;
		next_upstream(p); /* tries upstream 0 again, then the rest */
	}
}

static void svc_fn(void *ctx, const struct stack_flow_info *flow, uint64_t conn,
		   const uint8_t *msg, size_t len)
{
	dnssvc_query(ctx, flow, conn, msg, len);
}

/* ---------------------------------------------------------------- life */

static int add_upstream(struct dnssvc_config *cfg, const char *host, uint16_t port)
{
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;
	size_t i = cfg->n_upstreams;

	if (i == DNSSVC_MAX_UPSTREAMS)
		return 1; /* more are ignored, like resolv.conf's MAXNS */
	memset(&cfg->upstream[i], 0, sizeof(cfg->upstream[i]));
	s4 = (struct sockaddr_in *)&cfg->upstream[i];
	s6 = (struct sockaddr_in6 *)&cfg->upstream[i];
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		cfg->upstream_len[i] = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		cfg->upstream_len[i] = sizeof(*s6);
	} else {
		return -1;
	}
	cfg->n_upstreams++;
	return 0;
}

int dnssvc_parse_upstreams(struct dnssvc_config *cfg, const char *list, const char *resolv_conf,
			   char *err, size_t errlen)
{
	char item[128], host[128];
	const char *s = list;

	cfg->n_upstreams = 0;
	if (list[0] == '\0') {
		FILE *f = fopen(resolv_conf, "r");
		char line[512];
		if (f == NULL) {
			(void)snprintf(err, errlen, "dns.upstreams: empty, and %s cannot be read: %s",
				       resolv_conf, strerror(errno));
			return ZG_ERR_CONFIG;
		}
		while (fgets(line, sizeof(line), f) != NULL) {
			char *tok = strtok(line, " \t\r\n"), *a;
			if (tok == NULL || strcmp(tok, "nameserver") != 0 ||
			    (a = strtok(NULL, " \t\r\n")) == NULL)
				continue;
			char *pct = strchr(a, '%'); /* fe80::1%eth0: zone not kept */
			if (pct)
				*pct = '\0';
			(void)add_upstream(cfg, a, 53);
		}
		fclose(f);
		if (cfg->n_upstreams == 0) {
			(void)snprintf(err, errlen, "dns.upstreams: empty, and %s names no nameserver",
				       resolv_conf);
			return ZG_ERR_CONFIG;
		}
		return 0;
	}
	while (*s) {
		size_t n = strcspn(s, ", ");
		uint16_t port = 53;
		if (n == 0) {
			s++;
			continue;
		}
		if (n >= sizeof(item))
			n = sizeof(item) - 1;
		memcpy(item, s, n);
		item[n] = '\0';
		s += n;
		if (strchr(item, ']') != NULL || (strchr(item, ':') && strchr(item, '.'))) {
			if (hostport_split(item, host, sizeof(host), &port) != 0 || port == 0)
				goto bad;
		} else {
			(void)snprintf(host, sizeof(host), "%s", item);
		}
		if (add_upstream(cfg, host, port) < 0)
			goto bad;
	}
	if (cfg->n_upstreams == 0) {
		(void)snprintf(err, errlen, "dns.upstreams: \"%s\" names no resolver", list);
		return ZG_ERR_CONFIG;
	}
	return 0;
bad:
	(void)snprintf(err, errlen, "dns.upstreams: \"%s\" is not an IP address or [address]:port "
				    "(e.g. 192.0.2.53, [2001:db8::53]:5353)",
		       item);
	return ZG_ERR_CONFIG;
}

int dnssvc_config_build(struct dnssvc_config *dc, const struct relay_config *cfg,
			const char *resolv_conf, char *err, size_t errlen)
{
	memset(dc, 0, sizeof(*dc));
	dc->deny_rcode = strcmp(cfg->dns_deny_answer, "refused") == 0 ? DNSMSG_RCODE_REFUSED
								      : DNSMSG_RCODE_NXDOMAIN;
	dc->names.ttl_floor_ms = cfg->dns_ttl_floor_ms;
	dc->names.ttl_cap_ms = cfg->dns_ttl_cap_ms;
	dc->names.max_per_client = cfg->dns_max_learned_routes;
	dc->cache_entries = cfg->dns_cache_entries;
	return dnssvc_parse_upstreams(dc, cfg->dns_upstreams, resolv_conf, err, errlen);
}

int dnssvc_new(struct event_base *base, struct stack *st, struct audit *audit,
	       const struct dnssvc_config *cfg, const struct dnssvc_hooks *hooks,
	       struct dnssvc **pd)
{
	struct dnssvc *d;
	int r;

	if (base == NULL || st == NULL || cfg == NULL || hooks == NULL || hooks->policy == NULL ||
	    cfg->n_gw == 0)
		return ZG_ERR_INVAL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return ZG_ERR_NOMEM;
	d->base = base;
	d->st = st;
	d->audit = audit;
	d->cfg = *cfg;
	d->hooks = *hooks;
	d->expire_at = UINT64_MAX;
	if ((r = names_new(&cfg->names, &d->names)) != 0)
		goto fail;
	d->ev_routes = evtimer_new(base, routes_cb, d);
	d->ev_expire = evtimer_new(base, expire_cb, d);
	if (d->ev_routes == NULL || d->ev_expire == NULL) {
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	if ((r = stack_service_set(st, cfg->gw, cfg->n_gw, 53, svc_fn, d)) != 0)
		goto fail;
	*pd = d;
	return 0;
fail:
	dnssvc_free(d);
	return r;
}

void dnssvc_free(struct dnssvc *d)
{
	if (d == NULL)
		return;
	(void)stack_service_set(d->st, NULL, 0, 0, NULL, NULL);
	while (d->pending != NULL)
		pending_free(d->pending);
	while (d->lru_head != NULL)
		cache_remove(d, d->lru_head);
	while (d->dirty != NULL) {
		struct rdirty *r = d->dirty;
		d->dirty = r->next;
		held_release(d, r, 0);
		free(r);
	}
	if (d->ev_routes)
		event_free(d->ev_routes);
	if (d->ev_expire)
		event_free(d->ev_expire);
	names_free(d->names);
	free(d);
}

const struct names_binding *dnssvc_binding(struct dnssvc *d, const char *client,
					   const struct stack_addr *dst)
{
	return d ? names_lookup(d->names, client, dst, d_now(d)) : NULL;
}

size_t dnssvc_routes(struct dnssvc *d, const char *client, struct cip_route *out, size_t max)
{
	size_t k = 0;

	if (d == NULL)
		return 0;
	for (size_t i = 0; i < d->cfg.n_gw && k < max; i++) {
		struct cip_route *r = &out[k++];
		memset(r, 0, sizeof(*r));
		r->version = d->cfg.gw[i].version;
		memcpy(r->start, d->cfg.gw[i].a, r->version == 4 ? 4 : 16);
		memcpy(r->end, d->cfg.gw[i].a, r->version == 4 ? 4 : 16);
	}
	return k + names_routes(d->names, client, out + k, max - k, NULL);
}

void dnssvc_tick(struct dnssvc *d)
{
	d->expire_at = UINT64_MAX;
	expire_arm(d, names_expire(d->names, d_now(d), routes_dirty, d));
	routes_run(d);
}

void dnssvc_get_counts(const struct dnssvc *d, struct dnssvc_counts *c)
{
	*c = d->cnt;
	c->cache_entries = d->ncache;
	names_get_counts(d->names, &c->names);
}
