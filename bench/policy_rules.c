/*
 * policy_rules.c — what a policy with many rules costs the relay: time to
 * load it, to decide one new flow (first rule, last rule, no rule: the
 * default after every rule was tried) and to compute a client's route
 * advertisement. Two shapes: one client with N rules, and N clients with
 * one rule each (the client lookup).
 *
 * Rules are first-match and evaluated once per new flow (never per packet).
 * Then N names (half exact, half "*." wildcards) in N rules of one client:
 * name lookups per second for an exact hit, a wildcard hit four labels
 * below its suffix, and a miss — policy_eval_name() must not slow down as
 * names are added (one hash probe per label).
 *
 * Prints a markdown table. Option: -n rules (default 10000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay/policy.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* rule i: 10.(i/256/256).(i/256%256).(i%256)/32, tcp port 1000 + i % 50000 */
static void rule_addr(unsigned i, uint8_t a[4])
{
	a[0] = 10;
	a[1] = (uint8_t)(i >> 16);
	a[2] = (uint8_t)(i >> 8);
	a[3] = (uint8_t)i;
}

static char *make_policy(unsigned n, int many_clients, size_t *plen)
{
	size_t cap = 256 + (size_t)n * 200, len = 0;
	char *t = malloc(cap);

	if (t == NULL)
		return NULL;
	len += (size_t)snprintf(t + len, cap - len, "version: 1\ndefault_action: deny\nclients:\n");
	if (!many_clients)
		len += (size_t)snprintf(t + len, cap - len, "  bench:\n    rules:\n");
	for (unsigned i = 0; i < n; i++) {
		uint8_t a[4];

		rule_addr(i, a);
		if (many_clients)
			len += (size_t)snprintf(t + len, cap - len, "  client-%u:\n    rules:\n", i);
		len += (size_t)snprintf(t + len, cap - len,
					"      - { id: r%u, action: allow, destinations: [\"%u.%u.%u.%u/32\"], "
					"protocols: [tcp], ports: [\"%u\"] }\n",
					i, a[0], a[1], a[2], a[3], 1000 + i % 50000);
	}
	*plen = len;
	return t;
}

/* ns per policy_eval of flow for client, over enough rounds for ~0.2 s */
static double eval_ns(const struct policy *p, const char *client, const struct policy_flow *f,
		      const char *want_rule)
{
	struct policy_verdict v;
	unsigned rounds = 1;
	double t0, dt;

	policy_eval(p, client, f, &v);
	if (strcmp(v.rule_id, want_rule) != 0) {
		fprintf(stderr, "policy_rules: expected rule %s, got %s\n", want_rule, v.rule_id);
		exit(1);
	}
	for (;;) {
		t0 = now_s();
		for (unsigned i = 0; i < rounds; i++)
			policy_eval(p, client, f, &v);
		dt = now_s() - t0;
		if (dt > 0.2 || rounds > (1u << 28))
			break;
		rounds *= 2;
	}
	return dt * 1e9 / rounds;
}

static void flow_to(struct policy_flow *f, unsigned i, uint16_t port)
{
	memset(f, 0, sizeof(*f));
	f->version = 4;
	f->src[0] = 100;
	f->src[1] = 64;
	f->src[3] = 2;
	rule_addr(i, f->dst);
	f->proto = 6;
	f->sport = 40000;
	f->dport = port;
}

/* policy_eval_name lookups per second of name for client, ~0.2 s */
static double name_rate(const struct policy *p, const char *name, const char *want_rule)
{
	const char *rule = NULL;
	unsigned rounds = 1;
	double t0, dt;

	(void)policy_eval_name(p, "bench", name, &rule);
	if (strcmp(rule, want_rule) != 0) {
		fprintf(stderr, "policy_rules: %s: expected rule %s, got %s\n", name, want_rule, rule);
		exit(1);
	}
	for (;;) {
		t0 = now_s();
		for (unsigned i = 0; i < rounds; i++)
			(void)policy_eval_name(p, "bench", name, &rule);
		dt = now_s() - t0;
		if (dt > 0.2 || rounds > (1u << 28))
			break;
		rounds *= 2;
	}
	return rounds / dt;
}

