/* The line a modem's AT dialogue runs over, as a family of back-ends: each
 * kind of port is one file filling one struct port_ops, and port.c's table
 * lists them. Two kinds: a serial tty (serial.c) and an AT terminal on a
 * TCP port (port_tcp.c, "tcp:HOST:PORT": satellite terminals, cellular
 * routers). Another kind is one more file, its ops named below and a row in
 * the table; modem.c and the link types need no change, since they see only
 * this interface and the line's descriptor.
 * Invariant: fd is the descriptor carrying the line (the data phase, pppd or
 * SMTP on the line, is handed it), -1 when the port is closed; no operation
 * blocks longer than its timeout (plus the hold time in a hang-up). */
#ifndef LINK_PORT_H
#define LINK_PORT_H
#include <stddef.h>
#include <sys/types.h>

#include "link/cause.h"

/* What opens a port: the device the phone book names and its settings (a
 * back-end ignores what it has no use for: a socket has no speed). */
struct port_spec {
	const char *device;   /* "/dev/ttyS0" */
	int speed;	      /* bits per second */
	int hwflow;	      /* RTS/CTS */
	const char *lock_dir; /* UUCP lock directory; NULL: no locking */
};

struct port;

struct port_ops {
	const char *name;   /* "serial" */
	const char *prefix; /* devices it takes ("tcp:"); NULL: any (the last row) */
	/* Opens (and locks) the line; 0, or -1 with c set and the port closed. */
	int (*open)(struct port *p, const struct port_spec *spec, struct cause *c);
	/* Reads what is there within timeout_ms: >0 bytes, 0 on timeout, -1
	 * with c set when the line failed or hung up. */
	ssize_t (*read)(struct port *p, void *data, size_t len, int timeout_ms, struct cause *c);
	/* Writes all of data within timeout_ms; 0, or -1 with c set. */
	int (*write)(struct port *p, const void *data, size_t len, int timeout_ms, struct cause *c);
	/* Discards input that is waiting (stale result codes). */
	void (*drain)(struct port *p);
	/* Ends a call: drops the line for hold_ms and opens it again, so the
	 * modem is back in command state; 0, or -1 with c set (CAUSE_DEVICE_GONE). */
	int (*hangup)(struct port *p, int hold_ms, struct cause *c);
	/* Drops and closes the line, gives back its lock and state. */
	void (*close)(struct port *p);
};

struct port {
	const struct port_ops *ops; /* the back-end; NULL when closed */
	int fd;			    /* the line; -1 when closed */
	char *device;		    /* spec->device while open (port_open owns it) */
	void *state;		    /* the back-end's own */
};

/* The back-ends, each in its own file. */
extern const struct port_ops serial_port_ops, port_tcp_ops;

/* Opens spec->device with the first back-end whose prefix it has. */
int port_open(struct port *p, const struct port_spec *spec, struct cause *c);
ssize_t port_read(struct port *p, void *data, size_t len, int timeout_ms, struct cause *c);
int port_write(struct port *p, const void *data, size_t len, int timeout_ms, struct cause *c);
void port_drain(struct port *p);
int port_hangup(struct port *p, int hold_ms, struct cause *c);
/* Safe on a closed port. */
void port_close(struct port *p);

/* The read and write of a back-end whose line is p->fd (non-blocking),
 * bounded by poll(). A failure is CAUSE_DEVICE_GONE with p->device in its
 * words; end of file, CAUSE_CARRIER_LOST. */
ssize_t port_fd_read(struct port *p, void *data, size_t len, int timeout_ms, struct cause *c);
int port_fd_write(struct port *p, const void *data, size_t len, int timeout_ms, struct cause *c);

#endif
