#include "relay/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fnv.h"
#include "log.h"
#include "zg_err.h"

#define LINE_MAX_BYTES 2048
#define BUCKETS 1024     /* per-client deny windows; a colliding client evicts */
#define GLOBAL_FACTOR 20 /* default global cap: this many clients' worth */
#define ID_MAX 64

struct bucket {
	char client[ID_MAX];
	uint64_t window_start;
	uint32_t in_window;
	uint64_t suppressed;
	uint64_t session_id; /* of the last deny counted here */
};

struct audit {
	audit_write_fn write;
	void *wctx;
	audit_wake_fn wake;
	void *wake_ctx;
	int woken;    /* wake() called, audit_drain() not yet done */
	int draining; /* audit_drain() in progress (no wake from inside) */
	audit_clock_fn clock;
	void *ctx;
	/* the output buffer: bytes [head, tail) wait for the writer */
	char *buf;
	size_t cap, head, tail;
	uint64_t dropped_total;
	uint64_t dropped_pending; /* not yet reported in an audit_dropped line */
	uint64_t first_drop_ms;   /* when the current gap began */
	uint64_t last_drop_log_ms, last_gap_log_ms;
	int drop_logged, gap_logged; /* the log lines, once per AUDIT_DROP_LOG_MS */
	int write_failed;            /* the writer's lasting error, logged once */
	uint32_t deny_per_s;
	/* all clients together, under the per-client windows: a window of
	 * its own so many flooding clients cannot flood the trail */
	uint32_t deny_global_per_s;
	uint64_t gwindow_start;
	uint32_t gin_window;
	uint64_t lines, suppressed_total;
	struct bucket b[BUCKETS];
};

/* A line under construction: appends never overflow; an over-long line is
 * cut at a field boundary and still closed as valid JSON. */
struct line {
	char buf[LINE_MAX_BYTES];
	size_t n;
	int full;
	int raw; /* audit_raw(): another process's line, counted there */
	uint64_t now;
	/* not a per-flow or per-query line: written at once (see finish) */
	int urgent;
};

static uint64_t real_clock(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int audit_new(const struct audit_config *cfg, struct audit **pa)
{
	size_t cap = cfg->buffer_bytes ? cfg->buffer_bytes : AUDIT_BUFFER_DEFAULT;
	struct audit *a;

	if (cap < AUDIT_BUFFER_MIN)
		return ZG_ERR_INVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return ZG_ERR_NOMEM;
	a->buf = malloc(cap);
	if (!a->buf) {
		free(a);
		return ZG_ERR_NOMEM;
	}
	a->cap = cap;
	a->write = cfg->write;
	a->wctx = cfg->write_ctx;
	a->wake = cfg->wake;
	a->wake_ctx = cfg->wake_ctx;
	a->clock = cfg->clock ? cfg->clock : real_clock;
	a->ctx = cfg->clock_ctx;
	a->deny_per_s = cfg->deny_per_s;
	a->deny_global_per_s = cfg->deny_per_s * GLOBAL_FACTOR;
	a->gwindow_start = a->clock(a->ctx);
	*pa = a;
	return 0;
}

static void raw(struct line *l, const char *s, size_t n)
{
	/* keep 3 bytes for the closing "}\n" and NUL */
	if (l->full || l->n + n + 3 > sizeof(l->buf)) {
		l->full = 1;
		return;
	}
	memcpy(l->buf + l->n, s, n);
	l->n += n;
}

static void str(struct line *l, const char *s)
{
	char tmp[LINE_MAX_BYTES];
	size_t n = 0;

	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
	size_t sl;
	uint32_t cp;

	/* JSON text is UTF-8: control characters, DEL, U+2028/9 are escaped,
	 * a byte that is not well-formed UTF-8 becomes U+FFFD (16.8a). */
	tmp[n++] = '"';
	for (; p < end && n + 8 < sizeof(tmp); p += sl) {
		sl = log_utf8_seq(p, (size_t)(end - p), &cp);
		if (sl == 0) {
			n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "\\ufffd");
			sl = 1;
		} else if (cp == '"' || cp == '\\') {
			tmp[n++] = '\\';
			tmp[n++] = (char)cp;
		} else if (cp < 0x20 || cp == 0x7f || cp == 0x2028 || cp == 0x2029) {
			n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "\\u%04x", (unsigned)cp);
		} else {
			memcpy(tmp + n, p, sl);
			n += sl;
		}
	}
	tmp[n++] = '"';
	raw(l, tmp, n);
}

