#include "api/server.h"
#include "api/policy_routes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "addrkey.h"
#include "api/api_origin.h"
#include "api/api_ui.h"
#include "deadline.h"
#include "fnv.h"
#include "histo.h"
#include "hostport.h"
#include "filesig.h"
#include "log.h"
#include "zg_build.h"
#include "zg_err.h"

#ifndef ZG_VERSION
#define ZG_VERSION "unknown"
#endif

#define TOKEN_MAX 256
#define PEM_MAX (1 << 20)
#define CONN_LIMIT 4096u   /* connections, all sources */
#define IDLE_TIMEOUT_S 60u /* a keep-alive connection idle this long is closed */
#define IPTAB 8192u        /* per-address counts: > 2 x CONN_LIMIT, never full */
#define WATCHDOG_MS 250    /* how often head deadlines are checked */
#define CRL_POLL_MS 1000   /* how often the CRL file is looked at (stat) */
#define LOG_EVERY_S 10     /* refusals are logged at most this often */
#define SWEEP_BATCH 1000u  /* expired leases outside the pool freed per statement */
#define SWEEP_BATCHES 64   /* statements per sweep at most; the rest wait for the next */

/* Endpoints as /metrics labels them. */
enum ep {
	EP_HEALTH,
	EP_READY,
	EP_METRICS,
	EP_ALLOCATE,
	EP_GET,
	EP_REFRESH,
	EP_RELEASE,
	EP_STATS,
	EP_LIST,
	EP_UI,
	EP_OTHER,
	EP_POLICY_LIST,
	EP_POLICY_CREATE,
	EP_POLICY_VALIDATE,
	EP_POLICY_GET,
	EP_POLICY_ACTIVATE,
	EP_POLICY_ACTIVATIONS,
	EP_POLICY,
	EP__N
};
static const char *const ep_names[EP__N] = {
	"health", "ready", "metrics", "allocate", "get",
	"refresh", "release", "stats", "list", "ui", "other",
	"policy_list", "policy_create", "policy_validate", "policy_get", "policy_activate",
	"policy_activations", "policy"
};
static const unsigned codes[] = { 200, 201, 302, 304, 400, 401, 403, 404, 405, 409, 413, 415,
				  429, 500, 503 };
#define N_CODES (sizeof(codes) / sizeof(codes[0]))
static const char *const how_names[API_ALLOC__N] = { "existing", "requested", "new",
						     "reclaimed" };

struct conn_ctx;

/* Open connections of one source address (addrkey_of ADDRKEY_SOURCE: IPv4,
 * or one IPv6 /64), in an open-addressing table; n == 0 marks a free slot. */
struct ipslot {
	uint8_t key[ADDRKEY_LEN];
	uint32_t n;
};

struct api_server {
	struct MHD_Daemon *d;
	struct api_db *db;
	struct api_policies *pol; /* the policy endpoints (policy_routes.c) */
	struct api_pool pool;
	char pool_text[sizeof(((struct api_config *)0)->pool)]; /* cfg->pool, for messages */
	char *cert, *key, *ca;                                  /* PEM text, kept for the daemon's life */
	pthread_mutex_t mu;                                     /* token, histogram and CRL */
	struct crlset *crl;                                     /* under mu; NULL: no CRL configured */
	unsigned crl_gen;                                       /* under mu: bumped when the CRL changes */
	int crl_expired_said;                                   /* under mu: "CRL expired" logged */
	struct filesig crl_read_sig;                            /* under mu: the file's version last read or tried */
	struct filesig crl_seen_sig;                            /* under mu: its version at the last look */
	int64_t crl_poll_ms;                                    /* the watchdog's: when it last looked */
	char crl_path[API_CONFIG_PATH_MAX];
	char ca_path[API_CONFIG_PATH_MAX]; /* the CRLs' signer */
	char token[TOKEN_MAX];
	struct api_names names; /* of cert: the Hosts a browser's Origin may name */
	struct zg_histo latency;
	uint64_t requests[EP__N][N_CODES]; /* atomics */
	uint64_t allocations[API_ALLOC__N];
	uint64_t exhausted, auth_failures, over_quota;
	uint64_t swept;       /* expired leases outside the pool freed (atomic) */
	int64_t quota_log_ms; /* under mu */

	/* Connections, under cmu: open ones per source address (refused
	 * above max_per_addr when accepted), and those whose TLS handshake
	 * and request head are awaited, each with its deadline, which the
	 * watchdog thread enforces by shutting their socket down. */
	pthread_mutex_t cmu;
	pthread_cond_t wcv;
	pthread_t watchdog, sweeper;
	int watchdog_on, sweeper_on, stopping;
	uint32_t sweep_interval_ms;
	struct ipslot *ips;
	uint32_t ip_seed, max_per_addr, head_timeout_ms;
	struct conn_ctx *pending;
	uint64_t open_conns, refused_per_addr, head_timeouts;
	uint64_t refused_unlogged, timeouts_unlogged;
	int64_t refused_log_ms, timeouts_log_ms;
	char refused_last[ADDRKEY_TEXT_MAX];
};

/* ---------------------------------------------------------------- files */

/* The CRLs of one tls crl file, checked against the CA when read. */
struct crlset {
	gnutls_x509_crl_t *list;
	unsigned n;
	time_t next_update; /* the earliest nextUpdate; 0: none given */
};

static void crlset_free(struct crlset *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->n; i++)
		gnutls_x509_crl_deinit(c->list[i]);
	gnutls_free(c->list);
	free(c);
}

static char *read_pem(const char *what, const char *path, char *err, size_t errlen);

/* Reads the CRL file path (PEM, one or more CRLs), each of which must be
 * signed by a certificate of the CA file ca. Returns 0 and *pc, or
 * ZG_ERR_CONFIG / ZG_ERR_NOMEM with err naming the file. */
static int crlset_load(const char *path, const char *ca, struct crlset **pc, char *err,
		       size_t errlen)
{
	struct crlset *c = calloc(1, sizeof(*c));
	gnutls_x509_crt_t *cas = NULL;
	unsigned ncas = 0, status;
	char *pem = NULL, *capem = NULL;
	gnutls_datum_t d;
	int r = ZG_ERR_CONFIG, g;

	if (c == NULL) {
		zg_seterr(err, errlen, "out of memory");
		return ZG_ERR_NOMEM;
	}
	if ((pem = read_pem("crl", path, err, errlen)) == NULL ||
	    (capem = read_pem("ca", ca, err, errlen)) == NULL)
		goto out;
	d.data = (unsigned char *)pem;
	d.size = (unsigned)strlen(pem);
	if ((g = gnutls_x509_crl_list_import2(&c->list, &c->n, &d, GNUTLS_X509_FMT_PEM, 0)) < 0 ||
	    c->n == 0) {
		zg_seterr(err, errlen, "crl %s: %s", path,
			  g < 0 ? gnutls_strerror(g) : "no CRL in it");
		goto out;
	}
	d.data = (unsigned char *)capem;
	d.size = (unsigned)strlen(capem);
	if ((g = gnutls_x509_crt_list_import2(&cas, &ncas, &d, GNUTLS_X509_FMT_PEM, 0)) < 0) {
		zg_seterr(err, errlen, "ca %s: %s", ca, gnutls_strerror(g));
		goto out;
	}
	for (unsigned i = 0; i < c->n; i++) {
		time_t nu = gnutls_x509_crl_get_next_update(c->list[i]);

		/* Its dates are judged at each check, not here: an expired CRL
		 * loads, and then refuses every certificate. GnuTLS reports one
		 * past its nextUpdate as INVALID | REVOCATION_DATA_SUPERSEDED
		 * even without time checks; a bad signature or issuer adds
		 * other bits. */
		const unsigned dates = GNUTLS_CERT_INVALID | GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
				       GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE;

		if (gnutls_x509_crl_verify(c->list[i], cas, ncas, GNUTLS_VERIFY_DISABLE_TIME_CHECKS,
					   &status) < 0 ||
		    (status & ~dates) != 0 ||
		    (status != 0 && !(status & (dates & ~GNUTLS_CERT_INVALID)))) {
			zg_seterr(err, errlen, "crl %s: CRL %u is not signed by the CA of %s", path,
				  i + 1, ca);
			goto out;
		}
		if (nu != (time_t)-1 && (c->next_update == 0 || nu < c->next_update))
			c->next_update = nu;
	}
	r = 0;
out:
	for (unsigned i = 0; i < ncas; i++)
		gnutls_x509_crt_deinit(cas[i]);
	gnutls_free(cas);
	free(pem);
	free(capem);
	if (r != 0)
		crlset_free(c);
	else
		*pc = c;
	return r;
}

/* The PEM file path, NUL-terminated (free it), or NULL with err naming
 * the option (what: "cert", "key", "ca", "crl") and the file. */
