/*
 * cgroup.h — the cgroup v2 files that bind this process: its own cgroup
 * ("0::/path" in /proc/self/cgroup) and each parent up to the root of the
 * mount (all a container with its own cgroup namespace sees), then the
 * mount's root itself. The memory cap (src/stack/budget.c, memory.max)
 * and the relay's default number of workers (src/relay/config.c, cpu.max)
 * take the smallest limit on that way.
 */
#ifndef ZG_CGROUP_H
#define ZG_CGROUP_H

/* Calls each(path, ctx) for sysfs/<cgroup>/name, sysfs/<parent>/name, ...
 * (from self_cgroup, normally /proc/self/cgroup; none when it cannot be
 * read or has no v2 line), then sysfs/name. Paths that do not fit are
 * skipped; the files need not exist. */
void cgroup_each_file(const char *sysfs, const char *self_cgroup, const char *name,
		      void (*each)(const char *path, void *ctx), void *ctx);

#endif /* ZG_CGROUP_H */