static void kv_str(struct line *l, const char *k, const char *v)
{
	char key[64];
	int n;

	if (!v)
		return;
	n = snprintf(key, sizeof(key), ",\"%s\":", k);
	if (n > 0 && (size_t)n < sizeof(key)) {
		size_t save = l->n;
		raw(l, key, (size_t)n);
		str(l, v);
		if (l->full) { /* drop the field whole; later ones may still fit */
			l->n = save;
			l->full = 0;
		}
	}
}

static void kv_u64(struct line *l, const char *k, uint64_t v)
{
	char tmp[96];
	int n = snprintf(tmp, sizeof(tmp), ",\"%s\":%llu", k, (unsigned long long)v);
	if (n > 0 && (size_t)n < sizeof(tmp))
		raw(l, tmp, (size_t)n);
}

static void ts_str(uint64_t now, char *out, size_t outlen)
{
	char ts[64];
	time_t sec = (time_t)(now / 1000);
	struct tm tm;

	gmtime_r(&sec, &tm);
	if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	(void)snprintf(out, outlen, "%s.%03uZ", ts, (unsigned)(now % 1000));
}

static void begin(struct audit *a, struct line *l, const char *event, uint64_t now)
{
	char ts[64];

	l->n = 0;
	l->full = 0;
	l->raw = 0;
	l->now = now;
	l->urgent = strncmp(event, "flow_", 5) != 0 && strncmp(event, "dns_", 4) != 0;
	ts_str(now, ts, sizeof(ts));
	l->n = (size_t)snprintf(l->buf, sizeof(l->buf), "{\"ts\":\"%s\",\"event\":\"%s\"",
				ts, event);
	(void)a;
}

static void kv_sid(struct line *l, uint64_t sid)
{
	char tmp[48];
	int n;

	if (sid == 0)
		return;
	n = snprintf(tmp, sizeof(tmp), ",\"session_id\":\"%016llx\"", (unsigned long long)sid);
	if (n > 0 && (size_t)n < sizeof(tmp))
		raw(l, tmp, (size_t)n);
}

/* Room for n more bytes, moving what waits to the front if that makes it. */
static int room(struct audit *a, size_t n)
{
	if (a->tail - a->head + n > a->cap)
		return 0;
	if (a->tail + n > a->cap) {
		memmove(a->buf, a->buf + a->head, a->tail - a->head);
		a->tail -= a->head;
		a->head = 0;
	}
	return 1;
}

static void put(struct audit *a, const char *p, size_t n)
{
	memcpy(a->buf + a->tail, p, n);
	a->tail += n;
}

static void drop(struct audit *a, uint64_t now)
{
	if (a->dropped_pending == 0)
		a->first_drop_ms = now;
	a->dropped_pending++;
	a->dropped_total++;
	if (!a->drop_logged || now - a->last_drop_log_ms >= AUDIT_DROP_LOG_MS) {
		log_warnx("audit output is not keeping up: %llu lines dropped so far (%zu bytes "
			  "wait to be written)",
			  (unsigned long long)a->dropped_total, a->tail - a->head);
		a->drop_logged = 1;
		a->last_drop_log_ms = now;
	}
}

/* After a gap, the line that says so comes first: writes it into line
 * (GAP_LINE_MAX bytes) and returns its length, 0 when there is no gap. */
