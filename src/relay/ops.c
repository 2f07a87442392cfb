#include "ops.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "hostport.h"
#include "log.h"
#include "zg_err.h"

struct ops_conn {
	struct ops *o;
	struct bufferevent *bev;
	struct event *deadline;
	struct ops_conn *next, *prev;
	char peer[INET6_ADDRSTRLEN + 8]; /* "host:port", for the admin audit */
};

struct ops {
	struct event_base *base;
	evutil_socket_t fd;
	struct event *ev_accept, *ev_resume;
	int spare; /* /dev/null, given up to shed load under EMFILE */
	unsigned max_conns;
	uint32_t timeout_ms;
	uint32_t pause_ms; /* current back-off; 0 = not paused */
	uint64_t episode_errors;
	ops_metrics_fn metrics;
	ops_ready_note_fn ready_note;
	ops_ready_gate_fn ready_gate;
	void *ctx;
	enum ops_state state;
	uint16_t port;
	struct ops_conn *conns;
	struct ops_stats st;
	/* admin (issue 18.3): on once a token is loaded */
	int admin, admin_only;
	char token[OPS_TOKEN_MAX + 1];
	size_t token_len;
	char token_file[1024];
	struct ops_admin_cbs acb;
	void *actx;
	struct ops_admin_stats ast;
	uint64_t unauth_logged_s; /* last second a refused token was logged */
};

static const char busy_reply[] = "HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n";

/* ------------------------------------------------------------------ */
/* connections                                                        */

static void conn_free(struct ops_conn *k)
{
	struct ops *o = k->o;

	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		o->conns = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	o->st.conns--;
	if (k->deadline != NULL)
		event_free(k->deadline);
	bufferevent_free(k->bev); /* closes the socket */
	free(k);
}

static void arm_deadline(struct ops_conn *k)
{
	struct timeval tv = { .tv_sec = (time_t)(k->o->timeout_ms / 1000),
			      .tv_usec = (suseconds_t)(k->o->timeout_ms % 1000) * 1000 };

	(void)evtimer_add(k->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct ops_conn *k = arg;

	(void)fd;
	(void)what;
	k->o->st.timeouts++;
	conn_free(k);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what; /* EOF or error: either way the connection is over */
	conn_free(arg);
}

static void on_discard(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	(void)evbuffer_drain(in, evbuffer_get_length(in));
}

/* The answer is out: half-close and wait (until the deadline) for the
 * client's FIN, discarding what it still sends, so that unread request
 * bytes do not turn our close into a reset that destroys the answer. */
static void on_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	bufferevent_disable(bev, EV_WRITE);
	(void)shutdown(bufferevent_getfd(bev), SHUT_WR);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_setcb(bev, on_discard, NULL, on_event, arg);
	bufferevent_enable(bev, EV_READ);
}

/* Queues the answer and closes once it is written. */
static void reply(struct ops_conn *k, int code, const char *reason, const char *ctype,
		  const char *extra, struct evbuffer *body, int head_only)
{
	struct evbuffer *out = bufferevent_get_output(k->bev);
	size_t len = body != NULL ? evbuffer_get_length(body) : 0;

	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
			    code, reason, ctype, len, extra != NULL ? extra : "");
	if (body != NULL && !head_only)
		evbuffer_add_buffer(out, body);
	bufferevent_setcb(k->bev, on_discard, on_written, on_event, k);
	bufferevent_enable(k->bev, EV_WRITE);
	arm_deadline(k); /* the same time again to take the answer */
}

static void reply_text(struct ops_conn *k, int code, const char *reason, const char *extra,
		       const char *text, int head_only)
{
	struct evbuffer *b = evbuffer_new();

	if (b != NULL)
		evbuffer_add_printf(b, "%s\n", text);
	reply(k, code, reason, "text/plain; charset=utf-8", extra, b, head_only);
	if (b != NULL)
		evbuffer_free(b);
}

