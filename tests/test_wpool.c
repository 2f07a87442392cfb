/* Unit tests for src/relay/wpool: the supervisor of worker processes, with
 * real forks. Workers report to the test through a pipe: 'S' when run()
 * starts, 'A'+i once worker i catches its signals, 'a'+i for each SIGHUP.
 * Every test is bounded by alarm(): a hang kills the binary, which fails. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "relay/wpool.h"
#include "zg_err.h"

/* libevent times its timers with CLOCK_MONOTONIC_COARSE (a tick of a few
 * ms) and our clock is the precise one: a timer may seem a little early. */
#define TIMER_SLACK_MS 10

static int pipe_wr = -1; /* the workers' end */

/* Incarnations of each worker, shared by every process of a test. */
struct shm {
	unsigned starts[8];
};

struct ctx {
	struct event_base *base;
	struct wpool *p;
	struct shm *shm;
	int rd;
	struct event *ev_rd, *ev_tick;
	unsigned got[256]; /* bytes read from the pipe, by value */
	uint64_t s_ms[16]; /* when each 'S' came */
	unsigned ns;
	int stopped;             /* on_stopped() calls */
	int fatal;               /* on_fatal() calls */
	unsigned exits[8];       /* on_exit() calls, by worker */
	unsigned exits_at_fatal; /* exits[fatal_idx] when on_fatal() came */
	unsigned fatal_idx;
	int crash_always[8]; /* worker i always aborts */
	int abort_first[8];  /* worker i aborts in its first n runs */
	int ignore_term[8];  /* worker i ignores SIGTERM */
};

static struct ctx *C; /* for the children's run() */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void say(char c)
{
	(void)!write(pipe_wr, &c, 1);
}

/* ------------------------------------------------------------------ */
/* the workers (in the children)                                      */

static void w_term_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

static void w_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	say((char)('a' + (uintptr_t)arg));
}

/* A well-behaved worker: its own event base, SIGTERM stops it (exit 0),
 * SIGHUP is reported. */
static int serve(unsigned i)
{
	struct event_base *base = event_base_new();
	struct event *term, *hup;

	if (base == NULL)
		return 10;
	term = evsignal_new(base, SIGTERM, w_term_cb, base);
	hup = evsignal_new(base, SIGHUP, w_hup_cb, (void *)(uintptr_t)i);
	if (term == NULL || hup == NULL || event_add(term, NULL) != 0 || event_add(hup, NULL) != 0)
		return 11;
	say((char)('A' + i));
	if (event_base_dispatch(base) < 0)
		return 12;
	return 0;
}

static int run_worker(unsigned i, void *arg)
{
	struct ctx *c = arg;
	unsigned n = __atomic_fetch_add(&c->shm->starts[i], 1, __ATOMIC_SEQ_CST);

	say('S');
	if (c->crash_always[i] || (int)n < c->abort_first[i])
		abort();
	if (c->ignore_term[i]) {
		signal(SIGTERM, SIG_IGN);
		say((char)('A' + i));
		for (;;)
			pause();
	}
	return serve(i);
}

/* Reports '0' when the child starts with the signal state wpool.h
 * promises, else the number of the first check that failed; then waits
 * (SIGTERM, at its default action, ends it). */
