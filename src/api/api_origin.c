#include "api/api_origin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "zg_err.h"

/* text as a name of names: lower case, a final dot cut. 0, or -1 when it
 * does not fit. */
static int name_add(struct api_names *names, int ip, const char *text, size_t len)
{
	if (len > 0 && text[len - 1] == '.')
		len--;
	if (len == 0 || len > API_NAME_LEN_MAX || names->n == API_NAMES_MAX)
		return -1;
	names->name[names->n].ip = ip;
	for (size_t i = 0; i < len; i++)
		names->name[names->n].text[i] = (char)tolower((unsigned char)text[i]);
	names->name[names->n].text[len] = '\0';
	names->n++;
	return 0;
}

int api_names_from_pem(const char *pem, struct api_names *names, size_t *pskipped, char *err,
		       size_t errlen)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { (unsigned char *)(uintptr_t)pem, (unsigned)strlen(pem) };
	int g, r = 0;

	memset(names, 0, sizeof(*names));
	*pskipped = 0;
	if (gnutls_x509_crt_init(&crt) < 0) {
		zg_seterr(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	if ((g = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM)) < 0) {
		zg_seterr(err, errlen, "not a certificate: %s", gnutls_strerror(g));
		r = ZG_ERR_CONFIG;
		goto out;
	}
	for (unsigned i = 0;; i++) {
		char buf[API_NAME_LEN_MAX + 2], ip[INET6_ADDRSTRLEN];
		size_t sz = sizeof(buf);
		unsigned critical;

		g = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &sz, &critical);
		if (g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (g == GNUTLS_E_SHORT_MEMORY_BUFFER) { /* a name too long to be a DNS name */
			(*pskipped)++;
			continue;
		}
		if (g < 0)
			break;
		if (g == GNUTLS_SAN_DNSNAME) {
			if (name_add(names, 0, buf, sz) != 0)
				(*pskipped)++;
		} else if (g == GNUTLS_SAN_IPADDRESS) {
			if ((sz != 4 && sz != 16) ||
			    inet_ntop(sz == 4 ? AF_INET : AF_INET6, buf, ip, sizeof(ip)) == NULL ||
			    name_add(names, 1, ip, strlen(ip)) != 0)
				(*pskipped)++;
		}
	}
out:
	gnutls_x509_crt_deinit(crt);
	return r;
}

/* The name of a Host header (without its port) into out: an IPv6 address
 * in brackets, an IPv4 address or a DNS name, with an optional ":PORT" of
 * digits. *pip says whether it is an address (then written as inet_ntop
 * does). Returns 0, or -1 when host is none of these. */
static int host_name(const char *host, char *out, size_t outlen, int *pip)
{
	const char *end, *port;
	unsigned char a[16];
	char tmp[API_NAME_LEN_MAX + 2];
	size_t len;
	int bracket = host[0] == '[';

	if (bracket) {
		end = strchr(host, ']');
		if (end == NULL)
			return -1;
		port = end + 1;
		host++;
	} else {
		end = strchr(host, ':');
		if (end == NULL)
			end = host + strlen(host);
		port = end;
	}
	if (*port == ':') {
		size_t nd = strspn(port + 1, "0123456789");

		if (nd == 0 || nd > 5 || port[1 + nd] != '\0')
			return -1;
	} else if (*port != '\0') {
		return -1;
	}
	len = (size_t)(end - host);
	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, host, len);
	tmp[len] = '\0';
	if (inet_pton(AF_INET6, tmp, a) == 1) {
		if (!bracket)
			return -1;
		*pip = 1;
		return inet_ntop(AF_INET6, a, out, (socklen_t)outlen) != NULL ? 0 : -1;
	}
	if (bracket)
		return -1;
	if (inet_pton(AF_INET, tmp, a) == 1) {
		*pip = 1;
		return inet_ntop(AF_INET, a, out, (socklen_t)outlen) != NULL ? 0 : -1;
	}
	if (len > 0 && tmp[len - 1] == '.')
		tmp[--len] = '\0';
	if (len == 0 || len >= outlen || strspn(tmp, "abcdefghijklmnopqrstuvwxyz"
						     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != len)
		return -1;
	for (size_t i = 0; i <= len; i++)
		out[i] = (char)tolower((unsigned char)tmp[i]);
	*pip = 0;
	return 0;
}

/* Whether DNS name n matches certificate name c: equal, or c is "*.REST"
 * and n is one label (not empty, no dot) followed by ".REST". */
static int name_matches(const char *c, const char *n)
{
	const char *dot;

	if (strcmp(c, n) == 0)
		return 1;
	if (c[0] != '*' || c[1] != '.' || c[2] == '\0')
		return 0;
	dot = strchr(n, '.');
	return dot != NULL && dot != n && strcmp(dot + 1, c + 2) == 0;
}

const char *api_origin_refused(const char *origin, const char *sec_fetch_site, const char *host,
			       const struct api_names *names)
{
	static const char https[] = "https://";
	char name[API_NAME_LEN_MAX + 2];
	int ip;

	if (sec_fetch_site != NULL && strcasecmp(sec_fetch_site, "same-origin") != 0 &&
	    strcasecmp(sec_fetch_site, "none") != 0)
		return "cross-site request refused: Sec-Fetch-Site is neither same-origin nor none";
	if (origin == NULL)
		return NULL;
	if (host == NULL || strncasecmp(origin, https, sizeof(https) - 1) != 0 ||
	    strcasecmp(origin + sizeof(https) - 1, host) != 0)
		return "cross-site request refused: the Origin is not https:// and this request's "
		       "Host";
	if (host_name(host, name, sizeof(name), &ip) != 0)
		return "cross-site request refused: the Host is not a name or address";
	for (size_t i = 0; i < names->n; i++)
		if (names->name[i].ip == ip &&
		    (ip ? strcmp(names->name[i].text, name) == 0
			: name_matches(names->name[i].text, name)))
			return NULL;
	return "cross-site request refused: the Host is not a name of zgate-api's certificate";
}
