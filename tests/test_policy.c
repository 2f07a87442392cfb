/* Unit tests for src/relay/policy: parsing (every error names file:line:col
 * and the field), first-match evaluation, and route derivation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "relay/policy.h"
#include "zg_err.h"

static char err[1024];

static const char *routes_of(const struct policy *p, const char *client);

static struct policy *load_ok(const char *text)
{
	struct policy *p = NULL;
	int r = policy_load_buf("policy.yaml", text, strlen(text), &p, err, sizeof(err));
	if (r != 0)
		fail_msg("load failed (%d): %s", r, err);
	return p;
}

static void load_bad(const char *text, const char *want)
{
	struct policy *p = NULL;
	assert_int_equal(policy_load_buf("policy.yaml", text, strlen(text), &p, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_null(p);
	if (!strstr(err, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static struct policy_flow flow(const char *dst, uint8_t proto, uint16_t dport)
{
	struct policy_flow f;
	memset(&f, 0, sizeof(f));
	if (inet_pton(AF_INET, dst, f.dst) == 1) {
		f.version = 4;
	} else {
		assert_int_equal(inet_pton(AF_INET6, dst, f.dst), 1);
		f.version = 6;
	}
	f.proto = proto;
	f.sport = 40000;
	f.dport = dport;
	return f;
}

static const char *decide(const struct policy *p, const char *client, const char *dst,
			  uint8_t proto, uint16_t dport)
{
	static char buf[128];
	struct policy_flow f = flow(dst, proto, dport);
	struct policy_verdict v;
	policy_eval(p, client, &f, &v);
	snprintf(buf, sizeof(buf), "%s:%s", v.action == POLICY_ALLOW ? "allow" : "deny", v.rule_id);
	return buf;
}

static const char *sample =
	"version: 1\n"
	"default_action: deny\n"
	"clients:\n"
	"  agent-1:\n"
	"    rules:\n"
	"      - id: no-ssh\n"
	"        action: deny\n"
	"        destinations: [\"203.0.113.10/32\"]\n"
	"        protocols: [tcp]\n"
	"        ports: [\"22\"]\n"
	"      - id: allow-saas\n"
	"        action: allow\n"
	"        destinations: [\"203.0.113.0/24\", \"2001:db8::/32\"]\n"
	"        protocols: [tcp, udp]\n"
	"        ports: [\"443\", \"8000-8100\", \"22\"]\n"
	"      - id: allow-ping\n"
	"        action: allow\n"
	"        destinations: [\"198.51.100.0/24\"]\n"
	"        protocols: [icmp]\n"
	"  agent-2:\n"
	"    rules:\n"
	"      - id: block-internal\n"
	"        action: deny\n"
	"        destinations: [\"10.0.0.0/8\"]\n"
	"      - id: everything\n"
	"        action: allow\n"
	"        destinations: [\"0.0.0.0/0\", \"::/0\"]\n";

static void test_parse_counts(void **state)
{
	struct policy *p = load_ok(sample);
	(void)state;
	assert_int_equal(policy_client_count(p), 2);
	assert_int_equal(policy_rule_count(p), 5);
	assert_true(policy_has_client(p, "agent-1"));
	assert_false(policy_has_client(p, "agent-3"));
	assert_int_equal(policy_default_action(p), POLICY_DENY);
	policy_free(p);
}

static void test_eval_first_match_ports_protocols(void **state)
{
	struct policy *p = load_ok(sample);
	(void)state;
	assert_string_equal(decide(p, "agent-1", "203.0.113.5", 6, 443), "allow:allow-saas");
	assert_string_equal(decide(p, "agent-1", "203.0.113.5", 17, 8050), "allow:allow-saas");
	assert_string_equal(decide(p, "agent-1", "203.0.113.5", 6, 8101), "deny:default");
	assert_string_equal(decide(p, "agent-1", "203.0.113.5", 6, 7999), "deny:default");
	/* the earlier deny wins for 203.0.113.10:22, not for other hosts */
	assert_string_equal(decide(p, "agent-1", "203.0.113.10", 6, 22), "deny:no-ssh");
	assert_string_equal(decide(p, "agent-1", "203.0.113.11", 6, 22), "allow:allow-saas");
	/* UDP to .10:22 is not what no-ssh denies */
	assert_string_equal(decide(p, "agent-1", "203.0.113.10", 17, 22), "allow:allow-saas");
	/* ports never match ICMP; an icmp rule matches both versions' ICMP */
	assert_string_equal(decide(p, "agent-1", "203.0.113.5", 1, 0), "deny:default");
	assert_string_equal(decide(p, "agent-1", "198.51.100.7", 1, 0), "allow:allow-ping");
	assert_string_equal(decide(p, "agent-1", "198.51.100.7", 6, 80), "deny:default");
	/* IPv6 */
	assert_string_equal(decide(p, "agent-1", "2001:db8::1", 6, 443), "allow:allow-saas");
	assert_string_equal(decide(p, "agent-1", "2001:db9::1", 6, 443), "deny:default");
	/* a v4-looking v6 address does not match a v4 rule */
	assert_string_equal(decide(p, "agent-1", "::ffff:203.0.113.5", 6, 443), "deny:default");
	/* other protocols (GRE) match only "any" */
	assert_string_equal(decide(p, "agent-2", "192.0.2.1", 47, 0), "allow:everything");
	assert_string_equal(decide(p, "agent-1", "203.0.113.5", 47, 0), "deny:default");
	/* agent-2: deny first, then everything */
	assert_string_equal(decide(p, "agent-2", "10.1.2.3", 6, 443), "deny:block-internal");
	assert_string_equal(decide(p, "agent-2", "8.8.8.8", 17, 53), "allow:everything");
	/* unknown client: default */
	assert_string_equal(decide(p, "stranger", "203.0.113.5", 6, 443), "deny:default");
	policy_free(p);
}

