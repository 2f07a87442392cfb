/*
 * Tests for src/agent/tun and src/agent/netlink against the real kernel, in
 * a private network namespace this process enters at start (unshare), so
 * nothing on the machine is touched. Needs root (CAP_SYS_ADMIN for the
 * namespace, CAP_NET_ADMIN inside it); without it every test is skipped.
 * What the kernel holds is read back with `ip`, the way an operator would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/netlink.h"
#include "agent/tun.h"
#include "zg_err.h"

static int in_netns;

/* Runs a shell command and returns its standard output. */
static const char *sh(const char *cmd)
{
	static char out[8192];
	size_t n = 0;
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	pclose(f);
	return out;
}

static struct route_prefix pfx(const char *s, uint8_t len)
{
	struct route_prefix p;
	memset(&p, 0, sizeof(p));
	if (inet_pton(AF_INET, s, p.addr) == 1)
		p.version = 4;
	else {
		assert_int_equal(inet_pton(AF_INET6, s, p.addr), 1);
		p.version = 6;
	}
	p.len = len;
	return p;
}

static void test_tun_open_errors(void **state)
{
	char name[32], err[256];
	int fd, idx;
	(void)state;
	if (!in_netns)
		skip();
	assert_int_equal(tun_open("a-name-that-is-far-too-long", name, sizeof(name), &fd, &idx,
				  err, sizeof(err)),
			 ZG_ERR_IO);
	assert_non_null(strstr(err, "longer than 15 characters"));
	/* a non-TUN device of the same name */
	sh("ip link add zgveth0 type veth peer name zgveth1 2>&1");
	assert_int_equal(tun_open("zgveth0", name, sizeof(name), &fd, &idx, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "cannot create TUN device \"zgveth0\""));
	sh("ip link del zgveth0 2>&1");
}

/* Without CAP_NET_ADMIN (uid 65534, as an unprivileged user runs it) the
 * error says what is missing and how to grant it. */
