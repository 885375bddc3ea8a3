/* Unit tests of the event log, the tracking log, the catalogue (against
 * event.h and docs/events.md) and the `dialmail events` command.
 * Run from tests/unit: the catalogue test reads ../../src and ../../docs. */
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli/cli.h"
#include "mail/event.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/xmalloc.h"
#include "test_tmp.h"

static char tmpdir[TEST_TMP_MAX];

/* 2026-11-25T12:07:24.123Z */
static int64_t fake_time(void)
{
	struct tm tm = {
	    .tm_year = 126, .tm_mon = 10, .tm_mday = 25, .tm_hour = 12, .tm_min = 7, .tm_sec = 24};

	return (int64_t)timegm(&tm) * 1000000 + 123456;
}

static int setup(void **state)
{
	assert_non_null(test_tmp_dir(tmpdir, sizeof(tmpdir), "test_event"));
	clock_set_fake(fake_time());
	return 0;
}

static int teardown(void **state)
{
	event_close();
	event_set_levels(NULL);
	clock_set_fake(0);
	assert_int_equal(test_tmp_rm(tmpdir), 0);
	return 0;
}

static char *read_log(const char *name)
{
	struct buf b = BUF_INIT;
	char *path = xasprintf("%s/log/%s", tmpdir, name);

	if (fs_read_file(path, &b) < 0)
		buf_puts(&b, "");
	free(path);
	return buf_steal(&b);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Parses the n-th line (0-based) of events.jsonl. */
static json_t *event_line(int n)
{
	char *text = read_log("events.jsonl");
	char *p = text;
	json_error_t err;
	json_t *obj;

	for (int i = 0; i < n; i++) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	obj = json_loadb(p, strcspn(p, "\n"), 0, &err);
	if (!obj)
		fail_msg("line %d: %s: %s", n, err.text, p);
	free(text);
	return obj;
}

static const char *jstr(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (!s)
		fail_msg("no string field %s", key);
	return s;
}

static void test_event_written_with_fields(void **state)
{
	json_t *ev;
	char *text;
	struct stat st;
	char *logdir = xasprintf("%s/log", tmpdir);

	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	assert_int_equal(stat(logdir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750); /* addresses: not for others */
	event_log(EV_MESSAGE_RECEIVED, "Message %s received from <%s>", "Q1", "a@example.org");
	event_log(EV_DISK_LOW, "Free space %d bytes", 42);
	text = read_log("events.jsonl");
	assert_int_equal(count_lines(text), 2);
	{
		char *path = xasprintf("%s/events.jsonl", logdir);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0640);
		free(path);
	}
	assert_string_equal(text + strlen(text) - 1, "\n");

	ev = event_line(0);
	assert_int_equal(json_object_size(ev), 5);
	assert_string_equal(jstr(ev, "time"), "2026-11-25T12:07:24.123Z");
	assert_int_equal(json_integer_value(json_object_get(ev, "id")), 2002);
	assert_string_equal(jstr(ev, "severity"), "information");
	assert_string_equal(jstr(ev, "category"), "Message Transfer");
	assert_string_equal(jstr(ev, "text"), "Message Q1 received from <a@example.org>");
	json_decref(ev);

	ev = event_line(1);
	assert_int_equal(json_integer_value(json_object_get(ev, "id")), 3018);
	assert_string_equal(jstr(ev, "severity"), "error");
	assert_string_equal(jstr(ev, "category"), "Queue");
	assert_string_equal(jstr(ev, "text"), "Free space 42 bytes");
	json_decref(ev);
	free(text);
	free(logdir);
}

static void test_event_appends_across_opens(void **state)
{
	char *text;

	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	event_log(EV_SERVICE_STARTED, "first");
	event_close();
	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	event_log(EV_SERVICE_STOPPED, "second");
	event_close();
	event_log(EV_SERVICE_STARTED, "not opened: goes to stderr, not the file");
	text = read_log("events.jsonl");
	assert_int_equal(count_lines(text), 2);
	assert_non_null(strstr(text, "\"first\""));
	assert_non_null(strstr(text, "\"second\""));
	free(text);
}

static void test_event_levels(void **state)
{
	int diag[EVC_COUNT];
	char *text;
	json_t *ev;

	for (int c = 0; c < EVC_COUNT; c++)
		diag[c] = EVL_MEDIUM;
	diag[EVC_QUEUE] = EVL_NONE;
	assert_int_equal(event_open(tmpdir, diag, 0), 0);
	event_log(EV_DISK_LOW, "SKIP error in a category at none");
	event_log(EV_QUEUE_CORRUPT, "SKIP error in a category at none");
	event_log(EV_CONNECTION_ACCEPTED, "SKIP maximum-level at medium");
	event_log(EV_SESSION_TIMEOUT, "KEEP medium-level at medium");
	text = read_log("events.jsonl");
	assert_int_equal(count_lines(text), 1);
	free(text);
	ev = event_line(0);
	assert_int_equal(json_integer_value(json_object_get(ev, "id")), EV_SESSION_TIMEOUT);
	json_decref(ev);

	diag[EVC_SMTP] = EVL_MIN;
	diag[EVC_QUEUE] = EVL_MIN;
	event_set_levels(diag);
	event_log(EV_SESSION_TIMEOUT, "SKIP medium-level at minimum");
	event_log(EV_DISK_LOW, "KEEP error at minimum");
	diag[EVC_SMTP] = EVL_MAX;
	event_set_levels(diag);
	event_log(EV_CONNECTION_ACCEPTED, "KEEP maximum-level at maximum");
	text = read_log("events.jsonl");
	assert_int_equal(count_lines(text), 3);
	assert_null(strstr(text, "SKIP"));
	free(text);
	ev = event_line(2);
	assert_int_equal(json_integer_value(json_object_get(ev, "id")), EV_CONNECTION_ACCEPTED);
	json_decref(ev);
}

static void test_event_kv_fields(void **state)
{
	const char *kv[] = {"qid", "0192ABC", "reply", NULL, "client", "[192.0.2.1]", NULL};
	json_t *ev;

	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	event_logkv(EV_LOCAL_DELIVERED, kv, "Delivered %s to %s", "0192ABC", "alice");
	ev = event_line(0);
	assert_int_equal(json_object_size(ev), 7);
	assert_string_equal(jstr(ev, "qid"), "0192ABC");
	assert_string_equal(jstr(ev, "client"), "[192.0.2.1]");
	assert_string_equal(jstr(ev, "text"), "Delivered 0192ABC to alice");
	assert_string_equal(jstr(ev, "category"), "Local Delivery");
	json_decref(ev);
}

static void test_event_json_escaping(void **state)
{
	char *text;
	json_t *ev;

	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	event_log(EV_MESSAGE_REFUSED_BAD_DATA, "from \"%s\"\nline2\ttab\x01 back\\slash %s",
		  "evil\"}{\"id\":1", "bad\xff\xfe utf8 \xc3\xa9");
	text = read_log("events.jsonl");
	/* One line: the newline and control characters are escaped. */
	assert_int_equal(count_lines(text), 1);
	assert_non_null(strstr(text, "\\n"));
	assert_non_null(strstr(text, "\\u0001"));
	assert_null(strchr(text, '\t'));
	free(text);
	ev = event_line(0);
	assert_int_equal(json_integer_value(json_object_get(ev, "id")), 2014);
	assert_string_equal(jstr(ev, "text"), "from \"evil\"}{\"id\":1\"\nline2\ttab\x01 "
					      "back\\slash bad?? utf8 \xc3\xa9");
	json_decref(ev);
}

static void test_event_unknown_id_panics(void **state)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 2);
		event_log(9999, "no such event");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_track_line(void **state)
{
	char *text;

	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	track(TRK_RECEIVED, "0192ABC", "<m1@example.org>", "a@example.org", "bob@local",
	      "from [192.0.2.1]\tvia\r\nsmtp");
	track(TRK_DEFERRED, "0192ABC", NULL, "", "x@remote", NULL);
	text = read_log("tracking.log");
	assert_string_equal(text, "2026-11-25T12:07:24.123Z\t1012\t0192ABC\t<m1@example.org>\t"
				  "a@example.org\tbob@local\tfrom [192.0.2.1] via  smtp\n"
				  "2026-11-25T12:07:24.123Z\t1020\t0192ABC\t-\t-\tx@remote\t-\n");
	free(text);
}

