/*
 * zgate-connector — dials out to every configured relay (an outer
 * CONNECT-IP client each), announces the prefixes it serves with a
 * ROUTE_ADVERTISEMENT, and serves agents' end-to-end inner CONNECT-IP
 * sessions that arrive as UDP packets inside those tunnels (inner.h).
 * Unprivileged: no TUN, no listening socket but the ops endpoint.
 * Wiring only: start-up, the relays' reconnect loop and GOAWAY handover
 * (handover.h), signals, reloads (policy; TLS material, conn_tls.h),
 * metrics.
 *
 * SIGHUP reloads the policy and the TLS files; a change of the TLS files
 * (cert, key, ca) reloads them by itself (filewatch.h, debounced). New
 * relay connections and new inner sessions use the new material; open
 * ones keep theirs. Files that do not load keep the material in force:
 * logged naming the file, counted, audited (tls_reload).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "agent/filewatch.h"
#include "connector/conn_config.h"
#include "connector/conn_tls.h"
#include "connector/handover.h"
#include "connector/inner.h"
#include "log.h"
#include "masque/masque.h"
#include "masque/tunio.h"
#include "masque/udp.h"
#include "masque/uri.h"
#include "opt.h"
#include "relay/audit.h"
#include "relay/ops.h"
#include "relay/policy.h"
#include "zg_err.h"

#define TLS_DEBOUNCE_MS 500    /* the TLS files settle this long before a reload */
#define REPLACE_GRACE_MS 10000 /* a relay after GOAWAY counts as up this long (handover.h) */

static const struct timeval tv_now = { 0, 0 };

_Static_assert(RELAYLIST_MAX * 2 <= INNER_MAX_SERVERS,
	       "an inner server per tunnel: two tunnels per relay (one draining)");

struct conn;
struct rl;

/* One outer tunnel and, while it is open, the inner server on it. */
struct tunnel {
	struct rl *r;
	int slot;                /* in r->t[] and the handover */
	struct masque_config mc; /* the transport keeps a pointer to it */
	struct masque_udp *u, *dead;
	struct masque_conn *c;
	struct tunio *tio;
	struct masque_server *isrv;
	struct cip_addr vaddr[2];
	size_t nvaddr;
	int open;
};

/* One relay: its tunnels (one in use; one draining after a GOAWAY). */
struct rl {
	struct conn *cn;
	const struct relay_entry *e;
	char authority[300], path[1100];
	struct tunnel t[2];
	struct handover ho;
	struct event *retry_ev, *reap_ev, *grace_ev;
	uint64_t opens, inner_pkts, inner_drops;
};

struct conn {
	struct conn_config cfg;
	struct event_base *base;
	struct conn_tls tls;
	struct filewatch *fw; /* the TLS files' directories */
	uint64_t tls_sum;     /* contents of the TLS files last loaded (or tried) */
	uint64_t tls_reload_ok, tls_reload_fail;
	struct policy *pol;
	struct audit_out aout;
	int audit_fd;
	struct audit *audit;
	struct inner *in;
	struct ops *ops;
	struct rl rl[RELAYLIST_MAX];
	struct cip_route adv[CONN_PREFIX_MAX * 2];
	size_t nadv;
	struct event *sigterm, *sigint, *sighup;
	struct masque_cbs cbs;
	int stopping; /* no reconnect, nothing left for later */
};

static uint32_t random32(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)masque_udp_now() ^ (uint32_t)getpid();
	return r;
}

/* /ready: 200 while a relay has a tunnel open (one draining after GOAWAY
 * included) or is being replaced after a GOAWAY (handover.h); a relay's
 * grace timer looks again when its grace ends. */
static void update_ready(struct conn *cn)
{
	uint64_t now = masque_udp_now();
	int up = 0;

	for (size_t i = 0; i < cn->cfg.relays.n; i++) {
		struct rl *r = &cn->rl[i];
		uint64_t d = handover_deadline(&r->ho, now);

		up |= handover_up(&r->ho, now);
		if (r->grace_ev != NULL && d > 0) {
			uint64_t ms = d / 1000000u + 1;
			struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

			(void)evtimer_add(r->grace_ev, &tv);
		}
	}
	if (cn->ops != NULL)
		ops_set_state(cn->ops, up ? OPS_READY : OPS_STARTING);
}

/* The /ready body's lines: each relay's state. */
static void ready_note(void *ctx, char *buf, size_t len)
{
	struct conn *cn = ctx;
	uint64_t now = masque_udp_now();
	size_t n = 0;

	for (size_t i = 0; i < cn->cfg.relays.n && n < len; i++) {
		int w = snprintf(buf + n, len - n, "%srelay %s: %s", i ? "\n" : "",
				 cn->rl[i].e->text, handover_state(&cn->rl[i].ho, now));

		if (w < 0)
			break;
		n += (size_t)w;
	}
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl *r = arg;

	(void)fd;
	(void)what;
	if (!handover_up(&r->ho, masque_udp_now()))
		log_warnx("relay %s: not replaced within %u s of its GOAWAY", r->e->text,
			  REPLACE_GRACE_MS / 1000);
	update_ready(r->cn);
}

