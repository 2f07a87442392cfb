/*
 * session — the relay's tunnels from admission to close (session.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fnv.h"
#include "hostport.h"
#include "log.h"
#include "masque/tls.h"
#include "relay/connlink.h"
#include "relay/dnsgate.h"
#include "relay/session.h"
#include "zg_err.h"

/* ------------------------------------------------------------------ */
/* table                                                              */

void session_table_init(struct session_table *t, const struct session_hooks *h,
			unsigned max_sessions, int pool6, uint64_t sid_key)
{
	memset(t, 0, sizeof(*t));
	t->h = *h;
	t->max_sessions = max_sessions;
	t->pool6 = pool6;
	t->sid_key = sid_key;
}

static void session_free(struct session *s)
{
	free(s->dns);
	free(s);
}

void session_table_free(struct session_table *t)
{
	struct session *s, *next;

	for (s = t->head; s != NULL; s = next) {
		next = s->next;
		session_free(s);
	}
	t->head = NULL;
	t->n = 0;
	memset(t->vip4, 0, sizeof(t->vip4));
	memset(t->vip6, 0, sizeof(t->vip6));
	memset(t->byid, 0, sizeof(t->byid));
}

/* A new session_id: a bijection (splitmix64's finaliser) of a random key
 * plus a counter, so ids never repeat within a run and do not tell how
 * many tunnels came before; 0 (meaning none) is skipped. */
static uint64_t session_id_new(struct session_table *t)
{
	uint64_t x;

	do {
		x = t->sid_key + ++t->sid_next;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
		x ^= x >> 31;
	} while (x == 0);
	return x;
}

static size_t vip_hash(const struct stack_addr *a)
{
	return stack_addr_hash(a) & (SESSION_VIP_BUCKETS - 1);
}

struct session *session_by_vip(const struct session_table *t, const struct stack_addr *a)
{
	struct session *s;

	if (a->version == 4) {
		for (s = t->vip4[vip_hash(a)]; s != NULL; s = s->vnext4)
			if (stack_addr_eq(&s->vip4, a))
				return s;
	} else if (a->version == 6) {
		for (s = t->vip6[vip_hash(a)]; s != NULL; s = s->vnext6)
			if (stack_addr_eq(&s->vip6, a))
				return s;
	}
	return NULL;
}

static void vip_unlink(struct session_table *t, struct session *s)
{
	struct session **pp;

	if (s->vip4.version) {
		for (pp = &t->vip4[vip_hash(&s->vip4)]; *pp != NULL; pp = &(*pp)->vnext4) {
			if (*pp == s) {
				*pp = s->vnext4;
				break;
			}
		}
	}
	if (s->vip6.version) {
		for (pp = &t->vip6[vip_hash(&s->vip6)]; *pp != NULL; pp = &(*pp)->vnext6) {
			if (*pp == s) {
				*pp = s->vnext6;
				break;
			}
		}
	}
}

static void vip_link(struct session_table *t, struct session *s)
{
	size_t h;

	if (s->vip4.version) {
		h = vip_hash(&s->vip4);
		s->vnext4 = t->vip4[h];
		t->vip4[h] = s;
	}
	if (s->vip6.version) {
		h = vip_hash(&s->vip6);
		s->vnext6 = t->vip6[h];
		t->vip6[h] = s;
	}
}

static size_t id_hash(const char *id)
{
	return fnv32_str(id) & (SESSION_VIP_BUCKETS - 1);
}

static void id_link(struct session_table *t, struct session *s)
{
	size_t h = id_hash(s->id);

	s->inext = t->byid[h];
	t->byid[h] = s;
}

static void id_unlink(struct session_table *t, struct session *s)
{
	for (struct session **pp = &t->byid[id_hash(s->id)]; *pp != NULL; pp = &(*pp)->inext) {
		if (*pp == s) {
			*pp = s->inext;
			return;
		}
	}
}

struct session *session_by_id(const struct session_table *t, const char *id)
{
	struct session *s;

