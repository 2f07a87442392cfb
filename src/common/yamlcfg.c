/* yamlcfg.c — see yamlcfg.h. */
#include "yamlcfg.h"

#include <errno.h>
#include <stdint.h>
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

int yamlcfg_list(yaml_parser_t *p, const char *name, const char *where, yamlcfg_item_fn item,
		 void *ctx, size_t *pn, char *err, size_t errlen)
{
	yaml_event_t ev;
	size_t n = 0;
	int r;

	for (;;) {
		if (!yaml_parser_parse(p, &ev)) {
			if (where != NULL)
				zg_seterr(err, errlen, "%s: not valid YAML: %s", where,
					  p->problem ? p->problem : "syntax error");
			else
				zg_seterr(err, errlen, "%s:%zu:%zu: not valid YAML: %s", name,
					  p->problem_mark.line + 1, p->problem_mark.column + 1,
					  p->problem ? p->problem : "syntax error");
			return ZG_ERR_CONFIG;
		}
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		r = item(ctx, &ev, err, errlen);
		n++;
		yaml_event_delete(&ev);
		if (r != 0)
			return r;
	}
	if (pn != NULL)
		*pn = n;
	return 0;
}

/* Reads one event; a syntax error is reported where libyaml found it. */
static int next_event(yaml_parser_t *p, const char *name, yaml_event_t *ev, char *err,
		      size_t errlen)
{
	if (yaml_parser_parse(p, ev))
		return 0;
	zg_seterr(err, errlen, "%s:%zu:%zu: not valid YAML: %s", name, p->problem_mark.line + 1,
		  p->problem_mark.column + 1, p->problem ? p->problem : "syntax error");
	return ZG_ERR_CONFIG;
}

/* A key of one mapping, read so far: where the table spells it (its
 * option's key, or the start of the first option's key in the section)
 * and its line, for "given twice (first at line N)". */
struct seen_key {
	const char *key; /* points into the table: nothing to free */
	size_t len, line;
};

/* The table's spelling of path (an option or a section of c->t), or NULL. */
static const char *table_key(const struct opt_table *t, const char *path, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strncmp(t->v[i].key, path, len) == 0 &&
		    (t->v[i].key[len] == '\0' || t->v[i].key[len] == '.'))
			return t->v[i].key;
	return NULL;
}

/* One mapping whose start was read; section is its key ("" at the top).
 * A key given twice in it is refused at the second: YAML would keep the
 * last value and drop the first without a word. So is an option set twice
 * anywhere in the document, however it is spelt (tls.cert: at the top and
 * cert: under tls:): first[i] is the line option i was set at, 0 = not
 * yet, for the whole document. */
static int opts_mapping(const struct yamlcfg_opts *c, yaml_parser_t *p, const char *name,
			const char *section, int depth, size_t *first, char *err, size_t errlen)
{
	yaml_event_t key, val;
	char path[400], where[512], keys[512];
	const struct opt_spec *o;
	struct seen_key *seen = NULL, *ns;
	size_t nseen = 0, cap = 0, line, len;
	int r;

	if (depth > 4) {
		zg_seterr(err, errlen, "%s: nesting too deep", name);
		return ZG_ERR_CONFIG;
	}
	for (;;) {
		if ((r = next_event(p, name, &key, err, errlen)) != 0)
			goto out;
		if (key.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&key);
			r = 0;
			goto out;
		}
		if (key.type != YAML_SCALAR_EVENT) {
			zg_seterr(err, errlen, "%s:%zu:%zu: expected a key, found %s", name,
				  key.start_mark.line + 1, key.start_mark.column + 1,
				  yamlcfg_kind(&key));
			yaml_event_delete(&key);
			r = ZG_ERR_CONFIG;
			goto out;
		}
		(void)snprintf(path, sizeof(path), "%s%s%s", section, *section ? "." : "",
			       (const char *)key.data.scalar.value);
		line = key.start_mark.line + 1;
		(void)snprintf(where, sizeof(where), "%s:%zu:%zu: %s", name, line,
			       key.start_mark.column + 1, path);
		yaml_event_delete(&key);
		len = strlen(path);
		o = opt_find(c->t, path, len);
		if (o == NULL && !opt_is_section(c->t, path)) {
			opt_keys_under(c->t, section, keys, sizeof(keys));
			zg_seterr(err, errlen, "%s: unknown key (expected one of: %s)", where, keys);
			r = ZG_ERR_CONFIG;
			goto out;
		}
		for (size_t i = 0; i < nseen; i++) {
			if (seen[i].len == len && memcmp(seen[i].key, path, len) == 0) {
				zg_seterr(err, errlen, "%s: given twice (first at line %zu)", where,
					  seen[i].line);
				r = ZG_ERR_CONFIG;
				goto out;
			}
		}
		if (o != NULL && first[o - c->t->v] != 0) {
			zg_seterr(err, errlen, "%s: given twice (first at line %zu)", where,
				  first[o - c->t->v]);
			r = ZG_ERR_CONFIG;
			goto out;
		}
		if (o != NULL)
			first[o - c->t->v] = line;
		/* known keys only, so the table bounds how many there are */
		if (nseen == cap) {
			cap = cap ? cap * 2 : 16;
			if ((ns = realloc(seen, cap * sizeof(*seen))) == NULL) {
				zg_seterr(err, errlen, "%s: out of memory", name);
				r = ZG_ERR_NOMEM;
				goto out;
			}
			seen = ns;
		}
		seen[nseen].key = o != NULL ? o->key : table_key(c->t, path, len);
		seen[nseen].len = len;
		seen[nseen++].line = line;
		if ((r = next_event(p, name, &val, err, errlen)) != 0)
			goto out;
		if (o != NULL && val.type == YAML_SCALAR_EVENT) {
			r = opt_set(c->cfg, o, (const char *)val.data.scalar.value, where, err,
				    errlen);
			if (r == 0)
				opt_from_note(c->t, c->cfg, o, OPT_SRC_FILE, line);
		} else if (o != NULL && o->list && c->list != NULL &&
			   val.type == YAML_SEQUENCE_START_EVENT) {
			r = c->list(c->cfg, o, p, name, where, err, errlen);
			if (r == 0)
				opt_from_note(c->t, c->cfg, o, OPT_SRC_FILE, line);
		} else if (o == NULL && val.type == YAML_MAPPING_START_EVENT) {
			r = opts_mapping(c, p, name, path, depth + 1, first, err, errlen);
		} else {
			zg_seterr(err, errlen, "%s: expected %s, found %s", where,
				  o != NULL ? "a single value" : "a mapping of keys",
				  yamlcfg_kind(&val));
			r = ZG_ERR_CONFIG;
		}
		yaml_event_delete(&val);
		if (r != 0)
			goto out;
	}
