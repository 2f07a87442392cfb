/* rootfs-standin — a stand-in for zgate-relay inside the root file system
 * docker/rootfs.sh stages, while the relay binary may not exist yet. It
 * links the same Debian runtime libraries as the relay (libevent, libyaml,
 * libmnl) and checks, from inside the chroot that scripts/check-packaging.sh
 * runs it in, what the image promises: it runs as 65532:65532 with no
 * effective capability, the root file system is read-only, /tmp and
 * /var/lib/zgate are writable, and its libraries load. Prints one line per
 * finding; exits 1 if any promise is broken. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <yaml.h>

static int bad;

static void expect(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	if (!ok)
		bad = 1;
}

static int can_create(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);

	if (fd < 0)
		return -errno;
	close(fd);
	unlink(path);
	return 0;
}

int main(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	expect(getuid() == 65532 && geteuid() == 65532, "runs as uid 65532");
	expect(getgid() == 65532 && getegid() == 65532, "runs as gid 65532");
	memset(d, 0, sizeof(d));
	expect(syscall(SYS_capget, &h, d) == 0 && d[0].effective == 0 && d[1].effective == 0 &&
		       d[0].permitted == 0 && d[1].permitted == 0,
	       "no effective or permitted capability");
	expect(can_create("/zgate-write-test") == -EROFS, "root file system is read-only");
	expect(can_create("/etc/zgate/write-test") == -EROFS, "configuration is read-only");
	expect(can_create("/tmp/zgate-write-test") == 0, "/tmp is writable");
	expect(can_create("/var/lib/zgate/write-test") == 0, "/var/lib/zgate (state) is writable");
	expect(access("/etc/zgate/zgate-relay.yaml", R_OK) == 0, "configuration is readable");
	expect(access("/bin/sh", X_OK) != 0, "there is no shell");
	expect(event_get_version() != NULL, "libevent loads");
	expect(yaml_get_version_string() != NULL, "libyaml loads");
	expect(mnl_nlmsg_size(0) > 0, "libmnl loads");
	return bad;
}
