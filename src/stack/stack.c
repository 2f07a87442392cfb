/*
 * stack.c — the stack instance: lwIP port glue, the accept-any netif, the
 * ingress ACL and the timers (one-shot, armed only while something is
 * pending: see "timers" below).
 *
 * Accepting every destination without forking lwIP: lwIP only takes packets
 * addressed to its netif, so stack_lwip_input() writes the packet's
 * destination into netif->ip_addr (IPv4) or into a spare ip6_addr slot
 * marked preferred (IPv6), calls ip4_input()/ip6_input(), and restores the
 * resting value. netif_set_ipaddr() is not used: it aborts the pcbs bound to
 * the old address. lwIP keeps no reference to the netif address once input
 * returns: pcbs copy ip_current_dest_addr() into local_ip, and output routes
 * through the single default netif whatever the source.
 * Only SYNs the flow code re-injects (after the upstream connect succeeded)
 * reach the per-port listeners; every other SYN is held by the ACL.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include "fnv.h"
#include "log.h"
#include "stack_int.h"
#include "zg_err.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/ip6.h"
#include "lwip/nd6.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/stats.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "stack_hooks.h"
#pragma GCC diagnostic pop

#define V6_SLOT 1    /* the ip6_addr slot rewritten per packet */
#define SWEEP_MS 250 /* least time between two flow scans (each is O(flows)) */

static struct stack *the_stack; /* lwIP is a process-wide singleton */
static int lwip_ready;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
stack_now(struct stack *st)
{
	if (st->in_now != 0)
		return st->in_now;
	return st->cb.now_ms ? st->cb.now_ms(st->ctx) : mono_ms();
}

/* lwIP's clock (NO_SYS): the stack's clock, so tests can move it. */
u32_t sys_now(void)
{
	if (the_stack != NULL)
		return (u32_t)stack_now(the_stack);
	return (u32_t)mono_ms();
}

uint32_t stack_addr_hash(const struct stack_addr *a)
{
	return fnv32_bytes(FNV32_INIT, a->a, a->version == 4 ? 4 : 16);
}

int stack_addr_eq(const struct stack_addr *a, const struct stack_addr *b)
{
	if (a->version != b->version)
		return 0;
	if (a->version == 4)
		return memcmp(a->a, b->a, 4) == 0;
	if (a->version == 6)
		return memcmp(a->a, b->a, 16) == 0;
	return 1;
}

void stack_addr_str(const struct stack_addr *a, char *buf, size_t len)
{
	if (a->version == 0)
		(void)snprintf(buf, len, "-");
	else
		inet_ntop(a->version == 4 ? AF_INET : AF_INET6, a->a, buf, (socklen_t)len);
}

int stack_prefix_contains(const struct stack_prefix *p, const struct stack_addr *a)
{
	unsigned bits = p->len, i;

	if (p->addr.version != a->version)
		return 0;
	if (bits > (a->version == 4 ? 32u : 128u))
		return 0;
	for (i = 0; i < bits / 8; i++)
		if (p->addr.a[i] != a->a[i])
			return 0;
	if (bits % 8) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));

		if ((p->addr.a[i] & mask) != (a->a[i] & mask))
			return 0;
	}
	return 1;
}

const char *stack_proto_name(uint8_t p)
{
	switch (p) {
	case STACK_PROTO_TCP:
		return "tcp";
	case STACK_PROTO_UDP:
		return "udp";
	case STACK_PROTO_ICMP:
		return "icmp";
	case STACK_PROTO_ICMPV6:
		return "icmpv6";
	default:
		return "other";
	}
}

void stack_config_defaults(struct stack_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mtu = 1280;
	cfg->max_flows = 100000;
	cfg->max_flows_per_client = 1000;
	/* measured: a 1,000-connection burst from one client keeps up to a
	 * few hundred connects in progress; SYNs past this wait (dropped,
	 * retransmitted), they are not refused */
	cfg->max_halfopen_per_client = 512;
	cfg->max_udp_per_client = 500;
	cfg->tcp_idle_ms = 2 * 3600 * 1000;
	cfg->tcp_close_ms = 60 * 1000;
	cfg->udp_idle_ms = 60 * 1000;
	cfg->dns_idle_ms = 10 * 1000;
	cfg->icmp_idle_ms = 10 * 1000;
	cfg->connect_timeout_ms = 10 * 1000;
	cfg->handshake_timeout_ms = 10 * 1000;
	cfg->icmp_errors_per_s = 500;
	cfg->icmp_errors_burst = 250;
	cfg->icmp_errors_per_client_per_s = 20;
	cfg->icmp_errors_per_client_burst = 20;
	cfg->audit_limits_per_s = 20;
	cfg->audit_limits_per_client_per_s = 5;
	cfg->max_lwip_bytes = 1024ull * 1024 * 1024;
	cfg->max_client_bytes = 32ull * 1024 * 1024;
	cfg->fd_reserve = 0;
	cfg->fd_client_pct = 50;
	/* the relay sets its own (limits.time_wait); this is the connector's */
	cfg->max_time_wait = 512;
}

