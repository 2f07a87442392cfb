/*
 * apiresp — the answer side of the relay's zgate-api client (apiclient.c)
 * without I/O: an incremental HTTP/1.1 response parser and the few fields
 * of the API's JSON answers the relay reads. Pure functions over bytes,
 * unit-tested through tests/test_apiclient.c and fuzzed alone
 * (fuzz/fuzz_apiresp.c).
 *
 * Bounded: the status line and headers together at most APIRESP_HEAD_MAX
 * bytes, the body at most the body_max given to apiresp_new()
 * (APIRESP_BODY_MAX for the API's JSON answers, more for a policy
 * document); more is an error, never a larger allocation.
 */
#ifndef ZG_RELAY_APIRESP_H
#define ZG_RELAY_APIRESP_H

#include <stddef.h>
#include <stdint.h>

#define APIRESP_HEAD_MAX 8192
#define APIRESP_BODY_MAX 65536
#define APIRESP_LINE_MAX 1024          /* one header line, one chunk-size line */
#define APIRESP_ETAG_MAX 128           /* an ETag (quotes included) kept, with the NUL */
#define APIRESP_BODY_LIMIT (16u << 20) /* apiresp_new()'s largest body_max */

struct apiresp {
	int st;          /* parser state (apiresp.c) */
	unsigned status; /* the final answer's status (1xx are skipped) */
	int close;       /* Connection: close, HTTP/1.0, or a body delimited by close */
	int chunked;     /* Transfer-Encoding: chunked */
	int head;        /* the request was HEAD: no body whatever the headers say */
	int64_t clen;    /* Content-Length, -1 none */
	uint64_t left;   /* bytes left in the body or the current chunk */
	size_t head_bytes;
	size_t line_len;
	char line[APIRESP_LINE_MAX];
	/* ETag and Zgate-Policy-Id of the final answer as sent ("" when
	 * absent or longer than fits: never cut) */
	char etag[APIRESP_ETAG_MAX];
	char policy_id[24];
	char err[96]; /* why the answer is refused */
	size_t body_max;
	size_t body_len;
	char body[]; /* body_max + 1 bytes, NUL-terminated */
};

/* A parser for answers of at most body_max body bytes (1 ..
 * APIRESP_BODY_LIMIT), ready for apiresp_init(). Returns NULL when
 * body_max is out of range or memory ran out. The caller frees it with
 * free(). */
struct apiresp *apiresp_new(size_t body_max);

/* Prepares p for one response (head: the request was a HEAD). */
void apiresp_init(struct apiresp *p, int head);

/* Feeds the n bytes at d. Returns 0 (more needed; all n consumed), 1 (the
 * answer is complete; *pused bytes of d belong to it, the rest to
 * whatever follows), ZG_ERR_MALFORMED or ZG_ERR_TOO_LARGE with p->err
 * saying what ("bad status line", "body larger than 65536 bytes" ...: the
 * number is p->body_max).
 * After 1 or an error, further calls return the same. */
int apiresp_feed(struct apiresp *p, const uint8_t *d, size_t n, size_t *pused);

/* The peer closed the connection: returns 1 when that completes the
 * answer (a body delimited by the close), else ZG_ERR_MALFORMED with
 * p->err ("connection closed in the headers" ...). */
int apiresp_eof(struct apiresp *p);

/* The string value of key in the top-level JSON object json[0..len),
 * unescaped into out (outlen bytes, NUL-terminated; \u escapes other than
 * ASCII become '?'). Returns 0, ZG_ERR_NOTFOUND (no such key, or its value
 * is not a string), ZG_ERR_MALFORMED (not a JSON object) or
 * ZG_ERR_TOO_LARGE (the value does not fit: out holds it cut to fit, for a
 * log line). Nesting is skipped, at most 32 deep. */
int apiresp_json_str(const char *json, size_t len, const char *key, char *out, size_t outlen);

/* The lease in a 200/201 answer: "address" as an IPv4 dotted quad into
 * addr4 and whether "how" is "existing". Returns 0 or ZG_ERR_MALFORMED
 * with err (errlen bytes) saying what is missing. */
int apiresp_lease(const char *json, size_t len, uint8_t addr4[4], int *pexisting, char *err,
		  size_t errlen);

#endif /* ZG_RELAY_APIRESP_H */