void ops_admin_metrics(const struct ops *o, struct evbuffer *b)
{
	evbuffer_add_printf(b,
			    "# HELP zgate_admin_requests_total Admin requests on this port, by result "
			    "(refused = bad method, body or client ID).\n"
			    "# TYPE zgate_admin_requests_total counter\n"
			    "zgate_admin_requests_total{result=\"ok\"} %llu\n"
			    "zgate_admin_requests_total{result=\"unauthorized\"} %llu\n"
			    "zgate_admin_requests_total{result=\"not_found\"} %llu\n"
			    "zgate_admin_requests_total{result=\"refused\"} %llu\n"
			    "# HELP zgate_admin_token_reload_errors_total Token file reloads that failed "
			    "(the token in force was kept).\n"
			    "# TYPE zgate_admin_token_reload_errors_total counter\n"
			    "zgate_admin_token_reload_errors_total %llu\n",
			    (unsigned long long)o->ast.ok, (unsigned long long)o->ast.unauthorized,
			    (unsigned long long)o->ast.not_found, (unsigned long long)o->ast.refused,
			    (unsigned long long)o->ast.reload_errors);
}

static void own_metrics(const struct ops *o, struct evbuffer *b)
{
	evbuffer_add_printf(b,
			    "# HELP zgate_ops_connections Connections to the ops endpoint open now.\n"
			    "# TYPE zgate_ops_connections gauge\nzgate_ops_connections %u\n"
			    "# HELP zgate_ops_refused_total Ops connections refused: busy = over ops.max_connections, "
			    "timeout = request or answer slower than ops.timeout, shed = closed unserved while out of descriptors.\n"
			    "# TYPE zgate_ops_refused_total counter\n"
			    "zgate_ops_refused_total{reason=\"busy\"} %llu\n"
			    "zgate_ops_refused_total{reason=\"timeout\"} %llu\n"
			    "zgate_ops_refused_total{reason=\"shed\"} %llu\n"
			    "# HELP zgate_ops_accept_errors_total accept() failures on the ops port (EMFILE, ENFILE, ENOMEM).\n"
			    "# TYPE zgate_ops_accept_errors_total counter\nzgate_ops_accept_errors_total %llu\n",
			    o->st.conns,
			    (unsigned long long)o->st.refused_busy, (unsigned long long)o->st.timeouts,
			    (unsigned long long)o->st.shed, (unsigned long long)o->st.accept_errors);
	if (o->admin)
		ops_admin_metrics(o, b);
}

/* ------------------------------------------------------------------ */
/* admin (issue 18.3)                                                 */

/* A parsed request head: what routing needs. */
struct req {
	const char *method, *path;
	const char *auth; /* the Authorization value, NULL when absent */
	int auth_count;   /* Authorization headers seen */
	int has_body;     /* Content-Length > 0 or Transfer-Encoding */
	int head;         /* HEAD */
};

/* 1 when tok (n bytes) is the configured token. The time taken depends
 * only on OPS_TOKEN_MAX, never on where the bytes differ or on either
 * length. */
static int token_ok(const struct ops *o, const char *tok, size_t n)
{
	static const char zero[OPS_TOKEN_MAX];
	const volatile unsigned char *a = (const unsigned char *)o->token;
	const unsigned char *b = (const unsigned char *)(n <= OPS_TOKEN_MAX ? tok : zero);
	size_t bl = n <= OPS_TOKEN_MAX ? n : 0;
	unsigned diff = (unsigned)(o->token_len ^ n) | (n > OPS_TOKEN_MAX);

	for (size_t i = 0; i < OPS_TOKEN_MAX; i++) {
		unsigned char x = i < o->token_len ? a[i] : 0;
		unsigned char y = i < bl ? b[i] : 0;

		diff |= (unsigned)(x ^ y);
	}
	return o->token_len > 0 && diff == 0;
}