uint64_t
stack_lwip_mem_used(void)
{
	return stack_mem_live();
}

/* Slots in the per-client allowance tables: clients refused at the same
 * time beyond this share slots (and may get a fresh allowance when they
 * evict each other; the global cap still holds). */
#define RL_SLOTS 1024

int stack_limit_audit_ok(struct stack *st, const char *client_id)
{
	return rl_fair_take(&st->audit_rl, client_id, strlen(client_id),
			    stack_now(st)) == RL_PASS;
}

void stack_emit(struct stack *st, const struct stack_addr *dst, const uint8_t *pkt,
		size_t len)
{
	st->cnt.pkts_out++;
	st->cnt.bytes_out += len;
	st->cb.output(st->ctx, dst, pkt, len);
}

void stack_refuse(struct stack *st, const uint8_t *orig, const struct pkt_info *pi,
		  enum pkt_unreach why, int rst, uint64_t scope)
{
	uint8_t out[1280], key[8 + sizeof(pi->src)];
	size_t n;

	/* never answer an error with an error (RFC 1122 3.2.2, RFC 4443 2.4) */
	if (pi->proto == STACK_PROTO_TCP && (pi->tcp_flags & PKT_TCP_RST))
		return;
	if ((pi->proto == STACK_PROTO_ICMP && pi->icmp_type != PKT_ICMP4_ECHO) ||
	    (pi->proto == STACK_PROTO_ICMPV6 && pi->icmp_type < 128))
		return;
	/* keyed by the tunnel address (the ACL matched it to the tunnel) and
	 * the scope that tells clients sharing it apart */
	memcpy(key, &scope, 8);
	memcpy(key + 8, &pi->src, sizeof(pi->src));
	if (rl_fair_take(&st->err_rl, key, sizeof(key), stack_now(st)) != RL_PASS) {
		st->cnt.errors_ratelimited++;
		return;
	}
	if (rst && pi->proto == STACK_PROTO_TCP) {
		n = pkt_build_rst(out, sizeof(out), pi);
		if (n > 0)
			st->cnt.rsts_sent++;
	} else {
		n = pkt_build_unreach(out, sizeof(out), st->cfg.mtu, orig, pi,
				      why);
		if (n > 0)
			st->cnt.icmp_errors_sent++;
	}
	if (n > 0)
		stack_emit(st, &pi->src, out, n);
}

void stack_audit(struct stack *st, enum stack_event_type type, const struct flow *f,
		 const char *reason)
{
	struct stack_event ev;
	const char *cid = f->acct ? f->acct->id : "";

	if (st->cb.audit == NULL)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.flow.client_id = cid;
	ev.flow.session = f->session;
	ev.flow.src = f->src;
	ev.flow.dst = f->dst;
	ev.flow.proto = f->proto;
	ev.flow.sport = f->sport;
	ev.flow.dport = f->dport;
	ev.rule_id = f->rule_id;
	ev.reason = reason;
	ev.bytes_up = f->bytes_up;
	ev.bytes_down = f->bytes_down;
	if (type == STACK_EV_CLOSE)
		ev.duration_ms = stack_now(st) - f->created_ms;
	st->cb.audit(st->ctx, &ev);
}

/* ---------------------------------------------------------------- netif */

static err_t
netif_out_common(struct netif *netif, struct pbuf *p)
{
	struct stack *st = netif->state;
	struct stack_addr dst;
	u16_t len = p->tot_len;
	const uint8_t *b = st->obuf;

	/* A segment tcp_write() built is one pbuf: sent from where it is.
	 * Chains are copied (tot_len is a u16_t: always fits STACK_BUF). */
	if (len < 20)
		return ERR_OK;
	if (p->len == len)
		b = p->payload;
	else if (pbuf_copy_partial(p, st->obuf, len, 0) != len)
		return ERR_OK;
	memset(&dst, 0, sizeof(dst));
	if ((b[0] >> 4) == 4) {
		dst.version = 4;
		memcpy(dst.a, b + 16, 4);
	} else if ((b[0] >> 4) == 6 && len >= 40) {
		dst.version = 6;
		memcpy(dst.a, b + 24, 16);
	} else {
		return ERR_OK;
	}
	stack_ackq_output(st, &dst, b, len);
	return ERR_OK;
}

static err_t
netif_output4(struct netif *netif, struct pbuf *p, const ip4_addr_t *ipaddr)
{
	(void)ipaddr;
	return netif_out_common(netif, p);
}

static err_t
netif_output6(struct netif *netif, struct pbuf *p, const ip6_addr_t *ipaddr)
{
	(void)ipaddr;
	return netif_out_common(netif, p);
}

