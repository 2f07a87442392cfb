/*
 * zgate-relay — the daemon: CONNECT-IP tunnels (src/masque) feeding a
 * userspace TCP/IP stack (src/stack) that terminates every flow as an
 * ordinary host socket, behind a per-client default-deny policy, with an
 * address pool, an audit trail and an ops endpoint. Runs as any user with
 * no capabilities; never needs a TUN device.
 *
 * One thread, one libevent loop. Sessions (one per tunnel) are found by
 * virtual IP for packets coming back from the stack, and by client ID
 * when a client connects again (the older session is replaced).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "hostport.h"
#include "log.h"
#include "opt.h"
#include "ratelimit.h"
#include "masque/masque.h"
#include "masque/tls.h"
#include "masque/udp.h"
#include "relay/apiclient.h"
#include "relay/audit.h"
#include "relay/config.h"
#include "relay/connlink.h"
#include "relay/ipam.h"
#include "relay/dnsassign.h"
#include "varint.h"
#include "zgconn.h"
#include "relay/dnsgate.h"
#include "relay/dnssvc.h"
#include "relay/fdlimit.h"
#include "relay/localaddr.h"
#include "relay/master.h"
#include "relay/metrics.h"
#include "relay/ops.h"
#include "relay/pdump.h"
#include "relay/policy.h"
#include "relay/polapi.h"
#include "relay/session.h"
#include "relay/watch.h"
#include "relay/wctl.h"
#include "sdnotify.h"
#include "stack.h"
#include "zg_build.h"
#include "zg_err.h"

struct relay {
	struct relay_config cfg;
	char config_path[CONFIG_PATH_MAX];
	struct event_base *base;
	struct evdns_base *dns;
	struct dnsgate *dnsgate;                             /* which names, how often (16.8b) */
	struct dnssvc *dnssvc;                               /* the DNS service in the tunnel (issue 19) */
	struct dnsassign *dnsassign;                         /* DNS_ASSIGN for clients (19.5) */
	uint8_t dns_capsule[DNSASSIGN_CAPSULE_MAX];          /* its scratch */
	char dns_names[CIPDNS_MAX_DOMAINS][POLICY_NAME_MAX]; /* policy_client_domains */
	WOLFSSL_CTX *tls;
	struct policy *policy;
	struct ipam *ipam;
	struct audit *audit;
	/* audit lines leave through stdout, written outside the packet path
	 * (audit.h): ev_audit runs a drain (activated, or as a retry timer),
	 * ev_audit_w waits until a pipe/socket can take more */
	struct audit_out audit_out;
	struct event *ev_audit, *ev_audit_w;
	uint64_t started_ms;
	const char *stop_reason;
	struct ops *ops;
	struct ops *admin_ops; /* admin.listen, when set; else admin is on ops */
	struct stack *stack;
	struct localaddr *local;
	struct masque_udp *udp;
	struct masque_server *srv;
	struct session_table st; /* the tunnels (session.h) */
	/* the routes of the answer being sent: they must outlive the
	 * callback that fills them (session_request) */
	struct cip_route routes[MASQUE_MAX_ROUTES];
	struct event *ev_term, *ev_int, *ev_hup, *ev_drain;
	struct event *ev_watchdog; /* WATCHDOG=1 to the service manager */
	uint8_t reset_secret[32];
	int draining, stopping;
	/* counters for /metrics */
	uint64_t decisions_allow, decisions_deny, scope_denied;
	uint64_t reload_ok, reload_fail;
	uint64_t last_reload_ok_s;
	/* policy_api: the fetcher (the single process's; with workers the
	 * master's) and the zgate-api version the loaded policy file holds */
	struct polapi *polapi;
	int policy_cache_bad; /* policy_api: the cached policy did not load at start */
	uint64_t policy_version;
	uint64_t out_no_session, out_too_big, out_congested;
	struct ipam_savelog savelog;
	/* the event loop ran: only then does shutdown_all() write the state
	 * file (--check-config, or a start that failed, leave it as it was) */
	int served;
	/* state_file exists but did not load (load_state): why, for
	 * state_set_aside(), which moves it out of the saves' way */
	char state_bad[512];
	int crl_expired_said; /* the "CRL expired" warning, once */
	/* issue 18: reloads of the TLS files and the policy, by SIGHUP or
	 * when the files change (watch.c) */
	struct watch *watch;
	uint64_t tls_reload_ok, tls_reload_fail;
	uint64_t closed_revoked, flows_closed_policy;
	/* issue 20.2: the shared pool (ipam.backend api) */
	struct apic *api;
	char relay_id[64];
	struct event *ev_api_refresh;
	uint64_t api_adm_api, api_adm_cached, api_adm_refused;
	/* tunnels allocated again after a refused refresh (api_reallocated) */
	uint64_t api_realloc_kept, api_realloc_closed, api_realloc_unreachable;
	int api_was_down;      /* zgate-api was unreachable once: "answers again" */
	uint64_t api_probe_ms; /* the last apic_probe() */
	/* When a refresh was last refused with 409 (zgate-api's pool changed):
	 * every open tunnel refreshed before it is refreshed again now. */
	uint64_t api_recheck_ms;
	/* issue 22: on-prem connectors (connlink.h) */
	struct connlink *cl;
	struct event *ev_connlink; /* idle links expire */
	/* ZG_CONNECTORS to every agent, at most every ZGCONN_GAP_MS
	 * (zgconn_notify_all) */
	struct event *ev_zgconn;
	uint64_t zgconn_last_ms;                             /* when every agent was last told */
	struct rl_bucket announce_log;                       /* "connector X announced" lines */
	uint64_t announce_unlogged;                          /* announcements since the last line */
	struct zgconn zgv[ZGCONN_MAX];                       /* ZG_CONNECTORS scratch */
	char conn_ids[ZGCONN_MAX][POLICY_ID_MAX];            /* policy_client_connectors */
	uint8_t zg_buf[32768];                               /* one ZG_CONNECTORS value */
	uint8_t acc_capsules[DNSASSIGN_CAPSULE_MAX + 32768]; /* what rides the 200 */
	struct pdump dump;                                   /* debug.payload_dump */
	/* issue 21: workers: N (master.h). nworkers 1: this process is the
	 * whole relay; else it is worker `worker` of nworkers */
	unsigned worker, nworkers;
	struct master_env *wenv;
	struct wctl_server *ctl; /* the master's requests */
	struct event *ev_notes;  /* the other workers' notes */
	uint64_t replaced_elsewhere;
	/* connectors on other workers (connlink.h "Workers"): the ends this
	 * worker's connlink knows them by, and the packets to and from them */
	struct rconn {
		int used;
		unsigned worker;
		uint64_t sid;
		char id[POLICY_ID_MAX];
	} rc[CONNLINK_MAX_CONNECTORS];
	struct event *ev_xfer;
	uint64_t xfer_drops; /* counted as connector drops "send" */
	uint8_t xfer_buf[MASTER_XFER_HDR + MASTER_XFER_PKT_MAX];
};

static uint64_t fnv1a(const uint8_t *p, size_t n);

/* Every packet the relay sends into a tunnel goes through here. */
static int relay_send(struct relay *r, struct masque_conn *c, const uint8_t *pkt, size_t len)
{
	pdump_packet(&r->dump, pkt, len);
	return masque_conn_send(c, pkt, len);
}

/* ------------------------------------------------------------------ */
/* ZG_CONNECTORS (issue 22): which connectors an agent may reach       */

#define ZGCONN_GAP_MS 250 /* least time between two ZG_CONNECTORS to every agent */

static uint64_t mono_ms(void);

/* The capsule value for agent s into r->zg_buf: *pn connectors. */
static int zgconn_build(struct relay *r, const struct session *s, size_t *plen, size_t *pn)
{
	size_t n = 0;
	int rv = policy_client_connectors(r->policy, s->id, r->conn_ids, ZGCONN_MAX, &n);

	if (rv == ZG_ERR_TOO_LARGE) {
		log_warnx("%s: more than %d connectors allowed: ZG_CONNECTORS carries the first %d",
			  s->id, ZGCONN_MAX, ZGCONN_MAX);
		n = ZGCONN_MAX;
	} else if (rv != 0) {
		n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct zgconn *z = &r->zgv[i];
		const struct connlink_connector *c = connlink_find(r->cl, r->conn_ids[i]);

		memset(z, 0, sizeof(*z));
		(void)snprintf(z->id, sizeof(z->id), "%s", r->conn_ids[i]);
		if (c == NULL || c->nprefixes == 0)
			continue; /* down, or nothing announced inside its bound yet */
		z->up = 1;
		z->port = c->port;
		if (c->vip4.version == 4) {
			z->addrs[z->naddrs].version = 4;
			memcpy(z->addrs[z->naddrs].a, c->vip4.a, 4);
			z->addrs[z->naddrs++].len = 32;
		}
		if (c->vip6.version == 6) {
			z->addrs[z->naddrs].version = 6;
			memcpy(z->addrs[z->naddrs].a, c->vip6.a, 16);
			z->addrs[z->naddrs++].len = 128;
		}
		for (size_t k = 0; k < c->nprefixes && k < ZGCONN_MAX_PREFIXES; k++) {
			z->prefixes[k].version = c->prefixes[k].version;
			memcpy(z->prefixes[k].a, c->prefixes[k].a, 16);
			z->prefixes[k].len = c->prefixes[k].len;
			z->nprefixes = k + 1;
		}
	}
	*pn = n;
	return zgconn_encode(r->zgv, n, r->zg_buf, sizeof(r->zg_buf), plen);
}

/* Sends agent s its ZG_CONNECTORS when it differs from the last one sent
 * (an empty one withdraws connectors it had). */
static void zgconn_send(struct relay *r, struct session *s)
{
	size_t len = 0, n = 0;
	uint64_t h;
	int rv;

	if (s->connector || s->state != SESSION_OPEN || !masque_conn_is_open(s->c))
		return;
	if ((rv = zgconn_build(r, s, &len, &n)) != 0) {
		log_warnx("%s: cannot build ZG_CONNECTORS: %s", s->id, zg_strerror(rv));
		return;
	}
	if (n == 0 && s->zgconn_sent == 0)
		return;
	h = fnv1a(r->zg_buf, len);
	if (h == s->zgconn_sent)
		return;
	rv = masque_conn_send_capsule(s->c, CAPSULE_ZG_CONNECTORS, r->zg_buf, len);
	if (rv != 0) {
		log_warnx("%s: cannot send ZG_CONNECTORS: %s", s->id, zg_strerror(rv));
		return;
	}
	s->zgconn_sent = h;
	log_debug("%s: ZG_CONNECTORS sent (%zu connectors)", s->id, n);
}

static void zgconn_send_all(struct relay *r)
{
	for (struct session *s = r->st.head; s != NULL; s = s->next)
		zgconn_send(r, s);
}

static void zgconn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	(void)fd;
	(void)what;
	r->zgconn_last_ms = mono_ms();
	zgconn_send_all(r);
}

/* A connector came, went or changed its prefixes, or the policy changed:
 * every agent is told its list again, at the end of this loop turn or,
 * when agents were told less than ZGCONN_GAP_MS ago, that long after. Each
 * telling costs a capsule per agent whose list changed, so a connector
 * that announces in a loop must not set one off each time; the agents get
 * the state as it is when the timer fires (the latest always wins). */
static void zgconn_notify_all(struct relay *r)
{
	struct timeval tv = { 0, 0 };
	uint64_t now, at;

	if (r->ev_zgconn == NULL) { /* before connlink_start() */
		zgconn_send_all(r);
		return;
	}
	if (evtimer_pending(r->ev_zgconn, NULL))
		return;
	now = mono_ms();
	at = r->zgconn_last_ms + ZGCONN_GAP_MS;
	if (r->zgconn_last_ms != 0 && at > now) {
		tv.tv_sec = (time_t)((at - now) / 1000);
		tv.tv_usec = (suseconds_t)((at - now) % 1000 * 1000);
	}
	if (event_add(r->ev_zgconn, &tv) != 0)
		zgconn_send_all(r);
}

/* ------------------------------------------------------------------ */
/* connectors across workers (connlink.h "Workers")                   */

_Static_assert(CONNLINK_STATE_MAX <= MASTER_NOTE_PAYLOAD_MAX, "a connector's state fits a note");

/* Tells worker to (or every other, MASTER_NOTE_ALL) of local connector
 * session s: kind MASTER_NOTE_CONN_UP (its state now) or _DOWN. */
static void conn_note(struct relay *r, struct session *s, uint8_t kind, int to)
{
	uint8_t buf[CONNLINK_STATE_MAX], *end;
	struct connlink_state st;
	int rv;

	if (r->nworkers < 2)
		return;
	if (kind == MASTER_NOTE_CONN_UP) {
		if (connlink_state_of(r->cl, s, &st) != 0)
			return; /* not (or no longer) the connector's session */
	} else {
		memset(&st, 0, sizeof(st));
		(void)snprintf(st.id, sizeof(st.id), "%s", s->conn_id);
		st.sid = s->sid;
		st.vip4 = s->vip4;
		st.vip6 = s->vip6;
		st.port = CONNLINK_INNER_PORT;
	}
	if ((end = connlink_state_encode(&st, buf, buf + sizeof(buf))) == NULL)
		return; /* not reached: the ID is the policy's */
	rv = master_note_put(r->wenv, r->worker, to, kind, buf, (size_t)(end - buf));
	if (rv != 0)
		log_warnx("connector %s: cannot tell the other workers it is %s: %s", s->conn_id,
			  kind == MASTER_NOTE_CONN_UP ? "up" : "down", zg_strerror(rv));
}

/* The end of connector session sid on worker w, or NULL. */
static struct rconn *rc_find(struct relay *r, unsigned w, uint64_t sid)
{
	for (size_t i = 0; i < CONNLINK_MAX_CONNECTORS; i++)
		if (r->rc[i].used && r->rc[i].worker == w && r->rc[i].sid == sid)
			return &r->rc[i];
	return NULL;
}

/* Forgets the remote ends connlink no longer has (a newer session of the
 * same connector, here or on another worker, replaced them there). */
static void rc_gc(struct relay *r)
{
	for (size_t i = 0; i < CONNLINK_MAX_CONNECTORS; i++) {
		const struct connlink_connector *cc;

		if (!r->rc[i].used)
			continue;
		cc = connlink_find(r->cl, r->rc[i].id);
		if (cc == NULL || cc->sess != &r->rc[i])
			r->rc[i].used = 0;
	}
}

