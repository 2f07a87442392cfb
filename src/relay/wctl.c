#include "relay/wctl.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "be.h"
#include "log.h"
#include "zg_err.h"

int wctl_pair_open(int fds[2], char *err, size_t errlen)
{
	int sz = WCTL_SOCKBUF;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
		int e = errno;

		zg_seterr(err, errlen, "worker control channel: socketpair: %s", strerror(e));
		fds[0] = fds[1] = -1;
		errno = e;
		return ZG_ERR_IO;
	}
	/* a large reply goes faster in fewer wake-ups; the kernel caps it */
	(void)setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	return 0;
}

/* ------------------------------------------------------------------ */
/* the master's side                                                  */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits until fd has events (POLLIN or POLLOUT) or the deadline passes:
 * 0, ZG_ERR_TIMEOUT or ZG_ERR_IO. POLLHUP and POLLERR return 0: the next
 * call on fd says what happened. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { fd, events, 0 };
		uint64_t now = mono_ms();
		int n;

		if (now >= deadline)
			return ZG_ERR_TIMEOUT;
		n = poll(&pfd, 1, (int)(deadline - now > 60000 ? 60000 : deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return ZG_ERR_IO;
	}
}

/* Drops every record already waiting on fd (the answers of earlier calls
 * that gave up). 0 when nothing more waits; ZG_ERR_IO on EOF or error. */
static int discard(int fd)
{
	for (;;) {
		uint8_t b[1];
		ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT | MSG_TRUNC);

		if (n > 0)
			continue;
		if (n == 0)
			return ZG_ERR_IO;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			return ZG_ERR_IO;
	}
}

static int send_req(int fd, uint8_t op, uint32_t seq, const void *req, size_t reqlen,
		    uint64_t deadline)
{
	uint8_t hdr[WCTL_HDR];
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)(uintptr_t)req, reqlen } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = reqlen > 0 ? 2 : 1 };
	int r;

	hdr[0] = op;
	be32_put(hdr + 1, seq);
	be32_put(hdr + 5, (uint32_t)reqlen);
	for (;;) {
		/* a record goes whole or not at all: no partial send */
		if (sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ZG_ERR_IO;
		if ((r = wait_fd(fd, POLLOUT, deadline)) != 0)
			return r;
	}
}

/* Reads reply records into reply until the one answering seq is whole. */
static int recv_reply(int fd, uint32_t seq, uint64_t deadline, struct evbuffer *reply,
		      int *pstatus)
{
	size_t total = 0, got = 0;
	int status = -1, r;

	for (;;) {
		uint8_t hdr[WCTL_HDR];
		struct evbuffer_iovec v;
		struct iovec iov[2];
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t n;
		size_t dlen;

		if (mono_ms() >= deadline) /* even while stale records keep coming */
			return ZG_ERR_TIMEOUT;
		if (evbuffer_reserve_space(reply, WCTL_CHUNK, &v, 1) != 1)
			return ZG_ERR_NOMEM;
		iov[0] = (struct iovec){ hdr, sizeof(hdr) };
		iov[1] = (struct iovec){ v.iov_base, WCTL_CHUNK };
		n = recvmsg(fd, &m, MSG_DONTWAIT);
		if (n == 0)
			return ZG_ERR_IO; /* every copy of the worker end is closed */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return ZG_ERR_IO;
			if ((r = wait_fd(fd, POLLIN, deadline)) != 0)
				return r;
			continue;
		}
		if ((size_t)n < WCTL_HDR || (m.msg_flags & MSG_TRUNC))
			return ZG_ERR_MALFORMED;
		if (be32_get(hdr) != seq)
			continue; /* the answer to an earlier call */
		dlen = (size_t)n - WCTL_HDR;
		if (be32_get(hdr + 5) > WCTL_REPLY_MAX)
			return ZG_ERR_TOO_LARGE; /* its other records have a stale seq next time */
		if (status < 0) {
			status = hdr[4];
			total = be32_get(hdr + 5);
		} else if (hdr[4] != status || be32_get(hdr + 5) != total)
			return ZG_ERR_MALFORMED;
		if (dlen > total - got)
			return ZG_ERR_MALFORMED;
		if (dlen > 0) {
			v.iov_len = dlen;
			if (evbuffer_commit_space(reply, &v, 1) != 0)
				return ZG_ERR_NOMEM;
			got += dlen;
		}
		if (got == total) {
			*pstatus = status;
			return 0;
		}
	}
}

