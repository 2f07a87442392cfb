/*
 * steer.h — which worker a QUIC datagram belongs to (issue 21, target 3:
 * `workers: N` in zgate-relay; src/relay/master.h wires it).
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
 * The fallback (the handoff channels below): the kernel's choice is right
 * only as long as socket i of the group is worker i's. When a socket
 * closes, the kernel moves the group's last socket into its slot (a
 * worker that restarts rebinds at the end); a program index beyond the
 * group's size makes the kernel fall back to its 4-tuple hash, and so
 * does a group whose program could not be attached. So a worker that
 * receives a datagram whose steer_cid_worker() is not its own index must
 * not treat it as unknown (no stateless reset, no new connection for a
 * long header carrying a CID of another worker): it hands the datagram,
 * with its source and destination addresses, to the owning worker, and
 * the owner feeds it to masque_server_input() as if it came from its own
 * socket; replies go out of the owner's socket (same local address and
 * port). The workers should share masque_config.static_secret, so a
 * stateless reset or a Retry token made by one worker is valid for every
 * other.
 *
 * Handoff channels (struct steer_group). One channel per worker w: a
 * SOCK_SEQPACKET socketpair, rd[w] read by worker w only, wr[w] written
 * by every other worker (one end shared by all writers: each message is
 * queued whole, so writers never interleave). The master opens the group
 * before it forks (steer_group_open()); each worker keeps its own read end
 * and every write end (steer_group_keep()); the master keeps the whole
 * group, so a worker that restarts gets its channel back, with whatever
 * waited in it. One message carries one datagram with its peer (source)
 * and local (destination) address:
 *
 *   version (1 byte, STEER_MSG_VERSION) | peer length (1) | local length (1)
 *   | 0 (1) | peer sockaddr | local sockaddr | datagram
 *
 * The addresses are struct sockaddr_in or sockaddr_in6 as this host lays
 * them out (the channel never leaves the host). Both ends are
 * non-blocking: a full channel (its send buffer, shared by the writers)
 * refuses the datagram and the sender drops and counts it (QUIC
 * retransmits); nothing ever waits for a slow worker. Memory is bounded
 * by the kernel's socket buffer (SO_SNDBUF, asked for STEER_CHAN_BUF).
 */
#ifndef ZG_MASQUE_STEER_H
#define ZG_MASQUE_STEER_H

#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

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

/* Longest datagram a channel carries: the largest UDP payload (IPv6,
 * without jumbograms). */
#define STEER_DGRAM_MAX 65527
#define STEER_MSG_VERSION 1
#define STEER_MSG_HDR 4
/* Longest message, and the buffer steer_handoff_recv() needs. */
#define STEER_MSG_MAX (STEER_MSG_HDR + 2 * sizeof(struct sockaddr_in6) + STEER_DGRAM_MAX)
/* Send buffer asked for each channel (the kernel caps it at wmem_max). */
#define STEER_CHAN_BUF (1024 * 1024)

/* The handoff channels of nworkers workers: worker w reads rd[w], every
 * other worker writes wr[w]. A closed or absent end is -1. */
struct steer_group {
	unsigned n;
	int rd[STEER_MAX_WORKERS];
	int wr[STEER_MAX_WORKERS];
};

/* One datagram read from a channel. data points into the caller's buffer. */
struct steer_msg {
	struct sockaddr_storage peer, local;
	socklen_t peerlen, locallen;
	const uint8_t *data;
	size_t len;
};

/* Opens n channels (non-blocking, close-on-exec) into *g; the master calls
 * it before forking the workers. Returns 0; ZG_ERR_INVAL when n is not
 * between 2 and STEER_MAX_WORKERS; ZG_ERR_IO when socketpair(2) fails
 * (err says why, usually descriptors: 2n are needed; nothing is left
 * open). err may be NULL. */
int steer_group_open(struct steer_group *g, unsigned n, char *err, size_t errlen);

/* In worker self after the fork: closes the other workers' read ends and
 * its own write end (it never hands a datagram to itself). */
void steer_group_keep(struct steer_group *g, unsigned self);

/* Closes every end still open. */
void steer_group_close(struct steer_group *g);

/* Hands one datagram (len bytes, received from peer on local) to the
 * worker reading the channel whose write end is wfd; never blocks.
 * Returns 0; ZG_ERR_TOO_LARGE when len > STEER_DGRAM_MAX; ZG_ERR_INVAL
 * when an address is not an IPv4 or IPv6 socket address of its exact
 * size; ZG_ERR_LIMIT when the channel is full (the datagram is dropped);
 * ZG_ERR_IO when the send fails otherwise (errno kept). */
int steer_handoff_send(int wfd, const struct sockaddr *peer, socklen_t peerlen,
		       const struct sockaddr *local, socklen_t locallen, const uint8_t *data,
		       size_t len);

/* Reads the next message from the read end rfd into buf (cap bytes, at
 * least STEER_MSG_MAX) without blocking. Returns 1 with *m filled (m->data
 * points into buf); 0 when nothing waits; ZG_ERR_MALFORMED when a message
 * was read and dropped (truncated, wrong version, an address of the wrong
 * size or family); ZG_ERR_STATE when every write end is closed;
 * ZG_ERR_INVAL when cap < STEER_MSG_MAX; ZG_ERR_IO (errno kept). */
int steer_handoff_recv(int rfd, uint8_t *buf, size_t cap, struct steer_msg *m);

#endif /* ZG_MASQUE_STEER_H */
