/*
 * test_conn_tls.c — zgate-connector's TLS material (conn_tls.h), on the
 * test PKI: a load gives both contexts and the certificate's serial; a
 * reload from a bad file (key that does not match, an expired or not yet
 * valid certificate, no PEM, a missing CA) keeps the material in force and
 * names the file; a good one replaces both contexts while a connection
 * made from the old ones keeps them (this runs under ASan too); a
 * certificate that does not name a connector is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "connector/conn_tls.h"
#include "zg_err.h"
#include "pki.h"

/* Signs name.crt/.key with the test CA: subject subj, both EKUs, and
 * with san (e.g. "URI:connector:x") a subjectAltName. */
static void sign(const char *name, const char *subj, const char *san)
{
	char cmd[2048], ext[128] = "";

	if (san != NULL)
		snprintf(ext, sizeof(ext), "subjectAltName=%s\\n", san);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl ecparam -name prime256v1 -genkey -noout -out %s.key 2>/dev/null && "
		 "openssl req -new -key %s.key -subj '%s' -out %s.csr 2>/dev/null && "
		 "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
		 "extendedKeyUsage=serverAuth,clientAuth\\n%s' > %s.ext && "
		 "openssl x509 -req -in %s.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
		 "-extfile %s.ext -out %s.crt 2>/dev/null",
		 pki_dir, name, name, subj, name, ext, name, name, name, name);
	assert_int_equal(system(cmd), 0);
}

/* CN connector:<id>, both EKUs, as gen-certs.sh --connector makes them. */
static void sign_connector(const char *name, const char *id)
{
	char subj[128];

	snprintf(subj, sizeof(subj), "/CN=connector:%s", id);
	sign(name, subj, NULL);
}

static void set(struct conn_config *cfg, const char *cert, const char *key, const char *ca)
{
	snprintf(cfg->cert, sizeof(cfg->cert), "%s", f(cert));
	snprintf(cfg->key, sizeof(cfg->key), "%s", f(key));
	snprintf(cfg->ca, sizeof(cfg->ca), "%s", f(ca));
}

