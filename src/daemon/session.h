/* Dial-up sessions: the [session] section, and the daemon's session manager
 * that runs them: dial (link_up in a worker thread) -> link check -> deliver
 * everything queued for the link -> inbound retrieval -> stay up while
 * inbound SMTP is open -> hang up when idle or at max_session_time. Each
 * session ends in one line of DIR/log/sessions.jsonl. Invariant: at most one
 * session runs at a time, and a scheduled slot stays owed until a session
 * succeeds (catch-up), however many windows that takes. */
#ifndef DAEMON_SESSION_H
#define DAEMON_SESSION_H
#include <stdio.h>

#include <event2/event.h>

#include "daemon/scheduler.h"
#include "lib/buf.h"
#include "lib/strlist.h"

struct config;
struct delivery;
struct phonebook;
struct queue;
struct smtp_server;

/* [session] settings; every duration in seconds. */
struct session_config {
	int line;		  /* line of the [session] header; 0: defaults */
	struct schedule schedule; /* schedule = every 2h | at ... | grid | off */
	struct strlist entries;	  /* entries = isp, backup; empty: all, file order */
	int idle_timeout;	  /* idle_timeout = 2m */
	int max_session_time;	  /* max_session_time = 1h */
	int session_window;	  /* session_window = 0 (until the next slot; 15m unscheduled) */
	char *retrieve;		  /* retrieve = none */
	enum dwq_mode dwq;	  /* dial_when_queued = N | urgent | off */
	int dwq_count;
	int min_dial_interval; /* min_dial_interval = 5m */
	int check_timeout;     /* check_timeout = 30s */
	unsigned set;	       /* keys given (duplicate detection) */
	/* retrieval settings, parsed in daemon/retrieve.c */
	struct strlist etrn_domains; /* etrn_domains = a.example, b.example */
	int etrn_grace;		     /* etrn_grace = 60s */
	char *retrieve_command;	     /* retrieve_command = finger @isp */
	int retrieve_timeout;	     /* retrieve_timeout = 2m */
	unsigned retrieve_set;	     /* retrieval keys given */
	/* retrieve = atrn (RFC 2645), parsed in daemon/odmr.c */
	char *atrn_host;	     /* atrn_host = hub:366; NULL: the link route's smarthost */
	struct strlist atrn_domains; /* atrn_domains = branch.example */
	char *atrn_auth;	     /* atrn_auth = NAME in auth_file */
	int atrn_tls;		     /* atrn_tls = opportunistic (enum odmr_tls, odmr_common.h) */
	char *atrn_ca;		     /* atrn_ca = FILE: PEM CAs that must sign the hub's certificate */
	char *atrn_fingerprint;	     /* atrn_fingerprint = sha256:HEX, kept as 64 lower-case hex */
	unsigned atrn_set;
};

/* Config hooks, as phonebook.h: open at "[session]", one call per line;
 * 0 or -1 with problem filled (the parser adds file:line). */
int session_section_open(struct session_config **sc, int line, struct buf *problem);
int session_section_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem);
/* After the file: entries exist in the phone book, retrieve is known.
 * Appends "path:line: [session]: problem" lines; returns their number. */
int session_check(const struct session_config *sc, const struct phonebook *pb, const char *path,
		  struct buf *err);
void session_config_free(struct session_config *sc); /* frees sc; NULL is fine */
void session_show(const struct session_config *sc, FILE *out);
/* The defaults (what a configuration without [session] means). */
void session_config_defaults(struct session_config *sc);

/* Inbound retrieval after outbound delivery (daemon/retrieve.c). run starts
 * it and returns a job, or NULL when done was already called (from within
 * run); done(ok, text) is called once, when retrieval is over (after ETRN:
 * the provider's inbound session ended, or etrn_grace passed without one).
 * retrieve_cancel(job) stops a job before that; done is then not called. */
struct retrieval_ctx {
	struct event_base *base;
	const struct config *cfg;
	const struct session_config *sc;
	struct smtp_server *smtp; /* its open sessions are the inbound mail */
	const unsigned *msgs_in;  /* messages received in the session so far */
	const char *entry;	  /* the phone book entry that is up */
	const char *host;	  /* smarthost of a route through the link; NULL: none */
	int port;
	void (*done)(int ok, const char *text, void *arg);
	void *arg;
};
struct retrieve_job;
struct retrieval {
	const char *name;
	struct retrieve_job *(*run)(const struct retrieval_ctx *ctx);
};
const struct retrieval *session_retrieval(const char *name); /* NULL if unknown */

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
/* Runs a session now (entry: only that phone book entry; NULL: the
 * configured entries), or joins the one in progress. Returns a watch id
 * (> 0), or -1 with why filled (no such entry, no phone book). */
int sessions_dial(struct sessions *m, const char *entry, const struct session_watch *w,
		  struct buf *why);
void sessions_unwatch(struct sessions *m, int id);
/* "name: value" lines for dialmail status. */
void sessions_status(struct sessions *m, struct buf *out);
/* A message from the provider's side was queued (counts as inbound while
 * a session is up; LAN submissions are not passed here). */
void sessions_note_message(struct sessions *m, const char *qid);

#endif
