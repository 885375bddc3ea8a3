/* A serial port as UUCP programs use it: an HDB lock file in lock_dir, raw
 * termios, optional RTS/CTS, HUPCL, hang-up by DTR drop, reads with timeouts.
 * Invariant: an open struct serial holds its lock file; serial_close removes it. */
#ifndef LINK_SERIAL_H
#define LINK_SERIAL_H
#include <sys/types.h>

#include "link/cause.h"

struct serial {
	int fd;		/* -1 when closed */
	char *device;	/* "/dev/ttyS0" */
	char *lockfile; /* "LOCK_DIR/LCK..ttyS0", NULL when not locked */
	int speed;	/* bits per second */
	int hwflow;	/* RTS/CTS */
};

/* Lock file path for device: LOCK_DIR/LCK..<basename>. Caller frees. */
char *serial_lock_path(const char *lock_dir, const char *device);
/* Takes the UUCP lock (HDB format: pid as 10 ASCII characters and a newline).
 * A lock whose pid is dead is stale and removed. Returns 0, or -1 with c set
 * (CAUSE_DEVICE_BUSY with "locked by pid N", or CAUSE_DEVICE_ERROR). */
int serial_lock(const char *lock_dir, const char *device, char **lockfile, struct cause *c);
void serial_unlock(char **lockfile);

/* Locks and opens device (O_NOCTTY|O_NONBLOCK), raw mode, speed, HUPCL,
 * CLOCAL until the call is up, CRTSCTS if hwflow. Returns 0, or -1 with c
 * set (device missing, busy, not a tty, ...). */
int serial_open(struct serial *s, const char *device, int speed, int hwflow, const char *lock_dir,
		struct cause *c);
/* Hang-up: drops DTR (TIOCMBIC) for hold_ms, then closes and reopens the
 * device, keeping the lock. A pty has no DTR; closing the slave is what its
 * master sees (EIO/hang-up), so close-and-reopen is the portable hang-up. */
int serial_hangup(struct serial *s, int hold_ms, struct cause *c);
/* Drops DTR, closes, removes the lock. Safe on a closed struct. */
void serial_close(struct serial *s);

/* Writes all of data within timeout_ms; 0, or -1 with c set. */
int serial_write(struct serial *s, const void *data, size_t len, int timeout_ms, struct cause *c);
/* Reads what is there within timeout_ms: >0 bytes, 0 on timeout, -1 with c
 * set when the device failed or hung up (EIO on a pty whose master closed). */
ssize_t serial_read(struct serial *s, void *data, size_t len, int timeout_ms, struct cause *c);
/* Discards input that is waiting (stale result codes). */
void serial_flush_input(struct serial *s);

/* Monotonic milliseconds, for I/O deadlines only: a real device needs real
 * time even when a test freezes clock.h's wall clock. */
long long serial_mono_ms(void);

#endif
