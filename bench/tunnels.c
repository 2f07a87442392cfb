/*
 * tunnels — a load client: opens many CONNECT-IP tunnels to one relay from
 * one process and holds them idle (issue 21, target 4).
 *
 *   tunnels -r ADDR:PORT -s SERVER_NAME -C CA -d DIR -n N [-p PAR] [-H SECS]
 *
 * DIR holds one client certificate per tunnel, DIR/t00000.crt ... (CN
 * t00000 ...; the relay keeps one tunnel per identity), and the key they
 * all share, DIR/client.key (bench/tunnel_certs.py makes them). At most
 * PAR handshakes (default 64) are in flight at once. Each tunnel has its
 * own connected UDP socket (its own 4-tuple, as separate agents would) and
 * a libevent timer: one descriptor per tunnel, so the soft descriptor
 * limit is raised to fit (up to the hard one).
 *
 * Prints, once every tunnel opened or failed:
 *   "opened O failed F in T s: R handshakes/s, p50 X ms p99 Y ms"
 * then "holding O" and keeps them (keep-alive PINGs, as an idle agent
 * does) for SECS seconds (default: until SIGTERM/SIGINT), then closes
 * them and prints "closed while held C" (tunnels the relay dropped).
 * Exit status: 0 when every tunnel opened and none was lost while held.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/hostport.h"
#include "masque/masque.h"
#include "masque/udp.h"
#include "masque/uri.h"

enum {
	T_IDLE,
	T_HANDSHAKE,
	T_OPEN,
	T_CLOSED
};

struct tun {
	int fd;
	struct event *rd;
	struct masque_conn *c;
	struct masque_config cfg; /* the connection keeps pointers into it */
	struct sockaddr_storage local;
	socklen_t locallen;
	masque_time t0;
	int state;
};

static struct {
	const char *relay, *server_name, *ca, *dir;
	size_t n, par;
	long hold_s;
	struct event_base *base;
	struct tun *t;
	size_t next, inflight, opened, failed, lost;
	double *hs_ms;
	masque_time start;
	char authority[300], path[1024];
	struct sockaddr_in relay_sa;
	int holding, closing;
	struct event *hold_ev, *sigterm, *sigint;
} L;

static struct masque_cbs cbs;

static double ms_since(masque_time t0)
{
	return (double)(masque_udp_now() - t0) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(void)
{
	double secs = ms_since(L.start) / 1e3;
	double p50 = 0, p99 = 0;

	if (L.opened > 0) {
		qsort(L.hs_ms, L.opened, sizeof(*L.hs_ms), cmp_double);
		p50 = L.hs_ms[(L.opened - 1) / 2];
		p99 = L.hs_ms[(L.opened * 99 + 99) / 100 - 1];
	}
	printf("opened %zu failed %zu in %.2f s: %.0f handshakes/s, p50 %.1f ms p99 %.1f ms\n",
	       L.opened, L.failed, secs, secs > 0 ? (double)L.opened / secs : 0.0, p50, p99);
	printf("holding %zu\n", L.opened);
	fflush(stdout);
	L.holding = 1;
	if (L.hold_s > 0) {
		struct timeval tv = { .tv_sec = L.hold_s };

		evtimer_add(L.hold_ev, &tv);
	}
}

static void start_more(void);

static void finished_one(void)
{
	L.inflight--;
	start_more();
}

static void on_open(struct masque_conn *c, void *ctx)
{
	struct tun *t = ctx;

	(void)c;
	t->state = T_OPEN;
	L.hs_ms[L.opened++] = ms_since(t->t0);
	finished_one();
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	struct tun *t = ctx;
	int was = t->state;

	(void)c;
	t->state = T_CLOSED;
	t->c = NULL; /* freed when this returns */
	if (was == T_HANDSHAKE) {
		if (L.failed++ < 5)
			fprintf(stderr, "tunnels: tunnel %zu refused: %s\n", (size_t)(t - L.t),
				ci->reason);
		finished_one();
	} else if (was == T_OPEN && !L.closing) {
		if (L.lost++ < 5)
			fprintf(stderr, "tunnels: tunnel %zu closed: %s\n", (size_t)(t - L.t),
				ci->reason);
	}
}

/* struct masque_io on one connected socket per tunnel and libevent timers
 * (millisecond precision is plenty for a load client; descriptors are what
 * is scarce). */
static int io_send(void *ioctx, const struct sockaddr *local, socklen_t locallen,
		   const struct sockaddr *remote, socklen_t remotelen, const uint8_t *data,
		   size_t len)
{
	struct tun *t = ioctx;

	(void)local;
	(void)locallen;
	(void)remote;
	(void)remotelen;
	return send(t->fd, data, len, 0) == (ssize_t)len ? 0 : -1;
}

static masque_time io_now(void *ioctx)
{
	(void)ioctx;
	return masque_udp_now();
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tun *t = arg;

	(void)fd;
	(void)what;
	if (t->c != NULL)
		(void)masque_conn_on_timer(t->c);
}

static void *io_timer_new(void *ioctx, struct masque_conn *c)
{
	struct tun *t = ioctx;

	t->c = c;
	return evtimer_new(L.base, timer_cb, t);
}

static void io_timer_arm(void *ioctx, void *timer, masque_time at)
{
	masque_time now = masque_udp_now();
	uint64_t us = at > now ? (at - now + 999) / 1000 : 0;
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000),
			      .tv_usec = (suseconds_t)(us % 1000000) };

	(void)ioctx;
	evtimer_add(timer, &tv);
}