static err_t
netif_init_cb(struct netif *netif)
{
	struct stack *st = netif->state;

	netif->name[0] = 'z';
	netif->name[1] = 'g';
	netif->mtu = st->cfg.mtu;
	netif->flags = 0; /* point-to-point: no ARP, no broadcast */
	netif->output = netif_output4;
	netif->output_ip6 = netif_output6;
	return ERR_OK;
}

void stack_lwip_ip(ip_addr_t *ip, const struct stack_addr *a)
{
	memset(ip, 0, sizeof(*ip));
	if (a->version == 4) {
		IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V4);
		memcpy(&ip_2_ip4(ip)->addr, a->a, 4);
	} else {
		IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V6);
		memcpy(ip_2_ip6(ip)->addr, a->a, 16);
	}
}

/* Frees the n oldest TIME-WAIT pcbs, in one pass: lwIP's list is newest
 * first, and tcp_abort() of its last pcb walked the whole list again to
 * unlink it. The oldest are cut off the list at once, then each leaves
 * as tcp_abort() has a TIME-WAIT pcb leave (tcp_pcb_remove(), tcp_free()),
 * from the cut list whose head it is: no walk. */
static void
tw_evict_oldest(size_t n, size_t have)
{
	struct tcp_pcb *keep, *cut;
	size_t k = have > n ? have - n : 0; /* pcbs kept */

	if (k == 0) {
		cut = tcp_tw_pcbs;
		tcp_tw_pcbs = NULL;
	} else {
		keep = tcp_tw_pcbs;
		for (size_t i = 1; i < k && keep != NULL; i++)
			keep = keep->next;
		if (keep == NULL)
			return;
		cut = keep->next;
		keep->next = NULL;
	}
	while (cut != NULL) {
		struct tcp_pcb *pcb = cut;

		stack_pcb_tw_del(pcb); /* not in tcp_tw_pcbs: the hook does not run */
		tcp_pcb_remove(&cut, pcb);
		tcp_free(pcb);
	}
}

/*
 * Why: a client that closes second (the server spoke last, as in HTTP/1.0)
 * leaves lwIP in TIME_WAIT and itself in CLOSED, free to reuse the port.
 * lwIP answers a new SYN on that tuple with an ACK (RFC 9293), ignores the
 * client's RST (RFC 1337) and so stalls the connect until TIME_WAIT ends;
 * at a few thousand connections a second every port comes round again
 * within TIME_WAIT. Reopening on a larger sequence number is what Linux and
 * the BSDs do; the cap is Linux's tcp_max_tw_buckets. The TIME-WAIT pcbs
 * are indexed (pcbhash.c): this costs a lookup per SYN, and when over the
 * cap one pass frees the oldest eighth (a pass per max_time_wait / 8 new
 * connections, not one per SYN).
 */
int stack_tw_admit(struct stack *st, const struct pkt_info *pi)
{
	struct tcp_pcb *match;
	ip_addr_t lip, rip;
	size_t n = stack_pcbhash_tw_count();

	stack_lwip_ip(&lip, &pi->dst);
	stack_lwip_ip(&rip, &pi->src);
	match = stack_pcb_tw_find(&lip, pi->dport, &rip, pi->sport);
	if (match != NULL) {
		if (!TCP_SEQ_GT(pi->tcp_seq, match->rcv_nxt)) {
			st->cnt.tw_refused++;
			return -1;
		}
		stack_pcb_tw_retire(match); /* freed by lwIP's next slow timer */
		st->cnt.tw_reopened++;
		n--;
	}
	if (n > st->cfg.max_time_wait) {
		size_t evict = n - (st->cfg.max_time_wait - st->cfg.max_time_wait / 8);

		tw_evict_oldest(evict, n);
		st->cnt.tw_evicted += evict;
	}
	return 0;
}

void stack_lwip_input(struct stack *st, const uint8_t *pkt, size_t len,
		      const struct pkt_info *pi)
{
	struct netif *nif = &st->netif;
	struct pbuf *p;

	if (len > 0xffff)
		return;
	p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
	if (p == NULL) {
		st->cnt.drop_malformed++;
		return;
	}
	memcpy(p->payload, pkt, len);
	if (pi->version == 4) {
		ip4_addr_t saved = *netif_ip4_addr(nif);

		memcpy(&ip_2_ip4(&nif->ip_addr)->addr, pi->dst.a, 4);
		ip4_input(p, nif); /* consumes p whatever it returns */
		ip4_addr_copy(*ip_2_ip4(&nif->ip_addr), saved);
	} else {
		ip6_addr_t *a = ip_2_ip6(&nif->ip6_addr[V6_SLOT]);

		memcpy(a->addr, pi->dst.a, 16);
		nif->ip6_addr_state[V6_SLOT] = IP6_ADDR_PREFERRED;
		ip6_input(p, nif); /* consumes p whatever it returns */
		nif->ip6_addr_state[V6_SLOT] = IP6_ADDR_INVALID;
		memset(a->addr, 0, 16);
	}
}