#define GAP_LINE_MAX 256
static size_t gap_line(const struct audit *a, uint64_t now, char *line)
{
	char since[64], ts[64];
	int n;

	if (a->dropped_pending == 0)
		return 0;
	ts_str(a->first_drop_ms, since, sizeof(since));
	ts_str(now, ts, sizeof(ts));
	n = snprintf(line, GAP_LINE_MAX,
		     "{\"ts\":\"%s\",\"event\":\"audit_dropped\",\"count\":%llu,"
		     "\"since\":\"%s\"}\n",
		     ts, (unsigned long long)a->dropped_pending, since);
	return n > 0 && (size_t)n < GAP_LINE_MAX ? (size_t)n : 0;
}

/* The gap line is in the buffer. */
static void gap_reported(struct audit *a, uint64_t now)
{
	if (!a->gap_logged || now - a->last_gap_log_ms >= AUDIT_DROP_LOG_MS) {
		char since[64];

		ts_str(a->first_drop_ms, since, sizeof(since));
		log_info("audit output keeps up again: %llu lines were dropped since %s",
			 (unsigned long long)a->dropped_pending, since);
		a->gap_logged = 1;
		a->last_gap_log_ms = now;
	}
	a->lines++;
	a->dropped_pending = 0;
}

static void kick(struct audit *a)
{
	if (a->draining || a->head == a->tail)
		return;
	if (a->wake == NULL) {
		(void)audit_drain(a);
	} else if (!a->woken) {
		a->woken = 1;
		a->wake(a->wake_ctx);
	}
}

static void commit(struct audit *a, struct line *l);

static void finish(struct audit *a, struct line *l)
{
	l->buf[l->n++] = '}';
	l->buf[l->n++] = '\n';
	commit(a, l);
}

int audit_raw(struct audit *a, const char *line, size_t len)
{
	struct line l;

	if (len < 2 || len > sizeof(l.buf) || line[len - 1] != '\n' ||
	    memchr(line, '\n', len - 1) != NULL)
		return ZG_ERR_INVAL;
	memcpy(l.buf, line, len);
	l.n = len;
	l.full = 0;
	l.now = a->clock(a->ctx);
	l.urgent = 0; /* the caller drains after its batch */
	l.raw = 1;
	commit(a, &l);
	return 0;
}

/* A worker's audit_dropped line that finds no room: its count joins this
 * trail's own gap (the next audit_dropped line here says both), so the
 * counts in the trail still add up to every line lost. 1 when absorbed. */
static int absorb_gap(struct audit *a, const struct line *l)
{
	static const char key[] = "\"event\":\"audit_dropped\",\"count\":";
	const char *p = memmem(l->buf, l->n, key, sizeof(key) - 1);
	unsigned long long c = 0;

	if (p == NULL)
		return 0;
	for (p += sizeof(key) - 1; p < l->buf + l->n && *p >= '0' && *p <= '9'; p++)
		c = c * 10 + (unsigned long long)(*p - '0');
	if (c == 0)
		return 0;
	if (a->dropped_pending == 0)
		a->first_drop_ms = l->now;
	a->dropped_pending += c;
	return 1;
}

/* l (a whole line) into the buffer, or dropped and counted. */
static void commit(struct audit *a, struct line *l)
{
	char gap[GAP_LINE_MAX];
	size_t g;

	/* the gap is reported only with the line that ends it: a summary
	 * squeezed into a still-full buffer would say the gap was over */
	g = gap_line(a, l->now, gap);
	if (!room(a, g + l->n) && a->wake == NULL && !a->draining) {
		(void)audit_drain(a); /* no owner to drain later: now */
		g = gap_line(a, l->now, gap);
	}
	if (!room(a, g + l->n)) {
		if (l->raw && absorb_gap(a, l))
			return;
		drop(a, l->now);
		return;
	}
	if (g != 0) {
		put(a, gap, g);
		gap_reported(a, l->now);
	}
	put(a, l->buf, l->n);
	if (!l->raw)
		a->lines++;
	/* Per-flow and per-query lines wait for the owner's batch (the wake);
	 * the rare ones (sessions, refusals, limits, reloads) are written
	 * now, before the relay answers the peer they concern, so whoever
	 * sees the answer finds the line already in the trail. An output
	 * that cannot take them all now is left to the owner's wake. */
	if (l->urgent && a->wake != NULL && !a->draining) {
		if (audit_drain(a) == 1)
			a->wake(a->wake_ctx);
		return;
	}
	kick(a);
}

