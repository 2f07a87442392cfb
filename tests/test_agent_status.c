/* Unit tests for src/agent/status: the JSON status file and its atomic
 * replacement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "agent/status.h"
#include "zg_err.h"

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

static void test_format_connected(void **state)
{
	struct route_prefix a[2] = { pfx("10.100.0.7", 32), pfx("fd00:100::7", 128) };
	struct route_prefix r[3] = { pfx("0.0.0.0", 1), pfx("128.0.0.0", 1), pfx("2001:db8::", 32) };
	struct route_prefix host = pfx("192.0.2.1", 32);
	struct status_counters c = { .tx_packets = 10, .tx_bytes = 1000, .rx_packets = 9,
				     .rx_bytes = 900, .drop_outage = 3, .drop_too_big = 1,
				     .drop_congested = 2, .drop_tun_write = 0, .drop_not_ours = 4,
				     .drop_malformed = 6,
				     .icmp_too_big = 1, .connects = 2 };
	struct status_quic q = { .srtt_us = 412, .min_rtt_us = 180, .cwnd = 123456,
				 .bytes_in_flight = 7000, .packets_sent = 99, .packets_lost = 1,
				 .queued_bytes = 2800, .next_timer_us = -1, .tun_paused = 1 };
	struct status_refusal ref[2] = { { pfx("8.8.8.8", 32), 0, ROUTE_NOT_TUNNELED },
					 { pfx("127.0.0.0", 8), 1, ROUTE_LOOPBACK } };
	struct status_info st = {
		.state = "connected", .since = 1700000000, .relay = "relay.example:443",
		.tun = "zgate0", .mtu = 1350, .addrs = a, .naddrs = 2, .routes = r, .nroutes = 3,
		.relay_route = &host, .refused = ref, .nrefused = 2, .refused_unlisted = 5,
		.c = &c, .quic = &q, .last_error = "",
	};
	char buf[2048];
	size_t n = 0;

	(void)state;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, strlen(buf));
	assert_string_equal(
		buf,
		"{\"state\":\"connected\",\"since\":1700000000,\"relay\":\"relay.example:443\","
		"\"tun\":\"zgate0\",\"mtu\":1350,\"addresses\":[\"10.100.0.7/32\",\"fd00:100::7/128\"],"
		"\"routes\":[\"0.0.0.0/1\",\"128.0.0.0/1\",\"2001:db8::/32\"],"
		"\"relay_route\":\"192.0.2.1/32\","
		"\"refused\":[{\"address\":\"8.8.8.8/32\",\"reason\":\"not_tunneled\"},"
		"{\"route\":\"127.0.0.0/8\",\"reason\":\"loopback\"}],\"refused_unlisted\":5,"
		"\"connects\":2,\"tx_packets\":10,\"tx_bytes\":1000,"
		"\"rx_packets\":9,\"rx_bytes\":900,\"drops\":{\"outage\":3,\"too_big\":1,"
		"\"congested\":2,\"tun_write\":0,\"not_ours\":4,\"malformed\":6},\"icmp_too_big_sent\":1,\"last_error\":\"\","
		"\"quic\":{\"srtt_us\":412,\"min_rtt_us\":180,\"cwnd\":123456,"
		"\"bytes_in_flight\":7000,\"packets_sent\":99,\"packets_lost\":1,"
		"\"queued_bytes\":2800,\"next_timer_us\":-1,\"tun_paused\":true}}\n");
}

static void test_format_empty_and_escaped(void **state)
{
	struct status_counters c;
	struct status_info st = {
		.state = "reconnecting", .since = 0, .relay = "[2001:db8::1]:443", .tun = "zgate0",
		.c = &c, .last_error = "relay said \"no\"\\\n\ttab\x01",
	};
	char buf[1024];
	size_t n = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, "\"addresses\":[],\"routes\":[],\"relay_route\":null,"
				    "\"refused\":[],\"refused_unlisted\":0,"));
	assert_non_null(strstr(buf, "\"mtu\":0"));
	assert_non_null(strstr(buf, "\"last_error\":\"relay said \\\"no\\\"\\\\\\n\\ttab\\u0001\",\"quic\":null}"));
}

static void test_format_bufshort(void **state)
{
	struct status_counters c;
	struct status_info st = { .state = "connected", .relay = "r:1", .tun = "t", .c = &c,
				  .last_error = "" };
	char buf[2048];
	size_t n = 0, full;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(status_format(&st, buf, sizeof(buf), &full), 0);
	for (size_t cap = 0; cap <= full; cap++)
		assert_int_equal(status_format(&st, buf, cap, &n), ZG_ERR_BUFSHORT);
	assert_int_equal(status_format(&st, buf, full + 1, &n), 0);
	assert_int_equal(n, full);
}

static char dir[64];

static int mkdir_setup(void **state)
{
	(void)state;
	(void)snprintf(dir, sizeof(dir), "/tmp/zg-status-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int rmdir_teardown(void **state)
{
	char cmd[128];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static const char *slurp(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_write_replaces_atomically(void **state)
{
	char path[128], bad[160];
	struct dirent *de;
	DIR *d;
	int files = 0;

	(void)state;
	(void)snprintf(path, sizeof(path), "%s/status.json", dir);
	assert_int_equal(status_write_file(path, "{\"a\":1}\n", 8), 0);
	assert_string_equal(slurp(path), "{\"a\":1}\n");
	assert_int_equal(status_write_file(path, "{}\n", 3), 0);
	assert_string_equal(slurp(path), "{}\n");
	/* no temporary file is left behind */
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		files += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(files, 1);
	/* a file that cannot be written leaves nothing and says why */
	(void)snprintf(bad, sizeof(bad), "%s/missing/status.json", dir);
	errno = 0;
	assert_int_equal(status_write_file(bad, "{}\n", 3), ZG_ERR_IO);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(slurp(path), "{}\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_connected),
		cmocka_unit_test(test_format_empty_and_escaped),
		cmocka_unit_test(test_format_bufshort),
		cmocka_unit_test_setup_teardown(test_write_replaces_atomically, mkdir_setup,
						rmdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
