/* Unit tests of src/smtp/dsn.c: the NOTIFY / null-sender rules, status codes,
 * and the report message taken apart structurally (CRLF only, line lengths,
 * boundaries, required fields per RFC 3464), plus a check with Python's
 * email package when /usr/bin/python3 is there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "smtp/dsn.h"
#include "test_tmp.h"

#define T0 1700000000

static const char original[] = "Received: from client (client [192.0.2.7])\r\n"
			       "\tby branch.example (dialmail) with ESMTP id 0001\r\n"
			       "From: Alice <alice@branch.example>\r\n"
			       "To: bob@partner.example, carol@partner.example\r\n"
			       "Subject: quarterly figures\r\n"
			       "Message-ID: <orig-1@branch.example>\r\n"
			       "\r\n"
			       "Hello Bob,\r\n"
			       "the figures are attached.\r\n";

/* --- a small structural parser of the report ------------------------------ */

struct part {
	char *headers; /* unfolded, "\n"-separated "Name: value" lines */
	char *body;    /* as on the wire */
};

struct report {
	char *headers;
	char *boundary;
	struct part part[3];
	int nparts;
};

/* Every line ends with CRLF; no bare CR or LF; no line over max octets. */
static void check_lines(const char *s, size_t len, size_t max)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
			fail_msg("bare CR at offset %zu", i);
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			fail_msg("bare LF at offset %zu", i);
		if (s[i] == '\n') {
			if (i - 1 - start > max)
				fail_msg("line of %zu octets at offset %zu (max %zu)",
					 i - 1 - start, start, max);
			start = i + 1;
		}
	}
	assert_int_equal(start, len); /* ends with CRLF */
}

/* Unfolds the header section at s (up to the empty line or the end) into "\n" lines;
 * *rest is set past the empty line. A continuation must start with WSP. */
static char *unfold(const char *s, const char **rest)
{
	struct buf out = BUF_INIT;
	const char *p = s, *eol;

	while ((eol = strstr(p, "\r\n")) != NULL && eol != p) {
		if (*p == ' ' || *p == '\t')
			assert_true(out.len > 0);
		else {
			assert_non_null(memchr(p, ':', (size_t)(eol - p)));
			if (out.len)
				buf_putc(&out, '\n');
		}
		buf_append(&out, p, (size_t)(eol - p));
		p = eol + 2;
	}
	if (eol == NULL) { /* the text ended with the section (last status block) */
		assert_int_equal(*p, '\0');
		*rest = p;
	} else
		*rest = eol + 2;
	buf_putc(&out, '\n');
	return buf_steal(&out);
}

/* The value of header name in unfolded lines, or NULL (caller frees). */
static char *field(const char *lines, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = lines; *p; p = strchr(p, '\n') + 1) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e = strchr(p, '\n');
			v += strspn(v, " \t");
			return strndup(v, (size_t)(e - v));
		}
	}
	return NULL;
}

static void expect_field(const char *lines, const char *name, const char *want)
{
	char *v = field(lines, name);

	if (v == NULL)
		fail_msg("no %s: field in:\n%s", name, lines);
	if (strcmp(v, want) != 0)
		fail_msg("%s: '%s', wanted '%s'", name, v, want);
	free(v);
}

static void parse_report(const char *msg, size_t len, struct report *r)
{
	const char *body, *p, *next;
	char *ct, *b, *delim, *close;

	memset(r, 0, sizeof(*r));
	check_lines(msg, len, 998);
	r->headers = unfold(msg, &body);
	ct = field(r->headers, "Content-Type");
	assert_non_null(ct);
	assert_non_null(strstr(ct, "multipart/report; report-type=delivery-status;"));
	b = strstr(ct, "boundary=\"");
	assert_non_null(b);
	r->boundary = strndup(b + 10, strcspn(b + 10, "\""));
	free(ct);
	assert_true(asprintf(&delim, "\r\n--%s\r\n", r->boundary) > 0);
	assert_true(asprintf(&close, "\r\n--%s--\r\n", r->boundary) > 0);
	/* the closing delimiter ends the message */
	assert_true(len > strlen(close));
	assert_string_equal(msg + len - strlen(close), close);
	p = strstr(body, delim);
	assert_non_null(p);
	while (p && r->nparts < 3) {
		const char *start = p + strlen(delim), *rest;
		next = strstr(start, delim);
		const char *end = next ? next : msg + len - strlen(close);
		char *text = strndup(start, (size_t)(end - start));
		r->part[r->nparts].headers = unfold(text, &rest);
		r->part[r->nparts].body = strdup(rest);
		free(text);
		r->nparts++;
		p = next;
	}
	assert_null(p); /* no fourth part */
	assert_int_equal(r->nparts, 3);
	free(delim);
	free(close);
}

