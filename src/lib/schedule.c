/* Scheduler: parses schedules and computes slots in local wall-clock time.
 * Everything here is a pure function of its arguments and the process's
 * time zone (TZ), so unit tests run days of schedules with no clock at all.
 * Invariant: the wall->instant mapping (schedule_local) never goes backwards
 * as the wall time grows, which is what makes the binary searches valid. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/duration.h"
#include "lib/schedule.h"
#include "lib/fsutil.h"
#include "lib/xmalloc.h"

#define SCHED_DAY	86400
#define SCHED_ALL_DAYS	0x7fu
#define SCHED_MAX_RULES 32
#define SCHED_LOOKAHEAD 8 /* days searched for the next or previous slot */

static const char *const sched_day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* --- parsing ------------------------------------------------------------ */

/* "mon" (or "monday") -> 1; -1 if not a day name. */
static int sched_day(const char *w, size_t n)
{
	if (n < 3)
		return -1;
	for (int i = 0; i < 7; i++)
		if (strncasecmp(w, sched_day_names[i], 3) == 0)
			return i;
	return -1;
}

/* "mon-fri", "sat", "daily" -> a mask; 0 if the word is not a day spec. */
static unsigned sched_days_word(const char *w)
{
	const char *dash = strchr(w, '-');
	int a, b;
	unsigned mask = 0;

	if (strcasecmp(w, "daily") == 0 || strcmp(w, "*") == 0)
		return SCHED_ALL_DAYS;
	if (dash == NULL)
		return (a = sched_day(w, strlen(w))) < 0 || strlen(w) > 9 ? 0 : 1u << a;
	a = sched_day(w, (size_t)(dash - w));
	b = sched_day(dash + 1, strlen(dash + 1));
	if (a < 0 || b < 0 || isdigit((unsigned char)w[0]))
		return 0;
	for (int d = a;; d = (d + 1) % 7) {
		mask |= 1u << d;
		if (d == b)
			break;
	}
	return mask;
}

/* "06:00" or "06:00:30" -> seconds since midnight; -1 if malformed. */
static int sched_time(const char *w)
{
	int h = -1, m = -1, s = 0, n = 0;
	size_t len = strlen(w);

	if (len == 0 || strspn(w, "0123456789:") != len || !isdigit((unsigned char)w[0]))
		return -1;
	if (!(sscanf(w, "%2d:%2d:%2d%n", &h, &m, &s, &n) == 3 && (size_t)n == len) &&
	    !(sscanf(w, "%2d:%2d%n", &h, &m, &n) == 2 && (size_t)n == len && (s = 0) == 0))
		return -1;
	if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 59)
		return -1;
	return h * 3600 + m * 60 + s;
}

/* "30m", "2h", "5s", "90" -> seconds (lib/duration.h); -1 if malformed or
 * out of 1s..1d. */
static int sched_duration(const char *w)
{
	long long n = duration_parse(w, SCHED_DAY);

	return n > 0 ? (int)n : -1;
}

/* Splits a rule into words on blanks and commas. */
static size_t sched_words(char *text, char **w, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(text, " \t,"); tok && n < max; tok = strtok(NULL, " \t,"))
		w[n++] = tok;
	return n;
}

static int sched_rule_times(struct sched_rule *r, char **w, size_t n, struct buf *problem)
{
	if (n == 0) {
		buf_puts(problem, "'at' needs one or more times (HH:MM)");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int t = sched_time(w[i]);
		if (t < 0) {
			buf_printf(problem, "'%s' is not a time of day (HH:MM or HH:MM:SS)", w[i]);
			return -1;
		}
		if (r->n_at == SCHED_MAX_TIMES) {
			buf_printf(problem, "more than %d times in one rule", SCHED_MAX_TIMES);
			return -1;
		}
		r->at[r->n_at++] = t;
	}
	return 0;
}

static int sched_int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* "HH:MM-HH:MM every D" or "every D" after the days. */
static int sched_rule_every(struct sched_rule *r, char **w, size_t n, struct buf *problem)
{
	char *dash;

	r->start = 0;
	r->end = SCHED_DAY - 1;
	if (n > 0 && (dash = strchr(w[0], '-')) != NULL && strcmp(w[0], "every") != 0) {
		*dash = '\0';
		r->start = sched_time(w[0]);
		r->end = sched_time(dash + 1);
		if (r->start < 0 || r->end < 0 || r->end < r->start) {
			buf_printf(problem, "'%s-%s' is not a range of the day (08:00-18:00)", w[0],
				   dash + 1);
			return -1;
		}
		w++, n--;
	}
	if (n != 2 || strcmp(w[0], "every") != 0) {
		buf_puts(problem, "expected 'every DURATION', 'at HH:MM, ...' or "
				  "'HH:MM-HH:MM every DURATION'");
		return -1;
	}
	r->every = sched_duration(w[1]);
	if (r->every < 0) {
		buf_printf(problem, "'%s' is not a duration from 1s to 1d (5s, 30m, 2h)", w[1]);
		return -1;
	}
	return 0;
}

