/*
 * localaddr.c — see localaddr.h.
 */
#include "relay/localaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "zg_err.h"

struct localaddr {
	struct event_base *base;
	localaddr_cb cb;
	void *ctx;
	int nl; /* rtnetlink socket, -1 without one */
	struct event *nl_ev;
	struct event *timer;
	struct timeval period;
	struct stack_addr cur[STACK_MAX_LOCAL];
	size_t ncur;
	int failing; /* getifaddrs failed last time (logged once) */
};

size_t localaddr_collect(const struct ifaddrs *ifa, struct stack_addr *out, size_t max,
			 size_t *pskipped)
{
	struct stack_addr a;
	size_t n = 0, skipped = 0, i;

	for (; ifa != NULL; ifa = ifa->ifa_next) {
		memset(&a, 0, sizeof(a));
		if (ifa->ifa_addr != NULL && ifa->ifa_addr->sa_family == AF_INET) {
			const struct in_addr *v4 =
				&((const struct sockaddr_in *)(const void *)ifa->ifa_addr)->sin_addr;

			if ((ntohl(v4->s_addr) >> 24) == 127)
				continue;
			a.version = 4;
			memcpy(a.a, v4, 4);
		} else if (ifa->ifa_addr != NULL && ifa->ifa_addr->sa_family == AF_INET6) {
			const struct in6_addr *v6 =
				&((const struct sockaddr_in6 *)(const void *)ifa->ifa_addr)->sin6_addr;

			if (IN6_IS_ADDR_LOOPBACK(v6) || IN6_IS_ADDR_LINKLOCAL(v6))
				continue;
			a.version = 6;
			memcpy(a.a, v6, 16);
		} else {
			continue;
		}
		for (i = 0; i < n; i++)
			if (stack_addr_eq(&out[i], &a))
				break;
		if (i < n)
			continue;
		if (n == max) {
			skipped++;
			continue;
		}
		out[n++] = a;
	}
	if (pskipped != NULL)
		*pskipped = skipped;
	return n;
}

static int same_set(const struct stack_addr *a, size_t na, const struct stack_addr *b, size_t nb)
{
	size_t i, j;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb; j++)
			if (stack_addr_eq(&a[i], &b[j]))
				break;
		if (j == nb)
			return 0;
	}
	return 1;
}

static int refresh(struct localaddr *l, int force)
{
	struct stack_addr now[STACK_MAX_LOCAL];
	struct ifaddrs *ifa;
	size_t n, skipped;

	if (getifaddrs(&ifa) != 0) {
		if (!l->failing)
			log_warn("getifaddrs: the relay's own addresses are not refreshed");
		l->failing = 1;
		return ZG_ERR_IO;
	}
	if (l->failing)
		log_info("getifaddrs works again");
	l->failing = 0;
	n = localaddr_collect(ifa, now, STACK_MAX_LOCAL, &skipped);
	freeifaddrs(ifa);
	if (!force && same_set(now, n, l->cur, l->ncur))
		return 0;
	memcpy(l->cur, now, n * sizeof(now[0]));
	l->ncur = n;
	l->cb(l->ctx, now, n, skipped);
	return 0;
}

int localaddr_refresh(struct localaddr *l)
{
	return refresh(l, 0);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)refresh(arg, 0);
}

static void nl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct localaddr *l = arg;
	char buf[8192];
	int n, rounds = 0;

	(void)what;
	/* Drain; the content does not matter: any address event means
	 * "read the set again" (bounded, the rest waits for the next turn). */
	do {
		n = (int)recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	} while (n > 0 && ++rounds < 64);
	(void)refresh(l, 0);
}

static int open_netlink(void)
{
	struct sockaddr_nl sa;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int localaddr_new(struct event_base *base, uint32_t period_ms, localaddr_cb cb, void *ctx,
		  struct localaddr **pl)
{
	struct localaddr *l;
	int r;

	if (base == NULL || cb == NULL || pl == NULL)
		return ZG_ERR_INVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return ZG_ERR_NOMEM;
	l->base = base;
	l->cb = cb;
	l->ctx = ctx;
	l->nl = -1;
	if (period_ms == 0)
		period_ms = 30000;
	l->period.tv_sec = (time_t)(period_ms / 1000);
	l->period.tv_usec = (suseconds_t)(period_ms % 1000) * 1000;
	r = refresh(l, 1);
	if (r != 0)
		goto fail;
	r = ZG_ERR_NOMEM;
	l->timer = event_new(base, -1, EV_PERSIST, timer_cb, l);
	if (l->timer == NULL || event_add(l->timer, &l->period) != 0)
		goto fail;
	l->nl = open_netlink();
	if (l->nl < 0) {
		log_warn("rtnetlink: address changes are seen within %u ms only", period_ms);
	} else {
		l->nl_ev = event_new(base, l->nl, EV_READ | EV_PERSIST, nl_cb, l);
		if (l->nl_ev == NULL || event_add(l->nl_ev, NULL) != 0)
			goto fail;
	}
	*pl = l;
	return 0;
fail:
	localaddr_del(l);
	return r;
}

void localaddr_del(struct localaddr *l)
{
	if (l == NULL)
		return;
	if (l->nl_ev != NULL)
		event_free(l->nl_ev);
	if (l->timer != NULL)
		event_free(l->timer);
	if (l->nl >= 0)
		close(l->nl);
	free(l);
}
