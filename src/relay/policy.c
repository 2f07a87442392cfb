#include "policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "zg_err.h"

#define PROTO_TCP 0x1
#define PROTO_UDP 0x2
#define PROTO_ICMP 0x4
#define PROTO_ANY 0x7

/* Limits that keep a hostile or broken file from costing unbounded work. */
#define MAX_FILE (16u << 20)
#define MAX_NODES_VISITED 2000000

typedef unsigned __int128 u128;

struct prange { /* a destination CIDR as an inclusive range */
	uint8_t version;
	u128 lo, hi;
};

struct portrange {
	uint16_t lo, hi;
};

struct rule {
	char id[POLICY_ID_MAX];
	enum policy_action action;
	uint8_t protos; /* PROTO_* mask */
	struct prange *dst;
	size_t ndst;
	struct portrange *ports; /* none = every port */
	size_t nports;
};

struct client {
	char id[POLICY_ID_MAX];
	struct rule *rules;
	size_t nrules;
};

struct policy {
	enum policy_action def;
	struct client *clients; /* sorted by id */
	size_t nclients;
	size_t nrules;
};

/* ---------------------------------------------------------------- parsing */

struct pctx {
	yaml_document_t *doc;
	const char *name;
	char *err;
	size_t errlen;
	unsigned long visited;
};

static int perr(struct pctx *c, const yaml_node_t *n, const char *field,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int perr(struct pctx *c, const yaml_node_t *n, const char *field,
		const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		(void)snprintf(c->err, c->errlen, "%s:%zu:%zu: %s: %s", c->name,
			       n ? n->start_mark.line + 1 : 0, n ? n->start_mark.column + 1 : 0,
			       field, msg);
	return ZG_ERR_CONFIG;
}

/* Builds a field name for messages; a cut name is still useful. */
static void fieldname(char *buf, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fieldname(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

static yaml_node_t *node(struct pctx *c, int idx)
{
	c->visited++;
	return yaml_document_get_node(c->doc, idx);
}

static const char *kind(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? "a value"
	       : n->type == YAML_SEQUENCE_NODE ? "a list" : "a mapping";
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static int want(struct pctx *c, const yaml_node_t *n, yaml_node_type_t t, const char *field)
{
	if (c->visited > MAX_NODES_VISITED)
		return perr(c, n, field, "document too large or too many aliases");
	if (n->type != t)
		return perr(c, n, field, "expected %s, found %s",
			    t == YAML_SCALAR_NODE ? "a single value"
			    : t == YAML_SEQUENCE_NODE ? "a list" : "a mapping", kind(n));
	return 0;
}

static int parse_cidr(const char *s, struct prange *r)
{
	char addr[INET6_ADDRSTRLEN + 1];
	uint8_t b[16] = { 0 };
	const char *slash = strchr(s, '/');
	unsigned long len;
	char *end;
	unsigned bits;
	u128 v = 0, hostmask;

	if (!slash || (size_t)(slash - s) >= sizeof(addr) || !isdigit((unsigned char)slash[1]))
		return -1;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (errno || *end)
		return -1;
	if (inet_pton(AF_INET, addr, b) == 1)
		r->version = 4, bits = 32;
	else if (inet_pton(AF_INET6, addr, b) == 1)
		r->version = 6, bits = 128;
	else
		return -1;
	if (len > bits)
		return -1;
	for (unsigned i = 0; i < bits / 8; i++)
		v = (v << 8) | b[i];
	hostmask = len == bits ? 0 : (bits - len >= 128 ? ~(u128)0 : (((u128)1 << (bits - len)) - 1));
	if (v & hostmask)
		return -2; /* host bits set */
	r->lo = v;
	r->hi = v | hostmask;
	return 0;
}

static int parse_port(const char *s, uint16_t *p)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return -1;
	*p = (uint16_t)v;
	return 0;
}

static int parse_portrange(const char *s, struct portrange *pr)
{
	char lo[8];
	const char *dash = strchr(s, '-');

	if (!dash)
		return parse_port(s, &pr->lo) == 0 ? (pr->hi = pr->lo, 0) : -1;
	if ((size_t)(dash - s) >= sizeof(lo))
		return -1;
	memcpy(lo, s, (size_t)(dash - s));
	lo[dash - s] = '\0';
	if (parse_port(lo, &pr->lo) || parse_port(dash + 1, &pr->hi) || pr->lo > pr->hi)
		return -1;
	return 0;
}

static int valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= POLICY_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)s[i]))
			return 0;
	return 1;
}

