/* The durable queue: one self-checking file per message under DIR/queue,
 * committed by write temp -> fsync -> link -> fsync dir before anyone is told
 * "250". Per-recipient state lives beside it and is replaced atomically.
 * Written by hand (CONVENTIONS: no well-kept library gives this commit order
 * and crash recovery for mail envelopes). See docs/queue-format.md. */
#ifndef QUEUE_QUEUE_H
#define QUEUE_QUEUE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/strlist.h"

/* Outcomes, mapped to 2xx / 4xx / 5xx by callers. */
enum q_status { Q_OK = 0, Q_TEMPFAIL = -1, Q_PERMFAIL = -2 };

#define QUEUE_ID_MAX 32 /* including NUL */

enum rcpt_state { RCPT_PENDING, RCPT_DELIVERED, RCPT_FAILED };

/* The DSN RET parameter of MAIL FROM (RFC 3461 4.3). */
enum q_ret { Q_RET_NONE = 0, Q_RET_FULL = 1, Q_RET_HDRS = 2 };
/* The DSN NOTIFY bits of RCPT TO; the same values as DSN_NOTIFY_* in
 * smtp/dsn.h (checked there), so the queue needs no protocol header. */
#define Q_NOTIFY_SUCCESS 1u
#define Q_NOTIFY_FAILURE 2u
#define Q_NOTIFY_DELAY	 4u
#define Q_NOTIFY_NEVER	 8u

struct q_rcpt {
	char *addr; /* as accepted, e.g. "alice@example.org" */
	enum rcpt_state state;
	int attempts;
	time_t next_attempt; /* 0 = as soon as possible */
	char *last_reply;    /* last result text, or NULL */
	unsigned notify;     /* DSN NOTIFY (RFC 3461) as DSN_NOTIFY_* bits; 0 = not given */
	char *orcpt;	     /* DSN ORCPT as received ("rfc822;a+2Bb@x", xtext), or NULL */
};

struct q_env {
	char id[QUEUE_ID_MAX]; /* filled in by queue_commit / queue_batch_add */
	time_t created;
	char *sender;	  /* "" for the null sender <> */
	char *client;	  /* client address, or "local" for sendmail */
	char *helo;	  /* HELO/EHLO name, or NULL */
	char *message_id; /* Message-ID header value, or NULL */
	uint64_t size;	  /* bytes of content */
	char *envid;	  /* DSN ENVID as received (xtext, not decoded), or NULL */
	int ret;	  /* DSN RET: Q_RET_NONE, Q_RET_FULL or Q_RET_HDRS */
	struct q_rcpt *rcpt;
	size_t nrcpt;
};

struct queue;

/* Opens (creating if needed) the queue under dir: dir/queue, dir/tmp,
 * dir/state, dir/corrupt. NULL with errno on failure. */
struct queue *queue_open(const char *dir);
void queue_close(struct queue *q);
const char *queue_dir(const struct queue *q);
/* The queue's index in memory (queue/qindex.h): it learns of messages as
 * they are committed, loaded (recovery) or updated, and forgets removed
 * and damaged ones. Answers questions about the queue without disk I/O. */
struct qindex *queue_index(struct queue *q);

/* Adds a recipient (state pending) to an envelope being built. */
void q_env_add_rcpt(struct q_env *env, const char *addr);
void q_env_free(struct q_env *env);

/* Stores envelope + content (the concatenated iov, in wire form: CRLF line
 * ends, dots unstuffed) durably and assigns env->id. Q_OK only when the file
 * and its directory entry are on disk. Q_TEMPFAIL with errno (ENOSPC...). */
int queue_commit(struct queue *q, struct q_env *env, const struct iovec *iov, int iovcnt);

/* Group commit: messages are staged one by one (each written to tmp/, not
 * yet synced), then made durable together by queue_batch_commit, which
 * syncs each file and fsyncs queue/ once for the whole batch. A message
 * counts as queued only when queue_batch_commit reported Q_OK for it. */