/* ---------------------------------------------------------------- inner transport */

static void emit(void *ctx, const uint8_t *pkt, size_t len)
{
	struct tunnel *t = ctx;

	if (t->c == NULL || masque_conn_send(t->c, pkt, len) != 0)
		t->r->inner_drops++;
}

static void inner_down(struct tunnel *t)
{
	if (t->isrv != NULL)
		inner_server_del(t->r->cn->in, t->isrv);
	t->isrv = NULL;
	if (t->tio != NULL)
		tunio_free(t->tio);
	t->tio = NULL;
}

/* ---------------------------------------------------------------- outer client */

static void start_connect(struct rl *r);

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_connect(arg);
}

/* Frees the sockets of closed tunnels: not from inside their callbacks. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rl *r = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < 2; i++) {
		masque_udp_del(r->t[i].dead);
		r->t[i].dead = NULL;
	}
}

/* The next attempt after ms (replacing one already scheduled). */
static void schedule_retry(struct rl *r, uint32_t ms, const char *why)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (ms == 0)
		log_info("relay %s: %s; connecting again now", r->e->text, why);
	else
		log_warnx("relay %s: %s; next attempt in %u.%03u s", r->e->text, why, ms / 1000,
			  ms % 1000);
	evtimer_add(r->retry_ev, &tv);
}

static void on_open(struct masque_conn *c, void *ctx)
{
	struct tunnel *t = ctx;
	struct rl *r = t->r;
	struct conn *cn = r->cn;
	size_t maxp = masque_conn_max_packet(c);
	int e, draining = r->t[!t->slot].open;

	t->open = 1;
	r->opens++;
	handover_opened(&r->ho, t->slot);
	if ((e = masque_conn_send_routes(c, cn->adv, cn->nadv)) != 0)
		log_warnx("relay %s: cannot announce the prefixes: %s", r->e->text, zg_strerror(e));
	/* the inner QUIC's datagrams must fit an IPv6/UDP packet in the tunnel */
	if (maxp < 1200 + 48) {
		log_warnx("relay %s: the tunnel carries packets of %zu bytes, too small for the "
			  "inner sessions (%u)",
			  r->e->text, maxp, 1200 + 48);
	} else if ((e = tunio_new(cn->base, emit, t, &t->tio)) != 0 ||
		   (e = inner_server_new(cn->in, tunio_io(), t->tio, maxp - 48, &t->isrv)) != 0) {
		log_warnx("relay %s: no inner server: %s", r->e->text, zg_strerror(e));
		inner_down(t);
	}
	log_info("relay %s: tunnel open, %zu prefixes announced%s", r->e->text, cn->nadv,
		 draining ? " (it replaces the one draining after GOAWAY)" : "");
	update_ready(cn);
}

/* The relay is shutting down gracefully: the tunnel keeps carrying its
 * inner sessions until the relay closes it; a new one is dialled at once,
 * without backoff (handover.h). */
static void on_goaway(struct masque_conn *c, void *ctx)
{
	struct tunnel *t = ctx;
	struct rl *r = t->r;

	(void)c;
	if (handover_goaway(&r->ho, t->slot)) {
		log_info("relay %s: GOAWAY (the relay is going away): the tunnel carries its inner "
			 "sessions until the relay closes it; dialling a new tunnel now",
			 r->e->text);
		evtimer_add(r->retry_ev, &tv_now);
	} else {
		log_info("relay %s: GOAWAY (the relay is going away): the tunnel carries its inner "
			 "sessions until the relay closes it, then a new one is dialled at once",
			 r->e->text);
	}
	update_ready(r->cn);
}

/* Every open tunnel's addresses: never destinations for agents (inner.h). */
static void tunnel_addresses_update(struct conn *cn)
{
	struct stack_addr a[INNER_MAX_TUNNEL_ADDRS];
	size_t n = 0;

	for (size_t i = 0; i < cn->cfg.relays.n; i++) {
		for (int k = 0; k < 2; k++) {
			const struct tunnel *t = &cn->rl[i].t[k];

			for (size_t j = 0; j < t->nvaddr && n < INNER_MAX_TUNNEL_ADDRS; j++) {
				memset(&a[n], 0, sizeof(a[n]));
				a[n].version = t->vaddr[j].version;
				memcpy(a[n].a, t->vaddr[j].addr, t->vaddr[j].version == 4 ? 4 : 16);
				n++;
			}
		}
	}
	if (cn->in != NULL)
		(void)inner_set_tunnel_addresses(cn->in, a, n);
}

