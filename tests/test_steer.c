/*
 * test_steer.c — steering QUIC datagrams to relay workers by connection
 * ID (steer.h): the rule on crafted headers, the CID first byte, and the
 * classic BPF program in the real kernel: four unprivileged SO_REUSEPORT
 * sockets on one loopback port, each datagram must reach exactly the
 * socket steer_cid_worker() names. The server side (CIDs a worker
 * issues) is tested in test_masque.c, which has the in-memory fixtures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "masque/steer.h"
#include "sockaddr_fx.h"
#include "zg_err.h"

/* A long header packet: flags, version 1, DCID length dl, DCID whose
 * first byte is d0, then SCID length 0 and padding to len bytes. */
static size_t long_pkt(uint8_t *p, size_t len, uint8_t dl, uint8_t d0)
{
	memset(p, 0xee, len);
	if (len > 0)
		p[0] = 0xc0; /* Initial */
	if (len > 4) {
		p[1] = 0;
		p[2] = 0;
		p[3] = 0;
		p[4] = 1;
	}
	if (len > 5)
		p[5] = dl;
	if (len > 6)
		p[6] = d0;
	return len;
}

/* A short header packet: flags, then DCID whose first byte is d0. */
static size_t short_pkt(uint8_t *p, size_t len, uint8_t d0)
{
	memset(p, 0x11, len);
	if (len > 0)
		p[0] = 0x41;
	if (len > 1)
		p[1] = d0;
	return len;
}

static void test_rule_long_header(void **state)
{
	uint8_t p[64];

	(void)state;
	/* a client Initial: 18-byte random DCID, its first byte decides */
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 18, 0x07), 4), 3);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 18, 0x08), 4), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 16, 0xfe), 4), 2);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 16, 0xff), 3), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 16, 0xfe), 3), 2);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 1, 201), 7), 201 % 7);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 20, 0x05), 256), 5);
	/* the packet type does not matter: Handshake, 0-RTT, Retry bits */
	long_pkt(p, 60, 16, 0x0a);
	p[0] = 0xe3;
	assert_int_equal(steer_cid_worker(p, 60, 4), 2);
	/* the DCID just fits: len == 6 + dcidlen */
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 6 + 20, 20, 0x03), 4), 3);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 7, 1, 0x03), 4), 3);
	/* malformed: worker 0 */
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 6 + 19, 20, 0x03), 4), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 0, 0x03), 4), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 21, 0x03), 4), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 255, 0x03), 4), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 6, 1, 0x03), 4), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 5, 1, 0x03), 4), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 1, 1, 0x03), 4), 0);
	/* one worker, or none configured: always 0 */
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 16, 0x03), 1), 0);
	assert_int_equal(steer_cid_worker(p, long_pkt(p, 60, 16, 0x03), 0), 0);
}

static void test_rule_short_header(void **state)
{
	uint8_t p[64];

	(void)state;
	assert_int_equal(steer_cid_worker(p, short_pkt(p, 40, 0x07), 4), 3);
	assert_int_equal(steer_cid_worker(p, short_pkt(p, 40, 0x06), 4), 2);
	assert_int_equal(steer_cid_worker(p, short_pkt(p, 40, 0xff), 5), 0);
	assert_int_equal(steer_cid_worker(p, short_pkt(p, 40, 0xfe), 5), 4);
	/* the spin/key-phase bits do not matter, nor does the fixed bit */
	short_pkt(p, 40, 0x07);
	p[0] = 0x00;
	assert_int_equal(steer_cid_worker(p, 40, 4), 3);
	p[0] = 0x7f;
	assert_int_equal(steer_cid_worker(p, 40, 4), 3);
	/* exactly a flags byte and a whole server CID */
	assert_int_equal(steer_cid_worker(p, short_pkt(p, 1 + STEER_CIDLEN, 0x07), 4), 3);
	/* shorter than the server's CID: worker 0 */
	assert_int_equal(steer_cid_worker(p, short_pkt(p, STEER_CIDLEN, 0x07), 4), 0);
	assert_int_equal(steer_cid_worker(p, short_pkt(p, 2, 0x07), 4), 0);
	assert_int_equal(steer_cid_worker(p, short_pkt(p, 1, 0x07), 4), 0);
	assert_int_equal(steer_cid_worker(p, 0, 4), 0);
	assert_int_equal(steer_cid_worker(NULL, 0, 4), 0);
}