/* Checks the arguments, empties reply, drops stale records and sends the
 * request; *pseq is its sequence number. */
static int call_send(int fd, uint8_t op, const void *req, size_t reqlen, uint64_t deadline,
		     struct evbuffer *reply, int *pstatus, uint32_t *pseq)
{
	static uint32_t next_seq;
	int r;

	if (fd < 0 || reply == NULL || pstatus == NULL || op < 0x21 || op > 0x7e ||
	    (req == NULL && reqlen > 0))
		return ZG_ERR_INVAL;
	if (reqlen > WCTL_REQ_MAX)
		return ZG_ERR_TOO_LARGE;
	evbuffer_drain(reply, evbuffer_get_length(reply));
	if ((r = discard(fd)) != 0)
		return r;
	if (++next_seq == 0) /* 0 is never sent: nothing stale can match it */
		next_seq = 1;
	*pseq = next_seq;
	return send_req(fd, op, *pseq, req, reqlen, deadline);
}

static int call_recv(int fd, uint32_t seq, uint64_t deadline, struct evbuffer *reply,
		     int *pstatus)
{
	int r = recv_reply(fd, seq, deadline, reply, pstatus);

	if (r != 0)
		evbuffer_drain(reply, evbuffer_get_length(reply));
	return r;
}

int wctl_call(int fd, uint8_t op, const void *req, size_t reqlen, unsigned timeout_ms,
	      struct evbuffer *reply, int *pstatus)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	uint32_t seq;
	int r;

	if ((r = call_send(fd, op, req, reqlen, deadline, reply, pstatus, &seq)) != 0)
		return r;
	return call_recv(fd, seq, deadline, reply, pstatus);
}

void wctl_call_all(const int *fds, unsigned n, uint8_t op, const void *req, size_t reqlen,
		   unsigned timeout_ms, struct evbuffer *const *replies, int *statuses,
		   int *results)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	uint32_t seq[WCTL_CALL_ALL_MAX];
	unsigned i;

	for (i = 0; i < n; i++) {
		results[i] = ZG_ERR_INVAL;
		if (i >= WCTL_CALL_ALL_MAX || fds[i] < 0)
			continue;
		results[i] = call_send(fds[i], op, req, reqlen, deadline, replies[i], &statuses[i],
				       &seq[i]);
	}
	/* every worker works on its request meanwhile: reading the replies
	 * one after another costs the slowest worker's time, not the sum */
	for (i = 0; i < n && i < WCTL_CALL_ALL_MAX; i++)
		if (results[i] == 0)
			results[i] = call_recv(fds[i], seq[i], deadline, replies[i], &statuses[i]);
}

/* ------------------------------------------------------------------ */
/* the worker's side                                                  */

struct wctl_server {
	int fd;
	wctl_handler_fn h;
	void *ctx;
	struct event *ev_rd, *ev_wr;
	struct evbuffer *out;   /* the reply's payload not yet sent */
	uint8_t rhdr[WCTL_HDR]; /* every record of the reply starts with it */
	int pending;            /* a reply is being written */
	int first;              /* not one of its records has gone yet */
	int stopped;            /* EOF or a send error: nothing more is read */
	uint64_t served;
	uint8_t req[WCTL_HDR + WCTL_REQ_MAX];
	uint8_t rec[WCTL_HDR + WCTL_CHUNK]; /* the record being sent */
	size_t reclen;                      /* 0: none prepared */
};

static void stop(struct wctl_server *s, const char *why)
{
	if (!s->stopped)
		log_warnx("worker control channel: %s; no more requests are served", why);
	s->stopped = 1;
	s->pending = 0;
	event_del(s->ev_rd);
	event_del(s->ev_wr);
	evbuffer_drain(s->out, evbuffer_get_length(s->out));
}

