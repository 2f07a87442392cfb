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
 * Look-ups by client scan the pool: O(pool size) per tunnel set-up, which
 * for a /16 is tens of microseconds.
 */
#ifndef ZG_RELAY_IPAM_H
#define ZG_RELAY_IPAM_H

#include <stddef.h>
#include <stdint.h>

#include "relay/config.h"

struct ipam;

#define IPAM_ID_MAX 64 /* client ID bytes, including the NUL */
/* Client addresses used from one pool at most (72 bytes each). */
#define IPAM_MAX_CLIENTS (1u << 20)

/* Creates the allocator. pool4 must be an IPv4 prefix of /30 or shorter;
 * pool6 may be NULL or version 0 (no IPv6), else a /126 or shorter, of
 * which at most max6 client addresses are used. Returns 0 and *pp,
 * ZG_ERR_INVAL or ZG_ERR_NOMEM. */
int ipam_new(const struct config_prefix *pool4, const struct config_prefix *pool6,
	     uint32_t max6, struct ipam **pp);
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

/* The relay's own (gateway) address in the pool. Returns 0 or
 * ZG_ERR_NOTFOUND. */
int ipam_gateway(const struct ipam *ip, uint8_t version, uint8_t out[16]);

/* Client addresses in the pool, and how many are held now. */
size_t ipam_size(const struct ipam *ip, uint8_t version);
size_t ipam_used(const struct ipam *ip, uint8_t version);

/* Writes every held and remembered assignment to path atomically (a
 * temporary file in the same folder, fsync, rename, fsync of the folder).
 * Returns 0 or ZG_ERR_IO with err naming the file and the failure. */
int ipam_save(const struct ipam *ip, const char *path, char *err, size_t errlen);

/* Reads assignments saved by ipam_save() as remembered ones (nobody is
 * connected after a restart). A missing file is not an error (first
 * start). Entries outside today's pools are skipped and counted in
 * *pskipped. Returns 0, ZG_ERR_IO, or ZG_ERR_CONFIG for a corrupt file
 * with err naming "path:line" and the problem; then nothing is loaded and
 * the caller decides whether to start empty. */
int ipam_load(struct ipam *ip, const char *path, size_t *pskipped, char *err,
	      size_t errlen);

#endif /* ZG_RELAY_IPAM_H */
