/*
 * opt.h — what the relay's and the agent's option tables share: one option
 * name in its three spellings, durations and booleans as written in files,
 * variables and flags, and the --help entry. Each table stays with its
 * program (the relay nests YAML sections, the agent does not); the rules
 * a user sees are the same in both.
 */
#ifndef ZG_OPT_H
#define ZG_OPT_H

#include <stddef.h>
#include <stdint.h>

/* The flag (env = 0) or environment variable (env = 1) for a file key:
 * "timeouts.udp_idle" -> "timeouts-udp-idle" / "ZGATE_TIMEOUTS_UDP_IDLE".
 * out is cut to outlen - 1 characters and always terminated. */
void opt_name(const char *key, int env, char *out, size_t outlen);

/* A duration: a whole number with a unit ms, s, m or h ("250ms", "60s",
 * "2h"), or a bare 0. Stores milliseconds in *pms. Returns 0, or
 * ZG_ERR_CONFIG (no unit, a sign, a fraction, spaces, over 2^32-1 ms). */
int opt_parse_duration(const char *s, uint32_t *pms);

/* A whole number in [min, max], decimal digits only. Returns 0 with *pv,
 * or ZG_ERR_CONFIG. */
int opt_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *pv);

/* 0 when value is set (not empty); else ZG_ERR_CONFIG with err saying the
 * option key is required and naming its flag and variable. */
int opt_require(const char *value, const char *key, char *err, size_t errlen);

/* true/yes/on/1 or false/no/off/0. Returns 0 with *pb, or ZG_ERR_CONFIG. */
int opt_parse_bool(const char *s, int *pb);

/* Appends the --help entry of one option to buf[at..buflen) ("  --flag
 * META", the help text, the file key, the variable and the default when
 * def is not empty) and returns its length, which is counted even when it
 * does not fit (snprintf-style: callers sum the lengths). */
size_t opt_usage_entry(char *buf, size_t buflen, size_t at, const char *key, const char *meta,
		       const char *help, const char *def);

#endif /* ZG_OPT_H */
