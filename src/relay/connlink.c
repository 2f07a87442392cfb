/*
 * connlink — forwarding between agent and connector tunnels (connlink.h).
 */
#include "relay/connlink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

#define LINK_BUCKETS 4096 /* power of two */
#define PKT_MAX 65535

typedef unsigned __int128 u128;

struct conn {
	struct connlink_connector pub; /* first: connlink_find hands it out */
	struct cip_route announced[CONNLINK_MAX_ANNOUNCED];
	size_t nannounced;
	/* flow notes by kind (unsolicited, evicted): how many, how many at
	 * the last call of the hook, and when that was */
	uint64_t notes[2], noted[2], note_ms[2];
};

/* An agent port that sent to the link's connector (connlink.h "Flows");
 * port 0 = a free slot. */
struct flow {
	uint16_t port;
	uint64_t last_ms; /* the agent's last packet from it */
};

struct link {
	struct conn *conn;
	void *agent;
	char client[POLICY_ID_MAX];
	char rule[POLICY_ID_MAX];
	uint64_t client_sid;
	struct stack_addr addr; /* the agent's address this link carries */
	uint64_t opened_ms, last_ms;
	uint64_t bytes_up, bytes_down;
	struct flow flows[CONNLINK_FLOWS_PER_LINK];
	struct link *hnext;       /* bucket */
	struct link *next, *prev; /* all links */
};

struct connlink {
	struct connlink_hooks h;
	size_t max_links, nlinks;
	struct conn *conns[CONNLINK_MAX_CONNECTORS];
	size_t nconns;
	struct link *buckets[LINK_BUCKETS];
	struct link *head;
	struct connlink_counters cnt;
	uint8_t buf[PKT_MAX];
};

static const char *const drop_names[CONNLINK_NDROP] = {
	"policy",
	"port",
	"protocol",
	"spoofed",
	"no_link",
	"ttl",
	"malformed",
	"send",
	"limit",
	"unsolicited",
};

const char *connlink_drop_name(enum connlink_drop d)
{
	return (unsigned)d < CONNLINK_NDROP ? drop_names[d] : "unknown";
}

int connlink_new(const struct connlink_hooks *h, size_t max_links, struct connlink **pcl)
{
	struct connlink *cl = calloc(1, sizeof(*cl));

	if (cl == NULL)
		return ZG_ERR_NOMEM;
	cl->h = *h;
	cl->max_links = max_links ? max_links : CONNLINK_MAX_LINKS_DEFAULT;
	*pcl = cl;
	return 0;
}

/* ------------------------------------------------------------------ */
/* links                                                              */

static size_t link_hash(const struct conn *c, const struct stack_addr *a)
{
	uint64_t h = (uint64_t)(uintptr_t)c * 0x9e3779b97f4a7c15ULL;
	size_t n = a->version == 4 ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		h = (h ^ a->a[i]) * 0x100000001b3ULL;
	h ^= h >> 29;
	return (size_t)h & (LINK_BUCKETS - 1);
}

static struct link *link_find(const struct connlink *cl, const struct conn *c,
			      const struct stack_addr *a)
{
	for (struct link *l = cl->buckets[link_hash(c, a)]; l != NULL; l = l->hnext)
		if (l->conn == c && stack_addr_eq(&l->addr, a))
			return l;
	return NULL;
}

static void link_info(const struct connlink *cl, const struct link *l, struct connlink_info *li)
{
	memset(li, 0, sizeof(*li));
	li->client = l->client;
	li->connector = l->conn->pub.id;
	li->client_sid = l->client_sid;
	li->connector_sid = l->conn->pub.sid;
	li->rule = l->rule;
	li->bytes_up = l->bytes_up;
	li->bytes_down = l->bytes_down;
	li->duration_ms = cl->h.now_ms(cl->h.ctx) - l->opened_ms;
}

static void link_close(struct connlink *cl, struct link *l, const char *reason)
{
	struct connlink_info li;

	for (struct link **pp = &cl->buckets[link_hash(l->conn, &l->addr)]; *pp != NULL;
	     pp = &(*pp)->hnext) {
		if (*pp == l) {
			*pp = l->hnext;
			break;
		}
	}
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		cl->head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	cl->nlinks--;
	cl->cnt.links_closed++;
	if (reason != NULL) {
		link_info(cl, l, &li);
		cl->h.audit_close(cl->h.ctx, &li, reason);
	}
	free(l);
}

