/* The read-only HTTP listener (http_listen): GET /metrics (Prometheus, see
 * daemon/metrics.h) and GET / (the status page). libevent's evhttp on the
 * daemon's loop. Invariant: it never changes anything; every other method
 * gets 405 and every other path 404. */
#ifndef STATUS_HTTP_H
#define STATUS_HTTP_H
#include <event2/event.h>

#include "lib/buf.h"

struct config;
struct metrics;
struct queue;
struct sessions;

/* What the pages read. */
struct http_ctx {
	struct event_base *base;
	const struct config *cfg;
	const char *dir;
	struct queue *queue;
	struct sessions *sessions; /* NULL: none */
	struct metrics *metrics;
};

struct http;

/* Listens on cfg->http_listen; NULL with why filled if it cannot. */
struct http *http_start(const struct http_ctx *ctx, struct buf *why);
void http_free(struct http *h); /* NULL is fine */

#endif
