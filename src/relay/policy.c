#include "policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

struct pname {      /* a destination DNS name */
	char *name; /* canonical, without the "*." of a wildcard */
	uint8_t wild;
};

struct rule {
	char id[POLICY_ID_MAX];
	enum policy_action action;
	uint8_t protos;     /* PROTO_* mask */
	uint8_t all_family; /* destinations include 0.0.0.0/0 or ::/0 */
	struct prange *dst;
	size_t ndst;
	struct pname *names;
	size_t nnames;
	struct portrange *ports; /* none = every port */
	size_t nports;
	char connector[POLICY_ID_MAX]; /* a connector rule: the connector it names, else "" */
};

struct client {
	char id[POLICY_ID_MAX];
	struct rule *rules;
	size_t nrules;
	size_t catchall; /* first rule with all_family, or nrules */
};

/* The name index: open addressing over (client, wild, name) -> first rule
 * that names it; lookups probe the name and each suffix of it. */
struct nent {
	uint64_t h;
	const char *name; /* NULL: empty slot */
	uint32_t client, rule;
	uint8_t wild;
};

/* A connector the policy lists (issue 22): the prefixes it may serve. */
struct pconnector {
	char id[POLICY_ID_MAX];
	struct prange *pfx;
	size_t npfx;
};

struct policy {
	enum policy_action def;
	struct pconnector *connectors; /* sorted by id */
	size_t nconnectors;
	struct client *clients; /* sorted by id */
	size_t nclients;
	size_t nrules;
	size_t nnames;
	struct nent *ntab;
	size_t ntab_mask; /* size - 1; size a power of two */
};

/* ---------------------------------------------------------------- parsing */