/* The relay tells the addresses twice as a tunnel opens (its own
 * ADDRESS_ASSIGN, then its answer to our ADDRESS_REQUEST), and again only
 * when they change: logged when they differ from the ones held. */
static void on_addresses(struct masque_conn *c, const struct cip_addr *a, size_t n, void *ctx)
{
	struct tunnel *t = ctx;
	struct cip_addr v[2];
	size_t nv = 0;
	char buf[INET6_ADDRSTRLEN], line[2 * INET6_ADDRSTRLEN + 8] = "";

	(void)c;
	memset(v, 0, sizeof(v));
	for (size_t i = 0; i < n && nv < 2; i++)
		if (a[i].version == 4 || a[i].version == 6)
			v[nv++] = a[i];
	if (cip_addr_same_set(v, nv, t->vaddr, t->nvaddr))
		return;
	memcpy(t->vaddr, v, nv * sizeof(v[0]));
	t->nvaddr = nv;
	for (size_t i = 0; i < nv; i++) {
		inet_ntop(v[i].version == 4 ? AF_INET : AF_INET6, v[i].addr, buf, sizeof(buf));
		(void)snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s",
			       i ? ", " : "", buf);
	}
	log_info("relay %s: tunnel address%s %s (never a destination for agents)", t->r->e->text,
		 nv == 1 ? "" : "es", nv ? line : "none");
	tunnel_addresses_update(t->r->cn);
}

static int is_vaddr(const struct tunnel *r, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < r->nvaddr; i++) {
		const struct cip_addr *a = &r->vaddr[i];

		if (a->version == 4 && ss->ss_family == AF_INET &&
		    memcmp(&((const struct sockaddr_in *)ss)->sin_addr, a->addr, 4) == 0)
			return 1;
		if (a->version == 6 && ss->ss_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, a->addr, 16) == 0)
			return 1;
	}
	return 0;
}

static void on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct tunnel *t = ctx;
	struct rl *r = t->r;
	struct sockaddr_storage local, remote;
	socklen_t ll, rl;
	const uint8_t *pl;
	size_t plen;
	uint16_t port;

	(void)c;
	if (t->isrv == NULL ||
	    !tunio_parse_udp(pkt, len, &local, &ll, &remote, &rl, &pl, &plen)) {
		r->inner_drops++;
		return;
	}
	port = local.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&local)->sin_port)
					  : ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
	if (port != r->cn->cfg.inner_port || !is_vaddr(t, &local)) {
		r->inner_drops++;
		return;
	}
	r->inner_pkts++;
	if (masque_server_input(t->isrv, (struct sockaddr *)&local, ll, (struct sockaddr *)&remote,
				rl, pl, plen) == MASQUE_DEFERRED)
		r->inner_drops++;
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct tunnel *t = ctx;
	struct rl *r = t->r;
	int draining = t->slot != r->ho.cur, had_goaway = r->ho.goaway[t->slot];
	uint32_t ms = 0;
	char why[400];

	(void)c;
	t->open = 0;
	t->c = NULL;
	t->nvaddr = 0;
	tunnel_addresses_update(r->cn);
	inner_down(t);
	if (r->cn->stopping)
		return;          /* cleanup() frees t->u itself */
	masque_udp_del(t->dead); /* an older one the reaper has not freed yet */
	t->dead = t->u;          /* freed outside this callback */
	t->u = NULL;
	evtimer_add(r->reap_ev, &tv_now);
	if (ci->status != 0)
		(void)snprintf(why, sizeof(why), "refused with status %d", ci->status);
	else
		(void)snprintf(why, sizeof(why), "%s%s",
			       had_goaway ? "the tunnel that had GOAWAY closed: " : "",
			       ci->reason[0] ? ci->reason : "closed");
	if (handover_closed(&r->ho, t->slot, masque_udp_now(), random32(), &ms))
		schedule_retry(r, ms, why);
	else if (draining)
		log_info("relay %s: %s; its replacement is under way", r->e->text, why);
	update_ready(r->cn);
}

static void start_connect(struct rl *r)
{
	struct uri_scope any;
	struct tunnel *t;
	char err[512];
	uint32_t ms = 0;
	int e, slot = handover_dial(&r->ho);

	memset(&any, 0, sizeof(any));
	any.any_target = 1;
	any.any_proto = 1;
	if (slot < 0)
		return; /* an attempt or a tunnel is under way */
	t = &r->t[slot];
	e = uri_expand(r->e->uri_template, &any, r->authority, sizeof(r->authority), r->path,
		       sizeof(r->path));
	if (e != 0) {
		(void)snprintf(err, sizeof(err), "cannot expand the URI template");
		goto fail;
	}
	memset(&t->mc, 0, sizeof(t->mc));
	t->mc.tls = r->cn->tls.client; /* the material in force now (reloads) */
	t->mc.keepalive_ms = r->cn->cfg.keepalive_ms;
	t->mc.idle_timeout_ms = r->cn->cfg.idle_timeout_ms;
	t->mc.authority = r->authority;
	t->mc.path = r->path;
	t->mc.server_name = r->e->server_name;
	log_info("relay %s: connecting (server name %s)", r->e->text, r->e->server_name);
	if (masque_udp_client_new(r->cn->base, r->e->addr, &t->mc, &r->cn->cbs, t, &t->u, &t->c,
				  err, sizeof(err)) == 0)
		return;
	t->u = NULL;
	t->c = NULL;
fail:
	if (handover_closed(&r->ho, slot, masque_udp_now(), random32(), &ms))
		schedule_retry(r, ms, err);
}

