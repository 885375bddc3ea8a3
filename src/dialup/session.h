/* Dial-up sessions: the daemon's session manager (the [session] settings
 * are dialup/session_config.h). It runs them: dial (link_up in a worker thread) -> link check ->
 * deliver everything queued for the link -> inbound retrieval -> stay up while inbound SMTP is open
 * -> hang up when idle or at max_session_time. Each session ends in one line of
 * DIR/log/sessions.jsonl. Invariant: at most one session runs at a time, and a scheduled slot stays
 * owed until a session succeeds (catch-up), however many windows that takes. */
#ifndef DIALUP_SESSION_H
#define DIALUP_SESSION_H
#include <stdio.h>

#include <event2/event.h>

#include "dialup/session_config.h"
#include "lib/buf.h"
#include "lib/strlist.h"

struct config;
struct delivery;
struct phonebook;
struct queue;
struct smtp_server;

/* --- the daemon's session manager ---------------------------------------- */

struct sessions;

/* Someone watching a session (dialmail dial over the control socket). */
struct session_watch {
	void (*line)(const char *text, void *arg);	      /* one progress line */
	void (*done)(int ok, const char *summary, void *arg); /* the end; watch is gone */
	void *arg;
};

struct sessions *sessions_new(struct event_base *base, const struct config *cfg, const char *dir,
			      struct delivery *d, struct queue *q, struct smtp_server *smtp);
/* Hangs up a session in progress and stops the worker. NULL is fine. */
void sessions_free(struct sessions *m);
/* 1 while a session is in progress (its worker thread reads the
 * configuration: a reload waits for the end). */
int sessions_busy(const struct sessions *m);
/* The configuration changed (a reload, never while busy): [session] is
 * read again and the next slot armed by the new schedule. */
void sessions_reconfigure(struct sessions *m);
/* Runs a session now (entry: only that phone book entry; NULL: the
 * configured entries), or joins the one in progress. Returns a watch id
 * (> 0), or -1 with why filled (no such entry, no phone book). */
int sessions_dial(struct sessions *m, const char *entry, const struct session_watch *w,
		  struct buf *why);
void sessions_unwatch(struct sessions *m, int id);
/* "name: value" lines for dialmail status. */
void sessions_status(struct sessions *m, struct buf *out);
/* The session manager at a glance, for the status page and metrics. The
 * strings point into m and last until the next call into it. */
struct session_snapshot {
	const char *link;     /* "down", "dialing", "waiting to redial", "up", "hanging up" */
	const char *entry;    /* the entry that is up, or NULL */
	const char *connect;  /* its CONNECT text ("CONNECT 33600"), or NULL */
	const char *phase;    /* "outbound", "retrieve", "linger"; NULL: no link up */
	const char *reason;   /* why the session runs; NULL: no session */
	const char *schedule; /* the schedule as written, or "off" */
	int rounds;
	size_t failed_attempts;
	int64_t start_usec, connect_usec; /* 0: none */
	unsigned msgs_out, msgs_in;
	unsigned long long bytes_out, bytes_in;
	time_t next_slot, owed, last_end; /* 0: none */
	int last_ok;
	int missed_in_a_row;	   /* sessions missed since the last successful one */
	unsigned queued, for_link; /* messages in the queue, those waiting for the link */
};
void sessions_snapshot(struct sessions *m, struct session_snapshot *out);
/* One line for systemd's status: "link down; queue 3 messages, 2 for the
 * link; next slot 2026-12-06 12:00:00". */
void sessions_summary(struct sessions *m, struct buf *out);
/* A message from the provider's side was queued (counts as inbound while
 * a session is up; LAN submissions are not passed here). */
void sessions_note_message(struct sessions *m, const char *qid);

#endif
