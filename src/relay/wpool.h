/*
 * wpool.h — the master's supervisor of worker processes (issue 21, target
 * 3: `workers: N` in zgate-relay; src/masque/steer.h has the design,
 * src/relay/master.h the relay's use of it).
 *
 * The master loads the configuration, creates what the workers share (the
 * SO_REUSEPORT sockets, the steer group, ipam_new_shared()), then calls
 * wpool_start(): worker i (0 .. N-1) is a child process that calls
 * run(i, arg) and _exit()s with its return value (0..255; anything else
 * is cut to its low 8 bits by the kernel). The master's side is driven by
 * its libevent loop:
 *
 *  - SIGCHLD (an evsignal, as src/relay/main.c handles its signals): every
 *    worker that has exited is reaped with waitpid(pid, WNOHANG); only the
 *    pool's own pids are waited for, so other children of the master are
 *    left to their owner. Each exit is logged with the worker's index, pid
 *    and status ("exited with code 3", "killed by SIGSEGV (core dumped)").
 *  - A worker that exits while the pool runs, whatever its status (a
 *    worker is not expected to exit on its own), is restarted after a
 *    backoff: crash_backoff_min_ms doubling up to crash_backoff_max_ms
 *    (defaults 100 ms and 5 s; src/agent/backoff without its jitter). The
 *    backoff starts again from the minimum when the worker had run for
 *    crash_window_ms or longer before it exited.
 *  - Giving up: when one worker exits more than crash_max times (K) within
 *    crash_window_ms (T) — that is, at its (K+1)th exit in T — the pool
 *    stops restarting anything and calls on_fatal(); the workers still
 *    running keep running until the master calls wpool_stop() (which it
 *    may do from on_fatal()). Defaults K = 5, T = 60 s: a worker that
 *    dies six times in a minute fails in the same way every time (a bad
 *    configuration, an exhausted resource, a packet of death) and the
 *    service manager and the operator must see it, rather than a relay
 *    that silently loses a share of its connections every few seconds; a
 *    crash loop at start-up (backoff 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s) gives
 *    up within about 3 s.
 *  - wpool_signal() forwards a signal to every running worker (SIGHUP for
 *    a reload); wpool_stop() sends SIGTERM to every worker, waits up to
 *    its grace period (a timer: the loop goes on), SIGKILLs the workers
 *    still running, and calls on_stopped() once the last one is reaped.
 *    Nothing is restarted once stopping.
 *
 * The child (what run() may and may not touch):
 *  - It starts as a copy of the master at the moment of the fork, at
 *    wpool_start() or, for a restart, from inside the master's loop: the
 *    master should hold nothing per client, and should fork before it
 *    starts any thread (a child of a threaded process may only make
 *    async-signal-safe calls until it execs).
 *  - Signals: every signal the master caught (libevent's handlers for the
 *    master's SIGCHLD, SIGTERM, SIGINT, SIGHUP...) is back to its default
 *    action and the signal mask is empty before run() is called; signals
 *    the master ignores stay ignored (SIGPIPE), as across execve(), except
 *    SIGCHLD, always back to the default. One exception: SIGHUP starts
 *    ignored, so that a reload forwarded while a worker is still starting
 *    does not kill it (the default action of SIGHUP is to terminate); the
 *    worker catches it once it has installed its own handler, and a worker
 *    that starts after a reload reads the files as they are anyway.
 *    SIGTERM keeps its default action until the worker catches it: a
 *    worker stopped while starting just ends. A fork starts with no
 *    pending signal; whatever the master's signal events had pending
 *    stays in the master's base, which the child never reads.
 *  - The event base: the master's base must not be used in the child, not
 *    even freed or re-initialised (its epoll instance is shared with the
 *    master: deleting an event in the child would remove it from the
 *    master's loop too). run() makes its own with event_base_new() and
 *    adds its own events (evsignal_new() for SIGTERM and SIGHUP). libevent
 *    2.1 then logs once "Added a signal to event base ... with signals
 *    already added to event_base ...": its note that the child's base now
 *    gets the signals, which is what is wanted. The inherited base and the
 *    master's other objects are simply left alone: the child _exit()s,
 *    which frees everything without running the master's atexit handlers
 *    or flushing its stdio buffers (wpool flushes stdio before it forks).
 *  - Descriptors: the child inherits every descriptor of the master (the
 *    listen sockets, the steer group, the log, the master's epoll and
 *    signal socketpair). It uses the ones meant for it, may close the ones
 *    it does not need (steer_group_keep()); closing them does not affect
 *    the master's, nor does the epoll descriptor (which it must not use).
 *  - A worker never outlives its master: it is made to get SIGKILL when
 *    the master dies (PR_SET_PDEATHSIG), since nobody would then stop it
 *    and it would keep the listen sockets and the shared pool.
 *  - Shared memory (ipam_new_shared()) is at the same address in every
 *    worker. The wpool object is also there, as a copy: the child must not
 *    call wpool_* functions.
 */
