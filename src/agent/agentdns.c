#include "agent/agentdns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/resolvconf.h"
#include "agent/resolved.h"
#include "log.h"
#include "zg_err.h"

#define SVC_PORT 3

struct agentdns {
	struct agentdns_state st;
	char tun[64];
	int ifindex;
	struct resolved *bus;    /* resolved mode */
	struct resolvconf rc;    /* file mode */
	struct cipdns_assign *a; /* scratch for decoding (large) */
};

static const char *const mode_names[] = { "auto", "resolved", "file", "off" };

int agentdns_mode_parse(const char *s, enum agentdns_mode *pm)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*pm = (enum agentdns_mode)i;
			return 0;
		}
	}
	return ZG_ERR_CONFIG;
}

const char *agentdns_mode_name(enum agentdns_mode m)
{
	return (size_t)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "?";
}

static void set_via(struct agentdns *d)
{
	switch (d->st.mode) {
	case AGENTDNS_RESOLVED:
		(void)snprintf(d->st.via, sizeof(d->st.via), "resolved on %s (ifindex %d)", d->tun,
			       d->ifindex);
		break;
	case AGENTDNS_FILE:
		(void)snprintf(d->st.via, sizeof(d->st.via), "file %s", d->rc.path);
		break;
	default:
		(void)snprintf(d->st.via, sizeof(d->st.via), "off");
		break;
	}
}

int agentdns_new(enum agentdns_mode mode, const char *resolv_conf, const char *backup,
		 const char *tun, int ifindex, struct agentdns **pd, char *err, size_t errlen)
{
	struct agentdns *d = calloc(1, sizeof(*d));
	int r, restored = 0;

	if (d == NULL)
		return ZG_ERR_NOMEM;
	(void)snprintf(d->tun, sizeof(d->tun), "%s", tun);
	d->ifindex = ifindex;
	if (resolvconf_init(&d->rc, resolv_conf[0] ? resolv_conf : RESOLVCONF_DEFAULT, backup) !=
	    0) {
		zg_seterr(err, errlen, "resolv_conf or dns_backup: path too long");
		free(d);
		return ZG_ERR_CONFIG;
	}
	/* in every mode: an earlier run in file mode may have crashed */
	r = resolvconf_recover(&d->rc, &restored);
	if (r != 0)
		log_warnx("dns: the backup %s of an earlier run cannot be used (%s): left alone",
			  d->rc.backup, zg_strerror(r));
	else if (restored)
		log_info("dns: %s restored from %s (left by an agent that did not stop cleanly)",
			 d->rc.path, d->rc.backup);
	if (mode == AGENTDNS_AUTO || mode == AGENTDNS_RESOLVED) {
		char why[256] = "";

		r = resolved_open(&d->bus, why, sizeof(why));
		if (r == 0 && !resolved_present(d->bus)) {
			(void)snprintf(why, sizeof(why), "org.freedesktop.resolve1 is not on the "
							 "system bus (systemd-resolved does not run)");
			resolved_close(d->bus);
			d->bus = NULL;
			r = ZG_ERR_IO;
		}
		if (r != 0 && mode == AGENTDNS_RESOLVED) {
			zg_seterr(err, errlen, "dns: resolved: %s", why);
			resolvconf_free(&d->rc);
			free(d);
			return ZG_ERR_IO;
		}
		if (r != 0)
			log_info("dns: auto: %s; using the file %s", why, d->rc.path);
		mode = r == 0 ? AGENTDNS_RESOLVED : AGENTDNS_FILE;
	}
	d->st.mode = mode;
	if (mode != AGENTDNS_OFF) {
		d->a = malloc(sizeof(*d->a));
		if (d->a == NULL) {
			agentdns_free(d);
			return ZG_ERR_NOMEM;
		}
	}
	set_via(d);
	*pd = d;
	return 0;
}

/* 1 when a nameserver is plain DNS on port 53 (what both back ends can
 * configure): no no-default-alpn, and no port other than 53. */
static int plain_dns(const struct cipdns_ns *ns)
{
	const uint8_t *p = ns->svcparams, *end = p + ns->svcparams_len;
	unsigned key, len;

	while (end - p >= 4) {
		key = (unsigned)p[0] << 8 | p[1];
		len = (unsigned)p[2] << 8 | p[3];
		p += 4;
		if (key == CIPDNS_SVC_NO_DEFAULT_ALPN)
			return 0;
		if (key == SVC_PORT && (len != 2 || (p[0] << 8 | p[1]) != 53))
			return 0;
		p += len;
	}
	return ns->n4 + ns->n6 > 0;
}

