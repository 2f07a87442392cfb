/* api_json: zgate-api's request parsing (src/api/api_json.c) on arbitrary
 * bytes. Properties, not only "no crash": an accepted allocation body has
 * valid ids, and writing it back as JSON (api_json_quote) and parsing that
 * gives the same request; a refresh body gives a valid or empty relay id;
 * a path that names a client yields a valid client id; quoting any
 * NUL-free input and reading it back as a JSON key gives the input's
 * bytes back (seen in the "unknown key" error); an accepted policy body's
 * document, written back with api_json_quote_n and parsed again, is the
 * same bytes; any NUL-free input written with api_json_quote_n parses as a
 * document, the same bytes when it is valid UTF-8 (a byte of no valid
 * sequence is written as \u00XX: another character); an activate body gives
 * a positive id or none; a policy path gives a positive id. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_json.h"
#include "log.h"
#include "zg_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_alloc_req q, q2;
	struct api_route rt;
	char relay[API_RELAY_ID_MAX + 1], err[256], path[API_BODY_MAX + 1];
	char cq[API_CLIENT_ID_MAX * 6 + 3], rq[API_RELAY_ID_MAX * 6 + 3];
	char body[2 * API_BODY_MAX], a[INET_ADDRSTRLEN];
	int n;

	if (size > API_BODY_MAX + 8)
		return 0;
	if (api_parse_alloc((const char *)data, size, &q, err, sizeof(err)) == 0) {
		if (!api_id_valid(q.client_id, strlen(q.client_id), API_CLIENT_ID_MAX) ||
		    (q.relay_id[0] && !api_id_valid(q.relay_id, strlen(q.relay_id), API_RELAY_ID_MAX)))
			abort();
		(void)api_json_quote(cq, sizeof(cq), q.client_id);
		(void)api_json_quote(rq, sizeof(rq), q.relay_id);
		(void)inet_ntop(AF_INET, &q.requested, a, sizeof(a));
		n = snprintf(body, sizeof(body), "{\"client_id\":%s%s%s%s%s%s}", cq,
			     q.relay_id[0] ? ",\"relay_id\":" : "", q.relay_id[0] ? rq : "",
			     q.has_requested ? ",\"requested_address\":\"" : "",
			     q.has_requested ? a : "", q.has_requested ? "\"" : "");
		if (n < 0 || (size_t)n >= sizeof(body) ||
		    api_parse_alloc(body, (size_t)n, &q2, err, sizeof(err)) != 0 ||
		    strcmp(q.client_id, q2.client_id) != 0 || strcmp(q.relay_id, q2.relay_id) != 0 ||
		    q.has_requested != q2.has_requested ||
		    (q.has_requested && q.requested.s_addr != q2.requested.s_addr))
			abort();
	}
	if (api_parse_refresh((const char *)data, size, relay, err, sizeof(err)) == 0 &&
	    relay[0] && !api_id_valid(relay, strlen(relay), API_RELAY_ID_MAX))
		abort();
	memcpy(path, data, size < API_BODY_MAX ? size : API_BODY_MAX);
	path[size < API_BODY_MAX ? size : API_BODY_MAX] = '\0';
	if (api_route_parse(path, &rt) == 0 && (rt.kind == API_R_ALLOC || rt.kind == API_R_REFRESH) &&
	    !api_id_valid(rt.client_id, strlen(rt.client_id), API_CLIENT_ID_MAX))
		abort();
	/* Quoting round trip, through the key position (keys up to 63 bytes). */
	if (strlen(path) < 60) {
		char q3[60 * 6 + 3];

		(void)api_json_quote(q3, sizeof(q3), path);
		n = snprintf(body, sizeof(body), "{%s:1}", q3);
		if (n > 0 && api_parse_alloc(body, (size_t)n, &q, err, sizeof(err)) == 0)
			abort(); /* no key takes a number */
	}
	/* Policy bodies: decode, encode, decode again gives the same bytes. */
	{
		struct api_policy_body b, b2;
		int check;
		int64_t e;

		if (api_parse_policy((const char *)data, size, &b, err, sizeof(err)) == 0) {
			size_t qn = api_json_quote_n(NULL, 0, b.document, b.len);
			char *pb = malloc(qn + 16);

			if (pb == NULL)
				abort();
			memcpy(pb, "{\"document\":", 12);
			(void)api_json_quote_n(pb + 12, qn + 1, b.document, b.len);
			memcpy(pb + 12 + qn, "}", 2);
			if (memchr(b.document, '\0', b.len) != NULL ||
			    api_parse_policy(pb, qn + 13, &b2, err, sizeof(err)) != 0 || b2.len != b.len ||
			    memcmp(b2.document, b.document, b.len) != 0)
				abort();
			api_policy_body_free(&b2);
			api_policy_body_free(&b);
			free(pb);
		}
		if (memchr(data, 0, size) == NULL) {
			size_t qn = api_json_quote_n(NULL, 0, (const char *)data, size), k = 0;
			char *pb = malloc(qn + 16);
			int utf8 = 1;
			uint32_t cp;

			if (pb == NULL)
				abort();
			memcpy(pb, "{\"document\":", 12);
			(void)api_json_quote_n(pb + 12, qn + 1, (const char *)data, size);
			memcpy(pb + 12 + qn, "}", 2);
			while (k < size && utf8) {
				size_t l = log_utf8_seq(data + k, size - k, &cp);

				utf8 = l > 0;
				k += l;
			}
			if (api_parse_policy(pb, qn + 13, &b2, err, sizeof(err)) != 0 ||
			    (utf8 && (b2.len != size || memcmp(b2.document, data, size) != 0)))
				abort();
			api_policy_body_free(&b2);
			free(pb);
		}
		if (api_parse_activate((const char *)data, size, &check, &e, err, sizeof(err)) == 0 &&
		    (check ? e < 0 : e != 0))
			abort();
		if (api_route_parse(path, &rt) == 0 &&
		    (rt.kind == API_R_POLICY_ONE || rt.kind == API_R_POLICY_ACTIVATE) && rt.policy_id <= 0)
			abort();
	}
	return 0;
}
