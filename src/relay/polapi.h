/*
 * polapi — the relay fetches its policy from zgate-api (policy_api.*):
 * GET /api/v1/policy every policy_api.poll with If-None-Match, through
 * the relay's non-blocking zgate-api client (apiclient.h).
 *
 * The relay never takes a fetched document straight into memory. A new
 * one (200) is first parsed as the relay would (policy_load_buf); one it
 * refuses is logged as an error naming its version, counted (refused) and
 * kept out: the policy in force stays and nothing is written. One it
 * takes is written over the policy file (the `policy` key: with
 * policy_api on, the relay's cache of the last policy it fetched)
 * atomically: a temporary file in the same directory, fsync, rename,
 * fsync of the directory. Its first line is a comment the relay writes,
 *
 *   # zgate-api policy 4 "4-0123456789abcdef" (written by zgate-relay)
 *
 * followed by the document's bytes exactly, so the file says which
 * version it holds (polapi_cache_meta(): the audit line of its reload,
 * the version gauge, the If-None-Match after a restart). Then the owner's
 * callback runs; the relay reloads the file through its usual path (the
 * single process calls its reload at once; with workers, each worker's
 * watch on the file sees the rename), so audit, flow re-evaluation and
 * route updates are those of any policy reload.
 *
 * 304: nothing. 404 (no active policy): the policy in force stays, one
 * warning until a policy comes. No answer (transport, timeout, 503, any
 * other status): the policy in force stays, one warning per outage and
 * one line when zgate-api answers again. One request at a time: a poll
 * that comes while one is pending is skipped.
 *
 * One thread (the owner's event loop); nothing blocks but the cache write
 * (at most 1 MiB, once per new version).
 */
#ifndef ZG_RELAY_POLAPI_H
#define ZG_RELAY_POLAPI_H

#include <stddef.h>
#include <stdint.h>

#include "relay/apiclient.h"

struct event_base;
struct evdns_base;
struct evbuffer;
struct polapi;
struct policy;

#define POLAPI_PATH "/api/v1/policy"
#define POLAPI_HEADER "# zgate-api policy "

/* Results of a fetch, the label values of
 * zgate_policy_api_fetches_total{result}. */
enum polapi_result {
	POLAPI_CHANGED = 0, /* 200, taken and written */
	POLAPI_UNCHANGED,   /* 304 */
	POLAPI_ERROR,       /* no answer, 404, another status, the write failed */
	POLAPI_REFUSED,     /* 200 the relay's parser refused */
	POLAPI_NRESULTS
};

struct polapi_config {
	struct apic_config api; /* url, ca, cert, key, relay_id, timeout_ms */
	uint32_t poll_ms;       /* between two fetches (from the end of one); >= 1 */
	const char *cache;      /* the policy file written */
};

/* Called after a new version was written to the cache, from the event
 * loop: version is its id (0 when zgate-api named none). */
typedef void (*polapi_fn)(void *arg, uint64_t version);

/* Makes the client (apic_new(): its errors, naming policy_api.* keys)
 * and reads the cache's first line for the version in force. Nothing is
 * asked before polapi_start(). Returns 0 and *pp, or an error with err. */
int polapi_new(struct event_base *base, struct evdns_base *evdns, const struct polapi_config *cfg,
	       polapi_fn fn, void *arg, struct polapi **pp, char *err, size_t errlen);

/* polapi_new() from the relay's configuration: policy_api.url, its
 * files (config_policy_api_files), relay_id, policy_api.poll/timeout and
 * the policy file as the cache. */
struct relay_config;
int polapi_from_config(const struct relay_config *cfg, struct event_base *base,
		       struct evdns_base *dns, polapi_fn fn, void *arg, struct polapi **pp,
		       char *err, size_t errlen);

/* The first fetch at once, then one every poll_ms after each ends. */
int polapi_start(struct polapi *p);

/* 1 once a policy from zgate-api is in force: a cache that loads at start,
 * or a version written since; 0 while the relay runs deny-all waiting for
 * the first (its /ready then says so, ops_set_ready_gate()). */
int polapi_has_policy(const struct polapi *p);

/* Stops (a pending request is dropped) and frees p. NULL is fine. */
void polapi_del(struct polapi *p);

/* Fetches by result (POLAPI_NRESULTS values) and the version in force
 * according to the cache (0: none fetched yet). */
void polapi_counts(const struct polapi *p, uint64_t out[POLAPI_NRESULTS]);
uint64_t polapi_version(const struct polapi *p);

/* The cache's first line: 0 with the version (0 if the line names none)
 * and the ETag (etaglen >= APIC_ETAG_MAX) when path starts with
 * POLAPI_HEADER; ZG_ERR_NOTFOUND when it does not (a policy file written
 * by hand); ZG_ERR_IO when it cannot be read (errno kept). */
int polapi_cache_meta(const char *path, uint64_t *pversion, char *etag, size_t etaglen);

/* The policy a relay with policy_api on and no cache yet starts with:
 * deny everything (default_action deny, no clients). Returns 0 or
 * ZG_ERR_NOMEM. */
int polapi_deny_all(struct policy **pp);

/* Writes header line and text[0..len) over path atomically (temporary
 * file in its directory, fsync, rename, fsync of the directory). Returns
 * 0 or ZG_ERR_IO with err naming the file. */
int polapi_write_cache(const char *path, const char *header, const char *text, size_t len,
		       char *err, size_t errlen);

#endif /* ZG_RELAY_POLAPI_H */
