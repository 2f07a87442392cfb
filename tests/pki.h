/*
 * tests/pki.h — a test PKI made at run time by scripts/gen-certs.sh
 * --test-set (CA, relay, the named clients, and the expired, notyet,
 * serveronly and stranger certificates), for cmocka group setup/teardown.
 * Header-only: each test binary is one .c file.
 */
#ifndef ZG_TESTS_PKI_H
#define ZG_TESTS_PKI_H

#include <stdio.h>
#include <stdlib.h>

static char pki_dir[64];

/* The path of a file of the test PKI (8 results stay valid at a time). */
static const char *f(const char *name)
{
	static char paths[8][256];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, 256, "%s/%s", pki_dir, name);
	return p;
}

/* Makes the PKI with the clients agent-1 and agent-2. */
static int setup_pki(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(pki_dir, sizeof(pki_dir), "/tmp/zg-pki-XXXXXX");
	if (!mkdtemp(pki_dir))
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "scripts/gen-certs.sh -d %s --test-set -c agent-1 -c agent-2 >/dev/null", pki_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int teardown_pki(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pki_dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif /* ZG_TESTS_PKI_H */
