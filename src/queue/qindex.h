/* The queue in memory: for each queued message the few fields that the
 * scheduler, the session and the hub ask about (id, arrival, size,
 * priority, the domains of its pending recipients), with counters per
 * domain and per link kept up to date as messages are committed, updated
 * and removed. Invariant: every counter equals what a scan of the entries
 * would count. Questions about the queue are answered here, not from disk.
 * Owned by struct queue (queue_index), used on one thread. */
#ifndef QUEUE_QINDEX_H
#define QUEUE_QINDEX_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/strlist.h"
#include "queue/queue.h"

struct config;
struct qindex;

struct qindex_totals {
	unsigned messages; /* indexed messages */
	unsigned urgent;   /* of those, priority urgent */
	unsigned held;	   /* with a pending recipient in a held domain (hub) */
	unsigned pending;  /* pending recipients */
	uint64_t bytes;	   /* content bytes */
};

struct qindex *qindex_new(void);
void qindex_free(struct qindex *ix);
/* What a recipient domain means: its route's via= link, held or not, local
 * or not. Looked up once per domain, so set it before adding entries. */
void qindex_set_config(struct qindex *ix, const struct config *cfg);

/* Adds (or replaces) the entry for env: its pending recipients count;
 * prio is an enum retry_priority. */
void qindex_put(struct qindex *ix, const struct q_env *env, int prio);
/* New recipient state of an indexed message (nothing if it is unknown). */
void qindex_update(struct qindex *ix, const struct q_env *env);
void qindex_remove(struct qindex *ix, const char *id);
int qindex_has(const struct qindex *ix, const char *id);

void qindex_totals(const struct qindex *ix, struct qindex_totals *t);

/* One indexed message as qindex_each shows it. */
struct qindex_entry {
	const char *id;
	time_t created;
	int held;	    /* a pending recipient in a held domain */
	int tried;	    /* a pending recipient has been tried */
	const char *domain; /* a pending recipient's domain, or NULL */
};
/* Calls fn for every indexed message, in no particular order: memory only,
 * no file is read (the status page and /metrics count the queue so). */
void qindex_each(const struct qindex *ix, void (*fn)(const struct qindex_entry *e, void *arg),
		 void *arg);
/* Messages with a pending, non-local recipient whose route goes via one of
 * names (a message for two of the names counts twice), and how many of
 * them are urgent. */
void qindex_links_count(const struct qindex *ix, const struct strlist *names, unsigned *msgs,
			unsigned *urgent);
/* Calls cb(id) once for each message with a pending recipient in a held
 * domain that is node or (sub) under node; cb returns non-zero to stop.
 * Touches only the matching domains' messages. Returns the number of calls. */
unsigned qindex_held_for(const struct qindex *ix, const char *node, int sub,
			 int (*cb)(const char *id, void *arg), void *arg);
/* What qindex_count selects; zero fields select everything. */
enum qindex_state { QINDEX_ANY, QINDEX_HELD, QINDEX_DEFERRED, QINDEX_NEW };
struct qindex_filter {
	const char *domain; /* a pending recipient in this domain */
	const char *link;   /* a pending recipient routed via= this link */
	int state;	    /* QINDEX_HELD: a pending recipient in a held domain;
			       QINDEX_DEFERRED: one tried and deferred;
			       QINDEX_NEW: not tried yet; QINDEX_ANY */
	time_t older_than;  /* arrived before this time; 0: any */
};
/* The number of messages matching f. A domain alone is one counter; other
 * filters look at every entry in memory (no disk). */
unsigned qindex_count(const struct qindex *ix, const struct qindex_filter *f);
/* 1 if the indexed message id matches f. */
int qindex_matches(const struct qindex *ix, const char *id, const struct qindex_filter *f);
/* Parses a state name ("held", "deferred", "new", "any"); -1 if unknown. */
int qindex_state_parse(const char *s);

/* The listing of the queue, in slices: appends to out one line for each
 * message matching f among the next `slots` entries from *pos on (entry
 * order, not arrival order), and moves *pos on. Returns 1 while entries
 * remain, 0 at the end. A line is "m", id, arrival (unix time), size, then
 * what `dialmail queue --json` shows of the envelope, tab-separated with
 * '%', control bytes and DEL as %XX; qindex_row_parse reads it back. */
struct buf;
int qindex_list(const struct qindex *ix, uint32_t *pos, const struct qindex_filter *f,
		unsigned slots, struct buf *out);
/* One line of qindex_list (without its newline; changed in place) into
 * env, which the caller frees with q_env_free. -1 if it is not one. */
int qindex_row_parse(char *line, struct q_env *env);

/* Bytes of memory the index holds (tables and listing strings included). */
size_t qindex_memory(const struct qindex *ix);

/* The priority of content given as iov, from its header section (as
 * retry_priority_of, over at most the first 16 KB). */
int qindex_priority_iov(const struct iovec *iov, int iovcnt);

/* The due-time heap: every indexed message has a due time, when the queue
 * run should look at it next; the run asks only for messages due, oldest
 * due first, so a large queue of mail not due costs nothing. A commit,
 * update or load sets it from the envelope (the earliest next attempt of
 * a pending recipient; one never tried counts from arrival); the delivery
 * pass sets it after it looked at a message (qindex_schedule), e.g. to the
 * expiry of mail that waits for a link, a release or a route. */
void qindex_schedule(struct qindex *ix, const char *id, time_t when);
/* The due time of id in *due; -1 if id is not indexed. */
int qindex_due_of(const struct qindex *ix, const char *id, time_t *due);
/* The priority (enum retry_priority) of id, or -1 if not indexed. */
int qindex_priority(const struct qindex *ix, const char *id);
/* 1 with the id of the message due first if it is due at or before until;
 * 0 if none is. The message stays indexed: the caller reschedules it. */
int qindex_next_due(const struct qindex *ix, time_t until, char id[QUEUE_ID_MAX]);
/* 1 with the earliest due time of all in *due; 0 if the index is empty. */
int qindex_first_due(const struct qindex *ix, time_t *due);
/* Brings forward to its arrival (or to when, if sooner) the due time of
 * every message with a pending recipient routed via= link (the link came
 * up), or of every message (a flush); the number of messages looked at. */
unsigned qindex_wake_link(struct qindex *ix, const char *link, time_t when);
void qindex_wake_all(struct qindex *ix, time_t when);

/* Appends to out, oldest first, the ids of the messages with a pending
 * recipient routed via= link (what a call on that link may carry); the
 * number appended. Only that link's domains are looked at. */
size_t qindex_link_ids(const struct qindex *ix, const char *link, struct strlist *out);
/* The configuration was reloaded: every domain's held flag and link are
 * looked up again and the counters redone (linear in the queue). */
void qindex_reclassify(struct qindex *ix);

#endif
