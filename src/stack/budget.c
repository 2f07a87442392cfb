/*
 * budget.c — the arithmetic behind the stack's descriptor and memory
 * budgets, kept free of lwIP and sockets so that it is tested on its own.
 *
 * Descriptors: every flow holds one host socket. Of the process's
 * descriptor limit (RLIMIT_NOFILE, read when the stack starts) a reserve
 * stays out of the flows' reach for the QUIC socket, the ops port, logs and
 * resolvers; one client may hold at most a share of the rest, so that a
 * single client cannot take every descriptor and starve the others.
 *
 * Memory: a TCP flow pins what its client may send before the destination
 * takes it (the receive window) and what the destination sent before the
 * client acknowledged it (the send queue). Each flow gets a window; the
 * sum of a client's windows is its commitment, held under a per-client
 * budget: a new flow starts with what is left of the budget (at least a
 * floor that keeps it moving), and while a client is over budget its flows'
 * windows shrink toward a fair share as data moves (credit is withheld:
 * the advertised window closes, the sender waits) and grow back once there
 * is room. Near the global cap every window shrinks to the floor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "stack_int.h"

#define FD_RESERVE_MIN 64
#define FD_RESERVE_MAX 1024

void stack_fd_budget(uint64_t nofile, uint32_t reserve, uint32_t client_pct,
		     struct stack_fd_budget *out)
{
	uint64_t flows, per;

	if (nofile > UINT32_MAX)
		nofile = UINT32_MAX; /* RLIM_INFINITY and the like */
	if (reserve == 0) {
		uint64_t r = nofile / 8;

		reserve = (uint32_t)(r < FD_RESERVE_MIN ? FD_RESERVE_MIN : r > FD_RESERVE_MAX ? FD_RESERVE_MAX
											      : r);
	}
	if (client_pct == 0 || client_pct > 100)
		client_pct = 100;
	flows = nofile > reserve ? nofile - reserve : 0;
	per = flows * client_pct / 100;
	if (per == 0 && flows > 0)
		per = 1;
	out->reserve = reserve;
	out->flows = (uint32_t)flows;
	out->per_client = (uint32_t)per;
}

/* The share of the budget one of nflows flows may keep when its client is
 * over budget. */
static uint32_t
fair_share(uint64_t budget, uint32_t nflows, uint32_t full, uint32_t min)
{
	uint64_t s = budget / (nflows ? nflows : 1);

	if (s < min)
		return min;
	return s > full ? full : (uint32_t)s;
}

uint32_t
stack_wnd_initial(uint64_t budget, uint64_t committed, uint32_t full,
		  uint32_t min, int pressure)
{
	uint64_t left;

	if (min > full)
		min = full;
	if (pressure)
		return min;
	if (budget == 0)
		return full; /* no budget */
	left = budget > committed ? budget - committed : 0;
	if (left < min)
		return min;
	return left > full ? full : (uint32_t)left;
}

uint32_t
stack_wnd_grow(uint64_t budget, uint64_t committed, uint32_t nflows,
	       uint32_t wnd, uint32_t moved, uint32_t full, uint32_t min,
	       int pressure)
{
	uint64_t room;
	uint32_t d, step, share;

	if (min > full)
		min = full;
	if (wnd >= full)
		return 0;
	if (budget == 0 && !pressure)
		return full - wnd; /* no budget: back to full at once */
	if (pressure || committed >= budget)
		return 0;
	/* grow by what moved (at least the floor), as far as the budget has
	 * room; past the equal share only while an eighth of the budget is
	 * free, so that windows over it shrink back (credit withheld at the
	 * budget) rather than take turns growing */
	room = budget - committed;
	share = fair_share(budget, nflows, full, min);
	if (wnd >= share && room <= budget / 8)
		return 0;
	if (wnd < share && room <= budget / 8)
		room = share - wnd < room ? share - wnd : room;
	else
		room -= wnd >= share ? budget / 8 : 0;
	d = full - wnd;
	if (d > room)
		d = (uint32_t)room;
	step = moved > min ? moved : min;
	return d > step ? step : d;
}

uint32_t
stack_wnd_credit(uint64_t budget, uint64_t committed, uint32_t nflows,
		 uint32_t *pwnd, uint32_t moved, uint32_t full, uint32_t min,
		 int pressure)
{
	uint32_t wnd = *pwnd, target, d;

	if (min > full)
		min = full;
	/* at the budget, or within an eighth of it for windows past the
	 * equal share: shrink toward the share */
	if (pressure ||
	    (budget != 0 &&
	     (committed >= budget ||
	      (committed >= budget - budget / 8 &&
	       wnd > fair_share(budget, nflows, full, min))))) {
		target = pressure ? min : fair_share(budget, nflows, full, min);
		if (wnd <= target)
			return moved;
		d = wnd - target;
		if (d > moved)
			d = moved;
		*pwnd = wnd - d;
		return moved - d;
	}
	d = stack_wnd_grow(budget, committed, nflows, wnd, moved, full, min,
			   pressure);
	*pwnd = wnd + d;
	return moved + d;
}

uint64_t
stack_memory_default(uint64_t cgroup_limit)
{
	if (cgroup_limit == 0)
		return 1024ull * 1024 * 1024;
	/* the rest is for QUIC connections, sessions and the C library */
	return cgroup_limit / 2;
}

/* Reads one number from path; "max" (v2) and v1's "no limit" (a page
 * count near 2^63) mean no limit. Returns the bytes, 0 when unlimited or
 * unreadable. */
static uint64_t
read_limit(const char *path)
{
	char buf[64];
	unsigned long long v;
	char *end;
	FILE *fp = fopen(path, "re");
	size_t n;

	if (fp == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	if (n == 0 || strncmp(buf, "max", 3) == 0)
		return 0;
	v = strtoull(buf, &end, 10);
	if (end == buf || (*end != '\n' && *end != '\0'))
		return 0;
	if (v >= (1ull << 60))
		return 0;
	return (uint64_t)v;
}

static uint64_t
min_limit(uint64_t a, uint64_t b)
{
	if (a == 0)
		return b;
	return b != 0 && b < a ? b : a;
}

static void
memory_max(const char *path, void *ctx)
{
	uint64_t *v = ctx;

	*v = min_limit(*v, read_limit(path));
}

uint64_t
stack_cgroup_memory_limit(const char *sysfs, const char *self_cgroup)
{
	char path[1024];
	uint64_t v = 0;

	/* v2: the smallest memory.max on the way up (cgroup.h) */
	cgroup_each_file(sysfs, self_cgroup, "memory.max", memory_max, &v);
	if (v != 0)
		return v;
	/* v1 */
	if ((size_t)snprintf(path, sizeof(path), "%s/memory/memory.limit_in_bytes",
			     sysfs) < sizeof(path))
		return read_limit(path);
	return 0;
}
