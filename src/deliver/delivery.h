/* Delivery: takes queued messages and hands each pending recipient to a
 * transport (Maildir now; LMTP, SMTP later). Transports are function-pointer
 * structs so new ones plug in and tests can fake them. */
#ifndef DELIVER_DELIVERY_H
#define DELIVER_DELIVERY_H
#include <event2/event.h>

#include "mail/config.h"
#include "queue/queue.h"

struct transport {
	const char *name;
	/* Delivers content to one recipient. Returns Q_OK, Q_TEMPFAIL or
	 * Q_PERMFAIL and a human-readable result in reply. */
	int (*deliver)(const struct config *cfg, const char *dir, const struct q_env *env,
		       const struct buf *content, const char *rcpt, struct buf *reply);
};

extern const struct transport transport_maildir;

struct delivery;
struct outbound;
struct delivery *delivery_new(struct event_base *base, const struct config *cfg, struct queue *q,
			      const char *dir);
void delivery_free(struct delivery *d);
/* The configuration changed (a reload): see outbound_reconfigure. */
void delivery_reconfigure(struct delivery *d);
/* Schedules one message for delivery soon (after the current callback). */
void delivery_kick(struct delivery *d, const char *qid);
/* Schedules a queue run: a pass over the messages the queue's index says
 * are due (queue/qindex.h), oldest due first. */
void delivery_scan(struct delivery *d);
/* The same, and the pass first lists queue/ for messages the index does not
 * know (committed by another process without telling their id). */
void delivery_discover(struct delivery *d);
/* A pass that treats every pending recipient of every message as due
 * (dialmail flush). */
void delivery_flush(struct delivery *d);
/* Synchronous: delivers what is due in message qid now (tests, CLI). */
int delivery_run_one(struct delivery *d, const char *qid);

/* Links (issue 4): mail on a route with via=NAME goes out only while the
 * session has link NAME up. The session calls link_up when its link is up
 * (delivery then sends everything queued for routes via NAME, whatever its
 * retry time, and mail that arrives while it is up; other deferred mail
 * keeps its retry time), link_down before hanging up (connections through
 * it are closed; unfinished messages stay queued). delivery_link_busy says
 * whether anything for NAME is queued and due or in flight, so the session
 * knows when outbound work is done; on_idle (may be NULL) is called each time
 * the link's outbound work becomes idle. bps: the link's bandwidth in bit/s
 * (0 unknown), for the parallel connections towards servers without CHUNKING. */
void delivery_link_up(struct delivery *d, const char *name, long bps,
		      void (*on_idle)(const char *name, void *arg), void *arg);
void delivery_link_down(struct delivery *d, const char *name);
int delivery_link_busy(struct delivery *d, const char *name);
/* Counters for the session report: messages delivered through link NAME
 * since it came up, and bytes sent. */
void delivery_link_stats(struct delivery *d, const char *name, unsigned *msgs_out,
			 unsigned long long *bytes_out);

/* Hub (ETRN, see hub/hub.h): the held recipients of domain (sub: and of
 * its subdomains) go to host:port now, whatever their retry times, in one
 * pass; those that fail stay held. -1 without outbound delivery. */
int delivery_release(struct delivery *d, const char *domain, int sub, const char *host, int port);
/* The outbound SMTP delivery (DSNs for ODMR results, hub/odmr.c); NULL
 * without an event loop. */
struct outbound *delivery_outbound(struct delivery *d);

#endif