/* ---------------------------------------------------------------- ops, signals */

static void metrics_cb(void *ctx, struct evbuffer *b)
{
	struct conn *cn = ctx;
	struct inner_stats is;
	struct stack_counters sc;
	unsigned up = 0;

	inner_get_stats(cn->in, &is);
	stack_get_counters(inner_stack(cn->in), &sc);
	for (size_t i = 0; i < cn->cfg.relays.n; i++)
		up += (unsigned)(cn->rl[i].t[0].open + cn->rl[i].t[1].open);
	evbuffer_add_printf(b,
			    "# HELP zgate_connector_relays Relays configured.\n"
			    "# TYPE zgate_connector_relays gauge\nzgate_connector_relays %zu\n"
			    "# HELP zgate_connector_tunnels_up Outer tunnels open now (draining ones "
			    "included).\n"
			    "# TYPE zgate_connector_tunnels_up gauge\nzgate_connector_tunnels_up %u\n",
			    cn->cfg.relays.n, up);
	evbuffer_add_printf(b, "# HELP zgate_connector_tunnel_opens_total Outer tunnels opened.\n"
			       "# TYPE zgate_connector_tunnel_opens_total counter\n");
	for (size_t i = 0; i < cn->cfg.relays.n; i++)
		evbuffer_add_printf(b, "zgate_connector_tunnel_opens_total{relay=\"%s\"} %llu\n",
				    cn->rl[i].e->addr, (unsigned long long)cn->rl[i].opens);
	evbuffer_add_printf(b, "# HELP zgate_connector_goaways_total GOAWAYs received (a relay "
			       "shutting down gracefully).\n"
			       "# TYPE zgate_connector_goaways_total counter\n");
	for (size_t i = 0; i < cn->cfg.relays.n; i++)
		evbuffer_add_printf(b, "zgate_connector_goaways_total{relay=\"%s\"} %llu\n",
				    cn->rl[i].e->addr, (unsigned long long)cn->rl[i].ho.goaways);
	evbuffer_add_printf(
		b,
		"# HELP zgate_connector_tls_reloads_total Reloads of the TLS files (cert, key, ca), "
		"by result.\n"
		"# TYPE zgate_connector_tls_reloads_total counter\n"
		"zgate_connector_tls_reloads_total{result=\"ok\"} %llu\n"
		"zgate_connector_tls_reloads_total{result=\"error\"} %llu\n"
		"# HELP zgate_connector_cert_not_after_seconds When the certificate in force "
		"expires (Unix time).\n"
		"# TYPE zgate_connector_cert_not_after_seconds gauge\n"
		"zgate_connector_cert_not_after_seconds %lld\n",
		(unsigned long long)cn->tls_reload_ok, (unsigned long long)cn->tls_reload_fail,
		(long long)cn->tls.cert.not_after);
	evbuffer_add_printf(
		b,
		"# HELP zgate_connector_inner_sessions Agents' inner sessions open now.\n"
		"# TYPE zgate_connector_inner_sessions gauge\nzgate_connector_inner_sessions %llu\n"
		"# HELP zgate_connector_inner_sessions_total Inner sessions accepted.\n"
		"# TYPE zgate_connector_inner_sessions_total counter\n"
		"zgate_connector_inner_sessions_total %llu\n"
		"# HELP zgate_connector_inner_refused_total Inner sessions refused, by status.\n"
		"# TYPE zgate_connector_inner_refused_total counter\n"
		"zgate_connector_inner_refused_total{status=\"403\"} %llu\n"
		"zgate_connector_inner_refused_total{status=\"409\"} %llu\n"
		"zgate_connector_inner_refused_total{status=\"503\"} %llu\n"
		"# HELP zgate_connector_inner_conns_refused_total Inner QUIC connections refused "
		"or closed before a session: more than max_conns_per_agent from one agent "
		"address (per_agent), no tunnel within request_timeout (no_request).\n"
		"# TYPE zgate_connector_inner_conns_refused_total counter\n"
		"zgate_connector_inner_conns_refused_total{reason=\"per_agent\"} %llu\n"
		"zgate_connector_inner_conns_refused_total{reason=\"no_request\"} %llu\n",
		(unsigned long long)is.sessions, (unsigned long long)is.opened,
		(unsigned long long)is.refused_403, (unsigned long long)is.refused_409,
		(unsigned long long)is.refused_503, (unsigned long long)is.refused_per_agent,
		(unsigned long long)is.no_request);
	evbuffer_add_printf(
		b,
		"# HELP zgate_connector_flows Flows open now, by protocol.\n"
		"# TYPE zgate_connector_flows gauge\n"
		"zgate_connector_flows{proto=\"tcp\"} %llu\nzgate_connector_flows{proto=\"udp\"} %llu\n"
		"zgate_connector_flows{proto=\"icmp\"} %llu\n"
		"# HELP zgate_connector_flows_denied_total New flows the policy refused.\n"
		"# TYPE zgate_connector_flows_denied_total counter\n"
		"zgate_connector_flows_denied_total %llu\n"
		"# HELP zgate_connector_bytes_total IP bytes of inner sessions, by direction.\n"
		"# TYPE zgate_connector_bytes_total counter\n"
		"zgate_connector_bytes_total{dir=\"up\"} %llu\n"
		"zgate_connector_bytes_total{dir=\"down\"} %llu\n",
		(unsigned long long)sc.flows_tcp, (unsigned long long)sc.flows_udp,
		(unsigned long long)sc.flows_icmp, (unsigned long long)sc.drop_denied,
		(unsigned long long)is.bytes_up, (unsigned long long)is.bytes_down);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct conn *cn = arg;

	(void)what;
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(cn->base, NULL);
}

