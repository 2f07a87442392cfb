#include "api/policy_routes.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "relay/policy.h"
#include "zg_err.h"

#define LIST_DEFAULT 50
/* One version's metadata as JSON, at most: the comment and created_by
 * escaped (6 bytes a byte at worst), the rest. */
#define META_JSON_MAX (API_POLICY_COMMENT_MAX * 6 + API_POLICY_BY_MAX * 6 + 256)

/* The active document as relays are sent it, shared by their answers. */
struct shared_doc {
	struct api_policies *owner;
	int64_t id;
	char etag[48];
	char *doc;
	size_t len;
	unsigned refs; /* under owner->mu: the cache's and each answer's */
};

struct api_policies {
	struct api_db *db;
	pthread_mutex_t mu;      /* big, active, cache's pointer and refs */
	pthread_mutex_t fill_mu; /* one fetch of a new active document at a time */
	unsigned big;            /* slots taken */
	int64_t active;          /* the gauge; -1 not known */
	struct shared_doc *cache;
};

int api_policies_new(struct api_db *db, struct api_policies **pp)
{
	struct api_policies *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return ZG_ERR_NOMEM;
	p->db = db;
	p->active = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->fill_mu, NULL);
	*pp = p;
	return 0;
}

void api_policies_free(struct api_policies *p)
{
	if (p == NULL)
		return;
	if (p->cache != NULL) {
		free(p->cache->doc);
		free(p->cache);
	}
	pthread_mutex_destroy(&p->fill_mu);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int api_policies_big_take(struct api_policies *p)
{
	int ok;

	pthread_mutex_lock(&p->mu);
	ok = p->big < API_POLICY_BIG_SLOTS;
	if (ok)
		p->big++;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

void api_policies_big_give(struct api_policies *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->big > 0)
		p->big--;
	pthread_mutex_unlock(&p->mu);
}

int64_t api_policies_active_id(struct api_policies *p)
{
	int64_t v;

	pthread_mutex_lock(&p->mu);
	v = p->active;
	pthread_mutex_unlock(&p->mu);
	return v;
}

static void set_active(struct api_policies *p, int64_t id)
{
	pthread_mutex_lock(&p->mu);
	p->active = id;
	pthread_mutex_unlock(&p->mu);
}

void api_policies_refresh(struct api_policies *p)
{
	char sha[65];
	int64_t id;

	if (api_db_policy_active(p->db, &id, sha) == 0)
		set_active(p, id);
}

/* ---------------------------------------------------------------- answers */

/* A growable text of at most cap bytes, for JSON bodies. */
struct out {
	char *p;
	size_t n, cap;
	int full;
};

static int out_init(struct out *o, size_t cap)
{
	o->p = malloc(cap);
	o->n = 0;
	o->cap = cap;
	o->full = o->p == NULL;
	return o->full ? ZG_ERR_NOMEM : 0;
}

__attribute__((format(printf, 2, 3))) static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (o->full)
		return;
	va_start(ap, fmt);
	w = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= o->cap - o->n)
		o->full = 1;
	else
		o->n += (size_t)w;
}

/* s (len bytes) as a JSON string. */
static void out_quote(struct out *o, const char *s, size_t len)
{
	size_t w;

	if (o->full)
		return;
	w = api_json_quote_n(o->p + o->n, o->cap - o->n, s, len);
	if (w >= o->cap - o->n)
		o->full = 1;
	else
		o->n += w;
}

static struct MHD_Response *respond(struct MHD_Response *res, const char *ctype)
{
	if (res == NULL)
		return NULL;
	(void)MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	(void)MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return res;
}

/* A JSON body: o's text (freed by the response; o->p given away). */
static struct MHD_Response *json_out(struct out *o, unsigned code, unsigned *pcode)
{
	struct MHD_Response *res;

	if (o->full) { /* a bug: the caps are computed for the largest answer */
		static const char tl[] = "{\"error\":\"answer too large\"}\n";

		free(o->p);
		o->p = NULL;
		log_errx("policy answer larger than its buffer (%zu bytes)", o->cap);
		*pcode = 500;
		return respond(MHD_create_response_from_buffer(sizeof(tl) - 1, (void *)(uintptr_t)tl,
							       MHD_RESPMEM_PERSISTENT),
			       "application/json");
	}
	o->p[o->n++] = '\n';
	res = MHD_create_response_from_buffer(o->n, o->p, MHD_RESPMEM_MUST_FREE);
	if (res == NULL)
		free(o->p);
	o->p = NULL;
	*pcode = code;
	return respond(res, "application/json");
}

