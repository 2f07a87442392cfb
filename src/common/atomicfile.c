#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zg_err.h"

void fsync_dir_of(const char *path)
{
	char dirbuf[4096];
	int dfd;

	(void)snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	if ((dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The step that failed, with errno, then the temporary file removed. */
static int failed(const char *path, const char *what, const char *tmp, const char *after,
		  char *err, size_t errlen)
{
	int e = errno;

	zg_seterr(err, errlen, "%s: %s %s%s: %s", path, what, tmp, after, strerror(e));
	(void)unlink(tmp);
	errno = e;
	return ZG_ERR_IO;
}

int atomic_write(const char *path, mode_t mode, const char *const *p, const size_t *len,
		 size_t n, char *err, size_t errlen)
{
	char tmp[4200];
	int fd, e;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp)) {
		zg_seterr(err, errlen, "%s: path too long", path);
		errno = ENAMETOOLONG;
		return ZG_ERR_IO;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		e = errno;
		zg_seterr(err, errlen, "%s: cannot create a temporary file %s: %s", path, tmp,
			  strerror(e));
		errno = e;
		return ZG_ERR_IO;
	}
	for (size_t i = 0; i < n; i++)
		if (write_all(fd, p[i], len[i]) != 0)
			goto fail;
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0)
		return failed(path, "cannot write", tmp, "", err, errlen);
	if (rename(tmp, path) != 0)
		return failed(path, "cannot rename", tmp, " into place", err, errlen);
	fsync_dir_of(path);
	return 0;
fail:
	e = errno;
	close(fd);
	errno = e;
	return failed(path, "cannot write", tmp, "", err, errlen);
}
