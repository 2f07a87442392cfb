/*
 * policy_routes.h — zgate-api's policy endpoints (README "Policies"): the
 * relays' access policy kept as immutable versions in PostgreSQL
 * (api_db_policy_*), checked with the relay's own parser
 * (policy_load_buf, src/relay/policy.c) before it is stored, and served
 * raw to relays with an ETag.
 *
 * server.c decides the route, the method and the credentials, and reads
 * the body; this module answers: api_policy_answer() returns a
 * libmicrohttpd response with its status code and headers.
 *
 * Memory is bounded: a request whose body is larger than API_BODY_MAX
 * (only POST /api/v1/policies and .../validate may be, up to
 * API_POLICY_BODY_MAX) and every answer that carries a document as JSON
 * (GET /api/v1/policies/{id}) hold one of API_POLICY_BIG_SLOTS slots,
 * until the request is done or the answer's buffer freed; with none free
 * the request is refused with 503 and Retry-After. The active document
 * that relays fetch is kept once, shared by every answer that sends it
 * (reference counted), so a thousand relays fetching a new 1 MiB version
 * at once cost 1 MiB, not 1 GiB.
 */
#ifndef ZG_API_POLICY_ROUTES_H
#define ZG_API_POLICY_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "api/api_db.h"
#include "api/api_json.h"

/* Large bodies and answers at once: each may cost up to ~6 MiB of body,
 * 1 MiB decoded and the parser's tree, so about 40 MiB in all at worst. */
#define API_POLICY_BIG_SLOTS 4

struct api_policies;
struct MHD_Response;

/* Creates the endpoints' state over db (the caller's; it must outlive
 * it). Returns 0 and *pp, or ZG_ERR_NOMEM. */
int api_policies_new(struct api_db *db, struct api_policies **pp);

/* Frees p; every response it made must have been destroyed (after
 * MHD_stop_daemon). */
void api_policies_free(struct api_policies *p);

/* Takes one of the API_POLICY_BIG_SLOTS slots: 1, or 0 when none is free.
 * api_policies_big_give() gives it back. */
int api_policies_big_take(struct api_policies *p);
void api_policies_big_give(struct api_policies *p);

/* The active version as this replica last saw it (zgate_api_policy_active_id):
 * 0 none, -1 not known yet. */
int64_t api_policies_active_id(struct api_policies *p);

/* Reads the active version from the database for the gauge above (at
 * start and on each sweep: another replica may have activated one). */
void api_policies_refresh(struct api_policies *p);

/* One request to a policy endpoint, its credentials and method checked. */
struct api_policy_call {
	enum api_route_kind kind; /* API_R_POLICIES ... API_R_POLICY_ACTIVATIONS */
	int post;                 /* 1: POST, 0: GET or HEAD */
	int64_t id;               /* API_R_POLICY_ONE, API_R_POLICY_ACTIVATE */
	const char *by;           /* who: "admin:NAME", "token" or "relay:ID" */
	const char *body;         /* POST: the body read, len bytes */
	size_t len;
	const char *limit, *before; /* query arguments; NULL: absent */
	const char *if_none_match;  /* the header; NULL: absent */
};

/* The answer to c: a response with Content-Type and Cache-Control: no-store
 * (and ETag, Zgate-Policy-Id, Retry-After where they belong), its status
 * in *pcode. Logs each version created and each activation. Returns NULL
 * only when out of memory. */
struct MHD_Response *api_policy_answer(struct api_policies *p, const struct api_policy_call *c,
				       unsigned *pcode);

#endif /* ZG_API_POLICY_ROUTES_H */
