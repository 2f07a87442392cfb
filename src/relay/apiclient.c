#include "relay/apiclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/asn.h>

#include "masque/tls.h"
#include "relay/apiresp.h"
#include "zg_err.h"

#define APIC_QUEUE_MAX 4096 /* requests waiting or in flight; more: apic_allocate NULL */
#define APIC_ID_MAX APIC_CLIENT_ID_MAX
#define APIC_HOST_MAX 256
#define APIC_PREFIX_MAX 256
#define APIC_BACKOFF_FIRST_MS 50
#define APIC_BACKOFF_MAX_MS 1000

enum req_kind {
	K_ALLOC,
	K_REFRESH,
	K_PROBE, /* GET /ready: only the API's state */
	K_GET    /* apic_get(): status, ETag, body */
};
enum req_where {
	W_QUEUE,
	W_BACKOFF,
	W_ACTIVE,
	W_DONE
};

struct conn;

struct apic_req {
	struct apic *a;
	LIST_ENTRY(apic_req)
	all; /* a->all */
	TAILQ_ENTRY(apic_req)
	q; /* a->queue (W_QUEUE) or a->done (W_DONE) */
	enum req_kind kind;
	enum req_where where;
	struct conn *c; /* W_ACTIVE */
	apic_alloc_cb cb;
	apic_get_cb gcb; /* K_GET */
	void *arg;
	/* K_GET: what the answer brought (body: 200 only, malloc'd) */
	char *body;
	size_t body_len;
	char etag[APIC_ETAG_MAX];
	char policy_id[24];
	char *wire; /* the whole HTTP request */
	size_t wire_len;
	unsigned attempts;
	uint64_t deadline_ms;   /* now_ms() at submission + timeout_ms */
	struct event *deadline; /* fires timeout_ms after submission */
	struct event *backoff;  /* W_BACKOFF: when to try again */
	struct apic_result res; /* W_DONE: what the callback gets (and its client_id) */
};

enum conn_st {
	C_RESOLVING,
	C_CONNECTING,
	C_HANDSHAKE,
	C_SENDING,
	C_RECEIVING,
	C_IDLE
};

struct conn {
	struct apic *a;
	LIST_ENTRY(conn)
	link; /* a->conns */
	enum conn_st st;
	int fd;
	WOLFSSL *ssl;
	struct event *ev; /* fd readiness, the flags the TLS layer asked for */
	short want;       /* EV_READ / EV_WRITE currently armed */
	struct evdns_getaddrinfo_request *dns;
	struct apic_req *req; /* the request on the wire, NULL when idle */
	size_t sent;
	size_t received; /* bytes of answer for the current request */
	unsigned served; /* requests answered on this connection */
	struct apiresp *resp;
};

