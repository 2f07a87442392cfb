/*
 * stack_int.h — structures shared by the files of src/stack. Not for use
 * outside this folder.
 */
#ifndef ZG_STACK_INT_H
#define ZG_STACK_INT_H

#include <stddef.h>
#include <stdint.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#pragma GCC diagnostic pop

#include "pkt.h"
#include "ratelimit.h"
#include "stack.h"

struct event;

/* Per-client counts behind the per-client limits. */
struct stack_client_acct {
	struct stack_client_acct *next;
	uint32_t flows, halfopen, udp;
	uint32_t tcp_wnd_flows; /* TCP flows with a window (established) */
	uint64_t wnd;           /* the sum of their windows */
	char id[STACK_ID_MAX];
};

enum flow_state {
	FLOW_TCP_CONNECTING = 1, /* upstream connect running, SYN held */
	FLOW_TCP_INJECTED,       /* SYN given to lwIP, waiting for accept */
	FLOW_TCP_ESTABLISHED,    /* spliced */
	FLOW_UDP,
	FLOW_ICMP
};

/* the smallest MSS a flow sends with, whatever its client announced */
#define STACK_MIN_SND_MSS 48

struct flow {
	struct stack *st;
	struct flow *hnext;       /* hash chain */
	struct flow *prev, *next; /* list of all flows */
	struct stack_client_acct *acct;
	void *session;
	uint64_t scope; /* its client's stack_client.scope */
	enum flow_state state;
	uint8_t proto;
	struct stack_addr src, dst; /* as the client sees it */
	uint16_t sport, dport;      /* ICMP: sport = echo id */
	int fd;
	struct event *ev_read, *ev_write;
	uint64_t created_ms, last_ms;
	uint64_t bytes_up, bytes_down;
	char rule_id[STACK_ID_MAX];
	/* TCP */
	struct tcp_pcb *pcb;
	uint8_t *syn; /* the held SYN, while CONNECTING */
	size_t syn_len;
	/* Client bytes not yet taken by the socket: the packets lwIP handed
	 * over, in order, linked through their pbufs' next as an lwIP packet
	 * queue (each packet's tot_len covers itself only; pbuf_cat's chain,
	 * which updates every tot_len before it, made each append walk the
	 * whole queue). pending_tail is its last pbuf, meaningful only while
	 * pending is not NULL. */
	struct pbuf *pending, *pending_tail;
	int flush_queued; /* ev_write made active to write pending */
	uint32_t wnd;     /* this flow's window (budget.c); 0 before accept */
	unsigned client_fin : 1, upstream_fin : 1, shut_wr : 1,
		read_paused : 1, listener_ref : 1,
		upstream_rdhup : 1; /* the socket reported its peer's FIN (EV_CLOSED) */
	/* both FINs in: when bytes last moved either way (tcp_close_ms) */
	uint64_t progress_ms;
	unsigned udpq_n; /* UDP: datagrams in st->udpq */
};

struct stack_listener {
	struct stack_listener *next;
	struct tcp_pcb *pcb;
	uint16_t port;
	uint32_t refs;
	uint64_t idle_ms; /* refs 0: since when */
};

/* An unreferenced listener stays open this long, at most this many: a
 * client connecting to one port again and again reuses it (lwIP's close
 * of a listener walks every active and TIME-WAIT pcb, once per
 * connection). */
#define STACK_LISTENER_LINGER_MS 1000
#define STACK_LISTENERS_IDLE_MAX 64

/* A TCP connection to a service (service.c). */
struct svc_conn {
	struct svc_conn *next;
	struct stack *st;
	struct tcp_pcb *pcb;
	uint64_t id;
	void *session;
	struct stack_flow_info fi; /* src = the client, dst = the service */
	char client[STACK_ID_MAX];
	uint64_t last_ms;
	int fin;     /* the client's FIN is in: closed once the answers are taken */
	int full;    /* an answer did not fit: reset (conn_sweep_full) */
	size_t have; /* bytes of the message being read */
	uint8_t buf[2 + STACK_SVC_MAX_MSG];
};

struct stack_service {
	struct stack_addr addrs[STACK_SVC_MAX_ADDRS];
	size_t n;
	uint16_t port;
	stack_service_fn fn;
	void *ctx;
	struct tcp_pcb *listen[STACK_SVC_MAX_ADDRS]; /* one per address */
	struct svc_conn *conns;
	size_t nfull; /* conns with full set, not yet reset */
	uint64_t next_id;
	/* the client whose packet is in lwIP now (stack_service_input) */
	const struct stack_client *cur;
	void *cur_session;
	int in_input; /* inside stack_service_input: do not re-arm */
};