static int run_check_signals(unsigned i, void *arg)
{
	struct sigaction sa;
	sigset_t mask;
	char code = '0';

	(void)i;
	(void)arg;
	if (sigaction(SIGCHLD, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL)
		code = '1';
	else if (sigaction(SIGUSR1, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL)
		code = '2';
	else if (sigaction(SIGHUP, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
		code = '3';
	else if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
		code = '4';
	else if (sigaction(SIGTERM, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL)
		code = '5';
	else if (sigprocmask(SIG_SETMASK, NULL, &mask) != 0 || sigismember(&mask, SIGUSR2))
		code = '6';
	say(code);
	for (;;)
		pause();
	return 0;
}

/* ------------------------------------------------------------------ */
/* the master's side                                                  */

static void rd_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctx *c = arg;
	unsigned char buf[64];
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t k = 0; k < n; k++) {
			c->got[buf[k]]++;
			if (buf[k] == 'S' && c->ns < 16)
				c->s_ms[c->ns++] = now_ms();
		}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void on_stopped(struct wpool *p, void *arg)
{
	struct ctx *c = arg;

	(void)p;
	c->stopped++;
}

static void on_fatal(struct wpool *p, unsigned i, void *arg)
{
	struct ctx *c = arg;

	(void)p;
	c->fatal++;
	c->fatal_idx = i;
	c->exits_at_fatal = c->exits[i];
}

static void on_exit_cb(struct wpool *p, unsigned i, void *arg)
{
	struct ctx *c = arg;

	(void)p;
	if (i < 8)
		c->exits[i]++;
}

static int setup(void **state)
{
	static struct ctx c;
	int fds[2];
	struct timeval tick = { 0, 10000 };

	memset(&c, 0, sizeof(c));
	alarm(20); /* a hang fails the test instead of holding up the suite */
	c.shm = mmap(NULL, sizeof(*c.shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(c.shm != MAP_FAILED);
	memset(c.shm, 0, sizeof(*c.shm));
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	c.rd = fds[0];
	pipe_wr = fds[1];
	c.base = event_base_new();
	assert_non_null(c.base);
	c.ev_rd = event_new(c.base, c.rd, EV_READ | EV_PERSIST, rd_cb, &c);
	c.ev_tick = event_new(c.base, -1, EV_PERSIST, tick_cb, &c);
	assert_int_equal(event_add(c.ev_rd, NULL), 0);
	assert_int_equal(event_add(c.ev_tick, &tick), 0);
	C = &c;
	*state = &c;
	return 0;
}

/* Nothing left behind: no child of the test process at all. */
static void assert_no_child(void)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	wpool_free(c->p);
	event_free(c->ev_rd);
	event_free(c->ev_tick);
	event_base_free(c->base);
	close(c->rd);
	close(pipe_wr);
	munmap(c->shm, sizeof(*c->shm));
	assert_no_child();
	alarm(0);
	return 0;
}

/* Runs the loop until pred(c) holds; fails after limit_ms. */
static void run_until(struct ctx *c, int (*pred)(struct ctx *), uint64_t limit_ms)
{
	uint64_t end = now_ms() + limit_ms;

	while (!pred(c)) {
		assert_true(now_ms() < end);
		assert_true(event_base_loop(c->base, EVLOOP_ONCE) >= 0);
	}
}

static int ready3(struct ctx *c)
{
	return c->got['A'] && c->got['B'] && c->got['C'];
}

static int ready01(struct ctx *c)
{
	return c->got['A'] && c->got['B'];
}

static int stopped(struct ctx *c)
{
	return c->stopped > 0;
}

/* A graceful stop (5 s of grace, never reached by these workers), run
 * until on_stopped(). */
static void stop_and_wait(struct ctx *c)
{
	assert_int_equal(wpool_stop(c->p, 5000), 0);
	run_until(c, stopped, 5000);
	assert_int_equal(c->stopped, 1);
}

static struct wpool_config base_cfg(struct ctx *c, unsigned n)
{
	struct wpool_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.nworkers = n;
	cfg.run = run_worker;
	cfg.arg = c;
	cfg.on_fatal = on_fatal;
	cfg.on_exit = on_exit_cb;
	cfg.on_stopped = on_stopped;
	cfg.cbarg = c;
	return cfg;
}

static void assert_exited(const struct wpool *p, unsigned i, int code)
{
	int st = wpool_last_status(p, i);

	assert_true(st != -1 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), code);
}

static void assert_killed(const struct wpool *p, unsigned i, int sig)
{
	int st = wpool_last_status(p, i);

	assert_true(st != -1 && WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), sig);
}

/* ------------------------------------------------------------------ */
/* tests                                                              */

static void test_bad_arguments(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 1);
	struct wpool *p;

	cfg.nworkers = 0;
	assert_int_equal(wpool_new(c->base, &cfg, &p), ZG_ERR_INVAL);
	cfg.nworkers = WPOOL_MAX_WORKERS + 1;
	assert_int_equal(wpool_new(c->base, &cfg, &p), ZG_ERR_INVAL);
	cfg.nworkers = 1;
	cfg.crash_max = WPOOL_MAX_CRASHES + 1;
	assert_int_equal(wpool_new(c->base, &cfg, &p), ZG_ERR_INVAL);
	cfg.crash_max = 0;
	cfg.crash_backoff_min_ms = 500;
	cfg.crash_backoff_max_ms = 100;
	assert_int_equal(wpool_new(c->base, &cfg, &p), ZG_ERR_INVAL);
	cfg.crash_backoff_max_ms = 0;
	cfg.run = NULL;
	assert_int_equal(wpool_new(c->base, &cfg, &p), ZG_ERR_INVAL);
	assert_null(p);

	cfg = base_cfg(c, 2);
	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_size(c->p), 2);
	assert_int_equal(wpool_stop(c->p, 100), ZG_ERR_STATE); /* not started */
	assert_int_equal(wpool_signal(c->p, 0), ZG_ERR_INVAL);
	assert_int_equal(wpool_signal(c->p, SIGHUP), 0); /* nobody to signal */
	assert_int_equal(wpool_pid(c->p, 0), 0);
	assert_int_equal(wpool_pid(c->p, 7), 0);
	assert_int_equal(wpool_last_status(c->p, 0), -1);
	assert_int_equal(wpool_alive(c->p), 0);
}

/* Three workers that exit 0 on SIGTERM: a graceful stop reaps them all,
 * well before the grace period, and calls on_stopped() once. */
static void test_start_and_stop_gracefully(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 3);
	pid_t pids[3];
	uint64_t t0;

	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_start(c->p), 0);
	assert_int_equal(wpool_start(c->p), ZG_ERR_STATE);
	assert_int_equal(wpool_alive(c->p), 3);
	for (unsigned i = 0; i < 3; i++) {
		pids[i] = wpool_pid(c->p, i);
		assert_true(pids[i] > 0 && pids[i] != getpid());
		for (unsigned j = 0; j < i; j++)
			assert_true(pids[i] != pids[j]);
	}
	run_until(c, ready3, 5000);
	t0 = now_ms();
	assert_int_equal(wpool_stop(c->p, 5000), 0);
	assert_int_equal(wpool_stop(c->p, 5000), ZG_ERR_STATE);
	assert_int_equal(c->stopped, 0); /* never from inside wpool_stop() */
	run_until(c, stopped, 5000);
	assert_true(now_ms() - t0 < 4000); /* not the SIGKILL at the end of the grace */
	assert_int_equal(c->stopped, 1);
	assert_int_equal(wpool_alive(c->p), 0);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(wpool_pid(c->p, i), 0);
		assert_exited(c->p, i, 0);
		assert_int_equal(kill(pids[i], 0), -1); /* reaped: no zombie */
	}
	assert_int_equal(wpool_restarts(c->p), 0);
	assert_int_equal(c->fatal, 0);
	assert_no_child();
}

