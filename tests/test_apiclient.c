/*
 * Unit tests for src/relay/apiclient (the relay's zgate-api client) and
 * src/relay/apiresp (its HTTP/JSON answer parser). The client runs on a
 * real libevent loop against a fake HTTPS server: a wolfSSL TLS 1.3 server
 * on a loopback socket in a thread, answering each request with the next
 * step of a script (an answer, a hang, a cut, garbage), and counting the
 * TCP connections it accepted. Certificates come from tests/pki.h plus a
 * relay client certificate (CN relay:r1) made here with openssl.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "relay/apiclient.h"
#include "relay/apiresp.h"
#include "relay/policy.h"
#include "relay/polapi.h"
#include "log.h"
#include "zg_err.h"
#include "pki.h"

/* ---------------------------------------------------------------- fake server */

enum act_kind {
	A_ANSWER, /* status line, headers and body as given (raw) */
	A_HANG,   /* read the request, never answer */
	A_CUT,    /* send raw, then close the connection */
	A_BIG,    /* raw "N|head": the head ("@LEN@" = N), then N bytes of body */
};

struct act {
	enum act_kind kind;
	const char *raw;
};

struct fake {
	int lfd;
	uint16_t port;
	pthread_t th;
	WOLFSSL_CTX *ctx;
	pthread_mutex_t mu;
	struct act acts[16];
	int nacts, next;
	int accepts;  /* TCP connections accepted */
	int requests; /* requests read */
	int handshakes_failed;
	char last_req[4096];
	volatile int stop;
};

static struct act next_act(struct fake *fk)
{
	struct act a;

	pthread_mutex_lock(&fk->mu);
	a = fk->acts[fk->next < fk->nacts ? fk->next : fk->nacts - 1];
	if (fk->next < fk->nacts)
		fk->next++;
	pthread_mutex_unlock(&fk->mu);
	return a;
}

/* Reads up to n bytes; 0 on close or error, -1 when nothing came (yet). */
static int srv_read(struct fake *fk, WOLFSSL *ssl, char *buf, int n)
{
	int r = wolfSSL_read(ssl, buf, n);

	if (r > 0)
		return r;
	r = wolfSSL_get_error(ssl, r);
	if ((r == WOLFSSL_ERROR_WANT_READ || r == WOLFSSL_ERROR_WANT_WRITE) && !fk->stop)
		return -1;
	return 0;
}

/* One whole request (headers and Content-Length body) into buf; 0 when
 * the connection ended first. */
static int read_request(struct fake *fk, WOLFSSL *ssl, char *buf, size_t cap)
{
	size_t len = 0;

	for (;;) {
		char *eoh;
		int r;

		buf[len] = '\0';
		if ((eoh = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "Content-Length:");
			size_t want = (size_t)(eoh + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);

			if (len >= want)
				return 1;
		}
		if (len + 1 >= cap)
			return 0;
		r = srv_read(fk, ssl, buf + len, (int)(cap - 1 - len));
		if (r == 0)
			return 0;
		if (r > 0)
			len += (size_t)r;
	}
}

/* Sends raw with "@LEN@" replaced by the length of its body. */
static int send_answer(WOLFSSL *ssl, const char *raw)
{
	char out[8192];
	const char *at = strstr(raw, "@LEN@"), *body = strstr(raw, "\r\n\r\n");
	int n;

	if (at == NULL)
		n = snprintf(out, sizeof(out), "%s", raw);
	else
		n = snprintf(out, sizeof(out), "%.*s%zu%s", (int)(at - raw), raw,
			     body ? strlen(body + 4) : 0, at + 5);
	if (n < 0 || (size_t)n >= sizeof(out))
		return -1;
	/* the head and the body in TLS records of their own, so that the
	 * client reads an answer in several pieces */
	body = strstr(out, "\r\n\r\n");
	if (body != NULL && body[4] != '\0') {
		int h = (int)(body + 4 - out);

		if (wolfSSL_write(ssl, out, h) != h)
			return -1;
		return wolfSSL_write(ssl, out + h, n - h) == n - h ? 0 : -1;
	}
	return wolfSSL_write(ssl, out, n) == n ? 0 : -1;
}

/* The head raw with "@LEN@" = n, then n bytes of '#'. */
static int send_big(WOLFSSL *ssl, const char *raw, size_t n)
{
	char head[1024], chunk[16384];
	const char *at = strstr(raw, "@LEN@");
	int h = snprintf(head, sizeof(head), "%.*s%zu%s", (int)(at - raw), raw, n, at + 5);

	if (h < 0 || (size_t)h >= sizeof(head) || wolfSSL_write(ssl, head, h) != h)
		return -1;
	memset(chunk, '#', sizeof(chunk));
	while (n > 0) {
		int k = n < sizeof(chunk) ? (int)n : (int)sizeof(chunk);

		if (wolfSSL_write(ssl, chunk, k) != k)
			return -1;
		n -= (size_t)k;
	}
	return 0;
}

static void serve_conn(struct fake *fk, int fd)
{
	WOLFSSL *ssl = wolfSSL_new(fk->ctx);
	char req[4096];
	struct timeval tv = { 0, 50000 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (ssl == NULL || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS)
		goto out;
	for (;;) {
		int r = wolfSSL_accept(ssl), e;

		if (r == WOLFSSL_SUCCESS)
			break;
		e = wolfSSL_get_error(ssl, r);
		if ((e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE) || fk->stop) {
			pthread_mutex_lock(&fk->mu);
			fk->handshakes_failed++;
			pthread_mutex_unlock(&fk->mu);
			goto out;
		}
	}
	while (!fk->stop && read_request(fk, ssl, req, sizeof(req))) {
		struct act a = next_act(fk);

		pthread_mutex_lock(&fk->mu);
		fk->requests++;
		memcpy(fk->last_req, req, sizeof(req));
		pthread_mutex_unlock(&fk->mu);
		if (a.kind == A_HANG) {
			char b[256];

			while (srv_read(fk, ssl, b, sizeof(b)) != 0)
				;
			goto out;
		}
		if ((a.kind == A_BIG ? send_big(ssl, strchr(a.raw, '|') + 1, strtoul(a.raw, NULL, 10))
				     : send_answer(ssl, a.raw)) != 0 ||
		    a.kind == A_CUT)
			goto out;
	}
out:
	if (ssl)
		wolfSSL_free(ssl);
	close(fd);
}

static void *fake_main(void *arg)
{
	struct fake *fk = arg;

	while (!fk->stop) {
		struct pollfd p = { fk->lfd, POLLIN, 0 };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept(fk->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&fk->mu);
		fk->accepts++;
		pthread_mutex_unlock(&fk->mu);
		serve_conn(fk, fd);
	}
	return NULL;
}

/* A fake server on ip (any port), acting out the n steps of acts (the
 * last one repeats). */
static struct fake *fake_start(const char *ip, const struct act *acts, int n)
{
	struct fake *fk = calloc(1, sizeof(*fk));
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);

	assert_non_null(fk);
	assert_true(n > 0 && n <= 16);
	memcpy(fk->acts, acts, sizeof(*acts) * (size_t)n);
	fk->nacts = n;
	pthread_mutex_init(&fk->mu, NULL);
	fk->ctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
	assert_non_null(fk->ctx);
	assert_int_equal(wolfSSL_CTX_use_certificate_chain_file(fk->ctx, f("relay.crt")),
			 WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_CTX_use_PrivateKey_file(fk->ctx, f("relay.key"),
							 WOLFSSL_FILETYPE_PEM),
			 WOLFSSL_SUCCESS);
	assert_int_equal(wolfSSL_CTX_load_verify_locations(fk->ctx, f("ca.crt"), NULL),
			 WOLFSSL_SUCCESS);
	/* mutual TLS, as zgate-api asks */
	wolfSSL_CTX_set_verify(fk->ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			       NULL);
	fk->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fk->lfd >= 0);
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	assert_int_equal(bind(fk->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fk->lfd, 16), 0);
	assert_int_equal(getsockname(fk->lfd, (struct sockaddr *)&sin, &sl), 0);
	fk->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&fk->th, NULL, fake_main, fk), 0);
	return fk;
}

static int fake_get(struct fake *fk, int *field)
{
	int v;

	pthread_mutex_lock(&fk->mu);
	v = *field;
	pthread_mutex_unlock(&fk->mu);
	return v;
}

/* The last request fk read contains (or, want 0, lacks) text. */
static void req_has(struct fake *fk, const char *text, int want)
{
	char req[sizeof(fk->last_req)];

	pthread_mutex_lock(&fk->mu);
	memcpy(req, fk->last_req, sizeof(req));
	pthread_mutex_unlock(&fk->mu);
	if ((strstr(req, text) != NULL) != want)
		fail_msg("the request %s \"%s\":\n%s", want ? "lacks" : "has", text, req);
}

static void fake_stop(struct fake *fk)
{
	fk->stop = 1;
	pthread_join(fk->th, NULL);
	close(fk->lfd);
	wolfSSL_CTX_free(fk->ctx);
	pthread_mutex_destroy(&fk->mu);
	free(fk);
}

/* ---------------------------------------------------------------- client side */

#define LEASE_201                                                                                 \
	"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: @LEN@\r\n\r\n" \
	"{\"client_id\":\"agent-1\",\"address\":\"10.100.0.7\",\"prefix_len\":32,\"relay_id\":"   \
	"\"r1\",\"created\":\"2026-01-01T00:00:00Z\",\"last_seen\":\"x\",\"how\":\"new\"}  \n"
