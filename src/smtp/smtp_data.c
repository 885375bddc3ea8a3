/* Message content as it arrives (see smtp_data.h). The scanner works on
 * whole lines: memchr finds each line's LF, NUL and stray CR are looked for
 * with memchr over the line, and content leaves in runs as long as the
 * input allows (split only where a stuffed dot is dropped), so no octet is
 * copied or tested one at a time. Raw bytes, never C strings: a bare CR or
 * LF can never end a line. */
#include <errno.h>
#include <string.h>

#include "smtp/smtp_data.h"

#define SMTP_TEXT_MAX 1000		     /* text line, CRLF included (RFC 5321 4.5.3.1.6) */
#define DATA_KEEP_BUF (DATA_RX_SPILL + 4096) /* larger buffers are freed, not kept */

static void data_bad(struct data_rx *d, enum data_bad why)
{
	if (d->bad == DB_NONE)
		d->bad = why;
}

int data_rx_ok(const struct data_rx *d)
{
	return d->bad == DB_NONE && d->err == 0 && d->size <= d->max;
}

/* Past DATA_RX_SPILL: the owner opens the stream (and writes what goes
 * before the content), the content so far follows, memory is given back. */
static void data_spill(struct data_rx *d)
{
	errno = 0;
	if (d->spill(d, d->spill_arg) < 0 || d->stream == NULL) {
		d->err = errno ? errno : EIO;
		return;
	}
	if (queue_stream_write(d->stream, d->content.data, d->content.len) < 0)
		d->err = errno;
	buf_free(&d->content);
}

/* Content octets out: counted always, kept while the message can still be
 * queued. */
static void data_emit(struct data_rx *d, const char *p, size_t n)
{
	if (n == 0)
		return;
	d->size += n;
	d->last = p[n - 1];
	if (!data_rx_ok(d))
		return;
	if (d->stream != NULL) {
		if (queue_stream_write(d->stream, p, n) < 0)
			d->err = errno;
		return;
	}
	buf_append(&d->content, p, n);
	if (d->content.len >= (d->spill_at ? d->spill_at : DATA_RX_SPILL) && d->spill != NULL)
		data_spill(d);
}

/* The octet after a CR: LF ends the line (one of at most SMTP_TEXT_MAX
 * octets), anything else makes the CR a bare one. */
static void data_after_cr(struct data_rx *d, char c)
{
	if (c != '\n') {
		data_bad(d, DB_BARE_CRLF);
		d->scan = DS_MID;
		return;
	}
	if (++d->line_len > SMTP_TEXT_MAX)
		data_bad(d, DB_LONG_LINE);
	d->line_len = 0;
	d->scan = DS_BOL;
}

/* Inside a line: consumes through its LF (then DS_BOL) or to the end of
 * the input (DS_MID, or DS_CR when the input ends with the line's CR). */
static const char *data_line(struct data_rx *d, const char *q, const char *end)
{
	const char *lf = memchr(q, '\n', (size_t)(end - q));
	const char *stop = lf ? lf : end;
	size_t len = (size_t)(stop - q);

	if (d->bad == DB_NONE && len > 0) {
		if (memchr(q, '\0', len))
			data_bad(d, DB_NUL);
		if (len > 1 && memchr(q, '\r', len - 1))
			data_bad(d, DB_BARE_CRLF);
	}
	d->line_len += len;
	if (lf == NULL) {
		if (d->line_len > SMTP_TEXT_MAX)
			data_bad(d, DB_LONG_LINE);
		d->scan = len > 0 && stop[-1] == '\r' ? DS_CR : DS_MID;
		return end;
	}
	if (len > 0 && stop[-1] == '\r') { /* CRLF */
		if (d->line_len + 1 > SMTP_TEXT_MAX)
			data_bad(d, DB_LONG_LINE);
		d->line_len = 0;
		d->scan = DS_BOL;
	} else { /* a bare LF: only CRLF leads to the beginning of a line */
		data_bad(d, DB_BARE_CRLF);
		d->line_len++;
		d->scan = DS_MID;
	}
	return lf + 1;
}

void data_rx_begin(struct data_rx *d, uint64_t max, int bdat)
{
	data_rx_reset(d);
	d->scan = bdat ? DS_MID : DS_BOL;
	d->bad = DB_NONE;
	d->line_len = 0;
	d->size = 0;
	d->max = max;
	d->err = 0;
	d->last = '\0';
}

/* One step at the start of a line, where a dot may be stuffed or begin
 * the end mark. Returns the new position; *run is where unsent content
 * begins (a dropped octet moves it); *done on the end mark. */
static const char *data_bol(struct data_rx *d, const char *q, const char **run, int *done)
{
	switch (d->scan) {
	case DS_BOL:
		if (*q != '.')
			break;
		data_emit(d, *run, (size_t)(q - *run));
		d->line_len = 1;
		d->scan = DS_DOT;
		*run = q + 1; /* the stuffed dot is dropped */
		return q + 1;
	case DS_DOT:
		if (*q != '\r')
			break;
		data_emit(d, *run, (size_t)(q - *run));
		d->line_len = 2;
		d->scan = DS_DOT_CR;
		*run = q + 1; /* held back: the end mark, or a bare CR */
		return q + 1;
	case DS_DOT_CR:
		if (*q == '\n') {
			*done = 1;
			return q + 1;
		}
		data_bad(d, DB_BARE_CRLF);
		break;
	case DS_CR:
		data_after_cr(d, *q);
		return *q == '\n' ? q + 1 : q;
	case DS_MID:
		break;
	}
	d->scan = DS_MID;
	return q;
}

size_t data_rx_scan(struct data_rx *d, const void *buf, size_t n, int *done)
{
	const char *p = buf, *end = p + n, *q = p, *run = p;

	*done = 0;
	while (q < end && !*done)
		q = d->scan == DS_MID ? data_line(d, q, end) : data_bol(d, q, &run, done);
	if (!*done)
		data_emit(d, run, (size_t)(q - run));
	return (size_t)(q - p);
}

void data_rx_chunk(struct data_rx *d, const void *buf, size_t n)
{
	const char *p = buf, *end = p + n, *q = p;

	while (q < end && d->bad == DB_NONE) {
		if (d->scan == DS_CR) {
			data_after_cr(d, *q);
			q += *q == '\n';
		} else
			q = data_line(d, q, end);
		if (d->scan == DS_BOL)
			d->scan = DS_MID; /* no dots to unstuff in BDAT */
	}
	data_emit(d, p, n);
}

void data_rx_last(struct data_rx *d)
{
	if (d->scan == DS_CR)
		data_bad(d, DB_BARE_CRLF);
	if (d->size > 0 && d->last != '\n')
		data_emit(d, "\r\n", 2);
}

void data_rx_reset(struct data_rx *d)
{
	queue_stream_abort(d->stream);
	d->stream = NULL;
	if (d->content.cap > DATA_KEEP_BUF)
		buf_free(&d->content);
	else
		buf_reset(&d->content);
}

void data_rx_free(struct data_rx *d)
{
	data_rx_reset(d);
	buf_free(&d->content);
}