static void reload_policy(struct conn *cn)
{
	struct policy *p;
	char err[512];

	if (policy_load_file(cn->cfg.policy, &p, err, sizeof(err)) != 0) {
		log_warnx("policy reload failed, the old policy stays: %s", err);
		audit_policy_reload(cn->audit, 0, cn->cfg.policy, err);
		return;
	}
	inner_set_policy(cn->in, p);
	policy_free(cn->pol);
	cn->pol = p;
	log_info("policy %s reloaded", cn->cfg.policy);
	audit_policy_reload(cn->audit, 1, cn->cfg.policy, NULL);
}

static uint64_t tls_files_sum(const struct conn *cn)
{
	const char *files[3];

	return filewatch_sum(files, conn_tls_files(&cn->cfg, files));
}

/* Loads cert, key and ca again (force: even when they did not change;
 * trigger "sighup" or "file"). New relay connections and new inner
 * sessions use the new material; open ones keep theirs. */
static void reload_tls(struct conn *cn, const char *trigger, int force)
{
	uint64_t sum = tls_files_sum(cn);
	size_t tunnels = 0;
	struct inner_stats is;
	char err[512];

	if (!force && sum == cn->tls_sum)
		return; /* nothing we load changed (a touch, another file) */
	cn->tls_sum = sum;
	if (conn_tls_load(&cn->tls, &cn->cfg, (int64_t)time(NULL), err, sizeof(err)) != 0) {
		cn->tls_reload_fail++;
		log_warnx("TLS reload failed (%s), keeping the current certificate (serial %s): %s",
			  trigger, cn->tls.cert.serial, err);
		audit_tls_reload(cn->audit, 0, trigger, err);
		return;
	}
	inner_set_tls(cn->in, cn->tls.server);
	cn->tls_reload_ok++;
	if (cn->tls.warning[0] != '\0')
		log_warnx("%s", cn->tls.warning);
	for (size_t i = 0; i < cn->cfg.relays.n; i++)
		tunnels += (size_t)(cn->rl[i].t[0].open + cn->rl[i].t[1].open);
	inner_get_stats(cn->in, &is);
	log_info("TLS reloaded (%s): certificate %s (serial %s), key %s, CA %s; new relay "
		 "connections and inner sessions use it, %zu open tunnels and %llu inner sessions "
		 "keep theirs",
		 trigger, cn->cfg.cert, cn->tls.cert.serial, cn->cfg.key, cn->cfg.ca, tunnels,
		 (unsigned long long)is.sessions);
	audit_tls_reload(cn->audit, 1, trigger, NULL);
}

static void tls_files_changed(void *arg)
{
	reload_tls(arg, "file", 0);
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct conn *cn = arg;

	(void)sig;
	(void)what;
	reload_policy(cn);
	reload_tls(cn, "sighup", 1);
}

/* ---------------------------------------------------------------- start-up */

