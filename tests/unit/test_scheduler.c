/* Unit tests of src/lib/schedule.c: "every", "at" and weekly grids over
 * whole days, the two DST change days of Europe/Berlin, catch-up of slots
 * missed while the daemon was down, back-off, dial_when_queued and the
 * state file. Times are built with TZ set, so no clock is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/schedule.h"
#include "lib/buf.h"
#include "test_tmp.h"

static void use_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* Local wall time y-m-d h:m:s (1-based month) as an instant. */
static time_t at(int y, int mon, int d, int h, int m, int s)
{
	return schedule_local(y - 1900, mon - 1, d, h * 3600 + m * 60 + s);
}

/* "HH:MM:SS" of t in local time, with the zone abbreviation. */
static const char *hms(time_t t)
{
	static char out[64];
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, sizeof(out), "%a %H:%M:%S %Z", &tm);
	return out;
}

static void parse_ok(struct schedule *s, const char *text)
{
	struct buf problem = BUF_INIT;

	if (schedule_parse(s, text, &problem) < 0)
		fail_msg("'%s': %s", text, buf_cstr(&problem));
	buf_free(&problem);
}

/* All slots in [from, to), as a count, and the first/last written out. */
static int count_slots(const struct schedule *s, time_t from, time_t to, time_t *first,
		       time_t *last)
{
	int n = 0;

	*first = *last = 0;
	for (time_t t = schedule_next(s, from - 1); t && t < to; t = schedule_next(s, t)) {
		if (n == 0)
			*first = t;
		*last = t;
		n++;
		assert_true(n < 100000);
	}
	return n;
}

static void test_every_2h(void **state)
{
	struct schedule s;
	time_t first, last;

	use_tz("Europe/Berlin");
	parse_ok(&s, "every 2h");
	/* Wednesday 25 November 2026: 00:00, 02:00, ... 22:00. */
	assert_int_equal(
	    count_slots(&s, at(2026, 11, 25, 0, 0, 0), at(2026, 11, 26, 0, 0, 0), &first, &last),
	    12);
	assert_string_equal(hms(first), "Wed 00:00:00 CET");
	assert_string_equal(hms(last), "Wed 22:00:00 CET");
	assert_true(schedule_next(&s, at(2026, 11, 25, 13, 5, 0)) == at(2026, 11, 25, 14, 0, 0));
	/* Strictly after: a slot time itself gives the following slot. */
	assert_true(schedule_next(&s, at(2026, 11, 25, 14, 0, 0)) == at(2026, 11, 25, 16, 0, 0));
	assert_true(schedule_prev(&s, at(2026, 11, 25, 14, 0, 0)) == at(2026, 11, 25, 14, 0, 0));
	assert_true(schedule_prev(&s, at(2026, 11, 25, 13, 59, 59)) == at(2026, 11, 25, 12, 0, 0));
	schedule_free(&s);
}

static void test_every_seconds_for_tests(void **state)
{
	struct schedule s;
	time_t first, last;

	use_tz("UTC");
	parse_ok(&s, "every 5s");
	assert_int_equal(
	    count_slots(&s, at(2026, 1, 1, 0, 0, 0), at(2026, 1, 1, 2, 0, 0), &first, &last),
	    2 * 3600 / 5);
	assert_true(schedule_next(&s, at(2026, 1, 1, 10, 0, 3)) == at(2026, 1, 1, 10, 0, 5));
	schedule_free(&s);
}

static void test_at_list(void **state)
{
	struct schedule s;
	time_t first, last;

	use_tz("Europe/Berlin");
	parse_ok(&s, "at 18:00, 06:00, 12:00");
	assert_int_equal(
	    count_slots(&s, at(2026, 6, 1, 0, 0, 0), at(2026, 6, 2, 0, 0, 0), &first, &last), 3);
	assert_string_equal(hms(first), "Mon 06:00:00 CEST");
	assert_string_equal(hms(last), "Mon 18:00:00 CEST");
	/* After the last slot of the day: the first one of the next day. */
	assert_true(schedule_next(&s, at(2026, 6, 1, 19, 0, 0)) == at(2026, 6, 2, 6, 0, 0));
	schedule_free(&s);
}

