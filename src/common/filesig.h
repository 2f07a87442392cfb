/*
 * filesig.h — one version of a file as stat(2) sees it, to notice that a
 * watched file (a certificate, a CRL, a policy) changed without reading it.
 *
 * Two signatures are equal when the file is the same version: a file
 * renamed over the path (a new inode, as a Kubernetes Secret update gives
 * through its symlinks), rewritten in place (size, modification time) or
 * touched (change time) is another. A path stat() fails on has a signature
 * too (all zero but err, its errno): a missing file is a version, and it
 * appearing again is a change.
 */
#ifndef ZG_FILESIG_H
#define ZG_FILESIG_H

#include <sys/types.h>
#include <time.h>

struct filesig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	int err; /* errno of a failed stat(), 0 when it succeeded */
};

/* Fills *fs for path (never fails: a failed stat() is recorded in err). */
void filesig_of(const char *path, struct filesig *fs);

/* 1 when a and b are the same version of a file. */
int filesig_eq(const struct filesig *a, const struct filesig *b);

#endif
