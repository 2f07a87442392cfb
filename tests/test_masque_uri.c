/*
 * Unit tests for src/masque/uri: the URI template check (C01), expansion
 * and matching of the target and ipproto variables (C03).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "masque/uri.h"
#include "zg_err.h"

#define DEFAULT_TMPL "https://relay.example:4433/.well-known/masque/ip/{target}/{ipproto}/"
#define QUERY_TMPL "https://relay.example/ip{?target,ipproto}"

static char why[256];

/* ------------------------------------------------------------ helpers */

static struct uri_scope any(void)
{
	struct uri_scope s;
	memset(&s, 0, sizeof(s));
	s.any_target = 1;
	s.any_proto = 1;
	return s;
}

/* A literal or prefix target ("192.0.2.1", "2001:db8::/32"). */
static struct uri_scope addr(const char *a, unsigned len, int proto)
{
	struct uri_scope s = any();
	int v6 = strchr(a, ':') != NULL;
	s.any_target = 0;
	s.target.version = v6 ? 6 : 4;
	assert_int_equal(inet_pton(v6 ? AF_INET6 : AF_INET, a, s.target.addr), 1);
	s.target.prefix_len = (uint8_t)len;
	if (proto >= 0) {
		s.any_proto = 0;
		s.ipproto = (uint8_t)proto;
	}
	return s;
}

static struct uri_scope dns(const char *name, int proto)
{
	struct uri_scope s = any();
	s.any_target = 0;
	snprintf(s.dns, sizeof(s.dns), "%s", name);
	if (proto >= 0) {
		s.any_proto = 0;
		s.ipproto = (uint8_t)proto;
	}
	return s;
}

static void assert_scope_equal(const struct uri_scope *a, const struct uri_scope *b)
{
	assert_int_equal(a->any_target, b->any_target);
	assert_int_equal(a->any_proto, b->any_proto);
	if (!a->any_target) {
		assert_int_equal(a->target.version, b->target.version);
		assert_int_equal(a->target.prefix_len, b->target.prefix_len);
		assert_memory_equal(a->target.addr, b->target.addr, sizeof(a->target.addr));
		assert_string_equal(a->dns, b->dns);
	}
	if (!a->any_proto)
		assert_int_equal(a->ipproto, b->ipproto);
}

/* Expands s with tmpl, requires the path want, matches it back to s. */
static void roundtrip(const char *tmpl, const struct uri_scope *s, const char *want)
{
	char auth[128], path[512];
	struct uri_scope m;

	assert_int_equal(uri_expand(tmpl, s, auth, sizeof(auth), path, sizeof(path)), 0);
	if (want)
		assert_string_equal(path, want);
	memset(&m, 0xa5, sizeof(m));
	assert_int_equal(uri_match(tmpl, path, &m), 0);
	assert_scope_equal(s, &m);
}

/* Matches the default template with target and ipproto as sent. */
static int match_default(const char *target, const char *ipproto, struct uri_scope *s)
{
	char path[1024];
	int n = snprintf(path, sizeof(path), "/.well-known/masque/ip/%s/%s/", target, ipproto);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	return uri_match(DEFAULT_TMPL, path, s);
}

static void assert_target_rejected(const char *target)
{
	struct uri_scope s = any();
	s.ipproto = 77;
	if (match_default(target, "*", &s) != ZG_ERR_MALFORMED)
		fail_msg("target \"%s\" was accepted", target);
	assert_int_equal(s.ipproto, 77); /* *s untouched on error */
}

static void assert_proto_rejected(const char *proto)
{
	struct uri_scope s;
	if (match_default("*", proto, &s) != ZG_ERR_MALFORMED)
		fail_msg("ipproto \"%s\" was accepted", proto);
}

static void assert_tmpl_rejected(const char *tmpl, const char *msg)
{
	why[0] = '\0';
	if (uri_template_check(tmpl, why, sizeof(why)) != ZG_ERR_CONFIG)
		fail_msg("template \"%s\" was accepted", tmpl);
	if (msg && !strstr(why, msg))
		fail_msg("template \"%s\": \"%s\" does not say \"%s\"", tmpl, why, msg);
}

/* ------------------------------------------------------------ C01 */