static void free_report(struct report *r)
{
	free(r->headers);
	free(r->boundary);
	for (int i = 0; i < r->nparts; i++) {
		free(r->part[i].headers);
		free(r->part[i].body);
	}
}

/* The delivery-status body as blocks of unfolded fields. */
static int status_blocks(const char *body, char **blocks, int max)
{
	const char *p = body, *rest;
	int n = 0;

	while (*p && n < max) {
		blocks[n++] = unfold(p, &rest);
		p = rest;
		while (strncmp(p, "\r\n", 2) == 0)
			p += 2;
	}
	return n;
}

/* Runs Python's email parser over the message; skipped without python3. */
static void python_check(const struct buf *msg, const char *want_actions)
{
	static const char script[] =
	    "import sys, email, email.policy\n"
	    "m = email.message_from_binary_file(open(sys.argv[1], 'rb'), "
	    "policy=email.policy.default)\n"
	    "assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
	    "assert m.get_param('report-type') == 'delivery-status'\n"
	    "parts = m.get_payload()\n"
	    "assert [p.get_content_type() for p in parts][:2] == ['text/plain', "
	    "'message/delivery-status'], parts\n"
	    "blocks = parts[1].get_payload()\n"
	    "assert blocks[0]['Reporting-MTA'].startswith('dns;'), blocks[0]['Reporting-MTA']\n"
	    "acts = ','.join(b['Action'] for b in blocks[1:])\n"
	    "assert acts == sys.argv[2], acts\n"
	    "for part in m.walk():\n"
	    "    assert not part.defects, (part.get_content_type(), part.defects)\n"
	    "print('ok')\n";
	char path[TEST_TMP_MAX], *cmd, out[64] = "";
	int fd;
	FILE *p;

	if (access("/usr/bin/python3", X_OK) != 0)
		return;
	fd = test_tmp_file(path, sizeof(path), "dialmail-dsn");
	assert_true(fd >= 0);
	assert_int_equal(write(fd, msg->data, msg->len), (ssize_t)msg->len);
	close(fd);
	assert_true(asprintf(&cmd, "/usr/bin/python3 -c \"$DSN_SCRIPT\" '%s' %s 2>&1", path,
			     want_actions) > 0);
	setenv("DSN_SCRIPT", script, 1);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (fgets(out, sizeof(out), p) == NULL)
		out[0] = '\0';
	pclose(p);
	unlink(path);
	free(cmd);
	if (strcmp(out, "ok\n") != 0)
		fail_msg("python email check: %s", out);
}

/* --- rules ---------------------------------------------------------------- */

