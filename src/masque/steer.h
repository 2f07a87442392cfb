/*
 * steer.h — which worker a QUIC datagram belongs to (issue 21, target 3:
 * `workers: N` in zgate-relay). A building block: nothing here is wired
 * into the relay yet.
 *
 * Design. The relay will run N worker *processes*, not threads: lwIP keeps
 * its state in globals (src/stack/stack.h), so one stack per process. Each
 * worker has its own UDP socket bound with SO_REUSEPORT to the same listen
 * address, and its own masque server (one connection table per worker).
 * A QUIC connection must always land on the worker that owns it, even
 * when the client's address changes (NAT rebinding, migration), so the
 * kernel steers by connection ID, not by the 4-tuple hash:
 *
 *  - The worker is carried in the first byte of every connection ID the
 *    server issues: worker w of N gives its CIDs a first byte b with
 *    b % N == w, the rest random (masque_config.worker_index/nworkers;
 *    the first SCID at accept, the one in a Retry, and every
 *    NEW_CONNECTION_ID).
 *  - steer_cid_worker() reads that byte back from a datagram; a classic
 *    BPF program attached with SO_ATTACH_REUSEPORT_CBPF
 *    (steer_attach_cbpf(), no privilege needed) implements exactly the
 *    same rule in the kernel. Its return value is the index of the
 *    socket in the reuseport group, which is the order in which the
 *    sockets were bound: the sockets must be bound in worker order
 *    (worker 0 first), all before traffic starts.
 *  - A client's first Initial carries a DCID the client chose at random;
 *    it lands on worker DCID[0] % N, and so do its retransmits and 0-RTT
 *    packets (same DCID). That worker accepts the connection and issues
 *    its own CIDs, so everything after lands there too.
 *
 * The fallback, still to be built: the kernel's choice is right only as
 * long as socket i of the group is worker i's. When a socket closes, the
 * kernel moves the group's last socket into its slot (a worker that
 * restarts rebinds at the end), and a program index beyond the group's
 * size makes the kernel fall back to its 4-tuple hash. So a worker that
 * receives a datagram whose steer_cid_worker() is not its own index must
 * not treat it as unknown (no stateless reset, no new connection for a
 * long header carrying a CID of another worker): it forwards the
 * datagram, with its source and destination addresses, to the owning
 * worker over a socketpair (SOCK_SEQPACKET, one per pair of workers or
 * one per worker fed by all), and the owner feeds it to
 * masque_server_input() as if it came from its own socket; replies go out
 * of the owner's socket (same local address and port). The workers
 * should share masque_config.static_secret, so a stateless reset or a
 * Retry token made by one worker is valid for every other.
 */
#ifndef ZG_MASQUE_STEER_H
#define ZG_MASQUE_STEER_H

#include <stddef.h>
#include <stdint.h>

/* Length of the connection IDs a zgate server issues (MASQUE_CIDLEN): a
 * short header's DCID has no length on the wire. */
#define STEER_CIDLEN 16
/* Most workers: the worker is a residue of one byte. */
#define STEER_MAX_WORKERS 256
/* Longest connection ID in QUIC v1 (RFC 9000 §17.2). */
#define STEER_MAX_DCIDLEN 20

/* The worker (0 .. nworkers-1) a QUIC datagram (UDP payload, len bytes)
 * belongs to: D % nworkers, where D is the first byte of its destination
 * connection ID:
 *   long header (pkt[0] & 0x80): the DCID length is pkt[5] and the DCID
 *     starts at pkt[6]; D = pkt[6] when 1 <= pkt[5] <= 20 and
 *     len >= 6 + pkt[5];
 *   short header: the DCID (STEER_CIDLEN bytes) starts at pkt[1];
 *     D = pkt[1] when len >= 1 + STEER_CIDLEN.
 * Anything else (empty, too short for its DCID, a long header's DCID
 * length 0 or above 20) is worker 0, which then drops or answers it like
 * any bad packet. nworkers 0 or 1 gives 0. The version, the fixed bit and
 * the packet type are not looked at: a client's Initial is steered by the
 * DCID it chose at random, the same for each retransmission. This is
 * exactly what steer_attach_cbpf()'s program computes. */
unsigned steer_cid_worker(const uint8_t *pkt, size_t len, unsigned nworkers);

/* A connection ID's first byte for worker `worker` of nworkers, made from
 * the random byte r: returns b with b % nworkers == worker, keeping the
 * high bits of r. nworkers 0 or 1 (or worker >= nworkers, a caller bug)
 * returns r unchanged. */
uint8_t steer_cid_byte(uint8_t r, unsigned worker, unsigned nworkers);

/* Attaches to fd (a UDP socket with SO_REUSEPORT set, bound or not) a
 * classic BPF program computing steer_cid_worker(payload, len, nworkers)
 * as the index of the socket in fd's reuseport group; it then applies to
 * every socket of the group. Bind the group's sockets in worker order.
 * Returns 0; ZG_ERR_INVAL when nworkers is 0 or above STEER_MAX_WORKERS;
 * ZG_ERR_IO when the kernel refuses (err: "SO_ATTACH_REUSEPORT_CBPF:
 * <strerror>", errno kept). err may be NULL. */
int steer_attach_cbpf(int fd, unsigned nworkers, char *err, size_t errlen);

#endif /* ZG_MASQUE_STEER_H */
