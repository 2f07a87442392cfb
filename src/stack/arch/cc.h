/*
 * arch/cc.h — lwIP platform port for zgate (Linux, gcc/clang, NO_SYS=1).
 *
 * lwIP includes this through lwip/arch.h. Byte order comes from the C
 * library (lwIP's own copies are disabled in lwipopts.h), random numbers
 * from arc4random(3), and assertions abort: lwIP asserting means our use
 * of it is wrong, and continuing would corrupt its state.
 */
#ifndef ZG_LWIP_ARCH_CC_H
#define ZG_LWIP_ARCH_CC_H

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#define LWIP_TIMEVAL_PRIVATE 0
#define LWIP_ERRNO_STDINCLUDE 1

/* BYTE_ORDER and LITTLE_ENDIAN come from <endian.h>. */
#if BYTE_ORDER != LITTLE_ENDIAN
#error "zgate's lwIP port is only tested on little-endian hosts"
#endif

/* lwip/def.h derives lwip_ntohs/lwip_ntohl from these. */
#define lwip_htons(x) htons(x)
#define lwip_htonl(x) htonl(x)

#define LWIP_RAND() ((u32_t)arc4random())

#define LWIP_PLATFORM_DIAG(x) \
	do {                  \
		printf x;     \
	} while (0)

#define LWIP_PLATFORM_ASSERT(x)                                               \
	do {                                                                  \
		fprintf(stderr, "lwIP assertion \"%s\" failed at %s:%d\n", x, \
			__FILE__, __LINE__);                                  \
		abort();                                                      \
	} while (0)

#endif /* ZG_LWIP_ARCH_CC_H */
