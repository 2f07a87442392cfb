/*
 * connrate — TCP connections per second, HTTP/1.0 without keep-alive.
 *
 *   connrate serve ADDR PORT            answer every request with a small 200
 *   connrate run ADDR PORT SECONDS PAR  PAR clients in parallel: connect, GET,
 *                                       read the answer to EOF, close; print
 *                                       "conns N errors E rate R/s"
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

static int start(int ep, const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct epoll_event ev = { .events = EPOLLOUT };

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	ev.data.u64 = (uint64_t)fd; /* high bit: request sent */
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return fd;
}

static int run(const char *addr, int port, double secs, int par)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event evs[256];
	int ep = epoll_create1(0), i, active = 0;
	long conns = 0, errors = 0;
	double t0 = now(), end = t0 + secs;

	if (ep < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return 1;
	for (i = 0; i < par; i++)
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
					done = 1;
				} else if (errno != EAGAIN) {
					errors++;
					done = 1;
				}
			}
			if (done) {
				close(fd);
				active--;
				if (now() < end && start(ep, &sa) >= 0)
					active++;
			}
		}
	}
	secs = now() - t0;
	printf("conns %ld errors %ld rate %.0f/s\n", conns, errors, (double)conns / secs);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2], atoi(argv[3]));
	if (argc == 6 && strcmp(argv[1], "run") == 0)
		return run(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: connrate serve ADDR PORT | run ADDR PORT SECONDS PARALLEL\n");
	return 2;
}
