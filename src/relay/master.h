/*
 * master.h — zgate-relay with `workers: N` (N >= 2; issue 21, target 3):
 * the master process and what it hands its workers.
 *
 * The master reads the configuration, the policy and the TLS files (as
 * the single-process relay does, so a bad file stops it before any worker
 * runs), makes the shared address pool (ipam_new_shared) and then, with
 * master_open(), everything the workers share or talk through, before it
 * forks them (wpool.h):
 *  - the N UDP sockets on the listen port, bound in worker order with
 *    SO_REUSEPORT and the connection-ID steering program attached
 *    (masque_udp_bind_group, steer_attach_cbpf): socket i is worker i's;
 *  - the handoff channels for datagrams that reach the wrong worker
 *    (steer.h) and two more groups of the same kind: the notes channels,
 *    for short messages between workers (master_note_put()), and the
 *    transfer channels, for the packets between an agent's tunnel and a
 *    connector's tunnel on another worker (master_xfer_send());
 *  - per worker, a control channel (wctl.h) and the pipe its audit lines
 *    leave through.
 * master_run() then serves, on its own event loop:
 *  - ops_listen: /health; /ready (200 once every worker has answered its
 *    first control request, 503 "draining" after SIGTERM; its note is the
 *    workers', asked once a second with ipam.backend api and merged by
 *    master_ready_merge()); /metrics, the
 *    merge of every running worker's exposition (metrics_merge.h) plus the
 *    master's own families (zgate_workers, zgate_workers_running,
 *    zgate_worker_restarts_total, zgate_worker_metrics_missing);
 *  - the admin endpoint (admin.token_file; on admin.listen if set): the
 *    session list is every worker's, a close goes to every worker (the
 *    client's session is on one of them);
 *  - the audit trail on stdout: the workers' lines, read from their pipes,
 *    whole lines only, through one bounded buffer (audit.h, audit_raw),
 *    plus relay_start/relay_stop and the admin lines of the master;
 *  - the ipam state file, saved by the master alone, within 100 ms of a
 *    change in the shared pool and at exit;
 *  - signals: SIGHUP is forwarded to the workers (each reloads the policy
 *    and the TLS files) and reloads admin.token_file; SIGTERM/SIGINT drain:
 *    /ready 503, the workers get SIGTERM and drain as a single relay does
 *    (GOAWAY, up to timeouts.drain_grace), the master exits once all have;
 *    a second signal is forwarded (the workers stop at once);
 *  - READY=1 and the watchdog for systemd (Type=notify) from the master.
 * A worker that dies is restarted (wpool.h backoff); one that dies more
 * than 5 times in a minute stops the relay (exit 1).
 *
 * Worker i, in master_env.run(i): master_worker_keep() closes what is not
 * its own, then it runs the relay's loop with listen_fd = udp[i],
 * worker_index i, its audit output audit_wr(i), and serves its control
 * channel ctl[i][1].
 */
#ifndef ZG_RELAY_MASTER_H
#define ZG_RELAY_MASTER_H

#include <stddef.h>
#include <stdint.h>

#include "masque/steer.h"
#include "relay/config.h"

struct ipam;

/* Control requests (wctl ops) the master sends a worker. */
#define MASTER_OP_READY 'R'   /* status 0 once the worker serves; reply: its
				 /ready note, '!' first when degraded */
#define MASTER_OP_METRICS 'M' /* reply: the worker's exposition */
#define MASTER_OP_LIST 'L'    /* reply: master_session_line() per session */
#define MASTER_OP_KICK 'K'    /* req: client ID; status 0 closed, 1 none */
#define MASTER_OP_POLICY 'P'  /* the master wrote a new policy file (policy_api):
				 reload it unless already done; status 0 */
#define MASTER_KICK_NONE 1

/* Notes between workers (the notes channels): one byte of kind, one of
 * the sender's worker index, then the payload (0 .. MASTER_NOTE_PAYLOAD_MAX
 * bytes). MASTER_NOTE_OPENED carries a client ID (not NUL-terminated); the
 * connector notes carry connlink_state_encode()'s bytes (connlink.h). */
#define MASTER_NOTE_OPENED 'O'    /* the client's newest tunnel is on the sender */
#define MASTER_NOTE_CONN_UP 'C'   /* a connector session on the sender: its state */
#define MASTER_NOTE_CONN_DOWN 'D' /* that session ended (its state, no routes) */
#define MASTER_NOTE_HELLO 'H'     /* the sender (re)started: tell it what is up */
#define MASTER_NOTE_GONE 'G'      /* from the master: the "sender" worker exited */
#define MASTER_NOTE_ID_MAX 64
#define MASTER_NOTE_PAYLOAD_MAX 4096
#define MASTER_NOTE_MAX (2 + MASTER_NOTE_PAYLOAD_MAX)
#define MASTER_NOTE_ALL (-1)

/* Packets between workers (the transfer channels, a third group of the
 * steer.h kind): kind, the sender's index, two zero bytes, a session ID
 * (8 bytes, big-endian), then one IP packet. */
#define MASTER_XFER_TO_CONNECTOR 'U'   /* into the receiver's connector session sid */
#define MASTER_XFER_FROM_CONNECTOR 'D' /* from the sender's connector session sid */
#define MASTER_XFER_HDR 12
#define MASTER_XFER_PKT_MAX 65535

struct master_env {
	unsigned n;
	int udp[CONFIG_WORKERS_MAX];
	int ctl[CONFIG_WORKERS_MAX][2]; /* master end, worker end */
	int apipe[CONFIG_WORKERS_MAX][2];
	struct steer_group steer, notes, xfer;
	/* set by the caller before master_run() */
	int (*run)(unsigned i, void *arg);
	void *arg;
};