#define LEASE_200                                                                            \
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: @LEN@\r\n\r\n" \
	"{\"address\":\"10.100.0.9\",\"prefix_len\":32,\"how\":\"existing\"}"

struct got {
	int n;
	struct apic_result r;
	struct event_base *base;
	struct apic_req *cancel_me; /* cancelled from this callback */
};

static void got_cb(void *arg, const struct apic_result *r)
{
	struct got *g = arg;

	g->n++;
	g->r = *r;
	if (g->cancel_me) {
		apic_cancel(g->cancel_me);
		g->cancel_me = NULL;
	}
	event_base_loopbreak(g->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until a callback breaks it or ms pass. */
static void run(struct event_base *base, unsigned ms)
{
	struct event *t = evtimer_new(base, stop_cb, base);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	assert_non_null(t);
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
}

/* Runs until g has n callbacks (or ms pass). */
static void run_until(struct event_base *base, struct got *g, int n, unsigned ms)
{
	for (unsigned i = 0; i < ms / 10 && g->n < n; i++)
		run(base, 10);
}

static char url[128];
static char err[512];
static size_t body_max; /* the next client's (fx_start), 0 = the default */

/* The relay's configuration for zgate-api at u: its certificate r1, the
 * test CA. */
static struct apic_config cfg_of(const char *u, uint32_t timeout_ms, unsigned max_conns)
{
	struct apic_config cfg = {
		.url = u,
		.ca = f("ca.crt"),
		.cert = f("r1.crt"),
		.key = f("r1.key"),
		.relay_id = "r1",
		.timeout_ms = timeout_ms,
		.max_conns = max_conns,
		.body_max = body_max,
	};

	return cfg;
}

/* on_state's record: the states in order ('U', 'D') and
 * apic_last_error() as each change was reported. */
static struct {
	struct apic *a;
	char seq[16];
	char why[16][160];
	unsigned n;
} st_rec;

static void rec_state(void *arg, int st)
{
	assert_ptr_equal(arg, &st_rec);
	if (st_rec.n + 1 >= sizeof(st_rec.seq))
		return;
	st_rec.seq[st_rec.n] = st == APIC_UP ? 'U' : st == APIC_DOWN ? 'D'
								     : '?';
	assert_int_equal(apic_state(st_rec.a), st); /* already the new state */
	snprintf(st_rec.why[st_rec.n], sizeof(st_rec.why[0]), "%s", apic_last_error(st_rec.a));
	st_rec.n++;
}

static struct apic *client(struct event_base *base, const char *ip, uint16_t port,
			   uint32_t timeout_ms, unsigned max_conns, const char *ca)
{
	struct apic_config cfg = cfg_of(url, timeout_ms, max_conns);
	struct apic *a = NULL;

	memset(&st_rec, 0, sizeof(st_rec));
	cfg.on_state = rec_state;
	cfg.on_state_arg = &st_rec;
	if (ca != NULL)
		cfg.ca = f(ca);
	snprintf(url, sizeof(url), "https://%s:%u/", ip, port);
	assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), 0);
	st_rec.a = a;
	return a;
}

struct fixture {
	struct event_base *base;
	struct fake *fk;
	struct apic *a;
	struct got g;
};

/* A fake server on ip acting out acts, a client of it trusting ca (NULL:
 * the test CA), a loop and a callback record. */
static void fx_start_at(struct fixture *x, const char *ip, const char *ca, const struct act *acts,
			int n, uint32_t timeout_ms, unsigned max_conns)
{
	memset(x, 0, sizeof(*x));
	x->base = event_base_new();
	assert_non_null(x->base);
	x->fk = fake_start(ip, acts, n);
	x->a = client(x->base, ip, x->fk->port, timeout_ms, max_conns, ca);
	x->g.base = x->base;
}

static void fx_start(struct fixture *x, const struct act *acts, int n, uint32_t timeout_ms,
		     unsigned max_conns)
{
	fx_start_at(x, "127.0.0.1", NULL, acts, n, timeout_ms, max_conns);
}

static void fx_stop(struct fixture *x)
{
	apic_free(x->a);
	fake_stop(x->fk);
	event_base_free(x->base);
}

/* Runs x's loop until no request is pending (or a second passes). */
static void fx_run_idle(struct fixture *x)
{
	for (int i = 0; i < 100 && apic_pending(x->a) > 0; i++)
		run(x->base, 10);
}

/* One allocation answered by the script; returns the result. */
static const struct apic_result *alloc1(struct fixture *x, const uint8_t *want4, unsigned ms)
{
	int before = x->g.n;

	assert_non_null(apic_allocate(x->a, "agent-1", want4, got_cb, &x->g));
	assert_int_equal(x->g.n, before); /* never from inside apic_allocate */
	run_until(x->base, &x->g, before + 1, ms);
	assert_int_equal(x->g.n, before + 1);
	return &x->g.r;
}

/* ---------------------------------------------------------------- tests */

static void test_created(void **state)
{
	static const struct act acts[] = { { A_ANSWER, LEASE_201 } };
	const uint8_t want[4] = { 10, 100, 0, 7 };
	struct fixture x;
	struct apic_counters c;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 1, 2000, 0);
	assert_int_equal(apic_state(x.a), APIC_UNKNOWN);
	assert_int_equal(apic_state_age_ms(x.a), 0);
	r = alloc1(&x, want, 3000);
	assert_int_equal(r->ok, 1);
	assert_int_equal(r->status, 201);
	assert_int_equal(r->existing, 0);
	assert_memory_equal(r->addr4, want, 4);
	assert_string_equal(r->cause, "");
	assert_string_equal(r->client_id, "agent-1");
	assert_int_equal(apic_state(x.a), APIC_UP);
	assert_true(apic_state_age_ms(x.a) < 1000);
	run(x.base, 120);
	assert_true(apic_state_age_ms(x.a) >= 100);
	assert_int_equal(apic_pending(x.a), 0);
	apic_counters(x.a, &c);
	assert_int_equal(c.requests, 1);
	assert_int_equal(c.failures, 0);
	assert_int_equal(c.retries, 0);
	assert_int_equal(c.connects, 1);
	/* what the API was asked */
	req_has(x.fk, "POST /api/v1/ipam/allocations HTTP/1.1\r\n", 1);
	req_has(x.fk, "\r\nHost: 127.0.0.1:", 1);
	req_has(x.fk,
		"{\"client_id\":\"agent-1\",\"relay_id\":\"r1\",\"requested_address\":\"10.100.0.7\"}",
		1);
	fx_stop(&x);
}

static void test_existing_chunked(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, LEASE_200 },
		{ A_ANSWER, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			    "10\r\n{\"address\":\"10.1\r\n"
			    "17;x=y\r\n.2.3\",\"how\":\"existing\"}\r\n0\r\n\r\n" },
	};
	struct fixture x;
	const struct apic_result *r;
	const uint8_t a9[4] = { 10, 100, 0, 9 }, a3[4] = { 10, 1, 2, 3 };

	(void)state;
	fx_start(&x, acts, 2, 2000, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 1);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->existing, 1);
	assert_memory_equal(r->addr4, a9, 4);
	req_has(x.fk, "requested_address", 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 1);
	assert_int_equal(r->existing, 1);
	assert_memory_equal(r->addr4, a3, 4);
	fx_stop(&x);
}

static void test_4xx_final(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, "HTTP/1.1 409 Conflict\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"address pool exhausted\"}\n\n" },
		{ A_ANSWER, "HTTP/1.1 403 Forbidden\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"relay_id differs from the relay's certificate\"}\n" },
		{ A_ANSWER, "HTTP/1.1 400 Bad Request\r\nContent-Length: @LEN@\r\n\r\nnot json\n" },
	};
	struct fixture x;
	struct apic_counters c;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 3, 2000, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_int_equal(r->status, 409);
	assert_string_equal(r->cause, "409 address pool exhausted");
	assert_string_equal(apic_last_error(x.a), "409 address pool exhausted");
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->status, 403);
	assert_string_equal(r->cause, "403 relay_id differs from the relay's certificate");
	r = alloc1(&x, NULL, 3000);
	assert_string_equal(r->cause, "400 not json");
	assert_int_equal(apic_state(x.a), APIC_UP); /* it answered */
	apic_counters(x.a, &c);
	assert_int_equal(c.requests, 3);
	assert_int_equal(c.failures, 3);
	assert_int_equal(c.retries, 0);
	assert_int_equal(c.connects, 1);
	fx_stop(&x);
}

static void test_503_then_201(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
			    "Content-Length: @LEN@\r\n\r\n{\"error\":\"database unavailable\"}\n" },
		{ A_ANSWER, LEASE_201 },
	};
	struct fixture x;
	struct apic_counters c;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 2, 2000, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 1);
	assert_int_equal(r->status, 201);
	apic_counters(x.a, &c);
	assert_int_equal(c.requests, 2);
	assert_int_equal(c.retries, 1);
	assert_int_equal(c.failures, 0);
	assert_int_equal(apic_state(x.a), APIC_UP);
	assert_string_equal(apic_last_error(x.a), "503 database unavailable");
	/* on_state saw each change as it happened, the cause already set */
	assert_string_equal(st_rec.seq, "DU");
	assert_string_equal(st_rec.why[0], "503 database unavailable");
	fx_stop(&x);
}

