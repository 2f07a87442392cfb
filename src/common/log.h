/*
 * log.h — operational logging (stderr). Audit events are a separate JSON
 * stream and never go through these macros.
 *
 * log_warn()/log_err() append ": strerror(errno)"; the *x variants do not.
 * Lines are for operators: a timestamp, the level and the message; the
 * calling function's name only at debug level. log_format json writes
 * one JSON object per line instead: {"ts", "level", "msg"} and, where
 * given, "error" (strerror) and "func" (debug).
 * Library code (src/capsule, src/stack) does not log: it returns errors.
 */
#ifndef ZG_LOG_H
#define ZG_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG
};

/* Sets the most verbose level that is printed (default LOG_LVL_INFO). */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info" or "debug". Returns 0, or ZG_ERR_INVAL. */
int log_level_parse(const char *s, enum log_level *plvl);

enum log_format {
	LOG_FMT_TEXT = 0,
	LOG_FMT_JSON
};

/* Sets the line format (default LOG_FMT_TEXT). */
void log_set_format(enum log_format fmt);

/* Parses "text" or "json". Returns 0, or ZG_ERR_INVAL. */
int log_format_parse(const char *s, enum log_format *pfmt);

/* Where lines go: f, or stderr when f is NULL (the default). For tests. */
void log_set_output(FILE *f);

/* In a worker process of the relay (workers: N): every line says which
 * ("worker 1: " before the text; "worker":1 in JSON). -1: none (default). */
void log_set_worker(int worker);

/* Prints one line. with_errno appends ": strerror(errno)" as saved on entry. */
void log_emit(enum log_level lvl, const char *func, int with_errno,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Makes a peer-supplied string (a QUIC or HTTP/3 close reason, a header,
 * a name from a certificate) safe to put in a log line: n bytes of s are
 * copied to buf (buflen >= 4), NUL-terminated, with "\\" as "\\\\", \n \r
 * \t as such, every other C0/C1 control character, DEL, a byte that is not
 * part of well-formed UTF-8, and the Unicode line separators and
 * bidirectional overrides (which reorder or split a line on screen) as
 * \xHH or \u{HHHH}. Well-formed printable UTF-8 is kept. Output that does
 * not fit is cut at a character boundary and ends in "...". Returns buf,
 * so the call can be a printf argument. */
const char *log_escape_n(const void *s, size_t n, char *buf, size_t buflen);

/* log_escape_n() for a NUL-terminated string (NULL gives ""). */
const char *log_escape(const char *s, char *buf, size_t buflen);

/* The length of the well-formed UTF-8 sequence at p (at most n bytes
 * available) and its code point in *pcp: 1 to 4, or 0 when the bytes are
 * not well-formed UTF-8 (overlong, surrogate, above U+10FFFF, truncated). */
size_t log_utf8_seq(const unsigned char *p, size_t n, uint32_t *pcp);

#define log_err(...) log_emit(LOG_LVL_ERROR, __func__, 1, __VA_ARGS__)
#define log_errx(...) log_emit(LOG_LVL_ERROR, __func__, 0, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_LVL_WARN, __func__, 1, __VA_ARGS__)
#define log_warnx(...) log_emit(LOG_LVL_WARN, __func__, 0, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LVL_INFO, __func__, 0, __VA_ARGS__)
#define log_debug(...)                                                     \
	do {                                                               \
		if (log_get_level() >= LOG_LVL_DEBUG)                      \
			log_emit(LOG_LVL_DEBUG, __func__, 0, __VA_ARGS__); \
	} while (0)

#endif /* ZG_LOG_H */