static void test_cid_byte(void **state)
{
	unsigned n, w, r;

	(void)state;
	for (n = 2; n <= STEER_MAX_WORKERS; n++) {
		for (w = 0; w < n; w++) {
			unsigned seen_high = 0;

			for (r = 0; r < 256; r++) {
				uint8_t b = steer_cid_byte((uint8_t)r, w, n);

				assert_int_equal(b % n, w);
				/* the byte stays near r: its high bits stay random */
				assert_true(b + n > r && b < r + n);
				seen_high |= 1u << (b >> 5);
			}
			/* every eighth of the byte's range is used, but for
			 * many workers */
			if (n <= 32)
				assert_int_equal(seen_high, 0xff);
		}
	}
	/* one worker, none, or an index out of range: r unchanged */
	assert_int_equal(steer_cid_byte(0xab, 0, 1), 0xab);
	assert_int_equal(steer_cid_byte(0xab, 0, 0), 0xab);
	assert_int_equal(steer_cid_byte(0xab, 4, 4), 0xab);
	/* a datagram carrying such a CID goes back to its worker */
	{
		uint8_t p[40];

		short_pkt(p, sizeof(p), steer_cid_byte(0xfd, 2, 4));
		assert_int_equal(steer_cid_worker(p, sizeof(p), 4), 2);
	}
}

static void test_attach_refuses_bad_count(void **state)
{
	char err[128];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(steer_attach_cbpf(fd, 0, err, sizeof(err)), ZG_ERR_INVAL);
	assert_non_null(strstr(err, "workers: 0"));
	assert_int_equal(steer_attach_cbpf(fd, STEER_MAX_WORKERS + 1, err, sizeof(err)),
			 ZG_ERR_INVAL);
	/* a socket without SO_REUSEPORT: the kernel refuses, err says so */
	assert_int_equal(steer_attach_cbpf(fd, 4, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "SO_ATTACH_REUSEPORT_CBPF: "));
	assert_int_equal(errno, EINVAL);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* the kernel                                                         */

#define NSOCK 4

struct group {
	int fd[NSOCK];
	int tx;
	struct sockaddr_in addr;
};

static int bind_reuseport(struct sockaddr_in *a)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof(*a)), 0);
	return fd;
}

/* Binds NSOCK sockets in worker order on one loopback port (the first
 * picks it) and attaches the program for NSOCK workers. */
static void group_open(struct group *g)
{
	socklen_t alen = sizeof(g->addr);
	char err[160];
	int i, rc;

	memset(&g->addr, 0, sizeof(g->addr));
	g->addr.sin_family = AF_INET;
	g->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g->fd[0] = bind_reuseport(&g->addr);
	assert_int_equal(getsockname(g->fd[0], (struct sockaddr *)&g->addr, &alen), 0);
	for (i = 1; i < NSOCK; i++)
		g->fd[i] = bind_reuseport(&g->addr);
	rc = steer_attach_cbpf(g->fd[0], NSOCK, err, sizeof(err));
	if (rc != 0)
		fail_msg("steer_attach_cbpf: %s (this test needs the kernel's reuseport cBPF)",
			 err);
	g->tx = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(g->tx >= 0);
}

static void group_close(struct group *g)
{
	int i;

	for (i = 0; i < NSOCK; i++)
		close(g->fd[i]);
	close(g->tx);
}

/* Sends p and checks it arrives, whole, at socket
 * steer_cid_worker(p, len, NSOCK) and at no other. */
