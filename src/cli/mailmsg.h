/* A message handed over by a local program (sendmail's stdin) and the header
 * work sendmail -t needs: address lists, recipient fields, Bcc removal.
 * Invariant: text produced here is wire form (CRLF line ends, dots as-is). */
#ifndef CLI_MAILMSG_H
#define CLI_MAILMSG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/buf.h"
#include "lib/strlist.h"

/* Reads a message from in (LF or CRLF line ends) into out with CRLF line
 * ends. With dot_ends, a line "." alone ends the input. A leading mbox
 * "From " line is dropped. Returns 0; 1 if the message is longer than max
 * bytes (0: no limit; the rest is read and dropped); -1 on a read error. */
int mailmsg_read(FILE *in, int dot_ends, uint64_t max, struct buf *out);

/* Splits a wire-form message: returns the length of the header section
 * (complete field lines only) and puts in *body the offset where the body
 * starts: after the empty line, or at the first line that is no field. */
size_t mailmsg_split(const char *msg, size_t len, size_t *body);

/* 1 if the header section hdr has a field called name (case-insensitive). */
int mailmsg_has_field(const char *hdr, size_t len, const char *name);
/* The unfolded, trimmed value of the first field called name, or NULL.
 * The caller frees it. */
char *mailmsg_field_value(const char *hdr, size_t len, const char *name);

/* Appends each address (addr-spec) of an RFC 5322 address list to out:
 * display names, comments, groups, quoted strings and source routes are
 * handled. Returns the number appended, or -1 if the list is malformed. */
int mailmsg_addrlist(const char *value, struct strlist *out);

/* sendmail -t: the addresses of the To, Cc and Bcc fields, or of the
 * Resent-To, Resent-Cc and Resent-Bcc fields when there are any. Returns the
 * number appended, or -1 with the offending field's name in *bad. */
int mailmsg_recipients(const char *hdr, size_t len, struct strlist *out, const char **bad);

/* Appends the header section hdr to out without its Bcc and Resent-Bcc
 * fields (continuation lines included). */
void mailmsg_strip_bcc(const char *hdr, size_t len, struct buf *out);

/* 1 if addr is "local@domain" with both parts non-empty, no unquoted
 * spaces or control characters, and balanced quotes. */
int mailmsg_addr_valid(const char *addr);

#endif