struct q_batch;

struct q_result {
	int status; /* Q_OK or Q_TEMPFAIL */
	int err;    /* errno of the failure, 0 on Q_OK */
};

struct q_batch *queue_batch_new(struct queue *q);
/* Frees the batch; staged, uncommitted messages are removed from tmp/. */
void queue_batch_free(struct q_batch *b);
/* Stages envelope + content (as for queue_commit) and assigns env->id
 * (keeping one that is valid already). Q_OK: staged as message number
 * queue_batch_count() - 1. Q_TEMPFAIL / Q_PERMFAIL (errno): not staged,
 * nothing left on disk. */
int queue_batch_add(struct q_batch *b, struct q_env *env, const struct iovec *iov, int iovcnt);
size_t queue_batch_count(const struct q_batch *b);
/* Makes every staged message durable with as few syncs as possible. res
 * (queue_batch_count() entries, in staging order) gets each message's
 * outcome; a failed one leaves no file in queue/ or tmp/. Returns the
 * number of Q_OK; the batch is then empty and can be reused. */
int queue_batch_commit(struct q_batch *b, struct q_result *res);

/* A message whose content arrives piece by piece (SMTP DATA and BDAT of
 * any size, in constant memory): queue_stream_open writes the envelope to
 * tmp/ (checked and given an id, as by queue_batch_add; env->size is filled
 * in at the end), queue_stream_write appends content (buffered), and
 * queue_batch_add_stream completes the file and stages it in a batch, to be
 * made durable and acknowledged like any other. Until then nothing in
 * queue/ changes; a stream given up, or left by a crash, is a tmp/ file
 * that queue_stream_abort or start-up recovery removes. */
struct q_stream;

/* NULL with errno: EINVAL (the envelope is refused, as Q_PERMFAIL) or a
 * file system error (as Q_TEMPFAIL). */
struct q_stream *queue_stream_open(struct queue *q, struct q_env *env);
/* 0, or -1 with errno; after a failure every write fails the same way
 * and queue_batch_add_stream reports Q_TEMPFAIL with that errno. */
int queue_stream_write(struct q_stream *st, const void *data, size_t len);
uint64_t queue_stream_size(const struct q_stream *st);
const char *queue_stream_id(const struct q_stream *st);
/* Stages the finished message (sets env->id, env->size) like
 * queue_batch_add. st is freed whatever the outcome. */
int queue_batch_add_stream(struct q_batch *b, struct q_stream *st, struct q_env *env);
/* Gives a stream up: its tmp/ file is removed, st freed. NULL is fine. */
void queue_stream_abort(struct q_stream *st);

/* Group commit on a worker thread: queue_committer_start hands a staged
 * batch to one thread that does queue_batch_commit's syscalls (and nothing
 * else: no log, no events), while the caller goes on staging the next batch
 * in another q_batch. At most one batch is in flight. Every function here,
 * and queue_batch_add/free, is called from one owner thread only. */
struct q_committer;

/* Starts the thread for batches of q. NULL with errno on failure. */
struct q_committer *queue_committer_new(struct queue *q);
/* Waits for a batch in flight to finish, then stops the thread. Collect
 * the batch with queue_committer_done(c, 1) first to get its results (an
 * uncollected one is emptied here, its failures logged, results unread). */
void queue_committer_free(struct q_committer *c);
/* Readable (an eventfd) when the batch handed over is finished. */
int queue_committer_fd(const struct q_committer *c);
/* Hands b over; neither b nor res (queue_batch_count(b) entries) may be
 * touched until queue_committer_done returned b. -1 (EBUSY) while another
 * batch is handed over and not yet collected, (EINVAL) if b is not of q. */
int queue_committer_start(struct q_committer *c, struct q_batch *b, struct q_result *res);
/* 1 from queue_committer_start until queue_committer_done returned the batch. */
int queue_committer_busy(struct q_committer *c);
/* The finished batch, with res filled in and failures logged, as after
 * queue_batch_commit (the batch is empty again); NULL if none is finished.
 * wait: block until the batch in flight (if any) is finished. */
