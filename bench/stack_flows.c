/*
 * stack_flows.c — what one relay process pays per flow in src/stack, with
 * real loopback sockets on the far side.
 *
 *  flows: N TCP flows opened through the stack to a loopback listener and
 *         left idle; resident memory (/proc/self/statm) before and after,
 *         divided by N, and the CPU the idle flows cost while the event loop
 *         runs for a few seconds. The listener is a child process, so only
 *         the relay's side is measured. Runs before the throughput run, so
 *         that memory that run freed cannot hide this one's growth.
 *  tput:  one TCP flow carrying B bytes from a client to a loopback sink.
 *         The client is hand-built TCP (as in tests/test_stack.c) fed to
 *         stack_input() on the relay thread; its segments are prepared
 *         once and only their headers rewritten, so nearly all the CPU is
 *         the stack's: parsing, lwIP, the copy into the host socket. The
 *         sink runs in its own thread. CPU is getrusage(): the relay thread
 *         alone, and the whole process (sink included).
 *  idle:  event-loop wake-ups (voluntary context switches) and CPU of a
 *         stack left alone, without flows and with the N idle flows.
 *
 * Prints a markdown table. Options: -n flows, -b bytes, -m tunnel MTU,
 * -i idle seconds. Exits 1 when a measurement failed (not when skipped).
 */
#include <errno.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "be.h"
#include "pkt.h"
#include "stack.h"

#define CLIENT_VIP "10.100.0.7"
#define SPORT_BASE 10000
#define BATCH 64         /* SYNs in flight while opening flows */
#define FLOWS_TIMED 1024 /* flows whose opening is timed, first and last */
#define CLIENT_WS 7      /* our window scale: 0xffff << 7 = 8 MiB */
#define STALL_MS 500     /* no ACK progress: send again from snd_una */

/* ---------------------------------------------------------------- helpers */

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Voluntary context switches: each is the event loop going to sleep and
 * waking up again. */
static long
ru_wakeups(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) != 0)
		return 0;
	return ru.ru_nvcsw;
}

static double
ru_cpu(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Resident set size in bytes, or 0. */
static uint64_t
rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A checksum partial sum folded to 16 bits, not complemented: partials
 * folded this way can be added without overflow. */
static uint32_t
fold16(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

static struct stack_addr
addr4(const char *s)
{
	struct stack_addr a;

	memset(&a, 0, sizeof(a));
	a.version = 4;
	if (inet_pton(AF_INET, s, a.a) != 1)
		abort();
	return a;
}

/* A TCP socket listening on 127.0.0.1 (any port); returns the fd or -1. */
static int
listen_loopback(int backlog, int nonblock, uint16_t *pport)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(fd, backlog) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
		close(fd);
		return -1;
	}
	*pport = ntohs(sin.sin_port);
	return fd;
}

/* ---------------------------------------------------------------- client TCP */

/* The client side of one flow, as far as the bench needs it. */
struct cflow {
	uint32_t isn, snd_nxt, snd_una, rcv_nxt;
	uint64_t wnd; /* the stack's receive window, bytes */
	uint8_t ws;   /* the stack's window scale */
	int8_t state; /* 0 idle, 1 SYN sent, 2 SYN-ACK seen, 3 established, -1 reset */
};

struct bench {
	struct event_base *base;
	struct stack *st;
	struct stack_client client;
	struct stack_addr src, dst;
	uint16_t dport;
	struct cflow *fl;
	size_t nfl;
	uint64_t acks; /* segments the stack sent the client */
};

static enum stack_verdict
allow_all(void *ctx, const struct stack_flow_info *fi, const char **prule)
{
	(void)ctx;
	(void)fi;
	*prule = "bench";
	return STACK_ALLOW;
}

