/* The attempt engine: brings a link up through an ordered list of phone
 * book entries (alternates), redialling, recovering the modem and skipping
 * entries by the class of each failure, and logging every step as an event.
 *
 * Design: link_up is a synchronous state machine whose every wait is a
 * poll() with a timeout, bounded by one round (entries x numbers x
 * redial_attempts) and by the caller's deadline. The dialog is strictly
 * sequential with waits of up to a minute, so an event-driven version would
 * only spread it over callbacks; instead the session runs link_up in its own
 * thread (or child process) and the daemon's libevent loop keeps accepting
 * mail meanwhile. Nothing here touches global state except the event log
 * (one write() per record), so that is safe. If run in a child process, note
 * that the UUCP lock carries the child's pid: keep the child for the life of
 * the call, or the lock looks stale. The caller owns the time budget: it sets
 * a deadline (clock_usec) and a pause hook, so tests with a fake clock make
 * redial intervals pass without sleeping. */
#ifndef LINK_LINK_H
#define LINK_LINK_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "link/cause.h"
#include "link/phonebook.h"

struct link_opts {
	const char *lock_dir;  /* UUCP lock directory (config lock_dir); NULL: no locking */
	int64_t deadline_usec; /* clock_usec() after which no attempt starts; 0: none */
	int dtr_hold_ms;       /* DTR low time in recovery and hang-up; 0: 500 ms */
	/* Waits ms between attempts; returns nonzero to abandon the round (shutdown).
	 * NULL: sleep for real. */
	int (*pause)(void *arg, int ms);
	/* Optional check that the mail path works once the link is up (the
	 * smarthost's SMTP greeting); 0 ok, -1 with why filled. A failure is
	 * CAUSE_LINK_CHECK (transient): the call is hung up and redialled. */
	int (*check)(void *arg, const char *entry, struct buf *why);
	/* Optional live progress, one line per step ("BUSY: redial in 30s"). */
	void (*progress)(void *arg, const char *line);
	void *arg;
};

/* One failed attempt, as its 4106 event told it. */
struct link_attempt {
	char *entry;
	char *number; /* "" for command links and device failures */
	int n, of;    /* attempt n of m on this number */
	struct cause cause;
	int64_t at_usec; /* clock_usec() when it ended */
};

/* What a round did: every failed attempt in order, and recoveries. */
struct link_report {
	struct link_attempt *v;
	size_t n;
	int recoveries;	   /* modem recoveries attempted */
	int recoveries_ok; /* ... of which the modem answered again */
	int window_closed; /* the round stopped at the deadline or by pause() */
};

struct link; /* a link that is up */

/* Runs one round over entries[0..n) in order. Returns 0 with *out set when
 * a link is up (event 4101), or -1 when no entry came up (event 4105 unless
 * the window closed first); rep lists every failed attempt either way. */
int link_up(const struct phonebook_entry *const *entries, size_t n, const struct link_opts *o,
	    struct link **out, struct link_report *rep);
void link_report_free(struct link_report *rep);
/* "isp: BUSY (the number is busy); backup: ..." — the last cause per entry. */
void link_report_summary(const struct link_report *rep, struct buf *out);

const struct phonebook_entry *link_entry(const struct link *l);
const char *link_number(const struct link *l);	     /* "" unless a modem call */
int link_speed(const struct link *l);		     /* bps from CONNECT; 0 unknown */
const char *link_connect_text(const struct link *l); /* "CONNECT 33600", or "" */
/* data = direct: the tty carrying the call, for SMTP over the line; else -1. */
int link_fd(const struct link *l);
/* Is the link still up? 0, or -1 with c set: carrier lost, pppd exited
 * (with its exit meaning), check command failing. Never blocks: type =
 * command starts its check command (at most every LINK_ALIVE_CHECK_MS) and
 * learns its verdict on a later call (link_check_poll). */
int link_alive(struct link *l, struct cause *c);
#define LINK_ALIVE_CHECK_MS 5000
/* type = command: 1 while a check runs, 0 when it passed (or none is due),
 * -1 with c set when it failed or ran longer than up_timeout (killed). */
int link_check_poll(struct link *l, struct cause *c);
/* Hangs up: stops pppd, drops DTR and closes the device, or runs `down`;
 * writes event 4102 with reason and duration; frees l. NULL is fine. */
void link_down(struct link *l, const char *reason);

#endif
