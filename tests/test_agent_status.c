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
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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
	struct status_counters c = { .tx_packets = 10, .tx_bytes = 1000, .rx_packets = 9, .rx_bytes = 900, .drop_outage = 3, .drop_too_big = 1, .drop_congested = 2, .drop_tun_write = 0, .drop_not_ours = 4, .drop_malformed = 6, .icmp_too_big = 1, .connects = 2, .cert_reloads = 3, .cert_reload_errors = 1 };
	struct status_quic q = { .srtt_us = 412, .min_rtt_us = 180, .cwnd = 123456, .bytes_in_flight = 7000, .packets_sent = 99, .packets_lost = 1, .queued_bytes = 2800, .next_timer_us = -1, .tun_paused = 1 };
	struct status_refusal ref[2] = { { pfx("8.8.8.8", 32), 0, ROUTE_NOT_TUNNELED },
					 { pfx("127.0.0.0", 8), 1, ROUTE_LOOPBACK } };
	struct status_info st = {
		.state = "connected",
		.since = 1700000000,
		.pid = 4242,
		.updated = 1700000042,
		.relay = "relay.example:443",
		.tun = "zgate0",
		.mtu = 1350,
		.addrs = a,
		.naddrs = 2,
		.routes = r,
		.nroutes = 3,
		.relay_route = &host,
		.refused = ref,
		.nrefused = 2,
		.refused_unlisted = 5,
		.c = &c,
		.quic = &q,
		.last_error = "",
	};
	char buf[2048];
	size_t n = 0;

	(void)state;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, strlen(buf));
	assert_string_equal(
		buf,
		"{\"state\":\"connected\",\"since\":1700000000,\"pid\":4242,\"updated\":1700000042,"
		"\"relay\":\"relay.example:443\",\"relays\":[\"relay.example:443\"],"
		"\"relay_index\":0,\"relay_switches\":0,"
		"\"tun\":\"zgate0\",\"mtu\":1350,\"addresses\":[\"10.100.0.7/32\",\"fd00:100::7/128\"],"
		"\"routes\":[\"0.0.0.0/1\",\"128.0.0.0/1\",\"2001:db8::/32\"],"
		"\"relay_route\":\"192.0.2.1/32\","
		"\"refused\":[{\"address\":\"8.8.8.8/32\",\"reason\":\"not_tunneled\"},"
		"{\"route\":\"127.0.0.0/8\",\"reason\":\"loopback\"}],\"refused_unlisted\":5,"
		"\"connects\":2,\"tx_packets\":10,\"tx_bytes\":1000,"
		"\"rx_packets\":9,\"rx_bytes\":900,\"drops\":{\"outage\":3,\"too_big\":1,"
		"\"congested\":2,\"tun_write\":0,\"not_ours\":4,\"malformed\":6},\"icmp_too_big_sent\":1,"
		"\"cert_reloads\":3,\"cert_reload_errors\":1,"
		"\"route_updates\":{\"advertisements\":0,\"refused\":0,\"changes\":0,\"applied\":0,"
		"\"coalesced\":0},\"last_error\":\"\","
		"\"quic\":{\"srtt_us\":412,\"min_rtt_us\":180,\"cwnd\":123456,"
		"\"bytes_in_flight\":7000,\"packets_sent\":99,\"packets_lost\":1,"
		"\"queued_bytes\":2800,\"next_timer_us\":-1,\"tun_paused\":true}}\n");
}

static void test_format_empty_and_escaped(void **state)
{
	struct status_counters c;
	struct status_info st = {
		.state = "reconnecting",
		.since = 0,
		.relay = "[2001:db8::1]:443",
		.tun = "zgate0",
		.c = &c,
		.last_error = "relay said \"no\"\\\n\ttab\x01",
	};
	char buf[1024];
	size_t n = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, "\"addresses\":[],\"routes\":[],\"relay_route\":null,"
				    "\"refused\":[],\"refused_unlisted\":0,"));
	assert_non_null(strstr(buf, "\"mtu\":0"));
	assert_non_null(strstr(buf, "\"cert_reloads\":0,\"cert_reload_errors\":0,\"route_updates\":{"
				    "\"advertisements\":0,\"refused\":0,\"changes\":0,\"applied\":0,"
				    "\"coalesced\":0},\"last_error\":"));
	assert_non_null(strstr(buf, "\"last_error\":\"relay said \\\"no\\\"\\\\\\n\\ttab\\u0001\",\"quic\":null}"));
}

