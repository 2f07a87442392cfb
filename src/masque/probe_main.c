/*
 * zgate-probe — the first thing an operator runs: connects to a relay with
 * a client certificate, opens a CONNECT-IP tunnel, prints the assigned
 * addresses and advertised routes, and pings a target through the tunnel.
 * No TUN device and no privileges needed.
 *
 * --echo-server turns it into a trivial relay that answers ICMP echo
 * itself (no lwIP, no policy): a reference peer for tests and for
 * measuring the transport alone. Its test options --assign and
 * --advertise make it a misbehaving relay that hands out whatever
 * addresses and routes a test names (the agent's evil-relay scenario).
 * On the client side, --advertise announces routes on the tunnel as a
 * zgate-connector does, and --udp sends UDP datagrams instead of echo
 * requests: with a connector's certificate, a misbehaving connector (the
 * relay's connector-path scenario).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <nghttp3/nghttp3.h>

#include "be.h"
#include "cksum.h"
#include "hostport.h"
#include "log.h"
#include "masque/masque.h"
#include "masque/udp.h"
#include "masque/uri.h"
#include "opt.h"
#include "zg_err.h"

#define MAXSEQ 65536

struct probe {
	struct event_base *base;
	struct masque_udp *u;
	struct masque_conn *c;
	/* options */
	const char *relay, *cert, *key, *ca, *server_name, *tmpl, *target_s;
	const char *listen, *client_ca, *keylog, *qlog;
	const char *scope_target, *scope_proto;
	const char *alpn; /* testing a peer's ALPN refusal; NULL = "h3" */
	long count, interval_ms, timeout_ms, size, min_replies, flood;
	int echo_server, quiet;
	int no_request; /* --no-request: the handshake only (a relay's timeouts.request) */
	int udp;        /* --udp SPORT:DPORT: UDP datagrams instead of echo requests */
	uint16_t udp_sport, udp_dport;
	/* state */
	struct cip_addr addr4, addr6;
	int have4, have6;
	int target_v6;
	uint8_t target[16];
	uint16_t ident;
	long sent, received, dup;
	masque_time *sent_at;
	uint8_t *seen;
	double rtt_min, rtt_max, rtt_sum;
	masque_time t_start, t_open, t_flood_start, t_last_reply;
	long forgotten;
	struct event *tick, *deadline;
	int opened, failed, done;
	int exit_code;
	/* echo server */
	uint32_t next_host;
	uint64_t echoed;
	struct cip_addr assign[MASQUE_MAX_ADDRS]; /* --assign: sent as given */
	size_t nassign;
	struct cip_route adv[64]; /* --advertise: instead of 0.0.0.0/0 */
	size_t nadv;
	long adv_times, adv_sent; /* --advertise-times: announcements, made so far */
};

static struct probe P;

/* ------------------------------------------------------------------ */
/* packets                                                            */

/* ICMPv6 checksum over the pseudo-header (RFC 8200 §8.1). */
static uint16_t icmp6_sum(const uint8_t *src, const uint8_t *dst, const uint8_t *icmp, size_t n)
{
	uint32_t s = 0;

	s = cksum_add(s, src, 16);
	s = cksum_add(s, dst, 16);
	s += (uint32_t)(n >> 16) + (uint32_t)(n & 0xffff);
	s += 58;
	return cksum_fold(cksum_add(s, icmp, n));
}

/* Zeroes pkt and writes an IPv4 or IPv6 header (as the target's version)
 * from our address to the target, for a payload of protocol proto and
 * paylen bytes; the IPv4 header checksum included. */
static void ip_header(uint8_t *pkt, uint8_t proto, size_t paylen)
{
	if (!P.target_v6) {
		memset(pkt, 0, 20 + paylen);
		pkt[0] = 0x45;
		be16_put(pkt + 2, (uint16_t)(20 + paylen));
		pkt[8] = 64;
		pkt[9] = proto;
		memcpy(pkt + 12, P.addr4.addr, 4);
		memcpy(pkt + 16, P.target, 4);
		be16_put(pkt + 10, cksum_fold(cksum_add(0, pkt, 20)));
	} else {
		memset(pkt, 0, 40 + paylen);
		pkt[0] = 0x60;
		be16_put(pkt + 4, (uint16_t)paylen);
		pkt[6] = proto;
		pkt[7] = 64;
		memcpy(pkt + 8, P.addr6.addr, 16);
		memcpy(pkt + 24, P.target, 16);
	}
}

/* Builds an echo request; returns its length. */
static size_t build_echo(uint8_t *pkt, size_t cap, uint16_t seq, masque_time now)
{
	size_t hl = P.target_v6 ? 40 : 20, il = 8 + (size_t)P.size, n = hl + il;
	uint8_t *icmp = pkt + hl;

	if (n > cap)
		return 0;
	ip_header(pkt, P.target_v6 ? 58 : 1, il);
	icmp[0] = P.target_v6 ? 128 : 8;
	be16_put(icmp + 4, P.ident);
	be16_put(icmp + 6, seq);
	if (P.size >= (long)sizeof(now))
		memcpy(icmp + 8, &now, sizeof(now));
	if (!P.target_v6)
		be16_put(icmp + 2, cksum_fold(cksum_add(0, icmp, il)));
	else
		be16_put(icmp + 2, icmp6_sum(pkt + 8, pkt + 24, icmp, il));
	return n;
}

/* --udp: a UDP datagram of --size bytes (its sequence number first) from
 * our address and udp_sport to the target's udp_dport; returns its
 * length, 0 when it does not fit cap. */