static int sched_rule_parse(struct sched_rule *r, char *text, struct buf *problem)
{
	char *w[SCHED_MAX_TIMES + 16];
	size_t n = sched_words(text, w, sizeof(w) / sizeof(w[0])), i = 0;
	unsigned mask;

	memset(r, 0, sizeof(*r));
	while (i < n && (mask = sched_days_word(w[i])) != 0) {
		r->days |= mask;
		i++;
	}
	if (r->days == 0)
		r->days = SCHED_ALL_DAYS;
	if (i < n && strcmp(w[i], "at") == 0) {
		if (sched_rule_times(r, w + i + 1, n - i - 1, problem) < 0)
			return -1;
		qsort(r->at, r->n_at, sizeof(r->at[0]), sched_int_cmp);
		return 0;
	}
	return sched_rule_every(r, w + i, n - i, problem);
}

int schedule_parse(struct schedule *s, const char *text, struct buf *problem)
{
	char *copy = xstrdup(text), *save = NULL;
	const char *t = text + strspn(text, " \t");

	memset(s, 0, sizeof(*s));
	s->text = xstrdup(text);
	if (*t == '\0' || strcasecmp(t, "off") == 0 || strcasecmp(t, "none") == 0)
		goto done;
	for (char *part = strtok_r(copy, ";", &save); part; part = strtok_r(NULL, ";", &save)) {
		if (part[strspn(part, " \t")] == '\0')
			continue;
		if (s->n == SCHED_MAX_RULES) {
			buf_printf(problem, "more than %d rules", SCHED_MAX_RULES);
			goto fail;
		}
		s->rules = xrealloc(s->rules, (s->n + 1) * sizeof(*s->rules));
		if (sched_rule_parse(&s->rules[s->n], part, problem) < 0)
			goto fail;
		s->n++;
	}
done:
	free(copy);
	return 0;
fail:
	free(copy);
	schedule_free(s);
	return -1;
}

void schedule_free(struct schedule *s)
{
	free(s->rules);
	free(s->text);
	memset(s, 0, sizeof(*s));
}

/* --- wall clock <-> instants ------------------------------------------- */

/* A number that grows with the local wall-clock reading (date and time). */
static long long sched_wall_key(int year, int mon, int mday, int sec)
{
	return (((long long)year * 12 + mon) * 32 + mday) * SCHED_DAY + sec;
}

