/*
 * api_db.h — zgate-api's PostgreSQL side: a fixed pool of libpq
 * connections, the embedded schema migrations, and the IPAM operations.
 *
 * Safety of allocation does not depend on this process: the table's
 * constraints (src/api/migrations/0001_ipam.sql) allow one holder per
 * address and one address per client, so several zgate-api replicas can
 * race freely. An allocation is one transaction and one round trip: a
 * call of the function zgate_ipam_allocate (migrations 0002, 0003) in
 * autocommit; when it loses a race (unique violation, serialization
 * failure, deadlock) it is rolled back and run again, up to
 * API_DB_RETRIES times. Every IPAM statement is prepared once per
 * connection, on its first use.
 *
 * Every call may block for up to the pool's timeout (waiting for a free
 * connection) plus the statement timeout: call from worker threads only.
 * All functions are thread-safe.
 */
#ifndef ZG_API_API_DB_H
#define ZG_API_API_DB_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api_json.h"

#define API_DB_RETRIES 10

struct api_db;

/* The IPv4 pool in host order: clients get first..last. */
struct api_pool {
	uint32_t first, last;
	uint32_t ttl_s;         /* lease_ttl in seconds */
	uint32_t max_per_relay; /* max_leases_per_relay; 0 = no quota */
};

struct api_lease {
	char client_id[API_CLIENT_ID_MAX + 1];
	char relay_id[API_RELAY_ID_MAX + 1]; /* "" when none was recorded */
	struct in_addr address;
	int64_t created;   /* Unix seconds */
	int64_t last_seen; /* Unix seconds */
	int in_pool;       /* 1: address in the pool given; 0: a former pool's */
};

/* How an allocation was satisfied (for the answer and /metrics). */
enum api_alloc_how {
	API_ALLOC_EXISTING = 0, /* the client already held it (idempotent) */
	API_ALLOC_REQUESTED,    /* the requested address, which was free */
	API_ALLOC_NEW,          /* a free address */
	API_ALLOC_RECLAIMED,    /* the longest-unused expired lease of another client */
	API_ALLOC__N
};

struct api_db_counters {
	uint64_t retries;   /* transactions run again after losing a race */
	uint64_t db_errors; /* statements that failed otherwise */
};

/* Creates a pool of n connections to conninfo (libpq syntax), connected
 * lazily and again after a failure; a request waits at most timeout_ms
 * for a free one, and a statement runs at most timeout_ms. Returns 0 and
 * *pdb, or ZG_ERR_NOMEM. Does not connect yet. */
int api_db_new(const char *conninfo, unsigned n, uint32_t timeout_ms, struct api_db **pdb);
void api_db_free(struct api_db *db);

/* Applies the embedded migrations the database lacks, in version order,
 * each in its own transaction, under an advisory lock so that replicas
 * starting together apply each one once. Writes one line per migration
 * applied (or "schema at version N") to *log when log is not NULL.
 * Returns 0, or ZG_ERR_IO (database unreachable, a migration failed) with
 * err naming the migration and PostgreSQL's message. */
int api_db_migrate(struct api_db *db, char *log, size_t loglen, char *err, size_t errlen);

/* Inserts the pool's addresses that are not in the table yet (a pool made
 * larger later gains rows; addresses of a former larger pool stay but are
 * never handed out, and a lease on one is replaced at the client's next
 * allocation, migration 0003, or freed once expired, api_db_sweep()). Returns 0 or ZG_ERR_IO with err set. */
int api_db_seed_pool(struct api_db *db, const struct api_pool *pool, char *err, size_t errlen);

/* Allocation for req (relay_id: who asks; "" = none): the client's
 * existing lease (refreshed, relay updated) if it lies in the pool (one
 * outside is freed first); else the requested address
 * if it is in the pool and free or expired; else the first free address
 * from a slot derived from the client id's hash; else the longest-unused
 * expired lease. A new address is given only while relay_id holds fewer
 * than pool->max_per_relay leases that are not expired (when both are set).
 * Returns 0 with *out and *phow, ZG_ERR_LIMIT (pool exhausted),
 * ZG_ERR_STATE (the relay's quota is used up: *pheld the leases it holds),
 * ZG_ERR_IO (database unreachable or failing: 503). */
int api_db_allocate(struct api_db *db, const struct api_pool *pool,
		    const struct api_alloc_req *req, const char *relay_id, struct api_lease *out,
		    enum api_alloc_how *phow, uint64_t *pheld);

#define API_LIST_MAX 1000 /* leases per page of api_db_list() */

/* Up to limit (<= API_LIST_MAX) leases in client id order, of relay_id
 * only unless it is "", with client ids after `after` ("" = from the
 * start), each with in_pool against pool. Returns 0 with out[0..*pn), or
 * ZG_ERR_IO. out has room for limit leases. */
int api_db_list(struct api_db *db, const struct api_pool *pool, const char *relay_id,
		const char *after, unsigned limit, struct api_lease *out, size_t *pn);

/* The lease of client_id, with in_pool against pool (a lease outside it
 * is reported, not changed: the client's next allocation replaces it).
 * Returns 0, ZG_ERR_NOTFOUND or ZG_ERR_IO. */
int api_db_get(struct api_db *db, const struct api_pool *pool, const char *client_id,
	       struct api_lease *out);

/* Marks client_id's lease as used now, and moves it to relay_id when not
 * "", if its address lies in pool. Returns 0 with the lease, ZG_ERR_RANGE
 * with the lease unchanged in *out (in_pool 0: its address is a former
 * pool's, the client must allocate again), ZG_ERR_NOTFOUND or ZG_ERR_IO. */