static void free_rules(struct rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].dst);
		free(r[i].ports);
	}
	free(r);
}

/* A list of scalars: each is handed to fn with its node and index. */
static int seq_len(struct pctx *c, yaml_node_t *n, const char *field, size_t *pn)
{
	int r;
	if ((r = want(c, n, YAML_SEQUENCE_NODE, field)) != 0)
		return r;
	*pn = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	return 0;
}

/* Item i of list v (named field) as a scalar node; names it "field[i]" in
 * f2 for messages. Returns 0, or ZG_ERR_CONFIG with the error set. */
static int seq_scalar(struct pctx *c, yaml_node_t *v, const char *field, size_t i,
		      char *f2, size_t f2len, yaml_node_t **pit)
{
	yaml_node_t *it = node(c, v->data.sequence.items.start[i]);

	fieldname(f2, f2len, "%s[%zu]", field, i);
	if (!it)
		return perr(c, v, f2, "broken list");
	*pit = it;
	return want(c, it, YAML_SCALAR_NODE, f2);
}

static int parse_rule(struct pctx *c, yaml_node_t *n, const char *where, struct rule *ru)
{
	char field[160];
	int r, have_id = 0, have_action = 0, have_dst = 0;
	yaml_node_pair_t *pair;

	if ((r = want(c, n, YAML_MAPPING_NODE, where)) != 0)
		return r;
	ru->protos = PROTO_ANY;
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = node(c, pair->key), *v = node(c, pair->value);
		const char *key;
		size_t cnt;
		if (!k || !v || (r = want(c, k, YAML_SCALAR_NODE, where)) != 0)
			return r ? r : perr(c, n, where, "broken mapping");
		key = scalar(k);
		fieldname(field, sizeof(field), "%s.%s", where, key);
		for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < pair; q++) {
			yaml_node_t *qk = node(c, q->key);
			if (qk && qk->type == YAML_SCALAR_NODE && strcmp(scalar(qk), key) == 0)
				return perr(c, k, field, "given twice");
		}
		if (strcmp(key, "id") == 0) {
			if ((r = want(c, v, YAML_SCALAR_NODE, field)) != 0)
				return r;
			if (!valid_id(scalar(v)))
				return perr(c, v, field, "\"%s\" is not an ID (1-%d printable characters, no spaces)",
					    scalar(v), POLICY_ID_MAX - 1);
			memcpy(ru->id, scalar(v), strlen(scalar(v)) + 1);
			have_id = 1;
		} else if (strcmp(key, "action") == 0) {
			if ((r = want(c, v, YAML_SCALAR_NODE, field)) != 0)
				return r;
			if (strcmp(scalar(v), "allow") == 0)
				ru->action = POLICY_ALLOW;
			else if (strcmp(scalar(v), "deny") == 0)
				ru->action = POLICY_DENY;
			else
				return perr(c, v, field, "\"%s\" is not an action (allow or deny)", scalar(v));
			have_action = 1;
		} else if (strcmp(key, "destinations") == 0) {
			if ((r = seq_len(c, v, field, &cnt)) != 0)
				return r;
			if (cnt == 0)
				return perr(c, v, field, "needs at least one CIDR (use 0.0.0.0/0 and ::/0 for everything)");
			if (!(ru->dst = calloc(cnt, sizeof(*ru->dst))))
				return ZG_ERR_NOMEM;
			for (size_t i = 0; i < cnt; i++) {
				yaml_node_t *it;
				char f2[192];
				if ((r = seq_scalar(c, v, field, i, f2, sizeof(f2), &it)) != 0)
					return r;
				int pr = parse_cidr(scalar(it), &ru->dst[i]);
				if (pr == -2)
					return perr(c, it, f2, "\"%s\" has host bits set beyond its prefix length", scalar(it));
				if (pr != 0)
					return perr(c, it, f2, "\"%s\" is not an IPv4 or IPv6 CIDR (e.g. 203.0.113.0/24, 2001:db8::/32)",
						    scalar(it));
			}
			ru->ndst = cnt;
			have_dst = 1;
		} else if (strcmp(key, "protocols") == 0) {
			if ((r = seq_len(c, v, field, &cnt)) != 0)
				return r;
			if (cnt == 0)
				return perr(c, v, field, "needs at least one of tcp, udp, icmp, any");
			ru->protos = 0;
			for (size_t i = 0; i < cnt; i++) {
				yaml_node_t *it;
				char f2[192];
				if ((r = seq_scalar(c, v, field, i, f2, sizeof(f2), &it)) != 0)
					return r;
				const char *s = scalar(it);
				if (strcmp(s, "tcp") == 0)
					ru->protos |= PROTO_TCP;
				else if (strcmp(s, "udp") == 0)
					ru->protos |= PROTO_UDP;
				else if (strcmp(s, "icmp") == 0)
					ru->protos |= PROTO_ICMP;
				else if (strcmp(s, "any") == 0)
					ru->protos |= PROTO_ANY;
				else
					return perr(c, it, f2, "\"%s\" is not a protocol (tcp, udp, icmp or any)", s);
			}
		} else if (strcmp(key, "ports") == 0) {
			if ((r = seq_len(c, v, field, &cnt)) != 0)
				return r;
			if (cnt == 0)
				return perr(c, v, field, "an empty list would match nothing; leave ports out for every port");
			if (!(ru->ports = calloc(cnt, sizeof(*ru->ports))))
				return ZG_ERR_NOMEM;
			for (size_t i = 0; i < cnt; i++) {
				yaml_node_t *it;
				char f2[192];
				if ((r = seq_scalar(c, v, field, i, f2, sizeof(f2), &it)) != 0)
					return r;
				if (parse_portrange(scalar(it), &ru->ports[i]) != 0)
					return perr(c, it, f2, "\"%s\" is not a port or a range lo-hi with lo <= hi <= 65535",
						    scalar(it));
			}
			ru->nports = cnt;
		} else {
			return perr(c, k, field, "unknown key (expected id, action, destinations, protocols, ports)");
		}
	}
	if (!have_id)
		return perr(c, n, where, "missing key \"id\"");
	if (!have_action)
		return perr(c, n, where, "missing key \"action\" (allow or deny)");
	if (!have_dst)
		return perr(c, n, where, "missing key \"destinations\"");
	if (ru->nports && !(ru->protos & (PROTO_TCP | PROTO_UDP)))
		return perr(c, n, where, "ports apply only to tcp and udp, but the rule allows neither");
	return 0;
}