#ifndef ZG_RELAY_WPOOL_H
#define ZG_RELAY_WPOOL_H

#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct wpool;

/* Most workers in a pool (steer.h's STEER_MAX_WORKERS). */
#define WPOOL_MAX_WORKERS 256
/* Largest crash_max: the exit times of each worker are kept in a ring of
 * crash_max entries. */
#define WPOOL_MAX_CRASHES 64

#define WPOOL_BACKOFF_MIN_MS 100
#define WPOOL_BACKOFF_MAX_MS 5000
#define WPOOL_CRASH_MAX 5
#define WPOOL_CRASH_WINDOW_MS 60000

struct wpool_config {
	unsigned nworkers;                 /* 1 .. WPOOL_MAX_WORKERS */
	int (*run)(unsigned i, void *arg); /* in the child; its result is the exit code */
	void *arg;                         /* passed to run() */
	uint32_t crash_backoff_min_ms;     /* 0: WPOOL_BACKOFF_MIN_MS */
	uint32_t crash_backoff_max_ms;     /* 0: WPOOL_BACKOFF_MAX_MS (>= min) */
	unsigned crash_max;                /* K; 0: WPOOL_CRASH_MAX (<= WPOOL_MAX_CRASHES) */
	uint32_t crash_window_ms;          /* T; 0: WPOOL_CRASH_WINDOW_MS */
	/* Called from the loop when the pool gives up on worker i (above);
	 * may call wpool_stop(), not wpool_free(). NULL: only logged. */
	void (*on_fatal)(struct wpool *p, unsigned i, void *cbarg);
	/* Called from the loop when worker i has exited while the pool runs
	 * (before its restart is scheduled, and before on_fatal() when it was
	 * one exit too many); may not call wpool_free(). NULL: none. */
	void (*on_exit)(struct wpool *p, unsigned i, void *cbarg);
	/* Called from the loop once wpool_stop() has seen every worker
	 * reaped; may call wpool_free(). */
	void (*on_stopped)(struct wpool *p, void *cbarg);
	void *cbarg;
};

/* Makes a pool on base (the master's loop) and adds its SIGCHLD event;
 * no worker runs yet. cfg is copied. Returns 0 with *pp; ZG_ERR_INVAL (no
 * run, nworkers 0 or above WPOOL_MAX_WORKERS, crash_max above
 * WPOOL_MAX_CRASHES, max backoff below min) or ZG_ERR_NOMEM. */
int wpool_new(struct event_base *base, const struct wpool_config *cfg, struct wpool **pp);

/* Forks the N workers. Returns 0; ZG_ERR_STATE when already started;
 * ZG_ERR_IO when a fork fails (errno kept): the workers already forked
 * are SIGKILLed and reaped before it returns, and the pool is as if never
 * started (wpool_start() may be called again). */
int wpool_start(struct wpool *p);

/* Sends sig to every running worker (a worker waiting for its restart is
 * not running: it starts with the current configuration anyway). Returns
 * the number of workers signalled (>= 0), or ZG_ERR_INVAL for a bad sig. */
int wpool_signal(struct wpool *p, int sig);

/* Stops the pool: no more restarts, pending restarts cancelled, SIGTERM to
 * every running worker, SIGKILL to those still running grace_ms later;
 * on_stopped() is called from the loop (never from inside this call) once
 * every worker is reaped. Returns 0, or ZG_ERR_STATE when never started or
 * already stopping. */
int wpool_stop(struct wpool *p, uint32_t grace_ms);

/* Frees the pool and its events. A worker still running (wpool_stop() not
 * called or not finished) is SIGKILLed and reaped first (this blocks only
 * for the kernel to end a killed process). NULL is a no-op. */
void wpool_free(struct wpool *p);

/* Worker i's pid, or 0 when it is not running (waiting for its restart,
 * reaped, or i out of range). */
pid_t wpool_pid(const struct wpool *p, unsigned i);

/* The number of workers. */
unsigned wpool_size(const struct wpool *p);

/* The number of running (not yet reaped) workers. */
unsigned wpool_alive(const struct wpool *p);

/* Restarts made since wpool_new() (zgate_worker_restarts_total). */
uint64_t wpool_restarts(const struct wpool *p);

/* Worker i's last wait status (as waitpid() gives it; WIFEXITED() etc.),
 * or -1 when it has not exited yet or i is out of range. */
int wpool_last_status(const struct wpool *p, unsigned i);

#endif /* ZG_RELAY_WPOOL_H */
