/*
 * zg_err.h — the one error enum of the project.
 *
 * Every function that can fail returns 0 on success or a negative ZG_ERR_*
 * value. zg_strerror() names an error for logs; it never returns NULL.
 */
#ifndef ZG_ERR_H
#define ZG_ERR_H

#include <stddef.h>

enum zg_err {
	ZG_OK = 0,
	ZG_ERR_INVAL = -1,       /* bad argument from the caller (a bug, not the peer) */
	ZG_ERR_NOMEM = -2,       /* allocation failed or a caller buffer is too small */
	ZG_ERR_BUFSHORT = -3,    /* output buffer too small for the encoding */
	ZG_ERR_TRUNCATED = -4,   /* input ended inside an element; more bytes may complete it */
	ZG_ERR_MALFORMED = -5,   /* input violates the wire format */
	ZG_ERR_TOO_LARGE = -6,   /* a length from the wire exceeds our configured bound */
	ZG_ERR_RANGE = -7,       /* a value is outside what the format can carry */
	ZG_ERR_ORDER = -8,       /* ROUTE_ADVERTISEMENT ranges out of order or overlapping */
	ZG_ERR_VERSION = -9,     /* IP version other than 4 or 6 */
	ZG_ERR_PREFIX = -10,     /* prefix length out of bounds or host bits set */
	ZG_ERR_REQUEST_ID = -11, /* ADDRESS_REQUEST with Request ID 0 */
	ZG_ERR_EMPTY = -12,      /* a list that must have at least one entry was empty */
	ZG_ERR_STATE = -13,      /* call not valid in the object's current state */
	ZG_ERR_IO = -14,         /* a system call failed; errno tells more */
	ZG_ERR_CONFIG = -15,     /* configuration rejected */
	ZG_ERR_LIMIT = -16,      /* a configured limit was hit */
	ZG_ERR_NOTFOUND = -17,   /* lookup found nothing */
	ZG_ERR_TIMEOUT = -18,    /* a deadline passed before the peer answered */
	ZG_ERR_LAST = -19        /* one past the last code; keep last */
};

/* Returns a static, human-readable name for err (e.g. "malformed input").
 * Unknown values give "unknown error". Never NULL. */
const char *zg_strerror(int err);

/* Formats a message into err (errlen bytes, may be 0/NULL: nothing is
 * written). A message cut to fit is still written: it stays useful. */
void zg_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* ZG_ERR_H */