struct pctx {
	yaml_document_t *doc;
	const struct policy *p; /* its connectors are parsed before its clients */
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
	if (c->err && c->errlen && n == NULL) /* no node: no position ("file:0:0") */
		(void)snprintf(c->err, c->errlen, "%s: %s: %s", c->name, field, msg);
	else if (c->err && c->errlen)
		(void)snprintf(c->err, c->errlen, "%s:%zu:%zu: %s: %s", c->name,
			       n->start_mark.line + 1, n->start_mark.column + 1, field, msg);
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
	return n->type == YAML_SCALAR_NODE     ? "a value"
	       : n->type == YAML_SEQUENCE_NODE ? "a list"
					       : "a mapping";
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* The key before pair in mapping m that reads as pair's key does, or
 * NULL. YAML keeps the last of two silently; the loader refuses the
 * second and says where the first is. */
static const yaml_node_t *earlier_key(struct pctx *c, const yaml_node_t *m,
				      const yaml_node_pair_t *pair)
{
	const yaml_node_t *k = node(c, pair->key);

	if (k == NULL || k->type != YAML_SCALAR_NODE)
		return NULL;
	for (const yaml_node_pair_t *q = m->data.mapping.pairs.start; q < pair; q++) {
		const yaml_node_t *qk = node(c, q->key);
		if (qk && qk->type == YAML_SCALAR_NODE && strcmp(scalar(qk), scalar(k)) == 0)
			return qk;
	}
	return NULL;
}

/* "FIELD: given twice (first at line N)" at k, the second. */
static int given_twice(struct pctx *c, const yaml_node_t *k, const char *field,
		       const yaml_node_t *first)
{
	return perr(c, k, field, "given twice (first at line %zu)", first->start_mark.line + 1);
}

static int want(struct pctx *c, const yaml_node_t *n, yaml_node_type_t t, const char *field)
{
	if (c->visited > MAX_NODES_VISITED)
		return perr(c, n, field, "document too large or too many aliases");
	if (n->type != t)
		return perr(c, n, field, "expected %s, found %s",
			    t == YAML_SCALAR_NODE     ? "a single value"
			    : t == YAML_SEQUENCE_NODE ? "a list"
						      : "a mapping",
			    kind(n));
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

/* A connector ID (issue 22): 1-63 characters of [A-Za-z0-9._-]. */
static int connector_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= POLICY_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

static const struct pconnector *find_connector(const struct policy *p, const char *id)
{
	size_t lo = 0, hi = p->nconnectors;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->connectors[mid].id, id);
		if (c == 0)
			return &p->connectors[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void free_rules(struct rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < r[i].nnames; j++)
			free(r[i].names[j].name);
		free(r[i].names);
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

static int is_ldh(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

int policy_name_canon(const char *in, int wildcard, char *out, const char **why)
{
	size_t n = strlen(in), o = 0, label = 0;
	const char *s = in;

	if (n > 0 && in[n - 1] == '.')
		n--; /* the root label */
	if (wildcard && n >= 2 && s[0] == '*' && s[1] == '.') {
		out[o++] = '*';
		out[o++] = '.';
		s += 2;
		n -= 2;
	}
	if (n == 0) {
		*why = "is empty";
		return -1;
	}
	if (n > 253) {
		*why = "is longer than 253 bytes (RFC 1035)";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x80) {
			*why = "has non-ASCII characters; write an internationalised name as IDNA A-labels (xn--...)";
			return -1;
		}
		if (ch == '.') {
			if (label == 0) {
				*why = "has an empty label";
				return -1;
			}
			if (out[o - 1] == '-') {
				*why = "has a label ending in '-'";
				return -1;
			}
			label = 0;
			out[o++] = '.';
			continue;
		}
		ch = (unsigned char)tolower(ch);
		if (ch == '*') {
			*why = wildcard ? "has '*' other than as a whole first label \"*.\"" : "has '*'";
			return -1;
		}
		if (!is_ldh(ch)) {
			*why = "has a character other than letters, digits, '-', '_' and '.'";
			return -1;
		}
		if (label == 0 && ch == '-') {
			*why = "has a label starting with '-'";
			return -1;
		}
		if (++label > 63) {
			*why = "has a label longer than 63 bytes (RFC 1035)";
			return -1;
		}
		out[o++] = (char)ch;
	}
	if (label == 0) { /* "a.." : a trailing empty label besides the root */
		*why = "has an empty label";
		return -1;
	}
	if (out[o - 1] == '-') {
		*why = "has a label ending in '-'";
		return -1;
	}
	out[o] = '\0';
	return 0;
}

/* One destinations entry: a CIDR (has a '/'), else a name or "*.suffix". */
static int parse_destination(struct pctx *c, yaml_node_t *it, const char *f2, struct rule *ru)
{
	const char *s = scalar(it), *why = NULL;
	char canon[POLICY_NAME_MAX + 2];
	uint8_t probe[16];

	if (strchr(s, '/') != NULL) {
		struct prange *d = &ru->dst[ru->ndst];
		int pr = parse_cidr(s, d);
		if (pr == -2)
			return perr(c, it, f2, "\"%s\" has host bits set beyond its prefix length", s);
		if (pr != 0)
			return perr(c, it, f2, "\"%s\" is not an IPv4 or IPv6 CIDR (e.g. 203.0.113.0/24, 2001:db8::/32)",
				    s);
		if (d->lo == 0 && d->hi == (d->version == 4 ? ((u128)1 << 32) - 1 : ~(u128)0))
			ru->all_family = 1;
		ru->ndst++;
		return 0;
	}
	if (inet_pton(AF_INET, s, probe) == 1 || inet_pton(AF_INET6, s, probe) == 1)
		return perr(c, it, f2, "\"%s\" is an address: expected a CIDR (e.g. %s/%d) or a name", s,
			    s, strchr(s, ':') ? 128 : 32);
	if (strlen(s) > POLICY_NAME_MAX + 1 || policy_name_canon(s, 1, canon, &why) != 0)
		return perr(c, it, f2, "\"%s\" %s: expected a CIDR, a DNS name (portal.example) or "
				       "\"*.\" and a name (*.example)",
			    s, why ? why : "is too long");
	struct pname *pn = &ru->names[ru->nnames];
	pn->wild = canon[0] == '*';
	if (!(pn->name = strdup(pn->wild ? canon + 2 : canon)))
		return ZG_ERR_NOMEM;
	ru->nnames++;
	return 0;
}

static int parse_rule(struct pctx *c, yaml_node_t *n, const char *where, struct rule *ru)
{
	char field[160];
	int r, have_id = 0, have_action = 0, have_dst = 0;
	const yaml_node_t *flow_key = NULL, *conn_key = NULL, *first;
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
		if ((first = earlier_key(c, n, pair)) != NULL)
			return given_twice(c, k, field, first);
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
		} else if (strcmp(key, "connector") == 0) {
			if ((r = want(c, v, YAML_SCALAR_NODE, field)) != 0)
				return r;
			if (!connector_id_valid(scalar(v)))
				return perr(c, v, field,
					    "\"%s\" is not a connector ID (1-%d characters of A-Z a-z 0-9 . _ -)",
					    scalar(v), POLICY_ID_MAX - 1);
			if (find_connector(c->p, scalar(v)) == NULL)
				return perr(c, v, field,
					    "connector \"%s\" is not listed under connectors:", scalar(v));
			memcpy(ru->connector, scalar(v), strlen(scalar(v)) + 1);
			conn_key = k;
		} else if (strcmp(key, "destinations") == 0) {
			flow_key = k;
			if ((r = seq_len(c, v, field, &cnt)) != 0)
				return r;
			if (cnt == 0)
				return perr(c, v, field, "needs at least one CIDR or name (use 0.0.0.0/0 and ::/0 for everything)");
			if (!(ru->dst = calloc(cnt, sizeof(*ru->dst))) ||
			    !(ru->names = calloc(cnt, sizeof(*ru->names))))
				return ZG_ERR_NOMEM;
			for (size_t i = 0; i < cnt; i++) {
				yaml_node_t *it;
				char f2[192];
				if ((r = seq_scalar(c, v, field, i, f2, sizeof(f2), &it)) != 0)
					return r;
				if ((r = parse_destination(c, it, f2, ru)) != 0)
					return r;
			}
			have_dst = 1;
		} else if (strcmp(key, "protocols") == 0) {
			flow_key = k;
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
			flow_key = k;
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
			return perr(c, k, field, "unknown key (expected id, action, destinations, protocols, ports, connector)");
		}
	}
	if (!have_id)
		return perr(c, n, where, "missing key \"id\"");
	if (!have_action)
		return perr(c, n, where, "missing key \"action\" (allow or deny)");
	if (conn_key != NULL && flow_key != NULL)
		return perr(c, flow_key, where,
			    "\"%s\" does not go with \"connector\": a connector rule has no destinations, protocols or ports",
			    scalar(flow_key));
	if (conn_key != NULL)
		return 0;
	if (!have_dst)
		return perr(c, n, where, "missing key \"destinations\" (or \"connector\")");
	if (ru->nports && !(ru->protos & (PROTO_TCP | PROTO_UDP)))
		return perr(c, n, where, "ports apply only to tcp and udp, but the rule allows neither");
	return 0;
}

static int parse_client(struct pctx *c, yaml_node_t *k, yaml_node_t *v, struct client *cl)
{
	char field[192];
	yaml_node_pair_t *pair;
	int r;

	const yaml_node_t *first;

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
		if ((first = earlier_key(c, v, pair)) != NULL)
			return given_twice(c, rk, rf, first);
		cl->catchall = cnt;
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
			if (cl->rules[i].all_family && cl->catchall == cnt)
				cl->catchall = i;
		}
	}
	return 0;
}

