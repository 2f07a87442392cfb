/* Unit tests for src/relay/ipam: stable, bounded address assignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "golden.h"
#include "relay/ipam.h"
#include "zg_err.h"

static char err[512];

/* Every case runs twice (main): on ipam_new's allocator and on
 * ipam_new_shared's; the test's state says which. */
static const int LOCAL = 0, SHARED = 1;

static int shared(void **state)
{
	return *(const int *)*state;
}

static int new_ipam(void **state, const struct config_prefix *p4, const struct config_prefix *p6,
		    uint32_t max6, struct ipam **pp)
{
	return shared(state) ? ipam_new_shared(p4, p6, max6, pp) : ipam_new(p4, p6, max6, pp);
}

static struct ipam *mk(void **state, const char *p4, const char *p6, uint32_t max6)
{
	struct config_prefix a, b;
	struct ipam *ip = NULL;
	assert_int_equal(config_parse_prefix(p4, &a), 0);
	if (p6)
		assert_int_equal(config_parse_prefix(p6, &b), 0);
	assert_int_equal(new_ipam(state, &a, p6 ? &b : NULL, max6, &ip), 0);
	return ip;
}

static const char *alloc4(struct ipam *ip, const char *id, const char *pref)
{
	static char buf[64];
	uint8_t out[16], pb[16];
	int r = ipam_alloc(ip, id, 4, pref ? (inet_pton(AF_INET, pref, pb), pb) : NULL, out);
	if (r != 0) {
		snprintf(buf, sizeof(buf), "error %d", r);
		return buf;
	}
	inet_ntop(AF_INET, out, buf, sizeof(buf));
	return buf;
}

/* 100 others come and go without getting agent-1's remembered address
 * first, and agent-1 gets it back. */
static void comes_back(struct ipam *ip, const char *first)
{
	for (int i = 0; i < 100; i++) {
		char id[32];
		snprintf(id, sizeof(id), "c%d", i);
		assert_string_not_equal(alloc4(ip, id, NULL), first);
	}
	assert_string_equal(alloc4(ip, "agent-1", NULL), first);
}

/* 20.2: the shared pool's answer overrides the local choice; the local
 * pool is then a cache of who had which address. */
