/* Unit tests of src/mail/smtp_addr.c: the RFC 5321 path parser (valid and
 * invalid paths, quoting, source routes, literals, length limits) and the
 * ESMTP parameter parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/smtp_addr.h"

/* Parses s, expects success and returns the mailbox; *rest gets what follows. */
static void expect_ok(const char *s, int allow_null, const char *mailbox, const char *rest)
{
	struct smtp_path p;
	const char *end = NULL, *why = NULL;

	if (smtp_path_parse(s, allow_null, &p, &end, &why) != 0)
		fail_msg("%s: rejected (%s)", s, why);
	assert_string_equal(p.mailbox, mailbox);
	assert_string_equal(end, rest);
	smtp_path_free(&p);
}

static void expect_bad(const char *s, int allow_null)
{
	struct smtp_path p;
	const char *end = NULL, *why = NULL;

	if (smtp_path_parse(s, allow_null, &p, &end, &why) == 0)
		fail_msg("%s: accepted as %s", s, p.mailbox);
	assert_non_null(why);
	assert_null(p.mailbox);
}

static void test_path_valid(void **state)
{
	expect_ok("<alice@example.org>", 0, "alice@example.org", "");
	expect_ok("<Alice.B+tag@Example.ORG> SIZE=10", 0, "Alice.B+tag@example.org", " SIZE=10");
	expect_ok("<a!#$%&'*+-/=?^_`{|}~@x-y.example>", 0, "a!#$%&'*+-/=?^_`{|}~@x-y.example", "");
	expect_ok("<u@localhost>", 0, "u@localhost", "");
	expect_ok("<u@1a.example>", 0, "u@1a.example", "");
	expect_ok("<>", 1, "", "");
	expect_ok("<> BODY=8BITMIME", 1, "", " BODY=8BITMIME");
}

static void test_path_null(void **state)
{
	struct smtp_path p;
	const char *end, *why;

	assert_int_equal(smtp_path_parse("<>", 1, &p, &end, &why), 0);
	assert_true(p.is_null);
	assert_string_equal(p.local, "");
	smtp_path_free(&p);
	expect_bad("<>", 0);
}

static void test_path_invalid(void **state)
{
	expect_bad("alice@example.org", 0);	   /* no angle brackets */
	expect_bad("<alice@example.org", 0);	   /* no closing > */
	expect_bad("<alice>", 0);		   /* no domain */
	expect_bad("<alice@>", 0);		   /* empty domain */
	expect_bad("<@example.org>", 0);	   /* empty local part */
	expect_bad("<.alice@example.org>", 0);	   /* leading dot */
	expect_bad("<alice.@example.org>", 0);	   /* trailing dot in local part */
	expect_bad("<al..ice@example.org>", 0);	   /* double dot */
	expect_bad("<alice@example.org.>", 0);	   /* trailing dot in domain */
	expect_bad("<alice@example..org>", 0);	   /* empty label */
	expect_bad("<alice@-example.org>", 0);	   /* label starts with hyphen */
	expect_bad("<alice@example-.org>", 0);	   /* label ends with hyphen */
	expect_bad("<alice@exa_mple.org>", 0);	   /* underscore */
	expect_bad("<ali ce@example.org>", 0);	   /* space */
	expect_bad("<alice@example.org >", 0);	   /* space before > */
	expect_bad("< alice@example.org>", 0);	   /* space after < */
	expect_bad("<alice@@example.org>", 0);	   /* two @ */
	expect_bad("<a@b@example.org>", 0);	   /* unquoted @ in local part */
	expect_bad("<al\rice@example.org>", 0);	   /* CR */
	expect_bad("<al\nice@example.org>", 0);	   /* LF */
	expect_bad("<al\tice@example.org>", 0);	   /* tab */
	expect_bad("<al\xc3\xa9@example.org>", 0); /* 8-bit octets */
	expect_bad("<alice@exa\x01mple.org>", 0);
	expect_bad("", 0);
	expect_bad("<", 0);
}

static void test_path_quoted(void **state)
{
	struct smtp_path p;
	const char *end, *why;

	assert_int_equal(smtp_path_parse("<\"user@other\"@example.org>", 0, &p, &end, &why), 0);
	assert_true(p.quoted);
	assert_string_equal(p.local, "user@other");
	assert_string_equal(p.domain, "example.org");
	assert_string_equal(p.mailbox, "\"user@other\"@example.org");
	smtp_path_free(&p);

	assert_int_equal(smtp_path_parse("<\"a\\\"b\\\\c d\"@x.example>", 0, &p, &end, &why), 0);
	assert_string_equal(p.local, "a\"b\\c d");
	smtp_path_free(&p);

	expect_ok("<\"\"@x.example>", 0, "\"\"@x.example", "");
	expect_ok("<\"alice.b\"@x.example>", 0, "alice.b@x.example", ""); /* quotes not needed */
	expect_ok("<\"a b\"@x.example>", 0, "\"a b\"@x.example", "");
	expect_bad("<\"unterminated@x.example>", 0);
	expect_bad("<\"a\"b@x.example>", 0);	 /* text after the quoted string */
	expect_bad("<\"a\tb\"@x.example>", 0);	 /* control character inside quotes */
	expect_bad("<\"a\\\rb\"@x.example>", 0); /* quoted-pair of a CR */
}