/* A connector note from worker from (MASTER_NOTE_CONN_UP / _DOWN). */
static void rc_note(struct relay *r, uint8_t kind, unsigned from, const uint8_t *p, size_t len)
{
	char ident[POLICY_ID_MAX + 16];
	struct connlink_state st;
	struct rconn *rc;
	int rv;

	if (connlink_state_decode(&p, p + len, &st) != 0) {
		log_warnx("worker %u: a malformed connector note, ignored", from);
		return;
	}
	rc = rc_find(r, from, st.sid);
	if (kind == MASTER_NOTE_CONN_DOWN) {
		if (rc == NULL)
			return; /* replaced already, or never taken */
		if (connlink_session_closed(r->cl, rc)) {
			log_info("connector %s down (on worker %u)", st.id, from);
			zgconn_notify_all(r);
		}
		rc->used = 0;
		return;
	}
	/* only the connector's newest session: the one whose worker holds its
	 * address (an older session's late note is ignored) */
	(void)snprintf(ident, sizeof(ident), "%s%s", CONNLINK_IDENTITY_PREFIX, st.id);
	if (ipam_holder(r->ipam, ident, st.vip4.version == 4 ? 4 : 6) != (int)from) {
		log_debug("connector %s: a note from worker %u about an older session, ignored",
			  st.id, from);
		return;
	}
	if (rc == NULL) {
		for (size_t i = 0; i < CONNLINK_MAX_CONNECTORS && rc == NULL; i++)
			if (!r->rc[i].used)
				rc = &r->rc[i];
		if (rc == NULL) {
			log_warnx("connector %s on worker %u: %d connectors up already", st.id, from,
				  CONNLINK_MAX_CONNECTORS);
			return;
		}
		memset(rc, 0, sizeof(*rc));
		rc->worker = from;
		rc->sid = st.sid;
		(void)snprintf(rc->id, sizeof(rc->id), "%s", st.id);
		struct connlink_end e = { rc, rc->id, st.sid, st.vip4, st.vip6, from + 1 };
		if ((rv = connlink_connector_up(r->cl, &e, st.port)) != 0) {
			log_warnx("connector %s on worker %u: %s", st.id, from, zg_strerror(rv));
			return;
		}
		rc->used = 1;
		log_info("connector %s up on worker %u", st.id, from);
	}
	(void)connlink_announce(r->cl, rc, st.routes, st.nroutes);
	rc_gc(r);
	zgconn_notify_all(r);
}

/* Worker from (re)started: its connectors here are gone with its old
 * process; it learns the ones up here. */
/* Forgets the connectors worker from had (it exited or restarted; why:
 * for the log); tells the agents when one went down. */
static void rc_forget(struct relay *r, unsigned from, const char *why)
{
	int gone = 0;

	for (size_t i = 0; i < CONNLINK_MAX_CONNECTORS; i++) {
		if (!r->rc[i].used || r->rc[i].worker != from)
			continue;
		if (connlink_session_closed(r->cl, &r->rc[i])) {
			log_info("connector %s down (worker %u %s)", r->rc[i].id, from, why);
			gone = 1;
		}
		r->rc[i].used = 0;
	}
	if (gone)
		zgconn_notify_all(r);
}

static void rc_hello(struct relay *r, unsigned from)
{
	rc_forget(r, from, "restarted");
	for (struct session *s = r->st.head; s != NULL; s = s->next)
		if (s->connector && s->state == SESSION_OPEN)
			conn_note(r, s, MASTER_NOTE_CONN_UP, (int)from);
}

#define WATCH_DEBOUNCE_MS 200

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------ */
/* session hooks (session.h)                                          */

static void save_ipam(struct relay *r)
{
	if (r->cfg.state_file[0] != '\0')
		(void)ipam_save_logged(r->ipam, r->cfg.state_file, &r->savelog);
}

static int h_policy_routes(void *ctx, const char *id, struct cip_route *out, size_t cap,
			   size_t *pn)
{
	struct relay *r = ctx;

	return policy_routes(r->policy, id, out, cap, pn);
}

static int h_ipam_alloc(void *ctx, const char *id, int version, uint8_t addr[16])
{
	struct relay *r = ctx;

	/* workers: the address records which worker's tunnel has it */
	return ipam_alloc_by(r->ipam, id, (uint8_t)version, NULL, (uint8_t)r->worker, addr);
}

/* 19.5: the DNS_ASSIGN capsule for s (dnsassign.h) in buf, or 0 when
 * there is none: dns.domains merged with the names the client's own allow
 * rules give (policy_client_domains). */
static size_t dns_assign_build(struct relay *r, struct session *s, uint8_t *buf, size_t cap)
{
	const char *extra[CIPDNS_MAX_DOMAINS];
	size_t len = 0, dropped = 0, n = 0, i;
	int rv;

	rv = policy_client_domains(r->policy, s->id, r->dns_names, CIPDNS_MAX_DOMAINS, &n);
	if (rv == ZG_ERR_TOO_LARGE) {
		log_warnx("%s: more than %d names in the policy: DNS_ASSIGN carries the first %d",
			  s->id, CIPDNS_MAX_DOMAINS, CIPDNS_MAX_DOMAINS);
		n = CIPDNS_MAX_DOMAINS;
	} else if (rv != 0) {
		n = 0;
	}
	for (i = 0; i < n; i++)
		extra[i] = r->dns_names[i];
	rv = dnsassign_for_client(r->dnsassign, extra, n, buf, cap, &len, &dropped);
	s->dns_assigned = 1;
	if (rv != 0 && rv != ZG_ERR_NOTFOUND)
		log_warnx("%s: no DNS_ASSIGN: %s", s->id, zg_strerror(rv));
	if (dropped > 0)
		log_warnx("%s: DNS_ASSIGN leaves out %zu domains", s->id, dropped);
	return rv == 0 ? len : 0;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n-- > 0)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h | 1; /* never 0: 0 means "none sent" */
}

/* dns.enabled true: DNS_ASSIGN rides the 200, after the routes. */
static void h_accept_extra(void *ctx, struct session *s, struct masque_accept *acc)
{
	struct relay *r = ctx;
	size_t len = 0, n = 0, cap;
	int rv;

	if (s->connector) {
		struct connlink_end e = { s, s->conn_id, s->sid, s->vip4, s->vip6, 0 };

		if ((rv = connlink_connector_up(r->cl, &e, CONNLINK_INNER_PORT)) != 0)
			log_warnx("%s: cannot take it as a connector: %s", s->id, zg_strerror(rv));
		else
			log_info("connector %s up at %s (its prefixes follow its ROUTE_ADVERTISEMENT)",
				 s->conn_id, s->vip_s);
		if (rv == 0) {
			rc_gc(r); /* a remote end of the same connector it replaced */
			conn_note(r, s, MASTER_NOTE_CONN_UP, MASTER_NOTE_ALL);
		}
		zgconn_notify_all(r); /* a connector it replaced may be gone */
		return;
	}
	if (dnsassign_when(r->dnsassign) == DNSASSIGN_ALWAYS) {
		len = dns_assign_build(r, s, r->dns_capsule, sizeof(r->dns_capsule));
		memcpy(r->acc_capsules, r->dns_capsule, len);
		s->dns_wants = 1;
		s->dns_sent = len > 0 ? fnv1a(r->dns_capsule, len) : 0;
		if (len > 0)
			log_debug("%s: DNS_ASSIGN sent with the 200 (%zu bytes)", s->id, len);
	}
	/* issue 22: the connectors it may reach ride the 200 too */
	acc->capsules = r->acc_capsules;
	acc->capsules_len = len;
	cap = sizeof(r->acc_capsules) - len;
	if (zgconn_build(r, s, &len, &n) == 0 && n > 0) {
		s->zgconn_sent = fnv1a(r->zg_buf, len);
		if (zgconn_encode_capsule(r->zgv, n, r->acc_capsules + acc->capsules_len, cap,
					  &len) == 0)
			acc->capsules_len += len;
		else
			s->zgconn_sent = 0;
	}
	if (acc->capsules_len == 0)
		acc->capsules = NULL;
}

/* Sends s its DNS_ASSIGN when it differs from the last one sent; an empty
 * one withdraws an earlier assignment (a new capsule replaces the old). */
static void dns_assign_send(struct relay *r, struct session *s)
{
	uint8_t *buf = r->dns_capsule;
	const uint8_t *q = buf, *end;
	uint64_t t, l, h;
	size_t n;
	int rv;

	n = dns_assign_build(r, s, buf, sizeof(r->dns_capsule));
	h = n > 0 ? fnv1a(buf, n) : 0;
	if (h == s->dns_sent)
		return;
	if (n == 0) {
		rv = masque_conn_send_capsule(s->c, CAPSULE_DNS_ASSIGN, buf, 0);
	} else {
		end = buf + n;
		if (varint_decode(&q, end, &t) != 0 || varint_decode(&q, end, &l) != 0)
			return; /* not reached: dnsassign wrote it */
		rv = masque_conn_send_capsule(s->c, t, q, (size_t)l);
	}
	if (rv != 0) {
		log_warnx("%s: cannot send DNS_ASSIGN: %s", s->id, zg_strerror(rv));
		return;
	}
	s->dns_sent = h;
	log_debug("%s: DNS_ASSIGN sent (%zu bytes)", s->id, n);
}

/* dns.enabled auto: a client that sends DNS_ASSIGN knows the capsule; it
 * gets the relay's, once (its own content is ignored, as the draft says a
 * proxy does), and again when a policy reload changes it. */
static int on_capsule(struct masque_conn *c, uint64_t type, const uint8_t *v, size_t len,
		      void *ctx)
{
	struct relay *r = ctx;
	struct session *s = masque_conn_data(c);

	(void)v;
	(void)len;
	if (type != CAPSULE_DNS_ASSIGN || s == NULL || s->state != SESSION_OPEN || s->dns_assigned ||
	    dnsassign_when(r->dnsassign) == DNSASSIGN_NEVER)
		return 0;
	s->dns_wants = 1;
	dns_assign_send(r, s);
	return 0;
}

/* After a policy reload: the clients that take DNS_ASSIGN get the new
 * one when their names changed. */
static void dns_assign_policy_changed(struct relay *r)
{
	struct session *s;

	for (s = r->st.head; s != NULL; s = s->next)
		if (s->state == SESSION_OPEN && s->dns_wants && masque_conn_is_open(s->c))
			dns_assign_send(r, s);
}

static void h_ipam_release(void *ctx, const char *id, int version)
{
	struct relay *r = ctx;

	/* not when the client's newer tunnel on another worker took it */
	(void)ipam_release_by(r->ipam, id, (uint8_t)version, (uint8_t)r->worker);
}

static void h_ipam_changed(void *ctx)
{
	struct relay *r = ctx;

	if (r->nworkers < 2)
		save_ipam(r); /* else the master saves (master.h) */
}

static const uint8_t *h_peer_cert(void *ctx, struct masque_conn *c, size_t *plen)
{
	(void)ctx;
	return masque_conn_peer_cert(c, plen);
}

static void h_set_data(void *ctx, struct masque_conn *c, struct session *s)
{
	(void)ctx;
	masque_conn_set_data(c, s);
}

static int h_conn_is_open(void *ctx, struct masque_conn *c)
{
	(void)ctx;
	return masque_conn_is_open(c);
}

static void h_close_conn(void *ctx, struct masque_conn *c, const char *why)
{
	(void)ctx;
	masque_conn_close(c, SESSION_H3_NO_ERROR, why);
}

static void h_answer(void *ctx, struct masque_conn *c, int status, const struct masque_accept *acc,
		     const char *proxy_status)
{
	(void)ctx;
	(void)masque_conn_answer(c, status, acc, proxy_status);
}

static int h_send_routes(void *ctx, struct masque_conn *c, const struct cip_route *rt, size_t n)
{
	(void)ctx;
	return masque_conn_send_routes(c, rt, n);
}

static void h_close_flows(void *ctx, const char *id)
{
	struct relay *r = ctx;

	stack_close_client(r->stack, id);
}

/* A DNS-name target resolved (C03): the tunnel is scoped to the first
 * address, or refused with Proxy-Status dns_error (session_resolved). */
static void resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct session *s = arg;
	struct relay *r = s->t->h.ctx;
	struct evutil_addrinfo *ai;
	struct cip_addr target;

	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			break;
	memset(&target, 0, sizeof(target));
	if (result == 0 && ai != NULL && ai->ai_family == AF_INET) {
		target.version = 4;
		memcpy(target.addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
		target.prefix_len = 32;
	} else if (result == 0 && ai != NULL) {
		target.version = 6;
		memcpy(target.addr, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
		target.prefix_len = 128;
	}
	session_resolved(&r->st, s, target.version ? &target : NULL,
			 result ? evutil_gai_strerror(result) : "no address", r->routes);
	if (res != NULL)
		evutil_freeaddrinfo(res);
}

static void resolve_start(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct relay *r = s->t->h.ctx;
	struct evdns_getaddrinfo_request *req;
	struct evutil_addrinfo hints;

	(void)fd;
	(void)what;
	if (session_deferred(&r->st, s) == 0)
		return; /* answered or abandoned, and freed */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* NULL when the callback already ran (and s may be gone) */
	req = evdns_getaddrinfo(r->dns, s->dns, NULL, &hints, resolved_cb, s);
	if (req != NULL)
		s->resolve_req = req;
}

static int h_defer(void *ctx, struct session *s, int need_resolver)
{
	struct relay *r = ctx;

	if (need_resolver && r->dns == NULL)
		return ZG_ERR_STATE;
	return event_base_once(r->base, -1, EV_TIMEOUT, resolve_start, s, NULL) != 0 ? ZG_ERR_NOMEM
										     : 0;
}

static void h_cancel_resolve(void *ctx, struct session *s)
{
	(void)ctx;
	evdns_getaddrinfo_cancel(s->resolve_req);
}

static void h_audit_limit(void *ctx, const char *what, const char *id, uint64_t sid)
{
	struct relay *r = ctx;

	audit_limit_hit(r->audit, what, id, sid);
}

static void h_audit_open(void *ctx, const struct session *s)
{
	struct relay *r = ctx;

	audit_session_open(r->audit, s->sid, s->id, s->vip_s, s->peer, masque_conn_cert_serial(s->c),
			   masque_conn_cert_sha256(s->c));
	/* one tunnel per client across the workers: an older one on another
	 * worker is closed there (notes_cb) */
	if (r->nworkers > 1 && master_note_send(r->wenv, r->worker, MASTER_NOTE_OPENED, s->id) != 0)
		log_warnx("%s: cannot tell the other workers of its new tunnel", s->id);
}

static void h_audit_close(void *ctx, const struct session *s, uint64_t duration_ms,
			  const char *token)
{
	struct relay *r = ctx;

	audit_session_close(r->audit, s->sid, s->id, s->vip_s, s->peer, duration_ms, s->bytes_up,
			    s->bytes_down, token);
}

/* issue 19: the DNS service's address and the addresses its answers
 * taught, for a client the policy gives ranges or names. */
static size_t h_extra_routes(void *ctx, const char *id, int has_routes, struct cip_route *out,
			     size_t cap)
{
	struct relay *r = ctx;

	if (!has_routes && !policy_client_has_names(r->policy, id))
		return 0;
	return dnssvc_routes(r->dnssvc, id, out, cap);
}

static uint64_t h_now_ms(void *ctx)
{
	(void)ctx;
	return mono_ms();
}

/* ------------------------------------------------------------------ */
/* the shared pool (ipam.backend api, issue 20.2)                     */

/* One admission waiting for zgate-api (s->alloc_req), or for the next
 * loop turn when the answer is known without asking (ev). */
struct api_wait {
	struct relay *r;
	struct session *s;
	struct apic_req *req;
	struct event *ev;
	uint8_t addr4[4];
};

static void api_wait_free(struct api_wait *w)
{
	if (w->ev != NULL)
		event_free(w->ev);
	free(w);
}

/* An sf-string for Proxy-Status details: printable ASCII, '"' and '\\'
 * escaped (RFC 8941). */
static void sf_string(const char *in, char *out, size_t cap)
{
	size_t k = 0;

	for (; *in != '\0' && k + 3 < cap; in++) {
		unsigned char ch = (unsigned char)*in;

		if (ch < 0x20 || ch > 0x7e)
			ch = '?';
		if (ch == '"' || ch == '\\')
			out[k++] = '\\';
		out[k++] = (char)ch;
	}
	out[k] = '\0';
}

static void api_known_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_wait *w = arg;
	struct relay *r = w->r;
	struct session *s = w->s;
	uint8_t a[4];

	(void)fd;
	(void)what;
	memcpy(a, w->addr4, 4);
	s->alloc_req = NULL;
	api_wait_free(w);
	r->api_adm_cached++;
	session_allocated(&r->st, s, a, NULL, r->routes);
}