int ops_token_load(const char *path, char *tok, size_t tokcap, size_t *plen, char *err,
		   size_t errlen)
{
	char buf[OPS_TOKEN_MAX + 64];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, r = ZG_ERR_CONFIG;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		(void)snprintf(err, errlen, "admin.token_file %s: cannot open: %s", path,
			       strerror(errno));
		return ZG_ERR_IO;
	}
	if (fstat(fd, &st) != 0) {
		(void)snprintf(err, errlen, "admin.token_file %s: %s", path, strerror(errno));
		r = ZG_ERR_IO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(err, errlen, "admin.token_file %s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		(void)snprintf(err, errlen,
			       "admin.token_file %s: mode %04o lets every local user %s the admin "
			       "token; refused (chmod o-rwx %s)",
			       path, (unsigned)(st.st_mode & 07777),
			       st.st_mode & S_IROTH ? "read" : "replace", path);
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		(void)snprintf(err, errlen, "admin.token_file %s: cannot read: %s", path,
			       strerror(errno));
		r = ZG_ERR_IO;
		goto out;
	}
	len = (size_t)n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
			   buf[len - 1] == '\t'))
		len--;
	if (len > OPS_TOKEN_MAX || len + 1 > tokcap) {
		(void)snprintf(err, errlen, "admin.token_file %s: longer than %d bytes", path,
			       OPS_TOKEN_MAX);
		goto out;
	}
	if (len < OPS_TOKEN_MIN) {
		(void)snprintf(err, errlen,
			       "admin.token_file %s: the token has %zu bytes; at least %d are needed "
			       "(e.g. head -c 32 /dev/urandom | base64)",
			       path, len, OPS_TOKEN_MIN);
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		if (buf[i] < 0x21 || buf[i] > 0x7e) {
			(void)snprintf(err, errlen,
				       "admin.token_file %s: byte %zu is not printable ASCII (a token "
				       "is one word, e.g. base64)",
				       path, i + 1);
			goto out;
		}
	}
	memcpy(tok, buf, len);
	tok[len] = '\0';
	*plen = len;
	r = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return r;
}

int ops_admin_enable(struct ops *o, const char *token_file, const struct ops_admin_cbs *cbs,
		     void *ctx, char *err, size_t errlen)
{
	int r;

	if (strlen(token_file) >= sizeof(o->token_file)) {
		(void)snprintf(err, errlen, "admin.token_file: path too long");
		return ZG_ERR_CONFIG;
	}
	r = ops_token_load(token_file, o->token, sizeof(o->token), &o->token_len, err, errlen);
	if (r != 0)
		return r;
	(void)snprintf(o->token_file, sizeof(o->token_file), "%s", token_file);
	o->acb = *cbs;
	o->actx = ctx;
	o->admin = 1;
	return 0;
}

int ops_admin_reload(struct ops *o, char *err, size_t errlen)
{
	char tok[OPS_TOKEN_MAX + 1];
	size_t len = 0;
	int r;

	if (!o->admin)
		return ZG_ERR_STATE;
	r = ops_token_load(o->token_file, tok, sizeof(tok), &len, err, errlen);
	if (r != 0) {
		o->ast.reload_errors++;
		return r;
	}
	explicit_bzero(o->token, sizeof(o->token));
	memcpy(o->token, tok, len + 1);
	o->token_len = len;
	explicit_bzero(tok, sizeof(tok));
	return 0;
}

void ops_set_admin_only(struct ops *o, int on)
{
	o->admin_only = on;
}

void ops_get_admin_stats(const struct ops *o, struct ops_admin_stats *st)
{
	*st = o->ast;
}

/* Appends s as a JSON string (client IDs and serials are printable ASCII;
 * anything else is escaped all the same). NULL or "" is null. */
static void json_str(struct evbuffer *b, const char *s)
{
	if (s == NULL || s[0] == '\0') {
		evbuffer_add(b, "null", 4);
		return;
	}
	evbuffer_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			evbuffer_add_printf(b, "\\u%04x", *p);
		else
			evbuffer_add(b, p, 1);
	}
	evbuffer_add(b, "\"", 1);
}

