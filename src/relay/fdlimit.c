#include "relay/fdlimit.h"

#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

#include "log.h"
#include "relay/config.h"
#include "relay/ops.h"
#include "zg_err.h"

static uint64_t lim(rlim_t v)
{
	return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t)v;
}

int fdlimit_raise(uint64_t *pcur, uint64_t *pmax)
{
	struct rlimit rl;

	*pcur = *pmax = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return ZG_ERR_IO;
	*pcur = lim(rl.rlim_cur);
	*pmax = lim(rl.rlim_max);
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return ZG_ERR_IO; /* e.g. a hard limit above fs.nr_open */
	*pcur = *pmax;
	return 0;
}

static const char advice[] = "raise the descriptor limit (ulimit -n, systemd LimitNOFILE=, "
			     "docker run --ulimit nofile=N) or lower";

int fdlimit_check(const struct fdlimit_need *need, uint64_t nofile, uint32_t *pflows,
		  char *err, size_t errlen)
{
	uint64_t fixed = FDLIMIT_BASE + OPS_FDS((uint64_t)need->ops_max_conns);
	uint64_t room = nofile > fixed ? nofile - fixed : 0;

	if (need->flows_per_client > room) {
		zg_seterr(err, errlen,
			  "limits.flows_per_client (%u) + ops.max_connections (%u) + %llu for the relay "
			  "itself need %llu descriptors, but RLIMIT_NOFILE is %llu: %s them",
			  need->flows_per_client, need->ops_max_conns,
			  (unsigned long long)(fixed - need->ops_max_conns),
			  (unsigned long long)(fixed + need->flows_per_client),
			  (unsigned long long)nofile, advice);
		return ZG_ERR_CONFIG;
	}
	if (need->flows <= room) {
		*pflows = need->flows;
		return 0;
	}
	if (!need->flows_is_default && need->workers > 1) {
		zg_seterr(err, errlen,
			  "limits.flows (%u, %u in each of %u workers) + ops.max_connections (%u) + "
			  "%llu for the relay itself need %llu descriptors in a worker, but "
			  "RLIMIT_NOFILE is %llu: %s limits.flows to %llu at most",
			  need->all_flows, need->flows, need->workers, need->ops_max_conns,
			  (unsigned long long)(fixed - need->ops_max_conns),
			  (unsigned long long)(fixed + need->flows), (unsigned long long)nofile, advice,
			  (unsigned long long)(room * need->workers));
		return ZG_ERR_CONFIG;
	}
	if (!need->flows_is_default) {
		zg_seterr(err, errlen,
			  "limits.flows (%u) + ops.max_connections (%u) + %llu for the relay itself "
			  "need %llu descriptors, but RLIMIT_NOFILE is %llu: %s limits.flows to %llu "
			  "at most",
			  need->flows, need->ops_max_conns,
			  (unsigned long long)(fixed - need->ops_max_conns),
			  (unsigned long long)(fixed + need->flows), (unsigned long long)nofile, advice,
			  (unsigned long long)room);
		return ZG_ERR_CONFIG;
	}
	*pflows = (uint32_t)room;
	return 0;
}

int fdlimit_apply(struct relay_config *cfg, unsigned nworkers, char *err, size_t errlen)
{
	struct relay_config def;
	struct fdlimit_need need;
	uint64_t cur, max;
	uint32_t flows;

	if (fdlimit_raise(&cur, &max) != 0)
		log_warn("cannot raise the descriptor limit from %llu to %llu",
			 (unsigned long long)cur, (unsigned long long)max);
	log_info("descriptor limit (RLIMIT_NOFILE): %llu, hard %llu", (unsigned long long)cur,
		 (unsigned long long)max);
	config_defaults(&def);
	if (nworkers < 1)
		nworkers = 1;
	need.flows = (uint32_t)(((uint64_t)cfg->max_flows + nworkers - 1) / nworkers);
	need.workers = nworkers;
	need.all_flows = cfg->max_flows;
	need.flows_per_client = cfg->max_flows_per_client;
	need.ops_max_conns = cfg->ops_max_conns;
	need.flows_is_default = cfg->max_flows == def.max_flows;
	if (fdlimit_check(&need, cur, &flows, err, errlen) != 0)
		return ZG_ERR_CONFIG;
	if (flows != need.flows) {
		uint64_t all = (uint64_t)flows * nworkers;

		flows = all < cfg->max_flows ? (uint32_t)all : cfg->max_flows;
		log_info("limits.flows: %u, not the default %u: the descriptor limit allows no more%s",
			 flows, cfg->max_flows, nworkers > 1 ? " (in each worker, its share)" : "");
		cfg->max_flows = flows;
	}
	return 0;
}
