#include "api/api_db.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	(void)snprintf(st, sizeof(st), "SET statement_timeout = %u; SET client_min_messages = warning",
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

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += db->timeout_ms / 1000;
	until.tv_nsec += (long)(db->timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
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

/* The columns every lease query returns, in this order. */
#define LEASE_COLS                                           \
	"client_id, coalesce(relay_id, ''), host(address), " \
	"extract(epoch FROM created_at)::bigint, extract(epoch FROM last_seen)::bigint"

static int row_lease(const PGresult *res, struct api_lease *out)
{
	memset(out, 0, sizeof(*out));
	(void)snprintf(out->client_id, sizeof(out->client_id), "%s", PQgetvalue(res, 0, 0));
	(void)snprintf(out->relay_id, sizeof(out->relay_id), "%s", PQgetvalue(res, 0, 1));
	if (inet_pton(AF_INET, PQgetvalue(res, 0, 2), &out->address) != 1)
		return ZG_ERR_IO;
	out->created = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	out->last_seen = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	return 0;
}

/* FNV-1a of the client id: where its search for a free address starts, so
 * that a client tends to get the same address again on an empty pool. */
static uint32_t id_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* One statement of the allocation: 1 when it returned a lease, 0 when it
 * matched nothing, or a negative error; *pres kept for the caller to
 * inspect when retryable. */
static int alloc_step(PGconn *c, const char *sql, int n, const char *const *p,
		      struct api_lease *out, PGresult **pres)
{
	PGresult *res = exec(c, sql, n, p);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*pres = res;
		return ZG_ERR_IO;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	n = row_lease(res, out);
	PQclear(res);
	return n == 0 ? 1 : n;
}

static const char SQL_EXISTING[] =
	"UPDATE ipam_addresses SET relay_id = nullif($2, ''), last_seen = now() "
	"WHERE client_id = $1 RETURNING " LEASE_COLS;
static const char SQL_REQUESTED[] =
	"UPDATE ipam_addresses SET client_id = $1, relay_id = nullif($2, ''), created_at = now(), "
	"last_seen = now() WHERE address = $3::inet AND (client_id IS NULL OR "
	"last_seen < now() - make_interval(secs => $4::bigint)) RETURNING " LEASE_COLS;
static const char SQL_FREE_FROM[] =
	"UPDATE ipam_addresses SET client_id = $1, relay_id = nullif($2, ''), created_at = now(), "
	"last_seen = now() WHERE address = (SELECT address FROM ipam_addresses "
	"WHERE client_id IS NULL AND address >= $3::inet AND address <= $4::inet "
	"ORDER BY address LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " LEASE_COLS;
static const char SQL_RECLAIM[] =
	"UPDATE ipam_addresses SET client_id = $1, relay_id = nullif($2, ''), created_at = now(), "
	"last_seen = now() WHERE address = (SELECT address FROM ipam_addresses "
	"WHERE client_id IS NOT NULL AND last_seen < now() - make_interval(secs => $5::bigint) "
	"AND address >= $3::inet AND address <= $4::inet "
	"ORDER BY last_seen LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING " LEASE_COLS;

/* One try of the allocation transaction. Returns 1 (done), 0 (pool
 * exhausted) or a negative error, with *pres set when a statement failed. */
static int alloc_once(PGconn *c, const struct api_pool *pool, const struct api_alloc_req *req,
		      const char *relay_id, struct api_lease *out, enum api_alloc_how *phow,
		      PGresult **pres)
{
	char req_a[INET_ADDRSTRLEN], start[INET_ADDRSTRLEN], first[INET_ADDRSTRLEN],
		last[INET_ADDRSTRLEN], before[INET_ADDRSTRLEN], ttl[16];
	uint32_t size = pool->last - pool->first + 1;
	uint32_t st = pool->first + id_hash(req->client_id) % size;
	const char *p[5];
	int r;

	(void)snprintf(ttl, sizeof(ttl), "%u", pool->ttl_s);
	p[0] = req->client_id;
	p[1] = relay_id;
	if ((r = alloc_step(c, SQL_EXISTING, 2, p, out, pres)) != 0) {
		*phow = API_ALLOC_EXISTING;
		return r;
	}
	if (req->has_requested) {
		uint32_t a = ntohl(req->requested.s_addr);

		if (a >= pool->first && a <= pool->last) {
			(void)inet_ntop(AF_INET, &req->requested, req_a, sizeof(req_a));
			p[2] = req_a;
			p[3] = ttl;
			if ((r = alloc_step(c, SQL_REQUESTED, 4, p, out, pres)) != 0) {
				*phow = API_ALLOC_REQUESTED;
				return r;
			}
		}
	}
	addr_text(st, start, sizeof(start));
	addr_text(pool->last, last, sizeof(last));
	addr_text(pool->first, first, sizeof(first));
	*phow = API_ALLOC_NEW;
	p[2] = start;
	p[3] = last;
	if ((r = alloc_step(c, SQL_FREE_FROM, 4, p, out, pres)) != 0)
		return r;
	if (st > pool->first) {
		addr_text(st - 1, before, sizeof(before));
		p[2] = first;
		p[3] = before;
		if ((r = alloc_step(c, SQL_FREE_FROM, 4, p, out, pres)) != 0)
			return r;
	}
	*phow = API_ALLOC_RECLAIMED;
	p[2] = first;
	p[3] = last;
	p[4] = ttl;
	return alloc_step(c, SQL_RECLAIM, 5, p, out, pres);
}

int api_db_allocate(struct api_db *db, const struct api_pool *pool,
		    const struct api_alloc_req *req, const char *relay_id, struct api_lease *out,
		    enum api_alloc_how *phow)
{
	char err[256];
	struct slot *s = acquire(db, err, sizeof(err));
	int r = ZG_ERR_IO;

	if (s == NULL)
		return ZG_ERR_IO;
	for (int attempt = 0; attempt <= API_DB_RETRIES; attempt++) {
		PGresult *res = NULL;

		if (command(s->conn, "BEGIN") != 0) {
			if (attempt == 0 && reconnected(db, s))
				continue;
			db_error(db, s->conn, "BEGIN");
			r = ZG_ERR_IO;
			break;
		}
		r = alloc_once(s->conn, pool, req, relay_id, out, phow, &res);
		if (r >= 0) {
			if (command(s->conn, r == 1 ? "COMMIT" : "ROLLBACK") != 0) {
				/* A commit can fail on a serialization conflict too. */
				db_error(db, s->conn, "COMMIT");
				(void)command(s->conn, "ROLLBACK");
				r = ZG_ERR_IO;
				break;
			}
			r = r == 1 ? 0 : ZG_ERR_LIMIT;
			break;
		}
		if (res != NULL && retryable(res) && attempt < API_DB_RETRIES) {
			__atomic_fetch_add(&db->retries, 1, __ATOMIC_RELAXED);
			PQclear(res);
			(void)command(s->conn, "ROLLBACK");
			continue;
		}
		db_error(db, s->conn, "allocation");
		PQclear(res);
		(void)command(s->conn, "ROLLBACK");
		r = ZG_ERR_IO;
		break;
	}
	release(db, s);
	return r;
}

/* One statement returning at most one lease. */
static int lease_query(struct api_db *db, const char *sql, int n, const char *const *p,
		       struct api_lease *out)
{
	char err[256];
	struct slot *s = acquire(db, err, sizeof(err));
	PGresult *res = NULL;
	int r;

	if (s == NULL)
		return ZG_ERR_IO;
	r = alloc_step(s->conn, sql, n, p, out, &res);
	if (r < 0 && reconnected(db, s)) {
		PQclear(res);
		res = NULL;
		r = alloc_step(s->conn, sql, n, p, out, &res);
	}
	if (r < 0) {
		db_error(db, s->conn, "lease");
		PQclear(res);
	}
	release(db, s);
	return r == 1 ? 0 : r == 0 ? ZG_ERR_NOTFOUND
				   : ZG_ERR_IO;
}

int api_db_get(struct api_db *db, const char *client_id, struct api_lease *out)
{
	const char *p[1] = { client_id };

	return lease_query(db, "SELECT " LEASE_COLS " FROM ipam_addresses WHERE client_id = $1",
			   1, p, out);
}

int api_db_refresh(struct api_db *db, const char *client_id, const char *relay_id,
		   struct api_lease *out)
{
	const char *p[2] = { client_id, relay_id };

	return lease_query(db,
			   "UPDATE ipam_addresses SET last_seen = now(), relay_id = "
			   "coalesce(nullif($2, ''), relay_id) WHERE client_id = $1 RETURNING " LEASE_COLS,
			   2, p, out);
}

int api_db_release(struct api_db *db, const char *client_id, struct api_lease *out)
{
	const char *p[1] = { client_id };

	/* RETURNING shows the new row: read the old one in the same statement. */
	return lease_query(db,
			   "WITH old AS (SELECT address, client_id AS c, coalesce(relay_id, '') AS r, "
			   "host(address) AS h, extract(epoch FROM created_at)::bigint AS cr, "
			   "extract(epoch FROM last_seen)::bigint AS ls FROM ipam_addresses "
			   "WHERE client_id = $1 FOR UPDATE) "
			   "UPDATE ipam_addresses a SET client_id = NULL, relay_id = NULL, "
			   "created_at = NULL, last_seen = NULL FROM old WHERE a.address = old.address "
			   "RETURNING old.c, old.r, old.h, old.cr, old.ls",
			   1, p, out);
}

static const char SQL_STATS[] =
	"SELECT count(*), count(client_id), count(*) FILTER (WHERE client_id IS NOT NULL "
	"AND last_seen < now() - make_interval(secs => $3::bigint)) FROM ipam_addresses "
	"WHERE address >= $1::inet AND address <= $2::inet";

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
	res = exec(s->conn, SQL_STATS, 3, p);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && reconnected(db, s)) {
		PQclear(res);
		res = exec(s->conn, SQL_STATS, 3, p);
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