static size_t build_udp(uint8_t *pkt, size_t cap, uint16_t seq)
{
	size_t hl = P.target_v6 ? 40 : 20, ul = 8 + (size_t)P.size, n = hl + ul;
	uint8_t *udp = pkt + hl;
	uint32_t sum;

	if (n > cap || ul > 65535)
		return 0;
	ip_header(pkt, 17, ul);
	be16_put(udp, P.udp_sport);
	be16_put(udp + 2, P.udp_dport);
	be16_put(udp + 4, (uint16_t)ul);
	if (P.size >= 2)
		be16_put(udp + 8, seq);
	/* the pseudo-header (RFC 768, RFC 8200 8.1), then the datagram */
	sum = P.target_v6 ? cksum_add(0, pkt + 8, 32) : cksum_add(0, pkt + 12, 8);
	sum += 17 + (uint32_t)ul;
	sum = cksum_fold(cksum_add(sum, udp, ul));
	be16_put(udp + 6, sum == 0 ? 0xffff : (uint16_t)sum);
	return n;
}

/* ------------------------------------------------------------------ */
/* client                                                             */

static void finish(int code)
{
	P.exit_code = code;
	P.done = 1;
	event_base_loopbreak(P.base);
}

static void print_summary(void)
{
	long lost = P.sent - P.received;

	if (P.udp) {
		printf("--- %ld UDP datagrams sent\n", P.sent);
		fflush(stdout);
		return;
	}
	printf("--- %ld sent, %ld received, %ld%% loss", P.sent, P.received,
	       P.sent ? lost * 100 / P.sent : 0);
	if (P.received > 0)
		printf(", rtt min/avg/max %.3f/%.3f/%.3f ms", P.rtt_min, P.rtt_sum / (double)P.received,
		       P.rtt_max);
	printf("\n");
	if (P.flood && P.c != NULL) {
		struct masque_stats st;

		masque_conn_stats(P.c, &st);
		printf("tunnel: %llu sent, %llu dropped (congestion), %llu too big, %llu received\n",
		       (unsigned long long)st.pkts_out, (unsigned long long)st.drop_congested,
		       (unsigned long long)st.drop_too_big, (unsigned long long)st.pkts_in);
	}
	if (P.flood && P.received > 0) {
		double s = (double)(P.t_last_reply - P.t_flood_start) / 1e9;
		double bits = (double)P.received * (double)(P.size + 28) * 8;

		printf("flood: %.0f replies/s, %.3f Gbit/s of echo payload each way\n",
		       (double)P.received / s, bits / s / 1e9);
	}
	fflush(stdout);
}

static void send_one(void)
{
	uint8_t pkt[70000];
	masque_time now = masque_udp_now();
	size_t n;
	int r;

	n = P.udp ? build_udp(pkt, sizeof(pkt), (uint16_t)P.sent)
		  : build_echo(pkt, sizeof(pkt), (uint16_t)P.sent, now);
	P.sent_at[P.sent % MAXSEQ] = now;
	r = masque_conn_send(P.c, pkt, n);
	if (r == ZG_ERR_TOO_LARGE) {
		fprintf(stderr, "zgate-probe: %zu-byte packet does not fit the tunnel (max %zu)\n", n,
			masque_conn_max_packet(P.c));
		finish(2);
		return;
	}
	P.sent++;
}

static void advertise_more(struct masque_conn *c);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (P.c == NULL || P.done)
		return;
	advertise_more(P.c);
	if (P.flood) {
		long burst = 256;
		masque_time now = masque_udp_now();

		/* Keep up to 1024 echoes in flight; after 50 ms without a
		 * reply the missing ones count as lost and sending goes on. */
		if (now - P.t_last_reply > 50 * 1000000ull) {
			P.forgotten = P.sent - P.received;
			if (P.sent >= P.flood) {
				print_summary();
				finish(P.received >= P.min_replies ? 0 : 1);
				return;
			}
		}
		while (burst-- > 0 && P.sent < P.flood &&
		       P.sent - P.received - P.forgotten < 1024)
			send_one();
		return;
	}
	if (P.sent < P.count)
		send_one();
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (!P.opened)
		fprintf(stderr, "zgate-probe: no tunnel after %ld ms\n", P.timeout_ms);
	print_summary();
	finish(P.opened && P.received >= P.min_replies ? 0 : 1);
}

static void arm_deadline(long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(P.deadline, &tv);
}