static int client_cmp(const void *a, const void *b)
{
	return strcmp(((const struct client *)a)->id, ((const struct client *)b)->id);
}

/* Names hash from their last byte to their first, so that one pass over a
 * query name yields the hash of every suffix (name_hash_fin at each dot). */
static uint64_t name_hash_step(uint64_t h, char ch)
{
	return (h ^ (unsigned char)ch) * 0x100000001b3ull;
}

static uint64_t name_hash_fin(uint64_t h, uint32_t client, uint8_t wild)
{
	h ^= ((uint64_t)client << 1) ^ wild;
	h ^= h >> 29;
	return h * 0xbf58476d1ce4e5b9ull;
}

#define NAME_HASH_INIT 0xcbf29ce484222325ull

static uint64_t name_hash(const char *s, size_t n, uint32_t client, uint8_t wild)
{
	uint64_t h = NAME_HASH_INIT;

	while (n-- > 0)
		h = name_hash_step(h, s[n]);
	return name_hash_fin(h, client, wild);
}

/* The slot holding (client, wild, s[0..n)), or the empty slot it would go in. */
static struct nent *name_slot(const struct policy *p, uint64_t h, const char *s, size_t n,
			      uint32_t client, uint8_t wild)
{
	for (size_t i = (size_t)h & p->ntab_mask;; i = (i + 1) & p->ntab_mask) {
		struct nent *e = &p->ntab[i];
		if (e->name == NULL ||
		    (e->h == h && e->client == client && e->wild == wild &&
		     strncmp(e->name, s, n) == 0 && e->name[n] == '\0'))
			return e;
	}
}

