/*
 * atomicfile.h — replacing a file so that a reader, or the file after a
 * crash, is the old version or the new one, never a mix: the new bytes go
 * to a temporary file beside it (mkostemp), are fsync'ed, renamed over
 * the path, and the directory is fsync'ed so that the rename lasts too.
 * Used for the relay's state (ipam.c) and its cached policy (polapi.c).
 */
#ifndef ZG_ATOMICFILE_H
#define ZG_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

/* fsync(2) of the directory that holds path, so that a rename into or
 * within it is durable; best effort (a failure leaves it to the kernel). */
void fsync_dir_of(const char *path);

/* Writes the n pieces (p[i], len[i] bytes) one after another as the new
 * content of path, mode mode (before the umask does not apply: fchmod),
 * as described above. Returns 0, or ZG_ERR_IO with err naming path, the
 * step and errno ("PATH: cannot create a temporary file TMP: REASON",
 * "PATH: cannot write TMP: REASON", "PATH: cannot rename TMP into place:
 * REASON"); errno is kept, and the temporary file is gone. */
int atomic_write(const char *path, mode_t mode, const char *const *p, const size_t *len,
		 size_t n, char *err, size_t errlen);

#endif /* ZG_ATOMICFILE_H */
