/*
 * capsule.h — RFC 9297 capsule framing and HTTP Datagram payloads.
 *
 * A capsule is Type (varint), Length (varint), Value (Length bytes) on an
 * HTTP request stream. The streaming parser accepts the stream in pieces of
 * any size, buffers only the values of capsule types the caller knows (up
 * to a bound fixed at init, checked as soon as the length is read, before
 * any value byte is buffered) and skips every other type — GREASE included —
 * without buffering, whatever length it declares. Types outside the mask
 * (extensions such as DNS_ASSIGN, whose codepoints are large) are parsed
 * when added with capsule_parser_add_type(); the caller hands them to
 * whoever understands them.
 *
 * No I/O, no allocation, no clock: the caller owns every buffer.
 */
#ifndef ZG_CAPSULE_H
#define ZG_CAPSULE_H

#include <stddef.h>
#include <stdint.h>

/* Capsule types: RFC 9297 §3.5 and RFC 9484 §4.7. */
#define CAPSULE_DATAGRAM 0x00
#define CAPSULE_ADDRESS_ASSIGN 0x01
#define CAPSULE_ADDRESS_REQUEST 0x02
#define CAPSULE_ROUTE_ADVERTISEMENT 0x03

/* Extension types a parser can be given besides known_mask. */
#define CAPSULE_EXT_MAX 4

/* Mask of the types a CONNECT-IP endpoint parses (bit t = type t). */
#define CAPSULE_MASK_CONNECT_IP                     \
	((UINT64_C(1) << CAPSULE_DATAGRAM) |        \
	 (UINT64_C(1) << CAPSULE_ADDRESS_ASSIGN) |  \
	 (UINT64_C(1) << CAPSULE_ADDRESS_REQUEST) | \
	 (UINT64_C(1) << CAPSULE_ROUTE_ADVERTISEMENT))

/* Quarter Stream IDs above this are a connection error (RFC 9297 §2.1). */
#define HTTPDG_QSID_MAX ((UINT64_C(1) << 60) - 1)

/* Context ID 0 carries a full IP packet in CONNECT-IP (RFC 9484 §6). */
#define HTTPDG_CONTEXT_IP 0

/* One complete capsule handed to the caller. */
struct capsule {
	uint64_t type;
	const uint8_t *value; /* valid until the next feed() call; see below */
	size_t len;
};

enum capsule_parser_state {
	CAPSULE_ST_TYPE = 0,
	CAPSULE_ST_LEN,
	CAPSULE_ST_VALUE,
	CAPSULE_ST_SKIP,
	CAPSULE_ST_ERROR
};

/* Embed in the stream's state; initialise with capsule_parser_init(). */
struct capsule_parser {
	uint8_t *buf;                  /* caller's buffer for values split across feeds */
	size_t bufsize;                /* largest value accepted for a known type */
	uint64_t known_mask;           /* bit t set: type t (< 64) is parsed, else skipped */
	uint64_t ext[CAPSULE_EXT_MAX]; /* further types parsed (any value) */
	size_t n_ext;
	enum capsule_parser_state state;
	int err;       /* sticky error once state is CAPSULE_ST_ERROR */
	uint8_t vi[8]; /* partial varint of the header */
	size_t vi_have;
	uint64_t type;
	uint64_t len;      /* value length of the current capsule */
	uint64_t done;     /* value bytes buffered (VALUE) or skipped (SKIP) */
	uint64_t n_parsed; /* counters for metrics */
	uint64_t n_skipped;
};

/* Prepares cp. buf/bufsize is where values that arrive in several pieces
 * are assembled; bufsize is also the largest value accepted for a known
 * type (larger ones give ZG_ERR_TOO_LARGE). known_mask selects the types
 * parsed, by bit number; types >= 64 are always skipped. The parser keeps
 * a pointer to buf. buf may be NULL: with bufsize 0 every known capsule
 * with a value is too large; with bufsize > 0 the buffer is lent only when
 * needed (feed() returns CAPSULE_NEED_BUF), so an idle stream holds none. */
void capsule_parser_init(struct capsule_parser *cp, uint8_t *buf,
			 size_t bufsize, uint64_t known_mask);

