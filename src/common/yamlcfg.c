/* yamlcfg.c — see yamlcfg.h. */
#include "yamlcfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

int yamlcfg_read_file(const char *path, char **pbuf, size_t *plen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *nb;
	size_t cap = 0, len = 0, n;
	int r = 0;

	if (f == NULL) {
		zg_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return ZG_ERR_IO;
	}
	for (;;) {
		if (len == cap) {
			/* room for one byte past the limit tells "too large" */
			if (cap > YAMLCFG_MAX_FILE) {
				zg_seterr(err, errlen,
					  "%s: larger than 1 MiB; not a configuration file?", path);
				r = ZG_ERR_CONFIG;
				goto out;
			}
			cap = cap ? cap * 2 : 4096;
			if (cap > YAMLCFG_MAX_FILE)
				cap = YAMLCFG_MAX_FILE + 1;
			if ((nb = realloc(buf, cap + 1)) == NULL) { /* + the NUL */
				zg_seterr(err, errlen, "%s: out of memory", path);
				r = ZG_ERR_NOMEM;
				goto out;
			}
			buf = nb;
		}
		if ((n = fread(buf + len, 1, cap - len, f)) == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		zg_seterr(err, errlen, "%s: read error: %s", path, strerror(errno));
		r = ZG_ERR_IO;
		goto out;
	}
	buf[len] = '\0';
	*pbuf = buf;
	*plen = len;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return r;
}

const char *yamlcfg_kind(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_ALIAS_EVENT:
		return "an alias";
	default:
		return "a value";
	}
}

int yamlcfg_load(const char *name, const char *text, size_t len, yamlcfg_mapping_fn fn, void *ctx,
		 char *err, size_t errlen)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int r = 0, docs = 0, done = 0;

	if (!yaml_parser_initialize(&p)) {
		zg_seterr(err, errlen, "%s: out of memory", name);
		return ZG_ERR_NOMEM;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!done && r == 0) {
		if (!yaml_parser_parse(&p, &ev)) {
			zg_seterr(err, errlen, "%s:%zu:%zu: not valid YAML: %s", name,
				  p.problem_mark.line + 1, p.problem_mark.column + 1,
				  p.problem ? p.problem : "syntax error");
			r = ZG_ERR_CONFIG;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (docs++) {
				zg_seterr(err, errlen, "%s:%zu:%zu: only one YAML document is allowed",
					  name, ev.start_mark.line + 1, ev.start_mark.column + 1);
				r = ZG_ERR_CONFIG;
			}
			break;
		case YAML_MAPPING_START_EVENT:
			r = fn(ctx, &p, name, err, errlen);
			break;
		case YAML_SCALAR_EVENT:
			if (ev.data.scalar.length == 0)
				break; /* an empty document: nothing to apply */
				       /* fall through */
		default:
			zg_seterr(err, errlen,
				  "%s:%zu:%zu: the top level must be a mapping of keys, found %s", name,
				  ev.start_mark.line + 1, ev.start_mark.column + 1, yamlcfg_kind(&ev));
			r = ZG_ERR_CONFIG;
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return r;
}
