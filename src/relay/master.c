/*
 * master.c — zgate-relay's master process with `workers: N` (master.h).
 */
#include "relay/master.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "log.h"
#include "masque/udp.h"
#include "relay/audit.h"
#include "relay/ipam.h"
#include "relay/metrics_merge.h"
#include "relay/polapi.h"
#include "relay/ops.h"
#include "relay/wctl.h"
#include "relay/wpool.h"
#include "sdnotify.h"
#include "zg_build.h"
#include "zg_err.h"

/* A worker answers within one turn of its loop; a busy one may take a
 * few milliseconds. The master's loop waits meanwhile (it carries no
 * tunnel traffic). */
#define CTL_TIMEOUT_MS 1000
#define READY_TIMEOUT_MS 100
#define TICK_MS 100
#define ALINE_MAX 2048
#define APIPE_SIZE (1024 * 1024)

struct master {
	const struct relay_config *cfg;
	struct ipam *ipam;
	struct master_env *env;
	struct event_base *base;
	struct wpool *pool;
	struct ops *ops, *admin_ops;
	struct audit *audit;
	struct audit_out aout;
	int aout_open;
	struct event *ev_audit, *ev_audit_w;
	struct event *ev_ap[CONFIG_WORKERS_MAX];
	char apart[CONFIG_WORKERS_MAX][ALINE_MAX]; /* a line cut by read() */
	size_t aplen[CONFIG_WORKERS_MAX];
	int apskip[CONFIG_WORKERS_MAX]; /* skipping an overlong line */
	uint64_t alines_bad;
	struct event *ev_term, *ev_int, *ev_hup, *ev_tick, *ev_watchdog;
	pid_t pid_seen[CONFIG_WORKERS_MAX];
	uint8_t ready[CONFIG_WORKERS_MAX];
	/* each worker's /ready note as last asked (ipam.backend api: about
	 * zgate-api), once a second; /ready shows them without waiting */
	char note[CONFIG_WORKERS_MAX][400];
	unsigned ticks;
	int all_ready_once, draining, fatal;
	const char *stop_reason;
	uint64_t saved_changes;
	struct ipam_savelog savelog;
	uint64_t started_ms;
	/* policy_api: the master fetches, the workers' watches on the
	 * policy file reload what it writes */
	struct polapi *polapi;
	struct evdns_base *dns;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------ */
/* descriptors                                                        */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
	*fd = -1;
}

static void env_init(struct master_env *env, unsigned n)
{
	unsigned i;

	env->n = n;
	for (i = 0; i < CONFIG_WORKERS_MAX; i++) {
		env->udp[i] = -1;
		env->ctl[i][0] = env->ctl[i][1] = -1;
		env->apipe[i][0] = env->apipe[i][1] = -1;
	}
	env->steer.n = env->notes.n = env->xfer.n = 0;
	for (i = 0; i < STEER_MAX_WORKERS; i++) {
		env->steer.rd[i] = env->steer.wr[i] = -1;
		env->notes.rd[i] = env->notes.wr[i] = -1;
		env->xfer.rd[i] = env->xfer.wr[i] = -1;
	}
}

static void env_close(struct master_env *env)
{
	for (unsigned i = 0; i < CONFIG_WORKERS_MAX; i++) {
		close_fd(&env->udp[i]);
		close_fd(&env->ctl[i][0]);
		close_fd(&env->ctl[i][1]);
		close_fd(&env->apipe[i][0]);
		close_fd(&env->apipe[i][1]);
	}
	steer_group_close(&env->steer);
	steer_group_close(&env->notes);
	steer_group_close(&env->xfer);
}

int master_open(struct master_env *env, unsigned n, const char *listen, char *err,
		size_t errlen)
{
	char e2[256];
	unsigned i;
	int rv;

	env_init(env, n);
	if (n < 2 || n > CONFIG_WORKERS_MAX) {
		(void)snprintf(err, errlen, "workers: %u: 2 to %u for a master", n,
			       CONFIG_WORKERS_MAX);
		return ZG_ERR_INVAL;
	}
	rv = masque_udp_bind_group(listen, n, env->udp, err, errlen);
	if (rv != 0)
		return rv;
	if (steer_attach_cbpf(env->udp[0], n, e2, sizeof(e2)) != 0)
		log_warnx("%s: the kernel does not steer by connection ID; the workers hand each "
			  "other the datagrams that reach the wrong one",
			  e2);
	if ((rv = steer_group_open(&env->steer, n, err, errlen)) != 0 ||
	    (rv = steer_group_open(&env->notes, n, err, errlen)) != 0 ||
	    (rv = steer_group_open(&env->xfer, n, err, errlen)) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		if ((rv = wctl_pair_open(env->ctl[i], err, errlen)) != 0)
			goto fail;
		if (pipe2(env->apipe[i], O_CLOEXEC) != 0) {
			(void)snprintf(err, errlen, "the workers' audit pipes: %s", strerror(errno));
			rv = ZG_ERR_IO;
			goto fail;
		}
		/* room for bursts of lines while the master's loop is busy;
		 * the kernel caps it (pipe-max-size) without privileges */
		(void)fcntl(env->apipe[i][1], F_SETPIPE_SZ, APIPE_SIZE);
		(void)fcntl(env->apipe[i][0], F_SETFL, O_NONBLOCK);
	}
	return 0;
fail:
	env_close(env);
	return rv;
}