static void test_503_until_deadline(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, "HTTP/1.1 503 Service Unavailable\r\n"
			    "Content-Length: @LEN@\r\n\r\n{\"error\":\"database unavailable\"}\n" },
	};
	struct fixture x;
	struct apic_counters c;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 1, 400, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_int_equal(r->status, 503);
	assert_non_null(strstr(r->cause, "503 database unavailable"));
	assert_int_equal(apic_state(x.a), APIC_DOWN);
	apic_counters(x.a, &c);
	/* 50 + 100 + 200 ms of backoff fit in 400 ms, 400 more do not */
	assert_true(c.retries >= 2 && c.retries <= 3);
	assert_int_equal(c.failures, 1);
	fx_stop(&x);
}

static void test_timeout(void **state)
{
	static const struct act acts[] = { { A_HANG, NULL } };
	struct fixture x;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 1, 300, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_int_equal(r->status, 0);
	if (strstr(r->cause, "timeout after 300 ms (waiting for the answer of 127.0.0.1:") != r->cause)
		fail_msg("cause: %s", r->cause);
	assert_int_equal(apic_state(x.a), APIC_DOWN);
	assert_string_equal(st_rec.seq, "D");
	assert_string_equal(st_rec.why[0], r->cause);
	assert_int_equal(apic_pending(x.a), 0);
	fx_stop(&x);
}

static void test_cut_then_ok(void **state)
{
	static const struct act acts[] = {
		{ A_CUT, "HTTP/1.1 201 Created\r\nContent-Len" },
		{ A_CUT, "HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"addr" },
		{ A_ANSWER, LEASE_201 },
	};
	struct fixture x;
	struct apic_counters c;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 3, 2000, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 1);
	apic_counters(x.a, &c);
	assert_int_equal(c.retries, 2);
	assert_int_equal(c.connects, 3);
	assert_int_equal(fake_get(x.fk, &x.fk->accepts), 3);
	assert_non_null(strstr(apic_last_error(x.a), "connection closed in the body"));
	fx_stop(&x);
}

static void test_garbage(void **state)
{
	static const struct act acts[] = { { A_CUT, "HTPT/1.1 2OO OK\r\n\r\n" } };
	struct fixture x;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 1, 300, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	/* retried while the deadline allowed, then the last failure */
	if (strstr(r->cause, "answer from 127.0.0.1:") != r->cause ||
	    strstr(r->cause, ": bad status line") == NULL)
		fail_msg("cause: %s", r->cause);
	assert_int_equal(apic_state(x.a), APIC_DOWN);
	fx_stop(&x);
}

static void test_oversized(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, "HTTP/1.1 201 Created\r\nContent-Length: 70000\r\n\r\n{" },
	};
	struct fixture x;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 1, 300, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_non_null(strstr(r->cause, "body larger than 65536 bytes"));
	fx_stop(&x);
}

static void test_bad_lease(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, "HTTP/1.1 201 Created\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"address\":\"2001:db8::\"}" },
	};
	struct fixture x;
	const struct apic_result *r;

	(void)state;
	fx_start(&x, acts, 1, 300, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_non_null(strstr(r->cause, "no IPv4 \"address\""));
	fx_stop(&x);
}

static void test_keepalive_and_refresh(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, LEASE_201 },
		{ A_ANSWER, LEASE_200 },
		{ A_ANSWER, LEASE_200 },
		{ A_ANSWER, "HTTP/1.1 404 Not Found\r\nContent-Length: @LEN@\r\nConnection: close\r\n"
			    "\r\n{\"error\":\"no lease for this client\"}" },
		{ A_ANSWER, LEASE_201 },
	};
	struct fixture x;
	struct apic_counters c;

	(void)state;
	fx_start(&x, acts, 5, 2000, 0);
	assert_int_equal(alloc1(&x, NULL, 3000)->ok, 1);
	assert_int_equal(alloc1(&x, NULL, 3000)->ok, 1);
	assert_int_equal(apic_refresh(x.a, "agent-1", NULL, NULL), 0);
	fx_run_idle(&x);
	apic_counters(x.a, &c);
	assert_int_equal(c.refreshes, 1);
	assert_int_equal(c.connects, 1);
	assert_int_equal(fake_get(x.fk, &x.fk->accepts), 1);
	req_has(x.fk, "PUT /api/v1/ipam/allocations/agent-1/refresh ", 1);
	req_has(x.fk, "\r\n\r\n{\"relay_id\":\"r1\"}", 1);
	/* a failed refresh is counted, not reported; Connection: close is obeyed */
	assert_int_equal(apic_refresh(x.a, "agent-1", NULL, NULL), 0);
	fx_run_idle(&x);
	apic_counters(x.a, &c);
	assert_int_equal(c.refreshes, 1);
	assert_int_equal(c.failures, 1);
	assert_string_equal(apic_last_error(x.a), "404 no lease for this client");
	assert_int_equal(alloc1(&x, NULL, 3000)->ok, 1);
	apic_counters(x.a, &c);
	assert_int_equal(c.connects, 2);
	assert_int_equal(c.retries, 0);
	assert_int_equal(fake_get(x.fk, &x.fk->accepts), 2);
	fx_stop(&x);
}

/* A refresh with a callback reports its result: 200 ok; 409 (the lease's
 * address lies outside zgate-api's pool) and 404 (no lease) with their
 * status and text, so that the relay can allocate again; each with the
 * client id it was for, and never from inside apic_refresh(). */
static void test_refresh_reported(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, LEASE_200 },
		{ A_ANSWER, "HTTP/1.1 409 Conflict\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"the lease's address 10.201.0.12 lies outside the pool "
			    "10.201.0.0/29 (made smaller or moved): not refreshed; allocate again "
			    "(POST ipam/allocations) for an address of the pool\"}\n" },
		{ A_ANSWER, "HTTP/1.1 404 Not Found\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"no lease for this client\"}" },
	};
	struct fixture x;
	struct apic_counters c;

	(void)state;
	fx_start(&x, acts, 3, 2000, 0);
	assert_int_equal(apic_refresh(x.a, "agent-1", got_cb, &x.g), 0);
	assert_int_equal(x.g.n, 0);
	run_until(x.base, &x.g, 1, 3000);
	assert_int_equal(x.g.n, 1);
	assert_int_equal(x.g.r.ok, 1);
	assert_int_equal(x.g.r.status, 200);
	assert_string_equal(x.g.r.client_id, "agent-1");
	assert_string_equal(x.g.r.cause, "");

	assert_int_equal(apic_refresh(x.a, "agent-2@x", got_cb, &x.g), 0);
	run_until(x.base, &x.g, 2, 3000);
	assert_int_equal(x.g.n, 2);
	assert_int_equal(x.g.r.ok, 0);
	assert_int_equal(x.g.r.status, 409);
	assert_string_equal(x.g.r.client_id, "agent-2@x");
	/* zgate-api's text, cut to what the cause holds, not dropped */
	assert_true(strncmp(x.g.r.cause,
			    "409 the lease's address 10.201.0.12 lies outside the pool "
			    "10.201.0.0/29 (made smaller or moved): not refreshed; allocate again",
			    120) == 0);
	req_has(x.fk, "PUT /api/v1/ipam/allocations/agent-2@x/refresh ", 1);

	assert_int_equal(apic_refresh(x.a, "agent-3", got_cb, &x.g), 0);
	run_until(x.base, &x.g, 3, 3000);
	assert_int_equal(x.g.n, 3);
	assert_int_equal(x.g.r.status, 404);
	assert_string_equal(x.g.r.client_id, "agent-3");
	assert_string_equal(x.g.r.cause, "404 no lease for this client");
	apic_counters(x.a, &c);
	assert_int_equal(c.refreshes, 1);
	assert_int_equal(c.failures, 2);
	assert_int_equal(c.retries, 0); /* 4xx are final */
	fx_stop(&x);
}

/* apic_probe(): GET /ready, only the state: 503 (the API's database is
 * down) makes it DOWN after the retries, 200 UP again; a failure is
 * counted like a refresh's. */
static void test_probe(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: @LEN@\r\n\r\n"
			    "database unreachable\n" },
		{ A_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: @LEN@\r\n\r\nready\n" },
	};
	struct fixture x;
	struct apic_counters c;

	(void)state;
	fx_start(&x, acts, 1, 300, 0);
	assert_int_equal(apic_state(x.a), APIC_UNKNOWN);
	assert_int_equal(apic_probe(x.a), 0);
	assert_int_equal(apic_pending(x.a), 1);
	fx_run_idle(&x);
	assert_int_equal(apic_state(x.a), APIC_DOWN);
	assert_int_equal(apic_pending(x.a), 0);
	apic_counters(x.a, &c);
	assert_int_equal(c.failures, 1);
	assert_true(c.retries >= 1);
	assert_int_equal(c.refreshes, 0);
	req_has(x.fk, "GET /ready HTTP/1.1\r\nHost: ", 1);
	fx_stop(&x);

	fx_start(&x, acts + 1, 1, 300, 0);
	assert_int_equal(apic_probe(x.a), 0);
	fx_run_idle(&x);
	assert_int_equal(apic_state(x.a), APIC_UP);
	apic_counters(x.a, &c);
	assert_int_equal(c.failures, 0);
	assert_int_equal(c.requests, 1);
	fx_stop(&x);
}

/* The server closes a keep-alive connection after its answer: the idle
 * connection is dropped, the next request opens a new one, no retry. */
