#include "agent/status.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "zg_err.h"

struct out {
	char *buf;
	size_t len, cap;
	int full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (o->full)
		return;
	va_start(ap, fmt);
	w = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= o->cap - o->len) {
		o->full = 1;
		return;
	}
	o->len += (size_t)w;
}

static void put_str(struct out *o, const char *s)
{
	put(o, "\"");
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			put(o, "\\%c", ch);
		else if (ch == '\n')
			put(o, "\\n");
		else if (ch == '\t')
			put(o, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			put(o, "\\u%04x", ch);
		else
			put(o, "%c", ch);
	}
	put(o, "\"");
}

static void put_prefixes(struct out *o, const struct route_prefix *p, size_t n)
{
	char s[64];

	put(o, "[");
	for (size_t i = 0; i < n; i++) {
		put(o, "%s", i ? "," : "");
		put_str(o, routes_format(&p[i], s, sizeof(s)));
	}
	put(o, "]");
}

int status_format(const struct status_info *st, char *buf, size_t buflen, size_t *pn)
{
	struct out o = { buf, 0, buflen, buflen == 0 };
	const struct status_counters *c = st->c;
	char s[64];

	put(&o, "{\"state\":");
	put_str(&o, st->state);
	put(&o, ",\"since\":%lld,\"pid\":%ld,\"updated\":%lld,\"relay\":", (long long)st->since,
	    st->pid, (long long)st->updated);
	put_str(&o, st->relay);
	put(&o, ",\"relays\":[");
	if (st->relays == NULL)
		put_str(&o, st->relay);
	for (size_t i = 0; st->relays != NULL && i < st->relays->n; i++) {
		put(&o, "%s", i ? "," : "");
		put_str(&o, st->relays->e[i].text);
	}
	put(&o, "],\"relay_index\":%zu,\"relay_switches\":%llu", st->relay_index,
	    (unsigned long long)st->relay_switches);
	put(&o, ",\"tun\":");
	put_str(&o, st->tun);
	put(&o, ",\"mtu\":%u,\"addresses\":", st->mtu);
	put_prefixes(&o, st->addrs, st->naddrs);
	put(&o, ",\"routes\":");
	put_prefixes(&o, st->routes, st->nroutes);
	put(&o, ",\"relay_route\":");
	if (st->relay_route != NULL)
		put_str(&o, routes_format(st->relay_route, s, sizeof(s)));
	else
		put(&o, "null");
	put(&o, ",\"refused\":[");
	for (size_t i = 0; i < st->nrefused; i++) {
		const struct status_refusal *f = &st->refused[i];

		put(&o, "%s{\"%s\":", i ? "," : "", f->route ? "route" : "address");
		put_str(&o, routes_format(&f->p, s, sizeof(s)));
		put(&o, ",\"reason\":");
		put_str(&o, routes_refusal_name((enum route_refusal)f->why));
		put(&o, "}");
	}
	put(&o, "],\"refused_unlisted\":%zu", st->refused_unlisted);
	put(&o,
	    ",\"connects\":%llu,\"tx_packets\":%llu,\"tx_bytes\":%llu,\"rx_packets\":%llu,"
	    "\"rx_bytes\":%llu,\"drops\":{\"outage\":%llu,\"too_big\":%llu,\"congested\":%llu,"
	    "\"tun_write\":%llu,\"not_ours\":%llu,\"malformed\":%llu},\"icmp_too_big_sent\":%llu,"
	    "\"cert_reloads\":%llu,\"cert_reload_errors\":%llu,"
	    "\"route_updates\":{\"advertisements\":%llu,\"refused\":%llu,\"changes\":%llu,"
	    "\"applied\":%llu,\"coalesced\":%llu},\"last_error\":",
	    (unsigned long long)c->connects, (unsigned long long)c->tx_packets,
	    (unsigned long long)c->tx_bytes, (unsigned long long)c->rx_packets,
	    (unsigned long long)c->rx_bytes, (unsigned long long)c->drop_outage,
	    (unsigned long long)c->drop_too_big, (unsigned long long)c->drop_congested,
	    (unsigned long long)c->drop_tun_write, (unsigned long long)c->drop_not_ours,
	    (unsigned long long)c->drop_malformed, (unsigned long long)c->icmp_too_big,
	    (unsigned long long)c->cert_reloads, (unsigned long long)c->cert_reload_errors,
	    (unsigned long long)c->route_ads, (unsigned long long)c->route_ads_refused,
	    (unsigned long long)c->route_changes, (unsigned long long)c->route_sets_applied,
	    (unsigned long long)c->route_changes_coalesced);
	put_str(&o, st->last_error);
	if (st->dns_via != NULL) {
		put(&o, ",\"dns\":[");
		for (size_t i = 0; i < st->ndns; i++) {
			put(&o, "%s", i ? "," : "");
			put_str(&o, st->dns[i]);
		}
		put(&o, "],\"dns_domains\":[");
		for (size_t i = 0; i < st->ndns_domains; i++) {
			put(&o, "%s", i ? "," : "");
			put_str(&o, st->dns_domains[i][0] ? st->dns_domains[i] : ".");
		}
		put(&o, "],\"dns_via\":");
		put_str(&o, st->dns_via);
	}
	if (st->nconnectors > 0) {
		put(&o, ",\"connectors\":[");
		for (size_t i = 0; i < st->nconnectors; i++) {
			const struct connector_status *k = &st->connectors[i];

			put(&o, "%s{\"id\":", i ? "," : "");
			put_str(&o, k->id);
			put(&o, ",\"state\":");
			put_str(&o, connectors_state_name(k->state));
			put(&o,
			    ",\"rtt_us\":%llu,\"tx_packets\":%llu,\"tx_bytes\":%llu,"
			    "\"rx_packets\":%llu,\"rx_bytes\":%llu,\"unreachable\":%llu,"
			    "\"too_big\":%llu,\"icmp_too_big_sent\":%llu,\"rx_unsolicited\":%llu,"
			    "\"last_error\":",
			    (unsigned long long)k->rtt_us, (unsigned long long)k->tx_packets,
			    (unsigned long long)k->tx_bytes, (unsigned long long)k->rx_packets,
			    (unsigned long long)k->rx_bytes, (unsigned long long)k->unreachable,
			    (unsigned long long)k->too_big, (unsigned long long)k->icmp_too_big,
			    (unsigned long long)k->rx_unsolicited);
			put_str(&o, k->last_error);
			put(&o, ",\"cert_serial\":");
			put_str(&o, k->cert_serial);
			put(&o, "}");
		}
		put(&o, "]");
	}
	if (st->quic != NULL)
		put(&o,
		    ",\"quic\":{\"srtt_us\":%llu,\"min_rtt_us\":%llu,\"cwnd\":%llu,"
		    "\"bytes_in_flight\":%llu,\"packets_sent\":%llu,\"packets_lost\":%llu,"
		    "\"queued_bytes\":%llu,\"next_timer_us\":%lld,\"tun_paused\":%s}",
		    (unsigned long long)st->quic->srtt_us, (unsigned long long)st->quic->min_rtt_us,
		    (unsigned long long)st->quic->cwnd, (unsigned long long)st->quic->bytes_in_flight,
		    (unsigned long long)st->quic->packets_sent,
		    (unsigned long long)st->quic->packets_lost,
		    (unsigned long long)st->quic->queued_bytes, (long long)st->quic->next_timer_us,
		    st->quic->tun_paused ? "true" : "false");
	else
		put(&o, ",\"quic\":null");
	put(&o, "}\n");
	if (o.full)
		return ZG_ERR_BUFSHORT;
	*pn = o.len;
	return 0;
}