/* ---------------------------------------------------------------- ingress */

int stack_dst_forbidden(const struct stack *st, const struct stack_addr *dst)
{
	struct stack_addr v4;
	size_t i;

	for (i = 0; i < st->cfg.n_exempt; i++)
		if (stack_prefix_contains(&st->exempt[i], dst))
			return 0;
	if (pkt_addr_never_reachable(dst))
		return 1;
	for (i = 0; i < st->cfg.n_forbidden; i++)
		if (stack_prefix_contains(&st->forbidden[i], dst))
			return 1;
	for (i = 0; i < st->n_local; i++)
		if (stack_addr_eq(&st->local[i], dst))
			return 1;
	/* a NAT64 gateway on the relay's path would carry 64:ff9b::a.b.c.d
	 * to a.b.c.d: the same rules as for a.b.c.d itself */
	if (pkt_v6_embedded_v4(dst, &v4))
		return stack_dst_forbidden(st, &v4);
	return 0;
}

int stack_set_local_addresses(struct stack *st, const struct stack_addr *a,
			      size_t n)
{
	size_t i, k = 0;

	if (st == NULL || (a == NULL && n > 0))
		return ZG_ERR_INVAL;
	for (i = 0; i < n && k < STACK_MAX_LOCAL; i++)
		if (a[i].version == 4 || a[i].version == 6)
			st->local[k++] = a[i];
	st->n_local = k;
	return i < n ? ZG_ERR_LIMIT : 0;
}

static void
echo_local(struct stack *st, const uint8_t *pkt, const struct pkt_info *pi)
{
	struct stack_addr ll;
	size_t n;

	memset(&ll, 0, sizeof(ll));
	ll.version = 6;
	ll.a[0] = 0xfe;
	ll.a[1] = 0x80;
	ll.a[15] = 1; /* fe80::1, the relay's end of the tunnel */
	n = pkt_build_echo_reply(st->obuf, sizeof(st->obuf), &ll, &pi->src,
				 pi->icmp_id, pi->icmp_seq,
				 pkt + pi->payload_off, pi->payload_len);
	if (n == 0 || n > st->cfg.mtu) {
		st->cnt.drop_too_big++;
		return;
	}
	st->cnt.echo_local++;
	stack_emit(st, &pi->src, st->obuf, n);
}

/* 1 if the packet starts a new flow when no flow matches it. */
static int
starts_flow(const struct pkt_info *pi)
{
	switch (pi->proto) {
	case STACK_PROTO_TCP:
		return (pi->tcp_flags & (PKT_TCP_SYN | PKT_TCP_ACK | PKT_TCP_RST)) ==
		       PKT_TCP_SYN;
	case STACK_PROTO_UDP:
		return 1;
	case STACK_PROTO_ICMP:
		return pi->icmp_type == PKT_ICMP4_ECHO && pi->icmp_code == 0;
	case STACK_PROTO_ICMPV6:
		return pi->icmp_type == PKT_ICMP6_ECHO && pi->icmp_code == 0;
	default:
		return 0;
	}
}

static void
audit_refusal(struct stack *st, enum stack_event_type type, void *session,
	      const struct stack_client *client, const struct pkt_info *pi,
	      const char *rule_id, const char *reason)
{
	struct stack_event ev;

	if (st->cb.audit == NULL)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.flow.client_id = client->id;
	ev.flow.session = session;
	ev.flow.src = pi->src;
	ev.flow.dst = pi->dst;
	ev.flow.proto = pi->proto;
	ev.flow.sport = pi->proto == STACK_PROTO_TCP || pi->proto == STACK_PROTO_UDP ? pi->sport : pi->icmp_id;
	ev.flow.dport = pi->proto == STACK_PROTO_TCP || pi->proto == STACK_PROTO_UDP ? pi->dport : 0;
	ev.rule_id = rule_id ? rule_id : "";
	ev.reason = reason;
	st->cb.audit(st->ctx, &ev);
}