static void test_c01_template_accepts_level3_forms(void **state)
{
	static const char *const ok[] = {
		DEFAULT_TMPL,
		QUERY_TMPL,
		"https://relay.example/.well-known/masque/ip/{target}/{ipproto}/",
		"https://relay.example:443/ip?t={target}&p={ipproto}",
		"https://relay.example/ip?v=1{&target,ipproto}",
		"https://relay.example/ip{/target,ipproto}",
		"https://relay.example/ip{/target}{/ipproto}/",
		"https://relay.example/ip{;target,ipproto}",
		"https://relay.example/ip/x{.target}/",
		"https://relay.example/ip/{target}/",
		"https://relay.example/ip{?ipproto}",
		"https://relay.example/ip/",
		"https://relay.example/",
		"https://192.0.2.1:4433/ip/{target}/{ipproto}/",
		"https://[2001:db8::1]:4433/ip/{target}/{ipproto}/",
		"https://[::1]/ip/{target}!{ipproto}",
		"https://relay.example/a%2Fb/{target}/{ipproto}/",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		why[0] = '\0';
		if (uri_template_check(ok[i], why, sizeof(why)) != 0)
			fail_msg("template \"%s\" refused: %s", ok[i], why);
	}
	/* err may be omitted */
	assert_int_equal(uri_template_check(DEFAULT_TMPL, NULL, 0), 0);
	assert_int_equal(uri_template_check("http://x/", NULL, 0), ZG_ERR_CONFIG);
	assert_int_equal(uri_template_check(NULL, why, sizeof(why)), ZG_ERR_INVAL);
}

static void test_c01_template_rejects_not_absolute_https(void **state)
{
	(void)state;
	assert_tmpl_rejected("http://relay.example/ip/{target}/{ipproto}/", "absolute https://");
	assert_tmpl_rejected("/.well-known/masque/ip/{target}/{ipproto}/", "absolute https://");
	assert_tmpl_rejected("HTTPS//relay.example/ip/", "absolute https://");
	assert_tmpl_rejected("", "absolute https://");
}

static void test_c01_template_rejects_missing_host_or_path(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example", "path starting with /");
	assert_tmpl_rejected("https:///ip/{target}/", "needs a host");
	assert_tmpl_rejected("https://relay.example?x={target}", "path starting with /");
	assert_tmpl_rejected("https://", "needs a host");
	assert_tmpl_rejected("https://:443/ip/", "needs a host");
}

static void test_c01_template_rejects_variable_in_authority(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://{target}.example/ip/", "not in the authority (offset 8)");
	assert_tmpl_rejected("https://relay.example:{ipproto}/ip/", "not in the authority");
	assert_tmpl_rejected("https://relay}.example/ip/", "not in the authority");
}

static void test_c01_template_rejects_bad_authority(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://user@relay.example/ip/", "userinfo");
	assert_tmpl_rejected("https://relay.example:0/ip/", "bad port");
	assert_tmpl_rejected("https://relay.example:65536/ip/", "bad port");
	assert_tmpl_rejected("https://relay.example:/ip/", "bad port");
	assert_tmpl_rejected("https://relay.example:443x/ip/", "bad port");
	assert_tmpl_rejected("https://relay.example:100000/ip/", "bad port");
	assert_tmpl_rejected("https://[2001:db8::1/ip/", "IPv6 literal");
	assert_tmpl_rejected("https://[]/ip/", "IPv6 literal");
	assert_tmpl_rejected("https://[relay.example]/ip/", "IPv6 literal");
	assert_tmpl_rejected("https://[::1]x/ip/", "not allowed in the host");
	assert_tmpl_rejected("https://relay example/ip/", "not allowed in the host");
	assert_tmpl_rejected("https://relay%41.example/ip/", "not allowed in the host");
	assert_int_equal(uri_template_check("https://relay.example:65535/ip/", why, sizeof(why)), 0);
	assert_int_equal(uri_template_check("https://relay.example:1/ip/", why, sizeof(why)), 0);
}

static void test_c01_template_rejects_plus_operator(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example/ip/{+target}/", "operator '+' at offset 25");
	assert_tmpl_rejected("https://relay.example/ip/{+ipproto}/", "operator '+'");
}

