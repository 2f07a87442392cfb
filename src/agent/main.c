/*
 * zgate-agent — the user's side of zgate: a TUN device whose packets travel
 * to a zgate relay in a CONNECT-IP tunnel (RFC 9484) over HTTP/3.
 *
 * One thread, one libevent loop. The TUN descriptor is read in batches
 * into one buffer and each packet goes to masque_conn_send(); packets from
 * the tunnel are written to the TUN from the transport's buffer. Nothing
 * is allocated per packet.
 *
 * The relay's ADDRESS_ASSIGN becomes the TUN's address and its
 * ROUTE_ADVERTISEMENT the routes through the TUN (routes.h), each new one
 * applied as a difference against what is installed. When an installed
 * route covers the relay itself (a full tunnel), a host route to the relay
 * through the path the kernel used before keeps the tunnel's own packets
 * out of it.
 *
 * When the connection ends the TUN, its address and its routes stay (the
 * packets read meanwhile are dropped and counted) and a libevent timer
 * reconnects, asking for the same address again: to the next relay of
 * the list at once while one is left untried, then with capped
 * exponential backoff and jitter (failover.h). SIGTERM/SIGINT remove
 * exactly what the agent added and exit 0.
 *
 * SIGHUP, and a change of the certificate, key, CA or connector CA files
 * (filewatch.h), load them again into a new TLS context used from the
 * next handshake on, and the inner contexts of the connectors
 * (connectors.h) for their next inner session; the open tunnel and inner
 * sessions keep the contexts they were made with (wolfSSL counts the
 * references), so rotating a certificate never drops them. Files that do
 * not load keep the contexts in use, and the log and status file say why.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "agent/agent_config.h"
#include "agent/failover.h"
#include "agent/agentdns.h"
#include "agent/backoff.h"
#include "agent/connectors.h"
#include "agent/filewatch.h"
#include "agent/netlink.h"
#include "agent/ptb.h"
#include "agent/routepace.h"
#include "agent/routes.h"
#include "agent/status.h"
#include "agent/tun.h"
#include "agent/tungro.h"
#include "log.h"
#include "opt.h"
#include "masque/masque.h"
#include "masque/tls.h"
#include "masque/udp.h"
#include "masque/uri.h"
#include "zgconn.h"
#include "zg_err.h"

extern char **environ;

#define MAX_PREFIXES 4096                                 /* kernel routes from one advertisement */
#define MAX_ROUTES (MAX_PREFIXES + CONNECTORS_ROUTES_MAX) /* and the connectors' */
#define TUN_BATCH 64                                      /* packets read per wake-up */
#define PTB_PER_SECOND 100                                /* ICMP "too big" answers, at most */
#define STABLE_NS (10ull * 1000000000ull)                 /* a tunnel this old resets the backoff */
#define REFRESH_S 5                                       /* status file refresh while counters move */
#define ROUTE_REFUSED_MAX 64                              /* refused routes listed in the status file */
#define REFUSAL_LOG_MAX 16                                /* refusals logged one by one per advertisement */
#define CERT_DEBOUNCE_MS 500                              /* certificate files settle this long before a reload */

struct agent {
	struct agent_config cfg;
	struct event_base *base;
	WOLFSSL_CTX *tls;
	struct masque_config mc; /* the transport keeps a pointer to it */
	struct masque_cbs cbs;
	char authority[300], path[AGENT_CONFIG_PATH_MAX + 64];

	struct masque_udp *u;    /* the current connection's socket */
	struct masque_udp *dead; /* a closed one, freed by the retry timer */
	struct masque_conn *c;   /* NULL while there is none */
	int open;                /* the tunnel is open */
	int goaway;              /* the relay said it is going away */
	masque_time opened_at;

	int tun_fd, ifindex, link_up;
	/* A persistent TUN that existed before: its state is restored. */
	int tun_existed, tun_was_up, tun_flags_known;
	unsigned tun_old_flags;
	uint32_t tun_old_mtu;
	char tun[IFNAMSIZ];
	uint32_t mtu;
	struct nl *nl;
	struct event *tun_ev, *retry_ev, *refresh_ev, *sigterm_ev, *sigint_ev, *flush_ev;
	struct event *sighup_ev;
	struct event *pace_ev; /* a route change waiting for its turn (routepace.h) */
	struct routepace pace; /* route sets applied at a bounded rate */
	int relay_routes_new;  /* relay_pfx changed since the last route set applied */
	struct filewatch *fw;  /* the certificate files' directories */
	uint64_t cert_sum;     /* contents of cert, key, CA and connector CA last loaded (or tried) */
	struct tungro *gro;    /* TUN writes of this loop pass */
	int tun_paused;        /* not reading the TUN while the transport is congested */
	struct failover fo;    /* which relay of the list, and when (failover.h) */
	int stopping;
	struct agentdns *dns; /* DNS from the relay (19.5) */

	/* What the agent added to the kernel, and nothing else. */
	struct route_prefix addrs[MASQUE_MAX_ADDRS];
	size_t naddrs;
	struct route_prefix routes[MAX_ROUTES];
	size_t nroutes;
	int have_relay_rt;
	struct route_prefix relay_rt; /* as installed: */
	int rt_oif, rt_has_gw;
	uint8_t rt_gw[16];
	/* How the relay was reached before the tunnel's routes: the path the
	 * host route takes. */
	struct route_prefix relay_addr; /* version 0 = unknown */
	int relay_path_ok, relay_has_gw, relay_oif;
	uint8_t relay_gw[16];

	/* What the relay last assigned (host prefixes are what is installed)
	 * and what of its assignment and advertisement the agent refused. */
	struct route_prefix offered[MASQUE_MAX_ADDRS];
	size_t noffered;
	int routes_known; /* an advertisement has been applied */
	struct status_refusal addr_ref[MASQUE_MAX_ADDRS];
	size_t naddr_ref;
	struct status_refusal route_ref[ROUTE_REFUSED_MAX];
	size_t nroute_ref, route_ref_unlisted;

	const char *state;
	int64_t since;
	struct status_counters cnt;
	uint64_t written_gen;
	char last_error[512];
	int status_failed;
	masque_time ptb_window;
	unsigned ptb_count;

	/* reads: the TUN's virtio_net_hdr, then the packet */
	uint8_t rbuf[TUNGRO_VNET_LEN + 65536];
	uint8_t seg[65536]; /* one packet cut from rbuf */
	uint8_t icmp[TUNGRO_VNET_LEN + PTB_MAX];
	struct route_prefix want[MAX_ROUTES], del[MAX_ROUTES], add[MAX_ROUTES];
	struct route_prefix diff_scratch[MAX_ROUTES]; /* routes_diff's sorted copies */
	/* the relay's advertisement as prefixes, before filtering: the
	 * connectors' prefixes (connectors.h) are routed beside them */
	struct route_prefix relay_pfx[MAX_PREFIXES];
	size_t nrelay_pfx;
	struct connectors *cx; /* end-to-end sessions with connectors (issue 22) */
	struct connector_status cxst[ZGCONN_MAX];
};

static void start_connect(struct agent *ag);

/* The relay being tried or used. */
static const struct relay_entry *cur_relay(const struct agent *ag)
{
	return &ag->cfg.relays.e[ag->fo.cur];
}

/* ------------------------------------------------------------------ */
/* status                                                             */

static uint64_t counters_gen(struct agent *ag)
{
	const struct status_counters *c = &ag->cnt;

	return c->tx_packets + c->rx_packets + c->drop_outage + c->drop_too_big +
	       c->drop_congested + c->drop_tun_write + c->drop_not_ours + c->drop_malformed +
	       c->connects;
}

static void write_status(struct agent *ag)
{
	struct status_info st;
	struct status_quic q;
	struct status_refusal ref[MASQUE_MAX_ADDRS + ROUTE_REFUSED_MAX];
	char buf[8192], *big = NULL, *out = buf;
	size_t n = 0;
	int r;

	if (ag->cfg.status_file[0] == '\0')
		return;
	ag->cnt.route_changes = ag->pace.cnt.requested;
	ag->cnt.route_sets_applied = ag->pace.cnt.applied;
	ag->cnt.route_changes_coalesced = ag->pace.cnt.coalesced;
	memset(&st, 0, sizeof(st));
	st.state = ag->state;
	st.since = ag->since;
	st.pid = (long)getpid();
	st.updated = (int64_t)time(NULL);
	st.relay = cur_relay(ag)->text;
	st.relays = &ag->cfg.relays;
	st.relay_index = ag->fo.cur;
	st.relay_switches = ag->fo.switches;
	st.tun = ag->tun;
	st.mtu = ag->mtu;
	st.addrs = ag->addrs;
	st.naddrs = ag->naddrs;
	st.routes = ag->routes;
	st.nroutes = ag->nroutes;
	st.relay_route = ag->have_relay_rt ? &ag->relay_rt : NULL;
	memcpy(ref, ag->addr_ref, ag->naddr_ref * sizeof(ref[0]));
	memcpy(ref + ag->naddr_ref, ag->route_ref, ag->nroute_ref * sizeof(ref[0]));
	st.refused = ref;
	st.nrefused = ag->naddr_ref + ag->nroute_ref;
	st.refused_unlisted = ag->route_ref_unlisted;
	st.c = &ag->cnt;
	st.last_error = ag->last_error;
	if (ag->dns != NULL) {
		const struct agentdns_state *ds = agentdns_state(ag->dns);

		st.dns_via = ds->via;
		st.dns = ds->server_p;
		st.ndns = ds->nservers;
		st.dns_domains = ds->domain_p;
		st.ndns_domains = ds->ndomains;
	}
	if (ag->cx != NULL) {
		st.nconnectors = connectors_count(ag->cx);
		for (size_t i = 0; i < st.nconnectors; i++)
			connectors_status(ag->cx, i, &ag->cxst[i]);
		st.connectors = ag->cxst;
	}
	if (ag->c != NULL && ag->open) {
		struct masque_stats ms;

		masque_conn_stats(ag->c, &ms);
		q.srtt_us = ms.srtt_ns / 1000;
		q.min_rtt_us = ms.min_rtt_ns / 1000;
		q.cwnd = ms.cwnd;
		q.bytes_in_flight = ms.bytes_in_flight;
		q.packets_sent = ms.quic_sent;
		q.packets_lost = ms.quic_lost;
		q.queued_bytes = ms.queued;
		q.next_timer_us = ms.timer_in_ns == UINT64_MAX ? -1 : (int64_t)(ms.timer_in_ns / 1000);
		q.tun_paused = ag->tun_paused;
		st.quic = &q;
	}
	r = status_format(&st, buf, sizeof(buf), &n);
	if (r == ZG_ERR_BUFSHORT) { /* thousands of routes: rare, not per packet */
		size_t cap = 256 + (ag->nroutes + ag->naddrs) * 48 + st.nrefused * 80;

		big = malloc(cap);
		if (big != NULL && status_format(&st, big, cap, &n) == 0) {
			out = big;
			r = 0;
		}
	}
	if (r == 0 && status_write_file(ag->cfg.status_file, out, n) == 0) {
		if (ag->status_failed)
			log_info("status file %s written again", ag->cfg.status_file);
		ag->status_failed = 0;
		ag->written_gen = counters_gen(ag);
	} else if (!ag->status_failed) {
		log_warn("cannot write the status file %s", ag->cfg.status_file);
		ag->status_failed = 1;
	}
	free(big);
}