static void test_notify_parse(void **state)
{
	unsigned n = 99;

	assert_int_equal(dsn_notify_parse("NEVER", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_NEVER);
	assert_int_equal(dsn_notify_parse("success,Failure,DELAY", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);
	assert_int_equal(dsn_notify_parse("FAILURE", &n), 0);
	assert_int_equal(n, DSN_NOTIFY_FAILURE);
	assert_int_equal(dsn_notify_parse("NEVER,FAILURE", &n), -1);
	assert_int_equal(dsn_notify_parse("FAILURE,FAILURE", &n), -1);
	assert_int_equal(dsn_notify_parse("FAILURE,", &n), -1);
	assert_int_equal(dsn_notify_parse(",FAILURE", &n), -1);
	assert_int_equal(dsn_notify_parse("", &n), -1);
	assert_int_equal(dsn_notify_parse("SOMETIMES", &n), -1);
	assert_int_equal(dsn_notify_parse("FAIL", &n), -1);
}

/* The server-side checks of ENVID / ORCPT and the NOTIFY value sent on. */
static void test_xtext_orcpt_notify_format(void **state)
{
	struct buf b = BUF_INIT;

	assert_true(dsn_xtext_valid("abc+2B+3Dx", 100));
	assert_false(dsn_xtext_valid("", 100));
	assert_false(dsn_xtext_valid("a=b", 100));  /* '=' must be encoded */
	assert_false(dsn_xtext_valid("a+2b", 100)); /* lower-case hex */
	assert_false(dsn_xtext_valid("a+2", 100));
	assert_false(dsn_xtext_valid("a b", 100));
	assert_false(dsn_xtext_valid("caf\xc3\xa9", 100));
	assert_true(dsn_xtext_valid("0123456789", 10));
	assert_false(dsn_xtext_valid("0123456789X", 10));
	assert_true(dsn_orcpt_valid("rfc822;bob+40example.org"));
	assert_true(dsn_orcpt_valid("x-local;bob"));
	assert_false(dsn_orcpt_valid("rfc822"));
	assert_false(dsn_orcpt_valid(";bob"));
	assert_false(dsn_orcpt_valid("rfc 822;bob"));
	assert_false(dsn_orcpt_valid("rfc822;bo=b"));
	dsn_notify_format(DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS, &b);
	assert_string_equal(buf_cstr(&b), "SUCCESS,DELAY");
	buf_reset(&b);
	dsn_notify_format(DSN_NOTIFY_NEVER, &b);
	assert_string_equal(buf_cstr(&b), "NEVER");
	buf_free(&b);
}

static void test_notify_wants(void **state)
{
	/* not given: failures and delays, not successes */
	assert_true(dsn_notify_wants(0, DSN_ACTION_FAILED));
	assert_true(dsn_notify_wants(0, DSN_ACTION_DELAYED));
	assert_false(dsn_notify_wants(0, DSN_ACTION_DELIVERED));
	assert_false(dsn_notify_wants(DSN_NOTIFY_NEVER, DSN_ACTION_FAILED));
	assert_false(dsn_notify_wants(DSN_NOTIFY_NEVER, DSN_ACTION_DELAYED));
	assert_true(dsn_notify_wants(DSN_NOTIFY_FAILURE, DSN_ACTION_FAILED));
	assert_false(dsn_notify_wants(DSN_NOTIFY_FAILURE, DSN_ACTION_DELAYED));
	assert_true(dsn_notify_wants(DSN_NOTIFY_DELAY, DSN_ACTION_DELAYED));
	assert_false(dsn_notify_wants(DSN_NOTIFY_DELAY, DSN_ACTION_FAILED));
	assert_true(dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_ACTION_DELIVERED));
	assert_true(dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_ACTION_RELAYED));
	assert_false(dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_ACTION_FAILED));
}

static void test_return_to(void **state)
{
	const char *pm = "postmaster@branch.example";

	assert_string_equal(dsn_return_to("alice@b.example", "x@y", DSN_ACTION_FAILED, pm),
			    "alice@b.example");
	assert_string_equal(dsn_return_to("alice@b.example", "x@y", DSN_ACTION_DELAYED, pm),
			    "alice@b.example");
	/* never bounce a bounce: a failed null-sender message goes to the postmaster */
	assert_string_equal(dsn_return_to("", "x@y", DSN_ACTION_FAILED, pm), pm);
	/* ...but no delay warnings or success reports about bounces */
	assert_null(dsn_return_to("", "x@y", DSN_ACTION_DELAYED, pm));
	assert_null(dsn_return_to("", "x@y", DSN_ACTION_DELIVERED, pm));
	/* a double bounce that fails is dropped, not sent to the postmaster again */
	assert_null(dsn_return_to("", "Postmaster@Branch.example", DSN_ACTION_FAILED, pm));
	assert_true(dsn_due("alice@b.example", "x@y", 0, DSN_ACTION_FAILED, pm));
	assert_false(dsn_due("alice@b.example", "x@y", DSN_NOTIFY_NEVER, DSN_ACTION_FAILED, pm));
	assert_false(
	    dsn_due("", "x@y", DSN_NOTIFY_DELAY | DSN_NOTIFY_FAILURE, DSN_ACTION_DELAYED, pm));
	assert_true(dsn_due("", "x@y", 0, DSN_ACTION_FAILED, pm));
}