int audit_drain(struct audit *a)
{
	int rv = 0;

	a->woken = 0;
	a->draining = 1;
	while (a->head < a->tail) {
		ssize_t n;

		if (a->write == NULL) {
			a->head = a->tail; /* nowhere to write: nothing is kept */
			break;
		}
		n = a->write(a->wctx, a->buf + a->head, a->tail - a->head);
		if (n < 0) {
			if (!a->write_failed)
				log_warn("audit output: cannot write");
			a->write_failed = 1;
			rv = ZG_ERR_IO;
			break;
		}
		if (n == 0) {
			rv = 1;
			break;
		}
		a->write_failed = 0;
		a->head += (size_t)n;
	}
	if (a->head == a->tail)
		a->head = a->tail = 0;
	/* space returned: say how much is missing now, not at the next event */
	if (rv == 0 && a->dropped_pending != 0) {
		char gap[GAP_LINE_MAX];
		uint64_t now = a->clock(a->ctx);
		size_t g = gap_line(a, now, gap);

		if (g != 0 && room(a, g)) {
			put(a, gap, g);
			gap_reported(a, now);
			a->draining = 0;
			return audit_drain(a);
		}
	}
	a->draining = 0;
	/* 1: the owner calls again when the output can take more; no wake
	 * per line meanwhile */
	a->woken = rv == 1;
	return rv;
}

size_t audit_pending(const struct audit *a)
{
	return a->tail - a->head;
}

static void flow_fields(struct line *l, const struct audit_flow *f)
{
	kv_str(l, "client", f->client);
	kv_str(l, "proto", f->proto);
	kv_str(l, "src", f->src);
	kv_u64(l, "sport", f->sport);
	kv_str(l, "dst", f->dst);
	kv_u64(l, "dport", f->dport);
	kv_str(l, "rule", f->rule);
	kv_str(l, "name", f->name);
	kv_str(l, "reason", f->reason);
}

static int deny_admit(struct audit *a, const char *client, uint64_t session_id, uint64_t now);

void audit_dns(struct audit *a, int allow, const struct audit_dns_query *q)
{
	uint64_t now = a->clock(a->ctx);
	struct line l;

	if (!allow && !deny_admit(a, q->client, q->session_id, now))
		return;
	begin(a, &l, allow ? "dns_allow" : "dns_deny", now);
	kv_str(&l, "client", q->client);
	kv_str(&l, "name", q->name);
	kv_str(&l, "qtype", q->qtype);
	kv_str(&l, "rule", q->rule);
	kv_str(&l, "reason", q->reason);
	kv_str(&l, "answer", q->answer);
	kv_sid(&l, q->session_id);
	finish(a, &l);
}

void audit_relay_start(struct audit *a, const char *version, const char *listen,
		       const char *ops_listen, const char *admin_listen, long pid)
{
	struct line l;

	begin(a, &l, "relay_start", a->clock(a->ctx));
	kv_str(&l, "version", version);
	kv_str(&l, "listen", listen);
	kv_str(&l, "ops_listen", ops_listen);
	if (admin_listen != NULL && admin_listen[0] != '\0')
		kv_str(&l, "admin_listen", admin_listen);
	kv_u64(&l, "pid", pid > 0 ? (uint64_t)pid : 0);
	finish(a, &l);
}

