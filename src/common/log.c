#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "zg_err.h"

static enum log_level cur_level = LOG_LVL_INFO;
static enum log_format cur_format = LOG_FMT_TEXT;
static FILE *out_file; /* NULL: stderr */

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

int log_level_parse(const char *s, enum log_level *plvl)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*plvl = (enum log_level)i;
			return 0;
		}
	}
	return ZG_ERR_INVAL;
}

void log_set_format(enum log_format fmt)
{
	cur_format = fmt;
}

int log_format_parse(const char *s, enum log_format *pfmt)
{
	if (strcmp(s, "text") == 0)
		*pfmt = LOG_FMT_TEXT;
	else if (strcmp(s, "json") == 0)
		*pfmt = LOG_FMT_JSON;
	else
		return ZG_ERR_INVAL;
	return 0;
}

static int worker_tag = -1; /* log_set_worker() */

void log_set_worker(int worker)
{
	worker_tag = worker;
}

void log_set_output(FILE *f)
{
	out_file = f;
}

/* s as the body of a JSON string (RFC 8259) into out (outlen >= 8),
 * NUL-terminated and cut at a character boundary: '"', '\\' and control
 * characters escaped, a byte that is not well-formed UTF-8 as U+FFFD. */
static void json_str(const char *s, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
	size_t o = 0;

	while (p < end) {
		char tmp[8];
		uint32_t cp = 0;
		size_t sl = log_utf8_seq(p, (size_t)(end - p), &cp), tl;

		if (sl == 0) {
			memcpy(tmp, "\\ufffd", 7);
			tl = 6;
			sl = 1;
		} else if (cp == '"' || cp == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)cp;
			tl = 2;
		} else if (cp == '\n' || cp == '\r' || cp == '\t') {
			tmp[0] = '\\';
			tmp[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r'
							       : 't';
			tl = 2;
		} else if (cp < 0x20 || cp == 0x7f) {
			(void)snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned)cp);
			tl = 6;
		} else {
			memcpy(tmp, p, sl);
			tl = sl;
		}
		if (o + tl + 1 > outlen)
			break;
		memcpy(out + o, tmp, tl);
		o += tl;
		p += sl;
	}
	out[o] = '\0';
}

void log_emit(enum log_level lvl, const char *func, int with_errno,
	      const char *fmt, ...)
{
	static const char *const tags[] = { "error", "warn", "info", "debug" };
	int saved = errno;
	FILE *f = out_file != NULL ? out_file : stderr;
	char msg[1024];
	char ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;
	/* The function name is for developers: debug lines only. */
	int show_func = lvl == LOG_LVL_DEBUG && func != NULL;

	if (lvl > cur_level)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap); /* truncation is acceptable */
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	if (cur_format == LOG_FMT_JSON) {
		char jmsg[sizeof(msg) * 6 + 1], jerr[512], jfunc[256];
		char jw[32] = "";

		if (worker_tag >= 0)
			(void)snprintf(jw, sizeof(jw), ",\"worker\":%d", worker_tag);
		json_str(msg, jmsg, sizeof(jmsg));
		json_str(with_errno ? strerror(saved) : "", jerr, sizeof(jerr));
		json_str(show_func ? func : "", jfunc, sizeof(jfunc));
		fprintf(f, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\"%s,\"msg\":\"%s\"%s%s%s%s%s%s}\n",
			ts, now.tv_nsec / 1000000L, tags[lvl], jw, jmsg,
			with_errno ? ",\"error\":\"" : "", jerr, with_errno ? "\"" : "",
			show_func ? ",\"func\":\"" : "", jfunc, show_func ? "\"" : "");
	} else {
		char tw[32] = "";

		if (worker_tag >= 0)
			(void)snprintf(tw, sizeof(tw), "worker %d: ", worker_tag);
		fprintf(f, "%s.%03ldZ %s %s%s%s%s%s%s\n", ts, now.tv_nsec / 1000000L, tags[lvl], tw,
			show_func ? func : "", show_func ? ": " : "", msg, with_errno ? ": " : "",
			with_errno ? strerror(saved) : "");
	}
	fflush(f);
	errno = saved;
}

size_t log_utf8_seq(const unsigned char *p, size_t n, uint32_t *pcp)
{
	uint32_t cp, min;
	size_t len, i;

	if (n == 0)
		return 0;
	if (p[0] < 0x80) {
		*pcp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2, cp = p[0] & 0x1fu, min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3, cp = p[0] & 0x0fu, min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4, cp = p[0] & 0x07u, min = 0x10000;
	} else {
		return 0; /* continuation byte, overlong lead (c0, c1) or f5..ff */
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*pcp = cp;
	return len;
}

/* Code points shown escaped although well-formed: C1 controls, the line
 * and paragraph separators, and the bidirectional embeddings, overrides
 * and isolates (they split or reorder a line on screen). */
static int cp_unsafe(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The escaped form of the character at p into tmp (NUL-terminated);
 * *psl = input bytes it stands for. Returns its length. */
static size_t escape_piece(const unsigned char *p, const unsigned char *end, char tmp[16],
			   size_t *psl)
{
	uint32_t cp = 0;
	size_t sl = log_utf8_seq(p, (size_t)(end - p), &cp);

	if (sl == 0) {
		(void)snprintf(tmp, 16, "\\x%02x", *p);
		sl = 1;
	} else if (cp == '\\') {
		(void)snprintf(tmp, 16, "\\\\");
	} else if (cp == '\n' || cp == '\r' || cp == '\t') {
		(void)snprintf(tmp, 16, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r'
									      : 't');
	} else if (cp < 0x20 || cp == 0x7f) {
		(void)snprintf(tmp, 16, "\\x%02x", (unsigned)cp);
	} else if (cp_unsafe(cp)) {
		(void)snprintf(tmp, 16, "\\u{%04x}", (unsigned)cp);
	} else {
		memcpy(tmp, p, sl);
		tmp[sl] = '\0';
	}
	*psl = sl;
	return strlen(tmp);
}

const char *log_escape_n(const void *s, size_t n, char *buf, size_t buflen)
{
	const unsigned char *p = s, *end;
	size_t o = 0, total = 0, reserve, sl;
	char tmp[16];

	if (buflen == 0)
		return buf;
	buf[0] = '\0';
	if (buflen < 4 || p == NULL)
		return buf;
	end = p + n;
	for (const unsigned char *q = p; q < end && total < buflen; q += sl)
		total += escape_piece(q, end, tmp, &sl);
	/* When it does not all fit, keep room for "..." after the last
	 * whole piece taken. */
	reserve = total + 1 > buflen ? 3 : 0;
	while (p < end) {
		size_t tl = escape_piece(p, end, tmp, &sl);

		if (o + tl + reserve + 1 > buflen) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		memcpy(buf + o, tmp, tl);
		o += tl;
		p += sl;
	}
	buf[o] = '\0';
	return buf;
}

const char *log_escape(const char *s, char *buf, size_t buflen)
{
	return log_escape_n(s, s != NULL ? strlen(s) : 0, buf, buflen);
}
