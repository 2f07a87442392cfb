/*
 * opt.h — what the option tables of zgate-relay, zgate-agent,
 * zgate-connector and zgate-api share: one option name in its three
 * spellings, durations and booleans as written in files, variables and
 * flags, the --help entry, and the engine that applies a table (struct
 * opt_table) of options to a configuration struct from defaults, ZGATE_*
 * variables and flags. yamlcfg.h applies the same table from a YAML file.
 * Each table (its keys, ranges, defaults and the program's own value
 * types) stays with its program; the rules and messages a user sees are
 * the same in all of them.
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

/* What a command line asks for besides running (yamlcfg_args()); each
 * program's own action names take these values. */
enum opt_action {
	OPT_ACT_RUN = 0,
	OPT_ACT_HELP,        /* --help or -h, anywhere */
	OPT_ACT_VERSION,     /* --version (and no --help) */
	OPT_ACT_CHECK_CONFIG /* --check-config */
};

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

/* What an option's text becomes (struct opt_spec.type). */
enum opt_type {
	OPT_T_STR,     /* the text, in char[size] */
	OPT_T_U32,     /* a whole number in [min, max]; uint32_t, or uint16_t when size is 2 */
	OPT_T_DUR,     /* a duration in [min, max] ms, uint32_t; a bad one is "not a duration
			* from MINms to MAXms (...)" */
	OPT_T_DUR_MIN, /* the same, but the message names only the floor: "not a duration of
			* at least MINms (...)" (the relay's wording) */
	OPT_T_BOOL,    /* opt_parse_bool(), int 0/1; a bare flag is true */
	OPT_T_LEVEL,   /* a log level name (log_level_parse()), in char[size] */
	OPT_T_FORMAT,  /* a log format name (log_format_parse()), in char[size] */
	OPT_T_CUSTOM   /* the program's own: set() parses and stores */
};

struct opt_spec;

/* Parses text for o into the configuration cfg (the field at o->off).
 * where names the source for messages ("FILE:LINE:COL: key", "ZGATE_X",
 * "--x"); err may be NULL. Returns 0 or ZG_ERR_CONFIG with err set. */
typedef int (*opt_set_fn)(void *cfg, const struct opt_spec *o, const char *text,
			  const char *where, char *err, size_t errlen);

/* One option of a program's table. */
struct opt_spec {
	const char *key; /* file key, "tls.cert" (a dot nests a YAML section); the
			    * flag and the variable derive from it (opt_name()) */
	enum opt_type type;
	size_t off, size;  /* the field in the configuration struct */
	uint64_t min, max; /* OPT_T_U32 and OPT_T_DUR* */
	const char *def;   /* the default as text, parsed by opt_defaults(); "" = none */
	const char *help;  /* --help text, without the final period */
	const char *meta;  /* what --help shows as the value; NULL = by type */
	opt_set_fn set;    /* OPT_T_CUSTOM */
	unsigned arg;      /* for set() (the relay: a pool's IP version) */
	int list;          /* a YAML sequence is accepted too (yamlcfg_opts_mapping()) */
};

/* Where an option's value came from, kept so that a check across options
 * (keepalive shorter than idle_timeout) can name where each was set. */
enum opt_src {
	OPT_SRC_DEFAULT = 0, /* the table's default (or never set) */
	OPT_SRC_FILE,        /* the configuration file, at a line */
	OPT_SRC_ENV,         /* a ZGATE_* variable */
	OPT_SRC_FLAG         /* a --flag */
};

/* Options of a table whose origins are kept (OPT_TABLE_FITS checks it at
 * compile time), and the room for the file's name. */
#define OPT_FROM_MAX 128
#define OPT_FROM_FILE_MAX 4096

/* The origins of a configuration's options: a member of the program's
 * configuration struct, fixed in size (nothing allocated). Zeroed, every
 * option is OPT_SRC_DEFAULT. One file per configuration: a second file
 * loaded with another name renames the lines of the first. */
struct opt_from {
	char file[OPT_FROM_FILE_MAX]; /* the file OPT_SRC_FILE values came from */
	uint32_t line[OPT_FROM_MAX];  /* OPT_SRC_FILE: the line of the key */
	uint8_t src[OPT_FROM_MAX];    /* enum opt_src, by index in the table */
};

struct opt_table {
	const struct opt_spec *v;
	size_t n;
	int has_from;    /* 1: cfg keeps the options' origins in a struct opt_from */
	size_t from_off; /* ...at this offset */
};

/* A table whose configuration struct type keeps its origins in member, a
 * struct opt_from. opts is the array of struct opt_spec. */
