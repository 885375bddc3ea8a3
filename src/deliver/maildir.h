/* Maildir delivery: one message into DIR/mail/<user>/Maildir by the Maildir
 * rules (write tmp/, fsync, link into new/, fsync new/), so a reader never
 * sees a partial message. <user> is always a checked, safe mailbox name. */
#ifndef DELIVER_MAILDIR_H
#define DELIVER_MAILDIR_H
#include "lib/buf.h"
#include "queue/queue.h"

/* "DIR/mail/<user>/Maildir" (caller frees). */
char *maildir_path(const char *dir, const char *user);

/* Writes "Return-Path: <sender>", "Delivered-To: rcpt" and content (wire
 * form; CRLF becomes LF) into user's Maildir, creating it (0700) if needed.
 * Q_OK, Q_TEMPFAIL (disk full, I/O error, cannot create the Maildir) or
 * Q_PERMFAIL (bad user name); a one-line result goes to reply. */
int maildir_deliver(const char *dir, const char *user, const char *sender, const char *rcpt,
		    const struct buf *content, struct buf *reply);
/* As maildir_deliver for recipient rcpt of queued message env, but under a
 * name made of env->id and rcpt, "<sec>.D<qid>_<hash>.<host>", so that it
 * is delivered once however often it is tried: if new/ (or, look_in_cur,
 * cur/ with any ":2,..." flags) holds that name already, nothing is
 * written and Q_OK is returned with "2.0.0 delivered before as ...". */
int maildir_deliver_once(const char *dir, const char *user, const struct q_env *env,
			 const char *rcpt, const struct buf *content, int look_in_cur,
			 struct buf *reply);

#endif