static char *read_pem(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		zg_seterr(err, errlen, "%s %s: cannot open: %s", what, path, strerror(errno));
		return NULL;
	}
	buf = malloc(PEM_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		zg_seterr(err, errlen, "%s %s: out of memory", what, path);
		return NULL;
	}
	n = fread(buf, 1, PEM_MAX + 1, f);
	if (ferror(f) || n > PEM_MAX || n == 0) {
		zg_seterr(err, errlen, "%s %s: %s", what, path,
			  ferror(f) ? strerror(errno) : n ? "larger than 1 MiB"
							  : "empty");
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static int load_tls(const struct api_config *cfg, char **pcert, char **pkey, char **pca,
		    char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_datum_t c, k, a;
	int r = ZG_ERR_CONFIG, g;

	*pcert = *pkey = *pca = NULL;
	if ((*pcert = read_pem("cert", cfg->cert, err, errlen)) == NULL ||
	    (*pkey = read_pem("key", cfg->key, err, errlen)) == NULL ||
	    (*pca = read_pem("ca", cfg->ca, err, errlen)) == NULL)
		goto out;
	if (gnutls_certificate_allocate_credentials(&cred) != 0) {
		zg_seterr(err, errlen, "out of memory");
		r = ZG_ERR_NOMEM;
		goto out;
	}
	c.data = (unsigned char *)*pcert;
	c.size = (unsigned)strlen(*pcert);
	k.data = (unsigned char *)*pkey;
	k.size = (unsigned)strlen(*pkey);
	a.data = (unsigned char *)*pca;
	a.size = (unsigned)strlen(*pca);
	if ((g = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM)) < 0) {
		zg_seterr(err, errlen, "cert %s / key %s: %s", cfg->cert, cfg->key,
			  gnutls_strerror(g));
		goto out;
	}
	if ((g = gnutls_certificate_set_x509_trust_mem(cred, &a, GNUTLS_X509_FMT_PEM)) <= 0) {
		zg_seterr(err, errlen, "ca %s: %s", cfg->ca,
			  g == 0 ? "no certificate in it" : gnutls_strerror(g));
		goto out;
	}
	r = 0;
out:
	if (cred)
		gnutls_certificate_free_credentials(cred);
	if (r != 0) {
		free(*pcert);
		free(*pkey);
		free(*pca);
		*pcert = *pkey = *pca = NULL;
	}
	return r;
}

int api_server_check_tls(const struct api_config *cfg, char *err, size_t errlen)
{
	char *c, *k, *a;
	struct crlset *crl = NULL;
	int r = load_tls(cfg, &c, &k, &a, err, errlen);

	if (r == 0) {
		free(c);
		free(k);
		free(a);
		if (cfg->crl[0] != '\0' && (r = crlset_load(cfg->crl, cfg->ca, &crl, err, errlen)) == 0)
			crlset_free(crl);
	}
	return r;
}

int api_server_read_token(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[TOKEN_MAX + 2];
	size_t n;
	char *s;

	if (f == NULL) {
		zg_seterr(err, errlen, "admin_token_file %s: cannot open: %s", path, strerror(errno));
		return ZG_ERR_CONFIG;
	}
	s = fgets(line, sizeof(line), f);
	if (s == NULL && ferror(f)) { /* a directory opens, then fails here */
		zg_seterr(err, errlen, "admin_token_file %s: cannot read: %s", path,
			  strerror(errno));
		fclose(f);
		return ZG_ERR_CONFIG;
	}
	fclose(f);
	if (s == NULL)
		line[0] = '\0';
	s = line + strspn(line, " \t");
	n = strcspn(s, "\r\n");
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	s[n] = '\0';
	if (n < 16 || n >= outlen || n > TOKEN_MAX - 1) {
		zg_seterr(err, errlen, "admin_token_file %s: the token must be 16 to %d characters "
				       "on the first line",
			  path, TOKEN_MAX - 1);
		return ZG_ERR_CONFIG;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
			zg_seterr(err, errlen, "admin_token_file %s: the token must be printable "
					       "ASCII without spaces",
				  path);
			return ZG_ERR_CONFIG;
		}
	memcpy(out, s, n + 1);
	return 0;
}

/* Reads s's CRL file again and puts it in force (why: what made it, for
 * the log). Records the file's version it read (taken before reading: a
 * change while it reads is seen at the next look). Returns 0 or
 * crlset_load()'s error, with the CRL in force unchanged. */
static int crl_reload(struct api_server *s, const char *why, char *err, size_t errlen)
{
	struct crlset *c = NULL, *old = NULL;
	struct filesig sig;
	char when[32] = "never";
	int r;

	filesig_of(s->crl_path, &sig);
	r = crlset_load(s->crl_path, s->ca_path, &c, err, errlen);
	pthread_mutex_lock(&s->mu);
	s->crl_read_sig = sig;
	s->crl_seen_sig = sig;
	if (r == 0) {
		old = s->crl;
		s->crl = c;
		s->crl_gen++;
		s->crl_expired_said = 0;
	}
	pthread_mutex_unlock(&s->mu);
	if (r != 0)
		return r;
	crlset_free(old);
	if (c->next_update != 0) {
		struct tm tm;

		if (gmtime_r(&c->next_update, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			(void)snprintf(when, sizeof(when), "unknown");
	}
	if (c->next_update != 0 && c->next_update <= time(NULL))
		log_errx("crl %s read (%s): it is past its nextUpdate (%s): every client certificate "
			 "is refused until a current CRL is installed",
			 s->crl_path, why, when);
	else
		log_info("crl %s read (%s): %u CRL(s), next update %s", s->crl_path, why, c->n, when);
	return 0;
}

int api_server_reload_crl(struct api_server *s, char *err, size_t errlen)
{
	if (s->crl_path[0] == '\0') {
		zg_seterr(err, errlen, "no crl configured");
		return ZG_ERR_CONFIG;
	}
	return crl_reload(s, "SIGHUP", err, errlen);
}

/* The watchdog's look at the CRL file, every CRL_POLL_MS: a version not
 * read yet is read once it has stayed the same for one look, so that a
 * file caught half-written (rewritten in place) is not read then. A file
 * that does not load is reported once per version; the CRL in force
 * stays. */
static void crl_poll(struct api_server *s)
{
	struct filesig now;
	char err[512];
	int go;

	filesig_of(s->crl_path, &now);
	pthread_mutex_lock(&s->mu);
	go = !filesig_eq(&now, &s->crl_read_sig) && filesig_eq(&now, &s->crl_seen_sig);
	s->crl_seen_sig = now;
	pthread_mutex_unlock(&s->mu);
	if (go && crl_reload(s, "changed on disk", err, sizeof(err)) != 0)
		log_errx("crl %s changed on disk but does not load (%s): the CRL read before stays in "
			 "force; it is read again when the file changes, or on SIGHUP",
			 s->crl_path, err);
}

void api_server_set_token(struct api_server *s, const char *token)
{
	pthread_mutex_lock(&s->mu);
	(void)snprintf(s->token, sizeof(s->token), "%s", token);
	pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------- identity */

enum who {
	WHO_NONE = 0,
	WHO_RELAY,
	WHO_ADMIN,
	WHO_BAD
};

struct ident {
	enum who who;
	int token;                       /* WHO_ADMIN by the bearer token, not a certificate */
	char name[API_RELAY_ID_MAX + 1]; /* the relay id or admin name */
	const char *why;                 /* WHO_BAD: for the answer */
};

/* What one request carries between the calls MHD makes for it. */
struct req {
	struct timespec start;
	enum ep ep;
	unsigned code;
	size_t len;
	int answered;  /* a response was queued at the head: the body is dropped */
	int close;     /* answer with Connection: close */
	int route_bad; /* the path names an allocation with an invalid client id */
	int nobody;    /* answered without a body: none was announced */
	struct api_route rt;
	struct ident id; /* decided at the head */
	size_t max;      /* the route's body limit: API_BODY_MAX, or API_POLICY_BODY_MAX */
	char *big;       /* a body over API_BODY_MAX (max + 1 at most), or NULL */
	size_t bigcap;
	int slot;                         /* holds an api_policies_big_take() slot */
	enum api_ui_kind ui;              /* a path of the web UI (not API_UI_NONE) */
	const struct api_ui_asset *asset; /* API_UI_ASSET: the file */
	char body[API_BODY_MAX + 1];
};

/* Whether a certificate's extended key usage (if it has one) allows TLS
 * client authentication. */
static int eku_client_ok(gnutls_x509_crt_t crt)
{
	char oid[128];
	int any = 0;

	for (unsigned i = 0;; i++) {
		size_t sz = sizeof(oid);
		int g = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &sz, NULL);

		if (g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (g < 0)
			return 0;
		any = 1;
		if (strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0 || strcmp(oid, GNUTLS_KP_ANY) == 0)
			return 1;
	}
	return !any;
}

/* Whether crt may be used as far as the CRL knows: 0, or the reason it
 * may not (the CRL has expired, or lists it). */
static const char *crl_refuses(struct api_server *s, gnutls_x509_crt_t crt)
{
	const char *why = NULL;
	time_t now = time(NULL);
	int say = 0;

	pthread_mutex_lock(&s->mu);
	if (s->crl != NULL && s->crl->next_update != 0 && s->crl->next_update <= now) {
		why = "the server's CRL is past its nextUpdate: every client certificate is refused "
		      "until a current CRL is installed";
		say = !s->crl_expired_said;
		s->crl_expired_said = 1;
	} else if (s->crl != NULL &&
		   gnutls_x509_crt_check_revocation(crt, s->crl->list, s->crl->n) != 0) {
		why = "client certificate revoked (listed in the CRL)";
	}
	pthread_mutex_unlock(&s->mu);
	if (say)
		log_errx("crl %s is past its nextUpdate: every client certificate is refused until "
			 "a current CRL is installed (read again when the file changes, or on SIGHUP)",
			 s->crl_path);
	return why;
}

static void cert_identity(struct api_server *s, struct MHD_Connection *conn, struct ident *id)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t ses;
	const gnutls_datum_t *peers;
	gnutls_x509_crt_t crt = NULL;
	unsigned status = 0, np = 0;
	char cn[256];
	size_t cnlen = sizeof(cn);
	int g;

	memset(id, 0, sizeof(*id));
	if (ci == NULL || (ses = (gnutls_session_t)ci->tls_session) == NULL)
		return;
	peers = gnutls_certificate_get_peers(ses, &np);
	if (peers == NULL || np == 0)
		return; /* no certificate: maybe a token */
	id->who = WHO_BAD;
	g = gnutls_certificate_verify_peers2(ses, &status);
	if (g < 0 || status != 0) {
		id->why = "client certificate not trusted (not from the configured CA, expired or revoked)";
		return;
	}
	if (gnutls_x509_crt_init(&crt) < 0 ||
	    gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen) < 0) {
		id->why = "client certificate has no readable common name";
		goto out;
	}
	if ((id->why = crl_refuses(s, crt)) != NULL)
		goto out;
	{
		/* exactly one: tools disagree on which of several is "the"
		 * CN (GnuTLS reads the first, others the last), and the role
		 * comes from it */
		char cn2[256];
		size_t cn2len = sizeof(cn2);

		if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, cn2,
						  &cn2len) != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
			id->why = "client certificate has more than one common name";
			goto out;
		}
	}
	if (!eku_client_ok(crt)) {
		id->why = "client certificate's extended key usage does not allow client authentication";
		goto out;
	}
	if (strncmp(cn, "relay:", 6) == 0 && api_id_valid(cn + 6, strlen(cn + 6), API_RELAY_ID_MAX)) {
		id->who = WHO_RELAY;
		(void)snprintf(id->name, sizeof(id->name), "%.*s", (int)(sizeof(id->name) - 1), cn + 6);
	} else if (strncmp(cn, "admin:", 6) == 0 &&
		   api_id_valid(cn + 6, strlen(cn + 6), API_RELAY_ID_MAX)) {
		id->who = WHO_ADMIN;
		(void)snprintf(id->name, sizeof(id->name), "%.*s", (int)(sizeof(id->name) - 1), cn + 6);
	} else {
		id->why = "client certificate's common name must be relay:ID or admin:NAME";
	}
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
}