static void test_default_allow(void **state)
{
	struct policy *p = load_ok("version: 1\ndefault_action: allow\n");
	(void)state;
	assert_string_equal(decide(p, "anyone", "192.0.2.1", 6, 80), "allow:default");
	policy_free(p);
	p = load_ok("version: 1\n");
	assert_int_equal(policy_default_action(p), POLICY_DENY); /* default deny */
	policy_free(p);
}

static void test_parse_errors_name_position_and_field(void **state)
{
	(void)state;
	load_bad("version: 2\n", "policy.yaml:1:10: version: \"2\" is not supported (expected 1)");
	load_bad("default_action: deny\n", "version: missing (expected version: 1)");
	load_bad("version: 1\ndefault_action: maybe\n", "policy.yaml:2:17: default_action: \"maybe\" is not an action");
	load_bad("version: 1\nclient: {}\n", "policy.yaml:2:1: client: unknown key (expected version, default_action, connectors, clients)");
	load_bad("version: 1\nclients:\n  a:\n    rule: []\n", "policy.yaml:4:5: clients.a: unknown key \"rule\" (expected rules)");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"10.0.0.1/24\"]\n",
		 "policy.yaml:7:24: clients.a.rules[0].destinations[0]: \"10.0.0.1/24\" has host bits set");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"10.0.0.0/8\", \"nonsense/8\"]\n",
		 "clients.a.rules[0].destinations[1]: \"nonsense/8\" is not an IPv4 or IPv6 CIDR");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"10.0.0.0/8\"]\n        ports: [\"80-70\"]\n",
		 "policy.yaml:8:17: clients.a.rules[0].ports[0]: \"80-70\" is not a port or a range lo-hi with lo <= hi <= 65535");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"10.0.0.0/8\"]\n        ports: [\"70000\"]\n",
		 "ports[0]: \"70000\" is not a port");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"10.0.0.0/8\"]\n        protocols: [sctp]\n",
		 "policy.yaml:8:21: clients.a.rules[0].protocols[0]: \"sctp\" is not a protocol (tcp, udp, icmp or any)");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"10.0.0.0/8\"]\n        protocols: [icmp]\n        ports: [\"80\"]\n",
		 "clients.a.rules[0]: ports apply only to tcp and udp");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n",
		 "policy.yaml:5:9: clients.a.rules[0]: missing key \"destinations\" (or \"connector\")");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - action: allow\n        destinations: [\"::/0\"]\n",
		 "clients.a.rules[0]: missing key \"id\"");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        destinations: [\"::/0\"]\n",
		 "missing key \"action\" (allow or deny)");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"::/0\"]\n        color: red\n",
		 "policy.yaml:8:9: clients.a.rules[0].color: unknown key");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n"
		 "      - {id: r1, action: allow, destinations: [\"::/0\"]}\n"
		 "      - {id: r1, action: deny, destinations: [\"::/0\"]}\n",
		 "clients.a.rules[1]: rule id \"r1\" is used twice in this client");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n"
		 "      - {id: r1, action: allow, destinations: [\"::/0\"], destinations: [\"::/0\"]}\n",
		 "policy.yaml:5:57: clients.a.rules[0].destinations: given twice (first at line 5)");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: [\"::/0\"]\n        id: r2\n",
		 "policy.yaml:8:9: clients.a.rules[0].id: given twice (first at line 5)");
	/* a client's rules given twice: the second list would replace the first */
	load_bad("version: 1\nclients:\n  a:\n    rules: []\n    rules: []\n",
		 "policy.yaml:5:5: clients.a.rules: given twice (first at line 4)");
	load_bad("version: 1\nclients:\n  a:\n    rules: []\n  a:\n    rules: []\n",
		 "clients: client \"a\" is listed twice");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: \"10.0.0.0/8\"\n",
		 "policy.yaml:7:23: clients.a.rules[0].destinations: expected a list, found a value");
	load_bad("version: 1\nclients:\n  a:\n    rules:\n      - id: r1\n        action: allow\n"
		 "        destinations: []\n",
		 "destinations: needs at least one CIDR");
	load_bad("version: 1\nclients:\n  \"has space\":\n    rules: []\n",
		 "clients.has space: \"has space\" is not a client ID");
	load_bad("- a\n- b\n", "policy.yaml:1:1: policy: expected a mapping, found a list");
	load_bad("", "the file is empty");
	/* a top-level key given twice: YAML keeps the last, the loader refuses */
	load_bad("version: 1\ndefault_action: deny\ndefault_action: allow\nclients: {}\n",
		 "policy.yaml:3:1: default_action: given twice (first at line 2)");
	load_bad("version: 1\nversion: 1\nclients: {}\n", "policy.yaml:2:1: version: given twice (first at line 1)");
	load_bad("version: 1\nclients: {}\nclients: {}\n", "policy.yaml:3:1: clients: given twice (first at line 2)");
	/* nothing to point at: no line:column of 0:0 */
	load_bad("# only a comment\n",
		 "policy.yaml: policy: the file is empty (expected version, default_action, clients)");
	load_bad("version: 1\nclients: {a: {rules: [}\n", "policy.yaml:2:");
}

