/*
 * audit.h — the relay's audit trail: one JSON object per line, separate
 * from operational logs (stdout in production, any FILE in tests).
 *
 * Every line has "ts" (RFC 3339 UTC with milliseconds) and "event", one of
 * session_open, session_close, flow_allow, flow_deny, flow_close,
 * flow_deny_suppressed, policy_reload, limit_hit, cert_rejected,
 * handshake_failed (refused before a client certificate), admin. Strings
 * from peers (client IDs come from certificates) are escaped; keys and
 * payload never appear. Each line is written with one fwrite and flushed,
 * so lines never interleave or sit in a buffer.
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

#include <stdint.h>
#include <stdio.h>

struct audit;

/* Milliseconds since the Unix epoch. */
typedef uint64_t (*audit_clock_fn)(void *ctx);

/* out: where lines go (not closed by audit_free). clock NULL = the real
 * clock. deny_per_s 0 = no summarising. Returns 0 and *pa or ZG_ERR_NOMEM. */
int audit_new(FILE *out, audit_clock_fn clock, void *ctx, uint32_t deny_per_s,
	      struct audit **pa);

/* Sets the global cap on flow_deny lines per second (all clients
 * together); 0 = none. audit_new() sets 20 * deny_per_s. */
void audit_set_deny_global(struct audit *a, uint32_t per_s);

/* Flushes pending summaries and frees. NULL is ignored. */
void audit_free(struct audit *a);

/* Emits the flow_deny_suppressed lines of every ended window (all of them
 * when force is 1, e.g. at shutdown). */
void audit_flush(struct audit *a, int force);

struct audit_flow {
	const char *client;
	const char *proto; /* "tcp", "udp", "icmp", ... */
	const char *src, *dst;
	uint16_t sport, dport;
	const char *rule;   /* NULL: not written */
	const char *reason; /* NULL: not written */
	uint64_t bytes_up, bytes_down, duration_ms; /* flow_close only */
};

/* cert_serial, cert_sha256: the client certificate's serial number and
 * SHA-256 fingerprint in hex (NULL or "": not written). */
void audit_session_open(struct audit *a, const char *client, const char *vip,
			const char *peer, const char *cert_serial, const char *cert_sha256);
void audit_session_close(struct audit *a, const char *client, const char *vip,
			 const char *peer, uint64_t duration_ms, uint64_t bytes_up,
			 uint64_t bytes_down, const char *reason);
void audit_flow_allow(struct audit *a, const struct audit_flow *f);
void audit_flow_deny(struct audit *a, const struct audit_flow *f);
void audit_flow_close(struct audit *a, const struct audit_flow *f);
void audit_policy_reload(struct audit *a, int ok, const char *file, const char *message);
/* A TLS reload (issue 18.1): result ok/error, what started it ("sighup",
 * "file"), and for an error the reason, naming the file (NULL: none). */
void audit_tls_reload(struct audit *a, int ok, const char *trigger, const char *reason);
void audit_limit_hit(struct audit *a, const char *limit, const char *client);
void audit_cert_rejected(struct audit *a, const char *reason, const char *peer);
void audit_handshake_failed(struct audit *a, const char *reason, const char *peer);
/* An admin request was served (ops endpoint): action ("list_sessions",
 * "close_session"), the client acted on (NULL: not written), the caller's
 * address and the HTTP status answered. */
void audit_admin(struct audit *a, const char *action, const char *client, const char *caller,
		 int status);

/* Lines written and flow_deny lines suppressed so far (for /metrics). */
uint64_t audit_lines(const struct audit *a);
uint64_t audit_suppressed(const struct audit *a);

#endif /* ZG_RELAY_AUDIT_H */