/* Constant-time comparison of two NUL-terminated strings. */
static int token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return d == 0 && lb > 0;
}

/* The verification of a client certificate (an X.509 parse and an ECDSA
 * or RSA signature check) is cached per connection rather than run for
 * every request of a keep-alive connection. The cache holds the SHA-256
 * of the certificate it verified, so a connection that presents another
 * one (a TLS 1.2 renegotiation) is verified again; and it is run again
 * when older than CERT_RECHECK_S, so a certificate that expires while its
 * connection stays open is refused within that time. */
#define CERT_RECHECK_S 60

struct conn_ctx {
	int have;
	time_t at;                /* CLOCK_MONOTONIC seconds of the verification */
	unsigned char sha256[32]; /* of the certificate verified */
	struct ident id;          /* its result */
	unsigned crl_gen;         /* the CRL it was checked against */
	/* under the server's cmu: */
	int fd;
	int counted;                  /* holds one count of key's slot */
	uint8_t key[ADDRKEY_LEN];     /* its source address (addrkey_of) */
	int64_t deadline_ms;          /* of its head; 0: not waiting for one */
	struct conn_ctx *prev, *next; /* in the server's pending list */
};

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint32_t ip_hash(const struct api_server *s, const uint8_t key[ADDRKEY_LEN])
{
	return fnv32_bytes(s->ip_seed, key, ADDRKEY_LEN) & (IPTAB - 1);
}

/* The slot of key, or the free slot where it would go (*pfound 0). Under
 * cmu. The table never fills: it holds at most CONN_LIMIT (plus a few
 * accepted at once) keys in IPTAB slots. */
static struct ipslot *ip_find(struct api_server *s, const uint8_t key[ADDRKEY_LEN], int *pfound)
{
	uint32_t i = ip_hash(s, key);

	while (s->ips[i].n != 0) {
		if (memcmp(s->ips[i].key, key, ADDRKEY_LEN) == 0) {
			*pfound = 1;
			return &s->ips[i];
		}
		i = (i + 1) & (IPTAB - 1);
	}
	*pfound = 0;
	return &s->ips[i];
}

/* Empties slot e, moving later keys of its probe run back (linear probing
 * without tombstones). Under cmu. */
static void ip_remove(struct api_server *s, struct ipslot *e)
{
	uint32_t i = (uint32_t)(e - s->ips), j = i;

	for (;;) {
		uint32_t h;

		j = (j + 1) & (IPTAB - 1);
		if (s->ips[j].n == 0)
			break;
		h = ip_hash(s, s->ips[j].key);
		/* j's key may move to i unless its home h lies cyclically in (i, j] */
		if (i <= j ? (h <= i || h > j) : (h <= i && h > j)) {
			s->ips[i] = s->ips[j];
			i = j;
		}
	}
	s->ips[i].n = 0;
}

static void pend_add(struct api_server *s, struct conn_ctx *cc, int64_t deadline)
{
	if (cc->deadline_ms != 0 || cc->fd < 0)
		return;
	cc->deadline_ms = deadline;
	cc->prev = NULL;
	cc->next = s->pending;
	if (s->pending != NULL)
		s->pending->prev = cc;
	s->pending = cc;
}

static void pend_del(struct api_server *s, struct conn_ctx *cc)
{
	if (cc->deadline_ms == 0)
		return;
	if (cc->prev != NULL)
		cc->prev->next = cc->next;
	else
		s->pending = cc->next;
	if (cc->next != NULL)
		cc->next->prev = cc->prev;
	cc->prev = cc->next = NULL;
	cc->deadline_ms = 0;
}

/* MHD's accept policy: refuses a connection whose source address already
 * holds max_per_addr (counted when MHD starts them, so connections
 * accepted at the same instant by several threads may pass it by up to
 * the thread count). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *sa, socklen_t salen)
{
	struct api_server *s = cls;
	uint8_t key[ADDRKEY_LEN];
	struct ipslot *e;
	uint64_t n = 0;
	int found, ok = 1;
	char last[sizeof(s->refused_last)];
	int64_t now;

	(void)salen;
	if (s->max_per_addr == 0 || addrkey_of(sa, ADDRKEY_SOURCE, key) != 0)
		return MHD_YES;
	now = now_ms();
	pthread_mutex_lock(&s->cmu);
	e = ip_find(s, key, &found);
	if (found && e->n >= s->max_per_addr) {
		ok = 0;
		s->refused_per_addr++;
		s->refused_unlogged++;
		addrkey_text(key, ADDRKEY_SOURCE, s->refused_last, sizeof(s->refused_last));
		if (now - s->refused_log_ms >= LOG_EVERY_S * 1000) {
			n = s->refused_unlogged;
			memcpy(last, s->refused_last, sizeof(last));
			s->refused_unlogged = 0;
			s->refused_log_ms = now;
		}
	}
	pthread_mutex_unlock(&s->cmu);
	if (n)
		log_warnx("refused %llu connection(s) over max_connections_per_address %u "
			  "(the last from %s); logged again in %ds at most",
			  (unsigned long long)n, s->max_per_addr, last, LOG_EVERY_S);
	return ok ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct api_server *s = cls;
	struct conn_ctx *cc;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fi =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ai =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

		/* NULL: no cache, no count, no deadline but MHD's idle timeout */
		*socket_context = cc = calloc(1, sizeof(struct conn_ctx));
		if (cc == NULL)
			return;
		cc->fd = fi != NULL ? fi->connect_fd : -1;
		pthread_mutex_lock(&s->cmu);
		s->open_conns++;
		if (s->max_per_addr != 0 && ai != NULL &&
		    addrkey_of(ai->client_addr, ADDRKEY_SOURCE, cc->key) == 0) {
			int found;
			struct ipslot *e = ip_find(s, cc->key, &found);

			if (!found)
				memcpy(e->key, cc->key, ADDRKEY_LEN);
			e->n++;
			cc->counted = 1;
		}
		pend_add(s, cc, now_ms() + s->head_timeout_ms);
		pthread_mutex_unlock(&s->cmu);
		return;
	}
	/* MHD_CONNECTION_NOTIFY_CLOSED, before MHD closes the socket: once
	 * out of the pending list, the watchdog never touches cc->fd. */
	cc = *socket_context;
	*socket_context = NULL;
	if (cc == NULL)
		return;
	pthread_mutex_lock(&s->cmu);
	pend_del(s, cc);
	s->open_conns--;
	if (cc->counted) {
		int found;
		struct ipslot *e = ip_find(s, cc->key, &found);

		if (found && --e->n == 0)
			ip_remove(s, e);
	}
	pthread_mutex_unlock(&s->cmu);
	free(cc);
}

/* Closes the connections whose TLS handshake and request head did not
 * arrive by their deadline (slow or silent clients holding connections):
 * shutdown() makes MHD see the end of the stream and close it. Also looks
 * at the CRL file every CRL_POLL_MS (crl_poll, without cmu). */
static void *watchdog_main(void *arg)
{
	struct api_server *s = arg;
	struct timespec until;

	pthread_mutex_lock(&s->cmu);
	while (!s->stopping) {
		int64_t now = now_ms();
		uint64_t n = 0;

		for (struct conn_ctx *cc = s->pending, *next; cc != NULL; cc = next) {
			next = cc->next;
			if (cc->deadline_ms > now)
				continue;
			(void)shutdown(cc->fd, SHUT_RDWR);
			pend_del(s, cc);
			s->head_timeouts++;
			s->timeouts_unlogged++;
		}
		if (s->timeouts_unlogged && now - s->timeouts_log_ms >= LOG_EVERY_S * 1000) {
			n = s->timeouts_unlogged;
			s->timeouts_unlogged = 0;
			s->timeouts_log_ms = now;
		}
		if (n) {
			pthread_mutex_unlock(&s->cmu);
			log_warnx("closed %llu connection(s) that did not complete their TLS handshake "
				  "and request head within head_timeout %ums; logged again in %ds at "
				  "most",
				  (unsigned long long)n, s->head_timeout_ms, LOG_EVERY_S);
			pthread_mutex_lock(&s->cmu);
		}
		if (s->crl_path[0] != '\0' && now - s->crl_poll_ms >= CRL_POLL_MS) {
			s->crl_poll_ms = now;
			pthread_mutex_unlock(&s->cmu);
			crl_poll(s);
			pthread_mutex_lock(&s->cmu);
			if (s->stopping)
				break;
		}
		deadline_after_ms(CLOCK_MONOTONIC, WATCHDOG_MS, &until);
		(void)pthread_cond_timedwait(&s->wcv, &s->cmu, &until);
	}
	pthread_mutex_unlock(&s->cmu);
	return NULL;
}