static void test_server_closes_idle(void **state)
{
	static const struct act acts[] = {
		{ A_CUT, LEASE_201 },
		{ A_ANSWER, LEASE_200 },
	};
	struct fixture x;
	struct apic_counters c;

	(void)state;
	fx_start(&x, acts, 2, 2000, 1);
	assert_int_equal(alloc1(&x, NULL, 3000)->ok, 1);
	run(x.base, 100);
	assert_int_equal(alloc1(&x, NULL, 3000)->existing, 1);
	apic_counters(x.a, &c);
	assert_int_equal(c.connects, 2);
	assert_int_equal(c.retries, 0);
	assert_int_equal(c.failures, 0);
	assert_int_equal(fake_get(x.fk, &x.fk->accepts), 2);
	fx_stop(&x);
}

static void test_wrong_host(void **state)
{
	static const struct act acts[] = { { A_ANSWER, LEASE_201 } };
	struct fixture x;
	const struct apic_result *r;
	struct apic_counters c;

	(void)state;
	fx_start_at(&x, "127.0.0.2", NULL, acts, 1, 300, 0); /* relay.crt names 127.0.0.1 */
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_non_null(strstr(r->cause, "certificate does not name 127.0.0.2"));
	assert_int_equal(fake_get(x.fk, &x.fk->requests), 0);
	apic_counters(x.a, &c);
	assert_int_equal(c.connects, 0);
	fx_stop(&x);
}

static void test_wrong_ca(void **state)
{
	static const struct act acts[] = { { A_ANSWER, LEASE_201 } };
	struct fixture x;
	const struct apic_result *r;

	(void)state;
	fx_start_at(&x, "127.0.0.1", "other-ca.crt", acts, 1, 300, 0);
	r = alloc1(&x, NULL, 3000);
	assert_int_equal(r->ok, 0);
	if (strstr(r->cause, "TLS with 127.0.0.1:") != r->cause ||
	    strstr(r->cause, ": certificate refused: ") == NULL)
		fail_msg("cause: %s", r->cause);
	assert_int_equal(fake_get(x.fk, &x.fk->requests), 0);
	assert_int_equal(apic_state(x.a), APIC_DOWN);
	fx_stop(&x);
}

static void test_refused(void **state)
{
	struct event_base *base = event_base_new();
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t sl = sizeof(sin);
	struct apic *a;
	struct got g = { .base = base };
	struct apic_counters c;

	(void)state;
	/* a port nobody listens on: bound, never listening */
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
	a = client(base, "127.0.0.1", ntohs(sin.sin_port), 300, 0, NULL);
	assert_non_null(apic_allocate(a, "agent-1", NULL, got_cb, &g));
	assert_int_equal(g.n, 0);
	run_until(base, &g, 1, 3000);
	assert_int_equal(g.n, 1);
	if (strstr(g.r.cause, "connect to 127.0.0.1:") != g.r.cause)
		fail_msg("cause: %s", g.r.cause);
	assert_non_null(strstr(g.r.cause, "Connection refused"));
	apic_counters(a, &c);
	assert_true(c.retries >= 2);
	assert_int_equal(c.requests, 0);
	assert_int_equal(apic_state(a), APIC_DOWN);
	assert_string_equal(st_rec.seq, "D"); /* once, not at every retry */
	assert_non_null(strstr(st_rec.why[0], "Connection refused"));
	apic_free(a);
	close(s);
	event_base_free(base);
}

static void test_cancel(void **state)
{
	static const struct act acts[] = { { A_HANG, NULL } };
	struct fixture x;
	struct apic_req *r1, *r2, *r3;
	struct got g2 = { 0 }, g3 = { 0 };

	(void)state;
	fx_start(&x, acts, 1, 400, 1);
	g2.base = g3.base = x.base;
	/* cancelled at once: queued */
	r1 = apic_allocate(x.a, "agent-1", NULL, got_cb, &x.g);
	assert_non_null(r1);
	apic_cancel(r1);
	/* cancelled while its request is on the wire */
	r2 = apic_allocate(x.a, "agent-2", NULL, got_cb, &g2);
	r3 = apic_allocate(x.a, "agent-3", NULL, got_cb, &g3);
	assert_non_null(r2);
	assert_non_null(r3);
	assert_int_equal(apic_pending(x.a), 2);
	for (int i = 0; i < 100 && fake_get(x.fk, &x.fk->requests) < 1; i++)
		run(x.base, 10);
	assert_int_equal(fake_get(x.fk, &x.fk->requests), 1);
	apic_cancel(r2);
	run(x.base, 100);
	assert_int_equal(x.g.n, 0);
	assert_int_equal(g2.n, 0);
	/* r3 went on a new connection and times out */
	run_until(x.base, &g3, 1, 3000);
	assert_int_equal(g3.n, 1);
	assert_int_equal(apic_pending(x.a), 0);
	run(x.base, 600);
	assert_int_equal(x.g.n, 0);
	assert_int_equal(g2.n, 0);
	fx_stop(&x);
}

static void test_cancel_from_callback(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, "HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}" },
	};
	struct fixture x;
	struct apic_req *r2;
	struct got g2 = { 0 };

	(void)state;
	fx_start(&x, acts, 1, 2000, 1);
	g2.base = x.base;
	assert_non_null(apic_allocate(x.a, "agent-1", NULL, got_cb, &x.g));
	r2 = apic_allocate(x.a, "agent-2", NULL, got_cb, &g2);
	assert_non_null(r2);
	x.g.cancel_me = r2;
	run_until(x.base, &x.g, 1, 3000);
	assert_int_equal(x.g.n, 1);
	assert_string_equal(x.g.r.cause, "409 (no error text)");
	run(x.base, 300);
	assert_int_equal(g2.n, 0);
	assert_int_equal(apic_pending(x.a), 0);
	fx_stop(&x);
}

static void free_cb(void *arg, const struct apic_result *r)
{
	struct got *g = arg;

	(void)r;
	g->n++;
	apic_free((struct apic *)g->cancel_me); /* the client itself, from its callback */
	event_base_loopbreak(g->base);
}

static void test_free_pending(void **state)
{
	static const struct act acts[] = { { A_HANG, NULL } };
	struct fixture x;
	struct got g2 = { 0 };

	(void)state;
	fx_start(&x, acts, 1, 2000, 2);
	for (int i = 0; i < 5; i++)
		assert_non_null(apic_allocate(x.a, "agent-1", NULL, got_cb, &x.g));
	assert_int_equal(apic_refresh(x.a, "agent-1", NULL, NULL), 0);
	run(x.base, 200);
	assert_int_equal(apic_pending(x.a), 6);
	apic_free(x.a);
	x.a = NULL;
	run(x.base, 100);
	assert_int_equal(x.g.n, 0);
	/* freed from a callback, with others still queued */
	{
		struct apic_config cfg = cfg_of("https://127.0.0.1:1", 50, 1);

		assert_int_equal(apic_new(x.base, NULL, &cfg, &x.a, err, sizeof(err)), 0);
	}
	g2.base = x.base;
	g2.cancel_me = (struct apic_req *)(void *)x.a;
	assert_non_null(apic_allocate(x.a, "agent-1", NULL, free_cb, &g2));
	assert_non_null(apic_allocate(x.a, "agent-2", NULL, free_cb, &g2));
	assert_non_null(apic_allocate(x.a, "agent-3", NULL, got_cb, &x.g));
	run_until(x.base, &g2, 1, 2000);
	assert_int_equal(g2.n, 1);
	run(x.base, 100);
	assert_int_equal(g2.n, 1);
	assert_int_equal(x.g.n, 0);
	x.a = NULL;
	fx_stop(&x);
}

static void test_limits(void **state)
{
	struct event_base *base = event_base_new();
	struct apic *a = client(base, "127.0.0.1", 1, 60000, 1, NULL);
	struct got g = { .base = base };
	char longid[300];
	int n = 0;

	(void)state;
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_null(apic_allocate(a, "", NULL, got_cb, &g));
	assert_null(apic_allocate(a, longid, NULL, got_cb, &g));
	longid[255] = '\0';
	assert_non_null(apic_allocate(a, longid, NULL, got_cb, &g));
	n++;
	while (apic_allocate(a, "agent-1", NULL, got_cb, &g) != NULL && n < 10000)
		n++;
	assert_int_equal(n, 4096);
	assert_int_equal(apic_refresh(a, "agent-1", NULL, NULL), ZG_ERR_LIMIT);
	assert_int_equal(apic_pending(a), 4096);
	run(base, 50);
	assert_int_equal(g.n, 0);
	apic_free(a);
	event_base_free(base);
}

static void test_no_resolver(void **state)
{
	struct event_base *base = event_base_new();
	struct apic_config cfg = cfg_of("https://zgate-api.invalid:8443/base/", 0, 0);
	struct apic *a = NULL;
	struct got g = { .base = base };

	(void)state;
	assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), 0);
	assert_non_null(apic_allocate(a, "agent-1", NULL, got_cb, &g));
	assert_int_equal(g.n, 0);
	run_until(base, &g, 1, 1000);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.r.ok, 0);
	assert_string_equal(g.r.cause, "resolve zgate-api.invalid: no DNS resolver given "
				       "(use an IP address in the URL)");
	apic_free(a);
	event_base_free(base);
}

/* Host names through evdns (a hosts file of our own, no name server):
 * the certificate's DNS name must match the URL's. */
