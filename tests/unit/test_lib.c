/* Unit tests of src/lib: buffers, string lists, CIDR matching, durable files, clock. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/cidr.h"
#include "lib/clock.h"
#include "lib/duration.h"
#include "lib/fsutil.h"
#include "lib/spawn.h"
#include "lib/strlist.h"
#include "test_tmp.h"

static void test_buf_grows_and_terminates(void **state)
{
	struct buf b = BUF_INIT;

	assert_string_equal(buf_cstr(&b), "");
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	assert_int_equal(b.len, strlen(b.data));
	assert_memory_equal(b.data, "0,1,2,", 6);
	buf_append(&b, "\0x", 2);
	assert_int_equal(b.data[b.len], '\0');
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

/* Control bytes come out as \r, \n, \t or \xHH; other bytes as they are. */
static void test_buf_put_escaped(void **state)
{
	struct buf b = BUF_INIT;
	const char in[] = "a\x1b[31m\r\n\t\x7f\x01z\\ \xc3\xa9";

	buf_put_escaped(&b, in, sizeof(in) - 1);
	assert_string_equal(buf_cstr(&b), "a\\x1b[31m\\r\\n\\t\\x7f\\x01z\\ \xc3\xa9");
	buf_reset(&b);
	buf_put_escaped(&b, "x\0y", 3);
	assert_string_equal(buf_cstr(&b), "x\\x00y");
	buf_free(&b);
}

static void test_strlist_split(void **state)
{
	struct strlist l = {0};

	strlist_split(&l, " a, b ,c\td,,");
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[3], "d");
	assert_true(strlist_has(&l, "b"));
	assert_false(strlist_has(&l, "B"));
	assert_true(strlist_has_nocase(&l, "B"));
	strlist_free(&l);
}

static struct sockaddr_in6 v6(const char *s)
{
	struct sockaddr_in6 a;
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, s, &a.sin6_addr), 1);
	return a;
}

static struct sockaddr_in v4(const char *s)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, s, &a.sin_addr), 1);
	return a;
}

static void test_cidr(void **state)
{
	struct cidr c;
	struct sockaddr_in a = v4("192.0.2.77"), b = v4("192.0.3.1");
	struct sockaddr_in6 m = v6("::ffff:192.0.2.5"), l = v6("::1");

	assert_int_equal(cidr_parse("192.0.2.0/24", &c), 0);
	assert_true(cidr_match(&c, (struct sockaddr *)&a));
	assert_false(cidr_match(&c, (struct sockaddr *)&b));
	assert_true(cidr_match(&c, (struct sockaddr *)&m));
	assert_false(cidr_match(&c, (struct sockaddr *)&l));
	assert_int_equal(cidr_parse("::1", &c), 0);
	assert_int_equal(c.prefix, 128);
	assert_true(cidr_match(&c, (struct sockaddr *)&l));
	assert_int_equal(cidr_parse("10.0.0.0/33", &c), -1);
	assert_int_equal(cidr_parse("10.0.0.0/", &c), -1);
	assert_int_equal(cidr_parse("example.org/8", &c), -1);
	assert_int_equal(cidr_parse("192.0.2.128/25", &c), 0);
	assert_false(cidr_match(&c, (struct sockaddr *)&a));
}

static void test_fs_write_atomic(void **state)
{
	char dir[TEST_TMP_MAX];
	struct buf got = BUF_INIT;
	char *path;

	assert_non_null(test_tmp_dir(dir, sizeof(dir), "dm-lib"));
	path = malloc(strlen(dir) + 16);
	sprintf(path, "%s/a/b/f", dir);
	assert_int_equal(fs_mkdirs(path, 0700), 0);
	strcat(path, "/x");
	assert_int_equal(fs_write_atomic(path, "one", 3, 0600), 0);
	assert_int_equal(fs_write_atomic(path, "two!", 4, 0600), 0);
	assert_int_equal(fs_read_file(path, &got), 0);
	assert_string_equal(got.data, "two!");
	assert_int_equal(fs_read_file("/nonexistent/x", &got), -1);
	buf_free(&got);
	free(path);
	assert_int_equal(test_tmp_rm(dir), 0);
}