static void test_assign_and_known(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0);
	uint8_t a[16], out[16];
	char s[64];
	assert_int_equal(ipam_known(ip, "a", 4, out), ZG_ERR_NOTFOUND);
	inet_pton(AF_INET, "10.100.0.9", a);
	assert_int_equal(ipam_assign(ip, "a", 4, a), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	assert_int_equal(ipam_lookup(ip, "a", 4, out), 0);
	assert_string_equal(inet_ntop(AF_INET, out, s, sizeof(s)), "10.100.0.9");
	/* again: nothing changes */
	assert_int_equal(ipam_assign(ip, "a", 4, a), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	/* held by a: nobody else may take it */
	assert_int_equal(ipam_assign(ip, "b", 4, a), ZG_ERR_STATE);
	/* released: still known (remembered) */
	assert_int_equal(ipam_release(ip, "a", 4), 0);
	assert_int_equal(ipam_used(ip, 4), 0);
	assert_int_equal(ipam_known(ip, "a", 4, out), 0);
	assert_string_equal(inet_ntop(AF_INET, out, s, sizeof(s)), "10.100.0.9");
	/* the shared pool gave a's old address to b: a's memory is gone */
	assert_int_equal(ipam_assign(ip, "b", 4, a), 0);
	assert_int_equal(ipam_known(ip, "a", 4, out), ZG_ERR_NOTFOUND);
	/* b moves to .10: .9 is free again, b holds one address */
	inet_pton(AF_INET, "10.100.0.10", a);
	assert_int_equal(ipam_assign(ip, "b", 4, a), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	assert_string_equal(alloc4(ip, "c", "10.100.0.9"), "10.100.0.9");
	/* outside the pool, the gateway, no IPv6 pool, bad id */
	inet_pton(AF_INET, "10.100.1.9", a);
	assert_int_equal(ipam_assign(ip, "d", 4, a), ZG_ERR_RANGE);
	inet_pton(AF_INET, "10.100.0.1", a);
	assert_int_equal(ipam_assign(ip, "d", 4, a), ZG_ERR_RANGE);
	assert_int_equal(ipam_assign(ip, "d", 6, a), ZG_ERR_NOTFOUND);
	assert_int_equal(ipam_assign(ip, "", 4, a), ZG_ERR_INVAL);
	ipam_free(ip);
}

static void test_pool_layout(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/24", "fd00:100::/64", 1000);
	uint8_t g[16];
	char s[64];
	assert_int_equal(ipam_size(ip, 4), 253); /* .2 - .254 */
	assert_int_equal(ipam_size(ip, 6), 1000);
	assert_int_equal(ipam_gateway(ip, 4, g), 0);
	assert_string_equal(inet_ntop(AF_INET, g, s, sizeof(s)), "10.100.0.1");
	assert_int_equal(ipam_gateway(ip, 6, g), 0);
	assert_string_equal(inet_ntop(AF_INET6, g, s, sizeof(s)), "fd00:100::1");
	ipam_free(ip);
	ip = mk(state, "10.0.0.0/30", NULL, 0);
	assert_int_equal(ipam_size(ip, 4), 1);
	assert_int_equal(ipam_size(ip, 6), 0);
	assert_int_equal(ipam_gateway(ip, 6, g), ZG_ERR_NOTFOUND);
	assert_string_equal(alloc4(ip, "only", NULL), "10.0.0.2");
	ipam_free(ip);
}

static void test_deterministic_across_instances(void **state)
{
	struct ipam *a = mk(state, "10.100.0.0/24", NULL, 0), *b = mk(state, "10.100.0.0/24", NULL, 0);
	char first[64];
	/* the same ID lands on the same address in another instance */
	strcpy(first, alloc4(a, "agent-1", NULL));
	assert_string_equal(alloc4(b, "agent-1", NULL), first);
	/* and after other clients took addresses, as long as its slot is free */
	assert_int_equal(ipam_release(b, "agent-1", 4), 0);
	ipam_free(b);
	b = mk(state, "10.100.0.0/24", NULL, 0);
	for (int i = 0; i < 20; i++) {
		char id[16];
		snprintf(id, sizeof(id), "o%d", i);
		if (strcmp(alloc4(b, id, NULL), first) == 0)
			fail_msg("%s hashed onto agent-1's slot; pick other test IDs", id);
	}
	assert_string_equal(alloc4(b, "agent-1", NULL), first);
	/* idempotent while held */
	assert_string_equal(alloc4(a, "agent-1", NULL), first);
	assert_int_equal(ipam_used(a, 4), 1);
	ipam_free(a);
	ipam_free(b);
}

static void test_reconnect_same_address(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0);
	char first[64];
	strcpy(first, alloc4(ip, "agent-1", NULL));
	assert_int_equal(ipam_release(ip, "agent-1", 4), 0);
	assert_int_equal(ipam_used(ip, 4), 0);
	assert_int_equal(ipam_release(ip, "agent-1", 4), ZG_ERR_NOTFOUND);
	/* others come and go; agent-1's remembered slot is not handed out */
	comes_back(ip, first);
	ipam_free(ip);
}

static void test_c10_preferred_address(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0);
	/* honoured when free */
	assert_string_equal(alloc4(ip, "agent-1", "10.100.0.77"), "10.100.0.77");
	/* not someone else's held address */
	assert_string_not_equal(alloc4(ip, "agent-2", "10.100.0.77"), "10.100.0.77");
	/* outside the pool, the gateway, or 0.0.0.0 ("any"): ignored */
	assert_string_not_equal(alloc4(ip, "agent-3", "192.0.2.1"), "192.0.2.1");
	assert_string_not_equal(alloc4(ip, "agent-4", "10.100.0.1"), "10.100.0.1");
	assert_string_not_equal(alloc4(ip, "agent-5", "0.0.0.0"), "0.0.0.0");
	assert_string_not_equal(alloc4(ip, "agent-6", "10.100.0.255"), "10.100.0.255");
	ipam_free(ip);
}

static void test_exhaustion_and_release(void **state)
{
	struct ipam *ip = mk(state, "10.0.0.0/29", NULL, 0); /* .2 - .6: 5 clients */
	char seen[5][64];
	assert_int_equal(ipam_size(ip, 4), 5);
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof(id), "c%d", i);
		strcpy(seen[i], alloc4(ip, id, NULL));
		assert_null(strstr(seen[i], "error"));
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
	assert_int_equal(ipam_used(ip, 4), 5);
	assert_string_equal(alloc4(ip, "c5", NULL), "error -16"); /* ZG_ERR_LIMIT */
	/* a release makes room; the newcomer takes the remembered slot */
	assert_int_equal(ipam_release(ip, "c2", 4), 0);
	assert_string_equal(alloc4(ip, "c5", NULL), seen[2]);
	ipam_free(ip);
}