static int parse_client(struct pctx *c, yaml_node_t *k, yaml_node_t *v, struct client *cl)
{
	char field[192];
	yaml_node_pair_t *pair;
	int r;

	fieldname(field, sizeof(field), "clients.%s", scalar(k));
	if (!valid_id(scalar(k)))
		return perr(c, k, field, "\"%s\" is not a client ID (1-%d printable characters, no spaces)",
			    scalar(k), POLICY_ID_MAX - 1);
	memcpy(cl->id, scalar(k), strlen(scalar(k)) + 1);
	if ((r = want(c, v, YAML_MAPPING_NODE, field)) != 0)
		return r;
	for (pair = v->data.mapping.pairs.start; pair < v->data.mapping.pairs.top; pair++) {
		yaml_node_t *rk = node(c, pair->key), *rv = node(c, pair->value);
		size_t cnt;
		if (!rk || !rv || (r = want(c, rk, YAML_SCALAR_NODE, field)) != 0)
			return r ? r : ZG_ERR_CONFIG;
		if (strcmp(scalar(rk), "rules") != 0)
			return perr(c, rk, field, "unknown key \"%s\" (expected rules)", scalar(rk));
		char rf[224];
		fieldname(rf, sizeof(rf), "%s.rules", field);
		if ((r = seq_len(c, rv, rf, &cnt)) != 0)
			return r;
		if (cl->rules)
			return perr(c, rk, rf, "given twice");
		if (cnt && !(cl->rules = calloc(cnt, sizeof(*cl->rules))))
			return ZG_ERR_NOMEM;
		for (size_t i = 0; i < cnt; i++) {
			char w[240];
			fieldname(w, sizeof(w), "%s[%zu]", rf, i);
			yaml_node_t *it = node(c, rv->data.sequence.items.start[i]);
			cl->nrules = i + 1;
			if (!it)
				return ZG_ERR_CONFIG;
			if ((r = parse_rule(c, it, w, &cl->rules[i])) != 0)
				return r;
			for (size_t j = 0; j < i; j++)
				if (strcmp(cl->rules[j].id, cl->rules[i].id) == 0)
					return perr(c, it, w, "rule id \"%s\" is used twice in this client", cl->rules[i].id);
		}
	}
	return 0;
}