static void test_load_file_errors(void **state)
{
	struct policy *p = NULL;
	(void)state;
	assert_int_equal(policy_load_file("/nonexistent/policy.yaml", &p, err, sizeof(err)), ZG_ERR_IO);
	assert_non_null(strstr(err, "/nonexistent/policy.yaml: cannot open: No such file or directory"));
	/* a directory opens: said as such, not as a file of LONG_MAX bytes */
	assert_int_equal(policy_load_file("examples", &p, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_string_equal(err, "examples: a directory, not a policy file");
	assert_null(p);
}

/* A regular file that opens but whose read() fails: sysfs answers EINVAL
 * for the speed of the loopback device. Where that is not so (no sysfs,
 * another kernel), the test is skipped. */
static const char read_fails[] = "/sys/class/net/lo/speed";

static int read_fails_here(void)
{
	struct stat st;
	char b[64];
	int fd = open(read_fails, O_RDONLY), r;

	if (fd < 0)
		return 0;
	r = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    read(fd, b, sizeof(b)) < 0;
	close(fd);
	return r;
}

/* A read error is an error, not the part read so far parsed as a policy
 * (before: an empty policy, "the file is empty", or rules cut short). */
static void test_load_file_read_error(void **state)
{
	struct policy *p = NULL;
	(void)state;
	if (!read_fails_here())
		skip();
	assert_int_equal(policy_load_file(read_fails, &p, err, sizeof(err)), ZG_ERR_IO);
	assert_string_equal(err, "/sys/class/net/lo/speed: cannot read: Invalid argument");
	assert_null(p);
}

/* The example shipped in examples/ (used by make demo and the README) loads
 * and means what its comments say. */
static void test_example_policy(void **state)
{
	struct policy *p = NULL;
	(void)state;
	assert_int_equal(policy_load_file("examples/policy.yaml", &p, err, sizeof(err)), 0);
	assert_string_equal(decide(p, "agent-1", "203.0.113.10", 6, 22), "deny:no-admin-ssh");
	assert_string_equal(decide(p, "agent-1", "203.0.113.10", 6, 443), "allow:allow-saas");
	assert_string_equal(decide(p, "agent-1", "198.51.100.53", 17, 53), "allow:allow-dns");
	assert_string_equal(decide(p, "agent-2", "10.1.1.1", 6, 443), "deny:block-internal");
	assert_string_equal(decide(p, "agent-2", "93.184.216.34", 6, 443), "allow:everything-else");
	assert_string_equal(routes_of(p, "agent-2"),
			    "0.0.0.0-9.255.255.255/0 11.0.0.0-192.167.255.255/0 192.169.0.0-255.255.255.255/0 "
			    "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0");
	policy_free(p);
}

static void test_alias_bomb_bounded(void **state)
{
	/* nested aliases: loaded as shared nodes, walked with a budget */
	static char text[4096];
	struct policy *p = NULL;
	size_t n = 0;
	(void)state;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "a0: &a0 [\"10.0.0.0/8\"]\n");
	for (int i = 1; i < 30; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d]\n",
				      i, i, i - 1, i - 1, i - 1, i - 1);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "version: 1\n");
	assert_int_equal(policy_load_buf("bomb.yaml", text, n, &p, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_null(p);
}

/* Formats routes as "v4 10.0.0.0-10.255.255.255 p0 ..." */
static const char *routes_of(const struct policy *p, const char *client)
{
	static char buf[4096];
	struct cip_route r[64];
	size_t n = 0, len = 0;
	assert_int_equal(policy_routes(p, client, r, 64, &n), 0);
	assert_int_equal(cip_routes_validate(r, n), 0);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char a[64], b[64];
		int af = r[i].version == 4 ? AF_INET : AF_INET6;
		inet_ntop(af, r[i].start, a, sizeof(a));
		inet_ntop(af, r[i].end, b, sizeof(b));
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s-%s/%u", i ? " " : "", a, b, r[i].proto);
	}
	return buf;
}

