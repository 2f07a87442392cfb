#include "relay/polapi.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "atomicfile.h"
#include "log.h"
#include "relay/apiresp.h"
#include "relay/config.h"
#include "relay/policy.h"
#include "yamlcfg.h"
#include "zg_err.h"

struct polapi {
	struct event_base *base;
	struct apic *api;
	struct apic_req *req; /* the fetch in flight, NULL none */
	struct event *timer;
	uint32_t poll_ms;
	char url[512];
	char cache[4096];
	polapi_fn fn;
	void *arg;
	uint64_t version;            /* in force (the cache's) */
	char etag[APIC_ETAG_MAX];    /* the cache's: If-None-Match */
	char refused[APIC_ETAG_MAX]; /* the last version refused: logged once */
	int down;                    /* an outage was reported */
	int none_said;               /* 404 reported */
	int get_failed;              /* apic_get() failed: reported */
	int have;                    /* a policy from zgate-api is in force */
	uint64_t n[POLAPI_NRESULTS];
};

/* ---------------------------------------------------------------- the cache */

/* An ETag the relay can write on its cache's first line and send back:
 * quoted, printable ASCII without spaces (RFC 9110 entity-tag, weak or
 * not); anything else is not kept (the next fetch sends no If-None-Match
 * and costs a 200 instead of a 304). */
static int etag_usable(const char *e)
{
	size_t n = strlen(e);

	if (strncmp(e, "W/", 2) == 0) {
		e += 2;
		n -= 2;
	}
	if (n < 2 || e[0] != '"' || e[n - 1] != '"')
		return 0;
	for (size_t i = 1; i + 1 < n; i++)
		if (e[i] <= 0x20 || e[i] >= 0x7f || e[i] == '"')
			return 0;
	return 1;
}

int polapi_cache_meta(const char *path, uint64_t *pversion, char *etag, size_t etaglen)
{
	char line[256];
	size_t hl = strlen(POLAPI_HEADER), n;
	ssize_t got;
	const char *s;
	int fd;

	*pversion = 0;
	if (etaglen > 0)
		etag[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ZG_ERR_IO;
	got = read(fd, line, sizeof(line) - 1);
	if (got < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return ZG_ERR_IO;
	}
	close(fd);
	line[got] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strncmp(line, POLAPI_HEADER, hl) != 0)
		return ZG_ERR_NOTFOUND;
	s = line + hl;
	n = strspn(s, "0123456789");
	if (n > 0 && n < 20)
		*pversion = strtoull(s, NULL, 10);
	s += n;
	s += strspn(s, " ");
	n = strcspn(s, " ");
	if (*s == '"' && n > 2 && n < etaglen && s[n - 1] == '"') {
		memcpy(etag, s, n);
		etag[n] = '\0';
		if (!etag_usable(etag)) /* a hand edit: sending it would fail every fetch */
			etag[0] = '\0';
	}
	return 0;
}

int polapi_deny_all(struct policy **pp)
{
	static const char doc[] = "version: 1\ndefault_action: deny\nclients: {}\n";
	char err[256];

	return policy_load_buf("(deny-all: no policy fetched from zgate-api yet)", doc,
			       sizeof(doc) - 1, pp, err, sizeof(err)) == 0
		       ? 0
		       : ZG_ERR_NOMEM;
}

int polapi_write_cache(const char *path, const char *header, const char *text, size_t len,
		       char *err, size_t errlen)
{
	/* 0640: the relay's other processes (workers, same user) read it */
	const char *p[2] = { header, text };
	size_t n[2] = { strlen(header), len };

	return atomic_write(path, 0640, p, n, 2, err, errlen);
}

/* ---------------------------------------------------------------- fetching */

static void fetch(struct polapi *p);

static void schedule(struct polapi *p)
{
	struct timeval tv = { (time_t)(p->poll_ms / 1000u), (suseconds_t)(p->poll_ms % 1000u) * 1000 };

	(void)evtimer_add(p->timer, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fetch(arg);
}

/* The version an answer names: Zgate-Policy-Id, else the ETag's
 * "<id>-..." (0: neither). */
static uint64_t answer_version(const struct apic_get_result *g)
{
	const char *s = g->policy_id;

	if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s)) {
		s = g->etag[0] == '"' ? g->etag + 1 : g->etag;
		if (strspn(s, "0123456789") == 0)
			return 0;
	}
	return strtoull(s, NULL, 10);
}

static const char *in_force(const struct polapi *p, char *buf, size_t len)
{
	if (p->version == 0 && access(p->cache, F_OK) != 0)
		zg_seterr(buf, len, "the deny-all policy (none fetched yet)");
	else if (p->version == 0)
		zg_seterr(buf, len, "the policy in %s", p->cache);
	else
		zg_seterr(buf, len, "policy %" PRIu64, p->version);
	return buf;
}