/* Frees the expired leases outside the pool, a bounded number of batches;
 * logs how many (with one of them) when there were any. */
static void sweep(struct api_server *s)
{
	struct api_lease first, other;
	char a[INET_ADDRSTRLEN];
	size_t n = 0, got;

	for (int i = 0; i < SWEEP_BATCHES; i++) {
		if (api_db_sweep(s->db, &s->pool, SWEEP_BATCH, n == 0 ? &first : &other, &got) != 0)
			break;
		n += got;
		if (got < SWEEP_BATCH)
			break;
	}
	if (n == 0)
		return;
	__atomic_fetch_add(&s->swept, n, __ATOMIC_RELAXED);
	(void)inet_ntop(AF_INET, &first.address, a, sizeof(a));
	log_info("freed %zu expired lease(s) whose address lies outside the pool %s (%s's %s "
		 "among them): no allocation reclaims them, their clients did not come back",
		 n, s->pool_text, first.client_id, a);
}

/* Sweeps at start and then every sweep_interval until stopping: a lease
 * left outside a pool made smaller or moved, of a client that never
 * allocates again, would otherwise stay in the table for ever. */
static void *sweeper_main(void *arg)
{
	struct api_server *s = arg;
	struct timespec until;

	pthread_mutex_lock(&s->cmu);
	while (!s->stopping) {
		pthread_mutex_unlock(&s->cmu);
		sweep(s);
		api_policies_refresh(s->pol); /* another replica may have activated one */
		pthread_mutex_lock(&s->cmu);
		deadline_after_ms(CLOCK_MONOTONIC, s->sweep_interval_ms, &until);
		while (!s->stopping && pthread_cond_timedwait(&s->wcv, &s->cmu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&s->cmu);
	return NULL;
}

/* The request's head is complete: its deadline no longer applies. */
static void head_arrived(struct api_server *s, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_ctx *cc = ci ? ci->socket_context : NULL;

	if (cc == NULL)
		return;
	pthread_mutex_lock(&s->cmu);
	pend_del(s, cc);
	pthread_mutex_unlock(&s->cmu);
}

/* An answer went out on a keep-alive connection: the next request's head
 * must come within MHD's idle timeout plus head_timeout. */
static void head_awaited(struct api_server *s, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_ctx *cc = ci ? ci->socket_context : NULL;

	if (cc == NULL)
		return;
	pthread_mutex_lock(&s->cmu);
	pend_add(s, cc, now_ms() + IDLE_TIMEOUT_S * 1000 + s->head_timeout_ms);
	pthread_mutex_unlock(&s->cmu);
}

static void cached_cert_identity(struct api_server *s, struct MHD_Connection *conn,
				 struct ident *id)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	const union MHD_ConnectionInfo *ti =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	struct conn_ctx *cc = ci ? ci->socket_context : NULL;
	const gnutls_datum_t *peers = NULL;
	unsigned char sha[32];
	struct timespec now;
	unsigned np = 0, gen;

	pthread_mutex_lock(&s->mu);
	gen = s->crl_gen;
	pthread_mutex_unlock(&s->mu);
	if (ti != NULL && ti->tls_session != NULL)
		peers = gnutls_certificate_get_peers((gnutls_session_t)ti->tls_session, &np);
	if (cc == NULL || peers == NULL || np == 0 ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, peers[0].data, peers[0].size, sha) != 0) {
		cert_identity(s, conn, id);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (cc->have && now.tv_sec - cc->at < CERT_RECHECK_S && cc->crl_gen == gen &&
	    memcmp(cc->sha256, sha, sizeof(sha)) == 0) {
		*id = cc->id;
		return;
	}
	cert_identity(s, conn, id);
	cc->id = *id;
	cc->crl_gen = gen;
	cc->at = now.tv_sec;
	memcpy(cc->sha256, sha, sizeof(sha));
	cc->have = 1;
}

static void identify(struct api_server *s, struct MHD_Connection *conn, struct ident *id)
{
	const char *auth;

	cached_cert_identity(s, conn, id);
	if (id->who != WHO_NONE)
		return;
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth == NULL)
		return;
	if (strncasecmp(auth, "Bearer ", 7) == 0) {
		int ok;

		pthread_mutex_lock(&s->mu);
		ok = s->token[0] != '\0' && token_equal(auth + 7, s->token);
		pthread_mutex_unlock(&s->mu);
		if (ok) {
			id->who = WHO_ADMIN;
			id->token = 1;
			(void)snprintf(id->name, sizeof(id->name), "token");
			return;
		}
	}
	id->who = WHO_BAD;
	id->why = "bad credentials in Authorization";
}

/* ---------------------------------------------------------------- answers */

/* Queues res (its headers set) as the answer to rq, with "Connection:
 * close" when rq is to end its connection, and records its code. */
static enum MHD_Result queue(struct MHD_Connection *conn, struct req *rq, unsigned code,
			     struct MHD_Response *res)
{
	enum MHD_Result r;

