/* Differential fuzzing of the message-content reader (smtp/smtp_data.c):
 * its line-at-a-time scanner against the plain one-octet-at-a-time state
 * machine below (the reader before it was rewritten for speed), over the
 * same input cut into chunks at places the input chooses. They must agree
 * on where the end mark is, whether the message is refused, and, for an
 * accepted message, on every content octet. The content spills to a real
 * queue stream after a few octets (spill_at), and an accepted message is
 * committed and read back through queue_load, so the streamed file's size
 * record and checksum are checked too.
 *
 * Input: byte 0 bit 0: BDAT (else DATA); bits 1-7: spill_at (0-127, 0 = in
 * memory only); byte 1: seed of the chunk sizes; byte 2: max_message_size
 * in units of 16 octets (0 = no limit); then the wire octets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lib/buf.h"
#include "queue/queue.h"
#include "smtp/smtp_data.h"

#define TEXT_MAX 1000

static struct queue *q;

/* The reference: one octet at a time, as RFC 5321 4.1.1.4 and 4.5.2 read. */
struct ref {
	enum data_scan scan;
	int bad;
	size_t line_len;
	struct buf content;
};

static void ref_put(struct ref *r, char c)
{
	buf_append(&r->content, &c, 1);
}

static int ref_data_octet(struct ref *r, unsigned char c)
{
	if (++r->line_len > TEXT_MAX || c == '\0')
		r->bad = 1;
	switch (r->scan) {
	case DS_BOL:
		if (c == '.') {
			r->scan = DS_DOT;
			return 0;
		}
		break;
	case DS_DOT:
		if (c == '\r') {
			r->scan = DS_DOT_CR;
			return 0;
		}
		break;
	case DS_DOT_CR:
		if (c == '\n')
			return 1;
		r->bad = 1;
		ref_put(r, '\r');
		break;
	case DS_CR:
		if (c == '\n') {
			ref_put(r, '\r');
			ref_put(r, '\n');
			r->scan = DS_BOL;
			r->line_len = 0;
			return 0;
		}
		r->bad = 1;
		ref_put(r, '\r');
		break;
	case DS_MID:
		break;
	}
	if (c == '\r') {
		r->scan = DS_CR;
		return 0;
	}
	if (c == '\n')
		r->bad = 1;
	ref_put(r, (char)c);
	r->scan = DS_MID;
	return 0;
}

static void ref_bdat_octet(struct ref *r, unsigned char c)
{
	if (++r->line_len > TEXT_MAX || c == '\0' || (r->scan == DS_CR) != (c == '\n'))
		r->bad = 1;
	if (c == '\n')
		r->line_len = 0;
	r->scan = c == '\r' ? DS_CR : DS_MID;
	ref_put(r, (char)c);
}

/* The spill callback: the stream starts with a marker the check strips. */
static int spill(struct data_rx *d, void *arg)
{
	struct q_env *env = arg;

	d->stream = queue_stream_open(q, env);
	return d->stream && queue_stream_write(d->stream, "X-Spilled: 1\r\n", 14) == 0 ? 0 : -1;
}

/* Commits what the reader kept and checks it reads back as expect. */
static void check_queued(struct data_rx *d, struct q_env *env, const struct buf *expect)
{
	struct q_batch *b = queue_batch_new(q);
	struct q_result res;
	struct q_env got = {0};
	struct buf content = BUF_INIT;
	size_t skip = d->stream ? 14 : 0;
	struct iovec iov = {d->content.data, d->content.len};
	int rc;

	if (d->stream) {
		rc = queue_batch_add_stream(b, d->stream, env);
		d->stream = NULL;
	} else
		rc = queue_batch_add(b, env, &iov, 1);
	if (rc != Q_OK || queue_batch_commit(b, &res) != 1)
		abort();
	if (queue_load(q, env->id, &got, &content) != Q_OK || got.size != content.len ||
	    content.len != expect->len + skip ||
	    (expect->len > 0 && memcmp(content.data + skip, expect->data, expect->len) != 0))
		abort();
	queue_remove(q, env->id);
	q_env_free(&got);
	buf_free(&content);
	queue_batch_free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_quiet();
	q = queue_open(fuzz_tmpdir());
	if (q == NULL)
		abort();
	return 0;
}

/* Feeds the input in chunks; returns the octets the reader consumed. */
static size_t feed(struct data_rx *d, int bdat, unsigned seed, const uint8_t *p, size_t n,
		   int *done)
{
	size_t off = 0;

	*done = 0;
	while (off < n && !*done) {
		size_t len;

		seed = seed * 1103515245u + 12345u;
		len = 1 + (seed >> 16) % 67;
		if (len > n - off)
			len = n - off;
		if (bdat)
			data_rx_chunk(d, p + off, len);
		else
			len = data_rx_scan(d, p + off, len, done);
		off += len;
	}
	if (bdat)
		data_rx_last(d);
	return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct data_rx d = {0};
	struct ref r = {0};
	struct q_env env = {0};
	int bdat, done, ref_done = 0;
	size_t used, ref_used = 0, max;

	if (size < 3)
		return 0;
	bdat = data[0] & 1;
	max = data[2] ? (size_t)data[2] * 16 : (size_t)-1;
	env.sender = strdup("a@example.org");
	q_env_add_rcpt(&env, "b@example.org");
	d.spill_at = data[0] >> 1;
	d.spill = d.spill_at ? spill : NULL;
	d.spill_arg = &env;
	data_rx_begin(&d, max, bdat);
	used = feed(&d, bdat, data[1], data + 3, size - 3, &done);

	r.scan = bdat ? DS_MID : DS_BOL;
	for (size_t i = 3; i < size && !ref_done; i++, ref_used++)
		if (bdat)
			ref_bdat_octet(&r, data[i]);
		else
			ref_done = ref_data_octet(&r, data[i]);
	if (bdat) {
		if (r.scan == DS_CR)
			r.bad = 1;
		if (r.content.len > 0 && r.content.data[r.content.len - 1] != '\n')
			buf_append(&r.content, "\r\n", 2);
	}
	if (done != ref_done || used != ref_used)
		abort(); /* the end mark found elsewhere */
	if ((d.bad != DB_NONE) != r.bad)
		abort(); /* refused by one reader only */
	/* A DATA message is whole only at its end mark (before it, the one
	 * reader may hold back a CR the other has passed on). */
	if (!r.bad && (bdat || done)) {
		if (d.size != r.content.len)
			abort();
		if (r.content.len <= max && d.err == 0)
			check_queued(&d, &env, &r.content);
	}
	data_rx_free(&d);
	buf_free(&r.content);
	q_env_free(&env);
	return 0;
}
