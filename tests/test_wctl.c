/* Unit tests for src/relay/wctl: the master/worker control channel, on
 * real socketpairs. The worker runs in a forked child with its own event
 * loop (as under wpool); the test process plays the master and, like the
 * master, keeps the worker end open, so a worker can be restarted on the
 * same pair. Every test is bounded by alarm(): a hang kills the binary,
 * which fails. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "be.h"
#include "log.h"
#include "relay/wctl.h"
#include "zg_err.h"

#define MIB (1024u * 1024u)

struct ctx {
	int fds[2]; /* [0] master end, [1] worker end (both kept, as the master does) */
	pid_t child;
	struct evbuffer *reply;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Byte i of a reply of the test: checked in full at the other end. */
static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 7 + i / 251);
}

static int add_pattern(struct evbuffer *b, size_t n)
{
	uint8_t chunk[4096];

	for (size_t off = 0; off < n;) {
		size_t k = n - off < sizeof(chunk) ? n - off : sizeof(chunk);

		for (size_t j = 0; j < k; j++)
			chunk[j] = pat(off + j);
		if (evbuffer_add(b, chunk, k) != 0)
			return -1;
		off += k;
	}
	return 0;
}

static int is_pattern(struct evbuffer *b, size_t n)
{
	uint8_t chunk[4096];
	size_t off = 0;

	if (evbuffer_get_length(b) != n)
		return 0;
	while (off < n) {
		size_t k = n - off < sizeof(chunk) ? n - off : sizeof(chunk);

		if (evbuffer_copyout(b, chunk, k) != (ev_ssize_t)k)
			return 0;
		for (size_t j = 0; j < k; j++)
			if (chunk[j] != pat(off + j))
				return 0;
		evbuffer_drain(b, k);
		off += k;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* the worker (in a child)                                            */

static void die_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	_exit(3);
}

/* 'e' echoes; 'b' answers be32(n) bytes of the pattern; 's' answers with
 * the status in its request (a signed byte) and "st"; 'z' sleeps be32(ms)
 * then answers 3 MiB; 'k' answers 3 MiB and dies once the loop runs again
 * (mid-reply when nobody reads); 'q' dies at once, without a reply. */
static int handler(void *ctx, uint8_t op, const uint8_t *req, size_t len, struct evbuffer *reply)
{
	struct event_base *base = ctx;
	struct timeval now = { 0, 0 };

	switch (op) {
	case 'e':
		return evbuffer_add(reply, req, len) == 0 ? 0 : 1;
	case 'b':
		return len == 4 && add_pattern(reply, be32_get(req)) == 0 ? 0 : 1;
	case 's':
		evbuffer_add(reply, "st", 2);
		return len == 1 ? (int8_t)req[0] : 1;
	case 'z':
		if (len != 4)
			return 1;
		usleep(be32_get(req) * 1000u);
		return add_pattern(reply, 3 * MIB) == 0 ? 0 : 1;
	case 'k':
		event_base_once(base, -1, EV_TIMEOUT, die_cb, NULL, &now);
		return add_pattern(reply, 3 * MIB) == 0 ? 0 : 1;
	case 'q':
		_exit(4);
	default:
		return 2;
	}
}

/* Forks a worker serving the worker end; the child closes the master end
 * as wctl.h asks. */
static pid_t spawn(struct ctx *c)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct event_base *base = event_base_new();
		struct wctl_server *s;

		alarm(30);
		close(c->fds[0]);
		if (base == NULL || wctl_serve_new(base, c->fds[1], handler, base, &s) != 0)
			_exit(1);
		event_base_dispatch(base);
		_exit(2);
	}
	c->child = pid;
	return pid;
}

static void kill_child(struct ctx *c)
{
	if (c->child > 0) {
		kill(c->child, SIGKILL);
		waitpid(c->child, NULL, 0);
	}
	c->child = 0;
}

