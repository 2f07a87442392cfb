/*
 * dnsgate.h — what a client may have resolved (issue 16.8b).
 *
 * A CONNECT-IP request may name its target by DNS name (C03); the relay
 * resolves it with its own resolver, inside the network it protects. So
 * that a client cannot use the relay to probe internal names, a name is
 * resolved only when (checked in this order, before any query):
 *   1. the client's policy allows it some destination at all (main.c);
 *   2. the name is on dns.resolvable, when that list is set: "db.corp"
 *      matches that name only, ".corp" (or "*.corp") every name under it;
 *   3. the client is within dns.resolutions_per_minute (a token bucket
 *      per client, burst of one minute's worth; clients whose IDs hash to
 *      the same one of DNSGATE_BUCKETS buckets share it, which only ever
 *      makes the limit stricter).
 * Names compare case-insensitively, a trailing dot ignored.
 */
#ifndef ZG_RELAY_DNSGATE_H
#define ZG_RELAY_DNSGATE_H

#include <stddef.h>
#include <stdint.h>

#define DNSGATE_BUCKETS 1024
#define DNSGATE_MAX_NAMES 64

struct dnsgate;

/* resolvable: the dns.resolvable list ("" = any name), comma- or
 * space-separated; per_min >= 1. Returns 0 and *pg, ZG_ERR_CONFIG (err
 * names the bad entry) or ZG_ERR_NOMEM. */
int dnsgate_new(const char *resolvable, uint32_t per_min, struct dnsgate **pg, char *err,
		size_t errlen);
/* Puts the rate buckets in memory shared with the processes forked
 * afterwards (the relay's workers, issue 21): a client's resolutions are
 * counted against one bucket whichever worker has its tunnel (a
 * process-shared lock around each take). The refusal counters stay each
 * process's own. Returns 0 or ZG_ERR_NOMEM. */
int dnsgate_share(struct dnsgate *g);
void dnsgate_free(struct dnsgate *g);

/* 1 when name may be resolved (the list is empty or names it), else 0. */
int dnsgate_name_ok(struct dnsgate *g, const char *name);

/* Takes one resolution from client's bucket at now_ms (a monotonic clock).
 * Returns 0, or ZG_ERR_LIMIT when the client is over its rate. */
int dnsgate_take(struct dnsgate *g, const char *client, uint64_t now_ms);

/* Resolutions refused so far: by the list, by the rate. */
void dnsgate_counts(const struct dnsgate *g, uint64_t *pnot_listed, uint64_t *prate);

#endif /* ZG_RELAY_DNSGATE_H */