/* Indexes every rule name; the first rule naming a (client, name) wins. */
static int build_name_index(struct policy *p)
{
	size_t total = 0, size = 16;

	for (size_t c = 0; c < p->nclients; c++)
		for (size_t r = 0; r < p->clients[c].nrules; r++)
			total += p->clients[c].rules[r].nnames;
	p->nnames = total;
	if (total == 0)
		return 0;
	while (size < total * 2)
		size <<= 1;
	if (!(p->ntab = calloc(size, sizeof(*p->ntab))))
		return ZG_ERR_NOMEM;
	p->ntab_mask = size - 1;
	for (size_t c = 0; c < p->nclients; c++) {
		const struct client *cl = &p->clients[c];
		for (size_t r = 0; r < cl->nrules; r++) {
			for (size_t j = 0; j < cl->rules[r].nnames; j++) {
				const struct pname *pn = &cl->rules[r].names[j];
				size_t n = strlen(pn->name);
				uint64_t h = name_hash(pn->name, n, (uint32_t)c, pn->wild);
				struct nent *e = name_slot(p, h, pn->name, n, (uint32_t)c, pn->wild);
				if (e->name != NULL)
					continue;
				*e = (struct nent){ h, pn->name, (uint32_t)c, (uint32_t)r, pn->wild };
			}
		}
	}
	return 0;
}

static int connector_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pconnector *)a)->id, ((const struct pconnector *)b)->id);
}

