/* Unit tests of src/queue/retry.c: the retry schedule (last interval repeats,
 * jitter bounded and reproducible), expiry and delay warnings by priority,
 * priority from headers, and the settings that feed them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/config.h"
#include "lib/buf.h"
#include "queue/retry.h"
#include "test_tmp.h"
#include "daemon/modules.h"

#define H 3600
#define D 86400

static int load_text(const char *text, struct config *cfg, struct buf *err)
{
	char path[TEST_TMP_MAX];
	int fd = test_tmp_file(path, sizeof(path), "dialmail-retry"), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	rc = config_load(cfg, path, err);
	unlink(path);
	return rc;
}

static void policy_of(const char *text, struct retry_policy *p)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	if (load_text(text, &cfg, &err) != 0)
		fail_msg("refused: %s", buf_cstr(&err));
	retry_policy_from_config(p, &cfg);
	config_free(&cfg);
	buf_free(&err);
}

static void test_defaults(void **state)
{
	struct retry_policy p;

	policy_of("", &p);
	assert_int_equal(p.n_intervals, 4);
	assert_int_equal(p.interval[0], 15 * 60);
	assert_int_equal(p.interval[1], 30 * 60);
	assert_int_equal(p.interval[2], H);
	assert_int_equal(p.interval[3], 4 * H);
	assert_int_equal(p.lifetime[PRIORITY_URGENT], D);
	assert_int_equal(p.lifetime[PRIORITY_NORMAL], 5 * D);
	assert_int_equal(p.lifetime[PRIORITY_NON_URGENT], 7 * D);
	assert_int_equal(p.delay_warning, 0);
	policy_of("retry_intervals = 90 2m, 1h\nlifetime_urgent = 2h\nlifetime_normal = 1d\n"
		  "lifetime_non_urgent = 3d\ndelay_warning_time = 4h\n",
		  &p);
	assert_int_equal(p.n_intervals, 3);
	assert_int_equal(p.interval[0], 90);
	assert_int_equal(p.interval[1], 120);
	assert_int_equal(p.lifetime[PRIORITY_URGENT], 2 * H);
	assert_int_equal(p.lifetime[PRIORITY_NORMAL], D);
	assert_int_equal(p.lifetime[PRIORITY_NON_URGENT], 3 * D);
	assert_int_equal(p.delay_warning, 4 * H);
}

static void refused(const char *text, const char *needle)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	assert_int_equal(load_text(text, &cfg, &err), -1);
	if (!strstr(buf_cstr(&err), needle))
		fail_msg("wanted '%s' in: %s", needle, buf_cstr(&err));
	buf_free(&err);
}

static void test_bad_settings(void **state)
{
	struct buf many = BUF_INIT;

	refused("retry_intervals = 15m, 0s\n", "'0s' is not a duration from 1s to 7d");
	refused("retry_intervals = 15x\n", "'15x' is not a duration");
	refused("retry_intervals = 8d\n", "'8d' is not a duration from 1s to 7d");
	refused("retry_intervals = m\n", "'m' is not a duration");
	refused("retry_intervals =\n", "0 items; allowed 1 to 32");
	buf_puts(&many, "retry_intervals = ");
	for (int i = 0; i < 33; i++)
		buf_puts(&many, "1m ");
	buf_puts(&many, "\n");
	refused(buf_cstr(&many), "33 items; allowed 1 to 32");
	refused("lifetime_normal = 0\n", "lifetime_normal: 0 is out of range");
	refused("delay_warning_time = soon\n", "delay_warning_time: 'soon' is not a duration");
	buf_free(&many);
}

/* Each delay is within 10% of its interval, and the last interval repeats. */
static void test_delay_schedule(void **state)
{
	static const int want[] = {900, 1800, 3600, 14400, 14400, 14400};
	struct retry_policy p;

	policy_of("", &p);
	for (uint64_t seed = 0; seed < 500; seed++)
		for (int a = 1; a <= 6; a++) {
			time_t d = retry_delay(&p, a, seed * 7919);
			if (d < want[a - 1] * 9 / 10 || d > want[a - 1] * 11 / 10)
				fail_msg("attempt %d seed %llu: delay %lld", a,
					 (unsigned long long)seed, (long long)d);
		}
	/* attempts 0 (nothing failed yet) is treated as the first failure */
	assert_in_range(retry_delay(&p, 0, 1), 810, 990);
}

/* Jitter is reproducible for a seed, differs between seeds, and covers
 * most of the +-10% range instead of sitting in one spot. */
