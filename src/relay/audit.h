/*
 * audit.h — the relay's audit trail: one JSON object per line, separate
 * from operational logs (stdout in production, any writer in tests).
 *
 * Every line has "ts" (RFC 3339 UTC with milliseconds) and "event", one of
 * relay_start, relay_stop, session_open, session_close, flow_allow,
 * flow_deny, flow_close, flow_deny_suppressed, policy_reload, tls_reload,
 * limit_hit, cert_rejected, handshake_failed (refused before a client
 * certificate), admin, audit_dropped, dns_allow, dns_deny, connector_open,
 * connector_close. Lines about a session (its open and
 * close, its flows, its limits) carry "session_id": 16 hex digits, unique
 * per tunnel. Strings from peers (client IDs come from certificates) are
 * escaped; keys and payload never appear.
 *
 * Lines never stall the data path: each is built whole and appended to a
 * buffer of a fixed size; audit_drain() hands the buffer to the writer,
 * which takes what it can without blocking. The owner calls it outside the
 * packet path (the wake callback says when there is something to write).
 * Only per-flow and per-query lines (flow_*, dns_*) wait for that batch:
 * every other line (sessions, refusals, limits, reloads) is drained as it
 * is made, so it is in the trail before the relay answers the peer.
 * A line that does not fit is dropped and counted; when space returns, an
 * audit_dropped line (count, since) comes first, so the trail says where
 * it has a gap. Lines never interleave.
 *
 * Deny floods are summarised: per client, at most deny_per_s flow_deny
 * lines in any one-second window; the rest are counted and reported in one
 * flow_deny_suppressed line when the window ends (at that client's next
 * deny, or at audit_flush()). Under those per-client windows a global one
 * caps the flow_deny lines of all clients together (20 clients' worth by
 * default): one client's flood only uses up its own allowance, and many
 * clients at once still cannot flood the trail; what the global window
 * holds back is counted in each client's summary.
 */
#ifndef ZG_RELAY_AUDIT_H
#define ZG_RELAY_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct audit;

/* Milliseconds since the Unix epoch. */
typedef uint64_t (*audit_clock_fn)(void *ctx);

/* Takes up to len bytes and must not block: returns how many it took
 * (0: none now, try again later) or -1 (a lasting error, errno set). */
typedef ssize_t (*audit_write_fn)(void *ctx, const void *buf, size_t len);

/* The buffer went from empty to holding lines: arrange an audit_drain()
 * call outside the packet path (e.g. activate an event). */
typedef void (*audit_wake_fn)(void *ctx);

/* How long the relay lets lines gather after a wake before it drains
 * them: one write(2) for the lines of a burst of short connections rather
 * than one per loop turn, at a delay no reader of the trail notices. */
#define AUDIT_FLUSH_DELAY_MS 2

#define AUDIT_BUFFER_DEFAULT (1024u * 1024u)
#define AUDIT_BUFFER_MIN 4096u  /* two of the longest lines */
#define AUDIT_DROP_LOG_MS 10000 /* "lines dropped" log line at most this often */

struct audit_config {
	audit_write_fn write; /* NULL: lines are counted, never written */
	void *write_ctx;
	audit_wake_fn wake; /* NULL: audit_drain() after every line */
	void *wake_ctx;
	audit_clock_fn clock; /* NULL: the real clock */
	void *clock_ctx;
	uint32_t deny_per_s; /* 0: deny lines are not summarised */
	size_t buffer_bytes; /* 0: AUDIT_BUFFER_DEFAULT; at least AUDIT_BUFFER_MIN */
};

/* Returns 0 and *pa, ZG_ERR_NOMEM, or ZG_ERR_INVAL (buffer too small).
 * The writer's context is not closed by audit_free(). */
int audit_new(const struct audit_config *cfg, struct audit **pa);

/* Hands buffered lines to the writer until it takes no more. Returns 0
 * (buffer empty), 1 (lines wait: call again when the output can take
 * more) or ZG_ERR_IO (the writer failed; what waits stays buffered and new
 * lines are dropped once it is full). Never blocks unless the writer does. */
int audit_drain(struct audit *a);

/* Takes one line made elsewhere (a worker's, issue 21: the workers'
 * trails leave through the master's): len bytes ending in its only '\n',
 * at most 2048. Buffered, dropped and counted like the relay's own
 * per-flow lines (written at the owner's wake, or when the caller drains
 * after its batch). Returns 0 or ZG_ERR_INVAL (not
 * one line, or too long: nothing is kept). */
int audit_raw(struct audit *a, const char *line, size_t len);

/* Bytes waiting in the buffer. */
size_t audit_pending(const struct audit *a);

/*
 * The relay's output: stdout made safe to write without blocking.
 * A socket is written with MSG_DONTWAIT (its flags are not touched). A
 * pipe or FIFO is reopened through /proc/self/fd as a private non-blocking
 * description (so a stderr that shares the pipe, 2>&1, stays blocking);
 * where that is refused, O_NONBLOCK is set on the fd itself and restored
 * by audit_out_close(). A terminal and a regular file are written as they
 * are: O_NONBLOCK on a terminal would also change it for the shell that
 * shares it, and a file never waits for a reader.
 */
struct audit_out {
	int fd;         /* what to write (and poll for POLLOUT) */
	int own_fd;     /* fd was opened here: closed by audit_out_close() */
	int restore_fl; /* -1, or the flags to put back on the original fd */
	int orig_fd;
	int sock;         /* write with send(MSG_DONTWAIT) */
	int can_wait;     /* a writer that can be full: wait with POLLOUT */
	const char *mode; /* "socket", "pipe", "pipe (shared O_NONBLOCK)",
			   * "terminal (blocking)", "file" */
};

