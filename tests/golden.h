/*
 * tests/golden.h — a golden file read whole, for the tests that compare
 * with one (tests/golden/). Header-only: each test binary is one .c file;
 * include it after <cmocka.h>.
 */
#ifndef ZG_TESTS_GOLDEN_H
#define ZG_TESTS_GOLDEN_H

#include <stdio.h>
#include <stdlib.h>

/* The file at path (relative to the repository's root, where the tests
 * run), NUL-terminated, its length in *plen; the caller frees it. A file
 * that cannot be read fails the test. */
static char *golden_read(const char *path, size_t *plen)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (f == NULL)
		fail_msg("%s: cannot read (run from the repository's root)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*plen = (size_t)n;
	return s;
}

#endif /* ZG_TESTS_GOLDEN_H */