int status_write_file(const char *path, const char *buf, size_t n)
{
	char tmp[4200];
	size_t off = 0;
	int fd, e;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return ZG_ERR_IO;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ZG_ERR_IO;
	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	errno = e;
	return ZG_ERR_IO;
}

/* ------------------------------------------------------------------ */
/* reading it back: `zgate-agent status`                              */

/* A JSON reader for what status_format() writes, and no more than JSON:
 * the whole text is checked against RFC 8259 into a flat token array
 * (a value's token is followed by its children; `next` skips them), then
 * the printer looks fields up by name. Depth and size are bounded. */
enum jtype {
	J_OBJ,
	J_ARR,
	J_STR,
	J_NUM,
	J_TRUE,
	J_FALSE,
	J_NULL
};

struct jtok {
	uint8_t type;
	uint32_t start, end; /* J_STR: inside the quotes, escapes undecoded */
	uint32_t next;       /* the token after this value and its children */
	uint32_t n;          /* J_OBJ: members; J_ARR: elements */
};

struct jdoc {
	const char *s;
	size_t len, pos;
	struct jtok *t;
	size_t nt, cap;
	const char *why; /* what was wrong at pos */
};

#define JSON_DEPTH_MAX 16

static void jws(struct jdoc *d)
{
	while (d->pos < d->len && (d->s[d->pos] == ' ' || d->s[d->pos] == '\t' ||
				   d->s[d->pos] == '\n' || d->s[d->pos] == '\r'))
		d->pos++;
}

static int jfail(struct jdoc *d, const char *why)
{
	d->why = why;
	return -1;
}