	/* hashed: the DNS service asks per learned route, admin per kick */
	for (s = t->byid[id_hash(id)]; s != NULL; s = s->inext)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* routes and scope                                                   */

int session_in_scope(const struct session *s, const struct stack_flow_info *f)
{
	size_t n, i, bits;

	if (!s->any_proto && f->proto != s->ipproto && f->proto != STACK_PROTO_ICMP &&
	    f->proto != STACK_PROTO_ICMPV6)
		return 0; /* ICMP is always in scope (C03) */
	if (s->any_target)
		return 1;
	if (f->dst.version != s->target.version)
		return 0;
	n = f->dst.version == 4 ? 4 : 16;
	bits = s->target.prefix_len;
	for (i = 0; i < n && bits > 0; i++) {
		uint8_t mask = (uint8_t)(bits >= 8 ? 0xffu : 0xffu << (8 - bits));

		if ((f->dst.a[i] & mask) != (s->target.addr[i] & mask))
			return 0;
		bits = bits >= 8 ? bits - 8 : 0;
	}
	return 1;
}

int session_routes(const struct session_table *t, const struct session *s,
		   struct cip_route *out, size_t *pn)
{
	size_t n = 0, i, k = 0;
	int rv;

	if (s->connector) {
		/* issue 22: what a connector may send to, never the policy's */
		if (t->h.connector_routes == NULL) {
			*pn = 0;
			return 0;
		}
		rv = t->h.connector_routes(t->h.ctx, s, out, MASQUE_MAX_ROUTES, &n);
		if (rv != 0)
			return rv;
		return cip_routes_normalize(out, n, MASQUE_MAX_ROUTES, pn);
	}
	rv = t->h.policy_routes(t->h.ctx, s->id, out, MASQUE_MAX_ROUTES / 2, &n);
	if (rv == ZG_ERR_TOO_LARGE) {
		/* More disjoint ranges than one advertisement carries: advertise
		 * wider ones (every flow is still checked against the rules). */
		size_t big = 1u << 16, all = 0;
		struct cip_route *tmp = malloc(big * sizeof(*tmp));

		if (tmp == NULL)
			return ZG_ERR_NOMEM;
		rv = t->h.policy_routes(t->h.ctx, s->id, tmp, big, &all);
		if (rv == 0)
			rv = cip_routes_coarsen(tmp, all, MASQUE_MAX_ROUTES / 2, &n);
		if (rv == 0) {
			memcpy(out, tmp, n * sizeof(*out));
			log_warnx("%s: the policy allows %zu separate ranges; advertised as %zu wider "
				  "ones (flows are still checked against each rule)",
				  s->id, all, n);
		}
		free(tmp);
	}
	if (rv != 0)
		return rv;
	if (t->h.extra_routes != NULL)
		n += t->h.extra_routes(t->h.ctx, s->id, n > 0, out + n, MASQUE_MAX_ROUTES - n);
	if (s->any_target && s->any_proto)
		return cip_routes_normalize(out, n, MASQUE_MAX_ROUTES, pn);
	for (i = 0; i < n; i++) {
		struct cip_route rt = out[i];

		if (!s->any_target) {
			uint8_t lo[16], hi[16];
			size_t len = s->target.version == 4 ? 4 : 16, j, bits = s->target.prefix_len;

			if (rt.version != s->target.version)
				continue;
			for (j = 0; j < len; j++) {
				uint8_t mask = (uint8_t)(bits >= 8 ? 0xffu : bits ? 0xffu << (8 - bits)
										  : 0u);

				lo[j] = s->target.addr[j] & mask;
				hi[j] = (uint8_t)(s->target.addr[j] | ~mask);
				bits = bits >= 8 ? bits - 8 : 0;
			}
			if (memcmp(rt.end, lo, len) < 0 || memcmp(rt.start, hi, len) > 0)
				continue;
			if (memcmp(rt.start, lo, len) < 0)
				memcpy(rt.start, lo, len);
			if (memcmp(rt.end, hi, len) > 0)
				memcpy(rt.end, hi, len);
		}
		if (!s->any_proto) {
			if (rt.proto != 0 && rt.proto != s->ipproto)
				continue;
			rt.proto = s->ipproto;
		}
		out[k++] = rt;
	}
	return cip_routes_normalize(out, k, MASQUE_MAX_ROUTES, pn);
}

/* ------------------------------------------------------------------ */
/* admission                                                          */

/* Refuses s, not admitted: counted, freed. Returns status. */
static int refuse(struct session_table *t, struct session *s, int status)
{
	if (status == 403)
		t->cnt.refused_403++;
	else if (status == 502)
		t->cnt.refused_502++;
	else
		t->cnt.refused_503++;
	session_free(s);
	return status;
}

/* Admits NEW session s: routes from the policy, the address from the
 * pool, the tables. Returns the HTTP status; on 200 acc is filled (its
 * routes in routes) and s is OPEN, otherwise s is freed. */
static int admit(struct session_table *t, struct session *s, struct cip_route *routes,
		 struct masque_accept *acc)
{
	struct session *old;
	uint8_t a[16];
	size_t n = 0, certlen = 0;
	int rv;