void master_worker_keep(struct master_env *env, unsigned self)
{
	for (unsigned i = 0; i < CONFIG_WORKERS_MAX; i++) {
		close_fd(&env->ctl[i][0]);
		close_fd(&env->apipe[i][0]);
		if (i == self)
			continue;
		close_fd(&env->udp[i]);
		close_fd(&env->ctl[i][1]);
		close_fd(&env->apipe[i][1]);
	}
	steer_group_keep(&env->steer, self);
	steer_group_keep(&env->notes, self);
	steer_group_keep(&env->xfer, self);
}

static int kept(const struct master_env *env, unsigned self, int fd)
{
	if (fd <= 2 || fd == env->udp[self] || fd == env->ctl[self][1] || fd == env->apipe[self][1])
		return 1;
	for (unsigned w = 0; w < env->n; w++)
		if (fd == env->steer.rd[w] || fd == env->steer.wr[w] || fd == env->notes.rd[w] ||
		    fd == env->notes.wr[w] || fd == env->xfer.rd[w] || fd == env->xfer.wr[w])
			return 1; /* only self's are still open after master_worker_keep() */
	return 0;
}

int master_worker_close_inherited(const struct master_env *env, unsigned self)
{
	int fds[1024], n = 0, closed = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL && n < (int)(sizeof(fds) / sizeof(fds[0]))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end != '\0' || end == e->d_name || fd == dirfd(d) || kept(env, self, (int)fd))
			continue;
		fds[n++] = (int)fd;
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		closed += close(fds[i]) == 0;
	return closed;
}

int master_audit_wr(const struct master_env *env, unsigned i)
{
	return i < env->n ? env->apipe[i][1] : -1;
}