static void test_weekly_grid(void **state)
{
	struct schedule s;
	time_t first, last;
	/* Monday 23 November 2026 to Monday 30 November. */
	time_t mon = at(2026, 11, 23, 0, 0, 0), next_mon = at(2026, 11, 30, 0, 0, 0);

	use_tz("Europe/Berlin");
	parse_ok(&s, "mon-fri 08:00-18:00 every 30m; sat,sun at 12:00");
	/* 21 slots (08:00 .. 18:00 inclusive) on 5 days, 1 on each weekend day. */
	assert_int_equal(count_slots(&s, mon, next_mon, &first, &last), 5 * 21 + 2);
	assert_string_equal(hms(first), "Mon 08:00:00 CET");
	assert_string_equal(hms(last), "Sun 12:00:00 CET");
	/* Friday evening -> Saturday noon; Sunday noon -> Monday 08:00. */
	assert_true(schedule_next(&s, at(2026, 11, 27, 18, 0, 0)) == at(2026, 11, 28, 12, 0, 0));
	assert_true(schedule_next(&s, at(2026, 11, 29, 12, 0, 0)) == at(2026, 11, 30, 8, 0, 0));
	assert_true(schedule_next(&s, at(2026, 11, 25, 9, 10, 0)) == at(2026, 11, 25, 9, 30, 0));
	assert_true(schedule_prev(&s, at(2026, 11, 30, 7, 0, 0)) == at(2026, 11, 29, 12, 0, 0));
	schedule_free(&s);
	/* Day names written out, with blanks after commas, and a wrapping range. */
	parse_ok(&s, "sat, sunday at 09:00; fri-mon 22:00-23:00 every 1h");
	assert_int_equal(count_slots(&s, mon, next_mon, &first, &last), 2 + 4 * 2);
	schedule_free(&s);
}

/* 29 March 2026: 02:00 CET jumps to 03:00 CEST (a 23-hour day). */
static void test_dst_spring_forward(void **state)
{
	struct schedule s;
	time_t first, last, t;

	use_tz("Europe/Berlin");
	parse_ok(&s, "every 1h");
	/* 02:00 does not exist: served when the gap ends, at 03:00, once. */
	assert_int_equal(
	    count_slots(&s, at(2026, 3, 29, 0, 0, 0), at(2026, 3, 30, 0, 0, 0), &first, &last), 23);
	t = schedule_next(&s, at(2026, 3, 29, 1, 0, 0));
	assert_string_equal(hms(t), "Sun 03:00:00 CEST");
	assert_int_equal(t - at(2026, 3, 29, 1, 0, 0), 3600);
	assert_string_equal(hms(schedule_next(&s, t)), "Sun 04:00:00 CEST");
	schedule_free(&s);

	parse_ok(&s, "at 02:30, 12:00");
	t = schedule_next(&s, at(2026, 3, 29, 0, 0, 0));
	assert_string_equal(hms(t), "Sun 03:00:00 CEST");
	assert_string_equal(hms(schedule_next(&s, t)), "Sun 12:00:00 CEST");
	/* The next day 02:30 exists again. */
	assert_string_equal(hms(schedule_next(&s, at(2026, 3, 29, 13, 0, 0))), "Mon 02:30:00 CEST");
	schedule_free(&s);

	/* A 30-minute grid across the gap: 01:30, then 03:00 (02:00 and 02:30
	 * collapse into it), 03:30. */
	parse_ok(&s, "sun 01:00-04:00 every 30m");
	t = schedule_next(&s, at(2026, 3, 29, 1, 0, 0));
	assert_string_equal(hms(t), "Sun 01:30:00 CET");
	t = schedule_next(&s, t);
	assert_string_equal(hms(t), "Sun 03:00:00 CEST");
	t = schedule_next(&s, t);
	assert_string_equal(hms(t), "Sun 03:30:00 CEST");
	schedule_free(&s);
}

/* 25 October 2026: 03:00 CEST falls back to 02:00 CET (a 25-hour day). */
static void test_dst_fall_back(void **state)
{
	struct schedule s;
	time_t first, last, t;

	use_tz("Europe/Berlin");
	parse_ok(&s, "every 1h");
	/* 02:00 occurs twice; it is served once, at its first occurrence. */
	assert_int_equal(
	    count_slots(&s, at(2026, 10, 25, 0, 0, 0), at(2026, 10, 26, 0, 0, 0), &first, &last),
	    24);
	t = schedule_next(&s, at(2026, 10, 25, 1, 0, 0));
	assert_string_equal(hms(t), "Sun 02:00:00 CEST");
	t = schedule_next(&s, t);
	assert_string_equal(hms(t), "Sun 03:00:00 CET");
	assert_int_equal(t - at(2026, 10, 25, 2, 0, 0), 2 * 3600);
	schedule_free(&s);

	parse_ok(&s, "at 06:00");
	/* Wall-clock slots stay at 06:00 on both sides of the change: 25 h apart. */
	t = schedule_next(&s, at(2026, 10, 24, 12, 0, 0));
	assert_string_equal(hms(t), "Sun 06:00:00 CET");
	assert_int_equal(t - at(2026, 10, 24, 6, 0, 0), 25 * 3600);
	schedule_free(&s);
}