/* Sends the reply's records until done or the socket is full. */
static void flush(struct wctl_server *s)
{
	while (s->first || evbuffer_get_length(s->out) > 0) {
		if (s->reclen == 0) {
			size_t d = evbuffer_get_length(s->out);

			if (d > WCTL_CHUNK)
				d = WCTL_CHUNK;
			memcpy(s->rec, s->rhdr, WCTL_HDR);
			if (evbuffer_copyout(s->out, s->rec + WCTL_HDR, d) != (ev_ssize_t)d) {
				stop(s, "cannot read the reply buffer");
				return;
			}
			s->reclen = WCTL_HDR + d;
		}
		if (send(s->fd, s->rec, s->reclen, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_del(s->ev_rd);
				event_add(s->ev_wr, NULL);
				return;
			}
			stop(s, errno == EPIPE || errno == ECONNRESET ? "closed by the master"
								      : strerror(errno));
			return;
		}
		evbuffer_drain(s->out, s->reclen - WCTL_HDR);
		s->reclen = 0;
		s->first = 0;
	}
	s->pending = 0;
	s->served++;
	event_del(s->ev_wr);
	event_add(s->ev_rd, NULL);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush(arg);
}

/* Reads one request, has the handler answer it and starts the reply. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct wctl_server *s = arg;
	uint8_t status;
	ssize_t n;
	size_t len;

	(void)what;
	if (s->pending || s->stopped)
		return;
	n = recv(fd, s->req, sizeof(s->req), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			stop(s, strerror(errno));
		return;
	}
	if (n == 0) {
		stop(s, "closed by the master (EOF)");
		return;
	}
	if ((size_t)n < WCTL_HDR) {
		log_warnx("worker control channel: a request of %zd bytes, shorter than its header: dropped",
			  n);
		return;
	}
	len = be32_get(s->req + 5);
	if ((size_t)n > sizeof(s->req) || len != (size_t)n - WCTL_HDR) {
		log_warnx("worker control channel: request '%c' of %zd bytes announces %zu: refused",
			  s->req[0] >= 0x21 && s->req[0] <= 0x7e ? s->req[0] : '?', n, len);
		status = WCTL_ST_BAD_REQ;
	} else {
		int r = s->h(s->ctx, s->req[0], s->req + WCTL_HDR, len, s->out);

		status = r >= 0 && r <= WCTL_ST_USER_MAX ? (uint8_t)r : WCTL_ST_FAILED;
		if (evbuffer_get_length(s->out) > WCTL_REPLY_MAX) {
			log_warnx("worker control channel: the reply to '%c' is %zu bytes, above %u: dropped",
				  s->req[0], evbuffer_get_length(s->out), WCTL_REPLY_MAX);
			status = WCTL_ST_TOO_LARGE;
		}
	}
	if (status >= WCTL_ST_FAILED)
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
	memcpy(s->rhdr, s->req + 1, 4); /* the seq */
	s->rhdr[4] = status;
	be32_put(s->rhdr + 5, (uint32_t)evbuffer_get_length(s->out));
	s->pending = s->first = 1;
	s->reclen = 0;
	flush(s);
}

int wctl_serve_new(struct event_base *base, int fd, wctl_handler_fn h, void *ctx,
		   struct wctl_server **pout)
{
	struct wctl_server *s;

	if (base == NULL || fd < 0 || h == NULL || pout == NULL)
		return ZG_ERR_INVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ZG_ERR_NOMEM;
	s->fd = fd;
	s->h = h;
	s->ctx = ctx;
	s->out = evbuffer_new();
	s->ev_rd = event_new(base, fd, EV_READ | EV_PERSIST, on_read, s);
	s->ev_wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, s);
	if (s->out == NULL || s->ev_rd == NULL || s->ev_wr == NULL ||
	    event_add(s->ev_rd, NULL) != 0) {
		wctl_server_free(s);
		return ZG_ERR_NOMEM;
	}
	*pout = s;
	return 0;
}

void wctl_server_free(struct wctl_server *s)
{
	if (s == NULL)
		return;
	if (s->ev_rd != NULL)
		event_free(s->ev_rd);
	if (s->ev_wr != NULL)
		event_free(s->ev_wr);
	if (s->out != NULL)
		evbuffer_free(s->out);
	free(s);
}

uint64_t wctl_server_served(const struct wctl_server *s)
{
	return s->served;
}
