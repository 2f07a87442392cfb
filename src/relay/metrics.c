/*
 * metrics.c — the relay's /metrics exposition from a struct of values
 * (see metrics.h). Integers only: seconds are printed from microseconds
 * as exact decimals, so the text is the same on every machine.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "relay/metrics.h"
#include "zg_err.h"

struct mw {
	struct evbuffer *b;
	int err;
};

__attribute__((format(printf, 2, 3))) static void out(struct mw *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(w->b, fmt, ap) < 0)
		w->err = ZG_ERR_NOMEM;
	va_end(ap);
}

static void head(struct mw *w, const char *name, const char *type, const char *help)
{
	out(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct mw *w, const char *name, const char *type, const char *help, uint64_t v)
{
	head(w, name, type, help);
	out(w, "%s %llu\n", name, (unsigned long long)v);
}

/* A family with one label: n values, names[i] = v[i]. */
static void by(struct mw *w, const char *name, const char *type, const char *help,
	       const char *label, const char *const *names, const uint64_t *v, size_t n)
{
	size_t i;

	head(w, name, type, help);
	for (i = 0; i < n; i++)
		out(w, "%s{%s=\"%s\"} %llu\n", name, label, names[i], (unsigned long long)v[i]);
}

#define NV(a) (sizeof(a) / sizeof((a)[0]))
#define BY(w, name, type, help, label, names, ...)                       \
	do {                                                             \
		static const char *const n_[] = names;                   \
		const uint64_t v_[] = { __VA_ARGS__ };                   \
		_Static_assert(NV(n_) == NV(v_), "one value per label"); \
		by(w, name, type, help, label, n_, v_, NV(v_));          \
	} while (0)
#define L(...)              \
	{                   \
		__VA_ARGS__ \
	}

/* Microseconds as seconds, an exact decimal without trailing zeros. */
static void secs(char *buf, size_t len, uint64_t us)
{
	char frac[8];
	size_t n;

	(void)snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(us % 1000000u));
	for (n = strlen(frac); n > 0 && frac[n - 1] == '0'; n--)
		frac[n - 1] = '\0';
	if (frac[0] == '\0')
		(void)snprintf(buf, len, "%llu", (unsigned long long)(us / 1000000u));
	else
		(void)snprintf(buf, len, "%llu.%s", (unsigned long long)(us / 1000000u), frac);
}