/* Makes cp parse (rather than skip) capsules of type too, with the same
 * bound as the known ones. Call between init and the first feed. Returns
 * 0, ZG_ERR_RANGE (type above 2^62-1) or ZG_ERR_LIMIT (CAPSULE_EXT_MAX
 * types already added). */
int capsule_parser_add_type(struct capsule_parser *cp, uint64_t type);

/* Consumes input from *pp up to end, advancing *pp.
 * Returns:
 *   CAPSULE_NEED_BUF (2)  a known capsule's value continues past end and
 *      the parser has no buffer: lend one of bufsize bytes with
 *      capsule_parser_set_buf() and call again with the same input.
 *   1  a complete known capsule is in *out, and *pp points just after it
 *      (call again with the rest of the input). out->value points either
 *      into the input (when the value arrived whole in this call) or into
 *      the parser's buffer; it is valid until the next feed() call and as
 *      long as the input it came from.
 *   0  all input was consumed without completing a known capsule.
 *   ZG_ERR_TOO_LARGE  a known capsule declared a value longer than bufsize
 *      (detected as soon as its length is read; nothing was buffered).
 * An error is sticky: every later call returns it without reading. */
int capsule_parser_feed(struct capsule_parser *cp, const uint8_t **pp,
			const uint8_t *end, struct capsule *out);

#define CAPSULE_NEED_BUF 2

/* Lends (buf) or takes back (NULL) the assembly buffer, of at least the
 * bufsize given to init. Returns 0, or ZG_ERR_STATE while part of a value
 * is held in the current buffer (capsule_parser_buffering()). */
int capsule_parser_set_buf(struct capsule_parser *cp, uint8_t *buf);

/* 1 while part of a split value is held in the buffer (it must stay). */
int capsule_parser_buffering(const struct capsule_parser *cp);

/* At the end of the stream: returns 0 when the parser stands between two
 * capsules, ZG_ERR_TRUNCATED when the stream ended inside one (RFC 9297
 * §3.3), or the parser's sticky error. */
int capsule_parser_finish(const struct capsule_parser *cp);

/* Writes a capsule header (type, length) at *pp, advancing it. Returns 0,
 * ZG_ERR_RANGE (a value above 2^62-1) or ZG_ERR_BUFSHORT (nothing
 * written). */
int capsule_encode_header(uint8_t **pp, const uint8_t *end, uint64_t type,
			  uint64_t len);

/* Writes a whole capsule: header then len bytes of value. Same returns as
 * capsule_encode_header(); nothing is written when it does not fit. */
int capsule_encode(uint8_t **pp, const uint8_t *end, uint64_t type,
		   const uint8_t *value, size_t len);

/* Decodes an HTTP Datagram (the QUIC DATAGRAM frame payload):
 * Quarter Stream ID, Context ID, then the payload (the rest). Returns 0,
 * ZG_ERR_MALFORMED when a varint is cut short, or ZG_ERR_RANGE when the
 * Quarter Stream ID exceeds HTTPDG_QSID_MAX (a connection error for the
 * caller, RFC 9297 §2.1). *ppayload points into p. */
int httpdg_decode(const uint8_t *p, size_t len, uint64_t *pqsid, uint64_t *pctx,
		  const uint8_t **ppayload, size_t *pplen);

/* Decodes a DATAGRAM capsule value (Context ID, then payload). Returns 0
 * or ZG_ERR_MALFORMED. *ppayload points into p. */
int httpdg_decode_capsule_value(const uint8_t *p, size_t len, uint64_t *pctx,
				const uint8_t **ppayload, size_t *pplen);

/* Writes the HTTP Datagram prefix (Quarter Stream ID, Context ID) at *pp.
 * Returns 0, ZG_ERR_RANGE (qsid > HTTPDG_QSID_MAX or ctx > 2^62-1) or
 * ZG_ERR_BUFSHORT (nothing written). */
int httpdg_encode_prefix(uint8_t **pp, const uint8_t *end, uint64_t qsid,
			 uint64_t ctx);

/* Writes a whole DATAGRAM capsule carrying payload with context ctx.
 * Returns 0, ZG_ERR_RANGE or ZG_ERR_BUFSHORT (nothing written). */
int httpdg_encode_capsule(uint8_t **pp, const uint8_t *end, uint64_t ctx,
			  const uint8_t *payload, size_t len);

#endif /* ZG_CAPSULE_H */
