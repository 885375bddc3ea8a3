/* Inbound duplicate suppression: a message whose Message-ID was delivered
 * to a local recipient within dedup_window is not delivered to it again
 * (the end-of-data race after a dropped line makes such resends common).
 * Remembered in DIR/dedup.state, one "time<TAB>message-id<TAB>rcpt" line per
 * delivery. Invariant: a record is written only after the delivery it
 * records is durable, so suppression can cause a duplicate, never a loss. */
#ifndef DELIVER_DEDUP_H
#define DELIVER_DEDUP_H
#include <time.h>

#include "lib/buf.h"
#include "queue/queue.h"

struct dedup;

/* window in seconds; 0: off (NULL is returned, and every call is a no-op). */
struct dedup *dedup_open(const char *dir, int window);
void dedup_close(struct dedup *dd);
/* 1 if env's Message-ID was delivered to rcpt within the window: event 2023
 * is logged and reply says so; 0 otherwise (no Message-ID: never). */
int dedup_suppress(struct dedup *dd, const struct q_env *env, const char *rcpt, struct buf *reply);
/* Records that env was delivered to rcpt now. 0, or -1 if it could not be
 * written (a later resend would then be delivered again). */
int dedup_record(struct dedup *dd, const struct q_env *env, const char *rcpt);

/* For tests: 1 if (msgid, rcpt) is remembered as delivered at or after
 * now - window; *when gets the time. */
int dedup_seen(struct dedup *dd, const char *msgid, const char *rcpt, time_t *when);

#endif
