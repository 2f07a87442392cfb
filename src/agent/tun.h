/*
 * tun.h — the agent's TUN device (Linux /dev/net/tun, IFF_TUN | IFF_NO_PI |
 * IFF_VNET_HDR: every read() returns a 10-byte virtio_net_hdr and one IP
 * packet; every write() takes a header and one packet, or a GSO batch of
 * TCP segments, see tungro.h). No offloads are offered for reads.
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

/* A device made beforehand (ip tuntap add ... persist) keeps the flags the
 * last attach gave it. tun_read_flags() reads them (sysfs tun_flags) before
 * the agent attaches; tun_restore() gives them back after it let go (its
 * descriptor closed), with no offloads. Both return 0 or ZG_ERR_IO. */
int tun_read_flags(const char *name, unsigned *pflags);
int tun_restore(const char *name, unsigned flags);

/* The transmit queue a TUN device the agent creates gets: the kernel's
 * default (500 packets) overflowed under 4 TCP streams while the tunnel
 * was congested, and each drop cost the sender a retransmit. */
#define TUN_TXQLEN 1000

/* Sets the transmit queue length of device name. Returns 0, or ZG_ERR_IO
 * with errno. */
int tun_set_txqlen(const char *name, int qlen);

#endif /* ZG_AGENT_TUN_H */
