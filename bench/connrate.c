/*
 * connrate — TCP connections per second, HTTP/1.0 without keep-alive.
 *
 *   connrate serve ADDR PORT            answer every request with a small 200
 *   connrate run ADDR PORT SECONDS PAR  PAR clients in parallel: connect, GET,
 *                                       read the answer to EOF, close; print
 *                                       "conns N errors E rate R/s"
 *   connrate count ADDR PORT N PAR      the same for exactly N connections,
 *                                       and also "p50 X ms p99 Y ms": each
 *                                       connection's time from connect() to
 *                                       the answer's EOF
 * One thread, epoll, non-blocking sockets on both sides, so the tool is not
 * what limits the rate.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char REQ[] = "GET / HTTP/1.0\r\nHost: bench\r\n\r\n";
static const char RESP[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int serve(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN }, evs[256];

	if (lfd < 0 || ep < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0) {
		perror("connrate: bind/listen");
		return 1;
	}
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1), i;

		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };

					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
				}
			} else {
				char buf[512];
				ssize_t r = read(fd, buf, sizeof(buf));

				if (r > 0 && memmem(buf, (size_t)r, "\r\n\r\n", 4) != NULL)
					(void)!write(fd, RESP, sizeof(RESP) - 1);
				if (r > 0 && memmem(buf, (size_t)r, "\r\n\r\n", 4) == NULL)
					continue; /* request not complete: a real server would keep it */
				close(fd);
			}
		}
	}
}

#define MAXFD 65536
static double started[MAXFD]; /* connect() time of the connection on fd */
static double *lat;           /* latencies of finished connections, s */
static long nlat, caplat;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* the q-quantile (0..1) of the recorded latencies, in ms (nearest rank) */
static double quantile_ms(double q)
{
	long i;

	if (nlat == 0)
		return 0;
	i = (long)(q * (double)nlat + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= nlat)
		i = nlat - 1;
	return lat[i] * 1e3;
}

static int start(int ep, const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct epoll_event ev = { .events = EPOLLOUT };

	if (fd < 0)
		return -1;
	if (fd >= MAXFD) {
		close(fd);
		return -1;
	}
	started[fd] = now();
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	ev.data.u64 = (uint64_t)fd; /* high bit: request sent */
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return fd;
}

/* Runs connections PAR at a time until SECS have passed or, when MAXN > 0,
 * until MAXN have been started. */
static int run(const char *addr, int port, double secs, int par, long maxn)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event evs[256];
	int ep = epoll_create1(0), i, active = 0;
	long conns = 0, errors = 0, begun = 0;
	double t0 = now(), end = maxn > 0 ? 1e300 : t0 + secs;

	if (ep < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || par < 1)
		return 1;
	caplat = maxn > 0 ? maxn : 1 << 20;
	lat = malloc((size_t)caplat * sizeof(*lat));
	if (lat == NULL)
		return 1;
	for (i = 0; i < par && (maxn <= 0 || begun < maxn); i++, begun++)
		if (start(ep, &sa) >= 0)
			active++;
	while (active > 0) {
		int n = epoll_wait(ep, evs, 256, 1000);

		if (n == 0) { /* a stuck connection: count it and go on */
			break;
		}
		for (i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			int fd = (int)(d & 0xffffffffu), err = 0, done = 0;
			socklen_t el = sizeof(err);

			if (!(d >> 32)) {
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err != 0 || (evs[i].events & (EPOLLERR | EPOLLHUP))) {
					errors++;
					done = 1;
				} else {
					struct epoll_event ev = { .events = EPOLLIN };

					(void)!write(fd, REQ, sizeof(REQ) - 1);
					ev.data.u64 = (1ull << 32) | (uint64_t)fd;
					epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
				}
			} else {
				char buf[512];
				ssize_t r;

				while ((r = read(fd, buf, sizeof(buf))) > 0)
					;
				if (r == 0) {
					conns++;
					if (nlat < caplat)
						lat[nlat++] = now() - started[fd];
					done = 1;
				} else if (errno != EAGAIN) {
					errors++;
					done = 1;
				}
			}
			if (done) {
				close(fd);
				active--;
				if (now() < end && (maxn <= 0 || begun < maxn)) {
					begun++;
					if (start(ep, &sa) >= 0)
						active++;
				}
			}
		}
	}
	secs = now() - t0;
	qsort(lat, (size_t)nlat, sizeof(*lat), cmp_double);
	printf("conns %ld errors %ld rate %.0f/s p50 %.3f ms p99 %.3f ms\n", conns, errors,
	       (double)conns / secs, quantile_ms(0.50), quantile_ms(0.99));
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2], atoi(argv[3]));
	if (argc == 6 && strcmp(argv[1], "run") == 0)
		return run(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]), 0);
	if (argc == 6 && strcmp(argv[1], "count") == 0)
		return run(argv[2], atoi(argv[3]), 0, atoi(argv[5]), atol(argv[4]));
	fprintf(stderr, "usage: connrate serve ADDR PORT | run ADDR PORT SECONDS PARALLEL |"
			" count ADDR PORT N PARALLEL\n");
	return 2;
}