/* connectors: { ID: { prefixes: [CIDR, ...] } } (issue 22). */
static int parse_connectors(struct pctx *c, yaml_node_t *k, yaml_node_t *v, struct policy *p)
{
	const yaml_node_t *first;
	size_t cnt;
	int r;

	if ((r = want(c, v, YAML_MAPPING_NODE, "connectors")) != 0)
		return r;
	if (p->connectors) /* the top-level check refuses it first; this is the backstop */
		return perr(c, k, "connectors", "given twice");
	cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
	if (cnt && !(p->connectors = calloc(cnt, sizeof(*p->connectors))))
		return ZG_ERR_NOMEM;
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *ck = node(c, v->data.mapping.pairs.start[i].key);
		yaml_node_t *cv = node(c, v->data.mapping.pairs.start[i].value);
		struct pconnector *pc = &p->connectors[i];
		int have_pfx = 0;
		char field[192];

		p->nconnectors = i + 1;
		if (!ck || !cv || (r = want(c, ck, YAML_SCALAR_NODE, "connectors")) != 0)
			return r ? r : ZG_ERR_CONFIG;
		fieldname(field, sizeof(field), "connectors.%s", scalar(ck));
		if (!connector_id_valid(scalar(ck)))
			return perr(c, ck, field,
				    "\"%s\" is not a connector ID (1-%d characters of A-Z a-z 0-9 . _ -)",
				    scalar(ck), POLICY_ID_MAX - 1);
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->connectors[j].id, scalar(ck)) == 0)
				return perr(c, ck, "connectors", "connector \"%s\" is listed twice",
					    scalar(ck));
		memcpy(pc->id, scalar(ck), strlen(scalar(ck)) + 1);
		if ((r = want(c, cv, YAML_MAPPING_NODE, field)) != 0)
			return r;
		for (yaml_node_pair_t *pair = cv->data.mapping.pairs.start;
		     pair < cv->data.mapping.pairs.top; pair++) {
			yaml_node_t *pk = node(c, pair->key), *pv = node(c, pair->value);
			char pf[224];
			size_t n;

			if (!pk || !pv || (r = want(c, pk, YAML_SCALAR_NODE, field)) != 0)
				return r ? r : ZG_ERR_CONFIG;
			if (strcmp(scalar(pk), "prefixes") != 0)
				return perr(c, pk, field, "unknown key \"%s\" (expected prefixes)",
					    scalar(pk));
			fieldname(pf, sizeof(pf), "%s.prefixes", field);
			if ((first = earlier_key(c, cv, pair)) != NULL)
				return given_twice(c, pk, pf, first);
			if ((r = seq_len(c, pv, pf, &n)) != 0)
				return r;
			if (n == 0)
				return perr(c, pv, pf, "needs at least one CIDR the connector serves");
			if (!(pc->pfx = calloc(n, sizeof(*pc->pfx))))
				return ZG_ERR_NOMEM;
			for (size_t j = 0; j < n; j++) {
				yaml_node_t *it;
				char f2[240];
				int pr;

				if ((r = seq_scalar(c, pv, pf, j, f2, sizeof(f2), &it)) != 0)
					return r;
				pr = parse_cidr(scalar(it), &pc->pfx[j]);
				if (pr == -2)
					return perr(c, it, f2,
						    "\"%s\" has host bits set beyond its prefix length",
						    scalar(it));
				if (pr != 0)
					return perr(c, it, f2,
						    "\"%s\" is not an IPv4 or IPv6 CIDR (e.g. 10.20.0.0/16)",
						    scalar(it));
				pc->npfx = j + 1;
			}
			have_pfx = 1;
		}
		if (!have_pfx)
			return perr(c, cv, field, "missing key \"prefixes\"");
	}
	if (p->nconnectors)
		qsort(p->connectors, p->nconnectors, sizeof(*p->connectors), connector_cmp);
	return 0;
}

