#include "relay/apiresp.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "zg_err.h"

enum {
	ST_STATUS,
	ST_HEADER,
	ST_BODY,       /* Content-Length bytes */
	ST_BODY_CLOSE, /* until the connection closes */
	ST_CHUNK_SIZE,
	ST_CHUNK_DATA,
	ST_CHUNK_CRLF,
	ST_TRAILER,
	ST_DONE,
	ST_ERR,
};

struct apiresp *apiresp_new(size_t body_max)
{
	struct apiresp *p;

	if (body_max == 0 || body_max > APIRESP_BODY_LIMIT)
		return NULL;
	p = malloc(sizeof(*p) + body_max + 1);
	if (p == NULL)
		return NULL;
	p->body_max = body_max;
	apiresp_init(p, 0);
	return p;
}

void apiresp_init(struct apiresp *p, int head)
{
	p->st = ST_STATUS;
	p->status = 0;
	p->close = 0;
	p->chunked = 0;
	p->head = head;
	p->clen = -1;
	p->left = 0;
	p->head_bytes = 0;
	p->line_len = 0;
	p->body_len = 0;
	p->body[0] = '\0';
	p->etag[0] = '\0';
	p->policy_id[0] = '\0';
	p->err[0] = '\0';
}

static int fail(struct apiresp *p, int r, const char *what)
{
	(void)snprintf(p->err, sizeof(p->err), "%s", what);
	p->st = ST_ERR;
	return r;
}

static int too_large(struct apiresp *p)
{
	(void)snprintf(p->err, sizeof(p->err), "body larger than %zu bytes", p->body_max);
	p->st = ST_ERR;
	return ZG_ERR_TOO_LARGE;
}

/* Keeps header value v in out when it fits whole, else leaves it empty. */
static void keep(char *out, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n < cap)
		memcpy(out, v, n + 1);
	else
		out[0] = '\0';
}

/* Whether the comma-separated list v holds token (case-insensitive). */
static int has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);

	while (*v) {
		size_t n;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		n = strcspn(v, ",");
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == tl && strncasecmp(v, token, tl) == 0)
			return 1;
		v += strcspn(v, ",");
	}
	return 0;
}