static void test_routes_split_tunnel(void **state)
{
	struct policy *p = load_ok(sample);
	(void)state;
	/* agent-1: tcp+udp SaaS ranges (proto 0), the icmp-only range with
	 * protocol 1, ordered by version, protocol, address (C07). no-ssh is
	 * port-restricted, so it carves no hole. */
	assert_string_equal(routes_of(p, "agent-1"),
			    "203.0.113.0-203.0.113.255/0 198.51.100.0-198.51.100.255/1 "
			    "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/0");
	policy_free(p);
}

static void test_routes_single_protocol_ranges(void **state)
{
	struct policy *p = load_ok(
		"version: 1\nclients:\n  a:\n    rules:\n"
		"      - {id: web, action: allow, destinations: [\"192.0.2.0/24\"], protocols: [tcp]}\n"
		"      - {id: dns, action: allow, destinations: [\"192.0.2.53/32\"], protocols: [udp]}\n"
		"      - {id: ping6, action: allow, destinations: [\"2001:db8::/64\"], protocols: [icmp]}\n");
	(void)state;
	assert_string_equal(routes_of(p, "a"),
			    "192.0.2.0-192.0.2.255/6 192.0.2.53-192.0.2.53/17 "
			    "2001:db8::-2001:db8::ffff:ffff:ffff:ffff/58");
	policy_free(p);
}

static void test_routes_deny_carves_holes(void **state)
{
	struct policy *p = load_ok(sample);
	(void)state;
	/* agent-2: everything except 10/8 */
	assert_string_equal(routes_of(p, "agent-2"),
			    "0.0.0.0-9.255.255.255/0 11.0.0.0-255.255.255.255/0 "
			    "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0");
	policy_free(p);
}

static void test_routes_full_tunnel_and_none(void **state)
{
	struct policy *p = load_ok("version: 1\ndefault_action: allow\n");
	(void)state;
	assert_string_equal(routes_of(p, "anyone"),
			    "0.0.0.0-255.255.255.255/0 ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0");
	policy_free(p);
	p = load_ok(sample);
	/* no rules for this client and default deny: nothing → 403 */
	assert_string_equal(routes_of(p, "stranger"), "");
	policy_free(p);
	p = load_ok("version: 1\nclients:\n  a:\n    rules:\n"
		    "      - {id: all, action: deny, destinations: [\"0.0.0.0/0\", \"::/0\"]}\n");
	assert_string_equal(routes_of(p, "a"), "");
	policy_free(p);
}

