/*
 * sdnotify.h — the service manager's readiness protocol (systemd's
 * sd_notify(3)) without libsystemd: one datagram to the AF_UNIX socket
 * named by $NOTIFY_SOCKET ("/path" or "@abstract"), and the watchdog
 * interval from $WATCHDOG_USEC. Without $NOTIFY_SOCKET (not started by a
 * service manager with Type=notify) every call does nothing.
 */
#ifndef ZG_SDNOTIFY_H
#define ZG_SDNOTIFY_H

#include <stdint.h>

/* Sends state ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...", one
 * or more newline-separated assignments) to $NOTIFY_SOCKET. Returns 1 when
 * sent, 0 when $NOTIFY_SOCKET is unset or empty, ZG_ERR_INVAL when it is
 * neither an absolute path nor "@name" or does not fit a sockaddr_un,
 * ZG_ERR_IO when the socket or the send fails (errno set). Never blocks. */
int sdnotify_send(const char *state);

/* The watchdog interval the service manager expects pings within
 * ($WATCHDOG_USEC, for this process when $WATCHDOG_PID is set). Returns 1
 * with *pusec, 0 when there is no watchdog for this process, or
 * ZG_ERR_CONFIG when the variables are malformed. */
int sdnotify_watchdog_usec(uint64_t *pusec);

#endif /* ZG_SDNOTIFY_H */
