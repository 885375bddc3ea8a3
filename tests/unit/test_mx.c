/* Unit tests for deliver/mx.c: RFC 5321 5.1 ordering of MX hosts, the
 * dns_servers item check, the host:port form smtpc_connect takes, and
 * freeing the resolver from a lookup's callback. The lookups themselves run
 * against dnsmasq in tests/integration/test_mx.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/event.h>

#include "deliver/mx.h"
#include "mail/policy.h"

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
		if (policy_check_dns_server(good[i], &p) != 0)
			fail_msg("%s refused: %s", good[i], buf_cstr(&p));
		buf_free(&p);
	}
	for (int i = 0; bad[i]; i++) {
		struct buf p = BUF_INIT;
		if (policy_check_dns_server(bad[i], &p) == 0)
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

struct owner {
	struct mx *mx;
	int calls;
	char addr[64];
};

/* What a one-shot user does (dialup/retrieve_client.c): done with the resolver in
 * the callback, it frees it there. ASan sees any use after that. */
static void on_addr(const struct mx_result *r, void *arg)
{
	struct owner *o = arg;

	o->calls++;
	assert_int_equal(r->n, 1);
	snprintf(o->addr, sizeof(o->addr), "%s", r->v[0].addr);
	mx_free(o->mx);
	o->mx = NULL;
}

static void test_free_in_callback(void **state)
{
	struct event_base *base = event_base_new();
	struct buf err = BUF_INIT;
	struct strlist none = {0};
	struct owner o = {0};

	o.mx = mx_new(base, &none, &err);
	assert_non_null(o.mx);
	assert_non_null(mx_host(o.mx, "::1", 366, on_addr, &o)); /* no DNS for an address */
	assert_int_equal(o.calls, 0);				 /* never from inside mx_host */
	event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(o.calls, 1);
	assert_string_equal(o.addr, "[::1]:366");
	assert_null(o.mx);
	event_base_free(base);
	buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_by_preference),
	    cmocka_unit_test(test_equal_preferences_shuffled),
	    cmocka_unit_test(test_check_server),
	    cmocka_unit_test(test_hostport),
	    cmocka_unit_test(test_free_in_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
