#include "agent/status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zg_err.h"

struct out {
	char *buf;
	size_t len, cap;
	int full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (o->full)
		return;
	va_start(ap, fmt);
	w = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= o->cap - o->len) {
		o->full = 1;
		return;
	}
	o->len += (size_t)w;
}

static void put_str(struct out *o, const char *s)
{
	put(o, "\"");
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			put(o, "\\%c", ch);
		else if (ch == '\n')
			put(o, "\\n");
		else if (ch == '\t')
			put(o, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			put(o, "\\u%04x", ch);
		else
			put(o, "%c", ch);
	}
	put(o, "\"");
}

static void put_prefixes(struct out *o, const struct route_prefix *p, size_t n)
{
	char s[64];

	put(o, "[");
	for (size_t i = 0; i < n; i++) {
		put(o, "%s", i ? "," : "");
		put_str(o, routes_format(&p[i], s, sizeof(s)));
	}
	put(o, "]");
}

int status_format(const struct status_info *st, char *buf, size_t buflen, size_t *pn)
{
	struct out o = { buf, 0, buflen, buflen == 0 };
	const struct status_counters *c = st->c;
	char s[64];

	put(&o, "{\"state\":");
	put_str(&o, st->state);
	put(&o, ",\"since\":%lld,\"relay\":", (long long)st->since);
	put_str(&o, st->relay);
	put(&o, ",\"tun\":");
	put_str(&o, st->tun);
	put(&o, ",\"mtu\":%u,\"addresses\":", st->mtu);
	put_prefixes(&o, st->addrs, st->naddrs);
	put(&o, ",\"routes\":");
	put_prefixes(&o, st->routes, st->nroutes);
	put(&o, ",\"relay_route\":");
	if (st->relay_route != NULL)
		put_str(&o, routes_format(st->relay_route, s, sizeof(s)));
	else
		put(&o, "null");
	put(&o, ",\"refused\":[");
	for (size_t i = 0; i < st->nrefused; i++) {
		const struct status_refusal *f = &st->refused[i];

		put(&o, "%s{\"%s\":", i ? "," : "", f->route ? "route" : "address");
		put_str(&o, routes_format(&f->p, s, sizeof(s)));
		put(&o, ",\"reason\":");
		put_str(&o, routes_refusal_name((enum route_refusal)f->why));
		put(&o, "}");
	}
	put(&o, "],\"refused_unlisted\":%zu", st->refused_unlisted);
	put(&o,
	    ",\"connects\":%llu,\"tx_packets\":%llu,\"tx_bytes\":%llu,\"rx_packets\":%llu,"
	    "\"rx_bytes\":%llu,\"drops\":{\"outage\":%llu,\"too_big\":%llu,\"congested\":%llu,"
	    "\"tun_write\":%llu,\"not_ours\":%llu,\"malformed\":%llu},\"icmp_too_big_sent\":%llu,\"last_error\":",
	    (unsigned long long)c->connects, (unsigned long long)c->tx_packets,
	    (unsigned long long)c->tx_bytes, (unsigned long long)c->rx_packets,
	    (unsigned long long)c->rx_bytes, (unsigned long long)c->drop_outage,
	    (unsigned long long)c->drop_too_big, (unsigned long long)c->drop_congested,
	    (unsigned long long)c->drop_tun_write, (unsigned long long)c->drop_not_ours,
	    (unsigned long long)c->drop_malformed, (unsigned long long)c->icmp_too_big);
	put_str(&o, st->last_error);
	if (st->quic != NULL)
		put(&o,
		    ",\"quic\":{\"srtt_us\":%llu,\"min_rtt_us\":%llu,\"cwnd\":%llu,"
		    "\"bytes_in_flight\":%llu,\"packets_sent\":%llu,\"packets_lost\":%llu,"
		    "\"queued_bytes\":%llu,\"next_timer_us\":%lld,\"tun_paused\":%s}",
		    (unsigned long long)st->quic->srtt_us, (unsigned long long)st->quic->min_rtt_us,
		    (unsigned long long)st->quic->cwnd, (unsigned long long)st->quic->bytes_in_flight,
		    (unsigned long long)st->quic->packets_sent,
		    (unsigned long long)st->quic->packets_lost,
		    (unsigned long long)st->quic->queued_bytes, (long long)st->quic->next_timer_us,
		    st->quic->tun_paused ? "true" : "false");
	else
		put(&o, ",\"quic\":null");
	put(&o, "}\n");
	if (o.full)
		return ZG_ERR_BUFSHORT;
	*pn = o.len;
	return 0;
}

int status_write_file(const char *path, const char *buf, size_t n)
{
	char tmp[4200];
	size_t off = 0;
	int fd, e;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return ZG_ERR_IO;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ZG_ERR_IO;
	while (off < n) {
		ssize_t w = write(fd, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	errno = e;
	return ZG_ERR_IO;
}
