#include "api/api_json.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

#define POLICIES "/api/v1/policies"

/* A policy id of the path: 1 to API_POLICY_ID_DIGITS decimal digits, no
 * leading zero. Returns it, or 0. */
static int64_t policy_id_of(const char *s, size_t len)
{
	int64_t v = 0;

	if (len == 0 || len > API_POLICY_ID_DIGITS || s[0] == '0')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* The policy paths: /api/v1/policies[/validate | /{id}[/activate]] and
 * /api/v1/policy[/activations]. Returns 1 when path[0..n) is one (r
 * filled; r->why set and r->kind API_R_NONE for a bad id), else 0. */
static int policy_route(const char *path, size_t n, struct api_route *r)
{
	size_t pl = strlen(POLICIES);
	const char *id, *slash;
	size_t idlen;

	if (n == 14 && memcmp(path, "/api/v1/policy", 14) == 0) {
		r->kind = API_R_POLICY_ACTIVE;
		return 1;
	}
	if (n == 26 && memcmp(path, "/api/v1/policy/activations", 26) == 0) {
		r->kind = API_R_POLICY_ACTIVATIONS;
		return 1;
	}
	if (n == pl && memcmp(path, POLICIES, pl) == 0) {
		r->kind = API_R_POLICIES;
		return 1;
	}
	if (n <= pl + 1 || memcmp(path, POLICIES "/", pl + 1) != 0)
		return 0;
	id = path + pl + 1;
	slash = memchr(id, '/', n - pl - 1);
	idlen = slash ? (size_t)(slash - id) : n - pl - 1;
	if (slash == NULL && idlen == 8 && memcmp(id, "validate", 8) == 0) {
		r->kind = API_R_POLICY_VALIDATE;
		return 1;
	}
	if (slash == NULL)
		r->kind = API_R_POLICY_ONE;
	else if ((size_t)(path + n - slash) == 9 && memcmp(slash, "/activate", 9) == 0)
		r->kind = API_R_POLICY_ACTIVATE;
	else
		return 1; /* API_R_NONE */
	if ((r->policy_id = policy_id_of(id, idlen)) == 0) {
		r->kind = API_R_NONE;
		r->why = "the policy id in the path must be a positive decimal number (1 to 18 "
			 "digits, no leading zero)";
	}
	return 1;
}

int api_route_parse(const char *path, struct api_route *r)
{
	size_t n = strcspn(path, "?"), al = strlen(ALLOCS);
	const char *id, *slash;
	size_t idlen;

	memset(r, 0, sizeof(*r));
	if (policy_route(path, n, r))
		return r->why != NULL ? ZG_ERR_MALFORMED : 0;
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
			r->why = "the client id in the path must be 1 to 128 characters of A-Z a-z "
				 "0-9 . _ - @ : +";
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
 * with the NUL). Returns 0, ZG_ERR_TOO_LARGE (does not fit), ZG_ERR_RANGE
 * (a \u0000) or ZG_ERR_MALFORMED (bad escape, control character, broken
 * UTF-8, or no closing quote before end). */
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
					return ZG_ERR_RANGE; /* would cut the C string */
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

/* What a key of a body holds. */
enum ftype {
	F_STR = 0, /* a string into out[cap] */
	F_DOC,     /* a string into a malloc'd *pdoc, at most cap - 1 bytes */
	F_ID       /* a positive integer (API_POLICY_ID_DIGITS) into *pint */
};

/* One key of a body: its name, where the decoded value goes, its max. */
struct field {
	const char *key;
	char *out;
	size_t cap;
	int nullable;
	int seen;
	int null; /* out: it was null */
	enum ftype type;
	char **pdoc;   /* F_DOC */
	size_t *plen;  /* F_DOC */
	int64_t *pint; /* F_ID */
};

/* A string value at *p for fd (F_STR or F_DOC). */
static int string_value(const char **p, const char *end, struct field *fd, char *err,
			size_t errlen)
{
	size_t vlen, cap = fd->cap;
	char *out = fd->out;
	int r;

	if (fd->type == F_DOC) {
		/* decoding never lengthens: the rest of the body bounds it */
		if ((size_t)(end - *p) < cap)
			cap = (size_t)(end - *p);
		if ((out = malloc(cap)) == NULL) {
			zg_seterr(err, errlen, "out of memory");
			return ZG_ERR_NOMEM;
		}
	}
	r = parse_string(p, end, out, cap, &vlen);
	if (r == 0 && fd->type == F_DOC) {
		*fd->pdoc = out;
		*fd->plen = vlen;
		return 0;
	}
	if (out != fd->out)
		free(out);
	if (r == ZG_ERR_TOO_LARGE) {
		zg_seterr(err, errlen, "%s: longer than %zu bytes", fd->key, fd->cap - 1);
		return fd->type == F_DOC ? ZG_ERR_TOO_LARGE : ZG_ERR_MALFORMED;
	}
	if (r == ZG_ERR_RANGE && fd->type == F_DOC) {
		zg_seterr(err, errlen, "%s: holds a NUL character (\\u0000), which a policy file "
				       "cannot hold",
			  fd->key);
		return ZG_ERR_MALFORMED;
	}
	if (r != 0) {
		zg_seterr(err, errlen, "%s: not a valid JSON string", fd->key);
		return ZG_ERR_MALFORMED;
	}
	return 0;
}

/* A positive integer at *p for fd (F_ID): digits only, no sign, fraction
 * or exponent. */
static int id_value(const char **p, const char *end, struct field *fd, char *err, size_t errlen)
{
	const char *s = *p;
	int64_t v = 0;
	size_t n = 0;

	while (s + n < end && s[n] >= '0' && s[n] <= '9')
		n++;
	if (n == 0 || n > API_POLICY_ID_DIGITS || s[0] == '0' ||
	    (s + n < end && (s[n] == '.' || s[n] == 'e' || s[n] == 'E'))) {
		zg_seterr(err, errlen, "%s: must be a policy id (a positive integer)%s", fd->key,
			  fd->nullable ? " or null" : "");
		return ZG_ERR_MALFORMED;
	}
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	*fd->pint = v;
	*p = s + n;
	return 0;
}

/* Parses a flat object of fields f[0..n), of at most max bytes. On error
 * the F_DOC values already read stay the caller's to free. */
static int parse_object(const char *body, size_t len, size_t max, struct field *f, size_t n,
			char *err, size_t errlen)
{
	const char *p = body, *end = body + len;
	char key[64];
	size_t klen;
	int r;

	if (len > max) {
		zg_seterr(err, errlen, "body is %zu bytes; at most %zu allowed", len, max);
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
		if (fd->type != F_ID && p < end && *p == '"') {
			if ((r = string_value(&p, end, fd, err, errlen)) != 0)
				return r;
		} else if (fd->type == F_ID && p < end && *p >= '0' && *p <= '9') {
			if ((r = id_value(&p, end, fd, err, errlen)) != 0)
				return r;
		} else if (scalar_kind(&p, end, &k) != 0 || k != JV_NULL || !fd->nullable) {
			zg_seterr(err, errlen, "%s: must be %s%s", fd->key,
				  fd->type == F_ID ? "a policy id (a positive integer)" : "a string",
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
		{ .key = "client_id", .out = req->client_id, .cap = sizeof(req->client_id) },
		{ .key = "relay_id", .out = req->relay_id, .cap = sizeof(req->relay_id) },
		{ .key = "requested_address", .out = addr, .cap = sizeof(addr), .nullable = 1 },
	};
	int r;

	memset(req, 0, sizeof(*req));
	if ((r = parse_object(body, len, API_BODY_MAX, f, 3, err, errlen)) != 0)
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
	struct field f[] = { { .key = "relay_id", .out = relay_id, .cap = API_RELAY_ID_MAX + 1 } };
	const char *p = body, *end = body + len;
	int r;

	relay_id[0] = '\0';
	skip_ws(&p, end);
	if (p == end)
		return 0;
	if ((r = parse_object(body, len, API_BODY_MAX, f, 1, err, errlen)) != 0 ||
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
	return api_json_quote_n(out, outlen, s, strlen(s));
}

size_t api_json_quote_n(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0, i = 0;

#define PUT(str, k)                                                              \
	do {                                                                     \
		if (outlen > 0 && n + (k) < outlen)                              \
			memcpy(out + n, (str), (k));                             \
		else if (outlen > 0 && n < outlen)                               \
			outlen = n + 1; /* stop writing: never half an escape */ \
		n += (k);                                                        \
	} while (0)

	PUT("\"", 1);
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		char esc[8] = { '\\', 0 };
		uint32_t cp;
		size_t k;

		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			break;
		}
		if (esc[1] != 0) {
			PUT(esc, 2);
			i++;
			continue;
		}
		if (c >= 0x20 && c < 0x7f) {
			PUT(s + i, 1);
			i++;
			continue;
		}
		k = c < 0x80 ? 0 : log_utf8_seq((const unsigned char *)s + i, len - i, &cp);
		if (k > 0) {
			PUT(s + i, k);
			i += k;
			continue;
		}
		/* a control character, DEL, or a byte of no valid sequence */
		memcpy(esc + 1, "u00", 3);
		esc[4] = hex[c >> 4];
		esc[5] = hex[c & 15];
		PUT(esc, 6);
		i++;
	}
	PUT("\"", 1);
#undef PUT
	if (outlen > 0)
		out[n < outlen ? n : outlen - 1] = '\0';
	return n;
}

int api_parse_policy(const char *body, size_t len, struct api_policy_body *b, char *err,
		     size_t errlen)
{
	struct field f[] = {
		{ .key = "document", .cap = API_POLICY_DOC_MAX + 1, .type = F_DOC, .pdoc = &b->document, .plen = &b->len },
		{ .key = "comment", .out = b->comment, .cap = sizeof(b->comment), .nullable = 1 },
	};
	int r;

	memset(b, 0, sizeof(*b));
	if ((r = parse_object(body, len, API_POLICY_BODY_MAX, f, 2, err, errlen)) != 0)
		goto fail;
	if (b->document == NULL) {
		zg_seterr(err, errlen, "document: required (the policy YAML as a JSON string)");
		r = ZG_ERR_MALFORMED;
		goto fail;
	}
	return 0;
fail:
	api_policy_body_free(b);
	return r;
}

void api_policy_body_free(struct api_policy_body *b)
{
	free(b->document);
	memset(b, 0, sizeof(*b));
}

int api_parse_activate(const char *body, size_t len, int *pcheck, int64_t *pexpected,
		       char *err, size_t errlen)
{
	int64_t v = 0;
	struct field f[] = { { .key = "expected_active", .nullable = 1, .type = F_ID, .pint = &v } };
	const char *p = body, *end = body + len;
	int r;

	*pcheck = 0;
	*pexpected = 0;
	skip_ws(&p, end);
	if (p == end)
		return 0;
	if ((r = parse_object(body, len, API_BODY_MAX, f, 1, err, errlen)) != 0)
		return r;
	*pcheck = f[0].seen;
	*pexpected = f[0].null ? 0 : v;
	return 0;
}

int api_etag_match(const char *inm, const char *etag)
{
	size_t el = strlen(etag);

	if (inm == NULL)
		return 0;
	for (;;) {
		size_t n;

		inm += strspn(inm, " \t,");
		if (*inm == '\0')
			return 0;
		if (*inm == '*')
			return 1;
		if (strncmp(inm, "W/", 2) == 0)
			inm += 2;
		/* one entity tag: "..." (no comma or quote inside) */
		n = *inm == '"' ? strcspn(inm + 1, "\"") + 2 : strcspn(inm, " \t,");
		if (n == el && memcmp(inm, etag, el) == 0 && inm[n - 1] == '"')
			return 1;
		if (*inm == '"' && inm[n - 1] != '"')
			return 0; /* unterminated */
		inm += n;
	}
}

int api_policy_error_pos(const char *err, unsigned long *pline, unsigned long *pcol)
{
	const char *p = strchr(err, ':');
	unsigned long v[2] = { 0, 0 };

	if (p == NULL)
		return -1;
	for (int i = 0; i < 2; i++) {
		size_t n = strspn(++p, "0123456789");

		if (n == 0 || n > 9 || p[n] != ':')
			return -1;
		for (size_t j = 0; j < n; j++)
			v[i] = v[i] * 10 + (unsigned long)(p[j] - '0');
		p += n;
	}
	*pline = v[0];
	*pcol = v[1];
	return 0;
}