static void start_pinging(void)
{
	struct timeval tv = { P.interval_ms / 1000, P.flood ? 200 : (P.interval_ms % 1000) * 1000 };

	P.ident = (uint16_t)getpid();
	P.t_last_reply = P.t_flood_start = masque_udp_now();
	P.tick = event_new(P.base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(P.tick, &tv);
	tick_cb(-1, 0, NULL);
	arm_deadline(P.flood ? P.timeout_ms : P.count * P.interval_ms + P.timeout_ms);
}

/* --advertise as a connector announces what it serves; --advertise-times
 * N announces N times, every other time without the last route (a
 * connector whose prefixes flap). What the tunnel cannot take yet goes on
 * the next tick. */
static void advertise_more(struct masque_conn *c)
{
	while (P.nadv > 0 && P.adv_sent < P.adv_times) {
		size_t n = P.adv_sent % 2 == 1 ? P.nadv - 1 : P.nadv;
		int r = masque_conn_send_routes(c, P.adv, n);

		if (r == ZG_ERR_LIMIT)
			return;
		if (r != 0) {
			fprintf(stderr, "zgate-probe: --advertise: %s\n", zg_strerror(r));
			P.adv_times = P.adv_sent;
			return;
		}
		if (++P.adv_sent == P.adv_times) {
			if (P.adv_times == 1)
				printf("advertised %zu routes\n", P.nadv);
			else
				printf("advertised %ld times, the last %zu routes\n", P.adv_times, n);
			fflush(stdout);
		}
	}
}

static void on_open(struct masque_conn *c, void *ctx)
{
	const char *group = masque_conn_tls_group(c);

	(void)ctx;
	P.t_open = masque_udp_now();
	printf("connected to %s in %.1f ms (key exchange %s, QUIC datagrams: %s, max packet %zu "
	       "bytes)\n",
	       P.relay, (double)(P.t_open - P.t_start) / 1e6, group ? group : "?",
	       masque_conn_datagrams(c) ? "yes" : "no", masque_conn_max_packet(c));
	advertise_more(c);
	fflush(stdout);
}

static void print_addr(const char *what, const struct cip_addr *a)
{
	char s[INET6_ADDRSTRLEN];

	inet_ntop(a->version == 4 ? AF_INET : AF_INET6, a->addr, s, sizeof(s));
	printf("%s %s/%u\n", what, s, a->prefix_len);
}

static void on_addresses(struct masque_conn *c, const struct cip_addr *a, size_t n, void *ctx)
{
	size_t i;
	int first = !P.opened;

	(void)c;
	(void)ctx;
	for (i = 0; i < n; i++) {
		static const uint8_t zero[16];

		if (memcmp(a[i].addr, zero, a[i].version == 4 ? 4 : 16) == 0)
			continue; /* a refused request */
		if (a[i].version == 4) {
			if (P.have4 && memcmp(P.addr4.addr, a[i].addr, 4) == 0 &&
			    P.addr4.prefix_len == a[i].prefix_len)
				continue; /* the answer to our request repeats it */
			P.addr4 = a[i];
			P.have4 = 1;
		} else {
			if (P.have6 && memcmp(P.addr6.addr, a[i].addr, 16) == 0 &&
			    P.addr6.prefix_len == a[i].prefix_len)
				continue;
			P.addr6 = a[i];
			P.have6 = 1;
		}
		print_addr("address", &a[i]);
	}
	/* Ping once we hold an address of the target's family. The relay
	 * answers our ADDRESS_REQUEST after its own ADDRESS_ASSIGN, so the
	 * first usable set may come in either. */
	if (first && ((P.target_v6 && P.have6) || (!P.target_v6 && P.have4))) {
		P.opened = 1;
		if (P.target_s != NULL)
			start_pinging();
		else {
			print_summary();
			finish(0);
		}
	}
}

static void on_routes(struct masque_conn *c, const struct cip_route *r, size_t n, void *ctx)
{
	size_t i;

	(void)c;
	(void)ctx;
	for (i = 0; i < n; i++) {
		char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
		int af = r[i].version == 4 ? AF_INET : AF_INET6;

		inet_ntop(af, r[i].start, a, sizeof(a));
		inet_ntop(af, r[i].end, b, sizeof(b));
		if (r[i].proto)
			printf("route %s-%s proto %u\n", a, b, r[i].proto);
		else
			printf("route %s-%s\n", a, b);
	}
	if (n == 0)
		printf("route (none)\n");
}

static void on_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	const uint8_t *icmp;
	size_t hl;
	uint16_t seq;
	masque_time now = masque_udp_now();
	double rtt;
	char src[INET6_ADDRSTRLEN];

	(void)c;
	(void)ctx;
	if (len < 28)
		return;
	if ((pkt[0] >> 4) == 4 && !P.target_v6) {
		hl = (size_t)(pkt[0] & 15) * 4;
		if (pkt[9] != 1 || len < hl + 8)
			return;
		icmp = pkt + hl;
		if (icmp[0] != 0) {
			inet_ntop(AF_INET, pkt + 12, src, sizeof(src));
			if (!P.quiet && !P.flood)
				printf("ICMP type %u code %u from %s\n", icmp[0], icmp[1], src);
			return;
		}
		inet_ntop(AF_INET, pkt + 12, src, sizeof(src));
	} else if ((pkt[0] >> 4) == 6 && P.target_v6 && len >= 48) {
		if (pkt[6] != 58)
			return;
		icmp = pkt + 40;
		hl = 40;
		if (icmp[0] != 129) {
			inet_ntop(AF_INET6, pkt + 8, src, sizeof(src));
			if (!P.quiet && !P.flood)
				printf("ICMPv6 type %u code %u from %s\n", icmp[0], icmp[1], src);
			return;
		}
		inet_ntop(AF_INET6, pkt + 8, src, sizeof(src));
	} else {
		return;
	}
	if (be16_get(icmp + 4) != P.ident)
		return;
	seq = be16_get(icmp + 6);
	if (P.seen[seq]) {
		P.dup++;
		return;
	}
	P.seen[seq] = 1;
	P.received++;
	P.t_last_reply = now;
	rtt = (double)(now - P.sent_at[seq]) / 1e6;
	if (P.received == 1 || rtt < P.rtt_min)
		P.rtt_min = rtt;
	if (rtt > P.rtt_max)
		P.rtt_max = rtt;
	P.rtt_sum += rtt;
	if (!P.flood && !P.quiet)
		printf("reply from %s: icmp_seq=%u bytes=%zu time=%.3f ms\n", src, seq, len - hl, rtt);
	fflush(stdout);
	if ((!P.flood && P.received >= P.count) ||
	    (P.flood && (P.received >= P.flood || (P.sent >= P.flood && P.received + P.forgotten >= P.flood)))) {
		print_summary();
		finish(0);
	}
}

static void on_goaway(struct masque_conn *c, void *ctx)
{
	(void)c;
	(void)ctx;
	fprintf(stderr, "zgate-probe: relay is shutting down (GOAWAY)\n");
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	(void)c;
	(void)ctx;
	P.c = NULL;
	if (!P.done) {
		fprintf(stderr, "zgate-probe: connection closed: %s\n", ci->reason);
		if (P.opened)
			print_summary();
		/* --no-request: the relay closing the connection is the answer */
		finish((P.no_request && ci->app_error == NGHTTP3_H3_REQUEST_REJECTED) ||
				       (P.opened && P.received >= P.min_replies)
			       ? 0
			       : 1);
	}
}

/* --scope-target (address, prefix or DNS name; default *) and
 * --scope-proto (0-255; default *) fill the template variables. */