int master_note_put(const struct master_env *env, unsigned self, int to, uint8_t kind,
		    const void *payload, size_t len)
{
	uint8_t msg[MASTER_NOTE_MAX];
	int rv = 0;

	if (len > MASTER_NOTE_PAYLOAD_MAX || self >= env->n ||
	    (to != MASTER_NOTE_ALL && (to < 0 || (unsigned)to >= env->n || (unsigned)to == self)))
		return ZG_ERR_INVAL;
	msg[0] = kind;
	msg[1] = (uint8_t)self;
	if (len > 0)
		memcpy(msg + 2, payload, len);
	for (unsigned w = 0; w < env->n; w++) {
		if (w == self || env->notes.wr[w] < 0 || (to != MASTER_NOTE_ALL && w != (unsigned)to))
			continue;
		if (send(env->notes.wr[w], msg, len + 2, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			rv = errno == EAGAIN || errno == EWOULDBLOCK ? ZG_ERR_LIMIT : ZG_ERR_IO;
	}
	return rv;
}

int master_note_get(const struct master_env *env, unsigned self, uint8_t *kind,
		    unsigned *pfrom, uint8_t *payload, size_t cap, size_t *plen)
{
	uint8_t msg[MASTER_NOTE_MAX + 1];
	ssize_t n;

	if (self >= env->n || env->notes.rd[self] < 0 || cap < MASTER_NOTE_PAYLOAD_MAX)
		return ZG_ERR_INVAL;
	n = recv(env->notes.rd[self], msg, sizeof(msg), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : ZG_ERR_IO;
	if (n < 2 || n > MASTER_NOTE_MAX || msg[1] >= env->n || msg[1] == self)
		return ZG_ERR_MALFORMED;
	*kind = msg[0];
	*pfrom = msg[1];
	*plen = (size_t)n - 2;
	memcpy(payload, msg + 2, *plen);
	return 1;
}

int master_note_send(const struct master_env *env, unsigned self, uint8_t kind,
		     const char *client)
{
	size_t n = strlen(client);

	if (n == 0 || n > MASTER_NOTE_ID_MAX)
		return ZG_ERR_INVAL;
	return master_note_put(env, self, MASTER_NOTE_ALL, kind, client, n);
}

int master_note_recv(const struct master_env *env, unsigned self, uint8_t *kind, char *client,
		     size_t cap)
{
	uint8_t payload[MASTER_NOTE_PAYLOAD_MAX];
	unsigned from;
	size_t n;
	int rv;

	if (cap < MASTER_NOTE_ID_MAX + 1)
		return ZG_ERR_INVAL;
	if ((rv = master_note_get(env, self, kind, &from, payload, sizeof(payload), &n)) <= 0)
		return rv;
	if (n == 0 || n > MASTER_NOTE_ID_MAX || memchr(payload, '\0', n) != NULL)
		return ZG_ERR_MALFORMED;
	memcpy(client, payload, n);
	client[n] = '\0';
	return 1;
}

int master_xfer_send(const struct master_env *env, unsigned self, unsigned to, uint8_t kind,
		     uint64_t sid, const uint8_t *pkt, size_t len)
{
	uint8_t hdr[MASTER_XFER_HDR];
	struct iovec iov[2];
	struct msghdr mh;

	if (to >= env->n || to == self || self >= env->n || len == 0 ||
	    len > MASTER_XFER_PKT_MAX || env->xfer.wr[to] < 0)
		return ZG_ERR_INVAL;
	hdr[0] = kind;
	hdr[1] = (uint8_t)self;
	hdr[2] = hdr[3] = 0;
	for (int i = 0; i < 8; i++)
		hdr[4 + i] = (uint8_t)(sid >> (56 - 8 * i));
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)pkt;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	if (sendmsg(env->xfer.wr[to], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? ZG_ERR_LIMIT
										   : ZG_ERR_IO;
	return 0;
}

int master_xfer_recv(const struct master_env *env, unsigned self, uint8_t *buf, size_t cap,
		     uint8_t *kind, unsigned *pfrom, uint64_t *sid, const uint8_t **ppkt,
		     size_t *plen)
{
	ssize_t n;

	if (self >= env->n || env->xfer.rd[self] < 0 || cap < MASTER_XFER_HDR + MASTER_XFER_PKT_MAX)
		return ZG_ERR_INVAL;
	n = recv(env->xfer.rd[self], buf, cap, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : ZG_ERR_IO;
	if (n <= MASTER_XFER_HDR || (size_t)n > cap || buf[1] >= env->n || buf[1] == self)
		return ZG_ERR_MALFORMED;
	*kind = buf[0];
	*pfrom = buf[1];
	*sid = 0;
	for (int i = 0; i < 8; i++)
		*sid = (*sid << 8) | buf[4 + i];
	*ppkt = buf + MASTER_XFER_HDR;
	*plen = (size_t)n - MASTER_XFER_HDR;
	return 1;
}

/* ------------------------------------------------------------------ */
/* session lines                                                      */

static size_t put_field(char *buf, size_t cap, size_t k, const char *s)
{
	for (; s != NULL && *s != '\0' && k + 1 < cap; s++)
		buf[k++] = *s == '\t' || *s == '\n' || *s == '\\' ? '?' : *s;
	return k;
}

size_t master_session_line(const struct ops_session *s, char *buf, size_t cap)
{
	char num[96];
	size_t k = 0;

	k = put_field(buf, cap, k, s->client);
	if (k + 1 < cap)
		buf[k++] = '\t';
	k = put_field(buf, cap, k, s->addr4);
	if (k + 1 < cap)
		buf[k++] = '\t';
	k = put_field(buf, cap, k, s->addr6);
	if (k + 1 < cap)
		buf[k++] = '\t';
	k = put_field(buf, cap, k, s->peer);
	(void)snprintf(num, sizeof(num), "\t%lld\t%llu\t%llu\t", (long long)s->since,
		       (unsigned long long)s->bytes_up, (unsigned long long)s->bytes_down);
	for (const char *p = num; *p != '\0' && k + 1 < cap; p++)
		buf[k++] = *p;
	k = put_field(buf, cap, k, s->cert_serial);
	if (k + 1 < cap)
		buf[k++] = '\n';
	buf[k] = '\0';
	return k;
}

int master_session_parse(char *line, struct ops_session *s)
{
	char *f[8], *end;
	size_t n = 0;

	line[strcspn(line, "\n")] = '\0';
	f[n++] = line;
	for (char *p = line; *p != '\0'; p++) {
		if (*p != '\t')
			continue;
		if (n == 8)
			return ZG_ERR_MALFORMED;
		*p = '\0';
		f[n++] = p + 1;
	}
	if (n != 8 || f[0][0] == '\0')
		return ZG_ERR_MALFORMED;
	memset(s, 0, sizeof(*s));
	s->client = f[0];
	s->addr4 = f[1];
	s->addr6 = f[2][0] != '\0' ? f[2] : NULL;
	s->peer = f[3];
	errno = 0;
	s->since = strtoll(f[4], &end, 10);
	if (*end != '\0' || end == f[4] || errno != 0)
		return ZG_ERR_MALFORMED;
	s->bytes_up = strtoull(f[5], &end, 10);
	if (*end != '\0' || end == f[5] || errno != 0)
		return ZG_ERR_MALFORMED;
	s->bytes_down = strtoull(f[6], &end, 10);
	if (*end != '\0' || end == f[6] || errno != 0)
		return ZG_ERR_MALFORMED;
	s->cert_serial = f[7][0] != '\0' ? f[7] : NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* the audit trail: the workers' lines and the master's own           */

static void audit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct timeval tv = { 0, 50000 };

	(void)fd;
	(void)what;
	if (audit_drain(m->audit) != 1)
		return;
	if (m->aout.can_wait && event_add(m->ev_audit_w, NULL) == 0)
		return;
	(void)evtimer_add(m->ev_audit, &tv);
}

static void audit_wake(void *ctx)
{
	struct master *m = ctx;
	struct timeval tv = { 0, AUDIT_FLUSH_DELAY_MS * 1000 };

	(void)evtimer_add(m->ev_audit, &tv);
}

/* Whole lines of worker i's bytes into the trail; a line cut by the read
 * waits for its end; one longer than any audit line is dropped. */
static void apipe_take(struct master *m, unsigned i, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) + 1 : n;

		if (m->apskip[i]) {
			if (nl != NULL)
				m->apskip[i] = 0;
		} else if (m->aplen[i] + take > ALINE_MAX) {
			m->alines_bad++;
			m->aplen[i] = 0;
			m->apskip[i] = nl == NULL;
		} else if (nl != NULL && m->aplen[i] == 0) {
			if (audit_raw(m->audit, p, take) != 0)
				m->alines_bad++;
		} else {
			memcpy(m->apart[i] + m->aplen[i], p, take);
			m->aplen[i] += take;
			if (nl != NULL) {
				if (audit_raw(m->audit, m->apart[i], m->aplen[i]) != 0)
					m->alines_bad++;
				m->aplen[i] = 0;
			}
		}
		p += take;
		n -= take;
	}
}

/* Reads what worker i's pipe holds; 1 when something was read. */
static int apipe_read(struct master *m, unsigned i)
{
	char buf[65536];
	int got = 0;

	for (;;) {
		ssize_t n = read(m->env->apipe[i][0], buf, sizeof(buf));

		if (n <= 0)
			break;
		apipe_take(m, i, buf, (size_t)n);
		got = 1;
	}
	return got;
}

static void apipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	(void)what;
	for (unsigned i = 0; i < m->env->n; i++) {
		if (m->env->apipe[i][0] == fd && apipe_read(m, i))
			audit_cb(-1, 0, m);
	}
}

static int audit_start(struct master *m, char *err, size_t errlen)
{
	struct audit_config ac;
	int rv;

	if (audit_out_open(STDOUT_FILENO, &m->aout) != 0) {
		(void)snprintf(err, errlen, "stdout (the audit trail): %s", strerror(errno));
		return ZG_ERR_IO;
	}
	m->aout_open = 1;
	m->ev_audit = evtimer_new(m->base, audit_cb, m);
	m->ev_audit_w = event_new(m->base, m->aout.fd, EV_WRITE, audit_cb, m);
	if (m->ev_audit == NULL || m->ev_audit_w == NULL)
		return ZG_ERR_NOMEM;
	memset(&ac, 0, sizeof(ac));
	ac.write = audit_out_write;
	ac.write_ctx = &m->aout;
	ac.wake = audit_wake;
	ac.wake_ctx = m;
	ac.deny_per_s = 0; /* the workers summarise their own denies */
	ac.buffer_bytes = (size_t)m->cfg->audit_buffer_kib * 1024u;
	if ((rv = audit_new(&ac, &m->audit)) != 0)
		return rv;
	for (unsigned i = 0; i < m->env->n; i++) {
		m->ev_ap[i] =
			event_new(m->base, m->env->apipe[i][0], EV_READ | EV_PERSIST, apipe_cb, m);
		if (m->ev_ap[i] == NULL || event_add(m->ev_ap[i], NULL) != 0)
			return ZG_ERR_NOMEM;
	}
	log_info("audit trail on stdout (%s), buffer %u KiB, from %u workers", m->aout.mode,
		 m->cfg->audit_buffer_kib, m->env->n);
	return 0;
}

/* At exit: the workers' last lines, relay_stop, then up to 2 s to write. */
static void audit_stop(struct master *m)
{
	uint64_t end = mono_ms() + 2000;

	for (unsigned i = 0; i < m->env->n; i++)
		(void)apipe_read(m, i);
	if (m->started_ms != 0)
		audit_relay_stop(m->audit, m->stop_reason != NULL ? m->stop_reason : "error",
				 mono_ms() - m->started_ms);
	while (audit_drain(m->audit) == 1 && mono_ms() < end)
		(void)usleep(10000);
	if (audit_pending(m->audit) != 0)
		log_warnx("audit output not read: %zu bytes of audit lines lost at exit",
			  audit_pending(m->audit));
}

/* ------------------------------------------------------------------ */
/* asking the workers                                                 */

static int running(const struct master *m, unsigned i)
{
	return m->pool != NULL && wpool_pid(m->pool, i) != 0;
}

/* One request to every running worker at once (wctl_call_all: one
 * deadline, CTL_TIMEOUT_MS, for all). rep[i] is a new buffer (NULL when
 * out of memory) that the caller frees; ok[i] is 1 when worker i answered
 * with status 0. */
static void ask_all(struct master *m, uint8_t op, const void *req, size_t len,
		    struct evbuffer **rep, int *ok)
{
	int fds[CONFIG_WORKERS_MAX], st[CONFIG_WORKERS_MAX], res[CONFIG_WORKERS_MAX];
	unsigned i;

	for (i = 0; i < m->env->n; i++) {
		rep[i] = evbuffer_new();
		fds[i] = running(m, i) && rep[i] != NULL ? m->env->ctl[i][0] : -1;
	}
	wctl_call_all(fds, m->env->n, op, req, len, CTL_TIMEOUT_MS, rep, st, res);
	for (i = 0; i < m->env->n; i++)
		ok[i] = fds[i] >= 0 && res[i] == 0 && st[i] == 0;
}

static void free_all(struct master *m, struct evbuffer **rep)
{
	for (unsigned i = 0; i < m->env->n; i++)
		if (rep[i] != NULL)
			evbuffer_free(rep[i]);
}

/* policy_api wrote a new version over the policy file: every worker
 * reloads it now (its file watch may have already; without inotify it
 * would not at all). A worker that does not answer (restarting) loads the
 * file when it starts. */
static void policy_fetched(void *arg, uint64_t version)
{
	struct master *m = arg;
	struct evbuffer *rep[CONFIG_WORKERS_MAX];
	int ok[CONFIG_WORKERS_MAX];
	unsigned i, n = 0;

	ask_all(m, MASTER_OP_POLICY, NULL, 0, rep, ok);
	for (i = 0; i < m->env->n; i++)
		n += ok[i] ? 1u : 0u;
	free_all(m, rep);
	if (n < m->env->n)
		log_warnx("policy %" PRIu64 ": %u of %u workers confirmed the reload (the others "
			  "load the file when they start or see it change)",
			  version, n, m->env->n);
}

static void metrics_cb(void *ctx, struct evbuffer *b)
{
	struct master *m = ctx;
	struct evbuffer *rep[CONFIG_WORKERS_MAX], *own = evbuffer_new();
	struct metrics_text t[CONFIG_WORKERS_MAX + 1];
	size_t k = 0;
	unsigned i, missing = 0, alive = 0;
	char err[256];
	int ok[CONFIG_WORKERS_MAX];

	ask_all(m, MASTER_OP_METRICS, NULL, 0, rep, ok);
	for (i = 0; i < m->env->n; i++) {
		alive += running(m, i);
		if (!ok[i]) {
			missing++;
			continue;
		}
		t[k].len = evbuffer_get_length(rep[i]);
		t[k].s = (const char *)evbuffer_pullup(rep[i], -1);
		if (t[k].s == NULL) {
			missing++;
			continue;
		}
		k++;
	}
	/* the master's own share of the trail: its lines (relay_start, admin,
	 * its audit_dropped) and the workers' lines it had to drop */
	if (own != NULL &&
	    evbuffer_add_printf(own,
				"# TYPE zgate_audit_lines_total counter\n"
				"zgate_audit_lines_total %llu\n"
				"# TYPE zgate_audit_lines_dropped_total counter\n"
				"zgate_audit_lines_dropped_total %llu\n"
				"# TYPE zgate_state_save_errors_total counter\n"
				"zgate_state_save_errors_total %llu\n",
				(unsigned long long)audit_lines(m->audit),
				(unsigned long long)audit_dropped(m->audit),
				(unsigned long long)m->savelog.errors) > 0) {
		if (m->polapi != NULL) {
			uint64_t n[POLAPI_NRESULTS];

			polapi_counts(m->polapi, n);
			(void)evbuffer_add_printf(
				own,
				"# TYPE zgate_policy_api_fetches_total counter\n"
				"zgate_policy_api_fetches_total{result=\"changed\"} %llu\n"
				"zgate_policy_api_fetches_total{result=\"unchanged\"} %llu\n"
				"zgate_policy_api_fetches_total{result=\"error\"} %llu\n"
				"zgate_policy_api_fetches_total{result=\"refused\"} %llu\n",
				(unsigned long long)n[POLAPI_CHANGED],
				(unsigned long long)n[POLAPI_UNCHANGED],
				(unsigned long long)n[POLAPI_ERROR], (unsigned long long)n[POLAPI_REFUSED]);
		}
		t[k].len = evbuffer_get_length(own);
		t[k].s = (const char *)evbuffer_pullup(own, -1);
		k += t[k].s != NULL;
	}
	if (metrics_merge(b, t, k, err, sizeof(err)) != 0) {
		log_warnx("/metrics: the workers' expositions do not merge: %s", err);
		missing = m->env->n;
	}
	free_all(m, rep);
	if (own != NULL)
		evbuffer_free(own);
	evbuffer_add_printf(b,
			    "# HELP zgate_workers Worker processes configured (workers:).\n"
			    "# TYPE zgate_workers gauge\nzgate_workers %u\n"
			    "# HELP zgate_workers_running Worker processes running now.\n"
			    "# TYPE zgate_workers_running gauge\nzgate_workers_running %u\n"
			    "# HELP zgate_worker_restarts_total Workers restarted after they "
			    "exited.\n"
			    "# TYPE zgate_worker_restarts_total counter\n"
			    "zgate_worker_restarts_total %llu\n"
			    "# HELP zgate_worker_metrics_missing Workers whose figures are not in "
			    "this exposition (not running or not answering).\n"
			    "# TYPE zgate_worker_metrics_missing gauge\n"
			    "zgate_worker_metrics_missing %u\n",
			    m->env->n, alive, (unsigned long long)wpool_restarts(m->pool), missing);
	if (m->admin_ops != NULL)
		ops_admin_metrics(m->admin_ops, b);
}

static void admin_list(void *ctx, ops_session_emit_fn emit, void *ectx)
{
	struct master *m = ctx;
	struct evbuffer *rep[CONFIG_WORKERS_MAX];
	char line[1024];
	int ok[CONFIG_WORKERS_MAX];

	ask_all(m, MASTER_OP_LIST, NULL, 0, rep, ok);
	for (unsigned i = 0; i < m->env->n; i++) {
		if (!ok[i]) {
			if (running(m, i))
				log_warnx("admin: worker %u did not list its sessions", i);
			continue;
		}
		for (;;) {
			size_t n;
			char *l = evbuffer_readln(rep[i], &n, EVBUFFER_EOL_LF);
			struct ops_session s;

			if (l == NULL)
				break;
			(void)snprintf(line, sizeof(line), "%s", l);
			free(l);
			if (master_session_parse(line, &s) == 0)
				emit(ectx, &s);
		}
	}
	free_all(m, rep);
}

static int admin_kick(void *ctx, const char *client)
{
	struct master *m = ctx;
	struct evbuffer *rep[CONFIG_WORKERS_MAX];
	int ok[CONFIG_WORKERS_MAX], found = 0;

	ask_all(m, MASTER_OP_KICK, client, strlen(client), rep, ok);
	for (unsigned i = 0; i < m->env->n; i++)
		found |= ok[i];
	free_all(m, rep);
	return found ? 0 : ZG_ERR_NOTFOUND;
}

static void admin_audit(void *ctx, const char *action, const char *client, const char *caller,
			int status)
{
	struct master *m = ctx;

	audit_admin(m->audit, action, client, caller, status);
}

/* ------------------------------------------------------------------ */
/* readiness, the state file, signals                                 */

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	(void)sdnotify_send("WATCHDOG=1");
}

/* /ready waits for the first policy from zgate-api (polapi.h): a relay
 * that denies everything is started, not ready for traffic. */
static const char *policy_gate(void *ctx)
{
	const struct master *x = ctx;

	return x->polapi != NULL && !polapi_has_policy(x->polapi)
		       ? "policy: waiting for the first one from zgate-api (denying everything until then)"
		       : NULL;
}

static void all_ready(struct master *m)
{
	char st[256];
	uint64_t us;

	m->all_ready_once = 1;
	if (!m->draining)
		ops_set_state(m->ops, OPS_READY);
	log_info("zgate-relay %s ready: %u workers, QUIC on UDP %s, ops on %s (port %u)",
		 ZG_VERSION, m->env->n, m->cfg->listen, m->cfg->ops_listen, ops_port(m->ops));
	if (sdnotify_watchdog_usec(&us) == 1) {
		struct timeval tv = { (time_t)(us / 2 / 1000000), (suseconds_t)(us / 2 % 1000000) };

		m->ev_watchdog = event_new(m->base, -1, EV_PERSIST, watchdog_cb, m);
		if (m->ev_watchdog == NULL || event_add(m->ev_watchdog, &tv) != 0)
			log_warnx("no watchdog pings: out of memory");
	}
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		unsigned port = 0;

		if (getsockname(m->env->udp[0], (struct sockaddr *)&ss, &len) == 0)
			port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							      : ((struct sockaddr_in *)&ss)->sin_port);
		(void)snprintf(st, sizeof(st),
			       "READY=1\nSTATUS=ready: QUIC on UDP port %u, ops on port %u, %u workers",
			       port, ops_port(m->ops), m->env->n);
	}
	if (sdnotify_send(st) < 0)
		log_warn("cannot notify the service manager at $NOTIFY_SOCKET");
}

