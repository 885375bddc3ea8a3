/* What is queued, counted for the status page and /metrics: messages by
 * state and by route, and the oldest. The one place the daemon's views look
 * at the queue; it reads the queue's index in memory (queue/qindex.h), so a
 * scrape or a sample costs no disk work whatever the queue's size. */
#ifndef STATUS_QUEUE_SUMMARY_H
#define STATUS_QUEUE_SUMMARY_H
#include <time.h>

struct config;
struct queue;

/* A message's state, from its pending recipients: held until ETRN/ATRN,
 * waiting for a dial-up link (a via= route), deferred after a failed
 * attempt, or new (not tried yet). */
enum qs_state { QS_NEW, QS_DEFERRED, QS_LINK, QS_HELD, QS_N };

#define QS_ROUTES_MAX 16 /* more routes are counted as "other" */

struct queue_summary {
	unsigned messages;
	unsigned by_state[QS_N];
	struct {
		char name[64]; /* the via= link, "local", a route type, "none" or "other" */
		unsigned messages;
	} route[QS_ROUTES_MAX + 1];
	unsigned n_routes;
	time_t oldest; /* creation time of the oldest message; 0: empty */
};

const char *queue_summary_state_name(enum qs_state s);
/* Counts the queue q (with cfg's routes) into out. */
void queue_summary_take(struct queue *q, const struct config *cfg, struct queue_summary *out);

#endif
