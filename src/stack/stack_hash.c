/*
 * stack_hash.c — SipHash-2-4 (Aumasson & Bernstein) for hash tables keyed
 * against collision flooding, and RFC 6528 initial sequence numbers for lwIP.
 */
#include <string.h>

#include "stack_int.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#include "lwip/ip_addr.h"
#include "lwip/sys.h"
#include "stack_hooks.h"
#pragma GCC diagnostic pop

static uint8_t isn_key[16];

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                   \
	do {                       \
		v0 += v1;          \
		v1 = ROTL(v1, 13); \
		v1 ^= v0;          \
		v0 = ROTL(v0, 32); \
		v2 += v3;          \
		v3 = ROTL(v3, 16); \
		v3 ^= v2;          \
		v0 += v3;          \
		v3 = ROTL(v3, 21); \
		v3 ^= v0;          \
		v2 += v1;          \
		v1 = ROTL(v1, 17); \
		v1 ^= v2;          \
		v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

uint64_t
stack_siphash(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *in = data;
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < left; i++)
		b |= (uint64_t)in[len - left + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

void stack_isn_set_key(const uint8_t key[16])
{
	memcpy(isn_key, key, sizeof(isn_key));
}

size_t stack_lwip_tuple(uint8_t out[STACK_TUPLE_MAX], const ip_addr_t *local_ip, u16_t local_port,
			const ip_addr_t *remote_ip, u16_t remote_port)
{
	size_t n;

	if (IP_IS_V6(local_ip)) {
		memcpy(out, ip_2_ip6(local_ip)->addr, 16);
		memcpy(out + 16, ip_2_ip6(remote_ip)->addr, 16);
		n = 32;
	} else {
		memcpy(out, &ip_2_ip4(local_ip)->addr, 4);
		memcpy(out + 4, &ip_2_ip4(remote_ip)->addr, 4);
		n = 8;
	}
	memcpy(out + n, &local_port, 2);
	memcpy(out + n + 2, &remote_port, 2);
	return n + 4;
}

/* RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, key),
 * M a 4-microsecond timer (here derived from the stack's millisecond
 * clock), F SipHash-2-4 with a random key chosen at stack_new(). */
u32_t stack_lwip_isn(const ip_addr_t *local_ip, u16_t local_port,
		     const ip_addr_t *remote_ip, u16_t remote_port)
{
	uint8_t in[STACK_TUPLE_MAX];
	size_t n = stack_lwip_tuple(in, local_ip, local_port, remote_ip, remote_port);
	uint32_t m = (uint32_t)sys_now() * 250u;

	return m + (uint32_t)stack_siphash(isn_key, in, n);
}
