/*
 * log.h — operational logging (stderr). Audit events are a separate JSON
 * stream and never go through these macros.
 *
 * log_warn()/log_err() append ": strerror(errno)"; the *x variants do not.
 * Every line carries the level and the calling function's name.
 * Library code (src/capsule, src/stack) does not log: it returns errors.
 */
#ifndef ZG_LOG_H
#define ZG_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the most verbose level that is printed (default LOG_LVL_INFO). */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info" or "debug". Returns 0, or ZG_ERR_INVAL. */
int log_level_parse(const char *s, enum log_level *plvl);

/* Prints one line. with_errno appends ": strerror(errno)" as saved on entry. */
void log_emit(enum log_level lvl, const char *func, int with_errno,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_err(...)   log_emit(LOG_LVL_ERROR, __func__, 1, __VA_ARGS__)
#define log_errx(...)  log_emit(LOG_LVL_ERROR, __func__, 0, __VA_ARGS__)
#define log_warn(...)  log_emit(LOG_LVL_WARN, __func__, 1, __VA_ARGS__)
#define log_warnx(...) log_emit(LOG_LVL_WARN, __func__, 0, __VA_ARGS__)
#define log_info(...)  log_emit(LOG_LVL_INFO, __func__, 0, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_get_level() >= LOG_LVL_DEBUG)                          \
			log_emit(LOG_LVL_DEBUG, __func__, 0, __VA_ARGS__);     \
	} while (0)

#endif /* ZG_LOG_H */