static void test_routes_overlapping_allows_merged(void **state)
{
	struct policy *p = load_ok(
		"version: 1\nclients:\n  a:\n    rules:\n"
		"      - {id: one, action: allow, destinations: [\"10.0.0.0/24\", \"10.0.1.0/24\"]}\n"
		"      - {id: two, action: allow, destinations: [\"10.0.0.128/25\"], protocols: [tcp]}\n"
		"      - {id: hole, action: deny, destinations: [\"10.0.5.0/24\"]}\n"
		"      - {id: late, action: allow, destinations: [\"10.0.4.0/22\"]}\n");
	(void)state;
	/* two is covered by one (proto 0) and disappears; late loses the
	 * hole an earlier deny made */
	assert_string_equal(routes_of(p, "a"),
			    "10.0.0.0-10.0.1.255/0 10.0.4.0-10.0.4.255/0 10.0.6.0-10.0.7.255/0");
	policy_free(p);
}

static void test_routes_too_many(void **state)
{
	struct policy *p = load_ok(sample);
	struct cip_route r[1];
	size_t n;
	(void)state;
	assert_int_equal(policy_routes(p, "agent-1", r, 1, &n), ZG_ERR_TOO_LARGE);
	policy_free(p);
}

static const char *names_policy =
	"version: 1\n"
	"clients:\n"
	"  a:\n"
	"    rules:\n"
	"      - { id: no-admin, action: deny, destinations: [admin.emr-vendor.example] }\n"
	"      - id: emr\n"
	"        action: allow\n"
	"        destinations: [\"Portal.Lab.Example.\", \"*.EMR-vendor.example\", \"203.0.113.0/24\"]\n"
	"        protocols: [tcp]\n"
	"        ports: [\"443\"]\n"
	"      - { id: lab-all, action: allow, destinations: [\"*.lab.example\", xn--bcher-kva.example] }\n"
	"  full:\n"
	"    rules:\n"
	"      - { id: deny-x, action: deny, destinations: [x.example] }\n"
	"      - { id: all, action: allow, destinations: [\"0.0.0.0/0\"] }\n"
	"      - { id: late, action: allow, destinations: [y.example] }\n";

static const char *name_verdict(const struct policy *p, const char *client, const char *name)
{
	static char buf[128];
	const char *rule = NULL;
	enum policy_action a = policy_eval_name(p, client, name, &rule);
	(void)snprintf(buf, sizeof(buf), "%s:%s", a == POLICY_ALLOW ? "allow" : "deny", rule);
	return buf;
}

static void test_names_exact_wildcard_first_match(void **state)
{
	struct policy *p = load_ok(names_policy);
	(void)state;
	assert_int_equal(policy_name_count(p), 7);
	assert_string_equal(name_verdict(p, "a", "portal.lab.example"), "allow:emr");
	assert_string_equal(name_verdict(p, "a", "PORTAL.lab.example."), "allow:emr");
	/* a wildcard covers names below it, not its apex */
	assert_string_equal(name_verdict(p, "a", "x.emr-vendor.example"), "allow:emr");
	assert_string_equal(name_verdict(p, "a", "a.b.c.emr-vendor.example"), "allow:emr");
	assert_string_equal(name_verdict(p, "a", "emr-vendor.example"), "deny:default");
	assert_string_equal(name_verdict(p, "a", "xemr-vendor.example"), "deny:default");
	/* the earlier deny wins */
	assert_string_equal(name_verdict(p, "a", "admin.emr-vendor.example"), "deny:no-admin");
	assert_string_equal(name_verdict(p, "a", "other.lab.example"), "allow:lab-all");
	assert_string_equal(name_verdict(p, "a", "lab.example"), "deny:default");
	assert_string_equal(name_verdict(p, "a", "xn--bcher-kva.example"), "allow:lab-all");
	/* a rule over a whole address family stands for every name, in order */
	assert_string_equal(name_verdict(p, "full", "x.example"), "deny:deny-x");
	assert_string_equal(name_verdict(p, "full", "anything.example"), "allow:all");
	assert_string_equal(name_verdict(p, "full", "y.example"), "allow:all");
	/* another client's names do not leak */
	assert_string_equal(name_verdict(p, "full", "portal.lab.example"), "allow:all");
	assert_string_equal(name_verdict(p, "stranger", "portal.lab.example"), "deny:default");
	/* bad query names are denied */
	assert_string_equal(name_verdict(p, "a", "bad..lab.example"), "deny:invalid");
	assert_string_equal(name_verdict(p, "a", ""), "deny:invalid");
	policy_free(p);
}