static void test_dns_names(void **state)
{
	static const struct act acts[] = { { A_ANSWER, LEASE_201 } };
	struct event_base *base = event_base_new();
	struct evdns_base *dns = evdns_base_new(base, 0);
	struct fake *fk = fake_start("127.0.0.1", acts, 1);
	struct apic_config cfg = cfg_of(url, 300, 0);
	struct apic *a = NULL;
	struct got g = { .base = base };
	char hosts[300];
	FILE *fp;

	(void)state;
	assert_non_null(dns);
	snprintf(hosts, sizeof(hosts), "%s/hosts", pki_dir);
	fp = fopen(hosts, "w");
	assert_non_null(fp);
	fputs("127.0.0.1 localhost\n127.0.0.1 wrong.test\n", fp);
	fclose(fp);
	assert_int_equal(evdns_base_load_hosts(dns, hosts), 0);
	/* relay.crt names localhost */
	snprintf(url, sizeof(url), "https://localhost:%u", fk->port);
	assert_int_equal(apic_new(base, dns, &cfg, &a, err, sizeof(err)), 0);
	assert_non_null(apic_allocate(a, "agent-1", NULL, got_cb, &g));
	assert_int_equal(g.n, 0);
	run_until(base, &g, 1, 3000);
	assert_int_equal(g.n, 1);
	if (!g.r.ok)
		fail_msg("localhost: %s", g.r.cause);
	req_has(fk, "\r\nHost: localhost:", 1);
	apic_free(a);
	/* but not wrong.test */
	snprintf(url, sizeof(url), "https://wrong.test:%u", fk->port);
	assert_int_equal(apic_new(base, dns, &cfg, &a, err, sizeof(err)), 0);
	assert_non_null(apic_allocate(a, "agent-1", NULL, got_cb, &g));
	run_until(base, &g, 2, 3000);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.r.ok, 0);
	if (strstr(g.r.cause, "certificate does not name wrong.test") == NULL)
		fail_msg("wrong.test: %s", g.r.cause);
	apic_free(a);
	/* a name the hosts file does not know (no name server to ask) */
	snprintf(url, sizeof(url), "https://nowhere.test:%u", fk->port);
	assert_int_equal(apic_new(base, dns, &cfg, &a, err, sizeof(err)), 0);
	assert_non_null(apic_allocate(a, "agent-1", NULL, got_cb, &g));
	run_until(base, &g, 3, 3000);
	assert_int_equal(g.n, 3);
	if (strcmp(g.r.cause, "timeout after 300 ms (resolving nowhere.test)") != 0)
		fail_msg("nowhere.test: %s", g.r.cause);
	apic_free(a);
	evdns_base_free(dns, 0);
	/* a name with two addresses, the first refusing: the retry takes
	 * the second */
	dns = evdns_base_new(base, 0);
	assert_non_null(dns);
	fp = fopen(hosts, "w");
	assert_non_null(fp);
	fputs("127.0.0.2 localhost\n127.0.0.1 localhost\n", fp);
	fclose(fp);
	assert_int_equal(evdns_base_load_hosts(dns, hosts), 0);
	snprintf(url, sizeof(url), "https://localhost:%u", fk->port);
	cfg.timeout_ms = 2000;
	assert_int_equal(apic_new(base, dns, &cfg, &a, err, sizeof(err)), 0);
	assert_non_null(apic_allocate(a, "agent-1", NULL, got_cb, &g));
	run_until(base, &g, 4, 3000);
	assert_int_equal(g.n, 4);
	if (!g.r.ok)
		fail_msg("two addresses: %s", g.r.cause);
	{
		struct apic_counters c;

		apic_counters(a, &c);
		assert_int_equal(c.retries, 1);
		assert_non_null(strstr(apic_last_error(a), "Connection refused"));
	}
	apic_free(a);
	fake_stop(fk);
	evdns_base_free(dns, 0);
	event_base_free(base);
}

static void test_config_errors(void **state)
{
	struct event_base *base = event_base_new();
	struct apic_config cfg = cfg_of("https://127.0.0.1:8443", 0, 0);
	struct apic *a = (struct apic *)1;
	static const struct {
		const char *url, *want;
	} urls[] = {
		{ "http://127.0.0.1", "ipam.api.url: must start with https://" },
		{ "https://", "no usable host" },
		{ "https://h:0", "bad port" },
		{ "https://h:65536", "bad port" },
		{ "https://h:12x", "bad port" },
		{ "https://[::1", "no ]" },
		{ "https://u@h", "no user, query" },
		{ "https://h/x?y", "no user, query" },
		{ "https://h_a", "bad host name" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		cfg.url = urls[i].url;
		assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), ZG_ERR_CONFIG);
		assert_null(a);
		if (strstr(err, urls[i].want) == NULL)
			fail_msg("%s: %s", urls[i].url, err);
	}
	cfg.url = "https://[::1]:8443/x";
	assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), 0);
	apic_free(a);
	cfg.url = "https://127.0.0.1:8443";
	cfg.ca = "/nonexistent/ca.crt";
	assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), ZG_ERR_IO);
	assert_string_equal(err, "ipam.api.ca /nonexistent/ca.crt: No such file or directory");
	cfg.ca = f("r1.key");
	assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "no usable PEM CA certificate"));
	cfg.ca = f("ca.crt");
	cfg.key = f("agent-1.key");
	assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "does not match"));
	cfg.key = f("r1.key");
	cfg.relay_id = "";
	assert_int_equal(apic_new(base, NULL, &cfg, &a, err, sizeof(err)), ZG_ERR_CONFIG);
	apic_free(NULL);
	event_base_free(base);
}

/* ---------------------------------------------------------------- GET (policy) */

struct gotg {
	int n;
	struct apic_get_result r;
	char body[256]; /* the body's start, kept past the callback */
	struct event_base *base;
};

static void gotg_cb(void *arg, const struct apic_get_result *r)
{
	struct gotg *g = arg;

	g->n++;
	g->r = *r;
	g->r.body = NULL; /* not ours after the callback */
	snprintf(g->body, sizeof(g->body), "%.*s", r->body ? (int)r->body_len : 0,
		 r->body ? r->body : "");
	if (r->body != NULL)
		assert_int_equal(r->body[r->body_len], '\0');
	event_base_loopbreak(g->base);
}

static const struct apic_get_result *get1(struct fixture *x, struct gotg *g, const char *inm,
					  unsigned ms)
{
	int before = g->n;

	g->base = x->base;
	assert_non_null(apic_get(x->a, "/api/v1/policy", inm, gotg_cb, g));
	assert_int_equal(g->n, before);
	for (unsigned i = 0; i < ms / 10 && g->n == before; i++)
		run(x->base, 10);
	assert_int_equal(g->n, before + 1);
	return &g->r;
}

#define POLICY_200(etag, id, doc) \
	"HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nETag: " etag "\r\nZgate-Policy-Id: " id "\r\nContent-Length: @LEN@\r\n\r\n" doc

static void test_get_200_304_404(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, POLICY_200("\"3-0123456789abcdef\"", "3", "version: 1\n") },
		{ A_ANSWER, "HTTP/1.1 304 Not Modified\r\nETag: \"3-0123456789abcdef\"\r\n\r\n" },
		{ A_ANSWER, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
			    "Content-Length: @LEN@\r\n\r\n{\"error\":\"no active policy\"}" },
	};
	struct fixture x;
	struct gotg g;
	const struct apic_get_result *r;
	struct apic_counters c;

	(void)state;
	memset(&g, 0, sizeof(g));
	fx_start(&x, acts, 3, 1000, 0);
	r = get1(&x, &g, NULL, 3000);
	assert_int_equal(r->ok, 1);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->etag, "\"3-0123456789abcdef\"");
	assert_string_equal(r->policy_id, "3");
	assert_string_equal(g.body, "version: 1\n");
	assert_int_equal(r->body_len, 11);
	req_has(x.fk, "GET /api/v1/policy HTTP/1.1\r\nHost: 127.0.0.1:", 1);
	req_has(x.fk, "If-None-Match", 0);
	r = get1(&x, &g, "\"3-0123456789abcdef\"", 3000);
	assert_int_equal(r->ok, 1);
	assert_int_equal(r->status, 304);
	assert_string_equal(g.body, "");
	req_has(x.fk, "\r\nIf-None-Match: \"3-0123456789abcdef\"\r\n", 1);
	r = get1(&x, &g, "\"3-0123456789abcdef\"", 3000);
	assert_int_equal(r->ok, 0);
	assert_int_equal(r->status, 404);
	assert_string_equal(r->cause, "404 no active policy");
	assert_int_equal(apic_state(x.a), APIC_UP); /* it answered */
	apic_counters(x.a, &c);
	assert_int_equal(c.requests, 3);
	assert_int_equal(c.connects, 1); /* keep-alive */
	/* what cannot go on a request line */
	assert_null(apic_get(x.a, "api/v1/policy", NULL, gotg_cb, &g));
	assert_null(apic_get(x.a, "/a b", NULL, gotg_cb, &g));
	assert_null(apic_get(x.a, "/a", "\"x\"\r\nX-Evil: 1", gotg_cb, &g));
	fx_stop(&x);
}