static void test_levels_and_names(void **state)
{
	enum ev_level l;

	assert_int_equal(event_parse_level("none", &l), 0);
	assert_int_equal(l, EVL_NONE);
	assert_int_equal(event_parse_level("Maximum", &l), 0);
	assert_int_equal(l, EVL_MAX);
	assert_int_equal(event_parse_level("medium", &l), 0);
	assert_int_equal(l, EVL_MEDIUM);
	assert_int_equal(event_parse_level("minimum", &l), 0);
	assert_int_equal(l, EVL_MIN);
	assert_int_equal(event_parse_level("loud", &l), -1);
	assert_int_equal(event_parse_level("", &l), -1);
	assert_string_equal(event_level_name(EVL_MEDIUM), "medium");
	assert_string_equal(event_severity_name(EV_WARNING), "warning");
	assert_string_equal(event_category_name(EVC_DIALUP), "Dial-up");
	assert_string_equal(event_category_name(EVC_INIT), "Initialization/Termination");
}

/* The ids of the catalogue (EVENT_CATALOGUE, which makes enum ev_id),
 * scanned from the text of event.h. */
static size_t header_ids(int *ids, size_t max)
{
	struct buf h = BUF_INIT;
	regex_t re;
	regmatch_t m[2];
	const char *p, *end;
	size_t n = 0;

	assert_int_equal(fs_read_file("../../src/mail/event.h", &h), 0);
	p = strstr(buf_cstr(&h), "#define EVENT_CATALOGUE(X)");
	assert_non_null(p);
	end = strstr(p, "enum ev_id {");
	assert_non_null(end);
	assert_int_equal(regcomp(&re, "X\\(([0-9]+), [A-Z_]+,", REG_EXTENDED), 0);
	while (regexec(&re, p, 2, m, 0) == 0 && p + m[0].rm_so < end) {
		assert_true(n < max);
		ids[n++] = atoi(p + m[1].rm_so);
		p += m[0].rm_eo;
	}
	regfree(&re);
	buf_free(&h);
	return n;
}

