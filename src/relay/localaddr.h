/*
 * localaddr.h — the relay host's own addresses, kept current.
 *
 * No tunnel may reach the relay itself through an address of its host (its
 * QUIC port, its ops endpoint). Pods get addresses after start and change
 * them, so the set is read at start and again whenever the kernel reports
 * an address change on an rtnetlink socket (any user may listen to these
 * groups; no capability needed), and at least every period as a fallback
 * (a full netlink socket drops notifications).
 */
#ifndef ZG_RELAY_LOCALADDR_H
#define ZG_RELAY_LOCALADDR_H

#include <stddef.h>
#include <stdint.h>

#include "stack/stack.h"

struct event_base;
struct ifaddrs;
struct localaddr;

/* Called with the complete current set (n may be 0); a is valid during the
 * call. skipped counts addresses that did not fit in max. */
typedef void (*localaddr_cb)(void *ctx, const struct stack_addr *a, size_t n,
			     size_t skipped);

/* Reads the addresses now and calls cb once before returning, then keeps
 * watching on base: cb runs again when the set changed. period_ms 0 means
 * 30 s. Returns 0 and *pl, ZG_ERR_IO (getifaddrs failed; nothing started)
 * or ZG_ERR_NOMEM. Without a netlink socket it still polls every period. */
int localaddr_new(struct event_base *base, uint32_t period_ms, localaddr_cb cb,
		  void *ctx, struct localaddr **pl);

/* Stops watching and frees. NULL is ignored. */
void localaddr_del(struct localaddr *l);

/* Rereads the addresses now (calls cb when they changed). Returns 0 or
 * ZG_ERR_IO. */
int localaddr_refresh(struct localaddr *l);

/* The addresses of list ifa worth forbidding, deduplicated, into
 * out[0..max): IPv4 except 127/8, IPv6 except loopback and link-local
 * (never reachable anyway, so no slot is spent). Returns how many were
 * stored; *pskipped (may be NULL) gets how many did not fit. */
size_t localaddr_collect(const struct ifaddrs *ifa, struct stack_addr *out,
			 size_t max, size_t *pskipped);

#endif /* ZG_RELAY_LOCALADDR_H */
