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
#include <string.h>

static char pki_dir[64];

#define PKI_NAMES_MAX 64

/* The path of a file of the test PKI. Each name has its own buffer for the
 * whole run, so a pointer kept (a config's cert, a module's ca) stays that
 * file's path however many other f() calls follow. More than
 * PKI_NAMES_MAX distinct names, or a name too long, stops the test binary
 * with a message instead of handing out a wrong path. */
static const char *f(const char *name)
{
	static struct {
		char name[128];
		char path[sizeof(pki_dir) + 128];
	} tab[PKI_NAMES_MAX];
	static size_t n;
	size_t i;

	if (strlen(name) >= sizeof(tab[0].name)) {
		fprintf(stderr, "tests/pki.h: f(\"%s\"): name longer than %zu bytes\n", name,
			sizeof(tab[0].name) - 1);
		abort();
	}
	for (i = 0; i < n && strcmp(tab[i].name, name) != 0; i++)
		;
	if (i == n) {
		if (n == PKI_NAMES_MAX) {
			fprintf(stderr, "tests/pki.h: f(\"%s\"): more than %d names\n", name,
				PKI_NAMES_MAX);
			abort();
		}
		snprintf(tab[n].name, sizeof(tab[n].name), "%s", name);
		n++;
	}
	/* pki_dir is new after each setup_pki(): the path follows it */
	snprintf(tab[i].path, sizeof(tab[i].path), "%s/%s", pki_dir, name);
	return tab[i].path;
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
