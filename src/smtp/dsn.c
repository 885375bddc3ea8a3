/* RFC 3464 delivery status notifications: the rules that decide whether one
 * is due, and the report message. Invariant: what dsn_build writes (apart
 * from the returned original) is US-ASCII with CRLF line ends and lines of at
 * most 78 octets where a space allows, never more than 998; untrusted text
 * (remote replies, ENVID, ORCPT) is cleaned of control characters first. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/clock.h"
#include "queue/queue.h"
#include "smtp/dsn.h"

/* The queue stores NOTIFY with its own names for the same bits. */
_Static_assert(DSN_NOTIFY_SUCCESS == Q_NOTIFY_SUCCESS && DSN_NOTIFY_FAILURE == Q_NOTIFY_FAILURE &&
		   DSN_NOTIFY_DELAY == Q_NOTIFY_DELAY && DSN_NOTIFY_NEVER == Q_NOTIFY_NEVER,
	       "NOTIFY bits differ between queue.h and dsn.h");

#define DSN_LINE_SOFT 78  /* fold or wrap here when a space allows */
#define DSN_LINE_HARD 900 /* break here even without a space (limit: 998) */

static const char *const action_names[] = {"failed", "delayed", "delivered", "relayed", "expanded"};

const char *dsn_action_name(enum dsn_action a)
{
	return action_names[a];
}

/* --- rules -------------------------------------------------------------- */

int dsn_notify_parse(const char *value, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned bit;
	} words[] = {{"SUCCESS", DSN_NOTIFY_SUCCESS},
		     {"FAILURE", DSN_NOTIFY_FAILURE},
		     {"DELAY", DSN_NOTIFY_DELAY},
		     {"NEVER", DSN_NOTIFY_NEVER}};
	unsigned set = 0;
	const char *p = value;

	while (*p) {
		size_t n = strcspn(p, ","), i;
		for (i = 0; i < 4; i++)
			if (strlen(words[i].name) == n && strncasecmp(p, words[i].name, n) == 0)
				break;
		if (i == 4 || (set & words[i].bit))
			return -1;
		set |= words[i].bit;
		p += n;
		if (*p == ',' && *++p == '\0')
			return -1;
	}
	if (set == 0 || ((set & DSN_NOTIFY_NEVER) && set != DSN_NOTIFY_NEVER))
		return -1;
	*out = set;
	return 0;
}

void dsn_notify_format(unsigned notify, struct buf *out)
{
	static const char *const names[] = {"SUCCESS", "FAILURE", "DELAY", "NEVER"};
	int first = 1;

	for (unsigned b = 0; b < 4; b++)
		if (notify & (1u << b)) {
			buf_printf(out, "%s%s", first ? "" : ",", names[b]);
			first = 0;
		}
}

static int dsn_xchar_ok(unsigned char c)
{
	return c >= '!' && c <= '~' && c != '=' && c != '+';
}