static void test_bad_input(void **state)
{
	struct ipam *ip = mk(state, "10.0.0.0/24", NULL, 0), *bad = NULL;
	struct config_prefix p;
	uint8_t out[16];
	assert_int_equal(ipam_alloc(ip, "", 4, NULL, out), ZG_ERR_INVAL);
	assert_int_equal(ipam_alloc(ip, "has space", 4, NULL, out), ZG_ERR_INVAL);
	assert_int_equal(ipam_alloc(ip, "ok", 6, NULL, out), ZG_ERR_NOTFOUND);
	assert_int_equal(config_parse_prefix("10.0.0.0/31", &p), 0);
	assert_int_equal(new_ipam(state, &p, NULL, 0, &bad), ZG_ERR_INVAL);
	assert_int_equal(config_parse_prefix("fd00::/64", &p), 0);
	assert_int_equal(new_ipam(state, &p, NULL, 0, &bad), ZG_ERR_INVAL);
	assert_null(bad);
	ipam_free(ip);
}

static void test_ipv6(void **state)
{
	struct ipam *ip = mk(state, "10.0.0.0/24", "fd00:100::/120", 0);
	uint8_t out[16], pref[16];
	char s[64];
	assert_int_equal(ipam_size(ip, 6), 254);
	inet_pton(AF_INET6, "fd00:100::42", pref);
	assert_int_equal(ipam_alloc(ip, "agent-1", 6, pref, out), 0);
	assert_string_equal(inet_ntop(AF_INET6, out, s, sizeof(s)), "fd00:100::42");
	assert_int_equal(ipam_lookup(ip, "agent-1", 6, out), 0);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, out), ZG_ERR_NOTFOUND);
	ipam_free(ip);
}