static void usage(void)
{
	printf("Usage: zgate-connector [-c FILE] [--key FILE] [--check-config]\n"
	       "\n"
	       "Dials out to every relay of the configuration, announces the prefixes it serves,\n"
	       "and serves agents' end-to-end inner CONNECT-IP sessions toward them. Runs\n"
	       "unprivileged (no TUN, no capabilities).\n"
	       "\n"
	       "  -c, --config FILE   the YAML configuration (default "
	       "/etc/zgate/zgate-connector.yaml)\n"
	       "  --key FILE          the private key, instead of the file's key: (e.g. a\n"
	       "                      systemd credential, %%d/connector.key)\n"
	       "  --check-config      load the configuration, certificates, policy and audit\n"
	       "                      file, then exit\n"
	       "  --version           print the version and the libraries'\n"
	       "  -h, --help          this text\n"
	       "\n"
	       "Configuration keys: relays, server_name, ca, cert, key, prefixes, policy, audit,\n"
	       "ops_listen, inner_port, log_level, reconnect_min, reconnect_max, keepalive,\n"
	       "idle_timeout, max_conns_per_agent, request_timeout (see zgate-connector(8)).\n"
	       "\n"
	       "SIGHUP reloads the policy and the TLS files (cert, key, ca); a change of the\n"
	       "TLS files reloads them by itself. New relay connections and new inner sessions\n"
	       "use the new certificate; open ones keep theirs. Files that do not load keep\n"
	       "the ones in force (logged with the file's name, audited, counted).\n"
	       "\n"
	       "GOAWAY from a relay (graceful shutdown): its tunnel carries its inner sessions\n"
	       "until the relay closes it, and a new tunnel is dialled at once, without\n"
	       "backoff. /ready is 200 while at least one relay's tunnel is open (a draining\n"
	       "one included) or a relay is being replaced: up to 10 s after its tunnel that\n"
	       "had GOAWAY closed, until a new one opens. Else 503.\n"
	       "\n" OPT_HELP_EXIT);
}

/* Prefixes as a valid ROUTE_ADVERTISEMENT (protocol 0). */
static int make_adv(struct conn *cn)
{
	size_t n = 0;

	for (size_t i = 0; i < cn->cfg.nprefixes; i++) {
		const struct route_prefix *p = &cn->cfg.prefixes[i];
		size_t alen = p->version == 4 ? 4 : 16;
		struct cip_route *r = &cn->adv[n++];

		memset(r, 0, sizeof(*r));
		r->version = p->version;
		memcpy(r->start, p->addr, alen);
		memcpy(r->end, p->addr, alen);
		for (size_t bit = p->len; bit < alen * 8; bit++)
			r->end[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	}
	return cip_routes_normalize(cn->adv, n, sizeof(cn->adv) / sizeof(cn->adv[0]), &cn->nadv);
}

/* Loads what the configuration names: TLS contexts (a certificate that
 * does not name a connector is refused, conn_tls_load), policy. */
static int load_files(struct conn *cn, char *err, size_t errlen)
{
	int r;

	cn->tls_sum = tls_files_sum(cn);
	if ((r = conn_tls_load(&cn->tls, &cn->cfg, (int64_t)time(NULL), err, errlen)) != 0)
		return ZG_ERR_CONFIG;
	if ((r = policy_load_file(cn->cfg.policy, &cn->pol, err, errlen)) != 0)
		return ZG_ERR_CONFIG;
	if ((r = make_adv(cn)) != 0) {
		zg_seterr(err, errlen, "prefixes: cannot announce them: %s", zg_strerror(r));
		return ZG_ERR_CONFIG;
	}
	return 0;
}

/* --check-config: whether open_audit() will be able to append to the
 * audit file (open it, or make it in its directory), without making it.
 * 0, or ZG_ERR_CONFIG with err as open_audit() would say it. */
static int check_audit(const struct conn *cn, char *err, size_t errlen)
{
	const char *path = cn->cfg.audit, *slash = strrchr(path, '/');
	char dir[sizeof(cn->cfg.audit)];
	int fd;

	if (strcmp(path, "-") == 0)
		return 0;
	/* O_NONBLOCK: a FIFO without a reader answers ENXIO, not a hang */
	fd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == ENXIO)
		return 0;
	if (errno == ENOENT) {
		if (slash == NULL)
			(void)snprintf(dir, sizeof(dir), ".");
		else
			(void)snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path),
				       path);
		if (access(dir, W_OK | X_OK) == 0)
			return 0;
	}
	zg_seterr(err, errlen, "audit: %s: cannot open: %s", path, strerror(errno));
	return ZG_ERR_CONFIG;
}