/* zgate-api answered (anything but 503 or a transport failure). */
static void answered(struct polapi *p)
{
	if (p->down) {
		log_info("zgate-api %s answers again", p->url);
		p->down = 0;
	}
}

/* Whether the cache file holds exactly text (len bytes) after its first
 * line. Read in pieces: the file may be up to YAMLCFG_MAX_FILE. */
static int cache_holds(const char *path, const char *text, size_t len)
{
	char buf[8192];
	size_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), head = 1, same = 1;
	ssize_t got;

	if (fd < 0)
		return 0;
	while (same && (got = read(fd, buf, sizeof(buf))) > 0) {
		const char *b = buf;
		size_t n = (size_t)got;

		if (head) { /* skip the first line */
			const char *nl = memchr(b, '\n', n);

			if (nl == NULL)
				continue;
			head = 0;
			n -= (size_t)(nl + 1 - b);
			b = nl + 1;
		}
		if (n > len - off || memcmp(b, text + off, n) != 0)
			same = 0;
		off += n;
	}
	close(fd);
	return same && !head && off == len;
}

static void take(struct polapi *p, const struct apic_get_result *g)
{
	uint64_t v = answer_version(g);
	const char *etag = etag_usable(g->etag) ? g->etag : "\"\"";
	struct policy *np = NULL;
	char name[64], err[512], hdr[APIC_ETAG_MAX + 96], cur[4200];

	zg_seterr(name, sizeof(name), "zgate-api policy %" PRIu64, v);
	if (g->body_len > YAMLCFG_MAX_FILE ||
	    policy_load_buf(name, g->body, g->body_len, &np, err, sizeof(err)) != 0) {
		if (g->body_len > YAMLCFG_MAX_FILE)
			zg_seterr(err, sizeof(err), "%zu bytes, more than %u", g->body_len,
				  (unsigned)YAMLCFG_MAX_FILE);
		p->n[POLAPI_REFUSED]++;
		if (strcmp(p->refused, g->etag) != 0 || g->etag[0] == '\0')
			log_errx("policy %" PRIu64 " from zgate-api refused, keeping %s: %s", v,
				 in_force(p, cur, sizeof(cur)), err);
		zg_seterr(p->refused, sizeof(p->refused), "%s", g->etag);
		return;
	}
	policy_free(np);
	if (v == p->version && cache_holds(p->cache, g->body, g->body_len)) {
		/* the version in force again (a server or proxy that ignores
		 * If-None-Match, or an ETag not kept): nothing to reload */
		p->n[POLAPI_UNCHANGED]++;
		zg_seterr(p->etag, sizeof(p->etag), "%s", strcmp(etag, "\"\"") != 0 ? etag : "");
		p->refused[0] = '\0';
		return;
	}
	zg_seterr(hdr, sizeof(hdr), POLAPI_HEADER "%" PRIu64 " %s (written by zgate-relay)\n", v,
		  etag);
	if (polapi_write_cache(p->cache, hdr, g->body, g->body_len, err, sizeof(err)) != 0) {
		p->n[POLAPI_ERROR]++;
		log_errx("policy %" PRIu64 " from zgate-api not taken, keeping %s: %s", v,
			 in_force(p, cur, sizeof(cur)), err);
		return;
	}
	p->n[POLAPI_CHANGED]++;
	p->have = 1;
	p->version = v;
	zg_seterr(p->etag, sizeof(p->etag), "%s", strcmp(etag, "\"\"") != 0 ? etag : "");
	p->refused[0] = '\0';
	log_info("policy %" PRIu64 " fetched from zgate-api (%zu bytes, %s)", v, g->body_len, etag);
	if (p->fn != NULL)
		p->fn(p->arg, v);
}

static void got_cb(void *arg, const struct apic_get_result *g)
{
	struct polapi *p = arg;
	char cur[4200];

	p->req = NULL;
	if (g->status == 200 && g->ok) {
		answered(p);
		p->none_said = 0;
		take(p, g);
	} else if (g->status == 304) {
		answered(p);
		p->none_said = 0;
		p->n[POLAPI_UNCHANGED]++;
	} else if (g->status == 404) {
		answered(p);
		p->n[POLAPI_ERROR]++;
		if (!p->none_said)
			log_warnx("zgate-api %s has no active policy (%s): keeping %s", p->url,
				  g->cause, in_force(p, cur, sizeof(cur)));
		p->none_said = 1;
	} else {
		p->n[POLAPI_ERROR]++;
		if (!p->down)
			log_warnx("cannot fetch the policy from zgate-api %s (%s): keeping %s until "
				  "it answers",
				  p->url, g->cause[0] ? g->cause : "no answer",
				  in_force(p, cur, sizeof(cur)));
		p->down = 1;
	}
	schedule(p);
}

