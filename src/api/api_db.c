#include "api/api_db.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "fnv.h"
#include "log.h"
#include "zg_err.h"

struct api_migration {
	int version;
	const char *name;
	const char *sql;
};
#include "api_migrations.h" /* generated: scripts/embed-migrations.sh */

#define N_MIGRATIONS (sizeof(api_migrations) / sizeof(api_migrations[0]))
/* pg_advisory_lock key for migrations: "zgate" in ASCII. */
#define MIGRATE_LOCK "495925703781"

struct slot {
	PGconn *conn;
	int busy;
	unsigned prepared; /* bit i: stmts[i] prepared on conn */
};

struct api_db {
	char *conninfo;
	uint32_t timeout_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned n;
	struct slot *slots;
	uint64_t retries, db_errors; /* atomics */
	int down_logged;             /* under mu: "unreachable" logged once */
};

int api_db_new(const char *conninfo, unsigned n, uint32_t timeout_ms, struct api_db **pdb)
{
	struct api_db *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return ZG_ERR_NOMEM;
	db->conninfo = strdup(conninfo);
	db->slots = calloc(n, sizeof(*db->slots));
	if (db->conninfo == NULL || db->slots == NULL) {
		free(db->conninfo);
		free(db->slots);
		free(db);
		return ZG_ERR_NOMEM;
	}
	db->n = n;
	db->timeout_ms = timeout_ms;
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->cv, NULL);
	*pdb = db;
	return 0;
}

void api_db_free(struct api_db *db)
{
	if (db == NULL)
		return;
	for (unsigned i = 0; i < db->n; i++)
		if (db->slots[i].conn != NULL)
			PQfinish(db->slots[i].conn);
	pthread_cond_destroy(&db->cv);
	pthread_mutex_destroy(&db->mu);
	free(db->slots);
	free(db->conninfo);
	free(db);
}

void api_db_counters(struct api_db *db, struct api_db_counters *out)
{
	out->retries = __atomic_load_n(&db->retries, __ATOMIC_RELAXED);
	out->db_errors = __atomic_load_n(&db->db_errors, __ATOMIC_RELAXED);
}

/* libpq prints server notices to stderr; they go to the debug log. */
static void on_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("database notice: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* Opens a connection with the timeouts; NULL with err set on failure. */
static PGconn *connect_db(struct api_db *db, char *err, size_t errlen)
{
	char ct[16], st[128];
	/* connect_timeout first: a value in the user's string wins over it. */
	const char *keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *vals[] = { ct, "zgate-api", db->conninfo, NULL };
	PGconn *c;
	PGresult *res;

	(void)snprintf(ct, sizeof(ct), "%u", (db->timeout_ms + 999) / 1000 < 2 ? 2 : (db->timeout_ms + 999) / 1000);
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		zg_seterr(err, errlen, "cannot connect to the database: %s",
			  c ? PQerrorMessage(c) : "out of memory");
		if (c)
			PQfinish(c);
		return NULL;
	}
	(void)PQsetNoticeProcessor(c, on_notice, NULL);
	/* Notices ("already exists, skipping") are not for the operator. */
	(void)snprintf(st, sizeof(st), "SET statement_timeout = %u; SET client_min_messages = warning; "
				       "SET client_encoding = 'UTF8'",
		       db->timeout_ms);
	res = PQexec(c, st);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		zg_seterr(err, errlen, "database: %s", PQerrorMessage(c));
		PQclear(res);
		PQfinish(c);
		return NULL;
	}
	PQclear(res);
	return c;
}

/* Takes a free connection, connecting it if needed. Returns the slot or
 * NULL (none free within the timeout, or the database unreachable). */
static struct slot *acquire(struct api_db *db, char *err, size_t errlen)
{
	struct timespec until;
	struct slot *s = NULL;

	deadline_after_ms(CLOCK_REALTIME, db->timeout_ms, &until);
	pthread_mutex_lock(&db->mu);
	for (;;) {
		for (unsigned i = 0; i < db->n && s == NULL; i++)
			if (!db->slots[i].busy)
				s = &db->slots[i];
		if (s != NULL || pthread_cond_timedwait(&db->cv, &db->mu, &until) == ETIMEDOUT)
			break;
	}
	if (s != NULL)
		s->busy = 1;
	pthread_mutex_unlock(&db->mu);
	if (s == NULL) {
		zg_seterr(err, errlen, "no database connection free within %ums", db->timeout_ms);
		return NULL;
	}
	if (s->conn != NULL && PQstatus(s->conn) != CONNECTION_OK) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	if (s->conn == NULL)
		s->prepared = 0;
	if (s->conn == NULL && (s->conn = connect_db(db, err, errlen)) == NULL) {
		pthread_mutex_lock(&db->mu);
		s->busy = 0;
		if (!db->down_logged++)
			log_warnx("%s", err);
		pthread_cond_signal(&db->cv);
		pthread_mutex_unlock(&db->mu);
		return NULL;
	}
	pthread_mutex_lock(&db->mu);
	if (db->down_logged) {
		log_info("database reachable again");
		db->down_logged = 0;
	}
	pthread_mutex_unlock(&db->mu);
	return s;
}

