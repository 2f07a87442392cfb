/* Unit tests for src/agent/relaylist: the relay list's entries and the
 * errors that name them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/relaylist.h"
#include "zg_err.h"

static char err[512];

static void assert_err(const char *want)
{
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void test_entries(void **state)
{
	struct relay_entry e;

	(void)state;
	assert_int_equal(relaylist_parse_entry("relay.example.com:443", &e, err, sizeof(err)), 0);
	assert_string_equal(e.host, "relay.example.com");
	assert_int_equal(e.port, 443);
	assert_string_equal(e.name, "");
	assert_string_equal(e.addr, "relay.example.com:443");
	assert_int_equal(relaylist_parse_entry("192.0.2.1:4433", &e, err, sizeof(err)), 0);
	assert_string_equal(e.host, "192.0.2.1");
	assert_int_equal(e.port, 4433);
	assert_int_equal(relaylist_parse_entry("[2001:db8::1]:443", &e, err, sizeof(err)), 0);
	assert_string_equal(e.host, "2001:db8::1");
	assert_string_equal(e.addr, "[2001:db8::1]:443");
	assert_int_equal(relaylist_parse_entry("relay-b.example@[2001:db8::2]:65535", &e, err,
					       sizeof(err)),
			 0);
	assert_string_equal(e.name, "relay-b.example");
	assert_string_equal(e.host, "2001:db8::2");
	assert_int_equal(e.port, 65535);
	assert_string_equal(e.addr, "[2001:db8::2]:65535");
	assert_string_equal(e.text, "relay-b.example@[2001:db8::2]:65535");
}

static void test_bad_entries(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "relay.example.com", "is not [NAME@]HOST:PORT" },
		{ ":443", "is not [NAME@]HOST:PORT" },
		{ "r:", "is not [NAME@]HOST:PORT" },
		{ "r:65536", "is not [NAME@]HOST:PORT" },
		{ "r:0", "port 0" },
		{ "r:44x", "is not [NAME@]HOST:PORT" },
		{ "2001:db8::1:443", "an IPv6 address goes in brackets" },
		{ "[2001:db8::1:443", "is not [NAME@]HOST:PORT" },
		{ "[relay.example]:443", "\"relay.example\" is not an IPv6 address" },
		{ "[]:443", "is not [NAME@]HOST:PORT" },
		{ "re lay:443", "is not a host name or an IPv4 address" },
		{ "relay..example:443", "is not a host name" },
		{ "@r:443", "is not [NAME@]HOST:PORT" },
		{ "a@b@r:443", "is not [NAME@]HOST:PORT" },
		{ "bad/name@r:443", "\"bad/name\" before '@' is not a host name" },
	};
	struct relay_entry e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (relaylist_parse_entry(bad[i].text, &e, err, sizeof(err)) != ZG_ERR_CONFIG)
			fail_msg("\"%s\" accepted", bad[i].text);
		assert_err(bad[i].why);
	}
}

static void test_list(void **state)
{
	static struct relaylist l;
	char buf[256], many[2048] = "";

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, "a.example:443, b.example:443\t[::1]:1", "--relay", err,
				       sizeof(err)),
			 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.e[2].host, "::1");
	assert_string_equal(relaylist_format(&l, buf, sizeof(buf)),
			    "a.example:443, b.example:443, [::1]:1");
	/* appending continues the numbering, duplicates name the first */
	assert_int_equal(relaylist_add(&l, "c:1,b.example:443", "f.yaml:2:1: relay", err,
				       sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_err("f.yaml:2:1: relay: entry 5 \"b.example:443\" repeats entry 2");
	/* the same address under another name is another entry */
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, "x@r:1,y@r:1", "t", err, sizeof(err)), 0);
	assert_int_equal(l.n, 2);
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, "a:1,,b", "--relay", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("--relay: entry 2 \"b\" is not [NAME@]HOST:PORT");
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, ",", "--relay", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("--relay: no relay in \",\"");
	/* bounded */
	for (int i = 0; i <= RELAYLIST_MAX; i++) {
		size_t n = strlen(many);

		(void)snprintf(many + n, sizeof(many) - n, "r%d:1,", i);
	}
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, many, "--relay", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("--relay: more than 16 relays");
	memset(many, 'a', 400);
	memcpy(many + 400, ":1", 3);
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, many, "--relay", err, sizeof(err)), ZG_ERR_CONFIG);
	assert_err("--relay: entry 1 \"aaaa");
	assert_err("is longer than 299 characters");
	/* format truncates cleanly */
	memset(&l, 0, sizeof(l));
	assert_int_equal(relaylist_add(&l, "a.example:443,b.example:443", "t", err, sizeof(err)), 0);
	assert_string_equal(relaylist_format(&l, buf, 20), "a.example:443");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