static void test_jitter(void **state)
{
	struct retry_policy p;
	uint64_t s1 = retry_seed("0123456789abcd00010002", "alice@example.org");
	uint64_t s2 = retry_seed("0123456789abcd00010002", "bob@example.org");
	time_t lo = 1 << 30, hi = 0;
	int distinct = 0;

	policy_of("retry_intervals = 1000\n", &p);
	assert_int_equal(retry_delay(&p, 3, s1), retry_delay(&p, 3, s1));
	assert_true(s1 != s2);
	assert_int_equal(retry_seed("q", "a"), retry_seed("q", "a"));
	for (uint64_t s = 0; s < 1000; s++) {
		time_t d = retry_delay(&p, 1, s);
		distinct += d != retry_delay(&p, 1, 0);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	assert_true(distinct > 900);
	assert_in_range(lo, 900, 910);
	assert_in_range(hi, 1090, 1100);
	/* one second stays at least one second */
	policy_of("retry_intervals = 1s\n", &p);
	for (uint64_t s = 0; s < 100; s++)
		assert_int_equal(retry_delay(&p, 1, s), 1);
}

static void test_next_attempt_clamped_to_expiry(void **state)
{
	struct retry_policy p;
	time_t created = 1700000000, expires = created + 5 * D, now, next;

	policy_of("", &p);
	now = created + 100;
	next = retry_next_attempt(&p, created, PRIORITY_NORMAL, now, 1, 42);
	assert_int_equal(next, now + retry_delay(&p, 1, 42));
	/* four hours before a normal message expires, with 4h intervals */
	now = expires - 600;
	assert_int_equal(retry_next_attempt(&p, created, PRIORITY_NORMAL, now, 5, 42), expires);
	/* already past expiry: never in the past */
	now = expires + 10;
	next = retry_next_attempt(&p, created, PRIORITY_NORMAL, now, 5, 42);
	assert_true(next > now);
	/* an urgent message expires after one day */
	now = created + D - 60;
	assert_int_equal(retry_next_attempt(&p, created, PRIORITY_URGENT, now, 5, 42), created + D);
}

static void test_expiry_by_priority(void **state)
{
	struct retry_policy p;
	time_t c = 1700000000;

	policy_of("", &p);
	assert_int_equal(retry_expires_at(&p, c, PRIORITY_URGENT), c + D);
	assert_false(retry_expired(&p, c, PRIORITY_URGENT, c + D - 1));
	assert_true(retry_expired(&p, c, PRIORITY_URGENT, c + D));
	assert_false(retry_expired(&p, c, PRIORITY_NORMAL, c + D));
	assert_false(retry_expired(&p, c, PRIORITY_NORMAL, c + 5 * D - 1));
	assert_true(retry_expired(&p, c, PRIORITY_NORMAL, c + 5 * D));
	assert_false(retry_expired(&p, c, PRIORITY_NON_URGENT, c + 5 * D));
	assert_true(retry_expired(&p, c, PRIORITY_NON_URGENT, c + 7 * D));
}

static void test_warning_due(void **state)
{
	struct retry_policy p;
	time_t c = 1700000000;

	policy_of("", &p);
	assert_false(retry_warning_due(&p, c, PRIORITY_NORMAL, c + 4 * D, 0)); /* off */
	policy_of("delay_warning_time = 4h\n", &p);
	assert_false(retry_warning_due(&p, c, PRIORITY_NORMAL, c + 4 * H - 1, 0));
	assert_true(retry_warning_due(&p, c, PRIORITY_NORMAL, c + 4 * H, 0));
	assert_true(retry_warning_due(&p, c, PRIORITY_NORMAL, c + 3 * D, 0));
	assert_false(retry_warning_due(&p, c, PRIORITY_NORMAL, c + 3 * D, 1)); /* sent */
	assert_false(retry_warning_due(&p, c, PRIORITY_NORMAL, c + 5 * D, 0)); /* bounced */
	policy_of("delay_warning_time = 2d\n", &p);
	/* an urgent message is bounced after 1d: no warning at 2d */
	assert_false(retry_warning_due(&p, c, PRIORITY_URGENT, c + 2 * D, 0));
}

static enum retry_priority prio(const char *msg)
{
	return retry_priority_of(msg, strlen(msg));
}

static void test_priority_headers(void **state)
{
	assert_int_equal(prio("Subject: x\r\n\r\nbody\r\n"), PRIORITY_NORMAL);
	assert_int_equal(prio("Priority: urgent\r\n\r\n"), PRIORITY_URGENT);
	assert_int_equal(prio("priority: Non-Urgent\r\n\r\n"), PRIORITY_NON_URGENT);
	assert_int_equal(prio("Priority: normal\r\nX-Priority: 1\r\n\r\n"), PRIORITY_NORMAL);
	assert_int_equal(prio("Importance: High\r\n\r\n"), PRIORITY_URGENT);
	assert_int_equal(prio("Importance: low\r\n\r\n"), PRIORITY_NON_URGENT);
	assert_int_equal(prio("X-Priority: 1 (Highest)\r\n\r\n"), PRIORITY_URGENT);
	assert_int_equal(prio("X-Priority: 2\r\n\r\n"), PRIORITY_URGENT);
	assert_int_equal(prio("X-Priority: 3 (Normal)\r\n\r\n"), PRIORITY_NORMAL);
	assert_int_equal(prio("X-Priority: 5 (Lowest)\r\n\r\n"), PRIORITY_NON_URGENT);
	/* Priority: outranks Importance:, which outranks X-Priority: */
	assert_int_equal(prio("X-Priority: 5\r\nImportance: high\r\n\r\n"), PRIORITY_URGENT);
	/* a value nobody knows does not count; the next header does */
	assert_int_equal(prio("Priority: whenever\r\nX-Priority: 1\r\n\r\n"), PRIORITY_URGENT);
	assert_int_equal(prio("X-Priority: 12\r\n\r\n"), PRIORITY_NORMAL);
	assert_int_equal(prio("Priority: urgently\r\n\r\n"), PRIORITY_NORMAL);
	/* folded header; and the body is not searched */
	assert_int_equal(prio("Priority:\r\n urgent\r\n\r\n"), PRIORITY_URGENT);
	assert_int_equal(prio("Subject: x\r\n\r\nPriority: urgent\r\n"), PRIORITY_NORMAL);
	assert_string_equal(retry_priority_name(PRIORITY_NON_URGENT), "non-urgent");
	assert_int_equal(retry_priority_parse("Importance", "normal"), PRIORITY_NORMAL);
	assert_int_equal(retry_priority_parse("Subject", "urgent"), -1);
}

int main(void)
{
	modules_register();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_bad_settings),
	    cmocka_unit_test(test_delay_schedule),
	    cmocka_unit_test(test_jitter),
	    cmocka_unit_test(test_next_attempt_clamped_to_expiry),
	    cmocka_unit_test(test_expiry_by_priority),
	    cmocka_unit_test(test_warning_due),
	    cmocka_unit_test(test_priority_headers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