static void release(struct api_db *db, struct slot *s)
{
	/* A connection left inside a transaction (an error path) is reset. */
	if (s->conn != NULL && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		PQfinish(s->conn);
		s->conn = NULL;
		s->prepared = 0;
	}
	pthread_mutex_lock(&db->mu);
	s->busy = 0;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
}

/* After a failure: when the connection itself broke (the server
 * restarted since it was opened), opens a new one and returns 1 so that
 * the caller tries once more; else 0. */
static int reconnected(struct api_db *db, struct slot *s)
{
	char err[256];

	PGresult *res;
	int alive;

	if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK) {
		/* libpq does not always mark a connection the server closed as
		 * bad (a failed write): ask. */
		res = PQexec(s->conn, "SELECT 1");
		alive = PQresultStatus(res) == PGRES_TUPLES_OK;
		PQclear(res);
		if (alive)
			return 0;
	}
	if (s->conn != NULL)
		PQfinish(s->conn);
	s->prepared = 0;
	s->conn = connect_db(db, err, sizeof(err));
	return s->conn != NULL;
}

/* The SQLSTATEs after which a transaction is simply run again. */
static int retryable(const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return st != NULL && (strcmp(st, "23505") == 0 || /* unique_violation */
			      strcmp(st, "40001") == 0 || /* serialization_failure */
			      strcmp(st, "40P01") == 0);  /* deadlock_detected */
}

