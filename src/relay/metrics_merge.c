/*
 * metrics_merge.c — the workers' expositions merged into the relay's
 * (see metrics_merge.h). Values are 128-bit fixed point with 9 decimal
 * places, so sums are exact and print back as metrics.c writes them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "relay/metrics_merge.h"
#include "zg_err.h"

typedef __int128 i128;
typedef unsigned __int128 u128;

#define FRAC_DIGITS 9
#define FRAC_ONE 1000000000u
#define INT_DIGITS 20
#define NONE UINT32_MAX
/* how much of a name an error message quotes, as a %.*s precision */
#define QUOTE 80
#define QLEN(n) ((int)((n) < QUOTE ? (n) : QUOTE))

enum mtype {
	T_COUNTER,
	T_GAUGE,
	T_HISTOGRAM,
	T_SUMMARY,
	T_COUNT
};

static const char *const type_names[T_COUNT] = { "counter", "gauge", "histogram", "summary" };

static const struct {
	const char *name;
	enum metrics_merge_op op;
} gauge_rules[] = {
	{ "zgate_build_info", METRICS_MERGE_FIRST },
	{ "zgate_flow_descriptor_budget", METRICS_MERGE_FIRST },
	{ "zgate_pool_size", METRICS_MERGE_FIRST },
	{ "zgate_pool_used", METRICS_MERGE_FIRST },
	{ "zgate_tls_cert_expiry_timestamp_seconds", METRICS_MERGE_MIN },
	{ "zgate_tls_crl_next_update_timestamp_seconds", METRICS_MERGE_MIN },
	{ "zgate_policy_last_reload_success_timestamp_seconds", METRICS_MERGE_MIN },
	{ "zgate_ipam_api_up", METRICS_MERGE_MIN },
	/* the version loaded when every worker has it, -1 while they differ
	 * (a rollback makes the newer version the lower number: min or max
	 * would hide a worker behind the other) */
	{ "zgate_policy_api_version", METRICS_MERGE_SAME },
	{ "process_max_fds", METRICS_MERGE_MIN },
	{ "process_open_fds", METRICS_MERGE_MAX },
};

/* Counters of what every worker does once per relay-wide event: a reload
 * (SIGHUP or a changed file) is the relay's one reload, done by each
 * worker; a sum would count it N times. */
static const char *const counter_max[] = {
	"zgate_policy_reloads_total",
	"zgate_tls_reloads_total",
};

enum metrics_merge_op metrics_merge_rule(const char *name, size_t nlen, const char *type)
{
	size_t i;

	if (type != NULL && strcmp(type, "counter") == 0) {
		for (i = 0; i < sizeof(counter_max) / sizeof(counter_max[0]); i++)
			if (strlen(counter_max[i]) == nlen && memcmp(counter_max[i], name, nlen) == 0)
				return METRICS_MERGE_MAX;
		return METRICS_MERGE_SUM;
	}
	if (type == NULL || strcmp(type, "gauge") != 0)
		return METRICS_MERGE_SUM;
	for (i = 0; i < sizeof(gauge_rules) / sizeof(gauge_rules[0]); i++)
		if (strlen(gauge_rules[i].name) == nlen && memcmp(gauge_rules[i].name, name, nlen) == 0)
			return gauge_rules[i].op;
	return METRICS_MERGE_SUM;
}

struct fam {
	const char *name, *help; /* into the input texts */
	size_t nlen, hlen;
	enum mtype type;
	enum metrics_merge_op op;
	uint32_t first, last; /* its series, a list through ser.next */
	uint32_t text;        /* the last text that had its TYPE line */
};

struct ser {
	const char *key; /* name and labels as written */
	size_t klen;
	i128 v;
	uint32_t fam, next, text;
};

/* An open-addressing index from a byte string to an element's number. */
struct slot {
	const char *k;
	size_t klen;
	uint32_t id1; /* number + 1; 0: empty */
};

struct tab {
	struct slot *s;
	size_t cap, used;
};

struct mm {
	struct fam *f;
	struct ser *s;
	size_t nf, ns, capf, caps;
	struct tab tf, ts;
	char *err;
	size_t errlen;
};

static uint64_t hash(const char *k, size_t n)
{
	return fnv64_bytes(FNV64_INIT, k, n);
}

/* The slot of k: its own, or the empty one where it would go. */
static struct slot *tab_slot(const struct tab *t, const char *k, size_t klen)
{
	size_t i = (size_t)hash(k, klen) & (t->cap - 1);