int agentdns_assign(struct agentdns *d, const uint8_t *value, size_t len, char *err,
		    size_t errlen)
{
	struct agentdns_state *st = &d->st;
	struct resolved_server srv[AGENTDNS_MAX_SERVERS];
	const char *sv[AGENTDNS_MAX_SERVERS], *dom[CIPDNS_MAX_DOMAINS * CIPDNS_MAX_CONFIGS];
	const char *search[CIPDNS_MAX_DOMAINS * CIPDNS_MAX_CONFIGS];
	size_t i, j, k, nsearch = 0;
	int r, every = 0;

	if (st->mode == AGENTDNS_OFF)
		return 0;
	r = cipdns_assign_decode(value, len, d->a);
	if (r != 0) {
		zg_seterr(err, errlen, "DNS_ASSIGN from the relay is malformed: %s", zg_strerror(r));
		return r;
	}
	st->nservers = st->ndomains = st->skipped = 0;
	for (i = 0; i < d->a->n; i++) {
		const struct cipdns_config *c = &d->a->cfg[i];
		int used = 0;

		for (j = 0; j < c->nns; j++) {
			const struct cipdns_ns *ns = &c->ns[j];

			if (!plain_dns(ns)) {
				st->skipped++;
				continue;
			}
			for (k = 0; k < ns->n4 + ns->n6 && st->nservers < AGENTDNS_MAX_SERVERS; k++) {
				struct resolved_server *s = &srv[st->nservers];

				s->family = k < ns->n4 ? 4 : 6;
				memcpy(s->addr, k < ns->n4 ? ns->v4[k] : ns->v6[k - ns->n4],
				       s->family == 4 ? 4 : 16);
				(void)inet_ntop(s->family == 4 ? AF_INET : AF_INET6, s->addr,
						st->servers[st->nservers], sizeof(st->servers[0]));
				sv[st->nservers] = st->servers[st->nservers];
				st->server_p[st->nservers] = sv[st->nservers];
				st->nservers++;
				used = 1;
			}
		}
		if (!used)
			continue; /* domains without a server we can use */
		for (j = 0; j < c->ninternal; j++) {
			memcpy(st->domains[st->ndomains], c->internal[j], sizeof(st->domains[0]));
			if (c->internal[j][0] == '\0')
				every = 1;
			dom[st->ndomains] = st->domains[st->ndomains];
			st->domain_p[st->ndomains] = dom[st->ndomains];
			st->ndomains++;
		}
		for (j = 0; j < c->nsearch; j++)
			search[nsearch++] = c->search[j];
	}
	if (st->skipped)
		log_warnx("dns: %zu nameservers from the relay are not plain DNS on port 53: left "
			  "out",
			  st->skipped);
	if (st->nservers == 0 || st->ndomains == 0)
		return agentdns_clear(d, err, errlen); /* nothing (usable) assigned */
	if (st->mode == AGENTDNS_RESOLVED) {
		r = resolved_apply(d->bus, d->ifindex, srv, st->nservers, dom, st->ndomains, search,
				   nsearch, err, errlen);
		if (r != 0) {
			char e2[256];

			(void)resolved_revert(d->bus, d->ifindex, e2, sizeof(e2));
		}
	} else {
		struct resolvconf_want w = { sv, st->nservers, search, nsearch, every };

		r = resolvconf_apply(&d->rc, &w);
		if (r != 0) {
			zg_seterr(err, errlen, "cannot write %s: %s", d->rc.path,
				  r == ZG_ERR_IO ? strerror(errno) : zg_strerror(r));
		} else {
			size_t kept = resolvconf_servers_kept(d->rc.orig, d->rc.origlen, &w);

			if (kept < st->nservers)
				log_warnx("dns: %s lists %zu of the relay's %zu nameservers: the "
					  "resolver reads %d, and one of the machine's own stays "
					  "for the names the relay does not serve",
					  d->rc.path, kept, st->nservers, RESOLVCONF_MAXNS);
			st->nservers = kept;
		}
	}
	st->active = r == 0;
	if (r != 0)
		st->nservers = st->ndomains = 0;
	return r;
}

int agentdns_clear(struct agentdns *d, char *err, size_t errlen)
{
	int r = 0;

	if (d == NULL)
		return 0;
	if (d->st.active && d->st.mode == AGENTDNS_RESOLVED)
		r = resolved_revert(d->bus, d->ifindex, err, errlen);
	else if (d->st.mode == AGENTDNS_FILE) {
		r = resolvconf_restore(&d->rc);
		if (r != 0)
			zg_seterr(err, errlen, "cannot restore %s: %s", d->rc.path, strerror(errno));
	}
	d->st.active = 0;
	d->st.nservers = d->st.ndomains = 0;
	return r;
}

const struct agentdns_state *agentdns_state(const struct agentdns *d)
{
	return &d->st;
}

void agentdns_free(struct agentdns *d)
{
	char err[256];

	if (d == NULL)
		return;
	if (agentdns_clear(d, err, sizeof(err)) != 0)
		log_warnx("dns: %s", err);
	resolved_close(d->bus);
	resolvconf_free(&d->rc);
	free(d->a);
	free(d);
}