/* Packets toward the client: SYN-ACKs, ACKs, window updates, RSTs. */
static void
client_rx(void *ctx, const struct stack_addr *dst, const uint8_t *pkt,
	  size_t len)
{
	struct bench *b = ctx;
	const uint8_t *t;
	struct cflow *c;
	size_t ihl, thl, i;
	uint16_t port;
	uint8_t fl;

	(void)dst;
	if (len < 40 || (pkt[0] >> 4) != 4 || pkt[9] != STACK_PROTO_TCP)
		return;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	if (len < ihl + 20)
		return;
	t = pkt + ihl;
	thl = (size_t)(t[12] >> 4) * 4;
	port = be16_get(t + 2);
	if (port < SPORT_BASE || (size_t)(port - SPORT_BASE) >= b->nfl ||
	    len < ihl + thl)
		return;
	c = &b->fl[port - SPORT_BASE];
	fl = t[13];
	b->acks++;
	if (fl & PKT_TCP_RST) {
		c->state = -1;
		return;
	}
	if ((fl & (PKT_TCP_SYN | PKT_TCP_ACK)) == (PKT_TCP_SYN | PKT_TCP_ACK)) {
		for (i = 20; i + 1 < thl;) {
			if (t[i] == 0)
				break;
			if (t[i] == 1) {
				i++;
				continue;
			}
			if (t[i + 1] < 2)
				break;
			if (t[i] == 3 && t[i + 1] == 3 && i + 2 < thl)
				c->ws = t[i + 2];
			i += t[i + 1];
		}
		c->rcv_nxt = be32_get(t + 4) + 1;
		c->snd_una = be32_get(t + 8);
		c->wnd = be16_get(t + 14); /* never scaled in a SYN */
		if (c->state == 1)
			c->state = 2;
		return;
	}
	if (fl & PKT_TCP_ACK) {
		uint32_t ack = be32_get(t + 8);

		if ((int32_t)(ack - c->snd_una) > 0)
			c->snd_una = ack;
		c->wnd = (uint64_t)be16_get(t + 14) << c->ws;
	}
}

/* Builds an IPv4/TCP header pair at p (40 bytes) with the checksum of the
 * whole segment; paysum is fold16() of the payload's sum. */
static void
tcp_header(uint8_t *p, const struct stack_addr *src, const struct stack_addr *dst,
	   uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
	   uint8_t flags, size_t optlen, size_t paylen, uint32_t paysum)
{
	size_t tl = 20 + optlen + paylen;
	uint8_t *t = p + 20;
	uint32_t s;

	memset(p, 0, 40);
	p[0] = 0x45;
	be16_put(p + 2, (uint16_t)(20 + tl));
	p[6] = 0x40; /* DF */
	p[8] = 64;
	p[9] = STACK_PROTO_TCP;
	memcpy(p + 12, src->a, 4);
	memcpy(p + 16, dst->a, 4);
	be16_put(p + 10, cksum_fold(cksum_add(0, p, 20)));
	be16_put(t, sport);
	be16_put(t + 2, dport);
	be32_put(t + 4, seq);
	be32_put(t + 8, ack);
	t[12] = (uint8_t)(((20 + optlen) / 4) << 4);
	t[13] = flags;
	be16_put(t + 14, 0xffff);
	s = fold16(pkt_csum_pseudo(src, dst, STACK_PROTO_TCP, tl)) +
	    fold16(cksum_add(0, t, 20)) + paysum;
	if (optlen)
		s += fold16(cksum_add(0, t + 20, optlen));
	be16_put(t + 16, cksum_fold(s));
}

static void
client_syn(struct bench *b, size_t i)
{
	struct cflow *c = &b->fl[i];
	uint8_t p[48];
	uint8_t *o = p + 40; /* after the headers tcp_header() writes */

	c->isn = 0x10000000u + (uint32_t)i * 7919u;
	c->snd_nxt = c->snd_una = c->isn + 1;
	c->state = 1;
	/* options: MSS, NOP, window scale */
	o[0] = 2;
	o[1] = 4;
	be16_put(o + 2, 1460);
	o[4] = 1;
	o[5] = 3;
	o[6] = 3;
	o[7] = CLIENT_WS;
	tcp_header(p, &b->src, &b->dst, (uint16_t)(SPORT_BASE + i), b->dport,
		   c->isn, 0, PKT_TCP_SYN, 8, 0, 0);
	(void)stack_input(b->st, b, &b->client, p, sizeof(p));
}

static void
client_ack(struct bench *b, size_t i)
{
	struct cflow *c = &b->fl[i];
	uint8_t p[40];

	tcp_header(p, &b->src, &b->dst, (uint16_t)(SPORT_BASE + i), b->dport,
		   c->snd_nxt, c->rcv_nxt, PKT_TCP_ACK, 0, 0, 0);
	(void)stack_input(b->st, b, &b->client, p, sizeof(p));
	c->state = 3;
}

