/*
 * udpq.c — client UDP datagrams toward the host sockets, sent at the end of
 * the event loop's turn.
 *
 * A batch of QUIC datagrams read in one pass (up to 64) holds as many
 * inner datagrams, most of them of the same few flows; one send() each was
 * a system call per datagram. They are copied here in order and sent when
 * the turn ends, each run of one flow's consecutive datagrams in one
 * sendmmsg(). A flow's datagrams keep their order; a datagram the kernel
 * refuses is lost alone (an unreachable destination is told to the
 * client, as before), and a full socket buffer drops the rest of that run,
 * as UDP may. Memory: one fixed buffer per stack (STACK_UDPQ_BYTES); when a
 * datagram does not fit, what is queued goes first.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "stack_int.h"

static void
udpq_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stack_udpq_flush(arg);
}

int stack_udpq_init(struct stack *st)
{
	st->udpq.ev = event_new(st->base, -1, 0, udpq_cb, st);
	return st->udpq.ev != NULL ? 0 : -1;
}

void stack_udpq_free(struct stack *st)
{
	if (st->udpq.ev != NULL)
		event_free(st->udpq.ev);
	st->udpq.ev = NULL;
	st->udpq.n = 0;
	st->udpq.used = 0;
}

void stack_udpq_send(struct flow *f, const uint8_t *p, size_t len)
{
	struct stack_udpq *q = &f->st->udpq;

	if (q->n == STACK_UDPQ_MAX || STACK_UDPQ_BYTES - q->used < len)
		stack_udpq_flush(f->st);
	if (STACK_UDPQ_BYTES - q->used < len)
		return; /* cannot be: the queue is empty and a datagram fits */
	memcpy(q->buf + q->used, p, len);
	q->e[q->n].f = f;
	q->e[q->n].off = (uint32_t)q->used;
	q->e[q->n].len = (uint32_t)len;
	q->used += len;
	f->udpq_n++;
	if (q->n++ == 0)
		event_active(q->ev, EV_TIMEOUT, 0);
}

/* Sends entries [i, j) of q, all of flow f. */
static void
send_run(struct stack *st, struct flow *f, unsigned i, unsigned j)
{
	struct stack_udpq *q = &st->udpq;
	struct mmsghdr mm[STACK_UDPQ_MAX];
	struct iovec iov[STACK_UDPQ_MAX];
	unsigned k;

	memset(mm, 0, (j - i) * sizeof(mm[0]));
	for (k = i; k < j; k++) {
		iov[k - i].iov_base = q->buf + q->e[k].off;
		iov[k - i].iov_len = q->e[k].len;
		mm[k - i].msg_hdr.msg_iov = &iov[k - i];
		mm[k - i].msg_hdr.msg_iovlen = 1;
	}
	for (k = i; k < j;) {
		int r = sendmmsg(f->fd, &mm[k - i], j - k, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r > 0) {
			for (unsigned m = k; m < k + (unsigned)r; m++) {
				f->bytes_up += q->e[m].len;
				st->cnt.bytes_up += q->e[m].len;
			}
			k += (unsigned)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			break; /* full: the rest of the run is dropped */
		if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)
			flow_udp_unreach(f, errno);
		k++; /* that one is lost, the others go on */
	}
}

void stack_udpq_flush(struct stack *st)
{
	struct stack_udpq *q = &st->udpq;
	unsigned i = 0, j;

	if (q->n == 0) {
		q->used = 0;
		return;
	}
	event_del(q->ev); /* when not called from it: nothing left for it */
	while (i < q->n) {
		struct flow *f = q->e[i].f;

		for (j = i + 1; j < q->n && q->e[j].f == f; j++)
			;
		f->udpq_n -= j - i;
		if (f->fd >= 0)
			send_run(st, f, i, j);
		i = j;
	}
	q->n = 0;
	q->used = 0;
}

void stack_udpq_forget(struct stack *st, struct flow *f)
{
	struct stack_udpq *q = &st->udpq;
	unsigned k = 0;

	for (unsigned i = 0; i < q->n; i++)
		if (q->e[i].f != f)
			q->e[k++] = q->e[i];
	q->n = k;
	if (k == 0)
		q->used = 0; /* else the next flush resets it */
	f->udpq_n = 0;
}