static int scope_from_options(struct uri_scope *sc)
{
	char buf[300], *slash;
	int len = -1;

	memset(sc, 0, sizeof(*sc));
	sc->any_target = P.scope_target == NULL || strcmp(P.scope_target, "*") == 0;
	sc->any_proto = P.scope_proto == NULL || strcmp(P.scope_proto, "*") == 0;
	if (!sc->any_proto) {
		char *end;
		long v = strtol(P.scope_proto, &end, 10);

		if (*end || end == P.scope_proto || v < 0 || v > 255) {
			fprintf(stderr, "zgate-probe: --scope-proto %s: expected 0-255 or *\n",
				P.scope_proto);
			return -1;
		}
		sc->ipproto = (uint8_t)v;
	}
	if (sc->any_target)
		return 0;
	(void)snprintf(buf, sizeof(buf), "%s", P.scope_target);
	slash = strchr(buf, '/');
	if (slash != NULL) {
		*slash = '\0';
		len = atoi(slash + 1);
	}
	if (inet_pton(AF_INET, buf, sc->target.addr) == 1) {
		sc->target.version = 4;
		sc->target.prefix_len = (uint8_t)(len >= 0 && len <= 32 ? len : 32);
	} else if (inet_pton(AF_INET6, buf, sc->target.addr) == 1) {
		sc->target.version = 6;
		sc->target.prefix_len = (uint8_t)(len >= 0 && len <= 128 ? len : 128);
	} else if (slash == NULL && strlen(buf) <= URI_DNS_MAX) {
		(void)snprintf(sc->dns, sizeof(sc->dns), "%.*s", (int)(sizeof(sc->dns) - 1), buf);
	} else {
		fprintf(stderr, "zgate-probe: --scope-target %s: expected an address, a prefix or a "
				"DNS name\n",
			P.scope_target);
		return -1;
	}
	return 0;
}

static int run_client(void)
{
	struct masque_config cfg;
	struct masque_cbs cbs;
	WOLFSSL_CTX *tls = NULL;
	char err[512], host[256], authority[300], path[1024], tmpl[1200];
	struct uri_scope any;
	uint16_t port;
	int r;

	if (P.relay == NULL || P.cert == NULL || P.key == NULL || P.ca == NULL) {
		fprintf(stderr, "zgate-probe: --relay, --cert, --key and --ca are required "
				"(see --help)\n");
		return 2;
	}
	if (hostport_split(P.relay, host, sizeof(host), &port) != 0 || host[0] == '\0') {
		fprintf(stderr, "zgate-probe: --relay %s: expected HOST:PORT\n", P.relay);
		return 2;
	}
	if (P.target_s != NULL) {
		if (inet_pton(AF_INET, P.target_s, P.target) == 1) {
			P.target_v6 = 0;
		} else if (inet_pton(AF_INET6, P.target_s, P.target) == 1) {
			P.target_v6 = 1;
		} else {
			fprintf(stderr, "zgate-probe: --target %s: not an IPv4 or IPv6 address\n",
				P.target_s);
			return 2;
		}
	}
	if (P.tmpl == NULL) {
		(void)snprintf(tmpl, sizeof(tmpl),
			       strchr(host, ':') ? "https://[%s]:%u/.well-known/masque/ip/{target}/{ipproto}/"
						 : "https://%s:%u/.well-known/masque/ip/{target}/{ipproto}/",
			       host, port);
		P.tmpl = tmpl;
	}
	if (uri_template_check(P.tmpl, err, sizeof(err)) != 0) {
		fprintf(stderr, "zgate-probe: --template %s: %s\n", P.tmpl, err);
		return 2;
	}
	if (scope_from_options(&any) != 0)
		return 2;
	if (P.nadv > 0 && cip_routes_normalize(P.adv, P.nadv, sizeof(P.adv) / sizeof(P.adv[0]),
					       &P.nadv) != 0) {
		fprintf(stderr, "zgate-probe: --advertise: cannot make an advertisement of them\n");
		return 2;
	}
	if (P.adv_times > 1 && P.nadv < 2) {
		fprintf(stderr, "zgate-probe: --advertise-times needs two --advertise or more\n");
		return 2;
	}
	if (P.udp && (P.target_s == NULL || P.flood)) {
		fprintf(stderr, "zgate-probe: --udp needs --target, and not --flood\n");
		return 2;
	}
	if (uri_expand(P.tmpl, &any, authority, sizeof(authority), path, sizeof(path)) != 0) {
		fprintf(stderr, "zgate-probe: --template %s: cannot expand\n", P.tmpl);
		return 2;
	}
	if (tls_client_ctx_new(P.cert, P.key, P.ca, &tls, err, sizeof(err)) != 0) {
		fprintf(stderr, "zgate-probe: %s\n", err);
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.tls = tls;
	cfg.server_name = P.server_name ? P.server_name : host;
	cfg.authority = authority;
	cfg.path = path;
	cfg.nwant = 1;
	cfg.want[0].version = P.target_v6 ? 6 : 4;
	cfg.want[0].prefix_len = P.target_v6 ? 128 : 32;
	cfg.keylog_file = P.keylog;
	cfg.qlog_dir = P.qlog;
	cfg.test_alpn = P.alpn;
	cfg.test_no_request = P.no_request;
	memset(&cbs, 0, sizeof(cbs));
	cbs.on_open = on_open;
	cbs.on_addresses = on_addresses;
	cbs.on_routes = on_routes;
	cbs.on_packet = on_packet;
	cbs.on_goaway = on_goaway;
	cbs.on_close = on_close;
	P.sent_at = calloc(MAXSEQ, sizeof(*P.sent_at));
	P.seen = calloc(MAXSEQ, 1);
	if (P.sent_at == NULL || P.seen == NULL)
		return 2;
	P.t_start = masque_udp_now();
	P.deadline = evtimer_new(P.base, deadline_cb, NULL);
	arm_deadline(P.timeout_ms);
	r = masque_udp_client_new(P.base, P.relay, &cfg, &cbs, NULL, &P.u, &P.c, err, sizeof(err));
	if (r != 0) {
		fprintf(stderr, "zgate-probe: %s\n", err);
		wolfSSL_CTX_free(tls);
		return 2;
	}
	event_base_dispatch(P.base);
	P.done = 1;
	masque_udp_del(P.u);
	if (P.tick)
		event_free(P.tick);
	event_free(P.deadline);
	wolfSSL_CTX_free(tls);
	free(P.sent_at);
	free(P.seen);
	return P.exit_code;
}

/* ------------------------------------------------------------------ */
/* echo server                                                        */

static struct cip_route all4 = { 4, { 0, 0, 0, 0 }, { 255, 255, 255, 255 }, 0 };

/* Parses "a.b.c.d/len", "x::/len" or an address for --assign/--advertise;
 * the bits after len must be zero (as ADDRESS_ASSIGN requires). */
static int es_parse_prefix(const char *s, struct cip_addr *a)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max, len, b;
	char *end;

	memset(a, 0, sizeof(*a));
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, a->addr) == 1)
		a->version = 4;
	else if (inet_pton(AF_INET6, buf, a->addr) == 1)
		a->version = 6;
	else
		return -1;
	max = a->version == 4 ? 32 : 128;
	len = max;
	if (slash != NULL) {
		unsigned long v = strtoul(slash + 1, &end, 10);

		if (*end || end == slash + 1 || v > max)
			return -1;
		len = (unsigned)v;
	}
	for (b = len; b < max; b++)
		if (a->addr[b / 8] & (0x80u >> (b % 8)))
			return -1;
	a->prefix_len = (uint8_t)len;
	return 0;
}