struct q_batch *queue_committer_done(struct q_committer *c, int wait);

/* Loads a message: envelope with current recipient state, and the content
 * into content (appended) unless content is NULL. Q_PERMFAIL if the file is
 * damaged (it is then moved to corrupt/ with event 3013). */
int queue_load(struct queue *q, const char *id, struct q_env *env, struct buf *content);

/* Loads only the envelope with current recipient state: reads the file's
 * first records, not its content, and checks the file's length but not its
 * checksum. For deciding what is due; whatever is delivered must come from
 * queue_load, which checks the whole file (docs/queue-format.md). Q_PERMFAIL
 * for damage it sees (the file is moved to corrupt/, event 3013). */
int queue_load_envelope(struct queue *q, const char *id, struct q_env *env);

/* Persists the per-recipient state of env (atomically). */
int queue_update(struct queue *q, const struct q_env *env);

/* Persists the per-recipient state of env without waiting for the disk:
 * the new state is what queue_load* read from now on, and a writer thread
 * (started at the first call) writes it as state/<id> (temp, fdatasync,
 * rename) with the other updates made meanwhile, then fsyncs state/ once
 * for all of them. A crash before that loses the update: the recipients
 * are tried again (a duplicate at worst, never a loss). Once the writer
 * runs, queue_update goes this way too (so no older image can overwrite a
 * newer one); queue_close waits for what is pending. See
 * docs/queue-format.md. */
int queue_update_later(struct queue *q, const struct q_env *env);

/* Removes a message whose recipients are all done. */
int queue_remove(struct queue *q, const char *id);

/* Calls cb for each queued message id, oldest first; stops if cb returns non-zero. */
int queue_scan(struct queue *q, int (*cb)(const char *id, void *arg), void *arg);

/* Lists the names in queue/ a slice at a time, in directory order (not
 * sorted), so a caller on an event loop can list a large queue without
 * stalling it: each queue_lister_next appends what it reads within about
 * budget_ms to out (ids only, unless all) and returns 1 while there is
 * more. Names added or removed meanwhile may or may not be seen. */
struct q_lister;
struct q_lister *queue_lister_new(struct queue *q); /* NULL with errno */
int queue_lister_next(struct q_lister *l, struct strlist *out, int budget_ms, int all);
void queue_lister_free(struct q_lister *l);

/* Start-up recovery: removes uncommitted temp files, checks every queue
 * file, moves damaged ones to corrupt/ (event 3013). Counts are optional. */
int queue_recover(struct queue *q, int *n_ok, int *n_corrupt);

/* Start-up recovery in slices, for a daemon that listens first (the
 * commit path does not need it): queue_recover_begin removes tmp/ (as
 * queue_recover does) and opens queue/; each queue_recover_step works for
 * about budget_ms (listing queue/, then reading each message's envelope
 * and state into the index: queue_load_envelope, so damaged envelopes go
 * to corrupt/, while content checksums are checked when a message is
 * loaded for delivery) and returns 1 while work remains, 0 once orphan
 * state files are removed and tmp/ and state/ synced. Other queue
 * functions may be called between steps. */
int queue_recover_begin(struct queue *q);
int queue_recover_step(struct queue *q, int budget_ms);

struct q_recover_progress {
	int listing;	    /* still reading the names in queue/ */
	size_t done, total; /* messages looked at, of total (names so far while listing) */
	int ok, corrupt;    /* found whole, moved to corrupt/ */
	int failed;	    /* a read or removal failed (logged) */
};
/* 1 while a recovery begun is not finished; p filled in either way. */
int queue_recover_progress(const struct queue *q, struct q_recover_progress *p);

/* A new unique id, sortable by time: 14 hex digits of microseconds, then
 * 4 of process id and 4 of sequence. */
void queue_new_id(char out[QUEUE_ID_MAX]);
int queue_id_valid(const char *id);

#endif
