/*
 * stack_hooks.h — functions src/stack provides to lwIP (LWIP_HOOK_FILENAME).
 * lwIP includes this after its own headers, so ip_addr_t is known here.
 */
#ifndef ZG_STACK_HOOKS_H
#define ZG_STACK_HOOKS_H

/* A TCP 4-tuple as bytes to hash: the two addresses (4 or 16 bytes each),
 * then the two ports; returns the length (12 or 36). stack_hash.c. */
#define STACK_TUPLE_MAX 36
size_t stack_lwip_tuple(uint8_t out[STACK_TUPLE_MAX], const ip_addr_t *local_ip, u16_t local_port,
			const ip_addr_t *remote_ip, u16_t remote_port);

/* RFC 6528 initial sequence number for a new connection (stack_hash.c). */
u32_t stack_lwip_isn(const ip_addr_t *local_ip, u16_t local_port,
		     const ip_addr_t *remote_ip, u16_t remote_port);

/* The index of lwIP's active TCP pcbs (pcbhash.c), kept through the hooks
 * of third_party/patches/lwip-zgate.patch: a pcb joined or left
 * tcp_active_pcbs (its 4-tuple still set); the active pcb of a tuple, or
 * NULL. */
struct tcp_pcb;
void stack_pcb_add(struct tcp_pcb *pcb);
void stack_pcb_del(struct tcp_pcb *pcb);
struct tcp_pcb *stack_pcb_find(const ip_addr_t *local_ip, u16_t local_port,
			       const ip_addr_t *remote_ip, u16_t remote_port);
/* lwIP's form of address a (no IPv6 zone). stack.c. */
struct stack_addr;
void stack_lwip_ip(ip_addr_t *ip, const struct stack_addr *a);

/* The same for tcp_tw_pcbs. */
void stack_pcb_tw_add(struct tcp_pcb *pcb);
void stack_pcb_tw_del(struct tcp_pcb *pcb);
struct tcp_pcb *stack_pcb_tw_find(const ip_addr_t *local_ip, u16_t local_port,
				  const ip_addr_t *remote_ip, u16_t remote_port);

#endif /* ZG_STACK_HOOKS_H */
