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

#define API_BODY_MAX 4096 /* request bodies larger than this: 413 */
#define API_CLIENT_ID_MAX 128
#define API_RELAY_ID_MAX 64

/* The endpoints. Paths are matched exactly (no trailing "/"). */
enum api_route_kind {
	API_R_NONE = 0, /* no such path: 404 */
	API_R_HEALTH,   /* /health */
	API_R_READY,    /* /ready */
	API_R_METRICS,  /* /metrics */
	API_R_ALLOCS,   /* /api/v1/ipam/allocations */
	API_R_ALLOC,    /* /api/v1/ipam/allocations/{client} */
	API_R_REFRESH,  /* /api/v1/ipam/allocations/{client}/refresh */
	API_R_STATS     /* /api/v1/ipam/stats */
};

struct api_route {
	enum api_route_kind kind;
	char client_id[API_CLIENT_ID_MAX + 1]; /* API_R_ALLOC, API_R_REFRESH */
};

/* Matches path (as received, before any query string was cut: a "?" ends
 * the path) against the endpoints. Returns 0 with *r filled (kind may be
 * API_R_NONE), or ZG_ERR_MALFORMED when the path names an allocation but
 * the client id in it breaks api_id_valid() (a 400, not a 404: the
 * caller made a mistake worth telling). */
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

/* Writes s as a JSON string with its quotes into out (NUL-terminated, cut
 * to outlen, never in the middle of an escape). Returns the length
 * needed, snprintf-style. */
size_t api_json_quote(char *out, size_t outlen, const char *s);

#endif /* ZG_API_API_JSON_H */