static void status_of(const char *explicit, const char *diag, enum dsn_action a, const char *want)
{
	struct dsn_rcpt rc = {.addr = "x@y", .status = explicit, .diagnostic = diag, .action = a};
	char out[DSN_STATUS_MAX];

	dsn_status(&rc, out);
	assert_string_equal(out, want);
}

static void test_status_codes(void **state)
{
	status_of("5.7.1", "550 5.1.1 no such user", DSN_ACTION_FAILED, "5.7.1");
	status_of(NULL, "550 5.1.1 no such user", DSN_ACTION_FAILED, "5.1.1");
	status_of(NULL, "550-5.2.2 mailbox full", DSN_ACTION_FAILED, "5.2.2");
	status_of(NULL, "451 4.4.1 try later", DSN_ACTION_DELAYED, "4.4.1");
	status_of(NULL, "554 transaction failed", DSN_ACTION_FAILED, "5.0.0");
	status_of(NULL, "421 closing", DSN_ACTION_FAILED, "4.0.0");
	status_of(NULL, "5.1.1 no such local mailbox", DSN_ACTION_FAILED, "5.1.1");
	status_of(NULL, "connection refused", DSN_ACTION_DELAYED, "4.0.0");
	status_of(NULL, NULL, DSN_ACTION_FAILED, "5.0.0");
	status_of(NULL, NULL, DSN_ACTION_DELIVERED, "2.0.0");
	status_of("bogus", "550 5.1.10 x", DSN_ACTION_FAILED, "5.1.10");
	status_of(NULL, "550 5.1.1234 x", DSN_ACTION_FAILED, "5.0.0");
}

/* --- the report --------------------------------------------------------- */

