/* Inbound retrieval after outbound delivery: a method is one struct of
 * functions in a file of its own, listed by the table in retrieve.c.
 * Invariant: a job reports done once, or is cancelled and reports nothing. */
#ifndef DIALUP_RETRIEVE_H
#define DIALUP_RETRIEVE_H
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>

#include "mail/config.h"
#include "dialup/retrieve_client.h"
#include "dialup/session_config.h"
#include "lib/buf.h"
#include "mail/settings.h"

struct smtp_server;

/* What a method's job is given. done(ok, text) is called once, when
 * retrieval is over (after ETRN: the provider's inbound session ended, or
 * etrn_grace passed without one); retrieve_cancel(job) stops a job before
 * that, and done is then not called. */
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

/* One retrieval method. Every hook but name may be NULL (retrieve = none
 * has no settings and no job). */
struct retrieval {
	const char *name; /* retrieve = NAME */
	/* 1: when the job is done, no more inbound mail can come in this
	 * session (the mail came on the job's own connection: atrn, turn, or
	 * there is none); 0: the provider may still connect (etrn, command). */
	int end_known;
	/* The method's [session] keys as rows of the settings table form
	 * (mail/settings.h) over struct session_config; NULL: none. */
	const struct settings_table *settings;
	/* After the file, when the method is the one chosen: what it lacks
	 * (static text), or NULL. */
	const char *(*check)(const struct config *cfg, const struct session_config *sc);
	/* Starts a job; NULL when done was already called (from within run:
	 * the job could not start). */
	struct retrieve_job *(*run)(const struct retrieval_ctx *ctx);
	/* Frees what the method keeps in job->state (retrieve_cancel and
	 * retrieve_finish call it; the job and its client are freed for it). */
	void (*cancel)(struct retrieve_job *job);
};

/* The method named name (any case), or NULL. */
const struct retrieval *retrieve_method(const char *name);
/* Appends the methods' names ("none, etrn, ..."), ", " between them. */
void retrieve_method_names(struct buf *out);
void retrieve_cancel(struct retrieve_job *job); /* NULL is fine; done is not called */

/* [session]: every method's keys and the shared ones. line returns 1 for a
 * key no method has, 0 when parsed, -1 with problem filled. check appends
 * "path:line: [session]: problem" for the chosen method and returns the
 * number of lines (sc NULL: none). names appends every key, ", " before
 * each (for "unknown [session] setting" messages). */
void retrieve_config_defaults(struct session_config *sc);
int retrieve_config_line(struct session_config *sc, const char *key, const char *value,
			 struct buf *problem);
int retrieve_check(const struct config *cfg, const struct session_config *sc, const char *path,
		   struct buf *err);
void retrieve_show(const struct session_config *sc, FILE *out);
void retrieve_config_free(struct session_config *sc); /* the retrieval fields only */
void retrieve_config_names(struct buf *out);

/* --- for the methods ------------------------------------------------------ */

/* A running job: what every method has, and the method's own state. */
struct retrieve_job {
	struct retrieval_ctx ctx; /* entry and host point at the job's copies */
	const struct retrieval *method;
	char *entry, *host;
	struct buf summary;		/* the failures so far, "; " between them */
	unsigned msgs0;			/* messages received before the retrieval began */
	struct event *tick;		/* retrieve_tick's timer, or NULL */
	struct retrieve_client *client; /* the dialogue (etrn, atrn, turn), or NULL */
	void *state;			/* the method's */
};

struct retrieve_job *retrieve_job_new(const struct retrieval *m, const struct retrieval_ctx *ctx);
/* Event 4121 with the cause, which is added to the summary. */
void retrieve_failed(struct retrieve_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The end: event 4123, the job freed, then done(ok, text). */
void retrieve_finish(struct retrieve_job *j, int ok, const char *text);
/* A job that could not start: 4121 and 4123 with why; returns NULL (for run). */
struct retrieve_job *retrieve_abort(struct retrieve_job *j, const char *why);
/* Connects the job's client dialogue (retrieve_client_connect, arg the
 * job), unless problem says why it cannot. j, or NULL (retrieve_abort). */
struct retrieve_job *retrieve_connect(struct retrieve_job *j, const char *problem,
				      const struct retrieve_client_opts *o,
				      const struct retrieve_client_ops *ops);
/* The end of a job that is its client dialogue (atrn, turn: ops->end): 4121
 * when it failed, then retrieve_finish. arg is the job. */
void retrieve_over(int ok, const char *text, void *arg);
/* Calls cb(job) every 250 ms until the job ends. */
void retrieve_tick(struct retrieve_job *j, void (*cb)(evutil_socket_t, short, void *));
/* Messages received since the job began. */
unsigned retrieve_received(const struct retrieve_job *j);

#endif