static int status_line(struct apiresp *p, const char *l)
{
	if (strncmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
	    l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' ||
	    (l[12] != ' ' && l[12] != '\0'))
		return fail(p, ZG_ERR_MALFORMED, "bad status line");
	p->status = (unsigned)((l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0'));
	if (l[7] == '0')
		p->close = 1; /* HTTP/1.0: no keep-alive here */
	p->st = ST_HEADER;
	return 0;
}

static int header_line(struct apiresp *p, char *l)
{
	char *colon = strchr(l, ':'), *v;

	if (l[0] == ' ' || l[0] == '\t')
		return fail(p, ZG_ERR_MALFORMED, "folded header line");
	if (colon == NULL || colon == l || strcspn(l, " \t") < (size_t)(colon - l))
		return fail(p, ZG_ERR_MALFORMED, "bad header line");
	*colon = '\0';
	v = colon + 1;
	v += strspn(v, " \t");
	for (size_t n = strlen(v); n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'); n--)
		v[n - 1] = '\0';
	if (strcasecmp(l, "Content-Length") == 0) {
		uint64_t x = 0;

		if (v[0] == '\0' || strspn(v, "0123456789") != strlen(v))
			return fail(p, ZG_ERR_MALFORMED, "bad Content-Length");
		for (const char *c = v; *c; c++) {
			x = x * 10 + (uint64_t)(*c - '0');
			if (x > p->body_max)
				return too_large(p);
		}
		if (p->clen >= 0 && (uint64_t)p->clen != x)
			return fail(p, ZG_ERR_MALFORMED, "two different Content-Lengths");
		p->clen = (int64_t)x;
	} else if (strcasecmp(l, "Transfer-Encoding") == 0) {
		if (strcasecmp(v, "chunked") != 0)
			return fail(p, ZG_ERR_MALFORMED, "unsupported Transfer-Encoding");
		p->chunked = 1;
	} else if (strcasecmp(l, "Connection") == 0) {
		if (has_token(v, "close"))
			p->close = 1;
	} else if (strcasecmp(l, "ETag") == 0) {
		keep(p->etag, sizeof(p->etag), v);
	} else if (strcasecmp(l, "Zgate-Policy-Id") == 0) {
		keep(p->policy_id, sizeof(p->policy_id), v);
	}
	return 0;
}

static int headers_done(struct apiresp *p)
{
	if (p->status < 200) { /* 100 Continue and the like: the answer follows */
		if (p->status == 101)
			return fail(p, ZG_ERR_MALFORMED, "unexpected 101 Switching Protocols");
		p->st = ST_STATUS;
		p->close = 0;
		p->chunked = 0;
		p->clen = -1;
		p->etag[0] = '\0';
		p->policy_id[0] = '\0';
		return 0;
	}
	if (p->head || p->status == 204 || p->status == 304)
		p->st = ST_DONE;
	else if (p->chunked)
		p->st = ST_CHUNK_SIZE;
	else if (p->clen >= 0) {
		p->left = (uint64_t)p->clen;
		p->st = p->left ? ST_BODY : ST_DONE;
	} else {
		p->close = 1;
		p->st = ST_BODY_CLOSE;
	}
	return 0;
}

static int chunk_size(struct apiresp *p, const char *l)
{
	uint64_t x = 0;
	size_t i = 0;

	for (; l[i]; i++) {
		char c = l[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		x = x * 16 + d;
		if (x > p->body_max)
			return too_large(p);
	}
	if (i == 0 || (l[i] != '\0' && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
		return fail(p, ZG_ERR_MALFORMED, "bad chunk size");
	if (x == 0) {
		p->st = ST_TRAILER;
		return 0;
	}
	if (p->body_len + x > p->body_max)
		return too_large(p);
	p->left = x;
	p->st = ST_CHUNK_DATA;
	return 0;
}

/* One complete line (CR LF or LF cut off) in the current state. */
static int line(struct apiresp *p)
{
	char *l = p->line;

	switch (p->st) {
	case ST_STATUS:
		if (l[0] == '\0' && p->status == 0 && p->head_bytes <= 2)
			return 0; /* a stray CRLF before the answer (RFC 9112 2.2) */
		return status_line(p, l);
	case ST_HEADER:
		return l[0] == '\0' ? headers_done(p) : header_line(p, l);
	case ST_CHUNK_SIZE:
		return chunk_size(p, l);
	case ST_CHUNK_CRLF:
		if (l[0] != '\0')
			return fail(p, ZG_ERR_MALFORMED, "no CRLF after a chunk");
		p->st = ST_CHUNK_SIZE;
		return 0;
	case ST_TRAILER:
		if (l[0] == '\0')
			p->st = ST_DONE;
		return 0;
	default:
		return fail(p, ZG_ERR_MALFORMED, "parser state");
	}
}

int apiresp_feed(struct apiresp *p, const uint8_t *d, size_t n, size_t *pused)
{
	size_t i = 0;
	int r;

	*pused = 0;
	if (p->st == ST_ERR)
		return ZG_ERR_MALFORMED;
	while (i < n && p->st != ST_DONE) {
		if (p->st == ST_BODY || p->st == ST_CHUNK_DATA || p->st == ST_BODY_CLOSE) {
			size_t k = n - i;

			if (p->st != ST_BODY_CLOSE && k > p->left)
				k = (size_t)p->left;
			if (p->body_len + k > p->body_max)
				return too_large(p);
			memcpy(p->body + p->body_len, d + i, k);
			p->body_len += k;
			p->body[p->body_len] = '\0';
			i += k;
			if (p->st != ST_BODY_CLOSE) {
				p->left -= k;
				if (p->left == 0)
					p->st = p->st == ST_BODY ? ST_DONE : ST_CHUNK_CRLF;
			}
			continue;
		}
		/* a line */
		if (p->st == ST_STATUS || p->st == ST_HEADER || p->st == ST_TRAILER) {
			if (++p->head_bytes > APIRESP_HEAD_MAX)
				return fail(p, ZG_ERR_TOO_LARGE, "headers larger than 8192 bytes");
		}
		if (d[i] == '\n') {
			if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
				p->line_len--;
			p->line[p->line_len] = '\0';
			p->line_len = 0;
			i++;
			if ((r = line(p)) != 0)
				return r;
			continue;
		}
		if (d[i] == '\0')
			return fail(p, ZG_ERR_MALFORMED, "NUL byte in the headers");
		if (p->line_len + 1 >= sizeof(p->line))
			return fail(p, ZG_ERR_TOO_LARGE, "header line longer than 1024 bytes");
		p->line[p->line_len++] = (char)d[i++];
	}
	*pused = i;
	return p->st == ST_DONE ? 1 : 0;
}

int apiresp_eof(struct apiresp *p)
{
	switch (p->st) {
	case ST_DONE:
	case ST_BODY_CLOSE:
		p->st = ST_DONE;
		p->close = 1;
		return 1;
	case ST_ERR:
		return ZG_ERR_MALFORMED;
	case ST_STATUS:
		return fail(p, ZG_ERR_MALFORMED,
			    p->head_bytes ? "connection closed in the status line"
					  : "connection closed before an answer");
	case ST_HEADER:
		return fail(p, ZG_ERR_MALFORMED, "connection closed in the headers");
	default:
		return fail(p, ZG_ERR_MALFORMED, "connection closed in the body");
	}
}

/* ---------------------------------------------------------------- JSON */

static void skip_ws(const char **s, const char *end)
{
	while (*s < end && (**s == ' ' || **s == '\t' || **s == '\n' || **s == '\r'))
		(*s)++;
}

/* A JSON string at *s (at its opening quote): unescaped into out when out
 * is not NULL. Returns 0, ZG_ERR_MALFORMED or ZG_ERR_TOO_LARGE. */
static int json_string(const char **s, const char *end, char *out, size_t outlen)
{
	const char *c = *s;
	size_t n = 0;
	int big = 0;

	if (c >= end || *c != '"')
		return ZG_ERR_MALFORMED;
	c++;
	while (c < end && *c != '"') {
		char ch = *c++;

		if ((unsigned char)ch < 0x20)
			return ZG_ERR_MALFORMED;
		if (ch == '\\') {
			if (c >= end)
				return ZG_ERR_MALFORMED;
			ch = *c++;
			switch (ch) {
			case '"':
			case '\\':
			case '/':
				break;
			case 'b':
				ch = '\b';
				break;
			case 'f':
				ch = '\f';
				break;
			case 'n':
				ch = '\n';
				break;
			case 'r':
				ch = '\r';
				break;
			case 't':
				ch = '\t';
				break;
			case 'u': {
				unsigned v = 0;

				if (end - c < 4)
					return ZG_ERR_MALFORMED;
				for (int i = 0; i < 4; i++) {
					char h = c[i];

					v <<= 4;
					if (h >= '0' && h <= '9')
						v |= (unsigned)(h - '0');
					else if (h >= 'a' && h <= 'f')
						v |= (unsigned)(h - 'a' + 10);
					else if (h >= 'A' && h <= 'F')
						v |= (unsigned)(h - 'A' + 10);
					else
						return ZG_ERR_MALFORMED;
				}
				c += 4;
				ch = v >= 0x20 && v < 0x7f ? (char)v : '?';
				break;
			}
			default:
				return ZG_ERR_MALFORMED;
			}
		}
		if (out != NULL) {
			if (n + 1 < outlen)
				out[n++] = ch;
			else
				big = 1;
		}
	}
	if (c >= end)
		return ZG_ERR_MALFORMED;
	if (out != NULL && outlen > 0)
		out[n] = '\0';
	*s = c + 1;
	return big ? ZG_ERR_TOO_LARGE : 0;
}

/* Skips any JSON value at *s (depth: nesting so far). */
static int json_skip(const char **s, const char *end, int depth)
{
	const char *c;

	skip_ws(s, end);
	if (*s >= end)
		return ZG_ERR_MALFORMED;
	c = *s;
	if (*c == '"')
		return json_string(s, end, NULL, 0);
	if (*c == '{' || *c == '[') {
		char close = *c == '{' ? '}' : ']';

		if (depth >= 32)
			return ZG_ERR_MALFORMED;
		(*s)++;
		skip_ws(s, end);
		if (*s < end && **s == close) {
			(*s)++;
			return 0;
		}
		for (;;) {
			int r;

			if (close == '}') {
				skip_ws(s, end);
				if ((r = json_string(s, end, NULL, 0)) != 0)
					return r;
				skip_ws(s, end);
				if (*s >= end || **s != ':')
					return ZG_ERR_MALFORMED;
				(*s)++;
			}
			if ((r = json_skip(s, end, depth + 1)) != 0)
				return r;
			skip_ws(s, end);
			if (*s >= end)
				return ZG_ERR_MALFORMED;
			if (**s == close) {
				(*s)++;
				return 0;
			}
			if (**s != ',')
				return ZG_ERR_MALFORMED;
			(*s)++;
		}
	}
	/* a number, true, false or null: its characters */
	while (c < end && ((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || *c == '-' ||
			   *c == '+' || *c == '.' || *c == 'E'))
		c++;
	if (c == *s)
		return ZG_ERR_MALFORMED;
	*s = c;
	return 0;
}

int apiresp_json_str(const char *json, size_t len, const char *key, char *out, size_t outlen)
{
	const char *s = json, *end = json + len;
	char k[64];
	int r, found = ZG_ERR_NOTFOUND;

	if (outlen > 0)
		out[0] = '\0';
	skip_ws(&s, end);
	if (s >= end || *s != '{')
		return ZG_ERR_MALFORMED;
	s++;
	skip_ws(&s, end);
	if (s < end && *s == '}')
		return found;
	for (;;) {
		skip_ws(&s, end);
		r = json_string(&s, end, k, sizeof(k));
		if (r == ZG_ERR_MALFORMED)
			return r;
		if (r == ZG_ERR_TOO_LARGE)
			k[0] = '\0'; /* a long key: not ours */
		skip_ws(&s, end);
		if (s >= end || *s != ':')
			return ZG_ERR_MALFORMED;
		s++;
		skip_ws(&s, end);
		if (found == ZG_ERR_NOTFOUND && strcmp(k, key) == 0 && s < end && *s == '"') {
			if ((r = json_string(&s, end, out, outlen)) == ZG_ERR_MALFORMED)
				return r;
			found = r;
		} else if ((r = json_skip(&s, end, 1)) != 0)
			return r;
		skip_ws(&s, end);
		if (s >= end)
			return ZG_ERR_MALFORMED;
		if (*s == '}')
			break;
		if (*s != ',')
			return ZG_ERR_MALFORMED;
		s++;
	}
	/* a value too long is kept cut to fit: error_text() logs it so */
	if (found != 0 && found != ZG_ERR_TOO_LARGE && outlen > 0)
		out[0] = '\0';
	return found;
}

int apiresp_lease(const char *json, size_t len, uint8_t addr4[4], int *pexisting, char *err,
		  size_t errlen)
{
	char a[64], how[32];
	struct in_addr in;
	int r;

	r = apiresp_json_str(json, len, "address", a, sizeof(a));
	if (r == ZG_ERR_MALFORMED) {
		zg_seterr(err, errlen, "answer is not a JSON object");
		return ZG_ERR_MALFORMED;
	}
	if (r != 0 || inet_pton(AF_INET, a, &in) != 1) {
		zg_seterr(err, errlen, "answer has no IPv4 \"address\"");
		return ZG_ERR_MALFORMED;
	}
	memcpy(addr4, &in, 4);
	*pexisting = apiresp_json_str(json, len, "how", how, sizeof(how)) == 0 &&
		     strcmp(how, "existing") == 0;
	return 0;
}
