/*
 * lwipopts.h — lwIP 2.2.x configuration for the zgate relay.
 *
 * The relay terminates client TCP in lwIP and splices it to host sockets, so
 * lwIP carries only TCP (IPv4 and IPv6) from one point-to-point netif.
 * UDP and ICMP never enter lwIP: src/stack parses and answers them itself.
 * Memory comes from malloc (MEM_CUSTOM_ALLOCATOR + MEMP_MEM_MALLOC) so that
 * 10,000+ flows with 256 KiB windows need no static pools; the bound on
 * memory is each client's window budget in src/stack (budget.c): the
 * windows below are only the most one flow gets.
 * Statistics stay on: tests use them to prove nothing leaked.
 */
#ifndef ZG_LWIPOPTS_H
#define ZG_LWIPOPTS_H

/* ---- system */
#define NO_SYS 1
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_TIMERS 1
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0
#define LWIP_NETIF_API 0
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1
#define LWIP_HOOK_FILENAME "stack_hooks.h"
/* Only to make lwip_cyclic_timer() visible so that stack.c can cancel the
 * ND6 timer (see lwip_drop_nd6_timer there). In lwIP 2.2.1 it changes
 * nothing else without LWIP_HAVE_LOOPIF: timeouts.c exports two functions,
 * netif.c one for the loop interface. */
#define LWIP_TESTMODE 1

/* ---- memory: heap-backed, counted in lwip_stats; malloc with freed
 * packet-sized blocks kept for reuse (lwipmem.c) */
#include <stddef.h>
void *stack_mem_malloc(size_t n);
void *stack_mem_calloc(size_t count, size_t size);
void stack_mem_free(void *p);
#define MEM_CUSTOM_ALLOCATOR 1
#define MEM_CUSTOM_MALLOC stack_mem_malloc
#define MEM_CUSTOM_CALLOC stack_mem_calloc
#define MEM_CUSTOM_FREE stack_mem_free
#define MEMP_MEM_MALLOC 1
#define MEM_ALIGNMENT 8
#define MEM_SIZE (16 * 1024 * 1024) /* unused with MEM_CUSTOM_ALLOCATOR */
#define MEMP_NUM_TCP_PCB 16384      /* caps only with static pools */
#define MEMP_NUM_TCP_PCB_LISTEN 1024
#define MEMP_NUM_TCP_SEG 65535
#define MEMP_NUM_UDP_PCB 4
#define MEMP_NUM_RAW_PCB 0
#define MEMP_NUM_SYS_TIMEOUT (LWIP_NUM_SYS_TIMEOUT_INTERNAL + 4)
#define PBUF_POOL_SIZE 64
#define PBUF_POOL_BUFSIZE 1536

/* ---- netif: one point-to-point interface, no link layer */
#define LWIP_SINGLE_NETIF 1
#define LWIP_HAVE_LOOPIF 0
#define LWIP_NETIF_LOOPBACK 0
#define LWIP_ETHERNET 0
#define LWIP_ARP 0
#define PBUF_LINK_HLEN 0
#define PBUF_LINK_ENCAPSULATION_HLEN 0
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LINK_CALLBACK 0

/* ---- IPv4 */
#define LWIP_IPV4 1
#define IP_FORWARD 0
#define IP_REASSEMBLY 0 /* fragments are dropped before lwIP */
#define IP_FRAG 0       /* MSS keeps segments under the MTU */
#define IP_OPTIONS_ALLOWED 1
#define IP_DEFAULT_TTL 64
#define LWIP_ICMP 1
#define LWIP_BROADCAST_PING 0
#define LWIP_MULTICAST_PING 0
#define LWIP_RAW 0
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_ACD 0
#define LWIP_IGMP 0
#define LWIP_DNS 0

/* ---- IPv6 */
#define LWIP_IPV6 1
#define LWIP_IPV6_NUM_ADDRESSES 3
#define LWIP_IPV6_SCOPES 0
#define LWIP_IPV6_FORWARD 0
#define LWIP_IPV6_FRAG 0
#define LWIP_IPV6_REASS 0
#define LWIP_IPV6_AUTOCONFIG 0
#define LWIP_IPV6_ADDRESS_LIFETIMES 0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS 0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT 0
#define LWIP_IPV6_MLD 0
#define LWIP_IPV6_DHCP6 0
#define LWIP_ICMP6 1
#define LWIP_ND6_ALLOW_RA_UPDATES 0
#define LWIP_ND6_QUEUEING 0

