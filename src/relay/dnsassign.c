#include "relay/dnsassign.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

struct dnsassign {
	int mode;    /* -1 auto, 0 off, 1 on */
	int enabled; /* on, or auto with configured domains */
	struct cipdns_ns ns;
	char domains[CIPDNS_MAX_DOMAINS][CIPDNS_NAME_MAX + 2];
	size_t ndomains;
};

/* Canonical form of a domain for the capsule: "*." dropped, lower case,
 * no final dot, "." = "" (the root). Returns 0, or -1 when s is no name. */
static int canon(const char *s, size_t len, char out[CIPDNS_NAME_MAX + 2])
{
	size_t i;

	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
	}
	if (len == 1 && s[0] == '.')
		len = 0;
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len > CIPDNS_NAME_MAX || !cipdns_name_ok(s, len, 1))
		return -1;
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[len] = '\0';
	return 0;
}

static int have(const struct dnsassign *d, char (*list)[CIPDNS_NAME_MAX + 2], size_t n,
		const char *name)
{
	size_t i;

	(void)d;
	for (i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return 1;
	return 0;
}

/* Calls fn for each item of a config list ("a, b c"). Returns fn's first
 * non-zero result. */
static int each_item(const char *list, int (*fn)(const char *s, size_t len, void *arg), void *arg)
{
	const char *p = list, *q;
	int r;

	for (;;) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			return 0;
		q = p;
		while (*q != '\0' && *q != ',' && !isspace((unsigned char)*q))
			q++;
		if ((r = fn(p, (size_t)(q - p), arg)) != 0)
			return r;
		p = q;
	}
}

struct build {
	struct dnsassign *d;
	char *err;
	size_t errlen;
};

static int add_domain(const char *s, size_t len, void *arg)
{
	struct build *b = arg;
	char name[CIPDNS_NAME_MAX + 2];

	if (canon(s, len, name) != 0) {
		zg_seterr(b->err, b->errlen, "dns.domains: \"%.*s\" is not a domain name",
			  (int)(len > 300 ? 300 : len), s);
		return ZG_ERR_CONFIG;
	}
	if (have(b->d, b->d->domains, b->d->ndomains, name))
		return 0;
	if (b->d->ndomains == CIPDNS_MAX_DOMAINS) {
		zg_seterr(b->err, b->errlen, "dns.domains: more than %d domains",
			  CIPDNS_MAX_DOMAINS);
		return ZG_ERR_CONFIG;
	}
	memcpy(b->d->domains[b->d->ndomains++], name, sizeof(name));
	return 0;
}

static int add_ns(const char *s, size_t len, void *arg)
{
	struct build *b = arg;
	struct cipdns_ns *ns = &b->d->ns;
	char a[INET6_ADDRSTRLEN + 1];

	if (len >= sizeof(a))
		goto bad;
	memcpy(a, s, len);
	a[len] = '\0';
	if (inet_pton(AF_INET, a, ns->v4[ns->n4 < CIPDNS_MAX_ADDRS ? ns->n4 : 0]) == 1) {
		if (ns->n4 == CIPDNS_MAX_ADDRS)
			goto many;
		ns->n4++;
		return 0;
	}
	if (inet_pton(AF_INET6, a, ns->v6[ns->n6 < CIPDNS_MAX_ADDRS ? ns->n6 : 0]) == 1) {
		if (ns->n6 == CIPDNS_MAX_ADDRS)
			goto many;
		ns->n6++;
		return 0;
	}
bad:
	zg_seterr(b->err, b->errlen, "dns.nameservers: \"%.*s\" is not an IPv4 or IPv6 address",
		  (int)(len > 300 ? 300 : len), s);
	return ZG_ERR_CONFIG;
many:
	zg_seterr(b->err, b->errlen, "dns.nameservers: more than %d addresses of one family",
		  CIPDNS_MAX_ADDRS);
	return ZG_ERR_CONFIG;
}

