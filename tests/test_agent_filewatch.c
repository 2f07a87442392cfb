/* Unit tests for src/agent/filewatch: which changes of the agent's
 * certificate files are noticed (issue 18.6), over real files in a scratch
 * directory and the test's own event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "agent/filewatch.h"
#include "zg_err.h"

#define DEBOUNCE_MS 60

struct fx {
	struct event_base *base;
	struct filewatch *w;
	char dir[64], cert[96], key[96];
	int calls;
};

static void on_change(void *ctx)
{
	((struct fx *)ctx)->calls++;
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int setup(void **state)
{
	static struct fx fx;
	const char *files[2];
	char err[256];

	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/zg-test-fw-XXXXXX");
	if (mkdtemp(fx.dir) == NULL || (fx.base = event_base_new()) == NULL)
		return -1;
	snprintf(fx.cert, sizeof(fx.cert), "%s/agent.crt", fx.dir);
	snprintf(fx.key, sizeof(fx.key), "%s/agent.key", fx.dir);
	put(fx.cert, "cert 1");
	put(fx.key, "key 1");
	files[0] = fx.cert;
	files[1] = fx.key;
	if (filewatch_new(fx.base, files, 2, DEBOUNCE_MS, on_change, &fx, &fx.w, err,
			  sizeof(err)) != 0)
		return -1;
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	filewatch_del(fx->w);
	event_base_free(fx->base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Drives the loop for about ms milliseconds. */
static void run_for(struct fx *fx, int ms)
{
	for (int i = 0; i < ms; i += 5) {
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		(void)poll(NULL, 0, 5);
	}
}

/* 18.6: the certificate rewritten in place is noticed, once, after the
 * debounce time; a certificate and key written one after the other are
 * one change. */
static void test_in_place_write(void **state)
{
	struct fx *fx = *state;

	put(fx->cert, "cert 2");
	run_for(fx, DEBOUNCE_MS / 3);
	assert_int_equal(fx->calls, 0); /* not before the debounce time */
	put(fx->key, "key 2");
	run_for(fx, DEBOUNCE_MS * 3);
	assert_int_equal(fx->calls, 1);
	run_for(fx, DEBOUNCE_MS * 2);
	assert_int_equal(fx->calls, 1);
}

/* 18.6: a new file renamed over the old one (a new inode) is noticed. */
static void test_rename_into_place(void **state)
{
	struct fx *fx = *state;
	char tmp[128];

	snprintf(tmp, sizeof(tmp), "%s/.agent.crt.new", fx->dir);
	put(tmp, "cert 3");
	run_for(fx, DEBOUNCE_MS * 3);
	assert_int_equal(fx->calls, 0); /* a temporary name is not ours */
	assert_int_equal(rename(tmp, fx->cert), 0);
	run_for(fx, DEBOUNCE_MS * 3);
	assert_int_equal(fx->calls, 1);
}

/* 18.6: other files in the directory are not changes. */
static void test_unrelated_files_ignored(void **state)
{
	struct fx *fx = *state;
	char other[128];

	snprintf(other, sizeof(other), "%s/notes.txt", fx->dir);
	put(other, "x");
	unlink(other);
	snprintf(other, sizeof(other), "%s/agent.crt.bak", fx->dir);
	put(other, "x");
	run_for(fx, DEBOUNCE_MS * 3);
	assert_int_equal(fx->calls, 0);
	assert_int_equal(filewatch_events(fx->w), 0);
}

/* 18.6: Kubernetes updates a mounted Secret by writing a new timestamped
 * directory and renaming the "..data" symlink over: the file names in the
 * mount never change, and that swap must be seen. */
static void test_kubernetes_data_swap(void **state)
{
	struct fx *fx = *state;
	char d1[128], d2[128], link[128], tmp[128], f[160];

	snprintf(d1, sizeof(d1), "%s/..2024_01_01_00_00_00.1", fx->dir);
	snprintf(d2, sizeof(d2), "%s/..2024_01_01_00_01_00.2", fx->dir);
	snprintf(link, sizeof(link), "%s/..data", fx->dir);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", fx->dir);
	assert_int_equal(mkdir(d1, 0755), 0);
	snprintf(f, sizeof(f), "%s/agent.crt", d1);
	put(f, "cert 1");
	assert_int_equal(symlink("..2024_01_01_00_00_00.1", link), 0);
	run_for(fx, DEBOUNCE_MS * 3);
	fx->calls = 0;
	/* the swap */
	assert_int_equal(mkdir(d2, 0755), 0);
	snprintf(f, sizeof(f), "%s/agent.crt", d2);
	put(f, "cert 2");
	assert_int_equal(symlink("..2024_01_01_00_01_00.2", tmp), 0);
	assert_int_equal(rename(tmp, link), 0);
	run_for(fx, DEBOUNCE_MS * 3);
	assert_int_equal(fx->calls, 1);
}