static void test_bounce_structure(void **state)
{
	const struct dsn_rcpt rcpt[] = {
	    {.addr = "bob@partner.example",
	     .orcpt = "rfc822;Bob+2BWork@partner.example",
	     .action = DSN_ACTION_FAILED,
	     .remote_mta = "mx1.partner.example",
	     .diagnostic = "550 5.1.1 <bob@partner.example>: Recipient address rejected",
	     .last_attempt = T0 + 60},
	    {.addr = "carol@partner.example",
	     .action = DSN_ACTION_FAILED,
	     .diagnostic = "message expired after 5 days in the queue"}};
	const struct dsn_report r = {.reporting_mta = "branch.example",
				     .to = "alice@branch.example",
				     .sender = "alice@branch.example",
				     .qid = "0123456789abcd00010002",
				     .envid = "QQ+2B314",
				     .arrival = T0,
				     .now = T0 + 120,
				     .content = original,
				     .content_len = strlen(original),
				     .rcpt = rcpt,
				     .nrcpt = 2};
	struct buf msg = BUF_INIT;
	struct report rep;
	char *blocks[8], date[64];
	int n;

	dsn_build(&r, &msg);
	parse_report(msg.data, msg.len, &rep);
	check_lines(msg.data, msg.len, 78); /* nothing long in this one */
	expect_field(rep.headers, "From", "Mail Delivery System <MAILER-DAEMON@branch.example>");
	expect_field(rep.headers, "To", "alice@branch.example");
	expect_field(rep.headers, "Subject", "Undelivered Mail Returned to Sender");
	expect_field(rep.headers, "Auto-Submitted", "auto-replied");
	expect_field(rep.headers, "MIME-Version", "1.0");
	clock_rfc5322(T0 + 120, date, sizeof(date));
	expect_field(rep.headers, "Date", date);
	char *mid = field(rep.headers, "Message-ID");
	assert_non_null(mid);
	assert_true(mid[0] == '<' && strstr(mid, "@branch.example>"));
	free(mid);
	assert_null(field(rep.headers, "Content-Transfer-Encoding"));

	expect_field(rep.part[0].headers, "Content-Type", "text/plain; charset=us-ascii");
	assert_non_null(strstr(rep.part[0].body, "<bob@partner.example>: failed; host "
						 "mx1.partner.example said: 550 5.1.1"));
	assert_non_null(strstr(rep.part[0].body, "<carol@partner.example>: failed: message"));

	expect_field(rep.part[1].headers, "Content-Type", "message/delivery-status");
	n = status_blocks(rep.part[1].body, blocks, 8);
	assert_int_equal(n, 3);
	expect_field(blocks[0], "Reporting-MTA", "dns; branch.example");
	expect_field(blocks[0], "X-Dialmail-Queue-ID", "0123456789abcd00010002");
	expect_field(blocks[0], "Original-Envelope-Id", "QQ+314"); /* xtext decoded */
	clock_rfc5322(T0, date, sizeof(date));
	expect_field(blocks[0], "Arrival-Date", date);
	expect_field(blocks[1], "Original-Recipient", "rfc822; Bob+Work@partner.example");
	expect_field(blocks[1], "Final-Recipient", "rfc822; bob@partner.example");
	expect_field(blocks[1], "Action", "failed");
	expect_field(blocks[1], "Status", "5.1.1");
	expect_field(blocks[1], "Remote-MTA", "dns; mx1.partner.example");
	/* folded at a space; unfolding gives the reply back */
	expect_field(blocks[1], "Diagnostic-Code",
		     "smtp; 550 5.1.1 <bob@partner.example>: Recipient address rejected");
	clock_rfc5322(T0 + 60, date, sizeof(date));
	expect_field(blocks[1], "Last-Attempt-Date", date);
	assert_null(field(blocks[1], "Will-Retry-Until"));
	expect_field(blocks[2], "Final-Recipient", "rfc822; carol@partner.example");
	expect_field(blocks[2], "Status", "5.0.0");
	expect_field(blocks[2], "Diagnostic-Code",
		     "X-Dialmail; message expired after 5 days in the queue");
	assert_null(field(blocks[2], "Remote-MTA"));
	assert_null(field(blocks[2], "Original-Recipient"));
	assert_null(field(blocks[2], "Last-Attempt-Date"));

	/* the original's headers, exactly, and not its body */
	expect_field(rep.part[2].headers, "Content-Type", "text/rfc822-headers");
	assert_int_equal(strncmp(rep.part[2].body, original, strlen(rep.part[2].body)), 0);
	assert_int_equal(strlen(rep.part[2].body), strstr(original, "\r\n\r\n") + 2 - original);
	assert_null(strstr(msg.data, "the figures are attached"));
	python_check(&msg, "failed,failed");
	for (int i = 0; i < n; i++)
		free(blocks[i]);
	free_report(&rep);
	buf_free(&msg);
}