static int parse_doc(struct pctx *c, struct policy *p)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc), *k, *v;
	const yaml_node_t *first;
	yaml_node_pair_t *pair;
	int r, have_version = 0;

	if (!root)
		return perr(c, NULL, "policy", "the file is empty (expected version, default_action, clients)");
	if ((r = want(c, root, YAML_MAPPING_NODE, "policy")) != 0)
		return r;
	/* a key given twice is refused, as in a rule: YAML would keep the
	 * last, and a second default_action: allow would win silently */
	for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
		k = node(c, pair->key);
		if (!k || k->type != YAML_SCALAR_NODE)
			continue; /* reported below */
		if ((first = earlier_key(c, root, pair)) != NULL)
			return given_twice(c, k, scalar(k), first);
	}
	/* connectors first: client rules name them wherever they appear */
	for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
		k = node(c, pair->key);
		v = node(c, pair->value);
		if (k && v && k->type == YAML_SCALAR_NODE && strcmp(scalar(k), "connectors") == 0 &&
		    (r = parse_connectors(c, k, v, p)) != 0)
			return r;
	}
	for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
		k = node(c, pair->key);
		v = node(c, pair->value);
		if (!k || !v || (r = want(c, k, YAML_SCALAR_NODE, "policy")) != 0)
			return r ? r : ZG_ERR_CONFIG;
		const char *key = scalar(k);
		if (strcmp(key, "connectors") == 0) {
			continue; /* parsed above */
		} else if (strcmp(key, "version") == 0) {
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
			if (p->clients) /* the top-level check refuses it first */
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
			return perr(c, k, key, "unknown key (expected version, default_action, connectors, clients)");
		}
	}
	if (!have_version)
		return perr(c, root, "version", "missing (expected version: 1)");
	if (p->nclients)
		qsort(p->clients, p->nclients, sizeof(*p->clients), client_cmp);
	return build_name_index(p);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nclients; i++)
		free_rules(p->clients[i].rules, p->clients[i].nrules);
	free(p->clients);
	for (size_t i = 0; i < p->nconnectors; i++)
		free(p->connectors[i].pfx);
	free(p->connectors);
	free(p->ntab);
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
	c.p = p;
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
	struct stat st;
	long sz;
	size_t n;
	int r, e;

	if (!f) {
		if (err && errlen)
			(void)snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return ZG_ERR_IO;
	}
	/* a directory opens, and its size (LONG_MAX) read as "too large" */
	if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
		if (err && errlen)
			(void)snprintf(err, errlen, "%s: %s, not a policy file", path,
				       S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
		fclose(f);
		return ZG_ERR_CONFIG;
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
	e = errno;
	/* A read error, or a file cut or grown since it was measured (written
	 * in place while the relay reloads): what was read is not the policy,
	 * and parsed it could be a valid one with rules missing. The policy in
	 * force stays; the next change reloads. */
	if (ferror(f) || n != (size_t)sz || getc(f) != EOF) {
		if (err && errlen) {
			if (ferror(f))
				(void)snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
			else
				(void)snprintf(err, errlen,
					       "%s: cannot read: it changed while being read (%ld bytes, "
					       "then %s)",
					       path, sz, n != (size_t)sz ? "fewer" : "more");
		}
		fclose(f);
		free(buf);
		return ZG_ERR_IO;
	}
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

static int rule_matches(const struct rule *ru, const struct policy_flow *f, u128 dst, int bound)
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
	ok = bound;
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
	policy_eval_bound(p, client_id, flow, NULL, out);
}

void policy_eval_bound(const struct policy *p, const char *client_id,
		       const struct policy_flow *flow, const char *bound_rule,
		       struct policy_verdict *out)
{
	const struct client *cl = find_client(p, client_id);
	u128 dst = load_addr(flow->dst, flow->version);

	if (cl) {
		for (size_t i = 0; i < cl->nrules; i++) {
			const struct rule *ru = &cl->rules[i];
			int bound = bound_rule != NULL && ru->nnames != 0 &&
				    strcmp(ru->id, bound_rule) == 0;
			if (rule_matches(ru, flow, dst, bound)) {
				out->action = cl->rules[i].action;
				out->rule_id = cl->rules[i].id;
				return;
			}
		}
	}
	out->action = p->def;
	out->rule_id = "default";
}

enum policy_action policy_eval_name(const struct policy *p, const char *client_id,
				    const char *name, const char **prule_id)
{
	const struct client *cl = find_client(p, client_id);
	char canon[POLICY_NAME_MAX + 2];
	const char *why;
	size_t best, n;
	uint32_t ci;

	if (strlen(name) > POLICY_NAME_MAX || policy_name_canon(name, 0, canon, &why) != 0) {
		*prule_id = "invalid";
		return POLICY_DENY;
	}
	if (cl == NULL) {
		*prule_id = "default";
		return p->def;
	}
	best = cl->catchall;
	ci = (uint32_t)(cl - p->clients);
	n = strlen(canon);
	if (p->ntab != NULL) {
		uint64_t h = NAME_HASH_INIT;
		struct nent *e;
		for (size_t i = n; i-- > 0;) {
			if (canon[i] == '.') {
				/* h covers canon[i+1..n): the suffix a wildcard names */
				const char *suf = canon + i + 1;
				e = name_slot(p, name_hash_fin(h, ci, 1), suf, n - i - 1, ci, 1);
				if (e->name && e->rule < best)
					best = e->rule;
			}
			h = name_hash_step(h, canon[i]);
		}
		e = name_slot(p, name_hash_fin(h, ci, 0), canon, n, ci, 0);
		if (e->name && e->rule < best)
			best = e->rule;
	}
	if (best < cl->nrules) {
		*prule_id = cl->rules[best].id;
		return cl->rules[best].action;
	}
	*prule_id = "default";
	return p->def;
}