static void
input_packet(struct stack *st, void *session, const struct stack_client *client,
	     const uint8_t *pkt, size_t len)
{
	struct pkt_info pi;
	const struct stack_addr *vip;
	struct stack_flow_info fi;
	struct flow *f;
	const char *rule = NULL;
	uint16_t sport, dport;
	int r;

	st->cnt.pkts_in++;
	st->cnt.bytes_in += len;

	/* The TCP checksum of a SYN is checked here because a SYN opens a
	 * host socket before lwIP would verify it; every other TCP segment's
	 * is left to lwIP, which checks it anyway (summing each data segment
	 * twice cost the relay 7 % of its time in bulk transfers). */
	r = pkt_parse(pkt, len, 0, &pi);
	if (r == 0 && pi.proto == STACK_PROTO_TCP && (pi.tcp_flags & PKT_TCP_SYN) &&
	    !pkt_l4_csum_ok(pkt, &pi))
		r = ZG_ERR_MALFORMED;
	if (r != 0) {
		st->cnt.drop_malformed++;
		return;
	}

	/* (1) C18: the source must be the tunnel's own address */
	vip = pi.version == 4 ? &client->vip4 : &client->vip6;
	if (vip->version != pi.version || !stack_addr_eq(vip, &pi.src)) {
		st->cnt.drop_spoofed++;
		return;
	}
	if (pi.fragment) {
		st->cnt.drop_fragment++;
		return;
	}

	/* C20: link-local multicast echo (ff02::1 for MTU probing) is
	 * answered here, from the relay's link-local address; nothing
	 * link-local ever leaves the tunnel */
	if (pi.proto == STACK_PROTO_ICMPV6 && pi.icmp_type == PKT_ICMP6_ECHO &&
	    pi.dst.a[0] == 0xff && (pi.dst.a[1] & 0x0f) == 0x02) {
		echo_local(st, pkt, &pi);
		return;
	}

	/* the relay's own services (DNS) on the gateway addresses */
	if (stack_service_input(st, session, client, pkt, len, &pi))
		return;

	/* (2) never-reachable destinations, the tunnel's own address */
	if (stack_dst_forbidden(st, &pi.dst) || stack_addr_eq(&pi.dst, &pi.src)) {
		st->cnt.drop_forbidden++;
		if (starts_flow(&pi)) {
			stack_refuse(st, pkt, &pi, PKT_UNREACH_ADMIN, 0,
				     client->scope);
			audit_refusal(st, STACK_EV_DENY, session, client, &pi,
				      NULL, "forbidden-destination");
		}
		return;
	}

	switch (pi.proto) {
	case STACK_PROTO_TCP:
		sport = pi.sport;
		dport = pi.dport;
		break;
	case STACK_PROTO_UDP:
		sport = pi.sport;
		dport = pi.dport;
		break;
	case STACK_PROTO_ICMP:
	case STACK_PROTO_ICMPV6:
		if (!starts_flow(&pi)) {
			/* errors and echo replies from the client are not relayed */
			st->cnt.drop_unsupported++;
			return;
		}
		sport = pi.icmp_id;
		dport = 0;
		break;
	default:
		st->cnt.drop_unsupported++;
		return;
	}

	f = flow_lookup(st, pi.proto, &pi.src, sport, &pi.dst, dport);
	if (f != NULL && strcmp(f->acct->id, client->id) != 0) {
		/* another client's flow from an address this client holds now
		 * (the address went back to the pool, or to a colliding
		 * session): never that client's traffic, its bytes or its
		 * policy; it ends, and this packet is a new flow's */
		flow_abort(f, "address-reused");
		f = NULL;
	}
	if (f != NULL) {
		flow_packet(f, pkt, len, &pi);
		return;
	}
	if (!starts_flow(&pi)) {
		/* TCP without a flow: lwIP answers with RST (or ignores a RST);
		 * no SYN ever reaches a listener this way. */
		if (pi.proto == STACK_PROTO_TCP)
			stack_lwip_input(st, pkt, len, &pi);
		else
			st->cnt.drop_unsupported++;
		return;
	}

	/* (3) a new flow: ask the policy */
	memset(&fi, 0, sizeof(fi));
	fi.client_id = client->id;
	fi.session = session;
	fi.src = pi.src;
	fi.dst = pi.dst;
	fi.proto = pi.proto;
	fi.sport = sport;
	fi.dport = dport;
	if (st->cb.policy(st->ctx, &fi, &rule) != STACK_ALLOW) {
		st->cnt.drop_denied++;
		stack_refuse(st, pkt, &pi, PKT_UNREACH_ADMIN,
			     pi.proto == STACK_PROTO_TCP, client->scope);
		audit_refusal(st, STACK_EV_DENY, session, client, &pi, rule,
			      "policy");
		return;
	}
	flow_start(st, session, client, pkt, &pi, rule ? rule : "");
}

int stack_input(struct stack *st, void *session, const struct stack_client *client,
		const uint8_t *pkt, size_t len)
{
	if (st == NULL || client == NULL || client->id == NULL ||
	    (pkt == NULL && len > 0))
		return ZG_ERR_INVAL;
	st->in_session = session;
	st->in_client = client->id;
	st->in_scope = client->scope;
	st->in_now = stack_now(st);
	input_packet(st, session, client, pkt, len);
	st->in_session = NULL;
	st->in_client = NULL;
	st->in_scope = 0;
	stack_rearm(st);
	st->in_now = 0;
	return 0;
}

