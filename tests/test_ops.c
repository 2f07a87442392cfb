/* Unit tests for src/relay/ops: the HTTP operations endpoint, over real
 * loopback sockets driven by the test's own event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "relay/ops.h"
#include "hostport.h"
#include "zg_err.h"

struct fx {
	struct event_base *base;
	struct ops *ops;
	int metrics_calls;
};

static void metrics(void *ctx, struct evbuffer *out)
{
	struct fx *fx = ctx;
	fx->metrics_calls++;
	evbuffer_add_printf(out, "# TYPE zgate_sessions gauge\nzgate_sessions %d\n", 3);
}

static int setup(void **state)
{
	static struct fx fx;
	memset(&fx, 0, sizeof(fx));
	fx.base = event_base_new();
	if (!fx.base || ops_new(fx.base, "127.0.0.1:0", metrics, &fx, &fx.ops) != 0)
		return -1;
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	ops_del(fx->ops);
	event_base_free(fx->base);
	return 0;
}

/* Sends raw request bytes and collects the whole response (the server
 * closes the connection: every request says Connection: close). Drives
 * the server's loop meanwhile; bounded to about 5 seconds. */
static size_t exchange(struct fx *fx, const char *req, char *out, size_t outlen)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t n = 0;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(ops_port(fx->ops));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (int i = 0; i < 500; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 10) == 1) {
			ssize_t r = read(fd, out + n, outlen - 1 - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
	}
	close(fd);
	out[n] = '\0';
	return n;
}

static void get(struct fx *fx, const char *path, char *out, size_t outlen)
{
	char req[512];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	exchange(fx, req, out, outlen);
}

static void test_health(void **state)
{
	char buf[4096];
	get(*state, "/health", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nok\n"));
}

static void test_ready_follows_state(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	assert_int_equal(ops_get_state(fx->ops), OPS_STARTING);
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 503 Service Unavailable\r\n"));
	assert_non_null(strstr(buf, "starting\n"));
	ops_set_state(fx->ops, OPS_READY);
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "ready\n"));
	ops_set_state(fx->ops, OPS_DRAINING);
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 503"));
	assert_non_null(strstr(buf, "draining\n"));
	/* health stays 200 while draining */
	get(fx, "/health", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
}