static int restarted_twice(struct ctx *c)
{
	return c->got['A'] == 1 && c->ns == 3;
}

/* A worker that aborts twice is restarted after 100 ms, then after 200
 * ms (the backoff doubles), and the restart count follows. */
static void test_crash_restarts_with_backoff(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 1);
	pid_t first;

	c->abort_first[0] = 2;
	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_start(c->p), 0);
	first = wpool_pid(c->p, 0);
	run_until(c, restarted_twice, 5000);
	assert_int_equal(wpool_restarts(c->p), 2);
	assert_killed(c->p, 0, SIGABRT);
	assert_true(wpool_pid(c->p, 0) > 0 && wpool_pid(c->p, 0) != first);
	assert_int_equal(wpool_alive(c->p), 1);
	/* the gaps between starts: the backoff plus a fork and an abort */
	assert_true(c->s_ms[1] - c->s_ms[0] + TIMER_SLACK_MS >= 100);
	assert_true(c->s_ms[1] - c->s_ms[0] < 1000);
	assert_true(c->s_ms[2] - c->s_ms[1] + TIMER_SLACK_MS >= 200);
	assert_true(c->s_ms[2] - c->s_ms[1] < 1100);
	assert_int_equal(c->fatal, 0);
	stop_and_wait(c);
	assert_exited(c->p, 0, 0);
	assert_int_equal(wpool_restarts(c->p), 2);
}