int stack_packet_owner(struct stack *st, const uint8_t *pkt, size_t len, void **psession,
		       const char **pclient)
{
	struct pkt_info pi;
	struct flow *f = NULL;

	*psession = NULL;
	*pclient = NULL;
	if (pkt_parse(pkt, len, 0, &pi) == 0) {
		/* the flow as the client started it: from the packet's
		 * destination to its source */
		if (pi.proto == STACK_PROTO_TCP || pi.proto == STACK_PROTO_UDP)
			f = flow_lookup(st, pi.proto, &pi.dst, pi.dport, &pi.src, pi.sport);
		else if ((pi.proto == STACK_PROTO_ICMP && pi.icmp_type == 0) ||
			 (pi.proto == STACK_PROTO_ICMPV6 && pi.icmp_type == 129))
			f = flow_lookup(st, pi.proto, &pi.dst, pi.icmp_id, &pi.src, 0);
	}
	if (f != NULL && f->acct != NULL) {
		*psession = f->session;
		*pclient = f->acct->id;
		return 0;
	}
	if (st->in_client != NULL) {
		*psession = st->in_session;
		*pclient = st->in_client;
		return 0;
	}
	return ZG_ERR_NOTFOUND;
}

/* ---------------------------------------------------------------- timers */

/*
 * One one-shot libevent timer (tick_ev) serves two clocks:
 *  - lwIP's timeouts: sys_timeouts_sleeptime() says when the next one is
 *    due. With the ND6 timer cancelled (lwip_drop_nd6_timer) the only one
 *    left is tcp_tmr, which lwIP keeps every 250 ms while any TCP pcb is
 *    active or in TIME_WAIT and stops by itself afterwards.
 *  - the flows' own deadlines (connect, handshake and idle timeouts), which
 *    lwIP knows nothing about and which UDP and ICMP flows have without any
 *    pcb. Keeping them exact would need a priority queue updated on every
 *    packet; instead flow_sweep() records the earliest deadline it saw
 *    (sweep_due) and new flows and state changes can only lower it. Traffic
 *    only moves deadlines later, so sweep_due is a lower bound: the scan may
 *    run early, find nothing due and compute a later bound, never late.
 *    Scans stay at least SWEEP_MS apart so that 100,000 flows with spread
 *    deadlines cost at most four O(flows) scans a second, as the periodic
 *    tick did; without flows there is no scan at all.
 * The timer is re-armed at the end of every entry point (stack_rearm) and
 * not armed when neither clock has anything pending: a relay without flows
 * does not wake up. (Open TCP flows, even idle ones, keep lwIP's tcp_tmr
 * and so a wake-up every 250 ms: lwIP runs it while any pcb exists.)
 */

static uint64_t
expiry_at(struct stack *st, uint64_t now)
{
	uint64_t due = STACK_NEVER;
	u32_t sleep = sys_timeouts_sleeptime();

	if (sleep != SYS_TIMEOUTS_SLEEPTIME_INFINITE)
		due = now + sleep;
	if (st->listeners_idle > 0 && st->listeners_due < due)
		due = st->listeners_due;
	if (st->sweep_due != STACK_NEVER) {
		uint64_t scan = st->last_sweep_ms + SWEEP_MS;

		if (scan < st->sweep_due)
			scan = st->sweep_due;
		if (scan < due)
			due = scan;
	}
	return due;
}

uint64_t
stack_expiry(struct stack *st)
{
	return expiry_at(st, stack_now(st));
}

void stack_rearm(struct stack *st)
{
	struct timeval tv;
	uint64_t now, due, ms;

	now = stack_now(st);
	if (st->listeners_idle > STACK_LISTENERS_IDLE_MAX ||
	    (st->listeners_idle > 0 && now >= st->listeners_due))
		flow_listeners_gc(st);
	due = expiry_at(st, now);
	/* the same deadline still ahead: the pending timer is right. A passed
	 * one is armed again with no delay (it fires on the next loop turn). */
	if (due == st->armed_ms && due > now)
		return;
	if (due == STACK_NEVER) {
		event_del(st->tick_ev);
		st->armed_ms = STACK_NEVER;
		return;
	}
	ms = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	/* event_add() of a pending event moves it. It fails only when
	 * libevent cannot grow its timer heap; the next entry point retries. */
	st->armed_ms = event_add(st->tick_ev, &tv) == 0 ? due : STACK_NEVER;
}

void stack_tick(struct stack *st)
{
	uint64_t now = stack_now(st);

	sys_check_timeouts();
	if (now >= st->sweep_due && now - st->last_sweep_ms >= SWEEP_MS) {
		st->last_sweep_ms = now;
		flow_sweep(st, now);
	}
	stack_rearm(st);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stack *st = arg;

	(void)fd;
	(void)what;
	st->armed_ms = STACK_NEVER; /* one-shot: no longer pending */
	stack_tick(st);
}

