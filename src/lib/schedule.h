/* Scheduler: when dial-up sessions happen. A schedule is a set of slots in
 * local wall-clock time ("every 2h", "at 06:00, 12:00", a weekly grid), and
 * the functions here are pure (time in, time out), so a day or a year of
 * schedules, DST change days included, runs in a unit test in milliseconds.
 * Invariant: schedule_next(s, t) > t, and slots only move forward in time. */
#ifndef LIB_SCHEDULE_H
#define LIB_SCHEDULE_H
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

#define SCHED_MAX_TIMES 48 /* "at" times in one rule */

/* One rule of a schedule: on the days in the mask (bit 0 = Sunday), either
 * at the given wall-clock times, or every `every` seconds from `start` to
 * `end` (seconds since local midnight, end inclusive). */
struct sched_rule {
	unsigned days;
	int every;	/* seconds; 0: the rule is a list of times */
	int start, end; /* every: the range of the day (0 .. 86399 by default) */
	int at[SCHED_MAX_TIMES];
	size_t n_at;
};

struct schedule {
	struct sched_rule *rules;
	size_t n; /* 0: no schedule ("off"), sessions only on demand */
	char *text;
};

/* Parses "every 2h", "at 06:00, 12:00, 18:00",
 * "mon-fri 08:00-18:00 every 30m; sat,sun at 12:00", "off". Returns 0, or -1
 * with problem filled. Durations take s, m, h (a bare number is seconds). */
int schedule_parse(struct schedule *s, const char *text, struct buf *problem);
void schedule_free(struct schedule *s);

/* The first slot strictly after t, or 0 when the schedule has none
 * (off, or no day of the week matches). Local time of the process (TZ);
 * a slot in the gap of a spring-forward change is served when the gap ends,
 * a slot in the repeated hour of a fall-back change once, at its first
 * occurrence. */
time_t schedule_next(const struct schedule *s, time_t t);
/* The last slot at or before t, or 0 if none within the last 8 days. */
time_t schedule_prev(const struct schedule *s, time_t t);

/* Catch-up: every slot up to `covered` was served (a session succeeded at
 * or after it, or it predates the first start). Returns the latest slot in
 * (covered, now] that is owed, or 0 when nothing is owed. */
time_t schedule_owed(const struct schedule *s, time_t covered, time_t now);
/* The pause (seconds) before catch-up attempt k (1, 2, ...) after missed
 * windows: 30 s doubling to 15 min. The caller caps it by the session
 * window and the next slot (a slot serves the owed one too). */
int schedule_backoff(int k);

/* Local wall time in seconds since midnight of y-m-d (tm_year/tm_mon/mday
 * conventions) as an instant; the DST rules of schedule_next apply. */
time_t schedule_local(int year, int mon, int mday, int sec);

/* dial_when_queued = N | urgent | off */
enum dwq_mode { DWQ_OFF, DWQ_COUNT, DWQ_URGENT };
int schedule_parse_when_queued(const char *v, enum dwq_mode *mode, int *count, struct buf *problem);

/* DIR/scheduler.state: "covered EPOCH". -1 when missing or unreadable. */
int schedule_state_load(const char *dir, time_t *covered);
int schedule_state_save(const char *dir, time_t covered);

#endif