static void send_expect(struct group *g, const uint8_t *p, size_t len)
{
	unsigned want = steer_cid_worker(p, len, NSOCK);
	struct pollfd pfd[NSOCK];
	uint8_t buf[2048];
	int i, got = -1;

	assert_int_equal(sendto(g->tx, p, len, 0, (struct sockaddr *)&g->addr, sizeof(g->addr)),
			 (ssize_t)len);
	for (i = 0; i < NSOCK; i++) {
		pfd[i].fd = g->fd[i];
		pfd[i].events = POLLIN;
	}
	assert_true(poll(pfd, NSOCK, 2000) > 0); /* loopback: at once */
	for (i = 0; i < NSOCK; i++) {
		ssize_t n = recv(g->fd[i], buf, sizeof(buf), 0);

		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			continue;
		}
		if (got >= 0 || (unsigned)i != want)
			fail_msg("datagram of %zu bytes (first %02x) for socket %u arrived at %d", len,
				 len > 0 ? p[0] : 0, want, i);
		assert_int_equal(n, (ssize_t)len);
		assert_memory_equal(buf, p, len);
		got = i;
	}
	assert_int_equal(got, (int)want);
}

static void test_kernel_steers_like_the_rule(void **state)
{
	struct group g;
	uint8_t p[1200];
	unsigned d, hits[NSOCK] = { 0 };

	(void)state;
	group_open(&g);
	/* every residue, both header forms, client-sized and server CIDs */
	for (d = 0; d < 256; d += 5) {
		send_expect(&g, p, long_pkt(p, 1200, 18, (uint8_t)d));
		send_expect(&g, p, long_pkt(p, 80, 16, (uint8_t)d));
		send_expect(&g, p, short_pkt(p, 60, (uint8_t)d));
		hits[d % NSOCK] += 3;
	}
	/* edge cases: fits exactly, too short, bad lengths, empty */
	send_expect(&g, p, long_pkt(p, 6 + 20, 20, 0x03));
	send_expect(&g, p, long_pkt(p, 7, 1, 0x02));
	send_expect(&g, p, long_pkt(p, 6 + 19, 20, 0x03));
	send_expect(&g, p, long_pkt(p, 60, 0, 0x03));
	send_expect(&g, p, long_pkt(p, 60, 21, 0x03));
	send_expect(&g, p, long_pkt(p, 60, 255, 0x03));
	send_expect(&g, p, long_pkt(p, 6, 1, 0x03));
	send_expect(&g, p, long_pkt(p, 3, 1, 0x03));
	send_expect(&g, p, short_pkt(p, 1 + STEER_CIDLEN, 0x03));
	send_expect(&g, p, short_pkt(p, STEER_CIDLEN, 0x03));
	send_expect(&g, p, short_pkt(p, 2, 0x03));
	send_expect(&g, p, short_pkt(p, 1, 0x03));
	send_expect(&g, p, 0);
	for (d = 0; d < NSOCK; d++)
		assert_true(hits[d] > 0);
	group_close(&g);
}

/* Random datagrams of every short length and some long ones: the kernel
 * and steer_cid_worker() agree on each. */
static void test_kernel_agrees_on_random_datagrams(void **state)
{
	struct group g;
	uint8_t p[256];
	unsigned i, j;

	(void)state;
	srand(2113);
	group_open(&g);
	for (i = 0; i < 600; i++) {
		size_t len = i < 300 ? i % 40 : (size_t)(rand() % (int)sizeof(p));

		for (j = 0; j < len; j++)
			p[j] = (uint8_t)rand();
		if (len > 5 && i % 3 == 0)
			p[5] = (uint8_t)(rand() % 24); /* mostly plausible DCID lengths */
		send_expect(&g, p, len);
	}
	group_close(&g);
}

/* ------------------------------------------------------------------ */
/* handoff channels                                                   */

/* [a]:port with a flow label and a scope, which must cross too. */
static struct sockaddr_in6 sin6_scoped(const char *a, uint16_t port)
{
	struct sockaddr_in6 s = fx_sin6(a, port);

