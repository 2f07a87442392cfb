/*
 * zgate-api — the control plane's address pool over PostgreSQL. Start-up,
 * signals and wiring only: configuration (api_config.c), the database
 * (api_db.c), HTTPS and the endpoints (server.c).
 *
 *   zgate-api [--config FILE] [options]   migrate, fill the pool, serve
 *   zgate-api migrate [options]           apply the schema migrations, exit
 */
#include <gnutls/gnutls.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "api/api_config.h"
#include "api/api_db.h"
#include "api/server.h"
#include "log.h"
#include "opt.h"
#include "sdnotify.h"
#include "zg_build.h"
#include "zg_err.h"

#ifndef ZG_VERSION
#define ZG_VERSION "unknown"
#endif

extern char **environ;

static void usage(void)
{
	size_t n = api_config_usage(NULL, 0) + 1;
	char *buf = malloc(n);

	printf("Usage: zgate-api [migrate] [--config FILE] [options]\n"
	       "The shared address pool of several zgate-relays, over PostgreSQL (HTTPS, mTLS).\n"
	       "  migrate           apply the database schema migrations and exit\n"
	       "  --config FILE     YAML configuration (also ZGATE_CONFIG)\n"
	       "  --check-config    check the configuration and TLS files, print it, exit\n"
	       "  --help, -h        this help\n"
	       "  --version         version and linked libraries\n"
	       "Options (flag, YAML key, ZGATE_* variable; flag > variable > file > default):\n");
	if (buf != NULL) {
		(void)api_config_usage(buf, n);
		fputs(buf, stdout);
		free(buf);
	}
	fputs(OPT_HELP_EXIT, stdout);
}

static void version(void)
{
	printf("zgate-api %s (commit %s)\n"
	       "libmicrohttpd %s\n"
	       "GnuTLS %s\n"
	       "libpq %d\n"
	       "libyaml %s\n",
	       ZG_VERSION, ZG_COMMIT, MHD_get_version(), gnutls_check_version(NULL),
	       PQlibVersion(), yaml_get_version_string());
}

static void print_config(const struct api_config *c)
{
	printf("listen: %s\ncert: %s\nkey: %s\nca: %s\ncrl: %s\n"
	       "database: (set, %zu bytes; not shown)\n"
	       "admin_token_file: %s\npool: %s\nlease_ttl: %ums\nsweep_interval: %ums\nthreads: %u\n"
	       "db_timeout: %ums\n"
	       "max_leases_per_relay: %u\nmax_connections_per_address: %u\nhead_timeout: %ums\n"
	       "log_level: %s\nlog_format: %s\n",
	       c->listen, c->cert, c->key, c->ca, c->crl[0] ? c->crl : "(none)", strlen(c->database),
	       c->admin_token_file[0] ? c->admin_token_file : "(none)", c->pool, c->lease_ttl_ms,
	       c->sweep_interval_ms, c->threads, c->db_timeout_ms, c->max_leases_per_relay, c->max_conns_per_address, c->head_timeout_ms,
	       c->log_level, c->log_format);
}

int main(int argc, char **argv)
{
	struct api_config cfg;
	enum api_action action;
	struct api_db *db = NULL;
	struct api_server *srv = NULL;
	struct api_pool pool;
	char err[1024], token[256] = "", mlog[2048];
	enum log_level lvl;
	enum log_format fmt;
	sigset_t set;
	int r, sig;

	r = api_config_parse(&cfg, argc, argv, environ, &action, err, sizeof(err));
	if (r != 0) {
		fprintf(stderr, "zgate-api: %s\n", err);
		return opt_exit_code(r);
	}
	if (action == API_HELP) {
		usage();
		return OPT_EXIT_OK;
	}
	if (action == API_VERSION) {
		version();
		return OPT_EXIT_OK;
	}
	(void)log_level_parse(cfg.log_level, &lvl);
	(void)log_format_parse(cfg.log_format, &fmt);
	log_set_level(lvl);
	log_set_format(fmt);
	if (action != API_MIGRATE) {
		if ((r = api_server_check_tls(&cfg, err, sizeof(err))) != 0 ||
		    (cfg.admin_token_file[0] &&
		     (r = api_server_read_token(cfg.admin_token_file, token, sizeof(token), err,
						sizeof(err))) != 0)) {
			fprintf(stderr, "zgate-api: %s\n", err);
			return opt_exit_code(r);
		}
	}
	if (action == API_CHECK_CONFIG) {
		print_config(&cfg);
		printf("configuration OK\n");
		return OPT_EXIT_OK;
	}
	/* Every thread started from here (the server's) inherits the mask;
	 * only the main thread takes the signals, in sigwait(). */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((r = api_db_new(cfg.database, cfg.threads, cfg.db_timeout_ms, &db)) != 0) {
		log_errx("out of memory");
		return OPT_EXIT_FAILURE;
	}
	if ((r = api_db_migrate(db, mlog, sizeof(mlog), err, sizeof(err))) != 0) {
		log_errx("%s", err);
		r = OPT_EXIT_FAILURE;
		goto out;
	}
	if (action == API_MIGRATE) {
		fputs(mlog, stdout);
		r = OPT_EXIT_OK;
		goto out;
	}
	for (char *l = strtok(mlog, "\n"); l != NULL; l = strtok(NULL, "\n"))
		log_info("%s", l);
	pool.first = cfg.pool_first;
	pool.last = cfg.pool_last;
	pool.ttl_s = cfg.lease_ttl_ms / 1000;
	pool.max_per_relay = cfg.max_leases_per_relay;
	if ((r = api_db_seed_pool(db, &pool, err, sizeof(err))) != 0) {
		log_errx("%s", err);
		r = OPT_EXIT_FAILURE;
		goto out;
	}
	if ((r = api_server_start(&cfg, db, token, &srv, err, sizeof(err))) != 0) {
		log_errx("%s", err);
		r = opt_exit_code(r);
		goto out;
	}
	log_info("zgate-api %s listening on %s (pool %s, %u addresses, lease_ttl %us)", ZG_VERSION,
		 cfg.listen, cfg.pool, cfg.pool_last - cfg.pool_first + 1, pool.ttl_s);
	(void)sdnotify_send("READY=1");
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		if (cfg.crl[0] != '\0') {
			if (api_server_reload_crl(srv, err, sizeof(err)) != 0)
				log_warnx("SIGHUP: keeping the CRL in force: %s", err);
		}
		if (cfg.admin_token_file[0] == '\0') {
			log_info("SIGHUP: no admin_token_file to read again");
		} else if (api_server_read_token(cfg.admin_token_file, token, sizeof(token), err,
						 sizeof(err)) != 0) {
			log_warnx("SIGHUP: keeping the old admin token: %s", err);
		} else {
			api_server_set_token(srv, token);
			log_info("SIGHUP: admin token read again");
		}
	}
	log_info("stopping on %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
	(void)sdnotify_send("STOPPING=1");
	api_server_stop(srv);
	r = OPT_EXIT_OK;
out:
	explicit_bzero(token, sizeof(token));
	api_db_free(db);
	return r;
}
