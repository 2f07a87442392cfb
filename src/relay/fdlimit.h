/*
 * fdlimit.h — the relay's descriptor limit (issue 16.1): raised to the hard
 * limit at start, and checked against what the configuration may open.
 *
 * Every flow holds one socket, every ops connection one descriptor; the
 * relay itself needs FDLIMIT_BASE more (stdio, the QUIC and ops listeners,
 * the event loop, resolver sockets, the state, policy and CRL files while
 * they are read). A configuration that cannot fit is refused at start with
 * the numbers, rather than failing later with EMFILE under load.
 */
#ifndef ZG_RELAY_FDLIMIT_H
#define ZG_RELAY_FDLIMIT_H

#include <stddef.h>
#include <stdint.h>

#define FDLIMIT_BASE 32u

/* Raises the soft RLIMIT_NOFILE to the hard limit. Returns 0 with the
 * limit now in force in *pcur (the hard one in *pmax; RLIM_INFINITY is
 * reported as UINT64_MAX), or ZG_ERR_IO (errno kept; *pcur is then the
 * unchanged soft limit when it could be read, else 0). */
int fdlimit_raise(uint64_t *pcur, uint64_t *pmax);

/* What the configuration asks for. flows_is_default: limits.flows was not
 * set (it is then lowered to fit instead of refused). */
struct fdlimit_need {
	uint32_t flows, flows_per_client, ops_max_conns;
	int flows_is_default;
	/* workers: flows is one worker's share of limits.flows (its whole
	 * value is all_flows); 0 or 1: a single process, all_flows unused */
	uint32_t workers, all_flows;
};

/* Checks need against nofile descriptors. Returns 0 with the flow limit to
 * use in *pflows (need->flows, or when it is the default and does not fit,
 * what fits), or ZG_ERR_CONFIG with err naming the fields, what they need
 * and what the limit is. */
int fdlimit_check(const struct fdlimit_need *need, uint64_t nofile, uint32_t *pflows,
		  char *err, size_t errlen);

struct relay_config;

/* At start: fdlimit_raise() (logging the limit), then fdlimit_check() of
 * cfg (limits.flows counts as the default when it equals the built-in
 * one), lowering cfg->max_flows when the default does not fit (logged).
 * With nworkers > 1 each worker process has the limit for its share of
 * limits.flows (rounded up): the check is of one share, and a lowered
 * limits.flows is nworkers times what one worker can hold. Returns 0 or
 * ZG_ERR_CONFIG with err set. */
int fdlimit_apply(struct relay_config *cfg, unsigned nworkers, char *err, size_t errlen);

#endif /* ZG_RELAY_FDLIMIT_H */