static void test_names_bound_flows(void **state)
{
	struct policy *p = load_ok(names_policy);
	struct policy_flow f = flow("192.0.2.9", 6, 443);
	struct policy_verdict v;
	(void)state;
	/* a name matches no address by itself */
	policy_eval(p, "a", &f, &v);
	assert_string_equal(v.rule_id, "default");
	/* bound to the name's rule, its protocols and ports still apply */
	policy_eval_bound(p, "a", &f, "emr", &v);
	assert_int_equal(v.action, POLICY_ALLOW);
	assert_string_equal(v.rule_id, "emr");
	f.dport = 80;
	policy_eval_bound(p, "a", &f, "emr", &v);
	assert_string_equal(v.rule_id, "default");
	/* a binding to a rule with no names (or unknown) changes nothing */
	f.dport = 443;
	policy_eval_bound(p, "full", &f, "deny-x", &v);
	assert_string_equal(v.rule_id, "deny-x");
	policy_eval_bound(p, "a", &f, "nope", &v);
	assert_string_equal(v.rule_id, "default");
	/* names add no static route */
	assert_string_equal(routes_of(p, "a"), "203.0.113.0-203.0.113.255/6");
	policy_free(p);
}

static void test_names_domains(void **state)
{
	struct policy *p = load_ok(names_policy);
	char d[8][POLICY_NAME_MAX];
	size_t n;
	(void)state;
	assert_int_equal(policy_client_domains(p, "a", d, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(d[0], "portal.lab.example");
	assert_string_equal(d[1], "emr-vendor.example");
	assert_string_equal(d[2], "lab.example");
	assert_string_equal(d[3], "xn--bcher-kva.example");
	assert_int_equal(policy_client_domains(p, "a", d, 3, &n), ZG_ERR_TOO_LARGE);
	assert_int_equal(policy_client_domains(p, "stranger", d, 8, &n), 0);
	assert_int_equal(n, 0);
	policy_free(p);
}

static void test_names_errors(void **state)
{
	const char *pre = "version: 1\nclients:\n  a:\n    rules:\n      - { id: r, action: allow, destinations: [";
	char t[1024];
	char long_label[80], long_name[300];
	(void)state;
#define BAD(dst, want)                                               \
	do {                                                         \
		(void)snprintf(t, sizeof(t), "%s%s] }\n", pre, dst); \
		load_bad(t, want);                                   \
	} while (0)
	BAD("\"b\xc3\xbc"
	    "cher.example\"",
	    "policy.yaml:5:48: clients.a.rules[0].destinations[0]: \"b\xc3\xbc"
	    "cher.example\" has non-ASCII "
	    "characters; write an internationalised name as IDNA A-labels (xn--...): expected a CIDR");
	BAD("\"a..example\"", "has an empty label");
	BAD("\"a.example..\"", "has an empty label"); /* found by fuzz_policy_yaml */
	BAD("\"a.*.example\"", "has '*' other than as a whole first label");
	BAD("\"*example\"", "has '*' other than");
	BAD("\"*\"", "has '*'");
	BAD("\"-a.example\"", "has a label starting with '-'");
	BAD("\"a-.example\"", "has a label ending in '-'");
	BAD("\"a b.example\"", "has a character other than letters");
	BAD("\"192.0.2.1\"", "\"192.0.2.1\" is an address: expected a CIDR (e.g. 192.0.2.1/32) or a name");
	BAD("\"2001:db8::1\"", "expected a CIDR (e.g. 2001:db8::1/128) or a name");
	BAD("\".\"", "is empty");
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	(void)snprintf(long_name, sizeof(long_name), "%s.example", long_label);
	BAD(long_name, "has a label longer than 63 bytes (RFC 1035)");
	for (size_t i = 0; i < 254; i += 2) {
		long_name[i] = 'a';
		long_name[i + 1] = '.';
	}
	long_name[254] = 'b';
	long_name[255] = '\0';
	BAD(long_name, "is longer than 253 bytes");
	/* 63-byte labels and 253 bytes are fine */
	long_label[63] = '\0';
	(void)snprintf(t, sizeof(t), "%s%s.example] }\n", pre, long_label);
	policy_free(load_ok(t));
	long_name[253] = '\0';
	(void)snprintf(t, sizeof(t), "%s%s] }\n", pre, long_name);
	policy_free(load_ok(t));
#undef BAD
}

/* issue 22: connectors: and connector rules. */
static const char conn_policy[] =
	"version: 1\n"
	"default_action: allow\n"
	"clients:\n"
	"  agent-1:\n"
	"    rules:\n"
	"      - {id: emr, action: allow, connector: hospital-a}\n"
	"      - {id: web, action: allow, destinations: [\"203.0.113.0/24\"]}\n"
	"  agent-2:\n"
	"    rules:\n"
	"      - {id: no-b, action: deny, connector: hospital-b}\n"
	"      - {id: yes-b, action: allow, connector: hospital-b}\n"
	"      - {id: yes-a, action: allow, connector: hospital-a}\n"
	"      - {id: yes-a2, action: allow, connector: hospital-a}\n"
	"connectors:\n"
	"  hospital-a:\n"
	"    prefixes: [\"10.20.0.0/16\", \"fd20::/48\"]\n"
	"  hospital-b:\n"
	"    prefixes: [\"192.168.7.0/24\"]\n";

static void test_connectors_parse_and_reach(void **state)
{
	struct policy *p = load_ok(conn_policy);
	struct cip_route rt[4];
	char ids[4][POLICY_ID_MAX];
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	const char *rule = NULL;
	size_t n = 99;

	(void)state;
	assert_int_equal(policy_connector_count(p), 2);
	assert_true(policy_has_connector(p, "hospital-a"));
	assert_false(policy_has_connector(p, "hospital-c"));
	assert_int_equal(policy_connector_prefixes(p, "hospital-a", rt, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rt[0].version, 4);
	inet_ntop(AF_INET, rt[0].start, a, sizeof(a));
	inet_ntop(AF_INET, rt[0].end, b, sizeof(b));
	assert_string_equal(a, "10.20.0.0");
	assert_string_equal(b, "10.20.255.255");
	assert_int_equal(rt[1].version, 6);
	inet_ntop(AF_INET6, rt[1].end, b, sizeof(b));
	assert_string_equal(b, "fd20::ffff:ffff:ffff:ffff:ffff");
	assert_int_equal(policy_connector_prefixes(p, "hospital-a", rt, 1, &n), ZG_ERR_TOO_LARGE);
	assert_int_equal(policy_connector_prefixes(p, "nope", rt, 4, &n), ZG_ERR_NOTFOUND);

	assert_int_equal(policy_client_may_reach_connector(p, "agent-1", "hospital-a", &rule),
			 POLICY_ALLOW);
	assert_string_equal(rule, "emr");
	/* no rule naming it: deny, even with default_action allow */
	assert_int_equal(policy_client_may_reach_connector(p, "agent-1", "hospital-b", &rule),
			 POLICY_DENY);
	assert_string_equal(rule, "default");
	assert_int_equal(policy_client_may_reach_connector(p, "stranger", "hospital-a", &rule),
			 POLICY_DENY);
	/* an earlier deny wins over a later allow */
	assert_int_equal(policy_client_may_reach_connector(p, "agent-2", "hospital-b", &rule),
			 POLICY_DENY);
	assert_string_equal(rule, "no-b");
	assert_int_equal(policy_client_may_reach_connector(p, "agent-2", "hospital-a", NULL),
			 POLICY_ALLOW);

	assert_int_equal(policy_client_connectors(p, "agent-1", ids, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "hospital-a");
	assert_int_equal(policy_client_connectors(p, "agent-2", ids, 4, &n), 0);
	assert_int_equal(n, 1); /* hospital-b denied first; hospital-a once */
	assert_string_equal(ids[0], "hospital-a");
	assert_int_equal(policy_client_connectors(p, "stranger", ids, 4, &n), 0);
	assert_int_equal(n, 0);
	policy_free(p);
}

static void test_connector_rules_match_no_flow(void **state)
{
	struct policy *p = load_ok("version: 1\n"
				   "connectors:\n  c1: {prefixes: [\"10.20.0.0/16\"]}\n"
				   "clients:\n  a:\n    rules:\n"
				   "      - {id: c, action: allow, connector: c1}\n");
	struct cip_route rt[4];
	size_t n = 99;

	(void)state;
	assert_string_equal(decide(p, "a", "10.20.0.1", 17, 443), "deny:default");
	assert_int_equal(policy_routes(p, "a", rt, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(policy_rule_count(p), 1);
	policy_free(p);
}

static void test_connector_errors(void **state)
{
	(void)state;
	load_bad("version: 1\nclients:\n  a:\n    rules:\n"
		 "      - {id: c, action: allow, connector: ghost}\n",
		 "policy.yaml:5:43: clients.a.rules[0].connector: connector \"ghost\" is not listed under connectors:");
	load_bad("version: 1\nconnectors:\n  c1: {prefixes: [\"10.0.0.0/8\"]}\nclients:\n  a:\n    rules:\n"
		 "      - {id: c, action: allow, connector: c1, ports: [\"443\"]}\n",
		 "policy.yaml:7:47: clients.a.rules[0]: \"ports\" does not go with \"connector\"");
	load_bad("version: 1\nconnectors:\n  c1: {prefixes: [\"10.0.0.0/8\"]}\nclients:\n  a:\n    rules:\n"
		 "      - {id: c, action: allow, destinations: [\"10.0.0.0/8\"], connector: c1}\n",
		 "\"destinations\" does not go with \"connector\"");
	load_bad("version: 1\nconnectors:\n  \"bad id\": {prefixes: [\"10.0.0.0/8\"]}\n",
		 "policy.yaml:3:3: connectors.bad id: \"bad id\" is not a connector ID");
	load_bad("version: 1\nconnectors:\n  c1: {prefixes: [\"10.0.0.1/8\"]}\n",
		 "policy.yaml:3:19: connectors.c1.prefixes[0]: \"10.0.0.1/8\" has host bits set");
	load_bad("version: 1\nconnectors:\n  c1: {prefixes: [\"x/8\"]}\n",
		 "connectors.c1.prefixes[0]: \"x/8\" is not an IPv4 or IPv6 CIDR");
	load_bad("version: 1\nconnectors:\n  c1: {prefixes: []}\n",
		 "connectors.c1.prefixes: needs at least one CIDR");
	load_bad("version: 1\nconnectors:\n  c1: {}\n",
		 "policy.yaml:3:7: connectors.c1: missing key \"prefixes\"");
	load_bad("version: 1\nconnectors:\n  c1: {prefix: []}\n",
		 "connectors.c1: unknown key \"prefix\" (expected prefixes)");
	load_bad("version: 1\nconnectors:\n  c1:\n    prefixes: [\"10.0.0.0/8\"]\n"
		 "    prefixes: [\"10.1.0.0/16\"]\n",
		 "policy.yaml:5:5: connectors.c1.prefixes: given twice (first at line 4)");
	load_bad("version: 1\nconnectors:\n  c1: {prefixes: [\"10.0.0.0/8\"]}\n"
		 "  c1: {prefixes: [\"10.0.0.0/8\"]}\n",
		 "connectors: connector \"c1\" is listed twice");
	load_bad("version: 1\nconnectors: []\n", "policy.yaml:2:13: connectors: expected a mapping");
	load_bad("version: 1\nconnectors:\n  c1: {prefixes: [\"10.0.0.0/8\"]}\nclients:\n  a:\n    rules:\n"
		 "      - {id: c, action: allow, connector: \"connector:c1\"}\n",
		 "\"connector:c1\" is not a connector ID");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_counts),
		cmocka_unit_test(test_eval_first_match_ports_protocols),
		cmocka_unit_test(test_default_allow),
		cmocka_unit_test(test_parse_errors_name_position_and_field),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_load_file_read_error),
		cmocka_unit_test(test_alias_bomb_bounded),
		cmocka_unit_test(test_example_policy),
		cmocka_unit_test(test_routes_split_tunnel),
		cmocka_unit_test(test_routes_single_protocol_ranges),
		cmocka_unit_test(test_routes_deny_carves_holes),
		cmocka_unit_test(test_routes_full_tunnel_and_none),
		cmocka_unit_test(test_routes_overlapping_allows_merged),
		cmocka_unit_test(test_routes_too_many),
		cmocka_unit_test(test_names_exact_wildcard_first_match),
		cmocka_unit_test(test_names_bound_flows),
		cmocka_unit_test(test_names_domains),
		cmocka_unit_test(test_names_errors),
		cmocka_unit_test(test_connectors_parse_and_reach),
		cmocka_unit_test(test_connector_rules_match_no_flow),
		cmocka_unit_test(test_connector_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