static void test_c01_template_rejects_hash_operator_and_fragment(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example/ip/{#target}/", "operator '#'");
	assert_tmpl_rejected("https://relay.example/ip/#frag", "fragment");
	assert_tmpl_rejected("https://relay.example/ip/{target}/{ipproto}/#", "fragment");
}

static void test_c01_template_rejects_reserved_operators(void **state)
{
	static const char *const bad[] = { "=", ",", "!", "@", "|" };
	char t[128];
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(t, sizeof(t), "https://relay.example/ip/{%starget}/", bad[i]);
		assert_tmpl_rejected(t, "reserved by RFC 6570");
	}
}

static void test_c01_template_rejects_level4_modifiers(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example/ip/{target:3}/", "level 4");
	assert_tmpl_rejected("https://relay.example/ip{?target*}", "level 4");
	assert_tmpl_rejected("https://relay.example/ip{/target*,ipproto}", "level 4");
}

static void test_c01_template_rejects_unknown_and_repeated_variables(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example/ip/{host}/", "unknown variable \"host\" at offset 26");
	assert_tmpl_rejected("https://relay.example/ip/{Target}/", "unknown variable \"Target\"");
	assert_tmpl_rejected("https://relay.example/ip{?target,port}", "unknown variable \"port\"");
	assert_tmpl_rejected("https://relay.example/ip/{target}/{target}/", "appear once");
	assert_tmpl_rejected("https://relay.example/ip{?target,target}", "appear once");
	assert_tmpl_rejected("https://relay.example/ip/{target}/{ipproto}/{ipproto}/", "appear once");
	assert_tmpl_rejected("https://relay.example/ip/{target}/{ipproto}/{target}/", "appear once");
	assert_tmpl_rejected("https://relay.example/ip/{}/", "empty expression");
	assert_tmpl_rejected("https://relay.example/ip/{?}/", "empty variable name");
	assert_tmpl_rejected("https://relay.example/ip{?target,}", "empty variable name");
	assert_tmpl_rejected("https://relay.example/ip{?,target}", "empty variable name");
}

static void test_c01_template_rejects_unbalanced_braces(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example/ip/{target", "unbalanced '{' at offset 25");
	assert_tmpl_rejected("https://relay.example/ip/{tar{get}/", "unbalanced '{'");
	assert_tmpl_rejected("https://relay.example/ip/target}/", "unbalanced '}' at offset 31");
	assert_tmpl_rejected("https://relay.example/ip/{target}}/", "unbalanced '}'");
}

static void test_c01_template_rejects_bad_characters(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example/ip /{target}/", "0x20 not allowed");
	assert_tmpl_rejected("https://relay.example/ip/<{target}>/", "0x3c");
	assert_tmpl_rejected("https://relay.example/ip/\"/", "0x22");
	assert_tmpl_rejected("https://relay.example/ip/\x7f/", "0x7f");
	assert_tmpl_rejected("https://relay.example/ip/\xc3\xa9/", "0xc3");
	assert_tmpl_rejected("https://relay.example/ip/%zz/", "percent-encoding");
	assert_tmpl_rejected("https://relay.example/ip/%4", "percent-encoding");
	assert_tmpl_rejected("https://relay.example/ip/%", "percent-encoding");
}

static void test_c01_template_rejects_ambiguous_matching(void **state)
{
	(void)state;
	assert_tmpl_rejected("https://relay.example/ip/{target}{ipproto}/", "ambiguous");
	assert_tmpl_rejected("https://relay.example/ip/{target}.{ipproto}/", "followed by '.'");
	assert_tmpl_rejected("https://relay.example/ip/{target}-x/", "followed by '-'");
	assert_tmpl_rejected("https://relay.example/ip/{target}%2F{ipproto}/", "followed by '%'");
	assert_tmpl_rejected("https://relay.example/ip/{target}:{ipproto}/", "followed by ':'");
	assert_tmpl_rejected("https://relay.example/ip/{target}*", "followed by '*'");
	assert_tmpl_rejected("https://relay.example/ip/{.target,ipproto}/", "ambiguous");
	assert_tmpl_rejected("https://relay.example/ip/{target}{.ipproto}/", "ambiguous");
	assert_tmpl_rejected("https://relay.example/ip/{target}{ipproto}", "followed by '{'");
}

/* uri_authority: host[:port] of the template, for :authority and dialing. */
static void test_c01_authority(void **state)
{
	char a[64];
	(void)state;
	assert_int_equal(uri_authority(DEFAULT_TMPL, a, sizeof(a)), 0);
	assert_string_equal(a, "relay.example:4433");
	assert_int_equal(uri_authority("https://[2001:db8::1]/ip/", a, sizeof(a)), 0);
	assert_string_equal(a, "[2001:db8::1]");
	assert_int_equal(uri_authority(DEFAULT_TMPL, a, 19), 0);
	assert_int_equal(uri_authority(DEFAULT_TMPL, a, 18), ZG_ERR_BUFSHORT);
	assert_string_equal(a, "");
	assert_int_equal(uri_authority(DEFAULT_TMPL, a, 0), ZG_ERR_BUFSHORT);
	assert_int_equal(uri_authority("http://relay.example/", a, sizeof(a)), ZG_ERR_CONFIG);
	assert_string_equal(a, "");
	assert_int_equal(uri_authority(NULL, a, sizeof(a)), ZG_ERR_INVAL);
	assert_int_equal(uri_authority(DEFAULT_TMPL, NULL, 8), ZG_ERR_INVAL);
}

/* ------------------------------------------------------------ C03 expand/match */

static void test_c03_roundtrip_any(void **state)
{
	struct uri_scope s = any();
	char a[64], p[128];
	(void)state;
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/*/*/");
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), 0);
	assert_string_equal(a, "relay.example:4433");
	roundtrip(QUERY_TMPL, &s, "/ip?target=*&ipproto=*");
}