static void test_format_bufshort(void **state)
{
	struct status_counters c;
	struct status_info st = { .state = "connected", .relay = "r:1", .tun = "t", .c = &c, .last_error = "" };
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

/* ------------------------------------------------------------------ */
/* zgate-agent status: the reader and the printer                     */

/* What the agent writes (test_format_connected's object). */
static const char CONNECTED[] =
	"{\"state\":\"connected\",\"since\":1700000000,\"pid\":4242,\"updated\":1700000042,"
	"\"relay\":\"relay.example:443\","
	"\"tun\":\"zgate0\",\"mtu\":1350,\"addresses\":[\"10.100.0.7/32\",\"fd00:100::7/128\"],"
	"\"routes\":[\"0.0.0.0/1\",\"128.0.0.0/1\",\"2001:db8::/32\"],"
	"\"relay_route\":\"192.0.2.1/32\","
	"\"refused\":[{\"address\":\"8.8.8.8/32\",\"reason\":\"not_tunneled\"},"
	"{\"route\":\"127.0.0.0/8\",\"reason\":\"loopback\"}],\"refused_unlisted\":5,"
	"\"connects\":2,\"tx_packets\":10,\"tx_bytes\":1000,"
	"\"rx_packets\":9,\"rx_bytes\":3145728,\"drops\":{\"outage\":3,\"too_big\":1,"
	"\"congested\":2,\"tun_write\":0,\"not_ours\":4,\"malformed\":6},\"icmp_too_big_sent\":1,"
	"\"cert_reloads\":3,\"cert_reload_errors\":1,\"last_error\":\"\","
	"\"quic\":{\"srtt_us\":412,\"min_rtt_us\":180,\"cwnd\":123456,"
	"\"bytes_in_flight\":7000,\"packets_sent\":99,\"packets_lost\":1,"
	"\"queued_bytes\":2800,\"next_timer_us\":-1,\"tun_paused\":true}}\n";

#define NOW 1700003702 /* 1 h 1 min 42 s after "since" */

static long alive_calls, alive_pid;
static int fake_alive(long pid)
{
	alive_calls++;
	alive_pid = pid;
	return 1;
}
static int fake_dead(long pid)
{
	alive_calls++;
	alive_pid = pid;
	return 0;
}

static void put_file(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* status_show() on text; *pout gets what it printed (caller frees). */
static int show(const char *text, size_t n, int json, status_alive_fn alive, char **pout,
		char *err, size_t errlen)
{
	char path[128];
	size_t outlen = 0;
	FILE *out;
	int r;

	(void)snprintf(path, sizeof(path), "%s/status.json", dir);
	put_file(path, text, n);
	out = open_memstream(pout, &outlen);
	assert_non_null(out);
	err[0] = '\0';
	r = status_show(path, json, NOW, alive, out, err, errlen);
	fclose(out);
	return r;
}

static void test_show_connected_like_wg_show(void **state)
{
	char *out = NULL, err[512];

	(void)state;
	alive_calls = 0;
	assert_int_equal(show(CONNECTED, strlen(CONNECTED), 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_int_equal(alive_calls, 1);
	assert_int_equal(alive_pid, 4242);
	assert_string_equal(out,
			    "agent: zgate0\n"
			    "  state: connected (for 1 hour, 1 minute, 42 seconds)\n"
			    "  pid: 4242\n"
			    "  relay: relay.example:443\n"
			    "  addresses: 10.100.0.7/32, fd00:100::7/128\n"
			    "  routes: 0.0.0.0/1, 128.0.0.0/1, 2001:db8::/32\n"
			    "  relay route: 192.0.2.1/32\n"
			    "  mtu: 1350\n"
			    "  rtt: 0.41 ms (min 0.18 ms), 1 of 99 QUIC packets lost\n"
			    "  transfer: 3.00 MiB received, 1000 B sent (9 / 10 packets)\n"
			    "  connects: 2\n"
			    "  certificate reloads: 3, 1 failed\n"
			    "  drops: 3 no tunnel, 1 too big, 2 congested, 4 not our source, 6 malformed\n"
			    "  refused: address 8.8.8.8/32 (not_tunneled), route 127.0.0.0/8 (loopback), "
			    "and 5 more routes\n"
			    "  updated: 1 hour, 1 minute ago\n");
	free(out);
}

static void test_show_json_is_the_file(void **state)
{
	char *out = NULL, err[512];

	(void)state;
	assert_int_equal(show(CONNECTED, strlen(CONNECTED), 1, fake_alive, &out, err, sizeof(err)), 0);
	assert_string_equal(out, CONNECTED);
	free(out);
}

/* Reconnecting, no tunnel: no RTT line, no drops, the last error escaped
 * for the terminal, a DNS list when the file has one. */
static void test_show_reconnecting_dns_and_escapes(void **state)
{
	static const char text[] =
		"{ \"state\" : \"reconnecting\", \"since\": 1700003702, \"pid\": 7,\n"
		"  \"relay\": \"r\\u00e9lay:443\", \"tun\": \"zgate0\", \"mtu\": 0,\n"
		"  \"addresses\": [], \"routes\": [], \"relay_route\": null, \"dns\": [\"10.0.0.53\", \"fd00::53\"],\n"
		"  \"refused\": [], \"refused_unlisted\": 0, \"connects\": 1,\n"
		"  \"tx_packets\": 0, \"tx_bytes\": 0, \"rx_packets\": 0, \"rx_bytes\": 0,\n"
		"  \"drops\": {\"outage\": 0}, \"last_error\": \"relay said \\\"no\\\"\\u001b[2J\\nfake line \\ud83d\\ude00\",\n"
		"  \"quic\": null, \"future_field\": {\"a\": [1, 2.5e3, -0, true, false, null]}}";
	char *out = NULL, err[512];

	(void)state;
	assert_int_equal(show(text, strlen(text), 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_string_equal(out,
			    "agent: zgate0\n"
			    "  state: reconnecting (for 0 seconds)\n"
			    "  pid: 7\n"
			    "  relay: r\xc3\xa9lay:443\n"
			    "  addresses: none\n"
			    "  routes: none\n"
			    "  dns: 10.0.0.53, fd00::53\n"
			    "  transfer: 0 B received, 0 B sent (0 / 0 packets)\n"
			    "  connects: 1\n"
			    "  drops: none\n"
			    "  last error: relay said \"no\"\\x1b[2J\\nfake line \xf0\x9f\x98\x80\n");
	free(out);
}

/* Certificate reloads: the file always has both counters; the summary
 * shows a line once there was a reload, failed ones included, and none
 * before (or for a file from an agent without the keys). */
static void test_format_and_show_cert_reloads(void **state)
{
	struct status_counters c;
	struct status_info st = { .state = "connected", .since = NOW, .pid = 9, .relay = "r:1", .tun = "zgate0", .c = &c, .last_error = "" };
	char buf[2048], *out = NULL, err[512];
	size_t n = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_null(strstr(out, "certificate"));
	free(out);
	c.cert_reload_errors = 2;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, "\"cert_reloads\":0,\"cert_reload_errors\":2,"));
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "  connects: 0\n"
				    "  certificate reloads: 0, 2 failed\n"
				    "  drops: none\n"));
	free(out);
	c.cert_reloads = 12345678901ull;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "  certificate reloads: 12345678901, 2 failed\n"));
	assert_null(strstr(out, "warning"));
	free(out);
}