static void fetch(struct polapi *p)
{
	if (p->req != NULL)
		return;
	p->req = apic_get(p->api, POLAPI_PATH, p->etag, got_cb, p);
	if (p->req == NULL) { /* no memory, or the request could not be made */
		p->n[POLAPI_ERROR]++;
		if (!p->get_failed)
			log_errx("cannot make the request for the policy to zgate-api %s%s: trying "
				 "again every poll",
				 p->url, p->etag[0] ? " (its If-None-Match dropped)" : "");
		p->get_failed = 1;
		p->etag[0] = '\0';
		schedule(p);
		return;
	}
	p->get_failed = 0;
}

/* Whether the cached policy parses (the relay then runs it). */
static int cache_loads(const char *path)
{
	struct policy *np = NULL;
	char err[256];

	if (policy_load_file(path, &np, err, sizeof(err)) != 0)
		return 0;
	policy_free(np);
	return 1;
}

int polapi_new(struct event_base *base, struct evdns_base *evdns, const struct polapi_config *cfg,
	       polapi_fn fn, void *arg, struct polapi **pp, char *err, size_t errlen)
{
	struct polapi *p;
	struct apic_config ac = cfg->api;
	int r;

	*pp = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		zg_seterr(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	p->base = base;
	p->fn = fn;
	p->arg = arg;
	p->poll_ms = cfg->poll_ms ? cfg->poll_ms : 10000;
	ac.keys = cfg->api.keys ? cfg->api.keys : "policy_api";
	zg_seterr(p->url, sizeof(p->url), "%s", cfg->api.url ? cfg->api.url : "");
	zg_seterr(p->cache, sizeof(p->cache), "%s", cfg->cache ? cfg->cache : "");
	ac.max_conns = 1;
	ac.body_max = YAMLCFG_MAX_FILE + 1; /* one more: refused as too large, not cut */
	ac.on_state = NULL;
	if ((r = apic_new(base, evdns, &ac, &p->api, err, errlen)) != 0)
		goto fail;
	if ((p->timer = evtimer_new(base, timer_cb, p)) == NULL) {
		zg_seterr(err, errlen, "out of memory");
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	/* a file that loads is in force (one without our first line too: the
	 * operator's own, before policy_api was set) */
	p->have = cache_loads(p->cache);
	if (polapi_cache_meta(p->cache, &p->version, p->etag, sizeof(p->etag)) != 0 || !p->have) {
		/* no cache, or one that does not load (the relay runs deny-all):
		 * ask for the policy whole, never for "unchanged" */
		p->version = 0;
		p->etag[0] = '\0';
	}
	*pp = p;
	return 0;
fail:
	apic_free(p->api);
	free(p);
	return r;
}

int polapi_from_config(const struct relay_config *cfg, struct event_base *base,
		       struct evdns_base *dns, polapi_fn fn, void *arg, struct polapi **pp,
		       char *err, size_t errlen)
{
	struct polapi_config pc;
	char id[64];
	int rv;

	*pp = NULL;
	memset(&pc, 0, sizeof(pc));
	if ((rv = config_relay_id(cfg, id, sizeof(id), err, errlen)) != 0)
		return rv;
	pc.api.url = cfg->policy_api_url;
	config_policy_api_files(cfg, &pc.api.ca, &pc.api.cert, &pc.api.key);
	pc.api.relay_id = id;
	pc.api.timeout_ms = cfg->policy_api_timeout_ms;
	pc.api.keys = "policy_api";
	pc.poll_ms = cfg->policy_api_poll_ms;
	pc.cache = cfg->policy_file;
	return polapi_new(base, dns, &pc, fn, arg, pp, err, errlen);
}

int polapi_has_policy(const struct polapi *p)
{
	return p != NULL && p->have;
}

int polapi_start(struct polapi *p)
{
	fetch(p);
	return 0;
}

void polapi_del(struct polapi *p)
{
	if (p == NULL)
		return;
	if (p->timer)
		event_free(p->timer);
	apic_free(p->api); /* drops the pending request without its callback */
	free(p);
}

void polapi_counts(const struct polapi *p, uint64_t out[POLAPI_NRESULTS])
{
	for (int i = 0; i < POLAPI_NRESULTS; i++)
		out[i] = p != NULL ? p->n[i] : 0;
}

uint64_t polapi_version(const struct polapi *p)
{
	return p != NULL ? p->version : 0;
}