static long long sched_key_of(time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	return sched_wall_key(tm.tm_year, tm.tm_mon, tm.tm_mday,
			      tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
}

static time_t sched_mktime(int year, int mon, int mday, int sec, int isdst)
{
	struct tm tm = {0};

	tm.tm_year = year;
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = sec / 3600;
	tm.tm_min = sec / 60 % 60;
	tm.tm_sec = sec % 60;
	tm.tm_isdst = isdst;
	return mktime(&tm);
}

time_t schedule_local(int year, int mon, int mday, int sec)
{
	long long want = sched_wall_key(year, mon, mday, sec);
	time_t best = (time_t)-1, lo = 0, hi = 0;
	static const int isdst[3] = {1, 0, -1};

	for (int i = 0; i < 3; i++) {
		time_t t = sched_mktime(year, mon, mday, sec, isdst[i]);
		if (t == (time_t)-1)
			continue;
		if (sched_key_of(t) == want && (best == (time_t)-1 || t < best))
			best = t;
		lo = lo == 0 || t < lo ? t : lo;
		hi = hi == 0 || t > hi ? t : hi;
	}
	if (best != (time_t)-1)
		return best;
	/* In a spring-forward gap: the first instant whose wall time is later. */
	lo -= 2 * 3600;
	hi += 2 * 3600;
	while (hi - lo > 1) {
		time_t mid = lo + (hi - lo) / 2;
		if (sched_key_of(mid) > want)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* --- slots --------------------------------------------------------------- */

struct sched_day {
	int year, mon, mday, wday;
};

/* The local day containing t, moved by delta days. */
static struct sched_day sched_day_of(time_t t, int delta)
{
	struct tm tm;
	struct sched_day d;

	localtime_r(&t, &tm);
	tm.tm_mday += delta;
	tm.tm_hour = 12;
	tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	mktime(&tm);
	d.year = tm.tm_year;
	d.mon = tm.tm_mon;
	d.mday = tm.tm_mday;
	d.wday = tm.tm_wday;
	return d;
}

static size_t sched_rule_count(const struct sched_rule *r)
{
	return r->every ? (size_t)((r->end - r->start) / r->every) + 1 : r->n_at;
}

static time_t sched_rule_slot(const struct sched_rule *r, const struct sched_day *d, size_t k)
{
	int sec = r->every ? r->start + (int)k * r->every : r->at[k];

	return schedule_local(d->year, d->mon, d->mday, sec);
}

/* Index of the first slot of rule r on day d that is > t (after = 1) or the
 * count of slots that are <= t (after = 0); the slots grow with k. */
static size_t sched_rule_split(const struct sched_rule *r, const struct sched_day *d, time_t t)
{
	size_t lo = 0, hi = sched_rule_count(r);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sched_rule_slot(r, d, mid) > t)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

time_t schedule_next(const struct schedule *s, time_t t)
{
	for (int delta = 0; s->n && delta <= SCHED_LOOKAHEAD; delta++) {
		struct sched_day d = sched_day_of(t, delta);
		time_t best = 0;

		for (size_t i = 0; i < s->n; i++) {
			const struct sched_rule *r = &s->rules[i];
			size_t k;
			if (!(r->days & (1u << d.wday)))
				continue;
			k = sched_rule_split(r, &d, t);
			if (k < sched_rule_count(r)) {
				time_t c = sched_rule_slot(r, &d, k);
				if (best == 0 || c < best)
					best = c;
			}
		}
		if (best)
			return best;
	}
	return 0;
}

time_t schedule_prev(const struct schedule *s, time_t t)
{
	for (int delta = 0; s->n && delta <= SCHED_LOOKAHEAD; delta++) {
		struct sched_day d = sched_day_of(t, -delta);
		time_t best = 0;

		for (size_t i = 0; i < s->n; i++) {
			const struct sched_rule *r = &s->rules[i];
			size_t k;
			if (!(r->days & (1u << d.wday)))
				continue;
			k = sched_rule_split(r, &d, t);
			if (k > 0) {
				time_t c = sched_rule_slot(r, &d, k - 1);
				if (c > best)
					best = c;
			}
		}
		if (best)
			return best;
	}
	return 0;
}

time_t schedule_owed(const struct schedule *s, time_t covered, time_t now)
{
	time_t p = schedule_prev(s, now);

	return p > covered ? p : 0;
}

int schedule_backoff(int k)
{
	int secs = 30;

	for (int i = 1; i < k && secs < 900; i++)
		secs *= 2;
	return secs > 900 ? 900 : secs;
}

/* --- dial_when_queued ------------------------------------------------------ */

int schedule_parse_when_queued(const char *v, enum dwq_mode *mode, int *count, struct buf *problem)
{
	char *end;
	long n;

	*count = 0;
	if (strcasecmp(v, "off") == 0 || strcasecmp(v, "no") == 0 || strcmp(v, "0") == 0) {
		*mode = DWQ_OFF;
		return 0;
	}
	if (strcasecmp(v, "urgent") == 0) {
		*mode = DWQ_URGENT;
		return 0;
	}
	errno = 0;
	n = strtol(v, &end, 10);
	end += strspn(end, " \t");
	if (strncasecmp(end, "messages", 8) == 0 || strncasecmp(end, "message", 7) == 0)
		end += strcspn(end, " \t");
	if (!isdigit((unsigned char)v[0]) || errno || *end || n < 1 || n > 1000000) {
		buf_printf(problem, "'%s' is not a number of messages (1 or more), urgent or off",
			   v);
		return -1;
	}
	*mode = DWQ_COUNT;
	*count = (int)n;
	return 0;
}

/* --- persistent state ------------------------------------------------------ */

int schedule_state_load(const char *dir, time_t *covered)
{
	char *path = xasprintf("%s/scheduler.state", dir);
	struct buf b = BUF_INIT;
	long long v;
	int rc = -1;

	if (fs_read_file(path, &b) == 0 && sscanf(buf_cstr(&b), "covered %lld", &v) == 1 && v > 0) {
		*covered = (time_t)v;
		rc = 0;
	}
	buf_free(&b);
	free(path);
	return rc;
}

int schedule_state_save(const char *dir, time_t covered)
{
	char *path = xasprintf("%s/scheduler.state", dir);
	char line[64];
	int n = snprintf(line, sizeof(line), "covered %lld\n", (long long)covered);
	int rc = fs_write_atomic(path, line, (size_t)n, 0644);

	free(path);
	return rc;
}
