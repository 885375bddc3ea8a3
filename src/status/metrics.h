/* Prometheus metrics (GET /metrics, docs/metrics.md): counters kept as
 * things happen (tracking lines, session ledger records since the start),
 * gauges read when scraped (queue, link, disk). Invariant: the output is
 * the Prometheus text format, every family with HELP and TYPE once. */
#ifndef STATUS_METRICS_H
#define STATUS_METRICS_H
#include <time.h>

#include "lib/buf.h"
#include "mail/event.h"

struct metrics;
struct queue_summary;
struct session_snapshot;

/* What is read at scrape time. */
struct metrics_view {
	const struct session_snapshot *sess; /* NULL: no dial-up sessions */
	const struct queue_summary *queue;
	time_t now;
	int disk_known;
	unsigned long long disk_free, disk_min_free;
};

/* Counts from now on; the ledger under dir is read once for the last
 * successful session, then followed. */
struct metrics *metrics_new(const char *dir);
void metrics_free(struct metrics *mx);
/* The track() observer (mail/event.h): arg is the metrics. */
void metrics_on_track(enum track_code code, void *arg);
/* Takes in new ledger records, then writes every family to out. */
void metrics_render(struct metrics *mx, const struct metrics_view *v, struct buf *out);

#endif