	/* the client certificate, checked again after a TLS reload: the
	 * connection keeps it (at most TLS_CERT_DER_MAX); a tunnel whose
	 * certificate could not be kept would escape revocation */
	if (t->h.peer_cert(t->h.ctx, s->c, &certlen) == NULL) {
		log_warnx("%s from %s: cannot keep its certificate (none, or larger than %d "
			  "bytes): 503",
			  s->id, s->peer, TLS_CERT_DER_MAX);
		return refuse(t, s, 503);
	}
	rv = session_routes(t, s, routes, &n);
	if (rv != 0) {
		log_warnx("%s from %s: cannot compute its routes: %s: 503", s->id, s->peer,
			  zg_strerror(rv));
		return refuse(t, s, 503);
	}
	if (n == 0 && !s->connector && t->h.has_connectors != NULL &&
	    t->h.has_connectors(t->h.ctx, s->id)) {
		/* issue 22: it reaches connectors, through no route of its own */
	} else if (n == 0) {
		/* C05: an identity with nothing allowed gets 403. */
		log_info("%s from %s: no destination allowed by policy: 403", s->id, s->peer);
		t->h.audit_limit(t->h.ctx, "policy_nothing_allowed", s->id, s->sid);
		return refuse(t, s, 403);
	}
	old = session_by_id(t, s->id);
	if (old == NULL && t->n >= t->max_sessions) {
		log_warnx("%s from %s: %u sessions open: 503", s->id, s->peer, t->max_sessions);
		t->h.audit_limit(t->h.ctx, "sessions", s->id, s->sid);
		return refuse(t, s, 503);
	}
	if (t->h.ipam_alloc_async != NULL && !s->allocated) {
		/* The shared pool decides the address: wait for it (nothing
		 * is taken or replaced until it answers). */
		s->state = SESSION_ALLOCATING;
		if (t->h.ipam_alloc_async(t->h.ctx, s) != 0) {
			log_warnx("%s from %s: cannot ask the shared address pool: 503", s->id,
				  s->peer);
			t->cnt.refused_ipam++;
			return refuse(t, s, 503);
		}
		t->h.set_data(t->h.ctx, s->c, s);
		return MASQUE_PENDING;
	}
	if (old != NULL) {
		/* The same client again: the new tunnel takes over the address
		 * (the pool's is stable per client ID) and the old one is
		 * closed; its close is audited "replaced". */
		log_info("%s: new connection from %s replaces the one from %s", s->id, s->peer,
			 old->peer);
		vip_unlink(t, old);
		id_unlink(t, old);
		old->state = SESSION_REPLACED;
		t->h.close_flows(t->h.ctx, old->id);
		t->h.close_conn(t->h.ctx, old->c, "replaced by a newer connection");
		t->cnt.replaced++;
	}
	if (s->allocated) {
		if (t->h.ipam_assign(t->h.ctx, s->id, s->addr4) != 0) {
			char as[INET_ADDRSTRLEN];

			(void)inet_ntop(AF_INET, s->addr4, as, sizeof(as));
			log_warnx("%s from %s: the shared pool's address %s is not usable here "
				  "(outside pool.ipv4, or another tunnel of this relay holds it): 503",
				  s->id, s->peer, as);
			t->cnt.refused_ipam++;
			t->h.audit_limit(t->h.ctx, "pool", s->id, s->sid);
			return refuse(t, s, 503);
		}
		memcpy(a, s->addr4, 4);
	} else if (t->h.ipam_alloc(t->h.ctx, s->id, 4, a) != 0) {
		log_warnx("%s from %s: IPv4 pool exhausted: 503", s->id, s->peer);
		t->h.audit_limit(t->h.ctx, "pool", s->id, s->sid);
		return refuse(t, s, 503);
	}
	s->vip4.version = 4;
	memcpy(s->vip4.a, a, 4);
	if (t->pool6 && t->h.ipam_alloc(t->h.ctx, s->id, 6, a) == 0) {
		s->vip6.version = 6;
		memcpy(s->vip6.a, a, 16);
	}
	s->client.id = s->id;
	s->client.vip4 = s->vip4;
	s->client.vip6 = s->vip6;
	s->opened_ms = t->h.now_ms(t->h.ctx);
	stack_addr_str(&s->vip4, s->vip_s, sizeof(s->vip_s));
	s->state = SESSION_OPEN;
	vip_link(t, s);
	id_link(t, s);
	s->next = t->head;
	s->prev = NULL;
	if (t->head != NULL)
		t->head->prev = s;
	t->head = s;
	t->n++;
	t->cnt.opened++;
	t->h.set_data(t->h.ctx, s->c, s);
	t->h.ipam_changed(t->h.ctx);