/* apic's on_state: each change is logged when it happens (a state the
 * relay only sampled could come and go unseen between two looks). */
static void api_on_state(void *arg, int st)
{
	struct relay *r = arg;

	if (st == APIC_DOWN) {
		log_warnx("zgate-api %s unreachable: %s (tunnels stay up; clients this relay knows "
			  "are admitted with their address, new ones get 503)",
			  r->cfg.ipam_api_url, apic_last_error(r->api));
		r->api_was_down = 1;
	} else if (st == APIC_UP && r->api_was_down) {
		log_info("zgate-api %s answers again", r->cfg.ipam_api_url);
	}
}

static void api_alloc_cb(void *arg, const struct apic_result *res)
{
	struct api_wait *w = arg;
	struct relay *r = w->r;
	struct session *s = w->s;
	uint8_t known[16];
	char ps[320], d[200];
	int unreachable = res->status == 0 || res->status >= 500;

	s->alloc_req = NULL;
	api_wait_free(w);
	if (res->ok) {
		r->api_adm_api++;
		session_allocated(&r->st, s, res->addr4, NULL, r->routes);
		return;
	}
	if (unreachable && ipam_known(r->ipam, s->id, 4, known) == 0) {
		char as[INET_ADDRSTRLEN];

		(void)inet_ntop(AF_INET, known, as, sizeof(as));
		log_warnx("%s from %s: zgate-api unreachable (%s): admitted with its known address "
			  "%s",
			  s->id, s->peer, res->cause, as);
		r->api_adm_cached++;
		session_allocated(&r->st, s, known, NULL, r->routes);
		return;
	}
	r->api_adm_refused++;
	log_warnx("%s from %s: no address from zgate-api (%s): 503", s->id, s->peer, res->cause);
	sf_string(res->cause, d, sizeof(d));
	(void)snprintf(ps, sizeof(ps), "zgate-relay; error=%s; details=\"ipam api: %s\"",
		       unreachable ? "proxy_internal_error" : "proxy_internal_response", d);
	session_allocated(&r->st, s, NULL, ps, r->routes);
}

static int h_ipam_alloc_async(void *ctx, struct session *s)
{
	struct relay *r = ctx;
	struct api_wait *w = calloc(1, sizeof(*w));
	uint8_t known[16];
	int have = ipam_known(r->ipam, s->id, 4, known) == 0;

	if (w == NULL)
		return ZG_ERR_NOMEM;
	w->r = r;
	w->s = s;
	if (have && apic_state(r->api) == APIC_DOWN) {
		/* zgate-api is down and this client's address is known: no
		 * need to wait out ipam.api.timeout; the refresh asks it
		 * (and tells when it is back). */
		memcpy(w->addr4, known, 4);
		w->ev = event_new(r->base, -1, 0, api_known_cb, w);
		if (w->ev == NULL) {
			free(w);
			return ZG_ERR_NOMEM;
		}
		event_active(w->ev, EV_TIMEOUT, 1);
		(void)apic_refresh(r->api, s->id, NULL, NULL);
		log_info("%s from %s: zgate-api down: admitted with its known address", s->id,
			 s->peer);
	} else {
		w->req = apic_allocate(r->api, s->id, have ? known : NULL, api_alloc_cb, w);
		if (w->req == NULL) {
			free(w);
			r->api_adm_refused++;
			return ZG_ERR_LIMIT;
		}
	}
	s->alloc_req = w;
	return 0;
}

static void h_ipam_cancel(void *ctx, struct session *s)
{
	struct api_wait *w = s->alloc_req;

	(void)ctx;
	if (w == NULL)
		return;
	if (w->req != NULL)
		apic_cancel(w->req);
	api_wait_free(w);
	s->alloc_req = NULL;
}

static int h_ipam_assign(void *ctx, const char *id, const uint8_t addr4[4])
{
	struct relay *r = ctx;

	return ipam_assign_by(r->ipam, id, 4, addr4, (uint8_t)r->worker);
}

/* The open tunnel of client id whose address came from zgate-api, or
 * NULL (it closed, or was replaced by one still being admitted, since the
 * request left). */
static struct session *api_tunnel(struct relay *r, const char *id)
{
	struct session *s = session_by_id(&r->st, id);

	return s != NULL && s->state == SESSION_OPEN && s->allocated ? s : NULL;
}

/* The answer to the allocation api_refreshed() asked for a tunnel whose
 * lease zgate-api no longer holds: the tunnel stays only if it got its
 * own address back; zgate-api unreachable, it stays too and the next
 * refresh asks again; otherwise it is closed (audit reason "lease"), and
 * the client, reconnecting, is admitted with the address zgate-api now
 * holds for it (or refused 503 if none). */
static void api_reallocated(void *arg, const struct apic_result *res)
{
	struct relay *r = arg;
	struct session *s = api_tunnel(r, res->client_id);
	char why[320], have[INET_ADDRSTRLEN], got[INET_ADDRSTRLEN];

	if (s == NULL)
		return;
	(void)inet_ntop(AF_INET, s->addr4, have, sizeof(have));
	if (res->ok && memcmp(res->addr4, s->addr4, 4) == 0) {
		r->api_realloc_kept++;
		log_info("%s at %s: zgate-api holds its address for it again: tunnel kept", s->id,
			 have);
		return;
	}
	if (!res->ok && (res->status == 0 || res->status >= 500)) {
		r->api_realloc_unreachable++;
		log_warnx("%s at %s: zgate-api unreachable while allocating it again (%s): tunnel "
			  "kept, asked again at the next refresh",
			  s->id, have, res->cause);
		return;
	}
	if (res->ok) {
		(void)inet_ntop(AF_INET, res->addr4, got, sizeof(got));
		(void)snprintf(why, sizeof(why),
			       "its address %s is no longer its lease (zgate-api gave %s: its pool "
			       "changed?); the client reconnects to get it",
			       have, got);
	} else {
		(void)snprintf(why, sizeof(why),
			       "its address %s is no longer its lease and zgate-api gives it none "
			       "(%s)",
			       have, res->cause);
	}
	r->api_realloc_closed++;
	session_revoke(&r->st, s, "lease", why);
}

/* A refresh's answer. 404 (zgate-api holds no lease for the client: an
 * admin released it, or it expired and went to another client) or 409
 * (its address lies outside zgate-api's pool, made smaller or moved):
 * the tunnel's address is no longer the client's lease, so the relay
 * allocates again, asking for that address (api_reallocated) rather than
 * keep one that zgate-api may give to someone else or that no relay
 * routes any more. Other failures are only counted (the next refresh
 * tries again). */
static void api_refreshed(void *arg, const struct apic_result *res)
{
	struct relay *r = arg;
	struct session *s;
	char have[INET_ADDRSTRLEN];
	uint64_t now = mono_ms();

	if (res->ok || (res->status != 404 && res->status != 409) ||
	    (s = api_tunnel(r, res->client_id)) == NULL)
		return;
	(void)inet_ntop(AF_INET, s->addr4, have, sizeof(have));
	log_warnx("%s at %s: zgate-api refused to refresh its lease (%s): allocating it again", s->id,
		  have, res->cause);
	/* A 409 means zgate-api's pool changed (made smaller or moved: it
	 * changes only with a restart of zgate-api), so the other tunnels'
	 * addresses may lie outside it too: rather than each waiting for its
	 * own refresh (ipam.api.refresh, 1 h by default), every tunnel
	 * refreshed before now is refreshed again at once, in the refresh's
	 * batches (api_refresh_cb). Not again for a 409 that such a recheck
	 * drew, nor for one sent before the last recheck began (that
	 * recheck covers it): one pool change, one pass over the tunnels. */
	if (res->status == 409 && !s->api_rechecked && s->refreshed_ms >= r->api_recheck_ms) {
		r->api_recheck_ms = now;
		if (r->st.n > 1)
			log_warnx("zgate-api's pool changed (a refresh refused with 409): the leases of "
				  "the %zu other open tunnels are refreshed now, not at their next "
				  "ipam.api.refresh",
				  r->st.n - 1);
	}
	s->refreshed_ms = now; /* allocated again now: no recheck of it meanwhile */
	if (apic_allocate(r->api, s->id, s->addr4, api_reallocated, r) == NULL)
		log_warnx("%s: cannot ask zgate-api now (queue full): asked again at the next refresh",
			  s->id);
}

/* Marks the leases of open tunnels used, each once per ipam.api.refresh
 * and once more after a refresh was refused with 409 (api_refreshed), a
 * bounded batch per second so that 10,000 tunnels never queue 10,000
 * requests at once. */
#define API_REFRESH_BATCH 256
#define API_PROBE_MS 5000
static void api_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	uint64_t now = mono_ms();
	unsigned n = 0;
	int recheck;

	(void)fd;
	(void)what;
	/* Not known to be up and nothing on the way: ask whether it is,
	 * every API_PROBE_MS, so that the state (/ready, zgate_ipam_api_up)
	 * does not wait for a client to learn that it came back. */
	if (apic_state(r->api) != APIC_UP && apic_pending(r->api) == 0 &&
	    now - r->api_probe_ms >= API_PROBE_MS && apic_probe(r->api) == 0)
		r->api_probe_ms = now;
	for (struct session *s = r->st.head; s != NULL && n < API_REFRESH_BATCH; s = s->next) {
		if (s->state != SESSION_OPEN)
			continue;
		if (s->refreshed_ms == 0)
			s->refreshed_ms = s->opened_ms;        /* admission marked it */
		recheck = s->refreshed_ms < r->api_recheck_ms; /* api_refreshed() */
		if (!recheck && now - s->refreshed_ms < r->cfg.ipam_api_refresh_ms)
			continue;
		if (apic_refresh(r->api, s->id, api_refreshed, r) != 0)
			break;
		s->refreshed_ms = now;
		s->api_rechecked = (uint8_t)recheck;
		n++;
	}
}

static int api_start(struct relay *r, char *err, size_t errlen)
{
	struct apic_config ac;
	const struct timeval tick = { 1, 0 };
	int rv;

	if (strcmp(r->cfg.ipam_backend, "api") != 0)
		return 0;
	if ((rv = config_relay_id(&r->cfg, r->relay_id, sizeof(r->relay_id), err, errlen)) != 0)
		return rv;
	memset(&ac, 0, sizeof(ac));
	ac.url = r->cfg.ipam_api_url;
	ac.ca = r->cfg.ipam_api_ca;
	ac.cert = r->cfg.ipam_api_cert;
	ac.key = r->cfg.ipam_api_key;
	ac.relay_id = r->relay_id;
	ac.timeout_ms = r->cfg.ipam_api_timeout_ms;
	ac.on_state = api_on_state;
	ac.on_state_arg = r;
	if ((rv = apic_new(r->base, r->dns, &ac, &r->api, err, errlen)) != 0)
		return rv;
	r->ev_api_refresh = event_new(r->base, -1, EV_PERSIST, api_refresh_cb, r);
	if (r->ev_api_refresh == NULL || event_add(r->ev_api_refresh, &tick) != 0)
		return ZG_ERR_NOMEM;
	log_info("addresses from zgate-api %s as relay %s (its pool must be this relay's "
		 "pool.ipv4)",
		 r->cfg.ipam_api_url, r->relay_id);
	return 0;
}

/* /ready waits for the first policy from zgate-api (polapi.h): a relay
 * that denies everything is started, not ready for traffic. */
static const char *policy_gate(void *ctx)
{
	const struct relay *x = ctx;

	return x->polapi != NULL && !polapi_has_policy(x->polapi)
		       ? "policy: waiting for the first one from zgate-api (denying everything until then)"
		       : NULL;
}

static void api_ready_note(void *ctx, char *buf, size_t len)
{
	struct relay *r = ctx;
	enum apic_state st;

	if (r->api == NULL)
		return;
	st = apic_state(r->api);
	if (st == APIC_DOWN)
		(void)snprintf(buf, len, "ipam_api: down for %llu s: %s",
			       (unsigned long long)(apic_state_age_ms(r->api) / 1000),
			       apic_last_error(r->api));
	else
		(void)snprintf(buf, len, "ipam_api: %s", st == APIC_UP ? "up" : "not asked yet");
}

/* issue 22: connector sessions and the forwarding between tunnels */

static int h_connector_known(void *ctx, const char *id)
{
	struct relay *r = ctx;

	return policy_has_connector(r->policy, id);
}

static void pool_route(const struct config_prefix *p, struct cip_route *rt)
{
	size_t n = p->version == 4 ? 4 : 16, bits = p->len;

	memset(rt, 0, sizeof(*rt));
	rt->version = p->version;
	rt->proto = 17; /* a connector sends agents inner QUIC, nothing else */
	for (size_t i = 0; i < n; i++) {
		uint8_t mask = (uint8_t)(bits >= 8 ? 0xffu : bits ? 0xffu << (8 - bits)
								  : 0u);

		rt->start[i] = p->addr[i] & mask;
		rt->end[i] = (uint8_t)(p->addr[i] | ~mask);
		bits = bits >= 8 ? bits - 8 : 0;
	}
}

/* A connector reaches the agents: the address pool, UDP. */
static int h_connector_routes(void *ctx, const struct session *s, struct cip_route *out,
			      size_t cap, size_t *pn)
{
	struct relay *r = ctx;
	size_t n = 0;

	(void)s;
	if (cap < 2)
		return ZG_ERR_TOO_LARGE;
	pool_route(&r->cfg.pool4, &out[n++]);
	if (r->cfg.pool6.version == 6)
		pool_route(&r->cfg.pool6, &out[n++]);
	*pn = n;
	return 0;
}

static int h_has_connectors(void *ctx, const char *id)
{
	struct relay *r = ctx;
	size_t n = 0;
	int rv = policy_client_connectors(r->policy, id, r->conn_ids, ZGCONN_MAX, &n);

	return rv == ZG_ERR_TOO_LARGE || (rv == 0 && n > 0);
}