static void test_catalogue_matches_header_and_docs(void **state)
{
	int ids[256];
	size_t n_ids = header_ids(ids, 256), n_cat;
	const struct ev_def *cat = event_catalogue(&n_cat);
	struct buf doc = BUF_INIT;

	assert_true(n_ids >= 20);
	for (size_t i = 1; i < n_ids; i++)
		if (ids[i] <= ids[i - 1])
			fail_msg("event.h declares %d after %d: the catalogue is in numeric order",
				 ids[i], ids[i - 1]);
	for (size_t i = 0; i < n_ids; i++)
		if (!event_def(ids[i]))
			fail_msg("event %d of enum ev_id has no catalogue entry in event.c",
				 ids[i]);
	assert_int_equal(n_cat, n_ids);
	assert_int_equal(fs_read_file("../../docs/events.md", &doc), 0);
	for (size_t i = 0; i < n_cat; i++) {
		char *row = xasprintf("\n| %d | %s | %s | %s | %s |", cat[i].id,
				      event_severity_name(cat[i].severity),
				      event_category_name(cat[i].category),
				      event_level_name(cat[i].level), cat[i].name);

		if (!strstr(buf_cstr(&doc), row))
			fail_msg("docs/events.md lacks the row%s", row);
		free(row);
		assert_ptr_equal(event_def(cat[i].id), &cat[i]); /* ids are unique */
		assert_true(cat[i].level == EVL_MIN || cat[i].level == EVL_MEDIUM ||
			    cat[i].level == EVL_MAX);
		if (cat[i].severity == EV_ERROR)
			assert_int_equal(cat[i].level, EVL_MIN);
		assert_non_null(cat[i].summary);
	}
	buf_free(&doc);
}

static char run_stderr[4096];

/* Runs cmd_events with stdout to a file; returns its output and sets *rc.
 * Its standard error is left in run_stderr. */
static char *run_events(int *rc, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	char *out = xasprintf("%s/out", tmpdir);
	struct buf b = BUF_INIT;
	char *err = xasprintf("%s/err", tmpdir);
	struct buf e = BUF_INIT;
	int fd, saved, efd, esaved;

	argv[argc++] = "events";
	argv[argc++] = "--dir";
	argv[argc++] = tmpdir;
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	fflush(stdout);
	saved = dup(1);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 1);
	close(fd);
	fflush(stderr);
	esaved = dup(2);
	efd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(efd >= 0 && esaved >= 0);
	dup2(efd, 2);
	close(efd);
	*rc = cmd_events(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved, 1);
	close(saved);
	dup2(esaved, 2);
	close(esaved);
	assert_int_equal(fs_read_file(err, &e), 0);
	snprintf(run_stderr, sizeof(run_stderr), "%s", buf_cstr(&e));
	buf_free(&e);
	unlink(err);
	free(err);
	assert_int_equal(fs_read_file(out, &b), 0);
	unlink(out);
	free(out);
	return buf_steal(&b);
}