static void test_tun_without_cap_net_admin(void **state)
{
	pid_t pid;
	int st;
	(void)state;
	if (!in_netns)
		skip();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char name[32], err[256];
		int fd, idx, r;
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		r = tun_open("zgtest1", name, sizeof(name), &fd, &idx, err, sizeof(err));
		if (r == ZG_ERR_IO && (strstr(err, "needs CAP_NET_ADMIN") ||
				       strstr(err, "run as root or with CAP_NET_ADMIN")))
			_exit(0);
		fprintf(stderr, "tun_open as uid 65534: r=%d err=%s\n", r, err);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_tun_address_routes_and_teardown(void **state)
{
	char name[32], err[256];
	int fd, idx;
	struct nl *nl;
	struct route_prefix vip = pfx("10.100.0.7", 32);
	struct route_prefix r1 = pfx("203.0.113.0", 24), r2 = pfx("0.0.0.0", 1), r3 = pfx("128.0.0.0", 1);
	struct route_prefix v6 = pfx("fd00:100::7", 128), r6 = pfx("2001:db8::", 32);
	uint8_t dst[16] = { 203, 0, 113, 5 }, gw[16];
	int has_gw, oif;
	const char *out;
	(void)state;
	if (!in_netns)
		skip();

	assert_int_equal(tun_open("zgtest0", name, sizeof(name), &fd, &idx, err, sizeof(err)), 0);
	assert_string_equal(name, "zgtest0");
	assert_int_equal(nl_open(&nl), 0);
	assert_int_equal(nl_link_set(nl, idx, 1, 1400), 0);
	assert_int_equal(nl_addr(nl, 1, idx, &vip), 0);
	assert_int_equal(nl_addr(nl, 1, idx, &v6), 0);
	assert_int_equal(nl_route(nl, 1, idx, &r1, NULL), 0);
	assert_int_equal(nl_route(nl, 1, idx, &r2, NULL), 0);
	assert_int_equal(nl_route(nl, 1, idx, &r3, NULL), 0);
	assert_int_equal(nl_route(nl, 1, idx, &r6, NULL), 0);

	out = sh("ip -o link show zgtest0");
	assert_non_null(strstr(out, "mtu 1400"));
	assert_non_null(strstr(out, ",UP"));
	out = sh("ip -o addr show dev zgtest0");
	assert_non_null(strstr(out, "inet 10.100.0.7/32"));
	assert_non_null(strstr(out, "inet6 fd00:100::7/128"));
	out = sh("ip route show dev zgtest0");
	assert_non_null(strstr(out, "0.0.0.0/1 proto static scope link"));
	assert_non_null(strstr(out, "128.0.0.0/1 proto static scope link"));
	assert_non_null(strstr(out, "203.0.113.0/24 proto static scope link"));
	out = sh("ip -6 route show dev zgtest0");
	assert_non_null(strstr(out, "2001:db8::/32 proto static"));

	/* the kernel now sends 203.0.113.5 into the tunnel */
	assert_int_equal(nl_route_get(nl, 4, dst, gw, &has_gw, &oif), 0);
	assert_int_equal(oif, idx);
	assert_int_equal(has_gw, 0);

	/* adding the same route again is EEXIST */
	assert_int_equal(nl_route(nl, 1, idx, &r1, NULL), ZG_ERR_IO);
	assert_int_equal(errno, EEXIST);

	/* teardown removes exactly what was added */
	assert_int_equal(nl_route(nl, 0, idx, &r1, NULL), 0);
	assert_int_equal(nl_route(nl, 0, idx, &r2, NULL), 0);
	assert_int_equal(nl_route(nl, 0, idx, &r3, NULL), 0);
	assert_int_equal(nl_route(nl, 0, idx, &r6, NULL), 0);
	assert_int_equal(nl_addr(nl, 0, idx, &vip), 0);
	assert_int_equal(nl_addr(nl, 0, idx, &v6), 0);
	assert_string_equal(sh("ip route show dev zgtest0"), "");
	assert_null(strstr(sh("ip -o addr show dev zgtest0"), "10.100.0.7"));
	/* removing again: the kernel says it is gone */
	assert_int_equal(nl_route(nl, 0, idx, &r1, NULL), ZG_ERR_IO);
	assert_int_equal(errno, ESRCH);
	nl_close(nl);
	close(fd);
	/* closing the descriptor removes a non-persistent TUN */
	assert_string_equal(sh("ip -o link show zgtest0 2>/dev/null"), "");
}

static void test_relay_host_route_via_gateway(void **state)
{
	struct nl *nl;
	uint8_t relay[16] = { 198, 51, 100, 9 }, gw[16];
	int has_gw, oif, vidx;
	struct route_prefix host = pfx("198.51.100.9", 32);
	(void)state;
	if (!in_netns)
		skip();

	assert_int_equal(nl_open(&nl), 0);
	/* no route at all yet */
	assert_int_equal(nl_route_get(nl, 4, relay, gw, &has_gw, &oif), ZG_ERR_IO);
	assert_int_equal(errno, ENETUNREACH);

	sh("ip link add zgv0 type veth peer name zgv1 && ip addr add 192.0.2.1/24 dev zgv0 && "
	   "ip link set zgv0 up && ip link set zgv1 up && ip route add default via 192.0.2.254 2>&1");
	vidx = (int)if_nametoindex("zgv0"); /* sysfs shows the first namespace, not ours */
	assert_true(vidx > 0);
	assert_int_equal(nl_route_get(nl, 4, relay, gw, &has_gw, &oif), 0);
	assert_int_equal(has_gw, 1);
	assert_int_equal(oif, vidx);
	assert_memory_equal(gw, ((uint8_t[]){ 192, 0, 2, 254 }), 4);

	/* pin the relay's address to that path, as the agent does before a full tunnel */
	assert_int_equal(nl_route(nl, 1, oif, &host, gw), 0);
	assert_non_null(strstr(sh("ip route show 198.51.100.9"), "198.51.100.9 via 192.0.2.254 dev zgv0 proto static"));
	assert_int_equal(nl_route(nl, 0, oif, &host, gw), 0);
	sh("ip link del zgv0");
	nl_close(nl);
}

/* Issue 16 item 5: an assigned address never brings a prefix route, even
 * with a short prefix (the review's relay assigned 128.0.0.0/1). */
static void test_i16_address_without_prefix_route(void **state)
{
	char name[32], err[256];
	int fd, idx;
	struct nl *nl;
	struct route_prefix wide = pfx("128.0.0.0", 1), v6 = pfx("fd00:100::", 64);
	const char *out;
	(void)state;
	if (!in_netns)
		skip();

	assert_int_equal(tun_open("zgtest2", name, sizeof(name), &fd, &idx, err, sizeof(err)), 0);
	assert_int_equal(nl_open(&nl), 0);
	assert_int_equal(nl_link_set(nl, idx, 1, 1400), 0);
	assert_int_equal(nl_addr(nl, 1, idx, &wide), 0);
	assert_int_equal(nl_addr(nl, 1, idx, &v6), 0);
	out = sh("ip -o addr show dev zgtest2");
	assert_non_null(strstr(out, "inet 128.0.0.0/1 scope global noprefixroute zgtest2"));
	assert_non_null(strstr(out, "inet6 fd00:100::/64 scope global nodad noprefixroute"));
	assert_string_equal(sh("ip -4 route show dev zgtest2"), "");
	assert_null(strstr(sh("ip -6 route show dev zgtest2"), "fd00:100::/64"));
	assert_int_equal(nl_addr(nl, 0, idx, &wide), 0);
	assert_int_equal(nl_addr(nl, 0, idx, &v6), 0);
	assert_null(strstr(sh("ip -o addr show dev zgtest2"), "128.0.0.0"));
	nl_close(nl);
	close(fd);
}

/* The kernel's matching route, with its own length: what the agent asks
 * before taking an address. */
static void test_i16_route_match(void **state)
{
	struct nl *nl;
	struct route_lookup k;
	struct route_prefix lan = pfx("192.0.2.77", 32), mine = pfx("192.0.2.1", 32),
			    far = pfx("8.8.8.8", 32), v6 = pfx("2001:db8::1", 128);
	int vidx;
	(void)state;
	if (!in_netns)
		skip();

	assert_int_equal(nl_open(&nl), 0);
	sh("ip link add zgv2 type veth peer name zgv3 && ip addr add 192.0.2.1/24 dev zgv2 && "
	   "ip link set zgv2 up && ip link set zgv3 up 2>&1");
	vidx = (int)if_nametoindex("zgv2");
	assert_true(vidx > 0);
	/* no default route yet: nothing matches 8.8.8.8 */
	assert_int_equal(nl_route_match(nl, &far, &k), 0);
	assert_int_equal(k.found, 0);
	assert_int_equal(nl_route_match(nl, &v6, &k), 0);
	assert_int_equal(k.found, 0);
	/* the LAN's route: another interface, a /24 */
	assert_int_equal(nl_route_match(nl, &lan, &k), 0);
	assert_int_equal(k.found, 1);
	assert_int_equal(k.oif, vidx);
	assert_int_equal(k.len, 24);
	assert_int_equal(k.local, 0);
	assert_int_equal(routes_check_kernel(&k, 999), ROUTE_HIJACK);
	/* an address of this machine */
	assert_int_equal(nl_route_match(nl, &mine, &k), 0);
	assert_int_equal(k.found, 1);
	assert_int_equal(k.local, 1);
	assert_int_equal(k.oif, vidx);
	assert_int_equal(routes_check_kernel(&k, 999), ROUTE_LOCAL);
	/* through the default route: the length is 0 */
	sh("ip route add default via 192.0.2.254 2>&1");
	assert_int_equal(nl_route_match(nl, &far, &k), 0);
	assert_int_equal(k.found, 1);
	assert_int_equal(k.len, 0);
	assert_int_equal(k.oif, vidx);
	assert_int_equal(routes_check_kernel(&k, 999), ROUTE_OK);
	/* a blackhole route refuses: nothing to capture */
	sh("ip route add blackhole 203.0.113.0/24 2>&1");
	{
		struct route_prefix bh = pfx("203.0.113.5", 32);
		assert_int_equal(nl_route_match(nl, &bh, &k), 0);
		assert_int_equal(k.found, 0);
	}
	sh("ip route del blackhole 203.0.113.0/24; ip link del zgv2");
	nl_close(nl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tun_open_errors),
		cmocka_unit_test(test_tun_without_cap_net_admin),
		cmocka_unit_test(test_tun_address_routes_and_teardown),
		cmocka_unit_test(test_relay_host_route_via_gateway),
		cmocka_unit_test(test_i16_address_without_prefix_route),
		cmocka_unit_test(test_i16_route_match),
	};
	if (unshare(CLONE_NEWNET) == 0)
		in_netns = 1;
	else
		fprintf(stderr, "test_agent_netlink: unshare(CLONE_NEWNET): %s: skipping\n",
			strerror(errno));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
