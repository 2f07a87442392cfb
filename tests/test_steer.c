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
#include <unistd.h>

#include "masque/steer.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_long_header),
		cmocka_unit_test(test_rule_short_header),
		cmocka_unit_test(test_cid_byte),
		cmocka_unit_test(test_attach_refuses_bad_count),
		cmocka_unit_test(test_kernel_steers_like_the_rule),
		cmocka_unit_test(test_kernel_agrees_on_random_datagrams),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
