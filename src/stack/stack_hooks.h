/*
 * stack_hooks.h — functions src/stack provides to lwIP (LWIP_HOOK_FILENAME).
 * lwIP includes this after its own headers, so ip_addr_t is known here.
 */
#ifndef ZG_STACK_HOOKS_H
#define ZG_STACK_HOOKS_H

/* RFC 6528 initial sequence number for a new connection (stack_isn.c). */
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

#endif /* ZG_STACK_HOOKS_H */
