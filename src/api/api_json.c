#include "api/api_json.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "zg_err.h"

#define ALLOCS "/api/v1/ipam/allocations"

int api_id_valid(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == '@' || c == ':' || c == '+'))
			return 0;
	}
	return 1;
}

int api_route_parse(const char *path, struct api_route *r)
{
	size_t n = strcspn(path, "?"), al = strlen(ALLOCS);
	const char *id, *slash;
	size_t idlen;

	memset(r, 0, sizeof(*r));
	if (n == 7 && memcmp(path, "/health", 7) == 0)
		r->kind = API_R_HEALTH;
	else if (n == 6 && memcmp(path, "/ready", 6) == 0)
		r->kind = API_R_READY;
	else if (n == 8 && memcmp(path, "/metrics", 8) == 0)
		r->kind = API_R_METRICS;
	else if (n == 18 && memcmp(path, "/api/v1/ipam/stats", 18) == 0)
		r->kind = API_R_STATS;
	else if (n == al && memcmp(path, ALLOCS, al) == 0)
		r->kind = API_R_ALLOCS;
	else if (n > al + 1 && memcmp(path, ALLOCS "/", al + 1) == 0) {
		id = path + al + 1;
		slash = memchr(id, '/', n - al - 1);
		idlen = slash ? (size_t)(slash - id) : n - al - 1;
		if (slash == NULL)
			r->kind = API_R_ALLOC;
		else if ((size_t)(path + n - slash) == 8 && memcmp(slash, "/refresh", 8) == 0)
			r->kind = API_R_REFRESH;
		else
			return 0; /* API_R_NONE */
		if (!api_id_valid(id, idlen, API_CLIENT_ID_MAX)) {
			r->kind = API_R_NONE;
			return ZG_ERR_MALFORMED;
		}
		memcpy(r->client_id, id, idlen);
		r->client_id[idlen] = '\0';
	}
	return 0;
}

/* ---------------------------------------------------------------- JSON */

static void skip_ws(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
		(*p)++;
}

static int hex4(const char *p, const char *end, uint32_t *pv)
{
	uint32_t v = 0;

	if (end - p < 4)
		return ZG_ERR_MALFORMED;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return ZG_ERR_MALFORMED;
	}
	*pv = v;
	return 0;
}

/* Appends code point cp as UTF-8 to out[*pn..cap); ZG_ERR_TOO_LARGE if full. */
static int put_utf8(char *out, size_t cap, size_t *pn, uint32_t cp)
{
	unsigned char b[4];
	size_t k;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		k = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		k = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		k = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		k = 4;
	}
	if (*pn + k >= cap)
		return ZG_ERR_TOO_LARGE;
	memcpy(out + *pn, b, k);
	*pn += k;
	return 0;
}

/* A JSON string at *p (on its opening quote), decoded into out (cap bytes
 * with the NUL). Returns 0, ZG_ERR_TOO_LARGE (does not fit) or
 * ZG_ERR_MALFORMED (bad escape, control character, broken UTF-8, or no
 * closing quote before end). */