static void test_path_source_route(void **state)
{
	struct smtp_path p;
	const char *end, *why;

	assert_int_equal(
	    smtp_path_parse("<@a.example,@b.example:user@c.example>", 0, &p, &end, &why), 0);
	assert_true(p.has_route);
	assert_string_equal(p.mailbox, "user@c.example");
	assert_string_equal(p.domain, "c.example");
	smtp_path_free(&p);

	expect_ok("<@localhost:user@other.example>", 0, "user@other.example", "");
	expect_ok("<@[192.0.2.1]:user@other.example>", 0, "user@other.example", "");
	expect_bad("<@a.example:>", 0);
	expect_bad("<@a.example,user@c.example>", 0);
	expect_bad("<@:user@c.example>", 0);
	expect_bad("<@a.example;@b:user@c.example>", 0);
}

static void test_path_literals(void **state)
{
	struct smtp_path p;
	const char *end, *why;

	assert_int_equal(smtp_path_parse("<user@[192.0.2.1]>", 0, &p, &end, &why), 0);
	assert_true(p.literal);
	assert_string_equal(p.domain, "[192.0.2.1]");
	smtp_path_free(&p);
	expect_ok("<user@[IPv6:2001:db8::1]>", 0, "user@[ipv6:2001:db8::1]", "");
	expect_ok("<user@[IPv6:::1]>", 0, "user@[ipv6:::1]", "");
	expect_bad("<user@[192.0.2.256]>", 0);
	expect_bad("<user@[192.0.2]>", 0);
	expect_bad("<user@[192.0.2.1.5]>", 0);
	expect_bad("<user@[1920.0.2.1]>", 0);
	expect_bad("<user@[2001:db8::1]>", 0); /* IPv6 needs its tag */
	expect_bad("<user@[IPv6:2001:db8::g]>", 0);
	expect_bad("<user@[x-tag:stuff]>", 0); /* general literals are not supported */
	expect_bad("<user@[192.0.2.1>", 0);
	expect_bad("<user@[192.0.2.1]x>", 0);
}

/* A domain of exactly n octets made of labels of at most 63 octets. */
static void make_domain(char *out, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t lab = n - i > 63 ? 63 : n - i;

		if (n - i - lab == 1) /* never leave a one-octet tail after a dot */
			lab--;
		memset(out + i, 'd', lab);
		i += lab;
		if (i < n)
			out[i++] = '.';
	}
	out[n] = '\0';
}

static void test_path_length_limits(void **state)
{
	char local[80], dom[300], s[600], mbox[600];

	/* local part: 64 octets fine, 65 refused */
	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(s, sizeof(s), "<%s@x.example>", local);
	snprintf(mbox, sizeof(mbox), "%s@x.example", local);
	expect_ok(s, 0, mbox, "");
	strcat(local, "a");
	snprintf(s, sizeof(s), "<%s@x.example>", local);
	expect_bad(s, 0);

	/* a label: 63 octets fine, 64 refused */
	memset(dom, 'b', 63);
	strcpy(dom + 63, ".example");
	snprintf(s, sizeof(s), "<u@%s>", dom);
	snprintf(mbox, sizeof(mbox), "u@%s", dom);
	expect_ok(s, 0, mbox, "");
	memset(dom, 'b', 64);
	strcpy(dom + 64, ".example");
	snprintf(s, sizeof(s), "<u@%s>", dom);
	expect_bad(s, 0);

	/* a domain: 255 octets fine, 256 refused */
	make_domain(dom, 255);
	assert_int_equal(strlen(dom), 255);
	assert_true(smtp_addr_domain_valid(dom, 255));
	make_domain(dom, 256);
	assert_false(smtp_addr_domain_valid(dom, 256));

	/* the whole path with its brackets: 256 octets fine, 257 refused */
	make_domain(dom, 252);
	snprintf(s, sizeof(s), "<u@%s>", dom);
	assert_int_equal(strlen(s), 256);
	snprintf(mbox, sizeof(mbox), "u@%s", dom);
	expect_ok(s, 0, mbox, "");
	make_domain(dom, 253);
	snprintf(s, sizeof(s), "<u@%s>", dom);
	assert_int_equal(strlen(s), 257);
	expect_bad(s, 0);
}

static void test_params(void **state)
{
	struct smtp_params ps;
	const struct smtp_param *sp;
	const char *why;

	assert_int_equal(smtp_params_parse("", &ps, &why), 0);
	assert_int_equal(ps.n, 0);
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" SIZE=1000 body=8BITMIME  X-FOO", &ps, &why), 0);
	assert_int_equal(ps.n, 3);
	sp = smtp_params_get(&ps, "size");
	assert_non_null(sp);
	assert_string_equal(sp->value, "1000");
	assert_string_equal(smtp_params_get(&ps, "BODY")->value, "8BITMIME");
	assert_null(smtp_params_get(&ps, "X-FOO")->value);
	assert_null(smtp_params_get(&ps, "RET"));
	smtp_params_free(&ps);

	assert_int_equal(smtp_params_parse("SIZE=1", &ps, &why), -1); /* no space before */
	assert_string_equal(why, "garbage after address");
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" SIZE=", &ps, &why), -1);
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" =1", &ps, &why), -1);
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" -X=1", &ps, &why), -1);
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" SIZE=1=2", &ps, &why), -1);
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" SIZE=1\t", &ps, &why), -1);
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" A_B=1", &ps, &why), -1);
	smtp_params_free(&ps);
	assert_int_equal(smtp_params_parse(" A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9 J=10 K=11 L=12 "
					   "M=13 N=14 O=15 P=16 Q=17",
					   &ps, &why),
			 -1);
	assert_string_equal(why, "too many parameters");
	smtp_params_free(&ps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_valid),	       cmocka_unit_test(test_path_null),
	    cmocka_unit_test(test_path_invalid),       cmocka_unit_test(test_path_quoted),
	    cmocka_unit_test(test_path_source_route),  cmocka_unit_test(test_path_literals),
	    cmocka_unit_test(test_path_length_limits), cmocka_unit_test(test_params),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
