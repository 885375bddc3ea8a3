/* Delivery status notifications (RFC 3464 / 3461 / 3463): whether one is due
 * for a recipient, to whom it goes, and the report message itself
 * (multipart/report; report-type=delivery-status) in wire form. No I/O. */
#ifndef SMTP_DSN_H
#define SMTP_DSN_H
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

enum dsn_action {
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,
	DSN_ACTION_EXPANDED
};

/* NOTIFY (RFC 3461 4.1) as a bit set; 0 = not given, which means
 * FAILURE,DELAY. */
#define DSN_NOTIFY_SUCCESS 1u
#define DSN_NOTIFY_FAILURE 2u
#define DSN_NOTIFY_DELAY   4u
#define DSN_NOTIFY_NEVER   8u

#define DSN_STATUS_MAX 16 /* "5.123.123" and NUL, with room */

/* Parses a NOTIFY value ("NEVER" or a comma list of SUCCESS, FAILURE,
 * DELAY; case-insensitive). 0, or -1 if malformed (NEVER with others too). */
int dsn_notify_parse(const char *value, unsigned *out);
/* Appends the NOTIFY value for bits ("SUCCESS,FAILURE"); nothing for 0. */
void dsn_notify_format(unsigned notify, struct buf *out);
/* 1 if s is RFC 3461 xtext ('+' only as "+HH" with upper-case hex, other
 * octets '!'..'~' except '=') of 1..max characters. */
int dsn_xtext_valid(const char *s, size_t max);
/* 1 if s is an ORCPT value "addr-type;xtext": addr-type an atom, the
 * xtext valid and the whole at most 500 characters (RFC 3461 4.2). */
int dsn_orcpt_valid(const char *s);
/* 1 if NOTIFY asks for a report of this action. */
int dsn_notify_wants(unsigned notify, enum dsn_action action);
/* Who receives the report: the sender; for a null sender "" (the failed
 * message was itself a bounce) the postmaster, and only for a failure; NULL
 * when none is sent (a delay or success of a bounce, or the failed recipient
 * is the postmaster itself: a bounce of a double bounce is dropped). */
const char *dsn_return_to(const char *sender, const char *rcpt, enum dsn_action action,
			  const char *postmaster);
/* Both rules together: 1 if a report is due for this recipient. */
int dsn_due(const char *sender, const char *rcpt, unsigned notify, enum dsn_action action,
	    const char *postmaster);

struct dsn_rcpt {
	const char *addr;  /* Final-Recipient, "alice@example.org" */
	const char *orcpt; /* ORCPT parameter as received ("rfc822;a+40b"), or NULL */
	enum dsn_action action;
	const char *status;	/* "5.1.1"; NULL: taken from diagnostic, else from action */
	const char *remote_mta; /* host that gave the diagnostic, or NULL */
	const char *diagnostic; /* "550 5.1.1 no such user" (smtp) or our own text, or NULL */
	time_t last_attempt;	/* 0: no Last-Attempt-Date */
	time_t retry_until;	/* Will-Retry-Until for delayed; 0: none */
};

struct dsn_report {
	const char *reporting_mta; /* our host name */
	const char *to;		   /* the report's recipient (dsn_return_to) */
	const char *sender;	   /* envelope sender of the original, "" for <> */
	const char *qid;	   /* queue id of the original */
	const char *envid;	   /* ENVID parameter as received (xtext), or NULL */
	time_t arrival;		   /* when the original was queued */
	time_t now;		   /* Date: of the report */
	const char *message_id;	   /* "<...>" for the report; NULL: generated */
	int ret_full;		   /* RET=FULL: a failure report returns the whole message */
	const char *content;	   /* the original in wire form (CRLF) */
	size_t content_len;
	const struct dsn_rcpt *rcpt;
	size_t nrcpt;
};

/* Appends the report message to out: headers (From: MAILER-DAEMON@host,
 * To:, Subject:, Auto-Submitted: auto-replied, ...), a text/plain part, a
 * message/delivery-status part, and the original's headers
 * (text/rfc822-headers) or, for RET=FULL and a failure, the whole original
 * (message/rfc822). CRLF line ends only; no line longer than 998 octets
 * except those of the original itself. To be sent with MAIL FROM:<>. */
void dsn_build(const struct dsn_report *r, struct buf *out);
/* The Status code used for rc: explicit, else the enhanced code of the
 * diagnostic, else the reply code's class, else the action's default. */
void dsn_status(const struct dsn_rcpt *rc, char out[DSN_STATUS_MAX]);
const char *dsn_action_name(enum dsn_action a); /* "failed", "delayed", ... */

#endif
