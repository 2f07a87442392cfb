/*
 * wctl.h — the control channel between zgate-relay's master and each of
 * its worker processes (issue 21, target 3: `workers: N`; wpool.h forks
 * the workers, src/masque/steer.h has the design). The master serves
 * /metrics, /ready and the admin API on one port, so it asks every worker
 * for its exposition text, its session list, or to close a client's
 * session. master.c is the caller, main.c (a worker) the server.
 *
 * Who calls what:
 *  - The master opens one pair per worker with wctl_pair_open() before
 *    wpool_start(), and keeps both ends for the pool's lifetime: a worker
 *    that restarts inherits the same worker end again.
 *  - The worker (in run()) closes every channel end but its own worker end
 *    (fds[1]), then wctl_serve_new() on its own event base. Requests are
 *    answered one at a time by the handler, from the worker's loop.
 *  - The master asks with wctl_call(): synchronous, bounded by a deadline
 *    (the master's loop waits meanwhile, so keep it short: a worker's loop
 *    answers within one pass). A call that timed out has still sent its
 *    request: the worker may carry it out later (or, if it died, its
 *    restarted successor may), and its answer is dropped. An operation
 *    with an effect (closing a session) must therefore be harmless to
 *    repeat or to happen late.
 *
 * Channel: a SOCK_SEQPACKET socketpair (not a byte stream): every record
 * is delivered whole or not at all. That is what lets the master forget a
 * reply it stopped waiting for: a reply that arrives after its call timed
 * out, or the first records of a reply a worker left half-written when it
 * died, are whole records with an old sequence number, which the next
 * call drops one by one; on a byte stream the next call could not tell
 * where such leftovers end and would read the middle of a payload as a
 * header.
 *
 * Framing (integers big-endian):
 *   request, one record: op (1, a printable ASCII letter chosen by the
 *     caller) | seq (4) | len (4) | payload (len <= WCTL_REQ_MAX bytes);
 *     len must be the record's length less the 9 header bytes.
 *   reply, one or more records: seq (4, the request's) | status (1) |
 *     len (4, the whole reply's payload length, <= WCTL_REPLY_MAX) | data.
 *     Every record of one reply repeats the same header; their data, in
 *     order, make the payload (at most WCTL_CHUNK bytes each; a reply of
 *     length 0 is one record without data).
 *   status: 0 ok; 1 .. WCTL_ST_USER_MAX the handler's own codes; the
 *     channel's own codes are WCTL_ST_* above that.
 *
 * Memory: the worker holds one request (WCTL_REQ_MAX) and one reply (at
 * most WCTL_REPLY_MAX, as the handler built it) at a time; it reads the
 * next request only once the reply is written, so a master that stops
 * reading leaves requests waiting in the kernel (bounded by its socket
 * buffer), not in the worker. The master holds the one reply it waits
 * for. A worker whose master end is closed (EOF) logs it once and stops
 * reading; it does not exit because of it.
 *
 * A worker that dies is not seen as EOF by the master (the master keeps
 * the worker end open for the restart): a call in progress ends at its
 * deadline with ZG_ERR_TIMEOUT; the master should not ask a worker that
 * is not running (wpool_pid() == 0).
 */
#ifndef ZG_RELAY_WCTL_H
#define ZG_RELAY_WCTL_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct event_base;
struct wctl_server;

#define WCTL_HDR 9                         /* op|seq|len or seq|status|len */
#define WCTL_REQ_MAX 4096                  /* a request's payload */
#define WCTL_REPLY_MAX (16u * 1024 * 1024) /* a reply's payload */
#define WCTL_CHUNK (64u * 1024)            /* data in one reply record */
#define WCTL_SOCKBUF (1024 * 1024)         /* SO_SNDBUF asked for each end */

