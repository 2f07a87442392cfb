/*
 * The transport's request, capsule and datagram paths, end to end: a real
 * client and server (TLS, QUIC, HTTP/3) joined by src/masque/memnet. The
 * first byte picks what the rest of the input is:
 *   0  :protocol NUL :path of a new CONNECT request (answered, never a crash;
 *      a tunnel opens only for connect-ip and a path the template matches)
 *   1  bytes the client writes on an open tunnel stream (server's capsule parser)
 *   2  a QUIC DATAGRAM payload from the client (server's datagram path)
 *   3  bytes the server writes on the tunnel stream (client's capsule parser)
 * One tunnel is kept open across inputs and rebuilt when an input closes it.
 * Needs ZG_ROOT (the repository) to make a PKI with scripts/gen-certs.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "masque/masque.h"
#include "masque/masque_int.h"
#include "masque/memnet.h"
#include "masque/uri.h"

#define SEC UINT64_C(1000000000)
#define TEMPLATE "https://relay.test:4433/.well-known/masque/ip/{target}/{ipproto}/"

static struct memnet net;
static struct memnet_ep cl;
static WOLFSSL_CTX *sctx, *cctx;
static struct masque_config scfg, ccfg;
static struct masque_conn *server_side;
static int opened, closed;
static char srv_reason[128], cl_reason[128]; /* the last close of each side */
static char pki[64];

static int on_request(struct masque_conn *c, const struct masque_request *rq,
		      struct masque_accept *acc, void *ctx)
{
	static struct cip_route r = { 4, { 10, 0, 0, 0 }, { 10, 255, 255, 255 }, 0 };

	(void)rq;
	(void)ctx;
	server_side = c;
	acc->naddrs = 1;
	acc->addrs[0].version = 4;
	acc->addrs[0].addr[0] = 10;
	acc->addrs[0].addr[1] = 100;
	acc->addrs[0].addr[3] = 7;
	acc->addrs[0].prefix_len = 32;
	acc->routes = &r;
	acc->nroutes = 1;
	return 200;
}

static int on_address_request(struct masque_conn *c, const struct cip_addr *req, size_t n,
			      struct cip_addr *out, size_t *nout, void *ctx)
{
	size_t i;

	(void)c;
	(void)ctx;
	for (i = 0; i < n; i++)
		(void)cip_addr_refusal(&req[i], &out[i]);
	*nout = n;
	return 0;
}

static void on_open(struct masque_conn *c, void *ctx)
{
	(void)c;
	(void)ctx;
	opened = 1;
}

static void on_close(struct masque_conn *c, const struct masque_close_info *ci, void *ctx)
{
	(void)ctx;
	snprintf(c == cl.conn ? cl_reason : srv_reason, sizeof(srv_reason), "%s", ci->reason);
	if (c == server_side)
		server_side = NULL;
	if (c == cl.conn) {
		cl.conn = NULL;
		closed = 1;
	}
}

static const struct masque_cbs cbs = {
	.on_request = on_request,
	.on_address_request = on_address_request,
	.on_open = on_open,
	.on_close = on_close,
};

static int done(void *arg)
{
	(void)arg;
	return opened || closed;
}

static void connect_client(const char *protocol, const char *path)
{
	opened = closed = 0;
	ccfg.test_protocol = protocol;
	ccfg.path = path;
	if (masque_client_new(&ccfg, &cbs, NULL, (struct sockaddr *)&cl.addr, sizeof(cl.addr),
			      (struct sockaddr *)&net.server.addr, sizeof(net.server.addr),
			      &cl.conn) != 0)
		abort();
	memnet_run(&net, done, NULL, 5 * SEC);
}

static void drop_client(void)
{
	if (cl.conn != NULL) {
		masque_conn_close(cl.conn, 0, "fuzz");
		memnet_run(&net, NULL, NULL, SEC);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *root = getenv("ZG_ROOT");
	char cmd[512], err[256], a[128], b[128], c[128];

	(void)argc;
	(void)argv;
	snprintf(pki, sizeof(pki), "/tmp/zg-fuzz-masque-XXXXXX");
	if (mkdtemp(pki) == NULL)
		abort();
	snprintf(cmd, sizeof(cmd), "%s/scripts/gen-certs.sh -d %s -c agent-1 >/dev/null",
		 root ? root : ".", pki);
	if (system(cmd) != 0) {
		fprintf(stderr, "fuzz_masque_server: set ZG_ROOT to the repository\n");
		abort();
	}
	snprintf(a, sizeof(a), "%s/relay.crt", pki);
	snprintf(b, sizeof(b), "%s/relay.key", pki);
	snprintf(c, sizeof(c), "%s/ca.crt", pki);
	if (tls_server_ctx_new(a, b, c, NULL, &sctx, err, sizeof(err)) != 0)
		abort();
	snprintf(a, sizeof(a), "%s/agent-1.crt", pki);
	snprintf(b, sizeof(b), "%s/agent-1.key", pki);
	if (tls_client_ctx_new(a, b, c, &cctx, err, sizeof(err)) != 0)
		abort();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pki);
	(void)system(cmd);
	if (memnet_init(&net) != 0)
		abort();
	memnet_client(&net, 0, &cl);
	scfg.tls = sctx;
	scfg.io = &memnet_io;
	scfg.ioctx = &net.server;
	scfg.uri_template = TEMPLATE;
	scfg.retry_off = 1;
	if (masque_server_new(&scfg, &cbs, NULL, &net.srv) != 0)
		abort();
	ccfg.tls = cctx;
	ccfg.io = &memnet_io;
	ccfg.ioctx = &cl;
	ccfg.server_name = "localhost";
	ccfg.authority = "relay.test:4433";
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *path = "/.well-known/masque/ip/*/*/";
	char proto[64], p[1024];
	const uint8_t *nul;
	size_t k;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		drop_client();
		nul = memchr(data + 1, 0, size - 1);
		k = nul ? (size_t)(nul - data - 1) : 0;
		if (k >= sizeof(proto) || size - 1 - k - (nul ? 1 : 0) >= sizeof(p))
			return 0;
		memcpy(proto, data + 1, k);
		proto[k] = '\0';
		k = size - 1 - k - (nul ? 1 : 0);
		memcpy(p, nul ? nul + 1 : data + 1, k);
		p[k] = '\0';
		if (memchr(p, 0, k) != NULL || memchr(proto, 0, strlen(proto)) != NULL)
			return 0;
		connect_client(proto, p);
		if (opened) {
			struct uri_scope sc;

			/* The server accepted: it must have been a valid request. */
			if (strcmp(proto, "connect-ip") != 0 || uri_match(TEMPLATE, p, &sc) != 0)
				abort();
		}
		drop_client();
		return 0;
	default:
		if (cl.conn == NULL || !masque_conn_is_open(cl.conn)) {
			drop_client();
			connect_client("connect-ip", path);
			if (!opened) {
				/* a valid request must always succeed */
				fprintf(stderr, "valid request refused: server: %s; client: %s\n",
					srv_reason, cl_reason);
				abort();
			}
		}
		if (data[0] % 4 == 1)
			(void)masque_conn_queue_raw(cl.conn, data + 1, size - 1);
		else if (data[0] % 4 == 2)
			(void)masque_conn_send_raw_datagram(cl.conn, data + 1, size - 1);
		else if (server_side != NULL)
			(void)masque_conn_queue_raw(server_side, data + 1, size - 1);
		memnet_run(&net, NULL, NULL, SEC / 20);
		return 0;
	}
}
