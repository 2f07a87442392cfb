/* Unit tests for src/agent/resolved (the agent's "resolved" DNS mode)
 * against a real, private dbus-daemon (Debian's dbus-daemon) and a small
 * fake org.freedesktop.resolve1 implemented here with sd-bus, in a thread:
 * it records the calls the agent makes, with their arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "agent/agentdns.h"
#include "agent/resolved.h"
#include "cipdns.h"
#include "varint.h"
#include "zg_err.h"

#define DBUS_DAEMON "/usr/bin/dbus-daemon"
#define BAD_IFINDEX 99

static char dir[64], sock[128];
static pid_t daemon_pid = -1;

/* ------------------------------------------------------------------ */
/* fake resolve1                                                      */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char calls[8192]; /* one line per call: "SetLinkDNS 7 2:10.100.0.1" */
static volatile int stop_service;
static sd_bus *svc_bus;
static pthread_t svc_thread;

static void record(const char *line)
{
	pthread_mutex_lock(&mu);
	if (strlen(calls) + strlen(line) + 2 < sizeof(calls)) {
		strcat(calls, line);
		strcat(calls, "\n");
	}
	pthread_mutex_unlock(&mu);
}

static int no_such_link(sd_bus_error *e)
{
	return sd_bus_error_set(e, "org.freedesktop.resolve1.NoSuchLink", "Link 99 not known");
}