/* ---- UDP: present for lwIP internals only, never fed */
#define LWIP_UDP 1
#define LWIP_UDPLITE 0

/* ---- TCP */
#define LWIP_TCP 1
#define SO_REUSE 1   /* per-port listeners coexist with accepted pcbs */
#define TCP_MSS 1460 /* upper bound; the netif MTU lowers it */
#define TCP_CALCULATE_EFF_SEND_MSS 1
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 4 /* up to 1 MiB windows */
#define TCP_WND (256 * 1024)
#define TCP_SND_BUF (256 * 1024)
#define TCP_SND_QUEUELEN (4 * TCP_SND_BUF / 536)
#define TCP_SNDLOWAT (32 * 1024)
#define TCP_SNDQUEUELOWAT (TCP_SND_QUEUELEN / 2)
#define TCP_QUEUE_OOSEQ 1
/* Out-of-order data lies within the flow's receive window (which the
 * memory budget of src/stack keeps small under pressure); these cap it per
 * pcb below that, and the pbuf count caps the overhead of tiny segments. */
#define TCP_OOSEQ_MAX_BYTES (128 * 1024)
#define TCP_OOSEQ_MAX_PBUFS 128
#define TCP_LISTEN_BACKLOG 0
#define LWIP_TCP_SACK_OUT 0
#define LWIP_TCP_TIMESTAMPS 0
#define TCP_MSL 10000UL /* TIME_WAIT lasts 2*MSL = 20 s */
#define TCP_MAXRTX 8
#define TCP_SYNMAXRTX 4
#define LWIP_TCP_KEEPALIVE 0
#define TCP_OVERSIZE TCP_MSS
#define LWIP_CALLBACK_API 1
#define LWIP_EVENT_API 0
#define LWIP_TCP_PCB_NUM_EXT_ARGS 1 /* [0]: pcbhash.c's chain */
#define LWIP_HOOK_TCP_ISN(lip, lport, rip, rport) stack_lwip_isn(lip, lport, rip, rport)
/* hooks of our lwIP patch (lwip-zgate.patch): pcbhash.c */
#define LWIP_HOOK_TCP_ACTIVE_ADD(pcb) stack_pcb_add(pcb)
#define LWIP_HOOK_TCP_ACTIVE_DEL(pcb) stack_pcb_del(pcb)
#define LWIP_HOOK_TCP_ACTIVE_FIND(lip, lport, rip, rport) stack_pcb_find(lip, lport, rip, rport)
#define LWIP_HOOK_TCP_TW_ADD(pcb) stack_pcb_tw_add(pcb)
#define LWIP_HOOK_TCP_TW_DEL(pcb) stack_pcb_tw_del(pcb)
#define LWIP_HOOK_TCP_TW_FIND(lip, lport, rip, rport) stack_pcb_tw_find(lip, lport, rip, rport)

/* ---- checksums: all in software, always verified */
#define CHECKSUM_GEN_IP 1
#define CHECKSUM_GEN_TCP 1
#define CHECKSUM_GEN_ICMP 1
#define CHECKSUM_GEN_ICMP6 1
#define CHECKSUM_CHECK_IP 1
#define CHECKSUM_CHECK_TCP 1
#define CHECKSUM_CHECK_ICMP 1
#define CHECKSUM_CHECK_ICMP6 1
#define LWIP_CHECKSUM_ON_COPY 1
/* lwIP sums with the project's checksum (src/common/cksum.h, 64 bits at a
 * time; lwIP's own went 16 at a time, 2.7 % of the relay in bulk
 * transfers). Defined in pkt.c; lwIP's contract: the sum in the host's
 * byte order, folded to 16 bits, not inverted. */
unsigned short stack_lwip_chksum(const void *data, int len);
#define LWIP_CHKSUM stack_lwip_chksum

/* ---- statistics (tests assert on them) */
#define LWIP_STATS 1
#define LWIP_STATS_DISPLAY 0
#define MEM_STATS 1
#define MEMP_STATS 1
#define PBUF_STATS 1
#define TCP_STATS 1
#define IP_STATS 1
#define IP6_STATS 1
#define LINK_STATS 0
#define ETHARP_STATS 0
#define UDP_STATS 0
#define ICMP_STATS 0
#define ICMP6_STATS 0
#define ND6_STATS 0
#define MLD6_STATS 0
#define IGMP_STATS 0
#define SYS_STATS 0

/* LWIP_DEBUG stays undefined: lwIP tests it with #ifdef. */

#endif /* ZG_LWIPOPTS_H */
