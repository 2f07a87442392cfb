/*
 * filewatch.h — tells the agent when one of a few files (its certificate,
 * key and CA) may have changed, so it can load them again (issue 18.6).
 *
 * inotify watches each file's directory, not the file: a file replaced by
 * a rename (an editor, `mv new.crt agent.crt`, cert-manager's csi driver)
 * or Kubernetes' atomic swap of a mounted Secret (the "..data" symlink is
 * renamed over; the file names themselves never change) is a new inode
 * that a watch on the old one never reports. An event counts when it names
 * one of the files or a name starting with ".." (Kubernetes' swap), or
 * when the kernel's queue overflowed. A watched directory that goes away
 * (a path through a symlink whose old target was removed: Kubernetes'
 * projected volume with the files in a subdirectory, "tls -> ..data/tls")
 * is watched again through its path, and counts as a change. Events are
 * debounced: the callback
 * runs once, debounce_ms after the last one, so a certificate and key
 * written one after the other are loaded together.
 */
#ifndef ZG_AGENT_FILEWATCH_H
#define ZG_AGENT_FILEWATCH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct filewatch;

#define FILEWATCH_MAX_FILES 8

typedef void (*filewatch_fn)(void *ctx);

/* Watches the directories of files[0..n-1] (n <= FILEWATCH_MAX_FILES; a
 * path without a slash is in "."). Returns 0 and *pw, ZG_ERR_INVAL (n out
 * of range, a path too long), ZG_ERR_IO (inotify or a watch failed: errno
 * kept, err names the directory) or ZG_ERR_NOMEM. */
int filewatch_new(struct event_base *base, const char *const *files, size_t n,
		  uint32_t debounce_ms, filewatch_fn fn, void *ctx, struct filewatch **pw,
		  char *err, size_t errlen);

/* Stops watching and frees. NULL is ignored. */
void filewatch_del(struct filewatch *w);

/* Bytes of each file filewatch_sum() reads. */
#define FILEWATCH_SUM_MAX (1u << 20)

/* A hash (FNV-1a) of the contents of files[0..n-1], each up to
 * FILEWATCH_SUM_MAX bytes: tells a change of what they hold from an event
 * that changed nothing (a touch, another file). An unreadable file hashes
 * its errno, so losing and regaining it counts as a change. */
uint64_t filewatch_sum(const char *const *files, size_t n);

/* Events that counted so far (tests, logs). */
uint64_t filewatch_events(const struct filewatch *w);

#endif /* ZG_AGENT_FILEWATCH_H */
