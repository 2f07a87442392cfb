#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "zg_err.h"

static enum log_level cur_level = LOG_LVL_INFO;

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

void log_emit(enum log_level lvl, const char *func, int with_errno,
	      const char *fmt, ...)
{
	static const char *const tags[] = { "error", "warn", "info", "debug" };
	int saved = errno;
	char msg[1024];
	char ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (lvl > cur_level)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap); /* truncation is acceptable */
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	if (with_errno)
		fprintf(stderr, "%s.%03ldZ %s %s: %s: %s\n", ts,
			now.tv_nsec / 1000000L, tags[lvl], func, msg,
			strerror(saved));
	else
		fprintf(stderr, "%s.%03ldZ %s %s: %s\n", ts,
			now.tv_nsec / 1000000L, tags[lvl], func, msg);
	errno = saved;
}