static void test_catch_up(void **state)
{
	struct schedule s;
	time_t slot12 = 0;

	use_tz("Europe/Berlin");
	parse_ok(&s, "at 06:00, 12:00, 18:00");
	slot12 = at(2026, 11, 25, 12, 0, 0);
	/* Served 06:00, down from 11:00 to 12:30: the 12:00 slot is owed. */
	assert_true(schedule_owed(&s, at(2026, 11, 25, 6, 0, 5), at(2026, 11, 25, 12, 30, 0)) ==
		    slot12);
	/* Down across several slots: one catch-up, for the latest. */
	assert_true(schedule_owed(&s, at(2026, 11, 23, 6, 0, 0), at(2026, 11, 25, 12, 30, 0)) ==
		    slot12);
	/* Nothing owed when the last slot was covered. */
	assert_true(schedule_owed(&s, at(2026, 11, 25, 12, 0, 40), at(2026, 11, 25, 17, 0, 0)) ==
		    0);
	/* Exactly at the slot counts as owed once the slot is reached. */
	assert_true(schedule_owed(&s, at(2026, 11, 25, 11, 0, 0), slot12) == slot12);
	schedule_free(&s);
	parse_ok(&s, "off");
	assert_int_equal(s.n, 0);
	assert_true(schedule_owed(&s, 1, at(2026, 11, 25, 12, 30, 0)) == 0);
	assert_true(schedule_next(&s, 1000) == 0);
	schedule_free(&s);
}

static void test_backoff(void **state)
{
	assert_int_equal(schedule_backoff(1), 30);
	assert_int_equal(schedule_backoff(2), 60);
	assert_int_equal(schedule_backoff(5), 480);
	assert_int_equal(schedule_backoff(6), 900);
	assert_int_equal(schedule_backoff(60), 900);
}

static void parse_bad(const char *text, const char *want)
{
	struct schedule s;
	struct buf problem = BUF_INIT;

	assert_int_equal(schedule_parse(&s, text, &problem), -1);
	if (!strstr(buf_cstr(&problem), want))
		fail_msg("'%s': problem '%s' lacks '%s'", text, buf_cstr(&problem), want);
	buf_free(&problem);
}

static void test_parse_errors(void **state)
{
	parse_bad("every", "expected 'every DURATION'");
	parse_bad("every 0s", "not a duration");
	parse_bad("every 2x", "not a duration");
	parse_bad("at 25:00", "not a time of day");
	parse_bad("at", "needs one or more times");
	parse_bad("mon-fri 18:00-08:00 every 1h", "not a range of the day");
	parse_bad("weekdays at 12:00", "expected");
}

static void test_when_queued(void **state)
{
	enum dwq_mode m;
	int n;
	struct buf p = BUF_INIT;

	assert_int_equal(schedule_parse_when_queued("off", &m, &n, &p), 0);
	assert_int_equal(m, DWQ_OFF);
	assert_int_equal(schedule_parse_when_queued("urgent", &m, &n, &p), 0);
	assert_int_equal(m, DWQ_URGENT);
	assert_int_equal(schedule_parse_when_queued("10 messages", &m, &n, &p), 0);
	assert_int_equal(m, DWQ_COUNT);
	assert_int_equal(n, 10);
	assert_int_equal(schedule_parse_when_queued("3", &m, &n, &p), 0);
	assert_int_equal(n, 3);
	assert_int_equal(schedule_parse_when_queued("many", &m, &n, &p), -1);
	assert_non_null(strstr(buf_cstr(&p), "urgent or off"));
	buf_free(&p);
}

static void test_state_file(void **state)
{
	char dir[TEST_TMP_MAX];
	time_t v = 0;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "dialmail-sched"));
	assert_int_equal(schedule_state_load(dir, &v), -1);
	assert_int_equal(schedule_state_save(dir, 1764072000), 0);
	assert_int_equal(schedule_state_load(dir, &v), 0);
	assert_true(v == 1764072000);
	char *path = NULL;
	assert_true(asprintf(&path, "%s/scheduler.state", dir) > 0);
	unlink(path);
	free(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_2h),
	    cmocka_unit_test(test_every_seconds_for_tests),
	    cmocka_unit_test(test_at_list),
	    cmocka_unit_test(test_weekly_grid),
	    cmocka_unit_test(test_dst_spring_forward),
	    cmocka_unit_test(test_dst_fall_back),
	    cmocka_unit_test(test_catch_up),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_when_queued),
	    cmocka_unit_test(test_state_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