/* One stderr line per state change, and the status file. */
static void set_state(struct agent *ag, const char *state, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_state(struct agent *ag, const char *state, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	ag->state = state;
	ag->since = (int64_t)time(NULL);
	log_info("state %s: %s", state, detail);
	write_status(ag);
}

static void set_error(struct agent *ag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct agent *ag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(ag->last_error, sizeof(ag->last_error), fmt, ap);
	va_end(ap);
}

static void refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;
	(void)fd;
	(void)what;
	/* while a tunnel is open its QUIC state moves even when no packet
	 * does (a stall is when it matters most) */
	if (counters_gen(ag) != ag->written_gen || (ag->c != NULL && ag->open))
		write_status(ag);
}

/* ------------------------------------------------------------------ */
/* addresses and routes                                               */

static const char *fmt_prefix(const struct route_prefix *p)
{
	static char s[4][64];
	static unsigned i;

	i = (i + 1) % 4;
	return routes_format(p, s[i], sizeof(s[i]));
}

/* Was p refused for why in old[0..n) (then it is not logged again)? */
static int was_refused(const struct status_refusal *old, size_t n, const struct route_prefix *p,
		       enum route_refusal why)
{
	for (size_t i = 0; i < n; i++)
		if (old[i].why == why && routes_equal(&old[i].p, p))
			return 1;
	return 0;
}

/* One line naming the relay, what it sent and why it is not installed.
 * The tunnel stays up: what was refused is simply not used (README). */
static void refusal_log(struct agent *ag, int route, const struct route_prefix *p,
			enum route_refusal why)
{
	log_warnx("relay %s (%s) %s %s: refused, %s; not installed", cur_relay(ag)->text,
		  ag->relay_addr.version ? fmt_prefix(&ag->relay_addr) : "address unknown",
		  route ? "advertised the route" : "assigned the address", fmt_prefix(p),
		  routes_refusal_why(why));
	set_error(ag, "refused the relay's %s %s: %s", route ? "route" : "address", fmt_prefix(p),
		  routes_refusal_name(why));
}

/* Learns how the kernel reaches the relay now, before any route of ours
 * can capture it. When the answer is our own TUN (routes installed for an
 * earlier relay of the list cover this one: a full tunnel), the relay is
 * taken to be reached the way the earlier one was. */