static void test_persistence_roundtrip(void **state)
{
	char dir[] = "/tmp/zg-ipam-XXXXXX", path[256], a1[64], a2[64];
	struct ipam *ip = mk(state, "10.100.0.0/24", "fd00::/64", 100), *ip2;
	uint8_t out[16];
	size_t skipped = 9;
	struct stat st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ipam.state", dir);
	/* a missing file is a first start */
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), 0);
	assert_int_equal(skipped, 0);
	strcpy(a1, alloc4(ip, "agent-1", "10.100.0.50"));
	strcpy(a2, alloc4(ip, "agent-2", NULL));
	assert_int_equal(ipam_alloc(ip, "agent-1", 6, NULL, out), 0);
	assert_int_equal(ipam_release(ip, "agent-2", 4), 0);
	assert_int_equal(ipam_save(ip, path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	ipam_free(ip);

	/* a restarted relay gives both their addresses back */
	ip2 = mk(state, "10.100.0.0/24", "fd00::/64", 100);
	assert_int_equal(ipam_load(ip2, path, &skipped, err, sizeof(err)), 0);
	assert_int_equal(skipped, 0);
	assert_int_equal(ipam_used(ip2, 4), 0); /* remembered, not held */
	/* a remembered address is not given to another client that asks for it */
	assert_string_not_equal(alloc4(ip2, "someone-new", "10.100.0.50"), "10.100.0.50");
	assert_string_equal(alloc4(ip2, "agent-2", NULL), a2);
	assert_string_equal(alloc4(ip2, "agent-1", NULL), a1);
	ipam_free(ip2);

	/* a smaller pool today: entries outside it are skipped */
	ip2 = mk(state, "10.100.0.0/27", NULL, 0);
	assert_int_equal(ipam_load(ip2, path, &skipped, err, sizeof(err)), 0);
	assert_true(skipped >= 2); /* .50 and the IPv6 entry at least */
	ipam_free(ip2);
	unlink(path);
	rmdir(dir);
}

static void test_corrupt_state_file(void **state)
{
	char dir[] = "/tmp/zg-ipam-XXXXXX", path[256];
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0);
	size_t skipped;
	FILE *f;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ipam.state", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# zgate ipam state v1\nagent-1 10.100.0.9\nagent-2 not-an-address\n", f);
	fclose(f);
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ipam.state:3: \"not-an-address\" is not an IP address"));
	/* nothing was loaded: agent-1's line before the bad one is not half-applied */
	assert_string_equal(alloc4(ip, "x", "10.100.0.9"), "10.100.0.9");
	f = fopen(path, "w");
	fputs("agent-1 10.100.0.9 trailing\n", f);
	fclose(f);
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ipam.state:1: expected \"<client-id> <address>\""));
	f = fopen(path, "w");
	for (int i = 0; i < 100; i++)
		fputs("xxxxxxxxxx", f);
	fclose(f);
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "ipam.state:1: line too long"));
	unlink(path);
	assert_int_equal(ipam_save(ip, "/nonexistent-dir/ipam.state", err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent-dir/ipam.state: cannot create a temporary file"));
	rmdir(dir);
	ipam_free(ip);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void expect_file(const char *path, const char *text)
{
	size_t n;
	char *s = golden_read(path, &n);

	assert_string_equal(s, text);
	free(s);
}

/* ipam_save_logged counts every failed save and how many in a row, and
 * a save that works ends the run (the log lines are checked by e2e
 * relay). */
static void test_save_logged_counts_failures(void **state)
{
	char dir[] = "/tmp/zg-ipam-XXXXXX", path[128], bad[160];
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0);
	struct ipam_savelog sl = { 0, 0 };

	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/ipam.state", dir);
	(void)snprintf(bad, sizeof(bad), "%s/missing/ipam.state", dir);
	assert_int_equal(ipam_save_logged(ip, bad, &sl), ZG_ERR_IO);
	assert_int_equal(ipam_save_logged(ip, bad, &sl), ZG_ERR_IO);
	assert_true(sl.errors == 2 && sl.streak == 2);
	assert_int_equal(ipam_save_logged(ip, path, &sl), 0);
	assert_true(sl.errors == 2 && sl.streak == 0);
	assert_int_equal(ipam_save_logged(ip, bad, &sl), ZG_ERR_IO);
	assert_true(sl.errors == 3 && sl.streak == 1);
	unlink(path);
	rmdir(dir);
	ipam_free(ip);
}

/* A state file that does not load is renamed aside, in its directory,
 * before a save could replace it; a second one set aside in the same
 * second keeps the first; a symbolic link is moved, not its target; a
 * rename that cannot be done says why and leaves the file. */
static void test_set_aside_bad_state_file(void **state)
{
	char dir[] = "/tmp/zg-ipam-XXXXXX", other[] = "/tmp/zg-ipam-XXXXXX", path[128],
	     name[256], dst[300], target[256];
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0);
	struct stat st;
	size_t skipped;

	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(other));
	snprintf(path, sizeof(path), "%s/ipam.state", dir);
	put(path, "agent-1 10.100.0.9\nnot a state line\n");
	assert_int_equal(ipam_load(ip, path, &skipped, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_int_equal(ipam_set_aside(path, 1000, dst, sizeof(dst), err, sizeof(err)), 0);
	snprintf(name, sizeof(name), "%s.bad.1000", path);
	assert_string_equal(dst, name);
	assert_int_equal(lstat(path, &st), -1);
	expect_file(name, "agent-1 10.100.0.9\nnot a state line\n");
	/* the next save writes a new file and leaves the copy */
	assert_string_equal(alloc4(ip, "agent-2", "10.100.0.20"), "10.100.0.20");
	assert_int_equal(ipam_save(ip, path, err, sizeof(err)), 0);
	expect_file(name, "agent-1 10.100.0.9\nnot a state line\n");

	/* corrupt again within the same second: a name of its own */
	put(path, "second corruption\n");
	assert_int_equal(ipam_set_aside(path, 1000, dst, sizeof(dst), err, sizeof(err)), 0);
	snprintf(name, sizeof(name), "%s.bad.1000.1", path);
	assert_string_equal(dst, name);
	expect_file(name, "second corruption\n");
	snprintf(name, sizeof(name), "%s.bad.1000", path);
	expect_file(name, "agent-1 10.100.0.9\nnot a state line\n");
	unlink(name);
	snprintf(name, sizeof(name), "%s.bad.1000.1", path);
	unlink(name);

	/* a symbolic link to another directory: the link is renamed */
	snprintf(target, sizeof(target), "%s/elsewhere", other);
	put(target, "bad target\n");
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(ipam_set_aside(path, 2000, dst, sizeof(dst), err, sizeof(err)), 0);
	snprintf(name, sizeof(name), "%s.bad.2000", path);
	assert_string_equal(dst, name);
	assert_int_equal(lstat(name, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	expect_file(target, "bad target\n");
	snprintf(name, sizeof(name), "%s/elsewhere.bad.2000", other);
	assert_int_equal(lstat(name, &st), -1);
	snprintf(name, sizeof(name), "%s.bad.2000", path);
	unlink(name);
	unlink(target);

	/* cannot be renamed: the error names the file, the name and why */
	assert_int_equal(ipam_set_aside("/nonexistent-dir/ipam.state", 3000, dst, sizeof(dst), err,
					sizeof(err)),
			 ZG_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent-dir/ipam.state: cannot rename it to "
				    "/nonexistent-dir/ipam.state.bad.3000: No such file"));
	if (geteuid() != 0) { /* root writes in a read-only directory */
		put(path, "kept\n");
		assert_int_equal(chmod(dir, 0555), 0);
		assert_int_equal(ipam_set_aside(path, 4000, dst, sizeof(dst), err, sizeof(err)),
				 ZG_ERR_IO);
		assert_non_null(strstr(err, "Permission denied"));
		assert_int_equal(chmod(dir, 0700), 0);
		expect_file(path, "kept\n");
	}
	/* a name that does not fit */
	assert_int_equal(ipam_set_aside(path, 5000, dst, 8, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "name too long"));
	unlink(path);
	rmdir(dir);
	rmdir(other);
	ipam_free(ip);
}

/* ---- issue 21: one pool for worker processes (ipam_new_shared) ---- */

/* Runs fn(ip, arg) in a child and returns its exit status (0: all went as
 * it expected). */
static int in_child(struct ipam *ip, int (*fn)(struct ipam *, const void *), const void *arg)
{
	int st = -1;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(ip, arg)); /* not back into cmocka */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int child_alloc(struct ipam *ip, const void *id)
{
	uint8_t out[16];
	return ipam_alloc(ip, id, 4, NULL, out) == 0 ? 0 : 1;
}

static int child_release(struct ipam *ip, const void *id)
{
	return ipam_release(ip, id, 4) == 0 ? 0 : 1;
}

/* A reconnect that lands on another worker gets its address back. */
static void test_shared_across_fork(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0);
	uint8_t held[16], out[16];
	uint64_t c0 = ipam_changes(ip);
	char first[64];

	assert_int_equal(in_child(ip, child_alloc, "agent-1"), 0);
	/* the parent (another worker) sees it held */
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, held), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	assert_true(ipam_changes(ip) > c0);
	inet_ntop(AF_INET, held, first, sizeof(first));
	/* nobody else gets it, not even by asking for it */
	assert_string_not_equal(alloc4(ip, "agent-2", first), first);
	/* idempotent from another process */
	assert_string_equal(alloc4(ip, "agent-1", NULL), first);
	assert_int_equal(ipam_release(ip, "agent-1", 4), 0);
	assert_int_equal(in_child(ip, child_alloc, "agent-1"), 0);
	/* released in a third process: remembered, not held */
	assert_int_equal(in_child(ip, child_release, "agent-1"), 0);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, out), ZG_ERR_NOTFOUND);
	assert_int_equal(ipam_known(ip, "agent-1", 4, out), 0);
	assert_memory_equal(out, held, 4);
	comes_back(ip, first);
	ipam_free(ip);
}