/* {"error": msg} plus extra members (",\"line\":3" ...; "" none). */
static struct MHD_Response *error_x(unsigned code, unsigned *pcode, const char *msg,
				    const char *extra)
{
	struct out o;

	if (out_init(&o, strlen(msg) * 6 + strlen(extra) + 32) != 0)
		return NULL;
	outf(&o, "{\"error\":");
	out_quote(&o, msg, strlen(msg));
	outf(&o, "%s}", extra);
	return json_out(&o, code, pcode);
}

static struct MHD_Response *error(unsigned code, unsigned *pcode, const char *msg)
{
	return error_x(code, pcode, msg, "");
}

static struct MHD_Response *unavailable(unsigned *pcode, const char *msg)
{
	struct MHD_Response *res = error(503, pcode, msg);

	if (res != NULL)
		(void)MHD_add_response_header(res, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	return res;
}

static struct MHD_Response *db_down(unsigned *pcode)
{
	return unavailable(pcode, "database unavailable");
}

static void rfc3339(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(buf, len, "unknown");
}

/* A version's metadata as a JSON object without its closing brace. */
static void meta_json(struct out *o, const struct api_policy_meta *m)
{
	char created[32];

	rfc3339(m->created, created, sizeof(created));
	outf(o, "{\"id\":%lld,\"sha256\":\"%s\",\"size\":%lld,\"comment\":", (long long)m->id,
	     m->sha256, (long long)m->size);
	out_quote(o, m->comment, strlen(m->comment));
	outf(o, ",\"created\":\"%s\",\"created_by\":", created);
	out_quote(o, m->created_by, strlen(m->created_by));
	outf(o, ",\"active\":%s", m->active ? "true" : "false");
}

/* A query argument: a number from 1 to max, or absent (def). */
static int arg_num(const char *v, long long max, long long def, long long *pv)
{
	char *end;
	long long n;

	if (v == NULL) {
		*pv = def;
		return 0;
	}
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] < '0' || v[0] > '9' || n < 1 || n > max)
		return -1;
	*pv = n;
	return 0;
}

static void sha256_hex(const char *doc, size_t len, char hex[65])
{
	static const char x[] = "0123456789abcdef";
	unsigned char d[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, doc, len, d) != 0)
		memset(d, 0, sizeof(d)); /* never: GnuTLS always has SHA-256 */
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = x[d[i] >> 4];
		hex[2 * i + 1] = x[d[i] & 15];
	}
	hex[64] = '\0';
}

/* The body checked with the relay's parser: 0 with the counts, or -1
 * with the answer in *pres (400 with line and column when the parser gave
 * them, 413, 503; NULL: out of memory) and *b empty. */
static int check_body(const struct api_policy_call *c, struct api_policy_body *b,
		      size_t *pclients, size_t *prules, unsigned *pcode, struct MHD_Response **pres)
{
	struct policy *pol = NULL;
	char err[512], extra[64] = "";
	unsigned long line, col;
	int r;

	r = api_parse_policy(c->body, c->len, b, err, sizeof(err));
	if (r == ZG_ERR_TOO_LARGE)
		*pres = error(413, pcode, err);
	else if (r == ZG_ERR_NOMEM)
		*pres = unavailable(pcode, "out of memory");
	else if (r != 0)
		*pres = error(400, pcode, err);
	if (r != 0)
		return -1;
	r = policy_load_buf("policy", b->document, b->len, &pol, err, sizeof(err));
	if (r != 0) {
		api_policy_body_free(b);
		if (r == ZG_ERR_NOMEM) {
			*pres = unavailable(pcode, "out of memory");
			return -1;
		}
		if (api_policy_error_pos(err, &line, &col) == 0)
			(void)snprintf(extra, sizeof(extra), ",\"line\":%lu,\"column\":%lu", line, col);
		*pres = error_x(400, pcode, err, extra);
		return -1;
	}
	*pclients = policy_client_count(pol);
	*prules = policy_rule_count(pol);
	policy_free(pol);
	return 0;
}

