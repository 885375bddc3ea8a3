/* Retry schedule, message lifetime and priority: when a deferred recipient is
 * tried again, when a message expires (and is bounced), when the sender gets
 * a delay warning. Pure functions of their arguments: no clock, no I/O. */
#ifndef QUEUE_RETRY_H
#define QUEUE_RETRY_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/strlist.h"
#include "mail/config.h"

struct config;

#define RETRY_MAX_INTERVALS CONFIG_MAX_RETRY_INTERVALS
#define RETRY_JITTER_PCT    10 /* each delay is moved by up to +-10% */

enum retry_priority { PRIORITY_NON_URGENT, PRIORITY_NORMAL, PRIORITY_URGENT };

struct retry_policy {
	int interval[RETRY_MAX_INTERVALS]; /* seconds; the last one repeats */
	size_t n_intervals;		   /* at least 1 */
	int lifetime[3];		   /* seconds, indexed by enum retry_priority */
	int delay_warning;		   /* seconds after arrival; 0 = no warnings */
};

/* Parses "15m, 30m, 1h, 4h" items into p->interval. 0, or -1 with problem. */
int retry_parse_intervals(struct retry_policy *p, const struct strlist *items, struct buf *problem);
/* The policy of a loaded configuration (which config_load has validated). */
void retry_policy_from_config(struct retry_policy *p, const struct config *cfg);

/* A jitter seed for one recipient of one message, so that the delays of a
 * queue full of deferred mail spread out but stay reproducible. */
uint64_t retry_seed(const char *qid, const char *rcpt);
/* Delay before the next try after the attempts-th failure (1 = the first
 * failure uses interval[0]); jittered by up to RETRY_JITTER_PCT, never < 1s. */
time_t retry_delay(const struct retry_policy *p, int attempts, uint64_t seed);
/* When to try again after the attempts-th failure at now; never later than
 * the expiry time, so that an expiring message gets one last try then. */
time_t retry_next_attempt(const struct retry_policy *p, time_t created, enum retry_priority prio,
			  time_t now, int attempts, uint64_t seed);

time_t retry_expires_at(const struct retry_policy *p, time_t created, enum retry_priority prio);
/* 1 when the message's lifetime is over: what is still pending is bounced. */
int retry_expired(const struct retry_policy *p, time_t created, enum retry_priority prio,
		  time_t now);
/* 1 when a delay warning is due: warnings on, not yet sent (warned == 0),
 * the warning time has passed, and the message has not yet expired. */
int retry_warning_due(const struct retry_policy *p, time_t created, enum retry_priority prio,
		      time_t now, int warned);

/* Priority from the header section of a wire-form message: the first of
 * Priority: (urgent / normal / non-urgent), Importance: (high / normal / low)
 * and X-Priority: (1-2 / 3 / 4-5) that has a recognised value; else normal. */
enum retry_priority retry_priority_of(const char *msg, size_t len);
/* The same for one header value; -1 if the value is not recognised. */
int retry_priority_parse(const char *header, const char *value);
const char *retry_priority_name(enum retry_priority p); /* "urgent", "normal", "non-urgent" */

#endif