static void test_delay_warning(void **state)
{
	const struct dsn_rcpt rcpt[] = {{.addr = "bob@partner.example",
					 .action = DSN_ACTION_DELAYED,
					 .remote_mta = "mx1.partner.example",
					 .diagnostic = "451 4.3.0 mailbox temporarily unavailable",
					 .last_attempt = T0 + 3600,
					 .retry_until = T0 + 5 * 86400}};
	const struct dsn_report r = {.reporting_mta = "branch.example",
				     .to = "alice@branch.example",
				     .sender = "alice@branch.example",
				     .qid = "q1",
				     .arrival = T0,
				     .now = T0 + 4 * 3600,
				     .message_id = "<fixed@branch.example>",
				     .ret_full = 1, /* applies to failures only */
				     .content = original,
				     .content_len = strlen(original),
				     .rcpt = rcpt,
				     .nrcpt = 1};
	struct buf msg = BUF_INIT;
	struct report rep;
	char *blocks[4], date[64];

	dsn_build(&r, &msg);
	parse_report(msg.data, msg.len, &rep);
	expect_field(rep.headers, "Subject", "Delayed Mail (still being retried)");
	expect_field(rep.headers, "Message-ID", "<fixed@branch.example>");
	assert_non_null(strstr(rep.part[0].body, "WARNING ONLY"));
	assert_int_equal(status_blocks(rep.part[1].body, blocks, 4), 2);
	expect_field(blocks[1], "Action", "delayed");
	expect_field(blocks[1], "Status", "4.3.0");
	clock_rfc5322(T0 + 5 * 86400, date, sizeof(date));
	expect_field(blocks[1], "Will-Retry-Until", date);
	assert_null(field(blocks[0], "Original-Envelope-Id"));
	expect_field(rep.part[2].headers, "Content-Type", "text/rfc822-headers");
	python_check(&msg, "delayed");
	free(blocks[0]);
	free(blocks[1]);
	free_report(&rep);
	buf_free(&msg);
}

/* RET=FULL: the whole original comes back, 8-bit included, labelled so. */
static void test_ret_full(void **state)
{
	static const char eight[] = "From: a@b.example\r\nSubject: caf\xc3\xa9\r\n\r\n"
				    "Gr\xc3\xbc\xc3\x9f"
				    "e\r\n.leading dot\r\n";
	const struct dsn_rcpt rcpt[] = {
	    {.addr = "bob@partner.example", .action = DSN_ACTION_FAILED, .status = "5.3.4"}};
	const struct dsn_report r = {.reporting_mta = "branch.example",
				     .to = "a@b.example",
				     .sender = "a@b.example",
				     .qid = "q2",
				     .now = T0,
				     .ret_full = 1,
				     .content = eight,
				     .content_len = strlen(eight),
				     .rcpt = rcpt,
				     .nrcpt = 1};
	struct buf msg = BUF_INIT;
	struct report rep;

	dsn_build(&r, &msg);
	parse_report(msg.data, msg.len, &rep);
	expect_field(rep.headers, "Content-Transfer-Encoding", "8bit");
	expect_field(rep.part[2].headers, "Content-Type", "message/rfc822");
	expect_field(rep.part[2].headers, "Content-Transfer-Encoding", "8bit");
	assert_string_equal(rep.part[2].body, eight);
	/* no Arrival-Date when the arrival time is unknown */
	assert_null(strstr(rep.part[1].body, "Arrival-Date"));
	assert_non_null(strstr(rep.part[1].body, "\r\nStatus: 5.3.4\r\n"));
	python_check(&msg, "failed");
	free_report(&rep);
	buf_free(&msg);
}

/* A hostile or huge remote reply cannot add header lines or break limits. */
static void test_hostile_diagnostic(void **state)
{
	struct buf diag = BUF_INIT, msg = BUF_INIT;
	struct dsn_rcpt rcpt = {.addr = "bob@partner.example", .action = DSN_ACTION_FAILED};
	struct dsn_report r = {.reporting_mta = "branch.example",
			       .to = "a@b.example",
			       .sender = "a@b.example",
			       .qid = "q3",
			       .now = T0,
			       .envid = "evil+0D+0AX-Injected:+20yes",
			       .content = original,
			       .content_len = strlen(original),
			       .rcpt = &rcpt,
			       .nrcpt = 1};
	struct report rep;

	buf_puts(&diag, "550 5.7.1 bad\r\nX-Injected: yes\r\n\r\n--x\t\x01\xff ");
	for (int i = 0; i < 3000; i++)
		buf_putc(&diag, 'A' + i % 26);
	rcpt.diagnostic = buf_cstr(&diag);
	rcpt.remote_mta = "mx.partner.example\r\nX-Injected: yes";
	dsn_build(&r, &msg);
	parse_report(msg.data, msg.len, &rep); /* checks CRLF and 998 */
	assert_null(strstr(msg.data, "\nX-Injected"));
	assert_non_null(strstr(rep.part[1].body, "Status: 5.7.1"));
	char *blocks[4];
	assert_int_equal(status_blocks(rep.part[1].body, blocks, 4), 2);
	char *dc = field(blocks[1], "Diagnostic-Code");
	assert_non_null(dc);
	assert_non_null(strstr(dc, "smtp; 550 5.7.1 bad X-Injected: yes --x ? ABCDEFG"));
	free(dc);
	expect_field(blocks[0], "Original-Envelope-Id", "evil X-Injected: yes");
	python_check(&msg, "failed");
	free(blocks[0]);
	free(blocks[1]);
	free_report(&rep);
	buf_free(&msg);
	buf_free(&diag);
}

