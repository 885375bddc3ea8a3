/* Unit tests for the sendmail interface's message handling (cli/mailmsg.c):
 * reading stdin into wire form, the header/body split, -t recipient
 * extraction from address lists, Bcc removal, address checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/mailmsg.h"

/* Runs mailmsg_read on text; returns the status, output in out. */
static int read_text(const char *text, int dot_ends, uint64_t max, struct buf *out)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int rc;

	assert_non_null(f);
	rc = mailmsg_read(f, dot_ends, max, out);
	fclose(f);
	return rc;
}

static void test_read_lf_becomes_crlf(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(read_text("Subject: x\n\nline1\r\nline2", 1, 0, &b), 0);
	assert_string_equal(buf_cstr(&b), "Subject: x\r\n\r\nline1\r\nline2\r\n");
	buf_free(&b);
}

static void test_read_dot_ends_input(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(read_text("a\n..b\n.x\n.\nafter\n", 1, 0, &b), 0);
	assert_string_equal(buf_cstr(&b), "a\r\n..b\r\n.x\r\n");
	buf_reset(&b);
	assert_int_equal(read_text("a\r\n.\r\nafter\r\n", 1, 0, &b), 0);
	assert_string_equal(buf_cstr(&b), "a\r\n");
	buf_free(&b);
}

static void test_read_dash_i_keeps_dot(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(read_text("a\n.\nafter\n", 0, 0, &b), 0);
	assert_string_equal(buf_cstr(&b), "a\r\n.\r\nafter\r\n");
	buf_free(&b);
}

static void test_read_drops_mbox_from_line(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(
	    read_text("From alice Mon Jan  1 00:00:00 2024\nX: 1\n\nFrom here\n", 1, 0, &b), 0);
	assert_string_equal(buf_cstr(&b), "X: 1\r\n\r\nFrom here\r\n");
	buf_free(&b);
}

static void test_read_too_big(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(read_text("12345678\n12345678\n", 1, 12, &b), 1);
	assert_int_equal(b.len, 10);
	buf_reset(&b);
	assert_int_equal(read_text("12345678\n", 1, 10, &b), 0);
	buf_free(&b);
}

static void test_split(void **state)
{
	const char *m = "A: 1\r\n folded\r\nB: 2\r\n\r\nbody\r\n";
	const char *nohdr = "hello world\r\nA: 1\r\n";
	const char *nosep = "A: 1\r\nnot a header\r\n";
	size_t body;

	assert_int_equal(mailmsg_split(m, strlen(m), &body), 21);
	assert_string_equal(m + body, "body\r\n");
	assert_int_equal(mailmsg_split(nohdr, strlen(nohdr), &body), 0);
	assert_int_equal(body, 0);
	assert_int_equal(mailmsg_split(nosep, strlen(nosep), &body), 6);
	assert_int_equal(body, 6);
	assert_int_equal(mailmsg_split(" cont\r\n", 7, &body), 0);
	assert_int_equal(mailmsg_split("", 0, &body), 0);
	assert_int_equal(body, 0);
}

/* Parses value and checks the addresses found against the NULL-ended list. */
static void check_list(const char *value, const char *const *want)
{
	struct strlist l = {NULL, 0};
	size_t n = 0;

	while (want[n])
		n++;
	assert_int_equal(mailmsg_addrlist(value, &l), (int)n);
	assert_int_equal(l.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l.v[i], want[i]);
	strlist_free(&l);
}

static void test_addrlist_forms(void **state)
{
	check_list("a@b", (const char *const[]){"a@b", NULL});
	check_list("Alice Smith <alice@example.org>, bob@example.org (Bob)",
		   (const char *const[]){"alice@example.org", "bob@example.org", NULL});
	check_list("\"Smith, Alice\" <alice@x>, \"a,b\"@y",
		   (const char *const[]){"alice@x", "\"a,b\"@y", NULL});
	check_list("undisclosed-recipients:;", (const char *const[]){NULL});
	check_list("team: a@x, B <b@x>; c@x", (const char *const[]){"a@x", "b@x", "c@x", NULL});
	check_list("<@relay.example:carol@x>", (const char *const[]){"carol@x", NULL});
	check_list("x (comment, with (nested) comma) , , y", (const char *const[]){"x", "y", NULL});
	check_list("alice @ example.org", (const char *const[]){"alice@example.org", NULL});
	check_list("=?utf-8?q?J=C3=B6rg?= <joerg@x>", (const char *const[]){"joerg@x", NULL});
	check_list("<>", (const char *const[]){NULL});
	check_list("u@[192.0.2.1]", (const char *const[]){"u@[192.0.2.1]", NULL});
}