/* --advertise PREFIX: the range it spans, any protocol. */
static void es_prefix_range(const struct cip_addr *a, struct cip_route *r)
{
	unsigned max = a->version == 4 ? 32 : 128;

	memset(r, 0, sizeof(*r));
	r->version = a->version;
	memcpy(r->start, a->addr, 16);
	memcpy(r->end, a->addr, 16);
	for (unsigned b = a->prefix_len; b < max; b++)
		r->end[b / 8] |= (uint8_t)(0x80u >> (b % 8));
}

static int es_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	uint32_t a = 0x0a640002u + P.next_host++ % 250; /* 10.100.0.2 ... */
	char path[256];

	(void)ctx;
	log_info("tunnel for %s (%s)", rq->identity, log_escape(rq->path, path, sizeof(path)));
	if (P.nassign > 0 || P.nadv > 0) { /* test options: as told */
		memcpy(acc->addrs, P.assign, P.nassign * sizeof(P.assign[0]));
		acc->naddrs = P.nassign;
		acc->routes = P.adv;
		acc->nroutes = P.nadv;
		return 200;
	}
	acc->naddrs = 1;
	acc->addrs[0].version = 4;
	acc->addrs[0].addr[0] = (uint8_t)(a >> 24);
	acc->addrs[0].addr[1] = (uint8_t)(a >> 16);
	acc->addrs[0].addr[2] = (uint8_t)(a >> 8);
	acc->addrs[0].addr[3] = (uint8_t)a;
	acc->addrs[0].prefix_len = 32;
	memcpy(&acc->routes, &(struct cip_route *){ &all4 }, sizeof(acc->routes));
	acc->nroutes = 1;
	masque_conn_set_data(c, (void *)(uintptr_t)a);
	return 200;
}

static int es_address_request(struct masque_conn *c, const struct cip_addr *req, size_t n,
			      struct cip_addr *out, size_t *nout, void *ctx)
{
	uint32_t a = (uint32_t)(uintptr_t)masque_conn_data(c);
	size_t i;

	(void)ctx;
	if (P.nassign > 0 || P.nadv > 0) {
		/* --assign: the whole set again, each request answered by the
		 * first address of its version, or refused */
		size_t k = P.nassign;

		memcpy(out, P.assign, k * sizeof(out[0]));
		for (i = 0; i < n; i++) {
			size_t j;

			for (j = 0; j < P.nassign; j++)
				if (out[j].version == req[i].version && out[j].request_id == 0) {
					out[j].request_id = req[i].request_id;
					break;
				}
			if (j == P.nassign && k < MASQUE_MAX_ADDRS)
				(void)cip_addr_refusal(&req[i], &out[k++]);
		}
		*nout = k;
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (req[i].version != 4) {
			(void)cip_addr_refusal(&req[i], &out[i]);
			continue;
		}
		out[i] = req[i];
		out[i].addr[0] = (uint8_t)(a >> 24);
		out[i].addr[1] = (uint8_t)(a >> 16);
		out[i].addr[2] = (uint8_t)(a >> 8);
		out[i].addr[3] = (uint8_t)a;
		out[i].prefix_len = 32;
	}
	*nout = n;
	return 0;
}

/* Answers IPv4 ICMP echo requests; everything else is dropped. */
static void es_packet(struct masque_conn *c, const uint8_t *pkt, size_t len, void *ctx)
{
	uint8_t out[65536];
	size_t hl;

	(void)ctx;
	if (len < 28 || len > sizeof(out) || (pkt[0] >> 4) != 4 || pkt[9] != 1)
		return;
	hl = (size_t)(pkt[0] & 15) * 4;
	if (hl < 20 || len < hl + 8 || pkt[hl] != 8)
		return;
	memcpy(out, pkt, len);
	memcpy(out + 12, pkt + 16, 4);
	memcpy(out + 16, pkt + 12, 4);
	out[8] = 64;
	out[10] = out[11] = 0;
	be16_put(out + 10, cksum_fold(cksum_add(0, out, hl)));
	out[hl] = 0;
	out[hl + 2] = out[hl + 3] = 0;
	be16_put(out + hl + 2, cksum_fold(cksum_add(0, out + hl, len - hl)));
	if (masque_conn_send(c, out, len) == 0)
		P.echoed++;
}

static void es_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	(void)ctx;
	log_info("connection from %s closed: %s", masque_conn_identity(c)[0] ? masque_conn_identity(c) : "(no identity)",
		 ci->reason);
}

static void es_reject(const struct sockaddr *peer, socklen_t len, enum tls_reject why, void *ctx)
{
	char host[INET6_ADDRSTRLEN] = "?";

	(void)len;
	(void)ctx;
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, host, sizeof(host));
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, host,
			  sizeof(host));
	log_warnx("client certificate from %s refused: %s", host, tls_reject_name(why));
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(P.base);
}