static int jhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int jstring_scan(struct jdoc *d)
{
	d->pos++; /* the opening quote */
	while (d->pos < d->len) {
		unsigned char c = (unsigned char)d->s[d->pos];

		if (c == '"')
			return 0;
		if (c < 0x20)
			return jfail(d, "control character in a string");
		if (c == '\\') {
			if (++d->pos >= d->len)
				break;
			c = (unsigned char)d->s[d->pos];
			if (c == 'u') {
				for (int i = 1; i <= 4; i++)
					if (d->pos + (size_t)i >= d->len || jhex(d->s[d->pos + (size_t)i]) < 0)
						return jfail(d, "bad \\u escape");
				d->pos += 4;
			} else if (!strchr("\"\\/bfnrt", c)) {
				return jfail(d, "bad escape in a string");
			}
		}
		d->pos++;
	}
	return jfail(d, "unterminated string");
}

static int jdigits(struct jdoc *d)
{
	size_t p0 = d->pos;

	while (d->pos < d->len && d->s[d->pos] >= '0' && d->s[d->pos] <= '9')
		d->pos++;
	return d->pos > p0 ? 0 : jfail(d, "bad number");
}

static int jnumber_scan(struct jdoc *d)
{
	if (d->s[d->pos] == '-')
		d->pos++;
	if (d->pos < d->len && d->s[d->pos] == '0')
		d->pos++;
	else if (jdigits(d) != 0)
		return -1;
	if (d->pos < d->len && d->s[d->pos] == '.') {
		d->pos++;
		if (jdigits(d) != 0)
			return -1;
	}
	if (d->pos < d->len && (d->s[d->pos] == 'e' || d->s[d->pos] == 'E')) {
		d->pos++;
		if (d->pos < d->len && (d->s[d->pos] == '+' || d->s[d->pos] == '-'))
			d->pos++;
		if (jdigits(d) != 0)
			return -1;
	}
	return 0;
}

static int jvalue(struct jdoc *d, int depth)
{
	static const struct {
		const char *word;
		enum jtype type;
	} words[] = { { "true", J_TRUE }, { "false", J_FALSE }, { "null", J_NULL } };
	size_t me;
	char c;

	jws(d);
	if (d->pos >= d->len)
		return jfail(d, "unexpected end of input");
	if (d->nt >= d->cap)
		return jfail(d, "too many values");
	me = d->nt++;
	d->t[me] = (struct jtok){ 0 };
	d->t[me].start = (uint32_t)d->pos;
	c = d->s[d->pos];
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';

		if (depth >= JSON_DEPTH_MAX)
			return jfail(d, "nested too deeply");
		d->t[me].type = c == '{' ? J_OBJ : J_ARR;
		d->pos++;
		jws(d);
		if (d->pos < d->len && d->s[d->pos] == close) {
			d->pos++;
		} else {
			for (;;) {
				if (c == '{') {
					jws(d);
					if (d->pos >= d->len || d->s[d->pos] != '"')
						return jfail(d, "expected a member name");
					if (jvalue(d, depth + 1) != 0)
						return -1;
					jws(d);
					if (d->pos >= d->len || d->s[d->pos] != ':')
						return jfail(d, "expected ':'");
					d->pos++;
				}
				if (jvalue(d, depth + 1) != 0)
					return -1;
				d->t[me].n++;
				jws(d);
				if (d->pos < d->len && d->s[d->pos] == ',') {
					d->pos++;
					continue;
				}
				if (d->pos < d->len && d->s[d->pos] == close) {
					d->pos++;
					break;
				}
				return jfail(d, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
			}
		}
	} else if (c == '"') {
		d->t[me].type = J_STR;
		if (jstring_scan(d) != 0)
			return -1;
		d->t[me].start++;
		d->t[me].end = (uint32_t)d->pos;
		d->pos++;
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		d->t[me].type = J_NUM;
		if (jnumber_scan(d) != 0)
			return -1;
	} else {
		size_t i;

		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			size_t wl = strlen(words[i].word);

			if (d->len - d->pos >= wl && memcmp(d->s + d->pos, words[i].word, wl) == 0) {
				d->t[me].type = (uint8_t)words[i].type;
				d->pos += wl;
				break;
			}
		}
		if (i == sizeof(words) / sizeof(words[0]))
			return jfail(d, "expected a value");
	}
	if (d->t[me].type != J_STR)
		d->t[me].end = (uint32_t)d->pos;
	d->t[me].next = (uint32_t)d->nt;
	return 0;
}

/* Decodes string token i into buf (NUL-terminated; \u escapes as UTF-8,
 * a lone surrogate as U+FFFD). Returns its length, or -1 when it is not a
 * string. Cut at buflen - 1 bytes. */