	memset(acc, 0, sizeof(*acc));
	acc->addrs[0].version = 4;
	memcpy(acc->addrs[0].addr, s->vip4.a, 4);
	acc->addrs[0].prefix_len = 32;
	acc->naddrs = 1;
	if (s->vip6.version) {
		acc->addrs[1].version = 6;
		memcpy(acc->addrs[1].addr, s->vip6.a, 16);
		acc->addrs[1].prefix_len = 128;
		acc->naddrs = 2;
	}
	acc->routes = routes;
	acc->nroutes = n;
	if (t->h.accept_extra != NULL)
		t->h.accept_extra(t->h.ctx, s, acc);
	log_info("tunnel open: %s from %s, address %s, %zu routes", s->id, s->peer, s->vip_s, n);
	t->h.audit_open(t->h.ctx, s);
	return 200;
}

/* 1 when the policy lets s's client reach anything (of its protocol), 0
 * when nothing: then a DNS-name target is refused without a query.
 * scratch: MASQUE_MAX_ROUTES / 2 entries. */
static int dns_allowed_anything(const struct session_table *t, const struct session *s,
				struct cip_route *scratch)
{
	size_t n = 0, i;
	int rv = t->h.policy_routes(t->h.ctx, s->id, scratch, MASQUE_MAX_ROUTES / 2, &n);

	if (rv == ZG_ERR_TOO_LARGE)
		return 1; /* more ranges than fit: certainly something */
	if (rv != 0)
		return 1; /* let admit() report it */
	for (i = 0; i < n; i++)
		if (s->any_proto || scratch[i].proto == 0 || scratch[i].proto == s->ipproto)
			return 1;
	return 0;
}

int session_request(struct session_table *t, struct masque_conn *c,
		    const struct masque_request *rq, struct cip_route *routes,
		    struct masque_accept *acc)
{
	struct session *s;