static int dsn_hexup(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int dsn_xtext_valid(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			if (!dsn_hexup(s[i + 1]) || !dsn_hexup(s[i + 2]))
				return 0;
			i += 2;
		} else if (!dsn_xchar_ok((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

int dsn_orcpt_valid(const char *s)
{
	const char *semi = strchr(s, ';');

	if (semi == NULL || semi == s || strlen(s) > 500)
		return 0;
	for (const char *p = s; p < semi; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-/=?^_`{|}~", *p))
			return 0;
	return dsn_xtext_valid(semi + 1, 500);
}

int dsn_notify_wants(unsigned notify, enum dsn_action action)
{
	if (notify == 0)
		notify = DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
	if (notify & DSN_NOTIFY_NEVER)
		return 0;
	switch (action) {
	case DSN_ACTION_FAILED:
		return (notify & DSN_NOTIFY_FAILURE) != 0;
	case DSN_ACTION_DELAYED:
		return (notify & DSN_NOTIFY_DELAY) != 0;
	default:
		return (notify & DSN_NOTIFY_SUCCESS) != 0;
	}
}

const char *dsn_return_to(const char *sender, const char *rcpt, enum dsn_action action,
			  const char *postmaster)
{
	if (sender && *sender)
		return sender;
	if (action != DSN_ACTION_FAILED || postmaster == NULL || *postmaster == '\0')
		return NULL;
	if (rcpt && strcasecmp(rcpt, postmaster) == 0)
		return NULL;
	return postmaster;
}

int dsn_due(const char *sender, const char *rcpt, unsigned notify, enum dsn_action action,
	    const char *postmaster)
{
	return dsn_notify_wants(notify, action) &&
	       dsn_return_to(sender, rcpt, action, postmaster) != NULL;
}

/* --- status codes ------------------------------------------------------- */

/* Length of an enhanced status code "c.s.d" at s (class 2, 4 or 5), or 0. */
static size_t dsn_code_len(const char *s)
{
	size_t n = 1, digits;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	for (int part = 0; part < 2; part++) {
		if (s[n++] != '.')
			return 0;
		digits = strspn(s + n, "0123456789");
		if (digits < 1 || digits > 3)
			return 0;
		n += digits;
	}
	return s[n] == '\0' || s[n] == ' ' || s[n] == '\t' ? n : 0;
}

/* 1 if s starts with an SMTP reply code "ddd" followed by end, ' ' or '-'. */
static int dsn_is_reply(const char *s)
{
	return s && strspn(s, "0123456789") == 3 && (s[3] == '\0' || s[3] == ' ' || s[3] == '-');
}

void dsn_status(const struct dsn_rcpt *rc, char out[DSN_STATUS_MAX])
{
	static const char *const defaults[] = {"5.0.0", "4.0.0", "2.0.0", "2.0.0", "2.0.0"};
	const char *d = rc->diagnostic, *code = d;
	size_t n;

	if (rc->status && (n = dsn_code_len(rc->status)) > 0 && n < DSN_STATUS_MAX) {
		memcpy(out, rc->status, n);
		out[n] = '\0';
		return;
	}
	if (dsn_is_reply(d))
		code = d + 3 + (d[3] != '\0');
	if (code && (n = dsn_code_len(code)) > 0) {
		memcpy(out, code, n);
		out[n] = '\0';
	} else if (dsn_is_reply(d) && (d[0] == '2' || d[0] == '4' || d[0] == '5'))
		snprintf(out, DSN_STATUS_MAX, "%c.0.0", d[0]);
	else
		snprintf(out, DSN_STATUS_MAX, "%s", defaults[rc->action]);
}

/* --- text helpers --------------------------------------------------------- */

/* Untrusted text as one line of printable ASCII: controls (CR, LF, TAB...)
 * become a space, runs of spaces one, 8-bit octets '?'. */
static void dsn_clean(struct buf *out, const char *s, size_t len)
{
	int space = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			space = out->len > 0;
			continue;
		}
		if (space)
			buf_putc(out, ' ');
		space = 0;
		buf_putc(out, c >= 0x80 ? '?' : (char)c);
	}
}

/* RFC 3461 xtext: "+HH" is the octet HH. Returns 0, or -1 if malformed. */
static int dsn_xtext_decode(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s != '+') {
			buf_putc(out, *s);
			continue;
		}
		if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
			return -1;
		char hex[3] = {s[1], s[2], '\0'};
		buf_putc(out, (char)strtol(hex, NULL, 16));
		s += 2;
	}
	return 0;
}

/* Where to break text of length len so the line stays within room: at the
 * last space within room, else hard at room (a long word). */
static size_t dsn_break(const char *text, size_t len, size_t room, size_t hard)
{
	size_t i;

	if (len <= room)
		return len;
	for (i = room; i > 0; i--)
		if (text[i] == ' ')
			return i;
	for (i = room; i < len && i < hard; i++)
		if (text[i] == ' ')
			return i;
	return i;
}

/* "Name: value" folded at spaces (RFC 5322 2.2.3); value is cleaned. */
static void dsn_field(struct buf *out, const char *name, const char *value)
{
	struct buf v = BUF_INIT;
	const char *p;
	size_t left, col = strlen(name) + 2, n;

	dsn_clean(&v, value, strlen(value));
	buf_printf(out, "%s: ", name);
	for (p = buf_cstr(&v), left = v.len; left > 0; p += n, left -= n) {
		n = dsn_break(p, left, col < DSN_LINE_SOFT ? DSN_LINE_SOFT - col : 1,
			      DSN_LINE_HARD);
		buf_append(out, p, n);
		if (n < left) {
			/* the folded line starts with the space at p[n], or one we add */
			buf_puts(out, p[n] == ' ' ? "\r\n" : "\r\n ");
			col = p[n] != ' ';
		}
	}
	buf_puts(out, "\r\n");
	buf_free(&v);
}

/* Body text wrapped at spaces, each continuation line indented by indent. */
static void dsn_wrap(struct buf *out, const char *text, int indent)
{
	size_t left = strlen(text), n, width = DSN_LINE_SOFT;
	const char *p = text;

	while (left > 0) {
		n = dsn_break(p, left, width, DSN_LINE_HARD);
		buf_append(out, p, n);
		buf_puts(out, "\r\n");
		p += n;
		left -= n;
		while (left > 0 && *p == ' ') {
			p++;
			left--;
		}
		if (left > 0)
			buf_printf(out, "%*s", indent, "");
		width = DSN_LINE_SOFT - (size_t)indent;
	}
}

static void dsn_date_field(struct buf *out, const char *name, time_t t)
{
	char date[64];

	clock_rfc5322(t, date, sizeof(date));
	buf_printf(out, "%s: %s\r\n", name, date);
}

/* Appends data with every line end made CRLF (bare LF or CR too), ending
 * with CRLF. */
static void dsn_append_crlf(struct buf *out, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\r' || data[i] == '\n') {
			buf_puts(out, "\r\n");
			i += data[i] == '\r' && i + 1 < len && data[i + 1] == '\n';
		} else
			buf_putc(out, data[i]);
	}
	if (out->len >= 2 && memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
		buf_puts(out, "\r\n");
}

/* --- the parts ------------------------------------------------------------ */

static int dsn_any(const struct dsn_report *r, enum dsn_action a)
{
	for (size_t i = 0; i < r->nrcpt; i++)
		if (r->rcpt[i].action == a)
			return 1;
	return 0;
}

static const char *dsn_subject(const struct dsn_report *r)
{
	if (dsn_any(r, DSN_ACTION_FAILED))
		return "Undelivered Mail Returned to Sender";
	if (dsn_any(r, DSN_ACTION_DELAYED))
		return "Delayed Mail (still being retried)";
	return "Successful Mail Delivery Report";
}

static void dsn_text_intro(const struct dsn_report *r, struct buf *out)
{
	buf_printf(out, "This is the mail system at host %s.\r\n\r\n", r->reporting_mta);
	if (r->sender == NULL || r->sender[0] == '\0')
		dsn_wrap(out,
			 "The message below was itself a delivery report (its sender was <>), "
			 "so this report about it goes to the postmaster, not back to a sender.",
			 0);
	else if (dsn_any(r, DSN_ACTION_FAILED))
		dsn_wrap(out,
			 "I'm sorry to have to inform you that your message could not be "
			 "delivered to one or more recipients. Its headers are attached below.",
			 0);
	else if (dsn_any(r, DSN_ACTION_DELAYED))
		dsn_wrap(out,
			 "THIS IS A WARNING ONLY; YOU DO NOT NEED TO RESEND YOUR MESSAGE. It "
			 "could not be delivered yet to the recipients below and is still being "
			 "retried.",
			 0);
	else
		dsn_wrap(out, "Your message was delivered to the recipients below.", 0);
	buf_puts(out, "\r\n");
}

static void dsn_text_rcpt(const struct dsn_rcpt *rc, struct buf *out)
{
	struct buf line = BUF_INIT;
	char date[64];

	buf_puts(&line, "<");
	dsn_clean(&line, rc->addr, strlen(rc->addr));
	buf_printf(&line, ">: %s", dsn_action_name(rc->action));
	if (rc->action == DSN_ACTION_DELAYED && rc->retry_until) {
		clock_rfc5322(rc->retry_until, date, sizeof(date));
		buf_printf(&line, ", will be retried until %s", date);
	}
	if (rc->remote_mta) {
		buf_puts(&line, "; host ");
		dsn_clean(&line, rc->remote_mta, strlen(rc->remote_mta));
		buf_puts(&line, " said");
	}
	if (rc->diagnostic) {
		buf_puts(&line, ": ");
		dsn_clean(&line, rc->diagnostic, strlen(rc->diagnostic));
	}
	dsn_wrap(out, buf_cstr(&line), 4);
	buf_puts(out, "\r\n");
	buf_free(&line);
}

static void dsn_part_text(const struct dsn_report *r, struct buf *out)
{
	buf_puts(out, "Content-Type: text/plain; charset=us-ascii\r\n"
		      "Content-Description: Notification\r\n\r\n");
	dsn_text_intro(r, out);
	for (size_t i = 0; i < r->nrcpt; i++)
		dsn_text_rcpt(&r->rcpt[i], out);
	buf_printf(out, "-- \r\nThe mail system at %s\r\n", r->reporting_mta);
}

/* "type;xtext" from ORCPT / ENVID as a cleaned, decoded value, or -1. */
static int dsn_decoded(struct buf *out, const char *xtext)
{
	struct buf raw = BUF_INIT;
	int rc = dsn_xtext_decode(&raw, xtext);

	if (rc == 0)
		dsn_clean(out, raw.data ? raw.data : "", raw.len);
	buf_free(&raw);
	return rc;
}

static void dsn_orcpt_field(struct buf *out, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	struct buf v = BUF_INIT;

	if (semi == NULL || semi == orcpt)
		return;
	buf_append(&v, orcpt, (size_t)(semi - orcpt));
	buf_puts(&v, "; ");
	if (dsn_decoded(&v, semi + 1) == 0)
		dsn_field(out, "Original-Recipient", buf_cstr(&v));
	buf_free(&v);
}

static void dsn_status_rcpt(const struct dsn_rcpt *rc, struct buf *out)
{
	char status[DSN_STATUS_MAX];
	struct buf v = BUF_INIT;

	buf_puts(out, "\r\n");
	if (rc->orcpt)
		dsn_orcpt_field(out, rc->orcpt);
	buf_printf(&v, "rfc822; %s", rc->addr);
	dsn_field(out, "Final-Recipient", buf_cstr(&v));
	buf_printf(out, "Action: %s\r\n", dsn_action_name(rc->action));
	dsn_status(rc, status);
	buf_printf(out, "Status: %s\r\n", status);
	buf_reset(&v);
	if (rc->remote_mta) {
		buf_printf(&v, "dns; %s", rc->remote_mta);
		dsn_field(out, "Remote-MTA", buf_cstr(&v));
	}
	buf_reset(&v);
	if (rc->diagnostic) {
		buf_printf(&v, "%s; %s", dsn_is_reply(rc->diagnostic) ? "smtp" : "X-Dialmail",
			   rc->diagnostic);
		dsn_field(out, "Diagnostic-Code", buf_cstr(&v));
	}
	if (rc->last_attempt)
		dsn_date_field(out, "Last-Attempt-Date", rc->last_attempt);
	if (rc->action == DSN_ACTION_DELAYED && rc->retry_until)
		dsn_date_field(out, "Will-Retry-Until", rc->retry_until);
	buf_free(&v);
}

static void dsn_part_status(const struct dsn_report *r, struct buf *out)
{
	struct buf v = BUF_INIT;

	buf_puts(out, "Content-Type: message/delivery-status\r\n"
		      "Content-Description: Delivery report\r\n\r\n");
	buf_printf(&v, "dns; %s", r->reporting_mta);
	dsn_field(out, "Reporting-MTA", buf_cstr(&v));
	dsn_field(out, "X-Dialmail-Queue-ID", r->qid ? r->qid : "");
	buf_reset(&v);
	if (r->envid && dsn_decoded(&v, r->envid) == 0 && v.len > 0)
		dsn_field(out, "Original-Envelope-Id", buf_cstr(&v));
	if (r->arrival)
		dsn_date_field(out, "Arrival-Date", r->arrival);
	for (size_t i = 0; i < r->nrcpt; i++)
		dsn_status_rcpt(&r->rcpt[i], out);
	buf_free(&v);
}

/* Length of the header section of a wire-form message (up to and including
 * the CRLF before the empty line). */
static size_t dsn_header_len(const char *data, size_t len)
{
	if (len >= 2 && data[0] == '\r' && data[1] == '\n')
		return 0;
	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(data + i, "\r\n\r\n", 4) == 0)
			return i + 2;
	return len;
}

static int dsn_has_8bit(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)data[i] >= 0x80)
			return 1;
	return 0;
}

/* The returned original: whole (RET=FULL and a failure) or its headers. */
static int dsn_part_original(const struct dsn_report *r, struct buf *out)
{
	int full = r->ret_full && dsn_any(r, DSN_ACTION_FAILED);
	const char *data = r->content ? r->content : "";
	size_t len = full ? r->content_len : dsn_header_len(data, r->content_len);
	int eight = dsn_has_8bit(data, len);

	buf_printf(out, "Content-Type: %s\r\nContent-Description: %s\r\n%s\r\n",
		   full ? "message/rfc822" : "text/rfc822-headers",
		   full				   ? "Undelivered Message"
		   : dsn_any(r, DSN_ACTION_FAILED) ? "Undelivered Message Headers"
						   : "Message Headers",
		   eight ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	dsn_append_crlf(out, data, len);
	return eight;
}

/* A boundary that occurs in none of the parts. */
static void dsn_boundary(const struct dsn_report *r, struct buf *parts, size_t n, struct buf *out)
{
	for (unsigned k = 0;; k++) {
		int clash = 0;
		buf_reset(out);
		buf_printf(out, "%s.%lld/%s", r->qid ? r->qid : "dsn", (long long)r->now,
			   r->reporting_mta);
		if (k)
			buf_printf(out, ".%u", k);
		for (size_t i = 0; i < n && !clash; i++)
			clash = memmem(parts[i].data ? parts[i].data : "", parts[i].len, out->data,
				       out->len) != NULL;
		if (!clash)
			return;
	}
}

static void dsn_headers(const struct dsn_report *r, const char *boundary, int eight,
			struct buf *out)
{
	struct buf from = BUF_INIT;

	buf_printf(&from, "Mail Delivery System <MAILER-DAEMON@%s>", r->reporting_mta);
	dsn_field(out, "From", buf_cstr(&from));
	buf_free(&from);
	dsn_field(out, "To", r->to ? r->to : "");
	dsn_field(out, "Subject", dsn_subject(r));
	buf_puts(out, "Auto-Submitted: auto-replied\r\n");
	if (r->message_id)
		dsn_field(out, "Message-ID", r->message_id);
	else
		buf_printf(out, "Message-ID: <%s.%lld.dsn@%s>\r\n", r->qid ? r->qid : "dsn",
			   (long long)clock_usec(), r->reporting_mta);
	dsn_date_field(out, "Date", r->now ? r->now : clock_now());
	buf_printf(out,
		   "MIME-Version: 1.0\r\n"
		   "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		   "\tboundary=\"%s\"\r\n",
		   boundary);
	if (eight)
		buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(out, "\r\n");
}

void dsn_build(const struct dsn_report *r, struct buf *out)
{
	struct buf parts[3] = {BUF_INIT, BUF_INIT, BUF_INIT}, boundary = BUF_INIT;
	int eight;

	dsn_part_text(r, &parts[0]);
	dsn_part_status(r, &parts[1]);
	eight = dsn_part_original(r, &parts[2]);
	dsn_boundary(r, parts, 3, &boundary);
	dsn_headers(r, buf_cstr(&boundary), eight, out);
	buf_puts(out, "This is a MIME-encapsulated message.\r\n");
	for (size_t i = 0; i < 3; i++) {
		buf_printf(out, "\r\n--%s\r\n", buf_cstr(&boundary));
		buf_append(out, parts[i].data, parts[i].len);
		buf_free(&parts[i]);
	}
	buf_printf(out, "\r\n--%s--\r\n", buf_cstr(&boundary));
	buf_free(&boundary);
}