int policy_client_domains(const struct policy *p, const char *client_id,
			  char out[][POLICY_NAME_MAX], size_t max, size_t *pn)
{
	const struct client *cl = find_client(p, client_id);
	size_t n = 0;

	*pn = 0;
	for (size_t r = 0; cl && r < cl->nrules; r++) {
		const struct rule *ru = &cl->rules[r];
		if (ru->action != POLICY_ALLOW)
			continue;
		for (size_t j = 0; j < ru->nnames; j++) {
			size_t k;
			for (k = 0; k < n && strcmp(out[k], ru->names[j].name) != 0; k++)
				;
			if (k < n)
				continue;
			if (n == max)
				return ZG_ERR_TOO_LARGE;
			(void)snprintf(out[n++], POLICY_NAME_MAX, "%s", ru->names[j].name);
		}
	}
	*pn = n;
	return 0;
}

int policy_client_has_names(const struct policy *p, const char *client_id)
{
	const struct client *cl = find_client(p, client_id);

	for (size_t r = 0; cl && r < cl->nrules; r++)
		if (cl->rules[r].action == POLICY_ALLOW && cl->rules[r].nnames > 0)
			return 1;
	return 0;
}

size_t policy_name_count(const struct policy *p)
{
	return p->nnames;
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
		int keep_left = a[i].lo<lo, keep_right = a[i].hi> hi;
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

/* ---------------------------------------------------------------- connectors */

size_t policy_connector_count(const struct policy *p)
{
	return p->nconnectors;
}

int policy_has_connector(const struct policy *p, const char *connector_id)
{
	return find_connector(p, connector_id) != NULL;
}

int policy_connector_prefixes(const struct policy *p, const char *connector_id,
			      struct cip_route *out, size_t max, size_t *pn)
{
	const struct pconnector *pc = find_connector(p, connector_id);

	*pn = 0;
	if (pc == NULL)
		return ZG_ERR_NOTFOUND;
	if (pc->npfx > max)
		return ZG_ERR_TOO_LARGE;
	for (size_t i = 0; i < pc->npfx; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].version = pc->pfx[i].version;
		store_addr(pc->pfx[i].lo, out[i].start, pc->pfx[i].version);
		store_addr(pc->pfx[i].hi, out[i].end, pc->pfx[i].version);
	}
	*pn = pc->npfx;
	return 0;
}

enum policy_action policy_client_may_reach_connector(const struct policy *p, const char *client_id,
						     const char *connector_id,
						     const char **prule_id)
{
	const struct client *cl = find_client(p, client_id);

	for (size_t i = 0; cl != NULL && i < cl->nrules; i++) {
		const struct rule *ru = &cl->rules[i];
		if (ru->connector[0] != '\0' && strcmp(ru->connector, connector_id) == 0) {
			if (prule_id != NULL)
				*prule_id = ru->id;
			return ru->action;
		}
	}
	if (prule_id != NULL)
		*prule_id = "default";
	return POLICY_DENY;
}

int policy_client_connectors(const struct policy *p, const char *client_id,
			     char out[][POLICY_ID_MAX], size_t max, size_t *pn)
{
	const struct client *cl = find_client(p, client_id);
	size_t n = 0;

	*pn = 0;
	for (size_t i = 0; cl != NULL && i < cl->nrules; i++) {
		const struct rule *ru = &cl->rules[i];
		size_t k;

		if (ru->connector[0] == '\0' || ru->action != POLICY_ALLOW ||
		    policy_client_may_reach_connector(p, client_id, ru->connector, NULL) !=
			    POLICY_ALLOW)
			continue;
		for (k = 0; k < n && strcmp(out[k], ru->connector) != 0; k++)
			;
		if (k < n)
			continue;
		if (n == max)
			return ZG_ERR_TOO_LARGE;
		memcpy(out[n++], ru->connector, strlen(ru->connector) + 1);
	}
	*pn = n;
	return 0;
}
