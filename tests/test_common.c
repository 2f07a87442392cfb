/* Unit tests for src/common: error names and log level parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "zg_err.h"

static void test_strerror_every_code_named(void **state)
{
	(void)state;
	for (int e = 0; e > ZG_ERR_LAST; e--) {
		const char *s = zg_strerror(e);
		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
		/* names are distinct */
		for (int f = 0; f > e; f--)
			assert_string_not_equal(s, zg_strerror(f));
	}
}

static void test_strerror_unknown(void **state)
{
	(void)state;
	assert_string_equal(zg_strerror(1), "unknown error");
	assert_string_equal(zg_strerror(ZG_ERR_LAST), "unknown error");
	assert_string_equal(zg_strerror(-1000), "unknown error");
}

static void test_log_level_parse(void **state)
{
	enum log_level l = LOG_LVL_ERROR;
	(void)state;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("verbose", &l), ZG_ERR_INVAL);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("", &l), ZG_ERR_INVAL);
}

/* Runs fn with stderr redirected to a temporary file; returns what it wrote. */
static void capture_stderr(void (*fn)(void), char *out, size_t outsz)
{
	FILE *tmp = tmpfile();
	int saved;
	size_t n;

	assert_non_null(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	fn();
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, outsz - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
}

static void emit_info_and_warn(void)
{
	log_info("info line %d", 1);
	errno = ENOENT;
	log_warn("warn line %s", "two");
	log_warnx("plain");
}

static void test_log_level_filters(void **state)
{
	char buf[2048];
	(void)state;

	log_set_level(LOG_LVL_WARN);
	assert_int_equal(log_get_level(), LOG_LVL_WARN);
	capture_stderr(emit_info_and_warn, buf, sizeof(buf));
	assert_null(strstr(buf, "info line"));
	assert_non_null(strstr(buf, " warn emit_info_and_warn: warn line two: No such file or directory\n"));
	assert_non_null(strstr(buf, " warn emit_info_and_warn: plain\n"));

	log_set_level(LOG_LVL_INFO);
	capture_stderr(emit_info_and_warn, buf, sizeof(buf));
	assert_non_null(strstr(buf, " info emit_info_and_warn: info line 1\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_every_code_named),
		cmocka_unit_test(test_strerror_unknown),
		cmocka_unit_test(test_log_level_parse),
		cmocka_unit_test(test_log_level_filters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