static void save_state(struct master *m)
{
	uint64_t c = ipam_changes(m->ipam);

	if (m->cfg->state_file[0] == '\0' || c == m->saved_changes)
		return;
	if (ipam_save_logged(m->ipam, m->cfg->state_file, &m->savelog) == 0)
		m->saved_changes = c;
}

void master_ready_merge(const char *const *notes, unsigned n, char *buf, size_t len)
{
	const char *first = NULL;
	size_t k = 0;
	unsigned i;
	int bad = 0, same = 1;

	if (len == 0)
		return;
	for (i = 0; i < n; i++)
		bad |= notes[i][0] == '!';
	for (i = 0; i < n; i++) {
		if ((notes[i][0] == '!') != bad || notes[i][bad] == '\0')
			continue;
		if (first == NULL)
			first = notes[i] + bad;
		else
			same &= strcmp(notes[i] + bad, first) == 0;
	}
	buf[0] = '\0';
	if (first == NULL || same) {
		(void)snprintf(buf, len, "%s", first != NULL ? first : "");
		return;
	}
	for (i = 0; i < n && k < len; i++) {
		int w;

		if ((notes[i][0] == '!') != bad || notes[i][bad] == '\0')
			continue;
		w = snprintf(buf + k, len - k, "%sworker %u: %s", k ? "\n" : "", i, notes[i] + bad);
		if (w < 0)
			break;
		k += (size_t)w;
	}
}