static void learn_relay_path(struct agent *ag, const struct sockaddr *sa)
{
	struct route_prefix a;
	uint8_t gw[16], had_gw[16];
	int has_gw = 0, oif = 0, had = ag->relay_path_ok, had_has_gw = ag->relay_has_gw;
	int had_oif = ag->relay_oif;
	unsigned had_version = ag->relay_addr.version;

	memset(&a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		a.version = 4;
		a.len = 32;
		memcpy(a.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		a.version = 6;
		a.len = 128;
		memcpy(a.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else {
		return;
	}
	if (ag->relay_path_ok && routes_equal(&a, &ag->relay_addr))
		return;
	memcpy(had_gw, ag->relay_gw, sizeof(had_gw));
	ag->relay_addr = a;
	ag->relay_path_ok = 0;
	if (nl_route_get(ag->nl, a.version, a.addr, gw, &has_gw, &oif) != 0) {
		log_warn("no route to the relay %s", fmt_prefix(&a));
		return;
	}
	if (oif == ag->ifindex && had && had_version == a.version) {
		ag->relay_path_ok = 1;
		ag->relay_has_gw = had_has_gw;
		ag->relay_oif = had_oif;
		memcpy(ag->relay_gw, had_gw, sizeof(had_gw));
		log_info("the relay %s is routed through %s: it is reached the way the previous "
			 "relay was",
			 fmt_prefix(&a), ag->tun);
		return;
	}
	if (oif == ag->ifindex) {
		log_warnx("the relay %s is routed through %s itself; a full tunnel would loop",
			  fmt_prefix(&a), ag->tun);
		return;
	}
	ag->relay_path_ok = 1;
	ag->relay_has_gw = has_gw;
	ag->relay_oif = oif;
	memcpy(ag->relay_gw, gw, sizeof(gw));
}

static void relay_route_del(struct agent *ag)
{
	if (!ag->have_relay_rt)
		return;
	if (nl_route(ag->nl, 0, ag->rt_oif, &ag->relay_rt, ag->rt_has_gw ? ag->rt_gw : NULL) != 0 &&
	    errno != ESRCH)
		log_warn("cannot remove the relay route %s", fmt_prefix(&ag->relay_rt));
	else
		log_info("relay route %s removed", fmt_prefix(&ag->relay_rt));
	ag->have_relay_rt = 0;
}

/* Adds the host route to the relay when routes in want[0..n) cover it.
 * Returns 0 when the relay's path stays outside the tunnel (not covered,
 * or pinned), -1 when they cover it and it cannot be pinned. */
static int relay_route_update(struct agent *ag, const struct route_prefix *want, size_t n)
{
	char gw[INET6_ADDRSTRLEN] = "", dev[IF_NAMESIZE] = "?";
	int need = 0;

	for (size_t i = 0; i < n && ag->relay_addr.version != 0; i++)
		need |= routes_covers(&want[i], &ag->relay_addr);
	/* another relay's; one no route covers any more goes once the
	 * covering routes are gone (relay_route_prune) */
	if (ag->have_relay_rt && !routes_equal(&ag->relay_rt, &ag->relay_addr))
		relay_route_del(ag);
	if (!need || ag->have_relay_rt)
		return 0;
	if (!ag->relay_path_ok) {
		log_warnx("the advertised routes cover the relay %s and its path is unknown",
			  fmt_prefix(&ag->relay_addr));
		return -1;
	}
	if (nl_route(ag->nl, 1, ag->relay_oif, &ag->relay_addr,
		     ag->relay_has_gw ? ag->relay_gw : NULL) != 0) {
		if (errno == EEXIST) {
			log_info("a route to the relay %s exists already; leaving it",
				 fmt_prefix(&ag->relay_addr));
			return 0;
		}
		log_warn("cannot add the relay route %s", fmt_prefix(&ag->relay_addr));
		return -1;
	}
	ag->have_relay_rt = 1;
	ag->relay_rt = ag->relay_addr;
	ag->rt_oif = ag->relay_oif;
	ag->rt_has_gw = ag->relay_has_gw;
	memcpy(ag->rt_gw, ag->relay_gw, sizeof(ag->rt_gw));
	if (ag->relay_has_gw)
		inet_ntop(ag->relay_addr.version == 4 ? AF_INET : AF_INET6, ag->relay_gw, gw,
			  sizeof(gw));
	(void)if_indextoname((unsigned)ag->relay_oif, dev);
	log_info("relay route %s%s%s dev %s added", fmt_prefix(&ag->relay_rt), gw[0] ? " via " : "",
		 gw, dev);
	return 0;
}

/* Removes the relay's host route when none of the installed routes covers
 * the relay any more. */
static void relay_route_prune(struct agent *ag)
{
	if (!ag->have_relay_rt)
		return;
	for (size_t i = 0; i < ag->nroutes; i++)
		if (routes_covers(&ag->routes[i], &ag->relay_rt))
			return;
	relay_route_del(ag);
}

/* Removes entries of list[0..*pn) equal to one of drop[0..nd) (which it
 * sorts). */
static void remove_all(struct route_prefix *list, size_t *pn, struct route_prefix *drop,
		       size_t nd)
{
	size_t k = 0;

	routes_sort(drop, nd); /* a relay may replace thousands of routes at once */
	for (size_t i = 0; i < *pn; i++)
		if (!routes_find(drop, nd, &list[i]))
			list[k++] = list[i];
	*pn = k;
}

/* Adds route p to the TUN; 1 when it is now ours. */
static int route_add(struct agent *ag, const struct route_prefix *p)
{
	if (nl_route(ag->nl, 1, ag->ifindex, p, NULL) != 0) {
		if (errno == EEXIST) {
			log_warnx("route %s exists already (not ours); leaving it", fmt_prefix(p));
		} else {
			log_warn("cannot add route %s", fmt_prefix(p));
			set_error(ag, "cannot add route %s: %s", fmt_prefix(p), strerror(errno));
		}
		return 0;
	}
	ag->routes[ag->nroutes++] = *p;
	return 1;
}

/* Makes the installed routes equal want[0..n) (C07: each advertisement is
 * the full list): the relay's host route first when one is needed, then
 * the new routes, then the old ones go (so that, while a range is cut
 * differently, its traffic never leaves outside the tunnel), and last the
 * relay's host route when nothing covers the relay any more. */
static void apply_routes(struct agent *ag, const struct route_prefix *want, size_t n)
{
	size_t nd = 0, na = 0, ok = 0, i = 0;

	(void)relay_route_update(ag, want, n); /* covering routes were dropped when it failed */
	routes_diff(ag->routes, ag->nroutes, want, n, ag->diff_scratch, ag->del, &nd, ag->add,
		    &na);
	for (; i < na && ag->nroutes < MAX_ROUTES; i++)
		ok += (size_t)route_add(ag, &ag->add[i]);
	for (size_t j = 0; j < nd; j++) {
		if (nl_route(ag->nl, 0, ag->ifindex, &ag->del[j], NULL) != 0 && errno != ESRCH)
			log_warn("cannot remove route %s", fmt_prefix(&ag->del[j]));
		else
			log_info("route %s dev %s removed", fmt_prefix(&ag->del[j]), ag->tun);
	}
	remove_all(ag->routes, &ag->nroutes, ag->del, nd);
	for (; i < na; i++) /* those there was no room for before */
		ok += (size_t)route_add(ag, &ag->add[i]);
	relay_route_prune(ag);
	if (nd + na > 0)
		log_info("routes: %zu through %s (%zu added, %zu removed)", ag->nroutes, ag->tun,
			 ok, nd);
}

/* Records a refused route; logs it unless the previous advertisement's
 * was the same, and only the first few of one advertisement. */
static void refuse_route(struct agent *ag, const struct status_refusal *old, size_t nold,
			 size_t *plogged, const struct route_prefix *p, enum route_refusal why)
{
	if (ag->nroute_ref < ROUTE_REFUSED_MAX)
		ag->route_ref[ag->nroute_ref++] = (struct status_refusal){ *p, 1, (uint8_t)why };
	else
		ag->route_ref_unlisted++;
	if (was_refused(old, nold, p, why))
		return;
	if (++*plogged <= REFUSAL_LOG_MAX)
		refusal_log(ag, 1, p, why);
}

/* What the kernel says of the ends of an advertised route p: ROUTE_OK, a
 * refusal (another interface's route it would take traffic from), or -1
 * when it cannot be asked (not installed). */
static int kernel_route_check(struct agent *ag, const struct route_prefix *p)
{
	struct route_prefix ends[2] = { routes_host(p), routes_last(p) };
	int n = routes_equal(&ends[0], &ends[1]) ? 1 : 2; /* a host route has one */
	struct route_lookup k;

	for (int i = 0; i < n; i++) {
		enum route_refusal why;

		if (nl_route_match(ag->nl, &ends[i], &k) != 0) {
			log_warn("cannot ask the kernel how it routes %s; not installing route %s",
				 fmt_prefix(&ends[i]), fmt_prefix(p));
			set_error(ag, "cannot check route %s: %s", fmt_prefix(p), strerror(errno));
			return -1;
		}
		why = routes_check_kernel_route(&k, p, ag->ifindex);
		if (why != ROUTE_OK)
			return (int)why;
	}
	return ROUTE_OK;
}

/* Drops from want[0..*pn) what the agent does not install (routes.h),
 * the routes covering the relay too when its path cannot be pinned. */
static void filter_routes(struct agent *ag, struct route_prefix *want, size_t *pn)
{
	static struct status_refusal old[ROUTE_REFUSED_MAX];
	static struct route_prefix mine[MAX_ROUTES]; /* the installed routes, sorted */
	size_t nold = ag->nroute_ref, k = 0, logged = 0, nmine = ag->nroutes;
	const struct agent_accept *acc = &ag->cfg.accept_routes;

	memcpy(old, ag->route_ref, nold * sizeof(old[0]));
	memcpy(mine, ag->routes, nmine * sizeof(mine[0]));
	routes_sort(mine, nmine);
	ag->nroute_ref = 0;
	ag->route_ref_unlisted = 0;
	for (size_t i = 0; i < *pn; i++) {
		int why = want[i].version == 6 && !ag->cfg.ipv6
				  ? ROUTE_IPV6_OFF
				  : (int)routes_check_route(&want[i], &ag->relay_addr, acc->p, acc->n,
							    acc->filter);

		/* the kernel is asked about new routes only: one already
		 * ours passed when it was added, and a relay learning names
		 * sends the whole list again for each new one */
		if (why == ROUTE_OK && !routes_find(mine, nmine, &want[i]))
			why = kernel_route_check(ag, &want[i]);
		if (why < 0)
			continue;
		if (why != ROUTE_OK)
			refuse_route(ag, old, nold, &logged, &want[i], (enum route_refusal)why);
		else
			want[k++] = want[i];
	}
	*pn = k;
	if (relay_route_update(ag, want, *pn) != 0) {
		k = 0;
		for (size_t i = 0; i < *pn; i++) {
			if (routes_covers(&want[i], &ag->relay_addr))
				refuse_route(ag, old, nold, &logged, &want[i], ROUTE_COVERS_RELAY);
			else
				want[k++] = want[i];
		}
		*pn = k;
	}
	if (logged > REFUSAL_LOG_MAX)
		log_warnx("relay %s: %zu more routes refused (the status file lists up to %d)",
			  cur_relay(ag)->text, logged - REFUSAL_LOG_MAX, ROUTE_REFUSED_MAX);
}

static void apply_addresses(struct agent *ag);
static void update_want(struct agent *ag);

/* Installs the relay's routes and those of the up connectors (each
 * checked like an advertised route), as one full list. */
static void reroute(struct agent *ag)
{
	size_t k = ag->nrelay_pfx, nc, end;

	memcpy(ag->want, ag->relay_pfx, k * sizeof(ag->want[0]));
	nc = ag->cx != NULL ? connectors_routes(ag->cx, ag->want + k, MAX_ROUTES - k) : 0;
	/* the connectors' routes are want[k, end): those the relay's do not
	 * have move down. (The bound was k + nc with k growing: entries past
	 * the connectors', left from an earlier list or never set (::/0),
	 * were installed too, and a prefix a connector withdrew stayed.) */
	end = k + nc;
	for (size_t i = k; i < end; i++) {
		int dup = 0;

		for (size_t j = 0; j < k && !dup; j++)
			dup = routes_equal(&ag->want[j], &ag->want[i]);
		if (!dup)
			ag->want[k++] = ag->want[i];
	}
	filter_routes(ag, ag->want, &k);
	apply_routes(ag, ag->want, k);
}

/* Applies the relay's latest advertisement (relay_pfx) and the
 * connectors' routes as they are now: one route set. */
static void routes_apply(struct agent *ag)
{
	reroute(ag);
	if (ag->relay_routes_new) {
		ag->relay_routes_new = 0;
		ag->routes_known = 1;
		/* a global address is taken only where the tunnel routes it */
		apply_addresses(ag);
		update_want(ag);
	}
	write_status(ag);
}

static uint64_t now_ms(void)
{
	return masque_udp_now() / 1000000u;
}

/* Arms the route timer for due (milliseconds, now_ms()'s clock). */
static void pace_arm(struct agent *ag, uint64_t due)
{
	uint64_t now = now_ms(), ms = due > now ? due - now : 0;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (evtimer_add(ag->pace_ev, &tv) != 0)
		log_warnx("cannot arm the route timer: the waiting route change is applied with the "
			  "next one");
}

/* The routes changed (an advertisement, the connectors): applied now, or
 * when routepace gives the next turn (the latest state then). */
static void routes_changed(struct agent *ag)
{
	uint64_t due = 0;

	if (routepace_request(&ag->pace, now_ms(), &due)) {
		routes_apply(ag);
		return;
	}
	if (!evtimer_pending(ag->pace_ev, NULL))
		pace_arm(ag, due);
}

static void pace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;
	uint64_t due = 0;

	(void)fd;
	(void)what;
	if (ag->stopping)
		return;
	if (routepace_fire(&ag->pace, now_ms(), &due))
		routes_apply(ag);
	else if (routepace_pending(&ag->pace))
		pace_arm(ag, due);
}

static void on_routes(struct masque_conn *c, const struct cip_route *r, size_t n, void *ctx)
{
	struct agent *ag = ctx;
	size_t k = 0;
	int e;

	(void)c;
	ag->cnt.route_ads++;
	e = routes_from_ranges(r, n, ag->want, MAX_PREFIXES, &k);
	if (e != 0) {
		ag->cnt.route_ads_refused++;
		log_warnx("cannot install the relay's %zu ranges: %s; keeping the routes in place", n,
			  zg_strerror(e));
		set_error(ag, "route advertisement not applied: %s", zg_strerror(e));
		return;
	}
	memcpy(ag->relay_pfx, ag->want, k * sizeof(ag->want[0]));
	ag->nrelay_pfx = k;
	ag->relay_routes_new = 1;
	routes_changed(ag);
}

/* The ADDRESS_REQUEST of the next connection asks for what we hold (C10). */
static void update_want(struct agent *ag)
{
	int have4 = 0, have6 = 0;

	memset(ag->mc.want, 0, sizeof(ag->mc.want));
	ag->mc.nwant = 0;
	for (size_t i = 0; i < ag->naddrs; i++) {
		struct cip_addr *w = &ag->mc.want[ag->mc.nwant];

		if ((ag->addrs[i].version == 4 && have4) || (ag->addrs[i].version == 6 && have6) ||
		    (ag->addrs[i].version == 6 && !ag->cfg.ipv6))
			continue;
		w->version = ag->addrs[i].version;
		memcpy(w->addr, ag->addrs[i].addr, 16);
		w->prefix_len = ag->addrs[i].len;
		ag->mc.nwant++;
		have4 |= w->version == 4;
		have6 |= w->version == 6;
	}
	if (!have4) {
		ag->mc.want[ag->mc.nwant].version = 4;
		ag->mc.want[ag->mc.nwant++].prefix_len = 32;
	}
	if (!have6 && ag->cfg.ipv6) {
		ag->mc.want[ag->mc.nwant].version = 6;
		ag->mc.want[ag->mc.nwant++].prefix_len = 128;
	}
}

/* What the kernel says of h before it becomes an address of the TUN:
 * ROUTE_OK, a refusal, or -1 when it cannot be asked (not installed). */
static int kernel_check(struct agent *ag, const struct route_prefix *h)
{
	struct route_lookup k;

	if (nl_route_match(ag->nl, h, &k) != 0) {
		log_warn("cannot ask the kernel how it routes %s; not installing it", fmt_prefix(h));
		set_error(ag, "cannot check address %s: %s", fmt_prefix(h), strerror(errno));
		return -1;
	}
	return (int)routes_check_kernel(&k, ag->ifindex);
}

/* Makes the TUN's addresses those of ag->offered the agent accepts, each as
 * a host prefix without a prefix route (netlink.h). */
static void apply_addresses(struct agent *ag)
{
	struct route_prefix now[MASQUE_MAX_ADDRS], del[MASQUE_MAX_ADDRS], add[MASQUE_MAX_ADDRS];
	struct route_prefix scratch[MASQUE_MAX_ADDRS];
	struct status_refusal old[MASQUE_MAX_ADDRS];
	size_t nold = ag->naddr_ref, k = 0, nd = 0, na = 0;

	memcpy(old, ag->addr_ref, sizeof(old));
	ag->naddr_ref = 0;
	for (size_t i = 0; i < ag->noffered; i++) {
		const struct route_prefix *o = &ag->offered[i];
		struct route_prefix h = routes_host(o);
		int why = h.version == 6 && !ag->cfg.ipv6
				  ? ROUTE_IPV6_OFF
				  : (int)routes_check_address(&h, &ag->relay_addr, ag->routes,
							      ag->nroutes),
		    dup = 0;

		if (why == ROUTE_NOT_TUNNELED && !ag->routes_known) {
			log_debug("address %s: waiting for the relay's routes", fmt_prefix(o));
			continue;
		}
		if (why == ROUTE_OK)
			why = kernel_check(ag, &h);
		if (why < 0)
			continue;
		if (why != ROUTE_OK) {
			ag->addr_ref[ag->naddr_ref++] = (struct status_refusal){ *o, 0,
										 (uint8_t)why };
			if (!was_refused(old, nold, o, (enum route_refusal)why))
				refusal_log(ag, 0, o, (enum route_refusal)why);
			continue;
		}
		for (size_t j = 0; j < k && !dup; j++)
			dup = routes_equal(&now[j], &h);
		if (!dup)
			now[k++] = h;
	}
	routes_diff(ag->addrs, ag->naddrs, now, k, scratch, del, &nd, add, &na);
	/* The new addresses first: when the last IPv4 address of a device
	 * goes, the kernel flushes every IPv4 route through it (the relay's
	 * routes, which the agent believes installed), so a tunnel whose
	 * address changed (the shared pool gave another) would carry
	 * nothing. They join ag->addrs after the removals (what stays plus
	 * what was added is now[], at most MASQUE_MAX_ADDRS). */
	for (size_t i = 0; i < na; i++) {
		if (nl_addr(ag->nl, 1, ag->ifindex, &add[i]) != 0) {
			log_warn("cannot add address %s", fmt_prefix(&add[i]));
			set_error(ag, "cannot add address %s: %s", fmt_prefix(&add[i]),
				  strerror(errno));
			add[i].version = 0; /* not added */
			continue;
		}
		log_info("address %s on %s (no prefix route)", fmt_prefix(&add[i]), ag->tun);
	}
	for (size_t i = 0; i < nd; i++) {
		if (nl_addr(ag->nl, 0, ag->ifindex, &del[i]) != 0 && errno != EADDRNOTAVAIL)
			log_warn("cannot remove address %s", fmt_prefix(&del[i]));
		else
			log_info("address %s removed from %s", fmt_prefix(&del[i]), ag->tun);
	}
	remove_all(ag->addrs, &ag->naddrs, del, nd);
	for (size_t i = 0; i < na; i++)
		if (add[i].version != 0)
			ag->addrs[ag->naddrs++] = add[i];
}

/* The inner sessions start from the TUN's first address of each family. */
static void connectors_local(struct agent *ag)
{
	const struct route_prefix *v4 = NULL, *v6 = NULL;

	for (size_t i = 0; i < ag->naddrs; i++) {
		if (ag->addrs[i].version == 4 && v4 == NULL)
			v4 = &ag->addrs[i];
		if (ag->addrs[i].version == 6 && v6 == NULL)
			v6 = &ag->addrs[i];
	}
	if (ag->cx != NULL)
		connectors_set_local(ag->cx, v4, v6);
}

/* C08: a later ADDRESS_ASSIGN replaces the earlier set. */
static void on_addresses(struct masque_conn *c, const struct cip_addr *a, size_t n, void *ctx)
{
	struct agent *ag = ctx;
	static const uint8_t zero[16];

	(void)c;
	ag->noffered = 0;
	for (size_t i = 0; i < n && ag->noffered < MASQUE_MAX_ADDRS; i++) {
		struct route_prefix *p = &ag->offered[ag->noffered];
		int dup = 0;

		if (memcmp(a[i].addr, zero, cip_addr_len(a[i].version)) == 0) {
			log_info("the relay refused the request for an IPv%u address",
				 a[i].version); /* C09: all-zero answer */
			continue;
		}
		memset(p, 0, sizeof(*p));
		p->version = a[i].version;
		memcpy(p->addr, a[i].addr, 16);
		p->len = a[i].prefix_len;
		for (size_t j = 0; j < ag->noffered && !dup; j++)
			dup = routes_equal(&ag->offered[j], p);
		if (!dup)
			ag->noffered++;
	}
	apply_addresses(ag);
	update_want(ag);
	connectors_local(ag);
	write_status(ag);
}

/* Takes away everything the agent added, in reverse order. */
static void remove_all_added(struct agent *ag)
{
	struct route_prefix none;

	memset(&none, 0, sizeof(none));
	apply_routes(ag, &none, 0);
	relay_route_del(ag);
	for (size_t i = ag->naddrs; i-- > 0;)
		if (nl_addr(ag->nl, 0, ag->ifindex, &ag->addrs[i]) != 0 && errno != EADDRNOTAVAIL &&
		    errno != ENODEV)
			log_warn("cannot remove address %s", fmt_prefix(&ag->addrs[i]));
	ag->naddrs = 0;
}

/* ------------------------------------------------------------------ */
/* packets                                                            */

static void send_too_big(struct agent *ag, const uint8_t *pkt, size_t len, size_t max)
{
	masque_time now = masque_udp_now();
	size_t n = 0;

	if (now - ag->ptb_window > 1000000000ull) {
		ag->ptb_window = now;
		ag->ptb_count = 0;
	}
	if (ag->ptb_count >= PTB_PER_SECOND)
		return;
	memset(ag->icmp, 0, TUNGRO_VNET_LEN); /* no offload: checksums complete */
	if (ptb_build(pkt, len, (uint32_t)max, ag->icmp + TUNGRO_VNET_LEN,
		      sizeof(ag->icmp) - TUNGRO_VNET_LEN, &n) != 0 ||
	    n == 0)
		return;
	ag->ptb_count++;
	n += TUNGRO_VNET_LEN;
	if (write(ag->tun_fd, ag->icmp, n) == (ssize_t)n)
		ag->cnt.icmp_too_big++;
}

/* 1 when pkt's source is one of the addresses the relay assigned. */
static int source_is_ours(struct agent *ag, const uint8_t *pkt, size_t len)
{
	uint8_t v = (uint8_t)(pkt[0] >> 4);
	size_t i;

	if ((v == 4 && len < 20) || (v == 6 && len < 40) || (v != 4 && v != 6))
		return 0;
	for (i = 0; i < ag->naddrs; i++) {
		if (ag->addrs[i].version != v)
			continue;
		if (v == 4 ? memcmp(pkt + 12, ag->addrs[i].addr, 4) == 0
			   : memcmp(pkt + 8, ag->addrs[i].addr, 16) == 0)
			return 1;
	}
	return 0;
}

/* One IP packet from the TUN, into the tunnel. */
static void tun_packet(const uint8_t *pkt, size_t n, void *arg)
{
	struct agent *ag = arg;
	int r;

	/* a connector's prefix never goes to the relay in the clear */
	if (ag->cx != NULL && connectors_from_tun(ag->cx, pkt, n) != CONNECTORS_PASS)
		return;
	if (ag->c == NULL || !ag->open) {
		ag->cnt.drop_outage++;
		return;
	}
	if (!source_is_ours(ag, pkt, n)) {
		ag->cnt.drop_not_ours++;
		return;
	}
	r = masque_conn_send(ag->c, pkt, n);
	if (ag->c != NULL && masque_conn_congested(ag->c) && !ag->tun_paused) {
		/* Leave the backlog in the kernel's queue, where the sender's
		 * TCP sees delay rather than loss; on_writable resumes
		 * reading. */
		event_del(ag->tun_ev);
		ag->tun_paused = 1;
	}
	switch (r) {
	case 0:
		ag->cnt.tx_packets++;
		ag->cnt.tx_bytes += (uint64_t)n;
		break;
	case ZG_ERR_TOO_LARGE: /* C16 */
		ag->cnt.drop_too_big++;
		send_too_big(ag, pkt, n, masque_conn_max_packet(ag->c));
		break;
	case ZG_ERR_LIMIT:
		ag->cnt.drop_congested++;
		break;
	default:
		ag->cnt.drop_outage++;
		break;
	}
}

static void tun_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;
	(void)what;
	for (int i = 0; i < TUN_BATCH && !ag->tun_paused; i++) {
		ssize_t n = read(fd, ag->rbuf, sizeof(ag->rbuf));

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("read from %s", ag->tun);
			return;
		}
		if (n <= TUNGRO_VNET_LEN)
			return;
		/* with TSO offered, up to 64 KiB of one TCP flow: cut into
		 * the packets the client's TCP would have sent (tungro.h) */
		if (tungro_split(ag->rbuf, (size_t)n, ag->seg, sizeof(ag->seg), tun_packet, ag) < 0)
			ag->cnt.drop_malformed++;
	}
}