static void histo(struct mw *w, const char *name, const char *help, const struct zg_histo *h)
{
	char s[32];
	uint64_t cum = 0;
	size_t i;

	head(w, name, "histogram", help);
	for (i = 0; i < ZG_HISTO_BOUNDS; i++) {
		cum += h->n[i];
		secs(s, sizeof(s), zg_histo_bounds_us[i]);
		out(w, "%s_bucket{le=\"%s\"} %llu\n", name, s, (unsigned long long)cum);
	}
	/* +Inf is the count, by definition (not the bucket sum, should a
	 * reader ever see a torn struct) */
	out(w, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
	secs(s, sizeof(s), h->sum_us);
	out(w, "%s_sum %s\n%s_count %llu\n", name, s, name, (unsigned long long)h->count);
}

/* A label value with \, " and newline escaped (text format 0.0.4). */
static void label_value(char *buf, size_t len, const char *v)
{
	size_t k = 0;

	for (; v != NULL && *v != '\0' && k + 3 < len; v++) {
		if (*v == '\\' || *v == '"') {
			buf[k++] = '\\';
			buf[k++] = *v;
		} else if (*v == '\n') {
			buf[k++] = '\\';
			buf[k++] = 'n';
		} else {
			buf[k++] = *v;
		}
	}
	buf[k] = '\0';
}

static void build_info(struct mw *w, const struct metrics_values *v)
{
	char ver[128], commit[128];

	label_value(ver, sizeof(ver), v->version != NULL ? v->version : "unknown");
	label_value(commit, sizeof(commit), v->commit != NULL ? v->commit : "unknown");
	head(w, "zgate_build_info", "gauge", "Always 1; the labels say which build this is.");
	out(w, "zgate_build_info{version=\"%s\",commit=\"%s\"} 1\n", ver, commit);
}

static void tunnels(struct mw *w, const struct metrics_values *v)
{
	one(w, "zgate_sessions", "gauge", "CONNECT-IP tunnels open now.", v->sessions);
	one(w, "zgate_quic_connections", "gauge", "QUIC connections, handshaking included.",
	    v->quic_connections);
	one(w, "zgate_sessions_opened_total", "counter", "Tunnels accepted since start.",
	    v->sessions_opened);
	one(w, "zgate_sessions_replaced_total", "counter",
	    "Tunnels closed because their client connected again (on any worker).",
	    v->sessions_replaced);
	BY(w, "zgate_tunnel_refused_total", "counter",
	   "CONNECT-IP requests refused, by the status answered: 400 not a valid CONNECT-IP "
	   "request (or a second one on a connection), 403 policy, 429 over "
	   "dns.resolutions_per_minute, 500 internal, 502 DNS-name target unresolved, 503 "
	   "relay full, draining or out of addresses.",
	   "status", L("400", "403", "429", "500", "502", "503"), v->refused_400, v->refused_403,
	   v->refused_429, v->refused_500, v->refused_502, v->refused_503);
	one(w, "zgate_dns_queries_total", "counter",
	    "DNS-name targets (C03) the relay resolved or tried to.", v->dns_queries);
	BY(w, "zgate_dns_refused_total", "counter",
	   "DNS-name targets refused without a query: policy allows the client nothing, "
	   "name not in dns.resolvable, over dns.resolutions_per_minute.",
	   "reason", L("policy", "not_listed", "rate"), v->dns_refused_policy,
	   v->dns_refused_not_listed, v->dns_refused_rate);
}

static void flows(struct mw *w, const struct metrics_values *v)
{
	const struct stack_counters *sc = &v->stack;
	uint64_t lwip_other = sc->lwip_tcp_drop;

	BY(w, "zgate_flows", "gauge", "Flows open now, by protocol.", "proto",
	   L("tcp", "udp", "icmp"), sc->flows_tcp, sc->flows_udp, sc->flows_icmp);
	BY(w, "zgate_flows_opened_total", "counter", "Flows opened since start, by protocol.",
	   "proto", L("tcp", "udp", "icmp"), sc->opened_tcp, sc->opened_udp, sc->opened_icmp);
	one(w, "zgate_flows_closed_idle_total", "counter", "Flows closed by their idle timeout.",
	    sc->closed_idle);
	one(w, "zgate_tcp_half_open", "gauge",
	    "TCP flows whose upstream connect is in progress now.", sc->halfopen_tcp);
	BY(w, "zgate_bytes_total", "counter",
	   "Flow payload bytes, by direction: up = client to destination, down = destination "
	   "to client.",
	   "direction", L("up", "down"), sc->bytes_up, sc->bytes_down);
	BY(w, "zgate_packets_total", "counter",
	   "Tunnel IP packets, by direction: up = from clients, down = to clients (the relay's "
	   "own refusals included).",
	   "direction", L("up", "down"), sc->pkts_in, sc->pkts_out);
	one(w, "zgate_tcp_acks_merged_total", "counter",
	    "Pure TCP ACKs toward clients not sent: a later segment of the same connection in "
	    "the same event-loop turn acknowledged as much.",
	    sc->acks_merged);
	BY(w, "zgate_tunnel_bytes_total", "counter",
	   "Bytes of the tunnel IP packets counted in zgate_packets_total, by direction.",
	   "direction", L("up", "down"), sc->bytes_in, sc->bytes_out);
	BY(w, "zgate_drops_total", "counter", "Packets dropped, by reason.", "reason",
	   L("malformed", "spoofed", "forbidden", "denied", "fragment", "unsupported", "limit",
	     "no_flow", "halfopen", "too_big", "no_session", "congested"),
	   sc->drop_malformed, sc->drop_spoofed, sc->drop_forbidden, sc->drop_denied,
	   sc->drop_fragment, sc->drop_unsupported, sc->drop_limit, sc->drop_no_flow,
	   sc->drop_halfopen, sc->drop_too_big + v->out_too_big, v->out_no_session,
	   v->out_congested);
	/* lwIP's tcp.drop counts the checksum and protocol errors too (the
	 * memory errors not): "other" is the rest, so the labels add up */
	lwip_other -= lwip_other >= sc->lwip_tcp_chkerr ? sc->lwip_tcp_chkerr : lwip_other;
	lwip_other -= lwip_other >= sc->lwip_tcp_proterr ? sc->lwip_tcp_proterr : lwip_other;
	BY(w, "zgate_lwip_tcp_drops_total", "counter",
	   "TCP segments from clients the relay's TCP stack dropped, by reason.", "reason",
	   L("checksum", "not_acceptable", "memory", "other"), sc->lwip_tcp_chkerr,
	   sc->lwip_tcp_proterr, sc->lwip_tcp_memerr, lwip_other);
	one(w, "zgate_emfile_total", "counter",
	    "New flows refused because the relay had no descriptor left (EMFILE/ENFILE).",
	    sc->emfile);
	one(w, "zgate_ping_unavailable_total", "counter",
	    "ICMP echoes refused because the host allows the relay no ping socket "
	    "(net.ipv4.ping_group_range).",
	    sc->ping_unavailable);
	one(w, "zgate_icmp_echo_local_total", "counter",
	    "ICMPv6 echoes to ff02::/16 the relay answered itself (C20).", sc->echo_local);
	BY(w, "zgate_upstream_connect_failures_total", "counter",
	   "TCP connects to destinations that failed: refused (answered with a RST), "
	   "unreachable or timed out (answered with ICMP unreachable).",
	   "reason", L("refused", "unreachable"), sc->tcp_refused, sc->tcp_unreachable);
	BY(w, "zgate_refusals_sent_total", "counter",
	   "Refusals the relay sent to clients, by kind: TCP RST, ICMP unreachable.", "kind",
	   L("tcp_reset", "icmp_unreachable"), sc->rsts_sent, sc->icmp_errors_sent);
	one(w, "zgate_refusals_ratelimited_total", "counter",
	    "Refusals not sent because of their rate limit (per client and in all).",
	    sc->errors_ratelimited);
	BY(w, "zgate_flow_descriptor_refused_total", "counter",
	   "New flows refused by the descriptor budget: all flows', or one client's share.",
	   "scope", L("all", "client"), sc->limit_fds, sc->limit_fds_client);
	BY(w, "zgate_flow_descriptor_budget", "gauge",
	   "Descriptors flows may hold: all flows, one client's.", "scope", L("all", "client"),
	   sc->fd_budget, sc->fd_budget_client);
	one(w, "zgate_tcp_window_bytes", "gauge",
	    "TCP windows given to clients' flows (the memory they may pin), all clients.",
	    sc->wnd_committed);
	one(w, "zgate_tcp_window_limited_total", "counter",
	    "TCP windows started or shrunk below full by the memory budgets.", sc->wnd_limited);
	one(w, "zgate_tcp_stack_memory_bytes", "gauge", "Bytes the relay's TCP stack holds now.",
	    sc->lwip_mem_used);
	BY(w, "zgate_tcp_time_wait_total", "counter",
	   "TCP connections in TIME_WAIT: reopened by a newer SYN, evicted over the cap, "
	   "or kept against an older SYN.",
	   "event", L("reopened", "evicted", "refused"), sc->tw_reopened, sc->tw_evicted,
	   sc->tw_refused);
	one(w, "zgate_tcp_time_wait", "gauge",
	    "TCP connections the relay closed first held in TIME_WAIT now (limits.time_wait "
	    "caps them).",
	    sc->tw_now);
	histo(w, "zgate_flow_setup_seconds",
	      "TCP flow setup: the client's SYN to the destination's connect completed "
	      "(millisecond clock).",
	      &sc->tcp_connect);
	BY(w, "zgate_policy_decisions_total", "counter", "New flows decided, by action.",
	   "action", L("allow", "deny"), v->decisions_allow, v->decisions_deny);
}

static void tls(struct mw *w, const struct metrics_values *v)
{
	int i;

	head(w, "zgate_handshake_failures_total", "counter",
	     "TLS handshakes refused, by reason: a client certificate's, or alpn, version, "
	     "transport_parameters, tls, client_aborted, protocol.");
	for (i = 1; i < TLS_REJECT_COUNT; i++)
		out(w, "zgate_handshake_failures_total{reason=\"%s\"} %llu\n",
		    tls_reject_name((enum tls_reject)i), (unsigned long long)v->quic.reject[i]);
	for (i = 1; i < MASQUE_HS_COUNT; i++)
		out(w, "zgate_handshake_failures_total{reason=\"%s\"} %llu\n",
		    masque_hs_fail_name((enum masque_hs_fail)i),
		    (unsigned long long)v->quic.hs_fail[i]);
	histo(w, "zgate_quic_handshake_seconds",
	      "Handshakes completed (client certificate accepted): the connection's first "
	      "Initial to handshake done.",
	      &v->quic.handshake);
	head(w, "zgate_tls_cert_expiry_timestamp_seconds", "gauge",
	     "When the relay's certificate expires (notAfter, Unix time).");
	out(w, "zgate_tls_cert_expiry_timestamp_seconds %lld\n", v->cert_not_after);
	if (v->has_crl) {
		head(w, "zgate_tls_crl_next_update_timestamp_seconds", "gauge",
		     "The CRL's nextUpdate (Unix time): past it, every client is refused.");
		out(w, "zgate_tls_crl_next_update_timestamp_seconds %lld\n", v->crl_next_update);
	}
}

static void pool_and_reloads(struct mw *w, const struct metrics_values *v)
{
	one(w, "zgate_state_save_errors_total", "counter",
	    "Saves of state_file that failed (the next change tries again).",
	    v->state_save_errors);
	head(w, "zgate_pool_size", "gauge", "Addresses in the pool, by IP version.");
	out(w, "zgate_pool_size{version=\"4\"} %llu\n", (unsigned long long)v->pool4_size);
	if (v->has_pool6)
		out(w, "zgate_pool_size{version=\"6\"} %llu\n", (unsigned long long)v->pool6_size);
	head(w, "zgate_pool_used", "gauge", "Addresses in use, by IP version.");
	out(w, "zgate_pool_used{version=\"4\"} %llu\n", (unsigned long long)v->pool4_used);
	if (v->has_pool6)
		out(w, "zgate_pool_used{version=\"6\"} %llu\n", (unsigned long long)v->pool6_used);
	BY(w, "zgate_policy_reloads_total", "counter", "Policy reloads, by result.", "result",
	   L("ok", "error"), v->policy_reload_ok, v->policy_reload_error);
	BY(w, "zgate_tls_reloads_total", "counter",
	   "Reloads of the TLS files (SIGHUP or a change on disk), by result.", "result",
	   L("ok", "error"), v->tls_reload_ok, v->tls_reload_error);
	BY(w, "zgate_reload_disconnects_total", "counter",
	   "Tunnels a reload closed: certificate revoked or no longer trusted, or the policy "
	   "allows the client nothing any more.",
	   "reason", L("revoked", "policy"), v->closed_revoked, v->closed_policy);
	one(w, "zgate_policy_reload_flows_closed_total", "counter",
	    "Open flows a policy reload closed because the new policy denies them.",
	    v->flows_closed_policy);
	one(w, "zgate_policy_last_reload_success_timestamp_seconds", "gauge",
	    "When the policy in force was loaded (Unix time).", v->policy_last_reload_s);
}

static void quic(struct mw *w, const struct metrics_values *v)
{
	const struct masque_server_stats *q = &v->quic;

	one(w, "zgate_quic_connections_accepted_total", "counter",
	    "New QUIC connections admitted to their handshake.", q->accepted);
	one(w, "zgate_quic_retries_total", "counter", "Retry packets sent (address validation).",
	    q->retries_sent);
	BY(w, "zgate_quic_handshakes_refused_total", "counter",
	   "New connections refused by handshake admission, by reason: busy = max_handshakes "
	   "in progress, source = its address's share, full = max_connections open or "
	   "shutting down.",
	   "reason", L("busy", "source", "full"), q->refused_handshakes, q->refused_source,
	   q->refused_full);
	one(w, "zgate_quic_handshakes_deferred_total", "counter",
	    "Initials held for a later turn of the event loop (handshake work per turn is "
	    "bounded).",
	    q->deferred);
	one(w, "zgate_quic_handshakes_dropped_total", "counter",
	    "New connections dropped because too many waited for their turn (once per "
	    "first flight, however many Initials its ClientHello took).",
	    v->quic_initials_dropped);
	one(w, "zgate_quic_initials_repeat_total", "counter",
	    "Initials after the first of a handshake's first flight (a ClientHello with an "
	    "X25519MLKEM768 key share takes two) whose first was answered (Retry, refusal) or "
	    "dropped a moment before: not answered, nor counted, again.",
	    q->initials_repeat);
	one(w, "zgate_quic_retries_source_total", "counter",
	    "Retry packets sent because the source had its share of handshakes in progress.",
	    q->retries_source);
	one(w, "zgate_quic_request_timeouts_total", "counter",
	    "Connections closed without a CONNECT-IP tunnel open within timeouts.request.",
	    q->request_timeouts);
	one(w, "zgate_quic_stateless_resets_total", "counter",
	    "Stateless resets sent for packets of unknown connections.", q->stateless_resets);
	one(w, "zgate_quic_bad_packets_total", "counter",
	    "UDP datagrams dropped as not QUIC, or with an invalid Retry token.", q->bad_packets);
}

static void audit_and_process(struct mw *w, const struct metrics_values *v)
{
	one(w, "zgate_audit_lines_total", "counter", "Audit events put into the audit buffer.", v->audit_lines);
	one(w, "zgate_audit_lines_suppressed_total", "counter",
	    "flow_deny audit lines not written over the deny rate limit (summed up in "
	    "flow_deny_suppressed lines).",
	    v->audit_suppressed);
	one(w, "zgate_audit_lines_dropped_total", "counter",
	    "Audit lines dropped because the audit output was not keeping up (see audit_dropped lines).",
	    v->audit_dropped);
	if (v->open_fds >= 0) {
		head(w, "process_open_fds", "gauge", "Number of open file descriptors.");
		out(w, "process_open_fds %lld\n", v->open_fds);
	}
	if (v->max_fds >= 0) {
		head(w, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		out(w, "process_max_fds %lld\n", v->max_fds);
	}
}

static void dns_service(struct mw *w, const struct metrics_values *v)
{
	const struct dnssvc_counts *d = &v->dnssvc;

	if (!v->has_dnssvc)
		return;
	BY(w, "zgate_dns_service_queries_total", "counter",
	   "Queries to the DNS service in the tunnel, by result: allowed (forwarded or from the "
	   "cache), denied (no allow rule names it), rebinding (an answer held a never-reachable "
	   "address), servfail (no upstream answered), overload (too many in flight), malformed.",
	   "result", L("allowed", "denied", "rebinding", "servfail", "overload", "malformed"),
	   d->allowed, d->denied, d->rebinding, d->servfail, d->overload, d->malformed);
	one(w, "zgate_dns_service_cache_hits_total", "counter",
	    "Allowed queries answered from the cache.", d->cache_hits);
	one(w, "zgate_dns_service_cache_entries", "gauge", "Answers in the cache now.",
	    d->cache_entries);
	one(w, "zgate_dns_service_answers_held_total", "counter",
	    "Answers held until the route advertisement holding their new address was sent.",
	    d->held);
	one(w, "zgate_dns_service_upstream_tcp_total", "counter",
	    "Queries asked again over TCP because the UDP answer was truncated.", d->upstream_tcp);
	histo(w, "zgate_dns_service_upstream_seconds",
	      "Upstream resolvers: query sent to answer received.", &d->upstream);
	one(w, "zgate_dns_learned_bindings", "gauge",
	    "Addresses bound now to a client, a name and its rule (learned from answers).",
	    d->names.bindings);
	BY(w, "zgate_dns_learned_bindings_total", "counter",
	   "Bindings made (learned) and ended (expired, their TTL ran out).",
	   "event", L("learned", "expired"), d->names.learned, d->names.expired);
	one(w, "zgate_dns_learned_cap_hits_total", "counter",
	    "Addresses not bound because the client had dns.max_learned_routes already.",
	    d->names.cap_hits);
}

static void ipam_api(struct mw *w, const struct metrics_values *v)
{
	if (!v->has_ipam_api)
		return;
	one(w, "zgate_ipam_api_up", "gauge",
	    "1 when zgate-api answered the last request, 0 when it failed (or none was made yet).",
	    v->ipam_api_up);
	BY(w, "zgate_ipam_api_admissions_total", "counter",
	   "Tunnels whose address the shared pool decided, by source: api (zgate-api answered), "
	   "cached (zgate-api unreachable, the address this relay knew for the client), refused "
	   "(unreachable and unknown, or refused by zgate-api: 503 with Proxy-Status).",
	   "source", L("api", "cached", "refused"), v->ipam_api_adm_api, v->ipam_api_adm_cached,
	   v->ipam_api_adm_refused);
	one(w, "zgate_ipam_api_requests_total", "counter", "Requests zgate-api answered.",
	    v->ipam_api_requests);
	one(w, "zgate_ipam_api_failures_total", "counter",
	    "Allocations given up: zgate-api unreachable, too slow (ipam.api.timeout) or refusing.",
	    v->ipam_api_failures);
	one(w, "zgate_ipam_api_retries_total", "counter",
	    "Attempts after the first (transport failures and 503).", v->ipam_api_retries);
	one(w, "zgate_ipam_api_connections_total", "counter",
	    "TLS connections opened to zgate-api (keep-alive reuses them).", v->ipam_api_connects);
	one(w, "zgate_ipam_api_refreshes_total", "counter",
	    "Leases of open tunnels marked used (ipam.api.refresh).", v->ipam_api_refreshes);
	one(w, "zgate_ipam_api_pending", "gauge", "Requests to zgate-api waiting or in flight.",
	    v->ipam_api_pending);
	BY(w, "zgate_ipam_api_reallocations_total", "counter",
	   "Open tunnels allocated again because zgate-api refused to refresh their lease (404 "
	   "no lease, 409 outside its pool), by result: kept (zgate-api gave their address back), "
	   "closed (it did not: the tunnel was closed, audit reason lease), unreachable (no "
	   "answer: kept, asked again at the next refresh).",
	   "result", L("kept", "closed", "unreachable"), v->ipam_api_realloc_kept,
	   v->ipam_api_realloc_closed, v->ipam_api_realloc_unreachable);
}

static void policy_api(struct mw *w, const struct metrics_values *v)
{
	const uint64_t *f = v->policy_api_fetches;

	if (!v->has_policy_api)
		return;
	BY(w, "zgate_policy_api_fetches_total", "counter",
	   "Fetches of the active policy from zgate-api (policy_api), by result: changed (a new "
	   "version taken and written), unchanged (304), error (no answer, 404 no active policy, "
	   "another status, the write failed), refused (a document the relay's parser refused).",
	   "result", L("changed", "unchanged", "error", "refused"), f[0], f[1], f[2], f[3]);
	one(w, "zgate_policy_api_version", "gauge",
	    "The zgate-api policy version in force (0: none fetched yet, deny-all; with workers, -1 "
	    "while they differ).",
	    v->policy_api_version);
}

static void connectors(struct mw *w, const struct metrics_values *v)
{
	const uint64_t *d = v->connector_drops;

	one(w, "zgate_connectors_up", "gauge",
	    "On-prem connectors with an open tunnel and prefixes inside their policy bound.",
	    v->connectors_up);
	one(w, "zgate_connector_links", "gauge",
	    "Agent-to-connector pairs forwarding now (end-to-end sessions the relay cannot read).",
	    v->connector_links);
	BY(w, "zgate_connector_packets_total", "counter",
	   "Packets forwarded between agents and connectors, by direction.", "dir",
	   L("up", "down"), v->connector_packets_up, v->connector_packets_down);
	BY(w, "zgate_connector_bytes_total", "counter",
	   "IP bytes forwarded between agents and connectors, by direction.", "dir",
	   L("up", "down"), v->connector_bytes_up, v->connector_bytes_down);
	BY(w, "zgate_connector_drops_total", "counter",
	   "Packets to or from a connector not forwarded, by reason: policy (the client may not "
	   "reach it), port, protocol, spoofed, no_link (a connector to an agent that did not "
	   "open a session), ttl, malformed, send (the other tunnel would not take it), limit, "
	   "unsolicited (a connector to an agent port that did not send to it).",
	   "reason",
	   L("policy", "port", "protocol", "spoofed", "no_link", "ttl", "malformed", "send",
	     "limit", "unsolicited"),
	   d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9]);
	one(w, "zgate_connector_flows_evicted_total", "counter",
	    "Agent-to-connector flows forgotten before their idle timeout because their link had "
	    "no room for a new one (the least recently used goes).",
	    v->connector_flows_evicted);
}

int metrics_write(struct evbuffer *b, const struct metrics_values *v)
{
	struct mw w = { b, 0 };

	build_info(&w, v);
	tunnels(&w, v);
	flows(&w, v);
	tls(&w, v);
	pool_and_reloads(&w, v);
	quic(&w, v);
	audit_and_process(&w, v);
	dns_service(&w, v);
	ipam_api(&w, v);
	policy_api(&w, v);
	connectors(&w, v);
	return w.err;
}

void metrics_process_fds(const char *fd_dir, long long *popen, long long *pmax)
{
	struct rlimit rl;
	struct dirent *e;
	DIR *d;
	long long n = 0;

	*popen = -1;
	*pmax = -1;
	d = opendir(fd_dir);
	if (d != NULL) {
		char self[24];

		/* in /proc/self/fd, the descriptor reading it is not counted */
		(void)snprintf(self, sizeof(self), "%d", dirfd(d));
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.' && strcmp(e->d_name, self) != 0)
				n++;
		closedir(d);
		*popen = n;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		*pmax = (long long)rl.rlim_cur;
}
