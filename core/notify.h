#ifndef POSTERN_NOTIFY_H
#define POSTERN_NOTIFY_H

/* systemd's service notification protocol (sd_notify(3), through
 * libsystemd), for a Type=notify unit: the master says READY=1 once its
 * listeners are bound, RELOADING=1 and READY=1 around a SIGHUP reload,
 * STOPPING=1 when it begins to stop, and a STATUS= line a person reads in
 * `systemctl status`. Without $NOTIFY_SOCKET (not started by systemd)
 * every call does nothing. Private to core (the master). */

/* Each returns 1 when sent, 0 when there is no socket to tell, -1 when
 * sending failed (logged). */
int notify_ready(const char *status);
int notify_reloading(void);
int notify_stopping(const char *status);
int notify_status(const char *status);

#endif
