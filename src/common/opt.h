/*
 * opt.h — what the relay's and the agent's option tables share: one option
 * name in its three spellings, durations and booleans as written in files,
 * variables and flags, and the --help entry. Each table stays with its
 * program (the relay nests YAML sections, the agent does not); the rules
 * a user sees are the same in both.
 */
#ifndef ZG_OPT_H
#define ZG_OPT_H

#include <stddef.h>
#include <stdint.h>

/* The flag (env = 0) or environment variable (env = 1) for a file key:
 * "timeouts.udp_idle" -> "timeouts-udp-idle" / "ZGATE_TIMEOUTS_UDP_IDLE".
 * out is cut to outlen - 1 characters and always terminated. */
void opt_name(const char *key, int env, char *out, size_t outlen);

/* A duration: a whole number with a unit ms, s, m or h ("250ms", "60s",
 * "2h"), or a bare 0. Stores milliseconds in *pms. Returns 0, or
 * ZG_ERR_CONFIG (no unit, a sign, a fraction, spaces, over 2^32-1 ms). */
int opt_parse_duration(const char *s, uint32_t *pms);

/* A whole number in [min, max], decimal digits only. Returns 0 with *pv,
 * or ZG_ERR_CONFIG. */
int opt_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *pv);

/* 0 when value is set (not empty); else ZG_ERR_CONFIG with err saying the
 * option key is required and naming its flag and variable. */
int opt_require(const char *value, const char *key, char *err, size_t errlen);

/* true/yes/on/1 or false/no/off/0. Returns 0 with *pb, or ZG_ERR_CONFIG. */
int opt_parse_bool(const char *s, int *pb);

/* Appends the --help entry of one option to buf[at..buflen) ("  --flag
 * META", the help text, the file key, the variable and the default when
 * def is not empty) and returns its length, which is counted even when it
 * does not fit (snprintf-style: callers sum the lengths). */
size_t opt_usage_entry(char *buf, size_t buflen, size_t at, const char *key, const char *meta,
		       const char *help, const char *def);

/* The exit statuses of zgate-relay, zgate-agent and zgate-probe. */
enum opt_exit {
	OPT_EXIT_OK = 0,      /* done, or stopped by SIGTERM/SIGINT */
	OPT_EXIT_FAILURE = 1, /* it could not do its job at run time */
	OPT_EXIT_USAGE = 2    /* bad command line or configuration */
};

/* The exit status for an error code: 0 for 0, OPT_EXIT_USAGE for
 * ZG_ERR_CONFIG (command line, file, variable, or a file they name that
 * does not load), OPT_EXIT_FAILURE for anything else. */
int opt_exit_code(int err);

/* The --help paragraph on exit statuses, the same in the three programs. */
#define OPT_HELP_EXIT \
	"Exit status: 0 success, 1 failure at run time, 2 bad usage or configuration.\n"

/* What an option takes on the command line. */
enum opt_arg {
	OPT_ARG_UNKNOWN = 0, /* no such option */
	OPT_ARG_VALUE,       /* --name VALUE or --name=VALUE */
	OPT_ARG_BOOL,        /* --name (true) or --name=BOOL */
	OPT_ARG_NONE         /* --name alone (an action such as --check-config) */
};

/* A walk over argv[1..argc) by opt_next(). kind() tells what an option
 * takes (help and version are known to every program and take nothing;
 * "-h" is "help"). */
struct opt_cmdline {
	int argc;
	char *const *argv;
	int i; /* the next argument; start at 1 */
	enum opt_arg (*kind)(const char *name, void *ctx);
	void *ctx;
	char name[64];     /* out: the option, without "--" */
	const char *value; /* out: its value; "true" for a bare boolean,
			    * NULL for OPT_ARG_NONE */
};

/* Reads the next option of c. Returns 1 with c->name and c->value, 0 at
 * the end, or ZG_ERR_CONFIG with err saying one of: "unknown option --x
 * (see --help)", "unexpected argument \"x\" (see --help)", "--x needs a
 * value (see --help)", "--x takes no value". */
int opt_next(struct opt_cmdline *c, char *err, size_t errlen);

/* A duration as opt_parse_duration(), or a bare whole number taken in
 * units of bare_ms milliseconds (kept for command lines written before
 * units were accepted). bare_ms = 0: a unit is required. */
int opt_parse_duration_bare(const char *s, uint32_t bare_ms, uint32_t *pms);

/* Writes what --version prints for prog into buf (NUL-terminated, cut to
 * buflen): "prog VERSION (commit COMMIT)" and one line per linked library
 * with its version (ngtcp2, nghttp3, wolfSSL, lwIP, libevent), as the
 * libraries report it at run time where they can. Returns the length
 * needed. */
size_t opt_version(const char *prog, char *buf, size_t buflen);

#endif /* ZG_OPT_H */
