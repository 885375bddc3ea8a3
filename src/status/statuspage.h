/* The status page (GET /, refreshed every 15 s) and `dialmail report`:
 * one HTML document with inline CSS and SVG, nothing fetched from
 * elsewhere. Invariant: every text from the configuration, the ledger or
 * the queue is HTML-escaped. */
#ifndef STATUS_STATUSPAGE_H
#define STATUS_STATUSPAGE_H
#include <time.h>

#include "lib/buf.h"

struct history;
struct queue_summary;
struct session_snapshot;

struct status_view {
	const char *title;		     /* "status", "report" */
	const char *host;		     /* the gateway's name */
	const struct session_snapshot *sess; /* the live part; NULL in a report */
	const struct queue_summary *queue;   /* NULL: not known */
	const struct history *hist;	     /* the period drawn */
	const char *range;		     /* live: "1h", "24h" or "7d" (links to the others) */
	time_t now;
};

void statuspage_render(struct buf *out, const struct status_view *v);
/* "1h", "24h", "7d" in seconds (NULL: 24h); 0 for anything else. */
long statuspage_range(const char *s);

#endif
