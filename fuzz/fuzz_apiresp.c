/* apiresp: the relay's parser of zgate-api's answers (src/relay/apiresp.c)
 * on arbitrary bytes. Properties, not only "no crash": the input fed whole
 * and fed one byte at a time gives the same verdict, status, body and
 * Connection: close; a complete answer consumed no more than it was given;
 * the body never exceeds APIRESP_BODY_MAX; a string found in a JSON body
 * is NUL-terminated inside its buffer; a lease read from the body has an
 * address that reads back the same. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/apiresp.h"
#include "zg_err.h"

static struct apiresp *whole, *bytes; /* made once, reused */

/* Feeds all of d; then, when more is needed, the end of the stream. */
static int feed(struct apiresp *p, const uint8_t *d, size_t n, int bytewise)
{
	size_t used = 0, total = 0;
	int r = 0;

	apiresp_init(p, 0);
	if (!bytewise) {
		r = apiresp_feed(p, d, n, &used);
		total = used;
	} else
		for (size_t i = 0; i < n && r == 0; i++) {
			r = apiresp_feed(p, d + i, 1, &used);
			total += used;
		}
	if (total > n)
		abort();
	if (r == 0)
		r = apiresp_eof(p);
	if (p->body_len > APIRESP_BODY_MAX || p->body[p->body_len] != '\0')
		abort();
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rw, rb;
	char out[64], a[INET_ADDRSTRLEN];
	uint8_t a4[4];
	struct in_addr in;
	int ex;

	if (size > 2 * APIRESP_BODY_MAX)
		return 0;
	if (whole == NULL && ((whole = apiresp_new(APIRESP_BODY_MAX)) == NULL ||
			      (bytes = apiresp_new(APIRESP_BODY_MAX)) == NULL))
		abort();
	rw = feed(whole, data, size, 0);
	rb = feed(bytes, data, size, 1);
	if (rw != rb)
		abort();
	if (rw == 1 &&
	    (whole->status != bytes->status || whole->close != bytes->close ||
	     whole->body_len != bytes->body_len ||
	     memcmp(whole->body, bytes->body, whole->body_len) != 0 ||
	     strcmp(whole->etag, bytes->etag) != 0 || strcmp(whole->policy_id, bytes->policy_id) != 0))
		abort();
	if (rw == 1 && (whole->status < 200 || whole->status > 599))
		abort();
	/* the JSON readers on the body, and on the raw input */
	for (int k = 0; k < 2; k++) {
		const char *j = k == 0 ? whole->body : (const char *)data;
		size_t jl = k == 0 ? whole->body_len : size;
		int r = apiresp_json_str(j, jl, "error", out, sizeof(out));

		if ((r == 0 || r == ZG_ERR_TOO_LARGE) && strnlen(out, sizeof(out)) >= sizeof(out))
			abort();
		if (apiresp_lease(j, jl, a4, &ex, out, sizeof(out)) == 0) {
			if (inet_ntop(AF_INET, a4, a, sizeof(a)) == NULL ||
			    inet_pton(AF_INET, a, &in) != 1 || memcmp(&in, a4, 4) != 0 ||
			    (ex != 0 && ex != 1))
				abort();
		}
	}
	return 0;
}
