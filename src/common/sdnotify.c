#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "opt.h"
#include "zg_err.h"

int sdnotify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	size_t plen;
	socklen_t salen;
	ssize_t w;
	int fd, e;

	if (path == NULL || path[0] == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen < 2 || plen >= sizeof(sa.sun_path))
		return ZG_ERR_INVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@') {
		sa.sun_path[0] = '\0'; /* abstract: the name's length is the address */
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	} else {
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ZG_ERR_IO;
	do
		w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	while (w < 0 && errno == EINTR);
	e = errno;
	close(fd);
	errno = e;
	return w == (ssize_t)strlen(state) ? 1 : ZG_ERR_IO;
}

int sdnotify_watchdog_usec(uint64_t *pusec)
{
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	uint64_t v, p;

	if (us == NULL || us[0] == '\0')
		return 0;
	if (pid != NULL && pid[0] != '\0') {
		if (opt_parse_uint(pid, 1, INT32_MAX, &p) != 0)
			return ZG_ERR_CONFIG;
		if (p != (uint64_t)getpid())
			return 0; /* meant for another process (a wrapper's child) */
	}
	if (opt_parse_uint(us, 1, UINT64_MAX, &v) != 0)
		return ZG_ERR_CONFIG;
	*pusec = v;
	return 1;
}