#define STACK_FLOW_BUCKETS 16384 /* power of two */
#define STACK_ACCT_BUCKETS 1024  /* power of two */
#define STACK_BUF 65536

/* Pure ACKs held until the end of the loop turn (ackq.c). */
#define STACK_ACKQ_MAX 32
#define STACK_ACKQ_PKT 60 /* IPv6 + TCP without options */
struct stack_ackq {
	struct event *ev; /* active while anything is held */
	int off;          /* 1: emit at once (stack_del) */
	unsigned n;
	struct {
		struct stack_addr dst;
		uint8_t off, len; /* TCP header offset, packet length */
		uint8_t advanced; /* it replaced a lower ACK: not a duplicate */
		uint8_t pkt[STACK_ACKQ_PKT];
	} e[STACK_ACKQ_MAX];
};

/* Client UDP datagrams for the host sockets, sent at the end of the loop
 * turn, a flow's consecutive ones in one sendmmsg() (udpq.c). */
#define STACK_UDPQ_MAX 64
#define STACK_UDPQ_BYTES (128 * 1024)
struct stack_udpq {
	struct event *ev; /* active while anything is queued */
	unsigned n;
	size_t used; /* of buf */
	struct {
		struct flow *f;
		uint32_t off, len; /* in buf */
	} e[STACK_UDPQ_MAX];
	uint8_t buf[STACK_UDPQ_BYTES];
};

/* The host socket reported err (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH)
 * for UDP flow f: the client is told, as port or host unreachable. */
void flow_udp_unreach(struct flow *f, int err);

int stack_udpq_init(struct stack *st);
void stack_udpq_free(struct stack *st);
/* Queues a datagram of f (payload p, len <= 65535) for its socket. */
void stack_udpq_send(struct flow *f, const uint8_t *p, size_t len);
/* Sends what is queued now. */
void stack_udpq_flush(struct stack *st);
/* Drops f's queued datagrams (f is being freed). */
void stack_udpq_forget(struct stack *st, struct flow *f);

struct stack {
	struct event_base *base;
	struct stack_config cfg;
	struct stack_prefix forbidden[STACK_MAX_PREFIXES];
	struct stack_prefix exempt[STACK_MAX_PREFIXES];
	struct stack_callbacks cb;
	void *ctx;
	/* the packet stack_input() handles now: its session and client ID
	 * (stack_packet_owner() of what it makes the stack send) */
	void *in_session;
	const char *in_client;
	uint64_t in_scope; /* its client's stack_client.scope */
	/* the clock, read once when stack_input() starts (0: not inside it,
	 * stack_now() reads it): a segment asked for it five times, from
	 * the flow, lwIP's callbacks and the timer's re-arm, all within
	 * microseconds of one another at the clock's millisecond grain */
	uint64_t in_now;
	struct netif netif;
	struct event *tick_ev;
	struct stack_counters cnt;
	/* ICMP errors/RSTs and limit audit events: per client under a
	 * global cap, so one client's flood cannot use up another's */
	struct rl_fair err_rl, audit_rl;
	/* the relay's own addresses (stack_set_local_addresses) */
	struct stack_addr local[STACK_MAX_LOCAL];
	size_t n_local;
	uint8_t hash_key[16];
	struct flow *buckets[STACK_FLOW_BUCKETS];
	struct flow *flows; /* all flows, newest first */
	/* the flow flow_lookup() found last (a transfer's segments come one
	 * flow at a time: no SipHash for each); flow_free() forgets it */
	struct flow *last_flow;
	size_t nflows;
	struct stack_client_acct *accts[STACK_ACCT_BUCKETS];
	struct stack_listener *listeners;
	size_t listeners_idle;  /* without references, open still */
	uint64_t listeners_due; /* when the first of those closes; STACK_NEVER */
	int ping_warned;
	uint32_t fd_flows, fd_per_client; /* descriptor budget (budget.c) */
	uint64_t fd_refused;              /* refusals for descriptors since the last log */
	uint64_t fd_logged_ms;            /* when that was last logged */
	/* Timers (stack.c, "timers"): one one-shot libevent timer for lwIP's
	 * timeouts and the flow scan. */
	uint64_t last_sweep_ms; /* when flow_sweep() last ran */
	uint64_t sweep_due;     /* no flow times out before this */
	uint64_t armed_ms;      /* tick_ev's deadline; STACK_NEVER if idle */
	struct stack_service svc;
	struct stack_ackq ackq;
	struct stack_udpq udpq;
	uint8_t buf[STACK_BUF];  /* host-socket reads */
	uint8_t obuf[STACK_BUF]; /* packets built toward clients */
};