static int child_alloc_by_1(struct ipam *ip, const void *id)
{
	uint8_t out[16];

	return ipam_alloc_by(ip, id, 4, NULL, 1, out) == 0 ? 0 : 1;
}

/* Workers: agent-1's tunnel moves from worker 0 to worker 1 (another
 * process); worker 0's old tunnel closes afterwards and must not free the
 * address worker 1's tunnel uses. */
static void test_holder_release(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/24", "fd00:100::/64", 16);
	uint8_t a0[16], a1[16], out[16];

	assert_int_equal(ipam_alloc_by(ip, "agent-1", 4, NULL, 0, a0), 0);
	assert_int_equal(ipam_alloc_by(ip, "agent-1", 6, NULL, 0, out), 0);
	if (shared(state))
		assert_int_equal(in_child(ip, child_alloc_by_1, "agent-1"), 0);
	else
		assert_int_equal(ipam_alloc_by(ip, "agent-1", 4, NULL, 1, a1), 0);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, a1), 0);
	assert_memory_equal(a0, a1, 4); /* the same address, another holder */
	assert_int_equal(ipam_holder(ip, "agent-1", 4), 1);
	assert_int_equal(ipam_holder(ip, "agent-1", 6), 0);
	assert_int_equal(ipam_holder(ip, "nobody", 4), ZG_ERR_NOTFOUND);
	/* by address: the holder of the address, not of a client */
	assert_int_equal(ipam_addr_holder(ip, 4, a0), 1);
	assert_int_equal(ipam_addr_holder(ip, 6, out), 0);
	{
		uint8_t x[16];

		memcpy(x, a0, 16);
		x[3] ^= 0x40; /* another address of the pool, free */
		assert_int_equal(ipam_addr_holder(ip, 4, x), ZG_ERR_NOTFOUND);
		x[0] = 192; /* outside the pool */
		assert_int_equal(ipam_addr_holder(ip, 4, x), ZG_ERR_NOTFOUND);
		assert_int_equal(ipam_addr_holder(ip, 5, x), ZG_ERR_NOTFOUND);
	}
	/* worker 0's late release: refused, the address stays held */
	assert_int_equal(ipam_release_by(ip, "agent-1", 4, 0), ZG_ERR_STATE);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, out), 0);
	assert_int_equal(ipam_used(ip, 4), 1);
	/* the IPv6 address was not taken over: worker 0 still holds that one */
	assert_int_equal(ipam_release_by(ip, "agent-1", 6, 1), ZG_ERR_STATE);
	assert_int_equal(ipam_release_by(ip, "agent-1", 6, 0), 0);
	/* the holder releases it: remembered, as ipam_release() */
	assert_int_equal(ipam_release_by(ip, "agent-1", 4, 1), 0);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, out), ZG_ERR_NOTFOUND);
	assert_int_equal(ipam_known(ip, "agent-1", 4, out), 0);
	assert_memory_equal(out, a0, 4);
	assert_int_equal(ipam_release_by(ip, "agent-1", 4, 1), ZG_ERR_NOTFOUND);
	assert_int_equal(ipam_addr_holder(ip, 4, a0), ZG_ERR_NOTFOUND); /* only remembered */
	/* ipam_alloc() is holder 0; ipam_release() releases whoever holds it */
	assert_int_equal(ipam_alloc(ip, "agent-2", 4, NULL, out), 0);
	assert_int_equal(ipam_release_by(ip, "agent-2", 4, 7), ZG_ERR_STATE);
	assert_int_equal(ipam_release_by(ip, "agent-2", 4, 0), 0);
	assert_int_equal(ipam_alloc_by(ip, "agent-2", 4, NULL, 9, out), 0);
	assert_int_equal(ipam_release(ip, "agent-2", 4), 0);
	assert_int_equal(ipam_used(ip, 4), 0);
	assert_int_equal(ipam_check(ip), 0);
	ipam_free(ip);
}