static int setup(void **state)
{
	static struct ctx c;
	char err[128];

	memset(&c, 0, sizeof(c));
	alarm(30); /* a hang fails the test instead of holding up the suite */
	assert_int_equal(wctl_pair_open(c.fds, err, sizeof(err)), 0);
	c.reply = evbuffer_new();
	assert_non_null(c.reply);
	*state = &c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	kill_child(c);
	if (c->fds[0] >= 0)
		close(c->fds[0]);
	if (c->fds[1] >= 0)
		close(c->fds[1]);
	evbuffer_free(c->reply);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* no child left */
	alarm(0);
	return 0;
}

static int call_n(struct ctx *c, uint8_t op, uint32_t n, unsigned timeout_ms, int *st)
{
	uint8_t req[4];

	be32_put(req, n);
	return wctl_call(c->fds[0], op, req, sizeof(req), timeout_ms, c->reply, st);
}

/* Sends a request as raw bytes, for what wctl_call() would refuse. */
static void raw_send(int fd, const void *rec, size_t len)
{
	assert_int_equal(send(fd, rec, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* ------------------------------------------------------------------ */

static void test_pair_open(void **state)
{
	struct ctx *c = *state;
	struct rlimit rl, low;
	int fds[2] = { 7, 7 }, type = 0;
	socklen_t tl = sizeof(type);
	char err[128] = "";

	for (int i = 0; i < 2; i++) {
		assert_true(fcntl(c->fds[i], F_GETFL) & O_NONBLOCK);
		assert_true(fcntl(c->fds[i], F_GETFD) & FD_CLOEXEC);
	}
	assert_int_equal(getsockopt(c->fds[0], SOL_SOCKET, SO_TYPE, &type, &tl), 0);
	assert_int_equal(type, SOCK_SEQPACKET);
	/* out of descriptors: an error that says so, nothing left open */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(wctl_pair_open(fds, err, sizeof(err)), ZG_ERR_IO);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);
	assert_non_null(strstr(err, "socketpair"));
}

static void test_bad_arguments(void **state)
{
	struct ctx *c = *state;
	static uint8_t big[WCTL_REQ_MAX + 1];
	struct wctl_server *s = NULL;
	struct event_base *base = event_base_new();
	uint8_t b[1];
	int st = -1;

	assert_int_equal(wctl_call(-1, 'e', NULL, 0, 10, c->reply, &st), ZG_ERR_INVAL);
	assert_int_equal(wctl_call(c->fds[0], 'e', NULL, 0, 10, NULL, &st), ZG_ERR_INVAL);
	assert_int_equal(wctl_call(c->fds[0], 'e', NULL, 0, 10, c->reply, NULL), ZG_ERR_INVAL);
	assert_int_equal(wctl_call(c->fds[0], 'e', NULL, 1, 10, c->reply, &st), ZG_ERR_INVAL);
	assert_int_equal(wctl_call(c->fds[0], 0, NULL, 0, 10, c->reply, &st), ZG_ERR_INVAL);
	assert_int_equal(wctl_call(c->fds[0], ' ', NULL, 0, 10, c->reply, &st), ZG_ERR_INVAL);
	/* an oversized request is refused before anything is sent */
	assert_int_equal(wctl_call(c->fds[0], 'e', big, sizeof(big), 10, c->reply, &st),
			 ZG_ERR_TOO_LARGE);
	assert_int_equal(recv(c->fds[1], b, sizeof(b), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(st, -1);

	assert_non_null(base);
	assert_int_equal(wctl_serve_new(NULL, c->fds[1], handler, NULL, &s), ZG_ERR_INVAL);
	assert_int_equal(wctl_serve_new(base, -1, handler, NULL, &s), ZG_ERR_INVAL);
	assert_int_equal(wctl_serve_new(base, c->fds[1], NULL, NULL, &s), ZG_ERR_INVAL);
	assert_int_equal(wctl_serve_new(base, c->fds[1], handler, NULL, NULL), ZG_ERR_INVAL);
	assert_null(s);
	wctl_server_free(NULL);
	event_base_free(base);
}

/* Small, empty, record-sized and large replies, the largest allowed
 * included, from a worker in another process; the request's payload
 * arrives whole (the largest allowed too). */
static void test_round_trip(void **state)
{
	struct ctx *c = *state;
	static uint8_t req[WCTL_REQ_MAX];
	const uint32_t sizes[] = { 0, 1, WCTL_CHUNK - 1, WCTL_CHUNK, WCTL_CHUNK + 1, 3 * MIB,
				   WCTL_REPLY_MAX };
	int st;

	spawn(c);
	st = -1;
	assert_int_equal(wctl_call(c->fds[0], 'e', "hello", 5, 2000, c->reply, &st), 0);
	assert_int_equal(st, 0);
	assert_int_equal(evbuffer_get_length(c->reply), 5);
	assert_memory_equal(evbuffer_pullup(c->reply, 5), "hello", 5);

	for (size_t i = 0; i < sizeof(req); i++)
		req[i] = pat(i);
	assert_int_equal(wctl_call(c->fds[0], 'e', req, sizeof(req), 2000, c->reply, &st), 0);
	assert_true(is_pattern(c->reply, sizeof(req)));
	assert_int_equal(wctl_call(c->fds[0], 'e', NULL, 0, 2000, c->reply, &st), 0);
	assert_int_equal(evbuffer_get_length(c->reply), 0);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t t0 = now_ms();

		/* what was in reply before is replaced */
		evbuffer_add(c->reply, "junk", 4);
		st = -1;
		assert_int_equal(call_n(c, 'b', sizes[i], 10000, &st), 0);
		assert_int_equal(st, 0);
		assert_true(is_pattern(c->reply, sizes[i]));
		print_message("  reply of %u bytes: %llu ms\n", sizes[i],
			      (unsigned long long)(now_ms() - t0));
	}
	/* many calls in a row: each gets its own answer */
	for (unsigned i = 0; i < 500; i++) {
		uint8_t r[4];

		be32_put(r, i);
		assert_int_equal(wctl_call(c->fds[0], 'e', r, 4, 2000, c->reply, &st), 0);
		assert_int_equal(evbuffer_get_length(c->reply), 4);
		assert_int_equal(be32_get(evbuffer_pullup(c->reply, 4)), i);
	}
}

/* The handler's status byte comes back, with its payload; what a handler
 * may not return becomes WCTL_ST_FAILED, a reply above the bound
 * WCTL_ST_TOO_LARGE, both without payload. */
static void test_status(void **state)
{
	struct ctx *c = *state;
	const struct {
		int8_t in;
		int out;
		size_t len;
	} cases[] = {
		{ 0, 0, 2 },
		{ 1, 1, 2 },
		{ 42, 42, 2 },
		{ -17, WCTL_ST_FAILED, 0 },
		{ -1, WCTL_ST_FAILED, 0 }, /* 0xff as a byte, not WCTL_ST_BAD_REQ */
	};
	int st;

	spawn(c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t b = (uint8_t)cases[i].in;

		st = -1;
		assert_int_equal(wctl_call(c->fds[0], 's', &b, 1, 2000, c->reply, &st), 0);
		assert_int_equal(st, cases[i].out);
		assert_int_equal(evbuffer_get_length(c->reply), cases[i].len);
	}
	/* an op the handler does not know: its own code 2 */
	assert_int_equal(wctl_call(c->fds[0], 'Z', NULL, 0, 2000, c->reply, &st), 0);
	assert_int_equal(st, 2);
	/* the handler built one byte too many */
	assert_int_equal(call_n(c, 'b', WCTL_REPLY_MAX + 1, 10000, &st), 0);
	assert_int_equal(st, WCTL_ST_TOO_LARGE);
	assert_int_equal(evbuffer_get_length(c->reply), 0);
	/* and the channel still works */
	assert_int_equal(call_n(c, 'b', 100, 2000, &st), 0);
	assert_true(is_pattern(c->reply, 100));
}

/* A worker that does not answer in time: ZG_ERR_TIMEOUT at the deadline.
 * Its late 3 MiB reply then arrives during the next call (dropped record
 * by record: another seq), or has partly arrived before it (dropped
 * first) while the worker still writes the rest; either way the next
 * call gets its own answer. */
static void test_timeout_then_own_reply(void **state)
{
	struct ctx *c = *state;
	struct pollfd pfd = { c->fds[0], POLLIN, 0 };
	uint64_t t0, dt;
	int st = -1;

	spawn(c);
	t0 = now_ms();
	assert_int_equal(call_n(c, 'z', 1000, 100, &st), ZG_ERR_TIMEOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 100 && dt < 900); /* at the deadline, not at the reply */
	assert_int_equal(evbuffer_get_length(c->reply), 0);
	assert_int_equal(st, -1);
	/* sent while the worker still sleeps: the stale reply comes first */
	assert_int_equal(wctl_call(c->fds[0], 'e', "mine", 4, 5000, c->reply, &st), 0);
	assert_int_equal(st, 0);
	assert_int_equal(evbuffer_get_length(c->reply), 4);
	assert_memory_equal(evbuffer_pullup(c->reply, 4), "mine", 4);

	assert_int_equal(call_n(c, 'z', 50, 10, &st), ZG_ERR_TIMEOUT);
	/* the late reply's first records wait; the rest, in the worker */
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(wctl_call(c->fds[0], 'e', "again", 5, 5000, c->reply, &st), 0);
	assert_int_equal(evbuffer_get_length(c->reply), 5);
	assert_memory_equal(evbuffer_pullup(c->reply, 5), "again", 5);
	assert_int_equal(call_n(c, 'b', 3 * MIB, 5000, &st), 0);
	assert_true(is_pattern(c->reply, 3 * MIB));
}

/* wctl_call_all(): three workers that each take 300 ms answer together
 * (sent first, read after), a skipped channel is ZG_ERR_INVAL, and a
 * worker that never answers costs the one deadline while the others'
 * replies are still read. */
static void test_call_all(void **state)
{
	struct ctx w[5];
	struct evbuffer *rep[5];
	int fds[5], st[5], res[5];
	uint8_t req[4];
	uint64_t t0, dt;
	char err[128];
	unsigned i;

	(void)state;
	memset(w, 0, sizeof(w));
	for (i = 0; i < 5; i++) {
		assert_int_equal(wctl_pair_open(w[i].fds, err, sizeof(err)), 0);
		rep[i] = evbuffer_new();
		assert_non_null(rep[i]);
		fds[i] = w[i].fds[0];
		if (i < 3)
			spawn(&w[i]);
	}
	be32_put(req, 300);
	/* 0..2 sleep 300 ms each; 3 nobody serves; 4 skipped */
	fds[4] = -1;
	t0 = now_ms();
	wctl_call_all(fds, 5, 'z', req, sizeof(req), 1500, rep, st, res);
	dt = now_ms() - t0;
	for (i = 0; i < 3; i++) {
		assert_int_equal(res[i], 0);
		assert_int_equal(st[i], 0);
		assert_true(is_pattern(rep[i], 3 * MIB));
	}
	assert_int_equal(res[3], ZG_ERR_TIMEOUT);
	assert_int_equal(evbuffer_get_length(rep[3]), 0);
	assert_int_equal(res[4], ZG_ERR_INVAL);
	assert_true(dt >= 1500 && dt < 2900); /* one deadline, not one per worker */
	/* without the hung one: about one worker's time, not three */
	t0 = now_ms();
	wctl_call_all(fds, 3, 'z', req, sizeof(req), 5000, rep, st, res);
	dt = now_ms() - t0;
	for (i = 0; i < 3; i++) {
		assert_int_equal(res[i], 0);
		assert_true(is_pattern(rep[i], 3 * MIB));
	}
	assert_true(dt < 850); /* three in turn would take 900 ms or more */
	for (i = 0; i < 5; i++) {
		kill_child(&w[i]);
		close(w[i].fds[0]);
		close(w[i].fds[1]);
		evbuffer_free(rep[i]);
	}
}

/* A worker that dies: mid-reply (records of a reply left in the channel)
 * and during a call (the master keeps the worker end: no EOF, the call
 * times out). A worker restarted on the same pair then answers, the dead
 * one's leftovers dropped. */
static void test_worker_dies_and_restarts(void **state)
{
	struct ctx *c = *state;
	uint8_t rec[WCTL_HDR] = { 'k', 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0 };
	struct pollfd pfd = { 0 };
	int st, ws;

	spawn(c);
	/* nobody reads: the worker fills the socket, then dies mid-reply */
	raw_send(c->fds[0], rec, sizeof(rec));
	assert_int_equal(waitpid(c->child, &ws, 0), c->child);
	c->child = 0;
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 3);
	pfd.fd = c->fds[0];
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 0), 1); /* its partial reply waits */
	spawn(c);
	assert_int_equal(wctl_call(c->fds[0], 'e', "after", 5, 2000, c->reply, &st), 0);
	assert_int_equal(st, 0);
	assert_int_equal(evbuffer_get_length(c->reply), 5);
	assert_memory_equal(evbuffer_pullup(c->reply, 5), "after", 5);

	/* no worker at all: the call times out, its request stays queued */
	kill_child(c);
	assert_int_equal(wctl_call(c->fds[0], 'e', "x", 1, 100, c->reply, &st), ZG_ERR_TIMEOUT);
	spawn(c);
	/* the restarted worker answers that request first (another seq) */
	assert_int_equal(wctl_call(c->fds[0], 'e', "yz", 2, 2000, c->reply, &st), 0);
	assert_int_equal(evbuffer_get_length(c->reply), 2);
	assert_memory_equal(evbuffer_pullup(c->reply, 2), "yz", 2);

	/* dies during a call, before answering */
	assert_int_equal(wctl_call(c->fds[0], 'q', NULL, 0, 200, c->reply, &st), ZG_ERR_TIMEOUT);
	assert_int_equal(waitpid(c->child, &ws, 0), c->child);
	c->child = 0;
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 4);
	spawn(c);
	assert_int_equal(call_n(c, 'b', 3 * MIB, 5000, &st), 0);
	assert_true(is_pattern(c->reply, 3 * MIB));
}

