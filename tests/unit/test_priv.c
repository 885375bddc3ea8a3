/* lib/priv: looking up the daemon's user and groups (a missing user or
 * group is an error, a missing supplementary group only a warning; the
 * login group comes first and nothing twice), and who may use the control
 * socket. Uses the accounts every Debian system has (root, nobody, the
 * dialout and nogroup groups); the drop itself is tested for real in
 * tests/integration/test_privileges.py. */
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/priv.h"

static void test_resolve_nobody_with_dialout(void **state)
{
	struct passwd *pw = getpwnam("nobody");
	struct group *dialout = getgrnam("dialout");
	struct strlist sup = {0};
	struct buf why = BUF_INIT, warn = BUF_INIT;
	struct priv p;

	strlist_split(&sup, "dialout, no-such-group-x, dialout");
	assert_int_equal(priv_resolve("nobody", "", &sup, &p, &why, &warn), 0);
	assert_int_equal(p.uid, pw->pw_uid);
	assert_int_equal(p.gid, pw->pw_gid);
	assert_int_equal(p.n_groups, 2);
	assert_int_equal(p.groups[0], pw->pw_gid);
	assert_int_equal(p.groups[1], dialout->gr_gid);
	assert_string_equal(p.group_names, "nogroup, dialout");
	assert_string_equal(buf_cstr(&warn),
			    "supplementary group no-such-group-x does not exist; skipped\n");
	assert_int_equal(why.len, 0);
	strlist_free(&sup);
	buf_free(&why);
	buf_free(&warn);
}

static void test_missing_user_or_group_is_an_error(void **state)
{
	struct buf why = BUF_INIT, warn = BUF_INIT;
	struct priv p;

	assert_int_equal(priv_resolve("no-such-user-x", "", NULL, &p, &why, &warn), -1);
	assert_string_equal(buf_cstr(&why), "user no-such-user-x does not exist");
	buf_reset(&why);
	assert_int_equal(priv_resolve("nobody", "no-such-group-x", NULL, &p, &why, &warn), -1);
	assert_string_equal(buf_cstr(&why), "group no-such-group-x does not exist");
	buf_free(&why);
	buf_free(&warn);
}

static void test_who_may_use_the_control_socket(void **state)
{
	gid_t admins = getgrnam("dialout")->gr_gid;

	assert_true(priv_uid_allowed(0, 0, 4242, admins));	    /* root */
	assert_true(priv_uid_allowed(4242, 4242, 4242, admins));    /* the daemon's user */
	assert_true(priv_uid_allowed(23456, admins, 4242, admins)); /* its primary group */
	assert_false(priv_uid_allowed(23456, 23456, 4242, admins)); /* a stranger */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resolve_nobody_with_dialout),
	    cmocka_unit_test(test_missing_user_or_group_is_an_error),
	    cmocka_unit_test(test_who_may_use_the_control_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
