/* steer.c — see steer.h. */
#include "masque/steer.h"

#include <errno.h>
#include <linux/filter.h>
#include <string.h>
#include <sys/socket.h>

#include "masque/masque_int.h"
#include "zg_err.h"

_Static_assert(STEER_CIDLEN == MASQUE_CIDLEN, "the server's CID length is what a short header has");
_Static_assert(STEER_MAX_DCIDLEN == NGTCP2_MAX_CIDLEN, "QUIC v1's longest CID");

#define LONG_HEADER 0x80
#define LONG_DCIDLEN_AT 5 /* flags(1) version(4) */
#define LONG_DCID_AT 6
#define SHORT_DCID_AT 1

unsigned steer_cid_worker(const uint8_t *pkt, size_t len, unsigned nworkers)
{
	uint8_t d;

	if (nworkers <= 1 || len < 1)
		return 0;
	if (pkt[0] & LONG_HEADER) {
		size_t dcidlen;

		if (len <= LONG_DCIDLEN_AT)
			return 0;
		dcidlen = pkt[LONG_DCIDLEN_AT];
		if (dcidlen == 0 || dcidlen > STEER_MAX_DCIDLEN || len < LONG_DCID_AT + dcidlen)
			return 0;
		d = pkt[LONG_DCID_AT];
	} else {
		if (len < SHORT_DCID_AT + STEER_CIDLEN)
			return 0;
		d = pkt[SHORT_DCID_AT];
	}
	return d % nworkers;
}

uint8_t steer_cid_byte(uint8_t r, unsigned worker, unsigned nworkers)
{
	unsigned b;

	if (nworkers <= 1 || worker >= nworkers)
		return r;
	b = r - r % nworkers + worker;
	if (b > UINT8_MAX)
		b -= nworkers; /* the last, partial block of residues */
	return (uint8_t)b;
}

/* The program runs on the UDP payload (the kernel has pulled the UDP
 * header; len is the payload's length). A load past the end ends it with
 * 0, as steer_cid_worker() answers a datagram too short for its DCID.
 * Jump offsets count from the next instruction. */
#define P_SHORT 3
#define P_LONG 8
#define P_RET0 16

int steer_attach_cbpf(int fd, unsigned nworkers, char *err, size_t errlen)
{
	struct sock_filter code[] = {
		/* 0 */ BPF_STMT(BPF_LDX | BPF_W | BPF_LEN, 0),
		/* 1 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
		/* 2 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, LONG_HEADER, P_LONG - 3, P_SHORT - 3),
		/* short header: len >= 1 + STEER_CIDLEN ? pkt[1] % n : 0 */
		/* 3 */ BPF_STMT(BPF_MISC | BPF_TXA, 0),
		/* 4 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, SHORT_DCID_AT + STEER_CIDLEN, 0, P_RET0 - 5),
		/* 5 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, SHORT_DCID_AT),
		/* 6 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nworkers),
		/* 7 */ BPF_STMT(BPF_RET | BPF_A, 0),
		/* long header: 1 <= pkt[5] <= 20 && 6 + pkt[5] <= len ? pkt[6] % n : 0 */
		/* 8 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, LONG_DCIDLEN_AT),
		/* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, P_RET0 - 10, 0),
		/* 10 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, STEER_MAX_DCIDLEN, P_RET0 - 11, 0),
		/* 11 */ BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, LONG_DCID_AT),
		/* 12 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, P_RET0 - 13, 0),
		/* 13 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, LONG_DCID_AT),
		/* 14 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nworkers),
		/* 15 */ BPF_STMT(BPF_RET | BPF_A, 0),
		/* 16 */ BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	_Static_assert(sizeof(code) / sizeof(code[0]) == P_RET0 + 1, "jump targets");
	if (nworkers == 0 || nworkers > STEER_MAX_WORKERS) {
		zg_seterr(err, errlen, "workers: %u is not between 1 and %d", nworkers,
			  STEER_MAX_WORKERS);
		return ZG_ERR_INVAL;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) != 0) {
		int e = errno;

		zg_seterr(err, errlen, "SO_ATTACH_REUSEPORT_CBPF: %s", strerror(e));
		errno = e;
		return ZG_ERR_IO;
	}
	return 0;
}
