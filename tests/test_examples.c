/* The configuration files shipped for users and containers load with the
 * relay's own parsers and mean what their comments say:
 * examples/zgate-relay.yaml (also mounted by docker/compose.yaml) and
 * docker/policy.yaml (the compose demo's policy). Run from the repository
 * root, as make does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "agent/agent_config.h"
#include "relay/config.h"
#include "relay/policy.h"
#include "zg_err.h"

static char err[1024];

static void load_example(struct relay_config *c)
{
	config_defaults(c);
	err[0] = '\0';
	if (config_load_file(c, "examples/zgate-relay.yaml", err, sizeof(err)) != 0)
		fail_msg("examples/zgate-relay.yaml: %s", err);
}

static void test_example_config_loads_and_validates(void **state)
{
	struct relay_config c;
	(void)state;
	load_example(&c);
	if (config_validate(&c, err, sizeof(err)) != 0)
		fail_msg("examples/zgate-relay.yaml does not validate: %s", err);
}

/* The paths are the ones the images, compose file and chart mount. */
static void test_example_config_values(void **state)
{
	struct relay_config c;
	(void)state;
	load_example(&c);
	assert_string_equal(c.listen, "0.0.0.0:4433");
	assert_string_equal(c.ops_listen, "127.0.0.1:8080");
	assert_string_equal(c.tls_cert, "/etc/zgate/tls/relay.crt");
	assert_string_equal(c.tls_key, "/etc/zgate/tls/relay.key");
	assert_string_equal(c.tls_client_ca, "/etc/zgate/tls/ca.crt");
	assert_string_equal(c.tls_crl, "");
	assert_string_equal(c.policy_file, "/etc/zgate/policy.yaml");
	assert_string_equal(c.state_file, "/var/lib/zgate/ipam.state");
	assert_int_equal(c.pool4.version, 4);
	assert_int_equal(c.pool4.len, 24);
	assert_int_equal(c.pool6.version, 0);
	assert_int_equal(c.drain_grace_ms, 30000);
	assert_int_equal(c.tcp_idle_ms, 2u * 3600u * 1000u);
	assert_int_equal(c.tcp_close_ms, 60u * 1000u);
	assert_int_equal(c.mtu, 1280);
	assert_string_equal(c.log_level, "info");
}

/* docker/compose.yaml overrides the template with ZGATE_URI_TEMPLATE. */
static void test_example_config_with_compose_environment(void **state)
{
	struct relay_config c;
	char *envp[] = {
		"ZGATE_URI_TEMPLATE=https://relay:4433/.well-known/masque/ip/{target}/{ipproto}/",
		NULL,
	};
	(void)state;
	load_example(&c);
	assert_int_equal(config_apply_env(&c, envp, err, sizeof(err)), 0);
	assert_string_equal(c.uri_template,
			    "https://relay:4433/.well-known/masque/ip/{target}/{ipproto}/");
	if (config_validate(&c, err, sizeof(err)) != 0)
		fail_msg("with the compose environment: %s", err);
}

static const char *decide(const struct policy *p, const char *client, const char *dst,
			  uint8_t proto, uint16_t dport)
{
	static char buf[128];
	struct policy_flow f;
	struct policy_verdict v;

	memset(&f, 0, sizeof(f));
	f.version = 4;
	assert_int_equal(inet_pton(AF_INET, "10.100.0.2", f.src), 1);
	assert_int_equal(inet_pton(AF_INET, dst, f.dst), 1);
	f.proto = proto;
	f.sport = 40000;
	f.dport = dport;
	policy_eval(p, client, &f, &v);
	(void)snprintf(buf, sizeof(buf), "%s:%s", v.action == POLICY_ALLOW ? "allow" : "deny",
		       v.rule_id);
	return buf;
}

static void test_compose_policy(void **state)
{
	struct policy *p = NULL;
	(void)state;
	err[0] = '\0';
	if (policy_load_file("docker/policy.yaml", &p, err, sizeof(err)) != 0)
		fail_msg("docker/policy.yaml: %s", err);
	assert_int_equal(policy_default_action(p), POLICY_DENY);
	assert_string_equal(decide(p, "agent-1", "172.31.77.10", 6, 8000), "allow:target-http");
	assert_string_equal(decide(p, "agent-1", "172.31.77.10", 1, 0), "allow:target-ping");
	assert_string_equal(decide(p, "agent-1", "172.31.77.10", 6, 22), "deny:default");
	assert_string_equal(decide(p, "agent-1", "172.31.77.11", 6, 8000), "deny:default");
	assert_string_equal(decide(p, "agent-2", "172.31.77.10", 1, 0), "allow:target-ping");
	assert_string_equal(decide(p, "agent-2", "172.31.77.10", 6, 8000), "deny:default");
	assert_string_equal(decide(p, "stranger", "172.31.77.10", 1, 0), "deny:default");
	policy_free(p);
}

/* examples/zgate-agent.yaml (installed as /etc/zgate/zgate-agent.yaml for
 * zgate-agent.service) loads with the agent's parser and validates. */
static void test_example_agent_config(void **state)
{
	struct agent_config c;

	(void)state;
	agent_config_defaults(&c);
	if (agent_config_load_file(&c, "examples/zgate-agent.yaml", err, sizeof(err)) != 0)
		fail_msg("examples/zgate-agent.yaml: %s", err);
	if (agent_config_validate(&c, err, sizeof(err)) != 0)
		fail_msg("examples/zgate-agent.yaml does not validate: %s", err);
	assert_string_equal(c.relay, "relay.example.org:4433");
	assert_string_equal(c.key, "/etc/zgate/tls/agent.key");
	assert_string_equal(c.tun, "zgate0");
	assert_string_equal(c.status_file, ""); /* the unit's $RUNTIME_DIRECTORY gives it */
	assert_string_equal(c.dns, "auto");
	assert_string_equal(c.resolv_conf, "/etc/resolv.conf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_agent_config),
		cmocka_unit_test(test_example_config_loads_and_validates),
		cmocka_unit_test(test_example_config_values),
		cmocka_unit_test(test_example_config_with_compose_environment),
		cmocka_unit_test(test_compose_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
