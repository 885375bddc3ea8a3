/* Unit tests of the [session] section (src/dialup/session.c): values and
 * defaults as config_load gives them, show-config's block, and the errors a
 * user gets for bad values, unknown entries and a schedule without a phone
 * book. The session manager itself is tested end to end in
 * tests/integration/test_session.py. */
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
#include "dialup/session.h"
#include "lib/buf.h"
#include "test_tmp.h"
#include "daemon/modules.h"

static int load_text(const char *text, struct config *cfg, struct buf *err)
{
	char path[TEST_TMP_MAX];
	int fd = test_tmp_file(path, sizeof(path), "dialmail-session"), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	rc = config_load(cfg, path, err);
	unlink(path);
	return rc;
}

static void test_values_and_show(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (load_text("[phonebook isp]\ntype = always\n[phonebook backup]\ntype = always\n"
		      "[session]\nschedule = mon-fri 08:00-18:00 every 30m; sat,sun at 12:00\n"
		      "entries = backup, isp\nidle_timeout = 90s\nmax_session_time = 2h\n"
		      "session_window = 10m\ndial_when_queued = 20 messages\n"
		      "min_dial_interval = 1m\ncheck_timeout = 5s\n",
		      &cfg, &err) < 0)
		fail_msg("%s", buf_cstr(&err));
	assert_non_null(cfg.session);
	assert_int_equal(cfg.session->schedule.n, 2);
	assert_string_equal(cfg.session->entries.v[0], "backup");
	assert_int_equal(cfg.session->idle_timeout, 90);
	assert_int_equal(cfg.session->max_session_time, 7200);
	assert_int_equal(cfg.session->session_window, 600);
	assert_int_equal(cfg.session->dwq, DWQ_COUNT);
	assert_int_equal(cfg.session->dwq_count, 20);
	assert_int_equal(cfg.session->min_dial_interval, 60);
	assert_int_equal(cfg.session->check_timeout, 5);
	assert_string_equal(cfg.session->retrieve, "none");
	f = open_memstream(&out, &len);
	config_show(&cfg, f, 1);
	fclose(f);
	assert_non_null(strstr(out, "\n[session]\nschedule = mon-fri 08:00-18:00 every 30m; "
				    "sat,sun at 12:00\nentries = backup, isp\nidle_timeout = 90s\n"
				    "max_session_time = 2h\nsession_window = 10m\nretrieve = none\n"
				    "dial_when_queued = 20\nmin_dial_interval = 1m\n"
				    "check_timeout = 5s\n"));
	free(out);
	config_free(&cfg);
	buf_free(&err);
}

static void test_defaults(void **state)
{
	struct config cfg;
	struct buf err = BUF_INIT;
	struct session_config sc;

	assert_int_equal(load_text("[phonebook lan]\ntype = always\n[session]\n", &cfg, &err), 0);
	assert_int_equal(cfg.session->schedule.n, 0);
	assert_int_equal(cfg.session->idle_timeout, 120);
	assert_int_equal(cfg.session->session_window, 0);
	assert_int_equal(cfg.session->dwq, DWQ_OFF);
	config_free(&cfg);
	/* No [session] at all: NULL, and the manager uses these defaults. */
	assert_int_equal(load_text("[phonebook lan]\ntype = always\n", &cfg, &err), 0);
	assert_null(cfg.session);
	config_free(&cfg);
	session_config_defaults(&sc);
	assert_int_equal(sc.max_session_time, 3600);
	assert_int_equal(sc.check_timeout, 30);
	schedule_free(&sc.schedule);
	free(sc.retrieve);
	buf_free(&err);
}

static void expect_errors(const char *text, const char *const *want)
{
	struct config cfg;
	struct buf err = BUF_INIT;

	assert_int_equal(load_text(text, &cfg, &err), -1);
	for (size_t i = 0; want[i]; i++)
		if (!strstr(buf_cstr(&err), want[i]))
			fail_msg("errors lack '%s':\n%s", want[i], buf_cstr(&err));
	buf_free(&err);
}

static void test_errors(void **state)
{
	static const char *const bad[] = {
	    ":4: schedule: '0s' is not a duration from 1s to 1d",
	    ":5: idle_timeout: 'soon' is not a duration",
	    ":6: retrieve: 'pop3' is not a retrieval method",
	    ":7: dial_when_queued: 'lots' is not a number of messages",
	    ":8: idle_timeout: set twice in [session]",
	    ":9: colour: unknown [session] setting",
	    NULL};
	static const char *const entries[] = {"[session]: entries: no [phonebook nosuch]", NULL};
	static const char *const nopb[] = {"[session]: a schedule needs a [phonebook NAME] entry",
					   NULL};
	static const char *const twice[] = {"only one [session] section", NULL};

	expect_errors("[phonebook lan]\ntype = always\n[session]\nschedule = every 0s\n"
		      "idle_timeout = soon\nretrieve = pop3\ndial_when_queued = lots\n"
		      "idle_timeout = 1m\ncolour = blue\n",
		      bad);
	expect_errors("[phonebook lan]\ntype = always\n[session]\nentries = lan, nosuch\n",
		      entries);
	expect_errors("[session]\nschedule = every 2h\n", nopb);
	expect_errors("[phonebook lan]\ntype = always\n[session]\n[session]\n", twice);
}

/* [session] durations use the grammar of every other duration setting
 * (lib/duration.h) and the bounds of their table rows. */
static void test_one_duration_grammar(void **state)
{
	static const char *const bad[] = {":4: max_session_time: '1500ms' is not a duration",
					  ":5: session_window: 8d is out of range (0s to 7d)",
					  ":6: check_timeout: 0 is out of range (1s to 7d)", NULL};
	struct config cfg;
	struct buf err = BUF_INIT;

	if (load_text("[phonebook lan]\ntype = always\n[session]\nidle_timeout = 90000ms\n"
		      "max_session_time = 2MIN\nsession_window = 1d\n",
		      &cfg, &err) < 0)
		fail_msg("%s", buf_cstr(&err));
	assert_int_equal(cfg.session->idle_timeout, 90);
	assert_int_equal(cfg.session->max_session_time, 120);
	assert_int_equal(cfg.session->session_window, 86400);
	config_free(&cfg);
	buf_free(&err);
	expect_errors("[phonebook lan]\ntype = always\n[session]\nmax_session_time = 1500ms\n"
		      "session_window = 8d\ncheck_timeout = 0\n",
		      bad);
}

int main(void)
{
	modules_register();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values_and_show),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_one_duration_grammar),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
