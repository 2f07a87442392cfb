/* uri_match: whenever a path matches a template, expanding the decoded
 * scope and matching the expansion gives the same scope, and expanding
 * that again gives the same path (expansion is canonical; the input may
 * spell values differently: lower-case hex, "%2A", a raw ':'). The input is
 * tried as a path against the default and a query-form template, and as a
 * template: one that uri_template_check() accepts must expand and match
 * back every kind of target. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "masque/uri.h"
#include "zg_err.h"

#define FUZZ_MAX 4096

static const char *const tmpls[] = {
	"https://relay.example:4433/.well-known/masque/ip/{target}/{ipproto}/",
	"https://relay.example/ip{?target,ipproto}",
};

static int scope_same(const struct uri_scope *a, const struct uri_scope *b)
{
	if (a->any_target != b->any_target || a->any_proto != b->any_proto)
		return 0;
	if (!a->any_proto && a->ipproto != b->ipproto)
		return 0;
	if (a->any_target)
		return 1;
	return a->target.version == b->target.version &&
	       a->target.prefix_len == b->target.prefix_len &&
	       memcmp(a->target.addr, b->target.addr, sizeof(a->target.addr)) == 0 &&
	       strcmp(a->dns, b->dns) == 0;
}

/* m is s with the variables a template lacks set to "*". */
static int scope_projects(const struct uri_scope *s, const struct uri_scope *m)
{
	struct uri_scope p = *s;

	if (m->any_target)
		p.any_target = 1;
	if (m->any_proto)
		p.any_proto = 1;
	return scope_same(&p, m);
}

/* s → path → scope m → path: m is s (all: with the variables tmpl lacks as
 * "*"), the second path is the first, and it matches m again. */
static void roundtrip(const char *tmpl, const struct uri_scope *s, int all)
{
	static char auth[FUZZ_MAX + 1], p1[FUZZ_MAX + 1024], p2[FUZZ_MAX + 1024];
	struct uri_scope m, m2;

	if (uri_expand(tmpl, s, auth, sizeof(auth), p1, sizeof(p1)) != 0)
		abort();
	if (uri_match(tmpl, p1, &m) != 0 || !(all ? scope_same(s, &m) : scope_projects(s, &m)))
		abort();
	if (uri_expand(tmpl, &m, auth, sizeof(auth), p2, sizeof(p2)) != 0 || strcmp(p1, p2) != 0)
		abort();
	if (uri_match(tmpl, p2, &m2) != 0 || !scope_same(&m, &m2))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char in[FUZZ_MAX + 1];
	struct uri_scope s;
	int r;

	if (size > FUZZ_MAX)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	for (size_t i = 0; i < sizeof(tmpls) / sizeof(tmpls[0]); i++) {
		r = uri_match(tmpls[i], in, &s);
		if (r == 0)
			roundtrip(tmpls[i], &s, 1);
		else if (r != ZG_ERR_MALFORMED)
			abort();
	}

	r = uri_template_check(in, NULL, 0);
	if (r == 0) {
		static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
		memset(&s, 0, sizeof(s));
		s.any_target = s.any_proto = 1;
		roundtrip(in, &s, 0);
		s.any_target = s.any_proto = 0;
		s.ipproto = 17;
		s.target.version = 6;
		memcpy(s.target.addr, v6, sizeof(v6));
		s.target.prefix_len = 32;
		roundtrip(in, &s, 0);
		memset(&s.target, 0, sizeof(s.target));
		memcpy(s.dns, "relay-1.example", sizeof("relay-1.example"));
		roundtrip(in, &s, 0);
	} else if (r != ZG_ERR_CONFIG) {
		abort();
	}
	return 0;
}