/* 503 is retried until the deadline; a hang times out. */
static void test_get_503_and_timeout(void **state)
{
	static const struct act a503[] = {
		{ A_ANSWER, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"database unreachable\"}" },
	};
	static const struct act hang[] = { { A_HANG, NULL } };
	struct fixture x;
	struct gotg g;
	const struct apic_get_result *r;

	(void)state;
	memset(&g, 0, sizeof(g));
	fx_start(&x, a503, 1, 300, 0);
	r = get1(&x, &g, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_int_equal(r->status, 503);
	assert_non_null(strstr(r->cause, "database unreachable"));
	assert_true(fake_get(x.fk, &x.fk->requests) >= 2);
	assert_int_equal(apic_state(x.a), APIC_DOWN);
	fx_stop(&x);

	fx_start(&x, hang, 1, 200, 0);
	r = get1(&x, &g, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->cause, "timeout after 200 ms (waiting for the answer of"));
	fx_stop(&x);
}

/* A client with a larger body_max takes a 1 MiB body; one byte more than
 * its body_max is refused, as 64 KiB + 1 still is for the default. */
static void test_get_large_body(void **state)
{
	static const struct act acts[] = {
		{ A_BIG, "1048576|HTTP/1.1 200 OK\r\nETag: \"1-a\"\r\nContent-Length: @LEN@\r\n\r\n" },
		{ A_BIG, "1048578|HTTP/1.1 200 OK\r\nETag: \"1-a\"\r\nContent-Length: @LEN@\r\n\r\n" },
	};
	static const struct act small[] = {
		{ A_BIG, "65537|HTTP/1.1 200 OK\r\nContent-Length: @LEN@\r\n\r\n" },
	};
	struct fixture x;
	struct gotg g;
	const struct apic_get_result *r;

	(void)state;
	memset(&g, 0, sizeof(g));
	body_max = (1u << 20) + 1;
	fx_start(&x, acts, 2, 2000, 0);
	body_max = 0;
	r = get1(&x, &g, NULL, 5000);
	assert_int_equal(r->ok, 1);
	assert_int_equal(r->body_len, 1u << 20);
	assert_int_equal(g.body[0], '#');
	r = get1(&x, &g, NULL, 5000);
	assert_int_equal(r->ok, 0);
	assert_non_null(strstr(r->cause, "body larger than 1048577 bytes"));
	fx_stop(&x);

	fx_start(&x, small, 1, 300, 0);
	r = get1(&x, &g, NULL, 3000);
	assert_int_equal(r->ok, 0);
	assert_non_null(strstr(r->cause, "body larger than 65536 bytes"));
	fx_stop(&x);
}

/* ---------------------------------------------------------------- polapi */

#define DOC_A                                                                                   \
	"version: 1\ndefault_action: deny\nclients:\n  agent-1:\n    rules:\n      - id: web\n" \
	"        action: allow\n        destinations: [\"192.0.2.0/24\"]\n"
#define DOC_B "version: 1\ndefault_action: deny\nclients: {}\n"
#define DOC_BAD "version: 1\nclients:\n  agent-1:\n    rules:\n      - id: x\n        action: maybe\n"

struct polrec {
	int calls;
	uint64_t version;
};

static void pol_fn(void *arg, uint64_t version)
{
	struct polrec *pr = arg;

	pr->calls++;
	pr->version = version;
}

static struct polapi *pol_client(struct event_base *base, uint16_t port, const char *cache,
				 uint32_t timeout_ms, struct polrec *pr)
{
	struct polapi_config pc;
	struct polapi *p = NULL;

	snprintf(url, sizeof(url), "https://127.0.0.1:%u", port);
	memset(&pc, 0, sizeof(pc));
	pc.api = cfg_of(url, timeout_ms, 0);
	pc.poll_ms = 20;
	pc.cache = cache;
	assert_int_equal(polapi_new(base, NULL, &pc, pol_fn, pr, &p, err, sizeof(err)), 0);
	return p;
}

static uint64_t pol_sum(const struct polapi *p)
{
	uint64_t n[POLAPI_NRESULTS], t = 0;

	polapi_counts(p, n);
	for (int i = 0; i < POLAPI_NRESULTS; i++)
		t += n[i];
	return t;
}

/* Runs until p has made want fetches in all (or ms pass). */
static void pol_run(struct event_base *base, const struct polapi *p, uint64_t want, unsigned ms)
{
	for (unsigned i = 0; i < ms / 10 && pol_sum(p) < want; i++)
		run(base, 10);
	assert_true(pol_sum(p) >= want);
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *b = calloc(1, 1 << 16);
	size_t n;

	assert_non_null(fp);
	assert_non_null(b);
	n = fread(b, 1, (1 << 16) - 1, fp);
	b[n] = '\0';
	fclose(fp);
	return b;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

/* The whole cycle against one script: a version taken and written (with
 * its header line), 304 asked with its ETag, 404 kept, a document the
 * parser refuses kept out (logged once with its version, counted every
 * time), the next good one taken, then an outage: kept, one warning, and
 * one line when zgate-api answers again. */
static void test_polapi_cycle(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, POLICY_200("\"1-aaaaaaaaaaaaaaaa\"", "1", DOC_A) },
		{ A_ANSWER, "HTTP/1.1 304 Not Modified\r\n\r\n" },
		{ A_ANSWER, "HTTP/1.1 404 Not Found\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"no active policy\"}" },
		{ A_ANSWER, "HTTP/1.1 404 Not Found\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"no active policy\"}" },
		{ A_ANSWER, POLICY_200("\"2-bbbbbbbbbbbbbbbb\"", "2", DOC_BAD) },
		{ A_ANSWER, POLICY_200("\"2-bbbbbbbbbbbbbbbb\"", "2", DOC_BAD) },
		{ A_ANSWER, POLICY_200("\"3-cccccccccccccccc\"", "3", DOC_B) },
		{ A_ANSWER, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: @LEN@\r\n\r\n"
			    "{\"error\":\"database unreachable\"}" },
	};
	char cache[512], *text, *logs = NULL;
	size_t loglen = 0;
	FILE *logf = open_memstream(&logs, &loglen);
	struct event_base *base = event_base_new();
	struct fake *fk = fake_start("127.0.0.1", acts, 8);
	struct polrec pr = { 0 };
	struct polapi *p;
	uint64_t n[POLAPI_NRESULTS], v;
	char etag[APIC_ETAG_MAX];

	(void)state;
	assert_non_null(logf);
	log_set_output(logf);
	snprintf(cache, sizeof(cache), "%s/policy.api.yaml", pki_dir);
	unlink(cache);
	p = pol_client(base, fk->port, cache, 150, &pr);
	assert_int_equal(polapi_version(p), 0);
	assert_int_equal(polapi_has_policy(p), 0); /* no cache: deny-all, not ready */
	assert_int_equal(polapi_start(p), 0);
	pol_run(base, p, 1, 3000);
	assert_int_equal(polapi_has_policy(p), 1);
	assert_int_equal(pr.calls, 1);
	assert_int_equal(pr.version, 1);
	assert_int_equal(polapi_version(p), 1);
	text = slurp(cache);
	assert_string_equal(text, "# zgate-api policy 1 \"1-aaaaaaaaaaaaaaaa\" (written by "
				  "zgate-relay)\n" DOC_A);
	free(text);
	assert_int_equal(polapi_cache_meta(cache, &v, etag, sizeof(etag)), 0);
	assert_int_equal(v, 1);
	assert_string_equal(etag, "\"1-aaaaaaaaaaaaaaaa\"");
	pol_run(base, p, 2, 3000); /* 304 */
	req_has(fk, "If-None-Match: \"1-aaaaaaaaaaaaaaaa\"\r\n", 1);
	pol_run(base, p, 6, 3000); /* 404, 404, refused, refused */
	polapi_counts(p, n);
	assert_int_equal(n[POLAPI_CHANGED], 1);
	assert_int_equal(n[POLAPI_UNCHANGED], 1);
	assert_int_equal(n[POLAPI_ERROR], 2);
	assert_int_equal(n[POLAPI_REFUSED], 2);
	assert_int_equal(pr.calls, 1);
	text = slurp(cache); /* still A */
	assert_non_null(strstr(text, "policy 1 "));
	free(text);
	pol_run(base, p, 7, 3000); /* 3 */
	assert_int_equal(pr.calls, 2);
	assert_int_equal(polapi_version(p), 3);
	text = slurp(cache);
	assert_string_equal(text, "# zgate-api policy 3 \"3-cccccccccccccccc\" (written by "
				  "zgate-relay)\n" DOC_B);
	free(text);
	pol_run(base, p, 10, 5000); /* 503s: an outage */
	polapi_del(p);
	fake_stop(fk);
	/* a restart: the version in force is the cache's */
	p = pol_client(base, 9, cache, 150, &pr);
	assert_int_equal(polapi_version(p), 3);
	polapi_del(p);
	fflush(logf);
	assert_int_equal(count(logs, "has no active policy (404 no active policy)"), 1);
	assert_int_equal(count(logs, "policy 2 from zgate-api refused, keeping policy 1: zgate-api "
				     "policy 2:"),
			 1);
	assert_int_equal(count(logs, "policy 1 fetched from zgate-api"), 1);
	assert_int_equal(count(logs, "policy 3 fetched from zgate-api"), 1);
	assert_int_equal(count(logs, "cannot fetch the policy from zgate-api"), 1);
	assert_non_null(strstr(logs, "503 database unreachable"));
	log_set_output(stderr);
	fclose(logf);
	free(logs);
	unlink(cache);
	event_base_free(base);
}

/* An outage (nothing listens), then zgate-api answers: one warning, one
 * line for the recovery; a hang is a timeout; a body over 1 MiB + 1 is an
 * error, one of exactly 1 MiB + 1 is refused by size; nothing written. */