static void test_c03_roundtrip_ipv4(void **state)
{
	struct uri_scope s = addr("192.0.2.1", 32, 17);
	(void)state;
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/192.0.2.1/17/");
	s = addr("0.0.0.0", 32, -1);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/0.0.0.0/*/");
}

static void test_c03_roundtrip_ipv6(void **state)
{
	struct uri_scope s = addr("2001:db8::42", 128, 6);
	(void)state;
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/2001%3Adb8%3A%3A42/6/");
	s = addr("::ffff:192.0.2.1", 128, -1);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/%3A%3Affff%3A192.0.2.1/*/");
	s = addr("::", 128, 58);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/%3A%3A/58/");
}

static void test_c03_roundtrip_prefix_ipv4(void **state)
{
	struct uri_scope s = addr("10.0.0.0", 8, 6);
	(void)state;
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/10.0.0.0%2F8/6/");
	s = addr("0.0.0.0", 0, -1);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/0.0.0.0%2F0/*/");
	s = addr("192.0.2.128", 31, -1);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/192.0.2.128%2F31/*/");
}

static void test_c03_roundtrip_prefix_ipv6(void **state)
{
	struct uri_scope s = addr("2001:db8::", 32, 17);
	(void)state;
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/2001%3Adb8%3A%3A%2F32/17/");
	s = addr("::", 0, -1);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/%3A%3A%2F0/*/");
	s = addr("2001:db8::2", 127, -1);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/2001%3Adb8%3A%3A2%2F127/*/");
}

static void test_c03_roundtrip_dns(void **state)
{
	char name[URI_DNS_MAX + 1];
	struct uri_scope s = dns("target.example.com", 6);
	(void)state;
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/target.example.com/6/");
	s = dns("localhost", -1);
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/localhost/*/");
	s = dns("Xn--Bcher-kva.EXAMPLE", -1); /* case is kept */
	roundtrip(DEFAULT_TMPL, &s, "/.well-known/masque/ip/Xn--Bcher-kva.EXAMPLE/*/");
	s = dns("1.2.3.4a", -1); /* last label not all digits: a name */
	roundtrip(DEFAULT_TMPL, &s, NULL);
	s = dns("a-b.c0", -1);
	roundtrip(DEFAULT_TMPL, &s, NULL);
	/* the longest name: 253 characters, labels of 63 */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[URI_DNS_MAX] = '\0';
	s = dns(name, 1);
	roundtrip(DEFAULT_TMPL, &s, NULL);
	roundtrip(QUERY_TMPL, &s, NULL);
}

