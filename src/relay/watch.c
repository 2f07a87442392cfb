#include "relay/watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "filesig.h"
#include "log.h"
#include "zg_err.h"

struct wpath {
	char path[WATCH_PATH_MAX];
	const char *base; /* into path: the file name */
	int wd;           /* its directory's watch */
	watch_fn fn;
	void *arg;
	struct filesig seen;
	int candidate; /* an event named it since the last check */
};

struct watch {
	struct event_base *base;
	int fd;
	struct event *ev_read, *ev_timer;
	uint32_t debounce_ms;
	struct wpath paths[WATCH_MAX_PATHS];
	size_t npaths;
	uint64_t fired;
};

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	int due[WATCH_MAX_PATHS];
	size_t i, j;

	(void)fd;
	(void)what;
	/* Every fingerprint first, then the callbacks: a callback may take a
	 * while (a TLS context), and its own reads are not events. */
	for (i = 0; i < w->npaths; i++) {
		struct filesig now;

		due[i] = 0;
		if (!w->paths[i].candidate)
			continue;
		w->paths[i].candidate = 0;
		filesig_of(w->paths[i].path, &now);
		if (!filesig_eq(&now, &w->paths[i].seen)) {
			w->paths[i].seen = now;
			due[i] = 1;
		}
	}
	for (i = 0; i < w->npaths; i++) {
		if (!due[i])
			continue;
		/* once per callback: later paths sharing it are done too */
		for (j = i + 1; j < w->npaths; j++)
			if (w->paths[j].fn == w->paths[i].fn && w->paths[j].arg == w->paths[i].arg)
				due[j] = 0;
		w->fired++;
		w->paths[i].fn(w->paths[i].arg);
	}
}

static void mark(struct watch *w, int wd, const char *name)
{
	int any = 0;
	size_t i;

	for (i = 0; i < w->npaths; i++) {
		struct wpath *p = &w->paths[i];

		if (wd >= 0 && p->wd != wd)
			continue;
		/* wd < 0 (queue overflow): everything is a candidate */
		if (wd < 0 || name == NULL || strcmp(name, p->base) == 0 ||
		    strncmp(name, "..", 2) == 0) {
			p->candidate = 1;
			any = 1;
		}
	}
	if (any) {
		struct timeval tv = { (time_t)(w->debounce_ms / 1000),
				      (suseconds_t)(w->debounce_ms % 1000) * 1000 };

		evtimer_add(w->ev_timer, &tv); /* re-adding pushes it back */
	}
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch *w = arg;
	/* aligned as inotify_event, room for many events per read */
	char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)what;
	for (int rounds = 0; rounds < 64; rounds++) {
		n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				log_warn("inotify read");
			return;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)(void *)p;

			if (e->mask & IN_Q_OVERFLOW)
				mark(w, -1, NULL);
			else
				mark(w, e->wd, e->len > 0 ? e->name : NULL);
			p += sizeof(*e) + e->len;
		}
	}
}

int watch_new(struct event_base *base, uint32_t debounce_ms, struct watch **pw)
{
	struct watch *w;

	if (base == NULL || pw == NULL)
		return ZG_ERR_INVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return ZG_ERR_NOMEM;
	w->base = base;
	w->debounce_ms = debounce_ms ? debounce_ms : 1;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		free(w);
		return ZG_ERR_IO;
	}
	w->ev_read = event_new(base, w->fd, EV_READ | EV_PERSIST, read_cb, w);
	w->ev_timer = evtimer_new(base, timer_cb, w);
	if (w->ev_read == NULL || w->ev_timer == NULL || event_add(w->ev_read, NULL) != 0) {
		watch_del(w);
		return ZG_ERR_NOMEM;
	}
	*pw = w;
	return 0;
}

int watch_add(struct watch *w, const char *path, watch_fn fn, void *arg)
{
	struct wpath *p;
	char dir[WATCH_PATH_MAX];
	const char *slash;
	int wd;

	if (w == NULL || path == NULL || fn == NULL)
		return ZG_ERR_INVAL;
	if (path[0] == '\0')
		return 0;
	if (strlen(path) >= WATCH_PATH_MAX)
		return ZG_ERR_INVAL;
	if (w->npaths >= WATCH_MAX_PATHS)
		return ZG_ERR_LIMIT;
	slash = strrchr(path, '/');
	if (slash == NULL)
		(void)snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		(void)snprintf(dir, sizeof(dir), "/");
	else
		(void)snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (slash != NULL && slash[1] == '\0')
		return ZG_ERR_INVAL; /* a directory, not a file */
	/* The same directory gives the same wd: one watch per directory. */
	wd = inotify_add_watch(w->fd, dir,
			       IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
				       IN_DELETE | IN_ATTRIB | IN_ONLYDIR);
	if (wd < 0)
		return ZG_ERR_IO;
	p = &w->paths[w->npaths++];
	memset(p, 0, sizeof(*p));
	(void)snprintf(p->path, sizeof(p->path), "%s", path);
	p->base = slash ? p->path + (slash - path) + 1 : p->path;
	p->wd = wd;
	p->fn = fn;
	p->arg = arg;
	filesig_of(p->path, &p->seen);
	return 0;
}

void watch_rebase(struct watch *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->npaths; i++)
		filesig_of(w->paths[i].path, &w->paths[i].seen);
}

int watch_seen(struct watch *w, const char *path)
{
	int changed = -1;

	if (w == NULL || path == NULL)
		return -1;
	for (size_t i = 0; i < w->npaths; i++) {
		struct filesig now;

		if (strcmp(w->paths[i].path, path) != 0)
			continue;
		filesig_of(path, &now);
		if (changed < 1)
			changed = !filesig_eq(&now, &w->paths[i].seen);
		w->paths[i].seen = now;
	}
	return changed;
}

uint64_t watch_fired(const struct watch *w)
{
	return w != NULL ? w->fired : 0;
}

void watch_del(struct watch *w)
{
	if (w == NULL)
		return;
	if (w->ev_read != NULL)
		event_free(w->ev_read);
	if (w->ev_timer != NULL)
		event_free(w->ev_timer);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}
