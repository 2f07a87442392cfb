/* steer.c — see steer.h. */
#include "masque/steer.h"

#include <errno.h>
#include <linux/filter.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "masque/masque_int.h"
#include "zg_err.h"

_Static_assert(STEER_CIDLEN == MASQUE_CIDLEN, "the server's CID length is what a short header has");
_Static_assert(STEER_MAX_DCIDLEN == NGTCP2_MAX_CIDLEN, "QUIC v1's longest CID");

#define LONG_HEADER 0x80
#define LONG_DCIDLEN_AT 5 /* flags(1) version(4) */
#define LONG_DCID_AT 6
#define SHORT_DCID_AT 1

unsigned steer_cid_worker(const uint8_t *pkt, size_t len, unsigned nworkers)
{
	uint8_t d;

	if (nworkers <= 1 || len < 1)
		return 0;
	if (pkt[0] & LONG_HEADER) {
		size_t dcidlen;

		if (len <= LONG_DCIDLEN_AT)
			return 0;
		dcidlen = pkt[LONG_DCIDLEN_AT];
		if (dcidlen == 0 || dcidlen > STEER_MAX_DCIDLEN || len < LONG_DCID_AT + dcidlen)
			return 0;
		d = pkt[LONG_DCID_AT];
	} else {
		if (len < SHORT_DCID_AT + STEER_CIDLEN)
			return 0;
		d = pkt[SHORT_DCID_AT];
	}
	return d % nworkers;
}

uint8_t steer_cid_byte(uint8_t r, unsigned worker, unsigned nworkers)
{
	unsigned b;

	if (nworkers <= 1 || worker >= nworkers)
		return r;
	b = r - r % nworkers + worker;
	if (b > UINT8_MAX)
		b -= nworkers; /* the last, partial block of residues */
	return (uint8_t)b;
}

/* The program runs on the UDP payload (the kernel has pulled the UDP
 * header; len is the payload's length). A load past the end ends it with
 * 0, as steer_cid_worker() answers a datagram too short for its DCID.
 * Jump offsets count from the next instruction. */
#define P_SHORT 3
#define P_LONG 8
#define P_RET0 16

int steer_attach_cbpf(int fd, unsigned nworkers, char *err, size_t errlen)
{
	struct sock_filter code[] = {
		/* 0 */ BPF_STMT(BPF_LDX | BPF_W | BPF_LEN, 0),
		/* 1 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
		/* 2 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, LONG_HEADER, P_LONG - 3, P_SHORT - 3),
		/* short header: len >= 1 + STEER_CIDLEN ? pkt[1] % n : 0 */
		/* 3 */ BPF_STMT(BPF_MISC | BPF_TXA, 0),
		/* 4 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, SHORT_DCID_AT + STEER_CIDLEN, 0, P_RET0 - 5),
		/* 5 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, SHORT_DCID_AT),
		/* 6 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nworkers),
		/* 7 */ BPF_STMT(BPF_RET | BPF_A, 0),
		/* long header: 1 <= pkt[5] <= 20 && 6 + pkt[5] <= len ? pkt[6] % n : 0 */
		/* 8 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, LONG_DCIDLEN_AT),
		/* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, P_RET0 - 10, 0),
		/* 10 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, STEER_MAX_DCIDLEN, P_RET0 - 11, 0),
		/* 11 */ BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, LONG_DCID_AT),
		/* 12 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, P_RET0 - 13, 0),
		/* 13 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, LONG_DCID_AT),
		/* 14 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nworkers),
		/* 15 */ BPF_STMT(BPF_RET | BPF_A, 0),
		/* 16 */ BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	_Static_assert(sizeof(code) / sizeof(code[0]) == P_RET0 + 1, "jump targets");
	if (nworkers == 0 || nworkers > STEER_MAX_WORKERS) {
		zg_seterr(err, errlen, "workers: %u is not between 1 and %d", nworkers,
			  STEER_MAX_WORKERS);
		return ZG_ERR_INVAL;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) != 0) {
		int e = errno;

		zg_seterr(err, errlen, "SO_ATTACH_REUSEPORT_CBPF: %s", strerror(e));
		errno = e;
		return ZG_ERR_IO;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* handoff channels                                                   */

void steer_group_close(struct steer_group *g)
{
	unsigned i;

	for (i = 0; i < g->n && i < STEER_MAX_WORKERS; i++) {
		if (g->rd[i] >= 0)
			close(g->rd[i]);
		if (g->wr[i] >= 0)
			close(g->wr[i]);
		g->rd[i] = g->wr[i] = -1;
	}
}

int steer_group_open(struct steer_group *g, unsigned n, char *err, size_t errlen)
{
	unsigned i;
	int sz = STEER_CHAN_BUF;

	if (n < 2 || n > STEER_MAX_WORKERS) {
		zg_seterr(err, errlen, "workers: %u handoff channels; 2 to %d", n,
			  STEER_MAX_WORKERS);
		return ZG_ERR_INVAL;
	}
	g->n = n;
	for (i = 0; i < n; i++)
		g->rd[i] = g->wr[i] = -1;
	for (i = 0; i < n; i++) {
		int fds[2];

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) !=
		    0) {
			int e = errno;

			zg_seterr(err, errlen, "handoff channel of worker %u: socketpair: %s", i,
				  strerror(e));
			steer_group_close(g);
			errno = e;
			return ZG_ERR_IO;
		}
		g->rd[i] = fds[0];
		g->wr[i] = fds[1];
		/* a burst waits in the writer's buffer: the larger the
		 * better, without privileges the kernel caps it */
		(void)setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		(void)setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	return 0;
}

