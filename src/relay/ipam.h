/*
 * ipam.h — virtual addresses for tunnels, from the configured pools.
 *
 * IPv4 pool a.b.c.d/len: the first address is the network, the next one
 * the relay's gateway address, the last one broadcast; clients get the
 * rest. IPv6 pool: ::1 of the prefix is the gateway, clients get ::2 up, at
 * most max6 of them. The pool size is the only bound on memory.
 *
 * Stability: a client gets the address it asks for (ADDRESS_REQUEST after a
 * reconnect) when that is in the pool and not someone else's; otherwise the
 * address it had last (remembered after release, and across restarts with
 * a state file); otherwise a slot found by a fixed hash of its client ID
 * plus linear probing, so the same ID lands on the same address on every
 * relay and after every restart while that slot is free. A remembered
 * address is given to another client only when no never-used or free slot
 * is left. Exhaustion is ZG_ERR_LIMIT (the relay answers 503).
 *
 * Look-ups by client go through an index of the slots by owner (a hash
 * table, open addressing): O(1) per tunnel set-up, whatever the pool size
 * (it was a scan of the pool, 2 % of the relay's handshake CPU at 3,000
 * tunnels in a /18).
 *
 * Memory: 66 bytes per client address of the pool (a state byte, the
 * holder byte and the owner's ID) plus 8 to 16 for the index, for either kind below, plus a
 * few hundred bytes; pages the pool never touches cost address space only.
 *
 * Shared across worker processes (ipam_new_shared, issue 21): the master
 * creates the allocator after reading the configuration (and loads the
 * state file into it) and then forks its workers; every byte of its state
 * is in one MAP_SHARED|MAP_ANONYMOUS mapping, which the workers inherit at
 * the same address: the only pointers inside it (to its slot and index arrays) point
 * into it, so they are valid in every process descended from the one that
 * created it (and in no other: never hand it to an unrelated process, nor
 * keep it across exec). Every ipam_* call then takes a process-shared,
 * robust mutex; the unshared allocator takes no lock. A worker that dies
 * holding the lock does not block the others: the next call repairs what
 * the dead call may have cut short (at most one half-written slot, reset
 * to never-used, and the held counters, recounted) and goes on. Calls
 * that return an error code may then also return ZG_ERR_STATE, and the
 * size_t ones 0, if the lock is unusable (not expected: pthread reports
 * ENOTRECOVERABLE only when a repair is not marked consistent).
 */
#ifndef ZG_RELAY_IPAM_H
#define ZG_RELAY_IPAM_H

#include <stddef.h>
#include <stdint.h>

#include "relay/config.h"

struct ipam;

#define IPAM_ID_MAX 64 /* client ID bytes, including the NUL */
/* Client addresses used from one pool at most (73-81 bytes each). */
#define IPAM_MAX_CLIENTS (1u << 20)

/* Creates the allocator. pool4 must be an IPv4 prefix of /30 or shorter;
 * pool6 may be NULL or version 0 (no IPv6), else a /126 or shorter, of
 * which at most max6 client addresses are used. Returns 0 and *pp,
 * ZG_ERR_INVAL or ZG_ERR_NOMEM. */
int ipam_new(const struct config_prefix *pool4, const struct config_prefix *pool6,
	     uint32_t max6, struct ipam **pp);

/* The same allocator in memory shared with the processes this one forks
 * afterwards (see "Shared" above); the same parameters and results, and
 * ZG_ERR_NOMEM also when the mapping or the lock cannot be made. */
int ipam_new_shared(const struct config_prefix *pool4, const struct config_prefix *pool6,
		    uint32_t max6, struct ipam **pp);

/* Frees the allocator; a shared one is unmapped in this process only (each
 * process frees or simply exits; the memory goes with the last mapping).
 * NULL is a no-op. */
void ipam_free(struct ipam *ip);

/* Gives client_id an address of the version (4 or 6): see the stability
 * rules above. preferred (4 or 16 bytes) may be NULL. Calling it again for
 * a client that holds an address returns the same address. Returns 0 with
 * the address in out (4 or 16 bytes used), ZG_ERR_LIMIT (pool exhausted),
 * ZG_ERR_NOTFOUND (no pool of that version) or ZG_ERR_INVAL (bad ID). */
int ipam_alloc(struct ipam *ip, const char *client_id, uint8_t version,
	       const uint8_t *preferred, uint8_t out[16]);

/* Releases client_id's address of that version; it stays remembered for
 * the client. Returns 0 or ZG_ERR_NOTFOUND. */
int ipam_release(struct ipam *ip, const char *client_id, uint8_t version);

/* Holders (workers: a shared allocator, issue 21). A held address also
 * records which holder (0..255: the worker) took it last: ipam_alloc_by()
 * sets it, also when client_id already holds the address (its tunnel
 * moved to another worker), and ipam_alloc() sets 0. ipam_release_by()
 * releases only when holder is the address's holder now, else returns
 * ZG_ERR_STATE and leaves it: a worker whose old tunnel of a client
 * closes after the client's new tunnel on another worker took the address
 * must not free what the new tunnel uses. Same results otherwise as
 * ipam_alloc() and ipam_release(). */
int ipam_alloc_by(struct ipam *ip, const char *client_id, uint8_t version,
		  const uint8_t *preferred, uint8_t holder, uint8_t out[16]);
int ipam_release_by(struct ipam *ip, const char *client_id, uint8_t version, uint8_t holder);
/* The holder (0..255) of client_id's held address, or ZG_ERR_NOTFOUND
 * when it holds none. */