/* Writes a small log: 2002 at T, a bad line, 4192 at T+1h, 3018 at T+2h (with qid). */
static void write_sample_log(void)
{
	const char *kv[] = {"qid", "Q3", NULL};
	char *path = xasprintf("%s/log/events.jsonl", tmpdir);
	int fd;

	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	event_log(EV_MESSAGE_RECEIVED, "received one");
	event_close();
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"id\": oops\n", 12), 12);
	close(fd);
	free(path);
	assert_int_equal(event_open(tmpdir, NULL, 0), 0);
	clock_advance(3600LL * 1000000);
	event_log(EV_RELAY_DENIED, "relay denied for <x@remote>");
	clock_advance(3600LL * 1000000);
	event_logkv(EV_DISK_LOW, kv, "disk low");
	event_close();
}

static void test_cli_filters(void **state)
{
	int rc;
	char *out;

	write_sample_log();

	out = run_events(&rc, (const char *[]){NULL});
	assert_int_equal(rc, 0);
	assert_int_equal(count_lines(out), 4); /* header + 3; the bad line skipped */
	assert_memory_equal(out, "TIME ", 5);
	assert_non_null(strstr(out, "2026-11-25T12:07:24.123Z  2002  information  "
				    "Message Transfer            received one\n"));
	assert_non_null(strstr(out, "disk low (qid=Q3)\n"));
	assert_non_null(strstr(run_stderr, "/log/events.jsonl:2: bad line skipped"));
	free(out);

	out = run_events(&rc, (const char *[]){"--id", "4192,3018", "--json", NULL});
	assert_int_equal(rc, 0);
	assert_int_equal(count_lines(out), 2);
	assert_memory_equal(out, "{\"time\":\"2026-11-25T13:07:24.123Z\",\"id\":4192,", 45);
	free(out);

	out = run_events(&rc, (const char *[]){"--severity", "warning", "--json", NULL});
	assert_int_equal(count_lines(out), 2);
	assert_null(strstr(out, "\"id\":2002"));
	free(out);
	out = run_events(&rc, (const char *[]){"--severity", "error", "--json", NULL});
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"id\":3018"));
	free(out);

	out = run_events(&rc, (const char *[]){"--category", "security", "--json", NULL});
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"id\":4192"));
	free(out);
	out = run_events(&rc, (const char *[]){"--category", "message transfer", "--json", NULL});
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"id\":2002"));
	free(out);

	/* The fake clock is now T+2h: 90m back covers 4192 and 3018. */
	out = run_events(&rc, (const char *[]){"--since", "90m", "--json", NULL});
	assert_int_equal(count_lines(out), 2);
	free(out);
	out = run_events(&rc, (const char *[]){"--since", "2026-11-25 14:00", "--json", NULL});
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"id\":3018"));
	free(out);
	out = run_events(&rc,
			 (const char *[]){"--since", "2026-11-25T13:07:24.123Z", "--json", NULL});
	assert_int_equal(count_lines(out), 2);
	free(out);

	out = run_events(&rc, (const char *[]){"--tail", "1", "--json", NULL});
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"id\":3018"));
	free(out);
}

static void test_cli_bad_options_and_missing_log(void **state)
{
	static const char *const bad[][3] = {
	    {"--severity", "loud", NULL},   {"--category", "nope", NULL},
	    {"--since", "yesterday", NULL}, {"--id", "12x", NULL},
	    {"--tail", "-1", NULL},	    {"--bogus", NULL, NULL},
	    {"extra", NULL, NULL},
	};
	int rc;
	char *out;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = run_events(&rc, bad[i]);
		if (rc != 64)
			fail_msg("%s: exit %d, not 64", bad[i][0], rc);
		assert_string_equal(out, "");
		assert_non_null(strstr(run_stderr, "usage: dialmail events"));
		free(out);
	}
	out = run_events(&rc, (const char *[]){NULL});
	assert_int_equal(rc, 0);
	assert_string_equal(out, "");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_event_written_with_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_appends_across_opens, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_levels, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_kv_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_json_escaping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_unknown_id_panics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_track_line, setup, teardown),
	    cmocka_unit_test(test_levels_and_names),
	    cmocka_unit_test(test_catalogue_matches_header_and_docs),
	    cmocka_unit_test_setup_teardown(test_cli_filters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cli_bad_options_and_missing_log, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