void steer_group_keep(struct steer_group *g, unsigned self)
{
	unsigned i;

	for (i = 0; i < g->n && i < STEER_MAX_WORKERS; i++) {
		int *fd = i == self ? &g->wr[i] : &g->rd[i];

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
}

/* 1 when sa is an IPv4 or IPv6 socket address of exactly len bytes. */
static int addr_ok(const struct sockaddr *sa, socklen_t len)
{
	if (sa == NULL)
		return 0;
	return (sa->sa_family == AF_INET && len == sizeof(struct sockaddr_in)) ||
	       (sa->sa_family == AF_INET6 && len == sizeof(struct sockaddr_in6));
}

int steer_handoff_send(int wfd, const struct sockaddr *peer, socklen_t peerlen,
		       const struct sockaddr *local, socklen_t locallen, const uint8_t *data,
		       size_t len)
{
	uint8_t hdr[STEER_MSG_HDR + 2 * sizeof(struct sockaddr_in6)];
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t n;

	if (len > STEER_DGRAM_MAX)
		return ZG_ERR_TOO_LARGE;
	if (!addr_ok(peer, peerlen) || !addr_ok(local, locallen))
		return ZG_ERR_INVAL;
	hdr[0] = STEER_MSG_VERSION;
	hdr[1] = (uint8_t)peerlen;
	hdr[2] = (uint8_t)locallen;
	hdr[3] = 0;
	memcpy(hdr + STEER_MSG_HDR, peer, peerlen);
	memcpy(hdr + STEER_MSG_HDR + peerlen, local, locallen);
	iov[0].iov_base = hdr;
	iov[0].iov_len = STEER_MSG_HDR + (size_t)peerlen + locallen;
	iov[1].iov_base = (void *)(uintptr_t)data; /* sendmsg does not write */
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = len > 0 ? 2 : 1;
	do {
		n = sendmsg(wfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? ZG_ERR_LIMIT
										   : ZG_ERR_IO;
	return 0;
}

/* Reads an address of the length the header gave from the cursor. */
static int get_addr(const uint8_t **p, const uint8_t *end, size_t alen,
		    struct sockaddr_storage *ss, socklen_t *plen)
{
	if ((size_t)(end - *p) < alen || alen > sizeof(*ss))
		return ZG_ERR_MALFORMED;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, *p, alen);
	*p += alen;
	*plen = (socklen_t)alen;
	return addr_ok((const struct sockaddr *)ss, *plen) ? 0 : ZG_ERR_MALFORMED;
}

int steer_handoff_recv(int rfd, uint8_t *buf, size_t cap, struct steer_msg *m)
{
	const uint8_t *p = buf, *end;
	ssize_t n;

	if (cap < STEER_MSG_MAX)
		return ZG_ERR_INVAL;
	do {
		/* MSG_TRUNC: the message's whole length, to see a cut one */
		n = recv(rfd, buf, cap, MSG_DONTWAIT | MSG_TRUNC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : ZG_ERR_IO;
	if (n == 0)
		return ZG_ERR_STATE; /* a message is never empty: end of file */
	if ((size_t)n > cap || (size_t)n < STEER_MSG_HDR || buf[0] != STEER_MSG_VERSION ||
	    buf[3] != 0)
		return ZG_ERR_MALFORMED;
	end = buf + n;
	p += STEER_MSG_HDR;
	if (get_addr(&p, end, buf[1], &m->peer, &m->peerlen) != 0 ||
	    get_addr(&p, end, buf[2], &m->local, &m->locallen) != 0)
		return ZG_ERR_MALFORMED;
	m->data = p;
	m->len = (size_t)(end - p);
	return m->len <= STEER_DGRAM_MAX ? 1 : ZG_ERR_MALFORMED;
}