/* When every copy of the worker end is closed, the master sees EOF or
 * EPIPE: ZG_ERR_IO, at once rather than at the deadline. */
static void test_peer_gone(void **state)
{
	struct ctx *c = *state;
	uint64_t t0;
	int st;

	spawn(c);
	close(c->fds[1]);
	c->fds[1] = -1;
	assert_int_equal(wctl_call(c->fds[0], 'e', "x", 1, 2000, c->reply, &st), 0);
	/* the worker (the last holder of its end) dies during the call */
	t0 = now_ms();
	assert_int_equal(wctl_call(c->fds[0], 'q', NULL, 0, 5000, c->reply, &st), ZG_ERR_IO);
	assert_true(now_ms() - t0 < 1000);
	waitpid(c->child, NULL, 0);
	c->child = 0;
	/* and after */
	t0 = now_ms();
	assert_int_equal(wctl_call(c->fds[0], 'e', "x", 1, 5000, c->reply, &st), ZG_ERR_IO);
	assert_true(now_ms() - t0 < 1000);
}

/* A fake worker that answers the request it reads with `mode`'s bad
 * records. */
static void fake_peer(struct ctx *c, int mode)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		static uint8_t rec[WCTL_HDR + WCTL_CHUNK + 1];
		uint8_t req[WCTL_HDR + WCTL_REQ_MAX];
		struct pollfd pfd = { c->fds[1], POLLIN, 0 };
		uint32_t seq;

		alarm(30);
		if (poll(&pfd, 1, 5000) != 1 || recv(c->fds[1], req, sizeof(req), 0) < WCTL_HDR)
			_exit(1);
		seq = be32_get(req + 1);
		be32_put(rec, seq);
		rec[4] = 0;
		switch (mode) {
		case 0: /* shorter than a header */
			send(c->fds[1], rec, 5, 0);
			break;
		case 1: /* more data than announced */
			be32_put(rec + 5, 10);
			send(c->fds[1], rec, WCTL_HDR + 11, 0);
			break;
		case 2: /* the second record's status differs */
			be32_put(rec + 5, 100);
			send(c->fds[1], rec, WCTL_HDR + 50, 0);
			rec[4] = 1;
			send(c->fds[1], rec, WCTL_HDR + 50, 0);
			break;
		case 3: /* the second record's length differs */
			be32_put(rec + 5, 100);
			send(c->fds[1], rec, WCTL_HDR + 50, 0);
			be32_put(rec + 5, 101);
			send(c->fds[1], rec, WCTL_HDR + 50, 0);
			break;
		case 4: /* a record above WCTL_CHUNK of data */
			be32_put(rec + 5, WCTL_CHUNK + 1);
			send(c->fds[1], rec, sizeof(rec), 0);
			break;
		case 5: /* a reply announced above WCTL_REPLY_MAX */
			be32_put(rec + 5, WCTL_REPLY_MAX + 1);
			send(c->fds[1], rec, WCTL_HDR + 10, 0);
			break;
		case 6: /* a stale record, then the reply in two records */
			be32_put(rec, seq - 1);
			be32_put(rec + 5, 3);
			send(c->fds[1], rec, WCTL_HDR + 3, 0);
			be32_put(rec, seq);
			be32_put(rec + 5, 6);
			memcpy(rec + WCTL_HDR, "abc", 3);
			send(c->fds[1], rec, WCTL_HDR + 3, 0);
			memcpy(rec + WCTL_HDR, "def", 3);
			send(c->fds[1], rec, WCTL_HDR + 3, 0);
			break;
		}
		_exit(0);
	}
	c->child = pid;
}