struct list_ctx {
	struct evbuffer *b;
	size_t n;
};

static void emit_session(void *ectx, const struct ops_session *s)
{
	struct list_ctx *lc = ectx;
	struct evbuffer *b = lc->b;
	char since[32] = "";
	time_t t = (time_t)s->since;
	struct tm tm;

	if (gmtime_r(&t, &tm) != NULL)
		(void)strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	evbuffer_add_printf(b, "%s\n  {\"client\":", lc->n++ ? "," : "");
	json_str(b, s->client);
	evbuffer_add_printf(b, ",\"addresses\":[");
	if (s->addr4 != NULL && s->addr4[0] != '\0')
		json_str(b, s->addr4);
	if (s->addr6 != NULL && s->addr6[0] != '\0') {
		if (s->addr4 != NULL && s->addr4[0] != '\0')
			evbuffer_add(b, ",", 1);
		json_str(b, s->addr6);
	}
	evbuffer_add_printf(b, "],\"peer\":");
	json_str(b, s->peer);
	evbuffer_add_printf(b, ",\"since\":");
	json_str(b, since);
	evbuffer_add_printf(b, ",\"bytes_up\":%llu,\"bytes_down\":%llu,\"cert_serial\":",
			    (unsigned long long)s->bytes_up, (unsigned long long)s->bytes_down);
	json_str(b, s->cert_serial);
	evbuffer_add(b, "}", 1);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes a client ID from the path into out (OPS_CLIENT_MAX).
 * Returns 0, or -1 when it is empty, too long, badly encoded or has a
 * byte no client ID has (outside 0x21-0x7e). */
static int decode_client(const char *in, char *out)
{
	size_t n = 0;

	for (const char *p = in; *p; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			int h = hexval((unsigned char)p[1]), l = h >= 0 ? hexval((unsigned char)p[2]) : -1;

			if (l < 0)
				return -1;
			c = h * 16 + l;
			p += 2;
		}
		if (c < 0x21 || c > 0x7e || n + 1 >= OPS_CLIENT_MAX)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

static void admin_audit(struct ops_conn *k, const char *action, const char *client, int status)
{
	struct ops *o = k->o;

	if (o->acb.audit != NULL)
		o->acb.audit(o->actx, action, client, k->peer, status);
}

static void reply_json(struct ops_conn *k, int code, const char *reason, struct evbuffer *b,
		       int head)
{
	reply(k, code, reason, "application/json", NULL, b, head);
}

/* Serves /admin and everything under it (admin on). */
static void serve_admin(struct ops_conn *k, const struct req *rq)
{
	static const char sessions[] = "/admin/sessions";
	struct ops *o = k->o;
	const char *path = rq->path, *tok = NULL;
	char client[OPS_CLIENT_MAX];
	struct evbuffer *b;
	int rv;

	if (rq->auth_count == 1 && strncasecmp(rq->auth, "bearer", 6) == 0 &&
	    (rq->auth[6] == ' ' || rq->auth[6] == '\t')) {
		tok = rq->auth + 6;
		while (*tok == ' ' || *tok == '\t')
			tok++;
	}
	if (tok == NULL || !token_ok(o, tok, strlen(tok))) {
		uint64_t now = (uint64_t)time(NULL);

		o->ast.unauthorized++;
		if (now != o->unauth_logged_s) { /* at most one line a second */
			o->unauth_logged_s = now;
			log_warnx("ops: admin request from %s refused: %s bearer token", k->peer,
				  tok == NULL ? "no" : "a wrong");
		}
		reply_text(k, 401, "Unauthorized",
			   tok == NULL ? "WWW-Authenticate: Bearer realm=\"zgate-relay admin\"\r\n"
				       : "WWW-Authenticate: Bearer realm=\"zgate-relay admin\", "
					 "error=\"invalid_token\"\r\n",
			   "unauthorized: send Authorization: Bearer <admin token>", rq->head);
		return;
	}
	if (rq->has_body) {
		o->ast.refused++;
		reply_text(k, 400, "Bad Request", NULL, "admin requests take no body", rq->head);
		return;
	}
	if (strcmp(path, sessions) == 0) {
		if (!rq->head && strcmp(rq->method, "GET") != 0) {
			o->ast.refused++;
			reply_text(k, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
				   "method not allowed", 0);
			return;
		}
		if ((b = evbuffer_new()) == NULL) {
			reply_text(k, 500, "Internal Server Error", NULL, "out of memory", rq->head);
			return;
		}
		struct list_ctx lc = { b, 0 };

		evbuffer_add(b, "[", 1);
		if (o->acb.list != NULL)
			o->acb.list(o->actx, emit_session, &lc);
		evbuffer_add_printf(b, "%s]\n", lc.n ? "\n" : "");
		o->ast.ok++;
		admin_audit(k, "list_sessions", NULL, 200);
		reply_json(k, 200, "OK", b, rq->head);
		evbuffer_free(b);
		return;
	}
	if (strncmp(path, sessions, sizeof(sessions) - 1) == 0 &&
	    path[sizeof(sessions) - 1] == '/') {
		if (strcmp(rq->method, "DELETE") != 0) {
			o->ast.refused++;
			reply_text(k, 405, "Method Not Allowed", "Allow: DELETE\r\n",
				   "method not allowed", rq->head);
			return;
		}
		if (decode_client(path + sizeof(sessions), client) != 0) {
			o->ast.refused++;
			reply_text(k, 400, "Bad Request", NULL,
				   "bad client ID in the path (percent-encode it)", 0);
			return;
		}
		rv = o->acb.kick != NULL ? o->acb.kick(o->actx, client) : ZG_ERR_NOTFOUND;
		if (rv != 0) {
			o->ast.not_found++;
			admin_audit(k, "close_session", client, 404);
			reply_text(k, 404, "Not Found", NULL, "no open session for that client", 0);
			return;
		}
		o->ast.ok++;
		admin_audit(k, "close_session", client, 200);
		log_info("ops: session of %s closed by an admin request from %s", client, k->peer);
		if ((b = evbuffer_new()) != NULL) {
			evbuffer_add_printf(b, "{\"client\":");
			json_str(b, client);
			evbuffer_add_printf(b, ",\"closed\":true}\n");
		}
		reply_json(k, 200, "OK", b, 0);
		if (b != NULL)
			evbuffer_free(b);
		return;
	}
	o->ast.not_found++;
	reply_text(k, 404, "Not Found", NULL, "not found: try /admin/sessions", rq->head);
}

/* Routes a parsed request. */
static void serve(struct ops_conn *k, const struct req *rq)
{
	struct ops *o = k->o;
	const char *path = rq->path;
	int head = rq->head;
	struct evbuffer *b;

	if (strcmp(path, "/admin") == 0 || strncmp(path, "/admin/", 7) == 0) {
		/* Without a token there is no admin endpoint at all, whatever
		 * the method: never served unauthenticated. */
		if (o->admin)
			serve_admin(k, rq);
		else
			reply_text(k, 404, "Not Found", NULL, "not found: try /health, /ready or /metrics",
				   head);
	} else if (o->admin_only) {
		reply_text(k, 404, "Not Found", NULL, "not found: try /admin/sessions", head);
	} else if (!head && strcmp(rq->method, "GET") != 0) {
		reply_text(k, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", "method not allowed",
			   0);
	} else if (strcmp(path, "/health") == 0) {
		reply_text(k, 200, "OK", NULL, "ok", head);
	} else if (strcmp(path, "/ready") == 0) {
		char text[512];
		const char *why = o->state == OPS_READY && o->ready_gate != NULL
					  ? o->ready_gate(o->ctx)
					  : NULL;
		const char *st = why != NULL                ? "waiting"
				 : o->state == OPS_READY    ? "ready"
				 : o->state == OPS_DRAINING ? "draining"
							    : "starting";
		size_t n = (size_t)snprintf(text, sizeof(text), "%s", st);

		if (why != NULL)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "\n%s", why);
		if (n >= sizeof(text))
			n = sizeof(text) - 1;

		if (o->ready_note != NULL) {
			char note[400];

			note[0] = '\0';
			o->ready_note(o->ctx, note, sizeof(note));
			if (note[0] != '\0')
				(void)snprintf(text + n, sizeof(text) - n, "\n%s", note);
		}
		if (o->state == OPS_READY && why == NULL)
			reply_text(k, 200, "OK", NULL, text, head);
		else
			reply_text(k, 503, "Service Unavailable", NULL, text, head);
	} else if (strcmp(path, "/metrics") == 0) {
		if ((b = evbuffer_new()) == NULL) {
			reply_text(k, 500, "Internal Server Error", NULL, "out of memory", head);
			return;
		}
		if (o->metrics != NULL)
			o->metrics(o->ctx, b);
		own_metrics(o, b);
		reply(k, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, b, head);
		evbuffer_free(b);
	} else {
		reply_text(k, 404, "Not Found", NULL, "not found: try /health, /ready or /metrics",
			   head);
	}
}

/* Parses the request head in buf (NUL-terminated, ends in CRLF CRLF) and
 * answers. Only what the endpoint needs is read: the request line,
 * Content-Length, Transfer-Encoding and Authorization (a body is never
 * read: the connection closes after the answer). */
static void handle_head(struct ops_conn *k, char *buf)
{
	char *line = buf, *eol, *sp1, *sp2, *path;
	unsigned long long clen = 0;
	struct req rq;

	memset(&rq, 0, sizeof(rq));
	eol = strstr(line, "\r\n");
	*eol = '\0';
	sp1 = strchr(line, ' ');
	sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == line || sp1 - line > 16 || sp2 == sp1 + 1 ||
	    (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0)) {
		reply_text(k, 400, "Bad Request", NULL, "bad request", 0);
		return;
	}
	*sp1 = *sp2 = '\0';
	path = sp1 + 1;
	for (const char *p = line; *p; p++)
		if (!isupper((unsigned char)*p)) {
			reply_text(k, 400, "Bad Request", NULL, "bad request", 0);
			return;
		}
	for (const char *p = path; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f) {
			reply_text(k, 400, "Bad Request", NULL, "bad request", 0);
			return;
		}
	if (path[0] != '/') {
		reply_text(k, 400, "Bad Request", NULL, "bad request", 0);
		return;
	}
	path[strcspn(path, "?#")] = '\0';
	/* header lines: the body's announced size, and the credentials */
	for (line = eol + 2; *line != '\0' && strncmp(line, "\r\n", 2) != 0; line = eol + 2) {
		eol = strstr(line, "\r\n");
		*eol = '\0';
		if (strncasecmp(line, "content-length:", 15) == 0) {
			char *end;

			errno = 0;
			clen = strtoull(line + 15, &end, 10);
			while (*end == ' ' || *end == '\t')
				end++;
			if (errno != 0 || *end != '\0')
				clen = ULLONG_MAX;
		} else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
			clen = ULLONG_MAX; /* a body of unknown size */
		} else if (strncasecmp(line, "authorization:", 14) == 0) {
			char *v = line + 14, *e = eol;

			while (*v == ' ' || *v == '\t')
				v++;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				*--e = '\0';
			rq.auth = v;
			rq.auth_count++;
		}
	}
	rq.method = buf;
	rq.path = path;
	rq.head = strcmp(buf, "HEAD") == 0;
	rq.has_body = clen > 0;
	if (clen > OPS_MAX_BODY) {
		reply_text(k, 413, "Payload Too Large", NULL, "request body too large", 0);
		return;
	}
	serve(k, &rq);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct ops_conn *k = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	static char head[OPS_MAX_HEADERS + 1];
	size_t n;

	if (end.pos < 0) {
		if (evbuffer_get_length(in) > OPS_MAX_HEADERS)
			reply_text(k, 431, "Request Header Fields Too Large", NULL,
				   "request header fields too large", 0);
		return;
	}
	n = (size_t)end.pos + 4;
	if (n > OPS_MAX_HEADERS) {
		reply_text(k, 431, "Request Header Fields Too Large", NULL,
			   "request header fields too large", 0);
		return;
	}
	(void)evbuffer_remove(in, head, n);
	head[n] = '\0';
	if (strlen(head) != n) { /* a NUL inside the head */
		reply_text(k, 400, "Bad Request", NULL, "bad request", 0);
		return;
	}
	handle_head(k, head);
}