	if (rq->close)
		(void)MHD_add_response_header(res, MHD_HTTP_HEADER_CONNECTION, "close");
	rq->code = code;
	r = MHD_queue_response(conn, code, res);
	MHD_destroy_response(res);
	return r;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, struct req *rq, unsigned code,
				 const char *ctype, const char *text, size_t len,
				 const char *hname, const char *hval)
{
	struct MHD_Response *res =
		MHD_create_response_from_buffer(len, (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);

	if (res == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	(void)MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (hname != NULL)
		(void)MHD_add_response_header(res, hname, hval);
	return queue(conn, rq, code, res);
}

static enum MHD_Result send_json(struct MHD_Connection *conn, struct req *rq, unsigned code,
				 const char *json)
{
	return send_text(conn, rq, code, "application/json", json, strlen(json), NULL, NULL);
}

/* {"error": msg} with code; hname/hval an extra header or NULL. */
static enum MHD_Result send_error(struct MHD_Connection *conn, struct req *rq, unsigned code,
				  const char *msg, const char *hname, const char *hval)
{
	char q[512], body[600];
	int n;

	(void)api_json_quote(q, sizeof(q), msg);
	n = snprintf(body, sizeof(body), "{\"error\":%s}\n", q);
	return send_text(conn, rq, code, "application/json", body,
			 n > 0 && (size_t)n < sizeof(body) ? (size_t)n : strlen(body), hname, hval);
}

static void rfc3339(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(buf, len, "unknown");
}

/* The JSON object of lease l (with "how" unless NULL) into buf. Returns
 * the length snprintf would write. */
static int lease_json(char *buf, size_t len, const struct api_lease *l, const char *how)
{
	char id[API_CLIENT_ID_MAX + 8], relay[API_RELAY_ID_MAX + 8], addr[INET_ADDRSTRLEN];
	char created[32], seen[32], hows[48] = "";

	(void)api_json_quote(id, sizeof(id), l->client_id);
	(void)api_json_quote(relay, sizeof(relay), l->relay_id);
	(void)inet_ntop(AF_INET, &l->address, addr, sizeof(addr));
	rfc3339(l->created, created, sizeof(created));
	rfc3339(l->last_seen, seen, sizeof(seen));
	if (how != NULL)
		(void)snprintf(hows, sizeof(hows), ",\"how\":\"%s\"", how);
	return snprintf(buf, len,
			"{\"client_id\":%s,\"address\":\"%s\",\"prefix_len\":32,\"relay_id\":%s,"
			"\"created\":\"%s\",\"last_seen\":\"%s\",\"in_pool\":%s%s}",
			id, addr, l->relay_id[0] ? relay : "null", created, seen,
			l->in_pool ? "true" : "false", hows);
}

static enum MHD_Result send_lease(struct MHD_Connection *conn, struct req *rq, unsigned code,
				  const struct api_lease *l, const char *how)
{
	char body[768];
	int n = lease_json(body, sizeof(body) - 1, l, how);

	if (n > 0 && (size_t)n < sizeof(body) - 1) {
		body[n] = '\n';
		body[n + 1] = '\0';
	}
	return send_json(conn, rq, code, body);
}

/* A refresh of a lease whose address lies outside the pool (a former
 * pool's, left when the pool was made smaller or moved: migration 0003):
 * refused with 409, the lease not extended, so that its relay allocates
 * again (which frees it and gives an address of the pool) rather than
 * keep an address no relay routes any more. */
static enum MHD_Result refresh_out_of_pool(struct api_server *s, struct MHD_Connection *conn,
					   struct req *rq, const struct api_lease *l)
{
	char addr[INET_ADDRSTRLEN], msg[400];

	(void)inet_ntop(AF_INET, &l->address, addr, sizeof(addr));
	(void)snprintf(msg, sizeof(msg),
		       "the lease's address %s lies outside the pool %s (made smaller or moved): "
		       "not refreshed; allocate again (POST ipam/allocations) for an address of "
		       "the pool",
		       addr, s->pool_text);
	return send_error(conn, rq, 409, msg, NULL, NULL);
}

static enum MHD_Result db_failed(struct MHD_Connection *conn, struct req *rq, int r)
{
	if (r == ZG_ERR_NOTFOUND)
		return send_error(conn, rq, 404, "no lease for this client", NULL, NULL);
	return send_error(conn, rq, 503, "database unavailable", "Retry-After", "1");
}

/* ---------------------------------------------------------------- metrics */

struct mbuf {
	char *p;
	size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static void mout(struct mbuf *m, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (m->n >= m->cap)
		return;
	va_start(ap, fmt);
	w = vsnprintf(m->p + m->n, m->cap - m->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		m->n += (size_t)w < m->cap - m->n ? (size_t)w : m->cap - m->n - 1;
}

static void secs(char *buf, size_t len, uint64_t us)
{
	(void)snprintf(buf, len, "%llu.%06llu", (unsigned long long)(us / 1000000u),
		       (unsigned long long)(us % 1000000u));
}

static enum MHD_Result send_metrics(struct api_server *s, struct MHD_Connection *conn,
				    struct req *rq)
{
	struct mbuf m = { malloc(65536), 0, 65536 };
	struct api_db_counters dc;
	struct zg_histo h;
	uint64_t cum = 0;
	char b[32];
	enum MHD_Result r;

	if (m.p == NULL)
		return MHD_NO;
	api_db_counters(s->db, &dc);
	pthread_mutex_lock(&s->mu);
	h = s->latency;
	pthread_mutex_unlock(&s->mu);
	mout(&m, "# HELP zgate_api_build_info zgate-api's version and commit.\n"
		 "# TYPE zgate_api_build_info gauge\n"
		 "zgate_api_build_info{version=\"%s\",commit=\"%s\"} 1\n",
	     ZG_VERSION, ZG_COMMIT);
	mout(&m, "# HELP zgate_api_requests_total HTTP requests answered, by endpoint and status.\n"
		 "# TYPE zgate_api_requests_total counter\n");
	for (int e = 0; e < EP__N; e++)
		for (size_t c = 0; c < N_CODES; c++) {
			uint64_t v = __atomic_load_n(&s->requests[e][c], __ATOMIC_RELAXED);

			if (v)
				mout(&m, "zgate_api_requests_total{endpoint=\"%s\",code=\"%u\"} %llu\n",
				     ep_names[e], codes[c], (unsigned long long)v);
		}
	mout(&m, "# HELP zgate_api_allocations_total Successful allocations, by how the address "
		 "was found.\n# TYPE zgate_api_allocations_total counter\n");
	for (int i = 0; i < API_ALLOC__N; i++)
		mout(&m, "zgate_api_allocations_total{how=\"%s\"} %llu\n", how_names[i],
		     (unsigned long long)__atomic_load_n(&s->allocations[i], __ATOMIC_RELAXED));
	mout(&m, "# HELP zgate_api_pool_exhausted_total Allocations refused: no free or expired "
		 "address.\n# TYPE zgate_api_pool_exhausted_total counter\n"
		 "zgate_api_pool_exhausted_total %llu\n",
	     (unsigned long long)__atomic_load_n(&s->exhausted, __ATOMIC_RELAXED));
	mout(&m, "# HELP zgate_api_over_quota_total Allocations refused: the relay held "
		 "max_leases_per_relay leases already.\n# TYPE zgate_api_over_quota_total counter\n"
		 "zgate_api_over_quota_total %llu\n",
	     (unsigned long long)__atomic_load_n(&s->over_quota, __ATOMIC_RELAXED));
	mout(&m, "# HELP zgate_api_leases_swept_total Expired leases whose address lay outside "
		 "the pool (made smaller or moved), freed by the sweep every sweep_interval.\n"
		 "# TYPE zgate_api_leases_swept_total counter\nzgate_api_leases_swept_total %llu\n",
	     (unsigned long long)__atomic_load_n(&s->swept, __ATOMIC_RELAXED));
	mout(&m, "# HELP zgate_api_auth_failures_total Requests refused for missing or bad "
		 "credentials (401) or role (403).\n# TYPE zgate_api_auth_failures_total counter\n"
		 "zgate_api_auth_failures_total %llu\n",
	     (unsigned long long)__atomic_load_n(&s->auth_failures, __ATOMIC_RELAXED));
	pthread_mutex_lock(&s->cmu);
	mout(&m, "# HELP zgate_api_connections_open TLS connections open now.\n"
		 "# TYPE zgate_api_connections_open gauge\nzgate_api_connections_open %llu\n"
		 "# HELP zgate_api_connections_refused_total Connections closed at once because "
		 "their source address held max_connections_per_address already.\n"
		 "# TYPE zgate_api_connections_refused_total counter\n"
		 "zgate_api_connections_refused_total %llu\n"
		 "# HELP zgate_api_head_timeouts_total Connections closed because their TLS "
		 "handshake and request head did not arrive within head_timeout.\n"
		 "# TYPE zgate_api_head_timeouts_total counter\nzgate_api_head_timeouts_total %llu\n",
	     (unsigned long long)s->open_conns, (unsigned long long)s->refused_per_addr,
	     (unsigned long long)s->head_timeouts);
	pthread_mutex_unlock(&s->cmu);
	mout(&m, "# HELP zgate_api_policy_active_id The active policy version as this replica last "
		 "saw it (0: none; -1: not known yet).\n# TYPE zgate_api_policy_active_id gauge\n"
		 "zgate_api_policy_active_id %lld\n",
	     (long long)api_policies_active_id(s->pol));
	mout(&m, "# HELP zgate_api_db_retries_total Allocation transactions run again after "
		 "losing a race to another one.\n# TYPE zgate_api_db_retries_total counter\n"
		 "zgate_api_db_retries_total %llu\n",
	     (unsigned long long)dc.retries);
	mout(&m, "# HELP zgate_api_db_errors_total Database statements that failed.\n"
		 "# TYPE zgate_api_db_errors_total counter\nzgate_api_db_errors_total %llu\n",
	     (unsigned long long)dc.db_errors);
	mout(&m, "# HELP zgate_api_request_duration_seconds Time to answer IPAM requests.\n"
		 "# TYPE zgate_api_request_duration_seconds histogram\n");
	for (int i = 0; i < ZG_HISTO_BOUNDS; i++) {
		cum += h.n[i];
		secs(b, sizeof(b), zg_histo_bounds_us[i]);
		mout(&m, "zgate_api_request_duration_seconds_bucket{le=\"%s\"} %llu\n", b,
		     (unsigned long long)cum);
	}
	secs(b, sizeof(b), h.sum_us);
	mout(&m, "zgate_api_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		 "zgate_api_request_duration_seconds_sum %s\n"
		 "zgate_api_request_duration_seconds_count %llu\n",
	     (unsigned long long)h.count, b, (unsigned long long)h.count);
	r = send_text(conn, rq, 200, "text/plain; version=0.0.4", m.p, m.n, NULL, NULL);
	free(m.p);
	return r;
}

/* ---------------------------------------------------------------- handlers */

static enum MHD_Result wrong_method(struct MHD_Connection *conn, struct req *rq,
				    const char *allow)
{
	return send_error(conn, rq, 405, "method not allowed", MHD_HTTP_HEADER_ALLOW, allow);
}

/* A request for the web UI (/, /ui, /ui/...): its file, a redirection to
 * /ui/ or 404, each with headers that keep the page to its own files
 * (API_UI_CSP) and out of caches and Referers. The files need no
 * credentials: every API call the page makes does. */
static enum MHD_Result send_ui(struct MHD_Connection *conn, struct req *rq, int get)
{
	static const char moved[] = "see /ui/\n";
	static const char missing[] = "{\"error\":\"no such page\"}\n";
	struct MHD_Response *res;
	unsigned code;

	if (!get)
		return wrong_method(conn, rq, "GET, HEAD");
	if (rq->ui == API_UI_ASSET) {
		code = 200;
		res = MHD_create_response_from_buffer(rq->asset->len,
						      (void *)(uintptr_t)rq->asset->data,
						      MHD_RESPMEM_PERSISTENT);
	} else if (rq->ui == API_UI_REDIRECT) {
		code = 302;
		res = MHD_create_response_from_buffer(sizeof(moved) - 1, (void *)(uintptr_t)moved,
						      MHD_RESPMEM_PERSISTENT);
	} else {
		code = 404;
		res = MHD_create_response_from_buffer(sizeof(missing) - 1,
						      (void *)(uintptr_t)missing,
						      MHD_RESPMEM_PERSISTENT);
	}
	if (res == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE,
				      code == 200   ? rq->asset->type
				      : code == 302 ? "text/plain; charset=utf-8"
						    : "application/json");
	if (code == 302)
		(void)MHD_add_response_header(res, MHD_HTTP_HEADER_LOCATION, "/ui/");
	(void)MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	(void)MHD_add_response_header(res, "Content-Security-Policy", API_UI_CSP);
	(void)MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
	(void)MHD_add_response_header(res, "Referrer-Policy", "no-referrer");
	return queue(conn, rq, code, res);
}

static enum MHD_Result refuse(struct api_server *s, struct MHD_Connection *conn,
			      struct req *rq, const struct ident *id)
{
	__atomic_fetch_add(&s->auth_failures, 1, __ATOMIC_RELAXED);
	if (id->who == WHO_NONE)
		return send_error(conn, rq, 401,
				  "credentials required: a relay or admin client certificate, or "
				  "an admin bearer token",
				  MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (id->who == WHO_BAD)
		return send_error(conn, rq, 401, id->why, NULL, NULL);
	return send_error(conn, rq, 403, "this endpoint is for admins", NULL, NULL);
}

static enum MHD_Result handle_allocate(struct api_server *s, struct MHD_Connection *conn,
				       struct req *rq, const struct ident *id)
{
	struct api_alloc_req ar;
	struct api_lease l;
	enum api_alloc_how how;
	const char *relay;
	uint64_t held = 0;
	char err[256];
	int r;

	rq->ep = EP_ALLOCATE;
	if ((r = api_parse_alloc(rq->body, rq->len, &ar, err, sizeof(err))) != 0)
		return send_error(conn, rq, r == ZG_ERR_TOO_LARGE ? 413 : 400, err, NULL, NULL);
	relay = ar.relay_id;
	if (id->who == WHO_RELAY) {
		if (relay[0] != '\0' && strcmp(relay, id->name) != 0)
			return send_error(conn, rq, 403,
					  "relay_id differs from the relay's certificate", NULL, NULL);
		relay = id->name;
	}
	r = api_db_allocate(s->db, &s->pool, &ar, relay, &l, &how, &held);
	if (r == ZG_ERR_STATE) {
		char msg[400];
		struct timespec now;
		int say;

		__atomic_fetch_add(&s->over_quota, 1, __ATOMIC_RELAXED);
		clock_gettime(CLOCK_MONOTONIC, &now);
		pthread_mutex_lock(&s->mu);
		say = now.tv_sec - s->quota_log_ms / 1000 >= 10 || s->quota_log_ms == 0;
		if (say)
			s->quota_log_ms = (int64_t)now.tv_sec * 1000;
		pthread_mutex_unlock(&s->mu);
		(void)snprintf(msg, sizeof(msg),
			       "relay %s holds %llu leases, its quota (max_leases_per_relay) is %u: "
			       "no new address for %s",
			       relay, (unsigned long long)held, s->pool.max_per_relay, ar.client_id);
		if (say)
			log_warnx("%s (logged at most every 10 s)", msg);
		return send_error(conn, rq, 429, msg, NULL, NULL);
	}
	if (r == ZG_ERR_LIMIT) {
		__atomic_fetch_add(&s->exhausted, 1, __ATOMIC_RELAXED);
		log_warnx("pool exhausted: no address for %s", ar.client_id);
		return send_error(conn, rq, 409, "address pool exhausted", NULL, NULL);
	}
	if (r != 0)
		return db_failed(conn, rq, r);
	__atomic_fetch_add(&s->allocations[how], 1, __ATOMIC_RELAXED);
	if (how == API_ALLOC_RECLAIMED)
		log_info("reclaimed an expired lease for %s", ar.client_id);
	return send_lease(conn, rq, how == API_ALLOC_EXISTING ? 200 : 201, &l, how_names[how]);
}

/* The answer to a request whose body (if any) has been read; rq->rt and
 * rq->id were decided at its head. */
/* GET ipam/allocations?relay_id=ID&after=CLIENT&limit=N (admins): one
 * page of leases in client id order; "next" is the "after" of the next
 * page, null on the last. */
static enum MHD_Result handle_list(struct api_server *s, struct MHD_Connection *conn,
				   struct req *rq)
{
	const char *relay = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "relay_id");
	const char *after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
	const char *lim = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
	unsigned long limit = 100;
	struct api_lease *ls = NULL;
	struct mbuf m = { NULL, 0, 0 };
	size_t n = 0;
	char *end, q[API_CLIENT_ID_MAX + 8];
	enum MHD_Result res;
	int r;

	if (relay != NULL && !api_id_valid(relay, strlen(relay), API_RELAY_ID_MAX))
		return send_error(conn, rq, 400, "relay_id must be 1 to 64 characters of A-Z a-z 0-9 "
						 ". _ - @ : +",
				  NULL, NULL);
	if (after != NULL && !api_id_valid(after, strlen(after), API_CLIENT_ID_MAX))
		return send_error(conn, rq, 400, "after must be a client id", NULL, NULL);
	if (lim != NULL) {
		errno = 0;
		limit = strtoul(lim, &end, 10);
		if (errno != 0 || end == lim || *end != '\0' || limit < 1 || limit > API_LIST_MAX)
			return send_error(conn, rq, 400, "limit must be 1 to 1000", NULL, NULL);
	}
	/* one more than asked: whether there is a next page */
	ls = calloc(limit + 1, sizeof(*ls));
	m.cap = (limit + 1) * 700 + 256;
	m.p = malloc(m.cap);
	if (ls == NULL || m.p == NULL) {
		free(ls);
		free(m.p);
		return MHD_NO;
	}
	r = api_db_list(s->db, &s->pool, relay ? relay : "", after ? after : "",
			(unsigned)limit + 1, ls, &n);
	if (r != 0) {
		free(ls);
		free(m.p);
		return db_failed(conn, rq, r);
	}
	mout(&m, "{\"allocations\":[");
	for (size_t i = 0; i < n && i < limit; i++) {
		char one[768];

		(void)lease_json(one, sizeof(one), &ls[i], NULL);
		mout(&m, "%s%s", i ? "," : "", one);
	}
	if (n > limit) {
		(void)api_json_quote(q, sizeof(q), ls[limit - 1].client_id);
		mout(&m, "],\"next\":%s}\n", q);
	} else {
		mout(&m, "],\"next\":null}\n");
	}
	res = send_text(conn, rq, 200, "application/json", m.p, m.n, NULL, NULL);
	free(ls);
	free(m.p);
	return res;
}

/* The endpoint label (for /metrics) of policy endpoint k and method, and
 * who may call it: *prole 2 admins, 1 relays too (GET /api/v1/policy), 0
 * nobody, k has no such method (*pallow: the methods it has). (Numbers:
 * enum role is defined below, with the head's checks.) */
static enum ep policy_ep(enum api_route_kind k, const char *method, int *prole,
			 const char **pallow)
{
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int post = strcmp(method, "POST") == 0;

	*prole = 2;
	switch (k) {
	case API_R_POLICIES:
		*pallow = "GET, HEAD, POST";
		*prole = get || post ? 2 : 0;
		return post ? EP_POLICY_CREATE : EP_POLICY_LIST;
	case API_R_POLICY_VALIDATE:
		*pallow = "POST";
		*prole = post ? 2 : 0;
		return EP_POLICY_VALIDATE;
	case API_R_POLICY_ONE:
		*pallow = "GET, HEAD";
		*prole = get ? 2 : 0;
		return EP_POLICY_GET;
	case API_R_POLICY_ACTIVATE:
		*pallow = "POST";
		*prole = post ? 2 : 0;
		return EP_POLICY_ACTIVATE;
	case API_R_POLICY_ACTIVATIONS:
		*pallow = "GET, HEAD";
		*prole = get ? 2 : 0;
		return EP_POLICY_ACTIVATIONS;
	default: /* API_R_POLICY_ACTIVE: relays fetch it */
		*pallow = "GET, HEAD";
		*prole = get ? 1 : 0;
		return EP_POLICY;
	}
}

/* Whether k is one of the policy endpoints. */
static int is_policy(enum api_route_kind k)
{
	return k >= API_R_POLICIES && k <= API_R_POLICY_ACTIVATIONS;
}

/* A policy endpoint: the method and role checked here, the answer made
 * by policy_routes.c. */
static enum MHD_Result handle_policy(struct api_server *s, struct MHD_Connection *conn,
				     struct req *rq, const char *method)
{
	struct api_policy_call c;
	struct MHD_Response *res;
	const char *allow;
	char by[API_POLICY_BY_MAX];
	unsigned code;
	int role;

	rq->ep = policy_ep(rq->rt.kind, method, &role, &allow);
	if (role == 0)
		return wrong_method(conn, rq, allow);
	if (!(rq->id.who == WHO_ADMIN || (rq->id.who == WHO_RELAY && role == 1)))
		return refuse(s, conn, rq, &rq->id);
	if (rq->id.who == WHO_RELAY)
		(void)snprintf(by, sizeof(by), "relay:%s", rq->id.name);
	else if (rq->id.token)
		(void)snprintf(by, sizeof(by), "token");
	else
		(void)snprintf(by, sizeof(by), "admin:%s", rq->id.name);
	memset(&c, 0, sizeof(c));
	c.kind = rq->rt.kind;
	c.post = strcmp(method, "POST") == 0;
	c.id = rq->rt.policy_id;
	c.by = by;
	c.body = rq->big != NULL ? rq->big : rq->body;
	c.len = rq->len;
	c.limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
	c.before = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "before");
	c.if_none_match = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_IF_NONE_MATCH);
	if ((res = api_policy_answer(s->pol, &c, &code)) == NULL)
		return MHD_NO;
	return queue(conn, rq, code, res);
}

static enum MHD_Result dispatch(struct api_server *s, struct MHD_Connection *conn,
				struct req *rq, const char *method)
{
	const struct api_route rt = rq->rt;
	const struct ident id = rq->id;
	struct api_lease l;
	char err[256], relay[API_RELAY_ID_MAX + 1];
	int r, get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (rq->ui != API_UI_NONE)
		return send_ui(conn, rq, get);
	if (rq->route_bad) {
		rq->ep = EP_OTHER;
		return send_error(conn, rq, 400, rt.why, NULL, NULL);
	}
	switch (rt.kind) {
	case API_R_HEALTH:
		rq->ep = EP_HEALTH;
		if (!get)
			return wrong_method(conn, rq, "GET, HEAD");
		return send_text(conn, rq, 200, "text/plain", "ok\n", 3, NULL, NULL);
	case API_R_READY:
		rq->ep = EP_READY;
		if (!get)
			return wrong_method(conn, rq, "GET, HEAD");
		if (api_db_ping(s->db) != 0)
			return send_text(conn, rq, 503, "text/plain", "database unreachable\n", 21,
					 NULL, NULL);
		return send_text(conn, rq, 200, "text/plain", "ready\n", 6, NULL, NULL);
	case API_R_METRICS:
		rq->ep = EP_METRICS;
		if (!get)
			return wrong_method(conn, rq, "GET, HEAD");
		return send_metrics(s, conn, rq);
	case API_R_NONE:
		rq->ep = EP_OTHER;
		return send_error(conn, rq, 404, "no such endpoint", NULL, NULL);
	default:
		break;
	}
	switch (rt.kind) {
	case API_R_ALLOCS:
		if (get) {
			rq->ep = EP_LIST;
			if (id.who != WHO_ADMIN)
				return refuse(s, conn, rq, &id);
			return handle_list(s, conn, rq);
		}
		rq->ep = EP_ALLOCATE;
		if (strcmp(method, "POST") != 0)
			return wrong_method(conn, rq, "GET, HEAD, POST");
		if (id.who != WHO_RELAY && id.who != WHO_ADMIN)
			return refuse(s, conn, rq, &id);
		return handle_allocate(s, conn, rq, &id);
	case API_R_ALLOC:
		if (get) {
			rq->ep = EP_GET;
			if (id.who != WHO_RELAY && id.who != WHO_ADMIN)
				return refuse(s, conn, rq, &id);
			r = api_db_get(s->db, &s->pool, rt.client_id, &l);
		} else if (strcmp(method, "DELETE") == 0) {
			rq->ep = EP_RELEASE;
			if (id.who != WHO_ADMIN)
				return refuse(s, conn, rq, &id);
			r = api_db_release(s->db, &s->pool, rt.client_id, &l);
			if (r == 0)
				log_info("%s released the lease of %s", id.name, rt.client_id);
		} else {
			rq->ep = EP_GET;
			return wrong_method(conn, rq, "GET, HEAD, DELETE");
		}
		return r == 0 ? send_lease(conn, rq, 200, &l, NULL) : db_failed(conn, rq, r);
	case API_R_REFRESH:
		rq->ep = EP_REFRESH;
		if (strcmp(method, "PUT") != 0)
			return wrong_method(conn, rq, "PUT");
		if (id.who != WHO_RELAY && id.who != WHO_ADMIN)
			return refuse(s, conn, rq, &id);
		if ((r = api_parse_refresh(rq->body, rq->len, relay, err, sizeof(err))) != 0)
			return send_error(conn, rq, 400, err, NULL, NULL);
		if (id.who == WHO_RELAY) {
			if (relay[0] != '\0' && strcmp(relay, id.name) != 0)
				return send_error(conn, rq, 403,
						  "relay_id differs from the relay's certificate",
						  NULL, NULL);
			(void)snprintf(relay, sizeof(relay), "%s", id.name);
		}
		r = api_db_refresh(s->db, &s->pool, rt.client_id, relay, &l);
		if (r == ZG_ERR_RANGE)
			return refresh_out_of_pool(s, conn, rq, &l);
		return r == 0 ? send_lease(conn, rq, 200, &l, NULL) : db_failed(conn, rq, r);
	case API_R_STATS: {
		struct api_stats st;
		char body[256];

		rq->ep = EP_STATS;
		if (!get)
			return wrong_method(conn, rq, "GET, HEAD");
		if (id.who != WHO_ADMIN)
			return refuse(s, conn, rq, &id);
		if ((r = api_db_stats(s->db, &s->pool, &st)) != 0)
			return db_failed(conn, rq, r);
		(void)snprintf(body, sizeof(body),
			       "{\"size\":%llu,\"allocated\":%llu,\"free\":%llu,\"expired\":%llu,"
			       "\"lease_ttl_seconds\":%u}\n",
			       (unsigned long long)st.size, (unsigned long long)st.allocated,
			       (unsigned long long)(st.size - st.allocated),
			       (unsigned long long)st.expired, s->pool.ttl_s);
		return send_json(conn, rq, 200, body);
	}
	case API_R_POLICIES:
	case API_R_POLICY_VALIDATE:
	case API_R_POLICY_ONE:
	case API_R_POLICY_ACTIVATE:
	case API_R_POLICY_ACTIVE:
	case API_R_POLICY_ACTIVATIONS:
		return handle_policy(s, conn, rq, method);
	default:
		break;
	}
	return send_error(conn, rq, 404, "no such endpoint", NULL, NULL);
}

/* Whether the request announces a body (Content-Length other than 0, or
 * chunked). */
static int has_body(struct MHD_Connection *conn)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
		return 1;
	return cl != NULL && cl[strspn(cl, "0 \t")] != '\0';
}

/* The credentials an endpoint and method need: ROLE_METHOD (no such
 * method), ROLE_ANY (relay or admin) or ROLE_ADMIN. */
enum role {
	ROLE_METHOD,
	ROLE_ANY,
	ROLE_ADMIN
};

static enum role role_needed(enum api_route_kind k, const char *method)
{
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	switch (k) {
	case API_R_ALLOCS:
		return get ? ROLE_ADMIN : strcmp(method, "POST") == 0 ? ROLE_ANY
								      : ROLE_METHOD;
	case API_R_ALLOC:
		return get ? ROLE_ANY : strcmp(method, "DELETE") == 0 ? ROLE_ADMIN
								      : ROLE_METHOD;
	case API_R_REFRESH:
		return strcmp(method, "PUT") == 0 ? ROLE_ANY : ROLE_METHOD;
	case API_R_STATS:
		return get ? ROLE_ADMIN : ROLE_METHOD;
	default:
		if (is_policy(k)) {
			const char *allow;
			int role;

			(void)policy_ep(k, method, &role, &allow);
			return role == 2 ? ROLE_ADMIN : role == 1 ? ROLE_ANY
								  : ROLE_METHOD;
		}
		return ROLE_METHOD;
	}
}

/* The body limit of the request, decided on its head (cl: its
 * Content-Length or NULL): API_BODY_MAX, or API_POLICY_BODY_MAX for a
 * policy document (POST policies and policies/validate), which also
 * takes one of the few large-body slots when the body may pass
 * API_BODY_MAX (announced so, or chunked). Returns 0, or -1 with *pres
 * the result of queueing the answer (413 over the limit, 503 when no slot
 * is free). */
static int body_limit(struct api_server *s, struct MHD_Connection *conn, struct req *rq,
		      const char *method, const char *cl, enum MHD_Result *pres)
{
	unsigned long long n = cl != NULL ? strtoull(cl, NULL, 10) : 0;
	char msg[160];

	rq->max = API_BODY_MAX;
	if ((rq->rt.kind == API_R_POLICIES || rq->rt.kind == API_R_POLICY_VALIDATE) &&
	    strcmp(method, "POST") == 0)
		rq->max = API_POLICY_BODY_MAX;
	if (n > rq->max) {
		(void)snprintf(msg, sizeof(msg), "body larger than %zu bytes%s", rq->max,
			       rq->max > API_BODY_MAX ? " (a policy document may be 1 MiB, 1048576 "
							"bytes, once decoded)"
						      : "");
		*pres = send_error(conn, rq, 413, msg, NULL, NULL);
		return -1;
	}
	if (rq->max > API_BODY_MAX && has_body(conn) && (cl == NULL || n > API_BODY_MAX)) {
		if (!api_policies_big_take(s->pol)) {
			*pres = send_error(conn, rq, 503,
					   "too many large policy requests at once; try again",
					   "Retry-After", "1");
			return -1;
		}
		rq->slot = 1;
	}
	return 0;
}

/* What is decided as soon as the head is complete, before any of the body
 * is read: cross-site requests, the endpoint, the method, the
 * credentials, the body's type and announced size. Returns MHD_YES to go
 * on reading the request, or the result of queueing the answer
 * (rq->answered set; a refusal closes the connection, and MHD drops a body
 * it has not read). */
static enum MHD_Result head(struct api_server *s, struct MHD_Connection *conn, struct req *rq,
			    const char *url, const char *method)
{
	const char *cl, *why;
	enum role need;
	enum MHD_Result res;

	head_arrived(s, conn);
	rq->answered = 1;
	rq->close = 1;
	/* A GET or HEAD of the UI's pages (its files, the / and /ui
	 * redirects, its 404) is let through whatever Origin and
	 * Sec-Fetch-Site say: a link from another site (a wiki) must open the
	 * page. They need no credentials, act on nothing and are never framed
	 * (API_UI_CSP); every API call the page then makes meets the rule. */
	rq->ui = api_ui_lookup(url, &rq->asset);
	if (rq->ui == API_UI_NONE ||
	    !(strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
		why = api_origin_refused(
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"),
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site"),
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
			&s->names);
		if (why != NULL)
			return send_error(conn, rq, 403, why, NULL, NULL);
	}
	if (rq->ui != API_UI_NONE) {
		rq->ep = EP_UI;
		goto public;
	}
	rq->route_bad = api_route_parse(url, &rq->rt) != 0;
	switch (rq->route_bad ? API_R_NONE : rq->rt.kind) {
	case API_R_NONE:
	case API_R_HEALTH:
	case API_R_READY:
	case API_R_METRICS:
		/* Need no credentials and no body. One that announces a body is
		 * answered now, and closed, rather than read; else the answer
		 * waits for the end of the request (an answer queued now makes
		 * MHD close the connection: no keep-alive). */
		goto public;
	default:
		break;
	}
	need = role_needed(rq->rt.kind, method);
	if (need == ROLE_METHOD)
		goto public; /* 405 with Allow */
	/* the endpoint, for /metrics, whatever the answer */
	rq->ep = rq->rt.kind == API_R_ALLOCS    ? (need == ROLE_ADMIN ? EP_LIST : EP_ALLOCATE)
		 : rq->rt.kind == API_R_REFRESH ? EP_REFRESH
		 : rq->rt.kind == API_R_STATS   ? EP_STATS
		 : need == ROLE_ADMIN           ? EP_RELEASE
						: EP_GET;
	if (is_policy(rq->rt.kind)) {
		const char *allow;
		int role;

		rq->ep = policy_ep(rq->rt.kind, method, &role, &allow);
	}
	identify(s, conn, &rq->id);
	if (!(rq->id.who == WHO_ADMIN || (rq->id.who == WHO_RELAY && need == ROLE_ANY)))
		return refuse(s, conn, rq, &rq->id);
	if (has_body(conn) &&
	    !api_content_type_json(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							       MHD_HTTP_HEADER_CONTENT_TYPE)))
		return send_error(conn, rq, 415,
				  "a request with a body must have Content-Type: application/json",
				  NULL, NULL);
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (body_limit(s, conn, rq, method, cl, &res) != 0)
		return res;
	rq->answered = 0;
	rq->close = 0;
	return MHD_YES;

      public:
	if (has_body(conn))
		return dispatch(s, conn, rq, method);
	rq->answered = 0;
	rq->close = 0;
	rq->nobody = 1;
	return MHD_YES;
}

/* A body that announced no length (chunked) has passed rq->max:
 * refused now rather than read to its end, however long that is. MHD
 * cannot queue a response while a body is arriving (MHD_queue_response
 * refuses in that state, up to libmicrohttpd 1.0), so the 413 goes out
 * directly on the connection's TLS session, best effort (this is the
 * connection's own thread, and nothing of a response was sent yet), and
 * MHD_NO makes MHD close the connection. Counted like any 413. */
static enum MHD_Result body_too_large(struct MHD_Connection *conn, struct req *rq)
{
	char body[96], msg[320];
	int bl, n;
	const union MHD_ConnectionInfo *ti =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);

	bl = snprintf(body, sizeof(body), "{\"error\":\"body larger than %zu bytes\"}\n", rq->max);
	n = snprintf(msg, sizeof(msg),
		     "HTTP/1.1 413 Content Too Large\r\n"
		     "Content-Type: application/json\r\n"
		     "Cache-Control: no-store\r\n"
		     "Connection: close\r\n"
		     "Content-Length: %d\r\n\r\n%s",
		     bl, body);
	rq->code = 413;
	rq->answered = 1;
	if (ti != NULL && ti->tls_session != NULL && bl > 0 && n > 0 && (size_t)n < sizeof(msg))
		(void)gnutls_record_send((gnutls_session_t)ti->tls_session, msg, (size_t)n);
	return MHD_NO;
}

