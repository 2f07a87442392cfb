#include "connector/inner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hostport.h"
#include "log.h"
#include "relay/audit.h"
#include "relay/localaddr.h"
#include "relay/policy.h"
#include "zg_err.h"

/* One relay link: an inner server on one outer tunnel. An agent is its
 * address on a link: two relays' pools may overlap, so one address through
 * two relays may be two agents. */
struct ilink {
	struct inner *in;
	struct masque_server *srv;
	uint64_t id; /* unique in the process: its agents' stack_client.scope */
};

/* One inner CONNECT-IP session: an agent's end-to-end tunnel. */
struct isess {
	struct inner *in;
	const struct ilink *link; /* the relay it came through */
	struct isess *vnext;      /* in inner.vip's bucket */
	struct masque_conn *c;
	char id[MASQUE_IDENTITY_MAX];
	struct stack_addr vip;
	char vip_s[INET6_ADDRSTRLEN], peer_s[64];
	uint64_t sid;
	uint64_t opened_ms;
	uint64_t bytes_up, bytes_down;
};

struct inner {
	struct inner_config cfg;
	struct route_prefix prefixes[64];
	struct cip_route pranges[64]; /* the prefixes as disjoint ranges */
	size_t npranges;
	struct stack *st;
	struct localaddr *local; /* the host's addresses: never destinations */
	struct isess *sess[INNER_MAX_SESSIONS];
	size_t nsess;
	/* by virtual address: st_output looks it up for every packet */
	struct isess *vip[INNER_MAX_SESSIONS];
	struct masque_server *srv[INNER_MAX_SERVERS]; /* one per outer tunnel */
	struct ilink *lk[INNER_MAX_SERVERS];          /* lk[i]->srv == srv[i] */
	size_t nsrv;
	uint64_t sid_key;
	uint64_t link_ids; /* the last ilink.id given */
	/* never destinations: the host's addresses (localaddr) and the
	 * tunnel addresses the relays gave (inner_set_tunnel_addresses) */
	struct stack_addr host[STACK_MAX_LOCAL], tun[INNER_MAX_TUNNEL_ADDRS];
	size_t nhost, ntun;
	int own_cut; /* the last set did not fit STACK_MAX_LOCAL (logged) */
	struct inner_stats stats;
	/* refused_per_agent / no_request of inner servers already freed */
	uint64_t gone_refused, gone_no_request;
};

