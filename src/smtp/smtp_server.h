/* SMTP server (RFC 5321): event-driven sessions on libevent that accept mail
 * into the queue. Invariant: "250" after DATA only once the queue
 * (queue_commit or queue_batch_commit) reported Q_OK. */
#ifndef SMTP_SMTP_SERVER_H
#define SMTP_SMTP_SERVER_H
#include <event2/event.h>

#include "daemon/config.h"
#include "queue/queue.h"

struct smtp_server;

/* on_commit is called after each message is durably queued (for delivery). */
struct smtp_server *smtp_server_new(struct event_base *base, const struct config *cfg,
				    struct queue *q, void (*on_commit)(const char *qid, void *arg),
				    void *arg);
/* Listens on "host:port" or "[v6]:port". -1 (event 1003 logged) on failure. */
int smtp_server_listen(struct smtp_server *srv, const char *addr);
void smtp_server_free(struct smtp_server *srv);
/* SMTP sessions open now (a dial-up session stays up while any are). */
int smtp_server_sessions(const struct smtp_server *srv);
/* The hub's ETRN (daemon/hub.h: hub_etrn): offered in EHLO and answered
 * with etrn's one-line reply while set. */
void smtp_server_set_etrn(struct smtp_server *srv,
			  void (*etrn)(const char *client, const char *user, const char *param,
				       struct buf *reply, void *arg),
			  void *arg);

#endif
