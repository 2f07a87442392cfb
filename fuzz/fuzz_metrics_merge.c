/* metrics_merge: the input, cut at NUL bytes, is up to 4 workers'
 * expositions. Whatever they hold, the merge returns 0 or one of its
 * input errors with a message naming a text and a line, and leaves the
 * output empty on error. When it succeeds, every text alone merges too,
 * and the merge is canonical: merging its output again gives it back byte
 * for byte (for one text always; for several, unless a sum outgrew what a
 * value or a line may be). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "relay/metrics_merge.h"
#include "zg_err.h"

#define FUZZ_MAX 65536
#define TEXTS 4

/* The merge of n texts into a fresh buffer; *pr its result. */
static struct evbuffer *run(const struct metrics_text *t, size_t n, int *pr, char *err,
			    size_t errlen)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		abort();
	err[0] = '\0';
	*pr = metrics_merge(b, t, n, err, errlen);
	if (*pr != 0 && *pr != ZG_ERR_MALFORMED && *pr != ZG_ERR_TOO_LARGE &&
	    *pr != ZG_ERR_LIMIT)
		abort();
	if (*pr != 0 && (evbuffer_get_length(b) != 0 || strncmp(err, "text ", 5) != 0))
		abort();
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics_text t[TEXTS], again;
	struct evbuffer *b, *b2;
	const char *p = (const char *)data, *end = p + size, *z;
	char err[256];
	size_t n = 0, i, len;
	int r, r2;

	if (size > FUZZ_MAX)
		return 0;
	while (n < TEXTS) {
		z = memchr(p, '\0', (size_t)(end - p));
		t[n].s = p;
		t[n].len = (size_t)((z != NULL ? z : end) - p);
		n++;
		if (z == NULL)
			break;
		p = z + 1;
	}

	b = run(t, n, &r, err, sizeof(err));
	if (r == 0) {
		for (i = 0; i < n; i++) {
			b2 = run(&t[i], 1, &r2, err, sizeof(err));
			if (r2 != 0)
				abort();
			evbuffer_free(b2);
		}
		len = evbuffer_get_length(b);
		again.s = (const char *)evbuffer_pullup(b, -1);
		again.len = len;
		if (again.s == NULL && len != 0)
			abort();
		b2 = run(&again, 1, &r2, err, sizeof(err));
		if (r2 == 0) {
			if (evbuffer_get_length(b2) != len ||
			    (len != 0 && memcmp(evbuffer_pullup(b2, -1), again.s, len) != 0))
				abort();
		} else if (n == 1 || (r2 != ZG_ERR_TOO_LARGE && strstr(err, "not a decimal") == NULL)) {
			abort();
		}
		evbuffer_free(b2);
	}
	evbuffer_free(b);
	return 0;
}
