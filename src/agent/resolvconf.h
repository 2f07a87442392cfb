/*
 * resolvconf.h — the agent's "file" DNS mode (issue 19.5): it points the
 * resolver file of its own view of the system (normally /etc/resolv.conf;
 * in a network namespace started with `ip netns exec`, the file bound over
 * it) at the relay's DNS server, and puts back exactly what it found.
 *
 * - The file is rewritten in place (open, truncate, write), never replaced
 *   by rename: /etc/resolv.conf is often a symlink or a bind mount, and both
 *   must stay what they are.
 * - Before the first write the original bytes (or the fact that there was
 *   no file) are saved in a backup file, by default beside it (path +
 *   ".zgate-orig"), written to a temporary file and renamed, fsync'd. The
 *   backup also holds the bytes the agent wrote. Agents that share one /etc
 *   (several `ip netns exec` namespaces, whose own resolv.conf is bound over
 *   /etc/resolv.conf) need a backup path each.
 * - On exit, and at the next start after a crash (resolvconf_recover()),
 *   the original is written back — but only while the file still holds what
 *   the agent wrote: if something else (NetworkManager, an administrator)
 *   replaced it since, that newer content is left alone. Then the backup is
 *   removed.
 *
 * resolv.conf cannot route some names to one server and the rest to
 * another; the agent lists the relay's servers first, then (unless the
 * relay claimed every name) the original servers, which glibc tries when
 * the relay's answer is REFUSED or SERVFAIL, or it does not answer. The
 * original search and options lines are kept; the relay's search domains
 * come first.
 */
#ifndef ZG_AGENT_RESOLVCONF_H
#define ZG_AGENT_RESOLVCONF_H

#include <stddef.h>

#define RESOLVCONF_DEFAULT "/etc/resolv.conf"
#define RESOLVCONF_BACKUP_SUFFIX ".zgate-orig"
#define RESOLVCONF_MAX (64 * 1024) /* larger resolver files are refused */

/* What to write: servers as text addresses, search domains; every_name =
 * the relay resolves all names (no fallback to the original servers). */
struct resolvconf_want {
	const char *const *servers;
	size_t nservers;
	const char *const *search;
	size_t nsearch;
	int every_name;
};

/* glibc reads the first 3 nameserver lines (MAXNS) */
#define RESOLVCONF_MAXNS 3

/* How many of w's servers the file lists: all, except that when the
 * original names servers and w is not every_name, at most
 * RESOLVCONF_MAXNS - 1, so the resolver still reads the first original
 * server as the fallback for the names the relay does not serve. */
size_t resolvconf_servers_kept(const char *orig, size_t origlen, const struct resolvconf_want *w);

/* Builds the new file from the original's bytes (orig, may be empty) and
 * w into out[0..cap): w's servers (resolvconf_servers_kept() of them; a
 * comment says how many were left out), the original servers unless
 * every_name, the search domains (w's first) and the original options.
 * Returns 0 with *plen, or ZG_ERR_BUFSHORT. */
int resolvconf_render(const char *orig, size_t origlen, const struct resolvconf_want *w,
		      char *out, size_t cap, size_t *plen);

struct resolvconf {
	char path[1024];
	char backup[1040];
	int active;   /* the file holds our content; the backup exists */
	int had_file; /* the original existed */
	char *orig;   /* its bytes */
	size_t origlen;
	char *ours; /* what we wrote last */
	size_t ourslen;
};

/* Prepares rc for path, with the backup at backup (NULL or "" = path +
 * RESOLVCONF_BACKUP_SUFFIX). No file is touched. Returns 0 or
 * ZG_ERR_INVAL (a path too long). */
int resolvconf_init(struct resolvconf *rc, const char *path, const char *backup);

/* After a crash: when the backup exists, restores the original as above
 * and removes the backup. Returns 0 with *prestored = 1 (restored), 0
 * (nothing to do, or the file had changed since: left as it is, backup
 * removed), or ZG_ERR_IO / ZG_ERR_MALFORMED (an unreadable or foreign
 * backup: left in place, nothing written). */
int resolvconf_recover(struct resolvconf *rc, int *prestored);

/* Writes the file for w (the first call saves the original and the
 * backup). Returns 0, ZG_ERR_IO (errno set; the file is unchanged or, if
 * the write itself failed midway, restored), ZG_ERR_TOO_LARGE (original
 * above RESOLVCONF_MAX), ZG_ERR_NOMEM. */
int resolvconf_apply(struct resolvconf *rc, const struct resolvconf_want *w);

/* Puts the original back (if the file is still ours) and removes the
 * backup. Returns 0 (also when nothing was active) or ZG_ERR_IO. */
int resolvconf_restore(struct resolvconf *rc);

/* Frees memory (does not restore). */
void resolvconf_free(struct resolvconf *rc);

#endif /* ZG_AGENT_RESOLVCONF_H */
