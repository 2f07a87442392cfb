#include "agent/resolvconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zg_err.h"

/* Backup file: a header line, then the two blobs back to back.
 *   "zgate-resolvconf 1 <had_file 0|1> <origlen> <ourslen>\n" orig ours */
#define BACKUP_MAGIC "zgate-resolvconf 1 "

struct buf {
	char *p;
	size_t n, cap;
	int short_;
};

static void add(struct buf *b, const char *s, size_t n)
{
	if (b->short_ || b->cap - b->n < n) {
		b->short_ = 1;
		return;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void adds(struct buf *b, const char *s)
{
	add(b, s, strlen(s));
}

/* 1 when the line (no newline) starts with keyword followed by a blank. */
static int is_kw(const char *line, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n > k && memcmp(line, kw, k) == 0 && (line[k] == ' ' || line[k] == '\t');
}

size_t resolvconf_servers_kept(const char *orig, size_t origlen, const struct resolvconf_want *w)
{
	const char *p, *end = origlen ? orig + origlen : orig, *nl;

	if (w->every_name || w->nservers < RESOLVCONF_MAXNS)
		return w->nservers;
	for (p = orig; orig != NULL && p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (is_kw(p, (size_t)(nl - p), "nameserver"))
			return RESOLVCONF_MAXNS - 1;
	}
	return w->nservers;
}

int resolvconf_render(const char *orig, size_t origlen, const struct resolvconf_want *w,
		      char *out, size_t cap, size_t *plen)
{
	struct buf b = { out, 0, cap, 0 };
	const char *p, *end = origlen ? orig + origlen : orig, *nl; /* orig may be NULL */
	size_t i, n, kept = resolvconf_servers_kept(orig, origlen, w);
	int pass;

	adds(&b, "# Written by zgate-agent: DNS from the relay (DNS_ASSIGN). The original\n"
		 "# is put back when the agent stops.\n");
	if (kept < w->nservers) {
		char line[160];

		(void)snprintf(line, sizeof(line),
			       "# %zu more of the relay's servers left out: the resolver reads %d,\n"
			       "# and the first original one stays for the other names.\n",
			       w->nservers - kept, RESOLVCONF_MAXNS);
		adds(&b, line);
	}
	for (i = 0; i < kept; i++) {
		adds(&b, "nameserver ");
		adds(&b, w->servers[i]);
		adds(&b, "\n");
	}
	/* pass 0: the original servers (a fallback), pass 1: search/domain
	 * (ours first), pass 2: options */
	for (pass = 0; pass < 3; pass++) {
		int searched = 0;

		if (pass == 1 && w->nsearch > 0) {
			adds(&b, "search");
			for (i = 0; i < w->nsearch; i++) {
				adds(&b, " ");
				adds(&b, w->search[i]);
			}
			searched = 1;
		}
		for (p = orig; orig != NULL && p < end; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				nl = end;
			n = (size_t)(nl - p);
			if (pass == 0 && !w->every_name && is_kw(p, n, "nameserver")) {
				add(&b, p, n);
				adds(&b, "\n");
			} else if (pass == 1 && (is_kw(p, n, "search") || is_kw(p, n, "domain"))) {
				/* "domain x" is a one-entry search list */
				const char *v = p + 6; /* after "search" or "domain" */

				if (!searched)
					adds(&b, "search");
				add(&b, v, (size_t)(nl - v));
				searched = 1;
			} else if (pass == 2 && is_kw(p, n, "options")) {
				add(&b, p, n);
				adds(&b, "\n");
			}
			if (nl == end)
				break;
		}
		if (pass == 1 && searched)
			adds(&b, "\n");
	}
	if (b.short_)
		return ZG_ERR_BUFSHORT;
	*plen = b.n;
	return 0;
}

int resolvconf_init(struct resolvconf *rc, const char *path, const char *backup)
{
	memset(rc, 0, sizeof(*rc));
	if (strlen(path) >= sizeof(rc->path) ||
	    (backup != NULL && strlen(backup) >= sizeof(rc->backup) - 8))
		return ZG_ERR_INVAL;
	(void)snprintf(rc->path, sizeof(rc->path), "%s", path);
	if (backup != NULL && backup[0] != '\0')
		(void)snprintf(rc->backup, sizeof(rc->backup), "%s", backup);
	else
		(void)snprintf(rc->backup, sizeof(rc->backup), "%s%s", path,
			       RESOLVCONF_BACKUP_SUFFIX);
	return 0;
}

/* Reads a whole file up to max bytes. Returns 0 with a malloc'd *pbuf
 * (NUL-terminated beyond *plen), ZG_ERR_NOTFOUND (no file: errno ENOENT),
 * ZG_ERR_TOO_LARGE, ZG_ERR_IO or ZG_ERR_NOMEM. */
static int read_all(const char *path, size_t max, char **pbuf, size_t *plen)
{
	char *b = NULL, *nb;
	size_t n = 0, cap = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? ZG_ERR_NOTFOUND : ZG_ERR_IO;
	for (;;) {
		if (cap - n < 4096 + 1) {
			cap = cap ? cap * 2 : 8192;
			nb = realloc(b, cap);
			if (nb == NULL) {
				free(b);
				close(fd);
				return ZG_ERR_NOMEM;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(b);
			close(fd);
			return ZG_ERR_IO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			free(b);
			close(fd);
			return ZG_ERR_TOO_LARGE;
		}
	}
	close(fd);
	b[n] = '\0';
	*pbuf = b;
	*plen = n;
	return 0;
}

/* Rewrites path in place with data (following a symlink, keeping a bind
 * mount). Returns 0 or ZG_ERR_IO. */
static int write_in_place(const char *path, const char *data, size_t n, int create)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
	size_t off = 0;
	ssize_t w;
	int e;

	if (fd < 0)
		return ZG_ERR_IO;
	while (off < n) {
		w = write(fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e = errno;
			close(fd);
			errno = e;
			return ZG_ERR_IO;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 && errno != EINVAL) {
		e = errno;
		close(fd);
		errno = e;
		return ZG_ERR_IO;
	}
	return close(fd) == 0 ? 0 : ZG_ERR_IO;
}

/* The backup, written to a temporary file, fsync'd, renamed. */
static int write_backup(const struct resolvconf *rc)
{
	char tmp[1100], hdr[96];
	int n = snprintf(hdr, sizeof(hdr), BACKUP_MAGIC "%d %zu %zu\n", rc->had_file, rc->origlen,
			 rc->ourslen);
	FILE *f;
	int ok;

	(void)snprintf(tmp, sizeof(tmp), "%s.tmp", rc->backup);
	f = fopen(tmp, "we");
	if (f == NULL)
		return ZG_ERR_IO;
	ok = fwrite(hdr, 1, (size_t)n, f) == (size_t)n &&
	     fwrite(rc->orig ? rc->orig : "", 1, rc->origlen, f) == rc->origlen &&
	     fwrite(rc->ours ? rc->ours : "", 1, rc->ourslen, f) == rc->ourslen &&
	     fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, rc->backup) != 0) {
		int e = errno;

		(void)unlink(tmp);
		errno = e;
		return ZG_ERR_IO;
	}
	return 0;
}

/* Writes the original back when the file still holds ours (cur). */
static int put_back(struct resolvconf *rc)
{
	char *cur = NULL;
	size_t curlen = 0;
	int r = read_all(rc->path, RESOLVCONF_MAX, &cur, &curlen);
	int ours = (r == 0 && curlen == rc->ourslen && memcmp(cur, rc->ours, curlen) == 0);

	free(cur);
	if (r != 0 && r != ZG_ERR_NOTFOUND && r != ZG_ERR_TOO_LARGE)
		return r;
	if (!ours)
		return 1; /* someone else's now: leave it */
	if (rc->had_file)
		r = write_in_place(rc->path, rc->orig, rc->origlen, 0);
	else
		r = unlink(rc->path) == 0 || errno == ENOENT ? 0 : ZG_ERR_IO;
	return r;
}

int resolvconf_recover(struct resolvconf *rc, int *prestored)
{
	char *b = NULL, *p, *end;
	size_t blen = 0;
	int had, r, used;
	unsigned long long ol, wl;

	*prestored = 0;
	r = read_all(rc->backup, 3 * RESOLVCONF_MAX, &b, &blen);
	if (r == ZG_ERR_NOTFOUND)
		return 0;
	if (r != 0)
		return r;
	p = b;
	end = b + blen;
	if (blen < sizeof(BACKUP_MAGIC) - 1 || memcmp(b, BACKUP_MAGIC, sizeof(BACKUP_MAGIC) - 1) != 0 ||
	    sscanf(b + sizeof(BACKUP_MAGIC) - 1, "%d %llu %llu\n%n", &had, &ol, &wl, &used) != 3 ||
	    (had != 0 && had != 1) || ol > RESOLVCONF_MAX || wl > RESOLVCONF_MAX ||
	    (size_t)(end - (p + sizeof(BACKUP_MAGIC) - 1 + used)) != ol + wl) {
		free(b);
		return ZG_ERR_MALFORMED;
	}
	p += sizeof(BACKUP_MAGIC) - 1 + used;
	free(rc->orig);
	free(rc->ours);
	rc->orig = malloc(ol + 1);
	rc->ours = malloc(wl + 1);
	if (rc->orig == NULL || rc->ours == NULL) {
		free(b);
		return ZG_ERR_NOMEM;
	}
	memcpy(rc->orig, p, ol);
	memcpy(rc->ours, p + ol, wl);
	rc->origlen = ol;
	rc->ourslen = wl;
	rc->had_file = had;
	free(b);
	r = put_back(rc);
	if (r < 0)
		return r;
	*prestored = r == 0;
	(void)unlink(rc->backup);
	rc->active = 0;
	return 0;
}

int resolvconf_apply(struct resolvconf *rc, const struct resolvconf_want *w)
{
	char *out = NULL;
	size_t len = 0, cap;
	int r, first = !rc->active;

	if (first) {
		free(rc->orig);
		rc->orig = NULL;
		rc->origlen = 0;
		r = read_all(rc->path, RESOLVCONF_MAX, &rc->orig, &rc->origlen);
		rc->had_file = r == 0;
		if (r != 0 && r != ZG_ERR_NOTFOUND)
			return r;
	}
	cap = rc->origlen + 4096 + w->nservers * 64 + w->nsearch * 260;
	out = malloc(cap);
	if (out == NULL)
		return ZG_ERR_NOMEM;
	r = resolvconf_render(rc->orig, rc->origlen, w, out, cap, &len);
	if (r != 0) {
		free(out);
		return r;
	}
	free(rc->ours);
	rc->ours = out;
	rc->ourslen = len;
	/* the backup first: a crash after it (even midway through the
	 * write below) is undone at the next start */
	if ((r = write_backup(rc)) != 0)
		return r;
	rc->active = 1;
	r = write_in_place(rc->path, rc->ours, rc->ourslen, 1);
	if (r != 0) {
		int e = errno;

		if (first) { /* put the original back and forget the backup */
			if (rc->had_file)
				(void)write_in_place(rc->path, rc->orig, rc->origlen, 0);
			else
				(void)unlink(rc->path);
			(void)unlink(rc->backup);
			rc->active = 0;
		}
		errno = e;
	}
	return r;
}

int resolvconf_restore(struct resolvconf *rc)
{
	int r;

	if (!rc->active)
		return 0;
	r = put_back(rc);
	if (r < 0)
		return r;
	(void)unlink(rc->backup);
	rc->active = 0;
	return 0;
}

void resolvconf_free(struct resolvconf *rc)
{
	free(rc->orig);
	free(rc->ours);
	rc->orig = rc->ours = NULL;
}
