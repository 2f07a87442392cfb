/*
 * status.h — the agent's status file: one JSON object that --status-file
 * names, rewritten on every state change (and every few seconds while the
 * counters move) by writing a temporary file beside it and renaming it
 * over the old one, so a reader never sees half a file.
 *
 *   {"state":"connected","since":1718000000,"pid":4242,"updated":1718000042,
 *    "relay":"relay.example:443",
 *    "relays":["relay.example:443","relay-b.example:443"],"relay_index":0,
 *    "relay_switches":0,
 *    "tun":"zgate0","mtu":1350,"addresses":["10.100.0.2/32"],
 *    "routes":["0.0.0.0/1","128.0.0.0/1"],"relay_route":"192.0.2.1/32",
 *    "refused":[{"address":"8.8.8.8/32","reason":"not_tunneled"},
 *               {"route":"127.0.0.0/8","reason":"loopback"}],"refused_unlisted":0,
 *    "connects":1,"tx_packets":..,"tx_bytes":..,"rx_packets":..,
 *    "rx_bytes":..,"drops":{"outage":..,"too_big":..,"congested":..,
 *    "tun_write":..},"icmp_too_big_sent":..,"cert_reloads":..,
 *    "cert_reload_errors":..,"route_updates":{"advertisements":..,"refused":..,
 *    "changes":..,"applied":..,"coalesced":..},"last_error":"",
 *    "dns":["10.100.0.1"],"dns_domains":["saas.example"],
 *    "dns_via":"file /etc/resolv.conf",
 *    "connectors":[{"id":"hospital-a","state":"up","rtt_us":4100,"tx_packets":..,
 *                   "tx_bytes":..,"rx_packets":..,"rx_bytes":..,"unreachable":..,
 *                   "last_error":""}]}
 */
#ifndef ZG_AGENT_STATUS_H
#define ZG_AGENT_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/connectors.h"
#include "agent/relaylist.h"
#include "agent/routes.h"

/* Counters over the agent's whole life (all connections). */
struct status_counters {
	uint64_t tx_packets, tx_bytes; /* TUN → tunnel, accepted by the transport */
	uint64_t rx_packets, rx_bytes; /* tunnel → TUN, written */
	uint64_t drop_outage;          /* read from the TUN while no tunnel was open */
	uint64_t drop_too_big;         /* larger than a datagram (answered by ICMP, C16) */
	uint64_t drop_congested;       /* the transport could not take it now */
	uint64_t drop_tun_write;       /* the TUN refused a packet from the tunnel */
	uint64_t drop_not_ours;        /* source not an assigned address (e.g. the
					  kernel's IPv6 link-local traffic): the
					  relay would drop it as spoofed (C18) */
	uint64_t drop_malformed;       /* a TUN read whose virtio_net_hdr did not
					  match the packet */
	uint64_t icmp_too_big;         /* ICMP "too big" errors written to the TUN */
	uint64_t connects;             /* tunnels opened */
	uint64_t cert_reloads;         /* certificate files loaded again (SIGHUP,
					  or the files changed on disk) */
	uint64_t cert_reload_errors;   /* reloads that failed: the previous
					  certificate stayed in use */
	/* routes (routepace.h): ROUTE_ADVERTISEMENTs from relays, those not
	 * applied (more prefixes than the agent takes from one, or invalid),
	 * route changes (advertisements and the connectors' prefixes), route
	 * sets applied, and changes a later one replaced before their turn */
	uint64_t route_ads, route_ads_refused;
	uint64_t route_changes, route_sets_applied, route_changes_coalesced;
};

/* An address or a route from the relay that the agent did not install
 * (routes.h route_refusal). */
struct status_refusal {
	struct route_prefix p; /* as the relay sent it */
	uint8_t route;         /* 1: an advertised route, 0: an assigned address */
	uint8_t why;           /* enum route_refusal */
};

/* The QUIC path while a tunnel is open. */
struct status_quic {
	uint64_t srtt_us, min_rtt_us;
	uint64_t cwnd, bytes_in_flight;
	uint64_t packets_sent, packets_lost;
	uint64_t queued_bytes; /* packets waiting for QUIC (congestion, pacing) */
	int64_t next_timer_us; /* the connection's next timer; -1 = none */
	int tun_paused;        /* not reading the TUN until the queue drains */
};

