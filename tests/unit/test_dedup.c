/* Inbound duplicate suppression: a (Message-ID, recipient) delivered within
 * the window is suppressed, with event 2023; outside it, or for another
 * recipient, or without a Message-ID, it is not. Records survive a reopen
 * (DIR/dedup.state); expired lines are dropped and the file compacted; a
 * torn last line is ignored. Time is the fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/dedup.h"
#include "mail/event.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/xmalloc.h"
#include "test_tmp.h"

#define T0 1700000000LL

struct fixture {
	char dir[TEST_TMP_MAX];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_tmp_dir(f->dir, sizeof(f->dir), "dialmail-dedup") == NULL)
		return -1;
	clock_set_fake(T0 * 1000000);
	event_open(f->dir, NULL, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	event_close();
	clock_set_fake(0);
	if (test_tmp_rm(f->dir) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static struct q_env env_with(const char *id, const char *msgid)
{
	struct q_env e;

	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.message_id = msgid ? xstrdup(msgid) : NULL;
	return e;
}

static char *read_text(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	char *path = xasprintf("%s/%s", dir, name);

	if (fs_read_file(path, &b) < 0)
		buf_puts(&b, "");
	free(path);
	return buf_steal(&b) ?: xstrdup("");
}

static void test_suppress_within_window(void **state)
{
	struct fixture *f = *state;
	struct dedup *dd = dedup_open(f->dir, 3600);
	struct q_env a = env_with("Q1", "<m1@example.org>"), b = env_with("Q2", "<m1@example.org>");
	struct buf reply = BUF_INIT;
	char *events;

	assert_int_equal(dedup_suppress(dd, &a, "alice@example.org", &reply), 0);
	assert_int_equal(dedup_record(dd, &a, "alice@example.org"), 0);
	clock_advance(10 * 1000000LL);
	/* Same Message-ID, same recipient (case differs): suppressed. */
	assert_int_equal(dedup_suppress(dd, &b, "Alice@Example.org", &reply), 1);
	assert_non_null(strstr(buf_cstr(&reply), "not delivered again"));
	/* Another recipient is a different delivery. */
	assert_int_equal(dedup_suppress(dd, &b, "bob@example.org", &reply), 0);
	events = read_text(f->dir, "log/events.jsonl");
	assert_non_null(strstr(events, "\"id\":2023"));
	assert_non_null(strstr(events, "\"message_id\":\"<m1@example.org>\""));
	assert_non_null(strstr(events, "\"qid\":\"Q2\""));
	free(events);
	/* After the window it goes through again. */
	clock_advance(3600 * 1000000LL);
	assert_int_equal(dedup_suppress(dd, &b, "alice@example.org", &reply), 0);
	dedup_close(dd);
	q_env_free(&a);
	q_env_free(&b);
	buf_free(&reply);
}

static void test_no_message_id_and_off(void **state)
{
	struct fixture *f = *state;
	struct dedup *dd = dedup_open(f->dir, 3600);
	struct q_env none = env_with("Q1", NULL), odd = env_with("Q2", "<a b@x>");
	struct buf reply = BUF_INIT;

	assert_int_equal(dedup_record(dd, &none, "alice@example.org"), 0);
	assert_int_equal(dedup_suppress(dd, &none, "alice@example.org", &reply), 0);
	/* A Message-ID with a blank cannot be stored, so it is never matched. */
	assert_int_equal(dedup_record(dd, &odd, "alice@example.org"), 0);
	assert_int_equal(dedup_suppress(dd, &odd, "alice@example.org", &reply), 0);
	dedup_close(dd);
	assert_null(dedup_open(f->dir, 0)); /* off */
	assert_int_equal(dedup_suppress(NULL, &odd, "alice@example.org", &reply), 0);
	assert_int_equal(dedup_record(NULL, &odd, "alice@example.org"), 0);
	q_env_free(&none);
	q_env_free(&odd);
	buf_free(&reply);
}

static void test_persists_and_compacts(void **state)
{
	struct fixture *f = *state;
	struct dedup *dd = dedup_open(f->dir, 100);
	time_t when = 0;
	char *text, *path;
	FILE *fp;

	for (int i = 0; i < 40; i++) {
		char *id = xasprintf("<old%d@x>", i);
		struct q_env e = env_with("Q", id);
		assert_int_equal(dedup_record(dd, &e, "u@x"), 0);
		q_env_free(&e);
		free(id);
	}
	clock_advance(200 * 1000000LL); /* all of those expire */
	{
		struct q_env e = env_with("Q", "<new@x>");
		assert_int_equal(dedup_record(dd, &e, "u@x"), 0);
		q_env_free(&e);
	}
	dedup_close(dd);
	/* A torn line, as after a crash in the middle of an append. */
	path = xasprintf("%s/dedup.state", f->dir);
	fp = fopen(path, "a");
	assert_non_null(fp);
	fputs("17000", fp);
	fclose(fp);
	clock_advance(5 * 1000000LL);
	dd = dedup_open(f->dir, 100);
	assert_int_equal(dedup_seen(dd, "<new@x>", "u@x", &when), 1);
	assert_int_equal((long long)when, T0 + 200);
	assert_int_equal(dedup_seen(dd, "<old3@x>", "u@x", NULL), 0);
	dedup_close(dd);
	/* Loading dropped the 40 expired lines from the file. */
	text = read_text(f->dir, "dedup.state");
	assert_null(strstr(text, "<old"));
	assert_non_null(strstr(text, "\t<new@x>\tu@x\n"));
	free(text);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_suppress_within_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_message_id_and_off, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_persists_and_compacts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