static int
bench_start(struct bench *b, uint16_t mtu, uint32_t nflows)
{
	struct stack_callbacks cb = { client_rx, allow_all, NULL, NULL };
	struct stack_prefix exempt;
	struct stack_config cfg;

	b->base = event_base_new();
	if (b->base == NULL)
		return -1;
	stack_config_defaults(&cfg);
	cfg.mtu = mtu;
	cfg.max_flows = nflows + 16;
	cfg.max_flows_per_client = nflows + 16;
	cfg.max_halfopen_per_client = BATCH;
	cfg.fd_client_pct = 100; /* one client here: all the flows' descriptors */
	exempt.addr = addr4("127.0.0.0");
	exempt.len = 8;
	cfg.exempt = &exempt;
	cfg.n_exempt = 1;
	b->src = addr4(CLIENT_VIP);
	b->dst = addr4("127.0.0.1");
	b->client.id = "bench";
	b->client.vip4 = b->src;
	return stack_new(b->base, &cfg, &cb, b, &b->st) == 0 ? 0 : -1;
}

static void
bench_stop(struct bench *b)
{
	stack_del(b->st);
	b->st = NULL;
	event_base_free(b->base);
	b->base = NULL;
}

/* Runs the loop until every flow in [from, to) got its SYN-ACK (or a RST)
 * or timeout_ms passed; returns how many got a SYN-ACK. */
static size_t
wait_synacks(struct bench *b, size_t from, size_t to, uint64_t timeout_ms)
{
	uint64_t end = mono_ns() + timeout_ms * 1000000u;
	size_t i, ok;

	for (;;) {
		size_t pending = 0;

		for (i = from, ok = 0; i < to; i++) {
			if (b->fl[i].state == 1)
				pending++;
			else if (b->fl[i].state == 2)
				ok++;
		}
		if (pending == 0 || mono_ns() > end)
			return ok;
		event_base_loop(b->base, EVLOOP_ONCE);
	}
}

/* ---------------------------------------------------------------- idle */

struct idle_result {
	double cpu_s, wall_s;
	long wakeups; /* not counting the one that ends the measurement */
};

/* Runs the event loop for secs seconds with nothing but the stack's own
 * timers (and the relay's sockets) on it. */
static void
measure_idle(struct bench *b, unsigned secs, struct idle_result *r)
{
	struct timeval tv = { (time_t)secs, 0 };
	double cpu0 = ru_cpu(RUSAGE_THREAD);
	long w0 = ru_wakeups(RUSAGE_THREAD);
	uint64_t t0 = mono_ns();

	event_base_loopexit(b->base, &tv);
	event_base_dispatch(b->base);
	r->cpu_s = ru_cpu(RUSAGE_THREAD) - cpu0;
	r->wall_s = (double)(mono_ns() - t0) / 1e9;
	r->wakeups = ru_wakeups(RUSAGE_THREAD) - w0 - 1;
	if (r->wakeups < 0)
		r->wakeups = 0;
}

/* A stack without flows. */
static int
run_idle_empty(uint16_t mtu, unsigned secs, struct idle_result *r)
{
	struct bench b;

	memset(&b, 0, sizeof(b));
	if (bench_start(&b, mtu, 1) != 0)
		return -1;
	measure_idle(&b, secs, r);
	bench_stop(&b);
	return 0;
}

/* ---------------------------------------------------------------- flows */

/* The loopback listener lives in a child process, which accepts every
 * connection and keeps it open: the accepted sockets then need no
 * descriptors (and no memory) in the process measured. The control socket
 * carries the port, then answers each byte with a count. */
struct acceptor {
	pid_t pid;
	int ctl;
	uint16_t port;
};

struct acceptor_count {
	size_t accepted;
	int err; /* errno of a failed accept, or 0 */
};