/* Route updates (routepace.h): the file always has the counters; the
 * summary shows a line once a change waited for its turn or an
 * advertisement was refused, and none before (or for a file from an
 * agent without the key); a key of the wrong type is warned about. */
static void test_format_and_show_route_updates(void **state)
{
	struct status_counters c;
	struct status_info st = { .state = "connected", .since = NOW, .pid = 9, .relay = "r:1", .tun = "zgate0", .c = &c, .last_error = "" };
	char buf[2048], *out = NULL, err[512];
	size_t n = 0;
	static const char wrong[] = "{\"state\":\"connected\",\"pid\":9,\"route_updates\":7}";

	(void)state;
	memset(&c, 0, sizeof(c));
	c.route_ads = 3;
	c.route_changes = 4;
	c.route_sets_applied = 4;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, ",\"route_updates\":{\"advertisements\":3,\"refused\":0,"
				    "\"changes\":4,\"applied\":4,\"coalesced\":0},"));
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_null(strstr(out, "route updates"));
	free(out);
	c.route_ads = 1000;
	c.route_ads_refused = 2;
	c.route_changes = 1001;
	c.route_sets_applied = 41;
	c.route_changes_coalesced = 958;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, "\"route_updates\":{\"advertisements\":1000,\"refused\":2,"
				    "\"changes\":1001,\"applied\":41,\"coalesced\":958}"));
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "  route updates: 41 applied of 1001 changes (958 coalesced), 2 "
				    "of 1000 advertisements refused\n"));
	assert_null(strstr(out, "warning"));
	free(out);
	assert_int_equal(show(wrong, strlen(wrong), 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "route_updates"));
	free(out);
}

