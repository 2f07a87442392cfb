/*
 * yamlcfg.h — what the configuration loaders of zgate-relay, zgate-agent
 * zgate-connector and zgate-api share: reading a configuration file, the
 * top level of its one YAML document, and (yamlcfg_opts_mapping()) the
 * mapping of YAML keys to the options of an opt.h table. Each program
 * keeps its own table of keys.
 */
#ifndef ZG_YAMLCFG_H
#define ZG_YAMLCFG_H

#include <stddef.h>
#include <yaml.h>

#include "opt.h"

/* Configuration files are small; a larger one is a mistake. */
#define YAMLCFG_MAX_FILE (1u << 20)

/* Reads all of path (a regular file, a pipe, /dev/stdin) into *pbuf
 * (malloc'd, NUL-terminated; the caller frees it) and its length into
 * *plen. Returns 0; ZG_ERR_IO when path cannot be opened or read (err:
 * "PATH: cannot open: REASON" / "PATH: read error: REASON"); ZG_ERR_CONFIG
 * when it is larger than YAMLCFG_MAX_FILE; ZG_ERR_NOMEM. */
int yamlcfg_read_file(const char *path, char **pbuf, size_t *plen, char *err, size_t errlen);

/* Called with the parser just past the document's top-level
 * MAPPING_START: reads through the matching MAPPING_END. Returns 0 or an
 * error with err set. */
typedef int (*yamlcfg_mapping_fn)(void *ctx, yaml_parser_t *p, const char *name, char *err,
				  size_t errlen);

/* Parses text (len bytes; name, e.g. the file's path, starts every error
 * message, "NAME:LINE:COL: ...") as at most one YAML document whose top
 * level is a mapping, handed to fn; an empty document applies nothing.
 * Returns 0, ZG_ERR_CONFIG (not YAML, several documents, a top level that
 * is not a mapping, or fn's error) or ZG_ERR_NOMEM. */
int yamlcfg_load(const char *name, const char *text, size_t len, yamlcfg_mapping_fn fn, void *ctx,
		 char *err, size_t errlen);

/* What an event is, for messages: "a list", "a mapping", "an alias" or
 * "a value". */
const char *yamlcfg_kind(const yaml_event_t *ev);

/* Called for each item of a YAML sequence (a scalar or not: the callback
 * decides), with ev still owned by the caller. Returns 0 or an error with
 * err set. */
typedef int (*yamlcfg_item_fn)(void *ctx, const yaml_event_t *ev, char *err, size_t errlen);

/* Reads the items of a sequence whose start was read, through its end,
 * handing each to item(); stops at item()'s first error. *pn (may be
 * NULL) is the number of items. A syntax error is "WHERE: not valid YAML:
 * PROBLEM", or, with where NULL, "NAME:LINE:COL: not valid YAML: PROBLEM"
 * at the problem. Returns 0, item()'s error, or ZG_ERR_CONFIG. */
int yamlcfg_list(yaml_parser_t *p, const char *name, const char *where, yamlcfg_item_fn item,
		 void *ctx, size_t *pn, char *err, size_t errlen);

/* A sequence given for option o (one with o->list); its start was read,
 * where is "NAME:LINE:COL: KEY". Reads through its end. */
typedef int (*yamlcfg_list_fn)(void *cfg, const struct opt_spec *o, yaml_parser_t *p,
			       const char *name, const char *where, char *err, size_t errlen);

/* The ctx of yamlcfg_opts_mapping(). */
struct yamlcfg_opts {
	const struct opt_table *t;
	void *cfg;            /* the configuration struct the table describes */
	yamlcfg_list_fn list; /* for options with o->list; NULL: there are none */
};

/* A yamlcfg_mapping_fn (ctx: struct yamlcfg_opts) that applies a mapping
 * of keys to the options of ctx->t with opt_set(). A key with a dot in
 * the table ("tls.cert") is written nested (tls: {cert: ...}), at most 5
 * levels deep. Every message starts "NAME:LINE:COL: KEY: " at the key:
 * "unknown key (expected one of: KEYS)" (the keys of that section),
 * "given twice (first at line N)" (a key, or a section, a second time in
 * the same mapping: YAML would keep the last silently; or an option set
 * twice anywhere in the document, however spelt: tls.cert: at the top
 * and cert: under tls:), "expected a
 * single value, found a list" (or "a mapping of keys" for a section),
 * opt_set()'s and list()'s messages. Each option set is noted as from
 * NAME at its key's line (opt_from_note()). */
int yamlcfg_opts_mapping(void *ctx, yaml_parser_t *p, const char *name, char *err, size_t errlen);

/* yamlcfg_read_file() of path, then yamlcfg_load() of its text with the
 * path as the name in messages. Returns 0 or what they return (ZG_ERR_IO:
 * path cannot be read). */
int yamlcfg_load_file(const char *path, yamlcfg_mapping_fn fn, void *ctx, char *err,
		      size_t errlen);

/* The command line of a program with an option table. */
struct yamlcfg_args {
	struct yamlcfg_opts o; /* the table and the configuration (its defaults set) */
	int first;             /* the index of the first option: 1, or 2 after a command word */
	/* out */
	enum opt_action action;
	const char *file; /* the file loaded (--config, else ZGATE_CONFIG); NULL: none */
};

/* Applies argv[a->first..argc) and envp (may be NULL) over a->o.cfg, the
 * same way in every program: --help/-h or --version anywhere returns
 * 0 at once with a->action set and nothing applied. Otherwise the whole
 * line is checked first (opt_next() with opt_table_kind()); then the file
 * (the last --config, else a non-empty ZGATE_CONFIG; an empty one means
 * none) is loaded, the ZGATE_* variables applied (opt_apply_env()) and
 * the flags last (opt_apply_flag()), so a flag wins over a variable over
 * the file. Returns 0 or ZG_ERR_CONFIG (a file that cannot be read too)
 * or ZG_ERR_NOMEM, with err naming the source. */
int yamlcfg_args(struct yamlcfg_args *a, int argc, char *const *argv, char *const *envp,
		 char *err, size_t errlen);

#endif /* ZG_YAMLCFG_H */
