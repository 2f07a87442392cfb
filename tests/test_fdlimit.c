/* Unit tests for src/relay/fdlimit: the descriptor limit raised at start
 * and the configuration checked against it (issue 16.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <sys/resource.h>

#include "relay/fdlimit.h"
#include "relay/ops.h"
#include "zg_err.h"

static void test_fits(void **state)
{
	struct fdlimit_need n = { .flows = 10000, .flows_per_client = 1000, .ops_max_conns = 64 };
	uint32_t flows = 0;
	char err[512] = "";

	(void)state;
	assert_int_equal(fdlimit_check(&n, 20000, &flows, err, sizeof(err)), 0);
	assert_int_equal(flows, 10000);
	/* exactly enough: flows + ops + the listener and spare + the base */
	assert_int_equal(fdlimit_check(&n, 10000 + OPS_FDS(64) + FDLIMIT_BASE, &flows, err,
				       sizeof(err)),
			 0);
	assert_int_equal(flows, 10000);
}

/* An explicit limits.flows the descriptors cannot hold is refused with
 * the fields and the numbers; the default is lowered to what fits. */
static void test_flows_too_many(void **state)
{
	struct fdlimit_need n = { .flows = 100000, .flows_per_client = 1000, .ops_max_conns = 64 };
	uint32_t flows = 0;
	char err[512] = "";

	(void)state;
	assert_int_equal(fdlimit_check(&n, 20000, &flows, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "limits.flows (100000) + ops.max_connections (64) + 34 for the "
				    "relay itself need 100098 descriptors, but RLIMIT_NOFILE is 20000"));
	assert_non_null(strstr(err, "limits.flows to 19902 at most"));
	n.flows_is_default = 1;
	assert_int_equal(fdlimit_check(&n, 20000, &flows, err, sizeof(err)), 0);
	assert_int_equal(flows, 20000 - 64 - 2 - FDLIMIT_BASE);
}

/* One client's limit beyond every descriptor is refused even with the
 * default limits.flows (the relay would hit EMFILE for everyone). */
static void test_per_client_too_many(void **state)
{
	struct fdlimit_need n = { .flows = 100000, .flows_per_client = 1000, .ops_max_conns = 64, .flows_is_default = 1 };
	uint32_t flows = 7;
	char err[512] = "";

	(void)state;
	assert_int_equal(fdlimit_check(&n, 1024, &flows, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "limits.flows_per_client (1000) + ops.max_connections (64) + 34 "
				    "for the relay itself need 1098 descriptors, but RLIMIT_NOFILE is 1024"));
	assert_int_equal(flows, 7);
	assert_int_equal(fdlimit_check(&n, 10, &flows, err, sizeof(err)), ZG_ERR_CONFIG);
}

static void test_raise_to_hard(void **state)
{
	struct rlimit old, low;
	uint64_t cur, max;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	if (old.rlim_max < 64)
		skip();
	low = old;
	low.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(fdlimit_raise(&cur, &max), 0);
	assert_true(cur == max);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &low), 0);
	assert_true(low.rlim_cur == old.rlim_max);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fits),
		cmocka_unit_test(test_flows_too_many),
		cmocka_unit_test(test_per_client_too_many),
		cmocka_unit_test(test_raise_to_hard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