int api_db_refresh(struct api_db *db, const struct api_pool *pool, const char *client_id,
		   const char *relay_id, struct api_lease *out);

/* Frees client_id's address. Returns 0 with the lease it had (in_pool
 * against pool), ZG_ERR_NOTFOUND or ZG_ERR_IO. */
int api_db_release(struct api_db *db, const struct api_pool *pool, const char *client_id,
		   struct api_lease *out);

/* Frees at most limit leases that have expired (unused for pool->ttl_s)
 * and whose address lies outside pool: a former pool's, made smaller or
 * moved. Those are never reclaimed by an allocation (it searches the pool
 * only) and, if their client never comes back, never freed by it either
 * (migration 0003). Leases being refreshed or allocated at that moment are
 * skipped. Returns 0 with the number freed in *pn (and, when > 0 and first
 * is not NULL, the client id and address of one of them in *first), or
 * ZG_ERR_IO. Safe with any number of replicas sweeping at once, also with
 * replicas of versions that do not sweep. */
int api_db_sweep(struct api_db *db, const struct api_pool *pool, unsigned limit,
		 struct api_lease *first, size_t *pn);

struct api_stats {
	uint64_t size;      /* addresses in the pool */
	uint64_t allocated; /* held by a client */
	uint64_t expired;   /* held, unused for lease_ttl: reclaimable */
};

/* Counts over the pool. Returns 0 or ZG_ERR_IO. */
int api_db_stats(struct api_db *db, const struct api_pool *pool, struct api_stats *out);

/* Whether the database answers (SELECT 1 within the timeout): 0 or
 * ZG_ERR_IO. */
int api_db_ping(struct api_db *db);

/* ---------------------------------------------------------------- policies
 * Immutable versions of the relays' policy YAML and the history of their
 * activations (migration 0005). */

#define API_POLICY_BY_MAX (API_RELAY_ID_MAX + 8) /* "admin:NAME" or "token" */
#define API_POLICY_LIST_MAX 500                  /* versions per page */
#define API_POLICY_ACTIVATIONS_MAX 500           /* activations per page */

struct api_policy_meta {
	int64_t id;
	char sha256[65]; /* hex of the document's bytes */
	int64_t size;    /* bytes */
	char comment[API_POLICY_COMMENT_MAX + 1];
	int64_t created; /* Unix seconds */
	char created_by[API_POLICY_BY_MAX];
	int active; /* the version in force */
};

struct api_policy_activation {
	int64_t policy_id;
	int64_t at; /* Unix seconds */
	char by[API_POLICY_BY_MAX];
};

/* Stores doc (len bytes, NUL-terminated, valid UTF-8 without NUL) as a new
 * version with sha256 (its hex), comment and by, unless a version with
 * that sha256 exists: then that one. Returns 0 with *out and *pcreated (1:
 * a new row), or ZG_ERR_IO. The insert is sent at most once (never
 * repeated on a new connection): after ZG_ERR_IO it may or may not be
 * stored, and calling again tells (the same sha256: *pcreated 0). */
int api_db_policy_create(struct api_db *db, const char *doc, size_t len, const char *sha256,
			 const char *comment, const char *by, struct api_policy_meta *out,
			 int *pcreated);

/* Up to limit (<= API_POLICY_LIST_MAX + 1: one more than a page tells
 * whether there is a next) versions, newest first, with ids below before
 * (0: from the newest); out has room for limit. Returns 0 with out[0..*pn) and
 * *pactive (the active version's id, 0: none), or ZG_ERR_IO. */
int api_db_policy_list(struct api_db *db, int64_t before, unsigned limit,
		       struct api_policy_meta *out, size_t *pn, int64_t *pactive);

/* Version id; with pdoc, also its document (malloc'd, NUL-terminated, its
 * length in *plen). Returns 0, ZG_ERR_NOTFOUND, ZG_ERR_NOMEM or ZG_ERR_IO. */
int api_db_policy_get(struct api_db *db, int64_t id, struct api_policy_meta *out, char **pdoc,
		      size_t *plen);

/* The active version's id and sha256 (*pid 0 and sha256 "" when none).
 * Returns 0 or ZG_ERR_IO. */
int api_db_policy_active(struct api_db *db, int64_t *pid, char sha256[65]);

/* Puts version id in force, recording by, in one statement (the function
 * zgate_policy_activate, migration 0005: serialised over every replica).
 * With check, only if the active version is expected (0: none), or is id
 * itself. Returns 0 with *pprev the version in force before (0: none) and
 * *padded 0 when id was active already (no activation recorded);
 * ZG_ERR_NOTFOUND (no version id); ZG_ERR_STATE (check failed: *pprev
 * the active version, not id); ZG_ERR_IO. The statement is sent at most
 * once (never repeated on a new connection): after ZG_ERR_IO it may or
 * may not have taken effect, and calling again with the same check tells
 * (id active: 0 with *padded 0). */
int api_db_policy_activate(struct api_db *db, int64_t id, int check, int64_t expected,
			   const char *by, int64_t *pprev, int *padded);

/* Up to limit (<= API_POLICY_ACTIVATIONS_MAX) activations, newest first.
 * Returns 0 with out[0..*pn), or ZG_ERR_IO. */
int api_db_policy_activations(struct api_db *db, unsigned limit,
			      struct api_policy_activation *out, size_t *pn);

/* A snapshot of the counters. */
void api_db_counters(struct api_db *db, struct api_db_counters *out);

#endif /* ZG_API_API_DB_H */