static void resume_tun(struct agent *ag)
{
	if (ag->tun_paused) {
		ag->tun_paused = 0;
		if (event_add(ag->tun_ev, NULL) != 0)
			log_warnx("cannot resume reading %s", ag->tun);
		else
			event_active(ag->tun_ev, EV_READ, 0); /* read what queued meanwhile */
	}
}

static void on_writable(struct masque_conn *c, void *ctx)
{
	struct agent *ag = ctx;
	(void)c;
	resume_tun(ag);
}

/* Writes the packets gathered in this loop pass to the TUN, consecutive
 * TCP segments coalesced (tungro.h). */
static void flush_tun(struct agent *ag)
{
	size_t n = tungro_count(ag->gro);

	for (size_t i = 0; i < n; i++) {
		unsigned nseg;
		size_t len;
		const uint8_t *it = tungro_item(ag->gro, i, &len, &nseg);

		if (write(ag->tun_fd, it, len) != (ssize_t)len) {
			ag->cnt.drop_tun_write += nseg;
			ag->cnt.rx_packets -= nseg;
			ag->cnt.rx_bytes -= tungro_item_bytes(ag->gro, i); /* as to_tun counted */
		}
	}
	tungro_reset(ag->gro);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;
	(void)fd;
	(void)what;
	flush_tun(ag);
}

