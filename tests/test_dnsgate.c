/* Unit tests for src/relay/dnsgate: which DNS-name targets may be resolved
 * and how often (issue 16.8b), with a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay/dnsgate.h"
#include "zg_err.h"

static void test_empty_list_allows_any_name(void **state)
{
	struct dnsgate *g = NULL;
	char err[256];

	(void)state;
	assert_int_equal(dnsgate_new("", 60, &g, err, sizeof(err)), 0);
	assert_true(dnsgate_name_ok(g, "anything.internal"));
	dnsgate_free(g);
}

static void test_list_names_and_suffixes(void **state)
{
	struct dnsgate *g = NULL;
	uint64_t nl, rt;
	char err[256];

	(void)state;
	assert_int_equal(dnsgate_new("db.corp.example, .saas.example *.svc.cluster.local", 60, &g,
				     err, sizeof(err)),
			 0);
	assert_true(dnsgate_name_ok(g, "db.corp.example"));
	assert_true(dnsgate_name_ok(g, "DB.Corp.Example."));   /* case, trailing dot */
	assert_false(dnsgate_name_ok(g, "x.db.corp.example")); /* a name, not a suffix */
	assert_false(dnsgate_name_ok(g, "corp.example"));
	assert_true(dnsgate_name_ok(g, "eu.api.saas.example"));
	assert_false(dnsgate_name_ok(g, "saas.example"));     /* under it, not itself */
	assert_false(dnsgate_name_ok(g, "evilsaas.example")); /* a label boundary */
	assert_true(dnsgate_name_ok(g, "web.ns.svc.cluster.local"));
	assert_false(dnsgate_name_ok(g, "metadata.google.internal"));
	dnsgate_counts(g, &nl, &rt);
	assert_int_equal(nl, 5);
	assert_int_equal(rt, 0);
	dnsgate_free(g);
}

static void test_bad_entries_refused(void **state)
{
	struct dnsgate *g = NULL;
	char err[256];

	(void)state;
	assert_int_equal(dnsgate_new("ok.example, bad name!", 60, &g, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "dns.resolvable: \"name!\" is not a DNS name"));
	assert_null(g);
	assert_int_equal(dnsgate_new("a..b", 60, &g, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_int_equal(dnsgate_new(".", 60, &g, err, sizeof(err)), ZG_ERR_CONFIG);
}

/* A minute's worth at once, then one every 60/per_min seconds; other
 * clients keep their own budget. */
static void test_rate_per_client(void **state)
{
	struct dnsgate *g = NULL;
	uint64_t now = 1000000, nl, rt;
	char err[256];

	(void)state;
	assert_int_equal(dnsgate_new("", 6, &g, err, sizeof(err)), 0);
	for (int i = 0; i < 6; i++)
		assert_int_equal(dnsgate_take(g, "agent-1", now), 0);
	assert_int_equal(dnsgate_take(g, "agent-1", now), ZG_ERR_LIMIT);
	assert_int_equal(dnsgate_take(g, "agent-2", now), 0);
	now += 9999; /* one every 10 s: not yet */
	assert_int_equal(dnsgate_take(g, "agent-1", now), ZG_ERR_LIMIT);
	now += 1;
	assert_int_equal(dnsgate_take(g, "agent-1", now), 0);
	assert_int_equal(dnsgate_take(g, "agent-1", now), ZG_ERR_LIMIT);
	now += 3600 * 1000; /* refills to the burst, no more */
	for (int i = 0; i < 6; i++)
		assert_int_equal(dnsgate_take(g, "agent-1", now), 0);
	assert_int_equal(dnsgate_take(g, "agent-1", now), ZG_ERR_LIMIT);
	dnsgate_counts(g, &nl, &rt);
	assert_int_equal(rt, 4);
	dnsgate_free(g);
}

/* Shared (workers): a client's resolutions on two processes come out of
 * one bucket; each process counts its own refusals. */
static void test_shared_across_fork(void **state)
{
	struct dnsgate *g = NULL;
	uint64_t nl, rt;
	int st;
	pid_t pid;

	(void)state;
	assert_int_equal(dnsgate_new("", 3, &g, NULL, 0), 0);
	assert_int_equal(dnsgate_take(g, "agent-1", 1000), 0); /* before: kept */
	assert_int_equal(dnsgate_share(g), 0);
	assert_int_equal(dnsgate_share(g), 0); /* once */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) /* another worker takes the second and third */
		_exit(dnsgate_take(g, "agent-1", 1000) == 0 && dnsgate_take(g, "agent-1", 1000) == 0 &&
				      dnsgate_take(g, "agent-1", 1000) == ZG_ERR_LIMIT
			      ? 0
			      : 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(dnsgate_take(g, "agent-1", 1000), ZG_ERR_LIMIT);
	assert_int_equal(dnsgate_take(g, "agent-2", 1000), 0);
	dnsgate_counts(g, &nl, &rt);
	assert_int_equal(rt, 1); /* the child's refusal is the child's */
	/* a minute later: three again */
	assert_int_equal(dnsgate_take(g, "agent-1", 61000), 0);
	dnsgate_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_list_allows_any_name),
		cmocka_unit_test(test_list_names_and_suffixes),
		cmocka_unit_test(test_bad_entries_refused),
		cmocka_unit_test(test_rate_per_client),
		cmocka_unit_test(test_shared_across_fork),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