/* Appends n bytes of body to rq: into rq->body while it fits, else into
 * rq->big, grown by doubling up to rq->max + 1 (a large body holds a
 * slot, body_limit()). Returns 0, or -1 when out of memory or past the
 * limit without a slot (MHD_NO). */
static int body_append(struct req *rq, const char *data, size_t n)
{
	size_t need = rq->len + n + 1;

	if (rq->big == NULL && need <= sizeof(rq->body)) {
		memcpy(rq->body + rq->len, data, n);
		rq->len += n;
		return 0;
	}
	if (!rq->slot)
		return -1;
	if (need > rq->bigcap) {
		size_t cap = rq->bigcap ? rq->bigcap : 65536;
		char *b;

		while (cap < need)
			cap *= 2;
		if (cap > rq->max + 1)
			cap = rq->max + 1;
		if ((b = realloc(rq->big, cap)) == NULL)
			return -1;
		if (rq->big == NULL)
			memcpy(b, rq->body, rq->len);
		rq->big = b;
		rq->bigcap = cap;
	}
	memcpy(rq->big + rq->len, data, n);
	rq->len += n;
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct req *rq = *con_cls;

	(void)version;
	if (rq == NULL) {
		rq = calloc(1, sizeof(*rq));
		if (rq == NULL)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &rq->start);
		rq->ep = EP_OTHER;
		rq->max = API_BODY_MAX;
		*con_cls = rq;
		return head(s, conn, rq, url, method);
	}
	if (rq->answered) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		size_t n = *upload_data_size;

		if (rq->nobody) /* not announced: cannot be */
			return MHD_NO;
		if (n > rq->max - rq->len)
			return body_too_large(conn, rq);
		if (body_append(rq, upload_data, n) != 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	(rq->big != NULL ? rq->big : rq->body)[rq->len] = '\0';
	rq->answered = 1;
	return dispatch(s, conn, rq, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_server *s = cls;
	struct req *rq = *con_cls;
	struct timespec now;
	uint64_t us;

	if (rq == NULL)
		return;
	*con_cls = NULL;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !rq->close)
		head_awaited(s, conn);
	for (size_t c = 0; c < N_CODES; c++)
		if (codes[c] == rq->code)
			__atomic_fetch_add(&s->requests[rq->ep][c], 1, __ATOMIC_RELAXED);
	if (rq->ep == EP_ALLOCATE || rq->ep == EP_GET || rq->ep == EP_REFRESH ||
	    rq->ep == EP_RELEASE || rq->ep == EP_STATS || rq->ep == EP_LIST) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		us = (uint64_t)(now.tv_sec - rq->start.tv_sec) * 1000000u +
		     (uint64_t)((now.tv_nsec - rq->start.tv_nsec) / 1000);
		pthread_mutex_lock(&s->mu);
		zg_histo_observe(&s->latency, us);
		pthread_mutex_unlock(&s->mu);
	}
	if (rq->slot)
		api_policies_big_give(s->pol);
	free(rq->big);
	free(rq);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt,
							  va_list ap)
{
	char line[512];

	(void)cls;
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("libmicrohttpd: %s", line);
}