#define STACK_NEVER UINT64_MAX

/* stack.c */
uint64_t stack_now(struct stack *st);
/* Ends every entry point (stack_input, stack_tick, socket callbacks):
 * closes listeners unreferenced past their linger and re-arms the timer
 * for stack_expiry().
 * Never called from inside an lwIP callback. */
void stack_rearm(struct stack *st);
/* Sends pkt toward the client at dst (counted). */
void stack_emit(struct stack *st, const struct stack_addr *dst,
		const uint8_t *pkt, size_t len);
/* ackq.c: lwIP's packets toward clients go through stack_ackq_output(),
 * which holds a pure ACK until the end of the loop turn (or sends it with
 * the connection's next segment) and emits everything else at once. */
int stack_ackq_init(struct stack *st);
void stack_ackq_free(struct stack *st);
void stack_ackq_output(struct stack *st, const struct stack_addr *dst,
		       const uint8_t *pkt, size_t len);
void stack_ackq_flush(struct stack *st);
/* Sends an RST (TCP) or ICMP unreachable answering pi if the allowance of
 * the client (keyed by scope, its stack_client.scope, and its tunnel
 * address, pi->src, which the ACL checked) and the global one allow; never
 * answers ICMP errors or RSTs. */
void stack_refuse(struct stack *st, const uint8_t *orig,
		  const struct pkt_info *pi, enum pkt_unreach why, int rst,
		  uint64_t scope);
/* Gives a packet to lwIP as if addressed to this netif. */
void stack_lwip_input(struct stack *st, const uint8_t *pkt, size_t len,
		      const struct pkt_info *pi);
/* Before a new TCP flow starts: lets the SYN pi reopen a connection lwIP
 * still holds in TIME_WAIT for the same addresses and ports when its
 * sequence number lies past the old one's (RFC 6191, RFC 1122 4.2.2.13),
 * and keeps at most cfg.max_time_wait pcbs in TIME_WAIT (the oldest go).
 * Returns 0 when the SYN may go on, -1 when an older incarnation still owns
 * the tuple (the SYN is dropped and the client retries). A lookup in the
 * TIME_WAIT index; over the cap, one walk of lwIP's list frees the oldest
 * eighth (a walk per max_time_wait / 8 new connections). */
int stack_tw_admit(struct stack *st, const struct pkt_info *pi);
/* lwipmem.c: lwIP's heap. Requests of more than LWIPMEM_MIN up to
 * LWIPMEM_BLOCK bytes get LWIPMEM_BLOCK, requests up to LWIPMEM_SMALL get
 * LWIPMEM_SMALL; up to LWIPMEM_KEEP freed blocks of each size are kept for
 * them (not under AddressSanitizer: stack_mem_keeps() is 0). */
#define LWIPMEM_SMALL 64u
#define LWIPMEM_MIN 1024u
#define LWIPMEM_BLOCK 2048u
#define LWIPMEM_KEEP 512u
int stack_mem_keeps(void);
unsigned stack_mem_kept(void); /* blocks kept now, both sizes */
uint64_t stack_mem_live(void); /* usable bytes of the blocks lwIP holds */
void stack_mem_trim(void);     /* frees the kept blocks */
/* Bytes lwIP holds on the heap now (pbufs, segments, pcbs), at the
 * blocks' real size (stack_mem_live()). */
uint64_t stack_lwip_mem_used(void);
void stack_audit(struct stack *st, enum stack_event_type type,
		 const struct flow *f, const char *reason);
/* 1 if client_id may have one more STACK_EV_LIMIT event now (taken from
 * its own and the global allowance), else 0. */
int stack_limit_audit_ok(struct stack *st, const char *client_id);
/* SipHash-2-4 keyed by st->hash_key (stack_hash.c). */
uint64_t stack_siphash(const uint8_t key[16], const void *data, size_t len);
void stack_isn_set_key(const uint8_t key[16]);

/* The index of lwIP's active TCP pcbs (pcbhash.c): set up empty with a
 * SipHash key at stack_new() (0 or ZG_ERR_NOMEM), freed at stack_del()
 * once lwIP holds no pcb; the number of active pcbs indexed. The
 * TIME-WAIT pcbs are indexed beside them, the same way. */