struct apic {
	struct event_base *base;
	struct evdns_base *evdns;
	WOLFSSL_CTX *ctx;
	char host[APIC_HOST_MAX]; /* without brackets */
	char hosthdr[APIC_HOST_MAX + 16];
	char prefix[APIC_PREFIX_MAX];
	char relay_id[APIC_ID_MAX + 1];
	uint16_t port;
	int host_family;    /* AF_INET / AF_INET6 for a numeric host, 0 for a name */
	unsigned next_addr; /* a name's address the next connection uses */
	struct sockaddr_storage addr;
	uint32_t timeout_ms;
	unsigned max_conns;
	size_t body_max;
	char keys[32];      /* the configuration keys' prefix, for messages */
	struct event *work; /* deferred: dispatch the queue, run the callbacks */
	LIST_HEAD(, apic_req)
	all; /* every request */
	TAILQ_HEAD(, apic_req)
	queue; /* waiting for a connection, in order */
	TAILQ_HEAD(, apic_req)
	done; /* over: callbacks to run from work() */
	size_t nreq, ndone;
	LIST_HEAD(, conn)
	conns;
	unsigned nconns;
	enum apic_state state;
	uint64_t state_since;
	char last_error[160];
	struct apic_counters cnt;
	void (*on_state)(void *arg, int state);
	void *on_state_arg;
	int running; /* inside work(): apic_free waits for it */
	int dying;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_state(struct apic *a, enum apic_state s)
{
	if (a->state != s) {
		a->state = s;
		a->state_since = now_ms();
		if (a->on_state != NULL)
			a->on_state(a->on_state_arg, (int)s);
	}
}

static void kick(struct apic *a)
{
	event_active(a->work, EV_TIMEOUT, 0);
}

/* ---------------------------------------------------------------- lists */

/* The lists are <sys/queue.h>'s: a->all and a->conns (LIST), a->queue
 * and a->done (TAILQ); r->where says which of the last two holds r. */

static void req_free(struct apic_req *r)
{
	struct apic *a = r->a;

	LIST_REMOVE(r, all);
	a->nreq--;
	if (r->deadline)
		event_free(r->deadline);
	if (r->backoff)
		event_free(r->backoff);
	free(r->wire);
	free(r->body);
	free(r);
}

/* Takes r out of wherever it waits (not W_ACTIVE). */
static void req_detach(struct apic_req *r)
{
	struct apic *a = r->a;

	switch (r->where) {
	case W_QUEUE:
		TAILQ_REMOVE(&a->queue, r, q);
		break;
	case W_DONE:
		TAILQ_REMOVE(&a->done, r, q);
		a->ndone--;
		break;
	case W_BACKOFF:
		event_del(r->backoff);
		break;
	case W_ACTIVE:
		break;
	}
}

/* r is over: its callback runs from work(). */
static void req_finish(struct apic_req *r)
{
	struct apic *a = r->a;

	event_del(r->deadline);
	event_del(r->backoff);
	r->c = NULL;
	if (!r->res.ok) {
		a->cnt.failures++;
		zg_seterr(a->last_error, sizeof(a->last_error), "%s", r->res.cause);
	}
	r->where = W_DONE;
	TAILQ_INSERT_TAIL(&a->done, r, q);
	a->ndone++;
	kick(a);
}

/* ---------------------------------------------------------------- connections */

static void conn_drive(struct conn *c);
static void ev_cb(evutil_socket_t fd, short what, void *arg);
static void req_failed(struct apic_req *r, unsigned status, const char *cause, int retryable);

static void conn_close(struct conn *c)
{
	struct apic *a = c->a;

	LIST_REMOVE(c, link);
	a->nconns--;
	if (c->dns)
		evdns_getaddrinfo_cancel(c->dns); /* its callback sees EAI_CANCEL, touches nothing */
	if (c->ev)
		event_free(c->ev);
	if (c->ssl)
		wolfSSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	free(c->resp);
	free(c);
}

/* The connection failed: its request (if any) fails with cause; the
 * connection is closed. */
static void conn_fail(struct conn *c, const char *cause)
{
	struct apic_req *r = c->req;
	struct apic *a = c->a;

	c->req = NULL;
	if (r != NULL) {
		/* a keep-alive connection the server closed while idle, found
		 * only now: not this request's fault, try once more at once */
		int stale = c->served > 0 && c->received == 0;

		r->c = NULL;
		req_failed(r, 0, cause, stale ? 2 : 1);
	}
	conn_close(c);
	kick(a);
}

static void arm(struct conn *c, short what)
{
	if (c->want == what)
		return;
	event_del(c->ev);
	if (event_assign(c->ev, c->a->base, c->fd, what | EV_PERSIST, ev_cb, c) != 0) {
		c->want = 0;
		return;
	}
	c->want = what;
	if (what)
		(void)event_add(c->ev, NULL);
}

static void tls_cause(struct conn *c, int ret, const char *what, char *out, size_t outlen)
{
	int e = wolfSSL_get_error(c->ssl, ret);
	char buf[WOLFSSL_MAX_ERROR_SZ];

	long vr = wolfSSL_get_verify_result(c->ssl);

	if (e == DOMAIN_NAME_MISMATCH || e == IPADDR_MISMATCH)
		zg_seterr(buf, sizeof(buf), "certificate does not name %s", c->a->host);
	else if (vr != 0 && vr != WOLFSSL_X509_V_OK)
		zg_seterr(buf, sizeof(buf), "certificate refused: %s (%ld)",
			  wolfSSL_X509_verify_cert_error_string(vr), vr);
	else if (e == SOCKET_ERROR_E || e == SOCKET_PEER_CLOSED_E || e == WOLFSSL_ERROR_SYSCALL)
		zg_seterr(buf, sizeof(buf), "connection closed by the server");
	else
		(void)wolfSSL_ERR_error_string_n((unsigned long)(long)e, buf, sizeof(buf));
	zg_seterr(out, outlen, "%s %s:%u: %s", what, c->a->host, c->a->port, buf);
}

static void answer(struct conn *c);

static void ev_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_drive(arg);
}

static void conn_start_tcp(struct conn *c, const struct sockaddr *sa, socklen_t salen)
{
	struct apic *a = c->a;
	char cause[160];
	int one = 1;

	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		zg_seterr(cause, sizeof(cause), "connect to %s:%u: %s", a->host, a->port,
			  strerror(errno));
		conn_fail(c, cause);
		return;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, sa, salen) != 0 && errno != EINPROGRESS) {
		zg_seterr(cause, sizeof(cause), "connect to %s:%u: %s", a->host, a->port,
			  strerror(errno));
		conn_fail(c, cause);
		return;
	}
	c->ssl = wolfSSL_new(a->ctx);
	if (c->ssl == NULL || wolfSSL_set_fd(c->ssl, c->fd) != WOLFSSL_SUCCESS ||
	    /* a name or an IP address (its iPAddress SAN: WOLFSSL_IP_ALT_NAME) */
	    tls_check_peer_name(c->ssl, a->host) != 0 ||
	    (a->host_family == 0 &&
	     wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, a->host, (unsigned short)strlen(a->host)) !=
		     WOLFSSL_SUCCESS)) {
		conn_fail(c, "TLS: out of memory");
		return;
	}
	c->ev = event_new(a->base, c->fd, EV_WRITE | EV_PERSIST, ev_cb, c);
	if (c->ev == NULL) {
		conn_fail(c, "out of memory");
		return;
	}
	c->st = C_CONNECTING;
	c->want = 0;
	arm(c, EV_WRITE);
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct conn *c = arg;
	char cause[200];

	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	c->dns = NULL;
	if (result != 0 || res == NULL) {
		zg_seterr(cause, sizeof(cause), "resolve %s: %s", c->a->host,
			  evutil_gai_strerror(result));
		if (res)
			evutil_freeaddrinfo(res);
		conn_fail(c, cause);
		return;
	}
	{
		/* each connection takes the next address: retries go round
		 * all of them, not only the first */
		struct evutil_addrinfo *ai = res;
		unsigned n = 0;

		for (; ai != NULL; ai = ai->ai_next)
			n++;
		ai = res;
		for (unsigned i = c->a->next_addr++ % n; i > 0; i--)
			ai = ai->ai_next;
		conn_start_tcp(c, ai->ai_addr, (socklen_t)ai->ai_addrlen);
	}
	evutil_freeaddrinfo(res);
}