static void test_c03_roundtrip_ipproto_values(void **state)
{
	static const int protos[] = { 0, 1, 6, 9, 10, 17, 58, 99, 100, 254, 255 };
	char want[64];
	(void)state;
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		struct uri_scope s = any();
		s.any_proto = 0;
		s.ipproto = (uint8_t)protos[i];
		snprintf(want, sizeof(want), "/.well-known/masque/ip/*/%d/", protos[i]);
		roundtrip(DEFAULT_TMPL, &s, want);
	}
}

static void test_c03_query_forms(void **state)
{
	struct uri_scope s = addr("2001:db8::", 32, 17), m;
	(void)state;
	roundtrip(QUERY_TMPL, &s, "/ip?target=2001%3Adb8%3A%3A%2F32&ipproto=17");
	roundtrip("https://relay.example/ip?v=1{&target,ipproto}", &s,
		  "/ip?v=1&target=2001%3Adb8%3A%3A%2F32&ipproto=17");
	roundtrip("https://relay.example:443/ip?t={target}&p={ipproto}", &s,
		  "/ip?t=2001%3Adb8%3A%3A%2F32&p=17");
	roundtrip("https://relay.example/ip{;target,ipproto}", &s,
		  "/ip;target=2001%3Adb8%3A%3A%2F32;ipproto=17");
	roundtrip("https://relay.example/ip{/target,ipproto}", &s,
		  "/ip/2001%3Adb8%3A%3A%2F32/17");
	roundtrip("https://relay.example/ip/x{.target}/{ipproto}", &s,
		  "/ip/x.2001%3Adb8%3A%3A%2F32/17");
	s = dns("example.net", -1);
	roundtrip("https://relay.example/ip{/target}{?ipproto}", &s, "/ip/example.net?ipproto=*");
	/* the query must be as the template says: names, order, nothing extra */
	assert_int_equal(uri_match(QUERY_TMPL, "/ip?ipproto=6&target=*", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip?target=*", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip?target=*&ipproto=6&x=1", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip?target&ipproto=6", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip?target=&ipproto=6", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip?targe=*&ipproto=6", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip&target=*&ipproto=6", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip", &m), ZG_ERR_MALFORMED);
	assert_int_equal(uri_match(QUERY_TMPL, "/ip?target=*&ipproto=6", &m), 0);
	assert_int_equal(m.ipproto, 6);
}

/* A variable the template does not have is "*". */
static void test_c03_missing_variable_is_any(void **state)
{
	struct uri_scope s;
	char a[64], p[128];
	(void)state;
	assert_int_equal(uri_match("https://relay.example/ip/{target}/", "/ip/192.0.2.1/", &s), 0);
	assert_false(s.any_target);
	assert_int_equal(s.target.version, 4);
	assert_true(s.any_proto);
	assert_int_equal(uri_match("https://relay.example/ip{?ipproto}", "/ip?ipproto=1", &s), 0);
	assert_true(s.any_target);
	assert_int_equal(s.target.version, 0);
	assert_false(s.any_proto);
	assert_int_equal(s.ipproto, 1);
	assert_int_equal(uri_match("https://relay.example/ip/", "/ip/", &s), 0);
	assert_true(s.any_target && s.any_proto);
	/* expanding writes only what the template has */
	s = addr("192.0.2.1", 32, 6);
	assert_int_equal(uri_expand("https://relay.example/ip/{target}/", &s, a, sizeof(a), p, sizeof(p)), 0);
	assert_string_equal(p, "/ip/192.0.2.1/");
	assert_int_equal(uri_expand("https://relay.example/ip/", &s, a, sizeof(a), p, sizeof(p)), 0);
	assert_string_equal(p, "/ip/");
}

static void test_c03_match_decodes_percent(void **state)
{
	struct uri_scope s, want = addr("2001:db8::", 32, -1);
	(void)state;
	assert_int_equal(match_default("2001%3adb8%3a%3a%2f32", "*", &s), 0);
	assert_scope_equal(&want, &s);
	assert_int_equal(match_default("2001:db8::%2F32", "*", &s), 0); /* raw ':' */
	assert_scope_equal(&want, &s);
	assert_int_equal(match_default("%2A", "%2a", &s), 0);
	assert_true(s.any_target && s.any_proto);
	assert_int_equal(match_default("%31%39%32.0.2.1", "%36", &s), 0);
	want = addr("192.0.2.1", 32, 6);
	assert_scope_equal(&want, &s);
	/* a literal with an explicit full length is the literal */
	assert_int_equal(match_default("192.0.2.1%2F32", "6", &s), 0);
	assert_scope_equal(&want, &s);
	assert_int_equal(match_default("example%2Ecom", "6", &s), 0);
	assert_string_equal(s.dns, "example.com");
	assert_int_equal(s.target.version, 0);
}

static void test_c03_prefix_host_bits(void **state)
{
	(void)state;
	assert_target_rejected("10.0.0.1%2F8");
	assert_target_rejected("192.0.2.129%2F25");
	assert_target_rejected("192.0.2.1%2F31");
	assert_target_rejected("2001%3Adb8%3A%3A1%2F32");
	assert_target_rejected("2001%3Adb8%3A%3A1%2F127");
	assert_target_rejected("%3A%3A1%2F0");
	assert_target_rejected("1.0.0.0%2F0");
}

static void test_c03_prefix_length_bounds(void **state)
{
	struct uri_scope s;
	(void)state;
	assert_target_rejected("10.0.0.0%2F33");
	assert_target_rejected("%3A%3A%2F129");
	assert_target_rejected("10.0.0.0%2F256");
	assert_target_rejected("10.0.0.0%2F1000");
	assert_target_rejected("10.0.0.0%2F08");
	assert_target_rejected("10.0.0.0%2F00");
	assert_target_rejected("10.0.0.0%2F");
	assert_target_rejected("10.0.0.0%2F-8");
	assert_target_rejected("10.0.0.0%2F%2B8");
	assert_target_rejected("10.0.0.0%2F8%2F8");
	assert_target_rejected("10.0.0.0%2F8%20");
	assert_target_rejected("%2F8");
	assert_target_rejected("example.com%2F8");
	assert_target_rejected("10.0.0.0/8"); /* a raw '/' is a segment break */
	assert_int_equal(match_default("%3A%3A%2F128", "*", &s), 0);
	assert_int_equal(s.target.prefix_len, 128);
	assert_int_equal(match_default("10.0.0.0%2F0", "*", &s), ZG_ERR_MALFORMED);
	assert_int_equal(match_default("0.0.0.0%2F0", "*", &s), 0);
	assert_int_equal(s.target.prefix_len, 0);
}

static void test_c03_target_rejects_bad_literals(void **state)
{
	(void)state;
	assert_target_rejected("");
	assert_target_rejected("**");
	assert_target_rejected("%2A%2A");
	assert_target_rejected("1.2.3");
	assert_target_rejected("256.1.1.1");
	assert_target_rejected("10.0.0.256");
	assert_target_rejected("010.0.0.1");
	assert_target_rejected("1.2.3.4.5");
	assert_target_rejected("2001%3Adb8%3A%3Ag");
	assert_target_rejected("2001%3Adb8");
	assert_target_rejected("1%3A2%3A3%3A4%3A5%3A6%3A7%3A8%3A9");
	assert_target_rejected("fe80%3A%3A1%25eth0"); /* zone ids are not supported */
	assert_target_rejected("[%3A%3A1]");
	assert_target_rejected("%5B%3A%3A1%5D");
	assert_target_rejected("%00");
	assert_target_rejected("a%00b");
	assert_target_rejected("%zz");
	assert_target_rejected("%4");
	assert_target_rejected("abc%");
	assert_target_rejected("%20192.0.2.1");
}

static void test_c03_target_rejects_bad_dns_names(void **state)
{
	struct uri_scope s;
	char name[400];
	(void)state;
	assert_target_rejected("-a.example");
	assert_target_rejected("a-.example");
	assert_target_rejected("a.-example");
	assert_target_rejected("a..example");
	assert_target_rejected(".example");
	assert_target_rejected("example.com.");
	assert_target_rejected("a_b.example");
	assert_target_rejected("a~b.example");
	assert_target_rejected("a%2Cb.example");
	assert_target_rejected("a%C3%A9.example");
	assert_target_rejected("example.123");
	/* a 64-character label; 63 is fine */
	memset(name, 'a', 64);
	memcpy(name + 64, ".example", sizeof(".example"));
	assert_target_rejected(name);
	memcpy(name + 63, ".example", sizeof(".example"));
	assert_int_equal(match_default(name, "*", &s), 0);
	assert_int_equal(strlen(s.dns), 63 + 8);
	/* 254 characters */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[254] = '\0';
	assert_target_rejected(name);
	/* longer than any value: stops early */
	memset(name, 'a', sizeof(name));
	name[sizeof(name) - 1] = '\0';
	assert_target_rejected(name);
}

static void test_c03_ipproto_rejects(void **state)
{
	struct uri_scope s;
	(void)state;
	assert_proto_rejected("256");
	assert_proto_rejected("999");
	assert_proto_rejected("1000");
	assert_proto_rejected("0006");
	assert_proto_rejected("06");
	assert_proto_rejected("00");
	assert_proto_rejected("-1");
	assert_proto_rejected("%2B6");
	assert_proto_rejected("%206");
	assert_proto_rejected("6%20");
	assert_proto_rejected("6a");
	assert_proto_rejected("0x6");
	assert_proto_rejected("tcp");
	assert_proto_rejected("**");
	assert_proto_rejected("%00");
	assert_int_equal(match_default("*", "", &s), ZG_ERR_MALFORMED);
	assert_int_equal(match_default("*", "0", &s), 0);
	assert_int_equal(s.ipproto, 0);
	assert_false(s.any_proto);
	assert_int_equal(match_default("*", "255", &s), 0);
	assert_int_equal(s.ipproto, 255);
}

static void test_c03_match_rejects_path_not_fitting(void **state)
{
	struct uri_scope s;
	(void)state;
	static const char *const bad[] = {
		"",
		"/",
		"/.well-known/masque/ip/*/*",
		"/.well-known/masque/ip/*/*/x",
		"/.well-known/masque/ip/*/*//",
		"/.well-known/masque/ip/*/*/?x=1",
		"/.well-known/masque/ip/*/",
		"/.well-known/masque/ip/*",
		"/.well-known/masque/ip/",
		"/.well-known/masque/ip//*/",
		"/.well-known/masque/ip/*//",
		"/.well-known/masque/IP/*/*/",
		"/.well-known/masque/ip/*/*/*/",
		"/.well-known/masque/ip/*/6;x/",
		"/.well-known/masque/ip/*/*/#",
		"/.well-known/masque/ip/*%2F*/*/",
		"/.well-known/masque/ip/*/%2F/",
		"https://relay.example:4433/.well-known/masque/ip/*/*/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (uri_match(DEFAULT_TMPL, bad[i], &s) != ZG_ERR_MALFORMED)
			fail_msg("path \"%s\" was accepted", bad[i]);
}

static void test_c03_match_bad_template_or_args(void **state)
{
	struct uri_scope s;
	(void)state;
	assert_int_equal(uri_match("https://relay.example/ip/{+target}/", "/ip/*/", &s), ZG_ERR_CONFIG);
	assert_int_equal(uri_match(NULL, "/", &s), ZG_ERR_INVAL);
	assert_int_equal(uri_match(DEFAULT_TMPL, NULL, &s), ZG_ERR_INVAL);
	assert_int_equal(uri_match(DEFAULT_TMPL, "/.well-known/masque/ip/*/*/", NULL), ZG_ERR_INVAL);
}

static void test_c03_expand_buffer_too_short(void **state)
{
	struct uri_scope s = addr("2001:db8::", 32, 17);
	char a[64], p[128];
	size_t need;
	(void)state;
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), 0);
	need = strlen(p) + 1;
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, need), 0);
	for (size_t n = 0; n < need; n++) {
		memset(p, 'z', sizeof(p));
		memset(a, 'z', sizeof(a));
		assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, n), ZG_ERR_BUFSHORT);
		if (n) {
			assert_string_equal(p, "");
			assert_string_equal(a, "");
		}
		assert_int_equal(p[n], 'z'); /* nothing written past the size */
	}
	/* authority: "relay.example:4433" needs 19 */
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, 19, p, sizeof(p)), 0);
	memset(a, 'z', sizeof(a));
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, 18, p, sizeof(p)), ZG_ERR_BUFSHORT);
	assert_string_equal(a, "");
	assert_string_equal(p, "");
	assert_int_equal(a[18], 'z');
}