static int conn_new(struct ops *o, evutil_socket_t fd, const struct sockaddr_storage *ss)
{
	struct ops_conn *k = calloc(1, sizeof(*k));
	char h[INET6_ADDRSTRLEN] = "?";

	if (k == NULL) {
		close(fd);
		return ZG_ERR_NOMEM;
	}
	k->o = o;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			(void)inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], h, sizeof(h));
		else
			(void)inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof(h));
		(void)snprintf(k->peer, sizeof(k->peer),
			       IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) ? "%s:%u" : "[%s]:%u", h,
			       ntohs(s6->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		(void)inet_ntop(AF_INET, &s4->sin_addr, h, sizeof(h));
		(void)snprintf(k->peer, sizeof(k->peer), "%s:%u", h, ntohs(s4->sin_port));
	} else {
		(void)snprintf(k->peer, sizeof(k->peer), "?");
	}
	k->bev = bufferevent_socket_new(o->base, fd, BEV_OPT_CLOSE_ON_FREE);
	k->deadline = k->bev != NULL ? evtimer_new(o->base, on_deadline, k) : NULL;
	if (k->deadline == NULL) {
		if (k->bev != NULL)
			bufferevent_free(k->bev); /* closes fd */
		else
			close(fd);
		free(k);
		return ZG_ERR_NOMEM;
	}
	/* Stop reading past what a request head may hold. */
	bufferevent_setwatermark(k->bev, EV_READ, 0, OPS_MAX_HEADERS + 1);
	bufferevent_setcb(k->bev, on_read, NULL, on_event, k);
	bufferevent_enable(k->bev, EV_READ);
	k->next = o->conns;
	if (o->conns != NULL)
		o->conns->prev = k;
	o->conns = k;
	o->st.conns++;
	o->st.accepted++;
	arm_deadline(k);
	return 0;
}