static struct link *link_open(struct connlink *cl, struct conn *c, const struct connlink_end *a,
			      const struct stack_addr *addr, const char *rule)
{
	struct link *l;
	struct connlink_info li;
	size_t h;

	if (cl->nlinks >= cl->max_links || (l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->conn = c;
	l->agent = a->sess;
	(void)snprintf(l->client, sizeof(l->client), "%s", a->id);
	(void)snprintf(l->rule, sizeof(l->rule), "%s", rule != NULL ? rule : "");
	l->client_sid = a->sid;
	l->addr = *addr;
	l->opened_ms = l->last_ms = cl->h.now_ms(cl->h.ctx);
	h = link_hash(c, addr);
	l->hnext = cl->buckets[h];
	cl->buckets[h] = l;
	l->next = cl->head;
	if (cl->head != NULL)
		cl->head->prev = l;
	cl->head = l;
	cl->nlinks++;
	cl->cnt.links_opened++;
	link_info(cl, l, &li);
	cl->h.audit_open(cl->h.ctx, &li);
	return l;
}

void connlink_free(struct connlink *cl, const char *reason)
{
	if (cl == NULL)
		return;
	while (cl->head != NULL)
		link_close(cl, cl->head, reason);
	for (size_t i = 0; i < cl->nconns; i++)
		free(cl->conns[i]);
	free(cl);
}

/* ------------------------------------------------------------------ */
/* connectors                                                         */

static size_t conn_index(const struct connlink *cl, const void *sess)
{
	size_t i;

	for (i = 0; i < cl->nconns; i++)
		if (cl->conns[i]->pub.sess == sess)
			break;
	return i;
}

static void conn_remove(struct connlink *cl, size_t i, const char *reason)
{
	struct conn *c = cl->conns[i];
	struct link *l, *next;

	for (l = cl->head; l != NULL; l = next) {
		next = l->next;
		if (l->conn == c)
			link_close(cl, l, reason);
	}
	cl->conns[i] = cl->conns[--cl->nconns];
	free(c);
}

const struct connlink_connector *connlink_find(const struct connlink *cl, const char *id)
{
	for (size_t i = 0; i < cl->nconns; i++)
		if (strcmp(cl->conns[i]->pub.id, id) == 0)
			return &cl->conns[i]->pub;
	return NULL;
}

int connlink_connector_up(struct connlink *cl, const struct connlink_end *e, uint16_t port)
{
	struct conn *c;

	for (size_t i = 0; i < cl->nconns; i++) {
		if (strcmp(cl->conns[i]->pub.id, e->id) == 0 || cl->conns[i]->pub.sess == e->sess) {
			conn_remove(cl, i, "replaced");
			break;
		}
	}
	if (cl->nconns >= CONNLINK_MAX_CONNECTORS)
		return ZG_ERR_LIMIT;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ZG_ERR_NOMEM;
	(void)snprintf(c->pub.id, sizeof(c->pub.id), "%s", e->id);
	c->pub.sess = e->sess;
	c->pub.sid = e->sid;
	c->pub.vip4 = e->vip4;
	c->pub.vip6 = e->vip6;
	c->pub.port = port;
	c->pub.remote = e->remote;
	cl->conns[cl->nconns++] = c;
	return 0;
}

static u128 load128(const uint8_t *a, uint8_t version)
{
	u128 v = 0;

	for (unsigned i = 0; i < (version == 4 ? 4u : 16u); i++)
		v = (v << 8) | a[i];
	return v;
}

static void store128(u128 v, uint8_t *a, uint8_t version)
{
	unsigned bytes = version == 4 ? 4 : 16;

	memset(a, 0, 16);
	for (unsigned i = bytes; i-- > 0;) {
		a[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

/* Appends [lo, hi] as the fewest CIDR prefixes; 0, or -1 when out is full. */
static int range_to_prefixes(u128 lo, u128 hi, uint8_t version, struct connlink_prefix *out,
			     size_t cap, size_t *pn)
{
	unsigned bits = version == 4 ? 32 : 128;

	for (;;) {
		unsigned k = 0; /* host bits of the largest block starting at lo inside [lo, hi] */

		while (k < bits) {
			u128 blk = k + 1 == 128 ? ~(u128)0 : ((u128)1 << (k + 1)) - 1;

			if ((lo & blk) != 0 || hi - lo < blk)
				break;
			k++;
		}
		if (*pn == cap)
			return -1;
		out[*pn].version = version;
		store128(lo, out[*pn].a, version);
		out[*pn].len = (uint8_t)(bits - k);
		(*pn)++;
		if (k == 128)
			return 0; /* all of IPv6 */
		u128 last = lo + (((u128)1 << k) - 1);
		if (last >= hi)
			return 0;
		lo = last + 1;
	}
}

/* Recomputes c's accepted prefixes from its announced ranges and the
 * policy's bound. Returns 1 when they changed. */
static void rejected(struct connlink *cl, const struct conn *c, const struct cip_route *r,
		     const char *why)
{
	if (c->pub.remote == 0)
		cl->h.rejected(cl->h.ctx, c->pub.id, r, why);
}

static int conn_filter(struct connlink *cl, struct conn *c)
{
	struct cip_route bound[CONNLINK_MAX_PREFIXES];
	struct connlink_prefix acc[CONNLINK_MAX_PREFIXES];
	size_t nb = 0, na = 0;
	int changed;

	if (cl->h.bound(cl->h.ctx, c->pub.id, bound, CONNLINK_MAX_PREFIXES, &nb) != 0)
		nb = 0;
	for (size_t i = 0; i < c->nannounced; i++) {
		const struct cip_route *r = &c->announced[i];
		u128 lo = load128(r->start, r->version), hi = load128(r->end, r->version);
		int inside = 0;

		if (lo > hi) {
			rejected(cl, c, r, "starts after its end");
			continue;
		}
		for (size_t j = 0; j < nb && !inside; j++)
			inside = bound[j].version == r->version &&
				 lo >= load128(bound[j].start, r->version) &&
				 hi <= load128(bound[j].end, r->version);
		if (!inside) {
			rejected(cl, c, r, "outside the prefixes the policy lets it serve");
			continue;
		}
		size_t before = na;
		if (range_to_prefixes(lo, hi, r->version, acc, CONNLINK_MAX_PREFIXES, &na) != 0) {
			na = before;
			rejected(cl, c, r, "more prefixes than a connector may have");
		}
	}
	changed = na != c->pub.nprefixes ||
		  (na > 0 && memcmp(acc, c->pub.prefixes, na * sizeof(acc[0])) != 0);
	memset(c->pub.prefixes, 0, sizeof(c->pub.prefixes));
	memcpy(c->pub.prefixes, acc, na * sizeof(acc[0]));
	c->pub.nprefixes = na;
	return changed;
}

int connlink_announce(struct connlink *cl, void *sess, const struct cip_route *r, size_t n)
{
	size_t i = conn_index(cl, sess);
	struct conn *c;

	if (i == cl->nconns)
		return ZG_ERR_NOTFOUND;
	c = cl->conns[i];
	c->nannounced = 0;
	for (size_t k = 0; k < n; k++) {
		if (r[k].version != 4 && r[k].version != 6)
			continue;
		if (c->nannounced == CONNLINK_MAX_ANNOUNCED) {
			rejected(cl, c, &r[k], "more ranges than a connector may announce");
			continue;
		}
		c->announced[c->nannounced++] = r[k];
	}
	return conn_filter(cl, c);
}

int connlink_session_closed(struct connlink *cl, void *sess)
{
	size_t i = conn_index(cl, sess);
	struct link *l, *next;

	if (i < cl->nconns) {
		conn_remove(cl, i, "connector_closed");
		return 1;
	}
	for (l = cl->head; l != NULL; l = next) {
		next = l->next;
		if (l->agent == sess)
			link_close(cl, l, "client_closed");
	}
	return 0;
}

size_t connlink_policy_changed(struct connlink *cl)
{
	struct link *l, *next;
	size_t closed = 0;

	for (l = cl->head; l != NULL; l = next) {
		const char *rule = NULL;

		next = l->next;
		if (cl->h.may_reach(cl->h.ctx, l->client, l->conn->pub.id, &rule) == POLICY_ALLOW) {
			/* still allowed: the rule's name is the policy's now */
			(void)snprintf(l->rule, sizeof(l->rule), "%s", rule != NULL ? rule : "");
			continue;
		}
		link_close(cl, l, "policy");
		closed++;
	}
	for (size_t i = 0; i < cl->nconns; i++)
		(void)conn_filter(cl, cl->conns[i]);
	return closed;
}

size_t connlink_expire(struct connlink *cl)
{
	uint64_t now = cl->h.now_ms(cl->h.ctx);
	struct link *l, *next;
	size_t n = 0;

	for (l = cl->head; l != NULL; l = next) {
		next = l->next;
		if (now - l->last_ms >= CONNLINK_IDLE_MS) {
			link_close(cl, l, "idle_timeout");
			n++;
		}
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* flows                                                              */

/* Counts a flow note of l's connector; tells the hook the first one and
 * then at most one every CONNLINK_NOTE_MS. */
static void flow_note(struct connlink *cl, const struct link *l, uint16_t agent_port,
		      int evicted)
{
	struct conn *c = l->conn;
	struct connlink_flow f;
	uint64_t now = cl->h.now_ms(cl->h.ctx);
	int k = evicted != 0;

	c->notes[k]++;
	if (cl->h.flow_note == NULL ||
	    (c->noted[k] != 0 && now - c->note_ms[k] < CONNLINK_NOTE_MS))
		return;
	memset(&f, 0, sizeof(f));
	f.client = l->client;
	f.connector = c->pub.id;
	f.agent = l->addr;
	f.agent_port = agent_port;
	f.conn = l->addr.version == 4 ? c->pub.vip4 : c->pub.vip6;
	f.conn_port = c->pub.port;
	cl->h.flow_note(cl->h.ctx, &f, evicted, c->notes[k] - c->noted[k]);
	c->noted[k] = c->notes[k];
	c->note_ms[k] = now;
}

static int flow_live(const struct flow *f, uint64_t now)
{
	return f->port != 0 && now - f->last_ms < CONNLINK_FLOW_IDLE_MS;
}

/* The agent sent from port to l's connector: its flow is fresh now. A new
 * one takes a free or expired slot, else the least recently used (port 0
 * is not a port a packet comes from: the agent's stack never sends from
 * it, and such a flow would only hold a slot). */
static void flow_touch(struct connlink *cl, struct link *l, uint16_t port, uint64_t now)
{
	struct flow *f, *lru = &l->flows[0];

	if (port == 0)
		return;
	for (size_t i = 0; i < CONNLINK_FLOWS_PER_LINK; i++) {
		f = &l->flows[i];
		if (f->port == port) {
			f->last_ms = now;
			return;
		}
		if (!flow_live(lru, now))
			continue; /* lru is already a free or expired slot */
		if (!flow_live(f, now) || f->last_ms < lru->last_ms)
			lru = f;
	}
	if (flow_live(lru, now)) {
		cl->cnt.flows_evicted++;
		flow_note(cl, l, lru->port, 1);
	}
	lru->port = port;
	lru->last_ms = now;
}

/* 1 when port of l's agent has a live flow. */
static int flow_open(const struct link *l, uint16_t port, uint64_t now)
{
	for (size_t i = 0; i < CONNLINK_FLOWS_PER_LINK; i++)
		if (l->flows[i].port == port && port != 0)
			return flow_live(&l->flows[i], now);
	return 0;
}

/* ------------------------------------------------------------------ */
/* packets                                                            */

struct pkt {
	uint8_t version;
	struct stack_addr src, dst;
	uint8_t proto; /* 17 when UDP */
	uint16_t sport, dport;
	size_t ttl_off; /* offset of the TTL / hop limit */
};

/* Parses the IP and UDP headers of p. Returns 0, or the drop reason
 * (MALFORMED: not even the IP header; PROTOCOL: not plain UDP). dst and
 * src are set whenever the IP header is whole. */
static int parse(const uint8_t *p, size_t len, struct pkt *k)
{
	size_t hl;

	memset(k, 0, sizeof(*k));
	if (len < 1)
		return CONNLINK_DROP_MALFORMED;
	k->version = p[0] >> 4;
	if (k->version == 4) {
		if (len < 20)
			return CONNLINK_DROP_MALFORMED;
		k->src.version = k->dst.version = 4;
		memcpy(k->src.a, p + 12, 4);
		memcpy(k->dst.a, p + 16, 4);
		if ((hl = (size_t)(p[0] & 0x0f) * 4) < 20 || len < hl ||
		    (((size_t)p[2] << 8) | p[3]) != len)
			return CONNLINK_DROP_MALFORMED;
		k->proto = p[9];
		k->ttl_off = 8;
		if (k->proto != 17 || (p[6] & 0x3f) != 0 || p[7] != 0) /* MF or an offset */
			return CONNLINK_DROP_PROTOCOL;
	} else if (k->version == 6) {
		if (len < 40)
			return CONNLINK_DROP_MALFORMED;
		k->src.version = k->dst.version = 6;
		memcpy(k->src.a, p + 8, 16);
		memcpy(k->dst.a, p + 24, 16);
		if ((((size_t)p[4] << 8) | p[5]) + 40 != len)
			return CONNLINK_DROP_MALFORMED;
		k->proto = p[6];
		k->ttl_off = 7;
		hl = 40;
		if (k->proto != 17)
			return CONNLINK_DROP_PROTOCOL;
	} else {
		return CONNLINK_DROP_MALFORMED;
	}
	if (len < hl + 8)
		return CONNLINK_DROP_MALFORMED;
	k->sport = (uint16_t)((p[hl] << 8) | p[hl + 1]);
	k->dport = (uint16_t)((p[hl + 2] << 8) | p[hl + 3]);
	return 0;
}

static const struct stack_addr *vip_of(const struct stack_addr *v4, const struct stack_addr *v6,
				       uint8_t version)
{
	return version == 4 ? v4 : v6;
}

static enum connlink_result drop(struct connlink *cl, enum connlink_drop why)
{
	cl->cnt.drops[why]++;
	return CONNLINK_DROPPED;
}

/* Copies p with the TTL / hop limit one less (IPv4: header checksum
 * updated as RFC 1624 eqn. 3) and sends it into sess. */
static enum connlink_result forward(struct connlink *cl, const struct pkt *k, void *sess,
				    const struct conn *remote, const uint8_t *p, size_t len,
				    enum connlink_dir dir)
{
	int rv;

	if (p[k->ttl_off] <= 1)
		return drop(cl, CONNLINK_DROP_TTL);
	memcpy(cl->buf, p, len);
	cl->buf[k->ttl_off]--;
	if (k->version == 4) {
		/* the 16-bit word holding the TTL: TTL << 8 | protocol */
		uint32_t old = (uint32_t)p[8] << 8 | p[9], new = (uint32_t)cl->buf[8] << 8 | p[9];
		uint32_t sum = (uint32_t)(~(((uint32_t)p[10] << 8) | p[11]) & 0xffff);

		sum += (~old & 0xffff) + new;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		sum = ~sum & 0xffff;
		cl->buf[10] = (uint8_t)(sum >> 8);
		cl->buf[11] = (uint8_t)sum;
	}
	if (remote != NULL)
		rv = cl->h.send_remote != NULL
			     ? cl->h.send_remote(cl->h.ctx, &remote->pub, cl->buf, len)
			     : ZG_ERR_STATE;
	else
		rv = cl->h.send(cl->h.ctx, sess, cl->buf, len);
	if (rv != 0)
		return drop(cl, CONNLINK_DROP_SEND);
	cl->cnt.packets[dir]++;
	cl->cnt.bytes[dir] += len;
	return CONNLINK_FORWARDED;
}

enum connlink_result connlink_from_agent(struct connlink *cl, const struct connlink_end *a,
					 const uint8_t *pkt, size_t len)
{
	struct conn *c = NULL;
	struct link *l;
	struct pkt k;
	const char *rule = NULL;
	enum connlink_result res;
	int bad;

	if (cl->nconns == 0 || len > PKT_MAX)
		return CONNLINK_PASS;
	bad = parse(pkt, len, &k);
	if (k.dst.version == 0)
		return CONNLINK_PASS; /* not even an IP header: the stack's to drop */
	for (size_t i = 0; i < cl->nconns && c == NULL; i++)
		if (stack_addr_eq(vip_of(&cl->conns[i]->pub.vip4, &cl->conns[i]->pub.vip6,
					 k.version),
				  &k.dst))
			c = cl->conns[i];
	if (c == NULL)
		return CONNLINK_PASS;
	if (bad)
		return drop(cl, (enum connlink_drop)bad);
	if (!stack_addr_eq(vip_of(&a->vip4, &a->vip6, k.version), &k.src))
		return drop(cl, CONNLINK_DROP_SPOOFED);
	if (k.dport != c->pub.port)
		return drop(cl, CONNLINK_DROP_PORT);
	l = link_find(cl, c, &k.src);
	if (l != NULL && l->agent != a->sess) {
		/* the address passed to a newer session of the client */
		link_close(cl, l, "replaced");
		l = NULL;
	}
	if (l == NULL) {
		if (cl->h.may_reach(cl->h.ctx, a->id, c->pub.id, &rule) != POLICY_ALLOW)
			return drop(cl, CONNLINK_DROP_POLICY);
		if (pkt[k.ttl_off] <= 1)
			return drop(cl, CONNLINK_DROP_TTL);
		if ((l = link_open(cl, c, a, &k.src, rule)) == NULL)
			return drop(cl, CONNLINK_DROP_LIMIT);
	}
	res = forward(cl, &k, c->pub.sess, c->pub.remote ? c : NULL, pkt, len, CONNLINK_UP);
	if (res == CONNLINK_FORWARDED) {
		l->bytes_up += len;
		l->last_ms = cl->h.now_ms(cl->h.ctx);
		flow_touch(cl, l, k.sport, l->last_ms);
	}
	return res;
}

enum connlink_result connlink_from_connector(struct connlink *cl, void *sess, const uint8_t *pkt,
					     size_t len)
{
	size_t i = conn_index(cl, sess);
	struct conn *c;
	struct link *l;
	struct pkt k;
	enum connlink_result res;
	int bad;

	if (i == cl->nconns)
		return drop(cl, CONNLINK_DROP_NO_LINK);
	c = cl->conns[i];
	if (len > PKT_MAX)
		return drop(cl, CONNLINK_DROP_MALFORMED);
	if ((bad = parse(pkt, len, &k)) != 0)
		return drop(cl, (enum connlink_drop)bad);
	if (!stack_addr_eq(vip_of(&c->pub.vip4, &c->pub.vip6, k.version), &k.src))
		return drop(cl, CONNLINK_DROP_SPOOFED);
	if (k.sport != c->pub.port)
		return drop(cl, CONNLINK_DROP_PORT);
	if ((l = link_find(cl, c, &k.dst)) == NULL)
		return drop(cl, CONNLINK_DROP_NO_LINK);
	if (!flow_open(l, k.dport, cl->h.now_ms(cl->h.ctx))) {
		flow_note(cl, l, k.dport, 0);
		return drop(cl, CONNLINK_DROP_UNSOLICITED);
	}
	res = forward(cl, &k, l->agent, NULL, pkt, len, CONNLINK_DOWN);
	if (res == CONNLINK_FORWARDED) {
		l->bytes_down += len;
		l->last_ms = cl->h.now_ms(cl->h.ctx);
	}
	return res;
}

size_t connlink_connectors_up(const struct connlink *cl)
{
	size_t n = 0;

	for (size_t i = 0; i < cl->nconns; i++)
		n += cl->conns[i]->pub.remote == 0;
	return n;
}

const struct connlink_connector *connlink_find_local_sid(const struct connlink *cl,
							 uint64_t sid)
{
	for (size_t i = 0; i < cl->nconns; i++)
		if (cl->conns[i]->pub.sid == sid && cl->conns[i]->pub.remote == 0)
			return &cl->conns[i]->pub;
	return NULL;
}

int connlink_packet_dst(const uint8_t *pkt, size_t len, struct stack_addr *dst)
{
	struct pkt k;

	(void)parse(pkt, len, &k);
	if (k.dst.version == 0)
		return ZG_ERR_MALFORMED;
	*dst = k.dst;
	return 0;
}

int connlink_state_of(const struct connlink *cl, const void *sess, struct connlink_state *st)
{
	size_t i = conn_index(cl, sess);
	const struct conn *c;

	if (i == cl->nconns)
		return ZG_ERR_NOTFOUND;
	c = cl->conns[i];
	memset(st, 0, sizeof(*st));
	memcpy(st->id, c->pub.id, sizeof(st->id));
	st->sid = c->pub.sid;
	st->vip4 = c->pub.vip4;
	st->vip6 = c->pub.vip6;
	st->port = c->pub.port;
	memcpy(st->routes, c->announced, c->nannounced * sizeof(c->announced[0]));
	st->nroutes = c->nannounced;
	return 0;
}

static uint8_t *put_addr(const struct stack_addr *a, uint8_t *p)
{
	*p++ = a->version;
	memcpy(p, a->a, 16);
	return p + 16;
}

uint8_t *connlink_state_encode(const struct connlink_state *st, uint8_t *p, const uint8_t *end)
{
	size_t idlen = strnlen(st->id, sizeof(st->id));

	if (idlen == 0 || idlen >= sizeof(st->id) || st->nroutes > CONNLINK_MAX_ANNOUNCED ||
	    (size_t)(end - p) < 1 + idlen + 8 + 2 * 17 + 2 + 1 + st->nroutes * 34)
		return NULL;
	*p++ = (uint8_t)idlen;
	memcpy(p, st->id, idlen);
	p += idlen;
	for (int i = 0; i < 8; i++)
		*p++ = (uint8_t)(st->sid >> (56 - 8 * i));
	p = put_addr(&st->vip4, p);
	p = put_addr(&st->vip6, p);
	*p++ = (uint8_t)(st->port >> 8);
	*p++ = (uint8_t)st->port;
	*p++ = (uint8_t)st->nroutes;
	for (size_t i = 0; i < st->nroutes; i++) {
		const struct cip_route *r = &st->routes[i];

		*p++ = r->version;
		memcpy(p, r->start, 16);
		memcpy(p + 16, r->end, 16);
		p[32] = r->proto;
		p += 33;
	}
	return p;
}

static int get_addr(const uint8_t **pp, struct stack_addr *a, uint8_t want)
{
	const uint8_t *p = *pp;

	if (p[0] != 0 && p[0] != want)
		return ZG_ERR_MALFORMED;
	memset(a, 0, sizeof(*a));
	a->version = p[0];
	memcpy(a->a, p + 1, 16);
	*pp = p + 17;
	return 0;
}

int connlink_state_decode(const uint8_t **pp, const uint8_t *end, struct connlink_state *st)
{
	const uint8_t *p = *pp;
	size_t idlen;

	memset(st, 0, sizeof(*st));
	if (p >= end || (idlen = *p++) == 0 || idlen >= sizeof(st->id) ||
	    (size_t)(end - p) < idlen + 8 + 2 * 17 + 2 + 1 || memchr(p, '\0', idlen) != NULL)
		return ZG_ERR_MALFORMED;
	memcpy(st->id, p, idlen);
	p += idlen;
	for (int i = 0; i < 8; i++)
		st->sid = (st->sid << 8) | *p++;
	if (get_addr(&p, &st->vip4, 4) != 0 || get_addr(&p, &st->vip6, 6) != 0)
		return ZG_ERR_MALFORMED;
	st->port = (uint16_t)(p[0] << 8 | p[1]);
	st->nroutes = p[2];
	p += 3;
	if (st->nroutes > CONNLINK_MAX_ANNOUNCED || (size_t)(end - p) < st->nroutes * 34)
		return ZG_ERR_MALFORMED;
	for (size_t i = 0; i < st->nroutes; i++) {
		struct cip_route *r = &st->routes[i];

		if (p[0] != 4 && p[0] != 6)
			return ZG_ERR_MALFORMED;
		r->version = p[0];
		memcpy(r->start, p + 1, 16);
		memcpy(r->end, p + 17, 16);
		r->proto = p[33];
		p += 34;
	}
	*pp = p;
	return 0;
}

size_t connlink_links(const struct connlink *cl)
{
	return cl->nlinks;
}

void connlink_get_counters(const struct connlink *cl, struct connlink_counters *out)
{
	*out = cl->cnt;
}
