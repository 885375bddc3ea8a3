/* A serial port as UUCP programs use it: an HDB lock file in lock_dir, raw
 * termios, optional RTS/CTS, HUPCL, hang-up by DTR drop, reads with timeouts.
 * Invariant: an open serial port holds its lock file; closing it removes it. */
#ifndef LINK_SERIAL_H
#define LINK_SERIAL_H
#include "link/cause.h"
#include "link/port.h"

/* Lock file path for device: LOCK_DIR/LCK..<basename>. Caller frees. */
char *serial_lock_path(const char *lock_dir, const char *device);
/* Takes the UUCP lock (HDB format: pid as 10 ASCII characters and a newline).
 * A lock whose pid is dead is stale and removed. Returns 0, or -1 with c set
 * (CAUSE_DEVICE_BUSY with "locked by pid N", or CAUSE_DEVICE_ERROR). */
int serial_lock(const char *lock_dir, const char *device, char **lockfile, struct cause *c);
void serial_unlock(char **lockfile);

/* The serial back-end (serial_port_ops in port.h), the row for any device
 * path. open: locks
 * and opens the device (O_NOCTTY|O_NONBLOCK), raw mode, speed, HUPCL, CLOCAL
 * until the call is up, CRTSCTS if hwflow (device missing, busy, not a tty,
 * ... in c). hangup: drops DTR (TIOCMBIC) for hold_ms, then closes and
 * reopens the device, keeping the lock; a pty has no DTR, and closing the
 * slave is what its master sees (EIO/hang-up), so close-and-reopen is the
 * portable hang-up. close: drops DTR, closes, removes the lock. read: EIO
 * on a pty whose master closed is a hang-up. */
#endif