static int m_set_dns(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	char line[512];
	int32_t ifindex, fam;
	const void *a;
	size_t n, off;
	int r;

	(void)ud;
	if ((r = sd_bus_message_read(m, "i", &ifindex)) < 0)
		return r;
	if (ifindex == BAD_IFINDEX)
		return no_such_link(e);
	off = (size_t)snprintf(line, sizeof(line), "SetLinkDNS %d", ifindex);
	if ((r = sd_bus_message_enter_container(m, 'a', "(iay)")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'r', "iay")) > 0) {
		char s[64];

		if ((r = sd_bus_message_read(m, "i", &fam)) < 0 ||
		    (r = sd_bus_message_read_array(m, 'y', &a, &n)) < 0)
			return r;
		if (inet_ntop(fam, a, s, sizeof(s)) == NULL || n != (fam == AF_INET ? 4u : 16u))
			strcpy(s, "bad");
		off += (size_t)snprintf(line + off, sizeof(line) - off, " %d:%s", fam, s);
		if ((r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	record(line);
	return sd_bus_reply_method_return(m, NULL);
}

static int m_set_domains(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	char line[1024];
	int32_t ifindex;
	const char *d;
	int routing, r;
	size_t off;

	(void)ud;
	if ((r = sd_bus_message_read(m, "i", &ifindex)) < 0)
		return r;
	if (ifindex == BAD_IFINDEX)
		return no_such_link(e);
	off = (size_t)snprintf(line, sizeof(line), "SetLinkDomains %d", ifindex);
	if ((r = sd_bus_message_enter_container(m, 'a', "(sb)")) < 0)
		return r;
	while ((r = sd_bus_message_read(m, "(sb)", &d, &routing)) > 0)
		off += (size_t)snprintf(line + off, sizeof(line) - off, " %s%s", routing ? "~" : "",
					d);
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	record(line);
	return sd_bus_reply_method_return(m, NULL);
}

static int m_default_route(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	char line[64];
	int32_t ifindex;
	int b, r;

	(void)ud;
	if ((r = sd_bus_message_read(m, "ib", &ifindex, &b)) < 0)
		return r;
	if (ifindex == BAD_IFINDEX)
		return no_such_link(e);
	(void)snprintf(line, sizeof(line), "SetLinkDefaultRoute %d %s", ifindex, b ? "yes" : "no");
	record(line);
	return sd_bus_reply_method_return(m, NULL);
}

static int m_revert(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	char line[64];
	int32_t ifindex;
	int r;

	(void)ud;
	if ((r = sd_bus_message_read(m, "i", &ifindex)) < 0)
		return r;
	if (ifindex == BAD_IFINDEX)
		return no_such_link(e);
	(void)snprintf(line, sizeof(line), "RevertLink %d", ifindex);
	record(line);
	return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("SetLinkDNS", "ia(iay)", "", m_set_dns, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("SetLinkDomains", "ia(sb)", "", m_set_domains, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("SetLinkDefaultRoute", "ib", "", m_default_route, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("RevertLink", "i", "", m_revert, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END
};

static void *service(void *arg)
{
	(void)arg;
	while (!stop_service) {
		int r = sd_bus_process(svc_bus, NULL);

		if (r < 0)
			break;
		if (r == 0)
			(void)sd_bus_wait(svc_bus, 50 * 1000);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the private bus                                                    */

static int setup(void **state)
{
	char conf[128], cmd[512];
	FILE *f;
	int i;

	(void)state;
	if (access(DBUS_DAEMON, X_OK) != 0) {
		fprintf(stderr, "test_agent_resolved: %s missing (apt package dbus-daemon)\n",
			DBUS_DAEMON);
		return -1;
	}
	(void)snprintf(dir, sizeof(dir), "/tmp/zg-resolved-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	(void)snprintf(sock, sizeof(sock), "%s/bus", dir);
	(void)snprintf(conf, sizeof(conf), "%s/bus.conf", dir);
	f = fopen(conf, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration "
		   "1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
		   "<busconfig><type>custom</type><listen>unix:path=%s</listen>"
		   "<auth>EXTERNAL</auth><policy context=\"default\"><allow user=\"*\"/>"
		   "<allow own=\"*\"/><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>"
		   "</policy></busconfig>\n",
		sock);
	fclose(f);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		execl(DBUS_DAEMON, DBUS_DAEMON, "--nofork", "--nopidfile", "--nosyslog",
		      (snprintf(cmd, sizeof(cmd), "--config-file=%s", conf), cmd), (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && access(sock, F_OK) != 0; i++)
		usleep(10 * 1000);
	if (access(sock, F_OK) != 0)
		return -1;
	(void)snprintf(cmd, sizeof(cmd), "unix:path=%s", sock);
	setenv("DBUS_SYSTEM_BUS_ADDRESS", cmd, 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		(void)waitpid(daemon_pid, NULL, 0);
	}
	(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Each test: the fake service owns the name, in its thread. */
static int svc_up(void **state)
{
	(void)state;
	calls[0] = '\0';
	stop_service = 0;
	if (sd_bus_open_system(&svc_bus) < 0 ||
	    sd_bus_add_object_vtable(svc_bus, NULL, "/org/freedesktop/resolve1",
				     "org.freedesktop.resolve1.Manager", vtable, NULL) < 0 ||
	    sd_bus_request_name(svc_bus, "org.freedesktop.resolve1", 0) < 0)
		return -1;
	return pthread_create(&svc_thread, NULL, service, NULL) == 0 ? 0 : -1;
}

static int svc_down(void **state)
{
	(void)state;
	stop_service = 1;
	pthread_join(svc_thread, NULL);
	sd_bus_flush_close_unref(svc_bus);
	svc_bus = NULL;
	return 0;
}

static int has_call(const char *line)
{
	char want[600];
	int r;

	(void)snprintf(want, sizeof(want), "%s\n", line);
	pthread_mutex_lock(&mu);
	r = strstr(calls, want) != NULL;
	pthread_mutex_unlock(&mu);
	if (!r)
		fprintf(stderr, "calls so far:\n%s(wanted: %s)\n", calls, line);
	return r;
}

/* ------------------------------------------------------------------ */
/* tests                                                              */

static void test_present_only_with_resolve1(void **state)
{
	struct resolved *r;
	char err[256];

	(void)state;
	assert_int_equal(resolved_open(&r, err, sizeof(err)), 0);
	assert_true(resolved_present(r));
	resolved_close(r);
}

static void test_apply_split_dns_on_link(void **state)
{
	struct resolved *r;
	struct resolved_server s[2] = { { 4, { 10, 100, 0, 1 } },
					{ 6, { 0xfd, 0, [15] = 1 } } };
	const char *internal[] = { "saas.example", "lab.example" };
	const char *search[] = { "corp.example" };
	char err[256];

	(void)state;
	assert_int_equal(resolved_open(&r, err, sizeof(err)), 0);
	assert_int_equal(resolved_apply(r, 7, s, 2, internal, 2, search, 1, err, sizeof(err)), 0);
	assert_true(has_call("SetLinkDNS 7 2:10.100.0.1 10:fd00::1"));
	assert_true(has_call("SetLinkDomains 7 ~saas.example ~lab.example corp.example"));
	assert_true(has_call("SetLinkDefaultRoute 7 no"));
	assert_int_equal(resolved_revert(r, 7, err, sizeof(err)), 0);
	assert_true(has_call("RevertLink 7"));
	resolved_close(r);
}

static void test_every_name_takes_default_route(void **state)
{
	struct resolved *r;
	struct resolved_server s = { 4, { 10, 100, 0, 1 } };
	const char *internal[] = { "" };
	char err[256];

	(void)state;
	assert_int_equal(resolved_open(&r, err, sizeof(err)), 0);
	assert_int_equal(resolved_apply(r, 8, &s, 1, internal, 1, NULL, 0, err, sizeof(err)), 0);
	assert_true(has_call("SetLinkDomains 8 ~."));
	assert_true(has_call("SetLinkDefaultRoute 8 yes"));
	resolved_close(r);
}

static void test_resolved_error_reported(void **state)
{
	struct resolved *r;
	struct resolved_server s = { 4, { 10, 100, 0, 1 } };
	const char *internal[] = { "saas.example" };
	char err[256];

	(void)state;
	assert_int_equal(resolved_open(&r, err, sizeof(err)), 0);
	assert_int_equal(resolved_apply(r, BAD_IFINDEX, &s, 1, internal, 1, NULL, 0, err,
					sizeof(err)),
			 ZG_ERR_IO);
	assert_string_equal(err, "SetLinkDNS: Link 99 not known");
	assert_int_equal(resolved_revert(r, BAD_IFINDEX, err, sizeof(err)), ZG_ERR_IO);
	resolved_close(r);
}

/* agentdns in auto mode finds resolve1, applies a DNS_ASSIGN to the link
 * and reverts it when freed. */
static void test_agentdns_auto_uses_resolved(void **state)
{
	static struct cipdns_assign a;
	struct agentdns *d = NULL;
	uint8_t buf[1024], *p = buf;
	const uint8_t *q;
	uint64_t t, l;
	char err[256];

	(void)state;
	memset(&a, 0, sizeof(a));
	a.n = 1;
	a.cfg[0].nns = 1;
	a.cfg[0].ns[0].priority = 1;
	a.cfg[0].ns[0].n4 = 1;
	memcpy(a.cfg[0].ns[0].v4[0], (uint8_t[]){ 10, 100, 0, 1 }, 4);
	a.cfg[0].ninternal = 1;
	strcpy(a.cfg[0].internal[0], "saas.example");
	assert_int_equal(cipdns_assign_encode(&p, buf + sizeof(buf), &a), 0);
	q = buf;
	assert_int_equal(varint_decode(&q, p, &t), 0);
	assert_int_equal(varint_decode(&q, p, &l), 0);

	assert_int_equal(agentdns_new(AGENTDNS_AUTO, "/nonexistent/resolv.conf", "", "zgate0", 12, &d,
				      err, sizeof(err)),
			 0);
	assert_int_equal(agentdns_state(d)->mode, AGENTDNS_RESOLVED);
	assert_string_equal(agentdns_state(d)->via, "resolved on zgate0 (ifindex 12)");
	assert_int_equal(agentdns_assign(d, q, (size_t)l, err, sizeof(err)), 0);
	assert_true(agentdns_state(d)->active);
	assert_true(has_call("SetLinkDNS 12 2:10.100.0.1"));
	assert_true(has_call("SetLinkDomains 12 ~saas.example"));
	assert_true(has_call("SetLinkDefaultRoute 12 no"));
	agentdns_free(d);
	assert_true(has_call("RevertLink 12"));
}

/* Without resolve1 on the bus: not present; resolved mode refuses. */
static void test_absent_without_service(void **state)
{
	struct resolved *r;
	struct agentdns *d = NULL;
	char err[256];

	(void)state;
	assert_int_equal(resolved_open(&r, err, sizeof(err)), 0);
	assert_false(resolved_present(r));
	resolved_close(r);
	assert_int_equal(agentdns_new(AGENTDNS_RESOLVED, "", "", "zgate0", 12, &d, err, sizeof(err)),
			 ZG_ERR_IO);
	assert_non_null(strstr(err, "org.freedesktop.resolve1 is not on the system bus"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_present_only_with_resolve1, svc_up, svc_down),
		cmocka_unit_test_setup_teardown(test_apply_split_dns_on_link, svc_up, svc_down),
		cmocka_unit_test_setup_teardown(test_every_name_takes_default_route, svc_up,
						svc_down),
		cmocka_unit_test_setup_teardown(test_resolved_error_reported, svc_up, svc_down),
		cmocka_unit_test_setup_teardown(test_agentdns_auto_uses_resolved, svc_up, svc_down),
		cmocka_unit_test(test_absent_without_service),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