/* One grammar for every duration setting: units ms, s, m/min, h, d in any
 * case, a bare number in seconds; bounds and whole seconds where asked. */
static void test_duration_grammar(void **state)
{
	static const struct {
		const char *text;
		long long ms;
	} good[] = {{"90", 90000},     {"90s", 90000},	{"1500ms", 1500},  {"15m", 900000},
		    {"15min", 900000}, {"2H", 7200000}, {"7d", 604800000}, {"0", 0},
		    {"3S", 3000},      {"500MS", 500}};
	static const char *const bad[] = {
	    "", "m", "5 m", "1w", "-1", "1.5h", "s5", "2hh", "99999999999999999999"};
	char text[32];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(duration_parse_ms(good[i].text, 1000LL * 86400 * 7), good[i].ms);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(duration_parse_ms(bad[i], 1LL << 60), -1);
	assert_int_equal(duration_parse_ms("8d", 1000LL * 86400 * 7), -1); /* above max */
	assert_int_equal(duration_parse("15m", 86400), 900);
	assert_int_equal(duration_parse("1500ms", 86400), -1); /* not whole seconds */
	assert_int_equal(duration_parse("2000ms", 86400), 2);
	assert_int_equal(duration_parse("2d", 86400), -1);
	duration_format_ms(text, sizeof(text), 7200000);
	assert_string_equal(text, "2h");
	duration_format_ms(text, sizeof(text), 90000);
	assert_string_equal(text, "90s");
	duration_format_ms(text, sizeof(text), 1500);
	assert_string_equal(text, "1500ms");
	duration_format_ms(text, sizeof(text), 0);
	assert_string_equal(text, "0s");
	duration_format_ms(text, sizeof(text), 86400000);
	assert_string_equal(text, "1d");
}

static void test_clock_fake(void **state)
{
	char out[64];

	clock_set_fake(1764072444123000LL);
	assert_int_equal(clock_now(), 1764072444);
	clock_iso8601(clock_usec(), out, sizeof(out));
	assert_string_equal(out, "2025-11-25T12:07:24.123Z");
	clock_advance(1000000);
	assert_int_equal(clock_now(), 1764072445);
	clock_set_fake(0);
	assert_true(clock_now() > 1764072445);
}

/* The child's process group exists when spawn_child returns, so a kill
 * right after the start reaches it (the race a child-side setsid had). */
static void test_spawn_group_at_once(void **state)
{
	struct spawn_opts o = {.cmd = "sleep 30", .in = -1, .out = -1, .err = -1};
	int status = 0;

	for (int i = 0; i < 20; i++) {
		pid_t pid = spawn_child(&o);

		assert_true(pid > 0);
		assert_int_equal(kill(-pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
	}
}

/* The environment given is the child's whole environment. */
static void test_spawn_env(void **state)
{
	char *env[] = {"DIALMAIL_X=yes", NULL};
	struct spawn_opts o = {.cmd = "test \"$DIALMAIL_X\" = yes && test -z \"$HOME\"",
			       .env = env,
			       .in = -1,
			       .out = -1,
			       .err = -1};
	int status = 0;
	pid_t pid = spawn_child(&o);

	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buf_grows_and_terminates),
	    cmocka_unit_test(test_buf_put_escaped),
	    cmocka_unit_test(test_strlist_split),
	    cmocka_unit_test(test_cidr),
	    cmocka_unit_test(test_fs_write_atomic),
	    cmocka_unit_test(test_duration_grammar),
	    cmocka_unit_test(test_clock_fake),
	    cmocka_unit_test(test_spawn_group_at_once),
	    cmocka_unit_test(test_spawn_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