/* Makes env's descriptors for n workers (2 .. CONFIG_WORKERS_MAX) on the
 * listen address. The steering program's failure is logged, not fatal
 * (the handoff still delivers every datagram). Returns 0, or an error
 * with err naming what failed; then nothing is left open. */
int master_open(struct master_env *env, unsigned n, const char *listen, char *err,
		size_t errlen);

/* In worker self: closes every descriptor of env that is not its own. */
void master_worker_keep(struct master_env *env, unsigned self);

/* In worker self, after master_worker_keep(): closes every other
 * descriptor it inherited from the master (the master's listeners, its
 * event loop's, its audit output), but stdin/stdout/stderr: a worker opens
 * what it needs itself, and its descriptor budget (limits.fd_*) then
 * counts from a clean table. The master's objects that held them are left
 * alone (never used in the worker). Returns how many were closed, or -1
 * when /proc/self/fd cannot be read (nothing closed). */
int master_worker_close_inherited(const struct master_env *env, unsigned self);

/* The write end of worker i's audit pipe. */
int master_audit_wr(const struct master_env *env, unsigned i);

/* From worker self: note kind with payload[0..len) to worker to, or to
 * every other worker (MASTER_NOTE_ALL). Never blocks: a full channel drops
 * the note and returns ZG_ERR_LIMIT for it, the others are still sent.
 * Returns 0, the last error, or ZG_ERR_INVAL (len above
 * MASTER_NOTE_PAYLOAD_MAX, to not another worker). */
int master_note_put(const struct master_env *env, unsigned self, int to, uint8_t kind,
		    const void *payload, size_t len);

/* Worker self reads its next note without blocking: 1 with kind, the
 * sender's index and the payload (cap >= MASTER_NOTE_PAYLOAD_MAX), 0 when
 * none waits, < 0 on error (a malformed note is skipped and returns
 * ZG_ERR_MALFORMED). */
int master_note_get(const struct master_env *env, unsigned self, uint8_t *kind,
		    unsigned *pfrom, uint8_t *payload, size_t cap, size_t *plen);

/* master_note_put() to every other worker with the client ID as payload
 * (1 .. MASTER_NOTE_ID_MAX bytes, else ZG_ERR_INVAL). */
int master_note_send(const struct master_env *env, unsigned self, uint8_t kind,
		     const char *client);

/* A note whose payload is a client ID: 1 with kind and the NUL-terminated
 * ID (cap >= MASTER_NOTE_ID_MAX + 1), 0 when none waits, < 0 on error (a
 * malformed note, or one whose payload is no client ID, is skipped and
 * returns ZG_ERR_MALFORMED). */
int master_note_recv(const struct master_env *env, unsigned self, uint8_t *kind, char *client,
		     size_t cap);

/* From worker self: the IP packet pkt[0..len) to worker to, with kind and
 * the session ID sid (MASTER_XFER_*). Never blocks. Returns 0, ZG_ERR_LIMIT
 * when the channel is full (the packet is dropped), ZG_ERR_INVAL (to is
 * self or no worker, len 0 or above MASTER_XFER_PKT_MAX), ZG_ERR_IO. */
int master_xfer_send(const struct master_env *env, unsigned self, unsigned to, uint8_t kind,
		     uint64_t sid, const uint8_t *pkt, size_t len);

/* Worker self reads its next packet without blocking into buf (cap >=
 * MASTER_XFER_HDR + MASTER_XFER_PKT_MAX): 1 with kind, the sender, sid and
 * *ppkt and *plen pointing into buf; 0 when none waits; ZG_ERR_MALFORMED for a
 * message too short or from no other worker (skipped); ZG_ERR_IO. */
int master_xfer_recv(const struct master_env *env, unsigned self, uint8_t *buf, size_t cap,
		     uint8_t *kind, unsigned *pfrom, uint64_t *sid, const uint8_t **ppkt,
		     size_t *plen);

/* One session in a MASTER_OP_LIST reply: fields separated by tabs, the
 * line ended by '\n'; tabs, newlines and backslashes inside a field are
 * written as '?' (the list is for people; a close takes the ID as the
 * administrator typed it). Fields: client, addr4, addr6 ("" none), peer,
 * since, bytes_up, bytes_down, cert_serial. Returns the length written
 * (the line is cut at cap - 1 bytes; cap >= 2). */
struct ops_session;
size_t master_session_line(const struct ops_session *s, char *buf, size_t cap);

/* /ready's note from the workers' notes (n of them; "" = none; a leading
 * '!' marks a degraded one, e.g. zgate-api found down): the degraded ones
 * if any, else all; once when they agree, else one line per worker
 * ("worker 1: ipam_api: down for 3 s: ..."), cut at len - 1 bytes. A
 * worker that has not asked zgate-api lately may still say "up" while
 * another just found it down: the one that found out wins. */
void master_ready_merge(const char *const *notes, unsigned n, char *buf, size_t len);

/* Parses such a line (modified in place: the fields point into it).
 * Returns 0 or ZG_ERR_MALFORMED. */
int master_session_parse(char *line, struct ops_session *s);

/* Runs the master until the workers have stopped; cfg, ipam, tls_key and
 * env stay the caller's. Returns the process's exit code: 0 after a
 * signal's drain, 1 when the relay could not start or a worker kept
 * dying. */
int master_run(const struct relay_config *cfg, struct ipam *ipam, struct master_env *env);

#endif /* ZG_RELAY_MASTER_H */
