/*
 * apiclient — the relay's client of zgate-api (issue 20.2): asks the shared
 * address pool for a client's IPv4 address over HTTPS with the relay's own
 * client certificate (CN "relay:<id>"), without ever blocking the event
 * loop.
 *
 * Transport: HTTP/1.1 over TLS 1.3 (wolfSSL, the relay's TLS library) on
 * non-blocking TCP sockets driven by the caller's libevent base. Up to
 * max_conns keep-alive connections are reused; requests wait in a FIFO
 * queue when all are busy. The server name is resolved once per connect
 * (numeric hosts need no resolver; names use getaddrinfo on a libevent
 * evdns base when given one, else the connect fails with a clear error;
 * successive connections take the name's addresses in turn).
 * The server certificate must chain to ca and match the URL's host.
 *
 * Every request has a deadline of timeout_ms from its submission. A
 * transport failure (connect, TLS, reset, malformed answer) or a 503 from
 * the API is retried on a fresh connection after 50, 100, 200 ... ms
 * (capped at 1 s) while the deadline allows; 4xx answers are final. A
 * request whose next try would come after its deadline ends at once with
 * the last failure as its cause; one still waiting at the deadline ends
 * with "timeout after N ms (what it waited for)". An idle keep-alive
 * connection found closed when reused is retried at once, not counted
 * against the backoff.
 *
 * Bounded: at most 4096 requests waiting or in flight; answers of at most
 * 8 KiB of headers and body_max bytes of body (64 KiB unless the
 * configuration says more: a policy document; more is a malformed
 * answer). The answer parser is apiresp.h.
 *
 * One thread (the relay's); no call blocks; callbacks run from the event
 * loop, never from inside the call that submitted the request.
 */
#ifndef ZG_RELAY_APICLIENT_H
#define ZG_RELAY_APICLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evdns_base;
struct apic;
struct apic_req;

struct apic_config {
	const char *url;      /* "https://host[:port][/prefix]"; port default 443 */
	const char *ca;       /* PEM file: the CA that signs zgate-api's certificate */
	const char *cert;     /* PEM file: the relay's client certificate chain */
	const char *key;      /* PEM file: its private key */
	const char *relay_id; /* sent as relay_id; must match the certificate's CN */
	uint32_t timeout_ms;  /* per request, retries included; 0 = 2000 */
	unsigned max_conns;   /* keep-alive connections at most; 0 = 4 */
	/* the largest answer body taken, 0 = 64 KiB (the IPAM answers); at
	 * most APIRESP_BODY_LIMIT (16 MiB). Each connection holds a buffer
	 * of this size. */
	size_t body_max;
	/* the configuration keys' prefix in messages ("policy_api.url: ...");
	 * NULL = "ipam.api" */
	const char *keys;
	/* Optional: called each time apic_state() changes, at the change
	 * (not later, when something samples it), with apic_last_error()
	 * already set for APIC_DOWN. Only to note it (log it): it must not
	 * free the apic or submit or cancel requests. */
	void (*on_state)(void *arg, int state);
	void *on_state_arg;
};

/* The API's state as the relay last saw it. */
enum apic_state {
	APIC_UNKNOWN = 0, /* nothing asked yet */
	APIC_UP,          /* the last request got an answer (any HTTP status but 503) */
	APIC_DOWN,        /* the last request failed: transport, timeout or 503 */
};

#define APIC_CLIENT_ID_MAX 255 /* bytes of a client id, without the NUL */

/* What an allocation or a refresh ended with. */
struct apic_result {
	char client_id[APIC_CLIENT_ID_MAX + 1]; /* the request's */
	int ok;                                 /* 1: addr4 holds the client's address (a refresh: 200) */
	unsigned status;                        /* HTTP status of the last answer; 0 = none (transport) */
	uint8_t addr4[4];                       /* the lease (ok only) */
	int existing;                           /* the API answered how: "existing" */
	/* why not ok, for the log and Proxy-Status details: "connect to
	 * api:8443: Connection refused", "timeout after 2000 ms", "409 ...",
	 * "pool exhausted" ... NUL-terminated */
	char cause[160];
};

typedef void (*apic_alloc_cb)(void *arg, const struct apic_result *r);

#define APIC_ETAG_MAX 128 /* an ETag with its quotes, and the NUL */
#define APIC_PATH_MAX 512 /* apic_get()'s path */

/* What an apic_get() ended with. */
struct apic_get_result {
	int ok;                   /* an answer 200 or 304 came */
	unsigned status;          /* HTTP status of the last answer; 0 = none (transport, timeout) */
	char etag[APIC_ETAG_MAX]; /* the answer's ETag as sent, quotes included; "" none */
	char policy_id[24];       /* its Zgate-Policy-Id header; "" none */
	/* 200: the body (NUL-terminated after body_len bytes), valid during
	 * the callback only; NULL for any other status */
	const char *body;
	size_t body_len;
	char cause[160]; /* why not ok, as apic_result's ("404 no active policy") */
};