/* 19.5: the DNS the agent configured, in the file and in the summary. */
static void test_format_and_show_dns(void **state)
{
	static const char *const servers[] = { "10.100.0.1" };
	static const char *const domains[] = { "saas.example", "" };
	struct status_counters c;
	struct status_info st = { .state = "connected", .since = NOW, .pid = 9, .relay = "r:1", .tun = "zgate0", .c = &c, .last_error = "", .dns_via = "file /etc/resolv.conf", .dns = servers, .ndns = 1, .dns_domains = domains, .ndns_domains = 2 };
	char buf[2048], *out = NULL, err[512];
	size_t n = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, "\"last_error\":\"\",\"dns\":[\"10.100.0.1\"],"
				    "\"dns_domains\":[\"saas.example\",\".\"],"
				    "\"dns_via\":\"file /etc/resolv.conf\",\"quic\":null}"));
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "  routes: none\n"
				    "  dns: 10.100.0.1\n"
				    "  dns domains: saas.example, .\n"
				    "  dns via: file /etc/resolv.conf\n"));
	free(out);
	/* no DNS handling (dns_via NULL): no keys at all */
	st.dns_via = NULL;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_null(strstr(buf, "dns"));
}

static void test_format_and_show_connectors(void **state)
{
	struct status_counters c;
	struct connector_status k[2];
	struct status_info st = { .state = "connected", .since = NOW, .pid = 9, .relay = "r:1", .tun = "zgate0", .c = &c, .last_error = "" };
	char buf[4096], *out = NULL, err[512];
	size_t n = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(k, 0, sizeof(k));
	snprintf(k[0].id, sizeof(k[0].id), "hospital-a");
	k[0].state = CONNECTOR_UP;
	k[0].rtt_us = 4100;
	k[0].tx_bytes = 1200;
	k[0].rx_bytes = 3400;
	snprintf(k[0].cert_serial, sizeof(k[0].cert_serial), "5e2a01");
	snprintf(k[1].id, sizeof(k[1].id), "hospital-b");
	k[1].state = CONNECTOR_REFUSED;
	k[1].unreachable = 3;
	k[0].too_big = 5;
	k[0].icmp_too_big = 4;
	snprintf(k[1].last_error, sizeof(k[1].last_error), "certificate refused");
	st.connectors = k;
	st.nconnectors = 2;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, "\"connectors\":[{\"id\":\"hospital-a\",\"state\":\"up\","
				    "\"rtt_us\":4100,\"tx_packets\":0,\"tx_bytes\":1200,"));
	/* the connector's certificate on the inner session (rotation shows) */
	assert_non_null(strstr(buf, "\"last_error\":\"\",\"cert_serial\":\"5e2a01\"}"));
	assert_non_null(strstr(buf, "\"cert_serial\":\"\"}"));
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(buf, "\"unreachable\":0,\"too_big\":5,\"icmp_too_big_sent\":4,"));
	assert_non_null(strstr(out, "  connector hospital-a: up, rtt 4.10 ms, certificate serial "
				    "5e2a01, sent 1200 bytes, "
				    "received 3400 bytes, 5 too big\n"
				    "  connector hospital-b: refused, sent 0 bytes, received 0 bytes, "
				    "3 unreachable (certificate refused)\n"));
	free(out);
	/* none listed: no key */
	st.nconnectors = 0;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_null(strstr(buf, "connectors"));
}

