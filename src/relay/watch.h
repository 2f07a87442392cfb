/*
 * watch.h — tells the relay when files it loaded have changed on disk
 * (issue 18: TLS material and the policy), so it can reload them.
 *
 * It watches the DIRECTORIES holding the files with inotify, not the files:
 * Kubernetes updates a mounted Secret or ConfigMap by building a new
 * directory and swapping the `..data` symlink with one rename(2), which
 * never touches the path the relay opened (tls.crt -> ..data/tls.crt), and
 * editors and `cp` replace or rewrite files in ways a watch on the old
 * inode misses. An event in a directory whose name is a watched file's, or
 * starts with ".." (Kubernetes' own entries), starts a debounce timer;
 * when it fires, each watched path is stat()ed (through its symlinks) and
 * the callbacks of the paths whose device, inode, size, mtime or ctime
 * changed are called once each. A burst of writes thus gives one reload,
 * and an unrelated file in the same directory gives none.
 *
 * Bounded: at most WATCH_MAX_PATHS paths (and as many directories).
 */
#ifndef ZG_RELAY_WATCH_H
#define ZG_RELAY_WATCH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct watch;

#define WATCH_MAX_PATHS 16
#define WATCH_PATH_MAX 4096

/* Called from the event loop after the debounce when one of the paths
 * registered with it changed (once per debounce, however many of its paths
 * did). */
typedef void (*watch_fn)(void *arg);

/* Creates a watcher on base, calling back debounce_ms (at least 1) after
 * the last event of a burst. Returns 0 and *pw, ZG_ERR_IO (inotify
 * unavailable; errno kept) or ZG_ERR_NOMEM. Free with watch_del(). */
int watch_new(struct event_base *base, uint32_t debounce_ms, struct watch **pw);

/* Watches path (its directory) and calls fn(arg) when it changes; several
 * paths may share fn and arg. An empty path is ignored (returns 0). The
 * file need not exist yet; its directory must. Returns 0, ZG_ERR_LIMIT
 * (WATCH_MAX_PATHS), ZG_ERR_INVAL (path too long or NULL), ZG_ERR_IO (the
 * directory cannot be watched; errno kept). */
int watch_add(struct watch *w, const char *path, watch_fn fn, void *arg);

/* Records the paths' current state as seen: changes before this call no
 * longer fire (call it after loading the files some other way, e.g. on
 * SIGHUP). */
void watch_rebase(struct watch *w);

/* The same for one path (as given to watch_add), leaving the others' changes
 * to fire: call it after loading that file some other way, or before, to
 * learn whether it must be. Returns 1 when the path's state was not the
 * one seen (it changed since the last callback or watch_seen), 0 when it
 * was, -1 when w is NULL or path is not watched (nothing known). */
int watch_seen(struct watch *w, const char *path);

/* How many times a callback was called. */
uint64_t watch_fired(const struct watch *w);

/* Stops watching and frees w. NULL is ignored. */
void watch_del(struct watch *w);

#endif /* ZG_RELAY_WATCH_H */