static void ready_note(void *ctx, char *buf, size_t len)
{
	struct master *m = ctx;
	const char *notes[CONFIG_WORKERS_MAX];
	unsigned i;

	for (i = 0; i < m->env->n; i++)
		notes[i] = m->note[i];
	master_ready_merge(notes, m->env->n, buf, len);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct evbuffer *rep[CONFIG_WORKERS_MAX];
	int fds[CONFIG_WORKERS_MAX], st[CONFIG_WORKERS_MAX], res[CONFIG_WORKERS_MAX];
	unsigned i, nready = 0;
	int ask_notes;

	(void)fd;
	(void)what;
	save_state(m); /* within a tick of a change (it compares ipam_changes()) */
	ask_notes = strcmp(m->cfg->ipam_backend, "api") == 0 && m->ticks++ % 10 == 0;
	for (i = 0; i < m->env->n; i++) {
		pid_t pid = wpool_pid(m->pool, i);

		if (pid != m->pid_seen[i]) { /* started, restarted or gone */
			m->pid_seen[i] = pid;
			m->ready[i] = 0;
			m->note[i][0] = '\0';
		}
		rep[i] = pid != 0 && (!m->ready[i] || ask_notes) ? evbuffer_new() : NULL;
		fds[i] = rep[i] != NULL ? m->env->ctl[i][0] : -1;
	}
	wctl_call_all(fds, m->env->n, MASTER_OP_READY, NULL, 0, READY_TIMEOUT_MS, rep, st, res);
	for (i = 0; i < m->env->n; i++) {
		if (fds[i] >= 0 && res[i] == 0 && st[i] == 0) {
			size_t n = evbuffer_get_length(rep[i]);

			if (n >= sizeof(m->note[i]))
				n = sizeof(m->note[i]) - 1;
			(void)evbuffer_remove(rep[i], m->note[i], n);
			m->note[i][n] = '\0';
			m->ready[i] = 1;
		}
		nready += m->ready[i];
	}
	free_all(m, rep);
	if (!m->all_ready_once && nready == m->env->n)
		all_ready(m);
}