	while (t->s[i].id1 != 0 &&
	       (t->s[i].klen != klen || memcmp(t->s[i].k, k, klen) != 0))
		i = (i + 1) & (t->cap - 1);
	return &t->s[i];
}

/* Room for one more entry (load at most one half). */
static int tab_reserve(struct tab *t)
{
	struct tab g;
	size_t i;

	if (t->cap != 0 && (t->used + 1) * 2 <= t->cap)
		return 0;
	g.cap = t->cap != 0 ? t->cap * 2 : 64;
	g.used = t->used;
	g.s = calloc(g.cap, sizeof(*g.s));
	if (g.s == NULL)
		return ZG_ERR_NOMEM;
	for (i = 0; i < t->cap; i++)
		if (t->s[i].id1 != 0)
			*tab_slot(&g, t->s[i].k, t->s[i].klen) = t->s[i];
	free(t->s);
	*t = g;
	return 0;
}

/* a with room for element n (cap *pcap, doubled when full), or NULL. */
static void *grow(void *a, size_t *pcap, size_t n, size_t size)
{
	size_t cap = *pcap != 0 ? *pcap * 2 : 64;

	if (n < *pcap)
		return a;
	a = realloc(a, cap * size);
	if (a != NULL)
		*pcap = cap;
	return a;
}

static int is_name_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* The length of the metric name at p (0: none). */
static size_t name_len(const char *p, const char *end)
{
	size_t n = 0;

	while (p + n < end && is_name_char(p[n], n == 0))
		n++;
	return n;
}

/* Past the label set at p ('{' ... '}'), or NULL when it is malformed. */
static const char *skip_labels(const char *p, const char *end)
{
	p++; /* '{' */
	for (;;) {
		if (p < end && *p == '}')
			return p + 1;
		if (p >= end || !is_name_char(*p, 1) || *p == ':')
			return NULL;
		while (p < end && is_name_char(*p, 0) && *p != ':')
			p++;
		if (end - p < 2 || p[0] != '=' || p[1] != '"')
			return NULL;
		for (p += 2; p < end && *p != '"'; p++)
			if (*p == '\\' && (++p >= end || (*p != '\\' && *p != '"' && *p != 'n')))
				return NULL;
		if (p >= end)
			return NULL;
		p++; /* '"' */
		if (p < end && *p == ',')
			p++;
		else if (p >= end || *p != '}')
			return NULL;
	}
}

/* A decimal as metrics.c writes it, into *pv (scaled by 10^9). */
static int parse_value(const char *p, const char *end, i128 *pv)
{
	i128 ip = 0, fp = 0;
	size_t n = 0;
	int neg = 0;

	if (p < end && *p == '-') {
		neg = 1;
		p++;
	}
	/* the digit counts are checked before they can overflow */
	for (; p < end && *p >= '0' && *p <= '9' && n < INT_DIGITS; p++, n++)
		ip = ip * 10 + (*p - '0');
	if (n == 0)
		return ZG_ERR_MALFORMED;
	n = 0;
	if (p < end && *p == '.') {
		for (p++; p < end && *p >= '0' && *p <= '9' && n < FRAC_DIGITS; p++, n++)
			fp = fp * 10 + (*p - '0');
		if (n == 0)
			return ZG_ERR_MALFORMED;
	}
	if (p != end)
		return ZG_ERR_MALFORMED;
	for (; n < FRAC_DIGITS; n++)
		fp *= 10;
	*pv = (ip * FRAC_ONE + fp) * (neg ? -1 : 1);
	return 0;
}

/* v as metrics.c writes it: an integer, or digits after the point with
 * trailing zeros dropped. buf has room for any sum within the bounds. */
static size_t format_value(char *buf, size_t len, i128 v)
{
	char rev[48];
	u128 u = v < 0 ? (u128)(-v) : (u128)v, ip = u / FRAC_ONE;
	unsigned fp = (unsigned)(u % FRAC_ONE);
	size_t n = 0, k = 0;

	do {
		rev[n++] = (char)('0' + (unsigned)(ip % 10));
		ip /= 10;
	} while (ip != 0 && n < sizeof(rev));
	if (v < 0)
		buf[k++] = '-';
	while (n > 0 && k + 1 < len)
		buf[k++] = rev[--n];
	if (fp != 0 && k + FRAC_DIGITS + 2 < len) {
		k += (size_t)snprintf(buf + k, len - k, ".%09u", fp);
		while (buf[k - 1] == '0')
			k--;
	}
	buf[k] = '\0';
	return k;
}