static int cl_send(void *ctx, void *sess, const uint8_t *pkt, size_t len)
{
	struct relay *r = ctx;
	struct session *s = sess;
	int rv;

	if (s->state != SESSION_OPEN)
		return ZG_ERR_STATE;
	rv = relay_send(r, s->c, pkt, len);
	if (rv == 0)
		s->bytes_down += len;
	return rv;
}

/* A packet up to a connector on another worker: to that worker, which
 * puts it into the connector's tunnel (xfer_cb). */
static int cl_send_remote(void *ctx, const struct connlink_connector *c, const uint8_t *pkt,
			  size_t len)
{
	struct relay *r = ctx;

	if (r->nworkers < 2 || c->remote == 0)
		return ZG_ERR_STATE;
	return master_xfer_send(r->wenv, r->worker, c->remote - 1, MASTER_XFER_TO_CONNECTOR, c->sid,
				pkt, len);
}

/* A packet from connector session s to an agent address another worker's
 * tunnel holds: handed to that worker, whose connlink has the link (1);
 * else 0, for the connlink here. */
static int conn_handoff(struct relay *r, struct session *s, const uint8_t *pkt, size_t len)
{
	struct stack_addr dst;
	int h;

	if (r->nworkers < 2 || connlink_packet_dst(pkt, len, &dst) != 0)
		return 0;
	h = ipam_addr_holder(r->ipam, dst.version, dst.a);
	if (h < 0 || (unsigned)h == r->worker || (unsigned)h >= r->nworkers)
		return 0;
	if (master_xfer_send(r->wenv, r->worker, (unsigned)h, MASTER_XFER_FROM_CONNECTOR, s->sid,
			     pkt, len) != 0)
		r->xfer_drops++;
	return 1;
}

static enum policy_action cl_may_reach(void *ctx, const char *client, const char *connector,
				       const char **prule)
{
	struct relay *r = ctx;

	return policy_client_may_reach_connector(r->policy, client, connector, prule);
}

static int cl_bound(void *ctx, const char *connector, struct cip_route *out, size_t max,
		    size_t *pn)
{
	struct relay *r = ctx;

	return policy_connector_prefixes(r->policy, connector, out, max, pn);
}

static void cl_rejected(void *ctx, const char *connector, const struct cip_route *rt,
			const char *why)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	int af = rt->version == 4 ? AF_INET : AF_INET6;

	(void)ctx;
	(void)inet_ntop(af, rt->start, a, sizeof(a));
	(void)inet_ntop(af, rt->end, b, sizeof(b));
	log_warnx("connector %s: announced range %s-%s ignored: %s", connector, a, b, why);
}

static void cl_fill(struct audit_connector *ac, const struct connlink_info *li)
{
	memset(ac, 0, sizeof(*ac));
	ac->session_id = li->client_sid;
	ac->connector_session_id = li->connector_sid;
	ac->client = li->client;
	ac->connector = li->connector;
	ac->rule = li->rule;
	ac->bytes_up = li->bytes_up;
	ac->bytes_down = li->bytes_down;
	ac->duration_ms = li->duration_ms;
}

static void cl_audit_open(void *ctx, const struct connlink_info *li)
{
	struct relay *r = ctx;
	struct audit_connector ac;

	cl_fill(&ac, li);
	audit_connector_open(r->audit, &ac);
}

static void cl_audit_close(void *ctx, const struct connlink_info *li, const char *reason)
{
	struct relay *r = ctx;
	struct audit_connector ac;

	cl_fill(&ac, li);
	ac.reason = reason;
	audit_connector_close(r->audit, &ac);
}

static uint64_t cl_now(void *ctx)
{
	(void)ctx;
	return mono_ms();
}

/* A connector's packet to an agent port that did not ask for it, or a
 * flow a full link forgot (connlink rate-limits these per connector). */
static void cl_flow_note(void *ctx, const struct connlink_flow *f, int evicted, uint64_t n)
{
	char a[INET6_ADDRSTRLEN], c[INET6_ADDRSTRLEN];

	(void)ctx;
	(void)inet_ntop(f->agent.version == 4 ? AF_INET : AF_INET6, f->agent.a, a, sizeof(a));
	(void)inet_ntop(f->conn.version == 4 ? AF_INET : AF_INET6, f->conn.a, c, sizeof(c));
	if (evicted)
		log_warnx("connector %s: client %s has more than %d flows to it: the one from "
			  "port %u, used least recently, is forgotten (%llu since the last report)",
			  f->connector, f->client, CONNLINK_FLOWS_PER_LINK, f->agent_port,
			  (unsigned long long)n);
	else
		log_warnx("connector %s: packet from %s:%u to client %s at %s:%u dropped: that "
			  "port did not send to the connector (%llu since the last report)",
			  f->connector, c, f->conn_port, f->client, a, f->agent_port,
			  (unsigned long long)n);
}

static void connlink_tick(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	(void)fd;
	(void)what;
	(void)connlink_expire(r->cl);
}

/* A ROUTE_ADVERTISEMENT from a connector: the prefixes it serves (an
 * agent's is ignored: the relay decides what agents reach). */
static void on_routes(struct masque_conn *c, const struct cip_route *rt, size_t n, void *ctx)
{
	struct relay *r = ctx;
	struct session *s = masque_conn_data(c);
	const struct connlink_connector *cc;
	int rv;

	if (s == NULL || !s->connector || s->state != SESSION_OPEN || r->cl == NULL)
		return;
	rv = connlink_announce(r->cl, s, rt, n);
	if (rv < 0)
		return;
	cc = connlink_find(r->cl, s->conn_id);
	if (rv == 0) { /* the same prefixes: nobody needs telling */
		log_debug("connector %s announced %zu ranges: unchanged", s->conn_id, n);
		return;
	}
	/* a connector announcing in a loop gets a line a second */
	if (rl_bucket_take(&r->announce_log, mono_ms())) {
		if (r->announce_unlogged > 0)
			log_info("connector %s announced %zu ranges: serves %zu prefixes (%llu "
				 "earlier changes of connectors not logged)",
				 s->conn_id, n, cc != NULL ? cc->nprefixes : 0,
				 (unsigned long long)r->announce_unlogged);
		else
			log_info("connector %s announced %zu ranges: serves %zu prefixes",
				 s->conn_id, n, cc != NULL ? cc->nprefixes : 0);
		r->announce_unlogged = 0;
	} else {
		r->announce_unlogged++;
	}
	conn_note(r, s, MASTER_NOTE_CONN_UP, MASTER_NOTE_ALL);
	zgconn_notify_all(r);
}

static int connlink_start(struct relay *r)
{
	const struct connlink_hooks h = { r, cl_send, cl_may_reach,
					  cl_bound, cl_rejected, cl_audit_open,
					  cl_audit_close, cl_now, cl_send_remote,
					  cl_flow_note };
	const struct timeval tick = { 5, 0 };
	int rv;

	if ((rv = connlink_new(&h, 0, &r->cl)) != 0)
		return rv;
	r->ev_connlink = event_new(r->base, -1, EV_PERSIST, connlink_tick, r);
	if (r->ev_connlink == NULL || event_add(r->ev_connlink, &tick) != 0)
		return ZG_ERR_NOMEM;
	r->ev_zgconn = evtimer_new(r->base, zgconn_cb, r);
	if (r->ev_zgconn == NULL)
		return ZG_ERR_NOMEM;
	rl_bucket_init(&r->announce_log, 1, 10, mono_ms());
	if (pdump_open(&r->dump, r->cfg.payload_dump) != 0) {
		log_warn("debug.payload_dump %s", r->cfg.payload_dump);
		return ZG_ERR_IO;
	}
	if (pdump_on(&r->dump))
		log_warnx("debug.payload_dump is on: every tunnel packet is appended to %s "
			  "(for tests only, never in production)",
			  r->cfg.payload_dump);
	return 0;
}

/* The session table, its hooks and a random key for session ids. */
static void sessions_init(struct relay *r)
{
	const struct session_hooks h = {
		.ctx = r,
		.policy_routes = h_policy_routes,
		.ipam_alloc = h_ipam_alloc,
		.ipam_release = h_ipam_release,
		.ipam_changed = h_ipam_changed,
		.peer_cert = h_peer_cert,
		.set_data = h_set_data,
		.conn_is_open = h_conn_is_open,
		.close_conn = h_close_conn,
		.answer = h_answer,
		.send_routes = h_send_routes,
		.close_flows = h_close_flows,
		.defer = h_defer,
		.cancel_resolve = h_cancel_resolve,
		.audit_limit = h_audit_limit,
		.audit_open = h_audit_open,
		.audit_close = h_audit_close,
		.now_ms = h_now_ms,
		.extra_routes = h_extra_routes,
		.accept_extra = h_accept_extra,
		.connector_known = h_connector_known,
		.connector_routes = h_connector_routes,
		.has_connectors = h_has_connectors,
	};
	uint64_t key;

	if (getrandom(&key, sizeof(key), 0) != (ssize_t)sizeof(key))
		key = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	struct session_hooks hh = h;

	if (strcmp(r->cfg.ipam_backend, "api") == 0) {
		hh.ipam_alloc_async = h_ipam_alloc_async;
		hh.ipam_cancel = h_ipam_cancel;
		hh.ipam_assign = h_ipam_assign;
	}
	/* workers: each holds its share of the relay's tunnels */
	session_table_init(&r->st, &hh,
			   r->nworkers > 1 ? (r->cfg.max_sessions + r->nworkers - 1) / r->nworkers
					   : r->cfg.max_sessions,
			   r->cfg.pool6.version == 6, key);
	r->st.dnsgate = r->dnsgate;
	r->st.dns_per_min = r->cfg.dns_per_min;
}

/* ------------------------------------------------------------------ */
/* masque callbacks                                                   */

static int on_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	struct relay *r = ctx;

	return session_request(&r->st, c, rq, r->routes, acc);
}

static int on_address_request(struct masque_conn *c, const struct cip_addr *req, size_t n,
			      struct cip_addr *out, size_t *nout, void *ctx)
{
	(void)ctx;
	return session_address_request(masque_conn_data(c), req, n, out, nout);
}

static void on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct relay *r = ctx;
	struct session *s = masque_conn_data(c);

	pdump_packet(&r->dump, pkt, len); /* decrypted from the tunnel */
	if (s == NULL || s->state != SESSION_OPEN)
		return;
	s->bytes_up += len;
	if (r->cl != NULL && s->connector) {
		/* never to the stack: only to agents with an open link, which
		 * lives where the agent's tunnel is */
		if (conn_handoff(r, s, pkt, len))
			return;
		(void)connlink_from_connector(r->cl, s, pkt, len);
		return;
	}
	if (r->cl != NULL) {
		struct connlink_end e = { s, s->id, s->sid, s->vip4, s->vip6, 0 };

		if (connlink_from_agent(r->cl, &e, pkt, len) != CONNLINK_PASS)
			return;
	}
	(void)stack_input(r->stack, s, &s->client, pkt, len);
}

static void maybe_stop(struct relay *r);

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct relay *r = ctx;
	struct session *s = masque_conn_data(c);

	if (s != NULL && r->cl != NULL && connlink_session_closed(r->cl, s)) {
		log_info("connector %s down", s->conn_id);
		conn_note(r, s, MASTER_NOTE_CONN_DOWN, MASTER_NOTE_ALL);
		session_conn_closed(&r->st, s, ci);
		zgconn_notify_all(r);
	} else {
		session_conn_closed(&r->st, s, ci);
	}
	maybe_stop(r);
}