static void test_malformed_replies(void **state)
{
	struct ctx *c = *state;
	const int want[] = { ZG_ERR_MALFORMED, ZG_ERR_MALFORMED, ZG_ERR_MALFORMED,
			     ZG_ERR_MALFORMED, ZG_ERR_MALFORMED, ZG_ERR_TOO_LARGE };
	int st;

	for (int mode = 0; mode < (int)(sizeof(want) / sizeof(want[0])); mode++) {
		st = -1;
		fake_peer(c, mode);
		evbuffer_add(c->reply, "junk", 4);
		assert_int_equal(wctl_call(c->fds[0], 'e', "x", 1, 2000, c->reply, &st), want[mode]);
		assert_int_equal(evbuffer_get_length(c->reply), 0);
		assert_int_equal(st, -1);
		waitpid(c->child, NULL, 0);
		c->child = 0;
	}
	/* a reply in two records after a stale one: reassembled */
	fake_peer(c, 6);
	assert_int_equal(wctl_call(c->fds[0], 'e', "x", 1, 2000, c->reply, &st), 0);
	assert_int_equal(st, 0);
	assert_int_equal(evbuffer_get_length(c->reply), 6);
	assert_memory_equal(evbuffer_pullup(c->reply, 6), "abcdef", 6);
	waitpid(c->child, NULL, 0);
	c->child = 0;
	/* what a bad peer left behind does not reach a good worker's caller */
	spawn(c);
	assert_int_equal(wctl_call(c->fds[0], 'e', "ok", 2, 2000, c->reply, &st), 0);
	assert_int_equal(evbuffer_get_length(c->reply), 2);
}

