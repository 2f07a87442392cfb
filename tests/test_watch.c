/*
 * Unit tests for src/relay/watch: real inotify on a scratch directory laid
 * out as Kubernetes mounts a Secret (tls.crt -> ..data/tls.crt, ..data ->
 * ..<timestamp>), driven by the test's own event loop. The debounce is real
 * time (inotify is), kept short; each wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay/watch.h"
#include "zg_err.h"

struct fx {
	struct event_base *base;
	struct watch *w;
	char dir[64];
	int calls_a, calls_b;
};

static void cb_a(void *arg)
{
	((struct fx *)arg)->calls_a++;
}

static void cb_b(void *arg)
{
	((struct fx *)arg)->calls_b++;
}

static void put(const char *dir, const char *name, const char *text)
{
	char p[256];
	FILE *f;

	(void)snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void path(char *out, size_t n, const struct fx *fx, const char *name)
{
	(void)snprintf(out, n, "%s/%s", fx->dir, name);
}

/* Runs the loop for ms milliseconds of real time. */
static void run_for(struct fx *fx, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(fx->base, &tv);
	event_base_dispatch(fx->base);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	(void)snprintf(fx->dir, sizeof(fx->dir), "/tmp/zg-watch-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	fx->base = event_base_new();
	if (fx->base == NULL || watch_new(fx->base, 60, &fx->w) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	watch_del(fx->w);
	event_base_free(fx->base);
	(void)nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Kubernetes' atomic update: a new timestamped directory, a new ..data
 * symlink renamed over the old one, the old directory removed. The path
 * the relay watches (tls.crt) is never written. */
static void k8s_swap(struct fx *fx, const char *from, const char *to, const char *text)
{
	char d[128], a[160], b[128];

	path(d, sizeof(d), fx, to);
	assert_int_equal(mkdir(d, 0755), 0);
	put(d, "tls.crt", text);
	put(d, "tls.key", text);
	path(a, sizeof(a), fx, "..data_tmp");
	assert_int_equal(symlink(to, a), 0);
	path(b, sizeof(b), fx, "..data");
	assert_int_equal(rename(a, b), 0);
	path(d, sizeof(d), fx, from);
	(void)snprintf(a, sizeof(a), "%s/tls.crt", d);
	assert_int_equal(unlink(a), 0);
	(void)snprintf(a, sizeof(a), "%s/tls.key", d);
	assert_int_equal(unlink(a), 0);
	assert_int_equal(rmdir(d), 0);
}

static void test_watch_k8s_symlink_swap(void **state)
{
	struct fx *fx = *state;
	char d[128], p[128], k[128];

	path(d, sizeof(d), fx, "..2024_01_01");
	assert_int_equal(mkdir(d, 0755), 0);
	put(d, "tls.crt", "one");
	put(d, "tls.key", "one");
	path(p, sizeof(p), fx, "..data");
	assert_int_equal(symlink("..2024_01_01", p), 0);
	path(p, sizeof(p), fx, "tls.crt");
	assert_int_equal(symlink("..data/tls.crt", p), 0);
	path(k, sizeof(k), fx, "tls.key");
	assert_int_equal(symlink("..data/tls.key", k), 0);
	/* two paths, one callback: one call per change */
	assert_int_equal(watch_add(fx->w, p, cb_a, fx), 0);
	assert_int_equal(watch_add(fx->w, k, cb_a, fx), 0);

	run_for(fx, 100);
	assert_int_equal(fx->calls_a, 0);
	k8s_swap(fx, "..2024_01_01", "..2024_01_02", "two");
	run_for(fx, 300);
	assert_int_equal(fx->calls_a, 1);
	assert_int_equal(watch_fired(fx->w), 1);
	/* and again: the watch survives the swap */
	k8s_swap(fx, "..2024_01_02", "..2024_01_03", "three");
	run_for(fx, 300);
	assert_int_equal(fx->calls_a, 2);
}

static void test_watch_debounces_a_burst(void **state)
{
	struct fx *fx = *state;
	char p[128];

	put(fx->dir, "policy.yaml", "v0");
	path(p, sizeof(p), fx, "policy.yaml");
	assert_int_equal(watch_add(fx->w, p, cb_a, fx), 0);
	/* five writes 20 ms apart, each within the 60 ms debounce of the
	 * last: one call, after the last */
	for (int i = 0; i < 5; i++) {
		char text[32];

		(void)snprintf(text, sizeof(text), "version %d", i + 1);
		put(fx->dir, "policy.yaml", text);
		run_for(fx, 20);
		assert_int_equal(fx->calls_a, 0);
	}
	run_for(fx, 200);
	assert_int_equal(fx->calls_a, 1);
	/* an editor's rename over it counts too */
	put(fx->dir, ".policy.yaml.swp", "version 9");
	{
		char s[128];

		path(s, sizeof(s), fx, ".policy.yaml.swp");
		assert_int_equal(rename(s, p), 0);
	}
	run_for(fx, 200);
	assert_int_equal(fx->calls_a, 2);
}

static void test_watch_only_the_changed_files_callback(void **state)
{
	struct fx *fx = *state;
	char a[128], b[128];

	put(fx->dir, "a", "1");
	put(fx->dir, "b", "1");
	path(a, sizeof(a), fx, "a");
	path(b, sizeof(b), fx, "b");
	assert_int_equal(watch_add(fx->w, a, cb_a, fx), 0);
	assert_int_equal(watch_add(fx->w, b, cb_b, fx), 0);
	/* an unrelated file in the same directory: nothing */
	put(fx->dir, "unrelated", "x");
	run_for(fx, 200);
	assert_int_equal(fx->calls_a + fx->calls_b, 0);
	put(fx->dir, "b", "22");
	run_for(fx, 200);
	assert_int_equal(fx->calls_a, 0);
	assert_int_equal(fx->calls_b, 1);
	/* removed: a change (the reload then says the file is missing) */
	assert_int_equal(unlink(a), 0);
	run_for(fx, 200);
	assert_int_equal(fx->calls_a, 1);
	/* a change already loaded (watch_rebase, e.g. SIGHUP) does not fire */
	put(fx->dir, "a", "3");
	watch_rebase(fx->w);
	run_for(fx, 200);
	assert_int_equal(fx->calls_a, 1);
}

/* watch_seen(): one path marked as loaded, the others' changes still fire;
 * it tells whether that path had changed since it was last seen. */
static void test_watch_seen_one_path(void **state)
{
	struct fx *fx = *state;
	char a[128], b[128];

	put(fx->dir, "a", "1");
	put(fx->dir, "b", "1");
	path(a, sizeof(a), fx, "a");
	path(b, sizeof(b), fx, "b");
	assert_int_equal(watch_add(fx->w, a, cb_a, fx), 0);
	assert_int_equal(watch_add(fx->w, b, cb_b, fx), 0);
	assert_int_equal(watch_seen(fx->w, a), 0); /* as added */
	put(fx->dir, "a", "22");
	put(fx->dir, "b", "22");
	assert_int_equal(watch_seen(fx->w, a), 1); /* changed: the caller loads it */
	assert_int_equal(watch_seen(fx->w, a), 0); /* now seen */
	run_for(fx, 200);
	assert_int_equal(fx->calls_a, 0); /* already loaded: no second load */
	assert_int_equal(fx->calls_b, 1); /* b's change was not swallowed */
	/* after a callback, the path is seen */
	put(fx->dir, "a", "333");
	run_for(fx, 200);
	assert_int_equal(fx->calls_a, 1);
	assert_int_equal(watch_seen(fx->w, a), 0);
	/* nothing known */
	assert_int_equal(watch_seen(fx->w, "/nonexistent-zg-dir/x"), -1);
	assert_int_equal(watch_seen(NULL, a), -1);
}

static void test_watch_bad_arguments(void **state)
{
	struct fx *fx = *state;
	char p[128];

	assert_int_equal(watch_add(fx->w, "", cb_a, fx), 0); /* no file configured */
	assert_int_equal(watch_add(fx->w, "/nonexistent-zg-dir/x", cb_a, fx), ZG_ERR_IO);
	assert_int_equal(watch_add(fx->w, NULL, cb_a, fx), ZG_ERR_INVAL);
	path(p, sizeof(p), fx, "f");
	for (int i = 0; i < WATCH_MAX_PATHS; i++)
		assert_int_equal(watch_add(fx->w, p, cb_a, fx), 0);
	assert_int_equal(watch_add(fx->w, p, cb_a, fx), ZG_ERR_LIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_watch_k8s_symlink_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_debounces_a_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_only_the_changed_files_callback, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_watch_seen_one_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_bad_arguments, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
