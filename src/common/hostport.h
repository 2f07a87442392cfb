/*
 * hostport.h — "host:port" strings as every zgate option writes them.
 */
#ifndef ZG_HOSTPORT_H
#define ZG_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

/* Splits "host:port" / "[v6]:port" / ":port" into host (without brackets;
 * "" when empty) and port. Returns 0 or ZG_ERR_CONFIG (no port, port above
 * 65535, an IPv6 literal without brackets, host longer than hostlen-1). */
int hostport_split(const char *s, char *host, size_t hostlen, uint16_t *pport);

struct sockaddr;

/* The other way: sa as "a.b.c.d:port" or "[v6]:port" into buf (len bytes,
 * truncated as snprintf does); "?" for any other family. */
void hostport_format(const struct sockaddr *sa, char *buf, size_t len);

#endif /* ZG_HOSTPORT_H */