static void io_timer_free(void *ioctx, void *timer)
{
	(void)ioctx;
	event_free(timer);
}

static const struct masque_io io = { io_send, io_now, io_timer_new, io_timer_arm, io_timer_free };

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tun *t = arg;
	uint8_t buf[2048];
	int k;

	(void)what;
	for (k = 0; k < 16 && t->c != NULL; k++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0)
			break;
		(void)masque_conn_input(t->c, (struct sockaddr *)&t->local, t->locallen,
					(struct sockaddr *)&L.relay_sa, sizeof(L.relay_sa), buf,
					(size_t)n);
	}
}

static int open_one(size_t i)
{
	struct tun *t = &L.t[i];
	struct masque_conn *c;
	char cert[4096], key[4096], err[512];
	WOLFSSL_CTX *tls;

	t->fd = -1;
	(void)snprintf(cert, sizeof(cert), "%s/t%05zu.crt", L.dir, i);
	(void)snprintf(key, sizeof(key), "%s/client.key", L.dir);
	if (tls_client_ctx_new(cert, key, L.ca, &tls, err, sizeof(err)) != 0) {
		fprintf(stderr, "tunnels: %s\n", err);
		return -1;
	}
	memset(&t->cfg, 0, sizeof(t->cfg));
	t->cfg.tls = tls;
	t->cfg.io = &io;
	t->cfg.ioctx = t;
	t->cfg.server_name = L.server_name;
	t->cfg.authority = L.authority;
	t->cfg.path = L.path;
	t->cfg.nwant = 1;
	t->cfg.want[0].version = 4;
	t->cfg.want[0].prefix_len = 32;
	t->cfg.idle_timeout_ms = 60000;
	t->cfg.keepalive_ms = 15000;
	t->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	t->locallen = sizeof(t->local);
	if (t->fd < 0 ||
	    connect(t->fd, (struct sockaddr *)&L.relay_sa, sizeof(L.relay_sa)) != 0 ||
	    getsockname(t->fd, (struct sockaddr *)&t->local, &t->locallen) != 0) {
		fprintf(stderr, "tunnels: tunnel %zu: socket: %s\n", i, strerror(errno));
		goto fail;
	}
	t->rd = event_new(L.base, t->fd, EV_READ | EV_PERSIST, read_cb, t);
	if (t->rd == NULL || event_add(t->rd, NULL) != 0)
		goto fail;
	t->t0 = masque_udp_now();
	t->state = T_HANDSHAKE;
	if (masque_client_new(&t->cfg, &cbs, t, (struct sockaddr *)&t->local, t->locallen,
			      (struct sockaddr *)&L.relay_sa, sizeof(L.relay_sa), &c) != 0) {
		fprintf(stderr, "tunnels: tunnel %zu: cannot start the QUIC client\n", i);
		t->state = T_IDLE;
		t->c = NULL;
		goto fail;
	}
	t->c = c;
	/* each SSL holds a reference to its context: the connection keeps it */
	wolfSSL_CTX_free(tls);
	t->cfg.tls = NULL;
	return 0;
fail:
	if (t->rd != NULL)
		event_free(t->rd);
	t->rd = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	wolfSSL_CTX_free(tls);
	return -1;
}

