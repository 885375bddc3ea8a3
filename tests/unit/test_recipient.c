/* Recipient classification: local users, aliases, postmaster, remote
 * domains, and the path-traversal and relay tricks that must never name a
 * mailbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/config.h"
#include "deliver/maildir.h"
#include "mail/recipient.h"
#include "test_tmp.h"
#include "daemon/modules.h"

static struct config cfg;

static int setup(void **state)
{
	char path[TEST_TMP_MAX];
	struct buf err = BUF_INIT;
	int fd = test_tmp_file(path, sizeof(path), "dialmail-rcpt");
	FILE *f = fdopen(fd, "w");

	fputs("local_domains = example.org, Branch.Example\n"
	      "local_recipients = alice, bob, a.b-c+d_e\n"
	      "[aliases]\n"
	      "sales = alice, bob\n",
	      f);
	fclose(f);
	if (config_load(&cfg, path, &err) < 0) {
		fprintf(stderr, "%s", buf_cstr(&err));
		unlink(path);
		return -1;
	}
	unlink(path);
	buf_free(&err);
	return 0;
}

static int teardown(void **state)
{
	config_free(&cfg);
	return 0;
}

static void test_classify_table(void **state)
{
	static const struct {
		const char *addr;
		enum rcpt_class want;
	} cases[] = {
	    {"alice@example.org", RCLASS_LOCAL},
	    {"ALICE@EXAMPLE.ORG", RCLASS_LOCAL},
	    {"Bob@branch.example", RCLASS_LOCAL},
	    {"a.b-c+d_e@example.org", RCLASS_LOCAL},
	    {"postmaster@example.org", RCLASS_LOCAL},
	    {"PostMaster@example.org", RCLASS_LOCAL},
	    {"sales@example.org", RCLASS_LOCAL},
	    {"carol@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"alice@example.net", RCLASS_REMOTE},
	    {"alice@example.org.evil", RCLASS_REMOTE},
	    {"alice@[127.0.0.1]", RCLASS_REMOTE},
	    {"../x@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"..@example.org", RCLASS_UNKNOWN_LOCAL},
	    {".alice@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"a/b@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"alice/../bob@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"%@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"alice%example.net@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"example.net!alice@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"\"alice@x\"@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"@a:alice@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"ali ce@example.org", RCLASS_UNKNOWN_LOCAL},
	    {"alice", RCLASS_INVALID},
	    {"@example.org", RCLASS_INVALID},
	    {"alice@", RCLASS_INVALID},
	    {"", RCLASS_INVALID},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rcpt_class got = recipient_classify(&cfg, cases[i].addr);
		if (got != cases[i].want)
			fail_msg("%s: got class %d, want %d", cases[i].addr, got, cases[i].want);
	}
}

static void test_local_exists(void **state)
{
	assert_true(recipient_local_exists(&cfg, "alice"));
	assert_true(recipient_local_exists(&cfg, "postmaster"));
	assert_true(recipient_local_exists(&cfg, "sales"));
	assert_false(recipient_local_exists(&cfg, "carol"));
	assert_false(recipient_local_exists(&cfg, ""));
}

static void test_mailbox_names(void **state)
{
	assert_true(recipient_user_valid("alice"));
	assert_true(recipient_user_valid("a.b-c+d_e9"));
	assert_false(recipient_user_valid(""));
	assert_false(recipient_user_valid("."));
	assert_false(recipient_user_valid(".."));
	assert_false(recipient_user_valid(".hidden"));
	assert_false(recipient_user_valid("a..b"));
	assert_false(recipient_user_valid("a/b"));
	assert_false(recipient_user_valid("Alice"));
	assert_false(recipient_user_valid("a\\b"));
}

int main(void)
{
	modules_register();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify_table),
	    cmocka_unit_test(test_local_exists),
	    cmocka_unit_test(test_mailbox_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