typedef void (*apic_get_cb)(void *arg, const struct apic_get_result *r);

struct apic_counters {
	uint64_t requests;  /* HTTP answers received (any status; a retried 503 counts) */
	uint64_t failures;  /* requests given up: callbacks with ok == 0, refreshes not 200 */
	uint64_t retries;   /* attempts after the first */
	uint64_t connects;  /* TCP+TLS connections opened */
	uint64_t refreshes; /* refresh requests answered 200 */
};

/* Reads the PEM files, parses the URL and prepares the TLS context. No
 * connection is made yet. evdns may be NULL (numeric hosts only). Returns
 * 0, or ZG_ERR_CONFIG / ZG_ERR_IO with err naming the field or file and
 * what is wrong ("ipam.api.url: ...", "ipam.api.ca /path: ...": the
 * prefix is cfg->keys). */
int apic_new(struct event_base *base, struct evdns_base *evdns, const struct apic_config *cfg,
	     struct apic **pp, char *err, size_t errlen);

/* Closes every connection; pending requests are dropped without their
 * callback. NULL is fine. May be called from one of a's callbacks: a is
 * then freed when that callback returns (no further callbacks run); the
 * caller must not use a after the call either way. */
void apic_free(struct apic *a);

/* Asks for client_id's address (POST /api/v1/ipam/allocations with
 * client_id, relay_id and, when want4 is not NULL, requested_address).
 * cb(arg, result) runs exactly once, later, unless apic_cancel() comes
 * first; result->client_id is client_id. Returns the request, or NULL
 * when client_id is unusable (empty, longer than APIC_CLIENT_ID_MAX
 * bytes), 4096 requests are pending already, or memory ran out: then cb
 * never runs. The request is a's until its callback has returned: do not
 * keep it past that. */
struct apic_req *apic_allocate(struct apic *a, const char *client_id, const uint8_t *want4,
			       apic_alloc_cb cb, void *arg);

/* GET <prefix><path> (path: "/api/v1/policy"; starts with '/', at most
 * APIC_PATH_MAX printable bytes, no space), with If-None-Match:
 * if_none_match when that is not NULL or "" (fewer than APIC_ETAG_MAX
 * bytes, no control bytes). cb(arg, result) runs exactly once, later,
 * unless apic_cancel() comes first. A 503 or a transport failure is
 * retried as an allocation is; other statuses are final (ok for 200 and
 * 304). A body larger than the configuration's body_max is a malformed
 * answer (retried until the deadline, then cause "answer from h:p: body
 * larger than N bytes"). Returns the request, or NULL when path or
 * if_none_match is unusable, 4096 requests are pending or memory ran out
 * (cb never runs then). The callback rules of apic_allocate(). */
struct apic_req *apic_get(struct apic *a, const char *path, const char *if_none_match,
			  apic_get_cb cb, void *arg);

/* Forgets a pending request: its callback never runs. The request may
 * still complete on the wire (its connection is closed if the request was
 * on it). Fine at any point until the callback runs, also from another
 * request's callback; not from or after its own callback. NULL is fine. */
void apic_cancel(struct apic_req *r);

/* Marks client_id's lease used (PUT .../{client}/refresh with relay_id).
 * Failures are counted; with cb (may be NULL: fire and forget) the result
 * is reported as an allocation's, ok when 200 (addr4 unused): 404 (no
 * lease) and 409 (its address lies outside zgate-api's pool) say that the
 * client's address is no longer its lease. Same queue, deadline and
 * retries as allocations; the callback rules of apic_allocate(). Returns
 * 0, or ZG_ERR_LIMIT when it could not be queued (unusable client_id,
 * queue full, no memory): then cb never runs. */
int apic_refresh(struct apic *a, const char *client_id, apic_alloc_cb cb, void *arg);

/* Asks only whether zgate-api serves (GET <prefix>/ready: 200 when its
 * database answers, 503 when not), fire and forget, to learn its state
 * when nothing else asks: a relay whose last request failed finds out
 * that the API is back without waiting for a client. Same queue,
 * deadline and retries; counted in requests and failures like the
 * others. Returns 0, or ZG_ERR_LIMIT when it could not be queued. */
int apic_probe(struct apic *a);

enum apic_state apic_state(const struct apic *a);
/* Milliseconds (monotonic) since the state last changed; 0 if UNKNOWN. */
uint64_t apic_state_age_ms(const struct apic *a);
/* The last failure's cause ("" when none). */
const char *apic_last_error(const struct apic *a);
void apic_counters(const struct apic *a, struct apic_counters *out);
/* Requests waiting or in flight. */
size_t apic_pending(const struct apic *a);

#endif /* ZG_RELAY_APICLIENT_H */