static int open_audit(struct conn *cn, char *err, size_t errlen)
{
	struct audit_config ac;
	int fd = STDOUT_FILENO;

	cn->audit_fd = -1;
	if (strcmp(cn->cfg.audit, "-") != 0) {
		fd = open(cn->cfg.audit, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			zg_seterr(err, errlen, "audit: %s: cannot open: %s", cn->cfg.audit,
				  strerror(errno));
			return ZG_ERR_CONFIG;
		}
		cn->audit_fd = fd;
	}
	if (audit_out_open(fd, &cn->aout) != 0) {
		zg_seterr(err, errlen, "audit: %s: cannot prepare it for writing", cn->cfg.audit);
		return ZG_ERR_IO;
	}
	memset(&ac, 0, sizeof(ac));
	ac.write = audit_out_write;
	ac.write_ctx = &cn->aout;
	ac.deny_per_s = 10;
	return audit_new(&ac, &cn->audit);
}

static int run(struct conn *cn, char *err, size_t errlen)
{
	struct inner_config ic;
	int r;

	if ((cn->base = masque_udp_base_new()) == NULL) {
		zg_seterr(err, errlen, "no event base");
		return ZG_ERR_NOMEM;
	}
	if ((r = open_audit(cn, err, errlen)) != 0)
		return r;
	memset(&ic, 0, sizeof(ic));
	ic.base = cn->base;
	ic.tls = cn->tls.server;
	ic.policy = cn->pol;
	ic.prefixes = cn->cfg.prefixes;
	ic.nprefixes = cn->cfg.nprefixes;
	ic.audit = cn->audit;
	ic.idle_timeout_ms = cn->cfg.idle_timeout_ms;
	ic.max_conns_per_agent = cn->cfg.max_conns_per_agent;
	ic.request_timeout_ms = cn->cfg.request_timeout_ms;
	if ((r = inner_new(&ic, &cn->in)) != 0) {
		zg_seterr(err, errlen, "stack: %s", zg_strerror(r));
		return r;
	}
	if ((r = ops_new(cn->base, cn->cfg.ops_listen, metrics_cb, cn, &cn->ops)) != 0) {
		zg_seterr(err, errlen, "ops_listen %s: %s", cn->cfg.ops_listen,
			  r == ZG_ERR_IO ? strerror(errno) : zg_strerror(r));
		return ZG_ERR_CONFIG;
	}
	cn->cbs.on_open = on_open;
	cn->cbs.on_addresses = on_addresses;
	cn->cbs.on_packet = on_packet;
	cn->cbs.on_close = on_close;
	cn->cbs.on_goaway = on_goaway;
	ops_set_ready_note(cn->ops, ready_note);
	cn->sigterm = evsignal_new(cn->base, SIGTERM, stop_cb, cn);
	cn->sigint = evsignal_new(cn->base, SIGINT, stop_cb, cn);
	cn->sighup = evsignal_new(cn->base, SIGHUP, sighup_cb, cn);
	if (cn->sigterm == NULL || cn->sigint == NULL || cn->sighup == NULL)
		return ZG_ERR_NOMEM;
	evsignal_add(cn->sigterm, NULL);
	evsignal_add(cn->sigint, NULL);
	evsignal_add(cn->sighup, NULL);
	{
		const char *files[3];

		if (filewatch_new(cn->base, files, conn_tls_files(&cn->cfg, files), TLS_DEBOUNCE_MS,
				  tls_files_changed, cn, &cn->fw, err, errlen) != 0)
			log_warnx("%s: changes of the TLS files are not noticed by themselves "
				  "(SIGHUP reloads them)",
				  err);
	}
	audit_relay_start(cn->audit, ZG_VERSION, "", cn->cfg.ops_listen, NULL, (long)getpid());
	for (size_t i = 0; i < cn->cfg.relays.n; i++) {
		struct rl *rl = &cn->rl[i];

		rl->cn = cn;
		rl->e = &cn->cfg.relays.e[i];
		for (int k = 0; k < 2; k++) {
			rl->t[k].r = rl;
			rl->t[k].slot = k;
		}
		handover_init(&rl->ho, cn->cfg.reconnect_min_ms, cn->cfg.reconnect_max_ms,
			      (uint64_t)REPLACE_GRACE_MS * 1000000u);
		if ((rl->retry_ev = evtimer_new(cn->base, retry_cb, rl)) == NULL ||
		    (rl->reap_ev = evtimer_new(cn->base, reap_cb, rl)) == NULL ||
		    (rl->grace_ev = evtimer_new(cn->base, grace_cb, rl)) == NULL)
			return ZG_ERR_NOMEM;
		start_connect(rl);
	}
	log_info("zgate-connector %s: %zu relays, %zu prefixes, ops on %s, identity %s, "
		 "certificate %s (serial %s)",
		 ZG_VERSION, cn->cfg.relays.n, cn->cfg.nprefixes, cn->cfg.ops_listen, cn->tls.id,
		 cn->cfg.cert, cn->tls.cert.serial);
	event_base_dispatch(cn->base);
	return 0;
}

