#include "cgroup.h"

#include <stdio.h>
#include <string.h>

void cgroup_each_file(const char *sysfs, const char *self_cgroup, const char *name,
		      void (*each)(const char *path, void *ctx), void *ctx)
{
	char line[512], path[1024];
	FILE *fp = fopen(self_cgroup, "re");

	if (fp != NULL) {
		while (fgets(line, sizeof(line), fp) != NULL) {
			char *cg = line + 3, *slash;

			line[strcspn(line, "\n")] = '\0';
			if (strncmp(line, "0::/", 4) != 0)
				continue;
			for (;;) {
				if ((size_t)snprintf(path, sizeof(path), "%s%s/%s", sysfs, cg, name) <
				    sizeof(path))
					each(path, ctx);
				slash = strrchr(cg, '/');
				if (slash == NULL || slash == cg)
					break;
				*slash = '\0';
			}
			break;
		}
		fclose(fp);
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", sysfs, name) < sizeof(path))
		each(path, ctx);
}