/* The worker refuses malformed requests with WCTL_ST_BAD_REQ and goes on;
 * a record too short to carry a seq is dropped. Run in this process. */
static void test_bad_requests(void **state)
{
	struct ctx *c = *state;
	struct event_base *base = event_base_new();
	struct wctl_server *s;
	static uint8_t rec[WCTL_HDR + WCTL_REQ_MAX + 1];
	uint8_t out[64];
	const struct {
		size_t reclen;
		uint32_t len;
	} cases[] = {
		{ WCTL_HDR + 3, 4 },                               /* announces more than it has */
		{ WCTL_HDR + 3, 2 },                               /* less */
		{ WCTL_HDR + WCTL_REQ_MAX + 1, WCTL_REQ_MAX + 1 }, /* too long */
	};

	assert_non_null(base);
	assert_int_equal(wctl_serve_new(base, c->fds[1], handler, base, &s), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rec[0] = 'e';
		be32_put(rec + 1, 0x5000 + (uint32_t)i);
		be32_put(rec + 5, cases[i].len);
		raw_send(c->fds[0], rec, cases[i].reclen);
		assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
		assert_int_equal(recv(c->fds[0], out, sizeof(out), MSG_DONTWAIT), WCTL_HDR);
		assert_int_equal(be32_get(out), 0x5000 + i);
		assert_int_equal(out[4], WCTL_ST_BAD_REQ);
		assert_int_equal(be32_get(out + 5), 0);
	}
	raw_send(c->fds[0], rec, 4);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	assert_int_equal(recv(c->fds[0], out, sizeof(out), MSG_DONTWAIT), -1);
	/* a good one still works */
	rec[0] = 'e';
	be32_put(rec + 1, 77);
	be32_put(rec + 5, 2);
	memcpy(rec + WCTL_HDR, "ok", 2);
	raw_send(c->fds[0], rec, WCTL_HDR + 2);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	assert_int_equal(recv(c->fds[0], out, sizeof(out), MSG_DONTWAIT), WCTL_HDR + 2);
	assert_int_equal(be32_get(out), 77);
	assert_int_equal(out[4], 0);
	assert_memory_equal(out + WCTL_HDR, "ok", 2);
	assert_int_equal(wctl_server_served(s), 4);
	wctl_server_free(s);
	event_base_free(base);
}