	s.sin6_flowinfo = htonl(0x12345);
	s.sin6_scope_id = 7;
	return s;
}

/* Sends one datagram over channel w of g and reads it back whole, with
 * both addresses byte for byte. */
static void round_trip(struct steer_group *g, unsigned w, const struct sockaddr *peer,
		       socklen_t peerlen, const struct sockaddr *local, socklen_t locallen,
		       const uint8_t *data, size_t len, uint8_t *buf)
{
	struct steer_msg m;

	assert_int_equal(steer_handoff_send(g->wr[w], peer, peerlen, local, locallen, data, len),
			 0);
	memset(&m, 0xaa, sizeof(m));
	assert_int_equal(steer_handoff_recv(g->rd[w], buf, STEER_MSG_MAX, &m), 1);
	assert_int_equal(m.peerlen, peerlen);
	assert_memory_equal(&m.peer, peer, peerlen);
	assert_int_equal(m.locallen, locallen);
	assert_memory_equal(&m.local, local, locallen);
	assert_int_equal(m.len, len);
	if (len > 0)
		assert_memory_equal(m.data, data, len);
	/* nothing else came */
	assert_int_equal(steer_handoff_recv(g->rd[w], buf, STEER_MSG_MAX, &m), 0);
}

static void test_handoff_round_trips(void **state)
{
	struct steer_group g;
	struct sockaddr_in p4 = fx_sin4("192.0.2.33", 50123), l4 = fx_sin4("127.0.0.1", 4433);
	struct sockaddr_in6 p6 = sin6_scoped("2001:db8::5:1", 61000), l6 = sin6_scoped("::ffff:10.1.2.3", 443);
	uint8_t *big = malloc(STEER_DGRAM_MAX), *buf = malloc(STEER_MSG_MAX);
	uint8_t small[1200];
	char err[128];
	size_t i;

	(void)state;
	assert_non_null(big);
	assert_non_null(buf);
	for (i = 0; i < STEER_DGRAM_MAX; i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	for (i = 0; i < sizeof(small); i++)
		small[i] = (uint8_t)~i;
	assert_int_equal(steer_group_open(&g, 3, err, sizeof(err)), 0);
	assert_int_equal(g.n, 3);
	round_trip(&g, 0, (struct sockaddr *)&p4, sizeof(p4), (struct sockaddr *)&l4, sizeof(l4),
		   small, sizeof(small), buf);
	round_trip(&g, 1, (struct sockaddr *)&p6, sizeof(p6), (struct sockaddr *)&l6, sizeof(l6),
		   small, 1, buf);
	/* mixed families, an empty datagram, the largest one */
	round_trip(&g, 2, (struct sockaddr *)&p6, sizeof(p6), (struct sockaddr *)&l4, sizeof(l4),
		   small, 0, buf);
	round_trip(&g, 2, (struct sockaddr *)&p4, sizeof(p4), (struct sockaddr *)&l6, sizeof(l6),
		   big, STEER_DGRAM_MAX, buf);
	round_trip(&g, 0, (struct sockaddr *)&p6, sizeof(p6), (struct sockaddr *)&l6, sizeof(l6),
		   big, STEER_DGRAM_MAX, buf);
	/* messages keep their boundaries and order */
	{
		struct steer_msg m;

		for (i = 0; i < 10; i++)
			assert_int_equal(steer_handoff_send(g.wr[1], (struct sockaddr *)&p4,
							    sizeof(p4), (struct sockaddr *)&l4,
							    sizeof(l4), small, 100 + i),
					 0);
		for (i = 0; i < 10; i++) {
			assert_int_equal(steer_handoff_recv(g.rd[1], buf, STEER_MSG_MAX, &m), 1);
			assert_int_equal(m.len, 100 + i);
			assert_memory_equal(m.data, small, m.len);
		}
		assert_int_equal(steer_handoff_recv(g.rd[1], buf, STEER_MSG_MAX, &m), 0);
		/* a buffer too small for the largest message is refused */
		assert_int_equal(steer_handoff_recv(g.rd[1], buf, STEER_MSG_MAX - 1, &m),
				 ZG_ERR_INVAL);
	}
	steer_group_close(&g);
	for (i = 0; i < 3; i++) {
		assert_int_equal(g.rd[i], -1);
		assert_int_equal(g.wr[i], -1);
	}
	free(big);
	free(buf);
}

static void test_handoff_refuses(void **state)
{
	struct steer_group g;
	struct sockaddr_in p4 = fx_sin4("192.0.2.33", 50123), l4 = fx_sin4("127.0.0.1", 4433);
	struct sockaddr_in6 p6 = sin6_scoped("2001:db8::5:1", 61000);
	struct sockaddr_un un;
	uint8_t *big = calloc(1, STEER_DGRAM_MAX + 1), *buf = malloc(STEER_MSG_MAX);
	uint8_t raw[64];
	struct steer_msg m;
	char err[128];

	(void)state;
	assert_non_null(big);
	assert_non_null(buf);
	assert_int_equal(steer_group_open(&g, 1, err, sizeof(err)), ZG_ERR_INVAL);
	assert_non_null(strstr(err, "workers: 1"));
	assert_int_equal(steer_group_open(&g, STEER_MAX_WORKERS + 1, err, sizeof(err)),
			 ZG_ERR_INVAL);
	assert_int_equal(steer_group_open(&g, 2, err, sizeof(err)), 0);
	/* one byte too many: refused before anything is sent */
	assert_int_equal(steer_handoff_send(g.wr[0], (struct sockaddr *)&p4, sizeof(p4),
					    (struct sockaddr *)&l4, sizeof(l4), big,
					    STEER_DGRAM_MAX + 1),
			 ZG_ERR_TOO_LARGE);
	/* addresses: only IPv4/IPv6 of their exact size */
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(steer_handoff_send(g.wr[0], (struct sockaddr *)&un, sizeof(un),
					    (struct sockaddr *)&l4, sizeof(l4), big, 10),
			 ZG_ERR_INVAL);
	assert_int_equal(steer_handoff_send(g.wr[0], (struct sockaddr *)&p6, sizeof(p4),
					    (struct sockaddr *)&l4, sizeof(l4), big, 10),
			 ZG_ERR_INVAL);
	assert_int_equal(steer_handoff_send(g.wr[0], (struct sockaddr *)&p4, sizeof(p4), NULL, 0,
					    big, 10),
			 ZG_ERR_INVAL);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), 0);
	/* malformed messages written straight into the channel are read,
	 * dropped and reported; the next good one still comes through */
	memset(raw, 0, sizeof(raw));
	raw[0] = 2; /* a version this end does not know */
	assert_int_equal(send(g.wr[0], raw, 4, 0), 4);
	raw[0] = STEER_MSG_VERSION; /* too short for its addresses */
	raw[1] = sizeof(p4);
	raw[2] = sizeof(l4);
	assert_int_equal(send(g.wr[0], raw, 10, 0), 10);
	raw[1] = 20; /* a length no address has */
	assert_int_equal(send(g.wr[0], raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
	raw[1] = sizeof(p4); /* right lengths, family 0 */
	assert_int_equal(send(g.wr[0], raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
	assert_int_equal(send(g.wr[0], raw, 3, 0), 3); /* shorter than the header */
	/* a good header and addresses, but longer than any message: cut by
	 * the reader, so dropped */
	{
		size_t n = STEER_MSG_MAX + 1;
		uint8_t *huge = calloc(1, n);

		assert_non_null(huge);
		huge[0] = STEER_MSG_VERSION;
		huge[1] = huge[2] = sizeof(p4);
		memcpy(huge + 4, &p4, sizeof(p4));
		memcpy(huge + 4 + sizeof(p4), &l4, sizeof(l4));
		assert_int_equal(send(g.wr[0], huge, n, 0), (ssize_t)n);
		free(huge);
	}
	assert_int_equal(steer_handoff_send(g.wr[0], (struct sockaddr *)&p4, sizeof(p4),
					    (struct sockaddr *)&l4, sizeof(l4), raw, 5),
			 0);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), ZG_ERR_MALFORMED);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), ZG_ERR_MALFORMED);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), ZG_ERR_MALFORMED);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), ZG_ERR_MALFORMED);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), ZG_ERR_MALFORMED);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), ZG_ERR_MALFORMED);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), 1);
	assert_int_equal(m.len, 5);
	assert_int_equal(steer_handoff_recv(g.rd[0], buf, STEER_MSG_MAX, &m), 0);
	/* in a worker: its read end and the others' write ends stay */
	steer_group_keep(&g, 1);
	assert_int_equal(g.rd[0], -1);
	assert_true(g.wr[0] >= 0);
	assert_true(g.rd[1] >= 0);
	assert_int_equal(g.wr[1], -1);
	steer_group_close(&g);
	free(big);
	free(buf);
}