int stack_pcbhash_init(const uint8_t key[16]);
void stack_pcbhash_free(void);
size_t stack_pcbhash_count(void);
/* The number of TIME-WAIT pcbs indexed (pcbhash.c). */
size_t stack_pcbhash_tw_count(void);
/* Takes a TIME-WAIT pcb out of the index at once (no lookup finds it any
 * more: a reopened tuple's new SYN goes to the listener) and leaves it to
 * lwIP's slow timer, which frees it within TCP_SLOW_INTERVAL. Removing it
 * from lwIP's singly linked list now (tcp_abort) walked the list from its
 * head: with tens of thousands of pcbs in TIME-WAIT, a quarter of the
 * relay's time when a busy client reused its ports. */
void stack_pcb_tw_retire(struct tcp_pcb *pcb);
/* 1 for a pcb stack_pcb_tw_retire() took out, still in lwIP's list. */
int stack_pcb_tw_retired(const struct tcp_pcb *pcb);

/* service.c */
/* 1 when pi is for the service (and was handled: answered, given to lwIP
 * or dropped), else 0. */
int stack_service_input(struct stack *st, void *session, const struct stack_client *client,
			const uint8_t *pkt, size_t len, const struct pkt_info *pi);
void stack_service_close_client(struct stack *st, const char *client_id);
void stack_service_free(struct stack *st);

/* budget.c */
struct stack_fd_budget {
	uint32_t reserve;    /* kept for everything but flows */
	uint32_t flows;      /* descriptors all flows together may hold */
	uint32_t per_client; /* descriptors one client's flows may hold */
};
/* The descriptor budget for a limit of nofile descriptors, a reserve
 * (0 = nofile/8, 64 to 1024) and a per-client share in percent (0 or
 * above 100 = 100). */
void stack_fd_budget(uint64_t nofile, uint32_t reserve, uint32_t client_pct,
		     struct stack_fd_budget *out);
/* The window of a new TCP flow whose client has windows of committed bytes
 * under a budget (0 = none): full while the budget has room, else what is
 * left, never below min; min under global memory pressure. */
uint32_t stack_wnd_initial(uint64_t budget, uint64_t committed, uint32_t full,
			   uint32_t min, int pressure);
/* moved bytes of a flow left the relay. Returns how many bytes of window
 * to give back (tcp_recved) and updates the flow's window *pwnd: at the
 * budget (or within an eighth of it for a window past the equal share among
 * nflows, or under pressure) the window shrinks toward that share (min
 * under pressure) by withholding up to moved bytes of credit; else it grows
 * as stack_wnd_grow() says. */
/* How much the window wnd of one of a client's nflows flows may grow after
 * moved bytes moved: back to full at once without a budget, nothing at or
 * over budget or under pressure, else up to max(moved, min) within what
 * the budget has left; past the equal share only while more than an eighth
 * of the budget is free. */
uint32_t stack_wnd_grow(uint64_t budget, uint64_t committed, uint32_t nflows,
			uint32_t wnd, uint32_t moved, uint32_t full, uint32_t min,
			int pressure);
uint32_t stack_wnd_credit(uint64_t budget, uint64_t committed, uint32_t nflows,
			  uint32_t *pwnd, uint32_t moved, uint32_t full,
			  uint32_t min, int pressure);

/* flow.c */
/* An lwIP address as a stack_addr. */
void stack_addr_from_ip(struct stack_addr *a, const ip_addr_t *ip);
struct flow *flow_lookup(struct stack *st, uint8_t proto,
			 const struct stack_addr *src, uint16_t sport,
			 const struct stack_addr *dst, uint16_t dport);
/* Starts a new flow for a packet that policy allowed. Refuses (RST/ICMP,
 * counted, audited) when a limit is hit or sockets are exhausted. */
void flow_start(struct stack *st, void *session,
		const struct stack_client *client, const uint8_t *pkt,
		const struct pkt_info *pi, const char *rule_id);
/* A packet for an existing flow. */
void flow_packet(struct flow *f, const uint8_t *pkt, size_t len,
		 const struct pkt_info *pi);
/* Closes f now (RST to both sides if TCP is still open) and frees it. */
void flow_abort(struct flow *f, const char *reason);
/* Closes the flows whose timeout (connect, handshake, idle) is due at now
 * and sets st->sweep_due to the earliest deadline among the rest. */
void flow_sweep(struct stack *st, uint64_t now);
/* lwIP accept callback for the per-port listeners. */
err_t flow_tcp_accept(void *arg, struct tcp_pcb *pcb, err_t err);
/* Closes listeners without references for STACK_LISTENER_LINGER_MS, and
 * the idle ones beyond STACK_LISTENERS_IDLE_MAX; sets listeners_due. Not
 * from inside lwIP callbacks. */
void flow_listeners_gc(struct stack *st);

#endif /* ZG_STACK_INT_H */
