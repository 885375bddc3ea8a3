/* Message content as it arrives over SMTP (DATA and BDAT): the end-of-data
 * scan, the checks every message gets (CRLF line ends only, no NUL, lines
 * of at most 1000 octets, max_message_size), and where the octets go: the
 * first DATA_RX_SPILL of them into memory, then, past that, into the
 * queue's temp file through a q_stream opened by the owner's spill
 * callback. So a session holds a small constant amount of memory whatever
 * the message size, and a small message is still committed in one write.
 * Invariant: a message with a problem (bad, too big, a failed write) keeps
 * being scanned to its end, so the refusal is the reply to its last octet. */
#ifndef SMTP_SMTP_DATA_H
#define SMTP_SMTP_DATA_H
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "queue/queue.h"

#define DATA_RX_SPILL (64u << 10) /* content kept in memory before it goes to a file */

/* Why a message is refused; the first problem seen wins. */
enum data_bad { DB_NONE, DB_BARE_CRLF, DB_NUL, DB_LONG_LINE };

/* Where the DATA scanner is: beginning of line, "." at BOL, ".\r" at BOL,
 * inside a line, "\r" inside a line. Only CRLF leads back to DS_BOL. */
enum data_scan { DS_BOL, DS_DOT, DS_DOT_CR, DS_MID, DS_CR };

struct data_rx {
	enum data_scan scan;
	enum data_bad bad;
	size_t line_len;	 /* wire octets of the current line so far */
	uint64_t size;		 /* content octets after dot-unstuffing */
	uint64_t max;		 /* max_message_size */
	struct buf content;	 /* the content while it is short enough */
	struct q_stream *stream; /* past DATA_RX_SPILL: the rest goes here */
	int err;		 /* errno of a failed spill or write, or 0 */
	char last;		 /* last content octet, '\0' before the first */
	size_t spill_at;	 /* content kept in memory; 0: DATA_RX_SPILL */
	/* Called once content reaches DATA_RX_SPILL (not for a message
	 * already refused): opens stream and writes content to it; -1 with
	 * errno if it could not. */
	int (*spill)(struct data_rx *d, void *arg);
	void *spill_arg;
};

/* A new message: empty, nothing refused; bdat: no end mark to look for. */
void data_rx_begin(struct data_rx *d, uint64_t max, int bdat);
/* DATA: scans n wire octets, keeping the content (dot-unstuffed); returns
 * the octets consumed: all, or through the end mark (*done set). */
size_t data_rx_scan(struct data_rx *d, const void *p, size_t n, int *done);
/* BDAT: takes n octets of a chunk (no unstuffing, the same checks). */
void data_rx_chunk(struct data_rx *d, const void *p, size_t n);
/* BDAT LAST: a final bare CR is refused; content without a final CRLF
 * gets one. */
void data_rx_last(struct data_rx *d);
/* 1 if the message may be queued: nothing refused, no write failed. */
int data_rx_ok(const struct data_rx *d);
/* Forgets the message (a stream is given up, its temp file removed). */
void data_rx_reset(struct data_rx *d);
void data_rx_free(struct data_rx *d);

#endif
