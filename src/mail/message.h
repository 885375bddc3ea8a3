/* Message text helpers shared by the SMTP server and the sendmail interface:
 * trace headers, header lookup. No I/O. */
#ifndef MAIL_MESSAGE_H
#define MAIL_MESSAGE_H
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

/* Appends a Received: header (CRLF line ends, folded). client_host may be NULL. */
void msg_received(struct buf *out, const char *helo, const char *client_addr, const char *by_host,
		  const char *proto, const char *qid, const char *for_rcpt, time_t when);
/* Finds header name (case-insensitive) in the header section of a wire-form
 * message; returns its unfolded value (caller frees) or NULL. */
char *msg_header_value(const char *data, size_t len, const char *name);
/* Generates "<qid@host>" into out. */
void msg_make_message_id(struct buf *out, const char *qid, const char *host);

#endif