#define FAIL(m, r, fmt, ...)                                                \
	do {                                                                \
		zg_seterr((m)->err, (m)->errlen, "text %zu line %zu: " fmt, \
			  ti, lno, __VA_ARGS__);                            \
		return (r);                                                 \
	} while (0)

static uint32_t fam_find(const struct mm *m, const char *name, size_t nlen)
{
	const struct slot *sl;

	if (m->tf.cap == 0)
		return NONE;
	sl = tab_slot(&m->tf, name, nlen);
	return sl->id1 != 0 ? sl->id1 - 1 : NONE;
}

/* A "# TYPE name type" line: the family it opens, found or made. */
static int type_line(struct mm *m, const char *p, const char *end, const char *help,
		     size_t hlen, const char *hname, size_t hnlen, size_t ti, size_t lno,
		     uint32_t *pcur)
{
	size_t nlen = name_len(p, end), i;
	const char *t = p + nlen;
	struct fam *f;
	uint32_t id;

	if (nlen == 0 || t >= end || *t != ' ')
		FAIL(m, ZG_ERR_MALFORMED, "%s", "# TYPE needs a metric name and a type");
	t++;
	for (i = 0; i < T_COUNT; i++)
		if ((size_t)(end - t) == strlen(type_names[i]) &&
		    memcmp(t, type_names[i], (size_t)(end - t)) == 0)
			break;
	if (i == T_COUNT)
		FAIL(m, ZG_ERR_MALFORMED, "%.*s: type \"%.*s\" is not counter, gauge, histogram "
					  "or summary",
		     QLEN(nlen), p,
		     QLEN((size_t)(end - t)), t);
	if (help != NULL && (hnlen != nlen || memcmp(hname, p, nlen) != 0))
		FAIL(m, ZG_ERR_MALFORMED, "# HELP %.*s is followed by the TYPE of %.*s",
		     QLEN(hnlen), hname,
		     QLEN(nlen), p);
	id = fam_find(m, p, nlen);
	if (id != NONE) {
		f = &m->f[id];
		if (f->text == ti)
			FAIL(m, ZG_ERR_MALFORMED, "family %.*s twice", QLEN(nlen),
			     p);
		if (f->type != (enum mtype)i)
			FAIL(m, ZG_ERR_MALFORMED, "%.*s is a %s here, a %s in an earlier text",
			     QLEN(nlen), p, type_names[i],
			     type_names[f->type]);
		f->text = (uint32_t)ti;
		*pcur = id;
		return 0;
	}
	if (m->nf >= METRICS_MERGE_MAX_FAMILIES)
		FAIL(m, ZG_ERR_LIMIT, "more than %d families", METRICS_MERGE_MAX_FAMILIES);
	f = grow(m->f, &m->capf, m->nf, sizeof(*m->f));
	if (f == NULL)
		return ZG_ERR_NOMEM;
	m->f = f;
	if (tab_reserve(&m->tf) != 0)
		return ZG_ERR_NOMEM;
	f = &m->f[m->nf];
	f->name = p;
	f->nlen = nlen;
	f->help = help;
	f->hlen = hlen;
	f->type = (enum mtype)i;
	f->op = metrics_merge_rule(p, nlen, type_names[i]);
	f->first = f->last = NONE;
	f->text = (uint32_t)ti;
	*tab_slot(&m->tf, p, nlen) = (struct slot){ p, nlen, (uint32_t)m->nf + 1 };
	m->tf.used++;
	*pcur = (uint32_t)m->nf++;
	return 0;
}

/* Whether a sample named s (slen bytes) belongs to family f. */
static int in_family(const struct fam *f, const char *s, size_t slen, const char **pwhy)
{
	static const char *const hsuf[] = { "_bucket", "_sum", "_count" };
	size_t i, k;

	*pwhy = NULL;
	if (slen == f->nlen && memcmp(s, f->name, slen) == 0) {
		if (f->type == T_SUMMARY)
			*pwhy = "a summary's quantiles cannot be merged";
		return f->type == T_COUNTER || f->type == T_GAUGE;
	}
	if (f->type != T_HISTOGRAM && f->type != T_SUMMARY)
		return 0;
	if (slen <= f->nlen || memcmp(s, f->name, f->nlen) != 0)
		return 0;
	for (i = f->type == T_HISTOGRAM ? 0 : 1; i < 3; i++) {
		k = strlen(hsuf[i]);
		if (slen - f->nlen == k && memcmp(s + f->nlen, hsuf[i], k) == 0)
			return 1;
	}
	return 0;
}

