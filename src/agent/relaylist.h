/*
 * relaylist.h — the relays an agent may use: the `relay` option as a list
 * ("a.example:443,b.example:443", or a YAML list), each entry checked on
 * its own so an error names the entry.
 *
 * An entry is [NAME@]HOST:PORT. HOST is a DNS name, an IPv4 address or an
 * IPv6 literal in brackets ([2001:db8::1]:443). NAME, when given, is the
 * name the relay's certificate must carry and the TLS server name (SNI)
 * sent to it: it lets an entry be an address whose certificate names a
 * host ("relay-b.example@192.0.2.7:443"). Without it the agent's
 * server_name option applies, and without that the entry's HOST.
 *
 * Pure parsing: no resolution, no I/O.
 */
#ifndef ZG_AGENT_RELAYLIST_H
#define ZG_AGENT_RELAYLIST_H

#include <stddef.h>
#include <stdint.h>

#define RELAYLIST_MAX 16       /* entries in one list */
#define RELAYLIST_NAME_MAX 256 /* a host or server name, with its NUL */
#define RELAYLIST_TEXT_MAX 300 /* one entry as written, with its NUL */
#define RELAYLIST_TEMPLATE_MAX 1024

struct relay_entry {
	char text[RELAYLIST_TEXT_MAX]; /* as written: what logs and status show */
	char addr[RELAYLIST_TEXT_MAX]; /* HOST:PORT without NAME@ (brackets kept) */
	char host[RELAYLIST_NAME_MAX]; /* without brackets */
	uint16_t port;                 /* 1..65535 */
	char name[RELAYLIST_NAME_MAX]; /* NAME@ of the entry; "" = none */
	/* Filled by the caller after parsing (agent_config_validate): what a
	 * connection to this relay uses. */
	char server_name[RELAYLIST_NAME_MAX];
	char uri_template[RELAYLIST_TEMPLATE_MAX];
};

struct relaylist {
	struct relay_entry e[RELAYLIST_MAX];
	size_t n;
};

/* Parses one entry, "[NAME@]HOST:PORT", into *e (zeroed first). Returns 0
 * or ZG_ERR_CONFIG with why holding what is wrong with it (not naming the
 * entry: the caller does). */
int relaylist_parse_entry(const char *text, struct relay_entry *e, char *why, size_t whylen);

/* Appends the entries of text, separated by commas and/or blanks, to *l.
 * where names the source in messages ("--relay", "agent.yaml:3:5: relay").
 * Returns 0, or ZG_ERR_CONFIG with err naming the source, the entry by its
 * position in the whole list (from 1) and its text, and what is wrong: not
 * [NAME@]HOST:PORT, a repeated entry, more than RELAYLIST_MAX entries, or
 * no entry at all in text. *l may hold the entries before the bad one. */
int relaylist_add(struct relaylist *l, const char *text, const char *where, char *err,
		  size_t errlen);

/* Writes the entries' text joined by ", " to buf (NUL-terminated; the
 * entries that do not fit are left out whole). Returns buf. */
const char *relaylist_format(const struct relaylist *l, char *buf, size_t buflen);

#endif /* ZG_AGENT_RELAYLIST_H */
