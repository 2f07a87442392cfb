#include "relay/wpool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "agent/backoff.h"
#include "log.h"
#include "zg_err.h"

enum wpool_state {
	WPOOL_IDLE = 0, /* made, not started */
	WPOOL_RUNNING,  /* exits are restarted */
	WPOOL_GAVE_UP,  /* on_fatal() called: nothing is restarted */
	WPOOL_STOPPING, /* SIGTERM sent, waiting for the reaping */
	WPOOL_STOPPED   /* on_stopped() called */
};

struct worker {
	struct wpool *pool;
	unsigned idx;
	pid_t pid;           /* 0: not running */
	int status;          /* last wait status, -1 before the first exit */
	uint64_t started_ms; /* when it was forked */
	struct backoff bo;
	struct event *ev_restart;
	uint64_t exits[WPOOL_MAX_CRASHES]; /* ring of the last crash_max exit times */
	unsigned nexits, head;             /* head: the oldest once full */
};

struct wpool {
	struct event_base *base;
	struct wpool_config cfg;
	struct event *ev_chld;
	struct event *ev_stop; /* grace timer, then "all reaped" */
	enum wpool_state state;
	pid_t master;
	unsigned alive;
	uint64_t restarts;
	struct worker w[];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "exited with code 3", "killed by SIGSEGV (core dumped)". */
static const char *status_str(int st, char *buf, size_t len)
{
	if (st == -1)
		snprintf(buf, len, "exited with an unknown status (reaped elsewhere)");
	else if (WIFEXITED(st))
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st)) {
		const char *name = sigabbrev_np(WTERMSIG(st));

		if (name != NULL)
			snprintf(buf, len, "killed by SIG%s%s", name,
				 WCOREDUMP(st) ? " (core dumped)" : "");
		else
			snprintf(buf, len, "killed by signal %d%s", WTERMSIG(st),
				 WCOREDUMP(st) ? " (core dumped)" : "");
	} else
		snprintf(buf, len, "wait status 0x%x", (unsigned)st);
	return buf;
}

/* Signals whose handler is a crash reporter (ASan's, a backtrace printer)
 * as valid in the child as in the master: kept. */
static int is_fault_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
	       sig == SIGTRAP || sig == SIGSYS || sig == SIGABRT;
}

/* In the child, before run(): see wpool.h ("Signals"). */
static void child_reset_signals(pid_t master)
{
	struct sigaction sa, old;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || is_fault_signal(sig))
			continue;
		/* glibc's internal signals refuse: nothing to reset there */
		if (sigaction(sig, NULL, &old) != 0)
			continue;
		if (!(old.sa_flags & SA_SIGINFO) &&
		    (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN))
			continue;
		(void)sigaction(sig, &sa, NULL);
	}
	(void)sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/* A worker never outlives its master: nobody would stop it, and it
	 * would keep the listen sockets and the shared pool. The check after
	 * covers a master that died before the prctl. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != master)
		_exit(1);
}

/* Forks worker i. Returns 0 or ZG_ERR_IO (errno kept). */
static int spawn(struct wpool *p, unsigned i)
{
	struct worker *w = &p->w[i];
	pid_t pid;

	fflush(NULL); /* or the child's _exit() could not, and exit() would twice */
	pid = fork();
	if (pid < 0)
		return ZG_ERR_IO;
	if (pid == 0) {
		child_reset_signals(p->master);
		_exit(p->cfg.run(i, p->cfg.arg));
	}
	w->pid = pid;
	w->started_ms = mono_ms();
	p->alive++;
	log_debug("worker %u: started, pid %ld", i, (long)pid);
	return 0;
}

static void kill_and_reap(struct wpool *p, unsigned i)
{
	struct worker *w = &p->w[i];
	int st;

	if (w->pid <= 0)
		return;
	(void)kill(w->pid, SIGKILL);
	while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
	p->alive--;
}

/* Counts an exit (or a failed fork) of worker i at now while the pool
 * runs, and arms its restart. Returns 1 when this one is over the limit:
 * the pool gives up. */
