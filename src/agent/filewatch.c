#include "filewatch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include "fnv.h"
#include "log.h"
#include "zg_err.h"

#define WATCH_MASK \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)

struct wfile {
	int wd;             /* its directory's watch */
	char dir[PATH_MAX]; /* as given: through its symlinks when watched again */
	char name[NAME_MAX + 1];
};

struct filewatch {
	int fd;
	struct event *ev, *timer;
	uint32_t debounce_ms;
	filewatch_fn fn;
	void *ctx;
	struct wfile f[FILEWATCH_MAX_FILES];
	size_t n;
	uint64_t events;
	int lost_said; /* a directory went away: said once */
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct filewatch *w = arg;

	(void)fd;
	(void)what;
	w->fn(w->ctx);
}

static int relevant(const struct filewatch *w, const struct inotify_event *ie)
{
	if (ie->mask & IN_Q_OVERFLOW)
		return 1; /* events were lost: one of them may have been ours */
	if (ie->len == 0 || ie->name[0] == '\0')
		return 0;
	if (ie->name[0] == '.' && ie->name[1] == '.')
		return 1; /* Kubernetes: ..data swapped, ..2024_... created */
	for (size_t i = 0; i < w->n; i++)
		if (w->f[i].wd == ie->wd && strcmp(w->f[i].name, ie->name) == 0)
			return 1;
	return 0;
}

/* The directory behind watch wd went away (removed, or it was the old
 * target of a symlinked path: Kubernetes' projected volume with the files
 * in a subdirectory, "tls -> ..data/tls", deletes the old timestamped
 * directory after the swap). Watches the paths of those files again, which
 * now resolve to the new directory. Returns 1 when every one is watched
 * again, 0 when one could not be. */
static int rewatch(struct filewatch *w, int wd)
{
	int ok = 1;

	for (size_t i = 0; i < w->n; i++) {
		int nwd;

		if (w->f[i].wd != wd)
			continue;
		nwd = inotify_add_watch(w->fd, w->f[i].dir, WATCH_MASK);
		for (size_t k = i; k < w->n; k++)
			if (w->f[k].wd == wd && strcmp(w->f[k].dir, w->f[i].dir) == 0)
				w->f[k].wd = nwd; /* -1: lost */
		if (nwd < 0)
			ok = 0;
	}
	return ok;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct filewatch *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int hit = 0;

	(void)what;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break; /* EAGAIN: drained */
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ie = (const struct inotify_event *)p;

			if (ie->mask & IN_IGNORED) {
				if (!rewatch(w, ie->wd) && !w->lost_said) {
					w->lost_said = 1;
					log_warnx("a watched certificate directory went away: changes "
						  "there are no longer seen (SIGHUP still reloads)");
				}
				hit = 1; /* a new directory: its files may differ */
			}
			if (relevant(w, ie))
				hit = 1;
			p += sizeof(*ie) + ie->len;
		}
	}
	if (hit) {
		struct timeval tv = { (time_t)(w->debounce_ms / 1000),
				      (suseconds_t)(w->debounce_ms % 1000) * 1000 };

		w->events++;
		(void)evtimer_add(w->timer, &tv); /* re-arming pushes it back */
	}
}

int filewatch_new(struct event_base *base, const char *const *files, size_t n,
		  uint32_t debounce_ms, filewatch_fn fn, void *ctx, struct filewatch **pw,
		  char *err, size_t errlen)
{
	struct filewatch *w;
	char dir[PATH_MAX];
	int r;

	if (n == 0 || n > FILEWATCH_MAX_FILES || fn == NULL)
		return ZG_ERR_INVAL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return ZG_ERR_NOMEM;
	w->fd = -1;
	w->debounce_ms = debounce_ms;
	w->fn = fn;
	w->ctx = ctx;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		(void)snprintf(err, errlen, "inotify: %s", strerror(errno));
		r = ZG_ERR_IO;
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const char *slash = strrchr(files[i], '/');
		const char *base_name = slash != NULL ? slash + 1 : files[i];
		size_t dl = slash == NULL ? 1 : slash == files[i] ? 1
								  : (size_t)(slash - files[i]);

		if (dl >= sizeof(dir) || strlen(base_name) > NAME_MAX || base_name[0] == '\0') {
			(void)snprintf(err, errlen, "%s: not a file path", files[i]);
			r = ZG_ERR_INVAL;
			goto fail;
		}
		if (slash == NULL)
			memcpy(dir, ".", 2);
		else {
			memcpy(dir, files[i], dl);
			dir[dl] = '\0';
		}
		memcpy(w->f[i].dir, dir, strlen(dir) + 1);
		/* the same directory gives the same watch descriptor */
		w->f[i].wd = inotify_add_watch(w->fd, dir, WATCH_MASK);
		if (w->f[i].wd < 0) {
			(void)snprintf(err, errlen, "cannot watch %s: %s", dir, strerror(errno));
			r = ZG_ERR_IO;
			goto fail;
		}
		memcpy(w->f[i].name, base_name, strlen(base_name) + 1);
	}
	w->n = n;
	w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_inotify, w);
	w->timer = evtimer_new(base, on_timer, w);
	if (w->ev == NULL || w->timer == NULL || event_add(w->ev, NULL) != 0) {
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	*pw = w;
	return 0;
fail:
	filewatch_del(w);
	return r;
}

void filewatch_del(struct filewatch *w)
{
	int e = errno;

	if (w == NULL)
		return;
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->timer != NULL)
		event_free(w->timer);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
	errno = e;
}

uint64_t filewatch_events(const struct filewatch *w)
{
	return w->events;
}

uint64_t filewatch_sum(const char *const *files, size_t n)
{
	uint64_t h = FNV64_INIT;
	unsigned char buf[4096];

	for (size_t i = 0; i < n; i++) {
		FILE *f = fopen(files[i], "rb");
		size_t got, total = 0;

		if (f == NULL) {
			h = fnv64_mix(h, (uint64_t)errno);
			continue;
		}
		while (total < FILEWATCH_SUM_MAX && (got = fread(buf, 1, sizeof(buf), f)) > 0) {
			h = fnv64_bytes(h, buf, got);
			total += got;
		}
		h = fnv64_mix(h, 0xff); /* file boundary */
		fclose(f);
	}
	explicit_bzero(buf, sizeof(buf)); /* a key passed through it */
	return h;
}
