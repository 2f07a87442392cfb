/*
 * pdump.h — debug.payload_dump: every IP packet the relay decrypts from a
 * tunnel or sends into one, appended to a file. For tests only
 * (t_connector.sh proves with it that the relay never sees what travels
 * through a connector); off unless debug.payload_dump names a file, and
 * the relay warns at start when it is on.
 *
 * The file is a sequence of records, one per packet, nothing else:
 *
 *   Record { Length (32, big-endian), Packet (Length bytes) }
 *
 * exactly the IP packet as the tunnel carried it (no framing, no
 * timestamp). The file is opened O_APPEND and mode 0600: two relays, or
 * runs, appending to one file keep whole records.
 */
#ifndef ZG_RELAY_PDUMP_H
#define ZG_RELAY_PDUMP_H

#include <stddef.h>
#include <stdint.h>

#define PDUMP_HDR 4 /* the record header: the packet's length */

struct pdump {
	int fd;           /* -1: off */
	uint64_t records; /* packets written */
	uint64_t errors;  /* packets that could not be written (logged once a run of them) */
	int failing;      /* the last write failed */
};

/* Writes the record header of a packet of len bytes into h (pure).
 * Returns 0, or ZG_ERR_RANGE when len does not fit 32 bits. */
int pdump_header(uint8_t h[PDUMP_HDR], size_t len);

/* Sets d off (nothing is ever written). */
void pdump_init(struct pdump *d);

/* Turns d on, appending to path (created 0600), or leaves it off when
 * path is NULL or "". Returns 0, or ZG_ERR_IO with errno set (d stays
 * off). */
int pdump_open(struct pdump *d, const char *path);

/* 1 when d writes packets. */
int pdump_on(const struct pdump *d);

/* Appends the record of pkt[0..len) when d is on. A failed write is
 * counted and logged once, until a write succeeds again. */
void pdump_packet(struct pdump *d, const uint8_t *pkt, size_t len);

/* Closes the file; d is off again. */
void pdump_close(struct pdump *d);

#endif /* ZG_RELAY_PDUMP_H */