static void test_load_and_reload(void **state)
{
	static struct conn_config cfg;
	struct conn_tls t;
	WOLFSSL_CTX *c0, *s0;
	WOLFSSL *old_client, *old_server;
	char serial_a[TLS_SERIAL_HEX_MAX], err[512];
	int64_t now;
	const char *files[3];

	(void)state;
	memset(&t, 0, sizeof(t));
	conn_config_defaults(&cfg);
	sign_connector("conn-a", "hosp-a");
	sign_connector("conn-b", "hosp-a");
	now = (int64_t)time(NULL); /* not before the certificates' notBefore */
	set(&cfg, "conn-a.crt", "conn-a.key", "ca.crt");
	assert_int_equal(conn_tls_files(&cfg, files), 3);
	assert_string_equal(files[0], cfg.cert);
	assert_string_equal(files[1], cfg.key);
	assert_string_equal(files[2], cfg.ca);

	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), 0);
	assert_non_null(t.client);
	assert_non_null(t.server);
	assert_int_equal(t.loads, 1);
	assert_true(t.cert.serial[0] != '\0');
	assert_true(t.cert.not_after > now);
	snprintf(serial_a, sizeof(serial_a), "%s", t.cert.serial);
	c0 = t.client;
	s0 = t.server;
	/* connections made from the material in force */
	old_client = wolfSSL_new(c0);
	old_server = wolfSSL_new(s0);
	assert_non_null(old_client);
	assert_non_null(old_server);

	/* each bad file: nothing changes, the error names the file */
	set(&cfg, "conn-a.crt", "conn-b.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "conn-b.key does not match certificate"));
	set(&cfg, "expired.crt", "expired.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "expired.crt expired on "));
	set(&cfg, "notyet.crt", "notyet.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "notyet.crt is not valid before "));
	/* the new certificate is fine, but not for long: a clock past it */
	set(&cfg, "conn-b.crt", "conn-b.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, now + 3 * 86400, err, sizeof(err)),
			 ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "conn-b.crt expired on "));
	set(&cfg, "conn-b.key", "conn-b.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "conn-b.key: not a PEM certificate"));
	set(&cfg, "conn-b.crt", "conn-b.key", "missing-ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "missing-ca.crt"));
	set(&cfg, "conn-b.crt", "conn-b.key", "conn-b.key");
	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), ZG_ERR_CONFIG);
	assert_non_null(strstr(err, "conn-b.key: no usable PEM CA certificate"));
	assert_ptr_equal(t.client, c0);
	assert_ptr_equal(t.server, s0);
	assert_string_equal(t.cert.serial, serial_a);
	assert_int_equal(t.loads, 1);

	/* the rotated certificate: both contexts new, the serial follows */
	set(&cfg, "conn-b.crt", "conn-b.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, now, err, sizeof(err)), 0);
	assert_ptr_not_equal(t.client, c0);
	assert_ptr_not_equal(t.server, s0);
	assert_string_not_equal(t.cert.serial, serial_a);
	assert_int_equal(t.loads, 2);
	/* the open connections keep the old contexts: released with them */
	assert_ptr_equal(wolfSSL_get_SSL_CTX(old_client), c0);
	assert_ptr_equal(wolfSSL_get_SSL_CTX(old_server), s0);
	wolfSSL_free(old_client);
	wolfSSL_free(old_server);
	conn_tls_free(&t);
	assert_null(t.client);
	assert_null(t.server);
	conn_tls_free(&t); /* twice is harmless */
}

/* expects conn_tls_load of cert (its own key) to refuse with an error
 * holding want, t unchanged */
static void refused(struct conn_tls *t, struct conn_config *cfg, const char *name,
		    const char *want)
{
	char crt[64], key[64], err[1024];
	WOLFSSL_CTX *c = t->client;
	uint64_t loads = t->loads;

	snprintf(crt, sizeof(crt), "%s.crt", name);
	snprintf(key, sizeof(key), "%s.key", name);
	set(cfg, crt, key, "ca.crt");
	assert_int_equal(conn_tls_load(t, cfg, (int64_t)time(NULL), err, sizeof(err)),
			 ZG_ERR_CONFIG);
	if (strstr(err, want) == NULL)
		fail_msg("%s: \"%s\" lacks \"%s\"", name, err, want);
	assert_ptr_equal(t->client, c);
	assert_int_equal(t->loads, loads);
}

/* The relay treats a client as a connector only when its identity is
 * connector:<ID> (the CN; the SAN URI with tls.identity san_uri), and
 * agents check the CN: a certificate that is not a connector's is refused
 * at start, by --check-config and by a reload, and one whose SAN URI
 * names something else is taken with a warning (right for a cn relay). */
static void test_identity(void **state)
{
	static struct conn_config cfg;
	struct conn_tls t;
	char err[1024], want[1200];

	(void)state;
	memset(&t, 0, sizeof(t));
	conn_config_defaults(&cfg);
	sign_connector("conn-id", "hosp-a");
	set(&cfg, "conn-id.crt", "conn-id.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, (int64_t)time(NULL), err, sizeof(err)), 0);
	assert_string_equal(t.id, "connector:hosp-a");
	assert_string_equal(t.warning, "");

	/* an agent's certificate (gen-certs.sh -c agent-1) */
	snprintf(want, sizeof(want),
		 "cert %s: identity \"agent-1\" is not connector:<id>; the relay treats this "
		 "client as an agent",
		 f("agent-1.crt"));
	refused(&t, &cfg, "agent-1", want);
	sign("conn-empty", "/CN=connector:", NULL);
	refused(&t, &cfg, "conn-empty", "identity \"connector:\" is not connector:<id>");
	sign("conn-prefix", "/CN=Connector:hosp-a", NULL);
	refused(&t, &cfg, "conn-prefix", "identity \"Connector:hosp-a\" is not connector:<id>");
	sign("conn-nocn", "/O=zgate", "URI:connector:hosp-a");
	refused(&t, &cfg, "conn-nocn", "no subject CN that names a client (cn_count)");
	sign("conn-twocn", "/CN=connector:hosp-a/CN=agent-1", NULL);
	refused(&t, &cfg, "conn-twocn", "(cn_count)");
	/* a connector's URI for a san_uri relay does not help: agents check the CN */
	sign("conn-urionly", "/CN=agent-1", "URI:connector:hosp-a");
	refused(&t, &cfg, "conn-urionly",
		"identity \"agent-1\" is not connector:<id>; the relay treats this client as an "
		"agent (its SAN URI counts only on a relay with tls.identity san_uri, and agents "
		"check the CN)");
	assert_string_equal(t.id, "connector:hosp-a");

	/* for a san_uri relay: the same identity in the URI, no warning */
	sign("conn-both", "/CN=connector:hosp-b", "URI:connector:hosp-b");
	set(&cfg, "conn-both.crt", "conn-both.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, (int64_t)time(NULL), err, sizeof(err)), 0);
	assert_string_equal(t.id, "connector:hosp-b");
	assert_string_equal(t.warning, "");
	/* a URI naming something else: right for a cn relay, said for san_uri */
	sign("conn-spiffe", "/CN=connector:hosp-c", "URI:spiffe://corp.test/hosp-c");
	set(&cfg, "conn-spiffe.crt", "conn-spiffe.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, (int64_t)time(NULL), err, sizeof(err)), 0);
	assert_string_equal(t.id, "connector:hosp-c");
	snprintf(want, sizeof(want),
		 "cert %s: its SAN URI \"spiffe://corp.test/hosp-c\" is not its CN "
		 "\"connector:hosp-c\": a relay with tls.identity san_uri takes the URI and treats "
		 "this client as an agent (one with cn, the default, takes the CN)",
		 f("conn-spiffe.crt"));
	assert_string_equal(t.warning, want);
	sign("conn-other", "/CN=connector:hosp-c", "URI:connector:hosp-d");
	set(&cfg, "conn-other.crt", "conn-other.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, (int64_t)time(NULL), err, sizeof(err)), 0);
	assert_non_null(strstr(t.warning, "treats this client as another connector, whose inner "
					  "sessions agents refuse (they check the CN)"));
	/* two URIs: a san_uri relay refuses the handshake (uri_count), no doubt */
	sign("conn-twouri", "/CN=connector:hosp-c", "URI:spiffe://a.test/x,URI:spiffe://a.test/y");
	set(&cfg, "conn-twouri.crt", "conn-twouri.key", "ca.crt");
	assert_int_equal(conn_tls_load(&t, &cfg, (int64_t)time(NULL), err, sizeof(err)), 0);
	assert_string_equal(t.warning, "");
	conn_tls_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_and_reload),
		cmocka_unit_test(test_identity),
	};
	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