static void to_tun(void *ctx, const uint8_t *pkt, size_t len);

static void on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	struct agent *ag = ctx;

	(void)c;
	/* an inner session's QUIC packet: for it, never for the TUN */
	if (ag->cx != NULL && connectors_from_outer(ag->cx, pkt, len))
		return;
	to_tun(ag, pkt, len);
}

/* One packet to the TUN (from the relay, an inner session or an ICMP
 * answer), gathered for this loop pass. */
static void to_tun(void *ctx, const uint8_t *pkt, size_t len)
{
	struct agent *ag = ctx;
	int r;

	if (tungro_count(ag->gro) == 0)
		event_active(ag->flush_ev, EV_TIMEOUT, 0); /* at the end of this pass */
	r = tungro_add(ag->gro, pkt, len);
	if (r == ZG_ERR_LIMIT) {
		flush_tun(ag);
		r = tungro_add(ag->gro, pkt, len);
	}
	if (r != 0) {
		ag->cnt.drop_tun_write++;
		return;
	}
	ag->cnt.rx_packets++;
	ag->cnt.rx_bytes += len;
}

/* ------------------------------------------------------------------ */
/* connection                                                         */

static uint32_t random32(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)masque_udp_now() ^ (uint32_t)getpid();
	return r;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;
	(void)fd;
	(void)what;
	masque_udp_del(ag->dead);
	ag->dead = NULL;
	if (!ag->stopping)
		start_connect(ag);
}

/* The attempt or tunnel on the current relay ended: the next relay, after
 * the delay the failover policy gives (failover.h). */
static void schedule_retry(struct agent *ag, const char *why)
{
	const char *failed = cur_relay(ag)->text;
	uint32_t ms = failover_failed(&ag->fo, masque_udp_now(), ag->goaway, random32());
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	ag->goaway = 0;
	evtimer_add(ag->retry_ev, &tv);
	if (ag->cfg.relays.n > 1)
		set_state(ag, "reconnecting",
			  "relay %s: %s; next attempt in %u.%03u s to relay %s (%zu of %zu) "
			  "(kept: routes %zu, addresses %zu)",
			  failed, why, ms / 1000, ms % 1000, cur_relay(ag)->text, ag->fo.cur + 1,
			  ag->cfg.relays.n, ag->nroutes, ag->naddrs);
	else
		set_state(ag, "reconnecting",
			  "%s; next attempt in %u.%03u s (kept: routes %zu, addresses %zu)", why,
			  ms / 1000, ms % 1000, ag->nroutes, ag->naddrs);
}

static void on_open(struct masque_conn *c, void *ctx)
{
	struct agent *ag = ctx;
	size_t max = masque_conn_max_packet(c);
	uint32_t mtu;

	ag->open = 1;
	ag->goaway = 0;
	ag->opened_at = masque_udp_now();
	failover_opened(&ag->fo, ag->opened_at);
	ag->cnt.connects++;
	mtu = ag->cfg.mtu ? ag->cfg.mtu : (uint32_t)(max > 65535 ? 65535 : max);
	if (mtu < MASQUE_MIN_INNER_MTU)
		mtu = MASQUE_MIN_INNER_MTU; /* the transport refuses smaller tunnels (C15) */
	if (mtu != ag->mtu || !ag->link_up) {
		if (nl_link_set(ag->nl, ag->ifindex, 1, mtu) != 0) {
			log_warn("cannot set %s up with MTU %u", ag->tun, mtu);
			set_error(ag, "cannot set %s up: %s", ag->tun, strerror(errno));
		} else {
			ag->mtu = mtu;
			ag->link_up = 1;
		}
	}
	set_state(ag, "connected", "relay %s, %s, largest packet %zu, %s MTU %u", cur_relay(ag)->text,
		  masque_conn_datagrams(c) ? "QUIC datagrams" : "DATAGRAM capsules", max, ag->tun,
		  ag->mtu);
	/* An empty DNS_ASSIGN ("no DNS configuration of mine") tells the relay
	 * this client knows the capsule: it answers with its own (19.5). */
	if (ag->dns != NULL && agentdns_state(ag->dns)->mode != AGENTDNS_OFF &&
	    masque_conn_send_capsule(c, CAPSULE_DNS_ASSIGN, NULL, 0) != 0)
		log_warnx("dns: cannot ask the relay for its DNS configuration");
	if (ag->cx != NULL)
		connectors_outer_changed(ag->cx); /* inner sessions waiting for a tunnel start */
}

/* DNS_ASSIGN and ZG_CONNECTORS (the extension capsules the agent asks for). */
static int on_capsule(struct masque_conn *c, uint64_t type, const uint8_t *v, size_t len,
		      void *ctx)
{
	struct agent *ag = ctx;
	char err[512];
	int r;

	(void)c;
	if (type == CAPSULE_ZG_CONNECTORS) {
		/* a bad list keeps the one in force; the tunnel is still good */
		if (ag->cx != NULL)
			(void)connectors_on_capsule(ag->cx, v, len);
		write_status(ag);
		return 0;
	}
	if (type != CAPSULE_DNS_ASSIGN || ag->dns == NULL)
		return 0;
	r = agentdns_assign(ag->dns, v, len, err, sizeof(err));
	if (r == ZG_ERR_MALFORMED || r == ZG_ERR_TOO_LARGE) {
		log_warnx("dns: %s", err);
		return r; /* like any malformed capsule: the tunnel is aborted */
	}
	if (r != 0) {
		log_warnx("dns: %s", err);
		(void)snprintf(ag->last_error, sizeof(ag->last_error), "dns: %.240s", err);
	} else {
		const struct agentdns_state *ds = agentdns_state(ag->dns);

		if (ds->active)
			log_info("dns: %s: %zu servers (first %s), %zu domains (first %s)", ds->via,
				 ds->nservers, ds->servers[0], ds->ndomains,
				 ds->domains[0][0] ? ds->domains[0] : ". (every name)");
		else
			log_info("dns: the relay assigns no DNS configuration");
	}
	write_status(ag);
	return 0;
}

