/*
 * ackq.c — pure ACKs toward clients held until the end of the loop turn,
 * where each connection's newest one stands for the ones before it.
 *
 * lwIP acknowledges every second segment it receives (RFC 9293 3.8.6.3),
 * and each of those ACKs becomes a QUIC datagram the relay encrypts and the
 * agent writes to its TUN device, where the client's kernel processes it.
 * During a bulk upload that was one packet back for every two forward: the
 * agent spent more time writing ACKs to its TUN than reading the data
 * from it. The relay takes in a burst of segments per loop turn (up to 64
 * datagrams per recvmmsg, GRO'd), so most of these ACKs were superseded
 * microseconds later by the next one of the same burst. Receivers with GRO
 * do the same (one ACK per aggregated segment); the sender's TCP handles
 * such stretch ACKs (RFC 5681 4.2 allows them; Linux counts acked bytes).
 *
 * What is held: a TCP segment with only the ACK flag, no options and no
 * payload (lwIP sends no SACK or timestamps here). It is dropped for a
 * later segment of the same connection that acknowledges more (and
 * carries the newer window); before any other segment of the connection
 * it goes out first, except that one of the same number replaces it when
 * it is known not to be a duplicate (it replaced a lower one itself: the
 * window update after a burst). So an ACK that may be a duplicate (RFC
 * 5681 3.2: the sender counts them to find a lost segment) is never
 * merged away, not even into a window update or data of the same
 * number. Every held ACK leaves in the same event-loop iteration
 * (ack_ev, made active when the first one is held) in the order held, so
 * nothing waits for a timer: the delay is the rest of the current batch.
 */
#include "stack_int.h"

#include <string.h>

#include <event2/event.h>

#include "be.h"

/* Where a TCP segment's fields are in pkt, or 0 when it is not TCP. */
static size_t tcp_off(const uint8_t *pkt, size_t len)
{
	if (len >= 20 && (pkt[0] >> 4) == 4 && pkt[9] == 6) {
		size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;

		return ihl >= 20 && len >= ihl + 20 ? ihl : 0;
	}
	if (len >= 60 && (pkt[0] >> 4) == 6 && pkt[6] == 6)
		return 40;
	return 0;
}

/* The connection's addresses and ports, compared as bytes. */
static int same_conn(const uint8_t *a, size_t aoff, const uint8_t *b, size_t boff)
{
	if ((a[0] >> 4) != (b[0] >> 4) || aoff != boff)
		return 0;
	if ((a[0] >> 4) == 4)
		return memcmp(a + 12, b + 12, 8) == 0 && memcmp(a + aoff, b + boff, 4) == 0;
	return memcmp(a + 8, b + 8, 32) == 0 && memcmp(a + 40, b + 40, 4) == 0;
}

static int pure_ack(const uint8_t *pkt, size_t len, size_t off)
{
	const uint8_t *t = pkt + off;

	return (t[12] >> 4) == 5 && t[13] == 0x10 && len == off + 20 &&
	       len <= STACK_ACKQ_PKT;
}

static void ack_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stack_ackq_flush(arg);
}

int stack_ackq_init(struct stack *st)
{
	st->ackq.ev = event_new(st->base, -1, 0, ack_cb, st);
	return st->ackq.ev != NULL ? 0 : -1;
}

void stack_ackq_free(struct stack *st)
{
	if (st->ackq.ev != NULL)
		event_free(st->ackq.ev);
	st->ackq.ev = NULL;
	st->ackq.n = 0;
}

void stack_ackq_flush(struct stack *st)
{
	struct stack_ackq *q = &st->ackq;

	/* emit one by one: output may not call back into the stack, so
	 * nothing is added meanwhile */
	for (unsigned i = 0; i < q->n; i++)
		stack_emit(st, &q->e[i].dst, q->e[i].pkt, q->e[i].len);
	q->n = 0;
}

/* Takes entry i out, keeping the order of the others. */
static void drop_at(struct stack_ackq *q, unsigned i)
{
	memmove(&q->e[i], &q->e[i + 1], (q->n - i - 1) * sizeof(q->e[0]));
	q->n--;
}

void stack_ackq_output(struct stack *st, const struct stack_addr *dst, const uint8_t *pkt,
		       size_t len)
{
	struct stack_ackq *q = &st->ackq;
	size_t off = tcp_off(pkt, len);
	unsigned i;
	uint8_t advanced = 0;

	if (off == 0 || q->ev == NULL || q->off) {
		stack_emit(st, dst, pkt, len);
		return;
	}
	for (i = 0; i < q->n; i++)
		if (same_conn(q->e[i].pkt, q->e[i].off, pkt, off))
			break;
	if (i < q->n) {
		const uint8_t *h = q->e[i].pkt + q->e[i].off, *t = pkt + off;
		uint32_t hack = be32_get(h + 8), ack = be32_get(t + 8);
		int32_t d = (int32_t)(ack - hack);

		/* A held ACK may be a duplicate ACK, which tells the sender
		 * of a lost segment (three make it retransmit: lwIP sends no
		 * SACK), and the next segment of the same number (a window
		 * update, data) would not count as one (RFC 5681 2). So it
		 * is dropped for an ACK of more data, and for one of the same
		 * number only when it was itself known to acknowledge more
		 * than what went before it (it replaced a lower one here). */
		if ((t[13] & 0x10) && (d > 0 || (d == 0 && q->e[i].advanced))) {
			st->cnt.acks_merged++;
			advanced = 1;
		} else {
			/* the held one first: order within a connection */
			stack_emit(st, &q->e[i].dst, q->e[i].pkt, q->e[i].len);
		}
		drop_at(q, i);
	}
	if (!pure_ack(pkt, len, off)) {
		stack_emit(st, dst, pkt, len);
		return;
	}
	if (q->n == STACK_ACKQ_MAX)
		stack_ackq_flush(st);
	q->e[q->n].dst = *dst;
	q->e[q->n].off = (uint8_t)off;
	q->e[q->n].len = (uint8_t)len;
	q->e[q->n].advanced = advanced;
	memcpy(q->e[q->n].pkt, pkt, len);
	if (q->n++ == 0)
		event_active(q->ev, EV_TIMEOUT, 0);
}
