/*
 * tun.h — the agent's TUN device (Linux /dev/net/tun, IFF_TUN | IFF_NO_PI:
 * every read() returns one IP packet, every write() sends one).
 */
#ifndef ZG_AGENT_TUN_H
#define ZG_AGENT_TUN_H

#include <stddef.h>

/* Creates (or attaches to) TUN device name ("" lets the kernel choose
 * "tunN"). Returns 0 with a non-blocking, close-on-exec descriptor in
 * *pfd, the device name in actual and its index in *pifindex; or
 * ZG_ERR_IO with a sentence in err saying why and what to do: no
 * /dev/net/tun, no CAP_NET_ADMIN, bad name. */
int tun_open(const char *name, char *actual, size_t actuallen, int *pfd,
	     int *pifindex, char *err, size_t errlen);

#endif /* ZG_AGENT_TUN_H */