/* lwip_init() arms a 1 s cyclic timer for nd6_tmr(), which ages neighbour,
 * destination, router and prefix caches and runs DAD. Here they stay empty
 * and no address is ever tentative: only TCP reaches lwIP (the ACL drops
 * NDP before it), output_ip6 sends without neighbour resolution, and the
 * per-packet IPv6 address is set PREFERRED directly. The timer would only
 * wake an idle relay every second, so it is cancelled. */
static void
lwip_drop_nd6_timer(void)
{
	int i;

	for (i = 0; i < lwip_num_cyclic_timers; i++)
		if (lwip_cyclic_timers[i].handler == nd6_tmr)
			sys_untimeout(lwip_cyclic_timer,
				      LWIP_CONST_CAST(void *, &lwip_cyclic_timers[i]));
}

void stack_get_counters(const struct stack *st, struct stack_counters *pc)
{
	*pc = st->cnt;
	pc->lwip_mem_used = stack_lwip_mem_used();
	pc->tw_now = stack_pcbhash_tw_count();
	pc->lwip_tcp_chkerr = lwip_stats.tcp.chkerr;
	pc->lwip_tcp_proterr = lwip_stats.tcp.proterr;
	pc->lwip_tcp_memerr = lwip_stats.tcp.memerr;
	pc->lwip_tcp_drop = lwip_stats.tcp.drop;
}

void stack_close_client(struct stack *st, const char *client_id)
{
	struct flow *f, *next;

	for (f = st->flows; f != NULL; f = next) {
		next = f->next;
		if (f->acct != NULL && strcmp(f->acct->id, client_id) == 0)
			flow_abort(f, "session-closed");
	}
	stack_service_close_client(st, client_id);
	stack_rearm(st);
}

size_t
stack_reevaluate(struct stack *st, stack_verdict_fn fn, void *arg,
		 const char *reason)
{
	struct flow *f, *next;
	size_t closed = 0;

	if (st == NULL || fn == NULL)
		return 0;
	for (f = st->flows; f != NULL; f = next) {
		struct stack_flow_info fi;
		const char *rule = NULL;
		enum stack_verdict v;

		next = f->next;
		memset(&fi, 0, sizeof(fi));
		fi.client_id = f->acct != NULL ? f->acct->id : "";
		fi.session = f->session;
		fi.src = f->src;
		fi.dst = f->dst;
		fi.proto = f->proto;
		fi.sport = f->sport;
		fi.dport = f->dport;
		v = fn(arg, &fi, &rule);
		if (rule != NULL)
			(void)snprintf(f->rule_id, sizeof(f->rule_id), "%s", rule);
		if (v == STACK_ALLOW)
			continue;
		/* flow_abort frees f only: next stays valid */
		flow_abort(f, reason != NULL ? reason : "policy");
		closed++;
	}
	stack_rearm(st);
	return closed;
}

/* ---------------------------------------------------------------- life */