static int run_echo_server(void)
{
	struct masque_config cfg;
	struct masque_cbs cbs;
	struct masque_server *srv;
	struct event *sigterm, *sigint;
	WOLFSSL_CTX *tls = NULL;
	char err[512], tmpl[300];
	int r;

	if (P.cert == NULL || P.key == NULL || P.client_ca == NULL) {
		fprintf(stderr, "zgate-probe --echo-server: --cert, --key and --client-ca are "
				"required\n");
		return 2;
	}
	/* --advertise in any order: an advertisement is sorted and disjoint */
	if (P.nadv > 0 && cip_routes_normalize(P.adv, P.nadv, sizeof(P.adv) / sizeof(P.adv[0]),
					       &P.nadv) != 0) {
		fprintf(stderr, "zgate-probe: --advertise: cannot make an advertisement of them\n");
		return 2;
	}
	if (tls_server_ctx_new(P.cert, P.key, P.client_ca, NULL, &tls, err, sizeof(err)) != 0) {
		fprintf(stderr, "zgate-probe: %s\n", err);
		return 2;
	}
	(void)snprintf(tmpl, sizeof(tmpl),
		       "https://relay:443/.well-known/masque/ip/{target}/{ipproto}/");
	memset(&cfg, 0, sizeof(cfg));
	cfg.tls = tls;
	cfg.uri_template = P.tmpl ? P.tmpl : tmpl;
	cfg.keylog_file = P.keylog;
	cfg.qlog_dir = P.qlog;
	cfg.test_alpn = P.alpn;
	memset(&cbs, 0, sizeof(cbs));
	cbs.on_request = es_request;
	cbs.on_address_request = es_address_request;
	cbs.on_packet = es_packet;
	cbs.on_close = es_close;
	cbs.on_reject = es_reject;
	r = masque_udp_server_new(P.base, P.listen, &cfg, &cbs, NULL, &P.u, &srv, err, sizeof(err));
	if (r != 0) {
		fprintf(stderr, "zgate-probe: --listen %s\n", err);
		wolfSSL_CTX_free(tls);
		return 2;
	}
	printf("echo server on UDP port %d\n", masque_udp_port(P.u));
	fflush(stdout);
	sigterm = evsignal_new(P.base, SIGTERM, stop_cb, NULL);
	sigint = evsignal_new(P.base, SIGINT, stop_cb, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	event_base_dispatch(P.base);
	log_info("stopping; %llu echo replies sent", (unsigned long long)P.echoed);
	masque_udp_del(P.u);
	event_free(sigterm);
	event_free(sigint);
	wolfSSL_CTX_free(tls);
	return 0;
}

/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zgate-probe --relay HOST:PORT --cert FILE --key FILE --ca FILE [options]\n"
		"       zgate-probe --echo-server --listen HOST:PORT --cert FILE --key FILE "
		"--client-ca FILE\n"
		"\n"
		"Opens a CONNECT-IP tunnel (RFC 9484) to a zgate relay, prints the assigned\n"
		"address and the advertised routes, then pings --target through the tunnel.\n"
		"Needs no TUN device and no privileges.\n"
		"\n"
		"  --relay HOST:PORT      relay address (UDP)\n"
		"  --cert FILE, --key FILE  client certificate and key (PEM)\n"
		"  --ca FILE              CA the relay's certificate must chain to\n"
		"  --server-name NAME     name the relay's certificate must carry (default: HOST)\n"
		"  --template URI         CONNECT-IP URI template (default:\n"
		"                         https://HOST:PORT/.well-known/masque/ip/{target}/{ipproto}/)\n"
		"  --target ADDR          IPv4/IPv6 address to ping; without it, stop after the\n"
		"                         address and routes arrive\n"
		"  --scope-target T       ask for a tunnel to T only: an address, a prefix\n"
		"                         (a.b.c.d/len) or a DNS name (default: *)\n"
		"  --scope-proto N        ask for IP protocol N only (default: *)\n"
		"  --count N              echo requests (default 3)\n"
		"  --interval DURATION    between requests (default 200ms; a bare number\n"
		"                         is milliseconds, kept for old scripts)\n"
		"  --size BYTES           ICMP payload (default 56)\n"
		"  --timeout DURATION     give up after this long without progress (default\n"
		"                         5s; a bare number is seconds, kept for old scripts)\n"
		"  --min-replies N        replies needed for exit 0 (default: --count, or half\n"
		"                         of --flood)\n"
		"  --flood N              send N requests as fast as the tunnel takes them and\n"
		"                         report the rate\n"
		"  --quiet                only the summary (a boolean: --quiet=false undoes it)\n"
		"  --alpn LIST            offer (echo server: accept) these ALPN protocols,\n"
		"                         comma-separated, instead of h3: to check that the\n"
		"                         peer refuses them (\"\" = none)\n"
		"  --no-request           complete the handshake but never ask for a tunnel:\n"
		"                         to check that the relay closes such a connection\n"
		"                         (timeouts.request); exit 0 when it does so with\n"
		"                         H3_REQUEST_REJECTED\n"
		"  --keylog FILE          write TLS secrets (debugging only: decrypts traffic)\n"
		"  --qlog-dir DIR         write a qlog per connection\n"
		"  --log-level LEVEL      error, warn, info (default), debug\n"
		"  --log-format FORMAT    text (default) or json (one JSON object per line)\n"
		"  --echo-server          serve instead: answer ICMP echo from every tunnel\n"
		"  --listen HOST:PORT     echo server address (default :4433)\n"
		"  --client-ca FILE       echo server: CA for client certificates\n"
		"  --assign PREFIX        echo server, test option: assign this address or\n"
		"                         prefix as given, unchecked (repeatable, up to 8)\n"
		"  --advertise PREFIX     echo server, test option: advertise this route\n"
		"                         instead of 0.0.0.0/0 (repeatable, up to 64); with\n"
		"                         --assign only, no route. Together they make a\n"
		"                         misbehaving relay for testing clients. Client, test\n"
		"                         option: announce these routes once the tunnel is\n"
		"                         open, as zgate-connector announces its prefixes\n"
		"  --advertise-times N    client, test option: announce them N times, every\n"
		"                         other time without the last (default 1): a\n"
		"                         connector whose prefixes flap\n"
		"  --udp SPORT:DPORT      client, test option: send --count UDP datagrams of\n"
		"                         --size bytes from port SPORT to --target port DPORT\n"
		"                         instead of echo requests (no replies expected:\n"
		"                         --min-replies defaults to 0). With a connector's\n"
		"                         certificate, a misbehaving connector\n"
		"  -h, --help             this text\n"
		"  --version              version, git commit and the linked libraries' versions\n"
		"\n"
		"A value follows its flag (--count 5) or an equals sign (--count=5).\n"
		"Durations take a unit: ms, s, m or h (500ms, 2s).\n"
		"\n" OPT_HELP_EXIT
		"(0 when the tunnel opened and enough replies came back, 1 when not, 2 for\n"
		"the command line or a certificate that does not load.)\n");
}