static int gave_up_and_b_ready(struct ctx *c)
{
	return c->fatal > 0 && c->got['B'];
}

/* Worker 0 always aborts: with K = 3 it is restarted three times, and its
 * fourth exit within the window gives up (on_fatal, worker 0), after which
 * nothing is restarted; worker 1 runs on until the stop. */
static void test_crash_loop_gives_up(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 2);
	unsigned ns;

	cfg.crash_max = 3;
	cfg.crash_window_ms = 10000;
	cfg.crash_backoff_min_ms = 1;
	cfg.crash_backoff_max_ms = 4;
	c->crash_always[0] = 1;
	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_start(c->p), 0);
	run_until(c, gave_up_and_b_ready, 5000);
	assert_int_equal(c->fatal, 1);
	assert_int_equal(c->fatal_idx, 0);
	/* on_exit() for each of worker 0's four exits, the last before
	 * on_fatal(); none for worker 1 */
	assert_int_equal(c->exits[0], 4);
	assert_int_equal(c->exits_at_fatal, 4);
	assert_int_equal(c->exits[1], 0);
	assert_int_equal(wpool_restarts(c->p), 3);
	assert_int_equal(c->shm->starts[0], 4);
	assert_int_equal(wpool_pid(c->p, 0), 0);
	assert_killed(c->p, 0, SIGABRT);
	assert_int_equal(wpool_alive(c->p), 1);
	assert_true(wpool_pid(c->p, 1) > 0);
	/* nothing more is restarted (the backoff would be 4 ms) */
	ns = c->ns;
	for (uint64_t end = now_ms() + 100; now_ms() < end;)
		assert_true(event_base_loop(c->base, EVLOOP_ONCE) >= 0);
	assert_int_equal(c->ns, ns);
	assert_int_equal(wpool_restarts(c->p), 3);
	assert_int_equal(c->fatal, 1);
	stop_and_wait(c);
	assert_exited(c->p, 1, 0);
	assert_int_equal(wpool_alive(c->p), 0);
	assert_int_equal(c->exits[1], 0); /* a stop is no exit to report */
}

static int restarted_thrice(struct ctx *c)
{
	return c->got['A'] == 1 && c->ns == 4;
}

/* Exits spread wider than the window do not add up to giving up. */
static void test_crashes_outside_the_window_are_forgotten(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 1);

	cfg.crash_max = 1;
	cfg.crash_window_ms = 150;
	cfg.crash_backoff_min_ms = 200; /* every restart comes after the window */
	cfg.crash_backoff_max_ms = 200;
	c->abort_first[0] = 3;
	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_start(c->p), 0);
	run_until(c, restarted_thrice, 5000);
	assert_int_equal(c->fatal, 0);
	assert_int_equal(wpool_restarts(c->p), 3);
	stop_and_wait(c);
}

/* A worker that ignores SIGTERM is SIGKILLed when the grace is over; the
 * other exits 0 at once; on_stopped() comes after both are reaped. */
static void test_sigkill_after_grace(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 2);
	uint64_t t0, took;

	c->ignore_term[0] = 1;
	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_start(c->p), 0);
	run_until(c, ready01, 5000);
	t0 = now_ms();
	assert_int_equal(wpool_stop(c->p, 300), 0);
	run_until(c, stopped, 5000);
	took = now_ms() - t0;
	assert_true(took + TIMER_SLACK_MS >= 300);
	assert_true(took < 2000);
	assert_killed(c->p, 0, SIGKILL);
	assert_exited(c->p, 1, 0);
	assert_int_equal(wpool_alive(c->p), 0);
	assert_int_equal(wpool_restarts(c->p), 0); /* no restart while stopping */
}

