/*
 * api_json.h — zgate-api's request side without I/O: which endpoint a
 * path names, the JSON bodies of the IPAM requests and the rules for the
 * identifiers in them, and the escaping of strings written back. Pure
 * functions over bytes, so they are unit-tested and fuzzed alone
 * (tests/test_api_json.c, fuzz/fuzz_api_json.c).
 *
 * Bodies are one flat JSON object (RFC 8259) of at most API_BODY_MAX
 * bytes. Keys the endpoint does not know, duplicate keys, values of the
 * wrong type and anything after the object are errors: a client that
 * misspells "requested_address" hears about it instead of silently
 * getting another address.
 */
#ifndef ZG_API_API_JSON_H
#define ZG_API_API_JSON_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define API_BODY_MAX 4096 /* request bodies larger than this: 413 */
#define API_CLIENT_ID_MAX 128
#define API_RELAY_ID_MAX 64

/* Policies (POST /api/v1/policies and .../validate). The document is at
 * most API_POLICY_DOC_MAX bytes once decoded, the relay's limit for a
 * policy file (YAMLCFG_MAX_FILE). Its body may be up to six times that:
 * the longest escape, \u0041 for "A", is six bytes for one; a 4-byte
 * character is 12 (a surrogate pair); the rest of the body (the comment,
 * at most 200 bytes, 1200 escaped, and the keys) fits in the 4096 more. */
#define API_POLICY_DOC_MAX (1u << 20)
#define API_POLICY_BODY_MAX (6u * API_POLICY_DOC_MAX + 4096u)
#define API_POLICY_COMMENT_MAX 200
#define API_POLICY_ID_DIGITS 18 /* a policy id: 1 to 999999999999999999 */

/* The endpoints. Paths are matched exactly (no trailing "/"). */
enum api_route_kind {
	API_R_NONE = 0,          /* no such path: 404 */
	API_R_HEALTH,            /* /health */
	API_R_READY,             /* /ready */
	API_R_METRICS,           /* /metrics */
	API_R_ALLOCS,            /* /api/v1/ipam/allocations */
	API_R_ALLOC,             /* /api/v1/ipam/allocations/{client} */
	API_R_REFRESH,           /* /api/v1/ipam/allocations/{client}/refresh */
	API_R_STATS,             /* /api/v1/ipam/stats */
	API_R_POLICIES,          /* /api/v1/policies */
	API_R_POLICY_VALIDATE,   /* /api/v1/policies/validate */
	API_R_POLICY_ONE,        /* /api/v1/policies/{id} */
	API_R_POLICY_ACTIVATE,   /* /api/v1/policies/{id}/activate */
	API_R_POLICY_ACTIVE,     /* /api/v1/policy */
	API_R_POLICY_ACTIVATIONS /* /api/v1/policy/activations */
};

struct api_route {
	enum api_route_kind kind;
	char client_id[API_CLIENT_ID_MAX + 1]; /* API_R_ALLOC, API_R_REFRESH */
	int64_t policy_id;                     /* API_R_POLICY_ONE, API_R_POLICY_ACTIVATE */
	const char *why;                       /* ZG_ERR_MALFORMED: what is wrong (static) */
};

/* Matches path (as received, before any query string was cut: a "?" ends
 * the path) against the endpoints. Returns 0 with *r filled (kind may be
 * API_R_NONE), or ZG_ERR_MALFORMED with r->why when the path names an
 * allocation but the client id in it breaks api_id_valid(), or a policy
 * version whose id is not a positive decimal number (a 400, not a 404:
 * the caller made a mistake worth telling). */
int api_route_parse(const char *path, struct api_route *r);

/* Whether s[0..len) is a valid client (max API_CLIENT_ID_MAX) or relay
 * (API_RELAY_ID_MAX) id: 1 to max bytes of A-Z a-z 0-9 and . _ - @ : +
 * — safe in a URL path, a log line and a certificate CN without any
 * escaping. Returns 1 or 0. */
int api_id_valid(const char *s, size_t len, size_t max);

/* POST /api/v1/ipam/allocations */
struct api_alloc_req {
	char client_id[API_CLIENT_ID_MAX + 1]; /* required */
	char relay_id[API_RELAY_ID_MAX + 1];   /* "" = not given */
	int has_requested;                     /* requested_address given (not null) */
	struct in_addr requested;              /* IPv4 (the pool is IPv4) */
};