static struct MHD_Response *create(struct api_policies *p, const struct api_policy_call *c,
				   unsigned *pcode)
{
	struct api_policy_body b;
	struct api_policy_meta m;
	struct MHD_Response *res;
	size_t nc = 0, nr = 0;
	char sha[65];
	int created, r;
	struct out o;

	if (check_body(c, &b, &nc, &nr, pcode, &res) != 0)
		return res;
	if (c->kind == API_R_POLICY_VALIDATE) {
		api_policy_body_free(&b);
		if (out_init(&o, 96) != 0)
			return NULL;
		outf(&o, "{\"ok\":true,\"clients\":%zu,\"rules\":%zu}", nc, nr);
		return json_out(&o, 200, pcode);
	}
	sha256_hex(b.document, b.len, sha);
	r = api_db_policy_create(p->db, b.document, b.len, sha, b.comment, c->by, &m, &created);
	api_policy_body_free(&b);
	if (r != 0)
		return db_down(pcode);
	if (created)
		log_info("policy %lld created by %s (%lld bytes, sha256 %s)", (long long)m.id, c->by,
			 (long long)m.size, m.sha256);
	if (out_init(&o, META_JSON_MAX + 64) != 0)
		return NULL;
	meta_json(&o, &m);
	outf(&o, ",\"clients\":%zu,\"rules\":%zu}", nc, nr);
	return json_out(&o, created ? 201 : 200, pcode);
}

static struct MHD_Response *list(struct api_policies *p, const struct api_policy_call *c,
				 unsigned *pcode)
{
	struct api_policy_meta *ms;
	long long limit, before;
	int64_t active;
	size_t n;
	struct out o;

	if (arg_num(c->limit, API_POLICY_LIST_MAX, LIST_DEFAULT, &limit) != 0)
		return error(400, pcode, "limit must be 1 to 500");
	if (arg_num(c->before, 999999999999999999LL, 0, &before) != 0)
		return error(400, pcode, "before must be a policy id (a positive integer)");
	if ((ms = calloc((size_t)limit + 1, sizeof(*ms))) == NULL)
		return NULL;
	if (api_db_policy_list(p->db, before, (unsigned)limit + 1, ms, &n, &active) != 0) {
		free(ms);
		return db_down(pcode);
	}
	set_active(p, active);
	if (out_init(&o, ((size_t)limit + 1) * META_JSON_MAX + 128) != 0) {
		free(ms);
		return NULL;
	}
	if (active)
		outf(&o, "{\"active\":%lld,\"policies\":[", (long long)active);
	else
		outf(&o, "{\"active\":null,\"policies\":[");
	for (size_t i = 0; i < n && i < (size_t)limit; i++) {
		outf(&o, "%s", i ? "," : "");
		meta_json(&o, &ms[i]);
		outf(&o, "}");
	}
	if (n > (size_t)limit)
		outf(&o, "],\"next\":%lld}", (long long)ms[limit - 1].id);
	else
		outf(&o, "],\"next\":null}");
	free(ms);
	return json_out(&o, 200, pcode);
}

static void give_slot(void *cls)
{
	struct api_policies *p = ((void **)cls)[0];

	free(((void **)cls)[1]);
	free(cls);
	api_policies_big_give(p);
}