int dnsassign_new(const char *enabled, const char *domains, const char *nameservers,
		  const uint8_t gw4[4], const uint8_t *gw6, struct dnsassign **pd, char *err,
		  size_t errlen)
{
	struct dnsassign *d;
	struct build b;
	int r, want;

	if (strcmp(enabled, "auto") == 0)
		want = -1;
	else if (strcmp(enabled, "true") == 0 || strcmp(enabled, "on") == 0)
		want = 1;
	else if (strcmp(enabled, "false") == 0 || strcmp(enabled, "off") == 0)
		want = 0;
	else {
		zg_seterr(err, errlen, "dns.enabled: \"%s\": expected auto, true or false", enabled);
		return ZG_ERR_CONFIG;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return ZG_ERR_NOMEM;
	b.d = d;
	b.err = err;
	b.errlen = errlen;
	if ((r = each_item(domains, add_domain, &b)) != 0 ||
	    (r = each_item(nameservers, add_ns, &b)) != 0) {
		free(d);
		return r;
	}
	d->ns.priority = 1;
	if (d->ns.n4 == 0 && d->ns.n6 == 0) {
		memcpy(d->ns.v4[0], gw4, 4);
		d->ns.n4 = 1;
		if (gw6 != NULL) {
			memcpy(d->ns.v6[0], gw6, 16);
			d->ns.n6 = 1;
		}
	}
	d->mode = want;
	d->enabled = want == -1 ? d->ndomains > 0 : want;
	if (want == 1 && d->ndomains == 0) {
		zg_seterr(err, errlen, "dns.enabled is true but dns.domains is empty (use \".\" "
				       "to send every name to the relay)");
		free(d);
		return ZG_ERR_CONFIG;
	}
	*pd = d;
	return 0;
}

void dnsassign_free(struct dnsassign *d)
{
	free(d);
}

int dnsassign_enabled(const struct dnsassign *d)
{
	return d != NULL && d->enabled;
}

enum dnsassign_when dnsassign_when(const struct dnsassign *d)
{
	if (d == NULL || d->mode == 0)
		return DNSASSIGN_NEVER;
	return d->mode == 1 ? DNSASSIGN_ALWAYS : DNSASSIGN_ON_ASK;
}

int dnsassign_for_client(const struct dnsassign *d, const char *const *extra, size_t nextra,
			 uint8_t *buf, size_t cap, size_t *plen, size_t *pdropped)
{
	static struct cipdns_assign a; /* 70 KB: not on the stack; one event loop */
	struct cipdns_config *c = &a.cfg[0];
	char name[CIPDNS_NAME_MAX + 2];
	size_t i, dropped = 0;
	uint8_t *p = buf;
	int r;

	if (pdropped != NULL)
		*pdropped = 0;
	if (d == NULL || d->mode == 0)
		return ZG_ERR_NOTFOUND;
	memset(&a, 0, sizeof(a));
	a.n = 1;
	c->nns = 1;
	c->ns[0] = d->ns;
	for (i = 0; i < d->ndomains; i++)
		memcpy(c->internal[c->ninternal++], d->domains[i], sizeof(name));
	for (i = 0; i < nextra; i++) {
		if (extra[i] == NULL || canon(extra[i], strlen(extra[i]), name) != 0) {
			dropped++;
			continue;
		}
		if (have(d, c->internal, c->ninternal, name))
			continue;
		if (c->ninternal == CIPDNS_MAX_DOMAINS) {
			dropped++;
			continue;
		}
		memcpy(c->internal[c->ninternal++], name, sizeof(name));
	}
	if (pdropped != NULL)
		*pdropped = dropped;
	if (c->ninternal == 0)
		return ZG_ERR_NOTFOUND;
	r = cipdns_assign_encode(&p, buf + cap, &a);
	if (r != 0)
		return r;
	*plen = (size_t)(p - buf);
	return 0;
}

void dnsassign_summary(const struct dnsassign *d, char *buf, size_t buflen)
{
	char a[INET6_ADDRSTRLEN];
	size_t off = 0, i;
	int w;

#define APPEND(...)                                                                    \
	do {                                                                           \
		w = snprintf(buf + off, off < buflen ? buflen - off : 0, __VA_ARGS__); \
		if (w < 0 || (size_t)w >= buflen - off)                                \
			return;                                                        \
		off += (size_t)w;                                                      \
	} while (0)

	if (buflen == 0)
		return;
	buf[0] = '\0';
	if (!dnsassign_enabled(d)) {
		APPEND("%s", d != NULL && d->ndomains > 0 ? "off (dns.enabled: false)"
							  : "off (no dns.domains)");
		return;
	}
	APPEND("%s: nameserver", d->mode == 1 ? "on, to every client" : "on, to clients that send one");
	for (i = 0; i < d->ns.n4; i++)
		APPEND(" %s", inet_ntop(AF_INET, d->ns.v4[i], a, sizeof(a)));
	for (i = 0; i < d->ns.n6; i++)
		APPEND(" %s", inet_ntop(AF_INET6, d->ns.v6[i], a, sizeof(a)));
	APPEND(", domains");
	for (i = 0; i < d->ndomains; i++)
		APPEND("%s %s", i ? "," : "", d->domains[i][0] ? d->domains[i] : ". (every name)");
#undef APPEND
}