static void count(void *ctx)
{
	++*(int *)ctx;
}

/* Kubernetes' projected volume with the files in a subdirectory: the
 * watched path "tls" is a symlink to "..data/tls", so the directory watched
 * is the old timestamped one, which the update deletes after swapping
 * "..data". Each update is seen, the second one too: the path is watched
 * again, now through the new target. */
static void test_kubernetes_projected_subdir(void **state)
{
	struct fx *fx = *state;
	struct filewatch *w = NULL;
	char cmd[512], crt[128], err[256];
	const char *files[1] = { crt };
	int calls = 0;

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && mkdir -p ..v1/tls && echo 1 > ..v1/tls/agent.crt && "
		 "ln -s ..v1 ..data && ln -s ..data/tls tls",
		 fx->dir);
	assert_int_equal(system(cmd), 0);
	snprintf(crt, sizeof(crt), "%s/tls/agent.crt", fx->dir);
	assert_int_equal(filewatch_new(fx->base, files, 1, DEBOUNCE_MS, count, &calls, &w, err,
				       sizeof(err)),
			 0);
	run_for(fx, DEBOUNCE_MS * 3);
	assert_int_equal(calls, 0);
	for (int v = 2; v <= 3; v++) {
		snprintf(cmd, sizeof(cmd),
			 "cd '%s' && mkdir -p ..v%d/tls && echo %d > ..v%d/tls/agent.crt && "
			 "ln -s ..v%d ..data_tmp && mv -T ..data_tmp ..data && rm -rf ..v%d",
			 fx->dir, v, v, v, v, v - 1);
		assert_int_equal(system(cmd), 0);
		run_for(fx, DEBOUNCE_MS * 3);
		assert_int_equal(calls, v - 1);
	}
	filewatch_del(w);
}

/* Bad arguments and a directory that does not exist are errors that say
 * which directory. */
static void test_errors(void **state)
{
	struct fx *fx = *state;
	struct filewatch *w = NULL;
	const char *missing[] = { "/nonexistent-zgate-dir/agent.crt" };
	const char *dirpath[] = { "/tmp/" };
	char err[256] = "";

	assert_int_equal(filewatch_new(fx->base, missing, 0, 10, on_change, fx, &w, err, sizeof(err)),
			 ZG_ERR_INVAL);
	assert_int_equal(filewatch_new(fx->base, missing, 1, 10, on_change, fx, &w, err, sizeof(err)),
			 ZG_ERR_IO);
	assert_non_null(strstr(err, "cannot watch /nonexistent-zgate-dir"));
	assert_int_equal(filewatch_new(fx->base, dirpath, 1, 10, on_change, fx, &w, err, sizeof(err)),
			 ZG_ERR_INVAL);
	assert_null(w);
	filewatch_del(NULL);
}

/* filewatch_sum() tells a change of contents from an event that changed
 * nothing, and a file that went away from one that is there. */
static void test_sum(void **state)
{
	struct fx *fx = *state;
	const char *files[] = { fx->cert, fx->key };
	char missing[128];
	const char *with_missing[] = { fx->cert, missing };
	uint64_t s1 = filewatch_sum(files, 2), s2;

	assert_int_equal(filewatch_sum(files, 2), s1);
	put(fx->cert, "cert 1"); /* rewritten, same bytes */
	assert_int_equal(filewatch_sum(files, 2), s1);
	put(fx->cert, "cert 2");
	s2 = filewatch_sum(files, 2);
	assert_true(s2 != s1);
	put(fx->cert, "cert 1");
	assert_int_equal(filewatch_sum(files, 2), s1);
	/* the same bytes split differently across the files differ */
	put(fx->cert, "cert 1k");
	put(fx->key, "ey 1");
	assert_true(filewatch_sum(files, 2) != s1);
	snprintf(missing, sizeof(missing), "%s/none.key", fx->dir);
	assert_true(filewatch_sum(with_missing, 2) != filewatch_sum(files, 2));
	assert_true(filewatch_sum(files, 1) != filewatch_sum(with_missing, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_place_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_into_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unrelated_files_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kubernetes_data_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kubernetes_projected_subdir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