out:
	free(seen);
	return r;
}

int yamlcfg_opts_mapping(void *ctx, yaml_parser_t *p, const char *name, char *err, size_t errlen)
{
	const struct yamlcfg_opts *c = ctx;
	size_t *first = calloc(c->t->n ? c->t->n : 1, sizeof(*first)); /* one per document */
	int r;

	if (first == NULL) {
		zg_seterr(err, errlen, "%s: out of memory", name);
		return ZG_ERR_NOMEM;
	}
	opt_from_file(c->t, c->cfg, name);
	r = opts_mapping(c, p, name, "", 0, first, err, errlen);
	free(first);
	return r;
}

int yamlcfg_load_file(const char *path, yamlcfg_mapping_fn fn, void *ctx, char *err,
		      size_t errlen)
{
	char *buf;
	size_t n;
	int r = yamlcfg_read_file(path, &buf, &n, err, errlen);

	if (r != 0)
		return r;
	r = yamlcfg_load(path, buf, n, fn, ctx, err, errlen);
	free(buf);
	return r;
}

int yamlcfg_args(struct yamlcfg_args *a, int argc, char *const *argv, char *const *envp,
		 char *err, size_t errlen)
{
	struct opt_cmdline c;
	const char *file = NULL;
	int r, pass;

	a->action = OPT_ACT_RUN;
	a->file = NULL;
	/* --help and --version win over anything else on the line. */
	for (int i = a->first; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			a->action = OPT_ACT_HELP;
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0)
			a->action = OPT_ACT_VERSION;
	}
	if (a->action == OPT_ACT_VERSION)
		return 0;
	for (char *const *e = envp; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "ZGATE_CONFIG=", 13) == 0 && (*e)[13] != '\0')
			file = *e + 13;
	/* Pass 0 checks the whole line and finds --config and the actions;
	 * pass 1 applies the flags over the file and the environment. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (file != NULL && file[0] != '\0') {
				a->file = file;
				r = yamlcfg_load_file(file, yamlcfg_opts_mapping, &a->o, err, errlen);
				if (r != 0)
					return r == ZG_ERR_IO ? ZG_ERR_CONFIG : r;
			}
			if ((r = opt_apply_env(a->o.t, a->o.cfg, envp, err, errlen)) != 0)
				return r;
		}
		memset(&c, 0, sizeof(c));
		c.argc = argc;
		c.argv = argv;
		c.i = a->first;
		c.kind = opt_table_kind;
		c.ctx = (void *)(uintptr_t)a->o.t;
		while ((r = opt_next(&c, err, errlen)) == 1) {
			if (strcmp(c.name, "check-config") == 0)
				a->action = OPT_ACT_CHECK_CONFIG;
			else if (strcmp(c.name, "config") == 0)
				file = c.value;
			else if (pass == 1 &&
				 (r = opt_apply_flag(a->o.t, a->o.cfg, c.name, c.value, err, errlen)) != 0)
				return r == ZG_ERR_NOTFOUND ? ZG_ERR_CONFIG : r;
		}
		if (r != 0)
			return r;
	}
	return 0;
}
