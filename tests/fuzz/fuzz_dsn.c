/* Fuzzes what dialmail parses of DSNs (smtp/dsn.c, RFC 3461/3464): the
 * NOTIFY, ENVID (xtext) and ORCPT parameters a client sends, and the remote
 * server's reply text a report quotes (its enhanced status code). The input
 * is fields separated by LF: NOTIFY, ENVID, ORCPT, diagnostic, status,
 * remote MTA, sender, recipient, then the original message. Checks that a
 * NOTIFY value survives format and parse, and that a report built from
 * accepted parameters keeps its promise: CRLF line ends only, no line over
 * 998 octets (the original left out, since its lines are its own). */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lib/buf.h"
#include "lib/xmalloc.h"
#include "smtp/dsn.h"

#define NFIELDS 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	return 0;
}

static void check_notify(const char *value)
{
	unsigned bits, again;
	struct buf b = BUF_INIT;

	if (dsn_notify_parse(value, &bits) < 0)
		return;
	dsn_notify_format(bits, &b);
	if (bits != 0 && (dsn_notify_parse(buf_cstr(&b), &again) < 0 || again != bits))
		abort();
	buf_free(&b);
}

/* CRLF only, and no line longer than 998 octets before the CRLF. */
static void check_wire(const struct buf *b)
{
	size_t line = 0;

	for (size_t i = 0; i < b->len; i++) {
		char ch = b->data[i];

		if (ch == '\r' && (i + 1 == b->len || b->data[i + 1] != '\n'))
			abort();
		if (ch == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			abort();
		if (ch == '\n')
			line = 0;
		else if (ch != '\r' && ++line > 998)
			abort();
	}
}

static void build(const char *f[NFIELDS], const char *content, size_t content_len, int check)
{
	struct dsn_rcpt rc[2] = {
	    {f[7], dsn_orcpt_valid(f[2]) ? f[2] : NULL, DSN_ACTION_FAILED, *f[4] ? f[4] : NULL,
	     *f[5] ? f[5] : NULL, f[3], 1700000000, 0},
	    {"bob@example.org", NULL, DSN_ACTION_DELAYED, NULL, NULL, f[3], 0, 1700086400},
	};
	struct dsn_report r = {"mx.example.org",
			       "sender@example.net",
			       f[6],
			       "0123456789abcdef01230001",
			       dsn_xtext_valid(f[1], 100) ? f[1] : NULL,
			       1699990000,
			       1700000000,
			       NULL,
			       content_len & 1,
			       content,
			       content_len,
			       rc,
			       2};
	struct buf out = BUF_INIT;
	char status[DSN_STATUS_MAX];

	dsn_status(&rc[0], status);
	if (memchr(status, '\0', sizeof(status)) == NULL)
		abort();
	dsn_build(&r, &out);
	if (check)
		check_wire(&out);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = xmalloc(size + 1), *p = copy;
	const char *f[NFIELDS];
	size_t rest;

	memcpy(copy, data, size);
	copy[size] = '\0';
	for (int i = 0; i < NFIELDS; i++) {
		char *lf = memchr(p, '\n', (size_t)(copy + size - p));

		f[i] = p;
		if (lf) {
			*lf = '\0';
			p = lf + 1;
		} else
			p = copy + size;
	}
	rest = (size_t)(copy + size - p);
	check_notify(f[0]);
	dsn_xtext_valid(f[1], 100);
	dsn_orcpt_valid(f[2]);
	for (int a = DSN_ACTION_FAILED; a <= DSN_ACTION_EXPANDED; a++)
		dsn_due(f[6], f[7], 0, (enum dsn_action)a, "postmaster@example.org");
	build(f, "", 0, 1);
	build(f, p, rest, 0);
	free(copy);
	return 0;
}