static void on_goaway(struct masque_conn *c, void *ctx)
{
	struct agent *ag = ctx;
	(void)c;
	ag->goaway = 1;
	set_state(ag, "draining",
		  "the relay is going away (GOAWAY); the tunnel is used until it "
		  "closes, then the agent reconnects at once");
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct agent *ag = ctx;
	int was_open = ag->open;
	char why[400];

	(void)c;
	ag->c = NULL;
	ag->open = 0;
	if (ag->stopping)
		return;
	resume_tun(ag); /* outage packets are read and counted, not left queued */
	/* The socket is freed by the retry timer: not from inside a
	 * callback of the transport. */
	ag->dead = ag->u;
	ag->u = NULL;
	if (ci->status != 0)
		(void)snprintf(why, sizeof(why), "the relay refused the tunnel (%d): %s", ci->status,
			       ci->reason);
	else
		(void)snprintf(why, sizeof(why), "%s: %s",
			       was_open ? "connection lost" : "cannot connect", ci->reason);
	set_error(ag, "relay %s: %s", cur_relay(ag)->text, why);
	schedule_retry(ag, why);
}

/* Resolves the relay e and, before anything is sent to it, keeps its path
 * outside the tunnel: when the routes in place (an earlier relay's full
 * tunnel) cover it, its host route is added first, or its packets would
 * enter the tunnel that is down. Writes the numeric address to connect to
 * into out; e->addr when it does not resolve (the transport then says
 * why). */
static void relay_path_prepare(struct agent *ag, const struct relay_entry *e, char *out,
			       size_t outlen)
{
	struct addrinfo hints, *res = NULL;
	char host[INET6_ADDRSTRLEN], port[8];

	(void)snprintf(out, outlen, "%s", e->addr);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	(void)snprintf(port, sizeof(port), "%u", e->port);
	if (getaddrinfo(e->host, port, &hints, &res) != 0 || res == NULL)
		return;
	if (getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof(host), NULL, 0,
			NI_NUMERICHOST) == 0) {
		(void)snprintf(out, outlen, res->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
			       e->port);
		learn_relay_path(ag, res->ai_addr);
		(void)relay_route_update(ag, ag->routes, ag->nroutes);
	}
	freeaddrinfo(res);
}

static void start_connect(struct agent *ag)
{
	const struct relay_entry *e = cur_relay(ag);
	const struct sockaddr *peer;
	struct uri_scope any;
	socklen_t plen;
	char err[512], of[32] = "", addr[RELAYLIST_TEXT_MAX];
	int r;

	if (ag->cfg.relays.n > 1)
		(void)snprintf(of, sizeof(of), ", %zu of %zu", ag->fo.cur + 1, ag->cfg.relays.n);
	set_state(ag, "connecting", "relay %s (server name %s%s), asking for %s%s", e->text,
		  e->server_name, of, ag->naddrs ? "the previous address " : "any address",
		  ag->naddrs ? fmt_prefix(&ag->addrs[0]) : "");
	/* each relay its own :authority, :path and certificate name */
	memset(&any, 0, sizeof(any));
	any.any_target = 1;
	any.any_proto = 1;
	ag->mc.server_name = e->server_name;
	r = uri_expand(e->uri_template, &any, ag->authority, sizeof(ag->authority), ag->path,
		       sizeof(ag->path));
	relay_path_prepare(ag, e, addr, sizeof(addr));
	if (r == 0)
		r = masque_udp_client_new(ag->base, addr, &ag->mc, &ag->cbs, ag, &ag->u, &ag->c,
					  err, sizeof(err));
	else
		(void)snprintf(err, sizeof(err), "template %s: cannot expand", e->uri_template);
	if (r != 0) {
		ag->u = NULL;
		ag->c = NULL;
		set_error(ag, "relay %s: %s", e->text, err);
		schedule_retry(ag, err);
		return;
	}
	peer = masque_conn_peer(ag->c, &plen);
	if (peer != NULL)
		learn_relay_path(ag, peer);
}

/* ------------------------------------------------------------------ */
/* certificate reload (issue 18.6)                                    */

/* The files reload_tls() loads: cert, key, CA and connector CA (the CA
 * again when it is the same file). */
static size_t cert_files(const struct agent *ag, const char *files[4])
{
	files[0] = ag->cfg.cert;
	files[1] = ag->cfg.key;
	files[2] = ag->cfg.ca;
	files[3] = ag->cfg.connector_ca;
	return 4;
}

static uint64_t cert_files_sum(const struct agent *ag)
{
	const char *files[4];

	return filewatch_sum(files, cert_files(ag, files));
}

/* Loads the certificate, key and CA again (force: even when the files
 * did not change). The new context is used from the next handshake; the
 * open connection keeps its own reference to the old one. The connectors'
 * inner contexts (agent certificate, connector CA) follow. */
static void reload_tls(struct agent *ag, const char *why, int force)
{
	WOLFSSL_CTX *ctx = NULL;
	struct tls_cert_info ci;
	char err[512];
	uint64_t sum = cert_files_sum(ag);

	if (!force && sum == ag->cert_sum)
		return; /* nothing we load changed */
	ag->cert_sum = sum;
	if (tls_client_ctx_new(ag->cfg.cert, ag->cfg.key, ag->cfg.ca, &ctx, err, sizeof(err)) !=
	    0) {
		ag->cnt.cert_reload_errors++;
		log_warnx("%s: the certificate files do not load, keeping the ones in use: %s", why,
			  err);
		set_error(
			ag,
			"certificate reload (%s) failed, the previous certificate stays in use: %s",
			why, err);
		write_status(ag);
		return;
	}
	if (ag->cx != NULL && connectors_reload_tls(ag->cx, err, sizeof(err)) != 0) {
		/* the outer context loaded: only the connector CA can be bad */
		wolfSSL_CTX_free(ctx);
		ag->cnt.cert_reload_errors++;
		log_warnx("%s: the connector CA does not load, keeping the certificates in use: %s",
			  why, err);
		set_error(ag,
			  "certificate reload (%s) failed, the previous certificate stays in use: %s",
			  why, err);
		write_status(ag);
		return;
	}
	if (tls_cert_file_info(ag->cfg.cert, &ci, err, sizeof(err)) != 0)
		(void)snprintf(ci.serial, sizeof(ci.serial), "?");
	wolfSSL_CTX_free(ag->tls); /* a connection still using it holds its own reference */
	ag->tls = ctx;
	ag->mc.tls = ctx;
	ag->cnt.cert_reloads++;
	log_info("%s: certificate %s loaded again (serial %s); used from the next handshake%s%s", why,
		 ag->cfg.cert, ci.serial, ag->open ? ", the open tunnel stays up" : "",
		 ag->cx != NULL && connectors_count(ag->cx) > 0
			 ? "; connectors' inner sessions use it (and connector_ca) from their next one"
			 : "");
	write_status(ag); /* cert_reloads moved */
	if (!ag->open && ag->c == NULL && !ag->stopping && evtimer_pending(ag->retry_ev, NULL)) {
		/* Waiting to retry (perhaps because the relay refused the old
		 * certificate): try the new one now. */
		struct timeval now = { 0, 0 };

		failover_restart(&ag->fo);
		(void)evtimer_add(ag->retry_ev, &now);
	}
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct agent *ag = arg;
	(void)sig;
	(void)what;
	reload_tls(ag, "SIGHUP", 1);
}

static void cert_files_changed(void *ctx)
{
	struct agent *ag = ctx;
	reload_tls(ag, "certificate files changed", 0);
}

/* ------------------------------------------------------------------ */
/* start and stop                                                     */

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct agent *ag = arg;
	(void)what;
	log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	ag->stopping = 1;
	event_base_loopbreak(ag->base);
}

/* 1 when the effective capability set holds CAP_NET_ADMIN (bit 12). */
static int have_net_admin(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long caps = 0;
	int found = 0;

	if (f == NULL)
		return 1; /* cannot tell: let the kernel decide */
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			found = 1;
			break;
		}
	fclose(f);
	return !found || (caps >> 12 & 1);
}

