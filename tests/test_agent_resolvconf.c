/* Unit tests for src/agent/resolvconf (the agent's "file" DNS mode) and
 * src/agent/agentdns in that mode: the resolver file is written in place,
 * restored byte for byte, and restored after a crash from the backup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agentdns.h"
#include "agent/resolvconf.h"
#include "cipdns.h"
#include "varint.h"
#include "zg_err.h"

static char dir[64], path[128], backup[160];

/* An original with what a byte-exact restore must keep: comments, no
 * final newline, a tab, a CR, a NUL. */
static const char ORIG[] = "# managed by someone\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
			   "search corp.example\noptions edns0 trust-ad\r\n\tsortlist x\0y";
#define ORIG_LEN (sizeof(ORIG) - 1)

static const char *const SERVERS[] = { "10.100.0.1" };
static const char *const SEARCH[] = { "saas.example" };

static int setup(void **state)
{
	(void)state;
	(void)snprintf(dir, sizeof(dir), "/tmp/zg-resolvconf-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	(void)snprintf(path, sizeof(path), "%s/resolv.conf", dir);
	(void)snprintf(backup, sizeof(backup), "%s%s", path, RESOLVCONF_BACKUP_SUFFIX);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void put_file(const char *p, const char *data, size_t n)
{
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* Reads a file; returns its length, -1 when it does not exist. */
static long get_file(const char *p, char *buf, size_t cap)
{
	FILE *f = fopen(p, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, cap, f);
	fclose(f);
	return (long)n;
}

static void assert_original(void)
{
	char buf[4096];

	assert_int_equal(get_file(path, buf, sizeof(buf)), ORIG_LEN);
	assert_memory_equal(buf, ORIG, ORIG_LEN);
	assert_int_equal(access(backup, F_OK), -1); /* backup gone */
}

static void test_render_relay_first_original_kept(void **state)
{
	static const char orig[] = "nameserver 192.0.2.1\nsearch corp.example\noptions edns0\n";
	struct resolvconf_want w = { SERVERS, 1, SEARCH, 1, 0 };
	char out[1024];
	size_t n;

	(void)state;
	assert_int_equal(resolvconf_render(orig, sizeof(orig) - 1, &w, out, sizeof(out), &n), 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "nameserver 10.100.0.1\nnameserver 192.0.2.1\n"
				    "search saas.example corp.example\noptions edns0\n"));
	assert_true(strncmp(out, "# Written by zgate-agent", 24) == 0);
	/* every name to the relay: no fallback server */
	w.every_name = 1;
	w.nsearch = 0;
	assert_int_equal(resolvconf_render(orig, sizeof(orig) - 1, &w, out, sizeof(out), &n), 0);
	out[n] = '\0';
	assert_null(strstr(out, "192.0.2.1"));
	assert_non_null(strstr(out, "nameserver 10.100.0.1\nsearch corp.example\noptions edns0\n"));
	/* too small a buffer */
	assert_int_equal(resolvconf_render(orig, sizeof(orig) - 1, &w, out, 20, &n),
			 ZG_ERR_BUFSHORT);
}

/* glibc reads 3 nameservers: a relay sending 3 or more would push every
 * original server out of reach (no fallback for the names it does not
 * serve); 2 are kept and the rest left out, said in a comment. */
static void test_render_relay_servers_leave_room(void **state)
{
	static const char orig[] = "nameserver 192.0.2.1\nnameserver 192.0.2.2\n";
	static const char *const three[] = { "10.100.0.1", "10.100.0.2", "fd00:100::1" };
	struct resolvconf_want w = { three, 3, NULL, 0, 0 };
	char out[1024];
	size_t n;

	(void)state;
	assert_int_equal(resolvconf_servers_kept(orig, sizeof(orig) - 1, &w), 2);
	assert_int_equal(resolvconf_render(orig, sizeof(orig) - 1, &w, out, sizeof(out), &n), 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "# 1 more of the relay's servers left out"));
	assert_non_null(strstr(out, "nameserver 10.100.0.1\nnameserver 10.100.0.2\n"
				    "nameserver 192.0.2.1\nnameserver 192.0.2.2\n"));
	assert_null(strstr(out, "fd00:100::1"));
	/* two fit with the fallback: all kept, no comment */
	w.nservers = 2;
	assert_int_equal(resolvconf_servers_kept(orig, sizeof(orig) - 1, &w), 2);
	assert_int_equal(resolvconf_render(orig, sizeof(orig) - 1, &w, out, sizeof(out), &n), 0);
	out[n] = '\0';
	assert_null(strstr(out, "left out"));
	/* every name to the relay: no fallback, all three */
	w.nservers = 3;
	w.every_name = 1;
	assert_int_equal(resolvconf_servers_kept(orig, sizeof(orig) - 1, &w), 3);
	/* no original server to keep room for */
	w.every_name = 0;
	assert_int_equal(resolvconf_servers_kept("search x.example\n", 17, &w), 3);
	assert_int_equal(resolvconf_servers_kept(NULL, 0, &w), 3);
	assert_int_equal(resolvconf_render(NULL, 0, &w, out, sizeof(out), &n), 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "nameserver fd00:100::1\n"));
}

