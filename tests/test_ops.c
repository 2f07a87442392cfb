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
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test_setup_teardown(test_bind_failure, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