static void test_c03_expand_rejects_bad_scope(void **state)
{
	struct uri_scope s;
	char a[64], p[512];
	(void)state;
	s = addr("10.0.0.1", 8, -1); /* host bits */
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = addr("10.0.0.0", 33, -1);
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = addr("::", 129, -1);
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = addr("10.0.0.0", 8, -1);
	s.target.version = 5;
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = addr("10.0.0.0", 8, -1);
	s.target.addr[4] = 1; /* beyond an IPv4 address */
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = addr("10.0.0.0", 8, -1);
	snprintf(s.dns, sizeof(s.dns), "example.com"); /* both */
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = dns("", -1); /* neither */
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = dns("bad name", -1);
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = dns("a/b", -1);
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	s = dns("", -1);
	memset(s.dns, 'a', sizeof(s.dns)); /* not terminated */
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	assert_string_equal(p, "");
	/* a bad template is reported before the scope */
	assert_int_equal(uri_expand("https://x/{+target}", &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_CONFIG);
	assert_int_equal(uri_expand(NULL, &s, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	assert_int_equal(uri_expand(DEFAULT_TMPL, NULL, a, sizeof(a), p, sizeof(p)), ZG_ERR_INVAL);
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, NULL, 1, p, sizeof(p)), ZG_ERR_INVAL);
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), NULL, 1), ZG_ERR_INVAL);
	/* "*" ignores the rest of the target; so does any_proto */
	s = addr("10.0.0.1", 8, 44);
	s.any_target = 1;
	s.any_proto = 1;
	assert_int_equal(uri_expand(DEFAULT_TMPL, &s, a, sizeof(a), p, sizeof(p)), 0);
	assert_string_equal(p, "/.well-known/masque/ip/*/*/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c01_template_accepts_level3_forms),
		cmocka_unit_test(test_c01_template_rejects_not_absolute_https),
		cmocka_unit_test(test_c01_template_rejects_missing_host_or_path),
		cmocka_unit_test(test_c01_template_rejects_variable_in_authority),
		cmocka_unit_test(test_c01_template_rejects_bad_authority),
		cmocka_unit_test(test_c01_template_rejects_plus_operator),
		cmocka_unit_test(test_c01_template_rejects_hash_operator_and_fragment),
		cmocka_unit_test(test_c01_template_rejects_reserved_operators),
		cmocka_unit_test(test_c01_template_rejects_level4_modifiers),
		cmocka_unit_test(test_c01_template_rejects_unknown_and_repeated_variables),
		cmocka_unit_test(test_c01_template_rejects_unbalanced_braces),
		cmocka_unit_test(test_c01_template_rejects_bad_characters),
		cmocka_unit_test(test_c01_template_rejects_ambiguous_matching),
		cmocka_unit_test(test_c01_authority),
		cmocka_unit_test(test_c03_roundtrip_any),
		cmocka_unit_test(test_c03_roundtrip_ipv4),
		cmocka_unit_test(test_c03_roundtrip_ipv6),
		cmocka_unit_test(test_c03_roundtrip_prefix_ipv4),
		cmocka_unit_test(test_c03_roundtrip_prefix_ipv6),
		cmocka_unit_test(test_c03_roundtrip_dns),
		cmocka_unit_test(test_c03_roundtrip_ipproto_values),
		cmocka_unit_test(test_c03_query_forms),
		cmocka_unit_test(test_c03_missing_variable_is_any),
		cmocka_unit_test(test_c03_match_decodes_percent),
		cmocka_unit_test(test_c03_prefix_host_bits),
		cmocka_unit_test(test_c03_prefix_length_bounds),
		cmocka_unit_test(test_c03_target_rejects_bad_literals),
		cmocka_unit_test(test_c03_target_rejects_bad_dns_names),
		cmocka_unit_test(test_c03_ipproto_rejects),
		cmocka_unit_test(test_c03_match_rejects_path_not_fitting),
		cmocka_unit_test(test_c03_match_bad_template_or_args),
		cmocka_unit_test(test_c03_expand_buffer_too_short),
		cmocka_unit_test(test_c03_expand_rejects_bad_scope),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
