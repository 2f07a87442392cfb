/*
 * api_origin.h — which browser requests zgate-api accepts (CSRF and DNS
 * rebinding). zgate-api serves its own web UI (/ui/), so a request with an
 * Origin header is accepted only when it comes from a page of that UI:
 * Origin exactly "https://" + the request's Host, and that Host's name one
 * of the names (DNS or IP subject alternative names) of zgate-api's own
 * certificate. A page of another site cannot send a matching Origin, and a
 * name of the attacker's that resolves to zgate-api's address (DNS
 * rebinding: the browser then calls it same-origin) is not in the
 * certificate. Sec-Fetch-Site, when present, must be "same-origin" or
 * "none" with or without an Origin. A request without Origin (curl, a
 * relay, a page's own GET) is decided by its credentials alone. server.c
 * applies the rule to every request but a GET or HEAD of the UI's pages
 * (public files, linked to from other sites).
 */
#ifndef ZG_API_API_ORIGIN_H
#define ZG_API_API_ORIGIN_H

#include <stddef.h>

#define API_NAMES_MAX 64     /* names kept of one certificate */
#define API_NAME_LEN_MAX 253 /* a DNS name's longest text */

/* The names a Host may have: DNS names in lower case without a final dot
 * (a "*." first label allowed), IP addresses as inet_ntop writes them. */
struct api_names {
	size_t n;
	struct {
		int ip; /* 1: an IP address */
		char text[API_NAME_LEN_MAX + 1];
	} name[API_NAMES_MAX];
};

/* Reads the DNS and IP subject alternative names of the first certificate
 * of pem (PEM text) into *names. Names past API_NAMES_MAX, or longer than
 * API_NAME_LEN_MAX, are left out and *pskipped counts them. Returns 0,
 * or ZG_ERR_CONFIG with err set (not a certificate). */
int api_names_from_pem(const char *pem, struct api_names *names, size_t *pskipped, char *err,
		       size_t errlen);

/* Whether a request with these Origin, Sec-Fetch-Site and Host headers
 * (NULL: absent) is refused, per the rule above, for a server whose
 * certificate has names. Returns NULL (accepted) or why it is refused, in
 * words for the 403's body (a static string, "cross-site request
 * refused: ..."). */
const char *api_origin_refused(const char *origin, const char *sec_fetch_site, const char *host,
			       const struct api_names *names);

#endif /* ZG_API_API_ORIGIN_H */
