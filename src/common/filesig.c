#include "filesig.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

void filesig_of(const char *path, struct filesig *fs)
{
	struct stat st;

	memset(fs, 0, sizeof(*fs));
	if (stat(path, &st) != 0) {
		fs->err = errno;
		return;
	}
	fs->dev = st.st_dev;
	fs->ino = st.st_ino;
	fs->size = st.st_size;
	fs->mtim = st.st_mtim;
	fs->ctim = st.st_ctim;
}

int filesig_eq(const struct filesig *a, const struct filesig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec &&
	       a->err == b->err;
}