void audit_relay_stop(struct audit *a, const char *reason, uint64_t uptime_ms)
{
	struct line l;

	begin(a, &l, "relay_stop", a->clock(a->ctx));
	kv_str(&l, "reason", reason);
	kv_u64(&l, "uptime_ms", uptime_ms);
	finish(a, &l);
}

void audit_session_open(struct audit *a, uint64_t session_id, const char *client,
			const char *vip, const char *peer, const char *cert_serial,
			const char *cert_sha256)
{
	struct line l;

	begin(a, &l, "session_open", a->clock(a->ctx));
	kv_str(&l, "client", client);
	kv_str(&l, "vip", vip);
	kv_str(&l, "peer", peer);
	if (cert_serial != NULL && cert_serial[0] != '\0')
		kv_str(&l, "cert_serial", cert_serial);
	if (cert_sha256 != NULL && cert_sha256[0] != '\0')
		kv_str(&l, "cert_sha256", cert_sha256);
	kv_sid(&l, session_id);
	finish(a, &l);
}

void audit_session_close(struct audit *a, uint64_t session_id, const char *client,
			 const char *vip, const char *peer, uint64_t duration_ms,
			 uint64_t bytes_up, uint64_t bytes_down, const char *reason)
{
	struct line l;

	begin(a, &l, "session_close", a->clock(a->ctx));
	kv_str(&l, "client", client);
	kv_str(&l, "vip", vip);
	kv_str(&l, "peer", peer);
	kv_u64(&l, "duration_ms", duration_ms);
	kv_u64(&l, "bytes_up", bytes_up);
	kv_u64(&l, "bytes_down", bytes_down);
	kv_str(&l, "reason", reason);
	kv_sid(&l, session_id);
	finish(a, &l);
}

/* session_id is the agent's tunnel; the connector's goes as
 * connector_session_id (16 hex digits too). */
static void connector_fields(struct line *l, const struct audit_connector *c)
{
	char hex[17];

	kv_str(l, "client", c->client);
	kv_str(l, "connector", c->connector);
	if (c->rule != NULL && c->rule[0] != '\0')
		kv_str(l, "rule", c->rule);
	if (c->connector_session_id != 0) {
		(void)snprintf(hex, sizeof(hex), "%016llx",
			       (unsigned long long)c->connector_session_id);
		kv_str(l, "connector_session_id", hex);
	}
}

void audit_connector_open(struct audit *a, const struct audit_connector *c)
{
	struct line l;

	begin(a, &l, "connector_open", a->clock(a->ctx));
	connector_fields(&l, c);
	kv_sid(&l, c->session_id);
	finish(a, &l);
}

void audit_connector_close(struct audit *a, const struct audit_connector *c)
{
	struct line l;

	begin(a, &l, "connector_close", a->clock(a->ctx));
	connector_fields(&l, c);
	kv_u64(&l, "bytes_up", c->bytes_up);
	kv_u64(&l, "bytes_down", c->bytes_down);
	kv_u64(&l, "duration_ms", c->duration_ms);
	kv_str(&l, "reason", c->reason);
	kv_sid(&l, c->session_id);
	finish(a, &l);
}

void audit_flow_allow(struct audit *a, const struct audit_flow *f)
{
	struct line l;

	begin(a, &l, "flow_allow", a->clock(a->ctx));
	flow_fields(&l, f);
	kv_sid(&l, f->session_id);
	finish(a, &l);
}

void audit_flow_close(struct audit *a, const struct audit_flow *f)
{
	struct line l;

	begin(a, &l, "flow_close", a->clock(a->ctx));
	flow_fields(&l, f);
	kv_u64(&l, "bytes_up", f->bytes_up);
	kv_u64(&l, "bytes_down", f->bytes_down);
	kv_u64(&l, "duration_ms", f->duration_ms);
	kv_sid(&l, f->session_id);
	finish(a, &l);
}