/* Status codes of the channel itself, above every handler code. */
#define WCTL_ST_OK 0
#define WCTL_ST_USER_MAX 0xef  /* a handler returns 0 .. this */
#define WCTL_ST_FAILED 0xfd    /* the handler returned something else (< 0) */
#define WCTL_ST_TOO_LARGE 0xfe /* the handler's reply exceeded WCTL_REPLY_MAX: dropped */
#define WCTL_ST_BAD_REQ 0xff   /* the request was malformed or too long */

/* The worker's handler: answers request op (len bytes at req) by appending
 * to reply (empty on entry, at most WCTL_REPLY_MAX bytes, or the worker
 * answers WCTL_ST_TOO_LARGE instead). Returns the status: 0 or one of its
 * own codes 1 .. WCTL_ST_USER_MAX (an unknown op, a bad argument); any
 * other value is sent as WCTL_ST_FAILED. */
typedef int (*wctl_handler_fn)(void *ctx, uint8_t op, const uint8_t *req, size_t len,
			       struct evbuffer *reply);

/* Opens one channel: fds[0] the master's end, fds[1] the worker's; both
 * non-blocking and close-on-exec. Returns 0; ZG_ERR_IO when socketpair(2)
 * fails (err says why, errno kept; nothing is left open). err may be
 * NULL. */
int wctl_pair_open(int fds[2], char *err, size_t errlen);

/* In the master: sends request op (a printable ASCII character, 0x21 ..
 * 0x7e) with reqlen bytes of req to the worker at the other end of fd
 * (the master end) and waits at most timeout_ms for its reply. Records
 * already waiting are dropped first (they answer earlier calls); so are
 * records of other sequence numbers that come meanwhile. reply's content
 * is replaced by the reply's payload and *pstatus set to its status.
 * Returns 0 (whatever the status); ZG_ERR_INVAL (bad op, fd, reply or
 * pstatus); ZG_ERR_TOO_LARGE when reqlen > WCTL_REQ_MAX (nothing sent) or
 * the reply announces more than WCTL_REPLY_MAX; ZG_ERR_TIMEOUT when the
 * deadline passes (the reply, if it comes, is dropped by a later call);
 * ZG_ERR_IO when the worker end is closed everywhere (EOF, EPIPE) or a
 * system call fails (errno kept); ZG_ERR_MALFORMED when a record of the
 * reply breaks the framing. On any error reply is left empty. Sequence
 * numbers come from one counter of the process, so one master may use
 * any number of channels. */
int wctl_call(int fd, uint8_t op, const void *req, size_t reqlen, unsigned timeout_ms,
	      struct evbuffer *reply, int *pstatus);

/* wctl_call() to n channels at once (n <= WCTL_CALL_ALL_MAX), with one
 * deadline for all: every request is sent first, then the replies are
 * read, so n workers that each take t cost about t, not n * t, and n hung
 * ones cost timeout_ms, not n times it. fds[i] < 0 is skipped (a worker
 * not running). results[i] is what wctl_call() would return for fds[i]
 * (ZG_ERR_INVAL for a skipped one); replies[i] and statuses[i] as its
 * reply and *pstatus. */
#define WCTL_CALL_ALL_MAX 256
void wctl_call_all(const int *fds, unsigned n, uint8_t op, const void *req, size_t reqlen,
		   unsigned timeout_ms, struct evbuffer *const *replies, int *statuses,
		   int *results);

/* In the worker: serves requests from fd (the worker end) on base with h,
 * called with ctx. fd stays the caller's (not closed by the server).
 * Returns 0 with *pout; ZG_ERR_INVAL or ZG_ERR_NOMEM. */
int wctl_serve_new(struct event_base *base, int fd, wctl_handler_fn h, void *ctx,
		   struct wctl_server **pout);

/* Stops serving and frees the server (a reply still being written is
 * dropped). NULL is a no-op. */
void wctl_server_free(struct wctl_server *s);

/* Requests answered so far (tests, debugging). */
uint64_t wctl_server_served(const struct wctl_server *s);

#endif /* ZG_RELAY_WCTL_H */
