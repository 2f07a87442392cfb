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
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

static void note(void *ctx, char *buf, size_t len)
{
	(void)ctx;
	(void)snprintf(buf, len, "ipam_api: down for 3 s");
}

static const char *gate_reason;

static const char *gate(void *ctx)
{
	(void)ctx;
	return gate_reason;
}

/* A gate holds a started relay's /ready at 503 "waiting" with its reason
 * (the first policy from zgate-api), then lets it be ready. */
static void test_ready_gate(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	ops_set_state(fx->ops, OPS_READY);
	ops_set_ready_gate(fx->ops, gate);
	gate_reason = "policy: waiting for the first one from zgate-api";
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 503"));
	assert_non_null(strstr(buf, "\r\n\r\nwaiting\npolicy: waiting for the first one"));
	gate_reason = NULL;
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	/* draining wins over the gate */
	gate_reason = "x";
	ops_set_state(fx->ops, OPS_DRAINING);
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 503"));
	assert_non_null(strstr(buf, "\r\n\r\ndraining"));
	ops_set_ready_gate(fx->ops, NULL);
	gate_reason = NULL;
}

/* 20.2: a note rides with /ready without changing its status. */
static void test_ready_note(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	ops_set_state(fx->ops, OPS_READY);
	ops_set_ready_note(fx->ops, note);
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nready\nipam_api: down for 3 s\n"));
	ops_set_state(fx->ops, OPS_DRAINING);
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 503"));
	assert_non_null(strstr(buf, "draining\nipam_api: down"));
	ops_set_ready_note(fx->ops, NULL);
	get(fx, "/ready", buf, sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\ndraining\n"));
	assert_null(strstr(buf, "ipam_api"));
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
	for (int i = 0; i < 8; i++) {                                          /* "GET /health HTTP/1.1", 1 byte per 40 ms */
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

/* ------------------------------------------------------------------ */
/* admin endpoint (issue 18.3)                                        */

#define TOKEN "0123456789abcdefghijklmnopqrstuvwxyzABCD" /* 40 bytes */

struct afx {
	struct fx fx;
	char dir[64], file[96];
	int lists, kicks, audits;
	char kicked[OPS_CLIENT_MAX];
	char audit_action[32], audit_client[OPS_CLIENT_MAX], audit_caller[64];
	int audit_status;
};

static void a_list(void *ctx, ops_session_emit_fn emit, void *ectx)
{
	struct afx *a = ctx;
	struct ops_session s;

	a->lists++;
	memset(&s, 0, sizeof(s));
	s.client = "agent-1";
	s.addr4 = "10.100.0.7";
	s.addr6 = "fd00::7";
	s.peer = "192.0.2.1:4444";
	s.since = 1700000000;
	s.bytes_up = 123;
	s.bytes_down = 456;
	s.cert_serial = "0a1b";
	emit(ectx, &s);
	memset(&s, 0, sizeof(s));
	s.client = "we\"ird\\id";
	s.addr4 = "10.100.0.8";
	s.peer = "192.0.2.2:5555";
	s.since = 1700000060;
	emit(ectx, &s);
}

static int a_kick(void *ctx, const char *client)
{
	struct afx *a = ctx;

	a->kicks++;
	snprintf(a->kicked, sizeof(a->kicked), "%s", client);
	return strcmp(client, "agent-1") == 0 || strcmp(client, "spiffe://zgate.test/a b") == 0 ||
			       strcmp(client, "spiffe://zgate.test/agent-uri") == 0
		       ? 0
		       : ZG_ERR_NOTFOUND;
}

static void a_audit(void *ctx, const char *action, const char *client, const char *caller,
		    int status)
{
	struct afx *a = ctx;

	a->audits++;
	snprintf(a->audit_action, sizeof(a->audit_action), "%s", action);
	snprintf(a->audit_client, sizeof(a->audit_client), "%s", client ? client : "(null)");
	snprintf(a->audit_caller, sizeof(a->audit_caller), "%s", caller);
	a->audit_status = status;
}

static const struct ops_admin_cbs acbs = { a_list, a_kick, a_audit };

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup_admin(void **state)
{
	static struct afx a;
	char err[256];

	memset(&a, 0, sizeof(a));
	a.fx.base = event_base_new();
	if (!a.fx.base || ops_new(a.fx.base, "127.0.0.1:0", metrics, &a.fx, &a.fx.ops) != 0)
		return -1;
	snprintf(a.dir, sizeof(a.dir), "/tmp/zg-test-ops-XXXXXX");
	if (mkdtemp(a.dir) == NULL)
		return -1;
	snprintf(a.file, sizeof(a.file), "%s/token", a.dir);
	write_file(a.file, TOKEN "\n", 0640);
	if (ops_admin_enable(a.fx.ops, a.file, &acbs, &a, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = &a;
	return 0;
}

static int teardown_admin(void **state)
{
	struct afx *a = *state;

	ops_del(a->fx.ops);
	event_base_free(a->fx.base);
	unlink(a->file);
	rmdir(a->dir);
	return 0;
}

/* One admin request: METHOD PATH with the Authorization value auth (NULL:
 * none) and extra header lines. */
static void admin_req(struct afx *a, const char *method, const char *path, const char *auth,
		      const char *extra, char *out, size_t outlen)
{
	char req[1024];

	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n%s%s%s%sConnection: close\r\n\r\n",
		 method, path, auth ? "Authorization: " : "", auth ? auth : "", auth ? "\r\n" : "",
		 extra ? extra : "");
	exchange(&a->fx, req, out, outlen);
}

/* 18.3: without admin.token_file there is no admin endpoint: every admin
 * path is 404 whatever the method or credentials. */
static void test_admin_off_is_404(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	get(fx, "/admin/sessions", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	exchange(fx, "DELETE /admin/sessions/agent-1 HTTP/1.1\r\nHost: x\r\n"
		     "Authorization: Bearer " TOKEN "\r\nConnection: close\r\n\r\n",
		 buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	exchange(fx, "GET /admin/sessions HTTP/1.1\r\nHost: x\r\n"
		     "Authorization: Bearer \r\nConnection: close\r\n\r\n",
		 buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	get(fx, "/metrics", buf, sizeof(buf));
	assert_null(strstr(buf, "zgate_admin_requests_total"));
}

/* 18.3: a missing, wrong, truncated, extended or non-Bearer token is 401
 * with WWW-Authenticate, and the owner is never asked anything. */
static void test_admin_refuses_bad_tokens(void **state)
{
	struct afx *a = *state;
	struct ops_admin_stats st;
	char buf[4096];
	const char *bad[] = {
		"Bearer 0123456789abcdefghijklmnopqrstuvwxyzABCE",  /* last byte differs */
		"Bearer 0123456789abcdefghijklmnopqrstuvwxyzABC",   /* one short */
		"Bearer 0123456789abcdefghijklmnopqrstuvwxyzABCDE", /* one more */
		"Bearer",
		"Basic " TOKEN,
		"Bearer" TOKEN,
		"bearer  x" TOKEN,
	};

	admin_req(a, "GET", "/admin/sessions", NULL, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	assert_non_null(strstr(buf, "WWW-Authenticate: Bearer realm=\"zgate-relay admin\"\r\n"));
	admin_req(a, "DELETE", "/admin/sessions/agent-1", NULL, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		admin_req(a, "GET", "/admin/sessions", bad[i], NULL, buf, sizeof(buf));
		assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
		assert_non_null(strstr(buf, "WWW-Authenticate: Bearer"));
		admin_req(a, "DELETE", "/admin/sessions/agent-1", bad[i], NULL, buf, sizeof(buf));
		assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	}
	admin_req(a, "GET", "/admin/sessions", "Bearer 0123456789abcdefghijklmnopqrstuvwxyzABCE",
		  NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "error=\"invalid_token\""));
	/* the right token twice (two headers) is not one credential */
	admin_req(a, "GET", "/admin/sessions", "Bearer " TOKEN,
		  "Authorization: Bearer " TOKEN "\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	/* a method the path does not take is still 401 first */
	admin_req(a, "POST", "/admin/sessions", NULL, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	assert_int_equal(a->lists, 0);
	assert_int_equal(a->kicks, 0);
	assert_int_equal(a->audits, 0);
	ops_get_admin_stats(a->fx.ops, &st);
	assert_int_equal(st.unauthorized, 2 + 2 * (sizeof(bad) / sizeof(bad[0])) + 3);
	assert_int_equal(st.ok, 0);
	get(&a->fx, "/metrics", buf, sizeof(buf));
	assert_non_null(strstr(buf, "zgate_admin_requests_total{result=\"unauthorized\"} 19\n"));
}

/* 18.3: the right token lists the sessions as JSON through the owner's
 * callback, audited with the caller's address. */
static void test_admin_lists_sessions(void **state)
{
	struct afx *a = *state;
	char buf[4096];

	admin_req(a, "GET", "/admin/sessions", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(buf, "Cache-Control: no-store\r\n"));
	assert_non_null(strstr(buf,
			       "\r\n\r\n[\n  {\"client\":\"agent-1\",\"addresses\":[\"10.100.0.7\",\"fd00::7\"],"
			       "\"peer\":\"192.0.2.1:4444\",\"since\":\"2023-11-14T22:13:20Z\",\"bytes_up\":123,"
			       "\"bytes_down\":456,\"cert_serial\":\"0a1b\"},\n  {\"client\":\"we\\\"ird\\\\id\","
			       "\"addresses\":[\"10.100.0.8\"],\"peer\":\"192.0.2.2:5555\","
			       "\"since\":\"2023-11-14T22:14:20Z\",\"bytes_up\":0,\"bytes_down\":0,"
			       "\"cert_serial\":null}\n]\n"));
	assert_int_equal(a->lists, 1);
	assert_int_equal(a->audits, 1);
	assert_string_equal(a->audit_action, "list_sessions");
	assert_string_equal(a->audit_client, "(null)");
	assert_int_equal(strncmp(a->audit_caller, "127.0.0.1:", 10), 0);
	assert_int_equal(a->audit_status, 200);
	/* the scheme is case-insensitive (RFC 9110 11.1) */
	admin_req(a, "GET", "/admin/sessions", "bearer   " TOKEN "  ", NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	/* HEAD: the same head, no body */
	admin_req(a, "HEAD", "/admin/sessions", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_string_equal(strstr(buf, "\r\n\r\n"), "\r\n\r\n");
}

/* 18.3: DELETE closes the named client's session through the owner's
 * callback (the ID percent-decoded), 404 for a client without one; both
 * audited. */
static void test_admin_kicks_sessions(void **state)
{
	struct afx *a = *state;
	char buf[4096];

	admin_req(a, "DELETE", "/admin/sessions/agent-1", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "{\"client\":\"agent-1\",\"closed\":true}\n"));
	assert_string_equal(a->kicked, "agent-1");
	assert_string_equal(a->audit_action, "close_session");
	assert_string_equal(a->audit_client, "agent-1");
	assert_int_equal(a->audit_status, 200);
	assert_int_equal(strncmp(a->audit_caller, "127.0.0.1:", 10), 0);

	admin_req(a, "DELETE", "/admin/sessions/agent-9", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	assert_string_equal(a->kicked, "agent-9");
	assert_string_equal(a->audit_client, "agent-9");
	assert_int_equal(a->audit_status, 404);

	admin_req(a, "DELETE", "/admin/sessions/spiffe%3A%2F%2Fzgate.test%2Fagent-uri",
		  "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_string_equal(a->kicked, "spiffe://zgate.test/agent-uri");
	assert_int_equal(a->kicks, 3);

	/* what no client ID can be: refused before the owner is asked */
	admin_req(a, "DELETE", "/admin/sessions/spiffe%3A%2F%2Fzgate.test%2Fa%20b", "Bearer " TOKEN,
		  NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	admin_req(a, "DELETE", "/admin/sessions/", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	admin_req(a, "DELETE", "/admin/sessions/%4", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	admin_req(a, "DELETE",
		  "/admin/sessions/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	assert_int_equal(a->kicks, 3);
}

/* 18.3: other methods are 405 with Allow, a body is refused, unknown
 * admin paths are 404 (all after the token check). */
static void test_admin_methods_and_bodies(void **state)
{
	struct afx *a = *state;
	char buf[4096];

	admin_req(a, "POST", "/admin/sessions", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(buf, "Allow: GET, HEAD\r\n"));
	admin_req(a, "DELETE", "/admin/sessions", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n"));
	admin_req(a, "GET", "/admin/sessions/agent-1", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(buf, "Allow: DELETE\r\n"));
	admin_req(a, "PUT", "/admin/sessions/agent-1", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n"));
	admin_req(a, "DELETE", "/admin/sessions/agent-1", "Bearer " TOKEN, "Content-Length: 2\r\n",
		  buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	admin_req(a, "DELETE", "/admin/sessions/agent-1", "Bearer " TOKEN,
		  "Transfer-Encoding: chunked\r\n", buf, sizeof(buf));
	assert_null(strstr(buf, "200 OK"));
	admin_req(a, "GET", "/admin/other", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	assert_int_equal(a->kicks, 0);
	assert_int_equal(a->audits, 0);
	/* Content-Length: 0 is no body */
	admin_req(a, "DELETE", "/admin/sessions/agent-1", "Bearer " TOKEN, "Content-Length: 0\r\n",
		  buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	/* the other paths keep working beside admin */
	get(&a->fx, "/health", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
}

/* 18.3: the token file: refused when others may read or write it, when
 * shorter than 32 bytes, not a regular file, not one word, or missing;
 * a reload that fails keeps the token in force; a good one replaces it. */
static void test_admin_token_file(void **state)
{
	struct afx *a = *state;
	char tok[OPS_TOKEN_MAX + 1], err[512], buf[4096], path[128];
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/t2", a->dir);
	write_file(path, TOKEN "\r\n", 0400);
	assert_int_equal(ops_token_load(path, tok, sizeof(tok), &n, err, sizeof(err)), 0);
	assert_int_equal(n, 40);
	assert_string_equal(tok, TOKEN);

	write_file(path, TOKEN, 0644);
	assert_int_equal(ops_token_load(path, tok, sizeof(tok), &n, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "chmod o-rwx"));
	write_file(path, TOKEN, 0602);
	assert_int_equal(ops_token_load(path, tok, sizeof(tok), &n, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "replace"));

	write_file(path, "0123456789abcdef0123456789abcde\n", 0600); /* 31 bytes */
	assert_int_equal(ops_token_load(path, tok, sizeof(tok), &n, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "31 bytes; at least 32"));
	write_file(path, "0123456789abcdef0123456789abcdef\n", 0600); /* 32 */
	assert_int_equal(ops_token_load(path, tok, sizeof(tok), &n, err, sizeof(err)), 0);
	write_file(path, "0123456789abcdef 0123456789abcdef\n", 0600);
	assert_int_equal(ops_token_load(path, tok, sizeof(tok), &n, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "not printable ASCII"));
	assert_int_equal(ops_token_load(a->dir, tok, sizeof(tok), &n, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);
	assert_int_equal(ops_token_load(path, tok, sizeof(tok), &n, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "cannot open"));

	/* enabling with a bad file leaves admin off */
	{
		struct ops *o2 = NULL;

		assert_int_equal(ops_new(a->fx.base, "127.0.0.1:0", NULL, NULL, &o2), 0);
		write_file(path, "short", 0600);
		assert_int_equal(ops_admin_enable(o2, path, &acbs, a, err, sizeof(err)), ZG_ERR_CONFIG);
		assert_int_equal(ops_admin_reload(o2, err, sizeof(err)), ZG_ERR_STATE);
		ops_del(o2);
		unlink(path);
	}

	/* reload: a world-readable file keeps the old token */
	write_file(a->file, "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxw\n", 0644);
	assert_int_equal(ops_admin_reload(a->fx.ops, err, sizeof(err)), ZG_ERR_CONFIG);
	admin_req(a, "GET", "/admin/sessions", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	/* fixed: the new token replaces the old one */
	assert_int_equal(chmod(a->file, 0640), 0);
	assert_int_equal(ops_admin_reload(a->fx.ops, err, sizeof(err)), 0);
	admin_req(a, "GET", "/admin/sessions", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized\r\n"));
	admin_req(a, "GET", "/admin/sessions", "Bearer ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxw",
		  NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	get(&a->fx, "/metrics", buf, sizeof(buf));
	assert_non_null(strstr(buf, "zgate_admin_token_reload_errors_total 1\n"));
}

/* 18.3 (admin.listen): an admin-only listener serves nothing else. */
static void test_admin_only_listener(void **state)
{
	struct afx *a = *state;
	char buf[4096];

	ops_set_admin_only(a->fx.ops, 1);
	get(&a->fx, "/health", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	get(&a->fx, "/metrics", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
	assert_int_equal(a->fx.metrics_calls, 0);
	admin_req(a, "GET", "/admin/sessions", "Bearer " TOKEN, NULL, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_health, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_follows_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_gate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_note, setup, teardown),
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
		cmocka_unit_test_setup_teardown(test_admin_off_is_404, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_refuses_bad_tokens, setup_admin, teardown_admin),
		cmocka_unit_test_setup_teardown(test_admin_lists_sessions, setup_admin, teardown_admin),
		cmocka_unit_test_setup_teardown(test_admin_kicks_sessions, setup_admin, teardown_admin),
		cmocka_unit_test_setup_teardown(test_admin_methods_and_bodies, setup_admin, teardown_admin),
		cmocka_unit_test_setup_teardown(test_admin_token_file, setup_admin, teardown_admin),
		cmocka_unit_test_setup_teardown(test_admin_only_listener, setup_admin, teardown_admin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