static void __attribute__((noreturn))
acceptor_main(int ctl, size_t cap)
{
	struct acceptor_count k = { 0, 0 };
	uint16_t port = 0;
	int lfd = listen_loopback(4096, 0, &port);
	int *fds = malloc(cap * sizeof(*fds));

	if (fds == NULL && lfd >= 0) {
		close(lfd);
		lfd = -1;
		port = 0;
	}
	if (write(ctl, &port, sizeof(port)) != (ssize_t)sizeof(port) || lfd < 0)
		_exit(1);
	for (;;) {
		struct pollfd pf[2] = { { lfd, POLLIN, 0 }, { ctl, POLLIN, 0 } };

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents & POLLIN) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c < 0 && errno != EINTR && errno != EAGAIN)
				k.err = errno;
			else if (c >= 0 && k.accepted < cap)
				fds[k.accepted++] = c;
			else if (c >= 0)
				close(c);
		}
		if (pf[1].revents) {
			char x;

			if (read(ctl, &x, 1) != 1 ||
			    write(ctl, &k, sizeof(k)) != (ssize_t)sizeof(k))
				break; /* the parent is done */
		}
	}
	_exit(0); /* the kernel closes every accepted socket */
}

static int
acceptor_start(struct acceptor *a, size_t cap)
{
	int sv[2];

	a->pid = -1;
	a->ctl = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	fflush(NULL);
	a->pid = fork();
	if (a->pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (a->pid == 0) {
		close(sv[0]);
		acceptor_main(sv[1], cap);
	}
	close(sv[1]);
	a->ctl = sv[0];
	if (read(a->ctl, &a->port, sizeof(a->port)) != (ssize_t)sizeof(a->port) ||
	    a->port == 0)
		return -1;
	return 0;
}

static int
acceptor_count(struct acceptor *a, struct acceptor_count *pk)
{
	char x = 'n';

	if (write(a->ctl, &x, 1) != 1 ||
	    read(a->ctl, pk, sizeof(*pk)) != (ssize_t)sizeof(*pk))
		return -1;
	return 0;
}

static void
acceptor_stop(struct acceptor *a)
{
	if (a->ctl >= 0)
		close(a->ctl);
	if (a->pid > 0)
		(void)waitpid(a->pid, NULL, 0);
	a->ctl = -1;
	a->pid = -1;
}

/* Makes room for need descriptors; 0, or -1 with a reason in why. */
static int
raise_nofile(rlim_t need, char *why, size_t whylen)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(why, whylen, "getrlimit: %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur >= need)
		return 0;
	rl.rlim_cur = need;
	if (rl.rlim_max < need)
		rl.rlim_max = need; /* needs CAP_SYS_RESOURCE */
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		snprintf(why, whylen,
			 "RLIMIT_NOFILE is %llu (hard %llu), %llu needed: %s",
			 (unsigned long long)rl.rlim_cur,
			 (unsigned long long)rl.rlim_max,
			 (unsigned long long)need, strerror(errno));
		return -1;
	}
	return 0;
}

struct flows_result {
	int skipped, failed;
	char why[160];
	size_t opened;
	uint64_t rss_before, rss_after, lwip_bytes;
	double first_s, last_s; /* opening the first / last FLOWS_TIMED flows */
	struct idle_result idle;
};