static long jstr(const struct jdoc *d, long i, char *buf, size_t buflen)
{
	const struct jtok *t;
	size_t o = 0;

	if (i < 0 || d->t[i].type != J_STR || buflen == 0)
		return -1;
	t = &d->t[i];
	for (size_t p = t->start; p < t->end && o + 4 < buflen; p++) {
		unsigned long cp;
		char c = d->s[p];

		if (c != '\\') {
			buf[o++] = c;
			continue;
		}
		c = d->s[++p];
		if (c != 'u') {
			buf[o++] = c == 'b' ? '\b' : c == 'f' ? '\f'
					     : c == 'n'       ? '\n'
					     : c == 'r'       ? '\r'
					     : c == 't'       ? '\t'
							      : c;
			continue;
		}
		cp = (unsigned long)(jhex(d->s[p + 1]) << 12 | jhex(d->s[p + 2]) << 8 |
				     jhex(d->s[p + 3]) << 4 | jhex(d->s[p + 4]));
		p += 4;
		if (cp >= 0xd800 && cp < 0xdc00 && p + 6 < t->end && d->s[p + 1] == '\\' &&
		    d->s[p + 2] == 'u') {
			unsigned long lo = (unsigned long)(jhex(d->s[p + 3]) << 12 | jhex(d->s[p + 4]) << 8 |
							   jhex(d->s[p + 5]) << 4 | jhex(d->s[p + 6]));

			if (lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			}
		}
		if (cp >= 0xd800 && cp < 0xe000)
			cp = 0xfffd;
		if (cp < 0x80) {
			buf[o++] = (char)cp;
		} else if (cp < 0x800) {
			buf[o++] = (char)(0xc0 | cp >> 6);
			buf[o++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			buf[o++] = (char)(0xe0 | cp >> 12);
			buf[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
			buf[o++] = (char)(0x80 | (cp & 0x3f));
		} else {
			buf[o++] = (char)(0xf0 | cp >> 18);
			buf[o++] = (char)(0x80 | (cp >> 12 & 0x3f));
			buf[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
			buf[o++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	buf[o] = '\0';
	return (long)o;
}

/* The value of member key of object token obj, or -1. */
static long jget(const struct jdoc *d, long obj, const char *key)
{
	char name[64];
	long i;

	if (obj < 0 || d->t[obj].type != J_OBJ)
		return -1;
	i = obj + 1;
	for (uint32_t k = 0; k < d->t[obj].n; k++) {
		long v = i + 1;

		if (jstr(d, i, name, sizeof(name)) >= 0 && strcmp(name, key) == 0)
			return v;
		i = (long)d->t[v].next;
	}
	return -1;
}

/* Element k of array token arr, or -1. */
static long jat(const struct jdoc *d, long arr, uint32_t k)
{
	long i;

	if (arr < 0 || d->t[arr].type != J_ARR || k >= d->t[arr].n)
		return -1;
	i = arr + 1;
	while (k-- > 0)
		i = (long)d->t[i].next;
	return i;
}

/* Number token i as an integer in [min, max]: 0 with *pv, or -1 (not a
 * number, not whole, out of range). */
static int jint(const struct jdoc *d, long i, int64_t min, int64_t max, int64_t *pv)
{
	char num[32], *end;
	long long v;
	size_t n;

	if (i < 0 || d->t[i].type != J_NUM)
		return -1;
	n = d->t[i].end - d->t[i].start;
	if (n >= sizeof(num))
		return -1;
	memcpy(num, d->s + d->t[i].start, n);
	num[n] = '\0';
	errno = 0;
	v = strtoll(num, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*pv = v;
	return 0;
}

/* -------------------------------- the summary */

struct show {
	const struct jdoc *d;
	long root;
	FILE *out;
	int64_t now;
	const char *bad; /* the first field of the wrong type */
};

/* A string field for the terminal: escaped (log_escape), so a relay's
 * message cannot move the cursor or forge lines. "" when absent. */
static const char *sfield(struct show *sh, long obj, const char *key, char *buf, size_t buflen)
{
	char raw[1024];
	long i = jget(sh->d, obj, key), n;

	buf[0] = '\0';
	if (i < 0 || sh->d->t[i].type == J_NULL)
		return buf;
	n = jstr(sh->d, i, raw, sizeof(raw));
	if (n < 0) {
		if (sh->bad == NULL)
			sh->bad = key;
		return buf;
	}
	return log_escape_n(raw, (size_t)n, buf, buflen);
}

/* An unsigned field; 0 when absent, the first wrong one noted. */
static uint64_t ufield(struct show *sh, long obj, const char *key)
{
	long i = jget(sh->d, obj, key);
	int64_t v = 0;

	if (i < 0)
		return 0;
	if (jint(sh->d, i, 0, INT64_MAX, &v) != 0 && sh->bad == NULL)
		sh->bad = key;
	return (uint64_t)v;
}

static void print_duration(FILE *f, int64_t s)
{
	static const struct {
		int64_t secs;
		const char *unit;
	} units[] = { { 86400, "day" }, { 3600, "hour" }, { 60, "minute" }, { 1, "second" } };
	int any = 0;

	if (s <= 0) {
		fprintf(f, "0 seconds");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		int64_t n = s / units[i].secs;

		if (n == 0)
			continue;
		s %= units[i].secs;
		fprintf(f, "%s%lld %s%s", any ? ", " : "", (long long)n, units[i].unit, n == 1 ? "" : "s");
		any = 1;
	}
}

static void print_bytes(FILE *f, uint64_t b)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int u = -1;

	if (b < 1024) {
		fprintf(f, "%llu B", (unsigned long long)b);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	fprintf(f, "%.2f %s", v, unit[u]);
}

/* "  key: a, b, c" for an array of strings; nothing when empty, unless
 * none is given. */
static void print_list(struct show *sh, const char *label, const char *key, const char *none)
{
	long arr = jget(sh->d, sh->root, key);
	char raw[256], esc[512];

	if (arr >= 0 && sh->d->t[arr].type == J_STR) { /* one string is a list of one */
		if (jstr(sh->d, arr, raw, sizeof(raw)) >= 0)
			fprintf(sh->out, "  %s: %s\n", label, log_escape(raw, esc, sizeof(esc)));
		return;
	}
	if (arr < 0 || sh->d->t[arr].type == J_NULL || sh->d->t[arr].n == 0) {
		if (arr >= 0 && sh->d->t[arr].type != J_ARR && sh->d->t[arr].type != J_NULL &&
		    sh->bad == NULL)
			sh->bad = key;
		if (none != NULL)
			fprintf(sh->out, "  %s: %s\n", label, none);
		return;
	}
	if (sh->d->t[arr].type != J_ARR) {
		if (sh->bad == NULL)
			sh->bad = key;
		return;
	}
	fprintf(sh->out, "  %s: ", label);
	for (uint32_t k = 0; k < sh->d->t[arr].n; k++) {
		long i = jat(sh->d, arr, k);
		long n = jstr(sh->d, i, raw, sizeof(raw));

		if (n < 0) {
			if (sh->bad == NULL)
				sh->bad = key;
			continue;
		}
		fprintf(sh->out, "%s%s", k ? ", " : "", log_escape_n(raw, (size_t)n, esc, sizeof(esc)));
	}
	fprintf(sh->out, "\n");
}

static void print_refused(struct show *sh)
{
	long arr = jget(sh->d, sh->root, "refused");
	uint64_t unlisted = ufield(sh, sh->root, "refused_unlisted");
	char what[256], why[128];
	uint32_t n;

	if (arr >= 0 && sh->d->t[arr].type != J_ARR) {
		if (sh->bad == NULL)
			sh->bad = "refused";
		return;
	}
	n = arr >= 0 ? sh->d->t[arr].n : 0;
	if (n == 0 && unlisted == 0)
		return;
	fprintf(sh->out, "  refused: ");
	for (uint32_t k = 0; k < n; k++) {
		long o = jat(sh->d, arr, k);
		const char *kind = jget(sh->d, o, "route") >= 0 ? "route" : "address";

		if (o < 0 || sh->d->t[o].type != J_OBJ) {
			if (sh->bad == NULL)
				sh->bad = "refused";
			continue;
		}
		fprintf(sh->out, "%s%s %s (%s)", k ? ", " : "", kind,
			sfield(sh, o, kind, what, sizeof(what)), sfield(sh, o, "reason", why, sizeof(why)));
	}
	if (unlisted > 0)
		fprintf(sh->out, "%sand %llu more routes", n ? ", " : "", (unsigned long long)unlisted);
	fprintf(sh->out, "\n");
}

static void print_drops(struct show *sh)
{
	static const struct {
		const char *key, *label;
	} kinds[] = { { "outage", "no tunnel" }, { "too_big", "too big" }, { "congested", "congested" }, { "tun_write", "TUN write" }, { "not_ours", "not our source" }, { "malformed", "malformed" } };
	long o = jget(sh->d, sh->root, "drops");
	int any = 0;

	if (o >= 0 && sh->d->t[o].type != J_OBJ && sh->bad == NULL)
		sh->bad = "drops";
	fprintf(sh->out, "  drops: ");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		uint64_t v = ufield(sh, o, kinds[i].key);

		if (v == 0)
			continue;
		fprintf(sh->out, "%s%llu %s", any ? ", " : "", (unsigned long long)v, kinds[i].label);
		any = 1;
	}
	fprintf(sh->out, "%s\n", any ? "" : "none");
}

/* "  relays: a, b (on 2 of 2, 3 switches)" when the list has several. */
static void print_relays(struct show *sh)
{
	long arr = jget(sh->d, sh->root, "relays");
	uint64_t idx = ufield(sh, sh->root, "relay_index");
	uint64_t sw = ufield(sh, sh->root, "relay_switches");
	char raw[RELAYLIST_TEXT_MAX], esc[2 * RELAYLIST_TEXT_MAX];

	if (arr < 0)
		return; /* written by an agent before lists */
	if (sh->d->t[arr].type != J_ARR) {
		if (sh->bad == NULL)
			sh->bad = "relays";
		return;
	}
	if (sh->d->t[arr].n < 2)
		return;
	fprintf(sh->out, "  relays: ");
	for (uint32_t k = 0; k < sh->d->t[arr].n; k++) {
		long n = jstr(sh->d, jat(sh->d, arr, k), raw, sizeof(raw));

		if (n < 0) {
			if (sh->bad == NULL)
				sh->bad = "relays";
			continue;
		}
		fprintf(sh->out, "%s%s", k ? ", " : "", log_escape_n(raw, (size_t)n, esc, sizeof(esc)));
	}
	fprintf(sh->out, " (on %llu of %u, %llu switch%s)\n", (unsigned long long)idx + 1,
		sh->d->t[arr].n, (unsigned long long)sw, sw == 1 ? "" : "es");
}

/* "connector hospital-a: up, rtt 4.10 ms, certificate serial 1a2b, sent 1.2 KiB,
 * received 3.4 KiB" */
static void print_connectors(struct show *sh)
{
	long arr = jget(sh->d, sh->root, "connectors");
	char id[ZGCONN_ID_MAX * 2], state[32], err[400];

	if (arr < 0)
		return; /* no connector listed (or an older agent) */
	if (sh->d->t[arr].type != J_ARR) {
		if (sh->bad == NULL)
			sh->bad = "connectors";
		return;
	}
	for (uint32_t k = 0; k < sh->d->t[arr].n; k++) {
		long o = jat(sh->d, arr, k);

		if (o < 0 || sh->d->t[o].type != J_OBJ) {
			if (sh->bad == NULL)
				sh->bad = "connectors";
			continue;
		}
		fprintf(sh->out, "  connector %s: %s", sfield(sh, o, "id", id, sizeof(id)),
			sfield(sh, o, "state", state, sizeof(state)));
		if (strcmp(state, "up") == 0) {
			char serial[80];

			fprintf(sh->out, ", rtt %.2f ms", (double)ufield(sh, o, "rtt_us") / 1000);
			if (sfield(sh, o, "cert_serial", serial, sizeof(serial))[0] != '\0')
				fprintf(sh->out, ", certificate serial %s", serial);
		}
		fprintf(sh->out, ", sent %llu bytes, received %llu bytes",
			(unsigned long long)ufield(sh, o, "tx_bytes"),
			(unsigned long long)ufield(sh, o, "rx_bytes"));
		if (ufield(sh, o, "unreachable") > 0)
			fprintf(sh->out, ", %llu unreachable",
				(unsigned long long)ufield(sh, o, "unreachable"));
		if (ufield(sh, o, "too_big") > 0)
			fprintf(sh->out, ", %llu too big", (unsigned long long)ufield(sh, o, "too_big"));
		if (ufield(sh, o, "rx_unsolicited") > 0)
			fprintf(sh->out, ", %llu unsolicited dropped",
				(unsigned long long)ufield(sh, o, "rx_unsolicited"));
		if (sfield(sh, o, "last_error", err, sizeof(err))[0] != '\0')
			fprintf(sh->out, " (%s)", err);
		fprintf(sh->out, "\n");
	}
}

static void print_summary(struct show *sh)
{
	char tun[64], state[64], relay[600], rr[128], err[1200];
	long q = jget(sh->d, sh->root, "quic");
	int64_t since = 0, updated = 0, pid = 0;
	uint64_t mtu = ufield(sh, sh->root, "mtu");

	(void)jint(sh->d, jget(sh->d, sh->root, "since"), 0, INT64_MAX, &since);
	(void)jint(sh->d, jget(sh->d, sh->root, "updated"), 0, INT64_MAX, &updated);
	(void)jint(sh->d, jget(sh->d, sh->root, "pid"), 1, INT32_MAX, &pid);
	fprintf(sh->out, "agent: %s\n", sfield(sh, sh->root, "tun", tun, sizeof(tun)));
	fprintf(sh->out, "  state: %s", sfield(sh, sh->root, "state", state, sizeof(state)));
	if (since > 0) {
		fprintf(sh->out, " (for ");
		print_duration(sh->out, sh->now - since);
		fprintf(sh->out, ")");
	}
	fprintf(sh->out, "\n");
	if (pid > 0)
		fprintf(sh->out, "  pid: %lld\n", (long long)pid);
	fprintf(sh->out, "  relay: %s\n", sfield(sh, sh->root, "relay", relay, sizeof(relay)));
	print_relays(sh);
	print_list(sh, "addresses", "addresses", "none");
	print_list(sh, "routes", "routes", "none");
	if (sfield(sh, sh->root, "relay_route", rr, sizeof(rr))[0] != '\0')
		fprintf(sh->out, "  relay route: %s\n", rr);
	print_list(sh, "dns", "dns", NULL);
	print_list(sh, "dns domains", "dns_domains", NULL);
	{
		char via[1100];

		if (sfield(sh, sh->root, "dns_via", via, sizeof(via))[0] != '\0')
			fprintf(sh->out, "  dns via: %s\n", via);
	}
	print_connectors(sh);
	if (mtu > 0)
		fprintf(sh->out, "  mtu: %llu\n", (unsigned long long)mtu);
	if (q >= 0 && sh->d->t[q].type == J_OBJ) {
		uint64_t srtt = ufield(sh, q, "srtt_us"), min = ufield(sh, q, "min_rtt_us");
		uint64_t sent = ufield(sh, q, "packets_sent"), lost = ufield(sh, q, "packets_lost");

		fprintf(sh->out, "  rtt: %.2f ms (min %.2f ms), %llu of %llu QUIC packets lost\n",
			(double)srtt / 1000, (double)min / 1000, (unsigned long long)lost,
			(unsigned long long)sent);
	} else if (q >= 0 && sh->d->t[q].type != J_NULL && sh->bad == NULL) {
		sh->bad = "quic";
	}
	fprintf(sh->out, "  transfer: ");
	print_bytes(sh->out, ufield(sh, sh->root, "rx_bytes"));
	fprintf(sh->out, " received, ");
	print_bytes(sh->out, ufield(sh, sh->root, "tx_bytes"));
	fprintf(sh->out, " sent (%llu / %llu packets)\n",
		(unsigned long long)ufield(sh, sh->root, "rx_packets"),
		(unsigned long long)ufield(sh, sh->root, "tx_packets"));
	fprintf(sh->out, "  connects: %llu\n", (unsigned long long)ufield(sh, sh->root, "connects"));
	{
		uint64_t ok = ufield(sh, sh->root, "cert_reloads");
		uint64_t bad = ufield(sh, sh->root, "cert_reload_errors");

		/* none (or an agent before these keys): no line */
		if (ok > 0 || bad > 0)
			fprintf(sh->out, "  certificate reloads: %llu, %llu failed\n",
				(unsigned long long)ok, (unsigned long long)bad);
	}
	{
		long ru = jget(sh->d, sh->root, "route_updates");

		/* only once a change waited or an advertisement was refused
		 * (an agent before these keys: no line) */
		if (ru >= 0 && sh->d->t[ru].type == J_OBJ &&
		    (ufield(sh, ru, "coalesced") > 0 || ufield(sh, ru, "refused") > 0))
			fprintf(sh->out,
				"  route updates: %llu applied of %llu changes (%llu coalesced), "
				"%llu of %llu advertisements refused\n",
				(unsigned long long)ufield(sh, ru, "applied"),
				(unsigned long long)ufield(sh, ru, "changes"),
				(unsigned long long)ufield(sh, ru, "coalesced"),
				(unsigned long long)ufield(sh, ru, "refused"),
				(unsigned long long)ufield(sh, ru, "advertisements"));
		else if (ru >= 0 && sh->d->t[ru].type != J_OBJ && sh->bad == NULL)
			sh->bad = "route_updates";
	}
	print_drops(sh);
	print_refused(sh);
	if (sfield(sh, sh->root, "last_error", err, sizeof(err))[0] != '\0')
		fprintf(sh->out, "  last error: %s\n", err);
	if (updated > 0) {
		fprintf(sh->out, "  updated: ");
		print_duration(sh->out, sh->now - updated);
		fprintf(sh->out, " ago\n");
	}
}

/* Reads at most STATUS_FILE_MAX bytes of path into *pbuf (NUL-terminated,
 * caller frees). */
static int read_file(const char *path, char **pbuf, size_t *plen, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = ZG_ERR_IO;

	if (fd < 0) {
		if (errno == ENOENT) {
			zg_seterr(err, errlen, "zgate-agent is not running (no status file %s)", path);
			return ZG_ERR_NOTFOUND;
		}
		zg_seterr(err, errlen, "cannot read the status file %s: %s", path, strerror(errno));
		return ZG_ERR_IO;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *nb;

			if (cap > STATUS_FILE_MAX) {
				zg_seterr(err, errlen, "%s: larger than %u bytes: not a status file", path,
					  STATUS_FILE_MAX);
				r = ZG_ERR_TOO_LARGE;
				goto fail;
			}
			nb = realloc(buf, cap ? cap * 2 : 16384);
			if (nb == NULL) {
				zg_seterr(err, errlen, "%s: out of memory", path);
				r = ZG_ERR_NOMEM;
				goto fail;
			}
			buf = nb;
			cap = cap ? cap * 2 : 16384;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			zg_seterr(err, errlen, "cannot read the status file %s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > STATUS_FILE_MAX) {
		zg_seterr(err, errlen, "%s: larger than %u bytes: not a status file", path, STATUS_FILE_MAX);
		r = ZG_ERR_TOO_LARGE;
		goto fail;
	}
	buf[len] = '\0';
	close(fd);
	*pbuf = buf;
	*plen = len;
	return 0;
fail:
	close(fd);
	free(buf);
	return r;
}

int status_pid_alive(long pid)
{
	char path[64], comm[64] = "";
	FILE *f;

	if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
		return 0;
	(void)snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 1; /* no /proc here: kill() is all we know */
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	return strncmp(comm, "zgate-agent", 11) == 0;
}

int status_show(const char *path, int json, int64_t now, status_alive_fn alive, FILE *out,
		char *err, size_t errlen)
{
	struct jdoc d = { 0 };
	struct show sh = { 0 };
	char *buf = NULL, state[64];
	long st;
	int64_t pid = 0, t = 0, ago;
	int r;

	if ((r = read_file(path, &buf, &d.len, err, errlen)) != 0)
		return r;
	d.s = buf;
	d.cap = d.len / 2 + 2; /* a value and its separator take two bytes or more */
	d.t = calloc(d.cap, sizeof(*d.t));
	if (d.t == NULL) {
		zg_seterr(err, errlen, "%s: out of memory", path);
		r = ZG_ERR_NOMEM;
		goto out;
	}
	r = ZG_ERR_MALFORMED;
	if (jvalue(&d, 0) != 0) {
		zg_seterr(err, errlen, "%s: byte %zu: %s: not a status file", path, d.pos, d.why);
		goto out;
	}
	jws(&d);
	if (d.pos != d.len) {
		zg_seterr(err, errlen, "%s: byte %zu: text after the JSON value: not a status file", path,
			  d.pos);
		goto out;
	}
	sh.d = &d;
	if (d.t[0].type != J_OBJ || (st = jget(&d, 0, "state")) < 0 ||
	    jstr(&d, st, state, sizeof(state)) < 0) {
		zg_seterr(err, errlen, "%s: no \"state\" string in a JSON object: not a status file",
			  path);
		goto out;
	}
	if (jget(&d, 0, "pid") >= 0 && jint(&d, jget(&d, 0, "pid"), 1, INT32_MAX, &pid) != 0) {
		zg_seterr(err, errlen, "%s: \"pid\" is not a process id: not a status file", path);
		goto out;
	}
	(void)jint(&d, jget(&d, 0, "updated"), 0, INT64_MAX, &t);
	ago = t > 0 && now > t ? now - t : 0;
	r = ZG_ERR_NOTFOUND;
	if (strcmp(state, "stopped") == 0) {
		zg_seterr(err, errlen, "zgate-agent is not running (it stopped %lld second%s ago; status file %s)",
			  (long long)ago, ago == 1 ? "" : "s", path);
		goto out;
	}
	if (pid > 0 && !alive((long)pid)) {
		zg_seterr(err, errlen,
			  "zgate-agent is not running (process %lld is gone; status file %s last written "
			  "%lld second%s ago, state %s)",
			  (long long)pid, path, (long long)ago, ago == 1 ? "" : "s", state);
		goto out;
	}
	r = 0;
	if (json) {
		fwrite(buf, 1, d.len, out);
		goto out;
	}
	sh.root = 0;
	sh.out = out;
	sh.now = now;
	print_summary(&sh);
	if (sh.bad != NULL)
		fprintf(out, "  (warning: %s: field \"%s\" has an unexpected type)\n", path, sh.bad);
out:
	free(d.t);
	free(buf);
	return r;
}

int status_command(int argc, char *const *argv, FILE *out, FILE *errf)
{
	const char *path = getenv("ZGATE_STATUS_FILE");
	char err[1024];
	int json = 0, r;

	if (path == NULL || path[0] == '\0')
		path = STATUS_FILE_DEFAULT;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--status-file") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strncmp(argv[i], "--status-file=", 14) == 0) {
			path = argv[i] + 14;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fprintf(out,
				"usage: zgate-agent status [--json] [--status-file FILE]\n"
				"\n"
				"Prints what the running agent's status file says: state, relay, addresses,\n"
				"routes, RTT, traffic, certificate reloads, drops, refused addresses and\n"
				"routes, last error (--json: the file as it is).\n"
				"\n"
				"  --json              print the status file's JSON object\n"
				"  --status-file FILE  the agent's --status-file (default $ZGATE_STATUS_FILE,\n"
				"                      else " STATUS_FILE_DEFAULT ")\n"
				"\n"
				"Exit status: 0 when the agent runs, 1 when it does not or the file cannot\n"
				"be read, 2 for bad usage.\n");
			return 0;
		} else {
			fprintf(errf, "zgate-agent status: %s: %s (see zgate-agent status --help)\n", argv[i],
				strncmp(argv[i], "--status-file", 13) == 0 ? "needs a value" : "unknown option");
			return 2;
		}
	}
	r = status_show(path, json, (int64_t)time(NULL), status_pid_alive, out, err, sizeof(err));
	if (r != 0) {
		fprintf(errf, "%s\n", err);
		return 1;
	}
	return 0;
}
