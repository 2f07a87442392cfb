/*
 * tunio.c — masque_io over IP/UDP packets in a tunnel (tunio.h).
 */
#include "masque/tunio.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"
#include "cksum.h"
#include "masque/udp.h"
#include "zg_err.h"

struct tunio {
	struct event_base *base;
	tunio_emit_fn emit;
	void *ctx;
	struct tunio_stats st;
};

struct ttimer {
	struct event *ev;
	struct masque_conn *c;
};

#define TUNIO_TTL 64
#define UDP_HDR 8
#define IP4_HDR 20
#define IP6_HDR 40

/* --------------------------------------------------------------- packets */

/* The UDP checksum over the pseudo-header (src, dst, protocol, length) and
 * the UDP header + payload at u (ulen bytes, checksum field included). */
static uint16_t udp_sum(const uint8_t *src, const uint8_t *dst, size_t alen, const uint8_t *u,
			size_t ulen)
{
	uint32_t s = 0;
	uint8_t ph[8];

	s = cksum_add(s, src, alen);
	s = cksum_add(s, dst, alen);
	memset(ph, 0, sizeof(ph));
	if (alen == 4) {
		ph[1] = IPPROTO_UDP;
		ph[2] = (uint8_t)(ulen >> 8);
		ph[3] = (uint8_t)ulen;
		s = cksum_add(s, ph, 4);
	} else {
		ph[0] = (uint8_t)(ulen >> 24);
		ph[1] = (uint8_t)(ulen >> 16);
		ph[2] = (uint8_t)(ulen >> 8);
		ph[3] = (uint8_t)ulen;
		ph[7] = IPPROTO_UDP;
		s = cksum_add(s, ph, 8);
	}
	s = cksum_add(s, u, ulen);
	return cksum_fold(s);
}

size_t tunio_build_udp(const struct sockaddr *local, const struct sockaddr *remote,
		       const uint8_t *data, size_t len, uint8_t *out, size_t cap)
{
	const uint8_t *src, *dst;
	uint16_t sport, dport, sum;
	size_t hl, alen, ulen = UDP_HDR + len, total;
	uint8_t *u;

	if (local == NULL || remote == NULL || local->sa_family != remote->sa_family ||
	    (data == NULL && len > 0) || out == NULL)
		return 0;
	if (local->sa_family == AF_INET) {
		const struct sockaddr_in *l = (const struct sockaddr_in *)local;
		const struct sockaddr_in *r = (const struct sockaddr_in *)remote;

		src = (const uint8_t *)&l->sin_addr;
		dst = (const uint8_t *)&r->sin_addr;
		sport = ntohs(l->sin_port);
		dport = ntohs(r->sin_port);
		hl = IP4_HDR;
		alen = 4;
	} else if (local->sa_family == AF_INET6) {
		const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)local;
		const struct sockaddr_in6 *r = (const struct sockaddr_in6 *)remote;

		src = (const uint8_t *)&l->sin6_addr;
		dst = (const uint8_t *)&r->sin6_addr;
		sport = ntohs(l->sin6_port);
		dport = ntohs(r->sin6_port);
		hl = IP6_HDR;
		alen = 16;
	} else {
		return 0;
	}
	total = hl + ulen;
	if (total > cap || total > 65535)
		return 0;
	memset(out, 0, hl + UDP_HDR);
	if (alen == 4) {
		uint16_t isum;

		out[0] = 0x45;
		be16_put(out + 2, (uint16_t)total);
		out[6] = 0x40; /* DF: the inner QUIC does its own path MTU */
		out[8] = TUNIO_TTL;
		out[9] = IPPROTO_UDP;
		memcpy(out + 12, src, 4);
		memcpy(out + 16, dst, 4);
		isum = cksum_fold(cksum_add(0, out, IP4_HDR));
		be16_put(out + 10, isum);
	} else {
		out[0] = 0x60;
		be16_put(out + 4, (uint16_t)ulen);
		out[6] = IPPROTO_UDP;
		out[7] = TUNIO_TTL;
		memcpy(out + 8, src, 16);
		memcpy(out + 24, dst, 16);
	}
	u = out + hl;
	be16_put(u, sport);
	be16_put(u + 2, dport);
	be16_put(u + 4, (uint16_t)ulen);
	if (len)
		memcpy(u + UDP_HDR, data, len);
	sum = udp_sum(src, dst, alen, u, ulen);
	if (sum == 0)
		sum = 0xffff; /* RFC 768: a computed 0 is sent as all ones */
	be16_put(u + 6, sum);
	return total;
}

