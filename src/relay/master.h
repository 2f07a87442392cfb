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
 *    (steer.h) and a second group of the same kind, the notes channels,
 *    for short messages between workers (master_note_send());
 *  - per worker, a control channel (wctl.h) and the pipe its audit lines
 *    leave through.
 * master_run() then serves, on its own event loop:
 *  - ops_listen: /health; /ready (200 once every worker has answered its
 *    first control request, 503 "draining" after SIGTERM); /metrics, the
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
#define MASTER_OP_READY 'R'   /* status 0 once the worker serves */
#define MASTER_OP_METRICS 'M' /* reply: the worker's exposition */
#define MASTER_OP_LIST 'L'    /* reply: master_session_line() per session */
#define MASTER_OP_KICK 'K'    /* req: client ID; status 0 closed, 1 none */
#define MASTER_KICK_NONE 1

/* Notes between workers (the notes channels): one byte of kind, then the
 * client ID (not NUL-terminated). */
#define MASTER_NOTE_OPENED 'O' /* the client's newest tunnel is on the sender */
#define MASTER_NOTE_MAX (1 + 64)

struct master_env {
	unsigned n;
	int udp[CONFIG_WORKERS_MAX];
	int ctl[CONFIG_WORKERS_MAX][2]; /* master end, worker end */
	int apipe[CONFIG_WORKERS_MAX][2];
	struct steer_group steer, notes;
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

/* From worker self: tells every other worker (never blocks; a full
 * channel drops the note and returns ZG_ERR_LIMIT for it, the others are
 * still sent). Returns 0 or the last error. */
int master_note_send(const struct master_env *env, unsigned self, uint8_t kind,
		     const char *client);

/* Worker self reads its next note without blocking: 1 with kind and the
 * NUL-terminated client ID (cap >= 65), 0 when none waits, < 0 on error
 * (a malformed note is skipped and returns ZG_ERR_MALFORMED). */
int master_note_recv(const struct master_env *env, unsigned self, uint8_t *kind, char *client,
		     size_t cap);

/* One session in a MASTER_OP_LIST reply: fields separated by tabs, the
 * line ended by '\n'; tabs, newlines and backslashes inside a field are
 * written as '?' (the list is for people; a close takes the ID as the
 * administrator typed it). Fields: client, addr4, addr6 ("" none), peer,
 * since, bytes_up, bytes_down, cert_serial. Returns the length written
 * (the line is cut at cap - 1 bytes; cap >= 2). */
struct ops_session;
size_t master_session_line(const struct ops_session *s, char *buf, size_t cap);

/* Parses such a line (modified in place: the fields point into it).
 * Returns 0 or ZG_ERR_MALFORMED. */
int master_session_parse(char *line, struct ops_session *s);

/* Runs the master until the workers have stopped; cfg, ipam, tls_key and
 * env stay the caller's. Returns the process's exit code: 0 after a
 * signal's drain, 1 when the relay could not start or a worker kept
 * dying. */
int master_run(const struct relay_config *cfg, struct ipam *ipam, struct master_env *env);

#endif /* ZG_RELAY_MASTER_H */
