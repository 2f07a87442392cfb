#include "zg_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *zg_strerror(int err)
{
	static const char *const names[] = {
		"success",
		"invalid argument",
		"out of memory",
		"output buffer too small",
		"input truncated",
		"malformed input",
		"length exceeds limit",
		"value out of range",
		"ranges out of order or overlapping",
		"bad IP version",
		"bad prefix length or host bits set",
		"request ID must be non-zero",
		"empty list",
		"invalid state",
		"I/O error",
		"configuration error",
		"limit reached",
		"not found",
		"timed out",
	};

	if (err > 0 || err <= ZG_ERR_LAST)
		return "unknown error";
	return names[-err];
}

void zg_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