/* The boundary never occurs inside a part, even when the original holds it. */
static void test_boundary_unique(void **state)
{
	struct buf content = BUF_INIT, msg = BUF_INIT;
	const struct dsn_rcpt rcpt = {.addr = "b@c.example", .action = DSN_ACTION_FAILED};
	struct dsn_report r = {.reporting_mta = "branch.example",
			       .to = "postmaster@branch.example",
			       .sender = "", /* a bounce that bounced */
			       .qid = "q4",
			       .now = T0,
			       .ret_full = 1,
			       .rcpt = &rcpt,
			       .nrcpt = 1};
	struct report rep;

	buf_puts(&content, "Subject: trap\r\n\r\n--q4.1700000000/branch.example\r\n"
			   "q4.1700000000/branch.example.1\r\n");
	r.content = content.data;
	r.content_len = content.len;
	dsn_build(&r, &msg);
	parse_report(msg.data, msg.len, &rep);
	assert_string_equal(rep.boundary, "q4.1700000000/branch.example.2");
	assert_string_equal(rep.part[2].body, content.data);
	expect_field(rep.headers, "To", "postmaster@branch.example");
	assert_non_null(strstr(rep.part[0].body, "its sender was <>"));
	python_check(&msg, "failed");
	free_report(&rep);
	buf_free(&msg);
	buf_free(&content);
}

/* An original with no body, or with bare LF (sendmail input gone wrong),
 * still gives a report with CRLF only. */
static void test_odd_originals(void **state)
{
	const struct dsn_rcpt rcpt = {.addr = "b@c.example", .action = DSN_ACTION_FAILED};
	static const char *const originals[] = {"Subject: only headers\r\n",
						"Subject: bare\nFrom: x@y\n\nbody\n", ""};
	struct dsn_report r = {.reporting_mta = "h.example",
			       .to = "a@b.example",
			       .sender = "a@b.example",
			       .qid = "q5",
			       .now = T0,
			       .rcpt = &rcpt,
			       .nrcpt = 1};

	for (size_t i = 0; i < 3; i++) {
		struct buf msg = BUF_INIT;
		struct report rep;
		r.content = originals[i];
		r.content_len = strlen(originals[i]);
		r.ret_full = (int)i == 1;
		dsn_build(&r, &msg);
		parse_report(msg.data, msg.len, &rep);
		if (i == 0)
			assert_string_equal(rep.part[2].body, "Subject: only headers\r\n");
		if (i == 1)
			assert_string_equal(rep.part[2].body,
					    "Subject: bare\r\nFrom: x@y\r\n\r\nbody\r\n");
		free_report(&rep);
		buf_free(&msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_notify_parse),
	    cmocka_unit_test(test_notify_wants),
	    cmocka_unit_test(test_xtext_orcpt_notify_format),
	    cmocka_unit_test(test_return_to),
	    cmocka_unit_test(test_status_codes),
	    cmocka_unit_test(test_bounce_structure),
	    cmocka_unit_test(test_delay_warning),
	    cmocka_unit_test(test_ret_full),
	    cmocka_unit_test(test_hostile_diagnostic),
	    cmocka_unit_test(test_boundary_unique),
	    cmocka_unit_test(test_odd_originals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