static void test_show_not_running(void **state)
{
	static const char stopped[] = "{\"state\":\"stopped\",\"since\":1,\"pid\":4242,\"updated\":1700003690}\n";
	char *out = NULL, err[512], path[128];
	FILE *f;

	(void)state;
	/* stopped: whatever the pid */
	assert_int_equal(show(stopped, strlen(stopped), 0, fake_alive, &out, err, sizeof(err)),
			 ZG_ERR_NOTFOUND);
	assert_non_null(strstr(err, "zgate-agent is not running (it stopped 12 seconds ago; status file /tmp/zg-status-"));
	assert_string_equal(out, "");
	free(out);
	/* the writer died without saying so */
	assert_int_equal(show(CONNECTED, strlen(CONNECTED), 1, fake_dead, &out, err, sizeof(err)),
			 ZG_ERR_NOTFOUND);
	assert_non_null(strstr(err, "zgate-agent is not running (process 4242 is gone; status file "));
	assert_non_null(strstr(err, "last written 3660 seconds ago, state connected)"));
	assert_string_equal(out, "");
	free(out);
	/* no file at all */
	(void)snprintf(path, sizeof(path), "%s/none.json", dir);
	f = open_memstream(&out, &(size_t){ 0 });
	assert_int_equal(status_show(path, 0, NOW, fake_alive, f, err, sizeof(err)), ZG_ERR_NOTFOUND);
	fclose(f);
	assert_non_null(strstr(err, "zgate-agent is not running (no status file /tmp/zg-status-"));
	free(out);
}

/* Bad input: a clear error naming the file and the byte, never a crash,
 * nothing printed. */
static void test_show_malformed(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "", "byte 0: unexpected end of input" },
		{ "   \n", "byte 4: unexpected end of input" },
		{ "{", "byte 1: expected a member name" },
		{ "{\"state\":}", "byte 9: expected a value" },
		{ "{\"state\" \"x\"}", "byte 9: expected ':'" },
		{ "{\"state\":\"x\",}", "byte 13: expected a member name" },
		{ "{\"state\":\"x\" \"y\":1}", "byte 13: expected ',' or '}'" },
		{ "[1,2", "byte 4: expected ',' or ']'" },
		{ "{\"state\":\"x\"} {}", "byte 14: text after the JSON value" },
		{ "{\"state\":\"x\\q\"}", "byte 12: bad escape in a string" },
		{ "{\"state\":\"x\\u12g4\"}", "bad \\u escape" },
		{ "{\"state\":\"x\\u12", "bad \\u escape" },
		{ "{\"state\":\"x\ty\"}", "byte 11: control character in a string" },
		{ "{\"state\":\"x", "unterminated string" },
		{ "{\"state\":01}", "expected ',' or '}'" },
		{ "{\"state\":-}", "bad number" },
		{ "{\"state\":1.}", "bad number" },
		{ "{\"state\":tru}", "expected a value" },
		{ "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]", "nested too deeply" },
		{ "[1,2]", "no \"state\" string in a JSON object" },
		{ "{\"state\":5}", "no \"state\" string in a JSON object" },
		{ "{\"pid\":1}", "no \"state\" string in a JSON object" },
		{ "{\"state\":\"connected\",\"pid\":-1}", "\"pid\" is not a process id" },
		{ "{\"state\":\"connected\",\"pid\":1.5}", "\"pid\" is not a process id" },
		{ "{\"state\":\"connected\",\"pid\":99999999999999999999999}", "\"pid\" is not a process id" },
		{ "{\"state\":\"connected\",\"pid\":\"42\"}", "\"pid\" is not a process id" },
	};
	char *out = NULL, err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = show(cases[i].text, strlen(cases[i].text), 0, fake_alive, &out, err, sizeof(err));

		if (r != ZG_ERR_MALFORMED || strstr(err, cases[i].want) == NULL ||
		    strstr(err, "/status.json: ") == NULL || out[0] != '\0')
			fail_msg("case %zu %s: r=%d err=%s out=%s", i, cases[i].text, r, err, out);
		free(out);
	}
}