static void emit_suppressed(struct audit *a, struct bucket *b, uint64_t now)
{
	struct line l;

	if (b->suppressed == 0)
		return;
	begin(a, &l, "flow_deny_suppressed", now);
	kv_str(&l, "client", b->client);
	kv_u64(&l, "count", b->suppressed);
	kv_u64(&l, "window_ms", now - b->window_start);
	kv_sid(&l, b->session_id);
	finish(a, &l);
	b->suppressed = 0;
}

static struct bucket *bucket_for(struct audit *a, const char *client, uint64_t now)
{
	struct bucket *b = &a->b[fnv64_str(client) % BUCKETS];

	if (strncmp(b->client, client, ID_MAX - 1) != 0) {
		emit_suppressed(a, b, now); /* evict the other client's window */
		(void)snprintf(b->client, sizeof(b->client), "%s", client);
		b->window_start = now;
		b->in_window = 0;
		b->session_id = 0;
	}
	return b;
}

/* 1 when a deny line (flow_deny or dns_deny) of client may be written
 * now; else it is counted for the client's flow_deny_suppressed line. */
static int deny_admit(struct audit *a, const char *client, uint64_t session_id, uint64_t now)
{
	struct bucket *b;

	if (!a->deny_per_s || client == NULL)
		return 1;
	b = bucket_for(a, client, now);
	if (now - b->window_start >= 1000) {
		emit_suppressed(a, b, now);
		b->window_start = now;
		b->in_window = 0;
	}
	if (b->session_id != session_id) {
		/* a new tunnel of the client: the old one's count is its own */
		emit_suppressed(a, b, now);
		b->session_id = session_id;
	}
	if (a->deny_global_per_s && now - a->gwindow_start >= 1000) {
		a->gwindow_start = now;
		a->gin_window = 0;
	}
	/* the client's own allowance first: a flooder that used up its
	 * window takes nothing from the others' shared one */
	if (b->in_window >= a->deny_per_s ||
	    (a->deny_global_per_s && a->gin_window >= a->deny_global_per_s)) {
		b->suppressed++;
		a->suppressed_total++;
		return 0;
	}
	b->in_window++;
	a->gin_window++;
	return 1;
}

void audit_flow_deny(struct audit *a, const struct audit_flow *f)
{
	uint64_t now = a->clock(a->ctx);
	struct line l;

	if (!deny_admit(a, f->client, f->session_id, now))
		return;
	begin(a, &l, "flow_deny", now);
	flow_fields(&l, f);
	kv_sid(&l, f->session_id);
	finish(a, &l);
}

void audit_set_deny_global(struct audit *a, uint32_t per_s)
{
	a->deny_global_per_s = per_s;
}

void audit_flush(struct audit *a, int force)
{
	uint64_t now = a->clock(a->ctx);

	for (size_t i = 0; i < BUCKETS; i++) {
		struct bucket *b = &a->b[i];
		if (b->suppressed && (force || now - b->window_start >= 1000)) {
			emit_suppressed(a, b, now);
			b->window_start = now;
			b->in_window = 0;
		}
	}
}

void audit_policy_reload(struct audit *a, int ok, const char *file, const char *message)
{
	struct line l;

	begin(a, &l, "policy_reload", a->clock(a->ctx));
	kv_str(&l, "result", ok ? "ok" : "error");
	kv_str(&l, "file", file);
	kv_str(&l, "message", message);
	finish(a, &l);
}

void audit_policy_reload_src(struct audit *a, int ok, const char *file, const char *message,
			     const char *source, uint64_t version)
{
	struct line l;

	begin(a, &l, "policy_reload", a->clock(a->ctx));
	kv_str(&l, "result", ok ? "ok" : "error");
	kv_str(&l, "file", file);
	kv_str(&l, "source", source);
	if (version != 0)
		kv_u64(&l, "policy_version", version);
	kv_str(&l, "message", message);
	finish(a, &l);
}