int ipam_holder(const struct ipam *ip, const char *client_id, uint8_t version);
/* The holder (0..255) of the address addr (version 4 or 6) when some
 * client holds it, or ZG_ERR_NOTFOUND (outside the pool, free, or only
 * remembered). For workers: which worker's tunnel has that address. */
int ipam_addr_holder(const struct ipam *ip, uint8_t version, const uint8_t *addr);

/* The address client_id holds now (not a remembered one). Returns 0 or
 * ZG_ERR_NOTFOUND. */
int ipam_lookup(const struct ipam *ip, const char *client_id, uint8_t version,
		uint8_t out[16]);

/* The address client_id holds now or held last (remembered, e.g. from a
 * state file): the local cache of ipam.backend api. Returns 0 or
 * ZG_ERR_NOTFOUND. */
int ipam_known(const struct ipam *ip, const char *client_id, uint8_t version, uint8_t out[16]);

/* Makes addr client_id's held address (the shared pool's answer, issue
 * 20.2): another client's memory of addr is forgotten, and client_id's
 * other address, held or remembered, is freed. Returns 0, ZG_ERR_RANGE
 * (addr is not a client address of the pool: the relay's pool.ipv4
 * differs from zgate-api's), ZG_ERR_STATE (another client holds addr now:
 * the two pools disagree), ZG_ERR_NOTFOUND (no pool of that version) or
 * ZG_ERR_INVAL (bad ID). */
int ipam_assign(struct ipam *ip, const char *client_id, uint8_t version, const uint8_t *addr);
/* ipam_assign() by a holder (workers: the worker whose tunnel takes addr),
 * as ipam_alloc_by() is to ipam_alloc(); ipam_assign() sets holder 0. */
int ipam_assign_by(struct ipam *ip, const char *client_id, uint8_t version, const uint8_t *addr,
		   uint8_t holder);

/* The relay's own (gateway) address in the pool. Returns 0 or
 * ZG_ERR_NOTFOUND. */
int ipam_gateway(const struct ipam *ip, uint8_t version, uint8_t out[16]);

/* Client addresses in the pool, and how many are held now. */
size_t ipam_size(const struct ipam *ip, uint8_t version);
size_t ipam_used(const struct ipam *ip, uint8_t version);

/* Changes so far (allocations, releases, assignments, loads, repairs),
 * in every process of a shared allocator: the master saves the state file
 * when this moved since its last save. 0 also if the lock is unusable. */
uint64_t ipam_changes(const struct ipam *ip);

/* Writes every held and remembered assignment to path atomically (a
 * temporary file in the same folder, fsync, rename, fsync of the folder).
 * Shared: the pool is copied under the lock and written without it; one
 * process writes the file, the master (workers never call this: two
 * writers would not corrupt the file, each rename is atomic, but the
 * older snapshot could land last). Returns 0, ZG_ERR_NOMEM (the copy) or
 * ZG_ERR_IO, with err naming the file and the failure. */
int ipam_save(const struct ipam *ip, const char *path, char *err, size_t errlen);

/* Failed saves of the one process that saves (the relay alone, or the
 * master): errors since start (zgate_state_save_errors_total) and how
 * many in a row up to now. */
struct ipam_savelog {
	uint64_t errors, streak;
};

/* ipam_save(), logged for an operator: the first failure of a run of
 * failures as a warning (the save is tried again at the next change, so
 * each failure is not logged), and the first save that works after them
 * as a notice with how many failed. Returns what ipam_save() returned. */
int ipam_save_logged(const struct ipam *ip, const char *path, struct ipam_savelog *sl);

/* Reads assignments saved by ipam_save() as remembered ones (nobody is
 * connected after a restart). A missing file is not an error (first
 * start). Entries outside today's pools are skipped and counted in
 * *pskipped. Returns 0, ZG_ERR_IO, or ZG_ERR_CONFIG for a corrupt file
 * with err naming "path:line" and the problem; then nothing is loaded and
 * the caller decides whether to start empty. Shared: the master calls it
 * before forking (it holds the lock while it reads the file). */
int ipam_load(struct ipam *ip, const char *path, size_t *pskipped, char *err,
	      size_t errlen);

/* Moves a state file that ipam_load() could not read (corrupt, or not
 * readable) out of ipam_save()'s way, so the next save cannot replace the
 * only copy of the assignments: renamed in its own directory to
 * "<path>.bad.<now>" (now: Unix seconds), or "<path>.bad.<now>.<n>" when
 * that name is taken; an existing file is never replaced, so an older
 * copy set aside survives a second corruption. A symbolic link at path is
 * renamed itself, not what it points to. Returns 0 with the new name in
 * dst; or ZG_ERR_IO with err naming path, the name tried and why (a
 * read-only directory, ...), and path as it was. */
int ipam_set_aside(const char *path, int64_t now, char *dst, size_t dstlen, char *err,
		   size_t errlen);

/* Tests only: 0 when each pool's owner index holds exactly its slots that
 * are not never-used, each reachable from its owner's hash; else
 * ZG_ERR_STATE. */
int ipam_check(const struct ipam *ip);

/* Tests only: takes a shared allocator's lock and returns holding it, so a
 * test can kill the holder; with half_id, also starts writing half_id
 * into its IPv4 slot and stops half-way, as a worker killed in the middle
 * of ipam_alloc would. Returns 0, ZG_ERR_INVAL (not shared, bad ID),
 * ZG_ERR_LIMIT (no never-used slot; the lock is not kept) or ZG_ERR_STATE. */
int ipam_test_lock(struct ipam *ip, const char *half_id);

#endif /* ZG_RELAY_IPAM_H */