static void
run_flows(size_t n, uint16_t mtu, unsigned idle_s, struct flows_result *r)
{
	struct bench b;
	struct acceptor acc;
	struct acceptor_count ak;
	struct stack_counters k;
	size_t i, from;
	uint64_t t_first = 0, t_last = 0;

	memset(&b, 0, sizeof(b));
	acc.pid = -1;
	acc.ctl = -1;
	/* one upstream socket per flow here; the child inherits the limit */
	/* the stack keeps fd_reserve (at most 1024) for sessions and ops */
	if (raise_nofile((rlim_t)(n + 1024 + 64), r->why, sizeof(r->why)) != 0) {
		r->skipped = 1;
		return;
	}
	if (acceptor_start(&acc, n) != 0) {
		snprintf(r->why, sizeof(r->why), "listener: %s", strerror(errno));
		r->failed = 1;
		goto out;
	}
	b.nfl = n;
	b.fl = calloc(n, sizeof(*b.fl));
	if (b.fl == NULL || bench_start(&b, mtu, (uint32_t)n) != 0) {
		snprintf(r->why, sizeof(r->why), "setup failed");
		r->failed = 1;
		goto out;
	}
	memset(b.fl, 0, n * sizeof(*b.fl)); /* touched: in the baseline */
	b.dport = acc.port;

	r->rss_before = rss_bytes();
	for (from = 0; from < n; from += BATCH) {
		size_t to = from + BATCH < n ? from + BATCH : n;

		if (from == 0)
			t_first = mono_ns();
		if (from == FLOWS_TIMED)
			r->first_s = (double)(mono_ns() - t_first) / 1e9;
		if (n >= 2 * FLOWS_TIMED && from == (n - FLOWS_TIMED) / BATCH * BATCH)
			t_last = mono_ns();

		for (i = from; i < to; i++)
			client_syn(&b, i);
		if (wait_synacks(&b, from, to, 5000) != to - from) {
			stack_get_counters(b.st, &k);
			snprintf(r->why, sizeof(r->why),
				 "flow %zu: no SYN-ACK (%llu refused for descriptors)",
				 from, (unsigned long long)k.emfile);
			r->failed = 1;
			goto out;
		}
		for (i = from; i < to; i++)
			client_ack(&b, i);
		event_base_loop(b.base, EVLOOP_NONBLOCK);
	}
	if (t_last != 0)
		r->last_s = (double)(mono_ns() - t_last) / 1e9;
	for (i = 0; i < 500; i++) {
		if (acceptor_count(&acc, &ak) != 0 || ak.accepted >= n || ak.err)
			break;
		(void)poll(NULL, 0, 10);
	}
	stack_get_counters(b.st, &k);
	r->opened = (size_t)k.flows_tcp;
	if (k.flows_tcp != n || k.halfopen_tcp != 0 || ak.accepted != n) {
		snprintf(r->why, sizeof(r->why),
			 "%llu flows open, %llu half-open, %zu accepted of %zu (%s)",
			 (unsigned long long)k.flows_tcp,
			 (unsigned long long)k.halfopen_tcp, ak.accepted, n,
			 ak.err ? strerror(ak.err) : "no accept error");
		r->failed = 1;
		goto out;
	}
	r->rss_after = rss_bytes();
	r->lwip_bytes = k.lwip_mem_used;

	/* what the idle flows cost the event loop: lwIP's TCP timer */
	measure_idle(&b, idle_s, &r->idle);
	stack_get_counters(b.st, &k);
	if (k.flows_tcp != n) {
		snprintf(r->why, sizeof(r->why), "flows closed while idle");
		r->failed = 1;
	}
out:
	if (b.st)
		bench_stop(&b);
	else if (b.base)
		event_base_free(b.base);
	acceptor_stop(&acc);
	free(b.fl);
}

/* ---------------------------------------------------------------- throughput */

struct sink {
	int lfd, efd;
	uint64_t want;
	_Atomic uint64_t got;
	double cpu_s; /* the sink thread's own CPU */
};

