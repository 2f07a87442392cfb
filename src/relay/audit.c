#include "relay/audit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "zg_err.h"

#define LINE_MAX_BYTES 2048
#define BUCKETS 1024 /* per-client deny windows; a colliding client evicts */
#define GLOBAL_FACTOR 20 /* default global cap: this many clients' worth */
#define ID_MAX 64

struct bucket {
	char client[ID_MAX];
	uint64_t window_start;
	uint32_t in_window;
	uint64_t suppressed;
};

struct audit {
	FILE *out;
	audit_clock_fn clock;
	void *ctx;
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
};

static uint64_t real_clock(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int audit_new(FILE *out, audit_clock_fn clock, void *ctx, uint32_t deny_per_s,
	      struct audit **pa)
{
	struct audit *a = calloc(1, sizeof(*a));

	if (!a)
		return ZG_ERR_NOMEM;
	a->out = out;
	a->clock = clock ? clock : real_clock;
	a->ctx = ctx;
	a->deny_per_s = deny_per_s;
	a->deny_global_per_s = deny_per_s * GLOBAL_FACTOR;
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

static void begin(struct audit *a, struct line *l, const char *event, uint64_t now)
{
	char ts[64];
	time_t sec = (time_t)(now / 1000);
	struct tm tm;

	l->n = 0;
	l->full = 0;
	gmtime_r(&sec, &tm);
	if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	l->n = (size_t)snprintf(l->buf, sizeof(l->buf), "{\"ts\":\"%s.%03uZ\",\"event\":\"%s\"",
				ts, (unsigned)(now % 1000), event);
	(void)a;
}

static void finish(struct audit *a, struct line *l)
{
	l->buf[l->n++] = '}';
	l->buf[l->n++] = '\n';
	if (a->out) {
		(void)fwrite(l->buf, 1, l->n, a->out);
		(void)fflush(a->out);
	}
	a->lines++;
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
	kv_str(l, "reason", f->reason);
}

void audit_session_open(struct audit *a, const char *client, const char *vip,
			const char *peer, const char *cert_serial, const char *cert_sha256)
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
	finish(a, &l);
}

void audit_session_close(struct audit *a, const char *client, const char *vip,
			 const char *peer, uint64_t duration_ms, uint64_t bytes_up,
			 uint64_t bytes_down, const char *reason)
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
	finish(a, &l);
}

void audit_flow_allow(struct audit *a, const struct audit_flow *f)
{
	struct line l;

	begin(a, &l, "flow_allow", a->clock(a->ctx));
	flow_fields(&l, f);
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
	finish(a, &l);
	b->suppressed = 0;
}

static struct bucket *bucket_for(struct audit *a, const char *client, uint64_t now)
{
	uint64_t h = 1469598103934665603ULL;
	struct bucket *b;

	for (const unsigned char *s = (const unsigned char *)client; *s; s++)
		h = (h ^ *s) * 1099511628211ULL;
	b = &a->b[h % BUCKETS];
	if (strncmp(b->client, client, ID_MAX - 1) != 0) {
		emit_suppressed(a, b, now); /* evict the other client's window */
		(void)snprintf(b->client, sizeof(b->client), "%s", client);
		b->window_start = now;
		b->in_window = 0;
	}
	return b;
}

void audit_flow_deny(struct audit *a, const struct audit_flow *f)
{
	uint64_t now = a->clock(a->ctx);
	struct line l;

	if (a->deny_per_s && f->client) {
		struct bucket *b = bucket_for(a, f->client, now);
		if (now - b->window_start >= 1000) {
			emit_suppressed(a, b, now);
			b->window_start = now;
			b->in_window = 0;
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
			return;
		}
		b->in_window++;
		a->gin_window++;
	}
	begin(a, &l, "flow_deny", now);
	flow_fields(&l, f);
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

void audit_tls_reload(struct audit *a, int ok, const char *trigger, const char *reason)
{
	struct line l;

	begin(a, &l, "tls_reload", a->clock(a->ctx));
	kv_str(&l, "result", ok ? "ok" : "error");
	kv_str(&l, "trigger", trigger);
	kv_str(&l, "reason", reason);
	finish(a, &l);
}

void audit_limit_hit(struct audit *a, const char *limit, const char *client)
{
	struct line l;

	begin(a, &l, "limit_hit", a->clock(a->ctx));
	kv_str(&l, "limit", limit);
	kv_str(&l, "client", client);
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
