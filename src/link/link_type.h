/* Link types as a family of back-ends, inside src/link only: each type of
 * phone book entry (modem, command, always) is one file filling one struct
 * link_type, and link.c's table lists them; the attempt engine in link.c
 * knows a type only through these slots. Adding a type is one file and one
 * row (and its keyword in phonebook.c). The modem's data phases (none, ppp,
 * direct, command) are a small family of their own, listed by link_modem.c.
 * Invariant: the engine calls open first; then, per attempt, call, start
 * and (after a failure) abort; close last, after down if the link was up.
 * A NULL slot has nothing to do (for call, see there). */
#ifndef LINK_LINK_TYPE_H
#define LINK_LINK_TYPE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "link/cause.h"
#include "link/link.h"
#include "link/modem.h"
#include "link/phonebook.h"

struct link {
	const struct phonebook_entry *e;
	const struct link_type *type;
	char number[64];    /* the number called; "" unless the type dials */
	char connect[64];   /* the modem's CONNECT line; "" for other types */
	int speed;	    /* bps from CONNECT; 0 unknown */
	int64_t start_usec; /* event 4102 counts the link's time from here */
	void *state;	    /* the type's own, type->state_size bytes, zeroed */
};

struct link_type {
	const char *name; /* the phone book's keyword (type = modem) */
	size_t state_size;
	int dials; /* 1: each attempt calls one of the entry's numbers; 0: attempts have none */
	/* Takes what the entry's attempts share (the modem: lock and open its
	 * device); 0, or -1 with c set. */
	int (*open)(struct link *l, const char *lock_dir, struct cause *c);
	/* One attempt, to number ("" unless dials); 0 when the line is up (a
	 * modem sets l->connect and l->speed), -1 with c set. NULL: the link is
	 * up without any attempt or check (type always). */
	int (*call)(struct link *l, const char *number, struct cause *c);
	/* Once the line is up, what runs on it (the modem's data phase); 0, or
	 * -1 with c set. */
	int (*start)(struct link *l, struct cause *c);
	/* Undoes an attempt that failed in call, start or the caller's check:
	 * stops the data phase and hangs up, or runs `down`. */
	void (*abort)(struct link *l, int hold_ms);
	/* After trouble of class CC_MODEM: 0 when the device answers again.
	 * NULL: no recovery; such trouble is redialled like a transient one. */
	int (*recover)(struct link *l, int hold_ms, struct cause *c);
	/* link_fd; NULL: -1. */
	int (*fd)(const struct link *l);
	/* link_alive, never blocking; NULL: always up. */
	int (*alive)(struct link *l, struct cause *c);
	/* Ends a link that is up: stops its data phase, or runs `down`. */
	void (*down)(struct link *l);
	/* Gives back what open took. */
	void (*close)(struct link *l);
};

extern const struct link_type link_type_modem, link_type_command, link_type_always;

/* The data phase of a modem call (data = none | ppp | direct | command):
 * what runs on the line once the modem said CONNECT. *child is the process
 * a phase leaves running on the line (pppd), 0 if none; the modem type
 * stops it when the call ends. */
struct link_data {
	const char *name; /* the phone book's keyword (data = ppp) */
	/* 0 when the link is up, -1 with c set; NULL: nothing to start. */
	int (*start)(const struct phonebook_entry *e, struct modem *m, pid_t *child,
		     struct cause *c);
	/* 0 while up, -1 with c set; NULL: no sign of its own. */
	int (*alive)(struct modem *m, pid_t *child, struct cause *c);
	int direct; /* the line itself carries the mail (link_fd) */
};

extern const struct link_data link_data_ppp;

/* Child processes of links (pppd, up/down/check commands): link_proc.c. */
/* Starts argv (or "sh -c cmd" when argv is NULL) with io as stdin and stdout
 * (-1: /dev/null) and out_fd as stderr (and stdout when io is -1). */
pid_t link_spawn(char *const *argv, const char *cmd, int io, int out_fd);
/* Stops a child and its process group: SIGTERM, up to 3 s, then SIGKILL. */
int link_reap(pid_t pid);
/* A finished command's wait status as a cause: 0 for exit 0, else -1 with c
 * set (signal, not found, exit status; last: its last line of output). */
int link_status_cause(const char *cmd, int status, const char *last, struct cause *c);
/* Runs "sh -c cmd" within timeout_ms; 0 on exit 0, else -1 with c set to
 * the exit status, signal, not-found or timeout, with its last output line. */
int link_run(const char *cmd, int io, int timeout_ms, struct cause *c);

#endif