/* A worker exited: the others forget what it served (its connectors) now,
 * not when its successor says HELLO up to 5 s later; its agents reconnect
 * anyway. The note goes out as if from worker i, to every other one. */
static void on_worker_exit(struct wpool *p, unsigned i, void *cbarg)
{
	struct master *m = cbarg;

	(void)p;
	if (m->env->n > 1 && master_note_put(m->env, i, MASTER_NOTE_ALL, MASTER_NOTE_GONE, NULL, 0) != 0)
		log_warnx("cannot tell the other workers that worker %u exited", i);
}

static void on_fatal(struct wpool *p, unsigned i, void *cbarg)
{
	struct master *m = cbarg;

	log_errx("worker %u keeps exiting: stopping the relay", i);
	m->fatal = 1;
	if (m->stop_reason == NULL)
		m->stop_reason = "error";
	ops_set_state(m->ops, OPS_DRAINING);
	(void)wpool_stop(p, 2000);
}

static void on_stopped(struct wpool *p, void *cbarg)
{
	struct master *m = cbarg;

	(void)p;
	log_info("every worker has stopped");
	event_base_loopbreak(m->base);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	uint32_t grace;

	(void)what;
	if (sig == SIGHUP) {
		struct ops *ao = m->admin_ops != NULL ? m->admin_ops : m->ops;
		char aerr[512];
		int n = wpool_signal(m->pool, SIGHUP);

		log_info("SIGHUP: reloading in %d workers", n);
		if (m->cfg->admin_token_file[0] != '\0' &&
		    ops_admin_reload(ao, aerr, sizeof(aerr)) != 0)
			log_warnx("%s: keeping the admin token in force", aerr);
		return;
	}
	if (m->draining) {
		log_info("second signal: the workers stop now");
		(void)wpool_signal(m->pool, SIGTERM);
		return;
	}
	m->draining = 1;
	m->stop_reason = sig == SIGTERM ? "sigterm" : "sigint";
	ops_set_state(m->ops, OPS_DRAINING);
	(void)sdnotify_send("STOPPING=1\nSTATUS=draining");
	/* each worker drains for up to drain_grace; a worker that has not
	 * exited some time after is killed */
	grace = m->cfg->drain_grace_ms > UINT32_MAX - 5000 ? UINT32_MAX
							   : m->cfg->drain_grace_ms + 5000;
	log_info("%s: the workers drain their tunnels (up to %u ms); a second signal stops at "
		 "once",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT", m->cfg->drain_grace_ms);
	if (wpool_stop(m->pool, grace) != 0)
		event_base_loopbreak(m->base);
}

static int ops_start(struct master *m, char *err, size_t errlen)
{
	static const struct ops_admin_cbs acb = { admin_list, admin_kick, admin_audit };
	struct ops *ao;
	int rv;

	rv = ops_new(m->base, m->cfg->ops_listen, metrics_cb, m, &m->ops);
	if (rv != 0) {
		(void)snprintf(err, errlen, "ops_listen %.200s: cannot listen there",
			       m->cfg->ops_listen);
		return rv;
	}
	ops_set_limits(m->ops, m->cfg->ops_max_conns, m->cfg->ops_timeout_ms);
	ops_set_ready_note(m->ops, ready_note);
	ops_set_ready_gate(m->ops, policy_gate);
	if (m->cfg->admin_token_file[0] == '\0')
		return 0;
	ao = m->ops;
	if (m->cfg->admin_listen[0] != '\0') {
		rv = ops_new(m->base, m->cfg->admin_listen, NULL, NULL, &m->admin_ops);
		if (rv != 0) {
			(void)snprintf(err, errlen, "admin.listen %.200s: cannot listen there",
				       m->cfg->admin_listen);
			return rv;
		}
		ops_set_limits(m->admin_ops, m->cfg->ops_max_conns, m->cfg->ops_timeout_ms);
		ops_set_admin_only(m->admin_ops, 1);
		ao = m->admin_ops;
	}
	rv = ops_admin_enable(ao, m->cfg->admin_token_file, &acb, m, err, errlen);
	if (rv != 0)
		return rv;
	log_info("admin endpoint on %s (port %u), token from %s",
		 m->admin_ops != NULL ? m->cfg->admin_listen : m->cfg->ops_listen, ops_port(ao),
		 m->cfg->admin_token_file);
	return 0;
}

static int start(struct master *m, char *err, size_t errlen)
{
	struct wpool_config wc;
	const struct timeval tick = { 0, TICK_MS * 1000 };
	int rv;

	if ((rv = audit_start(m, err, errlen)) != 0 || (rv = ops_start(m, err, errlen)) != 0)
		return rv;
	m->ev_term = evsignal_new(m->base, SIGTERM, signal_cb, m);
	m->ev_int = evsignal_new(m->base, SIGINT, signal_cb, m);
	m->ev_hup = evsignal_new(m->base, SIGHUP, signal_cb, m);
	m->ev_tick = event_new(m->base, -1, EV_PERSIST, tick_cb, m);
	if (m->ev_term == NULL || m->ev_int == NULL || m->ev_hup == NULL || m->ev_tick == NULL ||
	    event_add(m->ev_term, NULL) != 0 || event_add(m->ev_int, NULL) != 0 ||
	    event_add(m->ev_hup, NULL) != 0 || event_add(m->ev_tick, &tick) != 0)
		return ZG_ERR_NOMEM;
	memset(&wc, 0, sizeof(wc));
	wc.nworkers = m->env->n;
	wc.run = m->env->run;
	wc.arg = m->env->arg;
	wc.on_exit = on_worker_exit;
	wc.on_fatal = on_fatal;
	wc.on_stopped = on_stopped;
	wc.cbarg = m;
	if ((rv = wpool_new(m->base, &wc, &m->pool)) != 0) {
		(void)snprintf(err, errlen, "the worker pool: %s", zg_strerror(rv));
		return rv;
	}
	m->saved_changes = ipam_changes(m->ipam);
	if ((rv = wpool_start(m->pool)) != 0) {
		(void)snprintf(err, errlen, "cannot start the workers: %s", strerror(errno));
		return rv;
	}
	if (m->cfg->policy_api_url[0] != '\0') { /* after the fork: the workers have none of it */
		m->dns = evdns_base_new(m->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		if ((rv = polapi_from_config(m->cfg, m->base, m->dns, policy_fetched, m, &m->polapi, err,
					     errlen)) != 0)
			return rv;
		(void)polapi_start(m->polapi);
		log_info("master: policy from zgate-api %s every %u ms, kept in %s",
			 m->cfg->policy_api_url, m->cfg->policy_api_poll_ms, m->cfg->policy_file);
	}
	m->started_ms = mono_ms();
	audit_relay_start(m->audit, ZG_VERSION, m->cfg->listen, m->cfg->ops_listen,
			  m->cfg->admin_listen, (long)getpid());
	log_info("master: %u workers started, ops on %s (port %u)", m->env->n, m->cfg->ops_listen,
		 ops_port(m->ops));
	return 0;
}

static void stop(struct master *m)
{
	if (m->pool != NULL)
		wpool_free(m->pool); /* kills what still runs */
	m->pool = NULL;
	save_state(m);
	polapi_del(m->polapi);
	m->polapi = NULL;
	if (m->dns != NULL)
		evdns_base_free(m->dns, 0);
	m->dns = NULL;
	if (m->audit != NULL) {
		audit_stop(m);
		audit_free(m->audit);
	}
	for (unsigned i = 0; i < CONFIG_WORKERS_MAX; i++)
		if (m->ev_ap[i] != NULL)
			event_free(m->ev_ap[i]);
	if (m->ev_audit != NULL)
		event_free(m->ev_audit);
	if (m->ev_audit_w != NULL)
		event_free(m->ev_audit_w);
	if (m->aout_open)
		audit_out_close(&m->aout);
	ops_del(m->ops);
	ops_del(m->admin_ops);
	if (m->ev_term != NULL)
		event_free(m->ev_term);
	if (m->ev_int != NULL)
		event_free(m->ev_int);
	if (m->ev_hup != NULL)
		event_free(m->ev_hup);
	if (m->ev_tick != NULL)
		event_free(m->ev_tick);
	if (m->ev_watchdog != NULL)
		event_free(m->ev_watchdog);
}

int master_run(const struct relay_config *cfg, struct ipam *ipam, struct master_env *env)
{
	static struct master M; /* large (the workers' partial lines) */
	struct master *m = &M;
	char err[512] = "";
	int rv, code;

	memset(m, 0, sizeof(*m));
	m->cfg = cfg;
	m->ipam = ipam;
	m->env = env;
	m->base = event_base_new();
	if (m->base == NULL) {
		fprintf(stderr, "zgate-relay: cannot create the event loop\n");
		return 1;
	}
	rv = start(m, err, sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "zgate-relay: %s\n", err[0] ? err : zg_strerror(rv));
		stop(m);
		event_base_free(m->base);
		return 1;
	}
	event_base_dispatch(m->base);
	(void)sdnotify_send("STOPPING=1");
	code = m->fatal ? 1 : 0;
	stop(m);
	event_base_free(m->base);
	if (m->alines_bad != 0)
		log_warnx("%llu audit lines from the workers were malformed and dropped",
			  (unsigned long long)m->alines_bad);
	log_info("stopped");
	return code;
}