/* Every cut of a real file and every byte changed: an error or a summary,
 * never a crash (under ASan this also catches any read past the end). */
static void test_show_truncations_and_flips(void **state)
{
	char text[sizeof(CONNECTED)], *out = NULL, err[512];
	size_t n = strlen(CONNECTED);

	(void)state;
	for (size_t cut = 0; cut < n - 1; cut++) {
		assert_int_equal(show(CONNECTED, cut, 0, fake_alive, &out, err, sizeof(err)),
				 ZG_ERR_MALFORMED);
		free(out);
	}
	for (size_t i = 0; i < n; i++) {
		static const char repl[] = { '"', '\\', '{', '[', ',', ':', '0', '\0', 'x', '}' };

		for (size_t k = 0; k < sizeof(repl); k++) {
			int r;

			memcpy(text, CONNECTED, n);
			text[i] = repl[k];
			r = show(text, n, (int)(k & 1), fake_alive, &out, err, sizeof(err));
			assert_true(r == 0 || r == ZG_ERR_MALFORMED);
			assert_true(r != 0 || err[0] == '\0');
			free(out);
		}
	}
}

/* A field of an unexpected type is shown as missing and named once. */
static void test_show_wrong_types_warn(void **state)
{
	static const char text[] = "{\"state\":\"connected\",\"tun\":7,\"routes\":5,\"drops\":[1],"
				   "\"rx_bytes\":-4,\"refused\":{}}";
	char *out = NULL, err[512];

	(void)state;
	assert_int_equal(show(text, strlen(text), 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "agent: \n"));
	assert_non_null(strstr(out, "(warning: "));
	assert_non_null(strstr(out, "/status.json: field \"tun\" has an unexpected type)\n"));
	free(out);
}

/* Several relays: the file names the one in use and the list, and the
 * summary says which of how many and how often the agent moved. */
static void test_several_relays_written_and_shown(void **state)
{
	static struct relaylist l;
	struct status_counters c = { .connects = 3 };
	struct status_info st = { .state = "connected", .since = 1700000000, .pid = 4242, .updated = 1700000042, .tun = "zgate0", .c = &c, .last_error = "" };
	char buf[4096], err[512], *out = NULL;
	size_t n = 0;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, "a.example:443,relay-b.example@[2001:db8::2]:443",
				       "test", err, sizeof(err)),
			 0);
	st.relays = &l;
	st.relay_index = 1;
	st.relay = l.e[1].text;
	st.relay_switches = 3;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_non_null(strstr(buf, "\"relay\":\"relay-b.example@[2001:db8::2]:443\","
				    "\"relays\":[\"a.example:443\",\"relay-b.example@[2001:db8::2]:443\"],"
				    "\"relay_index\":1,\"relay_switches\":3,"));
	alive_calls = 0;
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_non_null(strstr(out, "  relay: relay-b.example@[2001:db8::2]:443\n"
				    "  relays: a.example:443, relay-b.example@[2001:db8::2]:443 "
				    "(on 2 of 2, 3 switches)\n"
				    "  addresses: none\n"));
	assert_null(strstr(out, "warning"));
	free(out);

	/* one relay: no list line; a list of the wrong type is warned about */
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, "a.example:443", "test", err, sizeof(err)), 0);
	st.relay_index = 0;
	st.relay = l.e[0].text;
	assert_int_equal(status_format(&st, buf, sizeof(buf), &n), 0);
	assert_int_equal(show(buf, n, 0, fake_alive, &out, err, sizeof(err)), 0);
	assert_null(strstr(out, "relays:"));
	free(out);
	out = NULL;
	{
		static const char bad[] = "{\"state\":\"connected\",\"relays\":\"a:1\"}";

		assert_int_equal(show(bad, strlen(bad), 0, fake_alive, &out, err, sizeof(err)), 0);
		assert_non_null(strstr(out, "field \"relays\" has an unexpected type"));
		free(out);
	}
}