static int bench_names(unsigned n)
{
	size_t cap = 256 + (size_t)n * 120, len = 0;
	char *t = malloc(cap), err[512], name[128], want[32];
	struct policy *p = NULL;
	double t0;

	if (t == NULL)
		return 1;
	len += (size_t)snprintf(t + len, cap - len,
				"version: 1\nclients:\n  bench:\n    rules:\n");
	for (unsigned i = 0; i < n; i++)
		len += (size_t)snprintf(t + len, cap - len,
					"      - { id: n%u, action: allow, destinations: [\"%sapp-%u.zone-%u.example\"] }\n",
					i, i % 2 ? "*." : "", i, i % 97);
	t0 = now_s();
	if (policy_load_buf("bench", t, len, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "policy_rules: %s\n", err);
		return 1;
	}
	printf("| load a policy of %u names for one client | %.0f ms |\n", n, (now_s() - t0) * 1e3);
	(void)snprintf(name, sizeof(name), "app-%u.zone-%u.example", n - 2, (n - 2) % 97);
	(void)snprintf(want, sizeof(want), "n%u", n - 2);
	printf("| resolve-time name check, exact name (last rule) | %.1f M lookups/s |\n",
	       name_rate(p, name, want) / 1e6);
	(void)snprintf(name, sizeof(name), "a.b.c.host.app-%u.zone-%u.example", n - 1, (n - 1) % 97);
	(void)snprintf(want, sizeof(want), "n%u", n - 1);
	printf("| resolve-time name check, wildcard 4 labels below | %.1f M lookups/s |\n",
	       name_rate(p, name, want) / 1e6);
	printf("| resolve-time name check, no rule names it | %.1f M lookups/s |\n",
	       name_rate(p, "www.unlisted.example", "default") / 1e6);
	policy_free(p);
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned n = 10000;
	int opt;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n' && atoi(optarg) > 1)
			n = (unsigned)atoi(optarg);
		else {
			fprintf(stderr, "usage: policy_rules [-n RULES]\n");
			return 2;
		}
	}
	printf("| measurement | value |\n|---|---|\n");
	for (int many = 0; many <= 1; many++) {
		char err[512], id[32], last[32], client[32];
		struct policy *p = NULL;
		struct policy_flow f;
		struct cip_route *routes = calloc(65536, sizeof(*routes));
		size_t len, nr = 0;
		char *text = make_policy(n, many, &len);
		double t0, load_ms, routes_ms;

		if (text == NULL || routes == NULL)
			return 1;
		t0 = now_s();
		if (policy_load_buf("bench", text, len, &p, err, sizeof(err)) != 0) {
			fprintf(stderr, "policy_rules: %s\n", err);
			return 1;
		}
		load_ms = (now_s() - t0) * 1e3;
		const char *shape = many ? "clients with 1 rule each" : "rules for one client";

		printf("| load a policy of %u %s (%zu KiB of YAML) | %.0f ms |\n", n, shape,
		       len / 1024, load_ms);
		(void)snprintf(last, sizeof(last), "r%u", n - 1);
		if (!many) {
			flow_to(&f, 0, 1000);
			printf("| decide a new flow: first of %u rules matches | %.0f ns |\n", n,
			       eval_ns(p, "bench", &f, "r0"));
			flow_to(&f, n - 1, (uint16_t)(1000 + (n - 1) % 50000));
			printf("| decide a new flow: last of %u rules matches | %.0f ns |\n", n,
			       eval_ns(p, "bench", &f, last));
			flow_to(&f, n - 1, 1);
			printf("| decide a new flow: none of %u rules (default deny) | %.0f ns |\n", n,
			       eval_ns(p, "bench", &f, "default"));
			(void)snprintf(client, sizeof(client), "bench");
		} else {
			(void)snprintf(client, sizeof(client), "client-%u", n - 1);
			flow_to(&f, n - 1, (uint16_t)(1000 + (n - 1) % 50000));
			printf("| decide a new flow of the last of %u clients | %.0f ns |\n", n,
			       eval_ns(p, client, &f, last));
			printf("| decide a new flow of a client not listed | %.0f ns |\n",
			       eval_ns(p, "stranger", &f, "default"));
		}
		t0 = now_s();
		if (policy_routes(p, client, routes, 65536, &nr) != 0 && !many) {
			(void)id;
			printf("| route advertisement for %s | over 65536 ranges |\n", client);
		} else {
			routes_ms = (now_s() - t0) * 1e3;
			printf("| route advertisement for %s (%zu ranges) | %.1f ms |\n", client, nr,
			       routes_ms);
		}
		policy_free(p);
		free(text);
		free(routes);
	}
	return bench_names(n);
}