static void *
sink_main(void *arg)
{
	struct sink *s = arg;
	size_t cap = 1 << 18;
	uint8_t *buf = malloc(cap);
	uint64_t one = 1;
	int fd, signalled = 0;
	double c0 = ru_cpu(RUSAGE_THREAD);

	fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	while (fd >= 0 && buf != NULL) {
		ssize_t r = recv(fd, buf, cap, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		atomic_fetch_add(&s->got, (uint64_t)r);
		if (!signalled && atomic_load(&s->got) >= s->want) {
			s->cpu_s = ru_cpu(RUSAGE_THREAD) - c0;
			signalled = 1;
			if (write(s->efd, &one, sizeof(one)) < 0)
				break;
		}
	}
	if (!signalled) /* woke the relay thread anyway: it checks got */
		(void)!write(s->efd, &one, sizeof(one));
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static void
sink_done_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;

	(void)what;
	(void)arg;
	(void)!read(fd, &v, sizeof(v));
}

struct tput_result {
	int failed;
	char why[160];
	uint64_t bytes;
	size_t seg;
	double wall_s, cpu_thread_s, cpu_proc_s, cpu_sink_s;
};

static void
run_tput(uint64_t total, uint16_t mtu, struct tput_result *r)
{
	struct bench b;
	struct sink s;
	struct cflow *c;
	struct event *ev = NULL;
	pthread_t th;
	int th_ok = 0;
	uint8_t *pkt = NULL;
	size_t seg = (size_t)mtu - 40, i;
	uint32_t paysum;
	double ct0, cp0;
	uint64_t t0, last_progress, sent = 0; /* bytes up to snd_nxt */
	uint32_t last_una;

	memset(&b, 0, sizeof(b));
	memset(&s, 0, sizeof(s));
	s.lfd = s.efd = -1;
	r->bytes = total;
	r->seg = seg;
	b.nfl = 1;
	b.fl = calloc(1, sizeof(*b.fl));
	pkt = malloc(40 + seg);
	if (b.fl == NULL || pkt == NULL || bench_start(&b, mtu, 1) != 0)
		goto fail_setup;
	c = &b.fl[0];
	s.want = total;
	s.lfd = listen_loopback(16, 0, &b.dport);
	s.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s.lfd < 0 || s.efd < 0)
		goto fail_setup;
	ev = event_new(b.base, s.efd, EV_READ | EV_PERSIST, sink_done_cb, NULL);
	if (ev == NULL || event_add(ev, NULL) != 0 ||
	    pthread_create(&th, NULL, sink_main, &s) != 0)
		goto fail_setup;
	th_ok = 1;

	client_syn(&b, 0);
	if (wait_synacks(&b, 0, 1, 5000) != 1) {
		snprintf(r->why, sizeof(r->why), "no SYN-ACK");
		r->failed = 1;
		goto out;
	}
	client_ack(&b, 0);

	/* every full segment carries the same payload: its sum once */
	for (i = 0; i < seg; i++)
		pkt[40 + i] = (uint8_t)(i * 7u + 3u);
	paysum = fold16(cksum_add(0, pkt + 40, seg));
	last_una = c->snd_una;
	ct0 = ru_cpu(RUSAGE_THREAD);
	cp0 = ru_cpu(RUSAGE_SELF);
	t0 = last_progress = mono_ns();
	while (atomic_load(&s.got) < total) {
		int progress = 0;

		while (sent < total && c->state == 3 &&
		       (uint64_t)(uint32_t)(c->snd_nxt - c->snd_una) + seg <= c->wnd) {
			size_t n = total - sent < seg ? (size_t)(total - sent) : seg;
			uint32_t ps = n == seg ? paysum : fold16(cksum_add(0, pkt + 40, n));

			tcp_header(pkt, &b.src, &b.dst, SPORT_BASE, b.dport,
				   c->snd_nxt, c->rcv_nxt, PKT_TCP_ACK | PKT_TCP_PSH,
				   0, n, ps);
			(void)stack_input(b.st, &b, &b.client, pkt, 40 + n);
			c->snd_nxt += (uint32_t)n;
			sent += n;
			progress = 1;
		}
		if (c->state < 0) {
			snprintf(r->why, sizeof(r->why), "flow reset after %llu bytes",
				 (unsigned long long)sent);
			r->failed = 1;
			goto out;
		}
		if (c->snd_una != last_una) {
			last_una = c->snd_una;
			last_progress = mono_ns();
		} else if (c->snd_una != c->snd_nxt &&
			   mono_ns() - last_progress > STALL_MS * 1000000ull) {
			/* a segment was dropped: go back to the first unacked */
			sent -= (uint32_t)(c->snd_nxt - c->snd_una);
			c->snd_nxt = c->snd_una;
			last_progress = mono_ns();
		}
		if (mono_ns() - t0 > 120 * 1000000000ull) {
			snprintf(r->why, sizeof(r->why), "stalled after %llu bytes",
				 (unsigned long long)atomic_load(&s.got));
			r->failed = 1;
			goto out;
		}
		/* a full window: wait for the host socket (or a timer) */
		event_base_loop(b.base, progress ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
	}
	r->wall_s = (double)(mono_ns() - t0) / 1e9;
	r->cpu_thread_s = ru_cpu(RUSAGE_THREAD) - ct0;
	r->cpu_proc_s = ru_cpu(RUSAGE_SELF) - cp0;
	goto out;
fail_setup:
	snprintf(r->why, sizeof(r->why), "setup failed: %s", strerror(errno));
	r->failed = 1;
out:
	if (b.st)
		bench_stop(&b); /* RST to the client, the sink sees its socket close */
	else if (b.base)
		event_base_free(b.base);
	if (th_ok) {
		pthread_join(th, NULL);
		r->cpu_sink_s = s.cpu_s;
	}
	if (ev)
		event_free(ev);
	if (s.lfd >= 0)
		close(s.lfd);
	if (s.efd >= 0)
		close(s.efd);
	free(pkt);
	free(b.fl);
}

/* ---------------------------------------------------------------- main */

static void
usage(void)
{
	fprintf(stderr, "usage: stack_flows [-n flows] [-b bytes] [-m mtu] "
			"[-i idle-seconds]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct flows_result fr;
	struct tput_result tr;
	struct idle_result ir;
	int idle_ok;
	unsigned long long nflows = 10000, bytes = 1000ull * 1000 * 1000;
	unsigned long mtu = 1280, idle_s = 3;
	int opt, rc = 0;

	while ((opt = getopt(argc, argv, "n:b:m:i:")) != -1) {
		char *end;

		errno = 0;
		switch (opt) {
		case 'n':
			nflows = strtoull(optarg, &end, 10);
			if (*end || errno || nflows == 0 || nflows > 50000)
				usage();
			break;
		case 'b':
			bytes = strtoull(optarg, &end, 10);
			if (*end || errno || bytes == 0)
				usage();
			break;
		case 'm':
			mtu = strtoul(optarg, &end, 10);
			if (*end || errno || mtu < 1280 || mtu > 1500)
				usage();
			break;
		case 'i':
			idle_s = strtoul(optarg, &end, 10);
			if (*end || errno || idle_s == 0 || idle_s > 600)
				usage();
			break;
		default:
			usage();
		}
	}

	memset(&fr, 0, sizeof(fr));
	memset(&tr, 0, sizeof(tr));
	memset(&ir, 0, sizeof(ir));
	idle_ok = run_idle_empty((uint16_t)mtu, (unsigned)idle_s, &ir) == 0;
	run_flows((size_t)nflows, (uint16_t)mtu, (unsigned)idle_s, &fr);
	run_tput(bytes, (uint16_t)mtu, &tr);

	printf("| measurement | value |\n|---|---|\n");
	if (!idle_ok) {
		printf("| idle stack | FAILED: setup |\n");
		rc = 1;
	} else {
		printf("| event-loop wake-ups while idle, no flows | %.1f /s |\n",
		       (double)ir.wakeups / ir.wall_s);
	}
	if (tr.failed) {
		printf("| TCP throughput, 1 flow | FAILED: %s |\n", tr.why);
		rc = 1;
	} else {
		double gb = (double)tr.bytes / 1e9;

		printf("| TCP throughput, 1 flow, %.2f GB, MTU %lu (%zu-byte segments) "
		       "| %.2f Gbit/s |\n",
		       gb, mtu, tr.seg, (double)tr.bytes * 8 / tr.wall_s / 1e9);
		printf("| CPU, relay thread (stack + client packets) | %.2f s/GB |\n",
		       tr.cpu_thread_s / gb);
		printf("| CPU, sink thread (loopback reads) | %.2f s/GB |\n",
		       tr.cpu_sink_s / gb);
		printf("| CPU, whole process | %.2f s/GB |\n", tr.cpu_proc_s / gb);
	}
	if (fr.skipped) {
		printf("| memory per idle TCP flow | skipped: %s |\n", fr.why);
	} else if (fr.failed) {
		printf("| memory per idle TCP flow | FAILED: %s |\n", fr.why);
		rc = 1;
	} else {
		printf("| RSS per idle TCP flow (%zu flows; %.1f -> %.1f MiB) | %llu bytes |\n",
		       fr.opened, (double)fr.rss_before / 1048576.0,
		       (double)fr.rss_after / 1048576.0,
		       (unsigned long long)((fr.rss_after - fr.rss_before) / fr.opened));
		printf("| of which lwIP heap per flow | %llu bytes |\n",
		       (unsigned long long)(fr.lwip_bytes / fr.opened));
		if (fr.last_s > 0)
			printf("| flows opened per second: the first %d / the last %d of %zu | "
			       "%.0f / %.0f |\n",
			       FLOWS_TIMED, FLOWS_TIMED, fr.opened, FLOWS_TIMED / fr.first_s,
			       FLOWS_TIMED / fr.last_s);
		printf("| event-loop wake-ups while idle, %zu TCP flows | %.1f /s |\n",
		       fr.opened, (double)fr.idle.wakeups / fr.idle.wall_s);
		printf("| CPU while idle, %zu TCP flows | %.1f ms/s |\n", fr.opened,
		       fr.idle.cpu_s * 1000 / fr.idle.wall_s);
	}
	return rc;
}
