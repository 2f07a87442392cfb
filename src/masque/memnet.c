/* memnet.c — see memnet.h. */
#include "masque/memnet.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "zg_err.h"

struct memnet_timer {
	struct memnet_timer *next;
	struct masque_conn *c;
	masque_time at;
	int armed;
};

/* The port the server sees for client ep. */
static uint16_t seen_port(const struct memnet_ep *ep)
{
	return ep->nat_port != 0 ? ep->nat_port : ep->port;
}

static int io_send(void *ioctx, const struct sockaddr *local, socklen_t locallen,
		   const struct sockaddr *remote, socklen_t remotelen, const uint8_t *data,
		   size_t len)
{
	struct memnet_ep *ep = ioctx;
	struct memnet *n = ep->net;
	struct memnet_pkt *p;

	(void)local;
	(void)locallen;
	(void)remotelen;
	n->sent++;
	if (n->drop_every && n->sent % (uint64_t)n->drop_every == 0)
		return 0;
	if (n->qlen == MEMNET_QUEUE || len > sizeof(p->data))
		return -1;
	p = &n->q[(n->qhead + n->qlen) % MEMNET_QUEUE];
	n->qlen++;
	p->to_server = !ep->is_server;
	p->at = n->now + n->delay;
	p->port = ep->is_server ? ntohs(((const struct sockaddr_in *)remote)->sin_port)
				: seen_port(ep);
	p->len = len;
	memcpy(p->data, data, len);
	if (!ep->is_server && n->first_client_pkt == 0)
		n->first_client_pkt = len;
	return 0;
}

static masque_time io_now(void *ioctx)
{
	return ((struct memnet_ep *)ioctx)->net->now;
}

static void *io_timer_new(void *ioctx, struct masque_conn *c)
{
	struct memnet *n = ((struct memnet_ep *)ioctx)->net;
	struct memnet_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->c = c;
	t->next = n->timers;
	n->timers = t;
	return t;
}

static void io_timer_arm(void *ioctx, void *timer, masque_time at)
{
	struct memnet_timer *t = timer;

	(void)ioctx;
	t->at = at;
	t->armed = 1;
}

static void io_timer_free(void *ioctx, void *timer)
{
	struct memnet *n = ((struct memnet_ep *)ioctx)->net;
	struct memnet_timer **pp;

	for (pp = &n->timers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == timer) {
			*pp = ((struct memnet_timer *)timer)->next;
			free(timer);
			return;
		}
	}
}

const struct masque_io memnet_io = { io_send, io_now, io_timer_new, io_timer_arm,
				     io_timer_free };

static void ep_init(struct memnet *n, struct memnet_ep *ep, uint16_t port, int server)
{
	memset(ep, 0, sizeof(*ep));
	ep->net = n;
	ep->is_server = server;
	ep->port = port;
	ep->addr.sin_family = AF_INET;
	ep->addr.sin_port = htons(port);
	ep->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

void memnet_rebind(struct memnet_ep *ep, uint16_t port)
{
	ep->nat_port = port;
}

int memnet_init(struct memnet *n)
{
	memset(n, 0, sizeof(*n));
	n->q = calloc(MEMNET_QUEUE, sizeof(*n->q));
	if (n->q == NULL)
		return ZG_ERR_NOMEM;
	n->now = UINT64_C(1000000000000);
	n->delay = UINT64_C(1000000);
	ep_init(n, &n->server, 4433, 1);
	return 0;
}

size_t memnet_free(struct memnet *n)
{
	const struct memnet_timer *t;
	size_t left = 0;

	for (t = n->timers; t != NULL; t = t->next)
		left++;
	free(n->q);
	n->q = NULL;
	return left;
}

void memnet_client(struct memnet *n, size_t i, struct memnet_ep *ep)
{
	if (i >= MEMNET_EPS)
		return;
	ep_init(n, ep, (uint16_t)(40000 + i), 0);
	n->clients[i] = ep;
	if (n->nclients <= i)
		n->nclients = i + 1;
}

static struct memnet_ep *client_by_port(struct memnet *n, uint16_t port)
{
	size_t i;

	for (i = 0; i < n->nclients; i++)
		if (n->clients[i] != NULL && seen_port(n->clients[i]) == port)
			return n->clients[i];
	return NULL;
}

int memnet_step(struct memnet *n, masque_time horizon)
{
	struct memnet_timer *t, *first = NULL;

	for (t = n->timers; t != NULL; t = t->next)
		if (t->armed && (first == NULL || t->at < first->at))
			first = t;
	if (n->qlen > 0 && (first == NULL || n->q[n->qhead].at <= first->at)) {
		struct memnet_pkt *p = &n->q[n->qhead];
		struct memnet_ep *cl = client_by_port(n, p->port);
		struct sockaddr_in seen;

		if (p->at > horizon)
			return 0;
		if (p->at > n->now)
			n->now = p->at;
		n->qhead = (n->qhead + 1) % MEMNET_QUEUE;
		n->qlen--;
		if (cl == NULL)
			return 1;
		seen = cl->addr;
		seen.sin_port = htons(seen_port(cl));
		if (p->to_server && n->srv != NULL)
			masque_server_input(n->srv, (struct sockaddr *)&n->server.addr,
					    sizeof(n->server.addr), (struct sockaddr *)&seen,
					    sizeof(seen), p->data, p->len);
		else if (!p->to_server && cl->conn != NULL)
			(void)masque_conn_input(cl->conn, (struct sockaddr *)&cl->addr,
						sizeof(cl->addr), (struct sockaddr *)&n->server.addr,
						sizeof(n->server.addr), p->data, p->len);
		return 1;
	}
	if (first == NULL || first->at > horizon)
		return 0;
	if (first->at > n->now)
		n->now = first->at;
	first->armed = 0;
	(void)masque_conn_on_timer(first->c);
	return 1;
}

int memnet_run(struct memnet *n, int (*cond)(void *), void *arg, masque_time limit)
{
	masque_time horizon = n->now + limit;
	long steps = 0;

	while (!(cond != NULL && cond(arg))) {
		if (!memnet_step(n, horizon))
			break;
		if (++steps > 5000000)
			break;
	}
	return cond != NULL ? cond(arg) : 1;
}