/* Prepares fd (normally STDOUT_FILENO) as above. Returns 0 or ZG_ERR_IO. */
int audit_out_open(int fd, struct audit_out *o);
/* An audit_write_fn for an audit_out. A pipe whose reader is gone gives
 * -1 (EPIPE) only if the caller ignores SIGPIPE, as the relay does. */
ssize_t audit_out_write(void *ctx, const void *buf, size_t len);
void audit_out_close(struct audit_out *o);

/* Sets the global cap on flow_deny lines per second (all clients
 * together); 0 = none. audit_new() sets 20 * deny_per_s. */
void audit_set_deny_global(struct audit *a, uint32_t per_s);

/* Flushes pending summaries and frees. NULL is ignored. */
void audit_free(struct audit *a);

/* Emits the flow_deny_suppressed lines of every ended window (all of them
 * when force is 1, e.g. at shutdown). */
void audit_flush(struct audit *a, int force);

struct audit_flow {
	uint64_t session_id; /* 0: not written */
	const char *client;
	const char *proto; /* "tcp", "udp", "icmp", ... */
	const char *src, *dst;
	uint16_t sport, dport;
	const char *rule;                           /* NULL: not written */
	const char *name;                           /* the DNS name the destination was learned from
			       (a name rule matched); NULL: not written */
	const char *reason;                         /* NULL: not written */
	uint64_t bytes_up, bytes_down, duration_ms; /* flow_close only */
};

/* A query to the DNS service (issue 19): dns_allow (forwarded, or
 * answered from the cache) or dns_deny (answered here). dns_deny lines
 * share the client's deny window with flow_deny (summarised the same way,
 * in flow_deny_suppressed). */
struct audit_dns_query {
	uint64_t session_id;
	const char *client;
	const char *name;   /* canonical; "" for a name no policy can name */
	const char *qtype;  /* "A", "AAAA", "TYPE65", ... */
	const char *rule;   /* the deciding rule, or "default"/"invalid" */
	const char *reason; /* dns_deny: "policy", "rebinding", ...; else NULL */
	const char *answer; /* the rcode the client got ("NXDOMAIN", ...); NULL: not written */
};
void audit_dns(struct audit *a, int allow, const struct audit_dns_query *q);

/* A link between an agent's tunnel and an on-prem connector's (issue 22,
 * connlink.h): connector_open on its first packet (client, connector,
 * rule, session_id = the agent's tunnel, connector_session_id), and
 * connector_close with bytes_up (agent → connector), bytes_down,
 * duration_ms and reason (idle_timeout, client_closed, connector_closed,
 * policy, replaced, relay_shutdown). Never anything of the inner
 * session's content. */
struct audit_connector {
	uint64_t session_id, connector_session_id;
	const char *client, *connector, *rule;
	uint64_t bytes_up, bytes_down, duration_ms; /* close only */
	const char *reason;                         /* close only */
};
void audit_connector_open(struct audit *a, const struct audit_connector *c);
void audit_connector_close(struct audit *a, const struct audit_connector *c);

/* The relay is up: its version, where it listens (admin_listen NULL or
 * "": not written) and its pid. */
void audit_relay_start(struct audit *a, const char *version, const char *listen,
		       const char *ops_listen, const char *admin_listen, long pid);
/* The relay stops: why ("sigterm", "sigint", "error", ...) and how long it ran. */
void audit_relay_stop(struct audit *a, const char *reason, uint64_t uptime_ms);

/* session_id: the tunnel's unique id (0: not written). cert_serial,
 * cert_sha256: the client certificate's serial number and SHA-256
 * fingerprint in hex (NULL or "": not written). */
void audit_session_open(struct audit *a, uint64_t session_id, const char *client,
			const char *vip, const char *peer, const char *cert_serial,
			const char *cert_sha256);
void audit_session_close(struct audit *a, uint64_t session_id, const char *client,
			 const char *vip, const char *peer, uint64_t duration_ms,
			 uint64_t bytes_up, uint64_t bytes_down, const char *reason);
void audit_flow_allow(struct audit *a, const struct audit_flow *f);
void audit_flow_deny(struct audit *a, const struct audit_flow *f);
void audit_flow_close(struct audit *a, const struct audit_flow *f);
void audit_policy_reload(struct audit *a, int ok, const char *file, const char *message);
/* As audit_policy_reload(), saying where the policy came from: source
 * "file" (written by the operator) or "api" (fetched from zgate-api by
 * policy_api), and for "api" the zgate-api version in the file
 * ("policy_version"; 0: not written, e.g. the deny-all start). */
void audit_policy_reload_src(struct audit *a, int ok, const char *file, const char *message,
			     const char *source, uint64_t version);
/* A TLS reload (issue 18.1): result ok/error, what started it ("sighup",
 * "file"), and for an error the reason, naming the file (NULL: none). */
void audit_tls_reload(struct audit *a, int ok, const char *trigger, const char *reason);
/* session_id 0: no session (yet) */
void audit_limit_hit(struct audit *a, const char *limit, const char *client,
		     uint64_t session_id);
void audit_cert_rejected(struct audit *a, const char *reason, const char *peer);
void audit_handshake_failed(struct audit *a, const char *reason, const char *peer);
/* An admin request was served (ops endpoint): action ("list_sessions",
 * "close_session"), the client acted on (NULL: not written), the caller's
 * address and the HTTP status answered. */
void audit_admin(struct audit *a, const char *action, const char *client, const char *caller,
		 int status);

/* Lines emitted (buffered for writing), flow_deny lines suppressed, and
 * lines dropped because the buffer was full, so far (for /metrics). */
uint64_t audit_lines(const struct audit *a);
uint64_t audit_suppressed(const struct audit *a);
uint64_t audit_dropped(const struct audit *a);

#endif /* ZG_RELAY_AUDIT_H */
