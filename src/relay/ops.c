#include "ops.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "log.h"
#include "hostport.h"
#include "zg_err.h"

struct ops {
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	ops_metrics_fn metrics;
	void *ctx;
	enum ops_state state;
	uint16_t port;
};

static void reply_text(struct evhttp_request *req, int code, const char *reason,
		       const char *text)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if (b && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add_printf(b, "%s\n", text);
	evhttp_send_reply(req, code, reason, b);
	if (b)
		evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct ops *o = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *b;

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed", "method not allowed");
		return;
	}
	if (!path) {
		reply_text(req, 400, "Bad Request", "bad request");
	} else if (strcmp(path, "/health") == 0) {
		reply_text(req, 200, "OK", "ok");
	} else if (strcmp(path, "/ready") == 0) {
		if (o->state == OPS_READY)
			reply_text(req, 200, "OK", "ready");
		else
			reply_text(req, 503, "Service Unavailable",
				   o->state == OPS_DRAINING ? "draining" : "starting");
	} else if (strcmp(path, "/metrics") == 0) {
		if (!(b = evbuffer_new())) {
			reply_text(req, 500, "Internal Server Error", "out of memory");
			return;
		}
		if (o->metrics)
			o->metrics(o->ctx, b);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  "text/plain; version=0.0.4; charset=utf-8");
		if (cmd == EVHTTP_REQ_HEAD)
			evbuffer_drain(b, evbuffer_get_length(b));
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
	} else {
		reply_text(req, 404, "Not Found", "not found: try /health, /ready or /metrics");
	}
}

/* A non-blocking TCP listener on host:port ("" = every address, IPv4 and
 * IPv6). Returns the socket or -1 (errno set). */
static evutil_socket_t listen_socket(const char *host, uint16_t port)
{
	struct addrinfo hints, *res = NULL;
	char ports[8];
	int fd, one = 1, zero = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = host[0] ? AF_UNSPEC : AF_INET6;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	(void)snprintf(ports, sizeof(ports), "%u", port);
	if (getaddrinfo(host[0] ? host : NULL, ports, &hints, &res) != 0 || res == NULL)
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (res->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
			int e = errno;

			close(fd);
			errno = e;
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

int ops_new(struct event_base *base, const char *listen, ops_metrics_fn fn,
	    void *ctx, struct ops **pops)
{
	char host[256];
	uint16_t port;
	struct ops *o = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd;
	int r;

	if (hostport_split(listen, host, sizeof(host), &port) != 0)
		return ZG_ERR_CONFIG;
	if (!(o = calloc(1, sizeof(*o))))
		return ZG_ERR_NOMEM;
	o->metrics = fn;
	o->ctx = ctx;
	o->state = OPS_STARTING;
	if (!(o->http = evhttp_new(base))) {
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	evhttp_set_max_headers_size(o->http, OPS_MAX_HEADERS);
	evhttp_set_max_body_size(o->http, OPS_MAX_BODY);
	evhttp_set_timeout(o->http, OPS_TIMEOUT_S);
	evhttp_set_allowed_methods(o->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
					    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(o->http, on_request, o);
	/* Our own listening socket: libevent's bind helper resolves with
	 * AI_ADDRCONFIG, which refuses 127.0.0.1 in an IPv6-only pod. */
	fd = listen_socket(host, port);
	if (fd < 0 || !(o->sock = evhttp_accept_socket_with_handle(o->http, fd))) {
		if (fd >= 0)
			evutil_closesocket(fd);
		r = ZG_ERR_IO;
		goto fail;
	}
	fd = evhttp_bound_socket_get_fd(o->sock);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		o->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							  : ((struct sockaddr_in *)&ss)->sin_port);
	*pops = o;
	return 0;
fail:
	if (o->http)
		evhttp_free(o->http);
	free(o);
	return r;
}

void ops_del(struct ops *o)
{
	if (!o)
		return;
	evhttp_free(o->http);
	free(o);
}

void ops_set_state(struct ops *o, enum ops_state st)
{
	o->state = st;
}

enum ops_state ops_get_state(const struct ops *o)
{
	return o->state;
}

uint16_t ops_port(const struct ops *o)
{
	return o->port;
}