static int child_assign_by_1(struct ipam *ip, const void *addr)
{
	return ipam_assign_by(ip, "agent-1", 4, addr, 1) == 0 ? 0 : 1;
}

/* ipam.backend api with workers: the address comes from zgate-api and is
 * assigned by the worker whose tunnel takes it; the same holder rules as
 * ipam_alloc_by(): a tunnel that moved to worker 1 keeps its address when
 * worker 0's old tunnel closes late. */
static void test_holder_assign(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 16);
	uint8_t a[16] = { 10, 100, 0, 77 }, b[16] = { 10, 100, 0, 78 }, out[16];

	assert_int_equal(ipam_assign_by(ip, "agent-1", 4, a, 0), 0);
	assert_int_equal(ipam_holder(ip, "agent-1", 4), 0);
	if (shared(state))
		assert_int_equal(in_child(ip, child_assign_by_1, a), 0);
	else
		assert_int_equal(ipam_assign_by(ip, "agent-1", 4, a, 1), 0);
	assert_int_equal(ipam_holder(ip, "agent-1", 4), 1);
	assert_int_equal(ipam_addr_holder(ip, 4, a), 1);
	assert_int_equal(ipam_release_by(ip, "agent-1", 4, 0), ZG_ERR_STATE);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, out), 0);
	assert_memory_equal(out, a, 4);
	/* the API moved the client: the new address, held by worker 3, the
	 * old one free */
	assert_int_equal(ipam_assign_by(ip, "agent-1", 4, b, 3), 0);
	assert_int_equal(ipam_addr_holder(ip, 4, b), 3);
	assert_int_equal(ipam_addr_holder(ip, 4, a), ZG_ERR_NOTFOUND);
	assert_int_equal(ipam_used(ip, 4), 1);
	/* another client's address: refused whoever asks */
	assert_int_equal(ipam_assign_by(ip, "agent-2", 4, b, 3), ZG_ERR_STATE);
	assert_int_equal(ipam_release_by(ip, "agent-1", 4, 3), 0);
	assert_int_equal(ipam_known(ip, "agent-1", 4, out), 0);
	assert_memory_equal(out, b, 4);
	/* ipam_assign() is holder 0 */
	assert_int_equal(ipam_assign(ip, "agent-2", 4, a), 0);
	assert_int_equal(ipam_holder(ip, "agent-2", 4), 0);
	assert_int_equal(ipam_check(ip), 0);
	ipam_free(ip);
}

#define RACE_IDS 500

/* Worker w allocates RACE_IDS IDs of its own, each asking for the same
 * address as the other worker's ID of the same number (the most contended
 * case: both see the slot free at the same time), and writes the addresses
 * it was given to its pipe. */
