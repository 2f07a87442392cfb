/*
 * pdump.c — debug.payload_dump (pdump.h).
 */
#include "relay/pdump.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "be.h"
#include "log.h"
#include "zg_err.h"

int pdump_header(uint8_t h[PDUMP_HDR], size_t len)
{
	if ((uint64_t)len > UINT32_MAX)
		return ZG_ERR_RANGE;
	be32_put(h, (uint32_t)len);
	return 0;
}

void pdump_init(struct pdump *d)
{
	d->fd = -1;
	d->records = d->errors = 0;
	d->failing = 0;
}

int pdump_open(struct pdump *d, const char *path)
{
	pdump_init(d);
	if (path == NULL || path[0] == '\0')
		return 0;
	d->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	return d->fd >= 0 ? 0 : ZG_ERR_IO;
}

int pdump_on(const struct pdump *d)
{
	return d->fd >= 0;
}

void pdump_packet(struct pdump *d, const uint8_t *pkt, size_t len)
{
	uint8_t h[PDUMP_HDR];
	struct iovec iov[2] = { { h, PDUMP_HDR }, { (void *)(uintptr_t)pkt, len } };
	ssize_t n;

	if (d->fd < 0)
		return;
	if (pdump_header(h, len) != 0) {
		d->errors++;
		return;
	}
	n = writev(d->fd, iov, 2);
	if (n == (ssize_t)(PDUMP_HDR + len)) {
		d->records++;
		if (d->failing)
			log_info("debug.payload_dump: writing again (%llu packets lost)",
				 (unsigned long long)d->errors);
		d->failing = 0;
		return;
	}
	d->errors++;
	if (!d->failing) {
		if (n < 0)
			log_warn("debug.payload_dump");
		else
			log_warnx("debug.payload_dump: short write (%zd of %zu bytes)", n,
				  PDUMP_HDR + len);
	}
	d->failing = 1;
}

void pdump_close(struct pdump *d)
{
	if (d->fd >= 0)
		(void)close(d->fd);
	pdump_init(d);
}