static int client_cmp(const void *a, const void *b)
{
	return strcmp(((const struct client *)a)->id, ((const struct client *)b)->id);
}

static int parse_doc(struct pctx *c, struct policy *p)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc), *k, *v;
	yaml_node_pair_t *pair;
	int r, have_version = 0;

	if (!root)
		return perr(c, NULL, "policy", "the file is empty (expected version, default_action, clients)");
	if ((r = want(c, root, YAML_MAPPING_NODE, "policy")) != 0)
		return r;
	for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
		k = node(c, pair->key);
		v = node(c, pair->value);
		if (!k || !v || (r = want(c, k, YAML_SCALAR_NODE, "policy")) != 0)
			return r ? r : ZG_ERR_CONFIG;
		const char *key = scalar(k);
		if (strcmp(key, "version") == 0) {
			if ((r = want(c, v, YAML_SCALAR_NODE, key)) != 0)
				return r;
			if (strcmp(scalar(v), "1") != 0)
				return perr(c, v, key, "\"%s\" is not supported (expected 1)", scalar(v));
			have_version = 1;
		} else if (strcmp(key, "default_action") == 0) {
			if ((r = want(c, v, YAML_SCALAR_NODE, key)) != 0)
				return r;
			if (strcmp(scalar(v), "allow") == 0)
				p->def = POLICY_ALLOW;
			else if (strcmp(scalar(v), "deny") == 0)
				p->def = POLICY_DENY;
			else
				return perr(c, v, key, "\"%s\" is not an action (allow or deny)", scalar(v));
		} else if (strcmp(key, "clients") == 0) {
			size_t cnt;
			if ((r = want(c, v, YAML_MAPPING_NODE, key)) != 0)
				return r;
			if (p->clients)
				return perr(c, k, key, "given twice");
			cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
			if (cnt && !(p->clients = calloc(cnt, sizeof(*p->clients))))
				return ZG_ERR_NOMEM;
			for (size_t i = 0; i < cnt; i++) {
				yaml_node_t *ck = node(c, v->data.mapping.pairs.start[i].key);
				yaml_node_t *cv = node(c, v->data.mapping.pairs.start[i].value);
				p->nclients = i + 1;
				if (!ck || !cv || (r = want(c, ck, YAML_SCALAR_NODE, "clients")) != 0)
					return r ? r : ZG_ERR_CONFIG;
				for (size_t j = 0; j < i; j++)
					if (strcmp(p->clients[j].id, scalar(ck)) == 0)
						return perr(c, ck, "clients", "client \"%s\" is listed twice", scalar(ck));
				if ((r = parse_client(c, ck, cv, &p->clients[i])) != 0)
					return r;
				p->nrules += p->clients[i].nrules;
			}
		} else {
			return perr(c, k, key, "unknown key (expected version, default_action, clients)");
		}
	}
	if (!have_version)
		return perr(c, root, "version", "missing (expected version: 1)");
	if (p->nclients)
		qsort(p->clients, p->nclients, sizeof(*p->clients), client_cmp);
	return 0;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nclients; i++)
		free_rules(p->clients[i].rules, p->clients[i].nrules);
	free(p->clients);
	free(p);
}

int policy_load_buf(const char *name, const char *text, size_t len,
		    struct policy **pp, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct pctx c = { .doc = &doc, .name = name, .err = err, .errlen = errlen };
	struct policy *p;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!(p = calloc(1, sizeof(*p))))
		return ZG_ERR_NOMEM;
	p->def = POLICY_DENY;
	if (!yaml_parser_initialize(&parser)) {
		free(p);
		return ZG_ERR_NOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		if (err && errlen)
			(void)snprintf(err, errlen, "%s:%zu:%zu: not valid YAML: %s", name,
				       parser.problem_mark.line + 1, parser.problem_mark.column + 1,
				       parser.problem ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		free(p);
		return ZG_ERR_CONFIG;
	}
	r = parse_doc(&c, p);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (r != 0) {
		policy_free(p);
		return r;
	}
	*pp = p;
	return 0;
}

