/* Held-mail batches for the SMTP client engine, shared by the hub's ATRN
 * (hub/odmr.c) and the direct line's turn (dialup/direct.c). Invariant: a
 * recipient changes state only on the peer's final reply for it. */
#ifndef DELIVER_HELD_H
#define DELIVER_HELD_H
#include <stddef.h>

#include "lib/buf.h"
#include "queue/queue.h"
#include "smtp/smtp_client.h"

struct delivery;

struct held_msg {
	struct q_env env;
	struct buf content;
	size_t *idx; /* the recipients carried */
	size_t nidx;
	int stored;
};

struct held_batch {
	struct held_msg *m;
	size_t nm;
	struct smtpc_msg *jobs; /* after held_batch_jobs */
};

/* Loads message id and adds it to b if want(rcpt, arg) picks any recipient;
 * 1 if it did. with_content 0: envelope only, nothing added, b may be NULL
 * (counting). */
int held_batch_load(struct held_batch *b, struct queue *q, const char *id, int with_content,
		    int (*want)(const struct q_rcpt *r, void *arg), void *arg);
/* Builds b->jobs for smtpc_new (user = the held_msg). */
void held_batch_jobs(struct held_batch *b);
void held_batch_free(struct held_batch *b);

/* Who got the mail, for events, DSNs and the log. */
struct held_peer {
	const char *key, *value; /* the event's extra field ("entry", name) */
	const char *label;	 /* "(SMTP over the line of x)" */
	const char *remote_mta;	 /* for DSNs */
	const char *tag;	 /* log prefix: "odmr" */
	int log_deferred;	 /* log event for 4xx recipients too */
	unsigned ok, held, failed;
};
/* Stores one message's results on its reloaded state (only pending
 * recipients change); a 5xx gets a DSN through outbound delivery (d may be
 * NULL). */
void held_store(struct held_peer *p, struct queue *q, struct delivery *d, struct held_msg *m,
		const struct smtpc_msg *sm);

#endif