/* Says once, plainly, that an expired CRL refuses every client. */
static void crl_expired_warn(struct relay *r)
{
	int64_t next = tls_server_crl_next_update(r->tls);
	time_t t = (time_t)next;
	char when[32] = "?";
	struct tm tm;

	if (r->crl_expired_said || next == 0 || next > (int64_t)time(NULL))
		return;
	r->crl_expired_said = 1;
	if (gmtime_r(&t, &tm) != NULL)
		(void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_warnx("CRL %s expired (nextUpdate %s): every client certificate is refused "
		  "(crl_expired) until a current CRL is installed (the relay reloads it)",
		  r->cfg.tls_crl, when);
}

static void on_reject(const struct sockaddr *peer, socklen_t len, enum tls_reject why, void *ctx)
{
	struct relay *r = ctx;
	char p[INET6_ADDRSTRLEN + 8];

	(void)len;
	if (why == TLS_REJECT_CRL_EXPIRED)
		crl_expired_warn(r);
	hostport_format(peer, p, sizeof(p));
	log_warnx("client certificate from %s refused: %s", p, tls_reject_name(why));
	audit_cert_rejected(r->audit, tls_reject_name(why), p);
}

static void on_handshake_failed(const struct sockaddr *peer, socklen_t len,
				enum masque_hs_fail why, const char *detail, void *ctx)
{
	struct relay *r = ctx;
	char p[INET6_ADDRSTRLEN + 8];

	(void)len;
	hostport_format(peer, p, sizeof(p));
	log_warnx("TLS handshake with %s failed (%s): %s", p, masque_hs_fail_name(why), detail);
	audit_handshake_failed(r->audit, masque_hs_fail_name(why), p);
}

/* ------------------------------------------------------------------ */
/* stack callbacks                                                    */

static void st_output(void *ctx, const struct stack_addr *dst, const uint8_t *pkt, size_t len)
{
	struct relay *r = ctx;
	struct session *s = session_by_vip(&r->st, dst);
	int rv;

	if (s == NULL) {
		r->out_no_session++;
		return;
	}
	rv = relay_send(r, s->c, pkt, len);
	if (rv == 0)
		s->bytes_down += len;
	else if (rv == ZG_ERR_TOO_LARGE)
		r->out_too_big++;
	else
		r->out_congested++;
}

/* The decision for a flow of f's client: scope (C19), then policy.
 * *pscoped is set when the tunnel's scope refused it. */
static enum stack_verdict decide(const struct relay *r, const struct stack_flow_info *f,
				 const char **prule, int *pscoped)
{
	const struct session *s = f->session;
	struct policy_flow pf;
	struct policy_verdict v;

	if (s != NULL && !session_in_scope(s, f)) {
		/* C19: outside what the tunnel asked for. */
		*prule = "scope";
		*pscoped = 1;
		return STACK_DENY;
	}
	*pscoped = 0;
	memset(&pf, 0, sizeof(pf));
	pf.version = f->dst.version;
	memcpy(pf.src, f->src.a, 16);
	memcpy(pf.dst, f->dst.a, 16);
	pf.proto = f->proto;
	pf.sport = f->sport;
	pf.dport = f->dport;
	/* issue 19: a destination learned from an allowed answer */
	const struct names_binding *b = dnssvc_binding(r->dnssvc, f->client_id, &f->dst);
	policy_eval_bound(r->policy, f->client_id, &pf, b ? b->rule : NULL, &v);
	*prule = v.rule_id;
	return v.action == POLICY_ALLOW ? STACK_ALLOW : STACK_DENY;
}

/* A new flow: decided and counted. */
static enum stack_verdict st_policy(void *ctx, const struct stack_flow_info *f,
				    const char **prule)
{
	struct relay *r = ctx;
	int scoped;
	enum stack_verdict v = decide(r, f, prule, &scoped);

	if (v == STACK_ALLOW) {
		r->decisions_allow++;
		return v;
	}
	if (scoped)
		r->scope_denied++;
	r->decisions_deny++;
	return v;
}

static void st_audit(void *ctx, const struct stack_event *ev)
{
	struct relay *r = ctx;
	struct audit_flow af;
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];

	memset(&af, 0, sizeof(af));
	/* the session is alive while its flows are (decide() relies on it too) */
	if (ev->flow.session != NULL)
		af.session_id = ((const struct session *)ev->flow.session)->sid;
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
	if (af.rule != NULL) {
		const struct names_binding *b = dnssvc_binding(r->dnssvc, af.client, &ev->flow.dst);
		if (b != NULL && strcmp(b->rule, af.rule) == 0)
			af.name = b->name;
	}
	af.bytes_up = ev->bytes_up;
	af.bytes_down = ev->bytes_down;
	af.duration_ms = ev->duration_ms;
	switch (ev->type) {
	case STACK_EV_ALLOW:
		audit_flow_allow(r->audit, &af);
		break;
	case STACK_EV_DENY:
		audit_flow_deny(r->audit, &af);
		break;
	case STACK_EV_CLOSE:
		audit_flow_close(r->audit, &af);
		break;
	case STACK_EV_LIMIT:
		audit_limit_hit(r->audit, af.reason ? af.reason : "flows", af.client, af.session_id);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* metrics                                                            */

static void metrics_cb(void *ctx, struct evbuffer *b)
{
	struct relay *r = ctx;
	struct metrics_values v;
	uint64_t nl = 0, rt = 0;

	memset(&v, 0, sizeof(v));
	v.version = ZG_VERSION;
	v.commit = ZG_COMMIT;
	metrics_process_fds("/proc/self/fd", &v.open_fds, &v.max_fds);
	stack_get_counters(r->stack, &v.stack);
	masque_server_stats(r->srv, &v.quic);
	v.quic_initials_dropped = r->udp ? masque_udp_initials_dropped(r->udp) : 0;
	v.sessions = r->st.n;
	if (r->cl != NULL) {
		struct connlink_counters cc;

		_Static_assert(CONNLINK_NDROP == 10, "one metrics label per connlink drop reason");
		connlink_get_counters(r->cl, &cc);
		v.connectors_up = connlink_connectors_up(r->cl);
		v.connector_links = connlink_links(r->cl);
		v.connector_packets_up = cc.packets[CONNLINK_UP];
		v.connector_packets_down = cc.packets[CONNLINK_DOWN];
		v.connector_bytes_up = cc.bytes[CONNLINK_UP];
		v.connector_bytes_down = cc.bytes[CONNLINK_DOWN];
		memcpy(v.connector_drops, cc.drops, sizeof(v.connector_drops));
		v.connector_drops[CONNLINK_DROP_SEND] += r->xfer_drops;
		v.connector_flows_evicted = cc.flows_evicted;
	}
	v.quic_connections = masque_server_conns(r->srv);
	v.sessions_opened = r->st.cnt.opened;
	v.sessions_replaced = r->st.cnt.replaced + r->replaced_elsewhere;
	/* 400, 500 and the 503s after GOAWAY are answered by src/masque
	 * before the relay sees the request */
	v.refused_400 = v.quic.refused_bad_request;
	v.refused_403 = r->st.cnt.refused_403;
	v.refused_429 = r->st.cnt.refused_429;
	v.refused_500 = v.quic.refused_internal;
	v.refused_502 = r->st.cnt.refused_502;
	v.refused_503 = r->st.cnt.refused_503 + v.quic.refused_goaway;
	if (r->dnsgate != NULL)
		dnsgate_counts(r->dnsgate, &nl, &rt);
	v.dns_queries = r->st.cnt.dns_queries;
	v.dns_refused_policy = r->st.cnt.dns_refused_policy;
	v.dns_refused_not_listed = nl;
	v.dns_refused_rate = rt;
	v.out_no_session = r->out_no_session;
	v.out_too_big = r->out_too_big;
	v.out_congested = r->out_congested;
	v.decisions_allow = r->decisions_allow;
	v.decisions_deny = r->decisions_deny;
	v.cert_not_after = (long long)tls_server_cert_not_after(r->tls);
	v.has_crl = r->cfg.tls_crl[0] != '\0';
	if (v.has_crl)
		v.crl_next_update = (long long)tls_server_crl_next_update(r->tls);
	v.state_save_errors = r->savelog.errors;
	v.pool4_size = ipam_size(r->ipam, 4);
	v.pool4_used = ipam_used(r->ipam, 4);
	v.has_pool6 = r->cfg.pool6.version == 6;
	if (v.has_pool6) {
		v.pool6_size = ipam_size(r->ipam, 6);
		v.pool6_used = ipam_used(r->ipam, 6);
	}
	v.policy_reload_ok = r->reload_ok;
	v.policy_reload_error = r->reload_fail;
	v.policy_last_reload_s = r->last_reload_ok_s;
	if (r->cfg.policy_api_url[0] != '\0') {
		v.has_policy_api = 1;
		v.policy_api_version = r->policy_version;
		polapi_counts(r->polapi, v.policy_api_fetches); /* workers: zeros, the master's add up */
	}
	v.tls_reload_ok = r->tls_reload_ok;
	v.tls_reload_error = r->tls_reload_fail;
	v.closed_revoked = r->closed_revoked;
	v.closed_policy = r->st.cnt.closed_policy;
	v.flows_closed_policy = r->flows_closed_policy;
	v.audit_lines = audit_lines(r->audit);
	v.audit_suppressed = audit_suppressed(r->audit);
	v.audit_dropped = audit_dropped(r->audit);
	if (r->dnssvc != NULL) {
		v.has_dnssvc = 1;
		dnssvc_get_counts(r->dnssvc, &v.dnssvc);
	}
	if (r->api != NULL) {
		struct apic_counters ac;

		apic_counters(r->api, &ac);
		v.has_ipam_api = 1;
		v.ipam_api_up = apic_state(r->api) == APIC_UP;
		v.ipam_api_adm_api = r->api_adm_api;
		v.ipam_api_adm_cached = r->api_adm_cached;
		v.ipam_api_adm_refused = r->api_adm_refused;
		v.ipam_api_requests = ac.requests;
		v.ipam_api_failures = ac.failures;
		v.ipam_api_retries = ac.retries;
		v.ipam_api_connects = ac.connects;
		v.ipam_api_refreshes = ac.refreshes;
		v.ipam_api_pending = apic_pending(r->api);
		v.ipam_api_realloc_kept = r->api_realloc_kept;
		v.ipam_api_realloc_closed = r->api_realloc_closed;
		v.ipam_api_realloc_unreachable = r->api_realloc_unreachable;
	}
	(void)metrics_write(b, &v);
	if (r->admin_ops != NULL)
		ops_admin_metrics(r->admin_ops, b);
}

/* ------------------------------------------------------------------ */
/* admin endpoint (ops.h): the session table seen from outside        */

static void admin_list(void *ctx, ops_session_emit_fn emit, void *ectx)
{
	struct relay *r = ctx;
	uint64_t now = mono_ms();
	int64_t wall = (int64_t)time(NULL);
	char v6[INET6_ADDRSTRLEN];

	for (const struct session *s = r->st.head; s != NULL; s = s->next) {
		struct ops_session os;

		if (s->state == SESSION_REPLACED)
			continue;
		stack_addr_str(&s->vip6, v6, sizeof(v6));
		memset(&os, 0, sizeof(os));
		os.client = s->id;
		os.addr4 = s->vip_s;
		os.addr6 = s->vip6.version ? v6 : NULL;
		os.peer = s->peer;
		os.since = wall - (int64_t)((now - s->opened_ms) / 1000);
		os.bytes_up = s->bytes_up;
		os.bytes_down = s->bytes_down;
		os.cert_serial = masque_conn_cert_serial(s->c);
		emit(ectx, &os);
	}
}

static int admin_kick(void *ctx, const char *client)
{
	struct relay *r = ctx;
	struct session *s = session_by_id(&r->st, client);

	if (s == NULL || s->state != SESSION_OPEN)
		return ZG_ERR_NOTFOUND;
	session_revoke(&r->st, s, "admin", "closed by an administrator");
	return 0;
}

static void admin_audit(void *ctx, const char *action, const char *client, const char *caller,
			int status)
{
	struct relay *r = ctx;

	audit_admin(r->audit, action, client, caller, status);
}

/* ------------------------------------------------------------------ */
/* signals                                                            */

/* Flows decided again after a policy reload: the same decision as for a
 * new flow (scope, then policy), without counting it as one. */
static enum stack_verdict reeval_policy(void *ctx, const struct stack_flow_info *f,
					const char **prule)
{
	int scoped;

	return decide(ctx, f, prule, &scoped);
}

/* The zgate-api version the policy file holds (policy_api: its first
 * line, polapi.h), 0 when none. */
static uint64_t file_version(const struct relay *r)
{
	uint64_t v = 0;
	char etag[APIC_ETAG_MAX];

	if (r->cfg.policy_api_url[0] == '\0' ||
	    polapi_cache_meta(r->cfg.policy_file, &v, etag, sizeof(etag)) != 0)
		return 0;
	return v;
}

static void reload_policy(struct relay *r, const char *trigger)
{
	struct policy *np = NULL;
	const char *source = r->cfg.policy_api_url[0] ? "api" : "file";
	char err[512];
	uint64_t v;
	size_t n;

	if (policy_load_file(r->cfg.policy_file, &np, err, sizeof(err)) != 0) {
		/* Keep the policy in force and say exactly why. */
		r->reload_fail++;
		log_warnx("policy reload failed (%s), keeping the current policy: %s", trigger, err);
		if (r->worker == 0) /* workers: one line per relay */
			audit_policy_reload_src(r->audit, 0, r->cfg.policy_file, err, source,
						file_version(r));
		return;
	}
	v = file_version(r);
	policy_free(r->policy);
	r->policy = np;
	r->policy_version = v;
	r->reload_ok++;
	r->last_reload_ok_s = (uint64_t)time(NULL);
	if (v != 0)
		log_info("policy reloaded from %s (%s): zgate-api policy %llu, %zu clients, %zu rules",
			 r->cfg.policy_file, trigger, (unsigned long long)v, policy_client_count(np),
			 policy_rule_count(np));
	else
		log_info("policy reloaded from %s (%s): %zu clients, %zu rules", r->cfg.policy_file,
			 trigger, policy_client_count(np), policy_rule_count(np));
	if (r->worker == 0)
		audit_policy_reload_src(r->audit, 1, r->cfg.policy_file, NULL, source, v);
	/* issue 18.2: open flows the new policy denies end now (first, so
	 * each is audited with reason policy) */
	n = stack_reevaluate(r->stack, reeval_policy, r, "policy");
	r->flows_closed_policy += n;
	if (n > 0)
		log_info("policy reload: %zu open flows no longer allowed were closed", n);
	/* C07: the new routes to every tunnel; those allowed nothing closed */
	(void)session_policy_changed(&r->st, r->routes);
	dns_assign_policy_changed(r); /* 19.5: names from the policy */
	/* issue 22: links the policy no longer allows end; agents learn
	 * their new list of connectors */
	n = connlink_policy_changed(r->cl);
	if (n > 0)
		log_info("policy reload: %zu connector links no longer allowed were closed", n);
	zgconn_notify_all(r);
}

/* Rebuilds the TLS context from tls.cert, tls.key, tls.client_ca and
 * tls.crl (issue 18.1). New handshakes use the new one; open connections
 * keep theirs. A file that does not load keeps the context in force. Then
 * every open session whose certificate the new context refuses (revoked,
 * no longer chains) is closed (18.2). */
/* r->tls made again from the TLS files as they are now; kept on error. */
static int tls_rebuild(struct relay *r, char *err, size_t errlen)
{
	struct tls_server_files files = { r->cfg.tls_cert, r->cfg.tls_key, r->cfg.tls_client_ca,
					  r->cfg.tls_crl };
	enum tls_identity idm = TLS_IDENTITY_CN;

	(void)tls_identity_parse(r->cfg.tls_identity, &idm); /* checked at start */
	return tls_server_ctx_rebuild(&r->tls, &files, idm, err, errlen);
}

static void reload_tls(struct relay *r, const char *trigger)
{
	struct session *s;
	char err[512];
	size_t closed = 0;

	if (tls_rebuild(r, err, sizeof(err)) != 0) {
		r->tls_reload_fail++;
		log_warnx("TLS reload failed (%s), keeping the current certificates: %s", trigger,
			  err);
		if (r->worker == 0)
			audit_tls_reload(r->audit, 0, trigger, err);
		return;
	}
	masque_server_set_tls(r->srv, r->tls);
	r->tls_reload_ok++;
	r->crl_expired_said = 0;
	crl_expired_warn(r);
	log_info("TLS reloaded (%s): certificate %s, client CA %s%s%s", trigger, r->cfg.tls_cert,
		 r->cfg.tls_client_ca, r->cfg.tls_crl[0] ? ", CRL " : "", r->cfg.tls_crl);
	if (r->worker == 0)
		audit_tls_reload(r->audit, 1, trigger, NULL);
	for (s = r->st.head; s != NULL; s = s->next) {
		const uint8_t *der;
		enum tls_reject why;
		char msg[96];
		size_t len = 0;

		if (s->state != SESSION_OPEN || (der = masque_conn_peer_cert(s->c, &len)) == NULL)
			continue;
		why = tls_server_check_cert(r->tls, der, len);
		/* an expired CRL says nothing new of this certificate: new
		 * clients are refused (fail closed), open tunnels stay */
		if (why == TLS_ACCEPTED || why == TLS_REJECT_CRL_EXPIRED)
			continue;
		(void)snprintf(msg, sizeof(msg), "client certificate no longer valid: %s",
			       tls_reject_name(why));
		r->closed_revoked++;
		session_revoke(&r->st, s, "revoked", msg);
		closed++;
	}
	if (closed > 0)
		log_info("TLS reload: %zu tunnels closed (certificate revoked or no longer trusted)",
			 closed);
}

static void on_tls_files(void *arg)
{
	reload_tls(arg, "file");
}

static void on_policy_file(void *arg)
{
	reload_policy(arg, "file");
}

/* policy_api wrote a new version over the policy file: the single
 * process reloads it at once (the watch then sees nothing new). */
static void on_policy_fetched(void *arg, uint64_t version)
{
	struct relay *r = arg;

	(void)version;
	reload_policy(r, "zgate-api");
	(void)watch_seen(r->watch, r->cfg.policy_file); /* only this file: a TLS change still fires */
}

/* Watches the TLS files and the policy (issue 18.1, 18.4). Without
 * inotify the relay still reloads on SIGHUP. */
static void watch_start(struct relay *r)
{
	const char *tls_files[] = { r->cfg.tls_cert, r->cfg.tls_key, r->cfg.tls_client_ca,
				    r->cfg.tls_crl };
	int rv;

	if (watch_new(r->base, WATCH_DEBOUNCE_MS, &r->watch) != 0) {
		log_warn("cannot watch files (inotify): reload with SIGHUP");
		return;
	}
	for (size_t i = 0; i < sizeof(tls_files) / sizeof(tls_files[0]); i++)
		if ((rv = watch_add(r->watch, tls_files[i], on_tls_files, r)) != 0)
			log_warnx("cannot watch %s (%s): reload it with SIGHUP", tls_files[i],
				  zg_strerror(rv));
	if ((rv = watch_add(r->watch, r->cfg.policy_file, on_policy_file, r)) != 0)
		log_warnx("cannot watch %s (%s): reload it with SIGHUP", r->cfg.policy_file,
			  zg_strerror(rv));
}

static void stop_now(struct relay *r)
{
	r->stopping = 1;
	r->st.shutting_down = 1;
	event_base_loopbreak(r->base);
}

static void maybe_stop(struct relay *r)
{
	if (r->draining && r->st.n == 0 && !r->stopping) {
		log_info("every tunnel has ended");
		stop_now(r);
	}
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	(void)fd;
	(void)what;
	log_info("drain grace period over: closing %zu tunnels", r->st.n);
	stop_now(r);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct relay *r = arg;
	struct timeval tv;

	(void)what;
	if (sig == SIGHUP) {
		reload_policy(r, "sighup");
		reload_tls(r, "sighup");
		watch_rebase(r->watch); /* what the files hold now is loaded */
		{
			struct ops *ao = r->admin_ops != NULL ? r->admin_ops : r->ops;
			char aerr[512];

			if (ao != NULL && r->cfg.admin_token_file[0] != '\0' &&
			    ops_admin_reload(ao, aerr, sizeof(aerr)) != 0)
				log_warnx("%s: keeping the admin token in force", aerr);
		}
		return;
	}
	if (r->draining) {
		log_info("second signal: stopping now");
		stop_now(r);
		return;
	}
	r->draining = 1;
	r->st.shutting_down = 1; /* new tunnels get 503 */
	r->stop_reason = sig == SIGTERM ? "sigterm" : "sigint";
	ops_set_state(r->ops, OPS_DRAINING);
	(void)sdnotify_send("STOPPING=1\nSTATUS=draining");
	log_info("%s: draining %zu tunnels (up to %u ms); a second signal stops at once",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT", r->st.n, r->cfg.drain_grace_ms);
	masque_server_goaway(r->srv);
	tv.tv_sec = r->cfg.drain_grace_ms / 1000;
	tv.tv_usec = (suseconds_t)(r->cfg.drain_grace_ms % 1000) * 1000;
	r->ev_drain = evtimer_new(r->base, drain_cb, r);
	if (r->ev_drain != NULL)
		evtimer_add(r->ev_drain, &tv);
	maybe_stop(r);
}

/* ------------------------------------------------------------------ */
/* start-up                                                           */

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	(void)sdnotify_send("WATCHDOG=1");
}

/* Under systemd (Type=notify): READY=1 once the sockets listen, and
 * WATCHDOG=1 at half the interval WatchdogSec= asks for, from the event
 * loop, so a loop that stops turning gets the relay restarted. */
static int notify_ready(struct relay *r)
{
	char st[256];
	uint64_t us;
	int rv;

	rv = sdnotify_watchdog_usec(&us);
	if (rv < 0)
		log_warnx("WATCHDOG_USEC/WATCHDOG_PID are malformed: no watchdog pings");
	if (rv == 1) {
		struct timeval tv = { (time_t)(us / 2 / 1000000), (suseconds_t)(us / 2 % 1000000) };

		r->ev_watchdog = event_new(r->base, -1, EV_PERSIST, watchdog_cb, r);
		if (r->ev_watchdog == NULL || event_add(r->ev_watchdog, &tv) != 0)
			return ZG_ERR_NOMEM;
	}
	(void)snprintf(st, sizeof(st), "READY=1\nSTATUS=ready: QUIC on UDP port %d, ops on port %u",
		       masque_udp_port(r->udp), ops_port(r->ops));
	if (sdnotify_send(st) < 0)
		log_warn("cannot notify the service manager at $NOTIFY_SOCKET");
	return 0;
}

static void usage(FILE *f)
{
	static char opts[16384];

	(void)config_usage(opts, sizeof(opts));
	fprintf(f,
		"usage: zgate-relay [--config FILE] [--check-config] [--OPTION VALUE ...]\n"
		"\n"
		"The zgate relay: CONNECT-IP (RFC 9484) over HTTP/3 with mutual TLS; every\n"
		"flow is checked against the policy and leaves as an ordinary socket.\n"
		"Runs unprivileged; needs no TUN device.\n"
		"\n"
		"  --config FILE     YAML configuration (or ZGATE_CONFIG)\n"
		"  --check-config    validate configuration, policy and certificates, print a\n"
		"                    summary, exit 0 (valid) or 2\n"
		"  -h, --help        this text\n"
		"  --version         version, git commit and the linked libraries' versions\n"
		"\n"
		"A value follows its flag (--mtu 1350) or an equals sign (--mtu=1350).\n"
		"Durations take a unit: ms, s, m or h (500ms, 60s, 2h); 0 needs none.\n"
		"\n"
		"Every option below can be given as a flag, a ZGATE_* environment variable or\n"
		"in the file (flag > environment > file > default):\n\n%s"
		"\n"
		"Signals: SIGHUP reloads the policy, the TLS files (both are also reloaded\n"
		"when they change on disk) and admin.token_file; SIGTERM/SIGINT drain\n"
		"(GOAWAY, /ready 503, wait for tunnels up to timeouts.drain_grace) and exit 0;\n"
		"a second one exits at once. Audit events go to stdout as JSON lines, logs to\n"
		"stderr.\n"
		"\n" OPT_HELP_EXIT,
		opts);
}

/* Builds the configuration: defaults < file < environment < flags. */
static int load_config(struct relay *r, int argc, char **argv, enum config_action *pact,
		       char *err, size_t errlen)
{
	extern char **environ;

	return config_parse_args(&r->cfg, argc, argv, environ, pact, r->config_path,
				 sizeof(r->config_path), err, errlen);
}

/* Loads what --check-config checks and the daemon needs: TLS, policy,
 * pool, the state file (check: --check-config, which only reads it). */
static int load_state(struct relay *r, int check, char *err, size_t errlen)
{
	enum tls_identity idm;
	enum log_level lvl;
	enum log_format lfmt;
	int rv;

	if (log_level_parse(r->cfg.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (log_format_parse(r->cfg.log_format, &lfmt) == 0)
		log_set_format(lfmt);
	rv = tls_server_ctx_new(r->cfg.tls_cert, r->cfg.tls_key, r->cfg.tls_client_ca,
				r->cfg.tls_crl, &r->tls, err, errlen);
	if (rv != 0)
		return rv;
	if (tls_identity_parse(r->cfg.tls_identity, &idm) != 0 ||
	    tls_server_set_identity(r->tls, idm) != 0) {
		(void)snprintf(err, errlen, "tls.identity: cannot use \"%s\"", r->cfg.tls_identity);
		return ZG_ERR_CONFIG;
	}
	crl_expired_warn(r);
	if (r->cfg.admin_token_file[0] != '\0') { /* also for --check-config */
		char tok[OPS_TOKEN_MAX + 1];
		size_t n;

		rv = ops_token_load(r->cfg.admin_token_file, tok, sizeof(tok), &n, err, errlen);
		explicit_bzero(tok, sizeof(tok));
		if (rv != 0)
			return rv;
	}
	if (r->cfg.policy_api_url[0] != '\0') {
		/* the URL and the files (apic_new: read, no connection made),
		 * and where the fetched policy goes: writable */
		struct event_base *b = event_base_new();
		struct polapi *pa = NULL;
		char dir[CONFIG_PATH_MAX];

		if (b == NULL)
			return ZG_ERR_NOMEM;
		rv = polapi_from_config(&r->cfg, b, NULL, NULL, NULL, &pa, err, errlen);
		polapi_del(pa);
		event_base_free(b);
		if (rv != 0)
			return rv;
		(void)snprintf(dir, sizeof(dir), "%s", r->cfg.policy_file);
		if (access(dirname(dir), W_OK | X_OK) != 0) {
			zg_seterr(err, errlen,
				  "policy %s: its directory is not writable (%s): with policy_api the "
				  "relay keeps the fetched policy there",
				  r->cfg.policy_file, strerror(errno));
			return ZG_ERR_CONFIG;
		}
	}
	if (r->cfg.policy_api_url[0] != '\0' && access(r->cfg.policy_file, F_OK) != 0 &&
	    errno == ENOENT) {
		/* fail closed: nothing is allowed before the first fetch */
		rv = polapi_deny_all(&r->policy);
		if (rv != 0)
			return rv;
		log_warnx("policy %s: no policy fetched from zgate-api %s yet: denying everything "
			  "until the first one comes",
			  r->cfg.policy_file, r->cfg.policy_api_url);
	} else {
		rv = policy_load_file(r->cfg.policy_file, &r->policy, err, errlen);
		if (rv != 0 && rv != ZG_ERR_NOMEM && r->cfg.policy_api_url[0] != '\0') {
			/* The last fetched policy no longer loads (cut short on
			 * disk, or refused by a stricter relay after an upgrade).
			 * Refusing to start would wait for an operator; zgate-api
			 * has the policy: deny everything until it gives it (polapi
			 * then asks without If-None-Match, polapi_new()). */
			log_errx("policy %s does not load (%s): denying everything until zgate-api "
				 "%s gives a policy",
				 r->cfg.policy_file, err, r->cfg.policy_api_url);
			r->policy_cache_bad = 1;
			rv = polapi_deny_all(&r->policy);
		}
		if (rv != 0)
			return rv;
		r->policy_version = r->policy_cache_bad ? 0 : file_version(r);
	}
	r->last_reload_ok_s = (uint64_t)time(NULL);
	/* workers: one pool in memory the master shares with them */
	rv = (r->nworkers > 1 ? ipam_new_shared : ipam_new)(
		&r->cfg.pool4, r->cfg.pool6.version ? &r->cfg.pool6 : NULL, r->cfg.max_sessions,
		&r->ipam);
	if (rv != 0) {
		(void)snprintf(err, errlen, "pool: %s", zg_strerror(rv));
		return rv;
	}
	if (r->cfg.state_file[0] != '\0' && access(r->cfg.state_file, F_OK) == 0) {
		size_t skipped = 0;

		err[0] = '\0';
		rv = ipam_load(r->ipam, r->cfg.state_file, &skipped, err, errlen);
		if (rv == ZG_ERR_CONFIG || rv == ZG_ERR_IO) {
			/* A bad state file costs address stability, not service;
			 * it is kept (state_set_aside) once the relay serves. */
			(void)snprintf(r->state_bad, sizeof(r->state_bad), "%s", err);
			err[0] = '\0';
			if (check) /* a start would serve: a warning, not an error */
				log_warnx("state file %s cannot be used (%s): a start renames it "
					  "to %s.bad.<unix time> and starts with no remembered "
					  "addresses",
					  r->cfg.state_file, r->state_bad, r->cfg.state_file);
		} else if (rv != 0) {
			/* out of memory, the shared pool's lock: not the file's
			 * fault, and serving would save over a good one */
			if (err[0] == '\0')
				zg_seterr(err, errlen, "state file %s: %s", r->cfg.state_file,
					  zg_strerror(rv));
			return rv;
		} else if (skipped > 0) {
			log_warnx("state file %s: %zu entries outside the pool skipped",
				  r->cfg.state_file, skipped);
		}
	}
	return 0;
}

/* The state file did not load (load_state): before anything can save
 * the pool over it, move it aside, so the assignments it held and the
 * evidence of what went wrong survive. Called once the relay is about to
 * serve: --check-config and a start that fails leave it as it was. When
 * it cannot be moved (a read-only directory), the relay still serves but
 * never writes the state file this run: the addresses stay in memory. */
static void state_set_aside(struct relay *r)
{
	char dst[CONFIG_PATH_MAX + 64], err[CONFIG_PATH_MAX * 2 + 128];

	if (r->state_bad[0] == '\0')
		return;
	if (ipam_set_aside(r->cfg.state_file, (int64_t)time(NULL), dst, sizeof(dst), err,
			   sizeof(err)) == 0) {
		log_warnx("state file %s could not be used (%s): moved to %s; a new state file is "
			  "written from now on",
			  r->cfg.state_file, r->state_bad, dst);
		return;
	}
	log_errx("state file %s could not be used (%s) and cannot be moved aside (%s): left as "
		 "it is and not written while the relay runs (addresses are kept in memory only "
		 "until a restart)",
		 r->cfg.state_file, r->state_bad, err);
	r->cfg.state_file[0] = '\0';
}

/* The relay's own addresses changed (or were read at start): no tunnel
 * may reach them (its ops endpoint, its QUIC port). */
static void on_local_addrs(void *ctx, const struct stack_addr *a, size_t n, size_t skipped)
{
	struct relay *r = ctx;

	if (stack_set_local_addresses(r->stack, a, n) != 0 || skipped > 0)
		log_warnx("the relay has more than %d addresses: the rest are not forbidden "
			  "destinations",
			  STACK_MAX_LOCAL);
	log_info("%zu own addresses are forbidden destinations", n);
}

/* Writes what the audit buffer holds, after the packet callbacks of this
 * loop turn; what the output cannot take yet waits for POLLOUT (a pipe or
 * socket) or a short timer (anything else). */
static void audit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	struct timeval tv = { 0, 50000 };

	(void)fd;
	(void)what;
	if (audit_drain(r->audit) != 1)
		return;
	if (r->audit_out.can_wait && event_add(r->ev_audit_w, NULL) == 0)
		return;
	(void)evtimer_add(r->ev_audit, &tv);
}

static void audit_wake(void *ctx)
{
	struct relay *r = ctx;
	struct timeval tv = { 0, AUDIT_FLUSH_DELAY_MS * 1000 };

	(void)evtimer_add(r->ev_audit, &tv);
}

/* stdout as the audit output (audit_out_open() says how), the buffer and
 * its events. */
static int audit_start(struct relay *r, char *err, size_t errlen)
{
	struct audit_config ac;
	int rv;

	rv = audit_out_open(r->nworkers > 1 ? master_audit_wr(r->wenv, r->worker) : STDOUT_FILENO,
			    &r->audit_out);
	if (rv != 0) {
		(void)snprintf(err, errlen, "stdout (the audit trail): %s", strerror(errno));
		return rv;
	}
	r->ev_audit = evtimer_new(r->base, audit_cb, r);
	r->ev_audit_w = event_new(r->base, r->audit_out.fd, EV_WRITE, audit_cb, r);
	if (r->ev_audit == NULL || r->ev_audit_w == NULL)
		return ZG_ERR_NOMEM;
	memset(&ac, 0, sizeof(ac));
	ac.write = audit_out_write;
	ac.write_ctx = &r->audit_out;
	ac.wake = audit_wake;
	ac.wake_ctx = r;
	ac.deny_per_s = r->cfg.audit_deny_per_s;
	ac.buffer_bytes = (size_t)r->cfg.audit_buffer_kib * 1024u;
	rv = audit_new(&ac, &r->audit);
	if (rv != 0)
		return rv;
	if (r->nworkers < 2)
		log_info("audit trail on stdout (%s), buffer %u KiB", r->audit_out.mode,
			 r->cfg.audit_buffer_kib);
	return 0;
}

/* At exit: what the buffer holds gets up to 2 s to leave. */
static void audit_stop(struct relay *r)
{
	uint64_t end = mono_ms() + 2000, now;
	struct pollfd pfd;

	audit_flush(r->audit, 1);
	if (r->started_ms != 0)
		audit_relay_stop(r->audit, r->stop_reason != NULL ? r->stop_reason : "error",
				 mono_ms() - r->started_ms);
	while (audit_drain(r->audit) == 1) {
		now = mono_ms();
		if (now >= end) {
			log_warnx("audit output not read: %zu bytes of audit lines lost at exit",
				  audit_pending(r->audit));
			break;
		}
		pfd.fd = r->audit_out.fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		if (poll(&pfd, 1, (int)(end - now)) < 0 && errno != EINTR)
			break;
	}
	audit_free(r->audit);
	r->audit = NULL;
	audit_out_close(&r->audit_out);
	event_free(r->ev_audit);
	r->ev_audit = NULL;
	if (r->ev_audit_w != NULL)
		event_free(r->ev_audit_w);
	r->ev_audit_w = NULL;
}

/* ------------------------------------------------------------------ */
/* the DNS service (issue 19, dnssvc.h)                               */

static const struct policy *names_policy(void *ctx)
{
	return ((const struct relay *)ctx)->policy;
}

static uint64_t names_sid(void *ctx, const void *sess)
{
	(void)ctx;
	return sess != NULL ? ((const struct session *)sess)->sid : 0;
}

/* A complete new advertisement for client's session (C07: it supersedes
 * the previous one). */
static void names_routes_changed(void *ctx, const char *client)
{
	struct relay *r = ctx;
	struct session *s = session_by_id(&r->st, client);
	size_t n = 0;

	if (s == NULL || s->state != SESSION_OPEN || !masque_conn_is_open(s->c))
		return;
	if (session_routes(&r->st, s, r->routes, &n) == 0 && n > 0 &&
	    masque_conn_send_routes(s->c, r->routes, n) != 0)
		log_warnx("%s: cannot send the routes learned from DNS answers", s->id);
}

static int names_start(struct relay *r, char *err, size_t errlen)
{
	struct dnssvc_hooks h = { r, names_policy, names_routes_changed, names_sid, NULL };
	struct dnssvc_config dc;
	uint8_t a[16];
	int rv;

	if (strcmp(r->cfg.dns_service, "on") != 0)
		return 0;
	rv = dnssvc_config_build(&dc, &r->cfg, "/etc/resolv.conf", err, errlen);
	if (rv != 0)
		return rv;
	for (uint8_t v = 4; v <= 6; v += 2) {
		if (ipam_gateway(r->ipam, v, a) != 0)
			continue;
		dc.gw[dc.n_gw].version = v;
		memcpy(dc.gw[dc.n_gw++].a, a, 16);
	}
	rv = dnssvc_new(r->base, r->stack, r->audit, &dc, &h, &r->dnssvc);
	if (rv != 0) {
		(void)snprintf(err, errlen, "cannot start the DNS service: %s", zg_strerror(rv));
		return rv;
	}
	log_info("DNS service on the gateway address(es), port 53, forwarding to %zu upstream(s)",
		 dc.n_upstreams);
	return 0;
}

/* ------------------------------------------------------------------ */
/* workers: N (master.h)                                              */

/* Another worker opened a tunnel for a client: the one here, if any, is
 * older unless this worker took the client's address again since (a
 * still newer tunnel here). */
static void note_opened(struct relay *r, const char *id)
{
	struct session *s = session_by_id(&r->st, id);

	if (s == NULL || s->state != SESSION_OPEN || ipam_holder(r->ipam, id, 4) == (int)r->worker)
		return;
	log_info("%s: a newer tunnel on another worker replaces the one from %s", id, s->peer);
	r->replaced_elsewhere++;
	session_revoke(&r->st, s, "replaced", "replaced by a newer connection");
}

/* The other workers' notes (master.h). */
static void notes_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	uint8_t payload[MASTER_NOTE_PAYLOAD_MAX];
	char id[MASTER_NOTE_ID_MAX + 1];
	unsigned from;
	size_t len;
	uint8_t kind;
	int rv;

	(void)fd;
	(void)what;
	while ((rv = master_note_get(r->wenv, r->worker, &kind, &from, payload, sizeof(payload),
				     &len)) != 0) {
		if (rv < 0) {
			if (rv == ZG_ERR_MALFORMED)
				continue;
			break;
		}
		switch (kind) {
		case MASTER_NOTE_OPENED:
			if (len == 0 || len > MASTER_NOTE_ID_MAX || memchr(payload, '\0', len) != NULL)
				break;
			memcpy(id, payload, len);
			id[len] = '\0';
			note_opened(r, id);
			break;
		case MASTER_NOTE_CONN_UP:
		case MASTER_NOTE_CONN_DOWN:
			rc_note(r, kind, from, payload, len);
			break;
		case MASTER_NOTE_HELLO:
			rc_hello(r, from);
			break;
		case MASTER_NOTE_GONE:
			rc_forget(r, from, "exited");
			break;
		default:
			break;
		}
	}
}

/* Packets from the other workers: up into a connector's tunnel here, or
 * down from a connector there to an agent here (through the link here). A
 * burst is read in slices, the loop's other events between them. */
static void xfer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	const uint8_t *pkt;
	unsigned from;
	uint64_t sid;
	size_t len;
	uint8_t kind;

	(void)fd;
	(void)what;
	for (int k = 0; k < 256; k++) {
		int rv = master_xfer_recv(r->wenv, r->worker, r->xfer_buf, sizeof(r->xfer_buf), &kind,
					  &from, &sid, &pkt, &len);

		if (rv == 0)
			break;
		if (rv < 0) {
			if (rv != ZG_ERR_MALFORMED)
				break;
			r->xfer_drops++;
			continue;
		}
		if (kind == MASTER_XFER_TO_CONNECTOR) {
			const struct connlink_connector *cc = connlink_find_local_sid(r->cl, sid);

			/* gone since: the sender's connlink learns it by a note */
			if (cc == NULL || cl_send(r, cc->sess, pkt, len) != 0)
				r->xfer_drops++;
		} else if (kind == MASTER_XFER_FROM_CONNECTOR) {
			struct rconn *rc = rc_find(r, from, sid);

			if (rc == NULL)
				r->xfer_drops++;
			else
				(void)connlink_from_connector(r->cl, rc, pkt, len);
		} else {
			r->xfer_drops++;
		}
	}
}

static void list_emit(void *ectx, const struct ops_session *os)
{
	char line[1024];
	size_t n = master_session_line(os, line, sizeof(line));

	(void)evbuffer_add(ectx, line, n);
}

/* The master's requests (master.h, wctl.h). */
static int ctl_handler(void *ctx, uint8_t op, const uint8_t *req, size_t len,
		       struct evbuffer *reply)
{
	struct relay *r = ctx;
	char id[256];

	switch (op) {
	case MASTER_OP_READY: /* the reply: '!' when degraded, then /ready's note */
		if (r->api != NULL) {
			char note[400];

			note[0] = '\0';
			api_ready_note(r, note, sizeof(note));
			if (apic_state(r->api) == APIC_DOWN)
				(void)evbuffer_add(reply, "!", 1);
			(void)evbuffer_add(reply, note, strlen(note));
		}
		return 0;
	case MASTER_OP_METRICS:
		metrics_cb(r, reply);
		return 0;
	case MASTER_OP_LIST:
		admin_list(r, list_emit, reply);
		return 0;
	case MASTER_OP_KICK:
		if (len == 0 || len >= sizeof(id) || memchr(req, '\0', len) != NULL)
			return 2;
		memcpy(id, req, len);
		id[len] = '\0';
		return admin_kick(r, id) == 0 ? 0 : MASTER_KICK_NONE;
	case MASTER_OP_POLICY:
		/* The master wrote a version from zgate-api over the policy file.
		 * The watch may have reloaded it already (then nothing changed
		 * since); without inotify this is how a worker learns of it. */
		if (watch_seen(r->watch, r->cfg.policy_file) != 0)
			reload_policy(r, "zgate-api");
		return 0;
	default:
		return 2;
	}
}

static int worker_start(struct relay *r, char *err, size_t errlen)
{
	int rv = wctl_serve_new(r->base, r->wenv->ctl[r->worker][1], ctl_handler, r, &r->ctl);

	if (rv != 0) {
		(void)snprintf(err, errlen, "the master's channel: %s", zg_strerror(rv));
		return rv;
	}
	r->ev_notes = event_new(r->base, r->wenv->notes.rd[r->worker], EV_READ | EV_PERSIST,
				notes_cb, r);
	if (r->ev_notes == NULL || event_add(r->ev_notes, NULL) != 0)
		return ZG_ERR_NOMEM;
	r->ev_xfer = event_new(r->base, r->wenv->xfer.rd[r->worker], EV_READ | EV_PERSIST, xfer_cb,
			       r);
	if (r->ev_xfer == NULL || event_add(r->ev_xfer, NULL) != 0)
		return ZG_ERR_NOMEM;
	/* the connectors up on the other workers (a restarted worker's old
	 * ones are forgotten there) */
	if ((rv = master_note_put(r->wenv, r->worker, MASTER_NOTE_ALL, MASTER_NOTE_HELLO, NULL, 0)) !=
	    0)
		log_warnx("cannot ask the other workers which connectors are up: %s",
			  zg_strerror(rv));
	return 0;
}

/* A share of a relay-wide limit for one worker (rounded up: a client lands
 * on a worker by chance, a worker may hold a little more than its share). */
static uint32_t share(const struct relay *r, uint32_t v)
{
	return r->nworkers > 1 ? (v + r->nworkers - 1) / r->nworkers : v;
}

static int start(struct relay *r, char *err, size_t errlen)
{
	struct stack_config sc;
	struct stack_callbacks scb;
	struct stack_prefix forbidden[STACK_MAX_PREFIXES];
	struct masque_config mc;
	static struct masque_cbs mcb;
	size_t nf = 0;
	int rv;

	sessions_init(r);
	rv = audit_start(r, err, errlen);
	if (rv != 0)
		return rv;
	if ((rv = connlink_start(r)) != 0) {
		(void)snprintf(err, errlen, "connectors: %s", zg_strerror(rv));
		return rv;
	}
	/* For DNS-name targets (C03); without it they are refused. */
	r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (r->dns == NULL)
		log_warnx("no DNS resolver (/etc/resolv.conf): DNS-name targets will be refused");
	rv = api_start(r, err, errlen);
	if (rv != 0)
		return rv;
	if (r->nworkers > 1) {
		/* ops, admin: the master's, which asks this worker */
		if ((rv = worker_start(r, err, errlen)) != 0)
			return rv;
		goto stack;
	}
	rv = ops_new(r->base, r->cfg.ops_listen, metrics_cb, r, &r->ops);
	if (rv != 0) {
		(void)snprintf(err, errlen, "ops_listen %.200s: cannot listen there", r->cfg.ops_listen);
		return rv;
	}
	if (r->api != NULL)
		ops_set_ready_note(r->ops, api_ready_note);
	ops_set_ready_gate(r->ops, policy_gate);
	ops_set_limits(r->ops, r->cfg.ops_max_conns, r->cfg.ops_timeout_ms);
	if (r->cfg.admin_token_file[0] != '\0') {
		static const struct ops_admin_cbs acb = { admin_list, admin_kick, admin_audit };
		struct ops *ao = r->ops;

		if (r->cfg.admin_listen[0] != '\0') {
			rv = ops_new(r->base, r->cfg.admin_listen, NULL, NULL, &r->admin_ops);
			if (rv != 0) {
				(void)snprintf(err, errlen, "admin.listen %.200s: cannot listen there",
					       r->cfg.admin_listen);
				return rv;
			}
			ops_set_limits(r->admin_ops, r->cfg.ops_max_conns, r->cfg.ops_timeout_ms);
			ops_set_admin_only(r->admin_ops, 1);
			ao = r->admin_ops;
		}
		rv = ops_admin_enable(ao, r->cfg.admin_token_file, &acb, r, err, errlen);
		if (rv != 0)
			return rv;
		log_info("admin endpoint on %s (port %u), token from %s",
			 r->admin_ops != NULL ? r->cfg.admin_listen : r->cfg.ops_listen, ops_port(ao),
			 r->cfg.admin_token_file);
	}
stack:
	stack_config_defaults(&sc);
	sc.mtu = r->cfg.mtu;
	sc.max_flows = share(r, r->cfg.max_flows);
	sc.max_flows_per_client = r->cfg.max_flows_per_client;
	sc.max_halfopen_per_client = r->cfg.max_halfopen_per_client;
	sc.max_udp_per_client = r->cfg.max_udp_per_client;
	sc.max_client_bytes = (uint64_t)r->cfg.memory_per_client_mib << 20;
	sc.fd_reserve = r->cfg.fd_reserve;
	sc.fd_client_pct = r->cfg.fd_client_pct;
	sc.max_time_wait = share(r, r->cfg.max_time_wait);
	if (r->cfg.memory_mib != 0) {
		sc.max_lwip_bytes = (uint64_t)r->cfg.memory_mib << 20;
	} else {
		uint64_t cg = stack_cgroup_memory_limit("/sys/fs/cgroup", "/proc/self/cgroup");

		sc.max_lwip_bytes = stack_memory_default(cg);
		if (r->worker == 0)
			log_info("limits.memory: %llu MiB (%s)",
				 (unsigned long long)(sc.max_lwip_bytes >> 20),
				 cg ? "half the cgroup memory limit" : "no cgroup memory limit");
	}
	sc.max_lwip_bytes /= r->nworkers > 1 ? r->nworkers : 1;
	sc.tcp_idle_ms = r->cfg.tcp_idle_ms;
	sc.tcp_close_ms = r->cfg.tcp_close_ms;
	sc.udp_idle_ms = r->cfg.udp_idle_ms;
	sc.dns_idle_ms = r->cfg.dns_idle_ms;
	/* The virtual pool is never a destination. */
	forbidden[nf].addr.version = 4;
	memcpy(forbidden[nf].addr.a, r->cfg.pool4.addr, 16);
	forbidden[nf++].len = r->cfg.pool4.len;
	if (r->cfg.pool6.version == 6) {
		forbidden[nf].addr.version = 6;
		memcpy(forbidden[nf].addr.a, r->cfg.pool6.addr, 16);
		forbidden[nf++].len = r->cfg.pool6.len;
	}
	for (size_t i = 0; i < r->cfg.n_forbidden && nf < STACK_MAX_PREFIXES; i++) {
		forbidden[nf].addr.version = r->cfg.forbidden[i].version;
		memcpy(forbidden[nf].addr.a, r->cfg.forbidden[i].addr, 16);
		forbidden[nf++].len = r->cfg.forbidden[i].len;
	}
	sc.forbidden = forbidden;
	sc.n_forbidden = nf;
	memset(&scb, 0, sizeof(scb));
	scb.output = st_output;
	scb.policy = st_policy;
	scb.audit = st_audit;
	rv = stack_new(r->base, &sc, &scb, r, &r->stack);
	if (rv != 0) {
		(void)snprintf(err, errlen, "cannot start the userspace stack: %s",
			       zg_strerror(rv));
		return rv;
	}
	if ((rv = names_start(r, err, errlen)) != 0)
		return rv;
	/* before the first tunnel: the host's addresses, then every change */
	if (localaddr_new(r->base, 30000, on_local_addrs, r, &r->local) != 0)
		log_warnx("the relay's own addresses are not forbidden destinations");
	memset(&mc, 0, sizeof(mc));
	/* Reset tokens from the server key: after a restart (or on another
	 * replica) the relay can still tell clients their connection is gone. */
	if (tls_derive_secret(r->cfg.tls_key, "zgate stateless reset v1", r->reset_secret, err,
			      errlen) == 0)
		mc.static_secret = r->reset_secret;
	else
		log_warnx("%s: stateless resets will not survive a restart", err);
	mc.tls = r->tls;
	mc.uri_template = r->cfg.uri_template;
	mc.ext_capsules[0] = CAPSULE_DNS_ASSIGN; /* 19.5: a client that sends one gets ours */
	mc.n_ext_capsules = 1;
	mc.max_conns = (size_t)share(r, r->cfg.max_sessions) + share(r, r->cfg.max_sessions) / 4 + 16;
	if (r->nworkers > 1) {
		mc.worker_index = r->worker;
		mc.nworkers = r->nworkers;
		mc.listen_fd = r->wenv->udp[r->worker];
		r->wenv->udp[r->worker] = -1; /* the server's from now on */
	}
	mc.max_handshakes_per_source = r->cfg.max_handshakes_per_source;
	mc.idle_timeout_ms = r->cfg.quic_idle_ms;
	mc.request_timeout_ms = r->cfg.request_ms;
	mc.keepalive_ms = r->cfg.keepalive_ms;
	memset(&mcb, 0, sizeof(mcb));
	mcb.on_request = on_request;
	mcb.on_address_request = on_address_request;
	mcb.on_packet = on_packet;
	mcb.on_close = on_close;
	mcb.on_capsule = on_capsule;
	mcb.on_routes = on_routes;
	mcb.on_reject = on_reject;
	mcb.on_handshake_failed = on_handshake_failed;
	rv = masque_udp_server_new(r->base, r->cfg.listen, &mc, &mcb, r, &r->udp, &r->srv, err,
				   errlen);
	if (rv != 0)
		return rv;
	if (r->nworkers > 1 &&
	    (rv = masque_udp_server_set_steer(r->udp, &r->wenv->steer, err, errlen)) != 0)
		return rv;
	r->ev_term = evsignal_new(r->base, SIGTERM, signal_cb, r);
	r->ev_int = evsignal_new(r->base, SIGINT, signal_cb, r);
	r->ev_hup = evsignal_new(r->base, SIGHUP, signal_cb, r);
	if (r->ev_term == NULL || r->ev_int == NULL || r->ev_hup == NULL ||
	    event_add(r->ev_term, NULL) != 0 || event_add(r->ev_int, NULL) != 0 ||
	    event_add(r->ev_hup, NULL) != 0)
		return ZG_ERR_NOMEM;
	watch_start(r);
	if (r->cfg.policy_api_url[0] != '\0' && r->nworkers < 2) { /* else the master's */
		rv = polapi_from_config(&r->cfg, r->base, r->dns, on_policy_fetched, r, &r->polapi, err,
					errlen);
		if (rv != 0)
			return rv;
		(void)polapi_start(r->polapi);
		log_info("policy from zgate-api %s every %u ms, kept in %s", r->cfg.policy_api_url,
			 r->cfg.policy_api_poll_ms, r->cfg.policy_file);
	}
	ops_set_state(r->ops, OPS_READY);
	if (dnsassign_enabled(r->dnsassign) && r->worker == 0) {
		char line[512];

		dnsassign_summary(r->dnsassign, line, sizeof(line));
		log_info("DNS_ASSIGN: %s", line);
	}
	if (r->nworkers > 1) {
		log_info("serving: QUIC on UDP %s (port %d), up to %u tunnels, pool %zu addresses "
			 "(shared), policy %s (%zu clients)",
			 r->cfg.listen, masque_udp_port(r->udp), share(r, r->cfg.max_sessions),
			 ipam_size(r->ipam, 4), r->cfg.policy_file, policy_client_count(r->policy));
		return 0; /* the master says ready, audits relay_start/stop */
	}
	log_info("zgate-relay %s ready: QUIC on UDP %s (port %d), ops on %s (port %u), pool %zu "
		 "addresses, policy %s (%zu clients)",
		 ZG_VERSION, r->cfg.listen, masque_udp_port(r->udp), r->cfg.ops_listen,
		 ops_port(r->ops), ipam_size(r->ipam, 4), r->cfg.policy_file,
		 policy_client_count(r->policy));
	r->started_ms = mono_ms();
	audit_relay_start(r->audit, ZG_VERSION, r->cfg.listen, r->cfg.ops_listen,
			  r->cfg.admin_listen, (long)getpid());
	return notify_ready(r);
}

static void shutdown_all(struct relay *r)
{
	/* Tunnels first (each gets CONNECTION_CLOSE and its session audit
	 * line), then flows and sockets, then the audit trail. */
	/* links first: their close says relay_shutdown */
	connlink_free(r->cl, "relay_shutdown");
	r->cl = NULL;
	if (r->ev_connlink != NULL)
		event_free(r->ev_connlink);
	r->ev_connlink = NULL;
	if (r->ev_zgconn != NULL)
		event_free(r->ev_zgconn);
	r->ev_zgconn = NULL;
	masque_udp_del(r->udp);
	r->udp = NULL;
	session_table_free(&r->st); /* each closed with its connection: none left */
	if (r->ev_api_refresh != NULL)
		event_free(r->ev_api_refresh);
	r->ev_api_refresh = NULL;
	apic_free(r->api); /* after the connections: their cancels reach it */
	r->api = NULL;
	localaddr_del(r->local);
	r->local = NULL;
	polapi_del(r->polapi);
	r->polapi = NULL;
	watch_del(r->watch);
	r->watch = NULL;
	dnssvc_free(r->dnssvc);
	r->dnssvc = NULL;
	if (r->stack != NULL)
		stack_del(r->stack);
	if (r->dns != NULL)
		evdns_base_free(r->dns, 1);
	if (r->ipam != NULL && r->nworkers < 2 && r->served)
		save_ipam(r); /* else the master's */
	ops_del(r->ops);
	wctl_server_free(r->ctl);
	r->ctl = NULL;
	if (r->ev_notes != NULL)
		event_free(r->ev_notes);
	r->ev_notes = NULL;
	if (r->ev_xfer != NULL)
		event_free(r->ev_xfer);
	r->ev_xfer = NULL;
	ops_del(r->admin_ops);
	if (r->ev_term)
		event_free(r->ev_term);
	if (r->ev_int)
		event_free(r->ev_int);
	if (r->ev_hup)
		event_free(r->ev_hup);
	if (r->ev_drain)
		event_free(r->ev_drain);
	if (r->ev_watchdog)
		event_free(r->ev_watchdog);
	if (r->audit != NULL)
		audit_stop(r);
	pdump_close(&r->dump);
	ipam_free(r->ipam);
	dnsgate_free(r->dnsgate);
	r->dnsgate = NULL;
	dnsassign_free(r->dnsassign);
	r->dnsassign = NULL;
	policy_free(r->policy);
	if (r->tls != NULL)
		wolfSSL_CTX_free(r->tls);
}

/* libevent's own messages in a worker: "Added a signal to event base ...
 * with signals already added" is its note that the worker's new base now
 * takes the signals the master's (inherited, never used here) had, which
 * is what is wanted (wpool.h); the rest are the operator's. */
static void worker_event_log(int severity, const char *msg)
{
	if (strncmp(msg, "Added a signal to event base", 28) == 0)
		log_debug("libevent: %s", msg);
	else if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

/* Worker i of the master's pool (master.h): the relay's loop on its
 * share. */
static int worker_run(unsigned i, void *arg)
{
	struct relay *r = arg;
	char err[1024] = "";
	int rv;

	r->worker = i;
	log_set_worker((int)i);
	{
		/* ps/top show which worker a process is: "zgate-relay:w0" */
		char name[16];

		(void)snprintf(name, sizeof(name), "zgate-relay:w%u", i);
		(void)prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	event_set_log_callback(worker_event_log);
	master_worker_keep(r->wenv, i);
	if (master_worker_close_inherited(r->wenv, i) < 0)
		log_warn("/proc/self/fd: the master's descriptors stay open in this worker");
	/* a worker restarted after a reload starts from the files as they
	 * are now, not from the master's copy of them at its start */
	{
		struct policy *np = NULL;

		if (policy_load_file(r->cfg.policy_file, &np, err, sizeof(err)) == 0) {
			policy_free(r->policy);
			r->policy = np;
			r->policy_version = file_version(r);
		} else if (r->cfg.policy_api_url[0] != '\0' &&
			   access(r->cfg.policy_file, F_OK) != 0) {
			/* none fetched yet: the master's deny-all */
		} else {
			log_warnx("%s: starting with the policy the relay started with", err);
		}
		if (tls_rebuild(r, err, sizeof(err)) != 0)
			log_warnx("%s: starting with the certificates the relay started with", err);
		err[0] = '\0';
	}
	r->base = masque_udp_base_new();
	if (r->base == NULL) {
		log_errx("cannot create the event loop");
		return 1;
	}
	rv = start(r, err, sizeof(err));
	if (rv != 0) {
		log_errx("%s", err[0] ? err : zg_strerror(rv));
		shutdown_all(r);
		return 1;
	}
	event_base_dispatch(r->base);
	log_info("stopping: %zu tunnels open", r->st.n);
	shutdown_all(r);
	return 0;
}

/* The CPUs this process may run on (its affinity mask). */
static unsigned affinity_cpus(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	return (unsigned)CPU_COUNT(&set);
}

int main(int argc, char **argv)
{
	static struct master_env W;
	static struct relay R;
	char err[1024] = "", summary[4096];
	enum config_action act;
	int check, rv;

	pdump_init(&R.dump);
	signal(SIGPIPE, SIG_IGN);
	if ((rv = load_config(&R, argc, argv, &act, err, sizeof(err))) != 0) {
		fprintf(stderr, "zgate-relay: %s\n", err);
		return opt_exit_code(rv);
	}
	if (act == CONFIG_HELP) {
		usage(stdout);
		return OPT_EXIT_OK;
	}
	if (act == CONFIG_VERSION) {
		(void)opt_version("zgate-relay", summary, sizeof(summary));
		fputs(summary, stdout);
		return OPT_EXIT_OK;
	}
	check = act == CONFIG_CHECK;
	R.nworkers = config_workers(&R.cfg, affinity_cpus(),
				    config_cgroup_cpus("/sys/fs/cgroup", "/proc/self/cgroup"));
	rv = load_state(&R, check, err, sizeof(err));
	if (rv == 0)
		rv = fdlimit_apply(&R.cfg, R.nworkers, err, sizeof(err)); /* 16.1 */
	if (rv == 0)
		rv = dnsgate_new(R.cfg.dns_resolvable, R.cfg.dns_per_min, &R.dnsgate, err, sizeof(err));
	if (rv == 0 && R.nworkers > 1 && dnsgate_share(R.dnsgate) != 0) {
		(void)snprintf(err, sizeof(err), "dns.resolutions_per_minute: out of memory");
		rv = ZG_ERR_NOMEM;
	}
	if (rv == 0) {
		uint8_t gw4[16], gw6[16];
		int has6 = R.cfg.pool6.version == 6 && ipam_gateway(R.ipam, 6, gw6) == 0;

		rv = ipam_gateway(R.ipam, 4, gw4);
		if (rv == 0)
			rv = dnsassign_new(R.cfg.dns_enabled, R.cfg.dns_domains, R.cfg.dns_nameservers,
					   gw4, has6 ? gw6 : NULL, &R.dnsassign, err, sizeof(err));
	}
	if (rv != 0) {
		fprintf(stderr, "zgate-relay: %s\n", err);
		shutdown_all(&R);
		/* what it was given (the files the configuration names, the
		 * descriptor limit it asks for) does not load: exit 2 */
		return rv == ZG_ERR_NOMEM ? OPT_EXIT_FAILURE : OPT_EXIT_USAGE;
	}
	if (check) {
		(void)config_summary(&R.cfg, summary, sizeof(summary));
		printf("%s", summary);
		printf("policy        %zu clients, %zu rules, default %s%s\n",
		       policy_client_count(R.policy), policy_rule_count(R.policy),
		       policy_default_action(R.policy) == POLICY_ALLOW ? "allow" : "deny",
		       R.cfg.policy_api_url[0] == '\0'        ? ""
		       : access(R.cfg.policy_file, F_OK) != 0 ? " (deny-all until the first fetch "
								"from zgate-api)"
		       : R.policy_cache_bad                   ? " (deny-all: the last fetched does not load; until the "
								"next fetch from zgate-api)"
							      : " (the last fetched from zgate-api)");
		printf("certificates  ok (server chain, key, client CA%s)\n",
		       R.cfg.tls_crl[0] ? ", CRL" : "");
		dnsassign_summary(R.dnsassign, summary, sizeof(summary));
		printf("dns_assign    %s\n", summary);
		printf("processes     %u worker%s%s\n", R.nworkers, R.nworkers == 1 ? "" : "s",
		       R.nworkers == 1 ? " (no master)" : " and a master");
		printf("configuration ok\n");
		shutdown_all(&R);
		return 0;
	}
	if (R.nworkers > 1) {
		rv = master_open(&W, R.nworkers, R.cfg.listen, err, sizeof(err));
		if (rv != 0) {
			fprintf(stderr, "zgate-relay: %s\n", err);
			shutdown_all(&R);
			return 1;
		}
		state_set_aside(&R); /* before the master's first save */
		R.wenv = &W;
		W.run = worker_run;
		W.arg = &R;
		rv = master_run(&R.cfg, R.ipam, &W);
		shutdown_all(&R);
		return rv;
	}
	R.base = masque_udp_base_new();
	if (R.base == NULL) {
		fprintf(stderr, "zgate-relay: cannot create the event loop\n");
		shutdown_all(&R);
		return 1;
	}
	rv = start(&R, err, sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "zgate-relay: %s\n", err[0] ? err : zg_strerror(rv));
		shutdown_all(&R);
		event_base_free(R.base);
		return 1;
	}
	state_set_aside(&R); /* before the first save (a tunnel, or the exit) */
	R.served = 1;
	event_base_dispatch(R.base);
	(void)sdnotify_send("STOPPING=1");
	log_info("stopping: %zu tunnels open", R.st.n);
	shutdown_all(&R);
	event_base_free(R.base);
	log_info("stopped");
	return 0;
}