static int parse_string(const char **p, const char *end, char *out, size_t cap, size_t *plen)
{
	const char *s = *p + 1;
	size_t n = 0;
	int r;

	while (s < end && *s != '"') {
		unsigned char c = (unsigned char)*s;
		uint32_t cp, lo;
		size_t k;

		if (c < 0x20)
			return ZG_ERR_MALFORMED;
		if (c == '\\') {
			if (end - s < 2)
				return ZG_ERR_MALFORMED;
			switch (s[1]) {
			case '"':
				cp = '"';
				break;
			case '\\':
				cp = '\\';
				break;
			case '/':
				cp = '/';
				break;
			case 'b':
				cp = '\b';
				break;
			case 'f':
				cp = '\f';
				break;
			case 'n':
				cp = '\n';
				break;
			case 'r':
				cp = '\r';
				break;
			case 't':
				cp = '\t';
				break;
			case 'u':
				if (hex4(s + 2, end, &cp) != 0)
					return ZG_ERR_MALFORMED;
				s += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return ZG_ERR_MALFORMED; /* lone low surrogate */
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (end - s < 8 || s[2] != '\\' || s[3] != 'u' ||
					    hex4(s + 4, end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
						return ZG_ERR_MALFORMED;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					s += 6;
				}
				if (cp == 0)
					return ZG_ERR_MALFORMED; /* would cut the C string */
				break;
			default:
				return ZG_ERR_MALFORMED;
			}
			s += 2;
			if ((r = put_utf8(out, cap, &n, cp)) != 0)
				return r;
			continue;
		}
		k = log_utf8_seq((const unsigned char *)s, (size_t)(end - s), &cp);
		if (k == 0)
			return ZG_ERR_MALFORMED;
		if (n + k >= cap)
			return ZG_ERR_TOO_LARGE;
		memcpy(out + n, s, k);
		n += k;
		s += k;
	}
	if (s >= end)
		return ZG_ERR_MALFORMED;
	out[n] = '\0';
	*plen = n;
	*p = s + 1;
	return 0;
}

/* The kinds of values a body may hold. */
enum jv {
	JV_STRING,
	JV_NULL,
	JV_OTHER
};

/* Skips a value that is not a string (the caller rejects it; this only
 * finds where it ends for a precise message): null, true, false, a
 * number. Objects and arrays are not skipped: ZG_ERR_MALFORMED. */
static int scalar_kind(const char **p, const char *end, enum jv *pk)
{
	const char *s = *p;

	if (end - s >= 4 && memcmp(s, "null", 4) == 0) {
		*p = s + 4;
		*pk = JV_NULL;
		return 0;
	}
	if ((end - s >= 4 && memcmp(s, "true", 4) == 0) ||
	    (end - s >= 5 && memcmp(s, "false", 5) == 0)) {
		*p = s + (*s == 't' ? 4 : 5);
		*pk = JV_OTHER;
		return 0;
	}
	if (s < end && (*s == '-' || (*s >= '0' && *s <= '9'))) {
		s++;
		while (s < end && ((*s >= '0' && *s <= '9') || *s == '.' || *s == 'e' || *s == 'E' ||
				   *s == '+' || *s == '-'))
			s++;
		*p = s;
		*pk = JV_OTHER;
		return 0;
	}
	return ZG_ERR_MALFORMED;
}

/* One key of a body: its name, where the decoded string goes, its max. */
struct field {
	const char *key;
	char *out;
	size_t cap;
	int nullable;
	int seen;
	int null; /* out: it was null */
};

/* Parses a flat object of string fields into f[0..n). */
static int parse_object(const char *body, size_t len, struct field *f, size_t n, char *err,
			size_t errlen)
{
	const char *p = body, *end = body + len;
	char key[64];
	size_t klen, vlen;
	int r;

	if (len > API_BODY_MAX) {
		zg_seterr(err, errlen, "body is %zu bytes; at most %d allowed", len, API_BODY_MAX);
		return ZG_ERR_TOO_LARGE;
	}
	skip_ws(&p, end);
	if (p >= end || *p != '{') {
		zg_seterr(err, errlen, "body must be a JSON object");
		return ZG_ERR_MALFORMED;
	}
	p++;
	skip_ws(&p, end);
	if (p < end && *p == '}') {
		p++;
		goto tail;
	}
	for (;;) {
		struct field *fd = NULL;
		enum jv k;

		skip_ws(&p, end);
		if (p >= end || *p != '"') {
			zg_seterr(err, errlen, "expected a key in quotes at byte %zu",
				  (size_t)(p - body));
			return ZG_ERR_MALFORMED;
		}
		r = parse_string(&p, end, key, sizeof(key), &klen);
		if (r != 0) {
			zg_seterr(err, errlen, "bad key at byte %zu", (size_t)(p - body));
			return ZG_ERR_MALFORMED;
		}
		for (size_t i = 0; i < n; i++)
			if (strlen(f[i].key) == klen && memcmp(f[i].key, key, klen) == 0)
				fd = &f[i];
		if (fd == NULL) {
			char esc[96];
			zg_seterr(err, errlen, "unknown key \"%s\"", log_escape(key, esc, sizeof(esc)));
			return ZG_ERR_MALFORMED;
		}
		if (fd->seen++) {
			zg_seterr(err, errlen, "key \"%s\" given twice", fd->key);
			return ZG_ERR_MALFORMED;
		}
		skip_ws(&p, end);
		if (p >= end || *p != ':') {
			zg_seterr(err, errlen, "expected ':' after \"%s\"", fd->key);
			return ZG_ERR_MALFORMED;
		}
		p++;
		skip_ws(&p, end);
		if (p < end && *p == '"') {
			r = parse_string(&p, end, fd->out, fd->cap, &vlen);
			if (r == ZG_ERR_TOO_LARGE) {
				zg_seterr(err, errlen, "%s: longer than %zu bytes", fd->key, fd->cap - 1);
				return ZG_ERR_MALFORMED;
			}
			if (r != 0) {
				zg_seterr(err, errlen, "%s: not a valid JSON string", fd->key);
				return ZG_ERR_MALFORMED;
			}
		} else if (scalar_kind(&p, end, &k) != 0 || k != JV_NULL || !fd->nullable) {
			zg_seterr(err, errlen, "%s: must be a string%s", fd->key,
				  fd->nullable ? " or null" : "");
			return ZG_ERR_MALFORMED;
		} else {
			fd->null = 1;
		}
		skip_ws(&p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}') {
			p++;
			break;
		}
		zg_seterr(err, errlen, "expected ',' or '}' at byte %zu", (size_t)(p - body));
		return ZG_ERR_MALFORMED;
	}
tail:
	skip_ws(&p, end);
	if (p != end) {
		zg_seterr(err, errlen, "unexpected data after the object at byte %zu",
			  (size_t)(p - body));
		return ZG_ERR_MALFORMED;
	}
	return 0;
}