/* The master end closed, while idle or while a reply waits to be
 * written: the worker logs it once and stops reading (its loop has nothing
 * left to wait for), without exiting; the reply is dropped. */
static void test_worker_sees_eof(void **state)
{
	struct ctx *c = *state;

	for (int busy = 0; busy < 2; busy++) {
		struct event_base *base = event_base_new();
		struct wctl_server *s;
		uint8_t rec[WCTL_HDR + 4] = { 'b', 0, 0, 0, 9, 0, 0, 0, 4 };
		FILE *logf = tmpfile();
		char line[256];
		int lines = 0, fds[2];

		assert_non_null(base);
		assert_non_null(logf);
		assert_int_equal(wctl_pair_open(fds, NULL, 0), 0);
		log_set_output(logf);
		assert_int_equal(wctl_serve_new(base, fds[1], handler, base, &s), 0);
		if (busy) {
			/* a 3 MiB reply that nobody reads */
			be32_put(rec + WCTL_HDR, 3 * MIB);
			raw_send(fds[0], rec, sizeof(rec));
			assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
		}
		close(fds[0]);
		assert_int_equal(event_base_dispatch(base), 1); /* 1: no event left */
		log_set_output(NULL);
		rewind(logf);
		while (fgets(line, sizeof(line), logf) != NULL) {
			lines++;
			if (strstr(line, "closed by the master") == NULL)
				fail_msg("busy %d: %s", busy, line);
		}
		assert_int_equal(lines, 1);
		fclose(logf);
		assert_int_equal(wctl_server_served(s), 0);
		wctl_server_free(s);
		event_base_free(base);
		close(fds[1]);
	}
	(void)c;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pair_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_then_own_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_dies_and_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_sees_eof, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN); /* as the master does */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