static struct MHD_Response *get_one(struct api_policies *p, const struct api_policy_call *c,
				    unsigned *pcode)
{
	struct api_policy_meta m;
	struct policy *pol = NULL;
	struct MHD_Response *res = NULL;
	char *doc = NULL, err[512];
	void **cls = NULL;
	size_t len = 0;
	struct out o = { 0 };
	int r;

	if (!api_policies_big_take(p))
		return unavailable(pcode, "too many large policy requests at once; try again");
	r = api_db_policy_get(p->db, c->id, &m, &doc, &len);
	if (r == ZG_ERR_NOTFOUND) {
		(void)snprintf(err, sizeof(err), "no policy version %lld", (long long)c->id);
		res = error(404, pcode, err);
		goto out;
	}
	if (r != 0) {
		res = r == ZG_ERR_NOMEM ? NULL : db_down(pcode);
		goto out;
	}
	if (out_init(&o, META_JSON_MAX + api_json_quote_n(NULL, 0, doc, len) + 128) != 0 ||
	    (cls = calloc(2, sizeof(void *))) == NULL)
		goto out;
	meta_json(&o, &m);
	/* what the relay's parser makes of it now (it may have changed since) */
	if (policy_load_buf("policy", doc, len, &pol, err, sizeof(err)) == 0) {
		outf(&o, ",\"clients\":%zu,\"rules\":%zu", policy_client_count(pol),
		     policy_rule_count(pol));
		policy_free(pol);
	}
	outf(&o, ",\"document\":");
	out_quote(&o, doc, len);
	outf(&o, "}\n");
	if (o.full) {
		res = error(500, pcode, "answer too large");
		goto out;
	}
	/* the slot is held until the answer is sent and its buffer freed */
	cls[0] = p;
	cls[1] = o.p;
	res = MHD_create_response_from_buffer_with_free_callback_cls(o.n, o.p, give_slot, cls);
	if (res == NULL)
		goto out;
	o.p = NULL;
	cls = NULL;
	free(doc);
	*pcode = 200;
	return respond(res, "application/json");
out:
	free(o.p);
	free(cls);
	free(doc);
	api_policies_big_give(p);
	return res;
}

static struct MHD_Response *activate(struct api_policies *p, const struct api_policy_call *c,
				     unsigned *pcode)
{
	struct api_policy_meta m;
	char err[256], a[24], e[24], extra[48];
	int64_t prev, expected;
	int check, added, r;
	struct out o;

	if ((r = api_parse_activate(c->body, c->len, &check, &expected, err, sizeof(err))) != 0)
		return error(r == ZG_ERR_TOO_LARGE ? 413 : 400, pcode, err);
	r = api_db_policy_activate(p->db, c->id, check, expected, c->by, &prev, &added);
	if (r == ZG_ERR_NOTFOUND) {
		(void)snprintf(err, sizeof(err), "no policy version %lld", (long long)c->id);
		return error(404, pcode, err);
	}
	if (r == ZG_ERR_STATE) {
		set_active(p, prev);
		(void)snprintf(a, sizeof(a), "%lld", (long long)prev);
		(void)snprintf(e, sizeof(e), "%lld", (long long)expected);
		(void)snprintf(err, sizeof(err), "the active policy is %s, not %s",
			       prev ? a : "none", expected ? e : "none");
		(void)snprintf(extra, sizeof(extra), ",\"active\":%s", prev ? a : "null");
		return error_x(409, pcode, err, extra);
	}
	if (r != 0)
		return db_down(pcode);
	set_active(p, c->id);
	if (added) {
		(void)snprintf(a, sizeof(a), "%lld", (long long)prev);
		log_info("policy %lld activated by %s (was %s)", (long long)c->id, c->by,
			 prev ? a : "none");
	}
	if ((r = api_db_policy_get(p->db, c->id, &m, NULL, NULL)) != 0)
		return db_down(pcode);
	m.active = 1; /* another activation may have followed; this one's answer */
	if (out_init(&o, META_JSON_MAX) != 0)
		return NULL;
	meta_json(&o, &m);
	outf(&o, "}");
	return json_out(&o, 200, pcode);
}

static struct MHD_Response *activations(struct api_policies *p, const struct api_policy_call *c,
					unsigned *pcode)
{
	struct api_policy_activation *as;
	long long limit;
	size_t n;
	struct out o;

	if (arg_num(c->limit, API_POLICY_ACTIVATIONS_MAX, LIST_DEFAULT, &limit) != 0)
		return error(400, pcode, "limit must be 1 to 500");
	if ((as = calloc((size_t)limit, sizeof(*as))) == NULL)
		return NULL;
	if (api_db_policy_activations(p->db, (unsigned)limit, as, &n) != 0) {
		free(as);
		return db_down(pcode);
	}
	if (out_init(&o, (size_t)limit * (API_POLICY_BY_MAX * 6 + 96) + 64) != 0) {
		free(as);
		return NULL;
	}
	outf(&o, "{\"activations\":[");
	for (size_t i = 0; i < n; i++) {
		char at[32];

		rfc3339(as[i].at, at, sizeof(at));
		outf(&o, "%s{\"policy_id\":%lld,\"at\":\"%s\",\"by\":", i ? "," : "",
		     (long long)as[i].policy_id, at);
		out_quote(&o, as[i].by, strlen(as[i].by));
		outf(&o, "}");
	}
	outf(&o, "]}");
	free(as);
	return json_out(&o, 200, pcode);
}

