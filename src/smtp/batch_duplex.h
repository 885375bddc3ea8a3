/* XDMBATCH DUPLEX (docs/batch-protocol.md 12): both batches on one
 * connection at once, the branch's outbound mail up and the hub's held mail
 * down, each side's acknowledgements in ack frames between its own batch's
 * segments. Invariant: a message counts as delivered only on the other
 * side's A line (batch_client.c) and is acknowledged only once durable
 * (batch_server.c); the exchange is over when both batches have their
 * final line, and only then is the connection plain SMTP again. */
#ifndef SMTP_BATCH_DUPLEX_H
#define SMTP_BATCH_DUPLEX_H
#include <stddef.h>

#include <event2/bufferevent.h>

#include "lib/buf.h"
#include "smtp/batch_server.h"
#include "smtp/smtp_client.h"

enum batch_duplex_end {
	BD_DONE,     /* both batches ended; the connection is plain SMTP again */
	BD_FALLBACK, /* the hub refused DUPLEX (client end): plain SMTP, nothing sent */
	BD_LOST	     /* the connection broke or timed out */
};

struct batch_duplex_params {
	struct batch_server_peer rx; /* receives the peer's batch (done: ours) */
	struct smtpc *tx;	     /* what we send (smtpc_new, never started) */
	int dict;		     /* the dictionary version both use */
	size_t chunk;		     /* our data record size */
	int timeout_ms;		     /* for the peer's acknowledgements */
	const char *domains;	     /* client end: the domains claimed (DUPLEX=) */
	int auth_pending;	     /* client end: AUTH's reply comes first (the command
					went behind the AUTH answer): 235 or the end */
	/* The exchange is over; the bufferevent has no callbacks of ours, what
	 * follows it waits in its input. The handle is gone after this. */
	void (*end)(enum batch_duplex_end how, const char *text, void *arg);
	void *arg;
};

struct batch_duplex;
/* The branch's end, after AUTH: "XDMBATCH DICT=n DUPLEX=domains [CKPT=...]". */
struct batch_duplex *batch_duplex_client(struct bufferevent *bev,
					 const struct batch_duplex_params *p);
/* The hub's end, for an accepted command whose checkpoints are ckpt
 * ("id:offset,...", or NULL): the go-ahead, then both batches. NULL with
 * reply set: refused, nothing written. */
struct batch_duplex *batch_duplex_hub(struct bufferevent *bev, const struct batch_duplex_params *p,
				      const char *ckpt, struct buf *reply);
/* The session or the call ends while the exchange runs: the peer's batch
 * is broken off as by a drop (what came whole is committed, event 2041);
 * nothing more is called. */
void batch_duplex_abandon(struct batch_duplex *d);
/* The arguments of "XDMBATCH DICT=n [DUPLEX[=domains]] [CKPT=list]": 1 with
 * DUPLEX (*domains and *ckpt allocated or NULL), 0 without, -1: syntax. */
int batch_duplex_parse(const char *arg, int *dict, char **domains, char **ckpt);

#endif
