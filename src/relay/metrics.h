/*
 * metrics.h — the relay's /metrics exposition (Prometheus text format
 * 0.0.4), written from a plain struct of values.
 *
 * The relay (main.c) fills struct metrics_values from its counters, the
 * stack's and the QUIC server's, and calls metrics_write(); nothing here
 * reads a live relay, so tests render a fixed struct and compare it with
 * tests/golden/metrics.txt byte for byte.
 *
 * Conventions (Prometheus naming rules): counters end in _total, times are
 * in seconds, sizes in bytes. direction="up" is client → destination (into
 * the tunnel at the relay, out towards the destination), direction="down"
 * destination → client, for bytes and packets alike. A label's values
 * never include a sum of the others: sum() over a family is meaningful.
 */
#ifndef ZG_METRICS_H
#define ZG_METRICS_H

#include <stdint.h>

#include <event2/buffer.h>

#include "masque/masque.h"
#include "relay/dnssvc.h"
#include "stack.h"

struct metrics_values {
	/* zgate_build_info; NULL prints "unknown" */
	const char *version, *commit;
	/* process_open_fds/process_max_fds; < 0: unknown, not written */
	long long open_fds, max_fds;

	uint64_t sessions, quic_connections, sessions_opened;
	uint64_t sessions_replaced; /* a client's older tunnel closed by its newer one */
	/* CONNECT-IP requests refused, by the status answered */
	uint64_t refused_400, refused_403, refused_429, refused_500, refused_502, refused_503;
	uint64_t dns_queries, dns_refused_policy, dns_refused_not_listed, dns_refused_rate;

	struct stack_counters stack;     /* stack_get_counters() */
	struct masque_server_stats quic; /* masque_server_stats() */
	uint64_t quic_initials_dropped;  /* masque_udp_initials_dropped() */
	/* packets from the stack for a client that could not be sent */
	uint64_t out_no_session, out_too_big, out_congested;

	uint64_t decisions_allow, decisions_deny;
	long long cert_not_after;   /* Unix time */
	int has_crl;                /* tls.crl set: write its nextUpdate */
	long long crl_next_update;  /* Unix time */
	uint64_t state_save_errors; /* the state file's saves that failed */
	uint64_t pool4_size, pool4_used;
	int has_pool6;
	uint64_t pool6_size, pool6_used;
	uint64_t policy_reload_ok, policy_reload_error, policy_last_reload_s;
	uint64_t tls_reload_ok, tls_reload_error;
	uint64_t closed_revoked, closed_policy, flows_closed_policy;
	uint64_t audit_lines, audit_suppressed, audit_dropped;
	/* the DNS service (issue 19); has_dnssvc 0: dns.service off, the
	 * zgate_dns_service_* families are not written */
	int has_dnssvc;
	struct dnssvc_counts dnssvc;
	/* the shared pool (ipam.backend api, issue 20.2); has_ipam_api 0:
	 * the zgate_ipam_api_* families are not written */
	int has_ipam_api;
	uint64_t ipam_api_up; /* 1: the last request was answered */
	uint64_t ipam_api_adm_api, ipam_api_adm_cached, ipam_api_adm_refused;
	uint64_t ipam_api_requests, ipam_api_failures, ipam_api_retries, ipam_api_connects;
	uint64_t ipam_api_refreshes, ipam_api_pending;
	/* open tunnels allocated again after zgate-api refused to refresh
	 * their lease (404/409), by result; closed = audit reason "lease" */
	uint64_t ipam_api_realloc_kept, ipam_api_realloc_closed, ipam_api_realloc_unreachable;
	/* the policy from zgate-api (policy_api, polapi.h); has_policy_api 0:
	 * the zgate_policy_api_* families are not written. With workers each
	 * writes the version it loaded (merged: the lowest) and zero fetches
	 * (the master fetches: its own count is added to theirs). */
	int has_policy_api;
	uint64_t policy_api_version;
	uint64_t policy_api_fetches[4]; /* changed, unchanged, error, refused */
	/* on-prem connectors (issue 22, connlink.h) */
	uint64_t connectors_up, connector_links;
	uint64_t connector_packets_up, connector_packets_down;
	uint64_t connector_bytes_up, connector_bytes_down;
	/* by reason: policy, port, protocol, spoofed, no_link, ttl,
	 * malformed, send, limit, unsolicited */
	uint64_t connector_drops[10];
	uint64_t connector_flows_evicted; /* a full link's least recently used flow */
};

/* Appends the exposition of v to b: every family with its HELP and TYPE
 * lines, in a fixed order. Returns 0, or ZG_ERR_NOMEM when b could not
 * grow (b then holds a truncated text). */
int metrics_write(struct evbuffer *b, const struct metrics_values *v);

/* The descriptors this process has open (entries of fd_dir, normally
 * "/proc/self/fd", but for one named as the descriptor reading it) into
 * *popen and its
 * RLIMIT_NOFILE soft limit into *pmax; either is -1 when it cannot be
 * read (RLIM_INFINITY too). */
void metrics_process_fds(const char *fd_dir, long long *popen, long long *pmax);

#endif /* ZG_METRICS_H */