static void test_polapi_outage_timeout_size(void **state)
{
	static const struct act ok304[] = { { A_ANSWER, "HTTP/1.1 304 Not Modified\r\n\r\n" } };
	static const struct act hang[] = { { A_HANG, NULL } };
	static const struct act big[] = {
		{ A_BIG, "1048577|HTTP/1.1 200 OK\r\nETag: \"9-a\"\r\nContent-Length: @LEN@\r\n\r\n" },
		{ A_BIG, "1048578|HTTP/1.1 200 OK\r\nETag: \"9-a\"\r\nContent-Length: @LEN@\r\n\r\n" },
	};
	char cache[512], *logs = NULL;
	size_t loglen = 0;
	FILE *logf = open_memstream(&logs, &loglen);
	struct event_base *base = event_base_new();
	struct polrec pr = { 0 };
	struct fake *fk;
	struct polapi *p;
	uint64_t n[POLAPI_NRESULTS];
	uint16_t port;

	(void)state;
	log_set_output(logf);
	snprintf(cache, sizeof(cache), "%s/policy.out.yaml", pki_dir);
	unlink(cache);
	/* a port nothing listens on: the fake's, after it stopped */
	fk = fake_start("127.0.0.1", ok304, 1);
	port = fk->port;
	fake_stop(fk);
	p = pol_client(base, port, cache, 100, &pr);
	(void)polapi_start(p);
	pol_run(base, p, 3, 5000);
	polapi_counts(p, n);
	assert_int_equal(n[POLAPI_ERROR], pol_sum(p));
	polapi_del(p);
	fflush(logf);
	assert_int_equal(count(logs, "cannot fetch the policy from zgate-api"), 1);
	assert_non_null(strstr(logs, "Connection refused"));
	assert_non_null(strstr(logs, "keeping the deny-all policy (none fetched yet)"));

	/* hang: timeout */
	fk = fake_start("127.0.0.1", hang, 1);
	p = pol_client(base, fk->port, cache, 100, &pr);
	(void)polapi_start(p);
	pol_run(base, p, 1, 3000);
	polapi_counts(p, n);
	assert_int_equal(n[POLAPI_ERROR], 1);
	fflush(logf);
	assert_non_null(strstr(logs, "timeout after 100 ms"));
	polapi_del(p);
	fake_stop(fk);

	/* too large */
	fk = fake_start("127.0.0.1", big, 2);
	p = pol_client(base, fk->port, cache, 3000, &pr);
	(void)polapi_start(p);
	pol_run(base, p, 2, 10000);
	polapi_counts(p, n);
	assert_int_equal(n[POLAPI_REFUSED], 1);
	assert_true(n[POLAPI_ERROR] >= 1);
	assert_int_equal(n[POLAPI_CHANGED], 0);
	assert_int_equal(pr.calls, 0);
	assert_int_equal(access(cache, F_OK), -1); /* nothing written */
	fflush(logf);
	assert_non_null(strstr(logs, "policy 9 from zgate-api refused, keeping the deny-all policy"));
	assert_non_null(strstr(logs, "1048577 bytes, more than 1048576"));
	assert_non_null(strstr(logs, "body larger than 1048577 bytes"));
	polapi_del(p);
	fake_stop(fk);

	/* recovery after an outage: the fake comes back on the same port */
	{
		static const struct act cut[] = { { A_HANG, NULL },
						  { A_ANSWER, "HTTP/1.1 304 Not Modified\r\n\r\n" } };

		fk = fake_start("127.0.0.1", cut, 2);
		p = pol_client(base, fk->port, cache, 60, &pr);
		(void)polapi_start(p);
		pol_run(base, p, 3, 5000);
		polapi_counts(p, n);
		assert_true(n[POLAPI_UNCHANGED] >= 1);
		polapi_del(p);
		fake_stop(fk);
		fflush(logf);
		assert_non_null(strstr(logs, "answers again"));
	}
	log_set_output(stderr);
	fclose(logf);
	free(logs);
	event_base_free(base);
}

/* An ETag that cannot go on the cache's first line or back on the wire
 * (a space, a byte above 0x7e) is not kept: the policy is taken, the next
 * fetch sends no If-None-Match. */
static void test_polapi_odd_etag(void **state)
{
	static const struct act acts[] = {
		{ A_ANSWER, POLICY_200("\"5 x\xc3\xa9\"", "5", DOC_B) },
		{ A_ANSWER, "HTTP/1.1 304 Not Modified\r\n\r\n" },
	};
	char cache[512], *text, etag[APIC_ETAG_MAX];
	struct event_base *base = event_base_new();
	struct fake *fk = fake_start("127.0.0.1", acts, 2);
	struct polrec pr = { 0, 0 };
	struct polapi *p;
	uint64_t v;

	(void)state;
	snprintf(cache, sizeof(cache), "%s/policy.odd.yaml", pki_dir);
	unlink(cache);
	p = pol_client(base, fk->port, cache, 500, &pr);
	(void)polapi_start(p);
	pol_run(base, p, 2, 3000);
	assert_int_equal(pr.calls, 1);
	req_has(fk, "If-None-Match", 0);
	text = slurp(cache);
	assert_string_equal(text, "# zgate-api policy 5 \"\" (written by zgate-relay)\n" DOC_B);
	free(text);
	assert_int_equal(polapi_cache_meta(cache, &v, etag, sizeof(etag)), 0);
	assert_int_equal(v, 5);
	assert_string_equal(etag, "");
	polapi_del(p);
	fake_stop(fk);
	unlink(cache);
	event_base_free(base);
}

/* What the relay finds in its cache at start, and a server that ignores
 * If-None-Match:
 *  - an ETag on the cache's first line that cannot be sent (a hand edit)
 *    is dropped, not sent on every poll (which failed every fetch);
 *  - a cache that does not parse is asked for whole (no If-None-Match,
 *    else a 304 would keep the relay deny-all);
 *  - a 200 with the bytes in force is "unchanged": no write, no reload. */
static void test_polapi_cache_at_start(void **state)
{
	static const struct act same[] = {
		{ A_ANSWER, POLICY_200("\"3-cccccccccccccccc\"", "3", DOC_B) },
		{ A_ANSWER, POLICY_200("\"3-cccccccccccccccc\"", "3", DOC_B) },
	};
	char cache[512], etag[APIC_ETAG_MAX], *text;
	struct event_base *base = event_base_new();
	struct polrec pr = { 0, 0 };
	struct polapi *p;
	struct fake *fk;
	struct stat st0, st1;
	uint64_t v, n[POLAPI_NRESULTS];
	FILE *fp;

	(void)state;
	snprintf(cache, sizeof(cache), "%s/policy.start.yaml", pki_dir);
	/* a tab in the cached ETag */
	fp = fopen(cache, "w");
	fputs("# zgate-api policy 3 \"3-a\tb\" (written by zgate-relay)\n" DOC_B, fp);
	fclose(fp);
	assert_int_equal(polapi_cache_meta(cache, &v, etag, sizeof(etag)), 0);
	assert_int_equal(v, 3);
	assert_string_equal(etag, "");
	/* the bytes in force come again, twice: no write, no reload */
	fk = fake_start("127.0.0.1", same, 2);
	p = pol_client(base, fk->port, cache, 500, &pr);
	assert_int_equal(polapi_has_policy(p), 1); /* the cache loads */
	assert_int_equal(stat(cache, &st0), 0);
	(void)polapi_start(p);
	pol_run(base, p, 2, 3000);
	polapi_counts(p, n);
	assert_int_equal(n[POLAPI_UNCHANGED], 2);
	assert_int_equal(n[POLAPI_CHANGED], 0);
	assert_int_equal(n[POLAPI_ERROR], 0);
	assert_int_equal(pr.calls, 0);
	assert_int_equal(stat(cache, &st1), 0);
	assert_int_equal(st0.st_ino, st1.st_ino);                    /* not rewritten */
	req_has(fk, "If-None-Match: \"3-cccccccccccccccc\"\r\n", 1); /* the second asked with it */
	polapi_del(p);
	fake_stop(fk);
	/* a cache cut short: parsed as nothing valid, so asked whole */
	fp = fopen(cache, "w");
	fputs("# zgate-api policy 3 \"3-cccccccccccccccc\" (written by zgate-relay)\n"
	      "version: 1\nclients:\n  a: {rules: [",
	      fp);
	fclose(fp);
	fk = fake_start("127.0.0.1", same, 1);
	p = pol_client(base, fk->port, cache, 500, &pr);
	assert_int_equal(polapi_version(p), 0);
	assert_int_equal(polapi_has_policy(p), 0); /* deny-all until the fetch */
	(void)polapi_start(p);
	pol_run(base, p, 1, 3000);
	assert_int_equal(polapi_has_policy(p), 1);
	req_has(fk, "If-None-Match", 0);
	assert_int_equal(pr.calls, 1);
	assert_int_equal(pr.version, 3);
	text = slurp(cache);
	assert_string_equal(text, "# zgate-api policy 3 \"3-cccccccccccccccc\" (written by "
				  "zgate-relay)\n" DOC_B);
	free(text);
	polapi_del(p);
	fake_stop(fk);
	unlink(cache);
	event_base_free(base);
}

