/* Maildir delivery: the exact bytes that land in new/ (our two headers, LF
 * line ends), an empty tmp/, unique names, and temporary failure when the
 * mailbox cannot be created. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "deliver/maildir.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/strlist.h"
#include "lib/xmalloc.h"
#include "queue/queue.h"
#include "test_tmp.h"

struct fixture {
	char dir[TEST_TMP_MAX];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_tmp_dir(f->dir, sizeof(f->dir), "dialmail-maildir") == NULL)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (test_tmp_rm(f->dir) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Names of the entries in path (not . and ..), sorted, into names. */
static size_t list_dir(const char *path, struct strlist *names)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			strlist_add(names, e->d_name);
	closedir(d);
	return names->n;
}

static void read_only_file(const char *dir, struct buf *out, char **name)
{
	struct strlist names = {0};
	char *path;

	assert_int_equal(list_dir(dir, &names), 1);
	path = xasprintf("%s/%s", dir, names.v[0]);
	assert_int_equal(fs_read_file(path, out), 0);
	if (name)
		*name = xstrdup(names.v[0]);
	free(path);
	strlist_free(&names);
}

static void test_deliver_exact_bytes(void **state)
{
	struct fixture *f = *state;
	const char wire[] = "Received: from x\r\n\tby y\r\nSubject: hi\r\n\r\nline 1\r\n"
			    ".dot\r\nlast\r\n";
	const char want[] = "Return-Path: <carol@example.net>\nDelivered-To: alice@example.org\n"
			    "Received: from x\n\tby y\nSubject: hi\n\nline 1\n.dot\nlast\n";
	struct buf content = BUF_INIT, reply = BUF_INIT, got = BUF_INIT;
	struct strlist names = {0};
	struct stat st;
	char *md = maildir_path(f->dir, "alice");
	char *sub = NULL, *name = NULL;

	buf_append(&content, wire, sizeof(wire) - 1);
	assert_int_equal(maildir_deliver(f->dir, "alice", "carol@example.net", "alice@example.org",
					 &content, &reply),
			 Q_OK);
	assert_non_null(strstr(buf_cstr(&reply), "2.0.0"));

	sub = xasprintf("%s/new", md);
	read_only_file(sub, &got, &name);
	assert_int_equal(got.len, sizeof(want) - 1);
	assert_memory_equal(got.data, want, got.len);
	/* <sec>.M<usec>P<pid>Q<seq>.<host> */
	assert_non_null(strstr(name, ".M"));
	assert_non_null(strchr(name, 'P'));
	assert_non_null(strchr(name, 'Q'));
	free(sub);

	sub = xasprintf("%s/tmp", md);
	assert_int_equal(list_dir(sub, &names), 0);
	free(sub);
	sub = xasprintf("%s/cur", md);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(list_dir(sub, &names), 0);

	free(sub);
	free(name);
	free(md);
	buf_free(&content);
	buf_free(&reply);
	buf_free(&got);
}

static void test_null_sender_and_unique_names(void **state)
{
	struct fixture *f = *state;
	struct buf content = BUF_INIT, reply = BUF_INIT, got = BUF_INIT;
	struct strlist names = {0};
	char *md = maildir_path(f->dir, "bob"), *newdir = xasprintf("%s/new", md);

	buf_puts(&content, "Subject: bounce\r\n\r\nbody\r\n");
	clock_set_fake(1700000000LL * 1000000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    maildir_deliver(f->dir, "bob", "", "bob@example.org", &content, &reply), Q_OK);
	clock_set_fake(0);
	/* three deliveries in the same microsecond still get three files */
	assert_int_equal(list_dir(newdir, &names), 3);
	for (size_t i = 0; i < names.n; i++) {
		char *p = xasprintf("%s/%s", newdir, names.v[i]);

		buf_reset(&got);
		assert_int_equal(fs_read_file(p, &got), 0);
		assert_string_equal(buf_cstr(&got), "Return-Path: <>\n"
						    "Delivered-To: bob@example.org\n"
						    "Subject: bounce\n\nbody\n");
		free(p);
	}
	strlist_free(&names);
	free(md);
	free(newdir);
	buf_free(&content);
	buf_free(&reply);
	buf_free(&got);
}

