/*
 * deadline.h — an absolute time ms milliseconds from now on clock clk, for
 * pthread_cond_timedwait() (whose condition variable must use that clock).
 */
#ifndef ZG_DEADLINE_H
#define ZG_DEADLINE_H

#include <stdint.h>
#include <time.h>

static inline void deadline_after_ms(clockid_t clk, uint64_t ms, struct timespec *ts)
{
	clock_gettime(clk, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

#endif /* ZG_DEADLINE_H */
