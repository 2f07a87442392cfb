/*
 * cksum.h — the Internet checksum (RFC 1071), for the packets zgate
 * checks and builds itself (the relay's stack, ICMP errors and TUN
 * segments in the agent, echo requests in the probe).
 */
#ifndef ZG_CKSUM_H
#define ZG_CKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Adds p[0..n) as big-endian 16-bit words (an odd last byte padded with
 * zero) to the running sum s and returns it, partly folded so it never
 * overflows, whatever s and for any n below 2^34 bytes. Fold it with
 * cksum_fold(). */
uint32_t cksum_add(uint32_t s, const uint8_t *p, size_t n);

/* Folds the carries of s and returns the one's complement: the value to
 * store in the checksum field. */
uint16_t cksum_fold(uint32_t s);

#endif /* ZG_CKSUM_H */
