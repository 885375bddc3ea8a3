/* Unit tests of src/mail/message.c: the Received: header bytes, header
 * lookup (case, unfolding, end of the header section), Message-ID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "mail/message.h"

static void test_received_with_for(void **state)
{
	struct buf b = BUF_INIT, want = BUF_INIT;
	char date[64];
	time_t when = 1700000000;

	clock_rfc5322(when, date, sizeof(date));
	msg_received(&b, "client.example", "192.0.2.7", "mx.example", "ESMTP",
		     "0123456789abcd00010002", "alice@example.org", when);
	buf_printf(&want,
		   "Received: from client.example (client [192.0.2.7])\r\n"
		   "\tby mx.example (dialmail) with ESMTP id 0123456789abcd00010002\r\n"
		   "\tfor <alice@example.org>; %s\r\n",
		   date);
	assert_string_equal(buf_cstr(&b), buf_cstr(&want));
	buf_free(&b);
	buf_free(&want);
}

static void test_received_without_for(void **state)
{
	struct buf b = BUF_INIT, want = BUF_INIT;
	char date[64];
	time_t when = 1700000000;

	clock_rfc5322(when, date, sizeof(date));
	msg_received(&b, "h", "::1", "mx.example", "SMTP", "QID", NULL, when);
	buf_printf(&want,
		   "Received: from h (client [::1])\r\n"
		   "\tby mx.example (dialmail) with SMTP id QID; %s\r\n",
		   date);
	assert_string_equal(buf_cstr(&b), buf_cstr(&want));
	assert_null(strstr(b.data, "for <"));
	/* every line ends with CRLF and there is no bare LF */
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\n')
			assert_int_equal(b.data[i - 1], '\r');
	buf_free(&b);
	buf_free(&want);
}

static void test_header_value_simple(void **state)
{
	const char *m = "From: a@example.org\r\n"
			"message-id:   <x1@example.org>  \r\n"
			"Subject: hi\r\n"
			"\r\n"
			"Message-ID: <body@example.org>\r\n";
	char *v;

	v = msg_header_value(m, strlen(m), "Message-ID");
	assert_string_equal(v, "<x1@example.org>");
	free(v);
	v = msg_header_value(m, strlen(m), "SUBJECT");
	assert_string_equal(v, "hi");
	free(v);
	assert_null(msg_header_value(m, strlen(m), "To"));
	assert_null(msg_header_value(m, strlen(m), "Message")); /* prefix is not a match */
	assert_null(msg_header_value(m, strlen(m), "Subj"));
}

static void test_header_value_body_not_searched(void **state)
{
	const char *m = "Subject: x\r\n\r\nMessage-ID: <body@example.org>\r\n";
	const char *m2 = "\r\nMessage-ID: <body@example.org>\r\n";

	assert_null(msg_header_value(m, strlen(m), "Message-ID"));
	assert_null(msg_header_value(m2, strlen(m2), "Message-ID"));
	assert_null(msg_header_value("", 0, "Message-ID"));
}

static void test_header_value_unfolds(void **state)
{
	const char *m = "Subject: first\r\n"
			"  second\r\n"
			"\tthird\r\n"
			"To: b@example.org\r\n"
			"\r\n";
	char *v = msg_header_value(m, strlen(m), "subject");

	assert_string_equal(v, "first  second\tthird");
	free(v);
}

static void test_header_value_edge(void **state)
{
	/* blanks before the colon, LF-only text, no final newline, length bound */
	const char *m = "Message-ID : <a@b>\nX: y";
	char *v = msg_header_value(m, strlen(m), "message-id");

	assert_string_equal(v, "<a@b>");
	free(v);
	v = msg_header_value(m, strlen(m), "X");
	assert_string_equal(v, "y");
	free(v);
	v = msg_header_value(m, 5, "Message-ID"); /* "Messa" only */
	assert_null(v);
	v = msg_header_value("X:\r\n\r\n", 6, "X");
	assert_string_equal(v, "");
	free(v);
}

static void test_message_id(void **state)
{
	struct buf b = BUF_INIT;

	msg_make_message_id(&b, "0123abc", "mx.example");
	assert_string_equal(buf_cstr(&b), "<0123abc@mx.example>");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_received_with_for),
	    cmocka_unit_test(test_received_without_for),
	    cmocka_unit_test(test_header_value_simple),
	    cmocka_unit_test(test_header_value_body_not_searched),
	    cmocka_unit_test(test_header_value_unfolds),
	    cmocka_unit_test(test_header_value_edge),
	    cmocka_unit_test(test_message_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