static void test_addrlist_malformed(void **state)
{
	const char *bad[] = {"Alice <alice@x", "alice@x>", "John Doe",	 "\"open@x",
			     "a@x (open",      "a@x; b@x", "<a@x> <b@x>"};
	struct strlist l = {NULL, 0};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %s\n", bad[i]);
		assert_int_equal(mailmsg_addrlist(bad[i], &l), -1);
	}
	strlist_free(&l);
}

static void test_recipients_fields(void **state)
{
	const char *h = "From: me@x\r\n"
			"To: Alice <alice@x>,\r\n"
			"\tbob@x\r\n"
			"cc: carol@x\r\n"
			"Bcc: dave@x\r\n"
			"X-To: nobody@x\r\n"
			"Subject: To: eve@x\r\n";
	struct strlist l = {NULL, 0};
	const char *bad = NULL;

	assert_int_equal(mailmsg_recipients(h, strlen(h), &l, &bad), 4);
	assert_string_equal(l.v[0], "alice@x");
	assert_string_equal(l.v[1], "bob@x");
	assert_string_equal(l.v[2], "carol@x");
	assert_string_equal(l.v[3], "dave@x");
	strlist_free(&l);
}

static void test_recipients_resent_and_errors(void **state)
{
	const char *h = "To: alice@x\r\nResent-To: frank@x\r\n";
	const char *b = "To: ok@x\r\nCc: Broken <x@y\r\n";
	struct strlist l = {NULL, 0};
	const char *bad = NULL;

	assert_int_equal(mailmsg_recipients(h, strlen(h), &l, &bad), 1);
	assert_string_equal(l.v[0], "frank@x");
	strlist_free(&l);
	assert_int_equal(mailmsg_recipients(b, strlen(b), &l, &bad), -1);
	assert_string_equal(bad, "Cc");
	strlist_free(&l);
}

static void test_strip_bcc(void **state)
{
	const char *h = "To: a@x\r\nBcc: secret@x,\r\n more@x\r\nBCC : s2@x\r\nBcc-Like: keep\r\n"
			"Resent-Bcc: r@x\r\nSubject: hi\r\n";
	struct buf out = BUF_INIT;

	mailmsg_strip_bcc(h, strlen(h), &out);
	assert_string_equal(buf_cstr(&out), "To: a@x\r\nBcc-Like: keep\r\nSubject: hi\r\n");
	buf_free(&out);
}

static void test_field_value(void **state)
{
	const char *h = "Message-Id:  <abc@x>\r\nSubject: one\r\n two\r\n";
	char *v;

	v = mailmsg_field_value(h, strlen(h), "message-id");
	assert_string_equal(v, "<abc@x>");
	free(v);
	v = mailmsg_field_value(h, strlen(h), "Subject");
	assert_string_equal(v, "one two");
	free(v);
	assert_null(mailmsg_field_value(h, strlen(h), "Date"));
	assert_true(mailmsg_has_field(h, strlen(h), "SUBJECT"));
	assert_false(mailmsg_has_field(h, strlen(h), "Subj"));
}

static void test_addr_valid(void **state)
{
	assert_true(mailmsg_addr_valid("alice@example.org"));
	assert_true(mailmsg_addr_valid("\"a b\"@example.org"));
	assert_true(mailmsg_addr_valid("u@[192.0.2.1]"));
	assert_true(mailmsg_addr_valid("u@[IPv6:::1]"));
	assert_false(mailmsg_addr_valid("alice"));
	assert_false(mailmsg_addr_valid("@example.org"));
	assert_false(mailmsg_addr_valid("alice@"));
	assert_false(mailmsg_addr_valid("a b@example.org"));
	assert_false(mailmsg_addr_valid("a@b c"));
	assert_false(mailmsg_addr_valid("a\r\n@b"));
	assert_false(mailmsg_addr_valid("\"open@b"));
	assert_false(mailmsg_addr_valid("a<b@c"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_lf_becomes_crlf),
	    cmocka_unit_test(test_read_dot_ends_input),
	    cmocka_unit_test(test_read_dash_i_keeps_dot),
	    cmocka_unit_test(test_read_drops_mbox_from_line),
	    cmocka_unit_test(test_read_too_big),
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_addrlist_forms),
	    cmocka_unit_test(test_addrlist_malformed),
	    cmocka_unit_test(test_recipients_fields),
	    cmocka_unit_test(test_recipients_resent_and_errors),
	    cmocka_unit_test(test_strip_bcc),
	    cmocka_unit_test(test_field_value),
	    cmocka_unit_test(test_addr_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