	if (t->shutting_down) {
		t->cnt.refused_503++;
		return 503;
	}
	if (strlen(rq->identity) >= STACK_ID_MAX) {
		log_warnx("client ID \"%.40s...\" longer than %d characters: 403", rq->identity,
			  STACK_ID_MAX - 1);
		t->cnt.refused_403++;
		return 403;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		t->cnt.refused_503++;
		return 503;
	}
	s->t = t;
	s->state = SESSION_NEW;
	s->c = c;
	s->sid = session_id_new(t);
	memcpy(s->id, rq->identity, strlen(rq->identity) + 1);
	hostport_format((const struct sockaddr *)&rq->peer, s->peer, sizeof(s->peer));
	if (zgconn_identity(s->id, &s->conn_id)) {
		/* issue 22: an on-prem connector, admitted only when listed */
		s->connector = 1;
		s->any_target = 1;
		s->any_proto = 1;
		if (t->h.connector_known != NULL && t->h.connector_known(t->h.ctx, s->conn_id))
			return admit(t, s, routes, acc);
		log_info("%s from %s: connector \"%s\" is not listed under connectors: in the "
			 "policy: 403",
			 s->id, s->peer, s->conn_id);
		t->h.audit_limit(t->h.ctx, "connector_not_listed", s->id, s->sid);
		s->refuse = 403;
		s->refuse_ps = "zgate-relay; error=http_request_denied; "
			       "details=\"connector ID not listed in the relay policy\"";
		t->cnt.refused_403++;
		s->state = SESSION_RESOLVING;
		if (t->h.defer(t->h.ctx, s, 0) != 0) {
			t->cnt.refused_403--;
			return refuse(t, s, 403);
		}
		t->h.set_data(t->h.ctx, c, s);
		return MASQUE_PENDING;
	}
	s->any_target = rq->any_target;
	s->target = rq->target;
	s->any_proto = rq->any_proto;
	s->ipproto = rq->ipproto;
	if (rq->dns[0] == '\0')
		return admit(t, s, routes, acc);

	/* Resolve before answering (C03), outside this callback; only after
	 * the checks that need no query (16.8b). */
	s->dns = strdup(rq->dns);
	if (s->dns == NULL) {
		log_warnx("%s: out of memory for target %s: 503", s->id, rq->dns);
		return refuse(t, s, 503);
	}
	if (dns_allowed_anything(t, s, routes) == 0) {
		log_info("%s from %s: no destination allowed by policy: 403 (target %s not "
			 "resolved)",
			 s->id, s->peer, s->dns);
		t->h.audit_limit(t->h.ctx, "policy_nothing_allowed", s->id, s->sid);
		t->cnt.dns_refused_policy++;
		return refuse(t, s, 403);
	}
	if (t->dnsgate != NULL && !dnsgate_name_ok(t->dnsgate, s->dns)) {
		log_info("%s from %s: target %s is not in dns.resolvable: 403", s->id, s->peer,
			 s->dns);
		s->refuse = 403;
		s->refuse_ps = "zgate-relay; error=http_request_denied; "
			       "details=\"target name not in dns.resolvable\"";
		t->cnt.refused_403++;
	} else if (t->dnsgate != NULL &&
		   dnsgate_take(t->dnsgate, s->id, t->h.now_ms(t->h.ctx)) != 0) {
		log_info("%s from %s: more than %u DNS-name targets a minute: 429", s->id, s->peer,
			 t->dns_per_min);
		s->refuse = 429;
		t->cnt.refused_429++;
		s->refuse_ps = "zgate-relay; error=http_request_denied; "
			       "details=\"dns.resolutions_per_minute\"";
	}
	s->state = SESSION_RESOLVING;
	if (t->h.defer(t->h.ctx, s, s->refuse == 0) != 0) {
		log_warnx("%s: no DNS resolver for target %s: 502", s->id, s->dns);
		return refuse(t, s, 502);
	}
	t->h.set_data(t->h.ctx, c, s);
	return MASQUE_PENDING;
}

int session_deferred(struct session_table *t, struct session *s)
{
	if (s->state == SESSION_ABANDONED) {
		session_free(s);
		return 0;
	}
	if (s->refuse != 0) { /* decided in session_request; answered here for its Proxy-Status */
		t->h.set_data(t->h.ctx, s->c, NULL);
		t->h.answer(t->h.ctx, s->c, s->refuse, NULL, s->refuse_ps);
		session_free(s);
		return 0;
	}
	t->cnt.dns_queries++;
	return 1;
}

void session_resolved(struct session_table *t, struct session *s,
		      const struct cip_addr *target, const char *err,
		      struct cip_route *routes)
{
	struct masque_conn *c = s->c;
	struct masque_accept acc;
	int status;