static void test_show_too_large(void **state)
{
	size_t n = STATUS_FILE_MAX + 2;
	char *big = malloc(n), *out = NULL, err[512];

	(void)state;
	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '[';
	big[n - 1] = ']';
	assert_int_equal(show(big, n, 0, fake_alive, &out, err, sizeof(err)), ZG_ERR_TOO_LARGE);
	assert_non_null(strstr(err, "larger than 4194304 bytes"));
	free(out);
	free(big);
}

/* The real liveness check: a process named zgate-agent is alive until it
 * is reaped; another name (a reused pid) is not the agent. */
static void test_pid_alive(void **state)
{
	pid_t child;
	int ws;

	(void)state;
	assert_int_equal(status_pid_alive(0), 0);
	assert_int_equal(status_pid_alive(-1), 0);
	assert_int_equal(status_pid_alive((long)getpid()), 0); /* named test_agent_status */
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		(void)prctl(PR_SET_NAME, "zgate-agent", 0, 0, 0);
		for (;;)
			pause();
	}
	for (int i = 0; i < 200 && !status_pid_alive((long)child); i++)
		usleep(10000);
	assert_int_equal(status_pid_alive((long)child), 1);
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &ws, 0), child);
	assert_int_equal(status_pid_alive((long)child), 0);
}

static void test_status_command_usage(void **state)
{
	char *argv_help[] = { "status", "--help" }, *argv_bad[] = { "status", "--jsn" };
	char *argv_noval[] = { "status", "--status-file" }, path[128];
	char *argv_missing[] = { "status", "--status-file", path };
	char *out = NULL, *errs = NULL;
	size_t on = 0, en = 0;
	FILE *o = open_memstream(&out, &on), *e = open_memstream(&errs, &en);

	(void)state;
	(void)snprintf(path, sizeof(path), "%s/none.json", dir);
	assert_int_equal(status_command(2, argv_help, o, e), 0);
	assert_int_equal(status_command(2, argv_bad, o, e), 2);
	assert_int_equal(status_command(2, argv_noval, o, e), 2);
	assert_int_equal(status_command(3, argv_missing, o, e), 1);
	fclose(o);
	fclose(e);
	assert_non_null(strstr(out, "usage: zgate-agent status [--json] [--status-file FILE]"));
	assert_non_null(strstr(errs, "--jsn: unknown option"));
	assert_non_null(strstr(errs, "--status-file: needs a value"));
	assert_non_null(strstr(errs, "zgate-agent is not running (no status file "));
	free(out);
	free(errs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_connected),
		cmocka_unit_test(test_format_empty_and_escaped),
		cmocka_unit_test(test_format_bufshort),
		cmocka_unit_test(test_format_and_show_connectors),
		cmocka_unit_test_setup_teardown(test_write_replaces_atomically, mkdir_setup,
						rmdir_teardown),
#define T(f) cmocka_unit_test_setup_teardown(f, mkdir_setup, rmdir_teardown)
		T(test_show_connected_like_wg_show),
		T(test_show_json_is_the_file),
		T(test_show_reconnecting_dns_and_escapes),
		T(test_format_and_show_dns),
		T(test_format_and_show_cert_reloads),
		T(test_format_and_show_route_updates),
		T(test_show_not_running),
		T(test_show_malformed),
		T(test_show_truncations_and_flips),
		T(test_show_wrong_types_warn),
		T(test_show_too_large),
		T(test_several_relays_written_and_shown),
		T(test_pid_alive),
		T(test_status_command_usage),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