static int check_id(const char *key, const char *v, size_t max, char *err, size_t errlen)
{
	if (api_id_valid(v, strlen(v), max))
		return 0;
	zg_seterr(err, errlen,
		  "%s: must be 1 to %zu characters of A-Z a-z 0-9 . _ - @ : +", key, max);
	return ZG_ERR_MALFORMED;
}

int api_parse_alloc(const char *body, size_t len, struct api_alloc_req *req, char *err,
		    size_t errlen)
{
	char addr[64] = "";
	struct field f[] = {
		{ "client_id", req->client_id, sizeof(req->client_id), 0, 0, 0 },
		{ "relay_id", req->relay_id, sizeof(req->relay_id), 0, 0, 0 },
		{ "requested_address", addr, sizeof(addr), 1, 0, 0 },
	};
	int r;

	memset(req, 0, sizeof(*req));
	if ((r = parse_object(body, len, f, 3, err, errlen)) != 0)
		goto fail;
	if (!f[0].seen) {
		zg_seterr(err, errlen, "client_id: required");
		r = ZG_ERR_MALFORMED;
		goto fail;
	}
	if ((r = check_id("client_id", req->client_id, API_CLIENT_ID_MAX, err, errlen)) != 0)
		goto fail;
	if (f[1].seen && (r = check_id("relay_id", req->relay_id, API_RELAY_ID_MAX, err, errlen)) != 0)
		goto fail;
	if (f[2].seen && !f[2].null) {
		if (inet_pton(AF_INET, addr, &req->requested) != 1) {
			char esc[96];
			zg_seterr(err, errlen, "requested_address: \"%s\" is not an IPv4 address",
				  log_escape(addr, esc, sizeof(esc)));
			r = ZG_ERR_MALFORMED;
			goto fail;
		}
		req->has_requested = 1;
	}
	return 0;
fail:
	memset(req, 0, sizeof(*req));
	return r;
}

int api_parse_refresh(const char *body, size_t len, char relay_id[API_RELAY_ID_MAX + 1],
		      char *err, size_t errlen)
{
	struct field f[] = { { "relay_id", relay_id, API_RELAY_ID_MAX + 1, 0, 0, 0 } };
	const char *p = body, *end = body + len;
	int r;

	relay_id[0] = '\0';
	skip_ws(&p, end);
	if (p == end)
		return 0;
	if ((r = parse_object(body, len, f, 1, err, errlen)) != 0 ||
	    (f[0].seen && (r = check_id("relay_id", relay_id, API_RELAY_ID_MAX, err, errlen)) != 0)) {
		relay_id[0] = '\0';
		return r;
	}
	return 0;
}

int api_content_type_json(const char *v)
{
	static const char want[] = "application/json";
	const size_t n = sizeof(want) - 1;

	if (v == NULL)
		return 0;
	v += strspn(v, " \t");
	if (strncasecmp(v, want, n) != 0)
		return 0;
	v += n;
	v += strspn(v, " \t");
	return *v == '\0' || *v == ';';
}

size_t api_json_quote(char *out, size_t outlen, const char *s)
{
	size_t n = 0;

#define PUT(str, k)                                                              \
	do {                                                                     \
		if (outlen > 0 && n + (k) < outlen)                              \
			memcpy(out + n, (str), (k));                             \
		else if (outlen > 0 && n < outlen)                               \
			outlen = n + 1; /* stop writing: never half an escape */ \
		n += (k);                                                        \
	} while (0)

	PUT("\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			PUT(esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			(void)snprintf(esc, sizeof(esc), "\\u%04x", c);
			PUT(esc, 6);
		} else {
			PUT(s, 1);
		}
	}
	PUT("\"", 1);
#undef PUT
	if (outlen > 0)
		out[n < outlen ? n : outlen - 1] = '\0';
	return n;
}