/* The cache's first line, the deny-all start, a write that cannot be done. */
static void test_polapi_cache(void **state)
{
	char path[512], etag[APIC_ETAG_MAX];
	uint64_t v = 7;
	struct policy *pol = NULL;
	FILE *fp;

	(void)state;
	snprintf(path, sizeof(path), "%s/cache-test.yaml", pki_dir);
	unlink(path);
	assert_int_equal(polapi_cache_meta(path, &v, etag, sizeof(etag)), ZG_ERR_IO);
	assert_int_equal(v, 0);
	assert_int_equal(polapi_write_cache(path, "# zgate-api policy 12 \"12-ab\" (x)\n", DOC_B,
					    strlen(DOC_B), err, sizeof(err)),
			 0);
	assert_int_equal(polapi_cache_meta(path, &v, etag, sizeof(etag)), 0);
	assert_int_equal(v, 12);
	assert_string_equal(etag, "\"12-ab\"");
	assert_int_equal(policy_load_file(path, &pol, err, sizeof(err)), 0);
	policy_free(pol);
	fp = fopen(path, "w");
	fputs(DOC_B, fp);
	fclose(fp);
	assert_int_equal(polapi_cache_meta(path, &v, etag, sizeof(etag)), ZG_ERR_NOTFOUND);
	assert_int_equal(v, 0);
	unlink(path);
	assert_int_equal(polapi_write_cache("/nonexistent-dir/p.yaml", "# h\n", "x", 1, err,
					    sizeof(err)),
			 ZG_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent-dir/p.yaml: cannot create a temporary file"));
	/* deny-all: no client, default deny */
	assert_int_equal(polapi_deny_all(&pol), 0);
	assert_int_equal(policy_client_count(pol), 0);
	assert_int_equal(policy_default_action(pol), POLICY_DENY);
	policy_free(pol);
}

/* ---------------------------------------------------------------- apiresp alone */

static int feed_all(struct apiresp *p, const char *s, int bytewise)
{
	size_t n = strlen(s), used;
	int r = 0;

	if (!bytewise)
		return apiresp_feed(p, (const uint8_t *)s, n, &used);
	for (size_t i = 0; i < n; i++) {
		r = apiresp_feed(p, (const uint8_t *)s + i, 1, &used);
		if (r != 0)
			return r;
	}
	return r;
}

static void test_resp_parser(void **state)
{
	struct apiresp *p = apiresp_new(APIRESP_BODY_MAX);
	size_t used;

	(void)state;
	for (int bw = 0; bw < 2; bw++) {
		apiresp_init(p, 0);
		assert_int_equal(feed_all(p, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
					     "Transfer-Encoding: chunked\r\nConnection: keep-alive, Close\r\n\r\n"
					     "3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
					  bw),
				 1);
		assert_int_equal(p->status, 200);
		assert_int_equal(p->close, 1);
		assert_string_equal(p->body, "abcde");
		apiresp_init(p, 0);
		assert_int_equal(feed_all(p, "HTTP/1.0 204 No Content\n\n", bw), 1);
		assert_int_equal(p->close, 1);
		apiresp_init(p, 0);
		assert_int_equal(feed_all(p, "HTTP/1.1 200 OK\r\n\r\nuntil close", bw), 0);
		assert_int_equal(apiresp_eof(p), 1);
		assert_string_equal(p->body, "until close");
	}
	/* what follows an answer is left unread */
	apiresp_init(p, 0);
	assert_int_equal(apiresp_feed(p, (const uint8_t *)"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP",
				      43, &used),
			 1);
	assert_int_equal(used, 40);
	static const struct {
		const char *in, *err;
	} bad[] = {
		{ "HTTP/2 200 OK\r\n", "bad status line" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n", "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n", "two different" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n", "body larger than 65536 bytes" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n", "unsupported Transfer-Encoding" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n", "body larger" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "no CRLF" },
		{ "HTTP/1.1 200 OK\r\n folded\r\n", "folded header" },
		{ "HTTP/1.1 200 OK\r\nNo colon\r\n", "bad header line" },
		{ "HTTP/1.1 101 Switching\r\n\r\n", "unexpected 101" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		apiresp_init(p, 0);
		if (feed_all(p, bad[i].in, 0) >= 0)
			fail_msg("accepted: %s", bad[i].in);
		if (strstr(p->err, bad[i].err) == NULL)
			fail_msg("%s: %s", bad[i].in, p->err);
		assert_true(feed_all(p, "more", 0) < 0); /* stays failed */
	}
	/* bounds: a long header line, many headers */
	{
		char *big = malloc(20000);

		memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
		memset(big + 20, 'a', 2000);
		big[2020] = '\0';
		apiresp_init(p, 0);
		assert_int_equal(feed_all(p, big, 0), ZG_ERR_TOO_LARGE);
		big[17] = '\0';
		for (int i = 0; i < 1000; i++)
			strcat(big, "X-A: 12345\r\n");
		apiresp_init(p, 0);
		assert_int_equal(feed_all(p, big, 0), ZG_ERR_TOO_LARGE);
		assert_string_equal(p->err, "headers larger than 8192 bytes");
		free(big);
	}
	apiresp_init(p, 0);
	assert_int_equal(feed_all(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 0), 0);
	assert_int_equal(apiresp_eof(p), ZG_ERR_MALFORMED);
	assert_string_equal(p->err, "connection closed in the body");
	apiresp_init(p, 0);
	assert_int_equal(apiresp_eof(p), ZG_ERR_MALFORMED);
	assert_string_equal(p->err, "connection closed before an answer");
	free(p);
}

static void test_resp_json(void **state)
{
	char out[32];
	uint8_t a4[4];
	int ex = -1;
	const char *j = " {\"n\": [1, {\"address\": \"x\"}, \"]\"], \"e\\\"\": null, \"error\": "
			"\"a\\\"b\\u0041\\u00e9\\n\", \"t\": true, \"address\":\"10.0.0.1\"} ";

	(void)state;
	assert_int_equal(apiresp_json_str(j, strlen(j), "error", out, sizeof(out)), 0);
	assert_string_equal(out, "a\"bA?\n");
	assert_int_equal(apiresp_json_str(j, strlen(j), "t", out, sizeof(out)), ZG_ERR_NOTFOUND);
	assert_int_equal(apiresp_json_str(j, strlen(j), "none", out, sizeof(out)), ZG_ERR_NOTFOUND);
	assert_int_equal(apiresp_json_str(j, strlen(j), "address", out, 4), ZG_ERR_TOO_LARGE);
	assert_string_equal(out, "10."); /* cut to fit, for a log line */
	assert_int_equal(apiresp_lease(j, strlen(j), a4, &ex, err, sizeof(err)), 0);
	assert_int_equal(a4[0], 10);
	assert_int_equal(a4[3], 1);
	assert_int_equal(ex, 0);
	assert_int_equal(apiresp_json_str("{\"a\":", 5, "a", out, sizeof(out)), ZG_ERR_MALFORMED);
	assert_int_equal(apiresp_json_str("[]", 2, "a", out, sizeof(out)), ZG_ERR_MALFORMED);
	assert_int_equal(apiresp_json_str("{\"a\":\"x\",}", 10, "a", out, sizeof(out)),
			 ZG_ERR_MALFORMED);
	assert_int_equal(apiresp_json_str("{}", 2, "a", out, sizeof(out)), ZG_ERR_NOTFOUND);
	{
		char deep[100];

		memset(deep, '[', sizeof(deep));
		memcpy(deep, "{\"a\":", 5);
		assert_int_equal(apiresp_json_str(deep, sizeof(deep), "b", out, sizeof(out)),
				 ZG_ERR_MALFORMED);
	}
	assert_int_equal(apiresp_lease("{\"address\":\"10.0.0.256\"}", 24, a4, &ex, err, sizeof(err)),
			 ZG_ERR_MALFORMED);
	assert_string_equal(err, "answer has no IPv4 \"address\"");
}

/* ---------------------------------------------------------------- main */

static int setup(void **state)
{
	char cmd[1024];

	if (setup_pki(state) != 0 || wolfSSL_Init() != WOLFSSL_SUCCESS)
		return -1;
	/* the relay's client certificate for zgate-api: CN relay:r1 */
	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout r1.key -subj /CN=relay:r1 -out r1.csr 2>/dev/null && "
		 "printf 'extendedKeyUsage=clientAuth\\n' > r1.ext && "
		 "openssl x509 -req -in r1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		 "-extfile r1.ext -out r1.crt 2>/dev/null",
		 pki_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	wolfSSL_Cleanup();
	return teardown_pki(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_created),
		cmocka_unit_test(test_existing_chunked),
		cmocka_unit_test(test_4xx_final),
		cmocka_unit_test(test_503_then_201),
		cmocka_unit_test(test_503_until_deadline),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_cut_then_ok),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_bad_lease),
		cmocka_unit_test(test_keepalive_and_refresh),
		cmocka_unit_test(test_refresh_reported),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_server_closes_idle),
		cmocka_unit_test(test_wrong_host),
		cmocka_unit_test(test_wrong_ca),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_cancel_from_callback),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_no_resolver),
		cmocka_unit_test(test_dns_names),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_get_200_304_404),
		cmocka_unit_test(test_get_503_and_timeout),
		cmocka_unit_test(test_get_large_body),
		cmocka_unit_test(test_polapi_cycle),
		cmocka_unit_test(test_polapi_outage_timeout_size),
		cmocka_unit_test(test_polapi_odd_etag),
		cmocka_unit_test(test_polapi_cache),
		cmocka_unit_test(test_polapi_cache_at_start),
		cmocka_unit_test(test_resp_parser),
		cmocka_unit_test(test_resp_json),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
