/* The cause model of the link layer: every dial attempt ends in exactly one
 * cause, with a class that decides what the engine does next, a stable short
 * name and a human text. Invariant: no cause is ever reported as a bare number. */
#ifndef LINK_CAUSE_H
#define LINK_CAUSE_H
#include "lib/buf.h"

/* What to do about a failure (issue 4, "Failure classes and retries"). */
enum cause_class {
	CC_NONE,      /* success */
	CC_TRANSIENT, /* redial after redial_interval, next number, next entry */
	CC_MODEM,     /* recover the modem (DTR drop, reopen, init), then retry */
	CC_CONFIG,    /* configuration or credentials: stop this entry for this window */
	CC_UNKNOWN,   /* treated as transient */
};

enum cause_id {
	CAUSE_OK = 0,
	/* modem result codes after ATD */
	CAUSE_BUSY,
	CAUSE_NO_ANSWER,
	CAUSE_NO_CARRIER,
	CAUSE_NO_DIALTONE,
	CAUSE_VOICE,
	CAUSE_DELAYED,
	CAUSE_BLACKLISTED,
	CAUSE_DIAL_ERROR,   /* ERROR in reply to ATD */
	CAUSE_DIAL_TIMEOUT, /* no result within dial_timeout */
	/* the modem itself */
	CAUSE_INIT_ERROR,  /* ERROR in reply to an init string */
	CAUSE_NO_RESPONSE, /* nothing at all in reply to AT */
	CAUSE_GARBAGE,	   /* a reply that is no result code */
	CAUSE_DEVICE_MISSING,
	CAUSE_DEVICE_BUSY,  /* UUCP lock held by a live process */
	CAUSE_DEVICE_ERROR, /* open/termios failed (permissions, not a tty) */
	CAUSE_DEVICE_GONE,  /* the device vanished or failed during the dialog */
	CAUSE_CARRIER_LOST, /* the call dropped after CONNECT */
	CAUSE_LINK_CHECK,   /* connected, but the mail path did not answer */
	/* pppd(8) exit statuses */
	CAUSE_PPP_FATAL,	/* 1 */
	CAUSE_PPP_OPTIONS,	/* 2 */
	CAUSE_PPP_NOT_ROOT,	/* 3 */
	CAUSE_PPP_NO_KERNEL,	/* 4 */
	CAUSE_PPP_SIGNAL,	/* 5 */
	CAUSE_PPP_LOCK,		/* 6 */
	CAUSE_PPP_OPEN,		/* 7 */
	CAUSE_PPP_CONNECT,	/* 8 */
	CAUSE_PPP_PTYCMD,	/* 9 */
	CAUSE_PPP_NEGOTIATION,	/* 10 */
	CAUSE_PPP_PEER_AUTH,	/* 11 */
	CAUSE_PPP_IDLE,		/* 12 */
	CAUSE_PPP_CONNECT_TIME, /* 13 */
	CAUSE_PPP_CALLBACK,	/* 14 */
	CAUSE_PPP_PEER_DEAD,	/* 15 */
	CAUSE_PPP_HANGUP,	/* 16 */
	CAUSE_PPP_LOOPBACK,	/* 17 */
	CAUSE_PPP_INIT,		/* 18 */
	CAUSE_PPP_AUTH,		/* 19 */
	CAUSE_PPP_TRAFFIC,	/* 20 */
	CAUSE_PPP_CNID,		/* 21 */
	CAUSE_PPP_EXIT_OTHER,	/* any other status; the text gives it in words */
	CAUSE_PPP_NO_START,	/* pppd could not be started */
	CAUSE_PPP_UP_TIMEOUT,	/* pppd ran but never signalled ip-up */
	/* command links (type = command, data = command) */
	CAUSE_CMD_EXIT,	     /* exited with status n */
	CAUSE_CMD_SIGNAL,    /* killed by a signal */
	CAUSE_CMD_TIMEOUT,   /* did not finish within up_timeout */
	CAUSE_CMD_NOT_FOUND, /* sh: 126/127 */
	CAUSE_CHECK_FAILED,  /* the check command never passed within up_timeout */
	/* the engine */
	CAUSE_WINDOW_CLOSED, /* the time budget ran out before an attempt */
	CAUSE_BAD_ENTRY,     /* the entry cannot be dialed as configured */
	CAUSE_COUNT
};

/* One classified outcome: the cause plus what the peer actually said. */
struct cause {
	enum cause_id id;
	int code;	 /* exit status or signal for PPP/CMD causes; 0 otherwise */
	char words[128]; /* the modem's own words or other detail; may be empty */
};

enum cause_class cause_class(enum cause_id id);
const char *cause_class_name(enum cause_class c); /* "transient", "modem trouble", ... */
const char *cause_name(enum cause_id id);	  /* stable: "busy", "ppp-auth-failed" */
const char *cause_text(enum cause_id id);	  /* "the number is busy" */

/* Sets c (id, code 0, words empty; words gets a copy of the detail if given). */
void cause_set(struct cause *c, enum cause_id id, const char *words);
/* Appends the cause in words: "BUSY (the number is busy)",
 * "pppd exit 19: we failed to authenticate ourselves to the peer". */
void cause_describe(const struct cause *c, struct buf *out);

/* Classifies one line from a modem. Returns 1 for a final result code
 * (OK, CONNECT ..., BUSY, ...) with *id set (CAUSE_OK for OK and CONNECT)
 * and *connect set to 1 for CONNECT; 0 for anything else (echo, RING,
 * CARRIER 33600, PROTOCOL: LAPM). Numeric (ATV0) codes are understood. */
int cause_modem_result(const char *line, enum cause_id *id, int *connect);
/* The cause of a pppd exit status (0 is CAUSE_OK). */
enum cause_id cause_from_pppd(int status);

#endif
