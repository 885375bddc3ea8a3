/* Message text helpers: the Received: trace header, header lookup with
 * unfolding, Message-ID generation. Pure functions on memory, no I/O; every
 * header written here ends its lines with CRLF (wire form). */
#include <string.h>
#include <strings.h>

#include "lib/clock.h"
#include "lib/xmalloc.h"
#include "mail/message.h"

void msg_received(struct buf *out, const char *helo, const char *client_addr, const char *by_host,
		  const char *proto, const char *qid, const char *for_rcpt, time_t when)
{
	char date[64];

	clock_rfc5322(when, date, sizeof(date));
	buf_printf(out, "Received: from %s", helo ? helo : client_addr ? client_addr : "unknown");
	if (client_addr)
		buf_printf(out, " (client [%s])", client_addr);
	buf_printf(out, "\r\n\tby %s (dialmail) with %s", by_host, proto ? proto : "SMTP");
	if (qid)
		buf_printf(out, " id %s", qid);
	if (for_rcpt)
		buf_printf(out, "\r\n\tfor <%s>", for_rcpt);
	buf_printf(out, "; %s\r\n", date);
}

/* Length of the line at p (up to and excluding its LF or CRLF), and where the
 * next line starts. */
static size_t msg_line(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	size_t n;

	if (lf == NULL) {
		*next = end;
		return (size_t)(end - p);
	}
	*next = lf + 1;
	n = (size_t)(lf - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

/* 1 if the header line p[0..n) is the field name followed by optional
 * blanks and a colon; *val is set just past the colon. */
static int msg_line_is_field(const char *p, size_t n, const char *name, size_t *val)
{
	size_t nl = strlen(name), i;

	if (n < nl + 1 || strncasecmp(p, name, nl) != 0)
		return 0;
	for (i = nl; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	if (i >= n || p[i] != ':')
		return 0;
	*val = i + 1;
	return 1;
}

/* Appends the unfolded field value, trimming surrounding blanks at the end. */
static char *msg_value_finish(struct buf *v)
{
	size_t s = 0;
	char *r;

	while (v->len > 0 && (v->data[v->len - 1] == ' ' || v->data[v->len - 1] == '\t'))
		v->data[--v->len] = '\0';
	while (s < v->len && (v->data[s] == ' ' || v->data[s] == '\t'))
		s++;
	r = xstrndup(v->data ? v->data + s : "", v->len - s);
	buf_free(v);
	return r;
}

char *msg_header_value(const char *data, size_t len, const char *name)
{
	const char *p = data, *end = data + len, *next;
	struct buf v = BUF_INIT;
	int in_field = 0;
	size_t n, off;

	while (p < end) {
		n = msg_line(p, end, &next);
		if (n == 0)
			break; /* the empty line ends the header section */
		if (in_field && (p[0] == ' ' || p[0] == '\t'))
			buf_append(&v, p, n);
		else if (in_field)
			break;
		else if (msg_line_is_field(p, n, name, &off)) {
			in_field = 1;
			buf_append(&v, p + off, n - off);
		}
		p = next;
	}
	if (!in_field)
		return NULL;
	return msg_value_finish(&v);
}

void msg_make_message_id(struct buf *out, const char *qid, const char *host)
{
	buf_printf(out, "<%s@%s>", qid, host);
}
