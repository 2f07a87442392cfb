#include "agent/tun.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "zg_err.h"

int tun_open(const char *name, char *actual, size_t actuallen, int *pfd,
	     int *pifindex, char *err, size_t errlen)
{
	struct ifreq ifr;
	int fd, e;
	unsigned idx;

	if (strlen(name) >= IFNAMSIZ) {
		(void)snprintf(err, errlen, "TUN name \"%s\" is longer than %d characters",
			       name, IFNAMSIZ - 1);
		errno = EINVAL;
		return ZG_ERR_IO;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		(void)snprintf(err, errlen, "cannot open /dev/net/tun: %s%s", strerror(e),
			       e == ENOENT                 ? " (no TUN support: load the tun module, or in a "
							     "container pass --device /dev/net/tun)"
			       : e == EACCES || e == EPERM ? " (run as root or with CAP_NET_ADMIN)"
							   : "");
		errno = e;
		return ZG_ERR_IO;
	}
	memset(&ifr, 0, sizeof(ifr));
	/* IFF_VNET_HDR: every read and write starts with a virtio_net_hdr,
	 * which lets the agent write coalesced TCP (tungro.h) */
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		e = errno;
		(void)snprintf(err, errlen, "cannot create TUN device \"%s\": %s%s", name, strerror(e),
			       e == EPERM   ? " (needs CAP_NET_ADMIN: run as root or grant it with "
					      "setcap cap_net_admin+ep, or --cap-add NET_ADMIN in a container)"
			       : e == EBUSY ? " (a device of that name exists and is not a TUN device, or is in use)"
					    : "");
		close(fd);
		errno = e;
		return ZG_ERR_IO;
	}
	/* TSO and checksum offload for reads: the client's TCP hands over up
	 * to 64 KiB at once, which tungro_split() cuts into packets. Without
	 * it (old kernels) reads are single packets, which works the same. */
	(void)ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
	idx = if_nametoindex(ifr.ifr_name);
	if (idx == 0) {
		e = errno;
		(void)snprintf(err, errlen, "TUN device \"%s\" vanished: %s", ifr.ifr_name, strerror(e));
		close(fd);
		errno = e;
		return ZG_ERR_IO;
	}
	(void)snprintf(actual, actuallen, "%s", ifr.ifr_name);
	*pfd = fd;
	*pifindex = (int)idx;
	return 0;
}

int tun_set_txqlen(const char *name, int qlen)
{
	struct ifreq ifr;
	int s, r, e;

	if (strlen(name) >= IFNAMSIZ) {
		errno = EINVAL;
		return ZG_ERR_IO;
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return ZG_ERR_IO;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_qlen = qlen;
	r = ioctl(s, SIOCSIFTXQLEN, &ifr);
	e = errno;
	close(s);
	errno = e;
	return r == 0 ? 0 : ZG_ERR_IO;
}

int tun_read_flags(const char *name, unsigned *pflags)
{
	char path[64 + IFNAMSIZ];
	unsigned v;
	FILE *f;
	int ok;

	if (strlen(name) >= IFNAMSIZ || strchr(name, '/') != NULL)
		return ZG_ERR_IO;
	(void)snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", name);
	f = fopen(path, "re");
	if (f == NULL)
		return ZG_ERR_IO;
	ok = fscanf(f, "%x", &v) == 1;
	fclose(f);
	if (!ok)
		return ZG_ERR_IO;
	*pflags = v;
	return 0;
}

int tun_restore(const char *name, unsigned flags)
{
	struct ifreq ifr;
	int fd, r = 0;

	if (strlen(name) >= IFNAMSIZ)
		return ZG_ERR_IO;
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return ZG_ERR_IO;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_flags = (short)(IFF_TUN | (flags & (IFF_NO_PI | IFF_VNET_HDR | IFF_ONE_QUEUE)));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETOFFLOAD, 0) < 0)
		r = ZG_ERR_IO;
	close(fd);
	return r;
}