/* ------------------------------------------------------------------ */
/* accepting                                                          */

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct ops *o = arg;

	(void)fd;
	(void)what;
	if (o->spare < 0)
		o->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	(void)event_add(o->ev_accept, NULL);
}

/* accept() failed for want of a resource: shed one waiting connection with
 * the spare descriptor (so a client is told "closed" rather than left
 * hanging) and stop watching the listener for a while: it stays readable,
 * and retrying at once is the 100 % CPU loop of issue 16.1. */
static void accept_failed(struct ops *o, int err)
{
	struct timeval tv;

	o->st.accept_errors++;
	if (o->spare >= 0) {
		int fd;

		close(o->spare);
		fd = accept4(o->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			o->st.shed++;
		}
		o->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	o->pause_ms = o->pause_ms == 0 ? OPS_PAUSE_MIN_MS : o->pause_ms * 2;
	if (o->pause_ms > OPS_PAUSE_MAX_MS)
		o->pause_ms = OPS_PAUSE_MAX_MS;
	if (o->episode_errors++ == 0)
		log_warnx("ops: accept: %s; pausing the ops port (up to %u ms at a time) until "
			  "descriptors are free again",
			  strerror(err), OPS_PAUSE_MAX_MS);
	(void)event_del(o->ev_accept);
	tv.tv_sec = (time_t)(o->pause_ms / 1000);
	tv.tv_usec = (suseconds_t)(o->pause_ms % 1000) * 1000;
	(void)evtimer_add(o->ev_resume, &tv);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct ops *o = arg;

	(void)what;
	for (int i = 0; i < OPS_ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		memset(&ss, 0, sizeof(ss));
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
#if EAGAIN != EWOULDBLOCK
			case EWOULDBLOCK:
#endif
				return;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
				continue;
			default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
				accept_failed(o, errno);
				return;
			}
		}
		if (o->episode_errors > 0) {
			log_info("ops: accepting again (%llu accept errors while descriptors ran out)",
				 (unsigned long long)o->episode_errors);
			o->episode_errors = 0;
		}
		o->pause_ms = 0;
		if (o->st.conns >= o->max_conns) {
			/* Full: answer at once, hold nothing. */
			o->st.refused_busy++;
			(void)send(fd, busy_reply, sizeof(busy_reply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		(void)conn_new(o, fd, &ss); /* closes fd on failure */
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
	int r;

	if (hostport_split(listen, host, sizeof(host), &port) != 0)
		return ZG_ERR_CONFIG;
	if (!(o = calloc(1, sizeof(*o))))
		return ZG_ERR_NOMEM;
	o->base = base;
	o->fd = -1;
	o->spare = -1;
	o->metrics = fn;
	o->ctx = ctx;
	o->state = OPS_STARTING;
	o->max_conns = OPS_MAX_CONNECTIONS;
	o->timeout_ms = OPS_TIMEOUT_MS;
	/* Our own listening socket: getaddrinfo with AI_ADDRCONFIG (as
	 * libevent's helpers use) refuses 127.0.0.1 in an IPv6-only pod. */
	if ((o->fd = listen_socket(host, port)) < 0) {
		r = ZG_ERR_IO;
		goto fail;
	}
	o->ev_accept = event_new(base, o->fd, EV_READ | EV_PERSIST, on_accept, o);
	o->ev_resume = evtimer_new(base, on_resume, o);
	if (o->ev_accept == NULL || o->ev_resume == NULL || event_add(o->ev_accept, NULL) != 0) {
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	o->spare = open("/dev/null", O_RDONLY | O_CLOEXEC); /* best effort */
	if (getsockname(o->fd, (struct sockaddr *)&ss, &sl) == 0)
		o->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	*pops = o;
	return 0;
fail:
	ops_del(o);
	return r;
}

void ops_set_limits(struct ops *o, unsigned max_conns, uint32_t timeout_ms)
{
	if (max_conns > 0)
		o->max_conns = max_conns;
	if (timeout_ms > 0)
		o->timeout_ms = timeout_ms;
}

void ops_del(struct ops *o)
{
	int e = errno;

	if (!o)
		return;
	while (o->conns != NULL)
		conn_free(o->conns);
	if (o->ev_accept != NULL)
		event_free(o->ev_accept);
	if (o->ev_resume != NULL)
		event_free(o->ev_resume);
	if (o->fd >= 0)
		close(o->fd);
	if (o->spare >= 0)
		close(o->spare);
	explicit_bzero(o->token, sizeof(o->token));
	free(o);
	errno = e; /* ops_new's ZG_ERR_IO keeps the bind error */
}

void ops_set_ready_gate(struct ops *o, ops_ready_gate_fn fn)
{
	if (o != NULL)
		o->ready_gate = fn;
}

void ops_set_ready_note(struct ops *o, ops_ready_note_fn fn)
{
	o->ready_note = fn;
}

void ops_set_state(struct ops *o, enum ops_state st)
{
	if (o != NULL)
		o->state = st;
}

enum ops_state ops_get_state(const struct ops *o)
{
	return o->state;
}

void ops_get_stats(const struct ops *o, struct ops_stats *st)
{
	*st = o->st;
}

uint16_t ops_port(const struct ops *o)
{
	return o != NULL ? o->port : 0;
}