static PGresult *exec(PGconn *c, const char *sql, int n, const char *const *params)
{
	return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

static int command(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok ? 0 : ZG_ERR_IO;
}

static void db_error(struct api_db *db, PGconn *c, const char *what)
{
	__atomic_fetch_add(&db->db_errors, 1, __ATOMIC_RELAXED);
	log_warnx("database: %s: %s", what, PQerrorMessage(c));
}

int api_db_migrate(struct api_db *db, char *log, size_t loglen, char *err, size_t errlen)
{
	struct slot *s = acquire(db, err, errlen);
	PGresult *res = NULL;
	size_t at = 0;
	int r = 0, have = 0, applied = 0;

	if (log && loglen)
		log[0] = '\0';
	if (s == NULL)
		return ZG_ERR_IO;
	res = PQexec(s->conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		goto sqlfail;
	PQclear(res);
	res = PQexec(s->conn, "CREATE TABLE IF NOT EXISTS zgate_schema_migrations ("
			      "version integer PRIMARY KEY, name text NOT NULL, "
			      "applied_at timestamptz NOT NULL DEFAULT now())");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		goto sqlfail;
	PQclear(res);
	res = PQexec(s->conn, "SELECT coalesce(max(version), 0) FROM zgate_schema_migrations");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		goto sqlfail;
	have = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	res = NULL;
	for (size_t i = 0; i < N_MIGRATIONS; i++) {
		const struct api_migration *m = &api_migrations[i];
		char ver[16];
		const char *p[2] = { ver, m->name };
		int w;

		if (m->version <= have)
			continue;
		(void)snprintf(ver, sizeof(ver), "%d", m->version);
		if (command(s->conn, "BEGIN") != 0)
			goto migfail;
		res = PQexec(s->conn, m->sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			goto migfail;
		PQclear(res);
		res = exec(s->conn, "INSERT INTO zgate_schema_migrations (version, name) VALUES ($1, $2)",
			   2, p);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			goto migfail;
		PQclear(res);
		res = NULL;
		if (command(s->conn, "COMMIT") != 0)
			goto migfail;
		applied++;
		have = m->version;
		w = snprintf(log ? log + at : NULL, log && at < loglen ? loglen - at : 0,
			     "applied migration %04d_%s\n", m->version, m->name);
		at += w > 0 ? (size_t)w : 0;
		continue;
migfail:
		zg_seterr(err, errlen, "migration %04d_%s failed: %s", m->version, m->name,
			  PQerrorMessage(s->conn));
		PQclear(res);
		res = NULL;
		(void)command(s->conn, "ROLLBACK");
		r = ZG_ERR_IO;
		break;
	}
	if (r == 0) {
		int known = N_MIGRATIONS ? api_migrations[N_MIGRATIONS - 1].version : 0;
		int w = snprintf(log ? log + at : NULL, log && at < loglen ? loglen - at : 0,
				 "schema at version %d (%d applied now)\n", have, applied);

		(void)w;
		if (have > known)
			log_warnx("the database's schema (version %d) is newer than this zgate-api "
				  "knows (%d); running anyway, migrations only add",
				  have, known);
	}
	(void)command(s->conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
	release(db, s);
	return r;
sqlfail:
	zg_seterr(err, errlen, "migrations: %s", PQerrorMessage(s->conn));
	PQclear(res);
	release(db, s);
	return ZG_ERR_IO;
}

static void addr_text(uint32_t host, char *buf, size_t len)
{
	struct in_addr a = { .s_addr = htonl(host) };

	(void)inet_ntop(AF_INET, &a, buf, (socklen_t)len);
}

int api_db_seed_pool(struct api_db *db, const struct api_pool *pool, char *err, size_t errlen)
{
	char first[INET_ADDRSTRLEN], count[16];
	const char *p[2] = { first, count };
	struct slot *s = acquire(db, err, errlen);
	PGresult *res;
	int r = 0;

	if (s == NULL)
		return ZG_ERR_IO;
	addr_text(pool->first, first, sizeof(first));
	(void)snprintf(count, sizeof(count), "%u", pool->last - pool->first + 1);
	res = exec(s->conn,
		   "INSERT INTO ipam_addresses (address) SELECT $1::inet + g "
		   "FROM generate_series(0, $2::bigint - 1) g ON CONFLICT DO NOTHING",
		   2, p);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		zg_seterr(err, errlen, "filling the pool: %s", PQerrorMessage(s->conn));
		r = ZG_ERR_IO;
	}
	PQclear(res);
	release(db, s);
	return r;
}

/* The columns every lease query returns, in this order; LEASE_COLS_IN_POOL
 * adds whether the address lies in the pool $2..$3 (the statement's
 * second and third parameters). */
#define LEASE_COLS                                           \
	"client_id, coalesce(relay_id, ''), host(address), " \
	"extract(epoch FROM created_at)::bigint, extract(epoch FROM last_seen)::bigint"
#define IN_POOL "(address >= $2::inet AND address <= $3::inet)"
#define LEASE_COLS_IN_POOL LEASE_COLS ", " IN_POOL

/* The statements of the IPAM operations, prepared once per connection (on
 * first use: the migrations must have run) and then only executed, so
 * that PostgreSQL parses and plans them once. */
enum stmt {
	ST_ALLOC,
	ST_GET,
	ST_REFRESH,
	ST_RELEASE,
	ST_STATS,
	ST_LIST,
	ST_SWEEP,
	ST_POL_INSERT,
	ST_POL_BY_SHA,
	ST_POL_LIST,
	ST_POL_META,
	ST_POL_GET,
	ST_POL_ACTIVE,
	ST_POL_ACTIVATE,
	ST_POL_ACTIVATIONS,
	ST__N
};

/* A policy version's columns as pol_row() reads them (then whether it is
 * the active one, then the document when asked for). */
#define POL_COLS "id, sha256, size, comment, extract(epoch FROM created)::bigint, created_by"
#define POL_ACTIVE_ID "(SELECT a.policy_id FROM policy_activations a ORDER BY a.id DESC LIMIT 1)"

static const struct {
	const char *name;
	int nparams;
	const char *sql;
} stmts[ST__N] = {
	/* One round trip, its own transaction (autocommit): the steps are in
	 * the function (src/api/migrations/0003_allocate_in_pool.sql). */
	[ST_ALLOC] = { "zg_alloc", 8,
		       "SELECT how, l_client, l_relay, l_address, l_created, l_last_seen FROM "
		       "zgate_ipam_allocate($1, $2, $3::inet, $4::inet, $5::inet, $6::inet, "
		       "$7::bigint, $8::integer)" },
	[ST_GET] = { "zg_get", 3,
		     "SELECT " LEASE_COLS_IN_POOL " FROM ipam_addresses WHERE client_id = $1" },
	/* A lease outside the pool (a former pool's: migration 0003) is
	 * returned unchanged, with in_pool false: not extended, not moved. */
	[ST_REFRESH] = { "zg_refresh", 4,
			 "UPDATE ipam_addresses SET "
			 "last_seen = CASE WHEN " IN_POOL " THEN now() ELSE last_seen END, "
			 "relay_id = CASE WHEN " IN_POOL " THEN coalesce(nullif($4, ''), relay_id) "
			 "ELSE relay_id END WHERE client_id = $1 RETURNING " LEASE_COLS_IN_POOL },
	/* RETURNING shows the new row: read the old one in the same statement. */
	[ST_RELEASE] = { "zg_release", 3,
			 "WITH old AS (SELECT address, client_id AS c, coalesce(relay_id, '') AS r, "
			 "host(address) AS h, extract(epoch FROM created_at)::bigint AS cr, "
			 "extract(epoch FROM last_seen)::bigint AS ls, " IN_POOL " AS p "
			 "FROM ipam_addresses WHERE client_id = $1 FOR UPDATE) "
			 "UPDATE ipam_addresses a SET client_id = NULL, relay_id = NULL, "
			 "created_at = NULL, last_seen = NULL FROM old WHERE a.address = old.address "
			 "RETURNING old.c, old.r, old.h, old.cr, old.ls, old.p" },
	[ST_STATS] = { "zg_stats", 3,
		       "SELECT count(*), count(client_id), count(*) FILTER (WHERE client_id IS NOT "
		       "NULL AND last_seen < now() - make_interval(secs => $3::bigint)) FROM "
		       "ipam_addresses WHERE address >= $1::inet AND address <= $2::inet" },
	/* Keyset paging: client_id's unique index gives the order. */
	[ST_LIST] = { "zg_list", 5,
		      "SELECT " LEASE_COLS_IN_POOL " FROM ipam_addresses WHERE client_id IS NOT NULL "
		      "AND ($1 = '' OR relay_id = $1) AND client_id > $4 ORDER BY client_id "
		      "LIMIT $5::integer" },
	/* Expired leases outside the pool $1..$2: no allocation can reclaim
	 * them (the function searches the pool only) and a client that never
	 * comes back never frees them. At most $4 rows, SKIP LOCKED (replicas
	 * sweeping at once take different rows; a lease being refreshed or
	 * allocated is left to the next sweep), and the outer WHERE checks
	 * the row as locked, so a lease refreshed meanwhile stays. */
	[ST_SWEEP] = { "zg_sweep", 4,
		       "UPDATE ipam_addresses a SET client_id = NULL, relay_id = NULL, "
		       "created_at = NULL, last_seen = NULL FROM (SELECT f.address, f.client_id "
		       "FROM ipam_addresses f WHERE f.client_id IS NOT NULL "
		       "AND (f.address < $1::inet OR f.address > $2::inet) "
		       "AND f.last_seen < now() - make_interval(secs => $3::bigint) "
		       "LIMIT $4::integer FOR UPDATE SKIP LOCKED) old "
		       "WHERE a.address = old.address AND a.client_id IS NOT NULL "
		       "AND a.last_seen < now() - make_interval(secs => $3::bigint) "
		       "RETURNING old.client_id, host(a.address)" },
	/* Policies (migration 0005). An existing sha256 inserts nothing (no
	 * row back): ST_POL_BY_SHA then reads the version that has it. */
	[ST_POL_INSERT] = { "zg_pol_insert", 5,
			    "INSERT INTO policy_versions (document, sha256, size, comment, created_by) "
			    "VALUES ($1, $2, $3::integer, $4, $5) ON CONFLICT (sha256) DO NOTHING "
			    "RETURNING " POL_COLS ", false" },
	[ST_POL_BY_SHA] = { "zg_pol_by_sha", 1,
			    "SELECT " POL_COLS ", id IS NOT DISTINCT FROM " POL_ACTIVE_ID
			    " FROM policy_versions WHERE sha256 = $1" },
	/* Always one row at least: the active id (NULL: none), then the
	 * page's versions (NULL columns on an empty page). */
	[ST_POL_LIST] = { "zg_pol_list", 2,
			  "SELECT act.id, v.* FROM (SELECT " POL_ACTIVE_ID " AS id) act "
			  "LEFT JOIN LATERAL (SELECT " POL_COLS " FROM policy_versions WHERE "
			  "$1::bigint = 0 OR id < $1::bigint ORDER BY id DESC LIMIT $2::integer) v "
			  "ON true ORDER BY v.id DESC" },
	[ST_POL_META] = { "zg_pol_meta", 1,
			  "SELECT " POL_COLS ", id IS NOT DISTINCT FROM " POL_ACTIVE_ID
			  " FROM policy_versions WHERE id = $1::bigint" },
	[ST_POL_GET] = { "zg_pol_get", 1,
			 "SELECT " POL_COLS ", id IS NOT DISTINCT FROM " POL_ACTIVE_ID
			 ", document FROM policy_versions WHERE id = $1::bigint" },
	[ST_POL_ACTIVE] = { "zg_pol_active", 0,
			    "SELECT a.policy_id, v.sha256 FROM policy_activations a JOIN "
			    "policy_versions v ON v.id = a.policy_id ORDER BY a.id DESC LIMIT 1" },
	/* One statement, its own transaction: the function serialises
	 * activations (src/api/migrations/0005_policies.sql). */
	[ST_POL_ACTIVATE] = { "zg_pol_activate", 4,
			      "SELECT status, active FROM zgate_policy_activate($1::bigint, "
			      "$2::boolean, $3::bigint, $4)" },
	[ST_POL_ACTIVATIONS] = { "zg_pol_activations", 1,
				 "SELECT policy_id, extract(epoch FROM at)::bigint, by FROM "
				 "policy_activations ORDER BY id DESC LIMIT $1::integer" },
};
_Static_assert(ST__N <= 8 * sizeof(unsigned), "struct slot's prepared has a bit per statement");

/* Executes statement st on s's connection, preparing it first if this
 * connection has not yet. Returns the result (never NULL-checked by
 * callers: libpq's status functions take NULL as a fatal error). */
static PGresult *run(struct slot *s, enum stmt st, const char *const *p)
{
	if (!(s->prepared & (1u << st))) {
		PGresult *res = PQprepare(s->conn, stmts[st].name, stmts[st].sql, stmts[st].nparams,
					  NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		s->prepared |= 1u << st;
	}
	return PQexecPrepared(s->conn, stmts[st].name, stmts[st].nparams, p, NULL, NULL, 0);
}

/* Reads the lease in columns col..col+4 of res's row, and in_pool from
 * col+5 when the result has it (LEASE_COLS_IN_POOL), else 1. */
static int row_lease_at(const PGresult *res, int row, int col, struct api_lease *out)
{
	memset(out, 0, sizeof(*out));
	(void)snprintf(out->client_id, sizeof(out->client_id), "%s", PQgetvalue(res, row, col));
	(void)snprintf(out->relay_id, sizeof(out->relay_id), "%s", PQgetvalue(res, row, col + 1));
	if (inet_pton(AF_INET, PQgetvalue(res, row, col + 2), &out->address) != 1)
		return ZG_ERR_IO;
	out->created = strtoll(PQgetvalue(res, row, col + 3), NULL, 10);
	out->last_seen = strtoll(PQgetvalue(res, row, col + 4), NULL, 10);
	out->in_pool = PQnfields(res) <= col + 5 || strcmp(PQgetvalue(res, row, col + 5), "t") == 0;
	return 0;
}

/* The pool's first and last address as text, for IN_POOL's $2 and $3. */
struct pool_text {
	char first[INET_ADDRSTRLEN], last[INET_ADDRSTRLEN];
};

static void pool_text(const struct api_pool *pool, struct pool_text *t)
{
	addr_text(pool->first, t->first, sizeof(t->first));
	addr_text(pool->last, t->last, sizeof(t->last));
}

static int row_lease(const PGresult *res, int col, struct api_lease *out)
{
	return row_lease_at(res, 0, col, out);
}

/* FNV-1a of the client id: where its search for a free address starts, so
 * that a client tends to get the same address again on an empty pool. */
static uint32_t id_hash(const char *s)
{
	return fnv32_str(s);
}

/* The function's name for each way (its first column). */
static int parse_how(const char *s, enum api_alloc_how *out)
{
	static const char *const names[API_ALLOC__N] = { "existing", "requested", "new",
							 "reclaimed" };

	for (int i = 0; i < API_ALLOC__N; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum api_alloc_how)i;
			return 0;
		}
	return ZG_ERR_IO;
}

int api_db_allocate(struct api_db *db, const struct api_pool *pool,
		    const struct api_alloc_req *req, const char *relay_id, struct api_lease *out,
		    enum api_alloc_how *phow, uint64_t *pheld)
{
	char err[256], req_a[INET_ADDRSTRLEN], start[INET_ADDRSTRLEN], first[INET_ADDRSTRLEN],
		last[INET_ADDRSTRLEN], ttl[16], quota[16];
	uint32_t size = pool->last - pool->first + 1;
	uint32_t a = ntohl(req->requested.s_addr);
	const char *p[8] = { req->client_id, relay_id, NULL, start, first, last, ttl, quota };
	struct slot *s = acquire(db, err, sizeof(err));
	int r = ZG_ERR_IO, again = 1;

	if (s == NULL)
		return ZG_ERR_IO;
	/* A requested address outside the pool is ignored (NULL). */
	if (req->has_requested && a >= pool->first && a <= pool->last) {
		(void)inet_ntop(AF_INET, &req->requested, req_a, sizeof(req_a));
		p[2] = req_a;
	}
	addr_text(pool->first + id_hash(req->client_id) % size, start, sizeof(start));
	addr_text(pool->first, first, sizeof(first));
	addr_text(pool->last, last, sizeof(last));
	(void)snprintf(ttl, sizeof(ttl), "%u", pool->ttl_s);
	(void)snprintf(quota, sizeof(quota), "%u", pool->max_per_relay);
	for (int attempt = 0; attempt <= API_DB_RETRIES; attempt++) {
		PGresult *res = run(s, ST_ALLOC, p);

		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			if (PQntuples(res) == 0) {
				r = ZG_ERR_LIMIT;
			} else if (strcmp(PQgetvalue(res, 0, 0), "over_quota") == 0) {
				*pheld = strtoull(PQgetvalue(res, 0, 4), NULL, 10);
				r = ZG_ERR_STATE;
			} else if (parse_how(PQgetvalue(res, 0, 0), phow) != 0 ||
				   row_lease(res, 1, out) != 0) {
				r = ZG_ERR_IO;
			} else {
				r = 0;
			}
			if (r == ZG_ERR_IO)
				db_error(db, s->conn, "allocation: unexpected answer");
			PQclear(res);
			break;
		}
		/* Lost a race to another allocation: the statement (its own
		 * transaction) was rolled back; run it again. */
		if (retryable(res) && attempt < API_DB_RETRIES) {
			__atomic_fetch_add(&db->retries, 1, __ATOMIC_RELAXED);
			PQclear(res);
			continue;
		}
		PQclear(res);
		/* The server restarted since this connection was opened. */
		if (again && reconnected(db, s)) {
			again = 0;
			continue;
		}
		db_error(db, s->conn, "allocation");
		r = ZG_ERR_IO;
		break;
	}
	release(db, s);
	return r;
}

/* One statement returning at most one lease: 0, ZG_ERR_NOTFOUND or
 * ZG_ERR_IO. */
static int lease_query(struct api_db *db, enum stmt st, const char *const *p,
		       struct api_lease *out)
{
	char err[256];
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r;

	if (s == NULL)
		return ZG_ERR_IO;
	res = run(s, st, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && reconnected(db, s)) {
		PQclear(res);
		res = run(s, st, p);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error(db, s->conn, "lease");
		r = ZG_ERR_IO;
	} else if (PQntuples(res) == 0) {
		r = ZG_ERR_NOTFOUND;
	} else {
		r = row_lease(res, 0, out);
	}
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_get(struct api_db *db, const struct api_pool *pool, const char *client_id,
	       struct api_lease *out)
{
	struct pool_text t;
	const char *p[3] = { client_id, t.first, t.last };

	pool_text(pool, &t);
	return lease_query(db, ST_GET, p, out);
}

int api_db_refresh(struct api_db *db, const struct api_pool *pool, const char *client_id,
		   const char *relay_id, struct api_lease *out)
{
	struct pool_text t;
	const char *p[4] = { client_id, t.first, t.last, relay_id };
	int r;

	pool_text(pool, &t);
	r = lease_query(db, ST_REFRESH, p, out);
	return r == 0 && !out->in_pool ? ZG_ERR_RANGE : r;
}

int api_db_release(struct api_db *db, const struct api_pool *pool, const char *client_id,
		   struct api_lease *out)
{
	struct pool_text t;
	const char *p[3] = { client_id, t.first, t.last };

	pool_text(pool, &t);
	return lease_query(db, ST_RELEASE, p, out);
}

int api_db_list(struct api_db *db, const struct api_pool *pool, const char *relay_id,
		const char *after, unsigned limit, struct api_lease *out, size_t *pn)
{
	char err[256], lim[16];
	struct pool_text t;
	const char *p[5] = { relay_id, t.first, t.last, after, lim };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = 0;

	*pn = 0;
	if (s == NULL)
		return ZG_ERR_IO;
	(void)snprintf(lim, sizeof(lim), "%u", limit > API_LIST_MAX ? API_LIST_MAX : limit);
	pool_text(pool, &t);
	res = run(s, ST_LIST, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && reconnected(db, s)) {
		PQclear(res);
		res = run(s, ST_LIST, p);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error(db, s->conn, "list");
		r = ZG_ERR_IO;
	} else {
		for (int i = 0; i < PQntuples(res) && (unsigned)i < limit && r == 0; i++)
			if ((r = row_lease_at(res, i, 0, &out[i])) == 0)
				*pn = (size_t)i + 1;
	}
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_sweep(struct api_db *db, const struct api_pool *pool, unsigned limit,
		 struct api_lease *first, size_t *pn)
{
	char err[256], ttl[16], lim[16];
	struct pool_text t;
	const char *p[4] = { t.first, t.last, ttl, lim };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = 0;

	*pn = 0;
	if (s == NULL)
		return ZG_ERR_IO;
	pool_text(pool, &t);
	(void)snprintf(ttl, sizeof(ttl), "%u", pool->ttl_s);
	(void)snprintf(lim, sizeof(lim), "%u", limit);
	res = run(s, ST_SWEEP, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && reconnected(db, s)) {
		PQclear(res);
		res = run(s, ST_SWEEP, p);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error(db, s->conn, "sweep");
		r = ZG_ERR_IO;
	} else {
		*pn = (size_t)PQntuples(res);
		if (*pn > 0 && first != NULL) {
			memset(first, 0, sizeof(*first));
			(void)snprintf(first->client_id, sizeof(first->client_id), "%s",
				       PQgetvalue(res, 0, 0));
			(void)inet_pton(AF_INET, PQgetvalue(res, 0, 1), &first->address);
		}
	}
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_stats(struct api_db *db, const struct api_pool *pool, struct api_stats *out)
{
	char first[INET_ADDRSTRLEN], last[INET_ADDRSTRLEN], ttl[16], err[256];
	const char *p[3] = { first, last, ttl };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = 0;

	if (s == NULL)
		return ZG_ERR_IO;
	addr_text(pool->first, first, sizeof(first));
	addr_text(pool->last, last, sizeof(last));
	(void)snprintf(ttl, sizeof(ttl), "%u", pool->ttl_s);
	res = run(s, ST_STATS, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && reconnected(db, s)) {
		PQclear(res);
		res = run(s, ST_STATS, p);
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		out->size = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		out->allocated = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		out->expired = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
	} else {
		db_error(db, s->conn, "stats");
		r = ZG_ERR_IO;
	}
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_ping(struct api_db *db)
{
	char err[256];
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r;

	if (s == NULL)
		return ZG_ERR_IO;
	res = PQexec(s->conn, "SELECT 1");
	r = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : ZG_ERR_IO;
	PQclear(res);
	if (r != 0 && reconnected(db, s)) {
		res = PQexec(s->conn, "SELECT 1");
		r = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : ZG_ERR_IO;
		PQclear(res);
	}
	release(db, s);
	return r;
}

/* ---------------------------------------------------------------- policies */

/* Runs st on s, once more on a new connection when the one it had broke.
 * Returns the result (TUPLES_OK or not; the caller clears it). */
static PGresult *run_again(struct api_db *db, struct slot *s, enum stmt st, const char *const *p)
{
	PGresult *res = run(s, st, p);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && reconnected(db, s)) {
		PQclear(res);
		res = run(s, st, p);
	}
	return res;
}

/* Runs st, a write, at most once: a connection that broke after the
 * statement was sent may have committed it (only the answer was lost), and
 * running it again would misreport (a create "existing" instead of
 * created, an activation a conflict with itself). So the connection is
 * checked first (SELECT 1, and a new one opened when the server closed
 * it, e.g. after a restart: nothing of the write was sent yet), then the
 * write is sent once; a failure from then on is the caller's ZG_ERR_IO
 * (503 with Retry-After: the client repeats, and both writes are
 * idempotent). Returns the result (NULL with no connection). */
static PGresult *run_once(struct api_db *db, struct slot *s, enum stmt st, const char *const *p)
{
	(void)reconnected(db, s);
	if (s->conn == NULL)
		return NULL;
	return run(s, st, p);
}

static int64_t int_at(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The version in columns col..col+6 of res's row (POL_COLS, then active). */
static void pol_row(const PGresult *res, int row, int col, struct api_policy_meta *out)
{
	memset(out, 0, sizeof(*out));
	out->id = int_at(res, row, col);
	(void)snprintf(out->sha256, sizeof(out->sha256), "%s", PQgetvalue(res, row, col + 1));
	out->size = int_at(res, row, col + 2);
	(void)snprintf(out->comment, sizeof(out->comment), "%s", PQgetvalue(res, row, col + 3));
	out->created = int_at(res, row, col + 4);
	(void)snprintf(out->created_by, sizeof(out->created_by), "%s",
		       PQgetvalue(res, row, col + 5));
	out->active = PQnfields(res) > col + 6 && strcmp(PQgetvalue(res, row, col + 6), "t") == 0;
}

int api_db_policy_create(struct api_db *db, const char *doc, size_t len, const char *sha256,
			 const char *comment, const char *by, struct api_policy_meta *out,
			 int *pcreated)
{
	char err[256], size[24];
	const char *p[5] = { doc, sha256, size, comment, by };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = ZG_ERR_IO;

	*pcreated = 0;
	if (s == NULL)
		return ZG_ERR_IO;
	(void)snprintf(size, sizeof(size), "%zu", len);
	res = run_once(db, s, ST_POL_INSERT, p);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		pol_row(res, 0, 0, out);
		*pcreated = 1;
		r = 0;
	} else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		/* that document exists: committed, since the insert waited for
		 * its transaction, and this statement has a newer snapshot */
		PQclear(res);
		res = run_again(db, s, ST_POL_BY_SHA, p + 1);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
			pol_row(res, 0, 0, out);
			r = 0;
		}
	}
	if (r != 0)
		db_error(db, s->conn, "policy create (not known whether it was stored)");
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_policy_list(struct api_db *db, int64_t before, unsigned limit,
		       struct api_policy_meta *out, size_t *pn, int64_t *pactive)
{
	char err[256], b[24], lim[16];
	const char *p[2] = { b, lim };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = 0;

	*pn = 0;
	*pactive = 0;
	if (s == NULL)
		return ZG_ERR_IO;
	if (limit > API_POLICY_LIST_MAX + 1)
		limit = API_POLICY_LIST_MAX + 1;
	(void)snprintf(b, sizeof(b), "%lld", (long long)before);
	(void)snprintf(lim, sizeof(lim), "%u", limit);
	res = run_again(db, s, ST_POL_LIST, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error(db, s->conn, "policy list");
		r = ZG_ERR_IO;
	} else {
		for (int i = 0; i < PQntuples(res) && (unsigned)i < limit; i++) {
			*pactive = int_at(res, i, 0);
			if (PQgetisnull(res, i, 1))
				continue; /* an empty page */
			pol_row(res, i, 1, &out[*pn]);
			out[*pn].active = out[*pn].id == *pactive;
			(*pn)++;
		}
	}
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_policy_get(struct api_db *db, int64_t id, struct api_policy_meta *out, char **pdoc,
		      size_t *plen)
{
	char err[256], i[24];
	const char *p[1] = { i };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = 0;

	if (pdoc != NULL)
		*pdoc = NULL;
	if (s == NULL)
		return ZG_ERR_IO;
	(void)snprintf(i, sizeof(i), "%lld", (long long)id);
	res = run_again(db, s, pdoc ? ST_POL_GET : ST_POL_META, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error(db, s->conn, "policy get");
		r = ZG_ERR_IO;
	} else if (PQntuples(res) == 0) {
		r = ZG_ERR_NOTFOUND;
	} else {
		pol_row(res, 0, 0, out);
		if (pdoc != NULL) {
			size_t n = (size_t)PQgetlength(res, 0, 7);

			if ((*pdoc = malloc(n + 1)) == NULL) {
				r = ZG_ERR_NOMEM;
			} else {
				memcpy(*pdoc, PQgetvalue(res, 0, 7), n);
				(*pdoc)[n] = '\0';
				*plen = n;
			}
		}
	}
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_policy_active(struct api_db *db, int64_t *pid, char sha256[65])
{
	char err[256];
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = 0;

	*pid = 0;
	sha256[0] = '\0';
	if (s == NULL)
		return ZG_ERR_IO;
	res = run_again(db, s, ST_POL_ACTIVE, NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error(db, s->conn, "active policy");
		r = ZG_ERR_IO;
	} else if (PQntuples(res) == 1) {
		*pid = int_at(res, 0, 0);
		(void)snprintf(sha256, 65, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_policy_activate(struct api_db *db, int64_t id, int check, int64_t expected,
			   const char *by, int64_t *pprev, int *padded)
{
	char err[256], i[24], e[24];
	const char *p[4] = { i, check ? "true" : "false", expected ? e : NULL, by };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	const char *st;
	int r = ZG_ERR_IO;

	*pprev = 0;
	*padded = 0;
	if (s == NULL)
		return ZG_ERR_IO;
	(void)snprintf(i, sizeof(i), "%lld", (long long)id);
	(void)snprintf(e, sizeof(e), "%lld", (long long)expected);
	res = run_once(db, s, ST_POL_ACTIVATE, p);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		st = PQgetvalue(res, 0, 0);
		*pprev = int_at(res, 0, 1);
		if (strcmp(st, "unknown") == 0) {
			r = ZG_ERR_NOTFOUND;
		} else if (strcmp(st, "conflict") == 0 && *pprev != id) {
			r = ZG_ERR_STATE;
		} else if (strcmp(st, "already") == 0 || strcmp(st, "conflict") == 0) {
			/* conflict, but id is the active one: what was asked
			 * holds (a repeat of an activation whose answer was
			 * lost finds its own) */
			r = 0;
		} else if (strcmp(st, "activated") == 0) {
			*padded = 1;
			r = 0;
		}
	}
	if (r == ZG_ERR_IO)
		db_error(db, s->conn, "policy activation (not known whether it took effect)");
	PQclear(res);
	release(db, s);
	return r;
}

int api_db_policy_activations(struct api_db *db, unsigned limit,
			      struct api_policy_activation *out, size_t *pn)
{
	char err[256], lim[16];
	const char *p[1] = { lim };
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res;
	int r = 0;

	*pn = 0;
	if (s == NULL)
		return ZG_ERR_IO;
	if (limit > API_POLICY_ACTIVATIONS_MAX)
		limit = API_POLICY_ACTIVATIONS_MAX;
	(void)snprintf(lim, sizeof(lim), "%u", limit);
	res = run_again(db, s, ST_POL_ACTIVATIONS, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_error(db, s->conn, "policy activations");
		r = ZG_ERR_IO;
	} else {
		for (int k = 0; k < PQntuples(res) && (unsigned)k < limit; k++) {
			memset(&out[k], 0, sizeof(out[k]));
			out[k].policy_id = int_at(res, k, 0);
			out[k].at = int_at(res, k, 1);
			(void)snprintf(out[k].by, sizeof(out[k].by), "%s", PQgetvalue(res, k, 2));
			*pn = (size_t)k + 1;
		}
	}
	PQclear(res);
	release(db, s);
	return r;
}