static uint64_t now_ms(const struct inner *in)
{
	struct timespec ts;

	if (in->cfg.now_ms != NULL)
		return in->cfg.now_ms(NULL);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* splitmix64's finaliser over a random key and a counter: unique ids that
 * do not reveal how many sessions came before. */
static uint64_t sid_new(struct inner *in)
{
	uint64_t z = (in->sid_key += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

_Static_assert((INNER_MAX_SESSIONS & (INNER_MAX_SESSIONS - 1)) == 0, "a power of two");

static struct isess **vip_bucket(struct inner *in, const struct stack_addr *a)
{
	return &in->vip[stack_addr_hash(a) & (INNER_MAX_SESSIONS - 1)];
}

/* The session a request for address a from identity id through link lk
 * meets: the one holding a on lk, else one of the same identity holding a
 * through another relay (the agent moved: its old session is stale), else
 * NULL (a through another relay is another agent). */
static struct isess *holder(struct inner *in, const struct ilink *lk, const struct stack_addr *a,
			    const char *id)
{
	struct isess *s, *same_id = NULL;

	for (s = *vip_bucket(in, a); s != NULL; s = s->vnext) {
		if (!stack_addr_eq(&s->vip, a))
			continue;
		if (s->link == lk)
			return s;
		if (same_id == NULL && strcmp(s->id, id) == 0)
			same_id = s;
	}
	return same_id;
}

/* The session a packet from the stack toward address a is for: the only
 * one holding a, else (a held through several relays) the one whose flow
 * it belongs to (stack_packet_owner), else NULL. */
static struct isess *out_session(struct inner *in, const struct stack_addr *a, const uint8_t *pkt,
				 size_t len)
{
	struct isess *s, *first = NULL;
	size_t n = 0;
	void *owner;
	const char *cid;

	for (s = *vip_bucket(in, a); s != NULL; s = s->vnext)
		if (stack_addr_eq(&s->vip, a) && n++ == 0)
			first = s;
	if (n <= 1)
		return first;
	if (stack_packet_owner(in->st, pkt, len, &owner, &cid) != 0)
		return NULL;
	/* the flow's session, when it is still open (the pointer is only
	 * compared: with the identity, so a freed one reused is no match) */
	for (s = *vip_bucket(in, a); s != NULL; s = s->vnext)
		if (s == owner && stack_addr_eq(&s->vip, a) && strcmp(s->id, cid) == 0)
			return s;
	/* a flow its client kept across a replaced session */
	for (s = *vip_bucket(in, a); s != NULL; s = s->vnext)
		if (stack_addr_eq(&s->vip, a) && strcmp(s->id, cid) == 0)
			return s;
	return NULL;
}

static int live(const struct inner *in, const void *s)
{
	for (size_t i = 0; i < in->nsess; i++)
		if (in->sess[i] == s)
			return 1;
	return 0;
}

static int id_live(const struct inner *in, const char *id)
{
	for (size_t i = 0; i < in->nsess; i++)
		if (strcmp(in->sess[i]->id, id) == 0)
			return 1;
	return 0;
}

/* Takes s out of the table, closes its flows (unless another session of
 * the same identity still runs), audits the close and frees it. */
static void sess_end(struct isess *s, const char *reason)
{
	struct inner *in = s->in;

	for (size_t i = 0; i < in->nsess; i++) {
		if (in->sess[i] == s) {
			in->sess[i] = in->sess[--in->nsess];
			break;
		}
	}
	for (struct isess **pp = vip_bucket(in, &s->vip); *pp != NULL; pp = &(*pp)->vnext) {
		if (*pp == s) {
			*pp = s->vnext;
			break;
		}
	}
	if (!id_live(in, s->id))
		stack_close_client(in->st, s->id);
	if (in->cfg.audit != NULL)
		audit_session_close(in->cfg.audit, s->sid, s->id, s->vip_s, s->peer_s,
				    now_ms(in) - s->opened_ms, s->bytes_up, s->bytes_down, reason);
	log_info("inner session %s (%s) closed: %s", s->id, s->vip_s, reason);
	in->stats.sessions = in->nsess;
	free(s);
}

/* ---------------------------------------------------------------- routes */

static int range_cmp(const uint8_t *a, const uint8_t *b, size_t n)
{
	return memcmp(a, b, n);
}

int inner_routes(const struct inner *in, const char *identity, struct cip_route *out, size_t max,
		 size_t *pn)
{
	struct cip_route *pol;
	size_t npol = 0, n = 0;
	int r;

	*pn = 0;
	if ((pol = calloc(MASQUE_MAX_ROUTES, sizeof(*pol))) == NULL)
		return ZG_ERR_NOMEM;
	r = policy_routes(in->cfg.policy, identity, pol, MASQUE_MAX_ROUTES, &npol);
	for (size_t i = 0; r == 0 && i < npol; i++) {
		for (size_t k = 0; k < in->npranges; k++) {
			const struct cip_route *a = &pol[i], *b = &in->pranges[k];
			size_t alen = cip_addr_len(a->version);
			const uint8_t *s, *e;

			if (a->version != b->version)
				continue;
			s = range_cmp(a->start, b->start, alen) > 0 ? a->start : b->start;
			e = range_cmp(a->end, b->end, alen) < 0 ? a->end : b->end;
			if (range_cmp(s, e, alen) > 0)
				continue;
			if (n == max) {
				r = ZG_ERR_TOO_LARGE;
				break;
			}
			memset(&out[n], 0, sizeof(out[n]));
			out[n].version = a->version;
			out[n].proto = a->proto;
			memcpy(out[n].start, s, alen);
			memcpy(out[n].end, e, alen);
			n++;
		}
	}
	free(pol);
	if (r == 0)
		r = cip_routes_normalize(out, n, max, &n);
	if (r == 0)
		*pn = n;
	return r;
}

/* A prefix as an inclusive range. */
static void prefix_range(const struct route_prefix *p, struct cip_route *r)
{
	size_t alen = p->version == 4 ? 4 : 16;

	memset(r, 0, sizeof(*r));
	r->version = p->version;
	memcpy(r->start, p->addr, alen);
	memcpy(r->end, p->addr, alen);
	for (size_t bit = p->len; bit < alen * 8; bit++)
		r->end[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
}

static int served(const struct inner *in, const struct stack_addr *a)
{
	size_t alen = a->version == 4 ? 4 : 16;

	for (size_t k = 0; k < in->npranges; k++) {
		const struct cip_route *r = &in->pranges[k];

		if (r->version == a->version && memcmp(a->a, r->start, alen) >= 0 &&
		    memcmp(a->a, r->end, alen) <= 0)
			return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- stack */

static void st_output(void *ctx, const struct stack_addr *dst, const uint8_t *pkt, size_t len)
{
	struct inner *in = ctx;
	struct isess *s = out_session(in, dst, pkt, len);

	if (s == NULL) {
		in->stats.drop_no_sess++;
		return;
	}
	if (masque_conn_send(s->c, pkt, len) != 0) {
		in->stats.drop_send++;
		return;
	}
	s->bytes_down += len;
	in->stats.bytes_down += len;
}

static enum stack_verdict decide(const struct inner *in, const struct stack_flow_info *fl,
				 const char **prule)
{
	struct policy_flow pf;
	struct policy_verdict v;

	if (!served(in, &fl->dst)) {
		*prule = "outside_prefixes";
		return STACK_DENY;
	}
	memset(&pf, 0, sizeof(pf));
	pf.version = fl->dst.version;
	memcpy(pf.src, fl->src.a, 16);
	memcpy(pf.dst, fl->dst.a, 16);
	pf.proto = fl->proto;
	pf.sport = fl->sport;
	pf.dport = fl->dport;
	policy_eval(in->cfg.policy, fl->client_id, &pf, &v);
	*prule = v.rule_id;
	return v.action == POLICY_ALLOW ? STACK_ALLOW : STACK_DENY;
}

static enum stack_verdict st_policy(void *ctx, const struct stack_flow_info *fl,
				    const char **prule)
{
	return decide(ctx, fl, prule);
}

static enum stack_verdict reeval(void *arg, const struct stack_flow_info *fl, const char **prule)
{
	return decide(arg, fl, prule);
}

static void st_audit(void *ctx, const struct stack_event *ev)
{
	struct inner *in = ctx;
	struct audit_flow af;
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];

	if (in->cfg.audit == NULL)
		return;
	memset(&af, 0, sizeof(af));
	if (ev->flow.session != NULL && live(in, ev->flow.session))
		af.session_id = ((const struct isess *)ev->flow.session)->sid;
	stack_addr_str(&ev->flow.src, src, sizeof(src));
	stack_addr_str(&ev->flow.dst, dst, sizeof(dst));
	af.client = ev->flow.client_id;
	af.proto = stack_proto_name(ev->flow.proto);
	af.src = src;
	af.dst = dst;
	af.sport = ev->flow.sport;
	af.dport = ev->flow.dport;
	af.rule = ev->rule_id && ev->rule_id[0] ? ev->rule_id : NULL;
	af.reason = ev->reason && ev->reason[0] ? ev->reason : NULL;
	af.bytes_up = ev->bytes_up;
	af.bytes_down = ev->bytes_down;
	af.duration_ms = ev->duration_ms;
	switch (ev->type) {
	case STACK_EV_ALLOW:
		audit_flow_allow(in->cfg.audit, &af);
		break;
	case STACK_EV_DENY:
		audit_flow_deny(in->cfg.audit, &af);
		break;
	case STACK_EV_CLOSE:
		audit_flow_close(in->cfg.audit, &af);
		break;
	case STACK_EV_LIMIT:
		audit_limit_hit(in->cfg.audit, af.reason ? af.reason : "flows", af.client,
				af.session_id);
		break;
	}
}

static uint64_t st_now(void *ctx)
{
	return now_ms(ctx);
}

/* ---------------------------------------------------------------- masque */

static int has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int on_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	static struct cip_route routes[MASQUE_MAX_ROUTES];
	struct ilink *lk = ctx;
	struct inner *in = lk->in;
	struct isess *s, *old;
	struct stack_addr vip;
	size_t nroutes = 0;
	int r;

	if (has_prefix(rq->identity, "connector:") || has_prefix(rq->identity, "relay:")) {
		log_warnx("inner session refused: identity %s is not an agent", rq->identity);
		in->stats.refused_403++;
		return 403;
	}
	memset(&vip, 0, sizeof(vip));
	if (rq->peer.ss_family == AF_INET) {
		vip.version = 4;
		memcpy(vip.a, &((const struct sockaddr_in *)&rq->peer)->sin_addr, 4);
	} else if (rq->peer.ss_family == AF_INET6) {
		vip.version = 6;
		memcpy(vip.a, &((const struct sockaddr_in6 *)&rq->peer)->sin6_addr, 16);
	} else {
		return 400;
	}
	r = inner_routes(in, rq->identity, routes, MASQUE_MAX_ROUTES, &nroutes);
	if (r != 0 || nroutes == 0) {
		log_warnx("inner session of %s refused: %s", rq->identity,
			  r != 0 ? zg_strerror(r) : "its policy reaches nothing this connector serves");
		in->stats.refused_403++;
		return 403;
	}
	old = holder(in, lk, &vip, rq->identity);
	if (old != NULL && strcmp(old->id, rq->identity) != 0) {
		log_warnx("inner session of %s refused: address %s is held by %s through the same "
			  "relay",
			  rq->identity, old->vip_s, old->id);
		in->stats.refused_409++;
		return 409;
	}
	if (old != NULL) {
		/* the same agent again: its old connection is stale */
		masque_conn_set_data(old->c, NULL);
		masque_conn_close(old->c, 0, "replaced by a new session");
		sess_end(old, "replaced");
		in->stats.replaced++;
	}
	if (in->nsess == INNER_MAX_SESSIONS || (s = calloc(1, sizeof(*s))) == NULL) {
		in->stats.refused_503++;
		if (in->cfg.audit != NULL)
			audit_limit_hit(in->cfg.audit, "inner_sessions", rq->identity, 0);
		return 503;
	}
	s->in = in;
	s->link = lk;
	s->c = c;
	(void)snprintf(s->id, sizeof(s->id), "%s", rq->identity);
	s->vip = vip;
	stack_addr_str(&vip, s->vip_s, sizeof(s->vip_s));
	hostport_format((const struct sockaddr *)&rq->peer, s->peer_s, sizeof(s->peer_s));
	s->sid = sid_new(in);
	s->opened_ms = now_ms(in);
	in->sess[in->nsess++] = s;
	s->vnext = *vip_bucket(in, &vip);
	*vip_bucket(in, &vip) = s;
	in->stats.sessions = in->nsess;
	in->stats.opened++;
	masque_conn_set_data(c, s);

	acc->naddrs = 1;
	memset(&acc->addrs[0], 0, sizeof(acc->addrs[0]));
	acc->addrs[0].version = vip.version;
	memcpy(acc->addrs[0].addr, vip.a, vip.version == 4 ? 4 : 16);
	acc->addrs[0].prefix_len = vip.version == 4 ? 32 : 128;
	acc->routes = routes;
	acc->nroutes = nroutes;
	if (in->cfg.audit != NULL)
		audit_session_open(in->cfg.audit, s->sid, s->id, s->vip_s, s->peer_s,
				   masque_conn_cert_serial(c), masque_conn_cert_sha256(c));
	log_info("inner session %s (%s) open, %zu routes", s->id, s->vip_s, nroutes);
	return 200;
}

/* The client holds exactly its assigned address: a request for its
 * version gets it, another version is refused (RFC 9484 §4.7.1). */
static int on_address_request(struct masque_conn *c, const struct cip_addr *req, size_t n,
			      struct cip_addr *out, size_t *nout, void *ctx)
{
	struct isess *s = masque_conn_data(c);

	(void)ctx;
	if (s == NULL)
		return ZG_ERR_STATE;
	for (size_t i = 0; i < n; i++) {
		if (req[i].version == s->vip.version) {
			memset(&out[i], 0, sizeof(out[i]));
			out[i].request_id = req[i].request_id;
			out[i].version = s->vip.version;
			memcpy(out[i].addr, s->vip.a, s->vip.version == 4 ? 4 : 16);
			out[i].prefix_len = s->vip.version == 4 ? 32 : 128;
		} else if (cip_addr_refusal(&req[i], &out[i]) != 0) {
			return ZG_ERR_MALFORMED;
		}
	}
	*nout = n;
	return 0;
}

static void on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct isess *s = masque_conn_data(c);
	struct inner *in;
	struct stack_client cl;

	(void)ctx;
	if (s == NULL)
		return;
	in = s->in;
	memset(&cl, 0, sizeof(cl));
	cl.id = s->id;
	/* an agent is its address on a relay link: its ICMP errors and RSTs
	 * are paced apart from another relay's agent at the same address */
	cl.scope = s->link->id;
	if (s->vip.version == 4)
		cl.vip4 = s->vip;
	else
		cl.vip6 = s->vip;
	s->bytes_up += len;
	in->stats.bytes_up += len;
	(void)stack_input(in->st, s, &cl, pkt, len);
}

static void on_reject(const struct sockaddr *peer, socklen_t peerlen, enum tls_reject why,
		      void *ctx)
{
	struct inner *in = ((struct ilink *)ctx)->in;
	char p[64];

	(void)peerlen;
	hostport_format(peer, p, sizeof(p));
	log_warnx("inner handshake from %s refused: %s", p, tls_reject_name(why));
	if (in->cfg.audit != NULL)
		audit_cert_rejected(in->cfg.audit, tls_reject_name(why), p);
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct isess *s = masque_conn_data(c);

	(void)ctx;
	if (s == NULL)
		return;
	masque_conn_set_data(c, NULL);
	sess_end(s, ci->idle ? "idle" : ci->error ? "error"
						  : "closed");
}

static const struct masque_cbs inner_cbs = {
	.on_request = on_request,
	.on_address_request = on_address_request,
	.on_packet = on_packet,
	.on_reject = on_reject,
	.on_close = on_close,
};

/* ---------------------------------------------------------------- objects */

/* Gives the stack the addresses no agent may reach: the tunnel addresses
 * first (few, and what a served prefix covering a relay's pool would
 * reach), then the host's, each once, as many as STACK_MAX_LOCAL holds. */
static void own_addresses_apply(struct inner *in)
{
	struct stack_addr all[STACK_MAX_LOCAL];
	size_t k = 0, want = in->ntun + in->nhost;

	for (size_t i = 0; i < want; i++) {
		const struct stack_addr *a = i < in->ntun ? &in->tun[i] : &in->host[i - in->ntun];
		int dup = 0;

		for (size_t j = 0; j < k && !dup; j++)
			dup = stack_addr_eq(&all[j], a);
		if (dup)
			continue;
		if (k == STACK_MAX_LOCAL) {
			if (!in->own_cut)
				log_warnx("the connector has more than %d addresses (its host's and "
					  "its tunnels'): the rest are not forbidden destinations",
					  STACK_MAX_LOCAL);
			in->own_cut = 1;
			(void)stack_set_local_addresses(in->st, all, k);
			return;
		}
		all[k++] = *a;
	}
	in->own_cut = 0;
	(void)stack_set_local_addresses(in->st, all, k);
}

/* The connector host's own addresses changed (or were read at start): no
 * agent may reach them (its ops endpoint, its other services). */
static void on_local_addrs(void *ctx, const struct stack_addr *a, size_t n, size_t skipped)
{
	struct inner *in = ctx;

	in->nhost = n < STACK_MAX_LOCAL ? n : STACK_MAX_LOCAL;
	if (in->nhost > 0)
		memcpy(in->host, a, in->nhost * sizeof(*a));
	if (n > STACK_MAX_LOCAL || skipped > 0)
		log_warnx("the connector's host has more than %d addresses: the rest are not "
			  "forbidden destinations",
			  STACK_MAX_LOCAL);
	own_addresses_apply(in);
	log_info("%zu own addresses are forbidden destinations", n);
}

int inner_new(const struct inner_config *cfg, struct inner **pin)
{
	struct stack_config sc;
	struct stack_callbacks cb;
	struct inner *in;
	size_t n;
	int r;

	*pin = NULL;
	if (cfg == NULL || cfg->base == NULL || cfg->tls == NULL || cfg->policy == NULL ||
	    cfg->prefixes == NULL || cfg->nprefixes == 0 || cfg->nprefixes > 64)
		return ZG_ERR_INVAL;
	if ((in = calloc(1, sizeof(*in))) == NULL)
		return ZG_ERR_NOMEM;
	in->cfg = *cfg;
	memcpy(in->prefixes, cfg->prefixes, cfg->nprefixes * sizeof(*cfg->prefixes));
	in->cfg.prefixes = in->prefixes;
	for (size_t i = 0; i < cfg->nprefixes; i++)
		prefix_range(&cfg->prefixes[i], &in->pranges[i]);
	/* merged: disjoint ranges, so cutting routes with them gives no overlap */
	if ((r = cip_routes_normalize(in->pranges, cfg->nprefixes, 64, &n)) != 0)
		goto fail;
	in->npranges = n;
	if (getrandom(&in->sid_key, sizeof(in->sid_key), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(in->sid_key))
		in->sid_key = (uint64_t)time(NULL) * UINT64_C(0x2545f4914f6cdd1d);

	stack_config_defaults(&sc);
	/* The on-prem prefixes are what the connector is for: nothing beyond
	 * the built-in never-reachable set and the host's own addresses
	 * (on_local_addrs) is forbidden; the policy callback keeps flows
	 * inside the served prefixes. */
	sc.exempt = cfg->exempt;
	sc.n_exempt = cfg->n_exempt;
	memset(&cb, 0, sizeof(cb));
	cb.output = st_output;
	cb.policy = st_policy;
	cb.audit = st_audit;
	cb.now_ms = cfg->now_ms != NULL ? st_now : NULL;
	if ((r = stack_new(cfg->base, &sc, &cb, in, &in->st)) != 0)
		goto fail;
	/* before the first session: the host's addresses, then every change */
	if (localaddr_new(cfg->base, 30000, on_local_addrs, in, &in->local) != 0)
		log_warnx("the connector's own addresses are not forbidden destinations");
	*pin = in;
	return 0;
fail:
	free(in);
	return r;
}

void inner_del(struct inner *in)
{
	if (in == NULL)
		return;
	while (in->nsess > 0) {
		struct isess *s = in->sess[0];

		masque_conn_set_data(s->c, NULL);
		sess_end(s, "shutdown");
	}
	localaddr_del(in->local);
	stack_del(in->st);
	free(in);
}

int inner_set_tunnel_addresses(struct inner *in, const struct stack_addr *a, size_t n)
{
	size_t k = 0;

	if (in == NULL || (a == NULL && n > 0))
		return ZG_ERR_INVAL;
	for (size_t i = 0; i < n && k < INNER_MAX_TUNNEL_ADDRS; i++)
		if (a[i].version == 4 || a[i].version == 6)
			in->tun[k++] = a[i];
	in->ntun = k;
	own_addresses_apply(in);
	if (n > INNER_MAX_TUNNEL_ADDRS) {
		log_warnx("more than %d tunnel addresses: the rest are not forbidden destinations",
			  INNER_MAX_TUNNEL_ADDRS);
		return ZG_ERR_LIMIT;
	}
	return 0;
}

int inner_server_new(struct inner *in, const struct masque_io *io, void *ioctx,
		     size_t max_udp_payload, struct masque_server **psrv)
{
	struct masque_config mc;
	struct ilink *lk;
	int r;

	*psrv = NULL;
	if (in->nsrv == INNER_MAX_SERVERS)
		return ZG_ERR_LIMIT;
	if ((lk = calloc(1, sizeof(*lk))) == NULL)
		return ZG_ERR_NOMEM;
	lk->in = in;
	lk->id = ++in->link_ids;
	memset(&mc, 0, sizeof(mc));
	mc.tls = in->cfg.tls;
	mc.io = io;
	mc.ioctx = ioctx;
	mc.uri_template = INNER_TEMPLATE;
	mc.max_conns = INNER_MAX_SESSIONS;
	mc.retry_off = 1; /* the outer tunnel already proved the source address */
	mc.idle_timeout_ms = in->cfg.idle_timeout_ms;
	mc.max_conns_per_address = in->cfg.max_conns_per_agent ? in->cfg.max_conns_per_agent
							       : INNER_CONNS_PER_AGENT;
	mc.request_timeout_ms = in->cfg.request_timeout_ms ? in->cfg.request_timeout_ms
							   : INNER_REQUEST_TIMEOUT_MS;
	mc.max_udp_payload = max_udp_payload;
	if ((r = masque_server_new(&mc, &inner_cbs, lk, psrv)) != 0) {
		free(lk);
		return r;
	}
	lk->srv = *psrv;
	in->lk[in->nsrv] = lk;
	in->srv[in->nsrv++] = *psrv;
	return 0;
}

void inner_server_del(struct inner *in, struct masque_server *srv)
{
	struct masque_server_stats ms;
	struct ilink *lk = NULL;

	if (srv == NULL)
		return;
	masque_server_stats(srv, &ms);
	in->gone_refused += ms.refused_address;
	in->gone_no_request += ms.request_timeouts;
	for (size_t i = 0; i < in->nsrv; i++) {
		if (in->srv[i] == srv) {
			lk = in->lk[i];
			in->nsrv--;
			in->srv[i] = in->srv[in->nsrv];
			in->lk[i] = in->lk[in->nsrv];
			break;
		}
	}
	masque_server_del(srv); /* on_close ends each session */
	free(lk);
}

void inner_set_tls(struct inner *in, WOLFSSL_CTX *tls)
{
	if (tls == NULL)
		return;
	in->cfg.tls = tls;
	for (size_t i = 0; i < in->nsrv; i++)
		masque_server_set_tls(in->srv[i], tls);
}

void inner_set_policy(struct inner *in, const struct policy *p)
{
	size_t n;

	in->cfg.policy = p;
	n = stack_reevaluate(in->st, reeval, in, "policy_reload");
	if (n > 0)
		log_info("policy reload closed %zu flows", n);
}

void inner_get_stats(const struct inner *in, struct inner_stats *st)
{
	*st = in->stats;
	st->sessions = in->nsess;
	st->refused_per_agent = in->gone_refused;
	st->no_request = in->gone_no_request;
	for (size_t i = 0; i < in->nsrv; i++) {
		struct masque_server_stats ms;

		masque_server_stats(in->srv[i], &ms);
		st->refused_per_agent += ms.refused_address;
		st->no_request += ms.request_timeouts;
	}
}

struct stack *inner_stack(const struct inner *in)
{
	return in->st;
}