static void usage(FILE *f)
{
	static char opts[8192];

	(void)agent_config_usage(opts, sizeof(opts));
	fprintf(f,
		"usage: zgate-agent --relay HOST:PORT[,HOST:PORT...] --cert FILE --key FILE --ca FILE\n"
		"                   [options]\n"
		"       zgate-agent --config FILE [options]\n"
		"       zgate-agent status [--json] [--status-file FILE]\n"
		"\n"
		"Creates a TUN device, opens a CONNECT-IP tunnel (RFC 9484) to a zgate relay,\n"
		"puts the address the relay assigns on the device and routes the ranges it\n"
		"advertises through it. Keeps the device and routes while it reconnects; on\n"
		"SIGTERM or SIGINT removes exactly what it added and exits 0. SIGHUP, or a\n"
		"change of the --cert, --key, --ca or connector_ca files, loads them again for\n"
		"the next handshake and the next inner session with a connector, without\n"
		"dropping the open tunnel or sessions (files that do not load keep the ones\n"
		"in use).\n"
		"Needs CAP_NET_ADMIN and /dev/net/tun.\n"
		"\n"
		"Options (flag > ZGATE_* variable > file > default):\n"
		"  --config FILE\n"
		"      YAML file of the options below (flat keys). Variable ZGATE_CONFIG.\n"
		"%s"
		"  --check-config   validate the configuration, load the certificates, print\n"
		"                   the configuration and exit\n"
		"  -h, --help       this text\n"
		"  --version        version, git commit and the linked libraries' versions\n"
		"\n"
		"A value follows its flag (--mtu 1350) or an equals sign (--mtu=1350); a\n"
		"boolean alone is true (--ipv6), --ipv6=false turns it off. Durations take a\n"
		"unit: ms, s, m or h (500ms, 25s, 5m); 0 needs none.\n"
		"\n"
		"Several relays (--relay a.example:443,b.example:443): the agent starts with\n"
		"the first and stays on whichever works. When a tunnel is lost, or a\n"
		"handshake is refused or times out, it tries the next relay at once; once\n"
		"every relay of the list failed in a row it waits the reconnect backoff\n"
		"(--reconnect-min .. --reconnect-max, growing) and goes round again. A tunnel\n"
		"that held 10 s, or ended by the relay's GOAWAY, resets the backoff. Each\n"
		"relay is asked for the address the agent holds. An entry NAME@HOST:PORT\n"
		"checks that relay's certificate for NAME (default: --server-name, else HOST).\n"
		"\n"
		"Each state change (connecting, connected, draining, reconnecting, stopped) is\n"
		"one line on stderr; --status-file keeps a JSON object with the state, relay,\n"
		"addresses, routes, refused addresses and routes, packet and byte counters,\n"
		"drops and the last error; `zgate-agent status` prints it (see status --help).\n"
		"\n"
		"Assigned addresses are installed as /32 or /128 without a prefix route. An\n"
		"address or route the relay sends is refused (logged, listed in the status\n"
		"file, not installed; the tunnel stays up) when it is loopback, link-local,\n"
		"multicast, unspecified, broadcast or reserved, the relay's own address, an\n"
		"address another interface's route reaches, a global address the tunnel\n"
		"does not route, or a route outside --accept-routes.\n"
		"\n"
		"DNS: the relay may send a DNS_ASSIGN capsule (its DNS server inside the tunnel\n"
		"and the domains to send there). With --dns resolved the agent sets that server\n"
		"and routing domains (~domain) on the TUN through systemd-resolved and reverts\n"
		"the link on exit; with --dns file it rewrites --resolv-conf in place (the\n"
		"relay's server first) and puts the original back byte for byte on exit, or at\n"
		"the next start after a crash; auto picks resolved when it runs; off ignores it.\n"
		"The status file and `zgate-agent status` show the DNS in use.\n"
		"\n" OPT_HELP_EXIT
		"(0 after SIGTERM/SIGINT; 1 when it cannot run here: no TUN, no CAP_NET_ADMIN,\n"
		"netlink; 2 for the command line, the file, a variable or a certificate.)\n",
		opts);
}

static void print_config(const struct agent_config *c)
{
	char mtu[32] = "from the tunnel", acc[AGENT_ACCEPT_MAX * 48] = "every advertised route";
	size_t n = 0;

	if (c->mtu != 0)
		(void)snprintf(mtu, sizeof(mtu), "%u", c->mtu);
	if (c->accept_routes.filter)
		(void)snprintf(acc, sizeof(acc), "none");
	for (size_t i = 0; i < c->accept_routes.n; i++) {
		int w = snprintf(acc + n, sizeof(acc) - n, "%s%s", i ? ", " : "",
				 fmt_prefix(&c->accept_routes.p[i]));
		if (w < 0 || (size_t)w >= sizeof(acc) - n)
			break;
		n += (size_t)w;
	}
	for (size_t i = 0; i < c->relays.n; i++) {
		const struct relay_entry *e = &c->relays.e[i];

		char label[64] = "relay";

		if (c->relays.n > 1)
			(void)snprintf(label, sizeof(label), "relay %zu/%zu", i + 1, c->relays.n);
		printf("%-16s%s\n", label, e->addr);
		printf("server_name     %s\n"
		       "template        %s\n",
		       e->server_name, e->uri_template);
	}
	printf("cert            %s\n"
	       "key             %s\n"
	       "ca              %s\n"
	       "connector_ca    %s\n"
	       "tun             %s\n"
	       "status_file     %s\n"
	       "reconnect       %ums .. %ums\n"
	       "keepalive       %ums (idle timeout %ums, connect timeout %ums)\n"
	       "mtu             %s\n"
	       "ipv6            %s\n"
	       "accept_routes   %s\n"
	       "dns             %s (resolv_conf %s)\n"
	       "log_level       %s, log_format %s\n"
	       "configuration OK\n",
	       c->cert, c->key, c->ca, c->connector_ca, c->tun,
	       c->status_file[0] ? c->status_file : "(none)", c->reconnect_min_ms,
	       c->reconnect_max_ms, c->keepalive_ms, c->idle_timeout_ms, c->connect_timeout_ms,
	       mtu, c->ipv6 ? "yes" : "no", acc, c->dns, c->resolv_conf, c->log_level,
	       c->log_format);
}

static int setup_transport(struct agent *ag)
{
	struct uri_scope any;
	char err[512];

	/* every relay's template expands (start_connect() does it again) */
	memset(&any, 0, sizeof(any));
	any.any_target = 1;
	any.any_proto = 1;
	for (size_t i = 0; i < ag->cfg.relays.n; i++)
		if (uri_expand(ag->cfg.relays.e[i].uri_template, &any, ag->authority,
			       sizeof(ag->authority), ag->path, sizeof(ag->path)) != 0) {
			fprintf(stderr, "zgate-agent: relay %s: template %s: cannot expand\n",
				ag->cfg.relays.e[i].text, ag->cfg.relays.e[i].uri_template);
			return 2;
		}
	ag->cert_sum = cert_files_sum(ag);
	if (tls_client_ctx_new(ag->cfg.cert, ag->cfg.key, ag->cfg.ca, &ag->tls, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "zgate-agent: %s\n", err);
		return 2;
	}
	memset(&ag->mc, 0, sizeof(ag->mc));
	ag->mc.tls = ag->tls;
	ag->mc.server_name = ag->cfg.server_name;
	ag->mc.authority = ag->authority;
	ag->mc.path = ag->path;
	ag->mc.keepalive_ms = ag->cfg.keepalive_ms;
	ag->mc.idle_timeout_ms = ag->cfg.idle_timeout_ms;
	ag->mc.handshake_timeout_ms = ag->cfg.connect_timeout_ms;
	update_want(ag);
	memset(&ag->cbs, 0, sizeof(ag->cbs));
	ag->cbs.on_open = on_open;
	ag->cbs.on_addresses = on_addresses;
	ag->cbs.on_routes = on_routes;
	ag->cbs.on_packet = on_packet;
	ag->cbs.on_goaway = on_goaway;
	ag->cbs.on_close = on_close;
	ag->cbs.on_writable = on_writable;
	ag->cbs.on_capsule = on_capsule;
	if (strcmp(ag->cfg.dns, "off") != 0)
		ag->mc.ext_capsules[ag->mc.n_ext_capsules++] = CAPSULE_DNS_ASSIGN;
	ag->mc.ext_capsules[ag->mc.n_ext_capsules++] = CAPSULE_ZG_CONNECTORS;
	return 0;
}

/* connectors.h environment: inner packets travel in the outer tunnel. */
static int cx_to_outer(void *ctx, const uint8_t *pkt, size_t len)
{
	struct agent *ag = ctx;

	if (ag->c == NULL || !ag->open)
		return ZG_ERR_STATE;
	return masque_conn_send(ag->c, pkt, len);
}

static size_t cx_outer_max(void *ctx)
{
	struct agent *ag = ctx;

	return ag->c != NULL && ag->open ? masque_conn_max_packet(ag->c) : 0;
}

static void cx_changed(void *ctx)
{
	struct agent *ag = ctx;

	if (ag->stopping)
		return;
	routes_changed(ag);
}

static int setup_connectors(struct agent *ag)
{
	struct connectors_env env;

	memset(&env, 0, sizeof(env));
	env.base = ag->base;
	env.cert = ag->cfg.cert;
	env.key = ag->cfg.key;
	env.ca = ag->cfg.connector_ca;
	env.reconnect_min_ms = ag->cfg.reconnect_min_ms;
	env.reconnect_max_ms = ag->cfg.reconnect_max_ms;
	env.keepalive_ms = ag->cfg.keepalive_ms;
	env.idle_timeout_ms = ag->cfg.idle_timeout_ms;
	env.to_outer = cx_to_outer;
	env.outer_max = cx_outer_max;
	env.to_tun = to_tun;
	env.changed = cx_changed;
	env.ctx = ag;
	return connectors_new(&env, &ag->cx);
}

/* Notes whether the device name exists already (a persistent TUN made with
 * "ip tuntap add"), and its flags and MTU, to put them back at exit. */
static void note_existing_device(struct agent *ag, const char *name)
{
	struct ifreq ifr;
	int s;

	if (if_nametoindex(name) == 0)
		return;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	(void)snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ag->tun_was_up = (ifr.ifr_flags & IFF_UP) != 0;
		if (ioctl(s, SIOCGIFMTU, &ifr) == 0) {
			ag->tun_existed = 1;
			ag->tun_old_mtu = (uint32_t)ifr.ifr_mtu;
			ag->tun_flags_known = tun_read_flags(name, &ag->tun_old_flags) == 0;
		}
	}
	close(s);
}

