/* Unit tests for src/common/sdnotify: the datagram a service manager
 * reads from $NOTIFY_SOCKET (path and abstract names), and the watchdog
 * interval from $WATCHDOG_USEC/$WATCHDOG_PID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sdnotify.h"
#include "zg_err.h"

/* A datagram socket bound at name ("@x" abstract, else a path), as
 * systemd's manager binds its notification socket. */
static int listener(const char *name)
{
	struct sockaddr_un sa;
	size_t n = strlen(name);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	else
		len++;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_sdnotify_without_manager_does_nothing(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sdnotify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(sdnotify_send("READY=1"), 0);
}

static void test_sdnotify_abstract_socket(void **state)
{
	char name[64];
	int fd;

	(void)state;
	(void)snprintf(name, sizeof(name), "@zgate-test-sdnotify-%d", (int)getpid());
	fd = listener(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sdnotify_send("READY=1\nSTATUS=ready"), 1);
	expect_datagram(fd, "READY=1\nSTATUS=ready");
	assert_int_equal(sdnotify_send("WATCHDOG=1"), 1);
	expect_datagram(fd, "WATCHDOG=1");
	close(fd);
	/* nobody bound there any more */
	assert_int_equal(sdnotify_send("STOPPING=1"), ZG_ERR_IO);
	unsetenv("NOTIFY_SOCKET");
}

static void test_sdnotify_path_socket(void **state)
{
	char dir[] = "/tmp/zg-sdnotify-XXXXXX", path[128];
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/notify", dir);
	fd = listener(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sdnotify_send("STOPPING=1"), 1);
	expect_datagram(fd, "STOPPING=1");
	close(fd);
	unlink(path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

static void test_sdnotify_bad_socket_names(void **state)
{
	char longname[200];

	(void)state;
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(sdnotify_send("READY=1"), ZG_ERR_INVAL);
	setenv("NOTIFY_SOCKET", "@", 1);
	assert_int_equal(sdnotify_send("READY=1"), ZG_ERR_INVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(sdnotify_send("READY=1"), ZG_ERR_INVAL);
	unsetenv("NOTIFY_SOCKET");
}

static void test_sdnotify_watchdog_interval(void **state)
{
	char pid[32];
	uint64_t us = 0;

	(void)state;
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sdnotify_watchdog_usec(&us), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(sdnotify_watchdog_usec(&us), 1);
	assert_int_equal(us, 30000000);
	(void)snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	us = 0;
	assert_int_equal(sdnotify_watchdog_usec(&us), 1);
	assert_int_equal(us, 30000000);
	(void)snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdnotify_watchdog_usec(&us), 0); /* another process's */
	setenv("WATCHDOG_PID", "12x", 1);
	assert_int_equal(sdnotify_watchdog_usec(&us), ZG_ERR_CONFIG);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "0", 1);
	assert_int_equal(sdnotify_watchdog_usec(&us), ZG_ERR_CONFIG);
	setenv("WATCHDOG_USEC", "-5", 1);
	assert_int_equal(sdnotify_watchdog_usec(&us), ZG_ERR_CONFIG);
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sdnotify_without_manager_does_nothing),
		cmocka_unit_test(test_sdnotify_abstract_socket),
		cmocka_unit_test(test_sdnotify_path_socket),
		cmocka_unit_test(test_sdnotify_bad_socket_names),
		cmocka_unit_test(test_sdnotify_watchdog_interval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