static int worker_failed(struct wpool *p, unsigned i, uint64_t now)
{
	struct worker *w = &p->w[i];
	unsigned k = p->cfg.crash_max;
	uint32_t delay;
	struct timeval tv;

	if (w->started_ms != 0 && now - w->started_ms >= p->cfg.crash_window_ms)
		backoff_reset(&w->bo); /* it held: start again from the minimum */
	if (w->nexits == k && now - w->exits[w->head] < p->cfg.crash_window_ms)
		return 1;
	w->exits[w->head] = now;
	w->head = (w->head + 1) % k;
	if (w->nexits < k)
		w->nexits++;
	/* the ceiling, without the jitter that backoff_next() adds: workers
	 * are not a crowd of clients to spread out */
	delay = backoff_ceiling(&w->bo);
	(void)backoff_next(&w->bo, 0);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	if (evtimer_add(w->ev_restart, &tv) != 0)
		log_warnx("worker %u: cannot arm its restart timer", i);
	else
		log_info("worker %u: restart in %u ms", i, delay);
	return 0;
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct wpool *p = w->pool;

	(void)fd;
	(void)what;
	if (p->state != WPOOL_RUNNING)
		return;
	if (spawn(p, w->idx) == 0) {
		p->restarts++;
		log_info("worker %u: restarted, pid %ld", w->idx, (long)w->pid);
		return;
	}
	log_warn("worker %u: cannot fork", w->idx);
	w->started_ms = 0;
	if (worker_failed(p, w->idx, mono_ms())) {
		p->state = WPOOL_GAVE_UP;
		log_errx("worker %u: giving up on the workers: cannot fork", w->idx);
		if (p->cfg.on_fatal != NULL)
			p->cfg.on_fatal(p, w->idx, p->cfg.cbarg); /* last: it may stop the pool */
	}
}

/* Calls on_stopped() when stopping and every worker is reaped. */
static void maybe_finish(struct wpool *p)
{
	if (p->state != WPOOL_STOPPING || p->alive != 0)
		return;
	p->state = WPOOL_STOPPED;
	evtimer_del(p->ev_stop);
	log_info("workers: all %u stopped", p->cfg.nworkers);
	if (p->cfg.on_stopped != NULL)
		p->cfg.on_stopped(p, p->cfg.cbarg); /* last: it may free the pool */
}

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct wpool *p = arg;
	uint64_t now = mono_ms();
	int fatal = -1;

	(void)sig;
	(void)what;
	for (unsigned i = 0; i < p->cfg.nworkers; i++) {
		struct worker *w = &p->w[i];
		char how[80];
		pid_t pid = w->pid, r;
		int st = -1;

		if (pid <= 0)
			continue;
		while ((r = waitpid(pid, &st, WNOHANG)) < 0 && errno == EINTR)
			;
		if (r == 0 || (r < 0 && errno != ECHILD))
			continue; /* still running */
		if (r < 0)
			st = -1; /* ECHILD: someone else reaped it */
		w->pid = 0;
		w->status = st;
		p->alive--;
		status_str(st, how, sizeof(how));
		if (p->state != WPOOL_RUNNING) {
			log_info("worker %u (pid %ld) %s", i, (long)pid, how);
			continue;
		}
		log_warnx("worker %u (pid %ld) %s after %llu ms", i, (long)pid, how,
			  (unsigned long long)(now - w->started_ms));
		if (p->cfg.on_exit != NULL)
			p->cfg.on_exit(p, i, p->cfg.cbarg);
		if (worker_failed(p, i, now)) {
			p->state = WPOOL_GAVE_UP;
			fatal = (int)i;
			log_errx("worker %u: more than %u exits in %u ms: giving up on the workers", i,
				 p->cfg.crash_max, p->cfg.crash_window_ms);
		}
	}
	if (p->state == WPOOL_STOPPING)
		maybe_finish(p);
	else if (fatal >= 0 && p->cfg.on_fatal != NULL)
		p->cfg.on_fatal(p, (unsigned)fatal, p->cfg.cbarg); /* last: it may stop the pool */
}

/* The grace period is over (or nothing was running): SIGKILL the rest. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wpool *p = arg;

	(void)fd;
	(void)what;
	if (p->state != WPOOL_STOPPING)
		return;
	for (unsigned i = 0; i < p->cfg.nworkers; i++) {
		if (p->w[i].pid <= 0)
			continue;
		log_warnx("worker %u (pid %ld) still running after the grace period: SIGKILL", i,
			  (long)p->w[i].pid);
		(void)kill(p->w[i].pid, SIGKILL);
	}
	maybe_finish(p); /* else the SIGCHLDs finish it */
}