static void start_more(void)
{
	while (L.inflight < L.par && L.next < L.n) {
		size_t i = L.next++;

		if (open_one(i) != 0) {
			L.failed++;
			continue;
		}
		L.inflight++;
	}
	if (!L.holding && L.inflight == 0 && L.opened + L.failed == L.n)
		report();
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(L.base);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: tunnels -r ADDR:PORT -s SERVER_NAME -C CA -d DIR -n N [-p PAR] "
		   "[-H SECS]\n"
		   "Opens N CONNECT-IP tunnels (DIR/t00000.crt ..., DIR/client.key) to an\n"
		   "IPv4 relay, at most PAR handshakes at once (64), holds them SECS seconds\n"
		   "(default: until SIGTERM/SIGINT) and closes them.\n");
}

static int raise_nofile(size_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want) {
		fprintf(stderr, "tunnels: %zu descriptors needed; the hard limit is %llu\n", want,
			(unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "tunnels: RLIMIT_NOFILE %zu: %s\n", want, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char host[256], tmpl[600];
	uint16_t port;
	struct uri_scope any;
	size_t i;
	int o, rc;

	while ((o = getopt(argc, argv, "r:s:C:d:n:p:H:h")) != -1) {
		switch (o) {
		case 'r':
			L.relay = optarg;
			break;
		case 's':
			L.server_name = optarg;
			break;
		case 'C':
			L.ca = optarg;
			break;
		case 'd':
			L.dir = optarg;
			break;
		case 'n':
			L.n = strtoul(optarg, NULL, 10);
			break;
		case 'p':
			L.par = strtoul(optarg, NULL, 10);
			break;
		case 'H':
			L.hold_s = strtol(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (L.relay == NULL || L.server_name == NULL || L.ca == NULL || L.dir == NULL ||
	    L.n == 0 || L.n > 100000 || L.hold_s < 0) {
		usage(stderr);
		return 2;
	}
	if (L.par == 0)
		L.par = 64;
	if (hostport_split(L.relay, host, sizeof(host), &port) != 0) {
		fprintf(stderr, "tunnels: -r %s: expected ADDR:PORT\n", L.relay);
		return 2;
	}
	L.relay_sa.sin_family = AF_INET;
	L.relay_sa.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &L.relay_sa.sin_addr) != 1) {
		fprintf(stderr, "tunnels: -r %s: ADDR must be an IPv4 address\n", L.relay);
		return 2;
	}
	if (raise_nofile(L.n + 64) != 0) /* a socket per tunnel */
		return 2;
	(void)snprintf(tmpl, sizeof(tmpl),
		       "https://%s:%u/.well-known/masque/ip/{target}/{ipproto}/", L.server_name,
		       port);
	memset(&any, 0, sizeof(any));
	any.any_target = 1;
	any.any_proto = 1;
	if (uri_expand(tmpl, &any, L.authority, sizeof(L.authority), L.path, sizeof(L.path)) !=
	    0) {
		fprintf(stderr, "tunnels: cannot expand %s\n", tmpl);
		return 2;
	}
	L.t = calloc(L.n, sizeof(*L.t));
	L.hs_ms = calloc(L.n, sizeof(*L.hs_ms));
	L.base = masque_udp_base_new();
	if (L.t == NULL || L.hs_ms == NULL || L.base == NULL) {
		fprintf(stderr, "tunnels: out of memory\n");
		return 2;
	}
	L.hold_ev = evtimer_new(L.base, stop_cb, NULL);
	L.sigterm = evsignal_new(L.base, SIGTERM, stop_cb, NULL);
	L.sigint = evsignal_new(L.base, SIGINT, stop_cb, NULL);
	if (L.hold_ev == NULL || L.sigterm == NULL || L.sigint == NULL ||
	    evsignal_add(L.sigterm, NULL) != 0 || evsignal_add(L.sigint, NULL) != 0) {
		fprintf(stderr, "tunnels: cannot set up the event loop\n");
		return 2;
	}
	cbs.on_open = on_open;
	cbs.on_close = on_close;
	L.start = masque_udp_now();
	start_more();
	event_base_dispatch(L.base);
	rc = L.opened == L.n && L.lost == 0 ? 0 : 1;
	printf("closed while held %zu\n", L.lost);
	fflush(stdout);
	L.closing = 1;
	for (i = 0; i < L.n; i++) {
		struct tun *t = &L.t[i];

		if (t->c != NULL)
			masque_conn_destroy(t->c); /* CONNECTION_CLOSE; on_close */
		if (t->rd != NULL)
			event_free(t->rd);
		if (t->fd > 0)
			close(t->fd);
	}
	event_free(L.hold_ev);
	event_free(L.sigterm);
	event_free(L.sigint);
	event_base_free(L.base);
	free(L.t);
	free(L.hs_ms);
	return rc;
}
