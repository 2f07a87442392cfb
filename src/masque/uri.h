/*
 * uri.h — CONNECT-IP URI templates (RFC 9484 §3, RFC 6570 level ≤ 3 subset).
 *
 * The template is an absolute https URI, e.g.
 *   https://relay.example:4433/.well-known/masque/ip/{target}/{ipproto}/
 * with the variables `target` and `ipproto`, in the path or the query
 * (C01). The client expands it into :authority and :path (uri_expand);
 * the server matches a received :path against it and decodes the scope
 * (uri_match, C03). Protocol code: no I/O, no allocation.
 */
#ifndef ZG_MASQUE_URI_H
#define ZG_MASQUE_URI_H

#include <stddef.h>
#include <stdint.h>

#include "connectip.h"

#define URI_DNS_MAX 253

/* The scope of a tunnel, from the template variables. */
struct uri_scope {
	int any_target;            /* target "*" */
	struct cip_addr target;    /* literal (prefix_len 32|128) or prefix;
				    version 0 when the target is a DNS name */
	char dns[URI_DNS_MAX + 1]; /* DNS-name target, "" otherwise */
	int any_proto;             /* ipproto "*" */
	uint8_t ipproto;
};

/* Checks a template (C01): "https://" + host[:port] + a path starting with
 * "/"; variables only in the path or query; expressions are {name} or
 * {?a,b}/{&a} forms of level ≤ 3 without the "+" or "#" operators; only
 * the names target and ipproto. Returns 0 or ZG_ERR_CONFIG with err saying
 * what is wrong and where (character offset); ZG_ERR_INVAL for tmpl NULL.
 * Also refused: userinfo or a bad port (1..65535) in the authority,
 * characters a URI cannot hold, level-4 modifiers (":n", "*"), and a
 * template where a value could run into what follows it (e.g.
 * "{target}{ipproto}", "{target}.x", "{.target,ipproto}"), since a
 * received path would then have more than one reading. */
int uri_template_check(const char *tmpl, char *err, size_t errlen);

/* Expands tmpl for scope s: writes the authority ("host[:port]") and the
 * path-and-query, percent-encoding values (IPv6 ':' as %3A, the prefix
 * '/' as %2F; '*' stays '*'). A literal or a prefix of full length is
 * written without "/len". Returns 0, ZG_ERR_CONFIG (bad template),
 * ZG_ERR_INVAL (bad scope: a target that is not a valid address or prefix,
 * both an address and a DNS name, or an invalid DNS name; or a NULL
 * argument), ZG_ERR_BUFSHORT. On error both outputs are "" (when their
 * size is not 0). */
int uri_expand(const char *tmpl, const struct uri_scope *s, char *authority, size_t alen,
	       char *path, size_t plen);

/* Matches a received :path against tmpl and decodes the variables into
 * *s. A variable missing from the template is "*". Returns 0, or
 * ZG_ERR_MALFORMED when the path does not fit the template or a value is
 * not valid per C03 (answer 400): target must be "*", an IPv4/IPv6
 * literal, a prefix with host bits zero, or a DNS name; ipproto "*" or a
 * decimal 0..255. Values are percent-decoded (hex of either case; "%2A"
 * is "*", a raw ':' is accepted as well as "%3A"). Query parameters must
 * come in the template's order and nothing may follow the template.
 * ipproto has one spelling per value ("6", not "06"); a DNS name whose last
 * label is all digits is refused as a mistyped IPv4 literal. Also
 * ZG_ERR_CONFIG for a bad template and ZG_ERR_INVAL for a NULL argument;
 * *s is written only on success. */
int uri_match(const char *tmpl, const char *path, struct uri_scope *s);

/* The host[:port] part of tmpl, for :authority checks and for dialing.
 * Returns 0, ZG_ERR_CONFIG, ZG_ERR_BUFSHORT. */
int uri_authority(const char *tmpl, char *authority, size_t alen);

#endif /* ZG_MASQUE_URI_H */