/* Parses the body of an allocation request: {"client_id": ID,
 * "relay_id": ID, "requested_address": "a.b.c.d" | null}, client_id
 * required. Returns 0 with *req filled, ZG_ERR_TOO_LARGE (len >
 * API_BODY_MAX) or ZG_ERR_MALFORMED, with err saying what was wrong in
 * words an API user can act on. */
int api_parse_alloc(const char *body, size_t len, struct api_alloc_req *req, char *err,
		    size_t errlen);

/* PUT .../{client}/refresh: an empty body, or {"relay_id": ID} when the
 * client moved to another relay. Returns 0 with relay_id ("" = not
 * given), ZG_ERR_TOO_LARGE or ZG_ERR_MALFORMED with err set. */
int api_parse_refresh(const char *body, size_t len, char relay_id[API_RELAY_ID_MAX + 1],
		      char *err, size_t errlen);

/* Whether a Content-Type header value (NULL: absent) is application/json:
 * the media type compared without regard to case, blanks around it, and
 * parameters after ";" (charset=utf-8) allowed. Returns 1 or 0. */
int api_content_type_json(const char *v);

/* Writes the len bytes at s (any bytes) as a JSON string with its quotes
 * into out (NUL-terminated, cut to outlen, never in the middle of an
 * escape). Returns the length needed, snprintf-style. '"' and '\\' as
 * \" and \\, \b \f \n \r \t as such, other control characters, DEL and
 * a NUL as \u00XX; valid UTF-8 as it is. A byte that is not part of valid
 * UTF-8 is written as \u00XX too (its Latin-1 reading): the output is
 * always valid JSON, and the bytes back for any valid UTF-8 input
 * (api_parse_policy() reads such a string back exactly, but a NUL). At
 * most 6 * len + 2 bytes. */
size_t api_json_quote_n(char *out, size_t outlen, const char *s, size_t len);

/* api_json_quote_n() of the NUL-terminated s. */
size_t api_json_quote(char *out, size_t outlen, const char *s);

/* The body of POST /api/v1/policies and .../validate: {"document": YAML,
 * "comment": text} (comment optional). */
struct api_policy_body {
	char *document; /* NUL-terminated, malloc'd: api_policy_body_free() */
	size_t len;     /* of document, at most API_POLICY_DOC_MAX */
	char comment[API_POLICY_COMMENT_MAX + 1];
};

/* Parses a policy body of len bytes (at most API_POLICY_BODY_MAX).
 * Returns 0 with *b filled (free it with api_policy_body_free),
 * ZG_ERR_TOO_LARGE (the body, or the decoded document over
 * API_POLICY_DOC_MAX: 413), ZG_ERR_NOMEM, or ZG_ERR_MALFORMED (not the
 * object above, document missing, a comment over 200 bytes, or a NUL,
 * \u0000, in either: a policy file cannot hold one), with err saying
 * which. *b is empty on error. */
int api_parse_policy(const char *body, size_t len, struct api_policy_body *b, char *err,
		     size_t errlen);
void api_policy_body_free(struct api_policy_body *b);

/* The body of POST /api/v1/policies/{id}/activate: empty, {}, or
 * {"expected_active": ID | null}. Returns 0 with *pcheck 1 when
 * expected_active was given and *pexpected its value (0: null, no version
 * active), or ZG_ERR_MALFORMED / ZG_ERR_TOO_LARGE with err set. */
int api_parse_activate(const char *body, size_t len, int *pcheck, int64_t *pexpected,
		       char *err, size_t errlen);

/* Whether an If-None-Match header value (NULL: absent) names etag (with
 * its quotes, e.g. "\"3-0123456789abcdef\""): one of a comma-separated
 * list, a weak W/ prefix ignored (RFC 9110 13.1.2: weak comparison), or
 * "*". Returns 1 or 0. */
int api_etag_match(const char *if_none_match, const char *etag);

/* The line and column of a policy_load_buf() error "NAME:LINE:COL: ..."
 * (name without ':'). Returns 0 with both, or -1 when err has none. */
int api_policy_error_pos(const char *err, unsigned long *pline, unsigned long *pcol);

#endif /* ZG_API_API_JSON_H */