static void test_mailbox_blocked_is_tempfail(void **state)
{
	struct fixture *f = *state;
	struct buf content = BUF_INIT, reply = BUF_INIT;
	char *maildir = xasprintf("%s/mail", f->dir), *userdir = xasprintf("%s/mail/dave", f->dir);
	FILE *fp;

	/* A regular file where the user's directory should be: mkdir fails
	 * even for root, as a full or broken file system would. */
	assert_int_equal(mkdir(maildir, 0700), 0);
	fp = fopen(userdir, "w");
	assert_non_null(fp);
	fclose(fp);
	buf_puts(&content, "Subject: x\r\n\r\nx\r\n");
	assert_int_equal(
	    maildir_deliver(f->dir, "dave", "a@b", "dave@example.org", &content, &reply),
	    Q_TEMPFAIL);
	assert_true(strncmp(buf_cstr(&reply), "4.", 2) == 0);
	free(maildir);
	free(userdir);
	buf_free(&content);
	buf_free(&reply);
}

static void test_bad_user_is_permfail_and_creates_nothing(void **state)
{
	struct fixture *f = *state;
	struct buf content = BUF_INIT, reply = BUF_INIT;
	struct strlist names = {0};

	buf_puts(&content, "x\r\n");
	assert_int_equal(maildir_deliver(f->dir, "../etc", "", "x@y", &content, &reply),
			 Q_PERMFAIL);
	assert_int_equal(maildir_deliver(f->dir, "a/b", "", "x@y", &content, &reply), Q_PERMFAIL);
	assert_int_equal(list_dir(f->dir, &names), 0);
	buf_free(&content);
	buf_free(&reply);
}

/* A queued message is delivered once per recipient: tried again (as after
 * a crash that lost its delivered state) it is found in new/, or in cur/
 * where a reader moved it with flags, and not written again; a stale tmp/
 * file of an interrupted attempt does not stop it; another recipient in
 * the same mailbox gets its own copy. */
static void test_deliver_once(void **state)
{
	struct fixture *f = *state;
	struct buf content = BUF_INIT, reply = BUF_INIT;
	struct strlist names = {0};
	struct q_env env;
	char *md = maildir_path(f->dir, "carol"), *newdir = xasprintf("%s/new", md);
	char *from = NULL, *to = NULL, *stale = NULL;

	memset(&env, 0, sizeof(env));
	snprintf(env.id, sizeof(env.id), "%s", "18000000000000AAAA0001");
	env.sender = xstrdup("a@b.example");
	buf_puts(&content, "Subject: once\r\n\r\nbody\r\n");
	for (int i = 0; i < 2; i++)
		assert_int_equal(maildir_deliver_once(f->dir, "carol", &env, "Carol@x.example",
						      &content, 0, &reply),
				 Q_OK);
	assert_non_null(strstr(buf_cstr(&reply), "delivered before"));
	assert_int_equal(list_dir(newdir, &names), 1);
	assert_non_null(strstr(names.v[0], ".D18000000000000AAAA0001_"));
	/* A reader moves it to cur/ and marks it seen. */
	from = xasprintf("%s/%s", newdir, names.v[0]);
	to = xasprintf("%s/cur/%s:2,S", md, names.v[0]);
	assert_int_equal(rename(from, to), 0);
	buf_reset(&reply);
	assert_int_equal(
	    maildir_deliver_once(f->dir, "carol", &env, "carol@x.example", &content, 1, &reply),
	    Q_OK);
	assert_non_null(strstr(buf_cstr(&reply), "delivered before"));
	strlist_free(&names);
	assert_int_equal(list_dir(newdir, &names), 0);
	/* Not looking in cur/, with a tmp/ file left by a crash: delivered. */
	stale = xasprintf("%s/tmp/%s", md, strrchr(to, '/') + 1);
	*strrchr(stale, ':') = '\0';
	assert_int_equal(fs_write_atomic(stale, "partial", 7, 0600), 0);
	assert_int_equal(unlink(to), 0);
	assert_int_equal(
	    maildir_deliver_once(f->dir, "carol", &env, "carol@x.example", &content, 0, &reply),
	    Q_OK);
	assert_int_equal(list_dir(newdir, &names), 1);
	assert_int_equal(access(stale, F_OK), -1);
	strlist_free(&names);
	/* Another recipient of the same message, same mailbox (an alias). */
	assert_int_equal(
	    maildir_deliver_once(f->dir, "carol", &env, "sales@x.example", &content, 1, &reply),
	    Q_OK);
	assert_int_equal(list_dir(newdir, &names), 2);
	strlist_free(&names);
	q_env_free(&env);
	free(md);
	free(newdir);
	free(from);
	free(to);
	free(stale);
	buf_free(&content);
	buf_free(&reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_deliver_exact_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_sender_and_unique_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deliver_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mailbox_blocked_is_tempfail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_user_is_permfail_and_creates_nothing, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