static void test_apply_restore_byte_exact(void **state)
{
	struct resolvconf rc;
	struct resolvconf_want w = { SERVERS, 1, SEARCH, 1, 0 };
	char buf[4096];
	long n;
	struct stat st0, st1;

	(void)state;
	put_file(path, ORIG, ORIG_LEN);
	assert_int_equal(stat(path, &st0), 0);
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	n = get_file(path, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\nnameserver 10.100.0.1\nnameserver 192.0.2.1\n"));
	assert_int_equal(access(backup, F_OK), 0);
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(st0.st_ino, st1.st_ino); /* in place, not replaced */
	/* a second assignment replaces ours, the original stays the original */
	{
		static const char *const two[] = { "10.100.0.1", "fd00::1" };
		struct resolvconf_want w2 = { two, 2, NULL, 0, 1 };

		assert_int_equal(resolvconf_apply(&rc, &w2), 0);
		n = get_file(path, buf, sizeof(buf) - 1);
		buf[n] = '\0';
		assert_non_null(strstr(buf, "nameserver fd00::1\n"));
		assert_null(strstr(buf, "192.0.2.1"));
	}
	assert_int_equal(resolvconf_restore(&rc), 0);
	assert_original();
	assert_int_equal(resolvconf_restore(&rc), 0); /* twice is harmless */
	assert_original();
	resolvconf_free(&rc);
}

static void test_absent_file_created_then_removed(void **state)
{
	struct resolvconf rc;
	struct resolvconf_want w = { SERVERS, 1, NULL, 0, 0 };
	char buf[512];

	(void)state;
	(void)unlink(path);
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	assert_true(get_file(path, buf, sizeof(buf)) > 0);
	assert_int_equal(resolvconf_restore(&rc), 0);
	assert_int_equal(get_file(path, buf, sizeof(buf)), -1);
	assert_int_equal(access(backup, F_OK), -1);
	resolvconf_free(&rc);
}

static void test_symlink_stays_a_symlink(void **state)
{
	struct resolvconf rc;
	struct resolvconf_want w = { SERVERS, 1, NULL, 0, 0 };
	char target[160], link[160], buf[4096], lbuf[160];
	ssize_t l;

	(void)state;
	(void)snprintf(target, sizeof(target), "%s/stub-resolv.conf", dir);
	(void)snprintf(link, sizeof(link), "%s/resolv.conf", dir);
	(void)unlink(link);
	put_file(target, ORIG, ORIG_LEN);
	assert_int_equal(symlink("stub-resolv.conf", link), 0);
	assert_int_equal(resolvconf_init(&rc, link, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	l = readlink(link, lbuf, sizeof(lbuf) - 1);
	assert_int_equal(l, 16);
	assert_true(get_file(target, buf, sizeof(buf)) != (long)ORIG_LEN ||
		    memcmp(buf, ORIG, ORIG_LEN) != 0);
	assert_int_equal(resolvconf_restore(&rc), 0);
	assert_int_equal(readlink(link, lbuf, sizeof(lbuf) - 1), 16);
	assert_int_equal(get_file(target, buf, sizeof(buf)), ORIG_LEN);
	assert_memory_equal(buf, ORIG, ORIG_LEN);
	resolvconf_free(&rc);
	(void)unlink(link);
	(void)unlink(target);
}

/* A crash: the agent wrote the file and died. The next start restores. */
static void test_crash_backup_restored_at_next_start(void **state)
{
	struct resolvconf rc, rc2;
	struct resolvconf_want w = { SERVERS, 1, SEARCH, 1, 0 };
	int restored = -1;

	(void)state;
	put_file(path, ORIG, ORIG_LEN);
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	resolvconf_free(&rc); /* "killed": no restore */
	assert_int_equal(access(backup, F_OK), 0);

	assert_int_equal(resolvconf_init(&rc2, path, NULL), 0);
	assert_int_equal(resolvconf_recover(&rc2, &restored), 0);
	assert_int_equal(restored, 1);
	assert_original();
	/* nothing left to do the time after */
	assert_int_equal(resolvconf_recover(&rc2, &restored), 0);
	assert_int_equal(restored, 0);
	resolvconf_free(&rc2);
}

/* After the crash something else rewrote the file: it is not ours to
 * replace; the stale backup goes. Same on a clean exit. */
static void test_foreign_change_left_alone(void **state)
{
	static const char nm[] = "# Generated by NetworkManager\nnameserver 198.51.100.7\n";
	struct resolvconf rc, rc2;
	struct resolvconf_want w = { SERVERS, 1, NULL, 0, 0 };
	char buf[512];
	int restored = -1;

	(void)state;
	put_file(path, ORIG, ORIG_LEN);
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	resolvconf_free(&rc);
	put_file(path, nm, sizeof(nm) - 1);
	assert_int_equal(resolvconf_init(&rc2, path, NULL), 0);
	assert_int_equal(resolvconf_recover(&rc2, &restored), 0);
	assert_int_equal(restored, 0);
	assert_int_equal(get_file(path, buf, sizeof(buf)), sizeof(nm) - 1);
	assert_memory_equal(buf, nm, sizeof(nm) - 1);
	assert_int_equal(access(backup, F_OK), -1);

	/* clean exit after a foreign rewrite */
	assert_int_equal(resolvconf_apply(&rc2, &w), 0);
	put_file(path, ORIG, 10);
	assert_int_equal(resolvconf_restore(&rc2), 0);
	assert_int_equal(get_file(path, buf, sizeof(buf)), 10);
	assert_int_equal(access(backup, F_OK), -1);
	resolvconf_free(&rc2);
}

/* --dns-backup: the backup elsewhere (agents sharing one /etc). */
static void test_backup_elsewhere(void **state)
{
	struct resolvconf rc, rc2;
	struct resolvconf_want w = { SERVERS, 1, NULL, 0, 0 };
	char other[160];
	int restored = -1;

	(void)state;
	(void)snprintf(other, sizeof(other), "%s/agent-1.backup", dir);
	put_file(path, ORIG, ORIG_LEN);
	assert_int_equal(resolvconf_init(&rc, path, other), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	assert_int_equal(access(other, F_OK), 0);
	assert_int_equal(access(backup, F_OK), -1); /* not beside the file */
	resolvconf_free(&rc);
	assert_int_equal(resolvconf_init(&rc2, path, other), 0);
	assert_int_equal(resolvconf_recover(&rc2, &restored), 0);
	assert_int_equal(restored, 1);
	assert_original();
	assert_int_equal(access(other, F_OK), -1);
	resolvconf_free(&rc2);
}

static void test_bad_backup_untouched(void **state)
{
	static const char junk[] = "zgate-resolvconf 1 1 99999999 0\nshort";
	struct resolvconf rc;
	char buf[512];
	int restored = -1;

	(void)state;
	put_file(path, "x\n", 2);
	put_file(backup, junk, sizeof(junk) - 1);
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_recover(&rc, &restored), ZG_ERR_MALFORMED);
	assert_int_equal(restored, 0);
	assert_int_equal(get_file(path, buf, sizeof(buf)), 2);
	assert_int_equal(access(backup, F_OK), 0);
	put_file(backup, "not ours at all\n", 16);
	assert_int_equal(resolvconf_recover(&rc, &restored), ZG_ERR_MALFORMED);
	(void)unlink(backup);
	resolvconf_free(&rc);
}

static void test_unwritable_reports_io(void **state)
{
	struct resolvconf rc;
	struct resolvconf_want w = { SERVERS, 1, NULL, 0, 0 };
	char p[200];

	(void)state;
	(void)snprintf(p, sizeof(p), "%s/no/such/dir/resolv.conf", dir);
	assert_int_equal(resolvconf_init(&rc, p, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), ZG_ERR_IO);
	assert_int_equal(rc.active, 0);
	resolvconf_free(&rc);
}

/* A DNS_ASSIGN value: one config, nameserver v4 addr, domains. */
static size_t dns_assign_value(uint8_t *out, size_t cap, const char *ns, const char *domain,
			       int doh_only)
{
	static struct cipdns_assign a;
	uint8_t buf[1024], *p = buf;
	const uint8_t *q;
	uint64_t t, l;

	memset(&a, 0, sizeof(a));
	a.n = 1;
	a.cfg[0].nns = 1;
	a.cfg[0].ns[0].priority = 1;
	if (doh_only) {
		strcpy(a.cfg[0].ns[0].auth_name, "dns.example");
		memcpy(a.cfg[0].ns[0].svcparams, (uint8_t[]){ 0, 2, 0, 0 }, 4);
		a.cfg[0].ns[0].svcparams_len = 4;
	} else {
		a.cfg[0].ns[0].n4 = 1;
		assert_int_equal(sscanf(ns, "%hhu.%hhu.%hhu.%hhu", &a.cfg[0].ns[0].v4[0][0],
					&a.cfg[0].ns[0].v4[0][1], &a.cfg[0].ns[0].v4[0][2],
					&a.cfg[0].ns[0].v4[0][3]),
				 4);
	}
	a.cfg[0].ninternal = 1;
	strcpy(a.cfg[0].internal[0], domain);
	assert_int_equal(cipdns_assign_encode(&p, buf + sizeof(buf), &a), 0);
	q = buf;
	assert_int_equal(varint_decode(&q, p, &t), 0);
	assert_int_equal(varint_decode(&q, p, &l), 0);
	assert_true(l <= cap);
	memcpy(out, q, (size_t)l);
	return (size_t)l;
}

static void test_agentdns_file_mode(void **state)
{
	struct agentdns *d = NULL;
	const struct agentdns_state *st;
	uint8_t v[1024];
	size_t n;
	char err[256], buf[4096];
	long fl;

	(void)state;
	put_file(path, ORIG, ORIG_LEN);
	assert_int_equal(agentdns_new(AGENTDNS_FILE, path, "", "zgate0", 7, &d, err, sizeof(err)), 0);
	st = agentdns_state(d);
	assert_int_equal(st->mode, AGENTDNS_FILE);
	assert_int_equal(st->active, 0);
	assert_non_null(strstr(st->via, "file "));
	n = dns_assign_value(v, sizeof(v), "10.100.0.1", "saas.example", 0);
	assert_int_equal(agentdns_assign(d, v, n, err, sizeof(err)), 0);
	assert_int_equal(st->active, 1);
	assert_int_equal(st->nservers, 1);
	assert_string_equal(st->server_p[0], "10.100.0.1");
	assert_string_equal(st->domain_p[0], "saas.example");
	fl = get_file(path, buf, sizeof(buf) - 1);
	buf[fl] = '\0';
	assert_non_null(strstr(buf, "nameserver 10.100.0.1\nnameserver 192.0.2.1\n"));

	/* malformed: refused, the configuration stays */
	v[0] = 9; /* nine nameservers: above the bound */
	assert_int_equal(agentdns_assign(d, v, n, err, sizeof(err)), ZG_ERR_TOO_LARGE);
	assert_int_equal(st->active, 1);

	/* only DoH offered: nothing usable, the configuration is removed */
	n = dns_assign_value(v, sizeof(v), NULL, "saas.example", 1);
	assert_int_equal(agentdns_assign(d, v, n, err, sizeof(err)), 0);
	assert_int_equal(st->active, 0);
	assert_int_equal(st->skipped, 1);
	assert_original();

	/* again, and the exit restores */
	n = dns_assign_value(v, sizeof(v), "10.100.0.1", "", 0);
	assert_int_equal(agentdns_assign(d, v, n, err, sizeof(err)), 0);
	fl = get_file(path, buf, sizeof(buf) - 1);
	buf[fl] = '\0';
	assert_null(strstr(buf, "192.0.2.1")); /* every name: no fallback */
	agentdns_free(d);
	assert_original();
}

/* auto without systemd-resolved (no bus here, or no resolve1 on it)
 * becomes file and restores a crash backup at start. */
static void test_agentdns_auto_falls_back_and_recovers(void **state)
{
	struct agentdns *d = NULL;
	struct resolvconf rc;
	struct resolvconf_want w = { SERVERS, 1, NULL, 0, 0 };
	char err[256];

	(void)state;
	setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/zg-test-bus", 1);
	put_file(path, ORIG, ORIG_LEN);
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	resolvconf_free(&rc); /* crashed */
	assert_int_equal(agentdns_new(AGENTDNS_AUTO, path, "", "zgate0", 7, &d, err, sizeof(err)), 0);
	assert_int_equal(agentdns_state(d)->mode, AGENTDNS_FILE);
	assert_original();
	agentdns_free(d);
	/* resolved asked for explicitly: an error, not a silent fallback */
	assert_int_equal(agentdns_new(AGENTDNS_RESOLVED, path, "", "zgate0", 7, &d, err, sizeof(err)),
			 ZG_ERR_IO);
	assert_non_null(strstr(err, "dns: resolved: "));
	/* a crash in file mode, the next start in another mode (resolved,
	 * here refused; off): the file is restored all the same */
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	resolvconf_free(&rc);
	assert_int_equal(agentdns_new(AGENTDNS_RESOLVED, path, "", "zgate0", 7, &d, err, sizeof(err)),
			 ZG_ERR_IO);
	assert_original();
	assert_int_equal(resolvconf_init(&rc, path, NULL), 0);
	assert_int_equal(resolvconf_apply(&rc, &w), 0);
	resolvconf_free(&rc);
	/* off: DNS_ASSIGN is ignored, no file touched */
	assert_int_equal(agentdns_new(AGENTDNS_OFF, path, "", "zgate0", 7, &d, err, sizeof(err)), 0);
	assert_original();
	assert_int_equal(agentdns_assign(d, (const uint8_t *)"\x01", 1, err, sizeof(err)), 0);
	assert_string_equal(agentdns_state(d)->via, "off");
	agentdns_free(d);
	assert_original();
	unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

static void test_mode_names(void **state)
{
	enum agentdns_mode m;

	(void)state;
	assert_int_equal(agentdns_mode_parse("resolved", &m), 0);
	assert_int_equal(m, AGENTDNS_RESOLVED);
	assert_string_equal(agentdns_mode_name(AGENTDNS_FILE), "file");
	assert_int_equal(agentdns_mode_parse("Resolved", &m), ZG_ERR_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_relay_first_original_kept),
		cmocka_unit_test(test_render_relay_servers_leave_room),
		cmocka_unit_test(test_apply_restore_byte_exact),
		cmocka_unit_test(test_absent_file_created_then_removed),
		cmocka_unit_test(test_symlink_stays_a_symlink),
		cmocka_unit_test(test_crash_backup_restored_at_next_start),
		cmocka_unit_test(test_foreign_change_left_alone),
		cmocka_unit_test(test_backup_elsewhere),
		cmocka_unit_test(test_bad_backup_untouched),
		cmocka_unit_test(test_unwritable_reports_io),
		cmocka_unit_test(test_agentdns_file_mode),
		cmocka_unit_test(test_agentdns_auto_falls_back_and_recovers),
		cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
