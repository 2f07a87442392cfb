/* Policy parser: arbitrary bytes never crash it and every error names the
 * file; an accepted policy evaluates flows without crashing and always
 * yields a valid ROUTE_ADVERTISEMENT (sorted, no overlap) for its clients;
 * names are decided, and a client's domains are canonical names each of
 * which its own rules allow (or a wildcard below it does). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectip.h"
#include "relay/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ids[] = { "a", "b", "agent-1", "nobody" };
	struct policy *p = NULL;
	struct cip_route routes[256];
	struct policy_flow f;
	struct policy_verdict v;
	char err[512];
	size_t n;

	err[0] = '\0';
	if (policy_load_buf("fuzz.yaml", (const char *)data, size, &p, err, sizeof(err)) != 0) {
		if (p || strncmp(err, "fuzz.yaml", 9) != 0)
			abort();
		return 0;
	}
	memset(&f, 0, sizeof(f));
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		for (uint8_t proto = 0; proto < 20; proto += 5) {
			f.version = (proto & 1) ? 6 : 4;
			f.proto = proto == 15 ? 17 : proto == 5 ? 6
								: proto;
			f.dst[0] = (uint8_t)(size * 37);
			f.dport = (uint16_t)(size * 101);
			policy_eval(p, ids[i], &f, &v);
			if (!v.rule_id || (v.action != POLICY_ALLOW && v.action != POLICY_DENY))
				abort();
		}
		if (policy_routes(p, ids[i], routes, 256, &n) == 0 &&
		    cip_routes_validate(routes, n) != 0)
			abort();
		static const char *const names[] = { "portal.lab.example", "A.B.emr-vendor.example.",
						     "emr-vendor.example", "", "x..y", "xn--bcher-kva.example" };
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			const char *rule = NULL;
			enum policy_action a = policy_eval_name(p, ids[i], names[k], &rule);
			if (!rule || (a != POLICY_ALLOW && a != POLICY_DENY))
				abort();
		}
		static char dom[16][POLICY_NAME_MAX];
		if (policy_client_domains(p, ids[i], dom, 16, &n) == 0) {
			for (size_t k = 0; k < n; k++) {
				char c[POLICY_NAME_MAX];
				const char *why;
				if (policy_name_canon(dom[k], 0, c, &why) != 0 || strcmp(c, dom[k]) != 0)
					abort();
			}
		}
	}
	policy_free(p);
	return 0;
}
