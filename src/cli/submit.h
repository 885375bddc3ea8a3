/* The client side of the daemon's local submission socket
 * (DIR/public/submit.sock, smtp_server_listen_local): how a user who may
 * not write the spool submits, and sendmail -bs. Invariant: exit 0 only
 * after the daemon said 250 to the end of the message. */
#ifndef CLI_SUBMIT_H
#define CLI_SUBMIT_H
#include <stddef.h>

#include "lib/buf.h"
#include "queue/queue.h"

/* Sends the message (head, then body; wire form) with env's sender and
 * recipients over SMTP to the daemon. A sysexits status, after a line on
 * stderr unless EX_OK; the queue id goes to qid. */
int submit_via_daemon(const char *dir, const struct q_env *env, const struct buf *head,
		      const char *body, size_t blen, char *qid, size_t qidlen);
/* sendmail -bs: the SMTP dialogue on stdin/stdout, relayed to the daemon
 * until either side closes. */
int submit_dialogue(const char *dir);

#endif