void audit_tls_reload(struct audit *a, int ok, const char *trigger, const char *reason)
{
	struct line l;

	begin(a, &l, "tls_reload", a->clock(a->ctx));
	kv_str(&l, "result", ok ? "ok" : "error");
	kv_str(&l, "trigger", trigger);
	kv_str(&l, "reason", reason);
	finish(a, &l);
}

void audit_limit_hit(struct audit *a, const char *limit, const char *client,
		     uint64_t session_id)
{
	struct line l;

	begin(a, &l, "limit_hit", a->clock(a->ctx));
	kv_str(&l, "limit", limit);
	kv_str(&l, "client", client);
	kv_sid(&l, session_id);
	finish(a, &l);
}

void audit_cert_rejected(struct audit *a, const char *reason, const char *peer)
{
	struct line l;

	begin(a, &l, "cert_rejected", a->clock(a->ctx));
	kv_str(&l, "reason", reason);
	kv_str(&l, "peer", peer);
	finish(a, &l);
}

void audit_handshake_failed(struct audit *a, const char *reason, const char *peer)
{
	struct line l;

	begin(a, &l, "handshake_failed", a->clock(a->ctx));
	kv_str(&l, "reason", reason);
	kv_str(&l, "peer", peer);
	finish(a, &l);
}

void audit_admin(struct audit *a, const char *action, const char *client, const char *caller,
		 int status)
{
	struct line l;

	begin(a, &l, "admin", a->clock(a->ctx));
	kv_str(&l, "action", action);
	kv_str(&l, "client", client);
	kv_str(&l, "caller", caller);
	kv_u64(&l, "status", status > 0 ? (uint64_t)status : 0);
	finish(a, &l);
}

void audit_free(struct audit *a)
{
	if (!a)
		return;
	audit_flush(a, 1);
	(void)audit_drain(a);
	free(a->buf);
	free(a);
}

uint64_t audit_lines(const struct audit *a)
{
	return a->lines;
}

uint64_t audit_suppressed(const struct audit *a)
{
	return a->suppressed_total;
}

uint64_t audit_dropped(const struct audit *a)
{
	return a->dropped_total;
}

/* ------------------------------------------------------------------ */
/* stdout without blocking                                            */

int audit_out_open(int fd, struct audit_out *o)
{
	struct stat st;
	char path[64];
	int fl;

	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->orig_fd = fd;
	o->restore_fl = -1;
	if (fstat(fd, &st) != 0)
		return ZG_ERR_IO;
	if (S_ISSOCK(st.st_mode)) {
		o->sock = 1;
		o->can_wait = 1;
		o->mode = "socket";
		return 0;
	}
	if (S_ISFIFO(st.st_mode)) {
		int nfd;

		o->can_wait = 1;
		/* a description of our own: O_NONBLOCK on it changes nothing
		 * for whoever shares fd (our stderr with 2>&1, a parent) */
		(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (nfd >= 0) {
			struct stat nst;

			if (fstat(nfd, &nst) == 0 && nst.st_ino == st.st_ino &&
			    nst.st_dev == st.st_dev) {
				o->fd = nfd;
				o->own_fd = 1;
				o->mode = "pipe";
				return 0;
			}
			close(nfd);
		}
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
			return ZG_ERR_IO;
		if (!(fl & O_NONBLOCK))
			o->restore_fl = fl;
		o->mode = "pipe (shared O_NONBLOCK)";
		return 0;
	}
	o->mode = isatty(fd) ? "terminal (blocking)" : "file";
	return 0;
}

ssize_t audit_out_write(void *ctx, const void *buf, size_t len)
{
	struct audit_out *o = ctx;
	ssize_t n;

	if (o->sock)
		n = send(o->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	else
		n = write(o->fd, buf, len);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return -1;
}

void audit_out_close(struct audit_out *o)
{
	if (o->own_fd)
		close(o->fd);
	if (o->restore_fl >= 0)
		(void)fcntl(o->orig_fd, F_SETFL, o->restore_fl);
	o->own_fd = 0;
	o->restore_fl = -1;
	o->fd = o->orig_fd;
}