static void test_metrics(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	get(fx, "/metrics", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n# TYPE zgate_sessions gauge\nzgate_sessions 3\n"));
	assert_int_equal(fx->metrics_calls, 1);
}

static void test_head_has_no_body(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	exchange(fx, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n"));
	assert_string_equal(strstr(buf, "\r\n\r\n"), "\r\n\r\n");
}

static void test_unknown_path_and_method(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	get(fx, "/admin", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	get(fx, "/health/../metrics", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404"));
	exchange(fx, "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
		 buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(buf, "Allow: GET, HEAD\r\n"));
}

static void test_oversized_headers_refused(void **state)
{
	struct fx *fx = *state;
	static char req[OPS_MAX_HEADERS * 2 + 256];
	char buf[4096];
	size_t n;

	n = (size_t)snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + n, 'a', OPS_MAX_HEADERS * 2);
	n += OPS_MAX_HEADERS * 2;
	memcpy(req + n, "\r\nConnection: close\r\n\r\n", 24);
	exchange(fx, req, buf, sizeof(buf));
	assert_null(strstr(buf, "200 OK"));
	assert_non_null(strstr(buf, "HTTP/1.1 4")); /* 400 or 413, never served */
}

static void test_oversized_body_refused(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	exchange(fx, "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
		 buf, sizeof(buf));
	assert_null(strstr(buf, "200 OK"));
	assert_non_null(strstr(buf, "HTTP/1.1 413"));
}

static void test_split_hostport(void **state)
{
	char host[64];
	uint16_t port;
	(void)state;
	assert_int_equal(hostport_split("0.0.0.0:8080", host, sizeof(host), &port), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 8080);
	assert_int_equal(hostport_split(":8080", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(hostport_split("[::1]:9", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9);
	assert_int_equal(hostport_split("::1:9", host, sizeof(host), &port), ZG_ERR_CONFIG);
	assert_int_equal(hostport_split("8080", host, sizeof(host), &port), ZG_ERR_CONFIG);
	assert_int_equal(hostport_split("h:70000", host, sizeof(host), &port), ZG_ERR_CONFIG);
	assert_int_equal(hostport_split("h:", host, sizeof(host), &port), ZG_ERR_CONFIG);
	assert_int_equal(hostport_split("[::1:9", host, sizeof(host), &port), ZG_ERR_CONFIG);
}

static void test_bind_failure(void **state)
{
	struct fx *fx = *state;
	struct ops *o2 = NULL;
	char addr[64];

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ops_port(fx->ops));
	assert_int_equal(ops_new(fx->base, addr, NULL, NULL, &o2), ZG_ERR_IO);
	assert_null(o2);
	assert_int_equal(ops_new(fx->base, "nonsense", NULL, NULL, &o2), ZG_ERR_CONFIG);
}

/* A connected client socket that sends nothing (yet). */
static int idle_client(struct fx *fx)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(ops_port(fx->ops));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Drives the server's loop for about ms milliseconds. */
static void run_for(struct fx *fx, int ms)
{
	for (int i = 0; i < ms; i += 5) {
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		(void)poll(NULL, 0, 5);
	}
}

/* What the server sent on fd before closing it (waits up to ms). */
static size_t drain(struct fx *fx, int fd, char *out, size_t outlen, int ms)
{
	size_t n = 0;

	for (int i = 0; i < ms; i += 5) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 5) == 1) {
			ssize_t r = read(fd, out + n, outlen - 1 - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
	}
	out[n] = '\0';
	return n;
}

static unsigned conns(struct fx *fx)
{
	struct ops_stats st;
	ops_get_stats(fx->ops, &st);
	return st.conns;
}

/* 16.1: at most max_connections at once; one more is answered 503 and
 * closed at once (no descriptor held); a freed slot serves again. */
static void test_connection_cap(void **state)
{
	struct fx *fx = *state;
	struct ops_stats st;
	char buf[4096];
	int held[3], extra;

	ops_set_limits(fx->ops, 3, 5000);
	for (int i = 0; i < 3; i++)
		held[i] = idle_client(fx);
	run_for(fx, 50);
	assert_int_equal(conns(fx), 3);
	extra = idle_client(fx);
	drain(fx, extra, buf, sizeof(buf), 1000);
	close(extra);
	assert_non_null(strstr(buf, "HTTP/1.1 503 Service Unavailable\r\n"));
	ops_get_stats(fx->ops, &st);
	assert_int_equal(st.refused_busy, 1);
	assert_int_equal(st.conns, 3);
	close(held[0]);
	run_for(fx, 50);
	assert_int_equal(conns(fx), 2);
	get(fx, "/metrics", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "zgate_ops_refused_total{reason=\"busy\"} 1\n"));
	close(held[1]);
	close(held[2]);
}

/* 16.1: a connection has the timeout for its whole request head: idle
 * ones, and ones trickling a byte at a time, are closed when it passes. */
static void test_idle_timeout(void **state)
{
	struct fx *fx = *state;
	struct ops_stats st;
	char buf[256];
	int idle, slow;

	ops_set_limits(fx->ops, 0, 200);
	idle = idle_client(fx);
	slow = idle_client(fx);
	run_for(fx, 20);
	assert_int_equal(conns(fx), 2);
	for (int i = 0; i < 8; i++) { /* "GET /health HTTP/1.1", 1 byte per 40 ms */
		(void)send(slow, &"GET /health HTTP/1.1"[i], 1, MSG_NOSIGNAL); /* fails once closed */
		run_for(fx, 40);
	}
	assert_int_equal(conns(fx), 0);
	assert_int_equal(drain(fx, idle, buf, sizeof(buf), 100), 0); /* closed, nothing sent */
	ops_get_stats(fx->ops, &st);
	assert_int_equal(st.timeouts, 2);
	close(idle);
	close(slow);
	/* a prompt request is still served */
	get(fx, "/health", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
}

/* 16.1: out of descriptors, accept() fails with EMFILE while the
 * listener stays readable. The endpoint sheds the waiting connection
 * with its spare descriptor and pauses instead of retrying at once
 * (libevent's accept loop spun at 100 % CPU); it serves again once
 * descriptors are free. */
static void test_emfile_pauses_and_sheds(void **state)
{
	struct fx *fx = *state;
	struct ops_stats st;
	struct rlimit old, low;
	char buf[4096];
	int waiting, fds[64], nfds = 0, probe;

	waiting = idle_client(fx); /* in the backlog, not yet accepted */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	probe = dup(0);
	assert_true(probe >= 0);
	close(probe);
	low = old;
	low.rlim_cur = (rlim_t)probe + 8; /* a few left */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (nfds < 64 && (fds[nfds] = dup(0)) >= 0)
		nfds++;
	assert_true(nfds < 64); /* exhausted: the next accept() gets EMFILE */
	for (int i = 0; i < 200; i++)
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
	ops_get_stats(fx->ops, &st);
	/* one failure, then paused: not 200 retries */
	assert_int_equal(st.accept_errors, 1);
	assert_int_equal(st.shed, 1);
	assert_int_equal(st.conns, 0);
	assert_int_equal(drain(fx, waiting, buf, sizeof(buf), 50), 0); /* closed unserved */
	close(waiting);
	while (nfds > 0)
		close(fds[--nfds]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	run_for(fx, OPS_PAUSE_MIN_MS + 50);
	get(fx, "/health", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_health, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_follows_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_has_no_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_path_and_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_headers_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_body_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_emfile_pauses_and_sheds, setup, teardown),
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test_setup_teardown(test_bind_failure, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