int wpool_new(struct event_base *base, const struct wpool_config *cfg, struct wpool **pp)
{
	struct wpool *p;

	*pp = NULL;
	if (base == NULL || cfg == NULL || cfg->run == NULL || cfg->nworkers == 0 ||
	    cfg->nworkers > WPOOL_MAX_WORKERS || cfg->crash_max > WPOOL_MAX_CRASHES)
		return ZG_ERR_INVAL;
	p = calloc(1, sizeof(*p) + cfg->nworkers * sizeof(p->w[0]));
	if (p == NULL)
		return ZG_ERR_NOMEM;
	p->base = base;
	p->cfg = *cfg;
	if (p->cfg.crash_backoff_min_ms == 0)
		p->cfg.crash_backoff_min_ms = WPOOL_BACKOFF_MIN_MS;
	if (p->cfg.crash_backoff_max_ms == 0)
		p->cfg.crash_backoff_max_ms = p->cfg.crash_backoff_min_ms > WPOOL_BACKOFF_MAX_MS
						      ? p->cfg.crash_backoff_min_ms
						      : WPOOL_BACKOFF_MAX_MS;
	if (p->cfg.crash_max == 0)
		p->cfg.crash_max = WPOOL_CRASH_MAX;
	if (p->cfg.crash_window_ms == 0)
		p->cfg.crash_window_ms = WPOOL_CRASH_WINDOW_MS;
	if (p->cfg.crash_backoff_max_ms < p->cfg.crash_backoff_min_ms) {
		free(p);
		return ZG_ERR_INVAL;
	}
	p->ev_chld = evsignal_new(base, SIGCHLD, sigchld_cb, p);
	p->ev_stop = evtimer_new(base, stop_cb, p);
	if (p->ev_chld == NULL || p->ev_stop == NULL || event_add(p->ev_chld, NULL) != 0)
		goto fail;
	for (unsigned i = 0; i < p->cfg.nworkers; i++) {
		struct worker *w = &p->w[i];

		w->pool = p;
		w->idx = i;
		w->status = -1;
		backoff_init(&w->bo, p->cfg.crash_backoff_min_ms, p->cfg.crash_backoff_max_ms);
		w->ev_restart = evtimer_new(base, restart_cb, w);
		if (w->ev_restart == NULL)
			goto fail;
	}
	*pp = p;
	return 0;
fail:
	wpool_free(p);
	return ZG_ERR_NOMEM;
}

int wpool_start(struct wpool *p)
{
	int saved;

	if (p->state != WPOOL_IDLE)
		return ZG_ERR_STATE;
	p->master = getpid();
	for (unsigned i = 0; i < p->cfg.nworkers; i++) {
		if (spawn(p, i) == 0)
			continue;
		saved = errno;
		log_warn("worker %u: cannot fork", i);
		for (unsigned j = 0; j < i; j++)
			kill_and_reap(p, j);
		errno = saved;
		return ZG_ERR_IO;
	}
	p->state = WPOOL_RUNNING;
	log_info("workers: %u started", p->cfg.nworkers);
	return 0;
}

int wpool_signal(struct wpool *p, int sig)
{
	int n = 0;

	if (sig <= 0 || sig >= NSIG)
		return ZG_ERR_INVAL;
	for (unsigned i = 0; i < p->cfg.nworkers; i++)
		if (p->w[i].pid > 0 && kill(p->w[i].pid, sig) == 0)
			n++;
	return n;
}

int wpool_stop(struct wpool *p, uint32_t grace_ms)
{
	struct timeval tv;

	if (p->state != WPOOL_RUNNING && p->state != WPOOL_GAVE_UP)
		return ZG_ERR_STATE;
	p->state = WPOOL_STOPPING;
	for (unsigned i = 0; i < p->cfg.nworkers; i++)
		evtimer_del(p->w[i].ev_restart);
	log_info("workers: stopping %u (SIGTERM, SIGKILL after %u ms)", p->alive, grace_ms);
	(void)wpool_signal(p, SIGTERM);
	if (p->alive == 0) {
		event_active(p->ev_stop, EV_TIMEOUT, 1); /* from the loop, not from here */
		return 0;
	}
	tv.tv_sec = grace_ms / 1000;
	tv.tv_usec = (suseconds_t)(grace_ms % 1000) * 1000;
	if (evtimer_add(p->ev_stop, &tv) != 0) {
		log_warnx("workers: no grace timer: SIGKILL now");
		event_active(p->ev_stop, EV_TIMEOUT, 1);
	}
	return 0;
}

void wpool_free(struct wpool *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->cfg.nworkers; i++) {
		kill_and_reap(p, i);
		if (p->w[i].ev_restart != NULL)
			event_free(p->w[i].ev_restart);
	}
	if (p->ev_chld != NULL)
		event_free(p->ev_chld);
	if (p->ev_stop != NULL)
		event_free(p->ev_stop);
	free(p);
}

pid_t wpool_pid(const struct wpool *p, unsigned i)
{
	return i < p->cfg.nworkers ? p->w[i].pid : 0;
}

unsigned wpool_size(const struct wpool *p)
{
	return p->cfg.nworkers;
}

unsigned wpool_alive(const struct wpool *p)
{
	return p->alive;
}

uint64_t wpool_restarts(const struct wpool *p)
{
	return p->restarts;
}

int wpool_last_status(const struct wpool *p, unsigned i)
{
	return i < p->cfg.nworkers ? p->w[i].status : -1;
}
