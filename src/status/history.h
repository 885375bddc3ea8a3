/* What the status page and `dialmail report` draw, for a period: every
 * dial attempt and connected period from the session ledger, failures
 * counted by cause, and the queue samples. Read from the files alone, so
 * the report works without a running daemon. */
#ifndef STATUS_HISTORY_H
#define STATUS_HISTORY_H
#include <stddef.h>
#include <time.h>

#include "status/samples.h"

#define HIST_NAME_MAX 40
#define HIST_CAUSES   12 /* more causes are counted as "other" */

struct hist_attempt {
	time_t at;
	char cause[HIST_NAME_MAX]; /* "busy", ...; "connected" for the call that came up */
};

struct hist_session {
	time_t start, up, end; /* up: 0 if it never connected */
	int ok;
	unsigned long long bytes_out, bytes_in;
	unsigned msgs_out, msgs_in;
	char entry[HIST_NAME_MAX];
};

struct hist_cause {
	char name[HIST_NAME_MAX];
	unsigned n; /* failed attempts with this cause */
};

struct history {
	time_t from, to;
	struct hist_attempt *att;
	size_t n_att;
	struct hist_session *ses;
	size_t n_ses;
	struct hist_cause cause[HIST_CAUSES + 1]; /* most frequent first */
	size_t n_causes;
	struct sample *samples;
	size_t n_samples;
	unsigned long long bytes_out, bytes_in;
	unsigned ok, missed;
};

/* Loads what DIR holds for from..to. */
void history_load(struct history *h, const char *dir, time_t from, time_t to);
void history_free(struct history *h);
/* The colour index of a cause: 0 for "connected", 1.. for failures in
 * the order of h->cause (most frequent first). */
int history_colour(const struct history *h, const char *cause);

#endif
