/*
 * yamlcfg.h — what the configuration loaders of zgate-relay, zgate-agent
 * and zgate-api share: reading a configuration file, and the top level of
 * its one YAML document. Each loader keeps its own table of keys.
 */
#ifndef ZG_YAMLCFG_H
#define ZG_YAMLCFG_H

#include <stddef.h>
#include <yaml.h>

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

#endif /* ZG_YAMLCFG_H */
