/* The Hayes AT dialog of one modem: init strings, dialing with a prefix,
 * result codes read line by line with timeouts and classified into causes.
 * It talks to its line only through link/port.h, so a modem on a serial
 * tty and one behind any other port back-end are the same to it.
 * Invariant: every function returns within its timeout and, on failure,
 * leaves exactly one cause in *c. */
#ifndef LINK_MODEM_H
#define LINK_MODEM_H
#include "link/cause.h"
#include "link/phonebook.h"
#include "link/port.h"

struct modem {
	struct port port; /* port.fd: the line, -1 when closed */
	const struct phonebook_entry *entry;
	char connect[64]; /* the CONNECT line of the call up, e.g. "CONNECT 33600/ARQ" */
	int speed;	  /* line speed from CONNECT, 0 if the modem did not say */
	char rline[64];	  /* modem_wait_ring: a line being read */
	size_t rlen;
};

/* Locks and opens the entry's device (port_open). 0, or -1 with c set. */
int modem_open(struct modem *m, const struct phonebook_entry *e, const char *lock_dir,
	       struct cause *c);
/* Sends each init string (at_timeout each) and expects OK. An ERROR reply is
 * CAUSE_INIT_ERROR, silence CAUSE_NO_RESPONSE, noise CAUSE_GARBAGE. */
int modem_init(struct modem *m, struct cause *c);
/* Dials dial_prefix + number and waits dial_timeout for the result. 0 on
 * CONNECT (m->connect, m->speed set); -1 with the modem's words in c. */
int modem_dial(struct modem *m, const char *number, struct cause *c);
/* Waits up to timeout_ms for a RING line (an incoming call). 1 on RING, 0
 * on timeout, -1 with c set when the device failed. Other lines are skipped. */
int modem_wait_ring(struct modem *m, int timeout_ms, struct cause *c);
/* Answers the ringing call (ATA) and waits answer_timeout for CONNECT. 0
 * with m->connect and m->speed set; -1 with the modem's words in c (NO
 * CARRIER: the caller went away or no carrier was negotiated). */
int modem_answer(struct modem *m, struct cause *c);
/* Recovery of a modem that misbehaves: DTR drop (hold_ms), close and reopen
 * the device, then the init strings again. 0 when it answers OK again. */
int modem_recover(struct modem *m, int hold_ms, struct cause *c);
/* Ends a call: DTR drop, close and reopen (the modem back in command state). */
int modem_hangup(struct modem *m, int hold_ms, struct cause *c);
/* Is the call still up? Looks without blocking for a hang-up of the device
 * or a NO CARRIER line. 0 if up; -1 with c = CAUSE_CARRIER_LOST or
 * CAUSE_DEVICE_GONE. Only for data = none, where nobody else reads the line. */
int modem_carrier(struct modem *m, struct cause *c);
/* Hangs up and closes the device, removing the lock. */
void modem_close(struct modem *m);

#endif