static void stop_threads(struct api_server *s)
{
	if (!s->watchdog_on && !s->sweeper_on)
		return;
	pthread_mutex_lock(&s->cmu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->wcv);
	pthread_mutex_unlock(&s->cmu);
	if (s->watchdog_on)
		pthread_join(s->watchdog, NULL);
	if (s->sweeper_on)
		pthread_join(s->sweeper, NULL);
	s->watchdog_on = s->sweeper_on = 0;
}

int api_server_start(const struct api_config *cfg, struct api_db *db, const char *token,
		     struct api_server **ps, char *err, size_t errlen)
{
	struct api_server *s = calloc(1, sizeof(*s));
	struct addrinfo hints, *ai = NULL;
	char host[256], port[8];
	uint16_t p;
	unsigned flags;
	int r, g;

	if (s == NULL)
		return ZG_ERR_NOMEM;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->cmu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->wcv, &ca);
		pthread_condattr_destroy(&ca);
	}
	s->max_per_addr = cfg->max_conns_per_address;
	s->head_timeout_ms = cfg->head_timeout_ms;
	s->refused_log_ms = s->timeouts_log_ms = INT64_MIN / 2;
	/* a seed an attacker cannot know, against crafted collisions */
	if (gnutls_rnd(GNUTLS_RND_NONCE, &s->ip_seed, sizeof(s->ip_seed)) != 0)
		s->ip_seed = (uint32_t)now_ms();
	s->ip_seed ^= FNV32_INIT;
	if ((s->ips = calloc(IPTAB, sizeof(*s->ips))) == NULL) {
		zg_seterr(err, errlen, "out of memory");
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	/* before the watchdog starts: it looks at the CRL file */
	(void)snprintf(s->crl_path, sizeof(s->crl_path), "%s", cfg->crl);
	(void)snprintf(s->ca_path, sizeof(s->ca_path), "%s", cfg->ca);
	if (cfg->crl[0] != '\0' && (r = crl_reload(s, "start", err, errlen)) != 0)
		goto fail;
	if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0) {
		zg_seterr(err, errlen, "cannot start a thread");
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	s->watchdog_on = 1;
	s->db = db;
	(void)snprintf(s->pool_text, sizeof(s->pool_text), "%s", cfg->pool);
	s->pool.first = cfg->pool_first;
	s->pool.last = cfg->pool_last;
	s->pool.ttl_s = cfg->lease_ttl_ms / 1000;
	s->pool.max_per_relay = cfg->max_leases_per_relay;
	s->sweep_interval_ms = cfg->sweep_interval_ms;
	if ((r = api_policies_new(db, &s->pol)) != 0) {
		zg_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0) {
		zg_seterr(err, errlen, "cannot start a thread");
		r = ZG_ERR_NOMEM;
		goto fail;
	}
	s->sweeper_on = 1;
	api_server_set_token(s, token);
	if ((r = load_tls(cfg, &s->cert, &s->key, &s->ca, err, errlen)) != 0)
		goto fail;
	{
		size_t skipped;

		if ((r = api_names_from_pem(s->cert, &s->names, &skipped, err, errlen)) != 0)
			goto fail;
		if (skipped > 0)
			log_warnx("cert %s: %zu of its names left out (more than %d, or too long): "
				  "the web UI cannot be used under them",
				  cfg->cert, skipped, API_NAMES_MAX);
		if (s->names.n == 0)
			log_warnx("cert %s has no DNS or IP names: every request of the web UI "
				  "will be refused (its Host must be one of them)",
				  cfg->cert);
	}
	if (hostport_split(cfg->listen, host, sizeof(host), &p) != 0) {
		zg_seterr(err, errlen, "listen: \"%s\" is not HOST:PORT", cfg->listen);
		r = ZG_ERR_CONFIG;
		goto fail;
	}
	(void)snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((g = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai)) != 0) {
		zg_seterr(err, errlen, "listen %s: %s", cfg->listen, gai_strerror(g));
		r = ZG_ERR_CONFIG;
		goto fail;
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->d = MHD_start_daemon(flags, p, on_accept, s, on_request, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
				MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
				MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
				MHD_OPTION_HTTPS_MEM_KEY, s->key,
				MHD_OPTION_HTTPS_MEM_CERT, s->cert,
				MHD_OPTION_HTTPS_MEM_TRUST, s->ca,
				MHD_OPTION_HTTPS_PRIORITIES,
				"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				MHD_OPTION_END);
	freeaddrinfo(ai);
	if (s->d == NULL) {
		zg_seterr(err, errlen, "cannot listen on %s (in use, or not an address of this host?)",
			  cfg->listen);
		r = ZG_ERR_IO;
		goto fail;
	}
	*ps = s;
	return 0;
fail:
	stop_threads(s);
	api_policies_free(s->pol);
	free(s->ips);
	pthread_cond_destroy(&s->wcv);
	pthread_mutex_destroy(&s->cmu);
	crlset_free(s->crl);
	free(s->cert);
	free(s->key);
	free(s->ca);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return r;
}

void api_server_stop(struct api_server *s)
{
	if (s == NULL)
		return;
	stop_threads(s);
	MHD_stop_daemon(s->d);
	api_policies_free(s->pol);
	free(s->ips);
	pthread_cond_destroy(&s->wcv);
	pthread_mutex_destroy(&s->cmu);
	crlset_free(s->crl);
	free(s->cert);
	free(s->key);
	free(s->ca);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