/* Refuses to start without what the agent cannot work without. */
static int preflight(struct agent *ag)
{
	char err[512];

	if (access("/dev/net/tun", F_OK) != 0) {
		fprintf(stderr,
			"zgate-agent: /dev/net/tun is missing (%s): this system or container has no "
			"TUN device. Load the module (modprobe tun) or, in a container, pass the "
			"device (--device /dev/net/tun).\n",
			strerror(errno));
		return 1;
	}
	if (!have_net_admin()) {
		fprintf(stderr,
			"zgate-agent: CAP_NET_ADMIN is missing: the agent creates %s and installs "
			"routes. Run it as root, grant the capability (setcap cap_net_admin+ep, "
			"systemd AmbientCapabilities=CAP_NET_ADMIN) or add it to the container "
			"(--cap-add NET_ADMIN).\n",
			ag->cfg.tun);
		return 1;
	}
	note_existing_device(ag, ag->cfg.tun);
	if (tun_open(ag->cfg.tun, ag->tun, sizeof(ag->tun), &ag->tun_fd, &ag->ifindex, err,
		     sizeof(err)) != 0) {
		fprintf(stderr, "zgate-agent: %s\n", err);
		return 1;
	}
	/* a device made beforehand keeps the queue its owner gave it */
	if (!ag->tun_existed && tun_set_txqlen(ag->tun, TUN_TXQLEN) != 0)
		log_warn("cannot set the transmit queue of %s to %d packets", ag->tun, TUN_TXQLEN);
	if (nl_open(&ag->nl) != 0) {
		fprintf(stderr, "zgate-agent: cannot open rtnetlink: %s\n", strerror(errno));
		return 1;
	}
	{
		enum agentdns_mode dm = AGENTDNS_AUTO;

		(void)agentdns_mode_parse(ag->cfg.dns, &dm); /* validated with the config */
		if (agentdns_new(dm, ag->cfg.resolv_conf, ag->cfg.dns_backup, ag->tun, ag->ifindex,
				 &ag->dns, err, sizeof(err)) != 0) {
			fprintf(stderr, "zgate-agent: %s\n", err);
			return 1;
		}
	}
	return 0;
}

static int make_events(struct agent *ag)
{
	struct timeval refresh = { REFRESH_S, 0 };

	ag->base = masque_udp_base_new();
	if (ag->base == NULL)
		return -1;
	ag->tun_ev = event_new(ag->base, ag->tun_fd, EV_READ | EV_PERSIST, tun_read_cb, ag);
	ag->retry_ev = evtimer_new(ag->base, retry_cb, ag);
	ag->refresh_ev = event_new(ag->base, -1, EV_PERSIST, refresh_cb, ag);
	ag->sigterm_ev = evsignal_new(ag->base, SIGTERM, stop_cb, ag);
	ag->sigint_ev = evsignal_new(ag->base, SIGINT, stop_cb, ag);
	ag->sighup_ev = evsignal_new(ag->base, SIGHUP, sighup_cb, ag);
	ag->flush_ev = event_new(ag->base, -1, 0, flush_cb, ag);
	ag->pace_ev = evtimer_new(ag->base, pace_cb, ag);
	routepace_init(&ag->pace, ROUTEPACE_PER_S, ROUTEPACE_BURST, now_ms());
	ag->gro = tungro_new();
	if (ag->tun_ev == NULL || ag->flush_ev == NULL || ag->gro == NULL || ag->retry_ev == NULL ||
	    ag->pace_ev == NULL ||
	    ag->refresh_ev == NULL || ag->sigterm_ev == NULL || ag->sigint_ev == NULL ||
	    ag->sighup_ev == NULL || event_add(ag->tun_ev, NULL) != 0 ||
	    event_add(ag->sigterm_ev, NULL) != 0 || event_add(ag->sigint_ev, NULL) != 0 ||
	    event_add(ag->sighup_ev, NULL) != 0 ||
	    (ag->cfg.status_file[0] && event_add(ag->refresh_ev, &refresh) != 0))
		return -1;
	{
		const char *files[4];
		char err[512];

		if (filewatch_new(ag->base, files, cert_files(ag, files), CERT_DEBOUNCE_MS,
				  cert_files_changed, ag,
				  &ag->fw, err, sizeof(err)) != 0)
			log_warnx("%s: certificate changes are not noticed by themselves (SIGHUP "
				  "reloads them)",
				  err);
	}
	return 0;
}

static void free_events(struct agent *ag)
{
	struct event *evs[] = { ag->tun_ev, ag->retry_ev, ag->refresh_ev, ag->sigterm_ev,
				ag->sigint_ev, ag->flush_ev, ag->sighup_ev, ag->pace_ev };

	filewatch_del(ag->fw);
	ag->fw = NULL;

	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	tungro_free(ag->gro);
	if (ag->base != NULL)
		event_base_free(ag->base);
}

static int run(struct agent *ag, int argc, char **argv)
{
	enum agent_action act;
	enum log_level lvl;
	enum log_format lfmt;
	char err[1024];
	int rc;

	ag->tun_fd = -1;
	ag->state = "starting";
	if ((rc = agent_config_parse(&ag->cfg, argc, argv, environ, &act, err, sizeof(err))) != 0) {
		fprintf(stderr, "zgate-agent: %s\n", err);
		return opt_exit_code(rc);
	}
	if (act == AGENT_HELP) {
		usage(stdout);
		return OPT_EXIT_OK;
	}
	if (act == AGENT_VERSION) {
		char v[1024];

		(void)opt_version("zgate-agent", v, sizeof(v));
		fputs(v, stdout);
		return OPT_EXIT_OK;
	}
	if (log_level_parse(ag->cfg.log_level, &lvl) == 0)
		log_set_level(lvl);
	if (log_format_parse(ag->cfg.log_format, &lfmt) == 0)
		log_set_format(lfmt);
	if (act == AGENT_CHECK_CONFIG) {
		/* as the relay's: the certificates load, or the file is named */
		if (tls_client_ctx_new(ag->cfg.cert, ag->cfg.key, ag->cfg.ca, &ag->tls, err,
				       sizeof(err)) != 0) {
			fprintf(stderr, "zgate-agent: %s\n", err);
			return OPT_EXIT_USAGE;
		}
		wolfSSL_CTX_free(ag->tls);
		ag->tls = NULL;
		print_config(&ag->cfg);
		return OPT_EXIT_OK;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Until the event loop handles it: a SIGHUP must never kill the agent
	 * with its routes and addresses left behind. */
	signal(SIGHUP, SIG_IGN);
	if ((rc = setup_transport(ag)) != 0)
		return rc;
	if ((rc = preflight(ag)) != 0)
		goto out;
	failover_init(&ag->fo, ag->cfg.relays.n, ag->cfg.reconnect_min_ms,
		      ag->cfg.reconnect_max_ms, STABLE_NS);
	if (make_events(ag) != 0 || setup_connectors(ag) != 0) {
		fprintf(stderr, "zgate-agent: cannot set up the event loop\n");
		rc = 1;
		goto out;
	}
	{
		char list[RELAYLIST_MAX * RELAYLIST_TEXT_MAX];

		log_info("zgate-agent %s: TUN %s (index %d), relay%s %s", ZG_VERSION, ag->tun,
			 ag->ifindex, ag->cfg.relays.n > 1 ? "s" : "",
			 relaylist_format(&ag->cfg.relays, list, sizeof(list)));
	}
	start_connect(ag);
	event_base_dispatch(ag->base);

	set_state(ag, "stopping", "removing what the agent added: routes %zu%s, addresses %zu",
		  ag->nroutes, ag->have_relay_rt ? " and the relay route" : "", ag->naddrs);
	agentdns_free(ag->dns); /* the DNS configuration first: it names the tunnel's server */
	ag->dns = NULL;
	ag->stopping = 1;
	connectors_free(ag->cx); /* the inner sessions before the tunnel they ride in */
	ag->cx = NULL;
	remove_all_added(ag);
	if (ag->tun_existed && ag->link_up &&
	    nl_link_set(ag->nl, ag->ifindex, ag->tun_was_up, ag->tun_old_mtu) != 0)
		log_warn("cannot restore %s (%s, MTU %u)", ag->tun, ag->tun_was_up ? "up" : "down",
			 ag->tun_old_mtu);
	if (ag->c != NULL && ag->open)
		log_info("closing the tunnel");
	masque_udp_del(ag->u);
	ag->u = NULL;
	ag->c = NULL;
	masque_udp_del(ag->dead);
	ag->dead = NULL;
	set_state(ag, "stopped", "sent %llu packets, received %llu, dropped %llu",
		  (unsigned long long)ag->cnt.tx_packets, (unsigned long long)ag->cnt.rx_packets,
		  (unsigned long long)(ag->cnt.drop_outage + ag->cnt.drop_too_big +
				       ag->cnt.drop_congested + ag->cnt.drop_tun_write +
				       ag->cnt.drop_not_ours + ag->cnt.drop_malformed));
	rc = 0;
out:
	connectors_free(ag->cx);
	ag->cx = NULL;
	agentdns_free(ag->dns);
	ag->dns = NULL;
	free_events(ag);
	nl_close(ag->nl);
	if (ag->tun_fd >= 0) {
		close(ag->tun_fd);
		/* our attach gave a persistent device IFF_VNET_HDR and offloads */
		if (ag->tun_existed && ag->tun_flags_known &&
		    tun_restore(ag->tun, ag->tun_old_flags) != 0)
			log_warn("cannot give %s its TUN flags back", ag->tun);
	}
	if (ag->tls != NULL)
		wolfSSL_CTX_free(ag->tls);
	return rc;
}

int main(int argc, char **argv)
{
	struct agent *ag;
	int rc;

	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return status_command(argc - 1, argv + 1, stdout, stderr);
	/* the one agent of this process; every callback finds it in its ctx */
	ag = calloc(1, sizeof(*ag));
	if (ag == NULL) {
		fprintf(stderr, "zgate-agent: out of memory\n");
		return 1;
	}
	rc = run(ag, argc, argv);
	free(ag);
	return rc;
}
