/* Service manager notifications (sd_notify, systemd's Type=notify): ready,
 * reloading, stopping and a one-line status. Invariant: without
 * NOTIFY_SOCKET in the environment every call does nothing. */
#ifndef LIB_NOTIFY_H
#define LIB_NOTIFY_H

/* 1 if a service manager listens (NOTIFY_SOCKET is set). */
int notify_enabled(void);
/* READY=1 with STATUS=status: started, or done reloading. */
void notify_ready(const char *status);
/* RELOADING=1 (and MONOTONIC_USEC, for Type=notify-reload). */
void notify_reloading(void);
/* STOPPING=1. */
void notify_stopping(void);
/* STATUS=status, what `systemctl status` shows. */
void notify_status(const char *status);

#endif