#define OPT_TABLE_FROM(opts, type, member)                                          \
	{                                                                           \
		(opts), sizeof(opts) / sizeof((opts)[0]), 1, offsetof(type, member) \
	}
/* Put beside such a table: it must not outgrow struct opt_from. */
#define OPT_TABLE_FITS(opts)                                             \
	_Static_assert(sizeof(opts) / sizeof((opts)[0]) <= OPT_FROM_MAX, \
		       "more options than OPT_FROM_MAX: raise it")

/* Notes that o's value in cfg came from src (at line of cfg's file for
 * OPT_SRC_FILE). Nothing when t keeps no origins. opt_defaults(),
 * opt_apply_env(), opt_apply_flag() and yamlcfg_opts_mapping() call it. */
void opt_from_note(const struct opt_table *t, void *cfg, const struct opt_spec *o,
		   enum opt_src src, size_t line);

/* Notes the name of the file whose lines OPT_SRC_FILE origins are (cut
 * to OPT_FROM_FILE_MAX - 1 bytes). Nothing when t keeps no origins. */
void opt_from_file(const struct opt_table *t, void *cfg, const char *file);

/* Where the value of option key in cfg came from, for a message about
 * several options, into out (cut to outlen, terminated). lead = 1, the
 * form that starts a message: "FILE:LINE: key", "ZGATE_KEY", "--key" or
 * "key (default)"; lead = 0, the form for another option named beside it:
 * "FILE:LINE", "ZGATE_KEY", "--key" or "default". A table that keeps no
 * origins, or a key it does not have, gives "key" / "". Returns the
 * source. */
enum opt_src opt_where(const struct opt_table *t, const void *cfg, const char *key, int lead,
		       char *out, size_t outlen);

/* Applies o's default text to cfg (which the caller zeroed), for every
 * option whose default is not "". The defaults are the table's own and
 * tested to parse; a bad one is left zero. Every option's origin becomes
 * OPT_SRC_DEFAULT. */
void opt_defaults(const struct opt_table *t, void *cfg);

/* Parses text for o into cfg as its type says: the checks and the messages
 * ("WHERE: \"TEXT\" is not a whole number from 1 to 9", "...is not a log
 * level (error, warn, info or debug)", "WHERE: value is N bytes long; at
 * most M allowed", ...) are the same for every program. Returns 0 or
 * ZG_ERR_CONFIG with err set (err may be NULL). */
int opt_set(void *cfg, const struct opt_spec *o, const char *text, const char *where, char *err,
	    size_t errlen);

/* Copies text into dst[size]; ZG_ERR_CONFIG ("WHERE: value is N bytes
 * long; at most M allowed") when it does not fit. */
int opt_set_text(char *dst, size_t size, const char *text, const char *where, char *err,
		 size_t errlen);

/* The option whose file key is the len bytes at key, or NULL. */
const struct opt_spec *opt_find(const struct opt_table *t, const char *key, size_t len);

/* 1 when key ("a.b") is a section of t: some option's key starts "a.b.". */
int opt_is_section(const struct opt_table *t, const char *key);

/* Writes the keys that may stand in section ("" = the top level) to out,
 * each once, in table order, separated by ", " (cut to outlen). */
void opt_keys_under(const struct opt_table *t, const char *section, char *out, size_t outlen);

/* Applies every ZGATE_* variable of envp (NULL-terminated "K=V") to cfg.
 * ZGATE_CONFIG (the file's path) is skipped; any other ZGATE_* variable
 * that names no option is an error ("environment: ZGATE_X names no option
 * (see --help)"). Returns 0 or ZG_ERR_CONFIG with err set. An option set
 * is noted as from OPT_SRC_ENV. */
int opt_apply_env(const struct opt_table *t, void *cfg, char *const *envp, char *err,
		  size_t errlen);

/* Applies one flag (name without "--") and its value, noted as from
 * OPT_SRC_FLAG. Returns 0, ZG_ERR_NOTFOUND ("unknown option --x (see
 * --help)") or ZG_ERR_CONFIG. */
int opt_apply_flag(const struct opt_table *t, void *cfg, const char *flag, const char *value,
		   char *err, size_t errlen);

/* opt_next()'s kind callback for a program with table ctx (a const struct
 * opt_table *): --config takes a value, --check-config none, a boolean
 * option is OPT_ARG_BOOL, every other option OPT_ARG_VALUE. */
enum opt_arg opt_table_kind(const char *flag, void *ctx);

/* Writes the --help entries of every option of t (opt_usage_entry(); the
 * value is o->meta or named by type) to buf, NUL-terminated and cut to
 * buflen. Returns the length needed. */
size_t opt_usage(const struct opt_table *t, char *buf, size_t buflen);

#endif /* ZG_OPT_H */