static int three_hups(struct ctx *c)
{
	return c->got['a'] == 1 && c->got['b'] == 1 && c->got['c'] == 1;
}

/* wpool_signal(SIGHUP) reaches every worker, once. */
static void test_signal_reaches_every_worker(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 3);

	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_start(c->p), 0);
	run_until(c, ready3, 5000);
	assert_int_equal(wpool_signal(c->p, SIGHUP), 3);
	run_until(c, three_hups, 5000);
	assert_int_equal(wpool_alive(c->p), 3); /* a reload is not a restart */
	assert_int_equal(wpool_restarts(c->p), 0);
	stop_and_wait(c);
	for (unsigned i = 0; i < 3; i++)
		assert_exited(c->p, i, 0);
}

static int checked(struct ctx *c)
{
	unsigned n = 0;

	for (int ch = '0'; ch <= '9'; ch++)
		n += c->got[ch];
	return n == 1;
}

static void usr1_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
}

/* The child starts with the master's caught signals back at their default
 * (SIGCHLD, and SIGUSR1 caught by an evsignal of the master), SIGHUP
 * ignored, SIGPIPE still ignored, and an empty mask (the master blocks
 * SIGUSR2). */
static void test_child_signal_state(void **state)
{
	struct ctx *c = *state;
	struct wpool_config cfg = base_cfg(c, 1);
	struct event *usr1 = evsignal_new(c->base, SIGUSR1, usr1_cb, NULL);
	void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
	sigset_t block, old;

	assert_non_null(usr1);
	assert_int_equal(event_add(usr1, NULL), 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
	cfg.run = run_check_signals;
	assert_int_equal(wpool_new(c->base, &cfg, &c->p), 0);
	assert_int_equal(wpool_start(c->p), 0);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
	run_until(c, checked, 5000);
	assert_int_equal(c->got['0'], 1);
	stop_and_wait(c);
	assert_killed(c->p, 0, SIGTERM);
	event_free(usr1);
	signal(SIGPIPE, old_pipe);
}

/* A master that dies takes its workers with it (PR_SET_PDEATHSIG): the
 * test process stands in as the subreaper that the orphan would go to. */
static void test_worker_dies_with_its_master(void **state)
{
	struct ctx *c = *state;
	pid_t master, worker = 0;
	int fds[2], st;

	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_int_equal(pipe(fds), 0);
	master = fork();
	assert_true(master >= 0);
	if (master == 0) {
		struct event_base *base = event_base_new();
		struct wpool_config cfg = base_cfg(c, 1);
		struct wpool *p;
		pid_t w;

		if (base == NULL || wpool_new(base, &cfg, &p) != 0 || wpool_start(p) != 0)
			_exit(1);
		w = wpool_pid(p, 0);
		(void)!write(fds[1], &w, sizeof(w));
		for (;;)
			pause();
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &worker, sizeof(worker)), (ssize_t)sizeof(worker));
	close(fds[0]);
	assert_true(worker > 0);
	/* once the worker is serving (PR_SET_PDEATHSIG is set before run()) */
	for (char ch = 0; ch != 'A';) {
		struct pollfd pfd = { c->rd, POLLIN, 0 };

		assert_int_equal(poll(&pfd, 1, 5000), 1);
		if (read(c->rd, &ch, 1) != 1)
			ch = 0;
	}
	assert_int_equal(kill(master, SIGKILL), 0);
	assert_int_equal(waitpid(master, &st, 0), master);
	/* the orphan is now ours: it must die of SIGKILL on its own */
	assert_int_equal(waitpid(worker, &st, 0), worker);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_and_stop_gracefully, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_restarts_with_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_loop_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crashes_outside_the_window_are_forgotten, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_after_grace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signal_reaches_every_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_child_signal_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_dies_with_its_master, setup, teardown),
	};
	struct rlimit nocore = { 0, 0 };

	/* the aborting workers must not leave core files (or feed a crash
	 * collector) */
	(void)setrlimit(RLIMIT_CORE, &nocore);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