/* A worker that does not read: its channel fills, every further datagram
 * is refused at once (ZG_ERR_LIMIT), nothing blocks; once it reads, the
 * channel takes datagrams again. */
static void test_handoff_full_never_blocks(void **state)
{
	struct steer_group g;
	struct sockaddr_in p4 = fx_sin4("192.0.2.33", 50123), l4 = fx_sin4("127.0.0.1", 4433);
	uint8_t *buf = malloc(STEER_MSG_MAX), dgram[1200];
	struct steer_msg m;
	char err[128];
	unsigned sent = 0, refused = 0, got = 0, i;

	(void)state;
	assert_non_null(buf);
	memset(dgram, 0x5a, sizeof(dgram));
	assert_int_equal(steer_group_open(&g, 2, err, sizeof(err)), 0);
	/* the send buffer is at most a few MiB: 100000 datagrams overflow it */
	for (i = 0; i < 100000 && refused < 100; i++) {
		int r = steer_handoff_send(g.wr[1], (struct sockaddr *)&p4, sizeof(p4),
					   (struct sockaddr *)&l4, sizeof(l4), dgram,
					   sizeof(dgram));

		if (r == 0)
			sent++;
		else {
			assert_int_equal(r, ZG_ERR_LIMIT);
			refused++;
		}
	}
	assert_true(sent > 10);
	assert_int_equal(refused, 100);
	while (steer_handoff_recv(g.rd[1], buf, STEER_MSG_MAX, &m) == 1) {
		assert_int_equal(m.len, sizeof(dgram));
		got++;
	}
	assert_int_equal(got, sent);
	assert_int_equal(steer_handoff_send(g.wr[1], (struct sockaddr *)&p4, sizeof(p4),
					    (struct sockaddr *)&l4, sizeof(l4), dgram,
					    sizeof(dgram)),
			 0);
	/* every writer gone: the reader sees the end, not an empty channel */
	close(g.wr[1]);
	g.wr[1] = -1;
	assert_int_equal(steer_handoff_recv(g.rd[1], buf, STEER_MSG_MAX, &m), 1);
	assert_int_equal(steer_handoff_recv(g.rd[1], buf, STEER_MSG_MAX, &m), ZG_ERR_STATE);
	steer_group_close(&g);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_long_header),
		cmocka_unit_test(test_rule_short_header),
		cmocka_unit_test(test_cid_byte),
		cmocka_unit_test(test_attach_refuses_bad_count),
		cmocka_unit_test(test_kernel_steers_like_the_rule),
		cmocka_unit_test(test_kernel_agrees_on_random_datagrams),
		cmocka_unit_test(test_handoff_round_trips),
		cmocka_unit_test(test_handoff_refuses),
		cmocka_unit_test(test_handoff_full_never_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