	s->resolve_req = NULL;
	if (s->state == SESSION_ABANDONED) {
		/* The connection closed while we waited. */
		session_free(s);
		return;
	}
	t->h.set_data(t->h.ctx, c, NULL);
	if (target == NULL) {
		log_info("%s from %s: target %s does not resolve (%s): 502", s->id, s->peer, s->dns,
			 err ? err : "no address");
		t->cnt.refused_502++;
		t->h.answer(t->h.ctx, c, 502, NULL, "zgate-relay; error=dns_error");
		session_free(s);
		return;
	}
	s->target = *target;
	s->target.request_id = 0;
	s->any_target = 0;
	s->state = SESSION_NEW;
	memset(&acc, 0, sizeof(acc));
	status = admit(t, s, routes, &acc); /* frees s unless 200 or pending */
	if (status != MASQUE_PENDING)
		t->h.answer(t->h.ctx, c, status, status == 200 ? &acc : NULL, NULL);
}

void session_allocated(struct session_table *t, struct session *s, const uint8_t addr4[4],
		       const char *proxy_status, struct cip_route *routes)
{
	struct masque_conn *c = s->c;
	struct masque_accept acc;
	int status;

	s->alloc_req = NULL;
	t->h.set_data(t->h.ctx, c, NULL);
	if (addr4 == NULL) {
		t->cnt.refused_503++;
		t->cnt.refused_ipam++;
		t->h.audit_limit(t->h.ctx, "ipam_api", s->id, s->sid);
		t->h.answer(t->h.ctx, c, 503, NULL,
			    proxy_status ? proxy_status : "zgate-relay; error=proxy_internal_error");
		session_free(s);
		return;
	}
	memcpy(s->addr4, addr4, 4);
	s->allocated = 1;
	s->state = SESSION_NEW;
	memset(&acc, 0, sizeof(acc));
	status = admit(t, s, routes, &acc); /* frees s unless 200 */
	t->h.answer(t->h.ctx, c, status, status == 200 ? &acc : NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* open sessions                                                      */

int session_address_request(const struct session *s, const struct cip_addr *req, size_t n,
			    struct cip_addr *out, size_t *nout)
{
	int have4 = 0, have6 = 0;
	size_t i, k = 0;

	if (s == NULL || s->state == SESSION_NEW || s->state == SESSION_RESOLVING ||
	    s->state == SESSION_ABANDONED || s->state == SESSION_ALLOCATING)
		return ZG_ERR_STATE;
	/* The answer is the full set the client holds (C08), each entry that
	 * answers a request carrying its Request ID (C09). The relay keeps
	 * the address it chose (stable per client ID); a request for another
	 * one gets the current one. */
	for (i = 0; i < n && k < MASQUE_MAX_ADDRS; i++) {
		const struct stack_addr *v = req[i].version == 4 ? &s->vip4 : &s->vip6;

		if (v->version == 0 || (req[i].version == 4 ? have4 : have6)) {
			(void)cip_addr_refusal(&req[i], &out[k++]);
			continue;
		}
		out[k] = req[i];
		memset(out[k].addr, 0, sizeof(out[k].addr));
		memcpy(out[k].addr, v->a, req[i].version == 4 ? 4 : 16);
		out[k].prefix_len = req[i].version == 4 ? 32 : 128;
		k++;
		if (req[i].version == 4)
			have4 = 1;
		else
			have6 = 1;
	}
	if (!have4 && s->vip4.version && k < MASQUE_MAX_ADDRS) {
		memset(&out[k], 0, sizeof(out[k]));
		out[k].version = 4;
		memcpy(out[k].addr, s->vip4.a, 4);
		out[k++].prefix_len = 32;
	}
	if (!have6 && s->vip6.version && k < MASQUE_MAX_ADDRS) {
		memset(&out[k], 0, sizeof(out[k]));
		out[k].version = 6;
		memcpy(out[k].addr, s->vip6.a, 16);
		out[k++].prefix_len = 128;
	}
	*nout = k;
	return 0;
}

const char *session_close_token(const struct session_table *t, const struct session *s,
				const struct masque_close_info *ci)
{
	if (s->close_reason != NULL)
		return s->close_reason;
	if (s->state == SESSION_REPLACED)
		return "replaced";
	if (ci->idle)
		return "idle_timeout";
	if (t->shutting_down)
		return "relay_shutdown";
	if (ci->error == 0 && (ci->app_error == 0 || ci->app_error == SESSION_H3_NO_ERROR))
		return "client_closed";
	return "error";
}

void session_conn_closed(struct session_table *t, struct session *s,
			 const struct masque_close_info *ci)
{
	if (s == NULL)
		return; /* refused before a session existed */
	t->h.set_data(t->h.ctx, s->c, NULL);
	if (s->state == SESSION_ALLOCATING) {
		/* Not admitted yet, nothing taken: the answer must not come. */
		t->h.ipam_cancel(t->h.ctx, s);
		session_free(s);
		return;
	}
	if (s->state == SESSION_RESOLVING) {
		/* Not admitted yet: the deferred step or the resolver's
		 * callback frees it. */
		s->state = SESSION_ABANDONED;
		if (s->resolve_req != NULL)
			t->h.cancel_resolve(t->h.ctx, s);
		return;
	}
	if (s->state == SESSION_OPEN || s->state == SESSION_CLOSING) {
		vip_unlink(t, s);
		id_unlink(t, s);
		t->h.close_flows(t->h.ctx, s->id);
		t->h.ipam_release(t->h.ctx, s->id, 4);
		if (s->vip6.version)
			t->h.ipam_release(t->h.ctx, s->id, 6);
		t->h.ipam_changed(t->h.ctx);
	}
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		t->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	t->n--;
	log_info("tunnel closed: %s from %s (%s)", s->id, s->peer, ci->reason);
	t->h.audit_close(t->h.ctx, s, t->h.now_ms(t->h.ctx) - s->opened_ms,
			 session_close_token(t, s, ci));
	session_free(s);
}

void session_revoke(struct session_table *t, struct session *s, const char *reason,
		    const char *why)
{
	if (s->state != SESSION_OPEN)
		return;
	s->state = SESSION_CLOSING;
	s->close_reason = reason;
	log_warnx("%s from %s: %s: closing its tunnel", s->id, s->peer, why);
	t->h.close_flows(t->h.ctx, s->id);
	t->h.close_conn(t->h.ctx, s->c, why);
}

size_t session_policy_changed(struct session_table *t, struct cip_route *routes)
{
	struct session *s;
	size_t n, closed = 0;

	/* C07: each advertisement supersedes the previous one. */
	for (s = t->head; s != NULL; s = s->next) {
		if (s->state != SESSION_OPEN || !t->h.conn_is_open(t->h.ctx, s->c))
			continue;
		if (session_routes(t, s, routes, &n) != 0)
			n = 0;
		if (s->connector && (t->h.connector_known == NULL ||
				     !t->h.connector_known(t->h.ctx, s->conn_id))) {
			t->cnt.closed_policy++;
			session_revoke(t, s, "policy", "the policy no longer lists this connector");
			closed++;
			continue;
		}
		if (n == 0 && (s->connector || t->h.has_connectors == NULL ||
			       !t->h.has_connectors(t->h.ctx, s->id))) {
			/* issue 18.2: allowed nothing any more */
			t->cnt.closed_policy++;
			session_revoke(t, s, "policy", "the policy allows it nothing any more");
			closed++;
			continue;
		}
		if (t->h.send_routes(t->h.ctx, s->c, routes, n) != 0)
			log_warnx("%s: cannot send the new routes", s->id);
	}
	return closed;
}