static void cleanup(struct conn *cn, uint64_t started)
{
	cn->stopping = 1;
	filewatch_del(cn->fw);
	cn->fw = NULL;
	for (size_t i = 0; i < cn->cfg.relays.n; i++) {
		struct rl *r = &cn->rl[i];
		struct event *evs[] = { r->retry_ev, r->reap_ev, r->grace_ev };

		for (size_t k = 0; k < sizeof(evs) / sizeof(evs[0]); k++)
			if (evs[k] != NULL)
				event_free(evs[k]);
		r->retry_ev = r->reap_ev = r->grace_ev = NULL;
		for (int k = 0; k < 2; k++) {
			struct tunnel *t = &r->t[k];

			if (t->r == NULL)
				continue; /* never set up */
			inner_down(t);
			masque_udp_del(t->u); /* on_close fires, sees stopping */
			t->u = NULL;
			masque_udp_del(t->dead);
			t->dead = NULL;
		}
	}
	if (cn->audit != NULL)
		audit_relay_stop(cn->audit, "signal", (masque_udp_now() - started) / 1000000);
	inner_del(cn->in);
	ops_del(cn->ops);
	if (cn->audit != NULL) {
		(void)audit_drain(cn->audit);
		audit_free(cn->audit);
		audit_out_close(&cn->aout);
	}
	if (cn->audit_fd >= 0)
		close(cn->audit_fd);
	if (cn->sigterm)
		event_free(cn->sigterm);
	if (cn->sigint)
		event_free(cn->sigint);
	if (cn->sighup)
		event_free(cn->sighup);
	policy_free(cn->pol);
	conn_tls_free(&cn->tls);
	if (cn->base)
		event_base_free(cn->base);
}

int main(int argc, char **argv)
{
	static struct conn cn;
	const char *file = "/etc/zgate/zgate-connector.yaml", *key = NULL;
	char err[1024], v[1024];
	enum log_level lvl;
	int check = 0, r;
	uint64_t started = masque_udp_now();

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage();
			return OPT_EXIT_OK;
		}
		if (strcmp(argv[i], "--version") == 0) {
			(void)opt_version("zgate-connector", v, sizeof(v));
			fputs(v, stdout);
			return OPT_EXIT_OK;
		}
	}
	for (int i = 1; i < argc; i++) {
		int valued = strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 ||
			     strcmp(argv[i], "--key") == 0;

		if (valued && i + 1 == argc) {
			/* as the other programs say it (opt.c) */
			fprintf(stderr, "zgate-connector: %s needs a value (see --help)\n",
				argv[i]);
			return OPT_EXIT_USAGE;
		}
		if (strcmp(argv[i], "--check-config") == 0)
			check = 1;
		else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
			file = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
		else if (strcmp(argv[i], "--key") == 0)
			key = argv[++i];
		else if (strncmp(argv[i], "--key=", 6) == 0)
			key = argv[i] + 6;
		else {
			fprintf(stderr, "zgate-connector: unexpected argument \"%s\" (see --help)\n",
				argv[i]);
			return OPT_EXIT_USAGE;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	conn_config_defaults(&cn.cfg);
	cn.audit_fd = -1;
	if (key != NULL && strlen(key) >= sizeof(cn.cfg.key)) {
		fprintf(stderr, "zgate-connector: --key: path longer than %zu bytes\n",
			sizeof(cn.cfg.key) - 1);
		return OPT_EXIT_USAGE;
	}
	/* --key stands in for the file's key (systemd's credential path) */
	if (key != NULL)
		(void)snprintf(cn.cfg.key, sizeof(cn.cfg.key), "%s", key);
	if ((r = conn_config_load_file(&cn.cfg, file, err, sizeof(err))) == 0 && key != NULL)
		(void)snprintf(cn.cfg.key, sizeof(cn.cfg.key), "%s", key);
	if (r != 0 ||
	    (r = load_files(&cn, err, sizeof(err))) != 0) {
		fprintf(stderr, "zgate-connector: %s\n", err);
		cleanup(&cn, started);
		return OPT_EXIT_USAGE;
	}
	if (log_level_parse(cn.cfg.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (cn.tls.warning[0] != '\0') /* --check-config too: a doubt, not an error */
		log_warnx("%s", cn.tls.warning);
	if (check && check_audit(&cn, err, sizeof(err)) != 0) {
		fprintf(stderr, "zgate-connector: %s\n", err);
		cleanup(&cn, started);
		return OPT_EXIT_USAGE;
	}
	if (check) {
		printf("%s: configuration ok (%zu relays, %zu prefixes, policy %s: %zu clients)\n",
		       file, cn.cfg.relays.n, cn.cfg.nprefixes, cn.cfg.policy,
		       policy_client_count(cn.pol));
		cleanup(&cn, started);
		return OPT_EXIT_OK;
	}
	r = run(&cn, err, sizeof(err));
	if (r != 0)
		fprintf(stderr, "zgate-connector: %s\n", err);
	cleanup(&cn, started);
	return opt_exit_code(r);
}