static void doc_unref(struct api_policies *p, struct shared_doc *d)
{
	unsigned left;

	pthread_mutex_lock(&p->mu);
	left = --d->refs;
	pthread_mutex_unlock(&p->mu);
	if (left == 0) {
		free(d->doc);
		free(d);
	}
}

static void doc_done(void *cls)
{
	struct shared_doc *d = cls;

	doc_unref(d->owner, d);
}

/* The cached document if it is version id (a reference taken), else NULL. */
static struct shared_doc *doc_cached(struct api_policies *p, int64_t id)
{
	struct shared_doc *d;

	pthread_mutex_lock(&p->mu);
	d = p->cache != NULL && p->cache->id == id ? p->cache : NULL;
	if (d != NULL)
		d->refs++;
	pthread_mutex_unlock(&p->mu);
	return d;
}

/* GET /api/v1/policy: the active document, raw, for relays. */
static struct MHD_Response *active_doc(struct api_policies *p, const struct api_policy_call *c,
				       unsigned *pcode)
{
	struct MHD_Response *res;
	struct shared_doc *d, *old = NULL;
	struct api_policy_meta m;
	char sha[65], etag[48], idt[24];
	int64_t id;
	int r;

	if (api_db_policy_active(p->db, &id, sha) != 0)
		return db_down(pcode);
	set_active(p, id);
	if (id == 0)
		return error(404, pcode, "no active policy");
	(void)snprintf(etag, sizeof(etag), "\"%lld-%.16s\"", (long long)id, sha);
	(void)snprintf(idt, sizeof(idt), "%lld", (long long)id);
	if (api_etag_match(c->if_none_match, etag)) {
		res = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		*pcode = 304;
		goto headers;
	}
	if ((d = doc_cached(p, id)) == NULL) {
		pthread_mutex_lock(&p->fill_mu);
		if ((d = doc_cached(p, id)) == NULL) {
			if ((d = calloc(1, sizeof(*d))) == NULL) {
				pthread_mutex_unlock(&p->fill_mu);
				return NULL;
			}
			r = api_db_policy_get(p->db, id, &m, &d->doc, &d->len);
			if (r != 0) {
				pthread_mutex_unlock(&p->fill_mu);
				free(d);
				return r == ZG_ERR_NOMEM ? NULL : db_down(pcode);
			}
			d->owner = p;
			d->id = id;
			d->refs = 2; /* the cache's and this answer's */
			pthread_mutex_lock(&p->mu);
			old = p->cache;
			p->cache = d;
			pthread_mutex_unlock(&p->mu);
		}
		pthread_mutex_unlock(&p->fill_mu);
		if (old != NULL)
			doc_unref(p, old);
	}
	res = MHD_create_response_from_buffer_with_free_callback_cls(d->len, d->doc, doc_done, d);
	if (res == NULL) {
		doc_unref(p, d);
		return NULL;
	}
	*pcode = 200;
headers:
	if (res == NULL)
		return NULL;
	(void)MHD_add_response_header(res, MHD_HTTP_HEADER_ETAG, etag);
	(void)MHD_add_response_header(res, "Zgate-Policy-Id", idt);
	return respond(res, "application/yaml");
}

struct MHD_Response *api_policy_answer(struct api_policies *p, const struct api_policy_call *c,
				       unsigned *pcode)
{
	*pcode = 0;
	switch (c->kind) {
	case API_R_POLICIES:
		return c->post ? create(p, c, pcode) : list(p, c, pcode);
	case API_R_POLICY_VALIDATE:
		return create(p, c, pcode);
	case API_R_POLICY_ONE:
		return get_one(p, c, pcode);
	case API_R_POLICY_ACTIVATE:
		return activate(p, c, pcode);
	case API_R_POLICY_ACTIVATIONS:
		return activations(p, c, pcode);
	case API_R_POLICY_ACTIVE:
		return active_doc(p, c, pcode);
	default:
		return error(404, pcode, "no such endpoint");
	}
}