int stack_new(struct event_base *base, const struct stack_config *cfg,
	      const struct stack_callbacks *cbs, void *ctx, struct stack **pst)
{
	struct stack_config defcfg;
	struct stack *st = NULL;
	ip4_addr_t rest, mask;
	int r;

	if (base == NULL || cbs == NULL || pst == NULL || cbs->output == NULL ||
	    cbs->policy == NULL)
		return ZG_ERR_INVAL;
	if (cfg == NULL) {
		stack_config_defaults(&defcfg);
		cfg = &defcfg;
	}
	if (cfg->mtu < 1280 || cfg->max_time_wait == 0 ||
	    cfg->fd_client_pct > 100 ||
	    cfg->n_forbidden > STACK_MAX_PREFIXES ||
	    cfg->n_exempt > STACK_MAX_PREFIXES ||
	    (cfg->n_forbidden > 0 && cfg->forbidden == NULL) ||
	    (cfg->n_exempt > 0 && cfg->exempt == NULL))
		return ZG_ERR_INVAL;
	if (the_stack != NULL)
		return ZG_ERR_STATE;

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return ZG_ERR_NOMEM;
	st->base = base;
	st->cfg = *cfg;
	if (cfg->n_forbidden)
		memcpy(st->forbidden, cfg->forbidden,
		       cfg->n_forbidden * sizeof(*cfg->forbidden));
	if (cfg->n_exempt)
		memcpy(st->exempt, cfg->exempt,
		       cfg->n_exempt * sizeof(*cfg->exempt));
	st->cfg.forbidden = st->forbidden;
	st->cfg.exempt = st->exempt;
	st->cb = *cbs;
	st->ctx = ctx;
	{
		struct stack_fd_budget fb;
		struct rlimit rl;
		uint64_t nofile = 1024;

		/* the limit now: raised before the stack starts, it counts */
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
			nofile = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;
		stack_fd_budget(nofile, cfg->fd_reserve, cfg->fd_client_pct, &fb);
		st->fd_flows = fb.flows;
		st->fd_per_client = fb.per_client;
		st->cnt.fd_budget = fb.flows;
		st->cnt.fd_budget_client = fb.per_client;
		if (fb.per_client < cfg->max_flows_per_client)
			log_warnx("descriptor limit %llu: one client gets at most "
				  "%u flows (%u%% of %u; %u kept for sessions and "
				  "ops), fewer than its flow limit %u",
				  (unsigned long long)nofile, fb.per_client,
				  cfg->fd_client_pct ? cfg->fd_client_pct : 100,
				  fb.flows, fb.reserve, cfg->max_flows_per_client);
	}
	if (getrandom(st->hash_key, sizeof(st->hash_key), 0) !=
	    (ssize_t)sizeof(st->hash_key)) {
		r = ZG_ERR_IO;
		goto fail;
	}
	stack_isn_set_key(st->hash_key);
	if (stack_pcbhash_init(st->hash_key) != 0) {
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	if (rl_fair_init(&st->err_rl, RL_SLOTS, cfg->icmp_errors_per_client_per_s,
			 cfg->icmp_errors_per_client_burst, cfg->icmp_errors_per_s,
			 cfg->icmp_errors_burst, stack_siphash(st->hash_key, "err", 3),
			 0) != 0 ||
	    rl_fair_init(&st->audit_rl, RL_SLOTS,
			 cfg->audit_limits_per_client_per_s,
			 cfg->audit_limits_per_client_per_s, cfg->audit_limits_per_s,
			 cfg->audit_limits_per_s,
			 stack_siphash(st->hash_key, "audit", 5), 0) != 0) {
		r = ZG_ERR_NOMEM;
		goto fail;
	}

	st->tick_ev = event_new(base, -1, 0, tick_cb, st);
	if (st->tick_ev == NULL || stack_ackq_init(st) != 0 || stack_udpq_init(st) != 0) {
		r = ZG_ERR_NOMEM;
		goto fail;
	}

	the_stack = st;
	st->last_sweep_ms = stack_now(st);
	/* every allowance starts full, as of the stack's clock */
	rl_bucket_init(&st->err_rl.global, cfg->icmp_errors_per_s,
		       cfg->icmp_errors_burst, st->last_sweep_ms);
	rl_bucket_init(&st->audit_rl.global, cfg->audit_limits_per_s,
		       cfg->audit_limits_per_s, st->last_sweep_ms);
	st->sweep_due = STACK_NEVER;
	st->listeners_due = STACK_NEVER;
	st->armed_ms = STACK_NEVER;
	if (!lwip_ready) {
		lwip_init();
		lwip_drop_nd6_timer();
		lwip_ready = 1;
	}
	/* The resting IPv4 address must not be 0.0.0.0: ip4_route() refuses
	 * the default netif then, and segments lwIP sends outside input
	 * (timers, our writes) would find no route. 0.0.0.1 is in 0/8, which
	 * the ACL never lets through, so no packet is ever addressed to it. */
	IP4_ADDR(&rest, 0, 0, 0, 1);
	IP4_ADDR(&mask, 255, 255, 255, 255);
	if (netif_add(&st->netif, &rest, &mask, IP4_ADDR_ANY4,
		      st, netif_init_cb, ip_input) == NULL) {
		the_stack = NULL;
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	netif_set_default(&st->netif);
	netif_set_link_up(&st->netif);
	netif_set_up(&st->netif);
	/* lwIP's TCP timer may outlive a previous stack until its next run */
	stack_rearm(st);
	*pst = st;
	return 0;
fail:
	stack_pcbhash_free();
	if (st->tick_ev)
		event_free(st->tick_ev);
	stack_ackq_free(st);
	stack_udpq_free(st);
	rl_fair_free(&st->err_rl);
	rl_fair_free(&st->audit_rl);
	free(st);
	return r;
}

void stack_del(struct stack *st)
{
	struct stack_listener *l;

	if (st == NULL)
		return;
	/* the RSTs below go out at once, after what was held */
	stack_ackq_flush(st);
	st->ackq.off = 1;
	stack_udpq_flush(st);
	while (st->flows != NULL)
		flow_abort(st->flows, "shutdown");
	stack_service_free(st);
	while ((l = st->listeners) != NULL) {
		st->listeners = l->next;
		tcp_close(l->pcb);
		free(l);
	}
	/* pcbs lwIP still owns (closing, TIME_WAIT): gone with the stack */
	while (tcp_active_pcbs != NULL)
		tcp_abort(tcp_active_pcbs);
	while (tcp_tw_pcbs != NULL)
		tcp_abort(tcp_tw_pcbs);
	stack_pcbhash_free();
	netif_remove(&st->netif);
	event_free(st->tick_ev);
	stack_ackq_free(st);
	stack_udpq_free(st);
	stack_mem_trim();
	the_stack = NULL;
	rl_fair_free(&st->err_rl);
	rl_fair_free(&st->audit_rl);
	free(st);
}