/* A new connection for r (which waits at the head of the queue). */
static void conn_open(struct apic *a, struct apic_req *r)
{
	struct conn *c = calloc(1, sizeof(*c));
	char cause[200];

	if (c == NULL || (c->resp = apiresp_new(a->body_max)) == NULL) {
		free(c);
		TAILQ_REMOVE(&a->queue, r, q);
		req_failed(r, 0, "out of memory", 1);
		return;
	}
	c->a = a;
	c->fd = -1;
	LIST_INSERT_HEAD(&a->conns, c, link);
	a->nconns++;
	TAILQ_REMOVE(&a->queue, r, q);
	r->where = W_ACTIVE;
	r->c = c;
	c->req = r;
	r->attempts++;
	if (r->attempts > 1)
		a->cnt.retries++;
	if (a->host_family != 0) {
		conn_start_tcp(c, (const struct sockaddr *)&a->addr,
			       a->host_family == AF_INET ? sizeof(struct sockaddr_in)
							 : sizeof(struct sockaddr_in6));
		return;
	}
	if (a->evdns == NULL) {
		zg_seterr(cause, sizeof(cause),
			  "resolve %s: no DNS resolver given (use an IP address in the URL)",
			  a->host);
		c->req = NULL;
		r->c = NULL;
		req_failed(r, 0, cause, 0);
		conn_close(c);
		return;
	}
	{
		struct evutil_addrinfo hints;
		char port[8];
		struct evdns_getaddrinfo_request *q;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_protocol = IPPROTO_TCP;
		zg_seterr(port, sizeof(port), "%u", a->port);
		c->st = C_RESOLVING;
		c->dns = (struct evdns_getaddrinfo_request *)1; /* a callback now clears it */
		q = evdns_getaddrinfo(a->evdns, a->host, port, &hints, dns_cb, c);
		/* NULL: the callback already ran (and may have freed c) */
		if (q != NULL)
			c->dns = q;
	}
}

/* Puts request r on idle connection c. */
static void conn_take(struct conn *c, struct apic_req *r)
{
	struct apic *a = c->a;

	TAILQ_REMOVE(&a->queue, r, q);
	r->where = W_ACTIVE;
	r->c = c;
	r->attempts++;
	if (r->attempts > 1)
		a->cnt.retries++;
	c->req = r;
	c->sent = 0;
	c->received = 0;
	c->st = C_SENDING;
	apiresp_init(c->resp, 0);
	conn_drive(c);
}

static void conn_drive(struct conn *c)
{
	struct apic *a = c->a;
	char cause[200];
	uint8_t buf[4096];
	int ret, e;

	switch (c->st) {
	case C_RESOLVING:
		return;
	case C_CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			zg_seterr(cause, sizeof(cause), "connect to %s:%u: %s", a->host,
				  a->port, strerror(err));
			conn_fail(c, cause);
			return;
		}
		c->st = C_HANDSHAKE;
	}
		/* fall through */
	case C_HANDSHAKE:
		ret = wolfSSL_connect(c->ssl);
		if (ret != WOLFSSL_SUCCESS) {
			e = wolfSSL_get_error(c->ssl, ret);
			if (e == WOLFSSL_ERROR_WANT_READ) {
				arm(c, EV_READ);
				return;
			}
			if (e == WOLFSSL_ERROR_WANT_WRITE) {
				arm(c, EV_WRITE);
				return;
			}
			tls_cause(c, ret, "TLS with", cause, sizeof(cause));
			conn_fail(c, cause);
			return;
		}
		a->cnt.connects++;
		c->st = C_SENDING;
		c->sent = 0;
		c->received = 0;
		apiresp_init(c->resp, 0);
		/* fall through */
	case C_SENDING:
		if (c->req == NULL) { /* cancelled meanwhile: ready for the next one */
			c->st = C_IDLE;
			arm(c, EV_READ);
			kick(a);
			return;
		}
		while (c->sent < c->req->wire_len) {
			ret = wolfSSL_write(c->ssl, c->req->wire + c->sent,
					    (int)(c->req->wire_len - c->sent));
			if (ret <= 0) {
				e = wolfSSL_get_error(c->ssl, ret);
				if (e == WOLFSSL_ERROR_WANT_WRITE) {
					arm(c, EV_WRITE);
					return;
				}
				if (e == WOLFSSL_ERROR_WANT_READ) {
					arm(c, EV_READ);
					return;
				}
				tls_cause(c, ret, "send to", cause, sizeof(cause));
				conn_fail(c, cause);
				return;
			}
			c->sent += (size_t)ret;
		}
		c->st = C_RECEIVING;
		arm(c, EV_READ);
		/* fall through */
	case C_RECEIVING:
		for (;;) {
			size_t used = 0, got;

			ret = wolfSSL_read(c->ssl, buf, sizeof(buf));
			if (ret <= 0) {
				e = wolfSSL_get_error(c->ssl, ret);
				if (e == WOLFSSL_ERROR_WANT_READ) {
					arm(c, EV_READ);
					return;
				}
				if (e == WOLFSSL_ERROR_WANT_WRITE) {
					arm(c, EV_WRITE);
					return;
				}
				if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E ||
				    e == SOCKET_ERROR_E || e == WOLFSSL_ERROR_SYSCALL) {
					if (apiresp_eof(c->resp) == 1) {
						answer(c);
						return;
					}
					zg_seterr(cause, sizeof(cause), "answer from %s:%u: %s",
						  a->host, a->port, c->resp->err);
				} else
					tls_cause(c, ret, "receive from", cause, sizeof(cause));
				conn_fail(c, cause);
				return;
			}
			got = (size_t)ret;
			c->received += got;
			ret = apiresp_feed(c->resp, buf, got, &used);
			if (ret == 1) {
				/* bytes after the answer: nothing was asked for them */
				if (used < got || wolfSSL_pending(c->ssl) > 0)
					c->resp->close = 1;
				answer(c);
				return;
			}
			if (ret < 0) {
				zg_seterr(cause, sizeof(cause), "answer from %s:%u: %s", a->host,
					  a->port, c->resp->err);
				conn_fail(c, cause);
				return;
			}
		}
	case C_IDLE:
		/* an idle keep-alive connection became readable: a TLS 1.3
		 * post-handshake message (a session ticket) is fine; the
		 * server closing it, or sending what nobody asked for, ends it */
		ret = wolfSSL_read(c->ssl, buf, sizeof(buf));
		if (ret <= 0 && wolfSSL_get_error(c->ssl, ret) == WOLFSSL_ERROR_WANT_READ)
			return;
		conn_close(c);
		return;
	}
}