enum {
	O_RELAY = 1,
	O_CERT,
	O_KEY,
	O_CA,
	O_SNI,
	O_TMPL,
	O_TARGET,
	O_COUNT,
	O_INTERVAL,
	O_SIZE,
	O_TIMEOUT,
	O_MIN,
	O_FLOOD,
	O_QUIET,
	O_KEYLOG,
	O_QLOG,
	O_LOG,
	O_LOGFMT,
	O_ECHO,
	O_LISTEN,
	O_CLIENT_CA,
	O_HELP,
	O_VERSION,
	O_SCOPE_T,
	O_SCOPE_P,
	O_ASSIGN,
	O_ADVERTISE,
	O_ALPN,
	O_NO_REQUEST,
	O_UDP,
	O_ADV_TIMES
};

/* "SPORT:DPORT" (--udp): 0, or -1 when it is not two ports 1-65535. */
static int parse_ports(const char *val, uint16_t *psport, uint16_t *pdport)
{
	const char *colon = strchr(val, ':');
	char sp[8];
	uint64_t a, b;

	if (colon == NULL || (size_t)(colon - val) >= sizeof(sp))
		return -1;
	memcpy(sp, val, (size_t)(colon - val));
	sp[colon - val] = '\0';
	if (opt_parse_uint(sp, 1, 65535, &a) != 0 || opt_parse_uint(colon + 1, 1, 65535, &b) != 0)
		return -1;
	*psport = (uint16_t)a;
	*pdport = (uint16_t)b;
	return 0;
}

/* The probe's options; the rules of the command line are opt_next()'s,
 * the same as the relay's and the agent's. */
static const struct probe_opt {
	const char *name;
	int id;
	enum opt_arg kind;
} probe_opts[] = {
	{ "relay", O_RELAY, OPT_ARG_VALUE },
	{ "cert", O_CERT, OPT_ARG_VALUE },
	{ "key", O_KEY, OPT_ARG_VALUE },
	{ "ca", O_CA, OPT_ARG_VALUE },
	{ "server-name", O_SNI, OPT_ARG_VALUE },
	{ "template", O_TMPL, OPT_ARG_VALUE },
	{ "target", O_TARGET, OPT_ARG_VALUE },
	{ "scope-target", O_SCOPE_T, OPT_ARG_VALUE },
	{ "scope-proto", O_SCOPE_P, OPT_ARG_VALUE },
	{ "count", O_COUNT, OPT_ARG_VALUE },
	{ "interval", O_INTERVAL, OPT_ARG_VALUE },
	{ "size", O_SIZE, OPT_ARG_VALUE },
	{ "timeout", O_TIMEOUT, OPT_ARG_VALUE },
	{ "min-replies", O_MIN, OPT_ARG_VALUE },
	{ "flood", O_FLOOD, OPT_ARG_VALUE },
	{ "quiet", O_QUIET, OPT_ARG_BOOL },
	{ "keylog", O_KEYLOG, OPT_ARG_VALUE },
	{ "qlog-dir", O_QLOG, OPT_ARG_VALUE },
	{ "log-level", O_LOG, OPT_ARG_VALUE },
	{ "log-format", O_LOGFMT, OPT_ARG_VALUE },
	{ "echo-server", O_ECHO, OPT_ARG_BOOL },
	{ "listen", O_LISTEN, OPT_ARG_VALUE },
	{ "client-ca", O_CLIENT_CA, OPT_ARG_VALUE },
	{ "assign", O_ASSIGN, OPT_ARG_VALUE },
	{ "advertise", O_ADVERTISE, OPT_ARG_VALUE },
	{ "alpn", O_ALPN, OPT_ARG_VALUE },
	{ "no-request", O_NO_REQUEST, OPT_ARG_BOOL },
	{ "udp", O_UDP, OPT_ARG_VALUE },
	{ "advertise-times", O_ADV_TIMES, OPT_ARG_VALUE },
	{ "help", O_HELP, OPT_ARG_NONE },
	{ "version", O_VERSION, OPT_ARG_NONE },
};

static const struct probe_opt *probe_opt_find(const char *name)
{
	for (size_t i = 0; i < sizeof(probe_opts) / sizeof(probe_opts[0]); i++)
		if (strcmp(probe_opts[i].name, name) == 0)
			return &probe_opts[i];
	return NULL;
}

static enum opt_arg probe_opt_kind(const char *name, void *ctx)
{
	const struct probe_opt *o = probe_opt_find(name);

	(void)ctx;
	return o != NULL ? o->kind : OPT_ARG_UNKNOWN;
}

