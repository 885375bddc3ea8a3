/* XDMBATCH receiver (docs/batch-protocol.md): runs a batch on an SMTP
 * server session's bufferevent, then hands it back to the session. The
 * session (smtp_server.c) only offers the keyword and calls
 * batch_server_start; everything of the batch lives here.
 * Invariant: "A <id>" is written only after queue_batch_commit reported the
 * message durable; partial data is never a message. */
#ifndef SMTP_BATCH_SERVER_H
#define SMTP_BATCH_SERVER_H
#include <stddef.h>

#include <event2/bufferevent.h>

#include "lib/buf.h"
#include "mail/config.h"
#include "queue/queue.h"

struct batch_server_peer {
	const struct config *cfg;
	struct queue *q;
	const char *addr;      /* client address */
	const char *helo;      /* EHLO name */
	const char *auth_user; /* or NULL; the peer's name for checkpoints if set */
	const char *proto;     /* for the Received: header ("ESMTPA", ...) */
	const char *peer_key;  /* or NULL; names the checkpoints' folder */
	int may_relay;	       /* recipients as policy_rcpt judges them */
	int inbound;	       /* passed to on_commit */
	void (*on_commit)(const char *qid, int inbound, void *arg);
	void *on_commit_arg;
	/* The batch is over. what == 0: the session reads commands again
	 * (input may be waiting); else the bufferevent event (EOF, error,
	 * timeout) that ended it, for the session to handle. */
	void (*done)(short what, void *arg);
	void *done_arg;
};

/* The EHLO keyword's parameters (" 1 DICT=1"), appended to out. */
void batch_server_ehlo_params(struct buf *out);
struct batch_server;
/* Answers "XDMBATCH <arg>". Non-NULL: the go-ahead is written and the batch
 * runs on bev (its callbacks replaced) until p->done is called (which may
 * happen before this returns; the handle is then gone). NULL: reply has
 * the refusal for the session to send; nothing changed. */
struct batch_server *batch_server_start(const struct batch_server_peer *p, struct bufferevent *bev,
					const char *arg, struct buf *reply);
/* Duplex (batch_duplex.c, docs/batch-protocol.md 12): a receiver that
 * writes its lines as ack frames and reads what batch_server_input gives
 * it; its checkpoints go to ckpts, as "250-CKPT" lines at the hub's end
 * (hub), else as "id:offset,..." for the DUPLEX command. p->done(0) once
 * the peer's end segment was read and the final line written. NULL: an
 * unknown dictionary or unreadable partial data. */
struct batch_server *batch_server_duplex(const struct batch_server_peer *p, struct bufferevent *bev,
					 int dict, int hub, struct buf *ckpts);
/* Duplex: segment bytes of the peer's batch; the bytes taken (fewer while
 * decompressed data waits: call again). */
size_t batch_server_input(struct batch_server *b, const unsigned char *p, size_t n);
/* The session ends while the batch runs (server shutdown): frees the batch
 * (committing what is staged) without calling done. */
void batch_server_abandon(struct batch_server *b);
/* The connection of a DUPLEX exchange is gone: commits what came whole,
 * logs event 2041 with why, frees b (NULL: nothing). */
void batch_server_lost(struct batch_server *b, const char *why);

#endif