static void combine(i128 *acc, i128 v, enum metrics_merge_op op)
{
	switch (op) {
	case METRICS_MERGE_SUM:
		*acc += v;
		break;
	case METRICS_MERGE_FIRST:
		break;
	case METRICS_MERGE_MIN:
		if (v < *acc)
			*acc = v;
		break;
	case METRICS_MERGE_MAX:
		if (v > *acc)
			*acc = v;
		break;
	case METRICS_MERGE_SAME:
		if (v != *acc)
			*acc = -(i128)FRAC_ONE; /* -1 */
		break;
	}
}

static int sample_line(struct mm *m, const char *p, const char *end, uint32_t cur, size_t ti,
		       size_t lno)
{
	size_t nlen = name_len(p, end), klen;
	const char *q = p + nlen, *why;
	struct slot *sl;
	struct fam *f;
	struct ser *s;
	i128 v;

	if (nlen == 0)
		FAIL(m, ZG_ERR_MALFORMED, "%s", "not a sample: no metric name");
	if (cur == NONE)
		FAIL(m, ZG_ERR_MALFORMED, "sample %.*s before any # TYPE line",
		     QLEN(nlen), p);
	f = &m->f[cur];
	if (!in_family(f, p, nlen, &why))
		FAIL(m, ZG_ERR_MALFORMED, "sample %.*s outside family %.*s (before its # TYPE?)%s%s",
		     QLEN(nlen), p, QLEN(f->nlen),
		     f->name, why != NULL ? ": " : "", why != NULL ? why : "");
	if (q < end && *q == '{') {
		q = skip_labels(q, end);
		if (q == NULL)
			FAIL(m, ZG_ERR_MALFORMED, "sample %.*s: malformed labels",
			     QLEN(nlen), p);
	}
	klen = (size_t)(q - p);
	if (q >= end || *q != ' ')
		FAIL(m, ZG_ERR_MALFORMED, "sample %.*s: no value", QLEN(klen),
		     p);
	q++;
	if (parse_value(q, end, &v) != 0)
		FAIL(m, ZG_ERR_MALFORMED,
		     "sample %.*s: value \"%.*s\" is not a decimal (no exponent, NaN, Inf or "
		     "timestamp)",
		     QLEN(klen), p,
		     QLEN((size_t)(end - q)), q);
	if (v < 0 && f->type != T_GAUGE)
		FAIL(m, ZG_ERR_MALFORMED, "sample %.*s: negative value in a %s",
		     QLEN(klen), p, type_names[f->type]);
	if (tab_reserve(&m->ts) != 0)
		return ZG_ERR_NOMEM;
	sl = tab_slot(&m->ts, p, klen);
	if (sl->id1 != 0) {
		s = &m->s[sl->id1 - 1];
		if (s->fam != cur)
			FAIL(m, ZG_ERR_MALFORMED, "series %.*s is in family %.*s in an earlier text",
			     QLEN(klen), p,
			     QLEN(m->f[s->fam].nlen),
			     m->f[s->fam].name);
		if (s->text == ti)
			FAIL(m, ZG_ERR_MALFORMED, "series %.*s twice",
			     QLEN(klen), p);
		s->text = (uint32_t)ti;
		combine(&s->v, v, f->op);
		return 0;
	}
	if (m->ns >= METRICS_MERGE_MAX_SERIES)
		FAIL(m, ZG_ERR_LIMIT, "more than %d series", METRICS_MERGE_MAX_SERIES);
	s = grow(m->s, &m->caps, m->ns, sizeof(*m->s));
	if (s == NULL)
		return ZG_ERR_NOMEM;
	m->s = s;
	s = &m->s[m->ns];
	s->key = p;
	s->klen = klen;
	s->v = v;
	s->fam = cur;
	s->next = NONE;
	s->text = (uint32_t)ti;
	if (f->last == NONE)
		f->first = (uint32_t)m->ns;
	else
		m->s[f->last].next = (uint32_t)m->ns;
	f->last = (uint32_t)m->ns;
	*sl = (struct slot){ p, klen, (uint32_t)m->ns + 1 };
	m->ts.used++;
	m->ns++;
	return 0;
}