int tunio_parse_udp(const uint8_t *pkt, size_t len, struct sockaddr_storage *local,
		    socklen_t *locallen, struct sockaddr_storage *remote, socklen_t *remotelen,
		    const uint8_t **payload, size_t *plen)
{
	const uint8_t *u, *src, *dst;
	size_t hl, alen, ulen;
	uint16_t sum;

	if (pkt == NULL || len < 1 || local == NULL || remote == NULL || locallen == NULL ||
	    remotelen == NULL || payload == NULL || plen == NULL)
		return 0;
	if (pkt[0] >> 4 == 4) {
		size_t tot;

		if (len < IP4_HDR || (pkt[0] & 0x0f) != 5 || pkt[9] != IPPROTO_UDP)
			return 0;
		if (cksum_fold(cksum_add(0, pkt, IP4_HDR)) != 0)
			return 0;
		tot = be16_get(pkt + 2);
		if (tot < IP4_HDR + UDP_HDR || tot > len)
			return 0;
		if ((be16_get(pkt + 6) & 0x3fff) != 0) /* MF or an offset: a fragment */
			return 0;
		hl = IP4_HDR;
		alen = 4;
		src = pkt + 12;
		dst = pkt + 16;
		len = tot;
	} else if (pkt[0] >> 4 == 6) {
		if (len < IP6_HDR + UDP_HDR || pkt[6] != IPPROTO_UDP)
			return 0;
		if ((size_t)be16_get(pkt + 4) + IP6_HDR > len)
			return 0;
		len = (size_t)be16_get(pkt + 4) + IP6_HDR;
		hl = IP6_HDR;
		alen = 16;
		src = pkt + 8;
		dst = pkt + 24;
	} else {
		return 0;
	}
	u = pkt + hl;
	if (len < hl + UDP_HDR)
		return 0;
	ulen = be16_get(u + 4);
	if (ulen < UDP_HDR || ulen > len - hl)
		return 0;
	sum = be16_get(u + 6);
	if (alen == 16 && sum == 0)
		return 0; /* RFC 8200 §8.1: IPv6 UDP needs a checksum */
	/* IPv4 with checksum 0 has none (RFC 768): accepted unchecked */
	if (sum != 0 && udp_sum(src, dst, alen, u, ulen) != 0)
		return 0;
	memset(local, 0, sizeof(*local));
	memset(remote, 0, sizeof(*remote));
	if (alen == 4) {
		struct sockaddr_in *l = (struct sockaddr_in *)local;
		struct sockaddr_in *r = (struct sockaddr_in *)remote;

		l->sin_family = AF_INET;
		r->sin_family = AF_INET;
		memcpy(&l->sin_addr, dst, 4);
		memcpy(&r->sin_addr, src, 4);
		l->sin_port = htons(be16_get(u + 2));
		r->sin_port = htons(be16_get(u));
		*locallen = *remotelen = sizeof(struct sockaddr_in);
	} else {
		struct sockaddr_in6 *l = (struct sockaddr_in6 *)local;
		struct sockaddr_in6 *r = (struct sockaddr_in6 *)remote;

		l->sin6_family = AF_INET6;
		r->sin6_family = AF_INET6;
		memcpy(&l->sin6_addr, dst, 16);
		memcpy(&r->sin6_addr, src, 16);
		l->sin6_port = htons(be16_get(u + 2));
		r->sin6_port = htons(be16_get(u));
		*locallen = *remotelen = sizeof(struct sockaddr_in6);
	}
	*payload = u + UDP_HDR;
	*plen = ulen - UDP_HDR;
	return 1;
}

/* --------------------------------------------------------------- io */

static int io_send(void *ioctx, const struct sockaddr *local, socklen_t locallen,
		   const struct sockaddr *remote, socklen_t remotelen, const uint8_t *data,
		   size_t len)
{
	struct tunio *t = ioctx;
	uint8_t pkt[IP6_HDR + UDP_HDR + 1500];
	size_t n;

	(void)locallen;
	(void)remotelen;
	n = tunio_build_udp(local, remote, data, len, pkt, sizeof(pkt));
	if (n == 0) {
		t->st.send_errors++;
		return ZG_ERR_INVAL;
	}
	t->st.sent++;
	t->emit(t->ctx, pkt, n);
	return 0;
}

static masque_time io_now(void *ioctx)
{
	(void)ioctx;
	return masque_udp_now();
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ttimer *tt = arg;

	(void)fd;
	(void)what;
	(void)masque_conn_on_timer(tt->c); /* may free tt */
}

static void *io_timer_new(void *ioctx, struct masque_conn *c)
{
	struct tunio *t = ioctx;
	struct ttimer *tt = calloc(1, sizeof(*tt));

	if (tt == NULL)
		return NULL;
	tt->c = c;
	tt->ev = evtimer_new(t->base, timer_cb, tt);
	if (tt->ev == NULL) {
		free(tt);
		return NULL;
	}
	return tt;
}

static void io_timer_arm(void *ioctx, void *timer, masque_time at)
{
	struct ttimer *tt = timer;
	masque_time now = masque_udp_now();
	masque_time d = at > now ? at - now : 0;
	struct timeval tv;

	(void)ioctx;
	tv.tv_sec = (time_t)(d / 1000000000u);
	tv.tv_usec = (suseconds_t)(d % 1000000000u / 1000u);
	if (d > 0 && tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_usec = 1;
	evtimer_add(tt->ev, &tv);
}

static void io_timer_free(void *ioctx, void *timer)
{
	struct ttimer *tt = timer;

	(void)ioctx;
	if (tt == NULL)
		return;
	event_free(tt->ev);
	free(tt);
}

static const struct masque_io tunio_io_table = {
	.send = io_send,
	.now = io_now,
	.timer_new = io_timer_new,
	.timer_arm = io_timer_arm,
	.timer_free = io_timer_free,
};

const struct masque_io *tunio_io(void)
{
	return &tunio_io_table;
}

int tunio_new(struct event_base *base, tunio_emit_fn emit, void *ctx, struct tunio **pt)
{
	struct tunio *t;

	if (base == NULL || emit == NULL || pt == NULL)
		return ZG_ERR_INVAL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return ZG_ERR_NOMEM;
	t->base = base;
	t->emit = emit;
	t->ctx = ctx;
	*pt = t;
	return 0;
}

void tunio_free(struct tunio *t)
{
	free(t);
}

void tunio_stats(const struct tunio *t, struct tunio_stats *st)
{
	if (t != NULL && st != NULL)
		*st = t->st;
}
