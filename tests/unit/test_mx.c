/* Unit tests for daemon/mx.c: RFC 5321 5.1 ordering of MX hosts, the
 * dns_servers item check and the host:port form smtpc_connect takes. The
 * lookups themselves run against dnsmasq in tests/integration/test_mx.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/mx.h"

static void test_order_by_preference(void **state)
{
	struct mx_host_pref v[] = {{"c", 30}, {"a", 10}, {"b", 20}, {"z", 0}};
	uint64_t rnd = 12345;

	mx_order(v, 4, &rnd);
	assert_string_equal(v[0].name, "z");
	assert_string_equal(v[1].name, "a");
	assert_string_equal(v[2].name, "b");
	assert_string_equal(v[3].name, "c");
}

/* Equal preferences come in random order: over many runs each of three
 * equal hosts comes first sometimes, and the worse one is always last. */
static void test_equal_preferences_shuffled(void **state)
{
	int first[3] = {0, 0, 0};
	uint64_t rnd = 0x9e3779b97f4a7c15ULL;

	for (int run = 0; run < 300; run++) {
		struct mx_host_pref v[] = {{"0", 5}, {"1", 5}, {"2", 5}, {"last", 9}};
		mx_order(v, 4, &rnd);
		assert_string_equal(v[3].name, "last");
		first[v[0].name[0] - '0']++;
	}
	for (int i = 0; i < 3; i++)
		assert_true(first[i] > 50);
}

static void test_check_server(void **state)
{
	const char *good[] = {"127.0.0.1", "127.0.0.1:5353", "::1",
			      "[::1]:53",  "[2001:db8::1]",  NULL};
	const char *bad[] = {"localhost", "127.0.0.1:0", "127.0.0.1:70000", "[::1",
			     "1.2.3",	  "127.0.0.1:",	 "[::1]x",	    NULL};

	for (int i = 0; good[i]; i++) {
		struct buf p = BUF_INIT;
		if (mx_check_server(good[i], &p) != 0)
			fail_msg("%s refused: %s", good[i], buf_cstr(&p));
		buf_free(&p);
	}
	for (int i = 0; bad[i]; i++) {
		struct buf p = BUF_INIT;
		if (mx_check_server(bad[i], &p) == 0)
			fail_msg("%s accepted", bad[i]);
		assert_non_null(strstr(buf_cstr(&p), bad[i]));
		buf_free(&p);
	}
}

static void test_hostport(void **state)
{
	char *a = mx_hostport("192.0.2.1", 25), *b = mx_hostport("2001:db8::1", 587);

	assert_string_equal(a, "192.0.2.1:25");
	assert_string_equal(b, "[2001:db8::1]:587");
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_by_preference),
	    cmocka_unit_test(test_equal_preferences_shuffled),
	    cmocka_unit_test(test_check_server),
	    cmocka_unit_test(test_hostport),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