static int parse_text(struct mm *m, const char *text, size_t len, size_t ti)
{
	const char *p = text, *end = text + len, *e, *help = NULL, *hname = NULL;
	size_t lno = 0, hlen = 0, hnlen = 0;
	uint32_t cur = NONE;
	int r;

	while (p < end) {
		lno++;
		e = memchr(p, '\n', (size_t)(end - p) < METRICS_MERGE_MAX_LINE + 1 ? (size_t)(end - p) : METRICS_MERGE_MAX_LINE + 1);
		if (e == NULL && (size_t)(end - p) > METRICS_MERGE_MAX_LINE)
			FAIL(m, ZG_ERR_TOO_LARGE, "longer than %d bytes", METRICS_MERGE_MAX_LINE);
		if (e == NULL)
			e = end;
		if (e - p >= 7 && memcmp(p, "# HELP ", 7) == 0) {
			if (help != NULL)
				FAIL(m, ZG_ERR_MALFORMED, "# HELP %.*s is not followed by its # TYPE",
				     QLEN(hnlen), hname);
			hname = p + 7;
			hnlen = name_len(hname, e);
			if (hnlen == 0 || (hname + hnlen < e && hname[hnlen] != ' '))
				FAIL(m, ZG_ERR_MALFORMED, "%s", "# HELP without a metric name");
			help = hname + hnlen < e ? hname + hnlen + 1 : hname + hnlen;
			hlen = (size_t)(e - help);
		} else if (e - p >= 7 && memcmp(p, "# TYPE ", 7) == 0) {
			r = type_line(m, p + 7, e, help, hlen, hname, hnlen, ti, lno, &cur);
			if (r != 0)
				return r;
			help = NULL;
		} else if (help != NULL) {
			FAIL(m, ZG_ERR_MALFORMED, "# HELP %.*s is not followed by its # TYPE",
			     QLEN(hnlen), hname);
		} else if (p < e && *p != '#') {
			r = sample_line(m, p, e, cur, ti, lno);
			if (r != 0)
				return r;
		}
		p = e + 1;
	}
	if (help != NULL)
		FAIL(m, ZG_ERR_MALFORMED, "# HELP %.*s is not followed by its # TYPE",
		     QLEN(hnlen), hname);
	return 0;
}

static int write_out(struct evbuffer *b, const struct mm *m)
{
	char val[64];
	size_t i, n;
	uint32_t k;
	int r = 0;

	for (i = 0; i < m->nf; i++) {
		const struct fam *f = &m->f[i];

		if (f->help != NULL)
			r |= evbuffer_add_printf(b, "# HELP %.*s%s%.*s\n", (int)f->nlen, f->name,
						 f->hlen != 0 ? " " : "", (int)f->hlen, f->help) < 0;
		r |= evbuffer_add_printf(b, "# TYPE %.*s %s\n", (int)f->nlen, f->name,
					 type_names[f->type]) < 0;
		for (k = f->first; k != NONE; k = m->s[k].next) {
			n = format_value(val, sizeof(val), m->s[k].v);
			r |= evbuffer_add(b, m->s[k].key, m->s[k].klen);
			r |= evbuffer_add(b, " ", 1);
			r |= evbuffer_add(b, val, n);
			r |= evbuffer_add(b, "\n", 1);
		}
	}
	return r != 0 ? ZG_ERR_NOMEM : 0;
}

int metrics_merge(struct evbuffer *b, const struct metrics_text *texts, size_t n, char *err,
		  size_t errlen)
{
	struct mm m;
	size_t i;
	int r = 0;

	if (n > METRICS_MERGE_MAX_TEXTS) {
		zg_seterr(err, errlen, "%zu texts: at most %d", n, METRICS_MERGE_MAX_TEXTS);
		return ZG_ERR_INVAL;
	}
	for (i = 0; i < n; i++)
		if (texts[i].s == NULL && texts[i].len != 0) {
			zg_seterr(err, errlen, "text %zu: NULL", i);
			return ZG_ERR_INVAL;
		}
	memset(&m, 0, sizeof(m));
	m.err = err;
	m.errlen = errlen;
	for (i = 0; i < n && r == 0; i++)
		if (texts[i].len != 0)
			r = parse_text(&m, texts[i].s, texts[i].len, i);
	if (r == ZG_ERR_NOMEM)
		zg_seterr(err, errlen, "text %zu: out of memory", i - 1);
	if (r == 0)
		r = write_out(b, &m);
	free(m.f);
	free(m.s);
	free(m.tf.s);
	free(m.ts.s);
	return r;
}