int policy_load_file(const char *path, struct policy **pp, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long sz;
	size_t n;
	int r;

	if (!f) {
		if (err && errlen)
			(void)snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return ZG_ERR_IO;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		if (err && errlen)
			(void)snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		fclose(f);
		return ZG_ERR_IO;
	}
	if ((unsigned long)sz > MAX_FILE) {
		if (err && errlen)
			(void)snprintf(err, errlen, "%s: %ld bytes; a policy may have at most %u", path, sz, MAX_FILE);
		fclose(f);
		return ZG_ERR_CONFIG;
	}
	if (!(buf = malloc((size_t)sz + 1))) {
		fclose(f);
		return ZG_ERR_NOMEM;
	}
	n = fread(buf, 1, (size_t)sz, f);
	fclose(f);
	r = policy_load_buf(path, buf, n, pp, err, errlen);
	free(buf);
	return r;
}

/* ---------------------------------------------------------------- evaluation */

static const struct client *find_client(const struct policy *p, const char *id)
{
	size_t lo = 0, hi = p->nclients;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->clients[mid].id, id);
		if (c == 0)
			return &p->clients[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static u128 load_addr(const uint8_t *a, uint8_t version)
{
	u128 v = 0;
	for (unsigned i = 0; i < (version == 4 ? 4u : 16u); i++)
		v = (v << 8) | a[i];
	return v;
}

static int rule_matches(const struct rule *ru, const struct policy_flow *f, u128 dst)
{
	uint8_t pbit;
	int ok = 0;

	switch (f->proto) {
	case 6:
		pbit = PROTO_TCP;
		break;
	case 17:
		pbit = PROTO_UDP;
		break;
	case 1:
	case 58:
		pbit = PROTO_ICMP;
		break;
	default:
		pbit = 0; /* other protocols match only "any" */
		break;
	}
	if (pbit ? !(ru->protos & pbit) : ru->protos != PROTO_ANY)
		return 0;
	for (size_t i = 0; i < ru->ndst && !ok; i++)
		ok = ru->dst[i].version == f->version && dst >= ru->dst[i].lo && dst <= ru->dst[i].hi;
	if (!ok)
		return 0;
	if (ru->nports == 0)
		return 1;
	if (pbit != PROTO_TCP && pbit != PROTO_UDP)
		return 0;
	for (size_t i = 0; i < ru->nports; i++)
		if (f->dport >= ru->ports[i].lo && f->dport <= ru->ports[i].hi)
			return 1;
	return 0;
}

void policy_eval(const struct policy *p, const char *client_id,
		 const struct policy_flow *flow, struct policy_verdict *out)
{
	const struct client *cl = find_client(p, client_id);
	u128 dst = load_addr(flow->dst, flow->version);

	if (cl) {
		for (size_t i = 0; i < cl->nrules; i++) {
			if (rule_matches(&cl->rules[i], flow, dst)) {
				out->action = cl->rules[i].action;
				out->rule_id = cl->rules[i].id;
				return;
			}
		}
	}
	out->action = p->def;
	out->rule_id = "default";
}

/* ---------------------------------------------------------------- routes */

struct ivl {
	u128 lo, hi;
};

/* a := a minus [lo, hi]; a has room for cap intervals. */
static int subtract(struct ivl *a, size_t *pn, size_t cap, u128 lo, u128 hi)
{
	size_t n = *pn;

	for (size_t i = 0; i < n; i++) {
		if (a[i].hi < lo || a[i].lo > hi)
			continue;
		int keep_left = a[i].lo < lo, keep_right = a[i].hi > hi;
		if (keep_left && keep_right) {
			if (n == cap)
				return ZG_ERR_TOO_LARGE;
			a[n].lo = hi + 1;
			a[n].hi = a[i].hi;
			a[i].hi = lo - 1;
			n++;
		} else if (keep_left) {
			a[i].hi = lo - 1;
		} else if (keep_right) {
			a[i].lo = hi + 1;
		} else {
			a[i] = a[--n];
			i--;
		}
	}
	*pn = n;
	return 0;
}

static void store_addr(u128 v, uint8_t *a, uint8_t version)
{
	unsigned bytes = version == 4 ? 4 : 16;
	memset(a, 0, 16);
	for (unsigned i = bytes; i-- > 0;) {
		a[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

/* The single IP protocol an allow rule stands for in a route, else 0. */
static uint8_t route_proto(uint8_t protos, uint8_t version)
{
	switch (protos) {
	case PROTO_TCP:
		return 6;
	case PROTO_UDP:
		return 17;
	case PROTO_ICMP:
		return version == 4 ? 1 : 58;
	default:
		return 0;
	}
}

/* Does deny rule d refuse everything allow rule a allows (so d's
 * destinations can be cut out of a's routes)? */
static int deny_covers(const struct rule *d, uint8_t allow_protos, int allow_has_ports)
{
	(void)allow_has_ports;
	return d->nports == 0 && (d->protos & allow_protos) == allow_protos;
}

int policy_routes(const struct policy *p, const char *client_id,
		  struct cip_route *out, size_t max, size_t *pn)
{
	const struct client *cl = find_client(p, client_id);
	size_t nrules = cl ? cl->nrules : 0, count = 0, cap;
	struct ivl *work = NULL;
	int r = 0;

	/* the scratch list grows by at most one interval per subtraction */
	cap = 2;
	for (size_t i = 0; i < nrules; i++)
		cap += cl->rules[i].ndst * 2;
	cap = cap * 2 + 8;
	if (!(work = calloc(cap, sizeof(*work))))
		return ZG_ERR_NOMEM;

	/* rules in order, then the default as a final allow-everything rule */
	for (size_t i = 0; i <= nrules; i++) {
		struct rule implicit;
		struct prange all[2];
		const struct rule *ru;

		if (i < nrules) {
			ru = &cl->rules[i];
		} else {
			if (p->def != POLICY_ALLOW)
				break;
			memset(&implicit, 0, sizeof(implicit));
			all[0] = (struct prange){ 4, 0, ((u128)1 << 32) - 1 };
			all[1] = (struct prange){ 6, 0, ~(u128)0 };
			implicit.action = POLICY_ALLOW;
			implicit.protos = PROTO_ANY;
			implicit.dst = all;
			implicit.ndst = 2;
			ru = &implicit;
		}
		if (ru->action != POLICY_ALLOW)
			continue;
		for (size_t d = 0; d < ru->ndst; d++) {
			uint8_t v = ru->dst[d].version;
			size_t nw = 1;
			work[0].lo = ru->dst[d].lo;
			work[0].hi = ru->dst[d].hi;
			for (size_t j = 0; j < i && j < nrules && nw; j++) {
				const struct rule *dn = &cl->rules[j];
				if (dn->action != POLICY_DENY || !deny_covers(dn, ru->protos, ru->nports != 0))
					continue;
				for (size_t k = 0; k < dn->ndst; k++) {
					if (dn->dst[k].version != v)
						continue;
					if ((r = subtract(work, &nw, cap, dn->dst[k].lo, dn->dst[k].hi)) != 0)
						goto out;
				}
			}
			for (size_t w = 0; w < nw; w++) {
				if (count == max) {
					r = ZG_ERR_TOO_LARGE;
					goto out;
				}
				memset(&out[count], 0, sizeof(out[count]));
				out[count].version = v;
				store_addr(work[w].lo, out[count].start, v);
				store_addr(work[w].hi, out[count].end, v);
				out[count].proto = route_proto(ru->protos, v);
				count++;
			}
		}
	}
	r = cip_routes_normalize(out, count, max, &count);
	if (r == 0)
		*pn = count;
out:
	free(work);
	return r;
}

size_t policy_client_count(const struct policy *p)
{
	return p->nclients;
}

size_t policy_rule_count(const struct policy *p)
{
	return p->nrules;
}

int policy_has_client(const struct policy *p, const char *client_id)
{
	return find_client(p, client_id) != NULL;
}

enum policy_action policy_default_action(const struct policy *p)
{
	return p->def;
}