static int child_race(struct ipam *ip, const void *arg)
{
	const int *fds = arg; /* start pipe's read end, result pipe's write end, w */
	uint8_t out[16], pref[4] = { 10, 100, 0, 0 };
	char go, id[32];

	if (read(fds[0], &go, 1) != 1)
		return 2;
	for (int i = 0; i < RACE_IDS; i++) {
		snprintf(id, sizeof(id), "w%d-%d", fds[2], i);
		pref[2] = (uint8_t)((i + 2) >> 8);
		pref[3] = (uint8_t)(i + 2);
		if (ipam_alloc(ip, id, 4, pref, out) != 0 || write(fds[1], out, 4) != 4)
			return 1;
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t be32(const uint8_t *a)
{
	return (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
}

static void race_once(void **state)
{
	struct ipam *ip = mk(state, "10.100.0.0/22", NULL, 0); /* 1021 clients */
	static uint32_t got[2 * RACE_IDS];
	int start[2], res[2][2], args[2][3];
	pid_t pid[2];
	size_t n = 0;

	assert_int_equal(pipe(start), 0);
	for (int w = 0; w < 2; w++) {
		assert_int_equal(pipe(res[w]), 0); /* 2000 bytes: within a pipe's buffer */
		args[w][0] = start[0];
		args[w][1] = res[w][1];
		args[w][2] = w;
		pid[w] = fork();
		assert_true(pid[w] >= 0);
		if (pid[w] == 0) {
			close(start[1]);
			_exit(child_race(ip, args[w]));
		}
		close(res[w][1]);
	}
	close(start[0]);
	assert_int_equal(write(start[1], "gg", 2), 2); /* both go at once */
	close(start[1]);
	for (int w = 0; w < 2; w++) {
		uint8_t a[4];
		int st;
		assert_int_equal(waitpid(pid[w], &st, 0), pid[w]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
		for (int i = 0; i < RACE_IDS; i++) {
			char id[32];
			uint8_t held[16];
			assert_int_equal(read(res[w][0], a, 4), 4);
			/* what the worker was told is what the pool says it holds */
			snprintf(id, sizeof(id), "w%d-%d", w, i);
			assert_int_equal(ipam_lookup(ip, id, 4, held), 0);
			assert_memory_equal(held, a, 4);
			got[n++] = be32(a);
		}
		close(res[w][0]);
	}
	assert_int_equal(ipam_used(ip, 4), 2 * RACE_IDS);
	qsort(got, n, sizeof(got[0]), cmp_u32);
	for (size_t i = 1; i < n; i++)
		if (got[i] == got[i - 1])
			fail_msg("address %08x handed out twice", got[i]);
	ipam_free(ip);
}

/* Two workers allocating at the same time never hand out one address
 * twice. A race is a matter of timing: without the lock, one round shows
 * it only now and then (how busy the cores are); forty rounds failed 8 of
 * 10 runs on a busy 2-core machine. */
static void test_shared_concurrent_workers(void **state)
{
	for (int round = 0; round < 40; round++)
		race_once(state);
}

static int child_die_locked(struct ipam *ip, const void *half_id)
{
	if (ipam_test_lock(ip, half_id) != 0)
		return 1;
	_exit(0); /* dies holding the lock */
}

/* A worker that dies holding the lock blocks nobody, and what it was
 * writing is repaired. */
static void test_shared_dead_holder(void **state)
{
	struct ipam *ip = mk(state, "10.0.0.0/29", NULL, 0); /* 5 clients */
	uint8_t out[16];
	char kept[64], half[8];
	uint64_t c0;

	strcpy(kept, alloc4(ip, "kept", NULL));
	alarm(20); /* a deadlock fails the test instead of hanging it */
	assert_int_equal(in_child(ip, child_die_locked, NULL), 0);
	assert_null(strstr(kept, "error"));
	assert_null(strstr(alloc4(ip, "after", NULL), "error"));
	assert_int_equal(ipam_lookup(ip, "kept", 4, out), 0);
	assert_int_equal(ipam_used(ip, 4), 2);
	assert_int_equal(ipam_release(ip, "after", 4), 0);

	/* killed half-way through writing "agent-half" into a slot */
	c0 = ipam_changes(ip);
	assert_int_equal(in_child(ip, child_die_locked, "agent-half"), 0);
	assert_int_equal(ipam_used(ip, 4), 1); /* recounted: the half one is not held */
	assert_true(ipam_changes(ip) > c0);    /* the master will save the repair */
	snprintf(half, sizeof(half), "%.5s", "agent-half");
	assert_int_equal(ipam_known(ip, half, 4, out), ZG_ERR_NOTFOUND);
	assert_int_equal(ipam_known(ip, "agent-half", 4, out), ZG_ERR_NOTFOUND);
	/* no address leaked: kept plus 4 newcomers fill the pool exactly */
	for (int i = 0; i < 4; i++) {
		char id[16];
		snprintf(id, sizeof(id), "n%d", i);
		assert_null(strstr(alloc4(ip, id, NULL), "error"));
	}
	assert_string_equal(alloc4(ip, "one-too-many", NULL), "error -16");
	assert_int_equal(ipam_lookup(ip, "kept", 4, out), 0);
	alarm(0);
	ipam_free(ip);
}

/* The state file written by the master holds what the workers did. */
static void test_shared_save_from_master(void **state)
{
	char dir[] = "/tmp/zg-ipam-XXXXXX", path[256], a1[64];
	struct ipam *ip = mk(state, "10.100.0.0/24", NULL, 0), *ip2;
	size_t skipped;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ipam.state", dir);
	assert_int_equal(in_child(ip, child_alloc, "agent-1"), 0);
	assert_int_equal(ipam_lookup(ip, "agent-1", 4, (uint8_t[16]){ 0 }), 0);
	strcpy(a1, alloc4(ip, "agent-1", NULL));
	assert_int_equal(ipam_save(ip, path, err, sizeof(err)), 0);
	ipam_free(ip);
	ip2 = mk(state, "10.100.0.0/24", NULL, 0);
	assert_int_equal(ipam_load(ip2, path, &skipped, err, sizeof(err)), 0);
	/* loaded by the master before the fork: the worker gets it back */
	assert_int_equal(in_child(ip2, child_alloc, "agent-1"), 0);
	assert_int_equal(ipam_used(ip2, 4), 1);
	assert_string_equal(alloc4(ip2, "agent-1", NULL), a1);
	ipam_free(ip2);
	unlink(path);
	rmdir(dir);
}

/* The test hook refuses an unshared allocator (it has no lock). */
static void test_test_lock_needs_shared(void **state)
{
	struct ipam *ip = mk(state, "10.0.0.0/29", NULL, 0);
	assert_int_equal(ipam_test_lock(ip, NULL), ZG_ERR_INVAL);
	ipam_free(ip);
}

/* The owner index (ipam.c) against many random operations: after each,
 * it holds exactly the used slots, no address is held twice, and `used`
 * counts the holders; removals in the middle of probe chains included
 * (a small pool, many IDs). */
static void test_index_random_ops(void **state)
{
	struct ipam *ip = mk(state, "10.9.0.0/27", "fd00:9::/120", 40);
	uint32_t x = 2463534242u;
	char id[16];
	uint8_t a[16], b[16], held[60][16];
	size_t nheld;

	for (int op = 0; op < 20000; op++) {
		uint8_t v;
		int k, r;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		(void)snprintf(id, sizeof(id), "c%u", x % 60);
		v = (x >> 8) & 1 ? 6 : 4;
		memset(a, 0, sizeof(a));
		if (v == 4) {
			a[0] = 10, a[1] = 9, a[3] = (uint8_t)((x >> 12) % 32);
		} else {
			a[0] = 0xfd, a[2] = 0, a[3] = 9, a[15] = (uint8_t)((x >> 12) % 48);
		}
		switch ((x >> 20) % 5) {
		case 0:
			r = ipam_alloc(ip, id, v, NULL, b);
			break;
		case 1:
			r = ipam_alloc(ip, id, v, a, b);
			break;
		case 2:
		case 3:
			r = ipam_release(ip, id, v);
			break;
		default:
			r = ipam_assign(ip, id, v, a);
			break;
		}
		assert_true(r == 0 || r == ZG_ERR_LIMIT || r == ZG_ERR_NOTFOUND ||
			    r == ZG_ERR_RANGE || r == ZG_ERR_STATE);
		assert_int_equal(ipam_check(ip), 0);
		if (op % 500 != 0)
			continue;
		for (v = 4; v <= 6; v += 2) {
			nheld = 0;
			for (k = 0; k < 60; k++) {
				(void)snprintf(id, sizeof(id), "c%d", k);
				if (ipam_lookup(ip, id, v, b) != 0)
					continue;
				for (size_t j = 0; j < nheld; j++)
					assert_memory_not_equal(held[j], b, 16);
				memcpy(held[nheld++], b, 16);
			}
			assert_int_equal(ipam_used(ip, v), nheld);
		}
	}
	ipam_free(ip);
}

int main(void)
{
/* One group (scripts/run-tests.sh counts the last summary): each case
 * on both allocators, named apart. */
#define ON(f, mode, tag)                               \
	{                                              \
#f tag, f, NULL, NULL, (void *)&(mode) \
	}
#define BOTH(f) ON(f, LOCAL, ""), ON(f, SHARED, " (shared)")
	const struct CMUnitTest tests[] = {
		BOTH(test_pool_layout),
		BOTH(test_assign_and_known),
		BOTH(test_deterministic_across_instances),
		BOTH(test_reconnect_same_address),
		BOTH(test_c10_preferred_address),
		BOTH(test_exhaustion_and_release),
		BOTH(test_bad_input),
		BOTH(test_ipv6),
		BOTH(test_persistence_roundtrip),
		BOTH(test_corrupt_state_file),
		ON(test_set_aside_bad_state_file, LOCAL, ""),
		BOTH(test_save_logged_counts_failures),
		BOTH(test_index_random_ops),
		BOTH(test_holder_release),
		BOTH(test_holder_assign),
		ON(test_shared_across_fork, SHARED, ""),
		ON(test_shared_concurrent_workers, SHARED, ""),
		ON(test_shared_dead_holder, SHARED, ""),
		ON(test_shared_save_from_master, SHARED, ""),
		ON(test_test_lock_needs_shared, LOCAL, ""),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
