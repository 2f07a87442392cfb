/* check-relay-config CONFIG [POLICY] — loads a relay configuration file
 * (and a policy file) with the relay's own parsers, as zgate-relay does at
 * start: defaults, then the file, then config_validate(). Prints the
 * summary, or the parser's message and exits 1. scripts/check-packaging.sh
 * builds it against build/libzg.a to check the configuration the Helm
 * chart renders into its ConfigMap. */
#include <stdio.h>
#include <string.h>

#include "relay/config.h"
#include "relay/policy.h"

int main(int argc, char **argv)
{
	static struct relay_config cfg;
	static char err[1024], summary[4096];
	struct policy *pol = NULL;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s CONFIG [POLICY]\n", argv[0]);
		return 2;
	}
	config_defaults(&cfg);
	if (config_load_file(&cfg, argv[1], err, sizeof(err)) != 0 ||
	    config_validate(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "config: %s\n", err);
		return 1;
	}
	if (argc == 3) {
		if (policy_load_file(argv[2], &pol, err, sizeof(err)) != 0) {
			fprintf(stderr, "policy: %s\n", err);
			return 1;
		}
		printf("policy        %zu clients, %zu rules\n", policy_client_count(pol),
		       policy_rule_count(pol));
		policy_free(pol);
	}
	(void)config_summary(&cfg, summary, sizeof(summary));
	fputs(summary, stdout);
	return 0;
}
