#include "masque/uri.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "zg_err.h"

/*
 * A template is parsed into at most three pieces, each a literal followed
 * by at most one expression: both variables may appear once, and every
 * expression names at least one, so there are at most two expressions.
 * Pieces point into the template; nothing is copied or allocated.
 */
enum {
	VAR_TARGET,
	VAR_IPPROTO
};

#define TPL_PIECES 3
#define VALUE_MAX URI_DNS_MAX /* longest decoded value (a DNS name) */

struct tpl_piece {
	const char *lit;
	size_t litlen;
	char op;     /* 0 (simple), '/', '?', '&', '.' or ';' */
	size_t nvar; /* 0 (no expression: the last piece) .. 2 */
	int var[2];
	size_t at; /* offset of the expression, for messages */
};

struct tpl {
	const char *auth;
	size_t authlen;
	size_t n;
	struct tpl_piece piece[TPL_PIECES];
};

static const char *const var_name[] = { "target", "ipproto" };

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int hexval(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3986 unreserved. */
static int is_unreserved(int c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* A character that may appear in a received variable value: what
 * uri_expand writes (unreserved, '*', "%XX") plus a raw ':', which a client
 * may leave unencoded in an IPv6 literal. The template check makes sure
 * none of these ever follows a value, so a value ends at the first other
 * character and matching needs no backtracking. */
static int is_value_char(int c)
{
	return is_unreserved(c) || c == '*' || c == ':' || c == '%';
}

/* A literal character of the path or query (RFC 3986 pchar, '/' and '?';
 * '%' is checked separately). */
static int is_literal_char(int c)
{
	return is_unreserved(c) || (c && strchr("!$&'()*+,;=:@/?", c) != NULL);
}

/* RFC 6570 appendix A, for the operators accepted here: the first value
 * follows the operator itself (nothing for a simple expression); op_sep()
 * is what comes between values, op_named() whether they are written as
 * name=value. */
static char op_sep(char op)
{
	switch (op) {
	case 0:
		return ',';
	case '?':
		return '&';
	default:
		return op;
	}
}

static int op_named(char op)
{
	return op == ';' || op == '?' || op == '&';
}

/* host[:port]: a registered name of unreserved characters, an IPv4 literal
 * or a bracketed IPv6 literal; an optional port 1..65535. No userinfo. */
static int check_authority(const char *t, const char *a, size_t len, char *err, size_t errlen)
{
	const char *end = a + len, *p = a;

	if (memchr(a, '@', len)) {
		zg_seterr(err, errlen, "userinfo ('@') is not allowed in the authority");
		return ZG_ERR_CONFIG;
	}
	if (*p == '[') {
		char v6[INET6_ADDRSTRLEN];
		struct in6_addr in6;
		const char *close = memchr(p, ']', len);
		size_t n;

		if (!close || (n = (size_t)(close - p - 1)) == 0 || n >= sizeof(v6)) {
			zg_seterr(err, errlen, "bad IPv6 literal in the authority at offset %zu",
				  (size_t)(p - t));
			return ZG_ERR_CONFIG;
		}
		memcpy(v6, p + 1, n);
		v6[n] = '\0';
		if (inet_pton(AF_INET6, v6, &in6) != 1) {
			zg_seterr(err, errlen, "bad IPv6 literal in the authority at offset %zu",
				  (size_t)(p - t));
			return ZG_ERR_CONFIG;
		}
		p = close + 1;
	} else {
		while (p < end && is_unreserved(*p))
			p++;
		if (p == a) {
			zg_seterr(err, errlen, "needs a host and a path starting with /");
			return ZG_ERR_CONFIG;
		}
	}
	if (p < end && *p == ':') {
		const char *d = ++p;
		unsigned long port = 0;

		while (p < end && is_digit(*p) && p - d < 5)
			port = port * 10 + (unsigned long)(*p++ - '0');
		if (p == d || p < end || port == 0 || port > 65535) {
			zg_seterr(err, errlen, "bad port in the authority at offset %zu", (size_t)(d - t));
			return ZG_ERR_CONFIG;
		}
	}
	if (p < end) {
		zg_seterr(err, errlen, "character '%c' not allowed in the host at offset %zu", *p,
			  (size_t)(p - t));
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* Parses the expression whose '{' is at *pp into pc; *pp ends after '}'. */
static int parse_expr(const char *t, const char **pp, struct tpl_piece *pc, int *seen,
		      char *err, size_t errlen)
{
	const char *open = *pp, *p = open + 1, *close;
	size_t at = (size_t)(open - t);

	for (close = p; *close && *close != '}' && *close != '{'; close++)
		;
	if (*close != '}') {
		zg_seterr(err, errlen, "unbalanced '{' at offset %zu", at);
		return ZG_ERR_CONFIG;
	}
	if (close == p) {
		zg_seterr(err, errlen, "empty expression at offset %zu", at);
		return ZG_ERR_CONFIG;
	}
	pc->op = 0;
	pc->at = at;
	if (*p == '+' || *p == '#') {
		zg_seterr(err, errlen,
			  "operator '%c' at offset %zu is not allowed (reserved expansion would let '/' through)",
			  *p, at);
		return ZG_ERR_CONFIG;
	}
	if (*p == '/' || *p == '?' || *p == '&' || *p == '.' || *p == ';') {
		pc->op = *p++;
	} else if (strchr("=,!@|", *p)) {
		zg_seterr(err, errlen, "operator '%c' at offset %zu is reserved by RFC 6570", *p, at);
		return ZG_ERR_CONFIG;
	}
	for (;;) {
		const char *v = p;
		size_t n;
		int var;

		while (p < close && *p != ',')
			p++;
		n = (size_t)(p - v);
		if (n == 0) {
			zg_seterr(err, errlen, "empty variable name in the expression at offset %zu", at);
			return ZG_ERR_CONFIG;
		}
		if (memchr(v, ':', n) || v[n - 1] == '*') {
			zg_seterr(err, errlen, "modifier ':' or '*' at offset %zu is level 4 (at most level 3)",
				  at);
			return ZG_ERR_CONFIG;
		}
		if (n == 6 && memcmp(v, "target", 6) == 0) {
			var = VAR_TARGET;
		} else if (n == 7 && memcmp(v, "ipproto", 7) == 0) {
			var = VAR_IPPROTO;
		} else {
			zg_seterr(err, errlen, "unknown variable \"%.*s\" at offset %zu (only target and ipproto)",
				  (int)n, v, (size_t)(v - t));
			return ZG_ERR_CONFIG;
		}
		if (seen[var]) {
			zg_seterr(err, errlen, "variable \"%s\" at offset %zu: each variable may appear once",
				  var_name[var], (size_t)(v - t));
			return ZG_ERR_CONFIG;
		}
		seen[var] = 1;
		pc->var[pc->nvar++] = var;
		if (p == close)
			break;
		p++; /* ',' */
	}
	*pp = close + 1;
	return 0;
}

/* The first character written after the value of variable i of piece k:
 * 0 at the end of the path, '{' before an expression that starts with a
 * bare value (a literal '{' cannot occur). */
static char char_after(const struct tpl *tp, size_t k, size_t i)
{
	const struct tpl_piece *pc = &tp->piece[k];

	if (i + 1 < pc->nvar)
		return op_sep(pc->op);
	if (k + 1 >= tp->n)
		return 0;
	pc = &tp->piece[k + 1];
	if (pc->litlen)
		return pc->lit[0];
	if (pc->nvar)
		return pc->op ? pc->op : '{';
	return 0;
}

/* Parses and checks tmpl (C01). Returns 0 or ZG_ERR_CONFIG with err set. */
static int tpl_parse(const char *t, struct tpl *tp, char *err, size_t errlen)
{
	const char *p, *a;
	int seen[2] = { 0, 0 };
	struct tpl_piece *pc;
	int r;

	memset(tp, 0, sizeof(*tp));
	if (strncmp(t, "https://", 8) != 0) {
		zg_seterr(err, errlen, "must be an absolute https:// URI (https://host[:port]/path)");
		return ZG_ERR_CONFIG;
	}
	a = p = t + 8;
	while (*p && *p != '/' && *p != '?' && *p != '#')
		p++;
	for (const char *q = a; q < p; q++) {
		if (*q == '{' || *q == '}') {
			zg_seterr(err, errlen,
				  "variables are allowed only in the path or query, not in the authority (offset %zu)",
				  (size_t)(q - t));
			return ZG_ERR_CONFIG;
		}
	}
	if (p == a || *p != '/') {
		zg_seterr(err, errlen, "needs a host and a path starting with /");
		return ZG_ERR_CONFIG;
	}
	if ((r = check_authority(t, a, (size_t)(p - a), err, errlen)) != 0)
		return r;
	tp->auth = a;
	tp->authlen = (size_t)(p - a);

	pc = &tp->piece[0];
	pc->lit = p;
	tp->n = 1;
	while (*p) {
		if (*p == '{') {
			pc->litlen = (size_t)(p - pc->lit);
			/* at most two expressions: a third would repeat a name,
			 * which parse_expr refuses before we get here again */
			if ((r = parse_expr(t, &p, pc, seen, err, errlen)) != 0)
				return r;
			pc = &tp->piece[tp->n++];
			pc->lit = p;
			continue;
		}
		if (*p == '}') {
			zg_seterr(err, errlen, "unbalanced '}' at offset %zu", (size_t)(p - t));
			return ZG_ERR_CONFIG;
		}
		if (*p == '#') {
			zg_seterr(err, errlen, "a fragment is not allowed (offset %zu)", (size_t)(p - t));
			return ZG_ERR_CONFIG;
		}
		if (*p == '%') {
			if (hexval(p[1]) < 0 || hexval(p[2]) < 0) {
				zg_seterr(err, errlen, "bad percent-encoding at offset %zu", (size_t)(p - t));
				return ZG_ERR_CONFIG;
			}
			p += 3;
			continue;
		}
		if (!is_literal_char(*p)) {
			zg_seterr(err, errlen, "character 0x%02x not allowed in a URI at offset %zu",
				  (unsigned)(unsigned char)*p, (size_t)(p - t));
			return ZG_ERR_CONFIG;
		}
		p++;
	}
	pc->litlen = (size_t)(p - pc->lit);

	/* A value must end where a character that cannot be part of it
	 * begins; otherwise a received path has more than one reading. */
	for (size_t k = 0; k < tp->n; k++) {
		for (size_t i = 0; i < tp->piece[k].nvar; i++) {
			char c = char_after(tp, k, i);
			if (c == '{' || (c && is_value_char(c))) {
				zg_seterr(err, errlen,
					  "expression at offset %zu: the value of \"%s\" is followed by '%c', "
					  "which could be part of it (a received path would be ambiguous)",
					  tp->piece[k].at, var_name[tp->piece[k].var[i]], c);
				return ZG_ERR_CONFIG;
			}
		}
	}
	return 0;
}

int uri_template_check(const char *tmpl, char *err, size_t errlen)
{
	struct tpl tp;

	if (!tmpl)
		return ZG_ERR_INVAL;
	return tpl_parse(tmpl, &tp, err, errlen);
}

int uri_authority(const char *tmpl, char *authority, size_t alen)
{
	struct tpl tp;
	int r;

	if (!tmpl || !authority)
		return ZG_ERR_INVAL;
	if (alen)
		authority[0] = '\0';
	if ((r = tpl_parse(tmpl, &tp, NULL, 0)) != 0)
		return r;
	if (tp.authlen >= alen)
		return ZG_ERR_BUFSHORT;
	memcpy(authority, tp.auth, tp.authlen);
	authority[tp.authlen] = '\0';
	return 0;
}

/* ---------------------------------------------------------------- values */

/* A DNS name: LDH labels of 1..63 characters, not starting or ending with
 * '-', at most URI_DNS_MAX characters, no empty label (so no trailing
 * dot). A name whose last label is all digits is refused: it is a
 * mistyped IPv4 literal ("10.0.0.256"), not a host name (RFC 3696 §2). */
static int dns_valid(const char *s, size_t n)
{
	size_t lab = 0, i;
	int alldigit = 1;

	if (n == 0 || n > URI_DNS_MAX)
		return 0;
	for (i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';
		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			if (i == n && alldigit)
				return 0;
			lab = 0;
			alldigit = 1;
			continue;
		}
		if (!is_alpha(c) && !is_digit(c) && c != '-')
			return 0;
		if (lab == 0 && c == '-')
			return 0;
		if (!is_digit(c))
			alldigit = 0;
		if (++lab > 63)
			return 0;
	}
	return 1;
}

/* Decimal 0..max, at most three digits, no sign, no leading zero except
 * "0" itself (one spelling per value). Returns the value or -1. */
static int parse_small(const char *s, size_t n, unsigned max)
{
	unsigned v = 0;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= max ? (int)v : -1;
}

/* An IPv4 or IPv6 literal (NUL-terminated) into a. */
static int parse_literal(const char *s, struct cip_addr *a)
{
	memset(a->addr, 0, sizeof(a->addr));
	if (inet_pton(AF_INET, s, a->addr) == 1) {
		a->version = 4;
		a->prefix_len = 32;
		return 0;
	}
	if (strchr(s, ':') && inet_pton(AF_INET6, s, a->addr) == 1) {
		a->version = 6;
		a->prefix_len = 128;
		return 0;
	}
	return ZG_ERR_MALFORMED;
}

/* The decoded target value v[0..n) (NUL-terminated at n) into s (C03). */
static int parse_target(const char *v, size_t n, struct uri_scope *s)
{
	const char *slash = memchr(v, '/', n);

	if (n == 1 && v[0] == '*') {
		s->any_target = 1;
		return 0;
	}
	if (slash) {
		char addr[INET6_ADDRSTRLEN];
		size_t alen = (size_t)(slash - v);
		int len;

		if (alen == 0 || alen >= sizeof(addr))
			return ZG_ERR_MALFORMED;
		memcpy(addr, v, alen);
		addr[alen] = '\0';
		if (parse_literal(addr, &s->target) != 0)
			return ZG_ERR_MALFORMED;
		len = parse_small(slash + 1, n - alen - 1, s->target.version == 4 ? 32 : 128);
		if (len < 0)
			return ZG_ERR_MALFORMED;
		s->target.prefix_len = (uint8_t)len;
		/* host bits set beyond the length: not a prefix (C03) */
		return cip_addr_validate(&s->target) == 0 ? 0 : ZG_ERR_MALFORMED;
	}
	if (parse_literal(v, &s->target) == 0)
		return 0;
	memset(&s->target, 0, sizeof(s->target));
	if (!dns_valid(v, n))
		return ZG_ERR_MALFORMED;
	memcpy(s->dns, v, n + 1);
	return 0;
}

static int parse_ipproto(const char *v, size_t n, struct uri_scope *s)
{
	int p;

	if (n == 1 && v[0] == '*') {
		s->any_proto = 1;
		return 0;
	}
	if ((p = parse_small(v, n, 255)) < 0)
		return ZG_ERR_MALFORMED;
	s->ipproto = (uint8_t)p;
	return 0;
}

/* ---------------------------------------------------------------- expand */

struct out {
	char *p;
	size_t len, cap;
	int full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || n >= o->cap - o->len) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* Percent-encodes everything but unreserved characters and '*' (RFC 9484
 * writes a wildcard as a bare '*'). */
static void put_value(struct out *o, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (is_unreserved(c) || c == '*') {
			put(o, v, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			put(o, e, 3);
		}
	}
}

/* The value text of each variable for s. Returns 0 or ZG_ERR_INVAL. */
static int scope_values(const struct uri_scope *s, char target[VALUE_MAX + 1], char proto[4])
{
	if (s->any_target) {
		memcpy(target, "*", 2);
	} else if (s->target.version != 0) {
		int af = s->target.version == 4 ? AF_INET : AF_INET6;
		unsigned full = s->target.version == 4 ? 32 : 128;
		size_t n;

		if (cip_addr_validate(&s->target) != 0 || s->dns[0] != '\0')
			return ZG_ERR_INVAL;
		if (!inet_ntop(af, s->target.addr, target, INET6_ADDRSTRLEN))
			return ZG_ERR_INVAL;
		n = strlen(target);
		if (s->target.prefix_len != full &&
		    snprintf(target + n, VALUE_MAX + 1 - n, "/%u", (unsigned)s->target.prefix_len) < 0)
			return ZG_ERR_INVAL;
	} else {
		size_t n = strnlen(s->dns, sizeof(s->dns));
		if (n == sizeof(s->dns) || !dns_valid(s->dns, n))
			return ZG_ERR_INVAL;
		memcpy(target, s->dns, n + 1);
	}
	if (s->any_proto)
		memcpy(proto, "*", 2);
	else if (snprintf(proto, 4, "%u", (unsigned)s->ipproto) < 0)
		return ZG_ERR_INVAL;
	return 0;
}

int uri_expand(const char *tmpl, const struct uri_scope *s, char *authority, size_t alen,
	       char *path, size_t plen)
{
	char target[VALUE_MAX + 1], proto[4];
	const char *val[2] = { target, proto };
	struct out o = { path, 0, plen, 0 };
	struct tpl tp;
	int r;

	if (!tmpl || !s || !authority || !path)
		return ZG_ERR_INVAL;
	if (alen)
		authority[0] = '\0';
	if (plen)
		path[0] = '\0';
	if ((r = tpl_parse(tmpl, &tp, NULL, 0)) != 0)
		return r;
	if ((r = scope_values(s, target, proto)) != 0)
		return r;
	if (tp.authlen >= alen || plen == 0)
		return ZG_ERR_BUFSHORT;
	for (size_t k = 0; k < tp.n; k++) {
		const struct tpl_piece *pc = &tp.piece[k];
		put(&o, pc->lit, pc->litlen);
		for (size_t i = 0; i < pc->nvar; i++) {
			char c = i == 0 ? pc->op : op_sep(pc->op);
			if (c)
				put(&o, &c, 1);
			if (op_named(pc->op)) {
				put(&o, var_name[pc->var[i]], strlen(var_name[pc->var[i]]));
				put(&o, "=", 1); /* values are never empty */
			}
			put_value(&o, val[pc->var[i]]);
		}
	}
	if (o.full) {
		path[0] = '\0';
		return ZG_ERR_BUFSHORT;
	}
	memcpy(authority, tp.auth, tp.authlen);
	authority[tp.authlen] = '\0';
	return 0;
}

/* ---------------------------------------------------------------- match */

/* Reads one value at *pp (a run of value characters), percent-decodes it
 * into v and advances *pp. Returns the decoded length or -1. */
static int read_value(const char **pp, char v[VALUE_MAX + 1])
{
	const char *p = *pp;
	size_t n = 0;

	while (is_value_char(*p)) {
		int c = (unsigned char)*p;
		if (c == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			if (lo < 0)
				return -1;
			c = hi << 4 | lo;
			if (c == 0)
				return -1;
			p += 3;
		} else {
			p++;
		}
		if (n == VALUE_MAX)
			return -1;
		v[n++] = (char)c;
	}
	v[n] = '\0';
	*pp = p;
	return n ? (int)n : -1;
}

int uri_match(const char *tmpl, const char *path, struct uri_scope *s)
{
	struct uri_scope m;
	struct tpl tp;
	const char *p = path;
	int r;

	if (!tmpl || !path || !s)
		return ZG_ERR_INVAL;
	if ((r = tpl_parse(tmpl, &tp, NULL, 0)) != 0)
		return r;
	memset(&m, 0, sizeof(m));
	m.any_target = 1; /* a variable absent from the template is "*" */
	m.any_proto = 1;
	for (size_t k = 0; k < tp.n; k++) {
		const struct tpl_piece *pc = &tp.piece[k];
		/* strncmp stops at the end of p: never reads past it */
		if (strncmp(p, pc->lit, pc->litlen) != 0)
			return ZG_ERR_MALFORMED;
		p += pc->litlen;
		for (size_t i = 0; i < pc->nvar; i++) {
			char c = i == 0 ? pc->op : op_sep(pc->op), v[VALUE_MAX + 1];
			int var = pc->var[i], n;

			if (c && *p++ != c)
				return ZG_ERR_MALFORMED;
			if (op_named(pc->op)) {
				size_t nl = strlen(var_name[var]);
				if (strncmp(p, var_name[var], nl) != 0 || p[nl] != '=')
					return ZG_ERR_MALFORMED;
				p += nl + 1;
			}
			if ((n = read_value(&p, v)) < 0)
				return ZG_ERR_MALFORMED;
			if (var == VAR_TARGET) {
				m.any_target = 0;
				r = parse_target(v, (size_t)n, &m);
			} else {
				m.any_proto = 0;
				r = parse_ipproto(v, (size_t)n, &m);
			}
			if (r != 0)
				return ZG_ERR_MALFORMED;
		}
	}
	if (*p != '\0')
		return ZG_ERR_MALFORMED;
	*s = m;
	return 0;
}