/* The API's error text: "error" of a JSON body, else the body's first
 * line, cut to fit. */
static void error_text(const struct apiresp *p, char *out, size_t outlen)
{
	int r = apiresp_json_str(p->body, p->body_len, "error", out, outlen);

	if (r == 0 || r == ZG_ERR_TOO_LARGE)
		return;
	if (r == ZG_ERR_NOTFOUND) { /* JSON without an error text */
		out[0] = '\0';
		return;
	}
	zg_seterr(out, outlen, "%.*s", (int)strcspn(p->body, "\r\n"), p->body);
	for (char *s = out; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* A complete answer on c: the connection goes back to idle (or closes),
 * its request is over or retried. */
static void answer(struct conn *c)
{
	struct apic *a = c->a;
	struct apic_req *r = c->req;
	struct apiresp *p = c->resp;
	unsigned status = p->status;
	int retry = 0;
	char text[128], cause[200] = "";

	a->cnt.requests++;
	if (status == 503) { /* the cause first: on_state may log it */
		error_text(p, text, sizeof(text));
		zg_seterr(cause, sizeof(cause), "503 %s", text[0] ? text : "(no error text)");
		zg_seterr(a->last_error, sizeof(a->last_error), "%s", cause);
	}
	set_state(a, status == 503 ? APIC_DOWN : APIC_UP);
	c->req = NULL;
	c->served++;
	if (r != NULL) {
		r->c = NULL;
		r->res.status = status;
		if (status == 503) {
			retry = 1; /* cause: above */
		} else if (r->kind == K_PROBE) {
			r->res.ok = status == 200;
		} else if (r->kind == K_GET) {
			r->res.ok = status == 200 || status == 304;
			zg_seterr(r->etag, sizeof(r->etag), "%s", p->etag);
			zg_seterr(r->policy_id, sizeof(r->policy_id), "%s", p->policy_id);
			free(r->body); /* an earlier try's, if any */
			r->body = NULL;
			r->body_len = 0;
			if (status == 200) {
				r->body = malloc(p->body_len + 1);
				if (r->body == NULL) {
					r->res.ok = 0;
					zg_seterr(cause, sizeof(cause), "out of memory for %zu bytes",
						  p->body_len);
					retry = 1;
				} else {
					memcpy(r->body, p->body, p->body_len + 1);
					r->body_len = p->body_len;
				}
			}
		} else if (r->kind == K_REFRESH) {
			if (status == 200)
				a->cnt.refreshes++;
			r->res.ok = status == 200;
		} else if (status == 200 || status == 201) {
			char err[96];

			if (apiresp_lease(p->body, p->body_len, r->res.addr4, &r->res.existing, err,
					  sizeof(err)) == 0)
				r->res.ok = 1;
			else {
				zg_seterr(cause, sizeof(cause), "%u from %s:%u: %s", status, a->host,
					  a->port, err);
				retry = 1;
			}
		}
		if (!retry && !r->res.ok) {
			error_text(p, text, sizeof(text));
			zg_seterr(r->res.cause, sizeof(r->res.cause), "%u %s", status,
				  text[0] ? text : "(no error text)");
		}
		if (r->res.ok)
			r->res.cause[0] = '\0';
	}
	if (p->close) {
		conn_close(c);
	} else {
		c->st = C_IDLE;
		arm(c, EV_READ);
	}
	kick(a);
	if (r == NULL) /* cancelled meanwhile */
		return;
	if (retry)
		req_failed(r, status, cause, 1);
	else
		req_finish(r);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct apic_req *r = arg;

	(void)fd;
	(void)what;
	r->where = W_QUEUE;
	TAILQ_INSERT_HEAD(&r->a->queue, r, q); /* it waited longest */
	kick(r->a);
}

/* An attempt of r failed: try again after the backoff when the deadline
 * allows (retryable 2: at once, an idle connection had died), else r is
 * over with cause. */
static void req_failed(struct apic_req *r, unsigned status, const char *cause, int retryable)
{
	struct apic *a = r->a;
	uint64_t wait, now = now_ms();

	zg_seterr(a->last_error, sizeof(a->last_error), "%s", cause);
	if (status == 0 || status == 503)
		set_state(a, APIC_DOWN);
	r->res.status = status;
	zg_seterr(r->res.cause, sizeof(r->res.cause), "%s", cause);
	if (retryable) {
		wait = 0;
		if (retryable == 1) {
			unsigned n = r->attempts ? r->attempts - 1 : 0;

			wait = n >= 5 ? APIC_BACKOFF_MAX_MS : (uint64_t)APIC_BACKOFF_FIRST_MS << n;
			if (wait > APIC_BACKOFF_MAX_MS)
				wait = APIC_BACKOFF_MAX_MS;
		}
		if (now + wait < r->deadline_ms) {
			struct timeval tv = { (time_t)(wait / 1000u), (suseconds_t)(wait % 1000u) * 1000 };

			r->where = W_BACKOFF;
			if (event_add(r->backoff, &tv) == 0)
				return;
		}
	}
	req_finish(r);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct apic_req *r = arg;
	struct apic *a = r->a;
	char cause[160];

	(void)fd;
	(void)what;
	if (r->where == W_ACTIVE && r->c != NULL) {
		struct conn *c = r->c;
		static const char *const phase[] = {
			[C_RESOLVING] = "resolving",
			[C_CONNECTING] = "connecting to",
			[C_HANDSHAKE] = "in the TLS handshake with",
			[C_SENDING] = "sending to",
			[C_RECEIVING] = "waiting for the answer of",
			[C_IDLE] = "idle with",
		};

		if (c->st == C_RESOLVING)
			zg_seterr(r->res.cause, sizeof(r->res.cause), "%s %s", phase[c->st], a->host);
		else
			zg_seterr(r->res.cause, sizeof(r->res.cause), "%s %s:%u", phase[c->st],
				  a->host, a->port);
		c->req = NULL;
		r->c = NULL;
		conn_close(c); /* half an exchange: the connection cannot be reused */
	} else
		req_detach(r);
	if (r->res.cause[0])
		zg_seterr(cause, sizeof(cause), "timeout after %u ms (%s)", a->timeout_ms,
			  r->res.cause);
	else
		zg_seterr(cause, sizeof(cause), "timeout after %u ms", a->timeout_ms);
	zg_seterr(r->res.cause, sizeof(r->res.cause), "%s", cause);
	zg_seterr(a->last_error, sizeof(a->last_error), "%s", cause);
	set_state(a, APIC_DOWN);
	r->res.ok = 0;
	req_finish(r);
}

/* ---------------------------------------------------------------- the work event */

static void dispatch(struct apic *a)
{
	while (!TAILQ_EMPTY(&a->queue)) {
		struct conn *c;

		LIST_FOREACH(c, &a->conns, link)
		if (c->st == C_IDLE)
			break;
		if (c != NULL) {
			conn_take(c, TAILQ_FIRST(&a->queue));
			continue;
		}
		if (a->nconns >= a->max_conns)
			return;
		conn_open(a, TAILQ_FIRST(&a->queue));
	}
}

static void do_free(struct apic *a);

static void work_cb(evutil_socket_t fd, short what, void *arg)
{
	struct apic *a = arg;

	(void)fd;
	(void)what;
	a->running = 1;
	dispatch(a);
	while (!TAILQ_EMPTY(&a->done) && !a->dying) {
		struct apic_req *r = TAILQ_FIRST(&a->done);
		apic_alloc_cb cb = r->cb;
		void *cbarg = r->arg;
		struct apic_result res = r->res;

		TAILQ_REMOVE(&a->done, r, q);
		a->ndone--;
		if (r->kind == K_GET) {
			apic_get_cb gcb = r->gcb;
			struct apic_get_result g;

			memset(&g, 0, sizeof(g));
			g.ok = res.ok;
			g.status = res.status;
			memcpy(g.etag, r->etag, sizeof(g.etag));
			memcpy(g.policy_id, r->policy_id, sizeof(g.policy_id));
			memcpy(g.cause, res.cause, sizeof(g.cause));
			g.body = r->body; /* freed with r, after the callback */
			g.body_len = r->body_len;
			r->body = NULL;
			req_free(r);
			if (gcb != NULL)
				gcb(cbarg, &g);
			free((char *)g.body);
			continue;
		}
		req_free(r);
		if (cb != NULL)
			cb(cbarg, &res);
	}
	a->running = 0;
	if (a->dying)
		do_free(a);
}

/* ---------------------------------------------------------------- setup */

/* "https://host[:port][/prefix]" */
static int parse_url(struct apic *a, const char *url, char *err, size_t errlen)
{
	const char *s, *hend, *pstart;
	size_t hl;

	if (url == NULL || strncasecmp(url, "https://", 8) != 0) {
		zg_seterr(err, errlen, "%s.url: must start with https://", a->keys);
		return ZG_ERR_CONFIG;
	}
	s = url + 8;
	if (strpbrk(s, "?#@ \t\r\n") != NULL) {
		zg_seterr(err, errlen,
			  "%s.url %s: no user, query, fragment or spaces allowed", a->keys, url);
		return ZG_ERR_CONFIG;
	}
	if (*s == '[') {
		hend = strchr(s, ']');
		if (hend == NULL) {
			zg_seterr(err, errlen, "%s.url %s: no ] after the IPv6 address", a->keys, url);
			return ZG_ERR_CONFIG;
		}
		hl = (size_t)(hend - s - 1);
		s++;
		pstart = hend + 1;
	} else {
		hl = strcspn(s, ":/");
		pstart = s + hl;
	}
	if (hl == 0 || hl >= sizeof(a->host)) {
		zg_seterr(err, errlen, "%s.url %s: no usable host", a->keys, url);
		return ZG_ERR_CONFIG;
	}
	memcpy(a->host, s, hl);
	a->host[hl] = '\0';
	a->port = 443;
	if (*pstart == ':') {
		unsigned long p = 0;
		const char *d = pstart + 1;
		size_t nd = strspn(d, "0123456789");

		if (nd == 0 || nd > 5 || (d[nd] != '\0' && d[nd] != '/') ||
		    (p = strtoul(d, NULL, 10)) == 0 || p > 65535) {
			zg_seterr(err, errlen, "%s.url %s: bad port", a->keys, url);
			return ZG_ERR_CONFIG;
		}
		a->port = (uint16_t)p;
		pstart = d + nd;
	} else if (*pstart != '\0' && *pstart != '/') {
		zg_seterr(err, errlen, "%s.url %s: bad host", a->keys, url);
		return ZG_ERR_CONFIG;
	}
	hl = strlen(pstart);
	while (hl > 0 && pstart[hl - 1] == '/')
		hl--;
	if (hl >= sizeof(a->prefix)) {
		zg_seterr(err, errlen, "%s.url %s: path longer than %d bytes", a->keys, url,
			  APIC_PREFIX_MAX - 1);
		return ZG_ERR_CONFIG;
	}
	memcpy(a->prefix, pstart, hl);
	a->prefix[hl] = '\0';
	memset(&a->addr, 0, sizeof(a->addr));
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->addr;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->addr;

		if (inet_pton(AF_INET, a->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons(a->port);
			a->host_family = AF_INET;
		} else if (inet_pton(AF_INET6, a->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(a->port);
			a->host_family = AF_INET6;
		} else if (url[8] == '[' ||
			   strspn(a->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789.-") != strlen(a->host)) {
			zg_seterr(err, errlen, "%s.url %s: bad host name", a->keys, url);
			return ZG_ERR_CONFIG;
		}
	}
	zg_seterr(a->hosthdr, sizeof(a->hosthdr), "%s%s%s", a->host_family == AF_INET6 ? "[" : "",
		  a->host, a->host_family == AF_INET6 ? "]" : "");
	if (a->port != 443) {
		size_t n = strlen(a->hosthdr);

		zg_seterr(a->hosthdr + n, sizeof(a->hosthdr) - n, ":%u", a->port);
	}
	return 0;
}

static int readable(const char *what, const char *path, char *err, size_t errlen)
{
	if (path == NULL || path[0] == '\0') {
		zg_seterr(err, errlen, "%s: no file given", what);
		return ZG_ERR_CONFIG;
	}
	if (access(path, R_OK) != 0) {
		zg_seterr(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return ZG_ERR_IO;
	}
	return 0;
}

static int make_ctx(struct apic *a, const struct apic_config *cfg, char *err, size_t errlen)
{
	int r;

	char kca[48], kcert[48], kkey[48];

	zg_seterr(kca, sizeof(kca), "%s.ca", a->keys);
	zg_seterr(kcert, sizeof(kcert), "%s.cert", a->keys);
	zg_seterr(kkey, sizeof(kkey), "%s.key", a->keys);
	if ((r = readable(kca, cfg->ca, err, errlen)) != 0 ||
	    (r = readable(kcert, cfg->cert, err, errlen)) != 0 ||
	    (r = readable(kkey, cfg->key, err, errlen)) != 0)
		return r;
	if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
		zg_seterr(err, errlen, "wolfSSL initialisation failed");
		return ZG_ERR_CONFIG;
	}
	a->ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
	if (a->ctx == NULL) {
		zg_seterr(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	if (tls_set_groups(a->ctx) != 0) {
		zg_seterr(err, errlen, "TLS key exchange groups not accepted by wolfSSL");
		return ZG_ERR_CONFIG;
	}
	if (wolfSSL_CTX_load_verify_locations(a->ctx, cfg->ca, NULL) != WOLFSSL_SUCCESS) {
		zg_seterr(err, errlen, "%s.ca %s: no usable PEM CA certificate in it", a->keys, cfg->ca);
		return ZG_ERR_CONFIG;
	}
	if (wolfSSL_CTX_use_certificate_chain_file(a->ctx, cfg->cert) != WOLFSSL_SUCCESS) {
		zg_seterr(err, errlen, "%s.cert %s: not a PEM certificate chain", a->keys, cfg->cert);
		return ZG_ERR_CONFIG;
	}
	if (wolfSSL_CTX_use_PrivateKey_file(a->ctx, cfg->key, WOLFSSL_FILETYPE_PEM) !=
	    WOLFSSL_SUCCESS) {
		zg_seterr(err, errlen, "%s.key %s: not a PEM private key", a->keys, cfg->key);
		return ZG_ERR_CONFIG;
	}
	if (wolfSSL_CTX_check_private_key(a->ctx) != WOLFSSL_SUCCESS) {
		zg_seterr(err, errlen, "%s.key %s does not match %s.cert %s", a->keys, cfg->key,
			  a->keys, cfg->cert);
		return ZG_ERR_CONFIG;
	}
	wolfSSL_CTX_set_verify(a->ctx, WOLFSSL_VERIFY_PEER, NULL);
	return 0;
}

int apic_new(struct event_base *base, struct evdns_base *evdns, const struct apic_config *cfg,
	     struct apic **pp, char *err, size_t errlen)
{
	struct apic *a;
	int r;

	*pp = NULL;
	if (base == NULL || cfg == NULL) {
		zg_seterr(err, errlen, "apic_new: no event base or configuration");
		return ZG_ERR_INVAL;
	}
	if (cfg->relay_id == NULL || cfg->relay_id[0] == '\0' ||
	    strlen(cfg->relay_id) > APIC_ID_MAX) {
		zg_seterr(err, errlen, "relay id: must be 1 to %d bytes", APIC_ID_MAX);
		return ZG_ERR_CONFIG;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		zg_seterr(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	LIST_INIT(&a->all);
	TAILQ_INIT(&a->queue);
	TAILQ_INIT(&a->done);
	LIST_INIT(&a->conns);
	a->base = base;
	a->evdns = evdns;
	a->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
	a->on_state = cfg->on_state;
	a->on_state_arg = cfg->on_state_arg;
	a->max_conns = cfg->max_conns ? cfg->max_conns : 4;
	a->body_max = cfg->body_max ? cfg->body_max : APIRESP_BODY_MAX;
	zg_seterr(a->keys, sizeof(a->keys), "%s", cfg->keys ? cfg->keys : "ipam.api");
	if (a->body_max > APIRESP_BODY_LIMIT) {
		zg_seterr(err, errlen, "apic_new: body_max %zu above %u", a->body_max,
			  (unsigned)APIRESP_BODY_LIMIT);
		r = ZG_ERR_INVAL;
		goto fail;
	}
	zg_seterr(a->relay_id, sizeof(a->relay_id), "%s", cfg->relay_id);
	if ((r = parse_url(a, cfg->url, err, errlen)) != 0 ||
	    (r = make_ctx(a, cfg, err, errlen)) != 0)
		goto fail;
	a->work = event_new(base, -1, 0, work_cb, a);
	if (a->work == NULL) {
		zg_seterr(err, errlen, "out of memory");
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	*pp = a;
	return 0;
fail:
	if (a->ctx)
		wolfSSL_CTX_free(a->ctx);
	free(a);
	return r;
}

static void do_free(struct apic *a)
{
	struct conn *c;
	struct apic_req *r;

	while ((c = LIST_FIRST(&a->conns)) != NULL) {
		c->req = NULL;
		conn_close(c);
	}
	while ((r = LIST_FIRST(&a->all)) != NULL)
		req_free(r);
	event_free(a->work);
	wolfSSL_CTX_free(a->ctx);
	free(a);
}

void apic_free(struct apic *a)
{
	if (a == NULL)
		return;
	if (a->running) { /* from a callback: work_cb frees once it returns */
		a->dying = 1;
		return;
	}
	do_free(a);
}

/* Writes s as JSON string contents (no quotes) into out. Returns the
 * length or -1 when it does not fit. */
static int json_escape(char *out, size_t outlen, const char *s)
{
	static const char hx[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[7];
		size_t k;

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			k = 2;
		} else if (ch < 0x20 || ch == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hx[ch >> 4];
			esc[5] = hx[ch & 15];
			k = 6;
		} else {
			esc[0] = (char)ch;
			k = 1;
		}
		if (n + k + 1 > outlen)
			return -1;
		memcpy(out + n, esc, k);
		n += k;
	}
	out[n] = '\0';
	return (int)n;
}

/* Percent-encodes s for a path segment. */
static int path_escape(char *out, size_t outlen, const char *s)
{
	static const char hx[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    strchr("-._~@:+", ch) != NULL) {
			if (n + 2 > outlen)
				return -1;
			out[n++] = (char)ch;
		} else {
			if (n + 4 > outlen)
				return -1;
			out[n++] = '%';
			out[n++] = hx[ch >> 4];
			out[n++] = hx[ch & 15];
		}
	}
	out[n] = '\0';
	return (int)n;
}

/* r (wire, events made) starts its deadline and waits in the queue.
 * Returns 0, or ZG_ERR_NOMEM (r is then still the caller's). */
static int enqueue(struct apic *a, struct apic_req *r)
{
	struct timeval tv;

	r->deadline_ms = now_ms() + a->timeout_ms;
	tv.tv_sec = (time_t)(a->timeout_ms / 1000u);
	tv.tv_usec = (suseconds_t)(a->timeout_ms % 1000u) * 1000;
	if (event_add(r->deadline, &tv) != 0)
		return ZG_ERR_NOMEM;
	LIST_INSERT_HEAD(&a->all, r, all);
	a->nreq++;
	r->where = W_QUEUE;
	TAILQ_INSERT_TAIL(&a->queue, r, q);
	kick(a);
	return 0;
}

/* Frees a request req_new() made that was never queued. */
static void req_drop(struct apic_req *r)
{
	if (r->deadline)
		event_free(r->deadline);
	if (r->backoff)
		event_free(r->backoff);
	free(r->wire);
	free(r);
}

/* Queues r once its wire is written (wl: snprintf's result into cap
 * bytes). Returns r, or NULL (r freed) when the wire did not fit or the
 * queue refused it. */
static struct apic_req *req_queue(struct apic_req *r, int wl, size_t cap)
{
	if (wl < 0 || (size_t)wl >= cap) {
		req_drop(r);
		return NULL;
	}
	r->wire_len = (size_t)wl;
	if (enqueue(r->a, r) != 0) {
		req_drop(r);
		return NULL;
	}
	return r;
}

/* A request of kind for a with room for cap bytes of wire and its two
 * timers; NULL when out of memory (nothing left allocated). */
static struct apic_req *req_new(struct apic *a, enum req_kind kind, size_t cap)
{
	struct apic_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->a = a;
	r->kind = kind;
	r->wire = malloc(cap);
	r->deadline = evtimer_new(a->base, deadline_cb, r);
	r->backoff = evtimer_new(a->base, backoff_cb, r);
	if (r->wire == NULL || r->deadline == NULL || r->backoff == NULL) {
		req_drop(r);
		return NULL;
	}
	return r;
}

static struct apic_req *submit(struct apic *a, enum req_kind kind, const char *client_id,
			       const uint8_t *want4, apic_alloc_cb cb, void *arg)
{
	char idj[APIC_ID_MAX * 6 + 1], relayj[APIC_ID_MAX * 6 + 1], path[APIC_ID_MAX * 3 + 1];
	char body[2048], want[64] = "";
	struct apic_req *r;
	int bl, wl;
	size_t cap;

	if (kind == K_PROBE)
		client_id = "-"; /* no client: only for the checks below */
	if (a == NULL || client_id == NULL || client_id[0] == '\0' ||
	    strlen(client_id) > APIC_ID_MAX || a->nreq >= APIC_QUEUE_MAX || a->dying)
		return NULL;
	if (json_escape(idj, sizeof(idj), client_id) < 0 ||
	    json_escape(relayj, sizeof(relayj), a->relay_id) < 0 ||
	    path_escape(path, sizeof(path), client_id) < 0)
		return NULL;
	if (kind == K_ALLOC) {
		if (want4 != NULL)
			zg_seterr(want, sizeof(want), ",\"requested_address\":\"%u.%u.%u.%u\"",
				  want4[0], want4[1], want4[2], want4[3]);
		bl = snprintf(body, sizeof(body), "{\"client_id\":\"%s\",\"relay_id\":\"%s\"%s}", idj,
			      relayj, want);
	} else
		bl = snprintf(body, sizeof(body), "{\"relay_id\":\"%s\"}", relayj);
	if (bl < 0 || (size_t)bl >= sizeof(body))
		return NULL;
	cap = (size_t)bl + strlen(a->prefix) + strlen(path) + strlen(a->hosthdr) + 256;
	if ((r = req_new(a, kind, cap)) == NULL)
		return NULL;
	if (kind == K_ALLOC)
		wl = snprintf(r->wire, cap,
			      "POST %s/api/v1/ipam/allocations HTTP/1.1\r\nHost: %s\r\n"
			      "Content-Type: application/json\r\nAccept: application/json\r\n"
			      "Content-Length: %d\r\n\r\n%s",
			      a->prefix, a->hosthdr, bl, body);
	else if (kind == K_PROBE)
		wl = snprintf(r->wire, cap, "GET %s/ready HTTP/1.1\r\nHost: %s\r\n\r\n", a->prefix,
			      a->hosthdr);
	else
		wl = snprintf(r->wire, cap,
			      "PUT %s/api/v1/ipam/allocations/%s/refresh HTTP/1.1\r\nHost: %s\r\n"
			      "Content-Type: application/json\r\nAccept: application/json\r\n"
			      "Content-Length: %d\r\n\r\n%s",
			      a->prefix, path, a->hosthdr, bl, body);
	r->cb = cb;
	r->arg = arg;
	zg_seterr(r->res.client_id, sizeof(r->res.client_id), "%s", kind == K_PROBE ? "" : client_id);
	return req_queue(r, wl, cap);
}

struct apic_req *apic_allocate(struct apic *a, const char *client_id, const uint8_t *want4,
			       apic_alloc_cb cb, void *arg)
{
	return submit(a, K_ALLOC, client_id, want4, cb, arg);
}

int apic_refresh(struct apic *a, const char *client_id, apic_alloc_cb cb, void *arg)
{
	return submit(a, K_REFRESH, client_id, NULL, cb, arg) != NULL ? 0 : ZG_ERR_LIMIT;
}

int apic_probe(struct apic *a)
{
	return submit(a, K_PROBE, NULL, NULL, NULL, NULL) != NULL ? 0 : ZG_ERR_LIMIT;
}

/* A path or header value fit for a request line: printable ASCII, no
 * space (path) or no control byte (header). */
static int wire_safe(const char *s, int space_ok)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || (*s == ' ' && !space_ok))
			return 0;
	return 1;
}

struct apic_req *apic_get(struct apic *a, const char *path, const char *if_none_match,
			  apic_get_cb cb, void *arg)
{
	struct apic_req *r;
	char inm[APIC_ETAG_MAX + 32] = "";
	size_t cap;
	int wl;

	if (a == NULL || path == NULL || path[0] != '/' || strlen(path) > APIC_PATH_MAX ||
	    !wire_safe(path, 0) || a->nreq >= APIC_QUEUE_MAX || a->dying)
		return NULL;
	if (if_none_match != NULL && if_none_match[0] != '\0') {
		if (strlen(if_none_match) >= APIC_ETAG_MAX || !wire_safe(if_none_match, 1))
			return NULL;
		zg_seterr(inm, sizeof(inm), "If-None-Match: %s\r\n", if_none_match);
	}
	cap = strlen(a->prefix) + strlen(path) + strlen(a->hosthdr) + strlen(inm) + 64;
	if ((r = req_new(a, K_GET, cap)) == NULL)
		return NULL;
	wl = snprintf(r->wire, cap, "GET %s%s HTTP/1.1\r\nHost: %s\r\n%s\r\n", a->prefix, path,
		      a->hosthdr, inm);
	r->gcb = cb;
	r->arg = arg;
	return req_queue(r, wl, cap);
}

void apic_cancel(struct apic_req *r)
{
	if (r == NULL)
		return;
	if (r->where == W_ACTIVE && r->c != NULL) {
		struct conn *c = r->c;
		c->req = NULL;
		r->c = NULL;
		/* one with the request (or half of it) on the wire cannot be
		 * reused before its answer, which might never come; one still
		 * being set up has no deadline left to bound it */
		conn_close(c);
		kick(r->a);
	} else
		req_detach(r);
	req_free(r);
}

enum apic_state apic_state(const struct apic *a)
{
	return a ? a->state : APIC_UNKNOWN;
}

uint64_t apic_state_age_ms(const struct apic *a)
{
	if (a == NULL || a->state == APIC_UNKNOWN)
		return 0;
	return now_ms() - a->state_since;
}

const char *apic_last_error(const struct apic *a)
{
	return a ? a->last_error : "";
}

void apic_counters(const struct apic *a, struct apic_counters *out)
{
	if (a == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = a->cnt;
}

size_t apic_pending(const struct apic *a)
{
	return a ? a->nreq - a->ndone : 0;
}
