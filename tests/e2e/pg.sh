# tests/e2e/pg.sh — a throwaway PostgreSQL for a scenario (sourced after
# lib.sh). pg_start DIR makes a cluster in DIR with Debian's initdb and
# pg_ctl, run as uid 65534 ("nobody"), reachable only on a Unix socket in
# DIR (no TCP port), fsync off (it is thrown away). It sets PG_CONNINFO (a
# libpq string for database "zgate") and PG_PID, and registers a cleanup
# that kills the postmaster by its PID and waits for it to go; DIR goes
# with $ZG_TMP. pg_stop and pg_restart are for outage tests.

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

pg_start() {
	local dir=$1 bin
	bin=$(pg_bindir)
	[[ -n $bin && -x $bin/initdb ]] || fail "PostgreSQL not installed (make e2e installs the Makefile's TEST_PACKAGES: postgresql)"
	id nobody >/dev/null 2>&1 || fail "no user 'nobody' (uid 65534) to run PostgreSQL as"
	mkdir -p "$dir"
	chmod 0755 "$ZG_TMP"
	chown 65534:65534 "$dir"
	PG_DIR=$dir PG_BIN=$bin
	runuser -u nobody -- "$bin/initdb" -D "$dir/data" -A trust -U zgate --no-sync -E UTF8 \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; fail "initdb failed"; }
	pg_up
	runuser -u nobody -- "$bin/psql" -h "$dir" -U zgate -d postgres -qAt \
		-c "CREATE DATABASE zgate" >/dev/null || fail "CREATE DATABASE failed"
	PG_CONNINFO="host=$dir user=zgate dbname=zgate"
	cleanup 'pg_kill'
}

# Starts the cluster made by pg_start (again) and sets PG_PID.
pg_up() {
	runuser -u nobody -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/pg.log" -w -t 30 \
		-o "-k $PG_DIR -c listen_addresses= -c fsync=off -c max_connections=300" start \
		>/dev/null || { tail -20 "$PG_DIR/pg.log"; fail "pg_ctl start failed"; }
	PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
	[[ $PG_PID =~ ^[0-9]+$ ]] || fail "no postmaster PID"
}

# Stops the postmaster (SIGQUIT: immediate shutdown) and waits for it.
pg_kill() {
	[[ -n ${PG_PID:-} ]] || return 0
	kill -QUIT "$PG_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$PG_PID" 2>/dev/null || true
	PG_PID=
}

# psql as the cluster's owner on database ${PGDB:-zgate}: pg_sql "SELECT ..."
pg_sql() { runuser -u nobody -- "$PG_BIN/psql" -h "$PG_DIR" -U zgate -d "${PGDB:-zgate}" -qAt -c "$1"; }
