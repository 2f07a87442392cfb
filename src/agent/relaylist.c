/* relaylist.c — see relaylist.h. */
#include "agent/relaylist.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "hostport.h"
#include "zg_err.h"

#define FORM "[NAME@]HOST:PORT (e.g. relay.example.com:443, 192.0.2.1:4433, [2001:db8::1]:443 " \
	     "or relay-b.example.com@192.0.2.7:443)"

/* A DNS name as the certificate must carry it: labels of letters, digits,
 * '-' and '_', separated by single dots. */
static int dns_name_ok(const char *s)
{
	size_t label = 0;

	if (*s == '\0' || *s == '.')
		return 0;
	for (; *s; s++) {
		if (*s == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

int relaylist_parse_entry(const char *text, struct relay_entry *e, char *why, size_t whylen)
{
	const char *at = strchr(text, '@'), *hp = at ? at + 1 : text;
	uint8_t a6[16];

	memset(e, 0, sizeof(*e));
	if (strlen(text) >= sizeof(e->text)) {
		zg_seterr(why, whylen, "longer than %zu characters", sizeof(e->text) - 1);
		return ZG_ERR_CONFIG;
	}
	memcpy(e->text, text, strlen(text) + 1);
	if (at != NULL) {
		size_t nl = (size_t)(at - text);

		if (nl == 0 || nl >= sizeof(e->name) || strchr(hp, '@') != NULL) {
			zg_seterr(why, whylen, "is not " FORM);
			return ZG_ERR_CONFIG;
		}
		memcpy(e->name, text, nl);
		e->name[nl] = '\0';
		if (!dns_name_ok(e->name)) {
			zg_seterr(why, whylen,
				  "\"%s\" before '@' is not a host name (the name the relay's "
				  "certificate carries)",
				  e->name);
			return ZG_ERR_CONFIG;
		}
	}
	memcpy(e->addr, hp, strlen(hp) + 1);
	if (hostport_split(hp, e->host, sizeof(e->host), &e->port) != 0 || e->host[0] == '\0') {
		zg_seterr(why, whylen, "is not " FORM "%s", strchr(hp, ':') != strrchr(hp, ':') && hp[0] != '[' ? "; an IPv6 address goes in brackets" : "");
		return ZG_ERR_CONFIG;
	}
	if (e->port == 0) {
		zg_seterr(why, whylen, "port 0 is not a relay's port (1 to 65535)");
		return ZG_ERR_CONFIG;
	}
	if (hp[0] == '[' ? inet_pton(AF_INET6, e->host, a6) != 1 : !dns_name_ok(e->host)) {
		zg_seterr(why, whylen, "\"%s\" is not %s", e->host,
			  hp[0] == '[' ? "an IPv6 address" : "a host name or an IPv4 address");
		return ZG_ERR_CONFIG;
	}
	return 0;
}

int relaylist_add(struct relaylist *l, const char *text, const char *where, char *err,
		  size_t errlen)
{
	const char *s = text;
	size_t added = 0;

	while (*s) {
		char item[RELAYLIST_TEXT_MAX + 1], why[256];
		size_t n = strcspn(s, ", \t\n");
		struct relay_entry *e;

		if (n == 0) {
			s++;
			continue;
		}
		if (l->n == RELAYLIST_MAX) {
			zg_seterr(err, errlen, "%s: more than %d relays", where, RELAYLIST_MAX);
			return ZG_ERR_CONFIG;
		}
		if (n >= sizeof(item)) {
			zg_seterr(err, errlen, "%s: entry %zu \"%.40s...\" is longer than %d characters",
				  where, l->n + 1, s, RELAYLIST_TEXT_MAX - 1);
			return ZG_ERR_CONFIG;
		}
		memcpy(item, s, n);
		item[n] = '\0';
		s += n;
		e = &l->e[l->n];
		if (relaylist_parse_entry(item, e, why, sizeof(why)) != 0) {
			zg_seterr(err, errlen, "%s: entry %zu \"%s\" %s", where, l->n + 1, item, why);
			return ZG_ERR_CONFIG;
		}
		for (size_t i = 0; i < l->n; i++)
			if (strcmp(l->e[i].addr, e->addr) == 0 && strcmp(l->e[i].name, e->name) == 0) {
				zg_seterr(err, errlen, "%s: entry %zu \"%s\" repeats entry %zu", where,
					  l->n + 1, item, i + 1);
				return ZG_ERR_CONFIG;
			}
		l->n++;
		added++;
	}
	if (added == 0) {
		zg_seterr(err, errlen, "%s: no relay in \"%s\" (expected " FORM ", several separated "
				       "by commas)",
			  where, text);
		return ZG_ERR_CONFIG;
	}
	return 0;
}

const char *relaylist_format(const struct relaylist *l, char *buf, size_t buflen)
{
	size_t n = 0;

	if (buflen == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < l->n; i++) {
		int w = snprintf(buf + n, buflen - n, "%s%s", i ? ", " : "", l->e[i].text);

		if (w < 0 || (size_t)w >= buflen - n) {
			buf[n] = '\0'; /* whole entries only */
			break;
		}
		n += (size_t)w;
	}
	return buf;
}