struct status_info {
	const char *state;                /* "starting", "connecting", "connected", "reconnecting", "stopped" */
	int64_t since;                    /* Unix time of the last state change */
	long pid;                         /* the agent's process, for readers' liveness check */
	int64_t updated;                  /* Unix time this object was written */
	const char *relay;                /* the entry in use or being tried, as written */
	const struct relaylist *relays;   /* the whole list; NULL = just relay */
	size_t relay_index;               /* relay's position in relays (from 0) */
	uint64_t relay_switches;          /* moves from one relay to another */
	const char *tun;                  /* device name */
	uint32_t mtu;                     /* 0 before the first tunnel */
	const struct route_prefix *addrs; /* on the TUN now */
	size_t naddrs;
	const struct route_prefix *routes; /* installed through the TUN now */
	size_t nroutes;
	const struct route_prefix *relay_route; /* host route to the relay, or NULL */
	const struct status_refusal *refused;   /* of the relay's latest assignment */
	size_t nrefused;                        /* and advertisement */
	size_t refused_unlisted;                /* more refused routes than the list keeps */
	const struct status_counters *c;
	const struct status_quic *quic; /* NULL without an open tunnel */
	const char *last_error;         /* "" when none */
	/* DNS from the relay (agentdns.h); dns_via NULL = no "dns" keys */
	const char *dns_via;    /* "resolved on zgate0 (ifindex 7)", "file /etc/resolv.conf", "off" */
	const char *const *dns; /* servers configured now */
	size_t ndns;
	const char *const *dns_domains; /* their domains; "" = every name */
	size_t ndns_domains;
	/* the connectors the relay listed (connectors.h); none = no key */
	const struct connector_status *connectors;
	size_t nconnectors;
};

/* Writes *st as one JSON object plus a newline into buf. Returns 0 with
 * the length in *pn, or ZG_ERR_BUFSHORT (buf is then unusable). Strings
 * are escaped per RFC 8259. */
int status_format(const struct status_info *st, char *buf, size_t buflen, size_t *pn);

/* Replaces the file at path with buf[0..n): writes path + ".tmp", then
 * renames it over path. Returns 0 or ZG_ERR_IO (errno set; the old file,
 * if any, is left as it was). */
int status_write_file(const char *path, const char *buf, size_t n);

/* Largest status file a reader accepts (the agent writes about 50 bytes
 * per route: this is tens of thousands of routes). */
#define STATUS_FILE_MAX (4u << 20)

/* Where `zgate-agent status` looks without --status-file or
 * ZGATE_STATUS_FILE: the agent's default under systemd. */
#define STATUS_FILE_DEFAULT "/run/zgate/status.json"

/* How status_show() decides whether the writer still runs: 1 alive,
 * 0 gone. status_pid_alive() is the real one. */
typedef int (*status_alive_fn)(long pid);

/* 1 when process pid exists (kill(pid, 0) succeeds or fails with EPERM)
 * and, where /proc tells, its command name is "zgate-agent" (a pid reused
 * after a crash is not the agent); 0 otherwise. */
int status_pid_alive(long pid);

/* Reads the status file at path and writes to out either the file as it
 * is (json != 0) or a summary in the style of `wg show`: state and for how
 * long, relay (and, with several, the list, which one is in use and how
 * often the agent moved), addresses, routes, DNS when the file has it, RTT, traffic,
 * drops, certificate reloads (when there were any), refused addresses and
 * routes, last error. now is the current
 * Unix time (durations), alive decides whether the agent still runs.
 * Returns 0 when printed; ZG_ERR_NOTFOUND when the agent is not running
 * (no file, state "stopped", or its pid gone); ZG_ERR_IO when the file
 * cannot be read; ZG_ERR_MALFORMED or ZG_ERR_TOO_LARGE when it is not a
 * status file. Except for 0, err holds one line naming the file and, for
 * bad input, the byte offset and what was wrong; nothing is written to out. */
int status_show(const char *path, int json, int64_t now, status_alive_fn alive, FILE *out,
		char *err, size_t errlen);

/* `zgate-agent status [--json] [--status-file FILE]` (argv[0] is
 * "status"): status_show() for the file named by the flag, else
 * $ZGATE_STATUS_FILE, else STATUS_FILE_DEFAULT. Messages go to errf.
 * Returns the exit status: 0 running, 1 not running or unreadable,
 * 2 bad usage. */
int status_command(int argc, char *const *argv, FILE *out, FILE *errf);

#endif /* ZG_AGENT_STATUS_H */