int main(int argc, char **argv)
{
	struct {
		int id;
		long *dst, lo, hi;
	} nums[] = {
		{ O_COUNT, &P.count, 1, MAXSEQ - 1 },
		{ O_SIZE, &P.size, 0, 65000 },
		{ O_MIN, &P.min_replies, 0, MAXSEQ - 1 },
		{ O_FLOOD, &P.flood, 1, MAXSEQ - 1 },
		{ O_ADV_TIMES, &P.adv_times, 1, 1000000 },
	};
	struct {
		int id;
		long *dst;
		uint32_t bare_ms, lo, hi;
	} durs[] = {
		{ O_INTERVAL, &P.interval_ms, 1, 1, 60000 },
		{ O_TIMEOUT, &P.timeout_ms, 1000, 100, 3600000 },
	};
	struct opt_cmdline c;
	enum log_level lvl;
	enum log_format lfmt;
	char err[256];
	const char *val;
	int o, r, b = 0;
	size_t i;

	P.count = 3;
	P.adv_times = 1;
	P.interval_ms = 200;
	P.size = 56;
	P.timeout_ms = 5000;
	P.min_replies = -1;
	P.listen = ":4433";
	/* --help and --version win over anything else on the line */
	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
			usage(stdout);
			return OPT_EXIT_OK;
		}
	}
	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--version") == 0) {
			char v[1024];

			(void)opt_version("zgate-probe", v, sizeof(v));
			fputs(v, stdout);
			return OPT_EXIT_OK;
		}
	}
	memset(&c, 0, sizeof(c));
	c.argc = argc;
	c.argv = argv;
	c.i = 1;
	c.kind = probe_opt_kind;
	while ((r = opt_next(&c, err, sizeof(err))) == 1) {
		o = probe_opt_find(c.name)->id;
		val = c.value;
		for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
			uint64_t v;

			if (nums[i].id != o)
				continue;
			if (opt_parse_uint(val, (uint64_t)nums[i].lo, (uint64_t)nums[i].hi, &v) != 0) {
				fprintf(stderr, "zgate-probe: --%s %s: expected a number from %ld to %ld\n",
					c.name, val, nums[i].lo, nums[i].hi);
				return OPT_EXIT_USAGE;
			}
			*nums[i].dst = (long)v;
		}
		for (i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
			uint32_t ms;

			if (durs[i].id != o)
				continue;
			if (opt_parse_duration_bare(val, durs[i].bare_ms, &ms) != 0 ||
			    ms < durs[i].lo || ms > durs[i].hi) {
				fprintf(stderr,
					"zgate-probe: --%s %s: expected a duration from %ums to %ums "
					"(a whole number with ms, s, m or h: 500ms, 2s)\n",
					c.name, val, durs[i].lo, durs[i].hi);
				return OPT_EXIT_USAGE;
			}
			*durs[i].dst = (long)ms;
		}
		if (c.kind(c.name, NULL) == OPT_ARG_BOOL && opt_parse_bool(val, &b) != 0) {
			fprintf(stderr, "zgate-probe: --%s=%s: expected true or false\n", c.name, val);
			return OPT_EXIT_USAGE;
		}
		switch (o) {
		case O_RELAY:
			P.relay = val;
			break;
		case O_CERT:
			P.cert = val;
			break;
		case O_KEY:
			P.key = val;
			break;
		case O_CA:
			P.ca = val;
			break;
		case O_SNI:
			P.server_name = val;
			break;
		case O_TMPL:
			P.tmpl = val;
			break;
		case O_TARGET:
			P.target_s = val;
			break;
		case O_SCOPE_T:
			P.scope_target = val;
			break;
		case O_SCOPE_P:
			P.scope_proto = val;
			break;
		case O_NO_REQUEST:
			P.no_request = b;
			break;
		case O_UDP:
			if (parse_ports(val, &P.udp_sport, &P.udp_dport) != 0) {
				fprintf(stderr, "zgate-probe: --udp %s: expected SPORT:DPORT, two ports "
						"from 1 to 65535\n",
					val);
				return OPT_EXIT_USAGE;
			}
			P.udp = 1;
			break;
		case O_QUIET:
			P.quiet = b;
			break;
		case O_KEYLOG:
			P.keylog = val;
			break;
		case O_QLOG:
			P.qlog = val;
			break;
		case O_ECHO:
			P.echo_server = b;
			break;
		case O_LISTEN:
			P.listen = val;
			break;
		case O_CLIENT_CA:
			P.client_ca = val;
			break;
		case O_ASSIGN:
		case O_ADVERTISE: {
			struct cip_addr a;
			int full = o == O_ASSIGN ? P.nassign == MASQUE_MAX_ADDRS
						 : P.nadv == sizeof(P.adv) / sizeof(P.adv[0]);

			if (es_parse_prefix(val, &a) != 0 || full) {
				fprintf(stderr, "zgate-probe: --%s %s: %s\n",
					o == O_ASSIGN ? "assign" : "advertise", val,
					full ? "too many" : "expected an address or a prefix "
							    "with no bits after its length");
				return OPT_EXIT_USAGE;
			}
			if (o == O_ASSIGN)
				P.assign[P.nassign++] = a;
			else
				es_prefix_range(&a, &P.adv[P.nadv++]);
			break;
		}
		case O_ALPN:
			if (strlen(val) > TLS_ALPN_LIST_MAX) {
				fprintf(stderr, "zgate-probe: --alpn: longer than %d bytes\n",
					TLS_ALPN_LIST_MAX);
				return OPT_EXIT_USAGE;
			}
			P.alpn = val;
			break;
		case O_LOG:
			if (log_level_parse(val, &lvl) != 0) {
				fprintf(stderr, "zgate-probe: --log-level %s: expected error, warn, "
						"info or debug\n",
					val);
				return OPT_EXIT_USAGE;
			}
			log_set_level(lvl);
			break;
		case O_LOGFMT:
			if (log_format_parse(val, &lfmt) != 0) {
				fprintf(stderr, "zgate-probe: --log-format %s: expected text or json\n",
					val);
				return OPT_EXIT_USAGE;
			}
			log_set_format(lfmt);
			break;
		default:
			break;
		}
	}
	if (r != 0) {
		fprintf(stderr, "zgate-probe: %s\n", err);
		return OPT_EXIT_USAGE;
	}
	if (P.min_replies < 0)
		P.min_replies = P.flood ? P.flood / 2 : (P.target_s && !P.udp ? P.count : 0);
	signal(SIGPIPE, SIG_IGN);
	P.base = masque_udp_base_new();
	if (P.base == NULL)
		return OPT_EXIT_FAILURE;
	r = P.echo_server ? run_echo_server() : run_client();
	event_base_free(P.base);
	return r;
}
